import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusPeer, type ServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import { captureError, emulatorConfig, receiveAll, serviceBusCodes, sleep } from './support.js';

// The real @azure/service-bus SDK against the local peer: each test owns a queue, durations are short.
const fast = { LockDuration: 'PT1S', MaxDeliveryCount: 10 };
let peer: ServiceBusPeer;
let client: ServiceBusClient;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    config: emulatorConfig([
      { Name: 'basic', Properties: { LockDuration: 'PT30S' } },
      { Name: 'batch' },
      { Name: 'rad' },
      { Name: 'abandon', Properties: fast },
      { Name: 'maxdelivery', Properties: { LockDuration: 'PT30S', MaxDeliveryCount: 3 } },
      { Name: 'deadletter' },
      { Name: 'lockexpiry', Properties: fast },
      { Name: 'renew', Properties: fast },
      { Name: 'defer' },
      { Name: 'scheduled' },
      { Name: 'cancel' },
      { Name: 'peek' },
      { Name: 'ttl-drop', Properties: { DefaultMessageTimeToLive: 'PT1S' } },
      { Name: 'ttl-dlq', Properties: { DeadLetteringOnMessageExpiration: true } },
      {
        Name: 'dedupe',
        Properties: { RequiresDuplicateDetection: true, DuplicateDetectionHistoryTimeWindow: 'PT1S' },
      },
      { Name: 'stream' },
      { Name: 'sessions', Properties: { RequiresSession: true } },
      {
        Name: 'forward-dl',
        Properties: { MaxDeliveryCount: 1, ForwardDeadLetteredMessagesTo: 'forward-dl-target' },
      },
      { Name: 'forward-dl-target' },
      { Name: 'outage' },
    ]),
  });
  client = new ServiceBusClient(peer.connectionString, {
    retryOptions: { maxRetries: 1, retryDelayInMs: 100 },
  });
});

afterAll(async () => {
  await client?.close();
  await peer?.stop();
});

const bodies = (messages: ServiceBusReceivedMessage[]): unknown[] =>
  messages.map((message) => message.body as unknown);

describe('Service Bus peer: queues', () => {
  it('delivers a message in peek-lock with its properties and removes it on complete', async () => {
    const before = Date.now();
    await client.createSender('basic').sendMessages({
      body: { orderId: 7 },
      messageId: 'basic-1',
      correlationId: 'corr-1',
      subject: 'order.created',
      contentType: 'application/json',
      applicationProperties: { tenant: 'contoso', attempt: 2, urgent: true },
    });
    const receiver = client.createReceiver('basic');
    const [message] = await receiveAll(receiver, 1);
    expect(message?.body).toEqual({ orderId: 7 });
    expect(message?.messageId).toBe('basic-1');
    expect(message?.correlationId).toBe('corr-1');
    expect(message?.subject).toBe('order.created');
    expect(message?.contentType).toBe('application/json');
    expect(message?.applicationProperties).toEqual({ tenant: 'contoso', attempt: 2, urgent: true });
    expect(message?.deliveryCount).toBe(0);
    expect(message?.sequenceNumber?.toNumber()).toBe(1);
    expect(message?.enqueuedTimeUtc?.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(message?.lockedUntilUtc?.getTime()).toBeGreaterThan(Date.now() + 25_000);
    expect(message?.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    await receiver.completeMessage(message!);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    expect(await receiver.peekMessages(10, { fromSequenceNumber: undefined })).toHaveLength(0);
    await receiver.close();
  });

  it('accepts a batch in one transfer and hands the messages out in order', async () => {
    const sender = client.createSender('batch');
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < 50; i++) expect(batch.tryAddMessage({ body: `m${i}` })).toBe(true);
    await sender.sendMessages(batch);
    await sender.sendMessages([{ body: 'array-1' }, { body: 'array-2' }]);
    const receiver = client.createReceiver('batch', { receiveMode: 'receiveAndDelete' });
    const received = await receiveAll(receiver, 52);
    expect(bodies(received)).toEqual([
      ...Array.from({ length: 50 }, (_, i) => `m${i}`),
      'array-1',
      'array-2',
    ]);
    const sequenceNumbers = received.map((message) => message.sequenceNumber?.toNumber() ?? 0);
    expect(sequenceNumbers).toEqual([...sequenceNumbers].sort((a, b) => a - b));
    expect(new Set(received.map((message) => message.messageId)).size).toBe(52);
    await receiver.close();
  });

  it('receive-and-delete removes messages on delivery', async () => {
    await client.createSender('rad').sendMessages([{ body: 1 }, { body: 2 }, { body: 3 }]);
    const receiver = client.createReceiver('rad', { receiveMode: 'receiveAndDelete' });
    expect(bodies(await receiveAll(receiver, 3))).toEqual([1, 2, 3]);
    expect(await receiver.peekMessages(10)).toHaveLength(0);
    await receiver.close();
  });

  it('abandon makes the message available again with deliveryCount incremented', async () => {
    await client.createSender('abandon').sendMessages({ body: 'again', messageId: 'ab-1' });
    const receiver = client.createReceiver('abandon');
    const counts: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const [message] = await receiveAll(receiver, 1);
      expect(message?.messageId).toBe('ab-1');
      counts.push(message?.deliveryCount ?? -1);
      await receiver.abandonMessage(message!);
    }
    expect(counts).toEqual([0, 1, 2]);
    await receiver.close();
  });

  it('dead-letters with MaxDeliveryCountExceeded once MaxDeliveryCount deliveries failed', async () => {
    await client.createSender('maxdelivery').sendMessages({ body: 'poison', messageId: 'md-1' });
    const receiver = client.createReceiver('maxdelivery');
    for (let attempt = 0; attempt < 3; attempt++) {
      const [message] = await receiveAll(receiver, 1);
      expect(message?.deliveryCount).toBe(attempt);
      await receiver.abandonMessage(message!);
    }
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    const deadLetters = client.createReceiver('maxdelivery', { subQueueType: 'deadLetter' });
    const [dead] = await receiveAll(deadLetters, 1);
    expect(dead?.messageId).toBe('md-1');
    expect(dead?.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    expect(dead?.deadLetterErrorDescription).toContain('3 delivery attempts');
    expect(dead?.deadLetterSource).toBe('maxdelivery');
    await deadLetters.completeMessage(dead!);
    await Promise.all([receiver.close(), deadLetters.close()]);
  });

  it('dead-letter carries the reason and description and keeps the application properties', async () => {
    await client
      .createSender('deadletter')
      .sendMessages({ body: { bad: true }, messageId: 'dl-1', applicationProperties: { kind: 'x' } });
    const receiver = client.createReceiver('deadletter');
    const [message] = await receiveAll(receiver, 1);
    await receiver.deadLetterMessage(message!, {
      deadLetterReason: 'SchemaValidationFailed',
      deadLetterErrorDescription: 'email: Required',
    });
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    const deadLetters = client.createReceiver('deadletter/$DeadLetterQueue');
    const [dead] = await receiveAll(deadLetters, 1);
    expect(dead?.body).toEqual({ bad: true });
    expect(dead?.deadLetterReason).toBe('SchemaValidationFailed');
    expect(dead?.deadLetterErrorDescription).toBe('email: Required');
    expect(dead?.applicationProperties).toMatchObject({
      kind: 'x',
      DeadLetterReason: 'SchemaValidationFailed',
    });
    await Promise.all([receiver.close(), deadLetters.close()]);
  });

  it('redelivers when the lock expires, and a late complete fails with MessageLockLost', async () => {
    await client.createSender('lockexpiry').sendMessages({ body: 'slow', messageId: 'le-1' });
    // The SDK renews locks of received messages by itself (5 minutes by default); switch that off.
    const receiver = client.createReceiver('lockexpiry', { maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await receiveAll(receiver, 1);
    expect(first?.deliveryCount).toBe(0);
    await sleep(1300);
    const [second] = await receiveAll(receiver, 1);
    expect(second?.messageId).toBe('le-1');
    expect(second?.deliveryCount).toBe(1);
    expect(second?.lockToken).not.toBe(first?.lockToken);
    const error = await captureError(() => receiver.completeMessage(first!));
    expect(serviceBusCodes(error)).toContain('MessageLockLost');
    await receiver.completeMessage(second!);
    await receiver.close();
  });

  it('renewMessageLock keeps the message locked past its lock duration', async () => {
    await client.createSender('renew').sendMessages({ body: 'long', messageId: 'rn-1' });
    const receiver = client.createReceiver('renew', { maxAutoLockRenewalDurationInMs: 0 });
    const [message] = await receiveAll(receiver, 1);
    const firstLock = message!.lockedUntilUtc!.getTime();
    for (let i = 0; i < 3; i++) {
      await sleep(600);
      await receiver.renewMessageLock(message!);
    }
    expect(message!.lockedUntilUtc!.getTime()).toBeGreaterThan(firstLock + 1500);
    const other = client.createReceiver('renew');
    expect(await other.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    await receiver.completeMessage(message!);
    await Promise.all([receiver.close(), other.close()]);
  });

  it('a deferred message is only received by its sequence number', async () => {
    await client.createSender('defer').sendMessages({ body: 'later', messageId: 'df-1' });
    const receiver = client.createReceiver('defer');
    const [message] = await receiveAll(receiver, 1);
    const sequenceNumber = message!.sequenceNumber!;
    await receiver.deferMessage(message!);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    const [peeked] = await receiver.peekMessages(1, { fromSequenceNumber: sequenceNumber });
    expect(peeked?.state).toBe('deferred');
    const [deferred] = await receiver.receiveDeferredMessages(sequenceNumber);
    expect(deferred?.messageId).toBe('df-1');
    expect(deferred?.lockToken).toBeDefined();
    await receiver.completeMessage(deferred!);
    const error = await captureError(() => receiver.receiveDeferredMessages(sequenceNumber));
    expect(serviceBusCodes(error)).toContain('MessageNotFound');
    await receiver.close();
  });

  it('a scheduled message is invisible until its time and then delivered', async () => {
    const sender = client.createSender('scheduled');
    const at = new Date(Date.now() + 1200);
    const [sequenceNumber] = await sender.scheduleMessages({ body: 'on time', messageId: 'sc-1' }, at);
    expect(sequenceNumber?.toNumber()).toBeGreaterThan(0);
    const receiver = client.createReceiver('scheduled');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 400 })).toHaveLength(0);
    const [peeked] = await receiver.peekMessages(1, { fromSequenceNumber: sequenceNumber! });
    expect(peeked?.state).toBe('scheduled');
    const [message] = await receiveAll(receiver, 1, 3000);
    expect(message?.messageId).toBe('sc-1');
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime() - 5);
    expect(message?.enqueuedTimeUtc?.getTime()).toBeGreaterThanOrEqual(at.getTime() - 5);
    await receiver.completeMessage(message!);
    await receiver.close();
  });

  it('a cancelled scheduled message never arrives', async () => {
    const sender = client.createSender('cancel');
    const [sequenceNumber] = await sender.scheduleMessages({ body: 'never' }, new Date(Date.now() + 600));
    await sender.cancelScheduledMessages(sequenceNumber!);
    await sleep(900);
    const receiver = client.createReceiver('cancel');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    expect(await receiver.peekMessages(5)).toHaveLength(0);
    await receiver.close();
  });

  it('peek neither locks nor counts as a delivery', async () => {
    await client.createSender('peek').sendMessages([{ body: 'p1' }, { body: 'p2' }]);
    const peeker = client.createReceiver('peek');
    const peeked = await peeker.peekMessages(10);
    expect(bodies(peeked)).toEqual(['p1', 'p2']);
    expect(peeked.map((message) => message.lockToken)).toEqual([undefined, undefined]);
    const receiver = client.createReceiver('peek');
    const received = await receiveAll(receiver, 2);
    expect(bodies(received)).toEqual(['p1', 'p2']);
    expect(received.map((message) => message.deliveryCount)).toEqual([0, 0]);
    for (const message of received) await receiver.completeMessage(message);
    expect(await peeker.peekMessages(10, { fromSequenceNumber: peeked[0]!.sequenceNumber! })).toHaveLength(0);
    await Promise.all([peeker.close(), receiver.close()]);
  });

  it('drops a message whose time to live passed (no dead-lettering on expiration)', async () => {
    await client.createSender('ttl-drop').sendMessages({ body: 'stale' });
    await sleep(1300);
    const receiver = client.createReceiver('ttl-drop');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    const deadLetters = client.createReceiver('ttl-drop', { subQueueType: 'deadLetter' });
    expect(await deadLetters.peekMessages(5)).toHaveLength(0);
    await Promise.all([receiver.close(), deadLetters.close()]);
  });

  it('dead-letters an expired message with TTLExpiredException where DeadLetteringOnMessageExpiration', async () => {
    await client
      .createSender('ttl-dlq')
      .sendMessages({ body: 'expiring', messageId: 'ttl-1', timeToLive: 500 });
    await sleep(1200);
    const receiver = client.createReceiver('ttl-dlq');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    const deadLetters = client.createReceiver('ttl-dlq', { subQueueType: 'deadLetter' });
    const [dead] = await receiveAll(deadLetters, 1);
    expect(dead?.messageId).toBe('ttl-1');
    expect(dead?.deadLetterReason).toBe('TTLExpiredException');
    await Promise.all([receiver.close(), deadLetters.close()]);
  });

  it('drops a duplicate MessageId inside the detection window and accepts it after', async () => {
    const sender = client.createSender('dedupe');
    await sender.sendMessages({ body: 'first', messageId: 'same-id' });
    await sender.sendMessages({ body: 'retry', messageId: 'same-id' });
    await sender.sendMessages([{ body: 'batched retry', messageId: 'same-id' }]);
    const receiver = client.createReceiver('dedupe', { receiveMode: 'receiveAndDelete' });
    expect(bodies(await receiveAll(receiver, 3, 1000))).toEqual(['first']);
    await sleep(1200);
    await sender.sendMessages({ body: 'later', messageId: 'same-id' });
    expect(bodies(await receiveAll(receiver, 1))).toEqual(['later']);
    await receiver.close();
  });

  it('subscribe streams every message to the handler and completes it', async () => {
    const sender = client.createSender('stream');
    await sender.sendMessages(Array.from({ length: 40 }, (_, i) => ({ body: i })));
    const receiver = client.createReceiver('stream');
    const seen: number[] = [];
    const subscription = receiver.subscribe(
      {
        processMessage: async (message) => {
          seen.push(message.body as number);
          return Promise.resolve();
        },
        processError: async (args) => Promise.reject(args.error),
      },
      { maxConcurrentCalls: 4 },
    );
    for (let waited = 0; seen.length < 40 && waited < 5000; waited += 50) await sleep(50);
    await subscription.close();
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    await sleep(100);
    expect(await receiver.peekMessages(50)).toHaveLength(0);
    await receiver.close();
  });

  it('forwards dead-lettered messages to ForwardDeadLetteredMessagesTo with their reason', async () => {
    await client.createSender('forward-dl').sendMessages({ body: 'fwd', messageId: 'fwd-1' });
    const receiver = client.createReceiver('forward-dl');
    const [message] = await receiveAll(receiver, 1);
    await receiver.abandonMessage(message!);
    const target = client.createReceiver('forward-dl-target', { receiveMode: 'receiveAndDelete' });
    const [forwarded] = await receiveAll(target, 1);
    expect(forwarded?.messageId).toBe('fwd-1');
    expect(forwarded?.applicationProperties?.DeadLetterReason).toBe('MaxDeliveryCountExceeded');
    const ownDeadLetters = client.createReceiver('forward-dl', { subQueueType: 'deadLetter' });
    expect(await ownDeadLetters.peekMessages(5)).toHaveLength(0);
    await Promise.all([receiver.close(), target.close(), ownDeadLetters.close()]);
  });

  it('keeps messages through an outage (restart) and the SDK reconnects by itself', async () => {
    const sender = client.createSender('outage');
    await sender.sendMessages({ body: 'before', messageId: 'out-1' });
    await peer.restart(300);
    await sender.sendMessages({ body: 'after', messageId: 'out-2' });
    const receiver = client.createReceiver('outage', { receiveMode: 'receiveAndDelete' });
    const received = await receiveAll(receiver, 2);
    expect(received.map((message) => message.messageId)).toEqual(['out-1', 'out-2']);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('refuses an unknown entity with MessagingEntityNotFound', async () => {
    const error = await captureError(() => client.createSender('no-such-queue').sendMessages({ body: 'x' }));
    expect(serviceBusCodes(error)).toContain('MessagingEntityNotFound');
  });

  it('refuses receivers on a RequiresSession queue clearly (sessions are not implemented)', async () => {
    const receiver = client.createReceiver('sessions');
    const error = await captureError(() => receiver.receiveMessages(1, { maxWaitTimeInMs: 500 }));
    expect(String(error instanceof AggregateError ? error.errors.at(-1) : error)).toMatch(
      /does not implement sessions/,
    );
    await receiver.close();
  });
});
