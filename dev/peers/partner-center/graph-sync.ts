/**
 * Keeps the Graph peer's view of a customer tenant in step with Partner Center: tenant creation with
 * its initial domain and admin user, consent for the partner's apps, and `prepaidUnits.enabled` per SKU
 * equal to the active seats Partner Center holds for it. Talks only to the identity-graph peer's
 * admin API.
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
    async createCustomerTenant({ tenantId, displayName, initialDomain, adminUserPrincipalName }) {
      await call(
        'POST',
        '/tenants',
        {
          id: tenantId,
          displayName,
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
  };
}
