import { randomUUID } from 'node:crypto';
import type { Caller } from '../../domain/caller.js';
import {
  changeRequest,
  isFinished,
  visibleOperation,
  type ChangeRequest,
  type Operation,
  type OperationKind,
} from '../../domain/operation.js';
import {
  createRequestIssues,
  deadlineFor,
  guardHolds,
  planChangeSteps,
  planCreateSteps,
  type DeadlineSettings,
  type GuardSettings,
} from '../../domain/planning.js';
import { visibleUser, type CreateUserRequest, type UserRecord } from '../../domain/user.js';
import { AppError } from '../../errors.js';
import { silentLogger, type Logger } from '../../logging.js';
import { record } from '../../metrics.js';
import { deterministicMessageId } from '../../ports/bus.js';
import type { Clock } from '../../ports/clock.js';
import type { SecretSealer } from '../../ports/secret-sealer.js';
import type { Store, Versioned } from '../../ports/store.js';
import { loadCustomer } from '../customers.js';
import {
  acceptedUserRecord,
  ACTIVE_PARTITION,
  activeKey,
  HELD_PARTITION,
  operationIndexKey,
  userOperationsPartition,
  userPartition,
  type EngineCollections,
} from './records.js';
import type { Runner } from './runner.js';

/**
 * Accepting work: create and change requests (once per idempotency key), the bulk guard, confirm,
 * cancel and retry, and reading operations. Every accepted operation is indexed (per customer, newest
 * first; per user, in acceptance order; active, for the sweeper) before it is queued.
 */
export interface RequestDeps {
  c: EngineCollections;
  store: Store;
  clock: Clock;
  sealer: SecretSealer;
  runner: Runner;
  /** HMAC-SHA256 under the server's key: request fingerprints never hash a password bare. */
  fingerprint(data: string): string;
  guard?: GuardSettings;
  deadlines: DeadlineSettings;
}

const guardedKinds = new Set<OperationKind>(['user.disable', 'user.delete']);
const GUARD_ROW = 'disable-delete';

/** Newest first in Table storage's ascending key order. */
const newestFirstKey = (createdAt: string, operationId: string): string =>
  `${String(9_999_999_999_999 - new Date(createdAt).getTime()).padStart(13, '0')}~${operationId}`;

const ignoreExisting = (error: unknown): void => {
  if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
};

export function createRequests(deps: RequestDeps) {
  const { c } = deps;
  const now = (): string => deps.clock.now().toISOString();

  async function enqueue(operation: Operation): Promise<void> {
    await deps.runner.sendRun(
      operation,
      deterministicMessageId('operation.run', operation.providerId, operation.operationId),
    );
  }

  async function loadOwnOperation(caller: Caller, operationId: string) {
    const found = await c.operations.get(caller.providerId, operationId);
    if (
      found === undefined ||
      (caller.customerIds !== undefined && !caller.customerIds.includes(found.value.customerId))
    ) {
      throw new AppError('NotFound', `operation ${operationId} not found`);
    }
    return found;
  }

  /**
   * The next place in a user's order, claimed with the etag (two requests never share one). Place 1
   * is the brand-new user's create, which takes it by creating the user record (no sequence row):
   * a missing row therefore means 1 is taken. (Rows written before that hold `next: 1` for it.)
   */
  async function nextSequence(providerId: string, customerId: string, userId: string): Promise<number> {
    const partition = userPartition(providerId, customerId);
    for (let attempt = 0; attempt < 50; attempt++) {
      const row = await c.userSequences.get(partition, userId);
      const next = (row?.value.next ?? 1) + 1;
      try {
        if (row === undefined) await c.userSequences.create(partition, userId, { next });
        else await c.userSequences.replace(partition, userId, { next }, row.etag);
        return next;
      } catch (error) {
        if (!(
          error instanceof AppError &&
          (error.code === 'ConcurrencyConflict' || error.code === 'AlreadyExists')
        ))
          throw error;
      }
    }
    throw new AppError('Unavailable', 'too many concurrent requests for this user; retry', {
      retryable: true,
    });
  }

  /**
   * Stores the operation after its indexes (each write idempotent: a retried request repeats them), so
   * a stored operation always has them: a repeat of the request that finds it stored answers with it
   * and writes nothing. An index row whose operation never got stored is skipped by its readers; the
   * active row of one is removed by the sweeper.
   */
  async function store(operation: Operation): Promise<Versioned<Operation> | undefined> {
    const { providerId, customerId, userId, operationId, createdAt, userSequence } = operation;
    await Promise.all([
      c.active
        .create(ACTIVE_PARTITION, activeKey(providerId, operationId), {
          providerId,
          operationId,
          since: createdAt,
        })
        .catch(ignoreExisting),
      c.customerOperations
        .create(userPartition(providerId, customerId), newestFirstKey(createdAt, operationId), {
          operationId,
        })
        .catch(ignoreExisting),
      // A brand-new user's create (place 1) needs no row: nothing of the user can be accepted while it
      // is provisioning, and later operations find it through the record's `creation` (runner.ts).
      operation.kind === 'user.create' && userSequence === 1
        ? undefined
        : c.userOperations
            .create(
              userOperationsPartition(providerId, customerId, userId),
              operationIndexKey(userSequence, operationId),
              { operationId },
            )
            .catch(ignoreExisting),
    ]);
    const stored = await c.operations.create(providerId, operationId, operation).then((row) => {
      record.operationState(operation.kind, operation.state);
      return row;
    }, ignoreExisting);
    // Absent when a retried request found it stored already.
    return stored ?? undefined;
  }

  /** `createdAt`: the operation's, the first attempt's when a retry finds its claim but no operation. */
  type Claim = { operationId: string; createdAt: string; existing?: Operation };

  /**
   * Claims an idempotency key for a new operation id. The same request again answers with the first
   * operation; another request under an explicit key is a Conflict. Under the implicit key of a create
   * (the user id) a new request is accepted once the earlier user is deleted or its create failed, so
   * ids are never burnt.
   */
  async function claim(
    providerId: string,
    partition: string,
    key: string,
    hash: string,
    createdAt: string,
    options: { conflictMessage: string; reusable?: () => Promise<boolean> },
  ): Promise<Claim> {
    const operationId: string = randomUUID();
    try {
      await c.idempotency.create(partition, key, { operationId, requestHash: hash, createdAt });
      return { operationId, createdAt };
    } catch (error) {
      ignoreExisting(error);
    }
    const first = await c.idempotency.get(partition, key);
    if (first === undefined)
      throw new AppError('Unavailable', 'idempotency record vanished; retry', { retryable: true });
    const existing = await c.operations.get(providerId, first.value.operationId);
    if (first.value.requestHash === hash && (options.reusable === undefined || !(await options.reusable()))) {
      // The first attempt died before storing its operation: store it under its id and time (its
      // index rows, keyed by that time, are then the same rows).
      if (existing === undefined)
        return { operationId: first.value.operationId, createdAt: first.value.createdAt };
      if (existing.value.state === 'queued') await enqueue(existing.value);
      return {
        operationId: first.value.operationId,
        createdAt: first.value.createdAt,
        existing: existing.value,
      };
    }
    if (options.reusable !== undefined && (await options.reusable())) {
      await c.idempotency.replace(partition, key, { operationId, requestHash: hash, createdAt }, first.etag);
      return { operationId, createdAt };
    }
    throw new AppError('Conflict', options.conflictMessage);
  }

  async function requestCreateUser(input: {
    caller: Caller;
    customerId: string;
    request: CreateUserRequest;
    idempotencyKey?: string;
    correlationId: string;
    retryOf?: string;
    /** Where the first step's lines go when it runs in this request (a hybrid create's park). */
    log?: Logger;
  }): Promise<{ operation: Operation; replayed: boolean }> {
    const { caller, customerId, request } = input;
    const loadedCustomer = await loadCustomer(deps.store, caller, customerId);
    const customer = loadedCustomer.value;
    const issues = createRequestIssues(customer, request);
    if (issues.length > 0) {
      throw new AppError(
        'Validation',
        `The request does not fit customer ${customer.customerId}: ${issues.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
        { details: { errors: issues } },
      );
    }
    const partition = userPartition(caller.providerId, customerId);
    const hash = deps.fingerprint(JSON.stringify({ kind: 'user.create', request }));
    const implicit = input.idempotencyKey === undefined;
    /** Whether a new create may take this user id: the user was deleted, or its create failed. */
    const reusable = async (user: UserRecord): Promise<boolean> => {
      if (user.state === 'deleted') return true;
      if (user.state !== 'failed') return false;
      const last = await c.operations.get(caller.providerId, user.lastOperationId);
      return last === undefined || isFinished(last.value.state);
    };
    const replay = async (found: Operation): Promise<{ operation: Operation; replayed: boolean }> => {
      if (found.state === 'queued') await enqueue(found);
      return { operation: visibleOperation(found), replayed: true };
    };

    const created = now();
    const { password, ...stored } = request;
    // A starter with a future first day is created then: it waits as a scheduled attempt (the runner
    // leaves it until nextAttemptAt, the operation sweep wakes it) and its deadline counts from then.
    const startsAt = request.startDate === undefined ? undefined : new Date(`${request.startDate}T00:00:00Z`);
    const later =
      startsAt !== undefined && startsAt.getTime() > deps.clock.now().getTime() ? startsAt : undefined;
    const sealedPassword = password === undefined ? undefined : deps.sealer.seal(password);
    const operationFor = (
      operationId: string,
      createdAt = created,
    ): Extract<Operation, { kind: 'user.create' }> => ({
      operationId,
      providerId: caller.providerId,
      customerId,
      userId: request.userId,
      kind: 'user.create',
      state: later === undefined ? 'queued' : 'retryScheduled',
      ...(later === undefined ? {} : { nextAttemptAt: later.toISOString() }),
      phase: 'forward',
      retries: 0,
      steps: planCreateSteps(customer, request),
      correlationId: input.correlationId,
      ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
      ...(implicit ? { requestHash: hash } : {}),
      ...(input.retryOf === undefined ? {} : { retryOf: input.retryOf }),
      request: stored,
      userSequence: 0, // set below, with the user record
      ...(sealedPassword === undefined ? {} : { sealedPassword }),
      createdAt,
      updatedAt: createdAt,
      deadline: deadlineFor('user.create', later ?? deps.clock.now(), deps.deadlines).toISOString(),
    });

    let operation = operationFor(randomUUID());
    // Under the implicit key the user record is the claim: creating it takes the id, and the record
    // keeps the request's fingerprint (`creation`) to answer the same request again. A record without
    // one (written by an earlier build, an explicit-key create, onboarding) falls back to the
    // idempotency row, as every create under an explicit key does.
    let claimed = false;
    if (implicit) {
      try {
        operation.userRecordEtag = (
          await c.users.create(partition, request.userId, acceptedUserRecord(operation))
        ).etag;
        // A brand-new user: its create is the first in the user's order.
        operation.userSequence = 1;
        claimed = true;
      } catch (error) {
        ignoreExisting(error);
      }
      const user = claimed ? undefined : await c.users.get(partition, request.userId);
      const creation = user?.value.creation;
      if (user !== undefined && creation?.requestHash !== undefined) {
        const again = creation.requestHash === hash && !(await reusable(user.value));
        if (again) {
          const first = await c.operations.get(caller.providerId, creation.operationId);
          if (first !== undefined) return replay(first.value);
          // The first attempt died before storing its operation: store it under its id and time (the
          // record's), so the index rows it may have written are the same rows.
          operation = operationFor(creation.operationId, user.value.createdAt);
        } else if (await reusable(user.value)) {
          // A deleted user's id, or a failed create, starts again as a new user record.
          operation.userRecordEtag = (
            await c.users.replace(partition, request.userId, acceptedUserRecord(operation), user.etag)
          ).etag;
        } else {
          throw new AppError('Conflict', `user ${request.userId} already exists with different details`);
        }
        // A new place for a re-created id, and for a retry of this very request (its first attempt may
        // have stored its index under another place: earlierOperationPending skips its own id).
        operation.userSequence = await nextSequence(caller.providerId, customerId, request.userId);
        claimed = true;
      }
    }
    if (!claimed) {
      const { operationId, createdAt, existing } = await claim(
        caller.providerId,
        partition,
        input.idempotencyKey ?? `user:${request.userId}`,
        hash,
        created,
        {
          conflictMessage: implicit
            ? `user ${request.userId} already exists with different details`
            : 'this Idempotency-Key was used for a different request',
          ...(implicit
            ? {
                reusable: async () => {
                  const user = await c.users.get(partition, request.userId);
                  return user !== undefined && (await reusable(user.value));
                },
              }
            : {}),
        },
      );
      if (existing !== undefined) return { operation: visibleOperation(existing), replayed: true };
      operation = operationFor(operationId, createdAt);
      const fresh = acceptedUserRecord(operation);
      try {
        operation.userRecordEtag = (await c.users.create(partition, request.userId, fresh)).etag;
        operation.userSequence = 1;
      } catch (error) {
        ignoreExisting(error);
        const user = await c.users.get(partition, request.userId);
        if (user !== undefined && user.value.lastOperationId !== operationId) {
          if (!(await reusable(user.value)))
            throw new AppError(
              'AlreadyExists',
              `user ${request.userId} already exists for customer ${customerId}`,
            );
          operation.userRecordEtag = (
            await c.users.replace(partition, request.userId, fresh, user.etag)
          ).etag;
        }
        operation.userSequence = await nextSequence(caller.providerId, customerId, request.userId);
      }
    }
    const log = input.log ?? silentLogger;
    // A hybrid (or AD-only) create is stored already parked for the agent and its command sent from
    // here; anything else (or a create this request cannot start) goes to the directory worker's queue.
    const parked = await deps.runner.parkOnAcceptance(operation, loadedCustomer);
    const accepted = parked?.operation ?? operation;
    const storedRow = await store(accepted);
    if (storedRow !== undefined && parked !== undefined) {
      await parked.send(storedRow, log).catch((error: unknown) => {
        // Stored parked: the sweeper sends the command again at the park's deadline. Anything but
        // storage or the bus refusing is a fault of this process (the client's retry replays).
        if (!(error instanceof AppError)) throw error;
        log.warn('could not send the command here; the sweep sends it again', {
          operationId: operation.operationId,
          code: error.code,
        });
      });
      return { operation: visibleOperation(storedRow.value), replayed: false };
    }
    const started =
      storedRow !== undefined &&
      parked === undefined &&
      (await deps.runner.startAccepted(storedRow, loadedCustomer, log).catch((error: unknown) => {
        // Storage or the bus refused (AppError): the worker takes it from the queue. Anything else
        // is a fault of this process: the client's retry of the request queues it (claim, above).
        if (!(error instanceof AppError)) throw error;
        log.warn('could not start the operation here; queued', {
          operationId: operation.operationId,
          code: error.code,
        });
        return false;
      }));
    if (!started) await enqueue(accepted);
    return { operation: visibleOperation(accepted), replayed: false };
  }

  /** Counts a disable/delete in the customer's window with an etag, so N parallel requests count as N. */
  async function countGuarded(providerId: string, customerId: string): Promise<number> {
    const guard = deps.guard;
    if (guard === undefined) return 0;
    const partition = userPartition(providerId, customerId);
    const t = deps.clock.now().getTime();
    const since = t - guard.windowInMinutes * 60_000;
    for (let attempt = 0; attempt < 50; attempt++) {
      const row = await c.guardCounters.get(partition, GUARD_ROW);
      // Per-minute buckets keep the row small (≤ one entry per minute of the window) at any volume.
      const minute = t - (t % 60_000);
      const minutes = (row?.value.minutes ?? []).filter(([at]) => at + 60_000 > since);
      const current = minutes.find(([at]) => at === minute);
      if (current === undefined) minutes.push([minute, 1]);
      else current[1] += 1;
      try {
        if (row === undefined) await c.guardCounters.create(partition, GUARD_ROW, { minutes });
        else await c.guardCounters.replace(partition, GUARD_ROW, { minutes }, row.etag);
        return minutes.reduce((sum, [, count]) => sum + count, 0);
      } catch (error) {
        if (!(
          error instanceof AppError &&
          (error.code === 'ConcurrencyConflict' || error.code === 'AlreadyExists')
        ))
          throw error;
      }
    }
    throw new AppError('Unavailable', 'the guard counter is too busy; retry', { retryable: true });
  }

  /**
   * Accepts a change to an existing user as an operation. A disable/delete beyond the customer's
   * threshold is held until someone confirms it.
   */
  async function requestUserChange(input: {
    caller: Caller;
    customerId: string;
    userId: string;
    change: ChangeRequest;
    password?: string;
    idempotencyKey?: string;
    correlationId: string;
    retryOf?: string;
  }): Promise<{ operation: Operation; replayed: boolean }> {
    const { caller, customerId, userId, change } = input;
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    const partition = userPartition(caller.providerId, customerId);
    const user = await c.users.get(partition, userId);
    if (user === undefined) throw new AppError('NotFound', `user ${userId} not found`);
    if (user.value.state === 'provisioning')
      throw new AppError(
        'Conflict',
        `user ${userId} is still being created (operation ${user.value.lastOperationId}); try again when it has finished`,
      );
    if (user.value.state === 'deleted' || user.value.state === 'failed')
      throw new AppError('Conflict', `user ${userId} is ${user.value.state}`);
    if (change.kind === 'user.licences') {
      const plan = change.request.licencePlan;
      if (plan !== null && !customer.licencePlans.some((p) => p.name === plan)) {
        throw new AppError('Validation', `unknown licence plan ${JSON.stringify(plan)}`, {
          details: { errors: [{ path: 'body.licencePlan', message: 'unknown plan' }] },
        });
      }
    }
    const steps = planChangeSteps(
      change.kind,
      customer,
      user.value,
      change.kind === 'user.groupAdd' || change.kind === 'user.groupRemove'
        ? change.request.directory
        : undefined,
    );
    if (steps.length === 0)
      throw new AppError(
        'Validation',
        `${change.kind} has nothing to do for a ${customer.identityMode} user`,
      );

    let operationId: string = randomUUID();
    let created = now();
    const key = input.idempotencyKey;
    if (key !== undefined) {
      const claimed = await claim(
        caller.providerId,
        partition,
        key,
        deps.fingerprint(JSON.stringify({ ...change, userId, password: input.password ?? null })),
        created,
        { conflictMessage: 'this Idempotency-Key was used for a different request' },
      );
      if (claimed.existing !== undefined)
        return { operation: visibleOperation(claimed.existing), replayed: true };
      operationId = claimed.operationId;
      created = claimed.createdAt;
    }
    let held: { affected: number; total: number } | undefined;
    if (guardedKinds.has(change.kind) && deps.guard !== undefined) {
      const affected = await countGuarded(caller.providerId, customerId);
      let total = 0;
      for await (const u of c.users.list(partition)) if (u.value.state !== 'deleted') total++;
      if (guardHolds(deps.guard, affected, total)) held = { affected, total };
    }
    const operation: Operation = {
      operationId,
      providerId: caller.providerId,
      customerId,
      userId,
      ...change,
      userSequence: await nextSequence(caller.providerId, customerId, userId),
      state: held === undefined ? 'queued' : 'heldForConfirmation',
      phase: 'forward',
      retries: 0,
      steps,
      correlationId: input.correlationId,
      ...(key === undefined ? {} : { idempotencyKey: key }),
      ...(input.retryOf === undefined ? {} : { retryOf: input.retryOf }),
      ...(input.password === undefined ? {} : { sealedPassword: deps.sealer.seal(input.password) }),
      createdAt: created,
      updatedAt: created,
      deadline: deadlineFor(change.kind, deps.clock.now(), deps.deadlines).toISOString(),
      ...(held === undefined
        ? {}
        : {
            error: {
              code: 'HeldForConfirmation',
              message: `${held.affected} of ${held.total} users of this customer would be disabled or deleted within ${deps.guard?.windowInMinutes ?? 0} minutes; confirm to proceed`,
            },
          }),
    };
    await store(operation);
    if (held === undefined) await enqueue(operation);
    return { operation: visibleOperation(operation), replayed: false };
  }

  async function replaceOperation(
    caller: Caller,
    operationId: string,
    change: (o: Operation) => void,
  ): Promise<Operation> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const found = await loadOwnOperation(caller, operationId);
      const next = structuredClone(found.value);
      change(next);
      next.updatedAt = now();
      try {
        const saved = (await c.operations.replace(caller.providerId, operationId, next, found.etag)).value;
        if (saved.state !== found.value.state) record.operationState(saved.kind, saved.state);
        return saved;
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      }
    }
    throw new AppError('Unavailable', 'the operation kept changing; retry', { retryable: true });
  }

  /** Releases an operation held by the accidental-change guard. */
  async function confirmOperation(caller: Caller, operationId: string): Promise<Operation> {
    const saved = await replaceOperation(caller, operationId, (o) => {
      if (o.state !== 'heldForConfirmation')
        throw new AppError('Conflict', `operation ${operationId} is ${o.state}, not held`);
      o.state = 'queued';
      delete o.error;
      // Its time runs from the confirmation, not from the request (held over a weekend is fine).
      const span = new Date(o.deadline).getTime() - new Date(o.createdAt).getTime();
      o.deadline = new Date(deps.clock.now().getTime() + span).toISOString();
    });
    await enqueue(saved);
    return visibleOperation(saved);
  }

  const cancellable = new Set<Operation['state']>([
    'heldForConfirmation',
    'queued',
    'retryScheduled',
    'waitingForAgent',
    'needsLicence',
  ]);

  /**
   * Stops an operation that is queued, held or parked: no new step starts; steps already done are undone
   * (a create leaves no half-user); it ends `cancelled`.
   */
  async function cancelOperation(caller: Caller, operationId: string): Promise<Operation> {
    const saved = await replaceOperation(caller, operationId, (o) => {
      if (o.cancelRequested === true) return;
      if (!cancellable.has(o.state))
        throw new AppError(
          'Conflict',
          `operation ${operationId} is ${o.state}; only queued, held or parked ones can be cancelled`,
        );
      o.cancelRequested = true;
      if (o.state === 'heldForConfirmation' || o.state === 'needsLicence') o.state = 'queued';
      delete o.nextAttemptAt;
    });
    await deps.runner.sendRun(saved, deterministicMessageId('operation.cancel', operationId));
    return visibleOperation(saved);
  }

  const retryable = new Set<Operation['state']>(['failed', 'compensated', 'cancelled', 'needsLicence']);

  /**
   * Tries a failed, compensated or cancelled operation again as a new operation (a create may bring a
   * corrected body, and must bring the password again: it was erased). A create held for a licence is
   * simply run again now.
   */
  async function retryOperation(input: {
    caller: Caller;
    operationId: string;
    correctedCreate?: CreateUserRequest;
    password?: string;
    correlationId: string;
  }): Promise<{ operation: Operation; replayed: boolean }> {
    const found = await loadOwnOperation(input.caller, input.operationId);
    const old = found.value;
    if (!retryable.has(old.state))
      throw new AppError(
        'Conflict',
        `operation ${old.operationId} is ${old.state}; only failed, compensated, cancelled or licence-held ones can be retried`,
      );
    if (old.state === 'needsLicence') {
      await c.held.upsert(HELD_PARTITION, activeKey(old.providerId, old.operationId), {
        providerId: old.providerId,
        operationId: old.operationId,
        customerId: old.customerId,
        heldAt: now(),
      });
      await deps.runner.sendRun(old, deterministicMessageId('operation.retry-held', old.operationId, now()));
      return { operation: visibleOperation(old), replayed: false };
    }
    const key = `retry:${old.operationId}`;
    let result: { operation: Operation; replayed: boolean };
    if (old.kind === 'user.create') {
      const request: CreateUserRequest = input.correctedCreate ?? {
        ...old.request,
        ...(input.password === undefined ? {} : { password: input.password }),
      };
      if (request.userId !== old.userId)
        throw new AppError('Validation', 'a retried create keeps its userId', {
          details: { errors: [{ path: 'body.userId', message: `must be ${old.userId}` }] },
        });
      result = await requestCreateUser({
        caller: input.caller,
        customerId: old.customerId,
        request,
        idempotencyKey: key,
        correlationId: input.correlationId,
        retryOf: old.operationId,
      });
    } else {
      result = await requestUserChange({
        caller: input.caller,
        customerId: old.customerId,
        userId: old.userId,
        change: changeRequest(old.kind, old.request),
        ...(input.password === undefined ? {} : { password: input.password }),
        idempotencyKey: key,
        correlationId: input.correlationId,
        retryOf: old.operationId,
      });
    }
    await replaceOperation(input.caller, old.operationId, (o) => {
      o.retriedBy = result.operation.operationId;
    });
    return result;
  }

  async function getOperation(caller: Caller, operationId: string): Promise<Operation> {
    return visibleOperation((await loadOwnOperation(caller, operationId)).value);
  }

  /** A customer's operations, newest first, one page at a time (opaque cursor). */
  async function listOperations(
    caller: Caller,
    customerId: string,
    options: { limit: number; cursor?: string },
  ): Promise<{ value: Operation[]; cursor?: string }> {
    await loadCustomer(deps.store, caller, customerId);
    const page = await c.customerOperations.listPage(userPartition(caller.providerId, customerId), {
      pageSize: options.limit,
      ...(options.cursor === undefined
        ? {}
        : { continuationToken: Buffer.from(options.cursor, 'base64url').toString('utf8') }),
    });
    const value: Operation[] = [];
    for (const entry of page.items.slice(0, options.limit)) {
      const found = await c.operations.get(caller.providerId, entry.value.operationId);
      if (found !== undefined) value.push(visibleOperation(found.value));
    }
    return {
      value,
      ...(page.continuationToken === undefined
        ? {}
        : { cursor: Buffer.from(page.continuationToken, 'utf8').toString('base64url') }),
    };
  }

  async function getUser(caller: Caller, customerId: string, userId: string): Promise<UserRecord> {
    await loadCustomer(deps.store, caller, customerId);
    const user = await c.users.get(userPartition(caller.providerId, customerId), userId);
    if (user === undefined) throw new AppError('NotFound', `user ${userId} not found`);
    return visibleUser(user.value);
  }

  return {
    requestCreateUser,
    requestUserChange,
    confirmOperation,
    cancelOperation,
    retryOperation,
    getOperation,
    listOperations,
    getUser,
  };
}
