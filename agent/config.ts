import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { siteIdSchema } from '../shared/relay-protocol/index.js';

/**
 * The agent's configuration file (JSON), one per site. Secrets may be given inline (tests), or better as
 * `{ "file": "…" }` (a file readable only by the service account) or `{ "env": "NAME" }`. Relative file
 * paths are resolved against the config file's directory.
 */
const secretSource = z.union([
  z.string().min(1),
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ env: z.string().min(1) }),
]);
export type SecretSource = z.infer<typeof secretSource>;

export const agentConfigSchema = z.strictObject({
  siteId: siteIdSchema,
  /** This agent's name in heartbeats when a site runs several (default: the host name). */
  agentId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .optional(),
  serviceBus: z.union([
    z.strictObject({ connectionString: secretSource }),
    z.strictObject({
      /** e.g. atria-prod.servicebus.windows.net */
      fullyQualifiedNamespace: z.string().min(3),
      /** The per-site SAS rule: Listen on agent-site-<siteId>, Send on agent-replies, nothing else. */
      sasKeyName: z.string().min(1),
      sasKey: secretSource,
    }),
  ]),
  /** Default agent-site-<siteId>. */
  commandQueue: z.string().min(1).optional(),
  replyQueue: z.string().min(1).default('agent-replies'),
  directory: z.strictObject({
    /** LDAPS URLs of the site's DCs in failover order. */
    urls: z.array(z.string().regex(/^ldaps:\/\/[^/\s]+$/, 'ldaps://host[:port]')).min(1),
    bindDn: z.string().min(3),
    password: secretSource,
    /** PEM file of the CA that issued the DC certificates (system CAs when absent). */
    caFile: z.string().min(1).optional(),
    /** DNs of the OUs the agent may read and write; nothing outside is touched. */
    allowedOus: z.array(z.string().min(3)).min(1),
    /** Attributes commands may set (besides givenName, sn, displayName). */
    allowedAttributes: z.array(z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$/)).default([]),
    /** UPN suffixes new users may get; any when absent. */
    upnSuffixes: z.array(z.string().min(1)).optional(),
    /** Stamp mS-DS-ConsistencyGuid = objectGUID on create (off: Connect falls back to objectGUID). */
    stampConsistencyGuid: z.boolean().default(false),
    connectTimeoutInMs: z.number().int().positive().default(3000),
    operationTimeoutInMs: z.number().int().positive().default(15_000),
  }),
  /** The cloud's Ed25519 public keys (PEM text or file); two during a rotation. */
  cloudSigningKeys: z
    .array(
      z.strictObject({
        kid: z.string().min(1),
        publicKeyPem: z.string().min(1).optional(),
        publicKeyFile: z.string().min(1).optional(),
      }),
    )
    .min(1),
  /** The site's X25519 private key (PKCS#8 PEM) that opens sealed passwords. */
  sitePrivateKey: secretSource,
  /** The agent's Ed25519 private key (PKCS#8 PEM): signs replies and heartbeats so no other site can forge them. */
  agentSigningKey: secretSource.optional(),
  /**
   * During a key rotation (`agent keys rotate` writes them): the next X25519 and Ed25519 private keys.
   * The agent opens passwords sealed to either site key and signs with both agent keys until
   * `agent keys promote` makes the next ones current.
   */
  nextSitePrivateKey: secretSource.optional(),
  nextAgentSigningKey: secretSource.optional(),
  /**
   * After `agent keys promote`: the site key before it, still tried when opening a password, since a
   * command sealed just before the rotation finished may still wait in the queue (commands live ≤ 24 h).
   * Dropped by the next `agent keys rotate`.
   */
  previousSitePrivateKey: secretSource.optional(),
  /** Where the agent keeps its replay journal; in memory only when absent. */
  stateDir: z.string().min(1).optional(),
  heartbeatIntervalInMs: z.number().int().min(1000).default(60_000),
  maxConcurrentCommands: z.number().int().min(1).max(32).default(4),
  /** Commands with a transient failure are retried locally this many times before being abandoned. */
  localAttempts: z.number().int().min(1).max(10).default(3),
  /** After this many deliveries a transient failure is answered (retryable) instead of abandoned again. */
  answerAfterDeliveries: z.number().int().min(1).default(5),
  /** Wait before abandoning a transiently failed command, times its delivery count (capped at 30 s). */
  redeliveryDelayInMs: z.number().int().min(0).default(1000),
  /** On SIGTERM, how long to wait for commands in flight before exiting anyway (they are redelivered). */
  stopGraceInMs: z.number().int().min(0).default(30_000),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;
/** The file as written (defaults may be left out). */
export type AgentConfigFile = z.input<typeof agentConfigSchema>;

export interface ResolvedAgentConfig {
  siteId: string;
  agentId?: string;
  serviceBus:
    { connectionString: string } | { fullyQualifiedNamespace: string; sasKeyName: string; sasKey: string };
  commandQueue: string;
  replyQueue: string;
  directory: Omit<AgentConfig['directory'], 'password' | 'caFile'> & { password: string; ca?: Buffer };
  cloudSigningKeys: Array<{ kid: string; publicKeyPem: string }>;
  sitePrivateKeyPem: string;
  agentSigningKeyPem?: string;
  nextSitePrivateKeyPem?: string;
  nextAgentSigningKeyPem?: string;
  previousSitePrivateKeyPem?: string;
  stateDir?: string;
  heartbeatIntervalInMs: number;
  maxConcurrentCommands: number;
  localAttempts: number;
  answerAfterDeliveries: number;
  redeliveryDelayInMs: number;
  stopGraceInMs: number;
}

function resolveSecret(source: SecretSource, base: string, env: NodeJS.ProcessEnv, what: string): string {
  if (typeof source === 'string') return source;
  if ('file' in source)
    return readFileSync(isAbsolute(source.file) ? source.file : resolve(base, source.file), 'utf8').trim();
  const value = env[source.env];
  if (value === undefined || value === '')
    throw new Error(`agent config: ${what} expects environment variable ${source.env}`);
  return value;
}

/** Parses and resolves a config object; throws with every missing/invalid field named. */
export function resolveAgentConfig(
  raw: unknown,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedAgentConfig {
  const parsed = agentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
    throw new Error(`invalid agent config:\n  ${problems.join('\n  ')}`);
  }
  const config = parsed.data;
  const file = (path: string): string =>
    readFileSync(isAbsolute(path) ? path : resolve(baseDir, path), 'utf8');
  const { password, caFile, ...directory } = config.directory;
  return {
    siteId: config.siteId,
    ...(config.agentId === undefined ? {} : { agentId: config.agentId }),
    serviceBus:
      'connectionString' in config.serviceBus
        ? {
            connectionString: resolveSecret(
              config.serviceBus.connectionString,
              baseDir,
              env,
              'serviceBus.connectionString',
            ),
          }
        : {
            fullyQualifiedNamespace: config.serviceBus.fullyQualifiedNamespace,
            sasKeyName: config.serviceBus.sasKeyName,
            sasKey: resolveSecret(config.serviceBus.sasKey, baseDir, env, 'serviceBus.sasKey'),
          },
    commandQueue: config.commandQueue ?? `agent-site-${config.siteId}`,
    replyQueue: config.replyQueue,
    directory: {
      ...directory,
      password: resolveSecret(password, baseDir, env, 'directory.password'),
      ...(caFile === undefined ? {} : { ca: Buffer.from(file(caFile)) }),
    },
    cloudSigningKeys: config.cloudSigningKeys.map((key) => {
      const pem = key.publicKeyPem ?? (key.publicKeyFile === undefined ? undefined : file(key.publicKeyFile));
      if (pem === undefined)
        throw new Error(`agent config: cloudSigningKeys ${key.kid} needs publicKeyPem or publicKeyFile`);
      return { kid: key.kid, publicKeyPem: pem };
    }),
    sitePrivateKeyPem: resolveSecret(config.sitePrivateKey, baseDir, env, 'sitePrivateKey'),
    ...(config.agentSigningKey === undefined
      ? {}
      : { agentSigningKeyPem: resolveSecret(config.agentSigningKey, baseDir, env, 'agentSigningKey') }),
    ...(config.nextSitePrivateKey === undefined
      ? {}
      : {
          nextSitePrivateKeyPem: resolveSecret(config.nextSitePrivateKey, baseDir, env, 'nextSitePrivateKey'),
        }),
    ...(config.previousSitePrivateKey === undefined
      ? {}
      : {
          previousSitePrivateKeyPem: resolveSecret(
            config.previousSitePrivateKey,
            baseDir,
            env,
            'previousSitePrivateKey',
          ),
        }),
    ...(config.nextAgentSigningKey === undefined
      ? {}
      : {
          nextAgentSigningKeyPem: resolveSecret(
            config.nextAgentSigningKey,
            baseDir,
            env,
            'nextAgentSigningKey',
          ),
        }),
    ...(config.stateDir === undefined
      ? {}
      : { stateDir: isAbsolute(config.stateDir) ? config.stateDir : resolve(baseDir, config.stateDir) }),
    heartbeatIntervalInMs: config.heartbeatIntervalInMs,
    maxConcurrentCommands: config.maxConcurrentCommands,
    localAttempts: config.localAttempts,
    answerAfterDeliveries: config.answerAfterDeliveries,
    redeliveryDelayInMs: config.redeliveryDelayInMs,
    stopGraceInMs: config.stopGraceInMs,
  };
}

export function loadAgentConfig(path: string, env: NodeJS.ProcessEnv = process.env): ResolvedAgentConfig {
  const raw: unknown = JSON.parse(readFileSync(path, 'utf8'));
  return resolveAgentConfig(raw, dirname(resolve(path)), env);
}
