import { z } from 'zod';

/**
 * A long-running request (create a user in one or two directories, then licences) as a list of steps,
 * persisted after every step so a crash resumes where it stopped and a retry never repeats a done step.
 */
export const stepStates = [
  'pending',
  'running',
  'done',
  'failed',
  'compensated',
  'skipped',
  'waiting',
] as const;
export const operationKinds = [
  'user.create',
  'user.update',
  'user.disable',
  'user.enable',
  'user.delete',
  'user.password',
  'user.licences',
] as const;
export type OperationKind = (typeof operationKinds)[number];

export const operationStates = [
  'heldForConfirmation',
  'queued',
  'running',
  'needsLicence',
  'succeeded',
  'failed',
  'compensated',
] as const;
export type OperationState = (typeof operationStates)[number];

const errorInfo = z.object({ code: z.string(), message: z.string(), retryable: z.boolean().optional() });

export const stepSchema = z.object({
  name: z.string(),
  state: z.enum(stepStates),
  attempts: z.number().int().nonnegative(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  error: errorInfo.optional(),
  /** Facts the step learned that later steps and the user record need (objectGuid, entra id…). */
  result: z.record(z.string(), z.string()).optional(),
});
export type Step = z.infer<typeof stepSchema>;

export const operationSchema = z.object({
  operationId: z.string(),
  providerId: z.string(),
  customerId: z.string(),
  userId: z.string(),
  kind: z.enum(operationKinds),
  state: z.enum(operationStates),
  steps: z.array(stepSchema),
  correlationId: z.string(),
  idempotencyKey: z.string().optional(),
  /** The request as accepted, without secrets. */
  request: z.record(z.string(), z.unknown()),
  /** A password sealed with the app's operation key; erased once the directory has it. */
  sealedPassword: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  error: errorInfo.optional(),
});
export type Operation = z.infer<typeof operationSchema>;

export function newStep(name: string): Step {
  return { name, state: 'pending', attempts: 0 };
}

export const isFinished = (state: OperationState): boolean =>
  state === 'succeeded' || state === 'failed' || state === 'compensated';
