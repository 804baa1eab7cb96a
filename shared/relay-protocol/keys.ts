import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

/**
 * Keys of the relay: the cloud signs commands with an Ed25519 key (agents hold its public key); each site
 * has an X25519 key pair for passwords (the cloud holds the public key, only the agent the private key).
 * Keys travel as PEM (SPKI public, PKCS#8 private).
 */
export interface PemKeyPair {
  publicKeyPem: string;
  privateKeyPem: string;
}

export function generateSigningKeyPair(): PemKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return pemPair(publicKey, privateKey);
}

export function generateSiteKeyPair(): PemKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return pemPair(publicKey, privateKey);
}

function pemPair(publicKey: KeyObject, privateKey: KeyObject): PemKeyPair {
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

// Parsed public keys by PEM: every command and reply needs its site's keys, and parsing costs more
// than the signature itself. KeyObjects are immutable; a bounded map (oldest dropped) is enough.
const parsedPublicKeys = new Map<string, KeyObject>();
const MAX_PARSED_PUBLIC_KEYS = 1000;

export function publicKeyFromPem(pem: string, expected: 'ed25519' | 'x25519'): KeyObject {
  let key = parsedPublicKeys.get(pem);
  if (key === undefined) {
    key = createPublicKey(pem);
    parsedPublicKeys.set(pem, key);
    if (parsedPublicKeys.size > MAX_PARSED_PUBLIC_KEYS) {
      const oldest = parsedPublicKeys.keys().next().value;
      if (oldest !== undefined) parsedPublicKeys.delete(oldest);
    }
  }
  if (key.asymmetricKeyType !== expected) throw new TypeError(`expected an ${expected} public key`);
  return key;
}

export function privateKeyFromPem(pem: string, expected: 'ed25519' | 'x25519'): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== expected) throw new TypeError(`expected an ${expected} private key`);
  return key;
}
