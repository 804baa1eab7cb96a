import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { HealthCheck } from '../ports/health.js';
import type { Store } from '../ports/store.js';
import type { Heartbeat } from '../relay-protocol/index.js';
import { pageOf, type PageOf, type PageRequest } from './paging.js';

/**
 * Customer sites with a relay agent: which provider owns the site, the site's X25519 key (initial
 * passwords are sealed to it), the agent's Ed25519 key (replies and heartbeats must carry its
 * signature) and the agent's last heartbeat. Site ids are global (they name Service Bus queues), so
 * each row carries its owner; another provider's site is reported exactly like a missing one.
 */
const heartbeatSchema = z.object({
  at: z.string(),
  receivedAt: z.string(),
  agentVersion: z.string(),
  dcsReachable: z.array(z.string()),
  queueLag: z.number(),
  lastError: z.string().optional(),
});
const siteSchema = z.object({
  siteId: z.string(),
  providerId: z.string(),
  publicKeyPem: z.string(),
  /** Optional only for rows stored before the key became required; such a site cannot be used. */
  agentPublicKeyPem: z.string().optional(),
  registeredAt: z.string(),
  updatedAt: z.string().optional(),
  heartbeat: heartbeatSchema.optional(),
  /** The last heartbeat of each agent of the site, by agent id (`default` for agents that send none). */
  agents: z.record(z.string(), heartbeatSchema).optional(),
});
export type Site = z.infer<typeof siteSchema>;

/** What a caller sees of its site: its keys, its agent's last heartbeat and what that means. */
export interface AgentView {
  agentId: string;
  /** `unavailable` after 120 s without a heartbeat (two missed beats at the default interval). */
  state: 'ok' | 'unavailable' | 'noDcReachable';
  lastHeartbeatAt: string;
  agentVersion: string;
  dcsReachable: string[];
  queueLag: number;
  lastError: string | null;
}

export const agentUnavailableAfterInMs = 120_000;

export interface SiteView extends Omit<Site, 'heartbeat' | 'agents'> {
  agents: AgentView[];
  agent: {
    state: 'ok' | 'stale' | 'noDcReachable' | 'neverSeen';
    lastHeartbeatAt: string | null;
    agentVersion: string | null;
    dcsReachable: string[];
    queueLag: number | null;
    lastError: string | null;
  };
}

export const SITES_PARTITION = 'sites';
const PARTITION = SITES_PARTITION;
/** A site that has not been heard from for this long is reported as stale (degraded). */
export const staleAfterInMs = 3 * 60_000;

export function sitesCollection(store: Store) {
  return store.collection('sites', siteSchema);
}

/** The key must parse as a public key of exactly this type (SPKI PEM). */
function checkKey(pem: string, expected: 'x25519' | 'ed25519', field: string): void {
  let type: string | undefined;
  try {
    type = createPublicKey(pem).asymmetricKeyType;
  } catch {
    type = undefined;
  }
  if (type !== expected) {
    const message = `must be an ${expected === 'x25519' ? 'X25519' : 'Ed25519'} public key (SPKI PEM)`;
    throw new AppError('Validation', `${field} ${message}`, {
      details: { errors: [{ path: `body.${field}`, message }] },
    });
  }
}

export function createSites(deps: {
  store: Store;
  clock: Clock;
  isSiteInUse?: (site: Site) => Promise<boolean>;
}) {
  const sites = sitesCollection(deps.store);

  function view(site: Site): SiteView {
    const { heartbeat, agents, ...rest } = site;
    const now = deps.clock.now().getTime();
    const lastSeen = heartbeat === undefined ? undefined : Date.parse(heartbeat.receivedAt);
    const state: SiteView['agent']['state'] =
      lastSeen === undefined
        ? 'neverSeen'
        : deps.clock.now().getTime() - lastSeen > staleAfterInMs
          ? 'stale'
          : heartbeat !== undefined && heartbeat.dcsReachable.length === 0
            ? 'noDcReachable'
            : 'ok';
    return {
      ...rest,
      agents: Object.entries(agents ?? {})
        .map(([agentId, beat]): AgentView => ({
          agentId,
          state:
            now - Date.parse(beat.receivedAt) > agentUnavailableAfterInMs
              ? 'unavailable'
              : beat.dcsReachable.length === 0
                ? 'noDcReachable'
                : 'ok',
          lastHeartbeatAt: beat.at,
          agentVersion: beat.agentVersion,
          dcsReachable: beat.dcsReachable,
          queueLag: beat.queueLag,
          lastError: beat.lastError ?? null,
        }))
        .sort((a, b) => a.agentId.localeCompare(b.agentId)),
      agent: {
        state,
        lastHeartbeatAt: heartbeat?.at ?? null,
        agentVersion: heartbeat?.agentVersion ?? null,
        dcsReachable: heartbeat?.dcsReachable ?? [],
        queueLag: heartbeat?.queueLag ?? null,
        lastError: heartbeat?.lastError ?? null,
      },
    };
  }

  async function owned(caller: Caller, siteId: string) {
    const site = await sites.get(PARTITION, siteId);
    if (site === undefined || site.value.providerId !== caller.providerId)
      throw new AppError('NotFound', `site ${siteId} not found`);
    return site;
  }

  /** A narrowed credential acts for some customers only: sites serve many, so it may not change them. */
  function assertProviderWide(caller: Caller): void {
    if (caller.customerIds !== undefined)
      throw new AppError(
        'OutOfScope',
        'this credential is narrowed to some customers and may not manage sites',
      );
  }

  return {
    /** The site as stored, by id, whoever owns it: for adapters wiring a site they were told to use. */
    async get(siteId: string): Promise<Site> {
      const site = await sites.get(PARTITION, siteId);
      if (site === undefined) throw new AppError('NotFound', `site ${siteId} not found`);
      return site.value;
    },

    /** The site as stored, whoever owns it (the relay's signature checks). */
    async find(siteId: string): Promise<Site | undefined> {
      return (await sites.get(PARTITION, siteId))?.value;
    },

    async listIds(): Promise<string[]> {
      const ids: string[] = [];
      for await (const site of sites.list(PARTITION)) ids.push(site.value.siteId);
      return ids;
    },

    /**
     * Registers or re-keys a site. Both keys are required and checked for their type; re-registering
     * keeps the heartbeat. A site another provider registered answers as if it did not exist.
     */
    async register(
      caller: Caller,
      siteId: string,
      keys: { publicKeyPem: string; agentPublicKeyPem: string },
    ): Promise<{ site: SiteView; created: boolean }> {
      assertProviderWide(caller);
      checkKey(keys.publicKeyPem, 'x25519', 'publicKeyPem');
      checkKey(keys.agentPublicKeyPem, 'ed25519', 'agentPublicKeyPem');
      const now = deps.clock.now().toISOString();
      const existing = await sites.get(PARTITION, siteId);
      if (existing !== undefined && existing.value.providerId !== caller.providerId)
        throw new AppError('NotFound', `site ${siteId} not found`);
      const value: Site = {
        siteId,
        providerId: caller.providerId,
        publicKeyPem: keys.publicKeyPem,
        agentPublicKeyPem: keys.agentPublicKeyPem,
        registeredAt: existing?.value.registeredAt ?? now,
        updatedAt: now,
        ...(existing?.value.heartbeat === undefined ? {} : { heartbeat: existing.value.heartbeat }),
        ...(existing?.value.agents === undefined ? {} : { agents: existing.value.agents }),
      };
      if (existing === undefined) {
        try {
          return { site: view((await sites.create(PARTITION, siteId, value)).value), created: true };
        } catch (error) {
          // Registered by someone else between our read and our write: not ours either way.
          if (error instanceof AppError && error.code === 'AlreadyExists')
            throw new AppError('NotFound', `site ${siteId} not found`);
          throw error;
        }
      }
      return {
        site: view((await sites.replace(PARTITION, siteId, value, existing.etag)).value),
        created: false,
      };
    },

    async getForCaller(caller: Caller, siteId: string): Promise<SiteView> {
      return view((await owned(caller, siteId)).value);
    },

    /** The caller's sites (site ids share one partition: filtered by owner). */
    async listForCaller(caller: Caller, request: PageRequest): Promise<PageOf<SiteView>> {
      return pageOf(sites, PARTITION, request, (row) =>
        row.value.providerId === caller.providerId ? view(row.value) : undefined,
      );
    },

    /** Removes a site no customer uses any more (its queues stay; infra owns them). */
    async remove(caller: Caller, siteId: string): Promise<void> {
      assertProviderWide(caller);
      const site = await owned(caller, siteId);
      if ((await deps.isSiteInUse?.(site.value)) === true)
        throw new AppError(
          'Conflict',
          `site ${siteId} is used by a customer; point the customer elsewhere first`,
        );
      await sites.delete(PARTITION, siteId, site.etag);
    },

    /**
     * Records a heartbeat; `replayed` when it is not newer than the last one of the same agent. A
     * heartbeat carries no nonce, so without this a captured one resent later (anyone who may Send to
     * the reply queue can) would make a dead agent look alive and move its last heartbeat backwards.
     */
    async recordHeartbeat(heartbeat: Heartbeat): Promise<'recorded' | 'replayed' | 'unknownSite'> {
      const existing = await sites.get(PARTITION, heartbeat.siteId);
      if (existing === undefined) return 'unknownSite'; // an agent of a site we do not know: nothing to show
      const previous = existing.value.agents?.[heartbeat.agentId ?? 'default'];
      if (previous !== undefined && Date.parse(heartbeat.at) <= Date.parse(previous.at)) return 'replayed';
      const beat = {
        at: heartbeat.at,
        receivedAt: deps.clock.now().toISOString(),
        agentVersion: heartbeat.agentVersion,
        dcsReachable: heartbeat.dcsReachable,
        queueLag: heartbeat.queueLag,
        ...(heartbeat.lastError === undefined ? {} : { lastError: heartbeat.lastError }),
      };
      const value: Site = {
        ...existing.value,
        // The site's latest heartbeat from any of its agents, and each agent's own.
        heartbeat: beat,
        agents: { ...existing.value.agents, [heartbeat.agentId ?? 'default']: beat },
      };
      try {
        // With the etag: a heartbeat must never undo a re-registration that raced it.
        await sites.replace(PARTITION, heartbeat.siteId, value, existing.etag);
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      }
      return 'recorded';
    },

    /** The caller's own sites as a health dependency: stale or DC-less agents are `degraded`. */
    healthCheckFor(caller: Caller): HealthCheck {
      return {
        name: 'agentSites',
        check: async () => {
          const list: SiteView[] = [];
          for await (const { value } of sites.list(PARTITION))
            if (value.providerId === caller.providerId) list.push(view(value));
          if (list.length === 0) return { state: 'notConfigured' };
          const degraded = list.filter((s) => s.agent.state !== 'ok').length;
          return {
            state: degraded === 0 ? 'ok' : 'degraded',
            info: {
              sites: list.map((s) => ({ siteId: s.siteId, ...s.agent, agents: s.agents })),
            },
          };
        },
      };
    },
  };
}

export type Sites = ReturnType<typeof createSites>;
