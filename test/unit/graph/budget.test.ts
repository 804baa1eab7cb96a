import { describe, expect, it } from 'vitest';
import {
  costOf,
  deferredRetryAfter,
  GraphBudget,
  GraphBudgetDeferred,
  type GraphBudgetSettings,
} from '../../../shared/adapters/graph/budget.js';
import { mapGraphError } from '../../../shared/adapters/graph/errors.js';
import { GraphError } from '@microsoft/microsoft-graph-client';

/** A clock that only moves when someone sleeps on it. */
function virtualClock() {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    nowMs: () => now,
    sleep: (ms: number) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
    advance: (ms: number) => {
      now += ms;
    },
    sleeps,
  };
}

const small: GraphBudgetSettings = {
  writesPerWindow: 10,
  writeWindowInMs: 1000,
  resourceUnitsPerWindow: 100,
  resourceUnitWindowInMs: 1000,
  appWritesPerWindow: 15,
  appWriteWindowInMs: 1000,
  share: 1,
  maxWaitInMs: 2000,
};
const write = { resourceUnits: 1, writes: 1 };
const read = { resourceUnits: 2, writes: 0 };

describe('Graph throttle budget', () => {
  it('sends up to the write limit at once, then paces each next write to when the oldest leaves the window', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget(small, clock);
    for (let i = 0; i < 10; i++) await budget.acquire('t1', write);
    expect(clock.sleeps).toEqual([]);
    await budget.acquire('t1', write);
    // The window (1000 ms) plus the 5 % margin for the time a request takes to reach Graph.
    expect(clock.sleeps).toEqual([1050]);
    expect(budget.stats).toMatchObject({ granted: 11, deferred: 0 });
  });

  it('hands a request back as Throttled with the wait as Retry-After instead of holding the worker', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget({ ...small, maxWaitInMs: 500 }, clock);
    for (let i = 0; i < 10; i++) await budget.acquire('t1', write);
    const error = await budget.acquire('t1', write).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GraphBudgetDeferred);
    expect((error as GraphBudgetDeferred).retryAfterInSeconds).toBe(2);
    expect(budget.stats.deferred).toBe(1);
    // Nothing was reserved by the refusal: once the window passes, ten fit again at once.
    clock.advance(1100);
    for (let i = 0; i < 10; i++) await budget.acquire('t1', write);
    expect(clock.sleeps).toEqual([]);
  });

  it('gives deferred requests turns at the tenant rate, so a backlog comes back spread out and is served once', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget({ ...small, appWritesPerWindow: 1000, maxWaitInMs: 300 }, clock);
    const start = clock.nowMs();
    for (let i = 0; i < 10; i++) await budget.acquire('bulk', write);
    const turns: number[] = [];
    for (let i = 0; i < 30; i++) {
      const error = await budget.acquire('bulk', write).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GraphBudgetDeferred);
      turns.push((error as GraphBudgetDeferred).retryAfterInSeconds);
    }
    // 30 more writes at 10 per 1,050 ms: turns from the window's end (1.05 s) one share (105 ms) apart.
    expect(turns).toEqual([...turns].sort((a, b) => a - b));
    expect(turns[0]).toBe(2);
    expect(turns.at(-1)).toBe(5);
    // Each comes back at its turn: (nearly) all are served then, none needs a second turn.
    let again = 0;
    for (const turn of turns) {
      clock.advance(Math.max(0, start + turn * 1000 - clock.nowMs()));
      await budget.acquire('bulk', write).catch(() => {
        again++;
      });
    }
    expect(again).toBe(0);
  });

  it('keeps counting the window after handing a request back: the next one at the same moment waits too', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget({ ...small, maxWaitInMs: 300 }, clock);
    for (let i = 0; i < 10; i++) await budget.acquire('t1', write);
    await expect(budget.acquire('t1', write)).rejects.toBeInstanceOf(GraphBudgetDeferred);
    // Looking ahead for the first one's turn must not forget the ten writes still in the window.
    await expect(budget.acquire('t1', write)).rejects.toBeInstanceOf(GraphBudgetDeferred);
    expect(budget.stats).toMatchObject({ granted: 10, deferred: 2 });
  });

  it('survives the SDK re-wrapping: mapGraphError gives a retryable Throttled with the Retry-After', () => {
    // GraphErrorHandler.constructError keeps only name (as code) and message of a middleware's error.
    const deferred = new GraphBudgetDeferred(7);
    const wrapped = new GraphError(-1, '', deferred);
    wrapped.code = deferred.name;
    const mapped = mapGraphError(wrapped, 'create user');
    expect(mapped).toMatchObject({ code: 'Throttled', retryable: true, retryAfterInSeconds: 7 });
    expect(mapped.details).toEqual({ pacing: true });
    expect(deferredRetryAfter(deferred.message)).toBe(7);
  });

  it('counts a request from when it was really sent when its timer fired late', async () => {
    const clock = virtualClock();
    const late = { ...clock, sleep: async (ms: number) => clock.sleep(ms + 400) };
    const budget = new GraphBudget(small, late);
    for (let i = 0; i < 10; i++) await budget.acquire('t1', write);
    await budget.acquire('t1', write); // reserved at +1050, really sent at +1450
    // 850 ms after the real send: counted from the reservation it would have left the window (650 ms),
    // counted from the send (as Graph counts it) it is still in (1050 ms), so only nine more fit.
    clock.advance(850);
    for (let i = 0; i < 9; i++) await budget.acquire('t1', write);
    const before = clock.sleeps.length;
    await budget.acquire('t1', write);
    expect(clock.sleeps.length).toBe(before + 1);
  });

  it('does not hold reads behind a backlog of writes', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget(small, clock);
    for (let i = 0; i < 11; i++) await budget.acquire('t1', write);
    const slept = clock.sleeps.length;
    await budget.acquire('t1', read);
    expect(clock.sleeps.length).toBe(slept);
  });

  it('lets no tenant book the app-wide quota further ahead than maxWaitInMs, so another tenant gets in when it frees', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget({ ...small, writesPerWindow: 100, maxWaitInMs: 300 }, clock);
    // The bulk tenant takes the whole app-wide write quota and queues up to maxWait ahead.
    let bulkDeferred = 0;
    for (let i = 0; i < 40; i++) {
      await budget.acquire('bulk', write).catch(() => {
        bulkDeferred++;
      });
    }
    expect(bulkDeferred).toBeGreaterThan(0);
    // The app-wide quota is really full now: the single request is handed back too, but its turn is
    // the app window's end (1 s), not after the bulk's backlog (its surplus was handed back, not booked).
    const single = await budget.acquire('single', write).catch((e: unknown) => e);
    expect(single).toBeInstanceOf(GraphBudgetDeferred);
    expect((single as GraphBudgetDeferred).retryAfterInSeconds).toBe(1);
    clock.advance(1000);
    const before = clock.nowMs();
    await budget.acquire('single', write);
    expect(clock.nowMs() - before).toBe(0);
  });

  it('after a 429 anyway, nothing more is sent to that tenant before its Retry-After', async () => {
    const clock = virtualClock();
    const budget = new GraphBudget(small, clock);
    budget.throttled('t1', 1);
    await budget.acquire('t1', read);
    expect(clock.sleeps).toEqual([1000]);
    await budget.acquire('t2', read);
    expect(clock.sleeps).toEqual([1000]);
    expect(budget.stats.throttledByGraph).toBe(1);
  });

  it('costs requests as throttling-limits.md lists them', () => {
    const u = (path: string) => new URL(`https://graph.microsoft.com/v1.0/${path}`);
    expect(costOf('GET', u('users'))).toEqual({ resourceUnits: 2, writes: 0 });
    expect(costOf('GET', u('users?$select=id'))).toEqual({ resourceUnits: 1, writes: 0 });
    expect(costOf('GET', u('subscribedSkus'))).toEqual({ resourceUnits: 3, writes: 0 });
    expect(costOf('GET', u('groups/g1/members'))).toEqual({ resourceUnits: 3, writes: 0 });
    expect(costOf('GET', u('users/u1?$expand=manager'))).toEqual({ resourceUnits: 2, writes: 0 });
    expect(costOf('POST', u('users'))).toEqual({ resourceUnits: 1, writes: 1 });
    expect(costOf('PATCH', u('users/u1'))).toEqual({ resourceUnits: 1, writes: 1 });
  });
});
