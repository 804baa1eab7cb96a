/**
 * A customer's on-prem Active Directory, for one site (reached through that site's relay agent).
 * Every call carries a `commandId`: the idempotency key of the step (the operation/step id), so a retried
 * call with the same id returns the first outcome instead of applying twice. Failures are AppErrors:
 * AlreadyExists, PasswordPolicy, NotFound, OutOfScope, Validation, Forbidden, InvalidCredentials (the
 * agent's service account), Unavailable/Timeout (retryable: the site or its DCs are unreachable).
 */

/** objectGUID as base64 of its 16 bytes (equals Entra's onPremisesImmutableId for the user). */
export type ObjectGuid = string;

export type OnPremRef = { objectGuid: ObjectGuid } | { dn: string };

export interface OnPremUser {
  objectGuid: ObjectGuid;
  dn: string;
  sAMAccountName: string;
  userPrincipalName?: string;
  displayName?: string;
  givenName?: string;
  sn?: string;
  enabled: boolean;
  /** base64 ms-DS-ConsistencyGuid (the agent stamps it with the objectGUID on create). */
  consistencyGuid?: ObjectGuid;
  attributes: Record<string, string>;
  usnChanged: string;
}

export interface NewOnPremUser {
  ou: string;
  sAMAccountName: string;
  userPrincipalName: string;
  displayName: string;
  givenName?: string;
  sn?: string;
  cn?: string;
  /** Plain text here; the adapter seals it to the site's key before it leaves the process. */
  password?: string;
  enabled: boolean;
  attributes?: Record<string, string>;
}

export interface OnPremCallOptions {
  /** Idempotency key (operation/step id); ≤ 120 chars of letters, digits, . _ : - */
  commandId: string;
  /** How long to wait for the agent's answer; Timeout (retryable) after it. */
  timeoutInMs?: number;
  abortSignal?: AbortSignal;
}

export interface OnPremChanges {
  changes: Array<OnPremUser | { objectGuid: ObjectGuid; deleted: true; usnChanged: string }>;
  /** Pass back as `since` to get only later changes. */
  watermark: string;
  more: boolean;
}

/** A member of an AD group, nested membership resolved; only objects inside the agent's allowed OUs. */
export interface OnPremGroupMember {
  objectGuid: ObjectGuid;
  dn: string;
  kind: 'user' | 'group';
  /** Users only. */
  enabled?: boolean;
  /** The groups of the answer (the listed one or nested ones) it is a direct member of. */
  memberOf: ObjectGuid[];
}

export interface OnPremDirectory {
  readonly siteId: string;
  /** Creates (or, for a repeated commandId, returns) the user; `replayed` says it already existed. */
  createUser(
    user: NewOnPremUser,
    options: OnPremCallOptions,
  ): Promise<{ user: OnPremUser; replayed: boolean }>;
  updateAttributes(
    target: OnPremRef,
    set: Record<string, string | null>,
    options: OnPremCallOptions,
  ): Promise<OnPremUser>;
  enable(target: OnPremRef, options: OnPremCallOptions): Promise<OnPremUser>;
  disable(target: OnPremRef, options: OnPremCallOptions): Promise<OnPremUser>;
  resetPassword(
    target: OnPremRef,
    password: string,
    options: OnPremCallOptions & { mustChangeAtNextLogon?: boolean },
  ): Promise<void>;
  move(target: OnPremRef, newOu: string, options: OnPremCallOptions): Promise<OnPremUser>;
  /** Deleting an absent object succeeds with `alreadyAbsent: true`. */
  delete(target: OnPremRef, options: OnPremCallOptions): Promise<{ alreadyAbsent: boolean }>;
  findUser(
    by: 'objectGuid' | 'userPrincipalName' | 'sAMAccountName',
    value: string,
    options: OnPremCallOptions,
  ): Promise<OnPremUser | null>;
  listChanges(
    since: string | undefined,
    options: OnPremCallOptions & { pageSize?: number },
  ): Promise<OnPremChanges>;
  /**
   * Every member of the group, nested groups resolved, all pages (each page its own command,
   * `<commandId>.<page>`: pass a fresh commandId per snapshot, since a repeated id replays the answer).
   */
  listGroupMembers(
    group: OnPremRef,
    options: OnPremCallOptions & { pageSize?: number },
  ): Promise<{ group: { objectGuid: ObjectGuid; dn: string }; members: OnPremGroupMember[] }>;
}

/**
 * Commands a saga step hands to a site's agent without waiting: the reply arrives on `agent-replies`,
 * is saved on the step and resumes the operation from storage (nobody holds a worker while the agent
 * works). Results come back as flat facts (`objectGuid`, `dn`, `sAMAccountName`, `alreadyAbsent`…).
 */
export type OnPremCommand =
  | { type: 'createUser'; user: NewOnPremUser }
  | { type: 'updateAttributes'; target: OnPremRef; set: Record<string, string | null> }
  | { type: 'enable'; target: OnPremRef }
  | { type: 'disable'; target: OnPremRef }
  | { type: 'delete'; target: OnPremRef }
  | { type: 'resetPassword'; target: OnPremRef; password: string; mustChangeAtNextLogon?: boolean }
  | { type: 'groupAdd'; group: OnPremRef; member: OnPremRef }
  | { type: 'groupRemove'; group: OnPremRef; member: OnPremRef };

export interface SubmitOptions {
  /** The step's idempotency key at the agent: the same for every send attempt. */
  commandId: string;
  /** This attempt's message id: a fresh one per send, so duplicate detection never drops a retry. */
  sendId: string;
  /** The agent refuses the command after this (tied to the operation's deadline), and it expires unread. */
  expiresAt: Date;
  correlationId?: string;
}

export interface OnPremCommandChannel {
  readonly siteId: string;
  submit(command: OnPremCommand, options: SubmitOptions): Promise<void>;
}

/** A reply as the engine sees it, after the relay checked the site agent's signature. */
export type OnPremReply =
  | { siteId: string; commandId: string; ok: true; result: Record<string, string> }
  | {
      siteId: string;
      commandId: string;
      ok: false;
      error: { code: string; message: string; retryable: boolean; attribute?: string };
    };
