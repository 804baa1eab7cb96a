import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { generateSigningKeyPair, generateSiteKeyPair } from '../shared/relay-protocol/index.js';
import { agentConfigSchema, loadAgentConfig, type AgentConfigFile, type SecretSource } from './config.js';

/**
 * Key rotation on the agent's machine (the private keys never leave it):
 *
 * 1. `agent keys rotate --config FILE` generates the next X25519 and Ed25519 key pairs into 0600 files
 *    beside the config, names them in the config (`nextSitePrivateKey`, `nextAgentSigningKey`) and
 *    prints the public keys for `PUT /api/sites/{siteId}/key-rotation`. Running it again prints the same
 *    next keys (no new pair while one is pending). A site with several agents: copy the two files and
 *    the config lines to each of its machines.
 * 2. Reload each agent (`systemctl reload atria-agent`: SIGHUP). It signs with both keys and opens
 *    passwords sealed to either; the cloud marks each agent that signed with the next key.
 * 3. `POST /api/sites/{siteId}/key-rotation/finish`: the next keys become the site's, the old ones are
 *    refused from then on (409 while an agent has not confirmed the next key).
 * 4. `agent keys promote --config FILE` + reload: the next keys become the agent's current ones; the
 *    old signing key is deleted, the old site key kept (for commands sealed to it still in the queue)
 *    until the next rotation deletes it.
 */
export interface RotationKeys {
  siteId: string;
  /** X25519, SPKI PEM: `publicKeyPem` of the request. */
  publicKeyPem: string;
  /** Ed25519, SPKI PEM: `agentPublicKeyPem` of the request. */
  agentPublicKeyPem: string;
  /** false: a rotation was already pending and these are its keys. */
  generated: boolean;
}

function readRaw(configPath: string): AgentConfigFile {
  const raw: unknown = JSON.parse(readFileSync(configPath, 'utf8'));
  // Validates the file as the agent would (every problem named), but rewrites the file as it was.
  agentConfigSchema.parse(raw);
  return raw as AgentConfigFile;
}

/** Writes the config atomically (temp file + rename), readable by the service account only. */
function writeRaw(configPath: string, config: AgentConfigFile): void {
  const temp = `${configPath}.tmp`;
  writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, configPath);
}

const publicOf = (privateKeyPem: string): string =>
  createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();

export function rotateKeys(configPath: string, now: Date = new Date()): RotationKeys {
  const raw = readRaw(configPath);
  const resolved = loadAgentConfig(configPath);
  if (resolved.nextSitePrivateKeyPem !== undefined && resolved.nextAgentSigningKeyPem !== undefined)
    return {
      siteId: resolved.siteId,
      publicKeyPem: publicOf(resolved.nextSitePrivateKeyPem),
      agentPublicKeyPem: publicOf(resolved.nextAgentSigningKeyPem),
      generated: false,
    };
  const dir = dirname(resolve(configPath));
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const site = generateSiteKeyPair();
  const agent = generateSigningKeyPair();
  const siteFile = `site-${stamp}.key`;
  const agentFile = `agent-${stamp}.key`;
  // wx: never overwrite a key file (two rotations in the same second would otherwise lose one).
  writeFileSync(join(dir, siteFile), site.privateKeyPem, { mode: 0o600, flag: 'wx' });
  writeFileSync(join(dir, agentFile), agent.privateKeyPem, { mode: 0o600, flag: 'wx' });
  // A new rotation retires the site key of the one before (its commands have long expired).
  const { previousSitePrivateKey, ...kept } = raw;
  const rotated: AgentConfigFile = {
    ...kept,
    nextSitePrivateKey: { file: siteFile },
    nextAgentSigningKey: { file: agentFile },
  };
  writeRaw(configPath, rotated);
  removeUnused([fileOf(previousSitePrivateKey, dir)], rotated, dir);
  return {
    siteId: resolved.siteId,
    publicKeyPem: site.publicKeyPem,
    agentPublicKeyPem: agent.publicKeyPem,
    generated: true,
  };
}

/** The absolute path of a `{ file }` secret source, if it is one. */
function fileOf(source: SecretSource | undefined, dir: string): string | undefined {
  if (typeof source !== 'object' || !('file' in source)) return undefined;
  return isAbsolute(source.file) ? source.file : resolve(dir, source.file);
}

/** Deletes key files the config no longer names (never one it still names). */
function removeUnused(files: (string | undefined)[], config: AgentConfigFile, dir: string): string[] {
  const named = new Set(
    [
      config.sitePrivateKey,
      config.agentSigningKey,
      config.nextSitePrivateKey,
      config.nextAgentSigningKey,
      config.previousSitePrivateKey,
    ].map((source) => fileOf(source, dir)),
  );
  const removed = files.filter(
    (file): file is string => file !== undefined && !named.has(file) && existsSync(file),
  );
  for (const file of removed) rmSync(file);
  return removed;
}

/**
 * After the cloud finished the rotation: the next keys become current. The old agent signing key is
 * deleted; the old site key is kept as `previousSitePrivateKey` (a command sealed to it just before the
 * finish may still wait in the queue) until the next rotation.
 */
export function promoteKeys(configPath: string): { promoted: boolean; removedFiles: string[] } {
  const raw = readRaw(configPath);
  const { nextSitePrivateKey, nextAgentSigningKey, previousSitePrivateKey, ...rest } = raw;
  if (nextSitePrivateKey === undefined || nextAgentSigningKey === undefined)
    return { promoted: false, removedFiles: [] };
  const dir = dirname(resolve(configPath));
  const promoted: AgentConfigFile = {
    ...rest,
    sitePrivateKey: nextSitePrivateKey,
    agentSigningKey: nextAgentSigningKey,
    previousSitePrivateKey: raw.sitePrivateKey,
  };
  writeRaw(configPath, promoted);
  return {
    promoted: true,
    removedFiles: removeUnused(
      [fileOf(raw.agentSigningKey, dir), fileOf(previousSitePrivateKey, dir)],
      promoted,
      dir,
    ),
  };
}

/** What `agent keys rotate` prints: the public keys and the request that starts the rotation. */
export function formatRotation(keys: RotationKeys): string {
  const body = JSON.stringify({ publicKeyPem: keys.publicKeyPem, agentPublicKeyPem: keys.agentPublicKeyPem });
  return [
    keys.generated
      ? 'Generated the next key pairs (private keys stay in this directory, mode 0600).'
      : 'A rotation is already pending; these are its next keys.',
    '',
    'Next X25519 public key (publicKeyPem):',
    keys.publicKeyPem.trim(),
    'Next Ed25519 public key (agentPublicKeyPem):',
    keys.agentPublicKeyPem.trim(),
    '',
    '1. Reload every agent of the site with these keys (systemctl reload atria-agent).',
    '2. Start the rotation:',
    `   curl -X PUT -H "x-functions-key: $KEY" -H 'content-type: application/json' \\`,
    `     https://<app>/api/sites/${keys.siteId}/key-rotation -d '${body}'`,
    `3. When GET /api/sites/${keys.siteId} shows signedWithNextKey for every agent:`,
    `   POST /api/sites/${keys.siteId}/key-rotation/finish`,
    '4. agent keys promote --config <file>, then reload again.',
  ].join('\n');
}
