import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { AppError } from '../../shared/errors.js';
import {
  autoRenewInputSchema,
  buyInputSchema,
  cancelInputSchema,
  quantityInputSchema,
} from '../../shared/usecases/subscriptions.js';
import { httpFunction } from './endpoint.js';

/** Buying and changing Partner Center subscriptions (1-Tier, issue 14); each is a commerce operation. */

const customerParams = z.object({ customerId: customerIdSchema });
const subscriptionParams = customerParams.extend({ subscriptionId: z.guid() });
const operationParams = z.object({ operationId: z.guid() });
const idempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,128}$/);

function idempotencyKeyOf(headers: Headers): string | undefined {
  const key = headers.get('idempotency-key') ?? undefined;
  if (key !== undefined && !idempotencyKeySchema.safeParse(key).success)
    throw new AppError('Validation', 'Idempotency-Key must be printable ASCII, at most 128 characters', {
      details: {
        errors: [{ path: 'headers.Idempotency-Key', message: 'printable ASCII, ≤ 128 characters' }],
      },
    });
  return key;
}

const tags = ['subscriptions'];
const idempotencyHeader = {
  'Idempotency-Key': {
    description: 'Repeat safely: the same key returns the same operation (never a second buy)',
  },
};

export const buySubscription = httpFunction({
  name: 'subscription-buy',
  route: 'customers/{customerId}/subscriptions',
  method: 'POST',
  summary:
    'Buy an offer through Partner Center (catalog looked up now; spend caps and approval threshold apply; dryRun shows price)',
  tags,
  auth: 'caller',
  params: customerParams,
  body: buyInputSchema,
  requestHeaders: idempotencyHeader,
  responses: {
    202: { description: 'The purchase operation (steps: catalog, spend, checkout, provisioning, ledger)' },
    200: {
      description: 'dryRun: what would be bought and at what price; or a replay of the same Idempotency-Key',
    },
    409: { description: 'A spend cap would be exceeded, or the customer has no Partner Center customer' },
  },
  async handle({ caller, params: { customerId }, body, headers, deps }) {
    const result = await deps.subscriptions.buy(caller, customerId, body, idempotencyKeyOf(headers));
    if (result.kind === 'dryRun') return { status: 200, body: result.body };
    return { status: result.created ? 202 : 200, body: result.body };
  },
});

const changeResponses = {
  202: { description: 'The change operation' },
  200: { description: 'Nothing to change, or a replay of the same Idempotency-Key' },
  409: { description: 'New Commerce forbids it now (the reason and figures say why)' },
};

type ChangeResult =
  { kind: 'unchanged'; body: unknown } | { kind: 'operation'; created: boolean; body: unknown };
const changeAnswer = (result: ChangeResult) =>
  result.kind === 'unchanged'
    ? { status: 200, body: result.body }
    : { status: result.created ? 202 : 200, body: result.body };

export const changeSubscriptionQuantity = httpFunction({
  name: 'subscription-quantity',
  route: 'customers/{customerId}/subscriptions/{subscriptionId}/quantity',
  method: 'POST',
  summary:
    'Change seats: up at any time; down within the open 168-hour lots, otherwise scheduled for the next term',
  tags,
  auth: 'caller',
  params: subscriptionParams,
  body: quantityInputSchema,
  requestHeaders: idempotencyHeader,
  responses: changeResponses,
  async handle({ caller, params: { customerId, subscriptionId }, body, headers, deps }) {
    return changeAnswer(
      await deps.subscriptions.changeQuantity(
        caller,
        customerId,
        subscriptionId,
        body,
        idempotencyKeyOf(headers),
      ),
    );
  },
});

export const cancelSubscription = httpFunction({
  name: 'subscription-cancel',
  route: 'customers/{customerId}/subscriptions/{subscriptionId}/cancel',
  method: 'POST',
  summary: 'Cancel within the 168-hour cancellation window (refused after it, with the date)',
  tags,
  auth: 'caller',
  params: subscriptionParams,
  body: cancelInputSchema,
  requestHeaders: idempotencyHeader,
  responses: changeResponses,
  async handle({ caller, params: { customerId, subscriptionId }, body, headers, deps }) {
    return changeAnswer(
      await deps.subscriptions.cancel(caller, customerId, subscriptionId, body, idempotencyKeyOf(headers)),
    );
  },
});

export const setSubscriptionAutoRenew = httpFunction({
  name: 'subscription-auto-renew',
  route: 'customers/{customerId}/subscriptions/{subscriptionId}/auto-renew',
  method: 'POST',
  summary: 'Turn auto-renew on or off',
  tags,
  auth: 'caller',
  params: subscriptionParams,
  body: autoRenewInputSchema,
  requestHeaders: idempotencyHeader,
  responses: changeResponses,
  async handle({ caller, params: { customerId, subscriptionId }, body, headers, deps }) {
    return changeAnswer(
      await deps.subscriptions.setAutoRenew(
        caller,
        customerId,
        subscriptionId,
        body,
        idempotencyKeyOf(headers),
      ),
    );
  },
});

export const getCommerceOperation = httpFunction({
  name: 'commerce-operation-get',
  route: 'commerce-operations/{operationId}',
  method: 'GET',
  summary: 'A purchase, subscription change or tenant creation: its steps, state and errors',
  tags,
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'The operation' } },
  async handle({ caller, params: { operationId }, deps }) {
    return { status: 200, body: await deps.subscriptions.getOperation(caller, operationId) };
  },
});

export const approveCommerceOperation = httpFunction({
  name: 'commerce-operation-approve',
  route: 'commerce-operations/{operationId}/approve',
  method: 'POST',
  summary: 'Approve a buy held above the approval threshold (it then runs)',
  tags,
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'The operation after its run' } },
  async handle({ caller, params: { operationId }, deps }) {
    return { status: 200, body: await deps.subscriptions.approve(caller, operationId) };
  },
});

export const cancelCommerceOperation = httpFunction({
  name: 'commerce-operation-cancel',
  route: 'commerce-operations/{operationId}/cancel',
  method: 'POST',
  summary: 'Drop an operation none of whose steps has started (e.g. a buy held for approval)',
  tags,
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'The cancelled operation' } },
  async handle({ caller, params: { operationId }, deps }) {
    return { status: 200, body: await deps.subscriptions.cancelOperation(caller, operationId) };
  },
});

export const subscriptionFunctions = [
  buySubscription,
  changeSubscriptionQuantity,
  cancelSubscription,
  setSubscriptionAutoRenew,
  getCommerceOperation,
  approveCommerceOperation,
  cancelCommerceOperation,
];
