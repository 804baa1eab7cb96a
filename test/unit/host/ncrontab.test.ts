import { describe, expect, it } from 'vitest';
import { nextOccurrence, parseNcrontab } from '../../../dev/host/ncrontab.js';
import { compileRoute } from '../../../dev/host/routes.js';

const at = (iso: string) => new Date(iso);

describe('NCRONTAB schedules as the Functions timer trigger reads them', () => {
  it('every five minutes on the minute', () => {
    expect(nextOccurrence(parseNcrontab('0 */5 * * * *'), at('2026-11-25T10:03:17Z')).toISOString()).toBe(
      '2026-11-25T10:05:00.000Z',
    );
  });

  it('at 02:30 on weekdays, skipping the weekend', () => {
    // 2026-11-28 is a Saturday.
    expect(
      nextOccurrence(parseNcrontab('0 30 2 * * mon-fri'), at('2026-11-27T03:00:00Z')).toISOString(),
    ).toBe('2026-11-30T02:30:00.000Z');
  });

  it('strictly after the given instant', () => {
    expect(nextOccurrence(parseNcrontab('0 0 * * * *'), at('2026-01-01T00:00:00Z')).toISOString()).toBe(
      '2026-01-01T01:00:00.000Z',
    );
  });

  it('lists and month names', () => {
    expect(
      nextOccurrence(parseNcrontab('15 0 0 1 jan,jul *'), at('2026-02-10T00:00:00Z')).toISOString(),
    ).toBe('2026-07-01T00:00:15.000Z');
  });

  it.each(['* * * * *', '0 61 * * * *', '0 0 0 32 * *', 'x * * * * *'])('refuses %j', (bad) => {
    expect(() => parseNcrontab(bad)).toThrow(/NCRONTAB|invalid/);
  });
});

describe('Functions route templates', () => {
  it('binds parameters and decodes them', () => {
    expect(compileRoute('customers/{customerId}/users/{userId}').match('customers/c%201/users/u2')).toEqual({
      customerId: 'c 1',
      userId: 'u2',
    });
  });
  it('does not match longer or shorter paths', () => {
    const route = compileRoute('customers/{customerId}');
    expect(route.match('customers')).toBeUndefined();
    expect(route.match('customers/a/users')).toBeUndefined();
  });
  it('honours guid constraints and optional segments', () => {
    expect(compileRoute('operations/{id:guid}').match('operations/not-a-guid')).toBeUndefined();
    expect(
      compileRoute('operations/{id:guid}').match('operations/0b7a6c2e-8f1d-4a57-9f5c-1b2d3e4f5a6b'),
    ).toBeDefined();
    expect(compileRoute('things/{id?}').match('things')).toEqual({});
  });
  it('is case-insensitive on literal segments like the Functions host', () => {
    expect(compileRoute('health').match('Health')).toEqual({});
  });
});
