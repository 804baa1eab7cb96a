import { describe, expect, it } from 'vitest';
import { operationSchema } from '../../../shared/domain/operation.js';
import { userRecordSchema, type CreateUserRequest } from '../../../shared/domain/user.js';
import type { NewCloudUser } from '../../../shared/ports/cloud-directory.js';
import { AppError } from '../../../shared/errors.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { ada, customer, quiet, world } from './world.js';

/**
 * What the engine spends per user, and how it shares the workers: an agent's reply continues the
 * operation where it lands (no queue hop, one write per step transition), and one customer's bulk
 * cannot hold every worker slot of a process.
 */
type World = Awaited<ReturnType<typeof world>>;

const create = (w: World, request: CreateUserRequest, customerId = 'contoso') =>
  w.provisioning.requestCreateUser({
    caller: w.caller,
    customerId,
    request,
    idempotencyKey: `key-${customerId}-${request.userId}`,
    correlationId: 'c-1',
  });

describe('engine throughput', () => {
  it("continues a hybrid create in the agent's reply: Entra and licences done with no queue message between", async () => {
    const w = await world();
    const { operation } = await create(w, ada);
    // The request parked ad.create itself: the command went to the agent with no queue message.
    expect(w.bus.queue).toHaveLength(0);
    expect(w.agent.inbox).toHaveLength(1);
    const writesBefore = w.store.writes;
    expect(await w.deliverAgent()).toBe(true);
    const done = await w.provisioning.getOperation(w.caller, operation.operationId);
    expect(done.state).toBe('succeeded');
    expect(done.outcomeApplied).toBe(true);
    expect(w.bus.queue).toHaveLength(0);
    expect(w.cloud.created).toBe(1);
    expect((await w.provisioning.getUser(w.caller, 'contoso', 'u-ada')).state).toBe('active');
    // The reply with ad.create's outcome and entra.create's lease (1), entra.create's outcome with the
    // licences lease (1), the user record (1), the final state with outcomeApplied (1), and the active
    // index deleted (1). The reply needs no route of its own: its command id names the operation.
    expect(w.store.writes - writesBefore).toBe(5);
  });

  it('stores a hybrid create already parked: its request writes the operation once, then sends', async () => {
    const w = await world();
    w.store.writeLog.length = 0;
    const { operation } = await create(w, ada);
    // One write of the operation (created parked, after its indexes), none rewritten. A brand-new
    // user's create has no row in the user's index (its record names it).
    expect(w.store.writeLog.slice(0, 2)).toEqual(['idempotency', 'users']);
    expect(w.store.writeLog.slice(2, 4).sort()).toEqual(['activeoperations', 'customeroperations']);
    expect(w.store.writeLog.slice(4)).toEqual(['operations']);
    expect(operation.state).toBe('waitingForAgent');
    const stored = await w.provisioning.getOperation(w.caller, operation.operationId);
    expect(stored.state).toBe('waitingForAgent');
    const step = stored.steps.find((s) => s.name === 'ad.create');
    expect(step).toMatchObject({ state: 'waitingForAgent', attempts: 1 });
    expect(step?.parked).toMatchObject({ commandId: `${operation.operationId}.ad.create`, sends: 1 });
    expect(w.agent.inbox).toHaveLength(1);
    expect(w.bus.queue).toHaveLength(0);
    expect(await w.deliverAgent()).toBe(true);
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    expect(w.agent.creates).toBe(1);
  });

  it('a hybrid create its tenancy check refuses is stored queued and fails visibly, nothing sent', async () => {
    const w = await world({
      deps: {
        assertWorkAllowed: () => Promise.reject(new AppError('Forbidden', 'not your site')),
      },
    });
    const { operation } = await create(w, ada);
    expect(w.agent.inbox).toHaveLength(0);
    const stored = await w.provisioning.getOperation(w.caller, operation.operationId);
    expect(stored.state).toBe('failed');
    expect(stored.error?.code).toBe('Forbidden');
    expect(w.agent.creates).toBe(0);
  });

  it('finishes a create without reading its user record while it is as the request wrote it', async () => {
    const w = await world();
    const { operation } = await create(w, ada);
    const before = w.store.reads.get('users') ?? 0;
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    // The hold-free create read it only through getUser below, never to finish.
    expect((w.store.reads.get('users') ?? 0) - before).toBe(0);
    const u = await w.provisioning.getUser(w.caller, 'contoso', 'u-ada');
    expect(u).toMatchObject({ state: 'active', lastOperationId: operation.operationId });
    expect(u.ad?.objectGuid).toBeDefined();
    expect(u.entra?.onPremisesImmutableId).toBe(u.ad?.objectGuid);
    expect(u.licences.map((l) => l.skuId)).toEqual(['6fd2c87f-b296-42f0-b197-1e91e994b900']);
  });

  it('reads the user record to finish once something else changed it', async () => {
    const w = await world();
    const { operation } = await create(w, ada);
    const users = w.store.collection('users', userRecordSchema);
    const row = await users.get('prov/contoso', 'u-ada');
    if (row === undefined) throw new Error('no user record');
    await users.replace('prov/contoso', 'u-ada', { ...row.value, displayName: 'Ada King' }, row.etag);
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    // The change is kept: the finish applied its outcome to the record as it is now.
    expect(await w.provisioning.getUser(w.caller, 'contoso', 'u-ada')).toMatchObject({
      state: 'active',
      displayName: 'Ada King',
    });
  });

  it('runs only an agent first step in the request: a cloud-only create is queued for the worker untouched', async () => {
    const w = await world({ mode: 'cloudOnly' });
    const { operation } = await create(w, { ...ada, password: undefined });
    expect(w.bus.queue.map((m) => m.body.type)).toEqual(['operation.run']);
    expect(w.cloud.created).toBe(0);
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('queued');
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
  });

  it('an agent channel down at acceptance schedules a retry; the create still succeeds once', async () => {
    let down = true;
    const w = await world({
      deps: {
        agentChannel: () =>
          down
            ? Promise.reject(new AppError('Unavailable', 'the bus is down', { retryable: true }))
            : Promise.resolve(w.agent.channel('site-1')),
      },
    });
    const { operation } = await create(w, ada);
    const accepted = await w.provisioning.getOperation(w.caller, operation.operationId);
    expect(accepted.state).toBe('retryScheduled');
    expect(w.agent.inbox).toHaveLength(0);
    down = false;
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    expect(w.agent.creates).toBe(1);
    expect(w.cloud.created).toBe(1);
  });

  it('saves the reply and queues a run when the operation is leased elsewhere: the reply is never lost', async () => {
    const w = await world();
    const { operation } = await create(w, ada);
    await w.deliverOne();
    // Another delivery holds a live lease (e.g. a resend after the park deadline is under way).
    const operations = w.store.collection('operations', operationSchema);
    const stored = await operations.get('prov', operation.operationId);
    if (stored === undefined) throw new Error('no operation');
    await operations.replace(
      'prov',
      operation.operationId,
      {
        ...stored.value,
        lease: { owner: 'other', expiresAt: new Date(w.clock.t + 60_000).toISOString() },
      },
      stored.etag,
    );
    await w.deliverAgent();
    const saved = await w.provisioning.getOperation(w.caller, operation.operationId);
    expect(saved.steps[0]?.reply?.ok).toBe(true);
    expect(w.bus.queue.some((m) => m.body.type === 'operation.run')).toBe(true);
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    expect(w.agent.creates).toBe(1);
    expect(w.cloud.created).toBe(1);
  });

  it("re-queues a customer's delivery past its share of workers, and another customer's runs meanwhile", async () => {
    const w = await world({ mode: 'cloudOnly', deps: { engine: { maxRunsPerCustomer: 2 } } });
    await customersCollection(w.store).create('prov', 'fabrikam', {
      ...customer('cloudOnly'),
      customerId: 'fabrikam',
      entra: { tenantId: '1c8d7e6f-5a4b-4c3d-9e2f-0a1b2c3d4e5f', domains: ['fabrikam.example'] },
    });
    // Graph is slow for the bulk customer: its creates hold their workers until released.
    let release: () => void = () => undefined;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const createUserOnce = w.cloud.createUserOnce.bind(w.cloud);
    w.cloud.createUserOnce = async (user: NewCloudUser, key: string) => {
      if (user.userPrincipalName.endsWith('@fed.contoso.example')) await slow;
      return createUserOnce(user, key);
    };
    const bulk = await Promise.all(
      [1, 2, 3].map((i) =>
        create(w, {
          ...ada,
          userId: `b${i}`,
          userPrincipalName: `b${i}@fed.contoso.example`,
          password: undefined,
        }),
      ),
    );
    const single = await create(
      w,
      { ...ada, userId: 's1', userPrincipalName: 's1@fabrikam.example', password: undefined },
      'fabrikam',
    );
    const run = (operationId: string) =>
      w.provisioning.runOperation({
        providerId: 'prov',
        operationId,
        runId: `r-${operationId}`,
        messageId: `m-${operationId}`,
        log: quiet,
      });
    const first = bulk.map((b) => run(b.operation.operationId));
    // Two bulk runs hold their customer's share; the third is handed back without a write.
    const third = await first[2];
    expect(third).toBe('requeued');
    const requeued = w.bus.queue.filter(
      (m) =>
        m.body.type === 'operation.run' &&
        m.body.operationId === bulk[2]?.operation.operationId &&
        m.options.scheduledEnqueueTime !== undefined,
    );
    expect(requeued).toHaveLength(1);
    expect((await w.provisioning.getOperation(w.caller, bulk[2]?.operation.operationId ?? '')).state).toBe(
      'queued',
    );
    // A message whose customer hint is past its share goes back to its turn without reading storage
    // (an id that names no operation is not even looked up; its run would fail it when it comes back).
    expect(
      await w.provisioning.runOperation({
        providerId: 'prov',
        operationId: 'not-read',
        runId: 'r-hinted',
        messageId: 'm-hinted',
        log: quiet,
        customerHint: 'contoso',
      }),
    ).toBe('requeued');
    expect(
      w.bus.queue.filter((m) => m.body.type === 'operation.run' && m.body.operationId === 'not-read'),
    ).toHaveLength(1);
    w.bus.queue = w.bus.queue.filter(
      (m) => m.body.type !== 'operation.run' || m.body.operationId !== 'not-read',
    );
    // The other customer is not behind them.
    expect(await run(single.operation.operationId)).toBe('finished');
    release();
    expect(await Promise.all(first.slice(0, 2))).toEqual(['finished', 'finished']);
    await w.pump();
    for (const b of bulk)
      expect((await w.provisioning.getOperation(w.caller, b.operation.operationId)).state).toBe('succeeded');
    expect(w.cloud.created).toBe(4);
  });
});
