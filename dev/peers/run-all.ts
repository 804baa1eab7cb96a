import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { freePort } from '../ports.js';
import { startAzurite } from './azurite.js';
import { startDistributorPeer } from './distributor/index.js';
import { startIdentityGraphPeer } from './identity-graph/index.js';
import { startPartnerCenterPeer } from './partner-center/index.js';
import { startSambaPeer } from './samba/index.js';
import { startServiceBusPeer } from './servicebus/index.js';

/**
 * Starts every local peer on loopback and describes them in `.local/peers.json`: the file the local
 * host, the demo and humans read to reach them. Stopping stops them all (no orphan keeps a port).
 */
export const peersFileSchema = z.object({
  storage: z.object({ connectionString: z.string() }),
  serviceBus: z.object({ connectionString: z.string() }),
  identity: z.object({ authorityHost: z.string() }),
  graph: z.object({
    baseUrl: z.string(),
    adminUrl: z.string(),
    app: z.object({ tenantId: z.string(), clientId: z.string(), clientSecret: z.string() }),
  }),
  partnerCenter: z.object({
    baseUrl: z.string(),
    adminUrl: z.string(),
    partnerTenantId: z.string(),
    clientId: z.string(),
    clientSecret: z.string(),
  }),
  /** The Pax8-shaped distributor peer (2-Tier); absent in files written before it ran here. */
  distributor: z
    .object({ baseUrl: z.string(), adminUrl: z.string(), clientId: z.string(), clientSecret: z.string() })
    .optional(),
  ad: z.union([
    z.object({
      url: z.string(),
      bindDn: z.string(),
      password: z.string(),
      baseDn: z.string(),
      caFile: z.string(),
      atriaOu: z.string(),
      usersOu: z.string(),
      groupsOu: z.string(),
      realm: z.string(),
    }),
    z.object({ unavailable: z.string() }),
  ]),
});
export type PeersFile = z.infer<typeof peersFileSchema>;

/** `ATRIA_PEERS_FILE` moves it (tests that run a second stack beside a developer's). */
export const peersFilePath = process.env.ATRIA_PEERS_FILE ?? join(process.cwd(), '.local', 'peers.json');
const graphSeedPath = join(import.meta.dirname, 'identity-graph', 'demo-seed.json');
const partnerCenterSeedPath = join(import.meta.dirname, 'partner-center', 'demo-seed.json');
const distributorSeedPath = join(import.meta.dirname, 'distributor', 'demo-seed.json');
/** The provider that owns the local Partner Center and distributor connectors (npm start's demo provider). */
export const demoProviderId = 'demo-provider';
const serviceBusConfigPath = join(import.meta.dirname, 'servicebus', 'config.json');

async function preferredPort(port: number): Promise<number> {
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  return free ? port : freePort();
}

const graphSeedSchema = z.object({
  apps: z
    .array(z.object({ clientId: z.string(), clientSecret: z.string(), homeTenantId: z.string() }))
    .min(1),
});
const distributorSeedSchema = z.object({
  apps: z.array(z.object({ clientId: z.string(), clientSecret: z.string() })).min(1),
});
const pcSeedSchema = z.object({
  partners: z
    .array(
      z.object({
        tenantId: z.string(),
        name: z.string(),
        apps: z.array(z.object({ clientId: z.string(), clientSecret: z.string() })).min(1),
      }),
    )
    .min(1),
});

export interface RunningPeers {
  peers: PeersFile;
  stop(): Promise<void>;
}

export async function startAllPeers(
  options: { withAd?: boolean; log?: (line: string) => void } = {},
): Promise<RunningPeers> {
  const log = options.log ?? ((line: string) => console.log(line));
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const azurite = await startAzurite({ tablePort: await preferredPort(10002) });
    stops.push(() => azurite.stop());
    log(`storage        Azurite Table on 127.0.0.1:${azurite.tablePort}`);

    const serviceBus = await startServiceBusPeer({
      config: serviceBusConfigPath,
      port: await preferredPort(5672),
    });
    stops.push(() => serviceBus.stop());
    log(`service bus    AMQP peer on 127.0.0.1:${serviceBus.port}`);

    const graph = await startIdentityGraphPeer({ port: await preferredPort(7443), seed: graphSeedPath });
    stops.push(() => graph.stop());
    log(`identity+graph ${graph.authorityHost} (Graph ${graph.graphBaseUrl})`);

    // The Partner Center partner's tenant and app must exist in the identity peer to get tokens.
    const pcSeed = pcSeedSchema.parse(JSON.parse(readFileSync(partnerCenterSeedPath, 'utf8')));
    const partner = pcSeed.partners[0] as (typeof pcSeed.partners)[number];
    const partnerApp = partner.apps[0] as (typeof partner.apps)[number];
    await adminPost(`${graph.adminUrl}/tenants`, {
      id: partner.tenantId,
      displayName: partner.name,
      domains: [
        { id: `partner${partner.tenantId.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true },
      ],
    });
    await adminPost(`${graph.adminUrl}/apps`, {
      clientId: partnerApp.clientId,
      clientSecret: partnerApp.clientSecret,
      homeTenantId: partner.tenantId,
      tenants: [partner.tenantId],
      roles: [],
    });
    const partnerCenter = await startPartnerCenterPeer({
      port: await preferredPort(7444),
      seed: partnerCenterSeedPath,
      identity: { authorityHost: graph.authorityHost },
      graphAdminUrl: graph.adminUrl,
      log: () => undefined,
    });
    stops.push(() => partnerCenter.stop());
    log(`partner center ${partnerCenter.baseUrl}`);

    // The distributor follows the Partner Center peer's virtual clock, so renewals line up in both.
    const distributor = await startDistributorPeer({
      port: await preferredPort(7445),
      seed: distributorSeedPath,
      graphAdminUrl: graph.adminUrl,
      followClockUrl: partnerCenter.adminUrl,
      log: () => undefined,
    });
    stops.push(() => distributor.stop());
    const distributorApp = distributorSeedSchema.parse(JSON.parse(readFileSync(distributorSeedPath, 'utf8')))
      .apps[0] as z.infer<typeof distributorSeedSchema>['apps'][number];
    log(`distributor    ${distributor.baseUrl} (Pax8 Partner API shape)`);

    let ad: PeersFile['ad'] = { unavailable: 'not requested' };
    if (options.withAd !== false) {
      try {
        const samba = await startSambaPeer();
        stops.push(() => samba.stop());
        ad = {
          url: samba.url,
          bindDn: samba.bindDn,
          password: samba.password,
          baseDn: samba.baseDn,
          caFile: samba.caFile,
          atriaOu: samba.atriaOu,
          usersOu: samba.usersOu,
          groupsOu: samba.groupsOu,
          realm: samba.realm,
        };
        log(`on-prem AD     Samba AD DC ${samba.url} (${samba.realm})`);
      } catch (error) {
        ad = { unavailable: error instanceof Error ? error.message : String(error) };
        log(`on-prem AD     NOT RUNNING: ${ad.unavailable}`);
      }
    }

    const graphApp = graphSeedSchema.parse(JSON.parse(readFileSync(graphSeedPath, 'utf8')))
      .apps[0] as z.infer<typeof graphSeedSchema>['apps'][number];
    const peers: PeersFile = {
      storage: { connectionString: azurite.connectionString },
      serviceBus: { connectionString: serviceBus.connectionString },
      identity: { authorityHost: graph.authorityHost },
      graph: {
        baseUrl: graph.graphBaseUrl,
        adminUrl: graph.adminUrl,
        app: {
          tenantId: graphApp.homeTenantId,
          clientId: graphApp.clientId,
          clientSecret: graphApp.clientSecret,
        },
      },
      partnerCenter: {
        baseUrl: partnerCenter.baseUrl,
        adminUrl: partnerCenter.adminUrl,
        partnerTenantId: partner.tenantId,
        clientId: partnerApp.clientId,
        clientSecret: partnerApp.clientSecret,
      },
      distributor: {
        baseUrl: distributor.baseUrl,
        adminUrl: distributor.adminUrl,
        clientId: distributorApp.clientId,
        clientSecret: distributorApp.clientSecret,
      },
      ad,
    };
    mkdirSync(dirname(peersFilePath), { recursive: true });
    writeFileSync(peersFilePath, `${JSON.stringify(peers, null, 2)}\n`, { mode: 0o600 });
    return { peers, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function adminPost(url: string, body: unknown): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok && response.status !== 409)
    throw new Error(`peer admin ${url} answered ${response.status}: ${await response.text()}`);
}

/** Settings for the app, derived from the running peers (what local.settings.json would hold). */
export function settingsFromPeers(peers: PeersFile): Record<string, string> {
  return {
    ATRIA_ENVIRONMENT: 'local',
    TableStorage: peers.storage.connectionString,
    ServiceBusConnection: peers.serviceBus.connectionString,
    Graph__authorityHost: peers.identity.authorityHost,
    Graph__baseUrl: peers.graph.baseUrl,
    Graph__clientId: peers.graph.app.clientId,
    Graph__clientSecret: peers.graph.app.clientSecret,
    Graph__homeTenantId: peers.graph.app.tenantId,
    PartnerCenter__baseUrl: peers.partnerCenter.baseUrl,
    PartnerCenter__tenantId: peers.partnerCenter.partnerTenantId,
    PartnerCenter__clientId: peers.partnerCenter.clientId,
    PartnerCenter__clientSecret: peers.partnerCenter.clientSecret,
    // Locally the demo provider owns both licensing connectors.
    PartnerCenter__providerId: demoProviderId,
    ...(peers.distributor === undefined
      ? {}
      : {
          Distributor__baseUrl: peers.distributor.baseUrl,
          Distributor__clientId: peers.distributor.clientId,
          Distributor__clientSecret: peers.distributor.clientSecret,
          Distributor__providerId: demoProviderId,
        }),
  };
}
