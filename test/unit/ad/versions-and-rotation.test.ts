import { describe, expect, it } from 'vitest';
import { AppError } from '../../../shared/errors.js';
import {
  agentUnderstands,
  compareAgentVersions,
  generateSigningKeyPair,
  privateKeyFromPem,
  publicKeyFromPem,
  signAgentMessage,
  verifyAgentMessage,
  type Heartbeat,
} from '../../../shared/relay-protocol/index.js';
import { assertAgentsUnderstand, trustedAgentKeys, type Site } from '../../../shared/usecases/sites.js';

/** The pure rules behind version-gated commands and key rotation (the e2e is test/e2e/agent-fleet.test.ts). */
describe('agent versions', () => {
  it('orders major.minor.patch numerically and ranks an unparseable version lowest', () => {
    expect(compareAgentVersions('0.10.0', '0.9.9')).toBeGreaterThan(0);
    expect(compareAgentVersions('1.0.0', '1.0.0')).toBe(0);
    expect(compareAgentVersions('v0.2.0', '0.2.0')).toBe(0);
    expect(compareAgentVersions('0.2.0-beta', '0.0.1')).toBeLessThan(0);
    expect(agentUnderstands('0.1.0', 'createUser')).toBe(true);
    expect(agentUnderstands('0.0.9', 'createUser')).toBe(false);
    expect(agentUnderstands('9.9.9', 'someFutureCommand')).toBe(false);
  });

  const now = new Date('2026-12-01T12:00:00Z');
  const beat = (agentVersion: string, secondsAgo: number) => ({
    at: now.toISOString(),
    receivedAt: new Date(now.getTime() - secondsAgo * 1000).toISOString(),
    agentVersion,
    dcsReachable: ['ldaps://dc1'],
    queueLag: 0,
  });
  const site = (agents: Site['agents']): Site => ({
    siteId: 's1',
    providerId: 'p',
    publicKeyPem: 'x',
    agentPublicKeyPem: 'y',
    registeredAt: now.toISOString(),
    agents,
  });

  it('refuses a command while an available agent is too old, naming it; ignores agents silent for over 120 s', () => {
    expect(() =>
      assertAgentsUnderstand(site({ a: beat('0.2.0', 5), b: beat('0.0.9', 130) }), 'createUser', now),
    ).not.toThrow();
    let thrown: unknown;
    try {
      assertAgentsUnderstand(site({ a: beat('0.2.0', 5), b: beat('0.0.9', 30) }), 'createUser', now);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AppError);
    const error = thrown as AppError;
    expect(error.retryable).toBe(true);
    expect(error.details?.reason).toBe('AgentUpgradeRequired');
    expect(error.message).toMatch(/b runs 0\.0\.9/);
    expect(error.message).not.toMatch(/\ba runs/);
    // No agent available: the command waits in the queue for whichever agent comes first.
    expect(() => assertAgentsUnderstand(site({}), 'createUser', now)).not.toThrow();
  });
});

describe('key rotation signatures', () => {
  const current = generateSigningKeyPair();
  const next = generateSigningKeyPair();
  const heartbeat: Heartbeat = {
    v: 1,
    type: 'heartbeat',
    siteId: 's1',
    agentVersion: '0.2.0',
    dcsReachable: [],
    queueLag: 0,
    at: '2026-12-01T12:00:00.000Z',
  };
  const pub = (pem: string) => publicKeyFromPem(pem, 'ed25519');
  const priv = (pem: string) => privateKeyFromPem(pem, 'ed25519');

  it('a message signed with both keys verifies with either, and breaks on any change', () => {
    const both = signAgentMessage(heartbeat, priv(current.privateKeyPem), priv(next.privateKeyPem));
    expect(both.nextSignature).toBeDefined();
    expect(verifyAgentMessage(both, pub(current.publicKeyPem))).toBe(true);
    expect(verifyAgentMessage(both, pub(next.publicKeyPem))).toBe(true);
    expect(verifyAgentMessage({ ...both, queueLag: 1 }, pub(next.publicKeyPem))).toBe(false);
    expect(verifyAgentMessage(both, pub(generateSigningKeyPair().publicKeyPem))).toBe(false);
  });

  it('re-signing with one key drops a stale next signature', () => {
    const both = signAgentMessage(heartbeat, priv(current.privateKeyPem), priv(next.privateKeyPem));
    const one = signAgentMessage(both, priv(next.privateKeyPem));
    expect(one.nextSignature).toBeUndefined();
    expect(verifyAgentMessage(one, pub(current.publicKeyPem))).toBe(false);
    expect(verifyAgentMessage(one, pub(next.publicKeyPem))).toBe(true);
  });

  it('trusts the current agent key, and the next one only while a rotation is open', () => {
    const base: Site = {
      siteId: 's1',
      providerId: 'p',
      publicKeyPem: 'x',
      agentPublicKeyPem: current.publicKeyPem,
      registeredAt: '2026-12-01T12:00:00.000Z',
    };
    expect(trustedAgentKeys(base)).toEqual([current.publicKeyPem]);
    expect(
      trustedAgentKeys({
        ...base,
        rotation: { publicKeyPem: 'x2', agentPublicKeyPem: next.publicKeyPem, startedAt: base.registeredAt },
      }),
    ).toEqual([current.publicKeyPem, next.publicKeyPem]);
  });
});
