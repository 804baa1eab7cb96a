import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serverTls } from '../../tls.js';
import { handleAdmin } from './admin.js';
import { Faults } from './faults.js';
import type { GraphContext } from './graph/context.js';
import { handleGraph } from './graph/router.js';
import {
  graphResource,
  issueToken,
  openIdConfiguration,
  tenantNotFound,
  TokenSigner,
  verifyAccessToken,
} from './identity.js';
import { createSignIn, type SignInResponse, type SignInSeed } from './signin.js';
import { loadSeed, type Seed } from './seed.js';
import { DirectoryState, VirtualClock } from './state.js';

export type { Seed } from './seed.js';
export type { SignInSeed } from './signin.js';

export interface IdentityGraphPeerOptions {
  /** 0 or unset: the OS picks a free port. */
  port?: number;
  /** A seed object or the path of a seed JSON file. */
  seed?: Seed | string;
  /** Users who can sign in to single-page apps (auth code + PKCE), and the APIs they get tokens for. */
  signIn?: SignInSeed;
}

export interface IdentityGraphPeer {
  port: number;
  /** https://127.0.0.1:PORT — pass as `authorityHost` to @azure/identity credentials. */
  authorityHost: string;
  /** https://127.0.0.1:PORT/v1.0 */
  graphBaseUrl: string;
  /** https://127.0.0.1:PORT/_admin */
  adminUrl: string;
  stop(): Promise<void>;
}

const maxBodyBytes = 4 * 1024 * 1024;

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > maxBodyBytes) throw new BodyTooLarge();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (body === undefined || status === 204) {
    res.writeHead(status);
    res.end();
    return;
  }
  if (typeof body === 'string') {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(body);
    return;
  }
  const odata = headers['odata-version'] !== undefined;
  res.writeHead(status, {
    'Content-Type': odata
      ? 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8'
      : 'application/json; charset=utf-8',
  });
  res.end(JSON.stringify(body));
}

/**
 * One HTTPS server that plays the Microsoft identity platform (v2.0 OIDC metadata, JWKS, client-credentials
 * token endpoint), Microsoft Graph v1.0 for many tenants, and a loopback admin API to shape them.
 */
export async function startIdentityGraphPeer(
  options: IdentityGraphPeerOptions = {},
): Promise<IdentityGraphPeer> {
  const seed = loadSeed(options.seed);
  const clock = new VirtualClock();
  const state = new DirectoryState(clock);
  const faults = new Faults();
  const signer = await TokenSigner.create();
  const reseed = (): void => {
    state.reset();
    faults.reset();
    clock.reset();
    for (const tenant of seed.tenants) state.addTenant(structuredClone(tenant));
    for (const app of seed.apps) state.addApp(structuredClone(app));
  };
  reseed();
  let authorityHost = '';
  const signIn =
    options.signIn === undefined
      ? undefined
      : createSignIn({
          seed: options.signIn,
          signer,
          authorityHost: () => authorityHost,
          nowMs: () => clock.nowMs(),
        });
  const sendSignIn = (res: ServerResponse, answer: SignInResponse, headers: Record<string, string>): void => {
    if (answer.html !== undefined) {
      for (const [k, v] of Object.entries({ ...headers, ...answer.headers })) res.setHeader(k, v);
      res.writeHead(answer.status, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(answer.html);
      return;
    }
    send(res, answer.status, answer.body, { ...headers, ...answer.headers });
  };
  let graphBaseUrl = '';

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const segments = url.pathname
      .split('/')
      .filter((s) => s.length > 0)
      .map((s) => decodeURIComponent(s));
    const method = (req.method ?? 'GET').toUpperCase();
    const requestId = randomUUID();
    const clientRequestIdHeader = req.headers['client-request-id'];
    const clientRequestId = typeof clientRequestIdHeader === 'string' ? clientRequestIdHeader : requestId;
    const common = {
      'request-id': requestId,
      'client-request-id': clientRequestId,
      'x-ms-ags-diagnostic': '{"ServerInfo":{"DataCenter":"Local Peer"}}',
    };
    const raw = await readBody(req);
    const contentType = req.headers['content-type'] ?? '';

    if (segments[0] === '_admin') {
      let body: unknown;
      try {
        body = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
      } catch {
        send(res, 400, { error: { code: 'BadRequest', message: 'Body is not JSON.' } }, common);
        return;
      }
      const result = handleAdmin({ state, faults, reseed }, method, segments.slice(1), body);
      send(res, result.status, result.body, common);
      return;
    }

    if (segments[0] === 'v1.0') {
      await serveGraph(
        req,
        res,
        segments.slice(1),
        url,
        method,
        raw,
        contentType,
        requestId,
        clientRequestId,
        common,
      );
      return;
    }

    // Identity: /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/discovery/v2.0/keys, /{tenant}/oauth2/v2.0/token
    const [tenantSegment, ...rest] = segments;
    const path = rest.join('/');
    const identityHeaders = {
      ...common,
      'x-ms-request-id': requestId,
      'Cache-Control': 'no-store, no-cache',
    };
    if (tenantSegment !== undefined && path === 'v2.0/.well-known/openid-configuration' && method === 'GET') {
      const tenant = state.resolveTenant(tenantSegment);
      if (tenant === undefined) {
        const failure = tenantNotFound(tenantSegment);
        send(res, failure.status, failure.body, identityHeaders);
        return;
      }
      send(res, 200, openIdConfiguration(authorityHost, tenant, tenantSegment), identityHeaders);
      return;
    }
    if (tenantSegment !== undefined && path === 'discovery/v2.0/keys' && method === 'GET') {
      send(res, 200, { keys: [signer.jwk] }, identityHeaders);
      return;
    }
    if (signIn !== undefined && tenantSegment !== undefined && path === 'oauth2/v2.0/authorize') {
      const tenant = state.resolveTenant(tenantSegment);
      if (tenant === undefined) {
        const failure = tenantNotFound(tenantSegment);
        send(res, failure.status, failure.body, identityHeaders);
        return;
      }
      const answer =
        method === 'POST'
          ? signIn.signIn(tenant.id, new URLSearchParams(raw.toString('utf8')))
          : signIn.authorize(tenant.id, url.searchParams);
      sendSignIn(res, answer, identityHeaders);
      return;
    }
    if (tenantSegment !== undefined && path === 'oauth2/v2.0/token' && method === 'POST') {
      const form = new URLSearchParams(
        contentType.includes('application/x-www-form-urlencoded') ? raw.toString('utf8') : '',
      );
      const tenant = state.resolveTenant(tenantSegment);
      const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
      const redeemed =
        signIn === undefined || tenant === undefined
          ? undefined
          : await signIn.redeem(tenant.id, form, origin);
      if (redeemed !== undefined) {
        sendSignIn(res, redeemed, identityHeaders);
        return;
      }
      const authorization = req.headers.authorization;
      let basic: { clientId: string; secret: string } | undefined;
      if (authorization?.startsWith('Basic ') === true) {
        const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        basic = {
          clientId: decodeURIComponent(decoded.slice(0, colon)),
          secret: decodeURIComponent(decoded.slice(colon + 1)),
        };
      }
      const result = await issueToken({ state, signer, authorityHost, tenantSegment, form, basic });
      send(res, result.status, result.body, identityHeaders);
      return;
    }
    send(
      res,
      404,
      { error: 'not_found', error_description: `No route for ${method} ${url.pathname}` },
      identityHeaders,
    );
  };

  const serveGraph = async (
    req: IncomingMessage,
    res: ServerResponse,
    segments: string[],
    url: URL,
    method: string,
    raw: Buffer,
    contentType: string,
    requestId: string,
    clientRequestId: string,
    common: Record<string, string>,
  ): Promise<void> => {
    const headers = { ...common, 'odata-version': '4.0' };
    const errorBody = (code: string, message: string): unknown => ({
      error: {
        code,
        message,
        innerError: {
          date: new Date().toISOString().replace(/\.\d+Z$/, ''),
          'request-id': requestId,
          'client-request-id': clientRequestId,
        },
      },
    });
    const authorization = req.headers.authorization;
    if (authorization === undefined || !authorization.startsWith('Bearer ')) {
      send(res, 401, errorBody('InvalidAuthenticationToken', 'Access token is empty.'), {
        ...headers,
        'WWW-Authenticate': 'Bearer realm=""',
      });
      return;
    }
    const verified = await verifyAccessToken(
      authorization.slice(7),
      signer,
      authorityHost,
      graphResource,
      clock.nowMs(),
    );
    if (typeof verified === 'string') {
      send(res, 401, errorBody('InvalidAuthenticationToken', verified), {
        ...headers,
        'WWW-Authenticate': `Bearer error="invalid_token", error_description="${verified}"`,
      });
      return;
    }
    const tenant = state.tenants.get(verified.tenantId);
    if (tenant === undefined) {
      send(
        res,
        401,
        errorBody('InvalidAuthenticationToken', 'The tenant of the token does not exist.'),
        headers,
      );
      return;
    }
    let body: unknown;
    if (raw.length > 0) {
      if (!contentType.includes('json')) {
        send(res, 415, errorBody('UnsupportedMediaType', 'Content-Type must be application/json.'), headers);
        return;
      }
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        send(
          res,
          400,
          errorBody(
            'BadRequest',
            'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
          ),
          headers,
        );
        return;
      }
    }
    const lowerHeaders: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers))
      lowerHeaders[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
    const ctx: GraphContext = {
      state,
      tenant,
      token: verified,
      faults,
      graphBaseUrl,
      requestId,
      clientRequestId,
      inBatch: false,
    };
    const result = handleGraph(ctx, {
      method,
      segments,
      query: url.searchParams,
      headers: lowerHeaders,
      body,
      rawQuery: url.search.replace(/^\?/, ''),
    });
    send(res, result.status, result.body, { ...headers, ...result.headers });
  };

  const server: Server = createServer(serverTls(), (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof BodyTooLarge) {
        send(res, 413, {
          error: { code: 'RequestEntityTooLarge', message: 'The request body is larger than 4 MiB.' },
        });
        return;
      }
      console.error('identity-graph peer: unhandled error', error);
      if (!res.headersSent)
        send(res, 500, { error: { code: 'InternalServerError', message: 'Peer failure.' } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('identity-graph peer: no address');
  const port = address.port;
  authorityHost = `https://127.0.0.1:${port}`;
  graphBaseUrl = `${authorityHost}/v1.0`;
  return {
    port,
    authorityHost,
    graphBaseUrl,
    adminUrl: `${authorityHost}/_admin`,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error === undefined ? resolve() : reject(error)));
      }),
  };
}
