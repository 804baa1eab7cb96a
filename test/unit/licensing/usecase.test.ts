import { describe, expect, it } from 'vitest';
import { AppError } from '../../../shared/errors.js';
import type {
  CloudDirectory,
  CompanySubscription,
  SubscribedSku,
} from '../../../shared/ports/cloud-directory.js';
import type { Commerce, CommerceSubscription } from '../../../shared/ports/commerce.js';
import type { Distributor, DistributorSubscription } from '../../../shared/ports/distributor.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { createLicensing } from '../../../shared/usecases/licensing.js';
import { Crash, customer, MemoryStore, TestClock, world } from '../engine/world.js';

/**
 * The licensing use case on in-memory ports: the import record resumes after a crash at any write
 * without a second ledger entry, and operations the engine holds for a seat show up per SKU.
 */
const e3 = '6fd2c87f-b296-42f0-b197-1e91e994b900';
const caller = { id: 'test', kind: 'apiKey' as const, providerId: 'prov' };

function pcSubscription(id: string, quantity: number): CommerceSubscription {
  return {
    id,
    catalogItemId: 'CFQ7TTC0LFLZ:0001:CFQ7TTC0N8SL',
    offerName: 'Microsoft 365 E3',
    quantity,
    status: 'active',
    autoRenewEnabled: true,
    termDuration: 'P1Y',
    billingCycle: 'monthly',
    isNewCommerce: true,
    termStartedAt: new Date('2026-11-30T00:00:00Z'),
    commitmentEndDate: new Date('2027-11-29T00:00:00Z'),
    cancellationAllowedUntil: new Date('2026-12-07T00:00:00Z'),
    refundableSeats: [{ quantity, allowedUntil: new Date('2026-12-07T00:00:00Z') }],
    scheduledRenewal: undefined,
    etag: undefined,
  };
}

const commerce = {
  listSubscriptions: () => Promise.resolve([pcSubscription('PC-1', 10), pcSubscription('PC-2', 2)]),
  findOffers: () => Promise.resolve([{ licenceSkuId: e3 }]),
  // The Partner Center customer is the customer's own tenant (world.ts customer()).
  getCustomer: () => Promise.resolve({ tenantId: customer('cloudOnly').entra?.tenantId ?? '' }),
} as unknown as Commerce;

const paxSubscription: DistributorSubscription = {
  id: 'pax-1',
  companyId: '11111111-1111-4111-8111-111111111111',
  productId: 'prod-e3',
  productName: 'Microsoft 365 E3',
  vendorSubscriptionId: 'V-1',
  quantity: 15,
  status: 'active',
  distributorStatus: 'Active',
  billingTerm: 'Monthly',
  startDate: undefined,
  endDate: undefined,
  commitment: { id: 'c-1', term: 'Annual', endDate: new Date('2027-06-30T00:00:00Z') },
  price: undefined,
  partnerCost: undefined,
  currencyCode: undefined,
  createdAt: undefined,
  updatedAt: undefined,
};
const distributor = {
  listCompanies: () =>
    Promise.resolve([{ id: paxSubscription.companyId, name: 'Contoso', status: 'active' }]),
  listSubscriptions: () => Promise.resolve([paxSubscription]),
  getProduct: () => Promise.reject(new AppError('NotFound', 'no product')),
} as unknown as Distributor;

function companySubscription(commerceSubscriptionId: string, totalLicenses: number): CompanySubscription {
  return {
    id: `g-${commerceSubscriptionId}`,
    commerceSubscriptionId,
    skuId: e3,
    skuPartNumber: 'ENTERPRISEPACK',
    totalLicenses,
    status: 'Enabled',
    isTrial: false,
    createdDateTime: null,
    nextLifecycleDateTime: null,
    ownerId: null,
    ownerTenantId: null,
    ownerType: null,
  };
}

function directory(consumed: number): CloudDirectory {
  const subscriptions = [
    companySubscription('PC-1', 10),
    companySubscription('PC-2', 2),
    companySubscription('V-1', 15),
    companySubscription('EA-1', 40),
  ];
  const sku: SubscribedSku = {
    skuId: e3,
    skuPartNumber: 'ENTERPRISEPACK',
    appliesTo: 'User',
    capabilityStatus: 'Enabled',
    enabledUnits: 67,
    consumedUnits: consumed,
    servicePlans: [],
    prepaidUnits: { enabled: 67, warning: 0, suspended: 0, lockedOut: 0 },
    subscriptionIds: subscriptions.map((s) => s.id),
  };
  return {
    listSubscriptions: () => Promise.resolve(subscriptions),
    listSubscribedSkus: () => Promise.resolve([sku]),
  } as unknown as CloudDirectory;
}

function licensingOn(store: MemoryStore, clock: TestClock, consumed = 61) {
  return createLicensing({
    store,
    clock,
    cloudDirectory: () => directory(consumed),
    connectors: {
      partnerCenter: { providerId: 'prov', commerce },
      distributor: { providerId: 'prov', distributor },
    },
    distributorName: 'Pax8',
  });
}

async function seeded(): Promise<{ store: MemoryStore; clock: TestClock }> {
  const store = new MemoryStore();
  const clock = new TestClock();
  await customersCollection(store).create('prov', 'contoso', customer('cloudOnly'));
  await licensingOn(store, clock).putSources(caller, 'contoso', {
    partnerCenterCustomerId: '22222222-2222-4222-8222-222222222222',
    distributorCompanyId: paxSubscription.companyId,
    assignmentPolicy: ['distributor', 'partnerCenter'],
  });
  store.writes = 0;
  return { store, clock };
}

const shape = (entries: { subject: string; value: unknown; idempotencyKey: string }[]) =>
  entries
    .map((e) => ({ subject: e.subject, value: e.value }))
    .sort((a, b) => (a.subject < b.subject ? -1 : 1));

describe('import', () => {
  it('resumes after a crash at any write and never writes a ledger entry twice', async () => {
    const clean = await seeded();
    const record = await licensingOn(clean.store, clean.clock).runImport(caller, 'contoso', {
      importId: 'i',
    });
    expect(record.phases.map((p) => [p.name, p.state, p.changed])).toEqual([
      ['partnerCenter', 'done', 2],
      ['distributor', 'done', 1],
      ['graph', 'done', 5],
    ]);
    const expected = shape(await licensingOn(clean.store, clean.clock).ledger(caller, 'contoso'));
    const writes = clean.store.writes;
    expect(writes).toBeGreaterThan(10);

    for (let write = 1; write <= writes; write++) {
      for (const when of ['before', 'after'] as const) {
        const { store, clock } = await seeded();
        store.crashAt = { write, when };
        const licensing = licensingOn(store, clock);
        let finished = false;
        for (let attempt = 0; attempt < 5 && !finished; attempt++) {
          try {
            const again = await licensing.runImport(caller, 'contoso', { importId: 'i' });
            finished = again.state === 'succeeded';
          } catch (error) {
            if (!(error instanceof Crash)) throw error;
            store.crashAt = undefined;
          }
        }
        expect(finished).toBe(true);
        const entries = await licensing.ledger(caller, 'contoso');
        expect({ write, when, entries: shape(entries) }).toEqual({ write, when, entries: expected });
        expect(new Set(entries.map((e) => e.idempotencyKey)).size).toBe(entries.length);
      }
    }
  });

  it('reconciles what it imported to the words and figures of each source', async () => {
    const { store, clock } = await seeded();
    const licensing = licensingOn(store, clock);
    await licensing.runImport(caller, 'contoso');
    const view = await licensing.licensing(caller, 'contoso');
    expect(view.skus[0]?.explanation).toBe(
      'CSP supplies 12, Pax8 15, unlabelled 40 (EA?), Graph enabled 67, 61 assigned',
    );
    expect(view.unexplained).toEqual([
      expect.objectContaining({ code: 'unexplainedSubscription', skuId: e3 }),
    ]);
  });
});

describe('operations waiting for a seat', () => {
  it('are counted under the SKU they wait for, with how many more seats that needs', async () => {
    const w = await world({ mode: 'hybridFederated' });
    w.cloud.assignLicences = () => Promise.reject(new AppError('LicenceUnavailable', `no seat of ${e3}`));
    for (const userId of ['u-ada', 'u-bob']) {
      await w.provisioning.requestCreateUser({
        caller: w.caller,
        customerId: 'contoso',
        request: {
          userId,
          userPrincipalName: `${userId}@fed.contoso.example`,
          displayName: userId,
          accountEnabled: true,
          password: 'Str0ng!Passw0rd#1',
          licencePlan: 'E3',
        },
        idempotencyKey: `key-${userId}`,
        correlationId: 'c',
      });
    }
    await w.pump();
    const licensing = licensingOn(w.store, w.clock, 67);
    await licensing.putSources(caller, 'contoso', {
      distributorCompanyId: paxSubscription.companyId,
      assignmentPolicy: ['distributor', 'partnerCenter'],
    });
    await licensing.runImport(caller, 'contoso');
    const [view] = (await licensing.licensing(caller, 'contoso')).skus;
    expect(view).toMatchObject({ waitingForSeat: 2, free: 0 });
    expect(view?.explanation).toContain('67 assigned, 2 waiting for a seat');
    expect(view?.differences.find((d) => d.code === 'seatsWanted')).toMatchObject({
      figures: { waiting: 2, free: 0, needed: 2 },
      message: expect.stringContaining('from Pax8 (through its connector)') as unknown,
    });
  });
});
