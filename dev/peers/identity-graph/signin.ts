import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { TokenSigner } from './identity.js';

/**
 * User sign-in for single-page apps: the authorization code flow with PKCE of the Microsoft identity
 * platform v2.0, as far as a browser console needs it.
 *
 * - GET  /{tenant}/oauth2/v2.0/authorize?client_id&response_type=code&redirect_uri&scope&state
 *   &code_challenge&code_challenge_method=S256[&login_hint] → a sign-in page; POST of that page with the
 *   user's name and password → 302 to `redirect_uri?code=…&state=…`
 *   (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code).
 * - POST /{tenant}/oauth2/v2.0/token grant_type=authorization_code&client_id&code&redirect_uri
 *   &code_verifier&scope → an access token for the API named by the scope (`{identifierUri}/{scope}`),
 *   delegated: `scp` = the granted scopes, `roles` = the app roles the user is assigned on that API,
 *   `oid`/`sub` the user, `azp` the SPA (`azpacr` 0: a public client sends no secret).
 *   A SPA redirect URI must be redeemed cross-origin: without an `Origin` header Entra answers
 *   AADSTS9002327; the answer carries `Access-Control-Allow-Origin` for that origin.
 * Codes live 10 minutes and are single use (a second redemption is invalid_grant, AADSTS54005); the
 * verifier must hash (SHA-256, base64url) to the challenge (AADSTS501481); PKCE is required for SPAs.
 * Only S256 is accepted here (`plain` is allowed by the platform but never used by MSAL.js).
 */
export const signInSeedSchema = z.object({
  /** Web APIs that expose delegated scopes (an app registration's "Expose an API"). */
  apis: z.array(
    z.object({
      tenantId: z.string(),
      appId: z.string(),
      identifierUri: z.string(),
      scopes: z.array(z.string().min(1)),
    }),
  ),
  /** Single-page app registrations (public clients) and their SPA redirect URIs. */
  spas: z.array(z.object({ tenantId: z.string(), clientId: z.string(), redirectUris: z.array(z.url()) })),
  /** Users who can sign in, with the app roles they are assigned per API (by the API's appId). */
  users: z.array(
    z.object({
      tenantId: z.string(),
      userPrincipalName: z.string(),
      password: z.string().min(1),
      objectId: z.string().optional(),
      appRoles: z.array(z.object({ appId: z.string(), value: z.string() })).default([]),
    }),
  ),
});
export type SignInSeed = z.input<typeof signInSeedSchema>;

interface IssuedCode {
  tenantId: string;
  clientId: string;
  redirectUri: string;
  challenge: string;
  scopes: string[];
  api: z.infer<typeof signInSeedSchema>['apis'][number];
  user: z.infer<typeof signInSeedSchema>['users'][number] & { objectId: string };
  expiresAtMs: number;
}

export interface SignInResponse {
  status: number;
  body?: unknown;
  html?: string;
  headers?: Record<string, string>;
}

const codeLifetimeInMs = 10 * 60_000;
const tokenLifetimeInSeconds = 3600;

function error(status: number, code: string, aadsts: number, description: string): SignInResponse {
  return {
    status,
    body: { error: code, error_description: `AADSTS${aadsts}: ${description}`, error_codes: [aadsts] },
  };
}

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function createSignIn(input: {
  seed: SignInSeed;
  signer: TokenSigner;
  authorityHost: () => string;
  nowMs: () => number;
}) {
  const seed = signInSeedSchema.parse(input.seed);
  const users = seed.users.map((u) => ({ ...u, objectId: u.objectId ?? randomUUID() }));
  const codes = new Map<string, IssuedCode>();

  /** Checks the authorize request; the client and redirect URI first (an error never redirects to an unknown URI). */
  function check(
    tenantId: string,
    params: URLSearchParams,
  ):
    | { ok: false; response: SignInResponse }
    | { ok: true; spaRedirect: string; scopes: string[]; api: IssuedCode['api'] } {
    const clientId = params.get('client_id') ?? '';
    const spa = seed.spas.find((s) => s.clientId === clientId && s.tenantId === tenantId);
    if (spa === undefined)
      return {
        ok: false,
        response: error(
          400,
          'unauthorized_client',
          700016,
          `Application with identifier '${clientId}' was not found in the directory.`,
        ),
      };
    const redirectUri = params.get('redirect_uri') ?? '';
    if (!spa.redirectUris.includes(redirectUri))
      return {
        ok: false,
        response: error(
          400,
          'invalid_request',
          50011,
          `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'.`,
        ),
      };
    if (params.get('response_type') !== 'code')
      return {
        ok: false,
        response: error(
          400,
          'unsupported_response_type',
          70005,
          "The provided value for the input parameter 'response_type' is not allowed for this request.",
        ),
      };
    if ((params.get('code_challenge') ?? '').length < 43 || params.get('code_challenge_method') !== 'S256')
      return {
        ok: false,
        response: error(
          400,
          'invalid_request',
          9002325,
          'Proof Key for Code Exchange is required for cross-origin authorization code redemption.',
        ),
      };
    const scopes = (params.get('scope') ?? '').split(' ').filter((s) => s.length > 0);
    const apiScopes = scopes.filter((s) => !['openid', 'profile', 'offline_access', 'email'].includes(s));
    const api = seed.apis.find(
      (a) =>
        a.tenantId === tenantId &&
        apiScopes.length > 0 &&
        apiScopes.every((s) => a.scopes.some((x) => s === `${a.identifierUri}/${x}`)),
    );
    if (api === undefined)
      return {
        ok: false,
        response: error(
          400,
          'invalid_scope',
          70011,
          `The provided value for the input parameter 'scope' is not valid: ${apiScopes.join(' ')}.`,
        ),
      };
    return {
      ok: true,
      spaRedirect: redirectUri,
      scopes: apiScopes.map((s) => s.slice(api.identifierUri.length + 1)),
      api,
    };
  }

  function page(params: URLSearchParams, problem?: string): string {
    const hidden = [...params.entries()]
      .filter(([k]) => k !== 'login' && k !== 'passwd')
      .map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`)
      .join('');
    return `<!doctype html><html><head><title>Sign in to your account</title></head><body>
<form method="post" id="signin">${hidden}
<label>Email <input name="login" id="i0116" value="${escape(params.get('login_hint') ?? '')}"></label>
<label>Password <input name="passwd" id="i0118" type="password"></label>
${problem === undefined ? '' : `<p id="passwordError">${escape(problem)}</p>`}
<button type="submit" id="idSIButton9">Sign in</button></form></body></html>`;
  }

  return {
    /** GET /authorize: the sign-in page (or the error, as JSON, when the request is not valid). */
    authorize(tenantId: string, params: URLSearchParams): SignInResponse {
      const checked = check(tenantId, params);
      if (!checked.ok) return checked.response;
      return { status: 200, html: page(params) };
    },

    /** POST /authorize from the sign-in page: 302 to the SPA with a code, or the page again. */
    signIn(tenantId: string, form: URLSearchParams): SignInResponse {
      const checked = check(tenantId, form);
      if (!checked.ok) return checked.response;
      const login = (form.get('login') ?? '').toLowerCase();
      const user = users.find((u) => u.tenantId === tenantId && u.userPrincipalName.toLowerCase() === login);
      if (user === undefined || user.password !== form.get('passwd'))
        return { status: 200, html: page(form, 'Your account or password is incorrect. (AADSTS50126)') };
      const code = randomBytes(32).toString('base64url');
      codes.set(code, {
        tenantId,
        clientId: form.get('client_id') ?? '',
        redirectUri: checked.spaRedirect,
        challenge: form.get('code_challenge') ?? '',
        scopes: checked.scopes,
        api: checked.api,
        user,
        expiresAtMs: input.nowMs() + codeLifetimeInMs,
      });
      const target = new URL(checked.spaRedirect);
      target.searchParams.set('code', code);
      const state = form.get('state');
      if (state !== null) target.searchParams.set('state', state);
      return { status: 302, headers: { location: target.toString() } };
    },

    /** POST /token with grant_type=authorization_code; undefined for any other grant (not ours). */
    async redeem(
      tenantId: string,
      form: URLSearchParams,
      origin: string | undefined,
    ): Promise<SignInResponse | undefined> {
      if (form.get('grant_type') !== 'authorization_code') return undefined;
      const cors: Record<string, string> =
        origin === undefined ? {} : { 'access-control-allow-origin': origin };
      const answer = (r: SignInResponse): SignInResponse => ({ ...r, headers: { ...r.headers, ...cors } });
      const code = form.get('code') ?? '';
      const issued = codes.get(code);
      if (issued === undefined || issued.tenantId !== tenantId || issued.expiresAtMs < input.nowMs())
        return answer(
          error(
            400,
            'invalid_grant',
            70008,
            'The provided authorization code or refresh token has expired due to inactivity.',
          ),
        );
      if (issued.clientId !== form.get('client_id') || issued.redirectUri !== form.get('redirect_uri'))
        return answer(
          error(
            400,
            'invalid_grant',
            50148,
            'The code_verifier does not match the code_challenge or the redirect URI differs from the one in the authorization request.',
          ),
        );
      if (origin === undefined)
        return answer(
          error(
            400,
            'invalid_request',
            9002327,
            "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.",
          ),
        );
      const verifier = form.get('code_verifier') ?? '';
      if (createHash('sha256').update(verifier).digest('base64url') !== issued.challenge)
        return answer(
          error(
            400,
            'invalid_grant',
            501481,
            'The Code_Verifier does not match the code_challenge supplied in the authorization request.',
          ),
        );
      codes.delete(code); // single use
      const now = Math.floor(input.nowMs() / 1000);
      const issuer = `${input.authorityHost()}/${tenantId}/v2.0`;
      const roles = issued.user.appRoles.filter((r) => r.appId === issued.api.appId).map((r) => r.value);
      const accessToken = await input.signer.sign({
        aud: issued.api.appId,
        iss: issuer,
        iat: now,
        nbf: now,
        exp: now + tokenLifetimeInSeconds,
        azp: issued.clientId,
        azpacr: '0',
        name: issued.user.userPrincipalName,
        oid: issued.user.objectId,
        preferred_username: issued.user.userPrincipalName,
        ...(roles.length > 0 ? { roles } : {}),
        scp: issued.scopes.join(' '),
        sub: issued.user.objectId,
        tid: tenantId,
        uti: randomUUID().replace(/-/g, ''),
        ver: '2.0',
      });
      return answer({
        status: 200,
        body: {
          token_type: 'Bearer',
          scope: issued.scopes.map((s) => `${issued.api.identifierUri}/${s}`).join(' '),
          expires_in: tokenLifetimeInSeconds - 1,
          ext_expires_in: tokenLifetimeInSeconds - 1,
          access_token: accessToken,
        },
      });
    },
  };
}
export type SignIn = ReturnType<typeof createSignIn>;
