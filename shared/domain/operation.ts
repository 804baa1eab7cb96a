import { z } from 'zod';
import {
  createUserRequestSchema,
  groupMembershipRequestSchema,
  licencesRequestSchema,
  updateUserRequestSchema,
} from './user.js';

/**
 * A long-running request (create a user in one or two directories, then licences; or a change) as a list
 * of typed steps, persisted around every side effect so a crash resumes where it stopped and a retry never
 * repeats a done step. See "The operation engine" in shared/ARCHITECTURE.md.
 *
 * Step life: pending → running (lease taken, attempt counted) → done | waitingForAgent (command sent,
 * parked) → done | failed; on a permanent failure the done steps go compensating → compensated |
 * compensationFailed, newest first. `waiting` is a step held for a free licence.
 */
export const stepStates = [
  'pending',
  'running',
  'waitingForAgent',
  'done',
  'failed',
  'compensating',
  'compensated',
  'compensationFailed',
  'skipped',
  'waiting',
] as const;
export type StepState = (typeof stepStates)[number];

export const operationKinds = [
  'user.create',
  'user.update',
  'user.disable',
  'user.enable',
  'user.delete',
  'user.password',
  'user.licences',
  'user.groupAdd',
  'user.groupRemove',
] as const;
export type OperationKind = (typeof operationKinds)[number];

export const operationStates = [
  'heldForConfirmation',
  'queued',
  'running',
  /** A step's command is with the site's agent; its reply (or the sweeper, at the deadline) resumes it. */
  'waitingForAgent',
  /** A retryable failure: a scheduled message brings it back at `nextAttemptAt`. */
  'retryScheduled',
  'needsLicence',
  /** A permanent failure is being undone (the original error is kept in `error`). */
  'compensating',
  'succeeded',
  'failed',
  'compensated',
  /** An undo failed permanently: a person must look (both errors are kept). */
  'compensationFailed',
  'cancelled',
] as const;
export type OperationState = (typeof operationStates)[number];

export const errorInfoSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean().optional(),
  /** The attribute a clash or validation error is about (e.g. sAMAccountName). */
  attribute: z.string().optional(),
});
export type ErrorInfo = z.infer<typeof errorInfoSchema>;

/** A command with the site's agent: re-sent under a new message id per attempt, same command id. */
export const parkedCommandSchema = z.object({
  commandId: z.string(),
  /** This send attempt's Service Bus message id (a fresh one per attempt: duplicate detection never eats it). */
  sendId: z.string(),
  sends: z.number().int().positive(),
  sentAt: z.string(),
  /** Past this, the sweeper sends again (or fails the operation past its own deadline). */
  deadline: z.string(),
  phase: z.enum(['execute', 'compensate']),
});
export type ParkedCommand = z.infer<typeof parkedCommandSchema>;

/** The agent's answer, saved on the step by the reply trigger and consumed by the runner. */
export const agentReplySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), commandId: z.string(), result: z.record(z.string(), z.string()) }),
  z.object({ ok: z.literal(false), commandId: z.string(), error: errorInfoSchema }),
]);
export type AgentReply = z.infer<typeof agentReplySchema>;

export const stepSchema = z.object({
  name: z.string(),
  state: z.enum(stepStates),
  attempts: z.number().int().nonnegative(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  error: errorInfoSchema.optional(),
  /** Facts the step learned that later steps and the user record need (objectGuid, entra id…). */
  result: z.record(z.string(), z.string()).optional(),
  parked: parkedCommandSchema.optional(),
  reply: agentReplySchema.optional(),
  /** Why its undo failed (the step's own `error`, if any, is the original failure). */
  undoError: errorInfoSchema.optional(),
});
export type Step = z.infer<typeof stepSchema>;

/** Owner and expiry of the run that may cause side effects now; written with the etag before any. */
export const leaseSchema = z.object({ owner: z.string(), expiresAt: z.string() });

const noBody = z.object({}).strict();
export const storedCreateRequestSchema = createUserRequestSchema.omit({ password: true });
export const passwordChangeSchema = z.object({ forceChangePasswordNextSignIn: z.boolean() });

const base = {
  operationId: z.string(),
  providerId: z.string(),
  customerId: z.string(),
  userId: z.string(),
  state: z.enum(operationStates),
  steps: z.array(stepSchema),
  correlationId: z.string(),
  idempotencyKey: z.string().optional(),
  /** A password sealed with the app's operation key; erased once the directories have it. */
  sealedPassword: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Past this the operation fails visibly with its last error (never `running` forever). */
  deadline: z.string(),
  /** Its place among the operations of its user (they apply in this order). */
  userSequence: z.number().int().nonnegative().optional(),
  /**
   * A create: the etag of the user record its request wrote (`acceptedUserRecord`). While the record
   * still has it, finishing needs no read of it. Internal, never shown.
   */
  userRecordEtag: z.string().optional(),
  /**
   * A create under the implicit key: its request's fingerprint, which its user record keeps (`creation`)
   * to answer a repeat of the request. Internal, never shown.
   */
  requestHash: z.string().optional(),
  /** Forward (running the steps) or compensating (undoing the done ones, newest first). */
  phase: z.enum(['forward', 'compensating']).default('forward'),
  /** Retryable failures so far (drives the backoff). */
  retries: z.number().int().nonnegative().default(0),
  nextAttemptAt: z.string().optional(),
  lease: leaseSchema.optional(),
  /** The original failure (kept through compensation). */
  error: errorInfoSchema.optional(),
  /** Set once the user record reflects this finished operation (a crash in between heals on the next run). */
  outcomeApplied: z.boolean().optional(),
  /** It was held for a licence (so it may have a row in the licence sweep's index to remove at its end). */
  heldForLicence: z.literal(true).optional(),
  /** Someone asked to stop it: no new step starts; done steps are undone; it ends `cancelled`. */
  cancelRequested: z.boolean().optional(),
  /** The failed/compensated operation this one retries, and the one that retried this. */
  retryOf: z.string().optional(),
  retriedBy: z.string().optional(),
};

/** The operation's request is typed by its kind: no record of unknowns, no casts. */
function byKind<B extends z.ZodRawShape>(fields: B) {
  return z.discriminatedUnion('kind', [
    z.object({ ...fields, kind: z.literal('user.create'), request: storedCreateRequestSchema }),
    z.object({ ...fields, kind: z.literal('user.update'), request: updateUserRequestSchema }),
    z.object({ ...fields, kind: z.literal('user.disable'), request: noBody }),
    z.object({ ...fields, kind: z.literal('user.enable'), request: noBody }),
    z.object({ ...fields, kind: z.literal('user.delete'), request: noBody }),
    z.object({ ...fields, kind: z.literal('user.password'), request: passwordChangeSchema }),
    z.object({ ...fields, kind: z.literal('user.licences'), request: licencesRequestSchema }),
    z.object({ ...fields, kind: z.literal('user.groupAdd'), request: groupMembershipRequestSchema }),
    z.object({ ...fields, kind: z.literal('user.groupRemove'), request: groupMembershipRequestSchema }),
  ]);
}
export const operationSchema = byKind(base);
// What a caller is shown (visibleOperation) and what the API documents: no secret, no internal field.
const {
  sealedPassword: _sealed,
  lease: _lease,
  userRecordEtag: _etag,
  requestHash: _hash,
  ...visibleBase
} = base;
export const visibleOperationSchema = byKind(visibleBase);
export type Operation = z.infer<typeof operationSchema>;
export type OperationOf<K extends OperationKind> = Extract<Operation, { kind: K }>;
export type RequestOf<K extends OperationKind> = OperationOf<K>['request'];
/** A change request (anything but a create), typed by kind. */
export type ChangeRequest = {
  [K in Exclude<OperationKind, 'user.create'>]: { kind: K; request: RequestOf<K> };
}[Exclude<OperationKind, 'user.create'>];

export function newStep(name: string): Step {
  return { name, state: 'pending', attempts: 0 };
}

const finalStates = new Set<OperationState>([
  'succeeded',
  'failed',
  'compensated',
  'compensationFailed',
  'cancelled',
]);
export const isFinished = (state: OperationState): boolean => finalStates.has(state);

/** States in which a later operation of the same user must wait (per-user order). */
export function blocksLaterOperations(op: Pick<Operation, 'state' | 'outcomeApplied'>): boolean {
  if (isFinished(op.state)) return op.outcomeApplied !== true && op.state !== 'cancelled';
  // A create held for a licence has made the user; a held disable/delete is not accepted yet.
  return op.state !== 'needsLicence' && op.state !== 'heldForConfirmation';
}

/** What a stored operation shows a caller: never the sealed password, nor the internal fields. */
export function visibleOperation(op: Operation): Operation {
  return visibleOperationSchema.parse(op);
}

export type ChangeKind = Exclude<OperationKind, 'user.create'>;

/**
 * Pairs a change kind with its request. TypeScript cannot correlate a generic kind with its union
 * member, so the one assertion lives here, guarded by the signature.
 */
export function changeRequest<K extends ChangeKind>(kind: K, request: RequestOf<K>): ChangeRequest {
  return { kind, request } as ChangeRequest;
}
