import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import {
  compactVerify,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type JWK,
} from 'jose';
import type { CryptoKey } from 'jose';
import type { AppRecord, DirectoryState, TenantState } from './state.js';

export const graphResource = 'https://graph.microsoft.com';
export const partnerCenterResource = 'https://api.partnercenter.microsoft.com';
const resources = new Set([graphResource, partnerCenterResource]);
const tokenLifetimeInSeconds = 3600;

export interface IdentityResponse {
  status: number;
  body: unknown;
}

/** The RSA key the peer signs access tokens with; its public half is served as JWKS. */
export class TokenSigner {
  private constructor(
    readonly kid: string,
    private readonly privateKey: CryptoKey,
    readonly publicKey: CryptoKey,
    readonly jwk: JWK,
  ) {}

  static async create(): Promise<TokenSigner> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    const kid = createHash('sha256').update(JSON.stringify(jwk)).digest('base64url').slice(0, 27);
    return new TokenSigner(kid, privateKey, publicKey, { ...jwk, kid, use: 'sig', alg: 'RS256' });
  }

  async sign(claims: Record<string, unknown>): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid })
      .sign(this.privateKey);
  }
}

/** AADSTS-shaped error body as the v2.0 token endpoint returns it. */
function aadError(status: number, error: string, code: number, description: string): IdentityResponse {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    },
  };
}

export function tenantNotFound(tenant: string): IdentityResponse {
  return aadError(
    400,
    'invalid_tenant',
    90002,
    `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
  );
}

export function issuerFor(authorityHost: string, tenantId: string): string {
  return `${authorityHost}/${tenantId}/v2.0`;
}

export function openIdConfiguration(authorityHost: string, tenant: TenantState, requested: string): unknown {
  const base = `${authorityHost}/${requested}`;
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: issuerFor(authorityHost, tenant.id),
    request_uri_parameter_supported: false,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid', 'oid', 'roles', 'appid', 'azp'],
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
  };
}

interface CertificateKey {
  sha1: string;
  sha256: string;
  certificate: X509Certificate;
}

function certificateKeys(app: AppRecord): CertificateKey[] {
  return app.certificatesPem.flatMap((pem) => {
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    return blocks.map((block) => {
      const certificate = new X509Certificate(block);
      return {
        certificate,
        sha1: createHash('sha1').update(certificate.raw).digest('base64url'),
        sha256: createHash('sha256').update(certificate.raw).digest('base64url'),
      };
    });
  });
}

/** Verifies a private_key_jwt client assertion (RFC 7523) the way Entra does for certificate credentials. */
async function verifyAssertion(
  assertion: string,
  app: AppRecord,
  tokenEndpoints: string[],
  nowInSeconds: number,
): Promise<IdentityResponse | undefined> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(assertion);
  } catch {
    return aadError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
  }
  const x5t = typeof header.x5t === 'string' ? header.x5t : undefined;
  const x5tS256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
  const match = certificateKeys(app).find((key) => key.sha1 === x5t || key.sha256 === x5tS256);
  if (match === undefined) {
    return aadError(
      401,
      'invalid_client',
      700027,
      `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${x5tS256 ?? x5t ?? ''}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.clientId}'.]`,
    );
  }
  let payload: Record<string, unknown>;
  try {
    const verified = await compactVerify(assertion, match.certificate.publicKey, {
      algorithms: ['RS256', 'PS256'],
    });
    payload = JSON.parse(new TextDecoder().decode(verified.payload)) as Record<string, unknown>;
  } catch {
    return aadError(401, 'invalid_client', 700027, 'Client assertion failed signature validation.');
  }
  const aud = payload['aud'];
  if (typeof aud !== 'string' || !tokenEndpoints.includes(aud)) {
    return aadError(
      401,
      'invalid_client',
      700021,
      `Client assertion audience claim does not match Realm issuer.`,
    );
  }
  if (payload['iss'] !== app.clientId || payload['sub'] !== app.clientId) {
    return aadError(
      401,
      'invalid_client',
      700023,
      'Client assertion issuer or subject does not match the client id.',
    );
  }
  const exp = payload['exp'];
  const nbf = payload['nbf'];
  // Entra allows five minutes of clock skew on assertions.
  if (
    typeof exp !== 'number' ||
    exp + 300 < nowInSeconds ||
    (typeof nbf === 'number' && nbf - 300 > nowInSeconds)
  ) {
    return aadError(
      401,
      'invalid_client',
      700024,
      'Client assertion is not within its valid time range. Ensure that the assertion is signed with a current time.',
    );
  }
  return undefined;
}

export interface TokenRequestContext {
  state: DirectoryState;
  signer: TokenSigner;
  authorityHost: string;
  tenantSegment: string;
  form: URLSearchParams;
  /** Basic auth credentials, if the client used client_secret_basic. */
  basic: { clientId: string; secret: string } | undefined;
}

/** POST /{tenant}/oauth2/v2.0/token, client_credentials grant only (all this app needs). */
export async function issueToken(ctx: TokenRequestContext): Promise<IdentityResponse> {
  const { state, form } = ctx;
  const tenant = state.resolveTenant(ctx.tenantSegment);
  if (tenant === undefined) return tenantNotFound(ctx.tenantSegment);
  const grantType = form.get('grant_type');
  if (grantType !== 'client_credentials') {
    return aadError(
      400,
      'unsupported_grant_type',
      70003,
      `The app requested an unsupported grant type '${grantType ?? ''}'.`,
    );
  }
  const clientId = (form.get('client_id') ?? ctx.basic?.clientId ?? '').toLowerCase();
  if (clientId === '') {
    return aadError(
      400,
      'invalid_request',
      900144,
      "The request body must contain the following parameter: 'client_id'.",
    );
  }
  const app = state.apps.get(clientId);
  // Entra answers an unknown app and an app without a service principal (no consent) in this tenant alike.
  if (app === undefined || !app.tenants.has(tenant.id)) {
    return aadError(
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${tenant.displayName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    );
  }
  const secret = form.get('client_secret') ?? ctx.basic?.secret;
  const assertion = form.get('client_assertion');
  const nowInSeconds = Math.floor(state.clock.nowMs() / 1000);
  if (assertion !== null) {
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return aadError(400, 'invalid_request', 700025, "Invalid 'client_assertion_type'.");
    }
    const endpoints = [ctx.tenantSegment, tenant.id, ...tenant.domains.keys()].map(
      (segment) => `${ctx.authorityHost}/${segment}/oauth2/v2.0/token`,
    );
    const failure = await verifyAssertion(assertion, app, endpoints, nowInSeconds);
    if (failure !== undefined) return failure;
  } else if (secret !== undefined) {
    if (!app.clientSecrets.includes(secret)) {
      return aadError(
        401,
        'invalid_client',
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" +
          app.clientId +
          "'.",
      );
    }
  } else {
    return aadError(
      401,
      'invalid_client',
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
  }
  const scope = (form.get('scope') ?? '').split(' ').find((s) => s.length > 0) ?? '';
  if (!scope.endsWith('/.default')) {
    return aadError(
      400,
      'invalid_scope',
      1002012,
      `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
    );
  }
  const resource = scope.slice(0, -'/.default'.length).replace(/\/$/, '');
  if (!resources.has(resource)) {
    return aadError(
      400,
      'invalid_resource',
      500011,
      `The resource principal named ${resource} was not found in the tenant named ${tenant.displayName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
    );
  }
  const oid = state.servicePrincipalId(app, tenant.id);
  const claims: Record<string, unknown> = {
    aud: resource,
    iss: issuerFor(ctx.authorityHost, tenant.id),
    iat: nowInSeconds,
    nbf: nowInSeconds,
    exp: nowInSeconds + tokenLifetimeInSeconds,
    aio: randomUUID(),
    app_displayname: app.displayName,
    appid: app.clientId,
    appidacr: assertion === null ? '1' : '2',
    azp: app.clientId,
    azpacr: assertion === null ? '1' : '2',
    idp: issuerFor(ctx.authorityHost, tenant.id),
    idtyp: 'app',
    oid,
    sub: oid,
    tid: tenant.id,
    uti: randomUUID().replace(/-/g, ''),
    ver: '2.0',
  };
  // Graph permissions are app roles of the Graph service principal; Partner Center uses none.
  if (resource === graphResource && app.roles.length > 0) claims['roles'] = app.roles;
  const accessToken = await ctx.signer.sign(claims);
  return {
    status: 200,
    body: {
      token_type: 'Bearer',
      expires_in: tokenLifetimeInSeconds - 1,
      ext_expires_in: tokenLifetimeInSeconds - 1,
      access_token: accessToken,
    },
  };
}

export interface VerifiedToken {
  tenantId: string;
  appId: string;
  roles: string[];
}

/**
 * Validates a bearer token the way a resource does: our signature and kid, the audience, the tenant's
 * issuer and the lifetime by the peer's clock. Returns a reason string on failure.
 */
export async function verifyAccessToken(
  token: string,
  signer: TokenSigner,
  authorityHost: string,
  audience: string,
  nowMs: number,
): Promise<VerifiedToken | string> {
  try {
    const header = decodeProtectedHeader(token);
    if (header.kid !== signer.kid) return 'Signing key not found.';
    const { payload } = await jwtVerify(token, signer.publicKey, {
      algorithms: ['RS256'],
      audience,
      currentDate: new Date(nowMs),
      clockTolerance: 300,
    });
    const tid = payload['tid'];
    const appId = payload['appid'];
    if (typeof tid !== 'string' || typeof appId !== 'string') return 'Token is missing tid or appid.';
    if (payload.iss !== issuerFor(authorityHost, tid)) return 'Invalid issuer.';
    const roles = Array.isArray(payload['roles'])
      ? payload['roles'].filter((r): r is string => typeof r === 'string')
      : [];
    return { tenantId: tid, appId, roles };
  } catch (error) {
    const name = error instanceof Error ? error.name : '';
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_JWT_EXPIRED') return 'Lifetime validation failed, the token is expired.';
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') return 'Invalid audience.';
    if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return 'Signature validation failed.';
    return `IDX14100: JWT is not well formed. ${name}`;
  }
}
