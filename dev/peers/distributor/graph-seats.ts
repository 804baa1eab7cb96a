import { graphAdminClient, GraphAdminError, type GraphTenantSync } from '../partner-center/graph-sync.js';

/**
 * What the distributor peer needs of the identity-graph peer's admin API. Tenants are created with the
 * Partner Center peer's client; seats go per subscription: each distributor subscription of a Microsoft
 * product is its own Graph companySubscription with `commerceSubscriptionId` = the Pax8
 * `vendorSubscriptionId` (Microsoft's id for it), so these seats sit beside Partner Center's seats of
 * the same SKU instead of overwriting that SKU's total (the Partner Center client's `setSeats` writes
 * one number per SKU).
 */
export interface DistributorGraph {
  createCustomerTenant: GraphTenantSync['createCustomerTenant'];
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
      status: 'Enabled' | 'Deleted';
      createdDateTime: string;
      nextLifecycleDateTime: string | null;
    },
  ): Promise<void>;
}

export function distributorGraph(adminUrl: string): DistributorGraph {
  const base = adminUrl.replace(/\/+$/, '');
  const tenants = graphAdminClient(adminUrl);
  /** SKUs whose service plans were given to the tenant already. */
  const knownSkus = new Set<string>();
  const put = async (path: string, body: unknown): Promise<void> => {
    const response = await fetch(`${base}${path}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    await response.arrayBuffer();
    if (!response.ok)
      throw new GraphAdminError(`graph admin PUT ${path} answered ${response.status}`, response.status);
  };
  return {
    createCustomerTenant: (input) => tenants.createCustomerTenant(input),
    async putSubscription(tenantId, sku, subscription) {
      const tenant = encodeURIComponent(tenantId);
      const key = `${tenantId}|${sku.skuId}`.toLowerCase();
      if (!knownSkus.has(key)) {
        // The SKU PUT carries the service plans; with commerceSubscriptionId its seats go to that subscription.
        await put(`/tenants/${tenant}/skus/${encodeURIComponent(sku.skuId)}`, {
          skuPartNumber: sku.skuPartNumber,
          servicePlans: sku.servicePlans,
          enabled: subscription.totalLicenses,
          commerceSubscriptionId: subscription.commerceSubscriptionId,
        });
        knownSkus.add(key);
      }
      await put(
        `/tenants/${tenant}/subscriptions/${encodeURIComponent(subscription.commerceSubscriptionId)}`,
        {
          skuId: sku.skuId,
          skuPartNumber: sku.skuPartNumber,
          totalLicenses: subscription.totalLicenses,
          status: subscription.status,
          isTrial: false,
          createdDateTime: subscription.createdDateTime,
          nextLifecycleDateTime: subscription.nextLifecycleDateTime,
        },
      );
    },
  };
}
