/**
 * groups/delta as documented (api-reference/v1.0/api/group-delta.md, concepts/delta-query-groups.md):
 * the first round lists every group with its members in members@delta; later rounds report only what
 * changed — added members, removed ones with @removed, deleted groups with @removed —; $select limits
 * what is tracked (members only when selected, or with no $select at all). Then the adapter's
 * listGroupChanges over the same peer.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@microsoft/microsoft-graph-client';
import { adapterFor, expectGraphError, sdkClient, send, type Json } from './raw.js';
import { admin, startFixture, type Fixture } from './support.js';

let f: Fixture;
let client: Client;

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
  client = sdkClient(f.peer, f.customerTenantId, f);
});

async function round(url: string, headers: Record<string, string> = {}) {
  const items: Json[] = [];
  for (let next: string | undefined = url; ;) {
    const raw = await send(client, 'GET', next, undefined, headers);
    expect(raw.status).toBe(200);
    items.push(...(raw.body['value'] as Json[]));
    const deltaLink = raw.body['@odata.deltaLink'];
    if (typeof deltaLink === 'string') return { items, deltaLink };
    next = raw.body['@odata.nextLink'] as string;
  }
}

async function user(alias: string): Promise<string> {
  const raw = await send(client, 'POST', '/users', {
    accountEnabled: true,
    displayName: alias,
    mailNickname: alias,
    userPrincipalName: `${alias}@contoso.example`,
    passwordProfile: { password: 'Str0ng!Passw0rd' },
  });
  return raw.body['id'] as string;
}
async function group(name: string, members: string[]): Promise<string> {
  const raw = await send(client, 'POST', '/groups', {
    displayName: name,
    mailNickname: name.toLowerCase(),
    mailEnabled: false,
    securityEnabled: true,
    'members@odata.bind': members.map((id) => `https://graph.microsoft.com/v1.0/directoryObjects/${id}`),
  });
  expect(raw.status).toBe(201);
  return raw.body['id'] as string;
}
const member = (id: string) => ({ '@odata.type': '#microsoft.graph.user', id });
const ref = (id: string) => ({ '@odata.id': `https://graph.microsoft.com/v1.0/directoryObjects/${id}` });

describe('groups/delta', () => {
  it('lists every group with its members first, then only the membership changes and deletions', async () => {
    const [anna, bert, cleo] = [await user('anna'), await user('bert'), await user('cleo')];
    const sales = await group('Sales', [anna, bert]);
    const ops = await group('Ops', []);
    const first = await round('/groups/delta?$select=displayName,members');
    expect(first.items.find((g) => g['id'] === sales)).toEqual({
      id: sales,
      displayName: 'Sales',
      'members@delta': expect.arrayContaining([member(anna), member(bert)]) as unknown,
    });
    expect(first.items.find((g) => g['id'] === ops)).toEqual({
      id: ops,
      displayName: 'Ops',
      'members@delta': [],
    });

    expect((await send(client, 'POST', `/groups/${sales}/members/$ref`, ref(cleo))).status).toBe(204);
    expect((await send(client, 'DELETE', `/groups/${sales}/members/${anna}/$ref`)).status).toBe(204);
    expect((await send(client, 'DELETE', `/groups/${ops}`)).status).toBe(204);
    const later = await round(first.deltaLink);
    expect(later.items).toEqual([
      {
        id: sales,
        displayName: 'Sales',
        'members@delta': [member(cleo), { ...member(anna), '@removed': { reason: 'deleted' } }],
      },
      { id: ops, '@removed': { reason: 'deleted' } },
    ]);
    // Nothing since: an empty page with a new link.
    expect((await round(later.deltaLink)).items).toEqual([]);
  });

  it('does not report a membership change to a round that does not track members ($select)', async () => {
    const anna = await user('anna');
    const sales = await group('Sales', []);
    const namesOnly = await round('/groups/delta?$select=displayName');
    const everything = await round('/groups/delta');
    expect(namesOnly.items.find((g) => g['id'] === sales)).toEqual({ id: sales, displayName: 'Sales' });
    // No $select: the default properties and members are tracked (group-delta.md, example 1).
    expect(everything.items.find((g) => g['id'] === sales)).toMatchObject({
      displayName: 'Sales',
      'members@delta': [],
    });
    await send(client, 'POST', `/groups/${sales}/members/$ref`, ref(anna));
    expect((await round(namesOnly.deltaLink)).items).toEqual([]);
    expect((await round(everything.deltaLink)).items).toMatchObject([
      { id: sales, 'members@delta': [member(anna)] },
    ]);
  });

  it('refuses a users/delta token (syncStateInvalid) and pages with Prefer odata.maxpagesize', async () => {
    const users = await round('/users/delta?$select=displayName');
    const token = new URL(users.deltaLink).searchParams.get('$deltatoken') ?? '';
    expectGraphError(
      await send(client, 'GET', `/groups/delta?$deltatoken=${token}`),
      400,
      'syncStateInvalid',
    );
    for (const name of ['A', 'B', 'C']) await group(name, []);
    const page = await send(client, 'GET', '/groups/delta?$select=displayName', undefined, {
      Prefer: 'odata.maxpagesize=2',
    });
    expect(page.body['value']).toHaveLength(2);
    expect(page.body['@odata.nextLink']).toMatch(/\/groups\/delta\?\$skiptoken=/);
    expect(page.body['@odata.deltaLink']).toBeUndefined();
  });
});

describe('the Graph adapter over groups/delta', () => {
  it('turns members@delta into added and removed member ids, and a deleted group into a removal', async () => {
    const directory = adapterFor(f.peer, f.customerTenantId, f);
    const [anna, bert] = [await user('anna'), await user('bert')];
    const sales = await group('Sales', [anna]);
    let cursor: string | undefined;
    let first;
    do {
      first = await directory.listGroupChanges(cursor);
      cursor = first.nextCursor;
    } while (first.deltaLink === undefined);
    expect(first.changes).toContainEqual({
      kind: 'upserted',
      group: {
        id: sales,
        displayName: 'Sales',
        mailNickname: 'sales',
        securityEnabled: true,
        mailEnabled: false,
        groupTypes: [],
      },
      membersAdded: [anna],
      membersRemoved: [],
    });
    await send(client, 'POST', `/groups/${sales}/members/$ref`, ref(bert));
    await send(client, 'DELETE', `/groups/${sales}/members/${anna}/$ref`);
    const next = await directory.listGroupChanges(first.deltaLink);
    expect(next.changes).toEqual([
      expect.objectContaining({ kind: 'upserted', membersAdded: [bert], membersRemoved: [anna] }),
    ]);
    await send(client, 'DELETE', `/groups/${sales}`);
    expect((await directory.listGroupChanges(next.deltaLink)).changes).toEqual([
      { kind: 'removed', id: sales },
    ]);
  });
});
