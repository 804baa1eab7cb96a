import { z } from 'zod';
import { httpFunction } from './endpoint.js';

export const callerSchema = z.object({
  callerId: z.string(),
  kind: z.enum(['apiKey', 'entraApp', 'entraUser']),
  providerId: z.string(),
  customerIds: z.array(z.string()).nullable(),
});

/** Lets Atria check a credential and see its scope without touching customer data. */
export const whoami = httpFunction({
  name: 'whoami',
  route: 'whoami',
  method: 'GET',
  summary: 'The authenticated caller: its provider and, if narrowed, its customers',
  tags: ['operations'],
  auth: 'caller',
  responses: { 200: { description: 'The caller', schema: callerSchema } },
  handle({ caller }) {
    return Promise.resolve({
      status: 200,
      body: {
        callerId: caller.id,
        kind: caller.kind,
        providerId: caller.providerId,
        customerIds: caller.customerIds ?? null,
      },
    });
  },
});
