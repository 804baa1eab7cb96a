import { randomUUID } from 'node:crypto';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPartnerCenterCommerce } from '../../../shared/adapters/partner-center/commerce.js';
import { isAppError } from '../../../shared/errors.js';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * Buying is spending a customer's money: a retried operation must buy once, also when the answer to
 * a checkout that already placed the order is lost. Faults come from the peer's admin API.
 */
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterEach(async () => {
  await fetch(`${stack.partnerCenter.adminUrl}/faults`, { method: 'DELETE' });
});
afterAll(async () => {
  await stack.stop();
});

const line = { catalogItemId: offers.e3, quantity: 3, termDuration: 'P1Y', billingCycle: 'monthly' } as const;

describe('idempotent purchases', () => {
  it('repeating a buy with the same operation key buys once', async () => {
    const customerId = await stack.readyCustomer();
    const operationKey = `order-${randomUUID()}`;
    const first = await stack.commerce.buy(customerId, [line], { operationKey });
    const second = await stack.commerce.buy(customerId, [line], { operationKey });
    expect(second).toEqual(first);
    expect(await stack.commerce.listSubscriptions(customerId)).toHaveLength(1);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(3);
    const other = await stack.commerce.buy(customerId, [line], { operationKey: `order-${randomUUID()}` });
    expect(other.orders[0]?.id).not.toBe(first.orders[0]?.id);
    expect(await stack.commerce.listSubscriptions(customerId)).toHaveLength(2);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(6);
  });

  it('a checkout whose answer is dropped after the order was placed is retried and buys once', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({ kind: 'dropAfterCommit', match: { pathIncludes: '/checkout', customerId } });
    const retries: string[] = [];
    const commerce = createPartnerCenterCommerce({
      credential: stack.credential,
      baseUrl: stack.partnerCenter.baseUrl,
      retry: { baseDelayInMs: 10, onRetry: (error) => retries.push(error.code) },
    });
    const purchase = await commerce.buy(customerId, [line], { operationKey: `order-${randomUUID()}` });
    expect(retries).toEqual(['Unavailable']);
    const subscriptions = await commerce.listSubscriptions(customerId);
    expect(subscriptions).toHaveLength(1);
    expect(purchase.orders[0]?.lines[0]?.subscriptionId).toBe(subscriptions[0]?.id);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(3);
  });

  it('a checkout that stalls past the client timeout after placing the order is retried and buys once', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({
      kind: 'stallAfterCommit',
      stallInMs: 1500,
      match: { pathIncludes: '/checkout', customerId },
    });
    const retries: string[] = [];
    const commerce = createPartnerCenterCommerce({
      credential: stack.credential,
      baseUrl: stack.partnerCenter.baseUrl,
      timeoutInMs: 400,
      retry: { baseDelayInMs: 10, onRetry: (error) => retries.push(error.message) },
    });
    await commerce.buy(customerId, [line], { operationKey: `order-${randomUUID()}` });
    expect(retries).toHaveLength(1);
    expect(retries[0]).toContain('timed out');
    expect(await commerce.listSubscriptions(customerId)).toHaveLength(1);
  });

  it('a seat change whose answer is lost is not applied twice', async () => {
    const customerId = await stack.readyCustomer();
    const purchase = await stack.commerce.buy(customerId, [line], { operationKey: `order-${randomUUID()}` });
    const subscriptionId = purchase.orders[0]?.lines[0]?.subscriptionId ?? '';
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'PATCH', customerId } });
    const grown = await stack.commerce.changeQuantity(customerId, subscriptionId, 7, {
      operationKey: `grow-${subscriptionId}`,
    });
    expect(grown.quantity).toBe(7);
    const after = await stack.commerce.getSubscription(customerId, subscriptionId);
    expect(after.quantity).toBe(7);
    expect(after.refundableSeats.map((seats) => seats.quantity).sort()).toEqual([3, 4]);
  });

  it('a checkout with a failed order group reports it, and repeating the buy orders only that group', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({ kind: 'orderError', groups: 1, match: { customerId } });
    const lines = [
      line,
      { catalogItemId: offers.exchangePlan1, quantity: 20, termDuration: 'P1Y', billingCycle: 'annual' },
    ] as const;
    const operationKey = `order-${randomUUID()}`;
    const partial = await stack.commerce.buy(customerId, [...lines], { operationKey });
    expect(partial.errors).toEqual([
      { orderGroupId: '0', code: '4018', description: 'Unable to process this order' },
    ]);
    expect(partial.orders.map((order) => order.lines[0]?.catalogItemId)).toEqual([offers.exchangePlan1]);
    expect(await stack.commerce.listSubscriptions(customerId)).toHaveLength(1);

    const completed = await stack.commerce.buy(customerId, [...lines], { operationKey });
    expect(completed.errors).toEqual([]);
    expect(completed.orders.map((order) => order.lines[0]?.catalogItemId).sort()).toEqual(
      [offers.e3, offers.exchangePlan1].sort(),
    );
    expect(completed.orders).toContainEqual(partial.orders[0]);
    const subscriptions = await stack.commerce.listSubscriptions(customerId);
    expect(subscriptions.map((subscription) => subscription.catalogItemId).sort()).toEqual(
      [offers.e3, offers.exchangePlan1].sort(),
    );
    const seats = await stack.enabledSeats(customerId);
    expect([seats.get(graphSkuIds.e3), seats.get(graphSkuIds.exchangePlan1)]).toEqual([3, 20]);
    // And once complete, the same buy is answered from memory.
    expect(await stack.commerce.buy(customerId, [...lines], { operationKey })).toEqual(completed);
  });

  it('creating a customer twice with the same operation key creates one tenant', async () => {
    const input = stack.newCustomer();
    const operationKey = `customer-${randomUUID()}`;
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'POST', pathIncludes: '/v1/customers' } });
    const first = await stack.commerce.createCustomer(input, { operationKey });
    const again = await stack.commerce.createCustomer(input, { operationKey });
    expect(again.customer.id).toBe(first.customer.id);
    expect(first.adminCredentials?.userName).toBe('admin');
    const all: string[] = [];
    for await (const customer of stack.commerce.listCustomers({ pageSize: 50 })) all.push(customer.domain);
    expect(all.filter((domain) => domain === input.domain)).toHaveLength(1);
  });
});

describe('throttling and outages', () => {
  it('honours Retry-After on 429 and then succeeds', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({
      kind: 'throttle',
      retryAfterInSeconds: 1,
      match: { customerId, pathIncludes: '/subscriptions' },
    });
    const waits: number[] = [];
    const commerce = createPartnerCenterCommerce({
      credential: stack.credential,
      baseUrl: stack.partnerCenter.baseUrl,
      retry: {
        onRetry: (error, _attempt, delayInMs) => waits.push(error.retryAfterInSeconds ?? -1, delayInMs),
      },
    });
    const started = performance.now();
    expect(await commerce.listSubscriptions(customerId)).toEqual([]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(waits).toEqual([1, 1000]);
  });

  it('throttling is per partner and customer: another customer is not throttled', async () => {
    const throttled = await stack.readyCustomer();
    const free = await stack.readyCustomer();
    await stack.fault({
      kind: 'throttle',
      retryAfterInSeconds: 30,
      count: 5,
      match: { customerId: throttled },
    });
    const commerce = createPartnerCenterCommerce({
      credential: stack.credential,
      baseUrl: stack.partnerCenter.baseUrl,
      retry: { maxRetryAfterInMs: 5000 },
    });
    expect(await commerce.listSubscriptions(free)).toEqual([]);
    const error: unknown = await commerce.listSubscriptions(throttled).catch((thrown: unknown) => thrown);
    expect(isAppError(error, 'Throttled')).toBe(true);
    expect(isAppError(error) && error.retryAfterInSeconds).toBe(30);
  });

  it('throttles automatically per partner and customer once the per-minute limit is used up', async () => {
    const customerId = await stack.readyCustomer();
    const setLimit = async (limit: number | null) =>
      fetch(`${stack.partnerCenter.adminUrl}/limits`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ subscriptionRequestsPerMinute: limit }),
      });
    expect((await setLimit(3)).status).toBe(200);
    try {
      const commerce = createPartnerCenterCommerce({
        credential: stack.credential,
        baseUrl: stack.partnerCenter.baseUrl,
        retry: { maxRetryAfterInMs: 100 },
      });
      for (let call = 0; call < 3; call += 1)
        expect(await commerce.listSubscriptions(customerId)).toEqual([]);
      const error: unknown = await commerce.listSubscriptions(customerId).catch((thrown: unknown) => thrown);
      expect(isAppError(error, 'Throttled')).toBe(true);
      expect(isAppError(error) && (error.retryAfterInSeconds ?? 0) > 0).toBe(true);
      // Other resources of the same customer are not part of the Subscription limit.
      expect((await commerce.getCustomer(customerId)).id).toBe(customerId);
    } finally {
      await setLimit(500);
    }
  });

  it('retries a 503 and reports Unavailable when it persists', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({ kind: 'error', status: 503, count: 1, match: { customerId } });
    expect(await stack.commerce.listSubscriptions(customerId)).toEqual([]);
    await stack.fault({ kind: 'error', status: 500, count: 10, match: { customerId } });
    const error: unknown = await stack.commerce
      .listSubscriptions(customerId)
      .catch((thrown: unknown) => thrown);
    expect(isAppError(error, 'Unavailable')).toBe(true);
  });
});

describe('agreements and access', () => {
  it('checkout without an MCA attestation fails as AgreementMissing and buys nothing', async () => {
    const created = await stack.commerce.createCustomer(stack.newCustomer(), {
      operationKey: `c-${randomUUID()}`,
    });
    const error: unknown = await stack.commerce
      .buy(created.customer.id, [line], { operationKey: `order-${randomUUID()}` })
      .catch((thrown: unknown) => thrown);
    expect(isAppError(error, 'AgreementMissing')).toBe(true);
    expect(await stack.commerce.listSubscriptions(created.customer.id)).toEqual([]);
  });

  it('a credential the identity platform refuses is Unauthenticated, not retried', async () => {
    const retries: string[] = [];
    const commerce = createPartnerCenterCommerce({
      credential: new ClientSecretCredential(stack.partnerTenantId, stack.clientId, 'wrong-secret', {
        authorityHost: stack.graph.authorityHost,
        disableInstanceDiscovery: true,
      }),
      baseUrl: stack.partnerCenter.baseUrl,
      retry: { onRetry: (error) => retries.push(error.code) },
    });
    const error: unknown = await commerce.listOffers().catch((thrown: unknown) => thrown);
    expect(isAppError(error, 'Unauthenticated')).toBe(true);
    expect(retries).toEqual([]);
  });

  it('answers 401 without a token and 403 for a token of another audience', async () => {
    const url = `${stack.partnerCenter.baseUrl}/v1/customers?size=10`;
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: 800001, source: 'PartnerFD' });
    const forged = await fetch(url, { headers: { authorization: 'Bearer not-a-jwt' } });
    expect(forged.status).toBe(401);
    const graphToken = await stack.token('https://graph.microsoft.com/.default');
    const wrongAudience = await fetch(url, { headers: { authorization: `Bearer ${graphToken}` } });
    expect(wrongAudience.status).toBe(403);
  });
});
