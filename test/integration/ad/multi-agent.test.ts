import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { SubstringFilter, type Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { resolveAgentConfig } from '../../../agent/config.js';
import { startAgent } from '../../../agent/runtime.js';
import { createTableStore } from '../../../shared/adapters/tables/table-store.js';
import { createLogger } from '../../../shared/logging.js';
import { createSites } from '../../../shared/usecases/sites.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import type { RelayHub } from '../../../shared/adapters/relay/index.js';
import { sealSecret, type Heartbeat, type Reply } from '../../../shared/relay-protocol/index.js';
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
/** Where the hub hands heartbeats (the cloud stores them; the heartbeat test does). */
let onBeat: (heartbeat: Heartbeat) => Promise<unknown> = () => Promise.resolve();

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
    onHeartbeat: (heartbeat) => onBeat(heartbeat),
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

describe('each agent of a site heartbeats under its own id', () => {
  it('shows both agents, and one as unavailable after 120 s without its heartbeat', async () => {
    let now = Date.now();
    const clock = { now: () => new Date(now) };
    const sites = createSites({
      store: createTableStore({ connectionString: inject('storageConnectionString') }),
      clock,
    });
    // A fixed provider: the site id is fixed by this file's Service Bus queue, and reruns reuse the row.
    const caller = { id: 'multi-agent-test', kind: 'apiKey' as const, providerId: 'prov-multi-agent' };
    await sites.register(caller, siteId, {
      publicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    onBeat = (heartbeat) => sites.recordHeartbeat(heartbeat);
    const quiet = { log: createLogger(() => undefined) };
    const start = (agentId: string) =>
      startAgent(resolveAgentConfig(agentConfig(bus, dc, keys, { agentId }), process.cwd()), quiet);
    const [a, b] = await Promise.all([start('relay-a'), start('relay-b')]);
    const stopped = new Set<typeof a>();
    try {
      const agentsOf = async () =>
        (await sites.healthCheckFor(caller).check()).info as {
          sites: {
            siteId: string;
            agents: { agentId: string; state: string; agentVersion: string; dcsReachable: string[] }[];
          }[];
        };
      let seen: { agentId: string; state: string; agentVersion: string; dcsReachable: string[] }[] = [];
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        seen =
          (await agentsOf()).sites
            .find((x) => x.siteId === siteId)
            ?.agents.filter((x) => x.agentId.startsWith('relay-')) ?? [];
        if (seen.length === 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen.map((x) => [x.agentId, x.state])).toEqual([
        ['relay-a', 'ok'],
        ['relay-b', 'ok'],
      ]);
      expect(seen.every((x) => x.agentVersion !== '' && x.dcsReachable.includes(dc.url))).toBe(true);

      // relay-a stops; 121 s later only relay-b has sent another heartbeat.
      await a.stop();
      stopped.add(a);
      now += 121_000;
      await b.heartbeat();
      const deadline2 = Date.now() + 20_000;
      while (Date.now() < deadline2) {
        seen =
          (await agentsOf()).sites
            .find((x) => x.siteId === siteId)
            ?.agents.filter((x) => x.agentId.startsWith('relay-')) ?? [];
        if (seen.find((x) => x.agentId === 'relay-b')?.state === 'ok') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen.map((x) => [x.agentId, x.state])).toEqual([
        ['relay-a', 'unavailable'],
        ['relay-b', 'ok'],
      ]);
    } finally {
      await Promise.all([a, b].filter((x) => !stopped.has(x)).map((x) => x.stop()));
      onBeat = () => Promise.resolve();
    }
  });
});
