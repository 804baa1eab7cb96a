import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { HealthCheck } from '../ports/health.js';
import type { Store } from '../ports/store.js';
import {
  agentUnderstands,
  minimumAgentVersion,
  publicKeyFromPem,
  verifyAgentMessage,
  type CommandType,
  type Heartbeat,
} from '../relay-protocol/index.js';
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
  /** During a key rotation: this heartbeat was also signed with the site's next agent key. */
  signedWithNextKey: z.boolean().optional(),
});
/** A key rotation under way: the next keys, accepted beside the current ones until it is finished. */
const rotationSchema = z.object({
  publicKeyPem: z.string(),
  agentPublicKeyPem: z.string(),
  startedAt: z.string(),
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
  rotation: rotationSchema.optional(),
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
  /** Only while a key rotation is open: whether its last heartbeat since the start was signed with the next key. */
  signedWithNextKey?: boolean;
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

/** The site's agents heard from in the last 120 s (the ones that may take the next command). */
function availableAgents(site: Site, nowMs: number): Array<[string, NonNullable<Site['heartbeat']>]> {
  return Object.entries(site.agents ?? {}).filter(
    ([, beat]) => nowMs - Date.parse(beat.receivedAt) <= agentUnavailableAfterInMs,
  );
}

/**
 * Throws (retryable, so the step waits and says why) unless every available agent of the site
 * understands the command type (shared/relay-protocol/versions.ts). With no agent available the
 * command is sent: it waits in the site's queue for whichever agent comes first, as before.
 */
export function assertAgentsUnderstand(site: Site, type: CommandType, now: Date): void {
  const behind = availableAgents(site, now.getTime()).filter(
    ([, beat]) => !agentUnderstands(beat.agentVersion, type),
  );
  if (behind.length === 0) return;
  const minimum = minimumAgentVersion[type];
  const names = behind.map(([id, beat]) => `${id} runs ${beat.agentVersion}`).join(', ');
  throw new AppError(
    'Unavailable',
    `waiting for an agent upgrade: site ${site.siteId} needs agent ≥ ${minimum} for ${type} on every available agent (${names}); upgrade them or stop the old ones`,
    {
      retryable: true,
      details: {
        reason: 'AgentUpgradeRequired',
        siteId: site.siteId,
        commandType: type,
        minimumAgentVersion: minimum,
        agents: behind.map(([id, beat]) => `${id}@${beat.agentVersion}`).join(','),
      },
    },
  );
}

/** The agent keys a reply or heartbeat of the site may be signed with: current, and next during a rotation. */
export function trustedAgentKeys(site: Site): string[] {
  return [site.agentPublicKeyPem, site.rotation?.agentPublicKeyPem].filter(
    (pem): pem is string => pem !== undefined,
  );
}

export function createSites(deps: {
  store: Store;
  clock: Clock;
  isSiteInUse?: (site: Site) => Promise<boolean>;
  /** Told after a site's trusted keys changed (re-key, rotation start/finish/cancel), e.g. to drop caches. */
  onKeysChanged?: (siteId: string) => void;
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
          ...(site.rotation === undefined
            ? {}
            : {
                signedWithNextKey:
                  beat.signedWithNextKey === true && beat.receivedAt >= site.rotation.startedAt,
              }),
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

  /**
   * Re-reads and re-decides on a lost race: heartbeats write the same row every few seconds, so an
   * operator's change must not fail because an agent beat in between. `change` returns undefined for
   * "nothing to write"; it may throw to refuse.
   */
  async function changeOwned(
    caller: Caller,
    siteId: string,
    change: (site: Site) => Site | undefined,
  ): Promise<{ site: Site; changed: boolean }> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const site = await owned(caller, siteId);
      const next = change(site.value);
      if (next === undefined) return { site: site.value, changed: false };
      try {
        const saved = await sites.replace(PARTITION, siteId, next, site.etag);
        deps.onKeysChanged?.(siteId);
        return { site: saved.value, changed: true };
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      }
    }
    throw new AppError('Unavailable', `site ${siteId} kept changing; retry`, { retryable: true });
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
        // A re-key replaces the keys outright: a rotation that was open ends with it.
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
      const saved = await sites.replace(PARTITION, siteId, value, existing.etag);
      deps.onKeysChanged?.(siteId);
      return { site: view(saved.value), created: false };
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
      const rotation = existing.value.rotation;
      const beat = {
        at: heartbeat.at,
        receivedAt: deps.clock.now().toISOString(),
        agentVersion: heartbeat.agentVersion,
        dcsReachable: heartbeat.dcsReachable,
        queueLag: heartbeat.queueLag,
        ...(heartbeat.lastError === undefined ? {} : { lastError: heartbeat.lastError }),
        ...(rotation === undefined
          ? {}
          : {
              signedWithNextKey: verifyAgentMessage(
                heartbeat,
                publicKeyFromPem(rotation.agentPublicKeyPem, 'ed25519'),
              ),
            }),
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

    /**
     * Opens a key rotation: the next keys (generated on the agent's machine by `agent keys rotate`)
     * are trusted beside the current ones; passwords stay sealed to the current X25519 key until the
     * rotation is finished. Repeating it with the same keys is a no-op; other keys restart it.
     */
    async startRotation(
      caller: Caller,
      siteId: string,
      keys: { publicKeyPem: string; agentPublicKeyPem: string },
    ): Promise<SiteView> {
      assertProviderWide(caller);
      checkKey(keys.publicKeyPem, 'x25519', 'publicKeyPem');
      checkKey(keys.agentPublicKeyPem, 'ed25519', 'agentPublicKeyPem');
      const { site } = await changeOwned(caller, siteId, (current) => {
        if (keys.agentPublicKeyPem.trim() === current.agentPublicKeyPem?.trim())
          throw new AppError(
            'Validation',
            'agentPublicKeyPem is the current key: a rotation needs new keys',
            {
              details: { errors: [{ path: 'body.agentPublicKeyPem', message: 'same as the current key' }] },
            },
          );
        const open = current.rotation;
        if (
          open?.publicKeyPem.trim() === keys.publicKeyPem.trim() &&
          open.agentPublicKeyPem.trim() === keys.agentPublicKeyPem.trim()
        )
          return undefined;
        const now = deps.clock.now().toISOString();
        return { ...current, rotation: { ...keys, startedAt: now }, updatedAt: now };
      });
      return view(site);
    },

    /**
     * Makes the next keys current and stops trusting the old ones. Refused (409, naming them) while an
     * available agent has not yet sent a heartbeat signed with the next key since the rotation started:
     * it could not open passwords sealed to the next X25519 key nor sign with the next Ed25519 key.
     */
    async finishRotation(caller: Caller, siteId: string): Promise<SiteView> {
      assertProviderWide(caller);
      const { site } = await changeOwned(caller, siteId, (current) => {
        const rotation = current.rotation;
        if (rotation === undefined)
          throw new AppError('Conflict', `site ${siteId} has no key rotation under way`);
        const seen = view(current).agents.filter((a) => a.state !== 'unavailable');
        const behind = seen.filter((a) => a.signedWithNextKey !== true).map((a) => a.agentId);
        if (seen.length === 0 || behind.length > 0)
          throw new AppError(
            'Conflict',
            seen.length === 0
              ? `no agent of site ${siteId} is available to confirm the next key; start one with it first`
              : `agents of site ${siteId} have not confirmed the next key yet: ${behind.join(', ')} (load it with \`agent keys rotate\` + reload, then wait for a heartbeat)`,
            { details: { agents: behind.join(',') } },
          );
        const { rotation: _finished, ...rest } = current;
        const agents = Object.fromEntries(
          Object.entries(rest.agents ?? {}).map(([id, beat]) => {
            const { signedWithNextKey: _s, ...kept } = beat;
            return [id, kept];
          }),
        );
        return {
          ...rest,
          agents,
          publicKeyPem: rotation.publicKeyPem,
          agentPublicKeyPem: rotation.agentPublicKeyPem,
          updatedAt: deps.clock.now().toISOString(),
        };
      });
      return view(site);
    },

    /** Abandons an open rotation: only the current keys are trusted again. Safe to repeat. */
    async cancelRotation(caller: Caller, siteId: string): Promise<void> {
      assertProviderWide(caller);
      await changeOwned(caller, siteId, (current) => {
        if (current.rotation === undefined) return undefined;
        const { rotation: _cancelled, ...rest } = current;
        return { ...rest, updatedAt: deps.clock.now().toISOString() };
      });
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
