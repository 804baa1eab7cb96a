import type * as AzureFunctions from '@azure/functions';
import azureFunctions, { type HttpResponseInit } from '@azure/functions';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpFunction, maxRequestBodyInBytes } from '../../functions/http/endpoint.js';
import { agentReplies } from '../../functions/queue/agent-replies.js';
import type { MessageActions } from '../../functions/queue/delivery.js';
import { directoryWorker } from '../../functions/queue/directory-worker.js';
import { onboardingWorker } from '../../functions/queue/onboarding.js';
import { createComposition } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { customerInputSchema } from '../../shared/domain/customer.js';
import { AppError } from '../../shared/errors.js';
import { generateSigningKeyPair } from '../../shared/relay-protocol/index.js';

// Handlers called as the Functions host calls them (public constructors), with production wiring that
// never needs the network for these paths: every case fails or answers before touching a dependency.
const { HttpRequest, InvocationContext } = azureFunctions;
const deps = createComposition(
  loadSettings({
    LOG_LEVEL: 'error',
    TableStorage: 'UseDevelopmentStorage=true',
    ServiceBusConnection:
      'Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;',
    Relay__signingKeyPem: generateSigningKeyPair().privateKeyPem,
  }),
);
const context = () => new InvocationContext({ invocationId: 'test', functionName: 'test' });

const echo = httpFunction({
  name: 'echo',
  route: 'echo',
  method: 'POST',
  summary: 'test endpoint',
  auth: 'anonymous',
  body: z.object({ name: z.string().min(1), count: z.number().int() }),
  responses: { 200: { description: 'ok' } },
  handle({ body }) {
    if (body.name === 'boom') throw new Error('database password is hunter2');
    if (body.name === 'slow')
      throw new AppError('Throttled', 'Graph asked us to wait', { retryAfterInSeconds: 7 });
    return Promise.resolve({ status: 200, body });
  },
}).handler(deps);

// The real customer body schema behind the same pipeline (anonymous here: no storage is needed).
const customerEcho = httpFunction({
  name: 'customerEcho',
  route: 'customer-echo',
  method: 'PUT',
  summary: 'test endpoint',
  auth: 'anonymous',
  body: customerInputSchema,
  responses: { 200: { description: 'ok' } },
  handle: ({ body }) => Promise.resolve({ status: 200, body }),
}).handler(deps);

type Answer = { status: number; json: Record<string, unknown>; headers: Record<string, string> };

function answer(result: HttpResponseInit): Answer {
  return {
    status: result.status ?? 200,
    json: JSON.parse(typeof result.body === 'string' ? result.body : 'null') as Record<string, unknown>,
    headers: result.headers as Record<string, string>,
  };
}

async function call(
  body: string | Uint8Array,
  contentType = 'application/json',
  extraHeaders: Record<string, string> = {},
  url = 'http://localhost/api/echo',
  invocation = context(),
): Promise<Answer> {
  const result: HttpResponseInit = await echo(
    new HttpRequest({
      method: 'POST',
      url,
      headers: { 'content-type': contentType, ...extraHeaders },
      body: typeof body === 'string' ? { string: body } : { bytes: body },
    }),
    invocation,
  );
  return answer(result);
}

const errorPaths = (json: Record<string, unknown>): string[] =>
  (json.errors as { path: string }[]).map((e) => e.path).sort();

const customer = {
  displayName: 'Contoso',
  identityMode: 'cloudOnly',
  entra: { tenantId: '0b7c6d5e-4f3a-4b2c-8d1e-9f0a1b2c3d4e', domains: ['contoso.example'] },
};

async function putCustomer(body: unknown): Promise<Answer> {
  return answer(
    await customerEcho(
      new HttpRequest({
        method: 'PUT',
        url: 'http://localhost/api/customer-echo',
        headers: { 'content-type': 'application/json' },
        body: { string: JSON.stringify(body) },
      }),
      context(),
    ),
  );
}

describe('HTTP pipeline', () => {
  it('answers a valid body', async () => {
    expect(await call('{"name":"a","count":1}')).toMatchObject({
      status: 200,
      json: { name: 'a', count: 1 },
    });
  });

  it('names every bad field in a 400 problem', async () => {
    const { status, json, headers } = await call('{"name":"","count":1.5}');
    expect(status).toBe(400);
    expect(headers['content-type']).toBe('application/problem+json');
    expect((json.errors as { path: string }[]).map((e) => e.path).sort()).toEqual([
      'body.count',
      'body.name',
    ]);
  });

  it('refuses broken JSON with 400 and another media type with 415', async () => {
    expect((await call('{"name":')).status).toBe(400);
    expect((await call('name=a', 'application/x-www-form-urlencoded')).status).toBe(415);
  });

  it('hides internal failures behind a correlation id', async () => {
    const { status, json } = await call('{"name":"boom","count":1}');
    expect(status).toBe(500);
    expect(JSON.stringify(json)).not.toContain('hunter2');
    expect(json.correlationId).toEqual(expect.any(String));
  });

  it('answers a 5 MB body with 413 problem+json, whether it declares its length or is streamed', async () => {
    const big = new TextEncoder().encode(`{"name":"${'a'.repeat(5 * 1024 * 1024)}","count":1}`);
    const declared: Record<string, string>[] = [{ 'content-length': String(big.byteLength) }, {}];
    for (const headers of declared) {
      const {
        status,
        json,
        headers: answered,
      } = await call(big, 'application/json', {
        ...headers,
        'x-correlation-id': 'big-1',
      });
      expect(status).toBe(413);
      expect(answered['content-type']).toBe('application/problem+json');
      expect(json).toMatchObject({ status: 413, code: 'PayloadTooLarge', correlationId: 'big-1' });
    }
  });

  it('accepts a body of exactly the limit (the limit is inclusive)', async () => {
    const core = '{"name":"a","count":1}';
    const padded = core + ' '.repeat(maxRequestBodyInBytes - core.length);
    expect(new TextEncoder().encode(padded).byteLength).toBe(maxRequestBodyInBytes);
    expect((await call(padded)).status).toBe(200);
  });

  it('refuses unknown fields at every depth with 400 naming each one', async () => {
    const { status, json } = await putCustomer({
      ...customer,
      colour: 'blue',
      entra: { ...customer.entra, tenantID: 'typo' },
      licencePlans: [{ name: 'E3', skus: [{ skuId: '6fd2c87f-b296-42f0-b197-1e91e994b900', seats: 3 }] }],
    });
    expect(status).toBe(400);
    expect(errorPaths(json)).toEqual([
      'body.colour',
      'body.entra.tenantID',
      'body.licencePlans.0.skus.0.seats',
    ]);
    expect(json.detail).toContain('body.colour: is not a known field');
  });

  it('refuses control characters in names with 400 naming the field, and keeps ordinary Unicode', async () => {
    for (const bad of [
      'Con\u0000toso',
      'Contoso\nAdmin',
      'Contoso\r',
      'Tab\there',
      'C1\u0085x',
      'Del\u007f',
    ]) {
      const { status, json } = await putCustomer({ ...customer, displayName: bad });
      expect(status, JSON.stringify(bad)).toBe(400);
      expect(json.errors).toEqual([
        { path: 'body.displayName', message: expect.stringContaining('control characters') as string },
      ]);
    }
    expect((await putCustomer({ ...customer, displayName: 'Zoë & Søn — 東京' })).status).toBe(200);
  });

  it('never logs a key sent as ?code= or an atr_ key in the URL', async () => {
    const lines: string[] = [];
    const invocation = new InvocationContext({
      invocationId: 'log-test',
      functionName: 'echo',
      logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')),
    });
    const apiKey = 'atr_abcdefghijkl_SECRETsecretSECRETsecretSECRETsecret';
    // Failures log at error level, which these deps keep (LOG_LEVEL error).
    await call(
      '{"name":"boom","count":1}',
      'application/json',
      {},
      `http://localhost/api/echo?code=${apiKey}&x=1`,
      invocation,
    );
    await call(
      '{"name":"boom","count":1}',
      'application/json',
      {},
      'http://localhost/api/echo?code=plainFunctionsKey123',
      invocation,
    );
    const all = lines.join('\n');
    expect(lines.length).toBe(2);
    expect(all).toContain('/api/echo?code=[redacted]&x=1');
    expect(all).not.toContain('SECRETsecret');
    expect(all).not.toContain('plainFunctionsKey123');
  });

  it('passes a Retry-After on to the caller', async () => {
    const { status, headers } = await call('{"name":"slow","count":1}');
    expect(status).toBe(429);
    expect(headers['retry-after']).toBe('7');
  });
});

interface Settlement {
  outcome: 'complete' | 'abandon' | 'deadletter';
  reason?: string;
  description?: string;
}

/**
 * Delivers one message as the SDK-type Service Bus binding does ({ messages, actions }) and records how
 * the handler settled it; the actions are the host's side of the contract.
 */
async function deliver(
  handler: (input: unknown, context: AzureFunctions.InvocationContext) => Promise<unknown>,
  body: unknown,
): Promise<Settlement[]> {
  const settled: Settlement[] = [];
  const message = { body, messageId: 'm-1', deliveryCount: 0 } as unknown as ServiceBusReceivedMessage;
  const actions: MessageActions = {
    complete: () => Promise.resolve(void settled.push({ outcome: 'complete' })),
    abandon: () => Promise.resolve(void settled.push({ outcome: 'abandon' })),
    deadletter: (_message, _properties, reason, description) =>
      Promise.resolve(
        void settled.push({
          outcome: 'deadletter',
          ...(reason === undefined ? {} : { reason }),
          ...(description === undefined ? {} : { description }),
        }),
      ),
  };
  await handler({ messages: [message], actions }, context());
  return settled;
}

describe('queue functions', () => {
  const worker = directoryWorker.handler(deps);
  const replies = agentReplies.handler(deps);

  it('dead-letters a message that is not JSON at once, with its reason', async () => {
    expect(await deliver(worker, Buffer.from('{not json'))).toEqual([
      { outcome: 'deadletter', reason: 'InvalidJson', description: expect.any(String) as string },
    ]);
  });

  it('dead-letters a message that breaks the public contract, naming the fields', async () => {
    const settled = await deliver(worker, {
      type: 'user.create',
      v: 1,
      providerId: 'p',
      customerId: 'c',
      idempotencyKey: 'k',
      user: { userId: 'u', password: 'x' },
    });
    expect(settled).toEqual([
      {
        outcome: 'deadletter',
        reason: 'SchemaValidationFailed',
        description: expect.stringMatching(/userPrincipalName/) as string,
      },
    ]);
  });

  it('dead-letters an onboarding-work message that breaks its contract, naming the fields', async () => {
    const settled = await deliver(onboardingWorker.handler(deps), {
      type: 'onboarding.run',
      v: 1,
      providerId: 'p',
      customerId: 'c',
    });
    expect(settled).toEqual([
      {
        outcome: 'deadletter',
        reason: 'SchemaValidationFailed',
        description: expect.stringMatching(/jobId/) as string,
      },
    ]);
  });

  it('dead-letters an agent message that is neither a reply nor a heartbeat', async () => {
    expect(await deliver(replies, { hello: 'world' })).toEqual([
      expect.objectContaining({ outcome: 'deadletter' }),
    ]);
  });
});
