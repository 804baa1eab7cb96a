import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { resolveAgentConfig } from '../../../agent/config.js';
import { startAgent, type RunningAgent } from '../../../agent/runtime.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import { RelayHub, storeBackedReplyStore } from '../../../shared/adapters/relay/index.js';
import { createTableStore } from '../../../shared/adapters/tables/table-store.js';
import { createLogger } from '../../../shared/logging.js';
import { systemClock } from '../../../shared/ports/clock.js';
import type { Reply } from '../../../shared/relay-protocol/index.js';
import { agentConfig, newHub, startRelayBus, type RelayBus } from './bus.js';
import { siteId, siteKeys } from './support.js';

/**
 * Two cloud instances: A sends a command and waits; the reply lands at B's reply receiver (B has no
 * waiter for it). B saves it in the shared reply store and A's call picks it up there — the case of
 * several Functions instances sharing one `agent-replies` queue.
 */
let dc: SambaPeer;
let bus: RelayBus;
let agent: RunningAgent;
let instanceA: RelayHub;
let instanceB: RelayHub;
const unclaimedAtB: Reply[] = [];
const keys = siteKeys();

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus()]);
  agent = await startAgent(resolveAgentConfig(agentConfig(bus, dc, keys), process.cwd()), {
    log: createLogger(() => undefined),
  });
  const replyStore = storeBackedReplyStore(
    createTableStore({ connectionString: inject('storageConnectionString') }),
    systemClock,
  );
  // B owns the only reply receiver; A never receives from the reply queue itself.
  instanceB = newHub(bus, {
    replyStore,
    // B never used the site itself: it finds the registered agent key (composition reads the site row).
    agentKeyFor: () => Promise.resolve(keys.agentPublicKeyPem),
    onUnclaimedReply: (reply) => {
      unclaimedAtB.push(reply);
      return Promise.resolve();
    },
  });
  instanceA = new RelayHub({
    client: bus.cloud,
    signer: bus.signer,
    replyStore,
    replyPollIntervalInMs: 200,
    defaultTimeoutInMs: 20_000,
  });
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await instanceA?.close();
  await instanceB?.close();
  await bus?.stop();
  await dc?.stop();
});

describe('agent replies across instances', () => {
  it("answers a call whose reply reached another instance's receiver", async () => {
    const directory = instanceA.directoryFor({
      siteId,
      sitePublicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    const commandId = randomUUID();
    const { user, replayed } = await directory.createUser(
      {
        ou: dc.usersOu,
        sAMAccountName: 'multi1',
        userPrincipalName: 'multi1@atria.test',
        displayName: 'Multi One',
        enabled: false,
      },
      { commandId },
    );
    expect(replayed).toBe(false);
    expect(user.sAMAccountName).toBe('multi1');
    expect(unclaimedAtB.map((r) => r.commandId)).toContain(commandId);
    // A retry of the same step (e.g. after a crash) is answered from the store without a new command.
    const again = await directory.createUser(
      {
        ou: dc.usersOu,
        sAMAccountName: 'multi1',
        userPrincipalName: 'multi1@atria.test',
        displayName: 'Multi One',
        enabled: false,
      },
      { commandId },
    );
    expect(again.user.objectGuid).toBe(user.objectGuid);
  });

  it('ignores a stored reply whose signature does not match the site agent key', async () => {
    const replyStore = storeBackedReplyStore(
      createTableStore({ connectionString: inject('storageConnectionString') }),
      systemClock,
    );
    const commandId = randomUUID();
    // A forged "reply" planted in the store (e.g. by another site's agent through the shared queue).
    await replyStore.save({
      v: 1,
      type: 'reply',
      commandId,
      siteId,
      ok: false,
      error: { code: 'NotFound', message: 'forged', retryable: false },
    });
    const directory = instanceA.directoryFor({
      siteId,
      sitePublicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    const found = await directory.findUser('sAMAccountName', 'multi1', { commandId });
    expect(found?.sAMAccountName).toBe('multi1'); // the real answer, not the forged NotFound
  });

  it('prunes stored replies once they are older than a day', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const clock = { now: () => now };
    const store = storeBackedReplyStore(
      createTableStore({ connectionString: inject('storageConnectionString') }),
      clock,
    );
    const site = `prune-${randomUUID().slice(0, 8)}`;
    const reply = (commandId: string) => ({
      v: 1 as const,
      type: 'reply' as const,
      commandId,
      siteId: site,
      ok: true as const,
      result: {},
    });
    await store.save(reply('old'));
    now = new Date('2026-01-01T20:00:00Z');
    await store.save(reply('recent'));
    now = new Date('2026-01-02T06:00:00Z');
    expect(await store.prune(site)).toBe(1);
    expect(await store.find(site, 'old')).toBeUndefined();
    expect((await store.find(site, 'recent'))?.commandId).toBe('recent');
  });
});
