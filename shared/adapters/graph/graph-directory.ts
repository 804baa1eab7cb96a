import type { TokenCredential } from '@azure/identity';
import type { Client } from '@microsoft/microsoft-graph-client';
import { z } from 'zod';
import { AppError, toAppError } from '../../errors.js';
import { withRetry } from '../../retry.js';
import { systemClock, type Clock } from '../../ports/clock.js';
import type {
  BulkLicenceChange,
  BulkResult,
  CloudDirectory,
  CloudDirectoryFactory,
  CloudDomain,
  CloudGroup,
  CloudOrganization,
  CloudUser,
  CloudUserPatch,
  CloudUserSnapshot,
  CompanySubscription,
  DelegatedAdminAccessAssignment,
  DelegatedAdminCustomer,
  DelegatedAdminOperation,
  DelegatedAdminRelationship,
  DelegatedAdminRelationshipPatch,
  DomainFederation,
  DomainVerification,
  DomainVerificationRecord,
  ExtensionDataType,
  ExtensionPropertyDefinition,
  ExtensionValue,
  DomainFederationSettings,
  LicenceChange,
  LicensedGroup,
  MemberLicences,
  NewCloudGroup,
  NewCloudUser,
  NewDelegatedAdminRelationship,
  PartnerContract,
  SetPasswordOptions,
  SubscribedSku,
  GroupChange,
  GroupChangePage,
  UserChange,
  UserChangePage,
  ImportUserChange,
  ImportUserChangePage,
} from '../../ports/cloud-directory.js';
import type { GraphBudget } from './budget.js';
import { createGraphClient, type GraphRetrySettings } from './client.js';
import { appErrorFromFailure, failureFromBatchItem, mapGraphError } from './errors.js';
import {
  accessAssignmentCollectionSchema,
  accessAssignmentSchema,
  batchResponseSchema,
  companySubscriptionCollectionSchema,
  companySubscriptionSchema,
  contractCollectionSchema,
  delegatedAdminCustomerCollectionSchema,
  delegatedAdminRelationshipCollectionSchema,
  delegatedAdminRelationshipSchema,
  deltaPageSchema,
  groupDeltaPageSchema,
  domainCollectionSchema,
  domainDnsRecordCollectionSchema,
  domainSchema,
  extensionPropertyCollectionSchema,
  extensionPropertySchema,
  extensionValueSchema,
  federationCollectionSchema,
  federationSchema,
  graphUserSchema,
  groupCollectionSchema,
  groupSchema,
  licensedGroupsSchema,
  memberCollectionSchema,
  memberLicencesSchema,
  organizationCollectionSchema,
  relationshipOperationCollectionSchema,
  subscribedSkuCollectionSchema,
  userCollectionSchema,
  type GraphUser,
} from './schemas.js';

/**
 * groups/delta pages carry every member of every group in a first round: small pages keep each response
 * (and this process's heap) small; a hint the service may ignore (odata.maxpagesize, concepts/paging.md).
 */
const groupDeltaPageHint = 'odata.maxpagesize=20';
/** Properties we read for a user (everything beyond the default 11 needs $select). */
const userSelect = [
  'id',
  'userPrincipalName',
  'displayName',
  'mailNickname',
  'accountEnabled',
  'givenName',
  'surname',
  'jobTitle',
  'department',
  'mail',
  'usageLocation',
  'onPremisesImmutableId',
  'assignedLicenses',
].join(',');

/** A users/delta page with the onboarding properties (proxyAddresses, employeeId) as well. */
const importDeltaPageSchema = z
  .object({
    value: z.array(
      graphUserSchema.extend({
        proxyAddresses: z.array(z.string()).optional(),
        employeeId: z.string().nullable().optional(),
        '@removed': z.object({ reason: z.enum(['changed', 'deleted']) }).optional(),
      }),
    ),
    '@odata.nextLink': z.string().optional(),
    '@odata.deltaLink': z.string().optional(),
  })
  .refine((page) => (page['@odata.nextLink'] === undefined) !== (page['@odata.deltaLink'] === undefined), {
    message: 'a delta page carries exactly one of @odata.nextLink and @odata.deltaLink',
  });

/** JSON batching allows 20 requests per batch (concepts/json-batching.md). */
const batchLimit = 20;

export interface ReplicationLagSettings {
  /** How long after our own create a 404 is taken for replication lag. Default 30 s. */
  windowInMs?: number;
  /** Attempts (first included) before a lagging 404 becomes NotFound. Default 6. */
  maxAttempts?: number;
  baseDelayInMs?: number;
  maxDelayInMs?: number;
}

export interface GraphDirectoryOptions {
  credentialFor(tenantId: string): TokenCredential;
  graphBaseUrl?: string;
  customHosts?: string[];
  retry?: GraphRetrySettings;
  /** Retries of throttled items inside a $batch (the SDK retries only whole requests). Default 4 attempts. */
  batchMaxAttempts?: number;
  replicationLag?: ReplicationLagSettings;
  clock?: Clock;
  /** One budget for every tenant's client of this app (see budget.ts). */
  budget?: GraphBudget;
  /**
   * The app's directory extension that stamps users we create with the step's idempotency key
   * (`createUserOnce`); registered once on the app in its home tenant. Set by the factory.
   */
  idempotencyMarker?: () => Promise<string | undefined>;
  /** Where the app is registered: enables the idempotency marker (createUserOnce). */
  homeTenant?: { tenantId: string; appId: string };
}

function toCloudUser(user: GraphUser): CloudUser {
  return {
    id: user.id,
    userPrincipalName: user.userPrincipalName ?? '',
    displayName: user.displayName ?? '',
    mailNickname: user.mailNickname ?? null,
    accountEnabled: user.accountEnabled ?? null,
    givenName: user.givenName ?? null,
    surname: user.surname ?? null,
    jobTitle: user.jobTitle ?? null,
    department: user.department ?? null,
    mail: user.mail ?? null,
    usageLocation: user.usageLocation ?? null,
    onPremisesImmutableId: user.onPremisesImmutableId ?? null,
    assignedLicences: (user.assignedLicenses ?? []).map((l) => ({
      skuId: l.skuId.toLowerCase(),
      disabledPlanIds: l.disabledPlans,
    })),
  };
}

/** Delta reports only tracked properties; keep what came, leave the rest unknown. */
function toSnapshot(user: GraphUser): CloudUserSnapshot {
  const full = toCloudUser(user);
  const snapshot: CloudUserSnapshot = { id: user.id };
  const keys: [keyof GraphUser, keyof CloudUser][] = [
    ['userPrincipalName', 'userPrincipalName'],
    ['displayName', 'displayName'],
    ['mailNickname', 'mailNickname'],
    ['accountEnabled', 'accountEnabled'],
    ['givenName', 'givenName'],
    ['surname', 'surname'],
    ['jobTitle', 'jobTitle'],
    ['department', 'department'],
    ['mail', 'mail'],
    ['usageLocation', 'usageLocation'],
    ['onPremisesImmutableId', 'onPremisesImmutableId'],
    ['assignedLicenses', 'assignedLicences'],
  ];
  for (const [graphKey, key] of keys) {
    if (user[graphKey] !== undefined) Object.assign(snapshot, { [key]: full[key] });
  }
  return snapshot;
}

function newUserBody(user: NewCloudUser): Record<string, unknown> {
  const body: Record<string, unknown> = {
    accountEnabled: user.accountEnabled ?? true,
    displayName: user.displayName,
    mailNickname: user.mailNickname,
    userPrincipalName: user.userPrincipalName,
  };
  if (user.password !== undefined) {
    body['passwordProfile'] = {
      password: user.password,
      forceChangePasswordNextSignIn: user.forceChangePasswordNextSignIn ?? true,
    };
  }
  for (const key of [
    'onPremisesImmutableId',
    'usageLocation',
    'givenName',
    'surname',
    'jobTitle',
    'department',
  ] as const) {
    if (user[key] !== undefined) body[key] = user[key];
  }
  // Directory extension attributes travel as top-level properties (resources/extensionproperty.md).
  for (const [name, value] of Object.entries(user.extensionAttributes ?? {})) body[name] = value;
  return body;
}

/** What we sent plus the id Graph gave (POST /users answers only the 11 default properties). */
function createdUser(input: NewCloudUser, created: GraphUser): CloudUser {
  return {
    ...toCloudUser(created),
    userPrincipalName: created.userPrincipalName ?? input.userPrincipalName,
    displayName: created.displayName ?? input.displayName,
    mailNickname: input.mailNickname,
    accountEnabled: input.accountEnabled ?? true,
    usageLocation: input.usageLocation ?? null,
    onPremisesImmutableId: input.onPremisesImmutableId ?? null,
    assignedLicences: [],
  };
}

function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * The Graph SDK joins query options into the URL as given, so a `#`, `&` or `+` in a value would cut or
 * change the query; encode the option value ourselves (Graph decodes it once).
 */
function queryValue(value: string): string {
  return encodeURIComponent(value);
}

function userPath(idOrUpn: string): string {
  // user-get.md: a UPN starting with $ must be addressed as /users('$x@y').
  if (idOrUpn.startsWith('$')) return `/users(${encodeURIComponent(odataString(idOrUpn))})`;
  return `/users/${encodeURIComponent(idOrUpn)}`;
}

interface BatchOperation {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  body?: unknown;
  operation: string;
}

type BatchOutcome = { ok: true; status: number; body: unknown } | { ok: false; error: AppError };

class GraphDirectory implements CloudDirectory {
  /** Ids we created recently, with when (replication-lag retries apply only to them). */
  private readonly recent = new Map<string, number>();

  constructor(
    readonly tenantId: string,
    private readonly client: Client,
    private readonly options: GraphDirectoryOptions,
  ) {}

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  private async call<S extends z.ZodType>(
    operation: string,
    request: () => Promise<unknown>,
    schema: S,
  ): Promise<z.infer<S>> {
    let raw: unknown;
    try {
      raw = await request();
    } catch (error) {
      throw mapGraphError(error, operation);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new AppError(
        'Upstream',
        `${operation}: Graph answered an unexpected shape: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  }

  private async send(operation: string, request: () => Promise<unknown>): Promise<void> {
    try {
      await request();
    } catch (error) {
      throw mapGraphError(error, operation);
    }
  }

  /** Remembers a new object by id (and a user by UPN too, since callers address users either way). */
  private remember(...keys: string[]): void {
    const now = this.clock.now().getTime();
    const windowInMs = this.options.replicationLag?.windowInMs ?? 30_000;
    for (const [key, at] of this.recent) if (now - at > windowInMs) this.recent.delete(key);
    for (const key of keys) this.recent.set(key.toLowerCase(), now);
  }

  private isRecent(id: string): boolean {
    const windowInMs = this.options.replicationLag?.windowInMs ?? 30_000;
    const at = this.recent.get(id.toLowerCase());
    return at !== undefined && this.clock.now().getTime() - at <= windowInMs;
  }

  /**
   * Entra replicates new objects asynchronously, so a read or write right after our own create can
   * 404 for a moment. Only for ids we created recently, retry such a 404 briefly; then it is NotFound.
   */
  private async lagAware<T>(ids: string[], operation: () => Promise<T>): Promise<T> {
    const recentIds = ids.filter((id) => this.isRecent(id));
    if (recentIds.length === 0) return operation();
    const lag = this.options.replicationLag ?? {};
    const outcome = await withRetry(
      async () => {
        try {
          return { ok: true, value: await operation() } as const;
        } catch (thrown) {
          const error = toAppError(thrown);
          // Graph names the missing object; only a 404 about an object we just created is lag.
          const aboutRecent = recentIds.some((id) => error.message.toLowerCase().includes(id.toLowerCase()));
          if (error.code === 'NotFound' && aboutRecent) {
            throw new AppError('NotFound', error.message, { retryable: true, cause: error });
          }
          return { ok: false, error } as const;
        }
      },
      {
        maxAttempts: lag.maxAttempts ?? 6,
        baseDelayInMs: lag.baseDelayInMs ?? 250,
        maxDelayInMs: lag.maxDelayInMs ?? 2000,
      },
    ).catch((thrown: unknown) => {
      const error = toAppError(thrown);
      throw error.cause instanceof AppError ? error.cause : error;
    });
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /**
   * Runs operations as JSON batches of 20. Items answered 429/503 are sent again after the longest
   * Retry-After through the shared retry helper; the rest keep their first answer.
   */
  private async batch(operations: BatchOperation[]): Promise<BatchOutcome[]> {
    const outcomes: (BatchOutcome | undefined)[] = operations.map(() => undefined);
    for (let start = 0; start < operations.length; start += batchLimit) {
      let pending = operations.map((_, index) => index).slice(start, start + batchLimit);
      try {
        await withRetry(
          async () => {
            const requests = pending.map((index) => {
              const op = operations[index];
              if (op === undefined) throw new AppError('Internal', 'batch index out of range');
              return {
                id: String(index),
                method: op.method,
                url: op.url,
                ...(op.body === undefined
                  ? {}
                  : { body: op.body, headers: { 'Content-Type': 'application/json' } }),
              };
            });
            const response = await this.call(
              '$batch',
              () => this.client.api('/$batch').post({ requests }),
              batchResponseSchema,
            );
            const retry: number[] = [];
            let retryAfterInSeconds = 0;
            for (const item of response.responses) {
              const index = Number(item.id);
              const op = operations[index];
              if (op === undefined || !pending.includes(index)) continue;
              if (item.status >= 200 && item.status < 300) {
                outcomes[index] = { ok: true, status: item.status, body: item.body };
                continue;
              }
              const failure = failureFromBatchItem(item.status, item.headers, item.body);
              outcomes[index] = { ok: false, error: appErrorFromFailure(failure, op.operation) };
              if (item.status === 429 || item.status === 503) {
                retry.push(index);
                retryAfterInSeconds = Math.max(retryAfterInSeconds, failure.retryAfterInSeconds ?? 1);
              }
            }
            pending = retry;
            if (retry.length > 0)
              throw new AppError('Throttled', `${retry.length} batch item(s) throttled`, {
                retryAfterInSeconds,
              });
          },
          { maxAttempts: this.options.batchMaxAttempts ?? 4 },
        );
      } catch (error) {
        // Items still throttled keep their own 429/503 error; a failed batch call fails its items.
        const appError = toAppError(error);
        for (const index of pending)
          if (outcomes[index] === undefined) outcomes[index] = { ok: false, error: appError };
      }
    }
    return outcomes.map(
      (outcome) =>
        outcome ?? {
          ok: false,
          error: new AppError('Upstream', 'Graph $batch returned no answer for an item'),
        },
    );
  }

  async createUser(user: NewCloudUser): Promise<CloudUser> {
    const created = await this.call(
      'create user',
      () => this.client.api('/users').post(newUserBody(user)),
      graphUserSchema,
    );
    this.remember(created.id, user.userPrincipalName);
    return createdUser(user, created);
  }

  async createUsers(users: NewCloudUser[]): Promise<BulkResult<CloudUser>[]> {
    const outcomes = await this.batch(
      users.map((user) => ({
        method: 'POST',
        url: '/users',
        body: newUserBody(user),
        operation: 'create user',
      })),
    );
    return outcomes.map((outcome, index): BulkResult<CloudUser> => {
      if (!outcome.ok) return outcome;
      const parsed = graphUserSchema.safeParse(outcome.body);
      const input = users[index];
      if (!parsed.success || input === undefined)
        return { ok: false, error: new AppError('Upstream', 'create user: unexpected $batch item body') };
      this.remember(parsed.data.id, input.userPrincipalName);
      return { ok: true, value: createdUser(input, parsed.data) };
    });
  }

  async createUserOnce(
    user: NewCloudUser,
    idempotencyKey: string,
  ): Promise<{ user: CloudUser; adopted: boolean }> {
    const marker = await this.markerName();
    const stamped: NewCloudUser =
      marker === undefined
        ? user
        : { ...user, extensionAttributes: { ...user.extensionAttributes, [marker]: idempotencyKey } };
    try {
      return { user: await this.createUser(stamped), adopted: false };
    } catch (error) {
      if (toAppError(error).code !== 'AlreadyExists') throw error;
    }
    // The UPN is taken: ours only if it carries our key (a create whose answer was lost) or our anchor.
    const schema = graphUserSchema.catchall(z.unknown());
    let found: z.infer<typeof schema>;
    try {
      found = await this.call(
        'read user by UPN',
        () =>
          this.client
            .api(userPath(user.userPrincipalName))
            .select(marker === undefined ? userSelect : `${userSelect},${marker}`)
            .get(),
        schema,
      );
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
      throw new AppError(
        'Unavailable',
        `${user.userPrincipalName} is taken but cannot be read yet (replication); retry`,
        { retryable: true, retryAfterInSeconds: 2 },
      );
    }
    const existing = toCloudUser(found);
    const stamp = marker === undefined ? undefined : found[marker];
    const ours =
      (marker !== undefined && stamp === idempotencyKey) ||
      (user.onPremisesImmutableId !== undefined &&
        existing.onPremisesImmutableId === user.onPremisesImmutableId);
    if (!ours)
      throw new AppError(
        'AlreadyExists',
        `${user.userPrincipalName} already exists in Entra ID and is not ours`,
        {
          details: { attribute: 'userPrincipalName' },
        },
      );
    return { user: existing, adopted: true };
  }

  /** The directory extension that stamps users we create (undefined: none configured). */
  private markerName(): Promise<string | undefined> {
    return this.options.idempotencyMarker?.() ?? Promise.resolve(undefined);
  }

  async getUser(idOrUpn: string): Promise<CloudUser> {
    return this.lagAware([idOrUpn], async () =>
      toCloudUser(
        await this.call(
          'get user',
          () => this.client.api(userPath(idOrUpn)).select(userSelect).get(),
          graphUserSchema,
        ),
      ),
    );
  }

  private async findUser(property: string, value: string, operation: string): Promise<CloudUser | undefined> {
    const page = await this.call(
      operation,
      () =>
        this.client
          .api('/users')
          .filter(queryValue(`${property} eq ${odataString(value)}`))
          .select(userSelect)
          .top(1)
          .get(),
      userCollectionSchema,
    );
    const first = page.value[0];
    return first === undefined ? undefined : toCloudUser(first);
  }

  async findUserByUpn(userPrincipalName: string): Promise<CloudUser | undefined> {
    return this.findUser('userPrincipalName', userPrincipalName, 'find user by UPN');
  }

  async findUserByImmutableId(onPremisesImmutableId: string): Promise<CloudUser | undefined> {
    return this.findUser('onPremisesImmutableId', onPremisesImmutableId, 'find user by immutable id');
  }

  async updateUser(userId: string, patch: CloudUserPatch): Promise<void> {
    const { extensionAttributes, ...plain } = patch;
    const body: Record<string, unknown> = {
      ...Object.fromEntries(Object.entries(plain).filter(([, v]) => v !== undefined)),
      ...extensionAttributes,
    };
    if (Object.keys(body).length === 0) return;
    await this.lagAware([userId], () =>
      this.send('update user', () => this.client.api(userPath(userId)).patch(body)),
    );
  }

  async disableUser(userId: string): Promise<void> {
    await this.lagAware([userId], () =>
      this.send('disable user', () => this.client.api(userPath(userId)).patch({ accountEnabled: false })),
    );
  }

  async enableUser(userId: string): Promise<void> {
    await this.lagAware([userId], () =>
      this.send('enable user', () => this.client.api(userPath(userId)).patch({ accountEnabled: true })),
    );
  }

  async deleteUser(userId: string): Promise<void> {
    try {
      await this.lagAware([userId], () =>
        this.send('delete user', () => this.client.api(userPath(userId)).delete()),
      );
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
    }
    // Gone by our own hand: a later 404 for it is not replication lag.
    this.recent.delete(userId.toLowerCase());
  }

  async setPassword(userId: string, password: string, options: SetPasswordOptions = {}): Promise<void> {
    const body = {
      passwordProfile: {
        password,
        forceChangePasswordNextSignIn: options.forceChangePasswordNextSignIn ?? false,
      },
    };
    await this.lagAware([userId], () =>
      this.send('set password', () => this.client.api(userPath(userId)).patch(body)),
    );
  }

  async createGroup(group: NewCloudGroup): Promise<CloudGroup> {
    const body = {
      displayName: group.displayName,
      mailNickname: group.mailNickname,
      ...(group.description === undefined ? {} : { description: group.description }),
      securityEnabled: group.securityEnabled ?? true,
      mailEnabled: group.mailEnabled ?? false,
      groupTypes: group.groupTypes ?? [],
    };
    const created = await this.call('create group', () => this.client.api('/groups').post(body), groupSchema);
    this.remember(created.id);
    return { ...created, description: created.description ?? null };
  }

  async listGroupsPage(cursor?: string): Promise<{ groups: CloudGroup[]; nextCursor?: string }> {
    const page = await this.call(
      'list groups',
      () =>
        cursor === undefined
          ? this.client
              .api('/groups')
              .select('id,displayName,mailNickname,description,securityEnabled,mailEnabled,groupTypes')
              .top(999)
              .get()
          : this.client.api(cursor).get(),
      groupCollectionSchema.extend({ '@odata.nextLink': z.string().optional() }),
    );
    const next = page['@odata.nextLink'];
    return {
      groups: page.value.map((g) => ({ ...g, description: g.description ?? null })),
      ...(next === undefined ? {} : { nextCursor: next }),
    };
  }

  async listGroupMembers(groupId: string): Promise<string[]> {
    return this.lagAware([groupId], async () => {
      const ids: string[] = [];
      let next: string | undefined = `/groups/${encodeURIComponent(groupId)}/members?$select=id`;
      while (next !== undefined) {
        const url: string = next;
        const page = await this.call(
          'list group members',
          () => this.client.api(url).get(),
          memberCollectionSchema,
        );
        ids.push(...page.value.map((m) => m.id));
        next = page['@odata.nextLink'];
      }
      return ids;
    });
  }

  async listLicensedGroups(): Promise<LicensedGroup[]> {
    // `$filter=assignedLicenses/$count ne 0` needs advanced queries; filtering the pages here needs none.
    const out: LicensedGroup[] = [];
    let next: string | undefined = '/groups?$select=id,assignedLicenses&$top=999';
    while (next !== undefined) {
      const url: string = next;
      const page = await this.call(
        'list licensed groups',
        () => this.client.api(url).get(),
        licensedGroupsSchema,
      );
      for (const g of page.value)
        if (g.assignedLicenses.length > 0)
          out.push({ id: g.id, skuIds: g.assignedLicenses.map((l) => l.skuId.toLowerCase()) });
      next = page['@odata.nextLink'];
    }
    return out;
  }

  async listGroupMemberLicences(groupId: string): Promise<MemberLicences[]> {
    return this.lagAware([groupId], async () => {
      const out: MemberLicences[] = [];
      // Only users carry licenseAssignmentStates; other member types come back without it.
      let next: string | undefined =
        `/groups/${encodeURIComponent(groupId)}/members?$select=id,licenseAssignmentStates`;
      while (next !== undefined) {
        const url: string = next;
        const page = await this.call(
          'list group member licences',
          () => this.client.api(url).get(),
          memberLicencesSchema,
        );
        for (const m of page.value)
          if (m['@odata.type'] === undefined || m['@odata.type'] === '#microsoft.graph.user')
            out.push({
              id: m.id,
              states: (m.licenseAssignmentStates ?? []).map((l) => ({
                skuId: l.skuId.toLowerCase(),
                assignedByGroup: l.assignedByGroup ?? null,
                state: l.state,
                error: l.error ?? null,
              })),
            });
        next = page['@odata.nextLink'];
      }
      return out;
    });
  }

  async reprocessLicenceAssignment(userId: string): Promise<void> {
    await this.lagAware([userId], () =>
      this.send('reprocess licence assignment', () =>
        this.client.api(`${userPath(userId)}/reprocessLicenseAssignment`).post({}),
      ),
    );
  }

  async addGroupMember(groupId: string, userId: string): Promise<void> {
    try {
      await this.lagAware([groupId, userId], () =>
        this.send('add group member', () =>
          this.client
            .api(`/groups/${encodeURIComponent(groupId)}/members/$ref`)
            .post({ '@odata.id': `https://graph.microsoft.com/v1.0/directoryObjects/${userId}` }),
        ),
      );
    } catch (error) {
      // group-post-members.md: 400 when already a member; for us that is the desired state.
      if (toAppError(error).code !== 'AlreadyExists') throw error;
    }
  }

  async removeGroupMember(groupId: string, userId: string): Promise<void> {
    try {
      await this.lagAware([groupId, userId], () =>
        this.send('remove group member', () =>
          this.client
            .api(`/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}/$ref`)
            .delete(),
        ),
      );
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
    }
  }

  private licenceBody(change: LicenceChange): Record<string, unknown> {
    return {
      addLicenses: change.add.map((l) => ({ skuId: l.skuId, disabledPlans: l.disabledPlanIds })),
      removeLicenses: change.remove,
    };
  }

  async assignLicences(userId: string, change: LicenceChange): Promise<void> {
    // One request per change: Graph answers with the user's default properties (no assignedLicenses),
    // so nothing is read back; callers that need the licences read the user.
    const post = (body: Record<string, unknown>): Promise<void> =>
      this.lagAware([userId], () =>
        this.send('assign licences', () => this.client.api(`${userPath(userId)}/assignLicense`).post(body)),
      );
    try {
      await post(this.licenceBody(change));
    } catch (error) {
      const appError = toAppError(error);
      // Removing a licence the user no longer has is done already; drop it and send the rest once more.
      if (
        appError.code !== 'Validation' ||
        !/corresponding license/i.test(appError.message) ||
        change.remove.length === 0
      )
        throw error;
      const current = await this.getUser(userId);
      const held = new Set(current.assignedLicences.map((l) => l.skuId));
      await post(
        this.licenceBody({
          add: change.add,
          remove: change.remove.filter((skuId) => held.has(skuId.toLowerCase())),
        }),
      );
    }
  }

  async assignLicencesInBulk(changes: BulkLicenceChange[]): Promise<BulkResult<void>[]> {
    const outcomes = await this.batch(
      changes.map((change) => ({
        method: 'POST',
        url: `${userPath(change.userId)}/assignLicense`,
        body: this.licenceBody(change),
        operation: 'assign licences',
      })),
    );
    return outcomes.map((outcome): BulkResult<void> =>
      outcome.ok ? { ok: true, value: undefined } : outcome,
    );
  }

  async listSubscribedSkus(): Promise<SubscribedSku[]> {
    const page = await this.call(
      'list subscribed SKUs',
      () => this.client.api('/subscribedSkus').get(),
      subscribedSkuCollectionSchema,
    );
    return page.value.map((sku) => ({
      skuId: sku.skuId.toLowerCase(),
      skuPartNumber: sku.skuPartNumber,
      appliesTo: sku.appliesTo,
      capabilityStatus: sku.capabilityStatus,
      enabledUnits: sku.prepaidUnits.enabled,
      consumedUnits: sku.consumedUnits,
      servicePlans: sku.servicePlans,
      prepaidUnits: {
        enabled: sku.prepaidUnits.enabled,
        warning: sku.prepaidUnits.warning,
        suspended: sku.prepaidUnits.suspended,
        lockedOut: sku.prepaidUnits.lockedOut,
      },
      subscriptionIds: sku.subscriptionIds,
    }));
  }

  async listUserChanges(cursor?: string): Promise<UserChangePage> {
    const page = await this.call(
      'list user changes',
      () =>
        cursor === undefined
          ? this.client.api('/users/delta').select(userSelect).get()
          : this.client.api(cursor).get(),
      deltaPageSchema,
    );
    const changes: UserChange[] = page.value.map((item) => {
      const removed = item['@removed'];
      if (removed !== undefined)
        return { kind: 'removed', id: item.id, permanently: removed.reason === 'deleted' };
      return { kind: 'upserted', user: toSnapshot(item) };
    });
    const nextCursor = page['@odata.nextLink'];
    const deltaLink = page['@odata.deltaLink'];
    return {
      changes,
      ...(nextCursor === undefined ? {} : { nextCursor }),
      ...(deltaLink === undefined ? {} : { deltaLink }),
    };
  }

  async listUserImportChanges(cursor?: string): Promise<ImportUserChangePage> {
    const page = await this.call(
      'list user changes for import',
      () =>
        cursor === undefined
          ? this.client.api('/users/delta').select(`${userSelect},proxyAddresses,employeeId`).get()
          : this.client.api(cursor).get(),
      importDeltaPageSchema,
    );
    const changes: ImportUserChange[] = page.value.map((item) => {
      const removed = item['@removed'];
      if (removed !== undefined)
        return { kind: 'removed', id: item.id, permanently: removed.reason === 'deleted' };
      return {
        kind: 'upserted',
        user: {
          ...toCloudUser(item),
          proxyAddresses: item.proxyAddresses ?? [],
          employeeId: item.employeeId ?? null,
        },
      };
    });
    const nextCursor = page['@odata.nextLink'];
    const deltaLink = page['@odata.deltaLink'];
    return {
      changes,
      ...(nextCursor === undefined ? {} : { nextCursor }),
      ...(deltaLink === undefined ? {} : { deltaLink }),
    };
  }

  async listGroupChanges(cursor?: string): Promise<GroupChangePage> {
    const page = await this.call(
      'list group changes',
      () =>
        cursor === undefined
          ? this.client
              .api('/groups/delta')
              .header('Prefer', groupDeltaPageHint)
              .select('displayName,mailNickname,securityEnabled,mailEnabled,groupTypes,members')
              .get()
          : this.client.api(cursor).header('Prefer', groupDeltaPageHint).get(),
      groupDeltaPageSchema,
    );
    const changes: GroupChange[] = page.value.map((item): GroupChange => {
      if (item['@removed'] !== undefined) return { kind: 'removed', id: item.id };
      const members = item['members@delta'] ?? [];
      return {
        kind: 'upserted',
        group: {
          id: item.id,
          ...(item.displayName === undefined ? {} : { displayName: item.displayName }),
          ...(item.mailNickname === undefined || item.mailNickname === null
            ? {}
            : { mailNickname: item.mailNickname }),
          ...(item.securityEnabled === undefined ? {} : { securityEnabled: item.securityEnabled }),
          ...(item.mailEnabled === undefined ? {} : { mailEnabled: item.mailEnabled }),
          ...(item.groupTypes === undefined ? {} : { groupTypes: item.groupTypes }),
        },
        membersAdded: members.filter((m) => m['@removed'] === undefined).map((m) => m.id),
        membersRemoved: members.filter((m) => m['@removed'] !== undefined).map((m) => m.id),
      };
    });
    const nextCursor = page['@odata.nextLink'];
    const deltaLink = page['@odata.deltaLink'];
    return {
      changes,
      ...(nextCursor === undefined ? {} : { nextCursor }),
      ...(deltaLink === undefined ? {} : { deltaLink }),
    };
  }

  async listDirectoryRoleMemberIds(): Promise<string[]> {
    // Only activated roles appear in /directoryRoles (directoryrole-list.md); members page like any collection.
    const roles = await this.call(
      'list directory roles',
      () => this.client.api('/directoryRoles').select('id').get(),
      z.object({ value: z.array(z.object({ id: z.string() })) }),
    );
    const ids = new Set<string>();
    for (const role of roles.value) {
      let next: string | undefined = `/directoryRoles/${encodeURIComponent(role.id)}/members?$select=id`;
      while (next !== undefined) {
        const url: string = next;
        const page = await this.call(
          'list directory role members',
          () => this.client.api(url).get(),
          memberCollectionSchema,
        );
        for (const member of page.value) ids.add(member.id);
        next = page['@odata.nextLink'];
      }
    }
    return [...ids];
  }

  async getDomain(domainName: string): Promise<CloudDomain> {
    return this.call(
      'get domain',
      () => this.client.api(`/domains/${encodeURIComponent(domainName)}`).get(),
      domainSchema,
    );
  }

  async getDomainFederation(domainName: string): Promise<DomainFederation | undefined> {
    try {
      const page = await this.call(
        'get domain federation',
        () => this.client.api(`/domains/${encodeURIComponent(domainName)}/federationConfiguration`).get(),
        federationCollectionSchema,
      );
      const first = page.value[0];
      return first === undefined ? undefined : toFederation(first);
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
      // 404 means "not federated" only when the domain itself exists.
      await this.getDomain(domainName);
      return undefined;
    }
  }

  async putDomainFederation(
    domainName: string,
    federation: DomainFederationSettings,
  ): Promise<DomainFederation> {
    const existing = await this.getDomainFederation(domainName);
    const base = `/domains/${encodeURIComponent(domainName)}/federationConfiguration`;
    if (existing === undefined) {
      try {
        const created = await this.call(
          'create domain federation',
          () =>
            this.client
              .api(base)
              .post({ '@odata.type': '#microsoft.graph.internalDomainFederation', ...federation }),
          federationSchema,
        );
        return toFederation(created);
      } catch (error) {
        const code = toAppError(error).code;
        if (code !== 'AlreadyExists' && code !== 'Conflict') throw error;
        // Someone federated it meanwhile; fall through to an update.
      }
    }
    const current = existing ?? (await this.getDomainFederation(domainName));
    if (current === undefined)
      throw new AppError('Conflict', `domain ${domainName} federation changed concurrently`);
    const updated = await this.call(
      'update domain federation',
      () => this.client.api(`${base}/${encodeURIComponent(current.id)}`).patch(federation),
      federationSchema,
    );
    return toFederation(updated);
  }

  async deleteDomainFederation(domainName: string): Promise<void> {
    // domain-delete-federationconfiguration.md: DELETE /domains/{id}/federationConfiguration/{fid} → 204.
    const current = await this.getDomainFederation(domainName);
    if (current === undefined) return;
    try {
      await this.send('delete domain federation', () =>
        this.client
          .api(
            `/domains/${encodeURIComponent(domainName)}/federationConfiguration/${encodeURIComponent(current.id)}`,
          )
          .delete(),
      );
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
    }
  }

  /** Follows @odata.nextLink to the end of a collection. */
  private async listAll<T>(
    operation: string,
    firstUrl: string,
    schema: z.ZodType<{ value: T[]; '@odata.nextLink'?: string | undefined }>,
  ): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined = firstUrl;
    while (next !== undefined) {
      const url: string = next;
      const page = await this.call(operation, () => this.client.api(url).get(), schema);
      items.push(...page.value);
      next = page['@odata.nextLink'];
    }
    return items;
  }

  async listSubscriptions(): Promise<CompanySubscription[]> {
    const items = await this.listAll(
      'list subscriptions',
      '/directory/subscriptions',
      companySubscriptionCollectionSchema,
    );
    return items.map(toCompanySubscription);
  }

  async getSubscription(key: string | { commerceSubscriptionId: string }): Promise<CompanySubscription> {
    // companysubscription-get.md: by id, or by the alternate key commerceSubscriptionId.
    const path =
      typeof key === 'string'
        ? `/directory/subscriptions/${encodeURIComponent(key)}`
        : `/directory/subscriptions(commerceSubscriptionId=${encodeURIComponent(odataString(key.commerceSubscriptionId))})`;
    return toCompanySubscription(
      await this.call('get subscription', () => this.client.api(path).get(), companySubscriptionSchema),
    );
  }

  async listContracts(): Promise<PartnerContract[]> {
    const items = await this.listAll('list contracts', '/contracts', contractCollectionSchema);
    return items.map((c) => ({
      id: c.id,
      customerTenantId: c.customerId.toLowerCase(),
      contractType: c.contractType,
      defaultDomainName: c.defaultDomainName ?? null,
      displayName: c.displayName ?? '',
    }));
  }

  async listDomains(): Promise<CloudDomain[]> {
    return this.listAll('list domains', '/domains', domainCollectionSchema);
  }

  async addDomain(domainName: string): Promise<CloudDomain> {
    try {
      return await this.call(
        'add domain',
        () => this.client.api('/domains').post({ id: domainName.toLowerCase() }),
        domainSchema,
      );
    } catch (error) {
      // A retry after a lost answer finds its own domain: the desired state.
      if (toAppError(error).code !== 'AlreadyExists') throw error;
      return this.getDomain(domainName);
    }
  }

  async listDomainVerificationRecords(domainName: string): Promise<DomainVerificationRecord[]> {
    const page = await this.call(
      'list domain verification records',
      () => this.client.api(`${domainPath(domainName)}/verificationDnsRecords`).get(),
      domainDnsRecordCollectionSchema,
    );
    const records: DomainVerificationRecord[] = [];
    for (const r of page.value) {
      if (r.recordType !== 'Txt' && r.recordType !== 'Mx') continue;
      records.push({
        recordType: r.recordType,
        label: r.label,
        ttl: r.ttl,
        isOptional: r.isOptional,
        ...(r.text === undefined ? {} : { text: r.text }),
        ...(r.mailExchange === undefined ? {} : { mailExchange: r.mailExchange }),
        ...(r.preference === undefined ? {} : { preference: r.preference }),
      });
    }
    return records;
  }

  async verifyDomain(domainName: string): Promise<DomainVerification> {
    // domain-verify.md applies only to unverified domains: a verified one (e.g. a retry) is done.
    const current = await this.getDomain(domainName);
    if (current.isVerified) return { verified: true, domain: current };
    try {
      const domain = await this.call(
        'verify domain',
        () => this.client.api(`${domainPath(domainName)}/verify`).post({}),
        domainSchema,
      );
      return { verified: true, domain };
    } catch (error) {
      const appError = toAppError(error);
      if (appError.code !== 'Validation') throw error;
      const now = await this.getDomain(domainName);
      if (now.isVerified) return { verified: true, domain: now };
      return { verified: false, reason: appError.message };
    }
  }

  async deleteDomain(domainName: string): Promise<void> {
    try {
      await this.send('delete domain', () => this.client.api(domainPath(domainName)).delete());
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
    }
  }

  async getOrganization(): Promise<CloudOrganization> {
    const page = await this.call(
      'get organization',
      () => this.client.api('/organization').get(),
      organizationCollectionSchema,
    );
    const org = page.value[0];
    if (org === undefined) throw new AppError('Upstream', 'get organization: Graph returned no organization');
    return {
      id: org.id.toLowerCase(),
      displayName: org.displayName ?? '',
      partnerTenantType: org.partnerTenantType ?? null,
      verifiedDomains: org.verifiedDomains,
    };
  }

  async createDelegatedAdminRelationship(
    input: NewDelegatedAdminRelationship,
  ): Promise<DelegatedAdminRelationship> {
    const customer: Record<string, string> = {};
    if (input.customerTenantId !== undefined) customer['tenantId'] = input.customerTenantId;
    if (input.customerDisplayName !== undefined) customer['displayName'] = input.customerDisplayName;
    const body = {
      displayName: input.displayName,
      duration: input.duration,
      ...(Object.keys(customer).length === 0 ? {} : { customer }),
      accessDetails: {
        unifiedRoles: input.roleDefinitionIds.map((roleDefinitionId) => ({ roleDefinitionId })),
      },
      autoExtendDuration: input.autoExtendDuration ?? 'PT0S',
    };
    try {
      return toRelationship(
        await this.call(
          'create delegated admin relationship',
          () => this.client.api(gdapBase).post(body),
          delegatedAdminRelationshipSchema,
        ),
      );
    } catch (error) {
      if (toAppError(error).code !== 'AlreadyExists') throw error;
      // Display names are unique per partner: ours from an earlier attempt, or someone else's.
      const same = (await this.listDelegatedAdminRelationships()).find(
        (r) =>
          r.displayName.toLowerCase() === input.displayName.toLowerCase() &&
          (input.customerTenantId === undefined ||
            r.customerTenantId === input.customerTenantId.toLowerCase()),
      );
      if (same === undefined) throw error;
      return same;
    }
  }

  async getDelegatedAdminRelationship(relationshipId: string): Promise<DelegatedAdminRelationship> {
    return toRelationship(
      await this.call(
        'get delegated admin relationship',
        () => this.client.api(`${gdapBase}/${encodeURIComponent(relationshipId)}`).get(),
        delegatedAdminRelationshipSchema,
      ),
    );
  }

  async listDelegatedAdminRelationships(
    filter: { customerTenantId?: string } = {},
  ): Promise<DelegatedAdminRelationship[]> {
    const query =
      filter.customerTenantId === undefined
        ? ''
        : `?$filter=${queryValue(`customer/tenantId eq ${odataString(filter.customerTenantId.toLowerCase())}`)}`;
    const items = await this.listAll(
      'list delegated admin relationships',
      `${gdapBase}${query}`,
      delegatedAdminRelationshipCollectionSchema,
    );
    return items.map(toRelationship);
  }

  async updateDelegatedAdminRelationship(
    relationshipId: string,
    patch: DelegatedAdminRelationshipPatch,
  ): Promise<DelegatedAdminRelationship> {
    const current = await this.getDelegatedAdminRelationship(relationshipId);
    const body: Record<string, unknown> = {};
    if (patch.displayName !== undefined) body['displayName'] = patch.displayName;
    if (patch.duration !== undefined) body['duration'] = patch.duration;
    if (patch.customerTenantId !== undefined) body['customer'] = { tenantId: patch.customerTenantId };
    if (patch.roleDefinitionIds !== undefined)
      body['accessDetails'] = {
        unifiedRoles: patch.roleDefinitionIds.map((roleDefinitionId) => ({ roleDefinitionId })),
      };
    if (Object.keys(body).length === 0) return current;
    // delegatedadminrelationship-update.md: If-Match with the last known etag is required.
    return toRelationship(
      await this.call(
        'update delegated admin relationship',
        () =>
          this.client
            .api(`${gdapBase}/${encodeURIComponent(relationshipId)}`)
            .header('If-Match', current.etag ?? '*')
            .patch(body),
        delegatedAdminRelationshipSchema,
      ),
    );
  }

  async deleteDelegatedAdminRelationship(relationshipId: string): Promise<void> {
    try {
      const current = await this.getDelegatedAdminRelationship(relationshipId);
      await this.send('delete delegated admin relationship', () =>
        this.client
          .api(`${gdapBase}/${encodeURIComponent(relationshipId)}`)
          .header('If-Match', current.etag ?? '*')
          .delete(),
      );
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
    }
  }

  async requestDelegatedAdminRelationshipAction(
    relationshipId: string,
    action: 'lockForApproval' | 'terminate',
  ): Promise<DelegatedAdminRelationship> {
    const current = await this.getDelegatedAdminRelationship(relationshipId);
    // The effect is already there (e.g. a retried step): asking again would be refused.
    const done =
      action === 'lockForApproval'
        ? current.status !== 'created'
        : ['terminationRequested', 'terminating', 'terminated'].includes(current.status);
    if (done) return current;
    await this.send('request delegated admin relationship action', () =>
      this.client.api(`${gdapBase}/${encodeURIComponent(relationshipId)}/requests`).post({ action }),
    );
    return this.getDelegatedAdminRelationship(relationshipId);
  }

  async listDelegatedAdminAccessAssignments(
    relationshipId: string,
  ): Promise<DelegatedAdminAccessAssignment[]> {
    const items = await this.listAll(
      'list access assignments',
      `${gdapBase}/${encodeURIComponent(relationshipId)}/accessAssignments`,
      accessAssignmentCollectionSchema,
    );
    return items.map(toAccessAssignment);
  }

  async createDelegatedAdminAccessAssignment(
    relationshipId: string,
    assignment: { securityGroupId: string; roleDefinitionIds: string[] },
  ): Promise<DelegatedAdminAccessAssignment> {
    const body = {
      accessContainer: {
        accessContainerId: assignment.securityGroupId,
        accessContainerType: 'securityGroup',
      },
      accessDetails: {
        unifiedRoles: assignment.roleDefinitionIds.map((roleDefinitionId) => ({ roleDefinitionId })),
      },
    };
    try {
      return toAccessAssignment(
        await this.call(
          'create access assignment',
          () =>
            this.client.api(`${gdapBase}/${encodeURIComponent(relationshipId)}/accessAssignments`).post(body),
          accessAssignmentSchema,
        ),
      );
    } catch (error) {
      if (toAppError(error).code !== 'AlreadyExists') throw error;
      const existing = (await this.listDelegatedAdminAccessAssignments(relationshipId)).find(
        (a) => a.securityGroupId === assignment.securityGroupId.toLowerCase(),
      );
      if (existing === undefined) throw error;
      return existing;
    }
  }

  async deleteDelegatedAdminAccessAssignment(relationshipId: string, assignmentId: string): Promise<void> {
    const path = `${gdapBase}/${encodeURIComponent(relationshipId)}/accessAssignments/${encodeURIComponent(assignmentId)}`;
    try {
      const current = toAccessAssignment(
        await this.call('get access assignment', () => this.client.api(path).get(), accessAssignmentSchema),
      );
      await this.send('delete access assignment', () =>
        this.client
          .api(path)
          .header('If-Match', current.etag ?? '*')
          .delete(),
      );
    } catch (error) {
      if (toAppError(error).code !== 'NotFound') throw error;
    }
  }

  async listDelegatedAdminOperations(relationshipId: string): Promise<DelegatedAdminOperation[]> {
    const items = await this.listAll(
      'list relationship operations',
      `${gdapBase}/${encodeURIComponent(relationshipId)}/operations`,
      relationshipOperationCollectionSchema,
    );
    return items.map((o) => ({
      id: o.id,
      operationType: o.operationType,
      status: o.status,
      data: o.data ?? null,
    }));
  }

  async listExtensionProperties(appId: string): Promise<ExtensionPropertyDefinition[]> {
    return this.listAll(
      'list extension properties',
      `/applications(appId=${encodeURIComponent(odataString(appId))})/extensionProperties`,
      extensionPropertyCollectionSchema,
    );
  }

  async registerExtensionProperty(
    appId: string,
    name: string,
    options: { dataType?: ExtensionDataType; isMultiValued?: boolean } = {},
  ): Promise<ExtensionPropertyDefinition> {
    const fullName = `extension_${appId.replace(/-/g, '').toLowerCase()}_${name}`.toLowerCase();
    const find = async (): Promise<ExtensionPropertyDefinition | undefined> =>
      (await this.listExtensionProperties(appId)).find((e) => e.name.toLowerCase() === fullName);
    const existing = await find();
    if (existing !== undefined) return existing;
    try {
      return await this.call(
        'register extension property',
        () =>
          this.client
            .api(`/applications(appId=${encodeURIComponent(odataString(appId))})/extensionProperties`)
            .post({
              name,
              dataType: options.dataType ?? 'String',
              isMultiValued: options.isMultiValued ?? false,
              targetObjects: ['User'],
            }),
        extensionPropertySchema,
      );
    } catch (error) {
      // Another instance registered it meanwhile.
      if (toAppError(error).code !== 'AlreadyExists') throw error;
      const raced = await find();
      if (raced === undefined) throw error;
      return raced;
    }
  }

  async getUserExtensionAttributes(
    idOrUpn: string,
    attributeNames: string[],
  ): Promise<Record<string, ExtensionValue>> {
    const schema = z.object({ id: z.string() }).catchall(z.unknown());
    const user = await this.lagAware([idOrUpn], () =>
      this.call(
        'get user extension attributes',
        () =>
          this.client
            .api(userPath(idOrUpn))
            .select(['id', ...attributeNames].join(','))
            .get(),
        schema,
      ),
    );
    const out: Record<string, ExtensionValue> = {};
    for (const name of attributeNames) {
      const parsed = extensionValueSchema.safeParse(user[name] ?? null);
      if (!parsed.success)
        throw new AppError('Upstream', `get user extension attributes: ${name} has an unexpected value`);
      out[name] = parsed.data;
    }
    return out;
  }

  async findUsersByExtensionAttribute(
    attributeName: string,
    value: string | number | boolean,
  ): Promise<CloudUser[]> {
    const literal = typeof value === 'string' ? odataString(value) : String(value);
    const users = await this.listAll(
      'find users by extension attribute',
      `/users?$filter=${queryValue(`${attributeName} eq ${literal}`)}&$select=${userSelect}`,
      userCollectionSchema,
    );
    return users.map(toCloudUser);
  }

  async listDelegatedAdminCustomers(): Promise<DelegatedAdminCustomer[]> {
    const items = await this.listAll(
      'list delegated admin customers',
      '/tenantRelationships/delegatedAdminCustomers',
      delegatedAdminCustomerCollectionSchema,
    );
    return items.map((c) => ({ tenantId: c.tenantId.toLowerCase(), displayName: c.displayName ?? null }));
  }
}

const gdapBase = '/tenantRelationships/delegatedAdminRelationships';

function emptyAsNull(value: string | null | undefined): string | null {
  return value === undefined || value === null || value === '' ? null : value;
}

function toRelationship(value: z.infer<typeof delegatedAdminRelationshipSchema>): DelegatedAdminRelationship {
  return {
    id: value.id,
    displayName: value.displayName,
    status: value.status,
    duration: value.duration,
    autoExtendDuration: value.autoExtendDuration,
    customerTenantId: emptyAsNull(value.customer?.tenantId)?.toLowerCase() ?? null,
    customerDisplayName: emptyAsNull(value.customer?.displayName),
    roleDefinitionIds: (value.accessDetails?.unifiedRoles ?? []).map((r) => r.roleDefinitionId.toLowerCase()),
    createdDateTime: emptyAsNull(value.createdDateTime),
    activatedDateTime: emptyAsNull(value.activatedDateTime),
    endDateTime: emptyAsNull(value.endDateTime),
    etag: value['@odata.etag'] ?? null,
  };
}

function toAccessAssignment(value: z.infer<typeof accessAssignmentSchema>): DelegatedAdminAccessAssignment {
  return {
    id: value.id,
    securityGroupId: value.accessContainer.accessContainerId.toLowerCase(),
    roleDefinitionIds: value.accessDetails.unifiedRoles.map((r) => r.roleDefinitionId.toLowerCase()),
    status: value.status,
    etag: value['@odata.etag'] ?? null,
  };
}

function domainPath(domainName: string): string {
  return `/domains/${encodeURIComponent(domainName.toLowerCase())}`;
}

function toCompanySubscription(value: z.infer<typeof companySubscriptionSchema>): CompanySubscription {
  return {
    id: value.id,
    commerceSubscriptionId: value.commerceSubscriptionId,
    skuId: value.skuId.toLowerCase(),
    skuPartNumber: value.skuPartNumber,
    totalLicenses: value.totalLicenses,
    status: value.status,
    isTrial: value.isTrial ?? false,
    createdDateTime: value.createdDateTime ?? null,
    nextLifecycleDateTime: value.nextLifecycleDateTime ?? null,
    ownerId: value.ownerId ?? null,
    ownerTenantId: value.ownerTenantId?.toLowerCase() ?? null,
    ownerType: value.ownerType ?? null,
  };
}

function toFederation(value: z.infer<typeof federationSchema>): DomainFederation {
  const out: DomainFederation = {
    id: value.id,
    issuerUri: value.issuerUri,
    passiveSignInUri: value.passiveSignInUri,
    signingCertificate: value.signingCertificate,
    preferredAuthenticationProtocol: value.preferredAuthenticationProtocol,
    federatedIdpMfaBehavior: value.federatedIdpMfaBehavior ?? 'acceptIfMfaDoneByFederatedIdp',
  };
  if (value.displayName !== null && value.displayName !== undefined) out.displayName = value.displayName;
  if (value.nextSigningCertificate !== null && value.nextSigningCertificate !== undefined)
    out.nextSigningCertificate = value.nextSigningCertificate;
  if (value.activeSignInUri !== null && value.activeSignInUri !== undefined)
    out.activeSignInUri = value.activeSignInUri;
  if (value.metadataExchangeUri !== null && value.metadataExchangeUri !== undefined)
    out.metadataExchangeUri = value.metadataExchangeUri;
  if (value.signOutUri !== null && value.signOutUri !== undefined) out.signOutUri = value.signOutUri;
  if (value.promptLoginBehavior !== null && value.promptLoginBehavior !== undefined)
    out.promptLoginBehavior = value.promptLoginBehavior;
  if (
    value.isSignedAuthenticationRequestRequired !== null &&
    value.isSignedAuthenticationRequestRequired !== undefined
  )
    out.isSignedAuthenticationRequestRequired = value.isSignedAuthenticationRequestRequired;
  return out;
}

/** One cached Graph client and directory per tenant, all from one partner app's credentials. */
/** The name of the extension attribute that carries our idempotency key on users we create. */
export const idempotencyMarkerProperty = 'atriaOperation';

export function createGraphDirectoryFactory(options: GraphDirectoryOptions): CloudDirectoryFactory {
  const directories = new Map<string, GraphDirectory>();
  // Registered once per process on the app (idempotent in the adapter: an existing one is reused);
  // a failure is not remembered, so the next create tries again.
  let marker: Promise<string | undefined> | undefined;
  const home = options.homeTenant;
  const idempotencyMarker =
    home === undefined
      ? undefined
      : (): Promise<string | undefined> => {
          marker ??= factory(home.tenantId)
            .registerExtensionProperty(home.appId, idempotencyMarkerProperty, { dataType: 'String' })
            .then((definition) => definition.name)
            .catch((error: unknown) => {
              marker = undefined;
              throw error;
            });
          return marker;
        };
  const factory = (tenantId: string): CloudDirectory => {
    const key = tenantId.toLowerCase();
    let directory = directories.get(key);
    if (directory === undefined) {
      const client = createGraphClient(options.credentialFor(key), {
        ...(options.graphBaseUrl === undefined ? {} : { graphBaseUrl: options.graphBaseUrl }),
        ...(options.customHosts === undefined ? {} : { customHosts: options.customHosts }),
        ...(options.retry === undefined ? {} : { retry: options.retry }),
        ...(options.budget === undefined ? {} : { budget: options.budget.middlewareFor(key) }),
      });
      directory = new GraphDirectory(key, client, {
        ...options,
        ...(idempotencyMarker === undefined ? {} : { idempotencyMarker }),
      });
      directories.set(key, directory);
    }
    return directory;
  };
  return factory;
}
