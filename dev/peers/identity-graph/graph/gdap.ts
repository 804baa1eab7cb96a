import { createHash, randomUUID } from 'node:crypto';
import type { DirectoryState, TenantState } from '../state.js';
import { FilterSyntaxError, parseFilter } from './filter.js';
import {
  badRequest,
  denied,
  graphError,
  isRecord,
  notFound,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';

/**
 * Granular delegated admin privileges (GDAP), held by the partner tenant:
 * tenantRelationships/delegatedAdminRelationships with requests, accessAssignments and operations, and
 * tenantRelationships/delegatedAdminCustomers (api-reference/v1.0/resources/delegatedadminrelationship.md,
 * tenantrelationship-post-delegatedadminrelationships.md, delegatedadminrelationship-update.md,
 * delegatedadminrelationship-delete.md, delegatedadminrelationship-post-requests.md,
 * delegatedadminrelationship-post-accessassignments.md, resources/delegatedadminaccessassignment.md,
 * resources/delegatedadminrelationshipoperation.md, resources/delegatedadmincustomer.md).
 * Status changes the customer or the service makes (approval, activation, expiry) run on the peer clock.
 */

export type RelationshipStatus =
  | 'created'
  | 'approvalPending'
  | 'approved'
  | 'activating'
  | 'active'
  | 'expiring'
  | 'expired'
  | 'terminationRequested'
  | 'terminating'
  | 'terminated';

interface AccessAssignment {
  id: string;
  accessContainerId: string;
  accessContainerType: 'securityGroup';
  roleIds: string[];
  status: 'pending' | 'active' | 'deleting' | 'deleted' | 'error';
  createdAtMs: number;
  lastModifiedAtMs: number;
  version: number;
}

interface RelationshipRequest {
  id: string;
  action: 'lockForApproval' | 'approve' | 'terminate';
  status: 'created' | 'pending' | 'succeeded' | 'failed';
  createdAtMs: number;
  lastModifiedAtMs: number;
}

interface Operation {
  id: string;
  operationType: 'delegatedAdminAccessAssignmentUpdate';
  status: 'notStarted' | 'running' | 'complete' | 'failed';
  data: string;
  createdAtMs: number;
  lastModifiedAtMs: number;
}

export interface Relationship {
  id: string;
  displayName: string;
  duration: string;
  durationInMs: number;
  autoExtendDuration: 'P0D' | 'PT0S' | 'P180D';
  customerTenantId: string | null;
  customerDisplayName: string | null;
  roleIds: string[];
  status: RelationshipStatus;
  createdAtMs: number;
  lastModifiedAtMs: number;
  approvalRequestedAtMs: number | undefined;
  /** While activating: when the relationship becomes active (the approve hook sets it). */
  activeFromMs: number | undefined;
  activatedAtMs: number | undefined;
  endAtMs: number | undefined;
  /** While terminating: when it is terminated. */
  terminatedFromMs: number | undefined;
  version: number;
  requests: RelationshipRequest[];
  assignments: Map<string, AccessAssignment>;
  operations: Operation[];
}

/** Relationships per partner tenant (kept beside the directory state, reset with it). */
const store = new WeakMap<TenantState, Map<string, Relationship>>();

export function relationshipsOf(tenant: TenantState): Map<string, Relationship> {
  let map = store.get(tenant);
  if (map === undefined) {
    map = new Map();
    store.set(tenant, map);
  }
  return map;
}

const readRoles = ['DelegatedAdminRelationship.Read.All', 'DelegatedAdminRelationship.ReadWrite.All'];
const writeRoles = ['DelegatedAdminRelationship.ReadWrite.All'];

/** An approvalPending invitation lapses after 90 days (Partner Center GDAP docs; inferred for Graph). */
const approvalWindowInMs = 90 * 24 * 3600_000;
const dayInMs = 24 * 3600_000;

/**
 * Built-in Microsoft Entra role template ids (permissions reference of Entra built-in roles). GDAP takes
 * only built-in roles; an id outside this list is refused (inferred: the docs do not list the error).
 */
export const builtInRoles: Record<string, string> = {
  '62e90394-69f5-4237-9190-012177145e10': 'Global Administrator',
  'fe930be7-5e62-47db-91af-98c3a49a38b1': 'User Administrator',
  '29232cdf-9323-42fd-ade2-1d097af3e4de': 'Exchange Administrator',
  'f28a1f50-f6e7-4571-818b-6a12f2af6b6c': 'SharePoint Administrator',
  '69091246-20e8-4a56-aa4d-066075b2a7a8': 'Teams Administrator',
  '729827e3-9c14-49f7-bb1b-9608f156bbb8': 'Helpdesk Administrator',
  '3a2c62db-5318-420d-8d74-23affee5d9d5': 'Intune Administrator',
  '4d6ac14f-3453-41d0-bef9-a3e0c569773a': 'License Administrator',
  'fdd7a751-b60b-444a-984c-02652fe8fa1c': 'Groups Administrator',
  '8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2': 'Hybrid Identity Administrator',
  '44367163-eba1-44c3-98af-f5787879f96a': 'Dynamics 365 Administrator',
  'f2ef992c-3afb-46b9-b7cf-a126ee74c451': 'Global Reader',
  '194ae4cb-b126-40b2-bd5b-6091b380977d': 'Security Administrator',
  '9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3': 'Application Administrator',
  '158c047a-c907-4556-b7ef-446551a6b5f7': 'Cloud Application Administrator',
  '966707d0-3269-4727-9be2-8c3a10f19b9d': 'Password Administrator',
  'b0f54661-2d74-4c50-afa3-1ec803f12efe': 'Billing Administrator',
  'e8611ab8-c189-46e8-94e1-60213ab1f814': 'Privileged Role Administrator',
  '7be44c8a-adaf-4e2a-84d6-ab2649e08a13': 'Privileged Authentication Administrator',
  'c4e39bd9-1100-46d3-8c65-fb160da0071f': 'Authentication Administrator',
  '5d6b6bb7-de71-4623-b4af-96380a352509': 'Security Reader',
  '4a5d8f65-41da-4de4-8968-e035b65339cf': 'Reports Reader',
  '17315797-102d-40b4-93e0-432062caca18': 'Compliance Administrator',
  '11648597-926c-4cf3-9c36-bcebb0ba8dcc': 'Power Platform Administrator',
  '88d8e3e3-8f55-4a1e-953a-9b9898b8876b': 'Directory Readers',
  '9360feb5-f418-4baa-8175-e2a00bac4301': 'Directory Writers',
  '7698a772-787b-4ac8-901f-60d6b08affd2': 'Cloud Device Administrator',
  'f023fd81-a637-4b56-95fd-791ac0226033': 'Service Support Administrator',
};
const globalAdministrator = '62e90394-69f5-4237-9190-012177145e10';

/** ISO 8601 duration → ms (years 365 d, months 30 d); undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(
    text,
  );
  if (m === null || text === 'P' || text.endsWith('T')) return undefined;
  const n = (i: number): number => Number(m[i] ?? 0);
  return (n(1) * 365 + n(2) * 30 + n(3) * 7 + n(4)) * dayInMs + n(5) * 3600_000 + n(6) * 60_000 + n(7) * 1000;
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString().replace('Z', '0000Z');
}

function etagOf(id: string, version: number): string {
  const digest = createHash('sha256')
    .update(`${id}/${String(version)}`)
    .digest('hex')
    .slice(0, 24);
  return `W/"${Buffer.from(`'"${digest}"'`).toString('base64')}"`;
}

/** Applies the status changes that time makes: activation, auto-extension, expiry, lapse, termination. */
export function advance(rel: Relationship, nowMs: number): void {
  if (rel.status === 'approvalPending' && rel.approvalRequestedAtMs !== undefined) {
    if (nowMs - rel.approvalRequestedAtMs > approvalWindowInMs) {
      rel.status = 'expired';
      rel.lastModifiedAtMs = rel.approvalRequestedAtMs + approvalWindowInMs;
      rel.version += 1;
    }
  }
  if ((rel.status === 'approved' || rel.status === 'activating') && rel.activeFromMs !== undefined) {
    if (nowMs >= rel.activeFromMs) {
      rel.status = 'active';
      rel.activatedAtMs = rel.activeFromMs;
      rel.endAtMs = rel.activeFromMs + rel.durationInMs;
      rel.lastModifiedAtMs = rel.activeFromMs;
      rel.version += 1;
    } else if (rel.status === 'approved') {
      rel.status = 'activating';
    }
  }
  if (rel.status === 'active' && rel.endAtMs !== undefined) {
    // autoExtendDuration P180D extends the end by 180 days each time it is reached.
    while (rel.autoExtendDuration === 'P180D' && nowMs >= rel.endAtMs) rel.endAtMs += 180 * dayInMs;
    if (nowMs >= rel.endAtMs) {
      rel.status = 'expired';
      rel.lastModifiedAtMs = rel.endAtMs;
      rel.version += 1;
    }
  }
  if (
    (rel.status === 'terminationRequested' || rel.status === 'terminating') &&
    rel.terminatedFromMs !== undefined
  ) {
    if (nowMs >= rel.terminatedFromMs) {
      rel.status = 'terminated';
      rel.endAtMs = rel.terminatedFromMs;
      rel.lastModifiedAtMs = rel.terminatedFromMs;
      rel.version += 1;
    } else rel.status = 'terminating';
  }
  for (const assignment of rel.assignments.values()) {
    if (assignment.status === 'pending' && rel.status === 'active') {
      assignment.status = 'active';
      assignment.version += 1;
    }
  }
  for (const op of rel.operations)
    if (op.status === 'notStarted' && rel.status === 'active') op.status = 'complete';
}

const base = (ctx: GraphContext): string => `${ctx.graphBaseUrl}/tenantRelationships`;

export function relationshipView(rel: Relationship): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.delegatedAdminRelationship',
    '@odata.etag': etagOf(rel.id, rel.version),
    id: rel.id,
    displayName: rel.displayName,
    duration: rel.duration,
    customer:
      rel.customerTenantId === null && rel.customerDisplayName === null
        ? null
        : { tenantId: rel.customerTenantId, displayName: rel.customerDisplayName },
    accessDetails: { unifiedRoles: rel.roleIds.map((roleDefinitionId) => ({ roleDefinitionId })) },
    status: rel.status,
    autoExtendDuration: rel.autoExtendDuration,
    createdDateTime: iso(rel.createdAtMs),
    lastModifiedDateTime: iso(rel.lastModifiedAtMs),
    activatedDateTime: iso(rel.activatedAtMs),
    // Before activation the create example already shows an end: creation + duration until activation
    // fixes it at activatedDateTime + duration.
    endDateTime: iso(rel.endAtMs ?? rel.createdAtMs + rel.durationInMs),
  };
}

function assignmentView(a: AccessAssignment): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.delegatedAdminAccessAssignment',
    '@odata.etag': etagOf(a.id, a.version),
    id: a.id,
    status: a.status,
    createdDateTime: iso(a.createdAtMs),
    lastModifiedDateTime: iso(a.lastModifiedAtMs),
    accessContainer: { accessContainerId: a.accessContainerId, accessContainerType: a.accessContainerType },
    accessDetails: { unifiedRoles: a.roleIds.map((roleDefinitionId) => ({ roleDefinitionId })) },
  };
}

function requestView(r: RelationshipRequest): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.delegatedAdminRelationshipRequest',
    id: r.id,
    action: r.action,
    status: r.status,
    createdDateTime: iso(r.createdAtMs),
    lastModifiedDateTime: iso(r.lastModifiedAtMs),
  };
}

function operationView(o: Operation): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.delegatedAdminRelationshipOperation',
    '@odata.etag': etagOf(o.id, o.status === 'complete' ? 2 : 1),
    id: o.id,
    operationType: o.operationType,
    status: o.status,
    data: o.data,
    createdDateTime: iso(o.createdAtMs),
    lastModifiedDateTime: iso(o.lastModifiedAtMs),
  };
}

function roleIdsFrom(ctx: GraphContext, accessDetails: unknown, resource: string): string[] | GraphResponse {
  const roles = isRecord(accessDetails) ? accessDetails['unifiedRoles'] : undefined;
  if (!Array.isArray(roles) || roles.length === 0)
    return badRequest(ctx, `The ${resource} needs accessDetails.unifiedRoles with at least one role.`);
  const ids: string[] = [];
  for (const role of roles) {
    const id = isRecord(role) ? role['roleDefinitionId'] : undefined;
    if (typeof id !== 'string' || builtInRoles[id.toLowerCase()] === undefined)
      return badRequest(
        ctx,
        `The role '${typeof id === 'string' ? id : ''}' is not a built-in Microsoft Entra role that GDAP can grant.`,
      );
    if (!ids.includes(id.toLowerCase())) ids.push(id.toLowerCase());
  }
  return ids;
}

type Checked =
  { ok: false; response: GraphResponse } | { ok: true; durationInMs?: number; roleIds?: string[] };

/** Checks displayName/duration/customer/accessDetails as create and update share them. */
function validateEditable(
  ctx: GraphContext,
  body: Record<string, unknown>,
  self: Relationship | undefined,
): Checked {
  const fail = (response: GraphResponse): Checked => ({ ok: false, response });
  const out: { ok: true; durationInMs?: number; roleIds?: string[] } = { ok: true };
  if ('displayName' in body) {
    const name = body['displayName'];
    if (typeof name !== 'string' || name.trim() === '')
      return fail(badRequest(ctx, 'The displayName of the relationship is required.'));
    // tenantrelationship-post-delegatedadminrelationships.md: maximum 50 characters, unique across all
    // of the partner's relationships (the status codes of these refusals are inferred).
    if (name.length > 50) return fail(badRequest(ctx, 'The displayName must be at most 50 characters long.'));
    for (const other of relationshipsOf(ctx.tenant).values()) {
      if (other !== self && other.displayName.toLowerCase() === name.toLowerCase())
        return fail(
          graphError(
            ctx,
            409,
            'Request_MultipleObjectsWithSameKeyValue',
            `A delegated admin relationship with the display name '${name}' already exists.`,
          ),
        );
    }
  }
  if ('duration' in body) {
    const duration = body['duration'];
    const ms = typeof duration === 'string' ? parseDuration(duration) : undefined;
    // "Must be a value between P1D and P2Y inclusive."
    if (ms === undefined || ms < dayInMs || ms > 730 * dayInMs)
      return fail(
        badRequest(ctx, 'The duration must be an ISO 8601 duration between P1D and P2Y inclusive.'),
      );
    out.durationInMs = ms;
  }
  if ('customer' in body && body['customer'] !== null) {
    const customer = body['customer'];
    if (!isRecord(customer)) return fail(badRequest(ctx, 'Invalid customer.'));
    const tenantId = customer['tenantId'];
    if (
      tenantId !== undefined &&
      tenantId !== null &&
      (typeof tenantId !== 'string' || !/^[0-9a-f-]{36}$/i.test(tenantId))
    )
      return fail(badRequest(ctx, 'customer.tenantId must be a tenant id (GUID).'));
  }
  if ('accessDetails' in body) {
    const roleIds = roleIdsFrom(ctx, body['accessDetails'], 'relationship');
    if (!Array.isArray(roleIds)) return fail(roleIds);
    out.roleIds = roleIds;
  }
  return out;
}

function requireIfMatch(
  ctx: GraphContext,
  req: GraphRequest,
  id: string,
  version: number,
): GraphResponse | undefined {
  const ifMatch = req.headers['if-match'];
  // delegatedadminrelationship-update.md / -delete.md: If-Match is required (status codes inferred).
  if (ifMatch === undefined || ifMatch === '') return badRequest(ctx, 'The If-Match header is required.');
  if (ifMatch !== '*' && ifMatch !== etagOf(id, version))
    return graphError(
      ctx,
      412,
      'PreconditionFailed',
      'The If-Match etag does not match the current version.',
    );
  return undefined;
}

function findRelationship(ctx: GraphContext, id: string): Relationship | undefined {
  const rel = relationshipsOf(ctx.tenant).get(id.toLowerCase());
  if (rel !== undefined) advance(rel, ctx.state.clock.nowMs());
  return rel;
}

function createRelationship(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const body = req.body;
  if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
  const allowed = new Set(['displayName', 'duration', 'customer', 'accessDetails', 'autoExtendDuration']);
  for (const key of Object.keys(body))
    if (!allowed.has(key) && !key.startsWith('@odata.'))
      return badRequest(ctx, `Property '${key}' cannot be set when creating a delegated admin relationship.`);
  for (const required of ['displayName', 'duration', 'accessDetails'])
    if (!(required in body)) return badRequest(ctx, `The property '${required}' is required.`);
  const checked = validateEditable(ctx, body, undefined);
  if (!checked.ok) return checked.response;
  const autoExtend = body['autoExtendDuration'] ?? 'PT0S';
  if (autoExtend !== 'P0D' && autoExtend !== 'PT0S' && autoExtend !== 'P180D')
    return badRequest(ctx, "autoExtendDuration must be 'P0D', 'PT0S' or 'P180D'.");
  const roleIds = checked.roleIds ?? [];
  // Relationships with Global Administrator cannot auto-extend (Partner Center GDAP docs).
  if (autoExtend === 'P180D' && roleIds.includes(globalAdministrator))
    return badRequest(
      ctx,
      'A relationship that includes the Global Administrator role cannot be auto-extended.',
    );
  const customer = isRecord(body['customer']) ? body['customer'] : {};
  const now = ctx.state.clock.nowMs();
  const id = `${randomUUID()}-${randomUUID()}`;
  const rel: Relationship = {
    id,
    displayName: String(body['displayName']),
    duration: String(body['duration']),
    durationInMs: checked.durationInMs ?? dayInMs,
    autoExtendDuration: autoExtend,
    customerTenantId: typeof customer['tenantId'] === 'string' ? customer['tenantId'].toLowerCase() : null,
    customerDisplayName: typeof customer['displayName'] === 'string' ? customer['displayName'] : null,
    roleIds,
    status: 'created',
    createdAtMs: now,
    lastModifiedAtMs: now,
    approvalRequestedAtMs: undefined,
    activeFromMs: undefined,
    activatedAtMs: undefined,
    endAtMs: undefined,
    terminatedFromMs: undefined,
    version: 1,
    requests: [],
    assignments: new Map(),
    operations: [],
  };
  relationshipsOf(ctx.tenant).set(id, rel);
  return {
    status: 201,
    headers: { Location: `${base(ctx)}/delegatedAdminRelationships/${id}` },
    body: {
      '@odata.context': `${base(ctx)}/$metadata#delegatedAdminRelationships`,
      ...relationshipView(rel),
    },
  };
}

function listRelationships(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const now = ctx.state.clock.nowMs();
  let rels = [...relationshipsOf(ctx.tenant).values()];
  for (const rel of rels) advance(rel, now);
  const filterText = req.query.get('$filter');
  if (filterText !== null) {
    let parsed;
    try {
      parsed = parseFilter(filterText);
    } catch (error) {
      return badRequest(
        ctx,
        `Invalid filter clause: ${error instanceof FilterSyntaxError ? error.message : ''}`,
      );
    }
    rels = rels.filter((rel) => {
      const view = relationshipView(rel);
      return parsed.test((p) => {
        if (p === 'customer/tenantId') return rel.customerTenantId;
        if (p === 'customer/displayName') return rel.customerDisplayName;
        return view[p];
      });
    });
  }
  const orderBy = req.query.get('$orderby');
  if (orderBy !== null) {
    const [property, direction] = orderBy.trim().split(/\s+/);
    if (property !== 'status') return badRequest(ctx, `Sorting is supported only on status.`);
    const sign = direction?.toLowerCase() === 'desc' ? -1 : 1;
    rels.sort((a, b) => sign * a.status.localeCompare(b.status));
  }
  return {
    status: 200,
    body: {
      '@odata.context': `${base(ctx)}/$metadata#delegatedAdminRelationships`,
      value: rels.map((rel) => relationshipView(rel)),
    },
  };
}

function updateRelationship(ctx: GraphContext, req: GraphRequest, rel: Relationship): GraphResponse {
  const precondition = requireIfMatch(ctx, req, rel.id, rel.version);
  if (precondition !== undefined) return precondition;
  // delegatedadminrelationship-update.md: only in the created status.
  if (rel.status !== 'created')
    return badRequest(ctx, `The relationship can be updated only in the created status, not ${rel.status}.`);
  const body = req.body;
  if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
  const allowed = new Set(['displayName', 'duration', 'customer', 'accessDetails']);
  for (const key of Object.keys(body))
    if (!allowed.has(key) && !key.startsWith('@odata.'))
      return badRequest(ctx, `Property '${key}' cannot be updated.`);
  const result = validateEditable(ctx, body, rel);
  if (!result.ok) return result.response;
  const roleIds = result.roleIds ?? rel.roleIds;
  if (rel.autoExtendDuration === 'P180D' && roleIds.includes(globalAdministrator))
    return badRequest(
      ctx,
      'A relationship that includes the Global Administrator role cannot be auto-extended.',
    );
  if (typeof body['displayName'] === 'string') rel.displayName = body['displayName'];
  if (typeof body['duration'] === 'string' && result.durationInMs !== undefined) {
    rel.duration = body['duration'];
    rel.durationInMs = result.durationInMs;
  }
  if (isRecord(body['customer'])) {
    const c = body['customer'];
    if (typeof c['tenantId'] === 'string') rel.customerTenantId = c['tenantId'].toLowerCase();
    if (typeof c['displayName'] === 'string') rel.customerDisplayName = c['displayName'];
  }
  rel.roleIds = roleIds;
  rel.lastModifiedAtMs = ctx.state.clock.nowMs();
  rel.version += 1;
  return {
    status: 200,
    body: {
      '@odata.context': `${base(ctx)}/$metadata#delegatedAdminRelationships/$entity`,
      ...relationshipView(rel),
    },
  };
}

function postRequest(ctx: GraphContext, req: GraphRequest, rel: Relationship): GraphResponse {
  const action = isRecord(req.body) ? req.body['action'] : undefined;
  if (action !== 'lockForApproval' && action !== 'terminate')
    return badRequest(ctx, "action must be 'lockForApproval' or 'terminate'.");
  const now = ctx.state.clock.nowMs();
  if (action === 'lockForApproval') {
    if (rel.status !== 'created')
      return badRequest(ctx, `lockForApproval needs the created status; the relationship is ${rel.status}.`);
    rel.status = 'approvalPending';
    rel.approvalRequestedAtMs = now;
  } else {
    if (rel.status !== 'active')
      return badRequest(ctx, `terminate needs the active status; the relationship is ${rel.status}.`);
    rel.status = 'terminationRequested';
    rel.terminatedFromMs = now;
  }
  rel.lastModifiedAtMs = now;
  rel.version += 1;
  const request: RelationshipRequest = {
    id: randomUUID(),
    action,
    status: 'created',
    createdAtMs: now,
    lastModifiedAtMs: now,
  };
  const answer = requestView(request);
  // The request is carried out at once; later reads show it succeeded.
  request.status = 'succeeded';
  rel.requests.push(request);
  return {
    status: 201,
    headers: { Location: `${base(ctx)}/delegatedAdminRelationships/${rel.id}/requests/${request.id}` },
    body: { '@odata.context': `${base(ctx)}/$metadata#requests`, ...answer },
  };
}

function addOperation(rel: Relationship, now: number, data: Record<string, unknown>): void {
  rel.operations.push({
    id: randomUUID(),
    operationType: 'delegatedAdminAccessAssignmentUpdate',
    status: rel.status === 'active' ? 'complete' : 'notStarted',
    data: JSON.stringify(data),
    createdAtMs: now,
    lastModifiedAtMs: now,
  });
}

function accessAssignments(
  ctx: GraphContext,
  req: GraphRequest,
  rel: Relationship,
  assignmentId: string | undefined,
): GraphResponse {
  const now = ctx.state.clock.nowMs();
  const collection = `${base(ctx)}/$metadata#accessAssignments`;
  if (assignmentId === undefined) {
    if (req.method === 'GET')
      return {
        status: 200,
        body: { '@odata.context': collection, value: [...rel.assignments.values()].map(assignmentView) },
      };
    if (req.method !== 'POST') return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    const forbidden = denied(ctx, writeRoles);
    if (forbidden !== undefined) return forbidden;
    // Access can be assigned only once the customer approved and the relationship is active (inferred).
    if (rel.status !== 'active')
      return badRequest(ctx, `Access can be assigned only in an active relationship; it is ${rel.status}.`);
    const body = req.body;
    if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
    const container = body['accessContainer'];
    const containerId = isRecord(container) ? container['accessContainerId'] : undefined;
    const containerType = isRecord(container) ? container['accessContainerType'] : undefined;
    if (typeof containerId !== 'string' || containerType !== 'securityGroup')
      return badRequest(
        ctx,
        "accessContainer needs accessContainerId and accessContainerType 'securityGroup'.",
      );
    // The container is a security group of the partner tenant.
    const group = ctx.tenant.groups.get(containerId.toLowerCase());
    if (group?.props['securityEnabled'] !== true)
      return badRequest(ctx, `The security group '${containerId}' does not exist in the partner tenant.`);
    const roleIds = roleIdsFrom(ctx, body['accessDetails'], 'access assignment');
    if (!Array.isArray(roleIds)) return roleIds;
    const outside = roleIds.filter((r) => !rel.roleIds.includes(r));
    if (outside.length > 0)
      return badRequest(ctx, `The roles ${outside.join(', ')} are not part of the relationship.`);
    for (const other of rel.assignments.values())
      if (other.accessContainerId === containerId.toLowerCase())
        return graphError(
          ctx,
          409,
          'Request_MultipleObjectsWithSameKeyValue',
          `The security group '${containerId}' already has an access assignment in this relationship.`,
        );
    const assignment: AccessAssignment = {
      id: randomUUID(),
      accessContainerId: containerId.toLowerCase(),
      accessContainerType: 'securityGroup',
      roleIds,
      status: 'pending',
      createdAtMs: now,
      lastModifiedAtMs: now,
      version: 1,
    };
    rel.assignments.set(assignment.id, assignment);
    addOperation(rel, now, { accessAssignmentId: assignment.id, action: 'create' });
    return {
      status: 201,
      headers: {
        Location: `${base(ctx)}/delegatedAdminRelationships/${rel.id}/accessAssignments/${assignment.id}`,
      },
      body: { '@odata.context': collection, ...assignmentView(assignment) },
    };
  }
  const assignment = rel.assignments.get(assignmentId.toLowerCase());
  if (assignment === undefined) return notFound(ctx, assignmentId);
  if (req.method === 'GET')
    return {
      status: 200,
      body: { '@odata.context': `${collection}/$entity`, ...assignmentView(assignment) },
    };
  const forbidden = denied(ctx, writeRoles);
  if (forbidden !== undefined) return forbidden;
  const precondition = requireIfMatch(ctx, req, assignment.id, assignment.version);
  if (precondition !== undefined) return precondition;
  if (req.method === 'PATCH') {
    const body = req.body;
    if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
    const roleIds = roleIdsFrom(ctx, body['accessDetails'], 'access assignment');
    if (!Array.isArray(roleIds)) return roleIds;
    const outside = roleIds.filter((r) => !rel.roleIds.includes(r));
    if (outside.length > 0)
      return badRequest(ctx, `The roles ${outside.join(', ')} are not part of the relationship.`);
    assignment.roleIds = roleIds;
    assignment.lastModifiedAtMs = now;
    assignment.version += 1;
    addOperation(rel, now, { accessAssignmentId: assignment.id, action: 'update' });
    return {
      status: 200,
      body: { '@odata.context': `${collection}/$entity`, ...assignmentView(assignment) },
    };
  }
  if (req.method === 'DELETE') {
    rel.assignments.delete(assignment.id);
    addOperation(rel, now, { accessAssignmentId: assignment.id, action: 'delete' });
    return { status: 204 };
  }
  return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
}

/** tenantRelationships/… routes; `segments` start after `tenantRelationships`. */
export function tenantRelationships(ctx: GraphContext, req: GraphRequest, segments: string[]): GraphResponse {
  const writing = req.method !== 'GET';
  const forbidden = denied(ctx, writing ? writeRoles : readRoles);
  if (forbidden !== undefined) return forbidden;
  const [collection, id, child, childId, extra] = segments;
  if (collection === 'delegatedAdminCustomers') {
    if (req.method !== 'GET' || child !== undefined)
      return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    return delegatedAdminCustomers(ctx, id);
  }
  if (collection !== 'delegatedAdminRelationships' || extra !== undefined)
    return badRequest(ctx, `Resource not found for the segment '${segments.at(-1) ?? ''}'.`);
  if (id === undefined) {
    if (req.method === 'GET') return listRelationships(ctx, req);
    if (req.method === 'POST') return createRelationship(ctx, req);
    return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
  }
  const rel = findRelationship(ctx, id);
  if (rel === undefined) return notFound(ctx, id);
  if (child === undefined) {
    if (req.method === 'GET')
      return {
        status: 200,
        body: {
          '@odata.context': `${base(ctx)}/$metadata#delegatedAdminRelationships/$entity`,
          ...relationshipView(rel),
        },
      };
    if (req.method === 'PATCH') return updateRelationship(ctx, req, rel);
    if (req.method === 'DELETE') {
      const precondition = requireIfMatch(ctx, req, rel.id, rel.version);
      if (precondition !== undefined) return precondition;
      // delegatedadminrelationship-delete.md: only in the created status.
      if (rel.status !== 'created')
        return badRequest(
          ctx,
          `The relationship can be deleted only in the created status, not ${rel.status}.`,
        );
      relationshipsOf(ctx.tenant).delete(rel.id);
      return { status: 204 };
    }
    return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
  }
  if (child === 'requests') {
    if (childId !== undefined) {
      const request = rel.requests.find((r) => r.id === childId.toLowerCase());
      if (request === undefined || req.method !== 'GET') return notFound(ctx, childId);
      return {
        status: 200,
        body: { '@odata.context': `${base(ctx)}/$metadata#requests/$entity`, ...requestView(request) },
      };
    }
    if (req.method === 'GET')
      return {
        status: 200,
        body: { '@odata.context': `${base(ctx)}/$metadata#requests`, value: rel.requests.map(requestView) },
      };
    if (req.method === 'POST') return postRequest(ctx, req, rel);
    return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
  }
  if (child === 'accessAssignments') return accessAssignments(ctx, req, rel, childId);
  if (child === 'operations') {
    if (req.method !== 'GET') return graphError(ctx, 405, 'Request_BadRequest', 'Method not allowed.');
    if (childId !== undefined) {
      const op = rel.operations.find((o) => o.id === childId.toLowerCase());
      if (op === undefined) return notFound(ctx, childId);
      return {
        status: 200,
        body: { '@odata.context': `${base(ctx)}/$metadata#operations/$entity`, ...operationView(op) },
      };
    }
    return {
      status: 200,
      body: {
        '@odata.context': `${base(ctx)}/$metadata#operations`,
        value: rel.operations.map(operationView),
      },
    };
  }
  return badRequest(ctx, `Resource not found for the segment '${child}'.`);
}

/** delegatedAdminCustomers exist while the partner has an active relationship with the customer. */
function delegatedAdminCustomers(ctx: GraphContext, id: string | undefined): GraphResponse {
  const now = ctx.state.clock.nowMs();
  const customers = new Map<string, Record<string, unknown>>();
  for (const rel of relationshipsOf(ctx.tenant).values()) {
    advance(rel, now);
    if ((rel.status !== 'active' && rel.status !== 'expiring') || rel.customerTenantId === null) continue;
    const tenant = ctx.state.tenants.get(rel.customerTenantId);
    customers.set(rel.customerTenantId, {
      '@odata.type': '#microsoft.graph.delegatedAdminCustomer',
      id: rel.customerTenantId,
      tenantId: rel.customerTenantId,
      displayName: tenant?.displayName ?? rel.customerDisplayName,
    });
  }
  if (id !== undefined) {
    const customer = customers.get(id.toLowerCase());
    if (customer === undefined) return notFound(ctx, id);
    return {
      status: 200,
      body: { '@odata.context': `${base(ctx)}/$metadata#delegatedAdminCustomers/$entity`, ...customer },
    };
  }
  return {
    status: 200,
    body: {
      '@odata.context': `${base(ctx)}/$metadata#delegatedAdminCustomers`,
      value: [...customers.values()],
    },
  };
}

/**
 * Admin hooks: what the customer (approve, terminate) or time (expire) does. `approve` needs the
 * approvalPending status and, without a customer on the relationship, the customer tenant id.
 */
export function gdapAdmin(
  state: DirectoryState,
  relationshipId: string,
  action: string,
  body: { customerTenantId?: string | undefined; activatingForMs?: number | undefined },
): { status: number; message?: string; relationship?: Relationship } {
  let found: Relationship | undefined;
  for (const tenant of state.tenants.values()) {
    const rel = relationshipsOf(tenant).get(relationshipId.toLowerCase());
    if (rel !== undefined) found = rel;
  }
  if (found === undefined) return { status: 404, message: `Relationship '${relationshipId}' not found.` };
  const rel = found;
  const now = state.clock.nowMs();
  advance(rel, now);
  if (action === 'approve') {
    if (rel.status !== 'approvalPending')
      return {
        status: 409,
        message: `Only an approvalPending relationship can be approved; it is ${rel.status}.`,
      };
    const customerId = (body.customerTenantId ?? rel.customerTenantId)?.toLowerCase();
    if (customerId === undefined) return { status: 400, message: 'customerTenantId is needed.' };
    if (rel.customerTenantId !== null && rel.customerTenantId !== customerId)
      return { status: 409, message: 'The relationship was created for another customer.' };
    const customer = state.tenants.get(customerId);
    rel.customerTenantId = customerId;
    rel.customerDisplayName = customer?.displayName ?? rel.customerDisplayName;
    rel.status = 'approved';
    rel.requests.push({
      id: randomUUID(),
      action: 'approve',
      status: 'succeeded',
      createdAtMs: now,
      lastModifiedAtMs: now,
    });
    rel.activeFromMs = now + (body.activatingForMs ?? 0);
  } else if (action === 'terminate') {
    if (rel.status !== 'active' && rel.status !== 'approvalPending')
      return {
        status: 409,
        message: `Only an active or approvalPending relationship can be terminated; it is ${rel.status}.`,
      };
    rel.status = 'terminationRequested';
    rel.terminatedFromMs = now;
  } else if (action === 'expire') {
    if (rel.status !== 'active' && rel.status !== 'approvalPending')
      return {
        status: 409,
        message: `Only an active or approvalPending relationship can expire; it is ${rel.status}.`,
      };
    rel.status = 'expired';
    rel.endAtMs = now;
  } else return { status: 404, message: `Unknown action '${action}'.` };
  rel.lastModifiedAtMs = now;
  rel.version += 1;
  advance(rel, now);
  return { status: 200, relationship: rel };
}
