import { isFinished, type Operation } from '../../domain/operation.js';
import { deterministicMessageId } from '../../ports/bus.js';
import type { Clock } from '../../ports/clock.js';
import { ACTIVE_PARTITION, activeKey, HELD_PARTITION, type EngineCollections } from './records.js';
import { AppError } from '../../errors.js';
import type { Runner } from './runner.js';

/**
 * Timers that keep the engine free of dead ends. The operation sweep resumes anything whose lease,
 * park deadline or retry time passed without a run (a lost message, a crashed worker), heals finished
 * operations whose user record was not updated, and lets the runner fail what is past its deadline. The
 * licence sweep retries operations held for a seat, for a bounded time, and then says it stopped.
 */
export interface SweepLimits {
  /** At most this many operations per sweep… */
  limit: number;
  /** …and no longer than this (the timer runs again soon). */
  budgetInMs: number;
}

/** How long after it was due an operation counts as stuck (its own message had the chance to arrive). */
const graceInMs = 30_000;

export function createSweeper(deps: {
  c: EngineCollections;
  clock: Clock;
  runner: Runner;
  /** How long the licence sweep keeps retrying one held operation. */
  licenceHoldInMs: number;
}) {
  const { c } = deps;

  function dueAt(o: Operation): number | undefined {
    if (isFinished(o.state)) return o.outcomeApplied === true ? undefined : 0;
    if (o.state === 'heldForConfirmation' || o.state === 'needsLicence') return undefined;
    const deadline = new Date(o.deadline).getTime();
    const times: number[] = [deadline];
    if (o.lease !== undefined) times.push(new Date(o.lease.expiresAt).getTime());
    else if (o.state === 'queued' || o.state === 'running' || o.state === 'compensating')
      times.push(new Date(o.updatedAt).getTime() + graceInMs);
    if (o.state === 'retryScheduled' && o.nextAttemptAt !== undefined)
      times.push(new Date(o.nextAttemptAt).getTime() + graceInMs);
    if (o.state === 'waitingForAgent') {
      const parked = o.steps.filter((s) => s.parked !== undefined);
      for (const s of parked) if (s.parked !== undefined) times.push(new Date(s.parked.deadline).getTime());
      // Waiting with nothing parked: a run stopped after consuming its reply; nobody else will resume it.
      if (parked.length === 0) times.push(new Date(o.updatedAt).getTime() + graceInMs);
    }
    if (o.steps.some((s) => s.reply !== undefined)) times.push(new Date(o.updatedAt).getTime() + graceInMs);
    return Math.min(...times);
  }

  async function sweepOperations(limits: SweepLimits): Promise<{ resumed: number; more: boolean }> {
    const started = Date.now();
    const t = deps.clock.now().getTime();
    const minute = deps.clock.now().toISOString().slice(0, 16);
    let resumed = 0;
    let seen = 0;
    for await (const entry of c.active.list(ACTIVE_PARTITION)) {
      if (seen >= limits.limit || Date.now() - started > limits.budgetInMs) return { resumed, more: true };
      seen++;
      const found = await c.operations.get(entry.value.providerId, entry.value.operationId);
      if (found === undefined) {
        // The request stopped between its index and its operation; the client's retry stores it again.
        if (t - new Date(entry.value.since).getTime() > 10 * 60_000)
          await c.active.delete(ACTIVE_PARTITION, entry.rowKey, entry.etag);
        continue;
      }
      // A hold is two writes (the operation, then its row in the licence sweep's index): a crash between
      // them left an operation held that no sweep would ever retry. The active index sees it; repair it.
      if (found.value.state === 'needsLicence') {
        const key = activeKey(found.value.providerId, found.value.operationId);
        if ((await c.held.get(HELD_PARTITION, key)) === undefined)
          await c.held
            .create(HELD_PARTITION, key, {
              providerId: found.value.providerId,
              operationId: found.value.operationId,
              customerId: found.value.customerId,
              heldAt: found.value.updatedAt,
            })
            .catch((error: unknown) => {
              if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
            });
        continue;
      }
      const due = dueAt(found.value);
      if (due === undefined || due > t) continue;
      await deps.runner.sendRun(
        found.value,
        deterministicMessageId('operation.sweep', found.value.operationId, minute),
      );
      resumed++;
    }
    return { resumed, more: false };
  }

  /**
   * Queues every operation held for a licence again (seats may have been bought meanwhile). One run per
   * operation per sweep minute. Past `licenceHoldInMs` an operation is no longer retried automatically: it
   * stays `needsLicence`, says so in its error, and `POST /operations/{id}/retry` starts it again.
   */
  /** `providerId` narrows it to that provider's held operations (e.g. after buying seats for it). */
  /**
   * `cause` names this pass in the runs' message ids (default: the minute). Seats just bought pass their
   * own, so Service Bus duplicate detection cannot drop their resume as a repeat of an earlier pass of
   * the same minute that found no seat.
   */
  async function sweepHeld(
    limits: SweepLimits,
    providerId?: string,
    cause?: string,
  ): Promise<{ queued: number; stopped: number; more: boolean }> {
    const started = Date.now();
    const t = deps.clock.now().getTime();
    const minute = deps.clock.now().toISOString().slice(0, 16);
    let queued = 0;
    let stopped = 0;
    const narrowed = providerId === undefined ? {} : { rowKeyPrefix: `${providerId}/` };
    for await (const entry of c.held.list(HELD_PARTITION, narrowed)) {
      if (queued + stopped >= limits.limit || Date.now() - started > limits.budgetInMs)
        return { queued, stopped, more: true };
      const { providerId, operationId } = entry.value;
      const op = await c.operations.get(providerId, operationId);
      if (op === undefined || op.value.state !== 'needsLicence') {
        await c.held.delete(HELD_PARTITION, entry.rowKey);
        continue;
      }
      if (t - new Date(entry.value.heldAt).getTime() > deps.licenceHoldInMs) {
        const next = structuredClone(op.value);
        next.error = {
          code: 'LicenceHoldExpired',
          message: `no free licence since ${entry.value.heldAt}; the licence sweep stopped retrying. Add seats, then POST /api/operations/${operationId}/retry`,
          retryable: false,
        };
        next.updatedAt = deps.clock.now().toISOString();
        await c.operations.replace(providerId, operationId, next, op.etag);
        await c.held.delete(HELD_PARTITION, entry.rowKey);
        stopped++;
        continue;
      }
      await deps.runner.sendRun(
        op.value,
        deterministicMessageId('operation.licence-sweep', operationId, cause ?? minute),
      );
      queued++;
    }
    return { queued, stopped, more: false };
  }

  return { sweepOperations, sweepHeld };
}
