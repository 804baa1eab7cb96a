import {
  AndFilter,
  Attribute,
  Change,
  Control,
  EqualityFilter,
  ExtensibleFilter,
  GreaterThanEqualsFilter,
  LessThanEqualsFilter,
  NotFilter,
  OrFilter,
  type Client,
  type Entry,
  type Filter,
} from 'ldapts';
import { adCommonName } from '../../shared/domain/planning.js';
import { AppError } from '../../shared/errors.js';
import type {
  CommandEnvelope,
  CommandOf,
  CommandResult,
  CommandType,
  DirectoryUser,
  ObjectRef,
  SealedSecret,
} from '../../shared/relay-protocol/index.js';
import { childDn, dnEquals, formatDn, isWithin, parseDn, splitDn } from './dn.js';
import { ldapToAppError } from './errors.js';
import type { DcPool } from './pool.js';

export interface ExecutorPolicy {
  /** Only objects inside these OUs (DNs) are read or written. */
  allowedOus: readonly string[];
  /** Attributes commands may set besides the fixed user fields (case-insensitive). */
  allowedAttributes: readonly string[];
  /** When set, a UPN must end in one of these suffixes. */
  upnSuffixes?: readonly string[];
  /**
   * Also write mS-DS-ConsistencyGuid = objectGUID on create (one more replicated write per user, and
   * the service account needs write access to that attribute). Off by default: Entra Connect and Cloud
   * Sync use objectGUID when it is empty (and write it back themselves), which is the immutable id we
   * give the Entra user, so a later install hard-matches our users either way.
   */
  stampConsistencyGuid?: boolean;
}

export interface SecretOpener {
  open(sealed: SealedSecret, binding: { commandId: string; siteId: string }): string;
}

/** Never settable through commands, whatever the allow-list says: they grant rights or are ours. */
const protectedAttributes = new Set(
  [
    'unicodePwd',
    'userPassword',
    'userAccountControl',
    'objectClass',
    'objectCategory',
    'member',
    'memberOf',
    'primaryGroupID',
    'adminCount',
    'sIDHistory',
    'servicePrincipalName',
    'msDS-AllowedToDelegateTo',
    'msDS-AllowedToActOnBehalfOfOtherIdentity',
    'nTSecurityDescriptor',
    'adminDescription',
    'mS-DS-ConsistencyGuid',
    'sAMAccountName',
    'userPrincipalName',
    'distinguishedName',
    'cn',
    'name',
    'objectGUID',
    'objectSid',
  ].map((name) => name.toLowerCase()),
);

/** Attributes updateAttributes may change without appearing in the allow-list. */
const baseUserAttributes = ['givenName', 'sn', 'displayName'];

const UF_ACCOUNTDISABLE = 0x2;
const UF_NORMAL_ACCOUNT = 0x200;
const showDeletedOid = '1.2.840.113556.1.4.417';
/** LDAP_MATCHING_RULE_IN_CHAIN: walks member links transitively on the DC, cycles included (MS-ADTS 3.1.1.3.4.4). */
const inChainOid = '1.2.840.113556.1.4.1941';
/** Characters Windows AD refuses in sAMAccountName. */
const samForbidden = /["/\\[\]:;|=,+*?<>]/;
const stampPrefix = 'atria-command:';

function hasControlCharacter(value: string): boolean {
  return Array.from(value).some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f');
}

const userAttributes = [
  'objectGUID',
  'distinguishedName',
  'sAMAccountName',
  'userPrincipalName',
  'displayName',
  'givenName',
  'sn',
  'userAccountControl',
  'mS-DS-ConsistencyGuid',
  'uSNChanged',
  'adminDescription',
  'objectClass',
];
const bufferAttributes = ['objectGUID', 'mS-DS-ConsistencyGuid'];

/**
 * A command about a user acts on a user (a group command on a group): never on an OU, a computer or a
 * contact that happens to sit in the allowed subtree — the allowed OU itself included (found by
 * test/fuzz/ldap-injection.test.ts: `disable`/`delete`/`move` reached `OU=Atria` and its sub-OUs).
 */
function assertKind(entry: Entry, what: string): void {
  const raw = entry.objectClass;
  const classes = (Array.isArray(raw) ? raw : [raw]).map((c) => String(c).toLowerCase());
  const isUser = classes.includes('user') && !classes.includes('computer');
  const isGroup = classes.includes('group');
  const fits = what === 'group' ? isGroup : what === 'member' ? isUser || isGroup : isUser;
  if (!fits)
    throw new AppError(
      'Validation',
      `the ${what} named is not a ${what === 'member' ? 'user or group' : what}`,
      {
        retryable: false,
        details: { dn: entry.dn },
      },
    );
}

function one(entry: Entry, name: string): string | undefined {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  if (Array.isArray(value)) {
    const first = value[0];
    return first === undefined ? undefined : Buffer.isBuffer(first) ? first.toString('utf8') : first;
  }
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return value;
}

function many(entry: Entry | undefined, name: string): string[] {
  if (entry === undefined) return [];
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
}

/** A DN in one spelling, for map keys (AD compares DNs case-insensitively). */
function dnKey(dn: string): string {
  return formatDn(parseDn(dn)).toUpperCase().toLowerCase();
}

function oneBuffer(entry: Entry, name: string): Buffer | undefined {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  return Buffer.isBuffer(first) ? first : undefined;
}

/** UTF-16LE of the password in double quotes: the only form AD accepts for unicodePwd. */
function unicodePwdAttribute(password: string): Attribute {
  return new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password}"`, 'utf16le')] });
}

function unicodePwd(password: string): Change {
  return new Change({ operation: 'replace', modification: unicodePwdAttribute(password) });
}

function replace(type: string, values: string[] | Buffer[]): Change {
  return new Change({ operation: 'replace', modification: new Attribute({ type, values }) });
}

interface Located {
  dn: string;
  entry: Entry;
}

/**
 * Executes verified relay commands against AD with ldapts. Enforces what Windows AD would (and Samba does
 * not): sAMAccountName rules, no enabled account without a password, UPN suffix. Every write is
 * idempotent by commandId so a redelivered command returns the same outcome.
 */
type GroupListing = CommandResult<'listGroupMembers'>;

/** How long a group's listing serves its later pages (one snapshot reads its pages back to back). */
const listingTtlInMs = 120_000;

export class LdapExecutor {
  private readonly allowedAttributes: Set<string>;
  /** The last complete listing per group: later pages come from it, so one listing is one search. */
  private readonly listings = new Map<string, { atMs: number; listing: Omit<GroupListing, 'next'> }>();

  constructor(
    private readonly pool: DcPool,
    private readonly policy: ExecutorPolicy,
    private readonly secrets: SecretOpener,
    private readonly extraReadAttributes: readonly string[] = policy.allowedAttributes,
  ) {
    if (policy.allowedOus.length === 0) throw new AppError('Validation', 'no allowed OU configured');
    for (const ou of policy.allowedOus) parseDn(ou);
    this.allowedAttributes = new Set(policy.allowedAttributes.map((name) => name.toLowerCase()));
  }

  async execute(envelope: CommandEnvelope): Promise<CommandResult<CommandType>> {
    const { command } = envelope;
    switch (command.type) {
      case 'createUser':
        return this.createUser(command, envelope);
      case 'updateAttributes':
        return this.updateAttributes(command);
      case 'enable':
        return this.setEnabled(command.target, true);
      case 'disable':
        return this.setEnabled(command.target, false);
      case 'resetPassword':
        return this.resetPassword(command, envelope);
      case 'move':
        return this.move(command);
      case 'delete':
        return this.delete(command);
      case 'groupAdd':
        return this.groupChange(command, 'add');
      case 'groupRemove':
        return this.groupChange(command, 'delete');
      case 'findUser':
        return this.findUser(command);
      case 'listChanges':
        return this.listChanges(command);
      case 'listGroupMembers':
        return this.listGroupMembers(command);
    }
  }

  // ---- scope ----

  private assertInScope(dn: string, what: string): void {
    if (!this.policy.allowedOus.some((ou) => isWithin(dn, ou))) {
      throw new AppError('OutOfScope', `${what} is outside the agent's allowed OUs`, {
        retryable: false,
        details: { dn },
      });
    }
  }

  private assertAttributesAllowed(names: readonly string[], base: readonly string[] = []): void {
    const baseSet = new Set(base.map((name) => name.toLowerCase()));
    for (const name of names) {
      const lower = name.toLowerCase();
      if (protectedAttributes.has(lower) || !(this.allowedAttributes.has(lower) || baseSet.has(lower))) {
        throw new AppError('OutOfScope', `attribute ${name} is not in the agent's allow-list`, {
          retryable: false,
          details: { attribute: name },
        });
      }
    }
  }

  // ---- reads ----

  private toUser(entry: Entry): DirectoryUser {
    const guid = oneBuffer(entry, 'objectGUID');
    if (guid?.length !== 16) throw new AppError('Upstream', 'directory object without a 16-byte objectGUID');
    const consistency = oneBuffer(entry, 'mS-DS-ConsistencyGuid');
    const uac = Number(one(entry, 'userAccountControl') ?? '0');
    const attributes: Record<string, string> = {};
    for (const name of this.extraReadAttributes) {
      const value = one(entry, name);
      if (value !== undefined) attributes[name] = value;
    }
    const optional = (name: string): Record<string, string> => {
      const value = one(entry, name);
      return value === undefined ? {} : { [name]: value };
    };
    return {
      objectGuid: guid.toString('base64'),
      dn: entry.dn,
      sAMAccountName: one(entry, 'sAMAccountName') ?? '',
      ...optional('userPrincipalName'),
      ...optional('displayName'),
      ...optional('givenName'),
      ...optional('sn'),
      enabled: (uac & UF_ACCOUNTDISABLE) === 0,
      ...(consistency?.length === 16 ? { consistencyGuid: consistency.toString('base64') } : {}),
      attributes,
      usnChanged: one(entry, 'uSNChanged') ?? '0',
    };
  }

  private readAttributes(): string[] {
    return [...userAttributes, ...this.extraReadAttributes];
  }

  private async searchOne(client: Client, base: string, filter: Filter): Promise<Entry | undefined> {
    const { searchEntries } = await client.search(base, {
      scope: 'sub',
      filter,
      attributes: this.readAttributes(),
      explicitBufferAttributes: bufferAttributes,
      sizeLimit: 2,
    });
    if (searchEntries.length > 1) throw new AppError('Conflict', 'more than one directory object matches');
    return searchEntries[0];
  }

  private async readDn(client: Client, dn: string): Promise<Entry | undefined> {
    try {
      const { searchEntries } = await client.search(dn, {
        scope: 'base',
        attributes: this.readAttributes(),
        explicitBufferAttributes: bufferAttributes,
      });
      return searchEntries[0];
    } catch (error) {
      const mapped = ldapToAppError(error, 'read');
      if (mapped.code === 'NotFound') return undefined;
      throw mapped;
    }
  }

  /** Finds the object a ref names and checks it is in scope; NotFound when absent. */
  private async locate(
    client: Client,
    namingContext: string,
    ref: ObjectRef,
    what: string,
  ): Promise<Located> {
    let entry: Entry | undefined;
    if ('dn' in ref) {
      this.assertInScope(ref.dn, what); // before touching the directory
      entry = await this.readDn(client, ref.dn);
    } else {
      const guid = Buffer.from(ref.objectGuid, 'base64');
      // A Buffer value: a string filter with \xx escapes is re-encoded as UTF-8 and matches nothing.
      entry = await this.searchOne(
        client,
        namingContext,
        new EqualityFilter({ attribute: 'objectGUID', value: guid }),
      );
    }
    if (entry === undefined) throw new AppError('NotFound', `${what} not found`, { retryable: false });
    this.assertInScope(entry.dn, what);
    assertKind(entry, what);
    return { dn: entry.dn, entry };
  }

  private async reread(client: Client, dn: string): Promise<DirectoryUser> {
    const entry = await this.readDn(client, dn);
    if (entry === undefined)
      throw new AppError('NotFound', 'object vanished after the write', { retryable: true });
    return this.toUser(entry);
  }

  private async run<T>(
    context: string,
    work: (client: Client, namingContext: string) => Promise<T>,
  ): Promise<T> {
    try {
      return await this.pool.run(work);
    } catch (error) {
      throw ldapToAppError(error, context);
    }
  }

  // ---- createUser ----

  private validateNewUser(command: CommandOf<'createUser'>): void {
    const sam = command.sAMAccountName;
    if (
      sam.length > 20 ||
      samForbidden.test(sam) ||
      sam.trim() !== sam ||
      sam.endsWith('.') ||
      hasControlCharacter(sam)
    ) {
      throw new AppError(
        'Validation',
        'sAMAccountName must be at most 20 characters without " / \\ [ ] : ; | = , + * ? < > or control characters',
        { retryable: false },
      );
    }
    const at = command.userPrincipalName.lastIndexOf('@');
    const suffix = at < 0 ? '' : command.userPrincipalName.slice(at + 1);
    if (at < 1 || suffix.length === 0 || /[\s@]/.test(suffix)) {
      throw new AppError('Validation', 'userPrincipalName needs a name and a UPN suffix (name@suffix)', {
        retryable: false,
      });
    }
    const suffixes = this.policy.upnSuffixes;
    if (
      suffixes !== undefined &&
      !suffixes.some((allowed) => allowed.toLowerCase() === suffix.toLowerCase())
    ) {
      throw new AppError('OutOfScope', `UPN suffix ${suffix} is not allowed for this site`, {
        retryable: false,
      });
    }
    if (command.enabled && command.password === undefined) {
      throw new AppError('Validation', 'an enabled user needs a password', { retryable: false });
    }
    this.assertInScope(command.ou, 'target OU');
    this.assertAttributesAllowed(Object.keys(command.attributes ?? {}));
  }

  private async createUser(
    command: CommandOf<'createUser'>,
    envelope: CommandEnvelope,
  ): Promise<CommandResult<'createUser'>> {
    this.validateNewUser(command);
    const stamp = `${stampPrefix}${envelope.commandId}`;
    const password =
      command.password === undefined
        ? undefined
        : this.secrets.open(command.password, { commandId: envelope.commandId, siteId: envelope.siteId });
    return this.run('createUser', async (client, namingContext) => {
      const dn = childDn(
        'cn',
        command.cn ?? adCommonName(command.displayName, command.sAMAccountName, false),
        command.ou,
      );
      // Indexed attributes only; a clash on the DN alone surfaces as LDAP 68 from the add.
      const clash = new OrFilter({
        filters: [
          new EqualityFilter({ attribute: 'sAMAccountName', value: command.sAMAccountName }),
          new EqualityFilter({ attribute: 'userPrincipalName', value: command.userPrincipalName }),
        ],
      });
      // Two round trips for a new user (add, one search; a modify only to stamp mS-DS-ConsistencyGuid
      // when configured), where the DC's password hashing is the cost that matters: the password and the
      // enabled flag go into the add itself (LDAPS), so a user is never visible enabled without a
      // password and a policy refusal leaves nothing behind.
      const withPassword = password !== undefined;
      const attributes: Attribute[] = [
        new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
        new Attribute({ type: 'sAMAccountName', values: [command.sAMAccountName] }),
        new Attribute({ type: 'userPrincipalName', values: [command.userPrincipalName] }),
        new Attribute({ type: 'displayName', values: [command.displayName] }),
        // Enabled only together with its password (validateNewUser refuses enabled without one).
        new Attribute({
          type: 'userAccountControl',
          values: [
            String(
              command.enabled && withPassword ? UF_NORMAL_ACCOUNT : UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE,
            ),
          ],
        }),
        // Durable idempotency record: a redelivered command finds its own object by this stamp.
        new Attribute({ type: 'adminDescription', values: [stamp] }),
      ];
      if (password !== undefined) attributes.push(unicodePwdAttribute(password));
      if (command.givenName !== undefined)
        attributes.push(new Attribute({ type: 'givenName', values: [command.givenName] }));
      if (command.sn !== undefined) attributes.push(new Attribute({ type: 'sn', values: [command.sn] }));
      for (const [type, value] of Object.entries(command.attributes ?? {})) {
        attributes.push(new Attribute({ type, values: [value] }));
      }
      let created = true;
      try {
        await client.add(dn, attributes);
      } catch (error) {
        const mapped = ldapToAppError(error, 'createUser');
        if (mapped.code !== 'AlreadyExists') throw mapped;
        // A redelivery of this command (its object carries our stamp), a concurrent delivery, or a
        // genuine clash: the search below tells them apart.
        created = false;
        const taken = await this.searchAll(client, namingContext, clash);
        if (taken.length === 0) {
          if (command.cn !== undefined)
            throw new AppError('AlreadyExists', `cn: ${command.cn} is taken in ${command.ou}`, {
              retryable: false,
            });
          // Only the name is taken in this OU (another "Ada Lovelace"): AD admins' convention, made
          // deterministic — `<displayName> (<sAMAccountName>)`, unique because the sAMAccountName is.
          const suffixed = childDn(
            'cn',
            adCommonName(command.displayName, command.sAMAccountName, true),
            command.ou,
          );
          try {
            await client.add(suffixed, attributes);
            created = true;
          } catch (second) {
            const again = ldapToAppError(second, 'createUser');
            if (again.code !== 'AlreadyExists') throw again;
            if ((await this.searchAll(client, namingContext, clash)).length === 0)
              throw new AppError(
                'AlreadyExists',
                `cn: the names ${command.displayName} and ${adCommonName(command.displayName, command.sAMAccountName, true)} are both taken in ${command.ou}`,
                { retryable: false },
              );
          }
        }
      }
      // Our object and anything else with this sAMAccountName or UPN (a DC that does not enforce unique
      // UPNs lets a stranger's duplicate through the add: ours is then removed, never kept beside it).
      const existing = await this.searchAll(client, namingContext, clash);
      const mine = existing.find((entry) => one(entry, 'adminDescription') === stamp);
      const other = existing.find((entry) => one(entry, 'adminDescription') !== stamp);
      if (mine === undefined || other !== undefined) {
        if (created && mine !== undefined) await client.del(mine.dn).catch(() => undefined);
        if (mine === undefined && other === undefined)
          throw new AppError('NotFound', 'created object vanished', { retryable: true });
        // Say which attribute clashed (after truncation the sAMAccountName is often the surprise).
        const attribute =
          other !== undefined &&
          (one(other, 'sAMAccountName') ?? '').toLowerCase() === command.sAMAccountName.toLowerCase()
            ? 'sAMAccountName'
            : 'userPrincipalName';
        const value = attribute === 'sAMAccountName' ? command.sAMAccountName : command.userPrincipalName;
        throw new AppError(
          'AlreadyExists',
          `${attribute}: ${value} is already used by ${other?.dn ?? 'another object'}`,
          {
            retryable: false,
            details: { dn: other?.dn, attribute },
          },
        );
      }
      const target = mine.dn;
      const uac = Number(one(mine, 'userAccountControl') ?? '0');
      const guid = oneBuffer(mine, 'objectGUID');
      const consistency = oneBuffer(mine, 'mS-DS-ConsistencyGuid');
      const stamped = guid !== undefined && consistency?.equals(guid) === true;
      // Only an object made by an older agent (created disabled, password set afterwards) still needs
      // enabling; a redelivery then finds either none or all of this one ordered modify done.
      const mustEnable = command.enabled && (uac & UF_ACCOUNTDISABLE) !== 0;
      const changes: Change[] = [];
      if (mustEnable) {
        if (password !== undefined) changes.push(unicodePwd(password));
        changes.push(replace('userAccountControl', [String(uac & ~UF_ACCOUNTDISABLE)]));
      }
      // The anchor stamp, when configured (see ExecutorPolicy.stampConsistencyGuid).
      const stamping = this.policy.stampConsistencyGuid === true && guid !== undefined && !stamped;
      if (stamping) changes.push(replace('mS-DS-ConsistencyGuid', [guid]));
      if (changes.length > 0) {
        try {
          await client.modify(target, changes);
        } catch (error) {
          const mapped = ldapToAppError(error, 'createUser: anchor');
          if (mapped.code === 'PasswordPolicy' || !mapped.retryable) {
            // Leave nothing half-made: a new command (with a better password) can create it cleanly.
            await client.del(target).catch(() => undefined);
          }
          throw mapped;
        }
      }
      // The result is composed from the search and what the modify wrote (no re-read); its usnChanged
      // is the one read before the modify, and the change feed reports the later one.
      const user = this.toUser(mine);
      return {
        user: {
          ...user,
          ...(mustEnable ? { enabled: true } : {}),
          ...(stamping && guid.length === 16 ? { consistencyGuid: guid.toString('base64') } : {}),
        },
        replayed: !created,
      };
    });
  }

  private async searchAll(client: Client, base: string, filter: Filter): Promise<Entry[]> {
    const { searchEntries } = await client.search(base, {
      scope: 'sub',
      filter,
      attributes: this.readAttributes(),
      explicitBufferAttributes: bufferAttributes,
    });
    return searchEntries;
  }

  // ---- other writes ----

  private async updateAttributes(
    command: CommandOf<'updateAttributes'>,
  ): Promise<CommandResult<'updateAttributes'>> {
    const names = Object.keys(command.set);
    this.assertAttributesAllowed(names, baseUserAttributes);
    if (names.length === 0) throw new AppError('Validation', 'nothing to update', { retryable: false });
    return this.run('updateAttributes', async (client, namingContext) => {
      const { dn } = await this.locate(client, namingContext, command.target, 'user');
      const changes = Object.entries(command.set).map(([type, value]) =>
        replace(type, value === null ? [] : [value]),
      );
      await client.modify(dn, changes);
      return { user: await this.reread(client, dn) };
    });
  }

  private async setEnabled(target: ObjectRef, enabled: boolean): Promise<CommandResult<'enable'>> {
    return this.run(enabled ? 'enable' : 'disable', async (client, namingContext) => {
      const { dn, entry } = await this.locate(client, namingContext, target, 'user');
      const uac = Number(one(entry, 'userAccountControl') ?? String(UF_NORMAL_ACCOUNT));
      const next = enabled ? uac & ~UF_ACCOUNTDISABLE : uac | UF_ACCOUNTDISABLE;
      if (next !== uac) await client.modify(dn, replace('userAccountControl', [String(next)]));
      return { user: await this.reread(client, dn) };
    });
  }

  private async resetPassword(
    command: CommandOf<'resetPassword'>,
    envelope: CommandEnvelope,
  ): Promise<CommandResult<'resetPassword'>> {
    const password = this.secrets.open(command.password, {
      commandId: envelope.commandId,
      siteId: envelope.siteId,
    });
    return this.run('resetPassword', async (client, namingContext) => {
      const { dn, entry } = await this.locate(client, namingContext, command.target, 'user');
      const changes = [unicodePwd(password)];
      if (command.mustChangeAtNextLogon === true) changes.push(replace('pwdLastSet', ['0']));
      await client.modify(dn, changes);
      return { objectGuid: this.toUser(entry).objectGuid };
    });
  }

  private async move(command: CommandOf<'move'>): Promise<CommandResult<'move'>> {
    this.assertInScope(command.newOu, 'destination OU');
    return this.run('move', async (client, namingContext) => {
      const { dn } = await this.locate(client, namingContext, command.target, 'user');
      const { rdn, parent } = splitDn(dn);
      if (dnEquals(parent, command.newOu)) return { user: await this.reread(client, dn) }; // already there
      const first = rdn[0];
      if (first === undefined || rdn.length !== 1)
        throw new AppError('Validation', 'multi-valued RDNs are not moved');
      const newDn = childDn(first.type, first.value, command.newOu);
      await client.modifyDN(dn, newDn);
      return { user: await this.reread(client, newDn) };
    });
  }

  private async delete(command: CommandOf<'delete'>): Promise<CommandResult<'delete'>> {
    return this.run('delete', async (client, namingContext) => {
      let located: Located;
      try {
        located = await this.locate(client, namingContext, command.target, 'user');
      } catch (error) {
        // Deleting what is already gone is success: a redelivered delete must not fail.
        if (error instanceof AppError && error.code === 'NotFound') {
          return 'objectGuid' in command.target
            ? { objectGuid: command.target.objectGuid, alreadyAbsent: true }
            : { alreadyAbsent: true };
        }
        throw error;
      }
      const objectGuid = this.toUser(located.entry).objectGuid;
      try {
        await client.del(located.dn);
      } catch (error) {
        const mapped = ldapToAppError(error, 'delete');
        if (mapped.code === 'NotFound') return { objectGuid, alreadyAbsent: true };
        throw mapped;
      }
      return { objectGuid, alreadyAbsent: false };
    });
  }

  private async groupChange(
    command: CommandOf<'groupAdd'> | CommandOf<'groupRemove'>,
    operation: 'add' | 'delete',
  ): Promise<CommandResult<'groupAdd'>> {
    return this.run(command.type, async (client, namingContext) => {
      const group = await this.locate(client, namingContext, command.group, 'group');
      const member = await this.locate(client, namingContext, command.member, 'member');
      try {
        await client.modify(
          group.dn,
          new Change({ operation, modification: new Attribute({ type: 'member', values: [member.dn] }) }),
        );
        return { changed: true };
      } catch (error) {
        const mapped = ldapToAppError(error, command.type);
        // Already a member / already not a member: the desired state holds, so the command succeeded.
        if (operation === 'add' && mapped.code === 'AlreadyExists') return { changed: false };
        if (operation === 'delete' && (mapped.code === 'Validation' || mapped.code === 'NotFound')) {
          if (
            error instanceof Error &&
            /\b(16|0x10|53|0x35)\b|no such attribute|unwilling/i.test(error.message)
          ) {
            return { changed: false };
          }
        }
        throw mapped;
      }
    });
  }

  // ---- queries ----

  private async findUser(command: CommandOf<'findUser'>): Promise<CommandResult<'findUser'>> {
    let filter: Filter;
    if (command.by === 'objectGuid') {
      const guid = Buffer.from(command.value, 'base64');
      if (guid.length !== 16 || guid.toString('base64') !== command.value) {
        throw new AppError('Validation', 'objectGuid must be base64 of 16 bytes', { retryable: false });
      }
      filter = new EqualityFilter({ attribute: 'objectGUID', value: guid });
    } else {
      filter = new EqualityFilter({ attribute: command.by, value: command.value });
    }
    const userFilter = new AndFilter({
      filters: [new EqualityFilter({ attribute: 'objectClass', value: 'user' }), filter],
    });
    return this.run('findUser', async (client) => {
      for (const ou of this.policy.allowedOus) {
        const entry = await this.searchOne(client, ou, userFilter);
        if (entry !== undefined) return { user: this.toUser(entry) };
      }
      return { user: null };
    });
  }

  /**
   * Changes above the watermark, oldest first, one page at a time — in time linear in the directory.
   * It searches USN windows [lo, hi] (uSNChanged is indexed): a window is read whole, so everything up to
   * its top is known; windows start at one page of USNs and double while they come back sparse (USNs
   * count every object's changes, not only our users'), and the page ends with the first window that
   * fills it. Reading all changes above the watermark on every call, then sorting, cost n²/(2·pageSize)
   * entries for a full read (Samba, 4,000 users, loaded machine: 9.3 s at 1,000 a page and 34.6 s at 250
   * before; 7.6 s and 13.6 s with windows).
   */
  private async listChanges(command: CommandOf<'listChanges'>): Promise<CommandResult<'listChanges'>> {
    const since = BigInt(command.since ?? '0');
    const pageSize = command.pageSize ?? 500;
    return this.run('listChanges', async (client, namingContext) => {
      type Change = CommandResult<'listChanges'>['changes'][number];
      // Read before searching: every change committed later gets a higher USN and shows up next time.
      const { searchEntries: root } = await client.search('', {
        scope: 'base',
        attributes: ['highestCommittedUSN'],
      });
      const highest = BigInt(one(root[0] ?? { dn: '' }, 'highestCommittedUSN') ?? '0');
      const found: Change[] = [];
      let lo = since + 1n;
      let top = since;
      for (let window = BigInt(pageSize); lo <= highest && found.length < pageSize; window *= 2n) {
        const hi = lo + window - 1n < highest ? lo + window - 1n : highest;
        found.push(...(await this.changesWithin(client, namingContext, lo, hi)));
        top = hi;
        lo = hi + 1n;
      }
      found.sort((a, b) => (BigInt(a.usnChanged) < BigInt(b.usnChanged) ? -1 : 1));
      const page = found.slice(0, pageSize);
      const cut = found.length > pageSize;
      const more = cut || top < highest;
      const last = BigInt(page[page.length - 1]?.usnChanged ?? '0');
      // Cut inside a window: up to the last change returned. Otherwise every window read is complete, so
      // the watermark may move past out-of-scope changes too (up to the window's top, or the USN read first).
      const watermark = cut ? last : [since, last, top].reduce((a, b) => (b > a ? b : a));
      return { changes: page, watermark: watermark.toString(), more };
    });
  }

  /** Users (in the allowed OUs) and deleted users (last seen there) whose uSNChanged is in [lo, hi]. */
  private async changesWithin(
    client: Client,
    namingContext: string,
    lo: bigint,
    hi: bigint,
  ): Promise<CommandResult<'listChanges'>['changes']> {
    const usnRange = [
      new GreaterThanEqualsFilter({ attribute: 'uSNChanged', value: lo.toString() }),
      new LessThanEqualsFilter({ attribute: 'uSNChanged', value: hi.toString() }),
    ];
    const users = new AndFilter({
      filters: [
        new EqualityFilter({ attribute: 'objectClass', value: 'user' }),
        new NotFilter({ filter: new EqualityFilter({ attribute: 'objectClass', value: 'computer' }) }),
        ...usnRange,
      ],
    });
    const found: CommandResult<'listChanges'>['changes'] = [];
    for (const ou of this.policy.allowedOus) {
      for await (const page of client.searchPaginated(ou, {
        scope: 'sub',
        filter: users,
        attributes: this.readAttributes(),
        explicitBufferAttributes: bufferAttributes,
        paged: { pageSize: 500 },
      })) {
        for (const entry of page.searchEntries) found.push(this.toUser(entry));
      }
    }
    // Deleted users live in CN=Deleted Objects; lastKnownParent tells whether they were ours.
    // Reading them needs rights a delegated account may lack: then deletions are not reported.
    let deleted: Entry[] = [];
    try {
      ({ searchEntries: deleted } = await client.search(
        namingContext,
        {
          scope: 'sub',
          filter: new AndFilter({
            filters: [
              new EqualityFilter({ attribute: 'isDeleted', value: 'TRUE' }),
              new EqualityFilter({ attribute: 'objectClass', value: 'user' }),
              ...usnRange,
            ],
          }),
          attributes: ['objectGUID', 'lastKnownParent', 'uSNChanged'],
          explicitBufferAttributes: ['objectGUID'],
        },
        new Control(showDeletedOid, { critical: true }),
      ));
    } catch (error) {
      const mapped = ldapToAppError(error, 'listChanges: deleted objects');
      if (mapped.code !== 'Forbidden' && mapped.code !== 'NotFound') throw mapped;
    }
    for (const entry of deleted) {
      const parent = one(entry, 'lastKnownParent');
      const guid = oneBuffer(entry, 'objectGUID');
      if (parent === undefined || guid?.length !== 16) continue;
      if (!this.policy.allowedOus.some((ou) => isWithin(parent, ou))) continue;
      found.push({
        objectGuid: guid.toString('base64'),
        deleted: true,
        usnChanged: one(entry, 'uSNChanged') ?? '0',
      });
    }
    return found;
  }

  /**
   * Every user and group inside the allowed OUs that is a member of the group, directly or through
   * nested groups (one in-chain search per allowed OU, which Samba supports as Windows AD does), with the
   * direct edges among them so the cloud can keep the nesting. Paged by objectGUID order (an LDAP paging
   * cookie does not outlive its connection, so pages are cut from one cached search).
   * Primary-group membership (primaryGroupID) is not a `member` link and is not listed, as in AD.
   */
  private async listGroupMembers(
    command: CommandOf<'listGroupMembers'>,
  ): Promise<CommandResult<'listGroupMembers'>> {
    const pageSize = command.pageSize ?? 500;
    const key = JSON.stringify(command.group).toLowerCase();
    const cached = this.listings.get(key);
    // A first page always searches afresh; a later one reuses that search while it is recent, so the
    // pages are one consistent answer and a large group costs one in-chain search, not one per page.
    const full =
      command.after !== undefined && cached !== undefined && Date.now() - cached.atMs < listingTtlInMs
        ? cached.listing
        : await this.searchGroupMembers(command.group);
    if (full !== cached?.listing) {
      this.listings.delete(key);
      this.listings.set(key, { atMs: Date.now(), listing: full });
      for (const oldest of this.listings.keys()) {
        if (this.listings.size <= 32) break;
        this.listings.delete(oldest);
      }
    }
    const after = command.after;
    const rest = after === undefined ? full.members : full.members.filter((m) => m.objectGuid > after);
    const page = rest.slice(0, pageSize);
    const last = page.at(-1);
    return {
      group: full.group,
      members: page,
      ...(rest.length > pageSize && last !== undefined ? { next: last.objectGuid } : {}),
    };
  }

  private async searchGroupMembers(ref: ObjectRef): Promise<Omit<GroupListing, 'next'>> {
    const command = { group: ref };
    return this.run('listGroupMembers', async (client, namingContext) => {
      const group = await this.locate(client, namingContext, command.group, 'group');
      const { searchEntries: kind } = await client.search(group.dn, {
        scope: 'base',
        attributes: ['objectClass'],
      });
      if (!many(kind[0], 'objectClass').some((c) => c.toLowerCase() === 'group'))
        throw new AppError('Validation', 'the object is not a group', { retryable: false });
      const rootGuid = oneBuffer(group.entry, 'objectGUID')?.toString('base64');
      if (rootGuid === undefined) throw new AppError('Upstream', 'group without an objectGUID');
      const filter = new AndFilter({
        filters: [
          new ExtensibleFilter({ matchType: 'memberOf', rule: inChainOid, value: group.dn }),
          new OrFilter({
            filters: [
              new EqualityFilter({ attribute: 'objectClass', value: 'group' }),
              new AndFilter({
                filters: [
                  new EqualityFilter({ attribute: 'objectClass', value: 'user' }),
                  new NotFilter({
                    filter: new EqualityFilter({ attribute: 'objectClass', value: 'computer' }),
                  }),
                ],
              }),
            ],
          }),
        ],
      });
      const found = new Map<string, { guid: string; entry: Entry }>();
      for (const ou of this.policy.allowedOus) {
        for await (const page of client.searchPaginated(ou, {
          scope: 'sub',
          filter,
          attributes: ['objectGUID', 'objectClass', 'memberOf', 'userAccountControl'],
          explicitBufferAttributes: ['objectGUID'],
          paged: { pageSize: 500 },
        })) {
          for (const entry of page.searchEntries) {
            const guid = oneBuffer(entry, 'objectGUID');
            // Scope again on the answer: allowed OUs may overlap, and nothing outside them is reported.
            if (guid?.length !== 16 || !this.policy.allowedOus.some((o) => isWithin(entry.dn, o))) continue;
            found.set(guid.toString('base64'), { guid: guid.toString('base64'), entry });
          }
        }
      }
      const isGroup = (entry: Entry): boolean =>
        many(entry, 'objectClass').some((c) => c.toLowerCase() === 'group');
      const groupByDn = new Map<string, string>([[dnKey(group.dn), rootGuid]]);
      for (const { guid, entry } of found.values()) if (isGroup(entry)) groupByDn.set(dnKey(entry.dn), guid);
      const members = [...found.values()]
        .filter(({ guid }) => guid !== rootGuid) // a cycle leads back to the group itself
        .sort((a, b) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0))
        .map(({ guid, entry }) => {
          const parents = many(entry, 'memberOf')
            .map((dn) => groupByDn.get(dnKey(dn)))
            .filter((g): g is string => g !== undefined);
          const uac = Number(one(entry, 'userAccountControl') ?? '0');
          return {
            objectGuid: guid,
            dn: entry.dn,
            kind: isGroup(entry) ? ('group' as const) : ('user' as const),
            ...(isGroup(entry) ? {} : { enabled: (uac & UF_ACCOUNTDISABLE) === 0 }),
            memberOf: parents.length > 0 ? [...new Set(parents)].sort() : [rootGuid],
          };
        });
      return { group: { objectGuid: rootGuid, dn: group.dn }, members };
    });
  }
}
