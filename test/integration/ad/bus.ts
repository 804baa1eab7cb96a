import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetryMode, ServiceBusClient } from '@azure/service-bus';
import {
  startServiceBusPeer,
  type EmulatorConfig,
  type ServiceBusPeer,
} from '../../../dev/peers/servicebus/index.js';
import type { SambaPeer } from '../../../dev/peers/samba/index.js';
import type { AgentConfigFile as AgentConfig } from '../../../agent/config.js';
import { RelayHub, type RelayHubOptions } from '../../../shared/adapters/relay/index.js';
import {
  generateSigningKeyPair,
  privateKeyFromPem,
  type PemKeyPair,
} from '../../../shared/relay-protocol/index.js';
import { allowedAttributes, siteId } from './support.js';

const queue = (name: string, lockDuration = 'PT5S') => ({
  Name: name,
  Properties: {
    DeadLetteringOnMessageExpiration: false,
    DefaultMessageTimeToLive: 'PT1H',
    DuplicateDetectionHistoryTimeWindow: 'PT10M',
    ForwardDeadLetteredMessagesTo: '',
    ForwardTo: '',
    LockDuration: lockDuration,
    MaxDeliveryCount: 10,
    RequiresDuplicateDetection: true,
    RequiresSession: false,
  },
});

export interface RelayBus {
  peer: ServiceBusPeer;
  /** The cloud side (namespace key). */
  cloud: ServiceBusClient;
  /** The per-site agent key: Listen on agent-site-<site>, Send on agent-replies (one rule name on two entities). */
  agentConnectionString: string;
  signing: PemKeyPair;
  signer: RelayHubOptions['signer'];
  /** Stops the namespace and starts an empty one on the same port with the same keys (an outage). */
  restart(downtimeInMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRelayBus(sites: string[] = [siteId]): Promise<RelayBus> {
  const config: EmulatorConfig = {
    UserConfig: {
      Namespaces: [
        {
          Name: 'sbemulatorns',
          Queues: [
            queue('agent-replies'),
            queue('directory-work'),
            ...sites.map((site) => queue(`agent-site-${site}`)),
          ],
          Topics: [],
        },
      ],
      Logging: { Type: 'Console' },
    },
  };
  const agentKey = randomBytes(32).toString('base64');
  const keyName = `agent-${sites[0] ?? siteId}`;
  const extraRules = [
    { keyName, key: agentKey, rights: ['Listen' as const], entity: `agent-site-${sites[0] ?? siteId}` },
    { keyName, key: agentKey, rights: ['Send' as const], entity: 'agent-replies' },
  ];
  let peer = await startServiceBusPeer({ config, extraRules });
  const cloud = new ServiceBusClient(peer.connectionString, {
    retryOptions: { mode: RetryMode.Exponential, retryDelayInMs: 500, maxRetryDelayInMs: 5000 },
  });
  const signing = generateSigningKeyPair();
  return {
    get peer() {
      return peer;
    },
    cloud,
    agentConnectionString: peer.connectionStringFor(keyName),
    signing,
    signer: { privateKey: privateKeyFromPem(signing.privateKeyPem, 'ed25519'), kid: 'cloud-test-1' },
    async restart(downtimeInMs = 500) {
      const port = peer.port;
      await peer.stop();
      await new Promise((r) => setTimeout(r, downtimeInMs));
      peer = await startServiceBusPeer({ config, extraRules, port });
    },
    async stop() {
      await cloud.close();
      await peer.stop();
    },
  };
}

export function agentConfig(
  bus: RelayBus,
  dc: SambaPeer,
  keys: { privateKeyPem: string; agentPrivateKeyPem: string },
  overrides: Partial<AgentConfig> & { urls?: string[] } = {},
): AgentConfig {
  const { urls, ...rest } = overrides;
  return {
    siteId,
    serviceBus: { connectionString: bus.agentConnectionString },
    replyQueue: 'agent-replies',
    directory: {
      urls: urls ?? [dc.url],
      // The delegated service account, as a customer deploys it (not a domain admin).
      bindDn: dc.serviceAccount.bindDn,
      password: dc.serviceAccount.password,
      caFile: dc.caFile,
      allowedOus: [dc.atriaOu],
      allowedAttributes,
      connectTimeoutInMs: 1500,
      operationTimeoutInMs: 10_000,
    },
    cloudSigningKeys: [{ kid: bus.signer.kid, publicKeyPem: bus.signing.publicKeyPem }],
    sitePrivateKey: keys.privateKeyPem,
    agentSigningKey: keys.agentPrivateKeyPem,
    heartbeatIntervalInMs: 60_000,
    maxConcurrentCommands: 4,
    localAttempts: 3,
    answerAfterDeliveries: 5,
    ...rest,
  };
}

export function writeAgentConfig(config: AgentConfig): string {
  const dir = mkdtempSync(join(tmpdir(), 'atria-agent-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return file;
}

export function newHub(bus: RelayBus, options: Partial<RelayHubOptions> = {}): RelayHub {
  const hub = new RelayHub({ client: bus.cloud, signer: bus.signer, defaultTimeoutInMs: 20_000, ...options });
  hub.start();
  return hub;
}
