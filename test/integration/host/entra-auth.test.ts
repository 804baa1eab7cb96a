import { randomUUID } from 'node:crypto';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { definitions } from '../../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import { createComposition, type AppDeps } from '../../../shared/composition.js';
import { loadSettings } from '../../../shared/config.js';
import { quietLogger } from '../../support/stack.js';

/**
 * The Azure caller path: an Entra ID app-only token for our API, verified against the tenant's published
 * keys, mapped to a provider by the calling app's id. The identity peer has no resource of ours, so the
 * Partner Center resource stands in as "our API" audience; everything else is the production code.
 */
const tenantId = randomUUID();
const otherTenantId = randomUUID();
const registeredApp = { clientId: randomUUID(), clientSecret: 'registered-app-secret' };
const strangerApp = { clientId: randomUUID(), clientSecret: 'stranger-app-secret' };
const otherTenantApp = { clientId: randomUUID(), clientSecret: 'other-tenant-secret' };
const ourAudience = 'https://api.partnercenter.microsoft.com';

let peer: IdentityGraphPeer;
let host: LocalHost;
let deps: AppDeps;

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

const whoami = (bearer: string) =>
  fetch(`${host.url}/whoami`, { headers: { authorization: `Bearer ${bearer}` } });

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
        { ...registeredApp, homeTenantId: tenantId },
        { ...strangerApp, homeTenantId: tenantId },
        { ...otherTenantApp, homeTenantId: otherTenantId },
      ],
    },
  });
  deps = createComposition(
    loadSettings({
      LOG_LEVEL: 'error',
      TableStorage: inject('storageConnectionString'),
      Auth__entraTenantId: tenantId,
      Auth__entraAudience: ourAudience,
      Auth__entraAuthorityHost: peer.authorityHost,
    }),
  );
  await deps.callers.registerEntraApp({
    appId: registeredApp.clientId,
    providerId: 'prov-entra',
    customerIds: ['c1'],
    name: 'Atria prod',
  });
  host = await startLocalHost({ definitions, deps, port: 0, timers: false, log: quietLogger });
});

afterAll(async () => {
  await host.stop();
  await peer.stop();
});

describe('Entra ID bearer tokens for callers (the Azure path)', () => {
  it("maps a registered app's token to its provider and customer scope", async () => {
    const response = await whoami(await token(registeredApp, `${ourAudience}/.default`));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      kind: 'entraApp',
      callerId: registeredApp.clientId,
      providerId: 'prov-entra',
      customerIds: ['c1'],
    });
  });

  it('refuses a valid token issued for another audience (401)', async () => {
    const response = await whoami(await token(registeredApp, 'https://graph.microsoft.com/.default'));
    expect(response.status).toBe(401);
    expect(((await response.json()) as { code: string }).code).toBe('Unauthenticated');
  });

  it('refuses a token of an app that is not registered as a caller (403)', async () => {
    const response = await whoami(await token(strangerApp, `${ourAudience}/.default`));
    expect(response.status).toBe(403);
  });

  it('refuses a token issued by another tenant, even for our audience (401)', async () => {
    const response = await whoami(await token(otherTenantApp, `${ourAudience}/.default`, otherTenantId));
    expect(response.status).toBe(401);
  });

  it('refuses a tampered token (401)', async () => {
    const good = await token(registeredApp, `${ourAudience}/.default`);
    const [header, payload] = good.split('.');
    const forged = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    forged.azp = strangerApp.clientId;
    const response = await whoami(
      `${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${good.split('.')[2]}`,
    );
    expect(response.status).toBe(401);
  });
});
