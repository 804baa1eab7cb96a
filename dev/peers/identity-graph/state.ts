import { randomUUID } from 'node:crypto';
import type { AppSeed, SkuSeed, SubscriptionSeed, TenantSeed } from './seed.js';

/** The peer's virtual clock: real time plus an offset the admin API can advance. */
export class VirtualClock {
  private offsetInMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetInMs;
  }
  now(): Date {
    return new Date(this.nowMs());
  }
  advance(byInMs: number): void {
    this.offsetInMs += byInMs;
  }
  reset(): void {
    this.offsetInMs = 0;
  }
}

export interface DomainRecord {
  id: string;
  authenticationType: 'Managed' | 'Federated';
  isDefault: boolean;
  isInitial: boolean;
  isVerified: boolean;
  supportedServices: string[];
  /** false for a subdomain of a domain already in the tenant (resources/domain.md). Default true. */
  isRoot?: boolean;
  /** The MS=ms######## value to publish (domain-list-verificationdnsrecords.md). */
  verificationCode?: string;
  /** Test hook: the TXT/MX record is not in DNS, so verify fails (there is no DNS here). */
  verificationRecordMissing?: boolean;
}

/** The catalogue side of a SKU; its seats come from the tenant's companySubscriptions. */
export interface SkuRecord {
  skuId: string;
  skuPartNumber: string;
  appliesTo: 'User' | 'Company';
  servicePlans: { servicePlanId: string; servicePlanName: string }[];
}

export type SubscriptionStatus = 'Enabled' | 'Warning' | 'Suspended' | 'Deleted' | 'LockedOut';

/** resources/companysubscription.md; `id` is the directory's key, commerceSubscriptionId the alternate key. */
export interface SubscriptionRecord {
  id: string;
  commerceSubscriptionId: string;
  skuId: string;
  skuPartNumber: string;
  totalLicenses: number;
  status: SubscriptionStatus;
  isTrial: boolean;
  createdDateTime: string;
  nextLifecycleDateTime: string | null;
  ownerId: string | null;
  ownerTenantId: string | null;
  ownerType: string | null;
  /** The subscription behind a seed or admin `skus[].enabled` that named no subscription. */
  implicit: boolean;
}

/** licenseunitsdetail.md: seats by the state of the subscription that holds them. */
export interface PrepaidUnits {
  enabled: number;
  warning: number;
  suspended: number;
  lockedOut: number;
}

export interface AssignedLicense {
  skuId: string;
  disabledPlans: string[];
}

/**
 * A licence a user inherits from a group (group-based licensing; licenseassignmentstate.md): Active
 * holds a seat, Error records the intent without one (CountViolation when no seat was free).
 */
export interface GroupLicenceState {
  groupId: string;
  skuId: string;
  disabledPlans: string[];
  state: 'Active' | 'Error';
  error: 'CountViolation' | 'Other' | null;
  lastUpdatedDateTime: string;
}

export interface UserRecord {
  id: string;
  /** Every stored Graph property except id; what a response shows is chosen by $select. */
  props: Record<string, unknown>;
  /** Directly assigned licences (assignLicense on the user); inherited ones are in `groupLicences`. */
  assignedLicenses: AssignedLicense[];
  groupLicences?: GroupLicenceState[];
  deletedAtMs: number | undefined;
  /** Permanently deleted: only a tombstone for delta ("@removed": {"reason": "deleted"}) remains. */
  purged?: boolean;
  createdAtMs: number;
  /** Tenant change sequence of the last write; delta returns users whose seq is past the watermark. */
  seq: number;
  /**
   * Writes that changed only some properties (PATCH, assignLicense), so a delta with $select can skip
   * changes to unselected ones. Any seq not recorded here (create, delete, restore, purge) changed all.
   */
  propertyChanges?: { seq: number; props: string[] }[];
  /** The last whole-object change that a later partial write superseded in `seq`. */
  wholeSeq?: number;
}

/** Whether the user holds a seat of the SKU: directly, or inherited from a group and Active. */
export function holdsSku(user: UserRecord, skuId: string): boolean {
  return (
    user.assignedLicenses.some((l) => l.skuId === skuId) ||
    (user.groupLicences ?? []).some((l) => l.skuId === skuId && l.state === 'Active')
  );
}

/** user.assignedLicenses as Graph shows it: direct ones and Active inherited ones, one per SKU. */
export function effectiveLicences(user: UserRecord): AssignedLicense[] {
  const out = user.assignedLicenses.map((l) => ({ skuId: l.skuId, disabledPlans: l.disabledPlans }));
  for (const l of user.groupLicences ?? [])
    if (l.state === 'Active' && !out.some((o) => o.skuId === l.skuId))
      out.push({ skuId: l.skuId, disabledPlans: l.disabledPlans });
  return out;
}

/** user.licenseAssignmentStates (licenseassignmentstate.md): assignedByGroup null for a direct one. */
export function licenceAssignmentStates(user: UserRecord, directSince: string): Record<string, unknown>[] {
  return [
    ...user.assignedLicenses.map((l) => ({
      assignedByGroup: null,
      disabledPlans: l.disabledPlans,
      error: null,
      lastUpdatedDateTime: directSince,
      skuId: l.skuId,
      state: 'Active',
    })),
    ...(user.groupLicences ?? []).map((l) => ({
      assignedByGroup: l.groupId,
      disabledPlans: l.disabledPlans,
      error: l.error,
      lastUpdatedDateTime: l.lastUpdatedDateTime,
      skuId: l.skuId,
      state: l.state,
    })),
  ];
}

/** Records a write of some properties of a user (for delta's $select; user-delta.md). */
export function recordPropertyChange(tenant: TenantState, user: UserRecord, props: string[]): void {
  const changes = (user.propertyChanges ??= []);
  // The change that set the current seq was a whole-object one unless it is recorded as partial.
  if (changes.at(-1)?.seq !== user.seq) user.wholeSeq = user.seq;
  user.seq = tenant.nextSeq();
  changes.push({ seq: user.seq, props });
}

/**
 * Whether the user changed in (watermark, upTo] in a way a delta tracking `select` reports. Without
 * $select every change counts. A change past upTo is left for the next round.
 */
export function changedFor(
  user: UserRecord,
  watermark: number,
  upTo: number,
  select: string[] | undefined,
): boolean {
  const within = (seq: number): boolean => seq > watermark && seq <= upTo;
  if (select === undefined) return within(user.seq);
  const changes = user.propertyChanges ?? [];
  if (user.wholeSeq !== undefined && within(user.wholeSeq)) return true;
  if (changes.at(-1)?.seq !== user.seq && within(user.seq)) return true;
  return changes.some((c) => within(c.seq) && c.props.some((p) => select.includes(p)));
}

export interface GroupRecord {
  id: string;
  props: Record<string, unknown>;
  members: Set<string>;
  /** Group-based licensing: licences every direct user member inherits (group-assignlicense.md). */
  assignedLicenses?: AssignedLicense[];
  createdAtMs: number;
  seq: number;
  /** Membership writes by seq, for groups/delta's members@delta (group-delta.md). */
  memberChanges?: { seq: number; memberId: string; removed: boolean }[];
  /** The last whole-group change (create), once member changes moved `seq` past it. */
  wholeSeq?: number;
}

export interface FederationRecord {
  id: string;
  props: Record<string, unknown>;
}

export class TenantState {
  readonly domains = new Map<string, DomainRecord>();
  readonly skus = new Map<string, SkuRecord>();
  /** companySubscription id → subscription */
  readonly subscriptions = new Map<string, SubscriptionRecord>();
  /** The CSP partner tenant that manages this one (it lists this tenant in its /contracts). */
  partnerTenantId: string | undefined;
  contractType: 'ResellerPartner' | 'SyndicationPartner' | 'BreadthPartner' = 'ResellerPartner';
  /** Stable id of the contract object in the partner tenant. */
  readonly contractId = randomUUID();
  /** organization.partnerTenantType (resources/organization.md), for partner tenants. */
  partnerTenantType: string | undefined;
  readonly users = new Map<string, UserRecord>();
  readonly groups = new Map<string, GroupRecord>();
  /** Deleted groups' ids → the seq of the delete, so groups/delta reports them with @removed. */
  readonly groupTombstones = new Map<string, number>();
  /** Activated directory roles: id → role with its member user ids. */
  readonly directoryRoles = new Map<
    string,
    { id: string; displayName: string; roleTemplateId: string; members: Set<string> }
  >();
  /** domain id → its one internalDomainFederation */
  readonly federation = new Map<string, FederationRecord>();
  seq = 0;
  /** Distinguishes this tenant state from one before a reset or restart: older delta tokens are unknown. */
  readonly epoch = randomUUID().slice(0, 8);

  constructor(
    readonly id: string,
    public displayName: string,
    readonly createdDateTime: string,
  ) {}

  nextSeq(): number {
    this.seq += 1;
    return this.seq;
  }

  /** Soft-deleted users are kept 30 days, then purged (user-delete.md). */
  purgeExpired(nowMs: number): void {
    for (const user of this.users.values()) {
      if (
        user.deletedAtMs !== undefined &&
        user.purged !== true &&
        nowMs - user.deletedAtMs > 30 * 24 * 3600_000
      ) {
        user.purged = true;
        user.seq = this.nextSeq();
      }
    }
  }

  liveUsers(): UserRecord[] {
    return [...this.users.values()].filter((user) => user.deletedAtMs === undefined);
  }

  findUser(idOrUpn: string): UserRecord | undefined {
    const byId = this.users.get(idOrUpn.toLowerCase());
    if (byId !== undefined) return byId.deletedAtMs === undefined ? byId : undefined;
    const upn = idOrUpn.toLowerCase();
    return this.liveUsers().find((user) => String(user.props['userPrincipalName']).toLowerCase() === upn);
  }

  /** One seat per user holding the SKU, however many sources (direct, groups) give it to them. */
  consumedUnits(skuId: string): number {
    let count = 0;
    for (const user of this.liveUsers()) if (holdsSku(user, skuId)) count += 1;
    return count;
  }

  /** Catalogue data of a SKU (created when missing; what is given replaces what was there). */
  ensureSku(seed: {
    skuId: string;
    skuPartNumber: string;
    appliesTo?: 'User' | 'Company' | undefined;
    servicePlans?: { servicePlanId: string; servicePlanName: string }[] | undefined;
  }): SkuRecord {
    const skuId = seed.skuId.toLowerCase();
    const existing = this.skus.get(skuId);
    const record: SkuRecord = {
      skuId,
      skuPartNumber: seed.skuPartNumber,
      appliesTo: seed.appliesTo ?? existing?.appliesTo ?? 'User',
      servicePlans: seed.servicePlans ?? existing?.servicePlans ?? [],
    };
    this.skus.set(skuId, record);
    return record;
  }

  subscriptionsOf(skuId: string): SubscriptionRecord[] {
    const key = skuId.toLowerCase();
    return [...this.subscriptions.values()].filter((s) => s.skuId === key);
  }

  findSubscriptionByCommerceId(commerceSubscriptionId: string): SubscriptionRecord | undefined {
    const key = commerceSubscriptionId.toLowerCase();
    return [...this.subscriptions.values()].find((s) => s.commerceSubscriptionId.toLowerCase() === key);
  }

  /** Creates or updates a subscription by its commerceSubscriptionId (its SKU must exist or be named). */
  upsertSubscription(seed: SubscriptionSeed, nowIso: string, implicit = false): SubscriptionRecord {
    const sku = this.ensureSku({
      skuId: seed.skuId,
      skuPartNumber:
        seed.skuPartNumber ?? this.skus.get(seed.skuId.toLowerCase())?.skuPartNumber ?? seed.skuId,
    });
    const existing = this.findSubscriptionByCommerceId(seed.commerceSubscriptionId);
    const record: SubscriptionRecord = {
      id: existing?.id ?? seed.id?.toLowerCase() ?? randomUUID(),
      commerceSubscriptionId: seed.commerceSubscriptionId,
      skuId: sku.skuId,
      skuPartNumber: sku.skuPartNumber,
      totalLicenses: seed.totalLicenses,
      status: seed.status ?? existing?.status ?? 'Enabled',
      isTrial: seed.isTrial ?? existing?.isTrial ?? false,
      createdDateTime: seed.createdDateTime ?? existing?.createdDateTime ?? nowIso,
      nextLifecycleDateTime: seed.nextLifecycleDateTime ?? existing?.nextLifecycleDateTime ?? null,
      ownerId: seed.ownerId ?? existing?.ownerId ?? null,
      // An explicit null means "no partner" (e.g. an EA subscription); absent means the tenant's partner.
      ownerTenantId:
        seed.ownerTenantId === null
          ? null
          : (seed.ownerTenantId?.toLowerCase() ?? existing?.ownerTenantId ?? this.partnerTenantId ?? null),
      ownerType: seed.ownerType ?? existing?.ownerType ?? null,
      implicit: existing?.implicit ?? implicit,
    };
    this.subscriptions.set(record.id, record);
    return record;
  }

  /**
   * `skus[].enabled` without a named subscription (seed, or the admin PUT the Partner Center peer uses):
   * the seats of the SKU's one implicit subscription, created on first use.
   */
  setImplicitSeats(skuId: string, enabled: number, nowIso: string): SubscriptionRecord {
    const existing = this.subscriptionsOf(skuId).find((s) => s.implicit);
    return this.upsertSubscription(
      {
        skuId,
        commerceSubscriptionId: existing?.commerceSubscriptionId ?? randomUUID(),
        totalLicenses: enabled,
      },
      nowIso,
      true,
    );
  }

  /** prepaidUnits follow the subscriptions: each one's seats count under its status (Deleted: none). */
  prepaidUnits(skuId: string): PrepaidUnits {
    const units: PrepaidUnits = { enabled: 0, warning: 0, suspended: 0, lockedOut: 0 };
    for (const s of this.subscriptionsOf(skuId)) {
      if (s.status === 'Enabled') units.enabled += s.totalLicenses;
      else if (s.status === 'Warning') units.warning += s.totalLicenses;
      else if (s.status === 'Suspended') units.suspended += s.totalLicenses;
      else if (s.status === 'LockedOut') units.lockedOut += s.totalLicenses;
    }
    return units;
  }

  /** subscribedsku.md: Enabled when at least one unit is enabled; otherwise the state the seats are in. */
  capabilityStatus(skuId: string): SubscriptionStatus {
    const units = this.prepaidUnits(skuId);
    const subscriptions = this.subscriptionsOf(skuId);
    if (units.enabled > 0) return 'Enabled';
    if (units.warning > 0) return 'Warning';
    if (units.suspended > 0) return 'Suspended';
    if (units.lockedOut > 0) return 'LockedOut';
    if (subscriptions.length > 0 && subscriptions.every((s) => s.status === 'Deleted')) return 'Deleted';
    // No seats anywhere (e.g. subscriptions of 0): the state of a subscription that is not Enabled, if any.
    return subscriptions.find((s) => s.status !== 'Enabled' && s.status !== 'Deleted')?.status ?? 'Enabled';
  }

  /** A SKU's seats as one number (seed `skus[]`, the admin PUT the Partner Center peer uses). */
  upsertSku(
    seed: SkuSeed & { commerceSubscriptionId?: string | undefined; ownerTenantId?: string | undefined },
    nowIso: string,
  ): SkuRecord {
    const sku = this.ensureSku(seed);
    if (seed.enabled === undefined) return sku;
    if (seed.commerceSubscriptionId !== undefined) {
      this.upsertSubscription(
        {
          skuId: sku.skuId,
          skuPartNumber: sku.skuPartNumber,
          commerceSubscriptionId: seed.commerceSubscriptionId,
          totalLicenses: seed.enabled,
          ...(seed.ownerTenantId === undefined ? {} : { ownerTenantId: seed.ownerTenantId }),
        },
        nowIso,
      );
    } else {
      this.setImplicitSeats(sku.skuId, seed.enabled, nowIso);
    }
    return sku;
  }

  initialDomain(): DomainRecord | undefined {
    return [...this.domains.values()].find((d) => d.isInitial);
  }
}

export interface AppRecord {
  clientId: string;
  /** Entra apps may hold several secrets at once (rotation). */
  clientSecrets: string[];
  certificatesPem: string[];
  homeTenantId: string;
  tenants: Set<string>;
  roles: string[];
  displayName: string;
  /** Service principal object id per tenant (the token's oid). */
  servicePrincipalIds: Map<string, string>;
  /** The application object's id in its home tenant (GET /applications/{id}). */
  objectId: string;
  /** Directory extensions defined on this app (resources/extensionproperty.md). */
  extensionProperties: ExtensionPropertyRecord[];
}

export interface ExtensionPropertyRecord {
  id: string;
  /** extension_{appId without dashes}_{name} */
  name: string;
  dataType: 'Binary' | 'Boolean' | 'DateTime' | 'Integer' | 'LargeInteger' | 'String';
  isMultiValued: boolean;
  targetObjects: string[];
}

function slug(name: string): string {
  const s = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  return s.length > 0 ? s.slice(0, 27) : 'tenant';
}

export class DirectoryState {
  readonly tenants = new Map<string, TenantState>();
  readonly apps = new Map<string, AppRecord>();

  constructor(readonly clock: VirtualClock) {}

  reset(): void {
    this.tenants.clear();
    this.apps.clear();
  }

  /** Tenant by GUID or by any of its domain names (MSAL authorities may name a domain). */
  resolveTenant(idOrDomain: string): TenantState | undefined {
    const key = idOrDomain.toLowerCase();
    const byId = this.tenants.get(key);
    if (byId !== undefined) return byId;
    for (const tenant of this.tenants.values()) if (tenant.domains.has(key)) return tenant;
    return undefined;
  }

  addTenant(seed: TenantSeed): TenantState {
    const id = (seed.id ?? randomUUID()).toLowerCase();
    const tenant = new TenantState(id, seed.displayName, this.clock.now().toISOString());
    const domains = seed.domains ?? [];
    const hasInitial = domains.some((d) => d.isInitial === true || d.id.endsWith('.onmicrosoft.com'));
    if (!hasInitial) {
      let name = `${slug(seed.displayName)}.onmicrosoft.com`;
      for (let n = 2; this.resolveTenant(name) !== undefined; n++)
        name = `${slug(seed.displayName)}${n}.onmicrosoft.com`;
      domains.unshift({ id: name, isInitial: true });
    }
    const anyDefault = domains.some((d) => d.isDefault === true);
    for (const [index, d] of domains.entries()) {
      const isInitial =
        d.isInitial ??
        (d.id.endsWith('.onmicrosoft.com') && ![...tenant.domains.values()].some((x) => x.isInitial));
      tenant.domains.set(d.id, {
        id: d.id,
        authenticationType: d.authenticationType ?? 'Managed',
        isDefault: d.isDefault ?? (!anyDefault && index === 0),
        isInitial,
        isVerified: d.isVerified ?? true,
        supportedServices: ['Email', 'OfficeCommunicationsOnline'],
      });
    }
    tenant.partnerTenantId = seed.partnerTenantId?.toLowerCase();
    if (seed.contractType !== undefined) tenant.contractType = seed.contractType;
    tenant.partnerTenantType = seed.partnerTenantType;
    const nowIso = this.clock.now().toISOString();
    const listed = seed.subscriptions ?? [];
    for (const sku of seed.skus ?? []) {
      const own = listed.filter((s) => s.skuId.toLowerCase() === sku.skuId.toLowerCase());
      if (own.length === 0) {
        tenant.upsertSku(sku, nowIso);
        continue;
      }
      // The SKU's seats come from its listed subscriptions; a given `enabled` must agree with them.
      const enabledSeats = own
        .filter((s) => (s.status ?? 'Enabled') === 'Enabled')
        .reduce((n, s) => n + s.totalLicenses, 0);
      if (sku.enabled !== undefined && sku.enabled !== enabledSeats)
        throw new Error(
          `seed tenant ${seed.displayName}: skus[${sku.skuId}].enabled is ${sku.enabled} but its Enabled subscriptions hold ${enabledSeats}`,
        );
      tenant.ensureSku(sku);
    }
    for (const subscription of listed) tenant.upsertSubscription(subscription, nowIso);
    for (const u of seed.users ?? []) {
      const userId = (u.id ?? randomUUID()).toLowerCase();
      tenant.users.set(userId, {
        id: userId,
        props: {
          userPrincipalName: u.userPrincipalName,
          displayName: u.displayName,
          mailNickname: u.mailNickname ?? u.userPrincipalName.split('@')[0],
          accountEnabled: u.accountEnabled ?? true,
          usageLocation: u.usageLocation ?? null,
          onPremisesImmutableId: u.onPremisesImmutableId ?? null,
          createdDateTime: this.clock.now().toISOString(),
        },
        assignedLicenses: [],
        deletedAtMs: undefined,
        createdAtMs: 0,
        seq: tenant.nextSeq(),
      });
    }
    for (const role of seed.directoryRoles ?? []) {
      const members = new Set<string>();
      for (const upn of role.members)
        for (const user of tenant.users.values())
          if (String(user.props['userPrincipalName']).toLowerCase() === upn.toLowerCase())
            members.add(user.id);
      const roleId = randomUUID();
      tenant.directoryRoles.set(roleId, {
        id: roleId,
        displayName: role.displayName,
        roleTemplateId: role.roleTemplateId,
        members,
      });
    }
    if (seed.groups !== undefined) {
      const byUpn = new Map(
        [...tenant.users.values()].map((u) => [String(u.props['userPrincipalName']).toLowerCase(), u.id]),
      );
      for (const group of seed.groups) {
        const groupId = (group.id ?? randomUUID()).toLowerCase();
        const members = new Set<string>();
        for (const upn of group.members) {
          const userId = byUpn.get(upn.toLowerCase());
          if (userId !== undefined) members.add(userId);
        }
        tenant.groups.set(groupId, {
          id: groupId,
          props: {
            displayName: group.displayName,
            mailNickname: group.mailNickname ?? group.displayName.toLowerCase().replace(/[^a-z0-9]/g, ''),
            mailEnabled: false,
            securityEnabled: true,
            groupTypes: [],
            createdDateTime: this.clock
              .now()
              .toISOString()
              .replace(/\.\d+Z$/, 'Z'),
          },
          members,
          createdAtMs: 0,
          seq: tenant.nextSeq(),
        });
      }
    }
    this.tenants.set(id, tenant);
    return tenant;
  }

  /**
   * Registers an app, or merges into an existing registration (secrets, certificates, consented
   * tenants and roles are added, never dropped), so posting the same app twice is harmless.
   */
  addApp(seed: AppSeed): AppRecord {
    const clientId = seed.clientId.toLowerCase();
    const existing = this.apps.get(clientId);
    const tenants = new Set<string>([
      ...(existing?.tenants ?? []),
      seed.homeTenantId.toLowerCase(),
      ...(seed.tenants ?? []).map((t) => t.toLowerCase()),
    ]);
    const app: AppRecord = {
      clientId,
      clientSecrets: [
        ...new Set([
          ...(existing?.clientSecrets ?? []),
          ...(seed.clientSecret === undefined ? [] : [seed.clientSecret]),
        ]),
      ],
      certificatesPem: [...new Set([...(existing?.certificatesPem ?? []), ...(seed.certificates ?? [])])],
      homeTenantId: existing?.homeTenantId ?? seed.homeTenantId.toLowerCase(),
      tenants,
      roles: [...new Set([...(existing?.roles ?? []), ...(seed.roles ?? [])])],
      displayName: seed.displayName ?? existing?.displayName ?? `app ${clientId}`,
      servicePrincipalIds: existing?.servicePrincipalIds ?? new Map<string, string>(),
      objectId: existing?.objectId ?? randomUUID(),
      extensionProperties: existing?.extensionProperties ?? [],
    };
    this.apps.set(clientId, app);
    return app;
  }

  servicePrincipalId(app: AppRecord, tenantId: string): string {
    let id = app.servicePrincipalIds.get(tenantId);
    if (id === undefined) {
      id = randomUUID();
      app.servicePrincipalIds.set(tenantId, id);
    }
    return id;
  }
}
