import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { AppError } from '../errors.js';
import { canonicalJson } from './canonical.js';
import type { SealedSecret } from './schema.js';

/**
 * Passwords are sealed to the site's X25519 public key (ECIES): an ephemeral X25519 key agrees a secret
 * with the site key, HKDF-SHA256 (salt = ephemeral ‖ recipient public key, info = label) derives an
 * AES-256-GCM key, and the associated data binds the ciphertext to one commandId + siteId, so a sealed
 * password cannot be replayed inside another command. Only the agent holding the site's private key can
 * read it; a queue message or a log line shows ciphertext only.
 */
const info = Buffer.from('atria-relay/sealed-secret/v1', 'utf8');

export interface SecretBinding {
  commandId: string;
  siteId: string;
}

function rawX25519(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new TypeError('not an X25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

function deriveKey(shared: Buffer, epk: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, recipient]), info, 32));
}

function aad(binding: SecretBinding): Buffer {
  return Buffer.from(canonicalJson({ commandId: binding.commandId, siteId: binding.siteId }), 'utf8');
}

export function sealSecret(
  plaintext: string,
  recipientPublicKey: KeyObject,
  binding: SecretBinding,
): SealedSecret {
  const ephemeral = generateKeyPairSync('x25519');
  const epk = rawX25519(ephemeral.publicKey);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipientPublicKey });
  const key = deriveKey(shared, epk, rawX25519(recipientPublicKey));
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(binding));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return {
    alg: 'X25519-HKDF-SHA256-A256GCM',
    epk: epk.toString('base64url'),
    iv: iv.toString('base64url'),
    ct: ct.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  };
}

export function openSecret(
  sealed: SealedSecret,
  recipientPrivateKey: KeyObject,
  binding: SecretBinding,
): string {
  try {
    const epk = Buffer.from(sealed.epk, 'base64url');
    const ephemeralPublic = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: sealed.epk },
      format: 'jwk',
    });
    const shared = diffieHellman({ privateKey: recipientPrivateKey, publicKey: ephemeralPublic });
    const recipient = rawX25519(createPublicKey(recipientPrivateKey));
    const key = deriveKey(shared, epk, recipient);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64url'));
    decipher.setAAD(aad(binding));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    // No detail: the cause (wrong key, other command, tampering) must not help an attacker.
    throw new AppError('BadSignature', 'sealed secret cannot be opened for this site and command', {
      retryable: false,
    });
  }
}
