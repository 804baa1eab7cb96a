import { randomUUID } from 'node:crypto';
import type { GroupRecord } from '../state.js';
import { FilterSyntaxError, parseFilter } from './filter.js';
import {
  badRequest,
  contextUrl,
  denied,
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
import { processUserLicences } from './group-licensing.js';
import { lagging, lookupUser, userView } from './users.js';

const defaultGroupProperties = [
  'id',
  'deletedDateTime',
  'classification',
  'createdDateTime',
  'description',
  'displayName',
  'expirationDateTime',
  'groupTypes',
  'isAssignableToRole',
  'mail',
  'mailEnabled',
  'mailNickname',
  'membershipRule',
  'membershipRuleProcessingState',
  'onPremisesSyncEnabled',
  'preferredDataLocation',
  'proxyAddresses',
  'renewedDateTime',
  'securityEnabled',
  'securityIdentifier',
  'visibility',
];
const writable = new Set([
  'description',
  'displayName',
  'groupTypes',
  'mailEnabled',
  'mailNickname',
  'securityEnabled',
  'visibility',
  'isAssignableToRole',
  'membershipRule',
  'membershipRuleProcessingState',
  'classification',
]);

export function groupView(group: GroupRecord, select: string[] | undefined): Record<string, unknown> {
  // assignedLicenses: group-based licensing, returned only on $select (resources/group.md).
  const record = { ...group.props, id: group.id, assignedLicenses: group.assignedLicenses ?? [] };
  return project(record, select, defaultGroupProperties, {
    groupTypes: [],
    proxyAddresses: [],
  });
}

function lookupGroup(ctx: GraphContext, id: string): GroupRecord | undefined {
  const group = ctx.tenant.groups.get(id.toLowerCase());
  if (group === undefined || lagging(ctx, group.createdAtMs)) return undefined;
  return group;
}

/** The object id at the end of an `@odata.id` such as https://graph.microsoft.com/v1.0/directoryObjects/{id}. */
function referencedId(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const match =
    /\/(?:directoryObjects|users|groups)\/([^/?]+)$/.exec(value) ??
    /directoryObjects\('([^']+)'\)$/.exec(value);
  return match?.[1];
}

export function createGroup(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.writeGroups);
  if (forbidden !== undefined) return forbidden;
  const body = req.body;
  if (!isRecord(body)) return badRequest(ctx, 'Empty Payload. JSON content expected.');
  for (const required of ['displayName', 'mailEnabled', 'mailNickname', 'securityEnabled']) {
    if (body[required] === undefined || body[required] === null) return invalidValue(ctx, required, 'Group');
  }
  const displayName = body['displayName'];
  if (typeof displayName !== 'string' || displayName.length === 0 || displayName.length > 256)
    return invalidValue(ctx, 'displayName', 'Group');
  const nick = body['mailNickname'];
  // group-post-groups.md: ≤ 64 ASCII characters, none of @ () \ [] " ; : . <> , or space.
  if (
    typeof nick !== 'string' ||
    nick.length === 0 ||
    nick.length > 64 ||
    !/^[\x21-\x7e]+$/.test(nick) ||
    /[@()\\[\]";:.<>,]/.test(nick)
  ) {
    return invalidValue(ctx, 'mailNickname', 'Group');
  }
  const members: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    if (key === 'members@odata.bind' || key === 'owners@odata.bind') {
      if (!Array.isArray(value)) return invalidValue(ctx, key, 'Group');
      if (key === 'members@odata.bind') {
        for (const ref of value) {
          const id = referencedId(ref);
          if (id === undefined || lookupUser(ctx, id) === undefined) return notFound(ctx, String(id ?? ref));
          members.push(id.toLowerCase());
        }
      }
      continue;
    }
    if (key.startsWith('@odata.')) continue;
    if (!writable.has(key))
      return badRequest(
        ctx,
        `Property '${key}' does not exist as a declared property or extension property.`,
      );
  }
  const bindCount =
    (Array.isArray(body['members@odata.bind']) ? body['members@odata.bind'].length : 0) +
    (Array.isArray(body['owners@odata.bind']) ? body['owners@odata.bind'].length : 0);
  if (bindCount > 20)
    return badRequest(ctx, 'A maximum of 20 members and owners can be added when creating a group.');
  const id = randomUUID();
  const props: Record<string, unknown> = {
    groupTypes: [],
    ...body,
    createdDateTime: ctx.state.clock
      .now()
      .toISOString()
      .replace(/\.\d+Z$/, 'Z'),
  };
  delete props['members@odata.bind'];
  delete props['owners@odata.bind'];
  const group: GroupRecord = {
    id,
    props,
    members: new Set(members),
    createdAtMs: ctx.state.clock.nowMs(),
    seq: ctx.tenant.nextSeq(),
  };
  ctx.tenant.groups.set(id, group);
  return {
    status: 201,
    body: { '@odata.context': contextUrl(ctx, 'groups', undefined, true), ...groupView(group, undefined) },
  };
}

export function getGroup(ctx: GraphContext, req: GraphRequest, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readGroups);
  if (forbidden !== undefined) return forbidden;
  const group = lookupGroup(ctx, id);
  if (group === undefined) return notFound(ctx, id);
  const select = parseSelect(req.query);
  return {
    status: 200,
    body: { '@odata.context': contextUrl(ctx, 'groups', select, true), ...groupView(group, select) },
  };
}

export function listGroups(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readGroups);
  if (forbidden !== undefined) return forbidden;
  const select = parseSelect(req.query);
  let groups = [...ctx.tenant.groups.values()];
  const filterText = req.query.get('$filter');
  if (filterText !== null) {
    try {
      const parsed = parseFilter(filterText);
      groups = groups.filter((g) => parsed.test((p) => (p === 'id' ? g.id : g.props[p])));
    } catch (error) {
      return badRequest(
        ctx,
        `Invalid filter clause: ${error instanceof FilterSyntaxError ? error.message : ''}`,
      );
    }
  }
  return {
    status: 200,
    body: {
      '@odata.context': contextUrl(ctx, 'groups', select, false),
      value: groups.map((g) => groupView(g, select)),
    },
  };
}

export function deleteGroup(ctx: GraphContext, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeGroups);
  if (forbidden !== undefined) return forbidden;
  const group = lookupGroup(ctx, id);
  if (group === undefined) return notFound(ctx, id);
  // "You must remove all licenses assigned to a group before you can delete the group"
  // (licensing-groups-resolve-problems.md); the wording of the refusal is ours (not documented).
  if ((group.assignedLicenses ?? []).length > 0)
    return badRequest(ctx, 'Remove the licenses assigned to the group before deleting it.');
  ctx.tenant.groups.delete(group.id);
  ctx.tenant.groupTombstones.set(group.id, ctx.tenant.nextSeq());
  return { status: 204 };
}

export function listMembers(ctx: GraphContext, req: GraphRequest, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.readGroups);
  if (forbidden !== undefined) return forbidden;
  const group = lookupGroup(ctx, id);
  if (group === undefined) return notFound(ctx, id);
  const select = parseSelect(req.query);
  const value = [...group.members]
    .map((memberId) => ctx.tenant.findUser(memberId))
    .filter((u) => u !== undefined)
    .map((u) => ({ '@odata.type': '#microsoft.graph.user', ...userView(u, select) }));
  return { status: 200, body: { '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryObjects`, value } };
}

/** POST /groups/{id}/members/$ref (group-post-members.md): 204, 400 if already a member, 404 if unknown. */
export function addMember(ctx: GraphContext, req: GraphRequest, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeMembers);
  if (forbidden !== undefined) return forbidden;
  const group = lookupGroup(ctx, id);
  if (group === undefined) return notFound(ctx, id);
  const memberId = isRecord(req.body) ? referencedId(req.body['@odata.id']) : undefined;
  if (memberId === undefined) return invalidValue(ctx, '@odata.id', 'Group');
  const user = lookupUser(ctx, memberId);
  if (user === undefined) return notFound(ctx, memberId);
  if (group.members.has(user.id)) {
    return badRequest(
      ctx,
      "One or more added object references already exist for the following modified properties: 'members'.",
    );
  }
  group.members.add(user.id);
  recordMemberChange(ctx, group, user.id, false);
  processUserLicences(ctx, user);
  return { status: 204 };
}

export function removeMember(ctx: GraphContext, id: string, memberId: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeMembers);
  if (forbidden !== undefined) return forbidden;
  const group = lookupGroup(ctx, id);
  if (group === undefined) return notFound(ctx, id);
  if (!group.members.delete(memberId.toLowerCase())) return notFound(ctx, memberId);
  recordMemberChange(ctx, group, memberId.toLowerCase(), true);
  const user = ctx.tenant.findUser(memberId);
  if (user !== undefined) processUserLicences(ctx, user);
  return { status: 204 };
}

/** A membership write: its own seq, kept so groups/delta can tell it from a change of the group itself. */
function recordMemberChange(ctx: GraphContext, group: GroupRecord, memberId: string, removed: boolean): void {
  const changes = (group.memberChanges ??= []);
  if (changes.length === 0) group.wholeSeq = group.seq;
  group.seq = ctx.tenant.nextSeq();
  changes.push({ seq: group.seq, memberId, removed });
}
