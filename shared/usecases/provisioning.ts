import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { directoryWork } from '../contracts/directory-work.js';
import type { Caller } from '../domain/caller.js';
import { allowedUpnSuffixes, writesToAd, writesToEntra, type Customer } from '../domain/customer.js';
import {
  immutableIdFromObjectGuid,
  mailNicknameFrom,
  sAMAccountNameFrom,
  upnParts,
} from '../domain/identity.js';
import {
  isFinished,
  newStep,
  operationSchema,
  type Operation,
  type OperationKind,
  type Step,
} from '../domain/operation.js';
import {
  userRecordSchema,
  type CreateUserRequest,
  type UpdateUserRequest,
  type UserRecord,
} from '../domain/user.js';
import { AppError, toAppError } from '../errors.js';
import type { Logger } from '../logging.js';
import { deterministicMessageId, type Bus } from '../ports/bus.js';
import type { Clock } from '../ports/clock.js';
import type { CloudDirectory } from '../ports/cloud-directory.js';
import type { OnPremDirectory } from '../ports/on-prem-directory.js';
import type { SecretSealer } from '../ports/secret-sealer.js';
import type { Store, Versioned } from '../ports/store.js';
import { customersCollection, loadCustomer } from './customers.js';

/**
 * Provisioning a user is a saga over up to three steps — AD create (through the site's relay agent),
 * Entra create (hybrid: onPremisesImmutableId = base64(objectGUID), no cloud password), licences —
 * persisted after each step. Every step is idempotent by a key derived from the operation, so a
 * redelivered message resumes instead of repeating; a permanent failure undoes the done steps.
 */
export interface GuardSettings {
  /** Hold a disable/delete that would affect more than this share of the customer's users in the window… */
  maxSharePercent: number;
  /** …once at least this many are affected (small customers are not held for one user). */
  minUsers: number;
  windowInMinutes: number;
}

export interface ProvisioningDeps {
  store: Store;
  clock: Clock;
  bus: Bus;
  sealer: SecretSealer;
  guard?: GuardSettings;
  cloudDirectory?: (tenantId: string) => CloudDirectory;
  onPremDirectory?: (siteId: string) => Promise<OnPremDirectory>;
  agentTimeoutInMs?: number;
}

const idempotencySchema = z.object({
  operationId: z.string(),
  requestHash: z.string(),
  createdAt: z.string(),
});
const indexSchema = z.object({ operationId: z.string() });
const heldSchema = z.object({
  providerId: z.string(),
  operationId: z.string(),
  customerId: z.string(),
  heldAt: z.string(),
});
const HELD = 'needsLicence';

export const userPartition = (providerId: string, customerId: string): string =>
  `${providerId}/${customerId}`;

function collections(store: Store) {
  return {
    operations: store.collection('operations', operationSchema),
    customerOperations: store.collection('customeroperations', indexSchema),
    users: store.collection('users', userRecordSchema),
    idempotency: store.collection('idempotency', idempotencySchema),
    held: store.collection('heldoperations', heldSchema),
    customers: customersCollection(store),
  };
}

function requestHash(request: CreateUserRequest): string {
  const { password, ...rest } = request;
  return createHash('sha256')
    .update(
      JSON.stringify({
        ...rest,
        password: password === undefined ? null : createHash('sha256').update(password).digest('hex'),
      }),
    )
    .digest('hex');
}

function stepsFor(customer: Customer, request: CreateUserRequest): Step[] {
  const steps: Step[] = [];
  if (writesToAd(customer.identityMode)) steps.push(newStep('ad.create'));
  if (writesToEntra(customer.identityMode)) steps.push(newStep('entra.create'));
  if (request.licencePlan !== undefined) steps.push(newStep('licences'));
  return steps;
}

/** What a customer's configuration says about one create request, checked before anything is queued. */
export function validateAgainstCustomer(customer: Customer, request: CreateUserRequest): void {
  const errors: { path: string; message: string }[] = [];
  const { domain } = upnParts(request.userPrincipalName);
  const suffixes = allowedUpnSuffixes(customer);
  if (!suffixes.includes(domain)) {
    errors.push({
      path: 'body.userPrincipalName',
      message: `domain must be one of: ${suffixes.join(', ') || '(none configured)'}`,
    });
  }
  if (customer.identityMode === 'hybridFederated' && domain !== customer.entra?.federatedDomain) {
    errors.push({
      path: 'body.userPrincipalName',
      message: `hybrid users sign in through ADFS: use @${customer.entra?.federatedDomain ?? ''}`,
    });
  }
  if (request.licencePlan !== undefined) {
    if (customer.identityMode === 'adOnly')
      errors.push({ path: 'body.licencePlan', message: 'adOnly customers have no Entra licences' });
    else if (!customer.licencePlans.some((p) => p.name === request.licencePlan)) {
      errors.push({
        path: 'body.licencePlan',
        message: `unknown plan; the customer has: ${customer.licencePlans.map((p) => p.name).join(', ') || '(none)'}`,
      });
    }
    if (request.usageLocation === undefined && customer.defaultUsageLocation === undefined) {
      errors.push({
        path: 'body.usageLocation',
        message: 'required for licences (the customer has no defaultUsageLocation)',
      });
    }
  }
  if (writesToAd(customer.identityMode) && request.accountEnabled && request.password === undefined) {
    errors.push({ path: 'body.password', message: 'an enabled AD account needs an initial password' });
  }
  if (customer.identityMode === 'cloudOnly' && request.password !== undefined) {
    errors.push({
      path: 'body.password',
      message: 'cloud-only users get a random password; set one with POST …/password',
    });
  }
  if (errors.length > 0) {
    throw new AppError(
      'Validation',
      `The request does not fit customer ${customer.customerId}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
      {
        details: { errors },
      },
    );
  }
}

function strongRandomPassword(): string {
  // 24 chars from four classes: meets Entra and AD complexity whatever the random bytes.
  return `${randomBytes(18).toString('base64url')}aA1!`;
}

export function createProvisioning(deps: ProvisioningDeps) {
  const c = collections(deps.store);
  const now = (): string => deps.clock.now().toISOString();

  async function enqueue(operation: Operation): Promise<void> {
    await deps.bus.send(
      directoryWork,
      { type: 'operation.run', v: 1, providerId: operation.providerId, operationId: operation.operationId },
      {
        messageId: deterministicMessageId('operation.run', operation.providerId, operation.operationId),
        correlationId: operation.correlationId,
      },
    );
  }

  /**
   * Claims an idempotency key for a new operation id. A key already claimed by the same request
   * answers with the first operation (queued again if still pending); by another request, Conflict.
   * `existing` is undefined when the first attempt stopped before storing its operation: the caller
   * then finishes it under the same operation id.
   */
  async function claimIdempotencyKey(
    providerId: string,
    partition: string,
    key: string,
    hash: string,
    conflictMessage: string,
  ): Promise<{ operationId: string; existing?: Operation }> {
    const operationId: string = randomUUID();
    try {
      await c.idempotency.create(partition, key, { operationId, requestHash: hash, createdAt: now() });
      return { operationId };
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
    }
    const first = await c.idempotency.get(partition, key);
    if (first === undefined)
      throw new AppError('Unavailable', 'idempotency record vanished; retry', { retryable: true });
    if (first.value.requestHash !== hash) throw new AppError('Conflict', conflictMessage);
    const existing = await c.operations.get(providerId, first.value.operationId);
    if (existing === undefined) return { operationId: first.value.operationId };
    if (existing.value.state === 'queued' || existing.value.state === 'running')
      await enqueue(existing.value);
    return { operationId: first.value.operationId, existing: existing.value };
  }

  /**
   * Accepts a create request: records it (once per idempotency key), queues the work, and answers with
   * the operation. Replays of the same key return the same operation; a different body is refused.
   */
  async function requestCreateUser(input: {
    caller: Caller;
    customerId: string;
    request: CreateUserRequest;
    idempotencyKey?: string;
    correlationId: string;
  }): Promise<{ operation: Operation; replayed: boolean }> {
    const { caller, customerId, request } = input;
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    validateAgainstCustomer(customer, request);
    const partition = userPartition(caller.providerId, customerId);
    const hash = requestHash(request);
    const idempotencyKey = input.idempotencyKey ?? `user:${request.userId}`;

    const { operationId, existing } = await claimIdempotencyKey(
      caller.providerId,
      partition,
      idempotencyKey,
      hash,
      input.idempotencyKey === undefined
        ? `user ${request.userId} already exists with different details`
        : 'this Idempotency-Key was used for a different request',
    );
    if (existing !== undefined) return { operation: existing, replayed: true };

    const created = now();
    const operation: Operation = {
      operationId,
      providerId: caller.providerId,
      customerId,
      userId: request.userId,
      kind: 'user.create',
      state: 'queued',
      steps: stepsFor(customer, request),
      correlationId: input.correlationId,
      ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
      request: { ...request, password: undefined },
      ...(request.password === undefined ? {} : { sealedPassword: deps.sealer.seal(request.password) }),
      createdAt: created,
      updatedAt: created,
    };
    delete operation.request.password;
    try {
      await c.users.create(partition, request.userId, {
        userId: request.userId,
        providerId: caller.providerId,
        customerId,
        userPrincipalName: request.userPrincipalName,
        displayName: request.displayName,
        state: 'provisioning',
        licences: [],
        lastOperationId: operationId,
        createdAt: created,
        updatedAt: created,
      });
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
      const user = await c.users.get(partition, request.userId);
      if (user?.value.lastOperationId !== operationId) {
        throw new AppError(
          'AlreadyExists',
          `user ${request.userId} already exists for customer ${customerId}`,
        );
      }
    }
    try {
      await c.operations.create(caller.providerId, operationId, operation);
      await c.customerOperations.create(partition, `${created}~${operationId}`, { operationId });
    } catch (error) {
      if (!(error instanceof AppError && error.code === 'AlreadyExists')) throw error;
    }
    await enqueue(operation);
    return { operation, replayed: false };
  }

  /** The public `user.create` queue command: the same path as HTTP, with the provider's full scope. */
  async function acceptQueuedCreate(
    message: {
      providerId: string;
      customerId: string;
      idempotencyKey: string;
      user: Omit<CreateUserRequest, 'password'>;
    },
    correlationId: string,
  ) {
    const caller: Caller = { id: 'service-bus', kind: 'apiKey', providerId: message.providerId };
    return requestCreateUser({
      caller,
      customerId: message.customerId,
      request: message.user,
      idempotencyKey: message.idempotencyKey,
      correlationId,
    });
  }

  async function getOperation(caller: Caller, operationId: string): Promise<Operation> {
    const found = await c.operations.get(caller.providerId, operationId);
    if (
      found === undefined ||
      (caller.customerIds !== undefined && !caller.customerIds.includes(found.value.customerId))
    ) {
      throw new AppError('NotFound', `operation ${operationId} not found`);
    }
    const { sealedPassword: _sealed, ...visible } = found.value;
    return visible;
  }

  async function listOperations(caller: Caller, customerId: string, limit = 50): Promise<Operation[]> {
    await loadCustomer(deps.store, caller, customerId);
    const out: Operation[] = [];
    for await (const entry of c.customerOperations.list(userPartition(caller.providerId, customerId))) {
      const op = await c.operations.get(caller.providerId, entry.value.operationId);
      if (op !== undefined) {
        const { sealedPassword: _sealed, ...visible } = op.value;
        out.push(visible);
      }
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, limit);
  }

  async function getUser(caller: Caller, customerId: string, userId: string): Promise<UserRecord> {
    await loadCustomer(deps.store, caller, customerId);
    const user = await c.users.get(userPartition(caller.providerId, customerId), userId);
    if (user === undefined) throw new AppError('NotFound', `user ${userId} not found`);
    return user.value;
  }

  const guardedKinds = new Set<OperationKind>(['user.disable', 'user.delete']);

  function changeHash(
    kind: OperationKind,
    userId: string,
    request: Record<string, unknown>,
    password?: string,
  ): string {
    return createHash('sha256')
      .update(
        JSON.stringify({
          kind,
          userId,
          request,
          password: password === undefined ? null : createHash('sha256').update(password).digest('hex'),
        }),
      )
      .digest('hex');
  }

  function stepsForChange(kind: OperationKind, customer: Customer, user: UserRecord): Step[] {
    const ad = user.ad !== undefined && writesToAd(customer.identityMode);
    const entra = user.entra !== undefined && writesToEntra(customer.identityMode);
    const names: string[] = [];
    switch (kind) {
      case 'user.update':
      case 'user.disable':
      case 'user.enable': {
        const verb = kind.slice('user.'.length);
        if (ad) names.push(`ad.${verb}`);
        if (entra) names.push(`entra.${verb}`);
        break;
      }
      case 'user.delete':
        // Entra first: a federated user whose AD account is gone could no longer sign in anyway.
        if (entra) names.push('entra.delete');
        if (ad) names.push('ad.delete');
        break;
      case 'user.password':
        if (ad) names.push('ad.password');
        // Federated users sign in against AD through ADFS: they have no cloud password.
        if (entra && customer.identityMode !== 'hybridFederated') names.push('entra.password');
        break;
      case 'user.licences':
        if (entra) names.push('licences.change');
        break;
      case 'user.create':
        break;
    }
    return names.map(newStep);
  }

  /** Whether a disable/delete now would cross the customer's accidental-change threshold. */
  async function crossesGuard(
    providerId: string,
    customer: Customer,
  ): Promise<{ held: boolean; recent: number; total: number }> {
    const guard = deps.guard;
    if (guard === undefined) return { held: false, recent: 0, total: 0 };
    const partition = userPartition(providerId, customer.customerId);
    const since = new Date(deps.clock.now().getTime() - guard.windowInMinutes * 60_000).toISOString();
    let recent = 0;
    for await (const entry of c.customerOperations.list(partition)) {
      if (entry.rowKey < since) continue;
      const op = await c.operations.get(providerId, entry.value.operationId);
      if (op !== undefined && guardedKinds.has(op.value.kind) && op.value.state !== 'failed') recent++;
    }
    let total = 0;
    for await (const user of c.users.list(partition)) if (user.value.state !== 'deleted') total++;
    const affected = recent + 1;
    const held = affected >= guard.minUsers && affected * 100 > guard.maxSharePercent * Math.max(total, 1);
    return { held, recent, total };
  }

  /**
   * Accepts a change to an existing user (update, disable, enable, delete, password, licences) as an
   * operation. A disable/delete beyond the customer's threshold is held until someone confirms it.
   */
  async function requestUserChange(input: {
    caller: Caller;
    customerId: string;
    userId: string;
    kind: Exclude<OperationKind, 'user.create'>;
    request: Record<string, unknown>;
    password?: string;
    idempotencyKey?: string;
    correlationId: string;
  }): Promise<{ operation: Operation; replayed: boolean }> {
    const { caller, customerId, userId, kind } = input;
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    const partition = userPartition(caller.providerId, customerId);
    const user = await c.users.get(partition, userId);
    if (user === undefined) throw new AppError('NotFound', `user ${userId} not found`);
    if (
      user.value.state === 'provisioning' ||
      user.value.state === 'deleted' ||
      user.value.state === 'failed'
    ) {
      throw new AppError('Conflict', `user ${userId} is ${user.value.state}`);
    }
    if (kind === 'user.licences') {
      const plan = input.request.licencePlan;
      if (plan !== null && !customer.licencePlans.some((p) => p.name === plan)) {
        throw new AppError('Validation', `unknown licence plan ${JSON.stringify(plan)}`, {
          details: { errors: [{ path: 'body.licencePlan', message: 'unknown plan' }] },
        });
      }
    }
    const steps = stepsForChange(kind, customer, user.value);
    if (steps.length === 0)
      throw new AppError('Validation', `${kind} has nothing to do for a ${customer.identityMode} user`);

    let operationId: string = randomUUID();
    if (input.idempotencyKey !== undefined) {
      const claim = await claimIdempotencyKey(
        caller.providerId,
        partition,
        input.idempotencyKey,
        changeHash(kind, userId, input.request, input.password),
        'this Idempotency-Key was used for a different request',
      );
      if (claim.existing !== undefined) return { operation: claim.existing, replayed: true };
      operationId = claim.operationId;
    }
    const guard = guardedKinds.has(kind)
      ? await crossesGuard(caller.providerId, customer)
      : { held: false, recent: 0, total: 0 };
    const created = now();
    const operation: Operation = {
      operationId,
      providerId: caller.providerId,
      customerId,
      userId,
      kind,
      state: guard.held ? 'heldForConfirmation' : 'queued',
      steps,
      correlationId: input.correlationId,
      ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
      request: input.request,
      ...(input.password === undefined ? {} : { sealedPassword: deps.sealer.seal(input.password) }),
      createdAt: created,
      updatedAt: created,
      ...(guard.held
        ? {
            error: {
              code: 'HeldForConfirmation',
              message: `${guard.recent + 1} of ${guard.total} users of this customer would be disabled or deleted within ${deps.guard?.windowInMinutes ?? 0} minutes; confirm to proceed`,
            },
          }
        : {}),
    };
    await c.operations.create(caller.providerId, operationId, operation);
    await c.customerOperations.create(partition, `${created}~${operationId}`, { operationId });
    if (!guard.held) await enqueue(operation);
    return { operation, replayed: false };
  }

  /** Releases an operation held by the accidental-change guard. */
  async function confirmOperation(caller: Caller, operationId: string): Promise<Operation> {
    const found = await c.operations.get(caller.providerId, operationId);
    if (
      found === undefined ||
      (caller.customerIds !== undefined && !caller.customerIds.includes(found.value.customerId))
    ) {
      throw new AppError('NotFound', `operation ${operationId} not found`);
    }
    if (found.value.state !== 'heldForConfirmation')
      throw new AppError('Conflict', `operation ${operationId} is ${found.value.state}, not held`);
    const next: Operation = { ...found.value, state: 'queued', updatedAt: now() };
    delete next.error;
    const saved = await c.operations.replace(caller.providerId, operationId, next, found.etag);
    await enqueue(saved.value);
    const { sealedPassword: _sealed, ...visible } = saved.value;
    return visible;
  }

  // ---- the saga -------------------------------------------------------------------------------------

  interface RunContext {
    operation: Versioned<Operation>;
    customer: Customer;
    user: UserRecord | undefined;
    log: Logger;
  }

  async function save(ctx: RunContext, change: (op: Operation) => void): Promise<void> {
    const next = structuredClone(ctx.operation.value);
    change(next);
    next.updatedAt = now();
    ctx.operation = await c.operations.replace(next.providerId, next.operationId, next, ctx.operation.etag);
  }

  function stepResult(op: Operation, name: string): Record<string, string> {
    return op.steps.find((s) => s.name === name)?.result ?? {};
  }

  function cloudFor(customer: Customer): CloudDirectory {
    if (deps.cloudDirectory === undefined || customer.entra === undefined) {
      throw new AppError('Unavailable', 'Microsoft Graph is not configured', { retryable: false });
    }
    return deps.cloudDirectory(customer.entra.tenantId);
  }

  async function onPremFor(customer: Customer): Promise<OnPremDirectory> {
    if (deps.onPremDirectory === undefined || customer.ad === undefined) {
      throw new AppError('Unavailable', 'no relay agent is configured for this customer', {
        retryable: false,
      });
    }
    return deps.onPremDirectory(customer.ad.siteId);
  }

  async function executeStep(ctx: RunContext, step: Step): Promise<Record<string, string>> {
    if (ctx.operation.value.kind !== 'user.create') return executeChangeStep(ctx, step);
    const op = ctx.operation.value;
    const request = op.request as Omit<CreateUserRequest, 'password'>;
    const customer = ctx.customer;
    const { alias } = upnParts(request.userPrincipalName);
    const usageLocation = request.usageLocation ?? customer.defaultUsageLocation;
    switch (step.name) {
      case 'ad.create': {
        const password = op.sealedPassword === undefined ? undefined : deps.sealer.open(op.sealedPassword);
        const { user } = await (
          await onPremFor(customer)
        ).createUser(
          {
            ou: customer.ad?.usersOu ?? '',
            sAMAccountName: request.sAMAccountName ?? sAMAccountNameFrom(alias),
            userPrincipalName: request.userPrincipalName,
            displayName: request.displayName,
            ...(request.givenName === undefined ? {} : { givenName: request.givenName }),
            ...(request.surname === undefined ? {} : { sn: request.surname }),
            ...(password === undefined ? {} : { password }),
            enabled: request.accountEnabled && password !== undefined,
          },
          {
            commandId: `${op.operationId}.ad.create`,
            ...(deps.agentTimeoutInMs === undefined ? {} : { timeoutInMs: deps.agentTimeoutInMs }),
          },
        );
        return { objectGuid: user.objectGuid, dn: user.dn, sAMAccountName: user.sAMAccountName };
      }
      case 'entra.create': {
        const cloud = cloudFor(customer);
        const objectGuid = stepResult(op, 'ad.create').objectGuid;
        const federated = customer.identityMode === 'hybridFederated';
        const immutableId =
          federated && objectGuid !== undefined ? immutableIdFromObjectGuid(objectGuid) : undefined;
        const existing = await cloud.findUserByUpn(request.userPrincipalName);
        if (existing !== undefined) {
          // Ours if it carries our anchor, or if an earlier attempt of this very step may have created it.
          const ours =
            immutableId !== undefined
              ? existing.onPremisesImmutableId === immutableId
              : step.attempts > 1 && existing.onPremisesImmutableId === null;
          if (!ours)
            throw new AppError(
              'AlreadyExists',
              `${request.userPrincipalName} already exists in Entra ID and is not ours`,
            );
          return {
            objectId: existing.id,
            ...(immutableId === undefined ? {} : { onPremisesImmutableId: immutableId }),
          };
        }
        const password =
          customer.identityMode === 'both' && op.sealedPassword !== undefined
            ? deps.sealer.open(op.sealedPassword)
            : strongRandomPassword();
        const created = await cloud.createUser({
          userPrincipalName: request.userPrincipalName,
          displayName: request.displayName,
          mailNickname: request.mailNickname ?? mailNicknameFrom(alias),
          accountEnabled: request.accountEnabled,
          ...(immutableId === undefined
            ? { password, forceChangePasswordNextSignIn: customer.identityMode === 'cloudOnly' }
            : { onPremisesImmutableId: immutableId }),
          ...(usageLocation === undefined ? {} : { usageLocation }),
          ...(request.givenName === undefined ? {} : { givenName: request.givenName }),
          ...(request.surname === undefined ? {} : { surname: request.surname }),
          ...(request.jobTitle === undefined ? {} : { jobTitle: request.jobTitle }),
          ...(request.department === undefined ? {} : { department: request.department }),
        });
        return {
          objectId: created.id,
          ...(immutableId === undefined ? {} : { onPremisesImmutableId: immutableId }),
        };
      }
      case 'licences': {
        const plan = customer.licencePlans.find((p) => p.name === request.licencePlan);
        if (plan === undefined)
          throw new AppError('Validation', `licence plan ${request.licencePlan ?? ''} no longer exists`);
        const objectId = stepResult(op, 'entra.create').objectId;
        if (objectId === undefined) throw new AppError('Internal', 'licences step without an Entra user');
        const cloud = cloudFor(customer);
        if (usageLocation !== undefined) await cloud.updateUser(objectId, { usageLocation });
        // Re-assigning an assigned licence is a no-op in Graph, so a retry is safe.
        await cloud.assignLicences(objectId, {
          add: plan.skus.map((s) => ({ skuId: s.skuId, disabledPlanIds: s.disabledServicePlanIds })),
          remove: [],
        });
        return { skuIds: plan.skus.map((s) => s.skuId).join(',') };
      }
      default:
        throw new AppError('Internal', `unknown step ${step.name}`);
    }
  }

  /** Steps of changes to an existing user; each is idempotent in its directory. */
  async function executeChangeStep(ctx: RunContext, step: Step): Promise<Record<string, string>> {
    const op = ctx.operation.value;
    const user = ctx.user;
    if (user === undefined) throw new AppError('NotFound', `user ${op.userId} is gone`);
    const commandId = `${op.operationId}.${step.name}`;
    const adRef = (): { objectGuid: string } => {
      if (user.ad === undefined) throw new AppError('Internal', 'no AD account linked');
      return { objectGuid: user.ad.objectGuid };
    };
    const entraId = (): string => {
      if (user.entra === undefined) throw new AppError('Internal', 'no Entra account linked');
      return user.entra.objectId;
    };
    const password = (): string => {
      if (op.sealedPassword === undefined)
        throw new AppError('Internal', 'the password is no longer available; send the request again');
      return deps.sealer.open(op.sealedPassword);
    };
    const update = op.request as UpdateUserRequest;
    switch (step.name) {
      case 'ad.update': {
        const set: Record<string, string | null> = {};
        if (update.displayName !== undefined) set.displayName = update.displayName;
        if (update.givenName !== undefined) set.givenName = update.givenName;
        if (update.surname !== undefined) set.sn = update.surname;
        if (update.jobTitle !== undefined) set.title = update.jobTitle;
        if (update.department !== undefined) set.department = update.department;
        if (Object.keys(set).length > 0)
          await (await onPremFor(ctx.customer)).updateAttributes(adRef(), set, { commandId });
        return {};
      }
      case 'entra.update':
        await cloudFor(ctx.customer).updateUser(entraId(), update);
        return {};
      case 'ad.disable':
        await (await onPremFor(ctx.customer)).disable(adRef(), { commandId });
        return {};
      case 'ad.enable':
        await (await onPremFor(ctx.customer)).enable(adRef(), { commandId });
        return {};
      case 'entra.disable':
        await cloudFor(ctx.customer).disableUser(entraId());
        return {};
      case 'entra.enable':
        await cloudFor(ctx.customer).enableUser(entraId());
        return {};
      case 'entra.delete':
        await cloudFor(ctx.customer).deleteUser(entraId());
        return {};
      case 'ad.delete':
        await (await onPremFor(ctx.customer)).delete(adRef(), { commandId });
        return {};
      case 'ad.password':
        await (
          await onPremFor(ctx.customer)
        ).resetPassword(adRef(), password(), {
          commandId,
          mustChangeAtNextLogon: op.request.forceChangePasswordNextSignIn === true,
        });
        return {};
      case 'entra.password':
        await cloudFor(ctx.customer).setPassword(entraId(), password(), {
          forceChangePasswordNextSignIn: op.request.forceChangePasswordNextSignIn === true,
        });
        return {};
      case 'licences.change': {
        const planName = op.request.licencePlan;
        const plan =
          typeof planName === 'string'
            ? ctx.customer.licencePlans.find((p) => p.name === planName)
            : undefined;
        if (typeof planName === 'string' && plan === undefined)
          throw new AppError('Validation', `licence plan ${planName} no longer exists`);
        const add = (plan?.skus ?? []).map((s) => ({
          skuId: s.skuId,
          disabledPlanIds: s.disabledServicePlanIds,
        }));
        const keep = new Set(add.map((a) => a.skuId));
        const remove = user.licences.map((l) => l.skuId).filter((skuId) => !keep.has(skuId));
        const cloud = cloudFor(ctx.customer);
        const usageLocation = ctx.customer.defaultUsageLocation;
        if (add.length > 0 && usageLocation !== undefined) {
          const current = await cloud.getUser(entraId());
          if (current.usageLocation === null) await cloud.updateUser(entraId(), { usageLocation });
        }
        await cloud.assignLicences(entraId(), { add, remove });
        return { skuIds: add.map((a) => a.skuId).join(',') };
      }
      default:
        throw new AppError('Internal', `unknown step ${step.name}`);
    }
  }

  const passwordSteps = new Set(['ad.create', 'entra.create', 'ad.password', 'entra.password']);

  /** What a finished operation means for Atria's user record. */
  function applyOutcome(op: Operation, u: UserRecord): void {
    switch (op.kind) {
      case 'user.create': {
        const ad = stepResult(op, 'ad.create');
        const entra = stepResult(op, 'entra.create');
        const licences = stepResult(op, 'licences');
        u.state =
          (op.request as { accountEnabled?: boolean }).accountEnabled === false ? 'disabled' : 'active';
        if (ad.objectGuid !== undefined)
          u.ad = { objectGuid: ad.objectGuid, dn: ad.dn ?? '', sAMAccountName: ad.sAMAccountName ?? '' };
        if (entra.objectId !== undefined) {
          u.entra = {
            objectId: entra.objectId,
            ...(entra.onPremisesImmutableId === undefined
              ? {}
              : { onPremisesImmutableId: entra.onPremisesImmutableId }),
          };
        }
        if (licences.skuIds !== undefined)
          u.licences = licences.skuIds.split(',').map((skuId) => ({ skuId, assignedAt: now() }));
        return;
      }
      case 'user.update': {
        const update = op.request as UpdateUserRequest;
        if (update.displayName !== undefined) u.displayName = update.displayName;
        return;
      }
      case 'user.disable':
        u.state = 'disabled';
        return;
      case 'user.enable':
        u.state = 'active';
        return;
      case 'user.delete':
        u.state = 'deleted';
        return;
      case 'user.licences': {
        const skuIds = stepResult(op, 'licences.change').skuIds ?? '';
        u.licences = skuIds === '' ? [] : skuIds.split(',').map((skuId) => ({ skuId, assignedAt: now() }));
        if (u.state === 'needsLicence') u.state = 'active';
        return;
      }
      case 'user.password':
        return;
    }
  }

  async function compensate(ctx: RunContext): Promise<void> {
    const op = ctx.operation.value;
    for (const step of [...op.steps].reverse()) {
      if (step.state !== 'done') continue;
      try {
        if (step.name === 'ad.create' && step.result?.objectGuid !== undefined) {
          await (
            await onPremFor(ctx.customer)
          ).delete({ objectGuid: step.result.objectGuid }, { commandId: `${op.operationId}.ad.create.undo` });
        } else if (step.name === 'entra.create' && step.result?.objectId !== undefined) {
          await cloudFor(ctx.customer).deleteUser(step.result.objectId);
        } else continue;
        await save(ctx, (o) => {
          const s = o.steps.find((x) => x.name === step.name);
          if (s !== undefined) s.state = 'compensated';
        });
      } catch (error) {
        // Undo failures are logged and left visible on the operation; the original failure stands.
        ctx.log.error('compensation failed', { operationId: op.operationId, step: step.name, error });
        throw error;
      }
    }
  }

  async function updateUserRecord(ctx: RunContext, change: (user: UserRecord) => void): Promise<void> {
    const op = ctx.operation.value;
    const partition = userPartition(op.providerId, op.customerId);
    for (let attempt = 0; attempt < 5; attempt++) {
      const user = await c.users.get(partition, op.userId);
      if (user === undefined) return;
      const next = structuredClone(user.value);
      change(next);
      next.updatedAt = now();
      try {
        await c.users.replace(partition, op.userId, next, user.etag);
        return;
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'ConcurrencyConflict')) throw error;
      }
    }
    throw new AppError('Unavailable', 'user record kept changing; retry', { retryable: true });
  }

  /**
   * Runs the operation's remaining steps. Returns normally when the operation is finished or held
   * (needs a licence); throws a retryable error when the message should be delivered again.
   */
  async function runOperation(
    providerId: string,
    operationId: string,
    log: Logger,
  ): Promise<Operation | undefined> {
    const loaded = await c.operations.get(providerId, operationId);
    if (loaded === undefined) {
      log.warn('operation not found; nothing to do', { operationId });
      return undefined;
    }
    if (isFinished(loaded.value.state)) return loaded.value;
    const customer = await c.customers.get(providerId, loaded.value.customerId);
    if (customer === undefined) throw new AppError('NotFound', `customer ${loaded.value.customerId} is gone`);
    const user = await c.users.get(userPartition(providerId, loaded.value.customerId), loaded.value.userId);
    const ctx: RunContext = { operation: loaded, customer: customer.value, user: user?.value, log };
    if (ctx.operation.value.state === 'heldForConfirmation') return ctx.operation.value;
    try {
      await save(ctx, (o) => {
        o.state = 'running';
      });
      for (const step of ctx.operation.value.steps) {
        if (step.state === 'done' || step.state === 'skipped') continue;
        await save(ctx, (o) => {
          const s = o.steps.find((x) => x.name === step.name) as Step;
          s.state = 'running';
          s.attempts += 1;
          s.startedAt ??= now();
          delete s.error;
        });
        const current = ctx.operation.value.steps.find((x) => x.name === step.name) as Step;
        let result: Record<string, string>;
        try {
          result = await executeStep(ctx, current);
        } catch (thrown) {
          const error = toAppError(thrown);
          const info = { code: error.code, message: error.message, retryable: error.retryable };
          if (error.code === 'LicenceUnavailable') {
            await save(ctx, (o) => {
              const s = o.steps.find((x) => x.name === step.name) as Step;
              s.state = 'waiting';
              s.error = info;
              o.state = 'needsLicence';
            });
            await c.held.upsert(HELD, `${providerId}/${operationId}`, {
              providerId,
              operationId,
              customerId: ctx.operation.value.customerId,
              heldAt: now(),
            });
            await updateUserRecord(ctx, (u) => {
              u.state = 'needsLicence';
              const entra = stepResult(ctx.operation.value, 'entra.create');
              if (entra.objectId !== undefined)
                u.entra = {
                  objectId: entra.objectId,
                  ...(entra.onPremisesImmutableId === undefined
                    ? {}
                    : { onPremisesImmutableId: entra.onPremisesImmutableId }),
                };
            });
            log.warn('operation held: no free licence', { operationId, step: step.name });
            return ctx.operation.value;
          }
          if (error.retryable) {
            await save(ctx, (o) => {
              (o.steps.find((x) => x.name === step.name) as Step).error = info;
            });
            throw error;
          }
          await save(ctx, (o) => {
            const s = o.steps.find((x) => x.name === step.name) as Step;
            s.state = 'failed';
            s.error = info;
            s.finishedAt = now();
            o.error = info;
          });
          if (ctx.operation.value.kind === 'user.create') await compensate(ctx);
          await save(ctx, (o) => {
            o.state = o.steps.some((s) => s.state === 'compensated') ? 'compensated' : 'failed';
            delete o.sealedPassword;
          });
          if (ctx.operation.value.kind === 'user.create') {
            await updateUserRecord(ctx, (u) => {
              u.state = 'failed';
            });
          }
          log.warn('operation failed', { operationId, step: step.name, code: error.code });
          return ctx.operation.value;
        }
        await save(ctx, (o) => {
          const s = o.steps.find((x) => x.name === step.name) as Step;
          s.state = 'done';
          s.result = result;
          s.finishedAt = now();
          // The password is needed by the directory steps only; drop it as soon as they are done.
          if (!o.steps.some((x) => passwordSteps.has(x.name) && x.state !== 'done')) delete o.sealedPassword;
        });
      }
      await save(ctx, (o) => {
        o.state = 'succeeded';
        delete o.sealedPassword;
      });
      if (loaded.value.state === 'needsLicence') await c.held.delete(HELD, `${providerId}/${operationId}`);
      const op = ctx.operation.value;
      await updateUserRecord(ctx, (u) => applyOutcome(op, u));
      return op;
    } catch (error) {
      // Another delivery of the same message is running this operation: leave it to that one.
      if (error instanceof AppError && error.code === 'ConcurrencyConflict') {
        log.info('operation is being run by another delivery', { operationId });
        return undefined;
      }
      throw error;
    }
  }

  /**
   * Queues every operation held for a licence again (the licence sweep timer, or after seats were
   * bought). One run per operation per sweep: the message id carries the sweep's minute, so a sweep
   * that is retried does not queue twice. An operation still without a seat simply goes back on hold.
   */
  async function sweepHeldOperations(limit = 500): Promise<number> {
    const sweep = now().slice(0, 16);
    let count = 0;
    for await (const entry of c.held.list(HELD)) {
      if (count >= limit) break;
      const { providerId, operationId } = entry.value;
      const op = await c.operations.get(providerId, operationId);
      if (op === undefined || op.value.state !== 'needsLicence') {
        await c.held.delete(HELD, entry.rowKey);
        continue;
      }
      await deps.bus.send(
        directoryWork,
        { type: 'operation.run', v: 1, providerId, operationId },
        {
          messageId: deterministicMessageId('operation.sweep', operationId, sweep),
          correlationId: op.value.correlationId,
        },
      );
      count++;
    }
    return count;
  }

  return {
    requestCreateUser,
    requestUserChange,
    confirmOperation,
    acceptQueuedCreate,
    getOperation,
    listOperations,
    getUser,
    runOperation,
    sweepHeldOperations,
  };
}

export type Provisioning = ReturnType<typeof createProvisioning>;
