import { randomUUID } from 'node:crypto';
import type { AppSeed, SkuSeed, TenantSeed } from './seed.js';

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
}

export interface SkuRecord {
  skuId: string;
  skuPartNumber: string;
  enabled: number;
  appliesTo: 'User' | 'Company';
  capabilityStatus: 'Enabled' | 'Warning' | 'Suspended' | 'Deleted' | 'LockedOut';
  servicePlans: { servicePlanId: string; servicePlanName: string }[];
}

export interface AssignedLicense {
  skuId: string;
  disabledPlans: string[];
}

export interface UserRecord {
  id: string;
  /** Every stored Graph property except id; what a response shows is chosen by $select. */
  props: Record<string, unknown>;
  assignedLicenses: AssignedLicense[];
  deletedAtMs: number | undefined;
  /** Permanently deleted: only a tombstone for delta ("@removed": {"reason": "deleted"}) remains. */
  purged?: boolean;
  createdAtMs: number;
  /** Tenant change sequence of the last write; delta returns users whose seq is past the watermark. */
  seq: number;
}

export interface GroupRecord {
  id: string;
  props: Record<string, unknown>;
  members: Set<string>;
  createdAtMs: number;
  seq: number;
}

export interface FederationRecord {
  id: string;
  props: Record<string, unknown>;
}

export class TenantState {
  readonly domains = new Map<string, DomainRecord>();
  readonly skus = new Map<string, SkuRecord>();
  readonly users = new Map<string, UserRecord>();
  readonly groups = new Map<string, GroupRecord>();
  /** domain id → its one internalDomainFederation */
  readonly federation = new Map<string, FederationRecord>();
  seq = 0;

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

  consumedUnits(skuId: string): number {
    let count = 0;
    for (const user of this.liveUsers()) if (user.assignedLicenses.some((l) => l.skuId === skuId)) count += 1;
    return count;
  }

  upsertSku(seed: SkuSeed): SkuRecord {
    const skuId = seed.skuId.toLowerCase();
    const existing = this.skus.get(skuId);
    const record: SkuRecord = {
      skuId,
      skuPartNumber: seed.skuPartNumber,
      enabled: seed.enabled,
      appliesTo: seed.appliesTo ?? existing?.appliesTo ?? 'User',
      capabilityStatus: 'Enabled',
      servicePlans: seed.servicePlans ?? existing?.servicePlans ?? [],
    };
    this.skus.set(skuId, record);
    return record;
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
    for (const sku of seed.skus ?? []) tenant.upsertSku(sku);
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
