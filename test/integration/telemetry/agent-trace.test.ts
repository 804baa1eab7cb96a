import { randomUUID } from 'node:crypto';
import { SpanKind, context, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../../../agent/config.js';
import { startAgent, type RunningAgent } from '../../../agent/runtime.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import { RelayHub } from '../../../shared/adapters/relay/index.js';
import { createLogger } from '../../../shared/logging.js';
import { installContextManager } from '../../../shared/telemetry.js';
import { agentConfig, startRelayBus, type RelayBus } from '../ad/bus.js';
import { siteId, siteKeys } from '../ad/support.js';

/**
 * The trace crosses the agent: a command sent inside a span reaches the agent with its traceparent,
 * the agent's span is its child, and the agent's reply on agent-replies carries the same trace on to
 * the cloud (whose agent-replies consumer span continues it, as in trace.test.ts).
 */
const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);
installContextManager();

let dc: SambaPeer;
let bus: RelayBus;
let agent: RunningAgent;
let hub: RelayHub;
const keys = siteKeys();

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus([siteId])]);
  agent = await startAgent(resolveAgentConfig(agentConfig(bus, dc, keys), process.cwd()), {
    log: createLogger(() => undefined),
  });
  // Not started: this test reads the replies itself, with their application properties.
  hub = new RelayHub({ client: bus.cloud, signer: bus.signer, defaultTimeoutInMs: 20_000 });
});

afterAll(async () => {
  await agent?.stop();
  await hub?.close();
  await bus?.stop();
  await dc?.stop();
});

describe('telemetry across the relay agent', () => {
  it("puts the agent's command span in the sender's trace and carries it on the reply", async () => {
    const commandId = `op-${randomUUID()}`;
    const sam = `tr${Date.now().toString(36).slice(-6)}`;
    const sending = trace.getTracer('test').startSpan('saga step', { kind: SpanKind.PRODUCER });
    await context.with(trace.setSpan(context.active(), sending), () =>
      hub.send(siteId, commandId, {
        type: 'createUser',
        ou: dc.usersOu,
        sAMAccountName: sam,
        userPrincipalName: `${sam}@atria.test`,
        displayName: sam,
        enabled: false,
      }),
    );
    sending.end();
    const { traceId, spanId } = sending.spanContext();

    const receiver = bus.cloud.createReceiver('agent-replies');
    try {
      const deadline = Date.now() + 20_000;
      let traceparent: unknown;
      while (traceparent === undefined && Date.now() < deadline) {
        for (const message of await receiver.receiveMessages(10, { maxWaitTimeInMs: 1000 })) {
          await receiver.completeMessage(message);
          if (message.correlationId === commandId || JSON.stringify(message.body).includes(commandId))
            traceparent = message.applicationProperties?.traceparent;
        }
      }
      expect(traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    } finally {
      await receiver.close();
    }
    const agentSpan = exporter.getFinishedSpans().find((s) => s.name === 'agent command');
    expect(agentSpan?.spanContext().traceId).toBe(traceId);
    expect(agentSpan?.parentSpanId).toBe(spanId);
    expect(agentSpan?.kind).toBe(SpanKind.CONSUMER);
  });
});
