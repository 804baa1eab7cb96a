import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { operationSchema } from '../../shared/domain/operation.js';
import { createUserRequestSchema, userIdSchema, userRecordSchema } from '../../shared/domain/user.js';
import { AppError } from '../../shared/errors.js';
import { httpFunction } from './endpoint.js';

const idempotencyKey = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'printable ASCII, ≤ 128 characters');

export const createUser = httpFunction({
  name: 'users-create',
  route: 'customers/{customerId}/users',
  method: 'POST',
  summary:
    'Provision a user in Entra ID, on-prem AD or both (by the customer identity mode); 202 with an operation',
  tags: ['users'],
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  body: createUserRequestSchema,
  requestHeaders: {
    'Idempotency-Key': { description: 'Repeat a request safely: the same key returns the same operation' },
  },
  responses: {
    202: { description: 'Accepted; follow the operation', schema: operationSchema },
    200: {
      description: 'A replay of an earlier request with the same Idempotency-Key',
      schema: operationSchema,
    },
  },
  async handle({ caller, params: { customerId }, body, deps, headers, correlationId }) {
    const key = headers.get('idempotency-key') ?? undefined;
    if (key !== undefined && !idempotencyKey.safeParse(key).success) {
      throw new AppError('Validation', 'Idempotency-Key must be printable ASCII, at most 128 characters', {
        details: {
          errors: [{ path: 'headers.Idempotency-Key', message: 'printable ASCII, ≤ 128 characters' }],
        },
      });
    }
    const { operation, replayed } = await deps.provisioning.requestCreateUser({
      caller: caller as NonNullable<typeof caller>,
      customerId,
      request: body,
      ...(key === undefined ? {} : { idempotencyKey: key }),
      correlationId,
    });
    const { sealedPassword: _sealed, ...visible } = operation;
    return {
      status: replayed ? 200 : 202,
      body: visible,
      headers: {
        location: `/api/operations/${operation.operationId}`,
        ...(replayed ? { 'idempotent-replayed': 'true' } : {}),
      },
    };
  },
});

export const getUser = httpFunction({
  name: 'users-get',
  route: 'customers/{customerId}/users/{userId}',
  method: 'GET',
  summary: "A user's state and its ids in each directory (Atria id ↔ objectGUID ↔ Entra object id)",
  tags: ['users'],
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema, userId: userIdSchema }),
  responses: { 200: { description: 'The user', schema: userRecordSchema } },
  async handle({ caller, params: { customerId, userId }, deps }) {
    return {
      status: 200,
      body: await deps.provisioning.getUser(caller as NonNullable<typeof caller>, customerId, userId),
    };
  },
});
