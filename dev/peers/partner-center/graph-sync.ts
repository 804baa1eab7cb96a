/**
 * Keeps the Graph peer's view of a customer tenant in step with Partner Center: tenant creation with
 * its initial domain and admin user (and the partner, so it shows in the partner's `/contracts`),
 * consent for the partner's apps, and one Graph companySubscription per Partner Center subscription
 * (`commerceSubscriptionId` = the Partner Center subscription id, G resources/companysubscription.md),
 * so `subscribedSkus.prepaidUnits` follow the seats Partner Center holds. Talks only to the
 * identity-graph peer's admin API.
 */
export interface GraphTenantSync {
  ensurePartnerApp(
    partnerTenantId: string,
    partnerName: string,
    app: { clientId: string; clientSecret: string; graphRoles: string[] },
  ): Promise<void>;
  createCustomerTenant(input: {
    tenantId: string;
    displayName: string;
    initialDomain: string;
    adminUserPrincipalName: string;
    /** The CSP partner of the tenant (Graph `/contracts`, companySubscription.ownerTenantId). */
    partnerTenantId?: string;
  }): Promise<void>;
  grantConsent(clientId: string, tenantId: string): Promise<void>;
  setSeats(
    tenantId: string,
    sku: {
      skuId: string;
      skuPartNumber: string;
      servicePlans: { servicePlanId: string; servicePlanName: string }[];
    },
    enabled: number,
  ): Promise<void>;
  /** One Partner Center subscription as the tenant's companySubscription (absolute, so repeats repair). */
  putSubscription(
    tenantId: string,
    sku: {
      skuId: string;
      skuPartNumber: string;
      servicePlans: { servicePlanId: string; servicePlanName: string }[];
    },
    subscription: {
      commerceSubscriptionId: string;
      totalLicenses: number;
      status: 'Enabled' | 'Suspended' | 'Deleted';
      createdDateTime: string;
      nextLifecycleDateTime: string | null;
      ownerTenantId: string;
    },
  ): Promise<void>;
}

export class GraphAdminError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'GraphAdminError';
  }
}

export function graphAdminClient(adminUrl: string): GraphTenantSync {
  const base = adminUrl.replace(/\/+$/, '');
  /** Tenant+SKU pairs whose service plans the Graph peer has been given already. */
  const knownSkus = new Set<string>();
  const call = async (
    method: string,
    path: string,
    body: unknown,
    okStatuses: number[] = [],
  ): Promise<void> => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    await response.arrayBuffer();
    if (!response.ok && !okStatuses.includes(response.status))
      throw new GraphAdminError(`graph admin ${method} ${path} answered ${response.status}`, response.status);
  };
  return {
    async ensurePartnerApp(partnerTenantId, partnerName, { clientId, clientSecret, graphRoles }) {
      // 409 = already there (the Graph peer may have been seeded with the same partner).
      await call(
        'POST',
        '/tenants',
        {
          id: partnerTenantId,
          displayName: partnerName,
          domains: [
            {
              id: `${partnerTenantId.slice(0, 8)}partner.onmicrosoft.com`,
              isDefault: true,
              isInitial: true,
              authenticationType: 'Managed',
            },
          ],
        },
        [409],
      );
      await call(
        'POST',
        '/apps',
        {
          clientId,
          clientSecret,
          homeTenantId: partnerTenantId,
          tenants: [partnerTenantId],
          roles: graphRoles,
        },
        [409],
      );
    },
    async createCustomerTenant({
      tenantId,
      displayName,
      initialDomain,
      adminUserPrincipalName,
      partnerTenantId,
    }) {
      await call(
        'POST',
        '/tenants',
        {
          id: tenantId,
          displayName,
          ...(partnerTenantId === undefined ? {} : { partnerTenantId, contractType: 'ResellerPartner' }),
          domains: [{ id: initialDomain, isDefault: true, isInitial: true, authenticationType: 'Managed' }],
          users: [{ userPrincipalName: adminUserPrincipalName, displayName: 'admin' }],
        },
        [409],
      );
    },
    async grantConsent(clientId, tenantId) {
      await call('POST', `/apps/${encodeURIComponent(clientId)}/tenants`, { tenantId }, [409]);
    },
    async setSeats(tenantId, sku, enabled) {
      await call('PUT', `/tenants/${encodeURIComponent(tenantId)}/skus/${encodeURIComponent(sku.skuId)}`, {
        skuPartNumber: sku.skuPartNumber,
        enabled,
        servicePlans: sku.servicePlans,
      });
    },
    async putSubscription(tenantId, sku, subscription) {
      const tenant = encodeURIComponent(tenantId);
      const key = `${tenantId}|${sku.skuId}`.toLowerCase();
      if (!knownSkus.has(key)) {
        // The SKU PUT carries the service plans; with commerceSubscriptionId its seats go to that subscription.
        await call('PUT', `/tenants/${tenant}/skus/${encodeURIComponent(sku.skuId)}`, {
          skuPartNumber: sku.skuPartNumber,
          servicePlans: sku.servicePlans,
          enabled: subscription.totalLicenses,
          commerceSubscriptionId: subscription.commerceSubscriptionId,
          ownerTenantId: subscription.ownerTenantId,
        });
        knownSkus.add(key);
      }
      await call(
        'PUT',
        `/tenants/${tenant}/subscriptions/${encodeURIComponent(subscription.commerceSubscriptionId)}`,
        {
          skuId: sku.skuId,
          skuPartNumber: sku.skuPartNumber,
          totalLicenses: subscription.totalLicenses,
          status: subscription.status,
          isTrial: false,
          createdDateTime: subscription.createdDateTime,
          nextLifecycleDateTime: subscription.nextLifecycleDateTime,
          ownerTenantId: subscription.ownerTenantId,
        },
      );
    },
  };
}
