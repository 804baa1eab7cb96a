import { z } from 'zod';
import { customerIdSchema } from '../../shared/domain/customer.js';
import { visibleOperationSchema } from '../../shared/domain/operation.js';
import { groupPathIdSchema, userIdSchema } from '../../shared/domain/user.js';
import { AppError } from '../../shared/errors.js';
import { httpFunction } from './endpoint.js';

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

const route = 'customers/{customerId}/users/{userId}/groups';
const membershipParams = z.object({
  customerId: customerIdSchema,
  userId: userIdSchema,
  groupId: groupPathIdSchema,
});
const changeResponses = {
  202: { description: 'Accepted; follow the operation', schema: visibleOperationSchema },
  200: {
    description: 'A replay of an earlier request with the same Idempotency-Key',
    schema: visibleOperationSchema,
  },
};

function membershipChange(name: string, method: 'PUT' | 'DELETE', change: 'add' | 'remove', summary: string) {
  return httpFunction({
    name,
    route: `${route}/{groupId}`,
    method,
    summary,
    tags: ['groups'],
    auth: 'caller',
    params: membershipParams,
    requestHeaders: {
      'Idempotency-Key': { description: 'Repeat a request safely: the same key returns the same operation' },
    },
    responses: changeResponses,
    async handle({ caller, params: { customerId, userId, groupId }, deps, headers, correlationId }) {
      const key = idempotencyKeyOf(headers);
      const { operation, replayed } = await deps.groups.changeMembership({
        caller,
        customerId,
        userId,
        groupPathId: groupId,
        change,
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

export const putGroupMembership = membershipChange(
  'groups-put',
  'PUT',
  'add',
  'Add the user to an AD group (`ad.<objectGUID base64url>`, through the agent) or an Entra group (`entra.<id>`)',
);

export const deleteGroupMembership = membershipChange(
  'groups-delete',
  'DELETE',
  'remove',
  'Remove the user from the group (already absent is success)',
);

const membershipSchema = z.object({
  id: z.string(),
  directory: z.enum(['ad', 'entra']),
  groupId: z.string(),
  since: z.string(),
  operationId: z.string(),
});

export const listGroupMemberships = httpFunction({
  name: 'groups-list',
  route,
  method: 'GET',
  summary: "The user's group memberships made through atria-m365",
  tags: ['groups'],
  auth: 'caller',
  params: z.object({ customerId: customerIdSchema, userId: userIdSchema }),
  responses: { 200: { description: 'Memberships', schema: z.object({ value: z.array(membershipSchema) }) } },
  async handle({ caller, params: { customerId, userId }, deps }) {
    return { status: 200, body: { value: await deps.groups.listMemberships(caller, customerId, userId) } };
  },
});

export const groupFunctions = [putGroupMembership, deleteGroupMembership, listGroupMemberships];
