import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../shared/ports/clock.js';
import { createSagaRunner, type SagaStepDefinition } from '../../../shared/usecases/tenants/saga.js';
import { Crash, MemoryStore } from '../engine/world.js';

/**
 * The commerce saga under a crash at every write: an outside system that remembers each request key
 * (as Partner Center does with MS-RequestId) sees one order whatever write the crash hit, and the
 * operation always ends `succeeded` once the sweeper takes over the expired lease.
 */
function world(crashAt: { write: number; when: 'before' | 'after' } | undefined) {
  const store = new MemoryStore();
  let now = Date.parse('2026-03-10T09:30:00Z');
  const clock: Clock = { now: () => new Date(now) };
  const orders = new Map<string, number>(); // request key → times sent (the outside system)
  let provisionedAfter = 2;
  const steps: SagaStepDefinition[] = [
    {
      name: 'checkout',
      execute(ctx) {
        const key = `${ctx.saga.operationId}:checkout`;
        orders.set(key, (orders.get(key) ?? 0) + 1);
        return Promise.resolve({ kind: 'done', result: { orderId: `order-${ctx.saga.operationId}` } });
      },
    },
    {
      name: 'provisioning',
      execute() {
        provisionedAfter -= 1;
        return Promise.resolve(
          provisionedAfter > 0
            ? { kind: 'poll', reason: 'order pending' }
            : { kind: 'done', result: { subscriptionId: 's-1' } },
        );
      },
    },
  ];
  const runner = createSagaRunner({
    store,
    clock,
    stepsFor: () => steps,
    settings: { leaseDurationInMs: 60_000, backoff: { baseDelayInMs: 1000, maxDelayInMs: 10_000 } },
    random: () => 0.5,
  });
  store.crashAt = crashAt;
  return { store, runner, orders, advance: (ms: number) => (now += ms) };
}

async function runToTheEnd(w: ReturnType<typeof world>) {
  let crashed = false;
  let operationId: string | undefined;
  try {
    const started = await w.runner.start({
      providerId: 'p1',
      customerId: 'c1',
      kind: 'subscription.buy',
      request: { quantity: 3 },
      actor: 'key-1',
      idempotencyKey: 'buy-1',
      fingerprint: 'f',
      held: false,
      deadlineInMs: 24 * 3_600_000,
    });
    operationId = started.saga.operationId;
    await w.runner.advance('p1', operationId);
  } catch (error) {
    if (!(error instanceof Crash)) throw error;
    crashed = true;
  }
  const firstRunWrites = w.store.writes;
  w.store.crashAt = undefined;
  // The request is repeated (same key) and the sweeper resumes whatever is left.
  const again = await w.runner.start({
    providerId: 'p1',
    customerId: 'c1',
    kind: 'subscription.buy',
    request: { quantity: 3 },
    actor: 'key-1',
    idempotencyKey: 'buy-1',
    fingerprint: 'f',
    held: false,
    deadlineInMs: 24 * 3_600_000,
  });
  operationId = again.saga.operationId;
  for (let round = 0; round < 10; round++) {
    const state = (await w.runner.get('p1', operationId))?.value.state;
    if (state === 'succeeded') break;
    w.advance(61_000);
    if (again.created && round === 0) await w.runner.advance('p1', operationId);
    else await w.runner.sweep();
  }
  return { crashed, firstRunWrites, saga: (await w.runner.get('p1', operationId))?.value };
}

describe('commerce saga', () => {
  it('without a crash: checkout once, provisioning polled with backoff, succeeded', async () => {
    const w = world(undefined);
    const { saga } = await runToTheEnd(w);
    expect(saga?.state).toBe('succeeded');
    expect([...w.orders.values()]).toEqual([1]);
    expect(saga?.steps.find((s) => s.name === 'provisioning')?.attempts).toBe(2);
  });

  it('a crash before or after any write never orders twice under two keys, and always finishes', async () => {
    const clean = world(undefined);
    // Every write of the first run (accept, lease, each step's start and outcome, the poll's schedule).
    const writes = (await runToTheEnd(clean)).firstRunWrites;
    expect(writes).toBeGreaterThan(5);
    for (let write = 1; write <= writes; write++) {
      for (const when of ['before', 'after'] as const) {
        const w = world({ write, when });
        const { crashed, saga } = await runToTheEnd(w);
        expect(crashed, `write ${write} ${when}`).toBe(true);
        expect(saga?.state, `write ${write} ${when}`).toBe('succeeded');
        // One request key only: the outside system answers its repeats with the first order.
        expect(w.orders.size, `write ${write} ${when}`).toBe(1);
      }
    }
  });

  it('a held operation does not run until approved, and one not started can be cancelled', async () => {
    const w = world(undefined);
    const input = {
      providerId: 'p1',
      customerId: 'c1',
      kind: 'subscription.buy' as const,
      request: { quantity: 30 },
      actor: 'key-1',
      fingerprint: 'g',
      held: true,
      deadlineInMs: 3_600_000,
    };
    const held = (await w.runner.start({ ...input, idempotencyKey: 'big' })).saga;
    expect((await w.runner.advance('p1', held.operationId)).state).toBe('heldForApproval');
    expect(w.orders.size).toBe(0);
    expect((await w.runner.approve('p1', held.operationId, 'boss')).state).toBe('retryScheduled');
    expect(w.orders.size).toBe(1);
    const other = (await w.runner.start({ ...input, idempotencyKey: 'other' })).saga;
    expect((await w.runner.cancel('p1', other.operationId)).state).toBe('cancelled');
    await w.runner.sweep();
    expect(w.orders.size).toBe(1);
  });
});
