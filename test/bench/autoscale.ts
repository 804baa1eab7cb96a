import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  autoscalePolicySchema,
  decide,
  type AutoscalePolicy,
  type Decision,
  type SupplyLine,
} from '../../shared/domain/autoscale.js';
import {
  SEAT_WINDOW_IN_MS,
  isLotOpen,
  removeSeats,
  renew,
  termEndsAt,
  totalSeats,
  type TermState,
} from '../../shared/domain/nce.js';

/**
 * The simulated year (issue 15): customers with seeded hiring and leaving patterns, each with an annual
 * (P1Y) and a monthly (P1M) Partner Center subscription of one SKU, run for 365 days on one virtual
 * clock. Partner Center is modelled with the NCE rules of shared/domain/nce.ts (lots, 168-hour
 * windows, renewals with scheduled quantities) and faults: 429/5xx (the change is not made), a lost
 * answer (the change is made, the caller does not learn it and re-sends under the same key) and a
 * worker killed between deciding and sending (the decision is decided again on fresh state). Every
 * day: renewals at 00:00, starters and leavers at 09:00 with just-in-time growth for held users, the
 * sweep at 18:00. The real decision engine (domain/autoscale.ts) decides; the strategies it is compared
 * with run on the same data: "never shrink" (80 % of the first day's users on the annual term, as a
 * provider without autoscaling would; grow just in time, never give back) and an oracle that knows the
 * future: it starts with the year's least demand on the annual term, later moves the least demand left
 * until the annual term ends there (the same move the engine may make, from monthly seats inside an open
 * window), and otherwise moves seats as the engine does, which under NCE is the most foresight can use
 * day to day (growth is bought when needed; a seat leaves within its window or at the next renewal).
 * Autoscale starts with every seat monthly (no history yet) and its term policy moves to the annual term
 * only demand that stayed stable for `terms.stableDays`, `terms.annualSharePercent` of its minimum.
 * Waste = paid seat-days not assigned. To try other term policies: BENCH_AUTOSCALE_START_ANNUAL (percent of
 * the first day on annual, default 0), BENCH_AUTOSCALE_STABLE_DAYS, BENCH_AUTOSCALE_SWING,
 * BENCH_AUTOSCALE_ANNUAL_SHARE (the policy's `terms`). Measured on 200 customers (2026-12-01): 0/56/10/50
 * → waste 1.02× the oracle's, cost 89.6 % of never-shrink; 0/56/10/70 → 1.55×, 88.9 %; 50/56/10/50 →
 * 1.12×, 88.2 %; 80/56/10/50 (80 % annual at the start, as before) → 1.82×, 87.9 %.
 */

const DAY = 86_400_000;
const start = new Date('2027-01-04T00:00:00Z');
/** Annual-term price per seat and month; a monthly term costs 20 % more (NCE monthly-term premium). */
const annualPrice = 30;
const monthlyPrice = annualPrice * 1.2;
const perDay = (monthly: number): number => (monthly * 12) / 365;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const patterns = ['steady', 'seasonal', 'burst', 'halving', 'waves'] as const;
type Pattern = (typeof patterns)[number];

export interface CustomerSeries {
  id: string;
  pattern: Pattern;
  /** Assigned users per day (after the day's starters and leavers). */
  assigned: number[];
  /** Starters known in advance per day (a start date on the user request), and leavers. */
  knownStarters: number[];
  knownLeavers: number[];
}

/** Seeded demand series (the same generator as the simulated year), for tests on the peers. */
export function demandSeries(customers: number, days: number, seed: number): CustomerSeries[] {
  const random = rng(seed);
  return Array.from({ length: customers }, (_, i) => series(i, days, random));
}

function series(index: number, days: number, random: () => number): CustomerSeries {
  const pattern = patterns[index % patterns.length] ?? 'steady';
  const base = 5 + Math.floor(random() * 75);
  const assigned: number[] = [];
  const knownStarters = new Array<number>(days).fill(0);
  const knownLeavers = new Array<number>(days).fill(0);
  let n = base;
  const burstDay = 60 + Math.floor(random() * 200);
  const halvingFrom = 90 + Math.floor(random() * 150);
  for (let d = 0; d < days; d++) {
    const noise = (): number => (random() < 0.08 ? 1 : 0) - (random() < 0.08 ? 1 : 0);
    switch (pattern) {
      case 'steady':
        n = Math.max(1, n + noise());
        break;
      case 'seasonal':
        n = Math.max(1, Math.round(base * (1 + 0.35 * Math.sin((2 * Math.PI * d) / 365))) + noise());
        break;
      case 'burst':
        // 300 starters on one day (announced two weeks ahead), then a tenth of them leave over 90 days.
        if (d === burstDay) {
          n += 300;
          knownStarters[d] = 300;
        } else if (d > burstDay && d < burstDay + 90 && random() < 0.33) n = Math.max(1, n - 1);
        else n = Math.max(1, n + noise());
        break;
      case 'halving':
        // The company shrinks by half over 30 days; leavers are known a week ahead.
        if (d >= halvingFrom && d < halvingFrom + 30) {
          const target = Math.round(base - (base / 2) * ((d - halvingFrom + 1) / 30));
          if (target < n) knownLeavers[d] = n - target;
          n = Math.min(n, target);
        } else n = Math.max(1, n + noise());
        break;
      case 'waves':
        // Users created in waves: a fifth more every 30 days, with steady leavers between.
        if (d % 30 === 15) n += Math.max(1, Math.round(base * 0.2));
        else if (random() < 0.15) n = Math.max(1, n - 1);
        break;
    }
    assigned.push(n);
  }
  return { id: `c${index}`, pattern, assigned, knownStarters, knownLeavers };
}

interface Sub {
  id: string;
  state: TermState;
  /** Bumped on every applied change: decisions name it, so a re-sent one is recognised. */
  version: number;
}

interface Faults {
  throttle: number;
  lostAnswer: number;
  killedWorker: number;
}

interface Counters {
  paidSeatDays: number;
  wasteSeatDays: number;
  cost: number;
  changes: number;
  throttled: number;
  lostAnswers: number;
  killed: number;
  duplicatesApplied: number;
  reductionsOutsideWindow: number;
  shortSweeps: number;
  sweeps: number;
  /** Waste per pattern and on the annual term (seats locked until the annual renewal). */
  wasteByPattern: Record<string, number>;
  annualWasteSeatDays: number;
}

const emptyCounters = (): Counters => ({
  paidSeatDays: 0,
  wasteSeatDays: 0,
  cost: 0,
  changes: 0,
  throttled: 0,
  lostAnswers: 0,
  killed: 0,
  duplicatesApplied: 0,
  reductionsOutsideWindow: 0,
  shortSweeps: 0,
  sweeps: 0,
  wasteByPattern: {},
  annualWasteSeatDays: 0,
});

function newSub(id: string, term: 'P1M' | 'P1Y', quantity: number, at: Date): Sub {
  return {
    id,
    version: 0,
    state: {
      catalogItemId: 'e3',
      termDuration: term,
      billingCycle: 'monthly',
      termStartedAt: at,
      lots: quantity > 0 ? [{ quantity, addedAt: at }] : [],
      autoRenewEnabled: true,
    },
  };
}

function renewIfDue(sub: Sub, now: Date): void {
  while (termEndsAt(sub.state.termStartedAt, sub.state.termDuration).getTime() <= now.getTime()) {
    const outcome = renew(sub.state);
    if (outcome.kind !== 'renewed') return;
    sub.state = outcome.state;
    sub.version += 1;
  }
}

function line(sub: Sub, now: Date): SupplyLine {
  return {
    source: 'partnerCenter',
    subscriptionId: sub.id,
    quantity: totalSeats(sub.state.lots),
    term: sub.state.termDuration,
    lots: sub.state.lots
      .filter((lot) => isLotOpen(lot, now))
      .map((lot) => ({
        quantity: lot.quantity,
        reducibleUntil: new Date(lot.addedAt.getTime() + SEAT_WINDOW_IN_MS).toISOString(),
      })),
    scheduledRenewalQuantity: sub.state.scheduled?.quantity,
    basis: `${sub.id}@${sub.version}`,
    connected: true,
  };
}

/**
 * The Partner Center model: applies a decision once per key (its MS-RequestId), refuses a reduction
 * beyond the open lots (ReductionWindowClosed, counted: the engine must never ask for one).
 */
class PartnerCenterModel {
  readonly applied = new Set<string>();
  constructor(
    private readonly random: () => number,
    private readonly faults: Faults,
    private readonly counters: Counters,
  ) {}

  send(sub: Sub, d: Decision, now: Date): 'applied' | 'throttled' | 'lost' {
    if (this.random() < this.faults.throttle) {
      this.counters.throttled += 1;
      return 'throttled';
    }
    if (!this.applied.has(d.idempotencyKey)) {
      this.applied.add(d.idempotencyKey);
      this.apply(sub, d, now);
    } else if (d.kind === 'grow') {
      // A repeat of an applied key is answered from the record; nothing is bought again.
    }
    if (this.random() < this.faults.lostAnswer) {
      this.counters.lostAnswers += 1;
      return 'lost';
    }
    return 'applied';
  }

  private apply(sub: Sub, d: Decision, now: Date): void {
    const quantity = totalSeats(sub.state.lots);
    if (d.kind === 'grow') {
      if (quantity !== d.from) this.counters.duplicatesApplied += 1; // a stale or repeated purchase
      sub.state = { ...sub.state, lots: [...sub.state.lots, { quantity: d.to - quantity, addedAt: now }] };
    } else if (d.kind === 'reduce') {
      const result = removeSeats(sub.state.lots, quantity - d.to, now);
      if (!result.ok) {
        this.counters.reductionsOutsideWindow += 1;
        return;
      }
      sub.state = { ...sub.state, lots: result.lots };
    } else {
      sub.state = { ...sub.state, scheduled: { quantity: d.to } };
    }
    sub.version += 1;
    this.counters.changes += 1;
  }
}

type Strategy = 'autoscale' | 'neverShrink' | 'oracle';

export interface YearResult {
  strategy: Strategy;
  customers: number;
  paidSeatDays: number;
  wasteSeatDays: number;
  cost: number;
  changes: number;
  throttled: number;
  lostAnswers: number;
  killedWorkers: number;
  duplicatePurchases: number;
  reductionsOutsideWindow: number;
  sweepsShortOfDemand: number;
  sweeps: number;
  wasteByPattern: Record<string, number>;
  /** Waste that sits on the annual term: seats NCE keeps until the annual renewal. */
  annualWasteSeatDays: number;
}

function simulate(
  all: CustomerSeries[],
  strategy: Strategy,
  policy: AutoscalePolicy,
  faults: Faults,
  seed: number,
  startAnnualShare: number,
): YearResult {
  const counters = emptyCounters();
  const random = rng(seed);
  // Foresight needs no margin: all of the least future demand may go to the annual term.
  const oraclePolicy = {
    ...policy,
    terms: { ...policy.terms, annualSharePercent: 100, maxSwingPercent: 100 },
  };
  const pc = new PartnerCenterModel(random, faults, counters);
  const days = all[0]?.assigned.length ?? 0;
  for (const c of all) {
    const first = c.assigned[0] ?? 0;
    const annualQ =
      strategy === 'oracle'
        ? Math.min(...c.assigned)
        : strategy === 'neverShrink'
          ? Math.max(0, Math.floor(first * 0.8))
          : Math.max(0, Math.floor((first * startAnnualShare) / 100));
    const annual = newSub(`${c.id}-annual`, 'P1Y', annualQ, start);
    const monthlyQ = first - annualQ;
    const monthly = newSub(`${c.id}-monthly`, 'P1M', Math.max(0, monthlyQ), start);
    const subs = [annual, monthly];
    const decideAndSend = (trigger: 'justInTime' | 'sweep', d: number, now: Date): void => {
      const upcoming = (list: number[]): number => list.slice(d + 1, d + 8).reduce((s, n) => s + n, 0);
      // The term policy sees the trailing demand. The oracle sees the future instead: the least demand
      // from now to the annual term's end, which it may move to the annual term (same rule, no guess).
      const window = policy.terms.stableDays;
      const seen =
        strategy === 'oracle' ? c.assigned.slice(d) : c.assigned.slice(Math.max(0, d - window + 1), d + 1);
      const least = Math.min(...seen);
      const history =
        strategy === 'neverShrink' || seen.length === 0
          ? undefined
          : strategy === 'oracle'
            ? { days: window, min: least, max: least }
            : { days: seen.length, min: least, max: Math.max(...seen) };
      const input = {
        customerId: c.id,
        history,
        policy: strategy === 'oracle' ? oraclePolicy : policy,
        sourceOrder: ['partnerCenter' as const],
        demand: {
          skuId: 'e3',
          assigned: c.assigned[d] ?? 0,
          held: 0,
          reservedStarters: upcoming(c.knownStarters),
          scheduledLeavers: upcoming(c.knownLeavers),
        },
        now,
        trigger,
        killSwitch: false,
        runLeft: { seats: undefined, spend: undefined },
        customerToday: { seats: 0, spend: 0 },
      };
      // A lost answer is re-sent under its key once fresh state is read (use case: finishUnfinished).
      for (let attempt = 0; attempt < 3; attempt++) {
        const { decisions } = decide({ ...input, supply: subs.map((s) => line(s, now)) });
        const todo = decisions.filter(
          (x) => x.status === 'apply' && (strategy !== 'neverShrink' || x.kind === 'grow'),
        );
        if (todo.length === 0) return;
        let again = false;
        let movedToAnnual = false;
        for (const decision of todo) {
          // Monthly seats moved to the annual term go back only once the annual seats are bought.
          if (decision.rule === 'movedToAnnual' && !movedToAnnual) {
            again = true;
            continue;
          }
          if (random() < faults.killedWorker) {
            counters.killed += 1; // recorded, never sent: decided again on fresh state
            again = true;
            continue;
          }
          const sub = subs.find((s) => s.id === decision.subscriptionId);
          if (sub === undefined) continue;
          const outcome = pc.send(sub, decision, now);
          if (outcome === 'lost') {
            // Same key again: applied once at most.
            pc.send(sub, decision, now);
          }
          if (outcome === 'throttled') again = true;
          else if (decision.rule === 'stableDemandToAnnual') movedToAnnual = true;
        }
        if (!again) return;
      }
    };
    for (let d = 0; d < days; d++) {
      const midnight = new Date(start.getTime() + d * DAY);
      for (const s of subs) renewIfDue(s, midnight);
      const morning = new Date(midnight.getTime() + 9 * 3_600_000);
      decideAndSend('justInTime', d, morning);
      const paid = subs.reduce((s, x) => s + totalSeats(x.state.lots), 0);
      const assigned = c.assigned[d] ?? 0;
      counters.paidSeatDays += paid;
      counters.wasteSeatDays += Math.max(0, paid - assigned);
      counters.wasteByPattern[c.pattern] =
        (counters.wasteByPattern[c.pattern] ?? 0) + Math.max(0, paid - assigned);
      counters.annualWasteSeatDays += Math.max(0, totalSeats(annual.state.lots) - assigned);
      counters.cost +=
        totalSeats(annual.state.lots) * perDay(annualPrice) +
        totalSeats(monthly.state.lots) * perDay(monthlyPrice);
      const evening = new Date(midnight.getTime() + 18 * 3_600_000);
      decideAndSend('sweep', d, evening);
      counters.sweeps += 1;
      if (subs.reduce((s, x) => s + totalSeats(x.state.lots), 0) < assigned) counters.shortSweeps += 1;
    }
  }
  return {
    strategy,
    customers: all.length,
    paidSeatDays: counters.paidSeatDays,
    wasteSeatDays: counters.wasteSeatDays,
    cost: Math.round(counters.cost),
    changes: counters.changes,
    throttled: counters.throttled,
    lostAnswers: counters.lostAnswers,
    killedWorkers: counters.killed,
    duplicatePurchases: counters.duplicatesApplied,
    reductionsOutsideWindow: counters.reductionsOutsideWindow,
    sweepsShortOfDemand: counters.shortSweeps,
    sweeps: counters.sweeps,
    wasteByPattern: counters.wasteByPattern,
    annualWasteSeatDays: counters.annualWasteSeatDays,
  };
}

export interface YearComparison {
  policy: AutoscalePolicy;
  autoscale: YearResult;
  neverShrink: YearResult;
  oracle: YearResult;
  wasteVsOracle: number;
  costVsNeverShrink: number;
}

export function simulatedYear(options: {
  customers: number;
  days?: number;
  seed?: number;
  faults?: Faults;
  /** Percent of the first day's users autoscale starts with on the annual term. */
  startAnnualShare?: number;
  terms?: Partial<AutoscalePolicy['terms']>;
}) {
  const share = options.startAnnualShare ?? Number(process.env.BENCH_AUTOSCALE_START_ANNUAL ?? 0);
  const seed = options.seed ?? 15;
  const random = rng(seed);
  const days = options.days ?? 365;
  const all = Array.from({ length: options.customers }, (_, i) => series(i, days, random));
  const faults = options.faults ?? { throttle: 0.05, lostAnswer: 0.03, killedWorker: 0.02 };
  const policy = autoscalePolicySchema.parse({
    mode: 'auto',
    terms: {
      ...(process.env.BENCH_AUTOSCALE_STABLE_DAYS === undefined
        ? {}
        : { stableDays: Number(process.env.BENCH_AUTOSCALE_STABLE_DAYS) }),
      ...(process.env.BENCH_AUTOSCALE_SWING === undefined
        ? {}
        : { maxSwingPercent: Number(process.env.BENCH_AUTOSCALE_SWING) }),
      ...(process.env.BENCH_AUTOSCALE_ANNUAL_SHARE === undefined
        ? {}
        : { annualSharePercent: Number(process.env.BENCH_AUTOSCALE_ANNUAL_SHARE) }),
      ...options.terms,
    },
  });
  const autoscale = simulate(all, 'autoscale', policy, faults, seed + 1, share);
  const neverShrink = simulate(all, 'neverShrink', policy, faults, seed + 1, share);
  const oracle = simulate(all, 'oracle', policy, faults, seed + 1, share);
  return {
    autoscale,
    neverShrink,
    oracle,
    policy,
    wasteVsOracle: autoscale.wasteSeatDays / Math.max(1, oracle.wasteSeatDays),
    costVsNeverShrink: autoscale.cost / Math.max(1, neverShrink.cost),
  } satisfies YearComparison;
}

/** The sweep's decision part for many customers × SKUs (no I/O): what one timer run computes. */
export function sweepComputeTime(customers: number, skus: number): { decisions: number; ms: number } {
  const random = rng(7);
  const now = new Date(start.getTime() + 200 * DAY);
  const policy = autoscalePolicySchema.parse({ mode: 'auto', headroom: { seats: 1, percent: 5 } });
  const inputs = [];
  for (let c = 0; c < customers; c++)
    for (let k = 0; k < skus; k++) {
      const assigned = Math.floor(random() * 200);
      const q = Math.max(0, assigned + Math.floor(random() * 21) - 10);
      inputs.push({
        customerId: `c${c}`,
        policy,
        sourceOrder: ['partnerCenter' as const],
        demand: {
          skuId: `sku-${k}`,
          assigned,
          held: random() < 0.05 ? 3 : 0,
          reservedStarters: 0,
          scheduledLeavers: 0,
        },
        supply: [
          {
            source: 'partnerCenter' as const,
            subscriptionId: `s${c}-${k}-m`,
            quantity: Math.floor(q / 3),
            term: 'P1M',
            lots: [
              {
                quantity: Math.floor(q / 6),
                reducibleUntil: new Date(now.getTime() + 3 * 3_600_000).toISOString(),
              },
            ],
            scheduledRenewalQuantity: undefined,
            basis: 'e1',
            connected: true,
          },
          {
            source: 'partnerCenter' as const,
            subscriptionId: `s${c}-${k}-y`,
            quantity: q - Math.floor(q / 3),
            term: 'P1Y',
            lots: [],
            scheduledRenewalQuantity: random() < 0.1 ? 1 : undefined,
            basis: 'e2',
            connected: true,
          },
        ],
        now,
        trigger: 'sweep' as const,
        killSwitch: false,
        runLeft: { seats: 10_000, spend: undefined },
        customerToday: { seats: 0, spend: 0 },
      });
    }
  const started = performance.now();
  let decisions = 0;
  for (const input of inputs) decisions += decide(input).decisions.length;
  return { decisions, ms: performance.now() - started };
}

const signed = (n: number): string => (n >= 0 ? `+${n}` : `−${-n}`);

export function benchAutoscale(options: { customers?: number } = {}) {
  const customers = options.customers ?? Number(process.env.BENCH_AUTOSCALE_CUSTOMERS ?? 200);
  const year = simulatedYear({ customers });
  const compute = sweepComputeTime(10_000, 5);
  const row = (r: YearResult): string =>
    `${r.strategy.padEnd(12)} waste ${String(r.wasteSeatDays).padStart(8)} seat-days  cost ${String(r.cost).padStart(10)}  changes ${r.changes}`;
  console.log(
    `\nautoscale: simulated year, ${customers} customers (annual + monthly terms), faults injected`,
  );
  console.log(`  ${row(year.autoscale)}`);
  console.log(`  ${row(year.neverShrink)}`);
  console.log(`  ${row(year.oracle)}`);
  console.log(
    `  waste vs oracle ${year.wasteVsOracle.toFixed(2)}× (goal ≤ 1.5×), cost vs never-shrink ${(year.costVsNeverShrink * 100).toFixed(1)} %`,
  );
  console.log(
    `  faults: ${year.autoscale.throttled} throttled, ${year.autoscale.lostAnswers} lost answers, ${year.autoscale.killedWorkers} killed workers → ${year.autoscale.duplicatePurchases} duplicate purchases, ${year.autoscale.reductionsOutsideWindow} reductions outside a window, ${year.autoscale.sweepsShortOfDemand} of ${year.autoscale.sweeps} sweeps short of demand`,
  );
  const extra = Object.entries(year.autoscale.wasteByPattern)
    .map(([k, v]) => `${k} ${signed(v - (year.oracle.wasteByPattern[k] ?? 0))}`)
    .join(', ');
  const monthlyWaste = (r: YearResult): number => r.wasteSeatDays - r.annualWasteSeatDays;
  console.log(
    `  what the waste is: autoscale ${monthlyWaste(year.autoscale)} seat-days on monthly seats kept to their renewal after users left (oracle ${monthlyWaste(year.oracle)}), ${year.autoscale.annualWasteSeatDays} on the annual term (oracle ${year.oracle.annualWasteSeatDays}); above the oracle by pattern: ${extra}`,
  );
  console.log(
    `  cost vs the oracle ${((year.autoscale.cost / Math.max(1, year.oracle.cost)) * 100).toFixed(1)} % (the oracle moves the least future demand to the annual term; autoscale only demand stable ${year.policy.terms.stableDays} days, ${year.policy.terms.annualSharePercent} % of its minimum)`,
  );
  console.log(
    `  sweep decision compute: 10,000 customers × 5 SKUs → ${compute.decisions} decisions in ${compute.ms.toFixed(0)} ms (goal < 10 s)`,
  );
  return { at: new Date().toISOString(), ...year, sweepCompute: { customers: 10_000, skus: 5, ...compute } };
}

/** Merges `autoscale` into .local/bench.json, keeping the other sections. */
export function writeAutoscaleResult(result: unknown): void {
  const dir = join(process.cwd(), '.local');
  const file = join(dir, 'bench.json');
  mkdirSync(dir, { recursive: true });
  let existing: Record<string, unknown>;
  try {
    existing = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    existing = {}; // no earlier results yet
  }
  writeFileSync(file, `${JSON.stringify({ ...existing, autoscale: result }, null, 2)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeAutoscaleResult(benchAutoscale());
  console.log('written to .local/bench.json (autoscale)');
}
