import { z } from 'zod';
import { spawnAnnouncingPeer } from '../child.js';
import type { ServiceBusPeer } from './index.js';

const announced = z.object({ name: z.literal('servicebus'), port: z.number(), connectionString: z.string() });

/**
 * The Service Bus peer as a process of its own (`dev/peers/servicebus/main.ts`), as the real namespace
 * is not in the app's process: for the bench, so the app's event loop carries only the app. Offers the
 * namespace key's connection string and `stop`; fault hooks and rules live with in-process peers only.
 */
export async function spawnServiceBusPeer(options: { config: string }): Promise<ServiceBusPeer> {
  const peer = await spawnAnnouncingPeer('dev/peers/servicebus/main.ts', [
    '--config',
    options.config,
    '--port',
    '0',
  ]);
  const { port, connectionString } = announced.parse(peer.announced);
  const inProcessOnly = (what: string) => (): never => {
    throw new Error(`servicebus peer in its own process: ${what} is not available`);
  };
  return {
    port,
    connectionString,
    connectionStringFor: (keyName) => {
      if (connectionString.includes(`SharedAccessKeyName=${keyName};`)) return connectionString;
      throw new Error(`servicebus peer in its own process: only the namespace key, not ${keyName}`);
    },
    addRule: inProcessOnly('addRule'),
    restart: inProcessOnly('restart'),
    faults: {
      duplicateNextSends: inProcessOnly('duplicateNextSends'),
      loseLocks: inProcessOnly('loseLocks'),
      stats: inProcessOnly('stats'),
    },
    stop: () => peer.stop(),
  };
}
