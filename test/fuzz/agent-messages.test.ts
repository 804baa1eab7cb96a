import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import {
  agentMessageSchema,
  commandQueueName,
  generateSigningKeyPair,
  generateSiteKeyPair,
  privateKeyFromPem,
  replyQueueName,
  signAgentMessage,
  type AgentMessage,
  type Heartbeat,
  type Reply,
} from '../../shared/relay-protocol/index.js';
import { callApi } from '../support/http.js';
import {
  graphSeed,
  serviceBusConfigWithSite,
  startTestStack,
  waitFor,
  type TestStack,
} from '../support/stack.js';
import { hostileBody, jsonSchemaOf, shortHostileString } from './arbitraries.js';

/**
 * Agent replies and heartbeats on the shared reply queue (issue 19), with no agent running: the test
 * holds the site's agent key and plays the agent. Malformed, unsigned, wrongly signed, tampered and
 * other-site messages are dead-lettered with a reason and change nothing (the parked operation and the
 * site's heartbeat stay as they were); then the genuine reply resumes the operation, and replaying it,
 * or an earlier heartbeat, changes nothing either.
 */
const tenantId = randomUUID();
const run = randomUUID().slice(0, 8);
// A site of this file's own (site ids are global; other files register `demo`).
const siteId = `fz-agent-${run}`;
const otherSiteId = `other-${run}`;
const customerId = `hy-${run}`;
const seed = graphSeed({
  id: tenantId,
  displayName: 'Contoso',
  domains: [
    { id: 'contoso.example', isDefault: true, authenticationType: 'Managed' },
    { id: 'fed.contoso.example', authenticationType: 'Federated' },
  ],
});
const signing = generateSigningKeyPair();
const agentKeys = generateSigningKeyPair();
const otherAgentKeys = generateSigningKeyPair();
const strangerKeys = generateSigningKeyPair();
const agentKey = privateKeyFromPem(agentKeys.privateKeyPem, 'ed25519');
const otherAgentKey = privateKeyFromPem(otherAgentKeys.privateKeyPem, 'ed25519');
const strangerKey = privateKeyFromPem(strangerKeys.privateKeyPem, 'ed25519');

let stack: TestStack;
let client: ServiceBusClient;
const keys = { own: '', other: '' };
let operationId = '';
let commandId = '';

const api = (method: string, path: string, body?: unknown, key = keys.own) =>
  callApi(stack.host.url, key, method, path, body);

const objectGuid = randomBytes(16).toString('base64');
function genuineReply(): Reply {
  return {
    v: 1,
    type: 'reply',
    commandId,
    siteId,
    commandType: 'createUser',
    ok: true,
    result: {
      user: {
        objectGuid,
        dn: `CN=Ada,OU=Users,OU=Atria,DC=atria,DC=test`,
        sAMAccountName: 'ada',
        userPrincipalName: `ada-${run}@fed.contoso.example`,
        displayName: 'Ada',
        enabled: true,
        attributes: {},
        usnChanged: '4242',
      },
      replayed: false,
    },
  };
}

function heartbeat(at: Date, site = siteId): Heartbeat {
  return {
    v: 1,
    type: 'heartbeat',
    siteId: site,
    agentVersion: '0.1.0',
    agentId: 'agent-1',
    dcsReachable: ['ldaps://dc1:636'],
    queueLag: 0,
    at: at.toISOString(),
  };
}

/** Forgeries of a well-formed message: each must be refused. */
function forged(message: AgentMessage): fc.Arbitrary<{ kind: string; body: unknown }> {
  const sign = (m: AgentMessage, key: KeyObject) => signAgentMessage(m, key);
  return fc.oneof(
    fc.constant({ kind: 'unsigned', body: { ...message, signature: undefined } }),
    fc.constant({ kind: 'stranger key', body: sign(message, strangerKey) }),
    fc.constant({ kind: 'other site key', body: sign(message, otherAgentKey) }),
    fc
      .tuple(
        fc.constantFrom(...Object.keys(message).filter((name) => !['v', 'type', 'signature'].includes(name))),
        shortHostileString,
      )
      .map(([field, value]) => {
        const signed = sign(message, agentKey) as Record<string, unknown>;
        const original = signed[field];
        // Changed after signing (to something else of any type): the signature no longer covers it.
        const changed =
          typeof original === 'boolean'
            ? !original
            : typeof original === 'string' && value !== original
              ? value
              : `${JSON.stringify(original)}x`;
        const tampered = { ...signed, [field]: changed };
        return { kind: `tampered ${field}`, body: tampered };
      }),
    fc.stringMatching(/^[A-Za-z0-9_-]{10,90}$/).map((value) => ({
      kind: 'garbage signature',
      body: { ...message, signature: { alg: 'Ed25519', value } },
    })),
  );
}

function hostile(): fc.Arbitrary<{ kind: string; body: unknown }> {
  const schema = jsonSchemaOf(agentMessageSchema);
  return fc.oneof(
    forged(genuineReply()),
    forged(heartbeat(new Date())),
    hostileBody(schema).map(({ mutation, text }) => ({ kind: `text:${mutation}`, body: text })),
    hostileBody(schema).map(({ mutation, text }) => {
      try {
        return { kind: `json:${mutation}`, body: JSON.parse(text) as unknown };
      } catch {
        return { kind: `text:${mutation}`, body: text };
      }
    }),
    fc.uint8Array({ maxLength: 200 }).map((b) => ({ kind: 'bytes', body: Buffer.from(b) })),
  );
}

async function send(body: unknown): Promise<string> {
  const sender = client.createSender(replyQueueName);
  const messageId = randomUUID();
  try {
    await sender.sendMessages({ body, messageId, contentType: 'application/json' });
  } finally {
    await sender.close();
  }
  return messageId;
}

async function deadLetters(): Promise<Map<string, ServiceBusReceivedMessage>> {
  const receiver = client.createReceiver(replyQueueName, {
    subQueueType: 'deadLetter',
    receiveMode: 'receiveAndDelete',
  });
  const out = new Map<string, ServiceBusReceivedMessage>();
  try {
    for (;;) {
      const batch = await receiver.receiveMessages(100, { maxWaitTimeInMs: 400 });
      if (batch.length === 0) break;
      for (const m of batch) out.set(String(m.messageId), m);
    }
  } finally {
    await receiver.close();
  }
  return out;
}

/** Everything a reply or heartbeat could change: the operation, the user, both sites. */
async function state(): Promise<Record<string, unknown>> {
  return {
    operation: (await api('GET', `/operations/${operationId}`)).body,
    user: (await api('GET', `/customers/${customerId}/users/ada-${run}`)).body,
    site: (await api('GET', `/sites/${siteId}`)).body,
    otherSite: (await api('GET', `/sites/${otherSiteId}`, undefined, keys.other)).body,
  };
}

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    serviceBusConfig: serviceBusConfigWithSite(siteId),
    extraSettings: {
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: 'fuzz-key',
      Relay__replyTimeoutInMs: '2000',
    },
  });
  client = new ServiceBusClient(stack.serviceBus.connectionString);
  keys.own = (await stack.deps.callers.createApiKey({ providerId: `fuzza-a-${run}`, name: 'a' })).apiKey;
  keys.other = (await stack.deps.callers.createApiKey({ providerId: `fuzza-b-${run}`, name: 'b' })).apiKey;
  const site = generateSiteKeyPair();
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
      await api(
        'PUT',
        `/sites/${otherSiteId}`,
        { publicKeyPem: generateSiteKeyPair().publicKeyPem, agentPublicKeyPem: otherAgentKeys.publicKeyPem },
        keys.other,
      )
    ).status,
  ).toBe(201);
  expect(
    (
      await api('PUT', `/customers/${customerId}`, {
        displayName: 'Contoso',
        identityMode: 'hybridFederated',
        entra: {
          tenantId,
          domains: ['contoso.example', 'fed.contoso.example'],
          federatedDomain: 'fed.contoso.example',
        },
        ad: { siteId, usersOu: 'OU=Users,OU=Atria,DC=atria,DC=test', upnSuffixes: ['fed.contoso.example'] },
      })
    ).status,
  ).toBe(201);
  const created = await api('POST', `/customers/${customerId}/users`, {
    userId: `ada-${run}`,
    userPrincipalName: `ada-${run}@fed.contoso.example`,
    displayName: 'Ada',
    password: `Pw!${randomUUID()}`,
  });
  expect(created.status).toBe(202);
  operationId = z.object({ operationId: z.string() }).parse(created.body).operationId;
  // The command the agent would execute: its id is what a reply must name.
  const receiver = client.createReceiver(commandQueueName(siteId), { receiveMode: 'receiveAndDelete' });
  try {
    const [command] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 15_000 });
    commandId = z
      .object({ envelope: z.object({ commandId: z.string() }).loose() })
      .loose()
      .parse(command?.body).envelope.commandId;
  } finally {
    await receiver.close();
  }
  await waitFor(async () => {
    const op = await api('GET', `/operations/${operationId}`);
    return JSON.stringify(op.body).includes('waitingForAgent') ? true : undefined;
  }, 'the operation parked for the agent');
}, 60_000);

afterAll(async () => {
  await client?.close();
  await stack?.stop();
});

const counts = new Map<string, number>();

describe('replies and heartbeats that must not count', () => {
  it('are dead-lettered with a reason and change neither the parked operation nor any site', async () => {
    const before = await state();
    await fc.assert(
      fc.asyncProperty(fc.array(hostile(), { minLength: 25, maxLength: 25 }), async (batch) => {
        const sent = new Map<string, string>();
        for (const item of batch) sent.set(await send(item.body), item.kind);
        const letters = new Map<string, ServiceBusReceivedMessage>();
        await waitFor(
          async () => {
            for (const [id, letter] of await deadLetters()) letters.set(id, letter);
            return [...sent.keys()].every((id) => letters.has(id)) ? true : undefined;
          },
          'every forged message dead-lettered',
          20_000,
        ).catch((error: unknown) => {
          const missing = [...sent].filter(([id]) => !letters.has(id)).map(([, kind]) => kind);
          throw new Error(`not dead-lettered: ${missing.join(', ')}`, { cause: error });
        });
        for (const [id, kind] of sent) {
          const letter = letters.get(id);
          expect(letter?.deadLetterReason, kind).toBeTruthy();
          counts.set(
            `${kind} → ${letter?.deadLetterReason ?? ''}`,
            (counts.get(`${kind} → ${letter?.deadLetterReason ?? ''}`) ?? 0) + 1,
          );
        }
        expect(await state()).toEqual(before);
      }),
      { numRuns: 2, endOnFailure: true },
    );
    console.info(`agent message fuzz: ${JSON.stringify(Object.fromEntries([...counts].sort()))}`);
  });
});

describe("another site's agent", () => {
  it("answering this site's command under its own site id changes nothing here", async () => {
    const before = await state();
    const reply = signAgentMessage({ ...genuineReply(), siteId: otherSiteId }, otherAgentKey);
    const failure = signAgentMessage(
      {
        v: 1,
        type: 'reply',
        commandId,
        siteId: otherSiteId,
        ok: false,
        error: { code: 'Conflict', message: 'no', retryable: false },
      },
      otherAgentKey,
    );
    await send(reply);
    await send(failure);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await state()).toEqual(before);
  });
});

describe('genuine messages, then replayed', () => {
  it('the genuine reply resumes the operation; the same reply replayed changes nothing', async () => {
    const reply = signAgentMessage(genuineReply(), agentKey);
    await send(reply);
    const done = await waitFor(
      async () => {
        const op = await api('GET', `/operations/${operationId}`);
        return op.body.state === 'succeeded' && op.body.outcomeApplied === true ? op.body : undefined;
      },
      'the operation to finish after the reply',
      30_000,
    );
    expect(done.state).toBe('succeeded');
    const before = await state();
    for (let i = 0; i < 3; i++) await send(reply);
    // Give the worker time to take them (they are completed or dead-lettered, never applied twice).
    await new Promise((r) => setTimeout(r, 1500));
    expect(await state()).toEqual(before);
  });

  it('a heartbeat counts once; replaying it or an earlier one changes nothing', async () => {
    const earlier = signAgentMessage(heartbeat(new Date(Date.now() - 60_000)), agentKey);
    const later = signAgentMessage(heartbeat(new Date()), agentKey);
    await send(earlier);
    await send(later);
    const lastHeartbeatAt = (body: Record<string, unknown>) =>
      z
        .object({ agent: z.object({ lastHeartbeatAt: z.string().nullable() }).loose() })
        .loose()
        .parse(body).agent.lastHeartbeatAt;
    await waitFor(async () => {
      const site = await api('GET', `/sites/${siteId}`);
      return lastHeartbeatAt(site.body) === later.at ? true : undefined;
    }, 'the later heartbeat recorded');
    const before = await state();
    const replays = [await send(earlier), await send(later)];
    const letters = await waitFor(async () => {
      const found = await deadLetters();
      return replays.every((id) => found.has(id)) ? found : undefined;
    }, 'the replayed heartbeats dead-lettered');
    for (const id of replays) expect(letters.get(id)?.deadLetterReason).toBe('ReplayedHeartbeat');
    expect(await state()).toEqual(before);
  });
});
