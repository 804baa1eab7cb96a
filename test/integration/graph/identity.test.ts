import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthenticationRequiredError,
  ClientCertificateCredential,
  CredentialUnavailableError,
} from '@azure/identity';
import { Client, GraphError } from '@microsoft/microsoft-graph-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import {
  admin,
  decodeJwt,
  makeCertificate,
  secretCredential,
  startFixture,
  type Fixture,
} from './support.js';

const graphScope = 'https://graph.microsoft.com/.default';
const partnerCenterScope = 'https://api.partnercenter.microsoft.com/.default';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});

interface MsalServerError {
  errorCode: string;
  errorMessage: string;
  errorNo?: string | number;
  status?: number;
}

/** @azure/identity wraps the token endpoint's error in AuthenticationRequiredError; MSAL's ServerError is the cause. */
async function authError(
  promise: Promise<unknown>,
): Promise<{ error: AuthenticationRequiredError; server: MsalServerError }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthenticationRequiredError);
  const wrapped = error as AuthenticationRequiredError;
  return { error: wrapped, server: wrapped.cause as MsalServerError };
}

function graphWithToken(token: string): Client {
  return Client.init({
    baseUrl: f.peer.authorityHost,
    defaultVersion: 'v1.0',
    customHosts: new Set(['127.0.0.1']),
    authProvider: (done) => done(null, token),
  });
}

async function graphFailure(token: string): Promise<GraphError> {
  const error = await graphWithToken(token)
    .api('/users')
    .get()
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(error).toBeInstanceOf(GraphError);
  return error as GraphError;
}

describe('identity platform peer through @azure/identity', () => {
  it('issues a Graph token for a client secret whose claims and JWKS signature check out', async () => {
    const token = await secretCredential(f).getToken(graphScope);
    const claims = decodeJwt(token.token);
    expect(claims).toMatchObject({
      aud: 'https://graph.microsoft.com',
      tid: f.customerTenantId,
      appid: f.clientId,
      azp: f.clientId,
      iss: `${f.peer.authorityHost}/${f.customerTenantId}/v2.0`,
    });
    expect(claims['roles']).toContain('User.ReadWrite.All');
    expect(Number(claims['exp']) - Number(claims['iat'])).toBe(3600);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now() + 3500_000);
    const config = (await (
      await fetch(`${f.peer.authorityHost}/${f.customerTenantId}/v2.0/.well-known/openid-configuration`)
    ).json()) as {
      jwks_uri: string;
      issuer: string;
    };
    const { payload, protectedHeader } = await jwtVerify(
      token.token,
      createRemoteJWKSet(new URL(config.jwks_uri)),
      {
        issuer: config.issuer,
        audience: 'https://graph.microsoft.com',
      },
    );
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload['tid']).toBe(f.customerTenantId);
  });

  it('issues a Partner Center token with that audience and no Graph roles', async () => {
    const token = await secretCredential(f, f.partnerTenantId).getToken(partnerCenterScope);
    const claims = decodeJwt(token.token);
    expect(claims['aud']).toBe('https://api.partnercenter.microsoft.com');
    expect(claims['tid']).toBe(f.partnerTenantId);
    expect(claims['roles']).toBeUndefined();
  });

  it('accepts a certificate client assertion signed with the registered certificate', async () => {
    const credential = new ClientCertificateCredential(
      f.customerTenantId,
      f.clientId,
      { certificate: f.certificatePem },
      { authorityHost: f.peer.authorityHost, disableInstanceDiscovery: true },
    );
    const token = await credential.getToken(graphScope);
    expect(decodeJwt(token.token)).toMatchObject({
      appid: f.clientId,
      tid: f.customerTenantId,
      appidacr: '2',
    });
  });

  it('refuses a certificate that is not registered on the app (AADSTS700027)', async () => {
    const other = makeCertificate();
    const credential = new ClientCertificateCredential(
      f.customerTenantId,
      f.clientId,
      { certificate: `${other.keyPem}\n${other.certPem}` },
      { authorityHost: f.peer.authorityHost, disableInstanceDiscovery: true },
    );
    const { server } = await authError(credential.getToken(graphScope));
    expect(server.status).toBe(401);
    expect(server.errorCode).toBe('invalid_client');
    expect(server.errorMessage).toContain('AADSTS700027');
  });

  it('surfaces AADSTS7000215 invalid_client for a wrong secret', async () => {
    const { error, server } = await authError(
      secretCredential(f, f.customerTenantId, 'wrong-secret').getToken(graphScope),
    );
    expect(server.status).toBe(401);
    expect(server.errorCode).toBe('invalid_client');
    expect(server.errorMessage).toContain('Description: AADSTS7000215: Invalid client secret provided');
    expect(String(server.errorNo)).toBe('7000215');
    expect(error.message).toContain('AADSTS7000215');
  });

  it('refuses a tenant where the app has no consent (AADSTS700016), until consent is granted', async () => {
    const created = await admin(f, 'POST', '/tenants', { displayName: 'Fabrikam' });
    expect(created.status).toBe(201);
    const tenantId = (created.body as { id: string }).id;
    const { server } = await authError(secretCredential(f, tenantId).getToken(graphScope));
    expect(server.status).toBe(400);
    expect(server.errorCode).toBe('unauthorized_client');
    expect(server.errorMessage).toContain('AADSTS700016');
    expect((await admin(f, 'POST', `/apps/${f.clientId}/tenants`, { tenantId })).status).toBe(204);
    const token = await secretCredential(f, tenantId).getToken(graphScope);
    expect(decodeJwt(token.token)['tid']).toBe(tenantId);
  });

  it('merges a re-posted app registration: both secrets work and roles are added, not replaced', async () => {
    const clientId = randomUUID();
    const first = await admin(f, 'POST', '/apps', {
      clientId,
      clientSecret: 'first-secret',
      homeTenantId: f.customerTenantId,
      roles: ['User.Read.All'],
    });
    expect(first.status).toBe(201);
    const again = await admin(f, 'POST', '/apps', {
      clientId,
      clientSecret: 'second-secret',
      homeTenantId: f.customerTenantId,
      roles: ['Domain.Read.All'],
    });
    expect(again.status).toBe(200);
    for (const secret of ['first-secret', 'second-secret']) {
      const token = await secretCredential(f, f.customerTenantId, secret, clientId).getToken(graphScope);
      expect(decodeJwt(token.token)['roles']).toEqual(['User.Read.All', 'Domain.Read.All']);
    }
  });

  it('answers an unknown tenant with AADSTS90002, which MSAL reports as unresolvable endpoints', async () => {
    const tenantId = randomUUID();
    const discovery = await fetch(
      `${f.peer.authorityHost}/${tenantId}/v2.0/.well-known/openid-configuration`,
    );
    expect(discovery.status).toBe(400);
    expect(((await discovery.json()) as { error_codes: number[] }).error_codes).toEqual([90002]);
    const error = await secretCredential(f, tenantId)
      .getToken(graphScope)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(CredentialUnavailableError);
    expect((error as Error).message).toContain('endpoints_resolution_error');
  });
});

describe('Graph token validation', () => {
  it('answers 401 InvalidAuthenticationToken for a token with another audience', async () => {
    const token = await secretCredential(f).getToken(partnerCenterScope);
    const error = await graphFailure(token.token);
    expect(error.statusCode).toBe(401);
    expect(error.code).toBe('InvalidAuthenticationToken');
  });

  it('answers 401 for a badly signed token', async () => {
    const token = await secretCredential(f).getToken(graphScope);
    const [header, payload] = token.token.split('.');
    const forged = `${header ?? ''}.${payload ?? ''}.${Buffer.from('not the signature').toString('base64url')}`;
    const error = await graphFailure(forged);
    expect(error.statusCode).toBe(401);
    expect(error.code).toBe('InvalidAuthenticationToken');
    expect(error.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 401 once the token has expired on the peer clock', async () => {
    const token = await secretCredential(f).getToken(graphScope);
    const before = (await graphWithToken(token.token).api('/users').top(1).get()) as { value: unknown[] };
    expect(before.value).toHaveLength(1);
    await admin(f, 'POST', '/clock', { advanceByInMs: 2 * 3600_000 });
    try {
      const error = await graphFailure(token.token);
      expect(error.statusCode).toBe(401);
      expect(error.message).toContain('expired');
    } finally {
      await admin(f, 'POST', '/reset');
    }
  });

  it('answers 403 Authorization_RequestDenied when the roles lack the permission', async () => {
    const clientId = randomUUID();
    await admin(f, 'POST', '/apps', {
      clientId,
      clientSecret: 'x-secret',
      homeTenantId: f.customerTenantId,
      roles: ['Domain.Read.All'],
    });
    const token = await secretCredential(f, f.customerTenantId, 'x-secret', clientId).getToken(graphScope);
    const client = graphWithToken(token.token);
    const domains = (await client.api('/domains').get()) as { value: unknown[] };
    expect(domains.value.length).toBeGreaterThan(0);
    const error = await graphFailure(token.token);
    expect(error.statusCode).toBe(403);
    expect(error.code).toBe('Authorization_RequestDenied');
  });
});
