import { z } from 'zod';
import { operationSchema, type Operation } from '../../domain/operation.js';
import { userRecordSchema, type UserRecord } from '../../domain/user.js';
import type { Store } from '../../ports/store.js';
import { customersCollection } from '../customers.js';

/**
 * The engine's tables. Operations are keyed by provider; the indexes let the sweeper find unfinished
 * work (activeoperations), a run find earlier operations of its user (useroperations) and the guard
 * count with an etag (guardcounters). An agent reply needs no index: its command id names the
 * operation and its site the provider (runner.ts, acceptReply). Earlier builds wrote one
 * `agentcommands` row per command; nothing reads that table any more.
 */
const idempotencySchema = z.object({
  operationId: z.string(),
  /** HMAC-SHA256 of the request under the server's fingerprint key (never a bare hash of a password). */
  requestHash: z.string(),
  createdAt: z.string(),
});
const indexSchema = z.object({ operationId: z.string() });
const heldSchema = z.object({
  providerId: z.string(),
  operationId: z.string(),
  customerId: z.string(),
  heldAt: z.string(),
});
const activeSchema = z.object({ providerId: z.string(), operationId: z.string(), since: z.string() });
const guardCounterSchema = z.object({
  /** Guarded requests per minute inside the window: [minute start (ms since epoch), count]. */
  minutes: z.array(z.tuple([z.number(), z.number().int().positive()])),
});
const sequenceSchema = z.object({ next: z.number().int().nonnegative() });
const passwordDropSchema = z.object({
  providerId: z.string(),
  customerId: z.string(),
  sealedPassword: z.string(),
  expiresAt: z.string(),
});

/**
 * The user record a create's request writes, rebuilt from the operation alone (the runner uses it to
 * finish without reading the record while its etag is still `userRecordEtag`): keep it the one source.
 */
export function acceptedUserRecord(o: Extract<Operation, { kind: 'user.create' }>): UserRecord {
  const { request } = o;
  return {
    userId: request.userId,
    providerId: o.providerId,
    customerId: o.customerId,
    userPrincipalName: request.userPrincipalName,
    displayName: request.displayName,
    state: 'provisioning',
    licences: [],
    ...(request.startDate === undefined ? {} : { startDate: request.startDate }),
    ...(request.endDate === undefined ? {} : { endDate: request.endDate }),
    lastOperationId: o.operationId,
    creation: {
      operationId: o.operationId,
      ...(o.requestHash === undefined ? {} : { requestHash: o.requestHash }),
    },
    createdAt: o.createdAt,
    updatedAt: o.createdAt,
  };
}

export const HELD_PARTITION = 'needsLicence';
export const ACTIVE_PARTITION = 'active';

export const userPartition = (providerId: string, customerId: string): string =>
  `${providerId}/${customerId}`;
export const userOperationsPartition = (providerId: string, customerId: string, userId: string): string =>
  `${providerId}/${customerId}/${userId}`;
/** Acceptance order of a user's operations: the user's sequence number, zero-padded. */
export const operationIndexKey = (sequence: number | undefined, operationId: string): string =>
  `${String(sequence ?? 0).padStart(12, '0')}~${operationId}`;
export const activeKey = (providerId: string, operationId: string): string => `${providerId}/${operationId}`;

export function engineCollections(store: Store) {
  return {
    operations: store.collection('operations', operationSchema),
    customerOperations: store.collection('customeroperations', indexSchema),
    userOperations: store.collection('useroperations', indexSchema),
    users: store.collection('users', userRecordSchema),
    idempotency: store.collection('idempotency', idempotencySchema),
    held: store.collection('heldoperations', heldSchema),
    active: store.collection('activeoperations', activeSchema),
    guardCounters: store.collection('guardcounters', guardCounterSchema),
    passwordDrops: store.collection('passworddrops', passwordDropSchema),
    userSequences: store.collection('usersequences', sequenceSchema),
    customers: customersCollection(store),
  };
}
export type EngineCollections = ReturnType<typeof engineCollections>;
