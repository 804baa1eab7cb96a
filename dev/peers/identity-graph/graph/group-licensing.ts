import {
  recordPropertyChange,
  type AssignedLicense,
  type GroupLicenceState,
  type GroupRecord,
  type UserRecord,
} from '../state.js';
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
import { lagging, lookupUser, userView } from './users.js';

/**
 * Group-based licensing, as Microsoft documents it:
 * - `POST /groups/{id}/assignLicense` `{addLicenses, removeLicenses}` → 202 with the group
 *   (group-assignlicense.md); every direct user member inherits the group's licences.
 * - Nested groups are not supported: only first-level user members get the licences
 *   (licensing-group-advanced.md).
 * - A user holding a SKU from several sources consumes one seat (licensing-groups-resolve-problems.md,
 *   "they still consume only one license for that product").
 * - No free seat: the intent is kept on the user in an error state, `state: Error`,
 *   `error: CountViolation` (licenseassignmentstate.md; resolve-problems "Not enough licenses"). If one
 *   licence of a group cannot be assigned, none of that group's are ("More than one product license").
 * - Errors are not retried by themselves when seats free up: a reprocess does it
 *   (`POST /users/{id}/reprocessLicenseAssignment`, 200 with the user; resolve-problems "Force group
 *   license processing"). Membership changes and the group's own assignLicense process at once here,
 *   where Entra does it in the background within minutes (a simplification).
 */

function lookupGroup(ctx: GraphContext, id: string): GroupRecord | undefined {
  const group = ctx.tenant.groups.get(id.toLowerCase());
  if (group === undefined || lagging(ctx, group.createdAtMs)) return undefined;
  return group;
}

/** Recomputes what the user inherits from the groups it is a direct member of; true when it changed. */
export function processUserLicences(ctx: GraphContext, user: UserRecord): boolean {
  const at = ctx.state.clock.now().toISOString();
  const before = user.groupLicences ?? [];
  const next: GroupLicenceState[] = [];
  const groups = [...ctx.tenant.groups.values()]
    .filter((g) => g.members.has(user.id) && (g.assignedLicenses ?? []).length > 0)
    .sort((a, b) => a.seq - b.seq);
  for (const group of groups) {
    const licences = group.assignedLicenses ?? [];
    // Held already (directly, or Active from a group processed before): no new seat needed.
    const held = (skuId: string): boolean =>
      user.assignedLicenses.some((l) => l.skuId === skuId) ||
      next.some((l) => l.skuId === skuId && l.state === 'Active') ||
      before.some((l) => l.groupId === group.id && l.skuId === skuId && l.state === 'Active');
    const short = licences.filter(
      (l) => !held(l.skuId) && ctx.tenant.consumedUnits(l.skuId) >= ctx.tenant.prepaidUnits(l.skuId).enabled,
    );
    for (const l of licences) {
      const previous = before.find((p) => p.groupId === group.id && p.skuId === l.skuId);
      const state: GroupLicenceState['state'] = short.length === 0 ? 'Active' : 'Error';
      const error = state === 'Active' ? null : short.includes(l) ? 'CountViolation' : 'Other';
      const same = previous?.state === state && previous.error === error;
      next.push({
        groupId: group.id,
        skuId: l.skuId,
        disabledPlans: l.disabledPlans,
        state,
        error,
        lastUpdatedDateTime: same ? previous.lastUpdatedDateTime : at,
      });
    }
  }
  const changed = JSON.stringify(before) !== JSON.stringify(next);
  if (changed) {
    user.groupLicences = next;
    recordPropertyChange(ctx.tenant, user, ['assignedLicenses', 'licenseAssignmentStates']);
  }
  return changed;
}

/** Processes every direct user member of the group (after its licences or membership changed). */
export function processGroupMembers(ctx: GraphContext, group: GroupRecord): void {
  for (const memberId of [...group.members].sort()) {
    const user = ctx.tenant.findUser(memberId);
    if (user !== undefined) processUserLicences(ctx, user);
  }
}

/** POST /groups/{id}/assignLicense (group-assignlicense.md): 202 with the group. */
export function groupAssignLicense(ctx: GraphContext, req: GraphRequest, id: string): GraphResponse {
  const forbidden = denied(ctx, permissions.assignLicences);
  if (forbidden !== undefined) return forbidden;
  const group = lookupGroup(ctx, id);
  if (group === undefined) return notFound(ctx, id);
  const body = req.body;
  if (!isRecord(body) || !Array.isArray(body['addLicenses']) || !Array.isArray(body['removeLicenses']))
    return badRequest(
      ctx,
      "Invalid value specified for property 'addLicenses' or 'removeLicenses' of resource 'Group'.",
    );
  const add: AssignedLicense[] = [];
  for (const item of body['addLicenses'] as unknown[]) {
    if (!isRecord(item) || typeof item['skuId'] !== 'string')
      return invalidValue(ctx, 'addLicenses', 'Group');
    const disabled = item['disabledPlans'] ?? [];
    if (!Array.isArray(disabled) || disabled.some((p) => typeof p !== 'string'))
      return invalidValue(ctx, 'disabledPlans', 'Group');
    const skuId = item['skuId'].toLowerCase();
    const sku = ctx.tenant.skus.get(skuId);
    if (sku === undefined || sku.appliesTo !== 'User' || ctx.tenant.capabilityStatus(skuId) === 'Deleted')
      return badRequest(ctx, `License ${skuId} does not correspond to a valid company License.`);
    add.push({ skuId, disabledPlans: (disabled as string[]).map((p) => p.toLowerCase()) });
  }
  const remove = (body['removeLicenses'] as unknown[]).map((s) => String(s).toLowerCase());
  const current = (group.assignedLicenses ?? []).filter((l) => !remove.includes(l.skuId));
  for (const item of add) {
    const existing = current.find((l) => l.skuId === item.skuId);
    if (existing === undefined) current.push(item);
    else existing.disabledPlans = item.disabledPlans;
  }
  group.assignedLicenses = current;
  group.seq = ctx.tenant.nextSeq();
  processGroupMembers(ctx, group);
  return {
    status: 202,
    headers: {
      location: `${ctx.graphBaseUrl.replace(/\/v1\.0$/, '/v2')}/${ctx.tenant.id}/directoryObjects/${group.id}/Microsoft.DirectoryServices.Group`,
    },
    body: {
      '@odata.context': contextUrl(ctx, 'groups', undefined, true),
      id: group.id,
      ...group.props,
      assignedLicenses: current,
    },
  };
}

/** POST /users/{id}/reprocessLicenseAssignment (user-reprocesslicenseassignment.md): 200 with the user. */
export function reprocessLicenseAssignment(ctx: GraphContext, key: string): GraphResponse {
  const forbidden = denied(ctx, permissions.writeUsers);
  if (forbidden !== undefined) return forbidden;
  const user = lookupUser(ctx, key);
  if (user === undefined) return notFound(ctx, key);
  processUserLicences(ctx, user);
  return {
    status: 200,
    body: { '@odata.context': contextUrl(ctx, 'users', undefined, true), ...userView(user, undefined) },
  };
}
