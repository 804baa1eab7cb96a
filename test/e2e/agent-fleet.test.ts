import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SubstringFilter } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadAgentConfig, type AgentConfigFile } from '../../agent/config.js';
import { promoteKeys, rotateKeys } from '../../agent/keys.js';
import { startAgent, type RunningAgent } from '../../agent/runtime.js';
import { createLogger } from '../../shared/logging.js';
import {
  privateKeyFromPem,
  protocolVersion,
  signAgentMessage,
  type Heartbeat,
} from '../../shared/relay-protocol/index.js';
import {
  createUser,
  operation,
  startHybridFixture,
  untilState,
  type HybridFixture,
} from '../support/hybrid.js';
import { waitFor } from '../support/stack.js';
import { adminClient } from '../integration/ad/support.js';

/**
 * A site's agents in production, end to end on the whole stack (HTTP → Service Bus → worker → agents →
 * Samba): the site's keys rotate while commands flow, with nothing lost and the old key refused
 * afterwards; a command is sent only when every available agent of the site understands it.
 * (Rotation first: a stopped agent counts as available for 120 s, and would hold the rotation open.)
 */
const siteId = 'fleet';
let f: HybridFixture;
/** The site's agent keys once rotated (the later tests' agents must sign with the current ones). */
let currentKeys: Partial<AgentConfigFile> = {};
const running = new Set<RunningAgent>();

interface SiteView {
  agentPublicKeyPem: string;
  publicKeyPem: string;
  rotation?: { agentPublicKeyPem: string };
  agents: { agentId: string; state: string; agentVersion: string; signedWithNextKey?: boolean }[];
}
const site = async (): Promise<SiteView> =>
  (await (await f.stack.api(`/sites/${siteId}`, { key: f.key })).json()) as SiteView;

async function start(config: AgentConfigFile | string, reportedVersion?: string): Promise<RunningAgent> {
  const resolved =
    typeof config === 'string'
      ? loadAgentConfig(config)
      : (await import('../../agent/config.js')).resolveAgentConfig(config, process.cwd());
  const agent = await startAgent(resolved, {
    log: createLogger(() => undefined),
    ...(reportedVersion === undefined ? {} : { reportedVersion }),
  });
  running.add(agent);
  return agent;
}
async function stop(agent: RunningAgent): Promise<void> {
  running.delete(agent);
  await agent.stop();
}

/** Waits until GET /sites shows these agents (by id) as the predicate wants them. */
async function untilAgents(
  what: string,
  ok: (agents: SiteView['agents']) => boolean,
): Promise<SiteView['agents']> {
  return waitFor(async () => {
    const agents = (await site()).agents;
    return ok(agents) ? agents : undefined;
  }, what);
}

beforeAll(async () => {
  f = await startHybridFixture({
    siteId,
    storageConnectionString: inject('storageConnectionString'),
    extraSettings: { Engine__retryBaseDelayInMs: '200', Engine__retryMaxDelayInMs: '1500' },
  });
});

afterAll(async () => {
  await Promise.allSettled([...running].map((a) => a.stop()));
  await f?.stop();
});

describe('key rotation without downtime', () => {
  /** An agent's config as installed: inline keys as registered, in its own directory. */
  function installed(agentId: string): string {
    const dir = mkdtempSync(join(tmpdir(), `agent-${agentId}-`));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(f.agentConfig({ agentId })), { mode: 0o600 });
    return file;
  }
  /** The site's second host gets the next keys the first generated (the site shares one key pair). */
  function copyNextKeys(from: string, to: string): void {
    const source = JSON.parse(readFileSync(from, 'utf8')) as AgentConfigFile;
    const target = JSON.parse(readFileSync(to, 'utf8')) as AgentConfigFile;
    for (const field of ['nextSitePrivateKey', 'nextAgentSigningKey'] as const) {
      const value = source[field];
      if (typeof value !== 'object' || !('file' in value)) throw new Error(`${field} is not a file`);
      copyFileSync(join(from, '..', value.file), join(to, '..', value.file));
      target[field] = value;
    }
    writeFileSync(to, JSON.stringify(target), { mode: 0o600 });
  }

  it('rotates both agents of a site while users are provisioned: none lost, old key refused after finish', async () => {
    const fileA = installed('relay-a');
    const fileB = installed('relay-b');
    const a = await start(fileA);
    const b = await start(fileB);
    await untilAgents('both agents', (agents) =>
      ['relay-a', 'relay-b'].every((id) => agents.some((x) => x.agentId === id && x.state === 'ok')),
    );

    // Users keep coming for the whole rotation (each create carries a password sealed to the site key).
    const operations: string[] = [];
    let flowing = true;
    const flow = (async () => {
      for (let i = 0; flowing; i++) {
        operations.push(await createUser(f, `kr${i}-${randomUUID().slice(0, 4)}`));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    try {
      await waitFor(
        () => Promise.resolve(operations.length >= 2 ? true : undefined),
        'users before the rotation',
      );
      const next = rotateKeys(fileA);
      expect(next.generated).toBe(true);
      expect(rotateKeys(fileA)).toMatchObject({
        generated: false,
        agentPublicKeyPem: next.agentPublicKeyPem,
      });
      copyNextKeys(fileA, fileB);

      const started = await f.stack.api(`/sites/${siteId}/key-rotation`, {
        method: 'PUT',
        key: f.key,
        body: JSON.stringify({ publicKeyPem: next.publicKeyPem, agentPublicKeyPem: next.agentPublicKeyPem }),
      });
      expect(started.status, await started.clone().text()).toBe(200);
      expect(((await started.json()) as SiteView).rotation?.agentPublicKeyPem).toBe(next.agentPublicKeyPem);

      const finish = () =>
        f.stack.api(`/sites/${siteId}/key-rotation/finish`, { method: 'POST', key: f.key });
      // Neither agent holds the next key yet: finishing now would strand them.
      expect((await finish()).status).toBe(409);

      await a.reloadKeys(loadAgentConfig(fileA));
      await untilAgents('relay-a on the next key', (agents) =>
        agents.some((x) => x.agentId === 'relay-a' && x.signedWithNextKey === true),
      );
      const early = await finish();
      expect(early.status).toBe(409);
      expect(await early.text()).toMatch(/relay-b/);

      await b.reloadKeys(loadAgentConfig(fileB));
      await untilAgents('both on the next key', (agents) =>
        ['relay-a', 'relay-b'].every((id) =>
          agents.some((x) => x.agentId === id && x.signedWithNextKey === true),
        ),
      );
      const finished = await finish();
      expect(finished.status, await finished.clone().text()).toBe(200);
      const after = (await finished.json()) as SiteView;
      expect(after.agentPublicKeyPem).toBe(next.agentPublicKeyPem);
      expect(after.publicKeyPem).toBe(next.publicKeyPem);
      expect(after.rotation).toBeUndefined();

      // Each host promotes the next keys (old private keys gone from the config) and reloads.
      for (const [agent, file] of [
        [a, fileA],
        [b, fileB],
      ] as const) {
        expect(promoteKeys(file).promoted).toBe(true);
        const promoted = loadAgentConfig(file);
        expect(promoted.nextAgentSigningKeyPem).toBeUndefined();
        expect(promoted.previousSitePrivateKeyPem).toBe(f.site.privateKeyPem);
        await agent.reloadKeys(promoted);
      }
      // A command sealed to the old site key just before the finish may still be queued: it opens.
      const relay = f.stack.deps.relay;
      if (relay === undefined) throw new Error('the stack has a relay');
      const late = `late${randomUUID().slice(0, 6)}`;
      const created = await relay
        .directoryFor({
          siteId,
          sitePublicKeyPem: f.site.publicKeyPem,
          agentPublicKeyPem: next.agentPublicKeyPem,
        })
        .createUser(
          {
            ou: f.dc.usersOu,
            sAMAccountName: late,
            userPrincipalName: `${late}@${f.upnSuffix}`,
            displayName: late,
            enabled: true,
            password: 'Str0ng!Passw0rd#9',
          },
          { commandId: `late-${randomUUID()}`, timeoutInMs: 20_000 },
        );
      expect(created.user.enabled).toBe(true);
      // Some users after the promotion, with passwords sealed to the new site key only.
      const count = operations.length;
      await waitFor(() => Promise.resolve(operations.length >= count + 3 ? true : undefined), 'more users');
    } finally {
      flowing = false;
      await flow;
    }

    expect(operations.length).toBeGreaterThanOrEqual(5);
    for (const id of operations)
      expect((await untilState(f, id, ['succeeded'], 60_000)).state).toBe('succeeded');

    // The old agent key no longer speaks for the site; the new one does.
    const hub = f.stack.deps.relay;
    if (hub === undefined) throw new Error('the stack has a relay');
    const beat: Heartbeat = {
      v: protocolVersion,
      type: 'heartbeat',
      siteId,
      agentId: 'relay-forged',
      agentVersion: '0.2.0',
      dcsReachable: [],
      queueLag: 0,
      at: new Date().toISOString(),
    };
    const oldKey = privateKeyFromPem(f.agentKeys.privateKeyPem, 'ed25519');
    expect(await hub.handleAgentMessage(signAgentMessage(beat, oldKey))).toBe('invalid');
    const newKey = privateKeyFromPem(loadAgentConfig(fileA).agentSigningKeyPem ?? '', 'ed25519');
    expect(await hub.handleAgentMessage(signAgentMessage(beat, newKey))).toBe('heartbeat');
    const promoted = loadAgentConfig(fileA);
    currentKeys = {
      sitePrivateKey: promoted.sitePrivateKeyPem,
      ...(promoted.agentSigningKeyPem === undefined ? {} : { agentSigningKey: promoted.agentSigningKeyPem }),
    };
    await stop(a);
    await stop(b);
  });
});

describe('version-gated commands', () => {
  it('holds a command while one available agent is too old for it, saying why, and sends it once that agent is upgraded', async () => {
    const fresh = await start(f.agentConfig({ agentId: 'relay-new', ...currentKeys }));
    // An agent older than every command's minimum (0.1.0) stands in for one that lacks a new command.
    const old = await start(f.agentConfig({ agentId: 'relay-old', ...currentKeys }), '0.0.9');
    await untilAgents('both agents heartbeating', (agents) =>
      ['relay-new', 'relay-old'].every((id) => agents.some((a) => a.agentId === id && a.state === 'ok')),
    );

    const userId = `vg-${randomUUID().slice(0, 6)}`;
    const operationId = await createUser(f, userId);
    const waiting = await waitFor(async () => {
      const op = await operation(f, operationId);
      return op.state === 'retryScheduled' && op.steps[0]?.error !== undefined ? op : undefined;
    }, 'the create to wait for the upgrade');
    expect(waiting.steps[0]?.name).toBe('ad.create');
    expect(waiting.steps[0]?.error?.code).toBe('Unavailable');
    expect(waiting.steps[0]?.error?.message).toMatch(
      /waiting for an agent upgrade: site fleet needs agent ≥ 0\.1\.0 for createUser .*relay-old runs 0\.0\.9/,
    );
    expect(waiting.steps[0]?.error?.message).not.toMatch(/relay-new/);
    // It keeps waiting, and nothing reached AD (the command was never sent).
    await new Promise((r) => setTimeout(r, 2000));
    expect((await operation(f, operationId)).state).not.toBe('succeeded');
    const admin = await adminClient(f.dc);
    const inAd = async () =>
      (
        await admin.search(f.dc.baseDn, {
          filter: new SubstringFilter({ attribute: 'userPrincipalName', initial: userId }),
          attributes: ['sAMAccountName'],
        })
      ).searchEntries.length;
    try {
      expect(await inAd()).toBe(0);

      // The old agent is upgraded in place: same id, the current version in its next heartbeat.
      await stop(old);
      const upgraded = await start(f.agentConfig({ agentId: 'relay-old', ...currentKeys }));
      await untilAgents('the upgraded agent', (agents) =>
        agents.some((a) => a.agentId === 'relay-old' && a.agentVersion !== '0.0.9'),
      );
      const done = await untilState(f, operationId);
      expect(done.steps.map((s) => [s.name, s.state])).toEqual([
        ['ad.create', 'done'],
        ['entra.create', 'done'],
      ]);
      expect(await inAd()).toBe(1);
      await stop(upgraded);
      await stop(fresh);
    } finally {
      await admin.unbind();
    }
  });
});
