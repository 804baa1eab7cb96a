import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import type { Customer } from '../domain/customer.js';
import {
  checkSeatChange,
  deriveLedger,
  graphSkuSchema,
  graphSubscriptionSchema,
  labelSchema,
  ledgerChange,
  ledgerEntrySchema,
  matchGraphSubscriptions,
  planImport,
  policySources,
  reconcile,
  renewals,
  sourceName,
  subjectOf,
  type ConnectedSource,
  type GraphSku,
  type GraphSubscription,
  type LedgerEntry,
  type LedgerState,
  type NewLedgerEntry,
  type SkuReconciliation,
  type SourceKind,
  type SourceSubscription,
} from '../domain/licensing.js';
import { AppError, isAppError, toAppError } from '../errors.js';
import { record } from '../metrics.js';
import type { Clock } from '../ports/clock.js';
import type { CloudDirectoryFactory } from '../ports/cloud-directory.js';
import type { Commerce, CommerceSubscription } from '../ports/commerce.js';
import type { Distributor, DistributorProduct, DistributorSubscription } from '../ports/distributor.js';
import type { Store, Versioned } from '../ports/store.js';
import { loadCustomer } from './customers.js';
import { engineCollections, HELD_PARTITION } from './operations/records.js';

/**
 * Licence sources and the per-source seat ledger (issue 13). Every record lives under its provider:
 * another provider's customer, subscription or purchase request is not there, so it answers 404 like a
 * missing one (loadCustomer checks the customer before anything is read). Connectors (a Partner Center
 * or distributor account) belong to one provider each and are used only for that provider's customers.
 */

// ---------- stored shapes ----------

export const licensingSourcesInputSchema = z.strictObject({
  /** The customer's id in Partner Center (1-Tier, direct bill). */
  partnerCenterCustomerId: z.guid().optional(),
  /** The customer's company id at the distributor (2-Tier). */
  distributorCompanyId: z.guid().optional(),
  /** Where a new seat should come from first (e.g. EA, then the distributor, then Partner Center). */
  assignmentPolicy: z
    .array(z.enum(policySources))
    .max(policySources.length)
    .refine((list) => new Set(list).size === list.length, 'each source at most once')
    .default([]),
});
export type LicensingSourcesInput = z.infer<typeof licensingSourcesInputSchema>;

const sourcesRecordSchema = licensingSourcesInputSchema.extend({
  customerId: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
type SourcesRecord = z.infer<typeof sourcesRecordSchema>;

const phaseStates = z.enum(['pending', 'done', 'skipped', 'failed']);
const importRecordSchema = z.object({
  importId: z.string(),
  customerId: z.string(),
  state: z.enum(['running', 'succeeded', 'failed']),
  startedAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
  startedBy: z.string(),
  /** Progress: each source is read and written as one phase; a re-run resumes at the first not done. */
  phases: z.array(
    z.object({
      name: z.enum(['partnerCenter', 'distributor', 'graph']),
      state: phaseStates,
      read: z.number().int().nonnegative().default(0),
      changed: z.number().int().nonnegative().default(0),
      note: z.string().optional(),
      error: z.object({ code: z.string(), message: z.string() }).optional(),
    }),
  ),
});
export type ImportRecord = z.infer<typeof importRecordSchema>;

const idempotencyRowSchema = z.object({ entryRowKey: z.string() });

export const purchaseRequestInputSchema = z.strictObject({
  skuId: z.guid(),
  /** Seats to add (positive) or give back (negative). */
  change: z
    .number()
    .int()
    .refine((n) => n !== 0, 'must not be 0'),
  /** Which source should change; by default the first of the assignment policy that supplies the SKU. */
  source: z.enum(policySources).optional(),
  /** The source subscription to change (Partner Center or distributor id). */
  subscriptionId: z.string().min(1).max(128).optional(),
  reason: z.string().trim().min(1).max(1000),
  /** Who the seats are for (users, a team, a project). */
  forWhom: z.array(z.string().trim().min(1).max(256)).max(500).default([]),
});
export type PurchaseRequestInput = z.infer<typeof purchaseRequestInputSchema>;

const purchaseRequestSchema = z.object({
  requestId: z.string(),
  customerId: z.string(),
  state: z.enum(['pending', 'approved', 'applied', 'rejected']),
  skuId: z.string(),
  skuPartNumber: z.string(),
  source: z.enum(['partnerCenter', 'distributor']),
  sourceName: z.string(),
  subscriptionId: z.string().optional(),
  currentQuantity: z.number().int().nonnegative(),
  targetQuantity: z.number().int().nonnegative(),
  change: z.number().int(),
  reason: z.string(),
  forWhom: z.array(z.string()),
  /** The demand behind it when it was asked for. */
  demand: z.object({
    enabled: z.number(),
    assigned: z.number(),
    free: z.number(),
    waitingForSeat: z.number(),
    explanation: z.string(),
  }),
  /** `connector`: an approval sends it to the source; `manual`: a person orders it and approves. */
  path: z.enum(['connector', 'manual']),
  requestedBy: z.string(),
  requestedAt: z.string(),
  requestHash: z.string(),
  decidedBy: z.string().optional(),
  decidedAt: z.string().optional(),
  note: z.string().optional(),
  appliedAt: z.string().optional(),
  lastError: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type PurchaseRequest = z.infer<typeof purchaseRequestSchema>;

export const decisionInputSchema = z.strictObject({ note: z.string().trim().min(1).max(1000).optional() });

export const labelInputSchema = z.strictObject({
  kind: z.enum(['ea', 'thirdParty']),
  resellerName: z.string().trim().min(1).max(256).optional(),
  note: z.string().trim().min(1).max(1000).optional(),
});

// ---------- dependencies ----------

export interface LicensingConnectors {
  /** A Partner Center account (1-Tier) and the one provider it belongs to. */
  partnerCenter?: { providerId: string; commerce: Commerce };
  /** A distributor account (2-Tier) and the one provider it belongs to. */
  distributor?: { providerId: string; distributor: Distributor };
}

export interface LicensingDeps {
  store: Store;
  clock: Clock;
  cloudDirectory?: CloudDirectoryFactory;
  connectors: LicensingConnectors;
  /** How the distributor is named in explanations (e.g. "Pax8"). */
  distributorName: string;
}

const partition = (providerId: string, customerId: string): string => `${providerId}/${customerId}`;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function pcStatus(status: CommerceSubscription['status']): SourceSubscription['status'] {
  switch (status) {
    case 'active':
      return 'active';
    case 'pending':
      return 'pending';
    case 'suspended':
    case 'disabled':
      return 'suspended';
    case 'deleted':
      return 'cancelled';
    case 'expired':
      return 'expired';
    default:
      return 'other';
  }
}

function distributorStatus(status: DistributorSubscription['status']): SourceSubscription['status'] {
  switch (status) {
    case 'active':
    case 'trial':
      return 'active';
    case 'pending':
    case 'waitingForDetails':
      return 'pending';
    case 'pendingCancel':
      return 'pendingCancel';
    case 'cancelled':
      return 'cancelled';
  }
}

const iso = (date: Date | undefined): string | undefined => date?.toISOString();

export function fromPartnerCenter(s: CommerceSubscription, skuId: string | undefined): SourceSubscription {
  const scheduled = s.scheduledRenewal;
  return {
    source: 'partnerCenter',
    id: s.id,
    ...(skuId === undefined ? {} : { skuId }),
    offerId: s.catalogItemId,
    ...(s.offerName === undefined ? {} : { offerName: s.offerName }),
    quantity: s.quantity,
    status: pcStatus(s.status),
    ...(s.termDuration === undefined ? {} : { term: s.termDuration }),
    ...(s.billingCycle === undefined ? {} : { billingCycle: s.billingCycle }),
    autoRenew: s.autoRenewEnabled,
    ...(s.commitmentEndDate === undefined ? {} : { termEndsOn: iso(s.commitmentEndDate) }),
    ...(s.cancellationAllowedUntil === undefined
      ? {}
      : { cancellationAllowedUntil: iso(s.cancellationAllowedUntil) }),
    lots: s.refundableSeats.map((lot) => ({
      quantity: lot.quantity,
      reducibleUntil: lot.allowedUntil.toISOString(),
    })),
    ...(scheduled === undefined
      ? {}
      : {
          scheduledRenewal: {
            ...(scheduled.quantity === undefined ? {} : { quantity: scheduled.quantity }),
            ...(scheduled.termDuration === undefined ? {} : { term: scheduled.termDuration }),
            ...(scheduled.billingCycle === undefined ? {} : { billingCycle: scheduled.billingCycle }),
            ...(scheduled.catalogItemId === undefined ? {} : { offerId: scheduled.catalogItemId }),
          },
        }),
  };
}

export function fromDistributor(
  s: DistributorSubscription,
  product: DistributorProduct | undefined,
  skuId: string | undefined,
): SourceSubscription {
  const commitment = product?.commitments.find((c) => c.id === s.commitment?.id);
  const term = s.commitment?.term ?? commitment?.term ?? s.billingTerm;
  return {
    source: 'distributor',
    id: s.id,
    ...(skuId === undefined ? {} : { skuId }),
    offerId: s.productId,
    ...((s.productName ?? product?.name) === undefined ? {} : { offerName: s.productName ?? product?.name }),
    quantity: s.quantity,
    status: distributorStatus(s.status),
    ...(term === undefined ? {} : { term }),
    ...(s.billingTerm === undefined ? {} : { billingCycle: s.billingTerm }),
    // A commitment says whether it renews; a month-to-month subscription runs on until cancelled.
    ...(commitment?.autoRenew !== undefined
      ? { autoRenew: commitment.autoRenew }
      : s.commitment === undefined && s.billingTerm === 'Monthly'
        ? { autoRenew: true }
        : {}),
    ...(s.commitment?.endDate === undefined ? {} : { termEndsOn: iso(s.commitment.endDate) }),
    lots: [],
    ...(s.vendorSubscriptionId === undefined ? {} : { vendorSubscriptionId: s.vendorSubscriptionId }),
    ...(s.endDate === undefined ? {} : { endsAt: iso(s.endDate) }),
  };
}

function fromGraph(s: {
  id: string;
  commerceSubscriptionId: string;
  skuId: string;
  skuPartNumber: string;
  totalLicenses: number;
  status: GraphSubscription['status'];
  isTrial: boolean;
  createdDateTime: string | null;
  nextLifecycleDateTime: string | null;
  ownerTenantId: string | null;
}): GraphSubscription {
  return graphSubscriptionSchema.parse({
    id: s.id,
    commerceSubscriptionId: s.commerceSubscriptionId,
    skuId: s.skuId,
    skuPartNumber: s.skuPartNumber,
    totalLicenses: s.totalLicenses,
    status: s.status,
    isTrial: s.isTrial,
    createdDateTime: s.createdDateTime,
    nextLifecycleDateTime: s.nextLifecycleDateTime,
    ownerTenantId: s.ownerTenantId,
  });
}

export function createLicensing(deps: LicensingDeps) {
  const sources = deps.store.collection('licensingsources', sourcesRecordSchema);
  const ledger = deps.store.collection('licensingledger', ledgerEntrySchema);
  const ledgerKeys = deps.store.collection('licensingledgerkeys', idempotencyRowSchema);
  const imports = deps.store.collection('licensingimports', importRecordSchema);
  const requests = deps.store.collection('purchaserequests', purchaseRequestSchema);
  const engine = engineCollections(deps.store);
  const now = (): string => deps.clock.now().toISOString();

  function commerceFor(providerId: string): Commerce | undefined {
    const pc = deps.connectors.partnerCenter;
    return pc?.providerId === providerId ? pc.commerce : undefined;
  }
  function distributorFor(providerId: string): Distributor | undefined {
    const d = deps.connectors.distributor;
    return d?.providerId === providerId ? d.distributor : undefined;
  }
  const connectorsOf = (providerId: string): Record<ConnectedSource, boolean> => ({
    partnerCenter: commerceFor(providerId) !== undefined,
    distributor: distributorFor(providerId) !== undefined,
  });

  async function configOf(providerId: string, customerId: string): Promise<SourcesRecord | undefined> {
    return (await sources.get(providerId, customerId))?.value;
  }

  // ---------- ledger ----------

  async function readLedger(providerId: string, customerId: string): Promise<LedgerEntry[]> {
    const entries: LedgerEntry[] = [];
    for await (const row of ledger.list(partition(providerId, customerId))) entries.push(row.value);
    return entries.sort((a, b) => (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
  }

  let sequence = 0;
  /**
   * Appends once per idempotency key: the key row is claimed first and names the entry's row, so a
   * crash between the two writes is finished by the next attempt instead of writing a second entry.
   */
  async function append(providerId: string, customerId: string, entry: NewLedgerEntry): Promise<boolean> {
    const p = partition(providerId, customerId);
    const keyRow = sha256(entry.idempotencyKey);
    sequence = (sequence + 1) % 1_000_000;
    const proposed = `${now()}~${String(sequence).padStart(6, '0')}~${randomUUID().slice(0, 8)}`;
    let rowKey = proposed;
    try {
      await ledgerKeys.create(p, keyRow, { entryRowKey: proposed });
    } catch (error) {
      if (!isAppError(error, 'AlreadyExists')) throw error;
      const existing = await ledgerKeys.get(p, keyRow);
      rowKey = existing?.value.entryRowKey ?? proposed;
      if ((await ledger.get(p, rowKey)) !== undefined) return false;
    }
    try {
      await ledger.create(p, rowKey, { ...entry, entryId: rowKey, at: rowKey.slice(0, 24) });
    } catch (error) {
      if (!isAppError(error, 'AlreadyExists')) throw error;
      return false;
    }
    countSeats(entry);
    return true;
  }

  /** Seats we bought or released at a source, counted once: only when the entry is first written. */
  function countSeats(entry: NewLedgerEntry): void {
    if ((entry.cause !== 'purchase' && entry.cause !== 'reduction') || entry.value.kind !== 'subscription')
      return;
    const before = entry.figures.quantityBefore;
    const after = entry.figures.quantityAfter;
    if (typeof after !== 'number') return;
    const delta = after - (typeof before === 'number' ? before : 0);
    const { source, skuId, offerId } = entry.value.subscription;
    record.seatChange(source, skuId ?? offerId, delta);
  }

  async function stateOf(providerId: string, customerId: string): Promise<LedgerState> {
    return deriveLedger(await readLedger(providerId, customerId));
  }

  // ---------- sources configuration ----------

  /**
   * With a Partner Center connector, the Partner Center customer must be this customer's own tenant:
   * otherwise its subscriptions (and purchases) would land on the wrong customer's ledger.
   */
  async function assertPartnerCenterCustomer(
    providerId: string,
    customer: Customer,
    partnerCenterCustomerId: string,
  ): Promise<void> {
    const commerce = commerceFor(providerId);
    if (commerce === undefined) return;
    const invalid = (message: string): AppError =>
      new AppError('Validation', message, {
        details: { errors: [{ path: 'body.partnerCenterCustomerId', message }] },
      });
    let tenantId: string;
    try {
      tenantId = (await commerce.getCustomer(partnerCenterCustomerId)).tenantId;
    } catch (error) {
      if (isAppError(error, 'NotFound')) throw invalid('not a customer of this Partner Center account');
      throw error;
    }
    if (tenantId.toLowerCase() !== customer.entra?.tenantId.toLowerCase())
      throw invalid("its tenant is not this customer's Entra tenant");
  }

  /** With a distributor connector, the company must be one the provider bills there. */
  async function assertDistributorCompany(providerId: string, companyId: string): Promise<void> {
    const distributor = distributorFor(providerId);
    if (distributor === undefined) return;
    const companies = await distributor.listCompanies();
    if (!companies.some((c) => c.id.toLowerCase() === companyId.toLowerCase() && c.status !== 'deleted')) {
      const message = `not a company of this ${deps.distributorName} account`;
      throw new AppError('Validation', message, {
        details: { errors: [{ path: 'body.distributorCompanyId', message }] },
      });
    }
  }

  async function putSources(caller: Caller, customerId: string, input: LicensingSourcesInput) {
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    if (input.partnerCenterCustomerId !== undefined)
      await assertPartnerCenterCustomer(caller.providerId, customer, input.partnerCenterCustomerId);
    if (input.distributorCompanyId !== undefined)
      await assertDistributorCompany(caller.providerId, input.distributorCompanyId);
    const record: SourcesRecord = {
      ...input,
      customerId,
      updatedAt: now(),
      updatedBy: caller.id,
    };
    for (let attempt = 0; ; attempt++) {
      const existing = await sources.get(caller.providerId, customerId);
      try {
        if (existing === undefined) await sources.create(caller.providerId, customerId, record);
        else await sources.replace(caller.providerId, customerId, record, existing.etag);
        break;
      } catch (error) {
        const lost = isAppError(error, 'AlreadyExists') || isAppError(error, 'ConcurrencyConflict');
        if (!lost || attempt >= 3) throw error;
      }
    }
    return describeSources(caller.providerId, record);
  }

  function describeSources(providerId: string, record: SourcesRecord | undefined) {
    const connectors = connectorsOf(providerId);
    return {
      customerId: record?.customerId,
      partnerCenterCustomerId: record?.partnerCenterCustomerId,
      distributorCompanyId: record?.distributorCompanyId,
      assignmentPolicy: record?.assignmentPolicy ?? [],
      updatedAt: record?.updatedAt,
      // Which connectors this provider has; never their endpoints or credentials.
      connectors: { ...connectors, distributorName: deps.distributorName },
    };
  }

  async function getSources(caller: Caller, customerId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const record = await configOf(caller.providerId, customerId);
    return { ...describeSources(caller.providerId, record), customerId };
  }

  // ---------- import ----------

  type PhaseName = ImportRecord['phases'][number]['name'];

  async function saveImport(p: string, row: Versioned<ImportRecord>, next: ImportRecord) {
    return imports.replace(p, row.rowKey, { ...next, updatedAt: now() }, row.etag);
  }

  async function readPartnerCenter(commerce: Commerce, pcCustomerId: string): Promise<SourceSubscription[]> {
    const list = await commerce.listSubscriptions(pcCustomerId);
    const skuOf = new Map<string, string | undefined>();
    const result: SourceSubscription[] = [];
    for (const s of list) {
      const [productId, skuId] = s.catalogItemId.split(':');
      const key = `${productId ?? ''}:${skuId ?? ''}`;
      if (!skuOf.has(key) && productId !== undefined && skuId !== undefined) {
        const offers = await commerce.findOffers(productId, skuId).catch(() => []);
        skuOf.set(key, offers.find((o) => o.licenceSkuId !== undefined)?.licenceSkuId);
      }
      result.push(fromPartnerCenter(s, skuOf.get(key)));
    }
    return result;
  }

  async function readDistributor(
    distributor: Distributor,
    companyId: string,
    commerce: Commerce | undefined,
  ): Promise<SourceSubscription[]> {
    const list = await distributor.listSubscriptions(companyId);
    const products = new Map<string, DistributorProduct | undefined>();
    const skus = new Map<string, string | undefined>();
    const result: SourceSubscription[] = [];
    for (const s of list) {
      if (!products.has(s.productId))
        products.set(s.productId, await distributor.getProduct(s.productId).catch(() => undefined));
      const product = products.get(s.productId);
      // The vendor SKU (`productId:skuId` in Microsoft's catalogue) names the Graph SKU through Partner
      // Center's catalogue, when this provider has it; otherwise a Graph match supplies it.
      let skuId: string | undefined;
      const vendorSku = product?.vendorSku;
      if (vendorSku !== undefined && commerce !== undefined) {
        if (!skus.has(vendorSku)) {
          const [p, k] = vendorSku.split(':');
          const offers =
            p === undefined || k === undefined ? [] : await commerce.findOffers(p, k).catch(() => []);
          skus.set(vendorSku, offers.find((o) => o.licenceSkuId !== undefined)?.licenceSkuId);
        }
        skuId = skus.get(vendorSku);
      }
      result.push(fromDistributor(s, product, skuId));
    }
    return result;
  }

  /** Fills in the Graph SKU of source subscriptions that a Graph subscription matched. */
  function withGraphSkus(
    list: SourceSubscription[] | undefined,
    graph: GraphSubscription[],
    labels: LedgerState['labels'],
  ): SourceSubscription[] | undefined {
    if (list === undefined) return undefined;
    const { matches } = matchGraphSubscriptions(graph, list, labels);
    return list.map((s) => {
      if (s.skuId !== undefined) return s;
      const match = matches.find((m) => m.subscription === s);
      return match === undefined ? s : { ...s, skuId: match.graph.skuId };
    });
  }

  /**
   * Reads every source this customer has and appends an entry for each change. Stored as a resumable
   * record: each source is one phase, persisted when done; running it again with the same id resumes
   * at the first phase not done (ledger writes are idempotent, so a phase cut short is simply redone).
   */
  async function runImport(caller: Caller, customerId: string, options: { importId?: string } = {}) {
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    const config = await configOf(caller.providerId, customerId);
    const p = partition(caller.providerId, customerId);
    const importId = options.importId ?? randomUUID();
    let row = await imports.get(p, importId);
    if (row === undefined) {
      const record: ImportRecord = {
        importId,
        customerId,
        state: 'running',
        startedAt: now(),
        updatedAt: now(),
        startedBy: caller.id,
        phases: (['partnerCenter', 'distributor', 'graph'] as const).map((name) => ({
          name,
          state: 'pending' as const,
          read: 0,
          changed: 0,
        })),
      };
      try {
        row = await imports.create(p, importId, record);
      } catch (error) {
        if (!isAppError(error, 'AlreadyExists')) throw error;
        row = await imports.get(p, importId);
      }
    }
    if (row === undefined) throw new AppError('Internal', 'import record vanished');
    if (row.value.state === 'succeeded') return row.value;

    const commerce = commerceFor(caller.providerId);
    const distributor = distributorFor(caller.providerId);
    // Graph first in memory (it fills in SKUs of distributor subscriptions), but written last.
    let graph: { subscriptions: GraphSubscription[]; skus: GraphSku[] } | undefined;
    const readGraph = async () => {
      if (graph !== undefined) return graph;
      const tenantId = customer.entra?.tenantId;
      if (tenantId === undefined || deps.cloudDirectory === undefined) return undefined;
      const directory = deps.cloudDirectory(tenantId);
      const [subscriptions, skus] = await Promise.all([
        directory.listSubscriptions(),
        directory.listSubscribedSkus(),
      ]);
      graph = {
        subscriptions: subscriptions.map(fromGraph),
        skus: skus.map((sku) =>
          graphSkuSchema.parse({
            skuId: sku.skuId,
            skuPartNumber: sku.skuPartNumber,
            enabled: sku.prepaidUnits.enabled,
            warning: sku.prepaidUnits.warning,
            suspended: sku.prepaidUnits.suspended,
            lockedOut: sku.prepaidUnits.lockedOut,
            consumed: sku.consumedUnits,
          }),
        ),
      };
      return graph;
    };

    const runPhase = async (name: PhaseName): Promise<{ read: number; changed: number; note?: string }> => {
      const state = await stateOf(caller.providerId, customerId);
      const seen = await readGraph();
      let entries: NewLedgerEntry[];
      let read = 0;
      if (name === 'partnerCenter') {
        if (config?.partnerCenterCustomerId === undefined)
          return { read, changed: 0, note: 'not configured' };
        if (commerce === undefined)
          return { read, changed: 0, note: 'this provider has no Partner Center connector' };
        const list = withGraphSkus(
          await readPartnerCenter(commerce, config.partnerCenterCustomerId),
          seen?.subscriptions ?? [],
          state.labels,
        );
        read = list?.length ?? 0;
        entries = planImport(state, { partnerCenter: list ?? [] }, `import:${importId}`);
      } else if (name === 'distributor') {
        if (config?.distributorCompanyId === undefined) return { read, changed: 0, note: 'not configured' };
        if (distributor === undefined)
          return {
            read,
            changed: 0,
            note: `this provider has no ${deps.distributorName} connector: changes go through purchase requests`,
          };
        const list = withGraphSkus(
          await readDistributor(distributor, config.distributorCompanyId, commerce),
          seen?.subscriptions ?? [],
          state.labels,
        );
        read = list?.length ?? 0;
        entries = planImport(state, { distributor: list ?? [] }, `import:${importId}`);
      } else {
        if (seen === undefined)
          return { read, changed: 0, note: 'the customer has no Entra tenant or Graph is not configured' };
        read = seen.subscriptions.length + seen.skus.length;
        entries = planImport(
          state,
          { graphSubscriptions: seen.subscriptions, skus: seen.skus },
          `import:${importId}`,
        );
      }
      let changed = 0;
      for (const entry of entries) if (await append(caller.providerId, customerId, entry)) changed += 1;
      return { read, changed };
    };

    for (const phase of row.value.phases) {
      if (phase.state === 'done' || phase.state === 'skipped') continue;
      let outcome: ImportRecord['phases'][number];
      try {
        const result = await runPhase(phase.name);
        outcome = {
          name: phase.name,
          state: result.note !== undefined && result.read === 0 ? 'skipped' : 'done',
          read: result.read,
          changed: result.changed,
          ...(result.note === undefined ? {} : { note: result.note }),
        };
      } catch (error) {
        const failure = toAppError(error);
        const failed: ImportRecord = {
          ...row.value,
          state: 'failed',
          phases: row.value.phases.map((x) =>
            x.name === phase.name
              ? { ...x, state: 'failed' as const, error: { code: failure.code, message: failure.message } }
              : x,
          ),
        };
        await saveImport(p, row, failed);
        // The original error: a retryable one (throttled, unavailable) stays retryable for the caller.
        throw error;
      }
      row = await saveImport(p, row, {
        ...row.value,
        state: 'running',
        phases: row.value.phases.map((x) => (x.name === phase.name ? outcome : x)),
      });
    }
    row = await saveImport(p, row, { ...row.value, state: 'succeeded', finishedAt: now() });
    return row.value;
  }

  async function getImport(caller: Caller, customerId: string, importId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const row = await imports.get(partition(caller.providerId, customerId), importId);
    if (row === undefined) throw new AppError('NotFound', `import ${importId} not found`);
    return row.value;
  }

  // ---------- reconciliation ----------

  /** Held operations of this customer per Graph SKU they wait for (from the engine's tables). */
  async function waitingForSeat(
    providerId: string,
    customer: Customer,
    customerId: string,
    knownSkus: string[],
  ): Promise<{ bySku: Map<string, number>; unattributed: number }> {
    const bySku = new Map<string, number>();
    let unattributed = 0;
    const guid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
    for await (const held of engine.held.list(HELD_PARTITION, { rowKeyPrefix: `${providerId}/` })) {
      if (held.value.providerId !== providerId || held.value.customerId !== customerId) continue;
      const operation = (await engine.operations.get(providerId, held.value.operationId))?.value;
      if (operation?.state !== 'needsLicence') continue;
      const text = operation.steps.map((s) => s.error?.message ?? '').join(' ');
      let skus = (text.match(guid) ?? []).map((s) => s.toLowerCase()).filter((s) => knownSkus.includes(s));
      if (skus.length === 0 && operation.kind === 'user.create') {
        const plan = customer.licencePlans.find((x) => x.name === operation.request.licencePlan);
        skus = plan?.skus.map((s) => s.skuId.toLowerCase()) ?? [];
      }
      if (skus.length === 0) unattributed += 1;
      for (const sku of new Set(skus)) bySku.set(sku, (bySku.get(sku) ?? 0) + 1);
    }
    return { bySku, unattributed };
  }

  async function reconciled(caller: Caller, customerId: string) {
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    const config = await configOf(caller.providerId, customerId);
    const state = await stateOf(caller.providerId, customerId);
    const knownSkus = [
      ...state.skus.map((s) => s.skuId.toLowerCase()),
      ...state.graphSubscriptions.map((s) => s.skuId.toLowerCase()),
    ];
    const waiting = await waitingForSeat(caller.providerId, customer, customerId, knownSkus);
    const skus = reconcile({
      state,
      waitingForSeat: waiting.bySku,
      distributorName: deps.distributorName,
      policy: config?.assignmentPolicy ?? [],
      connectors: connectorsOf(caller.providerId),
      now: deps.clock.now(),
    });
    return { customer, config, state, skus, waiting };
  }

  async function licensing(caller: Caller, customerId: string) {
    const { state, skus, waiting, config } = await reconciled(caller, customerId);
    const newest = [...state.latest.values()].reduce<string | undefined>(
      (max, e) => (max === undefined || e.at > max ? e.at : max),
      undefined,
    );
    return {
      customerId,
      assignmentPolicy: config?.assignmentPolicy ?? [],
      lastChangeAt: newest,
      skus,
      unexplained: skus.flatMap((s) =>
        s.differences
          .filter((d) => d.code === 'unexplainedSubscription')
          .map((d) => ({ skuId: s.skuId, ...d })),
      ),
      waitingForSeatUnattributed: waiting.unattributed,
    };
  }

  async function subscriptions(caller: Caller, customerId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const state = await stateOf(caller.providerId, customerId);
    const { matches, unmatchedSources } = matchGraphSubscriptions(
      state.graphSubscriptions,
      state.subscriptions,
      state.labels,
    );
    return {
      customerId,
      value: [
        ...matches.map((m) => ({
          id: m.graph.id,
          kind: 'graph' as const,
          source: m.source,
          sourceName: sourceName(m.source, deps.distributorName),
          skuId: m.graph.skuId,
          skuPartNumber: m.graph.skuPartNumber,
          seats: m.graph.totalLicenses,
          status: m.graph.status,
          commerceSubscriptionId: m.graph.commerceSubscriptionId,
          nextLifecycleDateTime: m.graph.nextLifecycleDateTime,
          matchedBy: m.basis ?? (m.label === undefined ? undefined : 'label'),
          sourceSubscription: m.subscription,
          label: m.label,
          explained: m.source !== 'unlabelled',
        })),
        ...unmatchedSources.map((s) => ({
          id: s.id,
          kind: 'source' as const,
          source: s.source,
          sourceName: sourceName(s.source, deps.distributorName),
          skuId: s.skuId,
          seats: s.quantity,
          status: s.status,
          sourceSubscription: s,
          explained: true,
        })),
      ],
    };
  }

  async function label(
    caller: Caller,
    customerId: string,
    graphSubscriptionId: string,
    input: z.infer<typeof labelInputSchema>,
  ) {
    await loadCustomer(deps.store, caller, customerId);
    const state = await stateOf(caller.providerId, customerId);
    const graph = state.graphSubscriptions.find(
      (g) => g.id.toLowerCase() === graphSubscriptionId.toLowerCase(),
    );
    if (graph === undefined) throw new AppError('NotFound', `subscription ${graphSubscriptionId} not found`);
    const { matches } = matchGraphSubscriptions(state.graphSubscriptions, state.subscriptions, []);
    const match = matches.find((m) => m.graph === graph);
    if (
      match?.subscription !== undefined &&
      (match.basis === 'commerceSubscriptionId' || match.basis === 'vendorSubscriptionId')
    )
      throw new AppError(
        'Conflict',
        `subscription ${graph.id} is ${sourceName(match.source, deps.distributorName)} subscription ${match.subscription.id}; it cannot be labelled ${input.kind}`,
      );
    const value = {
      kind: 'label' as const,
      label: labelSchema.parse({ graphSubscriptionId: graph.id, ...input }),
    };
    const subject = subjectOf.label(graph.id);
    const entry = ledgerChange({
      subject,
      previous: state.latest.get(subject),
      value,
      cause: 'label',
      actor: caller.id,
      figures: { seats: graph.totalLicenses, skuPartNumber: graph.skuPartNumber },
    });
    if (entry !== undefined) await append(caller.providerId, customerId, entry);
    return value.label;
  }

  async function renewalView(caller: Caller, customerId: string, days: number) {
    await loadCustomer(deps.store, caller, customerId);
    const state = await stateOf(caller.providerId, customerId);
    const items = renewals({ state, now: deps.clock.now(), days, distributorName: deps.distributorName });
    return { customerId, days, alerts: items.filter((i) => i.alert !== undefined).length, value: items };
  }

  // ---------- purchase requests ----------

  async function getRequest(caller: Caller, customerId: string, requestId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const row = await requests.get(partition(caller.providerId, customerId), requestId);
    if (row === undefined) throw new AppError('NotFound', `purchase request ${requestId} not found`);
    return row;
  }

  /**
   * A person's request for seats (or fewer seats). Nothing is bought and the ledger does not move until
   * it is approved. EA, third-party and unlabelled seats are never bought or reduced: asking for them
   * answers with the shortage report instead.
   */
  async function createRequest(
    caller: Caller,
    customerId: string,
    input: PurchaseRequestInput,
    idempotencyKey: string | undefined,
  ): Promise<{ request: PurchaseRequest; created: boolean }> {
    const { config, state, skus } = await reconciled(caller, customerId);
    const requestHash = sha256(JSON.stringify(input));
    const p = partition(caller.providerId, customerId);
    const requestId =
      idempotencyKey === undefined
        ? randomUUID()
        : `pr-${sha256(`${caller.providerId}|${idempotencyKey}`).slice(0, 32)}`;
    if (idempotencyKey !== undefined) {
      const existing = await requests.get(p, requestId);
      if (existing !== undefined) {
        if (existing.value.requestHash !== requestHash)
          throw new AppError('Conflict', 'this Idempotency-Key was used with another request');
        return { request: existing.value, created: false };
      }
    }
    const skuId = input.skuId.toLowerCase();
    const view: SkuReconciliation | undefined = skus.find((s) => s.skuId.toLowerCase() === skuId);
    const lines = view?.subscriptions ?? [];
    const explicit = input.subscriptionId?.toLowerCase();
    const named =
      explicit === undefined
        ? undefined
        : lines.find(
            (l) =>
              l.sourceSubscriptionId?.toLowerCase() === explicit ||
              l.graphSubscriptionId?.toLowerCase() === explicit,
          );
    if (explicit !== undefined && named === undefined)
      throw new AppError(
        'NotFound',
        `subscription ${input.subscriptionId ?? ''} not found for SKU ${input.skuId}`,
      );
    const policySource = (config?.assignmentPolicy ?? []).find((s) => lines.some((l) => l.source === s));
    const source: SourceKind =
      named?.source ?? input.source ?? policySource ?? lines[0]?.source ?? 'unlabelled';
    const report = {
      skuId: input.skuId,
      explanation: view?.explanation,
      free: view?.free ?? 0,
      waitingForSeat: view?.waitingForSeat ?? 0,
    };
    if (source !== 'partnerCenter' && source !== 'distributor') {
      const check = checkSeatChange({
        source,
        hasConnector: false,
        current: view?.supply[source] ?? 0,
        target: (view?.supply[source] ?? 0) + input.change,
        lots: [],
        now: deps.clock.now(),
      });
      throw new AppError('Conflict', check.ok ? 'read-only source' : check.message, {
        details: { reason: 'SourceReadOnly', source, shortageReport: { ...report, wanted: input.change } },
      });
    }
    const candidates = lines.filter((l) => l.source === source && l.sourceSubscriptionId !== undefined);
    const line = named ?? (candidates.length === 1 ? candidates[0] : undefined);
    if (line === undefined && candidates.length > 1)
      throw new AppError(
        'Validation',
        `several ${sourceName(source, deps.distributorName)} subscriptions supply this SKU: name subscriptionId`,
        {
          details: {
            errors: [{ path: 'body.subscriptionId', message: 'required: several subscriptions match' }],
          },
        },
      );
    const subscription = state.subscriptions.find(
      (s) => s.source === source && s.id.toLowerCase() === line?.sourceSubscriptionId?.toLowerCase(),
    );
    const hasConnector = connectorsOf(caller.providerId)[source];
    if (hasConnector && subscription === undefined)
      throw new AppError(
        'Validation',
        `no ${sourceName(source, deps.distributorName)} subscription supplies SKU ${input.skuId} yet; new subscriptions are not ordered through purchase requests`,
      );
    const current = subscription?.quantity ?? 0;
    const target = current + input.change;
    if (target < 0)
      throw new AppError(
        'Validation',
        `the subscription has ${current} seats; it cannot give back ${-input.change}`,
      );
    const check = checkSeatChange({
      source,
      hasConnector,
      current,
      target,
      lots: subscription?.lots ?? [],
      now: deps.clock.now(),
    });
    if (!check.ok)
      throw new AppError(
        check.code === 'ReductionWindowClosed' ? 'ReductionWindowClosed' : 'Conflict',
        check.message,
        {
          details: { figures: check.figures },
        },
      );
    const request: PurchaseRequest = {
      requestId,
      customerId,
      state: 'pending',
      skuId: view?.skuId ?? input.skuId,
      skuPartNumber: view?.skuPartNumber ?? input.skuId,
      source,
      sourceName: sourceName(source, deps.distributorName),
      ...(subscription === undefined ? {} : { subscriptionId: subscription.id }),
      currentQuantity: current,
      targetQuantity: target,
      change: input.change,
      reason: input.reason,
      forWhom: input.forWhom,
      demand: {
        enabled: view?.graph.enabled ?? 0,
        assigned: view?.assigned ?? 0,
        free: view?.free ?? 0,
        waitingForSeat: view?.waitingForSeat ?? 0,
        explanation: view?.explanation ?? 'the ledger has no figures for this SKU yet (import first)',
      },
      path: hasConnector ? 'connector' : 'manual',
      requestedBy: caller.id,
      requestedAt: now(),
      requestHash,
    };
    try {
      await requests.create(p, requestId, request);
    } catch (error) {
      if (!isAppError(error, 'AlreadyExists')) throw error;
      const existing = await requests.get(p, requestId);
      if (existing === undefined) throw error;
      if (existing.value.requestHash !== requestHash)
        throw new AppError('Conflict', 'this Idempotency-Key was used with another request');
      return { request: existing.value, created: false };
    }
    return { request, created: true };
  }

  async function listRequests(caller: Caller, customerId: string) {
    await loadCustomer(deps.store, caller, customerId);
    const value: PurchaseRequest[] = [];
    for await (const row of requests.list(partition(caller.providerId, customerId))) value.push(row.value);
    return { customerId, value: value.sort((a, b) => a.requestedAt.localeCompare(b.requestedAt)) };
  }

  /**
   * Quantities are absolute, so an approval must not undo a change made at the source since the
   * request was written: it goes ahead only from the quantity the request saw (or when it already
   * stands at the target, e.g. a retry after our own change landed).
   */
  function assertUnchanged(request: PurchaseRequest, now: number): void {
    if (now === request.currentQuantity || now === request.targetQuantity) return;
    throw new AppError(
      'Conflict',
      `${request.sourceName} subscription ${request.subscriptionId ?? ''} has ${now} seats now, not the ${request.currentQuantity} this request was made from: import and ask again`,
      {
        details: { figures: { requestedFrom: request.currentQuantity, now, target: request.targetQuantity } },
      },
    );
  }

  /** Sends an approved change to the source once: the adapters set absolute quantities, reading first. */
  async function applyToSource(
    providerId: string,
    config: SourcesRecord | undefined,
    request: PurchaseRequest,
    previous: SourceSubscription | undefined,
  ): Promise<SourceSubscription> {
    if (request.path === 'manual') {
      // A person ordered it at the source: the ledger records what they approved.
      const base: SourceSubscription = previous ?? {
        source: request.source,
        id: request.subscriptionId ?? `manual-${request.requestId}`,
        skuId: request.skuId,
        offerId: request.skuId,
        quantity: 0,
        status: 'pending',
        lots: [],
      };
      return { ...base, quantity: request.targetQuantity };
    }
    const subscriptionId = request.subscriptionId;
    if (subscriptionId === undefined)
      throw new AppError('Internal', 'a connector request names its subscription');
    if (request.source === 'distributor') {
      const distributor = distributorFor(providerId);
      const companyId = config?.distributorCompanyId;
      if (distributor === undefined || companyId === undefined)
        throw new AppError(
          'Conflict',
          `the ${deps.distributorName} connector is no longer configured for this customer`,
        );
      assertUnchanged(request, (await distributor.getSubscription(companyId, subscriptionId)).quantity);
      const changed = await distributor.changeQuantity(companyId, subscriptionId, request.targetQuantity);
      const product = await distributor.getProduct(changed.productId).catch(() => undefined);
      return fromDistributor(changed, product, previous?.skuId ?? request.skuId);
    }
    const commerce = commerceFor(providerId);
    const pcCustomerId = config?.partnerCenterCustomerId;
    if (commerce === undefined || pcCustomerId === undefined)
      throw new AppError(
        'Conflict',
        'the Partner Center connector is no longer configured for this customer',
      );
    assertUnchanged(request, (await commerce.getSubscription(pcCustomerId, subscriptionId)).quantity);
    const changed = await commerce.changeQuantity(pcCustomerId, subscriptionId, request.targetQuantity, {
      operationKey: `purchase-request:${request.requestId}`,
    });
    return fromPartnerCenter(changed, previous?.skuId ?? request.skuId);
  }

  /**
   * Approves and applies. Safe to repeat: an applied request answers as it is; an approved one that
   * failed to reach the source (throttled, down) is sent again, and the adapter reads the quantity
   * back before sending, so the source changes once.
   */
  async function approve(caller: Caller, customerId: string, requestId: string, note: string | undefined) {
    let row = await getRequest(caller, customerId, requestId);
    const p = partition(caller.providerId, customerId);
    if (row.value.state === 'applied') return row.value;
    if (row.value.state === 'rejected')
      throw new AppError('Conflict', `purchase request ${requestId} was rejected`);
    if (row.value.state === 'pending') {
      row = await requests.replace(
        p,
        requestId,
        {
          ...row.value,
          state: 'approved',
          decidedBy: caller.id,
          decidedAt: now(),
          ...(note === undefined ? {} : { note }),
        },
        row.etag,
      );
    }
    const request = row.value;
    const config = await configOf(caller.providerId, customerId);
    const state = await stateOf(caller.providerId, customerId);
    const previous = state.subscriptions.find(
      (s) => s.source === request.source && s.id === request.subscriptionId,
    );
    let after: SourceSubscription;
    try {
      after = await applyToSource(caller.providerId, config, request, previous);
    } catch (error) {
      const failure = toAppError(error);
      await requests.replace(
        p,
        requestId,
        { ...request, lastError: { code: failure.code, message: failure.message } },
        row.etag,
      );
      throw failure;
    }
    const subject = subjectOf.subscription(after);
    const entry = ledgerChange({
      subject,
      previous: state.latest.get(subject),
      value: { kind: 'subscription', subscription: after },
      cause: request.change > 0 ? 'purchase' : 'reduction',
      actor: request.decidedBy ?? caller.id,
      idempotencyKey: `purchaseRequest:${request.requestId}`,
      figures: {
        purchaseRequestId: request.requestId,
        requestedBy: request.requestedBy,
        change: request.change,
        assigned: request.demand.assigned,
        free: request.demand.free,
        waitingForSeat: request.demand.waitingForSeat,
        path: request.path,
      },
    });
    if (entry !== undefined) await append(caller.providerId, customerId, entry);
    const applied: PurchaseRequest = { ...request, state: 'applied', appliedAt: now() };
    delete applied.lastError;
    const saved = await requests.replace(p, requestId, applied, row.etag);
    return saved.value;
  }

  async function reject(caller: Caller, customerId: string, requestId: string, note: string | undefined) {
    const row = await getRequest(caller, customerId, requestId);
    if (row.value.state === 'rejected') return row.value;
    if (row.value.state !== 'pending')
      throw new AppError(
        'Conflict',
        `purchase request ${requestId} is ${row.value.state}; only a pending one can be rejected`,
      );
    const next: PurchaseRequest = {
      ...row.value,
      state: 'rejected',
      decidedBy: caller.id,
      decidedAt: now(),
      ...(note === undefined ? {} : { note }),
    };
    await requests.replace(partition(caller.providerId, customerId), requestId, next, row.etag);
    return next;
  }

  return {
    putSources,
    getSources,
    runImport,
    getImport,
    licensing,
    subscriptions,
    label,
    renewals: renewalView,
    createRequest,
    listRequests,
    getRequest: async (caller: Caller, customerId: string, requestId: string) =>
      (await getRequest(caller, customerId, requestId)).value,
    approve,
    reject,
    /**
     * One entry for a change made through Partner Center by another use case (issue 14's purchases,
     * quantity changes, cancellations): written once per idempotency key, none when nothing changed.
     */
    async recordSubscriptionChange(
      providerId: string,
      customerId: string,
      input: {
        subscription: SourceSubscription;
        cause: 'purchase' | 'reduction' | 'renewal';
        actor: string;
        idempotencyKey: string;
        figures: Record<string, number | string>;
      },
    ): Promise<void> {
      const state = await stateOf(providerId, customerId);
      const subject = subjectOf.subscription(input.subscription);
      const entry = ledgerChange({
        subject,
        previous: state.latest.get(subject),
        value: { kind: 'subscription', subscription: input.subscription },
        cause: input.cause,
        actor: input.actor,
        idempotencyKey: input.idempotencyKey,
        figures: input.figures,
      });
      if (entry !== undefined) await append(providerId, customerId, entry);
    },
    /** The raw ledger (oldest first), for audits and tests. */
    async ledger(caller: Caller, customerId: string): Promise<LedgerEntry[]> {
      await loadCustomer(deps.store, caller, customerId);
      return readLedger(caller.providerId, customerId);
    },
  };
}

export type Licensing = ReturnType<typeof createLicensing>;
