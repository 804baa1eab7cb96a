/** Time is injected everywhere so NCE windows, renewals, lock expiries and sweeps are tested without sleeping. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
