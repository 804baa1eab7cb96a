import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { z } from 'zod';
import type { AppDeps } from '../../shared/composition.js';
import type { Caller } from '../../shared/domain/caller.js';
import { AppError, toAppError } from '../../shared/errors.js';
import { createLogger, type Logger, type LogSink } from '../../shared/logging.js';
import type { HttpFunctionDefinition, HttpMethod } from '../define.js';
import { problemResponse } from './problem.js';
import { activeTraceId, contextFrom, inSpan, SpanKind } from '../../shared/telemetry.js';

/**
 * The one HTTP pipeline every route goes through: correlation id, caller authentication, zod parsing
 * of params/query/body, the use case, and RFC 9457 errors. The same schemas generate /api/openapi.json.
 */
export interface EndpointResult {
  status: number;
  body?: unknown;
  /** A body that is not JSON (e.g. CSV), sent as is; give its content-type in `headers`. */
  text?: string;
  headers?: Record<string, string>;
}

export type EndpointAuth = 'anonymous' | 'caller';

export interface EndpointInput<P, Q, B, A extends EndpointAuth = EndpointAuth> {
  params: P;
  query: Q;
  body: B;
  /** Always present on `caller` endpoints: the pipeline authenticated it before calling the use case. */
  caller: A extends 'caller' ? Caller : undefined;
  deps: AppDeps;
  log: Logger;
  correlationId: string;
  headers: Headers;
}

export interface EndpointSpec<P, Q, B, A extends EndpointAuth = EndpointAuth> {
  name: string;
  route: string;
  method: HttpMethod;
  summary: string;
  tags?: string[];
  /** `caller`: an API key or Entra token is required. Only health and the API description are open. */
  auth: A;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Extra request headers worth documenting (e.g. Idempotency-Key). */
  requestHeaders?: Record<string, { description: string; required?: boolean }>;
  /** `text`: media types the same response may come as instead of JSON (e.g. text/csv), documented as text. */
  responses: Record<number, { description: string; schema?: z.ZodType; text?: string[] }>;
  handle(input: EndpointInput<P, Q, B, A>): Promise<EndpointResult>;
}

// The definition table holds endpoints of many shapes; each is only ever run with its own schemas.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyEndpoint = EndpointSpec<any, any, any, EndpointAuth>;

const correlationIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The largest request body any route accepts (our largest body, a customer with its licence plans, is
 * a few KiB). Azure's Functions host refuses bodies above 100 MB itself (HTTP trigger "Limits":
 * https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#limits),
 * so in Azure this pipeline is what answers an oversize body; dev/host/local-host.ts mirrors the
 * host's 100 MB and hands everything below it to this pipeline, so both hosts answer the same 413
 * problem (test/handlers/pipeline.test.ts calls the handler as Azure does; test/integration/host/
 * bad-input.test.ts goes through the local host).
 */
export const maxRequestBodyInBytes = 1024 * 1024;

function issuesOf(error: z.ZodError, where: string): { path: string; message: string }[] {
  return error.issues.flatMap((issue) => {
    const path = [where, ...issue.path.map(String)];
    // One error per unknown field, at its own path, so the caller sees which field to drop.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...path, key].join('.'), message: 'is not a known field' }));
    }
    return [{ path: path.join('.'), message: issue.message }];
  });
}

function validationError(errors: { path: string; message: string }[]): AppError {
  return new AppError(
    'Validation',
    `The request is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    {
      details: { errors },
    },
  );
}

function payloadTooLarge(): AppError {
  return new AppError(
    'PayloadTooLarge',
    `The body is larger than ${maxRequestBodyInBytes} bytes, the most any route accepts.`,
  );
}

/** Refuses by Content-Length before anything else (even authentication) reads the request. */
function assertDeclaredSize(request: HttpRequest): void {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > maxRequestBodyInBytes) throw payloadTooLarge();
}

/** Reads at most the limit (a chunked body has no Content-Length), then decodes UTF-8. */
async function readText(request: HttpRequest): Promise<string> {
  if (request.body === null) return '';
  // The Functions model types the stream's chunks loosely; they are bytes.
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxRequestBodyInBytes) {
      await reader.cancel();
      throw payloadTooLarge();
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

async function readBody(request: HttpRequest): Promise<unknown> {
  const text = await readText(request);
  if (text.trim() === '') return undefined;
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/([a-z.+-]*\+)?json\b/i.test(type)) {
    throw new AppError('Validation', 'The body must be JSON (content-type: application/json).', {
      status: 415,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError('Validation', 'The body is not valid JSON.');
  }
}

function parseWith<T>(
  schema: z.ZodType<T> | undefined,
  value: unknown,
  where: string,
  errors: { path: string; message: string }[],
): T {
  if (schema === undefined) return undefined as T;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  errors.push(...issuesOf(parsed.error, where));
  return undefined as T;
}

async function authenticate(request: HttpRequest, deps: AppDeps): Promise<Caller> {
  const key = request.headers.get('x-functions-key') ?? request.query.get('code');
  if (key !== null && key !== '') return deps.callers.authenticateApiKey(key);
  const authorization = request.headers.get('authorization');
  const bearer = authorization === null ? undefined : /^Bearer\s+(.+)$/i.exec(authorization)?.[1];
  if (bearer !== undefined) return deps.callers.authenticateBearer(bearer);
  throw new AppError('Unauthenticated', 'Send an API key in x-functions-key or an Entra ID bearer token.');
}

export function invocationSink(context: InvocationContext): LogSink {
  return (level, record) => {
    const line = JSON.stringify(record);
    if (level === 'error') context.error(line);
    else if (level === 'warn') context.warn(line);
    else if (level === 'debug') context.debug(line);
    else context.info(line);
  };
}

export function runEndpoint<P, Q, B, A extends EndpointAuth>(spec: EndpointSpec<P, Q, B, A>, deps: AppDeps) {
  const handle = handleRequest(spec, deps);
  // One server span per request, continuing the caller's W3C trace context when it sends one; every
  // message the request enqueues carries this span as its parent (shared/telemetry.ts).
  return (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> =>
    inSpan(
      `${request.method} /api/${spec.route}`,
      {
        kind: SpanKind.SERVER,
        parent: contextFrom(request.headers.get('traceparent')),
        attributes: { 'http.request.method': request.method, 'http.route': `/api/${spec.route}` },
      },
      async (span) => {
        const response = await handle(request, context);
        span.setAttribute('http.response.status_code', response.status ?? 200);
        return response;
      },
    );
}

function handleRequest<P, Q, B, A extends EndpointAuth>(spec: EndpointSpec<P, Q, B, A>, deps: AppDeps) {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const given = request.headers.get('x-correlation-id');
    const correlationId = given !== null && correlationIdPattern.test(given) ? given : randomUUID();
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: {
        correlationId,
        traceId: activeTraceId(),
        function: spec.name,
        invocationId: context.invocationId,
      },
    });
    const started = performance.now();
    try {
      if (spec.body !== undefined) assertDeclaredSize(request);
      const authenticated = spec.auth === 'caller' ? await authenticate(request, deps) : undefined;
      // The auth mode decides the type: `caller` endpoints always get one, anonymous ones never.
      const caller = authenticated as EndpointInput<P, Q, B, A>['caller'];
      const errors: { path: string; message: string }[] = [];
      const params = parseWith(spec.params, request.params, 'params', errors);
      const query = parseWith(spec.query, Object.fromEntries(request.query.entries()), 'query', errors);
      const rawBody = spec.body === undefined ? undefined : await readBody(request);
      if (spec.body !== undefined && rawBody === undefined)
        errors.push({ path: 'body', message: 'a JSON body is required' });
      const body = rawBody === undefined ? (undefined as B) : parseWith(spec.body, rawBody, 'body', errors);
      if (errors.length > 0) throw validationError(errors);

      const result = await spec.handle({
        params,
        query,
        body,
        caller,
        deps,
        log:
          authenticated === undefined
            ? log
            : log.child({ providerId: authenticated.providerId, callerId: authenticated.id }),
        correlationId,
        headers: request.headers,
      });
      // The logger redacts `?code=` keys and atr_ keys from the URL.
      log.info('request handled', {
        method: request.method,
        url: request.url,
        status: result.status,
        durationInMs: Math.round(performance.now() - started),
      });
      return {
        status: result.status,
        headers: {
          'x-correlation-id': correlationId,
          ...(result.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...result.headers,
        },
        ...(result.body === undefined ? {} : { body: JSON.stringify(result.body) }),
        ...(result.text === undefined ? {} : { body: result.text }),
      };
    } catch (thrown) {
      const error = toAppError(thrown);
      const level = error.status >= 500 ? 'error' : 'info';
      log[level]('request failed', {
        method: request.method,
        url: request.url,
        status: error.status,
        code: error.code,
        error: thrown,
        durationInMs: Math.round(performance.now() - started),
      });
      return problemResponse(error, correlationId);
    }
  };
}

export function httpFunction<P, Q, B, A extends EndpointAuth>(
  spec: EndpointSpec<P, Q, B, A>,
): HttpFunctionDefinition {
  return {
    kind: 'http',
    name: spec.name,
    route: spec.route,
    methods: [spec.method],
    authLevel: 'anonymous',
    endpoint: spec,
    handler: (deps) => runEndpoint(spec, deps),
  };
}
