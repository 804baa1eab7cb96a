import { describe, expect, it } from 'vitest';
import {
  autoscalePolicySchema,
  decide,
  figuresOf,
  openLotsNewestFirst,
  type DecideInput,
  type SupplyLine,
} from '../../../shared/domain/autoscale.js';

const now = new Date('2026-06-10T12:00:00Z');
const hours = (n: number): string => new Date(now.getTime() + n * 3_600_000).toISOString();
const sku = '6fd2c87f-b296-42f0-b197-1e91e994b900';

const pc = (over: Partial<SupplyLine> = {}): SupplyLine => ({
  source: 'partnerCenter',
  subscriptionId: 'sub-annual',
  quantity: 10,
  term: 'P1Y',
  lots: [],
  scheduledRenewalQuantity: undefined,
  basis: 'entry-1',
  connected: true,
  ...over,
});

function input(over: Partial<DecideInput> = {}, policy: Record<string, unknown> = {}): DecideInput {
  return {
    customerId: 'contoso',
    policy: autoscalePolicySchema.parse({ mode: 'auto', ...policy }),
    sourceOrder: ['partnerCenter'],
    demand: { skuId: sku, assigned: 10, held: 0, reservedStarters: 0, scheduledLeavers: 0 },
    supply: [pc()],
    now,
    trigger: 'sweep',
    killSwitch: false,
    runLeft: { seats: undefined, spend: undefined },
    customerToday: { seats: 0, spend: 0 },
    ...over,
  };
}

describe('autoscale demand figures', () => {
  it('counts assigned + held + starters − leavers, headroom as the larger of seats and percent, never below assigned + held', () => {
    const policy = autoscalePolicySchema.parse({ headroom: { seats: 2, percent: 10 } });
    const f = figuresOf(
      policy,
      { skuId: sku, assigned: 40, held: 5, reservedStarters: 10, scheduledLeavers: 5 },
      [pc({ quantity: 30 }), pc({ subscriptionId: 'b', quantity: 12 })],
    );
    expect(f).toMatchObject({ demand: 50, headroom: 5, target: 55, floor: 45, supply: 42 });
    // demand 15 + headroom 2 = 17 < floor 45 → the floor wins
    const g = figuresOf(
      policy,
      { skuId: sku, assigned: 40, held: 5, reservedStarters: 0, scheduledLeavers: 30 },
      [],
    );
    expect(g.target).toBe(45);
  });
});

describe('autoscale growth', () => {
  it('grows the policy source by exactly the shortage, with the figures and rule', () => {
    const { decisions } = decide(
      input({ demand: { skuId: sku, assigned: 10, held: 50, reservedStarters: 0, scheduledLeavers: 0 } }),
    );
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      kind: 'grow',
      status: 'apply',
      from: 10,
      to: 60,
      rule: 'growToTarget',
    });
    expect(decisions[0]?.figures).toMatchObject({ held: 50, target: 60, supply: 10, short: 50 });
    expect(decisions[0]?.reason).toContain('50 seats short');
  });

  it('grows a monthly line before an annual one', () => {
    const { decisions } = decide(
      input({
        demand: { skuId: sku, assigned: 15, held: 0, reservedStarters: 0, scheduledLeavers: 0 },
        supply: [pc(), pc({ subscriptionId: 'sub-monthly', term: 'P1M', quantity: 2 })],
      }),
    );
    expect(decisions[0]).toMatchObject({ subscriptionId: 'sub-monthly', from: 2, to: 5 });
  });

  it('asks for a purchase request when the source has no connector (2-Tier without an API)', () => {
    const { decisions } = decide(
      input({
        sourceOrder: ['distributor'],
        supply: [pc({ source: 'distributor', connected: false, subscriptionId: 'd1' })],
        demand: { skuId: sku, assigned: 12, held: 0, reservedStarters: 0, scheduledLeavers: 0 },
      }),
    );
    expect(decisions).toMatchObject([
      { kind: 'purchaseRequest', status: 'pendingApproval', from: 10, to: 12 },
    ]);
  });

  it('only reports a shortage for EA seats, and when no buying source supplies the SKU', () => {
    const ea = decide(
      input({
        sourceOrder: ['ea', 'partnerCenter'],
        supply: [pc({ source: 'ea', subscriptionId: 'g1', connected: false })],
        demand: { skuId: sku, assigned: 11, held: 0, reservedStarters: 0, scheduledLeavers: 0 },
      }),
    );
    expect(ea.decisions).toMatchObject([
      { kind: 'shortageReport', status: 'report', rule: 'sourceNeverBuys', source: 'ea' },
    ]);
    const none = decide(
      input({
        supply: [],
        demand: { skuId: sku, assigned: 0, held: 1, reservedStarters: 0, scheduledLeavers: 0 },
      }),
    );
    expect(none.decisions).toMatchObject([{ kind: 'shortageReport', rule: 'noSourceSuppliesSku' }]);
  });

  it('caps growth per run, per customer and per day on seats and spend, withholding the rest in words', () => {
    const short = { skuId: sku, assigned: 30, held: 0, reservedStarters: 0, scheduledLeavers: 0 };
    const run = decide(input({ demand: short, runLeft: { seats: 5, spend: undefined } }));
    expect(run.decisions.map((d) => [d.status, d.from, d.to])).toEqual([
      ['apply', 10, 15],
      ['withheld', 15, 30],
    ]);
    expect(run.decisions[1]?.reason).toContain('seats per run (all customers)');
    const day = decide(
      input({ demand: short, customerToday: { seats: 18, spend: 0 } }, { caps: { seatsPerDay: 20 } }),
    );
    expect(day.decisions[0]).toMatchObject({ status: 'apply', to: 12 });
    const spend = decide(input({ demand: short }, { caps: { spendPerRun: 100 }, seatPrices: { [sku]: 2 } }));
    // 2 a month × 12 months = 24 per annual seat → 4 seats for 100
    expect(spend.decisions[0]).toMatchObject({ status: 'apply', to: 14, spend: 96 });
    expect(spend.decisions[1]).toMatchObject({ status: 'withheld', rule: 'capReached' });
    const zero = decide(input({ demand: short, runLeft: { seats: 0, spend: undefined } }));
    expect(zero.decisions.map((d) => d.status)).toEqual(['withheld']);
  });

  it('waits for approval above a threshold, and when a spend cap has no price to check', () => {
    const short = { skuId: sku, assigned: 30, held: 0, reservedStarters: 0, scheduledLeavers: 0 };
    const big = decide(input({ demand: short }, { approval: { aboveSeats: 10 } }));
    expect(big.decisions).toMatchObject([{ status: 'pendingApproval', rule: 'approvalThreshold', to: 30 }]);
    const small = decide(input({ demand: { ...short, assigned: 12 } }, { approval: { aboveSeats: 10 } }));
    expect(small.decisions).toMatchObject([{ status: 'apply' }]);
    const runCapOnly = decide(input({ demand: short, runLeft: { seats: undefined, spend: 1000 } }));
    expect(runCapOnly.decisions).toMatchObject([{ status: 'apply', rule: 'growToTarget' }]);
    const noPrice = decide(input({ demand: short }, { caps: { spendPerDay: 500 } }));
    expect(noPrice.decisions).toMatchObject([{ status: 'pendingApproval', rule: 'spendCapWithoutPrice' }]);
  });
});

describe('autoscale shrinking under NCE', () => {
  const surplus = { skuId: sku, assigned: 4, held: 0, reservedStarters: 0, scheduledLeavers: 0 };

  it('makes no reduction outside a window: the surplus is scheduled for renewal instead', () => {
    const { decisions } = decide(
      input({ demand: surplus, supply: [pc({ lots: [{ quantity: 10, reducibleUntil: hours(-1) }] })] }),
    );
    expect(decisions.filter((d) => d.kind === 'reduce')).toEqual([]);
    expect(decisions).toMatchObject([
      { kind: 'scheduleReduction', from: 10, to: 4, rule: 'scheduleAtRenewal' },
    ]);
  });

  it('reduces only seats in open lots and never below assigned + held', () => {
    const { decisions } = decide(
      input({
        demand: { ...surplus, held: 2 },
        supply: [
          pc({
            lots: [
              { quantity: 3, reducibleUntil: hours(5) },
              { quantity: 7, reducibleUntil: hours(-3) },
            ],
          }),
        ],
      }),
    );
    expect(decisions[0]).toMatchObject({
      kind: 'reduce',
      from: 10,
      to: 7,
      figures: { reducible: 3, floor: 6 },
    });
    expect(decisions[1]).toMatchObject({ kind: 'scheduleReduction', from: 10, to: 6 });
    const reduced = decide(
      input({
        demand: { ...surplus, assigned: 9, held: 1 },
        supply: [pc({ lots: [{ quantity: 10, reducibleUntil: hours(5) }] })],
      }),
    );
    expect(reduced.decisions).toEqual([]);
  });

  it('reduces monthly seats before annual ones, and reads lots newest first', () => {
    const { decisions } = decide(
      input({
        demand: surplus,
        supply: [
          pc({ lots: [{ quantity: 10, reducibleUntil: hours(100) }] }),
          pc({
            subscriptionId: 'sub-monthly',
            term: 'P1M',
            quantity: 3,
            lots: [{ quantity: 3, reducibleUntil: hours(2) }],
          }),
        ],
      }),
    );
    expect(decisions.map((d) => [d.kind, d.subscriptionId, d.from, d.to])).toEqual([
      ['reduce', 'sub-monthly', 3, 0],
      ['reduce', 'sub-annual', 10, 4],
    ]);
    const lots = openLotsNewestFirst(
      [
        { quantity: 1, reducibleUntil: hours(1) },
        { quantity: 2, reducibleUntil: hours(9) },
        { quantity: 4, reducibleUntil: hours(-1) },
      ],
      now,
    );
    expect(lots.map((l) => l.quantity)).toEqual([2, 1]);
  });

  it('withdraws a scheduled reduction when demand returns, and adjusts it when demand moves', () => {
    const back = decide(
      input({ demand: { ...surplus, assigned: 10 }, supply: [pc({ scheduledRenewalQuantity: 4 })] }),
    );
    expect(back.decisions).toMatchObject([
      { kind: 'withdrawSchedule', from: 4, to: 10, rule: 'demandReturned' },
    ]);
    const moved = decide(
      input({ demand: { ...surplus, assigned: 7 }, supply: [pc({ scheduledRenewalQuantity: 4 })] }),
    );
    expect(moved.decisions).toMatchObject([
      { kind: 'scheduleReduction', from: 4, to: 7, rule: 'adjustScheduleAtRenewal' },
    ]);
    const same = decide(input({ demand: surplus, supply: [pc({ scheduledRenewalQuantity: 4 })] }));
    expect(same.decisions).toEqual([]);
  });

  it('does not shrink on a just-in-time trigger, nor distributor or EA seats', () => {
    const jit = decide(
      input({
        demand: surplus,
        trigger: 'justInTime',
        supply: [pc({ lots: [{ quantity: 10, reducibleUntil: hours(5) }] })],
      }),
    );
    expect(jit.decisions).toEqual([]);
    const other = decide(
      input({
        demand: surplus,
        supply: [pc({ source: 'distributor' }), pc({ source: 'ea', subscriptionId: 'g' })],
      }),
    );
    expect(other.decisions).toEqual([]);
  });
});

describe('autoscale guardrails and idempotency', () => {
  const short = { skuId: sku, assigned: 12, held: 0, reservedStarters: 0, scheduledLeavers: 0 };

  it('decides nothing when off, records only when recommending or in a dry run, and the kill switch withholds', () => {
    expect(decide(input({ demand: short }, { mode: 'off' })).decisions).toEqual([]);
    expect(decide(input({ demand: short }, { mode: 'recommend' })).decisions).toMatchObject([
      { status: 'recommend' },
    ]);
    expect(decide(input({ demand: short }, { dryRun: true })).decisions[0]?.reason).toMatch(/^dry run/);
    expect(decide(input({ demand: short, killSwitch: true })).decisions).toMatchObject([
      { status: 'withheld', rule: 'killSwitch' },
    ]);
  });

  it('gives the same key for the same state (a duplicate or retried sweep) and a new one once the ledger moved', () => {
    const a = decide(input({ demand: short })).decisions[0];
    const b = decide(input({ demand: short })).decisions[0];
    expect(a?.idempotencyKey).toBe(b?.idempotencyKey);
    const after = decide(
      input({ demand: { ...short, assigned: 14 }, supply: [pc({ quantity: 12, basis: 'entry-2' })] }),
    ).decisions[0];
    expect(after?.idempotencyKey).not.toBe(a?.idempotencyKey);
    expect(after?.idempotencyKey).toContain('entry-2');
  });
});

describe('autoscale term policy', () => {
  const monthly = (over: Partial<SupplyLine> = {}): SupplyLine =>
    pc({
      subscriptionId: 'sub-monthly',
      term: 'P1M',
      quantity: 30,
      // Renewed an hour ago: the whole renewal lot is inside its 168-hour window.
      lots: [{ quantity: 30, reducibleUntil: hours(167) }],
      ...over,
    });
  const demand = { skuId: sku, assigned: 40, held: 0, reservedStarters: 0, scheduledLeavers: 0 };

  it('moves half the minimum of demand stable for 56 days from open monthly seats to the annual line', () => {
    const { decisions } = decide(
      input({ demand, supply: [pc(), monthly()], history: { days: 56, min: 38, max: 41 } }),
    );
    // 50 % of 38 = 19 annual seats: the annual line has 10, so 9 move; seats in total stay 40.
    expect(decisions).toMatchObject([
      { kind: 'grow', subscriptionId: 'sub-annual', from: 10, to: 19, rule: 'stableDemandToAnnual' },
      { kind: 'reduce', subscriptionId: 'sub-monthly', from: 30, to: 21, rule: 'movedToAnnual' },
    ]);
    expect(decisions[0]?.reason).toContain('between 38 and 41 for 56 days');
    expect(decisions[1]?.figures).toMatchObject({ movedToAnnual: 9, taken: 0 });
  });

  it('keeps growth monthly while demand swings more than the policy allows or has too little history', () => {
    const swinging = decide(
      input({ demand, supply: [pc(), monthly()], history: { days: 56, min: 30, max: 41 } }),
    );
    expect(swinging.decisions).toEqual([]);
    const young = decide(
      input({ demand, supply: [pc(), monthly()], history: { days: 20, min: 40, max: 40 } }),
    );
    expect(young.decisions).toEqual([]);
    const none = decide(input({ demand, supply: [pc(), monthly()] }));
    expect(none.decisions).toEqual([]);
  });

  it('moves only as many seats as the monthly line can still give back inside a window', () => {
    const { decisions } = decide(
      input({
        demand,
        supply: [pc(), monthly({ lots: [{ quantity: 4, reducibleUntil: hours(20) }] })],
        history: { days: 60, min: 40, max: 40 },
      }),
    );
    expect(decisions).toMatchObject([
      { kind: 'grow', from: 10, to: 14 },
      { kind: 'reduce', from: 30, to: 26, rule: 'movedToAnnual' },
    ]);
    const closed = decide(
      input({
        demand,
        supply: [pc(), monthly({ lots: [{ quantity: 4, reducibleUntil: hours(-1) }] })],
        history: { days: 60, min: 40, max: 40 },
      }),
    );
    expect(closed.decisions).toEqual([]);
  });

  it('waits for approval above the threshold and then gives no monthly seat back', () => {
    const { decisions } = decide(
      input(
        { demand, supply: [pc(), monthly()], history: { days: 56, min: 40, max: 40 } },
        { approval: { aboveSeats: 5 } },
      ),
    );
    expect(decisions).toMatchObject([{ kind: 'grow', status: 'pendingApproval', from: 10, to: 20 }]);
  });

  it('does not reduce the annual line in the decision that buys on it, and gives surplus back from monthly', () => {
    const { decisions } = decide(
      input({
        demand: { ...demand, assigned: 38 },
        supply: [pc({ lots: [{ quantity: 1, reducibleUntil: hours(100) }] }), monthly()],
        history: { days: 56, min: 38, max: 40 },
      }),
    );
    expect(decisions.filter((d) => d.subscriptionId === 'sub-annual')).toMatchObject([
      { kind: 'grow', from: 10, to: 19 },
    ]);
    // 9 moved and the 2 surplus seats go back from the monthly line in one absolute change.
    expect(decisions.filter((d) => d.subscriptionId === 'sub-monthly')).toMatchObject([
      { kind: 'reduce', from: 30, to: 19, rule: 'movedToAnnual' },
    ]);
  });
});

describe('autoscale growth at the offer maximum', () => {
  it('fills the monthly line to the offer maximum, spills the rest onto the annual line, and withholds what neither holds', () => {
    const monthly = pc({ subscriptionId: 'sub-monthly', term: 'P1M', quantity: 40, maximumQuantity: 300 });
    const annual = pc({ quantity: 39, maximumQuantity: 300 });
    const spill = decide(
      input({
        demand: { skuId: sku, assigned: 79, held: 0, reservedStarters: 299, scheduledLeavers: 0 },
        supply: [annual, monthly],
      }),
    );
    expect(spill.decisions).toMatchObject([
      {
        kind: 'grow',
        subscriptionId: 'sub-monthly',
        from: 40,
        to: 300,
        rule: 'growToTarget',
        status: 'apply',
      },
      { kind: 'grow', subscriptionId: 'sub-annual', from: 39, to: 78, rule: 'growSpillsOverMaximum' },
    ]);
    const full = decide(
      input({
        demand: { skuId: sku, assigned: 600, held: 10, reservedStarters: 0, scheduledLeavers: 0 },
        supply: [pc({ quantity: 300, maximumQuantity: 300 }), { ...monthly, quantity: 300 }],
      }),
    );
    expect(full.decisions).toMatchObject([
      { kind: 'grow', status: 'withheld', rule: 'subscriptionMaximum', from: 300, to: 310 },
    ]);
    expect(full.decisions[0]?.reason).toContain("offer's maximum");
  });
});

describe('autoscale schedules after a reduction', () => {
  it('brings a next-term quantity above what the line now holds down to it, saying why', () => {
    const { decisions } = decide(
      input({
        demand: { skuId: sku, assigned: 8, held: 0, reservedStarters: 0, scheduledLeavers: 0 },
        supply: [pc({ quantity: 8, scheduledRenewalQuantity: 9 })],
      }),
    );
    expect(decisions).toMatchObject([
      { kind: 'withdrawSchedule', from: 9, to: 8, rule: 'scheduleAboveQuantity' },
    ]);
  });
});

describe('autoscale headroom while shrinking', () => {
  const demand = { skuId: sku, assigned: 10, held: 0, reservedStarters: 0, scheduledLeavers: 0 };
  it('keeps no headroom for a customer with more known leavers than starters, or well below its recent peak', () => {
    const policy = autoscalePolicySchema.parse({ headroom: { seats: 3 } });
    expect(figuresOf(policy, demand, [])).toMatchObject({ headroom: 3, target: 13, shrinking: 0 });
    expect(figuresOf(policy, { ...demand, scheduledLeavers: 2 }, [])).toMatchObject({
      headroom: 0,
      target: 10,
      shrinking: 1,
    });
    // 10 now after a peak of 16 in the window (more than the 10 % swing): shrinking.
    expect(figuresOf(policy, demand, [], { days: 56, min: 10, max: 16 })).toMatchObject({
      headroom: 0,
      shrinking: 1,
    });
    expect(figuresOf(policy, demand, [], { days: 56, min: 10, max: 11 })).toMatchObject({ headroom: 3 });
  });

  it('says so in the reason of a purchase', () => {
    const { decisions } = decide(
      input(
        {
          demand: { ...demand, assigned: 12, scheduledLeavers: 1 },
          supply: [pc({ quantity: 10 })],
        },
        { headroom: { seats: 3 } },
      ),
    );
    expect(decisions).toMatchObject([{ kind: 'grow', from: 10, to: 12 }]);
    expect(decisions[0]?.reason).toContain('none while shrinking');
  });
});
