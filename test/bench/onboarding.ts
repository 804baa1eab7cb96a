import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClientSecretCredential } from '@azure/identity';
import { startAzurite } from '../../dev/peers/azurite.js';
import type { Seed } from '../../dev/peers/identity-graph/index.js';
import { createGraphClient } from '../../shared/adapters/graph/client.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../shared/adapters/graph/index.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import {
  defaultMatchRules,
  Matcher,
  type CloudIdentity,
  type LocalIdentity,
} from '../../shared/domain/matching.js';
import { systemClock } from '../../shared/ports/clock.js';
import { createOnboarding } from '../../shared/usecases/onboarding.js';

/**
 * Onboarding figures (issue 16):
 *  - import of a tenant of BENCH_ONBOARDING_USERS (default 100,000) users from the Graph peer through the
 *    onboarding job (users/delta page by page, matching, one item per user written to Table storage)
 *    against bare paging of the same users/delta through the same Graph SDK (no parsing, no writes);
 *  - this process's peak RSS during each (the Graph peer and Azurite run as their own processes);
 *  - the pure matcher: N cloud users against N Atria users (half by anchor, half by UPN + name).
 * Merged into .local/bench.json under `onboarding`; other keys are kept.
 */
export interface OnboardingBenchResult {
  users: number;
  /** Groups of 100 members each, read through groups/delta in both runs. */
  groups: number;
  importSeconds: number;
  barePagingSeconds: number;
  ratio: number;
  peakRssMiB: { import: number; barePaging: number; baseline: number };
  itemsWritten: number;
  matching: { cloud: number; local: number; seconds: number; matched: number; perSecond: number };
  goals: { ratioAtMost: number; peakRssBelowMiB: number; ratioMet: boolean; rssMet: boolean };
}

const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

function sampleRss(): { stop(): number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss);
    },
  };
}

async function startPeerProcess(
  seedFile: string,
): Promise<{ graphBaseUrl: string; authorityHost: string; child: ChildProcess }> {
  const child = spawn(
    join(process.cwd(), 'node_modules/.bin/tsx'),
    ['dev/peers/identity-graph/main.ts', '--port', '0', '--seed', seedFile],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const newline = buffer.indexOf('\n');
      if (newline >= 0) resolve(buffer.slice(0, newline));
    });
    child.once('exit', (code) => reject(new Error(`graph peer exited (${String(code)})`)));
  });
  const info = JSON.parse(line) as { graphBaseUrl: string; authorityHost: string };
  return { ...info, child };
}

function benchMatching(n: number): OnboardingBenchResult['matching'] {
  const locals: LocalIdentity[] = [];
  for (let i = 0; i < n; i++)
    locals.push({
      key: `u${i}`,
      userPrincipalName: `user${i}@bench.example`,
      displayName: `User ${i}`,
      anchors: i % 2 === 0 ? [Buffer.from(`anchor-${i}`).toString('base64')] : [],
      primarySmtp: null,
      employeeId: null,
      entraObjectId: null,
    });
  const started = performance.now();
  const matcher = new Matcher(locals, defaultMatchRules);
  let matched = 0;
  for (let i = 0; i < n; i++) {
    const cloud: CloudIdentity = {
      id: `c${i}`,
      userPrincipalName: `user${i}@bench.example`,
      displayName: `User ${i}`,
      onPremisesImmutableId: i % 2 === 0 ? Buffer.from(`anchor-${i}`).toString('base64') : null,
      proxyAddresses: [`SMTP:user${i}@bench.example`],
      employeeId: null,
      isAdmin: false,
    };
    if (matcher.match(cloud).kind === 'match') matched++;
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    cloud: n,
    local: n,
    seconds: Math.round(seconds * 1000) / 1000,
    matched,
    perSecond: Math.round(n / seconds),
  };
}

export async function benchOnboarding(
  n = Number(process.env.BENCH_ONBOARDING_USERS ?? 100_000),
): Promise<OnboardingBenchResult> {
  const tenantId = randomUUID();
  const partnerTenant = randomUUID();
  const app = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
  const domain = 'bench.example';
  const skuId = randomUUID();
  const seed: Seed = {
    tenants: [
      {
        id: partnerTenant,
        displayName: 'Partner',
        domains: [{ id: `p${partnerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true }],
      },
      {
        id: tenantId,
        displayName: 'Bench',
        domains: [{ id: domain, isDefault: true }],
        skus: [{ skuId, skuPartNumber: 'ENTERPRISEPACK', enabled: n }],
        users: Array.from({ length: n }, (_, i) => ({
          userPrincipalName: `user${i}@${domain}`,
          displayName: `User ${i}`,
          usageLocation: 'NL',
        })),
        // One security group per 100 users, 100 members each (read through groups/delta).
        groups: Array.from(
          { length: Number(process.env.BENCH_ONBOARDING_GROUPS ?? Math.ceil(n / 100)) },
          (_, g) => ({
            displayName: `Group ${g}`,
            members: Array.from(
              { length: Math.min(100, n - g * 100) },
              (_, i) => `user${g * 100 + i}@${domain}`,
            ),
          }),
        ),
      },
    ],
    apps: [
      {
        ...app,
        homeTenantId: partnerTenant,
        tenants: [tenantId],
        roles: ['Directory.ReadWrite.All', 'User.ReadWrite.All', 'Group.ReadWrite.All'],
      },
    ],
  };
  mkdirSync(join(process.cwd(), '.local'), { recursive: true });
  const seedFile = join(process.cwd(), '.local', 'bench-onboarding-seed.json');
  writeFileSync(seedFile, JSON.stringify(seed));
  const peer = await startPeerProcess(seedFile);
  const azurite = await startAzurite();
  try {
    const credential = new ClientSecretCredential(tenantId, app.clientId, app.clientSecret, {
      authorityHost: peer.authorityHost,
      disableInstanceDiscovery: true,
    });
    const client = createGraphClient(credential, {
      graphBaseUrl: peer.graphBaseUrl,
      customHosts: ['127.0.0.1'],
    });
    const select =
      'id,userPrincipalName,displayName,mailNickname,accountEnabled,givenName,surname,jobTitle,department,mail,usageLocation,onPremisesImmutableId,assignedLicenses,proxyAddresses,employeeId';
    await client.api('/organization').get(); // token and TLS warm-up for both runs
    const baseline = process.memoryUsage().rss;

    // Bare paging: the same delta round through the same SDK, nothing kept.
    let rss = sampleRss();
    let started = performance.now();
    let seen = 0;
    let page = (await client.api('/users/delta').select(select).get()) as {
      value: unknown[];
      '@odata.nextLink'?: string;
    };
    for (;;) {
      seen += page.value.length;
      const next = page['@odata.nextLink'];
      if (next === undefined) break;
      page = (await client.api(next).get()) as typeof page;
    }
    // …and the same groups/delta round the import reads (members@delta included).
    let groupsSeen = 0;
    let groupPage = (await client
      .api('/groups/delta')
      .header('Prefer', 'odata.maxpagesize=20') // as the adapter asks
      .select('displayName,mailNickname,securityEnabled,mailEnabled,groupTypes,members')
      .get()) as { value: unknown[]; '@odata.nextLink'?: string };
    for (;;) {
      groupsSeen += groupPage.value.length;
      const next = groupPage['@odata.nextLink'];
      if (next === undefined) break;
      groupPage = (await client.api(next).header('Prefer', 'odata.maxpagesize=20').get()) as typeof groupPage;
    }
    const barePagingSeconds = (performance.now() - started) / 1000;
    const bareRss = rss.stop();
    if (seen !== n) throw new Error(`bare paging saw ${seen} users, expected ${n}`);
    if (groupsSeen !== Number(process.env.BENCH_ONBOARDING_GROUPS ?? Math.ceil(n / 100)))
      throw new Error(`bare paging saw ${groupsSeen} groups, expected ${Math.ceil(n / 100)}`);

    // The onboarding job: access check, tenant facts, delta pages, matching, items in Table storage.
    const store = createTableStore({ connectionString: azurite.connectionString });
    const onboarding = createOnboarding({
      store,
      clock: systemClock,
      cloudDirectory: createGraphDirectoryFactory({
        credentialFor: createCredentialFor({
          clientId: app.clientId,
          clientSecret: app.clientSecret,
          authorityHost: peer.authorityHost,
        }),
        graphBaseUrl: peer.graphBaseUrl,
        customHosts: ['127.0.0.1'],
      }),
      guard: { maxCount: 500, maxPercent: 20, minForPercent: 10 },
    });
    const providerId = 'bench';
    const customerId = 'bench';
    const at = new Date().toISOString();
    await store.collection('tenantclaims', (await import('zod')).z.unknown()).create('tenants', tenantId, {
      tenantId,
      providerId,
      customerId,
      claimedAt: at,
    });
    await store.collection('customers', (await import('zod')).z.unknown()).create(providerId, customerId, {
      customerId,
      providerId,
      displayName: 'Bench',
      identityMode: 'cloudOnly',
      entra: { tenantId, domains: [domain] },
      licencePlans: [],
      createdAt: at,
      updatedAt: at,
    });
    const caller = { id: 'bench', kind: 'apiKey' as const, providerId };
    rss = sampleRss();
    started = performance.now();
    await onboarding.start(caller, customerId, tenantId);
    await onboarding.idle();
    const importSeconds = (performance.now() - started) / 1000;
    const importRss = rss.stop();
    const job = await onboarding.get(caller, customerId);
    if (job.state !== 'awaitingApproval' || job.progress.read !== n || job.progress.groups !== groupsSeen)
      throw new Error(
        `import ended ${job.state} after ${job.progress.read} users: ${JSON.stringify(job.error ?? {})}`,
      );

    const matching = benchMatching(n);
    const ratio = importSeconds / barePagingSeconds;
    return {
      users: n,
      groups: groupsSeen,
      importSeconds: Math.round(importSeconds * 100) / 100,
      barePagingSeconds: Math.round(barePagingSeconds * 100) / 100,
      ratio: Math.round(ratio * 100) / 100,
      peakRssMiB: { import: mib(importRss), barePaging: mib(bareRss), baseline: mib(baseline) },
      itemsWritten:
        job.progress.onlyInCloud + job.progress.matched + job.progress.cases + job.progress.onlyLocal,
      matching,
      goals: {
        ratioAtMost: 1.3,
        peakRssBelowMiB: 256,
        ratioMet: ratio <= 1.3,
        rssMet: importRss < 256 * 1024 * 1024,
      },
    };
  } finally {
    peer.child.kill('SIGTERM');
    await azurite.stop();
  }
}

/** Merges the figures into .local/bench.json under `onboarding`, keeping every other key. */
export function writeOnboardingResult(result: OnboardingBenchResult): void {
  const file = join(process.cwd(), '.local', 'bench.json');
  const existing = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>)
    : {};
  writeFileSync(file, `${JSON.stringify({ ...existing, onboarding: result }, null, 2)}\n`);
}

export function printOnboardingResult(r: OnboardingBenchResult): void {
  console.log(
    `onboarding ${r.users} users, ${r.groups} groups: import ${r.importSeconds}s vs bare paging ${r.barePagingSeconds}s → ratio ${r.ratio} (goal ≤ ${r.goals.ratioAtMost}); ` +
      `peak RSS ${r.peakRssMiB.import} MiB import / ${r.peakRssMiB.barePaging} MiB bare (goal < ${r.goals.peakRssBelowMiB}); ` +
      `matching ${r.matching.cloud}×${r.matching.local} in ${r.matching.seconds}s (${r.matching.perSecond}/s)`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await benchOnboarding();
  printOnboardingResult(result);
  writeOnboardingResult(result);
  process.exit(0);
}
