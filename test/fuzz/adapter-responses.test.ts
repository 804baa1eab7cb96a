import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TokenCredential } from '@azure/identity';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverTls } from '../../dev/tls.js';
import { createPax8Distributor } from '../../shared/adapters/distributor/pax8.js';
import { createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { graphUserSchema, subscribedSkuCollectionSchema } from '../../shared/adapters/graph/schemas.js';
import { createPartnerCenterCommerce } from '../../shared/adapters/partner-center/commerce.js';
import { AppError } from '../../shared/errors.js';
import { hostileBody, jsonSchemaOf } from './arbitraries.js';

/**
 * The Graph, Partner Center and distributor adapters against a tiny local server that answers with
 * fast-check-generated responses (issue 19): any status, odd or missing content types, Retry-After
 * values of every shape, malformed, truncated, wrongly typed and huge bodies, a connection cut mid-body.
 * Every call ends in a success or an AppError with a stable code and a retryable flag (what the use
 * cases and the operation engine know how to handle) — never another exception type, never a hang.
 */
const callTimeoutInMs = 15_000;
const runs = Number(process.env.FUZZ_ADAPTER_RUNS ?? 25);

interface Answer {
  status: number;
  contentType: string | undefined;
  retryAfter: string | undefined;
  body: string;
  /** Cut the connection after this many bytes of the body. */
  cutAfter?: number;
}

let answer: Answer = { status: 200, contentType: 'application/json', retryAfter: undefined, body: '{}' };
const servers: Server[] = [];

function respond(request: IncomingMessage, response: ServerResponse): void {
  request.resume();
  // The distributor's OAuth token endpoint answers properly: the fuzz is about the API's answers.
  if (request.url?.endsWith('/token')) {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ access_token: 'fuzz-token', token_type: 'Bearer', expires_in: 3600 }));
    return;
  }
  const headers: Record<string, string> = {};
  if (answer.contentType !== undefined) headers['content-type'] = answer.contentType;
  if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
  if (answer.cutAfter !== undefined) {
    response.writeHead(answer.status, headers);
    response.write(answer.body.slice(0, answer.cutAfter));
    setTimeout(() => response.destroy(), 5);
    return;
  }
  response.writeHead(answer.status, headers);
  response.end(answer.status === 204 || answer.status === 304 ? undefined : answer.body);
}

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return String((server.address() as AddressInfo).port);
}

const credential: TokenCredential = {
  getToken: () => Promise.resolve({ token: 'fuzz-token', expiresOnTimestamp: Date.now() + 3_600_000 }),
};

const shapes = [jsonSchemaOf(graphUserSchema), jsonSchemaOf(subscribedSkuCollectionSchema)];
const answers: fc.Arbitrary<Answer> = fc
  .record(
    {
      status: fc.oneof(
        {
          weight: 4,
          arbitrary: fc.constantFrom(
            200,
            201,
            202,
            204,
            400,
            401,
            403,
            404,
            409,
            412,
            429,
            500,
            502,
            503,
            504,
          ),
        },
        { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) },
      ),
      contentType: fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'application/problem+json',
        'text/html',
        'text/plain',
        undefined,
      ),
      // Small waits only: a real Retry-After of minutes is honoured by design (capped by maxRetryAfterInMs).
      retryAfter: fc.option(
        fc.oneof(
          fc.integer({ min: 0, max: 1 }).map(String),
          fc.constantFrom('-1', 'soon', '1.5', '', 'Wed, 21 Oct 2015 07:28:00 GMT', '99999999999999999999'),
        ),
        { nil: undefined, freq: 2 },
      ),
      body: fc.oneof(
        fc.oneof(...shapes.map((shape) => hostileBody(shape).map((b) => b.text))),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
        fc.constantFrom(
          '',
          '{',
          'null',
          '[]',
          '<html>502 Bad Gateway</html>',
          '{"error":{"code":"Request_ResourceNotFound","message":"gone"}}',
          '{"error":{"code":42,"message":{"x":1}}}',
          '{"error":null}',
          '{"value":null}',
          '{"value":[null]}',
          '{"items":"x","metadata":{"pagination":{"page":"x"}}}',
          '{"code":"2000","description":"x"}',
        ),
        fc.integer({ min: 100_000, max: 2_000_000 }).map((n) => `{"value":"${'x'.repeat(n)}"}`),
      ),
      cutAfter: fc.option(fc.nat({ max: 50 }), { nil: undefined, freq: 8 }),
    },
    { requiredKeys: ['status', 'contentType', 'body'] },
  )
  .map((a) => ({ retryAfter: undefined, ...a }));

type Call = { name: string; run: () => Promise<unknown> };
const calls: Record<string, Call[]> = {};
const outcomes = new Map<string, number>();

/** Runs a call to its end: a value or an AppError with a code and a retryable flag; anything else fails. */
async function judge(call: Call): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), callTimeoutInMs);
  });
  try {
    const result = await Promise.race([
      call.run().then(
        () => 'ok' as const,
        (error: unknown) => error,
      ),
      timeout,
    ]);
    if (result === 'hang') throw new Error(`${call.name}: no answer within ${callTimeoutInMs} ms`);
    if (result === 'ok') {
      outcomes.set(`${call.name} ok`, (outcomes.get(`${call.name} ok`) ?? 0) + 1);
      return;
    }
    if (!(result instanceof AppError))
      throw new Error(
        `${call.name}: threw ${(result as Error)?.constructor?.name ?? typeof result}: ${String((result as Error)?.message ?? result).slice(0, 300)}`,
      );
    if (typeof result.code !== 'string' || typeof result.retryable !== 'boolean')
      throw new Error(`${call.name}: AppError without code or retryable flag`);
    outcomes.set(`${call.name} ${result.code}`, (outcomes.get(`${call.name} ${result.code}`) ?? 0) + 1);
  } finally {
    clearTimeout(timer);
  }
}

beforeAll(async () => {
  const tls = serverTls();
  const graphPort = await listen(createHttpsServer({ cert: tls.cert, key: tls.key }, respond));
  const plainPort = await listen(createHttpServer(respond));
  const graph = createGraphDirectoryFactory({
    credentialFor: () => credential,
    graphBaseUrl: `https://127.0.0.1:${graphPort}/v1.0`,
    customHosts: ['127.0.0.1'],
    retry: { maxRetries: 1, delayInSeconds: 0.01 },
    batchMaxAttempts: 2,
  })('00000000-0000-4000-8000-000000000001');
  const commerce = createPartnerCenterCommerce({
    credential,
    baseUrl: `http://127.0.0.1:${plainPort}`,
    retry: { maxAttempts: 2, baseDelayInMs: 5, maxDelayInMs: 20, maxRetryAfterInMs: 1500 },
  });
  const distributor = createPax8Distributor({
    clientId: 'fuzz',
    clientSecret: 'fuzz-secret',
    baseUrl: `http://127.0.0.1:${plainPort}`,
    timeoutInMs: 3000,
    retry: { maxAttempts: 2, baseDelayInMs: 5, maxDelayInMs: 20, maxRetryAfterInMs: 1500 },
  });
  const customerId = '00000000-0000-4000-8000-000000000002';
  calls.graph = [
    { name: 'graph.getUser', run: () => graph.getUser('ada@contoso.example') },
    { name: 'graph.findUserByUpn', run: () => graph.findUserByUpn('ada@contoso.example') },
    { name: 'graph.listSubscribedSkus', run: () => graph.listSubscribedSkus() },
    {
      name: 'graph.createUser',
      run: () =>
        graph.createUser({
          userPrincipalName: 'ada@contoso.example',
          displayName: 'Ada',
          mailNickname: 'ada',
          accountEnabled: true,
          password: 'Fuzz!Passw0rd',
          forceChangePasswordNextSignIn: true,
        }),
    },
    { name: 'graph.listUserChanges', run: () => graph.listUserChanges() },
    { name: 'graph.getDomain', run: () => graph.getDomain('contoso.example') },
  ];
  calls.partnerCenter = [
    { name: 'pc.getCustomer', run: () => commerce.getCustomer(customerId) },
    { name: 'pc.listSubscriptions', run: () => commerce.listSubscriptions(customerId) },
    { name: 'pc.isDomainAvailable', run: () => commerce.isDomainAvailable('contoso') },
    { name: 'pc.listOffers', run: () => commerce.listOffers() },
    {
      name: 'pc.changeQuantity',
      run: () => commerce.changeQuantity(customerId, 'sub-1', 3, { operationKey: 'fuzz-1' }),
    },
  ];
  calls.distributor = [
    { name: 'pax8.listCompanies', run: () => distributor.listCompanies() },
    { name: 'pax8.getSubscription', run: () => distributor.getSubscription(customerId, 'sub-1') },
    { name: 'pax8.getProduct', run: () => distributor.getProduct('prod-1') },
    { name: 'pax8.listSubscriptions', run: () => distributor.listSubscriptions(customerId) },
  ];
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe.each(['graph', 'partnerCenter', 'distributor'])('the %s adapter', (adapter) => {
  it('answers every generated response with a value or a typed AppError, never another exception or a hang', async () => {
    await fc.assert(
      fc.asyncProperty(answers, fc.nat(), async (generated, pick) => {
        const list = calls[adapter] ?? [];
        const call = list[pick % list.length];
        if (call === undefined) throw new Error('no calls');
        answer = generated;
        await judge(call);
      }),
      { numRuns: runs, endOnFailure: true },
    );
    expect(
      [...outcomes.keys()].some((k) =>
        k.startsWith(adapter === 'distributor' ? 'pax8' : adapter === 'graph' ? 'graph' : 'pc'),
      ),
    ).toBe(true);
  });
});

describe('what the adapters answered', () => {
  it('includes typed failures (the fuzz reached the error mapping)', () => {
    console.info(`adapter fuzz: ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`);
    expect([...outcomes.keys()].filter((k) => !k.endsWith(' ok')).length).toBeGreaterThan(3);
  });
});
