import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunningAgent } from '../../agent/runtime.js';
import { startLocalAgent } from '../../dev/local-agent.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import type { CloudDirectory } from '../../shared/ports/cloud-directory.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * The hybrid path end to end: HTTP → Service Bus → worker → relay agent → Samba AD DC, then → Graph
 * peer with onPremisesImmutableId = base64(objectGUID) in a federated domain, then licences.
 */
const tenantId = randomUUID();
const sku = randomUUID();
const siteId = 'demo'; // the peer's config declares agent-site-demo
const seed = graphSeed({
  id: tenantId,
  displayName: 'Contoso',
  domains: [
    { id: 'contoso.example', isDefault: true, authenticationType: 'Managed' },
    { id: 'fed.contoso.example', authenticationType: 'Federated' },
  ],
  skus: [{ skuId: sku, skuPartNumber: 'ENTERPRISEPACK', enabled: 10 }],
});
// A second customer tenant (a tenant belongs to one customer): Tailspin's, for the `both` mode.
const tailspinTenantId = randomUUID();
seed.tenants?.push({
  id: tailspinTenantId,
  displayName: 'Tailspin',
  domains: [{ id: 'tailspin.example', isDefault: true, authenticationType: 'Managed' }],
  skus: [{ skuId: sku, skuPartNumber: 'ENTERPRISEPACK', enabled: 10 }],
});
seed.apps?.[0]?.tenants?.push(tailspinTenantId);

let dc: SambaPeer;
let stack: TestStack;
let agent: RunningAgent;
let key: string;
let cloud: CloudDirectory;
let agentKeys: ReturnType<typeof generateSigningKeyPair>;

type Op = {
  operationId: string;
  state: string;
  steps: { name: string; state: string; attempts: number; error?: { code: string } }[];
};

const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled', 'needsLicence'];

async function finished(operationId: string): Promise<Op> {
  let last: Op | undefined;
  try {
    return await waitFor(
      async () => {
        last = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as Op;
        return finalStates.includes(last.state) ? last : undefined;
      },
      `operation ${operationId}`,
      45_000,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen ${JSON.stringify(last)}`, { cause: error });
  }
}

async function adUser(
  upn: string,
): Promise<{ objectGuid: string; dn: string; userAccountControl: string } | undefined> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: readFileSync(dc.caFile) } });
  try {
    await client.bind(dc.bindDn, dc.password);
    const { searchEntries } = await client.search(dc.baseDn, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'userPrincipalName', value: upn }),
      attributes: ['objectGUID', 'userAccountControl'],
      explicitBufferAttributes: ['objectGUID'],
    });
    const entry = searchEntries[0];
    if (entry === undefined) return undefined;
    return {
      objectGuid: (entry.objectGUID as Buffer).toString('base64'),
      dn: entry.dn,
      userAccountControl: String(entry.userAccountControl),
    };
  } finally {
    await client.unbind();
  }
}

beforeAll(async () => {
  dc = await startSambaPeer();
  const signing = generateSigningKeyPair();
  const site = generateSiteKeyPair();
  agentKeys = generateSigningKeyPair();
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
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
  key = (await stack.deps.callers.createApiKey({ providerId: 'prov-hybrid', name: 'e2e' })).apiKey;
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
      defaultUsageLocation: 'NL',
      licencePlans: [{ name: 'E3', skus: [{ skuId: sku }] }],
    }),
  });
  expect(put.status).toBe(201);
  cloud = stack.cloudDirectory(tenantId);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await stack?.stop();
  await dc?.stop();
});

describe('hybrid federated provisioning end to end', () => {
  it('writes AD first, then Entra with onPremisesImmutableId = base64(objectGUID) and no cloud password, then licences', async () => {
    const response = await stack.api('/customers/contoso/users', {
      method: 'POST',
      key,
      body: JSON.stringify({
        userId: 'h-ada',
        userPrincipalName: 'ada@fed.contoso.example',
        displayName: 'Ada Lovelace',
        givenName: 'Ada',
        surname: 'Lovelace',
        password: 'Str0ng!Passw0rd#1',
        licencePlan: 'E3',
      }),
    });
    expect(response.status).toBe(202);
    const op = await finished(((await response.json()) as Op).operationId);
    expect(op.steps.map((s) => [s.name, s.state])).toEqual([
      ['ad.create', 'done'],
      ['entra.create', 'done'],
      ['licences', 'done'],
    ]);
    expect(op.state).toBe('succeeded');

    const inAd = await adUser('ada@fed.contoso.example');
    expect(inAd).toBeDefined();
    expect(inAd?.userAccountControl).toBe('512'); // enabled, with the password set
    const inEntra = await cloud.getUser('ada@fed.contoso.example');
    expect(inEntra.onPremisesImmutableId).toBe(inAd?.objectGuid);
    expect(inEntra.assignedLicences.map((l) => l.skuId)).toEqual([sku]);

    const record = (await (await stack.api('/customers/contoso/users/h-ada', { key })).json()) as {
      state: string;
      ad: { objectGuid: string; dn: string };
      entra: { objectId: string; onPremisesImmutableId: string };
    };
    expect(record.state).toBe('active');
    expect(record.ad.objectGuid).toBe(inAd?.objectGuid);
    expect(record.entra).toEqual({ objectId: inEntra.id, onPremisesImmutableId: inAd?.objectGuid });
    // The operation never shows the password, sealed or not.
    expect(JSON.stringify(op)).not.toMatch(/Str0ng|sealedPassword/);
  });

  it('resumes after Graph fails between the two directories, without writing AD again', async () => {
    // Graph answers 503 to the next 4 requests: the adapter's retries run out, the delivery fails, the
    // message comes back and the saga resumes at the Entra step.
    await fetch(`${stack.graph.adminUrl}/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ next503Count: 4, retryAfter503InSeconds: 0 }),
    });
    const response = await stack.api('/customers/contoso/users', {
      method: 'POST',
      key,
      body: JSON.stringify({
        userId: 'h-cara',
        userPrincipalName: 'cara@fed.contoso.example',
        displayName: 'Cara',
        password: 'Str0ng!Passw0rd#3',
      }),
    });
    const op = await finished(((await response.json()) as Op).operationId);
    expect(op.state).toBe('succeeded');
    expect(op.steps.map((s) => [s.name, s.state, s.attempts])).toEqual([
      ['ad.create', 'done', 1],
      ['entra.create', 'done', 2],
    ]);
    const inAd = await adUser('cara@fed.contoso.example');
    expect((await cloud.getUser('cara@fed.contoso.example')).onPremisesImmutableId).toBe(inAd?.objectGuid);
  });

  it('undoes the AD account when Entra refuses the user, leaving no half-user', async () => {
    // Someone else already holds this UPN in Entra, so the Entra step fails permanently.
    await cloud.createUser({
      userPrincipalName: 'bob@fed.contoso.example',
      displayName: 'Not ours',
      mailNickname: 'bob',
      onPremisesImmutableId: Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64'),
    });
    const response = await stack.api('/customers/contoso/users', {
      method: 'POST',
      key,
      body: JSON.stringify({
        userId: 'h-bob',
        userPrincipalName: 'bob@fed.contoso.example',
        displayName: 'Bob',
        password: 'Str0ng!Passw0rd#2',
      }),
    });
    const op = await finished(((await response.json()) as Op).operationId);
    expect(op.state, JSON.stringify(op)).toBe('compensated');
    expect(op.steps.find((s) => s.name === 'ad.create')?.state).toBe('compensated');
    expect(op.steps.find((s) => s.name === 'entra.create')?.error?.code).toBe('AlreadyExists');
    expect(await adUser('bob@fed.contoso.example')).toBeUndefined();
  });

  it('shows the agent site with its heartbeat in /api/health/details', async () => {
    await agent.heartbeat();
    const report = await waitFor(async () => {
      const body = (await (await stack.api('/health/details', { key })).json()) as {
        dependencies: {
          name: string;
          state: string;
          info?: { sites: { siteId: string; agentVersion: string | null }[] };
        }[];
      };
      const sites = body.dependencies.find((d) => d.name === 'agentSites');
      return sites?.state === 'ok' ? sites : undefined;
    }, 'a heartbeat');
    expect(report.info?.sites[0]?.siteId).toBe(siteId);
    // The site was registered with the agent's key: the app keeps it to check signed replies.
    expect((await stack.deps.sites.get(siteId)).agentPublicKeyPem).toBe(agentKeys.publicKeyPem);
    expect(typeof report.info?.sites[0]?.agentVersion).toBe('string');
  });

  it('federates the domain to ADFS and the preflight proves every hybrid user is anchored to its objectGUID', async () => {
    const certificate = readFileSync('.local/tls/server.pem', 'utf8');
    const put = await stack.api('/customers/contoso/domains/fed.contoso.example/federation', {
      method: 'PUT',
      key,
      body: JSON.stringify({
        issuerUri: 'http://adfs.contoso.example/adfs/services/trust',
        passiveSignInUri: 'https://adfs.contoso.example/adfs/ls/',
        activeSignInUri: 'https://adfs.contoso.example/adfs/services/trust/2005/usernamemixed',
        metadataExchangeUri: 'https://adfs.contoso.example/adfs/services/trust/mex',
        signingCertificate: certificate,
        federatedIdpMfaBehavior: 'acceptIfMfaDoneByFederatedIdp',
      }),
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({
      issuerUri: 'http://adfs.contoso.example/adfs/services/trust',
      preferredAuthenticationProtocol: 'wsFed',
    });

    const preflight = async () =>
      (await (
        await stack.api('/customers/contoso/domains/fed.contoso.example/federation/preflight', { key })
      ).json()) as {
        ready: boolean;
        verified: boolean;
        federated: boolean;
        usersChecked: number;
        configurationDrift: string[];
        mismatches: { userId: string; expected?: string; actual?: string | null }[];
      };
    const good = await preflight();
    expect(good).toMatchObject({
      verified: true,
      federated: true,
      configurationDrift: [],
      mismatches: [],
      ready: true,
    });
    expect(good.usersChecked).toBeGreaterThanOrEqual(1);

    // Someone rewrites Ada's anchor in Entra: the preflight names her and both values.
    const ada = await cloud.getUser('ada@fed.contoso.example');
    const wrong = Buffer.alloc(16, 7).toString('base64');
    await cloud.updateUser(ada.id, { onPremisesImmutableId: wrong });
    const bad = await preflight();
    expect(bad.ready).toBe(false);
    expect(bad.mismatches).toEqual([
      expect.objectContaining({ userId: 'h-ada', expected: ada.onPremisesImmutableId, actual: wrong }),
    ]);
    await cloud.updateUser(ada.id, { onPremisesImmutableId: ada.onPremisesImmutableId });
    expect((await preflight()).ready).toBe(true);
  });

  it('keeps both directories in step through update, disable, enable, password, licences and delete', async () => {
    const run = async (path: string, method: string, body?: unknown): Promise<Op> => {
      const response = await stack.api(`/customers/contoso/users/h-ada${path}`, {
        method,
        key,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(response.status).toBe(202);
      return finished(((await response.json()) as Op).operationId);
    };
    const upn = 'ada@fed.contoso.example';

    expect((await run('', 'PATCH', { displayName: 'Ada King', department: 'Research' })).state).toBe(
      'succeeded',
    );
    expect((await cloud.getUser(upn)).displayName).toBe('Ada King');

    expect((await run('/disable', 'POST')).state).toBe('succeeded');
    expect((await adUser(upn))?.userAccountControl).toBe('514');
    expect((await cloud.getUser(upn)).accountEnabled).toBe(false);

    expect((await run('/enable', 'POST')).state).toBe('succeeded');
    expect((await adUser(upn))?.userAccountControl).toBe('512');
    expect((await cloud.getUser(upn)).accountEnabled).toBe(true);

    const password = await run('/password', 'POST', { password: 'An0ther!Passw0rd#9' });
    expect(password.steps.map((s) => s.name)).toEqual(['ad.password']); // federated: no cloud password
    const client = new Client({ url: dc.url, tlsOptions: { ca: readFileSync(dc.caFile) } });
    await expect(client.bind(upn, 'An0ther!Passw0rd#9')).resolves.toBeUndefined();
    await client.unbind();

    expect((await run('/licences', 'POST', { licencePlan: null })).state).toBe('succeeded');
    expect((await cloud.getUser(upn)).assignedLicences).toEqual([]);

    const deleted = await run('', 'DELETE');
    expect(deleted.steps.map((s) => [s.name, s.state])).toEqual([
      ['entra.delete', 'done'],
      ['ad.delete', 'done'],
    ]);
    expect(await adUser(upn)).toBeUndefined();
    expect(await cloud.findUserByUpn(upn)).toBeUndefined();
    const record = (await (await stack.api('/customers/contoso/users/h-ada', { key })).json()) as {
      state: string;
    };
    expect(record.state).toBe('deleted');
  });

  it('adOnly writes only to AD, and both writes independent accounts to AD and Entra', async () => {
    const put = (id: string, body: unknown) =>
      stack.api(`/customers/${id}`, { method: 'PUT', key, body: JSON.stringify(body) });
    expect(
      (
        await put('northwind', {
          displayName: 'Northwind',
          identityMode: 'adOnly',
          ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['northwind.example'] },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await put('tailspin', {
          displayName: 'Tailspin',
          identityMode: 'both',
          entra: { tenantId: tailspinTenantId, domains: ['tailspin.example'] },
          ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['tailspin.example'] },
          defaultUsageLocation: 'BE',
          licencePlans: [{ name: 'E3', skus: [{ skuId: sku }] }],
        })
      ).status,
    ).toBe(201);

    const create = async (customer: string, body: unknown): Promise<Op> => {
      const response = await stack.api(`/customers/${customer}/users`, {
        method: 'POST',
        key,
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(202);
      return finished(((await response.json()) as Op).operationId);
    };
    const onlyAd = await create('northwind', {
      userId: 'n-1',
      userPrincipalName: 'nina@northwind.example',
      displayName: 'Nina',
      password: 'N0rthw!nd#Pass1',
    });
    expect(onlyAd.steps.map((s) => [s.name, s.state])).toEqual([['ad.create', 'done']]);
    expect(await adUser('nina@northwind.example')).toBeDefined();
    expect(await cloud.findUserByUpn('nina@northwind.example')).toBeUndefined();

    const inBoth = await create('tailspin', {
      userId: 't-1',
      userPrincipalName: 'tom@tailspin.example',
      displayName: 'Tom',
      password: 'T@ilsp1n#Pass22',
      licencePlan: 'E3',
    });
    expect(inBoth.steps.map((s) => [s.name, s.state])).toEqual([
      ['ad.create', 'done'],
      ['entra.create', 'done'],
      ['licences', 'done'],
    ]);
    expect(await adUser('tom@tailspin.example')).toBeDefined();
    const tom = await stack.cloudDirectory(tailspinTenantId).getUser('tom@tailspin.example');
    expect(tom.onPremisesImmutableId).toBeNull(); // independent accounts: no anchor
    expect(tom.usageLocation).toBe('BE');
    expect(tom.assignedLicences.map((l) => l.skuId)).toEqual([sku]);

    // Validation says exactly what a mode lacks.
    const incomplete = await put('broken', {
      displayName: 'Broken',
      identityMode: 'hybridFederated',
      entra: { tenantId, domains: ['contoso.example'] },
    });
    expect(incomplete.status).toBe(400);
    const problem = (await incomplete.json()) as { errors: { path: string }[] };
    expect(problem.errors.map((e) => e.path).sort()).toEqual(['body.ad', 'body.entra.federatedDomain']);
  });
});
