import { createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import type { TokenVerifier } from '../../ports/token-verifier.js';

/**
 * Verifies Entra ID v2 access tokens issued for our API (audience = our app id URI or client id) by
 * the keys the tenant publishes. App-only callers (client credentials) carry `azp`/`appid`.
 */
const claims = z.object({
  tid: z.string(),
  azp: z.string().optional(),
  appid: z.string().optional(),
});

export function createEntraTokenVerifier(options: {
  authorityHost: string;
  tenantId: string;
  audience: string;
}): TokenVerifier {
  const base = options.authorityHost.replace(/\/$/, '');
  const jwks = createRemoteJWKSet(new URL(`${base}/${options.tenantId}/discovery/v2.0/keys`));
  return {
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, jwks, {
          issuer: `${base}/${options.tenantId}/v2.0`,
          audience: options.audience,
        });
        const parsed = claims.parse(payload);
        const appId = parsed.azp ?? parsed.appid;
        if (appId === undefined)
          throw new AppError('Unauthenticated', 'the token names no calling application');
        return { appId, tenantId: parsed.tid };
      } catch (error) {
        if (error instanceof AppError) throw error;
        if (error instanceof joseErrors.JOSEError || error instanceof z.ZodError) {
          throw new AppError('Unauthenticated', 'the bearer token is not valid for this API');
        }
        throw new AppError('Unavailable', 'could not verify the bearer token', { cause: error });
      }
    },
  };
}
