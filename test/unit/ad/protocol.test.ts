import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CommandVerifier } from '../../../agent/verifier.js';
import { FileNonceStore } from '../../../agent/nonce-store.js';
import { AppError, type ErrorCode } from '../../../shared/errors.js';
import {
  canonicalJson,
  generateSigningKeyPair,
  generateSiteKeyPair,
  newEnvelope,
  openSecret,
  privateKeyFromPem,
  publicKeyFromPem,
  sealSecret,
  signAgentMessage,
  signCommand,
  verifyAgentMessage,
  verifySignedCommand,
  type Command,
} from '../../../shared/relay-protocol/index.js';

const signing = generateSigningKeyPair();
const signer = { privateKey: privateKeyFromPem(signing.privateKeyPem, 'ed25519'), kid: 'cloud-1' };
const trusted = new Map([['cloud-1', publicKeyFromPem(signing.publicKeyPem, 'ed25519')]]);
const site = generateSiteKeyPair();
const sitePublic = publicKeyFromPem(site.publicKeyPem, 'x25519');
const sitePrivate = privateKeyFromPem(site.privateKeyPem, 'x25519');
const disable: Command = { type: 'disable', target: { objectGuid: Buffer.alloc(16, 1).toString('base64') } };

function code(fn: () => unknown): ErrorCode {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return (error as AppError).code;
  }
  throw new Error('expected a throw');
}

function signed(overrides: { siteId?: string; now?: Date; lifetimeInMs?: number; command?: Command } = {}) {
  const envelope = newEnvelope({
    commandId: randomUUID(),
    siteId: overrides.siteId ?? 'site-a',
    command: overrides.command ?? disable,
    now: overrides.now ?? new Date(),
    ...(overrides.lifetimeInMs === undefined ? {} : { lifetimeInMs: overrides.lifetimeInMs }),
  });
  return JSON.parse(JSON.stringify(signCommand(envelope, signer))) as ReturnType<typeof signCommand>;
}

describe('canonical JSON', () => {
  it('sorts keys recursively, drops undefined and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', null], c: true }, u: undefined })).toBe(
      '{"a":{"c":true,"d":[1,"x",null]},"b":1}',
    );
  });
});

describe('command signatures', () => {
  it('verifies a signed command after a JSON round trip, whatever the key order', () => {
    const message = signed();
    const reordered = {
      signature: message.signature,
      envelope: Object.fromEntries(Object.entries(message.envelope as object).reverse()),
      v: 1,
    };
    expect(verifySignedCommand(reordered, trusted).commandId).toBe(
      (message.envelope as { commandId: string }).commandId,
    );
  });

  it('rejects unsigned, tampered, unknown-key and foreign-key commands', () => {
    const message = signed();
    expect(code(() => verifySignedCommand({ v: 1, envelope: message.envelope }, trusted))).toBe(
      'BadSignature',
    );
    const tampered = structuredClone(message);
    (tampered.envelope as { command: { type: string } }).command.type = 'delete';
    expect(code(() => verifySignedCommand(tampered, trusted))).toBe('BadSignature');
    const otherSite = structuredClone(message);
    (otherSite.envelope as { siteId: string }).siteId = 'site-b';
    expect(code(() => verifySignedCommand(otherSite, trusted))).toBe('BadSignature');
    expect(
      code(() =>
        verifySignedCommand({ ...message, signature: { ...message.signature, kid: 'nope' } }, trusted),
      ),
    ).toBe('BadSignature');
    const attacker = generateSigningKeyPair();
    const forged = signCommand(message.envelope as never, {
      privateKey: privateKeyFromPem(attacker.privateKeyPem, 'ed25519'),
      kid: 'cloud-1',
    });
    expect(code(() => verifySignedCommand(forged, trusted))).toBe('BadSignature');
  });

  it('rejects a correctly signed envelope that fails the schema', () => {
    const envelope = {
      ...newEnvelope({ commandId: 'c-1', siteId: 'site-a', command: disable, now: new Date() }),
      extra: 1,
    };
    expect(code(() => verifySignedCommand(signCommand(envelope as never, signer), trusted))).toBe(
      'Validation',
    );
  });
});

describe('agent message signatures', () => {
  it('verify with the site agent key only, and break on any change', () => {
    const agent = generateSigningKeyPair();
    const reply = signAgentMessage(
      {
        v: 1,
        type: 'reply',
        commandId: 'c-1',
        siteId: 'site-a',
        ok: true,
        result: { changed: true },
      } as const,
      privateKeyFromPem(agent.privateKeyPem, 'ed25519'),
    );
    const key = publicKeyFromPem(agent.publicKeyPem, 'ed25519');
    expect(verifyAgentMessage(reply, key)).toBe(true);
    expect(verifyAgentMessage({ ...reply, siteId: 'site-b' }, key)).toBe(false);
    expect(verifyAgentMessage({ ...reply, signature: undefined }, key)).toBe(false);
    expect(
      verifyAgentMessage(reply, publicKeyFromPem(generateSigningKeyPair().publicKeyPem, 'ed25519')),
    ).toBe(false);
  });
});

describe('sealed passwords', () => {
  it('only the site key opens it, only for the command it was sealed for', () => {
    const binding = { commandId: 'c-1', siteId: 'site-a' };
    const sealed = sealSecret('Pässw0rd!"x', sitePublic, binding);
    expect(JSON.stringify(sealed)).not.toContain('Pässw0rd');
    expect(openSecret(sealed, sitePrivate, binding)).toBe('Pässw0rd!"x');
    expect(code(() => openSecret(sealed, sitePrivate, { ...binding, commandId: 'c-2' }))).toBe(
      'BadSignature',
    );
    expect(code(() => openSecret(sealed, sitePrivate, { ...binding, siteId: 'site-b' }))).toBe(
      'BadSignature',
    );
    const other = privateKeyFromPem(generateSiteKeyPair().privateKeyPem, 'x25519');
    expect(code(() => openSecret(sealed, other, binding))).toBe('BadSignature');
    const flipped = {
      ...sealed,
      ct: Buffer.from(Buffer.from(sealed.ct, 'base64url').map((b, i) => (i === 0 ? b ^ 1 : b))).toString(
        'base64url',
      ),
    };
    expect(code(() => openSecret(flipped, sitePrivate, binding))).toBe('BadSignature');
  });
});

describe('the agent verifier', () => {
  let now = new Date('2026-11-25T12:00:00Z');
  const clock = { now: () => now };
  const verifier = new CommandVerifier({
    siteId: 'site-a',
    trustedKeys: trusted,
    clock,
    nonces: new FileNonceStore(clock),
  });

  it('accepts a fresh command for its site', () => {
    expect(verifier.verify(signed({ now })).siteId).toBe('site-a');
  });

  it('refuses commands for another site', () => {
    expect(code(() => verifier.verify(signed({ siteId: 'site-b', now })))).toBe('OutOfScope');
  });

  it('refuses expired, future and over-long commands', () => {
    expect(
      code(() => verifier.verify(signed({ now: new Date(now.getTime() - 3_600_000), lifetimeInMs: 60_000 }))),
    ).toBe('Expired');
    expect(code(() => verifier.verify(signed({ now: new Date(now.getTime() + 3_600_000) })))).toBe('Expired');
    expect(code(() => verifier.verify(signed({ now, lifetimeInMs: 48 * 3_600_000 })))).toBe('Validation');
  });

  it('accepts a redelivery until the command was answered, then refuses it as a replay until expiry', () => {
    const message = signed({ now, lifetimeInMs: 600_000 });
    const envelope = verifier.verify(message);
    expect(verifier.verify(message).commandId).toBe(envelope.commandId); // redelivery before the answer
    verifier.markDone(envelope);
    expect(code(() => verifier.verify(message))).toBe('Replayed');
    now = new Date(now.getTime() + 30 * 60_000);
    expect(code(() => verifier.verify(message))).toBe('Expired');
  });
});
