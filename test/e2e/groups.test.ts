import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attribute, Change, Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunningAgent } from '../../agent/runtime.js';
import { startLocalAgent } from '../../dev/local-agent.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import type { CloudDirectory } from '../../shared/ports/cloud-directory.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * Group memberships as operations: AD groups through the agent (the step parks like any AD step) into
 * the Samba DC's OU=Groups, Entra groups through the Graph peer; idempotent both ways; another
 * provider's key gets 404 and nothing changes. Each finished membership operation is SPLA evidence.
 */
const tenantId = randomUUID();
// A site of this file's own: sites are global names and other files register `demo` in the same storage.
const siteId = 'groups';

/** The dev Service Bus config plus this file's site queue, shaped like `agent-site-demo`. */
function serviceBusConfigWithSite(): string {
  const config = JSON.parse(readFileSync('dev/peers/servicebus/config.json', 'utf8')) as {
    UserConfig: { Namespaces: { Queues: { Name: string }[] }[] };
  };
  const namespace = config.UserConfig.Namespaces[0];
  const demo = namespace?.Queues.find((q) => q.Name === 'agent-site-demo');
  if (namespace === undefined || demo === undefined) throw new Error('dev Service Bus config changed shape');
  namespace.Queues.push({ ...structuredClone(demo), Name: `agent-site-${siteId}` });
  const file = join(mkdtempSync(join(tmpdir(), 'groups-e2e-')), 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}
const seed = graphSeed({
  id: tenantId,
  displayName: 'Contoso',
  domains: [
    { id: 'contoso.example', isDefault: true, authenticationType: 'Managed' },
    { id: 'fed.contoso.example', authenticationType: 'Federated' },
  ],
  skus: [],
});

let dc: SambaPeer;
let stack: TestStack;
let agent: RunningAgent;
let key: string;
let otherKey: string;
let cloud: CloudDirectory;
let staff: { objectGuid: string; dn: string };
let entraGroupId: string;
let ada: { objectGuid: string; dn: string; entraId: string };

type Op = {
  operationId: string;
  state: string;
  kind: string;
  steps: { name: string; state: string; error?: { code: string } }[];
};

async function finished(operationId: string): Promise<Op> {
  return waitFor(
    async () => {
      const op = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as Op;
      return ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled'].includes(op.state)
        ? op
        : undefined;
    },
    `operation ${operationId}`,
    45_000,
  );
}

async function ldap<T>(action: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: readFileSync(dc.caFile) } });
  try {
    await client.bind(dc.bindDn, dc.password);
    return await action(client);
  } finally {
    await client.unbind();
  }
}

async function staffMembers(): Promise<string[]> {
  return ldap(async (client) => {
    const { searchEntries } = await client.search(staff.dn, { scope: 'base', attributes: ['member'] });
    const member = searchEntries[0]?.member;
    if (member === undefined) return [];
    return (Array.isArray(member) ? member : [member]).map(String);
  });
}

const pathId = (objectGuid: string) => `ad.${Buffer.from(objectGuid, 'base64').toString('base64url')}`;

async function membership(method: 'PUT' | 'DELETE', groupPathId: string, withKey = key): Promise<Response> {
  return stack.api(`/customers/contoso/users/h-ada/groups/${groupPathId}`, { method, key: withKey });
}

beforeAll(async () => {
  dc = await startSambaPeer();
  const signing = generateSigningKeyPair();
  const site = generateSiteKeyPair();
  const agentKeys = generateSigningKeyPair();
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    serviceBusConfig: serviceBusConfigWithSite(),
    extraSettings: {
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: 'e2e-key',
      Relay__replyTimeoutInMs: '20000',
    },
  });
  agent = await startLocalAgent({
    siteId,
    serviceBusConnectionString: stack.serviceBus.connectionString,
    dc,
    signing: { kid: 'e2e-key', publicKeyPem: signing.publicKeyPem },
    sitePrivateKeyPem: site.privateKeyPem,
    agentSigningKeyPem: agentKeys.privateKeyPem,
    heartbeatIntervalInMs: 1000,
  });
  key = (await stack.deps.callers.createApiKey({ providerId: 'prov-groups', name: 'e2e' })).apiKey;
  otherKey = (await stack.deps.callers.createApiKey({ providerId: 'prov-groups-other', name: 'e2e' })).apiKey;
  expect(
    (
      await stack.api(`/sites/${siteId}`, {
        method: 'PUT',
        key,
        body: JSON.stringify({ publicKeyPem: site.publicKeyPem, agentPublicKeyPem: agentKeys.publicKeyPem }),
      })
    ).status,
  ).toBeOneOf([200, 201]);
  const put = await stack.api('/customers/contoso', {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Contoso',
      identityMode: 'hybridFederated',
      entra: {
        tenantId,
        domains: ['contoso.example', 'fed.contoso.example'],
        federatedDomain: 'fed.contoso.example',
      },
      ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['fed.contoso.example'] },
    }),
  });
  expect(put.status).toBe(201);
  cloud = stack.cloudDirectory(tenantId);
  entraGroupId = (await cloud.createGroup({ displayName: 'RDS users', mailNickname: 'rds-users' })).id;
  staff = await ldap(async (client) => {
    const { searchEntries } = await client.search(dc.baseDn, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'sAMAccountName', value: 'Staff' }),
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    const entry = searchEntries[0];
    if (entry === undefined) throw new Error('Staff group missing in the DC');
    return { objectGuid: (entry.objectGUID as Buffer).toString('base64'), dn: entry.dn };
  });
  const created = await stack.api('/customers/contoso/users', {
    method: 'POST',
    key,
    body: JSON.stringify({
      userId: 'h-ada',
      userPrincipalName: 'ada@fed.contoso.example',
      displayName: 'Ada Groups',
      password: 'Str0ng!Passw0rd#1',
    }),
  });
  expect(created.status).toBe(202);
  expect((await finished(((await created.json()) as Op).operationId)).state).toBe('succeeded');
  const user = (await (await stack.api('/customers/contoso/users/h-ada', { key })).json()) as {
    ad: { objectGuid: string; dn: string };
    entra: { objectId: string };
  };
  ada = { objectGuid: user.ad.objectGuid, dn: user.ad.dn, entraId: user.entra.objectId };
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await stack?.stop();
  await dc?.stop();
});

describe('group memberships as operations', () => {
  it('adds the user to an AD group through the agent, and a repeated PUT leaves one membership', async () => {
    const response = await membership('PUT', pathId(staff.objectGuid));
    expect(response.status).toBe(202);
    const op = await finished(((await response.json()) as Op).operationId);
    expect(op.state).toBe('succeeded');
    expect(op.steps.map((s) => [s.name, s.state])).toEqual([['ad.groupAdd', 'done']]);
    expect(await staffMembers()).toContain(ada.dn);

    const again = await finished(
      ((await (await membership('PUT', pathId(staff.objectGuid))).json()) as Op).operationId,
    );
    expect(again.state).toBe('succeeded');
    expect((await staffMembers()).filter((m) => m === ada.dn)).toHaveLength(1);

    const listed = (await (await stack.api('/customers/contoso/users/h-ada/groups', { key })).json()) as {
      value: { id: string; directory: string; groupId: string }[];
    };
    expect(listed.value).toEqual([
      expect.objectContaining({ id: pathId(staff.objectGuid), directory: 'ad', groupId: staff.objectGuid }),
    ]);
  });

  it("refuses another provider's key with 404 and changes nothing", async () => {
    const before = await staffMembers();
    for (const method of ['PUT', 'DELETE'] as const) {
      const response = await membership(method, pathId(staff.objectGuid), otherKey);
      expect(response.status).toBe(404);
    }
    expect((await stack.api('/customers/contoso/users/h-ada/groups', { key: otherKey })).status).toBe(404);
    expect(await staffMembers()).toEqual(before);
    const ops = (await (await stack.api('/customers/contoso/operations', { key })).json()) as { value: Op[] };
    expect(ops.value.filter((o) => o.kind === 'user.groupRemove')).toEqual([]);
  });

  it('removes the AD membership, and removing it again still succeeds', async () => {
    const op = await finished(
      ((await (await membership('DELETE', pathId(staff.objectGuid))).json()) as Op).operationId,
    );
    expect(op.state).toBe('succeeded');
    expect(op.steps.map((s) => [s.name, s.state])).toEqual([['ad.groupRemove', 'done']]);
    expect(await staffMembers()).not.toContain(ada.dn);
    const again = await finished(
      ((await (await membership('DELETE', pathId(staff.objectGuid))).json()) as Op).operationId,
    );
    expect(again.state).toBe('succeeded');
    const listed = (await (await stack.api('/customers/contoso/users/h-ada/groups', { key })).json()) as {
      value: unknown[];
    };
    expect(listed.value).toEqual([]);
  });

  it('adds and removes an Entra group membership through Graph, idempotently', async () => {
    const id = `entra.${entraGroupId}`;
    for (let i = 0; i < 2; i++) {
      const op = await finished(((await (await membership('PUT', id)).json()) as Op).operationId);
      expect(op.steps.map((s) => [s.name, s.state])).toEqual([['entra.groupAdd', 'done']]);
    }
    expect(await cloud.listGroupMembers(entraGroupId)).toEqual([ada.entraId]);
    for (let i = 0; i < 2; i++) {
      const op = await finished(((await (await membership('DELETE', id)).json()) as Op).operationId);
      expect(op.steps.map((s) => [s.name, s.state])).toEqual([['entra.groupRemove', 'done']]);
    }
    expect(await cloud.listGroupMembers(entraGroupId)).toEqual([]);
  });

  it('refuses a group id in neither form with 400 naming the parameter', async () => {
    const response = await membership('PUT', 'staff');
    expect(response.status).toBe(400);
    expect(JSON.stringify(await response.json())).toContain('groupId');
  });

  it('leaves each finished membership change as SPLA evidence of the month', async () => {
    const month = new Date().toISOString().slice(0, 7);
    const evidence = (await (
      await stack.api(`/customers/contoso/spla/evidence?month=${month}`, { key })
    ).json()) as { value: { type: string; groupKey?: string; member?: { userId: string } }[] };
    const memberships = evidence.value.filter((e) => e.type.startsWith('member.'));
    expect(memberships.map((e) => [e.type, e.groupKey])).toEqual([
      ['member.added', `ad.${staff.objectGuid}`],
      ['member.added', `ad.${staff.objectGuid}`],
      ['member.removed', `ad.${staff.objectGuid}`],
      ['member.removed', `ad.${staff.objectGuid}`],
      ['member.added', `entra.${entraGroupId}`],
      ['member.added', `entra.${entraGroupId}`],
      ['member.removed', `entra.${entraGroupId}`],
      ['member.removed', `entra.${entraGroupId}`],
    ]);
    expect(evidence.value.find((e) => e.type === 'user.enabled')).toBeDefined();
  });
  it('joins the groups a create request names once the user exists, each as its own operation', async () => {
    const bad = await stack.api('/customers/contoso/users', {
      method: 'POST',
      key,
      body: JSON.stringify({
        userId: 'h-bad',
        userPrincipalName: 'bad@fed.contoso.example',
        displayName: 'Bad Groups',
        password: 'Str0ng!Passw0rd#1',
        groups: ['Staff'],
      }),
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain('body.groups');

    const created = await stack.api('/customers/contoso/users', {
      method: 'POST',
      key,
      body: JSON.stringify({
        userId: 'h-bea',
        userPrincipalName: 'bea@fed.contoso.example',
        displayName: 'Bea Groups',
        password: 'Str0ng!Passw0rd#1',
        groups: [pathId(staff.objectGuid), `entra.${entraGroupId}`],
      }),
    });
    expect(created.status).toBe(202);
    expect((await finished(((await created.json()) as Op).operationId)).state).toBe('succeeded');
    const listed = await waitFor(
      async () => {
        const body = (await (await stack.api('/customers/contoso/users/h-bea/groups', { key })).json()) as {
          value: { id: string }[];
        };
        return body.value.length === 2 ? body.value : undefined;
      },
      'both memberships',
      45_000,
    );
    expect(listed.map((g) => g.id).sort()).toEqual(
      [pathId(staff.objectGuid), `entra.${entraGroupId}`].sort(),
    );
    const bea = (await (await stack.api('/customers/contoso/users/h-bea', { key })).json()) as {
      ad: { dn: string };
      entra: { objectId: string };
    };
    expect(await staffMembers()).toContain(bea.ad.dn);
    expect(await cloud.listGroupMembers(entraGroupId)).toContain(bea.entra.objectId);
    const ops = (await (await stack.api('/customers/contoso/operations', { key })).json()) as {
      value: (Op & { userId: string })[];
    };
    expect(
      ops.value.filter((o) => o.userId === 'h-bea' && o.kind === 'user.groupAdd').map((o) => o.state),
    ).toEqual(['succeeded', 'succeeded']);
  });
  it("reads the agent's change feed into SPLA evidence: a disable made in AD is seen, and the watermark moves on", async () => {
    expect(
      (
        await stack.api('/spla/products/rds-sal', {
          method: 'PUT',
          key,
          body: JSON.stringify({ name: 'Windows Server RDS SAL', sku: '6VC-01254', unit: 'user' }),
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await stack.api('/customers/contoso/spla/rules/rds-sal', {
          method: 'PUT',
          key,
          body: JSON.stringify({ authorisedBy: { kind: 'groups', groups: [`ad.${staff.objectGuid}`] } }),
        })
      ).status,
    ).toBe(200);
    const first = await stack.deps.spla.readChangeFeed();
    expect(first.failed).toEqual([]);
    expect(first.events).toBeGreaterThan(0);
    // Nothing changed since: the stored watermark gives an empty feed.
    expect((await stack.deps.spla.readChangeFeed()).events).toBe(0);

    // Disabled in AD directly (not through atria-m365), as an admin would in ADUC.
    await ldap(async (client) => {
      const { searchEntries } = await client.search(ada.dn, {
        scope: 'base',
        attributes: ['userAccountControl'],
      });
      const uac = Number(searchEntries[0]?.userAccountControl ?? 512);
      await client.modify(
        ada.dn,
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'userAccountControl', values: [String(uac | 2)] }),
        }),
      );
    });
    const after = await stack.deps.spla.readChangeFeed();
    expect(after.failed).toEqual([]);
    const month = new Date().toISOString().slice(0, 7);
    const evidence = (await (
      await stack.api(`/customers/contoso/spla/evidence?month=${month}`, { key })
    ).json()) as { value: { type: string; source: string; userId?: string }[] };
    const fromFeed = evidence.value.filter((e) => e.source === 'changeFeed' && e.userId === 'h-ada');
    expect(fromFeed.map((e) => e.type).at(-1)).toBe('user.disabled');
  });

  it('counts a member added on the DC directly, inside a nested group, from the daily AD snapshot through the agent; a user outside the allowed OUs is never reported', async () => {
    const deletedGroup = randomUUID().replace(/-/g, '');
    const gone = Buffer.from(deletedGroup, 'hex').toString('base64');
    expect(
      (
        await stack.api('/spla/products/rds-sal', {
          method: 'PUT',
          key,
          body: JSON.stringify({ name: 'Windows Server RDS SAL', sku: '6VC-01254', unit: 'user' }),
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await stack.api('/customers/contoso/spla/rules/rds-sal', {
          method: 'PUT',
          key,
          body: JSON.stringify({
            authorisedBy: { kind: 'groups', groups: [`ad.${staff.objectGuid}`, `ad.${gone}`] },
          }),
        })
      ).status,
    ).toBe(200);
    // Made by an admin in ADUC: never an operation of ours, and the change feed reports users, not links.
    const made = await ldap(async (client) => {
      const dora = `CN=Dora Direct,${dc.usersOu}`;
      const otto = `CN=Otto Outside,OU=Outside,${dc.baseDn}`;
      const inner = `CN=RDS Nested,${dc.groupsOu}`;
      await client.add(dora, {
        objectClass: 'user',
        sAMAccountName: 'dora.direct',
        userAccountControl: '512',
      });
      await client.add(otto, {
        objectClass: 'user',
        sAMAccountName: 'otto.outside',
        userAccountControl: '512',
      });
      await client.add(inner, { objectClass: 'group', sAMAccountName: 'RDS Nested', member: [dora, otto] });
      await client.modify(
        staff.dn,
        new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [inner] }) }),
      );
      const guid = async (dn: string): Promise<string> => {
        const { searchEntries } = await client.search(dn, {
          scope: 'base',
          attributes: ['objectGUID'],
          explicitBufferAttributes: ['objectGUID'],
        });
        return (searchEntries[0]?.objectGUID as Buffer).toString('base64');
      };
      return { dora: await guid(dora), otto: await guid(otto), inner: await guid(inner) };
    });

    const snapshot = await stack.deps.spla.snapshotAdGroups();
    expect(snapshot.failed).toEqual([]);
    // The rule's groups, the nested one, and a group deleted in AD (it authorises nobody any more).
    expect(snapshot.groups).toBe(3);

    const month = new Date().toISOString().slice(0, 7);
    const evidence = (await (
      await stack.api(`/customers/contoso/spla/evidence?month=${month}`, { key })
    ).json()) as {
      value: { type: string; source: string; groupKey?: string; members?: unknown[]; userId?: string }[];
    };
    const snapshots = evidence.value.filter((e) => e.source === 'snapshot' && e.type === 'group.members');
    const staffSnapshot = snapshots.find((e) => e.groupKey === `ad.${staff.objectGuid}`);
    const nestedSnapshot = snapshots.find((e) => e.groupKey === `ad.${made.inner}`);
    expect(staffSnapshot?.members).toContainEqual({ groupKey: `ad.${made.inner}` });
    expect(nestedSnapshot?.members).toEqual([{ userId: `ad:${made.dora}` }]);
    expect(snapshots.find((e) => e.groupKey === `ad.${gone}`)?.members).toEqual([]);
    expect(JSON.stringify(evidence.value)).not.toContain(made.otto);

    const report = (await (
      await stack.api(`/reports/spla?month=${month}&customerId=contoso&view=detail`, { key })
    ).json()) as { details: { userId: string; counted: boolean; rule: string }[] };
    expect(report.details).toContainEqual(
      expect.objectContaining({
        userId: `ad:${made.dora}`,
        counted: true,
        rule: `group ad.${staff.objectGuid}`,
      }),
    );
    expect(JSON.stringify(report)).not.toContain(made.otto);
  });
});
