import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { pcErrors } from './errors.js';

export const partnerCenterAudience = 'https://api.partnercenter.microsoft.com';
const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface Caller {
  tenantId: string;
  appId: string;
}

/**
 * Verifies app-only tokens issued by the identity peer: RS256 signature against the tenant's JWKS,
 * issuer `${authorityHost}/${tid}/v2.0`, real-time expiry. A bad or missing token is 401; a good
 * token for another audience is 403 (the caller is known but not allowed here).
 */
export function tokenVerifier(authorityHost: string): (authorization: string | undefined) => Promise<Caller> {
  const authority = authorityHost.replace(/\/+$/, '');
  const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  return async (authorization) => {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    const token = match?.[1];
    if (token === undefined) throw pcErrors.tokenMissing();
    let tid: unknown;
    try {
      tid = decodeJwt(token).tid;
    } catch {
      throw pcErrors.accessDenied401('the token is not a JWT');
    }
    if (typeof tid !== 'string' || !guid.test(tid)) throw pcErrors.accessDenied401('the token has no tenant');
    let keySet = keySets.get(tid);
    if (keySet === undefined) {
      keySet = createRemoteJWKSet(new URL(`${authority}/${tid}/discovery/v2.0/keys`));
      keySets.set(tid, keySet);
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer: `${authority}/${tid}/v2.0`,
        algorithms: ['RS256'],
      }));
    } catch (error) {
      throw pcErrors.accessDenied401(error instanceof Error ? error.message : 'token verification failed');
    }
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.includes(partnerCenterAudience))
      throw pcErrors.accessDenied403('the token is not for Partner Center');
    const appId =
      typeof payload.appid === 'string'
        ? payload.appid
        : typeof payload.azp === 'string'
          ? payload.azp
          : undefined;
    if (appId === undefined) throw pcErrors.accessDenied401('the token names no application');
    return { tenantId: tid.toLowerCase(), appId: appId.toLowerCase() };
  };
}
