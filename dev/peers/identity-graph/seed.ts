import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** Seed and admin-API shapes. One schema for both, so a seed file and `POST /_admin/tenants` agree. */
const guid = z.guid();

export const servicePlanSchema = z.object({ servicePlanId: guid, servicePlanName: z.string().min(1) });

export const skuSeedSchema = z.object({
  skuId: guid,
  skuPartNumber: z.string().min(1),
  /**
   * Seats of the SKU's implicit subscription. When `subscriptions` lists subscriptions of this SKU they
   * hold its seats instead, and `enabled` (optional then) must equal their Enabled total.
   */
  enabled: z.number().int().min(0).optional(),
  appliesTo: z.enum(['User', 'Company']).optional(),
  servicePlans: z.array(servicePlanSchema).optional(),
});

export const domainSeedSchema = z.object({
  id: z.string().min(3).toLowerCase(),
  isDefault: z.boolean().optional(),
  isInitial: z.boolean().optional(),
  isVerified: z.boolean().optional(),
  authenticationType: z.enum(['Managed', 'Federated']).optional(),
});

export const userSeedSchema = z.object({
  id: guid.optional(),
  userPrincipalName: z.string().min(3),
  displayName: z.string().min(1),
  mailNickname: z.string().optional(),
  accountEnabled: z.boolean().optional(),
  usageLocation: z.string().length(2).optional(),
  onPremisesImmutableId: z.string().optional(),
});

const isoDateTime = z.iso.datetime({ offset: true });

/** One companySubscription (resources/companysubscription.md) as a seed or admin body. */
export const subscriptionSeedSchema = z.object({
  /** The directory's own id; generated when absent. */
  id: guid.optional(),
  commerceSubscriptionId: z.string().min(1),
  skuId: guid,
  skuPartNumber: z.string().min(1).optional(),
  totalLicenses: z.number().int().min(0),
  status: z.enum(['Enabled', 'Warning', 'Suspended', 'Deleted', 'LockedOut']).optional(),
  isTrial: z.boolean().optional(),
  createdDateTime: isoDateTime.optional(),
  nextLifecycleDateTime: isoDateTime.nullable().optional(),
  ownerId: z.string().nullable().optional(),
  /** The partner tenant that created it; defaults to the tenant's partnerTenantId. */
  ownerTenantId: guid.nullable().optional(),
  ownerType: z.string().nullable().optional(),
});

export const tenantSeedSchema = z.object({
  id: guid.optional(),
  displayName: z.string().min(1),
  domains: z.array(domainSeedSchema).optional(),
  skus: z.array(skuSeedSchema).optional(),
  users: z.array(userSeedSchema).optional(),
  subscriptions: z.array(subscriptionSeedSchema).optional(),
  /** Activated directory roles (directoryrole.md) and the UPNs of their members, e.g. Global Administrator. */
  directoryRoles: z
    .array(z.object({ roleTemplateId: guid, displayName: z.string().min(1), members: z.array(z.string()) }))
    .optional(),
  /** Security groups and the UPNs of their members (for onboarding imports and groups/delta). */
  groups: z
    .array(
      z.object({
        id: guid.optional(),
        displayName: z.string().min(1),
        mailNickname: z.string().min(1).optional(),
        members: z.array(z.string()),
      }),
    )
    .optional(),
  /** The CSP partner managing this tenant: the tenant appears in that partner tenant's GET /contracts. */
  partnerTenantId: guid.optional(),
  contractType: z.enum(['ResellerPartner', 'SyndicationPartner', 'BreadthPartner']).optional(),
  /** organization.partnerTenantType for a partner tenant (resources/organization.md). */
  partnerTenantType: z
    .enum([
      'microsoftSupport',
      'syndicatePartner',
      'breadthPartner',
      'breadthPartnerDelegatedAdmin',
      'resellerPartnerDelegatedAdmin',
      'valueAddedResellerPartnerDelegatedAdmin',
      'unknownFutureValue',
    ])
    .optional(),
});

export const appSeedSchema = z.object({
  clientId: guid,
  clientSecret: z.string().min(1).optional(),
  /** PEM certificates whose private keys may sign client assertions for this app. */
  certificates: z.array(z.string().includes('BEGIN CERTIFICATE')).optional(),
  homeTenantId: guid,
  /** Tenants where the app is consented (its home tenant always is). */
  tenants: z.array(guid).optional(),
  roles: z.array(z.string().min(1)).optional(),
  displayName: z.string().optional(),
});

export const seedSchema = z.object({
  tenants: z.array(tenantSeedSchema).default([]),
  apps: z.array(appSeedSchema).default([]),
});

export type SkuSeed = z.infer<typeof skuSeedSchema>;
export type SubscriptionSeed = z.input<typeof subscriptionSeedSchema>;
export type TenantSeed = z.infer<typeof tenantSeedSchema>;
export type AppSeed = z.infer<typeof appSeedSchema>;
export type UserSeed = z.infer<typeof userSeedSchema>;
export type Seed = z.input<typeof seedSchema>;

export function loadSeed(seed: Seed | string | undefined): z.infer<typeof seedSchema> {
  if (seed === undefined) return { tenants: [], apps: [] };
  const raw: unknown = typeof seed === 'string' ? JSON.parse(readFileSync(seed, 'utf8')) : seed;
  return seedSchema.parse(raw);
}
