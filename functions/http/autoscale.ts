import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { autoscalePolicyInputSchema } from '../../shared/usecases/autoscale.js';
import { httpFunction } from './endpoint.js';

/** Seat autoscaling (issue 15): the per-customer policy, the decisions with their reasons, approvals. */

const customerParams = z.object({ customerId: customerIdSchema });
const decisionParams = customerParams.extend({
  decisionId: z.string().regex(/^[0-9a-f]{32}$/, 'a decision id (32 hex digits)'),
});
const tags = ['licensing'];

export const putAutoscalePolicy = httpFunction({
  name: 'autoscale-policy-put',
  route: 'customers/{customerId}/licensing/autoscale',
  method: 'PUT',
  summary:
    'The autoscale policy: mode off/recommend/auto, dry run, headroom, caps on seats and spend, approval threshold, seat prices',
  tags,
  auth: 'caller',
  params: customerParams,
  body: autoscalePolicyInputSchema,
  responses: { 200: { description: 'The policy as stored' } },
  async handle({ caller, params: { customerId }, body, deps }) {
    return { status: 200, body: await deps.autoscale.putPolicy(caller, customerId, body) };
  },
});

export const getAutoscalePolicy = httpFunction({
  name: 'autoscale-policy-get',
  route: 'customers/{customerId}/licensing/autoscale',
  method: 'GET',
  summary: 'The autoscale policy (mode off until one is set)',
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The policy' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: await deps.autoscale.getPolicy(caller, customerId) };
  },
});

export const listAutoscaleDecisions = httpFunction({
  name: 'autoscale-decisions-list',
  route: 'customers/{customerId}/licensing/decisions',
  method: 'GET',
  summary:
    'Every autoscale decision, newest first: bought, reduced, scheduled, withheld by a cap, waiting for approval, with its reason in words and figures',
  tags,
  auth: 'caller',
  params: customerParams,
  query: z.object({
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().max(200).optional(),
  }),
  responses: { 200: { description: '{ value, nextLink }' } },
  async handle({ caller, params: { customerId }, query, deps }) {
    return {
      status: 200,
      body: await deps.autoscale.listDecisions(caller, customerId, query.limit, query.cursor),
    };
  },
});

export const approveAutoscaleDecision = httpFunction({
  name: 'autoscale-decision-approve',
  route: 'customers/{customerId}/licensing/decisions/{decisionId}/approve',
  method: 'POST',
  summary: 'Approve a change waiting for approval: it is applied once (409 if the subscription moved since)',
  tags,
  auth: 'caller',
  params: decisionParams,
  responses: { 200: { description: 'The applied decision' } },
  async handle({ caller, params: { customerId, decisionId }, deps }) {
    return { status: 200, body: await deps.autoscale.approve(caller, customerId, decisionId) };
  },
});

export const autoscaleFunctions = [
  putAutoscalePolicy,
  getAutoscalePolicy,
  listAutoscaleDecisions,
  approveAutoscaleDecision,
];
