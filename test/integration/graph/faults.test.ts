import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client, GraphError, RetryHandlerOptions } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import { isAppError } from '../../../shared/errors.js';
import {
  createCredentialFor,
  createGraphDirectoryFactory,
  type GraphDirectoryOptions,
} from '../../../shared/adapters/graph/index.js';
import type { CloudDirectory } from '../../../shared/ports/cloud-directory.js';
import { admin, secretCredential, startFixture, type Fixture } from './support.js';

let f: Fixture;
const password = 'Str0ng!Passw0rd';

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
});

function directoryWith(options: Partial<GraphDirectoryOptions> = {}): CloudDirectory {
  return createGraphDirectoryFactory({
    credentialFor: createCredentialFor({
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      authorityHost: f.peer.authorityHost,
    }),
    graphBaseUrl: f.peer.graphBaseUrl,
    retry: { maxRetries: 3, delayInSeconds: 0.05 },
    ...options,
  })(f.customerTenantId);
}

async function stats(): Promise<{ throttled: number; unavailable: number }> {
  const faults = await admin(f, 'GET', '/faults');
  return (faults.body as { stats: { throttled: number; unavailable: number } }).stats;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('throttling (per app+tenant resource units)', () => {
  it('answers 429 with Retry-After and the documented body once the bucket is spent', async () => {
    await admin(f, 'POST', '/faults', { throttling: { enabled: true, scale: 0.001, windowInMs: 2000 } });
    // Straight SDK client without retries, to see the raw answer.
    const client = Client.initWithMiddleware({
      authProvider: new TokenCredentialAuthenticationProvider(secretCredential(f), {
        scopes: ['https://graph.microsoft.com/.default'],
      }),
      baseUrl: f.peer.authorityHost,
      customHosts: new Set(['127.0.0.1']),
    });
    const statuses: number[] = [];
    let throttled: GraphError | undefined;
    for (let i = 0; i < 5 && throttled === undefined; i++) {
      // GET /users costs 2 RU; a small tenant at scale 0.001 has 3 RU per window.
      const outcome = await client
        .api('/users')
        .middlewareOptions([new RetryHandlerOptions(0, 0)])
        .get()
        .then(
          () => 200,
          (error: unknown) => error,
        );
      if (outcome instanceof GraphError) throttled = outcome;
      else statuses.push(200);
    }
    expect(statuses).toEqual([200]);
    expect(throttled?.statusCode).toBe(429);
    expect(throttled?.code).toBe('TooManyRequests');
    expect(throttled?.message).toBe('Please retry again later.');
    expect(Number(throttled?.headers?.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    expect(throttled?.headers?.get('x-ms-throttle-information')).toBe('ResourceUnitLimitExceeded');
  });

  it('the adapter waits the Retry-After and then succeeds', async () => {
    await admin(f, 'POST', '/faults', { throttling: { enabled: true, scale: 0.001, windowInMs: 1000 } });
    const directory = directoryWith();
    const started = Date.now();
    for (let i = 0; i < 5; i++)
      expect((await directory.getUser('ada@contoso.example')).displayName).toBe('Ada');
    const elapsedInMs = Date.now() - started;
    expect((await stats()).throttled).toBeGreaterThanOrEqual(1);
    // Each 429 carried Retry-After: 1 and the SDK's RetryHandler slept that long.
    expect(elapsedInMs).toBeGreaterThanOrEqual(900);
  });

  it('maps throttling that outlasts the retries to Throttled with retryAfterInSeconds', async () => {
    await admin(f, 'POST', '/faults', { throttling: { enabled: true, scale: 0.001, windowInMs: 60_000 } });
    const directory = directoryWith({ retry: { maxRetries: 0 } });
    await directory.getUser('ada@contoso.example');
    await directory.getUser('ada@contoso.example');
    await directory.getUser('ada@contoso.example');
    const error = await rejection(directory.getUser('ada@contoso.example'));
    expect(isAppError(error, 'Throttled')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(true);
    expect(isAppError(error) ? error.retryAfterInSeconds : 0).toBeGreaterThan(30);
  });

  it('throttles $batch items one by one; the adapter resends only the throttled ones', async () => {
    await admin(f, 'POST', '/faults', {
      throttling: { enabled: true, scale: 0.001, windowInMs: 1000, writeWindowInMs: 1000 },
    });
    const directory = directoryWith();
    const results = await directory.createUsers(
      ['b1', 'b2', 'b3', 'b4', 'b5'].map((n) => ({
        userPrincipalName: `${n}@contoso.example`,
        displayName: n,
        mailNickname: n,
        password,
      })),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect((await stats()).throttled).toBeGreaterThanOrEqual(2);
    const tenant = (await admin(f, 'GET', `/tenants/${f.customerTenantId}`)).body as {
      users: { userPrincipalName: string }[];
    };
    // Exactly once each: no duplicate from the resend.
    expect(tenant.users.filter((u) => /^b\d@/.test(u.userPrincipalName))).toHaveLength(5);
  });
});

describe('503 Service Unavailable', () => {
  it('the adapter retries 503s and succeeds when the service recovers', async () => {
    // No Retry-After on this 503: the SDK backs off by its own delay.
    await admin(f, 'POST', '/faults', { next503Count: 1 });
    const user = await directoryWith().getUser('ada@contoso.example');
    expect(user.userPrincipalName).toBe('ada@contoso.example');
    expect((await stats()).unavailable).toBe(1);
  });

  it('maps a lasting 503 to Unavailable (retryable)', async () => {
    await admin(f, 'POST', '/faults', { random503Rate: 1, retryAfter503InSeconds: 0 });
    const error = await rejection(
      directoryWith({ retry: { maxRetries: 2, delayInSeconds: 0.05 } }).listSubscribedSkus(),
    );
    expect(isAppError(error, 'Unavailable')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(true);
    expect((await stats()).unavailable).toBe(3);
  });
});

describe('replication lag', () => {
  it('a just-created user 404s on the raw API for the lag window', async () => {
    await admin(f, 'POST', '/faults', { replicationLagInMs: 1500 });
    const client = Client.initWithMiddleware({
      authProvider: new TokenCredentialAuthenticationProvider(secretCredential(f), {
        scopes: ['https://graph.microsoft.com/.default'],
      }),
      baseUrl: f.peer.authorityHost,
      customHosts: new Set(['127.0.0.1']),
    });
    const created = (await client.api('/users').post({
      accountEnabled: true,
      displayName: 'Lag',
      mailNickname: 'lag',
      userPrincipalName: 'lag@contoso.example',
      passwordProfile: { password },
    })) as { id: string };
    const error = await rejection(client.api(`/users/${created.id}`).get());
    expect(error).toBeInstanceOf(GraphError);
    expect((error as GraphError).statusCode).toBe(404);
    expect((error as GraphError).code).toBe('Request_ResourceNotFound');
  });

  it('the adapter retries a 404 right after its own create, then reads the user', async () => {
    await admin(f, 'POST', '/faults', { replicationLagInMs: 600 });
    const directory = directoryWith({
      replicationLag: { baseDelayInMs: 200, maxDelayInMs: 400, maxAttempts: 10 },
    });
    const createdAt = Date.now();
    const created = await directory.createUser({
      userPrincipalName: 'lag2@contoso.example',
      displayName: 'Lag 2',
      mailNickname: 'lag2',
      password,
      usageLocation: 'NL',
    });
    await directory.updateUser(created.id, { jobTitle: 'Tester' });
    // The update can only land once the 600 ms lag has passed.
    expect(Date.now() - createdAt).toBeGreaterThanOrEqual(550);
    expect((await directory.getUser(created.id)).jobTitle).toBe('Tester');
  });

  it('also rides out the lag when the new user is read by UPN', async () => {
    await admin(f, 'POST', '/faults', { replicationLagInMs: 400 });
    const directory = directoryWith({
      replicationLag: { baseDelayInMs: 150, maxDelayInMs: 300, maxAttempts: 10 },
    });
    const createdAt = Date.now();
    const created = await directory.createUser({
      userPrincipalName: 'Lag4@contoso.example',
      displayName: 'Lag 4',
      mailNickname: 'lag4',
      password,
    });
    expect((await directory.getUser('lag4@contoso.example')).id).toBe(created.id);
    expect(Date.now() - createdAt).toBeGreaterThanOrEqual(350);
  });

  it('gives up with NotFound when the lag outlasts the retries', async () => {
    await admin(f, 'POST', '/faults', { replicationLagInMs: 60_000 });
    const directory = directoryWith({
      replicationLag: { baseDelayInMs: 10, maxDelayInMs: 20, maxAttempts: 3 },
    });
    const created = await directory.createUser({
      userPrincipalName: 'lag3@contoso.example',
      displayName: 'Lag 3',
      mailNickname: 'lag3',
      password,
    });
    const error = await rejection(directory.getUser(created.id));
    expect(isAppError(error, 'NotFound')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(false);
  });

  it('does not retry a 404 for an object it did not just create', async () => {
    await admin(f, 'POST', '/faults', { replicationLagInMs: 60_000 });
    const started = Date.now();
    const error = await rejection(directoryWith().getUser('00000000-0000-0000-0000-000000000001'));
    expect(isAppError(error, 'NotFound')).toBe(true);
    expect(Date.now() - started).toBeLessThan(500);
  });
});
