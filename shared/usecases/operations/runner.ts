import { randomUUID } from 'node:crypto';
import type { Customer } from '../../domain/customer.js';
import {
  blocksLaterOperations,
  isFinished,
  type ErrorInfo,
  type Operation,
  type OperationState,
  type ParkedCommand,
  type Step,
} from '../../domain/operation.js';
import { retryDelayInMs, type BackoffSettings } from '../../domain/planning.js';
import type { UserRecord } from '../../domain/user.js';
import { AppError, InvalidMessageError, toAppError, type ErrorCode } from '../../errors.js';
import type { Logger } from '../../logging.js';
import { record } from '../../metrics.js';
import { deterministicMessageId, type Bus } from '../../ports/bus.js';
import type { Clock } from '../../ports/clock.js';
import type { CloudDirectory } from '../../ports/cloud-directory.js';
import type { OnPremCommand, OnPremCommandChannel, OnPremReply } from '../../ports/on-prem-directory.js';
import type { SecretSealer } from '../../ports/secret-sealer.js';
import { recentReads } from '../../ports/recent-reads.js';
import type { Versioned } from '../../ports/store.js';
import { directoryWork } from '../../contracts/directory-work.js';
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
import { stepDefinition, type StepContext, type StepOutcome } from './steps.js';

/**
 * The saga runner. One run: take the operation's lease (owner + expiry, written with the etag) before
 * any side effect; execute the next step; persist the outcome. A step for the agent sends its command
 * and parks (`waitingForAgent`); the reply is saved on the step and a new run consumes it. Retryable
 * failures re-schedule the operation with backoff; permanent ones start a persisted compensation phase.
 * A run never re-runs a failed or compensated step, and the user record is derived from the finished
 * operation idempotently (`outcomeApplied`), so a crash between any two writes heals on the next run.
 */
export interface EngineSettings {
  /** How long a run may hold an operation before another delivery may take it over. */
  leaseDurationInMs: number;
  /** How long a parked step waits for its agent before the command is sent again (doubles per send). */
  parkTimeoutInMs: number;
  backoff: BackoffSettings;
  /** Extra time an undo may take past the operation's deadline. */
  compensationGraceInMs: number;
  /**
   * Queue deliveries of one customer's operations this process runs at once; one more is re-queued
   * for a moment instead of taking a worker slot. Per process (instance): keep it below the host's
   * maxConcurrentCalls (host.json: 8) so other customers always find a slot. Graph's limits stay with
   * the budget, which is the limit across instances.
   */
  maxRunsPerCustomer: number;
}

export const defaultEngineSettings: EngineSettings = {
  leaseDurationInMs: 2 * 60_000,
  parkTimeoutInMs: 2 * 60_000,
  backoff: { baseDelayInMs: 2_000, maxDelayInMs: 5 * 60_000 },
  compensationGraceInMs: 60 * 60_000,
  maxRunsPerCustomer: 6,
};

export interface RunnerDeps {
  c: EngineCollections;
  clock: Clock;
  bus: Bus;
  sealer: SecretSealer;
  settings: EngineSettings;
  random: () => number;
  assertWorkAllowed(providerId: string, customer: Customer): Promise<void>;
  /** The provider that registered a site (the only one whose operations its agent may answer). */
  siteOwner(siteId: string): Promise<string | undefined>;
  cloudDirectory?: (tenantId: string) => CloudDirectory;
  agentChannel?: (siteId: string) => Promise<OnPremCommandChannel>;
  /** Told of every finished operation before it is marked applied (so a crash tells again): must be idempotent. */
  onFinished?: (o: Operation) => Promise<void>;
}

export interface RunInput {
  providerId: string;
  operationId: string;
  /** Unique per delivery (the lease owner). */
  runId: string;
  /** The incoming message's id: messages this run sends derive theirs from it (a redelivery sends the same). */
  messageId: string;
  log: Logger;
  /**
   * The customer the message says it is for (an application property the engine sets on its run
   * messages). Untrusted: used only to re-queue a delivery past its customer's share without reading
   * storage; the run itself checks the stored operation and its owner.
   */
  customerHint?: string;
  correlationId?: string;
}

export type RunResult =
  | 'finished'
  | 'parked'
  | 'retryScheduled'
  | 'needsLicence'
  | 'held'
  | 'busy'
  | 'waitingForEarlier'
  | 'notDue'
  /** Its customer already had its share of this process's workers: queued again for a moment. */
  | 'requeued';

/** A write lost to a concurrent run: stop, the other run owns the operation now. */
class LostRace extends Error {}

/** Codes an agent may answer with (shared/errors.ts); anything else is Upstream. */
const agentCodes = [
  'Validation',
  'NotFound',
  'AlreadyExists',
  'Conflict',
  'PasswordPolicy',
  'InvalidCredentials',
  'Forbidden',
  'OutOfScope',
  'BadSignature',
  'Replayed',
  'Expired',
  'Unavailable',
  'Timeout',
  'Upstream',
  'Internal',
] as const satisfies readonly ErrorCode[];

/** A run waiting for an earlier operation of its user looks again after this, if not woken before. */
const orderSafetyNetInMs = 60_000;
/** When the earlier operation is a create writing its end (see runLoaded). */
const finishingRecheckInMs = 2_000;

const passwordSteps = new Set(['ad.create', 'entra.create', 'ad.password', 'entra.password']);

/** A delivery over its customer's share of workers comes back no sooner than this. */
const minShareWaitInMs = 200;

/** How long after our own Entra create a 404 about that user is taken for replication lag. */
const LAG_WINDOW_IN_MS = 60_000;

/**
 * How stale the customer a run works for may be. Never older than the operation (a read from before
 * its acceptance is not used), so an operation accepted after a change of its customer always runs
 * on the change; one accepted earlier may run on the previous version for up to this long.
 */
export const CUSTOMER_RECENT_IN_MS = 1000;

export function createRunner(deps: RunnerDeps) {
  const { c } = deps;
  /** Queue deliveries running in this process, per provider/customer, and their turns (the worker share). */
  const shares = new Map<string, Share>();
  const nowDate = (): Date => deps.clock.now();
  const now = (): string => nowDate().toISOString();
  // Every run reads its customer (a hybrid create: its run and its agent reply); one read a second
  // per process serves them, on the engine's clock so `freshAfter` compares like with like.
  const recentCustomers = recentReads(c.customers, {
    ttlInMs: CUSTOMER_RECENT_IN_MS,
    now: () => nowDate().getTime(),
  });
  const customerOf = (o: Operation) =>
    recentCustomers.get(o.providerId, o.customerId, { freshAfter: new Date(o.createdAt).getTime() });

  interface Ctx {
    current: Versioned<Operation>;
    customer?: Customer;
    /** The customer as read by whoever hands the operation over (acceptance): no second read. */
    customerInHand?: Versioned<Customer>;
    user?: UserRecord;
    input: RunInput;
    /** Whether this run has written the operation (a reply continued in-process must be persisted). */
    persisted: boolean;
    /** The step whose lease the last write also took (so `takeLease` need not write again). */
    leased?: string;
  }
  const op = (ctx: Ctx): Operation => ctx.current.value;

  /**
   * One write of the operation with its etag. `leaseNext` folds the lease of the step that runs next
   * into the same write (one write per step transition instead of two); the lease is still written
   * before that step's side effect.
   */
  async function save(
    ctx: Ctx,
    change: (o: Operation) => void,
    options: { leaseNext?: boolean } = {},
  ): Promise<void> {
    const next = structuredClone(ctx.current.value);
    change(next);
    const leaseFor = options.leaseNext === true ? nextLeasableStep(next) : undefined;
    if (leaseFor !== undefined) leaseChanges(ctx, next, leaseFor.name, 'running');
    next.updatedAt = now();
    try {
      const before = ctx.current.value.state;
      ctx.current = await c.operations.replace(next.providerId, next.operationId, next, ctx.current.etag);
      if (next.state !== before) record.operationState(next.kind, next.state);
    } catch (error) {
      if (error instanceof AppError && error.code === 'ConcurrencyConflict') throw new LostRace();
      throw error;
    }
    ctx.persisted = true;
    ctx.leased = leaseFor?.name;
  }

  /** What taking a step's lease writes: owner + expiry, the step running, one more attempt. */
  function leaseChanges(ctx: Ctx, o: Operation, stepName: string, stepState: Step['state']): void {
    o.lease = {
      owner: ctx.input.runId,
      expiresAt: new Date(nowDate().getTime() + deps.settings.leaseDurationInMs).toISOString(),
    };
    o.state = o.phase === 'compensating' ? 'compensating' : 'running';
    const s = stepOf(o, stepName);
    s.state = stepState;
    s.attempts += 1;
    s.startedAt ??= now();
    delete s.error;
  }

  /**
   * The forward step the run loop would run next with a lease of its own (a pending step whose
   * execution is a side effect: not an agent step, whose claim is its park record), if any.
   */
  function nextLeasableStep(o: Operation): Step | undefined {
    if (o.phase !== 'forward' || o.cancelRequested === true || isFinished(o.state)) return undefined;
    const next = o.steps.find((s) => s.state !== 'done' && s.state !== 'skipped');
    if (next === undefined || next.state !== 'pending') return undefined;
    return stepDefinition(next.name).directory === 'ad' ? undefined : next;
  }

  const stepOf = (o: Operation, name: string): Step => {
    const found = o.steps.find((s) => s.name === name);
    if (found === undefined) throw new AppError('Internal', `operation has no step ${name}`);
    return found;
  };

  const info = (error: AppError): ErrorInfo => {
    const attribute = error.details?.attribute;
    return {
      code: error.code,
      message: error.message,
      retryable: error.retryable,
      ...(typeof attribute === 'string' ? { attribute } : {}),
    };
  };

  async function sendRun(
    o: Pick<Operation, 'providerId' | 'operationId' | 'customerId'> & { correlationId?: string },
    messageId: string,
    at?: Date,
  ): Promise<void> {
    await deps.bus.send(
      directoryWork,
      { type: 'operation.run', v: 1, providerId: o.providerId, operationId: o.operationId },
      {
        messageId,
        ...(o.correlationId === undefined ? {} : { correlationId: o.correlationId }),
        ...(at === undefined ? {} : { scheduledEnqueueTime: at }),
        // Lets a worker re-queue a delivery past its customer's share before reading anything.
        applicationProperties: { customerId: o.customerId },
      },
    );
  }

  function stepContext(ctx: Ctx, step: Step): StepContext {
    const customer = ctx.customer;
    if (customer === undefined) throw new AppError('Internal', 'customer not loaded');
    return contextOf(op(ctx), step, customer, ctx.user);
  }

  function contextOf(
    o: Operation,
    step: Step,
    customer: Customer,
    user: UserRecord | undefined,
  ): StepContext {
    return {
      op: o,
      step,
      customer,
      user,
      cloud: () => {
        if (deps.cloudDirectory === undefined || customer.entra === undefined)
          throw new AppError('Unavailable', 'Microsoft Graph is not configured', { retryable: false });
        return deps.cloudDirectory(customer.entra.tenantId);
      },
      password: () => (o.sealedPassword === undefined ? undefined : deps.sealer.open(o.sealedPassword)),
      result: (name) => o.steps.find((s) => s.name === name)?.result ?? {},
    };
  }

  /** Re-queue this run for later (someone else holds the lease, or an earlier operation must finish). */
  async function comeBackLater(ctx: Ctx, at: Date, why: string): Promise<void> {
    await sendRun(op(ctx), deterministicMessageId('operation.later', ctx.input.messageId, why), at);
  }

  // ---- finishing and the derived user record ---------------------------------------------------------

  function applyOutcome(o: Operation, u: UserRecord): void {
    const finishedAt = o.updatedAt;
    const links = (): void => {
      // A step whose undo failed still exists in its directory: keep its link visible.
      const exists = (s: Step): boolean => s.state === 'done' || s.state === 'compensationFailed';
      const ad = o.steps.find((s) => s.name === 'ad.create' && exists(s))?.result;
      const entra = o.steps.find((s) => s.name === 'entra.create' && exists(s))?.result;
      if (ad?.objectGuid !== undefined)
        u.ad = { objectGuid: ad.objectGuid, dn: ad.dn ?? '', sAMAccountName: ad.sAMAccountName ?? '' };
      if (entra?.objectId !== undefined)
        u.entra = {
          objectId: entra.objectId,
          ...(entra.onPremisesImmutableId === undefined
            ? {}
            : { onPremisesImmutableId: entra.onPremisesImmutableId }),
        };
    };
    u.lastOperationId = o.operationId;
    switch (o.kind) {
      case 'user.create': {
        if (o.state === 'needsLicence') {
          links();
          if (u.state === 'provisioning') u.state = 'needsLicence';
          return;
        }
        if (o.state !== 'succeeded') {
          delete u.ad;
          delete u.entra;
          links();
          u.state = 'failed';
          return;
        }
        links();
        const skuIds = o.steps.find((s) => s.name === 'licences')?.result?.skuIds;
        if (skuIds !== undefined)
          u.licences = skuIds.split(',').map((skuId) => ({ skuId, assignedAt: finishedAt }));
        // A change applied while the create waited for a licence (disable, delete) keeps its state.
        if (u.state === 'provisioning' || u.state === 'needsLicence')
          u.state = o.request.accountEnabled ? 'active' : 'disabled';
        return;
      }
      case 'user.update':
        if (o.state === 'succeeded' && o.request.displayName !== undefined)
          u.displayName = o.request.displayName;
        return;
      case 'user.disable':
        if (o.state === 'succeeded') u.state = 'disabled';
        return;
      case 'user.enable':
        if (o.state === 'succeeded') u.state = 'active';
        return;
      case 'user.delete':
        if (o.state === 'succeeded') u.state = 'deleted';
        return;
      case 'user.licences': {
        if (o.state !== 'succeeded') return;
        const skuIds = o.steps.find((s) => s.name === 'licences.change')?.result?.skuIds ?? '';
        u.licences =
          skuIds === '' ? [] : skuIds.split(',').map((skuId) => ({ skuId, assignedAt: finishedAt }));
        if (u.state === 'needsLicence') u.state = 'active';
        return;
      }
      case 'user.password':
        return;
      case 'user.groupAdd':
      case 'user.groupRemove': {
        if (o.state !== 'succeeded') return;
        const { directory, groupId } = o.request;
        const others = (u.groups ?? []).filter((g) => !(g.directory === directory && g.groupId === groupId));
        u.groups =
          o.kind === 'user.groupAdd'
            ? [...others, { directory, groupId, since: finishedAt, operationId: o.operationId }]
            : others;
        return;
      }
    }
  }

  /**
   * Applies the operation's outcome to its user record. `true`: a create found the record exactly as
   * its request wrote it, i.e. `provisioning` all along, so no change of this user can have been
   * accepted before this write (requests refuse a user being created).
   */
  async function updateUserRecord(o: Operation): Promise<boolean> {
    const partition = userPartition(o.providerId, o.customerId);
    // A create whose record is still as its request wrote it: no read (the etag proves the content).
    if (o.kind === 'user.create' && o.userRecordEtag !== undefined) {
      const next = acceptedUserRecord(o);
      applyOutcome(o, next);
      next.updatedAt = now();
      try {
        await c.users.replace(partition, o.userId, next, o.userRecordEtag);
        return true;
      } catch (error) {
        // Changed or deleted since (a hold, a delete, another incarnation): read it, as below.
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      }
    }
    for (let attempt = 0; attempt < 8; attempt++) {
      const user = await c.users.get(partition, o.userId);
      // Another incarnation of this user id (deleted, then created again) is not this operation's.
      if (user === undefined || user.value.createdAt > o.createdAt) return false;
      const next = structuredClone(user.value);
      applyOutcome(o, next);
      next.updatedAt = now();
      try {
        await c.users.replace(partition, o.userId, next, user.etag);
        return false;
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      }
    }
    throw new AppError('Unavailable', 'user record kept changing; retry', { retryable: true });
  }

  /** Re-applies a finished operation to its user and clears its indexes; safe to repeat. */
  async function applyDerived(ctx: Ctx): Promise<void> {
    const o = op(ctx);
    if (o.outcomeApplied !== true) {
      await updateUserRecord(o);
      await deps.onFinished?.(o);
      await save(ctx, (x) => {
        x.outcomeApplied = true;
      });
    }
    await clearIndexes(ctx);
  }

  /** Queues the next unfinished operation of the same user (it waits for this one). */
  async function wakeNext(o: Operation): Promise<void> {
    const mine = operationIndexKey(o.userSequence, o.operationId);
    for await (const entry of c.userOperations.list(
      userOperationsPartition(o.providerId, o.customerId, o.userId),
    )) {
      if (entry.rowKey <= mine) continue;
      const next = await c.operations.get(o.providerId, entry.value.operationId);
      if (next === undefined || isFinished(next.value.state)) continue;
      if (next.value.state === 'queued' || next.value.state === 'running')
        await sendRun(
          next.value,
          deterministicMessageId('operation.next', next.value.operationId, o.operationId),
        );
      return;
    }
  }

  /**
   * Ends the operation in `state` (after `change`, e.g. the last step's outcome). The derived records
   * (the user, `onFinished`) are applied first from the final operation as it will be written, then the
   * final state and `outcomeApplied` land in one write: a crash in between leaves the operation
   * unfinished, the next run (redelivery or sweep) finishes it again, and re-applying is idempotent.
   */
  async function finish(
    ctx: Ctx,
    state: OperationState,
    log: Logger,
    change?: (o: Operation) => void,
  ): Promise<RunResult> {
    const finalChanges = (o: Operation): void => {
      change?.(o);
      o.state = state;
      delete o.sealedPassword;
      delete o.lease;
      delete o.nextAttemptAt;
    };
    const final = structuredClone(op(ctx));
    finalChanges(final);
    final.updatedAt = now();
    // Nothing of this user was accepted before the record write (see updateUserRecord): a change
    // accepted in the moment since finds this create finishing and looks again shortly.
    const nothingLater = await updateUserRecord(final);
    await deps.onFinished?.(final);
    await save(ctx, (o) => {
      finalChanges(o);
      o.outcomeApplied = true;
    });
    await clearIndexes(ctx, { wakeNext: !nothingLater });
    log.info('operation finished', { operationId: op(ctx).operationId, state });
    return 'finished';
  }

  /** A finished operation's index rows (held, active), then the next of its user. */
  async function clearIndexes(ctx: Ctx, options: { wakeNext?: boolean } = {}): Promise<void> {
    const o = op(ctx);
    const key = activeKey(o.providerId, o.operationId);
    const deletes: Promise<void>[] = [c.active.delete(ACTIVE_PARTITION, key)];
    // Only an operation once held for a seat has a row there (holdForLicence marks it before writing
    // the row). One held by an earlier build without the mark: the licence sweep drops its row.
    if (o.heldForLicence === true) deletes.push(c.held.delete(HELD_PARTITION, key));
    await Promise.all(deletes);
    if (options.wakeNext !== false) await wakeNext(o);
  }

  /** A failure no retry can fix: forward → compensation of the done steps (creates); else failed. */
  async function failPermanently(
    ctx: Ctx,
    error: ErrorInfo,
    stepName: string | undefined,
    options: { compensate: boolean },
  ): Promise<void> {
    await save(ctx, (o) => {
      if (stepName !== undefined) {
        const s = stepOf(o, stepName);
        s.state = 'failed';
        s.error = error;
        s.finishedAt = now();
        // A command still with the agent keeps its record: if the agent applies it late, the reply
        // trigger undoes it (see acceptReply).
        if (s.parked?.phase !== 'execute' || s.reply !== undefined) delete s.parked;
        delete s.reply;
      }
      o.error = error;
      delete o.lease;
      delete o.nextAttemptAt;
      const undoable =
        options.compensate &&
        o.steps.some((s) => s.state === 'done' && stepDefinition(s.name).compensate !== undefined);
      if (undoable) {
        o.phase = 'compensating';
        o.state = 'compensating';
      }
    });
  }

  async function scheduleRetry(ctx: Ctx, error: AppError, stepName: string, log: Logger): Promise<RunResult> {
    const o = op(ctx);
    const retries = o.retries + 1;
    // Pacing (our own Graph budget said "not yet") is no failure: come back when told, without escalating.
    const pacing = error.details?.pacing === true && error.retryAfterInSeconds !== undefined;
    const delay = pacing
      ? (error.retryAfterInSeconds ?? 1) * 1000 + Math.floor(deps.random() * 250)
      : retryDelayInMs(retries, deps.settings.backoff, deps.random, error.retryAfterInSeconds);
    const at = new Date(nowDate().getTime() + delay);
    const limit = limitOf(o);
    if (at.getTime() > limit.getTime()) {
      const gaveUp: ErrorInfo = {
        code: 'DeadlineExceeded',
        message: `gave up at the operation's deadline after ${retries} attempts; last error ${error.code}: ${error.message}`,
        retryable: false,
      };
      if (o.phase === 'compensating') return compensationFailed(ctx, stepName, gaveUp, log);
      await failPermanently(ctx, gaveUp, stepName, { compensate: true });
      return runLoop(ctx);
    }
    await save(ctx, (x) => {
      const s = stepOf(x, stepName);
      s.error = info(error);
      if (s.state === 'running') s.state = x.phase === 'compensating' ? 'compensating' : 'pending';
      x.retries = retries;
      x.nextAttemptAt = at.toISOString();
      x.state = 'retryScheduled';
      delete x.lease;
    });
    await sendRun(op(ctx), deterministicMessageId('operation.retry', o.operationId, String(retries)), at);
    log.info('retry scheduled', {
      operationId: o.operationId,
      step: stepName,
      code: error.code,
      delayInMs: delay,
    });
    return 'retryScheduled';
  }

  async function compensationFailed(
    ctx: Ctx,
    stepName: string,
    error: ErrorInfo,
    log: Logger,
  ): Promise<RunResult> {
    await save(ctx, (o) => {
      const s = stepOf(o, stepName);
      s.state = 'compensationFailed';
      s.undoError = error;
      delete s.parked;
      delete s.reply;
    });
    log.error('compensation failed', { operationId: op(ctx).operationId, step: stepName, code: error.code });
    return finish(ctx, 'compensationFailed', log);
  }

  const limitOf = (o: Operation): Date =>
    new Date(
      new Date(o.deadline).getTime() + (o.phase === 'compensating' ? deps.settings.compensationGraceInMs : 0),
    );

  // ---- parking with the agent ---------------------------------------------------------------------

  /** The park record of a step's next send (a new send id per send; the wait doubles per send). */
  function parkRecord(o: Operation, stepName: string, phase: ParkedCommand['phase']): ParkedCommand {
    const definition = stepDefinition(stepName);
    const commandId =
      phase === 'execute'
        ? definition.idempotencyKey(o)
        : (definition.compensationKey ?? definition.idempotencyKey)(o);
    const previous = stepOf(o, stepName).parked;
    const sends = previous?.commandId === commandId ? previous.sends + 1 : 1;
    const waitInMs = deps.settings.parkTimeoutInMs * 2 ** Math.min(sends - 1, 4);
    const deadline = new Date(Math.min(nowDate().getTime() + waitInMs, limitOf(o).getTime()));
    return {
      commandId,
      sendId: deterministicMessageId('agent.send', commandId, String(sends)),
      sends,
      sentAt: now(),
      deadline: deadline.toISOString(),
      phase,
    };
  }

  /** What a park writes. `claim`: the park is the step's claim (no lease was taken): it counts the attempt. */
  function parkChanges(x: Operation, stepName: string, parked: ParkedCommand, claim: boolean): void {
    const s = stepOf(x, stepName);
    if (claim) {
      s.attempts += 1;
      s.startedAt ??= now();
      delete s.error;
    }
    s.state = parked.phase === 'execute' ? 'waitingForAgent' : 'compensating';
    s.parked = parked;
    delete s.reply;
    x.state = 'waitingForAgent';
    delete x.lease;
  }

  /**
   * Persists the park, then sends: the step's `parked.commandId` is what a reply is matched against
   * (see acceptReply). Storage failures propagate (the message is redelivered); only the send's own
   * failure is classified.
   */
  async function park(
    ctx: Ctx,
    stepName: string,
    command: OnPremCommand,
    phase: 'execute' | 'compensate',
    log: Logger,
    options: { claim?: boolean } = {},
  ): Promise<RunResult | undefined> {
    const siteId = ctx.customer?.ad?.siteId;
    if (deps.agentChannel === undefined || siteId === undefined)
      return parkFailed(
        ctx,
        stepName,
        phase,
        new AppError('Unavailable', 'no relay agent is configured for this customer', { retryable: false }),
        log,
      );
    const parked = parkRecord(op(ctx), stepName, phase);
    await save(ctx, (x) => {
      parkChanges(x, stepName, parked, options.claim === true);
    });
    return sendParked(ctx, siteId, stepName, command, parked, log);
  }

  /** The send of a park already written (the sweeper sends again past its deadline if this never ran). */
  async function sendParked(
    ctx: Ctx,
    siteId: string,
    stepName: string,
    command: OnPremCommand,
    parked: ParkedCommand,
    log: Logger,
  ): Promise<RunResult | undefined> {
    const o = op(ctx);
    try {
      if (deps.agentChannel === undefined) throw new AppError('Internal', 'no agent channel');
      const channel = await deps.agentChannel(siteId);
      await channel.submit(command, {
        commandId: parked.commandId,
        sendId: parked.sendId,
        expiresAt: limitOf(o),
        correlationId: o.correlationId,
      });
    } catch (thrown) {
      return parkFailed(ctx, stepName, parked.phase, toAppError(thrown), log);
    }
    log.info('command sent to the agent; operation parked', {
      operationId: o.operationId,
      step: stepName,
      sends: parked.sends,
    });
    return 'parked';
  }

  async function parkFailed(
    ctx: Ctx,
    stepName: string,
    phase: ParkedCommand['phase'],
    error: AppError,
    log: Logger,
  ): Promise<RunResult | undefined> {
    if (error.retryable) return scheduleRetry(ctx, error, stepName, log);
    if (phase === 'compensate') return compensationFailed(ctx, stepName, info(error), log);
    await failPermanently(ctx, info(error), stepName, { compensate: op(ctx).kind === 'user.create' });
    return undefined;
  }

  /**
   * An agent's reply for a parked step (the reply trigger). The operation continues here, in this
   * invocation, from the operation as read with the reply applied: the run's first write (with the
   * etag read) persists the reply together with the step's outcome and the next step's lease, so the
   * reply is consumed exactly once and no queue hop or re-read stands between AD and Entra. When that
   * run writes nothing (a live lease elsewhere, a concurrent change, not due), the reply is saved on the
   * step and a run is queued to consume it, as a plain delivery would.
   */
  async function acceptReply(reply: OnPremReply, log: Logger): Promise<'resumed' | 'ignored'> {
    // Which operation: a command id is `${operationId}.${step key}` (steps.ts); whose: the provider
    // that owns the replying site (its agent key signed the reply). A reply therefore reaches only an
    // operation of that provider, only a step parked on that very command, and only if the operation's
    // customer works through that site; anything else is ignored like an unknown command.
    const operationId = reply.commandId.slice(0, Math.max(0, reply.commandId.indexOf('.')));
    if (operationId === '') return 'ignored';
    const providerId = await deps.siteOwner(reply.siteId);
    if (providerId === undefined) return 'ignored';
    let continueHere = true;
    for (let attempt = 0; attempt < 8; attempt++) {
      const loaded = await c.operations.get(providerId, operationId);
      if (loaded === undefined) return 'ignored';
      const step = loaded.value.steps.find((s) => s.parked?.commandId === reply.commandId);
      if (step?.parked === undefined) return 'ignored';
      // A deleted customer's operation may still need its late create undone (below).
      const customer = await customerOf(loaded.value);
      if (customer !== undefined && customer.value.ad?.siteId !== reply.siteId) {
        log.warn('agent reply from a site its operation does not use; ignored', {
          siteId: reply.siteId,
          commandId: reply.commandId,
        });
        return 'ignored';
      }
      const gaveUp = isFinished(loaded.value.state) || step.state === 'failed';
      if (gaveUp && step.parked.phase === 'execute') return undoLateCreate(loaded, step.name, reply, log);
      if (step.reply !== undefined || isFinished(loaded.value.state)) return 'ignored';
      const next = structuredClone(loaded.value);
      const target = stepOf(next, step.name);
      target.reply = reply.ok
        ? { ok: true, commandId: reply.commandId, result: reply.result }
        : { ok: false, commandId: reply.commandId, error: reply.error };
      next.updatedAt = now();
      const messageId = deterministicMessageId('operation.reply', reply.commandId, step.parked.sendId);
      if (continueHere) {
        continueHere = false;
        const ctx: Ctx = {
          current: { ...loaded, value: next },
          input: {
            providerId: next.providerId,
            operationId: next.operationId,
            runId: `reply:${reply.commandId}:${randomUUID()}`,
            messageId,
            log,
          },
          persisted: false,
        };
        const outcome = await runLoaded(ctx);
        if (ctx.persisted) {
          log.info('agent reply consumed; operation continued', {
            operationId: next.operationId,
            step: target.name,
            outcome,
          });
          return 'resumed';
        }
        continue;
      }
      try {
        await c.operations.replace(next.providerId, next.operationId, next, loaded.etag);
      } catch (error) {
        if (error instanceof AppError && error.code === 'ConcurrencyConflict') continue;
        throw error;
      }
      await sendRun(next, messageId);
      log.info('agent reply saved; operation resumes', { operationId: next.operationId, step: target.name });
      return 'resumed';
    }
    throw new AppError('Unavailable', 'operation kept changing while saving a reply', { retryable: true });
  }

  /**
   * The agent applied a command after its operation gave up on it (deadline, cancel): an AD account
   * nobody owns. Its undo is sent at once under the step's undo key and recorded on the step.
   */
  async function undoLateCreate(
    loaded: Versioned<Operation>,
    stepName: string,
    reply: OnPremReply,
    log: Logger,
  ): Promise<'resumed' | 'ignored'> {
    const o = loaded.value;
    const definition = stepDefinition(stepName);
    const objectGuid = reply.ok ? reply.result.objectGuid : undefined;
    if (
      objectGuid !== undefined &&
      definition.compensationKey !== undefined &&
      deps.agentChannel !== undefined
    ) {
      const commandId = definition.compensationKey(o);
      const channel = await deps.agentChannel(reply.siteId);
      await channel.submit(
        { type: 'delete', target: { objectGuid } },
        {
          commandId,
          sendId: deterministicMessageId('agent.late-undo', commandId),
          expiresAt: new Date(nowDate().getTime() + deps.settings.compensationGraceInMs),
          correlationId: o.correlationId,
        },
      );
      log.warn('the agent applied a command after its operation gave up; undo sent', {
        operationId: o.operationId,
        step: stepName,
      });
    }
    const next = structuredClone(o);
    const s = stepOf(next, stepName);
    delete s.parked;
    if (objectGuid !== undefined)
      s.result = { ...s.result, lateObjectGuid: objectGuid, lateUndoSentAt: now() };
    next.updatedAt = now();
    await c.operations
      .replace(next.providerId, next.operationId, next, loaded.etag)
      .catch((error: unknown) => {
        // A concurrent change: the undo is sent (idempotent by its key); the record may say so later.
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      });
    return 'ignored';
  }

  // ---- the run ------------------------------------------------------------------------------------

  async function takeLease(ctx: Ctx, stepName: string, stepState: Step['state']): Promise<void> {
    // Taken by the write that finished the previous step (same run, same etag chain).
    if (ctx.leased === stepName && op(ctx).lease?.owner === ctx.input.runId) {
      ctx.leased = undefined;
      return;
    }
    await save(ctx, (o) => {
      leaseChanges(ctx, o, stepName, stepState);
    });
  }

  async function execute(
    ctx: Ctx,
    stepName: string,
    run: (sc: StepContext) => Promise<StepOutcome | undefined>,
  ): Promise<StepOutcome | undefined | AppError> {
    try {
      return await run(stepContext(ctx, stepOf(op(ctx), stepName)));
    } catch (thrown) {
      return toAppError(thrown);
    }
  }

  function replyError(reply: Extract<Step['reply'], { ok: false }>): AppError {
    const code = agentCodes.find((known) => known === reply.error.code) ?? 'Upstream';
    return new AppError(code, reply.error.message, {
      retryable: reply.error.retryable === true,
      ...(reply.error.attribute === undefined ? {} : { details: { attribute: reply.error.attribute } }),
    });
  }

  /**
   * Entra replicates a new user asynchronously: a step right after this operation's own create can be
   * told the user does not exist. The adapter retries that briefly for ids its process created; past
   * that, or on another instance, the operation itself knows: a 404 naming the object its create step
   * made less than LAG_WINDOW_IN_MS ago is retried with the step's backoff, not undone as a failure.
   */
  function replicationLag<T>(ctx: Ctx, outcome: T | AppError): T | AppError {
    if (!(outcome instanceof AppError) || outcome.code !== 'NotFound' || outcome.retryable) return outcome;
    const made = op(ctx).steps.find((s) => s.name === 'entra.create' && s.state === 'done');
    const objectId = made?.result?.objectId;
    if (made?.finishedAt === undefined || objectId === undefined) return outcome;
    if (nowDate().getTime() - new Date(made.finishedAt).getTime() > LAG_WINDOW_IN_MS) return outcome;
    if (!outcome.message.toLowerCase().includes(objectId.toLowerCase())) return outcome;
    return new AppError('NotFound', `replication lag: ${outcome.message}`, {
      retryable: true,
      cause: outcome,
    });
  }

  async function forwardStep(ctx: Ctx, step: Step, log: Logger): Promise<RunResult | undefined> {
    const name = step.name;
    const definition = stepDefinition(name);
    if (step.state === 'waitingForAgent' && step.reply !== undefined) {
      const reply = step.reply;
      if (reply.ok) {
        return stepDone(ctx, log, (o) => {
          const s = stepOf(o, name);
          s.state = 'done';
          s.result = reply.result;
          s.finishedAt = now();
          delete s.parked;
          delete s.reply;
          o.state = 'running';
        });
      }
      const error = replyError(reply);
      await save(ctx, (o) => {
        delete stepOf(o, name).reply;
      });
      if (error.retryable) return scheduleRetry(ctx, error, name, log);
      await failPermanently(ctx, info(error), name, { compensate: op(ctx).kind === 'user.create' });
      return undefined;
    }
    // An agent step's execute only builds its command: its claim is the park record, written with the
    // etag before the send (a concurrent run loses that write and sends nothing), so it takes no lease.
    const agentStep = definition.directory === 'ad';
    if (!agentStep)
      await takeLease(ctx, name, step.state === 'waitingForAgent' ? 'waitingForAgent' : 'running');
    const outcome = replicationLag(ctx, await execute(ctx, name, (sc) => definition.execute(sc)));
    if (outcome instanceof AppError) {
      if (outcome.code === 'LicenceUnavailable') return holdForLicence(ctx, name, outcome, log);
      if (outcome.retryable) return scheduleRetry(ctx, outcome, name, log);
      await failPermanently(ctx, info(outcome), name, { compensate: op(ctx).kind === 'user.create' });
      return undefined;
    }
    if (outcome === undefined) throw new AppError('Internal', `step ${name} returned nothing`);
    if (outcome.kind === 'agent')
      return park(ctx, name, outcome.command, 'execute', log, { claim: agentStep });
    return stepDone(ctx, log, (o) => {
      const s = stepOf(o, name);
      s.state = 'done';
      s.result = outcome.result;
      s.finishedAt = now();
      if (agentStep) s.attempts += 1;
    });
  }

  /**
   * Persists a forward step's success in one write: with the next step's lease, or, when it was the
   * last step, as the operation's end (`finish`).
   */
  async function stepDone(
    ctx: Ctx,
    log: Logger,
    change: (o: Operation) => void,
  ): Promise<RunResult | undefined> {
    const markDone = (o: Operation): void => {
      change(o);
      // The password is needed by the directory steps only; drop it as soon as they are done.
      if (!o.steps.some((x) => passwordSteps.has(x.name) && x.state !== 'done')) delete o.sealedPassword;
    };
    const after = structuredClone(op(ctx));
    markDone(after);
    if (!after.steps.some((s) => s.state !== 'done' && s.state !== 'skipped'))
      return finish(ctx, 'succeeded', log, markDone);
    await save(ctx, markDone, { leaseNext: true });
    return undefined;
  }

  async function compensationStep(ctx: Ctx, log: Logger): Promise<RunResult | undefined> {
    const o = op(ctx);
    const reversed = [...o.steps].reverse();
    const target =
      reversed.find((s) => s.state === 'compensating') ??
      reversed.find((s) => s.state === 'done' && stepDefinition(s.name).compensate !== undefined);
    if (target === undefined) {
      if (o.cancelRequested === true) return finish(ctx, 'cancelled', log);
      return finish(ctx, o.steps.some((s) => s.state === 'compensated') ? 'compensated' : 'failed', log);
    }
    const name = target.name;
    const definition = stepDefinition(name);
    if (target.parked?.phase === 'compensate' && target.reply !== undefined) {
      const reply = target.reply;
      if (reply.ok) {
        await save(ctx, (x) => {
          const s = stepOf(x, name);
          s.state = 'compensated';
          delete s.parked;
          delete s.reply;
          // No longer waiting: a crash after this write is resumed by the sweep (see dueAt).
          x.state = 'compensating';
        });
        return undefined;
      }
      const error = replyError(reply);
      await save(ctx, (x) => {
        delete stepOf(x, name).reply;
      });
      if (error.retryable) return scheduleRetry(ctx, error, name, log);
      return compensationFailed(ctx, name, info(error), log);
    }
    await takeLease(ctx, name, 'compensating');
    if (definition.compensate === undefined) throw new AppError('Internal', `step ${name} has no undo`);
    const outcome = await execute(
      ctx,
      name,
      (sc) => stepDefinition(name).compensate?.(sc) ?? Promise.resolve(undefined),
    );
    if (outcome instanceof AppError) {
      if (outcome.retryable) return scheduleRetry(ctx, outcome, name, log);
      return compensationFailed(ctx, name, info(outcome), log);
    }
    if (outcome?.kind === 'agent') return park(ctx, name, outcome.command, 'compensate', log);
    await save(ctx, (x) => {
      stepOf(x, name).state = 'compensated';
    });
    return undefined;
  }

  async function holdForLicence(ctx: Ctx, name: string, error: AppError, log: Logger): Promise<RunResult> {
    const o = op(ctx);
    const hold = (x: Operation): void => {
      const s = stepOf(x, name);
      s.state = 'waiting';
      s.error = info(error);
      x.state = 'needsLicence';
      x.heldForLicence = true;
      delete x.lease;
    };
    // The user exists in its directories: link both (from the held operation, before anyone can read
    // it as held), so disable/delete reach AD and Entra. A crash before the hold's write: the next run
    // holds again or assigns the licence, and either outcome re-applies the record.
    const held = structuredClone(o);
    hold(held);
    held.updatedAt = now();
    await updateUserRecord(held);
    await save(ctx, hold);
    // Created once: `heldAt` is when the hold began, which bounds how long the licence sweep retries.
    if ((await c.held.get(HELD_PARTITION, activeKey(o.providerId, o.operationId))) === undefined) {
      await c.held
        .create(HELD_PARTITION, activeKey(o.providerId, o.operationId), {
          providerId: o.providerId,
          operationId: o.operationId,
          customerId: o.customerId,
          heldAt: now(),
        })
        .catch((error: unknown) => {
          if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
        });
    }
    log.warn('operation held: no free licence', { operationId: o.operationId, step: name });
    return 'needsLicence';
  }

  async function runLoop(ctx: Ctx): Promise<RunResult> {
    const log = ctx.input.log;
    for (let guard = 0; guard < 100; guard++) {
      const o = op(ctx);
      if (isFinished(o.state)) {
        await applyDerived(ctx);
        return 'finished';
      }
      const result =
        o.phase === 'compensating'
          ? await compensationStep(ctx, log)
          : await (async () => {
              const next = o.steps.find((s) => s.state !== 'done' && s.state !== 'skipped');
              if (next === undefined) return finish(ctx, 'succeeded', log);
              if (next.state === 'failed' || next.state === 'compensated') {
                // Never re-run a failed or undone step: the operation is past it.
                await failPermanently(
                  ctx,
                  next.error ?? { code: 'Internal', message: `step ${next.name} failed earlier` },
                  undefined,
                  { compensate: o.kind === 'user.create' },
                );
                if (op(ctx).phase !== 'compensating') return finish(ctx, 'failed', log);
                return undefined;
              }
              if (
                o.cancelRequested === true &&
                !(next.state === 'waitingForAgent' && next.reply !== undefined)
              ) {
                // Cancelled: no new step starts; what was done is undone.
                await failPermanently(
                  ctx,
                  { code: 'Cancelled', message: 'cancelled on request', retryable: false },
                  undefined,
                  { compensate: true },
                );
                if (op(ctx).phase !== 'compensating') return finish(ctx, 'cancelled', log);
                return undefined;
              }
              return forwardStep(ctx, next, log);
            })();
      if (result !== undefined) return result;
    }
    throw new AppError('Internal', 'operation did not settle within 100 transitions');
  }

  /** Entry point of the directory worker (and of tests): runs until finished, parked, scheduled or held. */
  async function run(input: RunInput): Promise<RunResult> {
    // A delivery the message says is for a customer past its share goes back to its turn unread.
    if (input.customerHint !== undefined) {
      const hinted = shareOf(input.providerId, input.customerHint);
      if (hinted.running >= deps.settings.maxRunsPerCustomer) {
        await requeueToTurn(
          {
            providerId: input.providerId,
            operationId: input.operationId,
            customerId: input.customerHint,
            ...(input.correlationId === undefined ? {} : { correlationId: input.correlationId }),
          },
          hinted,
          input.messageId,
        );
        return 'requeued';
      }
    }
    const loaded = await c.operations.get(input.providerId, input.operationId);
    if (loaded === undefined)
      throw new InvalidMessageError(
        'UnknownOperation',
        `operation ${input.operationId} of provider ${input.providerId} does not exist`,
      );
    const ctx: Ctx = { current: loaded, input, persisted: false };
    const o = loaded.value;
    const share = shareOf(o.providerId, o.customerId);
    // Only runs that will do work count (a parked or held operation's delivery returns at once).
    const quick =
      isFinished(o.state) ||
      o.state === 'heldForConfirmation' ||
      (o.state === 'waitingForAgent' && !o.steps.some((s) => s.reply !== undefined));
    if (quick) return runLoaded(ctx);
    if (share.running >= deps.settings.maxRunsPerCustomer) {
      await requeueToTurn(o, share, input.messageId);
      return 'requeued';
    }
    share.running++;
    const started = Date.now();
    try {
      return await runLoaded(ctx);
    } finally {
      share.running--;
      // How long this customer's runs hold a worker (a moving average): the spacing of its turns.
      share.runInMs = share.runInMs * 0.8 + (Date.now() - started) * 0.2;
    }
  }

  interface Share {
    running: number;
    /** The next turn to hand out: turns are spaced so the share's workers stay busy, no more. */
    nextTurnAtMs: number;
    runInMs: number;
  }

  function shareOf(providerId: string, customerId: string): Share {
    const key = `${providerId}/${customerId}`;
    let share = shares.get(key);
    if (share === undefined) {
      share = { running: 0, nextTurnAtMs: 0, runInMs: 500 };
      shares.set(key, share);
    }
    return share;
  }

  /**
   * Nothing is written: the delivery comes back at its customer's next turn. Turns are handed out one
   * share-worker's run time apart (a little closer, so a worker never idles), so a bulk import's
   * backlog leaves the ready queue once and comes back at the rate its share can take, and another
   * customer's message behind it waits for no pass over that backlog.
   */
  async function requeueToTurn(
    o: Pick<Operation, 'providerId' | 'operationId' | 'customerId'> & { correlationId?: string },
    share: Share,
    messageId: string,
  ): Promise<void> {
    const t = nowDate().getTime();
    const spacingInMs = Math.max(20, (0.8 * share.runInMs) / deps.settings.maxRunsPerCustomer);
    const turnAtMs = Math.max(t + minShareWaitInMs, share.nextTurnAtMs);
    share.nextTurnAtMs = turnAtMs + spacingInMs;
    await sendRun(
      o,
      deterministicMessageId('operation.later', messageId, 'share'),
      new Date(turnAtMs + Math.floor(deps.random() * spacingInMs)),
    );
  }

  /** A run from an operation already in hand (loaded by `run`, or with an agent's reply applied). */
  async function runLoaded(ctx: Ctx): Promise<RunResult> {
    const input = ctx.input;
    const log = input.log;
    try {
      const o = op(ctx);
      if (isFinished(o.state)) {
        await applyDerived(ctx);
        return 'finished';
      }
      if (o.state === 'heldForConfirmation') return 'held';
      const t = nowDate().getTime();
      if (
        o.lease !== undefined &&
        o.lease.owner !== input.runId &&
        new Date(o.lease.expiresAt).getTime() > t
      ) {
        await comeBackLater(ctx, new Date(new Date(o.lease.expiresAt).getTime() + 1000), 'leased');
        return 'busy';
      }
      const parkedStep = o.steps.find((s) => s.parked !== undefined && s.reply === undefined);
      if (
        o.state === 'waitingForAgent' &&
        parkedStep?.parked !== undefined &&
        new Date(parkedStep.parked.deadline).getTime() > t
      )
        return 'notDue';
      if (
        o.state === 'retryScheduled' &&
        o.nextAttemptAt !== undefined &&
        new Date(o.nextAttemptAt).getTime() > t + 1000
      )
        return 'notDue';

      // Per-user order: an earlier operation of this user that is still running goes first. When it
      // finishes it wakes this one; the scheduled run is only the safety net. The user's first
      // operation (sequence 1) has no earlier one to look for.
      // A change reads its user first: the record names the create that made it (`creation`), which a
      // brand-new user's create leaves out of the user's index (requests.ts, store).
      const change = o.kind !== 'user.create' && o.userSequence !== 1;
      const userNow = change
        ? (await c.users.get(userPartition(o.providerId, o.customerId), o.userId))?.value
        : undefined;
      const earlier =
        o.userSequence === 1 ? undefined : await earlierOperationPending(o, userNow?.creation?.operationId);
      if (earlier !== undefined) {
        // A change waits for its user's create only in the moment the create has written the user
        // record (requests refuse a user being created) and not yet its end, and such a finish does
        // not wake it (finish): look again soon while the create is recent. Otherwise the earlier
        // one's finish wakes this one and the scheduled run is the safety net.
        const finishing =
          earlier.kind === 'user.create' &&
          o.kind !== 'user.create' &&
          t - new Date(earlier.updatedAt).getTime() < 10 * finishingRecheckInMs;
        await comeBackLater(
          ctx,
          new Date(t + (finishing ? finishingRecheckInMs : orderSafetyNetInMs)),
          `order:${o.updatedAt}`,
        );
        return 'waitingForEarlier';
      }

      const customer = ctx.customerInHand ?? (await customerOf(o));
      const refused =
        customer === undefined
          ? new AppError('NotFound', `customer ${o.customerId} is gone`)
          : await deps.assertWorkAllowed(o.providerId, customer.value).then(
              () => undefined,
              (error: unknown) => toAppError(error),
            );
      if (refused !== undefined) {
        if (refused.retryable) throw refused;
        // Not this provider's resources (or gone): fail visibly, touching no directory, undoing nothing.
        await failPermanently(ctx, info(refused), undefined, { compensate: false });
        log.warn('operation refused by tenancy', { operationId: o.operationId, code: refused.code });
        return await finish(ctx, 'failed', log);
      }
      ctx.customer = customer?.value;
      // A create's steps work from their own results; its user record matters only to a held create
      // (deleted meanwhile?). Every other kind acts on the linked accounts of the record.
      if (change) ctx.user = userNow;
      else if (o.kind !== 'user.create' || o.state === 'needsLicence')
        ctx.user = (await c.users.get(userPartition(o.providerId, o.customerId), o.userId))?.value;

      if (o.kind === 'user.create' && o.state === 'needsLicence' && ctx.user?.state === 'deleted') {
        return await finish(ctx, 'cancelled', log);
      }
      if (o.state === 'needsLicence') {
        // A hold is bounded by the licence sweep, not by the deadline: resuming grants the original span.
        const span = new Date(o.deadline).getTime() - new Date(o.createdAt).getTime();
        await save(ctx, (x) => {
          x.deadline = new Date(t + span).toISOString();
        });
      }
      if (op(ctx).phase === 'forward' && t > new Date(op(ctx).deadline).getTime()) {
        const last = o.steps.find((s) => s.error !== undefined)?.error;
        await failPermanently(
          ctx,
          {
            code: 'DeadlineExceeded',
            message: `not finished by its deadline ${o.deadline}${last === undefined ? '' : `; last error ${last.code}: ${last.message}`}`,
            retryable: false,
          },
          o.steps.find((s) => s.state !== 'done' && s.state !== 'skipped')?.name,
          { compensate: o.kind === 'user.create' },
        );
      }
      return await runLoop(ctx);
    } catch (error) {
      if (error instanceof LostRace) {
        log.info('operation is being run by another delivery', { operationId: input.operationId });
        return 'busy';
      }
      throw error;
    }
  }

  /** A run inside the request that accepted the operation, with the customer that request read. */
  function acceptanceCtx(
    stored: Versioned<Operation>,
    customer: Versioned<Customer>,
    log: Logger,
    persisted: boolean,
  ): Ctx {
    const o = stored.value;
    return {
      current: stored,
      customerInHand: customer,
      input: {
        providerId: o.providerId,
        operationId: o.operationId,
        runId: `accept:${o.operationId}:${randomUUID()}`,
        // The id its queued run would have had: messages this run sends derive theirs from it.
        messageId: deterministicMessageId('operation.run', o.providerId, o.operationId),
        log,
      },
      persisted,
    };
  }

  /**
   * A create just stored by its request, whose first step is the agent's, parks here: its command goes
   * to the agent at once, with no queue hop and no second read of the operation or its customer. Only a
   * user's first operation (nothing earlier to wait for). `false`: nothing was run, queue it instead.
   * A throw after the park's write leaves a parked operation the sweep resends; before it, a queued one.
   */
  async function startAccepted(
    accepted: Versioned<Operation>,
    customer: Versioned<Customer>,
    log: Logger,
  ): Promise<boolean> {
    const o = accepted.value;
    const first = o.steps.find((s) => s.state !== 'done' && s.state !== 'skipped');
    if (
      o.state !== 'queued' ||
      o.userSequence !== 1 ||
      first === undefined ||
      first.state !== 'pending' ||
      stepDefinition(first.name).directory !== 'ad'
    )
      return false;
    const ctx = acceptanceCtx(accepted, customer, log, false);
    await runLoaded(ctx);
    return ctx.persisted;
  }

  /**
   * A create whose first step is the agent's is stored already parked: the request's one write of the
   * operation is then also the step's claim and park record (instead of a queued row rewritten a moment
   * later), and `send` hands the command over once that row is stored. The checks are a run's (tenancy
   * first). `undefined`: store it queued and start it as any other (startAccepted), which also makes a
   * refusal visible. A crash between the store and the send leaves a park that the sweeper sends again
   * at its deadline, as a crash right after any park's write does.
   */
  async function parkOnAcceptance(
    o: Operation,
    customer: Versioned<Customer>,
  ): Promise<
    { operation: Operation; send(stored: Versioned<Operation>, log: Logger): Promise<void> } | undefined
  > {
    const first = o.steps.find((s) => s.state !== 'done' && s.state !== 'skipped');
    const siteId = customer.value.ad?.siteId;
    if (
      o.kind !== 'user.create' ||
      o.state !== 'queued' ||
      o.userSequence !== 1 ||
      first === undefined ||
      first.state !== 'pending' ||
      stepDefinition(first.name).directory !== 'ad' ||
      deps.agentChannel === undefined ||
      siteId === undefined ||
      nowDate().getTime() > new Date(o.deadline).getTime()
    )
      return undefined;
    const allowed = await deps.assertWorkAllowed(o.providerId, customer.value).then(
      () => true,
      () => false,
    );
    if (!allowed) return undefined;
    const outcome = await stepDefinition(first.name)
      .execute(contextOf(o, first, customer.value, undefined))
      .catch(() => undefined);
    if (outcome?.kind !== 'agent') return undefined;
    const parked = parkRecord(o, first.name, 'execute');
    const operation = structuredClone(o);
    parkChanges(operation, first.name, parked, true);
    return {
      operation,
      send: async (stored, log) => {
        const ctx = acceptanceCtx(stored, customer, log, true);
        ctx.customer = customer.value;
        try {
          await sendParked(ctx, siteId, first.name, outcome.command, parked, log);
        } catch (error) {
          // Another delivery (the sweeper) took it meanwhile: it is theirs now.
          if (!(error instanceof LostRace)) throw error;
        }
      },
    };
  }

  /**
   * An operation of the user accepted before `o` that must finish first: the create that made the
   * user record (`createdBy`, its `creation`: a brand-new user's create is not in the user's index),
   * then the user's index in acceptance order.
   */
  async function earlierOperationPending(
    o: Operation,
    createdBy: string | undefined,
  ): Promise<Operation | undefined> {
    const blocking = async (operationId: string): Promise<Operation | undefined> => {
      const earlier = await c.operations.get(o.providerId, operationId);
      return earlier !== undefined && blocksLaterOperations(earlier.value) ? earlier.value : undefined;
    };
    // The user's create comes before every change of it (changes are refused while it provisions).
    const create = createdBy === undefined || createdBy === o.operationId ? undefined : createdBy;
    if (create !== undefined) {
      const pending = await blocking(create);
      if (pending !== undefined) return pending;
    }
    const mine = operationIndexKey(o.userSequence, o.operationId);
    for await (const entry of c.userOperations.list(
      userOperationsPartition(o.providerId, o.customerId, o.userId),
    )) {
      if (entry.rowKey >= mine) break;
      // A retried request whose first attempt died mid-store took a second place under the same id:
      // its first place is itself, never an earlier operation to wait for.
      if (entry.value.operationId === o.operationId || entry.value.operationId === create) continue;
      const pending = await blocking(entry.value.operationId);
      if (pending !== undefined) return pending;
    }
    return undefined;
  }

  return { run, acceptReply, applyOutcome, sendRun, startAccepted, parkOnAcceptance };
}

export type Runner = ReturnType<typeof createRunner>;
