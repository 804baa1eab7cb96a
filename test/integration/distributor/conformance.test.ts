import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ids, otherApp, startStack, testSeed, type Stack } from './stack.js';

/**
 * Pax8's documented requests and answers (Partner API OpenAPI "PARTNER ENDPOINTS" 1.0.0 and
 * "Authentication", https://devx.pax8.com/openapi/*.json — copies in api-evangelist/pax8
 * `openapi/_original/`; errors from https://devx.pax8.com/docs/errors), replayed over HTTPS against
 * the peer. Example ids are replaced by the seed's; shapes, statuses and envelopes are Pax8's.
 */
let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await startStack({ seed: testSeed({ extraSubscriptions: 12 }) });
  token = await stack.token();
});
afterAll(async () => {
  await stack.stop();
});

const anyString: unknown = expect.any(String);
const anyNumber: unknown = expect.any(Number);

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string; token?: string | null } = {},
): Promise<Answer> {
  const bearer = options.token === undefined ? token : options.token;
  const response = await fetch(`${stack.peer.baseUrl}${path}`, {
    method,
    headers: {
      accept: 'application/json',
      ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
      ...(options.body === undefined && options.rawBody === undefined
        ? {}
        : { 'content-type': 'application/json' }),
    },
    ...(options.rawBody !== undefined
      ? { body: options.rawBody }
      : options.body === undefined
        ? {}
        : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

/** Pax8's error envelope (components/schemas/Error). */
const envelope = (status: number, type: string, instance: string, message: unknown = anyString) => ({
  type,
  message,
  instance,
  status,
  details: expect.any(Array) as unknown,
});

describe('POST /v1/token (Authentication OpenAPI)', () => {
  it('answers the token-request-example with a Bearer token for 86,400 seconds', async () => {
    const answer = await call('POST', '/v1/token', {
      token: null,
      body: {
        client_id: otherApp.clientId,
        client_secret: otherApp.clientSecret,
        audience: 'https://api.pax8.com',
        grant_type: 'client_credentials',
      },
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ access_token: anyString, expires_in: 86400, token_type: 'Bearer' });
  });

  it('answers a bad secret with the documented 401 access_denied body', async () => {
    const answer = await call('POST', '/v1/token', {
      token: null,
      body: {
        client_id: otherApp.clientId,
        client_secret: 'wrong',
        audience: 'https://api.pax8.com',
        grant_type: 'client_credentials',
      },
    });
    expect(answer.status).toBe(401);
    expect(answer.body).toEqual({ error: 'access_denied', error_description: 'Unauthorized' });
  });

  it('refuses API calls without a token or with an unknown one', async () => {
    expect((await call('GET', '/v1/companies', { token: null })).status).toBe(401);
    const answer = await call('GET', '/v1/companies', { token: 'not-a-token' });
    expect(answer.status).toBe(401);
    expect(answer.body).toEqual(envelope(401, 'UNAUTHORIZED', '/v1/companies'));
  });
});

describe('companies', () => {
  it('pages the partner’s companies as in the companies-paged example, and only the partner’s', async () => {
    const answer = await call('GET', '/v1/companies?page=0&size=1');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      content: [
        {
          id: ids.contoso,
          name: 'Contoso',
          address: expect.objectContaining({ city: 'Greenwood Village', country: 'US' }) as unknown,
          phone: anyString,
          website: anyString,
          externalId: 'contoso',
          status: 'Active',
          selfServiceAllowed: false,
          billOnBehalfOfEnabled: false,
          orderApprovalRequired: false,
        },
      ],
      page: { size: 1, totalElements: 2, totalPages: 2, number: 0 },
    });
    const second = await call('GET', '/v1/companies?page=1&size=1');
    expect((second.body['content'] as { name: string }[]).map((c) => c.name)).toEqual(['Fabrikam']);
  });

  it('answers an unknown or foreign company with the documented NOT_FOUND example', async () => {
    const answer = await call('GET', `/v1/companies/${ids.foreign}`);
    expect(answer.status).toBe(404);
    expect(answer.body).toEqual({
      type: 'NOT_FOUND',
      message: `Company Not Found: ${ids.foreign}`,
      instance: `/v1/companies/${ids.foreign}`,
      status: 404,
      details: [],
    });
  });

  it('refuses a page size outside 1–200 with 400', async () => {
    expect((await call('GET', '/v1/companies?size=201')).status).toBe(400);
    expect((await call('GET', '/v1/companies?size=0')).status).toBe(400);
    expect((await call('GET', '/v1/companies?page=-1')).body).toEqual(
      envelope(400, 'BAD_REQUEST', '/v1/companies'),
    );
  });
});

describe('products', () => {
  it('answers Get Product By ID like the microsoft-office-365-e3 example', async () => {
    const answer = await call('GET', `/v1/products/${ids.e3}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      id: ids.e3,
      name: 'Microsoft Office 365 E3',
      vendorName: 'Microsoft',
      shortDescription: anyString,
      description: anyString,
      sku: 'MST-OFC-EE3-C100',
      vendorSku: 'CFQ7TTC0LF8Q:0001',
      requiresCommitment: true,
    });
  });

  it('lists products with search and paging', async () => {
    const answer = await call('GET', '/v1/products?search=exchange');
    expect(answer.body).toEqual({
      content: [expect.objectContaining({ id: ids.exchange, name: 'Exchange Online (Plan 1)' })],
      page: { size: 10, totalElements: 1, totalPages: 1, number: 0 },
    });
  });

  it('answers pricing as {content: [Pricing]} with rates per quantity range', async () => {
    const answer = await call('GET', `/v1/products/${ids.webroot}/pricing`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      content: [
        {
          productId: ids.webroot,
          productName: 'Webroot SecureAnywhere Business Endpoint Protection',
          billingTerm: 'Monthly',
          type: 'Volume',
          unitOfMeasurement: 'Device',
          rates: [
            {
              partnerBuyRate: 2.5,
              suggestedRetailPrice: 3,
              startQuantityRange: 1,
              endQuantityRange: 99,
              chargeType: 'Per Unit',
            },
            {
              partnerBuyRate: 2,
              suggestedRetailPrice: 2.5,
              startQuantityRange: 100,
              endQuantityRange: null,
              chargeType: 'Per Unit',
            },
          ],
        },
      ],
    });
  });

  it('answers dependencies like the dependencies-example, and 404 for an unknown product', async () => {
    const answer = await call('GET', `/v1/products/${ids.e3}/dependencies`);
    expect(answer.body).toEqual({
      commitmentDependencies: [
        expect.objectContaining({
          id: ids.annualCommitment,
          term: 'Annual',
          allowForQuantityDecrease: false,
        }),
        {
          id: ids.threeYearCommitment,
          term: '3-Year',
          autoRenew: true,
          renewalWindowDaysBeforeTermEnd: 0,
          renewalWindowDaysAfterTermEnd: 0,
          allowForQuantityIncrease: true,
          allowForQuantityDecrease: true,
          allowForEarlyCancellation: true,
          cancellationFeeApplied: true,
          isTransferable: true,
        },
      ],
      productDependencies: [],
    });
    const missing = '497f6eca-6276-4993-bfeb-53cbbbba6f08';
    expect((await call('GET', `/v1/products/${missing}`)).body).toEqual(
      envelope(404, 'NOT_FOUND', `/v1/products/${missing}`, `Product Not Found: ${missing}`),
    );
  });
});

/** The microsoft-office-365-e3-order request example, with the seed's company and product. */
function documentedOrder(): Record<string, unknown> {
  return {
    companyId: ids.fabrikam,
    lineItems: [
      {
        productId: ids.e3,
        subscriptionId: '04814f37-bef0-48b7-b388-c04a1e31f889',
        commitmentTermID: ids.annualCommitment,
        provisionStartDate: '2000-10-31T01:30:00.000-05:00',
        billingTerm: 'Monthly',
        parentSubscriptionId: '78e6c85e-71b6-412c-8a59-d1b75072cd22',
        quantity: 5,
        provisioningDetails: [
          { key: 'msCustExists', values: ['No, the customer does not have a Microsoft account'] },
          { key: 'msDomain', values: ['vfc-network-inc-liberty'] },
          { key: 'arrowContactFirstName', values: ['Oliver'] },
          { key: 'arrowContactLastName', values: ['Harrison'] },
          { key: 'arrowContactEmail', values: ['oharrison@vfc-network-inc-liberty.com'] },
          { key: 'mca2020FirstName', values: ['Oliver'] },
          { key: 'mca2020LastName', values: ['Harrison'] },
          { key: 'mca2020Email', values: ['oharrison@vfc-network-inc-liberty.com'] },
          { key: 'mca2020EffectiveDate', values: ['2020-02-01'] },
        ],
      },
    ],
  };
}

describe('orders', () => {
  it('answers the documented order request like microsoft-office-365-e3-order-response, and GET like the get-response', async () => {
    const answer = await call('POST', '/v1/orders', { body: documentedOrder() });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      id: anyString,
      companyId: ids.fabrikam,
      createdDate: '2026-03-10',
      isScheduled: false,
      lineItems: [
        {
          id: anyString,
          productId: ids.e3,
          subscriptionId: anyString,
          commitmentTermId: ids.annualCommitment,
          provisionStartDate: anyString,
          billingTerm: 'Monthly',
          quantity: 5,
        },
      ],
    });
    const orderId = String(answer.body['id']);
    const fetched = await call('GET', `/v1/orders/${orderId}`);
    expect(fetched.body).toEqual({ ...answer.body, orderedBy: 'Pax8 Partner' });
    const line = (answer.body['lineItems'] as { subscriptionId: string }[])[0];
    const subscription = await call('GET', `/v1/subscriptions/${line?.subscriptionId ?? ''}`);
    expect(subscription.body).toEqual(
      expect.objectContaining({
        companyId: ids.fabrikam,
        productId: ids.e3,
        quantity: 5,
        status: 'Active',
        billingTerm: 'Monthly',
        price: 24,
        partnerCost: 22.8,
        commitmentTerm: { id: ids.annualCommitment, term: 'Annual', endDate: '2027-03-10T09:30:00.000Z' },
      }),
    );
    const listed = await call('GET', `/v1/orders?companyId=${ids.fabrikam}`);
    expect(listed.body['page']).toEqual({ size: 10, totalElements: 1, totalPages: 1, number: 0 });
  });

  it('validates an isMock order and stores nothing', async () => {
    const before = await stack.state();
    const answer = await call('POST', '/v1/orders?isMock=true', { body: documentedOrder() });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual(
      expect.objectContaining({
        companyId: ids.fabrikam,
        lineItems: [expect.objectContaining({ productId: ids.e3, quantity: 5 })],
      }),
    );
    expect(answer.body['id']).toBeUndefined();
    const after = await stack.state();
    expect(after.subscriptions).toHaveLength(before.subscriptions.length);
    expect(after['orders']).toBe(before['orders']);
    // A mock order that would fail still fails: the checks run.
    const bad = await call('POST', '/v1/orders?isMock=true', {
      body: {
        companyId: ids.fabrikam,
        lineItems: [{ productId: ids.e3, quantity: 5, billingTerm: 'Monthly' }],
      },
    });
    expect(bad.status).toBe(422);
  });

  it('answers bad syntax with 400 and well-formed orders a rule refuses with 422', async () => {
    // The docs' own "bad data format" example: `{"companyId": 666666}`.
    const badFormat = await call('POST', '/v1/orders', { body: { companyId: 666666 } });
    expect(badFormat.status).toBe(400);
    expect(badFormat.body).toEqual(envelope(400, 'BAD_REQUEST', '/v1/orders'));
    expect((badFormat.body['details'] as unknown[]).length).toBeGreaterThan(0);
    expect((await call('POST', '/v1/orders', { rawBody: '{"companyId":' })).status).toBe(400);
    const fractional = await call('POST', '/v1/orders', {
      body: {
        companyId: ids.fabrikam,
        lineItems: [{ productId: ids.exchange, quantity: 1.5, billingTerm: 'Monthly' }],
      },
    });
    expect(fractional.status).toBe(400);

    const refusals = [
      // requiresCommitment without commitmentTermId
      [{ productId: ids.e3, quantity: 5, billingTerm: 'Monthly' }],
      // billing term the product does not offer
      [{ productId: ids.exchange, quantity: 5, billingTerm: 'Annual' }],
      // unknown product
      [{ productId: 'aaaee3f-262c-47a4-b0e6-f9ce8b54fcd7', quantity: 5, billingTerm: 'Monthly' }],
      // zero seats
      [{ productId: ids.exchange, quantity: 0, billingTerm: 'Monthly' }],
    ];
    for (const lineItems of refusals) {
      const answer = await call('POST', '/v1/orders', { body: { companyId: ids.fabrikam, lineItems } });
      expect(answer.status, JSON.stringify(lineItems)).toBe(422);
      expect(answer.body).toEqual(envelope(422, 'UNPROCESSABLE_ENTITY', '/v1/orders'));
    }
  });

  it('refuses an order for another partner’s company with 403 Invalid companyId', async () => {
    const answer = await call('POST', '/v1/orders', {
      body: {
        companyId: ids.foreign,
        lineItems: [{ productId: ids.exchange, quantity: 1, billingTerm: 'Monthly' }],
      },
    });
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual(envelope(403, 'FORBIDDEN', '/v1/orders', 'Invalid companyId'));
  });
});

describe('subscriptions', () => {
  it('answers Get Subscription By ID like the microsoft-office-365-e3-subscription example', async () => {
    const answer = await call('GET', `/v1/subscriptions/${ids.exchangeSub}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      id: ids.exchangeSub,
      companyId: ids.contoso,
      productId: ids.exchange,
      vendorSubscriptionId: anyString,
      vendorSkuId: 'CFQ7TTC0LH16:0001',
      quantity: 10,
      startDate: '2026-03-01T00:00:00Z',
      createdDate: '2026-02-27T08:30:00Z',
      billingStart: '2026-03-01',
      status: 'Active',
      price: 5,
      currencyCode: 'USD',
      partnerCost: 4.8,
      productName: 'Exchange Online (Plan 1)',
      billingTerm: 'Monthly',
    });
  });

  it('filters by companyId, productId, status and billingTerm and pages {content, page}', async () => {
    const all = await call(
      'GET',
      `/v1/subscriptions?companyId=${ids.fabrikam}&productId=${ids.webroot}&size=5`,
    );
    expect(all.body['page']).toEqual({ size: 5, totalElements: 12, totalPages: 3, number: 0 });
    const last = await call(
      'GET',
      `/v1/subscriptions?companyId=${ids.fabrikam}&productId=${ids.webroot}&size=5&page=2`,
    );
    expect(last.body['content']).toHaveLength(2);
    const active = await call(
      'GET',
      `/v1/subscriptions?companyId=${ids.contoso}&status=Active&billingTerm=Monthly`,
    );
    expect((active.body['content'] as { id: string }[]).map((s) => s.id).sort()).toEqual(
      [ids.exchangeSub, ids.e3Sub].sort(),
    );
    const none = await call('GET', `/v1/subscriptions?companyId=${ids.contoso}&status=PendingManual`);
    expect(none.body).toEqual({
      content: [],
      page: { size: 10, totalElements: 0, totalPages: 0, number: 0 },
    });
    const sorted = await call('GET', `/v1/subscriptions?companyId=${ids.fabrikam}&sort=quantity,desc&size=3`);
    expect((sorted.body['content'] as { quantity: number }[]).map((s) => s.quantity)).toEqual([12, 11, 10]);
  });

  it('answers a status or billing term outside the documented enums with 400', async () => {
    expect((await call('GET', '/v1/subscriptions?status=Live')).status).toBe(400);
    expect((await call('GET', '/v1/subscriptions?billingTerm=Weekly')).status).toBe(400);
    expect((await call('GET', '/v1/subscriptions?sort=colour,asc')).status).toBe(400);
  });

  it('answers a companyId that is not the partner’s with 403 Invalid companyId', async () => {
    const answer = await call('GET', `/v1/subscriptions?companyId=${ids.foreign}`);
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({
      type: 'FORBIDDEN',
      message: 'Invalid companyId',
      instance: '/v1/subscriptions',
      status: 403,
      details: [],
    });
    // The other partner sees its own company; this partner never sees that subscription.
    const other = await stack.token(otherApp);
    expect((await call('GET', `/v1/subscriptions?companyId=${ids.foreign}`, { token: other })).status).toBe(
      200,
    );
    expect((await call('GET', `/v1/subscriptions/${ids.foreignSub}`)).status).toBe(404);
  });

  it('applies the subscription-update-example and records it in the history, newest first', async () => {
    const answer = await call('PUT', `/v1/subscriptions/${ids.exchangeSub}`, {
      body: {
        quantity: 11,
        startDate: '2000-10-31T01:30:00.000-05:00',
        endDate: '2001-10-31T01:30:00.000-05:00',
        price: 15.39,
        currencyCode: 'USD',
        billingTerm: 'Monthly',
        provisioningDetails: [{ key: 'userEmailAddress', values: ['joeysherp@example.com'] }],
      },
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual(
      expect.objectContaining({
        id: ids.exchangeSub,
        quantity: 11,
        price: 15.39,
        status: 'Active',
        updatedDate: anyString,
      }),
    );
    const history = await call('GET', `/v1/subscriptions/${ids.exchangeSub}/history`);
    expect(history.status).toBe(200);
    const content = history.body['content'] as { quantity: number; price: number; id: string }[];
    expect(content.map((entry) => [entry.id, entry.quantity, entry.price])).toEqual([
      [ids.exchangeSub, 11, 15.39],
      [ids.exchangeSub, 10, 5],
    ]);
  });

  it('answers a PUT without price, billingTerm, quantity or startDate with 400, and refused changes with 422', async () => {
    const path = `/v1/subscriptions/${ids.e3Sub}`;
    expect((await call('PUT', path, { body: {} })).status).toBe(400);
    expect((await call('PUT', path, { body: { quantity: 'ten' } })).status).toBe(400);
    expect((await call('PUT', path, { body: { quantity: 0 } })).status).toBe(422);
    // The annual commitment does not allow a decrease before its end (Commitment.allowForQuantityDecrease).
    const decrease = await call('PUT', path, { body: { quantity: 19 } });
    expect(decrease.status).toBe(422);
    expect(decrease.body).toEqual(envelope(422, 'UNPROCESSABLE_ENTITY', path));
    expect((await call('PUT', path, { body: { quantity: 25 } })).body).toEqual(
      expect.objectContaining({ quantity: 25 }),
    );
    expect((await call('PUT', `/v1/subscriptions/${ids.foreignSub}`, { body: { quantity: 4 } })).status).toBe(
      404,
    );
  });

  it('cancels with cancelDate: 204, PendingCancel with that end date, Cancelled once the date passes', async () => {
    const [target] = (
      await call('GET', `/v1/subscriptions?companyId=${ids.fabrikam}&productId=${ids.webroot}&size=1`)
    ).body['content'] as { id: string }[];
    const id = target?.id ?? '';
    const cancelDate = '2026-03-20T00:00:00.000Z';
    expect((await call('DELETE', `/v1/subscriptions/${id}?cancelDate=${cancelDate}`)).status).toBe(204);
    expect((await call('GET', `/v1/subscriptions/${id}`)).body).toEqual(
      expect.objectContaining({ status: 'PendingCancel', endDate: cancelDate }),
    );
    expect((await call('DELETE', `/v1/subscriptions/${id}`)).status).toBe(422);
    expect((await call('PUT', `/v1/subscriptions/${id}`, { body: { quantity: 3 } })).status).toBe(422);
    expect((await call('DELETE', `/v1/subscriptions/${id}?cancelDate=yesterday`)).status).toBe(400);
    await stack.advance({ days: 10 });
    expect((await call('GET', `/v1/subscriptions/${id}`)).body).toEqual(
      expect.objectContaining({ status: 'Cancelled' }),
    );
    const history = (await call('GET', `/v1/subscriptions/${id}/history`)).body['content'] as {
      status: string;
    }[];
    expect(history.map((entry) => entry.status)).toEqual(['Cancelled', 'PendingCancel', 'Active']);
  });

  it('holds an annual commitment that forbids early cancellation to its end date', async () => {
    const path = `/v1/subscriptions/${ids.e3Sub}`;
    expect((await call('DELETE', `${path}?cancelDate=2026-04-01T00:00:00Z`)).status).toBe(422);
    expect((await call('DELETE', path)).status).toBe(204);
    expect((await call('GET', path)).body).toEqual(
      expect.objectContaining({ status: 'PendingCancel', endDate: '2027-01-31T23:59:59.000Z' }),
    );
  });
});

describe('faults (admin API)', () => {
  it('throttles with 429, Retry-After and the envelope, then serves again', async () => {
    await stack.fault({ kind: 'throttle', retryAfterInSeconds: 7, match: { pathIncludes: '/v1/products' } });
    const throttled = await call('GET', '/v1/products');
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('7');
    expect(throttled.body).toEqual(envelope(429, 'TOO_MANY_REQUESTS', '/v1/products'));
    expect((await call('GET', '/v1/products')).status).toBe(200);
  });

  it('answers 5xx before the request runs, or after it ran', async () => {
    await stack.fault({ kind: 'error', status: 502, match: { method: 'PUT' } });
    const path = `/v1/subscriptions/${ids.exchangeSub}`;
    expect((await call('PUT', path, { body: { quantity: 30 } })).status).toBe(502);
    expect((await call('GET', path)).body['quantity']).toBe(11);
    await stack.fault({ kind: 'errorAfterCommit', status: 503, match: { method: 'PUT' } });
    expect((await call('PUT', path, { body: { quantity: 30 } })).status).toBe(503);
    expect((await call('GET', path)).body['quantity']).toBe(30);
  });

  it('keeps new orders and quantity changes PendingAutomated until provisioning completes', async () => {
    await stack.admin('POST', '/provisioning', { state: 'PendingAutomated', delayInMs: 2 * 3_600_000 });
    try {
      const order = await call('POST', '/v1/orders', {
        body: {
          companyId: ids.contoso,
          lineItems: [{ productId: ids.exchange, quantity: 4, billingTerm: 'Monthly' }],
        },
      });
      const subscriptionId =
        (order.body['lineItems'] as { subscriptionId: string }[])[0]?.subscriptionId ?? '';
      expect((await call('GET', `/v1/subscriptions/${subscriptionId}`)).body['status']).toBe(
        'PendingAutomated',
      );
      const pending = await call('GET', `/v1/subscriptions?companyId=${ids.contoso}&status=PendingAutomated`);
      expect((pending.body['content'] as { id: string }[]).map((s) => s.id)).toEqual([subscriptionId]);
      await stack.advance({ hours: 2 });
      expect((await call('GET', `/v1/subscriptions/${subscriptionId}`)).body['status']).toBe('Active');
      const changed = await call('PUT', `/v1/subscriptions/${subscriptionId}`, { body: { quantity: 6 } });
      expect(changed.body).toEqual(expect.objectContaining({ quantity: 6, status: 'PendingAutomated' }));
      await stack.advance({ hours: 2 });
      const history = (await call('GET', `/v1/subscriptions/${subscriptionId}/history`)).body['content'] as {
        status: string;
        quantity: number;
      }[];
      expect(history.map((entry) => `${entry.status}:${entry.quantity}`)).toEqual([
        'Active:6',
        'PendingAutomated:6',
        'Active:4',
        'PendingAutomated:4',
      ]);
    } finally {
      await stack.admin('POST', '/provisioning', { state: null, delayInMs: 0 });
    }
  });
});

describe('numbers Pax8 returns', () => {
  it('pages report totals that start at 1 and page numbers that start at 0', async () => {
    const answer = await call('GET', '/v1/subscriptions?size=200');
    const page = answer.body['page'] as { totalElements: number; totalPages: number; number: number };
    expect(page).toEqual({ size: 200, totalElements: anyNumber, totalPages: 1, number: 0 });
    expect((answer.body['content'] as unknown[]).length).toBe(page.totalElements);
  });
});
