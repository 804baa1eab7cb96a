import { randomUUID } from 'node:crypto';
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { Attribute, Change, EqualityFilter, type Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../../../agent/config.js';
import { startAgent, type RunningAgent } from '../../../agent/runtime.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import type { RelayHub } from '../../../shared/adapters/relay/index.js';
import { AppError } from '../../../shared/errors.js';
import { createLogger } from '../../../shared/logging.js';
import type { OnPremDirectory } from '../../../shared/ports/on-prem-directory.js';
import {
  generateSigningKeyPair,
  newEnvelope,
  privateKeyFromPem,
  signAgentMessage,
  signCommand,
  type Heartbeat,
  type Reply,
} from '../../../shared/relay-protocol/index.js';
import { agentConfig, newHub, startRelayBus, type RelayBus } from './bus.js';
import { adminClient, canBind, siteId, siteKeys, strongPassword } from './support.js';

let dc: SambaPeer;
let bus: RelayBus;
let agent: RunningAgent;
let hub: RelayHub;
let directory: OnPremDirectory;
let admin: Client;
const keys = siteKeys();
const unclaimed: Reply[] = [];
const heartbeats: Heartbeat[] = [];
const logLines: string[] = [];
let n = 0;
const sam = (): string => `b${Date.now().toString(36).slice(-5)}${n++}`;
const id = (): string => `op-${randomUUID()}`;

async function rejects(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a rejection');
}

async function waitFor<T>(probe: () => T | undefined, timeoutInMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutInMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function deadLetters(): Promise<ServiceBusReceivedMessage[]> {
  const receiver = bus.cloud.createReceiver(`agent-site-${siteId}`, {
    subQueueType: 'deadLetter',
    receiveMode: 'receiveAndDelete',
  });
  const messages = await receiver.receiveMessages(20, { maxWaitTimeInMs: 1500 });
  await receiver.close();
  return messages;
}

async function countBySam(value: string): Promise<number> {
  const { searchEntries } = await admin.search(dc.baseDn, {
    filter: new EqualityFilter({ attribute: 'sAMAccountName', value }),
    attributes: ['dn'],
  });
  return searchEntries.length;
}

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus([siteId, 'site-idle'])]);
  const config = resolveAgentConfig(
    // The first DC URL points at an address where nothing listens: the agent fails over to the real DC.
    agentConfig(bus, dc, keys, {
      urls: ['ldaps://127.0.0.1:1', dc.url],
      heartbeatIntervalInMs: 1000,
    }),
    process.cwd(),
  );
  agent = await startAgent(config, {
    log: createLogger((_level, record) => logLines.push(JSON.stringify(record))),
  });
  hub = newHub(bus, {
    onUnclaimedReply: async (reply) => {
      unclaimed.push(reply);
      await Promise.resolve();
    },
    onHeartbeat: async (heartbeat) => {
      heartbeats.push(heartbeat);
      await Promise.resolve();
    },
  });
  directory = hub.directoryFor({
    siteId,
    sitePublicKeyPem: keys.publicKeyPem,
    agentPublicKeyPem: keys.agentPublicKeyPem,
  });
  admin = await adminClient(dc);
});

afterAll(async () => {
  await admin?.unbind();
  await hub?.close();
  await agent?.stop();
  await bus?.stop();
  await dc?.stop();
});

describe('adapter → Service Bus → agent → DC', () => {
  it('runs every command through the bus with typed results', async () => {
    const name = sam();
    const password = strongPassword();
    const { user, replayed } = await directory.createUser(
      {
        ou: dc.usersOu,
        sAMAccountName: name,
        userPrincipalName: `${name}@atria.test`,
        displayName: `Bus ${name}`,
        givenName: 'Bus',
        sn: name,
        password,
        enabled: true,
        attributes: { department: 'Ops' },
      },
      { commandId: id() },
    );
    expect(replayed).toBe(false);
    expect(user.consistencyGuid).toBeUndefined(); // not stamped by default (agent config)
    expect(user.attributes['department']).toBe('Ops');
    expect(await canBind(dc, `${name}@atria.test`, password)).toBe(true);
    const ref = { objectGuid: user.objectGuid };

    expect(
      (await directory.findUser('userPrincipalName', `${name}@atria.test`, { commandId: id() }))?.objectGuid,
    ).toBe(user.objectGuid);
    expect(
      (await directory.updateAttributes(ref, { title: 'Boss' }, { commandId: id() })).attributes['title'],
    ).toBe('Boss');
    expect((await directory.disable(ref, { commandId: id() })).enabled).toBe(false);
    expect((await directory.enable(ref, { commandId: id() })).enabled).toBe(true);
    const next = strongPassword();
    await directory.resetPassword(ref, next, { commandId: id() });
    expect(await canBind(dc, `${name}@atria.test`, next)).toBe(true);
    // Membership writes travel as operation commands (groups e2e); the read lists a group, page by page.
    const group = { dn: `CN=Sales,${dc.groupsOu}` };
    await admin.modify(
      group.dn,
      new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [user.dn] }) }),
    );
    const listed = await directory.listGroupMembers(group, { commandId: id(), pageSize: 1 });
    expect(listed.group.dn).toBe(group.dn);
    expect(listed.members).toContainEqual({
      objectGuid: user.objectGuid,
      dn: user.dn,
      kind: 'user',
      enabled: true,
      memberOf: [listed.group.objectGuid],
    });
    const moved = await directory.move(ref, dc.atriaOu, { commandId: id() });
    expect(moved.dn).toBe(`CN=Bus ${name},${dc.atriaOu}`);
    const changes = await directory.listChanges(undefined, { commandId: id() });
    expect(changes.changes.some((change) => change.objectGuid === user.objectGuid)).toBe(true);
    expect(await directory.delete(ref, { commandId: id() })).toEqual({ alreadyAbsent: false });
    expect(await directory.delete(ref, { commandId: id() })).toEqual({ alreadyAbsent: true });
    expect(await directory.findUser('objectGuid', user.objectGuid, { commandId: id() })).toBeNull();
  });

  it('a call retried with the same commandId gets the first answer, not a second user', async () => {
    const name = sam();
    const commandId = id();
    const input = {
      ou: dc.usersOu,
      sAMAccountName: name,
      userPrincipalName: `${name}@atria.test`,
      displayName: name,
      enabled: false,
    };
    const first = await directory.createUser(input, { commandId });
    const second = await directory.createUser(input, { commandId });
    expect(second.user.objectGuid).toBe(first.user.objectGuid);
    expect(await countBySam(name)).toBe(1);
  });

  it('maps agent failures to typed errors: PasswordPolicy, AlreadyExists, OutOfScope, NotFound', async () => {
    const name = sam();
    const base = {
      ou: dc.usersOu,
      sAMAccountName: name,
      userPrincipalName: `${name}@atria.test`,
      displayName: name,
    };
    const weak = await rejects(
      directory.createUser({ ...base, password: 'weak', enabled: true }, { commandId: id() }),
    );
    expect(weak.code).toBe('PasswordPolicy');
    expect(weak.retryable).toBe(false);
    await directory.createUser({ ...base, enabled: false }, { commandId: id() });
    const duplicate = await rejects(
      directory.createUser({ ...base, cn: `${name}2`, enabled: false }, { commandId: id() }),
    );
    expect(duplicate.code).toBe('AlreadyExists');
    const outside = await rejects(directory.disable({ dn: dc.bindDn }, { commandId: id() }));
    expect(outside.code).toBe('OutOfScope');
    const missing = await rejects(
      directory.disable({ objectGuid: Buffer.alloc(16, 9).toString('base64') }, { commandId: id() }),
    );
    expect(missing.code).toBe('NotFound');
  });

  it('a site whose agent does not answer is a retryable Timeout', async () => {
    const idle = hub.directoryFor({
      siteId: 'site-idle',
      sitePublicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    const started = Date.now();
    const error = await rejects(
      idle.findUser('sAMAccountName', 'nobody', { commandId: id(), timeoutInMs: 800 }),
    );
    expect(error.code).toBe('Timeout');
    expect(error.retryable).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('an expired command is answered Expired and not executed', async () => {
    const past = newHub(bus, {
      clock: { now: () => new Date(Date.now() - 3 * 3600_000) },
      commandLifetimeInMs: 3600_000,
    });
    const name = sam();
    const error = await rejects(
      past
        .directoryFor({
          siteId,
          sitePublicKeyPem: keys.publicKeyPem,
          agentPublicKeyPem: keys.agentPublicKeyPem,
        })
        .createUser(
          {
            ou: dc.usersOu,
            sAMAccountName: name,
            userPrincipalName: `${name}@atria.test`,
            displayName: name,
            enabled: false,
          },
          { commandId: id() },
        ),
    );
    await past.close();
    expect(error.code).toBe('Expired');
    expect(await countBySam(name)).toBe(0);
  });

  it('sends heartbeats with the reachable DCs', async () => {
    const beat = await waitFor(() => heartbeats.find((heartbeat) => heartbeat.dcsReachable.includes(dc.url)));
    expect(beat.siteId).toBe(siteId);
    expect(beat.dcsReachable).not.toContain('ldaps://127.0.0.1:1');
    expect(beat.queueLag).toBeGreaterThanOrEqual(0);
  });

  it('never logs a password', async () => {
    const password = `Secret-${randomUUID()}`;
    const name = sam();
    await directory.createUser(
      {
        ou: dc.usersOu,
        sAMAccountName: name,
        userPrincipalName: `${name}@atria.test`,
        displayName: name,
        password,
        enabled: true,
      },
      { commandId: id() },
    );
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(password);
  });
});

describe('attacks on the command queue', () => {
  async function sendRaw(body: unknown, messageId: string = randomUUID()): Promise<void> {
    const sender = bus.cloud.createSender(`agent-site-${siteId}`);
    await sender.sendMessages({ body, messageId, contentType: 'application/json' });
    await sender.close();
  }

  function createCommand(name: string, site = siteId) {
    return newEnvelope({
      commandId: id(),
      siteId: site,
      now: new Date(),
      command: {
        type: 'createUser',
        ou: dc.usersOu,
        sAMAccountName: name,
        userPrincipalName: `${name}@atria.test`,
        displayName: name,
        enabled: false,
      },
    });
  }

  it('dead-letters unsigned, tampered, foreign-key and other-site commands without touching AD', async () => {
    const names = [sam(), sam(), sam(), sam()];
    const [unsignedName, tamperedName, foreignName, otherSiteName] = names as [
      string,
      string,
      string,
      string,
    ];
    await sendRaw({ v: 1, envelope: createCommand(unsignedName) });
    const tampered = signCommand(createCommand('innocent'), bus.signer);
    (tampered.envelope as { command: { sAMAccountName: string } }).command.sAMAccountName = tamperedName;
    await sendRaw(tampered);
    const attacker = generateSigningKeyPair();
    await sendRaw(
      signCommand(createCommand(foreignName), {
        privateKey: privateKeyFromPem(attacker.privateKeyPem, 'ed25519'),
        kid: bus.signer.kid,
      }),
    );
    await sendRaw(signCommand(createCommand(otherSiteName, 'site-other'), bus.signer));
    await sendRaw('not json at all');
    const dead: ServiceBusReceivedMessage[] = [];
    const deadline = Date.now() + 15_000;
    while (dead.length < 5 && Date.now() < deadline) dead.push(...(await deadLetters()));
    expect(dead.map((message) => message.deadLetterReason).sort()).toEqual([
      'BadSignature',
      'BadSignature',
      'BadSignature',
      'BadSignature',
      'OutOfScope',
    ]);
    for (const name of names) expect(await countBySam(name)).toBe(0);
  });

  it('refuses a replay of an answered command', async () => {
    const name = sam();
    const signed = signCommand(createCommand(name), bus.signer);
    const commandId = (signed.envelope as { commandId: string }).commandId;
    await sendRaw(signed, `first-${commandId}`);
    const reply = await waitFor(() => unclaimed.find((candidate) => candidate.commandId === commandId));
    expect(reply.ok).toBe(true);
    // The attacker copies the message under a new messageId (dodging duplicate detection).
    await sendRaw(signed, `replay-${commandId}`);
    const dead: ServiceBusReceivedMessage[] = [];
    const deadline = Date.now() + 10_000;
    while (dead.length === 0 && Date.now() < deadline) dead.push(...(await deadLetters()));
    expect(dead.map((message) => message.deadLetterReason)).toEqual(['Replayed']);
    expect(unclaimed.filter((candidate) => candidate.commandId === commandId)).toHaveLength(1);
    expect(await countBySam(name)).toBe(1);
  });
});

describe('forged replies', () => {
  it("one site's agent cannot answer for another site: unsigned or wrongly signed replies are dropped", async () => {
    const idleKeys = siteKeys();
    const idle = hub.directoryFor({
      siteId: 'site-idle',
      sitePublicKeyPem: idleKeys.publicKeyPem,
      agentPublicKeyPem: idleKeys.agentPublicKeyPem,
    });
    const commandId = id();
    const pending = rejects(idle.findUser('sAMAccountName', 'victim', { commandId, timeoutInMs: 3000 }));
    // site-test's agent key may Send to agent-replies; it forges an answer for site-idle's command.
    const forger = new ServiceBusClient(bus.agentConnectionString);
    const sender = forger.createSender('agent-replies');
    const forged: Reply = {
      v: 1,
      type: 'reply',
      commandId,
      siteId: 'site-idle',
      ok: true,
      result: { user: null },
    };
    await sender.sendMessages({ body: forged, messageId: randomUUID() });
    await sender.sendMessages({
      body: signAgentMessage(forged, privateKeyFromPem(keys.agentPrivateKeyPem, 'ed25519')),
      messageId: randomUUID(),
    });
    await forger.close();
    const error = await pending;
    expect(error.code).toBe('Timeout');
    expect(await hub.handleAgentMessage(forged)).toBe('invalid');
    const genuine = signAgentMessage(forged, privateKeyFromPem(idleKeys.agentPrivateKeyPem, 'ed25519'));
    expect(await hub.handleAgentMessage(genuine)).toBe('unclaimed');
  });
});

describe('per-site credentials', () => {
  it('the agent key can only Listen on its queue and Send to the reply queue', async () => {
    const client = new ServiceBusClient(bus.agentConnectionString, {
      retryOptions: { maxRetries: 0, timeoutInMs: 5000 },
    });
    try {
      const replies = client.createSender('agent-replies');
      await replies.sendMessages({ body: { probe: true }, messageId: randomUUID() });
      await replies.close();
      const forbidden = async (work: () => Promise<unknown>): Promise<void> => {
        await expect(work()).rejects.toThrow(/unauthori|denied|claim|401|403|InvalidSignature/i);
      };
      await forbidden(async () => {
        const sender = client.createSender(`agent-site-${siteId}`);
        await sender.sendMessages({ body: 'forged', messageId: randomUUID() });
      });
      await forbidden(async () => {
        const sender = client.createSender('directory-work');
        await sender.sendMessages({ body: 'x', messageId: randomUUID() });
      });
      await forbidden(async () => {
        const receiver = client.createReceiver('agent-replies');
        await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 });
      });
      await forbidden(async () => {
        const receiver = client.createReceiver('directory-work');
        await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 });
      });
    } finally {
      await client.close();
    }
  });
});
