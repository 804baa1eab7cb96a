import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { z, ZodError } from 'zod';
import { serverTls } from '../../tls.js';
import { VirtualClock, clockRequestSchema, durationInMs } from '../partner-center/clock.js';
import { RateLimiter } from '../partner-center/faults.js';
import { Pax8Error, pax8Errors } from './errors.js';
import { FaultBook, type FaultInput } from './faults.js';
import { distributorGraph, type DistributorGraph } from './graph-seats.js';
import { DistributorModel } from './model.js';
import { loadSeed, provisioningSchema, type SeedInput } from './seed.js';

/** The audience of the partner endpoints (Authentication OpenAPI, `POST /token`). */
export const pax8Audience = 'https://api.pax8.com';

export interface DistributorPeerOptions {
  port?: number;
  seed: SeedInput | string;
  /** The identity-graph peer's admin API (`https://127.0.0.1:P/_admin`): keeps `subscribedSkus` in step. */
  graphAdminUrl?: string;
  /** Replaces the Graph admin client (tests without a Graph peer). */
  graph?: DistributorGraph;
  /** Share a virtual clock in-process (e.g. with a test's own clock). */
  clock?: VirtualClock;
  /**
   * Follow another peer's clock over its admin API (the Partner Center peer's `…/_admin`): its virtual
   * time is read before every request, so both peers see the same instant.
   */
  followClockUrl?: string;
  faults?: FaultInput[];
  log?: (message: string) => void;
}

export interface DistributorPeer {
  baseUrl: string;
  adminUrl: string;
  clock: VirtualClock;
  stop(): Promise<void>;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Caller {
  partnerId: string;
}

type Handler = (context: {
  caller: Caller;
  params: string[];
  query: URLSearchParams;
  body: unknown;
}) => Promise<Reply> | Reply;

const segment = '([^/]+)';

class MalformedJson extends Error {}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new MalformedJson('the body is not valid JSON');
  }
}

const tokenRequestSchema = z.object({
  client_id: z.string().min(1),
  client_secret: z.string().min(1),
  audience: z.string().min(1),
  grant_type: z.string().min(1),
});

const remoteClockSchema = z.object({ now: z.iso.datetime(), frozen: z.boolean().optional() }).loose();

/**
 * `new VirtualClock({start, frozen: true})` freezes at `start` plus the milliseconds between its two
 * `Date.now()` reads, so under load a "frozen at 09:30:00.000" clock may read 09:30:00.016. Freezing a
 * minute early and setting the instant forward is exact.
 */
function seededClock(seed: { start?: string | undefined; frozen: boolean }): VirtualClock {
  if (seed.start === undefined) return new VirtualClock({ frozen: seed.frozen });
  const start = new Date(seed.start);
  if (!seed.frozen) return new VirtualClock({ start });
  const clock = new VirtualClock({ start: new Date(start.getTime() - 60_000), frozen: true });
  clock.set(start);
  return clock;
}

/** Starts the local distributor (Pax8 Partner API shape): HTTPS API under `/v1`, admin API under `/_admin`. */
export async function startDistributorPeer(options: DistributorPeerOptions): Promise<DistributorPeer> {
  const seed = await loadSeed(options.seed);
  const log = options.log ?? ((message: string) => console.error(`[distributor] ${message}`));
  const clock = options.clock ?? seededClock(seed.clock);
  const followUrl = options.followClockUrl?.replace(/\/+$/, '');
  const follow = async (): Promise<void> => {
    if (followUrl === undefined) return;
    const response = await fetch(`${followUrl}/clock`, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`clock ${followUrl} answered ${response.status}`);
    const remote = remoteClockSchema.parse(await response.json());
    clock.freeze(true);
    const at = new Date(remote.now);
    if (at.getTime() > clock.now().getTime()) clock.set(at);
    if (remote.frozen !== true) clock.freeze(false);
  };
  await follow();
  const graph =
    options.graph ??
    (options.graphAdminUrl === undefined ? undefined : distributorGraph(options.graphAdminUrl));
  const model = new DistributorModel({ seed, clock, graph, log });
  await model.init();
  const faults = new FaultBook();
  for (const fault of options.faults ?? []) faults.add(fault);
  const limiter = new RateLimiter(seed.limits.requestsPerMinute);
  let tokenLifetimeInSeconds = seed.tokenLifetimeInSeconds;
  const tokens = new Map<string, { partnerId: string; expiresAtMs: number }>();
  let tokensIssued = 0;
  /** `METHOD /path` → how many authenticated requests reached the API (what tests count). */
  const requestCounts = new Map<string, number>();

  const routes: { method: string; pattern: RegExp; handler: Handler }[] = [];
  const route = (method: string, path: string, handler: Handler): void => {
    routes.push({ method, pattern: new RegExp(`^${path.replaceAll('{}', segment)}/?$`, 'i'), handler });
  };
  const ok = (body: unknown, status = 200): Reply => ({ status, body });

  route('GET', '/v1/companies', ({ caller, query }) => ok(model.listCompanies(caller.partnerId, query)));
  route('GET', '/v1/companies/{}', ({ caller, params }) =>
    ok(model.getCompany(caller.partnerId, params[0] ?? '')),
  );
  route('GET', '/v1/products', ({ query }) => ok(model.listProducts(query)));
  route('GET', '/v1/products/{}', ({ params }) => ok(model.getProduct(params[0] ?? '')));
  route('GET', '/v1/products/{}/pricing', ({ caller, params, query }) =>
    ok(model.getPricing(caller.partnerId, params[0] ?? '', query)),
  );
  route('GET', '/v1/products/{}/dependencies', ({ params }) => ok(model.getDependencies(params[0] ?? '')));
  route('POST', '/v1/orders', async ({ caller, query, body }) => {
    const isMock = query.get('isMock');
    if (isMock !== null && isMock !== 'true' && isMock !== 'false')
      throw pax8Errors.invalidParam('isMock', 'must be true or false');
    // Create Order answers 200 (not 201) in the OpenAPI.
    return ok(await model.createOrder(caller.partnerId, body, isMock === 'true'));
  });
  route('GET', '/v1/orders', ({ caller, query }) => ok(model.listOrders(caller.partnerId, query)));
  route('GET', '/v1/orders/{}', ({ caller, params }) =>
    ok(model.getOrder(caller.partnerId, params[0] ?? '')),
  );
  route('GET', '/v1/subscriptions', ({ caller, query }) =>
    ok(model.listSubscriptions(caller.partnerId, query)),
  );
  route('GET', '/v1/subscriptions/{}', ({ caller, params }) =>
    ok(model.getSubscription(caller.partnerId, params[0] ?? '')),
  );
  route('PUT', '/v1/subscriptions/{}', async ({ caller, params, body }) =>
    ok(await model.updateSubscription(caller.partnerId, params[0] ?? '', body)),
  );
  route('DELETE', '/v1/subscriptions/{}', async ({ caller, params, query }) => {
    await model.cancelSubscription(caller.partnerId, params[0] ?? '', query.get('cancelDate'));
    return { status: 204 };
  });
  route('GET', '/v1/subscriptions/{}/history', ({ caller, params }) =>
    ok(model.history(caller.partnerId, params[0] ?? '')),
  );

  const send = (response: ServerResponse, reply: Reply): void => {
    if (reply.body === undefined) {
      response.writeHead(reply.status, reply.headers ?? {}).end();
      return;
    }
    const text = JSON.stringify(reply.body);
    response
      .writeHead(reply.status, {
        ...reply.headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(text)),
      })
      .end(text);
  };

  const errorReply = (error: unknown, path: string): Reply => {
    if (error instanceof Pax8Error) return { status: error.status, body: error.toBody(path) };
    if (error instanceof MalformedJson)
      return { status: 400, body: pax8Errors.badRequest('Malformed JSON request').toBody(path) };
    if (error instanceof ZodError)
      return { status: 400, body: pax8Errors.badRequest(error.message).toBody(path) };
    log(`unexpected: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return { status: 500, body: pax8Errors.server(500).toBody(path) };
  };

  /** OAuth2 client credentials, JSON body (Authentication OpenAPI `POST /token`). */
  const issueToken = (body: unknown): Reply => {
    const parsed = tokenRequestSchema.safeParse(body);
    // Missing fields and grant types: Auth0-style errors (inferred; only the 401 is documented).
    if (!parsed.success)
      return {
        status: 400,
        body: {
          error: 'invalid_request',
          error_description: 'client_id, client_secret, audience and grant_type are required',
        },
      };
    const request = parsed.data;
    if (request.grant_type !== 'client_credentials')
      return {
        status: 400,
        body: { error: 'unsupported_grant_type', error_description: 'Unsupported grant type' },
      };
    const app = seed.apps.find((candidate) => candidate.clientId === request.client_id);
    // Documented: `{"error":"access_denied","error_description":"Unauthorized"}` with 401.
    if (app?.clientSecret !== request.client_secret)
      return { status: 401, body: { error: 'access_denied', error_description: 'Unauthorized' } };
    if (request.audience !== pax8Audience)
      return {
        status: 403,
        body: {
          error: 'access_denied',
          error_description: `Service not enabled within domain: ${request.audience}`,
        },
      };
    const token = randomBytes(32).toString('base64url');
    tokens.set(token, { partnerId: app.partnerId, expiresAtMs: Date.now() + tokenLifetimeInSeconds * 1000 });
    tokensIssued += 1;
    return {
      status: 200,
      body: { access_token: token, expires_in: tokenLifetimeInSeconds, token_type: 'Bearer' },
    };
  };

  const authenticate = (authorization: string | undefined): Caller => {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    const entry = token === undefined ? undefined : tokens.get(token);
    // Tokens expire in real time (like the Partner Center peer's), not virtual time.
    if (entry === undefined || entry.expiresAtMs <= Date.now()) throw pax8Errors.unauthorized();
    return { partnerId: entry.partnerId };
  };

  const handleAdmin = async (method: string, path: string, body: unknown): Promise<Reply> => {
    if (path === '/_admin/health') return ok({ status: 'ok' });
    if (path === '/_admin/clock' && method === 'GET') {
      await follow();
      return ok({ now: clock.now().toISOString(), frozen: clock.frozen, following: followUrl ?? null });
    }
    if (path === '/_admin/clock' && method === 'POST') {
      if (followUrl !== undefined)
        return { status: 409, body: { error: `this peer follows ${followUrl}/clock; move that clock` } };
      const input = clockRequestSchema.parse(body ?? {});
      if (input.frozen !== undefined) clock.freeze(input.frozen);
      if (input.set !== undefined) clock.set(new Date(input.set));
      if (input.advanceBy !== undefined) clock.advance(durationInMs(input.advanceBy, clock.now()));
      if (input.advanceByInMs !== undefined) clock.advance(input.advanceByInMs);
      const outcome = await model.processTime();
      return ok({ now: clock.now().toISOString(), frozen: clock.frozen, ...outcome });
    }
    if (path === '/_admin/faults' && method === 'POST') return ok(faults.add(body), 201);
    if (path === '/_admin/faults' && method === 'GET') return ok({ faults: faults.list() });
    if (path === '/_admin/faults' && method === 'DELETE') {
      faults.clear();
      return { status: 204 };
    }
    if (path === '/_admin/provisioning' && method === 'POST') {
      model.provisioning = provisioningSchema.parse(body ?? {});
      return ok(model.provisioning);
    }
    if (path === '/_admin/tokens' && method === 'GET') return ok({ issued: tokensIssued, live: tokens.size });
    if (path === '/_admin/tokens' && method === 'DELETE') {
      // Revokes every token: the next call with one is 401 (a token that died before its expires_in).
      tokens.clear();
      return { status: 204 };
    }
    if (path === '/_admin/tokens' && method === 'POST') {
      const input = z
        .object({ lifetimeInSeconds: z.number().int().positive() })
        .strict()
        .parse(body ?? {});
      tokenLifetimeInSeconds = input.lifetimeInSeconds;
      return ok({ lifetimeInSeconds: tokenLifetimeInSeconds });
    }
    if (path === '/_admin/state' && method === 'GET')
      return ok({ ...model.adminSnapshot(), tokensIssued, requests: Object.fromEntries(requestCounts) });
    throw pax8Errors.routeNotFound(path);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const method = (request.method ?? 'GET').toUpperCase();
    const url = new URL(request.url ?? '/', 'https://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path.startsWith('/_admin')) {
      let reply: Reply;
      try {
        reply = await handleAdmin(method, path, await readBody(request));
      } catch (error) {
        reply = errorReply(error, path);
      }
      send(response, reply);
      return;
    }

    const before = faults.take(['throttle', 'error'], method, path);
    if (before?.kind === 'throttle') {
      // Pax8 documents the 429 but no Retry-After; the peer sends one unless told not to.
      send(response, {
        status: 429,
        headers: before.omitRetryAfter ? {} : { 'retry-after': String(before.retryAfterInSeconds) },
        body: pax8Errors.tooManyRequests().toBody(path),
      });
      return;
    }
    if (before?.kind === 'error') {
      send(response, { status: before.status, body: pax8Errors.server(before.status).toBody(path) });
      return;
    }

    let reply: Reply;
    try {
      const body = await readBody(request).catch((error: unknown) => {
        if (path === '/v1/token') return undefined;
        throw error;
      });
      if (path === '/v1/token') {
        reply = method === 'POST' ? issueToken(body) : errorReply(pax8Errors.methodNotAllowed(method), path);
      } else {
        const caller = authenticate(request.headers.authorization);
        const counted = `${method} ${path}`;
        requestCounts.set(counted, (requestCounts.get(counted) ?? 0) + 1);
        const wait = limiter.hit(caller.partnerId);
        if (wait !== undefined) {
          send(response, {
            status: 429,
            headers: { 'retry-after': String(wait) },
            body: pax8Errors.tooManyRequests().toBody(path),
          });
          return;
        }
        // Provisioning and cancellations that became due happen before the request sees state.
        await follow();
        await model.processTime();
        const found = routes.find((candidate) => candidate.method === method && candidate.pattern.test(path));
        if (found === undefined) {
          throw routes.some((candidate) => candidate.pattern.test(path))
            ? pax8Errors.methodNotAllowed(method)
            : pax8Errors.routeNotFound(path);
        }
        const params = (found.pattern.exec(path) ?? []).slice(1).map((value) => decodeURIComponent(value));
        reply = await found.handler({ caller, params, query: url.searchParams, body });
      }
    } catch (error) {
      reply = errorReply(error, path);
    }

    const after = faults.take(['dropAfterCommit', 'errorAfterCommit'], method, path);
    if (after?.kind === 'dropAfterCommit') {
      request.socket.destroy();
      return;
    }
    if (after?.kind === 'errorAfterCommit') {
      send(response, { status: after.status, body: pax8Errors.server(after.status).toBody(path) });
      return;
    }
    send(response, reply);
  };

  const server = createServer({ ...serverTls() }, (request, response) => {
    handle(request, response).catch((error: unknown) => {
      log(`request failed: ${String(error)}`);
      if (!response.headersSent) response.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  // Due provisioning and cancellations also complete while nobody calls (real time flowing).
  const ticker = setInterval(() => {
    if (clock.frozen && followUrl === undefined) return;
    follow()
      .then(() => model.processTime())
      .catch((error: unknown) => log(`time processing failed: ${String(error)}`));
  }, 1000);
  ticker.unref();
  const { port } = server.address() as AddressInfo;
  const baseUrl = `https://127.0.0.1:${port}`;
  return {
    baseUrl,
    adminUrl: `${baseUrl}/_admin`,
    clock,
    stop: () =>
      new Promise<void>((resolve) => {
        clearInterval(ticker);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type { Seed, SeedInput } from './seed.js';
export type { FaultInput } from './faults.js';
