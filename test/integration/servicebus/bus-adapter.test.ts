import type { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startServiceBusPeer, type ServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import {
  createServiceBusBus,
  createServiceBusClient,
  type ServiceBusBus,
} from '../../../shared/adapters/service-bus/index.js';
import { isAppError } from '../../../shared/errors.js';
import { defineMessageContract, deterministicMessageId, parseMessage } from '../../../shared/ports/bus.js';
import { captureError, emulatorConfig, receiveAll } from './support.js';

// The Bus port over the real SDK against the peer: validation, deduplication by deterministic ids,
// batching and the mapping of Service Bus failures to AppError codes.
const provisionUser = defineMessageContract({
  queue: 'directory-work',
  name: 'provisionUser',
  schema: z.object({ operationId: z.string().min(1), email: z.email() }),
});
const unknownQueue = defineMessageContract({
  queue: 'no-such-queue',
  name: 'lost',
  schema: z.object({ n: z.number() }),
});

let peer: ServiceBusPeer;
let client: ServiceBusClient;
let bus: ServiceBusBus;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    config: emulatorConfig([
      {
        Name: 'directory-work',
        Properties: {
          RequiresDuplicateDetection: true,
          DuplicateDetectionHistoryTimeWindow: 'PT10M',
          AuthorizationRules: [{ KeyName: 'reader', Key: 'reader-key', Rights: ['Listen'] }],
        },
      },
    ]),
  });
  client = createServiceBusClient({
    connectionString: peer.connectionString,
    options: { retryOptions: { maxRetries: 0 } },
  });
  bus = createServiceBusBus(client);
});

afterAll(async () => {
  await bus?.close();
  await client?.close();
  await peer?.stop();
});

describe('Service Bus adapter for the Bus port', () => {
  it('sends a valid body with its message id, correlation id, subject and properties', async () => {
    const messageId = deterministicMessageId('op-1', 'ad-create');
    await bus.send(
      provisionUser,
      { operationId: 'op-1', email: 'ada@contoso.com' },
      {
        messageId,
        correlationId: 'op-1',
        applicationProperties: { step: 'ad-create', attempt: 1 },
      },
    );
    const receiver = client.createReceiver('directory-work', { receiveMode: 'receiveAndDelete' });
    const [message] = await receiveAll(receiver, 1);
    await receiver.close();
    expect(message?.messageId).toBe(messageId);
    expect(message?.correlationId).toBe('op-1');
    expect(message?.subject).toBe('provisionUser');
    expect(message?.contentType).toBe('application/json');
    expect(message?.applicationProperties).toEqual({ step: 'ad-create', attempt: 1 });
    expect(parseMessage(provisionUser, message?.body)).toEqual({
      operationId: 'op-1',
      email: 'ada@contoso.com',
    });
  });

  it('a retried send with the same deterministic id is delivered once', async () => {
    const body = { operationId: 'op-2', email: 'bob@contoso.com' };
    const options = { messageId: deterministicMessageId('op-2', 'ad-create') };
    await bus.send(provisionUser, body, options);
    await bus.send(provisionUser, body, options);
    await bus.sendBatch(provisionUser, [{ body, options }]);
    const receiver = client.createReceiver('directory-work', { receiveMode: 'receiveAndDelete' });
    const received = await receiveAll(receiver, 3, 1000);
    await receiver.close();
    expect(received.map((message) => message.messageId)).toEqual([options.messageId]);
  });

  it('refuses an invalid body with a Validation error naming the field, and sends nothing', async () => {
    const error = await captureError(() =>
      bus.send(
        provisionUser,
        { operationId: 'op-3', email: 'not-an-email' },
        { messageId: deterministicMessageId('op-3') },
      ),
    );
    expect(isAppError(error, 'Validation')).toBe(true);
    expect((error as Error).message).toContain('email');
    const batchError = await captureError(() =>
      bus.sendBatch(provisionUser, [
        {
          body: { operationId: 'op-4', email: 'a@contoso.com' },
          options: { messageId: deterministicMessageId('op-4') },
        },
        {
          body: { operationId: '', email: 'b@contoso.com' },
          options: { messageId: deterministicMessageId('op-5') },
        },
      ]),
    );
    expect(isAppError(batchError, 'Validation')).toBe(true);
    const receiver = client.createReceiver('directory-work');
    expect(await receiver.peekMessages(10)).toHaveLength(0);
    await receiver.close();
  });

  it('sends a large batch in several transfers without losing a message', async () => {
    // ≈ 400 bytes each: 600 of them exceed the 256 KiB batch limit, so the adapter must split.
    const items = Array.from({ length: 600 }, (_, i) => ({
      body: { operationId: `bulk-${i}-${'o'.repeat(300)}`, email: `${'a'.repeat(50)}${i}@contoso.com` },
      options: { messageId: deterministicMessageId('bulk', String(i)) },
    }));
    await bus.sendBatch(provisionUser, items);
    const receiver = client.createReceiver('directory-work', { receiveMode: 'receiveAndDelete' });
    const received = await receiveAll(receiver, 600, 10_000);
    await receiver.close();
    expect(new Set(received.map((message) => message.messageId)).size).toBe(600);
  });

  it('maps a missing queue to NotFound and a listen-only key to Forbidden', async () => {
    const notFound = await captureError(() =>
      bus.send(unknownQueue, { n: 1 }, { messageId: deterministicMessageId('x') }),
    );
    expect(isAppError(notFound, 'NotFound')).toBe(true);
    expect((notFound as { retryable: boolean }).retryable).toBe(false);
    const readerClient = createServiceBusClient({
      connectionString: peer.connectionStringFor('reader'),
      options: { retryOptions: { maxRetries: 0 } },
    });
    const readerBus = createServiceBusBus(readerClient);
    const forbidden = await captureError(() =>
      readerBus.send(
        provisionUser,
        { operationId: 'op-9', email: 'c@contoso.com' },
        { messageId: deterministicMessageId('op-9') },
      ),
    );
    expect(isAppError(forbidden, 'Forbidden')).toBe(true);
    await readerBus.close();
    await readerClient.close();
  });
});
