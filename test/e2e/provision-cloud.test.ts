import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

const tenantId = randomUUID();
const skuE3 = randomUUID();
const seed = graphSeed({
  id: tenantId,
  displayName: 'Fabrikam',
  domains: [{ id: 'fabrikam.example', isDefault: true, authenticationType: 'Managed' }],
  skus: [{ skuId: skuE3, skuPartNumber: 'ENTERPRISEPACK', enabled: 2 }],
});

let stack: TestStack;
let key: string;
let otherProviderKey: string;
let narrowKey: string;

type Op = {
  operationId: string;
  state: string;
  steps: { name: string; state: string; result?: Record<string, string> }[];
};

async function finished(operationId: string): Promise<Op> {
  return waitFor(async () => {
    const response = await stack.api(`/operations/${operationId}`, { key });
    const op = (await response.json()) as Op;
    return ['succeeded', 'failed', 'compensated', 'needsLicence'].includes(op.state) ? op : undefined;
  }, `operation ${operationId}`);
}

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    // Small numbers so four users can show the accidental-change guard.
    extraSettings: { Guard__minUsers: '2', Guard__maxSharePercent: '30', Guard__windowInMinutes: '60' },
  });
  key = (await stack.deps.callers.createApiKey({ providerId: 'prov-cloud', name: 'e2e' })).apiKey;
  otherProviderKey = (await stack.deps.callers.createApiKey({ providerId: 'prov-other', name: 'e2e other' }))
    .apiKey;
  narrowKey = (
    await stack.deps.callers.createApiKey({
      providerId: 'prov-cloud',
      customerIds: ['someone-else'],
      name: 'narrow',
    })
  ).apiKey;
  const put = await stack.api('/customers/fabrikam', {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Fabrikam',
      identityMode: 'cloudOnly',
      entra: { tenantId, domains: ['fabrikam.example'] },
      defaultUsageLocation: 'NL',
      licencePlans: [{ name: 'E3', skus: [{ skuId: skuE3 }] }],
    }),
  });
  expect(put.status).toBe(201);
});

afterAll(async () => {
  await stack.stop();
});

describe('cloud-only provisioning end to end (HTTP → Service Bus → worker → Graph peer)', () => {
  it('creates the user in Entra ID with a licence and links Atria id ↔ Entra object id', async () => {
    const response = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key,
      headers: { 'idempotency-key': 'create-ann-1' },
      body: JSON.stringify({
        userId: 'u-ann',
        userPrincipalName: 'ann@fabrikam.example',
        displayName: 'Ann Smith',
        licencePlan: 'E3',
      }),
    });
    expect(response.status).toBe(202);
    const accepted = (await response.json()) as Op;
    expect(response.headers.get('location')).toBe(`/api/operations/${accepted.operationId}`);
    const op = await finished(accepted.operationId);
    expect(op.state).toBe('succeeded');
    expect(op.steps.map((s) => [s.name, s.state])).toEqual([
      ['entra.create', 'done'],
      ['licences', 'done'],
    ]);

    const user = (await (await stack.api('/customers/fabrikam/users/u-ann', { key })).json()) as {
      state: string;
      entra: { objectId: string };
      licences: { skuId: string }[];
    };
    expect(user.state).toBe('active');
    // The app's own record is above; now ask Graph itself through a separate client.
    const cloud = stack.cloudDirectory(tenantId);
    const graphUser = await cloud.getUser('ann@fabrikam.example');
    expect(graphUser.id).toBe(user.entra.objectId);
    expect(graphUser.usageLocation).toBe('NL');
    expect(graphUser.assignedLicences.map((l) => l.skuId)).toEqual([skuE3]);
    expect(user.licences.map((l) => l.skuId)).toEqual([skuE3]);
    const skus = await cloud.listSubscribedSkus();
    expect(skus.find((s) => s.skuId === skuE3)?.consumedUnits).toBe(1);
  });

  it('replays the same Idempotency-Key with the same operation and refuses it for another body', async () => {
    const body = { userId: 'u-ben', userPrincipalName: 'ben@fabrikam.example', displayName: 'Ben' };
    const first = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key,
      headers: { 'idempotency-key': 'ben-1' },
      body: JSON.stringify(body),
    });
    const again = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key,
      headers: { 'idempotency-key': 'ben-1' },
      body: JSON.stringify(body),
    });
    expect(first.status).toBe(202);
    expect(again.status).toBe(200);
    const a = (await first.json()) as Op;
    const b = (await again.json()) as Op;
    expect(b.operationId).toBe(a.operationId);
    const changed = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key,
      headers: { 'idempotency-key': 'ben-1' },
      body: JSON.stringify({ ...body, displayName: 'Benjamin' }),
    });
    expect(changed.status).toBe(409);
    expect((await finished(a.operationId)).state).toBe('succeeded');
  });

  it('holds the operation in needs-licence when no seat is free, without failing it', async () => {
    // Two seats: ann took one; cid takes the last (finished before dee is sent, so the order is
    // certain); dee finds none.
    const provision = async (id: string, name: string): Promise<Op> => {
      const response = await stack.api('/customers/fabrikam/users', {
        method: 'POST',
        key,
        body: JSON.stringify({
          userId: id,
          userPrincipalName: `${name}@fabrikam.example`,
          displayName: name,
          licencePlan: 'E3',
        }),
      });
      return finished(((await response.json()) as Op).operationId);
    };
    const cid = await provision('u-cid', 'cid');
    const dee = await provision('u-dee', 'dee');
    expect(cid.state).toBe('succeeded');
    expect(dee.state).toBe('needsLicence');
    expect(dee.steps.find((s) => s.name === 'licences')?.state).toBe('waiting');
    const user = (await (await stack.api('/customers/fabrikam/users/u-dee', { key })).json()) as {
      state: string;
      entra?: { objectId: string };
    };
    expect(user.state).toBe('needsLicence');
    expect(user.entra?.objectId).toBeDefined();

    // A seat is bought (the Graph peer's admin stands in for Partner Center); the sweep timer resumes dee.
    const seat = await fetch(`${stack.graph.adminUrl}/tenants/${tenantId}/skus/${skuE3}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ skuPartNumber: 'ENTERPRISEPACK', enabled: 3 }),
    });
    expect(seat.status).toBe(200);
    await stack.host.runTimer('licence-sweep');
    const resumed = await waitFor(async () => {
      const op = (await (await stack.api(`/operations/${dee.operationId}`, { key })).json()) as Op;
      return op.state === 'succeeded' ? op : undefined;
    }, 'the held operation to resume');
    expect(resumed.steps.find((s) => s.name === 'licences')?.state).toBe('done');
    const after = (await (await stack.api('/customers/fabrikam/users/u-dee', { key })).json()) as {
      state: string;
      licences: { skuId: string }[];
    };
    expect(after.state).toBe('active');
    expect(after.licences.map((l) => l.skuId)).toEqual([skuE3]);
  });

  it('names the bad field in a 400 problem and answers 404 for an unknown customer', async () => {
    const bad = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key,
      body: JSON.stringify({ userId: 'u-x', userPrincipalName: 'not-an-upn', displayName: '' }),
    });
    expect(bad.status).toBe(400);
    const problem = (await bad.json()) as { code: string; errors: { path: string }[] };
    expect(problem.code).toBe('Validation');
    expect(problem.errors.map((e) => e.path)).toEqual(
      expect.arrayContaining(['body.userPrincipalName', 'body.displayName']),
    );
    const wrongDomain = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key,
      body: JSON.stringify({ userId: 'u-y', userPrincipalName: 'y@elsewhere.example', displayName: 'Y' }),
    });
    expect(wrongDomain.status).toBe(400);
    expect((await stack.api('/customers/nobody/users/u-ann', { key })).status).toBe(404);
  });

  it("never lets a caller reach another provider's or an out-of-scope customer", async () => {
    expect((await stack.api('/customers/fabrikam', { key: otherProviderKey })).status).toBe(404);
    expect((await stack.api('/customers/fabrikam/users/u-ann', { key: otherProviderKey })).status).toBe(404);
    const list = (await (await stack.api('/customers/fabrikam/operations', { key })).json()) as {
      value: Op[];
    };
    const someOp = list.value[0]?.operationId ?? '';
    expect((await stack.api(`/operations/${someOp}`, { key: otherProviderKey })).status).toBe(404);
    expect((await stack.api(`/operations/${someOp}`, { key: narrowKey })).status).toBe(404);
    expect((await stack.api('/customers/fabrikam', { key: narrowKey })).status).toBe(403);
    const create = await stack.api('/customers/fabrikam/users', {
      method: 'POST',
      key: otherProviderKey,
      body: JSON.stringify({
        userId: 'u-evil',
        userPrincipalName: 'evil@fabrikam.example',
        displayName: 'Evil',
      }),
    });
    expect(create.status).toBe(404);
  });

  it("holds a disable that would hit too many of the customer's users until it is confirmed", async () => {
    // Four users exist (ann, ben, cid, dee). One disable is below the threshold; the second is 2 of 4.
    const first = await stack.api('/customers/fabrikam/users/u-ben/disable', { method: 'POST', key });
    expect(first.status).toBe(202);
    expect((await finished(((await first.json()) as Op).operationId)).state).toBe('succeeded');
    const second = await stack.api('/customers/fabrikam/users/u-cid/disable', { method: 'POST', key });
    const held = (await second.json()) as Op & { error?: { code: string } };
    expect(held.state).toBe('heldForConfirmation');
    expect(held.error?.code).toBe('HeldForConfirmation');
    // Nothing happens while it is held.
    await new Promise((r) => setTimeout(r, 300));
    expect(((await (await stack.api(`/operations/${held.operationId}`, { key })).json()) as Op).state).toBe(
      'heldForConfirmation',
    );
    const confirm = await stack.api(`/operations/${held.operationId}/confirm`, { method: 'POST', key });
    expect(confirm.status).toBe(200);
    expect((await finished(held.operationId)).state).toBe('succeeded');
    const cid = (await (await stack.api('/customers/fabrikam/users/u-cid', { key })).json()) as {
      state: string;
      entra: { objectId: string };
    };
    expect(cid.state).toBe('disabled');
    const cloud = stack.cloudDirectory(tenantId);
    expect((await cloud.getUser(cid.entra.objectId)).accountEnabled).toBe(false);
  });

  it('creates every user exactly once through Graph throttling, random 503s and replication lag', async () => {
    const admin = (path: string, body?: unknown) =>
      fetch(`${stack.graph.adminUrl}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    await admin('/faults', {
      // 3 writes per second: the first runs (up to Engine__maxRunsPerCustomer, 6, at once) collide with it.
      throttling: { enabled: true, scale: 0.001, windowInMs: 1000, writeWindowInMs: 1000 },
      random503Rate: 0.05,
      replicationLagInMs: 400,
    });
    try {
      const ids = Array.from({ length: 16 }, (_, i) => `bulk-${i}`);
      const accepted = await Promise.all(
        ids.map(async (id) => {
          const response = await stack.api('/customers/fabrikam/users', {
            method: 'POST',
            key,
            body: JSON.stringify({
              userId: id,
              userPrincipalName: `${id}@fabrikam.example`,
              displayName: id,
            }),
          });
          expect(response.status).toBe(202);
          return ((await response.json()) as Op).operationId;
        }),
      );
      const ops = await Promise.all(
        accepted.map((id) =>
          waitFor(
            async () => {
              const op = (await (await stack.api(`/operations/${id}`, { key })).json()) as Op;
              return op.state === 'succeeded' || op.state === 'failed' || op.state === 'compensated'
                ? op
                : undefined;
            },
            `operation ${id}`,
            90_000,
          ),
        ),
      );
      expect(ops.map((o) => o.state)).toEqual(ids.map(() => 'succeeded'));
      const stats = (await (await admin('/faults')).json()) as {
        stats: { throttled: number; unavailable: number };
      };
      expect(stats.stats.throttled).toBeGreaterThan(0);

      await admin('/faults', { throttling: { enabled: false }, random503Rate: 0, replicationLagInMs: 0 });
      const cloud = stack.cloudDirectory(tenantId);
      for (const id of ids) {
        const record = (await (await stack.api(`/customers/fabrikam/users/${id}`, { key })).json()) as {
          entra: { objectId: string };
        };
        const inGraph = await cloud.getUser(`${id}@fabrikam.example`);
        expect(inGraph.id).toBe(record.entra.objectId);
      }
      // One Entra user per request: the delta of the whole tenant holds each UPN once.
      const upns: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await cloud.listUserChanges(cursor);
        for (const change of page.changes)
          if (change.kind === 'upserted' && change.user.userPrincipalName !== undefined)
            upns.push(change.user.userPrincipalName);
        if (page.nextCursor === undefined) break;
        cursor = page.nextCursor;
      }
      for (const id of ids) expect(upns.filter((u) => u === `${id}@fabrikam.example`)).toHaveLength(1);
    } finally {
      await admin('/faults', { throttling: { enabled: false }, random503Rate: 0, replicationLagInMs: 0 });
    }
  }, 120_000);
});
