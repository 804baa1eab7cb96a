import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import type { PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import type { Commerce } from '../../shared/ports/commerce.js';
import type { Caller } from '../../shared/domain/caller.js';
import { AppError } from '../../shared/errors.js';
import type { Clock } from '../../shared/ports/clock.js';
import type { Store } from '../../shared/ports/store.js';
import { graphSkuIds } from '../integration/partner-center/stack.js';
import {
  createCustomerWithAgreement,
  partnerTenantSeed,
  startPartnerCenterFixture,
} from '../support/partner-center.js';
import { callApi } from '../support/http.js';
import { quietLogger } from '../support/stack.js';

/**
 * Buying through Partner Center from Atria, end to end on the peers (issue 14): the checkout's answer
 * dropped once and the worker killed right after the checkout — one order, one subscription, and the
 * ledger, Partner Center and Graph agree; spend caps, the approval threshold, dryRun; another
 * provider's key buys nothing; each New Commerce refusal on the virtual clock (the Partner Center
 * peer's and the app's clocks move together).
 */
const day0 = new Date(Math.floor(Date.now() / 1000) * 1000);
const hourInMs = 3_600_000;
const partnerTenant = randomUUID();
const app = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const graphRoles = ['Directory.Read.All', 'Organization.Read.All', 'LicenseAssignment.ReadWrite.All'];
const run = randomUUID().slice(0, 8);
const providers = { blue: `prov-blue-${run}`, red: `prov-red-${run}` };
const e3 = {
  productId: 'CFQ7TTC0LFLZ',
  skuId: '0001',
  termDuration: 'P1Y',
  billingCycle: 'monthly',
} as const;
const exchange = {
  productId: 'CFQ7TTC0LH16',
  skuId: '0001',
  termDuration: 'P1M',
  billingCycle: 'monthly',
} as const;

let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let deps: AppDeps;
let host: LocalHost;
let baseSettings: ReturnType<typeof loadSettings>;
let pcCustomerId: string;
let commerce: Commerce;
let tenantId: string;
const keys = { blue: '', red: '' };
let now = day0.getTime();
const clock: Clock = { now: () => new Date(now) };
const blueCaller: Caller = { id: 'test', kind: 'apiKey', providerId: '' };

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${partnerCenter.adminUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`admin ${method} ${path}: ${response.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

/** Moves both clocks: Partner Center's (orders provision, windows close) and the app's. */
async function advance(ms: number): Promise<void> {
  await admin('POST', '/clock', { advanceByInMs: ms });
  now += ms;
}

const peerState = z.object({
  subscriptions: z.array(
    z.object({ id: z.string(), customerId: z.string(), quantity: z.number(), status: z.string() }).loose(),
  ),
  orders: z.number(),
});
async function pcSubscriptions() {
  const state = peerState.parse(await admin('GET', '/state'));
  return state.subscriptions.filter((s) => s.customerId === pcCustomerId);
}

function api(key: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  return callApi(host.url, key, method, path, body, headers);
}

const operationSchema = z
  .object({
    operationId: z.string(),
    state: z.string(),
    steps: z.array(z.object({ name: z.string(), state: z.string(), attempts: z.number() }).loose()),
  })
  .loose();

async function graphE3Seats(): Promise<number> {
  const directory = createGraphDirectoryFactory({
    credentialFor: createCredentialFor({ ...app, authorityHost: graph.authorityHost }),
    graphBaseUrl: graph.graphBaseUrl,
    customHosts: ['127.0.0.1'],
  })(tenantId);
  const skus = await directory.listSubscribedSkus();
  return skus.find((s) => s.skuId === graphSkuIds.e3)?.enabledUnits ?? 0;
}

async function purchaseEntries() {
  const entries = await deps.licensing.ledger(blueCaller, 'contoso');
  return entries.filter((e) => e.figures.kind !== undefined);
}

/** A store whose commerce-operation writes fail once the checkout step is recorded: the worker "dies". */
function dyingAfterCheckout(store: Store): Store {
  return {
    ping: () => store.ping(),
    collection(name, schema) {
      const inner = store.collection(name, schema);
      if (name !== 'commerceoperations') return inner;
      return {
        get: (pk, rk) => inner.get(pk, rk),
        create: (pk, rk, value) => inner.create(pk, rk, value),
        upsert: (pk, rk, value) => inner.upsert(pk, rk, value),
        delete: (pk, rk, etag) => inner.delete(pk, rk, etag),
        listPage: (pk, options) => inner.listPage(pk, options),
        list: (pk, options) => inner.list(pk, options),
        replace: async (pk, rk, value, etag) => {
          const steps = z
            .object({ steps: z.array(z.object({ name: z.string(), state: z.string() }).loose()) })
            .loose();
          const parsed = steps.safeParse(value);
          if (parsed.success && parsed.data.steps.some((s) => s.name === 'checkout' && s.state === 'done'))
            throw new AppError('Unavailable', 'worker killed after the checkout');
          return inner.replace(pk, rk, value, etag);
        },
      };
    },
  };
}

beforeAll(async () => {
  graph = await startIdentityGraphPeer({
    seed: partnerTenantSeed({ partnerTenant, app: app, roles: graphRoles }),
  });
  ({ partnerCenter, commerce } = await startPartnerCenterFixture({
    graph,
    partnerTenant,
    app,
    graphRoles,
    start: day0,
  }));
  // The provider's existing Partner Center customer (tenant creation has its own test), with MCA.
  const prefix = `sub${run}`;
  const created = await createCustomerWithAgreement(commerce, {
    domain: `${prefix}.onmicrosoft.com`,
    email: `owner@${prefix}.example`,
    run,
    agreedAt: day0,
  });
  pcCustomerId = created.customer.id;
  tenantId = created.customer.tenantId;

  baseSettings = loadSettings({
    LOG_LEVEL: 'warn',
    TableStorage: inject('storageConnectionString'),
    Graph__authorityHost: graph.authorityHost,
    Graph__baseUrl: graph.graphBaseUrl,
    Graph__clientId: app.clientId,
    Graph__clientSecret: app.clientSecret,
    PartnerCenter__baseUrl: partnerCenter.baseUrl,
    PartnerCenter__tenantId: partnerTenant,
    PartnerCenter__clientId: app.clientId,
    PartnerCenter__clientSecret: app.clientSecret,
    PartnerCenter__providerId: providers.blue,
    PartnerCenter__pollAttempts: '1',
    PartnerCenter__pollBaseDelayInMs: '10',
    Engine__leaseDurationInMs: '60000',
    Engine__retryBaseDelayInMs: '1000',
    Engine__retryMaxDelayInMs: '60000',
    Commerce__dailySpendCapPerProvider: '5000',
    Commerce__dailySpendCapPerCustomer: '1000',
    Commerce__approvalThreshold: '200',
  });
  deps = createComposition(baseSettings, { log: quietLogger, clock });
  host = await startLocalHost({ definitions, deps, port: 0, log: quietLogger, timers: false });
  blueCaller.providerId = providers.blue;
  keys.blue = (await deps.callers.createApiKey({ providerId: providers.blue, name: 'blue' })).apiKey;
  keys.red = (await deps.callers.createApiKey({ providerId: providers.red, name: 'red' })).apiKey;
  const put = await api(keys.blue, 'PUT', '/customers/contoso', {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId, domains: [`${prefix}.onmicrosoft.com`] },
    defaultUsageLocation: 'US',
  });
  expect(put.status).toBeLessThan(300);
  const sources = await api(keys.blue, 'PUT', '/customers/contoso/licensing/sources', {
    partnerCenterCustomerId: pcCustomerId,
  });
  expect(sources.status).toBe(200);
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await deps?.close();
  await partnerCenter?.stop();
  await graph?.stop();
});

let firstSubscriptionId = '';

describe('buying a subscription', () => {
  it('dryRun shows what would be bought and at what price, and buys nothing', async () => {
    const answer = await api(keys.blue, 'POST', '/customers/contoso/subscriptions', {
      ...e3,
      quantity: 5,
      reason: 'new staff',
      dryRun: true,
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      dryRun: true,
      catalogItemId: 'CFQ7TTC0LFLZ:0001:CFQ7TTC0N8SL',
      quantity: 5,
      unitPrice: 36,
      amount: 180,
      decision: 'wouldBuy',
    });
    expect(await pcSubscriptions()).toHaveLength(0);
  });

  it('another provider’s key is 404 and buys nothing', async () => {
    const answer = await api(keys.red, 'POST', '/customers/contoso/subscriptions', {
      ...e3,
      quantity: 1,
      reason: 'not mine',
    });
    expect(answer.status).toBe(404);
    expect(await pcSubscriptions()).toHaveLength(0);
  });

  it('with the checkout answer dropped once, async provisioning and the worker killed after checkout: one subscription; ledger = Partner Center = Graph', async () => {
    await admin('POST', '/faults', {
      kind: 'dropAfterCommit',
      count: 1,
      match: { pathIncludes: '/checkout', customerId: pcCustomerId },
    });
    await admin('POST', '/faults', {
      kind: 'asyncProvisioning',
      count: 1,
      delay: 'PT10M',
      match: { customerId: pcCustomerId },
    });
    const body = { ...e3, quantity: 5, reason: 'new staff' };

    // The first worker places the order (its answer is lost once, the adapter re-sends the same
    // MS-RequestId) and dies before it can record the checkout.
    const dying = createComposition(baseSettings, {
      log: quietLogger,
      clock,
      store: dyingAfterCheckout(createTableStore({ connectionString: inject('storageConnectionString') })),
    });
    await expect(
      dying.subscriptions.buy(blueCaller, 'contoso', { ...body, dryRun: false }, `buy-${run}`),
    ).rejects.toThrow('worker killed');
    await dying.close();
    expect(await pcSubscriptions()).toHaveLength(0); // ordered, still provisioning
    const ordersAfterFirst = peerState.parse(await admin('GET', '/state')).orders;

    // The same request again: the same operation (its lease is still live), nothing new ordered.
    const repeat = await api(keys.blue, 'POST', '/customers/contoso/subscriptions', body, {
      'Idempotency-Key': `buy-${run}`,
    });
    expect(repeat.status).toBe(200);
    const operationId = operationSchema.parse(repeat.body).operationId;
    expect(operationSchema.parse(repeat.body).state).toBe('running');

    // The lease expires; the sweeper resumes: checkout again under the same key → the same order.
    await advance(61_000);
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    let op = operationSchema.parse((await api(keys.blue, 'GET', `/commerce-operations/${operationId}`)).body);
    expect(op.state).toBe('retryScheduled');
    expect(op.steps.find((s) => s.name === 'checkout')).toMatchObject({ state: 'done', attempts: 2 });
    expect(op.steps.find((s) => s.name === 'provisioning')).toMatchObject({ state: 'pending' });
    expect(peerState.parse(await admin('GET', '/state')).orders).toBe(ordersAfterFirst);

    // Provisioning finishes in Partner Center; the next poll finds the subscription.
    await advance(10 * 60_000);
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    op = operationSchema.parse((await api(keys.blue, 'GET', `/commerce-operations/${operationId}`)).body);
    expect(op.state).toBe('succeeded');

    const subs = await pcSubscriptions();
    expect(subs).toHaveLength(1);
    expect(subs[0]?.quantity).toBe(5);
    firstSubscriptionId = subs[0]?.id ?? '';
    const entries = await purchaseEntries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      cause: 'purchase',
      idempotencyKey: `${operationId}:ledger`,
      figures: { quantity: 5, amount: 180, unitPrice: 36, reason: 'new staff', operationId },
    });
    expect(await graphE3Seats()).toBe(5);
  });

  it('a buy above the approval threshold waits for approval, then runs', async () => {
    const answer = await api(keys.blue, 'POST', '/customers/contoso/subscriptions', {
      ...e3,
      quantity: 10,
      reason: 'branch office',
    });
    expect(answer.status).toBe(202);
    const held = operationSchema.parse(answer.body);
    expect(held.state).toBe('heldForApproval');
    expect(answer.body.approval).toContain('above the approval threshold of 200');
    expect(await pcSubscriptions()).toHaveLength(1);
    expect((await api(keys.red, 'POST', `/commerce-operations/${held.operationId}/approve`)).status).toBe(
      404,
    );
    // Catalog ids change over time: the availability gets a new id while the buy waits; the approved
    // buy looks the catalog up again and orders under the current id.
    const rotated = z.object({ previous: z.string(), current: z.string() }).parse(
      await admin('POST', '/catalog/rotate-availability', {
        catalogItemId: 'CFQ7TTC0LFLZ:0001:CFQ7TTC0N8SL',
      }),
    );
    const approved = await api(keys.blue, 'POST', `/commerce-operations/${held.operationId}/approve`);
    expect(approved.status).toBe(200);
    expect(operationSchema.parse(approved.body).state).toBe('succeeded');
    expect(await pcSubscriptions()).toHaveLength(2);
    expect((await pcSubscriptions()).map((x) => x.catalogItemId)).toContain(rotated.current);
    expect(await graphE3Seats()).toBe(15);
  });

  it('a buy Partner Center refuses (no Microsoft Customer Agreement) fails visibly and gives its spend back', async () => {
    const created = await commerce.createCustomer(
      {
        domain: `nomca${run}.onmicrosoft.com`,
        companyName: 'No MCA',
        email: `owner@nomca${run}.example`,
        culture: 'en-US',
        language: 'en',
        address: {
          country: 'US',
          city: 'Redmond',
          state: 'WA',
          addressLine1: 'One Microsoft Way',
          postalCode: '98052',
        },
      },
      { operationKey: `create-nomca-${run}` },
    );
    expect(
      (
        await api(keys.blue, 'PUT', '/customers/nomca', {
          displayName: 'No MCA',
          identityMode: 'cloudOnly',
          entra: { tenantId: created.customer.tenantId, domains: [`nomca${run}.onmicrosoft.com`] },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await api(keys.blue, 'PUT', '/customers/nomca/licensing/sources', {
          partnerCenterCustomerId: created.customer.id,
        })
      ).status,
    ).toBe(200);
    const spent = async () =>
      z
        .object({ spentToday: z.object({ provider: z.number(), customer: z.number() }) })
        .loose()
        .parse(
          (
            await api(keys.blue, 'POST', '/customers/nomca/subscriptions', {
              ...e3,
              quantity: 1,
              reason: 'x',
              dryRun: true,
            })
          ).body,
        ).spentToday;
    const before = await spent();
    const answer = await api(keys.blue, 'POST', '/customers/nomca/subscriptions', {
      ...e3,
      quantity: 2,
      reason: 'no mca',
    });
    expect(answer.status).toBe(202);
    const op = operationSchema.parse(answer.body);
    expect(op.state).toBe('failed');
    expect(answer.body.error).toMatchObject({ code: 'AgreementMissing' });
    // It was reserved (2 × 36) before the checkout, and given back when Partner Center refused.
    expect(op.steps.find((s) => s.name === 'spend')).toMatchObject({
      state: 'done',
      result: { reserved: 72 },
    });
    expect(await spent()).toEqual(before);
  });

  it('a buy that would pass the daily per-customer cap is refused with its figures; nothing is bought', async () => {
    const answer = await api(keys.blue, 'POST', '/customers/contoso/subscriptions', {
      ...e3,
      quantity: 15,
      reason: 'too much',
    });
    expect(answer.status).toBe(409);
    expect(answer.body.detail).toContain('daily cap of 1000');
    expect(await pcSubscriptions()).toHaveLength(2);
  });
});

describe('New Commerce changes on the virtual clock', () => {
  const path = () => `/customers/contoso/subscriptions/${firstSubscriptionId}`;
  const finished = (answer: { status: number; body: Record<string, unknown> }) => {
    expect(answer.status).toBe(202);
    return operationSchema.parse(answer.body).state;
  };

  it('adds seats at any time and removes them within the 168-hour window, each on the ledger', async () => {
    expect(
      finished(await api(keys.blue, 'POST', `${path()}/quantity`, { quantity: 7, reason: 'two more' })),
    ).toBe('succeeded');
    expect(
      finished(await api(keys.blue, 'POST', `${path()}/quantity`, { quantity: 6, reason: 'one left' })),
    ).toBe('succeeded');
    const sub = (await pcSubscriptions()).find((s) => s.id === firstSubscriptionId);
    expect(sub?.quantity).toBe(6);
    const entries = (await purchaseEntries()).filter((e) =>
      e.subject.endsWith(firstSubscriptionId.toLowerCase()),
    );
    expect(entries.map((e) => [e.cause, e.figures.quantity])).toEqual([
      ['purchase', 5],
      ['purchase', 7],
      ['reduction', 6],
    ]);
  });

  it('an increase above the approval threshold waits for approval; cancelled, nothing changes', async () => {
    const answer = await api(keys.blue, 'POST', `${path()}/quantity`, { quantity: 16, reason: 'big hire' });
    expect(answer.status).toBe(202);
    const held = operationSchema.parse(answer.body);
    expect(held.state).toBe('heldForApproval');
    const cancelled = await api(keys.blue, 'POST', `/commerce-operations/${held.operationId}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(operationSchema.parse(cancelled.body).state).toBe('cancelled');
    expect((await pcSubscriptions()).find((s) => s.id === firstSubscriptionId)?.quantity).toBe(6);
  });

  it('after the window, a reduction becomes a next-term change; without auto-renew it is refused with the reason', async () => {
    await advance(8 * 24 * hourInMs);
    const scheduled = await api(keys.blue, 'POST', `${path()}/quantity`, {
      quantity: 4,
      reason: 'shrink at renewal',
    });
    expect(finished(scheduled)).toBe('succeeded');
    expect((await pcSubscriptions()).find((s) => s.id === firstSubscriptionId)?.quantity).toBe(6);
    const next = (await commerce.getSubscription(pcCustomerId, firstSubscriptionId)).scheduledRenewal;
    expect(next?.quantity).toBe(4);

    expect(
      finished(await api(keys.blue, 'POST', `${path()}/auto-renew`, { enabled: false, reason: 'ending' })),
    ).toBe('succeeded');
    const refused = await api(keys.blue, 'POST', `${path()}/quantity`, { quantity: 3, reason: 'shrink' });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('ReductionWindowClosed');
    expect(refused.body.detail).toContain('auto-renew');

    const cancel = await api(keys.blue, 'POST', `${path()}/cancel`, { reason: 'too late' });
    expect(cancel.status).toBe(409);
    expect(cancel.body.code).toBe('CancellationWindowClosed');
    expect((await pcSubscriptions()).find((s) => s.id === firstSubscriptionId)?.status).toBe('active');
  });

  it('cancels a fresh subscription within its window, on the ledger', async () => {
    const bought = await api(keys.blue, 'POST', '/customers/contoso/subscriptions', {
      ...exchange,
      quantity: 1,
      reason: 'trial seat',
    });
    expect(finished(bought)).toBe('succeeded');
    const id =
      (await pcSubscriptions()).find((s) => s.catalogItemId === 'CFQ7TTC0LH16:0001:CFQ7TTC0LGSB')?.id ?? '';
    await advance(2 * hourInMs);
    const cancel = await api(keys.blue, 'POST', `/customers/contoso/subscriptions/${id}/cancel`, {
      reason: 'not needed',
    });
    expect(finished(cancel)).toBe('succeeded');
    expect((await pcSubscriptions()).find((s) => s.id === id)?.status).toBe('deleted');
    // A cancelled subscription takes no more changes, each refused with the reason.
    for (const [suffix, body] of [
      ['auto-renew', { enabled: false, reason: 'late' }],
      ['quantity', { quantity: 2, reason: 'late' }],
      ['cancel', { reason: 'again' }],
    ] as const) {
      const refused = await api(keys.blue, 'POST', `/customers/contoso/subscriptions/${id}/${suffix}`, body);
      expect(refused.status, suffix).toBe(409);
      expect(refused.body.detail, suffix).toContain('the subscription is deleted');
    }
    const last = (await purchaseEntries())
      .filter((e: { subject: string }) => e.subject.endsWith(id.toLowerCase()))
      .at(-1);
    expect(last).toMatchObject({
      cause: 'reduction',
      figures: { reason: 'not needed', kind: 'subscription.cancel' },
    });
  });
});
