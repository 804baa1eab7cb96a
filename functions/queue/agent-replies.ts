import { InvalidMessageError } from '../../shared/errors.js';
import type { QueueFunctionDefinition } from '../define.js';

/** Replies and heartbeats from the relay agents: wakes waiting calls, records heartbeats for /api/health. */
export const agentReplies: QueueFunctionDefinition = {
  kind: 'serviceBusQueue',
  name: 'agent-replies',
  queueName: 'agent-replies',
  connection: 'ServiceBusConnection',
  handler: (deps) => async (message) => {
    if (deps.relay === undefined) throw new Error('relay is not configured (Relay__signingKeyPem)');
    const outcome = await deps.relay.handleAgentMessage(message);
    if (outcome === 'invalid')
      throw new InvalidMessageError('InvalidAgentMessage', 'not a reply or heartbeat of the relay protocol');
  },
};
