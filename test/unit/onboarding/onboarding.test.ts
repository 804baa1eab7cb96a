import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Caller } from '../../../shared/domain/caller.js';
import { userRecordSchema, type UserRecord } from '../../../shared/domain/user.js';
import { onboardingWork, type OnboardingWork } from '../../../shared/contracts/onboarding-work.js';
import { AppError } from '../../../shared/errors.js';
import { validateOutgoing, type Bus, type SendMessageOptions } from '../../../shared/ports/bus.js';
import type {
  CloudDirectory,
  ImportedCloudUser,
  ImportUserChangePage,
  UserChangePage,
} from '../../../shared/ports/cloud-directory.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { createOnboarding, HAND_OFF_AFTER_DELIVERIES } from '../../../shared/usecases/onboarding.js';
import { tenantClaimsCollection } from '../../../shared/usecases/tenancy.js';
import { customer, MemoryStore, TestClock } from '../engine/world.js';

/**
 * The onboarding job against an in-memory store and a scripted directory: resuming after a crash from
 * the saved cursor (nothing counted twice), and a match undone by a later page's claimant.
 */
const caller: Caller = { id: 'k', kind: 'apiKey', providerId: 'prov' };
const tenantId = '0b7c6d5e-4f3a-4b2c-8d1e-9f0a1b2c3d4e';

function cloudUser(id: string, over: Partial<ImportedCloudUser> = {}): ImportedCloudUser {
  return {
    id,
    userPrincipalName: `${id}@fed.contoso.example`,
    displayName: `User ${id}`,
    mailNickname: id,
    accountEnabled: true,
    givenName: null,
    surname: null,
    jobTitle: null,
    department: null,
    mail: null,
    usageLocation: null,
    onPremisesImmutableId: null,
    assignedLicences: [],
    proxyAddresses: [],
    employeeId: null,
    ...over,
  };
}

/** Serves `pages` as one users/delta round; `failOnce` makes that page's first request fail (retryable). */
function scriptedDirectory(pages: ImportedCloudUser[][], failOnce?: number) {
  const served: number[] = [];
  let failed = false;
  const directory: Partial<CloudDirectory> = {
    tenantId,
    getOrganization: () =>
      Promise.resolve({ id: tenantId, displayName: 'Contoso', partnerTenantType: null, verifiedDomains: [] }),
    listDomains: () =>
      Promise.resolve([
        {
          id: 'fed.contoso.example',
          authenticationType: 'Managed',
          isDefault: true,
          isInitial: false,
          isVerified: true,
        },
      ]),
    listSubscribedSkus: () => Promise.resolve([]),
    listDirectoryRoleMemberIds: () => Promise.resolve([]),
    listGroupChanges: () => Promise.resolve({ changes: [], deltaLink: 'groups-delta-1' }),
    listUserImportChanges(cursor?: string): Promise<ImportUserChangePage> {
      const index = cursor === undefined ? 0 : Number(cursor);
      if (index === failOnce && !failed) {
        failed = true;
        return Promise.reject(new AppError('Unavailable', 'Graph answered 503', { retryable: true }));
      }
      served.push(index);
      const users = pages[index] ?? [];
      const last = index === pages.length - 1;
      return Promise.resolve({
        changes: users.map((user) => ({ kind: 'upserted' as const, user })),
        ...(last ? { deltaLink: 'delta-1' } : { nextCursor: String(index + 1) }),
      });
    },
  };
  return { directory: directory as CloudDirectory, served };
}

/** A bus that records what was sent (validated against the contract, as the real one does). */
function recordingBus() {
  const sent: { body: OnboardingWork; options: SendMessageOptions }[] = [];
  const bus: Bus = {
    send(contract, body, options) {
      expect(contract.queue).toBe(onboardingWork.queue);
      sent.push({ body: validateOutgoing(onboardingWork, body as OnboardingWork), options });
      return Promise.resolve();
    },
    sendBatch: () => Promise.reject(new Error('not used')),
  };
  return { bus, sent };
}

async function setup(
  pages: ImportedCloudUser[][],
  options: { failOnce?: number; users?: UserRecord[]; bus?: Bus } = {},
) {
  const store = new MemoryStore();
  const clock = new TestClock();
  await customersCollection(store).create('prov', 'contoso', customer('cloudOnly'));
  await tenantClaimsCollection(store).create('tenants', tenantId, {
    tenantId,
    providerId: 'prov',
    customerId: 'contoso',
    claimedAt: clock.now().toISOString(),
  });
  const users = store.collection('users', userRecordSchema);
  for (const user of options.users ?? []) await users.create('prov/contoso', user.userId, user);
  const scripted = scriptedDirectory(pages, options.failOnce);
  const errors: unknown[] = [];
  const onboarding = createOnboarding({
    store,
    clock,
    cloudDirectory: () => scripted.directory,
    guard: { maxCount: 500, maxPercent: 20, minForPercent: 10 },
    leaseInMs: 60_000,
    chunkItems: 3, // one chunk and checkpoint per scripted page
    onError: (error) => errors.push(error),
    ...(options.bus === undefined ? {} : { bus: options.bus }),
  });
  return { store, clock, onboarding, served: scripted.served, errors };
}

const atria = (userId: string, upn: string, objectGuid?: string): UserRecord => ({
  userId,
  providerId: 'prov',
  customerId: 'contoso',
  userPrincipalName: upn,
  displayName: `User ${userId}`,
  state: 'active',
  ...(objectGuid === undefined ? {} : { ad: { objectGuid, dn: `CN=${userId}`, sAMAccountName: userId } }),
  licences: [],
  lastOperationId: 'seeded',
  createdAt: '2026-12-01T08:00:00.000Z',
  updatedAt: '2026-12-01T08:00:00.000Z',
});

describe('onboarding job', () => {
  it('resumes from the saved cursor after a failed page, counting every user once', async () => {
    const pages = [0, 1, 2, 3].map((p) => [0, 1, 2].map((i) => cloudUser(`c${p}${i}`)));
    const { onboarding, clock, served, errors } = await setup(pages, { failOnce: 2 });
    await onboarding.start(caller, 'contoso', tenantId);
    await onboarding.idle();
    expect(errors).toHaveLength(1);
    const stalled = await onboarding.get(caller, 'contoso');
    expect(stalled).toMatchObject({ state: 'reading', cursor: '2', pages: 2, progress: { read: 6 } });

    // Another run while the lease holds does nothing; after it, the drift timer resumes the job.
    await onboarding.driftAll();
    await onboarding.idle();
    expect((await onboarding.get(caller, 'contoso')).state).toBe('reading');
    clock.advance(61_000);
    expect((await onboarding.driftAll()).resumed).toBe(1);
    await onboarding.idle();

    const done = await onboarding.get(caller, 'contoso');
    expect(done).toMatchObject({
      state: 'awaitingApproval',
      progress: { read: 12, onlyInCloud: 12, pending: 0 },
    });
    // Pages 0 and 1 were read once: the resumed run started at the saved cursor. (Page 2 was prefetched
    // once before the failure surfaced, so it is served on the retry.)
    expect(served.filter((p) => p === 0)).toHaveLength(1);
    expect(served.filter((p) => p === 1)).toHaveLength(1);
    const items = await onboarding.listItems(caller, 'contoso', { limit: 500 });
    expect(new Set(items.value.map((i) => i.itemId)).size).toBe(12);
  });

  it('runs from the onboarding-work queue: start only sends, a failure or a live lease re-schedules past the lease', async () => {
    const pages = [0, 1, 2, 3].map((p) => [0, 1, 2].map((i) => cloudUser(`q${p}${i}`)));
    const { bus, sent } = recordingBus();
    const { onboarding, clock } = await setup(pages, { failOnce: 2, bus });
    const job = await onboarding.start(caller, 'contoso', tenantId);
    // Nothing read in this process: one message names the job.
    await onboarding.idle();
    expect((await onboarding.get(caller, 'contoso')).progress.read).toBe(0);
    expect(sent.map((m) => m.body)).toEqual([
      { type: 'onboarding.run', v: 1, providerId: 'prov', customerId: 'contoso', jobId: job.jobId },
    ]);
    const work = sent[0]?.body;
    if (work === undefined) throw new Error('no message');

    // The first delivery reads two pages, then Graph fails: the run is re-scheduled after the lease.
    expect(await onboarding.runQueued(work, 1)).toBe('rescheduled');
    const stalled = await onboarding.get(caller, 'contoso');
    expect(stalled).toMatchObject({
      state: 'reading',
      cursor: '2',
      progress: { read: 6 },
      retries: 1,
      lastError: { code: 'Unavailable' },
    });
    const retry = sent[1]?.options.scheduledEnqueueTime?.getTime() ?? 0;
    expect(retry).toBeGreaterThan(Date.parse(stalled.leaseUntil ?? ''));
    // A redelivery while the lease holds reads nothing and schedules itself for the lease's end.
    expect(await onboarding.runQueued(work, 2)).toBe('leased');
    expect((await onboarding.get(caller, 'contoso')).progress.read).toBe(6);
    expect(sent).toHaveLength(3);
    expect(sent[2]?.options.messageId).not.toBe(sent[0]?.options.messageId);

    clock.advance(61_000);
    expect(await onboarding.runQueued(work, 1)).toBe('done');
    const ready = await onboarding.get(caller, 'contoso');
    expect(ready).toMatchObject({ state: 'awaitingApproval', progress: { read: 12, onlyInCloud: 12 } });
    expect(ready.lastError).toBeUndefined();
    // A late duplicate of a finished job does nothing and sends nothing.
    expect(await onboarding.runQueued(work, 3)).toBe('gone');
    expect(sent).toHaveLength(3);
    // Another provider's message for the same job id is not run either.
    expect(await onboarding.runQueued({ ...work, providerId: 'other' }, 1)).toBe('gone');
  });

  it('hands a job whose message was delivered 5 times to a fresh message instead of letting it reach the dead-letter queue', async () => {
    const { bus, sent } = recordingBus();
    const { onboarding } = await setup([[cloudUser('h1')]], { bus });
    const job = await onboarding.start(caller, 'contoso', tenantId);
    await onboarding.idle();
    const work = sent[0]?.body;
    if (work === undefined) throw new Error('no message');
    // Another provider's hand-made message for this job, however worn, is not handed on: nothing changes.
    expect(await onboarding.runQueued({ ...work, providerId: 'other' }, HAND_OFF_AFTER_DELIVERIES)).toBe(
      'gone',
    );
    expect(sent).toHaveLength(1);
    expect((await onboarding.get(caller, 'contoso')).retries ?? 0).toBe(0);
    expect(await onboarding.runQueued(work, HAND_OFF_AFTER_DELIVERIES)).toBe('handedOff');
    // Nothing was read by the worn delivery; a new message (its own id, scheduled) carries the job on.
    const handed = await onboarding.get(caller, 'contoso');
    expect(handed).toMatchObject({ state: 'reading', retries: 1, progress: { read: 0 } });
    expect(sent).toHaveLength(2);
    expect(sent[1]?.body).toEqual(work);
    expect(sent[1]?.options.messageId).not.toBe(sent[0]?.options.messageId);
    expect(sent[1]?.options.scheduledEnqueueTime).toBeInstanceOf(Date);
    // The fresh message (delivery 1) reads the job to its dry run.
    expect(await onboarding.runQueued(work, 1)).toBe('done');
    expect((await onboarding.get(caller, 'contoso')).jobId).toBe(job.jobId);
    expect((await onboarding.get(caller, 'contoso')).state).toBe('awaitingApproval');
  });

  it('has the drift timer resend the message of a read whose lease expired', async () => {
    const { bus, sent } = recordingBus();
    const { onboarding, clock } = await setup([[cloudUser('r1')], [cloudUser('r2')]], { failOnce: 1, bus });
    await onboarding.start(caller, 'contoso', tenantId);
    const work = sent[0]?.body;
    if (work === undefined) throw new Error('no message');
    await onboarding.runQueued(work, 1);
    sent.length = 0;
    expect((await onboarding.driftAll()).resumed).toBe(0); // the lease still holds
    clock.advance(61_000);
    expect((await onboarding.driftAll()).resumed).toBe(1);
    expect(sent.map((m) => m.body.jobId)).toEqual([work.jobId]);
  });

  it('turns an earlier page match into a case when a later page claims the same Atria user', async () => {
    const pages = [
      [cloudUser('hard', { onPremisesImmutableId: 'QUJD', userPrincipalName: 'other@fed.contoso.example' })],
      [cloudUser('soft', { userPrincipalName: 'ada@fed.contoso.example', displayName: 'User ada' })],
    ];
    const { onboarding } = await setup(pages, { users: [atria('ada', 'ada@fed.contoso.example', 'QUJD')] });
    await onboarding.start(caller, 'contoso', tenantId);
    await onboarding.idle();
    const job = await onboarding.get(caller, 'contoso');
    expect(job.progress).toMatchObject({ read: 2, matched: 0, cases: 2, onlyLocal: 0 });
    expect((await onboarding.listItems(caller, 'contoso', {})).value).toEqual([]);
    const cases = (await onboarding.listCases(caller, 'contoso', {})).value;
    expect(cases.map((c) => [c.itemId, c.reason, c.candidates?.[0]?.key]).sort()).toEqual([
      ['hard', 'ambiguous', 'ada'],
      ['soft', 'ambiguous', 'ada'],
    ]);
  });
});

describe('drift pass', () => {
  it('keeps a failed object as a pending change and retries it after its backoff', async () => {
    const { store, clock, onboarding } = await setup([[]], {
      users: [{ ...atria('ada', 'ada@fed.contoso.example', 'QUJD'), entra: { objectId: 'c-ada' } }],
    });
    const syncStates = store.collection('onboardingsync', z.object({}).loose());
    await syncStates.create('sync', 'prov/contoso', {
      providerId: 'prov',
      customerId: 'contoso',
      tenantId,
      deltaLink: 'delta-0',
      confirmed: false,
      failures: [],
    });
    let failPatch = true;
    const patched: string[] = [];
    const renamed = { id: 'c-ada', displayName: 'Renamed in the cloud' };
    const directory = {
      tenantId,
      listUserChanges: (cursor?: string): Promise<UserChangePage> =>
        Promise.resolve({
          changes: cursor === 'delta-0' ? [{ kind: 'upserted' as const, user: renamed }] : [],
          deltaLink: 'delta-next',
        }),
      getUser: () => Promise.resolve({ ...cloudUser('c-ada'), displayName: 'Renamed in the cloud' }),
      updateUser: (id: string) => {
        if (failPatch)
          return Promise.reject(new AppError('Unavailable', 'Graph answered 503', { retryable: true }));
        patched.push(id);
        return Promise.resolve();
      },
    };
    const drift = createOnboarding({
      store,
      clock,
      cloudDirectory: () => directory as unknown as CloudDirectory,
      guard: { maxCount: 500, maxPercent: 20, minForPercent: 10 },
    });
    void onboarding;

    expect(await drift.syncPass('prov', 'contoso')).toMatchObject({ failed: 1, reverted: 0 });
    const held = await drift.getSync(caller, 'contoso');
    expect(held.failures).toMatchObject([{ id: 'c-ada', attempts: 1 }]);
    failPatch = false;
    // Before the backoff the object waits; after it, it is read again and AD's name put back.
    expect(await drift.syncPass('prov', 'contoso')).toMatchObject({ failed: 0, reverted: 0 });
    clock.advance(61_000);
    expect(await drift.syncPass('prov', 'contoso')).toMatchObject({ failed: 0, reverted: 1 });
    expect(patched).toEqual(['c-ada']);
    expect((await drift.getSync(caller, 'contoso')).failures).toEqual([]);
  });
});
