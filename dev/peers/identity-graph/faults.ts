import { z } from 'zod';

/** `POST /_admin/faults` body; every field optional so a test can switch one fault on at a time. */
export const faultSettingsSchema = z.object({
  throttling: z
    .object({
      enabled: z.boolean(),
      /** Multiplies the documented limits (0.001 → 3.5 RU per window for a small tenant). */
      scale: z.number().positive().optional(),
      /** Length of the resource-unit window; the documented 10 s unless a test wants it shorter. */
      windowInMs: z.number().int().positive().optional(),
      /** Length of the write window; the documented 150 s unless a test wants it shorter. */
      writeWindowInMs: z.number().int().positive().optional(),
    })
    .optional(),
  /** Fraction (0..1) of Graph requests answered 503. */
  random503Rate: z.number().min(0).max(1).optional(),
  /** The next N Graph requests are answered 503 (deterministic, for tests). */
  next503Count: z.number().int().min(0).optional(),
  /** The next N Graph requests are answered 429 as throttling would (deterministic, for tests). */
  next429Count: z.number().int().min(0).optional(),
  /** Retry-After seconds sent with the 503s (none when unset). */
  retryAfter503InSeconds: z.number().int().min(0).optional(),
  /** For this long after creation, a new user or group reads as 404 (Entra replication lag). */
  replicationLagInMs: z.number().int().min(0).optional(),
});
export type FaultSettingsInput = z.infer<typeof faultSettingsSchema>;

/** What one app+tenant pair spent, entry by entry, so a window can slide over it. */
interface Ledger {
  entries: { atMs: number; amount: number }[];
  /** Index of the oldest entry still inside the window. */
  head: number;
  /** Sum of the amounts from head on. */
  sum: number;
}

function newLedger(): Ledger {
  return { entries: [], head: 0, sum: 0 };
}

/** Drops entries that left the window [now - window, now). */
function slide(ledger: Ledger, nowMs: number, windowInMs: number): void {
  while (ledger.head < ledger.entries.length) {
    const entry = ledger.entries[ledger.head];
    if (entry === undefined || nowMs - entry.atMs < windowInMs) break;
    ledger.sum -= entry.amount;
    ledger.head += 1;
  }
  if (ledger.head > 1024 && ledger.head * 2 > ledger.entries.length) {
    ledger.entries = ledger.entries.slice(ledger.head);
    ledger.head = 0;
  }
}

/** Milliseconds until enough of the window has slid out for `amount` more to fit under `limit`. */
function waitFor(ledger: Ledger, amount: number, limit: number, nowMs: number, windowInMs: number): number {
  let freed = 0;
  const needed = ledger.sum + amount - limit;
  for (let i = ledger.head; i < ledger.entries.length; i++) {
    const entry = ledger.entries[i];
    if (entry === undefined) break;
    freed += entry.amount;
    if (freed >= needed) return entry.atMs + windowInMs - nowMs;
  }
  return windowInMs;
}

interface Bucket {
  resourceUnits: Ledger;
  writes: Ledger;
}

export interface Charge {
  resourceUnits: number;
  writes: number;
}

export type ChargeResult =
  | { throttled: false; headers: Record<string, string> }
  | { throttled: true; retryAfterInSeconds: number; headers: Record<string, string> };

/**
 * Faults on demand. Throttling follows the identity-and-access limits of concepts/throttling-limits.md:
 * per app+tenant, 3,500/5,000/8,000 RU per 10 s for tenants under 50 / 50–500 / over 500 users, and
 * 3,000 writes per 2 min 30 s. The windows slide (a request counts for windowInMs after it was served, as
 * strict as the documented limits allow); they run on real time because SDK retry handlers sleep real time.
 */
export class Faults {
  throttlingEnabled = false;
  scale = 1;
  windowInMs = 10_000;
  writeWindowInMs = 150_000;
  random503Rate = 0;
  retryAfter503InSeconds: number | undefined;
  replicationLagInMs = 0;
  next503Count = 0;
  next429Count = 0;
  /** What the faults did so far, for tests to assert on. */
  readonly stats = { throttled: 0, unavailable: 0 };
  private readonly buckets = new Map<string, Bucket>();

  configure(input: FaultSettingsInput): void {
    if (input.throttling !== undefined) {
      this.throttlingEnabled = input.throttling.enabled;
      this.scale = input.throttling.scale ?? 1;
      this.windowInMs = input.throttling.windowInMs ?? 10_000;
      this.writeWindowInMs = input.throttling.writeWindowInMs ?? 150_000;
      this.buckets.clear();
    }
    if (input.random503Rate !== undefined) this.random503Rate = input.random503Rate;
    if (input.retryAfter503InSeconds !== undefined)
      this.retryAfter503InSeconds = input.retryAfter503InSeconds;
    if (input.replicationLagInMs !== undefined) this.replicationLagInMs = input.replicationLagInMs;
    if (input.next503Count !== undefined) this.next503Count = input.next503Count;
    if (input.next429Count !== undefined) this.next429Count = input.next429Count;
  }

  reset(): void {
    this.throttlingEnabled = false;
    this.scale = 1;
    this.windowInMs = 10_000;
    this.writeWindowInMs = 150_000;
    this.random503Rate = 0;
    this.retryAfter503InSeconds = undefined;
    this.replicationLagInMs = 0;
    this.next503Count = 0;
    this.next429Count = 0;
    this.stats.throttled = 0;
    this.stats.unavailable = 0;
    this.buckets.clear();
  }

  describe(): Record<string, unknown> {
    return {
      throttling: {
        enabled: this.throttlingEnabled,
        scale: this.scale,
        windowInMs: this.windowInMs,
        writeWindowInMs: this.writeWindowInMs,
      },
      random503Rate: this.random503Rate,
      retryAfter503InSeconds: this.retryAfter503InSeconds ?? null,
      replicationLagInMs: this.replicationLagInMs,
      next503Count: this.next503Count,
      stats: { ...this.stats },
    };
  }

  should503(): boolean {
    let answer: boolean;
    if (this.next503Count > 0) {
      this.next503Count -= 1;
      answer = true;
    } else {
      answer = this.random503Rate > 0 && Math.random() < this.random503Rate;
    }
    if (answer) this.stats.unavailable += 1;
    return answer;
  }

  static resourceUnitLimit(userCount: number): number {
    if (userCount < 50) return 3500;
    if (userCount <= 500) return 5000;
    return 8000;
  }

  charge(appId: string, tenantId: string, userCount: number, cost: Charge, nowMs = Date.now()): ChargeResult {
    const headers: Record<string, string> = { 'x-ms-resource-unit': String(cost.resourceUnits) };
    if (this.next429Count > 0) {
      this.next429Count -= 1;
      this.stats.throttled += 1;
      return {
        throttled: true,
        retryAfterInSeconds: 1,
        headers: {
          ...headers,
          'x-ms-throttle-scope': `Tenant_Application/ReadWrite/${appId}/${tenantId}`,
          'x-ms-throttle-information': 'ResourceUnitLimitExceeded',
        },
      };
    }
    if (!this.throttlingEnabled) return { throttled: false, headers };
    const key = `${appId}/${tenantId}`;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { resourceUnits: newLedger(), writes: newLedger() };
      this.buckets.set(key, bucket);
    }
    // A sliding window: what was spent in the last windowInMs counts, wherever a fixed window would
    // have cut it, so no burst straddling two windows gets twice the limit through.
    slide(bucket.resourceUnits, nowMs, this.windowInMs);
    slide(bucket.writes, nowMs, this.writeWindowInMs);
    const ruLimit = Math.max(1, Math.floor(Faults.resourceUnitLimit(userCount) * this.scale));
    const writeLimit = Math.max(1, Math.floor(3000 * this.scale));
    const scope = `Tenant_Application/ReadWrite/${appId}/${tenantId}`;
    // A single request dearer than the whole (scaled) limit passes on an empty window, or never would.
    const ruOver = bucket.resourceUnits.sum + cost.resourceUnits > ruLimit && bucket.resourceUnits.sum > 0;
    if (ruOver) {
      this.stats.throttled += 1;
      const waitInMs = waitFor(bucket.resourceUnits, cost.resourceUnits, ruLimit, nowMs, this.windowInMs);
      return {
        throttled: true,
        retryAfterInSeconds: Math.max(1, Math.ceil(waitInMs / 1000)),
        headers: {
          ...headers,
          'x-ms-throttle-scope': scope,
          'x-ms-throttle-information': 'ResourceUnitLimitExceeded',
          'x-ms-throttle-limit-percentage': '1.0',
        },
      };
    }
    if (cost.writes > 0 && bucket.writes.sum + cost.writes > writeLimit && bucket.writes.sum > 0) {
      this.stats.throttled += 1;
      const waitInMs = waitFor(bucket.writes, cost.writes, writeLimit, nowMs, this.writeWindowInMs);
      return {
        throttled: true,
        retryAfterInSeconds: Math.max(1, Math.ceil(waitInMs / 1000)),
        headers: {
          ...headers,
          'x-ms-throttle-scope': scope,
          'x-ms-throttle-information': 'WriteLimitExceeded',
          'x-ms-throttle-limit-percentage': '1.0',
        },
      };
    }
    bucket.resourceUnits.entries.push({ atMs: nowMs, amount: cost.resourceUnits });
    bucket.resourceUnits.sum += cost.resourceUnits;
    if (cost.writes > 0) {
      bucket.writes.entries.push({ atMs: nowMs, amount: cost.writes });
      bucket.writes.sum += cost.writes;
    }
    const percentage = Math.max(bucket.resourceUnits.sum / ruLimit, bucket.writes.sum / writeLimit);
    // Graph sends the percentage header only once an app nears its limit (above 0.8).
    if (percentage > 0.8) headers['x-ms-throttle-limit-percentage'] = percentage.toFixed(1);
    return { throttled: false, headers };
  }
}

/** Base costs from throttling-limits.md ("any request not listed has a base cost of 1"), with its modifiers. */
export function costOf(method: string, segments: string[], query: URLSearchParams): Charge {
  const write = method !== 'GET';
  const path = segments.join('/');
  let base = 1;
  if (!write) {
    if (path === 'users') base = 2;
    else if (path === 'subscribedSkus') base = 3;
    else if (segments[0] === 'groups' && segments[2] === 'members' && segments.length === 3) base = 3;
    if (query.has('$select')) base -= 1;
    if (query.has('$expand')) base += 1;
    const top = Number(query.get('$top'));
    if (query.has('$top') && top < 20) base -= 1;
  }
  return { resourceUnits: Math.max(1, base), writes: write ? 1 : 0 };
}
