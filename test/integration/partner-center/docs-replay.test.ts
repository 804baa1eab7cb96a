import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ClientSecretCredential } from '@azure/identity';
import { createPartnerCenterCommerce } from '../../../shared/adapters/partner-center/commerce.js';
import { isAppError } from '../../../shared/errors.js';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * The request examples of Partner Center's REST reference (kvamseek/partner-center developer/*.md),
 * replayed over HTTP against the peer: status codes and response shapes, not literal ids. Catalog ids
 * are the peer's demo catalog; domains are made unique per run.
 */
let stack: Stack;
const otherPartner = {
  tenantId: randomUUID(),
  clientId: randomUUID(),
  clientSecret: `other-${randomUUID()}`,
};

beforeAll(async () => {
  stack = await startStack({
    extraPartners: [
      {
        tenantId: otherPartner.tenantId,
        name: 'Other Partner',
        apps: [{ clientId: otherPartner.clientId, clientSecret: otherPartner.clientSecret }],
      },
    ],
  });
});
afterAll(async () => {
  await stack.stop();
});

// Asymmetric matchers are typed `any`; naming them once keeps the assertions typed.
const anyString: unknown = expect.any(String);
const anyArray: unknown = expect.any(Array);
const anyObject: unknown = expect.any(Object);
const anything: unknown = expect.anything();
const containing = (value: Record<string, unknown>): unknown => expect.objectContaining(value);

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  options: { body?: unknown; requestId?: string; headers?: Record<string, string>; token?: string } = {},
): Promise<Answer> {
  const response = await fetch(`${stack.partnerCenter.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${options.token ?? (await stack.token())}`,
      accept: 'application/json',
      'ms-requestid': options.requestId ?? randomUUID(),
      'ms-correlationid': randomUUID(),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

const errorShape = (code: number) => ({
  code,
  description: anyString,
  data: anyArray,
  source: 'PartnerFD',
});

/** create-a-customer.md request example (PascalCase, as printed). */
function documentedCustomer(prefix: string, country = 'US', extra: Record<string, unknown> = {}) {
  return {
    enableGDAPByDefault: false,
    CompanyProfile: { Domain: `${prefix}.onmicrosoft.com`, ...extra },
    BillingProfile: {
      Culture: 'EN-US',
      Email: 'test@outlook.com',
      Language: 'en',
      CompanyName: 'test company',
      DefaultAddress: {
        FirstName: 'Test',
        LastName: 'Test',
        AddressLine1: 'One Microsoft Way',
        City: 'Redmond',
        State: 'WA',
        PostalCode: '98052',
        Country: country,
      },
    },
  };
}

const prefix = (): string => `d${randomUUID().replaceAll('-', '').slice(0, 12)}`;

async function createdCustomer(): Promise<string> {
  const answer = await call('POST', '/v1/customers', { body: documentedCustomer(prefix()) });
  expect(answer.status).toBe(201);
  return z.object({ id: z.string() }).parse(answer.body).id;
}

async function withAgreement(customerId: string): Promise<void> {
  const answer = await call('POST', `/v1/customers/${customerId}/agreements`, {
    body: {
      primaryContact: {
        firstName: 'Tania',
        lastName: 'Carr',
        email: 'someone@example.com',
        phoneNumber: '1234567890',
      },
      templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
      dateAgreed: '2018-06-14T00:00:00.000Z',
      type: 'MicrosoftCustomerAgreement',
    },
  });
  expect(answer.status).toBe(201);
}

/** create-a-cart.md NCE request sample, with the demo catalog's ids. */
const documentedCart = {
  lineItems: [
    {
      id: 0,
      catalogItemId: offers.businessPremium,
      quantity: 1,
      billingCycle: 'monthly',
      termDuration: 'P1M',
      provisioningContext: {},
    },
    { id: 1, catalogItemId: offers.e3, quantity: 2, billingCycle: 'monthly', termDuration: 'P1Y' },
  ],
};

describe('create a customer (create-a-customer.md)', () => {
  it('201 with the Customer resource, one-time credentials and echoed MS-* headers; a replay creates nothing new', async () => {
    const domainPrefix = prefix();
    const requestId = randomUUID();
    const answer = await call('POST', '/v1/customers', { body: documentedCustomer(domainPrefix), requestId });
    expect(answer.status).toBe(201);
    expect(answer.headers.get('ms-requestid')).toBe(requestId);
    expect(answer.headers.get('ms-correlationid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.body).toMatchObject({
      id: anyString,
      commerceId: anyString,
      companyProfile: {
        domain: `${domainPrefix}.onmicrosoft.com`,
        attributes: { objectType: 'CustomerCompanyProfile' },
      },
      billingProfile: {
        email: 'test@outlook.com',
        culture: 'EN-US',
        language: 'en',
        companyName: 'test company',
        defaultAddress: { country: 'US', city: 'Redmond', postalCode: '98052' },
        attributes: { objectType: 'CustomerBillingProfile' },
      },
      userCredentials: { userName: 'admin', password: anyString },
      attributes: { objectType: 'Customer' },
    });
    const id = z.object({ id: z.string() }).parse(answer.body).id;
    expect((answer.body.companyProfile as { tenantId: string }).tenantId).toBe(id);

    const replay = await call('POST', '/v1/customers', { body: documentedCustomer(domainPrefix), requestId });
    expect(replay.status).toBe(201);
    expect(replay.body).toEqual(answer.body);

    // The tenant exists in Graph with its initial domain and admin user, and the partner's app has consent there.
    const tenant = await fetch(`${stack.graph.adminUrl}/tenants/${id}`).then(
      async (r) => (await r.json()) as Record<string, unknown>,
    );
    expect(tenant).toMatchObject({
      domains: [containing({ id: `${domainPrefix}.onmicrosoft.com`, isInitial: true, isDefault: true })],
      users: [containing({ userPrincipalName: `admin@${domainPrefix}.onmicrosoft.com` })],
    });
    expect((await stack.enabledSeats(id)).size).toBe(0);

    expect((await call('HEAD', `/v1/domains/${domainPrefix}.onmicrosoft.com`)).status).toBe(200);
    expect((await call('HEAD', `/v1/domains/${prefix()}.onmicrosoft.com`)).status).toBe(404);
    const taken = await call('POST', '/v1/customers', { body: documentedCustomer(domainPrefix) });
    expect(taken.status).toBe(400);
  });

  it('validates the billing profile and the registration-number countries as documented', async () => {
    const noEmail = documentedCustomer(prefix());
    const { Email: _email, ...billing } = noEmail.BillingProfile;
    const missing = await call('POST', '/v1/customers', { body: { ...noEmail, BillingProfile: billing } });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject(errorShape(800002));
    expect(
      (await call('POST', '/v1/customers', { body: documentedCustomer(prefix(), 'HU') })).body,
    ).toMatchObject(errorShape(600049));
    expect(
      (
        await call('POST', '/v1/customers', {
          body: documentedCustomer(prefix(), 'US', { OrganizationRegistrationNumber: '123456' }),
        })
      ).body,
    ).toMatchObject(errorShape(600002));
    expect(
      (
        await call('POST', '/v1/customers', {
          body: documentedCustomer(prefix(), 'HU', { OrganizationRegistrationNumber: '1234567' }),
        })
      ).body,
    ).toMatchObject(errorShape(600051));
  });
});

describe('list customers (get-a-list-of-customers.md)', () => {
  it('pages with size, links.next and the MS-ContinuationToken header', async () => {
    for (let index = 0; index < 3; index += 1) await createdCustomer();
    const first = await call('GET', '/v1/customers?size=2');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      totalCount: 2,
      items: anyArray,
      attributes: { objectType: 'Collection' },
    });
    const next = z
      .object({
        links: z.object({
          next: z.object({
            uri: z.string(),
            headers: z.array(z.object({ key: z.string(), value: z.string() })),
          }),
        }),
      })
      .parse(first.body).links.next;
    expect(next.headers[0]?.key).toBe('MS-ContinuationToken');
    const second = await call('GET', next.uri, {
      headers: { 'MS-ContinuationToken': next.headers[0]?.value ?? '' },
    });
    expect(second.status).toBe(200);
    const ids = (page: Answer): string[] => (page.body.items as { id: string }[]).map((item) => item.id);
    expect(ids(second).some((id) => ids(first).includes(id))).toBe(false);

    const viaAdapter: string[] = [];
    for await (const customer of stack.commerce.listCustomers({ pageSize: 2 })) viaAdapter.push(customer.id);
    expect(new Set(viaAdapter).size).toBe(viaAdapter.length);
    expect(viaAdapter).toEqual(expect.arrayContaining([...ids(first), ...ids(second)]));
  });
});

describe('indirect resellers (create-a-customer-for-an-indirect-reseller.md, relationships)', () => {
  it('lists resellers, creates their customers and filters by reseller', async () => {
    const relationships = await call(
      'GET',
      '/v1/relationships?relationship_type=IsIndirectCloudSolutionProviderOf',
    );
    expect(relationships.status).toBe(200);
    const reseller = z
      .object({
        items: z.array(
          z
            .object({ id: z.string(), relationshipType: z.literal('IsIndirectCloudSolutionProviderOf') })
            .loose(),
        ),
      })
      .parse(relationships.body).items[0];
    if (reseller === undefined) throw new Error('no reseller');
    const created = await stack.commerce.createCustomer(
      stack.newCustomer({ associatedPartnerId: reseller.id }),
      {
        operationKey: `reseller-customer-${randomUUID()}`,
      },
    );
    expect(created.customer.associatedPartnerId).toBe(reseller.id);
    const mine: string[] = [];
    for await (const customer of stack.commerce.listCustomers({ indirectResellerId: reseller.id }))
      mine.push(customer.id);
    expect(mine).toEqual([created.customer.id]);
    const unknown = await stack.commerce
      .createCustomer(stack.newCustomer({ associatedPartnerId: randomUUID() }), {
        operationKey: `bad-reseller-${randomUUID()}`,
      })
      .catch((thrown: unknown) => thrown);
    expect(isAppError(unknown, 'Validation')).toBe(true);
  });
});

describe('MCA attestation (confirm-customer-consent-customer-agreement.md)', () => {
  it('201 with the Agreement; the same contact again is 600061', async () => {
    const customerId = await createdCustomer();
    const body = {
      primaryContact: {
        firstName: 'Tania',
        lastName: 'Carr',
        email: 'someone@example.com',
        phoneNumber: '1234567890',
      },
      templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
      dateAgreed: '2018-06-14T00:00:00.000Z',
      type: 'MicrosoftCustomerAgreement',
    };
    const answer = await call('POST', `/v1/customers/${customerId}/agreements`, { body });
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({ userId: anyString, ...body });
    const again = await call('POST', `/v1/customers/${customerId}/agreements`, { body });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 600061 });
  });
});

describe('carts and checkout (create-a-cart.md, update-a-cart.md, checkout-a-cart.md)', () => {
  it('creates, updates and checks out a cart; a second checkout returns the first result', async () => {
    const customerId = await createdCustomer();
    await withAgreement(customerId);
    const cart = await call('POST', `/v1/customers/${customerId}/carts`, { body: documentedCart });
    expect(cart.status).toBe(201);
    expect(cart.body).toMatchObject({
      id: anyString,
      creationTimestamp: anyString,
      expirationTimestamp: anyString,
      status: 'Active',
      lineItems: [
        {
          id: 0,
          catalogItemId: offers.businessPremium,
          quantity: 1,
          billingCycle: 'monthly',
          termDuration: 'P1M',
          orderGroup: '0',
        },
        {
          id: 1,
          catalogItemId: offers.e3,
          quantity: 2,
          billingCycle: 'monthly',
          termDuration: 'P1Y',
          orderGroup: '0',
        },
      ],
      attributes: { objectType: 'Cart' },
    });
    const cartBody = z
      .object({ id: z.string(), creationTimestamp: z.string(), expirationTimestamp: z.string() })
      .parse(cart.body);
    expect(Date.parse(cartBody.expirationTimestamp) - Date.parse(cartBody.creationTimestamp)).toBe(
      7 * 24 * 3_600_000,
    );

    const updated = await call('PUT', `/v1/customers/${customerId}/carts/${cartBody.id}`, {
      body: { lineItems: [{ ...documentedCart.lineItems[1], quantity: 4 }] },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ lineItems: [{ catalogItemId: offers.e3, quantity: 4 }] });

    const checkout = await call('POST', `/v1/customers/${customerId}/carts/${cartBody.id}/checkout`);
    expect(checkout.status).toBe(201);
    expect(checkout.body).toMatchObject({
      orders: [
        {
          id: anyString,
          referenceCustomerId: customerId,
          billingCycle: 'monthly',
          currencyCode: 'USD',
          lineItems: [
            {
              lineItemNumber: 0,
              offerId: offers.e3,
              subscriptionId: anyString,
              termDuration: 'P1Y',
              transactionType: 'New',
              quantity: 4,
              pricing: { listPrice: 36, extendedPrice: 144 },
              links: {
                product: anyObject,
                sku: anyObject,
                availability: anyObject,
              },
            },
          ],
          transactionType: 'UserPurchase',
          links: {
            self: anyObject,
            provisioningStatus: anyObject,
            patchOperation: anyObject,
          },
          attributes: { objectType: 'Order' },
        },
      ],
      orderErrors: [],
    });
    const again = await call('POST', `/v1/customers/${customerId}/carts/${cartBody.id}/checkout`);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(checkout.body);
    expect(
      (await call('PUT', `/v1/customers/${customerId}/carts/${cartBody.id}`, { body: documentedCart })).body,
    ).toMatchObject(errorShape(800065));

    const orderId =
      z.object({ orders: z.array(z.object({ id: z.string() })) }).parse(checkout.body).orders[0]?.id ?? '';
    const orders = await call('GET', `/v1/customers/${customerId}/orders`);
    expect(orders.body).toMatchObject({ totalCount: 1, items: [{ id: orderId }] });
    expect((await call('GET', `/v1/customers/${customerId}/orders/${orderId}`)).body).toMatchObject({
      id: orderId,
      status: 'completed',
    });
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(4);
  });

  it('refuses invalid lines with the documented codes', async () => {
    const customerId = await createdCustomer();
    const line = documentedCart.lineItems[1] ?? {};
    const bad = async (change: Record<string, unknown>) =>
      (
        await call('POST', `/v1/customers/${customerId}/carts`, {
          body: { lineItems: [{ ...line, ...change }] },
        })
      ).body;
    expect(await bad({ catalogItemId: 'CFQ7TTC0XXXX:0001:CFQ7TTC0YYYY' })).toMatchObject(errorShape(400019));
    expect(await bad({ quantity: 0 })).toMatchObject(errorShape(900275));
    expect(await bad({ quantity: 301 })).toMatchObject(errorShape(900275));
    expect(await bad({ termDuration: 'P2Y' })).toMatchObject(errorShape(800121));
    expect(await bad({ termDuration: 'P1M', billingCycle: 'annual' })).toMatchObject(errorShape(900270));
    expect(await bad({ billingCycle: 'weekly' })).toMatchObject(errorShape(900269));
    expect(
      (await call('POST', `/v1/customers/${customerId}/carts`, { body: { lineItems: [] } })).body,
    ).toMatchObject(errorShape(800002));
  });

  it('a cart expires 7 days after creation', async () => {
    const customerId = await stack.readyCustomer();
    const cart = await call('POST', `/v1/customers/${customerId}/carts`, { body: documentedCart });
    const cartId = z.object({ id: z.string() }).parse(cart.body).id;
    await stack.advance({ days: 7, hours: 1 });
    const checkout = await call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`);
    expect(checkout.status).toBe(400);
    expect(checkout.body).toMatchObject(errorShape(800009));
    expect(await stack.commerce.listSubscriptions(customerId)).toEqual([]);
  });

  it('checkout without MCA is 403/13605', async () => {
    const customerId = await createdCustomer();
    const cart = await call('POST', `/v1/customers/${customerId}/carts`, { body: documentedCart });
    const cartId = z.object({ id: z.string() }).parse(cart.body).id;
    const checkout = await call('POST', `/v1/customers/${customerId}/carts/${cartId}/checkout`);
    expect(checkout.status).toBe(403);
    expect(checkout.body).toMatchObject(errorShape(13605));
  });
});

describe('subscriptions (get-a-subscription-by-id.md, change-the-quantity-of-a-subscription.md, create-scheduled-changes.md)', () => {
  async function boughtSubscription(): Promise<{ customerId: string; subscriptionId: string }> {
    const customerId = await stack.readyCustomer();
    const purchase = await stack.commerce.buy(
      customerId,
      [{ catalogItemId: offers.e3, quantity: 10, termDuration: 'P1Y', billingCycle: 'monthly' }],
      { operationKey: `buy-${randomUUID()}` },
    );
    return { customerId, subscriptionId: purchase.orders[0]?.lines[0]?.subscriptionId ?? '' };
  }

  it('returns the new commerce subscription shape; unknown ids are 404/20003', async () => {
    const { customerId, subscriptionId } = await boughtSubscription();
    const answer = await call('GET', `/v1/customers/${customerId}/subscriptions/${subscriptionId}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      id: subscriptionId,
      offerId: offers.e3,
      offerName: 'Microsoft 365 E3',
      productType: { id: 'OnlineServicesNCE', displayName: 'OnlineServicesNCE' },
      quantity: 10,
      unitType: 'Licenses',
      creationDate: anyString,
      effectiveStartDate: anyString,
      commitmentEndDate: anyString,
      cancellationAllowedUntilDate: anyString,
      status: 'active',
      autoRenewEnabled: true,
      billingType: 'license',
      billingCycle: 'monthly',
      termDuration: 'P1Y',
      refundOptions: [{ type: 'Partial', expiresAt: anyString }],
      refundableQuantity: {
        totalQuantity: 10,
        details: [{ quantity: 10, allowedUntilDateTime: anyString }],
      },
      orderId: anyString,
      attributes: { etag: anyString, objectType: 'Subscription' },
    });
    const list = await call('GET', `/v1/customers/${customerId}/subscriptions`);
    expect(list.body).toMatchObject({
      totalCount: 1,
      items: [{ id: subscriptionId }],
      attributes: { objectType: 'Collection' },
    });
    const missing = await call('GET', `/v1/customers/${customerId}/subscriptions/${randomUUID()}`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject(errorShape(20003));
  });

  it('a reduction after the window answers exactly the documented 800090 body', async () => {
    const { customerId, subscriptionId } = await boughtSubscription();
    await stack.advance({ days: 8 });
    const current = (await call('GET', `/v1/customers/${customerId}/subscriptions/${subscriptionId}`)).body;
    const answer = await call('PATCH', `/v1/customers/${customerId}/subscriptions/${subscriptionId}`, {
      body: { ...current, quantity: 1 },
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({
      code: 800090,
      description: 'Subscription quantity cannot be decreased.',
      data: [],
      source: 'PartnerFD',
    });
    const quantityOutOfRange = await call(
      'PATCH',
      `/v1/customers/${customerId}/subscriptions/${subscriptionId}`,
      {
        body: { ...current, quantity: 301 },
      },
    );
    expect(quantityOutOfRange.body).toMatchObject(errorShape(2002));
  });

  it('schedules next-term instructions with If-Match and needs auto-renew', async () => {
    const { customerId, subscriptionId } = await boughtSubscription();
    const current = (await call('GET', `/v1/customers/${customerId}/subscriptions/${subscriptionId}`)).body;
    const etag = (current.attributes as { etag: string }).etag;
    const instructions = {
      product: {
        productId: 'CFQ7TTC0LFLZ',
        skuId: '0001',
        availabilityId: 'CFQ7TTC0N8SL',
        billingCycle: 'Annual',
        termDuration: 'P3Y',
      },
      quantity: 1,
    };
    const refused = await call('PATCH', `/v1/customers/${customerId}/subscriptions/${subscriptionId}`, {
      body: { ...current, autoRenewEnabled: false, scheduledNextTermInstructions: instructions },
      headers: { 'If-Match': etag },
    });
    expect(refused.status).toBe(400);
    const answer = await call('PATCH', `/v1/customers/${customerId}/subscriptions/${subscriptionId}`, {
      body: { ...current, scheduledNextTermInstructions: instructions },
      headers: { 'If-Match': etag },
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      quantity: 10,
      scheduledNextTermInstructions: {
        product: {
          productId: 'CFQ7TTC0LFLZ',
          skuId: '0001',
          availabilityId: 'CFQ7TTC0N8SL',
          billingCycle: 'annual',
          termDuration: 'P3Y',
        },
        quantity: 1,
      },
    });
    expect((answer.body.attributes as { etag: string }).etag).not.toBe(etag);
  });

  it('cancel is status deleted; after the window 900213; a deleted subscription cannot be updated (2011)', async () => {
    const late = await boughtSubscription();
    await stack.advance({ days: 8 });
    const lateBody = (
      await call('GET', `/v1/customers/${late.customerId}/subscriptions/${late.subscriptionId}`)
    ).body;
    const refused = await call(
      'PATCH',
      `/v1/customers/${late.customerId}/subscriptions/${late.subscriptionId}`,
      {
        body: { ...lateBody, status: 'deleted' },
      },
    );
    expect(refused.body).toMatchObject(errorShape(900213));

    const early = await boughtSubscription();
    const earlyBody = (
      await call('GET', `/v1/customers/${early.customerId}/subscriptions/${early.subscriptionId}`)
    ).body;
    const cancelled = await call(
      'PATCH',
      `/v1/customers/${early.customerId}/subscriptions/${early.subscriptionId}`,
      {
        body: { ...earlyBody, status: 'deleted' },
      },
    );
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({
      status: 'deleted',
      quantity: 10,
      refundableQuantity: { totalQuantity: 0 },
    });
    const again = await call(
      'PATCH',
      `/v1/customers/${early.customerId}/subscriptions/${early.subscriptionId}`,
      {
        body: { ...earlyBody, quantity: 11 },
      },
    );
    expect(again.body).toMatchObject(errorShape(2011));
  });
});

describe('catalog and access', () => {
  it('lists NCE offers with the Graph SKU each grants', async () => {
    const offersList = await stack.commerce.listOffers();
    expect(offersList.map((offer) => offer.catalogItemId).sort()).toEqual(Object.values(offers).sort());
    expect(offersList.find((offer) => offer.catalogItemId === offers.e3)).toMatchObject({
      productTitle: 'Microsoft 365 E3',
      licenceSkuId: graphSkuIds.e3,
      minimumQuantity: 1,
      maximumQuantity: 300,
      terms: [
        anything,
        { termDuration: 'P1Y', billingCycle: 'monthly', listPrice: undefined },
        anything,
        anything,
        anything,
      ] as unknown[],
    });
  });

  it("another partner cannot see this partner's customer (403/20002); a customer-tenant token is 403", async () => {
    const customerId = await createdCustomer();
    const other = new ClientSecretCredential(
      otherPartner.tenantId,
      otherPartner.clientId,
      otherPartner.clientSecret,
      {
        authorityHost: stack.graph.authorityHost,
        disableInstanceDiscovery: true,
      },
    );
    const otherToken = (await other.getToken('https://api.partnercenter.microsoft.com/.default')).token;
    const answer = await call('GET', `/v1/customers/${customerId}`, { token: otherToken });
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject(errorShape(20002));
    const otherCommerce = createPartnerCenterCommerce({
      credential: other,
      baseUrl: stack.partnerCenter.baseUrl,
    });
    expect(
      isAppError(await otherCommerce.getCustomer(customerId).catch((thrown: unknown) => thrown), 'Forbidden'),
    ).toBe(true);

    const customerToken = await stack.token('https://api.partnercenter.microsoft.com/.default', customerId);
    expect((await call('GET', '/v1/customers?size=1', { token: customerToken })).status).toBe(403);
  });

  it('throttling answers 429 with Retry-After and the documented body', async () => {
    const customerId = await createdCustomer();
    await stack.fault({ kind: 'throttle', retryAfterInSeconds: 57, match: { customerId } });
    const answer = await call('GET', `/v1/customers/${customerId}`);
    expect(answer.status).toBe(429);
    expect(answer.headers.get('retry-after')).toBe('57');
    expect(answer.body).toEqual({
      statusCode: 429,
      message: 'Rate limit is exceeded. Try again in 57 seconds.',
    });
  });
});
