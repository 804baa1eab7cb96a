import { z } from 'zod';
import { customerIdSchema, customerInputSchema, customerSchema } from '../../shared/domain/customer.js';
import { visibleUserSchema, userStates } from '../../shared/domain/user.js';
import { pageQuerySchema } from '../../shared/usecases/paging.js';
import { httpFunction } from './endpoint.js';
import { pagedBody } from './paging.js';

const params = z.object({ customerId: customerIdSchema });
const ifMatchHeader = {
  'If-Match': {
    description: 'ETag of the version you read; a changed (or, for PUT, missing) customer answers 412',
  },
};

export const putCustomer = httpFunction({
  name: 'customers-put',
  route: 'customers/{customerId}',
  method: 'PUT',
  summary:
    'Create or replace a customer: identity mode, tenant (claimed for this customer), AD site (yours), OU, domains, licence plans',
  tags: ['customers'],
  auth: 'caller',
  params,
  body: customerInputSchema,
  requestHeaders: ifMatchHeader,
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

export const listCustomers = httpFunction({
  name: 'customers-list',
  route: 'customers',
  method: 'GET',
  summary: "The caller's customers (paged: follow nextLink)",
  tags: ['customers'],
  auth: 'caller',
  query: pageQuerySchema,
  responses: {
    200: {
      description: 'A page of customers',
      schema: z.object({ value: z.array(customerSchema), nextLink: z.string().optional() }),
    },
  },
  async handle({ caller, query, deps }) {
    return { status: 200, body: pagedBody('customers', query, await deps.customers.list(caller, query)) };
  },
});

export const deleteCustomer = httpFunction({
  name: 'customers-delete',
  route: 'customers/{customerId}',
  method: 'DELETE',
  summary:
    'Remove a customer that has no users left (its tenant can then be linked elsewhere); ?force=true deletes its users first, each judged by the bulk guard',
  tags: ['customers'],
  auth: 'caller',
  params,
  query: z.object({ force: z.enum(['true', 'false']).optional() }),
  requestHeaders: ifMatchHeader,
  responses: {
    204: { description: 'Removed' },
    202: { description: 'force: a delete operation per user was accepted; DELETE again once they are done' },
  },
  async handle({ caller, params: { customerId }, query, deps, headers, correlationId }) {
    const result = await deps.removeCustomer(caller, customerId, {
      force: query.force === 'true',
      ...(headers.get('if-match') === null ? {} : { ifMatch: headers.get('if-match') ?? '' }),
      correlationId,
    });
    if (result.removed) return { status: 204 };
    return {
      status: 202,
      body: {
        message: `the customer is removed by a DELETE once its users are deleted (${result.operations.length} delete operation(s) accepted; beyond the bulk threshold they wait for POST /operations/{id}/confirm)`,
        operations: result.operations,
        waiting: result.waiting,
      },
    };
  },
});

const usersQuery = pageQuerySchema.extend({ state: z.enum(userStates).optional() });

export const listCustomerUsers = httpFunction({
  name: 'customers-users-list',
  route: 'customers/{customerId}/users',
  method: 'GET',
  summary: "The customer's users, optionally in one state (paged: follow nextLink)",
  tags: ['users'],
  auth: 'caller',
  params,
  query: usersQuery,
  responses: {
    200: {
      description: 'A page of users',
      schema: z.object({ value: z.array(visibleUserSchema), nextLink: z.string().optional() }),
    },
  },
  async handle({ caller, params: { customerId }, query, deps }) {
    const page = await deps.customers.listUsers(caller, customerId, query);
    return { status: 200, body: pagedBody(`customers/${customerId}/users`, query, page) };
  },
});
