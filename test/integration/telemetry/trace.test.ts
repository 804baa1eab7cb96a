import { randomBytes, randomUUID } from 'node:crypto';
import { SpanKind, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createLogger } from '../../../shared/logging.js';
import { installContextManager } from '../../../shared/telemetry.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../../support/stack.js';

/**
 * One trace across the queue: the caller's W3C traceparent → the HTTP server span → the
 * `directory-work` message (traceparent in its application properties, through the real
 * @azure/service-bus client and the Service Bus peer) → the worker's consumer span, with the
 * worker's log lines carrying the same trace id beside the correlation id. An in-memory exporter
 * records the spans.
 */
const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);
installContextManager();

const tenantId = randomUUID();
const seed = graphSeed({
  id: tenantId,
  displayName: 'Tailspin',
  domains: [{ id: 'tailspin.example', isDefault: true, authenticationType: 'Managed' }],
});

let stack: TestStack;
let key: string;
const lines: Record<string, unknown>[] = [];
function keep(line: string): void {
  try {
    lines.push(JSON.parse(line) as Record<string, unknown>);
  } catch {
    // not one of our JSON lines
  }
}

beforeAll(async () => {
  // The HTTP functions' InvocationContext logs through console; keep the JSON lines our logger writes.
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      for (const arg of args) {
        if (typeof arg === 'string' && arg.startsWith('{')) keep(arg);
      }
    });
  }
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    extraSettings: { LOG_LEVEL: 'info' },
    // The local Service Bus trigger hands the worker's JSON lines to this logger as messages.
    log: createLogger(
      (_level, record) => {
        if (typeof record.message === 'string' && record.message.startsWith('{')) keep(record.message);
      },
      { level: 'debug' },
    ),
  });
  key = (
    await stack.deps.callers.createApiKey({ providerId: `prov-trace-${randomUUID().slice(0, 8)}`, name: 't' })
  ).apiKey;
  const put = await stack.api('/customers/tailspin', {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Tailspin',
      identityMode: 'cloudOnly',
      entra: { tenantId, domains: ['tailspin.example'] },
      defaultUsageLocation: 'NL',
    }),
  });
  expect(put.status).toBe(201);
});

afterAll(async () => {
  await stack?.stop();
  vi.restoreAllMocks();
});

describe('telemetry: one trace from the HTTP request through Service Bus to the worker', () => {
  it("continues the caller's trace across the directory-work queue and stamps it on the worker's log lines", async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const correlationId = `trace-${randomUUID()}`;
    const answer = await stack.api('/customers/tailspin/users', {
      method: 'POST',
      key,
      headers: { traceparent: `00-${traceId}-${callerSpanId}-01`, 'x-correlation-id': correlationId },
      body: JSON.stringify({
        userId: 'u-tia',
        userPrincipalName: 'tia@tailspin.example',
        displayName: 'Tia',
      }),
    });
    expect(answer.status).toBe(202);
    const { operationId } = (await answer.json()) as { operationId: string };
    await waitFor(async () => {
      const op = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as { state: string };
      return op.state === 'succeeded' ? op : undefined;
    }, 'the create to succeed');
    const ours = await waitFor(() => {
      const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      return Promise.resolve(spans.some((s) => s.kind === SpanKind.CONSUMER) ? spans : undefined);
    }, 'the consumer span');

    const server = ours.find(
      (s) => s.kind === SpanKind.SERVER && s.name === 'POST /api/customers/{customerId}/users',
    );
    expect(server, 'the HTTP server span').toBeDefined();
    expect(server?.parentSpanId).toBe(callerSpanId);
    expect(server?.attributes['http.response.status_code']).toBe(202);

    const consumers = ours.filter((s) => s.kind === SpanKind.CONSUMER);
    // The first delivery is the operation.run the request enqueued: its parent is the server span.
    expect(consumers.some((s) => s.parentSpanId === server?.spanContext().spanId)).toBe(true);
    expect(consumers.every((s) => s.name.endsWith(' process'))).toBe(true);

    const traced = lines.filter((l) => l.traceId === traceId);
    expect(traced.some((l) => l.message === 'request handled' && l.correlationId === correlationId)).toBe(
      true,
    );
    expect(traced.some((l) => l.message === 'operation run' && l.operationId === operationId)).toBe(true);
  });

  it('starts a new trace when the caller sends none, and ignores a malformed traceparent', async () => {
    exporter.reset();
    const answer = await stack.api('/whoami', { key, headers: { traceparent: 'not-a-traceparent' } });
    expect(answer.status).toBe(200);
    const server = exporter.getFinishedSpans().find((s) => s.name === 'GET /api/whoami');
    expect(server?.parentSpanId).toBeUndefined();
    expect(server?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
  });
});
