import { InvocationContext, type Timer } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import type { AppDeps } from '../../../shared/composition.js';
import { nextOccurrence, parseNcrontab } from '../../../dev/host/ncrontab.js';
import { splaChangeFeed } from '../../../functions/timer/spla-change-feed.js';
import { splaMonth } from '../../../functions/timer/spla-month.js';
import { splaSnapshot } from '../../../functions/timer/spla-snapshot.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { createSpla } from '../../../shared/usecases/spla.js';
import { customer, MemoryStore, TestClock } from '../engine/world.js';

const next = (schedule: string, iso: string) =>
  nextOccurrence(parseNcrontab(schedule), new Date(iso)).toISOString();

describe('SPLA timers on a virtual clock', () => {
  it('runs the monthly draft at 02:00 UTC on the 1st, and that run prepares the month just ended', async () => {
    const fireAt = next(splaMonth.schedule, '2026-11-15T10:00:00Z');
    expect(fireAt).toBe('2026-12-01T02:00:00.000Z');
    expect(next(splaMonth.schedule, fireAt)).toBe('2027-01-01T02:00:00.000Z');

    const store = new MemoryStore();
    const clock = new TestClock();
    clock.t = Date.parse(fireAt);
    await customersCollection(store).create('prov', 'contoso', customer('cloudOnly', 'prov'));
    const spla = createSpla({ store, clock });
    const caller = { id: 'k', kind: 'apiKey' as const, providerId: 'prov' };
    await spla.putProduct(caller, 'sql-core', {
      name: 'SQL Server Standard Core',
      sku: '7NQ-00302',
      unit: 'core',
    });
    await spla.putRule(caller, 'contoso', 'sql-core', {
      fixedQuantity: 4,
      exclude: { serviceAccounts: true, admins: false },
    });
    expect(await spla.prepareDrafts()).toEqual({ month: '2026-11', prepared: 1 });
    // January's run prepares December (the year rolls over).
    clock.t = Date.parse('2027-01-01T02:00:00.000Z');
    expect((await spla.prepareDrafts()).month).toBe('2026-12');
  });

  it('reads the change feed hourly and snapshots Entra groups daily', () => {
    expect(next(splaChangeFeed.schedule, '2026-11-15T10:20:00Z')).toBe('2026-11-15T11:15:00.000Z');
    expect(next(splaSnapshot.schedule, '2026-11-15T10:20:00Z')).toBe('2026-11-16T03:00:00.000Z');
  });

  it('takes the daily snapshot of both directories: Entra groups through Graph, AD groups through the agent', async () => {
    const ran: string[] = [];
    const result = { customers: 1, groups: 1, failed: [] };
    const deps = {
      settings: { LOG_LEVEL: 'error' },
      spla: {
        snapshotEntraGroups: () => (ran.push('entra'), Promise.resolve(result)),
        snapshotAdGroups: () => (ran.push('ad'), Promise.resolve(result)),
      },
    } as unknown as AppDeps;
    const timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: undefined };
    await splaSnapshot.handler(deps)(
      timer as unknown as Timer,
      new InvocationContext({ invocationId: 't', functionName: 'spla-snapshot' }),
    );
    expect(ran).toEqual(['entra', 'ad']);
  });
});
