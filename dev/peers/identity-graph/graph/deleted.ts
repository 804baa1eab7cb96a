import type { UserRecord } from '../state.js';
import { denied, notFound, permissions, type GraphContext, type GraphResponse } from './context.js';
import { userView } from './users.js';

function deletedUser(ctx: GraphContext, id: string): UserRecord | undefined {
  const user = ctx.tenant.users.get(id.toLowerCase());
  return user !== undefined && user.deletedAtMs !== undefined && user.purged !== true ? user : undefined;
}

function deletedView(user: UserRecord): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.user',
    ...userView(user, undefined),
    deletedDateTime: new Date(user.deletedAtMs ?? 0).toISOString(),
  };
}

/** /directory/deletedItems (directory-deleteditems-*.md): list, get, restore and permanently delete users. */
export function deletedItems(
  ctx: GraphContext,
  method: string,
  id: string | undefined,
  action: string | undefined,
): GraphResponse {
  const forbidden = denied(ctx, method === 'GET' ? permissions.readUsers : permissions.writeUsers);
  if (forbidden !== undefined) return forbidden;
  if (id === undefined || id === 'microsoft.graph.user') {
    const value = [...ctx.tenant.users.values()]
      .filter((u) => u.deletedAtMs !== undefined && u.purged !== true)
      .map(deletedView);
    return {
      status: 200,
      body: { '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryObjects`, value },
    };
  }
  const user = deletedUser(ctx, id);
  if (user === undefined) return notFound(ctx, id);
  if (method === 'GET' && action === undefined) {
    return {
      status: 200,
      body: {
        '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryObjects/$entity`,
        ...deletedView(user),
      },
    };
  }
  if (method === 'POST' && action === 'restore') {
    user.deletedAtMs = undefined;
    user.seq = ctx.tenant.nextSeq();
    return {
      status: 200,
      body: {
        '@odata.context': `${ctx.graphBaseUrl}/$metadata#directoryObjects/$entity`,
        '@odata.type': '#microsoft.graph.user',
        ...userView(user, undefined),
      },
    };
  }
  if (method === 'DELETE' && action === undefined) {
    user.purged = true;
    user.seq = ctx.tenant.nextSeq();
    return { status: 204 };
  }
  return notFound(ctx, id);
}
