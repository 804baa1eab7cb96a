import { z } from 'zod';
import { defineMessageContract } from '../ports/bus.js';

/**
 * The `onboarding-work` queue: one message runs (or resumes) an onboarding read under the job's lease.
 * The HTTP call only records the job and sends this; a Function instance recycled mid-read leaves the
 * lease to expire and the next delivery (or the drift timer's resend) resumes from the saved cursor.
 */
export const onboardingWorkSchema = z.strictObject({
  type: z.literal('onboarding.run'),
  v: z.literal(1),
  providerId: z.string().min(1),
  customerId: z.string().min(1),
  jobId: z.string().min(1),
});
export type OnboardingWork = z.infer<typeof onboardingWorkSchema>;

export const onboardingWork = defineMessageContract({
  queue: 'onboarding-work',
  schema: onboardingWorkSchema,
  name: 'onboarding-work',
});
