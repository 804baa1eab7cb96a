/**
 * Pure rules for 1-Tier onboarding and buying (issue 14): what an operation is about, what a purchase
 * costs and whether the spend caps and approval threshold let it through, how a seat change is made
 * under New Commerce, and alternatives for a taken initial domain.
 */

export const commerceOperationKinds = [
  'subscription.buy',
  'subscription.quantity',
  'subscription.cancel',
  'subscription.autoRenew',
  'tenant.create',
  'domain.add',
  'gdap.relationship',
] as const;
export type CommerceOperationKind = (typeof commerceOperationKinds)[number];

export interface SpendCaps {
  dailyPerProvider: number;
  dailyPerCustomer: number;
  approvalThreshold: number;
}

export interface SpendSoFar {
  /** Reserved today (UTC) by this provider's buys, and by this customer's. */
  provider: number;
  customer: number;
}

export type SpendDecision =
  | { kind: 'allowed'; needsApproval: boolean; reason: string | undefined }
  | { kind: 'refused'; reason: string; figures: Record<string, number> };

/**
 * A buy is refused when it would take today's spend of the provider or of the customer past its cap;
 * it waits for a person when it costs more than the threshold or its price is unknown (the cost of a
 * buy we cannot price cannot be judged by a rule).
 */
export function judgeSpend(amount: number | undefined, caps: SpendCaps, sofar: SpendSoFar): SpendDecision {
  const cost = amount ?? 0;
  if (sofar.provider + cost > caps.dailyPerProvider)
    return {
      kind: 'refused',
      reason: `today's purchases for this provider would reach ${round(sofar.provider + cost)}, above the daily cap of ${caps.dailyPerProvider}`,
      figures: { amount: round(cost), spentToday: round(sofar.provider), cap: caps.dailyPerProvider },
    };
  if (sofar.customer + cost > caps.dailyPerCustomer)
    return {
      kind: 'refused',
      reason: `today's purchases for this customer would reach ${round(sofar.customer + cost)}, above the daily cap of ${caps.dailyPerCustomer}`,
      figures: { amount: round(cost), spentToday: round(sofar.customer), cap: caps.dailyPerCustomer },
    };
  if (amount === undefined)
    return { kind: 'allowed', needsApproval: true, reason: 'the catalog has no price for this offer' };
  if (amount > caps.approvalThreshold)
    return {
      kind: 'allowed',
      needsApproval: true,
      reason: `${round(amount)} is above the approval threshold of ${caps.approvalThreshold}`,
    };
  return { kind: 'allowed', needsApproval: false, reason: undefined };
}

/** What one billing period of the line costs at list price. */
export function purchaseAmount(unitPrice: number | undefined, quantity: number): number | undefined {
  return unitPrice === undefined ? undefined : round(unitPrice * quantity);
}

export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

const round = (n: number): number => Math.round(n * 100) / 100;

export type SeatChangePlan =
  | { kind: 'none' }
  | { kind: 'increase'; by: number }
  /** Within the open lots: Partner Center takes them back now (prorated refund). */
  | { kind: 'decrease'; by: number }
  /** More than the open lots allow: the count changes at renewal (scheduledNextTermInstructions). */
  | { kind: 'atRenewal'; quantity: number; reducibleNow: number }
  | { kind: 'refused'; reason: string; figures: Record<string, number | string> };

/**
 * NCE: seats can be added at any time; removed only from lots whose 168-hour window is still open;
 * otherwise the new count is scheduled for the next term, which needs auto-renew on (a subscription
 * that will not renew has no next term). Source: Partner Center change-the-quantity-of-a-subscription.md,
 * create-scheduled-changes.md.
 */
export function planSeatChange(input: {
  current: number;
  target: number;
  reducibleNow: number;
  autoRenewEnabled: boolean;
  status: string;
  commitmentEndDate: Date | undefined;
}): SeatChangePlan {
  if (input.status !== 'active')
    return {
      kind: 'refused',
      reason: `the subscription is ${input.status}; only an active subscription can change seats`,
      figures: { status: input.status },
    };
  if (input.target === input.current) return { kind: 'none' };
  if (input.target > input.current) return { kind: 'increase', by: input.target - input.current };
  const by = input.current - input.target;
  if (by <= input.reducibleNow) return { kind: 'decrease', by };
  if (!input.autoRenewEnabled)
    return {
      kind: 'refused',
      reason: `only ${input.reducibleNow} seat(s) are still within their 168-hour window, and a change at renewal needs auto-renew on (it is off): turn it on first, or reduce by at most ${input.reducibleNow}`,
      figures: { current: input.current, requested: input.target, reducibleNow: input.reducibleNow },
    };
  return { kind: 'atRenewal', quantity: input.target, reducibleNow: input.reducibleNow };
}

/**
 * Alternatives for a taken initial domain prefix (`contoso` → `contosoltd`, `contoso1`, …), each a
 * valid `.onmicrosoft.com` label: letters and digits, at most 27 characters (create-a-customer.md
 * documents the domain prefix; the length is Microsoft 365's limit for the initial domain).
 */
export function domainAlternatives(prefix: string, count = 5): string[] {
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 24);
  const candidates = [`${base}ltd`, `${base}inc`, `${base}hq`, `${base}group`, `${base}online`];
  for (let n = 1; candidates.length < count + 5; n++) candidates.push(`${base}${n}`);
  return [...new Set(candidates.map((c) => c.slice(0, 27)))].filter((c) => c !== base).slice(0, count);
}

export const initialDomainPrefixPattern = /^[a-z0-9]{1,27}$/;

/**
 * The Microsoft Entra built-in roles (role template ids) atria-m365 asks for in a GDAP relationship,
 * and why each: the least that lets a provider's technicians do what the engine does in a customer
 * tenant. Global Administrator is never asked for (and would forbid auto-extension). Source: Microsoft
 * Entra built-in roles (permissions-reference.md); GDAP least-privilege guidance (gdap-least-privileged-roles-by-task.md).
 */
export const gdapRoles = [
  {
    roleDefinitionId: 'fe930be7-5e62-47db-91af-98c3a49a38b1',
    name: 'User Administrator',
    why: 'create, update, disable, enable and delete users and reset non-admin passwords (user.* operations)',
  },
  {
    roleDefinitionId: '4d6ac14f-3453-41d0-bef9-a3e0c569773a',
    name: 'License Administrator',
    why: 'assign and remove licences and set usageLocation (licence plans)',
  },
  {
    roleDefinitionId: 'fdd7a751-b60b-444a-984c-02652fe8fa1c',
    name: 'Groups Administrator',
    why: 'manage the security groups and memberships Atria provisions',
  },
  {
    roleDefinitionId: '8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2',
    name: 'Hybrid Identity Administrator',
    why: 'configure a hybrid customer’s domain federation to its ADFS (federation and its preflight)',
  },
  {
    roleDefinitionId: '88d8e3e3-8f55-4a1e-953a-9b9898b8876b',
    name: 'Directory Readers',
    why: 'read the organization, domains and subscribed SKUs for reconciliation and preflight checks',
  },
] as const;

/** GDAP relationship states from which approval can still come (the rest end the wait). */
export function gdapWaitState(status: string): 'active' | 'waiting' | 'ended' {
  if (status === 'active') return 'active';
  if (['created', 'approvalPending', 'approved', 'activating'].includes(status)) return 'waiting';
  return 'ended';
}

/** The customer's approval link for a locked relationship (Partner Center's documented invitation URL). */
export function gdapApprovalLink(relationshipId: string): string {
  return `https://admin.microsoft.com/AdminPortal/Home#/partners/invitation/granularAdminRelationships/${relationshipId}`;
}
