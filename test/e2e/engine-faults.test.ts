import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { Client, EqualityFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunningAgent } from '../../agent/runtime.js';
import { startLocalAgent } from '../../dev/local-agent.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * The operation engine under faults, end to end on the peers: a DC outage during a hybrid batch, an
 * agent that is down while another provider's cloud users must still go through, a hybrid user held for
 * a licence, and messages that can never succeed.
 */
const hybridTenant = randomUUID();
const cloudTenant = randomUUID();
const sku = randomUUID();
const scarceSku = randomUUID();
// A site of this file's own (sites are global names; other files register `demo` in the same storage).
const siteId = 'faults';

/** The dev Service Bus config plus this file's site queue, shaped like `agent-site-demo`. */
function serviceBusConfigWithSite(): string {
  const config = JSON.parse(readFileSync('dev/peers/servicebus/config.json', 'utf8')) as {
    UserConfig: { Namespaces: { Queues: { Name: string }[] }[] };
  };
  const namespace = config.UserConfig.Namespaces[0];
  const demo = namespace?.Queues.find((q) => q.Name === 'agent-site-demo');
  if (namespace === undefined || demo === undefined) throw new Error('dev Service Bus config changed shape');
  namespace.Queues.push({ ...structuredClone(demo), Name: `agent-site-${siteId}` });
  const dir = mkdtempSync(join(tmpdir(), 'engine-faults-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}
const seed = graphSeed({
  id: hybridTenant,
  displayName: 'Contoso',
  domains: [
    { id: 'contoso.example', isDefault: true, authenticationType: 'Managed' },
    { id: 'fed.contoso.example', authenticationType: 'Federated' },
  ],
  skus: [
    { skuId: sku, skuPartNumber: 'ENTERPRISEPACK', enabled: 500 },
    { skuId: scarceSku, skuPartNumber: 'SPE_E5', enabled: 0 },
  ],
});
seed.tenants?.push({
  id: cloudTenant,
  displayName: 'Fabrikam',
  domains: [{ id: 'fabrikam.example', isDefault: true, authenticationType: 'Managed' }],
  skus: [{ skuId: sku, skuPartNumber: 'ENTERPRISEPACK', enabled: 500 }],
});
seed.apps?.[0]?.tenants?.push(cloudTenant);

let dc: SambaPeer;
let stack: TestStack;
let agent: RunningAgent | undefined;
let hybridKey: string;
let cloudKey: string;
let startAgent: () => Promise<RunningAgent>;

type Op = {
  operationId: string;
  state: string;
  error?: { code: string; message: string };
  retries?: number;
  steps: { name: string; state: string; attempts: number }[];
};
const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled', 'needsLicence'];

async function finished(operationId: string, key: string, timeoutInMs = 60_000): Promise<Op> {
  return waitFor(
    async () => {
      const op = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as Op;
      return finalStates.includes(op.state) ? op : undefined;
    },
    `operation ${operationId}`,
    timeoutInMs,
  );
}

async function post(path: string, key: string, body: unknown): Promise<Op> {
  const response = await stack.api(path, { method: 'POST', key, body: JSON.stringify(body) });
  expect(response.status, await response.clone().text()).toBeOneOf([200, 202]);
  return (await response.json()) as Op;
}

const hybridUser = (n: string) => ({
  userId: `h-${n}`,
  userPrincipalName: `h${n}@fed.contoso.example`,
  displayName: `Hybrid ${n}`,
  password: `Str0ng!Passw0rd#${n}`,
  licencePlan: 'E3',
});

async function adUsers(filter: EqualityFilter): Promise<{ dn: string; userAccountControl: string }[]> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: readFileSync(dc.caFile) } });
  try {
    await client.bind(dc.bindDn, dc.password);
    const { searchEntries } = await client.search(dc.baseDn, {
      scope: 'sub',
      filter,
      attributes: ['userAccountControl'],
    });
    return searchEntries.map((e) => ({ dn: e.dn, userAccountControl: String(e.userAccountControl) }));
  } finally {
    await client.unbind();
  }
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
      // Short park and backoff so outages resolve within the test's time.
      Engine__parkTimeoutInMs: '15000',
      Engine__retryBaseDelayInMs: '1000',
      Engine__retryMaxDelayInMs: '8000',
    },
  });
  startAgent = () =>
    startLocalAgent({
      siteId,
      serviceBusConnectionString: stack.serviceBus.connectionString,
      dc,
      signing: { kid: 'e2e-key', publicKeyPem: signing.publicKeyPem },
      sitePrivateKeyPem: site.privateKeyPem,
      agentSigningKeyPem: agentKeys.privateKeyPem,
      heartbeatIntervalInMs: 5000,
      maxConcurrentCommands: 8,
    });
  agent = await startAgent();
  hybridKey = (await stack.deps.callers.createApiKey({ providerId: 'prov-faults', name: 'e2e' })).apiKey;
  cloudKey = (await stack.deps.callers.createApiKey({ providerId: 'prov-faults-cloud', name: 'e2e' })).apiKey;
  const siteResponse = await stack.api(`/sites/${siteId}`, {
    method: 'PUT',
    key: hybridKey,
    body: JSON.stringify({ publicKeyPem: site.publicKeyPem, agentPublicKeyPem: agentKeys.publicKeyPem }),
  });
  expect(siteResponse.status).toBeOneOf([200, 201]);
  const contoso = await stack.api('/customers/contoso', {
    method: 'PUT',
    key: hybridKey,
    body: JSON.stringify({
      displayName: 'Contoso',
      identityMode: 'hybridFederated',
      entra: {
        tenantId: hybridTenant,
        domains: ['contoso.example', 'fed.contoso.example'],
        federatedDomain: 'fed.contoso.example',
      },
      ad: { siteId, usersOu: dc.usersOu, upnSuffixes: ['fed.contoso.example'] },
      defaultUsageLocation: 'NL',
      licencePlans: [
        { name: 'E3', skus: [{ skuId: sku }] },
        { name: 'E5', skus: [{ skuId: scarceSku }] },
      ],
    }),
  });
  expect(contoso.status).toBe(201);
  const fabrikam = await stack.api('/customers/fabrikam', {
    method: 'PUT',
    key: cloudKey,
    body: JSON.stringify({
      displayName: 'Fabrikam',
      identityMode: 'cloudOnly',
      entra: { tenantId: cloudTenant, domains: ['fabrikam.example'] },
      defaultUsageLocation: 'NL',
      licencePlans: [{ name: 'E3', skus: [{ skuId: sku }] }],
    }),
  });
  expect(fabrikam.status).toBe(201);
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await stack?.stop();
  await dc?.stop();
});

describe('the operation engine under faults', () => {
  it('dead-letters a poison message and a permanently invalid one after one delivery, with their reasons', async () => {
    const client = new ServiceBusClient(stack.serviceBus.connectionString);
    try {
      const sender = client.createSender('directory-work');
      await sender.sendMessages({ body: 'not json {', contentType: 'text/plain', messageId: 'poison-1' });
      await sender.sendMessages({
        body: {
          type: 'user.create',
          v: 1,
          providerId: 'prov-faults-cloud',
          customerId: 'nobody-here',
          idempotencyKey: 'invalid-1',
          user: { userId: 'u-x', userPrincipalName: 'x@fabrikam.example', displayName: 'X' },
        },
        messageId: 'invalid-1',
      });
      await sender.sendMessages({
        body: { type: 'operation.run', v: 1, providerId: 'prov-faults-cloud', operationId: 'no-such-op' },
        messageId: 'invalid-2',
      });
      await sender.close();
      const dlq = client.createReceiver('directory-work', { subQueueType: 'deadLetter' });
      const dead: ServiceBusReceivedMessage[] = [];
      const until = Date.now() + 20_000;
      while (dead.length < 3 && Date.now() < until) {
        for (const m of await dlq.receiveMessages(10, { maxWaitTimeInMs: 1000 })) {
          dead.push(m);
          await dlq.completeMessage(m);
        }
      }
      await dlq.close();
      const byId = new Map(dead.map((m) => [m.messageId, m]));
      expect(byId.get('poison-1')?.deadLetterReason).toBe('InvalidJson');
      expect(byId.get('invalid-1')?.deadLetterReason).toBe('RejectedNotFound');
      expect(byId.get('invalid-1')?.deadLetterErrorDescription).toContain('nobody-here');
      expect(byId.get('invalid-2')?.deadLetterReason).toBe('UnknownOperation');
      // One delivery each: dead-lettered at once, never retried to MaxDeliveryCount.
      for (const m of dead) expect(m.deliveryCount, String(m.messageId)).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('creates an enabled hybrid user through the queue, its password dropped first and named by passwordRef', async () => {
    const drop = await stack.api('/customers/contoso/password-drops', {
      method: 'POST',
      key: hybridKey,
      body: JSON.stringify({ password: 'Qu3ued!Passw0rd#1' }),
    });
    expect(drop.status).toBe(201);
    const { passwordRef } = (await drop.json()) as { passwordRef: string };
    const client = new ServiceBusClient(stack.serviceBus.connectionString);
    try {
      const sender = client.createSender('directory-work');
      await sender.sendMessages({
        body: {
          type: 'user.create',
          v: 1,
          providerId: 'prov-faults',
          customerId: 'contoso',
          idempotencyKey: 'queued-1',
          passwordRef,
          user: {
            userId: 'h-queued',
            userPrincipalName: 'hqueued@fed.contoso.example',
            displayName: 'Queued',
          },
        },
        messageId: 'queued-1',
      });
      await sender.close();
    } finally {
      await client.close();
    }
    const user = await waitFor(
      async () => {
        const response = await stack.api('/customers/contoso/users/h-queued', { key: hybridKey });
        if (response.status !== 200) return undefined;
        const body = (await response.json()) as { state: string };
        return body.state === 'active' ? body : undefined;
      },
      'the queued user to be active',
      45_000,
    );
    expect(user.state).toBe('active');
    const [inAd] = await adUsers(
      new EqualityFilter({ attribute: 'userPrincipalName', value: 'hqueued@fed.contoso.example' }),
    );
    expect(Number(inAd?.userAccountControl) & 2).toBe(0); // enabled, so it has its password
  });

  it('keeps a hybrid user held for a licence linked to AD, so disable and delete reach AD', async () => {
    const op = await post('/customers/contoso/users', hybridKey, {
      ...hybridUser('held'),
      licencePlan: 'E5',
    });
    const held = await finished(op.operationId, hybridKey);
    expect(held.state).toBe('needsLicence');
    const user = (await (await stack.api('/customers/contoso/users/h-held', { key: hybridKey })).json()) as {
      state: string;
      ad?: { objectGuid: string };
      entra?: { objectId: string };
    };
    expect(user.state).toBe('needsLicence');
    expect(user.ad?.objectGuid).toBeDefined();
    expect(user.entra?.objectId).toBeDefined();

    const disable = await post('/customers/contoso/users/h-held/disable', hybridKey, {});
    expect(disable.steps.map((s) => s.name)).toEqual(['ad.disable', 'entra.disable']);
    expect((await finished(disable.operationId, hybridKey)).state).toBe('succeeded');
    const [inAd] = await adUsers(
      new EqualityFilter({ attribute: 'userPrincipalName', value: 'hheld@fed.contoso.example' }),
    );
    expect(Number(inAd?.userAccountControl) & 2).toBe(2); // ACCOUNTDISABLE

    const removal = await stack.api('/customers/contoso/users/h-held', { method: 'DELETE', key: hybridKey });
    const deleted = await finished(((await removal.json()) as Op).operationId, hybridKey);
    expect(deleted.state).toBe('succeeded');
    expect(deleted.steps.map((s) => s.name)).toEqual(['entra.delete', 'ad.delete']);
    expect(
      await adUsers(
        new EqualityFilter({ attribute: 'userPrincipalName', value: 'hheld@fed.contoso.example' }),
      ),
    ).toEqual([]);
  });

  it("finishes another provider's cloud-only users in seconds while an agent is down with 64 hybrid users queued", async () => {
    await agent?.stop();
    agent = undefined;
    const hybrid: Op[] = [];
    for (let i = 0; i < 64; i++)
      hybrid.push(await post('/customers/contoso/users', hybridKey, hybridUser(`q${i}`)));
    await waitFor(
      async () => {
        const states = await Promise.all(
          hybrid.map(
            async (h) =>
              ((await (await stack.api(`/operations/${h.operationId}`, { key: hybridKey })).json()) as Op)
                .state,
          ),
        );
        return states.every((s) => s === 'waitingForAgent') ? true : undefined;
      },
      'every hybrid operation parked with the agent',
      30_000,
    );
    const started = Date.now();
    const cloud: Op[] = [];
    for (let i = 0; i < 5; i++)
      cloud.push(
        await post('/customers/fabrikam/users', cloudKey, {
          userId: `c-${i}`,
          userPrincipalName: `c${i}@fabrikam.example`,
          displayName: `Cloud ${i}`,
          licencePlan: 'E3',
        }),
      );
    for (const c of cloud) expect((await finished(c.operationId, cloudKey, 20_000)).state).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(15_000);

    agent = await startAgent();
    for (const h of hybrid)
      expect((await finished(h.operationId, hybridKey, 120_000)).state).toBe('succeeded');
    for (let i = 0; i < 64; i += 16) {
      const found = await adUsers(
        new EqualityFilter({ attribute: 'userPrincipalName', value: `hq${i}@fed.contoso.example` }),
      );
      expect(found).toHaveLength(1);
    }
  }, 240_000);

  it('survives a 75 s DC outage during a hybrid batch: every user succeeds, each created once', async () => {
    const batch: Op[] = [];
    for (let i = 0; i < 4; i++)
      batch.push(await post('/customers/contoso/users', hybridKey, hybridUser(`o${i}`)));
    await dc.pause(); // the DC process is killed mid-batch…
    const down = Date.now();
    for (let i = 4; i < 12; i++)
      batch.push(await post('/customers/contoso/users', hybridKey, hybridUser(`o${i}`)));
    await new Promise((r) => setTimeout(r, 75_000 - (Date.now() - down)));
    await dc.resume(); // …and started again 75 s later
    let retried = 0;
    for (const op of batch) {
      const done = await finished(op.operationId, hybridKey, 150_000);
      expect(done.state, JSON.stringify(done)).toBe('succeeded');
      if ((done.retries ?? 0) > 0 || done.steps.some((s) => s.attempts > 1)) retried++;
    }
    // The outage was seen (the agent answered Unavailable, the saga retried or re-sent), nothing stranded.
    expect(retried).toBeGreaterThanOrEqual(8);
    for (let i = 0; i < 12; i++) {
      const found = await adUsers(
        new EqualityFilter({ attribute: 'userPrincipalName', value: `ho${i}@fed.contoso.example` }),
      );
      expect(found, `ho${i}`).toHaveLength(1);
    }
    const cloud = stack.cloudDirectory(hybridTenant);
    for (let i = 0; i < 12; i++)
      expect(await cloud.findUserByUpn(`ho${i}@fed.contoso.example`)).toBeDefined();
  }, 360_000);
});
