import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ClientSecretCredential } from '@azure/identity';
import { deterministicUuid } from '../../../shared/adapters/partner-center/client.js';
import { createPartnerCenterCommerce } from '../../../shared/adapters/partner-center/commerce.js';
import { AppError, isAppError } from '../../../shared/errors.js';
import { createLogger, type LogLevel } from '../../../shared/logging.js';
import { graphSkuIds, offers, startStack, type Stack } from './stack.js';

/**
 * The Commerce adapter against the Partner Center peer for what a 1-Tier provider's onboarding needs:
 * a free initial domain, a checked address, a customer whose admin password is sealed at once, the MCA
 * attestation before any purchase, fresh catalog ids, asynchronous orders and 202 answers.
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
afterEach(async () => {
  await stack.admin('DELETE', '/faults');
});
afterAll(async () => {
  await stack.stop();
});

const line = { catalogItemId: offers.e3, quantity: 3, termDuration: 'P1Y', billingCycle: 'monthly' } as const;

async function thrown(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof AppError)) throw new Error(`expected an AppError, got ${String(error)}`);
  return error;
}

const stateSchema = z
  .object({
    customers: z.array(z.object({ id: z.string(), domain: z.string() }).loose()),
    subscriptions: z.array(
      z
        .object({ id: z.string(), customerId: z.string(), quantity: z.number(), lots: z.array(z.unknown()) })
        .loose(),
    ),
  })
  .loose();
const peerState = async () => stateSchema.parse(await stack.admin('GET', '/state'));

/**
 * An adapter whose first wait between polls moves the peer's virtual clock on, so work Partner Center
 * does asynchronously finishes while the adapter waits — without sleeping in the test.
 */
function waitingCommerce(by?: { hours: number }) {
  let waits = 0;
  const commerce = createPartnerCenterCommerce({
    credential: stack.credential,
    baseUrl: stack.partnerCenter.baseUrl,
    retry: { baseDelayInMs: 20, maxDelayInMs: 200 },
    poll: {
      maxAttempts: 5,
      sleep: async () => {
        waits += 1;
        if (waits === 1 && by !== undefined) await stack.advance(by);
      },
    },
  });
  return { commerce, waits: () => waits };
}

describe('tenant creation', () => {
  it('a free domain is available, and taken once the customer exists', async () => {
    const input = stack.newCustomer();
    expect(await stack.commerce.isDomainAvailable(input.domain)).toBe(true);
    await stack.commerce.createCustomer(input, { operationKey: `create-${randomUUID()}` });
    expect(await stack.commerce.isDomainAvailable(input.domain)).toBe(false);
  });

  it('validates an address with its status and suggestions', async () => {
    const good = await stack.commerce.validateAddress({
      addressLine1: '1 Microsoft Way',
      city: 'Redmond',
      state: 'WA',
      postalCode: '98052',
      country: 'US',
    });
    expect(good).toMatchObject({ status: 'VerifiedShippable', verified: true });
    const partial = await stack.commerce.validateAddress({
      addressLine1: 'Microsoft Way',
      city: 'Redmond',
      state: 'WA',
      postalCode: '98052',
      country: 'US',
    });
    expect(partial).toMatchObject({
      status: 'StreetPartial',
      verified: false,
      suggestedAddresses: [{ addressLine1: '1 Microsoft Way', city: 'Redmond', country: 'US' }],
    });
    expect(
      (await stack.commerce.validateAddress({ ...partial.suggestedAddresses[0]!, postalCode: 'x' })).status,
    ).toBe('None');
  });

  it('a lost create reply creates one customer, and the admin password is only reachable by sealing it', async () => {
    const input = stack.newCustomer();
    const operationKey = `create-${randomUUID()}`;
    await stack.fault({ kind: 'dropAfterCommit', match: { method: 'POST', pathIncludes: '/v1/customers' } });
    const created = await stack.commerce.createCustomer(input, { operationKey });
    expect((await peerState()).customers.filter((customer) => customer.domain === input.domain)).toHaveLength(
      1,
    );

    // What Partner Center sent (replayed from its MS-RequestId memory, as the adapter's retry was).
    const replay = await stack.call('POST', '/v1/customers', {
      requestId: deterministicUuid(`${operationKey}#create-customer`),
      body: {},
    });
    const password = z.object({ userCredentials: z.object({ password: z.string() }) }).parse(replay.body)
      .userCredentials.password;

    const credentials = created.adminCredentials;
    expect(credentials?.userName).toBe('admin');
    const sealed: string[] = [];
    const token = credentials?.password.seal({
      seal: (plain) => {
        sealed.push(plain);
        return 'sealed-1';
      },
    });
    expect(token).toBe('sealed-1');
    expect(sealed).toEqual([password]);
    for (const rendering of [
      JSON.stringify(created),
      String(credentials?.password),
      inspect(created, { depth: 10 }),
    ])
      expect(rendering).not.toContain(password);
    const lines: string[] = [];
    const logger = createLogger((_level: LogLevel, record) => lines.push(JSON.stringify(record)));
    logger.info('customer created', { created });
    expect(lines.join('\n')).not.toContain(password);
  });

  it('when Partner Center no longer knows the request id, the repeat finds our customer by its domain instead of failing', async () => {
    const input = stack.newCustomer();
    const operationKey = `create-${randomUUID()}`;
    const first = await stack.commerce.createCustomer(input, { operationKey });
    expect(first.alreadyExisted).toBe(false);
    await stack.admin('DELETE', '/idempotency');
    const again = await stack.commerce.createCustomer(input, { operationKey });
    expect(again).toEqual({ customer: first.customer, adminCredentials: undefined, alreadyExisted: true });
    expect((await peerState()).customers.filter((customer) => customer.domain === input.domain)).toHaveLength(
      1,
    );
  });

  it("a domain another partner's tenant holds is AlreadyExists", async () => {
    const other = createPartnerCenterCommerce({
      credential: new ClientSecretCredential(
        otherPartner.tenantId,
        otherPartner.clientId,
        otherPartner.clientSecret,
        {
          authorityHost: stack.graph.authorityHost,
          disableInstanceDiscovery: true,
        },
      ),
      baseUrl: stack.partnerCenter.baseUrl,
    });
    const input = stack.newCustomer();
    await other.createCustomer(input, { operationKey: `other-${randomUUID()}` });
    const taken = await thrown(
      stack.commerce.createCustomer(input, { operationKey: `create-${randomUUID()}` }),
    );
    expect(taken).toMatchObject({ code: 'AlreadyExists', status: 409, details: { domain: input.domain } });
    expect(taken.message).toContain('belongs to another tenant');
  });

  it("country rules come back as Validation naming what is missing, with Partner Center's code", async () => {
    const hungary = stack.newCustomer({
      address: {
        country: 'HU',
        city: 'Budapest',
        state: 'BU',
        addressLine1: '1 Fő utca',
        postalCode: '1011',
      },
    });
    const error = await thrown(
      stack.commerce.createCustomer(hungary, { operationKey: `create-${randomUUID()}` }),
    );
    expect(error).toMatchObject({
      code: 'Validation',
      status: 400,
      details: { partnerCenterCode: '600049' },
    });
    expect(error.message).toContain('organizationRegistrationNumber');
    const noPhone = await thrown(
      stack.commerce.createCustomer(
        { ...hungary, organizationRegistrationNumber: '12345678' },
        { operationKey: `create-${randomUUID()}` },
      ),
    );
    expect(noPhone.details?.partnerCenterCode).toBe('600051');
    expect(noPhone.message).toContain('phone number');
    const created = await stack.commerce.createCustomer(
      {
        ...hungary,
        organizationRegistrationNumber: '12345678',
        address: { ...hungary.address, phoneNumber: '+3612345678' },
      },
      { operationKey: `create-${randomUUID()}` },
    );
    expect(created.customer.domain).toBe(hungary.domain);
  });
});

describe('Microsoft Customer Agreement', () => {
  it('nothing can be bought before the attestation; with the current template it can', async () => {
    const { customer } = await stack.commerce.createCustomer(stack.newCustomer(), {
      operationKey: `create-${randomUUID()}`,
    });
    const refused = await thrown(
      stack.commerce.buy(customer.id, [line], { operationKey: `buy-${randomUUID()}` }),
    );
    expect(refused).toMatchObject({ code: 'AgreementMissing', details: { partnerCenterCode: '13605' } });
    expect(refused.message).toContain('Microsoft Customer Agreement');
    expect(await stack.commerce.listSubscriptions(customer.id)).toEqual([]);

    const template = await stack.commerce.getCustomerAgreementTemplate();
    expect(template).toEqual({
      templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
      agreementType: 'MicrosoftCustomerAgreement',
      agreementLink: 'https://aka.ms/customeragreement',
    });
    const attestation = {
      firstName: 'Tania',
      lastName: 'Carr',
      email: 'tania@example.com',
      dateAgreed: new Date('2026-03-10T00:00:00.000Z'),
      templateId: template.templateId,
    };
    const operationKey = `mca-${customer.id}`;
    await stack.commerce.confirmAgreement(customer.id, attestation, { operationKey });
    // A repeat (same key, or the same contact again: 600061) is the outcome we wanted.
    await stack.commerce.confirmAgreement(customer.id, attestation, { operationKey });
    await stack.commerce.confirmAgreement(customer.id, attestation, {
      operationKey: `mca-again-${randomUUID()}`,
    });
    expect(await stack.commerce.listAgreements(customer.id)).toEqual([
      {
        templateId: template.templateId,
        type: 'MicrosoftCustomerAgreement',
        dateAgreed: attestation.dateAgreed,
        contact: { firstName: 'Tania', lastName: 'Carr', email: 'tania@example.com' },
      },
    ]);
    const purchase = await stack.commerce.buy(customer.id, [line], { operationKey: `buy-${randomUUID()}` });
    expect(purchase.orders[0]).toMatchObject({ status: 'completed' });
  });
});

describe('catalog ids that change', () => {
  it('findOffers reads one SKU fresh; a buy with a stale id re-reads it, buys once under the new id, and a repeat buys nothing more', async () => {
    const customerId = await stack.readyCustomer();
    const [productId, skuId] = offers.businessPremium.split(':') as [string, string];
    expect((await stack.commerce.findOffers(productId, skuId)).map((offer) => offer.catalogItemId)).toEqual([
      offers.businessPremium,
    ]);
    const rotated = z
      .object({ current: z.string() })
      .parse(
        await stack.admin('POST', '/catalog/rotate-availability', { catalogItemId: offers.businessPremium }),
      );
    expect((await stack.commerce.findOffers(productId, skuId)).map((offer) => offer.catalogItemId)).toEqual([
      rotated.current,
    ]);

    const stale = { ...line, catalogItemId: offers.businessPremium, quantity: 2 };
    const operationKey = `buy-${randomUUID()}`;
    const purchase = await stack.commerce.buy(customerId, [stale], { operationKey });
    expect(purchase.orders[0]?.lines[0]).toMatchObject({ catalogItemId: rotated.current, quantity: 2 });
    expect(await stack.commerce.buy(customerId, [stale], { operationKey })).toEqual(purchase);
    const subscriptions = await stack.commerce.listSubscriptions(customerId);
    expect(subscriptions.map((subscription) => subscription.catalogItemId)).toEqual([rotated.current]);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.businessPremium)).toBe(2);
  });
});

describe('asynchronous provisioning', () => {
  it('a buy whose order comes back pending waits until the subscription exists', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({ kind: 'asyncProvisioning', delay: 'PT10M', match: { customerId } });
    const waiting = waitingCommerce({ hours: 1 });
    const purchase = await waiting.commerce.buy(customerId, [line], { operationKey: `buy-${randomUUID()}` });
    expect(waiting.waits()).toBeGreaterThanOrEqual(1);
    const [subscription] = await stack.commerce.listSubscriptions(customerId);
    expect(purchase.orders[0]).toMatchObject({
      status: 'completed',
      lines: [{ catalogItemId: offers.e3, quantity: 3, subscriptionId: subscription?.id }],
    });
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(3);
  });

  it('still pending after the wait, the order comes back pending and getOrder shows it completed later; a lost checkout reply still buys once', async () => {
    const customerId = await stack.readyCustomer();
    await stack.fault({ kind: 'asyncProvisioning', delay: 'PT10M', match: { customerId } });
    await stack.fault({ kind: 'dropAfterCommit', match: { pathIncludes: '/checkout', customerId } });
    const waiting = waitingCommerce();
    const purchase = await waiting.commerce.buy(customerId, [line], { operationKey: `buy-${randomUUID()}` });
    expect(waiting.waits()).toBe(4);
    const [order] = purchase.orders;
    expect(order).toMatchObject({
      status: 'pending',
      lines: [{ catalogItemId: offers.e3, subscriptionId: undefined }],
    });
    expect(await stack.commerce.listSubscriptions(customerId)).toEqual([]);
    await stack.advance({ hours: 1 });
    const later = await stack.commerce.getOrder(customerId, order?.id ?? '');
    expect(later.status).toBe('completed');
    const subscriptions = await stack.commerce.listSubscriptions(customerId);
    expect(subscriptions.map((subscription) => subscription.id)).toEqual([later.lines[0]?.subscriptionId]);
    expect((await peerState()).subscriptions.filter((s) => s.customerId === customerId)).toHaveLength(1);
  });
});

describe('202 Accepted for a slow quantity change', () => {
  it('polls the subscription until the new quantity shows', async () => {
    const customerId = await stack.readyCustomer();
    const purchase = await stack.commerce.buy(customerId, [line], { operationKey: `buy-${randomUUID()}` });
    const subscriptionId = purchase.orders[0]?.lines[0]?.subscriptionId ?? '';
    await stack.fault({ kind: 'slowPatch', delay: 'PT2M', match: { customerId } });
    const waiting = waitingCommerce({ hours: 0.1 });
    const changed = await waiting.commerce.changeQuantity(customerId, subscriptionId, 8, {
      operationKey: `grow-${randomUUID()}`,
    });
    expect(waiting.waits()).toBeGreaterThanOrEqual(1);
    expect(changed.quantity).toBe(8);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(8);
  });

  it('still not applied after the wait is a retryable Timeout; repeating with the same key waits for the same change', async () => {
    const customerId = await stack.readyCustomer();
    const purchase = await stack.commerce.buy(customerId, [line], { operationKey: `buy-${randomUUID()}` });
    const subscriptionId = purchase.orders[0]?.lines[0]?.subscriptionId ?? '';
    await stack.fault({ kind: 'slowPatch', delay: 'PT2M', match: { customerId } });
    const operationKey = `grow-${randomUUID()}`;
    const slow = createPartnerCenterCommerce({
      credential: stack.credential,
      baseUrl: stack.partnerCenter.baseUrl,
      poll: { maxAttempts: 3, baseDelayInMs: 5, maxDelayInMs: 10 },
    });
    const timeout = await thrown(slow.changeQuantity(customerId, subscriptionId, 5, { operationKey }));
    expect(timeout).toMatchObject({ code: 'Timeout', retryable: true });
    expect(timeout.message).toContain('202');
    expect((await stack.commerce.getSubscription(customerId, subscriptionId)).quantity).toBe(3);

    // The repeat re-sends the same PATCH (same MS-RequestId): Partner Center answers from memory.
    const waiting = waitingCommerce({ hours: 0.1 });
    expect(
      (await waiting.commerce.changeQuantity(customerId, subscriptionId, 5, { operationKey })).quantity,
    ).toBe(5);
    expect(waiting.waits()).toBeGreaterThanOrEqual(1);
    const [state] = (await peerState()).subscriptions.filter((s) => s.id === subscriptionId);
    expect(state).toMatchObject({ quantity: 5, lots: [expect.anything(), expect.anything()] as unknown[] });
  });

  it('cancel and the auto-renew switch wait through a 202 too', async () => {
    const customerId = await stack.readyCustomer();
    const purchase = await stack.commerce.buy(
      customerId,
      [line, { ...line, catalogItemId: offers.exchangePlan1 }],
      {
        operationKey: `buy-${randomUUID()}`,
      },
    );
    const [first, second] = purchase.orders.flatMap((order) =>
      order.lines.map((l) => l.subscriptionId ?? ''),
    );
    await stack.fault({ kind: 'slowPatch', delay: 'PT1M', count: 2, match: { customerId } });
    const cancelled = await waitingCommerce({ hours: 0.1 }).commerce.cancel(customerId, first ?? '', {
      operationKey: `cancel-${randomUUID()}`,
    });
    expect(cancelled.status).toBe('deleted');
    const switched = await waitingCommerce({ hours: 0.1 }).commerce.setAutoRenew(
      customerId,
      second ?? '',
      false,
      {
        operationKey: `renew-off-${randomUUID()}`,
      },
    );
    expect(switched.autoRenewEnabled).toBe(false);
    expect((await stack.enabledSeats(customerId)).get(graphSkuIds.e3)).toBe(0);
  });

  it('a reduction after the window is refused with a clear reason', async () => {
    const customerId = await stack.readyCustomer();
    const purchase = await stack.commerce.buy(customerId, [line], { operationKey: `buy-${randomUUID()}` });
    const subscriptionId = purchase.orders[0]?.lines[0]?.subscriptionId ?? '';
    await stack.advance({ days: 8 });
    const refused = await thrown(
      stack.commerce.changeQuantity(customerId, subscriptionId, 1, {
        operationKey: `shrink-${randomUUID()}`,
      }),
    );
    expect(refused).toMatchObject({
      code: 'ReductionWindowClosed',
      details: { partnerCenterCode: '800090' },
    });
    expect(refused.message).toContain("quantity can't be decreased outside the 7-day window");
    expect(isAppError(refused, 'ReductionWindowClosed')).toBe(true);
  });
});
