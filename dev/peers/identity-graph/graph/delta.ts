import { z } from 'zod';
import { FilterSyntaxError, parseFilter } from './filter.js';
import {
  badRequest,
  decodeToken,
  denied,
  encodeToken,
  graphError,
  parseSelect,
  permissions,
  type GraphContext,
  type GraphRequest,
  type GraphResponse,
} from './context.js';
import { userView } from './users.js';
import { changedFor } from '../state.js';

/** Directory delta tokens live 7 days (concepts/delta-query-overview.md, "Token duration"). */
export const deltaTokenLifetimeInMs = 7 * 24 * 3600 * 1000;

const stateSchema = z.object({
  /** watermark: changes after this tenant sequence number are reported */
  w: z.number().int().min(0),
  /** upper bound of this round, fixed on its first page so paging is stable */
  u: z.number().int().min(0).optional(),
  o: z.number().int().min(0).optional(),
  s: z.array(z.string()).optional(),
  f: z.string().optional(),
  /** issued at (peer clock, ms) */
  t: z.number(),
  /** tenant id and epoch the token belongs to (a token from another tenant or before a reset is unknown) */
  n: z.string().optional(),
  e: z.string().optional(),
});
type DeltaState = z.infer<typeof stateSchema>;

function link(ctx: GraphContext, kind: '$skiptoken' | '$deltatoken', state: DeltaState): string {
  const bound: DeltaState = { ...state, n: ctx.tenant.id, e: ctx.tenant.epoch };
  return `${ctx.graphBaseUrl}/users/delta?${kind}=${encodeToken(bound)}`;
}

/**
 * delta-query-overview.md ("Synchronization reset") and errors.md: a token the service no longer
 * knows — expired after 7 days, or from before a reset — gets 410 Gone with syncStateNotFound; the
 * Location header points at a fresh round (an empty $deltatoken) with the same query options.
 */
function syncReset(ctx: GraphContext, state: DeltaState, message: string): GraphResponse {
  const restart = new URLSearchParams();
  if (state.s !== undefined) restart.set('$select', state.s.join(','));
  if (state.f !== undefined) restart.set('$filter', state.f);
  restart.set('$deltatoken', '');
  return graphError(ctx, 410, 'syncStateNotFound', message, {
    Location: `${ctx.graphBaseUrl}/users/delta?${restart.toString()}`,
  });
}

/**
 * GET /users/delta (user-delta.md, concepts/delta-query-users.md): the first round returns current
 * state, pages carry @odata.nextLink ($skiptoken) until the last one carries @odata.deltaLink
 * ($deltatoken); later rounds return only users changed since, soft-deleted ones with @removed.
 */
export function userDelta(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readUsers);
  if (forbidden !== undefined) return forbidden;
  for (const unsupported of ['$top', '$orderby', '$expand']) {
    if (req.query.has(unsupported))
      return badRequest(ctx, `The query option '${unsupported}' is not supported with delta queries.`);
  }
  const now = ctx.state.clock.nowMs();
  const skipToken = req.query.get('$skiptoken');
  const deltaToken = req.query.get('$deltatoken');
  let state: DeltaState;
  if (deltaToken === 'latest') {
    return {
      status: 200,
      body: {
        '@odata.context': `${ctx.graphBaseUrl}/$metadata#users`,
        '@odata.deltaLink': link(ctx, '$deltatoken', {
          w: ctx.tenant.seq,
          s: parseSelect(req.query),
          f: req.query.get('$filter') ?? undefined,
          t: now,
        }),
        value: [],
      },
    };
  }
  const token = skipToken ?? (deltaToken === '' ? null : deltaToken);
  if (token !== null) {
    const parsed = stateSchema.safeParse(decodeToken(token));
    // errors.md: syncStateInvalid — the token is not one this service issued.
    if (!parsed.success)
      return graphError(ctx, 400, 'syncStateInvalid', 'The delta or skip token is invalid.');
    state = parsed.data;
    if (now - state.t > deltaTokenLifetimeInMs)
      return syncReset(ctx, state, 'The delta token has expired; a full synchronization is required.');
    const foreign = state.n !== undefined && state.n !== ctx.tenant.id;
    const stale = (state.e !== undefined && state.e !== ctx.tenant.epoch) || state.w > ctx.tenant.seq;
    if (foreign || stale)
      return syncReset(
        ctx,
        state,
        'The sync state generation is not found; a full synchronization is required.',
      );
  } else {
    state = { w: 0, s: parseSelect(req.query), f: req.query.get('$filter') ?? undefined, t: now };
  }
  let idFilter: ((id: string) => boolean) | undefined;
  if (state.f !== undefined) {
    try {
      const parsed = parseFilter(state.f);
      if (
        [...parsed.properties].some((p) => p !== 'id') ||
        (state.f.match(/\bid\s+eq\b/gi)?.length ?? 0) > 50
      ) {
        return badRequest(ctx, "Delta queries support only $filter on id eq '…' for at most 50 ids.");
      }
      idFilter = (id) => parsed.test((p) => (p === 'id' ? id : undefined));
    } catch (error) {
      return badRequest(
        ctx,
        `Invalid filter clause: ${error instanceof FilterSyntaxError ? error.message : ''}`,
      );
    }
  }
  const upTo = state.u ?? ctx.tenant.seq;
  const initial = state.w === 0;
  // user-delta.md: $select limits the tracked properties, so a change to only unselected ones is not
  // reported (the watermark still moves past it).
  const tracked = state.s === undefined ? undefined : [...new Set([...state.s, 'id'])];
  const changed = [...ctx.tenant.users.values()]
    .filter((u) => (initial ? u.seq <= upTo : changedFor(u, state.w, upTo, tracked)))
    .filter((u) => !initial || u.deletedAtMs === undefined)
    .filter((u) => idFilter === undefined || idFilter(u.id))
    .sort((a, b) => a.seq - b.seq);
  const preferMatch = /odata\.maxpagesize=(\d+)/.exec(req.headers['prefer'] ?? '');
  const pageSize = Math.min(999, Math.max(1, Number(preferMatch?.[1] ?? 100)));
  const offset = state.o ?? 0;
  const page = changed.slice(offset, offset + pageSize);
  const select = state.s;
  const value = page.map((user) => {
    if (user.deletedAtMs !== undefined) {
      // delta-query-users.md: soft-deleted users carry reason "changed" (still restorable), purged ones "deleted".
      return { id: user.id, '@removed': { reason: user.purged === true ? 'deleted' : 'changed' } };
    }
    const view = userView(user, select === undefined ? undefined : [...new Set([...select, 'id'])]);
    return view;
  });
  // user-delta.md examples: the context stays $metadata#users even with $select.
  const body: Record<string, unknown> = { '@odata.context': `${ctx.graphBaseUrl}/$metadata#users` };
  if (offset + pageSize < changed.length) {
    body['@odata.nextLink'] = link(ctx, '$skiptoken', {
      ...state,
      u: upTo,
      o: offset + pageSize,
      t: state.t,
    });
  } else {
    body['@odata.deltaLink'] = link(ctx, '$deltatoken', { w: upTo, s: state.s, f: state.f, t: now });
  }
  body['value'] = value;
  return { status: 200, body };
}
