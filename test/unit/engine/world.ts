import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { Customer } from '../../../shared/domain/customer.js';
import type { CreateUserRequest } from '../../../shared/domain/user.js';
import { AppError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/logging.js';
import {
  validateOutgoing,
  type Bus,
  type MessageContract,
  type SendMessageOptions,
} from '../../../shared/ports/bus.js';
import type { Clock } from '../../../shared/ports/clock.js';
import type { CloudDirectory, CloudUser, NewCloudUser } from '../../../shared/ports/cloud-directory.js';
import type {
  OnPremCommand,
  OnPremCommandChannel,
  OnPremReply,
  SubmitOptions,
} from '../../../shared/ports/on-prem-directory.js';
import type { SecretSealer } from '../../../shared/ports/secret-sealer.js';
import type { Collection, ListOptions, Page, Store, Versioned } from '../../../shared/ports/store.js';
import type { DirectoryWork } from '../../../shared/contracts/directory-work.js';
import { customersCollection } from '../../../shared/usecases/customers.js';
import { createProvisioning, type ProvisioningDeps } from '../../../shared/usecases/provisioning.js';

/**
 * In-memory ports for the operation engine: a Store with etags whose writes can be made to crash
 * (before or after the write lands), a Bus that keeps scheduled messages, a Graph-like directory and a
 * site agent that applies each command once per command id. `pump` delivers everything until quiet.
 */
export class Crash extends Error {}

type Row = { value: unknown; etag: string };

export class MemoryStore implements Store {
  private readonly rows = new Map<string, Map<string, Map<string, { value: unknown; etag: string }>>>();
  writes = 0;
  /** Point reads by table (`users` → n), for tests of what a flow reads. */
  readonly reads = new Map<string, number>();
  /** Throws on the write with this number (1-based): `before` it lands or `after`. */
  crashAt: { write: number; when: 'before' | 'after' } | undefined;

  private table(name: string) {
    let t = this.rows.get(name);
    if (t === undefined) this.rows.set(name, (t = new Map<string, Map<string, Row>>()));
    return t;
  }

  /** The table of every write, in order (write n is `writeLog[n - 1]`). */
  readonly writeLog: string[] = [];

  private write(table: string, apply: () => void): void {
    this.writes++;
    this.writeLog.push(table);
    const crash = this.crashAt;
    if (crash !== undefined && crash.write === this.writes && crash.when === 'before')
      throw new Crash('before');
    apply();
    if (crash !== undefined && crash.write === this.writes && crash.when === 'after')
      throw new Crash('after');
  }

  collection<T>(name: string, schema: z.ZodType<T>): Collection<T> {
    const table = this.table(name);
    const part = (pk: string) => {
      let p = table.get(pk);
      if (p === undefined) table.set(pk, (p = new Map<string, Row>()));
      return p;
    };
    const versioned = (pk: string, rk: string, row: { value: unknown; etag: string }): Versioned<T> => ({
      partitionKey: pk,
      rowKey: rk,
      value: schema.parse(structuredClone(row.value)),
      etag: row.etag,
    });
    // A crash is a rejected promise, as over the network: writes started beside it (Promise.all) still land.
    const write = (apply: () => void): void => this.write(name, apply);
    const attempt = <R>(run: () => R): Promise<R> => {
      try {
        return Promise.resolve(run());
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const collection: Collection<T> = {
      get: (pk, rk) => {
        this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
        const row = part(pk).get(rk);
        return Promise.resolve(row === undefined ? undefined : versioned(pk, rk, row));
      },
      create(pk, rk, value) {
        if (part(pk).has(rk))
          return Promise.reject(new AppError('AlreadyExists', `${name} ${pk}/${rk} exists`));
        const row = { value: structuredClone(schema.parse(value)), etag: randomUUID() };
        return attempt(() => {
          write(() => part(pk).set(rk, row));
          return versioned(pk, rk, row);
        });
      },
      replace(pk, rk, value, etag) {
        const current = part(pk).get(rk);
        // As the Table adapter: replacing a row deleted meanwhile is a lost update, not NotFound.
        if (current === undefined)
          return Promise.reject(
            new AppError('ConcurrencyConflict', `${name} ${pk}/${rk} was deleted meanwhile`),
          );
        if (current.etag !== etag)
          return Promise.reject(new AppError('ConcurrencyConflict', `${name} ${pk}/${rk}`));
        const row = { value: structuredClone(schema.parse(value)), etag: randomUUID() };
        return attempt(() => {
          write(() => part(pk).set(rk, row));
          return versioned(pk, rk, row);
        });
      },
      upsert(pk, rk, value) {
        const row = { value: structuredClone(schema.parse(value)), etag: randomUUID() };
        return attempt(() => {
          write(() => part(pk).set(rk, row));
          return versioned(pk, rk, row);
        });
      },
      delete(pk, rk, etag) {
        const current = part(pk).get(rk);
        if (current === undefined) return Promise.resolve();
        if (etag !== undefined && current.etag !== etag)
          return Promise.reject(new AppError('ConcurrencyConflict', `${name} ${pk}/${rk}`));
        return attempt(() => write(() => part(pk).delete(rk)));
      },
      listPage(pk, options: ListOptions = {}): Promise<Page<T>> {
        const keys = [...part(pk).keys()]
          .filter((k) => options.rowKeyPrefix === undefined || k.startsWith(options.rowKeyPrefix))
          .sort();
        const start = options.continuationToken === undefined ? 0 : Number(options.continuationToken);
        const size = options.pageSize ?? 1000;
        const items = keys.slice(start, start + size).flatMap((k) => {
          const row = part(pk).get(k);
          return row === undefined ? [] : [versioned(pk, k, row)];
        });
        return Promise.resolve({
          items,
          ...(start + size < keys.length ? { continuationToken: String(start + size) } : {}),
        });
      },
      async *list(pk, options = {}) {
        let token: string | undefined;
        do {
          const page = await collection.listPage(pk, {
            ...options,
            ...(token === undefined ? {} : { continuationToken: token }),
          });
          yield* page.items;
          token = page.continuationToken;
        } while (token !== undefined);
      },
    };
    return collection;
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Sent {
  body: DirectoryWork;
  options: SendMessageOptions;
}

export class MemoryBus implements Bus {
  queue: Sent[] = [];
  private readonly seen = new Set<string>();
  send<T>(contract: MessageContract<T>, body: T, options: SendMessageOptions): Promise<void> {
    validateOutgoing(contract, body);
    // Duplicate detection, as Service Bus does it, by message id.
    if (this.seen.has(options.messageId)) return Promise.resolve();
    this.seen.add(options.messageId);
    this.queue.push({ body: body as DirectoryWork, options });
    return Promise.resolve();
  }
  async sendBatch<T>(
    contract: MessageContract<T>,
    items: readonly { body: T; options: SendMessageOptions }[],
  ) {
    for (const item of items) await this.send(contract, item.body, item.options);
  }
}

export class FakeCloud implements Partial<CloudDirectory> {
  readonly tenantId = 'tenant-1';
  users = new Map<string, CloudUser>();
  created = 0;
  deleted = 0;
  failNext: AppError[] = [];
  private maybeFail(): void {
    const next = this.failNext.shift();
    if (next !== undefined) throw next;
  }
  findUserByUpn(upn: string) {
    this.maybeFail();
    return Promise.resolve([...this.users.values()].find((u) => u.userPrincipalName === upn));
  }
  /** Keys that stamped users (the adapter's directory extension marker). */
  readonly stamps = new Map<string, string>();
  /** As the Graph adapter does it: stamp the key; on a taken UPN adopt only our stamp or our anchor. */
  async createUserOnce(user: NewCloudUser, idempotencyKey: string) {
    try {
      const created = await this.createUser(user);
      this.stamps.set(created.id, idempotencyKey);
      return { user: created, adopted: false };
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
    }
    const existing = [...this.users.values()].find((u) => u.userPrincipalName === user.userPrincipalName);
    if (
      existing !== undefined &&
      (this.stamps.get(existing.id) === idempotencyKey ||
        (user.onPremisesImmutableId !== undefined &&
          existing.onPremisesImmutableId === user.onPremisesImmutableId))
    )
      return { user: existing, adopted: true };
    throw new AppError(
      'AlreadyExists',
      `${user.userPrincipalName} already exists in Entra ID and is not ours`,
      {
        details: { attribute: 'userPrincipalName' },
      },
    );
  }
  createUser(user: NewCloudUser) {
    this.maybeFail();
    if ([...this.users.values()].some((u) => u.userPrincipalName === user.userPrincipalName))
      return Promise.reject(new AppError('AlreadyExists', 'userPrincipalName already exists'));
    const created: CloudUser = {
      id: randomUUID(),
      userPrincipalName: user.userPrincipalName,
      displayName: user.displayName,
      mailNickname: user.mailNickname,
      accountEnabled: user.accountEnabled ?? null,
      givenName: null,
      surname: null,
      jobTitle: null,
      department: null,
      mail: null,
      usageLocation: user.usageLocation ?? null,
      onPremisesImmutableId: user.onPremisesImmutableId ?? null,
      assignedLicences: [],
    };
    this.users.set(created.id, created);
    this.created++;
    return Promise.resolve(created);
  }
  deleteUser(id: string) {
    this.maybeFail();
    if (this.users.delete(id)) this.deleted++;
    return Promise.resolve();
  }
  updateUser() {
    this.maybeFail();
    return Promise.resolve();
  }
  disableUser(id: string) {
    this.maybeFail();
    const u = this.users.get(id);
    if (u !== undefined) u.accountEnabled = false;
    return Promise.resolve();
  }
  enableUser(id: string) {
    this.maybeFail();
    const u = this.users.get(id);
    if (u !== undefined) u.accountEnabled = true;
    return Promise.resolve();
  }
  /** Replication lag: the next this-many licence assignments 404 naming the user, as Graph words it. */
  lagNotFound = 0;
  assignLicences(id: string, change: { add: { skuId: string }[] }) {
    this.maybeFail();
    if (this.lagNotFound > 0) {
      this.lagNotFound--;
      return Promise.reject(
        new AppError('NotFound', `assign licences: Resource '${id}' does not exist (Graph 404)`, {
          retryable: false,
        }),
      );
    }
    const u = this.users.get(id);
    if (u === undefined) return Promise.reject(new AppError('NotFound', 'no user'));
    for (const a of change.add)
      if (!u.assignedLicences.some((l) => l.skuId === a.skuId))
        u.assignedLicences.push({ skuId: a.skuId, disabledPlanIds: [] });
    return Promise.resolve();
  }
}

/** A site agent: applies each command id once (the first outcome is kept), answers every send. */
export class FakeAgent {
  inbox: { command: OnPremCommand; options: SubmitOptions }[] = [];
  objects = new Map<string, { sAMAccountName: string; enabled: boolean; deleted: boolean }>();
  outcomes = new Map<string, OnPremReply>();
  creates = 0;
  /** Answer with this (retryable) failure while > 0. */
  unavailableFor = 0;
  permanentFailure: { code: string; message: string } | undefined;
  /** Deletes (undo of a create, or a user delete) fail permanently. */
  failDeletes = false;
  /** While true, commands are lost (agent offline; its queue is purged). */
  offline = false;

  channel(siteId: string): OnPremCommandChannel {
    return {
      siteId,
      submit: (command, options) => {
        this.inbox.push({ command, options });
        return Promise.resolve();
      },
    };
  }

  answer(siteId: string, item: { command: OnPremCommand; options: SubmitOptions }): OnPremReply {
    const id = item.options.commandId;
    if (this.unavailableFor > 0) {
      this.unavailableFor--;
      return {
        siteId,
        commandId: id,
        ok: false,
        error: { code: 'Unavailable', message: 'no DC', retryable: true },
      };
    }
    const known = this.outcomes.get(id);
    if (known !== undefined) return known;
    let reply: OnPremReply;
    const c = item.command;
    if (this.permanentFailure !== undefined && c.type === 'createUser') {
      reply = { siteId, commandId: id, ok: false, error: { ...this.permanentFailure, retryable: false } };
    } else if (c.type === 'createUser') {
      const guid = Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64');
      this.objects.set(guid, {
        sAMAccountName: c.user.sAMAccountName,
        enabled: c.user.enabled,
        deleted: false,
      });
      this.creates++;
      reply = {
        siteId,
        commandId: id,
        ok: true,
        result: {
          objectGuid: guid,
          dn: `CN=${c.user.displayName},OU=Users`,
          sAMAccountName: c.user.sAMAccountName,
        },
      };
    } else if (c.type === 'delete' && this.failDeletes) {
      reply = {
        siteId,
        commandId: id,
        ok: false,
        error: { code: 'Forbidden', message: 'insufficient rights', retryable: false },
      };
    } else if (c.type === 'delete' || c.type === 'disable' || c.type === 'enable') {
      const guid = 'objectGuid' in c.target ? c.target.objectGuid : '';
      const o = this.objects.get(guid);
      if (o !== undefined) {
        if (c.type === 'delete') o.deleted = true;
        else o.enabled = c.type === 'enable';
      }
      reply = {
        siteId,
        commandId: id,
        ok: true,
        result: { objectGuid: guid, alreadyAbsent: String(o === undefined) },
      };
    } else reply = { siteId, commandId: id, ok: true, result: {} };
    this.outcomes.set(id, reply);
    return reply;
  }
}

/** The engine tests' user: hybrid, with a password and a licence plan. */
export const ada: CreateUserRequest = {
  userId: 'u-ada',
  userPrincipalName: 'ada@fed.contoso.example',
  displayName: 'Ada Lovelace',
  password: 'Str0ng!Passw0rd#1',
  accountEnabled: true,
  licencePlan: 'E3',
};

/** Like an HTTP client: a request the server died answering is sent again, a moment later. */
export async function retryingCrashes<T>(
  clock: TestClock,
  store: MemoryStore,
  send: () => Promise<T>,
): Promise<T> {
  for (;;) {
    try {
      return await send();
    } catch (error) {
      if (!(error instanceof Crash)) throw error;
      store.crashAt = undefined;
      clock.advance(1500);
    }
  }
}

/** Makes the fake tenant have no free seat until `seats.free` is set above 0. */
export function noFreeSeats(cloud: FakeCloud): { free: number } {
  const seats = { free: 0 };
  const original = cloud.assignLicences.bind(cloud);
  cloud.assignLicences = (id, change) =>
    seats.free > 0
      ? original(id, change)
      : Promise.reject(new AppError('LicenceUnavailable', 'no free seat'));
  return seats;
}

export const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

export const sealer: SecretSealer = {
  seal: (plain) => `sealed:${Buffer.from(plain).toString('base64')}`,
  open: (sealed) => Buffer.from(sealed.slice('sealed:'.length), 'base64').toString(),
};

export class TestClock implements Clock {
  t = Date.parse('2026-12-01T09:00:00.000Z');
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export function customer(mode: Customer['identityMode'], providerId = 'prov'): Customer {
  return {
    customerId: 'contoso',
    providerId,
    displayName: 'Contoso',
    identityMode: mode,
    ...(mode === 'adOnly'
      ? {}
      : {
          entra: {
            tenantId: '0b7c6d5e-4f3a-4b2c-8d1e-9f0a1b2c3d4e',
            domains: ['fed.contoso.example'],
            federatedDomain: 'fed.contoso.example',
          },
        }),
    ...(mode === 'cloudOnly'
      ? {}
      : { ad: { siteId: 'site-1', usersOu: 'OU=Users,DC=x', upnSuffixes: ['fed.contoso.example'] } }),
    defaultUsageLocation: 'NL',
    licencePlans: [
      { name: 'E3', skus: [{ skuId: '6fd2c87f-b296-42f0-b197-1e91e994b900', disabledServicePlanIds: [] }] },
    ],
    createdAt: '2026-12-01T08:00:00.000Z',
    updatedAt: '2026-12-01T08:00:00.000Z',
  };
}

export async function world(
  options: { mode?: Customer['identityMode']; deps?: Partial<ProvisioningDeps> } = {},
) {
  const store = new MemoryStore();
  const bus = new MemoryBus();
  const cloud = new FakeCloud();
  const agent = new FakeAgent();
  const clock = new TestClock();
  const provisioning = createProvisioning({
    store,
    clock,
    bus,
    sealer,
    cloudDirectory: () => cloud as unknown as CloudDirectory,
    agentChannel: (siteId) => Promise.resolve(agent.channel(siteId)),
    assertWorkAllowed: () => Promise.resolve(),
    // site-1 is the customer's; site-2 another of the same provider's; site-9 another provider's.
    siteOwner: (siteId) =>
      Promise.resolve(({ 'site-1': 'prov', 'site-2': 'prov', 'site-9': 'other' } as const)[siteId]),
    random: () => 0.5,
    guard: { maxSharePercent: 10, minUsers: 3, windowInMinutes: 60 },
    ...options.deps,
  });
  await customersCollection(store).create('prov', 'contoso', customer(options.mode ?? 'hybridFederated'));
  store.writes = 0;
  store.writeLog.length = 0;
  const caller = { id: 'test', kind: 'apiKey' as const, providerId: 'prov' };

  /** One delivery of the oldest due message; false when nothing is due (advance the clock). */
  async function deliverOne(): Promise<boolean> {
    const due = bus.queue
      .map((m, i) => ({ m, i }))
      .filter(({ m }) => (m.options.scheduledEnqueueTime?.getTime() ?? 0) <= clock.t);
    const first = due[0];
    if (first === undefined) return false;
    bus.queue.splice(first.i, 1);
    const body = first.m.body;
    if (body.type !== 'operation.run') return true;
    try {
      await provisioning.runOperation({
        providerId: body.providerId,
        operationId: body.operationId,
        runId: randomUUID(),
        messageId: first.m.options.messageId,
        log: quiet,
      });
    } catch (error) {
      if (!(error instanceof Crash)) throw error;
      // The worker died: the broker redelivers the message after its lock expires.
      store.crashAt = undefined;
      bus.queue.push({
        body,
        options: { ...first.m.options, scheduledEnqueueTime: new Date(clock.t + 30_000) },
      });
    }
    return true;
  }

  async function deliverAgent(): Promise<boolean> {
    const item = agent.inbox.shift();
    if (item === undefined) return false;
    if (agent.offline) return true;
    const reply = agent.answer('site-1', item);
    try {
      await provisioning.acceptAgentReply(reply, quiet);
    } catch (error) {
      if (!(error instanceof Crash)) throw error;
      store.crashAt = undefined;
      agent.inbox.push(item); // redelivered reply (the agent answers the same outcome)
    }
    return true;
  }

  /** Runs everything until no message is left, advancing the clock to scheduled ones and sweeping. */
  async function pump(maxSteps = 2000): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      if (await deliverOne()) continue;
      if (await deliverAgent()) continue;
      const next = bus.queue
        .map((m) => m.options.scheduledEnqueueTime?.getTime() ?? 0)
        .sort((a, b) => a - b)[0];
      if (next !== undefined) {
        clock.t = Math.max(clock.t, next);
        continue;
      }
      // Nothing queued: what a sweep finds is all that is left.
      clock.advance(5 * 60_000);
      const { resumed } = await provisioning.sweepOperations();
      if (resumed === 0) return;
    }
    throw new Error('pump did not settle');
  }

  return { store, bus, cloud, agent, clock, provisioning, caller, pump, deliverOne, deliverAgent };
}
