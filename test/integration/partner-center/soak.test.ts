import { afterAll, beforeAll, expect, it } from 'vitest';
import { isAppError } from '../../../shared/errors.js';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * Many concurrent seat changes, purchases and cancellations across customers while virtual time
 * passes (windows close, monthly terms renew, a non-renewing term expires), then two more years:
 * Graph's prepaidUnits must equal Partner Center's active seats for every customer and SKU.
 */
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  // The soak measures the rules, not the documented per-minute limit.
  await fetch(`${stack.partnerCenter.adminUrl}/limits`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ subscriptionRequestsPerMinute: null }),
  });
});
afterAll(async () => {
  await stack.stop();
});

const graphSkuOf: Record<string, string> = {
  [offers.e3]: graphSkuIds.e3,
  [offers.businessPremium]: graphSkuIds.businessPremium,
  [offers.exchangePlan1]: graphSkuIds.exchangePlan1,
};

/** Deterministic pseudo-random numbers, so a failing run can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

async function assertGraphAgrees(customers: string[]): Promise<void> {
  for (const customerId of customers) {
    const expected = new Map<string, number>();
    for (const subscription of await stack.commerce.listSubscriptions(customerId)) {
      const sku = graphSkuOf[subscription.catalogItemId] ?? 'unknown';
      expected.set(
        sku,
        (expected.get(sku) ?? 0) + (subscription.status === 'active' ? subscription.quantity : 0),
      );
    }
    const actual = await stack.enabledSeats(customerId);
    for (const [sku, seats] of expected) expect(actual.get(sku) ?? 0, `${customerId} ${sku}`).toBe(seats);
  }
}

it(
  'Graph and Partner Center agree after concurrent seat traffic and two years of renewals',
  { timeout: 60_000 },
  async () => {
    const next = random(7);
    const customers = await Promise.all(Array.from({ length: 8 }, () => stack.readyCustomer()));
    const subscriptions: { customerId: string; subscriptionId: string }[] = [];
    for (const [index, customerId] of customers.entries()) {
      const purchase = await stack.commerce.buy(
        customerId,
        [
          { catalogItemId: offers.e3, quantity: 5, termDuration: 'P1M', billingCycle: 'monthly' },
          { catalogItemId: offers.exchangePlan1, quantity: 20, termDuration: 'P1Y', billingCycle: 'monthly' },
        ],
        { operationKey: `soak-buy-${customerId}` },
      );
      for (const order of purchase.orders)
        for (const line of order.lines)
          if (line.subscriptionId !== undefined)
            subscriptions.push({ customerId, subscriptionId: line.subscriptionId });
      if (index % 4 === 3) {
        const target = subscriptions.at(-1);
        if (target !== undefined)
          await stack.commerce.setAutoRenew(target.customerId, target.subscriptionId, false, {
            operationKey: `soak-off-${index}`,
          });
      }
    }

    const outcomes = { changed: 0, windowClosed: 0, cancelled: 0, cancelRefused: 0 };
    const operations = 240;
    const started = performance.now();
    for (let batch = 0; batch < operations / 8; batch += 1) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, slot) => {
          const target = subscriptions[Math.floor(next() * subscriptions.length)];
          if (target === undefined) return;
          const key = `soak-${batch}-${slot}`;
          const roll = next();
          try {
            if (roll < 0.02) {
              await stack.commerce.cancel(target.customerId, target.subscriptionId, { operationKey: key });
              outcomes.cancelled += 1;
              return;
            }
            const current = await stack.commerce.getSubscription(target.customerId, target.subscriptionId);
            if (current.status !== 'active') return;
            const delta = roll < 0.55 ? 1 + Math.floor(next() * 3) : -(1 + Math.floor(next() * 3));
            const quantity = Math.max(1, current.quantity + delta);
            await stack.commerce.changeQuantity(target.customerId, target.subscriptionId, quantity, {
              operationKey: key,
            });
            outcomes.changed += 1;
          } catch (error) {
            if (isAppError(error, 'ReductionWindowClosed')) outcomes.windowClosed += 1;
            else if (isAppError(error, 'CancellationWindowClosed')) outcomes.cancelRefused += 1;
            // Two concurrent changes of one subscription: the second read a stale etag.
            else if (!isAppError(error, 'PreconditionFailed')) throw error;
          }
        }),
      );
      if (batch % 6 === 5) await stack.advance({ days: 3 });
    }
    const trafficMs = performance.now() - started;
    await assertGraphAgrees(customers);

    const advanceStarted = performance.now();
    await stack.advance({ iso: 'P2Y' });
    const advanceMs = performance.now() - advanceStarted;
    await assertGraphAgrees(customers);

    const all = (
      await Promise.all(customers.map((customerId) => stack.commerce.listSubscriptions(customerId)))
    ).flat();
    // Auto-renew was turned off on two subscriptions: unless cancelled first, they have expired.
    const nonRenewing = all.filter(
      (subscription) => !subscription.autoRenewEnabled && subscription.status !== 'deleted',
    );
    expect(nonRenewing.length).toBeGreaterThanOrEqual(1);
    expect(nonRenewing.every((subscription) => subscription.status === 'expired')).toBe(true);
    const now = await stack.now();
    for (const subscription of all.filter((candidate) => candidate.status === 'active'))
      expect(subscription.commitmentEndDate?.getTime() ?? 0).toBeGreaterThan(now.getTime() - 86_400_000);
    expect(outcomes.changed).toBeGreaterThan(50);
    expect(outcomes.windowClosed).toBeGreaterThan(0);
    console.log(
      `[soak] ${operations} seat operations in ${trafficMs.toFixed(0)} ms (${((operations / trafficMs) * 1000).toFixed(0)}/s): ` +
        `${JSON.stringify(outcomes)}; 2 years of renewals for ${all.length} subscriptions in ${advanceMs.toFixed(0)} ms`,
    );
  },
);
