import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import type { HttpFunctionDefinition } from '../../functions/define.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { callApi } from '../support/http.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';
import { fromSchema, hostileBody, jsonSchemaOf, shortHostileString, type JsonSchema } from './arbitraries.js';

/**
 * HTTP fuzzing of every route of the definition table through the real local host (issue 19): bodies
 * generated from the zod schemas behind /api/openapi.json and then mutated, odd content types and
 * headers, path parameters with traversal and odd characters — with the provider's own key and with
 * another provider's key aimed at the first one's real ids. Every answer is a 4xx problem+json with a
 * code, or a 2xx whose body satisfies the route's declared response schema; never a 5xx, never a hang;
 * and what the first provider had stored before is exactly as it was after.
 */
const runsPerRoute = Number(process.env.FUZZ_HTTP_RUNS ?? 6);
const requestTimeoutInMs = 10_000;
const tenantId = randomUUID();
const playTenantId = randomUUID();
const run = randomUUID().slice(0, 8);
const seed = graphSeed({
  id: tenantId,
  displayName: 'Contoso',
  domains: [{ id: 'contoso.example', isDefault: true, authenticationType: 'Managed' }],
});
seed.tenants?.push({
  id: playTenantId,
  displayName: 'Playground',
  domains: [{ id: 'play.example', isDefault: true, authenticationType: 'Managed' }],
});
seed.apps?.[0]?.tenants?.push(playTenantId);

let stack: TestStack;
const keys = { own: '', foreign: '' };
/** The first provider's real ids: what the other provider's key is aimed at. */
const kept = { customerId: `keep-${run}`, userId: `keep-u-${run}`, operationId: '', siteId: `keep-${run}` };
/** The provider's own playground: its own key may change these (valid bodies reach the use cases). */
const play = { customerId: `play-${run}`, userId: `play-u-${run}`, operationId: '', siteId: `play-${run}` };

const routes = definitions.filter((d): d is HttpFunctionDefinition => d.kind === 'http');
const statusCounts = new Map<number, number>();

// Header values fetch can send (no CR/LF/NUL): printable ASCII and Latin-1.
const headerChar = fc
  .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }))
  .map((code) => String.fromCharCode(code));
const headerValue = fc.oneof(
  fc.string({ unit: headerChar, maxLength: 60 }),
  fc.constantFrom(
    '*',
    'W/"x"',
    '"',
    '',
    'Bearer',
    'Bearer eyJhbGciOiJub25lIn0.e30.',
    'atr_x_y',
    '00-zz-zz-01',
  ),
  fc.integer({ min: 200, max: 1500 }).map((n) => 'h'.repeat(n)),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'application/problem+json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/jsonx',
  undefined,
);
const optionalHeaders = fc.record(
  {
    'if-match': headerValue,
    'if-none-match': headerValue,
    'idempotency-key': headerValue,
    'x-correlation-id': headerValue,
    traceparent: headerValue,
    authorization: headerValue,
    accept: headerValue,
  },
  { requiredKeys: [] },
);

/** A lone surrogate cannot be percent-encoded (URIError in the client): as U+FFFD, as a browser sends it. */
const wellFormed = (text: string): string =>
  text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

/** A path segment: from the param's schema, hostile, or (for the foreign key) the first provider's id. */
function segment(schema: JsonSchema | undefined, real: string | undefined): fc.Arbitrary<string> {
  const encoded = (value: fc.Arbitrary<string>) => value.map((s) => encodeURIComponent(wellFormed(s)));
  const choices: fc.Arbitrary<string>[] = [
    encoded(schema === undefined ? fc.string({ minLength: 1 }) : fromSchema(schema).map(String)),
    encoded(shortHostileString.filter((s) => s !== '')),
    // Sent raw: traversal, stray and malformed percent escapes, encoded slashes and NULs.
    fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '..%2f..%2fhealth',
      '%2F',
      '%00',
      '%',
      '%zz',
      '%E0%A4%A',
      '%C0%AF',
      'a%2Fb',
    ),
  ];
  if (real !== undefined)
    choices.unshift(fc.constant(encodeURIComponent(real)), fc.constant(encodeURIComponent(real)));
  return fc.oneof(...choices);
}

interface FuzzRequest {
  path: string;
  headers: Record<string, string>;
  body?: string;
  mutation: string;
}

function requestFor(definition: HttpFunctionDefinition, foreign: boolean): fc.Arbitrary<FuzzRequest> {
  const endpoint = definition.endpoint;
  const params = endpoint.params === undefined ? undefined : jsonSchemaOf(endpoint.params);
  const names = [...definition.route.matchAll(/\{\*?(\w+)\??(?::\w+)?\}/g)].map((m) => m[1] ?? '');
  const realIds: Record<string, string> = foreign ? { ...kept } : { ...play };
  const pathArbitrary = fc
    .tuple(...names.map((name) => segment(params?.properties?.[name], realIds[name])))
    .map((values) => {
      let path = definition.route;
      names.forEach((name, i) => {
        path = path.replace(new RegExp(`\\{\\*?${name}\\??(:\\w+)?\\}`), values[i] ?? '');
      });
      return path;
    });
  const query = endpoint.query === undefined ? fc.constant({}) : fromSchema(jsonSchemaOf(endpoint.query));
  const queryText = fc
    .tuple(query, fc.option(fc.tuple(shortHostileString, shortHostileString), { nil: undefined }))
    .map(([values, extra]) => {
      const search = new URLSearchParams();
      if (values !== null && typeof values === 'object')
        for (const [name, value] of Object.entries(values)) search.set(name, String(value));
      if (extra !== undefined) search.set(extra[0], extra[1]);
      const text = search.toString();
      return text === '' ? '' : `?${text}`;
    });
  const canHaveBody = definition.methods.some((m) => m !== 'GET');
  const body = canHaveBody
    ? fc.option(hostileBody(endpoint.body === undefined ? undefined : jsonSchemaOf(endpoint.body)), {
        nil: undefined,
        freq: endpoint.body === undefined ? 2 : 8,
      })
    : fc.constant(undefined);
  return fc
    .record({ path: pathArbitrary, query: queryText, body, type: contentType, extra: optionalHeaders })
    .map(({ path, query: search, body: generated, type, extra }) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(extra)) if (value !== undefined) headers[name] = value;
      if (generated !== undefined && type !== undefined) headers['content-type'] = type;
      return {
        path: `/${path}${search}`,
        headers,
        ...(generated === undefined ? {} : { body: generated.text }),
        mutation: generated?.mutation ?? 'noBody',
      };
    });
}

const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    code: z.string().min(1),
    correlationId: z.string().min(1),
  })
  .loose();

/** Sends one request and states what is wrong with the answer (undefined when it is acceptable). */
async function judge(
  definition: HttpFunctionDefinition,
  request: FuzzRequest,
  key: string,
): Promise<string | undefined> {
  const method = definition.endpoint.method;
  let response: Response;
  try {
    response = await fetch(`${stack.host.url}${request.path}`, {
      method,
      headers: { 'x-functions-key': key, ...request.headers },
      ...(request.body === undefined ? {} : { body: request.body }),
      signal: AbortSignal.timeout(requestTimeoutInMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return `no answer within ${requestTimeoutInMs} ms or connection broken: ${(error as Error).message} ${cause?.code ?? ''}`;
  }
  const text = await response.text();
  const status = response.status;
  statusCounts.set(status, (statusCounts.get(status) ?? 0) + 1);
  const type = response.headers.get('content-type') ?? '';
  if (status >= 500) return `${status}: ${text.slice(0, 300)}`;
  if (status >= 400) {
    if (type !== 'application/problem+json') return `${status} with content-type ${type}`;
    const problem = problemSchema.safeParse(JSON.parse(text));
    if (!problem.success) return `${status} problem without its fields: ${text.slice(0, 300)}`;
    if (problem.data.status !== status) return `problem status ${problem.data.status} on a ${status}`;
    return undefined;
  }
  if (status < 200 || status >= 300) return `unexpected status ${status}`;
  // `.` and `..` segments are resolved by the client before sending: another route may have answered.
  const sent = new URL(`${stack.host.url}${request.path}`).pathname;
  if (sent !== `/api${request.path.split('?')[0] ?? ''}`) return undefined;
  const declared = definition.endpoint.responses[status];
  if (declared === undefined) return `${status} is not a declared response of ${definition.name}`;
  if (declared.schema !== undefined && /json/.test(type)) {
    const parsed = declared.schema.safeParse(JSON.parse(text));
    if (!parsed.success)
      return `${status} body fails the declared schema: ${parsed.error.issues[0]?.message ?? ''}`;
  }
  return undefined;
}

type Snapshot = Record<string, { status: number; body: Record<string, unknown> }>;

async function snapshot(): Promise<Snapshot> {
  const paths = [
    `/customers/${kept.customerId}`,
    `/customers/${kept.customerId}/users/${kept.userId}`,
    `/customers/${kept.customerId}/users`,
    `/operations/${kept.operationId}`,
    `/customers/${kept.customerId}/operations`,
    `/sites/${kept.siteId}`,
    '/customers?limit=500',
    '/sites?limit=500',
  ];
  const out: Snapshot = {};
  for (const path of paths) out[path] = await callApi(stack.host.url, keys.own, 'GET', path);
  // In the lists, only the kept resources: the provider's own key may create and delete others.
  const keptOnly = z.object({ value: z.array(z.record(z.string(), z.unknown())) }).loose();
  for (const [path, id] of [
    ['/customers?limit=500', kept.customerId],
    ['/sites?limit=500', kept.siteId],
  ] as const) {
    const list = keptOnly.parse(out[path]?.body);
    out[path] = {
      status: out[path]?.status ?? 0,
      body: { value: list.value.filter((item) => item.customerId === id || item.siteId === id) },
    };
  }
  return out;
}

/** A site, a cloud-only customer and one provisioned user of the first provider. */
async function createResources(ids: typeof kept, tenant: string, domain: string): Promise<void> {
  const api = (method: string, path: string, body?: unknown) =>
    callApi(stack.host.url, keys.own, method, path, body);
  const site = generateSiteKeyPair();
  const agent = generateSigningKeyPair();
  const putSite = await api('PUT', `/sites/${ids.siteId}`, {
    publicKeyPem: site.publicKeyPem,
    agentPublicKeyPem: agent.publicKeyPem,
  });
  expect(putSite.status).toBe(201);
  const putCustomer = await api('PUT', `/customers/${ids.customerId}`, {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId: tenant, domains: [domain] },
    defaultUsageLocation: 'NL',
  });
  expect(putCustomer.status).toBe(201);
  const created = await api('POST', `/customers/${ids.customerId}/users`, {
    userId: ids.userId,
    userPrincipalName: `${ids.userId}@${domain}`,
    displayName: 'Kept User',
  });
  expect(created.status).toBe(202);
  ids.operationId = z.object({ operationId: z.string() }).parse(created.body).operationId;
  await waitFor(async () => {
    const op = await api('GET', `/operations/${ids.operationId}`);
    return op.body.state === 'succeeded' ? true : undefined;
  }, `user ${ids.userId}`);
}

let before: Snapshot;
let graphUserBefore: unknown;

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
  });
  keys.own = (await stack.deps.callers.createApiKey({ providerId: `fuzz-a-${run}`, name: 'a' })).apiKey;
  keys.foreign = (await stack.deps.callers.createApiKey({ providerId: `fuzz-b-${run}`, name: 'b' })).apiKey;
  await createResources(kept, tenantId, 'contoso.example');
  await createResources(play, playTenantId, 'play.example');
  before = await snapshot();
  graphUserBefore = await stack.cloudDirectory(tenantId).getUser(`${kept.userId}@contoso.example`);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe.each([
  { who: "the provider's own key", foreign: false },
  { who: "another provider's key aimed at the first one's ids", foreign: true },
])('every route with $who', ({ foreign }) => {
  it.each(
    routes.map((definition) => ({
      name: `${definition.endpoint.method} /api/${definition.route}`,
      definition,
    })),
  )('$name answers a typed 4xx or a valid 2xx, never a 5xx or a hang', async ({ definition }) => {
    await fc.assert(
      fc.asyncProperty(requestFor(definition, foreign), async (request) => {
        const wrong = await judge(definition, request, foreign ? keys.foreign : keys.own);
        if (wrong !== undefined)
          throw new Error(`${request.mutation} ${request.path.slice(0, 160)}: ${wrong.slice(0, 300)}`);
      }),
      { numRuns: foreign ? Math.ceil(runsPerRoute / 2) : runsPerRoute, endOnFailure: true },
    );
  });
});

describe('after the fuzzing', () => {
  it('keeps what the first provider had stored exactly as it was, in the API and in Entra', async () => {
    const after = await snapshot();
    expect(after).toEqual(before);
    expect(before[`/customers/${kept.customerId}/users/${kept.userId}`]?.status).toBe(200);
    expect(before['/customers?limit=500']?.body.value).toHaveLength(1);
    expect(before['/sites?limit=500']?.body.value).toHaveLength(1);
    expect(await stack.cloudDirectory(tenantId).getUser(`${kept.userId}@contoso.example`)).toEqual(
      graphUserBefore,
    );
  });

  it('reached the use cases: some requests were accepted, most refused', () => {
    const accepted = [...statusCounts].filter(([s]) => s < 300).reduce((n, [, c]) => n + c, 0);
    const refused = [...statusCounts].filter(([s]) => s >= 400).reduce((n, [, c]) => n + c, 0);
    console.info(
      `HTTP fuzz: ${JSON.stringify(Object.fromEntries([...statusCounts].sort((a, b) => a[0] - b[0])))}`,
    );
    expect(accepted).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(accepted);
  });
});
