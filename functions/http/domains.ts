import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { addDomainInputSchema } from '../../shared/usecases/domains.js';
import { httpFunction } from './endpoint.js';

/** Custom domains for a customer's tenant: add → DNS records → verify → UPN suffix (→ federation). */

const customerParams = z.object({ customerId: customerIdSchema });
const tags = ['domains'];

export const addCustomerDomain = httpFunction({
  name: 'customer-domain-add',
  route: 'customers/{customerId}/domains',
  method: 'POST',
  summary:
    'Add a custom domain to the tenant: the DNS records to publish, verification polled with backoff, then UPN suffix (and federation for hybrid customers)',
  tags,
  auth: 'caller',
  params: customerParams,
  body: addDomainInputSchema,
  responses: {
    202: { description: 'The domain operation; its `records` step holds the TXT/MX record to publish' },
    200: { description: 'The domain was already added through this API: the same operation' },
  },
  async handle({ caller, params: { customerId }, body, deps }) {
    const { created, operation } = await deps.domains.add(caller, customerId, body);
    return { status: created ? 202 : 200, body: operation };
  },
});

export const verifyCustomerDomain = httpFunction({
  name: 'customer-domain-verify',
  route: 'customers/{customerId}/domains/{domain}/verify',
  method: 'POST',
  summary: 'Verify now (the record is published): runs the domain operation without waiting for its backoff',
  tags,
  auth: 'caller',
  params: customerParams.extend({ domain: z.string().min(4).max(253) }),
  responses: { 200: { description: 'The domain operation after this run' } },
  async handle({ caller, params: { customerId, domain }, deps }) {
    return { status: 200, body: await deps.domains.verifyNow(caller, customerId, domain) };
  },
});

export const domainFunctions = [addCustomerDomain, verifyCustomerDomain];
