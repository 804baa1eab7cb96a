import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ServiceBusClient } from '@azure/service-bus';
import { Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunningAgent } from '../../agent/runtime.js';
import { startLocalAgent } from '../../dev/local-agent.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import { customersCollection } from '../../shared/usecases/customers.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * Two providers on one deployment. Provider "blue" owns a site with a running agent and a hybrid
 * customer on its own tenant; provider "red" tries every id of blue's it can learn — through HTTP and
 * through a queue message it writes itself — and nothing reaches blue's AD or Entra tenant. Another
 * provider's resource answers exactly like a missing one.
 */
const blueTenant = randomUUID();
const redTenant = randomUUID();
const partnerTenant = randomUUID();
const sku = randomUUID();
const blueSite = 'tenancy'; // dev/peers/servicebus/config.json declares agent-site-tenancy
const graphApp = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };

let dc: SambaPeer;
let stack: TestStack;
let agent: RunningAgent;
let blue: string;
let red: string;
let blueNarrow: string;
let blueKeys: { site: { publicKeyPem: string }; agent: { publicKeyPem: string } };

type Problem = { status: number; code: string; detail?: string; title?: string };

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

/** A problem with the id it names masked, to compare "missing" with "someone else's". */
async function shape(
  response: Response,
  id: string,
): Promise<{ status: number; code: string; detail: string }> {
  const body = await json<Problem>(response);
  return { status: response.status, code: body.code, detail: (body.detail ?? '').split(id).join('<id>') };
}

async function adCount(upn: string): Promise<number> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: readFileSync(dc.caFile) } });
  try {
    await client.bind(dc.bindDn, dc.password);
    const { searchEntries } = await client.search(dc.baseDn, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'userPrincipalName', value: upn }),
      attributes: ['dn'],
    });
    return searchEntries.length;
  } finally {
    await client.unbind();
  }
}

const hybridCustomer = (siteId: string, tenantId: string) => ({
  displayName: 'Blue Hybrid',
  identityMode: 'hybridFederated',
  entra: { tenantId, domains: ['blue.example', 'fed.blue.example'], federatedDomain: 'fed.blue.example' },
  ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['fed.blue.example'] },
  defaultUsageLocation: 'NL',
  licencePlans: [{ name: 'E3', skus: [{ skuId: sku }] }],
});

const certificate = (): string =>
  readFileSync('.local/tls/ca.pem', 'utf8').replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
const federationBody = () => ({
  issuerUri: 'http://adfs.blue.example/adfs/services/trust',
  passiveSignInUri: 'https://adfs.blue.example/adfs/ls/',
  signingCertificate: certificate(),
});

beforeAll(async () => {
  dc = await startSambaPeer();
  const signing = generateSigningKeyPair();
  const site = generateSiteKeyPair();
  const agentKeys = generateSigningKeyPair();
  blueKeys = { site, agent: agentKeys };
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: {
      tenants: [
        {
          id: partnerTenant,
          displayName: 'Partner',
          domains: [
            { id: `p${partnerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true },
          ],
        },
        {
          id: blueTenant,
          displayName: 'Blue',
          domains: [
            { id: `b${blueTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true },
            { id: 'blue.example', isDefault: true, authenticationType: 'Managed' },
            { id: 'fed.blue.example', authenticationType: 'Managed' },
          ],
          skus: [{ skuId: sku, skuPartNumber: 'ENTERPRISEPACK', enabled: 10 }],
        },
        {
          id: redTenant,
          displayName: 'Red',
          domains: [
            { id: `r${redTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true },
            { id: 'red.example', isDefault: true, authenticationType: 'Managed' },
            { id: 'other.red.example', authenticationType: 'Managed' },
          ],
        },
      ],
      apps: [
        {
          ...graphApp,
          homeTenantId: partnerTenant,
          tenants: [blueTenant, redTenant],
          roles: [
            'User.ReadWrite.All',
            'Directory.ReadWrite.All',
            'Domain.ReadWrite.All',
            'LicenseAssignment.ReadWrite.All',
          ],
        },
      ],
    },
    extraSettings: {
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: 'tenancy-key',
      Relay__replyTimeoutInMs: '20000',
    },
  });
  agent = await startLocalAgent({
    siteId: blueSite,
    serviceBusConnectionString: stack.serviceBus.connectionString,
    dc,
    signing: { kid: 'tenancy-key', publicKeyPem: signing.publicKeyPem },
    sitePrivateKeyPem: site.privateKeyPem,
    agentSigningKeyPem: agentKeys.privateKeyPem,
    heartbeatIntervalInMs: 1000,
  });
  blue = (await stack.deps.callers.createApiKey({ providerId: 'prov-blue', name: 'blue' })).apiKey;
  red = (await stack.deps.callers.createApiKey({ providerId: 'prov-red', name: 'red' })).apiKey;
  blueNarrow = (
    await stack.deps.callers.createApiKey({
      providerId: 'prov-blue',
      customerIds: ['bluehy'],
      name: 'narrow',
    })
  ).apiKey;

  const registered = await stack.api(`/sites/${blueSite}`, {
    method: 'PUT',
    key: blue,
    body: JSON.stringify({ publicKeyPem: site.publicKeyPem, agentPublicKeyPem: agentKeys.publicKeyPem }),
  });
  expect(registered.status).toBe(201);
  const put = await stack.api('/customers/bluehy', {
    method: 'PUT',
    key: blue,
    body: JSON.stringify(hybridCustomer(blueSite, blueTenant)),
  });
  expect(put.status).toBe(201);
  const redCustomer = await stack.api('/customers/redco', {
    method: 'PUT',
    key: red,
    body: JSON.stringify({
      displayName: 'Red Co',
      identityMode: 'cloudOnly',
      entra: { tenantId: redTenant, domains: ['red.example', 'other.red.example'] },
    }),
  });
  expect(redCustomer.status).toBe(201);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await stack?.stop();
  await dc?.stop();
});

describe('sites belong to the provider that registered them', () => {
  it("another provider's site answers exactly like a missing one, on read, re-key and delete", async () => {
    const body = JSON.stringify({
      publicKeyPem: generateSiteKeyPair().publicKeyPem,
      agentPublicKeyPem: generateSigningKeyPair().publicKeyPem,
    });
    for (const method of ['GET', 'DELETE'] as const) {
      const foreign = await shape(await stack.api(`/sites/${blueSite}`, { method, key: red }), blueSite);
      const missing = await shape(
        await stack.api('/sites/nosuch-missing', { method, key: red }),
        'nosuch-missing',
      );
      expect(foreign.status).toBe(404);
      expect(foreign).toEqual(missing);
    }
    const rekey = await stack.api(`/sites/${blueSite}`, { method: 'PUT', key: red, body });
    expect(rekey.status).toBe(404);
    // Blue's keys are untouched: the stored site still carries blue's agent key.
    expect((await stack.deps.sites.get(blueSite)).agentPublicKeyPem).toBe(blueKeys.agent.publicKeyPem);
    expect((await stack.deps.sites.get(blueSite)).providerId).toBe('prov-blue');
    const list = await json<{ value: { siteId: string }[] }>(await stack.api('/sites', { key: red }));
    expect(list.value.map((s) => s.siteId)).not.toContain(blueSite);
    const own = await json<{ value: { siteId: string; agent: { state: string } }[] }>(
      await stack.api('/sites', { key: blue }),
    );
    expect(own.value.map((s) => s.siteId)).toContain(blueSite);
  });

  it('refuses keys of the wrong type, a missing agent key, and a credential narrowed to some customers', async () => {
    const x25519 = generateSiteKeyPair().publicKeyPem;
    const ed25519 = generateSigningKeyPair().publicKeyPem;
    const swapped = await stack.api('/sites/blue-two', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify({ publicKeyPem: ed25519, agentPublicKeyPem: x25519 }),
    });
    expect(swapped.status).toBe(400);
    expect(JSON.stringify(await swapped.json())).toMatch(/X25519/);
    const noAgentKey = await stack.api('/sites/blue-two', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify({ publicKeyPem: x25519 }),
    });
    expect(noAgentKey.status).toBe(400);
    const narrowed = await stack.api(`/sites/${blueSite}`, {
      method: 'PUT',
      key: blueNarrow,
      body: JSON.stringify({ publicKeyPem: x25519, agentPublicKeyPem: ed25519 }),
    });
    expect(narrowed.status).toBe(403);
    expect((await stack.api('/sites/blue-two', { key: blue })).status).toBe(404);
    expect((await stack.deps.sites.get(blueSite)).agentPublicKeyPem).toBe(blueKeys.agent.publicKeyPem);
  });

  it("a customer cannot be pointed at another provider's site: the same 400 as for a missing site", async () => {
    const foreign = await stack.api('/customers/redhy', {
      method: 'PUT',
      key: red,
      body: JSON.stringify(hybridCustomer(blueSite, randomUUID())),
    });
    const missing = await stack.api('/customers/redhy', {
      method: 'PUT',
      key: red,
      body: JSON.stringify(hybridCustomer('nosuch-missing', randomUUID())),
    });
    const a = await shape(foreign, blueSite);
    const b = await shape(missing, 'nosuch-missing');
    expect(a.status).toBe(400);
    expect(a).toEqual(b);
    expect((await stack.api('/customers/redhy', { key: red })).status).toBe(404);
  });
});

describe('an Entra tenant belongs to one customer of one provider', () => {
  it("refuses another provider's tenant and another customer's, and frees it when its customer goes", async () => {
    const grab = await stack.api('/customers/redgrab', {
      method: 'PUT',
      key: red,
      body: JSON.stringify({
        displayName: 'Grab',
        identityMode: 'cloudOnly',
        entra: { tenantId: blueTenant, domains: ['blue.example'] },
      }),
    });
    expect(grab.status).toBe(409);
    expect((await json<Problem>(grab)).detail).toContain('not available');
    expect((await stack.api('/customers/redgrab', { key: red })).status).toBe(404);
    // Even blue's own second customer cannot share blue's tenant.
    const twin = await stack.api('/customers/bluetwin', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify({
        displayName: 'Twin',
        identityMode: 'cloudOnly',
        entra: { tenantId: blueTenant.toUpperCase(), domains: ['blue.example'] },
      }),
    });
    expect(twin.status).toBe(409);

    const spare = randomUUID();
    const first = {
      displayName: 'Temp',
      identityMode: 'cloudOnly',
      entra: { tenantId: spare, domains: ['t.example'] },
    };
    expect(
      (await stack.api('/customers/bluetemp', { method: 'PUT', key: blue, body: JSON.stringify(first) }))
        .status,
    ).toBe(201);
    expect(
      (await stack.api('/customers/redtemp', { method: 'PUT', key: red, body: JSON.stringify(first) }))
        .status,
    ).toBe(409);
    expect((await stack.api('/customers/bluetemp', { method: 'DELETE', key: blue })).status).toBe(204);
    expect(
      (await stack.api('/customers/redtemp', { method: 'PUT', key: red, body: JSON.stringify(first) }))
        .status,
    ).toBe(201);
  });

  it("another provider cannot federate, unfederate or preflight blue's domain", async () => {
    const before = await stack.cloudDirectory(blueTenant).getDomain('fed.blue.example');
    const attempts = [
      stack.api('/customers/bluehy/domains/fed.blue.example/federation', {
        method: 'PUT',
        key: red,
        body: JSON.stringify(federationBody()),
      }),
      stack.api('/customers/bluehy/domains/fed.blue.example/federation', { method: 'DELETE', key: red }),
      stack.api('/customers/bluehy/domains/fed.blue.example/federation/preflight', { key: red }),
    ];
    for (const response of await Promise.all(attempts)) expect(response.status).toBe(404);
    const after = await stack.cloudDirectory(blueTenant).getDomain('fed.blue.example');
    expect(after.authenticationType).toBe(before.authenticationType);
  });
});

describe('federation is for a hybrid customer’s own verified custom domain, and can be undone', () => {
  it('refuses a cloud-only customer, the default and the onmicrosoft.com domain', async () => {
    const cloudOnly = await stack.api('/customers/redco/domains/other.red.example/federation', {
      method: 'PUT',
      key: red,
      body: JSON.stringify(federationBody()),
    });
    expect(cloudOnly.status).toBe(409);
    expect((await json<Problem>(cloudOnly)).detail).toContain('hybridFederated');
    expect((await stack.cloudDirectory(redTenant).getDomain('other.red.example')).authenticationType).toBe(
      'Managed',
    );
    const defaultDomain = await stack.api('/customers/bluehy/domains/blue.example/federation', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify(federationBody()),
    });
    expect(defaultDomain.status).toBe(409);
    expect((await json<Problem>(defaultDomain)).detail).toContain('default');
  });

  it('federates the hybrid domain, then DELETE converts it back to managed', async () => {
    const put = await stack.api('/customers/bluehy/domains/fed.blue.example/federation', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify(federationBody()),
    });
    expect(put.status).toBe(200);
    const cloud = stack.cloudDirectory(blueTenant);
    expect((await cloud.getDomain('fed.blue.example')).authenticationType).toBe('Federated');
    const undo = await stack.api('/customers/bluehy/domains/fed.blue.example/federation', {
      method: 'DELETE',
      key: blue,
    });
    expect(undo.status).toBe(204);
    expect((await cloud.getDomain('fed.blue.example')).authenticationType).toBe('Managed');
    expect(await cloud.getDomainFederation('fed.blue.example')).toBeUndefined();
    // Undoing twice is fine: the domain is managed either way.
    expect(
      (
        await stack.api('/customers/bluehy/domains/fed.blue.example/federation', {
          method: 'DELETE',
          key: blue,
        })
      ).status,
    ).toBe(204);
  });
});

describe('work put on the queue by hand cannot cross providers', () => {
  it("a stored customer naming another provider's site and tenant fails its operation; AD and Entra stay untouched", async () => {
    // What the HTTP API refuses, written straight into storage (an old row, a bug, an insider).
    const now = new Date().toISOString();
    await customersCollection(stack.deps.store).upsert('prov-red', 'redsneak', {
      customerId: 'redsneak',
      providerId: 'prov-red',
      ...hybridCustomer(blueSite, blueTenant),
      identityMode: 'hybridFederated',
      createdAt: now,
      updatedAt: now,
    } as never);
    const client = new ServiceBusClient(stack.serviceBus.connectionString);
    const sender = client.createSender('directory-work');
    try {
      await sender.sendMessages({
        messageId: randomUUID(),
        contentType: 'application/json',
        body: {
          type: 'user.create',
          v: 1,
          providerId: 'prov-red',
          customerId: 'redsneak',
          idempotencyKey: 'sneak-1',
          user: {
            userId: 'u-sneak',
            userPrincipalName: 'sneak@fed.blue.example',
            displayName: 'Sneak',
            accountEnabled: false,
          },
        },
      });
    } finally {
      await sender.close();
      await client.close();
    }
    const operation = await waitFor(
      async () => {
        const list = await json<{
          value: { operationId: string; state: string; error?: { code: string } }[];
        }>(await stack.api('/customers/redsneak/operations', { key: red }));
        const op = list.value[0];
        return op !== undefined && ['failed', 'compensated', 'cancelled'].includes(op.state) ? op : undefined;
      },
      'the smuggled operation to fail',
      30_000,
    );
    expect(operation.error?.code).toBe('NotFound');
    expect(await adCount('sneak@fed.blue.example')).toBe(0);
    expect(await stack.cloudDirectory(blueTenant).findUserByUpn('sneak@fed.blue.example')).toBeUndefined();
  });

  it('while blue itself provisions through the same site and tenant (the control)', async () => {
    // A hybrid user needs the federated domain (an earlier test undid the federation).
    const federate = await stack.api('/customers/bluehy/domains/fed.blue.example/federation', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify(federationBody()),
    });
    expect(federate.status).toBe(200);
    const create = await stack.api('/customers/bluehy/users', {
      method: 'POST',
      key: blue,
      body: JSON.stringify({
        userId: 'u-ok',
        userPrincipalName: 'ok@fed.blue.example',
        displayName: 'Okay',
        password: 'Str0ng!Passw0rd#1',
      }),
    });
    expect(create.status).toBe(202);
    const { operationId } = await json<{ operationId: string }>(create);
    const done = await waitFor(
      async () => {
        const op = await json<{ state: string }>(
          await stack.api(`/operations/${operationId}`, { key: blue }),
        );
        return ['succeeded', 'failed', 'compensated'].includes(op.state) ? op : undefined;
      },
      'blue user',
      45_000,
    );
    expect(done, JSON.stringify(done)).toMatchObject({ state: 'succeeded' });
    expect(await adCount('ok@fed.blue.example')).toBe(1);
    // Red still cannot see it.
    expect((await stack.api('/customers/bluehy/users/u-ok', { key: red })).status).toBe(404);
    expect((await stack.api(`/operations/${operationId}`, { key: red })).status).toBe(404);
  });
});

describe('customers and users: lists, deletion and identity changes', () => {
  it('pages customers with nextLink and lists users by state', async () => {
    const seen: string[] = [];
    let next: string | undefined = '/customers?limit=1';
    for (let i = 0; next !== undefined && i < 20; i++) {
      const page: { value: { customerId: string }[]; nextLink?: string } = await json(
        await stack.api(next, { key: blue }),
      );
      seen.push(...page.value.map((c) => c.customerId));
      next = page.nextLink?.replace(/^\/api/, '');
    }
    expect(seen).toContain('bluehy');
    expect(seen.every((id) => id.startsWith('blue'))).toBe(true);
    const narrow = await json<{ value: { customerId: string }[] }>(
      await stack.api('/customers', { key: blueNarrow }),
    );
    expect(narrow.value.map((c) => c.customerId)).toEqual(['bluehy']);
    const active = await json<{ value: { userId: string }[] }>(
      await stack.api('/customers/bluehy/users?state=active', { key: blue }),
    );
    expect(active.value.map((u) => u.userId)).toContain('u-ok');
    const failed = await json<{ value: unknown[] }>(
      await stack.api('/customers/bluehy/users?state=failed', { key: blue }),
    );
    expect(failed.value).toEqual([]);
    expect((await stack.api('/customers/bluehy/users', { key: red })).status).toBe(404);
  });

  it('refuses to change identity mode, tenant or site, or to delete, while the customer has users', async () => {
    const moved = await stack.api('/customers/bluehy', {
      method: 'PUT',
      key: blue,
      body: JSON.stringify({ ...hybridCustomer(blueSite, blueTenant), identityMode: 'both' }),
    });
    expect(moved.status).toBe(409);
    expect((await json<Problem>(moved)).detail).toContain('identityMode');
    const deleted = await stack.api('/customers/bluehy', { method: 'DELETE', key: blue });
    expect(deleted.status).toBe(409);
    const siteInUse = await stack.api(`/sites/${blueSite}`, { method: 'DELETE', key: blue });
    expect(siteInUse.status).toBe(409);
    const customer = await json<{ identityMode: string }>(
      await stack.api('/customers/bluehy', { key: blue }),
    );
    expect(customer.identityMode).toBe('hybridFederated');
  });

  it('If-Match on a missing customer is 412', async () => {
    const response = await stack.api('/customers/nobody-here', {
      method: 'PUT',
      key: blue,
      headers: { 'if-match': '*' },
      body: JSON.stringify({
        displayName: 'X',
        identityMode: 'cloudOnly',
        entra: { tenantId: randomUUID(), domains: ['x.example'] },
      }),
    });
    expect(response.status).toBe(412);
  });
});

describe('health', () => {
  it('anonymous /health says only whether the instance can serve', async () => {
    const response = await stack.api('/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it("/health/details shows the caller's own sites only", async () => {
    await agent.heartbeat();
    const mine = await waitFor(async () => {
      const report = await json<{
        dependencies: {
          name: string;
          state: string;
          info?: { sites: { siteId: string; state: string }[] };
        }[];
      }>(await stack.api('/health/details', { key: blue }));
      const sites = report.dependencies.find((d) => d.name === 'agentSites');
      return sites?.state === 'ok' ? sites : undefined;
    }, 'blue site healthy');
    expect(mine.info?.sites.map((s) => s.siteId)).toEqual([blueSite]);
    const theirs = await json<{ dependencies: { name: string; state: string; info?: unknown }[] }>(
      await stack.api('/health/details', { key: red }),
    );
    expect(JSON.stringify(theirs)).not.toContain(blueSite);
    expect(theirs.dependencies.find((d) => d.name === 'agentSites')?.state).toBe('notConfigured');
    expect((await stack.api('/health/details')).status).toBe(401);
  });
});

describe('deleting a customer with users', () => {
  it('?force deletes its users through the engine (another provider cannot), then the customer goes', async () => {
    expect((await stack.api('/customers/bluehy?force=true', { method: 'DELETE', key: red })).status).toBe(
      404,
    );
    const forced = await stack.api('/customers/bluehy?force=true', { method: 'DELETE', key: blue });
    expect(forced.status).toBe(202);
    const body = await json<{ operations: { userId: string; operationId: string }[] }>(forced);
    expect(body.operations.map((o) => o.userId)).toEqual(['u-ok']);
    // The same forced DELETE again queues nothing new.
    const again = await json<{ operations: { operationId: string }[] }>(
      await stack.api('/customers/bluehy?force=true', { method: 'DELETE', key: blue }),
    );
    expect(again.operations.map((o) => o.operationId)).toEqual(body.operations.map((o) => o.operationId));
    const operationId = body.operations[0]?.operationId ?? '';
    const done = await waitFor(
      async () => {
        const op = await json<{ state: string }>(
          await stack.api(`/operations/${operationId}`, { key: blue }),
        );
        return ['succeeded', 'failed', 'compensated', 'heldForConfirmation'].includes(op.state)
          ? op
          : undefined;
      },
      'the user delete',
      45_000,
    );
    expect(done.state).toBe('succeeded');
    expect(await adCount('ok@fed.blue.example')).toBe(0);
    expect((await stack.api('/customers/bluehy', { method: 'DELETE', key: blue })).status).toBe(204);
    expect((await stack.api('/customers/bluehy', { key: blue })).status).toBe(404);
  });
});
