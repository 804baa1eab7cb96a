import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import {
  changeRequest,
  visibleOperationSchema,
  type ChangeKind,
  type RequestOf,
} from '../../shared/domain/operation.js';
import {
  createUserRequestSchema,
  licencesRequestSchema,
  passwordRequestSchema,
  updateUserRequestSchema,
  userIdSchema,
  visibleUserSchema,
} from '../../shared/domain/user.js';
import { AppError } from '../../shared/errors.js';
import { httpFunction } from './endpoint.js';

const idempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,128}$/);

/** The optional Idempotency-Key header, checked like any other input. */
function idempotencyKeyOf(headers: Headers): string | undefined {
  const key = headers.get('idempotency-key') ?? undefined;
  if (key !== undefined && !idempotencyKeySchema.safeParse(key).success) {
    throw new AppError('Validation', 'Idempotency-Key must be printable ASCII, at most 128 characters', {
      details: {
        errors: [{ path: 'headers.Idempotency-Key', message: 'printable ASCII, ≤ 128 characters' }],
      },
    });
  }
  return key;
}

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
    202: { description: 'Accepted; follow the operation', schema: visibleOperationSchema },
    200: {
      description: 'A replay of an earlier request with the same Idempotency-Key',
      schema: visibleOperationSchema,
    },
  },
  async handle({ caller, params: { customerId }, body, deps, headers, correlationId, log }) {
    const key = idempotencyKeyOf(headers);
    const { operation, replayed } = await deps.provisioning.requestCreateUser({
      caller: caller,
      customerId,
      request: body,
      ...(key === undefined ? {} : { idempotencyKey: key }),
      correlationId,
      log,
    });
    return {
      status: replayed ? 200 : 202,
      body: operation,
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
  responses: { 200: { description: 'The user', schema: visibleUserSchema } },
  async handle({ caller, params: { customerId, userId }, deps }) {
    return {
      status: 200,
      body: await deps.provisioning.getUser(caller, customerId, userId),
    };
  },
});

const userParams = z.object({ customerId: customerIdSchema, userId: userIdSchema });
const changeResponses = {
  202: { description: 'Accepted; follow the operation', schema: visibleOperationSchema },
  200: {
    description: 'A replay of an earlier request with the same Idempotency-Key',
    schema: visibleOperationSchema,
  },
};
const idempotencyHeader = {
  'Idempotency-Key': { description: 'Repeat a request safely: the same key returns the same operation' },
};

/** One endpoint per change of an existing user; each answers 202 with the operation that does it. */
function userChange<K extends ChangeKind, B>(spec: {
  name: string;
  route: string;
  method: 'POST' | 'PATCH' | 'DELETE';
  summary: string;
  kind: K;
  body?: z.ZodType<B>;
  toRequest: (body: B) => { request: RequestOf<K>; password?: string };
}) {
  return httpFunction({
    name: spec.name,
    route: spec.route,
    method: spec.method,
    summary: spec.summary,
    tags: ['users'],
    auth: 'caller',
    params: userParams,
    ...(spec.body === undefined ? {} : { body: spec.body }),
    requestHeaders: idempotencyHeader,
    responses: changeResponses,
    async handle({ caller, params: { customerId, userId }, body, deps, headers, correlationId }) {
      const key = idempotencyKeyOf(headers);
      const { request, password } = spec.toRequest(body);
      const { operation, replayed } = await deps.provisioning.requestUserChange({
        caller: caller,
        customerId,
        userId,
        change: changeRequest(spec.kind, request),
        ...(password === undefined ? {} : { password }),
        ...(key === undefined ? {} : { idempotencyKey: key }),
        correlationId,
      });
      return {
        status: replayed ? 200 : 202,
        body: operation,
        headers: { location: `/api/operations/${operation.operationId}` },
      };
    },
  });
}

const userRoute = 'customers/{customerId}/users/{userId}';

export const updateUser = userChange({
  name: 'users-update',
  route: userRoute,
  method: 'PATCH',
  summary: 'Change attributes in every directory the user lives in',
  kind: 'user.update',
  body: updateUserRequestSchema,
  toRequest: (body) => ({ request: body }),
});

export const deleteUser = userChange({
  name: 'users-delete',
  route: userRoute,
  method: 'DELETE',
  summary: 'Delete the user (Entra soft delete, then AD); held for confirmation beyond the bulk threshold',
  kind: 'user.delete',
  toRequest: () => ({ request: {} }),
});

export const disableUser = userChange({
  name: 'users-disable',
  route: `${userRoute}/disable`,
  method: 'POST',
  summary: 'Disable sign-in in every directory; held for confirmation beyond the bulk threshold',
  kind: 'user.disable',
  toRequest: () => ({ request: {} }),
});

export const enableUser = userChange({
  name: 'users-enable',
  route: `${userRoute}/enable`,
  method: 'POST',
  summary: 'Enable sign-in in every directory',
  kind: 'user.enable',
  toRequest: () => ({ request: {} }),
});

export const setPassword = userChange({
  name: 'users-password',
  route: `${userRoute}/password`,
  method: 'POST',
  summary:
    'Set a password (AD for AD users; Entra for cloud accounts; federated users have none in the cloud)',
  kind: 'user.password',
  body: passwordRequestSchema,
  toRequest: (body) => ({
    request: { forceChangePasswordNextSignIn: body.forceChangePasswordNextSignIn },
    password: body.password,
  }),
});

export const changeLicences = userChange({
  name: 'users-licences',
  route: `${userRoute}/licences`,
  method: 'POST',
  summary: "Switch the user to another of the customer's licence plans, or to none",
  kind: 'user.licences',
  body: licencesRequestSchema,
  toRequest: (body) => ({ request: { licencePlan: body.licencePlan } }),
});

export const dropPassword = httpFunction({
  name: 'users-password-drop',
  route: 'customers/{customerId}/password-drops',
  method: 'POST',
  summary:
    'Keep an initial password for a queued user.create (sealed, single use, one hour); the message names it by passwordRef',
  tags: ['users'],
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema }),
  body: z.object({ password: z.string().min(8).max(256) }).strict(),
  responses: {
    201: {
      description: 'The reference to put in the user.create message',
      schema: z.object({ passwordRef: z.string(), expiresAt: z.string() }),
    },
  },
  async handle({ caller, params: { customerId }, body, deps }) {
    return { status: 201, body: await deps.provisioning.dropPassword(caller, customerId, body.password) };
  },
});
