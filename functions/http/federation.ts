import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { federationRequestSchema } from '../../shared/usecases/federation.js';
import { httpFunction } from './endpoint.js';

const params = z.object({
  customerId: customerIdSchema,
  domain: z
    .string()
    .toLowerCase()
    .regex(/^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'a DNS domain name'),
});

export const putFederation = httpFunction({
  name: 'federation-put',
  route: 'customers/{customerId}/domains/{domain}/federation',
  method: 'PUT',
  summary: "Federate a customer's verified domain to its ADFS (internalDomainFederation)",
  tags: ['federation'],
  auth: 'caller',
  params,
  body: federationRequestSchema,
  responses: { 200: { description: 'The federation as Entra ID now holds it' } },
  async handle({ caller, params: { customerId, domain }, body, deps }) {
    return {
      status: 200,
      body: await deps.federation.configure(caller, customerId, domain, body),
    };
  },
});

export const deleteFederation = httpFunction({
  name: 'federation-delete',
  route: 'customers/{customerId}/domains/{domain}/federation',
  method: 'DELETE',
  summary: 'Convert a federated domain back to managed (undo a federation)',
  tags: ['federation'],
  auth: 'caller',
  params,
  responses: { 204: { description: 'The domain is managed (it already was, or now is)' } },
  async handle({ caller, params: { customerId, domain }, deps }) {
    await deps.federation.remove(caller, customerId, domain);
    return { status: 204 };
  },
});

export const federationPreflight = httpFunction({
  name: 'federation-preflight',
  route: 'customers/{customerId}/domains/{domain}/federation/preflight',
  method: 'GET',
  summary:
    'Is the domain verified and federated as configured, and does every hybrid user carry base64(objectGUID)?',
  tags: ['federation'],
  auth: 'caller',
  params,
  query: z.object({ sample: z.coerce.number().int().min(1).max(10_000).optional() }),
  responses: { 200: { description: 'The preflight report (ready: true when sign-in will work)' } },
  async handle({ caller, params: { customerId, domain }, query, deps }) {
    return {
      status: 200,
      body: await deps.federation.preflight(
        caller,
        customerId,
        domain,
        query.sample === undefined ? {} : { sample: query.sample },
      ),
    };
  },
});
