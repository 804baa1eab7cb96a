import type { Context, Middleware } from '@microsoft/microsoft-graph-client';

/**
 * A client-side throttle budget for Microsoft Graph's identity-and-access limits
 * (concepts/throttling-limits.md): per app+tenant 3,500 / 5,000 / 8,000 resource units per 10 s (by
 * tenant size) and 3,000 writes per 2 min 30 s; per app across all tenants 70,000 writes per 5 min.
 * Every request reserves its documented cost in sliding windows before it is sent, so a run reaches the
 * budget without colliding with it (no 429s). A request that would have to wait longer than
 * `maxWaitInMs` is not held: it fails as a retryable `Throttled` error with the wait as Retry-After, so
 * the operation engine re-schedules it and the worker is free for other tenants' work.
 *
 * Deferred requests get a turn (a ticket) at the tenant's own rate, after the turns handed out before:
 * a bulk import's backlog comes back spread over the time its tenant's budget needs for it, once or
 * twice per request, instead of every request retrying every second (each retry costs the engine
 * storage writes and a queue message, and fills the workers other tenants need). Tickets are a
 * schedule, not a reservation: they book neither the tenant's windows nor the app-wide quota.
 *
 * Fairness across tenants: each tenant has its own app+tenant windows, and on the shared app-wide window no
 * request is reserved further ahead than `maxWaitInMs`: a bulk import cannot book the app-wide quota for
 * the future, so when capacity frees, every tenant's next request competes on arrival, and the bulk's
 * surplus goes back to the engine's schedule instead of queuing in front of everyone.
 *
 * The budget is per process. With several Functions instances, give each a `share` of the limits (or
 * rely on the 429 feedback below, which blocks a tenant until Graph's Retry-After).
 */
export interface GraphBudgetSettings {
  /** Writes per app+tenant per write window (3,000 documented). */
  writesPerWindow: number;
  writeWindowInMs: number;
  /** Resource units per app+tenant per RU window (3,500 for a small tenant, the conservative default). */
  resourceUnitsPerWindow: number;
  resourceUnitWindowInMs: number;
  /** Writes per app across all tenants per app window (70,000 per 5 min documented). */
  appWritesPerWindow: number;
  appWriteWindowInMs: number;
  /** Fraction of every limit this process may use (0 < share ≤ 1). */
  share: number;
  /** The longest a request may wait for budget before it is handed back as Throttled. */
  maxWaitInMs: number;
}

export const documentedGraphBudget: GraphBudgetSettings = {
  writesPerWindow: 3000,
  writeWindowInMs: 150_000,
  resourceUnitsPerWindow: 3500,
  resourceUnitWindowInMs: 10_000,
  appWritesPerWindow: 70_000,
  appWriteWindowInMs: 300_000,
  share: 1,
  maxWaitInMs: 2000,
};

/**
 * Thrown inside the SDK's middleware chain, which re-wraps every error as a GraphError keeping only the
 * name (as `code`) and the message; mapGraphError turns it back into a retryable Throttled AppError.
 */
export class GraphBudgetDeferred extends Error {
  override readonly name = 'GraphBudgetDeferred';
  constructor(readonly retryAfterInSeconds: number) {
    super(`the Graph budget for this tenant is spent for now; retry after ${retryAfterInSeconds} s`);
  }
}

/** The Retry-After a GraphBudgetDeferred carried through the SDK (its message is all that survives). */
export function deferredRetryAfter(message: string): number | undefined {
  const match = /retry after (\d+) s$/.exec(message);
  return match === null ? undefined : Number(match[1]);
}

export interface RequestCost {
  resourceUnits: number;
  writes: number;
}

/**
 * The documented base cost of one request (throttling-limits.md, "Identity and access"): GET users 2,
 * GET subscribedSkus 3, GET group members 3, anything else 1; $select −1, $expand +1, $top < 20 −1,
 * never below 1. Writes count 1 against the write quota.
 */
export function costOf(method: string, url: URL): RequestCost {
  const write = method.toUpperCase() !== 'GET';
  const segments = url.pathname.split('/').filter((s) => s.length > 0);
  // Drop the version segment (v1.0 / beta) and anything before it.
  const version = segments.findIndex((s) => s === 'v1.0' || s === 'beta');
  const path = (version >= 0 ? segments.slice(version + 1) : segments).map((s) => decodeURIComponent(s));
  let base = 1;
  if (!write) {
    const joined = path.join('/');
    if (joined === 'users') base = 2;
    else if (joined === 'subscribedSkus') base = 3;
    else if (path[0] === 'groups' && path[2] === 'members' && path.length === 3) base = 3;
    if (url.searchParams.has('$select')) base -= 1;
    if (url.searchParams.has('$expand')) base += 1;
    const top = Number(url.searchParams.get('$top'));
    if (url.searchParams.has('$top') && top < 20) base -= 1;
  }
  return { resourceUnits: Math.max(1, base), writes: write ? 1 : 0 };
}

/** Amounts reserved at points in time, oldest first; what is older than the window no longer counts. */
class SlidingWindow {
  private readonly entries: { atMs: number; amount: number }[] = [];
  private sum = 0;

  constructor(
    readonly limit: number,
    readonly windowInMs: number,
  ) {}

  /** Forgets what has left the window by `nowMs` (the real now: never a time in the future). */
  slide(nowMs: number): void {
    while (this.entries.length > 0) {
      const first = this.entries[0];
      if (first === undefined || nowMs - first.atMs < this.windowInMs) break;
      this.sum -= first.amount;
      this.entries.shift();
    }
  }

  /** The last reservation's time (reservations are kept in time order). */
  get lastAtMs(): number {
    return this.entries.at(-1)?.atMs ?? Number.NEGATIVE_INFINITY;
  }

  /**
   * The earliest time ≥ fromMs at which `amount` fits (entries are all ≤ fromMs). It only looks: what
   * will have left the window by a future `fromMs` still counts for every request before then (a
   * request handed back must not make the next one think the window is empty).
   */
  earliestFit(amount: number, fromMs: number): number {
    if (amount === 0) return fromMs;
    let first = 0;
    let sum = this.sum;
    for (; first < this.entries.length; first++) {
      const entry = this.entries[first];
      if (entry === undefined || fromMs - entry.atMs < this.windowInMs) break;
      sum -= entry.amount;
    }
    // One request dearer than the whole limit passes on an empty window, or it never would.
    if (sum === 0 || sum + amount <= this.limit) return fromMs;
    let freed = 0;
    const needed = sum + amount - this.limit;
    for (let i = first; i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (entry === undefined) break;
      freed += entry.amount;
      if (freed >= needed) return Math.max(fromMs, entry.atMs + this.windowInMs);
    }
    return fromMs + this.windowInMs;
  }

  reserve(amount: number, atMs: number): { atMs: number; amount: number } | undefined {
    if (amount === 0) return undefined;
    const entry = { atMs, amount };
    this.entries.push(entry);
    this.sum += amount;
    return entry;
  }

  /**
   * The request went out later than reserved (a timer fires late on a busy event loop): it counts from
   * when it was really sent, as Graph counts it from when it arrives, so it is moved to its place in time.
   */
  restamp(entry: { atMs: number; amount: number } | undefined, sentAtMs: number): void {
    if (entry === undefined || sentAtMs <= entry.atMs) return;
    const index = this.entries.indexOf(entry);
    if (index < 0) return;
    this.entries.splice(index, 1);
    entry.atMs = sentAtMs;
    let at = this.entries.length;
    while (at > 0 && (this.entries[at - 1]?.atMs ?? 0) > sentAtMs) at--;
    this.entries.splice(at, 0, entry);
  }
}

interface TenantBudget {
  resourceUnits: SlidingWindow;
  writes: SlidingWindow;
  /** After a 429 anyway (another instance, another app): nothing is sent before Graph's Retry-After. */
  blockedUntilMs: number;
  /** The turn after the last one handed to a deferred request (tickets are spaced at the tenant's rate). */
  nextTicketAtMs: number;
}

export interface BudgetStats {
  granted: number;
  /** Requests handed back as Throttled instead of waiting. */
  deferred: number;
  /** 429s seen despite the budget. */
  throttledByGraph: number;
  waitedInMs: number;
}

export class GraphBudget {
  private readonly tenants = new Map<string, TenantBudget>();
  private readonly appWrites: SlidingWindow;
  readonly stats: BudgetStats = { granted: 0, deferred: 0, throttledByGraph: 0, waitedInMs: 0 };

  constructor(
    private readonly settings: GraphBudgetSettings,
    private readonly clock: { nowMs(): number; sleep(ms: number): Promise<void> } = {
      nowMs: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    },
  ) {
    const share = Math.min(1, Math.max(0.01, settings.share));
    this.appWrites = new SlidingWindow(
      Math.max(1, Math.floor(settings.appWritesPerWindow * share)),
      settings.appWriteWindowInMs,
    );
  }

  /** A reservation counts this much longer than Graph's window: the time a request takes to reach it. */
  private static margin(windowInMs: number): number {
    return Math.max(50, Math.ceil(windowInMs * 0.04));
  }

  private tenant(tenantId: string): TenantBudget {
    let budget = this.tenants.get(tenantId);
    if (budget === undefined) {
      const share = Math.min(1, Math.max(0.01, this.settings.share));
      budget = {
        resourceUnits: new SlidingWindow(
          Math.max(1, Math.floor(this.settings.resourceUnitsPerWindow * share)),
          this.settings.resourceUnitWindowInMs + GraphBudget.margin(this.settings.resourceUnitWindowInMs),
        ),
        writes: new SlidingWindow(
          Math.max(1, Math.floor(this.settings.writesPerWindow * share)),
          this.settings.writeWindowInMs + GraphBudget.margin(this.settings.writeWindowInMs),
        ),
        blockedUntilMs: 0,
        nextTicketAtMs: 0,
      };
      this.tenants.set(tenantId, budget);
    }
    return budget;
  }

  /**
   * Reserves the cost and waits for its turn, or — when the turn is further away than maxWaitInMs —
   * throws a retryable Throttled error carrying that wait, reserving nothing.
   */
  async acquire(tenantId: string, cost: RequestCost): Promise<void> {
    const budget = this.tenant(tenantId);
    const nowMs = this.clock.nowMs();
    budget.resourceUnits.slide(nowMs);
    budget.writes.slide(nowMs);
    this.appWrites.slide(nowMs);
    // Reservations stay in time order in every window, so each window is checked at its end only.
    let at = Math.max(nowMs, budget.blockedUntilMs, budget.resourceUnits.lastAtMs);
    if (cost.writes > 0) at = Math.max(at, budget.writes.lastAtMs, this.appWrites.lastAtMs);
    for (let settled = false; !settled;) {
      const next = Math.max(
        budget.resourceUnits.earliestFit(cost.resourceUnits, at),
        budget.writes.earliestFit(cost.writes, at),
        cost.writes > 0 ? this.appWrites.earliestFit(cost.writes, at) : at,
      );
      settled = next === at;
      at = next;
    }
    const waitInMs = at - nowMs;
    if (waitInMs > this.settings.maxWaitInMs) {
      this.stats.deferred++;
      // Its turn: after every turn already handed out, then the next one a request's share later.
      const ticketAtMs = Math.max(at, budget.nextTicketAtMs);
      budget.nextTicketAtMs = ticketAtMs + this.spacingInMs(budget, cost);
      throw new GraphBudgetDeferred(Math.max(1, Math.ceil((ticketAtMs - nowMs) / 1000)));
    }
    const reserved = [
      [budget.resourceUnits, budget.resourceUnits.reserve(cost.resourceUnits, at)],
      [budget.writes, budget.writes.reserve(cost.writes, at)],
      [this.appWrites, cost.writes > 0 ? this.appWrites.reserve(cost.writes, at) : undefined],
    ] as const;
    this.stats.granted++;
    if (waitInMs > 0) {
      this.stats.waitedInMs += waitInMs;
      await this.clock.sleep(waitInMs);
    }
    const sentAtMs = this.clock.nowMs();
    for (const [window, entry] of reserved) window.restamp(entry, sentAtMs);
  }

  /** How far apart the tenant's windows let requests of this cost go, sustained. */
  private spacingInMs(budget: TenantBudget, cost: RequestCost): number {
    const ru = (cost.resourceUnits * budget.resourceUnits.windowInMs) / budget.resourceUnits.limit;
    const writes = (cost.writes * budget.writes.windowInMs) / budget.writes.limit;
    return Math.max(ru, writes);
  }

  /** Graph answered 429 anyway: hold the tenant until its Retry-After. */
  throttled(tenantId: string, retryAfterInSeconds: number): void {
    this.stats.throttledByGraph++;
    const budget = this.tenant(tenantId);
    budget.blockedUntilMs = Math.max(budget.blockedUntilMs, this.clock.nowMs() + retryAfterInSeconds * 1000);
  }

  /** Graph SDK middleware for one tenant's client: sits after the RetryHandler so retries pay too. */
  middlewareFor(tenantId: string): Middleware & { setNext(middleware: Middleware): void } {
    let next: Middleware | undefined;
    return {
      setNext: (middleware: Middleware) => {
        next = middleware;
      },
      execute: async (context: Context) => {
        if (next === undefined) throw new Error('graph budget middleware has no next handler');
        const method = context.options?.method ?? 'GET';
        // RequestInfo: a URL string, or a Request (the SDK builds strings; a Request is handled anyway).
        const target: unknown = context.request;
        const url = new URL(typeof target === 'string' ? target : (target as { url: string }).url);
        await this.acquire(tenantId, batchAwareCost(method, url, context.options?.body));
        await next.execute(context);
        const response = context.response;
        if (response?.status === 429) {
          const retryAfter = Number(response.headers.get('retry-after'));
          this.throttled(tenantId, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 1);
        }
      },
    };
  }
}

/** A $batch is throttled request by request (json-batching.md): it costs the sum of its requests. */
function batchAwareCost(method: string, url: URL, body: unknown): RequestCost {
  if (!url.pathname.endsWith('/$batch') || typeof body !== 'string') return costOf(method, url);
  try {
    const parsed = JSON.parse(body) as { requests?: { method?: string; url?: string }[] };
    const total: RequestCost = { resourceUnits: 0, writes: 0 };
    for (const request of parsed.requests ?? []) {
      const inner = new URL(
        `${url.origin}${url.pathname.replace(/\$batch$/, '')}${(request.url ?? '').replace(/^\//, '')}`,
      );
      const cost = costOf(request.method ?? 'GET', inner);
      total.resourceUnits += cost.resourceUnits;
      total.writes += cost.writes;
    }
    return total.resourceUnits === 0 ? costOf(method, url) : total;
  } catch {
    return costOf(method, url);
  }
}
