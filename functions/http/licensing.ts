import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { AppError } from '../../shared/errors.js';
import {
  decisionInputSchema,
  labelInputSchema,
  licensingSourcesInputSchema,
  purchaseRequestInputSchema,
} from '../../shared/usecases/licensing.js';
import { httpFunction } from './endpoint.js';

/** Licence sources, the seat ledger and purchase requests (issue 13). */

const customerParams = z.object({ customerId: customerIdSchema });
const opaqueId = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'an id (letters, digits, . _ : -)');
const idempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,128}$/);

function idempotencyKeyOf(headers: Headers): string | undefined {
  const key = headers.get('idempotency-key') ?? undefined;
  if (key !== undefined && !idempotencyKeySchema.safeParse(key).success) {
    throw new AppError('Validation', 'Idempotency-Key must be printable ASCII, at most 128 characters', {
      details: {
        errors: [{ path: 'headers.Idempotency-Key', message: 'printable ASCII, ≤ 128 characters' }],
      },
    });
  }
  return key;
}

const tags = ['licensing'];

export const putLicensingSources = httpFunction({
  name: 'licensing-sources-put',
  route: 'customers/{customerId}/licensing/sources',
  method: 'PUT',
  summary:
    "The customer's licence sources: Partner Center customer id (1-Tier), distributor company id (2-Tier), assignment policy",
  tags,
  auth: 'caller',
  params: customerParams,
  body: licensingSourcesInputSchema,
  responses: { 200: { description: 'The sources as stored, with the connectors this provider has' } },
  async handle({ caller, params: { customerId }, body, deps }) {
    return { status: 200, body: await deps.licensing.putSources(caller, customerId, body) };
  },
});

export const getLicensingSources = httpFunction({
  name: 'licensing-sources-get',
  route: 'customers/{customerId}/licensing/sources',
  method: 'GET',
  summary: "The customer's licence sources and which connectors this provider has (never credentials)",
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The sources' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: await deps.licensing.getSources(caller, customerId) };
  },
});

export const runLicensingImport = httpFunction({
  name: 'licensing-import',
  route: 'customers/{customerId}/licensing/imports',
  method: 'POST',
  summary:
    'Read Partner Center, the distributor and Graph; append a ledger entry per change (resumable by Idempotency-Key)',
  tags,
  auth: 'caller',
  params: customerParams,
  requestHeaders: {
    'Idempotency-Key': { description: 'The import id: repeating it resumes (or returns) the same import' },
  },
  responses: { 200: { description: 'The import record with its progress per source' } },
  async handle({ caller, params: { customerId }, headers, deps }) {
    const key = idempotencyKeyOf(headers);
    return {
      status: 200,
      body: await deps.licensing.runImport(
        caller,
        customerId,
        key === undefined ? {} : { importId: key.replace(/[^A-Za-z0-9._:-]/g, '_') },
      ),
    };
  },
});

export const getLicensingImport = httpFunction({
  name: 'licensing-import-get',
  route: 'customers/{customerId}/licensing/imports/{importId}',
  method: 'GET',
  summary: 'An import and its progress',
  tags,
  auth: 'caller',
  params: customerParams.extend({ importId: opaqueId }),
  responses: { 200: { description: 'The import record' } },
  async handle({ caller, params: { customerId, importId }, deps }) {
    return { status: 200, body: await deps.licensing.getImport(caller, customerId, importId) };
  },
});

export const getLicensing = httpFunction({
  name: 'licensing-get',
  route: 'customers/{customerId}/licensing',
  method: 'GET',
  summary:
    'Per SKU: supply by source, Graph units, assigned, free, operations waiting for a seat, differences explained',
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The reconciliation' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: await deps.licensing.licensing(caller, customerId) };
  },
});

export const listLicensingSubscriptions = httpFunction({
  name: 'licensing-subscriptions',
  route: 'customers/{customerId}/subscriptions',
  method: 'GET',
  summary: "The customer's subscriptions: Graph's, each with the source it is matched or labelled to",
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The subscriptions' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: await deps.licensing.subscriptions(caller, customerId) };
  },
});

export const putSubscriptionLabel = httpFunction({
  name: 'licensing-subscription-label',
  route: 'customers/{customerId}/subscriptions/{subscriptionId}/label',
  method: 'PUT',
  summary: 'Label a Graph-only subscription as Enterprise Agreement or third party (with the reseller)',
  tags,
  auth: 'caller',
  params: customerParams.extend({ subscriptionId: opaqueId }),
  body: labelInputSchema,
  responses: { 200: { description: 'The label' } },
  async handle({ caller, params: { customerId, subscriptionId }, body, deps }) {
    return { status: 200, body: await deps.licensing.label(caller, customerId, subscriptionId, body) };
  },
});

export const getRenewals = httpFunction({
  name: 'licensing-renewals',
  route: 'customers/{customerId}/licensing/renewals',
  method: 'GET',
  summary: 'Terms ending in the next N days, what will happen, and alerts only where a person is needed',
  tags,
  auth: 'caller',
  params: customerParams,
  query: z.object({ days: z.coerce.number().int().min(1).max(1100).default(30) }),
  responses: { 200: { description: 'The renewals' } },
  async handle({ caller, params: { customerId }, query, deps }) {
    return { status: 200, body: await deps.licensing.renewals(caller, customerId, query.days) };
  },
});

export const createPurchaseRequest = httpFunction({
  name: 'purchase-request-create',
  route: 'customers/{customerId}/purchase-requests',
  method: 'POST',
  summary: 'Ask for seats (what, how many, why, for whom); nothing changes until it is approved',
  tags,
  auth: 'caller',
  params: customerParams,
  body: purchaseRequestInputSchema,
  requestHeaders: {
    'Idempotency-Key': { description: 'Repeat safely: the same key returns the same request' },
  },
  responses: {
    201: { description: 'The pending request with the demand figures' },
    200: { description: 'A replay of an earlier request with the same Idempotency-Key' },
    409: { description: 'EA / third-party seats are never bought or reduced: the shortage report' },
  },
  async handle({ caller, params: { customerId }, body, headers, deps }) {
    const { request, created } = await deps.licensing.createRequest(
      caller,
      customerId,
      body,
      idempotencyKeyOf(headers),
    );
    return { status: created ? 201 : 200, body: request };
  },
});

export const listPurchaseRequests = httpFunction({
  name: 'purchase-request-list',
  route: 'customers/{customerId}/purchase-requests',
  method: 'GET',
  summary: "The customer's purchase requests",
  tags,
  auth: 'caller',
  params: customerParams,
  responses: { 200: { description: 'The requests' } },
  async handle({ caller, params: { customerId }, deps }) {
    return { status: 200, body: await deps.licensing.listRequests(caller, customerId) };
  },
});

const requestParams = customerParams.extend({ requestId: opaqueId });

export const approvePurchaseRequest = httpFunction({
  name: 'purchase-request-approve',
  route: 'customers/{customerId}/purchase-requests/{requestId}/approve',
  method: 'POST',
  summary: 'Approve: with a connector the change goes to the source once; the ledger records it',
  tags,
  auth: 'caller',
  params: requestParams,
  body: decisionInputSchema,
  responses: { 200: { description: 'The applied request' } },
  async handle({ caller, params: { customerId, requestId }, body, deps }) {
    return {
      status: 200,
      body: await deps.licensing.approve(caller, customerId, requestId, body.note),
    };
  },
});

export const rejectPurchaseRequest = httpFunction({
  name: 'purchase-request-reject',
  route: 'customers/{customerId}/purchase-requests/{requestId}/reject',
  method: 'POST',
  summary: 'Reject a pending purchase request (nothing changes)',
  tags,
  auth: 'caller',
  params: requestParams,
  body: decisionInputSchema,
  responses: { 200: { description: 'The rejected request' } },
  async handle({ caller, params: { customerId, requestId }, body, deps }) {
    return { status: 200, body: await deps.licensing.reject(caller, customerId, requestId, body.note) };
  },
});

export const licensingFunctions = [
  putLicensingSources,
  getLicensingSources,
  runLicensingImport,
  getLicensingImport,
  getLicensing,
  listLicensingSubscriptions,
  putSubscriptionLabel,
  getRenewals,
  createPurchaseRequest,
  listPurchaseRequests,
  approvePurchaseRequest,
  rejectPurchaseRequest,
];
