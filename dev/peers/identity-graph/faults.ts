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
  /** Retry-After seconds sent with the 503s (none when unset). */
  retryAfter503InSeconds: z.number().int().min(0).optional(),
  /** For this long after creation, a new user or group reads as 404 (Entra replication lag). */
  replicationLagInMs: z.number().int().min(0).optional(),
});
export type FaultSettingsInput = z.infer<typeof faultSettingsSchema>;

interface Bucket {
  windowStartMs: number;
  used: number;
  writeWindowStartMs: number;
  writesUsed: number;
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
 * 3,000 writes per 2 min 30 s. Windows run on real time because SDK retry handlers sleep real time.
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
    if (!this.throttlingEnabled) return { throttled: false, headers };
    const key = `${appId}/${tenantId}`;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { windowStartMs: nowMs, used: 0, writeWindowStartMs: nowMs, writesUsed: 0 };
      this.buckets.set(key, bucket);
    }
    if (nowMs - bucket.windowStartMs >= this.windowInMs) {
      bucket.windowStartMs = nowMs;
      bucket.used = 0;
    }
    if (nowMs - bucket.writeWindowStartMs >= this.writeWindowInMs) {
      bucket.writeWindowStartMs = nowMs;
      bucket.writesUsed = 0;
    }
    const ruLimit = Math.max(1, Math.floor(Faults.resourceUnitLimit(userCount) * this.scale));
    const writeLimit = Math.max(1, Math.floor(3000 * this.scale));
    const scope = `Tenant_Application/ReadWrite/${appId}/${tenantId}`;
    if (bucket.used + cost.resourceUnits > ruLimit) {
      this.stats.throttled += 1;
      const retryAfterInSeconds = Math.max(
        1,
        Math.ceil((bucket.windowStartMs + this.windowInMs - nowMs) / 1000),
      );
      return {
        throttled: true,
        retryAfterInSeconds,
        headers: {
          ...headers,
          'x-ms-throttle-scope': scope,
          'x-ms-throttle-information': 'ResourceUnitLimitExceeded',
          'x-ms-throttle-limit-percentage': '1.0',
        },
      };
    }
    if (cost.writes > 0 && bucket.writesUsed + cost.writes > writeLimit) {
      this.stats.throttled += 1;
      const retryAfterInSeconds = Math.max(
        1,
        Math.ceil((bucket.writeWindowStartMs + this.writeWindowInMs - nowMs) / 1000),
      );
      return {
        throttled: true,
        retryAfterInSeconds,
        headers: {
          ...headers,
          'x-ms-throttle-scope': scope,
          'x-ms-throttle-information': 'WriteLimitExceeded',
          'x-ms-throttle-limit-percentage': '1.0',
        },
      };
    }
    bucket.used += cost.resourceUnits;
    bucket.writesUsed += cost.writes;
    const percentage = Math.max(bucket.used / ruLimit, bucket.writesUsed / writeLimit);
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
