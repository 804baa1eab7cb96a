import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ZodError, z } from 'zod';
import { serverTls } from '../../tls.js';
import { tokenVerifier, type Caller } from './auth.js';
import { VirtualClock, clockRequestSchema, durationInMs } from './clock.js';
import { PcError, pcErrors } from './errors.js';
import { FaultBook, RateLimiter, limitsSchema } from './faults.js';
import { graphAdminClient, type GraphTenantSync } from './graph-sync.js';
import { PartnerCenterModel } from './model.js';
import { loadSeed, type SeedInput } from './seed.js';

export interface PartnerCenterPeerOptions {
  port?: number;
  seed: SeedInput | string;
  identity: { authorityHost: string };
  /** The identity-graph peer's admin API (`https://127.0.0.1:PORT/_admin`). */
  graphAdminUrl: string;
  /** Replaces the Graph admin client (tests of the peer without a Graph peer). */
  graph?: GraphTenantSync;
  log?: (message: string) => void;
}

export interface PartnerCenterPeer {
  baseUrl: string;
  adminUrl: string;
  stop(): Promise<void>;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Not remembered for MS-RequestId replay (a checkout with orderErrors can be re-attempted). */
  incomplete?: boolean;
}

type Handler = (context: {
  caller: Caller;
  params: string[];
  query: URLSearchParams;
  body: unknown;
  headers: IncomingMessage['headers'];
}) => Promise<Reply> | Reply;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

const segment = '([^/]+)';
const customerFilterSchema = z.object({
  Field: z.enum(['IndirectReseller', 'CompanyName', 'Domain']),
  Value: z.string(),
  Operator: z.literal('starts_with').optional(),
});
const mutating = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function header(headers: IncomingMessage['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw pcErrors.invalidInput('the body is not valid JSON');
  }
}

/** Starts the local Partner Center: HTTPS REST API under `/v1`, admin API under `/_admin`. */
export async function startPartnerCenterPeer(options: PartnerCenterPeerOptions): Promise<PartnerCenterPeer> {
  const seed = await loadSeed(options.seed);
  const log = options.log ?? ((message: string) => console.error(`[partner-center] ${message}`));
  const clock = new VirtualClock({
    ...(seed.clock.start === undefined ? {} : { start: new Date(seed.clock.start) }),
    frozen: seed.clock.frozen,
  });
  const model = new PartnerCenterModel({
    seed,
    clock,
    graph: options.graph ?? graphAdminClient(options.graphAdminUrl),
    log,
  });
  await model.init();
  const verify = tokenVerifier(options.identity.authorityHost);
  const faults = new FaultBook();
  const subscriptionLimiter = new RateLimiter(seed.limits.subscriptionRequestsPerMinute);
  const partnerLimiter = new RateLimiter(seed.limits.partnerRequestsPerMinute);
  /** MS-RequestId → the first successful reply; in-flight duplicates wait for it. */
  const idempotent = new Map<string, Promise<Reply>>();

  const routes: Route[] = [];
  const route = (method: string, path: string, handler: Handler): void => {
    routes.push({ method, pattern: new RegExp(`^${path.replaceAll('{}', segment)}/?$`, 'i'), handler });
  };
  const ok = (body: unknown, status = 200): Reply => ({ status, body });

  route('HEAD', '/v1/domains/{}', ({ params }) => ({
    status: model.domainExists(params[0] ?? '') ? 200 : 404,
  }));
  // validate-an-address.md
  route('POST', '/v1/validations/address', ({ body }) => ok(model.validateAddress(body)));
  // get-customer-agreement-metadata.md
  route('GET', '/v1/agreements', ({ query }) =>
    ok(model.listAgreementMetadata(query.get('agreementType') ?? undefined)),
  );
  route('POST', '/v1/customers', async ({ caller, body }) =>
    ok(await model.createCustomer(caller.tenantId, body), 201),
  );
  route('GET', '/v1/customers', ({ caller, query, headers }) => {
    // get-a-customer-by-name.md prints `size=0` with a filter; the peer reads 0 as its default.
    const size = Number(query.get('size') ?? '100') || 100;
    if (!Number.isInteger(size) || size < 1 || size > 500)
      throw pcErrors.invalidInput('size must be 1 to 500');
    let filter: { field: 'IndirectReseller' | 'CompanyName' | 'Domain'; value: string } | undefined;
    const rawFilter = query.get('filter');
    if (rawFilter !== null) {
      // get-a-customer-by-name.md: {"Field": CustomerSearchField, "Value", "Operator": "starts_with"}.
      const parsed = customerFilterSchema.safeParse(
        (() => {
          try {
            return JSON.parse(rawFilter) as unknown;
          } catch {
            return undefined;
          }
        })(),
      );
      if (!parsed.success)
        throw pcErrors.invalidInput(
          'filter must be {"Field":"CompanyName"|"Domain"|"IndirectReseller","Value":"…","Operator":"starts_with"}',
        );
      filter = { field: parsed.data.Field, value: parsed.data.Value };
    }
    return ok(
      model.listCustomers(caller.tenantId, {
        size,
        continuationToken: header(headers, 'ms-continuationtoken'),
        filter,
      }),
    );
  });
  route('GET', '/v1/customers/{}', ({ caller, params }) =>
    ok(model.getCustomer(caller.tenantId, params[0] ?? '')),
  );
  route('POST', '/v1/customers/{}/agreements', ({ caller, params, body }) =>
    ok(model.createAgreement(caller.tenantId, params[0] ?? '', body), 201),
  );
  route('GET', '/v1/customers/{}/agreements', ({ caller, params, query }) =>
    ok(model.listAgreements(caller.tenantId, params[0] ?? '', query.get('agreementType') ?? undefined)),
  );
  route('GET', '/v1/relationships', ({ caller, query }) =>
    ok(model.listRelationships(caller.tenantId, query.get('relationship_type') ?? undefined)),
  );
  // get-a-list-of-products.md, get-a-product-by-id.md, get-a-list-of-skus-for-a-product.md,
  // get-a-sku-by-id.md, get-a-list-of-availabilities-for-a-sku.md, get-an-availability-by-id.md
  route('GET', '/v1/products', ({ query }) =>
    ok(model.listProducts(query.get('country'), query.get('targetView'))),
  );
  route('GET', '/v1/products/{}', ({ params, query }) =>
    ok(model.getProduct(params[0] ?? '', query.get('country'))),
  );
  route('GET', '/v1/products/{}/skus', ({ params, query }) =>
    ok(model.listSkus(params[0] ?? '', query.get('country'))),
  );
  route('GET', '/v1/products/{}/skus/{}', ({ params, query }) =>
    ok(model.getSku(params[0] ?? '', params[1] ?? '', query.get('country'))),
  );
  route('GET', '/v1/products/{}/skus/{}/availabilities', ({ params, query }) =>
    ok(model.listAvailabilities(params[0] ?? '', params[1] ?? '', query.get('country'))),
  );
  route('GET', '/v1/products/{}/skus/{}/availabilities/{}', ({ params, query }) =>
    ok(model.getAvailability(params[0] ?? '', params[1] ?? '', params[2] ?? '', query.get('country'))),
  );
  route('POST', '/v1/customers/{}/carts', ({ caller, params, body }) =>
    ok(model.createCart(caller.tenantId, params[0] ?? '', body), 201),
  );
  route('GET', '/v1/customers/{}/carts/{}', ({ caller, params }) =>
    ok(model.getCart(caller.tenantId, params[0] ?? '', params[1] ?? '')),
  );
  route('PUT', '/v1/customers/{}/carts/{}', ({ caller, params, body }) =>
    ok(model.updateCart(caller.tenantId, params[0] ?? '', params[1] ?? '', body)),
  );
  route('POST', '/v1/customers/{}/carts/{}/checkout', async ({ caller, params }) => {
    const customerId = (params[0] ?? '').toLowerCase();
    const fault = faults.take(['orderError'], {
      method: 'POST',
      path: `/v1/customers/${customerId}/carts/${params[1] ?? ''}/checkout`,
      partnerTenantId: caller.tenantId,
      customerId,
    });
    const failure =
      fault === undefined
        ? undefined
        : { groups: fault.groups, code: fault.code, description: fault.description };
    const asynchronous = faults.take(['asyncProvisioning'], {
      method: 'POST',
      path: `/v1/customers/${customerId}/carts/${params[1] ?? ''}/checkout`,
      partnerTenantId: caller.tenantId,
      customerId,
    });
    const result = await model.checkout(
      caller.tenantId,
      params[0] ?? '',
      params[1] ?? '',
      failure,
      asynchronous?.delay,
    );
    // A partly failed checkout is not a final answer: the same MS-RequestId may re-attempt it.
    return {
      status: 201,
      body: result,
      incomplete: Array.isArray(result.orderErrors) && result.orderErrors.length > 0,
    };
  });
  route('GET', '/v1/customers/{}/orders', ({ caller, params }) =>
    ok(model.listOrders(caller.tenantId, params[0] ?? '')),
  );
  route('GET', '/v1/customers/{}/orders/{}', ({ caller, params }) =>
    ok(model.getOrder(caller.tenantId, params[0] ?? '', params[1] ?? '')),
  );
  route('GET', '/v1/customers/{}/orders/{}/provisioningstatus', ({ caller, params }) =>
    ok(model.getOrderProvisioningStatus(caller.tenantId, params[0] ?? '', params[1] ?? '')),
  );
  route('GET', '/v1/customers/{}/subscriptions', ({ caller, params }) =>
    ok(model.listSubscriptions(caller.tenantId, params[0] ?? '')),
  );
  route('GET', '/v1/customers/{}/subscriptions/{}', ({ caller, params }) =>
    ok(model.getSubscription(caller.tenantId, params[0] ?? '', params[1] ?? '')),
  );
  route('PATCH', '/v1/customers/{}/subscriptions/{}', async ({ caller, params, body, headers }) => {
    const customerId = (params[0] ?? '').toLowerCase();
    const subscriptionId = (params[1] ?? '').toLowerCase();
    const slow = faults.take(['slowPatch'], {
      method: 'PATCH',
      path: `/v1/customers/${customerId}/subscriptions/${subscriptionId}`,
      partnerTenantId: caller.tenantId,
      customerId,
    });
    const result = await model.patchSubscription(
      caller.tenantId,
      customerId,
      subscriptionId,
      body,
      header(headers, 'if-match'),
      slow?.delay,
    );
    // change-the-quantity-of-a-subscription.md: 202 with a Location header pointing at the subscription.
    return result.accepted
      ? {
          status: 202,
          body: result.json,
          headers: { location: `/v1/customers/${customerId}/subscriptions/${subscriptionId}` },
        }
      : ok(result.json);
  });

  const send = (response: ServerResponse, reply: Reply, echo: Record<string, string>): void => {
    const headers: Record<string, string> = { ...echo, ...reply.headers };
    if (reply.body === undefined) {
      response.writeHead(reply.status, headers).end();
      return;
    }
    const text = JSON.stringify(reply.body);
    response
      .writeHead(reply.status, {
        ...headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(text)),
      })
      .end(text);
  };

  const errorReply = (error: unknown): Reply => {
    if (error instanceof PcError) return { status: error.status, body: error.toBody() };
    if (error instanceof ZodError)
      return { status: 400, body: pcErrors.invalidInput(error.message).toBody() };
    log(`unexpected: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return { status: 500, body: pcErrors.unexpected().toBody() };
  };

  const handleAdmin = async (method: string, path: string, body: unknown): Promise<Reply> => {
    if (path === '/_admin/health') return ok({ status: 'ok' });
    if (path === '/_admin/clock' && method === 'GET')
      return ok({ now: clock.now().toISOString(), frozen: clock.frozen });
    if (path === '/_admin/clock' && method === 'POST') {
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
    if (path === '/_admin/limits' && method === 'POST') {
      const input = limitsSchema.parse(body ?? {});
      if (input.subscriptionRequestsPerMinute !== undefined)
        subscriptionLimiter.limitPerMinute = input.subscriptionRequestsPerMinute;
      if (input.partnerRequestsPerMinute !== undefined)
        partnerLimiter.limitPerMinute = input.partnerRequestsPerMinute;
      return ok({
        subscriptionRequestsPerMinute: subscriptionLimiter.limitPerMinute,
        partnerRequestsPerMinute: partnerLimiter.limitPerMinute,
      });
    }
    if (path === '/_admin/state' && method === 'GET') return ok(model.adminSnapshot());
    // Test hook: Partner Center no longer remembers earlier MS-RequestIds (e.g. a retry days later).
    if (path === '/_admin/idempotency' && method === 'DELETE') {
      idempotent.clear();
      return { status: 204 };
    }
    if (path === '/_admin/catalog/rotate-availability' && method === 'POST')
      return ok(model.adminRotateAvailability(body));
    if (path === '/_admin/addresses' && method === 'POST') {
      model.adminScriptAddress(body);
      return { status: 204 };
    }
    const subscription = /^\/_admin\/subscriptions\/([^/]+)$/.exec(path);
    if (subscription?.[1] !== undefined && method === 'POST') {
      const input = body as { updateCount?: unknown } | undefined;
      if (typeof input?.updateCount !== 'number') throw pcErrors.invalidInput('updateCount is required');
      model.adminSetUpdateCount(subscription[1], input.updateCount);
      return { status: 204 };
    }
    throw pcErrors.notFound(`admin route ${method} ${path}`);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const method = (request.method ?? 'GET').toUpperCase();
    const url = new URL(request.url ?? '/', 'https://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const requestId = header(request.headers, 'ms-requestid');
    const echo = {
      'ms-requestid': requestId ?? randomUUID(),
      'ms-correlationid': header(request.headers, 'ms-correlationid') ?? randomUUID(),
      'ms-cv': randomUUID().slice(0, 16),
    };
    if (path.startsWith('/_admin')) {
      let reply: Reply;
      try {
        reply = await handleAdmin(method, path, await readBody(request));
      } catch (error) {
        reply = errorReply(error);
      }
      send(response, reply, echo);
      return;
    }

    let caller: Caller;
    let body: unknown;
    try {
      caller = await verify(header(request.headers, 'authorization'));
      const partner = model.partner(caller.tenantId);
      if (partner === undefined) throw pcErrors.accessDenied403('the token is not from a partner tenant');
      if (!partner.appIds.has(caller.appId))
        throw pcErrors.accessDenied403('the application is not registered for this partner');
      body = await readBody(request);
    } catch (error) {
      send(response, errorReply(error), echo);
      return;
    }
    const customerId = /^\/v1\/customers\/([^/]+)/i.exec(path)?.[1]?.toLowerCase();
    const facts = { method, path, partnerTenantId: caller.tenantId, customerId };

    const throttled = (seconds: number): Reply => ({
      status: 429,
      headers: { 'retry-after': String(seconds) },
      body: { statusCode: 429, message: `Rate limit is exceeded. Try again in ${seconds} seconds.` },
    });
    const before = faults.take(['throttle', 'error'], facts);
    if (before?.kind === 'throttle') {
      send(response, throttled(before.retryAfterInSeconds), echo);
      return;
    }
    const wait =
      partnerLimiter.hit(caller.tenantId) ??
      (customerId !== undefined && /\/subscriptions(\/|$)/i.test(path)
        ? subscriptionLimiter.hit(`${caller.tenantId}|${customerId}`)
        : undefined);
    if (wait !== undefined) {
      send(response, throttled(wait), echo);
      return;
    }
    if (before?.kind === 'error') {
      send(
        response,
        {
          status: before.status,
          body: new PcError(before.status, 800003, 'Unexpected service error').toBody(),
        },
        echo,
      );
      return;
    }

    const run = async (): Promise<Reply> => {
      try {
        // Renewals and expiries that became due while real time flowed happen before the request sees state.
        await model.processTime();
        const found = routes.find((candidate) => candidate.method === method && candidate.pattern.test(path));
        if (found === undefined) {
          const known = routes.some((candidate) => candidate.pattern.test(path));
          throw known
            ? new PcError(405, 0, `Method ${method} is not allowed`)
            : pcErrors.notFound(`Resource ${path}`);
        }
        const params = (found.pattern.exec(path) ?? []).slice(1).map((value) => decodeURIComponent(value));
        return await found.handler({
          caller,
          params,
          query: url.searchParams,
          body,
          headers: request.headers,
        });
      } catch (error) {
        return errorReply(error);
      }
    };

    let reply: Reply;
    if (mutating.has(method) && requestId !== undefined) {
      // A retried request with the same MS-RequestId gets the first result and never acts twice.
      const key = `${caller.tenantId}|${requestId.toLowerCase()}|${method}|${path.toLowerCase()}`;
      const existing = idempotent.get(key);
      if (existing !== undefined) {
        reply = await existing;
      } else {
        const pending = run();
        idempotent.set(key, pending);
        reply = await pending;
        // Only effects are remembered: a refused request left nothing behind and may be retried.
        if (reply.status >= 300 || reply.incomplete === true) idempotent.delete(key);
      }
    } else {
      reply = await run();
    }

    const after = faults.take(['dropAfterCommit', 'stallAfterCommit'], facts);
    if (after?.kind === 'dropAfterCommit') {
      request.socket.destroy();
      return;
    }
    if (after?.kind === 'stallAfterCommit')
      await new Promise((resolve) => setTimeout(resolve, after.stallInMs));
    if (!response.destroyed) send(response, reply, echo);
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
  const { port } = server.address() as AddressInfo;
  const baseUrl = `https://127.0.0.1:${port}`;
  return {
    baseUrl,
    adminUrl: `${baseUrl}/_admin`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type { Seed, SeedInput } from './seed.js';
