import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { gdapInputSchema } from '../../shared/usecases/gdap.js';
import { httpFunction } from './endpoint.js';

/** GDAP relationships for a customer's tenant (issue 14). */

const customerParams = z.object({ customerId: customerIdSchema });
const operationParams = customerParams.extend({ operationId: z.guid() });
const tags = ['gdap'];

export const createGdapRelationship = httpFunction({
  name: 'gdap-create',
  route: 'customers/{customerId}/gdap',
  method: 'POST',
  summary:
    'Create a GDAP relationship with the least-privilege roles, lock it for approval and follow it; access assignments once active',
  tags,
  auth: 'caller',
  params: customerParams,
  body: gdapInputSchema,
  responses: {
    202: {
      description: 'The GDAP operation with `approvalLink` for the customer and the roles asked (why each)',
    },
    200: { description: 'A repeat: the same operation' },
  },
  async handle({ caller, params: { customerId }, body, deps }) {
    const { created, operation } = await deps.gdap.start(caller, customerId, body);
    return { status: created ? 202 : 200, body: operation };
  },
});

export const getGdapRelationship = httpFunction({
  name: 'gdap-get',
  route: 'customers/{customerId}/gdap/{operationId}',
  method: 'GET',
  summary: 'The GDAP operation: relationship state, approval link, access assignments',
  tags,
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'The GDAP operation' } },
  async handle({ caller, params: { customerId, operationId }, deps }) {
    return { status: 200, body: await deps.gdap.get(caller, customerId, operationId) };
  },
});

export const cancelGdapRelationship = httpFunction({
  name: 'gdap-cancel',
  route: 'customers/{customerId}/gdap/{operationId}/cancel',
  method: 'POST',
  summary:
    'Cancel a relationship that was never approved (deleted while still created; otherwise no longer followed)',
  tags,
  auth: 'caller',
  params: operationParams,
  responses: { 200: { description: 'The cancelled operation' }, 409: { description: 'Already approved' } },
  async handle({ caller, params: { customerId, operationId }, deps }) {
    return { status: 200, body: await deps.gdap.cancel(caller, customerId, operationId) };
  },
});

export const gdapFunctions = [createGdapRelationship, getGdapRelationship, cancelGdapRelationship];
