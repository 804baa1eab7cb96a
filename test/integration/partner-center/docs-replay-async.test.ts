import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * Asynchronous answers documented by Partner Center (kvamseek/partner-center developer/*.md), switched
 * on per test with the peer's fault API and completed by moving its virtual clock:
 * checkout-a-cart.md (subscription ids appear only once provisioned; order status pending →
 * completed, order-resources.md OrderStatus; get-an-order-by-id.md) and
 * change-the-quantity-of-a-subscription.md (202 with a Location header; poll the subscription).
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.stop();
});

const orderSchema = z
  .object({
    id: z.string(),
    status: z.string(),
    lineItems: z.array(z.object({ offerId: z.string(), subscriptionId: z.string().optional() }).loose()),
  })
  .loose();
const checkoutSchema = z.object({ orders: z.array(orderSchema) }).loose();

async function cartFor(customerId: string, quantity: number): Promise<string> {
  const cart = await stack.call('POST', `/v1/customers/${customerId}/carts`, {
    body: {
      lineItems: [{ catalogItemId: offers.e3, quantity, billingCycle: 'monthly', termDuration: 'P1Y' }],
    },
  });
  return z.object({ id: z.string() }).parse(cart.body).id;
}

describe('asynchronous provisioning (checkout-a-cart.md)', () => {
  it('the order comes back pending without subscription ids; once provisioned it is completed and the subscription exists', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({ kind: 'asyncProvisioning', delay: 'PT10M', match: { customerId } });
    const cartId = await cartFor(customerId, 4);
    const checkout = await stack.call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`);
    expect(checkout.status).toBe(201);
    const [order] = checkoutSchema.parse(checkout.body).orders;
    expect(order?.status).toBe('pending');
    expect(order?.lineItems[0]?.offerId).toBe(offers.e3);
    expect(order?.lineItems[0]?.subscriptionId).toBeUndefined();
    const orderId = order?.id ?? '';

    // Nothing exists yet: no subscription in Partner Center, no seats in Graph.
    expect((await stack.call('GET', `/v1/customers/${customerId}/subscriptions`)).body.totalCount).toBe(0);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBeUndefined();
    const stillPending = orderSchema.parse(
      (await stack.call('GET', `/v1/customers/${customerId}/orders/${orderId}`)).body,
    );
    expect(stillPending.status).toBe('pending');

    const provisioning = await stack.call(
      'GET',
      `/v1/customers/${customerId}/orders/${orderId}/provisioningstatus`,
    );
    expect(provisioning.body).toMatchObject({
      totalCount: 1,
      items: [
        {
          lineItemNumber: 0,
          status: 'PrefulfillmentPending',
          quantityProvisioningInformation: [{ quantity: 4, status: 'PrefulfillmentPending' }],
        },
      ],
      attributes: { objectType: 'Collection' },
    });

    await stack.advance({ hours: 0.2 });
    expect(
      (await stack.call('GET', `/v1/customers/${customerId}/orders/${orderId}/provisioningstatus`)).body,
    ).toMatchObject({
      items: [{ status: 'fulfilled', quantityProvisioningInformation: [{ status: 'fulfilled' }] }],
    });
    const done = orderSchema.parse(
      (await stack.call('GET', `/v1/customers/${customerId}/orders/${orderId}`)).body,
    );
    expect(done.status).toBe('completed');
    const subscriptionId = done.lineItems[0]?.subscriptionId;
    expect(subscriptionId).toEqual(expect.any(String));
    const subscription = await stack.call(
      'GET',
      `/v1/customers/${customerId}/subscriptions/${subscriptionId}`,
    );
    expect(subscription.body).toMatchObject({ id: subscriptionId, quantity: 4, orderId, status: 'active' });
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(4);

    // A second checkout of the cart re-iterates the first answer (checkout-a-cart.md).
    const again = await stack.call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`);
    expect(checkoutSchema.parse(again.body).orders.map((o) => o.id)).toEqual([orderId]);
  });
});

describe('slow PATCH (change-the-quantity-of-a-subscription.md)', () => {
  it('answers 202 with Location; the subscription shows the change once it is applied; another PATCH meanwhile is 409/800082', async () => {
    const customerId = await stack.readyCustomer();
    const cartId = await cartFor(customerId, 3);
    const [order] = checkoutSchema.parse(
      (await stack.call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`)).body,
    ).orders;
    const subscriptionId = order?.lineItems[0]?.subscriptionId ?? '';
    const path = `/v1/customers/${customerId}/subscriptions/${subscriptionId}`;
    const current = (await stack.call('GET', path)).body;

    await stack.fault({ kind: 'slowPatch', delay: 'PT2M', match: { customerId } });
    const accepted = await stack.call('PATCH', path, { body: { ...current, quantity: 7 } });
    expect(accepted.status).toBe(202);
    expect(accepted.headers.get('location')).toBe(path);
    expect((await stack.call('GET', path)).body.quantity).toBe(3);
    const meanwhile = await stack.call('PATCH', path, { body: { ...current, quantity: 8 } });
    expect(meanwhile.status).toBe(409);
    expect(meanwhile.body).toMatchObject({ code: 800082, source: 'PartnerFD' });

    await stack.advance({ hours: 1 / 30 });
    expect((await stack.call('GET', path)).body.quantity).toBe(7);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(7);
  });

  it('a slow PATCH is still checked at once: a refused reduction is 400/800090, not 202', async () => {
    const customerId = await stack.readyCustomer();
    const cartId = await cartFor(customerId, 3);
    const [order] = checkoutSchema.parse(
      (await stack.call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`)).body,
    ).orders;
    const path = `/v1/customers/${customerId}/subscriptions/${order?.lineItems[0]?.subscriptionId ?? ''}`;
    await stack.advance({ days: 8 });
    const current = (await stack.call('GET', path)).body;
    await stack.fault({ kind: 'slowPatch', match: { customerId } });
    const refused = await stack.call('PATCH', path, { body: { ...current, quantity: 1 } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 800090 });
  });
});
