import { onboardingWork } from '../../shared/contracts/onboarding-work.js';
import { createLogger } from '../../shared/logging.js';
import { parseMessage } from '../../shared/ports/bus.js';
import type { QueueFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';
import { settleEach } from './delivery.js';

/**
 * Onboarding reads: one message runs (or resumes) a job's read under its lease until the dry run is
 * ready. A live lease elsewhere or a retryable failure re-schedules the run as a new message, so this
 * one completes; a malformed message is dead-lettered at once; only our own storage or bus failing
 * abandons it for redelivery. Settled through the shared delivery helper (./delivery.ts).
 */
export const onboardingWorker: QueueFunctionDefinition = {
  kind: 'serviceBusQueue',
  name: 'onboarding-worker',
  queueName: onboardingWork.queue,
  connection: 'ServiceBusConnection',
  sdkBinding: true,
  handler: (deps) => async (input, context) => {
    await settleEach(
      input,
      context,
      (delivery) =>
        createLogger(invocationSink(context), {
          level: deps.settings.LOG_LEVEL,
          props: {
            function: 'onboarding-worker',
            messageId: delivery.messageId,
            deliveryCount: delivery.deliveryCount,
          },
        }),
      async (delivery, log) => {
        const work = parseMessage(onboardingWork, delivery.body);
        const outcome = await deps.onboarding.runQueued(work, delivery.deliveryCount);
        log.info('onboarding run', { jobId: work.jobId, outcome });
      },
    );
  },
};
