import { z } from 'zod';
import { defineMessageContract } from '../ports/bus.js';
import { createUserRequestSchema } from '../domain/user.js';

/**
 * Public contract of the `directory-work` queue. atria-m365's HTTP API puts `operation.run` there;
 * Atria may put `user.create` itself (same body as POST /api/customers/{id}/users, minus the password:
 * a queue message never carries a secret, so an initial password is dropped first with
 * POST /api/customers/{id}/password-drops and named here by its single-use `passwordRef`). Service Bus
 * RBAC decides who may send.
 */
export const directoryWorkSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('operation.run'),
    v: z.literal(1),
    providerId: z.string().min(1),
    operationId: z.string().min(1),
  }),
  z.object({
    type: z.literal('user.create'),
    v: z.literal(1),
    providerId: z.string().min(1),
    customerId: z.string().min(1),
    /** Makes a resent command create nothing twice (like the HTTP Idempotency-Key header). */
    idempotencyKey: z.string().min(1).max(128),
    user: createUserRequestSchema.omit({ password: true }).strict(),
    /** From POST /api/customers/{customerId}/password-drops: the initial password, single use, 1 hour. */
    passwordRef: z
      .string()
      .regex(/^pw_[A-Za-z0-9_-]{24}$/)
      .optional(),
  }),
]);
export type DirectoryWork = z.infer<typeof directoryWorkSchema>;

export const directoryWork = defineMessageContract({
  queue: 'directory-work',
  schema: directoryWorkSchema,
  name: 'directory-work',
});
