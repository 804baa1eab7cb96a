import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuritePeer } from '../../dev/peers/azurite.js';
import { z } from 'zod';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../dev/peers/identity-graph/index.js';
import type { PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import type { FaultInput } from '../../dev/peers/partner-center/faults.js';
import { createTableStore } from '../../shared/adapters/tables/table-store.js';
import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import type { Caller } from '../../shared/domain/caller.js';
import { customerInputSchema } from '../../shared/domain/customer.js';
import { SEAT_WINDOW_IN_MS } from '../../shared/domain/nce.js';
import type { Commerce } from '../../shared/ports/commerce.js';
import type { Collection, Store } from '../../shared/ports/store.js';
import { autoscalePolicyInputSchema } from '../../shared/usecases/autoscale.js';
import { licensingSourcesInputSchema } from '../../shared/usecases/licensing.js';
import { demandSeries, type CustomerSeries } from '../bench/autoscale.js';
import { sdkClient } from '../integration/graph/raw.js';
import { graphSkuIds, offers } from '../integration/partner-center/stack.js';
import {
  createCustomerWithAgreement,
  partnerTenantSeed,
  startPartnerCenterFixture,
} from '../support/partner-center.js';
import { quietLogger } from '../support/stack.js';

/**
 * The simulated year on the peers (issue 15): customers with the bench's seeded demand patterns
 * (steady, seasonal, a burst, halving, waves), each with an annual and a monthly E3 subscription at the
 * Partner Center peer, run through a year of weekly sweeps of the real autoscale use case and the real
 * Partner Center adapter. Users join and leave as real Graph users with licences (so the tenant's
 * consumed seats are the demand, and the Graph peer refuses a licence without a seat); starters are
 * announced a week ahead. Virtual time moves the peer's clock a week at a time, so monthly renewals,
 * scheduled next-term quantities and 168-hour windows happen as Partner Center documents them. Faults:
 * 429 and 503 on PATCH, a PATCH whose answer is lost after it committed, and a worker killed after a
 * change reached Partner Center but before its decision row said so. After every sweep the peer's state
 * is checked: seats ≥ demand, growth never more than the shortfall (no duplicate purchase), and seats
 * leave only from lots whose window was open.
 */
const customers = Number(process.env.AUTOSCALE_YEAR_CUSTOMERS ?? 5);
const weeks = Number(process.env.AUTOSCALE_YEAR_WEEKS ?? 52);
const dayInMs = 86_400_000;
const start = new Date('2027-01-04T12:00:00Z');
let azurite: AzuritePeer | undefined;
let offsetInMs = start.getTime() - Date.now();
const clock = { now: () => new Date(Date.now() + offsetInMs) };
const partnerTenant = randomUUID();
const graphApp = { clientId: randomUUID(), clientSecret: `secret-${randomUUID()}` };
const graphRoles = [
  'Directory.Read.All',
  'Directory.ReadWrite.All',
  'User.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
  'Organization.Read.All',
];
const run = randomUUID().slice(0, 8);
const provider = `prov-ay-${run}`;
const caller: Caller = { id: 'year', kind: 'apiKey', providerId: provider };
const e3 = graphSkuIds.e3;

let graph: IdentityGraphPeer;
let partnerCenter: PartnerCenterPeer;
let deps: AppDeps;

/** A worker killed after its change reached Partner Center, before the decision row said `applied`. */
const kill = { armed: false, fired: 0 };
function killableStore(inner: Store): Store {
  return {
    ...inner,
    ping: () => inner.ping(),
    collection<T>(name: string, schema: z.ZodType<T>): Collection<T> {
      const c = inner.collection(name, schema);
      if (name !== 'autoscaledecisions') return c;
      return {
        ...c,
        get: (p, r) => c.get(p, r),
        create: (p, r, v) => c.create(p, r, v),
        upsert: (p, r, v) => c.upsert(p, r, v),
        delete: (p, r, e) => c.delete(p, r, e),
        listPage: (p, o) => c.listPage(p, o),
        list: (p, o) => c.list(p, o),
        replace: async (p, r, v, e) => {
          const state = (v as { state?: string }).state;
          if (kill.armed && state === 'applied') {
            kill.armed = false;
            kill.fired += 1;
            throw new Error('worker killed');
          }
          return c.replace(p, r, v, e);
        },
      };
    },
  };
}

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${partnerCenter.adminUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`admin ${method} ${path}: ${response.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

const pcState = z.object({
  subscriptions: z.array(
    z
      .object({
        id: z.string(),
        customerId: z.string(),
        status: z.string(),
        quantity: z.number(),
        lots: z.array(z.object({ quantity: z.number(), addedAt: z.string() })),
      })
      .loose(),
  ),
});
type PcSubscription = z.infer<typeof pcState>['subscriptions'][number];

interface Tenant {
  id: string;
  pcCustomerId: string;
  tenantId: string;
  domain: string;
  series: CustomerSeries;
  users: string[];
  made: number;
  graph: ReturnType<typeof sdkClient>;
}
const tenants: Tenant[] = [];

const createdUser = z.object({ id: z.string() }).loose();
async function join(t: Tenant, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const name = `u${t.made++}`;
    const user = createdUser.parse(
      await t.graph.api('/users').post({
        accountEnabled: true,
        displayName: name,
        mailNickname: name,
        usageLocation: 'US',
        userPrincipalName: `${name}@${t.domain}`,
        passwordProfile: { password: `P-${randomUUID()}`, forceChangePasswordNextSignIn: true },
      }),
    );
    // The Graph peer refuses a licence without a free seat: this is where a shortfall would show.
    await t.graph
      .api(`/users/${user.id}/assignLicense`)
      .post({ addLicenses: [{ skuId: e3 }], removeLicenses: [] });
    t.users.push(user.id);
  }
}
async function leave(t: Tenant, n: number): Promise<void> {
  for (const id of t.users.splice(0, n)) await t.graph.api(`/users/${id}`).delete();
}

async function advance(days: number): Promise<void> {
  offsetInMs += days * dayInMs;
  await admin('POST', '/clock', { advanceByInMs: days * dayInMs });
}

beforeAll(async () => {
  // Storage of its own: this file moves the app's clock days ahead, and its sweeps would judge other
  // files' operations in shared storage by that clock (past their deadlines).
  azurite = await startAzurite();
  graph = await startIdentityGraphPeer({
    seed: partnerTenantSeed({ partnerTenant, app: graphApp, roles: graphRoles }),
  });
  let commerce: Commerce;
  ({ partnerCenter, commerce } = await startPartnerCenterFixture({
    graph,
    partnerTenant,
    partnerName: 'Partner',
    app: graphApp,
    graphRoles,
    start,
  }));
  const settings = loadSettings({
    LOG_LEVEL: 'warn',
    TableStorage: azurite.connectionString,
    Graph__authorityHost: graph.authorityHost,
    Graph__baseUrl: graph.graphBaseUrl,
    Graph__clientId: graphApp.clientId,
    Graph__clientSecret: graphApp.clientSecret,
    PartnerCenter__baseUrl: partnerCenter.baseUrl,
    PartnerCenter__tenantId: partnerTenant,
    PartnerCenter__clientId: graphApp.clientId,
    PartnerCenter__clientSecret: graphApp.clientSecret,
    PartnerCenter__providerId: provider,
    Autoscale__concurrency: String(Math.min(customers, 5)),
  });
  const store = killableStore(createTableStore({ connectionString: azurite.connectionString }));
  deps = createComposition(settings, { log: quietLogger, clock, store });

  const all = demandSeries(customers, weeks * 7, 15);
  await Promise.all(
    all.map(async (series, i) => {
      const domain = `ay${run}${i}.onmicrosoft.com`;
      const created = await createCustomerWithAgreement(commerce, {
        domain,
        email: `owner@ay${run}${i}.example`,
        run: `${run}-${i}`,
        agreedAt: start,
      });
      const first = series.assigned[0] ?? 1;
      // No history yet: one seat on the annual term (the line the term policy may move demand to),
      // the rest monthly.
      const buy = () =>
        commerce.buy(
          created.customer.id,
          [
            { catalogItemId: offers.e3, quantity: 1, termDuration: 'P1Y', billingCycle: 'monthly' },
            {
              catalogItemId: offers.e3,
              quantity: Math.max(1, first - 1),
              termDuration: 'P1M',
              billingCycle: 'monthly',
            },
          ],
          { operationKey: `buy-${run}-${i}` },
        );
      if (i === 0) {
        // The first customer's checkout commits but its answer is lost: the retry under the same
        // operation key must not order the two subscriptions again (checked below).
        await admin('POST', '/faults', {
          kind: 'dropAfterCommit',
          match: { method: 'POST', pathIncludes: 'checkout', customerId: created.customer.id },
        });
        await buy().catch(buy);
      } else await buy();
      const id = `year${i}`;
      await deps.customers.put(
        caller,
        id,
        customerInputSchema.parse({
          displayName: `Year ${i}`,
          identityMode: 'cloudOnly',
          entra: { tenantId: created.customer.tenantId, domains: [domain] },
          defaultUsageLocation: 'US',
          licencePlans: [{ name: 'E3', skus: [{ skuId: e3 }] }],
        }),
        undefined,
      );
      await deps.licensing.putSources(
        caller,
        id,
        licensingSourcesInputSchema.parse({
          partnerCenterCustomerId: created.customer.id,
          assignmentPolicy: ['partnerCenter'],
        }),
      );
      const t: Tenant = {
        id,
        pcCustomerId: created.customer.id,
        tenantId: created.customer.tenantId,
        domain,
        series,
        users: [],
        made: 0,
        graph: sdkClient(graph, created.customer.tenantId, graphApp),
      };
      await join(t, first);
      tenants.push(t);
    }),
  );
}, 120_000);

afterAll(async () => {
  await deps?.close();
  await partnerCenter?.stop();
  await graph?.stop();
  await azurite?.stop();
});

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('autoscale: a year of weekly sweeps on the peers', () => {
  it('set up each customer with one annual and one monthly subscription, even where the checkout answer was lost', async () => {
    const state = pcState.parse(await admin('GET', '/state')).subscriptions;
    for (const t of tenants) expect(state.filter((s) => s.customerId === t.pcCustomerId)).toHaveLength(2);
    expect(await admin('GET', '/faults')).toEqual({ faults: [] });
  });

  it('keeps seats ≥ demand at every sweep, never buys twice and reduces only inside open windows, under faults', async () => {
    const random = seeded(7);
    const faultsInjected = { throttle: 0, error: 0, lostAnswer: 0 };
    let extraRuns = 0;
    let killed = 0;
    let movedToAnnual = 0;
    const spent = { directory: 0, sweep: 0 };
    for (let week = 0; week < weeks; week++) {
      const weekStarted = performance.now();
      // The week's leavers go; its starters are announced (they join after the sweep).
      const starters = new Map<string, number>();
      for (const t of tenants) {
        const wanted = t.series.assigned[week * 7] ?? t.users.length;
        if (wanted < t.users.length) await leave(t, t.users.length - wanted);
        starters.set(t.id, Math.max(0, wanted - t.users.length));
        await deps.autoscale.putPolicy(
          caller,
          t.id,
          autoscalePolicyInputSchema.parse({
            mode: 'auto',
            expected: { [e3]: { starters: starters.get(t.id) ?? 0 } },
          }),
        );
      }
      const faults: FaultInput[] = [];
      if (random() < 0.3)
        faults.push({ kind: 'throttle', match: { method: 'PATCH' }, retryAfterInSeconds: 0 });
      if (random() < 0.2) faults.push({ kind: 'error', status: 503, match: { method: 'PATCH' } });
      if (random() < 0.15) faults.push({ kind: 'dropAfterCommit', match: { method: 'PATCH' } });
      for (const f of faults) {
        await admin('POST', '/faults', f);
        if (f.kind === 'throttle') faultsInjected.throttle += 1;
        else if (f.kind === 'error') faultsInjected.error += 1;
        else faultsInjected.lostAnswer += 1;
      }
      kill.armed = random() < 0.15;

      const pcNow = new Date(start.getTime() + week * 7 * dayInMs);
      const sweepStarted = performance.now();
      spent.directory += sweepStarted - weekStarted;
      const before = pcState.parse(await admin('GET', '/state')).subscriptions;
      await deps.autoscale.sweep({ runId: `year-${run}-w${week}`, providerId: provider });
      kill.armed = false;
      // A fault the adapter's retries did not absorb, or the killed worker, is finished by the next
      // timer run (same operation keys): at most two more runs, as the timer would make.
      for (let again = 0; again < 2; again++) {
        const state = pcState.parse(await admin('GET', '/state')).subscriptions;
        const short = tenants.some((t) => seats(state, t) < demandOf(t, starters));
        if (!short && kill.fired === 0) break;
        extraRuns += 1;
        killed += kill.fired;
        kill.fired = 0;
        await deps.autoscale.sweep({ runId: `year-${run}-w${week}-again${again}`, providerId: provider });
      }
      spent.sweep += performance.now() - sweepStarted;
      await admin('DELETE', '/faults').catch(() => undefined);
      const after = pcState.parse(await admin('GET', '/state')).subscriptions;

      for (const t of tenants) {
        const demand = demandOf(t, starters);
        const had = seats(before, t);
        const has = seats(after, t);
        if (has < demand && process.env.AY_DEBUG !== undefined)
          console.log(
            JSON.stringify(
              (await deps.autoscale.listDecisions(caller, t.id, 5, undefined)).value.map((d) => [
                d.kind,
                d.state,
                d.rule,
                d.from,
                d.to,
                d.lastError,
                d.reason,
              ]),
            ),
          );
        // Seats ≥ demand at every sweep.
        expect(has, `${t.id} week ${week}: ${has} seats for ${demand}`).toBeGreaterThanOrEqual(demand);
        // No duplicate purchase: growth is never more than the shortfall.
        expect(has - had, `${t.id} week ${week} grew from ${had}`).toBeLessThanOrEqual(
          Math.max(0, demand - had),
        );
        for (const b of before.filter((s) => s.customerId === t.pcCustomerId)) {
          const a = after.find((s) => s.id === b.id);
          const removed = removedSince(b, a);
          const open = b.lots
            .filter((lot) => Date.parse(lot.addedAt) + SEAT_WINDOW_IN_MS > pcNow.getTime())
            .reduce((sum, lot) => sum + lot.quantity, 0);
          // Seats leave only from lots whose 168-hour window was open.
          expect(removed, `${t.id} ${b.id} week ${week}`).toBeLessThanOrEqual(open);
        }
      }
      const joinStarted = performance.now();
      await Promise.all(tenants.map((t) => join(t, starters.get(t.id) ?? 0)));
      spent.directory += performance.now() - joinStarted;
      await advance(7);
    }

    // Every decision either applied or was recorded, none refused by Partner Center for a window.
    let applied = 0;
    for (const t of tenants) {
      let cursor: string | undefined;
      do {
        const page = await deps.autoscale.listDecisions(caller, t.id, 500, cursor);
        for (const d of page.value) {
          if (d.state === 'applied') applied += 1;
          if (d.rule === 'stableDemandToAnnual' && d.state === 'applied') movedToAnnual += 1;
          expect(d.lastError?.message ?? '', `${t.id} ${d.kind}`).not.toMatch(/decrease|window/i);
        }
        cursor =
          page.nextLink === undefined
            ? undefined
            : (new URL(page.nextLink, 'http://x').searchParams.get('cursor') ?? undefined);
      } while (cursor !== undefined);
    }
    console.log(
      `autoscale year on the peers: ${tenants.length} customers × ${weeks} weekly sweeps; ${applied} changes applied, ${movedToAnnual} moves to the annual term; faults ${faultsInjected.throttle} throttles, ${faultsInjected.error} 503s, ${faultsInjected.lostAnswer} lost answers, ${killed} killed workers; ${extraRuns} extra runs; ${Math.round(spent.sweep)} ms in sweeps, ${Math.round(spent.directory)} ms joining and leaving users`,
    );
    expect(applied).toBeGreaterThan(tenants.length);
    expect(faultsInjected.throttle).toBeGreaterThan(0);
    expect(faultsInjected.error).toBeGreaterThan(0);
    expect(faultsInjected.lostAnswer).toBeGreaterThan(0);
    expect(killed).toBeGreaterThan(0);
  }, 600_000);
});

function seats(state: readonly PcSubscription[], t: Tenant): number {
  return state
    .filter((s) => s.customerId === t.pcCustomerId && s.status === 'active')
    .reduce((sum, s) => sum + s.quantity, 0);
}
function demandOf(t: Tenant, starters: Map<string, number>): number {
  return t.users.length + (starters.get(t.id) ?? 0);
}
/** Seats taken from the lots a subscription had before (lots added since do not count). */
function removedSince(before: PcSubscription, after: PcSubscription | undefined): number {
  const byStart = (lots: PcSubscription['lots']) => {
    const m = new Map<string, number>();
    for (const l of lots) m.set(l.addedAt, (m.get(l.addedAt) ?? 0) + l.quantity);
    return m;
  };
  const now = byStart(after?.status === 'active' ? after.lots : []);
  let removed = 0;
  for (const [at, quantity] of byStart(before.lots)) removed += Math.max(0, quantity - (now.get(at) ?? 0));
  return removed;
}
