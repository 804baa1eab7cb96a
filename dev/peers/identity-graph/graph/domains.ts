import { randomInt } from 'node:crypto';
import type { DomainRecord } from '../state.js';
import {
  badRequest,
  contextUrl,
  denied,
  invalidValue,
  isRecord,
  notFound,
  permissions,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';
import { domainView } from './directory.js';

const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function validName(name: string): boolean {
  const labels = name.split('.');
  return name.length <= 255 && labels.length >= 2 && labels.every((l) => label.test(l));
}

/** The closest domain of the tenant that `name` is a subdomain of. */
function parentOf(ctx: GraphContext, name: string): DomainRecord | undefined {
  const labels = name.split('.');
  for (let i = 1; i < labels.length - 1; i++) {
    const parent = ctx.tenant.domains.get(labels.slice(i).join('.'));
    if (parent !== undefined) return parent;
  }
  return undefined;
}

function code(domain: DomainRecord): string {
  domain.verificationCode ??= `MS=ms${String(randomInt(10_000_000, 99_999_999))}`;
  return domain.verificationCode;
}

/**
 * POST /domains (domain-post-domains.md): `id` is the only property and is required; the domain starts
 * unverified, except a subdomain of a verified domain, which is verified at once (same page).
 */
export function createDomain(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.writeDomains);
  if (forbidden !== undefined) return forbidden;
  const body = req.body;
  if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
  for (const key of Object.keys(body)) {
    if (key !== 'id' && !key.startsWith('@odata.'))
      return badRequest(ctx, `Property '${key}' cannot be set when creating a domain; only id can.`);
  }
  const id = body['id'];
  if (typeof id !== 'string' || !validName(id.toLowerCase())) return invalidValue(ctx, 'id', 'Domain');
  const name = id.toLowerCase();
  // The tenant's initial domain is the only onmicrosoft.com name it gets (inferred: Entra refuses others).
  if (name.endsWith('.onmicrosoft.com')) return invalidValue(ctx, 'id', 'Domain');
  // Inferred message (the doc lists no errors): the same wording as other duplicate keys.
  if (ctx.tenant.domains.has(name))
    return badRequest(ctx, 'Another object with the same value for property id already exists.');
  const parent = parentOf(ctx, name);
  const domain: DomainRecord = {
    id: name,
    authenticationType: parent?.authenticationType ?? 'Managed',
    isDefault: false,
    isInitial: false,
    isVerified: parent?.isVerified === true,
    supportedServices: [],
    isRoot: parent === undefined,
  };
  ctx.tenant.domains.set(name, domain);
  return {
    status: 201,
    headers: { Location: `${ctx.graphBaseUrl}/domains/${name}` },
    body: { '@odata.context': contextUrl(ctx, 'domains', undefined, true), ...domainView(domain) },
  };
}

/**
 * GET /domains/{id}/verificationDnsRecords (domain-list-verificationdnsrecords.md, resources/domaindnsrecord.md,
 * domaindnstxtrecord.md, domaindnsmxrecord.md): the TXT record, and the MX alternative, to publish.
 */
export function verificationDnsRecords(ctx: GraphContext, domainId: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readDomains);
  if (forbidden !== undefined) return forbidden;
  const domain = ctx.tenant.domains.get(domainId.toLowerCase());
  if (domain === undefined) return notFound(ctx, domainId);
  const value = code(domain);
  return {
    status: 200,
    body: {
      '@odata.context': `${ctx.graphBaseUrl}/$metadata#domains('${domain.id}')/verificationDnsRecords`,
      value: [
        {
          '@odata.type': '#microsoft.graph.domainDnsTxtRecord',
          id: `aceff52c-06a5-447f-ac5f-256ad243cc5c-${domain.id}-txt`,
          isOptional: false,
          label: domain.id,
          recordType: 'Txt',
          supportedService: 'Email',
          ttl: 3600,
          text: value,
        },
        {
          '@odata.type': '#microsoft.graph.domainDnsMxRecord',
          id: `5fbde38c-0865-497f-82b1-126f596bcee9-${domain.id}-mx`,
          isOptional: false,
          label: domain.id,
          recordType: 'Mx',
          supportedService: 'Email',
          ttl: 3600,
          mailExchange: `${value.slice(3)}.msv1.invalid`,
          preference: 32767,
        },
      ],
    },
  };
}

/**
 * POST /domains/{id}/verify (domain-verify.md): 200 with the domain once ownership is proven. There is no
 * DNS here, so the record counts as published unless a test marked it missing. The failure messages
 * are inferred (the doc lists none); they are what Entra is widely seen to answer.
 */
export function verifyDomain(ctx: GraphContext, domainId: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeDomains);
  if (forbidden !== undefined) return forbidden;
  const domain = ctx.tenant.domains.get(domainId.toLowerCase());
  if (domain === undefined) return notFound(ctx, domainId);
  // domain-verify.md: "Only applies to an unverified domain."
  if (domain.isVerified) return badRequest(ctx, `Domain ${domain.id} is already verified.`);
  for (const other of ctx.state.tenants.values()) {
    if (other !== ctx.tenant && other.domains.get(domain.id)?.isVerified === true)
      return badRequest(
        ctx,
        `Domain verification failed with the following error: The domain ${domain.id} is already verified in another tenant.`,
      );
  }
  if (domain.verificationRecordMissing === true)
    return badRequest(
      ctx,
      `Domain verification failed with the following error: Unable to verify domain ${domain.id}. The DNS record for domain verification was not found.`,
    );
  domain.isVerified = true;
  domain.supportedServices = ['Email', 'OfficeCommunicationsOnline'];
  // Subdomains added before their root was verified are verified with it.
  for (const other of ctx.tenant.domains.values())
    if (other.id.endsWith(`.${domain.id}`)) other.isVerified = true;
  return {
    status: 200,
    body: { '@odata.context': contextUrl(ctx, 'domains', undefined, true), ...domainView(domain) },
  };
}

function referencesOf(ctx: GraphContext, domain: DomainRecord): { id: string; kind: string }[] {
  const suffix = `@${domain.id}`;
  const refs: { id: string; kind: string }[] = [];
  for (const user of ctx.tenant.users.values()) {
    if (user.purged === true) continue;
    if (String(user.props['userPrincipalName']).toLowerCase().endsWith(suffix))
      refs.push({ id: user.id, kind: 'user' });
  }
  for (const group of ctx.tenant.groups.values()) {
    const mail = group.props['mail'];
    if (typeof mail === 'string' && mail.toLowerCase().endsWith(suffix))
      refs.push({ id: group.id, kind: 'group' });
  }
  return refs;
}

/** GET /domains/{id}/domainNameReferences (domain-list-domainnamereferences.md): users and groups using it. */
export function domainNameReferences(ctx: GraphContext, domainId: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readDomains);
  if (forbidden !== undefined) return forbidden;
  const domain = ctx.tenant.domains.get(domainId.toLowerCase());
  if (domain === undefined) return notFound(ctx, domainId);
  return {
    status: 200,
    body: {
      '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryObjects`,
      value: referencesOf(ctx, domain).map((r) => ({
        '@odata.type': `#microsoft.graph.${r.kind}`,
        id: r.id,
      })),
    },
  };
}

/**
 * DELETE /domains/{id} (domain-delete.md): 204; it fails while objects still depend on the domain
 * (soft-deleted users included, until purged). The initial and the default domain cannot be deleted.
 */
export function deleteDomain(ctx: GraphContext, domainId: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeDomains);
  if (forbidden !== undefined) return forbidden;
  const domain = ctx.tenant.domains.get(domainId.toLowerCase());
  if (domain === undefined) return notFound(ctx, domainId);
  if (domain.isInitial) return badRequest(ctx, 'The initial domain of the tenant cannot be deleted.');
  if (domain.isDefault) return badRequest(ctx, 'The default domain of the tenant cannot be deleted.');
  if (referencesOf(ctx, domain).length > 0)
    return badRequest(
      ctx,
      `Unable to delete domain ${domain.id}: it is referenced by one or more objects (see domainNameReferences).`,
    );
  ctx.tenant.domains.delete(domain.id);
  ctx.tenant.federation.delete(domain.id);
  return { status: 204 };
}
