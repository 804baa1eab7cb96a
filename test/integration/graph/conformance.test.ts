/**
 * Replays the request/response examples of the Microsoft Graph v1.0 docs
 * (microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/api/*.md and concepts/*.md) against
 * the local peer through the real Graph SDK, comparing status codes, body shapes and the headers that
 * matter. Example ids and values are illustrative in the docs, so shapes are compared, not literals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client, ResponseType } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import {
  admin,
  planExchange,
  secretCredential,
  skuBusiness,
  skuE3,
  startFixture,
  type Fixture,
} from './support.js';

type Json = Record<string, unknown>;

let f: Fixture;
let client: Client;

interface Raw {
  status: number;
  headers: Headers;
  body: Json;
  text: string;
}

/** Sends through the SDK (auth, retry, telemetry middleware) and returns the raw answer. */
async function send(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Raw> {
  let request = client.api(path).responseType(ResponseType.RAW);
  if (Object.keys(headers).length > 0) request = request.headers(headers);
  let response: Response;
  if (method === 'GET') response = (await request.get()) as Response;
  else if (method === 'POST') response = (await request.post(body)) as Response;
  else if (method === 'PATCH') response = (await request.patch(body)) as Response;
  else response = (await request.delete()) as Response;
  const text = await response.text();
  let parsed: Json = {};
  if (text.length > 0 && (response.headers.get('content-type') ?? '').includes('json'))
    parsed = JSON.parse(text) as Json;
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Every property of the documented example exists in ours with the same JSON type (null matches any). */
function expectShape(actual: unknown, documented: unknown, path = '$'): void {
  if (documented === null || actual === null) return;
  if (Array.isArray(documented)) {
    expect(Array.isArray(actual), `${path} is an array`).toBe(true);
    const first: unknown = (documented as unknown[])[0];
    if (first !== undefined && Array.isArray(actual) && (actual as unknown[])[0] !== undefined)
      expectShape((actual as unknown[])[0], first, `${path}[0]`);
    return;
  }
  if (typeof documented === 'object') {
    expect(typeof actual, `${path} is an object`).toBe('object');
    for (const [key, value] of Object.entries(documented as Json)) {
      expect(actual as Json, `${path}.${key} present`).toHaveProperty([key]);
      expectShape((actual as Json)[key], value, `${path}.${key}`);
    }
    return;
  }
  expect(typeof actual, `${path} type`).toBe(typeof documented);
}

function expectGraphError(raw: Raw, status: number, code: string, message?: string | RegExp): void {
  expect(raw.status).toBe(status);
  const error = raw.body['error'] as Json;
  expect(error['code']).toBe(code);
  if (typeof message === 'string') expect(error['message']).toBe(message);
  else if (message !== undefined) expect(error['message']).toMatch(message);
  // concepts/errors.md: innerError carries date, request-id and client-request-id.
  const inner = error['innerError'] as Json;
  expect(inner['request-id']).toBe(raw.headers.get('request-id'));
  expect(inner['client-request-id']).toBe(raw.headers.get('client-request-id'));
  expect(typeof inner['date']).toBe('string');
}

// user-post-users.md, Example 1 (response: 201, the 11 default properties).
const documentedCreatedUser = {
  '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#users/$entity',
  id: '87d349ed-44d7-43e1-9a83-5f2406dee5bd',
  businessPhones: [],
  displayName: 'Adele Vance',
  givenName: 'Adele',
  jobTitle: 'Product Marketing Manager',
  mail: 'AdeleV@contoso.onmicrosoft.com',
  mobilePhone: '+1 425 555 0109',
  officeLocation: '18/2111',
  preferredLanguage: 'en-US',
  surname: 'Vance',
  userPrincipalName: 'AdeleV@contoso.onmicrosoft.com',
};

async function createAdele(): Promise<Raw> {
  return send('POST', '/users', {
    accountEnabled: true,
    displayName: 'Adele Vance',
    mailNickname: 'AdeleV',
    userPrincipalName: 'AdeleV@contoso.onmicrosoft.com',
    passwordProfile: { forceChangePasswordNextSignIn: true, password: 'xWwvJ]6NMw+bWH-d' },
  });
}

async function createUser(alias: string, extra: Json = {}): Promise<string> {
  const raw = await send('POST', '/users', {
    accountEnabled: true,
    displayName: `User ${alias}`,
    mailNickname: alias,
    userPrincipalName: `${alias}@contoso.example`,
    passwordProfile: { password: 'Str0ng!Passw0rd' },
    ...extra,
  });
  expect(raw.status).toBe(201);
  return raw.body['id'] as string;
}

beforeAll(async () => {
  f = await startFixture();
  client = Client.initWithMiddleware({
    authProvider: new TokenCredentialAuthenticationProvider(secretCredential(f), {
      scopes: ['https://graph.microsoft.com/.default'],
    }),
    baseUrl: f.peer.authorityHost,
    defaultVersion: 'v1.0',
    customHosts: new Set(['127.0.0.1']),
  });
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
});

describe('users (user-post-users.md, user-get.md, user-update.md, user-delete.md)', () => {
  it('POST /users returns 201 with exactly the default properties of the example', async () => {
    const raw = await createAdele();
    expect(raw.status).toBe(201);
    expect(Object.keys(raw.body).sort()).toEqual(Object.keys(documentedCreatedUser).sort());
    expectShape(raw.body, documentedCreatedUser);
    expect(raw.body['@odata.context']).toBe(`${f.peer.graphBaseUrl}/$metadata#users/$entity`);
    expect(raw.body['businessPhones']).toEqual([]);
    expect(raw.body['givenName']).toBeNull();
    expect(raw.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // The SDK's telemetry handler sends client-request-id; Graph echoes it.
    expect(raw.headers.get('client-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('POST /users enforces the required properties, UPN domain, password policy and unique UPN', async () => {
    const missing = await send('POST', '/users', {
      accountEnabled: true,
      displayName: 'X',
      userPrincipalName: 'x@contoso.example',
      passwordProfile: { password: 'Str0ng!Passw0rd' },
    });
    expectGraphError(
      missing,
      400,
      'Request_BadRequest',
      "Invalid value specified for property 'mailNickname' of resource 'User'.",
    );
    const noPassword = await send('POST', '/users', {
      accountEnabled: true,
      displayName: 'X',
      mailNickname: 'x',
      userPrincipalName: 'x@contoso.example',
    });
    expectGraphError(
      noPassword,
      400,
      'Request_BadRequest',
      "Invalid value specified for property 'passwordProfile' of resource 'User'.",
    );
    const weak = await send('POST', '/users', {
      accountEnabled: true,
      displayName: 'X',
      mailNickname: 'x',
      userPrincipalName: 'x@contoso.example',
      passwordProfile: { password: 'password' },
    });
    expectGraphError(weak, 400, 'Request_BadRequest', /password complexity/);
    const domain = await send('POST', '/users', {
      accountEnabled: true,
      displayName: 'X',
      mailNickname: 'x',
      userPrincipalName: 'x@elsewhere.example',
      passwordProfile: { password: 'Str0ng!Passw0rd' },
    });
    expectGraphError(domain, 400, 'Request_BadRequest', /verified domain names/);
    const accent = await send('POST', '/users', {
      accountEnabled: true,
      displayName: 'X',
      mailNickname: 'x',
      userPrincipalName: 'zoë@contoso.example',
      passwordProfile: { password: 'Str0ng!Passw0rd' },
    });
    expectGraphError(
      accent,
      400,
      'Request_BadRequest',
      "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
    );
    const long = await send('POST', '/users', {
      accountEnabled: true,
      displayName: 'X',
      givenName: 'g'.repeat(65),
      mailNickname: 'x',
      userPrincipalName: 'x@contoso.example',
      passwordProfile: { password: 'Str0ng!Passw0rd' },
    });
    expectGraphError(long, 400, 'Request_BadRequest', /givenName/);
    expect((await createAdele()).status).toBe(201);
    expectGraphError(
      await createAdele(),
      400,
      'Request_BadRequest',
      'Another object with the same value for property userPrincipalName already exists.',
    );
  });

  it('POST /users in a federated domain requires onPremisesImmutableId (without $ or _) and no password', async () => {
    const base = {
      accountEnabled: true,
      displayName: 'Fed',
      mailNickname: 'fed',
      userPrincipalName: 'fed@fed.contoso.example',
    };
    expectGraphError(await send('POST', '/users', base), 400, 'Request_BadRequest', /onPremisesImmutableId/);
    expectGraphError(
      await send('POST', '/users', { ...base, onPremisesImmutableId: 'a_b' }),
      400,
      'Request_BadRequest',
      /onPremisesImmutableId/,
    );
    const created = await send('POST', '/users', {
      ...base,
      onPremisesImmutableId: 'AAECAwQFBgcICQoLDA0ODw==',
    });
    expect(created.status).toBe(201);
    const got = await send(
      'GET',
      `/users/${created.body['id'] as string}?$select=onPremisesImmutableId,accountEnabled`,
    );
    expect(got.body).toEqual({
      '@odata.context': `${f.peer.graphBaseUrl}/$metadata#users(onPremisesImmutableId,accountEnabled)/$entity`,
      onPremisesImmutableId: 'AAECAwQFBgcICQoLDA0ODw==',
      accountEnabled: true,
    });
  });

  it('GET /users/{id|upn} returns the default set, $select narrows it, unknown ids 404 and $-UPNs need the quoted form', async () => {
    const id = (await createAdele()).body['id'] as string;
    for (const key of [id, 'AdeleV@contoso.onmicrosoft.com']) {
      const raw = await send('GET', `/users/${encodeURIComponent(key)}`);
      expect(raw.status).toBe(200);
      expect(Object.keys(raw.body).sort()).toEqual(Object.keys(documentedCreatedUser).sort());
    }
    // user-get.md, "Use $select to retrieve specific properties of a user".
    const selected = await send('GET', `/users/${id}?$select=displayName,givenName,postalCode`);
    expect(selected.body).toEqual({
      '@odata.context': `${f.peer.graphBaseUrl}/$metadata#users(displayName,givenName,postalCode)/$entity`,
      displayName: 'Adele Vance',
      givenName: null,
      postalCode: null,
    });
    expectGraphError(
      await send('GET', '/users/4a4ec8b4-0000-4e1a-9cbb-000000000000'),
      404,
      'Request_ResourceNotFound',
    );
    expect((await send('GET', '/users/$AdeleV@contoso.onmicrosoft.com')).status).toBe(400);
    expectGraphError(
      await send('GET', `/users('${encodeURIComponent('$nobody@contoso.example')}')`),
      404,
      'Request_ResourceNotFound',
    );
  });

  it('PATCH returns 204, keeps omitted properties and refuses clearing displayName or usageLocation', async () => {
    const id = (await createAdele()).body['id'] as string;
    // user-update.md example.
    const patched = await send('PATCH', `/users/${id}`, {
      businessPhones: ['+1 425 555 0109'],
      officeLocation: '18/2111',
    });
    expect(patched.status).toBe(204);
    expect(patched.text).toBe('');
    const got = await send('GET', `/users/${id}?$select=displayName,businessPhones,officeLocation`);
    expect(got.body).toMatchObject({
      displayName: 'Adele Vance',
      businessPhones: ['+1 425 555 0109'],
      officeLocation: '18/2111',
    });
    expectGraphError(await send('PATCH', `/users/${id}`, { displayName: '' }), 400, 'Request_BadRequest');
    expectGraphError(await send('PATCH', `/users/${id}`, { usageLocation: null }), 400, 'Request_BadRequest');
    expect((await send('PATCH', `/users/${id}`, { usageLocation: 'NL' })).status).toBe(204);
  });

  it('DELETE returns 204 and the user is gone (soft deleted)', async () => {
    const id = (await createAdele()).body['id'] as string;
    const deleted = await send('DELETE', `/users/${id}`);
    expect(deleted.status).toBe(204);
    expectGraphError(await send('GET', `/users/${id}`), 404, 'Request_ResourceNotFound');
  });
});

describe('deleted items (user-delete.md, directory-deleteditems-restore.md, directory-deleteditems-delete.md)', () => {
  it('lists, restores and purges a deleted user; delta reports the purge as reason "deleted"', async () => {
    const latest = await send('GET', '/users/delta?$deltatoken=latest');
    const id = await createUser('gone');
    expect((await send('DELETE', `/users/${id}`)).status).toBe(204);
    const listed = await send('GET', '/directory/deletedItems/microsoft.graph.user');
    expect((listed.body['value'] as Json[]).map((u) => [u['id'], typeof u['deletedDateTime']])).toEqual([
      [id, 'string'],
    ]);
    // A soft-deleted user still holds its UPN.
    expect(
      (
        await send('POST', '/users', {
          accountEnabled: true,
          displayName: 'Gone 2',
          mailNickname: 'gone',
          userPrincipalName: 'gone@contoso.example',
          passwordProfile: { password: 'Str0ng!Passw0rd' },
        })
      ).status,
    ).toBe(400);
    const restored = await send('POST', `/directory/deletedItems/${id}/restore`);
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({
      '@odata.type': '#microsoft.graph.user',
      id,
      userPrincipalName: 'gone@contoso.example',
    });
    expect((await send('GET', `/users/${id}`)).status).toBe(200);
    await send('DELETE', `/users/${id}`);
    expect((await send('DELETE', `/directory/deletedItems/${id}`)).status).toBe(204);
    expectGraphError(await send('GET', `/directory/deletedItems/${id}`), 404, 'Request_ResourceNotFound');
    const changes = await send('GET', latest.body['@odata.deltaLink'] as string);
    expect(changes.body['value']).toEqual([{ id, '@removed': { reason: 'deleted' } }]);
    expect(await createUser('gone')).not.toBe(id);
  });

  it('purges soft-deleted users after 30 days on the peer clock', async () => {
    const id = await createUser('old');
    await send('DELETE', `/users/${id}`);
    await admin(f, 'POST', '/clock', { advanceByInMs: 31 * 24 * 3600_000 });
    const fresh = Client.initWithMiddleware({
      authProvider: new TokenCredentialAuthenticationProvider(secretCredential(f), {
        scopes: ['https://graph.microsoft.com/.default'],
      }),
      baseUrl: f.peer.authorityHost,
      customHosts: new Set(['127.0.0.1']),
    });
    const listed = (await fresh.api('/directory/deletedItems/microsoft.graph.user').get()) as {
      value: unknown[];
    };
    expect(listed.value).toEqual([]);
  });
});

describe('listing users (user-list.md, paging.md, aad-advanced-queries.md)', () => {
  it('pages with $top and @odata.nextLink ($skiptoken) that keeps the original query', async () => {
    for (let i = 0; i < 4; i++) await createUser(`page${i}`);
    const ids: string[] = [];
    let next: string | undefined = '/users?$select=id,displayName&$top=2';
    let pages = 0;
    while (next !== undefined) {
      const raw = await send('GET', next);
      expect(raw.status).toBe(200);
      pages += 1;
      expect(raw.body['@odata.context']).toBe(`${f.peer.graphBaseUrl}/$metadata#users(id,displayName)`);
      for (const user of raw.body['value'] as Json[]) {
        expect(Object.keys(user).sort()).toEqual(['displayName', 'id']);
        ids.push(user['id'] as string);
      }
      next = raw.body['@odata.nextLink'] as string | undefined;
      if (next !== undefined) {
        const url = new URL(next);
        expect(url.searchParams.get('$top')).toBe('2');
        expect(url.searchParams.get('$select')).toBe('id,displayName');
        expect(url.searchParams.get('$skiptoken')).toBeTruthy();
      }
    }
    expect(pages).toBe(3);
    expect(new Set(ids).size).toBe(5);
    expectGraphError(await send('GET', '/users?$top=1000'), 400, 'Request_BadRequest', /between 1 and 999/);
    expectGraphError(await send('GET', '/users?$skip=2'), 400, 'Request_BadRequest');
    const defaults = await send('GET', '/users');
    expect(Object.keys((defaults.body['value'] as Json[])[0] ?? {}).sort()).toEqual(
      Object.keys(documentedCreatedUser)
        .filter((k) => !k.startsWith('@'))
        .sort(),
    );
  });

  it('filters with eq, startsWith, in and licence lambdas without advanced parameters', async () => {
    await createUser('alpha');
    await createUser('alpine');
    await createUser('beta');
    const startsWith = await send(
      'GET',
      "/users?$filter=startsWith(displayName,'User al')&$select=userPrincipalName",
    );
    expect((startsWith.body['value'] as Json[]).map((u) => u['userPrincipalName']).sort()).toEqual([
      'alpha@contoso.example',
      'alpine@contoso.example',
    ]);
    const eq = await send(
      'GET',
      "/users?$filter=userPrincipalName eq 'BETA@contoso.example'&$select=mailNickname",
    );
    expect(eq.body['value']).toEqual([{ mailNickname: 'beta' }]);
    const inList = await send('GET', "/users?$filter=mailNickname in ('alpha','beta')&$select=mailNickname");
    expect((inList.body['value'] as Json[]).length).toBe(2);
    const ada = (await send('GET', '/users/ada@contoso.example')).body['id'] as string;
    await send('POST', `/users/${ada}/assignLicense`, {
      addLicenses: [{ skuId: skuE3, disabledPlans: [] }],
      removeLicenses: [],
    });
    const licensed = await send(
      'GET',
      `/users?$filter=assignedLicenses/any(x:x/skuId eq ${skuE3})&$select=userPrincipalName`,
    );
    expect(licensed.body['value']).toEqual([{ userPrincipalName: 'ada@contoso.example' }]);
    expect((await send('GET', '/users?$select=skills')).status).toBe(501);
  });

  it('needs ConsistencyLevel: eventual and $count=true for endsWith, ne and $count', async () => {
    await createUser('gamma');
    const endsWith =
      "/users?$filter=endsWith(userPrincipalName,'@contoso.example')&$select=userPrincipalName";
    expectGraphError(
      await send('GET', endsWith),
      400,
      'Request_UnsupportedQuery',
      /^Operator 'endsWith' is not supported because the required parameters might be missing/,
    );
    const advanced = await send('GET', `${endsWith}&$count=true`, undefined, {
      ConsistencyLevel: 'eventual',
    });
    expect(advanced.status).toBe(200);
    expect(advanced.body['@odata.count']).toBe(2);
    expectGraphError(
      await send('GET', "/users?$filter=mailNickname ne 'gamma'"),
      400,
      'Request_UnsupportedQuery',
    );
    // endsWith is allowed only on mail, otherMails, userPrincipalName and proxyAddresses.
    expectGraphError(
      await send('GET', "/users?$filter=endsWith(displayName,'a')&$count=true", undefined, {
        ConsistencyLevel: 'eventual',
      }),
      400,
      'Request_UnsupportedQuery',
      /displayName/,
    );
    const ne = await send(
      'GET',
      "/users?$filter=mailNickname ne 'gamma'&$count=true&$select=mailNickname",
      undefined,
      { ConsistencyLevel: 'eventual' },
    );
    expect(ne.body['value']).toEqual([{ mailNickname: 'ada' }]);
    // $count=true without the header is silently ignored.
    const ignored = await send('GET', '/users?$count=true');
    expect(ignored.status).toBe(200);
    expect(ignored.body).not.toHaveProperty('@odata.count');
    expectGraphError(
      await send('GET', '/users/$count'),
      400,
      'Request_BadRequest',
      '$count is not currently supported.',
    );
    const count = await send('GET', '/users/$count', undefined, { ConsistencyLevel: 'eventual' });
    expect(count.status).toBe(200);
    expect(count.headers.get('content-type')).toContain('text/plain');
    expect(count.text).toBe('2');
  });
});

describe('licences (user-assignlicense.md, subscribedsku-list.md)', () => {
  it('assignLicense returns 200 with the user and subscribedSkus counts the seat', async () => {
    const id = await createUser('lic', { usageLocation: 'US' });
    const assigned = await send('POST', `/users/${id}/assignLicense`, {
      addLicenses: [{ disabledPlans: [planExchange], skuId: skuE3 }],
      removeLicenses: [],
    });
    expect(assigned.status).toBe(200);
    expect(assigned.body['@odata.context']).toBe(`${f.peer.graphBaseUrl}/$metadata#users/$entity`);
    expectShape(assigned.body, documentedCreatedUser);
    const got = await send('GET', `/users/${id}?$select=assignedLicenses`);
    expect(got.body['assignedLicenses']).toEqual([{ disabledPlans: [planExchange], skuId: skuE3 }]);

    const skus = await send('GET', '/subscribedSkus');
    expect(skus.body['@odata.context']).toBe(`${f.peer.graphBaseUrl}/$metadata#subscribedSkus`);
    // subscribedsku-list.md response example.
    expectShape((skus.body['value'] as Json[])[0], {
      capabilityStatus: 'Enabled',
      consumedUnits: 14,
      id: '48a80680-7326-48cd-9935-b556b81d3a4e_c7df2760-2c81-4ef7-b578-5b5392b571df',
      prepaidUnits: { enabled: 25, suspended: 0, warning: 0, lockedOut: 0 },
      servicePlans: [
        {
          servicePlanId: '8c098270-9dd4-4350-9b30-ba4703f3b36b',
          servicePlanName: 'ADALLOM_S_O365',
          provisioningStatus: 'Success',
          appliesTo: 'User',
        },
      ],
      skuId: 'c7df2760-2c81-4ef7-b578-5b5392b571df',
      skuPartNumber: 'ENTERPRISEPREMIUM',
      appliesTo: 'User',
    });
    const e3 = (skus.body['value'] as Json[]).find((s) => s['skuId'] === skuE3);
    expect(e3).toMatchObject({
      id: `${f.customerTenantId}_${skuE3}`,
      consumedUnits: 1,
      prepaidUnits: { enabled: 3 },
    });
    expectGraphError(
      await send('GET', "/subscribedSkus?$filter=skuPartNumber eq 'X'"),
      400,
      'Request_UnsupportedQuery',
    );
  });

  it('answers the documented licence errors', async () => {
    const noLocation = await createUser('noloc');
    expectGraphError(
      await send('POST', `/users/${noLocation}/assignLicense`, {
        addLicenses: [{ skuId: skuE3, disabledPlans: [] }],
        removeLicenses: [],
      }),
      400,
      'Request_BadRequest',
      'License assignment cannot be done for user with invalid usage location.',
    );
    const first = await createUser('first', { usageLocation: 'NL' });
    const second = await createUser('second', { usageLocation: 'NL' });
    expect(
      (
        await send('POST', `/users/${first}/assignLicense`, {
          addLicenses: [{ skuId: skuBusiness }],
          removeLicenses: [],
        })
      ).status,
    ).toBe(200);
    expectGraphError(
      await send('POST', `/users/${second}/assignLicense`, {
        addLicenses: [{ skuId: skuBusiness }],
        removeLicenses: [],
      }),
      400,
      'Request_BadRequest',
      `Subscription with SKU ${skuBusiness} does not have any available licenses.`,
    );
    expectGraphError(
      await send('POST', `/users/${second}/assignLicense`, {
        addLicenses: [{ skuId: '11111111-1111-1111-1111-111111111111' }],
        removeLicenses: [],
      }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await send('POST', `/users/${second}/assignLicense`, { addLicenses: [] }),
      400,
      'Request_BadRequest',
    );
    // removeLicenses frees the seat for the next user.
    expect(
      (
        await send('POST', `/users/${first}/assignLicense`, {
          addLicenses: [],
          removeLicenses: [skuBusiness],
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await send('POST', `/users/${second}/assignLicense`, {
          addLicenses: [{ skuId: skuBusiness }],
          removeLicenses: [],
        })
      ).status,
    ).toBe(200);
    // Raising the seat count through the admin API (as Partner Center would) is seen at once.
    await admin(f, 'PUT', `/tenants/${f.customerTenantId}/skus/${skuBusiness}`, {
      skuPartNumber: 'O365_BUSINESS_PREMIUM',
      enabled: 2,
    });
    expect(
      (
        await send('POST', `/users/${first}/assignLicense`, {
          addLicenses: [{ skuId: skuBusiness }],
          removeLicenses: [],
        })
      ).status,
    ).toBe(200);
  });
});

describe('domains and federation (domain-get.md, domain-post-federationconfiguration.md, domain-list-federationconfiguration.md)', () => {
  // domain-post-federationconfiguration.md request example.
  const documentedRequest = {
    '@odata.type': '#microsoft.graph.internalDomainFederation',
    displayName: 'Contoso',
    issuerUri: 'http://contoso.com/adfs/services/trust',
    metadataExchangeUri: 'https://sts.contoso.com/adfs/services/trust/mex',
    signingCertificate: 'MIIE3jCCAsagAwIBAgIQQcyDaZz3MI',
    passiveSignInUri: 'https://sts.contoso.com/adfs/ls',
    preferredAuthenticationProtocol: 'wsFed',
    activeSignInUri: 'https://sts.contoso.com/adfs/services/trust/2005/usernamemixed',
    signOutUri: 'https://sts.contoso.com/adfs/ls',
    promptLoginBehavior: 'nativeSupport',
    isSignedAuthenticationRequestRequired: true,
    nextSigningCertificate: 'MIIE3jCCAsagAwIBAgIQQcyDaZz3MI',
    federatedIdpMfaBehavior: 'rejectMfaByFederatedIdp',
  };

  it('GET /domains/{id} has the documented properties', async () => {
    const raw = await send('GET', '/domains/contoso.example');
    expect(raw.status).toBe(200);
    expectShape(raw.body, {
      authenticationType: 'authenticationType-value',
      availabilityStatus: null,
      id: 'contoso.com',
      isAdminManaged: true,
      isDefault: true,
      isInitial: true,
      isRoot: true,
      isVerified: true,
      supportedServices: ['Email'],
    });
    expect(raw.body).toMatchObject({
      id: 'contoso.example',
      authenticationType: 'Managed',
      isDefault: true,
      isInitial: false,
    });
    const org = await send('GET', '/organization');
    const verified = ((org.body['value'] as Json[])[0]?.['verifiedDomains'] ?? []) as Json[];
    expect(verified.map((d) => d['name']).sort()).toEqual([
      'contoso.example',
      'contoso.onmicrosoft.com',
      'fed.contoso.example',
    ]);
    expectShape(verified[0], {
      capabilities: 'Email, OfficeCommunicationsOnline',
      isDefault: false,
      isInitial: true,
      name: 'contoso.onmicrosoft.com',
      type: 'Managed',
    });
  });

  it('creates, lists, updates and deletes an internalDomainFederation', async () => {
    expectGraphError(
      await send('GET', '/domains/contoso.example/federationConfiguration'),
      404,
      'Request_ResourceNotFound',
    );
    const created = await send('POST', '/domains/contoso.example/federationConfiguration', documentedRequest);
    expect(created.status).toBe(201);
    const { ['@odata.type']: _type, ...rest } = documentedRequest;
    expect(created.body).toMatchObject({
      '@odata.type': '#microsoft.graph.internalDomainFederation',
      ...rest,
    });
    expectShape(created.body, {
      signingCertificateUpdateStatus: {
        certificateUpdateResult: 'Success',
        lastRunDateTime: '2021-08-25T07:44:46.2616778Z',
      },
    });
    const id = created.body['id'] as string;
    expect((await send('GET', '/domains/contoso.example')).body['authenticationType']).toBe('Federated');
    const list = await send('GET', '/domains/contoso.example/federationConfiguration');
    expect(list.status).toBe(200);
    expect((list.body['value'] as Json[]).map((v) => v['id'])).toEqual([id]);
    expectGraphError(
      await send('POST', '/domains/contoso.example/federationConfiguration', documentedRequest),
      409,
      'Request_MultipleObjectsWithSameKeyValue',
    );
    const updated = await send('PATCH', `/domains/contoso.example/federationConfiguration/${id}`, {
      federatedIdpMfaBehavior: 'acceptIfMfaDoneByFederatedIdp',
    });
    expect(updated.status).toBe(200);
    expect(updated.body['federatedIdpMfaBehavior']).toBe('acceptIfMfaDoneByFederatedIdp');
    expect((await send('DELETE', `/domains/contoso.example/federationConfiguration/${id}`)).status).toBe(204);
    expect((await send('GET', '/domains/contoso.example')).body['authenticationType']).toBe('Managed');
  });

  it('defaults federatedIdpMfaBehavior to acceptIfMfaDoneByFederatedIdp', async () => {
    const created = await send('POST', '/domains/contoso.example/federationConfiguration', {
      issuerUri: 'http://sts.contoso.example/adfs/services/trust',
      passiveSignInUri: 'https://sts.contoso.example/adfs/ls',
      signingCertificate: 'MIIE3jCCAsagAwIBAgIQQcyDaZz3MI',
      preferredAuthenticationProtocol: 'saml',
    });
    expect(created.status).toBe(201);
    expect(created.body['federatedIdpMfaBehavior']).toBe('acceptIfMfaDoneByFederatedIdp');
  });
});

describe('groups (group-post-groups.md, group-post-members.md, group-delete-members.md)', () => {
  it('creates a group and adds/removes members by $ref with the documented statuses', async () => {
    const created = await send('POST', '/groups', {
      description: 'Self help community for library',
      displayName: 'Library Assist',
      groupTypes: ['Unified'],
      mailEnabled: true,
      mailNickname: 'library',
      securityEnabled: false,
    });
    expect(created.status).toBe(201);
    expectShape(created.body, {
      id: 'b320ee12-b1cd-4cca-b648-a437be61c5cd',
      description: 'x',
      displayName: 'Library Assist',
      groupTypes: ['Unified'],
      mailEnabled: true,
      mailNickname: 'library',
      securityEnabled: false,
      createdDateTime: '2018-12-22T02:21:05Z',
    });
    expectGraphError(
      await send('POST', '/groups', { displayName: 'No nick', mailEnabled: false, securityEnabled: true }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await send('POST', '/groups', {
        displayName: 'Bad',
        mailNickname: 'a b',
        mailEnabled: false,
        securityEnabled: true,
      }),
      400,
      'Request_BadRequest',
    );
    const groupId = created.body['id'] as string;
    const userId = await createUser('member');
    const ref = { '@odata.id': `https://graph.microsoft.com/v1.0/directoryObjects/${userId}` };
    const added = await send('POST', `/groups/${groupId}/members/$ref`, ref);
    expect(added.status).toBe(204);
    expectGraphError(
      await send('POST', `/groups/${groupId}/members/$ref`, ref),
      400,
      'Request_BadRequest',
      /already exist/,
    );
    expectGraphError(
      await send('POST', `/groups/${groupId}/members/$ref`, {
        '@odata.id': 'https://graph.microsoft.com/v1.0/directoryObjects/4a4ec8b4-0000-4e1a-9cbb-000000000000',
      }),
      404,
      'Request_ResourceNotFound',
    );
    const members = await send('GET', `/groups/${groupId}/members`);
    expect((members.body['value'] as Json[]).map((m) => [m['@odata.type'], m['id']])).toEqual([
      ['#microsoft.graph.user', userId],
    ]);
    expect((await send('DELETE', `/groups/${groupId}/members/${userId}/$ref`)).status).toBe(204);
    expectGraphError(
      await send('DELETE', `/groups/${groupId}/members/${userId}/$ref`),
      404,
      'Request_ResourceNotFound',
    );
  });
});

describe('delta (user-delta.md, delta-query-users.md, delta-query-overview.md)', () => {
  it('pages the first round, returns a deltaLink, then only changes with @removed', async () => {
    for (let i = 0; i < 3; i++) await createUser(`d${i}`);
    const pages: Raw[] = [];
    let next: string | undefined = '/users/delta?$select=displayName,jobTitle,mobilePhone';
    while (next !== undefined) {
      const raw = await send('GET', next, undefined, { Prefer: 'odata.maxpagesize=2' });
      expect(raw.status).toBe(200);
      expect(raw.body['@odata.context']).toBe(`${f.peer.graphBaseUrl}/$metadata#users`);
      // A page has a nextLink or a deltaLink, never both.
      expect('@odata.nextLink' in raw.body !== '@odata.deltaLink' in raw.body).toBe(true);
      pages.push(raw);
      next = raw.body['@odata.nextLink'] as string | undefined;
      if (next !== undefined) expect(new URL(next).searchParams.get('$skiptoken')).toBeTruthy();
    }
    expect(pages).toHaveLength(2);
    const users = pages.flatMap((p) => p.body['value'] as Json[]);
    expect(users).toHaveLength(4);
    for (const user of users)
      expect(Object.keys(user).sort()).toEqual(['displayName', 'id', 'jobTitle', 'mobilePhone']);
    const deltaLink = pages[1]?.body['@odata.deltaLink'] as string;
    expect(new URL(deltaLink).searchParams.get('$deltatoken')).toBeTruthy();

    const quiet = await send('GET', deltaLink);
    expect(quiet.body['value']).toEqual([]);
    expect(quiet.body['@odata.deltaLink']).toBeTruthy();

    const changed = users[0]?.['id'] as string;
    const removed = users[1]?.['id'] as string;
    await send('PATCH', `/users/${changed}`, { jobTitle: 'Changed' });
    await send('DELETE', `/users/${removed}`);
    const changes = await send('GET', quiet.body['@odata.deltaLink'] as string);
    expect(changes.body['value']).toEqual([
      { id: changed, displayName: users[0]?.['displayName'], jobTitle: 'Changed', mobilePhone: null },
      { id: removed, '@removed': { reason: 'changed' } },
    ]);
  });

  it('$deltatoken=latest returns only a deltaLink; unsupported options are refused', async () => {
    const latest = await send('GET', '/users/delta?$deltatoken=latest');
    expect(latest.body['value']).toEqual([]);
    expect(latest.body['@odata.deltaLink']).toBeTruthy();
    await createUser('later');
    const after = await send('GET', latest.body['@odata.deltaLink'] as string);
    expect((after.body['value'] as Json[]).map((u) => u['userPrincipalName'])).toEqual([
      'later@contoso.example',
    ]);
    expect((await send('GET', '/users/delta?$top=5')).status).toBe(400);
  });

  it('an expired delta token (over 7 days) gets 410 syncStateNotFound with a Location to restart', async () => {
    const latest = await send('GET', '/users/delta?$deltatoken=latest');
    await admin(f, 'POST', '/clock', { advanceByInMs: 8 * 24 * 3600_000 });
    // The cached token is outdated by the peer clock too; use a fresh credential.
    const fresh = Client.initWithMiddleware({
      authProvider: new TokenCredentialAuthenticationProvider(secretCredential(f), {
        scopes: ['https://graph.microsoft.com/.default'],
      }),
      baseUrl: f.peer.authorityHost,
      customHosts: new Set(['127.0.0.1']),
    });
    const response = (await fresh
      .api(latest.body['@odata.deltaLink'] as string)
      .responseType(ResponseType.RAW)
      .get()) as Response;
    expect(response.status).toBe(410);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe('syncStateNotFound');
    expect(response.headers.get('location')).toContain('/users/delta?');
  });
});

describe('JSON batching (concepts/json-batching.md)', () => {
  it('runs up to 20 requests with dependsOn, answers 200 with per-request statuses and 424 for failed dependencies', async () => {
    const ada = (await send('GET', '/users/ada@contoso.example')).body['id'] as string;
    const raw = await send('POST', '/$batch', {
      requests: [
        { id: '1', method: 'GET', url: '/users/ada@contoso.example?$select=id,displayName' },
        {
          id: '2',
          dependsOn: ['1'],
          method: 'PATCH',
          url: `/users/${ada}`,
          body: { jobTitle: 'Batched' },
          headers: { 'Content-Type': 'application/json' },
        },
        {
          id: '3',
          method: 'POST',
          url: 'users',
          body: { displayName: 'Incomplete' },
          headers: { 'Content-Type': 'application/json' },
        },
        { id: '4', dependsOn: ['3'], method: 'GET', url: '/subscribedSkus' },
      ],
    });
    expect(raw.status).toBe(200);
    const responses = raw.body['responses'] as Json[];
    const byId = new Map(responses.map((r) => [r['id'] as string, r]));
    expect(byId.get('1')).toMatchObject({ status: 200, body: { id: ada, displayName: 'Ada' } });
    expect(byId.get('2')?.['status']).toBe(204);
    expect(byId.get('3')).toMatchObject({ status: 400, body: { error: { code: 'Request_BadRequest' } } });
    expect(byId.get('4')?.['status']).toBe(424);
    expect((await send('GET', `/users/${ada}?$select=jobTitle`)).body['jobTitle']).toBe('Batched');
  });

  it('refuses the whole batch for duplicate ids, more than 20 requests, absolute urls or a body without Content-Type', async () => {
    const get = (id: string): Json => ({ id, method: 'GET', url: '/users' });
    expect((await send('POST', '/$batch', { requests: [get('a'), get('A')] })).status).toBe(400);
    expect(
      (await send('POST', '/$batch', { requests: Array.from({ length: 21 }, (_, i) => get(String(i))) }))
        .status,
    ).toBe(400);
    expect(
      (
        await send('POST', '/$batch', {
          requests: [{ id: '1', method: 'GET', url: 'https://graph.microsoft.com/v1.0/users' }],
        })
      ).status,
    ).toBe(400);
    expect(
      (await send('POST', '/$batch', { requests: [{ id: '1', method: 'POST', url: '/users', body: {} }] }))
        .status,
    ).toBe(400);
    expect(
      (await send('POST', '/$batch', { requests: Array.from({ length: 20 }, (_, i) => get(String(i))) }))
        .status,
    ).toBe(200);
  });
});
