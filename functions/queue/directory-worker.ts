import { directoryWork } from '../../shared/contracts/directory-work.js';
import { createLogger } from '../../shared/logging.js';
import { parseMessage } from '../../shared/ports/bus.js';
import type { QueueFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Directory work: runs an operation's remaining steps, or accepts Atria's own `user.create` command.
 * A malformed message is dead-lettered at once (InvalidMessageError); a retryable failure throws so the
 * message comes back, and after MaxDeliveryCount it is dead-lettered with the operation left visible.
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
    const operation = await deps.provisioning.runOperation(work.providerId, work.operationId, log);
    log.info('operation run', { operationId: work.operationId, state: operation?.state ?? 'skipped' });
  },
};
