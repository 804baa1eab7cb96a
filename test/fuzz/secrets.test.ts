import { randomBytes, randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { z } from 'zod';
import type { RunningAgent } from '../../agent/runtime.js';
import { startLocalAgent } from '../../dev/local-agent.js';
import { startPartnerCenterPeer, type PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import { createLogger } from '../../shared/logging.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { demoCatalog } from '../integration/partner-center/stack.js';
import { callApi } from '../support/http.js';
import { scanForSecrets } from '../support/secrets-scan.js';
import {
  graphSeed,
  serviceBusConfigWithSite,
  startTestStack,
  waitFor,
  type TestStack,
} from '../support/stack.js';

/**
 * No secret in clear in any log line or stored row (issue 19): a real run with every kind of secret the
 * engine handles — API keys, the Graph/Partner Center client secret, the Service Bus SAS key, the relay
 * keys, an AD password through the agent, a cloud temporary password, a new tenant's admin password
 * from Partner Center — with every log line captured (the app's logger, the agent's, and the console
 * where InvocationContext logs go), then the whole storage account scanned.
 */
const connectionString = inject('storageConnectionString');
const run = randomUUID().slice(0, 8);
// A site of this file's own (site ids are global; other files register `demo`).
const siteId = `fz-sec-${run}`;
const hybridTenant = randomUUID();
const cloudTenant = randomUUID();
const sku = randomUUID();
const prefix = `sec${run}`;
const seed = graphSeed({
  id: hybridTenant,
  displayName: 'Contoso',
  domains: [
    { id: 'contoso.example', isDefault: true, authenticationType: 'Managed' },
    { id: 'fed.contoso.example', authenticationType: 'Federated' },
  ],
  skus: [{ skuId: sku, skuPartNumber: 'ENTERPRISEPACK', enabled: 10 }],
});
seed.tenants?.push({
  id: cloudTenant,
  displayName: 'Tailspin',
  domains: [{ id: 'tailspin.example', isDefault: true, authenticationType: 'Managed' }],
});
seed.apps?.[0]?.tenants?.push(cloudTenant);
const partnerApp = seed.apps?.[0];

const logLines: string[] = [];
const capture = (level: string, record: Record<string, unknown>): void => {
  logLines.push(JSON.stringify({ level, ...record }));
};
const log = createLogger(capture, { level: 'debug' });

let dc: SambaPeer;
let stack: TestStack;
let agent: RunningAgent;
let partnerCenter: PartnerCenterPeer | undefined;
const signing = generateSigningKeyPair();
const site = generateSiteKeyPair();
const agentKeys = generateSigningKeyPair();
const keys = { blue: '', red: '' };
const provider = `prov-sec-${run}`;

const operationSchema = z.object({ operationId: z.string(), state: z.string() }).loose();
const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled', 'needsLicence'];

async function finished(operationId: string): Promise<string> {
  return waitFor(
    async () => {
      const op = await callApi(stack.host.url, keys.blue, 'GET', `/operations/${operationId}`);
      const state = operationSchema.parse(op.body).state;
      return finalStates.includes(state) ? state : undefined;
    },
    `operation ${operationId}`,
    45_000,
  );
}

/** The base64 body of a PEM, as it would appear if a key leaked without its armour. */
function pemBody(pem: string): string {
  return pem
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('-----'))
    .join('');
}

beforeAll(async () => {
  // InvocationContext's default log handler writes to the console: that is the Functions log stream.
  for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const)
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      logLines.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    });
  if (partnerApp?.clientSecret === undefined) throw new Error('seed has no app');
  const app = { clientId: partnerApp.clientId, clientSecret: partnerApp.clientSecret };
  dc = await startSambaPeer();
  stack = await startTestStack({
    storageConnectionString: connectionString,
    graphSeed: seed,
    serviceBusConfig: serviceBusConfigWithSite(siteId),
    log,
    extraSettings: {
      LOG_LEVEL: 'debug',
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: 'sec-key',
      Relay__replyTimeoutInMs: '20000',
    },
    settingsFromPeers: async ({ graph }) => {
      partnerCenter = await startPartnerCenterPeer({
        seed: {
          clock: { start: new Date().toISOString(), frozen: true },
          partners: [
            {
              tenantId: partnerApp.homeTenantId,
              name: 'Blue Partner',
              apps: [{ ...app, graphRoles: partnerApp.roles ?? [] }],
            },
          ],
          catalog: demoCatalog,
        },
        identity: { authorityHost: graph.authorityHost },
        graphAdminUrl: graph.adminUrl,
        log: (line) => logLines.push(String(line)),
      });
      return {
        PartnerCenter__baseUrl: partnerCenter.baseUrl,
        PartnerCenter__tenantId: partnerApp.homeTenantId,
        PartnerCenter__clientId: app.clientId,
        PartnerCenter__clientSecret: app.clientSecret,
        PartnerCenter__providerId: provider,
        PartnerCenter__pollAttempts: '1',
        PartnerCenter__pollBaseDelayInMs: '10',
      };
    },
  });
  agent = await startLocalAgent({
    siteId,
    serviceBusConnectionString: stack.serviceBus.connectionString,
    dc,
    signing: { kid: 'sec-key', publicKeyPem: signing.publicKeyPem },
    sitePrivateKeyPem: site.privateKeyPem,
    agentSigningKeyPem: agentKeys.privateKeyPem,
    heartbeatIntervalInMs: 1000,
    log: createLogger(capture, { level: 'debug', props: { component: 'agent' } }),
  });
  keys.blue = (await stack.deps.callers.createApiKey({ providerId: provider, name: 'blue' })).apiKey;
  keys.red = (await stack.deps.callers.createApiKey({ providerId: `${provider}-red`, name: 'red' })).apiKey;
}, 120_000);

afterAll(async () => {
  vi.restoreAllMocks();
  await agent?.stop();
  await stack?.stop();
  await partnerCenter?.stop();
  await dc?.stop();
});

describe('scanForSecrets', () => {
  it('finds a planted secret in a log line and in a stored row, in clear and encoded, and names where', async () => {
    const planted = `planted-${randomBytes(12).toString('hex')}`;
    const other = `never-${randomBytes(12).toString('hex')}`;
    const table = TableClient.fromConnectionString(connectionString, `plant${run}`, {
      allowInsecureConnection: true,
    });
    await table.createTable();
    // Split over two chunks the way the Table store splits a long value: found in the joined text.
    const encoded = Buffer.from(planted).toString('base64');
    await table.createEntity({
      partitionKey: 'p',
      rowKey: 'r',
      d0: `{"x":"${encoded.slice(0, 10)}`,
      d1: `${encoded.slice(10)}"}`,
    });
    await table.createEntity({ partitionKey: 'p', rowKey: 'r2', note: `a=${encodeURIComponent(planted)}` });
    try {
      const findings = await scanForSecrets({
        logLines: ['nothing here', `token ${planted} leaked`, Buffer.from(planted).toString('base64url')],
        storageConnectionString: connectionString,
        secrets: [other, planted],
      });
      expect(findings).toEqual(
        expect.arrayContaining([
          { where: 'log[1]', secretIndex: 1 },
          { where: 'log[2]', secretIndex: 1 },
          { where: `table:plant${run}/p/r/d*`, secretIndex: 1 },
          { where: `table:plant${run}/p/r2/note`, secretIndex: 1 },
        ]),
      );
      expect(findings.filter((f) => f.secretIndex === 0)).toEqual([]);
    } finally {
      await table.deleteTable();
    }
  });

  it('refuses a secret so short it would match by chance', async () => {
    await expect(
      scanForSecrets({ logLines: [], storageConnectionString: connectionString, secrets: ['abc'] }),
    ).rejects.toThrow(/shorter than/);
  });
});

describe('a provisioning run with every kind of secret', () => {
  it('leaves no password, API key, client secret, SAS key or private key in any log line or stored row', async () => {
    const api = (method: string, path: string, body?: unknown, key = keys.blue) =>
      callApi(stack.host.url, key, method, path, body);
    const hybridPassword = `Hy!${randomBytes(9).toString('base64url')}9a`;
    const temporaryPassword = `Tm!${randomBytes(9).toString('base64url')}7b`;

    expect(
      (
        await api('PUT', `/sites/${siteId}`, {
          publicKeyPem: site.publicKeyPem,
          agentPublicKeyPem: agentKeys.publicKeyPem,
        })
      ).status,
    ).toBeOneOf([200, 201]);
    expect(
      (
        await api('PUT', '/customers/contoso', {
          displayName: 'Contoso',
          identityMode: 'hybridFederated',
          entra: {
            tenantId: hybridTenant,
            domains: ['contoso.example', 'fed.contoso.example'],
            federatedDomain: 'fed.contoso.example',
          },
          ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['fed.contoso.example'] },
          defaultUsageLocation: 'NL',
          licencePlans: [{ name: 'E3', skus: [{ skuId: sku }] }],
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await api('PUT', '/customers/tailspin', {
          displayName: 'Tailspin',
          identityMode: 'cloudOnly',
          entra: { tenantId: cloudTenant, domains: ['tailspin.example'] },
          defaultUsageLocation: 'NL',
        })
      ).status,
    ).toBe(201);

    // Hybrid: the password travels sealed to the agent, which sets it in AD.
    const hybrid = await api('POST', '/customers/contoso/users', {
      userId: 'sec-ada',
      userPrincipalName: `ada-${run}@fed.contoso.example`,
      displayName: 'Ada Lovelace',
      password: hybridPassword,
      licencePlan: 'E3',
    });
    expect(hybrid.status).toBe(202);
    expect(await finished(operationSchema.parse(hybrid.body).operationId)).toBe('succeeded');

    // Cloud: created with a random password, then given a temporary one to change at next sign-in.
    const cloud = await api('POST', '/customers/tailspin/users', {
      userId: 'sec-bob',
      userPrincipalName: `bob-${run}@tailspin.example`,
      displayName: 'Bob',
    });
    expect(cloud.status).toBe(202);
    expect(await finished(operationSchema.parse(cloud.body).operationId)).toBe('succeeded');
    const reset = await api('POST', '/customers/tailspin/users/sec-bob/password', {
      password: temporaryPassword,
      forceChangePasswordNextSignIn: true,
    });
    expect(reset.status).toBe(202);
    expect(await finished(operationSchema.parse(reset.body).operationId)).toBe('succeeded');

    // Partner Center: a new tenant, whose admin password Partner Center hands back once.
    const tenant = await api('POST', '/tenants', {
      customerId: 'fabrikam',
      customer: { displayName: 'Fabrikam', identityMode: 'cloudOnly', defaultUsageLocation: 'US' },
      domainPrefix: prefix,
      companyName: 'Fabrikam',
      email: `owner@${prefix}.example`,
      address: {
        country: 'US',
        city: 'Redmond',
        state: 'WA',
        addressLine1: '1 Microsoft Way',
        postalCode: '98052',
      },
      agreement: { firstName: 'Ana', lastName: 'Bell', email: 'ana@fabrikam.example' },
    });
    expect(tenant.status).toBeOneOf([200, 202]);
    const tenantOperation = operationSchema.parse(tenant.body);
    expect(
      await waitFor(
        async () => {
          const op = await api('GET', `/commerce-operations/${tenantOperation.operationId}`);
          const state = operationSchema.parse(op.body).state;
          return finalStates.includes(state) ? state : undefined;
        },
        'the tenant operation',
        30_000,
      ),
    ).toBe('succeeded');
    // A caller's mistakes are logged too: another provider's key, and a malformed key.
    expect((await api('GET', '/customers/contoso', undefined, keys.red)).status).toBe(404);
    expect((await api('GET', '/customers', undefined, `${keys.blue}x`)).status).toBe(401);
    // Read the admin password last: it is deleted once handed out, so it must not be anywhere before.
    const credentials = await api('POST', '/customers/fabrikam/tenant/admin-credentials', {
      operationId: tenantOperation.operationId,
    });
    expect(credentials.status).toBe(200);
    const adminPassword = z.object({ password: z.string().min(8) }).parse(credentials.body).password;

    const sasKey = /SharedAccessKey=([^;]+)/.exec(stack.serviceBus.connectionString)?.[1];
    expect(sasKey).toBeDefined();
    const secrets: Record<string, string> = {
      hybridPassword,
      temporaryPassword,
      adminPassword,
      apiKeyBlue: keys.blue,
      apiKeyRed: keys.red,
      // Only the secret part of an API key (`atr_<keyId>_<secret>`) is a secret; the key id is printed.
      apiKeyBlueSecret: keys.blue.split('_').slice(2).join('_'),
      clientSecret: stack.graphApp.clientSecret,
      serviceBusSasKey: sasKey ?? '',
      dcPassword: dc.password,
      cloudSigningKey: pemBody(signing.privateKeyPem),
      sitePrivateKey: pemBody(site.privateKeyPem),
      agentSigningKey: pemBody(agentKeys.privateKeyPem),
    };
    const names = Object.keys(secrets);
    // The log covers each part of the run (a scan of nothing would prove nothing).
    for (const part of ['command answered', 'users-password', 'tenant-create', 'request failed'])
      expect(logLines.some((line) => line.includes(part))).toBe(true);
    const findings = await scanForSecrets({
      logLines,
      storageConnectionString: connectionString,
      secrets: Object.values(secrets),
    });
    expect(findings.map((f) => `${names[f.secretIndex] ?? '?'} in ${f.where}`)).toEqual([]);
  });
});
