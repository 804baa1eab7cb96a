import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { pageQuerySchema } from '../../shared/usecases/paging.js';
import {
  approveRequestSchema,
  itemKindSchema,
  resolveCaseRequestSchema,
  startOnboardingRequestSchema,
  toResolution,
} from '../../shared/usecases/onboarding.js';
import { httpFunction } from './endpoint.js';
import { pagedBody } from './paging.js';

/** Onboarding an existing tenant, Tenant Connect, and the drift sync (issue 16). */

const customerParams = z.object({ customerId: customerIdSchema });

/** Delta links are Graph's state tokens: kept server-side, never shown. */
function withoutLinks<T extends { deltaLink?: string; groupsDeltaLink?: string }>(
  value: T,
): Omit<T, 'deltaLink' | 'groupsDeltaLink'> {
  const { deltaLink: _users, groupsDeltaLink: _groups, ...rest } = value;
  void _users;
  void _groups;
  return rest;
}
const tags = ['onboarding'];

export const startOnboarding = httpFunction({
  name: 'onboarding-start',
  route: 'customers/{customerId}/onboarding',
  method: 'POST',
  summary:
    "Onboard (or Tenant Connect) the customer's existing tenant: check access, import, match, stop at a dry-run diff",
  tags,
  auth: 'caller',
  params: customerParams,
  body: startOnboardingRequestSchema,
  responses: {
    202: { description: 'The onboarding job (its read is queued on onboarding-work; GET it for progress)' },
    403: { description: 'Atria cannot read the tenant: what to do (admin consent or GDAP)' },
  },
  async handle({ caller, params: { customerId }, body, deps }) {
    return {
      status: 202,
      body: withoutLinks(await deps.onboarding.start(caller, customerId, body.tenantId)),
    };
  },
});

export const getOnboarding = httpFunction({
  name: 'onboarding-get',
  route: 'customers/{customerId}/onboarding',
  method: 'GET',
  summary: "The customer's current onboarding: state, progress (read, matched, cases, pending), tenant facts",
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The onboarding job' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: withoutLinks(await deps.onboarding.get(caller, customerId)) };
  },
});

export const listOnboardingItems = httpFunction({
  name: 'onboarding-items',
  route: 'customers/{customerId}/onboarding/items',
  method: 'GET',
  summary:
    'The dry-run diff: matched, cases, only in the cloud, only local, with attribute differences (paged)',
  tags,
  auth: 'caller',
  params: customerParams,
  query: pageQuerySchema.extend({ kind: itemKindSchema.optional() }),
  responses: { 200: { description: '{ value, nextLink }' } },
  async handle({ caller, params: { customerId }, query, deps }) {
    const page = await deps.onboarding.listItems(caller, customerId, query);
    return { status: 200, body: pagedBody(`customers/${customerId}/onboarding/items`, query, page) };
  },
});

export const listOnboardingGroups = httpFunction({
  name: 'onboarding-groups',
  route: 'customers/{customerId}/onboarding/groups',
  method: 'GET',
  summary: "The tenant's groups as onboarding read them, each with its members' Entra object ids (paged)",
  tags,
  auth: 'caller',
  params: customerParams,
  query: pageQuerySchema,
  responses: { 200: { description: '{ value, nextLink }' } },
  async handle({ caller, params: { customerId }, query, deps }) {
    const page = await deps.onboarding.listGroups(caller, customerId, query);
    return { status: 200, body: pagedBody(`customers/${customerId}/onboarding/groups`, query, page) };
  },
});

export const approveOnboarding = httpFunction({
  name: 'onboarding-approve',
  route: 'customers/{customerId}/onboarding/approve',
  method: 'POST',
  summary: 'Approve the dry run (all items, or the named ones): write the links, stamp anchors, create users',
  tags,
  auth: 'caller',
  params: customerParams,
  body: approveRequestSchema,
  responses: { 200: { description: 'The job afterwards (completed once no item is pending)' } },
  async handle({ caller, params: { customerId }, body, deps }) {
    return { status: 200, body: withoutLinks(await deps.onboarding.approve(caller, customerId, body.items)) };
  },
});

export const listOnboardingCases = httpFunction({
  name: 'onboarding-cases',
  route: 'customers/{customerId}/onboarding/cases',
  method: 'GET',
  summary: 'Users a person must decide (below the definite score, ambiguous, or admins), paged',
  tags,
  auth: 'caller',
  params: customerParams,
  query: pageQuerySchema,
  responses: { 200: { description: '{ value, nextLink }' } },
  async handle({ caller, params: { customerId }, query, deps }) {
    const page = await deps.onboarding.listCases(caller, customerId, query);
    return { status: 200, body: pagedBody(`customers/${customerId}/onboarding/cases`, query, page) };
  },
});

export const resolveOnboardingCase = httpFunction({
  name: 'onboarding-case-resolve',
  route: 'customers/{customerId}/onboarding/cases/{caseId}/resolve',
  method: 'POST',
  summary: 'Resolve a case: link to an Atria user, create a new one, or ignore',
  tags,
  auth: 'caller',
  params: customerParams.extend({ caseId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/) }),
  body: resolveCaseRequestSchema,
  responses: { 200: { description: 'The case with its resolution (applied at once after approval)' } },
  async handle({ caller, params: { customerId, caseId }, body, deps }) {
    return {
      status: 200,
      body: await deps.onboarding.resolveCase(caller, customerId, caseId, toResolution(body)),
    };
  },
});

export const getSync = httpFunction({
  name: 'onboarding-sync-get',
  route: 'customers/{customerId}/onboarding/sync',
  method: 'GET',
  summary: "The customer's drift sync: last pass, a held pass (delete guard), failed objects",
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The sync state (the delta link is never shown)' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: withoutLinks(await deps.onboarding.getSync(caller, customerId)) };
  },
});

export const runSync = httpFunction({
  name: 'onboarding-sync-run',
  route: 'customers/{customerId}/onboarding/sync',
  method: 'POST',
  summary: 'Run one drift pass now (what the timer does every 30 minutes)',
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The pass: held (delete guard), full resync, counts' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: await deps.onboarding.syncNow(caller, customerId) };
  },
});

export const confirmSyncDeletions = httpFunction({
  name: 'onboarding-sync-confirm',
  route: 'customers/{customerId}/onboarding/sync/confirm',
  method: 'POST',
  summary:
    'Confirm the deletions a held pass found (the accidental-delete guard); the next pass applies them',
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The sync state, confirmed' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: withoutLinks(await deps.onboarding.confirmDeletions(caller, customerId)) };
  },
});

export const onboardingFunctions = [
  startOnboarding,
  getOnboarding,
  listOnboardingItems,
  listOnboardingGroups,
  approveOnboarding,
  listOnboardingCases,
  resolveOnboardingCase,
  getSync,
  runSync,
  confirmSyncDeletions,
];
