/**
 * users/delta as documented (api-reference/v1.0/api/user-delta.md, concepts/delta-query-overview.md,
 * concepts/errors.md): $select limits the tracked properties, and a token the service does not know —
 * expired, or from before a reset — is answered 410 syncStateNotFound with a Location to start over.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@microsoft/microsoft-graph-client';
import { isAppError } from '../../../shared/errors.js';
import { adapterFor, expectGraphError, rejection, sdkClient, send, type Json } from './raw.js';
import { admin, skuE3, startFixture, type Fixture } from './support.js';

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

/** Follows a round to its end; returns every item and the deltaLink. */
async function round(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ items: Json[]; deltaLink: string }> {
  const items: Json[] = [];
  let next: string | undefined = url;
  for (;;) {
    const raw = await send(client, 'GET', next, undefined, headers);
    expect(raw.status).toBe(200);
    items.push(...(raw.body['value'] as Json[]));
    const deltaLink = raw.body['@odata.deltaLink'];
    if (typeof deltaLink === 'string') return { items, deltaLink };
    next = raw.body['@odata.nextLink'] as string;
  }
}

async function ada(): Promise<string> {
  return (await send(client, 'GET', '/users/ada@contoso.example')).body['id'] as string;
}

async function addUser(alias: string): Promise<string> {
  const raw = await send(client, 'POST', '/users', {
    accountEnabled: true,
    displayName: alias,
    mailNickname: alias,
    userPrincipalName: `${alias}@contoso.example`,
    passwordProfile: { password: 'Str0ng!Passw0rd' },
  });
  return raw.body['id'] as string;
}

describe('users/delta with $select', () => {
  it('reports a change only when it touches a selected property', async () => {
    const id = await ada();
    const first = await round('/users/delta?$select=displayName,jobTitle');
    expect(first.items).toEqual([{ id, displayName: 'Ada', jobTitle: null }]);

    // Not selected: usageLocation, a licence, a password.
    await send(client, 'PATCH', `/users/${id}`, { usageLocation: 'DE' });
    await send(client, 'POST', `/users/${id}/assignLicense`, {
      addLicenses: [{ skuId: skuE3 }],
      removeLicenses: [],
    });
    await send(client, 'PATCH', `/users/${id}`, { passwordProfile: { password: 'An0ther!Passw0rd' } });
    const quiet = await round(first.deltaLink);
    expect(quiet.items).toEqual([]);

    await send(client, 'PATCH', `/users/${id}`, { jobTitle: 'Analyst' });
    const noticed = await round(quiet.deltaLink);
    expect(noticed.items).toEqual([{ id, displayName: 'Ada', jobTitle: 'Analyst' }]);

    // Deletion is reported whatever was selected.
    await send(client, 'DELETE', `/users/${id}`);
    const removed = await round(noticed.deltaLink);
    expect(removed.items).toEqual([{ id, '@removed': { reason: 'changed' } }]);
  });

  it('reports licence changes when assignedLicenses is selected, and everything without $select', async () => {
    const id = await ada();
    const selected = await round('/users/delta?$select=assignedLicenses');
    const all = await round('/users/delta');
    await send(client, 'POST', `/users/${id}/assignLicense`, {
      addLicenses: [{ skuId: skuE3 }],
      removeLicenses: [],
    });
    const licences = await round(selected.deltaLink);
    expect(licences.items).toEqual([{ id, assignedLicenses: [{ disabledPlans: [], skuId: skuE3 }] }]);
    await send(client, 'PATCH', `/users/${id}`, { usageLocation: 'DE' });
    expect((await round(all.deltaLink)).items.map((u) => u['id'])).toEqual([id]);
  });

  it('keeps a selected change that was followed, mid-round, by an unselected one', async () => {
    const a = await addUser('anna');
    const b = await addUser('bert');
    const start = await round('/users/delta?$select=displayName');
    await send(client, 'PATCH', `/users/${a}`, { displayName: 'Anna 2' });
    await send(client, 'PATCH', `/users/${b}`, { displayName: 'Bert 2' });
    const prefer = { Prefer: 'odata.maxpagesize=1' };
    const page1 = await send(client, 'GET', start.deltaLink, undefined, prefer);
    const firstId = (page1.body['value'] as Json[])[0]?.['id'];
    const other = firstId === a ? b : a;
    // An unselected change to the user still to come on the next page.
    await send(client, 'PATCH', `/users/${other}`, { usageLocation: 'FR' });
    const rest = await round(page1.body['@odata.nextLink'] as string, prefer);
    expect(rest.items.map((u) => u['id'])).toEqual([other]);
  });
});

describe('users/delta tokens the service does not know', () => {
  it('answers a token from before a reset with 410 syncStateNotFound and a Location that restarts', async () => {
    const old = await round('/users/delta?$select=displayName');
    await admin(f, 'POST', '/reset');
    const gone = await send(client, 'GET', old.deltaLink);
    expectGraphError(gone, 410, 'syncStateNotFound');
    const location = gone.headers.get('location') ?? '';
    const restart = new URL(location);
    expect(restart.searchParams.get('$deltatoken')).toBe('');
    expect(restart.searchParams.get('$select')).toBe('displayName');
    const fresh = await round(location);
    expect(fresh.items.map((u) => u['displayName'])).toEqual(['Ada']);
  });

  it('answers a token it never issued with 400 syncStateInvalid', async () => {
    expectGraphError(
      await send(client, 'GET', '/users/delta?$deltatoken=not-a-token'),
      400,
      'syncStateInvalid',
    );
  });

  it('the adapter maps the unknown token to SyncStateExpired', async () => {
    const directory = adapterFor(f.peer, f.customerTenantId, f);
    let page = await directory.listUserChanges();
    while (page.nextCursor !== undefined) page = await directory.listUserChanges(page.nextCursor);
    await admin(f, 'POST', '/reset');
    const error = await rejection(directory.listUserChanges(page.deltaLink));
    expect(isAppError(error) && error.code).toBe('SyncStateExpired');
  });
});
