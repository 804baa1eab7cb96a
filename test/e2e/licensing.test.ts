import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { startDistributorPeer, type DistributorPeer } from '../../dev/peers/distributor/index.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import type { PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { Pax8Distributor } from '../../shared/adapters/distributor/pax8.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import type { Commerce } from '../../shared/ports/commerce.js';
import { graphSkuIds, offers } from '../integration/partner-center/stack.js';
import { createCustomerWithAgreement, startPartnerCenterFixture } from '../support/partner-center.js';
import { quietLogger } from '../support/stack.js';
import { callApi } from '../support/http.js';

/**
 * Licence sources end to end, on the peers: one customer tenant fed at once by Partner Center (1-Tier,
 * through the Partner Center peer), Pax8 (2-Tier, through the distributor peer), an Enterprise Agreement
 * and a third party (subscriptions only Graph knows). Provider "blue" owns both connectors; "green" is a
 * 2-Tier provider without a connector; "red" tries blue's ids. Time: every peer starts at the real now,
 * frozen, so the app's clock and the peers' agree on terms and windows.
 */
const day0 = new Date(Math.floor(Date.now() / 1000) * 1000);
const dayInMs = 86_400_000;
const partnerTenant = randomUUID();
const greenTenant = randomUUID();
const graphApp = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const graphRoles = [
  'Directory.Read.All',
  'Directory.ReadWrite.All',
  'User.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
  'Organization.Read.All',
];
const pax8App = { clientId: `pax8-${randomUUID()}`, clientSecret: `pax8-secret-${randomUUID()}` };
const ids = {
  company: randomUUID(),
  greenCompany: randomUUID(),
  product: randomUUID(),
  commitment: randomUUID(),
  paxSub: randomUUID(),
  eaCommerce: randomUUID(),
  thirdPartyCommerce: randomUUID(),
  suspendedCommerce: randomUUID(),
  greenCommerce: randomUUID(),
};
const run = randomUUID().slice(0, 8);
const providers = { blue: `prov-blue-${run}`, green: `prov-green-${run}`, red: `prov-red-${run}` };
const e3 = graphSkuIds.e3;

let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let distributor: DistributorPeer;
let deps: AppDeps;
let host: LocalHost;
let commerce: Commerce;
let tenant: string;
let pcSubscriptionId: string;
const keys = { blue: '', green: '', red: '' };

async function admin(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`admin ${method} ${path}: ${response.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

const distributorState = z
  .object({
    requests: z.record(z.string(), z.number()),
    subscriptions: z.array(
      z.object({ id: z.string(), quantity: z.number(), appliedChanges: z.number() }).loose(),
    ),
  })
  .loose();
async function paxState(): Promise<z.infer<typeof distributorState>> {
  return distributorState.parse(await admin(distributor.adminUrl, 'GET', '/state'));
}
async function paxSub(): Promise<{ quantity: number; appliedChanges: number }> {
  const found = (await paxState()).subscriptions.find((s) => s.id === ids.paxSub);
  if (found === undefined) throw new Error('no Pax8 subscription');
  return { quantity: found.quantity, appliedChanges: found.appliedChanges };
}

function api(key: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  return callApi(host.url, key, method, path, body, headers);
}

const skuViewSchema = z
  .object({
    skuId: z.string(),
    explanation: z.string(),
    assigned: z.number(),
    free: z.number(),
    supply: z.record(z.string(), z.number()),
    differences: z.array(
      z.object({ code: z.string(), message: z.string(), figures: z.record(z.string(), z.unknown()) }),
    ),
  })
  .loose();
const licensingSchema = z.object({ skus: z.array(skuViewSchema) }).loose();

async function e3View(key = keys.blue, customer = 'contoso') {
  const answer = await api(key, 'GET', `/customers/${customer}/licensing`);
  expect(answer.status).toBe(200);
  const view = licensingSchema.parse(answer.body).skus.find((s) => s.skuId === e3);
  if (view === undefined) throw new Error('no E3 in the reconciliation');
  return view;
}

async function ledgerSize(providerId: string, customerId: string): Promise<number> {
  const caller = { id: 'test', kind: 'apiKey' as const, providerId };
  return (await deps.licensing.ledger(caller, customerId)).length;
}

async function importNow(key = keys.blue, customer = 'contoso') {
  const answer = await api(key, 'POST', `/customers/${customer}/licensing/imports`);
  expect(answer.status).toBe(200);
  expect(answer.body.state).toBe('succeeded');
  return answer.body;
}

beforeAll(async () => {
  graph = await startIdentityGraphPeer({
    seed: {
      tenants: [
        {
          id: partnerTenant,
          displayName: 'Partner',
          domains: [
            { id: `p${partnerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true },
          ],
        },
        {
          id: greenTenant,
          displayName: 'Green Customer',
          domains: [{ id: `g${greenTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true }],
          skus: [{ skuId: e3, skuPartNumber: 'SPE_E3' }],
          subscriptions: [{ commerceSubscriptionId: ids.greenCommerce, skuId: e3, totalLicenses: 7 }],
        },
      ],
      apps: [{ ...graphApp, homeTenantId: partnerTenant, tenants: [greenTenant], roles: graphRoles }],
    },
  });
  ({ partnerCenter, commerce } = await startPartnerCenterFixture({
    graph,
    partnerTenant,
    app: graphApp,
    graphRoles,
    start: day0,
  }));
  // The 1-Tier side as the provider set it up: a Partner Center customer with MCA and two subscriptions.
  const prefix = `lic${run}`;
  const created = await createCustomerWithAgreement(commerce, {
    domain: `${prefix}.onmicrosoft.com`,
    email: `owner@${prefix}.example`,
    run,
    agreedAt: day0,
  });
  tenant = created.customer.tenantId;
  const annual = await commerce.buy(
    created.customer.id,
    [{ catalogItemId: offers.e3, quantity: 4, termDuration: 'P1Y', billingCycle: 'monthly' }],
    { operationKey: `buy-e3-${run}` },
  );
  pcSubscriptionId = annual.orders[0]?.lines[0]?.subscriptionId ?? '';
  await commerce.buy(
    created.customer.id,
    [{ catalogItemId: offers.exchangePlan1, quantity: 2, termDuration: 'P1M', billingCycle: 'monthly' }],
    { operationKey: `buy-exo-${run}` },
  );

  // The 2-Tier side: the same tenant's company at Pax8 with 5 E3 seats on an annual commitment.
  distributor = await startDistributorPeer({
    seed: {
      clock: { start: day0.toISOString(), frozen: true },
      apps: [{ ...pax8App, partnerId: 'blue' }],
      companies: [
        { id: ids.company, name: 'Contoso', partnerId: 'blue', msTenantId: tenant },
        { id: ids.greenCompany, name: 'Green Customer', partnerId: 'blue' },
      ],
      products: [
        {
          id: ids.product,
          name: 'Microsoft 365 E3',
          vendorName: 'Microsoft',
          sku: 'MST-M365-E3',
          vendorSku: offers.e3.split(':').slice(0, 2).join(':'),
          requiresCommitment: true,
          pricing: [
            {
              billingTerm: 'Monthly',
              commitmentTerm: 'Annual',
              commitmentTermInMonths: 12,
              rates: [{ partnerBuyRate: 33, suggestedRetailPrice: 36 }],
            },
          ],
          commitments: [
            { id: ids.commitment, term: 'Annual', autoRenew: true, allowForQuantityIncrease: true },
          ],
          graph: { skuId: e3, skuPartNumber: 'SPE_E3', servicePlans: [] },
        },
      ],
      subscriptions: [
        {
          id: ids.paxSub,
          companyId: ids.company,
          productId: ids.product,
          quantity: 5,
          startDate: new Date(day0.getTime() - 30 * dayInMs).toISOString(),
          billingTerm: 'Monthly',
          commitmentTerm: {
            id: ids.commitment,
            term: 'Annual',
            endDate: new Date(day0.getTime() + 335 * dayInMs).toISOString(),
          },
        },
      ],
    },
    graphAdminUrl: graph.adminUrl,
    followClockUrl: partnerCenter.adminUrl,
    log: () => undefined,
  });

  // What only Graph knows: an EA subscription, a third party's, and a suspended one nobody claims yet.
  const graphSubscription = (commerceId: string, body: Record<string, unknown>) =>
    admin(graph.adminUrl, 'PUT', `/tenants/${tenant}/subscriptions/${commerceId}`, {
      skuId: e3,
      skuPartNumber: 'SPE_E3',
      isTrial: false,
      ownerTenantId: null,
      ...body,
    });
  await graphSubscription(ids.eaCommerce, {
    totalLicenses: 6,
    status: 'Enabled',
    nextLifecycleDateTime: new Date(day0.getTime() + 20 * dayInMs).toISOString(),
  });
  await graphSubscription(ids.thirdPartyCommerce, { totalLicenses: 3, status: 'Enabled' });
  await graphSubscription(ids.suspendedCommerce, { totalLicenses: 2, status: 'Suspended' });

  // Three users hold an E3 seat.
  const directory = createGraphDirectoryFactory({
    credentialFor: createCredentialFor({ ...graphApp, authorityHost: graph.authorityHost }),
    graphBaseUrl: graph.graphBaseUrl,
    customHosts: ['127.0.0.1'],
  })(tenant);
  const domain = `${prefix}.onmicrosoft.com`;
  for (const name of ['ada', 'bob', 'cy']) {
    const user = await directory.createUser({
      userPrincipalName: `${name}@${domain}`,
      displayName: name,
      mailNickname: name,
      accountEnabled: true,
      usageLocation: 'US',
      password: `Str0ng!Passw0rd#${name}`,
      forceChangePasswordNextSignIn: false,
    });
    await directory.assignLicences(user.id, { add: [{ skuId: e3, disabledPlanIds: [] }], remove: [] });
  }

  const settings = loadSettings({
    LOG_LEVEL: 'warn',
    TableStorage: inject('storageConnectionString'),
    Graph__authorityHost: graph.authorityHost,
    Graph__baseUrl: graph.graphBaseUrl,
    Graph__clientId: graphApp.clientId,
    Graph__clientSecret: graphApp.clientSecret,
    PartnerCenter__baseUrl: partnerCenter.baseUrl,
    PartnerCenter__tenantId: partnerTenant,
    PartnerCenter__clientId: graphApp.clientId,
    PartnerCenter__clientSecret: graphApp.clientSecret,
    PartnerCenter__providerId: providers.blue,
    Distributor__baseUrl: distributor.baseUrl,
    Distributor__clientId: pax8App.clientId,
    Distributor__clientSecret: pax8App.clientSecret,
    Distributor__providerId: providers.blue,
  });
  deps = createComposition(settings, { log: quietLogger });
  host = await startLocalHost({ definitions, deps, port: 0, log: quietLogger, timers: false });
  keys.blue = (await deps.callers.createApiKey({ providerId: providers.blue, name: 'blue' })).apiKey;
  keys.green = (await deps.callers.createApiKey({ providerId: providers.green, name: 'green' })).apiKey;
  keys.red = (await deps.callers.createApiKey({ providerId: providers.red, name: 'red' })).apiKey;

  const customer = (tenantId: string, domainName: string) => ({
    displayName: 'Customer',
    identityMode: 'cloudOnly',
    entra: { tenantId, domains: [domainName] },
    defaultUsageLocation: 'US',
    licencePlans: [{ name: 'E3', skus: [{ skuId: e3 }] }],
  });
  expect((await api(keys.blue, 'PUT', '/customers/contoso', customer(tenant, domain))).status).toBeLessThan(
    300,
  );
  expect(
    (
      await api(
        keys.green,
        'PUT',
        '/customers/greenco',
        customer(greenTenant, `g${greenTenant.slice(0, 8)}.onmicrosoft.com`),
      )
    ).status,
  ).toBeLessThan(300);
  const sources = await api(keys.blue, 'PUT', '/customers/contoso/licensing/sources', {
    partnerCenterCustomerId: created.customer.id,
    distributorCompanyId: ids.company,
    assignmentPolicy: ['ea', 'distributor', 'partnerCenter'],
  });
  expect(sources.status).toBe(200);
  const greenSources = await api(keys.green, 'PUT', '/customers/greenco/licensing/sources', {
    distributorCompanyId: ids.greenCompany,
    assignmentPolicy: ['distributor'],
  });
  expect(greenSources.status).toBe(200);
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await deps?.close();
  await distributor?.stop();
  await partnerCenter?.stop();
  await graph?.stop();
});

describe('licence sources', () => {
  it('stores the sources apart from the customer and names the connectors, never their credentials', async () => {
    const answer = await api(keys.blue, 'GET', '/customers/contoso/licensing/sources');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      distributorCompanyId: ids.company,
      assignmentPolicy: ['ea', 'distributor', 'partnerCenter'],
      connectors: { partnerCenter: true, distributor: true, distributorName: 'Pax8' },
    });
    const text = JSON.stringify(answer.body);
    expect(text).not.toContain(pax8App.clientSecret);
    expect(text).not.toContain(graphApp.clientSecret);
    const green = await api(keys.green, 'GET', '/customers/greenco/licensing/sources');
    expect(green.body).toMatchObject({ connectors: { partnerCenter: false, distributor: false } });
    const customer = await api(keys.blue, 'GET', '/customers/contoso');
    expect(JSON.stringify(customer.body)).not.toContain(ids.company);
  });
  it("refuses a Partner Center customer that is not the customer's own tenant, or a company not the provider's", async () => {
    const other = await commerce.createCustomer(
      {
        domain: `other${run}.onmicrosoft.com`,
        companyName: 'Other',
        email: `owner@other${run}.example`,
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
      { operationKey: `create-other-${run}` },
    );
    const before = (await api(keys.blue, 'GET', '/customers/contoso/licensing/sources')).body;
    for (const partnerCenterCustomerId of [other.customer.id, randomUUID()]) {
      const answer = await api(keys.blue, 'PUT', '/customers/contoso/licensing/sources', {
        partnerCenterCustomerId,
        distributorCompanyId: ids.company,
      });
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([expect.objectContaining({ path: 'body.partnerCenterCustomerId' })]);
    }
    const foreignCompany = await api(keys.blue, 'PUT', '/customers/contoso/licensing/sources', {
      distributorCompanyId: randomUUID(),
    });
    expect(foreignCompany.status).toBe(400);
    expect(foreignCompany.body.errors).toEqual([
      expect.objectContaining({ path: 'body.distributorCompanyId' }),
    ]);
    expect((await api(keys.blue, 'GET', '/customers/contoso/licensing/sources')).body).toEqual(before);
  });
});

describe('a customer fed by four sources', () => {
  it('reconciles Partner Center, Pax8 and the unexplained rest against Graph supply and assignments', async () => {
    const record = await importNow();
    expect(record.phases).toEqual([
      expect.objectContaining({ name: 'partnerCenter', state: 'done', read: 2 }),
      expect.objectContaining({ name: 'distributor', state: 'done', read: 1 }),
      expect.objectContaining({ name: 'graph', state: 'done' }),
    ]);
    const view = await e3View();
    expect(view.explanation).toBe(
      'CSP supplies 4, Pax8 5, unlabelled 9 (EA?), Graph enabled 18, 2 suspended, 3 assigned',
    );
    expect(view).toMatchObject({ assigned: 3, free: 15 });
    expect(view.differences.map((d) => [d.code, d.figures.seats])).toEqual([
      ['unexplainedSubscription', 6],
      ['unexplainedSubscription', 3],
      ['unexplainedSubscription', 2],
    ]);
    const subscriptions = await api(keys.blue, 'GET', '/customers/contoso/subscriptions');
    const list = z
      .object({
        value: z.array(
          z
            .object({
              commerceSubscriptionId: z.string().optional(),
              source: z.string(),
              matchedBy: z.string().optional(),
            })
            .loose(),
        ),
      })
      .parse(subscriptions.body).value;
    expect(list.find((s) => s.commerceSubscriptionId === pcSubscriptionId)).toMatchObject({
      source: 'partnerCenter',
      matchedBy: 'commerceSubscriptionId',
    });
    expect(list.filter((s) => s.source === 'distributor')).toEqual([
      expect.objectContaining({ matchedBy: 'vendorSubscriptionId', seats: 5 }),
    ]);
  });

  it('an import that finds nothing new writes nothing; a change at the source is one entry with its figures', async () => {
    const before = await ledgerSize(providers.blue, 'contoso');
    await importNow();
    expect(await ledgerSize(providers.blue, 'contoso')).toBe(before);
    const pcCustomer = (await api(keys.blue, 'GET', '/customers/contoso/licensing/sources')).body
      .partnerCenterCustomerId as string;
    await commerce.changeQuantity(pcCustomer, pcSubscriptionId, 6, { operationKey: `grow-${run}` });
    await importNow();
    const entries = await deps.licensing.ledger(
      { id: 'test', kind: 'apiKey', providerId: providers.blue },
      'contoso',
    );
    const pcEntries = entries.filter((e) => e.subject === `partnerCenter:${pcSubscriptionId.toLowerCase()}`);
    expect(pcEntries.at(-1)).toMatchObject({
      cause: 'import',
      figures: { quantityBefore: 4, quantityAfter: 6 },
      changes: expect.arrayContaining(['quantity: 4 → 6']) as unknown,
    });
    expect((await e3View()).explanation).toBe(
      'CSP supplies 6, Pax8 5, unlabelled 9 (EA?), Graph enabled 20, 2 suspended, 3 assigned',
    );
  });

  it('an unexplained Graph subscription is surfaced until it is labelled', async () => {
    const subscriptions = z
      .object({
        value: z.array(z.object({ id: z.string(), commerceSubscriptionId: z.string().optional() }).loose()),
      })
      .parse((await api(keys.blue, 'GET', '/customers/contoso/subscriptions')).body).value;
    const idOf = (commerceId: string): string =>
      subscriptions.find((s) => s.commerceSubscriptionId === commerceId)?.id ?? 'missing';
    const ea = await api(keys.blue, 'PUT', `/customers/contoso/subscriptions/${idOf(ids.eaCommerce)}/label`, {
      kind: 'ea',
      resellerName: 'SoftwareOne',
    });
    expect(ea.status).toBe(200);
    let view = await e3View();
    expect(view.differences.filter((d) => d.code === 'unexplainedSubscription')).toHaveLength(2);
    await api(keys.blue, 'PUT', `/customers/contoso/subscriptions/${idOf(ids.thirdPartyCommerce)}/label`, {
      kind: 'thirdParty',
      resellerName: 'Crayon',
    });
    await api(keys.blue, 'PUT', `/customers/contoso/subscriptions/${idOf(ids.suspendedCommerce)}/label`, {
      kind: 'thirdParty',
      resellerName: 'Crayon',
    });
    view = await e3View();
    expect(view.explanation).toBe(
      'CSP supplies 6, Pax8 5, EA 6, third party 3, Graph enabled 20, 2 suspended, 3 assigned',
    );
    expect(view.differences).toEqual([]);
    // A subscription Partner Center explains cannot be relabelled as EA.
    const pc = await api(
      keys.blue,
      'PUT',
      `/customers/contoso/subscriptions/${idOf(pcSubscriptionId)}/label`,
      {
        kind: 'ea',
      },
    );
    expect(pc.status).toBe(409);
  });

  it('renewals alert only where a person is needed: the monthly Exchange term is listed, not alerted', async () => {
    const answer = await api(keys.blue, 'GET', '/customers/contoso/licensing/renewals?days=40');
    expect(answer.status).toBe(200);
    const items = z
      .object({
        value: z.array(
          z
            .object({
              source: z.string(),
              outcome: z.string(),
              alert: z.string().optional(),
              term: z.string().optional(),
            })
            .loose(),
        ),
      })
      .parse(answer.body).value;
    expect(items.map((i) => [i.source, i.outcome, i.term, i.alert !== undefined])).toEqual([
      ['ea', 'unknown', undefined, true],
      ['partnerCenter', 'autoRenew', 'P1M', false],
    ]);
    expect(items[0]?.alert).toContain('SoftwareOne');
  });
});

describe('changing seats', () => {
  it('EA seats are never bought or reduced: asking is a shortage report and changes nothing', async () => {
    const before = { ledger: await ledgerSize(providers.blue, 'contoso'), pax: await paxState() };
    for (const change of [5, -1]) {
      const answer = await api(keys.blue, 'POST', '/customers/contoso/purchase-requests', {
        skuId: e3,
        change,
        source: 'ea',
        reason: 'new starters',
      });
      expect(answer.status).toBe(409);
      expect(answer.body).toMatchObject({ reason: 'SourceReadOnly', source: 'ea' });
    }
    const list = await api(keys.blue, 'GET', '/customers/contoso/purchase-requests');
    expect(list.body.value).toEqual([]);
    expect(await ledgerSize(providers.blue, 'contoso')).toBe(before.ledger);
    expect(await paxState()).toEqual(before.pax);
  });

  it('a 2-Tier change without a connector is a purchase request and nothing else until approved', async () => {
    await importNow(keys.green, 'greenco');
    const before = { ledger: await ledgerSize(providers.green, 'greenco'), pax: await paxState() };
    const created = await api(
      keys.green,
      'POST',
      '/customers/greenco/purchase-requests',
      {
        skuId: e3,
        change: 3,
        source: 'distributor',
        reason: 'three new hires',
        forWhom: ['dee', 'eve', 'fay'],
      },
      { 'idempotency-key': `green-${run}` },
    );
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      state: 'pending',
      path: 'manual',
      sourceName: 'Pax8',
      targetQuantity: 3,
      forWhom: ['dee', 'eve', 'fay'],
      demand: { enabled: 7, assigned: 0 },
    });
    const replay = await api(
      keys.green,
      'POST',
      '/customers/greenco/purchase-requests',
      {
        skuId: e3,
        change: 3,
        source: 'distributor',
        reason: 'three new hires',
        forWhom: ['dee', 'eve', 'fay'],
      },
      { 'idempotency-key': `green-${run}` },
    );
    expect(replay.status).toBe(200);
    expect(replay.body.requestId).toBe(created.body.requestId);
    expect(await ledgerSize(providers.green, 'greenco')).toBe(before.ledger);
    expect(await paxState()).toEqual(before.pax);

    const rejected = await api(
      keys.green,
      'POST',
      `/customers/greenco/purchase-requests/${String(created.body.requestId)}/reject`,
      {
        note: 'use the spare seats',
      },
    );
    expect(rejected.body).toMatchObject({ state: 'rejected' });
    expect(await ledgerSize(providers.green, 'greenco')).toBe(before.ledger);

    const second = await api(keys.green, 'POST', '/customers/greenco/purchase-requests', {
      skuId: e3,
      change: 2,
      source: 'distributor',
      reason: 'two new hires',
    });
    const approved = await api(
      keys.green,
      'POST',
      `/customers/greenco/purchase-requests/${String(second.body.requestId)}/approve`,
      {},
    );
    expect([approved.status, approved.body.detail]).toEqual([200, undefined]);
    expect(approved.body).toMatchObject({ state: 'applied', path: 'manual' });
    const entries = await deps.licensing.ledger(
      { id: 't', kind: 'apiKey', providerId: providers.green },
      'greenco',
    );
    expect(entries).toHaveLength(before.ledger + 1);
    expect(entries.at(-1)).toMatchObject({
      cause: 'purchase',
      figures: { quantityAfter: 2, path: 'manual' },
    });
    // Nobody talked to the distributor.
    expect(await paxState()).toEqual(before.pax);
  });

  it('with the Pax8 connector an approved change reaches the distributor exactly once under 429s and lost answers', async () => {
    const start = await paxSub();
    const created = await api(keys.blue, 'POST', '/customers/contoso/purchase-requests', {
      skuId: e3,
      change: 2,
      source: 'distributor',
      reason: 'two new hires',
      forWhom: ['gil', 'hal'],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ path: 'connector', currentQuantity: 5, targetQuantity: 7 });
    expect(await paxSub()).toEqual(start);

    await admin(distributor.adminUrl, 'POST', '/faults', {
      kind: 'throttle',
      count: 2,
      retryAfterInSeconds: 0,
      match: { method: 'PUT', pathIncludes: '/subscriptions/' },
    });
    await admin(distributor.adminUrl, 'POST', '/faults', {
      kind: 'errorAfterCommit',
      count: 1,
      match: { method: 'PUT', pathIncludes: '/subscriptions/' },
    });
    const path = `/customers/contoso/purchase-requests/${String(created.body.requestId)}/approve`;
    const approved = await api(keys.blue, 'POST', path, {});
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ state: 'applied' });
    // The same approval again (a client retry) answers the same and sends nothing.
    expect((await api(keys.blue, 'POST', path, {})).body).toMatchObject({ state: 'applied' });
    expect(await paxSub()).toEqual({ quantity: 7, appliedChanges: start.appliedChanges + 1 });
    // Every injected fault was met (two 429s, then an answer lost after the change was made).
    expect(await admin(distributor.adminUrl, 'GET', '/faults')).toEqual({ faults: [] });
    const entries = await deps.licensing.ledger(
      { id: 't', kind: 'apiKey', providerId: providers.blue },
      'contoso',
    );
    expect(
      entries.filter((e) => e.idempotencyKey === `purchaseRequest:${String(created.body.requestId)}`),
    ).toEqual([
      expect.objectContaining({
        cause: 'purchase',
        figures: expect.objectContaining({ quantityBefore: 5, quantityAfter: 7 }) as unknown,
      }),
    ]);
  });
  it('an approval never undoes a change made at the distributor since the request was written', async () => {
    const created = await api(keys.blue, 'POST', '/customers/contoso/purchase-requests', {
      skuId: e3,
      change: 1,
      source: 'distributor',
      reason: 'one more',
    });
    expect(created.body).toMatchObject({ currentQuantity: 7, targetQuantity: 8 });
    // Someone changes the quantity in the distributor's own portal meanwhile.
    await new Pax8Distributor({ ...pax8App, baseUrl: distributor.baseUrl }).changeQuantity(
      ids.company,
      ids.paxSub,
      9,
    );
    const before = { ledger: await ledgerSize(providers.blue, 'contoso'), pax: await paxSub() };
    const approved = await api(
      keys.blue,
      'POST',
      `/customers/contoso/purchase-requests/${String(created.body.requestId)}/approve`,
      {},
    );
    expect(approved.status).toBe(409);
    expect(approved.body).toMatchObject({ figures: { requestedFrom: 7, now: 9, target: 8 } });
    expect(await paxSub()).toEqual(before.pax);
    expect(await ledgerSize(providers.blue, 'contoso')).toBe(before.ledger);
  });
});

describe('another provider', () => {
  it("gets 404 on every licensing route for blue's customer, exactly like a missing one, and changes nothing", async () => {
    const requests = z
      .object({ value: z.array(z.object({ requestId: z.string() }).loose()) })
      .parse((await api(keys.blue, 'GET', '/customers/contoso/purchase-requests')).body).value;
    const requestId = requests[0]?.requestId ?? 'none';
    const before = {
      ledger: await ledgerSize(providers.blue, 'contoso'),
      pax: await paxState(),
      requests: JSON.stringify(requests),
    };
    const routes: [string, string, unknown?][] = [
      ['GET', '/licensing/sources'],
      ['PUT', '/licensing/sources', { assignmentPolicy: ['partnerCenter'] }],
      ['POST', '/licensing/imports'],
      ['GET', '/licensing/imports/any'],
      ['GET', '/licensing'],
      ['GET', '/subscriptions'],
      ['PUT', '/subscriptions/any/label', { kind: 'ea' }],
      ['GET', '/licensing/renewals?days=30'],
      ['POST', '/purchase-requests', { skuId: e3, change: 1, reason: 'x' }],
      ['GET', '/purchase-requests'],
      ['POST', `/purchase-requests/${requestId}/approve`, {}],
      ['POST', `/purchase-requests/${requestId}/reject`, {}],
    ];
    for (const [method, suffix, body] of routes) {
      const theirs = await api(keys.red, method, `/customers/contoso${suffix}`, body);
      const missing = await api(keys.red, method, `/customers/nosuch${suffix}`, body);
      expect([suffix, theirs.status, theirs.body.code]).toEqual([suffix, 404, 'NotFound']);
      expect(String(theirs.body.detail).replace('contoso', '<id>')).toBe(
        String(missing.body.detail).replace('nosuch', '<id>'),
      );
    }
    expect(await ledgerSize(providers.blue, 'contoso')).toBe(before.ledger);
    expect(await paxState()).toEqual(before.pax);
    const after = z
      .object({ value: z.array(z.object({ requestId: z.string() }).loose()) })
      .parse((await api(keys.blue, 'GET', '/customers/contoso/purchase-requests')).body).value;
    expect(JSON.stringify(after)).toBe(before.requests);
    // The blue connectors are not red's: red's own customers never reach them.
    expect((await api(keys.red, 'GET', '/customers/contoso/licensing/sources')).status).toBe(404);
  });
});

describe('terms come from the source', () => {
  it('a renewal at Partner Center is recorded as a renewal with the new term end Partner Center states', async () => {
    const pcCustomer = String(
      (await api(keys.blue, 'GET', '/customers/contoso/licensing/sources')).body.partnerCenterCustomerId,
    );
    const monthly = (await commerce.listSubscriptions(pcCustomer)).find((s) => s.termDuration === 'P1M');
    if (monthly?.commitmentEndDate === undefined) throw new Error('no monthly subscription');
    await admin(partnerCenter.adminUrl, 'POST', '/clock', { advanceByInMs: 32 * dayInMs });
    const renewed = await commerce.getSubscription(pcCustomer, monthly.id);
    expect(renewed.commitmentEndDate?.getTime()).toBeGreaterThan(monthly.commitmentEndDate.getTime());
    await importNow();
    const entries = await deps.licensing.ledger(
      { id: 't', kind: 'apiKey', providerId: providers.blue },
      'contoso',
    );
    const last = entries.filter((e) => e.subject === `partnerCenter:${monthly.id.toLowerCase()}`).at(-1);
    expect(last).toMatchObject({
      cause: 'renewal',
      value: { kind: 'subscription', subscription: { termEndsOn: renewed.commitmentEndDate?.toISOString() } },
    });
  });
});
