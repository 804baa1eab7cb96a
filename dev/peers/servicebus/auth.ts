import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AccessRight, SasRule } from './config.js';

/**
 * Service Bus SAS, as the CBS `put-token` carries it:
 * `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64 HMAC-SHA256>&se=<unix s>&skn=<key name>`,
 * signed over `<url-encoded resource>\n<se>` with the key's UTF-8 bytes.
 */
export interface GrantedClaim {
  rights: ReadonlySet<AccessRight>;
  expiresAtMs: number;
}

export class AuthError extends Error {
  constructor(
    message: string,
    readonly statusCode = 401,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/** The path part of an audience or resource URI, lower-cased, without slashes at either end. */
export function resourcePath(uri: string): string {
  let path = uri;
  const scheme = /^[a-z]+:\/\/[^/]*/i.exec(uri);
  if (scheme !== null) path = uri.slice(scheme[0].length);
  return path.replace(/^\/+|\/+$/g, '').toLowerCase();
}

function covers(tokenResource: string, audience: string): boolean {
  return tokenResource === '' || audience === tokenResource || audience.startsWith(`${tokenResource}/`);
}

function signatureMatches(key: string, encodedResource: string, expiry: string, signature: string): boolean {
  const expected = createHmac('sha256', key).update(`${encodedResource}\n${expiry}`).digest();
  let given: Buffer;
  try {
    given = Buffer.from(decodeURIComponent(signature), 'base64');
  } catch {
    return false;
  }
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Verifies a put-token for `audience` and returns the rights it grants there. Throws AuthError (401)
 * for a malformed, expired, unsigned or foreign token, as Service Bus answers the CBS request.
 */
export function verifySasToken(
  token: string,
  audience: string,
  rules: readonly SasRule[],
  nowMs: number,
  /** The queue or topic the audience belongs to (entity-scoped rules apply only there). */
  audienceEntity: string | undefined,
): GrantedClaim {
  const prefix = 'SharedAccessSignature ';
  if (!token.startsWith(prefix))
    throw new AuthError('InvalidSignature: the token is not a SharedAccessSignature.');
  const fields = new Map<string, string>();
  for (const pair of token.slice(prefix.length).split('&')) {
    const separator = pair.indexOf('=');
    if (separator > 0) fields.set(pair.slice(0, separator), pair.slice(separator + 1));
  }
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  const skn = fields.get('skn');
  if (sr === undefined || sig === undefined || se === undefined || skn === undefined) {
    throw new AuthError('InvalidSignature: the token lacks sr, sig, se or skn.');
  }
  const expiresAtMs = Number(se) * 1000;
  if (!Number.isFinite(expiresAtMs)) throw new AuthError('InvalidSignature: se is not a number.');
  if (expiresAtMs <= nowMs)
    throw new AuthError(
      `ExpiredToken: The token is expired. Expiration time: '${new Date(expiresAtMs).toISOString()}'.`,
    );
  const keyName = decodeURIComponent(skn);
  const resource = resourcePath(decodeURIComponent(sr));
  const target = resourcePath(audience);
  if (!covers(resource, target)) {
    throw new AuthError(
      `InvalidAudience: The token audience '${decodeURIComponent(sr)}' does not cover '${audience}'.`,
    );
  }
  const candidates = rules.filter(
    (rule) =>
      rule.keyName === keyName &&
      (rule.entity === undefined ||
        (audienceEntity !== undefined && rule.entity.toLowerCase() === audienceEntity.toLowerCase())),
  );
  const rule = candidates.find((candidate) => signatureMatches(candidate.key, sr, se, sig));
  if (rule === undefined) {
    // Same answer for an unknown key name and a wrong key: nothing to learn from the difference.
    throw new AuthError(`InvalidSignature: The token has an invalid signature. TrackingId:${keyName}`);
  }
  return {
    rights: new Set(rule.rights.includes('Manage') ? ['Manage', 'Send', 'Listen'] : rule.rights),
    expiresAtMs,
  };
}
