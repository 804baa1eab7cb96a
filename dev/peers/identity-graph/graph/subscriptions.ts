import type { SubscriptionRecord, TenantState } from '../state.js';
import { FilterSyntaxError, parseFilter } from './filter.js';
import {
  badRequest,
  contextUrl,
  denied,
  graphError,
  notFound,
  parseSelect,
  permissions,
  project,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';

/** resources/companysubscription.md (the JSON representation and the list/get examples). */
export function subscriptionView(tenant: TenantState, sub: SubscriptionRecord): Record<string, unknown> {
  const sku = tenant.skus.get(sub.skuId);
  return {
    commerceSubscriptionId: sub.commerceSubscriptionId,
    createdDateTime: sub.createdDateTime,
    id: sub.id,
    isTrial: sub.isTrial,
    nextLifecycleDateTime: sub.nextLifecycleDateTime,
    ownerId: sub.ownerId,
    ownerTenantId: sub.ownerTenantId,
    ownerType: sub.ownerType,
    serviceStatus: (sku?.servicePlans ?? []).map((p) => ({
      appliesTo: sku?.appliesTo ?? 'User',
      provisioningStatus: sub.status === 'Deleted' ? 'Disabled' : 'Success',
      servicePlanId: p.servicePlanId,
      servicePlanName: p.servicePlanName,
    })),
    skuId: sub.skuId,
    skuPartNumber: sub.skuPartNumber,
    status: sub.status,
    totalLicenses: sub.totalLicenses,
  };
}

const subscriptionDefaults = [
  'commerceSubscriptionId',
  'createdDateTime',
  'id',
  'isTrial',
  'nextLifecycleDateTime',
  'ownerId',
  'ownerTenantId',
  'ownerType',
  'serviceStatus',
  'skuId',
  'skuPartNumber',
  'status',
  'totalLicenses',
];

/** permissions of directory-list-subscriptions.md / companysubscription-get.md (application). */
const readSubscriptions = [
  'Organization.Read.All',
  'Directory.Read.All',
  'Organization.ReadWrite.All',
  'Directory.ReadWrite.All',
];

/** GET /directory/subscriptions (directory-list-subscriptions.md). */
export function listSubscriptions(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, readSubscriptions);
  if (forbidden !== undefined) return forbidden;
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'directory/subscriptions', select, false),
      value: [...ctx.tenant.subscriptions.values()]
        .sort((a, b) => a.createdDateTime.localeCompare(b.createdDateTime) || a.id.localeCompare(b.id))
        .map((sub) => project(subscriptionView(ctx.tenant, sub), select, subscriptionDefaults)),
    },
  };
}

/**
 * GET /directory/subscriptions/{id} and GET /directory/subscriptions(commerceSubscriptionId='{id}')
 * (companysubscription-get.md; commerceSubscriptionId is the alternate key of resources/companysubscription.md).
 */
export function getSubscription(ctx: GraphContext, req: GraphRequest, segment: string): GraphResponse {
  const forbidden = denied(ctx, readSubscriptions);
  if (forbidden !== undefined) return forbidden;
  let sub: SubscriptionRecord | undefined;
  const alternate = /^subscriptions\(commerceSubscriptionId='(.*)'\)$/.exec(segment);
  if (alternate?.[1] !== undefined) {
    sub = ctx.tenant.findSubscriptionByCommerceId(alternate[1].replace(/''/g, "'"));
  } else if (segment.startsWith('subscriptions(')) {
    return badRequest(
      ctx,
      `Invalid key '${segment.slice('subscriptions'.length)}': use (commerceSubscriptionId='…').`,
    );
  } else {
    sub = ctx.tenant.subscriptions.get(segment.toLowerCase());
  }
  if (sub === undefined) return notFound(ctx, alternate?.[1] ?? segment);
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'directory/subscriptions', select, true),
      ...project(subscriptionView(ctx.tenant, sub), select, subscriptionDefaults),
    },
  };
}

function contractView(customer: TenantState): Record<string, unknown> {
  const defaultDomain = [...customer.domains.values()].find((d) => d.isDefault) ?? customer.initialDomain();
  return {
    contractType: customer.contractType,
    customerId: customer.id,
    defaultDomainName: defaultDomain?.id ?? null,
    displayName: customer.displayName,
    id: customer.contractId,
  };
}

const contractFilterable = new Set(['customerId', 'defaultDomainName', 'displayName']);

/**
 * GET /contracts[/{id}] (contract-list.md, contract-get.md, resources/contract.md): in a partner tenant,
 * one contract per customer tenant whose seed names it as partnerTenantId; $filter on customerId,
 * defaultDomainName and displayName.
 */
export function contracts(ctx: GraphContext, req: GraphRequest, id: string | undefined): GraphResponse {
  const forbidden = denied(ctx, permissions.readContracts);
  if (forbidden !== undefined) return forbidden;
  let customers = [...ctx.state.tenants.values()].filter((t) => t.partnerTenantId === ctx.tenant.id);
  if (id !== undefined) {
    const customer = customers.find((t) => t.contractId === id.toLowerCase());
    if (customer === undefined) return notFound(ctx, id);
    return {
      status: 200,
      body: { '@odata.context': contextUrl(ctx, 'contracts', undefined, true), ...contractView(customer) },
    };
  }
  const filterText = req.query.get('$filter');
  if (filterText !== null) {
    let parsed;
    try {
      parsed = parseFilter(filterText);
    } catch (error) {
      return badRequest(
        ctx,
        `Invalid filter clause: ${error instanceof FilterSyntaxError ? error.message : 'syntax error'}`,
      );
    }
    for (const property of parsed.properties) {
      if (!contractFilterable.has(property))
        return graphError(
          ctx,
          400,
          'Request_UnsupportedQuery',
          `Unsupported or invalid query filter clause specified for property '${property}' of resource 'Contract'.`,
        );
    }
    customers = customers.filter((c) => {
      const view = contractView(c);
      return parsed.test((p) => view[p]);
    });
  }
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'contracts', select, false),
      value: customers.map((c) => project(contractView(c), select, Object.keys(contractView(c)))),
    },
  };
}
