import { randomUUID } from 'node:crypto';
import { metrics } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunningAgent } from '../../../agent/runtime.js';
import { startHybridFixture, createUser, untilState, type HybridFixture } from '../../support/hybrid.js';
import { startPartnerCenterFixture } from '../../support/partner-center.js';

/**
 * The metrics of shared/metrics.ts recorded on real flows, read through an in-memory reader: a hybrid
 * user provisioned through HTTP → Service Bus → worker → agent → Samba → Graph peer records its
 * operation's state transitions, Graph requests, the agent's round trip and the queue lag; the Graph
 * peer's 429s and a Partner Center 429 are counted as 429s, one for one; seats bought and released are
 * counted once per ledger entry.
 */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}
const reader = new TestReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

type Attributes = Record<string, string | number | boolean>;

async function metric(name: string): Promise<MetricData | undefined> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const m of scope.metrics) if (m.descriptor.name === name) return m;
  return undefined;
}

const matches = (attributes: Attributes, wanted: Attributes): boolean =>
  Object.entries(wanted).every(([k, v]) => attributes[k] === v);

/** A counter's total over the data points whose attributes include `wanted`. */
async function total(name: string, wanted: Attributes = {}): Promise<number> {
  const m = await metric(name);
  if (m === undefined) return 0;
  expect(m.dataPointType).toBe(DataPointType.SUM);
  return m.dataPoints
    .filter((p) => matches(p.attributes as Attributes, wanted))
    .reduce((sum, p) => sum + (p.value as number), 0);
}

/** A histogram's recordings (count, min, max) over the matching data points. */
async function recorded(
  name: string,
  wanted: Attributes = {},
): Promise<{ count: number; min: number; max: number }> {
  const m = await metric(name);
  const out = { count: 0, min: Infinity, max: -Infinity };
  if (m === undefined) return out;
  expect(m.dataPointType).toBe(DataPointType.HISTOGRAM);
  for (const p of m.dataPoints) {
    if (!matches(p.attributes as Attributes, wanted)) continue;
    const h = p.value as { count: number; min?: number; max?: number };
    out.count += h.count;
    out.min = Math.min(out.min, h.min ?? Infinity);
    out.max = Math.max(out.max, h.max ?? -Infinity);
  }
  return out;
}

let f: HybridFixture;
let agent: RunningAgent;

beforeAll(async () => {
  f = await startHybridFixture({
    siteId: 'metrics',
    storageConnectionString: inject('storageConnectionString'),
    extraSettings: { Engine__retryBaseDelayInMs: '200', Engine__retryMaxDelayInMs: '2000' },
  });
  agent = await f.startAgent();
});

afterAll(async () => {
  await agent?.stop();
  await f?.stop();
});

describe('metrics on real flows', () => {
  it("records a hybrid create's state transitions, its Graph requests, the agent round trip and the queue lag", async () => {
    const userId = `m-${randomUUID().slice(0, 6)}`;
    const operationId = await createUser(f, userId);
    await untilState(f, operationId);
    // The create parked in its request (no operation.run message): a disable goes through the worker.
    const disabled = await f.stack.api(`/customers/${f.customerId}/users/${userId}/disable`, {
      method: 'POST',
      key: f.key,
    });
    expect(disabled.status, await disabled.clone().text()).toBe(202);
    await untilState(f, ((await disabled.json()) as { operationId: string }).operationId);

    const kind = { 'atria.operation.kind': 'user.create' };
    // Stored already parked by its request: it was never queued.
    expect(await total('atria.operation.transitions', { ...kind, 'atria.operation.state': 'queued' })).toBe(
      0,
    );
    expect(
      await total('atria.operation.transitions', { ...kind, 'atria.operation.state': 'waitingForAgent' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await total('atria.operation.transitions', { ...kind, 'atria.operation.state': 'succeeded' }),
    ).toBe(1);
    expect(await total('atria.operation.transitions', { ...kind, 'atria.operation.state': 'failed' })).toBe(
      0,
    );

    // entra.create at least (extension registration and reads come with it), all answered 2xx.
    expect(await total('atria.graph.requests', { 'atria.http.status_class': '2xx' })).toBeGreaterThanOrEqual(
      1,
    );

    const roundTrip = await recorded('atria.agent.round_trip', { 'atria.command.type': 'createUser' });
    expect(roundTrip.count).toBeGreaterThanOrEqual(1);
    expect(roundTrip.min).toBeGreaterThanOrEqual(0);
    expect(roundTrip.max).toBeLessThan(45_000);

    // The worker took operation.run messages and the agent-replies function the agent's reply.
    const functions = (await metric('atria.queue.lag'))?.dataPoints.map(
      (p) => p.attributes['atria.consumer'],
    );
    expect(new Set(functions).size).toBeGreaterThanOrEqual(2);
    expect((await recorded('atria.queue.lag')).min).toBeGreaterThanOrEqual(0);

    await agent.heartbeat();
    await expect
      .poll(async () => (await recorded('atria.agent.queue_depth', { 'atria.site': 'metrics' })).count)
      .toBeGreaterThanOrEqual(1);
  });

  it('counts every 429 the Graph peer answers as a 429', async () => {
    const faults = async (body?: unknown): Promise<{ stats: { throttled: number } }> =>
      (await (
        await fetch(`${f.stack.graph.adminUrl}/faults`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: { 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        })
      ).json()) as { stats: { throttled: number } };
    const peerBefore = (await faults()).stats.throttled;
    const oursBefore = await total('atria.graph.throttled');
    // A tiny budget on the peer's side only (ours stays documented): Graph throttles the next writes.
    await faults({ throttling: { enabled: true, scale: 0.0005, windowInMs: 1000, writeWindowInMs: 1000 } });
    try {
      const ids = await Promise.all([1, 2, 3].map((i) => createUser(f, `t${i}-${randomUUID().slice(0, 6)}`)));
      for (const id of ids) await untilState(f, id, ['succeeded'], 60_000);
    } finally {
      await faults({ throttling: { enabled: false } });
    }
    const peerThrottled = (await faults()).stats.throttled - peerBefore;
    expect(peerThrottled).toBeGreaterThan(0);
    expect((await total('atria.graph.throttled')) - oursBefore).toBe(peerThrottled);
    expect(await total('atria.graph.requests', { 'http.response.status_code': 429 })).toBeGreaterThanOrEqual(
      peerThrottled,
    );
  });

  it('counts a Partner Center 429 and the retry that follows it', async () => {
    const { partnerCenter, commerce } = await startPartnerCenterFixture({
      graph: f.stack.graph,
      partnerTenant: f.stack.graphApp.homeTenantId,
      app: { clientId: f.stack.graphApp.clientId, clientSecret: f.stack.graphApp.clientSecret },
      graphRoles: ['Directory.Read.All'],
      start: new Date(),
    });
    try {
      const before = {
        throttled: await total('atria.partner_center.throttled'),
        ok: await total('atria.partner_center.requests', { 'atria.http.status_class': '2xx' }),
        all: await total('atria.partner_center.requests'),
      };
      const added = await fetch(`${partnerCenter.adminUrl}/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'throttle', count: 1, retryAfterInSeconds: 0 }),
      });
      expect(added.status).toBe(201);
      expect((await commerce.listOffers()).length).toBeGreaterThan(0);
      expect((await total('atria.partner_center.throttled')) - before.throttled).toBe(1);
      // Every attempt is a request: the throttled one, its retry, and the catalogue's further pages.
      const ok =
        (await total('atria.partner_center.requests', { 'atria.http.status_class': '2xx' })) - before.ok;
      expect(ok).toBeGreaterThanOrEqual(1);
      expect((await total('atria.partner_center.requests')) - before.all).toBe(ok + 1);
    } finally {
      await partnerCenter.stop();
    }
  });

  it('counts seats bought and released once per ledger entry', async () => {
    const skuId = randomUUID();
    const subscription = {
      source: 'partnerCenter' as const,
      id: `sub-${randomUUID().slice(0, 8)}`,
      skuId,
      offerId: 'CFQ7TTC0LFLZ:0001',
      quantity: 5,
      status: 'active' as const,
      lots: [],
    };
    const change = (quantity: number, cause: 'purchase' | 'reduction', key: string) =>
      f.stack.deps.licensing.recordSubscriptionChange(f.providerId, f.customerId, {
        subscription: { ...subscription, quantity },
        cause,
        actor: 'metrics-test',
        idempotencyKey: key,
        figures: {},
      });
    const sku = { 'atria.licence.sku_id': skuId, 'atria.licence.source': 'partnerCenter' };
    await change(5, 'purchase', `buy-${skuId}`);
    await change(5, 'purchase', `buy-${skuId}`); // the same change again (a retry): no second count
    await change(3, 'reduction', `reduce-${skuId}`);
    expect(await total('atria.seats.bought', sku)).toBe(5);
    expect(await total('atria.seats.released', sku)).toBe(2);
  });
});
