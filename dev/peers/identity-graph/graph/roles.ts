import { denied, notFound, type GraphContext, type GraphResponse } from './context.js';

/**
 * Activated directory roles (directoryrole-list.md, directoryrole-list-members.md): `GET /directoryRoles`
 * lists the roles activated in the tenant (`id`, `displayName`, `roleTemplateId`), `…/{id}/members`
 * their members (users here; `$select=id` is all the app reads). Read with RoleManagement.Read.Directory
 * or Directory.Read.All. Seeded only (`tenants[].directoryRoles`); no role assignment writes.
 */
const readRoles = [
  'RoleManagement.Read.Directory',
  'RoleManagement.ReadWrite.Directory',
  'Directory.Read.All',
  'Directory.ReadWrite.All',
];

export function directoryRoles(
  ctx: GraphContext,
  id: string | undefined,
  segment: string | undefined,
): GraphResponse {
  const forbidden = denied(ctx, readRoles);
  if (forbidden !== undefined) return forbidden;
  if (id === undefined) {
    const value = [...ctx.tenant.directoryRoles.values()].map((r) => ({
      id: r.id,
      displayName: r.displayName,
      roleTemplateId: r.roleTemplateId,
    }));
    return { status: 200, body: { '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryRoles`, value } };
  }
  const role = ctx.tenant.directoryRoles.get(id);
  if (role === undefined) return notFound(ctx, id);
  if (segment === undefined)
    return {
      status: 200,
      body: { id: role.id, displayName: role.displayName, roleTemplateId: role.roleTemplateId },
    };
  if (segment !== 'members') return notFound(ctx, segment);
  const value = [...role.members]
    .filter((memberId) => ctx.tenant.users.get(memberId)?.deletedAtMs === undefined)
    .map((memberId) => ({ '@odata.type': '#microsoft.graph.user', id: memberId }));
  return { status: 200, body: { '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryObjects`, value } };
}
