import { describe, expect, it } from 'vitest';
import { costOf, Faults } from '../../../dev/peers/identity-graph/faults.js';

const q = (s = ''): URLSearchParams => new URLSearchParams(s);

describe('peer resource-unit costs (throttling-limits.md)', () => {
  it('charges the documented base costs with the $select, $top and $expand modifiers', () => {
    expect(costOf('GET', ['users'], q())).toEqual({ resourceUnits: 2, writes: 0 });
    expect(costOf('GET', ['users'], q('$select=id'))).toEqual({ resourceUnits: 1, writes: 0 });
    expect(costOf('GET', ['users'], q('$top=5&$select=id'))).toEqual({ resourceUnits: 1, writes: 0 });
    expect(costOf('GET', ['subscribedSkus'], q())).toEqual({ resourceUnits: 3, writes: 0 });
    expect(costOf('GET', ['groups', 'g', 'members'], q('$expand=x'))).toEqual({
      resourceUnits: 4,
      writes: 0,
    });
    expect(costOf('POST', ['users'], q())).toEqual({ resourceUnits: 1, writes: 1 });
  });

  it('sizes the bucket by tenant users: 3,500 / 5,000 / 8,000 RU per window', () => {
    expect(Faults.resourceUnitLimit(49)).toBe(3500);
    expect(Faults.resourceUnitLimit(50)).toBe(5000);
    expect(Faults.resourceUnitLimit(500)).toBe(5000);
    expect(Faults.resourceUnitLimit(501)).toBe(8000);
  });

  it('throttles per app+tenant with Retry-After up to the window end, then refills', () => {
    const faults = new Faults();
    faults.configure({ throttling: { enabled: true, scale: 0.001, windowInMs: 10_000 } });
    const t0 = 1_000_000;
    const read = { resourceUnits: 2, writes: 0 };
    expect(faults.charge('app', 'tenant', 10, read, t0).throttled).toBe(false);
    const second = faults.charge('app', 'tenant', 10, read, t0 + 2500);
    expect(second).toMatchObject({ throttled: true, retryAfterInSeconds: 8 });
    expect(second.headers['x-ms-throttle-scope']).toBe('Tenant_Application/ReadWrite/app/tenant');
    // Another tenant has its own bucket.
    expect(faults.charge('app', 'other', 10, read, t0 + 2500).throttled).toBe(false);
    expect(faults.charge('app', 'tenant', 10, read, t0 + 10_000).throttled).toBe(false);
    expect(faults.stats.throttled).toBe(1);
  });

  it('limits writes to 3,000 per 150 s (scaled)', () => {
    const faults = new Faults();
    faults.configure({ throttling: { enabled: true, scale: 0.001 } });
    const write = { resourceUnits: 1, writes: 1 };
    const t0 = 5_000_000;
    expect(faults.charge('app', 't', 1, write, t0).throttled).toBe(false);
    expect(faults.charge('app', 't', 1, write, t0 + 10_001).throttled).toBe(false);
    expect(faults.charge('app', 't', 1, write, t0 + 20_002).throttled).toBe(false);
    const fourth = faults.charge('app', 't', 1, write, t0 + 30_003);
    expect(fourth).toMatchObject({ throttled: true, retryAfterInSeconds: 120 });
    expect(fourth.headers['x-ms-throttle-information']).toBe('WriteLimitExceeded');
  });

  it('charges nothing when throttling is off but still reports the cost', () => {
    const faults = new Faults();
    expect(faults.charge('a', 't', 1, { resourceUnits: 2, writes: 0 })).toEqual({
      throttled: false,
      headers: { 'x-ms-resource-unit': '2' },
    });
  });

  it('slides the window: a burst straddling a fixed-window boundary does not get twice the limit', () => {
    const faults = new Faults();
    // 3 RU per 10 s (3,500 × 0.001), 1 RU per request.
    faults.configure({ throttling: { enabled: true, scale: 0.001, windowInMs: 10_000 } });
    const one = { resourceUnits: 1, writes: 0 };
    const t0 = 2_000_000;
    expect(faults.charge('app', 't', 1, one, t0).throttled).toBe(false);
    expect(faults.charge('app', 't', 1, one, t0 + 9000).throttled).toBe(false);
    expect(faults.charge('app', 't', 1, one, t0 + 9000).throttled).toBe(false);
    // A fixed window starting at t0 would refill here; the sliding one only lets the t0 unit go.
    expect(faults.charge('app', 't', 1, one, t0 + 10_000).throttled).toBe(false);
    const over = faults.charge('app', 't', 1, one, t0 + 10_000);
    // The next unit frees when the t0 + 9 s ones leave the window: 9 s from now.
    expect(over).toMatchObject({ throttled: true, retryAfterInSeconds: 9 });
    expect(faults.charge('app', 't', 1, one, t0 + 18_999).throttled).toBe(true);
    expect(faults.charge('app', 't', 1, one, t0 + 19_000).throttled).toBe(false);
  });

  it('never serves more than the limit in any window-long span, whatever the arrival pattern', () => {
    const faults = new Faults();
    faults.configure({ throttling: { enabled: true, scale: 0.01, windowInMs: 1000, writeWindowInMs: 5000 } });
    // 35 RU per 1 s and 30 writes per 5 s.
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const served: { at: number; ru: number; writes: number }[] = [];
    let now = 10_000_000;
    for (let i = 0; i < 5000; i++) {
      now += Math.floor(random() * 40);
      const cost = random() < 0.5 ? { resourceUnits: 1, writes: 1 } : { resourceUnits: 2, writes: 0 };
      if (!faults.charge('app', 't', 1, cost, now).throttled)
        served.push({ at: now, ru: cost.resourceUnits, writes: cost.writes });
    }
    expect(faults.stats.throttled).toBeGreaterThan(0);
    let ruSpan = 0;
    let writeSpan = 0;
    for (const s of served) {
      const ru = served.filter((x) => x.at > s.at - 1000 && x.at <= s.at).reduce((n, x) => n + x.ru, 0);
      const writes = served
        .filter((x) => x.at > s.at - 5000 && x.at <= s.at)
        .reduce((n, x) => n + x.writes, 0);
      ruSpan = Math.max(ruSpan, ru);
      writeSpan = Math.max(writeSpan, writes);
    }
    expect(ruSpan).toBeLessThanOrEqual(35);
    expect(writeSpan).toBeLessThanOrEqual(30);
    // And the budget is used: some span reaches the write limit.
    expect(writeSpan).toBe(30);
  });
});
