import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../../../agent/config.js';
import { startAgent, type RunningAgent } from '../../../agent/runtime.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import type { RelayHub } from '../../../shared/adapters/relay/index.js';
import { createLogger } from '../../../shared/logging.js';
import { agentConfig, newHub, startRelayBus, type RelayBus } from './bus.js';
import { siteId, siteKeys } from './support.js';

let dc: SambaPeer;
let bus: RelayBus;
let agent: RunningAgent;
let hub: RelayHub;
const keys = siteKeys();
const lines: string[] = [];

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus()]);
  agent = await startAgent(
    resolveAgentConfig(agentConfig(bus, dc, keys, { stopGraceInMs: 15_000 }), process.cwd()),
    {
      log: createLogger((_level, record) => lines.push(JSON.stringify(record))),
    },
  );
  hub = newHub(bus);
});

afterAll(async () => {
  await hub?.close();
  await agent?.stop();
  await bus?.stop();
  await dc?.stop();
});

describe('losing Service Bus', () => {
  it('the agent reconnects after a namespace outage and drains what was queued meanwhile', async () => {
    const directory = hub.directoryFor({
      siteId,
      sitePublicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    const before = `o${Date.now().toString(36).slice(-6)}`;
    const input = (sam: string) => ({
      ou: dc.usersOu,
      sAMAccountName: sam,
      userPrincipalName: `${sam}@atria.test`,
      displayName: sam,
      enabled: false,
    });
    expect(
      (await directory.createUser(input(before), { commandId: `op-${randomUUID()}` })).user.sAMAccountName,
    ).toBe(before);
    await bus.restart(1000);
    const after = Array.from({ length: 5 }, (_, index) => `${before}r${index}`);
    const results = await Promise.all(
      after.map((sam) =>
        directory.createUser(input(sam), { commandId: `op-${randomUUID()}`, timeoutInMs: 50_000 }),
      ),
    );
    expect(results.map((result) => result.user.sAMAccountName)).toEqual(after);
    expect(lines.some((line) => line.includes('service bus error'))).toBe(true);
  });
});
