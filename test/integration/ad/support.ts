import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client } from 'ldapts';
import { DcPool } from '../../../agent/ldap/pool.js';
import { LdapExecutor } from '../../../agent/ldap/executor.js';
import type { SambaPeer } from '../../../dev/peers/samba/index.js';
import {
  generateSigningKeyPair,
  generateSiteKeyPair,
  newEnvelope,
  openSecret,
  privateKeyFromPem,
  publicKeyFromPem,
  sealSecret,
  type Command,
  type CommandEnvelope,
} from '../../../shared/relay-protocol/index.js';

export const siteId = 'site-test';
export const allowedAttributes = ['mail', 'department', 'title', 'telephoneNumber', 'description'];

export function siteKeys() {
  const pair = generateSiteKeyPair();
  const agent = generateSigningKeyPair();
  return {
    ...pair,
    /** The agent's Ed25519 pair that signs replies and heartbeats. */
    agentPublicKeyPem: agent.publicKeyPem,
    agentPrivateKeyPem: agent.privateKeyPem,
    publicKey: publicKeyFromPem(pair.publicKeyPem, 'x25519'),
    privateKey: privateKeyFromPem(pair.privateKeyPem, 'x25519'),
  };
}

export function newExecutor(dc: SambaPeer, keys: ReturnType<typeof siteKeys>, urls?: string[]) {
  const pool = new DcPool({
    urls: urls ?? [dc.url],
    bindDn: dc.bindDn,
    password: dc.password,
    ca: readFileSync(dc.caFile),
    connectTimeoutInMs: 1500,
  });
  const executor = new LdapExecutor(
    pool,
    { allowedOus: [dc.atriaOu], allowedAttributes },
    { open: (sealed, binding) => openSecret(sealed, keys.privateKey, binding) },
  );
  return { pool, executor };
}

/** An envelope as the cloud would build it (without the signature: the executor runs after verification). */
export function envelope(command: Command, commandId = randomUUID()): CommandEnvelope {
  return newEnvelope({ commandId, siteId, command, now: new Date() });
}

/** createUser with a sealed password bound to the command id. */
export function createUserEnvelope(
  keys: ReturnType<typeof siteKeys>,
  dc: SambaPeer,
  fields: {
    sam: string;
    cn?: string;
    displayName?: string;
    password?: string;
    enabled?: boolean;
    ou?: string;
  },
  commandId = randomUUID(),
): CommandEnvelope {
  const password =
    fields.password === undefined
      ? undefined
      : sealSecret(fields.password, keys.publicKey, { commandId, siteId });
  return envelope(
    {
      type: 'createUser',
      ou: fields.ou ?? dc.usersOu,
      sAMAccountName: fields.sam,
      userPrincipalName: `${fields.sam}@atria.test`,
      displayName: fields.displayName ?? fields.cn ?? fields.sam,
      ...(fields.cn === undefined ? {} : { cn: fields.cn }),
      givenName: 'Test',
      sn: fields.sam,
      enabled: fields.enabled ?? fields.password !== undefined,
      ...(password === undefined ? {} : { password }),
    },
    commandId,
  );
}

/** A raw admin connection for assertions (what is really in the directory). */
export async function adminClient(dc: SambaPeer): Promise<Client> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: [readFileSync(dc.caFile)] } });
  await client.bind(dc.bindDn, dc.password);
  return client;
}

export async function canBind(dc: SambaPeer, upnOrDn: string, password: string): Promise<boolean> {
  const client = new Client({ url: dc.url, tlsOptions: { ca: [readFileSync(dc.caFile)] } });
  try {
    await client.bind(upnOrDn, password);
    return true;
  } catch {
    return false;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

export const strongPassword = (): string => `Aa1!${randomUUID().slice(0, 12)}`;
