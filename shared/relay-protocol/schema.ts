import { z } from 'zod';

/**
 * The relay contract between the cloud (Functions) and the on-prem agent, version 1.
 *
 * Cloud → agent: a `SignedCommand` on queue `agent-site-<siteId>`, body = JSON
 *   `{ v: 1, envelope: CommandEnvelope, signature: { alg: 'Ed25519', kid, value } }`
 *   where `value` is base64url(Ed25519(canonicalJson(envelope))) by the cloud's signing key (see signing.ts).
 *   Service Bus `messageId` = `cmd-<commandId>` (duplicate detection), `correlationId` = commandId.
 * Agent → cloud: a `Reply` or `Heartbeat` on queue `agent-replies`, `correlationId` = the command's
 *   correlation id, `messageId` = `reply-<commandId>`.
 *
 * Conventions: objectGUID always travels as base64 of its 16 bytes (the same string Entra stores as
 * `onPremisesImmutableId`); DNs are RFC 4514 strings; times are ISO 8601 UTC; a password is never plain
 * text on the wire but a `SealedSecret` for the site's X25519 key (see password.ts).
 */

export const protocolVersion = 1;

/** base64 of exactly 16 bytes. */
export const objectGuidSchema = z
  .string()
  .regex(/^[A-Za-z0-9+/]{22}==$/, 'objectGUID must be base64 of 16 bytes')
  .describe('base64 of the 16 objectGUID bytes');

// ≤ 120 so `cmd-<id>` fits Service Bus's 128-character messageId.
const idSchema = z
  .string()
  .min(1)
  .max(120)
  .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

export const siteIdSchema = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'lower-case letters, digits and inner hyphens');

const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/);

/** A secret encrypted to the site's X25519 public key, bound to one command (see password.ts). */
export const sealedSecretSchema = z.strictObject({
  alg: z.literal('X25519-HKDF-SHA256-A256GCM'),
  /** The sender's ephemeral X25519 public key, raw 32 bytes, base64url. */
  epk: base64url,
  iv: base64url,
  ct: base64url,
  tag: base64url,
});
export type SealedSecret = z.infer<typeof sealedSecretSchema>;

/** An RFC 4514 DN as text; the agent parses and scope-checks it. */
const dnSchema = z.string().min(3).max(2048);

/** Which directory object a command is about: by objectGUID (preferred, survives renames/moves) or DN. */
export const objectRefSchema = z.union([
  z.strictObject({ objectGuid: objectGuidSchema }),
  z.strictObject({ dn: dnSchema }),
]);
export type ObjectRef = z.infer<typeof objectRefSchema>;

/** Plain text directory attribute values (no binary attributes through this path). */
const attributeValue = z.string().min(1).max(1024);
const attributeName = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, 'an LDAP attribute name');

export const createUserCommandSchema = z.strictObject({
  type: z.literal('createUser'),
  /** The OU to create the user in (must be inside the agent's allowed OUs). */
  ou: dnSchema,
  /** Windows AD rules, enforced by the agent: ≤ 20 chars, none of " / \ [ ] : ; | = , + * ? < > */
  sAMAccountName: z.string().min(1).max(64),
  userPrincipalName: z.string().min(3).max(1024),
  givenName: z.string().min(1).max(64).optional(),
  sn: z.string().min(1).max(64).optional(),
  displayName: z.string().min(1).max(256),
  /** Common name (RDN value); defaults to displayName. */
  cn: z.string().min(1).max(64).optional(),
  /** Required when `enabled`: AD never holds an enabled account without a password. */
  password: sealedSecretSchema.optional(),
  enabled: z.boolean(),
  /** Further attributes (each must be in the agent's allow-list). */
  attributes: z.record(attributeName, attributeValue).optional(),
});

export const updateAttributesCommandSchema = z.strictObject({
  type: z.literal('updateAttributes'),
  target: objectRefSchema,
  /** Attribute → new value; null clears the attribute. */
  set: z.record(attributeName, attributeValue.nullable()),
});

export const enableCommandSchema = z.strictObject({ type: z.literal('enable'), target: objectRefSchema });
export const disableCommandSchema = z.strictObject({ type: z.literal('disable'), target: objectRefSchema });

export const resetPasswordCommandSchema = z.strictObject({
  type: z.literal('resetPassword'),
  target: objectRefSchema,
  password: sealedSecretSchema,
  mustChangeAtNextLogon: z.boolean().optional(),
});

export const moveCommandSchema = z.strictObject({
  type: z.literal('move'),
  target: objectRefSchema,
  newOu: dnSchema,
});
export const deleteCommandSchema = z.strictObject({ type: z.literal('delete'), target: objectRefSchema });

export const groupAddCommandSchema = z.strictObject({
  type: z.literal('groupAdd'),
  group: objectRefSchema,
  member: objectRefSchema,
});
export const groupRemoveCommandSchema = z.strictObject({
  type: z.literal('groupRemove'),
  group: objectRefSchema,
  member: objectRefSchema,
});

export const findUserCommandSchema = z.strictObject({
  type: z.literal('findUser'),
  by: z.enum(['objectGuid', 'userPrincipalName', 'sAMAccountName']),
  value: z.string().min(1).max(1024),
});

export const listChangesCommandSchema = z.strictObject({
  type: z.literal('listChanges'),
  /** Opaque watermark from a previous listChanges (the highest uSNChanged seen, as decimal); omit for all. */
  since: z
    .string()
    .regex(/^\d{1,20}$/)
    .optional(),
  pageSize: z.number().int().min(1).max(1000).optional(),
});

/**
 * A group's members, nested membership resolved (AD: LDAP_MATCHING_RULE_IN_CHAIN), only objects inside
 * the agent's allowed OUs. Paged by objectGUID order: pass the previous page's `next` as `after`.
 */
export const listGroupMembersCommandSchema = z.strictObject({
  type: z.literal('listGroupMembers'),
  group: objectRefSchema,
  after: objectGuidSchema.optional(),
  pageSize: z.number().int().min(1).max(1000).optional(),
});

export const commandSchema = z.discriminatedUnion('type', [
  createUserCommandSchema,
  updateAttributesCommandSchema,
  enableCommandSchema,
  disableCommandSchema,
  resetPasswordCommandSchema,
  moveCommandSchema,
  deleteCommandSchema,
  groupAddCommandSchema,
  groupRemoveCommandSchema,
  findUserCommandSchema,
  listChangesCommandSchema,
  listGroupMembersCommandSchema,
]);
export type Command = z.infer<typeof commandSchema>;
export type CommandType = Command['type'];
export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;

export const commandEnvelopeSchema = z.strictObject({
  v: z.literal(protocolVersion),
  /** The operation/step id: the idempotency key of this command. */
  commandId: idSchema,
  siteId: siteIdSchema,
  issuedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  /** 16+ random bytes, base64url; the agent refuses a nonce it has seen before expiry. */
  nonce: base64url.min(22).max(64),
  command: commandSchema,
});
export type CommandEnvelope = z.infer<typeof commandEnvelopeSchema>;

export const signedCommandSchema = z.strictObject({
  v: z.literal(protocolVersion),
  envelope: z.unknown(),
  signature: z.strictObject({
    alg: z.literal('Ed25519'),
    /** Which cloud signing key (lets the agent accept old + new during a key rotation). */
    kid: z.string().min(1).max(64),
    value: base64url,
  }),
});
export type SignedCommand = z.infer<typeof signedCommandSchema>;

// ---- results ----

export const directoryUserSchema = z.strictObject({
  objectGuid: objectGuidSchema,
  dn: z.string(),
  sAMAccountName: z.string(),
  userPrincipalName: z.string().optional(),
  displayName: z.string().optional(),
  givenName: z.string().optional(),
  sn: z.string().optional(),
  enabled: z.boolean(),
  /** base64 of ms-DS-ConsistencyGuid (equals objectGuid once stamped). */
  consistencyGuid: objectGuidSchema.optional(),
  /** Allow-listed extra attributes present on the object. */
  attributes: z.record(z.string(), z.string()),
  usnChanged: z.string(),
});
export type DirectoryUser = z.infer<typeof directoryUserSchema>;

export const deletedObjectSchema = z.strictObject({
  objectGuid: objectGuidSchema,
  deleted: z.literal(true),
  usnChanged: z.string(),
});

export const resultSchemas = {
  createUser: z.strictObject({
    user: directoryUserSchema,
    /** true when a redelivery found the object this command created */ replayed: z.boolean(),
  }),
  updateAttributes: z.strictObject({ user: directoryUserSchema }),
  enable: z.strictObject({ user: directoryUserSchema }),
  disable: z.strictObject({ user: directoryUserSchema }),
  resetPassword: z.strictObject({ objectGuid: objectGuidSchema }),
  move: z.strictObject({ user: directoryUserSchema }),
  delete: z.strictObject({ objectGuid: objectGuidSchema.optional(), alreadyAbsent: z.boolean() }),
  groupAdd: z.strictObject({ changed: z.boolean() }),
  groupRemove: z.strictObject({ changed: z.boolean() }),
  findUser: z.strictObject({ user: directoryUserSchema.nullable() }),
  listChanges: z.strictObject({
    changes: z.array(z.union([directoryUserSchema, deletedObjectSchema])),
    watermark: z.string(),
    more: z.boolean(),
  }),
  listGroupMembers: z.strictObject({
    group: z.strictObject({ objectGuid: objectGuidSchema, dn: z.string() }),
    members: z.array(
      z.strictObject({
        objectGuid: objectGuidSchema,
        dn: z.string(),
        kind: z.enum(['user', 'group']),
        /** Users only: false when the account is disabled. */
        enabled: z.boolean().optional(),
        /**
         * The groups of this answer (the listed group or a nested one) the object is a direct member of,
         * by objectGUID; the listed group when the path runs through a group outside the allowed OUs.
         */
        memberOf: z.array(objectGuidSchema).min(1),
      }),
    ),
    /** Pass as `after` for the next page; absent on the last page. */
    next: objectGuidSchema.optional(),
  }),
} satisfies Record<CommandType, z.ZodType>;
export type CommandResult<T extends CommandType> = z.infer<(typeof resultSchemas)[T]>;

// ---- agent → cloud ----

export const replyErrorSchema = z.strictObject({
  /** An ErrorCode of shared/errors.ts. */
  code: z.string().min(1).max(64),
  message: z.string().max(2000),
  retryable: z.boolean(),
});

/**
 * Optional on agent messages: Ed25519 by the site's agent key over canonicalJson(message without
 * `signature`). When the cloud knows a site's agent key it drops unsigned or badly signed messages, so one
 * site's agent (which may Send to the shared reply queue) cannot answer for another site.
 */
export const agentSignatureSchema = z.strictObject({ alg: z.literal('Ed25519'), value: base64url });
/*
 * `nextSignature` (agents ≥ 0.2.0, during a key rotation): the same message signed with the agent's
 * next Ed25519 key as well, over the same bytes (canonicalJson without either signature). The cloud
 * accepts a message when either signature verifies with either key it holds for the site (current,
 * and next while a rotation is open), so agents and cloud switch keys without coordinating a moment.
 */

export const replySchema = z.discriminatedUnion('ok', [
  z.strictObject({
    v: z.literal(protocolVersion),
    type: z.literal('reply'),
    commandId: idSchema,
    siteId: siteIdSchema,
    commandType: z.string().optional(),
    /** The answered envelope's `issuedAt` (the cloud's own clock): the cloud measures the round trip. */
    commandIssuedAt: z.iso.datetime().optional(),
    ok: z.literal(true),
    result: z.unknown(),
    signature: agentSignatureSchema.optional(),
    nextSignature: agentSignatureSchema.optional(),
  }),
  z.strictObject({
    v: z.literal(protocolVersion),
    type: z.literal('reply'),
    commandId: idSchema,
    siteId: siteIdSchema,
    commandType: z.string().optional(),
    commandIssuedAt: z.iso.datetime().optional(),
    ok: z.literal(false),
    error: replyErrorSchema,
    signature: agentSignatureSchema.optional(),
    nextSignature: agentSignatureSchema.optional(),
  }),
]);
export type Reply = z.infer<typeof replySchema>;

export const heartbeatSchema = z.strictObject({
  v: z.literal(protocolVersion),
  type: z.literal('heartbeat'),
  siteId: siteIdSchema,
  agentVersion: z.string().max(64),
  /** Which agent of the site (several may consume its queue); absent from agents older than this field. */
  agentId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .optional(),
  /** DC URLs that answered a bind in the last probe. */
  dcsReachable: z.array(z.string()),
  /** Messages waiting in the site's queue when last known (-1 when unknown). */
  queueLag: z.number().int(),
  lastError: z.string().max(2000).optional(),
  at: z.iso.datetime(),
  signature: agentSignatureSchema.optional(),
  nextSignature: agentSignatureSchema.optional(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export const agentMessageSchema = z.union([replySchema, heartbeatSchema]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

export function commandQueueName(siteId: string): string {
  return `agent-site-${siteId}`;
}
export const replyQueueName = 'agent-replies';
export function commandMessageId(commandId: string): string {
  return `cmd-${commandId}`;
}
export function replyMessageId(commandId: string): string {
  return `reply-${commandId}`;
}
