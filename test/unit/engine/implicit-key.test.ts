import { describe, expect, it } from 'vitest';
import { visibleOperationSchema, type Operation } from '../../../shared/domain/operation.js';
import { visibleUserSchema, type CreateUserRequest } from '../../../shared/domain/user.js';
import { AppError } from '../../../shared/errors.js';
import { engineCollections, userPartition } from '../../../shared/usecases/operations/records.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { ada, customer, retryingCrashes, world } from './world.js';

/**
 * A create without an Idempotency-Key is keyed by its user id, and its user record is the claim: the
 * record keeps the request's fingerprint, so the same request again gets the same operation, another
 * request for the id a Conflict, and no idempotency row is written. Records written before (or by an
 * explicit-key create) are answered through the idempotency row as before.
 */
type World = Awaited<ReturnType<typeof world>>;

const createImplicit = (w: World, request: CreateUserRequest = ada) =>
  w.provisioning.requestCreateUser({ caller: w.caller, customerId: 'contoso', request, correlationId: 'c' });

async function createRetrying(w: World, request: CreateUserRequest = ada): Promise<Operation> {
  return (await retryingCrashes(w.clock, w.store, () => createImplicit(w, request))).operation;
}

async function operationsOfCustomer(w: World): Promise<number> {
  const c = engineCollections(w.store);
  let n = 0;
  for await (const _ of c.customerOperations.list(userPartition('prov', 'contoso'))) n++;
  return n;
}

describe('a create under its implicit key', () => {
  it('is answered again from its user record: the same operation, before and after it ran, no idempotency row', async () => {
    const w = await world();
    const first = await createImplicit(w);
    expect(first.replayed).toBe(false);
    expect(w.store.writeLog).not.toContain('idempotency');
    const again = await createImplicit(w);
    expect(again).toMatchObject({ replayed: true, operation: { operationId: first.operation.operationId } });
    await w.pump();
    const later = await createImplicit(w);
    expect(later).toMatchObject({
      replayed: true,
      operation: { operationId: first.operation.operationId, state: 'succeeded' },
    });
    expect(w.agent.creates).toBe(1);
    expect(await operationsOfCustomer(w)).toBe(1);
    // The fingerprint stays internal: neither the operation nor the user shows it.
    expect(later.operation).not.toHaveProperty('requestHash');
    expect(await w.provisioning.getUser(w.caller, 'contoso', 'u-ada')).not.toHaveProperty('creation');
    // Nor does the API document it: the response schemas are the visible ones.
    for (const kind of visibleOperationSchema.options)
      for (const hidden of ['sealedPassword', 'lease', 'userRecordEtag', 'requestHash'])
        expect(Object.keys(kind.shape)).not.toContain(hidden);
    expect(Object.keys(visibleUserSchema.shape)).not.toContain('creation');
  });

  it('refuses another request for the same user id, while provisioning and once active', async () => {
    const w = await world();
    await createImplicit(w);
    const other = { ...ada, displayName: 'Ada King' };
    await expect(createImplicit(w, other)).rejects.toMatchObject({ code: 'Conflict' });
    await w.pump();
    await expect(createImplicit(w, other)).rejects.toMatchObject({ code: 'Conflict' });
    expect(await operationsOfCustomer(w)).toBe(1);
  });

  it('survives a crash at every write of its request: the retry stores one operation, listed once, run once', async () => {
    const clean = await world();
    await createImplicit(clean);
    const writes = clean.store.writes;
    expect(writes).toBeGreaterThanOrEqual(4);
    for (let write = 1; write <= writes; write++) {
      for (const when of ['before', 'after'] as const) {
        const w = await world();
        w.store.crashAt = { write, when };
        const created = await createRetrying(w);
        await w.pump();
        const where = `crash ${when} write ${write}`;
        expect((await w.provisioning.getOperation(w.caller, created.operationId)).state, where).toBe(
          'succeeded',
        );
        expect(await operationsOfCustomer(w), where).toBe(1);
        expect(w.agent.creates, where).toBe(1);
        expect(w.cloud.created, where).toBe(1);
      }
    }
  });

  it('starts a new operation for the same request once the user was deleted', async () => {
    const w = await world();
    const first = await createImplicit(w);
    await w.pump();
    await w.provisioning.requestUserChange({
      caller: w.caller,
      customerId: 'contoso',
      userId: 'u-ada',
      change: { kind: 'user.delete', request: {} },
      correlationId: 'c-del',
    });
    await w.pump();
    const again = await createImplicit(w);
    expect(again.replayed).toBe(false);
    expect(again.operation.operationId).not.toBe(first.operation.operationId);
    await w.pump();
    expect((await w.provisioning.getUser(w.caller, 'contoso', 'u-ada')).state).toBe('active');
    expect(w.agent.creates).toBe(2);
  });

  it('answers a record written before (no fingerprint on it) through its idempotency row', async () => {
    const w = await world();
    const c = engineCollections(w.store);
    const partition = userPartition('prov', 'contoso');
    const first = await createImplicit(w);
    await w.pump();
    // As an earlier build left it: the record without `creation`, the claim in an idempotency row.
    const stored = await c.operations.get('prov', first.operation.operationId);
    const hash = stored?.value.requestHash;
    expect(hash).toBeDefined();
    const record = await c.users.get(partition, 'u-ada');
    if (record === undefined || hash === undefined) throw new Error('not stored');
    const { creation: _creation, ...legacy } = record.value;
    await c.users.replace(partition, 'u-ada', legacy, record.etag);
    await c.idempotency.create(partition, 'user:u-ada', {
      operationId: first.operation.operationId,
      requestHash: hash,
      createdAt: stored?.value.createdAt ?? '',
    });
    const again = await createImplicit(w);
    expect(again).toMatchObject({ replayed: true, operation: { operationId: first.operation.operationId } });
    const other = createImplicit(w, { ...ada, displayName: 'Ada King' });
    await expect(other).rejects.toBeInstanceOf(AppError);
    await expect(other).rejects.toMatchObject({ code: 'Conflict' });
    expect(await operationsOfCustomer(w)).toBe(1);
  });

  it("another provider's create of the same customer and user id touches nothing of the first's", async () => {
    const w = await world();
    const first = await createImplicit(w);
    const other = { id: 'other-key', kind: 'apiKey' as const, providerId: 'other' };
    const foreign = w.provisioning.requestCreateUser({
      caller: other,
      customerId: 'contoso',
      request: ada,
      correlationId: 'c',
    });
    await expect(foreign).rejects.toMatchObject({ code: 'NotFound' });
    // With a customer of its own under the same id, its user is its own: a new operation, not a replay.
    await customersCollection(w.store).create('other', 'contoso', customer('hybridFederated', 'other'));
    const own = await w.provisioning.requestCreateUser({
      caller: other,
      customerId: 'contoso',
      request: ada,
      correlationId: 'c',
    });
    expect(own.replayed).toBe(false);
    expect(own.operation.operationId).not.toBe(first.operation.operationId);
    const mine = await w.provisioning.getUser(w.caller, 'contoso', 'u-ada');
    expect(mine.lastOperationId).toBe(first.operation.operationId);
    expect(await operationsOfCustomer(w)).toBe(1);
  });

  it('falls back to the idempotency row for a record an explicit-key create made', async () => {
    const w = await world();
    const explicit = await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: ada,
      idempotencyKey: 'k-1',
      correlationId: 'c',
    });
    await w.pump();
    // The same user under the implicit key: the id is taken by a live user (as before this change).
    await expect(createImplicit(w)).rejects.toMatchObject({ code: 'AlreadyExists' });
    const replay = await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: ada,
      idempotencyKey: 'k-1',
      correlationId: 'c',
    });
    expect(replay).toMatchObject({
      replayed: true,
      operation: { operationId: explicit.operation.operationId },
    });
  });
});
