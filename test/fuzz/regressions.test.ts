import { randomUUID } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { serverTls } from '../../dev/tls.js';
import { createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import { maxHonouredRetryAfterInSeconds, retryDelayInMs } from '../../shared/domain/planning.js';
import { testDeps } from '../support/app.js';
import { quietLogger } from '../support/stack.js';

/**
 * The crashes fuzzing found (test/fuzz/*.test.ts), each pinned as a plain case so it stays fixed even
 * when a seed no longer happens to generate it.
 */
const deps = testDeps({ TableStorage: inject('storageConnectionString') });
let host: LocalHost;
let key: string;

const problem = z.object({ status: z.number(), code: z.string(), correlationId: z.string() }).loose();

async function get(path: string): Promise<{ status: number; type: string | null; body: unknown }> {
  const response = await fetch(`${host.url}${path}`, { headers: { 'x-functions-key': key } });
  return { status: response.status, type: response.headers.get('content-type'), body: await response.json() };
}

beforeAll(async () => {
  key = (await deps.callers.createApiKey({ providerId: `regress-${randomUUID().slice(0, 8)}`, name: 't' }))
    .apiKey;
  host = await startLocalHost({ definitions, deps, port: 0, timers: false, log: quietLogger });
});

afterAll(async () => {
  await host.stop();
  await deps.close();
});

describe('path segments that are not valid percent-encoding', () => {
  it.each([
    '/customers/%zz',
    '/customers/%E0%A4%A/users',
    '/operations/%C0%AF',
    '/customers/a/users/%/groups/x',
  ])('%s is a 400 problem, not a 500', async (path) => {
    const answer = await get(path);
    expect(answer.status).toBe(400);
    expect(answer.type).toBe('application/problem+json');
    expect(problem.parse(answer.body)).toMatchObject({ status: 400, code: 'Validation' });
  });
});

describe('a cursor this API never issued', () => {
  it('is a 400 problem on a list, not a 503 "storage unreachable"', async () => {
    for (const cursor of ['a-', 'CL_', Buffer.from('{"nope":1}').toString('base64url')]) {
      const answer = await get(`/customers?cursor=${cursor}`);
      expect(answer.status).toBe(400);
      expect(problem.parse(answer.body)).toMatchObject({ code: 'Validation' });
    }
  });

  it('is refused by the Table store before the SDK sees it; a real continuation still pages', async () => {
    const store = createTableStore({ connectionString: inject('storageConnectionString') });
    const rows = store.collection(`regress${randomUUID().slice(0, 6)}`, z.object({ n: z.number() }));
    for (let n = 0; n < 3; n++) await rows.create('p', `r${n}`, { n });
    await expect(rows.listPage('p', { continuationToken: 'not-a-token' })).rejects.toMatchObject({
      code: 'Validation',
    });
    const first = await rows.listPage('p', { pageSize: 2 });
    expect(first.continuationToken).toBeDefined();
    const second = await rows.listPage('p', {
      pageSize: 2,
      continuationToken: first.continuationToken ?? '',
    });
    expect(second.items.map((row) => row.value.n)).toEqual([2]);
  });
});

describe('Graph answering 429 with an enormous Retry-After', () => {
  it('fails at once as a retryable Throttled error with the wait held to an hour, instead of sleeping in the request', async () => {
    const tls = serverTls();
    let requests = 0;
    const server = createServer({ cert: tls.cert, key: tls.key }, (request, response) => {
      requests++;
      request.resume();
      response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '99999999999999999999' });
      response.end('{"error":{"code":"TooManyRequests","message":"slow down"}}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const directory = createGraphDirectoryFactory({
        credentialFor: () => ({
          getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3_600_000 }),
        }),
        graphBaseUrl: `https://127.0.0.1:${port}/v1.0`,
        customHosts: ['127.0.0.1'],
      })('00000000-0000-4000-8000-000000000001');
      const started = Date.now();
      await expect(directory.getUser('ada@contoso.example')).rejects.toMatchObject({
        code: 'Throttled',
        retryable: true,
        retryAfterInSeconds: 3600,
      });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(requests).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('a server-requested wait far beyond any deadline', () => {
  it('re-schedules a step by at most an hour, so the next run time stays a valid date', () => {
    const backoff = { baseDelayInMs: 1000, maxDelayInMs: 60_000 };
    const delay = retryDelayInMs(1, backoff, () => 0.5, 1e20);
    expect(delay).toBe(maxHonouredRetryAfterInSeconds * 1000);
    expect(() => new Date(Date.now() + delay).toISOString()).not.toThrow();
    // An ordinary Retry-After is still honoured as given.
    expect(retryDelayInMs(1, backoff, () => 0.5, 120)).toBe(120_000);
  });
});
