import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { serviceBusTriggers } from '../../dev/host/queue-triggers.js';
import {
  startIdentityGraphPeer,
  type IdentityGraphPeer,
  type Seed,
} from '../../dev/peers/identity-graph/index.js';
import { startServiceBusPeer, type ServiceBusPeer } from '../../dev/peers/servicebus/index.js';
import { spawnServiceBusPeer } from '../../dev/peers/servicebus/process.js';
import { spawnIdentityGraphPeer } from '../../dev/peers/identity-graph/process.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createLogger, type Logger } from '../../shared/logging.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import type { Bus } from '../../shared/ports/bus.js';
import type { CloudDirectory } from '../../shared/ports/cloud-directory.js';
import type { Store } from '../../shared/ports/store.js';

/**
 * The whole app on the local peers, wired as production wires it: local Functions host (HTTP and queue
 * triggers) → Service Bus peer → workers → Graph peer (and Samba through the agent, where a test adds it).
 */
export interface TestStack {
  host: LocalHost;
  deps: AppDeps;
  graph: IdentityGraphPeer;
  serviceBus: ServiceBusPeer;
  graphApp: { clientId: string; clientSecret: string; homeTenantId: string };
  api(path: string, init?: RequestInit & { key?: string }): Promise<Response>;
  /** A separate Graph client (not the app's) to read what really landed in a tenant. */
  cloudDirectory(tenantId: string): CloudDirectory;
  stop(): Promise<void>;
}

export const quietLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return quietLogger;
  },
};

export async function startTestStack(options: {
  storageConnectionString: string;
  graphSeed: Seed;
  extraSettings?: Record<string, string>;
  log?: Logger;
  /** Another Service Bus entity config (e.g. with a site queue of the file's own); default the dev one. */
  serviceBusConfig?: string;
  /** Run the Service Bus peer as a process of its own (the bench: the app's event loop is the app's). */
  serviceBusInOwnProcess?: boolean;
  /** The same for the Graph and login peer (its fault and admin hooks stay reachable over HTTP). */
  graphInOwnProcess?: boolean;
  /** Instrumentation (the bench counts Table calls and queue sends): wraps the app's store and bus. */
  wrapStore?: (store: Store) => Store;
  wrapBus?: (bus: Bus) => Bus;
  /** More settings from peers that need the stack's own (e.g. Partner Center trusting its Graph peer). */
  settingsFromPeers?: (peers: {
    graph: IdentityGraphPeer;
    serviceBus: ServiceBusPeer;
  }) => Promise<Record<string, string>>;
}): Promise<TestStack> {
  const serviceBusConfig =
    options.serviceBusConfig ?? join(process.cwd(), 'dev/peers/servicebus/config.json');
  const serviceBus =
    options.serviceBusInOwnProcess === true
      ? await spawnServiceBusPeer({ config: serviceBusConfig })
      : await startServiceBusPeer({ config: serviceBusConfig });
  const graph =
    options.graphInOwnProcess === true
      ? await spawnIdentityGraphPeer({ seed: options.graphSeed })
      : await startIdentityGraphPeer({ seed: options.graphSeed });
  const app = options.graphSeed.apps?.[0];
  if (app?.clientSecret === undefined) throw new Error('graph seed needs an app with a secret');
  const settings = loadSettings({
    LOG_LEVEL: 'warn',
    TableStorage: options.storageConnectionString,
    ServiceBusConnection: serviceBus.connectionString,
    Graph__authorityHost: graph.authorityHost,
    Graph__baseUrl: graph.graphBaseUrl,
    Graph__clientId: app.clientId,
    Graph__clientSecret: app.clientSecret,
    Graph__homeTenantId: app.homeTenantId,
    ...options.extraSettings,
    ...(await options.settingsFromPeers?.({ graph, serviceBus })),
  });
  const log = options.log ?? createLogger(() => undefined);
  const deps = createComposition(settings, {
    log,
    ...(options.wrapStore === undefined
      ? {}
      : {
          store: options.wrapStore(createTableStore({ connectionString: options.storageConnectionString })),
        }),
    ...(options.wrapBus === undefined ? {} : { wrapBus: options.wrapBus }),
  });
  const triggers = serviceBusTriggers(serviceBus.connectionString, log);
  const host = await startLocalHost({
    definitions,
    deps,
    port: 0,
    log,
    startQueueTrigger: triggers.start,
    timers: false,
  });
  return {
    host,
    deps,
    graph,
    serviceBus,
    graphApp: { clientId: app.clientId, clientSecret: app.clientSecret, homeTenantId: app.homeTenantId },
    api(path, init = {}) {
      const { key, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (key !== undefined) headers.set('x-functions-key', key);
      if (rest.body !== undefined) headers.set('content-type', 'application/json');
      return fetch(`${host.url}${path}`, { ...rest, headers });
    },
    cloudDirectory(tenantId) {
      return createGraphDirectoryFactory({
        credentialFor: createCredentialFor({
          clientId: app.clientId,
          clientSecret: app.clientSecret ?? '',
          authorityHost: graph.authorityHost,
        }),
        graphBaseUrl: graph.graphBaseUrl,
        customHosts: ['127.0.0.1'],
      })(tenantId);
    },
    async stop() {
      await host.stop();
      await triggers.close();
      await deps.close();
      await graph.stop();
      await serviceBus.stop();
    },
  };
}

export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutInMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutInMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

type TenantSeed = NonNullable<Seed['tenants']>[number];

/** A partner tenant with the partner app, consented in one customer tenant shaped by the caller. */
export function graphSeed(customer: TenantSeed & { id: string }): Seed {
  const partnerTenant = randomUUID();
  return {
    tenants: [
      {
        id: partnerTenant,
        displayName: 'Partner',
        domains: [{ id: `p${partnerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true }],
      },
      customer,
    ],
    apps: [
      {
        clientId: randomUUID(),
        clientSecret: `secret-${randomUUID()}`,
        homeTenantId: partnerTenant,
        tenants: [customer.id],
        roles: [
          'User.ReadWrite.All',
          'Directory.ReadWrite.All',
          'Domain.ReadWrite.All',
          'Organization.Read.All',
          'LicenseAssignment.ReadWrite.All',
        ],
      },
    ],
  };
}

/**
 * The dev Service Bus config plus a site queue per id, shaped like `agent-site-demo`: sites are global
 * names and other files register `demo` in the same storage, so a file that registers a site uses its own.
 */
export function serviceBusConfigWithSites(siteIds: string[]): string {
  const config = JSON.parse(readFileSync('dev/peers/servicebus/config.json', 'utf8')) as {
    UserConfig: { Namespaces: { Queues: { Name: string }[] }[] };
  };
  const namespace = config.UserConfig.Namespaces[0];
  const demo = namespace?.Queues.find((q) => q.Name === 'agent-site-demo');
  if (namespace === undefined || demo === undefined) throw new Error('dev Service Bus config changed shape');
  for (const siteId of siteIds)
    namespace.Queues.push({ ...structuredClone(demo), Name: `agent-site-${siteId}` });
  const file = join(mkdtempSync(join(tmpdir(), 'sites-')), 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/** One site queue of the caller's own (see serviceBusConfigWithSites). */
export function serviceBusConfigWithSite(siteId: string): string {
  return serviceBusConfigWithSites([siteId]);
}
