import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { SubstringFilter, type Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import type { RelayHub } from '../../../shared/adapters/relay/index.js';
import { sealSecret, type Reply } from '../../../shared/relay-protocol/index.js';
import { agentConfig, newHub, startRelayBus, writeAgentConfig, type RelayBus } from './bus.js';
import { adminClient, siteId, siteKeys, strongPassword } from './support.js';

/**
 * Two agents on one site, as a customer runs them for failover: both consume agent-site-<site>, each
 * with its own replay journal (in memory here, so neither knows what the other did). One is killed
 * with SIGKILL mid-stream; the commands it held locked are redelivered to the survivor. Every user
 * exists exactly once and every reply names the same objectGUID: the agent's AD stamp makes a
 * redelivered create idempotent even on an agent that never saw it.
 */
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

async function until(condition: () => boolean, timeoutInMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const answered = (batch: Array<{ commandId: string }>): number =>
  batch.filter(({ commandId }) => (replies.get(commandId)?.length ?? 0) > 0).length;
const answeredBy = (output: string): number => (output.match(/"message":"command answered"/g) ?? []).length;

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus()]);
  configFile = writeAgentConfig(agentConfig(bus, dc, keys, { maxConcurrentCommands: 4 }));
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

describe('several agents per site', () => {
  it('two agents share the queue; one is killed mid-stream; every command is applied exactly once', async () => {
    const prefix = `m${Date.now().toString(36).slice(-4)}`;
    const batch = Array.from({ length: 40 }, (_, index) => ({
      commandId: `op-${randomUUID()}`,
      sam: `${prefix}${index}`,
    }));
    const a = spawnAgent();
    const b = spawnAgent();
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
    // Both take work before one of them dies.
    await until(
      () => answeredBy(a.output()) >= 3 && answeredBy(b.output()) >= 3,
      30_000,
      () => `both agents answering\nA:\n${a.output()}\nB:\n${b.output()}`,
    );
    a.child.kill('SIGKILL');
    await a.exited;
    expect(answered(batch)).toBeLessThan(batch.length);

    await until(
      () => answered(batch) === batch.length,
      60_000,
      () => `all answered by the survivor\n${b.output()}`,
    );
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);

    const { searchEntries } = await admin.search(dc.baseDn, {
      filter: new SubstringFilter({ attribute: 'sAMAccountName', initial: prefix }),
      attributes: ['sAMAccountName', 'objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    expect(searchEntries).toHaveLength(batch.length);
    const guids = new Map(
      searchEntries.map((e) => [String(e['sAMAccountName']), (e['objectGUID'] as Buffer).toString('base64')]),
    );
    for (const { commandId, sam } of batch) {
      const got = replies.get(commandId) ?? [];
      expect(got.length, commandId).toBeGreaterThanOrEqual(1);
      for (const reply of got) {
        expect(reply.ok, JSON.stringify(reply)).toBe(true);
        if (reply.ok)
          expect((reply.result as { user: { objectGuid: string } }).user.objectGuid).toBe(guids.get(sam));
      }
    }
  });
});
