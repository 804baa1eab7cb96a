import { partnerTenantSeed } from '../support/partner-center.js';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import { startPartnerCenterPeer, type PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import type { Caller } from '../../shared/domain/caller.js';
import { AppError } from '../../shared/errors.js';
import type { Clock } from '../../shared/ports/clock.js';
import type { Store } from '../../shared/ports/store.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { demoCatalog, graphSkuIds } from '../integration/partner-center/stack.js';
import { newTenantInputSchema } from '../../shared/usecases/tenants/tenants.js';
import { quietLogger } from '../support/stack.js';
import { callApi } from '../support/http.js';

/**
 * Tenant creation for a 1-Tier provider end to end on the peers (issue 14): availability (alternatives
 * when taken), address validation and a country's rules as clear 400s, the customer created once although
 * its answer is dropped and the worker dies right after Partner Center created it, the MCA recorded, the
 * tenant linked to the Atria customer, the admin password handed out exactly once — then a subscription
 * bought for it with the checkout answer dropped: one tenant, one subscription, ledger = Partner Center
 * = Graph. Another provider's key reaches none of it.
 */
const day0 = new Date(Math.floor(Date.now() / 1000) * 1000);
const partnerTenant = randomUUID();
const app = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const graphRoles = [
  'Directory.Read.All',
  'Directory.ReadWrite.All',
  'Domain.ReadWrite.All',
  'Organization.Read.All',
  'LicenseAssignment.ReadWrite.All',
];
const run = randomUUID().slice(0, 8);
const providers = { blue: `prov-blue-${run}`, red: `prov-red-${run}` };
const prefix = `fab${run}`;

let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let deps: AppDeps;
let host: LocalHost;
let baseSettings: ReturnType<typeof loadSettings>;
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

const peerState = z.object({
  customers: z.array(z.object({ id: z.string(), domain: z.string(), agreements: z.number() }).loose()),
  subscriptions: z.array(
    z.object({ id: z.string(), customerId: z.string(), quantity: z.number(), status: z.string() }).loose(),
  ),
});
const state = async () => peerState.parse(await admin('GET', '/state'));

function api(key: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  return callApi(host.url, key, method, path, body, headers);
}

const operationSchema = z
  .object({
    operationId: z.string(),
    state: z.string(),
    steps: z.array(
      z
        .object({
          name: z.string(),
          state: z.string(),
          attempts: z.number(),
          result: z.record(z.string(), z.unknown()).optional(),
        })
        .loose(),
    ),
  })
  .loose();

/** A store whose commerce-operation writes fail once the named step is recorded done: the worker dies. */
function dyingAfter(store: Store, stepName: string): Store {
  const shape = z
    .object({ steps: z.array(z.object({ name: z.string(), state: z.string() }).loose()) })
    .loose();
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
          const parsed = shape.safeParse(value);
          if (parsed.success && parsed.data.steps.some((s) => s.name === stepName && s.state === 'done'))
            throw new AppError('Unavailable', `worker killed after ${stepName}`);
          return inner.replace(pk, rk, value, etag);
        },
      };
    },
  };
}

const details = (overrides: Record<string, unknown> = {}) => ({
  domainPrefix: prefix,
  companyName: 'Fabrikam',
  email: `owner@${prefix}.example`,
  address: {
    country: 'US',
    city: 'Redmond',
    state: 'WA',
    addressLine1: '1 Microsoft Way',
    postalCode: '98052',
  },
  agreement: { firstName: 'Ana', lastName: 'Bell', email: 'ana@fabrikam.example' },
  ...overrides,
});
const newTenant = (overrides: Record<string, unknown> = {}) => ({
  customerId: 'fabrikam',
  customer: { displayName: 'Fabrikam', identityMode: 'cloudOnly', defaultUsageLocation: 'US' },
  ...details(overrides),
});

beforeAll(async () => {
  graph = await startIdentityGraphPeer({
    seed: partnerTenantSeed({ partnerTenant, app: app, roles: graphRoles }),
  });
  partnerCenter = await startPartnerCenterPeer({
    seed: {
      clock: { start: day0.toISOString(), frozen: true },
      partners: [{ tenantId: partnerTenant, name: 'Blue Partner', apps: [{ ...app, graphRoles }] }],
      catalog: demoCatalog,
    },
    identity: { authorityHost: graph.authorityHost },
    graphAdminUrl: graph.adminUrl,
    log: () => undefined,
  });
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
  });
  deps = createComposition(baseSettings, { log: quietLogger, clock });
  host = await startLocalHost({ definitions, deps, port: 0, log: quietLogger, timers: false });
  blueCaller.providerId = providers.blue;
  keys.blue = (await deps.callers.createApiKey({ providerId: providers.blue, name: 'blue' })).apiKey;
  keys.red = (await deps.callers.createApiKey({ providerId: providers.red, name: 'red' })).apiKey;
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await deps?.close();
  await partnerCenter?.stop();
  await graph?.stop();
});

let operationId = '';
const directory = () =>
  createGraphDirectoryFactory({
    credentialFor: createCredentialFor({ ...app, authorityHost: graph.authorityHost }),
    graphBaseUrl: graph.graphBaseUrl,
    customHosts: ['127.0.0.1'],
  })(tenantId);
let tenantId = '';

describe('creating a tenant through Partner Center', () => {
  it('refuses an address Partner Center cannot validate, and a country rule, with clear 400s; nothing is created', async () => {
    const badZip = await api(
      keys.blue,
      'POST',
      '/tenants',
      newTenant({ address: { ...details().address, postalCode: 'ABC' } }),
    );
    expect(badZip.status).toBe(400);
    expect(JSON.stringify(badZip.body)).toContain('body.address');
    const india = await api(
      keys.blue,
      'POST',
      '/tenants',
      newTenant({
        address: {
          country: 'IN',
          state: 'MH',
          city: 'Pune',
          addressLine1: '1 MG Road',
          postalCode: '411001',
          phoneNumber: '+912012345678',
        },
      }),
    );
    expect(india.status).toBe(400);
    expect(india.body.detail).toContain('organizationRegistrationNumber');
    expect((await state()).customers).toHaveLength(0);
  });

  it('with the create answer dropped and the worker killed after Partner Center created it: one tenant, MCA, linked', async () => {
    await admin('POST', '/faults', {
      kind: 'dropAfterCommit',
      count: 1,
      match: { method: 'POST', pathIncludes: '/v1/customers' },
    });
    const dying = createComposition(baseSettings, {
      log: quietLogger,
      clock,
      store: dyingAfter(
        createTableStore({ connectionString: inject('storageConnectionString') }),
        'customer.create',
      ),
    });
    const input = newTenant();
    // The request as the API parses it (what the HTTP repeat below will be compared with).
    await expect(
      dying.tenants.createWithCustomer(blueCaller, newTenantInputSchema.parse(input)),
    ).rejects.toThrow('worker killed after customer.create');
    await dying.close();
    expect((await state()).customers.filter((c) => c.domain === `${prefix}.onmicrosoft.com`)).toHaveLength(1);

    // The same request again (over HTTP) is the same operation; the sweeper resumes it once its lease expires.
    const repeat = await api(keys.blue, 'POST', '/tenants', input);
    expect(repeat.status).toBe(200);
    operationId = operationSchema.parse(repeat.body).operationId;
    now += 61_000;
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    const op = operationSchema.parse(
      (await api(keys.blue, 'GET', `/commerce-operations/${operationId}`)).body,
    );
    expect(op.state).toBe('succeeded');
    expect(op.steps.find((s) => s.name === 'customer.create')).toMatchObject({ state: 'done', attempts: 2 });

    const after = await state();
    const created = after.customers.filter((c) => c.domain === `${prefix}.onmicrosoft.com`);
    expect(created).toHaveLength(1);
    expect(created[0]?.agreements).toBe(1);
    const linked = await api(keys.blue, 'GET', '/customers/fabrikam');
    expect(linked.status).toBe(200);
    tenantId = z
      .object({ entra: z.object({ tenantId: z.string() }) })
      .loose()
      .parse(linked.body).entra.tenantId;
    expect(tenantId).toBe(created[0]?.id);
    const sources = await api(keys.blue, 'GET', '/customers/fabrikam/licensing/sources');
    expect(sources.body.partnerCenterCustomerId).toBe(created[0]?.id);
  });

  it('a taken initial domain is refused with free alternatives', async () => {
    const taken = await api(
      keys.blue,
      'POST',
      '/tenants',
      { ...newTenant(), customerId: 'other' },
      { 'Idempotency-Key': `other-${run}` },
    );
    expect(taken.status).toBe(409);
    const alternatives = z
      .array(z.string())
      .parse(
        taken.body.alternatives ?? (taken.body.details as Record<string, unknown> | undefined)?.alternatives,
      );
    expect(alternatives.length).toBeGreaterThan(0);
    for (const name of alternatives)
      expect(name).toMatch(new RegExp(`^${prefix}[a-z0-9]*\\.onmicrosoft\\.com$`));
  });

  it('hands the admin password out exactly once, never in the operation, and not to another provider', async () => {
    const path = '/customers/fabrikam/tenant/admin-credentials';
    expect((await api(keys.red, 'POST', path, { operationId })).status).toBe(404);
    const op = await api(keys.blue, 'GET', `/commerce-operations/${operationId}`);
    const stored = deps.store.collection(
      'tenantcredentials',
      z.object({ sealedPassword: z.string() }).loose(),
    );
    const sealed = (await stored.get(providers.blue, operationId))?.value.sealedPassword ?? '';
    const first = await api(keys.blue, 'POST', path, { operationId });
    expect(first.status).toBe(200);
    const secret = z
      .object({ userName: z.string(), userPrincipalName: z.string(), password: z.string().min(8) })
      .parse(first.body);
    expect(secret.userPrincipalName).toBe(`${secret.userName}@${prefix}.onmicrosoft.com`);
    expect(JSON.stringify(op.body)).not.toContain(secret.password);
    // Kept sealed (never in clear) until now, and gone after.
    expect(sealed.length).toBeGreaterThan(20);
    expect(sealed).not.toContain(secret.password);
    expect(await stored.get(providers.blue, operationId)).toBeUndefined();
    const second = await api(keys.blue, 'POST', path, { operationId });
    expect(second.status).toBe(409);
  });

  it('another provider cannot create a tenant for this customer or read the operation', async () => {
    expect(
      (await api(keys.red, 'POST', '/customers/fabrikam/tenant', details({ domainPrefix: `red${run}` })))
        .status,
    ).toBe(404);
    expect((await api(keys.red, 'GET', `/commerce-operations/${operationId}`)).status).toBe(404);
  });

  it('a custom domain: DNS records handed back, verification polled while the record is missing, verified on request, then a UPN suffix', async () => {
    const domain = `${prefix}.example`;
    // The domain is in the tenant already (added by hand) and its record is not published yet.
    await directory().addDomain(domain);
    const dns = await fetch(`${graph.adminUrl}/tenants/${tenantId}/domains/${domain}/dns`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ verificationRecord: 'missing' }),
    });
    expect(dns.status).toBe(200);
    expect((await api(keys.red, 'POST', '/customers/fabrikam/domains', { domain })).status).toBe(404);

    const added = await api(keys.blue, 'POST', '/customers/fabrikam/domains', { domain });
    expect(added.status).toBe(202);
    let op = operationSchema.parse(added.body);
    expect(op.state).toBe('retryScheduled');
    expect(op.steps.find((s) => s.name === 'records')?.result?.txt).toMatch(/^MS=ms\d+$/);
    expect(op.steps.find((s) => s.name === 'verify')).toMatchObject({ state: 'pending' });
    expect(JSON.stringify(op.steps.find((s) => s.name === 'verify'))).toContain('not verified yet');

    // A poll while it is still missing stays scheduled (with a later attempt time).
    now += 5 * 60_000;
    await deps.commerceOperations.sweep({ providerId: providers.blue });
    op = operationSchema.parse((await api(keys.blue, 'GET', `/commerce-operations/${op.operationId}`)).body);
    expect(op.state).toBe('retryScheduled');

    await fetch(`${graph.adminUrl}/tenants/${tenantId}/domains/${domain}/dns`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ verificationRecord: 'present' }),
    });
    const verified = await api(keys.blue, 'POST', `/customers/fabrikam/domains/${domain}/verify`);
    expect(verified.status).toBe(200);
    expect(operationSchema.parse(verified.body).state).toBe('succeeded');
    expect((await directory().getDomain(domain)).isVerified).toBe(true);
    const customer = z
      .object({ entra: z.object({ domains: z.array(z.string()) }) })
      .loose()
      .parse((await api(keys.blue, 'GET', '/customers/fabrikam')).body);
    expect(customer.entra.domains).toContain(domain);
    // A repeat is the same operation.
    expect((await api(keys.blue, 'POST', '/customers/fabrikam/domains', { domain })).status).toBe(200);
  });

  it('an existing AD-only customer gets its tenant; made hybrid, its custom domain is added, verified and federated to its ADFS', async () => {
    const hybridPrefix = `hyb${run}`;
    // An AD-only customer (its site and OU) that now gets a Microsoft 365 tenant.
    const site = await api(keys.blue, 'PUT', `/sites/hyb-${run}`, {
      publicKeyPem: generateSiteKeyPair().publicKeyPem,
      agentPublicKeyPem: generateSigningKeyPair().publicKeyPem,
    });
    expect(site.status).toBeLessThan(300);
    const ad = {
      siteId: `hyb-${run}`,
      usersOu: 'OU=Users,DC=hybco,DC=test',
      upnSuffixes: [`${hybridPrefix}.test`],
    };
    const put = await api(keys.blue, 'PUT', '/customers/hybco', {
      displayName: 'Hybco',
      identityMode: 'adOnly',
      ad,
    });
    expect(put.status).toBe(201);
    const created = await api(
      keys.blue,
      'POST',
      '/customers/hybco/tenant',
      details({ domainPrefix: hybridPrefix }),
    );
    expect(created.status).toBe(202);
    expect(operationSchema.parse(created.body).state).toBe('succeeded');
    const linked = z
      .object({ entra: z.object({ tenantId: z.string(), domains: z.array(z.string()) }) })
      .loose()
      .parse((await api(keys.blue, 'GET', '/customers/hybco')).body);

    // The provider makes it hybrid, naming the domain it will federate (a hybrid customer's federated
    // domain must already be among its domains and AD UPN suffixes).
    const fed = `fed.${hybridPrefix}.example`;
    const hybrid = await api(keys.blue, 'PUT', '/customers/hybco', {
      displayName: 'Hybco',
      identityMode: 'hybridFederated',
      entra: {
        tenantId: linked.entra.tenantId,
        domains: [...linked.entra.domains, fed],
        federatedDomain: fed,
      },
      ad: { ...ad, upnSuffixes: [...ad.upnSuffixes, fed] },
    });
    expect(hybrid.status).toBe(200);

    const added = await api(keys.blue, 'POST', '/customers/hybco/domains', {
      domain: fed,
      federation: {
        issuerUri: 'http://adfs.hybco.example/adfs/services/trust',
        passiveSignInUri: 'https://adfs.hybco.example/adfs/ls/',
        signingCertificate: readFileSync('.local/tls/ca.pem', 'utf8'),
      },
    });
    expect(added.status).toBe(202);
    const op = operationSchema.parse(added.body);
    expect(op.state).toBe('succeeded');
    expect(op.steps.find((s) => s.name === 'federate')?.result).toMatchObject({ federated: true });
    const cloud = createGraphDirectoryFactory({
      credentialFor: createCredentialFor({ ...app, authorityHost: graph.authorityHost }),
      graphBaseUrl: graph.graphBaseUrl,
      customHosts: ['127.0.0.1'],
    })(linked.entra.tenantId);
    expect(await cloud.getDomain(fed)).toMatchObject({ isVerified: true, authenticationType: 'Federated' });
  });

  it('then a subscription for it, with the checkout answer dropped: one subscription; ledger = Partner Center = Graph', async () => {
    const pcCustomerId = tenantId;
    await admin('POST', '/faults', {
      kind: 'dropAfterCommit',
      count: 1,
      match: { pathIncludes: '/checkout', customerId: pcCustomerId },
    });
    const bought = await api(keys.blue, 'POST', '/customers/fabrikam/subscriptions', {
      productId: 'CFQ7TTC0LFLZ',
      skuId: '0001',
      termDuration: 'P1Y',
      billingCycle: 'monthly',
      quantity: 3,
      reason: 'first seats',
    });
    expect(bought.status).toBe(202);
    expect(operationSchema.parse(bought.body).state).toBe('succeeded');
    const subs = (await state()).subscriptions.filter((s) => s.customerId === pcCustomerId);
    expect(subs).toHaveLength(1);
    expect(subs[0]?.quantity).toBe(3);
    const ledger = (await deps.licensing.ledger(blueCaller, 'fabrikam')).filter(
      (e) => e.cause === 'purchase',
    );
    expect(ledger).toHaveLength(1);
    expect(ledger[0]?.figures.quantity).toBe(3);
    const e3 = (await directory().listSubscribedSkus()).find((s) => s.skuId === graphSkuIds.e3);
    expect(e3?.enabledUnits).toBe(3);
  });
});
