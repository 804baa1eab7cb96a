import { z } from 'zod';
import { sAMAccountNamePattern, upnPattern } from './identity.js';
import { controlCharacterMessage, hasControlCharacter, singleLineText } from './text.js';

/**
 * A group in one of the customer's directories, as a path segment: `ad.<objectGUID as base64url>` or
 * `entra.<object id>`. base64url because a plain base64 objectGUID may hold `/`.
 */
export const groupPathIdSchema = z
  .string()
  .regex(
    /^(ad\.[A-Za-z0-9_-]{22}(==)?|entra\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/,
    'ad.<objectGUID base64url> or entra.<object id>',
  );

/** A membership change of one user in one group (the request of user.groupAdd / user.groupRemove). */
export const groupMembershipRequestSchema = z.strictObject({
  directory: z.enum(['ad', 'entra']),
  /** AD: the group's objectGUID (base64); Entra: its object id. */
  groupId: z.string().min(1).max(64),
});
export type GroupMembershipRequest = z.infer<typeof groupMembershipRequestSchema>;

/** `ad.<base64url>` / `entra.<id>` → the directory and its own id (objectGUID back to plain base64). */
export function groupFromPathId(pathId: string): GroupMembershipRequest {
  const dot = pathId.indexOf('.');
  const directory = pathId.slice(0, dot);
  const id = pathId.slice(dot + 1);
  if (directory === 'ad')
    return { directory, groupId: Buffer.from(id.replace(/=+$/, ''), 'base64url').toString('base64') };
  return { directory: 'entra', groupId: id.toLowerCase() };
}

/** The path form of a group (inverse of groupFromPathId). */
export function groupPathId(group: GroupMembershipRequest): string {
  return group.directory === 'ad'
    ? `ad.${Buffer.from(group.groupId, 'base64').toString('base64url')}`
    : `entra.${group.groupId}`;
}

function groupMembershipSchema() {
  return z.object({
    directory: z.enum(['ad', 'entra']),
    groupId: z.string(),
    /** When the membership was confirmed by the directory. */
    since: z.string(),
    operationId: z.string(),
  });
}

/** Atria's view of one user of one customer, linking its ids in both directories. */
export const userStates = [
  'provisioning',
  'active',
  'needsLicence',
  'disabled',
  'failed',
  'deleted',
] as const;

export const userIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, . _ - (≤ 64)');

/**
 * The body of POST /api/customers/{id}/users (and of the public `user.create` queue command). Strict:
 * an unknown field is refused by name. Names are single lines (no NUL, line breaks or other controls).
 */
export const createUserRequestSchema = z.strictObject({
  /** Atria's own id for the user: the key every later call uses. */
  userId: userIdSchema,
  userPrincipalName: z.string().trim().regex(upnPattern, 'must be alias@domain with allowed characters'),
  displayName: singleLineText(256),
  givenName: singleLineText(64).optional(),
  surname: singleLineText(64).optional(),
  mailNickname: z
    .string()
    .regex(/^[^@()\\[\]";:.<>, ]{1,64}$/)
    .refine((value) => !hasControlCharacter(value), controlCharacterMessage)
    .optional(),
  sAMAccountName: z
    .string()
    .regex(sAMAccountNamePattern, '≤ 20 characters, none of " / \\ [ ] : ; | = , + * ? < > @ or spaces')
    .refine((value) => !hasControlCharacter(value), controlCharacterMessage)
    .optional(),
  usageLocation: z
    .string()
    .regex(/^[A-Z]{2}$/)
    .optional(),
  jobTitle: singleLineText(128, 0).optional(),
  department: singleLineText(64, 0).optional(),
  accountEnabled: z.boolean().default(true),
  /** Name of one of the customer's licence plans. */
  licencePlan: singleLineText(64).optional(),
  /**
   * Initial password for AD (adOnly, hybridFederated, both) and for the cloud account in `both`. Sealed
   * at once, never stored or queued in clear. Cloud-only users get a random one and must change it.
   */
  password: z.string().min(8).max(256).optional(),
  /**
   * Groups to join once the user exists (`ad.<objectGUID base64url>` / `entra.<id>`): each becomes its own
   * group operation after the create succeeds.
   */
  groups: z
    .array(groupPathIdSchema)
    .max(50)
    .refine((ids) => new Set(ids).size === ids.length, 'each group once')
    .optional(),
  /**
   * First working day (UTC date). A future one defers the create to 00:00 UTC that day and, until
   * then, reserves a seat of the plan in the autoscaler's demand, so the seat is there on day one.
   */
  startDate: z.iso.date().optional(),
  /** Last working day, when known: the autoscaler counts the user's seats as leaving from then. */
  endDate: z.iso.date().optional(),
});
export type CreateUserRequest = z.infer<typeof createUserRequestSchema>;

export const userRecordSchema = z.object({
  userId: z.string(),
  providerId: z.string(),
  customerId: z.string(),
  userPrincipalName: z.string(),
  displayName: z.string(),
  state: z.enum(userStates),
  ad: z.object({ objectGuid: z.string(), dn: z.string(), sAMAccountName: z.string() }).optional(),
  entra: z.object({ objectId: z.string(), onPremisesImmutableId: z.string().optional() }).optional(),
  licences: z.array(z.object({ skuId: z.string(), assignedAt: z.string() })).default([]),
  /** Group memberships made through atria-m365 (derived from finished group operations). */
  groups: z.array(groupMembershipSchema()).optional(),
  /** From the create request (UTC dates): a scheduled starter, a known leaver. */
  startDate: z.string().optional(),
  endDate: z.string().optional(),
  lastOperationId: z.string(),
  /**
   * The create that made this incarnation of the user id: its operation, and for a create under the
   * implicit key (the user id) the request's fingerprint, so a repeat of that request is answered from
   * this record (no idempotency row). Internal, never shown (visibleUser).
   */
  creation: z.object({ operationId: z.string(), requestHash: z.string().optional() }).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type UserRecord = z.infer<typeof userRecordSchema>;

/** The user record as the API shows and documents it (visibleUser). */
export const visibleUserSchema = userRecordSchema.omit({ creation: true });

/** What a stored user record shows a caller: not the internal `creation`. */
export function visibleUser(user: UserRecord): UserRecord {
  return visibleUserSchema.parse(user);
}

/** PATCH …/users/{userId}: attributes written to every directory the user lives in. */
export const updateUserRequestSchema = z
  .object({
    displayName: singleLineText(256).optional(),
    givenName: singleLineText(64).optional(),
    surname: singleLineText(64).optional(),
    jobTitle: singleLineText(128, 0).optional(),
    department: singleLineText(64, 0).optional(),
    usageLocation: z
      .string()
      .regex(/^[A-Z]{2}$/)
      .optional(),
  })
  .strict()
  .refine((body) => Object.keys(body).length > 0, 'name at least one attribute to change');
export type UpdateUserRequest = z.infer<typeof updateUserRequestSchema>;

/** POST …/users/{userId}/password (sealed at once, like the create password). */
export const passwordRequestSchema = z.strictObject({
  password: z.string().min(8).max(256),
  forceChangePasswordNextSignIn: z.boolean().default(false),
});

/** POST …/users/{userId}/licences: switch to another plan of the customer, or to none. */
export const licencesRequestSchema = z.strictObject({ licencePlan: singleLineText(64).nullable() });
