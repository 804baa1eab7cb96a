import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { HealthCheck } from '../ports/health.js';
import type { Store } from '../ports/store.js';
import type { Heartbeat } from '../relay-protocol/index.js';

/**
 * Customer sites with a relay agent: which provider owns the site, the site's public key (initial
 * passwords are sealed to it) and the agent's last heartbeat, which /api/health shows.
 */
const siteSchema = z.object({
  siteId: z.string(),
  providerId: z.string(),
  publicKeyPem: z.string(),
  /** The agent's Ed25519 key: replies claiming this site must carry its signature. */
  agentPublicKeyPem: z.string().optional(),
  registeredAt: z.string(),
  heartbeat: z
    .object({
      at: z.string(),
      receivedAt: z.string(),
      agentVersion: z.string(),
      dcsReachable: z.array(z.string()),
      queueLag: z.number(),
      lastError: z.string().optional(),
    })
    .optional(),
});
export type Site = z.infer<typeof siteSchema>;

export const SITES_PARTITION = 'sites';
const PARTITION = SITES_PARTITION;

export function sitesCollection(store: Store) {
  return store.collection('sites', siteSchema);
}
/** A site that has not been heard from for this long is reported as degraded. */
export const staleAfterInMs = 3 * 60_000;

export function createSites(deps: { store: Store; clock: Clock }) {
  const sites = sitesCollection(deps.store);

  async function get(siteId: string): Promise<Site> {
    const site = await sites.get(PARTITION, siteId);
    if (site === undefined) throw new AppError('NotFound', `site ${siteId} is not registered`);
    return site.value;
  }

  return {
    get,

    /** The site as stored, whoever owns it (for the relay's signature checks). */
    async find(siteId: string): Promise<Site | undefined> {
      return (await sites.get(PARTITION, siteId))?.value;
    },

    async listIds(): Promise<string[]> {
      const ids: string[] = [];
      for await (const site of sites.list(PARTITION)) ids.push(site.value.siteId);
      return ids;
    },

    async register(
      caller: Caller,
      siteId: string,
      publicKeyPem: string,
      agentPublicKeyPem?: string,
    ): Promise<Site> {
      const existing = await sites.get(PARTITION, siteId);
      if (existing !== undefined && existing.value.providerId !== caller.providerId) {
        // Site ids are global (they name Service Bus queues); another provider's is simply not ours.
        throw new AppError('Conflict', `site id ${siteId} is taken`);
      }
      const value: Site = {
        siteId,
        providerId: caller.providerId,
        publicKeyPem,
        ...(agentPublicKeyPem === undefined ? {} : { agentPublicKeyPem }),
        registeredAt: existing?.value.registeredAt ?? deps.clock.now().toISOString(),
        ...(existing?.value.heartbeat === undefined ? {} : { heartbeat: existing.value.heartbeat }),
      };
      if (existing === undefined) return (await sites.create(PARTITION, siteId, value)).value;
      return (await sites.replace(PARTITION, siteId, value, existing.etag)).value;
    },

    async getForCaller(caller: Caller, siteId: string): Promise<Site> {
      const site = await sites.get(PARTITION, siteId);
      if (site === undefined || site.value.providerId !== caller.providerId)
        throw new AppError('NotFound', `site ${siteId} not found`);
      return site.value;
    },

    async recordHeartbeat(heartbeat: Heartbeat): Promise<void> {
      const existing = await sites.get(PARTITION, heartbeat.siteId);
      if (existing === undefined) return; // an agent of a site we do not know: nothing to show
      const value: Site = {
        ...existing.value,
        heartbeat: {
          at: heartbeat.at,
          receivedAt: deps.clock.now().toISOString(),
          agentVersion: heartbeat.agentVersion,
          dcsReachable: heartbeat.dcsReachable,
          queueLag: heartbeat.queueLag,
          ...(heartbeat.lastError === undefined ? {} : { lastError: heartbeat.lastError }),
        },
      };
      // One writer per site (its agent); an older heartbeat racing a newer one is harmless.
      await sites.upsert(PARTITION, heartbeat.siteId, value);
    },

    healthChecks(): HealthCheck[] {
      return [
        {
          name: 'agentSites',
          check: async () => {
            const now = deps.clock.now().getTime();
            const list: Record<string, unknown>[] = [];
            let stale = 0;
            for await (const { value } of sites.list(PARTITION)) {
              const lastSeen =
                value.heartbeat === undefined ? undefined : Date.parse(value.heartbeat.receivedAt);
              const isStale = lastSeen === undefined || now - lastSeen > staleAfterInMs;
              if (isStale) stale++;
              list.push({
                siteId: value.siteId,
                state: isStale ? 'stale' : 'ok',
                lastHeartbeatAt: value.heartbeat?.at ?? null,
                agentVersion: value.heartbeat?.agentVersion ?? null,
                dcsReachable: value.heartbeat?.dcsReachable ?? [],
                queueLag: value.heartbeat?.queueLag ?? null,
                lastError: value.heartbeat?.lastError ?? null,
              });
            }
            if (list.length === 0) return { state: 'notConfigured' };
            return { state: stale === 0 ? 'ok' : 'degraded', info: { sites: list } };
          },
        },
      ];
    },
  };
}

export type Sites = ReturnType<typeof createSites>;
