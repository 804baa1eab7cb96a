import { z } from 'zod';
import { refundableQuantity, SEAT_WINDOW_IN_MS, type SeatLot } from './nce.js';

/**
 * Licence sources and the per-source seat ledger, pure. Graph pools a tenant's seats per SKU and says
 * nothing of the channel they came from (companySubscription has no channel or term field), so we keep
 * our own ledger: what each source (Partner Center, a distributor, an Enterprise Agreement, a third
 * party) supplies, what each may do, and when each can change. Terms come from the source's own API,
 * never from Graph's dates. Sources: ../shared/DOMAIN.md capability table, COMMERCE-AND-ONBOARDING.md.
 */

export const sourceKinds = ['partnerCenter', 'distributor', 'ea', 'thirdParty', 'unlabelled'] as const;
export type SourceKind = (typeof sourceKinds)[number];
/** Sources a provider can put in an assignment policy (an unlabelled subscription is not a choice). */
export const policySources = ['partnerCenter', 'distributor', 'ea', 'thirdParty'] as const;
export type PolicySource = (typeof policySources)[number];
export type ConnectedSource = 'partnerCenter' | 'distributor';

export interface SourceCapabilities {
  seesSeats: boolean;
  assignsToUsers: boolean;
  /** `api`: through a connector; `purchaseRequest`: a person approves and orders; `never`: report only. */
  buys: 'connectorOrPurchaseRequest' | 'never';
  /** NCE: only seats whose 168-hour window is open, otherwise at renewal. */
  reduces: 'nceWindow' | 'never';
  createsTenant: boolean;
}

/** DOMAIN.md "Licensing sources and what each may do". */
export const sourceCapabilities: Record<SourceKind, SourceCapabilities> = {
  partnerCenter: {
    seesSeats: true,
    assignsToUsers: true,
    buys: 'connectorOrPurchaseRequest',
    reduces: 'nceWindow',
    createsTenant: true,
  },
  distributor: {
    seesSeats: true,
    assignsToUsers: true,
    buys: 'connectorOrPurchaseRequest',
    reduces: 'nceWindow',
    createsTenant: true,
  },
  ea: { seesSeats: true, assignsToUsers: true, buys: 'never', reduces: 'never', createsTenant: false },
  thirdParty: {
    seesSeats: true,
    assignsToUsers: true,
    buys: 'never',
    reduces: 'never',
    createsTenant: false,
  },
  unlabelled: {
    seesSeats: true,
    assignsToUsers: true,
    buys: 'never',
    reduces: 'never',
    createsTenant: false,
  },
};

export const sourceNames: Record<Exclude<SourceKind, 'distributor'>, string> = {
  partnerCenter: 'CSP',
  ea: 'EA',
  thirdParty: 'third party',
  unlabelled: 'unlabelled',
};

export type ChangePath =
  { kind: 'connector' } | { kind: 'purchaseRequest' } | { kind: 'report'; reason: string };

/** How a seat change on this source happens: its connector, a person's approval, or only a report. */
export function changePath(source: SourceKind, hasConnector: boolean): ChangePath {
  if (sourceCapabilities[source].buys === 'never')
    return {
      kind: 'report',
      reason:
        source === 'unlabelled'
          ? 'seats of an unlabelled subscription are never bought or reduced here: label it, then report the shortage to its owner'
          : `${sourceName(source, 'the distributor')} seats are never bought or reduced here: report the shortage to their owner`,
    };
  return hasConnector ? { kind: 'connector' } : { kind: 'purchaseRequest' };
}

// ---------- what the sources say (stored in ledger entries, so plain JSON) ----------

const isoDate = z.string();
export const seatLotSchema = z.object({ quantity: z.number().int().nonnegative(), reducibleUntil: isoDate });
export type LedgerSeatLot = z.infer<typeof seatLotSchema>;

export const subscriptionStatuses = [
  'active',
  'pending',
  'pendingCancel',
  'suspended',
  'cancelled',
  'expired',
  'other',
] as const;

/** One subscription as Partner Center or the distributor has it (the source of truth for its term). */
export const sourceSubscriptionSchema = z.object({
  source: z.enum(['partnerCenter', 'distributor']),
  id: z.string(),
  /** The Graph `skuId` it supplies, when known (catalogue, or a matched Graph subscription). */
  skuId: z.string().optional(),
  /** Partner Center `catalogItemId` or the distributor's product id. */
  offerId: z.string(),
  offerName: z.string().optional(),
  quantity: z.number().int().nonnegative(),
  status: z.enum(subscriptionStatuses),
  /** P1M / P1Y / P3Y (Partner Center), or the distributor's commitment or billing term. */
  term: z.string().optional(),
  billingCycle: z.string().optional(),
  autoRenew: z.boolean().optional(),
  /** Last day of the current term, as the source states it. */
  termEndsOn: isoDate.optional(),
  cancellationAllowedUntil: isoDate.optional(),
  /** Seats that may still be given back, per lot (Partner Center refundableQuantity.details). */
  lots: z.array(seatLotSchema).default([]),
  scheduledRenewal: z
    .object({
      quantity: z.number().int().nonnegative().optional(),
      term: z.string().optional(),
      billingCycle: z.string().optional(),
      offerId: z.string().optional(),
    })
    .optional(),
  /** Microsoft's id of a distributor subscription (= Graph commerceSubscriptionId), when given. */
  vendorSubscriptionId: z.string().optional(),
  /** When a pending cancellation takes the seats away. */
  endsAt: isoDate.optional(),
});
export type SourceSubscription = z.infer<typeof sourceSubscriptionSchema>;

export const graphSubscriptionSchema = z.object({
  id: z.string(),
  commerceSubscriptionId: z.string(),
  skuId: z.string(),
  skuPartNumber: z.string(),
  totalLicenses: z.number().int().nonnegative(),
  status: z.enum(['Enabled', 'Warning', 'Suspended', 'Deleted', 'LockedOut']),
  isTrial: z.boolean(),
  createdDateTime: z.string().nullable(),
  nextLifecycleDateTime: z.string().nullable(),
  ownerTenantId: z.string().nullable(),
});
export type GraphSubscription = z.infer<typeof graphSubscriptionSchema>;

export const graphSkuSchema = z.object({
  skuId: z.string(),
  skuPartNumber: z.string(),
  enabled: z.number().int().nonnegative(),
  warning: z.number().int().nonnegative(),
  suspended: z.number().int().nonnegative(),
  lockedOut: z.number().int().nonnegative(),
  consumed: z.number().int().nonnegative(),
});
export type GraphSku = z.infer<typeof graphSkuSchema>;

export const labelSchema = z.object({
  graphSubscriptionId: z.string(),
  kind: z.enum(['ea', 'thirdParty']),
  /** Who sells it (the EA's licensing solution partner, the third-party reseller). */
  resellerName: z.string().optional(),
  note: z.string().optional(),
});
export type SubscriptionLabel = z.infer<typeof labelSchema>;

// ---------- the ledger ----------

export const ledgerValueSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('subscription'), subscription: sourceSubscriptionSchema }),
  z.object({ kind: z.literal('graphSubscription'), subscription: graphSubscriptionSchema }),
  z.object({ kind: z.literal('graphSku'), sku: graphSkuSchema }),
  z.object({ kind: z.literal('label'), label: labelSchema }),
  /** The subject is gone from its source (a later import did not see it). */
  z.object({ kind: z.literal('gone') }),
]);
export type LedgerValue = z.infer<typeof ledgerValueSchema>;

export const ledgerCauses = ['import', 'renewal', 'purchase', 'reduction', 'label'] as const;
export type LedgerCause = (typeof ledgerCauses)[number];

/** One append-only entry: a change of one subject, who or what caused it, and the figures behind it. */
export const ledgerEntrySchema = z.object({
  entryId: z.string(),
  at: z.string(),
  /** e.g. `partnerCenter:<id>`, `distributor:<id>`, `graph:<id>`, `sku:<skuId>`, `label:<graphSubscriptionId>`. */
  subject: z.string(),
  cause: z.enum(ledgerCauses),
  /** The caller (key or app id) or the import that made it. */
  actor: z.string(),
  idempotencyKey: z.string(),
  /** The subject's entry this one follows (undefined for the first). */
  previousEntryId: z.string().optional(),
  value: ledgerValueSchema,
  /** What changed, in words. */
  changes: z.array(z.string()),
  figures: z.record(z.string(), z.union([z.number(), z.string()])),
});
export type LedgerEntry = z.infer<typeof ledgerEntrySchema>;
export type NewLedgerEntry = Omit<LedgerEntry, 'entryId' | 'at'>;

export const subjectOf = {
  subscription: (s: Pick<SourceSubscription, 'source' | 'id'>) => `${s.source}:${s.id.toLowerCase()}`,
  graphSubscription: (id: string) => `graph:${id.toLowerCase()}`,
  graphSku: (skuId: string) => `sku:${skuId.toLowerCase()}`,
  label: (graphSubscriptionId: string) => `label:${graphSubscriptionId.toLowerCase()}`,
};

export interface LedgerState {
  subscriptions: SourceSubscription[];
  graphSubscriptions: GraphSubscription[];
  skus: GraphSku[];
  labels: SubscriptionLabel[];
  /** The newest entry per subject (what a next entry follows). */
  latest: Map<string, LedgerEntry>;
}

/** The current view, derived from the entries alone (oldest first): the newest entry per subject wins. */
export function deriveLedger(entries: readonly LedgerEntry[]): LedgerState {
  const latest = new Map<string, LedgerEntry>();
  for (const entry of entries) latest.set(entry.subject, entry);
  const state: LedgerState = { subscriptions: [], graphSubscriptions: [], skus: [], labels: [], latest };
  for (const entry of latest.values()) {
    const value = entry.value;
    if (value.kind === 'subscription') state.subscriptions.push(value.subscription);
    else if (value.kind === 'graphSubscription') state.graphSubscriptions.push(value.subscription);
    else if (value.kind === 'graphSku') state.skus.push(value.sku);
    else if (value.kind === 'label') state.labels.push(value.label);
  }
  return state;
}

function describeChanges(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const changes: string[] = [];
  for (const key of [...keys].sort()) {
    const a = JSON.stringify(before[key]);
    const b = JSON.stringify(after[key]);
    if (a !== b) changes.push(`${key}: ${a ?? 'unset'} → ${b ?? 'unset'}`);
  }
  return changes;
}

function valueFields(value: LedgerValue): Record<string, unknown> {
  switch (value.kind) {
    case 'subscription':
      return { ...value.subscription };
    case 'graphSubscription':
      return { ...value.subscription };
    case 'graphSku':
      return { ...value.sku };
    case 'label':
      return { ...value.label };
    case 'gone':
      return {};
  }
}

function quantityOf(value: LedgerValue | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value.kind === 'subscription') return value.subscription.quantity;
  if (value.kind === 'graphSubscription') return value.subscription.totalLicenses;
  if (value.kind === 'graphSku') return value.sku.enabled;
  return value.kind === 'gone' ? 0 : undefined;
}

/**
 * One entry when the subject changed, none when it did not. The idempotency key names the change
 * from the entry it follows, so re-running the same import writes nothing twice, while a later return
 * to an earlier value (A → B → A) is still recorded.
 */
export function ledgerChange(input: {
  subject: string;
  previous: LedgerEntry | undefined;
  value: LedgerValue;
  cause: LedgerCause;
  actor: string;
  /** Extra figures (e.g. the purchase request behind it). */
  figures?: Record<string, number | string>;
  idempotencyKey?: string;
}): NewLedgerEntry | undefined {
  const before = input.previous?.value;
  if (before === undefined && input.value.kind === 'gone') return undefined;
  const changes =
    before === undefined
      ? ['first seen']
      : before.kind !== input.value.kind
        ? [`${before.kind} → ${input.value.kind}`]
        : describeChanges(valueFields(before), valueFields(input.value));
  if (before !== undefined && changes.length === 0) return undefined;
  const figures: Record<string, number | string> = { ...input.figures };
  const was = quantityOf(before);
  const now = quantityOf(input.value);
  if (was !== undefined) figures.quantityBefore = was;
  if (now !== undefined) figures.quantityAfter = now;
  return {
    subject: input.subject,
    cause: input.cause,
    actor: input.actor,
    idempotencyKey:
      input.idempotencyKey ??
      `${input.cause}:${input.subject}:${input.previous?.entryId ?? 'first'}:${fingerprint(input.value)}`,
    ...(input.previous === undefined ? {} : { previousEntryId: input.previous.entryId }),
    value: input.value,
    changes,
    figures,
  };
}

/** A short stable fingerprint of a value (FNV-1a over its canonical JSON); not a security measure. */
export function fingerprint(value: unknown): string {
  const text = canonical(value);
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `${hash.toString(16).padStart(8, '0')}${text.length.toString(16)}`;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}

export interface ImportObservation {
  /** Undefined: that source was not read this time (its subjects stay as they were). */
  partnerCenter?: SourceSubscription[];
  distributor?: SourceSubscription[];
  graphSubscriptions?: GraphSubscription[];
  skus?: GraphSku[];
}

/**
 * The entries an import writes: a change per subject whose value differs from the ledger, `gone` for a
 * subject its (fully read) source no longer lists. A Partner Center or distributor subscription whose
 * term end moved later is a renewal.
 */
export function planImport(state: LedgerState, seen: ImportObservation, actor: string): NewLedgerEntry[] {
  const entries: NewLedgerEntry[] = [];
  const push = (entry: NewLedgerEntry | undefined): void => {
    if (entry !== undefined) entries.push(entry);
  };
  const observe = (prefix: string, observed: { subject: string; value: LedgerValue }[] | undefined): void => {
    if (observed === undefined) return;
    const seenSubjects = new Set(observed.map((o) => o.subject));
    for (const { subject, value } of observed) {
      const previous = state.latest.get(subject);
      push(ledgerChange({ subject, previous, value, cause: causeOf(previous?.value, value), actor }));
    }
    for (const [subject, previous] of state.latest) {
      if (!subject.startsWith(prefix) || seenSubjects.has(subject) || previous.value.kind === 'gone')
        continue;
      push(ledgerChange({ subject, previous, value: { kind: 'gone' }, cause: 'import', actor }));
    }
  };
  const subscriptions = (list: SourceSubscription[] | undefined) =>
    list?.map((subscription) => ({
      subject: subjectOf.subscription(subscription),
      value: { kind: 'subscription' as const, subscription },
    }));
  observe('partnerCenter:', subscriptions(seen.partnerCenter));
  observe('distributor:', subscriptions(seen.distributor));
  observe(
    'graph:',
    seen.graphSubscriptions?.map((subscription) => ({
      subject: subjectOf.graphSubscription(subscription.id),
      value: { kind: 'graphSubscription' as const, subscription },
    })),
  );
  observe(
    'sku:',
    seen.skus?.map((sku) => ({
      subject: subjectOf.graphSku(sku.skuId),
      value: { kind: 'graphSku' as const, sku },
    })),
  );
  return entries;
}

function causeOf(before: LedgerValue | undefined, after: LedgerValue): LedgerCause {
  if (before?.kind !== 'subscription' || after.kind !== 'subscription') return 'import';
  const was = before.subscription.termEndsOn;
  const now = after.subscription.termEndsOn;
  return was !== undefined && now !== undefined && Date.parse(now) > Date.parse(was) ? 'renewal' : 'import';
}

// ---------- matching Graph subscriptions to their sources ----------

export type MatchBasis =
  /** Graph `commerceSubscriptionId` is the Partner Center subscription id. */
  | 'commerceSubscriptionId'
  /** Graph `commerceSubscriptionId` is the distributor's `vendorSubscriptionId`. */
  | 'vendorSubscriptionId'
  /** Same SKU (when known), same seats and the same term end: a distributor subscription. */
  | 'skuQuantityTermEnd'
  /** Same SKU and seats, no other candidate (Graph did not carry the Partner Center id). */
  | 'skuQuantity';

export interface GraphMatch {
  graph: GraphSubscription;
  source: SourceKind;
  subscription?: SourceSubscription;
  basis?: MatchBasis;
  label?: SubscriptionLabel;
}

const sameId = (a: string | undefined, b: string | undefined): boolean =>
  a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

const dayOf = (iso: string): number => Math.floor(Date.parse(iso) / 86_400_000);

/**
 * Graph's `nextLifecycleDateTime` is the instant the term is over (00:00 UTC after the last day) while
 * sources state the last day: the same term end is the same day or the next.
 */
function sameTermEnd(graph: GraphSubscription, subscription: SourceSubscription): boolean {
  if (graph.nextLifecycleDateTime === null || subscription.termEndsOn === undefined) return false;
  const gap = dayOf(graph.nextLifecycleDateTime) - dayOf(subscription.termEndsOn);
  return gap === 0 || gap === 1;
}

const holdsSeats = (s: SourceSubscription): boolean =>
  s.status === 'active' || s.status === 'pendingCancel' || s.status === 'pending';

/**
 * Which source each Graph subscription's seats come from: exact ids first, then the provider's labels,
 * then the documented weaker evidence (SKU, seats, term end), only where exactly one candidate fits.
 */
export function matchGraphSubscriptions(
  graphSubscriptions: readonly GraphSubscription[],
  subscriptions: readonly SourceSubscription[],
  labels: readonly SubscriptionLabel[],
): { matches: GraphMatch[]; unmatchedSources: SourceSubscription[] } {
  const taken = new Set<SourceSubscription>();
  const result = new Map<GraphSubscription, GraphMatch>();
  for (const graph of graphSubscriptions) {
    const byId =
      subscriptions.find((s) => s.source === 'partnerCenter' && sameId(s.id, graph.commerceSubscriptionId)) ??
      subscriptions.find(
        (s) => s.source === 'distributor' && sameId(s.vendorSubscriptionId, graph.commerceSubscriptionId),
      );
    if (byId !== undefined && !taken.has(byId)) {
      taken.add(byId);
      result.set(graph, {
        graph,
        source: byId.source,
        subscription: byId,
        basis: byId.source === 'partnerCenter' ? 'commerceSubscriptionId' : 'vendorSubscriptionId',
      });
    }
  }
  for (const graph of graphSubscriptions) {
    if (result.has(graph)) continue;
    const label = labels.find((l) => sameId(l.graphSubscriptionId, graph.id));
    if (label !== undefined) result.set(graph, { graph, source: label.kind, label });
  }
  const heuristic = (
    source: ConnectedSource,
    basis: MatchBasis,
    fits: (graph: GraphSubscription, s: SourceSubscription) => boolean,
  ): void => {
    for (const graph of graphSubscriptions) {
      if (result.has(graph) || graph.status === 'Deleted') continue;
      const candidates = subscriptions.filter(
        (s) => s.source === source && !taken.has(s) && holdsSeats(s) && fits(graph, s),
      );
      const only = candidates[0];
      if (candidates.length !== 1 || only === undefined) continue;
      // The same evidence must not fit a second Graph subscription either.
      const rivals = graphSubscriptions.filter((g) => g !== graph && !result.has(g) && fits(g, only));
      if (rivals.length > 0) continue;
      taken.add(only);
      result.set(graph, { graph, source, subscription: only, basis });
    }
  };
  heuristic(
    'distributor',
    'skuQuantityTermEnd',
    (graph, s) =>
      (s.skuId === undefined || sameId(s.skuId, graph.skuId)) &&
      s.quantity === graph.totalLicenses &&
      sameTermEnd(graph, s),
  );
  heuristic(
    'partnerCenter',
    'skuQuantity',
    (graph, s) => sameId(s.skuId, graph.skuId) && s.quantity === graph.totalLicenses,
  );
  const matches = graphSubscriptions.map(
    (graph) => result.get(graph) ?? { graph, source: 'unlabelled' as const },
  );
  return { matches, unmatchedSources: subscriptions.filter((s) => !taken.has(s)) };
}

// ---------- reconciliation ----------

export interface Difference {
  code:
    | 'unexplainedSubscription'
    | 'sourceNotInGraph'
    | 'quantityMismatch'
    | 'totalMismatch'
    | 'overAssigned'
    | 'seatsWanted';
  message: string;
  figures: Record<string, number | string>;
}

export interface SkuReconciliation {
  skuId: string;
  skuPartNumber: string;
  /** Usable seats per source (Graph Enabled/Warning subscriptions, or the source's own count). */
  supply: Record<SourceKind, number>;
  graph: { enabled: number; warning: number; suspended: number; lockedOut: number };
  assigned: number;
  free: number;
  /** Operations held until a seat of this SKU is free. */
  waitingForSeat: number;
  subscriptions: {
    source: SourceKind;
    sourceName: string;
    graphSubscriptionId: string | undefined;
    sourceSubscriptionId: string | undefined;
    seats: number;
    graphSeats: number | undefined;
    status: string;
    matchedBy: MatchBasis | 'label' | undefined;
  }[];
  differences: Difference[];
  /** Where a new seat should come from, by the customer's policy, and how it would be obtained. */
  nextSeat: { source: PolicySource; path: ChangePath } | undefined;
  /**
   * Where a seat should be given back first: the policy read backwards, only sources that may reduce
   * (never EA or third party), with what is reducible now where the source says (NCE lots).
   */
  nextRelease:
    | { source: ConnectedSource; subscriptionId: string; reducibleNow: number | undefined; path: ChangePath }
    | undefined;
  explanation: string;
}

export interface ReconcileInput {
  state: Pick<LedgerState, 'subscriptions' | 'graphSubscriptions' | 'skus' | 'labels'>;
  /** Held operations per Graph skuId. */
  waitingForSeat?: ReadonlyMap<string, number>;
  distributorName: string;
  policy: readonly PolicySource[];
  connectors: Readonly<Record<ConnectedSource, boolean>>;
  /** For what NCE lots allow to reduce now. */
  now?: Date;
}

export function sourceName(source: SourceKind, distributorName: string): string {
  return source === 'distributor' ? distributorName : sourceNames[source];
}

const usable = (status: GraphSubscription['status']): boolean => status === 'Enabled' || status === 'Warning';

/** Per SKU: supply by source vs what Graph shows vs what is assigned, each difference in words and figures. */
export function reconcile(input: ReconcileInput): SkuReconciliation[] {
  const { state, distributorName } = input;
  const { matches, unmatchedSources } = matchGraphSubscriptions(
    state.graphSubscriptions,
    state.subscriptions,
    state.labels,
  );
  const skuIds = new Set<string>();
  for (const sku of state.skus) skuIds.add(sku.skuId.toLowerCase());
  for (const g of state.graphSubscriptions) skuIds.add(g.skuId.toLowerCase());
  for (const s of state.subscriptions)
    if (s.skuId !== undefined && holdsSeats(s)) skuIds.add(s.skuId.toLowerCase());
  const name = (source: SourceKind): string => sourceName(source, distributorName);

  return [...skuIds].sort().map((skuId) => {
    const sku = state.skus.find((k) => k.skuId.toLowerCase() === skuId);
    // Largest first, then by id: the same state reads the same whatever order storage returned it in.
    const ofSku = matches
      .filter((m) => m.graph.skuId.toLowerCase() === skuId && m.graph.status !== 'Deleted')
      .sort(
        (a, b) =>
          b.graph.totalLicenses - a.graph.totalLicenses ||
          (a.graph.id < b.graph.id ? -1 : a.graph.id > b.graph.id ? 1 : 0),
      );
    const supply: Record<SourceKind, number> = {
      partnerCenter: 0,
      distributor: 0,
      ea: 0,
      thirdParty: 0,
      unlabelled: 0,
    };
    const differences: Difference[] = [];
    const lines: SkuReconciliation['subscriptions'] = [];
    for (const m of ofSku) {
      const seats = m.subscription?.quantity ?? m.graph.totalLicenses;
      if (usable(m.graph.status))
        supply[m.source] += m.subscription === undefined ? m.graph.totalLicenses : seats;
      lines.push({
        source: m.source,
        sourceName: name(m.source),
        graphSubscriptionId: m.graph.id,
        sourceSubscriptionId: m.subscription?.id,
        seats,
        graphSeats: m.graph.totalLicenses,
        status: m.graph.status,
        matchedBy: m.basis ?? (m.label === undefined ? undefined : 'label'),
      });
      if (m.source === 'unlabelled')
        differences.push({
          code: 'unexplainedSubscription',
          message: `Graph subscription ${m.graph.id} (${m.graph.totalLicenses} × ${m.graph.skuPartNumber}, ${m.graph.status}) matches no Partner Center or ${distributorName} subscription: label it EA or third party`,
          figures: { graphSubscriptionId: m.graph.id, seats: m.graph.totalLicenses },
        });
      if (m.subscription !== undefined && m.subscription.quantity !== m.graph.totalLicenses)
        differences.push({
          code: 'quantityMismatch',
          message: `${name(m.source)} subscription ${m.subscription.id} has ${m.subscription.quantity} seats, Graph shows ${m.graph.totalLicenses} (a change still provisioning?)`,
          figures: { source: m.subscription.quantity, graph: m.graph.totalLicenses },
        });
    }
    for (const s of unmatchedSources) {
      if (s.skuId?.toLowerCase() !== skuId || !holdsSeats(s) || s.quantity === 0) continue;
      lines.push({
        source: s.source,
        sourceName: name(s.source),
        graphSubscriptionId: undefined,
        sourceSubscriptionId: s.id,
        seats: s.quantity,
        graphSeats: undefined,
        status: s.status,
        matchedBy: undefined,
      });
      differences.push({
        code: 'sourceNotInGraph',
        message: `${name(s.source)} subscription ${s.id} (${s.quantity} seats, ${s.status}) is not in the tenant's Graph subscriptions`,
        figures: { sourceSubscriptionId: s.id, seats: s.quantity },
      });
    }
    const graphUnits = {
      enabled: sku?.enabled ?? sumSeats(ofSku, 'Enabled'),
      warning: sku?.warning ?? sumSeats(ofSku, 'Warning'),
      suspended: sku?.suspended ?? sumSeats(ofSku, 'Suspended'),
      lockedOut: sku?.lockedOut ?? sumSeats(ofSku, 'LockedOut'),
    };
    const assigned = sku?.consumed ?? 0;
    const usableSeats = graphUnits.enabled + graphUnits.warning;
    const free = Math.max(0, usableSeats - assigned);
    const waiting = input.waitingForSeat?.get(skuId) ?? 0;
    const explained =
      supply.partnerCenter + supply.distributor + supply.ea + supply.thirdParty + supply.unlabelled;
    if (explained !== usableSeats)
      differences.push({
        code: 'totalMismatch',
        message: `the sources account for ${explained} seats, Graph has ${usableSeats} usable`,
        figures: { sources: explained, graph: usableSeats },
      });
    if (assigned > usableSeats)
      differences.push({
        code: 'overAssigned',
        message: `${assigned} seats are assigned but only ${usableSeats} are usable`,
        figures: { assigned, usable: usableSeats },
      });
    const nextSeat = nextSeatSource(input, lines);
    const nextRelease = releaseSource(input, lines);
    if (waiting > free)
      differences.push({
        code: 'seatsWanted',
        message: `${waiting} operations wait for a seat, ${free} free: ${waiting - free} more needed${
          nextSeat === undefined
            ? ''
            : nextSeat.path.kind === 'report'
              ? ` (${nextSeat.path.reason})`
              : ` from ${name(nextSeat.source)} (${nextSeat.path.kind === 'connector' ? 'through its connector' : 'by a purchase request'})`
        }`,
        figures: { waiting, free, needed: waiting - free },
      });
    const explanation = explain(supply, graphUnits, assigned, waiting, distributorName);
    return {
      skuId: sku?.skuId ?? ofSku[0]?.graph.skuId ?? skuId,
      skuPartNumber: sku?.skuPartNumber ?? ofSku[0]?.graph.skuPartNumber ?? skuId,
      supply,
      graph: graphUnits,
      assigned,
      free,
      waitingForSeat: waiting,
      subscriptions: lines,
      differences,
      nextSeat,
      nextRelease,
      explanation,
    };
  });
}

function sumSeats(matches: readonly GraphMatch[], status: GraphSubscription['status']): number {
  return matches.filter((m) => m.graph.status === status).reduce((sum, m) => sum + m.graph.totalLicenses, 0);
}

/** The first policy source that already supplies this SKU (EA first means "ask the EA owner"). */
function nextSeatSource(
  input: ReconcileInput,
  lines: SkuReconciliation['subscriptions'],
): SkuReconciliation['nextSeat'] {
  for (const source of input.policy) {
    const supplies = lines.some((l) => l.source === source);
    if (!supplies) continue;
    const connected =
      source === 'partnerCenter' || source === 'distributor' ? input.connectors[source] : false;
    return { source, path: changePath(source, connected) };
  }
  return undefined;
}

function releaseSource(
  input: ReconcileInput,
  lines: SkuReconciliation['subscriptions'],
): SkuReconciliation['nextRelease'] {
  for (const source of [...input.policy].reverse()) {
    if (source !== 'partnerCenter' && source !== 'distributor') continue;
    const candidates = lines
      .filter((l) => l.source === source && l.sourceSubscriptionId !== undefined && l.seats > 0)
      .map((l) => {
        const subscription = input.state.subscriptions.find(
          (s) => s.source === source && s.id === l.sourceSubscriptionId,
        );
        const reducibleNow =
          source === 'partnerCenter' && input.now !== undefined && subscription !== undefined
            ? refundableQuantity(toSeatLots(subscription.lots), input.now)
            : undefined;
        return { subscriptionId: l.sourceSubscriptionId ?? '', reducibleNow };
      })
      .sort((a, b) => (b.reducibleNow ?? 0) - (a.reducibleNow ?? 0));
    const best = candidates[0];
    if (best === undefined) continue;
    return { source, ...best, path: changePath(source, input.connectors[source]) };
  }
  return undefined;
}

/** "CSP supplies 10, Pax8 15, unlabelled 40 (EA?), Graph enabled 65, 3 suspended, 61 assigned" */
export function explain(
  supply: Record<SourceKind, number>,
  graph: SkuReconciliation['graph'],
  assigned: number,
  waiting: number,
  distributorName: string,
): string {
  const parts: string[] = [];
  const order: SourceKind[] = ['partnerCenter', 'distributor', 'ea', 'thirdParty', 'unlabelled'];
  for (const source of order) {
    const seats = supply[source];
    if (seats === 0) continue;
    const label = sourceName(source, distributorName);
    parts.push(
      source === 'unlabelled'
        ? `unlabelled ${seats} (EA?)`
        : parts.length === 0
          ? `${label} supplies ${seats}`
          : `${label} ${seats}`,
    );
  }
  if (parts.length === 0) parts.push('no source supplies seats');
  parts.push(`Graph enabled ${graph.enabled}`);
  if (graph.warning > 0) parts.push(`${graph.warning} in warning`);
  if (graph.suspended > 0) parts.push(`${graph.suspended} suspended`);
  if (graph.lockedOut > 0) parts.push(`${graph.lockedOut} locked out`);
  parts.push(`${assigned} assigned`);
  if (waiting > 0) parts.push(`${waiting} waiting for a seat`);
  return parts.join(', ');
}

// ---------- renewals ----------

export interface RenewalItem {
  source: SourceKind;
  sourceName: string;
  subscriptionId: string;
  skuId: string | undefined;
  seats: number;
  term: string | undefined;
  endsOn: string;
  outcome: 'autoRenew' | 'scheduledChange' | 'expires' | 'cancels' | 'unknown';
  /** In words: what will happen. */
  what: string;
  /** Only where a person must act or decide. */
  alert: string | undefined;
}

const isMonthly = (term: string | undefined): boolean =>
  term !== undefined && /^(P1M|monthly|1-month)$/i.test(term.trim());

/**
 * Terms ending within `days`, with what will happen. A monthly term that auto-renews is not an alert
 * (most "expiry" alerts of the open-source anchor were exactly that); an expiry, a cancellation, a
 * longer term renewing with unused seats, and a term we cannot see (EA, third party) are.
 */
export function renewals(input: {
  state: Pick<LedgerState, 'subscriptions' | 'graphSubscriptions' | 'skus' | 'labels'>;
  now: Date;
  days: number;
  distributorName: string;
}): RenewalItem[] {
  const until = input.now.getTime() + input.days * 86_400_000;
  const inWindow = (iso: string | undefined): iso is string =>
    iso !== undefined && Date.parse(iso) >= input.now.getTime() - 86_400_000 && Date.parse(iso) <= until;
  const assignedOf = (skuId: string | undefined): number | undefined =>
    skuId === undefined ? undefined : input.state.skus.find((k) => sameId(k.skuId, skuId))?.consumed;
  const items: RenewalItem[] = [];
  for (const s of input.state.subscriptions) {
    if (!holdsSeats(s)) continue;
    const endsOn = s.status === 'pendingCancel' ? (s.endsAt ?? s.termEndsOn) : s.termEndsOn;
    if (!inWindow(endsOn)) continue;
    const name = sourceName(s.source, input.distributorName);
    const base = {
      source: s.source,
      sourceName: name,
      subscriptionId: s.id,
      skuId: s.skuId,
      seats: s.quantity,
      term: s.term,
      endsOn,
    };
    if (s.status === 'pendingCancel') {
      items.push({
        ...base,
        outcome: 'cancels',
        what: `${s.quantity} seats end on ${endsOn.slice(0, 10)} (cancellation pending)`,
        alert: `${s.quantity} seats go away on ${endsOn.slice(0, 10)}: make sure nobody still needs them`,
      });
    } else if (s.autoRenew === false) {
      items.push({
        ...base,
        outcome: 'expires',
        what: `expires on ${endsOn.slice(0, 10)} (auto-renew is off)`,
        alert: `${s.quantity} seats expire on ${endsOn.slice(0, 10)}: turn auto-renew on or replace them`,
      });
    } else if (s.autoRenew === undefined) {
      items.push({
        ...base,
        outcome: 'unknown',
        what: `term ends on ${endsOn.slice(0, 10)}; ${name} does not say whether it renews`,
        alert: `check with ${name} whether ${s.quantity} seats renew on ${endsOn.slice(0, 10)}`,
      });
    } else if (s.scheduledRenewal !== undefined) {
      const q = s.scheduledRenewal.quantity ?? s.quantity;
      items.push({
        ...base,
        outcome: 'scheduledChange',
        what: `renews on ${endsOn.slice(0, 10)} with the scheduled change (${q} seats${
          s.scheduledRenewal.term === undefined ? '' : `, ${s.scheduledRenewal.term}`
        })`,
        alert: undefined,
      });
    } else {
      const assigned = assignedOf(s.skuId);
      const unused = assigned === undefined ? 0 : Math.max(0, s.quantity - assigned);
      items.push({
        ...base,
        outcome: 'autoRenew',
        what: `renews automatically on ${endsOn.slice(0, 10)} with ${s.quantity} seats`,
        alert:
          isMonthly(s.term) || unused === 0
            ? undefined
            : `${unused} of ${s.quantity} seats are unassigned and renew for another ${s.term ?? 'term'} on ${endsOn.slice(0, 10)}: reduce at renewal?`,
      });
    }
  }
  const { matches } = matchGraphSubscriptions(
    input.state.graphSubscriptions,
    input.state.subscriptions,
    input.state.labels,
  );
  for (const m of matches) {
    if (m.subscription !== undefined || m.graph.status === 'Deleted' || m.graph.isTrial) continue;
    const endsOn = m.graph.nextLifecycleDateTime ?? undefined;
    if (!inWindow(endsOn)) continue;
    const owner =
      m.label?.resellerName ??
      (m.source === 'unlabelled' ? 'its unknown owner' : sourceName(m.source, input.distributorName));
    items.push({
      source: m.source,
      sourceName: sourceName(m.source, input.distributorName),
      subscriptionId: m.graph.id,
      skuId: m.graph.skuId,
      seats: m.graph.totalLicenses,
      term: undefined,
      endsOn,
      outcome: 'unknown',
      what: `Graph shows its next lifecycle event on ${endsOn.slice(0, 10)}; the term is not ours to see`,
      alert: `ask ${owner} what happens to ${m.graph.totalLicenses} × ${m.graph.skuPartNumber} on ${endsOn.slice(0, 10)}`,
    });
  }
  return items.sort((a, b) => Date.parse(a.endsOn) - Date.parse(b.endsOn));
}

// ---------- seat changes ----------

/** Lots as nce.ts models them: a lot reducible until T was added at T − 168 h. */
export function toSeatLots(lots: readonly LedgerSeatLot[]): SeatLot[] {
  return lots.map((lot) => ({
    quantity: lot.quantity,
    addedAt: new Date(Date.parse(lot.reducibleUntil) - SEAT_WINDOW_IN_MS),
  }));
}

export type SeatChangeCheck =
  | { ok: true; path: ChangePath; delta: number }
  | {
      ok: false;
      code: 'SourceReadOnly' | 'ReductionWindowClosed';
      message: string;
      figures: Record<string, number>;
    };

/**
 * May this source's seat count move from `current` to `target`? EA, third-party and unlabelled seats
 * never move (a shortage is a report); an NCE reduction may take only seats whose window is open.
 */
export function checkSeatChange(input: {
  source: SourceKind;
  hasConnector: boolean;
  current: number;
  target: number;
  lots: readonly LedgerSeatLot[];
  now: Date;
}): SeatChangeCheck {
  const path = changePath(input.source, input.hasConnector);
  const delta = input.target - input.current;
  if (path.kind === 'report')
    return {
      ok: false,
      code: 'SourceReadOnly',
      message: path.reason,
      figures: { current: input.current, wanted: input.target, shortage: Math.max(0, delta) },
    };
  if (delta < 0 && input.source === 'partnerCenter') {
    const reducible = refundableQuantity(toSeatLots(input.lots), input.now);
    if (-delta > reducible)
      return {
        ok: false,
        code: 'ReductionWindowClosed',
        message: `only ${reducible} seats are inside their 168-hour window; the rest can change at renewal`,
        figures: { requested: -delta, reducible },
      };
  }
  return { ok: true, path, delta };
}
