import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, EqualityFilter } from 'ldapts';
import { createCustomerWithAgreement } from '../support/partner-center.js';
import { offers } from '../integration/partner-center/stack.js';
import { call, type Answer } from './api.js';
import type { Random } from './prng.js';
import { e3, siteId, type World } from './world.js';

/**
 * The workload of a chaos run: three providers at once, each with its own customers, keys and tenants.
 * - blue: 1-Tier, cloudOnly customer whose E3 seats come from Partner Center (autoscale `auto`);
 * - green: 2-Tier, cloudOnly customer whose seats come from the distributor (autoscale `auto`), and a
 *   customer onboarded from an existing tenant (Tenant Connect);
 * - red: the agent site and Samba: hybridFederated, adOnly and both customers, each in its own OU.
 * Actions are drawn from the seeded PRNG: creates (the most), updates, disable/enable, deletes and group
 * memberships; the autoscaler's just-in-time run buys seats for held creates.
 */
export type IdentityMode = 'cloudOnly' | 'adOnly' | 'hybridFederated' | 'both';

export interface ModelUser {
  userId: string;
  upn: string;
  state: 'active' | 'disabled' | 'deleted';
  displayName: string;
}

export interface Actor {
  provider: 'blue' | 'green' | 'red';
  providerId: string;
  key: string;
  customerId: string;
  mode: IdentityMode;
  upnDomain: string;
  tenantId?: string;
  usersOu?: string;
  licensed: boolean;
  groupId?: string;
  users: Map<string, ModelUser>;
  nextUser: number;
}

export interface TrackedOperation {
  operationId: string;
  actor: Actor;
  kind: string;
  userId: string;
}

export interface Workload {
  actors: Actor[];
  keys: Record<'blue' | 'green' | 'red', string>;
  operations: TrackedOperation[];
  onboarding: { actor: Actor; tenantId: string; started: boolean; approved: boolean };
  /** Answers that were neither accepted nor an expected refusal: figures for the report. */
  refused: { action: string; status: number; code: string; detail: string }[];
  /** Entra users that existed before the run (a new tenant's admin, users to onboard). */
  preExisting: Set<string>;
  requests: number;
  retriedRequests: number;
  maxLatencyInMs: number;
  slowRequests: number;
  slowExamples: string[];
  blue: { pcCustomerId: string; subscriptionId: string; initialQuantity: number };
  green: { initialQuantity: number };
  passwords: string[];
}

const runDomain = (run: string) => `blue${run}.onmicrosoft.com`;

async function ok(answer: Promise<Answer>, what: string): Promise<Answer> {
  const a = await answer;
  if (a.status >= 300) throw new Error(`${what}: ${a.status} ${JSON.stringify(a.body)}`);
  return a;
}

async function makeOu(world: World, name: string): Promise<string> {
  const dn = `OU=${name},${world.dc.usersOu}`;
  const client = new Client({ url: world.dc.url, tlsOptions: { ca: readFileSync(world.dc.caFile) } });
  try {
    await client.bind(world.dc.bindDn, world.dc.password);
    await client.add(dn, { objectClass: ['top', 'organizationalUnit'], ou: name });
  } finally {
    await client.unbind();
  }
  return dn;
}

async function adGroupId(world: World, cn: string): Promise<string> {
  const client = new Client({ url: world.dc.url, tlsOptions: { ca: readFileSync(world.dc.caFile) } });
  try {
    await client.bind(world.dc.bindDn, world.dc.password);
    const { searchEntries } = await client.search(world.dc.groupsOu, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'cn', value: cn }),
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    const guid = searchEntries[0]?.objectGUID;
    if (!Buffer.isBuffer(guid)) throw new Error(`no AD group ${cn}`);
    return `ad.${guid.toString('base64url')}`;
  } finally {
    await client.unbind();
  }
}

export async function setUpWorkload(world: World, run: string): Promise<Workload> {
  const { deps, providers, host } = world;
  const keys = {
    blue: (await deps.callers.createApiKey({ providerId: providers.blue, name: 'chaos' })).apiKey,
    green: (await deps.callers.createApiKey({ providerId: providers.green, name: 'chaos' })).apiKey,
    red: (await deps.callers.createApiKey({ providerId: providers.red, name: 'chaos' })).apiKey,
  };
  const api = (key: string, method: string, path: string, body?: unknown) =>
    ok(call(host.url, key, method, path, body), `${method} ${path}`);
  const plan = [{ name: 'E3', skus: [{ skuId: e3 }] }];
  const actors: Actor[] = [];
  const actor = (a: Omit<Actor, 'users' | 'nextUser'>): Actor => {
    const full: Actor = { ...a, users: new Map(), nextUser: 0 };
    actors.push(full);
    return full;
  };

  // blue: a Partner Center customer (its tenant appears in the Graph peer) with one E3 seat bought.
  const domain = runDomain(run);
  const created = await createCustomerWithAgreement(world.commerce, {
    domain,
    email: `owner@blue${run}.example`,
    run,
    agreedAt: new Date(),
  });
  const bought = await world.commerce.buy(
    created.customer.id,
    [{ catalogItemId: offers.e3, quantity: 1, termDuration: 'P1Y', billingCycle: 'monthly' }],
    { operationKey: `chaos-buy-${run}` },
  );
  const subscriptionId = bought.orders[0]?.lines[0]?.subscriptionId ?? '';
  if (subscriptionId === '') throw new Error('the Partner Center peer gave no subscription');
  const blueTenant = created.customer.tenantId;
  await api(keys.blue, 'PUT', '/customers/blue-cloud', {
    displayName: 'Blue Cloud',
    identityMode: 'cloudOnly',
    entra: { tenantId: blueTenant, domains: [domain] },
    defaultUsageLocation: 'US',
    licencePlans: plan,
  });
  await api(keys.blue, 'PUT', '/customers/blue-cloud/licensing/sources', {
    partnerCenterCustomerId: created.customer.id,
    assignmentPolicy: ['partnerCenter'],
  });
  await api(keys.blue, 'PUT', '/customers/blue-cloud/licensing/autoscale', { mode: 'auto' });
  const blueGroup = await world.cloud(blueTenant).createGroup({
    displayName: 'Blue Staff',
    mailNickname: 'bluestaff',
  });
  actor({
    provider: 'blue',
    providerId: providers.blue,
    key: keys.blue,
    customerId: 'blue-cloud',
    mode: 'cloudOnly',
    upnDomain: domain,
    tenantId: blueTenant,
    licensed: true,
    groupId: `entra.${blueGroup.id}`,
  });

  // green: seats from the distributor; and an existing tenant to onboard.
  await api(keys.green, 'PUT', '/customers/green-cloud', {
    displayName: 'Green Cloud',
    identityMode: 'cloudOnly',
    entra: { tenantId: world.tenants.green, domains: ['green1.example'] },
    defaultUsageLocation: 'NL',
    licencePlans: plan,
  });
  await api(keys.green, 'PUT', '/customers/green-cloud/licensing/sources', {
    distributorCompanyId: world.distributorIds.company,
    assignmentPolicy: ['distributor'],
  });
  await api(keys.green, 'PUT', '/customers/green-cloud/licensing/autoscale', { mode: 'auto' });
  const greenGroup = await world.cloud(world.tenants.green).createGroup({
    displayName: 'Green Staff',
    mailNickname: 'greenstaff',
  });
  actor({
    provider: 'green',
    providerId: providers.green,
    key: keys.green,
    customerId: 'green-cloud',
    mode: 'cloudOnly',
    upnDomain: 'green1.example',
    tenantId: world.tenants.green,
    licensed: true,
    groupId: `entra.${greenGroup.id}`,
  });
  await api(keys.green, 'PUT', '/customers/green-onboard', {
    displayName: 'Green Onboard',
    identityMode: 'cloudOnly',
    entra: { tenantId: world.tenants.greenOnboard, domains: ['greenob.example'] },
    defaultUsageLocation: 'NL',
  });
  const onboardActor = actor({
    provider: 'green',
    providerId: providers.green,
    key: keys.green,
    customerId: 'green-onboard',
    mode: 'cloudOnly',
    upnDomain: 'greenob.example',
    tenantId: world.tenants.greenOnboard,
    licensed: false,
  });

  // red: the site with its agent, one OU per customer below the agent's allowed OU.
  await api(keys.red, 'PUT', `/sites/${siteId}`, world.site);
  const staff = await adGroupId(world, 'Staff');
  const hybridOu = await makeOu(world, 'red-hybrid');
  await api(keys.red, 'PUT', '/customers/red-hybrid', {
    displayName: 'Red Hybrid',
    identityMode: 'hybridFederated',
    entra: {
      tenantId: world.tenants.redHybrid,
      domains: ['redh.example', 'fed.redh.example'],
      federatedDomain: 'fed.redh.example',
    },
    ad: { siteId, usersOu: hybridOu, upnSuffixes: ['fed.redh.example'] },
    defaultUsageLocation: 'NL',
    licencePlans: plan,
  });
  actor({
    provider: 'red',
    providerId: providers.red,
    key: keys.red,
    customerId: 'red-hybrid',
    mode: 'hybridFederated',
    upnDomain: 'fed.redh.example',
    tenantId: world.tenants.redHybrid,
    usersOu: hybridOu,
    licensed: true,
    groupId: staff,
  });
  const adOu = await makeOu(world, 'red-ad');
  await api(keys.red, 'PUT', '/customers/red-ad', {
    displayName: 'Red AD',
    identityMode: 'adOnly',
    ad: { siteId, usersOu: adOu, upnSuffixes: ['redad.example'] },
  });
  actor({
    provider: 'red',
    providerId: providers.red,
    key: keys.red,
    customerId: 'red-ad',
    mode: 'adOnly',
    upnDomain: 'redad.example',
    usersOu: adOu,
    licensed: false,
    groupId: staff,
  });
  const bothOu = await makeOu(world, 'red-both');
  await api(keys.red, 'PUT', '/customers/red-both', {
    displayName: 'Red Both',
    identityMode: 'both',
    entra: { tenantId: world.tenants.redBoth, domains: ['redb.example'] },
    ad: { siteId, usersOu: bothOu, upnSuffixes: ['redb.example'] },
    defaultUsageLocation: 'BE',
    licencePlans: plan,
  });
  actor({
    provider: 'red',
    providerId: providers.red,
    key: keys.red,
    customerId: 'red-both',
    mode: 'both',
    upnDomain: 'redb.example',
    tenantId: world.tenants.redBoth,
    usersOu: bothOu,
    licensed: true,
  });

  // The ledger starts from what the sources say (an import), so later purchases are all accounted.
  await api(keys.blue, 'POST', '/customers/blue-cloud/licensing/imports');
  await api(keys.green, 'POST', '/customers/green-cloud/licensing/imports');
  const preExisting = new Set<string>();
  const t = world.tenants;
  for (const tenantId of [blueTenant, t.green, t.greenOnboard, t.redHybrid, t.redBoth]) {
    let cursor: string | undefined;
    for (;;) {
      const page = await world.cloud(tenantId).listUserChanges(cursor);
      for (const change of page.changes) if (change.kind === 'upserted') preExisting.add(change.user.id);
      if (page.nextCursor === undefined) break;
      cursor = page.nextCursor;
    }
  }

  return {
    preExisting,
    actors: actors.filter((a) => a !== onboardActor),
    keys,
    operations: [],
    onboarding: {
      actor: onboardActor,
      tenantId: world.tenants.greenOnboard,
      started: false,
      approved: false,
    },
    refused: [],
    requests: 0,
    retriedRequests: 0,
    maxLatencyInMs: 0,
    slowRequests: 0,
    slowExamples: [],
    blue: { pcCustomerId: created.customer.id, subscriptionId, initialQuantity: 1 },
    green: { initialQuantity: 1 },
    passwords: [],
  };
}

type ActionKind = 'create' | 'update' | 'disable' | 'enable' | 'delete' | 'group' | 'onboard';

function needsPassword(mode: IdentityMode): boolean {
  return mode !== 'cloudOnly';
}

/** One seeded action against the API; its operation (if any) is tracked to a final state. */
export async function act(world: World, work: Workload, random: Random): Promise<void> {
  const a = random.pick(work.actors);
  const live = [...a.users.values()].filter((u) => u.state !== 'deleted');
  let kind: ActionKind = random.weighted({
    create: 40,
    update: 14,
    disable: 8,
    enable: 6,
    delete: 10,
    group: 10,
    onboard: work.onboarding.started ? 0 : 2,
  });
  if (kind !== 'create' && kind !== 'onboard' && live.length === 0) kind = 'create';
  const send = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    work.requests += 1;
    const started = Date.now();
    const answer = await call(world.host.url, a.key, method, path, body, headers, 180_000);
    const latency = Date.now() - started;
    work.maxLatencyInMs = Math.max(work.maxLatencyInMs, latency);
    if (latency > 10_000) {
      work.slowRequests += 1;
      if (work.slowExamples.length < 10)
        work.slowExamples.push(
          `${new Date(started).toISOString()} ${method} ${path} ${latency} ms (${answer.status})`,
        );
    }
    work.retriedRequests += answer.retried;
    return answer;
  };
  const track = (answer: Answer, what: string, userId: string): boolean => {
    const operationId = answer.body.operationId;
    if ((answer.status === 202 || answer.status === 200) && typeof operationId === 'string') {
      work.operations.push({ operationId, actor: a, kind: what, userId });
      return true;
    }
    const code = typeof answer.body.code === 'string' ? answer.body.code : '';
    const detail = typeof answer.body.detail === 'string' ? answer.body.detail : JSON.stringify(answer.body);
    work.refused.push({ action: `${a.customerId} ${what}`, status: answer.status, code, detail });
    return false;
  };

  if (kind === 'onboard') {
    work.onboarding.started = true;
    const o = work.onboarding;
    const answer = await call(
      world.host.url,
      o.actor.key,
      'POST',
      `/customers/${o.actor.customerId}/onboarding`,
      {
        tenantId: o.tenantId,
      },
    );
    work.requests += 1;
    if (answer.status !== 202 && answer.status !== 200) {
      // Refused (not started): nothing to drain; the refusal is reported and a later action tries again.
      o.started = false;
      work.refused.push({
        action: 'onboarding start',
        status: answer.status,
        code: String(answer.body.code),
        detail: JSON.stringify(answer.body),
      });
    }
    return;
  }
  if (kind === 'create') {
    const n = a.nextUser++;
    const userId = `${a.customerId}-u${n}`;
    const upn = `${a.customerId.replace('-', '')}${n}@${a.upnDomain}`;
    const password = needsPassword(a.mode) ? `Ch4os!${randomBytes(6).toString('hex')}#` : undefined;
    if (password !== undefined) work.passwords.push(password);
    const displayName = `Chaos ${a.customerId} ${n}`;
    const answer = await send(
      'POST',
      `/customers/${a.customerId}/users`,
      {
        userId,
        userPrincipalName: upn,
        displayName,
        ...(password === undefined ? {} : { password }),
        ...(a.licensed ? { licencePlan: 'E3' } : {}),
      },
      { 'Idempotency-Key': `create-${userId}` },
    );
    if (track(answer, 'create', userId)) a.users.set(userId, { userId, upn, state: 'active', displayName });
    return;
  }
  const user = random.pick(live);
  const base = `/customers/${a.customerId}/users/${user.userId}`;
  switch (kind) {
    case 'update': {
      const displayName = `${user.displayName.split(' v')[0] ?? user.displayName} v${random.int(1, 999)}`;
      const answer = await send('PATCH', base, {
        displayName,
        department: random.pick(['Ops', 'Sales', 'R&D']),
      });
      if (track(answer, 'update', user.userId)) user.displayName = displayName;
      return;
    }
    case 'disable':
    case 'enable': {
      const answer = await send('POST', `${base}/${kind}`);
      if (track(answer, kind, user.userId)) user.state = kind === 'disable' ? 'disabled' : 'active';
      return;
    }
    case 'delete': {
      const answer = await send('DELETE', base);
      if (track(answer, 'delete', user.userId)) user.state = 'deleted';
      return;
    }
    case 'group': {
      if (a.groupId === undefined) return;
      const answer = await send('PUT', `${base}/groups/${a.groupId}`, undefined, {
        'Idempotency-Key': `group-${user.userId}-${a.groupId}`,
      });
      track(answer, 'group', user.userId);
      return;
    }
  }
}

/** The onboarding job: approve once the dry run is ready; true when it reached a final state. */
export async function advanceOnboarding(world: World, work: Workload): Promise<string> {
  const o = work.onboarding;
  if (!o.started) return 'notStarted';
  const path = `/customers/${o.actor.customerId}/onboarding`;
  const job = await call(world.host.url, o.actor.key, 'GET', path);
  const state = typeof job.body.state === 'string' ? job.body.state : `http${job.status}`;
  if (state === 'failed') return `failed: ${JSON.stringify(job.body.error ?? job.body).slice(0, 300)}`;
  if (state === 'awaitingApproval' && !o.approved) {
    const approved = await call(world.host.url, o.actor.key, 'POST', `${path}/approve`, {});
    if (approved.status === 200) o.approved = true;
    return typeof approved.body.state === 'string' ? approved.body.state : state;
  }
  return state;
}

export { siteId };
