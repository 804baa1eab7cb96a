/**
 * New Commerce (NCE) seat rules, pure. Seats are held in lots: every purchase, renewal or mid-term
 * addition is a lot with its own 168-hour window; a reduction may only take seats from lots whose
 * window is still open, and a whole subscription may be cancelled only within 168 hours of the start
 * of its current term (purchase or renewal). Sources: Partner Center docs
 * change-the-quantity-of-a-subscription.md, new-commerce-cancellation-policy.md, create-scheduled-changes.md.
 */

export const SEAT_WINDOW_IN_HOURS = 168;
export const SEAT_WINDOW_IN_MS = SEAT_WINDOW_IN_HOURS * 60 * 60 * 1000;
/** Partner Center refuses further updates on a subscription after this many (error 900311). */
export const MAX_SUBSCRIPTION_UPDATES = 1200;

export const termDurations = ['P1M', 'P1Y', 'P3Y'] as const;
export type TermDuration = (typeof termDurations)[number];
export const billingCycles = ['monthly', 'annual', 'triennial'] as const;
export type BillingCycle = (typeof billingCycles)[number];

export interface SeatLot {
  quantity: number;
  addedAt: Date;
}

export interface RefundableSeats {
  quantity: number;
  allowedUntil: Date;
}

export function seatWindowEndsAt(lot: SeatLot): Date {
  return new Date(lot.addedAt.getTime() + SEAT_WINDOW_IN_MS);
}

export function isLotOpen(lot: SeatLot, now: Date): boolean {
  return now.getTime() < seatWindowEndsAt(lot).getTime();
}

export function totalSeats(lots: readonly SeatLot[]): number {
  return lots.reduce((sum, lot) => sum + lot.quantity, 0);
}

/** Open lots, soonest-closing first: the seats that may still be given back and until when. */
export function refundableSeats(lots: readonly SeatLot[], now: Date): RefundableSeats[] {
  return lots
    .filter((lot) => lot.quantity > 0 && isLotOpen(lot, now))
    .map((lot) => ({ quantity: lot.quantity, allowedUntil: seatWindowEndsAt(lot) }))
    .sort((a, b) => a.allowedUntil.getTime() - b.allowedUntil.getTime());
}

export function refundableQuantity(lots: readonly SeatLot[], now: Date): number {
  return refundableSeats(lots, now).reduce((sum, seats) => sum + seats.quantity, 0);
}

export function addSeats(lots: readonly SeatLot[], quantity: number, at: Date): SeatLot[] {
  if (!Number.isInteger(quantity) || quantity <= 0) throw new RangeError(`cannot add ${quantity} seats`);
  return [...lots, { quantity, addedAt: at }];
}

export type SeatChange =
  | { ok: true; lots: SeatLot[]; added: number; removed: number }
  | { ok: false; reason: 'ReductionWindowClosed'; requested: number; reducible: number };

/**
 * Takes seats back from open lots only. The soonest-closing lot gives first, so the seats that stay
 * reducible are the ones with the longest time left (the most flexibility for the customer).
 */
export function removeSeats(lots: readonly SeatLot[], quantity: number, now: Date): SeatChange {
  if (!Number.isInteger(quantity) || quantity <= 0) throw new RangeError(`cannot remove ${quantity} seats`);
  const reducible = refundableQuantity(lots, now);
  if (quantity > reducible)
    return { ok: false, reason: 'ReductionWindowClosed', requested: quantity, reducible };
  const order = lots
    .map((lot, index) => ({ lot, index }))
    .filter(({ lot }) => lot.quantity > 0 && isLotOpen(lot, now))
    .sort((a, b) => a.lot.addedAt.getTime() - b.lot.addedAt.getTime());
  const next = lots.map((lot) => ({ ...lot }));
  let left = quantity;
  for (const { index } of order) {
    const lot = next[index];
    if (lot === undefined || left === 0) break;
    const taken = Math.min(lot.quantity, left);
    lot.quantity -= taken;
    left -= taken;
  }
  return { ok: true, lots: next.filter((lot) => lot.quantity > 0), added: 0, removed: quantity };
}

/** Moves the seat count to `target`: growth is a new lot at `now`, shrinkage obeys the windows. */
export function changeSeats(lots: readonly SeatLot[], target: number, now: Date): SeatChange {
  if (!Number.isInteger(target) || target < 0) throw new RangeError(`invalid seat count ${target}`);
  const current = totalSeats(lots);
  if (target === current) return { ok: true, lots: [...lots], added: 0, removed: 0 };
  if (target > current)
    return { ok: true, lots: addSeats(lots, target - current, now), added: target - current, removed: 0 };
  return removeSeats(lots, current - target, now);
}

/** Whole-subscription cancellation is open for 168 hours after the current term started. */
export function cancellationAllowedUntil(termStartedAt: Date): Date {
  return new Date(termStartedAt.getTime() + SEAT_WINDOW_IN_MS);
}

export function canCancel(termStartedAt: Date, now: Date): boolean {
  return now.getTime() < cancellationAllowedUntil(termStartedAt).getTime();
}

function startOfUtcDay(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
}

function addUtcMonths(at: Date, months: number): Date {
  const day = at.getUTCDate();
  const shifted = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + months, 1));
  const lastDay = new Date(Date.UTC(shifted.getUTCFullYear(), shifted.getUTCMonth() + 1, 0)).getUTCDate();
  shifted.setUTCDate(Math.min(day, lastDay));
  return shifted;
}

export function termLengthInMonths(term: TermDuration): number {
  switch (term) {
    case 'P1M':
      return 1;
    case 'P1Y':
      return 12;
    case 'P3Y':
      return 36;
  }
}

/**
 * The instant the term is over and renewal runs: 00:00 UTC on the day after `commitmentEndDate`
 * (renewals "are processed after the final day of a term, starting at 12:00 AM UTC").
 */
export function termEndsAt(termStartedAt: Date, term: TermDuration): Date {
  return addUtcMonths(startOfUtcDay(termStartedAt), termLengthInMonths(term));
}

/** The last day of the term, as Partner Center shows it (a 2021-01-14 P1Y start ends 2022-01-13). */
export function commitmentEndDate(termStartedAt: Date, term: TermDuration): Date {
  return new Date(termEndsAt(termStartedAt, term).getTime() - 24 * 60 * 60 * 1000);
}

/** A billing cycle longer than the term is refused (900270). */
export function isBillingCycleAllowed(term: TermDuration, cycle: BillingCycle): boolean {
  const cycleMonths = cycle === 'monthly' ? 1 : cycle === 'annual' ? 12 : 36;
  return cycleMonths <= termLengthInMonths(term);
}

export interface RenewalInstructions {
  quantity?: number;
  termDuration?: TermDuration;
  billingCycle?: BillingCycle;
  catalogItemId?: string;
}

export interface TermState {
  catalogItemId: string;
  termDuration: TermDuration;
  billingCycle: BillingCycle;
  termStartedAt: Date;
  lots: SeatLot[];
  autoRenewEnabled: boolean;
  scheduled?: RenewalInstructions | undefined;
}

export type RenewalOutcome = { kind: 'renewed'; state: TermState } | { kind: 'expired'; endedAt: Date };

/**
 * What happens when the term ends: with auto-renew, the next term starts at the end instant with the
 * scheduled quantity/term/SKU (or the current ones) as one fresh lot with its own window; without it,
 * the subscription expires.
 */
export function renew(state: TermState): RenewalOutcome {
  const endedAt = termEndsAt(state.termStartedAt, state.termDuration);
  if (!state.autoRenewEnabled) return { kind: 'expired', endedAt };
  const scheduled = state.scheduled ?? {};
  const quantity = scheduled.quantity ?? totalSeats(state.lots);
  return {
    kind: 'renewed',
    state: {
      catalogItemId: scheduled.catalogItemId ?? state.catalogItemId,
      termDuration: scheduled.termDuration ?? state.termDuration,
      billingCycle: scheduled.billingCycle ?? state.billingCycle,
      termStartedAt: endedAt,
      lots: quantity > 0 ? [{ quantity, addedAt: endedAt }] : [],
      autoRenewEnabled: true,
      scheduled: undefined,
    },
  };
}
