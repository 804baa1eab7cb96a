import { createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import type { TokenVerifier } from '../../ports/token-verifier.js';

/**
 * The app role a calling application must hold on our API's app registration: declared in its
 * manifest as `appRoles: [{ value: "Atria.Caller", allowedMemberTypes: ["Application"] }]` and granted
 * to the caller's service principal (admin consent). Entra puts granted app roles in `roles`.
 */
export const callerAppRole = 'Atria.Caller';

/**
 * The delegated scope our API exposes for the ops console ("Expose an API" → `Atria.Console`). A user
 * token is accepted only with this scope and our app role assigned to the user (app roles with
 * allowedMemberTypes User appear in a delegated token's `roles`); the user is then mapped to a provider.
 */
export const consoleScope = 'Atria.Console';

/**
 * Verifies Entra ID v2 access tokens issued for our API by the keys the tenant publishes:
 * - the algorithm is pinned to RS256 (Entra signs access tokens with RS256; its JWKS entries carry no
 *   `alg`, so without a pin a token in another algorithm over the same key would be tried);
 * - issuer, audience and `tid` must be our tenant's and our API's;
 * - only app-only tokens (client credentials) are accepted: `idtyp: app`, and never a `scp` claim,
 *   which only delegated (user) tokens carry;
 * - the token must carry our app role.
 * See https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference (idtyp, scp,
 * roles) and https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens.
 */
const claims = z.object({
  tid: z.string(),
  azp: z.string().optional(),
  appid: z.string().optional(),
  idtyp: z.string().optional(),
  scp: z.unknown().optional(),
  roles: z.array(z.string()).optional(),
  oid: z.string().optional(),
});

export function createEntraTokenVerifier(options: {
  authorityHost: string;
  tenantId: string;
  audience: string;
  /** Defaults to {@link callerAppRole}. */
  requiredRole?: string;
  /** Accept delegated tokens carrying this scope (the console's sign-in); default {@link consoleScope}. */
  delegatedScope?: string;
}): TokenVerifier {
  const base = options.authorityHost.replace(/\/$/, '');
  const jwks = createRemoteJWKSet(new URL(`${base}/${options.tenantId}/discovery/v2.0/keys`));
  const requiredRole = options.requiredRole ?? callerAppRole;
  return {
    async verify(token) {
      let parsed: z.infer<typeof claims>;
      try {
        const { payload } = await jwtVerify(token, jwks, {
          algorithms: ['RS256'],
          issuer: `${base}/${options.tenantId}/v2.0`,
          audience: options.audience,
          requiredClaims: ['exp', 'tid'],
        });
        parsed = claims.parse(payload);
      } catch (error) {
        if (error instanceof joseErrors.JOSEError || error instanceof z.ZodError) {
          throw new AppError('Unauthenticated', 'the bearer token is not valid for this API');
        }
        throw new AppError('Unavailable', 'could not verify the bearer token', { cause: error });
      }
      if (parsed.tid.toLowerCase() !== options.tenantId.toLowerCase())
        throw new AppError('Unauthenticated', 'the bearer token is not valid for this API');
      const scopes = typeof parsed.scp === 'string' ? parsed.scp.split(' ') : [];
      if (parsed.scp !== undefined && scopes.includes(options.delegatedScope ?? consoleScope)) {
        // A signed-in engineer through the console: the user holds our role and is mapped by object id.
        const appId = parsed.azp ?? parsed.appid;
        if (appId === undefined || parsed.oid === undefined)
          throw new AppError('Unauthenticated', 'the token names no calling application or user');
        if (!(parsed.roles ?? []).includes(requiredRole))
          throw new AppError('Forbidden', `the signed-in user is not assigned the app role ${requiredRole}`);
        return { appId, tenantId: parsed.tid, userObjectId: parsed.oid.toLowerCase() };
      }
      if (parsed.scp !== undefined || (parsed.idtyp !== undefined && parsed.idtyp !== 'app')) {
        throw new AppError(
          'Unauthenticated',
          'only app-only tokens (client credentials) are accepted, not a delegated user token',
        );
      }
      const appId = parsed.azp ?? parsed.appid;
      if (appId === undefined)
        throw new AppError('Unauthenticated', 'the token names no calling application');
      if (!(parsed.roles ?? []).includes(requiredRole)) {
        throw new AppError('Forbidden', `the calling application lacks the app role ${requiredRole}`);
      }
      return { appId, tenantId: parsed.tid };
    },
  };
}
