/**
 * Licences as the tenant's directory shows them: companySubscriptions (directory-list-subscriptions.md,
 * companysubscription-get.md, resources/companysubscription.md), subscribedSkus whose prepaidUnits,
 * capabilityStatus and subscriptionIds follow them (subscribedsku.md, licenseunitsdetail.md) and the
 * partner tenant's contracts (contract-list.md, resources/contract.md) — on the wire through the Graph SDK
 * and through the CloudDirectory adapter.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@microsoft/microsoft-graph-client';
import { isAppError } from '../../../shared/errors.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import { graphAdminClient } from '../../../dev/peers/partner-center/graph-sync.js';
import {
  adapterFor,
  adminCall,
  expectGraphError,
  expectShape,
  rejection,
  sdkClient,
  send,
  type App,
  type Json,
} from './raw.js';
import { allRoles, planExchange, skuBusiness, skuE3 } from './support.js';

const partnerId = randomUUID();
const contosoId = randomUUID();
const fabrikamId = randomUUID();
const app: App = { clientId: randomUUID(), clientSecret: `s-${randomUUID()}` };
const cspSubscription = 'a1b2c3d4-0000-4000-8000-000000000001';
const eaSubscription = 'ea-7f3c-agreement-42';
const warningSubscription = 'a1b2c3d4-0000-4000-8000-000000000003';

let peer: IdentityGraphPeer;
let contoso: Client;
let partner: Client;

beforeAll(async () => {
  peer = await startIdentityGraphPeer({
    seed: {
      tenants: [
        {
          id: partnerId,
          displayName: 'Partner',
          partnerTenantType: 'resellerPartnerDelegatedAdmin',
          domains: [{ id: 'partner.example', isDefault: true }],
        },
        {
          id: contosoId,
          displayName: 'Contoso',
          partnerTenantId: partnerId,
          domains: [{ id: 'contoso.example', isDefault: true }],
          skus: [
            {
              skuId: skuE3,
              skuPartNumber: 'ENTERPRISEPACK',
              servicePlans: [{ servicePlanId: planExchange, servicePlanName: 'EXCHANGE_S_ENTERPRISE' }],
            },
            { skuId: skuBusiness, skuPartNumber: 'O365_BUSINESS_PREMIUM', enabled: 2 },
          ],
          subscriptions: [
            {
              commerceSubscriptionId: cspSubscription,
              skuId: skuE3,
              totalLicenses: 10,
              createdDateTime: '2026-01-01T00:00:00Z',
              nextLifecycleDateTime: '2027-01-01T00:00:00Z',
            },
            {
              commerceSubscriptionId: eaSubscription,
              skuId: skuE3,
              totalLicenses: 40,
              ownerTenantId: null,
              ownerType: 'User',
              createdDateTime: '2025-06-01T00:00:00Z',
            },
            {
              commerceSubscriptionId: warningSubscription,
              skuId: skuE3,
              totalLicenses: 5,
              status: 'Warning',
              isTrial: true,
              createdDateTime: '2026-02-01T00:00:00Z',
            },
          ],
          users: [{ userPrincipalName: 'ada@contoso.example', displayName: 'Ada', usageLocation: 'NL' }],
        },
        {
          id: fabrikamId,
          displayName: 'Fabrikam',
          partnerTenantId: partnerId,
          domains: [{ id: 'fabrikam.example', isDefault: true }],
        },
        { displayName: 'Stranger', domains: [{ id: 'stranger.example', isDefault: true }] },
      ],
      apps: [
        {
          ...app,
          homeTenantId: partnerId,
          tenants: [contosoId, fabrikamId],
          roles: allRoles,
        },
      ],
    },
  });
  contoso = sdkClient(peer, contosoId, app);
  partner = sdkClient(peer, partnerId, app);
});
afterAll(async () => {
  await peer.stop();
});
beforeEach(async () => {
  await adminCall(peer, 'POST', '/reset');
});

// directory-list-subscriptions.md, the response example.
const documentedSubscription = {
  createdDateTime: '2023-01-01T00:00:00Z',
  commerceSubscriptionId: 'f9c1ea2d-2c6e-4717-8c3b-7130812d70ba',
  id: '860697e3-b0aa-4196-a6c6-7ec361ed58f7',
  isTrial: false,
  nextLifecycleDateTime: '2023-02-01T00:00:00Z',
  serviceStatus: [
    {
      appliesTo: 'User',
      provisioningStatus: 'Success',
      servicePlanId: '8b8269e5-f841-416c-ab3a-f5dfb9737986',
      servicePlanName: 'MyPlanName',
    },
  ],
  skuId: '0816ccb9-3785-4d19-bf78-6c53e2106509',
  skuPartNumber: 'MyPartNumber',
  status: 'Enabled',
  totalLicenses: 25,
  ownerId: 'fe04f19f-d924-42b7-9dee-edf4e3fab7f6',
  ownerTenantId: '331af819-4e0b-49f7-a6bf-14e1165ad3a0',
  ownerType: 'User',
};

function byCommerceId(list: Json[], commerceSubscriptionId: string): Json {
  const found = list.find((s) => s['commerceSubscriptionId'] === commerceSubscriptionId);
  if (found === undefined) throw new Error(`no subscription ${commerceSubscriptionId}`);
  return found;
}

describe('GET /directory/subscriptions', () => {
  it('lists every companySubscription in the documented shape, with the seeded seats, states and owner', async () => {
    const raw = await send(contoso, 'GET', '/directory/subscriptions');
    expect(raw.status).toBe(200);
    const value = raw.body['value'] as Json[];
    // Three E3 subscriptions plus the implicit one behind skus[].enabled of Business.
    expect(value).toHaveLength(4);
    for (const item of value) expectShape(item, { ...documentedSubscription, serviceStatus: [] });
    const csp = byCommerceId(value, cspSubscription);
    expectShape(csp, documentedSubscription);
    expect(csp).toMatchObject({
      skuId: skuE3,
      skuPartNumber: 'ENTERPRISEPACK',
      totalLicenses: 10,
      status: 'Enabled',
      isTrial: false,
      createdDateTime: '2026-01-01T00:00:00Z',
      nextLifecycleDateTime: '2027-01-01T00:00:00Z',
      // Created on a customer of the partner: ownerTenantId defaults to that partner.
      ownerTenantId: partnerId,
    });
    expect(byCommerceId(value, eaSubscription)).toMatchObject({ totalLicenses: 40, ownerTenantId: null });
    expect(byCommerceId(value, warningSubscription)).toMatchObject({ status: 'Warning', isTrial: true });
    const business = value.find((s) => s['skuId'] === skuBusiness);
    expect(business).toMatchObject({ totalLicenses: 2, status: 'Enabled' });
  });

  it('reads one by id and by the commerceSubscriptionId alternate key; an unknown one is 404', async () => {
    const list = (await send(contoso, 'GET', '/directory/subscriptions')).body['value'] as Json[];
    const csp = byCommerceId(list, cspSubscription);
    const byId = await send(contoso, 'GET', `/directory/subscriptions/${String(csp['id'])}`);
    expect(byId.status).toBe(200);
    expect(byId.body).toMatchObject(csp);
    const byKey = await send(
      contoso,
      'GET',
      `/directory/subscriptions(commerceSubscriptionId='${eaSubscription}')`,
    );
    expect(byKey.status).toBe(200);
    expect(byKey.body).toMatchObject({ commerceSubscriptionId: eaSubscription, totalLicenses: 40 });
    const selected = await send(
      contoso,
      'GET',
      `/directory/subscriptions(commerceSubscriptionId='${eaSubscription}')?$select=totalLicenses,status`,
    );
    expect(Object.keys(selected.body).sort()).toEqual(['@odata.context', 'status', 'totalLicenses']);
    expectGraphError(
      await send(contoso, 'GET', `/directory/subscriptions(commerceSubscriptionId='nope')`),
      404,
      'Request_ResourceNotFound',
    );
    expectGraphError(
      await send(contoso, 'GET', `/directory/subscriptions/${randomUUID()}`),
      404,
      'Request_ResourceNotFound',
    );
  });

  it('needs Organization.Read.All or a directory role', async () => {
    const weak = { clientId: randomUUID(), clientSecret: 'weak-secret-1' };
    await adminCall(peer, 'POST', '/apps', {
      ...weak,
      homeTenantId: partnerId,
      tenants: [contosoId],
      roles: ['User.Read.All'],
    });
    expectGraphError(
      await send(sdkClient(peer, contosoId, weak), 'GET', '/directory/subscriptions'),
      403,
      'Authorization_RequestDenied',
    );
  });
});

describe('subscribedSkus follow the subscriptions', () => {
  async function e3(): Promise<Json> {
    const raw = await send(contoso, 'GET', '/subscribedSkus');
    const sku = (raw.body['value'] as Json[]).find((s) => s['skuId'] === skuE3);
    if (sku === undefined) throw new Error('E3 missing');
    return sku;
  }

  it('sums seats per status into prepaidUnits and lists the subscription ids', async () => {
    const list = (await send(contoso, 'GET', '/directory/subscriptions')).body['value'] as Json[];
    const sku = await e3();
    expect(sku['prepaidUnits']).toEqual({ enabled: 50, warning: 5, suspended: 0, lockedOut: 0 });
    expect(sku['capabilityStatus']).toBe('Enabled');
    const e3Ids = list.filter((s) => s['skuId'] === skuE3).map((s) => s['id']);
    expect([...(sku['subscriptionIds'] as string[])].sort()).toEqual([...e3Ids].sort());
  });

  it('moves seats between enabled, suspended and lockedOut as a subscription changes state', async () => {
    const put = await adminCall(peer, 'PUT', `/tenants/${contosoId}/subscriptions/${cspSubscription}`, {
      skuId: skuE3,
      totalLicenses: 10,
      status: 'Suspended',
    });
    expect(put.status).toBe(200);
    expect((await e3())['prepaidUnits']).toEqual({ enabled: 40, warning: 5, suspended: 10, lockedOut: 0 });
    await adminCall(peer, 'PUT', `/tenants/${contosoId}/subscriptions/${eaSubscription}`, {
      skuId: skuE3,
      totalLicenses: 40,
      status: 'LockedOut',
    });
    await adminCall(peer, 'PUT', `/tenants/${contosoId}/subscriptions/${warningSubscription}`, {
      skuId: skuE3,
      totalLicenses: 5,
      status: 'Deleted',
    });
    const sku = await e3();
    expect(sku['prepaidUnits']).toEqual({ enabled: 0, warning: 0, suspended: 10, lockedOut: 40 });
    // subscribedsku.md: Enabled needs at least one enabled unit.
    expect(sku['capabilityStatus']).toBe('Suspended');
    // Suspended seats cannot be assigned (licenseunitsdetail.md).
    const ada = await send(contoso, 'GET', '/users/ada@contoso.example');
    const assign = await send(contoso, 'POST', `/users/${String(ada.body['id'])}/assignLicense`, {
      addLicenses: [{ skuId: skuE3, disabledPlans: [] }],
      removeLicenses: [],
    });
    expectGraphError(assign, 400, 'Request_BadRequest', /does not have any available licenses/);
  });

  it("keeps the Partner Center peer's setSeats call working, and keys seats by a commerce id when given", async () => {
    // The old call (no subscription named): the SKU's implicit subscription holds the seats.
    const old = await adminCall(peer, 'PUT', `/tenants/${contosoId}/skus/${skuBusiness}`, {
      skuPartNumber: 'O365_BUSINESS_PREMIUM',
      enabled: 4,
      servicePlans: [],
    });
    expect(old.status).toBe(200);
    expect(old.body).toMatchObject({ prepaidUnits: { enabled: 4 } });
    const pcId = randomUUID();
    for (const enabled of [3, 6]) {
      const keyed = await adminCall(peer, 'PUT', `/tenants/${contosoId}/skus/${skuBusiness}`, {
        skuPartNumber: 'O365_BUSINESS_PREMIUM',
        enabled,
        commerceSubscriptionId: pcId,
        ownerTenantId: partnerId,
      });
      expect(keyed.status).toBe(200);
    }
    const list = (await send(contoso, 'GET', '/directory/subscriptions')).body['value'] as Json[];
    const business = list.filter((s) => s['skuId'] === skuBusiness);
    // One implicit subscription (4) and one keyed by the commerce id, updated in place (6).
    expect(business.map((s) => s['totalLicenses']).sort()).toEqual([4, 6]);
    expect(byCommerceId(list, pcId)).toMatchObject({ ownerTenantId: partnerId, status: 'Enabled' });
    const skus = (await send(contoso, 'GET', '/subscribedSkus')).body['value'] as Json[];
    expect(skus.find((s) => s['skuId'] === skuBusiness)?.['prepaidUnits']).toMatchObject({ enabled: 10 });
  });

  it("works with the Partner Center peer's own admin client unchanged (new tenant, consent, seats)", async () => {
    const sync = graphAdminClient(peer.adminUrl);
    const tenantId = randomUUID();
    await sync.createCustomerTenant({
      tenantId,
      displayName: 'Northwind',
      initialDomain: 'northwind.onmicrosoft.com',
      adminUserPrincipalName: 'admin@northwind.onmicrosoft.com',
    });
    await sync.grantConsent(app.clientId, tenantId);
    const sku = { skuId: skuE3, skuPartNumber: 'ENTERPRISEPACK', servicePlans: [] };
    await sync.setSeats(tenantId, sku, 5);
    await sync.setSeats(tenantId, sku, 8);
    const northwind = sdkClient(peer, tenantId, app);
    const skus = (await send(northwind, 'GET', '/subscribedSkus')).body['value'] as Json[];
    expect(skus.map((s) => [s['skuId'], s['prepaidUnits']])).toEqual([
      [skuE3, { enabled: 8, warning: 0, suspended: 0, lockedOut: 0 }],
    ]);
    const subscriptions = (await send(northwind, 'GET', '/directory/subscriptions')).body['value'] as Json[];
    expect(subscriptions.map((s) => s['totalLicenses'])).toEqual([8]);
  });

  it('refuses a seed whose skus[].enabled disagrees with the subscriptions of that SKU', async () => {
    const refused = await adminCall(peer, 'POST', '/tenants', {
      displayName: 'Mismatch',
      skus: [{ skuId: skuE3, skuPartNumber: 'ENTERPRISEPACK', enabled: 3 }],
      subscriptions: [{ commerceSubscriptionId: 'x', skuId: skuE3, totalLicenses: 5 }],
    });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain('enabled is 3 but its Enabled subscriptions hold 5');
  });
});

describe('GET /contracts in a partner tenant', () => {
  // contract-list.md, the response example.
  const documentedContract = {
    contractType: 'contractType-value',
    customerId: 'customerId-value',
    defaultDomainName: 'defaultDomainName-value',
    displayName: 'displayName-value',
    id: 'id-value',
  };

  it('lists one contract per customer whose partnerTenantId is this tenant, filterable by customerId', async () => {
    const raw = await send(partner, 'GET', '/contracts');
    expect(raw.status).toBe(200);
    const value = raw.body['value'] as Json[];
    expect(value.map((c) => c['customerId']).sort()).toEqual([contosoId, fabrikamId].sort());
    for (const c of value) expectShape(c, documentedContract);
    expect(value.find((c) => c['customerId'] === contosoId)).toMatchObject({
      contractType: 'ResellerPartner',
      defaultDomainName: 'contoso.example',
      displayName: 'Contoso',
    });
    const filtered = await send(partner, 'GET', `/contracts?$filter=customerId eq '${fabrikamId}'`);
    expect((filtered.body['value'] as Json[]).map((c) => c['displayName'])).toEqual(['Fabrikam']);
    const one = await send(partner, 'GET', `/contracts/${String(value[0]?.['id'])}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject(value[0] ?? {});
    // A customer tenant has no contracts of its own.
    expect((await send(contoso, 'GET', '/contracts')).body['value']).toEqual([]);
  });

  it("shows the partner's partnerTenantType on its organization", async () => {
    const org = await send(partner, 'GET', '/organization');
    expect((org.body['value'] as Json[])[0]?.['partnerTenantType']).toBe('resellerPartnerDelegatedAdmin');
    const customerOrg = await send(contoso, 'GET', '/organization');
    expect((customerOrg.body['value'] as Json[])[0]?.['partnerTenantType']).toBeNull();
  });
});

describe('CloudDirectory licences and contracts', () => {
  it('lists and gets subscriptions by id and commerce id, with NotFound for an unknown one', async () => {
    const directory = adapterFor(peer, contosoId, app);
    const subscriptions = await directory.listSubscriptions();
    expect(subscriptions).toHaveLength(4);
    const csp = subscriptions.find((s) => s.commerceSubscriptionId === cspSubscription);
    expect(csp).toMatchObject({
      skuId: skuE3,
      totalLicenses: 10,
      status: 'Enabled',
      isTrial: false,
      ownerTenantId: partnerId,
      nextLifecycleDateTime: '2027-01-01T00:00:00Z',
    });
    if (csp === undefined) throw new Error('csp missing');
    expect(await directory.getSubscription(csp.id)).toEqual(csp);
    expect(await directory.getSubscription({ commerceSubscriptionId: cspSubscription })).toEqual(csp);
    const error = await rejection(directory.getSubscription({ commerceSubscriptionId: "it's-missing" }));
    expect(isAppError(error) && error.code).toBe('NotFound');
  });

  it('reports prepaid units per state and the subscription ids on each SKU', async () => {
    const directory = adapterFor(peer, contosoId, app);
    const skus = await directory.listSubscribedSkus();
    const e3 = skus.find((s) => s.skuId === skuE3);
    expect(e3).toMatchObject({
      enabledUnits: 50,
      prepaidUnits: { enabled: 50, warning: 5, suspended: 0, lockedOut: 0 },
    });
    expect(e3?.subscriptionIds).toHaveLength(3);
  });

  it("lists the partner's contracts", async () => {
    const contracts = await adapterFor(peer, partnerId, app).listContracts();
    expect(contracts.map((c) => c.customerTenantId).sort()).toEqual([contosoId, fabrikamId].sort());
    expect(contracts.find((c) => c.customerTenantId === fabrikamId)).toMatchObject({
      contractType: 'ResellerPartner',
      defaultDomainName: 'fabrikam.example',
      displayName: 'Fabrikam',
    });
  });
});
