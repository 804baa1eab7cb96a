import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Caller } from '../../../shared/domain/caller.js';
import type { Operation } from '../../../shared/domain/operation.js';
import { AppError } from '../../../shared/errors.js';
import type { CloudDirectory } from '../../../shared/ports/cloud-directory.js';
import type { OnPremDirectory } from '../../../shared/ports/on-prem-directory.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { createSpla } from '../../../shared/usecases/spla.js';
import { customer, MemoryStore, TestClock } from '../engine/world.js';

const caller: Caller = { id: 'key-1', kind: 'apiKey', providerId: 'prov' };
const other: Caller = { id: 'key-2', kind: 'apiKey', providerId: 'prov-other' };
const RDS = 'ad.UkRTLWdyb3VwLWd1aWQtMDE=';

/** A finished operation as the engine tells it (the evidence hook's input). */
function op(
  kind: 'user.groupAdd' | 'user.groupRemove' | 'user.disable' | 'user.enable' | 'user.delete',
  userId: string,
  at: string,
  state: Operation['state'] = 'succeeded',
): Operation {
  const common = {
    operationId: `op-${kind}-${userId}-${at}`,
    providerId: 'prov',
    customerId: 'contoso',
    userId,
    state,
    steps: [{ name: 'ad.x', state: 'done' as const, attempts: 1, finishedAt: at }],
    correlationId: 'c',
    createdAt: at,
    updatedAt: at,
    deadline: at,
    phase: 'forward' as const,
    retries: 0,
  };
  if (kind === 'user.groupAdd' || kind === 'user.groupRemove')
    return { ...common, kind, request: { directory: 'ad', groupId: RDS.slice(3) } };
  return { ...common, kind, request: {} };
}

async function setup() {
  const store = new MemoryStore();
  const clock = new TestClock();
  clock.t = Date.parse('2026-11-01T00:00:00.000Z');
  await customersCollection(store).create('prov', 'contoso', customer('hybridFederated', 'prov'));
  const spla = createSpla({ store, clock, correctionWindowInDays: 30 });
  await spla.putProduct(caller, 'rds-sal', {
    name: 'Windows Server RDS SAL',
    sku: '6VC-01254',
    unit: 'user',
  });
  await spla.putProduct(caller, 'sql-core', {
    name: 'SQL Server Standard Core',
    sku: '7NQ-00302',
    unit: 'core',
  });
  await spla.putRule(caller, 'contoso', 'rds-sal', {
    authorisedBy: { kind: 'groups', groups: [RDS] },
    exclude: { serviceAccounts: true, admins: false },
  });
  await spla.putRule(caller, 'contoso', 'sql-core', {
    fixedQuantity: 4,
    exclude: { serviceAccounts: true, admins: false },
  });
  return { store, clock, spla };
}

describe('SPLA use case over the store, with a virtual clock', () => {
  it("turns the engine's finished operations into evidence (failed ones leave none, a repeat none twice)", async () => {
    const { spla } = await setup();
    await spla.recordOperation(op('user.groupAdd', 'ann', '2026-11-03T09:00:00.000Z'));
    await spla.recordOperation(op('user.groupAdd', 'ann', '2026-11-03T09:00:00.000Z')); // told again after a crash
    await spla.recordOperation(op('user.groupAdd', 'bob', '2026-11-04T09:00:00.000Z', 'failed'));
    await spla.recordOperation(op('user.disable', 'ann', '2026-11-10T12:00:00.000Z'));
    const evidence = await spla.listEvidence(caller, 'contoso', '2026-11');
    expect(
      evidence.map((e) => [e.type, 'userId' in e ? e.userId : e.type.startsWith('member') ? 'm' : '']),
    ).toEqual([
      ['member.added', 'm'],
      ['user.disabled', 'ann'],
    ]);
  });

  it('reports a month as JSON rows and CSV, with a detail view per counted user', async () => {
    const { spla } = await setup();
    await spla.recordOperation(op('user.groupAdd', 'ann', '2026-11-03T09:00:00.000Z'));
    await spla.recordOperation(op('user.groupAdd', 'bob', '2026-11-05T09:00:00.000Z'));
    await spla.recordOperation(op('user.groupRemove', 'bob', '2026-11-06T09:00:00.000Z'));
    await spla.recordOperation(op('user.disable', 'ann', '2026-11-10T12:00:00.000Z'));
    const report = await spla.report(caller, '2026-11');
    expect(report.rows.map((r) => [r.customerId, r.productId, r.sku, r.quantity, r.state])).toEqual([
      ['contoso', 'rds-sal', '6VC-01254', 2, 'draft'],
      ['contoso', 'sql-core', '7NQ-00302', 4, 'draft'],
    ]);
    expect(spla.reportCsv(report)).toBe(
      'month,customerId,productId,product,sku,quantity,state,corrected\r\n' +
        '2026-11,contoso,rds-sal,Windows Server RDS SAL,6VC-01254,2,draft,false\r\n' +
        '2026-11,contoso,sql-core,SQL Server Standard Core,7NQ-00302,4,draft,false\r\n',
    );
    const detail = await spla.report(caller, '2026-11', { details: true });
    expect(detail.details?.map((d) => [d.userId, d.from, d.days, d.rule])).toEqual([
      ['ann', '2026-11-03T09:00:00.000Z', 8, `group ${RDS}`],
      ['bob', '2026-11-05T09:00:00.000Z', 2, `group ${RDS}`],
    ]);
  });

  it("never shows another provider's customers, and refuses their evidence and rules as missing", async () => {
    const { spla } = await setup();
    expect((await spla.report(other, '2026-11')).rows).toEqual([]);
    await expect(spla.listEvidence(other, 'contoso', '2026-11')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(spla.report(other, '2026-11', { customerId: 'contoso' })).rejects.toMatchObject({
      code: 'NotFound',
    });
    await expect(
      spla.putRule(other, 'contoso', 'rds-sal', {
        fixedQuantity: 1,
        exclude: { serviceAccounts: true, admins: false },
      }),
    ).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('closes only an ended month, then freezes it against late evidence; corrections need a closed month, a reason and the window', async () => {
    const { spla, clock } = await setup();
    await spla.recordOperation(op('user.groupAdd', 'ann', '2026-11-03T09:00:00.000Z'));
    clock.t = Date.parse('2026-11-20T00:00:00.000Z');
    await expect(spla.closeMonth(caller, '2026-11')).rejects.toMatchObject({ code: 'Conflict' });
    await expect(
      spla.addCorrection(caller, '2026-11', {
        customerId: 'contoso',
        productId: 'rds-sal',
        quantity: 3,
        reason: 'late',
      }),
    ).rejects.toMatchObject({ code: 'Conflict' });

    clock.t = Date.parse('2026-12-01T09:00:00.000Z');
    const [closed] = await spla.closeMonth(caller, '2026-11');
    const frozen = JSON.stringify(await spla.report(caller, '2026-11', { details: true }));
    // Evidence arriving later for November (a late change feed) no longer changes the closed month.
    await spla.appendEvidence(caller, 'contoso', [
      {
        type: 'member.added',
        at: '2026-11-15T00:00:00.000Z',
        source: 'changeFeed',
        ref: 'usn-77',
        groupKey: RDS,
        member: { userId: 'late' },
      },
    ]);
    expect(JSON.stringify(await spla.report(caller, '2026-11', { details: true }))).toBe(frozen);
    // Closing again answers the same frozen figures.
    expect((await spla.closeMonth(caller, '2026-11'))[0]?.evidenceDigest).toBe(closed?.evidenceDigest);

    const correction = await spla.addCorrection(caller, '2026-11', {
      customerId: 'contoso',
      productId: 'rds-sal',
      quantity: 2,
      reason: 'user late was authorised on the 15th (change feed arrived after closing)',
    });
    expect(correction.by).toBe('key-1');
    const corrected = await spla.report(caller, '2026-11');
    const row = corrected.rows.find((r) => r.productId === 'rds-sal');
    expect(row).toMatchObject({ quantity: 2, computedQuantity: 1, state: 'closed' });
    expect(row?.corrections.map((c) => c.reason)).toEqual([correction.reason]);
    clock.t = Date.parse('2027-01-01T00:00:01.000Z'); // 30-day window after 1 December has passed
    await expect(
      spla.addCorrection(caller, '2026-11', {
        customerId: 'contoso',
        productId: 'rds-sal',
        quantity: 5,
        reason: 'too late',
      }),
    ).rejects.toMatchObject({ code: 'Conflict' });
  });

  it("prepares the previous month's draft on the 1st for every customer with rules", async () => {
    const { spla, clock, store } = await setup();
    await spla.recordOperation(op('user.groupAdd', 'ann', '2026-11-03T09:00:00.000Z'));
    clock.t = Date.parse('2026-12-01T02:00:00.000Z');
    expect(await spla.prepareDrafts()).toEqual({ month: '2026-11', prepared: 1 });
    const draft = await store
      .collection(
        'splareports',
        z.object({
          state: z.enum(['draft', 'closed']),
          counts: z.array(z.object({ productId: z.string(), quantity: z.number() })),
        }),
      )
      .get('prov', '2026-11|contoso');
    expect(draft?.value.state).toBe('draft');
    expect(draft?.value.counts.find((c) => c.productId === 'rds-sal')?.quantity).toBe(1);
  });
  it('snapshots Entra groups daily and flags directory-role members as admins only while they hold a role', async () => {
    const store = new MemoryStore();
    const clock = new TestClock();
    clock.t = Date.parse('2026-11-02T03:00:00.000Z');
    await customersCollection(store).create('prov', 'contoso', customer('hybridFederated', 'prov'));
    const group = '5a1c7e8f-0b2d-4e6f-9a1b-3c4d5e6f7a8b';
    const roles = { members: ['oid-admin'] };
    const fakeCloud = {
      listGroupMembers: (id: string) => Promise.resolve(id === group ? ['oid-user', 'oid-admin'] : []),
      listDirectoryRoleMemberIds: () => Promise.resolve([...roles.members]),
    };
    const spla = createSpla({
      store,
      clock,
      cloudDirectory: () => fakeCloud as unknown as CloudDirectory,
    });
    await spla.putProduct(caller, 'exch', { name: 'Exchange Standard SAL', sku: '395-02504', unit: 'user' });
    await spla.putRule(caller, 'contoso', 'exch', {
      authorisedBy: { kind: 'groups', groups: [`entra.${group}`] },
      exclude: { serviceAccounts: true, admins: true },
    });
    expect(await spla.snapshotEntraGroups()).toEqual({ customers: 1, groups: 1, failed: [] });
    const day1 = await spla.report(caller, '2026-11', { details: true });
    expect(day1.details?.map((d) => [d.userId, d.counted, d.excludedAs ?? null])).toEqual([
      ['entra:oid-admin', false, 'admin'],
      ['entra:oid-user', true, null],
    ]);
    // The admin loses the role; the next day's snapshot flags them false and they count from then on.
    roles.members = [];
    clock.t = Date.parse('2026-11-03T03:00:00.000Z');
    await spla.snapshotEntraGroups();
    const row = (await spla.report(caller, '2026-11')).rows.find((r) => r.productId === 'exch');
    expect(row?.quantity).toBe(2);
  });

  it('snapshots AD groups through the agent with their nesting, so a later operation on the nested group counts for the rule; a deleted group authorises nobody', async () => {
    const { store, clock } = await setup();
    const root = RDS.slice('ad.'.length);
    const nested = 'TmVzdGVkLWdyb3VwLWd1aWQ=';
    const dora = 'RG9yYS1vbi10aGUtREMtMDE=';
    let deleted = false;
    const commandIds: string[] = [];
    const agent: Pick<OnPremDirectory, 'listGroupMembers'> = {
      listGroupMembers: (group, options) => {
        commandIds.push(options.commandId);
        expect(group).toEqual({ objectGuid: root });
        if (deleted) return Promise.reject(new AppError('NotFound', 'group not found'));
        return Promise.resolve({
          group: { objectGuid: root, dn: 'CN=RDS,OU=Groups,DC=x' },
          members: [
            {
              objectGuid: dora,
              dn: 'CN=Dora,OU=Users,DC=x',
              kind: 'user',
              enabled: true,
              memberOf: [nested],
            },
            { objectGuid: nested, dn: 'CN=Nested,OU=Groups,DC=x', kind: 'group', memberOf: [root] },
          ],
        });
      },
    };
    const spla = createSpla({
      store,
      clock,
      onPremDirectory: () => Promise.resolve(agent as OnPremDirectory),
    });
    clock.t = Date.parse('2026-11-03T03:00:00.000Z');
    expect(await spla.snapshotAdGroups()).toEqual({ customers: 1, groups: 2, failed: [] });
    // Ann joins the nested group through atria-m365 a week later: the snapshot tied it to the rule's group.
    const joined = op('user.groupAdd', 'ann', '2026-11-10T09:00:00.000Z');
    await spla.recordOperation({ ...joined, request: { directory: 'ad', groupId: nested } } as Operation);
    clock.t = Date.parse('2026-11-20T03:00:00.000Z');
    deleted = true;
    expect(await spla.snapshotAdGroups()).toEqual({ customers: 1, groups: 1, failed: [] });
    expect(new Set(commandIds).size).toBe(2); // a fresh command id per run: the agent replays a repeated one

    const november = await spla.report(caller, '2026-11', { details: true });
    expect(november.details?.map((d) => [d.userId, d.counted, d.from, d.to, d.rule])).toEqual([
      ['ad:' + dora, true, '2026-11-03T03:00:00.000Z', '2026-11-20T02:59:59.999Z', `group ${RDS}`],
      ['ann', true, '2026-11-10T09:00:00.000Z', '2026-11-20T02:59:59.999Z', `group ${RDS}`],
    ]);
    const december = await spla.report(caller, '2026-12');
    expect(december.rows.find((r) => r.productId === 'rds-sal')?.quantity).toBe(0);
  });
});
