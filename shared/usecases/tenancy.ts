import { z } from 'zod';
import type { Customer } from '../domain/customer.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import { recentReads } from '../ports/recent-reads.js';
import type { Store } from '../ports/store.js';
import { sitesCollection, SITES_PARTITION } from './sites.js';

/**
 * Who owns what across providers. Sites and Entra tenants are global names (a site names Service Bus
 * queues, a tenant is Microsoft's), so each carries its owner: a site the provider that registered it,
 * a tenant the provider and the one customer that first named it. Every use case that takes one checks
 * it here before any read or write, and the worker checks again before every step, because a queue
 * message is input too. Another provider's resource is reported exactly like a missing one.
 */
const tenantClaimSchema = z.object({
  tenantId: z.string(),
  providerId: z.string(),
  customerId: z.string(),
  claimedAt: z.string(),
});
export type TenantClaim = z.infer<typeof tenantClaimSchema>;

const TENANTS_PARTITION = 'tenants';

export function tenantClaimsCollection(store: Store) {
  return store.collection('tenantclaims', tenantClaimSchema);
}

export const siteNotFound = (siteId: string): AppError =>
  new AppError('NotFound', `site ${siteId} not found`);

export const tenantUnavailable = (tenantId: string): AppError =>
  new AppError('Conflict', `tenant ${tenantId} is not available to this provider`, {
    details: { errors: [{ path: 'body.entra.tenantId', message: 'not available to this provider' }] },
  });

/** How stale the worker's ownership checks may be (a released tenant or a deleted site). */
export const OWNERSHIP_RECENT_IN_MS = 1000;

export function createTenancy(deps: { store: Store; clock: Clock }) {
  const claims = tenantClaimsCollection(deps.store);
  const sites = sitesCollection(deps.store);
  // The check before every run reads these two rows; a process asks Table storage once a second.
  const recentClaims = recentReads(claims, { ttlInMs: OWNERSHIP_RECENT_IN_MS });
  const recentSites = recentReads(sites, { ttlInMs: OWNERSHIP_RECENT_IN_MS });

  /** The provider's own site with an agent key (a site without one cannot be trusted with work). */
  async function assertSiteUsable(
    providerId: string,
    siteId: string,
    read: Pick<typeof sites, 'get'> = sites,
  ): Promise<void> {
    const site = await read.get(SITES_PARTITION, siteId);
    if (site === undefined || site.value.providerId !== providerId) throw siteNotFound(siteId);
    if (site.value.agentPublicKeyPem === undefined)
      throw new AppError('Conflict', `site ${siteId} has no agent key registered (PUT /sites/${siteId})`);
  }

  /**
   * Links a tenant to one customer of one provider. Naming it again for the same customer is a no-op;
   * any other customer (of this provider or another) is refused, with the same words for both.
   */
  async function claimTenant(providerId: string, customerId: string, tenantId: string): Promise<void> {
    const key = tenantId.toLowerCase();
    const existing = await claims.get(TENANTS_PARTITION, key);
    if (existing !== undefined) {
      if (existing.value.providerId === providerId && existing.value.customerId === customerId) return;
      throw tenantUnavailable(tenantId);
    }
    try {
      await claims.create(TENANTS_PARTITION, key, {
        tenantId: key,
        providerId,
        customerId,
        claimedAt: deps.clock.now().toISOString(),
      });
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
      // Two customers named it at once: whoever stored first has it.
      await claimTenant(providerId, customerId, tenantId);
    }
  }

  /** Frees a tenant the customer no longer names (only its own claim). */
  async function releaseTenant(providerId: string, customerId: string, tenantId: string): Promise<void> {
    const key = tenantId.toLowerCase();
    const existing = await claims.get(TENANTS_PARTITION, key);
    if (existing?.value.providerId === providerId && existing.value.customerId === customerId)
      await claims.delete(TENANTS_PARTITION, key, existing.etag);
    recentClaims.forget(TENANTS_PARTITION, key);
  }

  /**
   * Where work runs: the stored customer must still be the provider's, its site the provider's, its
   * tenant claimed by this very customer. A permanent NotFound otherwise, so a hand-made message naming
   * another provider's resources is refused without touching any directory. Read through
   * OWNERSHIP_RECENT_IN_MS of memory: ownership changes only by deleting and registering again.
   */
  async function assertWorkAllowed(providerId: string, customer: Customer): Promise<void> {
    if (customer.providerId !== providerId)
      throw new AppError('NotFound', `customer ${customer.customerId} not found`);
    if (customer.ad !== undefined) await assertSiteUsable(providerId, customer.ad.siteId, recentSites);
    if (customer.entra !== undefined) {
      const claim = await recentClaims.get(TENANTS_PARTITION, customer.entra.tenantId.toLowerCase());
      if (claim?.value.providerId !== providerId || claim.value.customerId !== customer.customerId)
        throw new AppError(
          'NotFound',
          `tenant ${customer.entra.tenantId} is not linked to customer ${customer.customerId}`,
        );
    }
  }

  /** Who registered a site: agent replies are routed by it (read through the same memo). */
  async function siteOwner(siteId: string): Promise<string | undefined> {
    return (await recentSites.get(SITES_PARTITION, siteId))?.value.providerId;
  }

  return { assertSiteUsable, claimTenant, releaseTenant, assertWorkAllowed, siteOwner };
}

export type Tenancy = ReturnType<typeof createTenancy>;
