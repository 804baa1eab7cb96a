import type * as AzureFunctions from '@azure/functions';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { definitions } from '../../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../../dev/host/local-host.js';
import { testDeps } from '../../support/app.js';

// Capture what functions/index.ts registers with the Functions host.
const registered = vi.hoisted(() => ({
  http: [] as { name: string; route: string; methods: string[]; authLevel: string }[],
  queues: [] as { name: string; queueName: string; connection: string }[],
  timers: [] as { name: string; schedule: string }[],
}));
vi.mock('@azure/functions', async (importOriginal) => {
  const original = await importOriginal<typeof AzureFunctions>();
  const app = {
    setup: () => undefined,
    http: (name: string, o: { route: string; methods: string[]; authLevel: string }) =>
      registered.http.push({ name, route: o.route, methods: o.methods, authLevel: o.authLevel }),
    serviceBusQueue: (name: string, o: { queueName: string; connection: string }) =>
      registered.queues.push({ name, queueName: o.queueName, connection: o.connection }),
    timer: (name: string, o: { schedule: string }) => registered.timers.push({ name, schedule: o.schedule }),
  };
  return { ...original, app, default: { ...original, app } };
});

const deps = testDeps({ TableStorage: inject('storageConnectionString') });
let host: LocalHost;

beforeAll(async () => {
  await import('../../../functions/index.js');
  host = await startLocalHost({
    definitions,
    deps,
    port: 0,
    timers: true,
    startQueueTrigger: () => Promise.resolve({ close: () => Promise.resolve() }),
    log: {
      debug() {},
      info() {},
      warn() {},
      error() {},
      child() {
        return this;
      },
    },
  });
});
afterAll(async () => {
  await host.stop();
});

describe('local Functions host', () => {
  it('serves exactly the set registered for Azure, with the same routes, queues and schedules', () => {
    const byName = <T extends { name: string }>(list: T[]) =>
      [...list].sort((a, b) => a.name.localeCompare(b.name));
    expect(registered.http.length).toBeGreaterThan(0);
    expect(byName(host.registration.http)).toEqual(byName(registered.http));
    expect(byName(host.registration.queues)).toEqual(byName(registered.queues));
    expect(byName(host.registration.timers)).toEqual(byName(registered.timers));
  });

  it('answers anonymous /api/health with its status only (no dependency, site or address)', async () => {
    const response = await fetch(`${host.url}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('serves an OpenAPI 3.1 document generated from the request schemas', async () => {
    const response = await fetch(`${host.url}/openapi.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { security: unknown[] }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    for (const definition of registered.http) {
      const path = `/${definition.route}`;
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(doc.paths['/whoami']?.get?.security).toEqual([{ apiKey: [] }, { entra: [] }]);
    expect(doc.paths['/health']?.get?.security).toEqual([]);
  });

  it('refuses a request without a key with 401 problem+json and a correlation id', async () => {
    const response = await fetch(`${host.url}/whoami`, { headers: { 'x-correlation-id': 'corr-123' } });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.headers.get('x-correlation-id')).toBe('corr-123');
    const problem = (await response.json()) as {
      status: number;
      code: string;
      correlationId: string;
      type: string;
    };
    expect(problem).toMatchObject({ status: 401, code: 'Unauthenticated', correlationId: 'corr-123' });
    expect(problem.type).toMatch(/^urn:atria-m365:problem:/);
  });

  it('refuses a wrong or malformed key with 401', async () => {
    const { keyId } = await deps.callers.createApiKey({ providerId: 'prov-a', name: 'test' });
    for (const key of ['nonsense', `atr_${keyId}_${'x'.repeat(32)}`]) {
      const response = await fetch(`${host.url}/whoami`, { headers: { 'x-functions-key': key } });
      expect(response.status).toBe(401);
      expect(((await response.json()) as { code: string }).code).toBe('Unauthenticated');
    }
  });

  it('accepts a valid key and shows its provider scope; generates a correlation id when none is sent', async () => {
    const { apiKey } = await deps.callers.createApiKey({
      providerId: 'prov-b',
      customerIds: ['c1'],
      name: 'scoped',
    });
    const response = await fetch(`${host.url}/whoami`, { headers: { 'x-functions-key': apiKey } });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await response.json()).toMatchObject({
      providerId: 'prov-b',
      customerIds: ['c1'],
      kind: 'apiKey',
    });
    const viaQuery = await fetch(`${host.url}/whoami?code=${encodeURIComponent(apiKey)}`);
    expect(viaQuery.status).toBe(200);
  });

  it('answers unknown routes 404 and wrong methods 405 (with Allow) as problem+json with a code and correlation id', async () => {
    const cases = [
      { url: `${host.url}/nope`, method: 'GET', status: 404, code: 'NotFound' },
      { url: host.url.replace(/\/api$/, '/not-the-api'), method: 'GET', status: 404, code: 'NotFound' },
      { url: `${host.url}/health`, method: 'DELETE', status: 405, code: 'MethodNotAllowed' },
    ];
    for (const { url, method, status, code } of cases) {
      const response = await fetch(url, { method, headers: { 'x-correlation-id': `route-${status}` } });
      expect(response.status, `${method} ${url}`).toBe(status);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.headers.get('x-correlation-id')).toBe(`route-${status}`);
      expect(await response.json()).toMatchObject({ status, code, correlationId: `route-${status}` });
    }
    const generated = await fetch(`${host.url}/nope`);
    expect(((await generated.json()) as { correlationId: string }).correlationId).toMatch(/^[0-9a-f-]{36}$/);
    const wrongMethod = await fetch(`${host.url}/health`, { method: 'DELETE' });
    expect(wrongMethod.headers.get('allow')).toBe('GET');
  });
});
