import { randomUUID } from 'node:crypto';
import type { Client } from '@microsoft/microsoft-graph-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import type { PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import type { Commerce } from '../../shared/ports/commerce.js';
import { sdkClient, send } from '../integration/graph/raw.js';
import { graphSkuIds, offers } from '../integration/partner-center/stack.js';
import { callApi } from '../support/http.js';
import {
  createCustomerWithAgreement,
  partnerTenantSeed,
  startPartnerCenterFixture,
} from '../support/partner-center.js';
import { quietLogger } from '../support/stack.js';

/**
 * Entra group-based licensing as autoscaler demand (issue 17), on the Graph and Partner Center peers:
 * a security group carries E3 (POST /groups/{id}/assignLicense); five users join it with no seat free,
 * so Entra records CountViolation on each; the sweep counts them as demand, buys five seats through
 * Partner Center, and reprocesses them so they hold the inherited licence.
 */
const partnerTenant = randomUUID();
const graphApp = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const graphRoles = [
  'Directory.Read.All',
  'Directory.ReadWrite.All',
  'User.ReadWrite.All',
  'Group.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
  'Organization.Read.All',
];
const run = randomUUID().slice(0, 8);
const provider = `prov-gl-${run}`;
const e3 = graphSkuIds.e3;
const domain = `gl${run}.onmicrosoft.com`;

let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let deps: AppDeps;
let host: LocalHost;
let key: string;
let subscriptionId: string;
let tenant: Client;

const api = (method: string, path: string, body?: unknown) => callApi(host.url, key, method, path, body);

async function pcQuantity(): Promise<number> {
  const response = await fetch(`${partnerCenter.adminUrl}/state`);
  const state = z
    .object({ subscriptions: z.array(z.object({ id: z.string(), quantity: z.number() }).loose()) })
    .parse(await response.json());
  return state.subscriptions.find((s) => s.id === subscriptionId)?.quantity ?? -1;
}

const statesSchema = z.object({
  licenseAssignmentStates: z.array(
    z.object({
      skuId: z.string(),
      assignedByGroup: z.string().nullable(),
      state: z.string(),
      error: z.string().nullable(),
    }),
  ),
});
async function e3State(userId: string) {
  const user = await send(tenant, 'GET', `/users/${userId}?$select=licenseAssignmentStates`);
  return statesSchema.parse(user.body).licenseAssignmentStates.find((s) => s.skuId === e3);
}

async function consumedE3(): Promise<number> {
  const skus = await send(tenant, 'GET', '/subscribedSkus');
  const parsed = z
    .object({ value: z.array(z.object({ skuId: z.string(), consumedUnits: z.number() }).loose()) })
    .parse(skus.body);
  return parsed.value.find((s) => s.skuId === e3)?.consumedUnits ?? -1;
}

async function newUser(name: string): Promise<string> {
  const created = await send(tenant, 'POST', '/users', {
    accountEnabled: true,
    displayName: name,
    mailNickname: name,
    userPrincipalName: `${name}@${domain}`,
    usageLocation: 'US',
    passwordProfile: { password: `Pw-${randomUUID()}`, forceChangePasswordNextSignIn: false },
  });
  expect(created.status, created.text).toBe(201);
  return z.object({ id: z.string() }).parse(created.body).id;
}

async function join(groupId: string, userId: string): Promise<void> {
  const added = await send(tenant, 'POST', `/groups/${groupId}/members/$ref`, {
    '@odata.id': `https://graph.microsoft.com/v1.0/directoryObjects/${userId}`,
  });
  expect(added.status, added.text).toBe(204);
}

beforeAll(async () => {
  graph = await startIdentityGraphPeer({
    seed: partnerTenantSeed({ partnerTenant, app: graphApp, roles: graphRoles }),
  });
  const agreedAt = new Date();
  let commerce: Commerce;
  ({ partnerCenter, commerce } = await startPartnerCenterFixture({
    graph,
    partnerTenant,
    app: graphApp,
    graphRoles,
    start: agreedAt,
  }));
  const created = await createCustomerWithAgreement(commerce, {
    domain,
    email: `owner@gl${run}.example`,
    run,
    agreedAt,
  });
  const bought = await commerce.buy(
    created.customer.id,
    [{ catalogItemId: offers.e3, quantity: 1, termDuration: 'P1Y', billingCycle: 'monthly' }],
    { operationKey: `buy-${run}` },
  );
  subscriptionId = bought.orders[0]?.lines[0]?.subscriptionId ?? '';
  expect(subscriptionId).not.toBe('');
  tenant = sdkClient(graph, created.customer.tenantId, graphApp);

  deps = createComposition(
    loadSettings({
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
      PartnerCenter__providerId: provider,
    }),
    { log: quietLogger },
  );
  host = await startLocalHost({ definitions, deps, port: 0, log: quietLogger, timers: false });
  key = (await deps.callers.createApiKey({ providerId: provider, name: 'gl' })).apiKey;
  const put = await api('PUT', '/customers/contoso', {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId: created.customer.tenantId, domains: [domain] },
    defaultUsageLocation: 'US',
  });
  expect(put.status, JSON.stringify(put.body)).toBeLessThan(300);
  const sources = await api('PUT', '/customers/contoso/licensing/sources', {
    partnerCenterCustomerId: created.customer.id,
    assignmentPolicy: ['partnerCenter'],
  });
  expect(sources.status, JSON.stringify(sources.body)).toBe(200);
  expect((await api('PUT', '/customers/contoso/licensing/autoscale', { mode: 'auto' })).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await deps?.close();
  await partnerCenter?.stop();
  await graph?.stop();
});

describe('group-based licensing as autoscaler demand', () => {
  it('adding 5 users to a licensed group raises demand by 5; the sweep buys them and Entra licenses them', async () => {
    const group = await send(tenant, 'POST', '/groups', {
      displayName: 'E3 users',
      mailNickname: 'e3-users',
      mailEnabled: false,
      securityEnabled: true,
    });
    expect(group.status).toBe(201);
    const groupId = z.object({ id: z.string() }).parse(group.body).id;
    const first = await newUser('first');
    await join(groupId, first);
    const licensed = await send(tenant, 'POST', `/groups/${groupId}/assignLicense`, {
      addLicenses: [{ skuId: e3, disabledPlans: [] }],
      removeLicenses: [],
    });
    expect(licensed.status, licensed.text).toBe(202);
    expect(await e3State(first)).toMatchObject({ assignedByGroup: groupId, state: 'Active', error: null });
    expect(await consumedE3()).toBe(1);
    // The one seat is used by the group's first member: nothing to buy.
    await deps.autoscale.sweep({ runId: `gl-0-${run}` });
    expect(await pcQuantity()).toBe(1);

    const joiners = await Promise.all(['j1', 'j2', 'j3', 'j4', 'j5'].map(newUser));
    for (const id of joiners) await join(groupId, id);
    for (const id of joiners)
      expect(await e3State(id)).toMatchObject({
        assignedByGroup: groupId,
        state: 'Error',
        error: 'CountViolation',
      });
    expect(await consumedE3()).toBe(1);

    await deps.autoscale.sweep({ runId: `gl-1-${run}` });
    expect(await pcQuantity()).toBe(6);
    const decisions = await api('GET', '/customers/contoso/licensing/decisions?limit=50');
    const grown = z
      .object({
        value: z.array(
          z
            .object({
              kind: z.string(),
              state: z.string(),
              from: z.number(),
              to: z.number(),
              figures: z.record(z.string(), z.unknown()),
            })
            .loose(),
        ),
      })
      .parse(decisions.body)
      .value.filter((d) => d.kind === 'grow');
    expect(grown).toHaveLength(1);
    expect(grown[0]).toMatchObject({ state: 'applied', from: 1, to: 6 });
    expect(grown[0]?.figures).toMatchObject({ assigned: 1, held: 5, target: 6 });
    // After the purchase the waiting members were reprocessed: each holds its inherited seat.
    for (const id of joiners) expect(await e3State(id)).toMatchObject({ state: 'Active', error: null });
    expect(await consumedE3()).toBe(6);

    // Demand is met: a later sweep buys nothing more (the members are counted once, as assigned).
    await deps.autoscale.sweep({ runId: `gl-2-${run}` });
    expect(await pcQuantity()).toBe(6);
  }, 120_000);

  it('serves a waiting member from a seat freed by a leaver, without buying or giving back a seat', async () => {
    const group = await send(tenant, 'GET', "/groups?$filter=mailNickname eq 'e3-users'");
    const groupId = z.object({ value: z.array(z.object({ id: z.string() }).loose()) }).parse(group.body)
      .value[0]?.id;
    if (groupId === undefined) throw new Error('the licensed group of the first test is missing');
    const late = await newUser('late');
    await join(groupId, late);
    expect(await e3State(late)).toMatchObject({ state: 'Error', error: 'CountViolation' });
    const members = z
      .object({ value: z.array(z.object({ id: z.string() }).loose()) })
      .parse((await send(tenant, 'GET', `/groups/${groupId}/members?$select=id`)).body).value;
    const leaver = members.find((m) => m.id !== late)?.id ?? '';
    expect((await send(tenant, 'DELETE', `/groups/${groupId}/members/${leaver}/$ref`)).status).toBe(204);
    // Entra does not retry by itself: the freed seat stays free, the late member in error.
    expect(await consumedE3()).toBe(5);
    expect(await e3State(late)).toMatchObject({ state: 'Error' });

    await deps.autoscale.sweep({ runId: `gl-3-${run}` });
    expect(await e3State(late)).toMatchObject({ state: 'Active', error: null });
    expect(await consumedE3()).toBe(6);
    expect(await pcQuantity()).toBe(6);
    const decisions = await api('GET', '/customers/contoso/licensing/decisions?limit=50');
    const kinds = z
      .object({ value: z.array(z.object({ kind: z.string() }).loose()) })
      .parse(decisions.body)
      .value.map((d) => d.kind);
    // Still only the purchase of the first test: nothing bought, nothing given back.
    expect(kinds).toEqual(['grow']);
  });
});
