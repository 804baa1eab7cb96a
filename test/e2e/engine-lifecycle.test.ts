import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { graphSeed, startTestStack, waitFor, type TestStack } from '../support/stack.js';

/**
 * The user lifecycle without dead ends, over HTTP: retry a failed create with a corrected body, reuse
 * a deleted user's id, cancel a held operation, page through a customer's operations.
 */
const tenantId = randomUUID();
const seed = graphSeed({
  id: tenantId,
  displayName: 'Litware',
  domains: [{ id: 'litware.example', isDefault: true, authenticationType: 'Managed' }],
});

let stack: TestStack;
let key: string;

type Op = { operationId: string; state: string; retriedBy?: string; error?: { code: string } };
const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled', 'needsLicence'];

async function finished(operationId: string): Promise<Op> {
  return waitFor(async () => {
    const op = (await (await stack.api(`/operations/${operationId}`, { key })).json()) as Op;
    return finalStates.includes(op.state) ? op : undefined;
  }, `operation ${operationId}`);
}

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; op: Op }> {
  const response = await stack.api(path, {
    method,
    key,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, op: (await response.json()) as Op };
}

beforeAll(async () => {
  stack = await startTestStack({
    storageConnectionString: inject('storageConnectionString'),
    graphSeed: seed,
    extraSettings: { Guard__minUsers: '1', Guard__maxSharePercent: '1', Guard__windowInMinutes: '60' },
  });
  key = (await stack.deps.callers.createApiKey({ providerId: 'prov-life', name: 'e2e' })).apiKey;
  const put = await stack.api('/customers/litware', {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Litware',
      identityMode: 'cloudOnly',
      entra: { tenantId, domains: ['litware.example'] },
    }),
  });
  expect(put.status).toBe(201);
});

afterAll(async () => {
  await stack.stop();
});

describe('user lifecycle without dead ends', () => {
  it('retries a failed create with a corrected body; the old operation points at its retry', async () => {
    await stack.cloudDirectory(tenantId).createUser({
      userPrincipalName: 'taken@litware.example',
      displayName: 'Someone else',
      mailNickname: 'taken',
      accountEnabled: true,
      password: `Aa1!${randomUUID()}`,
    });
    const first = await call('POST', '/customers/litware/users', {
      userId: 'u-fix',
      userPrincipalName: 'taken@litware.example',
      displayName: 'Fix Me',
    });
    expect(first.status).toBe(202);
    const failed = await finished(first.op.operationId);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('AlreadyExists');

    const retry = await call('POST', `/operations/${failed.operationId}/retry`, {
      user: { userId: 'u-fix', userPrincipalName: 'fixed@litware.example', displayName: 'Fixed' },
    });
    expect(retry.status).toBe(202);
    expect((await finished(retry.op.operationId)).state).toBe('succeeded');
    expect((await call('GET', `/operations/${failed.operationId}`)).op.retriedBy).toBe(retry.op.operationId);
    // Retrying the same operation again answers with the same retry.
    const again = await call('POST', `/operations/${failed.operationId}/retry`, {
      user: { userId: 'u-fix', userPrincipalName: 'fixed@litware.example', displayName: 'Fixed' },
    });
    expect(again.status).toBe(200);
    expect(again.op.operationId).toBe(retry.op.operationId);
  });

  it('cancels a delete held by the guard, and reuses a deleted user id', async () => {
    const created = await call('POST', '/customers/litware/users', {
      userId: 'u-gone',
      userPrincipalName: 'gone@litware.example',
      displayName: 'Gone',
    });
    expect((await finished(created.op.operationId)).state).toBe('succeeded');

    const held = await call('DELETE', '/customers/litware/users/u-gone');
    expect(held.op.state).toBe('heldForConfirmation');
    // Another provider can neither confirm, cancel nor retry it: 404 as for a missing one, nothing moves.
    const other = (await stack.deps.callers.createApiKey({ providerId: 'prov-life-other', name: 'other' }))
      .apiKey;
    for (const action of ['confirm', 'cancel', 'retry']) {
      const response = await stack.api(`/operations/${held.op.operationId}/${action}`, {
        method: 'POST',
        key: other,
        body: '{}',
      });
      expect(response.status, action).toBe(404);
    }
    const still = (await (await stack.api(`/operations/${held.op.operationId}`, { key })).json()) as Op;
    expect(still.state).toBe('heldForConfirmation');
    const cancel = await call('POST', `/operations/${held.op.operationId}/cancel`);
    expect(cancel.status).toBe(202);
    expect((await finished(held.op.operationId)).state).toBe('cancelled');
    expect((await call('GET', '/customers/litware/users/u-gone')).op.state).toBe('active');

    const deletion = await call('DELETE', '/customers/litware/users/u-gone');
    await call('POST', `/operations/${deletion.op.operationId}/confirm`);
    expect((await finished(deletion.op.operationId)).state).toBe('succeeded');
    const reused = await call('POST', '/customers/litware/users', {
      userId: 'u-gone',
      userPrincipalName: 'back@litware.example',
      displayName: 'Back',
    });
    expect(reused.status).toBe(202);
    expect((await finished(reused.op.operationId)).state).toBe('succeeded');
  });

  it("pages a customer's operations newest first with nextLink", async () => {
    const seen: Op[] = [];
    let pages = 0;
    let next: string | undefined = '/customers/litware/operations?limit=2';
    while (next !== undefined) {
      const response = await stack.api(next.replace(/^\/api/, ''), { key });
      expect(response.status).toBe(200);
      const page = (await response.json()) as { value: Op[]; nextLink?: string };
      expect(page.value.length).toBeLessThanOrEqual(2);
      pages++;
      seen.push(...page.value);
      next = page.nextLink;
    }
    expect(seen.length).toBe(6); // two creates, a retry, a held and a confirmed delete, a reuse
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(new Set(seen.map((o) => o.operationId)).size).toBe(seen.length);
    const created = seen.map((o) => (o as Op & { createdAt: string }).createdAt);
    expect([...created].sort().reverse()).toEqual(created);
  });
});
