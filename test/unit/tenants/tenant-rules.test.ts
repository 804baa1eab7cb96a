import { describe, expect, it } from 'vitest';
import {
  domainAlternatives,
  judgeSpend,
  planSeatChange,
  purchaseAmount,
} from '../../../shared/domain/tenant.js';

const caps = { dailyPerProvider: 1000, dailyPerCustomer: 300, approvalThreshold: 200 };

describe('spend caps and the approval threshold', () => {
  it('lets a cheap buy through without approval', () => {
    expect(judgeSpend(180, caps, { provider: 0, customer: 0 })).toEqual({
      kind: 'allowed',
      needsApproval: false,
      reason: undefined,
    });
  });
  it('holds a buy above the threshold, and one whose price is unknown, for a person', () => {
    expect(judgeSpend(250, caps, { provider: 0, customer: 0 })).toMatchObject({ needsApproval: true });
    expect(judgeSpend(undefined, caps, { provider: 0, customer: 0 })).toMatchObject({
      needsApproval: true,
      reason: 'the catalog has no price for this offer',
    });
  });
  it('refuses a buy that would take the customer or the provider past its daily cap, naming the figures', () => {
    expect(judgeSpend(150, caps, { provider: 0, customer: 200 })).toMatchObject({
      kind: 'refused',
      figures: { amount: 150, spentToday: 200, cap: 300 },
    });
    expect(judgeSpend(150, caps, { provider: 900, customer: 0 })).toMatchObject({
      kind: 'refused',
      figures: { cap: 1000 },
    });
  });
  it('prices one billing period at list price, rounded to cents', () => {
    expect(purchaseAmount(4.8, 3)).toBe(14.4);
    expect(purchaseAmount(undefined, 3)).toBeUndefined();
  });
});

describe('New Commerce seat change plans', () => {
  const base = {
    current: 6,
    reducibleNow: 2,
    autoRenewEnabled: true,
    status: 'active',
    commitmentEndDate: undefined,
  };
  it('adds at any time', () => {
    expect(planSeatChange({ ...base, reducibleNow: 0, target: 9 })).toEqual({ kind: 'increase', by: 3 });
  });
  it('reduces now within the open lots', () => {
    expect(planSeatChange({ ...base, target: 4 })).toEqual({ kind: 'decrease', by: 2 });
  });
  it('schedules a larger reduction for the next term', () => {
    expect(planSeatChange({ ...base, target: 3 })).toEqual({
      kind: 'atRenewal',
      quantity: 3,
      reducibleNow: 2,
    });
  });
  it('refuses it with the reason when auto-renew is off, or the subscription is not active', () => {
    const refused = planSeatChange({ ...base, target: 3, autoRenewEnabled: false });
    expect(refused.kind).toBe('refused');
    expect(refused.kind === 'refused' && refused.reason).toContain('auto-renew');
    expect(planSeatChange({ ...base, target: 7, status: 'suspended' }).kind).toBe('refused');
  });
});

describe('initial domain alternatives', () => {
  it('suggests valid, distinct .onmicrosoft.com prefixes other than the taken one', () => {
    const list = domainAlternatives('Contoso-Ltd');
    expect(list).toHaveLength(5);
    expect(new Set(list).size).toBe(5);
    for (const name of list) expect(name).toMatch(/^[a-z0-9]{1,27}$/);
    expect(list).not.toContain('contosoltd');
  });
});
