import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { guidToBase64 } from '../../shared/domain/matching.js';
import { userRecordSchema, type UserRecord } from '../../shared/domain/user.js';
import type { CloudDirectory } from '../../shared/ports/cloud-directory.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * Tenant Connect end to end on the Graph peer: an existing hybrid customer whose users Atria already
 * holds (with their AD objectGUIDs) is connected to an existing tenant with cloud users, hybrid users
 * (some with the right immutable id, some matchable only by UPN), one admin, two users claiming one
 * Atria user, and licences. Dry run → diff → approve → cases → drift (changed, added, soft-deleted) →
 * mass delete held by the guard → expired delta token → full resync. Another provider sees 404.
 */
const tenantId = randomUUID();
const skuE3 = randomUUID();
const globalAdminTemplate = '62e90394-69f5-4237-9190-012177145e10';
const guid = () => guidToBase64(randomUUID());
const anchors = {
  hard1: guid(),
  hard2: guid(),
  soft: guid(),
  shared: guid(),
  weak: guid(),
  admin: guid(),
  lone: guid(),
  dup1: guid(),
  dup2: guid(),
};
const ids = {
  hard1: randomUUID(),
  hard2: randomUUID(),
  soft: randomUUID(),
  admin: randomUUID(),
  ambA: randomUUID(),
  ambB: randomUUID(),
  weak: randomUUID(),
  dup: randomUUID(),
  new1: randomUUID(),
  new2: randomUUID(),
};
const d = 'contoso.example';
const seed = graphSeed({
  id: tenantId,
  displayName: 'Contoso',
  domains: [
    { id: d, isDefault: true, authenticationType: 'Managed' },
    { id: 'fed.contoso.example', authenticationType: 'Federated' },
  ],
  skus: [{ skuId: skuE3, skuPartNumber: 'ENTERPRISEPACK', enabled: 10 }],
  users: [
    // Right immutable id (one with a UPN and name that drifted from AD's).
    {
      id: ids.hard1,
      userPrincipalName: `hard1@${d}`,
      displayName: 'Hard One',
      onPremisesImmutableId: anchors.hard1,
      usageLocation: 'NL',
    },
    {
      id: ids.hard2,
      userPrincipalName: `h2.cloud@${d}`,
      displayName: 'H2 (cloud)',
      onPremisesImmutableId: anchors.hard2,
    },
    // Matchable only by UPN (+ display name).
    { id: ids.soft, userPrincipalName: `soft@${d}`, displayName: 'Soft Match' },
    { id: ids.admin, userPrincipalName: `admin@${d}`, displayName: 'Tenant Admin' },
    // Two cloud users for one Atria user: one by its anchor, one by UPN + name.
    {
      id: ids.ambA,
      userPrincipalName: `shared.a@${d}`,
      displayName: 'Shared A',
      onPremisesImmutableId: anchors.shared,
    },
    { id: ids.ambB, userPrincipalName: `shared@${d}`, displayName: 'Shared User' },
    // UPN matches, the name does not: below definite.
    { id: ids.weak, userPrincipalName: `weak@${d}`, displayName: 'Someone Else' },
    // One cloud user, two Atria users with its UPN and name (a duplicate in AD).
    { id: ids.dup, userPrincipalName: `dup@${d}`, displayName: 'Dup User' },
    // Cloud only.
    { id: ids.new1, userPrincipalName: `new1@${d}`, displayName: 'New One', usageLocation: 'NL' },
    { id: ids.new2, userPrincipalName: `new2@${d}`, displayName: 'New Two' },
  ],
  directoryRoles: [
    { roleTemplateId: globalAdminTemplate, displayName: 'Global Administrator', members: [`admin@${d}`] },
  ],
});

const provider = `prov-onb-${randomUUID().slice(0, 8)}`;
const customerId = 'contoso';
let stack: TestStack;
let key: string;
let otherKey: string;
let cloud: CloudDirectory;
let groupId: string;

const jobSchema = z
  .object({
    state: z.string(),
    progress: z.object({
      read: z.number(),
      matched: z.number(),
      cases: z.number(),
      onlyInCloud: z.number(),
      onlyLocal: z.number(),
      pending: z.number(),
      linked: z.number(),
      created: z.number(),
      groups: z.number(),
    }),
    organization: z.object({ id: z.string(), displayName: z.string() }).optional(),
    domains: z.array(z.object({ id: z.string(), authenticationType: z.string() })),
    skus: z.array(z.object({ skuId: z.string(), consumedUnits: z.number() })),
  })
  .loose();
const itemSchema = z
  .object({
    itemId: z.string(),
    kind: z.string(),
    userId: z.string().optional(),
    how: z.string().optional(),
    reason: z.string().optional(),
    candidates: z.array(z.object({ key: z.string() })).optional(),
    differences: z.array(
      z.object({
        attribute: z.string(),
        cloud: z.string().nullable(),
        local: z.string().nullable(),
        winner: z.string(),
      }),
    ),
    cloud: z
      .object({ licences: z.array(z.string()) })
      .loose()
      .optional(),
  })
  .loose();
const pageSchema = z.object({ value: z.array(itemSchema), nextLink: z.string().optional() });

async function call(
  path: string,
  init: RequestInit & { key?: string } = {},
): Promise<{ status: number; body: unknown }> {
  const response = await stack.api(path, { key, ...init });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}
async function allItems(path: string): Promise<z.infer<typeof itemSchema>[]> {
  const found: z.infer<typeof itemSchema>[] = [];
  for (
    let next: string | undefined = `${path}${path.includes('?') ? '&' : '?'}limit=3`;
    next !== undefined;
  ) {
    const answer = await call(next.replace(/^\/api/, ''));
    expect(answer.status).toBe(200);
    const page = pageSchema.parse(answer.body);
    found.push(...page.value);
    next = page.nextLink;
  }
  return found;
}
const users = () => stack.deps.store.collection('users', userRecordSchema);
async function record(userId: string): Promise<UserRecord | undefined> {
  return (await users().get(`${provider}/${customerId}`, userId))?.value;
}
async function job() {
  const answer = await call(`/customers/${customerId}/onboarding`);
  expect(answer.status).toBe(200);
  return jobSchema.parse(answer.body);
}

function atriaUser(userId: string, upn: string, displayName: string, objectGuid: string): UserRecord {
  const at = new Date().toISOString();
  return {
    userId,
    providerId: provider,
    customerId,
    userPrincipalName: upn,
    displayName,
    state: 'active',
    ad: {
      objectGuid,
      dn: `CN=${displayName},OU=Users,DC=atria,DC=test`,
      sAMAccountName: userId.slice(0, 20),
    },
    licences: [],
    lastOperationId: 'seeded',
    createdAt: at,
    updatedAt: at,
  };
}

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    // Small numbers so a dozen users can show the delete guard: 3 or more and over 25 % stops a pass.
    extraSettings: { Onboarding__deleteThresholdPercent: '25', Onboarding__deleteThresholdMinimum: '3' },
  });
  key = (await stack.deps.callers.createApiKey({ providerId: provider, name: 'e2e onboarding' })).apiKey;
  otherKey = (await stack.deps.callers.createApiKey({ providerId: `${provider}-other`, name: 'other' }))
    .apiKey;
  cloud = stack.cloudDirectory(tenantId);
  await cloud.assignLicences(ids.hard1, { add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] });
  await cloud.assignLicences(ids.new1, { add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] });
  groupId = (await cloud.createGroup({ displayName: 'Sales', mailNickname: 'sales' })).id;
  await cloud.addGroupMember(groupId, ids.hard1);
  await cloud.addGroupMember(groupId, ids.new1);

  const siteId = `site-onb-${randomUUID().slice(0, 8)}`;
  const site = await call(`/sites/${siteId}`, {
    method: 'PUT',
    body: JSON.stringify({
      publicKeyPem: generateSiteKeyPair().publicKeyPem,
      agentPublicKeyPem: generateSigningKeyPair().publicKeyPem,
    }),
  });
  expect(site.status).toBe(201);
  const put = await call(`/customers/${customerId}`, {
    method: 'PUT',
    body: JSON.stringify({
      displayName: 'Contoso',
      identityMode: 'hybridFederated',
      entra: { tenantId, domains: [d, 'fed.contoso.example'], federatedDomain: 'fed.contoso.example' },
      ad: { siteId, usersOu: 'OU=Users,DC=atria,DC=test', upnSuffixes: ['fed.contoso.example', d] },
    }),
  });
  expect(put.status).toBe(201);
  // Tenant Connect: the customer's users as Atria already holds them (written to AD earlier).
  const partition = `${provider}/${customerId}`;
  for (const user of [
    atriaUser('u-hard1', `hard1@${d}`, 'Hard One', anchors.hard1),
    atriaUser('u-hard2', `hard2@${d}`, 'Hard Two', anchors.hard2),
    atriaUser('u-soft', `soft@${d}`, 'Soft Match', anchors.soft),
    atriaUser('u-admin', `admin@${d}`, 'Tenant Admin', anchors.admin),
    atriaUser('u-shared', `shared@${d}`, 'Shared User', anchors.shared),
    atriaUser('u-weak', `weak@${d}`, 'Weak Match', anchors.weak),
    atriaUser('u-dup1', `dup@${d}`, 'Dup User', anchors.dup1),
    atriaUser('u-dup2', `dup@${d}`, 'Dup User', anchors.dup2),
    atriaUser('u-lone', `lone@${d}`, 'Only In AD', anchors.lone),
  ])
    await users().create(partition, user.userId, user);
});

afterAll(async () => {
  await stack.deps.onboarding.idle();
  await stack.stop();
});

describe('onboarding an existing tenant (Tenant Connect) on the Graph peer', () => {
  it('refuses a tenant the customer does not name, and answers another provider 404 on every route', async () => {
    const wrong = await call(`/customers/${customerId}/onboarding`, {
      method: 'POST',
      body: JSON.stringify({ tenantId: randomUUID() }),
    });
    expect(wrong.status).toBe(409);
    for (const [method, path, body] of [
      ['POST', `/customers/${customerId}/onboarding`, { tenantId }],
      ['GET', `/customers/${customerId}/onboarding`, undefined],
      ['GET', `/customers/${customerId}/onboarding/items`, undefined],
      ['GET', `/customers/${customerId}/onboarding/groups`, undefined],
      ['POST', `/customers/${customerId}/onboarding/approve`, {}],
      ['GET', `/customers/${customerId}/onboarding/cases`, undefined],
      ['POST', `/customers/${customerId}/onboarding/cases/${ids.weak}/resolve`, { action: 'ignore' }],
      ['GET', `/customers/${customerId}/onboarding/sync`, undefined],
      ['POST', `/customers/${customerId}/onboarding/sync`, undefined],
      ['POST', `/customers/${customerId}/onboarding/sync/confirm`, undefined],
    ] as const) {
      const answer = await call(path, {
        method,
        key: otherKey,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(answer.status, `${method} ${path}`).toBe(404);
    }
  });

  it('checks access first: a tenant the app was not consented in gets an actionable 403 and no job', async () => {
    const created = await fetch(`${stack.graph.adminUrl}/tenants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        displayName: 'Fabrikam',
        domains: [{ id: 'fabrikam.example', isDefault: true }],
      }),
    });
    expect(created.status).toBe(201);
    const { id: unconsented } = (await created.json()) as { id: string };
    const put = await call('/customers/fabrikam', {
      method: 'PUT',
      body: JSON.stringify({
        displayName: 'Fabrikam',
        identityMode: 'cloudOnly',
        entra: { tenantId: unconsented, domains: ['fabrikam.example'] },
      }),
    });
    expect(put.status).toBe(201);
    const refused = await call('/customers/fabrikam/onboarding', {
      method: 'POST',
      body: JSON.stringify({ tenantId: unconsented }),
    });
    expect(refused.status).toBe(403);
    const problem = refused.body as { code: string; detail: string };
    expect(problem.code).toBe('Forbidden');
    expect(problem.detail).toContain(
      `https://login.microsoftonline.com/${unconsented}/adminconsent?client_id=${stack.graphApp.clientId}`,
    );
    expect(problem.detail).toContain('GDAP');
    expect((await call('/customers/fabrikam/onboarding')).status).toBe(404);
  });

  it('reads the tenant and stops at a dry-run diff with exactly the expected items', async () => {
    const started = await call(`/customers/${customerId}/onboarding`, {
      method: 'POST',
      body: JSON.stringify({ tenantId }),
    });
    expect(started.status).toBe(202);
    await waitFor(async () => ((await job()).state === 'awaitingApproval' ? true : undefined), 'dry run');
    const dry = await job();
    expect(dry.organization?.id).toBe(tenantId);
    expect(dry.domains.map((x) => [x.id, x.authenticationType])).toEqual(
      expect.arrayContaining([
        [d, 'Managed'],
        ['fed.contoso.example', 'Federated'],
      ]),
    );
    expect(dry.skus.find((s) => s.skuId === skuE3)?.consumedUnits).toBe(2);
    const groups = await call(`/customers/${customerId}/onboarding/groups`);
    expect(groups.body).toMatchObject({
      value: [{ id: groupId, displayName: 'Sales', securityEnabled: true }],
    });
    expect((groups.body as { value: { memberIds: string[] }[] }).value[0]?.memberIds.sort()).toEqual(
      [ids.hard1, ids.new1].sort(),
    );
    expect(dry.progress).toMatchObject({
      read: 10,
      matched: 3,
      cases: 5,
      onlyInCloud: 2,
      onlyLocal: 1,
      pending: 5,
      linked: 0,
      groups: 1,
    });

    // The diff: decided items page by page (one row per Graph page), the cases on their own.
    const items = [
      ...(await allItems(`/customers/${customerId}/onboarding/items`)),
      ...(await allItems(`/customers/${customerId}/onboarding/cases`)),
    ];
    expect(
      (await allItems(`/customers/${customerId}/onboarding/items?kind=onlyInCloud`))
        .map((i) => i.itemId)
        .sort(),
    ).toEqual([ids.new1, ids.new2].sort());
    const byId = new Map(items.map((i) => [i.itemId, i]));
    expect(byId.get(ids.hard1)).toMatchObject({
      kind: 'matched',
      userId: 'u-hard1',
      how: 'hard',
      differences: [],
    });
    expect(byId.get(ids.hard1)?.cloud?.licences).toEqual([skuE3]);
    expect(byId.get(ids.hard2)).toMatchObject({ kind: 'matched', userId: 'u-hard2', how: 'hard' });
    expect(byId.get(ids.hard2)?.differences).toEqual([
      { attribute: 'userPrincipalName', cloud: `h2.cloud@${d}`, local: `hard2@${d}`, winner: 'ad' },
      { attribute: 'displayName', cloud: 'H2 (cloud)', local: 'Hard Two', winner: 'ad' },
    ]);
    expect(byId.get(ids.soft)).toMatchObject({ kind: 'matched', userId: 'u-soft', how: 'soft' });
    expect(byId.get(ids.admin)).toMatchObject({
      kind: 'case',
      reason: 'adminRole',
      candidates: [{ key: 'u-admin' }],
    });
    expect(byId.get(ids.ambA)).toMatchObject({
      kind: 'case',
      reason: 'ambiguous',
      candidates: [{ key: 'u-shared' }],
    });
    expect(byId.get(ids.ambB)).toMatchObject({
      kind: 'case',
      reason: 'ambiguous',
      candidates: [{ key: 'u-shared' }],
    });
    expect(byId.get(ids.weak)).toMatchObject({
      kind: 'case',
      reason: 'belowDefinite',
      candidates: [{ key: 'u-weak' }],
    });
    expect(byId.get(ids.dup)).toMatchObject({ kind: 'case', reason: 'ambiguous' });
    expect(byId.get(ids.dup)?.candidates?.map((c) => c.key)).toEqual(['u-dup1', 'u-dup2']);
    expect(byId.get(ids.new1)?.kind).toBe('onlyInCloud');
    expect(byId.get(ids.new2)?.kind).toBe('onlyInCloud');
    expect(byId.get('local:u-lone')).toMatchObject({ kind: 'onlyLocal', userId: 'u-lone' });
    expect(items).toHaveLength(11);

    const cases = await allItems(`/customers/${customerId}/onboarding/cases`);
    expect(cases.map((c) => c.itemId).sort()).toEqual(
      [ids.admin, ids.ambA, ids.ambB, ids.weak, ids.dup].sort(),
    );
    // Nothing is linked or changed before approval.
    expect((await record('u-soft'))?.entra).toBeUndefined();
    expect((await cloud.getUser(ids.soft)).onPremisesImmutableId).toBeNull();
  });

  it('approving links the right users, stamps the anchor, lets AD win and creates the cloud-only users', async () => {
    const approved = await call(`/customers/${customerId}/onboarding/approve`, {
      method: 'POST',
      body: '{}',
    });
    expect(approved.status).toBe(200);
    // The licence sources were imported into the seat ledger under the job's own import id.
    expect((approved.body as { licensingImport?: unknown }).licensingImport).toMatchObject({
      importId: expect.stringMatching(/^onboarding-/) as unknown,
      state: 'succeeded',
    });
    const ledger = await stack.deps.licensing.ledger(
      { id: 'e2e', kind: 'apiKey', providerId: provider },
      customerId,
    );
    expect(ledger.length).toBeGreaterThan(0);
    expect(jobSchema.parse(approved.body)).toMatchObject({
      state: 'awaitingApproval',
      progress: { linked: 3, created: 2, pending: 5 },
    });

    expect((await record('u-hard1'))?.entra).toEqual({
      objectId: ids.hard1,
      onPremisesImmutableId: anchors.hard1,
    });
    expect((await record('u-hard1'))?.licences.map((l) => l.skuId)).toEqual([skuE3]);
    expect((await record('u-soft'))?.entra?.objectId).toBe(ids.soft);
    // The soft match stamped the anchor: a later match is hard.
    expect((await cloud.getUser(ids.soft)).onPremisesImmutableId).toBe(anchors.soft);
    const hard2 = await cloud.getUser(ids.hard2);
    expect([hard2.userPrincipalName, hard2.displayName]).toEqual([`hard2@${d}`, 'Hard Two']);
    expect(await record(`entra-${ids.new1}`)).toMatchObject({
      state: 'active',
      entra: { objectId: ids.new1 },
    });
    expect((await record(`entra-${ids.new2}`))?.userPrincipalName).toBe(`new2@${d}`);
    // Cases are untouched until a person resolves them.
    expect((await record('u-shared'))?.entra).toBeUndefined();
    expect((await record('u-admin'))?.entra).toBeUndefined();
  });

  it('resolves cases one by one (link, create new, ignore) and completes', async () => {
    const resolve = (id: string, body: unknown) =>
      call(`/customers/${customerId}/onboarding/cases/${id}/resolve`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
    expect((await resolve(ids.weak, { action: 'link', userId: 'nobody' })).status).toBe(400);
    expect((await resolve(ids.hard1, { action: 'ignore' })).status).toBe(404); // not a case
    expect((await resolve(ids.weak, { action: 'link', userId: 'u-weak' })).status).toBe(200);
    expect((await resolve(ids.dup, { action: 'link', userId: 'u-dup1' })).status).toBe(200);
    // Both claimants of u-shared: one becomes its own user, the other is left alone.
    expect((await resolve(ids.ambA, { action: 'createNew' })).status).toBe(200);
    expect((await resolve(ids.ambB, { action: 'ignore' })).status).toBe(200);
    expect((await resolve(ids.admin, { action: 'ignore' })).status).toBe(200);
    // Repeating a resolution is a no-op; changing it is refused.
    expect((await resolve(ids.admin, { action: 'ignore' })).status).toBe(200);
    expect((await resolve(ids.admin, { action: 'createNew' })).status).toBe(409);

    expect((await record('u-weak'))?.entra?.objectId).toBe(ids.weak);
    expect((await cloud.getUser(ids.weak)).onPremisesImmutableId).toBe(anchors.weak);
    // Linked to an AD-anchored user: AD's name wins in the cloud too.
    expect((await cloud.getUser(ids.weak)).displayName).toBe('Weak Match');
    expect((await record('u-dup1'))?.entra?.objectId).toBe(ids.dup);
    expect((await cloud.getUser(ids.dup)).onPremisesImmutableId).toBe(anchors.dup1);
    expect((await record('u-dup2'))?.entra).toBeUndefined();
    expect((await record(`entra-${ids.ambA}`))?.entra?.objectId).toBe(ids.ambA);
    expect(await record(`entra-${ids.ambB}`)).toBeUndefined();
    expect((await record('u-shared'))?.entra).toBeUndefined();
    expect((await record('u-admin'))?.entra).toBeUndefined();
    expect(await job()).toMatchObject({
      state: 'completed',
      progress: { pending: 0, linked: 5, created: 3 },
    });
  });

  it('reconciles a later delta: changed (AD wins for hybrid, Entra for cloud-only), added, soft-deleted', async () => {
    await cloud.updateUser(ids.hard1, { displayName: 'Renamed In Cloud' });
    await cloud.updateUser(ids.new1, { displayName: 'New One Renamed' });
    const added = await cloud.createUser({
      userPrincipalName: `added@${d}`,
      displayName: 'Added Later',
      mailNickname: 'added',
      password: 'Str0ng!Passw0rd#1',
    });
    await cloud.deleteUser(ids.new2);

    const pass = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(pass.status).toBe(200);
    expect(pass.body).toMatchObject({ held: false, full: false, created: 1, removed: 1, reverted: 1 });
    expect((await cloud.getUser(ids.hard1)).displayName).toBe('Hard One');
    expect((await record('u-hard1'))?.displayName).toBe('Hard One');
    expect((await record(`entra-${ids.new1}`))?.displayName).toBe('New One Renamed');
    expect(await record(`entra-${added.id}`)).toMatchObject({
      state: 'active',
      userPrincipalName: `added@${d}`,
    });
    expect((await record(`entra-${ids.new2}`))?.state).toBe('deleted');
  });

  it('stops a mass delete at the guard until a person confirms it', async () => {
    for (const id of [ids.hard1, ids.hard2, ids.soft, ids.weak]) await cloud.deleteUser(id);
    const held = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(held.body).toMatchObject({ held: true, deletions: 4, removed: 0 });
    expect((await record('u-hard1'))?.state).toBe('active');
    const again = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(again.body).toMatchObject({ held: true, deletions: 4 });
    const state = await call(`/customers/${customerId}/onboarding/sync`);
    expect(state.body).toMatchObject({ held: { deletions: 4 } });
    expect(JSON.stringify(state.body)).not.toContain('deltatoken');

    expect((await call(`/customers/${customerId}/onboarding/sync/confirm`, { method: 'POST' })).status).toBe(
      200,
    );
    const applied = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(applied.body).toMatchObject({ held: false, removed: 4 });
    for (const userId of ['u-hard1', 'u-hard2', 'u-soft', 'u-weak'])
      expect((await record(userId))?.state).toBe('deleted');
    expect((await call(`/customers/${customerId}/onboarding/sync/confirm`, { method: 'POST' })).status).toBe(
      409,
    );
  });

  it('starts a full resync when the stored delta token has expired (410 syncStateNotFound)', async () => {
    // Age the stored token past Graph's 7 days (the peer dates tokens by their own field).
    const syncStates = stack.deps.store.collection(
      'onboardingsync',
      z.object({ deltaLink: z.string() }).loose(),
    );
    const row = await syncStates.get('sync', `${provider}/${customerId}`);
    if (row === undefined) throw new Error('no sync state');
    const url = new URL(row.value.deltaLink);
    const token = JSON.parse(
      Buffer.from(url.searchParams.get('$deltatoken') ?? '', 'base64url').toString('utf8'),
    ) as { t: number };
    token.t -= 8 * 24 * 3600_000;
    url.searchParams.set('$deltatoken', Buffer.from(JSON.stringify(token)).toString('base64url'));
    await syncStates.replace('sync', row.rowKey, { ...row.value, deltaLink: url.toString() }, row.etag);
    await cloud.updateUser(ids.new1, { displayName: 'Seen In Full Round' });

    const pass = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(pass.body).toMatchObject({ held: false, full: true, removed: 0, created: 0 });
    expect((await record(`entra-${ids.new1}`))?.displayName).toBe('Seen In Full Round');
    // The new round's link works as a delta again.
    const next = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(next.body).toMatchObject({ held: false, full: false, upserted: 0 });
  });
});
