import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuritePeer } from '../../dev/peers/azurite.js';
import { z } from 'zod';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { serviceBusTriggers } from '../../dev/host/queue-triggers.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import type { PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { startServiceBusPeer, type ServiceBusPeer } from '../../dev/peers/servicebus/index.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import type { Commerce } from '../../shared/ports/commerce.js';
import { graphSkuIds, offers } from '../integration/partner-center/stack.js';
import {
  createCustomerWithAgreement,
  partnerTenantSeed,
  startPartnerCenterFixture,
} from '../support/partner-center.js';
import { quietLogger, waitFor } from '../support/stack.js';
import { callApi } from '../support/http.js';

/**
 * Autoscaling end to end on the peers (issue 15): a 1-Tier customer whose E3 seats come from Partner
 * Center. Users provisioned through the API are held for a seat; the just-in-time run buys one batched
 * quantity change (under a 429 and a lost PATCH answer) and the held operations finish; the sweep gives
 * seats back only inside their 168-hour window, schedules the rest for renewal, withdraws that when
 * demand returns, and a change above the approval threshold waits for a person. The app's clock follows
 * the Partner Center peer's virtual clock (both start at the real now, the peer frozen).
 */
const dayInMs = 86_400_000;
let azurite: AzuritePeer | undefined;
let offsetInMs = 0;
const clock = { now: () => new Date(Date.now() + offsetInMs) };
const partnerTenant = randomUUID();
const graphApp = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const graphRoles = [
  'Directory.Read.All',
  'Directory.ReadWrite.All',
  'User.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
  'Organization.Read.All',
];
const run = randomUUID().slice(0, 8);
const provider = `prov-as-${run}`;
const e3 = graphSkuIds.e3;
const domain = `as${run}.onmicrosoft.com`;

let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let serviceBus: ServiceBusPeer;
let deps: AppDeps;
let host: LocalHost;
let closeTriggers: () => Promise<void>;
let key: string;
let otherKey: string;
let pcCustomerId: string;
let subscriptionId: string;

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

function api(key: string, method: string, path: string, body?: unknown) {
  return callApi(host.url, key, method, path, body);
}

const pcState = z.object({
  subscriptions: z.array(z.object({ id: z.string(), quantity: z.number(), updateCount: z.number() }).loose()),
});
async function pcSubscription() {
  const state = pcState.parse(await admin(partnerCenter.adminUrl, 'GET', '/state'));
  const found = state.subscriptions.find((s) => s.id === subscriptionId);
  if (found === undefined) throw new Error('subscription missing at the peer');
  return found;
}

const decisionSchema = z
  .object({
    decisionId: z.string(),
    kind: z.string(),
    status: z.string(),
    state: z.string(),
    from: z.number(),
    to: z.number(),
    rule: z.string(),
    reason: z.string(),
    figures: z.record(z.string(), z.union([z.number(), z.string()])),
    idempotencyKey: z.string(),
  })
  .loose();
async function decisions() {
  const answer = await api(key, 'GET', '/customers/contoso/licensing/decisions?limit=500');
  expect(answer.status).toBe(200);
  return z.object({ value: z.array(decisionSchema) }).parse(answer.body).value;
}

type Op = { operationId: string; state: string };
async function provision(names: string[]): Promise<string[]> {
  return Promise.all(
    names.map(async (name) => {
      const answer = await api(key, 'POST', '/customers/contoso/users', {
        userId: `u-${name}`,
        userPrincipalName: `${name}@${domain}`,
        displayName: name,
        licencePlan: 'E3',
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(202);
      return (answer.body as Op).operationId;
    }),
  );
}
async function states(operationIds: string[]): Promise<string[]> {
  return Promise.all(
    operationIds.map(async (id) => ((await api(key, 'GET', `/operations/${id}`)).body as Op).state),
  );
}
async function settled(operationIds: string[], wanted: (state: string) => boolean, timeoutInMs = 60_000) {
  return waitFor(
    async () => {
      const now = await states(operationIds);
      return now.every(wanted) ? now : undefined;
    },
    'operations to settle',
    timeoutInMs,
  );
}
async function removeUsers(names: string[]) {
  const ids = await Promise.all(
    names.map(async (name) => {
      const answer = await api(key, 'DELETE', `/customers/contoso/users/u-${name}`);
      expect(answer.status).toBe(202);
      return (answer.body as Op).operationId;
    }),
  );
  await settled(ids, (s) => s === 'succeeded');
}
async function advance(days: number) {
  offsetInMs += days * dayInMs;
  await admin(partnerCenter.adminUrl, 'POST', '/clock', { advanceByInMs: days * dayInMs });
}

beforeAll(async () => {
  // Storage of its own: this file moves the app's clock days ahead, and its sweeps would judge other
  // files' operations in shared storage by that clock (past their deadlines).
  azurite = await startAzurite();
  serviceBus = await startServiceBusPeer({ config: join(process.cwd(), 'dev/peers/servicebus/config.json') });
  graph = await startIdentityGraphPeer({
    seed: partnerTenantSeed({ partnerTenant, app: graphApp, roles: graphRoles }),
  });
  const agreedAt = new Date();
  let commerce: Commerce;
  ({ partnerCenter, commerce } = await startPartnerCenterFixture({
    graph,
    partnerTenant,
    partnerName: 'Partner',
    app: graphApp,
    graphRoles,
    start: agreedAt,
  }));
  const created = await createCustomerWithAgreement(commerce, {
    domain,
    email: `owner@as${run}.example`,
    run,
    agreedAt,
  });
  pcCustomerId = created.customer.id;
  const bought = await commerce.buy(
    pcCustomerId,
    [{ catalogItemId: offers.e3, quantity: 1, termDuration: 'P1Y', billingCycle: 'monthly' }],
    { operationKey: `buy-${run}` },
  );
  subscriptionId = bought.orders[0]?.lines[0]?.subscriptionId ?? '';
  expect(subscriptionId).not.toBe('');

  const settings = loadSettings({
    LOG_LEVEL: 'warn',
    TableStorage: azurite.connectionString,
    ServiceBusConnection: serviceBus.connectionString,
    Graph__authorityHost: graph.authorityHost,
    Graph__baseUrl: graph.graphBaseUrl,
    Graph__clientId: graphApp.clientId,
    Graph__clientSecret: graphApp.clientSecret,
    PartnerCenter__baseUrl: partnerCenter.baseUrl,
    PartnerCenter__tenantId: partnerTenant,
    PartnerCenter__clientId: graphApp.clientId,
    PartnerCenter__clientSecret: graphApp.clientSecret,
    PartnerCenter__providerId: provider,
    // The bulk delete guard is another feature's; these deletes are the test's leavers.
    Guard__minUsers: '1000',
  });
  deps = createComposition(settings, { log: quietLogger, clock });
  const triggers = serviceBusTriggers(serviceBus.connectionString, quietLogger);
  closeTriggers = () => triggers.close();
  host = await startLocalHost({
    definitions,
    deps,
    port: 0,
    log: quietLogger,
    startQueueTrigger: triggers.start,
    timers: false,
  });
  key = (await deps.callers.createApiKey({ providerId: provider, name: 'as' })).apiKey;
  otherKey = (await deps.callers.createApiKey({ providerId: `${provider}-other`, name: 'other' })).apiKey;
  const put = await api(key, 'PUT', '/customers/contoso', {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId: created.customer.tenantId, domains: [domain] },
    defaultUsageLocation: 'US',
    licencePlans: [{ name: 'E3', skus: [{ skuId: e3 }] }],
  });
  expect(put.status).toBeLessThan(300);
  const sources = await api(key, 'PUT', '/customers/contoso/licensing/sources', {
    partnerCenterCustomerId: pcCustomerId,
    assignmentPolicy: ['partnerCenter'],
  });
  expect(sources.status).toBe(200);
  const policy = await api(key, 'PUT', '/customers/contoso/licensing/autoscale', { mode: 'auto' });
  expect(policy.status).toBe(200);
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await closeTriggers?.();
  await deps?.close();
  await partnerCenter?.stop();
  await graph?.stop();
  await serviceBus?.stop();
  await azurite?.stop();
});

const names = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('autoscale', () => {
  it('buys one batched quantity change for 50 held users under a 429 and a lost answer, then they finish', async () => {
    const ops = await provision(names('a', 50));
    const held = await settled(ops, (s) => s === 'succeeded' || s === 'needsLicence', 120_000);
    expect(held.filter((s) => s === 'needsLicence')).toHaveLength(49);
    const before = await pcSubscription();
    await admin(partnerCenter.adminUrl, 'POST', '/faults', {
      kind: 'throttle',
      match: { method: 'PATCH' },
      retryAfterInSeconds: 0,
    });
    await admin(partnerCenter.adminUrl, 'POST', '/faults', {
      kind: 'dropAfterCommit',
      match: { method: 'PATCH' },
    });

    await host.runTimer('autoscale-just-in-time');
    // A repeat (e.g. a duplicate timer run) changes nothing more.
    await deps.autoscale.justInTime();

    // Both faults were met (a 429, then a PATCH that committed but whose answer was lost).
    expect(await admin(partnerCenter.adminUrl, 'GET', '/faults')).toEqual({ faults: [] });
    const after = await pcSubscription();
    expect(after.quantity).toBe(50);
    expect(after.updateCount - before.updateCount).toBe(1);
    const grown = (await decisions()).filter((d) => d.kind === 'grow');
    expect(grown).toHaveLength(1);
    expect(grown[0]).toMatchObject({ state: 'applied', from: 1, to: 50, rule: 'growToTarget' });
    expect(grown[0]?.figures).toMatchObject({ assigned: 1, held: 49, target: 50, supply: 1 });
    const ledger = await deps.licensing.ledger({ id: 't', kind: 'apiKey', providerId: provider }, 'contoso');
    const purchases = ledger.filter(
      (e) => e.cause === 'purchase' && e.idempotencyKey.startsWith('autoscale:'),
    );
    expect(purchases).toHaveLength(1);
    expect(purchases[0]?.figures).toMatchObject({ held: 49, rule: 'growToTarget', quantityAfter: 50 });

    expect(await settled(ops, (s) => s === 'succeeded', 120_000)).toHaveLength(50);
  }, 300_000);

  it('gives seats back inside their 168-hour window, once, and lists the decision with its reason', async () => {
    await removeUsers(names('a', 5).slice(1));
    const first = await deps.autoscale.sweep({ runId: `sweep-1-${run}`, providerId: provider });
    expect(first).toMatchObject({ state: 'done', applied: 1 });
    expect((await pcSubscription()).quantity).toBe(46);
    // The same run again (a duplicate timer invocation) and a new run on the same state change nothing.
    await deps.autoscale.sweep({ runId: `sweep-1-${run}`, providerId: provider });
    const second = await deps.autoscale.sweep({ runId: `sweep-2-${run}`, providerId: provider });
    expect(second.applied).toBe(0);
    expect((await pcSubscription()).quantity).toBe(46);
    const reduced = (await decisions()).filter((d) => d.kind === 'reduce');
    expect(reduced).toMatchObject([{ state: 'applied', from: 50, to: 46, rule: 'shrinkInOpenWindow' }]);
    expect(reduced[0]?.reason).toContain('168-hour window');
    expect((await api(otherKey, 'GET', '/customers/contoso/licensing/decisions')).status).toBe(404);
  }, 180_000);

  it('schedules a reduction for renewal once the windows closed, and withdraws it when demand returns', async () => {
    await advance(8);
    await removeUsers(names('a', 10).slice(5));
    await deps.autoscale.sweep({ runId: `sweep-3-${run}`, providerId: provider });
    const pc = await pcSubscription();
    expect(pc.quantity).toBe(46);
    const scheduled = (await decisions()).filter((d) => d.kind === 'scheduleReduction');
    expect(scheduled).toMatchObject([{ state: 'applied', from: 46, to: 41, rule: 'scheduleAtRenewal' }]);
    const caller = { id: 't', kind: 'apiKey' as const, providerId: provider };
    await deps.licensing.runImport(caller, 'contoso');
    const view = await deps.licensing.subscriptions(caller, 'contoso');
    expect(JSON.stringify(view)).toContain('"quantity":41');

    const back = await provision(names('b', 5));
    await settled(back, (s) => s === 'succeeded', 120_000);
    await deps.autoscale.sweep({ runId: `sweep-4-${run}`, providerId: provider });
    const withdrawn = (await decisions()).filter((d) => d.kind === 'withdrawSchedule');
    expect(withdrawn).toMatchObject([{ state: 'applied', from: 41, to: 46, rule: 'demandReturned' }]);
    expect((await decisions()).filter((d) => d.kind === 'reduce')).toHaveLength(1);
  }, 240_000);

  it('holds a purchase above the approval threshold until a person approves it, then the users finish', async () => {
    const policy = await api(key, 'PUT', '/customers/contoso/licensing/autoscale', {
      mode: 'auto',
      approval: { aboveSeats: 2 },
    });
    expect(policy.status).toBe(200);
    const ops = await provision(names('c', 3));
    await settled(ops, (s) => s === 'succeeded' || s === 'needsLicence', 120_000);
    const before = await pcSubscription();
    await deps.autoscale.justInTime();
    expect((await pcSubscription()).quantity).toBe(before.quantity);
    const pending = (await decisions()).find((d) => d.status === 'pendingApproval' && d.state === 'recorded');
    expect(pending).toMatchObject({ kind: 'grow', rule: 'approvalThreshold' });
    expect(pending?.reason).toContain('approval threshold');
    const approved = await api(
      key,
      'POST',
      `/customers/contoso/licensing/decisions/${pending?.decisionId ?? ''}/approve`,
    );
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ state: 'applied' });
    expect((await pcSubscription()).quantity).toBe(pending?.to);
    expect(await settled(ops, (s) => s === 'succeeded', 120_000)).toHaveLength(3);
  }, 240_000);

  it('reserves a seat for a starter with a future start date on the sweep before it, and the create finds the seat on the day', async () => {
    expect((await api(key, 'PUT', '/customers/contoso/licensing/autoscale', { mode: 'auto' })).status).toBe(
      200,
    );
    const startDate = new Date(clock.now().getTime() + 3 * dayInMs).toISOString().slice(0, 10);
    const answer = await api(key, 'POST', '/customers/contoso/users', {
      userId: 'u-starter',
      userPrincipalName: `starter@${domain}`,
      displayName: 'Starter',
      licencePlan: 'E3',
      startDate,
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    const op = z
      .object({ operationId: z.string(), state: z.string(), nextAttemptAt: z.string() })
      .loose()
      .parse(answer.body);
    expect(op).toMatchObject({ state: 'retryScheduled', nextAttemptAt: `${startDate}T00:00:00.000Z` });
    // Before the day nothing is made: the operation sweep leaves it waiting.
    await host.runTimer('operation-sweep');
    expect(await states([op.operationId])).toEqual(['retryScheduled']);

    const before = await pcSubscription();
    await deps.autoscale.sweep({ runId: `sweep-5-${run}`, providerId: provider });
    const reserved = (await decisions()).filter(
      (d) => d.kind === 'grow' && d.state === 'applied' && d.figures.reservedStarters === 1,
    );
    expect(reserved).toMatchObject([
      { from: before.quantity, to: before.quantity + 1, rule: 'growToTarget' },
    ]);
    expect(reserved[0]?.reason).toContain('1 starters');
    expect((await pcSubscription()).quantity).toBe(before.quantity + 1);

    await advance(3);
    await host.runTimer('operation-sweep');
    // The seat was there: the create is never held for one.
    const seen = await settled([op.operationId], (s) => s === 'succeeded' || s === 'needsLicence', 120_000);
    expect(seen).toEqual(['succeeded']);
  }, 240_000);
});
