import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { AppError } from '../../shared/errors.js';
import { customerTenantInputSchema, newTenantInputSchema } from '../../shared/usecases/tenants/tenants.js';
import { httpFunction } from './endpoint.js';

/** Creating a customer's Microsoft 365 tenant through Partner Center (1-Tier, issue 14). */

const customerParams = z.object({ customerId: customerIdSchema });
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

const tags = ['tenants'];
const requestHeaders = {
  'Idempotency-Key': {
    description:
      'Repeat safely (default: the initial domain): the same key is the same tenant, never a second one',
  },
};
const responses = {
  202: {
    description: 'The tenant operation (address, customer, agreement, link); GET /commerce-operations/{id}',
  },
  200: { description: 'A repeat of an earlier request: the same operation' },
  400: {
    description: "The address or the country's rules (registration number, phone) refused, naming the field",
  },
  409: {
    description: 'The initial domain is taken (with free alternatives), or the customer already has a tenant',
  },
};

export const createTenant = httpFunction({
  name: 'tenant-create',
  route: 'tenants',
  method: 'POST',
  summary:
    'Create an Atria customer and its Microsoft 365 tenant through Partner Center (MCA recorded, linked)',
  tags,
  auth: 'caller',
  body: newTenantInputSchema,
  requestHeaders,
  responses,
  async handle({ caller, body, headers, deps }) {
    const { created, operation } = await deps.tenants.createWithCustomer(
      caller,
      body,
      idempotencyKeyOf(headers),
    );
    return { status: created ? 202 : 200, body: operation };
  },
});

export const createCustomerTenant = httpFunction({
  name: 'customer-tenant-create',
  route: 'customers/{customerId}/tenant',
  method: 'POST',
  summary: "Create the existing customer's Microsoft 365 tenant through Partner Center and link it",
  tags,
  auth: 'caller',
  params: customerParams,
  body: customerTenantInputSchema,
  requestHeaders,
  responses,
  async handle({ caller, params: { customerId }, body, headers, deps }) {
    const { created, operation } = await deps.tenants.createForCustomer(
      caller,
      customerId,
      body,
      idempotencyKeyOf(headers),
    );
    return { status: created ? 202 : 200, body: operation };
  },
});

export const takeTenantAdminCredentials = httpFunction({
  name: 'tenant-admin-credentials',
  route: 'customers/{customerId}/tenant/admin-credentials',
  method: 'POST',
  summary: "The new tenant's initial admin user and password, exactly once (then destroyed)",
  tags,
  auth: 'caller',
  params: customerParams,
  body: z.strictObject({ operationId: z.guid() }),
  responses: {
    200: { description: '{ userName, password }: store it now, it is not shown again' },
    409: { description: 'Already retrieved' },
  },
  async handle({ caller, params: { customerId }, body, deps }) {
    const secret = await deps.tenants.takeAdminCredentials(caller, customerId, body.operationId);
    return { status: 200, body: secret, headers: { 'cache-control': 'no-store' } };
  },
});

export const tenantFunctions = [createTenant, createCustomerTenant, takeTenantAdminCredentials];
