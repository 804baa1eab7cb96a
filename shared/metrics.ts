import { metrics, type Counter, type Histogram, type MeterProvider } from '@opentelemetry/api';

/**
 * atria-m365's OpenTelemetry metrics, through the API only: in Azure `@azure/monitor-opentelemetry`
 * (started by shared/telemetry.ts) registers the meter provider and exports them to Application
 * Insights; locally nothing is recorded unless a provider is registered (tests register one with an
 * in-memory reader; `OTEL_METRICS_EXPORTER=console` prints them).
 *
 * The API has no proxy meter provider (unlike traces), so instruments made before a provider is
 * registered would stay no-ops forever: they are made against the provider that is global when first
 * used and made again when that provider changes.
 *
 * Names follow the OpenTelemetry semantic-conventions style (dotted, unit in `unit`, not in the name).
 */
interface Instruments {
  operationTransitions: Counter;
  graphRequests: Counter;
  graphThrottled: Counter;
  partnerCenterRequests: Counter;
  partnerCenterThrottled: Counter;
  agentRoundTrip: Histogram;
  queueLag: Histogram;
  agentQueueDepth: Histogram;
  seatsBought: Counter;
  seatsReleased: Counter;
}

let madeFor: MeterProvider | undefined;
let made: Instruments | undefined;

function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (made !== undefined && madeFor === provider) return made;
  const meter = provider.getMeter('atria-m365');
  made = {
    operationTransitions: meter.createCounter('atria.operation.transitions', {
      description: 'Operations entering a state, by kind and state (queued on creation, then each change)',
    }),
    graphRequests: meter.createCounter('atria.graph.requests', {
      description: 'HTTP requests sent to Microsoft Graph (every attempt, retries included), by status',
    }),
    graphThrottled: meter.createCounter('atria.graph.throttled', {
      description: 'Microsoft Graph answers 429 Too Many Requests',
    }),
    partnerCenterRequests: meter.createCounter('atria.partner_center.requests', {
      description: 'HTTP requests sent to Partner Center (every attempt), by status',
    }),
    partnerCenterThrottled: meter.createCounter('atria.partner_center.throttled', {
      description: 'Partner Center answers 429 Too Many Requests',
    }),
    agentRoundTrip: meter.createHistogram('atria.agent.round_trip', {
      description: 'From signing a command for a site agent to receiving its reply, by command type',
      unit: 'ms',
    }),
    queueLag: meter.createHistogram('atria.queue.lag', {
      description: 'From a message being enqueued to a queue function starting it, by function',
      unit: 'ms',
    }),
    agentQueueDepth: meter.createHistogram('atria.agent.queue_depth', {
      description: "Messages waiting in a site's command queue, as its agents report in each heartbeat",
      unit: '{message}',
    }),
    seatsBought: meter.createCounter('atria.seats.bought', {
      description: 'Licence seats added at a source by atria-m365 (purchase or quantity increase)',
    }),
    seatsReleased: meter.createCounter('atria.seats.released', {
      description: 'Licence seats removed at a source by atria-m365 (quantity reduction)',
    }),
  };
  madeFor = provider;
  return made;
}

const statusClass = (status: number): string => `${Math.floor(status / 100)}xx`;

/** One place to record; callers never hold instruments. Every function is cheap and never throws. */
export const record = {
  operationState(kind: string, state: string): void {
    instruments().operationTransitions.add(1, {
      'atria.operation.kind': kind,
      'atria.operation.state': state,
    });
  },
  graphResponse(status: number): void {
    const i = instruments();
    i.graphRequests.add(1, {
      'http.response.status_code': status,
      'atria.http.status_class': statusClass(status),
    });
    if (status === 429) i.graphThrottled.add(1);
  },
  partnerCenterResponse(status: number): void {
    const i = instruments();
    i.partnerCenterRequests.add(1, {
      'http.response.status_code': status,
      'atria.http.status_class': statusClass(status),
    });
    if (status === 429) i.partnerCenterThrottled.add(1);
  },
  agentRoundTrip(commandType: string, elapsedInMs: number, ok: boolean): void {
    if (!Number.isFinite(elapsedInMs) || elapsedInMs < 0) return;
    instruments().agentRoundTrip.record(elapsedInMs, { 'atria.command.type': commandType, 'atria.ok': ok });
  },
  /** `consumer`: the queue function that took the message (one function per queue). */
  queueLag(consumer: string, lagInMs: number): void {
    if (!Number.isFinite(lagInMs)) return;
    // A message enqueued "in the future" is clock skew between broker and us: count it as no lag.
    instruments().queueLag.record(Math.max(0, lagInMs), { 'atria.consumer': consumer });
  },
  agentQueueDepth(siteId: string, depth: number): void {
    // -1: the agent could not peek its queue.
    if (depth < 0) return;
    instruments().agentQueueDepth.record(depth, { 'atria.site': siteId });
  },
  seatChange(source: string, skuId: string, delta: number): void {
    if (!Number.isFinite(delta) || delta === 0) return;
    const attributes = { 'atria.licence.source': source, 'atria.licence.sku_id': skuId };
    if (delta > 0) instruments().seatsBought.add(delta, attributes);
    else instruments().seatsReleased.add(-delta, attributes);
  },
};
