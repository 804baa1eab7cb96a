import { describe, expect, it } from 'vitest';
import {
  changePath,
  checkSeatChange,
  deriveLedger,
  matchGraphSubscriptions,
  planImport,
  reconcile,
  renewals,
  type GraphSku,
  type GraphSubscription,
  type LedgerEntry,
  type NewLedgerEntry,
  type SourceSubscription,
} from '../../../shared/domain/licensing.js';

const e3 = '05e9a617-0261-4cee-bb44-138d3ef5d965';
const bp = 'cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46';
const now = new Date('2026-03-10T09:30:00.000Z');

function graphSub(over: Partial<GraphSubscription> & { id: string }): GraphSubscription {
  return {
    commerceSubscriptionId: `c-${over.id}`,
    skuId: e3,
    skuPartNumber: 'ENTERPRISEPACK',
    totalLicenses: 1,
    status: 'Enabled',
    isTrial: false,
    createdDateTime: '2025-03-10T00:00:00Z',
    nextLifecycleDateTime: null,
    ownerTenantId: null,
    ...over,
  };
}

function sourceSub(
  over: Partial<SourceSubscription> & Pick<SourceSubscription, 'id' | 'source'>,
): SourceSubscription {
  return { offerId: 'offer', quantity: 1, status: 'active', lots: [], ...over };
}

const sku = (over: Partial<GraphSku> = {}): GraphSku => ({
  skuId: e3,
  skuPartNumber: 'ENTERPRISEPACK',
  enabled: 0,
  warning: 0,
  suspended: 0,
  lockedOut: 0,
  consumed: 0,
  ...over,
});

/** Writes planned entries as the use case does: ids in order, so deriveLedger sees them as appended. */
function appendAll(entries: LedgerEntry[], planned: NewLedgerEntry[]): LedgerEntry[] {
  return [
    ...entries,
    ...planned.map((entry, index) => ({
      ...entry,
      entryId: `${String(entries.length + index).padStart(4, '0')}`,
      at: now.toISOString(),
    })),
  ];
}

describe('what each source may do', () => {
  it('EA, third-party and unlabelled seats are only ever reported, never bought or reduced', () => {
    for (const source of ['ea', 'thirdParty', 'unlabelled'] as const) {
      expect(changePath(source, true).kind).toBe('report');
      const check = checkSeatChange({ source, hasConnector: true, current: 5, target: 8, lots: [], now });
      expect(check).toMatchObject({ ok: false, code: 'SourceReadOnly', figures: { shortage: 3 } });
    }
  });

  it('a distributor change goes through its connector when there is one, else a purchase request', () => {
    expect(changePath('distributor', true)).toEqual({ kind: 'connector' });
    expect(changePath('distributor', false)).toEqual({ kind: 'purchaseRequest' });
  });

  it('a Partner Center reduction takes only seats whose 168-hour window is open', () => {
    const lots = [
      { quantity: 3, reducibleUntil: '2026-03-12T00:00:00.000Z' },
      { quantity: 2, reducibleUntil: '2026-03-09T00:00:00.000Z' },
    ];
    expect(
      checkSeatChange({ source: 'partnerCenter', hasConnector: true, current: 10, target: 7, lots, now }),
    ).toMatchObject({ ok: true, delta: -3 });
    expect(
      checkSeatChange({ source: 'partnerCenter', hasConnector: true, current: 10, target: 6, lots, now }),
    ).toMatchObject({ ok: false, code: 'ReductionWindowClosed', figures: { requested: 4, reducible: 3 } });
  });
});

describe('ledger', () => {
  const pc = sourceSub({
    source: 'partnerCenter',
    id: 'PC-1',
    quantity: 10,
    termEndsOn: '2027-03-09T00:00:00Z',
  });

  it('an import writes an entry only for what changed, and repeating it writes nothing', () => {
    let entries = appendAll([], planImport(deriveLedger([]), { partnerCenter: [pc] }, 'import:1'));
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      cause: 'import',
      changes: ['first seen'],
      figures: { quantityAfter: 10 },
    });
    expect(planImport(deriveLedger(entries), { partnerCenter: [pc] }, 'import:2')).toEqual([]);

    entries = appendAll(
      entries,
      planImport(deriveLedger(entries), { partnerCenter: [{ ...pc, quantity: 12 }] }, 'import:3'),
    );
    expect(entries[1]).toMatchObject({
      previousEntryId: entries[0]?.entryId,
      changes: ['quantity: 10 → 12'],
      figures: { quantityBefore: 10, quantityAfter: 12 },
    });
    expect(deriveLedger(entries).subscriptions).toEqual([{ ...pc, quantity: 12 }]);
  });

  it('a return to an earlier value is a new entry with its own idempotency key', () => {
    let entries = appendAll([], planImport(deriveLedger([]), { partnerCenter: [pc] }, 'a'));
    entries = appendAll(
      entries,
      planImport(deriveLedger(entries), { partnerCenter: [{ ...pc, quantity: 11 }] }, 'b'),
    );
    entries = appendAll(entries, planImport(deriveLedger(entries), { partnerCenter: [pc] }, 'c'));
    expect(entries).toHaveLength(3);
    expect(new Set(entries.map((e) => e.idempotencyKey)).size).toBe(3);
  });

  it('a term end moving later is recorded as a renewal; a subscription the source no longer lists is gone', () => {
    let entries = appendAll([], planImport(deriveLedger([]), { partnerCenter: [pc] }, 'a'));
    const renewed = { ...pc, termEndsOn: '2028-03-09T00:00:00Z' };
    entries = appendAll(entries, planImport(deriveLedger(entries), { partnerCenter: [renewed] }, 'b'));
    expect(entries[1]?.cause).toBe('renewal');
    entries = appendAll(entries, planImport(deriveLedger(entries), { partnerCenter: [] }, 'c'));
    expect(entries[2]?.value).toEqual({ kind: 'gone' });
    expect(deriveLedger(entries).subscriptions).toEqual([]);
    // A source that was not read this time leaves its subjects alone.
    expect(planImport(deriveLedger(entries), { graphSubscriptions: [] }, 'd')).toEqual([]);
  });
});

describe('matching Graph subscriptions to sources', () => {
  it('matches Partner Center by commerceSubscriptionId and the distributor by vendorSubscriptionId', () => {
    const pc = sourceSub({ source: 'partnerCenter', id: 'AAA', quantity: 10 });
    const pax = sourceSub({ source: 'distributor', id: 'p-1', vendorSubscriptionId: 'BBB', quantity: 15 });
    const { matches } = matchGraphSubscriptions(
      [
        graphSub({ id: 'g1', commerceSubscriptionId: 'aaa', totalLicenses: 10 }),
        graphSub({ id: 'g2', commerceSubscriptionId: 'BBB', totalLicenses: 15 }),
      ],
      [pc, pax],
      [],
    );
    expect(matches.map((m) => [m.graph.id, m.source, m.basis])).toEqual([
      ['g1', 'partnerCenter', 'commerceSubscriptionId'],
      ['g2', 'distributor', 'vendorSubscriptionId'],
    ]);
  });

  it('matches a distributor subscription by SKU, seats and term end, and only when one candidate fits', () => {
    const pax = sourceSub({
      source: 'distributor',
      id: 'p-1',
      skuId: e3,
      quantity: 15,
      termEndsOn: '2027-01-31T00:00:00Z',
    });
    const fits = graphSub({ id: 'g1', totalLicenses: 15, nextLifecycleDateTime: '2027-02-01T00:00:00Z' });
    expect(matchGraphSubscriptions([fits], [pax], []).matches[0]).toMatchObject({
      source: 'distributor',
      basis: 'skuQuantityTermEnd',
    });
    const twin = graphSub({ id: 'g2', totalLicenses: 15, nextLifecycleDateTime: '2027-02-01T00:00:00Z' });
    const ambiguous = matchGraphSubscriptions([fits, twin], [pax], []);
    expect(ambiguous.matches.map((m) => m.source)).toEqual(['unlabelled', 'unlabelled']);
    const otherEnd = graphSub({ id: 'g3', totalLicenses: 15, nextLifecycleDateTime: '2027-06-01T00:00:00Z' });
    expect(matchGraphSubscriptions([otherEnd], [pax], []).matches[0]?.source).toBe('unlabelled');
  });

  it('a label explains a Graph-only subscription and wins over weaker evidence', () => {
    const pc = sourceSub({ source: 'partnerCenter', id: 'AAA', skuId: e3, quantity: 40 });
    const graph = graphSub({ id: 'g1', totalLicenses: 40 });
    expect(matchGraphSubscriptions([graph], [pc], []).matches[0]?.basis).toBe('skuQuantity');
    const labelled = matchGraphSubscriptions([graph], [pc], [{ graphSubscriptionId: 'G1', kind: 'ea' }]);
    expect(labelled.matches[0]).toMatchObject({ source: 'ea', label: { kind: 'ea' } });
    expect(labelled.unmatchedSources).toEqual([pc]);
  });
});

describe('reconciliation', () => {
  const state = {
    subscriptions: [
      sourceSub({ source: 'partnerCenter', id: 'PC-1', skuId: e3, quantity: 10 }),
      sourceSub({ source: 'distributor', id: 'p-1', vendorSubscriptionId: 'V-1', quantity: 15 }),
    ],
    graphSubscriptions: [
      graphSub({ id: 'g-pc', commerceSubscriptionId: 'PC-1', totalLicenses: 10 }),
      graphSub({ id: 'g-pax', commerceSubscriptionId: 'V-1', totalLicenses: 15 }),
      graphSub({ id: 'g-ea', totalLicenses: 40 }),
      graphSub({ id: 'g-old', totalLicenses: 3, status: 'Suspended' }),
    ],
    skus: [sku({ enabled: 65, suspended: 3, consumed: 61 })],
    labels: [],
  };

  it('explains a SKU fed by four sources in words and figures', () => {
    const [view] = reconcile({
      state,
      distributorName: 'Pax8',
      policy: ['ea', 'distributor', 'partnerCenter'],
      connectors: { partnerCenter: true, distributor: false },
    });
    expect(view?.explanation).toBe(
      'CSP supplies 10, Pax8 15, unlabelled 40 (EA?), Graph enabled 65, 3 suspended, 61 assigned',
    );
    expect(view).toMatchObject({
      assigned: 61,
      free: 4,
      supply: { partnerCenter: 10, distributor: 15, unlabelled: 40 },
    });
    expect(view?.differences.map((d) => [d.code, d.figures.graphSubscriptionId])).toEqual([
      ['unexplainedSubscription', 'g-ea'],
      ['unexplainedSubscription', 'g-old'],
    ]);
  });

  it('reads the same whatever order storage returns the subscriptions in: largest first, then by id', () => {
    const views = [state.graphSubscriptions, [...state.graphSubscriptions].reverse()].map(
      (graphSubscriptions) =>
        reconcile({
          state: {
            ...state,
            graphSubscriptions: [
              ...graphSubscriptions,
              graphSub({ id: 'g-b', totalLicenses: 2 }),
              graphSub({ id: 'g-a', totalLicenses: 2 }),
            ],
          },
          distributorName: 'Pax8',
          policy: ['ea', 'distributor', 'partnerCenter'],
          connectors: { partnerCenter: true, distributor: false },
        })[0],
    );
    for (const view of views)
      expect(
        view?.differences
          .filter((d) => d.code === 'unexplainedSubscription')
          .map((d) => d.figures.graphSubscriptionId),
      ).toEqual(['g-ea', 'g-old', 'g-a', 'g-b']);
    expect(views[0]?.subscriptions).toEqual(views[1]?.subscriptions);
  });

  it('once labelled EA the subscription is explained, and a new seat comes from the policy source that supplies it', () => {
    const [view] = reconcile({
      state: { ...state, labels: [{ graphSubscriptionId: 'g-ea', kind: 'ea', resellerName: 'SoftwareOne' }] },
      waitingForSeat: new Map([[e3, 6]]),
      distributorName: 'Pax8',
      policy: ['ea', 'distributor'],
      connectors: { partnerCenter: true, distributor: false },
    });
    expect(view?.explanation).toBe(
      'CSP supplies 10, Pax8 15, EA 40, Graph enabled 65, 3 suspended, 61 assigned, 6 waiting for a seat',
    );
    expect(view?.nextSeat).toMatchObject({ source: 'ea', path: { kind: 'report' } });
    expect(view?.differences.find((d) => d.code === 'seatsWanted')?.figures).toEqual({
      waiting: 6,
      free: 4,
      needed: 2,
    });
  });

  it('gives seats back from the policy read backwards, never from EA, with what the NCE lots allow now', () => {
    const withLots = {
      ...state,
      subscriptions: [
        sourceSub({
          source: 'partnerCenter',
          id: 'PC-1',
          skuId: e3,
          quantity: 10,
          lots: [
            { quantity: 4, reducibleUntil: '2026-03-12T00:00:00.000Z' },
            { quantity: 6, reducibleUntil: '2026-03-01T00:00:00.000Z' },
          ],
        }),
        sourceSub({ source: 'distributor', id: 'p-1', vendorSubscriptionId: 'V-1', quantity: 15 }),
      ],
    };
    const connectors = { partnerCenter: true, distributor: false };
    const [grow] = reconcile({
      state: withLots,
      distributorName: 'Pax8',
      policy: ['distributor', 'partnerCenter', 'ea'],
      connectors,
      now,
    });
    expect(grow?.nextRelease).toEqual({
      source: 'partnerCenter',
      subscriptionId: 'PC-1',
      reducibleNow: 4,
      path: { kind: 'connector' },
    });
    const [other] = reconcile({
      state: withLots,
      distributorName: 'Pax8',
      policy: ['partnerCenter', 'distributor'],
      connectors,
      now,
    });
    expect(other?.nextRelease).toMatchObject({
      source: 'distributor',
      subscriptionId: 'p-1',
      path: { kind: 'purchaseRequest' },
    });
    const [eaOnly] = reconcile({ state: withLots, distributorName: 'Pax8', policy: ['ea'], connectors, now });
    expect(eaOnly?.nextRelease).toBeUndefined();
  });

  it('names a source that Graph does not show and a quantity that differs', () => {
    const [view] = reconcile({
      state: {
        subscriptions: [
          sourceSub({ source: 'partnerCenter', id: 'PC-1', skuId: bp, quantity: 12 }),
          sourceSub({ source: 'partnerCenter', id: 'PC-2', skuId: bp, quantity: 5 }),
        ],
        graphSubscriptions: [
          graphSub({ id: 'g', skuId: bp, commerceSubscriptionId: 'PC-1', totalLicenses: 10 }),
        ],
        skus: [sku({ skuId: bp, enabled: 10, consumed: 2 })],
        labels: [],
      },
      distributorName: 'Pax8',
      policy: [],
      connectors: { partnerCenter: true, distributor: true },
    });
    expect(view?.differences.map((d) => d.code)).toEqual([
      'quantityMismatch',
      'sourceNotInGraph',
      'totalMismatch',
    ]);
    expect(view?.differences[2]?.figures).toEqual({ sources: 12, graph: 10 });
  });
});

describe('renewals', () => {
  const soon = '2026-03-20T00:00:00.000Z';
  const base = { graphSubscriptions: [], skus: [sku({ consumed: 8 })], labels: [] };

  it('a monthly term that auto-renews is listed but is not an alert', () => {
    const [item] = renewals({
      state: {
        ...base,
        subscriptions: [
          sourceSub({
            source: 'partnerCenter',
            id: 'm',
            skuId: e3,
            quantity: 20,
            term: 'P1M',
            autoRenew: true,
            termEndsOn: soon,
          }),
        ],
      },
      now,
      days: 30,
      distributorName: 'Pax8',
    });
    expect(item).toMatchObject({ outcome: 'autoRenew', alert: undefined });
  });

  it('alerts on an expiry, a pending cancellation and an annual renewal with unassigned seats', () => {
    const items = renewals({
      state: {
        ...base,
        subscriptions: [
          sourceSub({
            source: 'partnerCenter',
            id: 'x',
            skuId: e3,
            quantity: 5,
            term: 'P1Y',
            autoRenew: false,
            termEndsOn: soon,
          }),
          sourceSub({
            source: 'partnerCenter',
            id: 'y',
            skuId: e3,
            quantity: 20,
            term: 'P1Y',
            autoRenew: true,
            termEndsOn: soon,
          }),
          sourceSub({ source: 'distributor', id: 'z', quantity: 3, status: 'pendingCancel', endsAt: soon }),
          sourceSub({
            source: 'partnerCenter',
            id: 's',
            skuId: e3,
            quantity: 20,
            term: 'P1Y',
            autoRenew: true,
            termEndsOn: soon,
            scheduledRenewal: { quantity: 8 },
          }),
          sourceSub({
            source: 'partnerCenter',
            id: 'later',
            quantity: 5,
            autoRenew: false,
            termEndsOn: '2026-09-01T00:00:00Z',
          }),
        ],
      },
      now,
      days: 30,
      distributorName: 'Pax8',
    });
    expect(items.map((i) => [i.subscriptionId, i.outcome, i.alert !== undefined])).toEqual([
      ['x', 'expires', true],
      ['y', 'autoRenew', true],
      ['z', 'cancels', true],
      ['s', 'scheduledChange', false],
    ]);
    expect(items[1]?.alert).toContain('12 of 20 seats are unassigned');
  });

  it('a Graph-only subscription whose lifecycle date comes up asks its owner', () => {
    const [item] = renewals({
      state: {
        ...base,
        subscriptions: [],
        graphSubscriptions: [graphSub({ id: 'g-ea', totalLicenses: 40, nextLifecycleDateTime: soon })],
        labels: [{ graphSubscriptionId: 'g-ea', kind: 'ea', resellerName: 'SoftwareOne' }],
      },
      now,
      days: 30,
      distributorName: 'Pax8',
    });
    expect(item).toMatchObject({ source: 'ea', outcome: 'unknown' });
    expect(item?.alert).toContain('ask SoftwareOne');
  });
});
