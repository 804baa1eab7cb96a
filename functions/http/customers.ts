import { z } from 'zod';
import { customerIdSchema, customerInputSchema, customerSchema } from '../../shared/domain/customer.js';
import { httpFunction } from './endpoint.js';

const params = z.object({ customerId: customerIdSchema });

export const putCustomer = httpFunction({
  name: 'customers-put',
  route: 'customers/{customerId}',
  method: 'PUT',
  summary: 'Create or replace a customer: identity mode, tenant, AD site and OU, domains, licence plans',
  tags: ['customers'],
  auth: 'caller',
  params,
  body: customerInputSchema,
  requestHeaders: {
    'If-Match': { description: 'ETag of the version you read; a changed customer answers 412' },
  },
  responses: {
    200: { description: 'Replaced', schema: customerSchema },
    201: { description: 'Created', schema: customerSchema },
  },
  async handle({ caller, params: { customerId }, body, deps, headers }) {
    const { customer, created } = await deps.customers.put(
      caller,
      customerId,
      body,
      headers.get('if-match') ?? undefined,
    );
    return { status: created ? 201 : 200, body: customer.value, headers: { etag: customer.etag } };
  },
});

export const getCustomer = httpFunction({
  name: 'customers-get',
  route: 'customers/{customerId}',
  method: 'GET',
  summary: 'Read a customer',
  tags: ['customers'],
  auth: 'caller',
  params,
  responses: { 200: { description: 'The customer', schema: customerSchema } },
  async handle({ caller, params: { customerId }, deps }) {
    const customer = await deps.customers.get(caller, customerId);
    return { status: 200, body: customer.value, headers: { etag: customer.etag } };
  },
});
