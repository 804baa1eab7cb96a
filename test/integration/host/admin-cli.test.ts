import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { callerAppRole } from '../../../shared/adapters/entra-auth/token-verifier.js';
import { CALLER_RECENT_IN_MS } from '../../../shared/usecases/callers.js';
import { definitions } from '../../../functions/definitions.js';
import { startLocalHost, type LocalHost } from '../../../dev/host/local-host.js';
import type { AppDeps } from '../../../shared/composition.js';
import { testDeps } from '../../support/app.js';
import { graphSeed, quietLogger, startTestStack, type TestStack } from '../../support/stack.js';

/**
 * `npm run admin` as an operator runs it: a separate process against the same storage the app uses
 * (Azurite here), its printed key then used on the real HTTP pipeline of the running app.
 */
const storage = inject('storageConnectionString');
const providerId = `cli-${randomUUID().slice(0, 8)}`;
let stack: TestStack;
let entraHost: LocalHost;
let entraDeps: AppDeps;
let scratch: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function admin(args: string[], env: Record<string, string> = { TableStorage: storage }): Promise<Run> {
  const base: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('TableStorage')) base[name] = value;
  }
  return new Promise((resolve) => {
    execFile(
      join(process.cwd(), 'node_modules/.bin/tsx'),
      ['dev/admin/main.ts', ...args],
      // No peers file: only what the test passes decides where storage is.
      { env: { ...base, ATRIA_PEERS_FILE: join(scratch, 'absent.json'), ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const lastLine = (text: string): string => text.trimEnd().split('\n').at(-1) ?? '';

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'atria-admin-'));
  const seed = graphSeed({
    id: randomUUID(),
    displayName: 'Customer',
    domains: [{ id: 'cli.example', isDefault: true }],
  });
  // The partner app also calls our API: its Graph-audience tokens (the peer's stand-in for our API,
  // see entra-auth.test.ts) carry our app role.
  const app = seed.apps?.[0];
  if (app === undefined) throw new Error('graph seed has no app');
  app.roles = [...(app.roles ?? []), callerAppRole];
  stack = await startTestStack({ storageConnectionString: storage, graphSeed: seed });
  // The stack's own host has no Entra settings (the peer's address is known only once it runs), so a
  // second host over the same storage accepts Entra tokens from the stack's identity peer.
  entraDeps = testDeps({
    TableStorage: storage,
    Auth__entraTenantId: app.homeTenantId,
    Auth__entraAudience: 'https://graph.microsoft.com',
    Auth__entraAuthorityHost: stack.graph.authorityHost,
  });
  entraHost = await startLocalHost({
    definitions,
    deps: entraDeps,
    port: 0,
    timers: false,
    log: quietLogger,
  });
});

async function bearer(): Promise<string> {
  const { clientId, clientSecret, homeTenantId } = stack.graphApp;
  const credential = new ClientSecretCredential(homeTenantId, clientId, clientSecret, {
    authorityHost: stack.graph.authorityHost,
    disableInstanceDiscovery: true,
  });
  return (await credential.getToken('https://graph.microsoft.com/.default')).token;
}

afterAll(async () => {
  await entraHost.stop();
  await entraDeps.close();
  await stack.stop();
  rmSync(scratch, { recursive: true, force: true });
});

// Each command is a separate process (a few seconds each on a loaded machine).
describe('npm run admin: providers and API keys', { timeout: 180_000 }, () => {
  it('refuses a key for a provider that is not registered, printing no key', async () => {
    const run = await admin(['keys', 'create', '--provider', `${providerId}-typo`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`provider ${providerId}-typo is not registered`);
    expect(run.stdout).not.toMatch(/atr_/);
  });

  it('creates a key that works on the HTTP API with its scope, lists it without secrets, and revokes it (401)', async () => {
    const added = await admin(['providers', 'add', providerId, '--name', 'CLI Provider']);
    expect(added.code).toBe(0);
    const again = await admin(['providers', 'add', providerId]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already exists');

    const listed = await admin(['providers', 'list', '--json']);
    expect(JSON.parse(lastLine(listed.stdout))).toContainEqual(
      expect.objectContaining({ providerId, name: 'CLI Provider' }),
    );

    const created = await admin([
      'keys',
      'create',
      '--provider',
      providerId,
      '--customers',
      'c1,c2',
      '--name',
      'ops laptop',
    ]);
    expect(created.code).toBe(0);
    const apiKey = lastLine(created.stdout);
    expect(apiKey).toMatch(/^atr_[a-z0-9]{12}_[A-Za-z0-9_-]{32,}$/);
    const keyId = apiKey.split('_')[1] ?? '';

    const whoami = await stack.api('/whoami', { key: apiKey });
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({
      providerId,
      customerIds: ['c1', 'c2'],
      kind: 'apiKey',
      callerId: keyId,
    });

    const keys = await admin(['keys', 'list', '--provider', providerId, '--json']);
    expect(keys.code).toBe(0);
    const secret = apiKey.slice(`atr_${keyId}_`.length);
    expect(keys.stdout).not.toContain(secret);
    expect(keys.stdout).not.toMatch(/sha256|secret/i);
    expect(JSON.parse(lastLine(keys.stdout))).toEqual([
      {
        id: keyId,
        kind: 'apiKey',
        providerId,
        name: 'ops laptop',
        customerIds: ['c1', 'c2'],
        createdAt: expect.any(String) as string,
      },
    ]);

    const revoked = await admin(['keys', 'revoke', keyId]);
    expect(revoked.code).toBe(0);
    // Another process revoked it: the host may answer from its read of the key for CALLER_RECENT_IN_MS.
    await new Promise((resolve) => setTimeout(resolve, CALLER_RECENT_IN_MS));
    const after = await stack.api('/whoami', { key: apiKey });
    expect(after.status).toBe(401);
    expect(after.headers.get('content-type')).toBe('application/problem+json');
    expect(((await after.json()) as { code: string }).code).toBe('Unauthenticated');

    const listedAfter = await admin(['keys', 'list', '--provider', providerId]);
    expect(listedAfter.stdout).toMatch(
      new RegExp(`${keyId}.*"ops laptop".*customers c1,c2.*revoked \\d{4}-`),
    );
  });

  it('maps an Entra application to a provider (its token then works), refuses another provider, and revokes it (403)', async () => {
    const appId = stack.graphApp.clientId;
    const whoami = () => fetch(`${entraHost.url}/whoami`, { headers: { authorization: `Bearer ${token}` } });
    const token = await bearer();
    expect((await whoami()).status).toBe(403); // not registered yet

    const refused = await admin(['apps', 'add', appId, '--provider', `${providerId}-typo`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is not registered');

    await admin(['providers', 'add', providerId]);
    // Pasted in capitals, as portals often show it: it must still match the token's lowercase azp.
    const added = await admin([
      'apps',
      'add',
      appId.toUpperCase(),
      '--provider',
      providerId,
      '--customers',
      'c9',
    ]);
    expect(added.code).toBe(0);
    expect(lastLine(added.stdout)).toBe(appId);
    const mapped = await whoami();
    expect(mapped.status).toBe(200);
    expect(await mapped.json()).toMatchObject({ kind: 'entraApp', providerId, customerIds: ['c9'] });

    const other = `${providerId}-other`;
    await admin(['providers', 'add', other]);
    const moved = await admin(['apps', 'add', appId, '--provider', other]);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain('registered for another provider');

    const apps = await admin(['apps', 'list', '--provider', providerId, '--json']);
    expect(JSON.parse(lastLine(apps.stdout))).toEqual([
      expect.objectContaining({ id: appId, kind: 'entraApp', providerId, customerIds: ['c9'] }),
    ]);
    expect((await admin(['apps', 'revoke', appId])).code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, CALLER_RECENT_IN_MS));
    expect((await whoami()).status).toBe(403);
  });

  it('reads storage from the local stack peers file when no storage setting is in the environment', async () => {
    const peersFile = join(scratch, 'peers.json');
    const unused = 'https://127.0.0.1:1';
    writeFileSync(
      peersFile,
      JSON.stringify({
        storage: { connectionString: storage },
        serviceBus: {
          connectionString: 'Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=x;SharedAccessKey=y',
        },
        identity: { authorityHost: unused },
        graph: {
          baseUrl: unused,
          adminUrl: unused,
          app: { tenantId: randomUUID(), clientId: randomUUID(), clientSecret: 'x' },
        },
        partnerCenter: {
          baseUrl: unused,
          adminUrl: unused,
          partnerTenantId: randomUUID(),
          clientId: randomUUID(),
          clientSecret: 'x',
        },
        ad: { unavailable: 'not in this test' },
      }),
    );
    const id = `${providerId}-local`;
    const added = await admin(['providers', 'add', id], { ATRIA_PEERS_FILE: peersFile });
    expect(added.code).toBe(0);
    expect(added.stderr).toContain(`the local stack (${peersFile})`);
    const created = await admin(['keys', 'create', '--provider', id], { ATRIA_PEERS_FILE: peersFile });
    const whoami = await stack.api('/whoami', { key: lastLine(created.stdout) });
    expect(await whoami.json()).toMatchObject({ providerId: id });
  });

  it('says where storage would come from when there is none, and exits 2', async () => {
    const run = await admin(['providers', 'list'], {});
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no storage');
  });

  it('refuses a key name with a line break, naming the field', async () => {
    const run = await admin(['keys', 'create', '--provider', providerId, '--name', 'ops\nforged log line']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('name: must not contain control characters');
  });
});
