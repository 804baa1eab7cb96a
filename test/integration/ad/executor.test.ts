import { randomUUID } from 'node:crypto';
import { Attribute, Change, EqualityFilter, type Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { DcPool } from '../../../agent/ldap/pool.js';
import { LdapExecutor } from '../../../agent/ldap/executor.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import { AppError } from '../../../shared/errors.js';
import {
  openSecret,
  sealSecret,
  type CommandResult,
  type DirectoryUser,
} from '../../../shared/relay-protocol/index.js';
import {
  adminClient,
  canBind,
  createUserEnvelope,
  envelope,
  newExecutor,
  siteId,
  siteKeys,
  strongPassword,
} from './support.js';

let dc: SambaPeer;
let pool: DcPool;
let executor: LdapExecutor;
let admin: Client;
const keys = siteKeys();
let counter = 0;
const sam = (prefix = 'u'): string => `${prefix}${Date.now().toString(36).slice(-5)}${counter++}`;

async function rejects(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a rejection');
}

async function create(fields: Parameters<typeof createUserEnvelope>[2]): Promise<DirectoryUser> {
  const result = (await executor.execute(
    createUserEnvelope(keys, dc, fields),
  )) as CommandResult<'createUser'>;
  return result.user;
}

async function countBySam(value: string): Promise<number> {
  const { searchEntries } = await admin.search(dc.baseDn, {
    filter: new EqualityFilter({ attribute: 'sAMAccountName', value }),
    attributes: ['dn'],
  });
  return searchEntries.length;
}

beforeAll(async () => {
  dc = await startSambaPeer();
  ({ pool, executor } = newExecutor(dc, keys));
  admin = await adminClient(dc);
  await admin.add(`OU=Leavers,${dc.atriaOu}`, { objectClass: 'organizationalUnit', ou: 'Leavers' });
});

afterAll(async () => {
  await admin?.unbind();
  await pool?.close();
  await dc?.stop();
});

describe('createUser against a real AD', () => {
  it('creates an enabled user with its password in one add, leaving mS-DS-ConsistencyGuid to Connect', async () => {
    const password = strongPassword();
    const name = sam();
    const user = await create({ sam: name, password });
    expect(Buffer.from(user.objectGuid, 'base64')).toHaveLength(16);
    // Not stamped by default: Connect and Cloud Sync take objectGUID while it is empty.
    expect(user.consistencyGuid).toBeUndefined();
    const [entry] = (
      await admin.search(user.dn, {
        scope: 'base',
        attributes: ['mS-DS-ConsistencyGuid'],
        explicitBufferAttributes: ['mS-DS-ConsistencyGuid'],
      })
    ).searchEntries;
    expect(entry).toBeDefined();
    // ldapts lists an attribute asked for explicitly as a buffer even when the object has none.
    expect([entry?.['mS-DS-ConsistencyGuid']].flat()).toEqual([]);
    expect(user.enabled).toBe(true);
    expect(user.dn).toBe(`CN=${name},${dc.usersOu}`);
    expect(user.userPrincipalName).toBe(`${name}@atria.test`);
    expect(await canBind(dc, `${name}@atria.test`, password)).toBe(true);
    expect(await canBind(dc, `${name}@atria.test`, `${password}x`)).toBe(false);
  });

  it('stamps mS-DS-ConsistencyGuid with the objectGUID when the site asks for it, once per object', async () => {
    const stamping = new LdapExecutor(
      pool,
      { allowedOus: [dc.atriaOu], allowedAttributes: [], stampConsistencyGuid: true },
      { open: (sealed, binding) => openSecret(sealed, keys.privateKey, binding) },
    );
    const command = createUserEnvelope(keys, dc, { sam: sam(), password: strongPassword() });
    const first = (await stamping.execute(command)) as CommandResult<'createUser'>;
    expect(first.user.consistencyGuid).toBe(first.user.objectGuid);
    const [entry] = (
      await admin.search(first.user.dn, {
        scope: 'base',
        attributes: ['mS-DS-ConsistencyGuid', 'objectGUID'],
        explicitBufferAttributes: ['mS-DS-ConsistencyGuid', 'objectGUID'],
      })
    ).searchEntries;
    expect(entry?.['mS-DS-ConsistencyGuid']).toEqual(entry?.['objectGUID']);
    // A redelivery finds it stamped and reports the same anchors.
    const again = (await stamping.execute(command)) as CommandResult<'createUser'>;
    expect(again.replayed).toBe(true);
    expect(again.user.consistencyGuid).toBe(first.user.objectGuid);
  });

  it('a redelivered create returns the object it created instead of failing or duplicating', async () => {
    const name = sam();
    const command = createUserEnvelope(keys, dc, { sam: name, password: strongPassword() });
    const first = (await executor.execute(command)) as CommandResult<'createUser'>;
    const again = (await executor.execute(command)) as CommandResult<'createUser'>;
    expect(first.replayed).toBe(false);
    expect(again.replayed).toBe(true);
    expect(again.user.objectGuid).toBe(first.user.objectGuid);
    expect(await countBySam(name)).toBe(1);
  });

  it('another command for the same sAMAccountName or UPN is AlreadyExists', async () => {
    const name = sam();
    await create({ sam: name, password: strongPassword() });
    const error = await rejects(create({ sam: name, cn: `${name}-other`, password: strongPassword() }));
    expect(error.code).toBe('AlreadyExists');
    expect(error.retryable).toBe(false);
    expect(await countBySam(name)).toBe(1);
  });

  it('a CN clash gets the documented suffix "<displayName> (<sAMAccountName>)", the same on a redelivery', async () => {
    const first = sam();
    const displayName = `Same Name ${first}`;
    await create({ sam: first, displayName, password: strongPassword() });
    const second = sam();
    const again = createUserEnvelope(keys, dc, { sam: second, displayName, password: strongPassword() });
    const made = ((await executor.execute(again)) as CommandResult<'createUser'>).user;
    expect(made.dn.startsWith(`CN=${displayName} (${second}),`)).toBe(true);
    const replay = ((await executor.execute(again)) as CommandResult<'createUser'>).user;
    expect(replay.dn).toBe(made.dn);
    expect(await countBySam(second)).toBe(1);
  });

  it('a sAMAccountName clash says which attribute clashed', async () => {
    const name = sam();
    await create({ sam: name, password: strongPassword() });
    const error = await rejects(
      executor.execute(
        envelope({
          type: 'createUser',
          ou: dc.usersOu,
          sAMAccountName: name,
          userPrincipalName: `other-${name}@atria.test`,
          displayName: `Other ${name}`,
          enabled: false,
        }),
      ),
    );
    expect(error.code).toBe('AlreadyExists');
    expect(error.message.startsWith(`sAMAccountName: ${name} is already used by`)).toBe(true);
    expect(error.details?.attribute).toBe('sAMAccountName');
  });

  it('a stranger holding the UPN under another sAMAccountName is AlreadyExists, and nothing of ours stays', async () => {
    const name = sam();
    const stranger = sam('s');
    // An admin's own account, made outside Atria (no command stamp), with the UPN our command wants.
    await admin.add(`CN=${stranger},${dc.usersOu}`, {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: stranger,
      userPrincipalName: `${name}@atria.test`,
      userAccountControl: '514',
    });
    const error = await rejects(create({ sam: name, password: strongPassword() }));
    expect(error.code).toBe('AlreadyExists');
    expect(error.details?.attribute).toBe('userPrincipalName');
    expect(error.message).toContain(`CN=${stranger},`);
    expect(await countBySam(name)).toBe(0);
    expect(await countBySam(stranger)).toBe(1);
  });

  it('a redelivery finishes an object an older agent left disabled without its password and anchor', async () => {
    const name = sam();
    const password = strongPassword();
    const command = createUserEnvelope(keys, dc, { sam: name, password });
    // What an agent before 0.3 had written when it died: the stamped object, disabled, nothing else.
    await admin.add(`CN=${name},${dc.usersOu}`, {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: name,
      userPrincipalName: `${name}@atria.test`,
      userAccountControl: '514',
      adminDescription: `atria-command:${command.commandId}`,
    });
    const again = (await executor.execute(command)) as CommandResult<'createUser'>;
    expect(again.replayed).toBe(true);
    expect(again.user.enabled).toBe(true);
    expect(await canBind(dc, `${name}@atria.test`, password)).toBe(true);
    expect(await countBySam(name)).toBe(1);
  });

  it('after a DC restart the next create reconnects and succeeds (the pool sees through mapped errors)', async () => {
    await create({ sam: sam(), password: strongPassword() });
    await dc.pause();
    await dc.resume();
    // ldapts reconnected its socket unbound: the add is refused "without authentication" and must be
    // taken as a lost connection (rebind, run again), not answered Unavailable for ever.
    const name = sam();
    const user = await create({ sam: name, password: strongPassword() });
    expect(user.enabled).toBe(true);
    // The test's own admin connection went the same way: bind it again before reading.
    await admin.unbind().catch(() => undefined);
    admin = await adminClient(dc);
    expect(await countBySam(name)).toBe(1);
  });

  it('a weak password is PasswordPolicy and leaves no half-made account', async () => {
    const name = sam();
    const error = await rejects(create({ sam: name, password: 'abc' }));
    expect(error.code).toBe('PasswordPolicy');
    expect(error.retryable).toBe(false);
    expect(await countBySam(name)).toBe(0);
  });

  it('creates a disabled user without a password', async () => {
    const user = await create({ sam: sam(), enabled: false });
    expect(user.enabled).toBe(false);
  });

  it('enforces Windows AD rules Samba would let through', async () => {
    const tooLong = await rejects(create({ sam: 'a'.repeat(21), password: strongPassword() }));
    expect(tooLong.code).toBe('Validation');
    for (const bad of [
      'a"b',
      'a/b',
      'a\\b',
      'a[b',
      'a]b',
      'a:b',
      'a;b',
      'a|b',
      'a=b',
      'a,b',
      'a+b',
      'a*b',
      'a?b',
      'a<b',
      'a>b',
    ]) {
      const error = await rejects(create({ sam: bad, password: strongPassword() }));
      expect(error.code, bad).toBe('Validation');
    }
    const noPassword = await rejects(create({ sam: sam(), enabled: true }));
    expect(noPassword.code).toBe('Validation');
    const noSuffix = await rejects(
      executor.execute(
        envelope({
          type: 'createUser',
          ou: dc.usersOu,
          sAMAccountName: sam(),
          userPrincipalName: 'nosuffix@',
          displayName: 'x',
          enabled: false,
        }),
      ),
    );
    expect(noSuffix.code).toBe('Validation');
  });

  it('stores hostile names literally and never widens a search', async () => {
    const hostile = [
      '*)(cn=*',
      'nul\0byte',
      '\\00x',
      'a,OU=Evil',
      'say "hi"',
      'a+b=c',
      '#hash',
      ' lead',
      'trail ',
      'semi;colon',
      '<angle>',
    ];
    for (const cn of hostile) {
      const name = sam('h');
      const user = await create({ sam: name, cn, displayName: cn, enabled: false });
      const found = (await executor.execute(
        envelope({ type: 'findUser', by: 'objectGuid', value: user.objectGuid }),
      )) as CommandResult<'findUser'>;
      expect(found.user?.displayName, cn).toBe(cn);
      const { searchEntries } = await admin.search(dc.usersOu, {
        filter: new EqualityFilter({ attribute: 'sAMAccountName', value: name }),
        attributes: ['cn', 'distinguishedName'],
        scope: 'one',
      });
      expect(searchEntries, cn).toHaveLength(1);
      expect(searchEntries[0]?.['cn'], cn).toBe(cn);
    }
    for (const value of ['*', '*)(cn=*', '*)(|(sAMAccountName=*']) {
      const result = (await executor.execute(
        envelope({ type: 'findUser', by: 'sAMAccountName', value }),
      )) as CommandResult<'findUser'>;
      expect(result.user, value).toBeNull();
    }
  });
});

describe('commands on existing users', () => {
  it('finds a user by objectGUID, UPN and sAMAccountName', async () => {
    const name = sam();
    const user = await create({ sam: name, password: strongPassword() });
    for (const [by, value] of [
      ['objectGuid', user.objectGuid],
      ['userPrincipalName', `${name}@atria.test`],
      ['sAMAccountName', name],
    ] as const) {
      const result = (await executor.execute(
        envelope({ type: 'findUser', by, value }),
      )) as CommandResult<'findUser'>;
      expect(result.user?.objectGuid, by).toBe(user.objectGuid);
    }
    const missing = (await executor.execute(
      envelope({ type: 'findUser', by: 'objectGuid', value: Buffer.alloc(16, 7).toString('base64') }),
    )) as CommandResult<'findUser'>;
    expect(missing.user).toBeNull();
  });

  it('updates allow-listed attributes, clears with null, refuses others', async () => {
    const user = await create({ sam: sam(), enabled: false });
    const target = { objectGuid: user.objectGuid };
    const updated = (await executor.execute(
      envelope({
        type: 'updateAttributes',
        target,
        set: { department: 'Sales', title: 'Lead', displayName: 'New Name' },
      }),
    )) as CommandResult<'updateAttributes'>;
    expect(updated.user.attributes['department']).toBe('Sales');
    expect(updated.user.displayName).toBe('New Name');
    const cleared = (await executor.execute(
      envelope({ type: 'updateAttributes', target, set: { department: null } }),
    )) as CommandResult<'updateAttributes'>;
    expect(cleared.user.attributes['department']).toBeUndefined();
    for (const attribute of ['userAccountControl', 'adminCount', 'servicePrincipalName', 'homeDirectory']) {
      const error = await rejects(
        executor.execute(envelope({ type: 'updateAttributes', target, set: { [attribute]: '1' } })),
      );
      expect(error.code, attribute).toBe('OutOfScope');
    }
  });

  it('disables and enables (idempotently)', async () => {
    const user = await create({ sam: sam(), password: strongPassword() });
    const target = { objectGuid: user.objectGuid };
    for (const [type, enabled] of [
      ['disable', false],
      ['disable', false],
      ['enable', true],
      ['enable', true],
    ] as const) {
      const result = (await executor.execute(envelope({ type, target }))) as CommandResult<'enable'>;
      expect(result.user.enabled).toBe(enabled);
    }
  });

  it('resets a password (weak ones are PasswordPolicy)', async () => {
    const name = sam();
    const user = await create({ sam: name, password: strongPassword() });
    const next = strongPassword();
    const commandId = randomUUID();
    await executor.execute(
      envelope(
        {
          type: 'resetPassword',
          target: { objectGuid: user.objectGuid },
          password: sealSecret(next, keys.publicKey, { commandId, siteId }),
        },
        commandId,
      ),
    );
    expect(await canBind(dc, `${name}@atria.test`, next)).toBe(true);
    const weakId = randomUUID();
    const weak = await rejects(
      executor.execute(
        envelope(
          {
            type: 'resetPassword',
            target: { objectGuid: user.objectGuid },
            password: sealSecret('password', keys.publicKey, { commandId: weakId, siteId }),
          },
          weakId,
        ),
      ),
    );
    expect(weak.code).toBe('PasswordPolicy');
  });

  it('a password sealed for another command cannot be used', async () => {
    const user = await create({ sam: sam(), password: strongPassword() });
    const sealed = sealSecret(strongPassword(), keys.publicKey, { commandId: 'other-command', siteId });
    const error = await rejects(
      executor.execute(
        envelope({ type: 'resetPassword', target: { objectGuid: user.objectGuid }, password: sealed }),
      ),
    );
    expect(error.code).toBe('BadSignature');
  });

  it('moves within scope (a repeated move is a no-op) and refuses to move out', async () => {
    const name = sam();
    const user = await create({ sam: name, cn: `Mover, ${name}`, enabled: false });
    const leavers = `OU=Leavers,${dc.atriaOu}`;
    const target = { objectGuid: user.objectGuid };
    const moved = (await executor.execute(
      envelope({ type: 'move', target, newOu: leavers }),
    )) as CommandResult<'move'>;
    expect(moved.user.dn).toBe(`CN=Mover\\, ${name},${leavers}`);
    expect(moved.user.objectGuid).toBe(user.objectGuid);
    const again = (await executor.execute(
      envelope({ type: 'move', target, newOu: leavers }),
    )) as CommandResult<'move'>;
    expect(again.user.dn).toBe(moved.user.dn);
    const out = await rejects(
      executor.execute(envelope({ type: 'move', target, newOu: `OU=Outside,${dc.baseDn}` })),
    );
    expect(out.code).toBe('OutOfScope');
  });

  it('deletes; deleting again reports alreadyAbsent', async () => {
    const user = await create({ sam: sam(), enabled: false });
    const target = { objectGuid: user.objectGuid };
    const first = (await executor.execute(envelope({ type: 'delete', target }))) as CommandResult<'delete'>;
    const second = (await executor.execute(envelope({ type: 'delete', target }))) as CommandResult<'delete'>;
    expect(first).toEqual({ objectGuid: user.objectGuid, alreadyAbsent: false });
    expect(second).toEqual({ objectGuid: user.objectGuid, alreadyAbsent: true });
  });

  it('adds to and removes from a group, idempotently', async () => {
    const user = await create({ sam: sam(), enabled: false });
    const group = { dn: `CN=Staff,${dc.groupsOu}` };
    const member = { objectGuid: user.objectGuid };
    const members = async (): Promise<string[]> => {
      const { searchEntries } = await admin.search(group.dn, { scope: 'base', attributes: ['member'] });
      const value = searchEntries[0]?.['member'];
      return value === undefined ? [] : Array.isArray(value) ? value.map(String) : [String(value)];
    };
    expect(await executor.execute(envelope({ type: 'groupAdd', group, member }))).toEqual({ changed: true });
    expect(await executor.execute(envelope({ type: 'groupAdd', group, member }))).toEqual({ changed: false });
    expect(await members()).toContain(user.dn);
    expect(await executor.execute(envelope({ type: 'groupRemove', group, member }))).toEqual({
      changed: true,
    });
    expect(await executor.execute(envelope({ type: 'groupRemove', group, member }))).toEqual({
      changed: false,
    });
    expect(await members()).not.toContain(user.dn);
  });

  it('lists changes since a watermark, including deletions in scope', async () => {
    const start = (await executor.execute(envelope({ type: 'listChanges' }))) as CommandResult<'listChanges'>;
    const a = await create({ sam: sam(), enabled: false });
    const b = await create({ sam: sam(), enabled: false });
    await executor.execute(envelope({ type: 'delete', target: { objectGuid: b.objectGuid } }));
    const delta = (await executor.execute(
      envelope({ type: 'listChanges', since: start.watermark }),
    )) as CommandResult<'listChanges'>;
    const guids = delta.changes.map((change) => change.objectGuid);
    expect(guids).toContain(a.objectGuid);
    expect(delta.changes.find((change) => change.objectGuid === b.objectGuid)).toMatchObject({
      deleted: true,
    });
    expect(BigInt(delta.watermark)).toBeGreaterThan(BigInt(start.watermark));
    const none = (await executor.execute(
      envelope({ type: 'listChanges', since: delta.watermark }),
    )) as CommandResult<'listChanges'>;
    expect(none.changes).toEqual([]);
    const paged = (await executor.execute(
      envelope({ type: 'listChanges', since: start.watermark, pageSize: 1 }),
    )) as CommandResult<'listChanges'>;
    expect(paged.changes).toHaveLength(1);
    expect(paged.more).toBe(true);
  });

  it('pages a read in USN order, every user once, across USN gaps of other objects', async () => {
    const start = (await executor.execute(envelope({ type: 'listChanges' }))) as CommandResult<'listChanges'>;
    const made: string[] = [];
    for (let i = 0; i < 7; i++) {
      made.push((await create({ sam: sam(), enabled: false })).objectGuid);
      // Changes to objects that are not users (group memberships) leave gaps in the users' USNs.
      for (let g = 0; g < 3; g++)
        await admin.modify(
          `CN=Staff,${dc.groupsOu}`,
          new Change({
            operation: 'replace',
            modification: new Attribute({ type: 'description', values: [`gap ${i}.${g}`] }),
          }),
        );
    }
    const seen: string[] = [];
    const usns: bigint[] = [];
    let since = start.watermark;
    for (let calls = 0; ; calls++) {
      expect(calls).toBeLessThan(10);
      const page = (await executor.execute(
        envelope({ type: 'listChanges', since, pageSize: 2 }),
      )) as CommandResult<'listChanges'>;
      expect(page.changes.length).toBeLessThanOrEqual(2);
      for (const change of page.changes) {
        seen.push(change.objectGuid);
        usns.push(BigInt(change.usnChanged));
      }
      expect(BigInt(page.watermark)).toBeGreaterThanOrEqual(BigInt(since));
      since = page.watermark;
      if (!page.more) break;
    }
    expect(seen.filter((g) => made.includes(g)).sort()).toEqual([...made].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(usns).toEqual([...usns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const after = (await executor.execute(
      envelope({ type: 'listChanges', since }),
    )) as CommandResult<'listChanges'>;
    expect(after.changes).toEqual([]);
  });
});

describe('listGroupMembers against a real AD', () => {
  type Listed = CommandResult<'listGroupMembers'>;
  const guidOf = async (dn: string): Promise<string> => {
    const { searchEntries } = await admin.search(dn, {
      scope: 'base',
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    return (searchEntries[0]?.['objectGUID'] as Buffer).toString('base64');
  };
  const addGroup = async (dn: string, members: string[]): Promise<void> => {
    const name = dn.slice(3, dn.indexOf(','));
    await admin.add(dn, {
      objectClass: 'group',
      sAMAccountName: name,
      ...(members.length > 0 ? { member: members } : {}),
    });
  };

  it('resolves nested groups on the DC (cycles too) and never reports an object outside the allowed OUs', async () => {
    const tag = sam('g');
    const direct = await create({ sam: sam(), enabled: false });
    const nested = await create({ sam: sam(), password: strongPassword() });
    const viaOutside = await create({ sam: sam(), password: strongPassword() });
    const outsider = `CN=${tag}-out,OU=Outside,${dc.baseDn}`;
    await admin.add(outsider, { objectClass: 'user', sAMAccountName: `${tag}o` });
    const inner = `CN=${tag}-in,${dc.groupsOu}`;
    const far = `CN=${tag}-far,OU=Outside,${dc.baseDn}`;
    const outer = `CN=${tag}-top,${dc.groupsOu}`;
    await addGroup(inner, [nested.dn, outsider]);
    await addGroup(far, [viaOutside.dn]);
    await addGroup(outer, [direct.dn, inner, far]);
    // A cycle: the outer group is also a member of the inner one.
    await admin.modify(
      inner,
      new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [outer] }) }),
    );
    const [outerGuid, innerGuid] = [await guidOf(outer), await guidOf(inner)];

    const listed = (await executor.execute(
      envelope({ type: 'listGroupMembers', group: { objectGuid: outerGuid } }),
    )) as Listed;
    expect(listed.group).toEqual({ objectGuid: outerGuid, dn: outer });
    expect(listed.next).toBeUndefined();
    const byGuid = new Map(listed.members.map((m) => [m.objectGuid, m]));
    expect(byGuid.get(direct.objectGuid)).toMatchObject({
      kind: 'user',
      enabled: false,
      memberOf: [outerGuid],
    });
    expect(byGuid.get(nested.objectGuid)).toMatchObject({
      kind: 'user',
      enabled: true,
      memberOf: [innerGuid],
    });
    expect(byGuid.get(innerGuid)).toMatchObject({ kind: 'group', memberOf: [outerGuid] });
    // Reached through a group outside the allowed OUs: still a member, attributed to the listed group.
    expect(byGuid.get(viaOutside.objectGuid)).toMatchObject({ kind: 'user', memberOf: [outerGuid] });
    expect(listed.members.map((m) => m.dn)).not.toContain(outsider);
    expect(listed.members.map((m) => m.dn)).not.toContain(far);
    expect(byGuid.has(outerGuid)).toBe(false);
    expect(listed.members).toHaveLength(4);

    // Page by page (objectGUID order), the same members.
    const paged: Listed['members'] = [];
    let after: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = (await executor.execute(
        envelope({
          type: 'listGroupMembers',
          group: { dn: outer },
          pageSize: 1,
          ...(after === undefined ? {} : { after }),
        }),
      )) as Listed;
      expect(page.members.length).toBeLessThanOrEqual(1);
      paged.push(...page.members);
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(paged).toEqual(listed.members);
  });

  it('refuses a group outside the allowed OUs (OutOfScope) and an object that is not a group', async () => {
    const far = `CN=${sam('f')},OU=Outside,${dc.baseDn}`;
    await addGroup(far, []);
    expect(
      (await rejects(executor.execute(envelope({ type: 'listGroupMembers', group: { dn: far } })))).code,
    ).toBe('OutOfScope');
    expect(
      (
        await rejects(
          executor.execute(envelope({ type: 'listGroupMembers', group: { objectGuid: await guidOf(far) } })),
        )
      ).code,
    ).toBe('OutOfScope');
    const user = await create({ sam: sam(), enabled: false });
    expect(
      (
        await rejects(
          executor.execute(envelope({ type: 'listGroupMembers', group: { objectGuid: user.objectGuid } })),
        )
      ).code,
    ).toBe('Validation');
  });
});

describe('scope', () => {
  it('refuses objects and OUs outside the allowed OUs, comparing parsed DNs', async () => {
    const administrator = { dn: dc.bindDn };
    for (const command of [
      { type: 'disable' as const, target: administrator },
      { type: 'delete' as const, target: administrator },
      { type: 'disable' as const, target: { dn: `CN=x,OU=Outside,${dc.baseDn}` } },
      { type: 'disable' as const, target: { dn: `CN=x\\,OU=Atria,OU=Outside,${dc.baseDn}` } },
    ]) {
      const error = await rejects(executor.execute(envelope(command)));
      expect(error.code, JSON.stringify(command)).toBe('OutOfScope');
    }
    const found = (await executor.execute(
      envelope({ type: 'findUser', by: 'sAMAccountName', value: 'Administrator' }),
    )) as CommandResult<'findUser'>;
    expect(found.user).toBeNull();
    const { searchEntries } = await admin.search(dc.bindDn, {
      scope: 'base',
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    const adminGuid = (searchEntries[0]?.['objectGUID'] as Buffer).toString('base64');
    const byGuid = await rejects(
      executor.execute(envelope({ type: 'disable', target: { objectGuid: adminGuid } })),
    );
    expect(byGuid.code).toBe('OutOfScope');
    for (const ou of [
      `OU=Outside,${dc.baseDn}`,
      `OU=Atria-Evil,${dc.baseDn}`,
      `OU=Atria\\,OU=Evil,${dc.baseDn}`,
      `CN=Users,${dc.baseDn}`,
    ]) {
      const error = await rejects(create({ sam: sam(), enabled: false, ou }));
      expect(error.code, ou).toBe('OutOfScope');
    }
    const staff = await rejects(
      executor.execute(
        envelope({
          type: 'groupAdd',
          group: { dn: `CN=Domain Admins,CN=Users,${dc.baseDn}` },
          member: { dn: `CN=x,${dc.usersOu}` },
        }),
      ),
    );
    expect(staff.code).toBe('OutOfScope');
  });
});

describe('the delegated service account', () => {
  it('can do everything the agent needs inside OU=Atria; the DC itself refuses (Forbidden) outside it', async () => {
    const svc = new DcPool({
      urls: [dc.url],
      bindDn: dc.serviceAccount.bindDn,
      password: dc.serviceAccount.password,
      ca: readFileSync(dc.caFile),
    });
    // Deliberately misconfigured scope (OU=Outside allowed) so the request reaches the DC's ACLs.
    const delegated = new LdapExecutor(
      svc,
      { allowedOus: [dc.atriaOu, `OU=Outside,${dc.baseDn}`], allowedAttributes: ['department'] },
      { open: (sealed, binding) => openSecret(sealed, keys.privateKey, binding) },
    );
    try {
      const name = sam('s');
      const password = strongPassword();
      const created = (await delegated.execute(
        createUserEnvelope(keys, dc, { sam: name, password }),
      )) as CommandResult<'createUser'>;
      expect(created.user.enabled).toBe(true);
      expect(await canBind(dc, `${name}@atria.test`, password)).toBe(true);
      const target = { objectGuid: created.user.objectGuid };
      await delegated.execute(
        envelope({ type: 'groupAdd', group: { dn: `CN=Staff,${dc.groupsOu}` }, member: target }),
      );
      await delegated.execute(envelope({ type: 'disable', target }));
      await delegated.execute(envelope({ type: 'delete', target }));
      const outside = await rejects(
        delegated.execute(
          createUserEnvelope(keys, dc, { sam: sam('s'), enabled: false, ou: `OU=Outside,${dc.baseDn}` }),
        ),
      );
      expect(outside.code).toBe('Forbidden');
      expect(outside.retryable).toBe(false);
    } finally {
      await svc.close();
    }
  });

  it('a wrong bind password is InvalidCredentials, not retried', async () => {
    const wrong = new DcPool({
      urls: [dc.url],
      bindDn: dc.serviceAccount.bindDn,
      password: 'wrong-password',
      ca: readFileSync(dc.caFile),
    });
    const failing = new LdapExecutor(
      wrong,
      { allowedOus: [dc.atriaOu], allowedAttributes: [] },
      { open: () => '' },
    );
    const error = await rejects(
      failing.execute(envelope({ type: 'findUser', by: 'sAMAccountName', value: 'x' })),
    );
    expect(error.code).toBe('InvalidCredentials');
    expect(error.retryable).toBe(false);
    await wrong.close();
  });

  it('no reachable DC is a retryable Unavailable', async () => {
    const dead = new DcPool({
      urls: ['ldaps://127.0.0.1:1', 'ldaps://127.0.0.1:2'],
      bindDn: dc.bindDn,
      password: dc.password,
      connectTimeoutInMs: 500,
    });
    const failing = new LdapExecutor(
      dead,
      { allowedOus: [dc.atriaOu], allowedAttributes: [] },
      { open: () => '' },
    );
    const error = await rejects(
      failing.execute(envelope({ type: 'findUser', by: 'sAMAccountName', value: 'x' })),
    );
    expect(error.code).toBe('Unavailable');
    expect(error.retryable).toBe(true);
    await dead.close();
  });
});
