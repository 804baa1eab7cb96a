import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { definitions } from '../../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import { callerAppRole } from '../../../shared/adapters/entra-auth/token-verifier.js';
import { createComposition, type AppDeps } from '../../../shared/composition.js';
import { loadSettings } from '../../../shared/config.js';
import { quietLogger } from '../../support/stack.js';

/**
 * Entra sign-in for the ops console (the Azure path), over HTTP as the console's script runs it: the
 * authorization code flow with PKCE against the identity peer's authorize and token endpoints
 * (v2-oauth2-auth-code-flow), then the API called with the delegated token. The API accepts it through
 * the token verifier only with the `Atria.Console` scope and the `Atria.Caller` app role assigned to the
 * user, and maps the user's object id to a provider.
 */
const tenantId = randomUUID();
const api = { appId: randomUUID(), identifierUri: 'api://atria-m365-console-test' };
const spa = { clientId: randomUUID(), redirectUri: 'https://console.example/api/console' };
const engineer = { upn: 'ada@provider.example', password: 'Pa55-w0rd!', objectId: randomUUID() };
const roleless = { upn: 'bob@provider.example', password: 'Pa55-w0rd!', objectId: randomUUID() };
const unmapped = { upn: 'eve@provider.example', password: 'Pa55-w0rd!', objectId: randomUUID() };
const providerId = `prov-console-${randomUUID().slice(0, 6)}`;
const scope = `${api.identifierUri}/Atria.Console`;

let peer: IdentityGraphPeer;
let host: LocalHost;
let app: AppDeps;

beforeAll(async () => {
  peer = await startIdentityGraphPeer({
    seed: {
      tenants: [
        { id: tenantId, displayName: 'Provider', domains: [{ id: 'provider.example', isDefault: true }] },
      ],
    },
    signIn: {
      apis: [{ tenantId, appId: api.appId, identifierUri: api.identifierUri, scopes: ['Atria.Console'] }],
      spas: [{ tenantId, clientId: spa.clientId, redirectUris: [spa.redirectUri] }],
      users: [
        {
          tenantId,
          userPrincipalName: engineer.upn,
          password: engineer.password,
          objectId: engineer.objectId,
          appRoles: [{ appId: api.appId, value: callerAppRole }],
        },
        {
          tenantId,
          userPrincipalName: roleless.upn,
          password: roleless.password,
          objectId: roleless.objectId,
        },
        {
          tenantId,
          userPrincipalName: unmapped.upn,
          password: unmapped.password,
          objectId: unmapped.objectId,
          appRoles: [{ appId: api.appId, value: callerAppRole }],
        },
      ],
    },
  });
  app = createComposition(
    loadSettings({
      LOG_LEVEL: 'error',
      TableStorage: inject('storageConnectionString'),
      Auth__entraTenantId: tenantId,
      Auth__entraAudience: api.appId,
      Auth__entraAuthorityHost: peer.authorityHost,
    }),
  );
  host = await startLocalHost({ definitions, deps: app, port: 0, timers: false, log: quietLogger });
  await app.callers.providers.add({ providerId });
  for (const user of [engineer, roleless])
    await app.callers.addEntraUser({ objectId: user.objectId, providerId, name: user.upn });
});

afterAll(async () => {
  await host?.stop();
  await app?.close();
  await peer?.stop();
});

const authorizeUrl = (params: Record<string, string>) =>
  `${peer.authorityHost}/${tenantId}/oauth2/v2.0/authorize?${new URLSearchParams(params).toString()}`;

/** What MSAL.js does: a random verifier, its S256 challenge, the sign-in page, the code, the token. */
async function signIn(
  user: { upn: string; password: string },
  tamper: { verifier?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; code: string; verifier: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomUUID();
  const params = {
    client_id: spa.clientId,
    response_type: 'code',
    redirect_uri: spa.redirectUri,
    scope: `openid profile ${scope}`,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    login_hint: user.upn,
  };
  const page = await fetch(authorizeUrl(params));
  expect(page.status).toBe(200);
  expect(await page.text()).toMatch(/<form method="post"/);
  const posted = await fetch(authorizeUrl(params), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, login: user.upn, passwd: user.password }).toString(),
  });
  expect(posted.status).toBe(302);
  const location = new URL(posted.headers.get('location') ?? '');
  expect(`${location.origin}${location.pathname}`).toBe(spa.redirectUri);
  expect(location.searchParams.get('state')).toBe(state);
  const code = location.searchParams.get('code') ?? '';
  const token = await redeem(code, tamper.verifier ?? verifier);
  return { ...token, code, verifier };
}

async function redeem(code: string, verifier: string, origin: string | null = 'https://console.example') {
  const response = await fetch(`${peer.authorityHost}/${tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(origin === null ? {} : { origin }),
    },
    body: new URLSearchParams({
      client_id: spa.clientId,
      grant_type: 'authorization_code',
      code,
      redirect_uri: spa.redirectUri,
      code_verifier: verifier,
      scope,
    }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const whoami = (token: unknown) =>
  fetch(`${host.url}/whoami`, { headers: { authorization: `Bearer ${String(token)}` } });

describe('console sign-in with Entra (auth code + PKCE)', () => {
  it("signs an engineer in and the API maps the user's delegated token to the provider", async () => {
    const { status, body } = await signIn(engineer);
    expect(status).toBe(200);
    expect(body.scope).toBe(scope);
    const response = await whoami(body.access_token);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      kind: 'entraUser',
      callerId: engineer.objectId,
      providerId,
    });
    // The same token reads the provider's data as any of its credentials would.
    expect(
      (
        await fetch(`${host.url}/customers`, {
          headers: { authorization: `Bearer ${String(body.access_token)}` },
        })
      ).status,
    ).toBe(200);
  });

  it('refuses a wrong verifier, a second redemption, a redemption without Origin and an unregistered redirect URI', async () => {
    const wrong = await signIn(engineer, { verifier: randomBytes(32).toString('base64url') });
    expect(wrong.status).toBe(400);
    expect(String(wrong.body.error_description)).toMatch(/^AADSTS501481/);

    const first = await signIn(engineer);
    expect(first.status).toBe(200);
    const again = await redeem(first.code, first.verifier);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');

    // Redeemed by a server instead of the SPA's browser (no Origin): refused, and the code stays unused.
    const third = await signIn(engineer, { verifier: 'x'.repeat(43) });
    expect(third.status).toBe(400);
    const noOrigin = await redeem(third.code, third.verifier, null);
    expect(noOrigin.status).toBe(400);
    expect(String(noOrigin.body.error_description)).toMatch(/^AADSTS9002327/);
    expect((await redeem(third.code, third.verifier)).status).toBe(200);

    const verifier = randomBytes(32).toString('base64url');
    const sameOrigin = await fetch(
      authorizeUrl({
        client_id: spa.clientId,
        response_type: 'code',
        redirect_uri: 'https://elsewhere.example/cb',
        scope,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }),
    );
    expect(sameOrigin.status).toBe(400);
    expect(String(((await sameOrigin.json()) as Record<string, unknown>).error_description)).toMatch(
      /^AADSTS50011/,
    );
  });

  it('refuses a signed-in user without the Atria.Caller role (403) and one no provider registered (403)', async () => {
    const noRole = await signIn(roleless);
    expect(noRole.status).toBe(200);
    expect((await whoami(noRole.body.access_token)).status).toBe(403);
    const stranger = await signIn(unmapped);
    expect(stranger.status).toBe(200);
    const response = await whoami(stranger.body.access_token);
    expect(response.status).toBe(403);
    expect(((await response.json()) as { detail: string }).detail).toMatch(/not registered as an operator/);
  });

  it('shows a wrong password on the sign-in page again and issues no code', async () => {
    const verifier = randomBytes(32).toString('base64url');
    const params = {
      client_id: spa.clientId,
      response_type: 'code',
      redirect_uri: spa.redirectUri,
      scope,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    };
    const posted = await fetch(authorizeUrl(params), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...params, login: engineer.upn, passwd: 'wrong' }).toString(),
    });
    expect(posted.status).toBe(200);
    expect(await posted.text()).toMatch(/AADSTS50126/);
  });
});
