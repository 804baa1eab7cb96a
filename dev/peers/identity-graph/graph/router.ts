import { costOf } from '../faults.js';
import { graphError, isRecord, type GraphContext, type GraphRequest, type GraphResponse } from './context.js';
import {
  federation,
  getDomain,
  getOrganization,
  getSku,
  listDomains,
  listOrganization,
  listSkus,
} from './directory.js';
import { deletedItems } from './deleted.js';
import { directoryRoles } from './roles.js';
import { tenantRelationships } from './gdap.js';
import { applications, availableExtensionProperties } from './extensions.js';
import {
  createDomain,
  deleteDomain,
  domainNameReferences,
  verificationDnsRecords,
  verifyDomain,
} from './domains.js';
import { contracts, getSubscription, listSubscriptions } from './subscriptions.js';
import { groupDelta, userDelta } from './delta.js';
import { groupAssignLicense, reprocessLicenseAssignment } from './group-licensing.js';
import {
  addMember,
  createGroup,
  deleteGroup,
  getGroup,
  listGroups,
  listMembers,
  removeMember,
} from './groups.js';
import {
  assignLicense,
  countUsers,
  createUser,
  deleteUser,
  getUser,
  listUsers,
  updateUser,
  userKey,
} from './users.js';

function methodNotAllowed(ctx: GraphContext): GraphResponse {
  return graphError(
    ctx,
    405,
    'Request_BadRequest',
    'Specified HTTP method is not allowed for the request uri.',
  );
}

function unknownSegment(ctx: GraphContext, segment: string): GraphResponse {
  return graphError(ctx, 400, 'BadRequest', `Resource not found for the segment '${segment}'.`);
}

/** `/users('a@b')` arrives as one segment; split it into the two the routes expect. */
function normalise(segments: string[]): string[] {
  const first = segments[0] ?? '';
  const keyed = /^(users|groups|applications)(\(.*\))$/.exec(first);
  if (keyed?.[1] !== undefined && keyed[2] !== undefined) return [keyed[1], keyed[2], ...segments.slice(1)];
  return segments;
}

function route(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const s = normalise(req.segments);
  const m = req.method;
  const [root, a, b, c, d] = s;
  switch (root) {
    case 'organization':
      if (m !== 'GET') return methodNotAllowed(ctx);
      if (a === undefined) return listOrganization(ctx, req);
      if (b === undefined) return getOrganization(ctx, a);
      break;
    case 'domains':
      if (a === undefined) {
        if (m === 'GET') return listDomains(ctx);
        if (m === 'POST') return createDomain(ctx, req);
        return methodNotAllowed(ctx);
      }
      if (b === undefined) {
        if (m === 'GET') return getDomain(ctx, a);
        if (m === 'DELETE') return deleteDomain(ctx, a);
        return methodNotAllowed(ctx);
      }
      if (b === 'verificationDnsRecords' && c === undefined)
        return m === 'GET' ? verificationDnsRecords(ctx, a) : methodNotAllowed(ctx);
      if (b === 'verify' && c === undefined)
        return m === 'POST' ? verifyDomain(ctx, a) : methodNotAllowed(ctx);
      if (b === 'domainNameReferences' && c === undefined)
        return m === 'GET' ? domainNameReferences(ctx, a) : methodNotAllowed(ctx);
      if (b === 'federationConfiguration' && d === undefined) return federation(ctx, req, a, c);
      break;
    case 'users': {
      if (a === undefined) {
        if (m === 'GET') return listUsers(ctx, req);
        if (m === 'POST') return createUser(ctx, req);
        return methodNotAllowed(ctx);
      }
      if (a === '$count' && b === undefined)
        return m === 'GET' ? countUsers(ctx, req) : methodNotAllowed(ctx);
      if (a === 'delta' && b === undefined) return m === 'GET' ? userDelta(ctx, req) : methodNotAllowed(ctx);
      const key = userKey(ctx, a);
      if (typeof key !== 'string') return key;
      if (b === undefined) {
        if (m === 'GET') return getUser(ctx, req, key);
        if (m === 'PATCH') return updateUser(ctx, req, key);
        if (m === 'DELETE') return deleteUser(ctx, key);
        return methodNotAllowed(ctx);
      }
      if (b === 'assignLicense' && c === undefined)
        return m === 'POST' ? assignLicense(ctx, req, key) : methodNotAllowed(ctx);
      if (b === 'reprocessLicenseAssignment' && c === undefined)
        return m === 'POST' ? reprocessLicenseAssignment(ctx, key) : methodNotAllowed(ctx);
      break;
    }
    case 'groups':
      if (a === undefined) {
        if (m === 'GET') return listGroups(ctx, req);
        if (m === 'POST') return createGroup(ctx, req);
        return methodNotAllowed(ctx);
      }
      if (a === 'delta' && b === undefined) return m === 'GET' ? groupDelta(ctx, req) : methodNotAllowed(ctx);
      if (b === undefined) {
        if (m === 'GET') return getGroup(ctx, req, a);
        if (m === 'DELETE') return deleteGroup(ctx, a);
        return methodNotAllowed(ctx);
      }
      if (b === 'assignLicense' && c === undefined)
        return m === 'POST' ? groupAssignLicense(ctx, req, a) : methodNotAllowed(ctx);
      if (b === 'members') {
        if (c === undefined) return m === 'GET' ? listMembers(ctx, req, a) : methodNotAllowed(ctx);
        if (c === '$ref' && d === undefined)
          return m === 'POST' ? addMember(ctx, req, a) : methodNotAllowed(ctx);
        if (d === '$ref' && s.length === 5)
          return m === 'DELETE' ? removeMember(ctx, a, c) : methodNotAllowed(ctx);
      }
      break;
    case 'directoryRoles':
      if (m !== 'GET') return methodNotAllowed(ctx);
      if (c === undefined) return directoryRoles(ctx, a, b);
      break;
    case 'subscribedSkus':
      if (m !== 'GET') return methodNotAllowed(ctx);
      if (a === undefined) return listSkus(ctx, req);
      if (b === undefined) return getSku(ctx, req, a);
      break;
    case 'directory':
      if (a === 'deletedItems' && d === undefined) return deletedItems(ctx, m, b, c);
      if (a === 'subscriptions' && b === undefined)
        return m === 'GET' ? listSubscriptions(ctx, req) : methodNotAllowed(ctx);
      if (a === 'subscriptions' && b !== undefined && c === undefined)
        return m === 'GET' ? getSubscription(ctx, req, b) : methodNotAllowed(ctx);
      if (a?.startsWith('subscriptions(') === true && b === undefined)
        return m === 'GET' ? getSubscription(ctx, req, a) : methodNotAllowed(ctx);
      break;
    case 'applications':
      return applications(ctx, req, s.slice(1));
    case 'directoryObjects':
      if (a === 'getAvailableExtensionProperties' && b === undefined)
        return m === 'POST' ? availableExtensionProperties(ctx) : methodNotAllowed(ctx);
      break;
    case 'tenantRelationships':
      return tenantRelationships(ctx, req, s.slice(1));
    case 'contracts':
      if (b !== undefined) break;
      return m === 'GET' ? contracts(ctx, req, a) : methodNotAllowed(ctx);
    case '$batch':
      if (a === undefined) return m === 'POST' ? runBatch(ctx, req) : methodNotAllowed(ctx);
      break;
    default:
      return unknownSegment(ctx, root ?? '');
  }
  return unknownSegment(ctx, s[s.length - 1] ?? '');
}

/** One Graph request with the configured faults applied first (each batch item is throttled on its own). */
export function handleGraph(ctx: GraphContext, req: GraphRequest): GraphResponse {
  ctx.tenant.purgeExpired(ctx.state.clock.nowMs());
  if (req.segments[0] === '$batch' && !ctx.inBatch) return route(ctx, req);
  if (ctx.faults.should503()) {
    const headers: Record<string, string> = {};
    if (ctx.faults.retryAfter503InSeconds !== undefined)
      headers['Retry-After'] = String(ctx.faults.retryAfter503InSeconds);
    return graphError(
      ctx,
      503,
      'serviceNotAvailable',
      'The service is temporarily unavailable. Please retry later.',
      headers,
    );
  }
  const charge = ctx.faults.charge(
    ctx.token.appId,
    ctx.tenant.id,
    ctx.tenant.liveUsers().length,
    costOf(req.method, req.segments, req.query),
  );
  if (charge.throttled) {
    // concepts/throttling.md: 429, Retry-After in seconds, and this body.
    return {
      status: 429,
      headers: { ...charge.headers, 'Retry-After': String(charge.retryAfterInSeconds) },
      body: {
        error: {
          code: 'TooManyRequests',
          message: 'Please retry again later.',
          innerError: {
            code: '429',
            date: new Date().toISOString().replace(/\.\d+Z$/, ''),
            'request-id': ctx.requestId,
            'client-request-id': ctx.clientRequestId,
            status: '429',
          },
        },
      },
    };
  }
  const response = route(ctx, req);
  return { ...response, headers: { ...charge.headers, ...response.headers } };
}

interface BatchItem {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  dependsOn: string[];
}

function batchError(ctx: GraphContext, message: string): GraphResponse {
  return graphError(ctx, 400, 'BadRequest', message);
}

/** POST /$batch (concepts/json-batching.md). */
function runBatch(ctx: GraphContext, req: GraphRequest): GraphResponse {
  if (ctx.inBatch) return batchError(ctx, 'Nested batch requests are not supported.');
  const requests = isRecord(req.body) ? req.body['requests'] : undefined;
  if (!Array.isArray(requests)) return batchError(ctx, 'Invalid batch payload format.');
  if (requests.length === 0) return batchError(ctx, 'Invalid batch payload format: no requests.');
  if (requests.length > 20) return batchError(ctx, 'Number of requests in a batch exceeds the limit of 20.');
  const items: BatchItem[] = [];
  const seen = new Set<string>();
  for (const raw of requests) {
    if (
      !isRecord(raw) ||
      typeof raw['id'] !== 'string' ||
      raw['id'] === '' ||
      typeof raw['method'] !== 'string' ||
      typeof raw['url'] !== 'string'
    ) {
      return batchError(ctx, 'Invalid batch payload format: every request needs id, method and url.');
    }
    const id = raw['id'];
    if (seen.has(id.toLowerCase()))
      return batchError(ctx, `Batch request contains duplicate request id '${id}'.`);
    seen.add(id.toLowerCase());
    const url = raw['url'];
    if (/^[a-z]+:\/\//i.test(url)) return batchError(ctx, `Request '${id}': the url must be relative.`);
    const headers: Record<string, string> = {};
    if (isRecord(raw['headers']))
      for (const [k, v] of Object.entries(raw['headers'])) headers[k.toLowerCase()] = String(v);
    if (raw['body'] !== undefined && headers['content-type'] === undefined) {
      return batchError(ctx, `Request '${id}': a Content-Type header is required when a body is present.`);
    }
    const dependsOn = Array.isArray(raw['dependsOn']) ? raw['dependsOn'].map(String) : [];
    items.push({ id, method: raw['method'].toUpperCase(), url, headers, body: raw['body'], dependsOn });
  }
  for (const item of items) {
    for (const dep of item.dependsOn) {
      if (!seen.has(dep.toLowerCase()))
        return batchError(ctx, `Request '${item.id}' depends on unknown request '${dep}'.`);
    }
  }
  const statusById = new Map<string, number>();
  const responses: Record<string, unknown>[] = [];
  const pending = [...items];
  while (pending.length > 0) {
    const index = pending.findIndex((item) =>
      item.dependsOn.every((dep) => statusById.has(dep.toLowerCase())),
    );
    if (index < 0) return batchError(ctx, 'Batch requests have circular dependencies.');
    const [item] = pending.splice(index, 1);
    if (item === undefined) break;
    let response: GraphResponse;
    if (item.dependsOn.some((dep) => (statusById.get(dep.toLowerCase()) ?? 0) >= 400)) {
      response = graphError(
        ctx,
        424,
        'FailedDependency',
        'The request failed because a request it depends on failed.',
      );
    } else {
      const relative = item.url.startsWith('/') ? item.url : `/${item.url}`;
      const parsed = new URL(`https://batch.invalid${relative}`);
      const segments = parsed.pathname
        .split('/')
        .filter((x) => x.length > 0)
        .map((x) => decodeURIComponent(x));
      response = handleGraph(
        { ...ctx, inBatch: true },
        {
          method: item.method,
          segments,
          query: parsed.searchParams,
          headers: item.headers,
          body: item.body,
          rawQuery: parsed.search.replace(/^\?/, ''),
        },
      );
    }
    statusById.set(item.id.toLowerCase(), response.status);
    const headers: Record<string, string> = { ...response.headers };
    if (response.body !== undefined)
      headers['Content-Type'] = typeof response.body === 'string' ? 'text/plain' : 'application/json';
    responses.push({
      id: item.id,
      status: response.status,
      headers,
      ...(response.body === undefined ? {} : { body: response.body }),
    });
  }
  return { status: 200, body: { responses } };
}
