import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { visibleOperationSchema } from '../../shared/domain/operation.js';
import { createUserRequestSchema } from '../../shared/domain/user.js';
import { httpFunction } from './endpoint.js';

const operationParams = z.object({ operationId: z.string().min(1).max(128) });

export const getOperation = httpFunction({
  name: 'operations-get',
  route: 'operations/{operationId}',
  method: 'GET',
  summary: 'An operation with its steps, states, timings and errors',
  tags: ['operations'],
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'The operation', schema: visibleOperationSchema } },
  async handle({ caller, params: { operationId }, deps }) {
    return {
      status: 200,
      body: await deps.provisioning.getOperation(caller, operationId),
    };
  },
});

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,2048}$/, 'an opaque cursor from nextLink')
    .optional(),
});

export const listOperations = httpFunction({
  name: 'operations-list',
  route: 'customers/{customerId}/operations',
  method: 'GET',
  summary: "A customer's operations, newest first (paged: follow nextLink)",
  tags: ['operations'],
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  query: listQuery,
  responses: {
    200: {
      description: 'A page of operations',
      schema: z.object({ value: z.array(visibleOperationSchema), nextLink: z.string().optional() }),
    },
  },
  async handle({ caller, params: { customerId }, query, deps }) {
    const page = await deps.provisioning.listOperations(caller, customerId, {
      limit: query.limit,
      ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
    });
    const nextLink =
      page.cursor === undefined
        ? undefined
        : `/api/customers/${customerId}/operations?${new URLSearchParams({ limit: String(query.limit), cursor: page.cursor }).toString()}`;
    return { status: 200, body: { value: page.value, ...(nextLink === undefined ? {} : { nextLink }) } };
  },
});

export const confirmOperation = httpFunction({
  name: 'operations-confirm',
  route: 'operations/{operationId}/confirm',
  method: 'POST',
  summary: 'Release an operation held by the accidental bulk disable/delete guard',
  tags: ['operations'],
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'Queued', schema: visibleOperationSchema } },
  async handle({ caller, params: { operationId }, deps }) {
    return {
      status: 200,
      body: await deps.provisioning.confirmOperation(caller, operationId),
    };
  },
});

export const cancelOperation = httpFunction({
  name: 'operations-cancel',
  route: 'operations/{operationId}/cancel',
  method: 'POST',
  summary:
    'Stop a queued, held or parked operation: no new step starts, done steps are undone, it ends cancelled',
  tags: ['operations'],
  auth: 'caller',
  params: operationParams,
  responses: {
    202: { description: 'Cancellation accepted; follow the operation', schema: visibleOperationSchema },
  },
  async handle({ caller, params: { operationId }, deps }) {
    const operation = await deps.provisioning.cancelOperation(caller, operationId);
    return { status: 202, body: operation, headers: { location: `/api/operations/${operationId}` } };
  },
});

/** Optional body of a retry: a corrected create (same userId), or the password a step needs again. */
const retryBody = z
  .object({
    user: createUserRequestSchema.optional(),
    password: z.string().min(8).max(256).optional(),
  })
  .strict()
  .optional();

export const retryOperation = httpFunction({
  name: 'operations-retry',
  route: 'operations/{operationId}/retry',
  method: 'POST',
  summary:
    'Try a failed, compensated or cancelled operation again as a new operation (a create may carry a corrected body); a licence-held one runs again now',
  tags: ['operations'],
  auth: 'caller',
  params: operationParams,
  body: retryBody,
  responses: {
    202: { description: 'The new operation', schema: visibleOperationSchema },
    200: { description: 'The retry was already accepted', schema: visibleOperationSchema },
  },
  async handle({ caller, params: { operationId }, body, deps, correlationId }) {
    const { operation, replayed } = await deps.provisioning.retryOperation({
      caller,
      operationId,
      ...(body?.user === undefined ? {} : { correctedCreate: body.user }),
      ...(body?.password === undefined ? {} : { password: body.password }),
      correlationId,
    });
    return {
      status: replayed ? 200 : 202,
      body: operation,
      headers: { location: `/api/operations/${operation.operationId}` },
    };
  },
});
