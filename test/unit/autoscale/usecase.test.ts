import { describe, expect, it } from 'vitest';
import { subjectOf, type LedgerEntry, type SourceSubscription } from '../../../shared/domain/licensing.js';
import { AppError } from '../../../shared/errors.js';
import type { Commerce, CommerceSubscription } from '../../../shared/ports/commerce.js';
import {
  autoscalePolicyInputSchema,
  createAutoscale,
  type AutoscaleDeps,
  type AutoscaleSettings,
} from '../../../shared/usecases/autoscale.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import {
  engineCollections,
  HELD_PARTITION,
  userPartition,
} from '../../../shared/usecases/operations/records.js';
import { customer, MemoryStore, TestClock } from '../engine/world.js';

/**
 * The autoscale use case on in-memory ports: a fake Partner Center that applies a change once per
 * operation key (as its MS-RequestId does) and a fake licensing whose ledger follows what was recorded.
 * Covers: a sweep stopped by its time budget resumes where it stopped; a duplicate run does nothing;
 * a lost answer is re-sent under the same key and lands once; the kill switch and `recommend` send
 * nothing; without a connector a purchase request is raised once.
 */
const e3 = '6fd2c87f-b296-42f0-b197-1e91e994b900';
const caller = { id: 'test', kind: 'apiKey' as const, providerId: 'prov' };

interface Tenant {
  assigned: number;
  held: number;
  pc: { quantity: number; lots: { quantity: number; allowedUntil: Date }[] };
  ledger: SourceSubscription;
  version: number;
}

function harness(options: {
  customers: string[];
  connector?: boolean;
  delayInMs?: number;
  settings?: Partial<AutoscaleSettings>;
}) {
  const store = new MemoryStore();
  const clock = new TestClock();
  const tenants = new Map<string, Tenant>();
  for (const id of options.customers)
    tenants.set(id, {
      assigned: 12,
      held: 0,
      pc: { quantity: 10, lots: [] },
      ledger: {
        source: 'partnerCenter',
        id: `pc-${id}`,
        skuId: e3,
        offerId: 'E3',
        quantity: 10,
        status: 'active',
        term: 'P1Y',
        lots: [],
      },
      version: 0,
    });
  const seen = new Map<string, number>();
  let applied = 0;
  let loseNextAnswer = false;
  let throttled = false;
  const requests: string[] = [];
  const toCommerce = (id: string, t: Tenant): CommerceSubscription => ({
    id: `pc-${id}`,
    catalogItemId: 'E3',
    offerName: 'E3',
    quantity: t.pc.quantity,
    status: 'active',
    autoRenewEnabled: true,
    termDuration: 'P1Y',
    billingCycle: 'monthly',
    isNewCommerce: true,
    termStartedAt: undefined,
    commitmentEndDate: undefined,
    cancellationAllowedUntil: undefined,
    refundableSeats: t.pc.lots,
    scheduledRenewal: undefined,
    etag: undefined,
  });
  const commerce = {
    async changeQuantity(pcCustomerId: string, _s: string, quantity: number, o: { operationKey: string }) {
      const t = tenants.get(pcCustomerId);
      if (t === undefined) throw new AppError('NotFound', 'no customer');
      await new Promise((r) => setTimeout(r, options.delayInMs ?? 0));
      if (throttled) throw new AppError('Throttled', 'too many requests', { retryable: true });
      if (!seen.has(o.operationKey)) {
        seen.set(o.operationKey, quantity);
        t.pc.quantity = quantity;
        applied += 1;
      }
      if (loseNextAnswer) {
        loseNextAnswer = false;
        throw new AppError('Unavailable', 'connection reset', { retryable: true });
      }
      return toCommerce(pcCustomerId, t);
    },
  } as unknown as Commerce;
  const settings: AutoscaleSettings = {
    killSwitch: false,
    seatsPerRun: 1000,
    spendPerRun: 1e6,
    concurrency: 1,
    ...options.settings,
  };
  const entry = (id: string, t: Tenant): LedgerEntry => ({
    entryId: `e-${t.version}`,
    at: clock.now().toISOString(),
    subject: subjectOf.subscription(t.ledger),
    cause: 'import',
    actor: 'test',
    idempotencyKey: `k-${id}-${t.version}`,
    value: { kind: 'subscription', subscription: t.ledger },
    changes: [],
    figures: {},
  });
  const deps: AutoscaleDeps = {
    store,
    clock,
    licensing: {
      // The import reads Partner Center: the ledger follows the source.
      runImport: (c: { providerId: string }, id: string) => {
        const t = tenants.get(id);
        if (t !== undefined && t.ledger.quantity !== t.pc.quantity) {
          t.ledger = { ...t.ledger, quantity: t.pc.quantity };
          t.version += 1;
        }
        return Promise.resolve({ state: 'succeeded', customerId: id, startedBy: c.providerId });
      },
      licensing: (_c: unknown, id: string) => {
        const t = tenants.get(id);
        return Promise.resolve({
          skus: [
            {
              skuId: e3,
              assigned: t?.assigned ?? 0,
              waitingForSeat: t?.held ?? 0,
              supply: {
                partnerCenter: t?.ledger.quantity ?? 0,
                distributor: 0,
                ea: 0,
                thirdParty: 0,
                unlabelled: 0,
              },
            },
          ],
        });
      },
      ledger: (_c: unknown, id: string) => {
        const t = tenants.get(id);
        return Promise.resolve(t === undefined ? [] : [entry(id, t)]);
      },
      getSources: (_c: unknown, id: string) =>
        Promise.resolve({
          partnerCenterCustomerId: id,
          distributorCompanyId: undefined,
          assignmentPolicy: ['partnerCenter'],
          connectors: { partnerCenter: options.connector ?? true, distributor: false },
        }),
      createRequest: (_c: unknown, id: string, input: { change: number }) => {
        requests.push(`${id}:${input.change}`);
        return Promise.resolve({ request: { requestId: `req-${requests.length}` }, created: true });
      },
    } as unknown as AutoscaleDeps['licensing'],
    recordChange: (_p, id, change) => {
      const t = tenants.get(id);
      if (t !== undefined) {
        t.ledger = { ...t.ledger, quantity: change.subscription.quantity };
        t.version += 1;
      }
      return Promise.resolve();
    },
    connectors: options.connector === false ? {} : { partnerCenter: { providerId: 'prov', commerce } },
    resumeHeld: () => Promise.resolve(),
    settings: () => settings,
  };
  const autoscale = createAutoscale(deps);
  return {
    autoscale,
    store,
    tenants,
    requests,
    settings,
    applied: () => applied,
    clock,
    loseNextAnswer: () => {
      loseNextAnswer = true;
    },
    throttleAll: (on: boolean) => {
      throttled = on;
    },
    async setUp(policy: Record<string, unknown> = { mode: 'auto' }) {
      for (const id of options.customers) {
        await customersCollection(store).create('prov', id, { ...customer('cloudOnly'), customerId: id });
        await autoscale.putPolicy(caller, id, autoscalePolicyInputSchema.parse(policy));
      }
    },
  };
}

describe('autoscale sweep', () => {
  it('stops at its time budget, resumes where it stopped, and a duplicate or later run changes nothing', async () => {
    const h = harness({ customers: ['c1', 'c2', 'c3', 'c4', 'c5'], delayInMs: 30 });
    await h.setUp();
    const first = await h.autoscale.sweep({ runId: 'run-1', budgetInMs: 40 });
    expect(first.more).toBe(true);
    expect(first.customers).toBeGreaterThan(0);
    expect(first.customers).toBeLessThan(5);
    const resumed = await h.autoscale.sweep({ runId: 'ignored-while-one-runs' });
    expect(resumed).toMatchObject({ runId: 'run-1', state: 'done', customers: 5, more: false });
    expect(h.applied()).toBe(5);
    for (const t of h.tenants.values()) expect(t.pc.quantity).toBe(12);
    expect((await h.autoscale.sweep({ runId: 'run-1' })).applied).toBe(5);
    expect((await h.autoscale.sweep({ runId: 'run-2' })).applied).toBe(0);
    expect(h.applied()).toBe(5);
    const listed = await h.autoscale.listDecisions(caller, 'c3', 100, undefined);
    expect(listed.value).toMatchObject([{ kind: 'grow', state: 'applied', from: 10, to: 12 }]);
  });

  it('re-sends a change whose answer was lost under the same key: it lands once and the ledger records it', async () => {
    const h = harness({ customers: ['c1'] });
    await h.setUp();
    h.loseNextAnswer();
    await h.autoscale.sweep({ runId: 'a' });
    const failed = (await h.autoscale.listDecisions(caller, 'c1', 10, undefined)).value;
    expect(failed).toMatchObject([{ state: 'failed', lastError: { code: 'Unavailable' } }]);
    expect(h.applied()).toBe(1);
    await h.autoscale.sweep({ runId: 'b' });
    expect(h.applied()).toBe(1);
    expect((await h.autoscale.listDecisions(caller, 'c1', 10, undefined)).value).toMatchObject([
      { state: 'applied', to: 12 },
    ]);
    expect(h.tenants.get('c1')?.ledger.quantity).toBe(12);
  });

  it('just in time finishes a purchase whose answer was lost even after no operation is held any more', async () => {
    // Found by the chaos run: the lost PATCH landed, Graph showed the seats, the held users got them
    // from the licence sweep, so no customer was held and the failed decision was never sent again —
    // Partner Center had 12 seats, the ledger 10.
    const h = harness({ customers: ['c1'] });
    await h.setUp();
    const held = engineCollections(h.store).held;
    await held.create(HELD_PARTITION, 'prov/op-1', {
      providerId: 'prov',
      operationId: 'op-1',
      customerId: 'c1',
      heldAt: h.clock.now().toISOString(),
    });
    const tenant = h.tenants.get('c1');
    if (tenant !== undefined) tenant.held = 2;
    h.loseNextAnswer();
    await h.autoscale.justInTime('jit-1');
    expect(h.applied()).toBe(1);
    expect(h.tenants.get('c1')?.ledger.quantity).toBe(10);
    await held.delete(HELD_PARTITION, 'prov/op-1');
    if (tenant !== undefined) tenant.held = 0;
    await h.autoscale.justInTime('jit-2');
    expect(h.applied()).toBe(1);
    expect(h.tenants.get('c1')?.ledger.quantity).toBe(h.tenants.get('c1')?.pc.quantity);
    expect((await h.autoscale.listDecisions(caller, 'c1', 10, undefined)).value).toMatchObject([
      { state: 'applied' },
    ]);
    // Nothing is left to finish: a later run visits no customer.
    expect((await h.autoscale.justInTime('jit-3')).customers).toBe(0);
  });

  it('decides a change again after its failed attempt went stale (Partner Center down for hours), and applies it once', async () => {
    const h = harness({ customers: ['c1'] });
    await h.setUp();
    h.throttleAll(true);
    await h.autoscale.sweep({ runId: 'down-1' });
    h.clock.advance(2 * 3_600_000);
    await h.autoscale.sweep({ runId: 'down-2' }); // the old attempt goes stale; this one fails too
    expect(h.applied()).toBe(0);
    h.throttleAll(false);
    h.clock.advance(2 * 3_600_000);
    await h.autoscale.sweep({ runId: 'up' });
    expect(h.applied()).toBe(1);
    expect(h.tenants.get('c1')?.pc.quantity).toBe(12);
    expect((await h.autoscale.listDecisions(caller, 'c1', 10, undefined)).value).toMatchObject([
      { state: 'applied', to: 12 },
    ]);
  });

  it('sends nothing with the kill switch on or in recommend mode, and says so', async () => {
    const killed = harness({ customers: ['c1'], settings: { killSwitch: true } });
    await killed.setUp();
    await killed.autoscale.sweep({ runId: 'k' });
    expect(killed.applied()).toBe(0);
    expect((await killed.autoscale.listDecisions(caller, 'c1', 10, undefined)).value).toMatchObject([
      { status: 'withheld', rule: 'killSwitch', state: 'recorded' },
    ]);
    // Switched off again, the same change is applied (once), beside the withheld record.
    killed.settings.killSwitch = false;
    await killed.autoscale.sweep({ runId: 'k2' });
    await killed.autoscale.sweep({ runId: 'k3' });
    expect(killed.applied()).toBe(1);
    expect(
      (await killed.autoscale.listDecisions(caller, 'c1', 10, undefined)).value.map((d) => d.status).sort(),
    ).toEqual(['apply', 'withheld']);
    const recommending = harness({ customers: ['c1'] });
    await recommending.setUp({ mode: 'recommend' });
    await recommending.autoscale.sweep({ runId: 'r' });
    expect(recommending.applied()).toBe(0);
    expect((await recommending.autoscale.listDecisions(caller, 'c1', 10, undefined)).value).toMatchObject([
      { status: 'recommend', state: 'recorded' },
    ]);
  });

  it('raises one purchase request when the source has no connector, however often it runs', async () => {
    const h = harness({ customers: ['c1'], connector: false });
    await h.setUp();
    await h.autoscale.sweep({ runId: 'p1' });
    await h.autoscale.sweep({ runId: 'p2' });
    expect(h.requests).toEqual(['c1:2']);
    expect((await h.autoscale.listDecisions(caller, 'c1', 10, undefined)).value).toMatchObject([
      { kind: 'purchaseRequest', status: 'pendingApproval', purchaseRequestId: 'req-1' },
    ]);
  });
});

describe('autoscale demand from user dates', () => {
  it('counts a user whose end date falls within reserveAheadDays as leaving, and one further out not yet', async () => {
    const h = harness({ customers: ['soon', 'later'] });
    // Two starters expected as well, so the customer is not shrinking and keeps its headroom.
    await h.setUp({ mode: 'auto', headroom: { seats: 2 }, expected: { [e3]: { starters: 2 } } });
    const users = engineCollections(h.store).users;
    for (const [id, days] of [
      ['soon', 5],
      ['later', 30],
    ] as const) {
      const at = h.clock.now().toISOString();
      await users.create(userPartition('prov', id), 'leaver', {
        userId: 'leaver',
        providerId: 'prov',
        customerId: id,
        userPrincipalName: `leaver@${id}.example`,
        displayName: 'Leaver',
        state: 'active',
        licences: [{ skuId: e3, assignedAt: at }],
        endDate: new Date(h.clock.now().getTime() + days * 86_400_000).toISOString().slice(0, 10),
        lastOperationId: 'op-1',
        createdAt: at,
        updatedAt: at,
      });
    }
    await h.autoscale.sweep({ runId: 'dates' });
    const grown = async (id: string) =>
      (await h.autoscale.listDecisions(caller, id, 50, undefined)).value.filter((d) => d.kind === 'grow');
    // 12 assigned + 2 starters + 2 headroom = 16; the leaver within 14 days takes one off (never the floor).
    expect(await grown('soon')).toMatchObject([{ from: 10, to: 15, figures: { scheduledLeavers: 1 } }]);
    expect(await grown('later')).toMatchObject([{ from: 10, to: 16, figures: { scheduledLeavers: 0 } }]);
  });
});
