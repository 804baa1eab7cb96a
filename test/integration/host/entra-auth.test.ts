import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { ClientSecretCredential } from '@azure/identity';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { definitions } from '../../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import { serverTls } from '../../../dev/tls.js';
import { callerAppRole } from '../../../shared/adapters/entra-auth/token-verifier.js';
import { createComposition, type AppDeps } from '../../../shared/composition.js';
import { loadSettings } from '../../../shared/config.js';
import { quietLogger } from '../../support/stack.js';

/**
 * The Azure caller path: an Entra ID app-only token for our API carrying our app role, verified against
 * the tenant's published keys, mapped to a provider by the calling app's id.
 *
 * Two authorities. The identity peer issues real client-credentials tokens, but knows only the Graph and
 * Partner Center resources and puts an app's seeded roles only in Graph tokens, so Graph stands in as
 * "our API" there. Token shapes the peer never issues (delegated tokens with `scp`, other algorithms) are
 * minted by this file with its own RSA key, published as a tenant's JWKS over HTTPS the way Entra
 * publishes it (no `alg` on the key), so the verifier fetches and checks them exactly as in Azure.
 */
const tenantId = randomUUID();
const otherTenantId = randomUUID();
const registeredApp = { clientId: randomUUID(), clientSecret: 'registered-app-secret' };
const rolelessApp = { clientId: randomUUID(), clientSecret: 'roleless-app-secret' };
const strangerApp = { clientId: randomUUID(), clientSecret: 'stranger-app-secret' };
const otherTenantApp = { clientId: randomUUID(), clientSecret: 'other-tenant-secret' };
const peerAudience = 'https://graph.microsoft.com';
const notOurAudience = 'https://api.partnercenter.microsoft.com';

const mintedAudience = 'api://atria-m365-test';
const mintedAppId = randomUUID();
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = 'test-key-1';

let peer: IdentityGraphPeer;
let authority: { server: Server; url: string };
let peerHost: LocalHost;
let mintedHost: LocalHost;
/** Undone newest first, so whatever beforeAll started is stopped even when it failed half way. */
const cleanups: (() => Promise<void>)[] = [];

async function token(
  app: { clientId: string; clientSecret: string },
  scope: string,
  tenant = tenantId,
): Promise<string> {
  const credential = new ClientSecretCredential(tenant, app.clientId, app.clientSecret, {
    authorityHost: peer.authorityHost,
    disableInstanceDiscovery: true,
  });
  const result = await credential.getToken(scope);
  return result.token;
}

/** An access token as Entra issues one for an app-only caller of our API; `overrides` reshape it. */
function minted(
  overrides: Record<string, unknown> = {},
  alg: 'RS256' | 'PS256' | 'HS256' = 'RS256',
  key: KeyObject | Uint8Array = signingKey.privateKey,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    aud: mintedAudience,
    iss: `${authority.url}/${tenantId}/v2.0`,
    iat: now,
    nbf: now,
    exp: now + 3600,
    azp: mintedAppId,
    azpacr: '1',
    idtyp: 'app',
    oid: randomUUID(),
    sub: randomUUID(),
    tid: tenantId,
    roles: [callerAppRole],
    ver: '2.0',
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete claims[name];
    else claims[name] = value;
  }
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', kid }).sign(key);
}

const whoami = (host: LocalHost, bearer: string) =>
  fetch(`${host.url}/whoami`, { headers: { authorization: `Bearer ${bearer}` } });

async function problem(response: Response): Promise<{ code: string; detail: string }> {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return (await response.json()) as { code: string; detail: string };
}

async function startAuthority(): Promise<{ server: Server; url: string }> {
  const jwk = { ...signingKey.publicKey.export({ format: 'jwk' }), kid, use: 'sig' };
  const server = createServer(serverTls(), (req, res) => {
    if (req.url === `/${tenantId}/discovery/v2.0/keys`) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { server, url: `https://127.0.0.1:${address.port}` };
}

async function startHost(
  authorityHost: string,
  audience: string,
): Promise<{ host: LocalHost; app: AppDeps }> {
  const app = createComposition(
    loadSettings({
      LOG_LEVEL: 'error',
      TableStorage: inject('storageConnectionString'),
      Auth__entraTenantId: tenantId,
      Auth__entraAudience: audience,
      Auth__entraAuthorityHost: authorityHost,
    }),
  );
  cleanups.push(() => app.close());
  const host = await startLocalHost({ definitions, deps: app, port: 0, timers: false, log: quietLogger });
  cleanups.push(() => host.stop());
  return { host, app };
}

beforeAll(async () => {
  peer = await startIdentityGraphPeer({
    seed: {
      tenants: [
        {
          id: tenantId,
          displayName: 'Provider tenant',
          domains: [{ id: 'provider.example', isDefault: true }],
        },
        {
          id: otherTenantId,
          displayName: 'Someone else',
          domains: [{ id: 'else.example', isDefault: true }],
        },
      ],
      apps: [
        { ...registeredApp, homeTenantId: tenantId, roles: [callerAppRole] },
        { ...rolelessApp, homeTenantId: tenantId },
        { ...strangerApp, homeTenantId: tenantId, roles: [callerAppRole] },
        { ...otherTenantApp, homeTenantId: otherTenantId, roles: [callerAppRole] },
      ],
    },
  });
  cleanups.push(() => peer.stop());
  authority = await startAuthority();
  const viaPeer = await startHost(peer.authorityHost, peerAudience);
  peerHost = viaPeer.host;
  const viaMinted = await startHost(authority.url, mintedAudience);
  mintedHost = viaMinted.host;
  for (const appId of [registeredApp.clientId, rolelessApp.clientId]) {
    await viaPeer.app.callers.registerEntraApp({
      appId,
      providerId: 'prov-entra',
      customerIds: ['c1'],
      name: 'Atria prod',
    });
  }
  await viaMinted.app.callers.registerEntraApp({
    appId: mintedAppId,
    providerId: 'prov-minted',
    name: 'minted',
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('Entra ID bearer tokens for callers (the Azure path)', () => {
  it("maps a registered app's token with our app role to its provider and customer scope", async () => {
    const response = await whoami(peerHost, await token(registeredApp, `${peerAudience}/.default`));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      kind: 'entraApp',
      callerId: registeredApp.clientId,
      providerId: 'prov-entra',
      customerIds: ['c1'],
    });
  });

  it('refuses a valid token issued for another audience (401)', async () => {
    const response = await whoami(peerHost, await token(registeredApp, `${notOurAudience}/.default`));
    expect(response.status).toBe(401);
    expect((await problem(response)).code).toBe('Unauthenticated');
  });

  it('refuses a registered app whose token lacks our app role (403 naming the role)', async () => {
    const response = await whoami(peerHost, await token(rolelessApp, `${peerAudience}/.default`));
    expect(response.status).toBe(403);
    expect((await problem(response)).detail).toContain(callerAppRole);
  });

  it('refuses a token of an app that is not registered as a caller (403)', async () => {
    const response = await whoami(peerHost, await token(strangerApp, `${peerAudience}/.default`));
    expect(response.status).toBe(403);
  });

  it('refuses a token issued by another tenant, even for our audience (401)', async () => {
    const response = await whoami(
      peerHost,
      await token(otherTenantApp, `${peerAudience}/.default`, otherTenantId),
    );
    expect(response.status).toBe(401);
  });

  it('refuses a tampered token (401)', async () => {
    const good = await token(registeredApp, `${peerAudience}/.default`);
    const [header, payload] = good.split('.');
    const forged = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    forged.azp = strangerApp.clientId;
    const response = await whoami(
      peerHost,
      `${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${good.split('.')[2]}`,
    );
    expect(response.status).toBe(401);
  });
});

describe('Entra ID token shapes the identity peer does not issue (minted with a published test key)', () => {
  it('accepts an app-only RS256 token with our role (the baseline the refusals below differ from)', async () => {
    const response = await whoami(mintedHost, await minted());
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ callerId: mintedAppId, providerId: 'prov-minted' });
  });

  it('refuses a delegated user token (idtyp user, scp) even with our role and a registered app (401)', async () => {
    const response = await whoami(
      mintedHost,
      await minted({ idtyp: 'user', scp: 'user_impersonation', name: 'Ada', upn: 'ada@provider.example' }),
    );
    expect(response.status).toBe(401);
    expect((await problem(response)).detail).toContain('delegated');
  });

  it('refuses a token with scp but no idtyp (a v2 delegated token without the optional claim) (401)', async () => {
    const response = await whoami(mintedHost, await minted({ idtyp: undefined, scp: 'access_as_user' }));
    expect(response.status).toBe(401);
  });

  it('refuses a token signed with the tenant key in another algorithm (PS256, HS256 over the public key) (401)', async () => {
    const publicPem = signingKey.publicKey.export({ format: 'pem', type: 'spki' });
    for (const bearer of [
      await minted({}, 'PS256'),
      await minted({}, 'HS256', new TextEncoder().encode(String(publicPem))),
    ]) {
      const response = await whoami(mintedHost, bearer);
      expect(response.status).toBe(401);
      expect((await problem(response)).code).toBe('Unauthenticated');
    }
  });

  it("refuses a token whose tid is another tenant's under our issuer (401)", async () => {
    const response = await whoami(mintedHost, await minted({ tid: otherTenantId }));
    expect(response.status).toBe(401);
  });

  it('refuses an app-only token without roles (403)', async () => {
    const response = await whoami(mintedHost, await minted({ roles: undefined }));
    expect(response.status).toBe(403);
  });
});
