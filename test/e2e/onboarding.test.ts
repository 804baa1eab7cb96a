import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Attribute, Change, Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunningAgent } from '../../agent/runtime.js';
import { startLocalAgent } from '../../dev/local-agent.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import { z } from 'zod';
import { guidToBase64 } from '../../shared/domain/matching.js';
import { userRecordSchema, type UserRecord } from '../../shared/domain/user.js';
import type { CloudDirectory } from '../../shared/ports/cloud-directory.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * Tenant Connect end to end on the Graph peer and a real Samba AD DC read through the real relay agent
 * (bound as the delegated service account): an existing hybrid customer whose users Atria already holds
 * (their AD objectGUIDs from the DC), plus AD users Atria does not hold, is connected to an existing
 * tenant with cloud users, hybrid users (some with the right immutable id — one via
 * ms-DS-ConsistencyGuid —, some matchable only by UPN), one admin, two users claiming one Atria user,
 * and licences. Dry run (from the onboarding-work queue) → diff → approve → cases → drift (changed in
 * the cloud and in AD, added, soft-deleted) → mass delete held by the guard → AD deletions with and
 * without the right to read CN=Deleted Objects → full reconciliation → expired delta token → full
 * resync. Another provider sees 404.
 */
const tenantId = randomUUID();
const skuE3 = randomUUID();
const globalAdminTemplate = '62e90394-69f5-4237-9190-012177145e10';
/** objectGUIDs as the DC assigns them (base64), filled in beforeAll. */
const anchors: Record<string, string> = {};
/** The migrated user's ms-DS-ConsistencyGuid: an older objectGUID, the sourceAnchor its cloud user holds. */
const migratedAnchor = guidToBase64(randomUUID());
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
  adHard: randomUUID(),
  adSoft: randomUUID(),
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
    // (immutable ids are set to the DC's objectGUIDs in beforeAll)
    { id: ids.hard1, userPrincipalName: `hard1@${d}`, displayName: 'Hard One', usageLocation: 'NL' },
    { id: ids.hard2, userPrincipalName: `h2.cloud@${d}`, displayName: 'H2 (cloud)' },
    // Matchable only by UPN (+ display name).
    { id: ids.soft, userPrincipalName: `soft@${d}`, displayName: 'Soft Match' },
    { id: ids.admin, userPrincipalName: `admin@${d}`, displayName: 'Tenant Admin' },
    // Two cloud users for one Atria user: one by its anchor, one by UPN + name.
    { id: ids.ambA, userPrincipalName: `shared.a@${d}`, displayName: 'Shared A' },
    { id: ids.ambB, userPrincipalName: `shared@${d}`, displayName: 'Shared User' },
    // UPN matches, the name does not: below definite.
    { id: ids.weak, userPrincipalName: `weak@${d}`, displayName: 'Someone Else' },
    // One cloud user, two Atria users with its UPN and name (a duplicate in AD).
    { id: ids.dup, userPrincipalName: `dup@${d}`, displayName: 'Dup User' },
    // Cloud only.
    { id: ids.new1, userPrincipalName: `new1@${d}`, displayName: 'New One', usageLocation: 'NL' },
    { id: ids.new2, userPrincipalName: `new2@${d}`, displayName: 'New Two' },
    // In AD only (not in Atria): one by its ConsistencyGuid anchor, one by UPN + name.
    {
      id: ids.adHard,
      userPrincipalName: `migrated@${d}`,
      displayName: 'Migrated User',
      onPremisesImmutableId: migratedAnchor,
    },
    { id: ids.adSoft, userPrincipalName: `adsoft@${d}`, displayName: 'AD Soft' },
  ],
  directoryRoles: [
    { roleTemplateId: globalAdminTemplate, displayName: 'Global Administrator', members: [`admin@${d}`] },
  ],
});

const provider = `prov-onb-${randomUUID().slice(0, 8)}`;
const customerId = 'contoso';
const siteId = 'onboarding'; // the Service Bus peer's config declares agent-site-onboarding
let dc: SambaPeer;
let dcDir: string;
let agent: RunningAgent;
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

/** A raw admin connection to the DC (what a person does in AD Users and Computers). */
async function asAdmin<T>(work: (admin: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ url: dc.url, tlsOptions: { ca: [readFileSync(dc.caFile)] } });
  await admin.bind(dc.bindDn, dc.password);
  try {
    return await work(admin);
  } finally {
    await admin.unbind();
  }
}
/** The Atria user id a user only AD held gets (objectGUID as base64url). */
const adKey = (sam: string) => `ad-${Buffer.from(anchors[sam] ?? '', 'base64').toString('base64url')}`;
const adDn = (sam: string) => `CN=${sam},${dc.usersOu}`;
/** Creates an enabled AD user and returns its objectGUID as base64 (what Entra's immutable id holds). */
async function adCreate(sam: string, upn: string, displayName: string, consistencyGuid?: string) {
  return asAdmin(async (admin) => {
    await admin.add(adDn(sam), {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: sam,
      userPrincipalName: upn,
      displayName,
      userAccountControl: '512',
    });
    if (consistencyGuid !== undefined)
      await admin.modify(
        adDn(sam),
        new Change({
          operation: 'replace',
          modification: new Attribute({
            type: 'mS-DS-ConsistencyGuid',
            values: [Buffer.from(consistencyGuid, 'base64')],
          }),
        }),
      );
    const { searchEntries } = await admin.search(dc.usersOu, {
      scope: 'one',
      filter: new EqualityFilter({ attribute: 'sAMAccountName', value: sam }),
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    return (searchEntries[0]?.objectGUID as Buffer).toString('base64');
  });
}

/**
 * Lets the agent's delegated account list CN=Deleted Objects, as `dsacls "CN=Deleted Objects,…"
 * /takeownership` then `/g DOMAIN\account:LCRP` do on Windows (agent/README.md). Samba: the container's
 * descriptor rewritten in sam.ldb with the Show Deleted control (the running DC sees it at once).
 */
function grantDeletedObjectsRead(): void {
  const ldb = join(dcDir, 'private', 'sam.ldb');
  const base = `CN=Deleted Objects,${dc.baseDn}`;
  const sd = /nTSecurityDescriptor: (.*)/.exec(
    execFileSync(
      'ldbsearch',
      ['-H', ldb, '--controls=show_deleted:1', '-b', base, '-s', 'base', 'nTSecurityDescriptor'],
      {
        encoding: 'utf8',
      },
    ).replace(/\n /g, ''),
  )?.[1];
  const sid = /objectSid: (S-[\d-]+)/.exec(
    execFileSync('ldbsearch', ['-H', ldb, `(distinguishedName=${dc.serviceAccount.bindDn})`, 'objectSid'], {
      encoding: 'utf8',
    }),
  )?.[1];
  if (sd === undefined || sid === undefined) throw new Error('no descriptor or SID to grant');
  const ldif = join(dcDir, 'grant-deleted-objects.ldif');
  writeFileSync(
    ldif,
    `dn: ${base}\nchangetype: modify\nreplace: nTSecurityDescriptor\nnTSecurityDescriptor: ${sd.replace('S:', `(A;;LCRP;;;${sid})S:`)}\n`,
  );
  execFileSync('ldbmodify', ['-H', ldb, '--controls=show_deleted:1', ldif]);
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
    ad: { objectGuid, dn: adDn(userId), sAMAccountName: userId },
    licences: [],
    lastOperationId: 'seeded',
    createdAt: at,
    updatedAt: at,
  };
}

beforeAll(async () => {
  dcDir = join(process.cwd(), '.local', 'samba', `onboarding-${randomUUID().slice(0, 8)}`);
  dc = await startSambaPeer({ dir: dcDir });
  const signing = generateSigningKeyPair();
  const siteKeys = generateSiteKeyPair();
  const agentKeys = generateSigningKeyPair();
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    extraSettings: {
      // Small numbers so a dozen users can show the delete guard: 3 or more and over 25 % stops a pass.
      Onboarding__deleteThresholdPercent: '25',
      Onboarding__deleteThresholdMinimum: '3',
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: 'e2e-onboarding',
      Relay__replyTimeoutInMs: '20000',
    },
  });
  // The agent binds as the delegated service account (full control on OU=Atria only), as deployed.
  agent = await startLocalAgent({
    siteId,
    serviceBusConnectionString: stack.serviceBus.connectionString,
    dc: { ...dc, bindDn: dc.serviceAccount.bindDn, password: dc.serviceAccount.password },
    signing: { kid: 'e2e-onboarding', publicKeyPem: signing.publicKeyPem },
    sitePrivateKeyPem: siteKeys.privateKeyPem,
    agentSigningKeyPem: agentKeys.privateKeyPem,
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

  const site = await call(`/sites/${siteId}`, {
    method: 'PUT',
    body: JSON.stringify({ publicKeyPem: siteKeys.publicKeyPem, agentPublicKeyPem: agentKeys.publicKeyPem }),
  });
  expect(site.status).toBe(201);

  // AD as the DC holds it: Atria's users (written there earlier) and three users only AD holds.
  for (const [sam, upn, name] of [
    ['u-hard1', `hard1@${d}`, 'Hard One'],
    ['u-hard2', `hard2@${d}`, 'Hard Two'],
    ['u-soft', `soft@${d}`, 'Soft Match'],
    ['u-admin', `admin@${d}`, 'Tenant Admin'],
    ['u-shared', `shared@${d}`, 'Shared User'],
    ['u-weak', `weak@${d}`, 'Weak Match'],
    ['u-dup1', `dup@${d}`, 'Dup User'],
    ['u-lone', `lone@${d}`, 'Only In AD'],
    ['ad-soft', `adsoft@${d}`, 'AD Soft'],
    ['ad-lone', `adlone@${d}`, 'AD Alone'],
  ] as const)
    anchors[sam] = await adCreate(sam, upn, name);
  // u-dup2: an Atria record with dup@'s UPN and name whose AD object is gone (AD refuses a second UPN).
  anchors['u-dup2'] = guidToBase64(randomUUID());
  anchors['ad-migrated'] = await adCreate('ad-migrated', `migrated@${d}`, 'Migrated User', migratedAnchor);
  // Hybrid cloud users holding their AD anchor (one claims u-shared by anchor, ambB by UPN + name).
  for (const [id, sam] of [
    [ids.hard1, 'u-hard1'],
    [ids.hard2, 'u-hard2'],
    [ids.ambA, 'u-shared'],
  ] as const)
    await cloud.updateUser(id, { onPremisesImmutableId: anchors[sam] ?? null });
  const put = await call(`/customers/${customerId}`, {
    method: 'PUT',
    body: JSON.stringify({
      displayName: 'Contoso',
      identityMode: 'hybridFederated',
      entra: { tenantId, domains: [d, 'fed.contoso.example'], federatedDomain: 'fed.contoso.example' },
      ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['fed.contoso.example', d] },
    }),
  });
  expect(put.status).toBe(201);
  // Tenant Connect: the customer's users as Atria already holds them (written to AD earlier).
  const partition = `${provider}/${customerId}`;
  for (const [userId, upn, name] of [
    ['u-hard1', `hard1@${d}`, 'Hard One'],
    ['u-hard2', `hard2@${d}`, 'Hard Two'],
    ['u-soft', `soft@${d}`, 'Soft Match'],
    ['u-admin', `admin@${d}`, 'Tenant Admin'],
    ['u-shared', `shared@${d}`, 'Shared User'],
    ['u-weak', `weak@${d}`, 'Weak Match'],
    ['u-dup1', `dup@${d}`, 'Dup User'],
    ['u-dup2', `dup@${d}`, 'Dup User'],
    ['u-lone', `lone@${d}`, 'Only In AD'],
  ] as const) {
    const user = atriaUser(userId, upn, name, anchors[userId] ?? '');
    await users().create(partition, user.userId, user);
  }
}, 120_000);

afterAll(async () => {
  await stack?.deps.onboarding.idle();
  await agent?.stop();
  await stack?.stop();
  await dc?.stop();
  rmSync(dcDir, { recursive: true, force: true });
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
    // The call only records the job; the read runs from the onboarding-work queue.
    expect(started.body).toMatchObject({ state: 'reading', progress: { read: 0 } });
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
      read: 12,
      matched: 5,
      cases: 5,
      onlyInCloud: 2,
      onlyLocal: 2,
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
    expect(byId.get('local:u-lone')).toMatchObject({
      kind: 'onlyLocal',
      userId: 'u-lone',
      local: { inAd: true, inAtria: true },
    });
    // The AD side came from the DC through the agent: users only AD holds are matched and listed too.
    expect(byId.get(ids.adHard)).toMatchObject({
      kind: 'matched',
      userId: adKey('ad-migrated'),
      how: 'hard',
      anchors: [anchors['ad-migrated'], migratedAnchor],
      local: { inAd: true, inAtria: false, userPrincipalName: `migrated@${d}` },
    });
    expect(byId.get(ids.adSoft)).toMatchObject({
      kind: 'matched',
      userId: adKey('ad-soft'),
      how: 'soft',
      local: { inAd: true, inAtria: false },
    });
    expect(byId.get(`local:${adKey('ad-lone')}`)).toMatchObject({
      kind: 'onlyLocal',
      local: { userPrincipalName: `adlone@${d}`, displayName: 'AD Alone', inAd: true, inAtria: false },
    });
    expect(byId.get(ids.hard1)?.local).toEqual({
      userPrincipalName: `hard1@${d}`,
      displayName: 'Hard One',
      inAd: true,
      inAtria: true,
    });
    expect(items).toHaveLength(14);

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
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
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
      progress: { linked: 5, created: 2, pending: 5 },
    });
    // Users only AD held became Atria users, linked: the migrated one keeps its ConsistencyGuid anchor,
    // the soft-matched one gets its objectGUID stamped.
    expect(await record(adKey('ad-migrated'))).toMatchObject({
      userPrincipalName: `migrated@${d}`,
      ad: { objectGuid: anchors['ad-migrated'], sAMAccountName: 'ad-migrated' },
      entra: { objectId: ids.adHard, onPremisesImmutableId: migratedAnchor },
    });
    expect((await cloud.getUser(ids.adHard)).onPremisesImmutableId).toBe(migratedAnchor);
    expect((await record(adKey('ad-soft')))?.entra?.objectId).toBe(ids.adSoft);
    expect((await cloud.getUser(ids.adSoft)).onPremisesImmutableId).toBe(anchors['ad-soft']);
    expect(await record(adKey('ad-lone'))).toBeUndefined();

    expect((await record('u-hard1'))?.entra).toEqual({
      objectId: ids.hard1,
      onPremisesImmutableId: anchors['u-hard1'],
    });
    expect((await record('u-hard1'))?.licences.map((l) => l.skuId)).toEqual([skuE3]);
    expect((await record('u-soft'))?.entra?.objectId).toBe(ids.soft);
    // The soft match stamped the anchor: a later match is hard.
    expect((await cloud.getUser(ids.soft)).onPremisesImmutableId).toBe(anchors['u-soft']);
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
    expect((await cloud.getUser(ids.weak)).onPremisesImmutableId).toBe(anchors['u-weak']);
    // Linked to an AD-anchored user: AD's name wins in the cloud too.
    expect((await cloud.getUser(ids.weak)).displayName).toBe('Weak Match');
    expect((await record('u-dup1'))?.entra?.objectId).toBe(ids.dup);
    expect((await cloud.getUser(ids.dup)).onPremisesImmutableId).toBe(anchors['u-dup1']);
    expect((await record('u-dup2'))?.entra).toBeUndefined();
    expect((await record(`entra-${ids.ambA}`))?.entra?.objectId).toBe(ids.ambA);
    expect(await record(`entra-${ids.ambB}`)).toBeUndefined();
    expect((await record('u-shared'))?.entra).toBeUndefined();
    expect((await record('u-admin'))?.entra).toBeUndefined();
    expect(await job()).toMatchObject({
      state: 'completed',
      progress: { pending: 0, linked: 7, created: 3 },
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
    // Memberships: one joins Sales, one leaves it, and a new group appears.
    await cloud.addGroupMember(groupId, ids.soft);
    await cloud.removeGroupMember(groupId, ids.new1);
    const opsId = (await cloud.createGroup({ displayName: 'Ops', mailNickname: 'ops' })).id;

    const pass = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(pass.status).toBe(200);
    expect(pass.body).toMatchObject({
      held: false,
      full: false,
      created: 1,
      removed: 1,
      reverted: 1,
      groupChanges: 2,
    });
    // groups/delta from the link the import stored: the group rows follow the tenant.
    const groups = (await call(`/customers/${customerId}/onboarding/groups`)).body as {
      value: { id: string; displayName: string; memberIds: string[] }[];
    };
    expect(groups.value.map((g) => [g.displayName, [...g.memberIds].sort()]).sort()).toEqual([
      ['Ops', []],
      ['Sales', [ids.hard1, ids.soft].sort()],
    ]);
    expect(groups.value.find((g) => g.displayName === 'Ops')?.id).toBe(opsId);
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

  it('pulls AD changes through the agent: AD wins for a hybrid user, in Atria and in the cloud', async () => {
    await asAdmin((admin) =>
      admin.modify(
        adDn('ad-soft'),
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'displayName', values: ['AD Soft Renamed'] }),
        }),
      ),
    );
    const pass = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(pass.body).toMatchObject({ held: false, full: false, adChanges: 1, failed: 0 });
    expect((await record(adKey('ad-soft')))?.displayName).toBe('AD Soft Renamed');
    expect((await cloud.getUser(ids.adSoft)).displayName).toBe('AD Soft Renamed');
    // The USN watermark moved: the same change is not applied twice.
    const again = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(again.body).toMatchObject({ adChanges: 0 });
    // Disabled in AD: disabled in Atria and in Entra (accountEnabled follows AD for a hybrid user).
    await asAdmin((admin) =>
      admin.modify(
        adDn('ad-soft'),
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'userAccountControl', values: ['514'] }),
        }),
      ),
    );
    const disabled = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(disabled.body).toMatchObject({ adChanges: 1, failed: 0 });
    expect((await record(adKey('ad-soft')))?.state).toBe('disabled');
    expect((await cloud.getUser(ids.adSoft)).accountEnabled).toBe(false);
  });

  it('sees AD deletions only once the agent account may read CN=Deleted Objects; the full reconciliation repairs the one missed', async () => {
    const removeInAd = (sam: string) => asAdmin((admin) => admin.del(adDn(sam)));
    // The delegated account (rights on OU=Atria only) gets no tombstones: the deletion goes unseen.
    await removeInAd('u-lone');
    const blind = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(blind.body).toMatchObject({ held: false, adChanges: 0, removed: 0 });
    expect((await record('u-lone'))?.state).toBe('active');

    // Granted List Contents + Read Property on the container, the feed reports the next deletion.
    grantDeletedObjectsRead();
    await removeInAd('u-admin');
    const seen = await call(`/customers/${customerId}/onboarding/sync`, { method: 'POST' });
    expect(seen.body).toMatchObject({ held: false, adChanges: 1, removed: 1 });
    expect((await record('u-admin'))?.state).toBe('deleted');
    // u-lone's tombstone lies below the watermark: delta never sees it.
    expect((await record('u-lone'))?.state).toBe('active');

    // The weekly full pass reads all of AD: u-lone is gone, and so is u-dup2 (its AD object never was).
    const totals = await stack.deps.onboarding.reconcileAll();
    expect(totals).toMatchObject({ passes: 1, held: 0, failed: 0 });
    expect((await record('u-lone'))?.state).toBe('deleted');
    expect((await record('u-dup2'))?.state).toBe('deleted');
    expect((await call(`/customers/${customerId}/onboarding/sync`)).body).toMatchObject({
      lastPass: { full: true, removed: 2 },
    });
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
