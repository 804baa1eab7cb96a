import { readFileSync } from 'node:fs';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { Client, EqualityFilter } from 'ldapts';
import { z } from 'zod';
import type { CloudUserSnapshot } from '../../shared/ports/cloud-directory.js';
import { call } from './api.js';
import type { Actor, Workload } from './scenario.js';
import { e3, type World } from './world.js';

/**
 * What must hold after a chaos run has drained, each as figures and a list of violations:
 * every request final, no duplicate or missing user in AD or Entra, no duplicate purchase, the seat
 * ledger equal to Partner Center, the distributor and Graph, no unexplained dead letter, and no
 * provider's objects anywhere but in its own tenants and OUs.
 */
export const finalStates = ['succeeded', 'failed', 'compensated', 'compensationFailed', 'cancelled'];

/** Dead-letter reasons the app gives on purpose (README "Message contracts"). */
const explainedReasons = ['InvalidJson', 'SchemaValidationFailed', 'UnknownOperation', 'UnknownPasswordRef'];

export interface Invariant {
  name: string;
  figures: Record<string, unknown>;
  violations: string[];
}

const operationSchema = z
  .object({
    operationId: z.string(),
    state: z.string(),
    steps: z
      .array(
        z
          .object({
            name: z.string(),
            state: z.string(),
            error: z.object({ code: z.string() }).loose().optional(),
          })
          .loose(),
      )
      .default([]),
    error: z.object({ code: z.string(), message: z.string().optional() }).loose().optional(),
  })
  .loose();

export type OperationState = Awaited<ReturnType<typeof operationStates>>[number];

/** Each tracked operation's state as its provider reads it; `only` limits the reads to some of them. */
export async function operationStates(world: World, work: Workload, only?: (id: string) => boolean) {
  const ops = only === undefined ? work.operations : work.operations.filter((o) => only(o.operationId));
  // A few reads at a time, as a client polls: thousands at once only measure the poller. A read that
  // still fails after its retries is reported as unreadable (the drain reads it again; the final check
  // counts it as not final), never thrown out of the run.
  const out: {
    op: (typeof ops)[number];
    state: string;
    body: z.infer<typeof operationSchema> | undefined;
  }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < ops.length) {
        const op = ops[next++];
        if (op === undefined) break;
        try {
          const answer = await call(world.host.url, op.actor.key, 'GET', `/operations/${op.operationId}`);
          const parsed = operationSchema.safeParse(answer.body);
          out.push({
            op,
            state: parsed.success ? parsed.data.state : `http${answer.status}`,
            body: parsed.data,
          });
        } catch (error) {
          out.push({ op, state: `unreadable: ${String(error).slice(0, 120)}`, body: undefined });
        }
      }
    }),
  );
  return out;
}

/**
 * Seats the autoscaler withheld because every subscription line is at its offer's maximum quantity: a
 * new subscription is a purchase for a person, so that many creates wait `needsLicence` by design.
 * From each licensed customer's newest withheld decision (its figures say how many seats).
 */
export async function heldForAPerson(world: World, work: Workload): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const actor of work.actors.filter((a) => a.licensed)) {
    let newest: { at: string; seats: number } | undefined;
    let path: string | undefined = `/customers/${actor.customerId}/licensing/decisions?limit=500`;
    while (path !== undefined) {
      const answer = await call(world.host.url, actor.key, 'GET', path);
      const page = decisionsSchema.parse(answer.body);
      for (const d of page.value) {
        const seats = d.figures?.['withheld'];
        if (
          d.status !== 'withheld' ||
          typeof seats !== 'number' ||
          !String(d.reason).includes('a purchase for a person')
        )
          continue;
        const at = String(d.at);
        if (newest === undefined || at > newest.at) newest = { at, seats };
      }
      path = page.nextLink?.replace(/^\/api/, '');
    }
    if (newest !== undefined) out.set(actor.customerId, newest.seats);
  }
  return out;
}

/**
 * Autoscale decisions still to be sent again (planned, or failed on a fault: a 429, a lost answer, a
 * killed worker). The just-in-time timer resends each with its operation key until it lands, so the
 * ledger matches Partner Center and the distributor only once none is left; the drain waits for that.
 */
export async function unfinishedDecisions(world: World, work: Workload): Promise<number> {
  let n = 0;
  for (const actor of work.actors.filter((a) => a.licensed)) {
    let path: string | undefined = `/customers/${actor.customerId}/licensing/decisions?limit=500`;
    while (path !== undefined) {
      const answer = await call(world.host.url, actor.key, 'GET', path);
      const page = decisionsSchema.parse(answer.body);
      for (const d of page.value) if (d.state === 'planned' || d.state === 'failed') n++;
      path = page.nextLink?.replace(/^\/api/, '');
    }
  }
  return n;
}

export function requestsFinal(
  work: Workload,
  states: OperationState[],
  onboardingState: string,
  /** Creates per customer that may wait for a person's purchase (heldForAPerson). */
  explainedHolds: Map<string, number> = new Map(),
): Invariant {
  const byState: Record<string, number> = {};
  const waitingForAPerson: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const examples: string[] = [];
  const violations: string[] = [];
  const succeededByCustomer: Record<string, number> = {};
  for (const { op, state, body } of states) {
    byState[state] = (byState[state] ?? 0) + 1;
    if (state === 'succeeded')
      succeededByCustomer[`${op.actor.mode}:${op.actor.customerId}`] =
        (succeededByCustomer[`${op.actor.mode}:${op.actor.customerId}`] ?? 0) + 1;
    // The run never cancels: a cancelled operation is one a later delete of its user stopped.
    if (
      state === 'cancelled' &&
      !work.operations.some((o) => o.kind === 'delete' && o.userId === op.userId && o.actor === op.actor)
    )
      violations.push(
        `operation ${op.operationId} (${op.actor.customerId} ${op.kind} ${op.userId}) cancelled, but nobody deleted its user`,
      );
    const explained = explainedHolds.get(op.actor.customerId) ?? 0;
    if (
      state === 'needsLicence' &&
      op.kind === 'create' &&
      (waitingForAPerson[op.actor.customerId] ?? 0) < explained
    )
      // Not stuck: waiting, with a recorded reason, for the new subscription only a person may buy.
      waitingForAPerson[op.actor.customerId] = (waitingForAPerson[op.actor.customerId] ?? 0) + 1;
    else if (!finalStates.includes(state))
      violations.push(
        `operation ${op.operationId} (${op.actor.customerId} ${op.kind} ${op.userId}) stuck in ${state}`,
      );
    if (state !== 'succeeded' && body !== undefined) {
      const failed = body.steps.find((s) => s.error !== undefined);
      const code = `${op.kind}:${failed?.name ?? '-'}:${failed?.error?.code ?? body.error?.code ?? '?'}`;
      failures[code] = (failures[code] ?? 0) + 1;
      if (examples.length < 10) {
        // The user's whole history, in the order the run sent it, to tell an ordering bug from a race.
        const history = states
          .filter((x) => x.op.actor === op.actor && x.op.userId === op.userId)
          .map((x) => `${x.op.kind}=${x.state}`)
          .join(' → ');
        examples.push(
          `${op.actor.customerId} ${op.kind} ${op.userId} ${state}: ${JSON.stringify(body.error ?? failed?.error ?? null).slice(0, 300)}; history ${history}`,
        );
      }
    }
  }
  if (onboardingState !== 'completed' && onboardingState !== 'notStarted')
    violations.push(`onboarding job ended ${onboardingState}, not completed`);
  return {
    name: 'every request reached a final state',
    figures: {
      operations: states.length,
      byState,
      succeededByCustomer,
      waitingForAPersonsPurchase: waitingForAPerson,
      notSucceeded: failures,
      examples,
      onboarding: onboardingState,
    },
    violations,
  };
}

interface AdEntry {
  dn: string;
  upn: string;
  sam: string;
  objectGuid: string;
  disabled: boolean;
}

async function adUsers(world: World, ou: string): Promise<AdEntry[]> {
  const client = new Client({ url: world.dc.url, tlsOptions: { ca: readFileSync(world.dc.caFile) } });
  try {
    await client.bind(world.dc.bindDn, world.dc.password);
    const { searchEntries } = await client.search(ou, {
      scope: 'sub',
      filter: new EqualityFilter({ attribute: 'objectClass', value: 'user' }),
      attributes: ['userPrincipalName', 'sAMAccountName', 'objectGUID', 'userAccountControl'],
      explicitBufferAttributes: ['objectGUID'],
      paged: true,
    });
    return searchEntries.map((e) => ({
      dn: e.dn,
      upn: String(e.userPrincipalName ?? ''),
      sam: String(e.sAMAccountName ?? ''),
      objectGuid: Buffer.isBuffer(e.objectGUID) ? e.objectGUID.toString('base64') : '',
      disabled: (Number(e.userAccountControl) & 2) === 2,
    }));
  } finally {
    await client.unbind();
  }
}

async function entraUsers(world: World, tenantId: string): Promise<CloudUserSnapshot[]> {
  const cloud = world.cloud(tenantId);
  const users = new Map<string, CloudUserSnapshot>();
  let cursor: string | undefined;
  for (;;) {
    const page = await cloud.listUserChanges(cursor);
    for (const change of page.changes) {
      if (change.kind === 'upserted') users.set(change.user.id, change.user);
      else users.delete(change.id);
    }
    if (page.nextCursor === undefined) break;
    cursor = page.nextCursor;
  }
  return [...users.values()];
}

/** The model's users whose operations all succeeded: where they must be, in the state they must have. */
function settledUsers(actor: Actor, failedUsers: Set<string>) {
  return [...actor.users.values()].filter((u) => !failedUsers.has(`${actor.customerId}/${u.userId}`));
}

export async function directories(
  world: World,
  work: Workload,
  failedUsers: Set<string>,
): Promise<Invariant> {
  const violations: string[] = [];
  const figures: Record<string, unknown> = {};
  let adDuplicates = 0;
  let entraDuplicates = 0;
  let missing = 0;
  let orphans = 0;
  let wrongState = 0;
  const adGuids = new Map<string, string>();
  let crossed = 0;
  // Every account anywhere below the agent's OU sits in the OU of the customer its UPN belongs to.
  const ownerOf = (upn: string) => work.actors.find((a) => upn.toLowerCase().endsWith(`@${a.upnDomain}`));
  for (const e of await adUsers(world, world.dc.atriaOu)) {
    const owner = ownerOf(e.upn);
    if (owner === undefined) continue;
    if (owner.usersOu === undefined || !e.dn.toLowerCase().endsWith(owner.usersOu.toLowerCase())) {
      crossed += 1;
      violations.push(`AD: ${e.dn} (${e.upn}) is ${owner.customerId}'s but outside its OU`);
    }
  }
  for (const actor of work.actors) {
    const expected = settledUsers(actor, failedUsers);
    const known = new Set([...actor.users.values()].map((u) => u.upn.toLowerCase()));
    if (actor.usersOu !== undefined) {
      const entries = await adUsers(world, actor.usersOu);
      const byUpn = new Map<string, AdEntry[]>();
      const bySam = new Map<string, number>();
      for (const e of entries) {
        byUpn.set(e.upn.toLowerCase(), [...(byUpn.get(e.upn.toLowerCase()) ?? []), e]);
        bySam.set(e.sam.toLowerCase(), (bySam.get(e.sam.toLowerCase()) ?? 0) + 1);
        if (!known.has(e.upn.toLowerCase())) {
          orphans += 1;
          violations.push(`AD ${actor.customerId}: ${e.dn} (${e.upn}) is no user of this customer`);
        }
      }
      for (const [upn, list] of byUpn)
        if (list.length > 1) {
          adDuplicates += list.length - 1;
          violations.push(`AD ${actor.customerId}: ${list.length} accounts with UPN ${upn}`);
        }
      for (const [sam, count] of bySam)
        if (count > 1)
          violations.push(`AD ${actor.customerId}: ${count} accounts with sAMAccountName ${sam}`);
      for (const u of expected) {
        const found = byUpn.get(u.upn.toLowerCase()) ?? [];
        if (u.state === 'deleted') {
          if (found.length > 0) {
            missing += 1;
            violations.push(`AD ${actor.customerId}: deleted user ${u.userId} still exists`);
          }
          continue;
        }
        if (found.length === 0) {
          missing += 1;
          violations.push(`AD ${actor.customerId}: user ${u.userId} (${u.upn}) missing`);
          continue;
        }
        const entry = found[0] as AdEntry;
        adGuids.set(u.upn.toLowerCase(), entry.objectGuid);
        if (entry.disabled !== (u.state === 'disabled')) {
          wrongState += 1;
          violations.push(
            `AD ${actor.customerId}: ${u.userId} is ${entry.disabled ? 'disabled' : 'enabled'}, expected ${u.state}`,
          );
        }
      }
      figures[`ad:${actor.customerId}`] = entries.length;
    }
    if (actor.tenantId !== undefined) {
      const users = await entraUsers(world, actor.tenantId);
      for (const u of users) {
        const owner = ownerOf(u.userPrincipalName ?? '');
        if (owner !== undefined && owner.tenantId !== actor.tenantId) {
          crossed += 1;
          violations.push(
            `Entra: ${String(u.userPrincipalName)} of ${owner.customerId} is in ${actor.customerId}'s tenant`,
          );
        }
      }
      const ours = users.filter((u) => !work.preExisting.has(u.id));
      const byUpn = new Map<string, CloudUserSnapshot[]>();
      for (const u of ours) {
        const upn = (u.userPrincipalName ?? '').toLowerCase();
        byUpn.set(upn, [...(byUpn.get(upn) ?? []), u]);
        if (!known.has(upn)) {
          orphans += 1;
          violations.push(`Entra ${actor.customerId}: ${upn} is no user of this customer`);
        }
      }
      for (const [upn, list] of byUpn)
        if (list.length > 1) {
          entraDuplicates += list.length - 1;
          violations.push(`Entra ${actor.customerId}: ${list.length} accounts with UPN ${upn}`);
        }
      if (actor.mode !== 'adOnly')
        for (const u of expected) {
          const found = byUpn.get(u.upn.toLowerCase()) ?? [];
          if (u.state === 'deleted') {
            if (found.length > 0) {
              missing += 1;
              violations.push(`Entra ${actor.customerId}: deleted user ${u.userId} still exists`);
            }
            continue;
          }
          const cloudUser = found[0];
          if (cloudUser === undefined) {
            missing += 1;
            violations.push(`Entra ${actor.customerId}: user ${u.userId} (${u.upn}) missing`);
            continue;
          }
          if ((cloudUser.accountEnabled === false) !== (u.state === 'disabled')) {
            wrongState += 1;
            violations.push(
              `Entra ${actor.customerId}: ${u.userId} accountEnabled=${String(cloudUser.accountEnabled)}, expected ${u.state}`,
            );
          }
          if (actor.mode === 'hybridFederated') {
            const guid = adGuids.get(u.upn.toLowerCase());
            if (guid !== undefined && cloudUser.onPremisesImmutableId !== guid)
              violations.push(
                `Entra ${actor.customerId}: ${u.userId} immutableId ${String(cloudUser.onPremisesImmutableId)} ≠ base64(objectGUID) ${guid}`,
              );
          }
        }
      figures[`entra:${actor.customerId}`] = ours.length;
    }
  }
  return {
    name: 'no duplicate or missing user in AD or Entra',
    figures: {
      ...figures,
      adDuplicates,
      entraDuplicates,
      missing,
      orphans,
      wrongState,
      crossProvider: crossed,
    },
    violations,
  };
}

async function admin(url: string): Promise<unknown> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response.json();
}

const decisionsSchema = z.object({
  value: z.array(
    z
      .object({
        kind: z.string(),
        state: z.string(),
        from: z.number(),
        to: z.number(),
        source: z.string().optional(),
        figures: z.record(z.string(), z.union([z.number(), z.string()])).optional(),
      })
      .loose(),
  ),
  nextLink: z.string().optional(),
});

const decisionLog: string[] = [];

async function appliedChanges(world: World, key: string, customerId: string) {
  const all: z.infer<typeof decisionsSchema>['value'] = [];
  let path: string | undefined = `/customers/${customerId}/licensing/decisions?limit=500`;
  while (path !== undefined) {
    const answer = await call(world.host.url, key, 'GET', path);
    const page = decisionsSchema.parse(answer.body);
    all.push(...page.value);
    path = page.nextLink?.replace(/^\/api/, '');
  }
  decisionLog.push(
    ...all.map(
      (d) =>
        `${customerId} ${d.kind} ${d.state} ${String(d.status)} ${d.from}->${d.to} ${String(d.reason).slice(0, 160)}`,
    ),
  );
  return all.filter(
    (d) => d.state === 'applied' && d.to !== d.from && (d.kind === 'grow' || d.kind === 'reduce'),
  );
}

const skuViewSchema = z.object({
  skus: z.array(z.object({ skuId: z.string(), supply: z.record(z.string(), z.number()) }).loose()),
});

export async function commerce(world: World, work: Workload): Promise<Invariant> {
  const violations: string[] = [];
  const pcState = z
    .object({
      subscriptions: z.array(
        z.object({ id: z.string(), quantity: z.number(), updateCount: z.number() }).loose(),
      ),
    })
    .parse(await admin(`${world.partnerCenter.adminUrl}/state`));
  const pc = pcState.subscriptions.find((s) => s.id === work.blue.subscriptionId);
  const paxState = z
    .object({
      subscriptions: z.array(
        z.object({ id: z.string(), quantity: z.number(), appliedChanges: z.unknown() }).loose(),
      ),
    })
    .parse(await admin(`${world.distributor.adminUrl}/state`));
  const pax = paxState.subscriptions.find((s) => s.id === world.distributorIds.subscription);
  const blueChanges = await appliedChanges(world, work.keys.blue, 'blue-cloud');
  const greenChanges = await appliedChanges(world, work.keys.green, 'green-cloud');
  const expectedPc = blueChanges.reduce((q, d) => q + (d.to - d.from), work.blue.initialQuantity);
  const expectedPax = greenChanges.reduce((q, d) => q + (d.to - d.from), work.green.initialQuantity);
  if (pc === undefined) violations.push('Partner Center subscription missing');
  else if (pc.quantity !== expectedPc)
    violations.push(
      `Partner Center quantity ${pc.quantity} ≠ ${expectedPc} from ${blueChanges.length} applied decisions (a duplicate or lost purchase)`,
    );
  if (pax === undefined) violations.push('distributor subscription missing');
  else if (pax.quantity !== expectedPax)
    violations.push(
      `distributor quantity ${pax.quantity} ≠ ${expectedPax} from ${greenChanges.length} applied decisions (a duplicate or lost purchase)`,
    );

  const graphEnabled = async (tenantId: string) =>
    (await world.cloud(tenantId).listSubscribedSkus()).find((s) => s.skuId === e3)?.enabledUnits ?? 0;
  const ledgerSupply = async (key: string, customerId: string, source: string) => {
    const view = skuViewSchema.safeParse(
      (await call(world.host.url, key, 'GET', `/customers/${customerId}/licensing`)).body,
    );
    if (!view.success) {
      violations.push(
        `${customerId}: the licensing view did not answer (${view.error.message.slice(0, 120)})`,
      );
      return -1;
    }
    return view.data.skus.find((s) => s.skuId === e3)?.supply[source] ?? 0;
  };
  const blueTenant = work.actors.find((a) => a.customerId === 'blue-cloud')?.tenantId ?? '';
  const greenTenant = world.tenants.green;
  const blue = {
    ledger: await ledgerSupply(work.keys.blue, 'blue-cloud', 'partnerCenter'),
    partnerCenter: pc?.quantity ?? -1,
    graph: await graphEnabled(blueTenant),
  };
  const green = {
    ledger: await ledgerSupply(work.keys.green, 'green-cloud', 'distributor'),
    distributor: pax?.quantity ?? -1,
    graph: await graphEnabled(greenTenant),
  };
  if (!(blue.ledger === blue.partnerCenter && blue.partnerCenter === blue.graph))
    violations.push(
      `blue E3: ledger ${blue.ledger}, Partner Center ${blue.partnerCenter}, Graph ${blue.graph} differ`,
    );
  if (!(green.ledger === green.distributor && green.distributor === green.graph))
    violations.push(
      `green E3: ledger ${green.ledger}, distributor ${green.distributor}, Graph ${green.graph} differ`,
    );
  return {
    name: 'no duplicate purchase; ledger = Partner Center = distributor = Graph',
    figures: {
      blue: { ...blue, appliedDecisions: blueChanges.length, partnerCenterUpdates: pc?.updateCount ?? null },
      green: { ...green, appliedDecisions: greenChanges.length },
      partnerCenterOrders: (pcState as { orders?: unknown }).orders ?? null,
      decisions: decisionLog.splice(0).slice(-30),
    },
    violations,
  };
}

export async function deadLetters(world: World): Promise<Invariant> {
  const violations: string[] = [];
  const byReason: Record<string, number> = {};
  for (const queue of world.queues) {
    const receiver = world.busClient.createReceiver(queue, { subQueueType: 'deadLetter' });
    try {
      let from: Long | undefined;
      for (;;) {
        const batch = await receiver.peekMessages(
          100,
          from === undefined ? {} : { fromSequenceNumber: from },
        );
        if (batch.length === 0) break;
        for (const m of batch) {
          const reason = String(m.deadLetterReason ?? m.applicationProperties?.DeadLetterReason ?? 'none');
          byReason[`${queue}:${reason}`] = (byReason[`${queue}:${reason}`] ?? 0) + 1;
          // The agent dead-letters a second delivery of a command it already answered (its nonce check,
          // agent/verifier.ts) — what a duplicated send is, so that reason is explained here; a forged or
          // out-of-scope command never is, since the run sends none.
          const explained =
            explainedReasons.includes(reason) ||
            reason.startsWith('Rejected') ||
            (queue.startsWith('agent-site-') && reason === 'Replayed') ||
            (queue === 'agent-replies' && reason === 'ReplayedHeartbeat');
          if (!explained)
            violations.push(
              `${queue} dead letter ${String(m.messageId)}: ${reason} ${String(m.deadLetterErrorDescription ?? '')}`,
            );
        }
        const last = batch[batch.length - 1]?.sequenceNumber;
        if (last === undefined) break;
        from = last.add(1);
      }
    } finally {
      await receiver.close();
    }
  }
  return { name: 'no dead letter without an explained reason', figures: { byReason }, violations };
}

type Long = NonNullable<ServiceBusReceivedMessage['sequenceNumber']>;

export async function isolation(world: World, work: Workload): Promise<Invariant> {
  const violations: string[] = [];
  const customersOf: Record<string, string[]> = {};
  for (const [provider, key] of Object.entries(work.keys)) {
    const answer = await call(world.host.url, key, 'GET', '/customers?limit=500');
    const ids = z
      .object({ value: z.array(z.object({ customerId: z.string() }).loose()) })
      .parse(answer.body)
      .value.map((c) => c.customerId)
      .sort();
    customersOf[provider] = ids;
    const own = [...work.actors, work.onboarding.actor]
      .filter((a) => a.provider === provider)
      .map((a) => a.customerId)
      .sort();
    if (JSON.stringify(ids) !== JSON.stringify(own))
      violations.push(`${provider} sees customers ${ids.join(',')}, owns ${own.join(',')}`);
    // Another provider's customer, user and operation answer 404, as missing ones do.
    for (const other of work.actors.filter((a) => a.provider !== provider)) {
      const user = [...other.users.values()][0];
      const probes = [
        `/customers/${other.customerId}`,
        ...(user === undefined ? [] : [`/customers/${other.customerId}/users/${user.userId}`]),
      ];
      const op = work.operations.find((o) => o.actor === other);
      if (op !== undefined) probes.push(`/operations/${op.operationId}`);
      for (const path of probes) {
        const probe = await call(world.host.url, key, 'GET', path);
        if (probe.status !== 404)
          violations.push(`${provider} reading ${path} of ${other.provider}: ${probe.status}`);
      }
    }
  }
  return { name: 'no cross-provider effect', figures: { customersOf }, violations };
}
