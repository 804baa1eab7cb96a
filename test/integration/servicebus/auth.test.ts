import { createHmac } from 'node:crypto';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceBusPeer, type ServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import { captureError, emulatorConfig, receiveAll, serviceBusCodes } from './support.js';

// SAS authorization through the CBS put-token, as the real SDK performs it.
let peer: ServiceBusPeer;
const clients: ServiceBusClient[] = [];
const quick = { retryOptions: { maxRetries: 0, timeoutInMs: 5000 } };

function clientFor(connectionString: string): ServiceBusClient {
  const client = new ServiceBusClient(connectionString, quick);
  clients.push(client);
  return client;
}

/** A SAS token as Microsoft documents it, for connection strings carrying SharedAccessSignature=. */
function sasToken(resource: string, keyName: string, key: string, expiresAtSeconds: number): string {
  const encoded = encodeURIComponent(resource);
  const signature = createHmac('sha256', key).update(`${encoded}\n${expiresAtSeconds}`).digest('base64');
  return `SharedAccessSignature sr=${encoded}&sig=${encodeURIComponent(signature)}&se=${expiresAtSeconds}&skn=${keyName}`;
}

beforeAll(async () => {
  peer = await startServiceBusPeer({
    keyName: 'RootManageSharedAccessKey',
    key: 'local-root-key',
    config: emulatorConfig([
      // Per-site agent: Listen on its own queue, Send on the reply queue, nothing else.
      {
        Name: 'agent-site-a',
        Properties: { AuthorizationRules: [{ KeyName: 'site-a', Key: 'site-a-key', Rights: ['Listen'] }] },
      },
      { Name: 'agent-site-b' },
      { Name: 'agent-replies' },
    ]),
    extraRules: [{ keyName: 'site-a', key: 'site-a-key', rights: ['Send'], entity: 'agent-replies' }],
  });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await peer?.stop();
});

describe('Service Bus peer: SAS authorization', () => {
  it('the namespace key (Manage) can send and receive anywhere', async () => {
    const root = clientFor(peer.connectionString);
    expect(peer.connectionString).toContain(
      'SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=local-root-key;UseDevelopmentEmulator=true',
    );
    await root.createSender('agent-site-b').sendMessages({ body: 'hello', messageId: 'root-1' });
    const [message] = await receiveAll(
      root.createReceiver('agent-site-b', { receiveMode: 'receiveAndDelete' }),
      1,
    );
    expect(message?.messageId).toBe('root-1');
  });

  it('a Listen-only key cannot send to its queue (UnauthorizedAccess) but can receive from it', async () => {
    const root = clientFor(peer.connectionString);
    await root.createSender('agent-site-a').sendMessages({ body: 'command', messageId: 'cmd-1' });
    const agent = clientFor(peer.connectionStringFor('site-a'));
    const error = await captureError(() =>
      agent.createSender('agent-site-a').sendMessages({ body: 'forged' }),
    );
    expect(serviceBusCodes(error)).toContain('UnauthorizedAccess');
    expect(String(error instanceof AggregateError ? error.errors.at(-1) : error)).toContain(
      "'Send' claim(s) are required",
    );
    const [message] = await receiveAll(agent.createReceiver('agent-site-a'), 1);
    expect(message?.messageId).toBe('cmd-1');
  });

  it('a site key sends replies but cannot read the reply queue or another site queue', async () => {
    const agent = clientFor(peer.connectionStringFor('site-a'));
    await agent.createSender('agent-replies').sendMessages({ body: 'done', messageId: 'reply-1' });
    const listenReplies = await captureError(() =>
      agent.createReceiver('agent-replies').receiveMessages(1, { maxWaitTimeInMs: 300 }),
    );
    expect(serviceBusCodes(listenReplies)).toContain('UnauthorizedAccess');
    const otherSite = await captureError(() =>
      agent.createReceiver('agent-site-b').receiveMessages(1, { maxWaitTimeInMs: 300 }),
    );
    expect(serviceBusCodes(otherSite)).toContain('UnauthorizedAccess');
    const root = clientFor(peer.connectionString);
    const [reply] = await receiveAll(
      root.createReceiver('agent-replies', { receiveMode: 'receiveAndDelete' }),
      1,
    );
    expect(reply?.messageId).toBe('reply-1');
  });

  it('a wrong key or an unknown key name is refused', async () => {
    const wrongKey = clientFor(peer.connectionString.replace('local-root-key', 'not-the-key'));
    expect(
      serviceBusCodes(
        await captureError(() => wrongKey.createSender('agent-site-b').sendMessages({ body: 'x' })),
      ),
    ).toContain('UnauthorizedAccess');
    const emulatorDefault = clientFor(peer.connectionString.replace('local-root-key', 'SAS_KEY_VALUE'));
    expect(
      serviceBusCodes(
        await captureError(() =>
          emulatorDefault.createReceiver('agent-site-b').receiveMessages(1, { maxWaitTimeInMs: 300 }),
        ),
      ),
    ).toContain('UnauthorizedAccess');
    const unknownName = clientFor(peer.connectionString.replace('RootManageSharedAccessKey', 'nobody'));
    expect(
      serviceBusCodes(
        await captureError(() => unknownName.createSender('agent-site-b').sendMessages({ body: 'x' })),
      ),
    ).toContain('UnauthorizedAccess');
  });

  it('verifies a pre-issued SAS token: accepted while valid, refused once expired', async () => {
    const endpoint = `sb://127.0.0.1:${peer.port}`;
    const connection = (token: string): string =>
      `Endpoint=${endpoint};SharedAccessSignature=${token};UseDevelopmentEmulator=true`;
    const valid = clientFor(
      connection(
        sasToken(
          `${endpoint}/agent-site-b`,
          'RootManageSharedAccessKey',
          'local-root-key',
          Math.floor(Date.now() / 1000) + 600,
        ),
      ),
    );
    await valid.createSender('agent-site-b').sendMessages({ body: 'with token' });
    const expired = clientFor(
      connection(
        sasToken(
          `${endpoint}/agent-site-b`,
          'RootManageSharedAccessKey',
          'local-root-key',
          Math.floor(Date.now() / 1000) - 5,
        ),
      ),
    );
    const error = await captureError(() =>
      expired.createSender('agent-site-b').sendMessages({ body: 'late' }),
    );
    expect(serviceBusCodes(error)).toContain('UnauthorizedAccess');
    expect(String(error instanceof AggregateError ? error.errors.at(-1) : error)).toContain('ExpiredToken');
    const otherEntity = clientFor(
      connection(
        sasToken(
          `${endpoint}/agent-site-b`,
          'RootManageSharedAccessKey',
          'local-root-key',
          Math.floor(Date.now() / 1000) + 600,
        ),
      ),
    );
    expect(
      serviceBusCodes(
        await captureError(() => otherEntity.createSender('agent-replies').sendMessages({ body: 'x' })),
      ),
    ).toContain('UnauthorizedAccess');
  });

  it('rules added while running take effect for new connections', async () => {
    peer.addRule({ keyName: 'late-site', key: 'late-key', rights: ['Listen'], entity: 'agent-site-b' });
    const late = clientFor(peer.connectionStringFor('late-site'));
    expect(await late.createReceiver('agent-site-b').peekMessages(1)).toBeInstanceOf(Array);
    expect(
      serviceBusCodes(
        await captureError(() => late.createSender('agent-site-b').sendMessages({ body: 'x' })),
      ),
    ).toContain('UnauthorizedAccess');
  });
});
