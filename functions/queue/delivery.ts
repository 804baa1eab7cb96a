import type { InvocationContext } from '@azure/functions';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { z } from 'zod';
import { InvalidMessageError, toAppError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import { record } from '../../shared/metrics.js';
import { contextFrom, inSpan, SpanKind, traceIdOf } from '../../shared/telemetry.js';

/**
 * Explicit settlement of a Service Bus message, the same in Azure and locally.
 *
 * Why: the Functions Service Bus extension, with plain bindings, only completes (handler returned) or
 * abandons (handler threw); a message that can never succeed is then retried up to MaxDeliveryCount and
 * dead-lettered without our reason. So our queue functions use SDK-type bindings
 * (`@azure/functions-extensions-servicebus`, `sdkBinding: true`, `autoCompleteMessages: false`): the
 * handler receives `{ messages, actions }` and settles each message itself — complete, dead-letter with
 * reason and description at once, or abandon for a redelivery. The local host hands the handler the same
 * shape over its own receiver (dev/host/service-bus-trigger.ts), so both run this one code path.
 */
export interface MessageActions {
  complete(message: ServiceBusReceivedMessage): Promise<void>;
  abandon(message: ServiceBusReceivedMessage): Promise<void>;
  deadletter(
    message: ServiceBusReceivedMessage,
    propertiesToModify?: Record<string, unknown>,
    deadletterReason?: string,
    deadletterErrorDescription?: string,
  ): Promise<void>;
}

export interface MessageContext {
  messages: ServiceBusReceivedMessage[];
  actions: MessageActions;
}

const receivedMessage = z.custom<ServiceBusReceivedMessage>(
  (m) => typeof m === 'object' && m !== null && 'body' in m,
);
const messageContextSchema = z.object({
  // An array since the extension's 0.2.0; a single message in 0.1.0 (cardinality one).
  messages: z.union([z.array(receivedMessage), receivedMessage.transform((m) => [m])]),
  actions: z.custom<MessageActions>(
    (a) =>
      typeof a === 'object' &&
      a !== null &&
      typeof (a as Record<string, unknown>).complete === 'function' &&
      typeof (a as Record<string, unknown>).deadletter === 'function' &&
      typeof (a as Record<string, unknown>).abandon === 'function',
  ),
});

/** The body as the worker would bind it: JSON text becomes a value, other bytes stay as they are. */
function bodyOf(message: ServiceBusReceivedMessage): unknown {
  const body: unknown = message.body;
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    const text = Buffer.from(body).toString('utf8');
    const trimmed = text.trimStart();
    if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return text;
      }
    }
    return text;
  }
  return body;
}

export interface Delivery {
  body: unknown;
  messageId: string;
  correlationId?: string;
  deliveryCount: number;
  /** String application properties the sender set (hints only: the body is what is validated). */
  properties: Record<string, string>;
}

/**
 * Runs `work` for each message and settles it: complete on success; dead-letter at once an
 * InvalidMessageError (the reason and description land in the dead-letter properties); abandon anything
 * else (our own storage or bus failed: the broker redelivers, and dead-letters after MaxDeliveryCount).
 */
export async function settleEach(
  input: unknown,
  context: InvocationContext,
  log: (delivery: Delivery) => Logger,
  work: (delivery: Delivery, log: Logger) => Promise<void>,
): Promise<void> {
  const parsed = messageContextSchema.safeParse(input);
  if (!parsed.success)
    throw new Error(
      `${context.functionName}: expected an SDK-type binding ({ messages, actions }); register it with sdkBinding: true`,
    );
  const { messages, actions } = parsed.data;
  for (const message of messages) {
    const delivery: Delivery = {
      body: bodyOf(message),
      messageId:
        typeof message.messageId === 'string'
          ? message.messageId
          : String(message.messageId ?? context.invocationId),
      ...(typeof message.correlationId === 'string' ? { correlationId: message.correlationId } : {}),
      // The SDK counts earlier deliveries (0 on the first); the Functions host reports this one (1).
      deliveryCount: (message.deliveryCount ?? 0) + 1,
      properties: Object.fromEntries(
        Object.entries(message.applicationProperties ?? {}).filter(
          (entry): entry is [string, string] => typeof entry[1] === 'string',
        ),
      ),
    };
    if (message.enqueuedTimeUtc instanceof Date)
      record.queueLag(context.functionName, Date.now() - message.enqueuedTimeUtc.getTime());
    try {
      // A consumer span, child of the sender's (the `traceparent` application property).
      await inSpan(
        `${context.functionName} process`,
        {
          kind: SpanKind.CONSUMER,
          parent: contextFrom(message.applicationProperties?.traceparent),
          attributes: { 'messaging.system': 'servicebus', 'messaging.message.id': delivery.messageId },
        },
        (span) => work(delivery, log(delivery).child({ traceId: traceIdOf(span) })),
      );
    } catch (thrown) {
      const logger = log(delivery);
      if (thrown instanceof InvalidMessageError) {
        logger.warn('message dead-lettered: it can never succeed', {
          messageId: delivery.messageId,
          reason: thrown.deadLetterReason,
          description: thrown.message,
        });
        await actions.deadletter(message, undefined, thrown.deadLetterReason, thrown.message.slice(0, 4096));
        continue;
      }
      const error = toAppError(thrown);
      logger.warn('message abandoned for redelivery', {
        messageId: delivery.messageId,
        code: error.code,
        error: error.message,
        deliveryCount: delivery.deliveryCount,
      });
      await actions.abandon(message);
      continue;
    }
    await actions.complete(message);
  }
}
