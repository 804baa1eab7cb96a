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
import { groupView } from './groups.js';
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
  /** The collection the token tracks: absent for users, 'groups' for groups/delta. */
  k: z.literal('groups').optional(),
});
type DeltaState = z.infer<typeof stateSchema>;

const collectionOf = (state: DeltaState): string => state.k ?? 'users';

function link(ctx: GraphContext, kind: '$skiptoken' | '$deltatoken', state: DeltaState): string {
  const bound: DeltaState = { ...state, n: ctx.tenant.id, e: ctx.tenant.epoch };
  return `${ctx.graphBaseUrl}/${collectionOf(state)}/delta?${kind}=${encodeToken(bound)}`;
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
    Location: `${ctx.graphBaseUrl}/${collectionOf(state)}/delta?${restart.toString()}`,
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
    if (state.k !== undefined)
      return graphError(ctx, 400, 'syncStateInvalid', 'The delta or skip token is invalid.');
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

/**
 * GET /groups/delta (group-delta.md, concepts/delta-query-groups.md). The first round returns every
 * group with, when members are tracked, all its members in `members@delta`; later rounds return groups
 * created or changed since (all their members) and groups whose membership changed (only the changed
 * members, removed ones with `@removed: {reason: "deleted"}`); deleted groups come with `@removed`.
 * `$select` limits what is tracked: without it the default properties and members are; with it only the
 * selected ones, and members only when `members` is selected — a membership change is not reported to
 * a round that does not track members. `id` is always returned; `$filter` only on id (≤ 50).
 */
export function groupDelta(ctx: GraphContext, req: GraphRequest): GraphResponse {
  const forbidden = denied(ctx, permissions.readGroups);
  if (forbidden !== undefined) return forbidden;
  for (const unsupported of ['$top', '$orderby', '$expand']) {
    if (req.query.has(unsupported))
      return badRequest(ctx, `The query option '${unsupported}' is not supported with delta queries.`);
  }
  const now = ctx.state.clock.nowMs();
  const fresh = (): DeltaState => ({
    w: 0,
    s: parseSelect(req.query),
    f: req.query.get('$filter') ?? undefined,
    t: now,
    k: 'groups',
  });
  const skipToken = req.query.get('$skiptoken');
  const deltaToken = req.query.get('$deltatoken');
  if (deltaToken === 'latest')
    return {
      status: 200,
      body: {
        '@odata.context': `${ctx.graphBaseUrl}/$metadata#groups`,
        '@odata.deltaLink': link(ctx, '$deltatoken', { ...fresh(), w: ctx.tenant.seq }),
        value: [],
      },
    };
  let state: DeltaState;
  const token = skipToken ?? (deltaToken === '' ? null : deltaToken);
  if (token !== null) {
    const parsed = stateSchema.safeParse(decodeToken(token));
    if (!parsed.success || parsed.data.k !== 'groups')
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
  } else state = fresh();

  let idFilter: ((id: string) => boolean) | undefined;
  if (state.f !== undefined) {
    try {
      const parsed = parseFilter(state.f);
      if (
        [...parsed.properties].some((p) => p !== 'id') ||
        (state.f.match(/\bid\s+eq\b/gi)?.length ?? 0) > 50
      )
        return badRequest(ctx, "Delta queries support only $filter on id eq '…' for at most 50 ids.");
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
  const within = (seq: number): boolean => seq > state.w && seq <= upTo;
  const tracksMembers = state.s === undefined || state.s.includes('members');
  const propSelect =
    state.s === undefined ? undefined : [...new Set([...state.s.filter((p) => p !== 'members'), 'id'])];
  const member = (id: string, removed = false) => ({
    '@odata.type': '#microsoft.graph.user',
    id,
    ...(removed ? { '@removed': { reason: 'deleted' } } : {}),
  });
  const entries: { seq: number; body: Record<string, unknown> }[] = [];
  for (const group of ctx.tenant.groups.values()) {
    if (idFilter !== undefined && !idFilter(group.id)) continue;
    const whole = (group.memberChanges?.length ?? 0) > 0 ? (group.wholeSeq ?? group.seq) : group.seq;
    const body = groupView(group, propSelect);
    if (initial || within(whole)) {
      if (whole > upTo) continue;
      if (tracksMembers) body['members@delta'] = [...group.members].map((id) => member(id));
      entries.push({ seq: group.seq, body });
      continue;
    }
    if (!tracksMembers) continue;
    // The net change of each member within the round (the last write wins).
    const net = new Map<string, boolean>();
    for (const change of group.memberChanges ?? [])
      if (within(change.seq)) net.set(change.memberId, change.removed);
    if (net.size === 0) continue;
    body['members@delta'] = [...net].map(([id, removed]) => member(id, removed));
    entries.push({ seq: group.seq, body });
  }
  if (!initial)
    for (const [id, seq] of ctx.tenant.groupTombstones)
      if (within(seq) && (idFilter === undefined || idFilter(id)))
        entries.push({ seq, body: { id, '@removed': { reason: 'deleted' } } });
  entries.sort((a, b) => a.seq - b.seq);

  const preferMatch = /odata\.maxpagesize=(\d+)/.exec(req.headers['prefer'] ?? '');
  const pageSize = Math.min(999, Math.max(1, Number(preferMatch?.[1] ?? 100)));
  const offset = state.o ?? 0;
  const body: Record<string, unknown> = { '@odata.context': `${ctx.graphBaseUrl}/$metadata#groups` };
  if (offset + pageSize < entries.length)
    body['@odata.nextLink'] = link(ctx, '$skiptoken', { ...state, u: upTo, o: offset + pageSize });
  else
    body['@odata.deltaLink'] = link(ctx, '$deltatoken', {
      w: upTo,
      s: state.s,
      f: state.f,
      t: now,
      k: 'groups',
    });
  body['value'] = entries.slice(offset, offset + pageSize).map((e) => e.body);
  return { status: 200, body };
}
