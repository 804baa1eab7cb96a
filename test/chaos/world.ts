import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceBusClient } from '@azure/service-bus';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { serviceBusTriggers } from '../../dev/host/queue-triggers.js';
import { writeLocalAgentConfig } from '../../dev/local-agent.js';
import { startAzurite, type AzuritePeer } from '../../dev/peers/azurite.js';
import { startDistributorPeer, type DistributorPeer } from '../../dev/peers/distributor/index.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import type { PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import {
  startServiceBusPeer,
  type ServiceBusPeer,
  type EmulatorConfig,
} from '../../dev/peers/servicebus/index.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { createLogger, type Logger } from '../../shared/logging.js';
import type { CloudDirectory } from '../../shared/ports/cloud-directory.js';
import type { Commerce } from '../../shared/ports/commerce.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../../shared/relay-protocol/index.js';
import { offers } from '../integration/partner-center/stack.js';
import { startPartnerCenterFixture } from '../support/partner-center.js';
import { crashingStore, type CrashStore } from './crash-store.js';

/**
 * Every peer and the whole app for a chaos run, wired as production wires it: Azurite with persistence
 * (restartable on its port), the Service Bus peer (its fault hooks), the identity+Graph peer, Partner
 * Center and distributor peers, a Samba DC and the relay agent as its own process (killable), and the
 * local Functions host (HTTP and queue triggers; timers are driven by the scenario so a drain can run them
 * until quiet). The store is wrapped so a write can "kill the worker".
 */
export const siteId = 'chaos';
export const e3 = '05e9a617-0261-4cee-bb44-138d3ef5d965'; // graphSkuIds.e3 of the demo catalog

export interface Tenants {
  partner: string;
  green: string;
  greenOnboard: string;
  redHybrid: string;
  redBoth: string;
}

export interface World {
  host: LocalHost;
  deps: AppDeps;
  store: CrashStore;
  graph: IdentityGraphPeer;
  serviceBus: ServiceBusPeer;
  partnerCenter: PartnerCenterPeer;
  commerce: Commerce;
  distributor: DistributorPeer;
  distributorIds: { company: string; subscription: string };
  dc: SambaPeer;
  tenants: Tenants;
  graphApp: { clientId: string; clientSecret: string };
  providers: { blue: string; green: string; red: string };
  site: { publicKeyPem: string; agentPublicKeyPem: string };
  /** Every log line of the app and the agent (JSON), for the secrets scan. */
  logLines: string[];
  /** Every secret the run used (client secrets, keys, passwords): what a scan must not find. */
  secrets: string[];
  storageConnectionString: string;
  /** A separate Graph client (not the app's) to read what really landed in a tenant. */
  cloud(tenantId: string): CloudDirectory;
  /** A separate Service Bus client, to read dead-letter queues. */
  busClient: ServiceBusClient;
  queues: string[];
  restartAzurite(downtimeInMs: number): Promise<void>;
  /** SIGKILL: no goodbye, a command in flight is cut wherever it was. */
  killAgent(): Promise<void>;
  startAgent(): void;
  agentRunning(): boolean;
  stop(): Promise<void>;
}

/** Captures every line in memory (JSON, as the console sink writes them), capped for long runs. */
function recordingLogger(lines: string[], cap: number): Logger {
  return createLogger(
    (_level, record) => {
      if (lines.length < cap) lines.push(JSON.stringify({ time: new Date().toISOString(), ...record }));
    },
    { level: 'info' },
  );
}

/** The dev Service Bus entities plus the chaos site's queue, with a short lock so a lost lock comes back fast. */
function chaosServiceBusConfig(): { config: EmulatorConfig; queues: string[] } {
  const config = JSON.parse(readFileSync('dev/peers/servicebus/config.json', 'utf8')) as EmulatorConfig;
  const namespace = config.UserConfig.Namespaces[0];
  if (namespace === undefined) throw new Error('dev servicebus config has no namespace');
  const template = namespace.Queues[0];
  if (template === undefined) throw new Error('dev servicebus config has no queue');
  namespace.Queues.push({ ...template, Name: `agent-site-${siteId}` });
  for (const queue of namespace.Queues) queue.Properties = { ...queue.Properties, LockDuration: 'PT5S' };
  return { config, queues: namespace.Queues.map((q) => q.Name) };
}

const graphRoles = [
  'Directory.Read.All',
  'Directory.ReadWrite.All',
  'User.ReadWrite.All',
  'Domain.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
  'Organization.Read.All',
  'Group.ReadWrite.All',
];

export async function startWorld(options: { runId: string; logCap?: number }): Promise<World> {
  const stops: (() => Promise<void>)[] = [];
  const logLines: string[] = [];
  const log = recordingLogger(logLines, options.logCap ?? 200_000);
  const run = options.runId;
  const providers = { blue: `chaos-blue-${run}`, green: `chaos-green-${run}`, red: `chaos-red-${run}` };
  try {
    const dir = join(process.cwd(), '.local', 'chaos', run);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const azuriteDir = join(dir, 'azurite');
    mkdirSync(azuriteDir);
    let azurite: AzuritePeer = await startAzurite({ location: azuriteDir });
    const tablePort = azurite.tablePort;
    stops.push(() => azurite.stop());

    const bus = chaosServiceBusConfig();
    const serviceBus = await startServiceBusPeer({ config: bus.config });
    stops.push(() => serviceBus.stop());

    const tenants: Tenants = {
      partner: randomUUID(),
      green: randomUUID(),
      greenOnboard: randomUUID(),
      redHybrid: randomUUID(),
      redBoth: randomUUID(),
    };
    const graphApp = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
    const sku = (enabled: number) => [{ skuId: e3, skuPartNumber: 'SPE_E3', enabled }];
    const graph = await startIdentityGraphPeer({
      seed: {
        tenants: [
          {
            id: tenants.partner,
            displayName: 'Partner',
            domains: [
              { id: `p${tenants.partner.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true },
            ],
          },
          {
            id: tenants.green,
            displayName: 'Green One',
            domains: [{ id: 'green1.example', isDefault: true, authenticationType: 'Managed' }],
          },
          {
            id: tenants.greenOnboard,
            displayName: 'Green Onboard',
            domains: [{ id: 'greenob.example', isDefault: true, authenticationType: 'Managed' }],
            skus: sku(50),
            users: Array.from({ length: 6 }, (_, i) => ({
              userPrincipalName: `existing${i}@greenob.example`,
              displayName: `Existing ${i}`,
              accountEnabled: true,
              usageLocation: 'NL',
            })),
          },
          {
            id: tenants.redHybrid,
            displayName: 'Red Hybrid',
            domains: [
              { id: 'redh.example', isDefault: true, authenticationType: 'Managed' },
              { id: 'fed.redh.example', authenticationType: 'Federated' },
            ],
            skus: sku(1000),
          },
          {
            id: tenants.redBoth,
            displayName: 'Red Both',
            domains: [{ id: 'redb.example', isDefault: true, authenticationType: 'Managed' }],
            skus: sku(1000),
          },
        ],
        apps: [
          {
            ...graphApp,
            homeTenantId: tenants.partner,
            tenants: [tenants.green, tenants.greenOnboard, tenants.redHybrid, tenants.redBoth],
            roles: graphRoles,
          },
        ],
      },
    });
    stops.push(() => graph.stop());

    const { partnerCenter, commerce } = await startPartnerCenterFixture({
      graph,
      partnerTenant: tenants.partner,
      partnerName: 'Blue Partner',
      app: graphApp,
      graphRoles,
      start: new Date(),
    });
    stops.push(() => partnerCenter.stop());

    const pax8App = { clientId: `pax8-${randomUUID()}`, clientSecret: `pax8-secret-${randomUUID()}` };
    const distributorIds = {
      company: randomUUID(),
      product: randomUUID(),
      commitment: randomUUID(),
      subscription: randomUUID(),
    };
    const now = Date.now();
    const distributor = await startDistributorPeer({
      seed: {
        apps: [{ ...pax8App, partnerId: 'green' }],
        companies: [
          { id: distributorIds.company, name: 'Green One', partnerId: 'green', msTenantId: tenants.green },
        ],
        products: [
          {
            id: distributorIds.product,
            name: 'Microsoft 365 E3',
            vendorName: 'Microsoft',
            sku: 'MST-M365-E3',
            vendorSku: offers.e3.split(':').slice(0, 2).join(':'),
            requiresCommitment: true,
            pricing: [
              {
                billingTerm: 'Monthly',
                commitmentTerm: 'Annual',
                commitmentTermInMonths: 12,
                rates: [{ partnerBuyRate: 33, suggestedRetailPrice: 36 }],
              },
            ],
            commitments: [
              {
                id: distributorIds.commitment,
                term: 'Annual',
                autoRenew: true,
                allowForQuantityIncrease: true,
              },
            ],
            graph: { skuId: e3, skuPartNumber: 'SPE_E3', servicePlans: [] },
          },
        ],
        subscriptions: [
          {
            id: distributorIds.subscription,
            companyId: distributorIds.company,
            productId: distributorIds.product,
            quantity: 1,
            startDate: new Date(now - 30 * 86_400_000).toISOString(),
            billingTerm: 'Monthly',
            commitmentTerm: {
              id: distributorIds.commitment,
              term: 'Annual',
              endDate: new Date(now + 335 * 86_400_000).toISOString(),
            },
          },
        ],
      },
      graphAdminUrl: graph.adminUrl,
      followClockUrl: partnerCenter.adminUrl,
      log: () => undefined,
    });
    stops.push(() => distributor.stop());

    const dc = await startSambaPeer();
    stops.push(() => dc.stop());

    const signing = generateSigningKeyPair();
    const siteKeys = generateSiteKeyPair();
    const agentKeys = generateSigningKeyPair();
    const operationKey = randomBytes(32).toString('base64');
    const storageConnectionString = azurite.connectionString;
    const settings = loadSettings({
      LOG_LEVEL: 'info',
      TableStorage: storageConnectionString,
      ServiceBusConnection: serviceBus.connectionString,
      Graph__authorityHost: graph.authorityHost,
      Graph__baseUrl: graph.graphBaseUrl,
      Graph__clientId: graphApp.clientId,
      Graph__clientSecret: graphApp.clientSecret,
      Graph__homeTenantId: tenants.partner,
      PartnerCenter__baseUrl: partnerCenter.baseUrl,
      PartnerCenter__tenantId: tenants.partner,
      PartnerCenter__clientId: graphApp.clientId,
      PartnerCenter__clientSecret: graphApp.clientSecret,
      PartnerCenter__providerId: providers.blue,
      PartnerCenter__pollBaseDelayInMs: '100',
      Distributor__baseUrl: distributor.baseUrl,
      Distributor__clientId: pax8App.clientId,
      Distributor__clientSecret: pax8App.clientSecret,
      Distributor__providerId: providers.green,
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: 'chaos-key',
      Secrets__operationKey: operationKey,
      // Short leases, parks and backoff: a killed worker's operation is resumed within seconds.
      Engine__leaseDurationInMs: '4000',
      Engine__parkTimeoutInMs: '5000',
      Engine__retryBaseDelayInMs: '200',
      Engine__retryMaxDelayInMs: '3000',
      Onboarding__leaseInMs: '5000',
      // The bulk guard is another feature's; the run's deletes are ordinary leavers.
      Guard__minUsers: '1000',
    });
    const store = crashingStore(createTableStore({ connectionString: storageConnectionString }));
    const deps = createComposition(settings, { log, store });
    stops.push(() => deps.close());
    const triggers = serviceBusTriggers(serviceBus.connectionString, log);
    stops.push(() => triggers.close());
    const host = await startLocalHost({
      definitions,
      deps,
      port: 0,
      log,
      startQueueTrigger: triggers.start,
      timers: false,
      invocationLogHandler: (level, ...args) => {
        if (logLines.length < (options.logCap ?? 200_000))
          logLines.push(
            `${level} ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`,
          );
      },
    });
    stops.push(() => host.stop());

    // The agent as at a customer site: its own process, config and keys in files, state on disk.
    const agentConfig = writeLocalAgentConfig(join(dir, 'agent'), {
      siteId,
      serviceBusConnectionString: serviceBus.connectionString,
      dc,
      signing: { kid: 'chaos-key', publicKeyPem: signing.publicKeyPem },
      sitePrivateKeyPem: siteKeys.privateKeyPem,
      agentSigningKeyPem: agentKeys.privateKeyPem,
      heartbeatIntervalInMs: 2000,
    });
    let agent: ChildProcess | undefined;
    const startAgentProcess = (): void => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--config', agentConfig], {
        cwd: process.cwd(),
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const capture = (chunk: Buffer): void => {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line !== '' && logLines.length < (options.logCap ?? 200_000)) logLines.push(line);
      };
      child.stdout.on('data', capture);
      child.stderr.on('data', capture);
      agent = child;
    };
    startAgentProcess();
    // Teardown: SIGKILL (a SIGTERM'd agent finishes its command in flight, which can take long).
    stops.push(async () => {
      const child = agent;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    });

    const busClient = new ServiceBusClient(serviceBus.connectionString);
    stops.push(() => busClient.close());

    const cloudFactory = createGraphDirectoryFactory({
      credentialFor: createCredentialFor({ ...graphApp, authorityHost: graph.authorityHost }),
      graphBaseUrl: graph.graphBaseUrl,
      customHosts: ['127.0.0.1'],
    });

    const secrets = [
      graphApp.clientSecret,
      pax8App.clientSecret,
      operationKey,
      dc.password,
      dc.serviceAccount.password,
      // The private keys' base64 bodies (a PEM's header says nothing).
      ...[signing.privateKeyPem, siteKeys.privateKeyPem, agentKeys.privateKeyPem].map((pem) =>
        pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''),
      ),
      'SAS_KEY_VALUE',
    ];

    return {
      host,
      deps,
      store,
      graph,
      serviceBus,
      partnerCenter,
      commerce,
      distributor,
      distributorIds: { company: distributorIds.company, subscription: distributorIds.subscription },
      dc,
      tenants,
      graphApp,
      providers,
      site: { publicKeyPem: siteKeys.publicKeyPem, agentPublicKeyPem: agentKeys.publicKeyPem },
      logLines,
      secrets,
      storageConnectionString,
      cloud: (tenantId) => cloudFactory(tenantId),
      busClient,
      queues: bus.queues,
      async restartAzurite(downtimeInMs) {
        // SIGTERM (not SIGKILL: Azurite loses recent writes then, see LOCAL-PEERS.md) and back on its port.
        await azurite.stop();
        await new Promise((r) => setTimeout(r, downtimeInMs));
        azurite = await startAzurite({ tablePort, location: azuriteDir });
      },
      async killAgent() {
        const child = agent;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      },
      startAgent() {
        if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) return;
        startAgentProcess();
      },
      agentRunning() {
        return agent !== undefined && agent.exitCode === null && agent.signalCode === null;
      },
      async stop() {
        // Each part gets 10 s: a client that hangs on close must not hold the run (or the test) up.
        for (const stop of stops.reverse())
          await Promise.race([stop().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
      },
    };
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw error;
  }
}
