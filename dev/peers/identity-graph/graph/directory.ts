import { randomUUID } from 'node:crypto';
import type { DomainRecord, SkuRecord, TenantState } from '../state.js';
import {
  badRequest,
  contextUrl,
  denied,
  graphError,
  invalidValue,
  isRecord,
  notFound,
  parseSelect,
  permissions,
  project,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';

export function domainView(domain: DomainRecord): Record<string, unknown> {
  return {
    authenticationType: domain.authenticationType,
    availabilityStatus: null,
    id: domain.id,
    isAdminManaged: true,
    isDefault: domain.isDefault,
    isInitial: domain.isInitial,
    isRoot: domain.isRoot ?? true,
    isVerified: domain.isVerified,
    passwordNotificationWindowInDays: null,
    passwordValidityPeriodInDays: null,
    supportedServices: domain.supportedServices,
    state: null,
  };
}

export function organizationView(tenant: TenantState): Record<string, unknown> {
  return {
    id: tenant.id,
    displayName: tenant.displayName,
    createdDateTime: tenant.createdDateTime,
    tenantType: 'AAD',
    countryLetterCode: 'NL',
    businessPhones: [],
    city: null,
    country: null,
    postalCode: null,
    preferredLanguage: 'en',
    state: null,
    street: null,
    technicalNotificationMails: [],
    onPremisesSyncEnabled: null,
    // resources/organization.md: the partnership type of a partner tenant, null otherwise.
    partnerTenantType: tenant.partnerTenantType ?? null,
    verifiedDomains: [...tenant.domains.values()]
      .filter((d) => d.isVerified)
      .map((d) => ({
        capabilities: d.supportedServices.join(', '),
        isDefault: d.isDefault,
        isInitial: d.isInitial,
        name: d.id,
        type: d.authenticationType,
      })),
  };
}

export function listOrganization(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readOrganization);
  if (forbidden !== undefined) return forbidden;
  const select = parseSelect(req.query);
  const org = organizationView(ctx.tenant);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'organization', select, false),
      value: [select === undefined ? org : project(org, select, [])],
    },
  };
}

export function getOrganization(ctx: GraphContext, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readOrganization);
  if (forbidden !== undefined) return forbidden;
  if (id.toLowerCase() !== ctx.tenant.id) return notFound(ctx, id);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'organization', undefined, true),
      ...organizationView(ctx.tenant),
    },
  };
}

export function listDomains(ctx: GraphContext): GraphResponse {
  const forbidden = denied(ctx, permissions.readDomains);
  if (forbidden !== undefined) return forbidden;
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'domains', undefined, false),
      value: [...ctx.tenant.domains.values()].map(domainView),
    },
  };
}

export function getDomain(ctx: GraphContext, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readDomains);
  if (forbidden !== undefined) return forbidden;
  const domain = ctx.tenant.domains.get(id.toLowerCase());
  if (domain === undefined) return notFound(ctx, id);
  return {
    status: 200,
    body: { '@odata.context': contextUrl(ctx, 'domains', undefined, true), ...domainView(domain) },
  };
}

const federationProperties = new Set([
  'displayName',
  'issuerUri',
  'metadataExchangeUri',
  'signingCertificate',
  'passiveSignInUri',
  'preferredAuthenticationProtocol',
  'activeSignInUri',
  'signOutUri',
  'promptLoginBehavior',
  'isSignedAuthenticationRequestRequired',
  'nextSigningCertificate',
  'federatedIdpMfaBehavior',
  'passwordResetUri',
]);
const enums: Record<string, string[]> = {
  preferredAuthenticationProtocol: ['wsFed', 'saml'],
  promptLoginBehavior: ['translateToFreshPasswordAuthentication', 'nativeSupport', 'disabled'],
  federatedIdpMfaBehavior: [
    'acceptIfMfaDoneByFederatedIdp',
    'enforceMfaByFederatedIdp',
    'rejectMfaByFederatedIdp',
  ],
};

function validateFederation(ctx: GraphContext, body: Record<string, unknown>): GraphResponse | undefined {
  for (const [key, value] of Object.entries(body)) {
    if (key === '@odata.type') {
      if (value !== '#microsoft.graph.internalDomainFederation')
        return invalidValue(ctx, key, 'InternalDomainFederation');
      continue;
    }
    if (!federationProperties.has(key))
      return badRequest(
        ctx,
        `Property '${key}' does not exist as a declared property or extension property.`,
      );
    const allowed = enums[key];
    if (allowed !== undefined && (typeof value !== 'string' || !allowed.includes(value)))
      return invalidValue(ctx, key, 'InternalDomainFederation');
    if (key === 'isSignedAuthenticationRequestRequired' && typeof value !== 'boolean')
      return invalidValue(ctx, key, 'InternalDomainFederation');
    if (
      allowed === undefined &&
      key !== 'isSignedAuthenticationRequestRequired' &&
      value !== null &&
      typeof value !== 'string'
    ) {
      return invalidValue(ctx, key, 'InternalDomainFederation');
    }
  }
  return undefined;
}

function federationView(ctx: GraphContext, domainId: string): Record<string, unknown> | undefined {
  const record = ctx.tenant.federation.get(domainId);
  if (record === undefined) return undefined;
  return { '@odata.type': '#microsoft.graph.internalDomainFederation', id: record.id, ...record.props };
}

/** /domains/{id}/federationConfiguration[/{fid}] (domain-post-federationconfiguration.md and siblings). */
export function federation(
  ctx: GraphContext,
  req: GraphRequest,
  domainId: string,
  federationId: string | undefined,
): GraphResponse {
  const writing = req.method !== 'GET';
  const forbidden = denied(ctx, writing ? permissions.writeDomains : permissions.readDomains);
  if (forbidden !== undefined) return forbidden;
  const domain = ctx.tenant.domains.get(domainId.toLowerCase());
  if (domain === undefined) return notFound(ctx, domainId);
  const existing = ctx.tenant.federation.get(domain.id);
  const entityContext = `${ctx.graphBaseUrl}/$metadata#domains('${domain.id}')/federationConfiguration`;
  if (federationId === undefined) {
    if (req.method === 'GET') {
      // domain-list-federationconfiguration.md: one item, or 404 when the domain is not federated.
      const view = federationView(ctx, domain.id);
      if (view === undefined) return notFound(ctx, `${domain.id}/federationConfiguration`);
      return { status: 200, body: { '@odata.context': entityContext, value: [view] } };
    }
    if (req.method !== 'POST') return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    if (domain.isInitial) return badRequest(ctx, 'The initial domain of the tenant cannot be federated.');
    if (existing !== undefined)
      return graphError(
        ctx,
        409,
        'Request_MultipleObjectsWithSameKeyValue',
        `Domain '${domain.id}' is already federated.`,
      );
    const body = req.body;
    if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
    const failure = validateFederation(ctx, body);
    if (failure !== undefined) return failure;
    // Without these the federation cannot work; Entra refuses them (inferred: the doc lists no required set).
    for (const required of ['issuerUri', 'passiveSignInUri', 'signingCertificate']) {
      if (typeof body[required] !== 'string' || body[required] === '')
        return invalidValue(ctx, required, 'InternalDomainFederation');
    }
    const props: Record<string, unknown> = {
      displayName: null,
      issuerUri: null,
      metadataExchangeUri: null,
      signingCertificate: null,
      passiveSignInUri: null,
      preferredAuthenticationProtocol: 'wsFed',
      activeSignInUri: null,
      signOutUri: null,
      promptLoginBehavior: 'nativeSupport',
      isSignedAuthenticationRequestRequired: false,
      nextSigningCertificate: null,
      federatedIdpMfaBehavior: 'acceptIfMfaDoneByFederatedIdp',
      passwordResetUri: null,
      signingCertificateUpdateStatus: {
        certificateUpdateResult: 'Success',
        lastRunDateTime: ctx.state.clock.now().toISOString(),
      },
    };
    for (const [k, v] of Object.entries(body)) if (k !== '@odata.type') props[k] = v;
    const id = randomUUID();
    ctx.tenant.federation.set(domain.id, { id, props });
    domain.authenticationType = 'Federated';
    return {
      status: 201,
      headers: { Location: `${ctx.graphBaseUrl}/domains/${domain.id}/federationConfiguration/${id}` },
      body: { '@odata.context': `${entityContext}/$entity`, ...federationView(ctx, domain.id) },
    };
  }
  if (existing === undefined || existing.id !== federationId.toLowerCase())
    return notFound(ctx, federationId);
  if (req.method === 'GET')
    return {
      status: 200,
      body: { '@odata.context': `${entityContext}/$entity`, ...federationView(ctx, domain.id) },
    };
  if (req.method === 'PATCH') {
    const body = req.body;
    if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
    const failure = validateFederation(ctx, body);
    if (failure !== undefined) return failure;
    for (const [k, v] of Object.entries(body)) if (k !== '@odata.type') existing.props[k] = v;
    return {
      status: 200,
      body: { '@odata.context': `${entityContext}/$entity`, ...federationView(ctx, domain.id) },
    };
  }
  if (req.method === 'DELETE') {
    ctx.tenant.federation.delete(domain.id);
    domain.authenticationType = 'Managed';
    return { status: 204 };
  }
  return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
}

export function skuView(tenant: TenantState, sku: SkuRecord): Record<string, unknown> {
  return {
    accountName: tenant.displayName,
    accountId: tenant.id,
    appliesTo: sku.appliesTo,
    // subscribedsku.md / licenseunitsdetail.md: units and status follow the SKU's companySubscriptions.
    capabilityStatus: tenant.capabilityStatus(sku.skuId),
    consumedUnits: tenant.consumedUnits(sku.skuId),
    id: `${tenant.id}_${sku.skuId}`,
    prepaidUnits: tenant.prepaidUnits(sku.skuId),
    servicePlans: sku.servicePlans.map((p) => ({
      servicePlanId: p.servicePlanId,
      servicePlanName: p.servicePlanName,
      provisioningStatus: 'Success',
      appliesTo: sku.appliesTo,
    })),
    skuId: sku.skuId,
    skuPartNumber: sku.skuPartNumber,
    subscriptionIds: tenant.subscriptionsOf(sku.skuId).map((sub) => sub.id),
  };
}

const skuDefaults = [
  'accountName',
  'accountId',
  'appliesTo',
  'capabilityStatus',
  'consumedUnits',
  'id',
  'prepaidUnits',
  'servicePlans',
  'skuId',
  'skuPartNumber',
  'subscriptionIds',
];

export function listSkus(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readSkus);
  if (forbidden !== undefined) return forbidden;
  // subscribedsku-list.md: only $select is supported.
  if (req.query.has('$filter'))
    return graphError(
      ctx,
      400,
      'Request_UnsupportedQuery',
      'The query option $filter is not supported on subscribedSkus.',
    );
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'subscribedSkus', select, false),
      value: [...ctx.tenant.skus.values()].map((sku) =>
        project(skuView(ctx.tenant, sku), select, skuDefaults),
      ),
    },
  };
}

export function getSku(ctx: GraphContext, req: GraphRequest, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readSkus);
  if (forbidden !== undefined) return forbidden;
  const skuId = id.toLowerCase().startsWith(`${ctx.tenant.id}_`)
    ? id.toLowerCase().slice(ctx.tenant.id.length + 1)
    : '';
  const sku = ctx.tenant.skus.get(skuId);
  if (sku === undefined) return notFound(ctx, id);
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'subscribedSkus', select, true),
      ...project(skuView(ctx.tenant, sku), select, skuDefaults),
    },
  };
}
