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
});
type DeltaState = z.infer<typeof stateSchema>;

function link(ctx: GraphContext, kind: '$skiptoken' | '$deltatoken', state: DeltaState): string {
  return `${ctx.graphBaseUrl}/users/delta?${kind}=${encodeToken(state)}`;
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
    if (!parsed.success) return badRequest(ctx, 'Invalid delta or skip token.');
    state = parsed.data;
    // concepts/delta-query-overview.md ("Synchronization reset") and errors.md: an expired token gets
    // 410 Gone with syncStateNotFound; the Location header points at a fresh (token-less) round.
    if (now - state.t > deltaTokenLifetimeInMs) {
      const restart = new URLSearchParams();
      if (state.s !== undefined) restart.set('$select', state.s.join(','));
      if (state.f !== undefined) restart.set('$filter', state.f);
      restart.set('$deltatoken', '');
      return graphError(
        ctx,
        410,
        'syncStateNotFound',
        'The delta token has expired; a full synchronization is required.',
        {
          Location: `${ctx.graphBaseUrl}/users/delta?${restart.toString()}`,
        },
      );
    }
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
  const changed = [...ctx.tenant.users.values()]
    .filter((u) => u.seq > state.w && u.seq <= upTo)
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
