import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { EqualityFilter, type Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DcPool } from '../../agent/ldap/pool.js';
import type { LdapExecutor } from '../../agent/ldap/executor.js';
import { parseDn } from '../../agent/ldap/dn.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import { AppError } from '../../shared/errors.js';
import { sealSecret, type Command, type ObjectRef } from '../../shared/relay-protocol/index.js';
import {
  adminClient,
  envelope,
  newExecutor,
  siteId,
  siteKeys,
  strongPassword,
} from '../integration/ad/support.js';
import { startAgent, type RunningAgent } from '../../agent/runtime.js';
import { resolveAgentConfig } from '../../agent/config.js';
import type { RelayHub } from '../../shared/adapters/relay/index.js';
import type { OnPremDirectory } from '../../shared/ports/on-prem-directory.js';
import { createLogger } from '../../shared/logging.js';
import { agentConfig, newHub, startRelayBus, type RelayBus } from '../integration/ad/bus.js';
import { nastyStrings } from './arbitraries.js';

/**
 * LDAP DN and filter injection through the agent's executor (what the relay agent runs once a command's
 * signature verified) against a real Samba AD DC (issue 19). Names and attribute values with RFC 4514
 * specials, NUL, filter metacharacters, escapes, edge spaces and huge lengths; OUs and targets that try to
 * leave the allowed OU (look-alike OUs, escaped commas, extra RDNs, other containers, a victim user
 * outside, the Administrator, Domain Admins). Every command resolves or fails with a typed AppError, and
 * a snapshot of every object outside the allowed OU (DN and uSNChanged) is identical before and after.
 */
const runs = Number(process.env.FUZZ_LDAP_RUNS ?? 120);
const keys = siteKeys();
const run = randomUUID().slice(0, 6);

let dc: SambaPeer;
let pool: DcPool;
let executor: LdapExecutor;
let admin: Client;
let bus: RelayBus | undefined;
let agent: RunningAgent | undefined;
let hub: RelayHub | undefined;
const outside = { ou: '', victimDn: '', victimGuid: '', lookAlikeOu: '', adminGuid: '', domainAdminsDn: '' };
const inside = { userGuid: '', userDn: '' };

/**
 * Every object outside the allowed OU, and every OU inside it (the allowed OU itself included), with
 * the counter AD bumps on any change to the object.
 */
async function outsideSnapshot(): Promise<Map<string, string>> {
  const { searchEntries } = await admin.search(dc.baseDn, {
    scope: 'sub',
    filter: '(objectClass=*)',
    attributes: ['uSNChanged', 'objectClass'],
    paged: true,
  });
  const allowed = parseDn(dc.atriaOu).map((rdn) =>
    rdn.map((a) => `${a.type}=${a.value.toLowerCase()}`).join('+'),
  );
  const out = new Map<string, string>();
  for (const entry of searchEntries) {
    const rdns = parseDn(entry.dn).map((rdn) =>
      rdn.map((a) => `${a.type}=${a.value.toLowerCase()}`).join('+'),
    );
    const tail = rdns.slice(rdns.length - allowed.length);
    const isInside = rdns.length >= allowed.length && tail.every((rdn, i) => rdn === allowed[i]);
    const isOu = JSON.stringify(entry.objectClass).includes('organizationalUnit');
    if (!isInside || isOu) out.set(entry.dn.toLowerCase(), String(entry.uSNChanged));
  }
  return out;
}

async function guidOf(dn: string): Promise<string> {
  const { searchEntries } = await admin.search(dn, {
    scope: 'base',
    attributes: ['objectGUID'],
    explicitBufferAttributes: ['objectGUID'],
  });
  return (searchEntries[0]?.objectGUID as Buffer).toString('base64');
}

const hostileValue = fc.oneof(
  fc.constantFrom(...nastyStrings),
  fc.constantFrom(
    ',=+<>#;\\"',
    'a,OU=Outside',
    'x\\,OU=Outside',
    '#04024869',
    ' lead',
    'trail ',
    '  ',
    '*',
    '*)(|(objectClass=*',
    '\\2a',
    '\\00',
    ')(cn=*))(|(cn=*',
    'Administrator',
    'krbtgt',
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
  fc.integer({ min: 65, max: 2000 }).map((n) => 'n'.repeat(n)),
);

function escapingOus(): string[] {
  const base = dc.baseDn;
  return [
    outside.ou,
    outside.lookAlikeOu,
    `CN=Users,${base}`,
    base,
    `OU=Users\\,OU=Atria,${base}`,
    `OU=Users,OU=Atria,${base},DC=evil`,
    `OU=Users,OU=Atria+CN=x,${base}`,
    `OU=Users,OU=Atria,DC=atria;DC=test`,
    `OU=Users,OU=Atria ,${base}`,
    `ou=users,ou=atria,${base.toLowerCase()}`,
    `OU=Users,OU=Atria,${base}\u0000`,
    `OU=..,OU=Atria,${base}`,
    `OU=Outside,OU=Users,OU=Atria,${base}`.replace('OU=Users,OU=Atria,', ''),
    `OU=#4f55,${base}`,
    `<GUID=${outside.victimGuid}>`,
    `OU=Users,OU=Atria,${base}`.replace(/,/g, ' , '),
    dc.usersOu,
    dc.atriaOu,
  ];
}

function targets(): fc.Arbitrary<ObjectRef> {
  return fc.oneof(
    fc.constantFrom<ObjectRef>(
      { dn: outside.victimDn },
      { objectGuid: outside.victimGuid },
      { objectGuid: outside.adminGuid },
      { dn: `CN=Administrator,CN=Users,${dc.baseDn}` },
      { dn: outside.domainAdminsDn },
      { dn: inside.userDn.replace(dc.atriaOu, `${dc.atriaOu}\\,x`) },
      { dn: `CN=Victim\\,OU=Outside,${dc.usersOu}` },
      { dn: `${outside.victimDn.split(',')[0] ?? ''},${dc.usersOu}` },
      { objectGuid: inside.userGuid },
      { dn: inside.userDn },
    ),
    fc
      .constantFrom(...escapingOus())
      .filter((dn) => dn.length >= 3)
      .map((dn) => ({ dn })),
    hostileValue
      .filter((v) => v.length >= 3 && v.length <= 2048)
      .map((v) => ({ dn: `CN=${v},${dc.usersOu}` })),
  );
}

function commands(): fc.Arbitrary<Command> {
  const ou = fc.oneof(
    fc.constantFrom(...escapingOus()),
    hostileValue.map((v) => `OU=${v},${dc.atriaOu}`),
  );
  const attributeName = fc.constantFrom(
    'mail',
    'department',
    'title',
    'description',
    'memberOf',
    'userAccountControl',
    'adminCount',
  );
  const value = hostileValue.filter((v) => v.length >= 1 && v.length <= 1024);
  const bounded = (max: number) => hostileValue.filter((v) => v.length >= 1 && v.length <= max);
  const create = fc
    .record({
      ou,
      sam: fc.oneof(bounded(64), fc.stringMatching(/^[a-z][a-z0-9]{3,14}$/)),
      cn: fc.option(bounded(64), { nil: undefined }),
      displayName: bounded(256),
      givenName: fc.option(bounded(64), { nil: undefined }),
      attributes: fc.option(fc.dictionary(attributeName, value, { maxKeys: 2 }), { nil: undefined }),
      withPassword: fc.boolean(),
    })
    .map((f): Command => ({
      type: 'createUser',
      ou: f.ou.length < 3 ? `OU=${f.ou}xx` : f.ou.slice(0, 2048),
      sAMAccountName: f.sam,
      userPrincipalName: `${randomUUID().slice(0, 8)}@atria.test`,
      displayName: f.displayName,
      ...(f.cn === undefined ? {} : { cn: f.cn }),
      ...(f.givenName === undefined ? {} : { givenName: f.givenName }),
      ...(f.attributes === undefined ? {} : { attributes: f.attributes }),
      enabled: false,
    }));
  return fc.oneof(
    { weight: 4, arbitrary: create },
    {
      weight: 2,
      arbitrary: fc
        .record({
          target: targets(),
          set: fc.dictionary(attributeName, fc.option(value, { nil: null }), { minKeys: 1, maxKeys: 2 }),
        })
        .map((f): Command => ({ type: 'updateAttributes', ...f })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ target: targets(), newOu: ou.filter((o) => o.length >= 3) })
        .map((f): Command => ({ type: 'move', ...f })),
    },
    { weight: 1, arbitrary: targets().map((target): Command => ({ type: 'delete', target })) },
    { weight: 1, arbitrary: targets().map((target): Command => ({ type: 'disable', target })) },
    { weight: 1, arbitrary: targets().map((target): Command => ({ type: 'enable', target })) },
    {
      weight: 1,
      arbitrary: fc
        .record({ group: targets(), member: targets() })
        .map((f): Command => ({ type: 'groupAdd', ...f })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          by: fc.constantFrom('sAMAccountName' as const, 'userPrincipalName' as const),
          value: value.filter((v) => v.length <= 1024),
        })
        .map((f): Command => ({ type: 'findUser', ...f })),
    },
  );
}

/** resetPassword needs a sealed secret bound to the command id: sealed per command. */
function resetPassword(target: ObjectRef, commandId: string): Command {
  return {
    type: 'resetPassword',
    target,
    password: sealSecret(strongPassword(), keys.publicKey, { commandId, siteId }),
  };
}

beforeAll(async () => {
  dc = await startSambaPeer();
  ({ pool, executor } = newExecutor(dc, keys));
  admin = await adminClient(dc);
  outside.ou = `OU=Outside${run},${dc.baseDn}`;
  outside.lookAlikeOu = `OU=Atria-Evil${run},${dc.baseDn}`;
  outside.victimDn = `CN=Victim,${outside.ou}`;
  outside.domainAdminsDn = `CN=Domain Admins,CN=Users,${dc.baseDn}`;
  await admin.add(outside.ou, { objectClass: 'organizationalUnit', ou: `Outside${run}` });
  await admin.add(outside.lookAlikeOu, { objectClass: 'organizationalUnit', ou: `Atria-Evil${run}` });
  await admin.add(outside.victimDn, {
    objectClass: ['top', 'person', 'organizationalPerson', 'user'],
    sAMAccountName: `victim${run}`,
    description: 'outside the allowed OU',
  });
  outside.victimGuid = await guidOf(outside.victimDn);
  outside.adminGuid = await guidOf(`CN=Administrator,CN=Users,${dc.baseDn}`);
  const created = await executor.execute(
    envelope({
      type: 'createUser',
      ou: dc.usersOu,
      sAMAccountName: `insider${run}`,
      userPrincipalName: `insider${run}@atria.test`,
      displayName: 'Insider',
      enabled: false,
    }),
  );
  const user = (created as { user: { objectGuid: string; dn: string } }).user;
  inside.userGuid = user.objectGuid;
  inside.userDn = user.dn;
}, 60_000);

afterAll(async () => {
  await hub?.close();
  await agent?.stop();
  await bus?.stop();
  await admin?.unbind();
  await pool?.close();
  await dc?.stop();
});

const outcomes = new Map<string, number>();

describe('commands about a user, aimed at an OU', () => {
  it.each(['disable', 'enable', 'delete'] as const)(
    '%s of the allowed OU itself or its users OU is refused as not a user, before any write',
    async (type) => {
      for (const dn of [dc.atriaOu, dc.usersOu]) {
        await expect(executor.execute(envelope({ type, target: { dn } }))).rejects.toMatchObject({
          code: 'Validation',
          retryable: false,
        });
      }
    },
  );

  it('a group command with a user as the group is refused', async () => {
    await expect(
      executor.execute(
        envelope({
          type: 'groupAdd',
          group: { objectGuid: inside.userGuid },
          member: { objectGuid: inside.userGuid },
        }),
      ),
    ).rejects.toMatchObject({ code: 'Validation' });
  });
});

describe('hostile names, attributes, OUs and targets through the executor', () => {
  it('touch nothing outside the allowed OU, and every command ends in a result or a typed AppError', async () => {
    const usersInOu = async () =>
      (
        await admin.search(dc.atriaOu, {
          scope: 'sub',
          filter: new EqualityFilter({ attribute: 'objectClass', value: 'user' }),
          attributes: ['dn'],
        })
      ).searchEntries.length;
    const usersBefore = await usersInOu();
    const before = await outsideSnapshot();
    expect(before.has(outside.victimDn.toLowerCase())).toBe(true);
    await fc.assert(
      fc.asyncProperty(commands(), fc.nat({ max: 5 }), targets(), async (command, dice, resetTarget) => {
        const commandId = randomUUID();
        const chosen = dice === 0 ? resetPassword(resetTarget, commandId) : command;
        let outcome: string;
        try {
          const result = await executor.execute(envelope(chosen, commandId));
          outcome = 'ok';
          // Whatever was written or found is inside the allowed OU.
          const dn = (result as { user?: { dn?: string } | null }).user?.dn;
          if (dn !== undefined && !dn.toLowerCase().endsWith(dc.atriaOu.toLowerCase()))
            throw new Error(`${chosen.type} answered with an object outside the allowed OU: ${dn}`);
        } catch (error) {
          if (!(error instanceof AppError))
            throw new Error(
              `${chosen.type} threw ${(error as Error).constructor.name}: ${(error as Error).message}`,
              { cause: error },
            );
          outcome = error.code;
        }
        outcomes.set(`${chosen.type} ${outcome}`, (outcomes.get(`${chosen.type} ${outcome}`) ?? 0) + 1);
      }),
      { numRuns: runs, endOnFailure: true },
    );
    const after = await outsideSnapshot();
    const changed = [...after].filter(([dn, usn]) => before.get(dn) !== usn).map(([dn]) => dn);
    const added = [...after.keys()].filter((dn) => !before.has(dn));
    const removed = [...before.keys()].filter((dn) => !after.has(dn));
    console.info(`LDAP fuzz: ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`);
    expect({ changed, added, removed }).toEqual({ changed: [], added: [], removed: [] });
    // The victim is still there, as it was, and not in any group it was not in.
    const { searchEntries } = await admin.search(outside.victimDn, {
      scope: 'base',
      attributes: ['description', 'memberOf'],
    });
    expect(searchEntries[0]?.description).toBe('outside the allowed OU');
    const members = await admin.search(outside.domainAdminsDn, { scope: 'base', attributes: ['member'] });
    expect(JSON.stringify(members.searchEntries[0]?.member ?? [])).not.toMatch(/OU=Atria,|victim/i);
    // And the fuzz did reach the directory: some commands succeeded inside the OU.
    expect([...outcomes.keys()].some((k) => k.endsWith(' ok'))).toBe(true);
    // Every create that answered ok left its user there, unless a delete that answered ok took one away
    // (the draw decides how many of each: counting, not a fixed number, keeps this from flaking).
    const createdOk = outcomes.get('createUser ok') ?? 0;
    const deletedOk = outcomes.get('delete ok') ?? 0;
    expect(await usersInOu()).toBeGreaterThanOrEqual(usersBefore + createdOk - deletedOk);
  });
});

describe('the same corpus through the relay (adapter → Service Bus → agent → DC)', () => {
  it('touches nothing outside the allowed OU, and every call ends in a result or a typed AppError', async () => {
    bus = await startRelayBus();
    agent = await startAgent(resolveAgentConfig(agentConfig(bus, dc, keys), process.cwd()), {
      log: createLogger(() => undefined),
    });
    const relay = newHub(bus);
    hub = relay;
    const directory: OnPremDirectory = relay.directoryFor({
      siteId,
      sitePublicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    const before = await outsideSnapshot();
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(commands(), async (command) => {
        const options = { commandId: randomUUID(), timeoutInMs: 10_000 };
        let outcome = 'ok';
        try {
          if (command.type === 'createUser') {
            const { type: _type, ...user } = command;
            await directory.createUser({ ...user, password: undefined, enabled: false }, options);
          } else if (command.type === 'updateAttributes')
            await directory.updateAttributes(command.target, command.set, options);
          else if (command.type === 'move') await directory.move(command.target, command.newOu, options);
          else if (command.type === 'delete') await directory.delete(command.target, options);
          else if (command.type === 'disable') await directory.disable(command.target, options);
          else if (command.type === 'enable') await directory.enable(command.target, options);
          else if (command.type === 'groupAdd')
            // Membership writes have no port method (they go through the engine's command channel).
            await relay.call<'groupAdd'>(
              siteId,
              { type: 'groupAdd', group: command.group, member: command.member },
              options,
            );
          else if (command.type === 'findUser') await directory.findUser(command.by, command.value, options);
        } catch (error) {
          if (!(error instanceof AppError))
            throw new Error(
              `${command.type} threw ${(error as Error).constructor.name}: ${(error as Error).message}`,
              { cause: error },
            );
          outcome = error.code;
        }
        outcomes.set(`${command.type} ${outcome}`, (outcomes.get(`${command.type} ${outcome}`) ?? 0) + 1);
      }),
      { numRuns: Math.ceil(runs / 4), endOnFailure: true },
    );
    console.info(`LDAP relay fuzz: ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`);
    const after = await outsideSnapshot();
    expect([...after].filter(([dn, usn]) => before.get(dn) !== usn).map(([dn]) => dn)).toEqual([]);
    expect([...before.keys()].filter((dn) => !after.has(dn))).toEqual([]);
    expect([...outcomes.keys()].some((k) => !k.endsWith(' ok') && !k.endsWith(' Timeout'))).toBe(true);
  }, 90_000);
});
