import azureFunctions, { type HttpResponseInit } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpFunction } from '../../functions/http/endpoint.js';
import { agentReplies } from '../../functions/queue/agent-replies.js';
import { directoryWorker } from '../../functions/queue/directory-worker.js';
import { createComposition } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { AppError, InvalidMessageError } from '../../shared/errors.js';
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

async function call(
  body: string,
  contentType = 'application/json',
): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, string> }> {
  const result: HttpResponseInit = await echo(
    new HttpRequest({
      method: 'POST',
      url: 'http://localhost/api/echo',
      headers: { 'content-type': contentType },
      body: { string: body },
    }),
    context(),
  );
  return {
    status: result.status ?? 200,
    json: JSON.parse(typeof result.body === 'string' ? result.body : 'null') as Record<string, unknown>,
    headers: result.headers as Record<string, string>,
  };
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

  it('passes a Retry-After on to the caller', async () => {
    const { status, headers } = await call('{"name":"slow","count":1}');
    expect(status).toBe(429);
    expect(headers['retry-after']).toBe('7');
  });
});

describe('queue functions', () => {
  const worker = directoryWorker.handler(deps);
  const replies = agentReplies.handler(deps);

  it('dead-letters a message that is not JSON at once, with its reason', async () => {
    await expect(worker('{not json', context())).rejects.toSatisfy(
      (e) => e instanceof InvalidMessageError && e.deadLetterReason === 'InvalidJson',
    );
  });

  it('dead-letters a message that breaks the public contract, naming the fields', async () => {
    await expect(
      worker(
        {
          type: 'user.create',
          v: 1,
          providerId: 'p',
          customerId: 'c',
          idempotencyKey: 'k',
          user: { userId: 'u', password: 'x' },
        },
        context(),
      ),
    ).rejects.toSatisfy(
      (e) =>
        e instanceof InvalidMessageError &&
        e.deadLetterReason === 'SchemaValidationFailed' &&
        /userPrincipalName/.test(e.message),
    );
  });

  it('dead-letters an agent message that is neither a reply nor a heartbeat', async () => {
    await expect(replies({ hello: 'world' }, context())).rejects.toBeInstanceOf(InvalidMessageError);
  });
});
