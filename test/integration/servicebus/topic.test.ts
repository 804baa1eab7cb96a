import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusPeer, type ServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import { emulatorConfig, receiveAll, sleep } from './support.js';

// Topics fan out to subscriptions through their rules; each subscription is a queue of its own.
let peer: ServiceBusPeer;
let client: ServiceBusClient;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    config: emulatorConfig(
      [{ Name: 'forward-target' }],
      [
        {
          Name: 'events',
          Properties: { RequiresDuplicateDetection: true, DuplicateDetectionHistoryTimeWindow: 'PT1M' },
          Subscriptions: [
            { Name: 'all' },
            {
              Name: 'licences',
              Properties: { MaxDeliveryCount: 2, LockDuration: 'PT30S' },
              Rules: [
                {
                  Name: 'by-subject',
                  Properties: { FilterType: 'Correlation', CorrelationFilter: { Label: 'licence.changed' } },
                },
              ],
            },
            {
              Name: 'contoso',
              Rules: [
                {
                  Name: 'by-tenant',
                  Properties: {
                    FilterType: 'Correlation',
                    CorrelationFilter: { Properties: { tenant: 'contoso' } },
                  },
                },
              ],
            },
            {
              Name: 'nothing',
              Rules: [
                { Name: 'off', Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: '1=0' } } },
              ],
            },
            { Name: 'forwarder', Properties: { ForwardTo: 'forward-target' } },
          ],
        },
      ],
    ),
  });
  client = new ServiceBusClient(peer.connectionString);
});

afterAll(async () => {
  await client?.close();
  await peer?.stop();
});

const drain = async (path: string, expected: number, timeoutInMs = 1500): Promise<string[]> => {
  const [topic, , subscription] = path.split('/');
  const receiver =
    subscription === undefined
      ? client.createReceiver(path, { receiveMode: 'receiveAndDelete' })
      : client.createReceiver(topic!, subscription, { receiveMode: 'receiveAndDelete' });
  const messages = await receiveAll(receiver, expected, timeoutInMs);
  await receiver.close();
  return messages.map((message) => message.messageId as string);
};

describe('Service Bus peer: topics and subscriptions', () => {
  it('copies each message to every subscription whose correlation filter matches', async () => {
    const sender = client.createSender('events');
    await sender.sendMessages([
      { body: 1, messageId: 'e1', subject: 'licence.changed' },
      { body: 2, messageId: 'e2', subject: 'user.created', applicationProperties: { tenant: 'contoso' } },
      { body: 3, messageId: 'e3', subject: 'licence.changed', applicationProperties: { tenant: 'fabrikam' } },
    ]);
    expect(await drain('events/Subscriptions/all', 3)).toEqual(['e1', 'e2', 'e3']);
    expect(await drain('events/Subscriptions/licences', 2)).toEqual(['e1', 'e3']);
    expect(await drain('events/Subscriptions/contoso', 1)).toEqual(['e2']);
    expect(await drain('events/Subscriptions/nothing', 1)).toEqual([]);
    expect(await drain('forward-target', 3)).toEqual(['e1', 'e2', 'e3']);
  });

  it('detects duplicates at the topic', async () => {
    const sender = client.createSender('events');
    await sender.sendMessages({ body: 'a', messageId: 'dup-topic' });
    await sender.sendMessages({ body: 'b', messageId: 'dup-topic' });
    expect(await drain('events/Subscriptions/all', 2)).toEqual(['dup-topic']);
    await drain('forward-target', 1);
  });

  it('a subscription has its own lock, delivery count and dead-letter queue', async () => {
    await client
      .createSender('events')
      .sendMessages({ body: 'x', messageId: 'sub-dl', subject: 'licence.changed' });
    const receiver = client.createReceiver('events', 'licences');
    for (let attempt = 0; attempt < 2; attempt++) {
      const [message] = await receiveAll(receiver, 1);
      expect(message?.deliveryCount).toBe(attempt);
      await receiver.abandonMessage(message!);
    }
    const deadLetters = client.createReceiver('events', 'licences', { subQueueType: 'deadLetter' });
    const [dead] = await receiveAll(deadLetters, 1);
    expect(dead?.messageId).toBe('sub-dl');
    expect(dead?.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    expect(dead?.deadLetterSource).toBe('events/Subscriptions/licences');
    await Promise.all([
      receiver.close(),
      deadLetters.close(),
      drain('events/Subscriptions/all', 1),
      drain('forward-target', 1),
    ]);
  });

  it('scheduled topic messages reach subscriptions at their time; cancelled ones never', async () => {
    const sender = client.createSender('events');
    const at = new Date(Date.now() + 1500);
    const [keep] = await sender.scheduleMessages({ body: 'k', messageId: 'sched-keep' }, at);
    const [drop] = await sender.scheduleMessages({ body: 'd', messageId: 'sched-drop' }, at);
    expect(keep?.toNumber()).not.toBe(drop?.toNumber());
    await sender.cancelScheduledMessages(drop!);
    expect(await drain('events/Subscriptions/all', 1, 400)).toEqual([]);
    await sleep(Math.max(0, at.getTime() - Date.now()));
    expect(await drain('events/Subscriptions/all', 2)).toEqual(['sched-keep']);
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime());
  });
});
