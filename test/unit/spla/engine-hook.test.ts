import { describe, expect, it } from 'vitest';
import { changeRequest, type Operation } from '../../../shared/domain/operation.js';
import { createSpla, type Spla } from '../../../shared/usecases/spla.js';
import { Crash, world } from '../engine/world.js';

/**
 * Group operations on the engine with the SPLA evidence hook, against in-memory ports: a crash at any
 * write of a group add still ends with one AD command (one command id), one membership on the user
 * record and exactly one evidence event.
 */
const STAFF_GUID = 'U3RhZmYtZ3JvdXAtZ3VpZC0w';

async function hybridWorld() {
  const holder: { spla?: Spla } = {};
  const w = await world({
    deps: {
      onOperationFinished: async (o: Operation) => {
        if (holder.spla === undefined) throw new Error('spla not wired');
        await holder.spla.recordOperation(o);
      },
    },
  });
  holder.spla = createSpla({ store: w.store, clock: w.clock });
  const { operation } = await w.provisioning.requestCreateUser({
    caller: w.caller,
    customerId: 'contoso',
    request: {
      userId: 'u-ada',
      userPrincipalName: 'ada@fed.contoso.example',
      displayName: 'Ada',
      password: 'Str0ng!Passw0rd#1',
      accountEnabled: true,
    },
    correlationId: 'c-1',
  });
  await w.pump();
  return { w, spla: holder.spla, createId: operation.operationId };
}

type HybridWorld = Awaited<ReturnType<typeof hybridWorld>>;

async function addToStaff({ w }: HybridWorld): Promise<Operation> {
  for (;;) {
    try {
      const { operation } = await w.provisioning.requestUserChange({
        caller: w.caller,
        customerId: 'contoso',
        userId: 'u-ada',
        change: changeRequest('user.groupAdd', { directory: 'ad', groupId: STAFF_GUID }),
        idempotencyKey: 'join-staff',
        correlationId: 'c-2',
      });
      return operation;
    } catch (error) {
      if (!(error instanceof Crash)) throw error;
      w.store.crashAt = undefined;
    }
  }
}

async function memberEvents(spla: Spla, w: HybridWorld['w']) {
  const month = w.clock.now().toISOString().slice(0, 7);
  return (await spla.listEvidence(w.caller, 'contoso', month)).filter((e) => e.type.startsWith('member.'));
}

describe('group operations with the SPLA evidence hook', () => {
  it('adds through one parked AD command and leaves one membership and one evidence event', async () => {
    const h = await hybridWorld();
    const accepted = await addToStaff(h);
    expect(accepted.steps.map((s) => s.name)).toEqual(['ad.groupAdd']);
    await h.w.pump();
    const done = await h.w.provisioning.getOperation(h.w.caller, accepted.operationId);
    expect(done.state).toBe('succeeded');
    const user = await h.w.provisioning.getUser(h.w.caller, 'contoso', 'u-ada');
    expect(user.groups?.map((g) => [g.directory, g.groupId])).toEqual([['ad', STAFF_GUID]]);
    expect(await memberEvents(h.spla, h.w)).toEqual([
      expect.objectContaining({
        type: 'member.added',
        groupKey: `ad.${STAFF_GUID}`,
        member: { userId: 'u-ada' },
      }),
    ]);
    // The create left its own evidence: the account was enabled from then on.
    const month = h.w.clock.now().toISOString().slice(0, 7);
    expect((await h.spla.listEvidence(h.w.caller, 'contoso', month)).map((e) => e.type)).toContain(
      'user.enabled',
    );
  });

  it('survives a crash at every write of the group operation: one command id, one membership, one event', async () => {
    const clean = await hybridWorld();
    const before = clean.w.store.writes;
    await addToStaff(clean);
    await clean.w.pump();
    const writes = clean.w.store.writes - before;
    expect(writes).toBeGreaterThan(5);
    for (let write = 1; write <= writes; write++) {
      for (const when of ['before', 'after'] as const) {
        const h = await hybridWorld();
        const where = `crash ${when} write ${write}`;
        h.w.store.crashAt = { write: h.w.store.writes + write, when };
        const accepted = await addToStaff(h);
        await h.w.pump();
        const done = await h.w.provisioning.getOperation(h.w.caller, accepted.operationId);
        expect(done.state, where).toBe('succeeded');
        const commandIds = [...h.w.agent.outcomes.keys()].filter((id) => id.includes('ad.groupAdd'));
        expect(commandIds, where).toHaveLength(1);
        const user = await h.w.provisioning.getUser(h.w.caller, 'contoso', 'u-ada');
        expect(user.groups, where).toHaveLength(1);
        expect(await memberEvents(h.spla, h.w), where).toHaveLength(1);
      }
    }
  });

  it('refuses an Entra group for a user without an Entra account, and queues nothing', async () => {
    const w = await world({ mode: 'adOnly' });
    await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: {
        userId: 'u-bo',
        userPrincipalName: 'bo@fed.contoso.example',
        displayName: 'Bo',
        password: 'Str0ng!Passw0rd#1',
        accountEnabled: true,
      },
      correlationId: 'c-1',
    });
    await w.pump();
    await expect(
      w.provisioning.requestUserChange({
        caller: w.caller,
        customerId: 'contoso',
        userId: 'u-bo',
        change: changeRequest('user.groupAdd', {
          directory: 'entra',
          groupId: '5a1c7e8f-0b2d-4e6f-9a1b-3c4d5e6f7a8b',
        }),
        correlationId: 'c-2',
      }),
    ).rejects.toMatchObject({ code: 'Validation' });
    expect(w.bus.queue).toEqual([]);
  });
});
