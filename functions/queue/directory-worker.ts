import { directoryWork } from '../../shared/contracts/directory-work.js';
import { createLogger } from '../../shared/logging.js';
import { parseMessage } from '../../shared/ports/bus.js';
import type { QueueFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';
import { settleEach } from './delivery.js';

/**
 * Directory work: one run of an operation (until it finishes, parks with an agent, schedules its retry
 * or is held), or Atria's own `user.create` command. The run never waits for an agent and schedules its
 * own retries, so the message completes. A malformed or permanently invalid message (schema, unknown
 * operation, a create for an unknown customer or one that does not fit it) is dead-lettered at once with
 * its reason; only a failure of our own storage or bus abandons it for redelivery. Settled explicitly
 * (SDK-type binding, see ./delivery.ts), in Azure and in the local host alike.
 */
export const directoryWorker: QueueFunctionDefinition = {
  kind: 'serviceBusQueue',
  name: 'directory-worker',
  queueName: directoryWork.queue,
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
            correlationId: delivery.correlationId ?? context.invocationId,
            function: 'directory-worker',
            messageId: delivery.messageId,
            deliveryCount: delivery.deliveryCount,
          },
        }),
      async (delivery, log) => {
        const work = parseMessage(directoryWork, delivery.body);
        if (work.type === 'user.create') {
          const { operation, replayed } = await deps.provisioning.acceptQueuedCreate(
            work,
            delivery.correlationId ?? context.invocationId,
          );
          log.info('user.create command accepted', { operationId: operation.operationId, replayed });
          return;
        }
        const outcome = await deps.provisioning.runOperation({
          providerId: work.providerId,
          operationId: work.operationId,
          // The lease owner: this delivery. Messages the run sends derive their ids from the incoming one.
          runId: `${context.invocationId}:${delivery.deliveryCount}`,
          messageId: delivery.messageId,
          log,
          ...(delivery.properties.customerId === undefined
            ? {}
            : { customerHint: delivery.properties.customerId }),
          ...(delivery.correlationId === undefined ? {} : { correlationId: delivery.correlationId }),
        });
        log.info('operation run', { operationId: work.operationId, outcome });
      },
    );
  },
};
