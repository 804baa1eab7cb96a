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
});
