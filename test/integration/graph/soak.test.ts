import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredentialFor, createGraphDirectoryFactory } from '../../../shared/adapters/graph/index.js';
import { admin, skuE3, startFixture, type Fixture } from './support.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});

interface TenantState {
  users: { userPrincipalName: string; assignedLicenses: { skuId: string }[]; deleted: boolean }[];
  skus: { skuId: string; consumedUnits: number; prepaidUnits: { enabled: number } }[];
}

describe('bulk work under throttling', () => {
  it('creates 300 users and oversubscribes a SKU from parallel workers: each user once, seats never exceeded', async () => {
    const seats = 120;
    await admin(f, 'PUT', `/tenants/${f.customerTenantId}/skus/${skuE3}`, {
      skuPartNumber: 'ENTERPRISEPACK',
      enabled: seats,
    });
    // Small buckets and short windows so throttling happens often within the test.
    await admin(f, 'POST', '/faults', {
      throttling: { enabled: true, scale: 0.02, windowInMs: 1000, writeWindowInMs: 1000 },
    });
    const directoryFor = (): ReturnType<ReturnType<typeof createGraphDirectoryFactory>> =>
      createGraphDirectoryFactory({
        credentialFor: createCredentialFor({
          clientId: f.clientId,
          clientSecret: f.clientSecret,
          authorityHost: f.peer.authorityHost,
        }),
        graphBaseUrl: f.peer.graphBaseUrl,
        retry: { maxRetries: 6, delayInSeconds: 0.1 },
        batchMaxAttempts: 10,
      })(f.customerTenantId);
    const workers = 3;
    const perWorker = 100;
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        const directory = directoryFor();
        const created = await directory.createUsers(
          Array.from({ length: perWorker }, (_, i) => ({
            userPrincipalName: `soak${w}-${i}@contoso.example`,
            displayName: `Soak ${w}-${i}`,
            mailNickname: `soak${w}x${i}`,
            password: 'Str0ng!Passw0rd',
            usageLocation: 'NL',
          })),
        );
        const ids = created.flatMap((r) => (r.ok ? [r.value.id] : []));
        const assigned = await directory.assignLicencesInBulk(
          ids.map((userId) => ({ userId, add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] })),
        );
        return { created, assigned };
      }),
    );
    const elapsedInMs = Date.now() - started;
    const created = results.flatMap((r) => r.created);
    const assigned = results.flatMap((r) => r.assigned);
    expect(created.filter((r) => !r.ok)).toEqual([]);
    expect(assigned.filter((r) => r.ok)).toHaveLength(seats);
    const refusals = assigned.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.error.code));
    expect(new Set(refusals)).toEqual(new Set(['LicenceUnavailable']));

    const state = (await admin(f, 'GET', `/tenants/${f.customerTenantId}`)).body as TenantState;
    const soakUsers = state.users.filter((u) => u.userPrincipalName.startsWith('soak'));
    expect(soakUsers).toHaveLength(workers * perWorker);
    expect(soakUsers.filter((u) => u.assignedLicenses.some((l) => l.skuId === skuE3))).toHaveLength(seats);
    expect(state.skus.find((s) => s.skuId === skuE3)).toMatchObject({
      consumedUnits: seats,
      prepaidUnits: { enabled: seats },
    });
    const faults = (await admin(f, 'GET', '/faults')).body as { stats: { throttled: number } };
    expect(faults.stats.throttled).toBeGreaterThan(0);
    console.log(
      `soak: ${workers * perWorker} creates + ${workers * perWorker} licence changes in ${elapsedInMs} ms, ${faults.stats.throttled} throttled answers`,
    );
  });
});
