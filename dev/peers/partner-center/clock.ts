import { z } from 'zod';
import type { Clock } from '../../../shared/ports/clock.js';

/**
 * The peer's virtual time: real time plus an offset that the admin API moves forward, or a frozen
 * instant that only the admin API moves. Renewals and window ends happen as this time passes, so a
 * year of seat operations runs in seconds. Tokens are still checked against real time.
 */
export class VirtualClock implements Clock {
  private offsetInMs = 0;
  private frozenAt: number | undefined;

  constructor(options: { start?: Date; frozen?: boolean } = {}) {
    if (options.start !== undefined) this.offsetInMs = options.start.getTime() - Date.now();
    if (options.frozen === true) this.frozenAt = this.now().getTime();
  }

  now(): Date {
    return new Date(this.frozenAt ?? Date.now() + this.offsetInMs);
  }

  get frozen(): boolean {
    return this.frozenAt !== undefined;
  }

  advance(byInMs: number): Date {
    if (!Number.isFinite(byInMs) || byInMs < 0) throw new RangeError('time only moves forward');
    if (this.frozenAt !== undefined) this.frozenAt += byInMs;
    else this.offsetInMs += byInMs;
    return this.now();
  }

  set(to: Date): Date {
    const delta = to.getTime() - this.now().getTime();
    if (delta < 0) throw new RangeError('time only moves forward');
    return this.advance(delta);
  }

  freeze(frozen: boolean): void {
    if (frozen && this.frozenAt === undefined) this.frozenAt = this.now().getTime();
    if (!frozen && this.frozenAt !== undefined) {
      this.offsetInMs = this.frozenAt - Date.now();
      this.frozenAt = undefined;
    }
  }
}

const isoDuration =
  /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/**
 * ISO 8601 duration to milliseconds relative to `from` (months and years are calendar months, so
 * `P1Y` from 2026-03-10 lands on 2027-03-10).
 */
export function durationInMs(duration: string, from: Date): number {
  const match = isoDuration.exec(duration);
  if (match === null || duration === 'P' || duration.endsWith('T'))
    throw new RangeError(`not an ISO 8601 duration: ${duration}`);
  const n = (index: number): number => Number(match[index] ?? 0);
  const target = new Date(from.getTime());
  target.setUTCMonth(target.getUTCMonth() + n(1) * 12 + n(2));
  const fixed = ((n(3) * 7 + n(4)) * 24 + n(5)) * 3_600_000 + n(6) * 60_000 + n(7) * 1000;
  return target.getTime() - from.getTime() + fixed;
}

export const clockRequestSchema = z
  .object({
    advanceBy: z.string().optional(),
    advanceByInMs: z.number().nonnegative().optional(),
    set: z.iso.datetime().optional(),
    frozen: z.boolean().optional(),
  })
  .strict();
