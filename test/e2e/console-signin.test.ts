import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { definitions } from '../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../dev/host/local-host.js';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import { freePort } from '../../dev/ports.js';
import { callerAppRole } from '../../shared/adapters/entra-auth/token-verifier.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { quietLogger } from '../support/stack.js';

/**
 * "Sign in with Microsoft" in the ops console, in a real browser (Debian's chromium, playwright-core):
 * the page's own script runs the authorization code flow with PKCE against the identity peer (its sign-in
 * page, the redirect back, the cross-origin code redemption) and then calls the API with the delegated
 * token; the API maps the engineer to the provider. Screenshot: .local/console-entra.png.
 */
const tenantId = randomUUID();
const api = { appId: randomUUID(), identifierUri: 'api://atria-m365-console-e2e' };
const spaClientId = randomUUID();
const engineer = { upn: 'ada@provider.example', password: 'Pa55-w0rd!', objectId: randomUUID() };
const providerId = `prov-entra-console-${randomUUID().slice(0, 6)}`;

let peer: IdentityGraphPeer;
let host: LocalHost;
let app: AppDeps;
let browser: Browser;

beforeAll(async () => {
  // The SPA's redirect URI is the console page itself, so the host's port is fixed before the peer starts.
  const port = await freePort();
  const consoleUrl = `http://127.0.0.1:${port}/api/console`;
  peer = await startIdentityGraphPeer({
    seed: {
      tenants: [
        { id: tenantId, displayName: 'Provider', domains: [{ id: 'provider.example', isDefault: true }] },
      ],
    },
    signIn: {
      apis: [{ tenantId, appId: api.appId, identifierUri: api.identifierUri, scopes: ['Atria.Console'] }],
      spas: [{ tenantId, clientId: spaClientId, redirectUris: [consoleUrl] }],
      users: [
        {
          tenantId,
          userPrincipalName: engineer.upn,
          password: engineer.password,
          objectId: engineer.objectId,
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
      Console__entraClientId: spaClientId,
      Console__entraScope: `${api.identifierUri}/Atria.Console`,
    }),
  );
  host = await startLocalHost({ definitions, deps: app, port, timers: false, log: quietLogger });
  await app.callers.providers.add({ providerId });
  await app.callers.addEntraUser({ objectId: engineer.objectId, providerId, name: engineer.upn });
  await mkdir('.local', { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await host?.stop();
  await app?.close();
  await peer?.stop();
});

describe('console sign-in with Microsoft Entra in a real browser', () => {
  it("signs the engineer in through the authority's page and shows the provider the API mapped them to", async () => {
    // The peer's certificate is from the local CA, which this browser profile does not know.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${host.url}/console`);
    const button = page.locator('#entra-sign-in');
    await button.waitFor({ state: 'visible' });
    await button.click();
    // The authority's sign-in page (another origin), then back to the console with a code.
    await page.waitForURL((url) => url.pathname.endsWith('/oauth2/v2.0/authorize'));
    await page.fill('#i0116', engineer.upn);
    await page.fill('#i0118', engineer.password);
    await page.click('#idSIButton9');
    await page.waitForURL((url) => url.pathname === '/api/console');
    await expect.poll(() => page.locator('#who').textContent(), { timeout: 15_000 }).toContain(providerId);
    // The code is gone from the address bar; the token is in this tab only.
    expect(new URL(page.url()).search).toBe('');
    const stored = await page.evaluate(() => sessionStorage.getItem('atria-console-token'));
    expect(stored?.split('.')).toHaveLength(3);
    await page.screenshot({ path: '.local/console-entra.png', fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  });
});
