import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { retryDelayInMs, type BackoffSettings } from '../../domain/planning.js';
import { commerceOperationKinds, type CommerceOperationKind } from '../../domain/tenant.js';
import { AppError, isAppError, toAppError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type { Store, Versioned } from '../../ports/store.js';

/**
 * A small persisted saga for work whose subject is a customer's tenant or subscription rather than a
 * user (the operation engine in ../operations is user-centric: per-user order, agent parking). Same
 * rules: the run takes the operation's lease (owner + expiry, written with the etag) before any side
 * effect, executes one step at a time and persists its outcome, so a worker that dies mid-step leaves
 * an expired lease that the sweeper (or the next request) takes over; the step runs again under the
 * same deterministic key (e.g. the Partner Center `MS-RequestId`) and the outside system answers the
 * first result. A step that must wait (asynchronous provisioning, an approval in another tenant) asks
 * to be polled: the operation is re-scheduled with exponential backoff and full jitter.
 */

export const sagaStates = [
  /** Waits for a person: its price is above the approval threshold (POST /commerce-operations/{id}/approve). */
  'heldForApproval',
  'queued',
  'running',
  /** Polling or a retryable failure: the sweeper resumes it at `nextAttemptAt`. */
  'retryScheduled',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type SagaState = (typeof sagaStates)[number];
const finished = new Set<SagaState>(['succeeded', 'failed', 'cancelled']);
export const isSagaFinished = (state: SagaState): boolean => finished.has(state);

const scalar = z.union([z.string(), z.number(), z.boolean()]);
const errorSchema = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const sagaStepSchema = z.object({
  name: z.string(),
  state: z.enum(['pending', 'done', 'failed']),
  attempts: z.number().int().nonnegative(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  result: z.record(z.string(), scalar).optional(),
  /** The last retryable problem or poll reason (visible while it waits). */
  waiting: z.string().optional(),
  error: errorSchema.optional(),
});
export type SagaStep = z.infer<typeof sagaStepSchema>;

export const sagaSchema = z.object({
  operationId: z.string(),
  providerId: z.string(),
  customerId: z.string(),
  kind: z.enum(commerceOperationKinds),
  state: z.enum(sagaStates),
  /** The request as accepted (flat; each kind parses it with its own schema). */
  request: z.record(z.string(), scalar),
  steps: z.array(sagaStepSchema),
  actor: z.string(),
  idempotencyKey: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  deadline: z.string(),
  retries: z.number().int().nonnegative().default(0),
  nextAttemptAt: z.string().optional(),
  lease: z.object({ owner: z.string(), expiresAt: z.string() }).optional(),
  error: errorSchema.optional(),
  approvedBy: z.string().optional(),
});
export type Saga = z.infer<typeof sagaSchema>;

export type StepOutcome =
  | { kind: 'done'; result?: Record<string, string | number | boolean> }
  /** Not there yet (e.g. an order still provisioning): poll again with backoff. */
  | { kind: 'poll'; reason: string };

export interface SagaStepContext {
  saga: Saga;
  step: SagaStep;
  /** The result of an earlier, done step. */
  result(stepName: string): Record<string, string | number | boolean>;
}

export interface SagaStepDefinition {
  name: string;
  execute(ctx: SagaStepContext): Promise<StepOutcome>;
}

/** The steps of each kind, in order (each use case module registers its own). */
export type StepsFor = (kind: CommerceOperationKind) => SagaStepDefinition[];

export interface SagaSettings {
  leaseDurationInMs: number;
  backoff: BackoffSettings;
}

const activeRowSchema = z.object({ providerId: z.string(), operationId: z.string() });
const keyRowSchema = z.object({ operationId: z.string(), fingerprint: z.string() });

export function sagaCollections(store: Store) {
  return {
    sagas: store.collection('commerceoperations', sagaSchema),
    /** Unfinished operations (what the sweeper looks at), one row each. */
    active: store.collection('commerceactive', activeRowSchema),
    /** Idempotency-Key → operation, per provider and customer. */
    keys: store.collection('commerceopkeys', keyRowSchema),
  };
}
export type SagaCollections = ReturnType<typeof sagaCollections>;

const ACTIVE = 'active';
const activeKey = (providerId: string, operationId: string) => `${providerId}|${operationId}`;

export interface SagaRunnerDeps {
  store: Store;
  clock: Clock;
  stepsFor: StepsFor;
  settings: SagaSettings;
  random?: () => number;
  /**
   * Called (idempotently: again on a later run of a finished operation) once an operation ended, e.g.
   * to give back a spend reservation of a buy that never reached checkout.
   */
  onFinished?: (saga: Saga) => Promise<void>;
}

export interface NewSaga {
  providerId: string;
  customerId: string;
  kind: CommerceOperationKind;
  request: Record<string, string | number | boolean>;
  actor: string;
  idempotencyKey?: string;
  /** Same key + same fingerprint = the same operation; same key + another fingerprint = 409. */
  fingerprint: string;
  held: boolean;
  deadlineInMs: number;
}

export function createSagaRunner(deps: SagaRunnerDeps) {
  const c = sagaCollections(deps.store);
  const random = deps.random ?? Math.random;
  const nowIso = () => deps.clock.now().toISOString();

  /** Stores a new operation, or returns the one an earlier request with the same key created. */
  async function start(input: NewSaga): Promise<{ saga: Saga; created: boolean }> {
    const operationId = randomUUID();
    if (input.idempotencyKey !== undefined) {
      const keyPartition = `${input.providerId}|${input.customerId}|${input.kind}`;
      try {
        await c.keys.create(keyPartition, input.idempotencyKey, {
          operationId,
          fingerprint: input.fingerprint,
        });
      } catch (error) {
        if (!isAppError(error, 'AlreadyExists')) throw error;
        const existing = await c.keys.get(keyPartition, input.idempotencyKey);
        if (existing === undefined) throw error;
        if (existing.value.fingerprint !== input.fingerprint)
          throw new AppError('Conflict', 'this Idempotency-Key was used for another request');
        const found = await c.sagas.get(input.providerId, existing.value.operationId);
        // A crash between the key row and the operation: finish creating it under the claimed id.
        if (found !== undefined) return { saga: found.value, created: false };
        return { saga: await insert(input, existing.value.operationId), created: true };
      }
    }
    return { saga: await insert(input, operationId), created: true };
  }

  /** The operation an earlier request with this key started, with that request's fingerprint. */
  async function lookup(
    providerId: string,
    customerId: string,
    kind: CommerceOperationKind,
    idempotencyKey: string,
  ): Promise<{ saga: Saga; fingerprint: string } | undefined> {
    const row = await c.keys.get(`${providerId}|${customerId}|${kind}`, idempotencyKey);
    if (row === undefined) return undefined;
    const saga = await c.sagas.get(providerId, row.value.operationId);
    return saga === undefined ? undefined : { saga: saga.value, fingerprint: row.value.fingerprint };
  }

  /** Frees a key whose operation ended without effect, so a corrected request can use it again. */
  async function forget(providerId: string, customerId: string, kind: CommerceOperationKind, key: string) {
    await c.keys.delete(`${providerId}|${customerId}|${kind}`, key);
  }

  async function insert(input: NewSaga, operationId: string): Promise<Saga> {
    const at = nowIso();
    const saga: Saga = {
      operationId,
      providerId: input.providerId,
      customerId: input.customerId,
      kind: input.kind,
      state: input.held ? 'heldForApproval' : 'queued',
      request: input.request,
      steps: deps.stepsFor(input.kind).map((d) => ({ name: d.name, state: 'pending', attempts: 0 })),
      actor: input.actor,
      ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
      createdAt: at,
      updatedAt: at,
      deadline: new Date(deps.clock.now().getTime() + input.deadlineInMs).toISOString(),
      retries: 0,
    };
    await c.active.upsert(ACTIVE, activeKey(input.providerId, operationId), {
      providerId: input.providerId,
      operationId,
    });
    try {
      return (await c.sagas.create(input.providerId, operationId, saga)).value;
    } catch (error) {
      if (!isAppError(error, 'AlreadyExists')) throw error;
      const found = await c.sagas.get(input.providerId, operationId);
      if (found === undefined) throw error;
      return found.value;
    }
  }

  async function get(providerId: string, operationId: string): Promise<Versioned<Saga> | undefined> {
    return c.sagas.get(providerId, operationId);
  }

  async function save(row: Versioned<Saga>, next: Saga): Promise<Versioned<Saga>> {
    return c.sagas.replace(row.partitionKey, row.rowKey, { ...next, updatedAt: nowIso() }, row.etag);
  }

  async function finish(row: Versioned<Saga>, next: Saga): Promise<Saga> {
    const { lease: _lease, nextAttemptAt: _next, ...rest } = next;
    const saved = await save(row, rest);
    await deps.onFinished?.(saved.value);
    await c.active.delete(ACTIVE, activeKey(next.providerId, next.operationId));
    return saved.value;
  }

  /**
   * One run: as far as the steps go now. Returns the operation as it stands (a live lease held by
   * another run, a held or not-yet-due operation: unchanged). `force` ignores `nextAttemptAt` (a
   * person asked, or a test).
   */
  async function advance(providerId: string, operationId: string, options: { force?: boolean } = {}) {
    let row = await get(providerId, operationId);
    if (row === undefined) throw new AppError('NotFound', `operation ${operationId} not found`);
    const s = row.value;
    const now = deps.clock.now();
    if (isSagaFinished(s.state)) {
      await deps.onFinished?.(s);
      await c.active.delete(ACTIVE, activeKey(providerId, operationId));
      return s;
    }
    if (s.state === 'heldForApproval') return s;
    if (s.lease !== undefined && new Date(s.lease.expiresAt).getTime() > now.getTime()) return s;
    if (
      options.force !== true &&
      s.state === 'retryScheduled' &&
      s.nextAttemptAt !== undefined &&
      new Date(s.nextAttemptAt).getTime() > now.getTime()
    )
      return s;
    if (now.getTime() > new Date(s.deadline).getTime()) {
      const last = s.steps.find((step) => step.state === 'pending');
      return finish(row, {
        ...s,
        state: 'failed',
        error: {
          code: 'DeadlineExceeded',
          message: `not finished by its deadline ${s.deadline}${last?.waiting === undefined ? '' : `: ${last.waiting}`}`,
        },
      });
    }
    const owner = randomUUID();
    const leaseFor = () => ({
      owner,
      expiresAt: new Date(deps.clock.now().getTime() + deps.settings.leaseDurationInMs).toISOString(),
    });
    try {
      row = await save(row, { ...s, state: 'running', lease: leaseFor() });
    } catch (error) {
      if (isAppError(error, 'ConcurrencyConflict')) return s; // another run took it first
      throw error;
    }
    const definitions = deps.stepsFor(s.kind);
    for (;;) {
      const saga = row.value;
      const index = saga.steps.findIndex((step) => step.state === 'pending');
      if (index < 0) return finish(row, { ...saga, state: 'succeeded' });
      const step = saga.steps[index];
      const definition = definitions.find((d) => d.name === step?.name);
      if (step === undefined || definition === undefined)
        throw new AppError('Internal', `unknown step ${step?.name ?? index} of ${saga.kind}`);
      const attempt: SagaStep = {
        ...step,
        attempts: step.attempts + 1,
        startedAt: step.startedAt ?? nowIso(),
      };
      row = await save(row, { ...saga, steps: replaceAt(saga.steps, index, attempt), lease: leaseFor() });
      const ctx: SagaStepContext = {
        saga: row.value,
        step: attempt,
        result: (name) => row?.value.steps.find((x) => x.name === name)?.result ?? {},
      };
      let outcome: StepOutcome;
      try {
        outcome = await definition.execute(ctx);
      } catch (error) {
        const failure = toAppError(error);
        const current = row.value;
        const info = {
          code: failure.code,
          message: failure.message,
          ...(failure.details === undefined ? {} : { details: failure.details }),
        };
        if (failure.retryable)
          return (
            await reschedule(row, index, `${failure.code}: ${failure.message}`, failure.retryAfterInSeconds)
          ).value;
        const failedStep: SagaStep = { ...attempt, state: 'failed', finishedAt: nowIso(), error: info };
        return finish(row, {
          ...current,
          steps: replaceAt(current.steps, index, failedStep),
          state: 'failed',
          error: info,
        });
      }
      if (outcome.kind === 'poll') return (await reschedule(row, index, outcome.reason)).value;
      const doneStep: SagaStep = {
        name: attempt.name,
        state: 'done',
        attempts: attempt.attempts,
        ...(attempt.startedAt === undefined ? {} : { startedAt: attempt.startedAt }),
        finishedAt: nowIso(),
        ...(outcome.result === undefined ? {} : { result: outcome.result }),
      };
      row = await save(row, { ...row.value, steps: replaceAt(row.value.steps, index, doneStep), retries: 0 });
    }
  }

  async function reschedule(
    row: Versioned<Saga>,
    index: number,
    reason: string,
    retryAfterInSeconds?: number,
  ) {
    const saga = row.value;
    const retries = saga.retries + 1;
    const delay = retryDelayInMs(retries, deps.settings.backoff, random, retryAfterInSeconds);
    const step = saga.steps[index];
    const { lease: _lease, ...rest } = saga;
    return save(row, {
      ...rest,
      state: 'retryScheduled',
      retries,
      nextAttemptAt: new Date(deps.clock.now().getTime() + delay).toISOString(),
      steps: step === undefined ? saga.steps : replaceAt(saga.steps, index, { ...step, waiting: reason }),
    });
  }

  /** Releases a held operation (a person approved its price) and runs it. */
  async function approve(providerId: string, operationId: string, approvedBy: string): Promise<Saga> {
    const row = await get(providerId, operationId);
    if (row === undefined) throw new AppError('NotFound', `operation ${operationId} not found`);
    if (row.value.state === 'heldForApproval') await save(row, { ...row.value, state: 'queued', approvedBy });
    else if (row.value.approvedBy === undefined && row.value.state !== 'queued')
      throw new AppError(
        'Conflict',
        `operation ${operationId} is ${row.value.state}, not waiting for approval`,
      );
    return advance(providerId, operationId, { force: true });
  }

  /** Stops an operation no step of which has started (held or queued); anything later runs to its end. */
  async function cancel(providerId: string, operationId: string): Promise<Saga> {
    const row = await get(providerId, operationId);
    if (row === undefined) throw new AppError('NotFound', `operation ${operationId} not found`);
    const s = row.value;
    if (s.state === 'cancelled') return s;
    const started = s.steps.some((step) => step.attempts > 0);
    if (isSagaFinished(s.state) || started)
      throw new AppError(
        'Conflict',
        `operation ${operationId} is ${s.state} and has begun; it cannot be cancelled`,
      );
    return finish(row, { ...s, state: 'cancelled' });
  }

  /**
   * Ends an unfinished operation as `cancelled` although steps ran (e.g. a GDAP invitation nobody will
   * approve): nothing more is done; what its steps did stays as it is (the caller undoes what it can).
   */
  async function stop(providerId: string, operationId: string): Promise<Saga> {
    const row = await get(providerId, operationId);
    if (row === undefined) throw new AppError('NotFound', `operation ${operationId} not found`);
    if (row.value.state === 'cancelled') return row.value;
    if (isSagaFinished(row.value.state))
      throw new AppError('Conflict', `operation ${operationId} is ${row.value.state}`);
    return finish(row, { ...row.value, state: 'cancelled' });
  }

  /** Resumes every unfinished operation that is due (expired lease, retry time passed). */
  async function sweep(options: { providerId?: string; limit?: number } = {}): Promise<{ resumed: number }> {
    const limit = options.limit ?? 200;
    let resumed = 0;
    // One provider's only (tests sharing a storage account; an operator's targeted sweep).
    const listing =
      options.providerId === undefined
        ? c.active.list(ACTIVE)
        : c.active.list(ACTIVE, { rowKeyPrefix: `${options.providerId}|` });
    for await (const active of listing) {
      if (resumed >= limit) break;
      const { providerId, operationId } = active.value;
      const before = await get(providerId, operationId);
      if (before === undefined) {
        await c.active.delete(ACTIVE, active.rowKey, active.etag);
        continue;
      }
      const after = await advance(providerId, operationId);
      if (after.updatedAt !== before.value.updatedAt) resumed += 1;
    }
    return { resumed };
  }

  /** What a caller sees: never the lease. */
  function visible(saga: Saga) {
    const { lease: _lease, ...rest } = saga;
    return rest;
  }

  return { start, lookup, forget, stop, get, advance, approve, cancel, sweep, visible };
}
export type SagaRunner = ReturnType<typeof createSagaRunner>;

function replaceAt<T>(list: readonly T[], index: number, value: T): T[] {
  return list.map((item, i) => (i === index ? value : item));
}
