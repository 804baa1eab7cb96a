import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusPeer, type ServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import { emulatorConfig, serviceBusCodes, sleep } from './support.js';

// Soak: 10,000 messages through four streaming receivers with mixed outcomes. Proves the peer keeps
// going (no delivery-slot stall), loses nothing and never hands out a completed message again.
const total = 10_000;
const lockDurationInMs = 1000;
let peer: ServiceBusPeer;
let client: ServiceBusClient;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    config: emulatorConfig([{ Name: 'soak', Properties: { LockDuration: 'PT1S', MaxDeliveryCount: 3 } }]),
  });
  client = new ServiceBusClient(peer.connectionString);
});

afterAll(async () => {
  await client?.close();
  await peer?.stop();
});

/**
 * rhea under the SDK merges two adjacent deliveries' dispositions issued in the same tick into one
 * frame with the first one's outcome (see dev/host/service-bus-trigger.ts); like the local trigger,
 * the soak issues settlements one per event-loop turn.
 */
let tail: Promise<void> = Promise.resolve();
function alone<T>(settle: () => Promise<T>): Promise<T> {
  const issued = tail.then(() => ({ result: settle() }));
  tail = issued.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
  return issued.then(({ result }) => result);
}

type Outcome = 'complete' | 'abandon-once' | 'dead-letter' | 'lock-expiry-once' | 'always-abandon';
/** 60 % complete, 10 % each of the others, by message number. */
function outcomeOf(n: number): Outcome {
  const slot = n % 10;
  if (slot <= 5) return 'complete';
  if (slot === 6) return 'abandon-once';
  if (slot === 7) return 'dead-letter';
  if (slot === 8) return 'lock-expiry-once';
  return 'always-abandon';
}

describe('Service Bus peer soak', () => {
  it(`settles ${total} messages with mixed outcomes: none lost, none redelivered after completion`, async () => {
    const started = Date.now();
    const sender = client.createSender('soak');
    for (let next = 0; next < total;) {
      const batch = await sender.createMessageBatch();
      while (next < total && batch.tryAddMessage({ body: next, messageId: `soak-${next}` })) next++;
      await sender.sendMessages(batch);
    }
    const sentAt = Date.now();

    const completed = new Set<number>();
    let deliveries = 0;
    let deliveredAfterCompletion = 0;
    let lockLostOnLateComplete = 0;
    const unexpected: string[] = [];
    const lateCompletes: Promise<void>[] = [];

    const handle = async (receiverIndex: number, message: ServiceBusReceivedMessage): Promise<void> => {
      const receiver = receivers[receiverIndex]!;
      deliveries += 1;
      const n = message.body as number;
      if (completed.has(n)) deliveredAfterCompletion += 1;
      const firstDelivery = (message.deliveryCount ?? 0) === 0;
      const outcome = outcomeOf(n);
      try {
        if (outcome === 'dead-letter') {
          await alone(() =>
            receiver.deadLetterMessage(message, {
              deadLetterReason: 'soak',
              deadLetterErrorDescription: `message ${n}`,
            }),
          );
        } else if (outcome === 'always-abandon' || (outcome === 'abandon-once' && firstDelivery)) {
          await alone(() => receiver.abandonMessage(message));
        } else if (outcome === 'lock-expiry-once' && firstDelivery) {
          // Walk away; complete after the lock expired, which must fail with MessageLockLost.
          lateCompletes.push(
            sleep(lockDurationInMs + 200).then(async () => {
              try {
                await alone(() => receiver.completeMessage(message));
                unexpected.push(`late complete of ${n} succeeded`);
              } catch (error) {
                if (serviceBusCodes(error).includes('MessageLockLost')) lockLostOnLateComplete += 1;
                else unexpected.push(`late complete of ${n}: ${String(error)}`);
              }
            }),
          );
        } else {
          await alone(() => receiver.completeMessage(message));
          completed.add(n);
        }
      } catch (error) {
        // Under load a lock can lapse before settlement; the message comes back and is handled again.
        if (!serviceBusCodes(error).includes('MessageLockLost'))
          unexpected.push(`${outcome} ${n}: ${String(error)}`);
      }
    };

    // Four links: the SDK frees a received delivery's slot only once every earlier one on its link is
    // settled, so a message left to expire holds up to 2048 deliveries behind it on one link.
    const receivers = [0, 1, 2, 3].map(() =>
      client.createReceiver('soak', { maxAutoLockRenewalDurationInMs: 0 }),
    );
    const subscriptions = receivers.map((receiver, index) =>
      receiver.subscribe(
        {
          processMessage: (message) => handle(index, message),
          processError: async (args) => {
            unexpected.push(`receive error: ${args.error.message}`);
            return Promise.resolve();
          },
        },
        { autoCompleteMessages: false, maxConcurrentCalls: 64 },
      ),
    );

    const expectedCompleted = total * 0.8;
    for (const deadline = Date.now() + 70_000; completed.size < expectedCompleted && Date.now() < deadline;)
      await sleep(100);
    await Promise.all(lateCompletes);
    await sleep(300);
    await Promise.all(subscriptions.map((subscription) => subscription.close()));
    const processedAt = Date.now();

    const deadLetters = client.createReceiver('soak', {
      subQueueType: 'deadLetter',
      receiveMode: 'receiveAndDelete',
    });
    const deadByReason = new Map<string, number[]>();
    for (let received = 0, idle = 0; received < total * 0.2 && idle < 5;) {
      const batch = await deadLetters.receiveMessages(1000, { maxWaitTimeInMs: 500 });
      idle = batch.length === 0 ? idle + 1 : 0;
      received += batch.length;
      for (const message of batch) {
        const reason = message.deadLetterReason ?? 'none';
        deadByReason.set(reason, [...(deadByReason.get(reason) ?? []), message.body as number]);
      }
    }
    const leftover = await receivers[0]!.peekMessages(10);
    await Promise.all([...receivers.map((receiver) => receiver.close()), deadLetters.close()]);

    const deadLettered = [...deadByReason.values()].flat();
    const seconds = (processedAt - sentAt) / 1000;
    console.log(
      `soak: sent ${total} in ${((sentAt - started) / 1000).toFixed(1)} s; ${deliveries} deliveries settled in ${seconds.toFixed(1)} s ` +
        `(${Math.round(deliveries / seconds)}/s); completed ${completed.size}, dead-lettered ${deadLettered.length}, late completes refused ${lockLostOnLateComplete}`,
    );
    expect(unexpected).toEqual([]);
    expect(deliveredAfterCompletion).toBe(0);
    expect(completed.size).toBe(expectedCompleted);
    expect(deadByReason.get('soak')).toHaveLength(total / 10);
    expect(deadByReason.get('MaxDeliveryCountExceeded')).toHaveLength(total / 10);
    expect(new Set([...completed, ...deadLettered]).size).toBe(total);
    expect(deadLettered.filter((n) => completed.has(n))).toEqual([]);
    expect(lockLostOnLateComplete).toBe(total / 10);
    expect(leftover).toEqual([]);
  }, 120_000);
});
