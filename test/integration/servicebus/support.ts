import {
  isServiceBusError,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import type { EmulatorConfig } from '../../../dev/peers/servicebus/index.js';

type Namespace = EmulatorConfig['UserConfig']['Namespaces'][number];
export type QueueConfig = Namespace['Queues'][number];
export type TopicConfig = Namespace['Topics'][number];

/** An emulator config.json object with the given entities. */
export function emulatorConfig(queues: QueueConfig[], topics: TopicConfig[] = []): EmulatorConfig {
  return {
    UserConfig: {
      Namespaces: [{ Name: 'sbemulatorns', Queues: queues, Topics: topics }],
      Logging: { Type: 'File' },
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every ServiceBusError code in what the SDK threw (it wraps exhausted retries in an AggregateError). */
export function serviceBusCodes(error: unknown): string[] {
  if (error instanceof AggregateError) return error.errors.flatMap(serviceBusCodes);
  return isServiceBusError(error) ? [error.code] : [];
}

export async function captureError(operation: () => Promise<unknown>): Promise<unknown> {
  try {
    await operation();
  } catch (error) {
    return error;
  }
  throw new Error('expected the operation to fail');
}

/** Receives until `count` messages arrived or `timeoutInMs` passed. */
export async function receiveAll(
  receiver: ServiceBusReceiver,
  count: number,
  timeoutInMs = 5000,
): Promise<ServiceBusReceivedMessage[]> {
  const received: ServiceBusReceivedMessage[] = [];
  const deadline = Date.now() + timeoutInMs;
  while (received.length < count && Date.now() < deadline) {
    const batch = await receiver.receiveMessages(count - received.length, {
      maxWaitTimeInMs: Math.min(1000, deadline - Date.now()),
    });
    received.push(...batch);
  }
  return received;
}
