import type { InvocationContext } from '@azure/functions';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQueueTrigger } from '../../../dev/host/service-bus-trigger.js';
import { startServiceBusPeer, type ServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import { settleEach } from '../../../functions/queue/delivery.js';
import { InvalidMessageError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/logging.js';
import { emulatorConfig, receiveAll, sleep } from './support.js';

// The local Functions queue trigger over the real SDK and the peer, with Azure's extension semantics.
const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quietLogger };
let peer: ServiceBusPeer;
let client: ServiceBusClient;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    config: emulatorConfig([
      { Name: 'ok' },
      { Name: 'failing', Properties: { LockDuration: 'PT5S', MaxDeliveryCount: 4 } },
      { Name: 'invalid', Properties: { MaxDeliveryCount: 10 } },
      { Name: 'slow', Properties: { LockDuration: 'PT1S' } },
      { Name: 'plain', Properties: { LockDuration: 'PT5S', MaxDeliveryCount: 3 } },
      { Name: 'concurrency' },
      { Name: 'bodies' },
      { Name: 'shutdown' },
    ]),
  });
  client = new ServiceBusClient(peer.connectionString);
});

afterAll(async () => {
  await client?.close();
  await peer?.stop();
});

async function waitFor(condition: () => boolean, timeoutInMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutInMs; !condition() && Date.now() < deadline;) await sleep(25);
  expect(condition()).toBe(true);
}

describe('local Service Bus queue trigger', () => {
  it('hands the parsed JSON body and trigger metadata to the handler and completes the message', async () => {
    const calls: { body: unknown; context: InvocationContext }[] = [];
    const trigger = await startQueueTrigger({
      client,
      queueName: 'ok',
      functionName: 'okWorker',
      handler: async (body, context) => {
        calls.push({ body, context });
        return Promise.resolve();
      },
    });
    await client.createSender('ok').sendMessages({
      body: { userId: 'u1' },
      messageId: 'ok-1',
      correlationId: 'op-1',
      applicationProperties: { tenant: 't1' },
    });
    await waitFor(() => calls.length === 1);
    await sleep(200);
    await trigger.close();
    const [call] = calls;
    expect(call?.body).toEqual({ userId: 'u1' });
    expect(call?.context.functionName).toBe('okWorker');
    expect(call?.context.invocationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(call?.context.triggerMetadata).toMatchObject({
      deliveryCount: 1,
      messageId: 'ok-1',
      correlationId: 'op-1',
      applicationProperties: { tenant: 't1' },
      sequenceNumber: 1,
    });
    expect(typeof call?.context.triggerMetadata?.enqueuedTimeUtc).toBe('string');
    expect(typeof call?.context.triggerMetadata?.lockToken).toBe('string');
    const receiver = client.createReceiver('ok');
    expect(await receiver.peekMessages(5)).toHaveLength(0);
    await receiver.close();
  });

  it('binds text as a string and bytes as a Buffer, as the Node worker does', async () => {
    const seen: unknown[] = [];
    const trigger = await startQueueTrigger({
      client,
      queueName: 'bodies',
      functionName: 'bodies',
      handler: async (body) => {
        seen.push(body);
        return Promise.resolve();
      },
      maxConcurrentCalls: 1,
    });
    await client
      .createSender('bodies')
      .sendMessages([{ body: 'plain text' }, { body: Buffer.from([0xff, 0x00, 0x01]) }, { body: [1, 2] }]);
    await waitFor(() => seen.length === 3);
    await trigger.close();
    expect(seen[0]).toBe('plain text');
    expect(Buffer.isBuffer(seen[1])).toBe(true);
    expect(seen[2]).toEqual([1, 2]);
  });

  it('retries a throwing handler and the message lands in the DLQ with MaxDeliveryCountExceeded', async () => {
    const deliveryCounts: unknown[] = [];
    const trigger = await startQueueTrigger({
      client,
      queueName: 'failing',
      functionName: 'failing',
      handler: async (_body, context) => {
        deliveryCounts.push(context.triggerMetadata?.deliveryCount);
        return Promise.reject(new Error('downstream unavailable'));
      },
    });
    await client.createSender('failing').sendMessages({ body: { n: 1 }, messageId: 'fail-1' });
    await waitFor(() => deliveryCounts.length === 4);
    await sleep(300);
    await trigger.close();
    expect(deliveryCounts).toEqual([1, 2, 3, 4]);
    const deadLetters = client.createReceiver('failing', { subQueueType: 'deadLetter' });
    const [dead] = await receiveAll(deadLetters, 1);
    expect(dead?.messageId).toBe('fail-1');
    expect(dead?.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    await deadLetters.close();
  });

  it('dead-letters an InvalidMessageError on the first delivery with its reason and description (SDK-type binding)', async () => {
    // The worker's own settlement (functions/queue/delivery.ts), the path Azure runs with sdkBinding.
    let calls = 0;
    const trigger = await startQueueTrigger({
      client,
      queueName: 'invalid',
      functionName: 'invalid',
      sdkBinding: true,
      handler: (input, context) =>
        settleEach(
          input,
          context,
          () => quietLogger,
          () => {
            calls += 1;
            return Promise.reject(
              new InvalidMessageError('SchemaValidationFailed', 'userProvisioning: email: Required'),
            );
          },
        ),
    });
    await client.createSender('invalid').sendMessages({ body: { nope: true }, messageId: 'inv-1' });
    const deadLetters = client.createReceiver('invalid', { subQueueType: 'deadLetter' });
    const [dead] = await receiveAll(deadLetters, 1);
    await trigger.close();
    expect(calls).toBe(1);
    expect(dead?.messageId).toBe('inv-1');
    expect(dead?.deadLetterReason).toBe('SchemaValidationFailed');
    expect(dead?.deadLetterErrorDescription).toBe('userProvisioning: email: Required');
    expect(dead?.deliveryCount).toBe(0);
    await deadLetters.close();
  });

  it('with a plain binding an InvalidMessageError is only abandoned, as the Functions extension does', async () => {
    let calls = 0;
    const trigger = await startQueueTrigger({
      client,
      queueName: 'plain',
      functionName: 'plain',
      handler: () => {
        calls += 1;
        return Promise.reject(new InvalidMessageError('SchemaValidationFailed', 'bad'));
      },
    });
    await client.createSender('plain').sendMessages({ body: { nope: true }, messageId: 'plain-1' });
    const deadLetters = client.createReceiver('plain', { subQueueType: 'deadLetter' });
    const [dead] = await receiveAll(deadLetters, 1, 20_000);
    await trigger.close();
    expect(calls).toBe(3);
    expect(dead?.messageId).toBe('plain-1');
    expect(dead?.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    await deadLetters.close();
  });

  it('renews the lock while a handler outlives the lock duration, so the message is not redelivered', async () => {
    let calls = 0;
    let finished = false;
    const trigger = await startQueueTrigger({
      client,
      queueName: 'slow',
      functionName: 'slow',
      maxAutoLockRenewalDurationInMs: 30_000,
      handler: async () => {
        calls += 1;
        await sleep(3000); // three lock durations
        finished = true;
      },
    });
    await client.createSender('slow').sendMessages({ body: 'long job', messageId: 'slow-1' });
    await waitFor(() => finished, 8000);
    await sleep(1500); // one more lock duration: a redelivery would show up now
    await trigger.close();
    expect(calls).toBe(1);
    const receiver = client.createReceiver('slow');
    expect(await receiver.peekMessages(5)).toHaveLength(0);
    await receiver.close();
  });

  it('never runs more handlers at once than maxConcurrentCalls', async () => {
    let active = 0;
    let peak = 0;
    let done = 0;
    const trigger = await startQueueTrigger({
      client,
      queueName: 'concurrency',
      functionName: 'concurrency',
      maxConcurrentCalls: 3,
      handler: async () => {
        active += 1;
        peak = Math.max(peak, active);
        await sleep(60);
        active -= 1;
        done += 1;
      },
    });
    await client
      .createSender('concurrency')
      .sendMessages(Array.from({ length: 24 }, (_, i) => ({ body: i })));
    await waitFor(() => done === 24, 10_000);
    await trigger.close();
    expect(peak).toBe(3);
  });

  it('close waits for a running handler and still completes its message', async () => {
    let started = false;
    let finished = false;
    const trigger = await startQueueTrigger({
      client,
      queueName: 'shutdown',
      functionName: 'shutdown',
      handler: async () => {
        started = true;
        await sleep(500);
        finished = true;
      },
    });
    await client.createSender('shutdown').sendMessages({ body: 'in flight', messageId: 'sd-1' });
    await waitFor(() => started);
    await trigger.close();
    expect(finished).toBe(true);
    const receiver = client.createReceiver('shutdown');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toHaveLength(0);
    expect(await receiver.peekMessages(5)).toHaveLength(0);
    await receiver.close();
  });

  it('fails at start when the queue does not exist', async () => {
    await expect(
      startQueueTrigger({
        client,
        queueName: 'missing',
        functionName: 'missing',
        handler: async () => Promise.resolve(),
      }),
    ).rejects.toThrow(/could not be found/);
  });
});
