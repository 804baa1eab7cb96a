import { randomUUID } from 'node:crypto';
import { ServiceBusClient, type ServiceBusMessage, type ServiceBusReceivedMessage } from '@azure/service-bus';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { directoryWork, directoryWorkSchema } from '../../shared/contracts/directory-work.js';
import { createLogger } from '../../shared/logging.js';
import { callApi } from '../support/http.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';
import { fromSchema, hostileBody, jsonSchemaOf, shortHostileString } from './arbitraries.js';

/**
 * Malformed and hostile `directory-work` messages through the Service Bus peer into the real queue
 * function (issue 19): each ends dead-lettered at once with a reason (read back from the dead-letter
 * queue), or accepted as a recorded operation that reaches a final state — never abandoned for
 * redelivery (that is a crash the broker would retry ten times), never a hung operation, and a
 * replayed or foreign `operation.run` changes nothing that was stored.
 */
const batchSize = Number(process.env.FUZZ_QUEUE_BATCH ?? 30);
const tenantId = randomUUID();
const run = randomUUID().slice(0, 8);
const providers = { own: `fuzzq-a-${run}`, other: `fuzzq-b-${run}` };
const customerId = `qc-${run}`;
const seed = graphSeed({
  id: tenantId,
  displayName: 'Contoso',
  domains: [{ id: 'contoso.example', isDefault: true, authenticationType: 'Managed' }],
});

interface WorkerLine {
  message: string;
  messageId?: string;
  reason?: string;
  code?: string;
}
const workerLines: WorkerLine[] = [];
const workerLine = z
  .object({ message: z.string(), messageId: z.string().optional(), reason: z.string().optional() })
  .loose();
// The queue function logs through its InvocationContext, which the local trigger hands to this logger.
const log = createLogger(
  (_level, record) => {
    if (typeof record.message !== 'string' || !record.message.startsWith('{')) return;
    const parsed = workerLine.safeParse(JSON.parse(record.message));
    if (parsed.success) workerLines.push(parsed.data);
  },
  { level: 'debug' },
);

let stack: TestStack;
let client: ServiceBusClient;
let key = '';
let keptOperationId = '';
let keptBefore: unknown;

const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled', 'needsLicence'];

interface FuzzMessage {
  kind: string;
  message: ServiceBusMessage;
}

/** Message bodies: schema-shaped then mutated, raw bytes, and well-formed commands aimed where they must not land. */
type Content = { kind: string; body: unknown };

function messages(): fc.Arbitrary<FuzzMessage> {
  const schema = jsonSchemaOf(directoryWorkSchema);
  const text = hostileBody(schema).map(({ mutation, text: body }) => ({
    kind: `text:${mutation}`,
    body: body,
  }));
  const parsed = hostileBody(schema).chain(({ mutation, text: body }): fc.Arbitrary<Content> => {
    try {
      return fc.constant({ kind: `json:${mutation}`, body: JSON.parse(body) as unknown });
    } catch {
      return fc.constant({ kind: `text:${mutation}`, body: body });
    }
  });
  const bytes = fc.uint8Array({ maxLength: 300 }).map((b) => ({ kind: 'bytes', body: Buffer.from(b) }));
  const id = fc.oneof(
    fc.uuid(),
    shortHostileString.filter((s) => s.length > 0),
  );
  const unknownRun = fc.record({ providerId: id, operationId: id }).map((ids) => ({
    kind: 'run:unknown',
    body: { type: 'operation.run', v: 1, ...ids },
  }));
  // The first provider's real operation, named with another provider's id: that one has no such operation.
  const foreignRun = fc.constant(null).map(() => ({
    kind: 'run:foreign',
    body: {
      type: 'operation.run',
      v: 1,
      providerId: providers.other,
      operationId: keptOperationId,
    },
  }));
  // The same real operation again under its own provider: it is finished; a rerun changes nothing.
  const replayedRun = fc.constant(null).map(() => ({
    kind: 'run:replayed',
    body: { type: 'operation.run', v: 1, providerId: providers.own, operationId: keptOperationId },
  }));
  const userId = fc.stringMatching(/^[a-z][a-z0-9-]{2,20}$/);
  const create = fc
    .record({
      providerId: fc.constantFrom(providers.own, providers.own, providers.other),
      customerId: fc.constantFrom(customerId, customerId, 'nobody'),
      userId,
      passwordRef: fc.option(fc.stringMatching(/^pw_[A-Za-z0-9_-]{24}$/), { nil: undefined, freq: 3 }),
      displayName: fc.oneof(
        fc.constant('Fuzzed User'),
        fromSchema({ type: 'string', maxLength: 300 }).map((value) => String(value)),
      ),
    })
    .map((f) => ({
      kind: 'create',
      body: {
        type: 'user.create',
        v: 1,
        providerId: f.providerId,
        customerId: f.customerId,
        idempotencyKey: `fz-${f.userId}`,
        user: {
          userId: f.userId,
          userPrincipalName: `${f.userId}@contoso.example`,
          displayName: f.displayName,
        },
        ...(f.passwordRef === undefined ? {} : { passwordRef: f.passwordRef }),
      },
    }));
  const contents: fc.Arbitrary<Content>[] = [
    text,
    parsed,
    bytes,
    unknownRun,
    foreignRun,
    replayedRun,
    create,
  ];
  return fc
    .record({
      content: fc.oneof(...contents),
      contentType: fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/octet-stream'),
      subject: fc.constantFrom(undefined, directoryWork.name, 'operation.run', 'x'),
    })
    .map(({ content, contentType, subject }) => ({
      kind: content.kind,
      message: {
        body: content.body,
        messageId: randomUUID(),
        ...(contentType === undefined ? {} : { contentType }),
        ...(subject === undefined ? {} : { subject }),
      },
    }));
}

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    log,
    extraSettings: { LOG_LEVEL: 'debug' },
  });
  client = new ServiceBusClient(stack.serviceBus.connectionString);
  key = (await stack.deps.callers.createApiKey({ providerId: providers.own, name: 'q' })).apiKey;
  const api = (method: string, path: string, body?: unknown) =>
    callApi(stack.host.url, key, method, path, body);
  const put = await api('PUT', `/customers/${customerId}`, {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId, domains: ['contoso.example'] },
  });
  expect(put.status).toBe(201);
  const created = await api('POST', `/customers/${customerId}/users`, {
    userId: `kept-${run}`,
    userPrincipalName: `kept-${run}@contoso.example`,
    displayName: 'Kept',
  });
  keptOperationId = z.object({ operationId: z.string() }).parse(created.body).operationId;
  keptBefore = await waitFor(async () => {
    const op = await api('GET', `/operations/${keptOperationId}`);
    // Finished and its outcome applied to the user record (the runner's last write).
    return op.body.state === 'succeeded' && op.body.outcomeApplied === true ? op.body : undefined;
  }, 'the kept operation');
}, 60_000);

afterAll(async () => {
  await client?.close();
  await stack?.stop();
});

/** How the worker settled a message, from its own log lines (complete, dead-letter or abandon). */
function settlement(messageId: string): WorkerLine | undefined {
  return workerLines.find(
    (line) =>
      line.messageId === messageId &&
      (line.message.startsWith('message dead-lettered') ||
        line.message.startsWith('message abandoned') ||
        line.message === 'operation run' ||
        line.message === 'user.create command accepted'),
  );
}

async function drainDeadLetters(): Promise<Map<string, ServiceBusReceivedMessage>> {
  const receiver = client.createReceiver(directoryWork.queue, {
    subQueueType: 'deadLetter',
    receiveMode: 'receiveAndDelete',
  });
  const out = new Map<string, ServiceBusReceivedMessage>();
  try {
    for (;;) {
      const batch = await receiver.receiveMessages(100, { maxWaitTimeInMs: 500 });
      if (batch.length === 0) break;
      for (const m of batch) out.set(String(m.messageId), m);
    }
  } finally {
    await receiver.close();
  }
  return out;
}

const counts = new Map<string, number>();

describe('directory-work messages', () => {
  it('each malformed or misdirected message is dead-lettered with a reason or becomes a finished operation', async () => {
    const sender = client.createSender(directoryWork.queue);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(messages(), { minLength: batchSize, maxLength: batchSize }),
          async (batch) => {
            for (const item of batch) await sender.sendMessages(item.message);
            const ids = batch.map((item) => String(item.message.messageId));
            await waitFor(
              () => Promise.resolve(ids.every((id) => settlement(id) !== undefined) ? true : undefined),
              'every message settled',
              30_000,
            );
            const deadLettered = await drainDeadLetters();
            for (const item of batch) {
              const id = String(item.message.messageId);
              const settled = settlement(id);
              const outcome = settled?.message ?? 'none';
              const label = `${item.kind} → ${outcome.split(':')[0] ?? ''}${settled?.reason === undefined ? '' : ` (${settled.reason})`}`;
              counts.set(label, (counts.get(label) ?? 0) + 1);
              if (outcome.startsWith('message abandoned'))
                throw new Error(
                  `${item.kind} message was abandoned (a crash, retried by the broker): ${JSON.stringify(settled)}`,
                );
              if (outcome.startsWith('message dead-lettered')) {
                const letter = deadLettered.get(id);
                if (letter === undefined)
                  throw new Error(`${item.kind}: logged as dead-lettered but not in the DLQ`);
                if (!letter.deadLetterReason || !letter.deadLetterErrorDescription)
                  throw new Error(`${item.kind}: dead-lettered without a reason`);
              }
            }
          },
        ),
        { numRuns: 2, endOnFailure: true },
      );
    } finally {
      await sender.close();
    }
  });

  it('leaves no operation of the customer unfinished, and the replayed operation as it was', async () => {
    const api = (path: string) => callApi(stack.host.url, key, 'GET', path);
    await waitFor(
      async () => {
        const list = z
          .object({ value: z.array(z.object({ operationId: z.string(), state: z.string() }).loose()) })
          .parse((await api(`/customers/${customerId}/operations?limit=500`)).body);
        return list.value.every((op) => finalStates.includes(op.state)) ? true : undefined;
      },
      'every accepted operation to finish',
      45_000,
    );
    expect((await api(`/operations/${keptOperationId}`)).body).toEqual(keptBefore);
    console.info(`queue fuzz: ${JSON.stringify(Object.fromEntries([...counts].sort()))}`);
    // The batches exercised both outcomes.
    expect([...counts.keys()].some((k) => k.includes('dead-lettered'))).toBe(true);
    expect([...counts.keys()].some((k) => k.includes('accepted') || k.includes('operation run'))).toBe(true);
  });
});
