import { z } from 'zod';
import type { PolicySource, SourceKind } from './licensing.js';

/**
 * Seat autoscaling by demand under New Commerce rules (issue 15), pure: what to buy, give back or
 * schedule for renewal per customer and SKU, why (in words and figures), and under which guardrail.
 * Nothing here calls a source; the use case applies what this decides, once per idempotency key.
 * NCE facts: seats added at any time; a reduction only takes seats whose 168-hour window is open;
 * otherwise the count changes at renewal through scheduledNextTermInstructions
 * (Partner Center change-the-quantity-of-a-subscription.md, create-scheduled-changes.md).
 */

export const autoscaleModes = ['off', 'recommend', 'auto'] as const;
export type AutoscaleMode = (typeof autoscaleModes)[number];

const count = z.number().int().nonnegative();
const money = z.number().nonnegative();

/** Per customer, set through the API. Caps are per customer; the run-wide caps come from settings. */
export const autoscalePolicySchema = z.strictObject({
  mode: z.enum(autoscaleModes).default('off'),
  /** Decide and record, apply nothing (as `recommend`, but said to be a rehearsal of `auto`). */
  dryRun: z.boolean().default(false),
  /** Spare seats kept above demand: the larger of an absolute number and a share of demand. */
  headroom: z
    .strictObject({ seats: count.default(0), percent: z.number().min(0).max(100).default(0) })
    .default({
      seats: 0,
      percent: 0,
    }),
  caps: z
    .strictObject({
      seatsPerRun: count.optional(),
      spendPerRun: money.optional(),
      seatsPerDay: count.optional(),
      spendPerDay: money.optional(),
    })
    .default({}),
  /** A purchase above either threshold waits for a person's approval. */
  approval: z.strictObject({ aboveSeats: count.optional(), aboveSpend: money.optional() }).default({}),
  /** Monthly list price of one seat per SKU (lower-case skuId), for spend caps and the figures. */
  seatPrices: z.record(z.string(), money).default({}),
  /** Whether surplus seats that cannot be given back now are scheduled off at renewal. */
  scheduleReductions: z.boolean().default(true),
  /**
   * The term policy: growth is bought as monthly-term lots (given back at the next monthly renewal at
   * the latest); only demand that stayed within `maxSwingPercent` for `stableDays` moves to the annual
   * term, `annualSharePercent` of its minimum, and only from monthly seats inside an open window (just
   * renewed or just bought), so nothing is paid twice. `stableDays: 0` turns the move off.
   */
  terms: z
    .strictObject({
      stableDays: count.default(56),
      maxSwingPercent: z.number().min(0).max(100).default(10),
      annualSharePercent: z.number().min(0).max(100).default(50),
    })
    .default({ stableDays: 56, maxSwingPercent: 10, annualSharePercent: 50 }),
});
export type AutoscalePolicy = z.infer<typeof autoscalePolicySchema>;
export const defaultAutoscalePolicy: AutoscalePolicy = autoscalePolicySchema.parse({});

export interface SkuDemand {
  skuId: string;
  assigned: number;
  /** Operations held as `needsLicence` for this SKU. */
  held: number;
  /** Seats reserved for users with a future start date. */
  reservedStarters: number;
  /** Assigned seats of users whose leaving date has been set. */
  scheduledLeavers: number;
}

/** Demand (assigned + held) over the trailing days the term policy looks at. */
export interface DemandHistory {
  /** Days observed (a day with no observation does not count). */
  days: number;
  min: number;
  max: number;
}

export interface SupplyLot {
  quantity: number;
  reducibleUntil: string;
}

/** One subscription supplying the SKU, as the ledger has it. */
export interface SupplyLine {
  source: SourceKind;
  subscriptionId: string;
  quantity: number;
  /** P1M, P1Y, P3Y, or a distributor's term text. */
  term: string | undefined;
  /** Open lots (Partner Center refundableQuantity); a distributor line has none we can see. */
  lots: readonly SupplyLot[];
  /** Quantity scheduled for the next term, when a change is scheduled. */
  scheduledRenewalQuantity: number | undefined;
  /** The ledger entry this line's figures come from: a decision's key names it. */
  basis: string;
  /** Whether we hold an API connector for this line's source. */
  connected: boolean;
  /** The offer's maximum quantity per subscription (catalog), when known. */
  maximumQuantity?: number | undefined;
}

export interface Allowance {
  seats: number | undefined;
  spend: number | undefined;
}

export interface DecideInput {
  customerId: string;
  policy: AutoscalePolicy;
  /** The customer's assignment policy: where new seats come from first. */
  sourceOrder: readonly PolicySource[];
  demand: SkuDemand;
  supply: readonly SupplyLine[];
  now: Date;
  /** `justInTime`: only growth (a held operation is waiting); `sweep`: grow and shrink. */
  trigger: 'justInTime' | 'sweep';
  /** Trailing demand for the term policy; without it nothing moves to the annual term. */
  history?: DemandHistory | undefined;
  killSwitch: boolean;
  /** What is left of the caps: this run across customers, and this customer today (already spent). */
  runLeft: Allowance;
  customerToday: { seats: number; spend: number };
}

export const decisionKinds = [
  'grow',
  'reduce',
  'scheduleReduction',
  'withdrawSchedule',
  'purchaseRequest',
  'shortageReport',
] as const;
export type DecisionKind = (typeof decisionKinds)[number];

/**
 * `apply`: the use case sends it; `recommend`: recorded only (mode, dry run); `pendingApproval`: waits
 * for a person; `withheld`: a cap or the kill switch stopped it; `report`: nothing can be bought.
 */
export const decisionStatuses = ['apply', 'recommend', 'pendingApproval', 'withheld', 'report'] as const;
export type DecisionStatus = (typeof decisionStatuses)[number];

export interface Decision {
  kind: DecisionKind;
  status: DecisionStatus;
  customerId: string;
  skuId: string;
  source: SourceKind | undefined;
  subscriptionId: string | undefined;
  /** Seats now and after (for a schedule: the next term's quantity before and after). */
  from: number;
  to: number;
  /** Commitment spend of added seats (monthly price × term months), when a price is known. */
  spend: number | undefined;
  rule: string;
  reason: string;
  figures: Record<string, number | string>;
  /** Names the change from the ledger entry it follows: the same state decides the same key. */
  idempotencyKey: string;
}

export interface Figures {
  /** 1 when the customer is shrinking (no headroom then), else 0. */
  shrinking: number;
  assigned: number;
  held: number;
  reservedStarters: number;
  scheduledLeavers: number;
  headroom: number;
  demand: number;
  floor: number;
  target: number;
  supply: number;
}

export function termMonths(term: string | undefined): number {
  if (term === undefined) return 1;
  const t = term.trim().toUpperCase();
  if (t === 'P1Y' || t === 'ANNUAL' || t === '1-YEAR') return 12;
  if (t === 'P3Y' || t === 'TRIENNIAL' || t === '3-YEAR') return 36;
  return 1;
}
export const isMonthlyTerm = (term: string | undefined): boolean => termMonths(term) === 1;

/** Seats that can change through a source's API or a purchase request (not EA, third party, unlabelled). */
const changeable = (source: SourceKind): source is 'partnerCenter' | 'distributor' =>
  source === 'partnerCenter' || source === 'distributor';

/**
 * demand = assigned + held + reserved starters − scheduled leavers; target = demand + headroom, never
 * below the floor assigned + held (a seat in use or awaited is never given back).
 */
export function figuresOf(
  policy: AutoscalePolicy,
  demand: SkuDemand,
  supply: readonly SupplyLine[],
  history?: DemandHistory,
): Figures {
  const floor = demand.assigned + demand.held;
  const wanted = Math.max(0, floor + demand.reservedStarters - demand.scheduledLeavers);
  // A shrinking customer (more known leavers than starters, or demand well below its recent peak) gets
  // no headroom: the seats leavers free are the spare ones, and spare seats bought now are the waste.
  const shrinking =
    demand.scheduledLeavers > demand.reservedStarters ||
    (history !== undefined &&
      history.max > 0 &&
      ((history.max - floor) * 100) / history.max > policy.terms.maxSwingPercent);
  const headroom = shrinking
    ? 0
    : Math.max(policy.headroom.seats, Math.ceil((wanted * policy.headroom.percent) / 100));
  return {
    shrinking: shrinking ? 1 : 0,
    assigned: demand.assigned,
    held: demand.held,
    reservedStarters: demand.reservedStarters,
    scheduledLeavers: demand.scheduledLeavers,
    headroom,
    demand: wanted,
    floor,
    target: Math.max(floor, wanted + headroom),
    supply: supply.reduce((sum, line) => sum + line.quantity, 0),
  };
}

function keyOf(
  input: DecideInput,
  kind: DecisionKind,
  line: SupplyLine | undefined,
  from: number,
  to: number,
) {
  const sku = input.demand.skuId.toLowerCase();
  return `autoscale:${input.customerId}:${sku}:${line?.subscriptionId ?? '-'}:${kind}:${from}->${to}:${line?.basis ?? 'none'}`;
}

/** Monthly lines first (they renew soonest and cost least to hold spare), then by id for stability. */
function byReductionPreference(a: SupplyLine, b: SupplyLine): number {
  const m = termMonths(a.term) - termMonths(b.term);
  return m !== 0 ? m : a.subscriptionId < b.subscriptionId ? -1 : a.subscriptionId > b.subscriptionId ? 1 : 0;
}

/** Seats inside an open window, newest lot first (the ones that were bought last go back first). */
export function openLotsNewestFirst(lots: readonly SupplyLot[], now: Date): SupplyLot[] {
  return lots
    .filter((lot) => lot.quantity > 0 && Date.parse(lot.reducibleUntil) > now.getTime())
    .sort((a, b) => Date.parse(b.reducibleUntil) - Date.parse(a.reducibleUntil));
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function demandWords(f: Figures): string {
  return (
    `demand ${f.demand} = ${f.assigned} assigned + ${f.held} held + ${f.reservedStarters} starters − ${f.scheduledLeavers} leavers; ` +
    `target ${f.target} with ${f.headroom} headroom${f.shrinking === 1 ? ' (none while shrinking)' : ''} (never below ${f.floor} assigned + held); supply ${f.supply}`
  );
}

/** Which line new seats go to: the first source of the policy that supplies the SKU, monthly lines first. */
function growthLine(input: DecideInput): { line: SupplyLine | undefined; source: PolicySource | undefined } {
  const order: readonly PolicySource[] =
    input.sourceOrder.length > 0 ? input.sourceOrder : ['partnerCenter', 'distributor'];
  for (const source of order) {
    if (source === 'ea' || source === 'thirdParty') {
      if (input.supply.some((l) => l.source === source)) return { line: undefined, source };
      continue;
    }
    const lines = input.supply.filter((l) => l.source === source).sort(byReductionPreference);
    const line = lines[0];
    if (line !== undefined) return { line, source };
  }
  return { line: undefined, source: undefined };
}

/**
 * The decisions for one customer and SKU. Growth is capped (run, customer per run, customer per day,
 * seats and spend) and may wait for approval; reductions save money and are never capped, but take
 * only seats in open windows and never go below assigned + held.
 */
export function decide(input: DecideInput): { figures: Figures; decisions: Decision[] } {
  const { policy } = input;
  const f = figuresOf(policy, input.demand, input.supply, input.history);
  if (policy.mode === 'off') return { figures: f, decisions: [] };
  const sku = input.demand.skuId.toLowerCase();
  const price = policy.seatPrices[sku];
  const base = (
    kind: DecisionKind,
    line: SupplyLine | undefined,
    from: number,
    to: number,
    rule: string,
    reason: string,
    extra: Record<string, number | string> = {},
  ): Decision => ({
    kind,
    status: 'apply',
    customerId: input.customerId,
    skuId: sku,
    source: line?.source,
    subscriptionId: line?.subscriptionId,
    from,
    to,
    spend: undefined,
    rule,
    reason,
    figures: { ...f, ...extra },
    idempotencyKey: keyOf(input, kind, line, from, to),
  });
  const decisions: Decision[] = [];

  const short = f.target - f.supply;
  if (short > 0) decisions.push(...grow(input, f, short, price, base));

  if (input.trigger === 'sweep') {
    const lines = input.supply.filter((l) => changeable(l.source)).sort(byReductionPreference);
    const move = short > 0 ? undefined : annualMove(input, f, lines);
    const afterNow = new Map<string, number>();
    if (move !== undefined) {
      const d = base(
        'grow',
        move.annual,
        move.annual.quantity,
        move.annual.quantity + move.seats,
        'stableDemandToAnnual',
        `move ${plural(move.seats, 'seat')} to the annual term: demand stayed between ${move.history.min} and ${move.history.max} for ${move.history.days} days; ${input.policy.terms.annualSharePercent} % of its minimum is ${move.annualTarget}, the annual line holds ${move.annual.quantity}; the same number of monthly seats inside their window go back; ${demandWords(f)}`,
        {
          historyDays: move.history.days,
          historyMin: move.history.min,
          historyMax: move.history.max,
          annualTarget: move.annualTarget,
          term: move.annual.term ?? 'unknown',
          ...(price === undefined ? {} : { pricePerSeatPerTerm: price * termMonths(move.annual.term) }),
        },
      );
      const spend = price === undefined ? undefined : move.seats * price * termMonths(move.annual.term);
      const { approval } = input.policy;
      const needsApproval =
        (approval.aboveSeats !== undefined && move.seats > approval.aboveSeats) ||
        (approval.aboveSpend !== undefined && (spend === undefined || spend > approval.aboveSpend));
      decisions.push({ ...d, spend, ...(needsApproval ? { status: 'pendingApproval' as const } : {}) });
      // Seats waiting for a person stay monthly until then; otherwise the monthly seats go back now.
      if (!needsApproval) {
        afterNow.set(move.annual.subscriptionId, move.annual.quantity + move.seats);
        afterNow.set(move.monthly.subscriptionId, move.monthly.quantity - move.seats);
      }
    }
    const moved = (line: SupplyLine): number =>
      line.quantity - (afterNow.get(line.subscriptionId) ?? line.quantity);
    // Seats a pending scheduled reduction would take away but demand now needs come back first.
    let surplus = Math.max(0, f.supply - f.target);
    for (const line of lines) {
      // The line the move buys on is not also reduced: its decisions name absolute quantities.
      if (line.source !== 'partnerCenter' || !line.connected || moved(line) < 0) continue;
      const already = moved(line);
      const open = openLotsNewestFirst(line.lots, input.now);
      const reducible = Math.max(
        0,
        Math.min(
          line.quantity,
          open.reduce((s, l) => s + l.quantity, 0),
        ) - already,
      );
      const take = Math.min(surplus, reducible);
      if (take === 0 && already === 0) continue;
      surplus -= take;
      const to = line.quantity - already - take;
      afterNow.set(line.subscriptionId, to);
      decisions.push(
        base(
          'reduce',
          line,
          line.quantity,
          to,
          already > 0 ? 'movedToAnnual' : 'shrinkInOpenWindow',
          `give back ${plural(already + take, 'seat')} now: ${already > 0 ? `${already} moved to the annual term` : ''}${already > 0 && take > 0 ? ' and ' : ''}${take > 0 ? `${f.supply - f.target} more than the target` : ''}, ${reducible + already} still inside their 168-hour window (newest lots first${isMonthlyTerm(line.term) ? ', monthly term first' : ''}); ${demandWords(f)}`,
          {
            reducible: reducible + already,
            taken: take,
            movedToAnnual: already,
            term: line.term ?? 'unknown',
          },
        ),
      );
    }
    // What cannot go back now is scheduled off at renewal; schedules demand no longer supports go away.
    for (const line of lines) {
      if (line.source !== 'partnerCenter' || !line.connected) continue;
      const quantity = afterNow.get(line.subscriptionId) ?? line.quantity;
      const take = policy.scheduleReductions ? Math.min(surplus, quantity) : 0;
      surplus -= take;
      const wanted = quantity - take;
      const scheduled = line.scheduledRenewalQuantity;
      if (take > 0 && scheduled !== wanted) {
        decisions.push(
          base(
            'scheduleReduction',
            line,
            scheduled ?? line.quantity,
            wanted,
            scheduled === undefined ? 'scheduleAtRenewal' : 'adjustScheduleAtRenewal',
            `${plural(take, 'surplus seat')} outside any open window: renew with ${wanted} instead of ${quantity}${scheduled === undefined ? '' : ` (was scheduled to ${scheduled})`}; ${demandWords(f)}`,
            { surplusAtRenewal: take, term: line.term ?? 'unknown' },
          ),
        );
      } else if (take === 0 && scheduled !== undefined && scheduled !== quantity) {
        decisions.push(
          base(
            'withdrawSchedule',
            line,
            scheduled,
            quantity,
            scheduled < quantity ? 'demandReturned' : 'scheduleAboveQuantity',
            scheduled < quantity
              ? `demand came back: the next term keeps ${quantity} seats instead of the scheduled ${scheduled}; ${demandWords(f)}`
              : `the next term was scheduled for ${scheduled} seats but the line now holds ${quantity} (seats went back inside their window): renew with ${quantity}; ${demandWords(f)}`,
          ),
        );
      }
    }
  }

  return { figures: f, decisions: decisions.map((d) => guard(input, d)) };
}

/**
 * The term policy's move: demand stable for long enough goes from monthly seats inside an open window
 * to the annual line (one purchase there, the same number given back on the monthly line at once).
 */
function annualMove(
  input: DecideInput,
  f: Figures,
  lines: readonly SupplyLine[],
):
  | { annual: SupplyLine; monthly: SupplyLine; seats: number; annualTarget: number; history: DemandHistory }
  | undefined {
  const { terms } = input.policy;
  const history = input.history;
  if (history === undefined || terms.stableDays === 0 || history.days < terms.stableDays) return undefined;
  if (history.max === 0 || ((history.max - history.min) * 100) / history.max > terms.maxSwingPercent)
    return undefined;
  const pcLines = lines.filter((l) => l.source === 'partnerCenter' && l.connected);
  const annual = pcLines.find((l) => termMonths(l.term) >= 12);
  const monthly = pcLines.find((l) => isMonthlyTerm(l.term));
  if (annual === undefined || monthly === undefined) return undefined;
  // Never more annual seats than today's floor either: a seat in use now is one that stays.
  const annualTarget = Math.min(f.floor, Math.floor((history.min * terms.annualSharePercent) / 100));
  const open = openLotsNewestFirst(monthly.lots, input.now).reduce((s, l) => s + l.quantity, 0);
  const seats = Math.min(annualTarget - annual.quantity, open, monthly.quantity);
  return seats > 0 ? { annual, monthly, seats, annualTarget, history } : undefined;
}

function grow(
  input: DecideInput,
  f: Figures,
  short: number,
  price: number | undefined,
  base: (
    kind: DecisionKind,
    line: SupplyLine | undefined,
    from: number,
    to: number,
    rule: string,
    reason: string,
    extra?: Record<string, number | string>,
  ) => Decision,
): Decision[] {
  const { line, source } = growthLine(input);
  const why = `${plural(short, 'seat')} short: ${demandWords(f)}`;
  if (line === undefined) {
    const d = base(
      'shortageReport',
      undefined,
      f.supply,
      f.target,
      source === undefined ? 'noSourceSuppliesSku' : 'sourceNeverBuys',
      source === undefined
        ? `${why}; no Partner Center or distributor subscription supplies this SKU (a new subscription is a purchase, not a quantity change): report the shortage`
        : `${why}; ${source === 'ea' ? 'EA' : 'third-party'} seats are never bought here: report the shortage to their owner`,
      { short },
    );
    return [{ ...d, status: 'report', source }];
  }
  if (!line.connected) {
    const d = base(
      'purchaseRequest',
      line,
      line.quantity,
      line.quantity + short,
      'noConnector',
      `${why}; no connector for this source: a purchase request for ${plural(short, 'seat')} is for a person to order and approve`,
      { short },
    );
    return [
      {
        ...d,
        status: 'pendingApproval',
        spend: price === undefined ? undefined : short * price * termMonths(line.term),
      },
    ];
  }
  // Caps: the smallest allowance wins; what is over it is withheld and said so.
  const months = termMonths(line.term);
  const perSeat = price === undefined ? undefined : price * months;
  const { caps } = input.policy;
  const seatLimits: [string, number | undefined][] = [
    ['seats per run (all customers)', input.runLeft.seats],
    ['seats per run for this customer', caps.seatsPerRun],
    [
      'seats per day for this customer',
      caps.seatsPerDay === undefined ? undefined : caps.seatsPerDay - input.customerToday.seats,
    ],
  ];
  const spendLimits: [string, number | undefined][] = [
    ['spend per run (all customers)', input.runLeft.spend],
    ['spend per run for this customer', caps.spendPerRun],
    [
      'spend per day for this customer',
      caps.spendPerDay === undefined ? undefined : caps.spendPerDay - input.customerToday.spend,
    ],
  ];
  let allowed = short;
  let limitedBy: string | undefined;
  for (const [name, left] of seatLimits) {
    if (left !== undefined && Math.max(0, left) < allowed) {
      allowed = Math.max(0, left);
      limitedBy = name;
    }
  }
  for (const [name, left] of spendLimits) {
    if (left === undefined) continue;
    // The run-wide spend cap counts priced seats (the seat caps still bound the rest); a customer's own
    // spend cap without a price for the SKU cannot be checked, so a person decides.
    if (
      perSeat === undefined &&
      input.policy.seatPrices[input.demand.skuId.toLowerCase()] === undefined &&
      name.endsWith('(all customers)')
    )
      continue;
    if (perSeat === undefined) {
      // A spend cap cannot be checked without a price: nothing is bought without a person.
      const d = base(
        'grow',
        line,
        line.quantity,
        line.quantity + short,
        'spendCapWithoutPrice',
        `${why}; a spend cap (${name}) is set but this SKU has no seat price: waiting for approval`,
        { short },
      );
      return [{ ...d, status: 'pendingApproval' }];
    }
    const seats = perSeat === 0 ? allowed : Math.floor(Math.max(0, left) / perSeat);
    if (seats < allowed) {
      allowed = seats;
      limitedBy = name;
    }
  }
  const out: Decision[] = [];
  // A subscription holds at most the offer's maximum quantity (Partner Center 400/2002 beyond it):
  // growth fills the preferred line to it and spills onto the source's other lines, then stops.
  const spendLeft = spendLimits.reduce<number | undefined>(
    (least, [, left]) => (left === undefined ? least : Math.min(least ?? Infinity, Math.max(0, left))),
    undefined,
  );
  const lines = [
    line,
    ...input.supply
      .filter((l) => l !== line && l.source === line.source && l.connected)
      .sort(byReductionPreference),
  ];
  let left = allowed;
  let spent = 0;
  for (const [index, part] of lines.entries()) {
    if (left === 0) break;
    const room =
      part.maximumQuantity === undefined ? left : Math.max(0, part.maximumQuantity - part.quantity);
    const partPerSeat = price === undefined ? undefined : price * termMonths(part.term);
    // A spill onto a longer term commits more: it fits in what the spend caps leave after the rest.
    const bySpend =
      index === 0 || partPerSeat === undefined || partPerSeat === 0 || spendLeft === undefined
        ? left
        : Math.floor((spendLeft - spent) / partPerSeat);
    const seats = Math.max(0, Math.min(left, room, bySpend));
    if (seats === 0) continue;
    left -= seats;
    const d = base(
      'grow',
      part,
      part.quantity,
      part.quantity + seats,
      index === 0 ? 'growToTarget' : 'growSpillsOverMaximum',
      index === 0
        ? `buy ${plural(seats, 'seat')}: ${why}`
        : `buy ${plural(seats, 'seat')} on the next line: the preferred one is at the offer's maximum; ${why}`,
      {
        short,
        term: part.term ?? 'unknown',
        ...(part.maximumQuantity === undefined ? {} : { maximumQuantity: part.maximumQuantity }),
        ...(partPerSeat === undefined ? {} : { pricePerSeatPerTerm: partPerSeat }),
      },
    );
    const spend = partPerSeat === undefined ? undefined : seats * partPerSeat;
    spent += spend ?? 0;
    const { approval } = input.policy;
    const needsApproval =
      (approval.aboveSeats !== undefined && seats > approval.aboveSeats) ||
      (approval.aboveSpend !== undefined && (spend === undefined || spend > approval.aboveSpend));
    out.push(
      needsApproval
        ? {
            ...d,
            spend,
            status: 'pendingApproval',
            rule: 'approvalThreshold',
            reason: `${d.reason}; above the approval threshold (${approval.aboveSeats ?? '–'} seats, ${approval.aboveSpend ?? '–'} spend): waiting for a person`,
          }
        : { ...d, spend },
    );
  }
  if (left > 0) {
    const d = base(
      'grow',
      line,
      line.quantity,
      line.quantity + left,
      'subscriptionMaximum',
      `${plural(left, 'seat')} withheld: every line of this source is at the offer's maximum quantity (or the spend caps stop a spill); more seats need a new subscription, which is a purchase for a person; ${why}`,
      { short, withheld: left },
    );
    out.push({ ...d, status: 'withheld' });
  }
  if (allowed < short) {
    const d = base(
      'grow',
      line,
      line.quantity + allowed,
      line.quantity + short,
      'capReached',
      `${plural(short - allowed, 'seat')} withheld by the cap "${limitedBy ?? 'unknown'}": ${why}`,
      { short, allowed },
    );
    out.push({
      ...d,
      status: 'withheld',
      spend: perSeat === undefined ? undefined : (short - allowed) * perSeat,
    });
  }
  return out;
}

/** Mode, dry run and the kill switch turn what would be applied into a record of it. */
function guard(input: DecideInput, d: Decision): Decision {
  if (d.status !== 'apply' && d.status !== 'pendingApproval') return d;
  if (input.killSwitch)
    return {
      ...d,
      status: 'withheld',
      rule: 'killSwitch',
      reason: `kill switch is on, nothing is changed: ${d.reason}`,
    };
  if (d.status === 'pendingApproval') return d;
  if (input.policy.mode === 'recommend')
    return { ...d, status: 'recommend', reason: `recommended (mode recommend): ${d.reason}` };
  if (input.policy.dryRun) return { ...d, status: 'recommend', reason: `dry run: ${d.reason}` };
  return d;
}
