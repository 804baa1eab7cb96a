import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { splaFunctions } from '../../functions/http/spla.js';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * SPLA reporting over HTTP: products and rules, evidence from the group operations the engine performs
 * (Entra through the Graph peer) and evidence posted for an earlier month, the report as JSON and CSV
 * with its detail view, closing a month and correcting it, and another provider seeing none of it.
 */
const tenantId = randomUUID();
const seed = graphSeed({
  id: tenantId,
  displayName: 'Northwind',
  domains: [{ id: 'northwind.example', isDefault: true, authenticationType: 'Managed' }],
  skus: [],
});

let stack: TestStack;
let key: string;
let otherKey: string;
let groupId: string;
const month = (d: Date) => d.toISOString().slice(0, 7);
const past = '2026-10';

/** The response schema the SPLA route behind `path` documents in OpenAPI for `status`, if it is one. */
function documented(method: string, path: string, status: number) {
  const pathname = path.split('?')[0] ?? path;
  const route = splaFunctions.find(
    (d) =>
      d.endpoint.method === method &&
      new RegExp(`^/${d.route.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(pathname),
  );
  return route === undefined ? undefined : { schema: route.endpoint.responses[status]?.schema };
}

async function json<T>(
  path: string,
  init: RequestInit & { key?: string } = {},
): Promise<{ status: number; body: T }> {
  const response = await stack.api(path, { key, ...init });
  const body = (await response.json()) as T;
  // Every success answer of an SPLA route matches the schema its OpenAPI entry documents (strict: no
  // undocumented field either).
  const route = response.ok ? documented(init.method ?? 'GET', path, response.status) : undefined;
  if (route !== undefined) {
    expect(route.schema, `${path} documents a ${response.status} schema`).toBeDefined();
    route.schema?.parse(body);
  }
  return { status: response.status, body };
}

async function succeeded(response: Response): Promise<void> {
  const { operationId } = (await response.json()) as { operationId: string };
  await waitFor(async () => {
    const op = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as { state: string };
    if (op.state === 'succeeded') return true;
    if (['failed', 'compensated', 'cancelled'].includes(op.state)) throw new Error(`operation ${op.state}`);
    return undefined;
  }, `operation ${operationId}`);
}

type Row = {
  customerId: string;
  productId: string;
  sku: string;
  quantity: number;
  computedQuantity: number;
  state: string;
};

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
  });
  key = (await stack.deps.callers.createApiKey({ providerId: 'prov-spla', name: 'e2e' })).apiKey;
  otherKey = (await stack.deps.callers.createApiKey({ providerId: 'prov-spla-other', name: 'e2e' })).apiKey;
  const put = await stack.api('/customers/northwind', {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Northwind',
      identityMode: 'cloudOnly',
      entra: { tenantId, domains: ['northwind.example'] },
    }),
  });
  expect(put.status).toBe(201);
  groupId = (
    await stack.cloudDirectory(tenantId).createGroup({ displayName: 'Exchange users', mailNickname: 'exch' })
  ).id;
  for (const userId of ['nw-ann', 'nw-svc'])
    await succeeded(
      await stack.api('/customers/northwind/users', {
        method: 'POST',
        key,
        body: JSON.stringify({
          userId,
          userPrincipalName: `${userId}@northwind.example`,
          displayName: userId,
        }),
      }),
    );
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('SPLA reporting end to end', () => {
  it('takes products and per-customer rules, refusing a rule that does not fit the product unit', async () => {
    expect(
      (
        await json('/spla/products/exchange-std', {
          method: 'PUT',
          body: JSON.stringify({ name: 'Exchange Standard SAL', sku: '395-02504', unit: 'user' }),
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await json('/spla/products/sql-core', {
          method: 'PUT',
          body: JSON.stringify({ name: 'SQL Server Standard Core', sku: '7NQ-00302', unit: 'core' }),
        })
      ).status,
    ).toBe(200);
    const rule = {
      authorisedBy: { kind: 'groups', groups: [`entra.${groupId}`] },
      exclude: { serviceAccounts: true },
    };
    expect(
      (
        await json('/customers/northwind/spla/rules/exchange-std', {
          method: 'PUT',
          body: JSON.stringify(rule),
        })
      ).status,
    ).toBe(200);
    expect(
      (await json('/customers/northwind/spla/rules/sql-core', { method: 'PUT', body: JSON.stringify(rule) }))
        .status,
    ).toBe(400);
    expect(
      (
        await json('/customers/northwind/spla/rules/sql-core', {
          method: 'PUT',
          body: JSON.stringify({ fixedQuantity: 8 }),
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await json('/customers/northwind/spla/rules/sql-core', {
          method: 'PUT',
          key: otherKey,
          body: JSON.stringify({ fixedQuantity: 1 }),
        })
      ).status,
    ).toBe(404);
  });

  it("counts the users this month's group operations authorised, as JSON, CSV and the detail view", async () => {
    // nw-svc is a service account (a fact the rule's exclusion reads), known before it joins the group:
    // exclusions hold per instant.
    const now = new Date();
    const posted = await json<{ added: number }>('/customers/northwind/spla/evidence', {
      method: 'POST',
      body: JSON.stringify({
        events: [
          {
            type: 'user.facts',
            at: now.toISOString(),
            source: 'snapshot',
            ref: 'snap-1',
            userId: 'nw-svc',
            serviceAccount: true,
          },
        ],
      }),
    });
    expect(posted.body.added).toBe(1);
    for (const userId of ['nw-ann', 'nw-svc'])
      await succeeded(
        await stack.api(`/customers/northwind/users/${userId}/groups/entra.${groupId}`, {
          method: 'PUT',
          key,
        }),
      );
    const m = month(new Date());
    const report = await json<{ rows: Row[] }>(`/reports/spla?month=${m}&customerId=northwind`);
    expect(report.body.rows.map((r) => [r.productId, r.sku, r.quantity, r.state])).toEqual([
      ['exchange-std', '395-02504', 1, 'draft'],
      ['sql-core', '7NQ-00302', 8, 'draft'],
    ]);
    const detail = await json<{
      details: { userId: string; counted: boolean; excludedAs?: string; rule: string }[];
    }>(`/reports/spla?month=${m}&view=detail`);
    expect(detail.body.details.map((d) => [d.userId, d.counted, d.excludedAs ?? null, d.rule])).toEqual([
      ['nw-ann', true, null, `group entra.${groupId}`],
      ['nw-svc', false, 'serviceAccount', `group entra.${groupId}`],
    ]);
    const csv = await stack.api(`/reports/spla?month=${m}&format=csv`, { key });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await csv.text()).toBe(
      'month,customerId,productId,product,sku,quantity,state,corrected\r\n' +
        `${m},northwind,exchange-std,Exchange Standard SAL,395-02504,1,draft,false\r\n` +
        `${m},northwind,sql-core,SQL Server Standard Core,7NQ-00302,8,draft,false\r\n`,
    );
  });

  it('counts a member added outside atria-m365 once the daily snapshot has seen the group', async () => {
    const cloud = stack.cloudDirectory(tenantId);
    const outsider = await cloud.createUser({
      userPrincipalName: 'portal-added@northwind.example',
      displayName: 'Added in the portal',
      mailNickname: 'portal-added',
      password: 'Str0ng!Passw0rd#1',
    });
    await cloud.addGroupMember(groupId, outsider.id);
    const m = month(new Date());
    const detailOf = async () =>
      (
        await json<{ details: { userId: string; counted: boolean }[] }>(
          `/reports/spla?month=${m}&view=detail`,
        )
      ).body.details.map((d) => d.userId);
    expect(await detailOf()).not.toContain(`entra:${outsider.id}`);
    const snapshot = await stack.deps.spla.snapshotEntraGroups();
    expect(snapshot.failed).toEqual([]);
    // Our users keep their Atria ids; the stranger is counted by its Entra object id.
    expect(await detailOf()).toEqual(['nw-ann', 'nw-svc', `entra:${outsider.id}`].sort());
    await cloud.removeGroupMember(groupId, outsider.id);
  });

  it('closes a past month, keeps it frozen against late evidence, and accepts a correction with its reason', async () => {
    const events = [
      {
        type: 'member.added',
        at: `${past}-03T09:00:00.000Z`,
        source: 'manual',
        ref: 'import-1',
        groupKey: `entra.${groupId}`,
        member: { userId: 'nw-old' },
      },
      {
        type: 'member.removed',
        at: `${past}-05T17:00:00.000Z`,
        source: 'manual',
        ref: 'import-1',
        groupKey: `entra.${groupId}`,
        member: { userId: 'nw-old' },
      },
    ];
    await json('/customers/northwind/spla/evidence', { method: 'POST', body: JSON.stringify({ events }) });
    // A replay of the same import adds nothing.
    expect(
      (
        await json<{ added: number }>('/customers/northwind/spla/evidence', {
          method: 'POST',
          body: JSON.stringify({ events }),
        })
      ).body.added,
    ).toBe(0);

    const before = await stack.api(`/reports/spla?month=${past}&view=detail`, { key });
    const beforeText = await before.text();
    expect(JSON.parse(beforeText)).toMatchObject({
      details: [{ userId: 'nw-old', days: 3, from: `${past}-03T09:00:00.000Z` }],
    });
    // The same stored evidence gives the same bytes.
    expect(await (await stack.api(`/reports/spla?month=${past}&view=detail`, { key })).text()).toBe(
      beforeText,
    );

    expect((await json('/reports/spla/2099-01/close', { method: 'POST', body: '{}' })).status).toBe(409);
    expect(
      (
        await json('/reports/spla/' + past + '/corrections', {
          method: 'POST',
          body: JSON.stringify({
            customerId: 'northwind',
            productId: 'exchange-std',
            quantity: 2,
            reason: 'draft',
          }),
        })
      ).status,
    ).toBe(409);
    const closed = await json<{ value: { customerId: string }[] }>(`/reports/spla/${past}/close`, {
      method: 'POST',
      body: '{}',
    });
    expect(closed.body.value.map((c) => c.customerId)).toEqual(['northwind']);

    await json('/customers/northwind/spla/evidence', {
      method: 'POST',
      body: JSON.stringify({
        events: [
          {
            type: 'member.added',
            at: `${past}-20T09:00:00.000Z`,
            source: 'changeFeed',
            ref: 'late-1',
            groupKey: `entra.${groupId}`,
            member: { userId: 'nw-late' },
          },
        ],
      }),
    });
    const frozen = await json<{ rows: Row[] }>(`/reports/spla?month=${past}`);
    expect(frozen.body.rows.find((r) => r.productId === 'exchange-std')).toMatchObject({
      quantity: 1,
      state: 'closed',
    });

    const correction = await json('/reports/spla/' + past + '/corrections', {
      method: 'POST',
      body: JSON.stringify({
        customerId: 'northwind',
        productId: 'exchange-std',
        quantity: 2,
        reason: 'nw-late authorised on the 20th; change feed arrived after closing',
      }),
    });
    expect(correction.status).toBe(201);
    const corrected = await json<{ rows: Row[] }>(`/reports/spla?month=${past}`);
    expect(corrected.body.rows.find((r) => r.productId === 'exchange-std')).toMatchObject({
      quantity: 2,
      computedQuantity: 1,
    });
  });

  it('shows another provider nothing: no rows, 404 for the customer and its evidence', async () => {
    expect((await json<{ rows: Row[] }>(`/reports/spla?month=${past}`, { key: otherKey })).body.rows).toEqual(
      [],
    );
    expect((await json(`/reports/spla?month=${past}&customerId=northwind`, { key: otherKey })).status).toBe(
      404,
    );
    expect((await json(`/customers/northwind/spla/evidence?month=${past}`, { key: otherKey })).status).toBe(
      404,
    );
    expect(
      (
        await json('/customers/northwind/spla/evidence', {
          method: 'POST',
          key: otherKey,
          body: JSON.stringify({
            events: [
              {
                type: 'user.deleted',
                at: `${past}-01T00:00:00.000Z`,
                source: 'manual',
                ref: 'x',
                userId: 'nw-ann',
              },
            ],
          }),
        })
      ).status,
    ).toBe(404);
  });

  it('refuses a malformed month with 400', async () => {
    expect((await json('/reports/spla?month=2026-13')).status).toBe(400);
  });
});
