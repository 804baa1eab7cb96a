import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import azureFunctions, { type HttpResponseInit, type InvocationContext, type Timer } from '@azure/functions';
import type {
  FunctionDefinition,
  HttpFunctionDefinition,
  QueueFunctionDefinition,
  TimerFunctionDefinition,
} from '../../functions/define.js';
import type { AppDeps } from '../../shared/composition.js';
import { consoleSink, createLogger, type Logger } from '../../shared/logging.js';
import { nextOccurrence, parseNcrontab } from './ncrontab.js';

// @azure/functions is CommonJS; its classes are reachable only through the default export under Node's ESM loader.
const { HttpRequest, InvocationContext: InvocationContextClass } = azureFunctions;
import { compileRoute, type CompiledRoute } from './routes.js';

/**
 * A local stand-in for the Functions host (Core Tools cannot be installed here): serves the same
 * definition table as functions/index.ts — HTTP under /api, timers on their NCRONTAB schedules, queue
 * triggers through the Service Bus trigger module — and reports exactly what it registered.
 */
export type QueueTriggerStarter = (options: {
  queueName: string;
  functionName: string;
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
  log?: Logger;
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
    if (size > limitInBytes) throw new Error('body too large');
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

  const server = createServer((request, response) => {
    void (async () => {
      const url = new URL(request.url ?? '/', `http://${request.headers.host ?? '127.0.0.1'}`);
      if (!url.pathname.startsWith('/api/')) {
        response.writeHead(404).end();
        return;
      }
      const path = url.pathname.slice('/api/'.length);
      const method = (request.method ?? 'GET').toUpperCase();
      let matchedPath = false;
      for (const entry of routes) {
        const params = entry.route.match(path);
        if (params === undefined) continue;
        matchedPath = true;
        if (!entry.definition.methods.includes(method as never)) continue;
        const body = await readAll(request, 4 * 1024 * 1024);
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
        });
        const result = await entry.handler(httpRequest, context);
        await writeResponse(response, result);
        return;
      }
      response.writeHead(matchedPath ? 405 : 404, { 'content-type': 'application/problem+json' });
      response.end(
        JSON.stringify({
          type: 'about:blank',
          title: matchedPath ? 'Method not allowed' : 'Not found',
          status: matchedPath ? 405 : 404,
          detail: `${method} /api/${path}`,
        }),
      );
    })().catch((error: unknown) => {
      log.error('local host failed a request', { error });
      if (!response.headersSent) response.writeHead(500);
      response.end();
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
    const context = new InvocationContextClass({ invocationId: randomUUID(), functionName: name });
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
