import { randomUUID } from 'node:crypto';
import azureFunctions, { type InvocationContext, type LogLevel } from '@azure/functions';
import type { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import { settlementGate } from '../../shared/adapters/service-bus/settlement.js';

// @azure/functions is CommonJS: under Node's ESM loader its classes come through the default export.
const { InvocationContext: InvocationContextClass } = azureFunctions;

/**
 * Serves an `app.serviceBusQueue` definition locally with the semantics of the Azure Functions Service
 * Bus extension: peek-lock, lock renewal while the handler runs, and either
 * - plain binding: the body as the Node worker hands it over; complete on success, abandon on throw
 *   (redelivered; the broker dead-letters after MaxDeliveryCount) — nothing else, as in Azure; or
 * - SDK-type binding (`sdkBinding: true, autoCompleteMessages: false`, @azure/functions-extensions-servicebus):
 *   the handler gets `{ messages: [ServiceBusReceivedMessage], actions }` and settles the message itself
 *   (complete, deadletter with reason and description, abandon). A message it leaves unsettled (it threw)
 *   stays locked until the lock expires and is then redelivered, as the extension leaves it.
 */

export type TriggerLogLevel = 'information' | 'warning' | 'error';

export interface QueueTriggerOptions {
  client: ServiceBusClient;
  queueName: string;
  functionName: string;
  handler: (message: unknown, context: InvocationContext) => Promise<unknown>;
  /** SDK-type binding: the handler receives `{ messages, actions }` and settles each message. */
  sdkBinding?: boolean;
  /** Handlers running at once (the extension's `maxConcurrentCalls`; its default is 16 per core). */
  maxConcurrentCalls?: number;
  /** How long the lock is renewed while a handler runs (the extension's default: 5 minutes). */
  maxAutoLockRenewalDurationInMs?: number;
  log?: (level: TriggerLogLevel, message: string, properties: Record<string, unknown>) => void;
}

export interface QueueTrigger {
  /** Stops receiving, waits for running handlers and their settlement, closes the receiver. */
  close(): Promise<void>;
}

const defaultMaxConcurrentCalls = 16;
const defaultMaxAutoLockRenewalDurationInMs = 5 * 60 * 1000;

/** JSON → parsed value, other text → string, other bytes → Buffer (as the Node worker binds it). */
export function functionsBody(body: unknown): unknown {
  if (typeof body === 'string') return parseJsonOr(body, body);
  if (Buffer.isBuffer(body)) return parseJsonOr(body.toString('utf8'), body);
  return body;
}

function parseJsonOr(text: string, fallback: unknown): unknown {
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return fallback;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return fallback;
  }
}

/** Trigger metadata as the Functions host provides it; `deliveryCount` is 1 on the first delivery there. */
export function triggerMetadata(message: ServiceBusReceivedMessage): Record<string, unknown> {
  return {
    deliveryCount: message.deliveryCount === undefined ? 1 : message.deliveryCount + 1,
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    label: message.subject,
    subject: message.subject,
    enqueuedTimeUtc: message.enqueuedTimeUtc?.toISOString(),
    expiresAtUtc: message.expiresAtUtc?.toISOString(),
    lockedUntilUtc: message.lockedUntilUtc?.toISOString(),
    to: message.to,
    replyTo: message.replyTo,
    applicationProperties: message.applicationProperties ?? {},
    // The older name the Functions host still sends alongside.
    userProperties: message.applicationProperties ?? {},
    lockToken: message.lockToken,
    sequenceNumber: message.sequenceNumber?.toNumber(),
  };
}

const noLog = (): void => undefined;

export async function startQueueTrigger(options: QueueTriggerOptions): Promise<QueueTrigger> {
  const log = options.log ?? noLog;
  const maxConcurrentCalls = options.maxConcurrentCalls ?? defaultMaxConcurrentCalls;
  const receiver: ServiceBusReceiver = options.client.createReceiver(options.queueName, {
    receiveMode: 'peekLock',
    maxAutoLockRenewalDurationInMs:
      options.maxAutoLockRenewalDurationInMs ?? defaultMaxAutoLockRenewalDurationInMs,
  });
  // Fail at start, as the Functions host does, when the queue is missing or the credential cannot listen.
  try {
    await receiver.peekMessages(1);
  } catch (error) {
    await receiver.close();
    throw error;
  }
  const alone = settlementGate(options.client);
  const running = new Set<Promise<void>>();
  const where = { functionName: options.functionName, queue: options.queueName };

  const settle = async (message: ServiceBusReceivedMessage, context: InvocationContext): Promise<void> => {
    const properties = { ...where, messageId: message.messageId, invocationId: context.invocationId };
    if (options.sdkBinding === true) {
      let settled = false;
      const once = async (action: () => Promise<void>): Promise<void> => {
        if (settled) throw new Error('the message was already settled');
        settled = true;
        await alone(action);
      };
      const actions = {
        complete: (m: ServiceBusReceivedMessage) => once(() => receiver.completeMessage(m)),
        abandon: (m: ServiceBusReceivedMessage, propertiesToModify?: Record<string, unknown>) =>
          once(() => receiver.abandonMessage(m, propertiesToModify as Record<string, string>)),
        deadletter: (
          m: ServiceBusReceivedMessage,
          _propertiesToModify?: Record<string, unknown>,
          deadLetterReason?: string,
          deadLetterErrorDescription?: string,
        ) =>
          once(() =>
            receiver.deadLetterMessage(m, {
              deadLetterReason: deadLetterReason ?? '',
              deadLetterErrorDescription: deadLetterErrorDescription ?? '',
            }),
          ),
        defer: (m: ServiceBusReceivedMessage) => once(() => receiver.deferMessage(m)),
        renewMessageLock: async (m: ServiceBusReceivedMessage) => {
          await receiver.renewMessageLock(m);
        },
      };
      try {
        await options.handler({ messages: [message], actions }, context);
      } catch (error) {
        log('warning', 'handler failed; the message stays locked until its lock expires', {
          ...properties,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      return;
    }
    try {
      await options.handler(functionsBody(message.body), context);
    } catch (error) {
      log('warning', 'handler failed; message abandoned for redelivery', {
        ...properties,
        deliveryCount: (message.deliveryCount ?? 0) + 1,
        error: error instanceof Error ? error.message : String(error),
      });
      await alone(() => receiver.abandonMessage(message));
      return;
    }
    await alone(() => receiver.completeMessage(message));
  };

  const subscription = receiver.subscribe(
    {
      processMessage: async (message) => {
        const context = new InvocationContextClass({
          invocationId: randomUUID(),
          functionName: options.functionName,
          triggerMetadata: triggerMetadata(message),
          logHandler: (level: LogLevel, ...args: unknown[]) => {
            const mapped: TriggerLogLevel =
              level === 'error' || level === 'critical'
                ? 'error'
                : level === 'warning'
                  ? 'warning'
                  : 'information';
            log(mapped, args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' '), {
              ...where,
            });
          },
        });
        const run = settle(message, context);
        running.add(run);
        try {
          await run;
        } catch (error) {
          // Settlement failed (typically the lock was lost): the broker redelivers; nothing to undo here.
          log('error', 'settlement failed', {
            ...where,
            messageId: message.messageId,
            error: error instanceof Error ? error.message : String(error),
          });
        } finally {
          running.delete(run);
        }
      },
      processError: async (args) => {
        log('error', 'receive error', { ...where, source: args.errorSource, error: args.error.message });
        return Promise.resolve();
      },
    },
    { autoCompleteMessages: false, maxConcurrentCalls },
  );

  return {
    async close(): Promise<void> {
      await subscription.close();
      await Promise.allSettled([...running]);
      await receiver.close();
    },
  };
}
