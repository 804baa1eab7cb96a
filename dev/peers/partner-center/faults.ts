import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { durationInMs } from './clock.js';

/**
 * On-demand failures, set through the admin API and consumed by matching requests:
 * - `throttle`: 429 with Retry-After and Partner Center's throttling body, before the request runs;
 * - `error`: a 5xx before the request runs;
 * - `dropAfterCommit`: the request runs (an order is placed), then the connection is destroyed;
 * - `stallAfterCommit`: the request runs, then the response is held for `stallInMs` (client timeout);
 * - `orderError`: a checkout places its orders except `groups` order groups, reported in `orderErrors`;
 * - `asyncProvisioning`: a checkout answers its orders `pending` without subscription ids; the
 *   subscriptions exist once virtual time has moved `delay` on (checkout-a-cart.md: "Provisioning
 *   subscriptions occurs asynchronously");
 * - `slowPatch`: a subscription PATCH is checked, answered 202 with `Location`, and applied once virtual
 *   time has moved `delay` on (change-the-quantity-of-a-subscription.md).
 */
export const faultSchema = z
  .object({
    kind: z.enum([
      'throttle',
      'error',
      'dropAfterCommit',
      'stallAfterCommit',
      'orderError',
      'asyncProvisioning',
      'slowPatch',
    ]),
    /** asyncProvisioning / slowPatch: ISO 8601 duration of virtual time until the work is done. */
    delay: z
      .string()
      .refine((value) => {
        try {
          durationInMs(value, new Date(0));
          return true;
        } catch {
          return false;
        }
      }, 'an ISO 8601 duration such as PT5M')
      .default('PT5M'),
    /** orderError: how many order groups of the checkout fail, and with which Partner Center error. */
    groups: z.number().int().positive().default(1),
    code: z.number().int().default(4018),
    description: z.string().default('Unable to process this order'),
    count: z.number().int().positive().default(1),
    retryAfterInSeconds: z.number().int().nonnegative().default(1),
    status: z.number().int().min(500).max(599).default(503),
    stallInMs: z.number().int().nonnegative().default(30_000),
    match: z
      .object({
        method: z.string().optional(),
        pathIncludes: z.string().optional(),
        partnerTenantId: z.string().optional(),
        customerId: z.string().optional(),
      })
      .default({}),
  })
  .strict();

export type FaultInput = z.input<typeof faultSchema>;
export type Fault = z.infer<typeof faultSchema> & { id: string; remaining: number };

export interface RequestFacts {
  method: string;
  path: string;
  partnerTenantId: string;
  customerId: string | undefined;
}

export class FaultBook {
  private faults: Fault[] = [];

  add(input: unknown): Fault {
    const parsed = faultSchema.parse(input);
    const fault: Fault = { ...parsed, id: randomUUID(), remaining: parsed.count };
    this.faults.push(fault);
    return fault;
  }

  list(): Fault[] {
    return [...this.faults];
  }

  clear(): void {
    this.faults = [];
  }

  /** Takes one use of the first fault of these kinds that matches the request. */
  take(kinds: Fault['kind'][], facts: RequestFacts): Fault | undefined {
    const fault = this.faults.find(
      (candidate) =>
        kinds.includes(candidate.kind) &&
        candidate.remaining > 0 &&
        (candidate.match.method === undefined || candidate.match.method.toUpperCase() === facts.method) &&
        (candidate.match.pathIncludes === undefined ||
          facts.path.toLowerCase().includes(candidate.match.pathIncludes.toLowerCase())) &&
        (candidate.match.partnerTenantId === undefined ||
          candidate.match.partnerTenantId.toLowerCase() === facts.partnerTenantId) &&
        (candidate.match.customerId === undefined ||
          candidate.match.customerId.toLowerCase() === facts.customerId),
    );
    if (fault === undefined) return undefined;
    fault.remaining -= 1;
    if (fault.remaining === 0) this.faults = this.faults.filter((candidate) => candidate !== fault);
    return fault;
  }
}

/**
 * Automatic throttling in real time (not virtual): a sliding one-minute window per key. Partner Center
 * limits the Subscription resource to 500 requests per minute per partner+customer
 * (subscription-resources.md); a per-partner limit can be set too.
 */
export const limitsSchema = z
  .object({
    subscriptionRequestsPerMinute: z.number().int().positive().nullable().optional(),
    partnerRequestsPerMinute: z.number().int().positive().nullable().optional(),
  })
  .strict();

export class RateLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    public limitPerMinute: number | null,
    private readonly windowInMs = 60_000,
  ) {}

  /** Records a request; answers the seconds to wait when the key is over its limit. */
  hit(key: string, nowInMs = Date.now()): number | undefined {
    if (this.limitPerMinute === null) return undefined;
    const recent = (this.hits.get(key) ?? []).filter((at) => at > nowInMs - this.windowInMs);
    if (recent.length >= this.limitPerMinute) {
      this.hits.set(key, recent);
      const oldest = recent[0] ?? nowInMs;
      return Math.max(1, Math.ceil((oldest + this.windowInMs - nowInMs) / 1000));
    }
    recent.push(nowInMs);
    this.hits.set(key, recent);
    return undefined;
  }
}
