import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  autoscalePolicySchema,
  decide,
  decisionKinds,
  decisionStatuses,
  type AutoscalePolicy,
  type Decision,
  type DemandHistory,
  type SupplyLine,
} from '../domain/autoscale.js';
import type { Caller } from '../domain/caller.js';
import {
  deriveLedger,
  subjectOf,
  type LedgerState,
  type SourceKind,
  type SourceSubscription,
} from '../domain/licensing.js';
import { AppError, toAppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Store, Versioned } from '../ports/store.js';
import { loadCustomer } from './customers.js';
import { fromDistributor, fromPartnerCenter, type Licensing, type LicensingConnectors } from './licensing.js';
import { engineCollections, HELD_PARTITION, userPartition } from './operations/records.js';

/**
 * Seat autoscaling (issue 15): per customer and SKU, the pure engine (domain/autoscale.ts) decides;
 * this applies each decision once. A decision row is keyed by its idempotency key (which names the
 * ledger entry it follows), so a retried, crashed or duplicate sweep finds the row and applies nothing
 * twice; Partner Center gets the same operationKey on a repeat, and quantities are absolute.
 */

export const autoscalePolicyInputSchema = autoscalePolicySchema.extend({
  /** Known starters and leavers per SKU (lower-case skuId), until user requests carry dates. */
  expected: z
    .record(
      z.string(),
      z.strictObject({
        starters: z.number().int().nonnegative().default(0),
        leavers: z.number().int().nonnegative().default(0),
      }),
    )
    .default({}),
  /** Users with a start date (or end date) up to this many days ahead count as starters (leavers). */
  reserveAheadDays: z.number().int().min(0).max(90).default(14),
});
export type AutoscalePolicyInput = z.infer<typeof autoscalePolicyInputSchema>;

const policyRecordSchema = autoscalePolicyInputSchema.extend({
  providerId: z.string(),
  customerId: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
type PolicyRecord = z.infer<typeof policyRecordSchema>;

const decisionRecordSchema = z.object({
  decisionId: z.string(),
  runId: z.string(),
  trigger: z.enum(['justInTime', 'sweep']),
  at: z.string(),
  customerId: z.string(),
  skuId: z.string(),
  kind: z.enum(decisionKinds),
  status: z.enum(decisionStatuses),
  /** planned → applied | failed; recorded: nothing to send; approved: a person let it through. */
  state: z.enum(['planned', 'applied', 'failed', 'recorded', 'rejected', 'stale']),
  source: z.string().optional(),
  subscriptionId: z.string().optional(),
  from: z.number().int(),
  to: z.number().int(),
  spend: z.number().optional(),
  rule: z.string(),
  reason: z.string(),
  figures: z.record(z.string(), z.union([z.number(), z.string()])),
  idempotencyKey: z.string(),
  appliedAt: z.string().optional(),
  approvedBy: z.string().optional(),
  purchaseRequestId: z.string().optional(),
  lastError: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type DecisionRecord = z.infer<typeof decisionRecordSchema>;

const runRecordSchema = z.object({
  runId: z.string(),
  state: z.enum(['running', 'done']),
  startedAt: z.string(),
  updatedAt: z.string(),
  /** Row key of the last policy fully handled: a resumed run starts after it. */
  after: z.string().default(''),
  customers: z.number().int().default(0),
  seats: z.number().int().default(0),
  spend: z.number().default(0),
  applied: z.number().int().default(0),
  errors: z.number().int().default(0),
  /** The provider a narrowed run covers, or `*` for every provider (the timer's run). */
  scope: z.string().default('*'),
});
export type RunRecord = z.infer<typeof runRecordSchema>;

/** Per customer and SKU: the least and most demand (assigned + held) seen each UTC day, newest last. */
const demandHistorySchema = z.object({
  days: z.array(z.object({ day: z.string(), min: z.number().int(), max: z.number().int() })).default([]),
});

export interface AutoscaleSettings {
  killSwitch: boolean;
  seatsPerRun: number;
  spendPerRun: number;
  /** Customers decided at once (each makes a few Partner Center and Graph calls). */
  concurrency: number;
}

export interface AutoscaleDeps {
  store: Store;
  clock: Clock;
  licensing: Pick<Licensing, 'runImport' | 'licensing' | 'ledger' | 'getSources' | 'createRequest'>;
  /** Appends the ledger entry of a change once per idempotency key (licensing's recordSubscriptionChange). */
  recordChange: (
    providerId: string,
    customerId: string,
    input: {
      subscription: SourceSubscription;
      cause: 'purchase' | 'reduction' | 'renewal';
      actor: string;
      idempotencyKey: string;
      figures: Record<string, number | string>;
    },
  ) => Promise<void>;
  connectors: LicensingConnectors;
  /** Held operations of a provider are queued again after seats were bought for it (the licence sweep's work). */
  resumeHeld: (providerId: string) => Promise<unknown>;
  /** Seats Entra group-based licensing waits for, per lower-case SKU (group-licensing.ts). */
  groupLicensingDemand?: (providerId: string, customerId: string) => Promise<Map<string, number>>;
  settings: () => AutoscaleSettings;
}

const POLICY_PARTITION = 'policies';
const RUN_PARTITION = 'runs';
const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
/**
 * One row per key and status: the same change withheld (kill switch, cap, recommend) and later allowed
 * is a new row that is applied, while a repeat of either finds its own row.
 */
const decisionIdOf = (key: string, status: string): string => sha(`${key}#${status}`).slice(0, 32);
const systemCaller = (providerId: string): Caller => ({ id: 'autoscale', kind: 'apiKey', providerId });
const usable = (s: SourceSubscription): boolean => s.status === 'active' || s.status === 'pending';

export function createAutoscale(deps: AutoscaleDeps) {
  const policies = deps.store.collection('autoscalepolicies', policyRecordSchema);
  const decisions = deps.store.collection('autoscaledecisions', decisionRecordSchema);
  const runs = deps.store.collection('autoscaleruns', runRecordSchema);
  const demandHistory = deps.store.collection('autoscaledemand', demandHistorySchema);
  const engine = engineCollections(deps.store);
  // Customers with a decision sent but not known applied (a lost answer, a crash): the just-in-time run
  // finishes them even when no operation is held any more — the seats may have reached Graph already.
  const unfinishedCustomers = deps.store.collection(
    'autoscaleunfinished',
    z.object({ providerId: z.string(), customerId: z.string() }),
  );
  const UNFINISHED_PARTITION = 'all';
  const now = (): Date => deps.clock.now();

  async function putPolicy(caller: Caller, customerId: string, input: AutoscalePolicyInput) {
    await loadCustomer(deps.store, caller, customerId);
    const record: PolicyRecord = {
      ...input,
      providerId: caller.providerId,
      customerId,
      updatedAt: now().toISOString(),
      updatedBy: caller.id,
    };
    return (await policies.upsert(POLICY_PARTITION, `${caller.providerId}/${customerId}`, record)).value;
  }

  async function getPolicy(caller: Caller, customerId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const found = await policies.get(POLICY_PARTITION, `${caller.providerId}/${customerId}`);
    return (
      found?.value ?? { ...autoscalePolicyInputSchema.parse({}), customerId, providerId: caller.providerId }
    );
  }

  async function listRecords(providerId: string, customerId: string): Promise<DecisionRecord[]> {
    const out: DecisionRecord[] = [];
    for await (const row of decisions.list(`${providerId}/${customerId}`)) out.push(row.value);
    return out.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : a.decisionId < b.decisionId ? 1 : -1));
  }

  async function listDecisions(
    caller: Caller,
    customerId: string,
    limit: number,
    cursor: string | undefined,
  ) {
    await loadCustomer(deps.store, caller, customerId);
    const all = await listRecords(caller.providerId, customerId);
    const start = cursor === undefined ? 0 : all.findIndex((d) => `${d.at}~${d.decisionId}` === cursor) + 1;
    const value = all.slice(start, start + limit);
    const last = value.at(-1);
    return {
      value,
      ...(start + limit < all.length && last !== undefined
        ? {
            nextLink: `/api/customers/${encodeURIComponent(customerId)}/licensing/decisions?limit=${limit}&cursor=${encodeURIComponent(`${last.at}~${last.decisionId}`)}`,
          }
        : {}),
    };
  }

  /** Seats and spend bought for this customer today (UTC), from its applied growth decisions. */
  async function usedToday(
    providerId: string,
    customerId: string,
  ): Promise<{ seats: number; spend: number }> {
    const day = now().toISOString().slice(0, 10);
    let seats = 0;
    let spend = 0;
    for (const d of await listRecords(providerId, customerId)) {
      if (d.kind !== 'grow' || d.state !== 'applied' || d.appliedAt?.slice(0, 10) !== day) continue;
      seats += d.to - d.from;
      spend += d.spend ?? 0;
    }
    return { seats, spend };
  }

  interface CustomerContext {
    providerId: string;
    customerId: string;
    pcCustomerId: string | undefined;
    distributorCompanyId: string | undefined;
    state: LedgerState;
  }

  /** Sends one decision to its source and records the ledger entry; the decision row says it happened. */
  async function send(ctx: CustomerContext, d: DecisionRecord): Promise<void> {
    const operationKey = `autoscale-${sha(d.idempotencyKey).slice(0, 40)}`;
    const previous = ctx.state.subscriptions.find((s) => s.source === d.source && s.id === d.subscriptionId);
    const subscriptionId = d.subscriptionId;
    if (subscriptionId === undefined) throw new AppError('Internal', 'a change names its subscription');
    let after: SourceSubscription;
    if (d.source === 'distributor') {
      const distributor = deps.connectors.distributor;
      if (distributor?.providerId !== ctx.providerId || ctx.distributorCompanyId === undefined)
        throw new AppError('Conflict', 'the distributor connector is not configured for this customer');
      if (d.kind !== 'grow' && d.kind !== 'reduce')
        throw new AppError('Conflict', 'only quantity changes go to the distributor');
      const changed = await distributor.distributor.changeQuantity(
        ctx.distributorCompanyId,
        subscriptionId,
        d.to,
      );
      after = fromDistributor(changed, undefined, previous?.skuId ?? d.skuId);
    } else {
      const pc = deps.connectors.partnerCenter;
      if (pc?.providerId !== ctx.providerId || ctx.pcCustomerId === undefined)
        throw new AppError('Conflict', 'the Partner Center connector is not configured for this customer');
      const changed =
        d.kind === 'grow' || d.kind === 'reduce'
          ? await pc.commerce.changeQuantity(ctx.pcCustomerId, subscriptionId, d.to, { operationKey })
          : await pc.commerce.scheduleRenewalChange(
              ctx.pcCustomerId,
              subscriptionId,
              { quantity: d.to },
              { operationKey },
            );
      after = fromPartnerCenter(changed, previous?.skuId ?? d.skuId);
    }
    await deps.recordChange(ctx.providerId, ctx.customerId, {
      subscription: after,
      cause: d.kind === 'grow' ? 'purchase' : 'reduction',
      actor: d.approvedBy ?? 'autoscale',
      idempotencyKey: d.idempotencyKey,
      figures: {
        ...d.figures,
        rule: d.rule,
        decision: d.kind,
        from: d.from,
        to: d.to,
        decisionId: d.decisionId,
      },
    });
  }

  /**
   * Records a decision once (its key is the row key) and applies it if it is to be applied. A row
   * already applied is left alone; one planned or failed (a crash, a 429) is sent again with the same
   * operation key — the source then changes once.
   */
  async function settle(
    ctx: CustomerContext,
    d: Decision,
    runId: string,
    trigger: DecisionRecord['trigger'],
  ) {
    const p = `${ctx.providerId}/${ctx.customerId}`;
    const decisionId = decisionIdOf(d.idempotencyKey, d.status);
    let row = await decisions.get(p, decisionId);
    if (row === undefined) {
      const record: DecisionRecord = {
        decisionId,
        runId,
        trigger,
        at: now().toISOString(),
        customerId: ctx.customerId,
        skuId: d.skuId,
        kind: d.kind,
        status: d.status,
        state: d.status === 'apply' ? 'planned' : 'recorded',
        ...(d.source === undefined ? {} : { source: d.source }),
        ...(d.subscriptionId === undefined ? {} : { subscriptionId: d.subscriptionId }),
        from: d.from,
        to: d.to,
        ...(d.spend === undefined ? {} : { spend: d.spend }),
        rule: d.rule,
        reason: d.reason,
        figures: d.figures,
        idempotencyKey: d.idempotencyKey,
      };
      try {
        row = await decisions.create(p, decisionId, record);
      } catch (error) {
        row = await decisions.get(p, decisionId);
        if (row === undefined) throw error;
      }
      if (
        d.kind === 'purchaseRequest' &&
        row.value.purchaseRequestId === undefined &&
        d.source !== undefined
      ) {
        // No connector: the existing purchase-request flow is how a person orders and approves.
        const request = await deps.licensing
          .createRequest(
            systemCaller(ctx.providerId),
            ctx.customerId,
            {
              skuId: d.skuId,
              change: d.to - d.from,
              source: d.source === 'distributor' ? 'distributor' : 'partnerCenter',
              ...(d.subscriptionId === undefined ? {} : { subscriptionId: d.subscriptionId }),
              reason: d.reason.slice(0, 1000),
              forWhom: [],
            },
            decisionId,
          )
          .catch(() => undefined);
        if (request !== undefined)
          row = await decisions.replace(
            p,
            decisionId,
            { ...row.value, purchaseRequestId: request.request.requestId },
            row.etag,
          );
      }
    }
    // A stale row (not re-sent after an hour) that fresh state decides again is planned again.
    if (row.value.state === 'stale' && d.status === 'apply')
      row = await decisions.replace(
        p,
        decisionId,
        {
          ...row.value,
          state: 'planned',
          at: now().toISOString(),
          runId,
          figures: d.figures,
          reason: d.reason,
        },
        row.etag,
      );
    if (row.value.state !== 'planned' && row.value.state !== 'failed')
      return { record: row.value, applied: false };
    return finish(ctx, row);
  }

  /** Sends a planned or failed decision and records the outcome on its row. */
  async function finish(ctx: CustomerContext, row: Versioned<DecisionRecord>) {
    const p = `${ctx.providerId}/${ctx.customerId}`;
    await unfinishedCustomers.upsert(UNFINISHED_PARTITION, p, {
      providerId: ctx.providerId,
      customerId: ctx.customerId,
    });
    try {
      await send(ctx, row.value);
    } catch (error) {
      const failure = toAppError(error);
      const failed = await decisions.replace(
        p,
        row.rowKey,
        { ...row.value, state: 'failed', lastError: { code: failure.code, message: failure.message } },
        row.etag,
      );
      return { record: failed.value, applied: false, error: failure };
    }
    const applied: DecisionRecord = { ...row.value, state: 'applied', appliedAt: now().toISOString() };
    delete applied.lastError;
    return { record: (await decisions.replace(p, row.rowKey, applied, row.etag)).value, applied: true };
  }

  /**
   * Decisions planned or failed earlier (a crash, a 429 past the retries, a lost answer) are sent again
   * first, before the sources are read: Partner Center recognises the same operation key (its
   * MS-RequestId) and the quantity is absolute, so the change lands once and its ledger entry carries
   * the decision's figures. One older than an hour is stale: the fresh decision replaces it.
   */
  async function finishUnfinished(
    who: Omit<CustomerContext, 'state'>,
    readState: () => Promise<LedgerState>,
  ): Promise<{ applied: number; grew: boolean }> {
    let applied = 0;
    let grew = false;
    // The ledger is read only when something is left to finish (most runs: nothing).
    let ctx: CustomerContext | undefined;
    const p = `${who.providerId}/${who.customerId}`;
    for await (const row of decisions.list(p)) {
      const d = row.value;
      if (d.state !== 'planned' && d.state !== 'failed') continue;
      if (d.status !== 'apply' && d.approvedBy === undefined) continue;
      if (now().getTime() - Date.parse(d.at) > 3_600_000) {
        await decisions.replace(p, row.rowKey, { ...d, state: 'stale' }, row.etag);
        continue;
      }
      ctx ??= { ...who, state: await readState() };
      const result = await finish(ctx, row);
      if (result.applied) {
        applied += 1;
        grew ||= d.kind === 'grow';
      }
    }
    return { applied, grew };
  }

  interface RunBudget {
    seats: number;
    spend: number;
  }

  /**
   * Adds today's demand to the SKU's history and returns the trailing window the term policy reads.
   * A lost update (two runs at once) keeps the other run's row: the history is advisory, one
   * observation fewer only delays a move to the annual term.
   */
  async function observeDemand(
    providerId: string,
    customerId: string,
    skuId: string,
    demand: number,
    windowInDays: number,
  ): Promise<DemandHistory | undefined> {
    const p = `${providerId}/${customerId}`;
    const today = now().toISOString().slice(0, 10);
    const found = await demandHistory.get(p, skuId);
    const days = [...(found?.value.days ?? [])];
    const last = days.at(-1);
    if (last?.day === today)
      days[days.length - 1] = {
        day: today,
        min: Math.min(last.min, demand),
        max: Math.max(last.max, demand),
      };
    else days.push({ day: today, min: demand, max: demand });
    const from = new Date(Date.parse(`${today}T00:00:00Z`) - (Math.max(1, windowInDays) - 1) * 86_400_000)
      .toISOString()
      .slice(0, 10);
    // The newest observation before the window stays too: with weekly sweeps it is what shows the
    // demand at the window's start, so a window of N days can be covered at all.
    const before = days.filter((d) => d.day < from).at(-1);
    const kept = [...(before === undefined ? [] : [before]), ...days.filter((d) => d.day >= from)];
    try {
      if (found === undefined) await demandHistory.create(p, skuId, { days: kept });
      else await demandHistory.replace(p, skuId, { days: kept }, found.etag);
    } catch (error) {
      if (toAppError(error).code !== 'ConcurrencyConflict') throw error;
    }
    if (kept.length === 0) return undefined;
    // Days between observations (weekly sweeps) count: the window is calendar days since the first kept.
    const first = kept[0]?.day ?? today;
    return {
      days:
        Math.round((Date.parse(`${today}T00:00:00Z`) - Date.parse(`${first}T00:00:00Z`)) / 86_400_000) + 1,
      min: Math.min(...kept.map((d) => d.min)),
      max: Math.max(...kept.map((d) => d.max)),
    };
  }

  /**
   * Starters and leavers per SKU (lower-case) from the user records: a create waiting for its start
   * date within `aheadDays` reserves a seat of each SKU of its plan; a user whose end date falls within
   * them counts each seat it holds as leaving.
   */
  async function scheduledPeople(
    providerId: string,
    customerId: string,
    aheadDays: number,
  ): Promise<Map<string, { starters: number; leavers: number }>> {
    const out = new Map<string, { starters: number; leavers: number }>();
    const at = (sku: string) => {
      const key = sku.toLowerCase();
      let found = out.get(key);
      if (found === undefined) out.set(key, (found = { starters: 0, leavers: 0 }));
      return found;
    };
    const today = now().toISOString().slice(0, 10);
    const until = new Date(now().getTime() + aheadDays * 86_400_000).toISOString().slice(0, 10);
    let plans: { name: string; skus: { skuId: string }[] }[] | undefined;
    for await (const row of engine.users.list(userPartition(providerId, customerId))) {
      const u = row.value;
      if (u.state === 'deleted') continue;
      if (u.endDate !== undefined && u.endDate <= until)
        for (const licence of u.licences) at(licence.skuId).leavers += 1;
      if (
        u.state !== 'provisioning' ||
        u.startDate === undefined ||
        u.startDate <= today ||
        u.startDate > until
      )
        continue;
      const op = (await engine.operations.get(providerId, u.lastOperationId))?.value;
      if (op?.kind !== 'user.create' || op.request.licencePlan === undefined) continue;
      plans ??= (await engine.customers.get(providerId, customerId))?.value.licencePlans ?? [];
      const plan = plans.find((p) => p.name === op.request.licencePlan);
      for (const sku of plan?.skus ?? []) at(sku.skuId).starters += 1;
    }
    return out;
  }

  /** Offer maxima per `productId:skuId`, read from the catalog at most once a day (shared by customers). */
  const maxima = new Map<string, { maximumQuantity: number | undefined; until: number }>();
  async function maximumOf(providerId: string, offerId: string | undefined): Promise<number | undefined> {
    const pc = deps.connectors.partnerCenter;
    const [productId, skuId] = (offerId ?? '').split(':');
    if (pc?.providerId !== providerId || productId === undefined || skuId === undefined) return undefined;
    const key = `${productId}:${skuId}`.toUpperCase();
    const cached = maxima.get(key);
    if (cached !== undefined && cached.until > now().getTime()) return cached.maximumQuantity;
    // Without the catalog the line is treated as unbounded: Partner Center refuses beyond it (2002).
    let offers: Awaited<ReturnType<typeof pc.commerce.findOffers>> | undefined;
    try {
      offers = await pc.commerce.findOffers(productId, skuId);
    } catch {
      offers = undefined;
    }
    const maximumQuantity = offers?.[0]?.maximumQuantity;
    maxima.set(key, {
      maximumQuantity,
      until: now().getTime() + (offers === undefined ? 600_000 : 86_400_000),
    });
    return maximumQuantity;
  }

  /** Reads the customer's sources afresh, decides per SKU and settles each decision. */
  async function runCustomer(
    providerId: string,
    customerId: string,
    trigger: DecisionRecord['trigger'],
    runId: string,
    budget: RunBudget,
  ): Promise<{ decisions: DecisionRecord[]; applied: number; grew: boolean }> {
    const policy = (await policies.get(POLICY_PARTITION, `${providerId}/${customerId}`))?.value;
    if (policy === undefined || policy.mode === 'off') return { decisions: [], applied: 0, grew: false };
    const caller = systemCaller(providerId);
    const before = await deps.licensing.getSources(caller, customerId);
    const unfinished = await finishUnfinished(
      {
        providerId,
        customerId,
        pcCustomerId: before.partnerCenterCustomerId,
        distributorCompanyId: before.distributorCompanyId,
      },
      async () => deriveLedger(await deps.licensing.ledger(caller, customerId)),
    );
    const imported = await deps.licensing.runImport(caller, customerId, {
      importId: `autoscale-${sha(`${runId}:${customerId}`).slice(0, 32)}`,
    });
    if (imported.state !== 'succeeded')
      throw new AppError('Unavailable', `the sources of ${customerId} could not be read; nothing decided`, {
        retryable: true,
      });
    const [view, entries, sources] = await Promise.all([
      deps.licensing.licensing(caller, customerId),
      deps.licensing.ledger(caller, customerId),
      deps.licensing.getSources(caller, customerId),
    ]);
    const state = deriveLedger(entries);
    const ctx: CustomerContext = {
      providerId,
      customerId,
      pcCustomerId: sources.partnerCenterCustomerId,
      distributorCompanyId: sources.distributorCompanyId,
      state,
    };
    const today = await usedToday(providerId, customerId);
    const people = await scheduledPeople(providerId, customerId, policy.reserveAheadDays);
    const fromGroups =
      (await deps.groupLicensingDemand?.(providerId, customerId)) ?? new Map<string, number>();
    const settings = deps.settings();
    const out: DecisionRecord[] = [];
    let applied = unfinished.applied;
    let grew = unfinished.grew;
    for (const sku of view.skus) {
      const skuId = sku.skuId.toLowerCase();
      const supply: SupplyLine[] = [];
      for (const s of state.subscriptions) {
        if (s.skuId?.toLowerCase() !== skuId || !usable(s)) continue;
        supply.push({
          source: s.source,
          subscriptionId: s.id,
          quantity: s.quantity,
          term: s.term,
          lots: s.lots,
          scheduledRenewalQuantity: s.scheduledRenewal?.quantity,
          basis: state.latest.get(subjectOf.subscription(s))?.entryId ?? 'none',
          connected: sources.connectors[s.source],
          ...(s.source === 'partnerCenter'
            ? { maximumQuantity: await maximumOf(providerId, s.offerId) }
            : {}),
        });
      }
      for (const kind of ['ea', 'thirdParty', 'unlabelled'] as SourceKind[]) {
        const seats = sku.supply[kind];
        if (seats > 0)
          supply.push({
            source: kind,
            subscriptionId: `${kind}:${skuId}`,
            quantity: seats,
            term: undefined,
            lots: [],
            scheduledRenewalQuantity: undefined,
            basis: 'graph',
            connected: false,
          });
      }
      const expected = policy.expected[skuId];
      const dated = people.get(skuId);
      const history =
        trigger === 'sweep'
          ? await observeDemand(
              providerId,
              customerId,
              skuId,
              sku.assigned + sku.waitingForSeat,
              policy.terms.stableDays,
            )
          : undefined;
      const { decisions: planned } = decide({
        customerId,
        policy: policy satisfies AutoscalePolicy,
        sourceOrder: sources.assignmentPolicy,
        demand: {
          skuId,
          assigned: sku.assigned,
          // Members of licensed groups waiting for an inherited seat wait like held operations do.
          held: sku.waitingForSeat + (fromGroups.get(skuId) ?? 0),
          reservedStarters: (expected?.starters ?? 0) + (dated?.starters ?? 0),
          scheduledLeavers: (expected?.leavers ?? 0) + (dated?.leavers ?? 0),
        },
        supply,
        now: now(),
        trigger,
        history,
        killSwitch: settings.killSwitch,
        runLeft: { seats: settings.seatsPerRun - budget.seats, spend: settings.spendPerRun - budget.spend },
        customerToday: today,
      });
      let movedToAnnual = false;
      for (const d of planned) {
        // Monthly seats moved to the annual term go back only once the annual seats were bought.
        if (d.rule === 'movedToAnnual' && !movedToAnnual) continue;
        if (d.kind === 'grow' && d.status === 'apply') {
          // Taken from the run's caps before any await, so customers decided in parallel cannot overspend.
          budget.seats += d.to - d.from;
          budget.spend += d.spend ?? 0;
          today.seats += d.to - d.from;
          today.spend += d.spend ?? 0;
        }
        const settled = await settle(ctx, d, runId, trigger);
        if (d.rule === 'stableDemandToAnnual') movedToAnnual = settled.record.state === 'applied';
        out.push(settled.record);
        if (settled.applied) {
          applied += 1;
          if (d.kind === 'grow') grew = true;
        }
      }
    }
    return { decisions: out, applied, grew };
  }

  /**
   * Just in time: every customer with operations held for a seat gets one growth per SKU covering all
   * of them (50 users waiting → one quantity change), then the held operations are queued again.
   */
  async function justInTime(runId = `jit-${now().toISOString()}`) {
    const customers = new Map<string, { providerId: string; customerId: string }>();
    for await (const held of engine.held.list(HELD_PARTITION))
      customers.set(`${held.value.providerId}/${held.value.customerId}`, {
        providerId: held.value.providerId,
        customerId: held.value.customerId,
      });
    for await (const row of unfinishedCustomers.list(UNFINISHED_PARTITION))
      customers.set(row.rowKey, { providerId: row.value.providerId, customerId: row.value.customerId });
    const budget: RunBudget = { seats: 0, spend: 0 };
    let applied = 0;
    const grew = new Set<string>();
    const errors: { customerId: string; code: string; message: string }[] = [];
    for (const { providerId, customerId } of customers.values()) {
      try {
        const result = await runCustomer(providerId, customerId, 'justInTime', runId, budget);
        applied += result.applied;
        if (result.grew) grew.add(providerId);
        const p = `${providerId}/${customerId}`;
        let open = false;
        for await (const d of decisions.list(p))
          if (d.value.state === 'planned' || d.value.state === 'failed') open = true;
        if (!open) await unfinishedCustomers.delete(UNFINISHED_PARTITION, p);
      } catch (error) {
        const failure = toAppError(error);
        errors.push({ customerId, code: failure.code, message: failure.message });
      }
    }
    for (const providerId of grew) await deps.resumeHeld(providerId);
    return { customers: customers.size, applied, errors };
  }

  /**
   * The sweep over every customer with a policy, a chunk of `concurrency` at a time. Progress is saved
   * after each chunk; an unfinished run (crash, time budget) is resumed by the next call, and a
   * duplicate call of a finished run does nothing.
   */
  async function sweep(options: { runId?: string; budgetInMs?: number; providerId?: string } = {}) {
    const started = Date.now();
    // Narrowed to one provider (tests sharing a storage account, one provider's rerun) or all of them;
    // only a run of the same scope is resumed.
    const scope = options.providerId ?? '*';
    let row = undefined as Awaited<ReturnType<typeof runs.get>>;
    for await (const r of runs.list(RUN_PARTITION))
      if (r.value.state === 'running' && r.value.scope === scope) row = r;
    const runId = row?.value.runId ?? options.runId ?? `sweep-${now().toISOString()}`;
    if (row === undefined) {
      row = await runs.get(RUN_PARTITION, runId);
      if (row?.value.state === 'done') return { ...row.value, more: false };
      row ??= await runs.create(RUN_PARTITION, runId, {
        runId,
        state: 'running',
        startedAt: now().toISOString(),
        updatedAt: now().toISOString(),
        after: '',
        customers: 0,
        seats: 0,
        spend: 0,
        applied: 0,
        errors: 0,
        scope,
      });
    }
    const budget: RunBudget = { seats: row.value.seats, spend: row.value.spend };
    const concurrency = Math.max(1, deps.settings().concurrency);
    const keys: string[] = [];
    const narrowed = options.providerId === undefined ? {} : { rowKeyPrefix: `${options.providerId}/` };
    for await (const p of policies.list(POLICY_PARTITION, narrowed))
      if (p.rowKey > row.value.after && p.value.mode !== 'off') keys.push(p.rowKey);
    keys.sort();
    const grew = new Set<string>();
    for (let index = 0; index < keys.length; index += concurrency) {
      if (options.budgetInMs !== undefined && Date.now() - started > options.budgetInMs)
        return { ...row.value, more: true };
      const chunk = keys.slice(index, index + concurrency);
      const results = await Promise.all(
        chunk.map(async (key) => {
          const cut = key.indexOf('/');
          try {
            return await runCustomer(key.slice(0, cut), key.slice(cut + 1), 'sweep', runId, budget);
          } catch {
            return undefined;
          }
        }),
      );
      for (const [n, r] of results.entries()) {
        const key = chunk[n];
        if (r?.grew === true && key !== undefined) grew.add(key.slice(0, key.indexOf('/')));
      }
      const last = chunk.at(-1) ?? row.value.after;
      row = await runs.replace(
        RUN_PARTITION,
        runId,
        {
          ...row.value,
          after: last,
          updatedAt: now().toISOString(),
          customers: row.value.customers + chunk.length,
          seats: budget.seats,
          spend: budget.spend,
          applied: row.value.applied + results.reduce((s, r) => s + (r?.applied ?? 0), 0),
          errors: row.value.errors + results.filter((r) => r === undefined).length,
        },
        row.etag,
      );
    }
    for (const providerId of grew) await deps.resumeHeld(providerId);
    row = await runs.replace(
      RUN_PARTITION,
      runId,
      { ...row.value, state: 'done', updatedAt: now().toISOString() },
      row.etag,
    );
    return { ...row.value, more: false };
  }

  /** A person lets a pending change through: it is applied once, as the sweep would have. */
  async function approve(caller: Caller, customerId: string, decisionId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const p = `${caller.providerId}/${customerId}`;
    const row = await decisions.get(p, decisionId);
    if (row === undefined) throw new AppError('NotFound', `decision ${decisionId} not found`);
    if (row.value.state === 'applied') return row.value;
    if (row.value.status !== 'pendingApproval' || row.value.kind === 'purchaseRequest')
      throw new AppError(
        'Conflict',
        row.value.kind === 'purchaseRequest'
          ? `decision ${decisionId} is a purchase request: approve it as purchase request ${row.value.purchaseRequestId ?? ''}`
          : `decision ${decisionId} is ${row.value.status}; only a pending change can be approved`,
      );
    const caller2 = systemCaller(caller.providerId);
    const [entries, sources] = await Promise.all([
      deps.licensing.ledger(caller2, customerId),
      deps.licensing.getSources(caller2, customerId),
    ]);
    const state = deriveLedger(entries);
    const current = state.subscriptions.find(
      (s) => s.source === row.value.source && s.id === row.value.subscriptionId,
    );
    if (current?.quantity !== row.value.from) {
      await decisions.replace(p, decisionId, { ...row.value, state: 'stale' }, row.etag);
      throw new AppError(
        'Conflict',
        `the subscription has ${current?.quantity ?? 'no'} seats now, not ${row.value.from}: the next sweep decides again`,
      );
    }
    const approved = await decisions.replace(
      p,
      decisionId,
      { ...row.value, state: 'planned', approvedBy: caller.id },
      row.etag,
    );
    const ctx: CustomerContext = {
      providerId: caller.providerId,
      customerId,
      pcCustomerId: sources.partnerCenterCustomerId,
      distributorCompanyId: sources.distributorCompanyId,
      state,
    };
    try {
      await send(ctx, approved.value);
    } catch (error) {
      const failure = toAppError(error);
      await decisions.replace(
        p,
        decisionId,
        { ...approved.value, state: 'failed', lastError: { code: failure.code, message: failure.message } },
        approved.etag,
      );
      throw failure;
    }
    const done = await decisions.replace(
      p,
      decisionId,
      { ...approved.value, state: 'applied', appliedAt: now().toISOString() },
      approved.etag,
    );
    if (row.value.kind === 'grow') await deps.resumeHeld(caller.providerId);
    return done.value;
  }

  return { putPolicy, getPolicy, listDecisions, sweep, justInTime, approve };
}

export type Autoscale = ReturnType<typeof createAutoscale>;
