export * from './schema.js';
export { canonicalJson } from './canonical.js';
export { signAgentMessage, signCommand, verifyAgentMessage, verifySignedCommand } from './signing.js';
export { sealSecret, openSecret, type SecretBinding } from './password.js';
export {
  generateSigningKeyPair,
  generateSiteKeyPair,
  publicKeyFromPem,
  privateKeyFromPem,
  type PemKeyPair,
} from './keys.js';
export { newEnvelope, defaultCommandLifetimeInMs } from './envelope.js';
export { agentUnderstands, compareAgentVersions, minimumAgentVersion } from './versions.js';
