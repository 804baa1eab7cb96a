import { directoryWork } from '../../shared/contracts/directory-work.js';
import { createLogger } from '../../shared/logging.js';
import { parseMessage } from '../../shared/ports/bus.js';
import type { QueueFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Directory work: one run of an operation (until it finishes, parks with an agent, schedules its retry
 * or is held), or Atria's own `user.create` command. The run never waits for an agent and settles its
 * own retries by scheduled messages, so the message completes. A malformed or permanently invalid
 * message (schema, unknown operation, unknown customer, a create that does not fit) is dead-lettered at
 * once (InvalidMessageError); only a failure of our own storage or bus throws for redelivery.
 */
export const directoryWorker: QueueFunctionDefinition = {
  kind: 'serviceBusQueue',
  name: 'directory-worker',
  queueName: directoryWork.queue,
  connection: 'ServiceBusConnection',
  handler: (deps) => async (message, context) => {
    const work = parseMessage(directoryWork, message);
    const correlationId =
      typeof context.triggerMetadata?.correlationId === 'string'
        ? context.triggerMetadata.correlationId
        : context.invocationId;
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: {
        correlationId,
        function: 'directory-worker',
        providerId: work.providerId,
        deliveryCount: context.triggerMetadata?.deliveryCount,
      },
    });
    if (work.type === 'user.create') {
      const { operation, replayed } = await deps.provisioning.acceptQueuedCreate(work, correlationId);
      log.info('user.create command accepted', { operationId: operation.operationId, replayed });
      return;
    }
    const messageId = context.triggerMetadata?.messageId;
    const outcome = await deps.provisioning.runOperation({
      providerId: work.providerId,
      operationId: work.operationId,
      // The lease owner: this invocation. Messages the run sends derive their ids from the incoming one.
      runId: context.invocationId,
      messageId: typeof messageId === 'string' ? messageId : context.invocationId,
      log,
    });
    log.info('operation run', { operationId: work.operationId, outcome });
  },
};
