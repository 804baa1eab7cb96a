import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { operationSchema, type Operation } from '../../../shared/domain/operation.js';
import type { CreateUserRequest } from '../../../shared/domain/user.js';
import { AppError } from '../../../shared/errors.js';
import { engineCollections, HELD_PARTITION } from '../../../shared/usecases/operations/records.js';
import { ada, Crash, noFreeSeats, quiet, retryingCrashes, world } from './world.js';

/**
 * The saga runner against in-memory ports: crashes between any two writes, concurrent deliveries,
 * lease expiry, agent outages, undo failures. Every case ends with each effect applied once and the
 * operation in a final state.
 */
type World = Awaited<ReturnType<typeof world>>;

async function create(w: World, request: CreateUserRequest = ada): Promise<Operation> {
  // The HTTP client retries its request (same Idempotency-Key) when the server died answering it.
  const { operation } = await retryingCrashes(w.clock, w.store, () =>
    w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request,
      idempotencyKey: `key-${request.userId}`,
      correlationId: 'c-1',
    }),
  );
  return operation;
}

const op = (w: World, id: string) => w.provisioning.getOperation(w.caller, id);
const user = (w: World, id = 'u-ada') => w.provisioning.getUser(w.caller, 'contoso', id);

describe('the saga runner', () => {
  it('runs a hybrid create: AD parks for the agent and its reply resumes Entra and licences', async () => {
    const w = await world();
    const created = await create(w);
    // The request itself parked it: the command is with the agent, no run message was queued.
    expect(w.bus.queue).toHaveLength(0);
    expect(w.agent.inbox).toHaveLength(1);
    const parked = await op(w, created.operationId);
    expect(parked.state).toBe('waitingForAgent');
    expect(parked.steps[0]).toMatchObject({ name: 'ad.create', state: 'waitingForAgent' });
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('succeeded');
    expect(done.steps.map((s) => s.state)).toEqual(['done', 'done', 'done']);
    const u = await user(w);
    expect(u.state).toBe('active');
    expect(u.ad?.objectGuid).toBe(done.steps[0]?.result?.objectGuid);
    expect(u.entra?.onPremisesImmutableId).toBe(u.ad?.objectGuid);
    expect(w.agent.creates).toBe(1);
    expect(w.cloud.created).toBe(1);
    expect(done.sealedPassword).toBeUndefined();
  });

  it("takes a reply only from the customer's own site, for a command it parked on: all else is ignored", async () => {
    const w = await world();
    const created = await create(w);
    const parked = await op(w, created.operationId);
    const item = w.agent.inbox[0];
    if (item === undefined) throw new Error('nothing sent to the agent');
    const writes = w.store.writes;
    const reply = w.agent.answer('site-1', item);
    const tries = [
      { ...reply, siteId: 'site-9' }, // a site of another provider
      { ...reply, siteId: 'site-2' }, // another site of the same provider
      { ...reply, siteId: 'nowhere' }, // no such site
      { ...reply, commandId: `${created.operationId}.entra.create` }, // a command it did not park on
      { ...reply, commandId: 'no-operation-id' },
      { ...reply, commandId: `${crypto.randomUUID()}.ad.create` },
    ];
    for (const wrong of tries) expect(await w.provisioning.acceptAgentReply(wrong, quiet)).toBe('ignored');
    expect(w.store.writes).toBe(writes);
    expect(await op(w, created.operationId)).toEqual(parked);
    // The customer's own site's reply continues the operation.
    expect(await w.provisioning.acceptAgentReply(reply, quiet)).toBe('resumed');
    expect((await op(w, created.operationId)).steps[0]?.state).toBe('done');
  });

  it('survives a crash at every point between two writes: each effect once, the operation final', async () => {
    const clean = await world();
    await create(clean);
    await clean.pump();
    const writes = clean.store.writes;
    expect(writes).toBeGreaterThan(8);
    for (let write = 1; write <= writes; write++) {
      for (const when of ['before', 'after'] as const) {
        const w = await world();
        w.store.crashAt = { write, when };
        const created = await create(w);
        await w.pump();
        const done = await op(w, created.operationId);
        const where = `crash ${when} write ${write}`;
        expect(done.state, where).toBe('succeeded');
        expect(w.agent.creates, where).toBe(1);
        expect(w.cloud.created, where).toBe(1);
        expect(done.outcomeApplied, where).toBe(true);
        const u = await user(w);
        expect(u.state, where).toBe('active');
        expect(u.ad, where).toBeDefined();
        expect(u.entra, where).toBeDefined();
        // Listed once: the retry stored it under the first attempt's time, so its index rows are the same.
        const listed = await w.provisioning.listOperations(w.caller, 'contoso', { limit: 10 });
        expect(
          listed.value.map((o) => o.operationId),
          where,
        ).toEqual([created.operationId]);
      }
    }
  });

  it('survives a crash at every write of a compensation: the AD account is created once and undone once', async () => {
    const setup = async (w: World) =>
      w.cloud.createUser({
        userPrincipalName: ada.userPrincipalName,
        displayName: 'Someone else',
        mailNickname: 'x',
        accountEnabled: true,
        password: 'x',
      });
    const clean = await world();
    await setup(clean);
    await create(clean);
    await clean.pump();
    const writes = clean.store.writes;
    for (let write = 1; write <= writes; write++) {
      for (const when of ['before', 'after'] as const) {
        const w = await world();
        await setup(w);
        w.store.crashAt = { write, when };
        const created = await create(w);
        await w.pump();
        const where = `crash ${when} write ${write}`;
        const done = await op(w, created.operationId);
        expect(done.state, where).toBe('compensated');
        expect(done.error?.code, where).toBe('AlreadyExists');
        expect(w.agent.creates, where).toBe(1);
        expect(
          [...w.agent.objects.values()].map((o) => o.deleted),
          where,
        ).toEqual([true]);
        expect(w.cloud.created, where).toBe(1); // only the other party's user
        expect((await user(w)).state, where).toBe('failed');
      }
    }
  });

  /** A licensed cloud-only create whose licence assignment first meets `lag` replication-lag 404s. */
  async function createLagged(lag: number) {
    const w = await world({ mode: 'cloudOnly' });
    w.cloud.lagNotFound = lag;
    const created = await create(w, { ...ada, userId: `u-lag${lag}`, password: undefined });
    await w.pump();
    return { w, done: await op(w, created.operationId) };
  }

  it('takes a 404 about the user this create just made for replication lag: retried, never undone', async () => {
    // Longer than the adapter's own in-process lag retries, and the run may be on another instance.
    const { w, done } = await createLagged(3);
    expect(done.state).toBe('succeeded');
    expect(w.cloud.created).toBe(1);
    expect(w.cloud.deleted).toBe(0);
    expect(w.cloud.lagNotFound).toBe(0);
  });

  it('a 404 about the user long after its create is NotFound for good', async () => {
    const { w, done } = await createLagged(1000);
    expect(done.state).toBe('compensated');
    expect(done.error?.code).toBe('NotFound');
    expect(w.cloud.deleted).toBe(1);
  });

  it('lets one of two concurrent deliveries run a step; the other backs off and runs nothing twice', async () => {
    const w = await world({ mode: 'cloudOnly' });
    const created = await create(w, {
      ...ada,
      userPrincipalName: 'ada@fed.contoso.example',
      password: undefined,
    });
    const run = () =>
      w.provisioning.runOperation({
        providerId: 'prov',
        operationId: created.operationId,
        runId: Math.random().toString(36),
        messageId: 'm-1',
        log: quiet,
      });
    const outcomes = await Promise.all([run(), run()]);
    expect(outcomes).toContain('busy');
    await w.pump();
    expect((await op(w, created.operationId)).state).toBe('succeeded');
    expect(w.cloud.created).toBe(1);
  });

  it('waits out a live lease and takes over an expired one without repeating the step', async () => {
    const w = await world({ mode: 'cloudOnly' });
    const created = await create(w, { ...ada, password: undefined });
    w.bus.queue.length = 0;
    // A worker takes the lease for entra.create, calls Graph, then dies before saving the outcome.
    w.store.crashAt = { write: w.store.writes + 2, when: 'before' };
    await expect(
      w.provisioning.runOperation({
        providerId: 'prov',
        operationId: created.operationId,
        runId: 'dead',
        messageId: 'm-1',
        log: quiet,
      }),
    ).rejects.toBeInstanceOf(Crash);
    expect(w.cloud.created).toBe(1);
    const leased = await w.store.collection('operations', operationSchema).get('prov', created.operationId);
    expect(leased?.value.lease?.owner).toBe('dead');
    // A redelivery while the lease lives backs off until it expires.
    const early = await w.provisioning.runOperation({
      providerId: 'prov',
      operationId: created.operationId,
      runId: 'second',
      messageId: 'm-2',
      log: quiet,
    });
    expect(early).toBe('busy');
    const later = w.bus.queue.at(-1)?.options.scheduledEnqueueTime?.getTime() ?? 0;
    expect(later).toBeGreaterThan(new Date(leased?.value.lease?.expiresAt ?? 0).getTime());
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('succeeded');
    expect(w.cloud.created).toBe(1); // the user the dead worker made was adopted, not made again
  });

  it('undoes AD when Entra refuses the user for good: compensating, then compensated, the original error kept', async () => {
    const w = await world();
    await w.cloud.createUser({
      userPrincipalName: ada.userPrincipalName,
      displayName: 'Someone else',
      mailNickname: 'x',
      accountEnabled: true,
      password: 'x',
    });
    const created = await create(w);
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('compensated');
    expect(done.error).toMatchObject({ code: 'AlreadyExists', attribute: 'userPrincipalName' });
    expect(done.steps.map((s) => [s.name, s.state])).toEqual([
      ['ad.create', 'compensated'],
      ['entra.create', 'failed'],
      ['licences', 'pending'],
    ]);
    expect([...w.agent.objects.values()].every((o) => o.deleted)).toBe(true);
    expect((await user(w)).state).toBe('failed');
    // A later delivery never re-runs the failed or the compensated step.
    const creates = w.agent.creates;
    await w.provisioning.runOperation({
      providerId: 'prov',
      operationId: created.operationId,
      runId: 'again',
      messageId: 'm-x',
      log: quiet,
    });
    expect(w.agent.creates).toBe(creates);
    expect((await op(w, created.operationId)).state).toBe('compensated');
  });

  it('ends compensationFailed when the undo fails for good, keeping both errors', async () => {
    const w = await world();
    w.agent.failDeletes = true;
    await w.cloud.createUser({
      userPrincipalName: ada.userPrincipalName,
      displayName: 'Someone else',
      mailNickname: 'x',
      accountEnabled: true,
      password: 'x',
    });
    const created = await create(w);
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('compensationFailed');
    expect(done.error?.code).toBe('AlreadyExists');
    expect(done.steps[0]).toMatchObject({ state: 'compensationFailed', undoError: { code: 'Forbidden' } });
    // The AD account still exists: the user record keeps its link so a person can find it.
    expect((await user(w)).ad).toBeDefined();
  });

  it('retries an agent outage with backoff: a new message id per send, one command id, applied once', async () => {
    const w = await world();
    w.agent.unavailableFor = 4;
    const sends: { commandId: string; sendId: string }[] = [];
    const submitted = w.agent.inbox;
    const push = submitted.push.bind(submitted);
    submitted.push = (...items) => {
      for (const i of items) sends.push({ commandId: i.options.commandId, sendId: i.options.sendId });
      return push(...items);
    };
    const created = await create(w);
    const started = w.clock.t;
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('succeeded');
    expect(done.retries).toBe(4);
    const ad = sends.filter((s) => s.commandId.endsWith('.ad.create'));
    expect(ad).toHaveLength(5);
    expect(new Set(ad.map((s) => s.sendId)).size).toBe(5);
    expect(w.agent.creates).toBe(1);
    // 2 s base, doubling, jitter 0.5 → ≥ 1 + 2 + 4 + 8 s of waiting.
    expect(w.clock.t - started).toBeGreaterThanOrEqual(15_000);
  });

  it('honours Retry-After from Graph', async () => {
    const w = await world({ mode: 'cloudOnly' });
    w.cloud.failNext = [new AppError('Throttled', 'slow down', { retryAfterInSeconds: 120 })];
    const created = await create(w, { ...ada, password: undefined });
    const started = w.clock.t;
    await w.pump();
    expect((await op(w, created.operationId)).state).toBe('succeeded');
    expect(w.clock.t - started).toBeGreaterThanOrEqual(120_000);
  });

  it('fails visibly with the last error once past its deadline (never running forever)', async () => {
    const w = await world({ deps: { deadlines: { createDeadlineInMinutes: 10 } } });
    w.agent.unavailableFor = 10_000;
    const created = await create(w);
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('DeadlineExceeded');
    expect(done.error?.message).toContain('Unavailable');
    expect((await user(w)).state).toBe('failed');
  });

  it('undoes an AD account the agent created after its operation gave up (deadline passed while parked)', async () => {
    const w = await world({ deps: { deadlines: { createDeadlineInMinutes: 10 } } });
    const created = await create(w);
    await w.deliverOne(); // parked; the agent is slow and has not run it yet
    w.clock.advance(11 * 60_000);
    await w.provisioning.sweepOperations();
    while (await w.deliverOne());
    const failed = await op(w, created.operationId);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('DeadlineExceeded');
    // The agent finally runs the create: its reply finds an operation that gave up, and undoes it.
    expect(await w.deliverAgent()).toBe(true);
    expect(w.agent.creates).toBe(1);
    await w.pump();
    expect([...w.agent.objects.values()].map((o) => o.deleted)).toEqual([true]);
    const after = await op(w, created.operationId);
    expect(after.state).toBe('failed');
    expect(after.steps[0]?.result?.lateUndoSentAt).toBeDefined();
    expect((await user(w)).ad).toBeUndefined();
  });

  it('resends to an agent that never answered once the park deadline passes (the sweeper)', async () => {
    const w = await world();
    w.agent.offline = true;
    const created = await create(w);
    await w.deliverOne();
    await w.deliverAgent(); // lost
    expect((await op(w, created.operationId)).state).toBe('waitingForAgent');
    w.agent.offline = false;
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('succeeded');
    expect(done.steps[0]?.attempts).toBeGreaterThanOrEqual(2);
    expect(w.agent.creates).toBe(1);
  });

  it('fails a refused operation permanently without touching any directory', async () => {
    const w = await world({
      deps: {
        assertWorkAllowed: () =>
          Promise.reject(new AppError('NotFound', 'tenant is not linked to customer contoso')),
      },
    });
    const created = await create(w);
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('failed');
    expect(done.error?.message).toContain('not linked');
    expect(w.agent.inbox).toHaveLength(0);
    expect(w.agent.creates).toBe(0);
    expect(w.cloud.created).toBe(0);
  });
});

describe('lifecycle and order', () => {
  async function activeUsers(w: World, n: number): Promise<void> {
    for (let i = 0; i < n; i++)
      await create(w, {
        ...ada,
        userId: `u-${i}`,
        userPrincipalName: `u${i}@fed.contoso.example`,
        password: undefined,
        licencePlan: undefined,
      });
    await w.pump();
  }

  it('judges N parallel deletes as N: the guard holds all past the threshold', async () => {
    const w = await world({ mode: 'cloudOnly' });
    await activeUsers(w, 10);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        w.provisioning.requestUserChange({
          caller: w.caller,
          customerId: 'contoso',
          userId: `u-${i}`,
          change: { kind: 'user.delete', request: {} },
          correlationId: `c-${i}`,
        }),
      ),
    );
    const held = results.filter((r) => r.operation.state === 'heldForConfirmation');
    // minUsers 3, 10 %: the 3rd and every later one of 10 users is held.
    expect(held).toHaveLength(8);
  });

  it("numbers a user's operations from its create (place 1, no sequence row) on, old rows included", async () => {
    const w = await world({ mode: 'cloudOnly' });
    await activeUsers(w, 2);
    const sequences = w.store.collection('usersequences', z.object({ next: z.number() }));
    expect(await sequences.get('prov/contoso', 'u-0')).toBeUndefined();
    // A user whose create was numbered by an earlier build: its row says 1 is taken.
    await sequences.create('prov/contoso', 'u-1', { next: 1 });
    const disable = (userId: string) =>
      w.provisioning.requestUserChange({
        caller: w.caller,
        customerId: 'contoso',
        userId,
        change: { kind: 'user.disable', request: {} },
        correlationId: `c-${userId}`,
      });
    const created = await w.provisioning.listOperations(w.caller, 'contoso', { limit: 10 });
    expect(created.value.map((o) => o.userSequence)).toEqual([1, 1]);
    expect((await disable('u-0')).operation.userSequence).toBe(2);
    expect((await disable('u-1')).operation.userSequence).toBe(2);
    expect((await sequences.get('prov/contoso', 'u-0'))?.value.next).toBe(2);
    await w.pump();
    expect((await user(w, 'u-0')).state).toBe('disabled');
  });

  it('a change accepted while its create is writing its end looks again within seconds, then runs', async () => {
    const w = await world({ mode: 'cloudOnly' });
    const created = await create(w, { ...ada, password: undefined });
    // Crash the worker right after the create's user record became active (its final write not done).
    const probe = await world({ mode: 'cloudOnly' });
    await create(probe, { ...ada, password: undefined });
    const from = probe.store.writes;
    await probe.pump();
    const userWrite = probe.store.writeLog.findIndex((t, i) => i >= from && t === 'users') + 1;
    expect(userWrite).toBeGreaterThan(0);
    w.store.crashAt = { write: userWrite, when: 'after' };
    expect(await w.deliverOne()).toBe(true);
    expect((await user(w)).state).toBe('active');
    expect((await op(w, created.operationId)).state).not.toBe('succeeded');
    const { operation: disable } = await w.provisioning.requestUserChange({
      caller: w.caller,
      customerId: 'contoso',
      userId: ada.userId,
      change: { kind: 'user.disable', request: {} },
      correlationId: 'c-disable',
    });
    const t = w.clock.t;
    // Deliver the disable (the create's redelivery waits 30 s): the create is only finishing.
    const next = w.bus.queue.findIndex(
      (m) => m.body.type === 'operation.run' && m.body.operationId === disable.operationId,
    );
    w.bus.queue.unshift(...w.bus.queue.splice(next, 1));
    expect(await w.deliverOne()).toBe(true);
    const again = w.bus.queue.find(
      (m) => m.body.type === 'operation.run' && m.body.operationId === disable.operationId,
    );
    expect(again?.options.scheduledEnqueueTime?.getTime()).toBe(t + 2_000);
    await w.pump();
    expect((await op(w, created.operationId)).state).toBe('succeeded');
    expect((await op(w, disable.operationId)).state).toBe('succeeded');
    expect((await user(w)).state).toBe('disabled');
  });

  it('applies operations of one user in the order they were accepted', async () => {
    const w = await world({ mode: 'cloudOnly' });
    await activeUsers(w, 1);
    const change = (kind: 'user.disable' | 'user.enable', n: number) =>
      w.provisioning.requestUserChange({
        caller: w.caller,
        customerId: 'contoso',
        userId: 'u-0',
        change: { kind, request: {} },
        correlationId: `c-${n}`,
      });
    await change('user.disable', 1);
    await change('user.enable', 2);
    await change('user.disable', 3);
    // Deliver newest first: order must still hold.
    w.bus.queue.reverse();
    await w.pump();
    expect((await user(w, 'u-0')).state).toBe('disabled');
    const cloudUser = [...w.cloud.users.values()][0];
    expect(cloudUser?.accountEnabled).toBe(false);
  });

  it('reuses a deleted user id and accepts a corrected retry of a failed create', async () => {
    const w = await world({ mode: 'cloudOnly' });
    await activeUsers(w, 1);
    await w.provisioning.requestUserChange({
      caller: w.caller,
      customerId: 'contoso',
      userId: 'u-0',
      change: { kind: 'user.delete', request: {} },
      correlationId: 'c',
    });
    await w.pump();
    expect((await user(w, 'u-0')).state).toBe('deleted');
    const again = await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: {
        ...ada,
        userId: 'u-0',
        userPrincipalName: 'u0b@fed.contoso.example',
        password: undefined,
        licencePlan: undefined,
      },
      correlationId: 'c2',
    });
    await w.pump();
    expect((await op(w, again.operation.operationId)).state).toBe('succeeded');
    expect((await user(w, 'u-0')).userPrincipalName).toBe('u0b@fed.contoso.example');

    // A create that fails (UPN taken by someone else) can be retried with a corrected body.
    await w.cloud.createUser({
      userPrincipalName: 'taken@fed.contoso.example',
      displayName: 'x',
      mailNickname: 'x',
      accountEnabled: true,
      password: 'x',
    });
    const bad = await create(w, {
      ...ada,
      userId: 'u-b',
      userPrincipalName: 'taken@fed.contoso.example',
      password: undefined,
      licencePlan: undefined,
    });
    await w.pump();
    expect((await op(w, bad.operationId)).state).toBe('failed');
    const retried = await w.provisioning.retryOperation({
      caller: w.caller,
      operationId: bad.operationId,
      correctedCreate: {
        ...ada,
        userId: 'u-b',
        userPrincipalName: 'free@fed.contoso.example',
        password: undefined,
        licencePlan: undefined,
      },
      correlationId: 'c3',
    });
    await w.pump();
    expect((await op(w, retried.operation.operationId)).state).toBe('succeeded');
    expect((await op(w, bad.operationId)).retriedBy).toBe(retried.operation.operationId);
    expect((await user(w, 'u-b')).state).toBe('active');
  });

  it('cancels a parked create and undoes what its agent did meanwhile', async () => {
    const w = await world();
    const created = await create(w);
    await w.deliverOne(); // parked with the agent
    await w.provisioning.cancelOperation(w.caller, created.operationId);
    await w.pump();
    const done = await op(w, created.operationId);
    expect(done.state).toBe('cancelled');
    expect([...w.agent.objects.values()].every((o) => o.deleted)).toBe(true);
    expect(w.cloud.created).toBe(0);
  });

  it('keeps the AD link of a hybrid user held for a licence, so disable reaches AD', async () => {
    const w = await world();
    w.cloud.failNext = [];
    const seats = noFreeSeats(w.cloud);
    const created = await create(w);
    await w.pump();
    expect((await op(w, created.operationId)).state).toBe('needsLicence');
    const held = await user(w);
    expect(held.state).toBe('needsLicence');
    expect(held.ad).toBeDefined();
    const disable = await w.provisioning.requestUserChange({
      caller: w.caller,
      customerId: 'contoso',
      userId: 'u-ada',
      change: { kind: 'user.disable', request: {} },
      correlationId: 'c',
    });
    expect(disable.operation.steps.map((s) => s.name)).toEqual(['ad.disable', 'entra.disable']);
    await w.pump();
    expect([...w.agent.objects.values()][0]?.enabled).toBe(false);
    seats.free = 1;
    await w.provisioning.sweepHeldOperations();
    await w.pump();
    expect((await op(w, created.operationId)).state).toBe('succeeded');
    expect((await user(w)).state).toBe('disabled'); // the later disable stands
  });

  it('removes the licence-hold row of a create that was held when it ends, and touches none otherwise', async () => {
    const w = await world();
    const held = engineCollections(w.store).held;
    const seats = noFreeSeats(w.cloud);
    const created = await create(w);
    await w.pump();
    expect((await op(w, created.operationId)).heldForLicence).toBe(true);
    expect(await held.get(HELD_PARTITION, `prov/${created.operationId}`)).toBeDefined();
    seats.free = 1;
    await w.provisioning.sweepHeldOperations();
    await w.pump();
    expect((await op(w, created.operationId)).state).toBe('succeeded');
    expect(await held.get(HELD_PARTITION, `prov/${created.operationId}`)).toBeUndefined();

    // Never held: its end writes nothing to the licence sweep's index.
    w.store.writeLog.length = 0;
    const other = await create(w, { ...ada, userId: 'u-bob', userPrincipalName: 'bob@fed.contoso.example' });
    await w.pump();
    expect((await op(w, other.operationId)).state).toBe('succeeded');
    expect((await op(w, other.operationId)).heldForLicence).toBeUndefined();
    expect(w.store.writeLog).not.toContain('heldoperations');
  });
});
