import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canAccessCustomer, type Caller } from '../domain/caller.js';
import type { Operation } from '../domain/operation.js';
import {
  countMonth,
  evidenceEventSchema,
  monthBounds,
  monthSchema,
  previousMonth,
  splaProductSchema,
  splaRuleSchema,
  toCsv,
  type EvidenceEvent,
  type EvidenceMember,
  type ProductCount,
  type ProductRule,
  type SplaProduct,
  type SplaRule,
} from '../domain/spla.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { CloudDirectory } from '../ports/cloud-directory.js';
import type { OnPremDirectory } from '../ports/on-prem-directory.js';
import type { Store } from '../ports/store.js';
import { customersCollection, loadCustomer } from './customers.js';
import { engineCollections, userPartition } from './operations/records.js';

/**
 * SPLA usage reporting (issue 17): products and rules per provider and customer, the evidence of
 * directory membership over time (append-only, per customer and month), the monthly report computed
 * from it (shared/domain/spla.ts), closing a month (frozen) and corrections with their reason.
 *
 * Evidence comes from the directory events atria-m365 itself performs (every finished group, enable,
 * disable and delete operation, told by the engine) and from whatever else is appended through
 * `appendEvidence` (a snapshot or the agent's change feed).
 */
export interface SplaDeps {
  store: Store;
  clock: Clock;
  /** Resellers accept corrections for a while after a month is reported (default 90 days). */
  correctionWindowInDays?: number;
  /** For the daily snapshot of the Entra groups rules name (the safety net for changes made elsewhere). */
  cloudDirectory?: (tenantId: string) => CloudDirectory;
  /**
   * For the agent's change feed (USN watermark: enables, disables, deletes and attributes made in AD) and
   * the daily snapshot of the AD groups rules name.
   */
  onPremDirectory?: (siteId: string) => Promise<OnPremDirectory>;
}

const storedRuleSchema = z.object({ rule: splaRuleSchema, updatedAt: z.string() });
const storedProductSchema = z.object({ product: splaProductSchema, updatedAt: z.string() });
const customerIndexSchema = z.object({ providerId: z.string(), customerId: z.string() });
const watermarkSchema = z.object({ siteId: z.string(), watermark: z.string(), readAt: z.string() });
const countedUserSchema = z.object({
  userId: z.string(),
  from: z.string(),
  to: z.string(),
  days: z.number(),
  rule: z.string(),
  counted: z.boolean(),
  excludedAs: z.enum(['serviceAccount', 'admin']).optional(),
});
const productCountSchema = z.object({
  productId: z.string(),
  name: z.string(),
  sku: z.string(),
  unit: z.enum(['user', 'core']),
  quantity: z.number(),
  users: z.array(countedUserSchema),
});
const monthReportSchema = z.object({
  month: z.string(),
  customerId: z.string(),
  state: z.enum(['draft', 'closed']),
  preparedAt: z.string(),
  closedAt: z.string().optional(),
  /** sha256 of the counts as computed from the evidence (the same evidence always gives the same hash). */
  evidenceDigest: z.string(),
  counts: z.array(productCountSchema),
});
export type MonthReport = z.infer<typeof monthReportSchema>;

export const correctionInputSchema = z.strictObject({
  customerId: z.string().min(1),
  productId: z.string().min(1),
  /** The corrected quantity for that customer, product and month. */
  quantity: z.number().int().nonnegative(),
  reason: z.string().trim().min(3).max(1000),
});
const correctionSchema = correctionInputSchema.extend({ at: z.string(), by: z.string() });
export type Correction = z.infer<typeof correctionSchema>;

const reportRowSchema = z.strictObject({
  customerId: z.string(),
  productId: z.string(),
  product: z.string(),
  sku: z.string(),
  unit: z.enum(['user', 'core']),
  quantity: z.number().int(),
  /** The quantity before corrections, when there are any. */
  computedQuantity: z.number().int(),
  state: z.enum(['draft', 'closed']),
  corrections: z.array(correctionSchema),
});
export type ReportRow = z.infer<typeof reportRowSchema>;

const reportDetailSchema = z.strictObject({
  customerId: z.string(),
  productId: z.string(),
  sku: z.string(),
  userId: z.string(),
  /** First and last instant of the month the user was authorised and enabled. */
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  days: z.number().int(),
  rule: z.string(),
  counted: z.boolean(),
  excludedAs: z.enum(['serviceAccount', 'admin']).optional(),
});

const splaReportSchema = z.strictObject({
  month: monthSchema,
  rows: z.array(reportRowSchema),
  /** With `view=detail`: each counted (or excluded) user with dates and the rule, per customer and product. */
  details: z.array(reportDetailSchema).optional(),
});
export type SplaReport = z.infer<typeof splaReportSchema>;

/** What each SPLA route answers (the OpenAPI document is generated from these). */
export const splaResponseSchemas = {
  product: splaProductSchema.extend({ productId: z.string() }),
  products: z.strictObject({ value: z.array(splaProductSchema.extend({ productId: z.string() })) }),
  rule: z.strictObject({ customerId: z.string(), productId: z.string(), rule: splaRuleSchema }),
  rules: z.strictObject({ value: z.array(z.strictObject({ productId: z.string(), rule: splaRuleSchema })) }),
  appended: z.strictObject({ added: z.number().int().nonnegative() }),
  evidence: z.strictObject({ value: z.array(evidenceEventSchema) }),
  report: splaReportSchema,
  closed: z.strictObject({
    value: z.array(
      z.strictObject({
        month: monthSchema,
        customerId: z.string(),
        closedAt: z.string().optional(),
        evidenceDigest: z.string(),
      }),
    ),
  }),
  correction: correctionSchema,
};

const customerPartition = (providerId: string, customerId: string): string => `${providerId}/${customerId}`;
const INDEX = 'all';

function digest(counts: ProductCount[]): string {
  return createHash('sha256').update(JSON.stringify(counts)).digest('base64url');
}

/** The group key evidence uses for a membership operation's group. */
const groupKeyOf = (r: { directory: 'ad' | 'entra'; groupId: string }): string =>
  `${r.directory}.${r.groupId}`;

/** When an operation's directory change took effect: its last finished step (else its last update). */
function effectiveAt(o: Operation): string {
  const times = o.steps.map((s) => s.finishedAt).filter((t): t is string => t !== undefined);
  return times.sort().at(-1) ?? o.updatedAt;
}

/** The evidence a finished operation leaves (none for a failed one: nothing changed in the directory). */
export function evidenceFromOperation(o: Operation): EvidenceEvent[] {
  if (o.state !== 'succeeded') return [];
  const base = { at: effectiveAt(o), source: 'operation' as const, ref: o.operationId };
  switch (o.kind) {
    case 'user.groupAdd':
      return [
        { ...base, type: 'member.added', groupKey: groupKeyOf(o.request), member: { userId: o.userId } },
      ];
    case 'user.groupRemove':
      return [
        { ...base, type: 'member.removed', groupKey: groupKeyOf(o.request), member: { userId: o.userId } },
      ];
    case 'user.create':
      return [
        { ...base, type: o.request.accountEnabled ? 'user.enabled' : 'user.disabled', userId: o.userId },
      ];
    case 'user.enable':
      return [{ ...base, type: 'user.enabled', userId: o.userId }];
    case 'user.disable':
      return [{ ...base, type: 'user.disabled', userId: o.userId }];
    case 'user.delete':
      return [{ ...base, type: 'user.deleted', userId: o.userId }];
    default:
      return [];
  }
}

export function createSpla(deps: SplaDeps) {
  const products = deps.store.collection('splaproducts', storedProductSchema);
  const rules = deps.store.collection('splarules', storedRuleSchema);
  const customers = deps.store.collection('splacustomers', customerIndexSchema);
  const evidence = deps.store.collection('splaevidence', evidenceEventSchema);
  const reports = deps.store.collection('splareports', monthReportSchema);
  const corrections = deps.store.collection('splacorrections', correctionSchema);
  const watermarks = deps.store.collection('splawatermarks', watermarkSchema);
  const windowInMs = (deps.correctionWindowInDays ?? 90) * 86_400_000;
  const now = (): string => deps.clock.now().toISOString();

  // ---- products and rules -------------------------------------------------------------------------

  async function putProduct(caller: Caller, productId: string, product: SplaProduct) {
    if (caller.customerIds !== undefined)
      throw new AppError('OutOfScope', 'a credential narrowed to some customers cannot change SPLA products');
    await products.upsert(caller.providerId, productId, { product, updatedAt: now() });
    return { productId, ...product };
  }

  async function listProducts(caller: Caller) {
    const out: Array<{ productId: string } & SplaProduct> = [];
    for await (const row of products.list(caller.providerId))
      out.push({ productId: row.rowKey, ...row.value.product });
    return out;
  }

  async function putRule(caller: Caller, customerId: string, productId: string, rule: SplaRule) {
    await loadCustomer(deps.store, caller, customerId);
    const product = await products.get(caller.providerId, productId);
    if (product === undefined) throw new AppError('NotFound', `SPLA product ${productId} not found`);
    if ((product.value.product.unit === 'core') !== (rule.fixedQuantity !== undefined))
      throw new AppError(
        'Validation',
        product.value.product.unit === 'core'
          ? 'a per-core product takes a fixedQuantity'
          : 'a per-user product takes authorisedBy (users are counted)',
        { details: { errors: [{ path: 'body', message: 'rule does not fit the product unit' }] } },
      );
    await rules.upsert(customerPartition(caller.providerId, customerId), productId, {
      rule,
      updatedAt: now(),
    });
    await customers.upsert(INDEX, customerPartition(caller.providerId, customerId), {
      providerId: caller.providerId,
      customerId,
    });
    return { customerId, productId, rule };
  }

  async function productRules(providerId: string, customerId: string): Promise<ProductRule[]> {
    const out: ProductRule[] = [];
    for await (const row of rules.list(customerPartition(providerId, customerId))) {
      const product = await products.get(providerId, row.rowKey);
      if (product !== undefined)
        out.push({ productId: row.rowKey, product: product.value.product, rule: row.value.rule });
    }
    return out;
  }

  async function listRules(caller: Caller, customerId: string) {
    await loadCustomer(deps.store, caller, customerId);
    return (await productRules(caller.providerId, customerId)).map((p) => ({
      productId: p.productId,
      rule: p.rule,
    }));
  }

  // ---- evidence -----------------------------------------------------------------------------------

  /** Appends events (append-only; a replayed event with the same month, instant and ref is not added twice). */
  async function append(
    providerId: string,
    customerId: string,
    events: readonly EvidenceEvent[],
  ): Promise<number> {
    let added = 0;
    for (const [i, e] of events.entries()) {
      const month = e.at.slice(0, 7);
      const rowKey = `${month}|${e.at}|${e.ref}|${String(i).padStart(3, '0')}`;
      try {
        await evidence.create(customerPartition(providerId, customerId), rowKey, e);
        added++;
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
      }
    }
    return added;
  }

  /** The engine's hook: every finished operation leaves its evidence (idempotent: told again after a crash). */
  async function recordOperation(o: Operation): Promise<void> {
    const events = evidenceFromOperation(o);
    if (events.length > 0) await append(o.providerId, o.customerId, events);
  }

  /** Evidence from elsewhere (a snapshot, the agent's change feed, a person), for one of the caller's customers. */
  async function appendEvidence(caller: Caller, customerId: string, events: readonly EvidenceEvent[]) {
    await loadCustomer(deps.store, caller, customerId);
    return { added: await append(caller.providerId, customerId, events) };
  }

  /** Evidence up to the end of `month` (earlier months give the state at its start), in stored order. */
  async function evidenceUpTo(
    providerId: string,
    customerId: string,
    month: string,
  ): Promise<EvidenceEvent[]> {
    const out: EvidenceEvent[] = [];
    for await (const row of evidence.list(customerPartition(providerId, customerId)))
      if (row.rowKey.slice(0, 7) <= month) out.push(row.value);
    return out;
  }

  async function listEvidence(caller: Caller, customerId: string, month: string) {
    await loadCustomer(deps.store, caller, customerId);
    const out: EvidenceEvent[] = [];
    for await (const row of evidence.list(customerPartition(caller.providerId, customerId), {
      rowKeyPrefix: `${month}|`,
    }))
      out.push(row.value);
    return out;
  }

  // ---- reports ------------------------------------------------------------------------------------

  async function compute(providerId: string, customerId: string, month: string): Promise<ProductCount[]> {
    return countMonth(
      month,
      await productRules(providerId, customerId),
      await evidenceUpTo(providerId, customerId, month),
    );
  }

  async function customerIdsOf(caller: Caller, customerId: string | undefined): Promise<string[]> {
    if (customerId !== undefined) {
      await loadCustomer(deps.store, caller, customerId);
      return [customerId];
    }
    const ids: string[] = [];
    for await (const row of customers.list(INDEX, { rowKeyPrefix: `${caller.providerId}/` }))
      if (row.value.providerId === caller.providerId && canAccessCustomer(caller, row.value.customerId))
        ids.push(row.value.customerId);
    return ids.sort();
  }

  async function monthReport(providerId: string, customerId: string, month: string): Promise<MonthReport> {
    const frozen = await reports.get(providerId, `${month}|${customerId}`);
    if (frozen?.value.state === 'closed') return frozen.value;
    const counts = await compute(providerId, customerId, month);
    return { month, customerId, state: 'draft', preparedAt: now(), evidenceDigest: digest(counts), counts };
  }

  async function correctionsOf(providerId: string, month: string, customerId: string): Promise<Correction[]> {
    const out: Correction[] = [];
    for await (const row of corrections.list(`${providerId}/${month}`, { rowKeyPrefix: `${customerId}|` }))
      out.push(row.value);
    return out.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  }

  /** The month's report for the caller's customers (or one), with corrections applied; details on request. */
  async function report(
    caller: Caller,
    month: string,
    options: { customerId?: string; details?: boolean } = {},
  ) {
    monthSchema.parse(month);
    const result: SplaReport = { month, rows: [], ...(options.details === true ? { details: [] } : {}) };
    for (const customerId of await customerIdsOf(caller, options.customerId)) {
      const r = await monthReport(caller.providerId, customerId, month);
      const fixes = await correctionsOf(caller.providerId, month, customerId);
      for (const count of r.counts) {
        const mine = fixes.filter((f) => f.productId === count.productId);
        result.rows.push({
          customerId,
          productId: count.productId,
          product: count.name,
          sku: count.sku,
          unit: count.unit,
          quantity: mine.at(-1)?.quantity ?? count.quantity,
          computedQuantity: count.quantity,
          state: r.state,
          corrections: mine,
        });
        for (const u of count.users)
          result.details?.push({ customerId, productId: count.productId, sku: count.sku, ...u });
      }
    }
    return result;
  }

  function reportCsv(r: SplaReport): string {
    if (r.details !== undefined)
      return toCsv(
        [
          'month',
          'customerId',
          'productId',
          'sku',
          'userId',
          'counted',
          'excludedAs',
          'from',
          'to',
          'days',
          'rule',
        ],
        r.details.map((d) => [
          r.month,
          d.customerId,
          d.productId,
          d.sku,
          d.userId,
          String(d.counted),
          d.excludedAs ?? '',
          d.from,
          d.to,
          d.days,
          d.rule,
        ]),
      );
    return toCsv(
      ['month', 'customerId', 'productId', 'product', 'sku', 'quantity', 'state', 'corrected'],
      r.rows.map((row) => [
        r.month,
        row.customerId,
        row.productId,
        row.product,
        row.sku,
        row.quantity,
        row.state,
        String(row.corrections.length > 0),
      ]),
    );
  }

  /** Freezes a finished month for the caller's customers (or one): later evidence no longer changes it. */
  async function closeMonth(caller: Caller, month: string, customerId?: string) {
    const { end } = monthBounds(month);
    if (deps.clock.now() < end) throw new AppError('Conflict', `${month} has not ended yet`);
    const closed: MonthReport[] = [];
    for (const id of await customerIdsOf(caller, customerId)) {
      const rowKey = `${month}|${id}`;
      const existing = await reports.get(caller.providerId, rowKey);
      if (existing?.value.state === 'closed') {
        closed.push(existing.value);
        continue;
      }
      const counts = await compute(caller.providerId, id, month);
      const frozen: MonthReport = {
        month,
        customerId: id,
        state: 'closed',
        preparedAt: existing?.value.preparedAt ?? now(),
        closedAt: now(),
        evidenceDigest: digest(counts),
        counts,
      };
      // With the etag (or as a create): two closes at once cannot freeze different figures.
      const saved =
        existing === undefined
          ? await reports.create(caller.providerId, rowKey, frozen)
          : await reports.replace(caller.providerId, rowKey, frozen, existing.etag);
      closed.push(saved.value);
    }
    return closed.map(({ month: m, customerId: c, closedAt, evidenceDigest }) => ({
      month: m,
      customerId: c,
      closedAt,
      evidenceDigest,
    }));
  }

  /** A correction to a closed month, with its reason (append-only; the latest one per product wins). */
  async function addCorrection(caller: Caller, month: string, input: z.infer<typeof correctionInputSchema>) {
    await loadCustomer(deps.store, caller, input.customerId);
    const frozen = await reports.get(caller.providerId, `${month}|${input.customerId}`);
    if (frozen?.value.state !== 'closed')
      throw new AppError(
        'Conflict',
        `${month} is not closed for ${input.customerId}: the draft follows the evidence`,
      );
    if (!frozen.value.counts.some((c) => c.productId === input.productId))
      throw new AppError(
        'NotFound',
        `product ${input.productId} is not in ${month}'s report for ${input.customerId}`,
      );
    const at = deps.clock.now();
    if (at.getTime() > monthBounds(month).end.getTime() + windowInMs)
      throw new AppError('Conflict', `corrections for ${month} are no longer accepted (window passed)`);
    const correction: Correction = { ...input, at: at.toISOString(), by: caller.id };
    await corrections.create(
      `${caller.providerId}/${month}`,
      `${input.customerId}|${input.productId}|${correction.at}`,
      correction,
    );
    return correction;
  }

  /** The timer on the 1st: stores the previous month's draft for every customer with SPLA rules. */
  async function prepareDrafts(): Promise<{ month: string; prepared: number }> {
    const month = previousMonth(deps.clock.now());
    let prepared = 0;
    for await (const row of customers.list(INDEX)) {
      const { providerId, customerId } = row.value;
      const rowKey = `${month}|${customerId}`;
      const existing = await reports.get(providerId, rowKey);
      if (existing?.value.state === 'closed') continue;
      const counts = await compute(providerId, customerId, month);
      await reports.upsert(providerId, rowKey, {
        month,
        customerId,
        state: 'draft',
        preparedAt: now(),
        evidenceDigest: digest(counts),
        counts,
      });
      prepared++;
    }
    return { month, prepared };
  }

  /** The groups (keys with `prefix`: `entra.` or `ad.`) the customer's SPLA rules authorise by. */
  async function ruleGroupKeys(providerId: string, customerId: string, prefix: 'entra.' | 'ad.') {
    const keys = new Set<string>();
    for (const rule of await productRules(providerId, customerId))
      if (rule.rule.authorisedBy?.kind === 'groups')
        for (const key of rule.rule.authorisedBy.groups) if (key.startsWith(prefix)) keys.add(key);
    return keys;
  }

  /**
   * The daily safety net: the whole direct membership of every Entra group an SPLA rule names, as a
   * `group.members` event, so changes made outside atria-m365 (the portal, another tool) are evidence
   * too. Members are Atria user ids where the user is ours, else `entra:<object id>` (an account we do
   * not manage still needs its SAL). A member id that is itself one of the rules' groups is a nested group.
   * AD groups are snapshotted by `snapshotAdGroups`, through the site's agent.
   */
  async function snapshotEntraGroups(): Promise<{ customers: number; groups: number; failed: string[] }> {
    const at = now();
    const day = at.slice(0, 10);
    const users = engineCollections(deps.store).users;
    let customerCount = 0;
    let groupCount = 0;
    const failed: string[] = [];
    for await (const row of customers.list(INDEX)) {
      const { providerId, customerId } = row.value;
      const customer = await customersCollection(deps.store).get(providerId, customerId);
      const tenantId = customer?.value.entra?.tenantId;
      if (tenantId === undefined || deps.cloudDirectory === undefined) continue;
      const groupKeys = await ruleGroupKeys(providerId, customerId, 'entra.');
      if (groupKeys.size === 0) continue;
      try {
        const byObjectId = new Map<string, string>();
        for await (const u of users.list(userPartition(providerId, customerId)))
          if (u.value.entra !== undefined) byObjectId.set(u.value.entra.objectId, u.value.userId);
        const objectIdOf = new Map<string, string>();
        const cloud = deps.cloudDirectory(tenantId);
        const events: EvidenceEvent[] = [];
        for (const groupKey of [...groupKeys].sort()) {
          const memberIds = await cloud.listGroupMembers(groupKey.slice('entra.'.length));
          events.push({
            type: 'group.members',
            at,
            source: 'snapshot',
            ref: `snapshot-${day}-${groupKey}`,
            groupKey,
            members: memberIds.sort().map((id) => {
              if (groupKeys.has(`entra.${id}`)) return { groupKey: `entra.${id}` };
              const userId = byObjectId.get(id) ?? `entra:${id}`;
              objectIdOf.set(userId, id);
              return { userId };
            }),
          });
        }
        // Admins are flagged from Entra's directory roles (a rule may exclude them); a member no longer in a
        // role is flagged false again, so nobody stays excluded after losing the role.
        const admins = new Set(await cloud.listDirectoryRoleMemberIds());
        const facts: EvidenceEvent[] = [...objectIdOf].sort().map(([userId, objectId]) => ({
          type: 'user.facts',
          at,
          source: 'snapshot',
          ref: `snapshot-${day}-roles`,
          userId,
          admin: admins.has(objectId),
        }));
        await append(providerId, customerId, [...events, ...facts]);
        customerCount++;
        groupCount += events.length;
      } catch {
        // One tenant that does not answer must not stop the others; it is named in the result.
        failed.push(`${providerId}/${customerId}`);
      }
    }
    return { customers: customerCount, groups: groupCount, failed };
  }

  /**
   * The daily safety net for AD: every AD group an SPLA rule names is listed through the site's agent,
   * nested groups resolved on the DC, and stored as one `group.members` event per group of the chain
   * (its direct users and nested groups), so a member added on the DC directly — which neither our
   * operations nor the change feed (it reports users, not `member` links) see — counts from the
   * snapshot, and a later operation on a nested group still reaches the rule's group. Each listed user's
   * enabled state at that instant comes along. Only objects inside the agent's allowed OUs are ever
   * listed. Users are Atria ids where ours, else `ad:<objectGUID>`.
   */
  async function snapshotAdGroups(): Promise<{ customers: number; groups: number; failed: string[] }> {
    const at = now();
    const day = at.slice(0, 10);
    const users = engineCollections(deps.store).users;
    let customerCount = 0;
    let groupCount = 0;
    const failed: string[] = [];
    for await (const row of customers.list(INDEX)) {
      const { providerId, customerId } = row.value;
      const customer = await customersCollection(deps.store).get(providerId, customerId);
      const siteId = customer?.value.ad?.siteId;
      if (siteId === undefined || deps.onPremDirectory === undefined) continue;
      const groupKeys = await ruleGroupKeys(providerId, customerId, 'ad.');
      if (groupKeys.size === 0) continue;
      try {
        const byGuid = new Map<string, string>();
        for await (const u of users.list(userPartition(providerId, customerId)))
          if (u.value.ad !== undefined) byGuid.set(u.value.ad.objectGuid, u.value.userId);
        const directory = await deps.onPremDirectory(siteId);
        const direct = new Map<string, Map<string, EvidenceMember>>();
        const enabled = new Map<string, boolean>();
        for (const [index, groupKey] of [...groupKeys].sort().entries()) {
          if (direct.has(groupKey)) continue; // already listed as nested in an earlier rule group
          let listed: Awaited<ReturnType<OnPremDirectory['listGroupMembers']>>;
          try {
            listed = await directory.listGroupMembers(
              { objectGuid: groupKey.slice('ad.'.length) },
              // A read: a fresh id per run (the agent answers a repeated command id from its record).
              // A timer's read of a whole group: a large one takes the DC seconds per thousand members.
              {
                commandId: `spla-snap.${customerId}.${index}.${Date.parse(at)}`.slice(0, 100),
                timeoutInMs: 120_000,
              },
            );
          } catch (error) {
            // A group deleted in AD authorises nobody from now on; anything else fails this customer.
            if (!(error instanceof AppError && error.code === 'NotFound')) throw error;
            direct.set(groupKey, new Map<string, EvidenceMember>());
            continue;
          }
          const edgesOf = (guid: string): Map<string, EvidenceMember> => {
            const key = `ad.${guid}`;
            let found = direct.get(key);
            if (found === undefined) direct.set(key, (found = new Map<string, EvidenceMember>()));
            return found;
          };
          edgesOf(listed.group.objectGuid);
          for (const m of listed.members) {
            const member: EvidenceMember =
              m.kind === 'group'
                ? { groupKey: `ad.${m.objectGuid}` }
                : { userId: byGuid.get(m.objectGuid) ?? `ad:${m.objectGuid}` };
            if (m.kind === 'group') edgesOf(m.objectGuid);
            if ('userId' in member && m.enabled !== undefined) enabled.set(member.userId, m.enabled);
            for (const parent of m.memberOf)
              edgesOf(parent).set('userId' in member ? `u:${member.userId}` : `g:${member.groupKey}`, member);
          }
        }
        const events: EvidenceEvent[] = [...direct]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([groupKey, members]): EvidenceEvent => ({
            type: 'group.members',
            at,
            source: 'snapshot',
            ref: `snapshot-${day}-${groupKey}`,
            groupKey,
            members: [...members].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, m]) => m),
          }));
        const states: EvidenceEvent[] = [...enabled]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([userId, on]) => ({
            type: on ? 'user.enabled' : 'user.disabled',
            at,
            source: 'snapshot',
            ref: `snapshot-${day}-ad-state`,
            userId,
          }));
        await append(providerId, customerId, [...events, ...states]);
        customerCount++;
        groupCount += events.length;
      } catch {
        // One site that does not answer must not stop the others; it is named in the result.
        failed.push(`${providerId}/${customerId}`);
      }
    }
    return { customers: customerCount, groups: groupCount, failed };
  }

  /**
   * The agent's change feed for every SPLA customer with AD: users changed since the stored USN
   * watermark become evidence (enabled / disabled / deleted, allow-listed attributes), so a disable made
   * in Active Directory Users and Computers counts from when the feed saw it. Users are Atria ids where
   * ours, else `ad:<objectGUID>`. The watermark moves only after the events are stored.
   */
  async function readChangeFeed(options: { maxPages?: number } = {}): Promise<{
    customers: number;
    events: number;
    failed: string[];
  }> {
    const users = engineCollections(deps.store).users;
    let customerCount = 0;
    let eventCount = 0;
    const failed: string[] = [];
    for await (const row of customers.list(INDEX)) {
      const { providerId, customerId } = row.value;
      const customer = await customersCollection(deps.store).get(providerId, customerId);
      const siteId = customer?.value.ad?.siteId;
      if (siteId === undefined || deps.onPremDirectory === undefined) continue;
      const partition = customerPartition(providerId, customerId);
      try {
        const byGuid = new Map<string, string>();
        for await (const u of users.list(userPartition(providerId, customerId)))
          if (u.value.ad !== undefined) byGuid.set(u.value.ad.objectGuid, u.value.userId);
        const directory = await deps.onPremDirectory(siteId);
        const stored = await watermarks.get(INDEX, partition);
        // A different site (the customer moved) starts its own feed.
        let since = stored?.value.siteId === siteId ? stored.value.watermark : undefined;
        for (let page = 0; page < (options.maxPages ?? 20); page++) {
          const at = now();
          const feed = await directory.listChanges(since, {
            // A read: a fresh id per call (the agent answers a repeated command id from its record).
            commandId: `spla-feed.${customerId}.${since ?? 'start'}.${Date.parse(at)}`.slice(0, 120),
            pageSize: 500,
          });
          const events: EvidenceEvent[] = feed.changes.flatMap((change): EvidenceEvent[] => {
            const userId = byGuid.get(change.objectGuid) ?? `ad:${change.objectGuid}`;
            const base = { at, source: 'changeFeed' as const, ref: `usn-${change.usnChanged}`, userId };
            if ('deleted' in change) return [{ ...base, type: 'user.deleted' }];
            const facts: EvidenceEvent[] =
              Object.keys(change.attributes).length === 0
                ? []
                : [{ ...base, type: 'user.facts', attributes: change.attributes }];
            return [{ ...base, type: change.enabled ? 'user.enabled' : 'user.disabled' }, ...facts];
          });
          eventCount += await append(providerId, customerId, events);
          since = feed.watermark;
          await watermarks.upsert(INDEX, partition, { siteId, watermark: feed.watermark, readAt: at });
          if (!feed.more) break;
        }
        customerCount++;
      } catch {
        failed.push(`${providerId}/${customerId}`);
      }
    }
    return { customers: customerCount, events: eventCount, failed };
  }

  return {
    readChangeFeed,
    snapshotEntraGroups,
    snapshotAdGroups,
    putProduct,
    listProducts,
    putRule,
    listRules,
    recordOperation,
    appendEvidence,
    listEvidence,
    report,
    reportCsv,
    closeMonth,
    addCorrection,
    prepareDrafts,
  };
}

export type Spla = ReturnType<typeof createSpla>;
