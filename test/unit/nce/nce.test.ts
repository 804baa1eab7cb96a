import { describe, expect, it } from 'vitest';
import {
  SEAT_WINDOW_IN_MS,
  addSeats,
  canCancel,
  cancellationAllowedUntil,
  changeSeats,
  commitmentEndDate,
  isBillingCycleAllowed,
  refundableQuantity,
  refundableSeats,
  removeSeats,
  renew,
  termEndsAt,
  totalSeats,
  type SeatLot,
} from '../../../shared/domain/nce.js';

const day0 = new Date('2026-03-10T09:30:00Z');
const days = (n: number): Date => new Date(day0.getTime() + n * 24 * 60 * 60 * 1000);
const hours = (n: number): Date => new Date(day0.getTime() + n * 60 * 60 * 1000);

describe('seat lots and the 168-hour reduction window', () => {
  it('a seat added on day 0 can be removed on day 6 but not on day 8', () => {
    const lots = addSeats([], 5, day0);
    const onDay6 = removeSeats(lots, 1, days(6));
    expect(onDay6.ok).toBe(true);
    if (onDay6.ok) expect(totalSeats(onDay6.lots)).toBe(4);
    const onDay8 = removeSeats(lots, 1, days(8));
    expect(onDay8).toEqual({ ok: false, reason: 'ReductionWindowClosed', requested: 1, reducible: 0 });
  });

  it('the window closes exactly 168 hours after the seats were added', () => {
    const lots = addSeats([], 2, day0);
    expect(refundableQuantity(lots, new Date(day0.getTime() + SEAT_WINDOW_IN_MS - 1))).toBe(2);
    expect(refundableQuantity(lots, hours(168))).toBe(0);
  });

  it('with two lots, only the open lot gives seats back', () => {
    let lots: SeatLot[] = addSeats([], 10, day0);
    lots = addSeats(lots, 3, days(20));
    expect(refundableSeats(lots, days(21))).toEqual([{ quantity: 3, allowedUntil: hours(20 * 24 + 168) }]);
    const tooMany = changeSeats(lots, 9, days(21));
    expect(tooMany).toEqual({ ok: false, reason: 'ReductionWindowClosed', requested: 4, reducible: 3 });
    const allowed = changeSeats(lots, 10, days(21));
    expect(allowed.ok).toBe(true);
    if (allowed.ok) {
      expect(allowed.removed).toBe(3);
      expect(allowed.lots).toEqual([{ quantity: 10, addedAt: day0 }]);
    }
  });

  it('the soonest-closing open lot gives first so the longest windows stay', () => {
    let lots: SeatLot[] = addSeats([], 2, day0);
    lots = addSeats(lots, 2, days(3));
    const result = removeSeats(lots, 3, days(4));
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.lots).toEqual([{ quantity: 1, addedAt: days(3) }]);
  });

  it('growth is a new lot with its own window, and no-op changes keep the lots', () => {
    const lots = addSeats([], 4, day0);
    const grown = changeSeats(lots, 6, days(30));
    expect(grown).toEqual({
      ok: true,
      lots: [
        { quantity: 4, addedAt: day0 },
        { quantity: 2, addedAt: days(30) },
      ],
      added: 2,
      removed: 0,
    });
    expect(changeSeats(lots, 4, days(30))).toEqual({ ok: true, lots, added: 0, removed: 0 });
  });

  it('rejects nonsense quantities', () => {
    expect(() => addSeats([], 0, day0)).toThrow(RangeError);
    expect(() => changeSeats([], -1, day0)).toThrow(RangeError);
    expect(() => removeSeats([], 1.5, day0)).toThrow(RangeError);
  });
});

describe('cancellation window', () => {
  it('is open for 168 hours after the term started, then closed', () => {
    expect(cancellationAllowedUntil(day0)).toEqual(hours(168));
    expect(canCancel(day0, days(6))).toBe(true);
    expect(canCancel(day0, days(8))).toBe(false);
  });
});

describe('terms', () => {
  it('a P1Y term that starts 2021-01-14 has commitmentEndDate 2022-01-13 and renews at 2022-01-14T00:00Z', () => {
    const start = new Date('2021-01-14T16:57:14.498Z');
    expect(commitmentEndDate(start, 'P1Y').toISOString()).toBe('2022-01-13T00:00:00.000Z');
    expect(termEndsAt(start, 'P1Y').toISOString()).toBe('2022-01-14T00:00:00.000Z');
  });

  it('a monthly term from the 31st ends at the last day of a shorter month', () => {
    expect(termEndsAt(new Date('2026-01-31T10:00:00Z'), 'P1M').toISOString()).toBe(
      '2026-02-28T00:00:00.000Z',
    );
    expect(termEndsAt(new Date('2026-01-31T10:00:00Z'), 'P3Y').toISOString()).toBe(
      '2029-01-31T00:00:00.000Z',
    );
  });

  it('a billing cycle longer than the term is not allowed', () => {
    expect(isBillingCycleAllowed('P1M', 'annual')).toBe(false);
    expect(isBillingCycleAllowed('P1Y', 'annual')).toBe(true);
    expect(isBillingCycleAllowed('P3Y', 'triennial')).toBe(true);
    expect(isBillingCycleAllowed('P1Y', 'triennial')).toBe(false);
  });
});

describe('renewal', () => {
  const state = {
    catalogItemId: 'CFQ7TTC0LF8Q:0001:CFQ7TTC0N8SL',
    termDuration: 'P1Y' as const,
    billingCycle: 'monthly' as const,
    termStartedAt: day0,
    lots: [
      { quantity: 10, addedAt: day0 },
      { quantity: 5, addedAt: days(100) },
    ],
    autoRenewEnabled: true,
  };

  it('applies the scheduled quantity, term and SKU as one fresh lot at the end of the term', () => {
    const outcome = renew({
      ...state,
      scheduled: { quantity: 7, termDuration: 'P1M', catalogItemId: 'CFQ7TTC0LCHC:0002:CFQ7TTC0KDLX' },
    });
    const end = termEndsAt(day0, 'P1Y');
    expect(outcome).toEqual({
      kind: 'renewed',
      state: {
        catalogItemId: 'CFQ7TTC0LCHC:0002:CFQ7TTC0KDLX',
        termDuration: 'P1M',
        billingCycle: 'monthly',
        termStartedAt: end,
        lots: [{ quantity: 7, addedAt: end }],
        autoRenewEnabled: true,
        scheduled: undefined,
      },
    });
    if (outcome.kind === 'renewed')
      expect(refundableQuantity(outcome.state.lots, new Date(end.getTime() + 1000))).toBe(7);
  });

  it('keeps all current seats when nothing is scheduled', () => {
    const outcome = renew(state);
    expect(outcome.kind === 'renewed' && totalSeats(outcome.state.lots)).toBe(15);
  });

  it('expires at the end of the term when auto-renew is off', () => {
    expect(renew({ ...state, autoRenewEnabled: false })).toEqual({
      kind: 'expired',
      endedAt: termEndsAt(day0, 'P1Y'),
    });
  });
});
