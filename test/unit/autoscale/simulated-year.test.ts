import { describe, expect, it } from 'vitest';
import { simulatedYear, sweepComputeTime } from '../../bench/autoscale.js';

describe('autoscale simulated year (small)', () => {
  it('ends with no duplicate purchase, no reduction outside a window, seats ≥ demand at every sweep, despite faults', () => {
    const year = simulatedYear({ customers: 25, seed: 3 });
    const a = year.autoscale;
    // The faults really happened…
    expect(a.throttled).toBeGreaterThan(0);
    expect(a.lostAnswers).toBeGreaterThan(0);
    expect(a.killedWorkers).toBeGreaterThan(0);
    // …and changed nothing twice, never broke a window and never left users without a seat.
    expect(a.duplicatePurchases).toBe(0);
    expect(a.reductionsOutsideWindow).toBe(0);
    expect(a.sweepsShortOfDemand).toBe(0);
    expect(a.sweeps).toBe(25 * 365);
  });

  it('wastes within 1.5× of the oracle that knows the future and costs less than never shrinking', () => {
    const year = simulatedYear({ customers: 25, seed: 3 });
    expect(year.autoscale.wasteSeatDays).toBeLessThan(year.neverShrink.wasteSeatDays);
    expect(year.autoscale.cost).toBeLessThan(year.neverShrink.cost);
    expect(year.autoscale.wasteSeatDays).toBeLessThanOrEqual(1.5 * year.oracle.wasteSeatDays);
    // Foresight also buys the annual term for demand that stays: the oracle is the cheapest.
    expect(year.oracle.cost).toBeLessThan(year.autoscale.cost);
  });

  it('decides a sweep of 1,000 customers × 5 SKUs without I/O in well under a second', () => {
    const { decisions, ms } = sweepComputeTime(1000, 5);
    expect(decisions).toBeGreaterThan(0);
    expect(ms).toBeLessThan(2000);
  });
});
