import { describe, expect, it } from 'vitest';
import { simulatedYear, sweepComputeTime } from '../../bench/autoscale.js';

describe('autoscale simulated year (small)', () => {
  it('ends with no duplicate purchase, no reduction outside a window, seats ≥ demand at every sweep, despite faults', () => {
    const year = simulatedYear({ customers: 25, days: 150, seed: 3 });
    const a = year.autoscale;
    // The faults really happened…
    expect(a.throttled).toBeGreaterThan(0);
    expect(a.lostAnswers).toBeGreaterThan(0);
    expect(a.killedWorkers).toBeGreaterThan(0);
    // …and changed nothing twice, never broke a window and never left users without a seat.
    expect(a.duplicatePurchases).toBe(0);
    expect(a.reductionsOutsideWindow).toBe(0);
    expect(a.sweepsShortOfDemand).toBe(0);
    expect(a.sweeps).toBe(25 * 150);
  });

  it('wastes and costs less than never shrinking, and no less than the oracle that knows the future', () => {
    const year = simulatedYear({ customers: 25, days: 150, seed: 3 });
    expect(year.autoscale.wasteSeatDays).toBeLessThan(year.neverShrink.wasteSeatDays);
    expect(year.autoscale.cost).toBeLessThan(year.neverShrink.cost);
    expect(year.oracle.wasteSeatDays).toBeLessThanOrEqual(year.autoscale.wasteSeatDays);
  });

  it('decides a sweep of 1,000 customers × 5 SKUs without I/O in well under a second', () => {
    const { decisions, ms } = sweepComputeTime(1000, 5);
    expect(decisions).toBeGreaterThan(0);
    expect(ms).toBeLessThan(2000);
  });
});
