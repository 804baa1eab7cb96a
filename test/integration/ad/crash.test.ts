import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EqualityFilter, SubstringFilter, type Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../../../agent/config.js';
import { startAgent } from '../../../agent/runtime.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import type { RelayHub } from '../../../shared/adapters/relay/index.js';
import { createLogger } from '../../../shared/logging.js';
import { sealSecret, type Reply } from '../../../shared/relay-protocol/index.js';
import { agentConfig, newHub, startRelayBus, writeAgentConfig, type RelayBus } from './bus.js';
import { adminClient, siteId, siteKeys, strongPassword } from './support.js';

let dc: SambaPeer;
let bus: RelayBus;
let hub: RelayHub;
let admin: Client;
let configFile: string;
const keys = siteKeys();
const replies = new Map<string, Reply[]>();
const children = new Set<ChildProcess>();

function spawnAgent(): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  // The real entry point, as `npm run agent -- --config FILE` runs it.
  const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: process.env,
  });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function until(condition: () => boolean, timeoutInMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends `count` createUser commands (enabled, with password) without waiting; returns their ids and names. */
async function sendCreates(
  prefix: string,
  count: number,
): Promise<Array<{ commandId: string; sam: string }>> {
  const batch = Array.from({ length: count }, (_, index) => ({
    commandId: `op-${randomUUID()}`,
    sam: `${prefix}${index}`,
  }));
  await Promise.all(
    batch.map(({ commandId, sam }) =>
      hub.send(siteId, commandId, {
        type: 'createUser',
        ou: dc.usersOu,
        sAMAccountName: sam,
        userPrincipalName: `${sam}@atria.test`,
        displayName: sam,
        enabled: true,
        password: sealSecret(strongPassword(), keys.publicKey, { commandId, siteId }),
      }),
    ),
  );
  return batch;
}

const answered = (batch: Array<{ commandId: string }>): number =>
  batch.filter(({ commandId }) => (replies.get(commandId)?.length ?? 0) > 0).length;

async function usersWithPrefix(prefix: string): Promise<Map<string, string>> {
  const { searchEntries } = await admin.search(dc.usersOu, {
    filter: new SubstringFilter({ attribute: 'sAMAccountName', initial: prefix }),
    attributes: ['sAMAccountName', 'objectGUID'],
    explicitBufferAttributes: ['objectGUID'],
  });
  return new Map(
    searchEntries.map((entry) => [
      String(entry['sAMAccountName']),
      (entry['objectGUID'] as Buffer).toString('base64'),
    ]),
  );
}

/** Every command answered ok exactly as often as duplicate detection lets through, each user exactly once. */
async function expectEachAppliedOnce(
  prefix: string,
  batch: Array<{ commandId: string; sam: string }>,
): Promise<void> {
  const users = await usersWithPrefix(prefix);
  expect(users.size).toBe(batch.length);
  for (const { commandId, sam } of batch) {
    const got = replies.get(commandId) ?? [];
    expect(got.length, commandId).toBeGreaterThanOrEqual(1);
    for (const reply of got) {
      expect(reply.ok, JSON.stringify(reply)).toBe(true);
      if (reply.ok)
        expect((reply.result as { user: { objectGuid: string } }).user.objectGuid).toBe(users.get(sam));
    }
  }
  const { searchEntries } = await admin.search(dc.baseDn, {
    filter: new SubstringFilter({ attribute: 'sAMAccountName', initial: prefix }),
    attributes: ['dn'],
  });
  expect(searchEntries).toHaveLength(batch.length);
}

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus()]);
  configFile = writeAgentConfig(
    agentConfig(bus, dc, keys, { maxConcurrentCommands: 4, heartbeatIntervalInMs: 60_000 }),
  );
  hub = newHub(bus, {
    agentKeyFor: () => Promise.resolve(keys.agentPublicKeyPem),
    onUnclaimedReply: async (reply) => {
      replies.set(reply.commandId, [...(replies.get(reply.commandId) ?? []), reply]);
      await Promise.resolve();
    },
  });
  admin = await adminClient(dc);
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await admin?.unbind();
  await hub?.close();
  await bus?.stop();
  await dc?.stop();
});

describe('agent crash and restart', () => {
  it('SIGKILL mid-stream, restart: no command lost, none applied twice', async () => {
    const prefix = `k${Date.now().toString(36).slice(-4)}`;
    const batch = await sendCreates(prefix, 40);
    const first = spawnAgent();
    await until(() => answered(batch) >= 8, 30_000, 'first answers');
    first.child.kill('SIGKILL');
    await first.exited;
    const killedAt = answered(batch);
    expect(killedAt).toBeLessThan(batch.length);
    const second = spawnAgent();
    await until(
      () => answered(batch) === batch.length,
      45_000,
      `all answered after restart\n${second.output()}`,
    );
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    await expectEachAppliedOnce(prefix, batch);
  });

  it('SIGTERM finishes the command in flight, exits 0, and a new agent drains the rest', async () => {
    const prefix = `t${Date.now().toString(36).slice(-4)}`;
    const batch = await sendCreates(prefix, 30);
    const first = spawnAgent();
    await until(() => answered(batch) >= 5, 30_000, 'first answers');
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('agent stopped');
    const second = spawnAgent();
    await until(
      () => answered(batch) === batch.length,
      45_000,
      `all answered after restart\n${second.output()}`,
    );
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    await expectEachAppliedOnce(prefix, batch);
  });
});

describe('losing the domain controller', () => {
  it('a command sent while the only DC is down is executed once it is back', async () => {
    const lines: string[] = [];
    const agent = await startAgent(
      resolveAgentConfig(
        agentConfig(bus, dc, keys, { localAttempts: 2, redeliveryDelayInMs: 500 }),
        process.cwd(),
      ),
      { log: createLogger((_level, record) => lines.push(JSON.stringify(record))) },
    );
    try {
      await dc.pause();
      const directory = hub.directoryFor({
        siteId,
        sitePublicKeyPem: keys.publicKeyPem,
        agentPublicKeyPem: keys.agentPublicKeyPem,
      });
      const sam = `d${Date.now().toString(36).slice(-6)}`;
      const pending = directory.createUser(
        {
          ou: dc.usersOu,
          sAMAccountName: sam,
          userPrincipalName: `${sam}@atria.test`,
          displayName: sam,
          enabled: false,
        },
        { commandId: `op-${randomUUID()}`, timeoutInMs: 40_000 },
      );
      await until(
        () => lines.some((line) => line.includes('abandoning for redelivery')),
        20_000,
        'a transient failure',
      );
      await dc.resume();
      const { user } = await pending;
      await admin.unbind().catch(() => undefined);
      admin = await adminClient(dc); // the old connection died with the DC
      const { searchEntries } = await admin.search(dc.usersOu, {
        filter: new EqualityFilter({ attribute: 'sAMAccountName', value: sam }),
        attributes: ['dn'],
      });
      expect(searchEntries).toHaveLength(1);
      expect(user.sAMAccountName).toBe(sam);
    } finally {
      await dc.resume();
      await agent.stop();
    }
  });
});
