import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import type { Customer } from '../domain/customer.js';
import {
  defaultMatchRules,
  deleteGuardTrips,
  diffAttributes,
  Matcher,
  type AttributeDifference,
  type DeleteGuard,
  type LocalIdentity,
  type MatchRules,
} from '../domain/matching.js';
import { userRecordSchema, type UserRecord } from '../domain/user.js';
import { AppError, toAppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type {
  CloudDirectory,
  CloudDirectoryFactory,
  CloudUserPatch,
  CloudUserSnapshot,
  ImportedCloudUser,
  ImportUserChangePage,
} from '../ports/cloud-directory.js';
import type { Bus } from '../ports/bus.js';
import { deterministicMessageId } from '../ports/bus.js';
import type { OnPremDirectory, OnPremUser } from '../ports/on-prem-directory.js';
import type { Store, Versioned } from '../ports/store.js';
import { onboardingWork } from '../contracts/onboarding-work.js';
import { loadCustomer } from './customers.js';
import { pageOf, type PageOf, type PageRequest } from './paging.js';
import { createTenancy } from './tenancy.js';

/**
 * Onboarding an existing tenant (and Tenant Connect: the same path for a customer whose users Atria
 * already holds), then keeping it in sync.
 *
 * A job reads the tenant page by page (users/delta, so the round ends with a delta link for the drift
 * timer), matches each user as it streams past against the customer's Atria users (indexed once, see
 * domain/matching.ts) and writes one item per object: matched, case, only in the cloud, only local.
 * Memory holds the local index and one page, never the tenant. The job is a dry run: nothing is linked
 * until a person approves (all at once or per item); cases are resolved one by one. Progress and the
 * cursor are saved after every page under a lease, so a job whose process died resumes where it was.
 */

const jobStates = ['reading', 'awaitingApproval', 'completed', 'failed'] as const;

const progressSchema = z.object({
  read: z.number(),
  matched: z.number(),
  cases: z.number(),
  onlyInCloud: z.number(),
  onlyLocal: z.number(),
  /** Cases without a resolution, plus approved items not yet applied. */
  pending: z.number(),
  linked: z.number(),
  created: z.number(),
  /** Groups read (each with its member ids). */
  groups: z.number().default(0),
});
type Progress = z.infer<typeof progressSchema>;

const jobSchema = z.object({
  jobId: z.string(),
  providerId: z.string(),
  customerId: z.string(),
  tenantId: z.string(),
  state: z.enum(jobStates),
  /** How the tenant was reachable; GDAP state as the partner tenant shows it (null: not readable). */
  access: z
    .object({
      via: z.literal('appConsent'),
      gdapRelationships: z.array(z.object({ id: z.string(), status: z.string() })).nullable(),
    })
    .optional(),
  organization: z
    .object({ id: z.string(), displayName: z.string(), partnerTenantType: z.string().nullable() })
    .optional(),
  domains: z
    .array(
      z.object({
        id: z.string(),
        authenticationType: z.string(),
        isDefault: z.boolean(),
        isInitial: z.boolean(),
        isVerified: z.boolean(),
        federation: z
          .object({
            issuerUri: z.string(),
            passiveSignInUri: z.string(),
            preferredAuthenticationProtocol: z.string(),
          })
          .nullable(),
      }),
    )
    .default([]),
  skus: z
    .array(
      z.object({
        skuId: z.string(),
        skuPartNumber: z.string(),
        enabledUnits: z.number(),
        consumedUnits: z.number(),
      }),
    )
    .default([]),
  progress: progressSchema,
  /** The AD side as the site's agent read it (hybrid/AD customers): its USN watermark seeds drift. */
  ad: z.object({ siteId: z.string(), watermark: z.string(), users: z.number() }).optional(),
  /** The customer's AD site when the job started (hybrid/AD customers): the agent reads the AD side. */
  adSiteId: z.string().optional(),
  cursor: z.string().optional(),
  /** Chunks written so far: names the next chunk row, so replayed pages rewrite their own. */
  pages: z.number().default(0),
  deltaLink: z.string().optional(),
  /** groups/delta's link after the import's first round (memberships follow it in drift). */
  groupsDeltaLink: z.string().optional(),
  leaseUntil: z.string().optional(),
  approvedAt: z.string().optional(),
  /** The licence-source import run at approval (Partner Center, distributor, Graph subscriptions). */
  licensingImport: z
    .object({ importId: z.string(), state: z.string(), error: z.string().optional() })
    .optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  /** Retryable failures of the read so far, and the last one (the run is re-scheduled with backoff). */
  retries: z.number().optional(),
  lastError: z.object({ code: z.string(), message: z.string() }).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type OnboardingJob = z.infer<typeof jobSchema>;

const candidateSchema = z.object({ key: z.string(), score: z.number(), rules: z.array(z.string()) });
const resolutionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('link'), userId: z.string() }),
  z.object({ action: z.literal('createNew') }),
  z.object({ action: z.literal('ignore') }),
]);
export type CaseResolution = z.infer<typeof resolutionSchema>;
/** Strict (an unknown field is refused by name); `userId` only with `link`. */
export const resolveCaseRequestSchema = z
  .strictObject({
    action: z.enum(['link', 'createNew', 'ignore']),
    userId: z.string().min(1).max(64).optional(),
  })
  .superRefine((body, ctx) => {
    if (body.action === 'link' && body.userId === undefined)
      ctx.addIssue({ code: 'custom', path: ['userId'], message: 'required to link' });
    if (body.action !== 'link' && body.userId !== undefined)
      ctx.addIssue({ code: 'custom', path: ['userId'], message: 'only with action link' });
  });

/** The parsed request as a resolution (the schema guarantees userId with link). */
/** Half the queue's maxDeliveryCount (10): a delivery this far along hands its job to a new message. */
export const HAND_OFF_AFTER_DELIVERIES = 5;

export function toResolution(body: z.infer<typeof resolveCaseRequestSchema>): CaseResolution {
  if (body.action === 'link') return { action: 'link', userId: body.userId ?? '' };
  return { action: body.action };
}

const itemKinds = ['matched', 'case', 'onlyInCloud', 'onlyLocal'] as const;
export const itemKindSchema = z.enum(itemKinds);
const itemSchema = z.object({
  itemId: z.string(),
  kind: z.enum(itemKinds),
  cloud: z
    .object({
      id: z.string(),
      userPrincipalName: z.string(),
      displayName: z.string(),
      onPremisesImmutableId: z.string().nullable(),
      accountEnabled: z.boolean(),
      isAdmin: z.boolean(),
      licences: z.array(z.string()),
    })
    .optional(),
  /** The Atria user id matched (or the only-local one). */
  userId: z.string().optional(),
  how: z.enum(['linked', 'hard', 'soft']).optional(),
  score: z.number().optional(),
  rules: z.array(z.string()).optional(),
  reason: z.enum(['belowDefinite', 'ambiguous', 'adminRole']).optional(),
  candidates: z.array(candidateSchema).optional(),
  differences: z
    .array(
      z.object({
        attribute: z.string(),
        cloud: z.string().nullable(),
        local: z.string().nullable(),
        winner: z.enum(['ad', 'cloud']),
      }),
    )
    .default([]),
  resolution: resolutionSchema.optional(),
  /** The local side as matching saw it (AD's values where the DC holds the user). */
  local: z
    .object({
      userPrincipalName: z.string(),
      displayName: z.string(),
      inAd: z.boolean(),
      inAtria: z.boolean(),
    })
    .optional(),
  /** The local object's source anchors (base64 objectGUID, ms-DS-ConsistencyGuid) as the DC reported them. */
  anchors: z.array(z.string()).optional(),
  appliedAt: z.string().optional(),
});
export type OnboardingItem = z.infer<typeof itemSchema>;

/** Decided items (matched, only in cloud, only local) of one page, in one row: writes grow per page, not per user. */
const chunkSchema = z.object({ items: z.array(itemSchema) });
const pageChunkKey = (page: number): string => `p${String(page).padStart(7, '0')}`;
const localChunkKey = (n: number): string => `q${String(n).padStart(7, '0')}`;

interface PageContext {
  chunk: OnboardingItem[];
  chunkKey: string;
  /** cloud id → chunk row of each matched item (to undo a match a later claimant makes ambiguous). */
  matchedIn: Map<string, string>;
}

/** One group of the tenant as onboarding read it, with its members' Entra object ids. */
const groupRowSchema = z.object({
  id: z.string(),
  displayName: z.string(),
  mailNickname: z.string(),
  securityEnabled: z.boolean(),
  mailEnabled: z.boolean(),
  groupTypes: z.array(z.string()),
  memberIds: z.array(z.string()),
});
export type OnboardingGroup = z.infer<typeof groupRowSchema>;

const lockSchema = z.object({ jobId: z.string(), active: z.boolean() });

/** A user the DC holds that Atria does not (yet): linking one creates its Atria record from these facts. */
const adObjectSchema = z.object({
  objectGuid: z.string(),
  dn: z.string(),
  sAMAccountName: z.string(),
  userPrincipalName: z.string(),
  displayName: z.string(),
  enabled: z.boolean(),
  consistencyGuid: z.string().optional(),
});
type AdObject = z.infer<typeof adObjectSchema>;

const syncStateSchema = z.object({
  providerId: z.string(),
  customerId: z.string(),
  tenantId: z.string(),
  deltaLink: z.string().optional(),
  groupsDeltaLink: z.string().optional(),
  /** The agent's change feed: the USN watermark after the last applied AD pass, per site. */
  ad: z.object({ siteId: z.string(), watermark: z.string() }).optional(),
  /** Set when a pass found more deletions than the guard allows; nothing was deleted. */
  held: z.object({ deletions: z.number(), users: z.number(), since: z.string() }).optional(),
  /** A person confirmed the held deletions: the next pass applies them once. */
  confirmed: z.boolean().default(false),
  /** Objects whose change failed, retried with backoff on later passes. */
  failures: z
    .array(z.object({ id: z.string(), attempts: z.number(), nextAttemptAt: z.string(), error: z.string() }))
    .default([]),
  lastPass: z
    .object({
      at: z.string(),
      full: z.boolean(),
      upserted: z.number(),
      removed: z.number(),
      created: z.number(),
      reverted: z.number(),
      adChanges: z.number().default(0),
      groupChanges: z.number().default(0),
    })
    .optional(),
});
export type SyncState = z.infer<typeof syncStateSchema>;

export const startOnboardingRequestSchema = z.strictObject({
  tenantId: z.string().regex(/^[0-9a-fA-F-]{36}$/, 'a tenant id (GUID)'),
});
export const approveRequestSchema = z.strictObject({
  /** Only these items (cloud object ids); all of them when absent. */
  items: z.array(z.string().min(1).max(128)).min(1).max(500).optional(),
});

export interface SyncPassResult {
  held: boolean;
  full: boolean;
  /** AD changes the agent reported this pass (hybrid/AD customers). */
  adChanges: number;
  /** Group rows changed by groups/delta (memberships added/removed, groups created or deleted). */
  groupChanges: number;
  upserted: number;
  removed: number;
  created: number;
  reverted: number;
  failed: number;
  deletions?: number;
}

interface AdRead {
  siteId: string;
  /** Users present (changed since the watermark given, or all of them for a full read). */
  users: OnPremUser[];
  /** objectGUIDs deleted since (seen only when the agent's account may read CN=Deleted Objects). */
  deleted: string[];
  watermark: string;
}

export interface OnboardingDeps {
  store: Store;
  clock: Clock;
  cloudDirectory?: CloudDirectoryFactory;
  /** The site's AD through its relay agent (hybrid and AD customers). */
  onPremDirectory?: (siteId: string) => Promise<OnPremDirectory>;
  /** Runs go onto the onboarding-work queue; without a bus (unit tests) they run in this process. */
  bus?: Bus;
  /** The app's home (partner) tenant, where GDAP relationships are read. */
  homeTenantId?: string;
  appClientId?: string;
  guard: DeleteGuard;
  rules?: MatchRules;
  leaseInMs?: number;
  /** Decided items per chunk row and checkpoint (default 500: five Graph pages, about 200 KB). */
  chunkItems?: number;
  /**
   * Imports the customer's licence sources (1-Tier/2-Tier subscriptions into the seat ledger) under the
   * given id (a repeat resumes it); licensing.runImport in the composition.
   */
  importLicenceSources?: (
    caller: Caller,
    customerId: string,
    importId: string,
  ) => Promise<{ importId: string; state: string }>;
  /** Called with a job's failure (the background run has no caller to answer). */
  onError?: (error: unknown) => void;
}

const userPartition = (providerId: string, customerId: string): string => `${providerId}/${customerId}`;
const lockKey = (providerId: string, customerId: string): string => `${providerId}/${customerId}`;
const emptyProgress = (): Progress => ({
  read: 0,
  matched: 0,
  cases: 0,
  onlyInCloud: 0,
  onlyLocal: 0,
  pending: 0,
  linked: 0,
  created: 0,
  groups: 0,
});

/** Atria user ids for users first seen in the cloud: stable, so a repeat creates nothing new. */
const cloudUserId = (objectId: string): string => `entra-${objectId}`;
/** Atria user ids for users first seen in AD (objectGUID as base64url: no '/' reaches a RowKey). */
const adUserId = (objectGuid: string): string =>
  `ad-${Buffer.from(objectGuid, 'base64').toString('base64url')}`;
const isAdUserId = (userId: string): boolean => /^ad-[A-Za-z0-9_-]{22}$/.test(userId);
/** A fresh command id per read: the agent answers a repeated id from its record. */
const readCommandId = (what: string): string => `onboarding.${what}.${randomUUID()}`;

function localOf(record: UserRecord): LocalIdentity {
  const anchors = record.ad === undefined ? [] : [record.ad.objectGuid];
  return {
    key: record.userId,
    userPrincipalName: record.userPrincipalName,
    displayName: record.displayName,
    anchors,
    primarySmtp: null,
    employeeId: null,
    entraObjectId: record.entra?.objectId ?? null,
  };
}

/** The matching view of an AD user: the DC's anchors (objectGUID, ms-DS-ConsistencyGuid) and values. */
function adIdentity(user: OnPremUser): Omit<LocalIdentity, 'key' | 'entraObjectId'> {
  const anchors = [user.objectGuid];
  if (user.consistencyGuid !== undefined && user.consistencyGuid !== user.objectGuid)
    anchors.push(user.consistencyGuid);
  return {
    userPrincipalName: user.userPrincipalName ?? '',
    displayName: user.displayName ?? user.sAMAccountName,
    anchors,
    // AD's `mail` when the agent reads it (allow-listed): the address Exchange makes the primary SMTP.
    primarySmtp: user.attributes['mail'] ?? null,
    employeeId: user.attributes['employeeID'] ?? null,
  };
}

function adObjectOf(user: OnPremUser): AdObject {
  return {
    objectGuid: user.objectGuid,
    dn: user.dn,
    sAMAccountName: user.sAMAccountName,
    userPrincipalName: user.userPrincipalName ?? '',
    displayName: user.displayName ?? user.sAMAccountName,
    enabled: user.enabled,
    ...(user.consistencyGuid === undefined ? {} : { consistencyGuid: user.consistencyGuid }),
  };
}

/** A group row's content as a short digest (member order does not matter). */
function groupDigest(group: OnboardingGroup): string {
  return createHash('sha256')
    .update(JSON.stringify({ ...group, memberIds: [...group.memberIds].sort() }))
    .digest('base64url');
}

/** One page's item writes, sent a few at a time (each an independent upsert keyed by its object). */
class PendingWrites {
  private queued: (() => Promise<unknown>)[] = [];
  constructor(private readonly concurrency: number) {}
  add(write: () => Promise<unknown>): void {
    this.queued.push(write);
  }
  async flush(): Promise<void> {
    const work = this.queued;
    this.queued = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(this.concurrency, work.length) }, async () => {
        for (let write = work[next++]; write !== undefined; write = work[next++]) await write();
      }),
    );
  }
}

export function createOnboarding(deps: OnboardingDeps) {
  const jobs = deps.store.collection('onboardingjobs', jobSchema);
  /** Cases, one row each (a person resolves them one by one). */
  const items = deps.store.collection('onboardingitems', itemSchema);
  const chunks = deps.store.collection('onboardingchunks', chunkSchema);
  const groups = deps.store.collection('onboardinggroups', groupRowSchema);
  const locks = deps.store.collection('onboardinglocks', lockSchema);
  const syncStates = deps.store.collection('onboardingsync', syncStateSchema);
  /** AD users Atria does not hold, per job (linking one creates its record). */
  const adObjects = deps.store.collection('onboardingad', adObjectSchema);
  const users = deps.store.collection('users', userRecordSchema);
  const tenancy = createTenancy(deps);
  const rules = deps.rules ?? defaultMatchRules;
  const leaseInMs = deps.leaseInMs ?? 120_000;
  const chunkItems = deps.chunkItems ?? 500;
  const LOCKS = 'onboarding';
  const SYNC = 'sync';
  const running = new Map<string, Promise<void>>();

  const now = (): string => deps.clock.now().toISOString();
  const itemsPartition = (job: { providerId: string; customerId: string; jobId: string }): string =>
    `${job.providerId}/${job.customerId}/${job.jobId}`;

  function directory(tenantId: string): CloudDirectory {
    if (deps.cloudDirectory === undefined)
      throw new AppError('Unavailable', 'Microsoft Graph is not configured', { retryable: false });
    return deps.cloudDirectory(tenantId);
  }

  /** GDAP relationships for the tenant as the partner tenant shows them; null when not readable. */
  async function gdapState(tenantId: string): Promise<{ id: string; status: string }[] | null> {
    if (deps.homeTenantId === undefined) return null;
    try {
      const found = await directory(deps.homeTenantId).listDelegatedAdminRelationships({
        customerTenantId: tenantId,
      });
      return found.map((r) => ({ id: r.id, status: r.status }));
    } catch {
      return null;
    }
  }

  /**
   * Access first: the app must read the tenant's organization (admin consent in that tenant). When it
   * cannot, the error says what to do, with the GDAP relationships the partner tenant holds for it.
   */
  async function checkAccess(
    tenantId: string,
  ): Promise<NonNullable<OnboardingJob['access']> & { org: OnboardingJob['organization'] }> {
    try {
      const org = await directory(tenantId).getOrganization();
      return {
        via: 'appConsent',
        gdapRelationships: await gdapState(tenantId),
        org: { id: org.id, displayName: org.displayName, partnerTenantType: org.partnerTenantType },
      };
    } catch (thrown) {
      const error = toAppError(thrown);
      if (
        !['InvalidCredentials', 'Forbidden', 'Unauthenticated', 'NotFound', 'Validation'].includes(error.code)
      )
        throw error;
      const gdap = await gdapState(tenantId);
      const active = gdap?.some((r) => r.status === 'active') ?? false;
      const consent =
        deps.appClientId === undefined
          ? 'grant admin consent to the Atria app in the tenant'
          : `a Global Administrator of the tenant grants admin consent to app ${deps.appClientId} (https://login.microsoftonline.com/${tenantId}/adminconsent?client_id=${deps.appClientId})`;
      throw new AppError(
        'Forbidden',
        `Atria cannot read tenant ${tenantId} (${error.code}: ${error.message}). To onboard it, ${consent}` +
          (active
            ? '; a GDAP relationship is active, but onboarding reads the tenant with the app, so consent is still needed.'
            : gdap !== null && gdap.length > 0
              ? `; GDAP relationships exist but none is active (${gdap.map((r) => r.status).join(', ')}): have the customer approve it.`
              : '; or set up a GDAP relationship with the Directory Readers and User Administrator roles and have the customer approve it.'),
        { details: { tenantId, cause: error.code, gdapRelationships: gdap } },
      );
    }
  }

  async function assertCustomerTenant(
    caller: Caller,
    customerId: string,
    tenantId: string,
  ): Promise<Customer> {
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    if (customer.entra?.tenantId.toLowerCase() !== tenantId.toLowerCase())
      throw new AppError(
        'Conflict',
        `customer ${customerId} does not name tenant ${tenantId}: set entra.tenantId on the customer first (PUT /customers/${customerId}), which claims the tenant`,
        { details: { errors: [{ path: 'body.tenantId', message: 'not the customer tenant' }] } },
      );
    await tenancy.assertWorkAllowed(caller.providerId, customer);
    return customer;
  }

  async function latestJob(
    providerId: string,
    customerId: string,
  ): Promise<Versioned<OnboardingJob> | undefined> {
    const lock = await locks.get(LOCKS, lockKey(providerId, customerId));
    if (lock === undefined) return undefined;
    return jobs.get(userPartition(providerId, customerId), lock.value.jobId);
  }

  async function requireJob(caller: Caller, customerId: string): Promise<Versioned<OnboardingJob>> {
    await loadCustomer(deps.store, caller, customerId);
    const job = await latestJob(caller.providerId, customerId);
    if (job === undefined) throw new AppError('NotFound', `customer ${customerId} has no onboarding`);
    return job;
  }

  /** Starts (or returns the running) onboarding of the customer's tenant. */
  async function start(caller: Caller, customerId: string, tenantId: string): Promise<OnboardingJob> {
    const customer = await assertCustomerTenant(caller, customerId, tenantId);
    const existing = await latestJob(caller.providerId, customerId);
    if (
      existing !== undefined &&
      (existing.value.state === 'reading' || existing.value.state === 'awaitingApproval')
    ) {
      await kick(existing.value);
      return existing.value;
    }
    const access = await checkAccess(tenantId);
    const at = now();
    const job: OnboardingJob = {
      jobId: randomUUID(),
      providerId: caller.providerId,
      customerId,
      tenantId: tenantId.toLowerCase(),
      state: 'reading',
      access: { via: access.via, gdapRelationships: access.gdapRelationships },
      ...(access.org === undefined ? {} : { organization: access.org }),
      domains: [],
      skus: [],
      progress: emptyProgress(),
      ...(customer.ad === undefined ? {} : { adSiteId: customer.ad.siteId }),
      pages: 0,
      createdAt: at,
      updatedAt: at,
    };
    await jobs.create(userPartition(caller.providerId, customerId), job.jobId, job);
    // The lock names the one current job of the customer; a racing start loses here and reads the winner.
    const key = lockKey(caller.providerId, customerId);
    const lock = await locks.get(LOCKS, key);
    if (lock === undefined) await locks.create(LOCKS, key, { jobId: job.jobId, active: true });
    else await locks.replace(LOCKS, key, { jobId: job.jobId, active: true }, lock.etag);
    await kick(job);
    return job;
  }

  /**
   * Hands the read to the onboarding-work queue (a message per lease period: duplicate detection drops
   * a repeat, a resend after the lease expired resumes). Without a bus it runs in this process.
   */
  async function kick(job: OnboardingJob, notBefore?: Date): Promise<void> {
    if (job.state !== 'reading') return;
    if (deps.bus !== undefined) {
      await deps.bus.send(
        onboardingWork,
        {
          type: 'onboarding.run',
          v: 1,
          providerId: job.providerId,
          customerId: job.customerId,
          jobId: job.jobId,
        },
        {
          messageId: deterministicMessageId(
            'onboarding.run',
            job.jobId,
            job.leaseUntil ?? 'first',
            notBefore?.toISOString() ?? '',
          ),
          ...(notBefore === undefined ? {} : { scheduledEnqueueTime: notBefore }),
        },
      );
      return;
    }
    const key = itemsPartition(job);
    if (running.has(key)) return;
    const run = read(job.providerId, job.customerId, job.jobId)
      .catch((error: unknown) => deps.onError?.(error))
      .finally(() => running.delete(key));
    running.set(key, run);
  }

  /**
   * One queue delivery: reads under the job's lease until the dry run is ready. A live lease held by
   * another delivery re-schedules this run for when it ends; a retryable failure re-schedules it with
   * backoff (the lease is left to expire); a permanent one fails the job (read() records it).
   */
  async function runQueued(
    work: { providerId: string; customerId: string; jobId: string },
    deliveryCount: number,
  ): Promise<'done' | 'leased' | 'rescheduled' | 'handedOff' | 'gone'> {
    const job = await jobs.get(userPartition(work.providerId, work.customerId), work.jobId);
    if (job?.value.providerId !== work.providerId || job.value.state !== 'reading') return 'gone';
    if (deliveryCount >= HAND_OFF_AFTER_DELIVERIES) {
      // A long read under outages keeps losing its lock, and the broker dead-letters the message at its
      // tenth delivery although nothing is wrong with the job (its state is in storage, the message only
      // names it). Hand it to a fresh message, counted and backed off like a retry, and complete this one.
      const retries = (job.value.retries ?? 0) + 1;
      const saved = await saveJob(job, { retries });
      const delay = Math.min(1000 * 2 ** Math.min(retries, 8), 300_000);
      await kick(saved.value, new Date(deps.clock.now().getTime() + delay));
      return 'handedOff';
    }
    if (job.value.leaseUntil !== undefined && job.value.leaseUntil > now()) {
      await kick(job.value, new Date(Date.parse(job.value.leaseUntil) + 1000));
      return 'leased';
    }
    try {
      await read(work.providerId, work.customerId, work.jobId);
      return 'done';
    } catch (thrown) {
      const error = toAppError(thrown);
      if (!(error.retryable || error.code === 'ConcurrencyConflict')) return 'done';
      const fresh = await jobs.get(job.partitionKey, job.rowKey);
      if (fresh?.value.state !== 'reading') return 'done';
      // The job shows why it waits (e.g. the site's agent is offline) and how often it was retried.
      const retries = (fresh.value.retries ?? 0) + 1;
      const saved = await saveJob(fresh, {
        retries,
        lastError: { code: error.code, message: error.message.slice(0, 300) },
      });
      const lease = saved.value.leaseUntil === undefined ? 0 : Date.parse(saved.value.leaseUntil);
      const delay = Math.min(1000 * 2 ** Math.min(retries + deliveryCount - 1, 8), 300_000);
      await kick(saved.value, new Date(Math.max(lease + 1000, deps.clock.now().getTime() + delay)));
      return 'rescheduled';
    }
  }

  /** Waits for this process's runs (tests, shutdown). */
  async function idle(): Promise<void> {
    await Promise.all([...running.values()]);
  }

  async function saveJob(
    current: Versioned<OnboardingJob>,
    patch: Partial<OnboardingJob>,
  ): Promise<Versioned<OnboardingJob>> {
    return jobs.replace(
      current.partitionKey,
      current.rowKey,
      { ...current.value, ...patch, updatedAt: now() },
      current.etag,
    );
  }

  async function read(providerId: string, customerId: string, jobId: string): Promise<void> {
    let job = await jobs.get(userPartition(providerId, customerId), jobId);
    if (job?.value.state !== 'reading') return;
    const leaseOpen = job.value.leaseUntil === undefined || job.value.leaseUntil <= now();
    if (!leaseOpen) return;
    const lease = (): string => new Date(deps.clock.now().getTime() + leaseInMs).toISOString();
    // Taking the lease is an etag-guarded write: a second instance gets ConcurrencyConflict and stops.
    job = await saveJob(job, { leaseUntil: lease() });
    const cloud = directory(job.value.tenantId);
    try {
      if (job.value.domains.length === 0) {
        const facts = await readTenantFacts(cloud);
        const groupRound = await readGroupChanges(cloud, itemsPartition(job.value), undefined, true);
        job = await saveJob(job, {
          ...facts,
          groupsDeltaLink: groupRound.deltaLink,
          progress: { ...job.value.progress, groups: groupRound.count },
          leaseUntil: lease(),
        });
      }

      const partition = itemsPartition(job.value);
      const ad = job.value.adSiteId === undefined ? undefined : await readAdSide(job.value.adSiteId);
      const locals: LocalIdentity[] = [];
      const inAd = new Set<string>();
      const adByGuid = new Map((ad?.users ?? []).map((u) => [u.objectGuid, u]));
      for await (const row of users.list(userPartition(providerId, customerId))) {
        if (row.value.state === 'deleted') continue;
        const local = localOf(row.value);
        const found = row.value.ad === undefined ? undefined : adByGuid.get(row.value.ad.objectGuid);
        if (found !== undefined) {
          // The DC's anchors and values, not Atria's copy: AD is the source for a hybrid user.
          adByGuid.delete(found.objectGuid);
          inAd.add(local.key);
          locals.push({ ...local, ...adIdentity(found), key: local.key, entraObjectId: local.entraObjectId });
        } else locals.push(local);
      }
      // Users only the DC holds: matchable too (linking one creates its Atria record).
      const adOnly = new PendingWrites(16);
      for (const user of adByGuid.values()) {
        const key = adUserId(user.objectGuid);
        inAd.add(key);
        locals.push({ ...adIdentity(user), key, entraObjectId: null });
        adOnly.add(() => adObjects.upsert(partition, key, adObjectOf(user)));
      }
      await adOnly.flush();
      if (ad !== undefined && job.value.ad?.watermark !== ad.watermark)
        job = await saveJob(job, {
          ad: { siteId: ad.siteId, watermark: ad.watermark, users: ad.users.length },
          leaseUntil: lease(),
        });
      const matcher = new Matcher(locals, rules);
      const localFacts = (key: string): OnboardingItem['local'] => {
        const local = matcher.local(key);
        if (local === undefined) return undefined;
        return {
          userPrincipalName: local.userPrincipalName,
          displayName: local.displayName,
          inAd: inAd.has(key),
          inAtria: !isAdUserId(key),
        };
      };
      const admins = new Set(await cloud.listDirectoryRoleMemberIds());
      const matchedIn = new Map<string, string>();
      // A resumed run: earlier pages' matches still claim their local objects, their cases' candidates too.
      if (job.value.cursor !== undefined) {
        for await (const row of chunks.list(partition))
          for (const item of row.value.items)
            if (item.kind === 'matched' && item.userId !== undefined && item.cloud !== undefined) {
              matcher.restoreClaim(item.userId, item.cloud.id);
              matchedIn.set(item.cloud.id, row.rowKey);
            }
        for await (const row of items.list(partition))
          for (const candidate of row.value.candidates ?? []) matcher.restoreCandidate(candidate.key);
      }
      let pages = job.value.pages;

      const progress = { ...job.value.progress };
      const writes = new PendingWrites(16);
      let cursor = job.value.cursor;
      // The next page is fetched while this one is matched and written (two pages in memory at most).
      let prefetched: Promise<ImportUserChangePage> | undefined;
      // Several pages share one chunk row and one checkpoint (a crash re-reads at most those pages).
      let context: PageContext = { chunk: [], chunkKey: pageChunkKey(pages), matchedIn };
      for (;;) {
        const page = await (prefetched ?? cloud.listUserImportChanges(cursor));
        prefetched = undefined;
        if (page.nextCursor !== undefined) {
          prefetched = cloud.listUserImportChanges(page.nextCursor);
          prefetched.catch(() => undefined); // awaited next turn; a failure surfaces there
        }
        for (const change of page.changes) {
          if (change.kind !== 'upserted') continue;
          progress.read++;
          await record(
            matcher,
            partition,
            change.user,
            admins.has(change.user.id),
            progress,
            writes,
            context,
            localFacts,
          );
        }
        if (page.deltaLink === undefined && context.chunk.length < chunkItems) {
          cursor = page.nextCursor;
          continue;
        }
        const full = context;
        if (full.chunk.length > 0)
          writes.add(() => chunks.upsert(partition, full.chunkKey, { items: full.chunk }));
        await writes.flush();
        pages++;
        context = { chunk: [], chunkKey: pageChunkKey(pages), matchedIn };
        if (page.deltaLink !== undefined) {
          let onlyLocal: OnboardingItem[] = [];
          let n = 0;
          for (const local of matcher.unclaimed()) {
            progress.onlyLocal++;
            const facts = localFacts(local.key);
            onlyLocal.push({
              itemId: `local:${local.key}`,
              kind: 'onlyLocal',
              userId: local.key,
              ...(facts === undefined ? {} : { local: facts }),
              differences: [],
            });
            if (onlyLocal.length === 500) {
              await chunks.upsert(partition, localChunkKey(n++), { items: onlyLocal });
              onlyLocal = [];
            }
          }
          if (onlyLocal.length > 0) await chunks.upsert(partition, localChunkKey(n), { items: onlyLocal });
          progress.pending = progress.cases;
          const { cursor: _done, leaseUntil: _lease, lastError: _error, ...rest } = job.value;
          void _done;
          void _lease;
          void _error;
          await jobs.replace(
            job.partitionKey,
            job.rowKey,
            {
              ...rest,
              progress,
              pages,
              deltaLink: page.deltaLink,
              state: 'awaitingApproval',
              updatedAt: now(),
            },
            job.etag,
          );
          return;
        }
        cursor = page.nextCursor;
        job = await saveJob(job, {
          progress: { ...progress },
          ...(cursor === undefined ? {} : { cursor }),
          pages,
          leaseUntil: lease(),
        });
      }
    } catch (thrown) {
      const error = toAppError(thrown);
      if (error.retryable || error.code === 'ConcurrencyConflict') throw error; // resumed by the timer
      const fresh = await jobs.get(job.partitionKey, job.rowKey);
      if (fresh !== undefined)
        await saveJob(fresh, { state: 'failed', error: { code: error.code, message: error.message } });
      throw error;
    }
  }

  /**
   * The whole AD side through the site's agent: its change feed from the start (`since` omitted) is a
   * full read of the users in the allowed OUs, page by page, ending at a USN watermark that drift follows.
   * Why listChanges and not a new command: it is USN-consistent (a user changed mid-read moves past the
   * watermark and is read again, never lost), it reads USN windows in linear time (agent/ldap/executor.ts),
   * and it needs no protocol change. Why the USN feed and not DirSync for drift: DirSync needs the
   * Replicating Directory Changes right on the whole domain, which a delegated account should not hold.
   */
  async function readAdSide(siteId: string, since?: string): Promise<AdRead> {
    if (deps.onPremDirectory === undefined)
      throw new AppError('Unavailable', 'the relay to on-prem agents is not configured', {
        retryable: false,
      });
    const directory = await deps.onPremDirectory(siteId);
    const found = new Map<string, OnPremUser>();
    const deleted = new Set<string>();
    let watermark = since;
    for (let page = 0; page < 10_000; page++) {
      const feed = await directory.listChanges(watermark, {
        commandId: readCommandId('ad-read'),
        pageSize: 1000,
        timeoutInMs: 60_000,
      });
      for (const change of feed.changes) {
        if ('deleted' in change) {
          found.delete(change.objectGuid);
          deleted.add(change.objectGuid);
        } else {
          found.set(change.objectGuid, change);
          deleted.delete(change.objectGuid);
        }
      }
      watermark = feed.watermark;
      if (!feed.more) break;
    }
    return { siteId, users: [...found.values()], deleted: [...deleted], watermark: watermark ?? '0' };
  }

  /** Groups page by page, one row each with its member ids (a repeat rewrites the same rows). */
  /**
   * A groups/delta round applied to the group rows: a first (`full`) round lists every group with all
   * its members (a big group may span pages: merged) and removes rows of groups it did not name; later
   * rounds add and remove the members@delta reports and drop deleted groups. Ends with the delta link.
   */
  async function readGroupChanges(
    cloud: CloudDirectory,
    partition: string,
    from: string | undefined,
    full: boolean,
  ): Promise<{ deltaLink: string; changes: number; count: number }> {
    const seen = new Set<string>();
    let changes = 0;
    let cursor = from;
    // A full round's first sight of a group replaces its row outright, written a few at a time; what
    // was there before is kept as one digest per group (to count changes and drop vanished groups).
    const writes = new PendingWrites(16);
    const before = new Map<string, string>();
    if (full) for await (const row of groups.list(partition)) before.set(row.rowKey, groupDigest(row.value));
    for (;;) {
      const page = await cloud.listGroupChanges(cursor);
      for (const change of page.changes) {
        if (full && change.kind === 'upserted' && !seen.has(change.group.id)) {
          const { group } = change;
          seen.add(group.id);
          const row: OnboardingGroup = {
            id: group.id,
            displayName: group.displayName ?? '',
            mailNickname: group.mailNickname ?? '',
            securityEnabled: group.securityEnabled ?? false,
            mailEnabled: group.mailEnabled ?? false,
            groupTypes: group.groupTypes ?? [],
            memberIds: [...new Set(change.membersAdded)].sort(),
          };
          if (before.get(group.id) !== groupDigest(row)) {
            changes++;
            writes.add(() => groups.upsert(partition, group.id, row));
          }
          continue;
        }
        // Later sightings (a big group spread over pages, or a delta round) merge into the stored row.
        await writes.flush();
        if (change.kind === 'removed') {
          if ((await groups.get(partition, change.id)) !== undefined) {
            await groups.delete(partition, change.id);
            changes++;
          }
          continue;
        }
        const { group } = change;
        const existing = (await groups.get(partition, group.id))?.value;
        const members = new Set(existing?.memberIds ?? []);
        for (const id of change.membersAdded) members.add(id);
        for (const id of change.membersRemoved) members.delete(id);
        seen.add(group.id);
        const next: OnboardingGroup = {
          id: group.id,
          displayName: group.displayName ?? existing?.displayName ?? '',
          mailNickname: group.mailNickname ?? existing?.mailNickname ?? '',
          securityEnabled: group.securityEnabled ?? existing?.securityEnabled ?? false,
          mailEnabled: group.mailEnabled ?? existing?.mailEnabled ?? false,
          groupTypes: group.groupTypes ?? existing?.groupTypes ?? [],
          memberIds: [...members].sort(),
        };
        if (
          existing === undefined ||
          JSON.stringify({ ...existing, memberIds: [...existing.memberIds].sort() }) !== JSON.stringify(next)
        ) {
          await groups.upsert(partition, group.id, next);
          changes++;
        }
      }
      await writes.flush();
      if (page.deltaLink !== undefined) {
        for (const id of before.keys())
          if (!seen.has(id)) {
            await groups.delete(partition, id);
            changes++;
          }
        return { deltaLink: page.deltaLink, changes, count: seen.size };
      }
      cursor = page.nextCursor;
    }
  }

  async function readTenantFacts(cloud: CloudDirectory): Promise<Pick<OnboardingJob, 'domains' | 'skus'>> {
    const domains: OnboardingJob['domains'] = [];
    for (const domain of await cloud.listDomains()) {
      const federation =
        domain.authenticationType === 'Federated' ? await cloud.getDomainFederation(domain.id) : undefined;
      domains.push({
        id: domain.id,
        authenticationType: domain.authenticationType,
        isDefault: domain.isDefault,
        isInitial: domain.isInitial,
        isVerified: domain.isVerified,
        federation:
          federation === undefined
            ? null
            : {
                issuerUri: federation.issuerUri,
                passiveSignInUri: federation.passiveSignInUri,
                preferredAuthenticationProtocol: federation.preferredAuthenticationProtocol,
              },
      });
    }
    const skus = (await cloud.listSubscribedSkus()).map((s) => ({
      skuId: s.skuId,
      skuPartNumber: s.skuPartNumber,
      enabledUnits: s.enabledUnits,
      consumedUnits: s.consumedUnits,
    }));
    return { domains, skus };
  }

  /** Decides one cloud user and writes its item; a second claim on a local object turns both into cases. */
  async function record(
    matcher: Matcher,
    partition: string,
    user: ImportedCloudUser,
    isAdmin: boolean,
    progress: Progress,
    writes: PendingWrites,
    context: PageContext,
    localFacts: (key: string) => OnboardingItem['local'],
  ): Promise<void> {
    const cloud = {
      id: user.id,
      userPrincipalName: user.userPrincipalName,
      displayName: user.displayName,
      onPremisesImmutableId: user.onPremisesImmutableId,
      accountEnabled: user.accountEnabled ?? true,
      isAdmin,
      licences: user.assignedLicences.map((l) => l.skuId),
    };
    const decision = matcher.match({
      id: user.id,
      userPrincipalName: user.userPrincipalName,
      displayName: user.displayName,
      onPremisesImmutableId: user.onPremisesImmutableId,
      proxyAddresses: user.proxyAddresses,
      employeeId: user.employeeId,
      isAdmin,
    });
    if (decision.kind === 'none') {
      progress.onlyInCloud++;
      context.chunk.push({ itemId: user.id, kind: 'onlyInCloud', cloud, differences: [] });
      return;
    }
    if (decision.kind === 'case') {
      progress.cases++;
      writes.add(() =>
        items.upsert(partition, user.id, {
          itemId: user.id,
          kind: 'case',
          cloud,
          reason: decision.reason,
          candidates: decision.candidates,
          differences: [],
        }),
      );
      return;
    }
    const local = matcher.local(decision.key);
    const anchoredInAd = (local?.anchors.length ?? 0) > 0;
    const differences: AttributeDifference[] =
      local === undefined
        ? []
        : diffAttributes(
            { userPrincipalName: user.userPrincipalName, displayName: user.displayName },
            { userPrincipalName: local.userPrincipalName, displayName: local.displayName },
            anchoredInAd,
          );
    const facts = localFacts(decision.key);
    const about = {
      ...(facts === undefined ? {} : { local: facts }),
      ...(local === undefined || local.anchors.length === 0 ? {} : { anchors: local.anchors }),
    };
    const claimedBy = [...matcher.claimedTwice()].find((c) => c.key === decision.key);
    if (claimedBy !== undefined) {
      // Never guessed: every cloud user that matched this local object becomes a case.
      progress.cases++;
      writes.add(() =>
        items.upsert(partition, user.id, {
          itemId: user.id,
          kind: 'case',
          cloud,
          reason: 'ambiguous',
          candidates: [{ key: decision.key, score: decision.score, rules: decision.rules }],
          differences,
        }),
      );
      for (const otherId of claimedBy.cloudIds) {
        if (otherId === user.id) continue;
        const found = await findMatched(partition, otherId, context);
        const other = found?.item;
        if (found === undefined || other?.kind !== 'matched') continue;
        progress.matched--;
        progress.cases++;
        const { userId: _u, how: _h, score: _s, rules: _r, ...rest } = other;
        void _u;
        void _h;
        void _s;
        void _r;
        await items.upsert(partition, otherId, {
          ...rest,
          kind: 'case',
          reason: 'ambiguous',
          candidates: [{ key: decision.key, score: other.score ?? 1, rules: other.rules ?? [] }],
        });
        await found.remove();
      }
      return;
    }
    progress.matched++;
    context.chunk.push({
      itemId: user.id,
      kind: 'matched',
      cloud,
      userId: decision.key,
      how: decision.how,
      score: decision.score,
      rules: decision.rules,
      differences,
      ...about,
    });
    context.matchedIn.set(user.id, context.chunkKey);
  }

  /**
   * Finds a matched item in this page's chunk or an earlier page's row, with how to remove it there. The
   * caller writes its case first, then removes it (a crash in between leaves both, never neither).
   */
  async function findMatched(
    partition: string,
    cloudId: string,
    context: PageContext,
  ): Promise<{ item: OnboardingItem; remove(): Promise<void> } | undefined> {
    const key = context.matchedIn.get(cloudId);
    context.matchedIn.delete(cloudId);
    const here = context.chunk.find((i) => i.itemId === cloudId);
    if (here !== undefined)
      return {
        item: here,
        remove: () => {
          context.chunk.splice(context.chunk.indexOf(here), 1);
          return Promise.resolve();
        },
      };
    if (key === undefined) return undefined;
    const row = await chunks.get(partition, key);
    const item = row?.value.items.find((i) => i.itemId === cloudId);
    if (row === undefined || item === undefined) return undefined;
    return {
      item,
      remove: async () => {
        await chunks.replace(partition, key, { items: row.value.items.filter((i) => i !== item) }, row.etag);
      },
    };
  }

  // ─── Applying: links, anchors, new records ──────────────────────────────────────────────────────────

  /** Links the cloud user to an Atria user: stamps the anchor (later matches are hard) and applies the diff. */
  async function link(job: OnboardingJob, item: OnboardingItem, userId: string): Promise<'linked'> {
    const cloudUser = item.cloud;
    if (cloudUser === undefined) throw new AppError('Validation', `item ${item.itemId} has no cloud user`);
    const partition = userPartition(job.providerId, job.customerId);
    const row = (await users.get(partition, userId)) ?? (await createFromAd(job, userId));
    if (row === undefined || row.value.state === 'deleted')
      throw new AppError('NotFound', `user ${userId} not found`);
    const taken = row.value.entra?.objectId;
    if (taken !== undefined && taken !== cloudUser.id)
      throw new AppError('Conflict', `user ${userId} is already linked to Entra object ${taken}`);
    // The DC's view where matching had it (this very user), else Atria's record.
    const seen = item.userId === userId ? item : undefined;
    const adAnchors = seen?.anchors ?? (row.value.ad === undefined ? [] : [row.value.ad.objectGuid]);
    // Connect's sourceAnchor: ms-DS-ConsistencyGuid when set (it differs from objectGUID), else objectGUID.
    const anchor =
      cloudUser.onPremisesImmutableId !== null && adAnchors.includes(cloudUser.onPremisesImmutableId)
        ? cloudUser.onPremisesImmutableId
        : (adAnchors[1] ?? adAnchors[0]);
    const localValues =
      seen?.local?.inAd === true
        ? { userPrincipalName: seen.local.userPrincipalName, displayName: seen.local.displayName }
        : { userPrincipalName: row.value.userPrincipalName, displayName: row.value.displayName };
    const cloud = directory(job.tenantId);
    // Compared against the user actually linked (a resolution may name another than the candidate).
    const differences = diffAttributes(
      { userPrincipalName: cloudUser.userPrincipalName, displayName: cloudUser.displayName },
      localValues,
      anchor !== undefined,
    );
    // Atria's record follows AD's values for an AD user (they may have moved on since Atria wrote them).
    const fromCloud: Partial<UserRecord> = anchor === undefined ? {} : { ...localValues };
    const patch: Record<string, string> = {};
    for (const difference of differences) {
      const attribute = difference.attribute;
      if (attribute !== 'displayName' && attribute !== 'userPrincipalName') continue;
      if (difference.winner === 'ad' && difference.local !== null) patch[attribute] = difference.local;
      if (difference.winner === 'cloud' && difference.cloud !== null) fromCloud[attribute] = difference.cloud;
    }
    // AD wins for an AD-anchored user: the cloud gets the anchor (later matches are hard) and AD's values.
    if (anchor !== undefined && cloudUser.onPremisesImmutableId !== anchor)
      patch['onPremisesImmutableId'] = anchor;
    if (Object.keys(patch).length > 0) await cloud.updateUser(cloudUser.id, patch);
    const licences = mergeLicences(row.value.licences, cloudUser.licences);
    await users.replace(
      partition,
      userId,
      {
        ...row.value,
        ...fromCloud,
        entra: { objectId: cloudUser.id, ...(anchor === undefined ? {} : { onPremisesImmutableId: anchor }) },
        licences,
        updatedAt: now(),
      },
      row.etag,
    );
    return 'linked';
  }

  /** The Atria record of a user only AD held at onboarding (a repeat finds the first one). */
  async function createFromAd(
    job: OnboardingJob,
    userId: string,
  ): Promise<Versioned<UserRecord> | undefined> {
    if (!isAdUserId(userId)) return undefined;
    const found = await adObjects.get(itemsPartition(job), userId);
    if (found === undefined) return undefined;
    const ad = found.value;
    const partition = userPartition(job.providerId, job.customerId);
    const at = now();
    try {
      return await users.create(partition, userId, {
        userId,
        providerId: job.providerId,
        customerId: job.customerId,
        userPrincipalName: ad.userPrincipalName,
        displayName: ad.displayName,
        state: ad.enabled ? 'active' : 'disabled',
        ad: { objectGuid: ad.objectGuid, dn: ad.dn, sAMAccountName: ad.sAMAccountName },
        licences: [],
        lastOperationId: `onboarding:${job.jobId}`,
        createdAt: at,
        updatedAt: at,
      });
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
      return users.get(partition, userId);
    }
  }

  function mergeLicences(existing: UserRecord['licences'], skuIds: string[]): UserRecord['licences'] {
    const at = now();
    const kept = existing.filter((l) => skuIds.includes(l.skuId));
    for (const skuId of skuIds)
      if (!kept.some((l) => l.skuId === skuId)) kept.push({ skuId, assignedAt: at });
    return kept;
  }

  /** A cloud user Atria did not hold becomes an Atria user (a repeat finds it and changes nothing). */
  async function createRecord(job: OnboardingJob, item: OnboardingItem): Promise<'created'> {
    const cloudUser = item.cloud;
    if (cloudUser === undefined) throw new AppError('Validation', `item ${item.itemId} has no cloud user`);
    const partition = userPartition(job.providerId, job.customerId);
    const userId = cloudUserId(cloudUser.id);
    const at = now();
    try {
      await users.create(partition, userId, {
        userId,
        providerId: job.providerId,
        customerId: job.customerId,
        userPrincipalName: cloudUser.userPrincipalName,
        displayName: cloudUser.displayName,
        state: cloudUser.accountEnabled ? 'active' : 'disabled',
        entra: {
          objectId: cloudUser.id,
          ...(cloudUser.onPremisesImmutableId === null
            ? {}
            : { onPremisesImmutableId: cloudUser.onPremisesImmutableId }),
        },
        licences: cloudUser.licences.map((skuId) => ({ skuId, assignedAt: at })),
        lastOperationId: `onboarding:${job.jobId}`,
        createdAt: at,
        updatedAt: at,
      });
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
    }
    return 'created';
  }

  /** Applies one item's decision; `undefined` when it needs a person first (an unresolved case). */
  /** One item's decision, applied; `undefined` when it needs a person first (an unresolved case). */
  async function decide(
    job: OnboardingJob,
    item: OnboardingItem,
  ): Promise<'linked' | 'created' | 'ignored' | undefined> {
    if (item.appliedAt !== undefined) return undefined;
    if (item.kind === 'matched' && item.userId !== undefined) return link(job, item, item.userId);
    if (item.kind === 'onlyInCloud') return createRecord(job, item);
    if (item.kind === 'case' && item.resolution !== undefined) {
      if (item.resolution.action === 'link') return link(job, item, item.resolution.userId);
      if (item.resolution.action === 'createNew') return createRecord(job, item);
      return 'ignored';
    }
    return undefined;
  }

  /** A case row: applied, then marked (every step is idempotent, so a crash in between repeats safely). */
  async function applyCase(
    job: OnboardingJob,
    row: Versioned<OnboardingItem>,
  ): Promise<'linked' | 'created' | 'ignored' | undefined> {
    const outcome = await decide(job, row.value);
    if (outcome !== undefined)
      await items.replace(row.partitionKey, row.rowKey, { ...row.value, appliedAt: now() }, row.etag);
    return outcome;
  }

  /** A chunk row: its items (all, or the named ones) applied, then the row marked once. */
  async function applyChunk(
    job: OnboardingJob,
    row: Versioned<z.infer<typeof chunkSchema>>,
    only?: Set<string>,
  ): Promise<('linked' | 'created' | 'ignored')[]> {
    const outcomes: ('linked' | 'created' | 'ignored')[] = [];
    const at = now();
    const next: OnboardingItem[] = [];
    for (const item of row.value.items) {
      const outcome = only === undefined || only.has(item.itemId) ? await decide(job, item) : undefined;
      if (outcome !== undefined) outcomes.push(outcome);
      next.push(outcome === undefined ? item : { ...item, appliedAt: at });
    }
    if (outcomes.length > 0) await chunks.replace(row.partitionKey, row.rowKey, { items: next }, row.etag);
    return outcomes;
  }

  async function updateJobProgress(
    job: Versioned<OnboardingJob>,
    change: (progress: Progress) => void,
    patch: Partial<OnboardingJob> = {},
  ): Promise<Versioned<OnboardingJob>> {
    for (let current = job; ;) {
      const progress = { ...current.value.progress };
      change(progress);
      try {
        return await saveJob(current, { ...patch, progress });
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
        const fresh = await jobs.get(current.partitionKey, current.rowKey);
        if (fresh === undefined) throw error;
        current = fresh;
      }
    }
  }

  /** The sync state starts with the first approval: from then on the drift timer follows the delta link. */
  async function startSync(job: OnboardingJob): Promise<void> {
    const key = lockKey(job.providerId, job.customerId);
    const existing = await syncStates.get(SYNC, key);
    if (existing !== undefined && existing.value.tenantId === job.tenantId) return;
    await syncStates.upsert(SYNC, key, {
      providerId: job.providerId,
      customerId: job.customerId,
      tenantId: job.tenantId,
      ...(job.deltaLink === undefined ? {} : { deltaLink: job.deltaLink }),
      ...(job.groupsDeltaLink === undefined ? {} : { groupsDeltaLink: job.groupsDeltaLink }),
      ...(job.ad === undefined ? {} : { ad: { siteId: job.ad.siteId, watermark: job.ad.watermark } }),
      confirmed: false,
      failures: [],
    });
  }

  /** Approves the dry run: all items, or the named ones. Unresolved cases wait for their resolution. */
  async function approve(caller: Caller, customerId: string, only?: string[]): Promise<OnboardingJob> {
    let job = await requireJob(caller, customerId);
    if (job.value.state !== 'awaitingApproval')
      throw new AppError('Conflict', `the onboarding is ${job.value.state}, not awaiting approval`);
    await tenancy.assertWorkAllowed(
      caller.providerId,
      (await loadCustomer(deps.store, caller, customerId)).value,
    );
    const partition = itemsPartition(job.value);
    const counts = { linked: 0, created: 0 };
    const count = (outcome: 'linked' | 'created' | 'ignored' | undefined) => {
      if (outcome === 'linked') counts.linked++;
      if (outcome === 'created') counts.created++;
    };
    const wanted = only === undefined ? undefined : new Set(only);
    const found = new Set<string>();
    for await (const row of chunks.list(partition)) {
      if (wanted !== undefined)
        for (const item of row.value.items) if (wanted.has(item.itemId)) found.add(item.itemId);
      for (const outcome of await applyChunk(job.value, row, wanted)) count(outcome);
    }
    for await (const row of items.list(partition))
      if (wanted === undefined || wanted.has(row.rowKey)) {
        found.add(row.rowKey);
        count(await applyCase(job.value, row));
      }
    const missing = only?.filter((id) => !found.has(id)) ?? [];
    if (missing.length > 0)
      throw new AppError('NotFound', `item(s) not found: ${missing.slice(0, 10).join(', ')}`);
    job = await updateJobProgress(
      job,
      (p) => {
        p.linked += counts.linked;
        p.created += counts.created;
      },
      { approvedAt: job.value.approvedAt ?? now() },
    );
    await startSync(job.value);
    if (deps.importLicenceSources !== undefined && job.value.licensingImport?.state !== 'succeeded') {
      const importId = `onboarding-${job.value.jobId}`;
      let licensingImport: NonNullable<OnboardingJob['licensingImport']>;
      try {
        const result = await deps.importLicenceSources(caller, customerId, importId);
        licensingImport = { importId: result.importId, state: result.state };
      } catch (thrown) {
        // The links stand without it; approving again (or POST …/licensing/imports) retries it.
        licensingImport = { importId, state: 'failed', error: toAppError(thrown).message.slice(0, 300) };
      }
      job = await updateJobProgress(job, () => undefined, { licensingImport });
    }
    return (await finishIfDone(job)).value;
  }

  async function finishIfDone(job: Versioned<OnboardingJob>): Promise<Versioned<OnboardingJob>> {
    let pending = 0;
    const partition = itemsPartition(job.value);
    for await (const row of chunks.list(partition))
      for (const item of row.value.items)
        if (item.kind !== 'onlyLocal' && item.appliedAt === undefined) pending++;
    for await (const row of items.list(partition)) if (row.value.appliedAt === undefined) pending++;
    const done = pending === 0;
    const saved = await updateJobProgress(
      job,
      (p) => (p.pending = pending),
      done ? { state: 'completed' } : {},
    );
    if (done) {
      const key = lockKey(job.value.providerId, job.value.customerId);
      const lock = await locks.get(LOCKS, key);
      if (lock?.value.jobId === job.value.jobId)
        await locks.replace(LOCKS, key, { ...lock.value, active: false }, lock.etag);
    }
    return saved;
  }

  async function resolveCase(
    caller: Caller,
    customerId: string,
    caseId: string,
    resolution: CaseResolution,
  ): Promise<OnboardingItem> {
    const job = await requireJob(caller, customerId);
    const partition = itemsPartition(job.value);
    const row = await items.get(partition, caseId);
    if (row?.value.kind !== 'case') throw new AppError('NotFound', `case ${caseId} not found`);
    if (row.value.appliedAt !== undefined) {
      if (JSON.stringify(row.value.resolution) === JSON.stringify(resolution)) return row.value;
      throw new AppError(
        'Conflict',
        `case ${caseId} was already resolved (${row.value.resolution?.action ?? 'unknown'})`,
      );
    }
    if (resolution.action === 'link') {
      const target = await users.get(userPartition(caller.providerId, customerId), resolution.userId);
      const inAdOnly =
        target === undefined && (await adObjects.get(partition, resolution.userId)) !== undefined;
      if (!inAdOnly && (target === undefined || target.value.state === 'deleted'))
        throw new AppError('Validation', `user ${resolution.userId} not found`, {
          details: { errors: [{ path: 'body.userId', message: 'no such user' }] },
        });
    }
    let saved = await items.replace(partition, caseId, { ...row.value, resolution }, row.etag);
    // Before approval a resolution waits for it; after, it is applied at once.
    if (job.value.approvedAt !== undefined && job.value.state === 'awaitingApproval') {
      const outcome = await applyCase(job.value, saved);
      const fresh = await updateJobProgress(job, (p) => {
        if (outcome === 'linked') p.linked++;
        if (outcome === 'created') p.created++;
      });
      await finishIfDone(fresh);
      saved = (await items.get(partition, caseId)) ?? saved;
    }
    return saved.value;
  }

  /** The diff: decided items (matched, only in cloud, only local) page by page; `kind=case` lists the cases. */
  async function listItems(
    caller: Caller,
    customerId: string,
    request: PageRequest & { kind?: OnboardingItem['kind'] },
  ): Promise<PageOf<OnboardingItem>> {
    const job = await requireJob(caller, customerId);
    const partition = itemsPartition(job.value);
    if (request.kind === 'case') return pageOf(items, partition, request);
    // A chunk holds one Graph page (≤ 100 users here): ask for about `limit` items' worth of chunks.
    const chunkPage = await pageOf(chunks, partition, {
      ...request,
      limit: Math.max(1, Math.ceil((request.limit ?? 100) / 100)),
    });
    return {
      value: chunkPage.value.flatMap((chunk) =>
        chunk.items.filter((i) => request.kind === undefined || i.kind === request.kind),
      ),
      ...(chunkPage.cursor === undefined ? {} : { cursor: chunkPage.cursor }),
    };
  }

  /** The tenant's groups as onboarding read them, with member Entra ids (paged). */
  async function listGroups(
    caller: Caller,
    customerId: string,
    request: PageRequest,
  ): Promise<PageOf<OnboardingGroup>> {
    const job = await requireJob(caller, customerId);
    return pageOf(groups, itemsPartition(job.value), request);
  }

  // ─── Staying in sync ────────────────────────────────────────────────────────────────────────────────

  function backoff(attempts: number): number {
    return Math.min(60_000 * 2 ** (attempts - 1), 6 * 3600_000);
  }

  /**
   * One drift pass for a customer: the delta since the stored link (a full round when it expired),
   * reconciled by source of truth. AD-anchored users keep AD's values (the cloud is put back), cloud-only
   * users take Entra's. More deletions than the guard allows stop the pass before anything changes.
   */
  async function syncPass(
    providerId: string,
    customerId: string,
    options: { full?: boolean } = {},
  ): Promise<SyncPassResult> {
    const key = lockKey(providerId, customerId);
    const state = await syncStates.get(SYNC, key);
    if (state === undefined)
      throw new AppError('NotFound', `customer ${customerId} is not being synchronised`);
    const cloud = directory(state.value.tenantId);

    // Read the pass first (its changes are few next to the tenant), so the guard sees every deletion.
    // A full pass (the scheduled reconciliation) reads everything and repairs what deltas missed.
    let full = options.full === true || state.value.deltaLink === undefined;
    const upserts = new Map<string, CloudUserSnapshot>();
    const removals = new Map<string, boolean>();
    let deltaLink: string | undefined;
    const readRound = async (first: string | undefined) => {
      let cursor = first;
      for (;;) {
        const page =
          full && cursor === undefined
            ? await cloud.listUserImportChanges()
            : await cloud.listUserChanges(cursor);
        for (const change of page.changes) {
          if (change.kind === 'upserted') {
            upserts.set(change.user.id, change.user);
            removals.delete(change.user.id);
          } else {
            removals.set(change.id, change.permanently);
            upserts.delete(change.id);
          }
        }
        if (page.deltaLink !== undefined) {
          deltaLink = page.deltaLink;
          return;
        }
        cursor = page.nextCursor;
      }
    };
    try {
      await readRound(full ? undefined : state.value.deltaLink);
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'SyncStateExpired')) throw error;
      // Expired token (syncStateNotFound / 410): start over with the current state (delta-query-overview.md).
      full = true;
      upserts.clear();
      removals.clear();
      await readRound(undefined);
    }

    // The AD side through the agent: changes since the stored USN watermark (all users on a full pass).
    const adState = state.value.ad;
    const adRead =
      adState === undefined || deps.onPremDirectory === undefined
        ? undefined
        : await readAdSide(adState.siteId, full ? undefined : adState.watermark);

    const partition = userPartition(providerId, customerId);
    const latest = await latestJob(providerId, customerId);
    const onboardingItems = latest === undefined ? undefined : itemsPartition(latest.value);
    const byEntraId = new Map<string, Versioned<UserRecord>>();
    const byAdGuid = new Map<string, Versioned<UserRecord>>();
    let live = 0;
    for await (const row of users.list(partition)) {
      if (row.value.state !== 'deleted') live++;
      if (row.value.entra !== undefined) byEntraId.set(row.value.entra.objectId, row);
      if (row.value.ad !== undefined && row.value.state !== 'deleted')
        byAdGuid.set(row.value.ad.objectGuid, row);
    }
    // A full round lists who exists: a linked user it does not name was deleted meanwhile.
    if (full)
      for (const [id, row] of byEntraId)
        if (!upserts.has(id) && row.value.state !== 'deleted') removals.set(id, false);
    const deletions = [...removals.keys()].filter((id) => {
      const row = byEntraId.get(id);
      return row !== undefined && row.value.state !== 'deleted';
    });
    // AD deletions of Atria's users: tombstones the agent could read, or (full pass) absent from AD.
    const adDeletions = new Set<string>();
    if (adRead !== undefined) {
      for (const guid of adRead.deleted) if (byAdGuid.has(guid)) adDeletions.add(guid);
      if (full) {
        const present = new Set(adRead.users.map((u) => u.objectGuid));
        for (const guid of byAdGuid.keys()) if (!present.has(guid)) adDeletions.add(guid);
      }
    }
    const deletionCount = new Set([
      ...deletions.map((id) => byEntraId.get(id)?.value.userId),
      ...[...adDeletions].map((guid) => byAdGuid.get(guid)?.value.userId),
    ]).size;

    if (deleteGuardTrips(deletionCount, live, deps.guard) && !state.value.confirmed) {
      await syncStates.replace(
        SYNC,
        key,
        { ...state.value, held: { deletions: deletionCount, users: live, since: now() } },
        state.etag,
      );
      return {
        held: true,
        full,
        adChanges: 0,
        groupChanges: 0,
        upserted: 0,
        removed: 0,
        created: 0,
        reverted: 0,
        failed: 0,
        deletions: deletionCount,
      };
    }

    const result: SyncPassResult = {
      held: false,
      full,
      adChanges: 0,
      groupChanges: 0,
      upserted: 0,
      removed: 0,
      created: 0,
      reverted: 0,
      failed: 0,
    };
    const failures = new Map(state.value.failures.map((f) => [f.id, f]));
    const nowMs = deps.clock.now().getTime();
    // Failed objects whose backoff is over are read again and reconciled like a change (AD ones come
    // back through the feed: its watermark does not move past a failed change).
    for (const failure of failures.values())
      if (
        !failure.id.startsWith('ad:') &&
        Date.parse(failure.nextAttemptAt) <= nowMs &&
        !upserts.has(failure.id) &&
        !removals.has(failure.id)
      ) {
        try {
          upserts.set(failure.id, await cloud.getUser(failure.id));
        } catch (error) {
          if (toAppError(error).code === 'NotFound') removals.set(failure.id, true);
        }
      }

    const attempt = async (id: string, work: () => Promise<void>) => {
      try {
        await work();
        failures.delete(id);
      } catch (thrown) {
        const previous = failures.get(id);
        const attempts = (previous?.attempts ?? 0) + 1;
        failures.set(id, {
          id,
          attempts,
          nextAttemptAt: new Date(nowMs + backoff(attempts)).toISOString(),
          error: toAppError(thrown).message.slice(0, 300),
        });
        result.failed++;
      }
    };

    // AD first: AD-authoritative attributes of hybrid users win, in Atria and in the cloud.
    let adFailed = false;
    for (const user of adRead?.users ?? []) {
      const row = byAdGuid.get(user.objectGuid);
      if (row === undefined) continue;
      const before = result.failed;
      await attempt(`ad:${user.objectGuid}`, async () => {
        const record = row.value;
        const next: UserRecord = { ...record };
        if (user.userPrincipalName !== undefined) next.userPrincipalName = user.userPrincipalName;
        if (user.displayName !== undefined) next.displayName = user.displayName;
        if (record.state === 'active' || record.state === 'disabled')
          next.state = user.enabled ? 'active' : 'disabled';
        if (JSON.stringify(next) === JSON.stringify(record)) return;
        const entraId = record.entra?.objectId;
        if (entraId !== undefined) {
          const patch: CloudUserPatch = {};
          if (next.displayName !== record.displayName) patch.displayName = next.displayName;
          if (next.userPrincipalName !== record.userPrincipalName)
            patch.userPrincipalName = next.userPrincipalName;
          if (Object.keys(patch).length > 0) await cloud.updateUser(entraId, patch);
          if (next.state !== record.state)
            await (next.state === 'active' ? cloud.enableUser(entraId) : cloud.disableUser(entraId));
        }
        const saved = await users.replace(partition, record.userId, { ...next, updatedAt: now() }, row.etag);
        byAdGuid.set(user.objectGuid, saved);
        if (entraId !== undefined) byEntraId.set(entraId, saved);
        result.adChanges++;
      });
      if (result.failed > before) adFailed = true;
    }
    for (const guid of adDeletions) {
      const before = result.failed;
      await attempt(`ad:${guid}`, async () => {
        const row = byAdGuid.get(guid);
        if (row === undefined) return;
        // Recorded, not propagated: deleting the Entra user is left to a person (or to Connect).
        const saved = await users.replace(
          partition,
          row.value.userId,
          { ...row.value, state: 'deleted', updatedAt: now() },
          row.etag,
        );
        const entraId = row.value.entra?.objectId;
        if (entraId !== undefined) byEntraId.set(entraId, saved);
        result.adChanges++;
        result.removed++;
      });
      if (result.failed > before) adFailed = true;
    }

    for (const [id, snapshot] of upserts) {
      await attempt(id, async () => {
        const row = byEntraId.get(id);
        if (row === undefined) {
          if (snapshot.userPrincipalName === undefined || snapshot.displayName === undefined) return;
          // A user a person chose to ignore at onboarding stays out of Atria.
          if (
            onboardingItems !== undefined &&
            (await items.get(onboardingItems, id))?.value.resolution?.action === 'ignore'
          )
            return;
          const at = now();
          const userId = cloudUserId(id);
          try {
            await users.create(partition, userId, {
              userId,
              providerId,
              customerId,
              userPrincipalName: snapshot.userPrincipalName,
              displayName: snapshot.displayName,
              state: snapshot.accountEnabled === false ? 'disabled' : 'active',
              entra: { objectId: id },
              licences: (snapshot.assignedLicences ?? []).map((l) => ({ skuId: l.skuId, assignedAt: at })),
              lastOperationId: 'sync',
              createdAt: at,
              updatedAt: at,
            });
            result.created++;
          } catch (error) {
            if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
          }
          return;
        }
        const record = row.value;
        const next: UserRecord = { ...record };
        if (record.state === 'deleted')
          next.state = snapshot.accountEnabled === false ? 'disabled' : 'active'; // restored
        if (record.ad !== undefined) {
          // AD is authoritative: a cloud-side change is drift, put back.
          const patch: Record<string, string> = {};
          if (snapshot.displayName !== undefined && snapshot.displayName !== record.displayName)
            patch['displayName'] = record.displayName;
          if (
            snapshot.userPrincipalName !== undefined &&
            snapshot.userPrincipalName.toLowerCase() !== record.userPrincipalName.toLowerCase()
          )
            patch['userPrincipalName'] = record.userPrincipalName;
          if (
            snapshot.onPremisesImmutableId !== undefined &&
            snapshot.onPremisesImmutableId !== record.ad.objectGuid
          )
            patch['onPremisesImmutableId'] = record.ad.objectGuid;
          if (Object.keys(patch).length > 0) {
            await cloud.updateUser(id, patch);
            result.reverted++;
          }
        } else {
          if (snapshot.displayName !== undefined) next.displayName = snapshot.displayName;
          if (snapshot.userPrincipalName !== undefined) next.userPrincipalName = snapshot.userPrincipalName;
          if (snapshot.accountEnabled !== undefined && record.state !== 'deleted')
            next.state = snapshot.accountEnabled
              ? record.state === 'disabled'
                ? 'active'
                : record.state
              : 'disabled';
        }
        if (snapshot.assignedLicences !== undefined)
          next.licences = mergeLicences(
            record.licences,
            snapshot.assignedLicences.map((l) => l.skuId),
          );
        if (JSON.stringify(next) !== JSON.stringify(record)) {
          await users.replace(partition, record.userId, { ...next, updatedAt: now() }, row.etag);
          result.upserted++;
        }
      });
    }
    for (const id of deletions) {
      await attempt(id, async () => {
        const row = byEntraId.get(id);
        if (row === undefined) return;
        await users.replace(
          partition,
          row.value.userId,
          { ...row.value, state: 'deleted', updatedAt: now() },
          row.etag,
        );
        result.removed++;
      });
    }

    // Memberships: groups/delta from its stored link (a fresh round on a full pass or an expired token).
    let groupsDeltaLink = state.value.groupsDeltaLink;
    if (onboardingItems !== undefined && (groupsDeltaLink !== undefined || full)) {
      let round;
      try {
        round = await readGroupChanges(cloud, onboardingItems, full ? undefined : groupsDeltaLink, full);
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'SyncStateExpired')) throw error;
        round = await readGroupChanges(cloud, onboardingItems, undefined, true);
      }
      groupsDeltaLink = round.deltaLink;
      result.groupChanges = round.changes;
    }

    const { held: _held, ...rest } = state.value;
    void _held;
    await syncStates.replace(
      SYNC,
      key,
      {
        ...rest,
        ...(deltaLink === undefined ? {} : { deltaLink }),
        ...(groupsDeltaLink === undefined ? {} : { groupsDeltaLink }),
        ...(adRead === undefined || adState === undefined || adFailed
          ? {}
          : { ad: { siteId: adState.siteId, watermark: adRead.watermark } }),
        confirmed: false,
        failures: [...failures.values()].slice(0, 1000),
        lastPass: {
          at: now(),
          full,
          upserted: result.upserted,
          removed: result.removed,
          created: result.created,
          reverted: result.reverted,
          adChanges: result.adChanges,
          groupChanges: result.groupChanges,
        },
      },
      state.etag,
    );
    return result;
  }

  async function syncNow(caller: Caller, customerId: string): Promise<SyncPassResult> {
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    await tenancy.assertWorkAllowed(caller.providerId, customer);
    return syncPass(caller.providerId, customerId);
  }

  async function getSync(caller: Caller, customerId: string): Promise<SyncState> {
    await loadCustomer(deps.store, caller, customerId);
    const state = await syncStates.get(SYNC, lockKey(caller.providerId, customerId));
    if (state === undefined)
      throw new AppError('NotFound', `customer ${customerId} is not being synchronised`);
    return state.value;
  }

  /** A person confirms the held deletions; the next pass applies them. */
  async function confirmDeletions(caller: Caller, customerId: string): Promise<SyncState> {
    await loadCustomer(deps.store, caller, customerId);
    const key = lockKey(caller.providerId, customerId);
    const state = await syncStates.get(SYNC, key);
    if (state?.value.held === undefined)
      throw new AppError('Conflict', `no sync pass of customer ${customerId} is held`);
    return (await syncStates.replace(SYNC, key, { ...state.value, confirmed: true }, state.etag)).value;
  }

  /** The drift timer: resume stalled onboarding reads, then one pass per synchronised customer. */
  async function driftAll(): Promise<{ passes: number; held: number; failed: number; resumed: number }> {
    const totals = { passes: 0, held: 0, failed: 0, resumed: 0 };
    for await (const lock of locks.list(LOCKS)) {
      if (!lock.value.active) continue;
      const [providerId, customerId] = lock.rowKey.split('/');
      if (providerId === undefined || customerId === undefined) continue;
      const job = await jobs.get(userPartition(providerId, customerId), lock.value.jobId);
      if (
        job?.value.state === 'reading' &&
        (job.value.leaseUntil === undefined || job.value.leaseUntil <= now())
      ) {
        await kick(job.value);
        totals.resumed++;
      }
    }
    for await (const row of syncStates.list(SYNC)) {
      try {
        const result = await syncPass(row.value.providerId, row.value.customerId);
        totals.passes++;
        if (result.held) totals.held++;
      } catch (error) {
        totals.failed++;
        deps.onError?.(error);
      }
    }
    return totals;
  }

  /**
   * The scheduled full reconciliation, behind delta sync: every synchronised customer gets a full pass
   * (the whole tenant and, through the agent, the whole AD side), which repairs what deltas missed — a
   * deletion the agent's account could not see, a change lost with an expired token. The delete guard
   * and the per-object retry with backoff apply as in any pass.
   */
  async function reconcileAll(): Promise<{ passes: number; held: number; failed: number }> {
    const totals = { passes: 0, held: 0, failed: 0 };
    for await (const row of syncStates.list(SYNC)) {
      try {
        const result = await syncPass(row.value.providerId, row.value.customerId, { full: true });
        totals.passes++;
        if (result.held) totals.held++;
      } catch (error) {
        totals.failed++;
        deps.onError?.(error);
      }
    }
    return totals;
  }

  return {
    start,
    get: async (caller: Caller, customerId: string) => (await requireJob(caller, customerId)).value,
    listItems,
    listGroups,
    listCases: (caller: Caller, customerId: string, request: PageRequest) =>
      listItems(caller, customerId, { ...request, kind: 'case' }),
    approve,
    resolveCase,
    runQueued,
    syncNow,
    syncPass,
    reconcileAll,
    getSync,
    confirmDeletions,
    driftAll,
    idle,
  };
}

export type Onboarding = ReturnType<typeof createOnboarding>;
