import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { definitions } from '../../../functions/definitions.js';
import type { HttpFunctionDefinition } from '../../../functions/define.js';
import { maxRequestBodyInBytes } from '../../../functions/http/endpoint.js';
import { startLocalHost, type LocalHost } from '../../../dev/host/local-host.js';
import { testDeps } from '../../support/app.js';
import { quietLogger } from '../../support/stack.js';

/**
 * Hostile or careless input through the local host and the real pipeline, with a valid key: oversize
 * bodies, control characters in names, unknown fields on every route that takes a body.
 */
const deps = testDeps({ TableStorage: inject('storageConnectionString') });
let host: LocalHost;
let smallHost: LocalHost;
let key: string;

const customer = {
  displayName: 'Contoso',
  identityMode: 'cloudOnly',
  entra: { tenantId: randomUUID(), domains: ['contoso.example'] },
};

interface Problem {
  status: number;
  code: string;
  correlationId: string;
  errors?: { path: string; message: string }[];
}

function send(path: string, method: string, body: string, target = host): Promise<Response> {
  return fetch(`${target.url}${path}`, {
    method,
    headers: { 'x-functions-key': key, 'content-type': 'application/json', 'x-correlation-id': 'bad-input' },
    body,
  });
}

async function problem(response: Response): Promise<Problem> {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return (await response.json()) as Problem;
}

beforeAll(async () => {
  key = (
    await deps.callers.createApiKey({ providerId: `bad-input-${randomUUID().slice(0, 8)}`, name: 'test' })
  ).apiKey;
  host = await startLocalHost({ definitions, deps, port: 0, timers: false, log: quietLogger });
  smallHost = await startLocalHost({
    definitions,
    deps,
    port: 0,
    timers: false,
    log: quietLogger,
    maxRequestBodyInBytes: 64 * 1024,
  });
});

afterAll(async () => {
  await host.stop();
  await smallHost.stop();
});

describe('oversize bodies', () => {
  it('answers a 5 MB body with 413 problem+json with a code and the correlation id, and stores nothing', async () => {
    const body = JSON.stringify({ ...customer, displayName: 'x'.repeat(5 * 1024 * 1024) });
    const response = await send('/customers/too-big', 'PUT', body);
    expect(response.status).toBe(413);
    expect(await problem(response)).toMatchObject({
      status: 413,
      code: 'PayloadTooLarge',
      correlationId: 'bad-input',
    });
    const after = await fetch(`${host.url}/customers/too-big`, { headers: { 'x-functions-key': key } });
    expect(after.status).toBe(404);
  });

  it('answers 413 problem+json from the host itself above its own limit (Azure: 100 MB), an answer the client can read', async () => {
    const response = await send('/customers/too-big', 'PUT', 'x'.repeat(100 * 1024), smallHost);
    expect(response.status).toBe(413);
    expect(await problem(response)).toMatchObject({ code: 'PayloadTooLarge', correlationId: 'bad-input' });
  });

  it('still serves a body just under the pipeline limit (parsed, then judged on its content)', async () => {
    const body = JSON.stringify({ ...customer, colour: 'y'.repeat(maxRequestBodyInBytes - 400) });
    const response = await send('/customers/almost-too-big', 'PUT', body);
    expect(response.status).toBe(400);
    expect((await problem(response)).errors).toEqual([
      { path: 'body.colour', message: 'is not a known field' },
    ]);
  });
});

describe('control characters in names', () => {
  const cases: { route: string; method: string; body: Record<string, unknown>; field: string }[] = [
    {
      route: '/customers/ctl',
      method: 'PUT',
      body: { ...customer, displayName: 'Con\u0000toso' },
      field: 'displayName',
    },
    {
      route: '/customers/ctl/users',
      method: 'POST',
      body: { userId: 'u1', userPrincipalName: 'ada@contoso.example', displayName: 'Ada\nLovelace' },
      field: 'displayName',
    },
    {
      route: '/customers/ctl/users',
      method: 'POST',
      body: {
        userId: 'u1',
        userPrincipalName: 'ada@contoso.example',
        displayName: 'Ada',
        givenName: 'Ada\u0085',
      },
      field: 'givenName',
    },
    {
      route: '/customers/ctl/users',
      method: 'POST',
      body: {
        userId: 'u1',
        userPrincipalName: 'ada@contoso.example',
        displayName: 'Ada',
        sAMAccountName: 'ada\u0000x',
      },
      field: 'sAMAccountName',
    },
    {
      route: '/customers/ctl/domains/contoso.example/federation',
      method: 'PUT',
      body: {
        issuerUri: 'http://adfs.contoso.example/adfs/services/trust\n',
        passiveSignInUri: 'https://adfs.contoso.example/adfs/\tls/',
        signingCertificate: 'A'.repeat(200),
      },
      field: 'issuerUri',
    },
    {
      route: '/customers/ctl/users/u1',
      method: 'PATCH',
      body: { jobTitle: 'Engineer\r\nX-Injected: yes' },
      field: 'jobTitle',
    },
  ];

  for (const { route, method, body, field } of cases) {
    it(`refuses ${method} ${route} with a control character in ${field}: 400 naming the field`, async () => {
      const response = await send(route, method, JSON.stringify(body));
      expect(response.status).toBe(400);
      const answer = await problem(response);
      expect(answer.code).toBe('Validation');
      expect(answer.errors).toContainEqual({
        path: `body.${field}`,
        message: expect.stringContaining('control characters') as string,
      });
    });
  }

  it('stored nothing for the refused customer', async () => {
    const response = await fetch(`${host.url}/customers/ctl`, { headers: { 'x-functions-key': key } });
    expect(response.status).toBe(404);
  });
});

describe('unknown fields', () => {
  const sample: Record<string, string> = {
    customerId: 'c1',
    userId: 'u1',
    siteId: 'site-1',
    domain: 'contoso.example',
    operationId: 'op-1',
  };
  const withBodies = definitions.filter(
    (d): d is HttpFunctionDefinition => d.kind === 'http' && d.endpoint.body !== undefined,
  );

  it('covers the routes that take a body', () => {
    expect(withBodies.length).toBeGreaterThanOrEqual(5);
  });

  for (const definition of withBodies) {
    const method = definition.methods[0] ?? 'POST';
    it(`refuses an unknown field on ${method} /${definition.route} with 400 naming it`, async () => {
      const path = `/${definition.route.replace(/\{(\w+)(:[^}]*)?\}/g, (_m, name: string) => sample[name] ?? 'x1')}`;
      const response = await send(path, method, JSON.stringify({ unexpectedField: true }));
      expect(response.status).toBe(400);
      const answer = await problem(response);
      expect(answer.errors).toContainEqual({ path: 'body.unexpectedField', message: 'is not a known field' });
    });
  }
});
