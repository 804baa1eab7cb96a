import { z } from 'zod';

/**
 * SPLA usage counting (pure). A Subscriber Access Licence is needed "for each unique individual user …
 * that is authorized to access or otherwise use the licensed products", regardless of actual use (SPLA
 * program page; SPUR; shared/COMMERCE-AND-ONBOARDING.md "SPLA"). So a month's count per customer and
 * product is every distinct user who was authorised — by the product's rule — at any instant of the
 * month while enabled, from the stored evidence of directory membership over time; never sign-ins.
 *
 * The evidence is a list of events (append-only where it is stored). Replaying it in time order gives
 * the directory state at every instant; the count for a month only reads events before the month's end,
 * so a past month is reproduced exactly, whatever was appended later for later months.
 */

const monthPattern = /^\d{4}-(0[1-9]|1[0-2])$/;
export const monthSchema = z.string().regex(monthPattern, 'YYYY-MM');

/** A group as evidence names it: `ad.<objectGUID base64>` or `entra.<object id>`. */
export const groupKeySchema = z.string().regex(/^(ad|entra)\.[A-Za-z0-9+/=_-]{1,64}$/);

const memberSchema = z.union([
  z.strictObject({ userId: z.string().min(1) }),
  z.strictObject({ groupKey: groupKeySchema }),
]);
export type EvidenceMember = z.infer<typeof memberSchema>;

/** Where a fact came from: our own operation, the agent's change feed, or a periodic snapshot. */
export const evidenceSourceSchema = z.enum(['operation', 'changeFeed', 'snapshot', 'manual']);

const common = {
  at: z.iso.datetime(),
  source: evidenceSourceSchema,
  /** What recorded it (operation id, snapshot id…): with `at`, the event's identity (replays are deduplicated). */
  ref: z.string().min(1).max(200),
};

export const evidenceEventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    ...common,
    type: z.literal('member.added'),
    groupKey: groupKeySchema,
    member: memberSchema,
  }),
  z.strictObject({
    ...common,
    type: z.literal('member.removed'),
    groupKey: groupKeySchema,
    member: memberSchema,
  }),
  /** The group's complete direct membership at `at` (a snapshot): replaces what replay had. */
  z.strictObject({
    ...common,
    type: z.literal('group.members'),
    groupKey: groupKeySchema,
    members: z.array(memberSchema),
  }),
  z.strictObject({ ...common, type: z.literal('user.enabled'), userId: z.string().min(1) }),
  z.strictObject({ ...common, type: z.literal('user.disabled'), userId: z.string().min(1) }),
  z.strictObject({ ...common, type: z.literal('user.deleted'), userId: z.string().min(1) }),
  /** Facts rules read: service account / administrator flags, attribute values, Atria service flags. */
  z.strictObject({
    ...common,
    type: z.literal('user.facts'),
    userId: z.string().min(1),
    serviceAccount: z.boolean().optional(),
    admin: z.boolean().optional(),
    attributes: z.record(z.string(), z.string().nullable()).optional(),
    services: z.array(z.string()).optional(),
  }),
]);
export type EvidenceEvent = z.infer<typeof evidenceEventSchema>;

/** A product the provider reports (per user: SAL; per core: a fixed monthly quantity per customer). */
export const splaProductSchema = z.strictObject({
  name: z.string().min(1).max(200),
  sku: z.string().min(1).max(64),
  unit: z.enum(['user', 'core']),
});
export type SplaProduct = z.infer<typeof splaProductSchema>;

/** Per customer and product: who is authorised, who is excluded, or a fixed quantity (per core). */
export const splaRuleSchema = z
  .strictObject({
    authorisedBy: z
      .discriminatedUnion('kind', [
        /** Members of any of these groups, nested membership counted. */
        z.strictObject({ kind: z.literal('groups'), groups: z.array(groupKeySchema).min(1).max(100) }),
        z.strictObject({ kind: z.literal('attribute'), name: z.string().min(1), value: z.string() }),
        z.strictObject({ kind: z.literal('service'), flag: z.string().min(1) }),
      ])
      .optional(),
    /** The documented exclusions, chosen per rule; an excluded user is listed with the reason, not counted. */
    exclude: z
      .strictObject({ serviceAccounts: z.boolean().default(true), admins: z.boolean().default(false) })
      .default({ serviceAccounts: true, admins: false }),
    /** Per-core products: the quantity reported every month. */
    fixedQuantity: z.number().int().nonnegative().optional(),
  })
  .refine((r) => (r.authorisedBy === undefined) !== (r.fixedQuantity === undefined), {
    message: 'give either authorisedBy (per-user products) or fixedQuantity (per-core products)',
  });
export type SplaRule = z.infer<typeof splaRuleSchema>;

export interface ProductRule {
  productId: string;
  product: SplaProduct;
  rule: SplaRule;
}

export interface CountedUser {
  userId: string;
  /** First and last instant of the month the user was authorised and enabled. */
  from: string;
  to: string;
  /** Calendar days (UTC) of the month with at least one such instant. */
  days: number;
  /** What counted them: the rule, and for groups the group(s) that carried the authorisation. */
  rule: string;
  counted: boolean;
  /** Why a user who was authorised is not counted (serviceAccount, admin). */
  excludedAs?: 'serviceAccount' | 'admin';
}

export interface ProductCount {
  productId: string;
  name: string;
  sku: string;
  unit: 'user' | 'core';
  quantity: number;
  users: CountedUser[];
}

export function monthBounds(month: string): { start: Date; end: Date } {
  const parsed = monthSchema.parse(month);
  const year = Number(parsed.slice(0, 4));
  const index = Number(parsed.slice(5, 7)) - 1;
  return { start: new Date(Date.UTC(year, index, 1)), end: new Date(Date.UTC(year, index + 1, 1)) };
}

/** The month before `at` (UTC): what the timer on the 1st prepares. */
export function previousMonth(at: Date): string {
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() - 1, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

const memberKey = (m: EvidenceMember): string => ('userId' in m ? `u:${m.userId}` : `g:${m.groupKey}`);

interface UserFacts {
  enabled: boolean;
  deleted: boolean;
  serviceAccount: boolean;
  admin: boolean;
  attributes: Map<string, string>;
  services: Set<string>;
}

/** Directory state built by replay. Users not seen enabled/disabled are taken as enabled. */
class DirectoryState {
  readonly members = new Map<string, Map<string, EvidenceMember>>();
  readonly users = new Map<string, UserFacts>();

  user(userId: string): UserFacts {
    let facts = this.users.get(userId);
    if (facts === undefined) {
      facts = {
        enabled: true,
        deleted: false,
        serviceAccount: false,
        admin: false,
        attributes: new Map(),
        services: new Set(),
      };
      this.users.set(userId, facts);
    }
    return facts;
  }

  private group(groupKey: string): Map<string, EvidenceMember> {
    let found = this.members.get(groupKey);
    if (found === undefined) {
      found = new Map();
      this.members.set(groupKey, found);
    }
    return found;
  }

  apply(e: EvidenceEvent): void {
    switch (e.type) {
      case 'member.added':
        this.group(e.groupKey).set(memberKey(e.member), e.member);
        if ('userId' in e.member) this.user(e.member.userId);
        return;
      case 'member.removed':
        this.group(e.groupKey).delete(memberKey(e.member));
        return;
      case 'group.members': {
        const group = this.group(e.groupKey);
        group.clear();
        for (const m of e.members) {
          group.set(memberKey(m), m);
          if ('userId' in m) this.user(m.userId);
        }
        return;
      }
      case 'user.enabled': {
        const u = this.user(e.userId);
        u.enabled = true;
        u.deleted = false;
        return;
      }
      case 'user.disabled':
        this.user(e.userId).enabled = false;
        return;
      case 'user.deleted': {
        this.user(e.userId).deleted = true;
        // A deleted account is gone from every group.
        for (const group of this.members.values()) group.delete(`u:${e.userId}`);
        return;
      }
      case 'user.facts': {
        const u = this.user(e.userId);
        if (e.serviceAccount !== undefined) u.serviceAccount = e.serviceAccount;
        if (e.admin !== undefined) u.admin = e.admin;
        for (const [name, value] of Object.entries(e.attributes ?? {})) {
          if (value === null) u.attributes.delete(name);
          else u.attributes.set(name, value);
        }
        if (e.services !== undefined) u.services = new Set(e.services);
        return;
      }
    }
  }

  /** Users that are members of `groupKey`, directly or through nested groups (cycles are safe). */
  transitiveUsers(groupKey: string): Set<string> {
    const users = new Set<string>();
    const seen = new Set<string>([groupKey]);
    const queue = [groupKey];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      for (const member of this.members.get(next)?.values() ?? []) {
        if ('userId' in member) users.add(member.userId);
        else if (!seen.has(member.groupKey)) {
          seen.add(member.groupKey);
          queue.push(member.groupKey);
        }
      }
    }
    return users;
  }
}

/** Who the rule authorises now, with the groups that carry it (for the detail view). */
function authorised(state: DirectoryState, rule: NonNullable<SplaRule['authorisedBy']>): Map<string, string> {
  const out = new Map<string, string>();
  switch (rule.kind) {
    case 'groups':
      for (const group of rule.groups)
        for (const userId of state.transitiveUsers(group)) {
          const before = out.get(userId);
          out.set(userId, before === undefined ? `group ${group}` : `${before}, ${group}`);
        }
      return out;
    case 'attribute':
      for (const [userId, facts] of state.users)
        if (facts.attributes.get(rule.name) === rule.value)
          out.set(userId, `attribute ${rule.name}=${rule.value}`);
      return out;
    case 'service':
      for (const [userId, facts] of state.users)
        if (facts.services.has(rule.flag)) out.set(userId, `service ${rule.flag}`);
      return out;
  }
}

/** Sorts evidence by time; events at the same instant keep the order they were stored in. */
export function orderEvidence(events: readonly EvidenceEvent[]): EvidenceEvent[] {
  return events
    .map((e, i) => ({ e, i, t: Date.parse(e.at) }))
    .sort((a, b) => a.t - b.t || a.i - b.i)
    .map((x) => x.e);
}

const dayIndex = (ms: number): number => Math.floor(ms / 86_400_000);

interface Track {
  from: number;
  to: number;
  days: Set<number>;
  rules: Set<string>;
  /** Authorised at some instant while not excluded by the rule: counted. */
  counted: boolean;
  /** The exclusion seen while authorised (shown when the user was never counted). */
  excludedAs?: 'serviceAccount' | 'admin';
  openSince?: number;
}

/**
 * The month's count of one customer, per product. `events` may hold any history (earlier months give
 * the state at the month's start); events at or after the month's end are ignored. Deterministic: the
 * same evidence gives the same result, field for field, in the same order.
 */
export function countMonth(
  month: string,
  products: readonly ProductRule[],
  events: readonly EvidenceEvent[],
): ProductCount[] {
  const { start, end } = monthBounds(month);
  const startMs = start.getTime();
  const endMs = end.getTime();
  const perUser = products.filter((p) => p.product.unit === 'user' && p.rule.authorisedBy !== undefined);
  const tracks = new Map<string, Map<string, Track>>(perUser.map((p) => [p.productId, new Map()]));
  const state = new DirectoryState();

  /** Looks at the state at instant `t` (within the month) and extends or closes each user's interval. */
  const observe = (t: number): void => {
    for (const p of perUser) {
      const byUser = tracks.get(p.productId);
      const authorisedBy = p.rule.authorisedBy;
      if (byUser === undefined || authorisedBy === undefined) continue;
      const now = authorised(state, authorisedBy);
      for (const [userId, why] of now) {
        const facts = state.user(userId);
        if (!facts.enabled || facts.deleted) continue;
        let track = byUser.get(userId);
        if (track === undefined) {
          track = { from: t, to: t, days: new Set(), rules: new Set(), counted: false };
          byUser.set(userId, track);
        }
        track.rules.add(why);
        // Exclusions hold per instant: an admin who loses the role is a user like any other from then on.
        const excluded =
          p.rule.exclude.serviceAccounts && facts.serviceAccount
            ? 'serviceAccount'
            : p.rule.exclude.admins && facts.admin
              ? 'admin'
              : undefined;
        if (excluded === undefined) track.counted = true;
        else track.excludedAs ??= excluded;
        track.openSince ??= t;
        track.to = t;
        track.days.add(dayIndex(t));
      }
      // Close intervals of users no longer authorised-and-enabled: their days run up to t (exclusive).
      for (const [userId, track] of byUser) {
        if (track.openSince === undefined) continue;
        const facts = state.user(userId);
        if (now.has(userId) && facts.enabled && !facts.deleted) continue;
        close(track, t);
      }
    }
  };
  const close = (track: Track, t: number): void => {
    const since = track.openSince;
    if (since === undefined) return;
    const last = Math.max(since, t - 1);
    for (let d = dayIndex(since); d <= dayIndex(last); d++) track.days.add(d);
    track.to = Math.max(track.to, last);
    delete track.openSince;
  };

  // Events at one instant are one change (a group move, a snapshot with its facts): the state is looked
  // at after all of them, never between.
  const ordered = orderEvidence(events);
  let observedStart = false;
  for (let i = 0; i < ordered.length;) {
    const t = Date.parse(ordered[i]?.at ?? '');
    if (t >= endMs) break;
    if (t >= startMs && !observedStart) {
      observe(startMs);
      observedStart = true;
    }
    for (let e = ordered[i]; e !== undefined && Date.parse(e.at) === t; e = ordered[++i]) state.apply(e);
    if (t >= startMs) observe(t);
  }
  if (!observedStart) observe(startMs);
  for (const byUser of tracks.values()) for (const track of byUser.values()) close(track, endMs);

  return [...products]
    .sort((a, b) => a.productId.localeCompare(b.productId))
    .map((p): ProductCount => {
      if (p.product.unit === 'core' || p.rule.authorisedBy === undefined)
        return {
          productId: p.productId,
          name: p.product.name,
          sku: p.product.sku,
          unit: p.product.unit,
          quantity: p.rule.fixedQuantity ?? 0,
          users: [],
        };
      const users = [...(tracks.get(p.productId) ?? new Map<string, Track>())]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([userId, track]): CountedUser => {
          const excludedAs = track.counted ? undefined : track.excludedAs;
          return {
            userId,
            from: new Date(track.from).toISOString(),
            to: new Date(track.to).toISOString(),
            days: track.days.size,
            rule: [...track.rules].sort().join('; '),
            counted: track.counted,
            ...(excludedAs === undefined ? {} : { excludedAs }),
          };
        });
      return {
        productId: p.productId,
        name: p.product.name,
        sku: p.product.sku,
        unit: p.product.unit,
        quantity: users.filter((u) => u.counted).length,
        users,
      };
    });
}

/** One CSV field (RFC 4180: quote when needed, double the quotes). */
export function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(
  header: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
