import { AsyncLocalStorage } from 'node:async_hooks';
import {
  context,
  metrics,
  ROOT_CONTEXT,
  trace,
  SpanKind,
  SpanStatusCode,
  type Context,
  type ContextManager,
  type Span,
} from '@opentelemetry/api';

/**
 * OpenTelemetry for atria-m365: one trace from the HTTP request through every Service Bus message it
 * causes (W3C `traceparent` in the message's application properties) to the worker that runs it.
 *
 * - Azure: with APPLICATIONINSIGHTS_CONNECTION_STRING set, `@azure/monitor-opentelemetry` is started
 *   once (traces, metrics and logs to Application Insights; it installs its own context manager).
 * - Locally: an AsyncLocalStorage context manager so spans nest across awaits; spans go wherever a
 *   registered provider sends them (tests register an in-memory exporter; without one the API is a
 *   no-op and costs nothing). `OTEL_TRACES_EXPORTER=console` prints finished spans,
 *   `OTEL_METRICS_EXPORTER=console` the metrics of shared/metrics.ts once a minute.
 *
 * The trace context is written and read here rather than through a global propagator, so a message
 * carries exactly `traceparent` (and `tracestate` when present), nothing else.
 */
export const tracer = () => trace.getTracer('atria-m365');

/** What `context.with` needs to survive awaits; the API's default manager forgets across them. */
class AsyncLocalStorageContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const run = (...args: unknown[]): unknown =>
      this.storage.run(ctx, () => (target as (...a: unknown[]) => unknown)(...args));
    return run as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}
let started = false;

export interface TelemetrySettings {
  APPLICATIONINSIGHTS_CONNECTION_STRING?: string | undefined;
  OTEL_TRACES_EXPORTER?: 'none' | 'console' | undefined;
  OTEL_METRICS_EXPORTER?: 'none' | 'console' | undefined;
}

/** Once per process. Safe to call from every composition (tests build several). */
export async function startTelemetry(settings: TelemetrySettings): Promise<void> {
  if (started) return;
  started = true;
  if (settings.APPLICATIONINSIGHTS_CONNECTION_STRING !== undefined) {
    const { useAzureMonitor } = await import('@azure/monitor-opentelemetry');
    useAzureMonitor({
      azureMonitorExporterOptions: { connectionString: settings.APPLICATIONINSIGHTS_CONNECTION_STRING },
    });
    return;
  }
  installContextManager();
  if (settings.OTEL_TRACES_EXPORTER === 'console') {
    const { BasicTracerProvider, SimpleSpanProcessor, ConsoleSpanExporter } =
      await import('@opentelemetry/sdk-trace-base');
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] }),
    );
  }
  if (settings.OTEL_METRICS_EXPORTER === 'console') {
    // shared/metrics.ts records through the API; this prints what it recorded once a minute.
    const { MeterProvider, PeriodicExportingMetricReader, ConsoleMetricExporter } =
      await import('@opentelemetry/sdk-metrics');
    metrics.setGlobalMeterProvider(
      new MeterProvider({
        readers: [
          new PeriodicExportingMetricReader({
            exporter: new ConsoleMetricExporter(),
            exportIntervalMillis: 60_000,
          }),
        ],
      }),
    );
  }
}

/** Installs the async context manager (idempotent: the API refuses a second global one). */
export function installContextManager(): void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager());
}

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The active span's context as W3C Trace Context fields; empty when nothing is being traced. */
export function traceContextProperties(): Record<string, string> {
  const span = trace.getActiveSpan();
  const sc = span?.spanContext();
  if (sc === undefined || !trace.isSpanContextValid(sc)) return {};
  // Bit 0 of trace-flags is `sampled` (W3C Trace Context §3.2.2.5).
  const flags = (sc.traceFlags & 0x01) !== 0 ? '01' : '00';
  const tracestate = sc.traceState?.serialize();
  return {
    traceparent: `00-${sc.traceId}-${sc.spanId}-${flags}`,
    ...(tracestate === undefined || tracestate === '' ? {} : { tracestate }),
  };
}

/** A context whose parent is the remote span named by `traceparent` (ignored when malformed). */
export function contextFrom(traceparent: unknown): Context {
  const parent = context.active();
  if (typeof traceparent !== 'string') return parent;
  const match = traceparentPattern.exec(traceparent.trim().toLowerCase());
  if (match === null) return parent;
  const [, traceId = '', spanId = '', flags = '00'] = match;
  const spanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
  if (!trace.isSpanContextValid(spanContext)) return parent;
  return trace.setSpanContext(parent, spanContext);
}

/** The trace id to put on log lines beside the correlation id (undefined when not traced). */
export function activeTraceId(): string | undefined {
  return traceIdOf(trace.getActiveSpan());
}

export function traceIdOf(span: Span | undefined): string | undefined {
  const sc = span?.spanContext();
  return sc !== undefined && trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

/**
 * Runs `work` inside a new span (child of `parent`, or of the active context), records an exception
 * and an error status when it throws, and always ends the span.
 */
export async function inSpan<T>(
  name: string,
  options: { kind: SpanKind; parent?: Context; attributes?: Record<string, string | number | boolean> },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(
    name,
    { kind: options.kind, ...(options.attributes === undefined ? {} : { attributes: options.attributes }) },
    parent,
  );
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

export { SpanKind };
