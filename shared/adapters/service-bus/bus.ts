import type { ServiceBusClient, ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { AppError } from '../../errors.js';
import {
  validateOutgoing,
  type BatchItem,
  type Bus,
  type MessageContract,
  type SendMessageOptions,
} from '../../ports/bus.js';
import { traceContextProperties } from '../../telemetry.js';
import { toBusError } from './errors.js';

export interface ServiceBusBus extends Bus {
  /** Closes the cached senders (the client stays open: it belongs to the composition root). */
  close(): Promise<void>;
}

function toServiceBusMessage<T>(
  contract: MessageContract<T>,
  body: T,
  options: SendMessageOptions,
): ServiceBusMessage {
  // W3C trace context of the sending span (the request or the worker), so the consumer continues the trace.
  const applicationProperties = { ...traceContextProperties(), ...options.applicationProperties };
  return {
    body,
    contentType: 'application/json',
    subject: contract.name,
    messageId: options.messageId,
    ...(options.correlationId === undefined ? {} : { correlationId: options.correlationId }),
    ...(options.scheduledEnqueueTime === undefined
      ? {}
      : { scheduledEnqueueTimeUtc: options.scheduledEnqueueTime }),
    ...(Object.keys(applicationProperties).length === 0 ? {} : { applicationProperties }),
  };
}

function requireMessageId(contract: MessageContract<unknown>, options: SendMessageOptions): void {
  if (options.messageId.trim() === '') {
    throw new AppError(
      'Validation',
      `${contract.name}: messageId is required (use deterministicMessageId) so retries deduplicate`,
    );
  }
}

/** The Bus port over `@azure/service-bus`: one sender per queue, created on first use and cached. */
export function createServiceBusBus(client: ServiceBusClient): ServiceBusBus {
  const senders = new Map<string, ServiceBusSender>();
  const senderFor = (queue: string): ServiceBusSender => {
    let sender = senders.get(queue);
    if (sender === undefined) {
      sender = client.createSender(queue);
      senders.set(queue, sender);
    }
    return sender;
  };

  return {
    async send<T>(contract: MessageContract<T>, body: T, options: SendMessageOptions): Promise<void> {
      requireMessageId(contract, options);
      const valid = validateOutgoing(contract, body);
      try {
        await senderFor(contract.queue).sendMessages(toServiceBusMessage(contract, valid, options));
      } catch (error) {
        throw toBusError(error, `send ${contract.name} to ${contract.queue}`);
      }
    },

    async sendBatch<T>(contract: MessageContract<T>, items: readonly BatchItem<T>[]): Promise<void> {
      // Validate everything before sending anything: a bad item must not leave half a batch sent.
      const messages = items.map((item) => {
        requireMessageId(contract, item.options);
        return toServiceBusMessage(contract, validateOutgoing(contract, item.body), item.options);
      });
      if (messages.length === 0) return;
      const sender = senderFor(contract.queue);
      const what = `send ${messages.length} ${contract.name} to ${contract.queue}`;
      try {
        let batch = await sender.createMessageBatch();
        for (const message of messages) {
          if (batch.tryAddMessage(message)) continue;
          if (batch.count === 0) {
            throw new AppError(
              'Validation',
              `${contract.name} ${message.messageId as string} exceeds the maximum message size`,
            );
          }
          await sender.sendMessages(batch);
          batch = await sender.createMessageBatch();
          if (!batch.tryAddMessage(message)) {
            throw new AppError(
              'Validation',
              `${contract.name} ${message.messageId as string} exceeds the maximum message size`,
            );
          }
        }
        if (batch.count > 0) await sender.sendMessages(batch);
      } catch (error) {
        throw toBusError(error, what);
      }
    },

    async close(): Promise<void> {
      const closing = [...senders.values()].map((sender) => sender.close());
      senders.clear();
      await Promise.all(closing);
    },
  };
}
