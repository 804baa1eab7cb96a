import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAppError } from '../../../shared/errors.js';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * New Commerce seat rules through the real adapter against the Partner Center peer, with the peer's
 * virtual clock, and Graph's subscribedSkus (read through the Graph peer) following every change.
 * Each test buys on its own customer; the clock only moves forward, so tests read relative time.
 */
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.stop();
});

async function buy(
  customerId: string,
  catalogItemId: string,
  quantity: number,
  termDuration: 'P1M' | 'P1Y' = 'P1Y',
) {
  const purchase = await stack.commerce.buy(
    customerId,
    [{ catalogItemId, quantity, termDuration, billingCycle: 'monthly' }],
    {
      operationKey: `buy-${customerId}-${catalogItemId}-${quantity}-${termDuration}`,
    },
  );
  const subscriptionId = purchase.orders[0]?.lines[0]?.subscriptionId;
  if (subscriptionId === undefined) throw new Error('no subscription in the order');
  return subscriptionId;
}

async function expectError(promise: Promise<unknown>, code: Parameters<typeof isAppError>[1]): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(isAppError(error, code), `expected ${String(code)}, got ${String(error)}`).toBe(true);
}

describe('NCE seat windows', () => {
  it('a purchase creates a subscription and sets Graph prepaidUnits.enabled to its seats', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.e3, 5);
    const subscription = await stack.commerce.getSubscription(customerId, subscriptionId);
    expect(subscription).toMatchObject({
      quantity: 5,
      status: 'active',
      isNewCommerce: true,
      termDuration: 'P1Y',
      autoRenewEnabled: true,
    });
    expect(subscription.refundableSeats.map((seats) => seats.quantity)).toEqual([5]);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(5);
  });

  it('a seat added on day 0 can be removed on day 6 but not on day 8', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.businessPremium, 3);
    await stack.advance({ days: 6 });
    const reduced = await stack.commerce.changeQuantity(customerId, subscriptionId, 2, {
      operationKey: `${subscriptionId}-to-2`,
    });
    expect(reduced.quantity).toBe(2);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.businessPremium)).toBe(2);
    await stack.advance({ days: 2 });
    await expectError(
      stack.commerce.changeQuantity(customerId, subscriptionId, 1, {
        operationKey: `${subscriptionId}-to-1`,
      }),
      'ReductionWindowClosed',
    );
    expect((await stack.commerce.getSubscription(customerId, subscriptionId)).quantity).toBe(2);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.businessPremium)).toBe(2);
  });

  it('with two lots, only the open lot can be reduced', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.exchangePlan1, 10);
    await stack.advance({ days: 10 });
    const grown = await stack.commerce.changeQuantity(customerId, subscriptionId, 14, {
      operationKey: `${subscriptionId}-to-14`,
    });
    expect(grown.refundableSeats.map((seats) => seats.quantity)).toEqual([4]);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.exchangePlan1)).toBe(14);
    await stack.advance({ days: 1 });
    await expectError(
      stack.commerce.changeQuantity(customerId, subscriptionId, 9, {
        operationKey: `${subscriptionId}-to-9`,
      }),
      'ReductionWindowClosed',
    );
    const reduced = await stack.commerce.changeQuantity(customerId, subscriptionId, 10, {
      operationKey: `${subscriptionId}-to-10`,
    });
    expect(reduced.quantity).toBe(10);
    expect(reduced.refundableSeats).toEqual([]);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.exchangePlan1)).toBe(10);
  });
});

describe('NCE cancellation', () => {
  it('cancels within 168 hours of purchase and removes the seats from Graph', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.e3, 4);
    await stack.advance({ hours: 100 });
    const cancelled = await stack.commerce.cancel(customerId, subscriptionId, {
      operationKey: `${subscriptionId}-cancel`,
    });
    expect(cancelled.status).toBe('deleted');
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(0);
    // Cancelling again is the same outcome, not an error.
    expect(
      (await stack.commerce.cancel(customerId, subscriptionId, { operationKey: `${subscriptionId}-cancel` }))
        .status,
    ).toBe('deleted');
  });

  it('refuses cancellation after the window', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.e3, 4);
    await stack.advance({ hours: 169 });
    await expectError(
      stack.commerce.cancel(customerId, subscriptionId, { operationKey: `${subscriptionId}-cancel` }),
      'CancellationWindowClosed',
    );
    expect((await stack.commerce.getSubscription(customerId, subscriptionId)).status).toBe('active');
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(4);
  });
});

describe('NCE renewal', () => {
  it('a renewal applies the scheduled quantity, term and SKU, and the renewed seats get a fresh window', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.businessPremium, 8);
    const before = await stack.commerce.getSubscription(customerId, subscriptionId);
    const scheduled = await stack.commerce.scheduleRenewalChange(
      customerId,
      subscriptionId,
      { quantity: 5, catalogItemId: offers.e3, termDuration: 'P1M', billingCycle: 'monthly' },
      { operationKey: `${subscriptionId}-schedule` },
    );
    expect(scheduled.scheduledRenewal).toEqual({
      quantity: 5,
      catalogItemId: offers.e3,
      termDuration: 'P1M',
      billingCycle: 'monthly',
    });
    expect(scheduled.quantity).toBe(8);
    const commitmentEnd = before.commitmentEndDate;
    if (commitmentEnd === undefined) throw new Error('no commitmentEndDate');
    const now = await stack.now();
    // To one hour after the last day of the term: the renewal has run at 00:00 UTC.
    await stack.advance({ hours: (commitmentEnd.getTime() - now.getTime()) / 3_600_000 + 25 });
    const renewed = await stack.commerce.getSubscription(customerId, subscriptionId);
    expect(renewed).toMatchObject({
      status: 'active',
      quantity: 5,
      catalogItemId: offers.e3,
      termDuration: 'P1M',
    });
    expect(renewed.scheduledRenewal).toBeUndefined();
    expect(renewed.refundableSeats.map((seats) => seats.quantity)).toEqual([5]);
    expect(renewed.termStartedAt?.toISOString()).toBe(
      new Date(commitmentEnd.getTime() + 86_400_000).toISOString(),
    );
    const seats = await stack.enabledSeats(customerId);
    expect(seats.get(graphSkuIds.e3)).toBe(5);
    expect(seats.get(graphSkuIds.businessPremium)).toBe(0);
    // The renewed seats are reducible within their own window.
    const reduced = await stack.commerce.changeQuantity(customerId, subscriptionId, 3, {
      operationKey: `${subscriptionId}-renewed-to-3`,
    });
    expect(reduced.quantity).toBe(3);
  });

  it('with auto-renew off, the subscription expires at the end of the term and Graph loses its seats', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.exchangePlan1, 6, 'P1M');
    const off = await stack.commerce.setAutoRenew(customerId, subscriptionId, false, {
      operationKey: `${subscriptionId}-auto-off`,
    });
    expect(off.autoRenewEnabled).toBe(false);
    await stack.advance({ days: 32 });
    const expired = await stack.commerce.getSubscription(customerId, subscriptionId);
    expect(expired.status).toBe('expired');
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.exchangePlan1)).toBe(0);
  });

  it('a monthly subscription renews every month as a year passes', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.exchangePlan1, 2, 'P1M');
    const first = await stack.commerce.getSubscription(customerId, subscriptionId);
    await stack.advance({ iso: 'P1Y' });
    const later = await stack.commerce.getSubscription(customerId, subscriptionId);
    expect(later.status).toBe('active');
    expect(later.quantity).toBe(2);
    const monthsApart =
      ((later.termStartedAt?.getUTCFullYear() ?? 0) - (first.termStartedAt?.getUTCFullYear() ?? 0)) * 12 +
      (later.termStartedAt?.getUTCMonth() ?? 0) -
      (first.termStartedAt?.getUTCMonth() ?? 0);
    expect(monthsApart).toBeGreaterThanOrEqual(11);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.exchangePlan1)).toBe(2);
  });

  it('scheduling with a stale etag is refused as PreconditionFailed', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.e3, 3);
    const stale = await fetch(
      `${stack.partnerCenter.baseUrl}/v1/customers/${customerId}/subscriptions/${subscriptionId}`,
      {
        headers: { authorization: `Bearer ${await stack.token()}` },
      },
    ).then(async (response) => (await response.json()) as Record<string, unknown>);
    await stack.commerce.changeQuantity(customerId, subscriptionId, 4, {
      operationKey: `${subscriptionId}-to-4`,
    });
    const etag = (stale.attributes as { etag: string }).etag;
    const response = await fetch(
      `${stack.partnerCenter.baseUrl}/v1/customers/${customerId}/subscriptions/${subscriptionId}`,
      {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${await stack.token()}`,
          'content-type': 'application/json',
          'if-match': etag,
        },
        body: JSON.stringify({
          ...stale,
          scheduledNextTermInstructions: {
            product: {
              productId: 'CFQ7TTC0LFLZ',
              skuId: '0001',
              availabilityId: 'CFQ7TTC0N8SL',
              billingCycle: 'monthly',
              termDuration: 'P1Y',
            },
            quantity: 2,
          },
        }),
      },
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 2055, source: 'PartnerFD' });
  });

  it('refuses updates after 1,200 of them', async () => {
    const customerId = await stack.readyCustomer();
    const subscriptionId = await buy(customerId, offers.e3, 3);
    const set = await fetch(`${stack.partnerCenter.adminUrl}/subscriptions/${subscriptionId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ updateCount: 1200 }),
    });
    expect(set.status).toBe(204);
    const error: unknown = await stack.commerce
      .changeQuantity(customerId, subscriptionId, 4, { operationKey: `${subscriptionId}-to-4` })
      .catch((thrown: unknown) => thrown);
    expect(isAppError(error, 'Conflict')).toBe(true);
    expect(isAppError(error) && error.details?.partnerCenterCode).toBe('900311');
  });
});
