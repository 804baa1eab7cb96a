/**
 * Directory extensions (application-post-extensionproperty.md, resources/extensionproperty.md): defined on
 * the partner app in its home tenant, written to and filtered on users of a tenant that consented to the
 * app — on the wire through the Graph SDK and through the CloudDirectory adapter.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@microsoft/microsoft-graph-client';
import { adapterFor, expectGraphError, expectShape, sdkClient, send, type Json, type Raw } from './raw.js';
import { admin, startFixture, type Fixture } from './support.js';

let f: Fixture;
let home: Client;
let customer: Client;
let marker: string;

const password = 'Str0ng!Passw0rd';

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
  home = sdkClient(f.peer, f.partnerTenantId, f);
  customer = sdkClient(f.peer, f.customerTenantId, f);
  marker = `extension_${f.clientId.replace(/-/g, '')}_atriaOperation`;
});

async function defineMarker(): Promise<Json> {
  const raw = await send(home, 'POST', `/applications(appId='${f.clientId}')/extensionProperties`, {
    name: 'atriaOperation',
    dataType: 'String',
    targetObjects: ['User'],
  });
  expect(raw.status).toBe(201);
  return raw.body;
}

async function createUser(alias: string, extra: Json = {}): Promise<Raw> {
  return send(customer, 'POST', '/users', {
    accountEnabled: true,
    displayName: alias,
    mailNickname: alias,
    userPrincipalName: `${alias}@contoso.example`,
    passwordProfile: { password },
    ...extra,
  });
}

describe('directory extensions on the wire', () => {
  it('creates an extension property as in the doc example, named extension_{appId}_{name}', async () => {
    const apps = await send(home, 'GET', '/applications');
    const objectId = (apps.body['value'] as Json[]).find((a) => a['appId'] === f.clientId)?.['id'];
    expect(typeof objectId).toBe('string');
    const raw = await send(home, 'POST', `/applications/${String(objectId)}/extensionProperties`, {
      name: 'jobGroup',
      dataType: 'String',
      isMultiValued: true,
      targetObjects: ['User'],
    });
    expect(raw.status).toBe(201);
    // application-post-extensionproperty.md, the response example.
    expectShape(raw.body, {
      '@odata.context':
        'https://graph.microsoft.com/v1.0/$metadata#applications(…)/extensionProperties/$entity',
      id: 'da38c7b1-133e-4a79-abcd-e2fd586ce621',
      deletedDateTime: null,
      appDisplayName: 'b2c-extensions-app.',
      dataType: 'String',
      isMultiValued: true,
      isSyncedFromOnPremises: false,
      name: 'extension_25883231668a43a780b25685c3f874bc_jobGroup',
      targetObjects: ['User'],
    });
    expect(raw.body['name']).toBe(`extension_${f.clientId.replace(/-/g, '')}_jobGroup`);
    const listed = await send(home, 'GET', `/applications/${String(objectId)}/extensionProperties`);
    expect((listed.body['value'] as Json[]).map((e) => e['name'])).toEqual([raw.body['name']]);
    // The same name twice, a bad dataType, no targetObjects.
    const again = await send(home, 'POST', `/applications/${String(objectId)}/extensionProperties`, {
      name: 'jobGroup',
      dataType: 'String',
      targetObjects: ['User'],
    });
    expectGraphError(again, 400, 'Request_BadRequest', /already exists/);
    for (const body of [
      { name: 'x', dataType: 'Text', targetObjects: ['User'] },
      { name: 'x', dataType: 'String', targetObjects: [] },
      { name: 'bad-name', dataType: 'String', targetObjects: ['User'] },
    ])
      expect(
        (await send(home, 'POST', `/applications/${String(objectId)}/extensionProperties`, body)).status,
      ).toBe(400);
  });

  it('stores the value on users of a consenting tenant, returns it only when selected, and filters on it', async () => {
    await defineMarker();
    const created = await createUser('grace', { [marker]: 'op-1' });
    expect(created.status).toBe(201);
    const id = created.body['id'] as string;
    expect(created.body).not.toHaveProperty(marker);
    expect((await send(customer, 'GET', `/users/${id}`)).body).not.toHaveProperty(marker);
    const selected = await send(customer, 'GET', `/users/${id}?$select=id,${marker}`);
    expect(selected.body[marker]).toBe('op-1');
    expect((await send(customer, 'PATCH', `/users/${id}`, { [marker]: 'op-2' })).status).toBe(204);
    // eq on a directory extension needs no advanced-query parameters.
    const found = await send(customer, 'GET', `/users?$filter=${marker} eq 'op-2'&$select=id,${marker}`);
    expect(found.status).toBe(200);
    expect(found.body['value']).toEqual([{ id, [marker]: 'op-2' }]);
    expect(
      ((await send(customer, 'GET', `/users?$filter=${marker} eq 'op-1'`)).body['value'] as Json[]).length,
    ).toBe(0);
    // The tenant sees the extension as available.
    const available = await send(customer, 'POST', '/directoryObjects/getAvailableExtensionProperties', {});
    expect((available.body['value'] as Json[]).map((e) => e['name'])).toContain(marker);
  });

  it('refuses wrong types, over-long strings, unknown extensions and extensions of apps not consented', async () => {
    await defineMarker();
    expectGraphError(
      await createUser('a1', { [marker]: 42 }),
      400,
      'Request_BadRequest',
      /Invalid value specified/,
    );
    expectGraphError(await createUser('a2', { [marker]: 'x'.repeat(257) }), 400, 'Request_BadRequest');
    expect((await createUser('a3', { [marker]: 'x'.repeat(256) })).status).toBe(201);
    expectGraphError(
      await createUser('a4', { [`extension_${f.clientId.replace(/-/g, '')}_nope`]: 'v' }),
      400,
      'Request_BadRequest',
      /does not exist as a declared property or extension property/,
    );
    // Another app of the partner tenant, never consented in the customer tenant: its extension is unknown there.
    const other = { clientId: randomUUID(), clientSecret: 'other-app-secret' };
    await admin(f, 'POST', '/apps', {
      ...other,
      homeTenantId: f.partnerTenantId,
      roles: ['Application.ReadWrite.OwnedBy'],
    });
    const otherHome = sdkClient(f.peer, f.partnerTenantId, other);
    expect(
      (
        await send(otherHome, 'POST', `/applications(appId='${other.clientId}')/extensionProperties`, {
          name: 'tag',
          dataType: 'String',
          targetObjects: ['User'],
        })
      ).status,
    ).toBe(201);
    expectGraphError(
      await createUser('a5', { [`extension_${other.clientId.replace(/-/g, '')}_tag`]: 'v' }),
      400,
      'Request_BadRequest',
    );
    // Application.ReadWrite.OwnedBy reaches only the caller's own app.
    expectGraphError(
      await send(otherHome, 'POST', `/applications(appId='${f.clientId}')/extensionProperties`, {
        name: 'tag',
        dataType: 'String',
        targetObjects: ['User'],
      }),
      403,
      'Authorization_RequestDenied',
    );
  });

  it('stops taking values once the definition is deleted', async () => {
    const ext = await defineMarker();
    expect((await createUser('b1', { [marker]: 'op' })).status).toBe(201);
    const deleted = await send(
      home,
      'DELETE',
      `/applications(appId='${f.clientId}')/extensionProperties/${String(ext['id'])}`,
    );
    expect(deleted.status).toBe(204);
    expect((await createUser('b2', { [marker]: 'op' })).status).toBe(400);
  });
});

describe('CloudDirectory directory extensions', () => {
  it('registers a marker once, writes it on create and update, reads it back and finds users by it', async () => {
    const partnerDirectory = adapterFor(f.peer, f.partnerTenantId, f);
    const first = await partnerDirectory.registerExtensionProperty(f.clientId, 'atriaOperation');
    const second = await partnerDirectory.registerExtensionProperty(f.clientId, 'atriaOperation');
    expect(second).toEqual(first);
    expect(first).toMatchObject({ name: marker, dataType: 'String', isMultiValued: false });
    expect(await partnerDirectory.listExtensionProperties(f.clientId)).toEqual([first]);

    const directory = adapterFor(f.peer, f.customerTenantId, f);
    const user = await directory.createUser({
      userPrincipalName: 'lin@contoso.example',
      displayName: 'Lin',
      mailNickname: 'lin',
      password,
      extensionAttributes: { [marker]: 'op-41' },
    });
    expect(await directory.getUserExtensionAttributes(user.id, [marker])).toEqual({ [marker]: 'op-41' });
    expect((await directory.findUsersByExtensionAttribute(marker, 'op-41')).map((u) => u.id)).toEqual([
      user.id,
    ]);
    await directory.updateUser(user.id, { extensionAttributes: { [marker]: null } });
    expect(await directory.getUserExtensionAttributes('lin@contoso.example', [marker])).toEqual({
      [marker]: null,
    });
    expect(await directory.findUsersByExtensionAttribute(marker, 'op-41')).toEqual([]);
  });
});
