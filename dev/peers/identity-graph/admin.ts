import { z } from 'zod';
import { faultSettingsSchema, type Faults } from './faults.js';
import { skuView } from './graph/directory.js';
import { gdapAdmin, relationshipView } from './graph/gdap.js';
import { subscriptionView } from './graph/subscriptions.js';
import { appSeedSchema, servicePlanSchema, subscriptionSeedSchema, tenantSeedSchema } from './seed.js';
import type { DirectoryState, TenantState } from './state.js';

export interface AdminResponse {
  status: number;
  body?: unknown;
}

export interface AdminContext {
  state: DirectoryState;
  faults: Faults;
  /** Restores the seed the peer started with. */
  reseed(): void;
}

const skuPutSchema = z.object({
  skuPartNumber: z.string().min(1),
  enabled: z.number().int().min(0),
  appliesTo: z.enum(['User', 'Company']).optional(),
  servicePlans: z.array(servicePlanSchema).optional(),
  /**
   * Optional: the seats belong to this companySubscription (e.g. the Partner Center subscription id,
   * which Graph shows as commerceSubscriptionId). Without it they go to the SKU's implicit subscription.
   */
  commerceSubscriptionId: z.string().min(1).optional(),
  ownerTenantId: z.guid().optional(),
});
const subscriptionPutSchema = subscriptionSeedSchema.omit({ commerceSubscriptionId: true });
const gdapActionSchema = z
  .object({
    /** approve: the customer tenant that approves (when the relationship names none). */
    customerTenantId: z.guid().optional(),
    /** approve: how long (peer clock) the relationship stays `activating` before it is `active`. */
    activatingForMs: z.number().int().min(0).optional(),
  })
  .default({});
const dnsPutSchema = z.object({ verificationRecord: z.enum(['present', 'missing']) });
const consentSchema = z.object({ tenantId: z.guid() });
const clockSchema = z.object({ advanceByInMs: z.number().int().min(0) });

function problem(status: number, message: string, issues?: unknown): AdminResponse {
  return {
    status,
    body: {
      error: {
        code: status === 404 ? 'NotFound' : 'BadRequest',
        message,
        ...(issues === undefined ? {} : { issues }),
      },
    },
  };
}

export function tenantSnapshot(tenant: TenantState): Record<string, unknown> {
  return {
    id: tenant.id,
    displayName: tenant.displayName,
    domains: [...tenant.domains.values()],
    skus: [...tenant.skus.values()].map((sku) => skuView(tenant, sku)),
    subscriptions: [...tenant.subscriptions.values()].map((s) => subscriptionView(tenant, s)),
    partnerTenantId: tenant.partnerTenantId ?? null,
    users: [...tenant.users.values()].map((u) => ({
      id: u.id,
      userPrincipalName: u.props['userPrincipalName'],
      displayName: u.props['displayName'],
      accountEnabled: u.props['accountEnabled'],
      usageLocation: u.props['usageLocation'] ?? null,
      onPremisesImmutableId: u.props['onPremisesImmutableId'] ?? null,
      assignedLicenses: u.assignedLicenses,
      deleted: u.deletedAtMs !== undefined,
    })),
    groups: [...tenant.groups.values()].map((g) => ({
      id: g.id,
      displayName: g.props['displayName'],
      members: [...g.members],
    })),
    federation: Object.fromEntries(
      [...tenant.federation.entries()].map(([domain, f]) => [domain, { id: f.id, ...f.props }]),
    ),
  };
}

/** The loopback-only admin API other peers and tests use to shape the directory. */
export function handleAdmin(
  ctx: AdminContext,
  method: string,
  segments: string[],
  body: unknown,
): AdminResponse {
  const { state } = ctx;
  const [resource, id, sub, subId] = segments;
  if (resource === 'tenants') {
    if (method === 'POST' && id === undefined) {
      const parsed = tenantSeedSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Invalid tenant.', parsed.error.issues);
      if (parsed.data.id !== undefined && state.tenants.has(parsed.data.id.toLowerCase()))
        return problem(409, 'Tenant already exists.');
      let tenant: TenantState;
      try {
        tenant = state.addTenant(parsed.data);
      } catch (error) {
        return problem(400, error instanceof Error ? error.message : 'Invalid tenant.');
      }
      return { status: 201, body: { id: tenant.id, initialDomain: tenant.initialDomain()?.id ?? null } };
    }
    if (method === 'GET' && id === undefined)
      return {
        status: 200,
        body: [...state.tenants.values()].map((t) => ({ id: t.id, displayName: t.displayName })),
      };
    const tenant = id === undefined ? undefined : state.resolveTenant(id);
    if (tenant === undefined) return problem(404, `Tenant '${id ?? ''}' not found.`);
    if (method === 'GET' && sub === undefined) return { status: 200, body: tenantSnapshot(tenant) };
    if (method === 'PUT' && sub === 'skus' && subId !== undefined) {
      const parsed = skuPutSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Invalid sku.', parsed.error.issues);
      if (!z.guid().safeParse(subId).success) return problem(400, 'skuId must be a GUID.');
      const sku = tenant.upsertSku({ skuId: subId, ...parsed.data }, state.clock.now().toISOString());
      return { status: 200, body: skuView(tenant, sku) };
    }
    if (method === 'PUT' && sub === 'domains' && subId !== undefined && segments[4] === 'dns') {
      // Test hook for domain-verify.md's failure: there is no DNS here, so a record "exists" unless marked missing.
      const parsed = dnsPutSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Body must be { verificationRecord: "present" | "missing" }.');
      const domain = tenant.domains.get(subId.toLowerCase());
      if (domain === undefined) return problem(404, `Domain '${subId}' not found.`);
      domain.verificationRecordMissing = parsed.data.verificationRecord === 'missing';
      return { status: 200, body: { id: domain.id, verificationRecord: parsed.data.verificationRecord } };
    }
    if (method === 'PUT' && sub === 'subscriptions' && subId !== undefined) {
      const parsed = subscriptionPutSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Invalid subscription.', parsed.error.issues);
      const record = tenant.upsertSubscription(
        { ...parsed.data, commerceSubscriptionId: subId },
        state.clock.now().toISOString(),
      );
      return { status: 200, body: subscriptionView(tenant, record) };
    }
  }
  if (resource === 'apps') {
    if (method === 'POST' && id === undefined) {
      const parsed = appSeedSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Invalid app.', parsed.error.issues);
      const existed = state.apps.has(parsed.data.clientId.toLowerCase());
      const app = state.addApp(parsed.data);
      return { status: existed ? 200 : 201, body: { clientId: app.clientId } };
    }
    if (method === 'POST' && id !== undefined && sub === 'tenants') {
      const app = state.apps.get(id.toLowerCase());
      if (app === undefined) return problem(404, `App '${id}' not found.`);
      const parsed = consentSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Body must be { tenantId }.', parsed.error.issues);
      const tenant = state.resolveTenant(parsed.data.tenantId);
      if (tenant === undefined) return problem(404, `Tenant '${parsed.data.tenantId}' not found.`);
      app.tenants.add(tenant.id);
      return { status: 204 };
    }
  }
  if (
    resource === 'gdap' &&
    id === 'relationships' &&
    sub !== undefined &&
    subId !== undefined &&
    method === 'POST'
  ) {
    // POST /_admin/gdap/relationships/{id}/approve|terminate|expire: what the customer or time does.
    const parsed = gdapActionSchema.safeParse(body);
    if (!parsed.success) return problem(400, 'Invalid body.', parsed.error.issues);
    const result = gdapAdmin(state, sub, subId, parsed.data);
    if (result.relationship === undefined) return problem(result.status, result.message ?? 'Refused.');
    return { status: 200, body: relationshipView(result.relationship) };
  }
  if (resource === 'faults') {
    if (method === 'GET') return { status: 200, body: ctx.faults.describe() };
    if (method === 'POST') {
      const parsed = faultSettingsSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Invalid faults.', parsed.error.issues);
      ctx.faults.configure(parsed.data);
      return { status: 200, body: ctx.faults.describe() };
    }
  }
  if (resource === 'clock') {
    if (method === 'GET') return { status: 200, body: { now: state.clock.now().toISOString() } };
    if (method === 'POST') {
      const parsed = clockSchema.safeParse(body);
      if (!parsed.success) return problem(400, 'Body must be { advanceByInMs }.', parsed.error.issues);
      state.clock.advance(parsed.data.advanceByInMs);
      return { status: 200, body: { now: state.clock.now().toISOString() } };
    }
  }
  if (resource === 'reset' && method === 'POST') {
    ctx.reseed();
    return { status: 204 };
  }
  return problem(404, `No admin route ${method} /_admin/${segments.join('/')}.`);
}
