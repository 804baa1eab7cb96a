import { InvalidMessageError } from '../../shared/errors.js';
import { createLogger } from '../../shared/logging.js';
import type { QueueFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';
import { settleEach } from './delivery.js';

/**
 * Replies and heartbeats from the relay agents: a reply for a parked saga step is saved on its step and
 * resumes the operation; heartbeats are recorded for /api/health. A message that is no reply or
 * heartbeat of the relay protocol (or not signed by its site's agent) is dead-lettered at once.
 */
export const agentReplies: QueueFunctionDefinition = {
  kind: 'serviceBusQueue',
  name: 'agent-replies',
  queueName: 'agent-replies',
  connection: 'ServiceBusConnection',
  sdkBinding: true,
  handler: (deps) => async (input, context) => {
    await settleEach(
      input,
      context,
      (delivery) =>
        createLogger(invocationSink(context), {
          level: deps.settings.LOG_LEVEL,
          props: { function: 'agent-replies', messageId: delivery.messageId },
        }),
      async (delivery) => {
        if (deps.relay === undefined) throw new Error('relay is not configured (Relay__signingKeyPem)');
        const outcome = await deps.relay.handleAgentMessage(delivery.body);
        if (outcome === 'replayedHeartbeat')
          throw new InvalidMessageError(
            'ReplayedHeartbeat',
            'a heartbeat not newer than the last one recorded for its agent (a replay or a duplicate delivery)',
          );
        if (outcome === 'invalid')
          throw new InvalidMessageError(
            'InvalidAgentMessage',
            'not a reply or heartbeat of the relay protocol, or not signed by its site agent',
          );
      },
    );
  },
};
