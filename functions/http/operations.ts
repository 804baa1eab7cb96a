import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { operationSchema } from '../../shared/domain/operation.js';
import { httpFunction } from './endpoint.js';

export const getOperation = httpFunction({
  name: 'operations-get',
  route: 'operations/{operationId}',
  method: 'GET',
  summary: 'An operation with its steps, states, timings and errors',
  tags: ['operations'],
  auth: 'caller',
  params: z.object({ operationId: z.string().min(1).max(128) }),
  responses: { 200: { description: 'The operation', schema: operationSchema } },
  async handle({ caller, params: { operationId }, deps }) {
    return {
      status: 200,
      body: await deps.provisioning.getOperation(caller, operationId),
    };
  },
});

export const listOperations = httpFunction({
  name: 'operations-list',
  route: 'customers/{customerId}/operations',
  method: 'GET',
  summary: "A customer's operations, newest first",
  tags: ['operations'],
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
  responses: { 200: { description: 'Operations', schema: z.object({ value: z.array(operationSchema) }) } },
  async handle({ caller, params: { customerId }, query, deps }) {
    const value = await deps.provisioning.listOperations(caller, customerId, query.limit);
    return { status: 200, body: { value } };
  },
});

export const confirmOperation = httpFunction({
  name: 'operations-confirm',
  route: 'operations/{operationId}/confirm',
  method: 'POST',
  summary: 'Release an operation held by the accidental bulk disable/delete guard',
  tags: ['operations'],
  auth: 'caller',
  params: z.object({ operationId: z.string().min(1).max(128) }),
  responses: { 200: { description: 'Queued', schema: operationSchema } },
  async handle({ caller, params: { operationId }, deps }) {
    return {
      status: 200,
      body: await deps.provisioning.confirmOperation(caller, operationId),
    };
  },
});
