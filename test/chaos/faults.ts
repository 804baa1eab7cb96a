import { z } from 'zod';
import type { Random } from './prng.js';
import type { World } from './world.js';

/**
 * The fault kinds of a chaos run and how each is injected. Peer faults are armed through the peers' own
 * fault admin APIs (dev/peers/<peer>/faults.ts) and count as injected only once a request met them (the peers
 * report what they served); process faults (agent, DC, Azurite, Service Bus outage) count when done.
 */
export const faultKinds = [
  'graph503',
  'graph429',
  'graphReplicationLag',
  'partnerCenter429',
  'partnerCenter5xx',
  'partnerCenterLostAnswer',
  'distributor429',
  'distributor5xx',
  'distributorLostAnswer',
  'serviceBusDuplicate',
  'serviceBusLockLoss',
  'serviceBusOutage',
  'agentKilled',
  'dcRestarted',
  'azuriteRestarted',
  'workerKilled',
] as const;
export type FaultKind = (typeof faultKinds)[number];

/** Faults that take a component away for a while (spaced out, see FaultInjector.next). */
const slowKinds: readonly FaultKind[] = [
  'serviceBusOutage',
  'agentKilled',
  'dcRestarted',
  'azuriteRestarted',
];

/** How often each kind is drawn once every kind has been drawn once (the slow ones rarely). */
const weights: Record<FaultKind, number> = {
  graph503: 14,
  graph429: 6,
  graphReplicationLag: 5,
  partnerCenter429: 5,
  partnerCenter5xx: 5,
  partnerCenterLostAnswer: 4,
  distributor429: 5,
  distributor5xx: 5,
  distributorLostAnswer: 4,
  serviceBusDuplicate: 12,
  serviceBusLockLoss: 10,
  serviceBusOutage: 2,
  agentKilled: 4,
  dcRestarted: 2,
  azuriteRestarted: 2,
  workerKilled: 12,
};

async function admin(url: string, method: string, body?: unknown): Promise<unknown> {
  const response = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`fault admin ${method} ${url}: ${response.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

const graphStats = z.object({ stats: z.object({ throttled: z.number(), unavailable: z.number() }) });

export interface FaultFigures {
  /** Faults that took effect, by kind. */
  injected: Record<FaultKind, number>;
  /** Peer faults armed (a request may never have met some of them). */
  armed: Record<FaultKind, number>;
  total: number;
}

const zero = (): Record<FaultKind, number> =>
  Object.fromEntries(faultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;

export class FaultInjector {
  private readonly armed = zero();
  private readonly done = zero();
  private readonly pcArmed = new Map<string, FaultKind>();
  private readonly paxArmed = new Map<string, FaultKind>();
  private order: FaultKind[];
  private readonly crashesBefore: number;
  private lastSlowAt = 0;
  private lastKind: FaultKind = 'graph503';
  private readonly unseen: Set<FaultKind>;

  constructor(
    private readonly world: World,
    private readonly random: Random,
    private readonly kinds: readonly FaultKind[] = faultKinds,
    /** At most one outage or restart per this many milliseconds. */
    private readonly slowSpacingInMs = 4000,
  ) {
    // Every kind once first (in a seeded order), so even a short run meets each of them.
    const shuffled = [...kinds];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = random.int(0, i);
      [shuffled[i], shuffled[j]] = [shuffled[j] as FaultKind, shuffled[i] as FaultKind];
    }
    this.order = shuffled;
    this.unseen = new Set(kinds);
    this.crashesBefore = world.store.crashes;
  }

  next(): FaultKind {
    for (let i = 0; i < 20; i++) {
      const kind = this.draw();
      if (!this.busy(kind)) {
        this.unseen.delete(kind);
        return kind;
      }
      // Its lane is still busy (e.g. a restart in progress): a kind not yet met waits for a later turn.
      if (this.unseen.has(kind)) this.order.push(kind);
    }
    return this.kinds.find((k) => !slowKinds.includes(k) && !this.busy(k)) ?? 'graph503';
  }

  private draw(): FaultKind {
    const first = this.order.shift();
    const kind =
      first ??
      this.random.weighted(
        Object.fromEntries(this.kinds.map((k) => [k, weights[k]])) as Record<FaultKind, number>,
      );
    if (!slowKinds.includes(kind)) return kind;
    // Outages and restarts are spaced out, so the system is up most of the time and work goes on.
    const fast = this.kinds.filter((k) => !slowKinds.includes(k));
    if (Date.now() - this.lastSlowAt < this.slowSpacingInMs && fast.length > 0) {
      if (first !== undefined) this.order.push(first);
      return this.random.weighted(
        Object.fromEntries(fast.map((k) => [k, weights[k]])) as Record<FaultKind, number>,
      );
    }
    this.lastSlowAt = Date.now();
    return kind;
  }

  /**
   * Injects one fault. What lasts (a throttling window, a restart, looking for a lock to lose) runs in
   * the background in its own lane, so the schedule goes on; every random choice is drawn here, in
   * schedule order, so a seed replays the same faults with the same parameters.
   */
  async inject(kind: FaultKind): Promise<void> {
    const w = this.world;
    const r = this.random;
    this.armed[kind] += 1;
    this.lastKind = kind;
    switch (kind) {
      case 'graph503':
        await admin(`${w.graph.adminUrl}/faults`, 'POST', {
          next503Count: r.int(1, 3),
          retryAfter503InSeconds: 0,
        });
        return;
      case 'graph429': {
        // Graph's documented limits scaled down for a moment: whoever calls now gets 429 + Retry-After.
        const forMs = r.int(4000, 8000);
        this.lane(kind, async () => {
          // The scaled window, and the next requests answered 429 whatever their spacing (the app paces
          // itself, so two requests to one tenant inside a short window are rare).
          await admin(`${w.graph.adminUrl}/faults`, 'POST', {
            throttling: { enabled: true, scale: 0.0005, windowInMs: 1000, writeWindowInMs: 1000 },
            next429Count: 2,
          });
          await sleep(forMs);
          await admin(`${w.graph.adminUrl}/faults`, 'POST', { throttling: { enabled: false } });
        });
        return;
      }
      case 'graphReplicationLag': {
        const lagMs = r.int(500, 2000);
        const forMs = r.int(500, 2000);
        this.lane(kind, async () => {
          await admin(`${w.graph.adminUrl}/faults`, 'POST', { replicationLagInMs: lagMs });
          await sleep(forMs);
          await admin(`${w.graph.adminUrl}/faults`, 'POST', { replicationLagInMs: 0 });
          this.done[kind] += 1;
        });
        return;
      }
      case 'partnerCenter429':
      case 'partnerCenter5xx':
      case 'partnerCenterLostAnswer': {
        const body =
          kind === 'partnerCenter429'
            ? { kind: 'throttle', retryAfterInSeconds: 0 }
            : kind === 'partnerCenter5xx'
              ? { kind: 'error', status: r.pick([500, 502, 503]) }
              : { kind: 'dropAfterCommit', match: { method: 'PATCH' } }; // a quantity change applied, its answer lost
        if (
          !kind.endsWith('LostAnswer') &&
          (await this.openCommerceFaults(w.partnerCenter.adminUrl, this.pcArmed)) >= maxOpenCommerceFaults
        ) {
          this.armed[kind] -= 1; // not armed after all
          return;
        }
        const fault = z
          .object({ id: z.string() })
          .parse(await admin(`${w.partnerCenter.adminUrl}/faults`, 'POST', body));
        this.pcArmed.set(fault.id, kind);
        return;
      }
      case 'distributor429':
      case 'distributor5xx':
      case 'distributorLostAnswer': {
        const body =
          kind === 'distributor429'
            ? { kind: 'throttle', retryAfterInSeconds: 0 }
            : kind === 'distributor5xx'
              ? { kind: 'error', status: r.pick([500, 502, 503]) }
              : { kind: r.pick(['dropAfterCommit', 'errorAfterCommit']), match: { method: 'PUT' } };
        if (
          !kind.endsWith('LostAnswer') &&
          (await this.openCommerceFaults(w.distributor.adminUrl, this.paxArmed)) >= maxOpenCommerceFaults
        ) {
          this.armed[kind] -= 1; // not armed after all
          return;
        }
        const fault = z
          .object({ id: z.string() })
          .parse(await admin(`${w.distributor.adminUrl}/faults`, 'POST', body));
        this.paxArmed.set(fault.id, kind);
        return;
      }
      case 'serviceBusDuplicate':
        w.serviceBus.faults.duplicateNextSends(
          r.pick(['directory-work', 'agent-replies', 'agent-site-chaos']),
          1,
        );
        return;
      case 'serviceBusLockLoss': {
        // A lock exists only while a handler works on its message: look for one for a few seconds.
        const queues = ['directory-work', 'agent-replies', 'agent-site-chaos'];
        const first = r.int(0, queues.length - 1);
        this.lane(kind, async () => {
          for (let attempt = 0; attempt < 600; attempt++) {
            const queue = queues[(first + attempt) % queues.length] ?? 'directory-work';
            const lost = w.serviceBus.faults.loseLocks(queue, 1);
            if (lost > 0) {
              this.done[kind] += lost;
              return;
            }
            if (attempt % queues.length === queues.length - 1) await sleep(10);
          }
        });
        return;
      }
      case 'serviceBusOutage': {
        // Every connection dropped: in-flight settlements fail, messages come back after their lock.
        const downMs = r.int(100, 500);
        this.lane('slow', async () => {
          await w.serviceBus.restart(downMs);
          this.done[kind] += 1;
        });
        return;
      }
      case 'agentKilled': {
        const downMs = r.int(200, 1500);
        this.lane('slow', async () => {
          await w.killAgent();
          await sleep(downMs);
          w.startAgent();
          this.done[kind] += 1;
        });
        return;
      }
      case 'dcRestarted': {
        const downMs = r.int(200, 1500);
        this.lane('slow', async () => {
          await w.dc.pause();
          await sleep(downMs);
          await w.dc.resume();
          this.done[kind] += 1;
        });
        return;
      }
      case 'azuriteRestarted': {
        const downMs = r.int(100, 600);
        this.lane('slow', async () => {
          await w.restartAzurite(downMs);
          this.done[kind] += 1;
        });
        return;
      }
      case 'workerKilled':
        w.store.crashAt(r.int(1, 6), r.pick(['before', 'after'] as const));
        return;
    }
  }

  private readonly lanes = new Map<string, Promise<void>>();
  readonly laneErrors: string[] = [];

  /** What happened when, for the report: slow faults and their durations. */
  readonly timeline: string[] = [];

  private lane(name: string, work: () => Promise<void>): void {
    const started = Date.now();
    const kind = this.lastKind;
    this.lanes.set(
      name,
      work()
        .then(() => {
          if (name === 'slow')
            this.timeline.push(`${new Date(started).toISOString()} ${kind} ${Date.now() - started} ms`);
        })
        .catch((error: unknown) => {
          this.laneErrors.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
        })
        .finally(() => this.lanes.delete(name)),
    );
  }

  private busy(kind: FaultKind): boolean {
    return this.lanes.has(slowKinds.includes(kind) ? 'slow' : kind);
  }

  /** Waits for what runs in the background (restarts, throttling windows) to end: everything is up again. */
  async quiesce(): Promise<void> {
    while (this.lanes.size > 0) await Promise.all([...this.lanes.values()]);
  }

  /** Disarms what is still armed and answers what took effect. */
  async settle(): Promise<FaultFigures> {
    const w = this.world;
    await Promise.all([...this.lanes.values()]);
    await admin(`${w.graph.adminUrl}/faults`, 'POST', {
      next503Count: 0,
      random503Rate: 0,
      replicationLagInMs: 0,
      throttling: { enabled: false },
    });
    const stats = graphStats.parse(await admin(`${w.graph.adminUrl}/faults`, 'GET')).stats;
    this.done.graph503 = stats.unavailable;
    this.done.graph429 = stats.throttled;
    const remaining = async (url: string, armed: Map<string, FaultKind>, kinds: FaultKind[]) => {
      const book = z
        .object({ faults: z.array(z.object({ id: z.string(), remaining: z.number() })) })
        .parse(await admin(`${url}/faults`, 'GET'));
      await admin(`${url}/faults`, 'DELETE');
      const left = new Set(book.faults.filter((f) => f.remaining > 0).map((f) => f.id));
      for (const k of kinds) this.done[k] = 0;
      for (const [id, kind] of armed) if (!left.has(id)) this.done[kind] += 1;
    };
    await remaining(w.partnerCenter.adminUrl, this.pcArmed, [
      'partnerCenter429',
      'partnerCenter5xx',
      'partnerCenterLostAnswer',
    ]);
    await remaining(w.distributor.adminUrl, this.paxArmed, [
      'distributor429',
      'distributor5xx',
      'distributorLostAnswer',
    ]);
    this.done.serviceBusDuplicate = w.serviceBus.faults.stats().duplicated;
    w.store.disarm();
    this.done.workerKilled = w.store.crashes - this.crashesBefore;
    const injected = { ...this.done };
    return {
      injected,
      armed: { ...this.armed },
      total: Object.values(injected).reduce((a, b) => a + b, 0),
    };
  }

  /** Our armed faults at this peer that no request has used yet. */
  private async openCommerceFaults(url: string, armed: Map<string, FaultKind>): Promise<number> {
    const book = z
      .object({ faults: z.array(z.object({ id: z.string(), remaining: z.number() })) })
      .parse(await admin(`${url}/faults`, 'GET'));
    // Lost answers wait for a write and never fail a read: only 429s and 5xx make an outage.
    return book.faults.filter((f) => {
      const kind = armed.get(f.id);
      return f.remaining > 0 && kind !== undefined && !kind.endsWith('LostAnswer');
    }).length;
  }

  /** Faults that took effect so far: the peers' own counts, without disarming anything. */
  async total(): Promise<number> {
    const w = this.world;
    const stats = graphStats.parse(await admin(`${w.graph.adminUrl}/faults`, 'GET')).stats;
    const left = async (url: string, armed: Map<string, FaultKind>) => {
      const book = z
        .object({ faults: z.array(z.object({ id: z.string(), remaining: z.number() })) })
        .parse(await admin(`${url}/faults`, 'GET'));
      const open = new Set(book.faults.filter((f) => f.remaining > 0).map((f) => f.id));
      return [...armed.keys()].filter((id) => !open.has(id)).length;
    };
    const peerKinds: FaultKind[] = ['graph503', 'graph429', 'serviceBusDuplicate', 'workerKilled'];
    const own = Object.entries(this.done)
      .filter(
        ([k]) =>
          !peerKinds.includes(k as FaultKind) &&
          !k.startsWith('partnerCenter') &&
          !k.startsWith('distributor'),
      )
      .reduce((a, [, v]) => a + v, 0);
    return (
      own +
      stats.unavailable +
      stats.throttled +
      (await left(w.partnerCenter.adminUrl, this.pcArmed)) +
      (await left(w.distributor.adminUrl, this.paxArmed)) +
      w.serviceBus.faults.stats().duplicated +
      (w.store.crashes - this.crashesBefore)
    );
  }
}

/**
 * At most this many unused Partner Center (or Pax8) faults armed at once. Only the autoscaler calls
 * them, about once a minute, so faults armed faster than that piled up (1,000 faults ≈ 140 commerce
 * ones) into an outage that outlived the run: its just-in-time run never bought. Each stays armed until
 * a request uses it, so every one that is armed also takes effect.
 */
const maxOpenCommerceFaults = 2;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
