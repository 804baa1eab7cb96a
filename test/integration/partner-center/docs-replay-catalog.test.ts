import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { offers, startStack, type Stack } from './stack.js';

/**
 * Catalog examples of Partner Center's REST reference (kvamseek/partner-center developer/*.md)
 * replayed against the peer: get-a-list-of-products.md, get-a-product-by-id.md,
 * get-a-list-of-skus-for-a-product.md, get-a-sku-by-id.md, get-a-list-of-availabilities-for-a-sku.md,
 * get-an-availability-by-id.md, and the catalog-id warning of product-resources.md with
 * error-codes.md 400019.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.stop();
});

const anyString: unknown = expect.any(String);
const anyArray: unknown = expect.any(Array);
const errorShape = (code: number) => ({ code, description: anyString, data: anyArray, source: 'PartnerFD' });

describe('products, SKUs and availabilities', () => {
  it('lists new commerce products under targetView=OnlineServices with productType OnlineServicesNCE', async () => {
    const answer = await stack.call('GET', '/v1/products?country=US&targetView=OnlineServices');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      totalCount: 3,
      links: { self: { uri: '/products?country=US&targetView=OnlineServices', method: 'GET' } },
      attributes: { objectType: 'Collection' },
    });
    const items = z.array(z.object({ id: z.string() }).loose()).parse(answer.body.items);
    expect(items[0]).toMatchObject({
      productType: { id: 'OnlineServicesNCE', displayName: 'OnlineServicesNCE' },
      isMicrosoftProduct: true,
      links: { skus: { uri: `/products/${items[0]?.id}/skus?country=US` } },
    });
    const azure = await stack.call('GET', '/v1/products?country=US&targetView=MicrosoftAzure');
    expect(azure.body.totalCount).toBe(0);
    expect((await stack.call('GET', '/v1/products?targetView=OnlineServices')).status).toBe(400);
  });

  it('reads a product, its SKUs, one SKU, its availabilities and one availability; unknown ids are 400013/400018/400019', async () => {
    const [productId, skuId, availabilityId] = offers.e3.split(':');
    expect((await stack.call('GET', `/v1/products/${productId}?country=US`)).body).toMatchObject({
      id: productId,
      title: 'Microsoft 365 E3',
    });
    const skus = await stack.call('GET', `/v1/products/${productId}/skus?country=US`);
    expect(skus.body).toMatchObject({ totalCount: 1, items: [{ id: skuId, productId }] });
    const sku = await stack.call('GET', `/v1/products/${productId}/skus/${skuId}?country=US`);
    expect(sku.status).toBe(200);
    expect(sku.body).toMatchObject({
      id: skuId,
      productId,
      minimumQuantity: 1,
      maximumQuantity: 300,
      supportedBillingCycles: anyArray,
      links: { availabilities: { uri: `/products/${productId}/skus/${skuId}/availabilities?country=US` } },
    });
    const list = await stack.call('GET', `/v1/products/${productId}/skus/${skuId}/availabilities?country=US`);
    expect(list.body).toMatchObject({ items: [{ id: availabilityId, catalogItemId: offers.e3 }] });
    const one = await stack.call(
      'GET',
      `/v1/products/${productId}/skus/${skuId}/availabilities/${availabilityId}?country=US`,
    );
    expect(one.body).toMatchObject({
      id: availabilityId,
      productId,
      skuId,
      catalogItemId: offers.e3,
      defaultCurrency: { code: 'USD', symbol: '$' },
      segment: 'commercial',
      country: 'US',
      isPurchasable: true,
      terms: [
        { duration: 'P1M', billingCycle: 'monthly' },
        ...(Array(4).fill(expect.anything()) as unknown[]),
      ],
    });
    expect((await stack.call('GET', '/v1/products/NOPE?country=US')).body).toMatchObject(errorShape(400013));
    expect((await stack.call('GET', `/v1/products/${productId}/skus/9999?country=US`)).body).toMatchObject(
      errorShape(400018),
    );
    const missing = await stack.call(
      'GET',
      `/v1/products/${productId}/skus/${skuId}/availabilities/NOPE?country=US`,
    );
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject(errorShape(400019));
  });
});

describe('catalog ids change over time (product-resources.md)', () => {
  it('after an availability gets a new id, the old id cannot be bought (400019) but its subscriptions stay readable', async () => {
    const customerId = await stack.readyCustomer();
    const line = {
      catalogItemId: offers.exchangePlan1,
      quantity: 2,
      billingCycle: 'monthly',
      termDuration: 'P1M',
    };
    const bought = await stack.call('POST', `/v1/customers/${customerId}/carts`, {
      body: { lineItems: [line] },
    });
    const cartId = z.object({ id: z.string() }).parse(bought.body).id;
    const checkout = await stack.call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`);
    expect(checkout.status).toBe(201);
    const staleCart = await stack.call('POST', `/v1/customers/${customerId}/carts`, {
      body: { lineItems: [line] },
    });
    const staleCartId = z.object({ id: z.string() }).parse(staleCart.body).id;

    const rotated = z
      .object({ previous: z.string(), current: z.string() })
      .parse(
        await stack.admin('POST', '/catalog/rotate-availability', { catalogItemId: offers.exchangePlan1 }),
      );
    expect(rotated.previous).toBe(offers.exchangePlan1);
    expect(rotated.current).not.toBe(offers.exchangePlan1);

    const [productId, skuId] = offers.exchangePlan1.split(':');
    const list = await stack.call('GET', `/v1/products/${productId}/skus/${skuId}/availabilities?country=US`);
    expect(list.body).toMatchObject({ items: [{ catalogItemId: rotated.current }] });

    const newCart = await stack.call('POST', `/v1/customers/${customerId}/carts`, {
      body: { lineItems: [line] },
    });
    expect(newCart.status).toBe(404);
    expect(newCart.body).toMatchObject(errorShape(400019));
    // A cart made before the change fails at checkout and orders nothing.
    const staleCheckout = await stack.call(
      'POST',
      `/v1/customers/${customerId}/carts/${staleCartId}/checkout`,
    );
    expect(staleCheckout.status).toBe(404);
    expect(staleCheckout.body).toMatchObject(errorShape(400019));
    const fresh = await stack.call('POST', `/v1/customers/${customerId}/carts`, {
      body: { lineItems: [{ ...line, catalogItemId: rotated.current }] },
    });
    expect(fresh.status).toBe(201);

    const subscriptions = await stack.call('GET', `/v1/customers/${customerId}/subscriptions`);
    expect(subscriptions.body).toMatchObject({
      totalCount: 1,
      items: [{ offerId: offers.exchangePlan1, quantity: 2 }],
    });
  });
});
