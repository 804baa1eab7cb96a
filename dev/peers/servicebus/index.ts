import { fileURLToPath } from 'node:url';
import { Broker } from './broker.js';
import { loadEmulatorConfig, type AccessRight, type EmulatorConfig, type SasRule } from './config.js';
import { createAmqpFront } from './server.js';

export type { EmulatorConfig, SasRule, AccessRight } from './config.js';

/** The official emulator's well-known namespace key, so emulator connection strings work unchanged. */
export const defaultKeyName = 'RootManageSharedAccessKey';
export const defaultKey = 'SAS_KEY_VALUE';

/** The shipped config.json with the app's queues. */
export const defaultConfigPath = fileURLToPath(new URL('./config.json', import.meta.url));

export interface ServiceBusPeerOptions {
  /** 0 or undefined: the OS picks a free port. */
  port?: number;
  host?: string;
  /** An emulator `config.json` object, or the path of one. */
  config: EmulatorConfig | string;
  /** Namespace-wide rule with Manage (Send + Listen) rights. */
  keyName?: string;
  key?: string;
  /** More SAS rules: `entity` set = scoped to that queue or topic, unset = namespace-wide. */
  extraRules?: SasRule[];
  log?: (message: string) => void;
}

export interface ServiceBusPeer {
  port: number;
  /** Connection string for the namespace-wide key (what the emulator prints). */
  connectionString: string;
  /** Connection string for any configured rule's key name (namespace-wide or entity-scoped). */
  connectionStringFor(keyName: string): string;
  /** Adds a SAS rule while running (e.g. a per-site agent key). */
  addRule(rule: SasRule): void;
  /**
   * An outage: drops every connection and stops listening for `downtimeInMs`, then listens again on the
   * same port. Messages, locks and timers live on (as in Azure), so clients reconnect and carry on.
   */
  restart(downtimeInMs?: number): Promise<void>;
  /** Fault hooks for chaos runs (see MessageEntity.duplicateNextSends and loseLocks). */
  faults: {
    /** The next `count` sends to `queue` (including scheduled ones) are stored twice. */
    duplicateNextSends(queue: string, count: number): void;
    /** Up to `count` locks held on `queue` expire now; answers how many did. */
    loseLocks(queue: string, count: number): number;
    stats(): { duplicated: number; locksLost: number };
  };
  stop(): Promise<void>;
}

export async function startServiceBusPeer(options: ServiceBusPeerOptions): Promise<ServiceBusPeer> {
  const definition = loadEmulatorConfig(options.config);
  const keyName = options.keyName ?? defaultKeyName;
  const key = options.key ?? defaultKey;
  const manage: AccessRight[] = ['Manage', 'Send', 'Listen'];
  const rules: SasRule[] = [
    { keyName, key, rights: manage },
    ...definition.rules,
    ...(options.extraRules ?? []),
  ];
  const broker = new Broker(definition);
  const front = createAmqpFront({
    broker,
    rules: () => rules,
    now: Date.now,
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  const host = options.host ?? '127.0.0.1';
  const server = await front.listen(options.port ?? 0, host);
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('servicebus peer: no TCP address');
  broker.start();
  const port = address.port;
  const connectionStringFor = (name: string): string => {
    const rule = rules.find((candidate) => candidate.keyName === name);
    if (rule === undefined) throw new Error(`servicebus peer: no SAS rule named ${name}`);
    return `Endpoint=sb://${host}:${port};SharedAccessKeyName=${rule.keyName};SharedAccessKey=${rule.key};UseDevelopmentEmulator=true;`;
  };
  return {
    port,
    connectionString: connectionStringFor(keyName),
    connectionStringFor,
    addRule: (rule) => {
      rules.push(rule);
    },
    faults: {
      duplicateNextSends: (queue, count) => {
        const entity = broker.queues.get(queue.toLowerCase());
        if (entity === undefined) throw new Error(`servicebus peer: no queue ${queue}`);
        entity.duplicateNextSends += count;
      },
      loseLocks: (queue, count) => broker.queues.get(queue.toLowerCase())?.loseLocks(count) ?? 0,
      stats: () => {
        const total = { duplicated: 0, locksLost: 0 };
        for (const entity of broker.queues.values()) {
          total.duplicated += entity.faultStats.duplicated;
          total.locksLost += entity.faultStats.locksLost;
        }
        return total;
      },
    },
    restart: async (downtimeInMs = 0) => {
      await front.close();
      await new Promise((resolve) => setTimeout(resolve, downtimeInMs));
      await front.listen(port, host);
    },
    stop: async () => {
      broker.stop();
      await front.close();
    },
  };
}
