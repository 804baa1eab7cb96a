import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import azureFunctions, {
  type HttpResponseInit,
  type InvocationContext,
  type LogLevel,
  type Timer,
} from '@azure/functions';
import type {
  FunctionDefinition,
  HttpFunctionDefinition,
  QueueFunctionDefinition,
  TimerFunctionDefinition,
} from '../../functions/define.js';
import { problemResponse } from '../../functions/http/problem.js';
import type { AppDeps } from '../../shared/composition.js';
import { AppError } from '../../shared/errors.js';
import { consoleSink, createLogger, type Logger } from '../../shared/logging.js';
import { nextOccurrence, parseNcrontab } from './ncrontab.js';

// @azure/functions is CommonJS; its classes are reachable only through the default export under Node's ESM loader.
const { HttpRequest, InvocationContext: InvocationContextClass } = azureFunctions;
import { compileRoute, MalformedPath, type CompiledRoute } from './routes.js';

/**
 * A local stand-in for the Functions host (Core Tools cannot be installed here): serves the same
 * definition table as functions/index.ts — HTTP under /api, timers on their NCRONTAB schedules, queue
 * triggers through the Service Bus trigger module — and reports exactly what it registered.
 */
export type QueueTriggerStarter = (options: {
  queueName: string;
  functionName: string;
  /** Hand the handler `{ messages, actions }` and let it settle (as the SDK-type binding does in Azure). */
  sdkBinding?: boolean;
  handler: (message: unknown, context: InvocationContext) => Promise<unknown>;
}) => Promise<{ close(): Promise<void> }>;

export interface LocalHostOptions {
  definitions: FunctionDefinition[];
  deps: AppDeps;
  port?: number;
  host?: string;
  /** Starts one queue listener; absent → queue functions are listed as not served. */
  startQueueTrigger?: QueueTriggerStarter;
  /** Timers off for tests that drive timer handlers themselves. */
  timers?: boolean;
  /**
   * What the host itself refuses, before any function runs. Defaults to the Azure Functions host's
   * documented 100 MB (HTTP trigger "Limits"); the endpoint pipeline's own, lower limit answers below it.
   */
  maxRequestBodyInBytes?: number;
  log?: Logger;
  /**
   * Where HTTP and timer invocations' `context.log` lines go (the InvocationContext default is the
   * console); a chaos run records them to scan them for secrets.
   */
  invocationLogHandler?: (level: LogLevel, ...args: unknown[]) => void;
}

/** Azure Functions: "The HTTP request length is limited to 100 MB (104,857,600 bytes)". */
const azureHostMaxRequestBodyInBytes = 104_857_600;

class BodyTooLarge extends Error {}

/**
 * The Functions host answers an unknown route, and a known route with another method, with a bare 404
 * (Azure/azure-functions-host#10098); no catch-all route is registered in Azure to change that, since it
 * would also take requests meant for the host's own endpoints. Locally we answer problem+json with a
 * `code` and the correlation id, and 405 with `Allow` where the path exists.
 */
function correlationIdOf(request: IncomingMessage): string {
  const given = request.headers['x-correlation-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
}

export interface Registration {
  http: { name: string; route: string; methods: string[]; authLevel: string }[];
  queues: { name: string; queueName: string; connection: string }[];
  timers: { name: string; schedule: string }[];
}

export interface LocalHost {
  url: string;
  port: number;
  registration: Registration;
  /** Runs a timer function now, as the host would at its next occurrence. */
  runTimer(name: string): Promise<void>;
  stop(): Promise<void>;
}

function toHeaders(init: HttpResponseInit['headers']): Record<string, string> {
  if (init === undefined) return {};
  if (init instanceof Headers) return Object.fromEntries(init.entries());
  if (Array.isArray(init)) return Object.fromEntries(init);
  return Object.fromEntries(Object.entries(init).map(([k, v]) => [k, String(v)]));
}

async function readAll(request: IncomingMessage, limitInBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limitInBytes) throw new BodyTooLarge();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

async function writeResponse(response: ServerResponse, result: HttpResponseInit): Promise<void> {
  const headers = toHeaders(result.headers);
  let body: string | Buffer | undefined;
  if (result.jsonBody !== undefined) {
    body = JSON.stringify(result.jsonBody);
    headers['content-type'] ??= 'application/json';
  } else if (typeof result.body === 'string') body = result.body;
  else if (result.body instanceof Uint8Array) body = Buffer.from(result.body);
  else if (result.body !== undefined && result.body !== null) {
    body = Buffer.from(
      await new Response(result.body as ConstructorParameters<typeof Response>[0]).arrayBuffer(),
    );
  }
  response.writeHead(result.status ?? 200, headers);
  response.end(body);
}

function timerPayload(last: Date, next: Date, isPastDue: boolean): Timer {
  return {
    isPastDue,
    schedule: { adjustForDST: false },
    scheduleStatus: {
      last: last.toISOString(),
      next: next.toISOString(),
      lastUpdated: new Date().toISOString(),
    },
  };
}

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const log = options.log ?? createLogger(consoleSink, { props: { component: 'local-host' } });
  const http = options.definitions.filter((d): d is HttpFunctionDefinition => d.kind === 'http');
  const queues = options.definitions.filter(
    (d): d is QueueFunctionDefinition => d.kind === 'serviceBusQueue',
  );
  const timers = options.definitions.filter((d): d is TimerFunctionDefinition => d.kind === 'timer');
  const routes: {
    definition: HttpFunctionDefinition;
    route: CompiledRoute;
    handler: ReturnType<HttpFunctionDefinition['handler']>;
  }[] = http.map((definition) => ({
    definition,
    route: compileRoute(definition.route),
    handler: definition.handler(options.deps),
  }));

  const maxBodyInBytes = options.maxRequestBodyInBytes ?? azureHostMaxRequestBodyInBytes;
  const server = createServer((request, response) => {
    const correlationId = correlationIdOf(request);
    const refuse = (error: AppError): Promise<void> =>
      writeResponse(response, problemResponse(error, correlationId));
    void (async () => {
      const url = new URL(request.url ?? '/', `http://${request.headers.host ?? '127.0.0.1'}`);
      const method = (request.method ?? 'GET').toUpperCase();
      if (!url.pathname.startsWith('/api/')) {
        await refuse(new AppError('NotFound', `No route ${method} ${url.pathname}; the API is under /api/.`));
        return;
      }
      const path = url.pathname.slice('/api/'.length);
      const allowed = new Set<string>();
      for (const entry of routes) {
        const params = entry.route.match(path);
        if (params === undefined) continue;
        if (!entry.definition.methods.includes(method as never)) {
          for (const m of entry.definition.methods) allowed.add(m);
          continue;
        }
        const body = await readAll(request, maxBodyInBytes);
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(request.headers)) {
          if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
        }
        const httpRequest = new HttpRequest({
          method,
          url: url.toString(),
          headers,
          query: Object.fromEntries(url.searchParams.entries()),
          params,
          ...(body.length === 0 ? {} : { body: { bytes: body } }),
        });
        const context = new InvocationContextClass({
          invocationId: randomUUID(),
          functionName: entry.definition.name,
          ...(options.invocationLogHandler === undefined ? {} : { logHandler: options.invocationLogHandler }),
        });
        const result = await entry.handler(httpRequest, context);
        await writeResponse(response, result);
        return;
      }
      if (allowed.size > 0) {
        await refuse(
          new AppError('MethodNotAllowed', `${method} is not allowed on /api/${path}.`, {
            details: { allow: [...allowed] },
          }),
        );
      } else {
        await refuse(new AppError('NotFound', `No route ${method} /api/${path}.`));
      }
    })().catch(async (error: unknown) => {
      if (response.headersSent) {
        log.error('local host failed a request', { error });
        response.end();
        return;
      }
      if (error instanceof MalformedPath) {
        // A segment that cannot be decoded is the caller's mistake (found by test/fuzz/http.test.ts), not ours.
        await refuse(new AppError('Validation', error.message));
        return;
      }
      if (error instanceof BodyTooLarge) {
        // Let the client finish sending so it reads the answer instead of a reset connection.
        request.resume();
        response.setHeader('connection', 'close');
        await refuse(new AppError('PayloadTooLarge', `The body is larger than ${maxBodyInBytes} bytes.`));
        return;
      }
      log.error('local host failed a request', { error });
      await refuse(new AppError('Internal', 'the local host failed'));
    });
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7071, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 7071);

  const queueListeners: { close(): Promise<void> }[] = [];
  if (options.startQueueTrigger !== undefined) {
    for (const definition of queues) {
      const handler = definition.handler(options.deps);
      queueListeners.push(
        await options.startQueueTrigger({
          queueName: definition.queueName,
          functionName: definition.name,
          ...(definition.sdkBinding === true ? { sdkBinding: true } : {}),
          handler: (message, context) => handler(message, context),
        }),
      );
    }
  } else if (queues.length > 0) {
    log.warn('queue functions are not served: no Service Bus connection', {
      functions: queues.map((q) => q.name),
    });
  }

  const timerHandles = new Map<string, NodeJS.Timeout>();
  const timerLast = new Map<string, Date>();
  const runTimer = async (name: string): Promise<void> => {
    const definition = timers.find((t) => t.name === name);
    if (definition === undefined) throw new Error(`no timer function ${name}`);
    const now = new Date();
    const next = nextOccurrence(parseNcrontab(definition.schedule), now);
    const context = new InvocationContextClass({
      invocationId: randomUUID(),
      functionName: name,
      ...(options.invocationLogHandler === undefined ? {} : { logHandler: options.invocationLogHandler }),
    });
    await definition.handler(options.deps)(timerPayload(timerLast.get(name) ?? now, next, false), context);
    timerLast.set(name, now);
  };
  let stopped = false;
  const arm = (definition: TimerFunctionDefinition): void => {
    if (stopped) return;
    const next = nextOccurrence(parseNcrontab(definition.schedule), new Date());
    // setTimeout caps at ~24.8 days; re-arm in steps for longer gaps.
    const delay = Math.min(next.getTime() - Date.now(), 2 ** 31 - 1);
    const handle = setTimeout(() => {
      void runTimer(definition.name)
        .catch((error: unknown) => log.error('timer function failed', { function: definition.name, error }))
        .finally(() => arm(definition));
    }, delay);
    handle.unref();
    timerHandles.set(definition.name, handle);
  };
  for (const definition of timers) parseNcrontab(definition.schedule); // fail fast on a bad schedule
  if (options.timers !== false) {
    for (const definition of timers) {
      if (definition.runOnStartup === true)
        void runTimer(definition.name).catch((error: unknown) => log.error('timer failed', { error }));
      arm(definition);
    }
  }

  return {
    url: `http://${host}:${port}/api`,
    port,
    registration: {
      http: http.map((d) => ({
        name: d.name,
        route: d.route,
        methods: [...d.methods],
        authLevel: d.authLevel,
      })),
      queues:
        options.startQueueTrigger === undefined
          ? []
          : queues.map((d) => ({ name: d.name, queueName: d.queueName, connection: d.connection })),
      timers: options.timers === false ? [] : timers.map((d) => ({ name: d.name, schedule: d.schedule })),
    },
    runTimer,
    async stop() {
      stopped = true;
      for (const handle of timerHandles.values()) clearTimeout(handle);
      await Promise.all(queueListeners.map((l) => l.close()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
