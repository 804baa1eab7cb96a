import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startDistributorPeer, type DistributorPeer } from '../../../dev/peers/distributor/index.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import { graphAdminClient } from '../../../dev/peers/partner-center/graph-sync.js';
import { startPartnerCenterPeer, type PartnerCenterPeer } from '../../../dev/peers/partner-center/index.js';
import { seedSchema as partnerCenterSeedSchema } from '../../../dev/peers/partner-center/seed.js';
import { Pax8Distributor } from '../../../shared/adapters/distributor/pax8.js';
import { app, day0, graphSku, ids, testSeed } from './stack.js';

/**
 * The distributor peer beside the others: it keeps the customer tenant's Graph subscriptions and
 * `subscribedSkus` in step (one companySubscription per Pax8 subscription, commerceSubscriptionId =
 * vendorSubscriptionId) and follows the Partner Center peer's virtual clock.
 */
let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let distributor: DistributorPeer;
let adapter: Pax8Distributor;

beforeAll(async () => {
  graph = await startIdentityGraphPeer({});
  const pcSeed = partnerCenterSeedSchema.parse(
    JSON.parse(readFileSync('dev/peers/partner-center/demo-seed.json', 'utf8')),
  );
  partnerCenter = await startPartnerCenterPeer({
    seed: { ...pcSeed, clock: { start: day0.toISOString(), frozen: true } },
    identity: { authorityHost: graph.authorityHost },
    graphAdminUrl: graph.adminUrl,
    log: () => undefined,
  });
  distributor = await startDistributorPeer({
    seed: testSeed(),
    graphAdminUrl: graph.adminUrl,
    followClockUrl: partnerCenter.adminUrl,
    log: () => undefined,
  });
  adapter = new Pax8Distributor({
    ...app,
    baseUrl: distributor.baseUrl,
    retry: { baseDelayInMs: 5, maxDelayInMs: 20 },
  });
});
afterAll(async () => {
  await distributor.stop();
  await partnerCenter.stop();
  await graph.stop();
});

const tenantSchema = z
  .object({
    skus: z.array(
      z
        .object({
          skuId: z.string(),
          prepaidUnits: z.object({ enabled: z.number() }).loose(),
          subscriptionIds: z.array(z.string()),
        })
        .loose(),
    ),
    subscriptions: z.array(
      z
        .object({
          commerceSubscriptionId: z.string(),
          skuId: z.string(),
          status: z.string(),
          totalLicenses: z.number(),
          nextLifecycleDateTime: z.string().nullable(),
        })
        .loose(),
    ),
  })
  .loose();

async function tenant(): Promise<z.infer<typeof tenantSchema>> {
  const response = await fetch(`${graph.adminUrl}/tenants/${ids.contosoTenant}`);
  if (!response.ok) throw new Error(`tenant: ${response.status}`);
  return tenantSchema.parse(await response.json());
}

async function enabled(skuId: string): Promise<number> {
  return (await tenant()).skus.find((sku) => sku.skuId === skuId)?.prepaidUnits.enabled ?? 0;
}

async function pcClock(body: unknown): Promise<void> {
  const response = await fetch(`${partnerCenter.adminUrl}/clock`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`clock: ${response.status}`);
}

async function provisioning(body: unknown): Promise<void> {
  const response = await fetch(`${distributor.adminUrl}/provisioning`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`provisioning: ${response.status}`);
}

describe('Graph follows the distributor', () => {
  it('creates the company’s tenant and shows each seeded subscription as a Graph companySubscription', async () => {
    const exchange = await adapter.getSubscription(ids.contoso, ids.exchangeSub);
    const e3 = await adapter.getSubscription(ids.contoso, ids.e3Sub);
    const state = await tenant();
    expect(state.subscriptions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          commerceSubscriptionId: exchange.vendorSubscriptionId,
          skuId: graphSku.exchange.skuId,
          status: 'Enabled',
          totalLicenses: 10,
        }),
        expect.objectContaining({
          commerceSubscriptionId: e3.vendorSubscriptionId,
          skuId: graphSku.e3.skuId,
          status: 'Enabled',
          totalLicenses: 20,
          nextLifecycleDateTime: '2027-01-31T23:59:59.000Z',
        }),
      ]),
    );
    expect(await enabled(graphSku.exchange.skuId)).toBe(10);
  });

  it('adds its seats beside Partner Center’s seats of the same SKU instead of overwriting them', async () => {
    // The Partner Center peer writes one total per SKU (its implicit subscription).
    await graphAdminClient(graph.adminUrl).setSeats(
      ids.contosoTenant,
      { ...graphSku.e3, servicePlans: [] },
      5,
    );
    expect(await enabled(graphSku.e3.skuId)).toBe(25);
    await adapter.changeQuantity(ids.contoso, ids.e3Sub, 22);
    expect(await enabled(graphSku.e3.skuId)).toBe(27);
  });

  it('shows new seats only once provisioning completes (PendingAutomated), on the shared clock', async () => {
    await provisioning({ state: 'PendingAutomated', delayInMs: 3_600_000 });
    try {
      const changed = await adapter.changeQuantity(ids.contoso, ids.exchangeSub, 16);
      expect(changed.status).toBe('pending');
      expect(changed.distributorStatus).toBe('PendingAutomated');
      expect(await enabled(graphSku.exchange.skuId)).toBe(10);
      // Time moves on the Partner Center peer; the distributor follows it.
      await pcClock({ advanceByInMs: 3_600_000 });
      expect((await adapter.getSubscription(ids.contoso, ids.exchangeSub)).status).toBe('active');
      expect(await enabled(graphSku.exchange.skuId)).toBe(16);
    } finally {
      await provisioning({ state: null, delayInMs: 0 });
    }
  });

  it('keeps a PendingCancel subscription’s seats until its end date, then marks it Deleted', async () => {
    const cancelAt = new Date(day0.getTime() + 5 * 86_400_000);
    const cancelled = await adapter.cancel(ids.contoso, ids.exchangeSub, { cancelAt });
    expect(cancelled.status).toBe('pendingCancel');
    expect(await enabled(graphSku.exchange.skuId)).toBe(16);
    const exchange = (await tenant()).subscriptions.find(
      (s) => s.commerceSubscriptionId === cancelled.vendorSubscriptionId,
    );
    expect(exchange?.nextLifecycleDateTime).toBe(cancelAt.toISOString());
    await pcClock({ advanceBy: 'P5D' });
    expect((await adapter.getSubscription(ids.contoso, ids.exchangeSub)).status).toBe('cancelled');
    expect(await enabled(graphSku.exchange.skuId)).toBe(0);
    const after = (await tenant()).subscriptions.find(
      (s) => s.commerceSubscriptionId === cancelled.vendorSubscriptionId,
    );
    expect(after?.status).toBe('Deleted');
  });

  it('refuses to move its own clock while it follows another peer’s', async () => {
    const response = await fetch(`${distributor.adminUrl}/clock`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ advanceByInMs: 1000 }),
    });
    expect(response.status).toBe(409);
    const clocks = await Promise.all(
      [distributor.adminUrl, partnerCenter.adminUrl].map(async (url) => {
        const answer = await fetch(`${url}/clock`);
        return z
          .object({ now: z.string() })
          .loose()
          .parse(await answer.json()).now;
      }),
    );
    expect(clocks[0]).toBe(clocks[1]);
  });
});
