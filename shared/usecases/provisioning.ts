import { createHmac, randomBytes } from 'node:crypto';
import type { DirectoryWork } from '../contracts/directory-work.js';
import type { Caller } from '../domain/caller.js';
import type { Customer } from '../domain/customer.js';
import type { Operation } from '../domain/operation.js';
import { createRequestIssues, type DeadlineSettings, type GuardSettings } from '../domain/planning.js';
import type { CreateUserRequest } from '../domain/user.js';
import { AppError, InvalidMessageError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Bus } from '../ports/bus.js';
import type { Clock } from '../ports/clock.js';
import type { CloudDirectory } from '../ports/cloud-directory.js';
import type { OnPremCommandChannel, OnPremReply } from '../ports/on-prem-directory.js';
import type { SecretSealer } from '../ports/secret-sealer.js';
import type { Store } from '../ports/store.js';
import { loadCustomer } from './customers.js';
import { engineCollections } from './operations/records.js';
import { createRequests } from './operations/requests.js';
import {
  createRunner,
  defaultEngineSettings,
  type EngineSettings,
  type RunInput,
} from './operations/runner.js';
import { createSweeper, type SweepLimits } from './operations/sweeper.js';
import { createTenancy } from './tenancy.js';

/**
 * Provisioning users through the operation engine (shared/usecases/operations/): requests become
 * operations of typed steps, run by the saga runner, resumed by agent replies and sweeps. This module
 * wires the parts; each part says what it does.
 */
export type { GuardSettings } from '../domain/planning.js';
export { userPartition } from './operations/records.js';

export interface ProvisioningDeps {
  store: Store;
  clock: Clock;
  bus: Bus;
  sealer: SecretSealer;
  guard?: GuardSettings;
  cloudDirectory?: (tenantId: string) => CloudDirectory;
  /** Fire-and-park commands to a site's agent (AD steps). */
  agentChannel?: (siteId: string) => Promise<OnPremCommandChannel>;
  /** Key of the request fingerprints (HMAC-SHA256); per process when absent (local runs). */
  fingerprintKey?: Buffer;
  engine?: Partial<EngineSettings>;
  deadlines?: Partial<DeadlineSettings>;
  /** How long the licence sweep retries one held operation (default 7 days). */
  licenceHoldInMs?: number;
  /** Where work may run (tenancy); defaults to the tenancy rules over `store`. */
  assertWorkAllowed?: (providerId: string, customer: Customer) => Promise<void>;
  /** Who registered a site (agent replies are routed by it); defaults to the tenancy rules over `store`. */
  siteOwner?: (siteId: string) => Promise<string | undefined>;
  random?: () => number;
  /** Told of every finished operation, idempotently (SPLA evidence of directory events). */
  onOperationFinished?: (o: Operation) => Promise<void>;
}

/** What a customer's configuration says about one create request, checked before anything is queued. */
export function validateAgainstCustomer(customer: Customer, request: CreateUserRequest): void {
  const issues = createRequestIssues(customer, request);
  if (issues.length > 0)
    throw new AppError(
      'Validation',
      `The request does not fit customer ${customer.customerId}: ${issues.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
      { details: { errors: issues } },
    );
}

const passwordDropLifetimeInMs = 60 * 60_000;
/** A queued create failing with these can never succeed as sent: it is dead-lettered with the reason. */
const permanentlyInvalid = new Set<string>([
  'Validation',
  'NotFound',
  'Conflict',
  'AlreadyExists',
  'Forbidden',
]);

export function createProvisioning(deps: ProvisioningDeps) {
  const c = engineCollections(deps.store);
  const settings: EngineSettings = { ...defaultEngineSettings, ...deps.engine };
  const fingerprintKey = deps.fingerprintKey ?? randomBytes(32);
  const tenancy = createTenancy({ store: deps.store, clock: deps.clock });
  const runner = createRunner({
    c,
    clock: deps.clock,
    bus: deps.bus,
    sealer: deps.sealer,
    settings,
    random: deps.random ?? Math.random,
    assertWorkAllowed: deps.assertWorkAllowed ?? tenancy.assertWorkAllowed,
    siteOwner: deps.siteOwner ?? tenancy.siteOwner,
    ...(deps.cloudDirectory === undefined ? {} : { cloudDirectory: deps.cloudDirectory }),
    ...(deps.agentChannel === undefined ? {} : { agentChannel: deps.agentChannel }),
    ...(deps.onOperationFinished === undefined ? {} : { onFinished: deps.onOperationFinished }),
  });
  const requests = createRequests({
    c,
    store: deps.store,
    clock: deps.clock,
    sealer: deps.sealer,
    runner,
    fingerprint: (data) => createHmac('sha256', fingerprintKey).update(data).digest('base64url'),
    ...(deps.guard === undefined ? {} : { guard: deps.guard }),
    deadlines: { createDeadlineInMinutes: 24 * 60, changeDeadlineInMinutes: 6 * 60, ...deps.deadlines },
  });
  const sweeper = createSweeper({
    c,
    clock: deps.clock,
    runner,
    licenceHoldInMs: deps.licenceHoldInMs ?? 7 * 24 * 3600_000,
  });

  /**
   * Keeps an initial password for a queued `user.create` (the queue never carries a secret): sealed with
   * the operation key, single use, for an hour. The message names it by `passwordRef`.
   */
  async function dropPassword(
    caller: Caller,
    customerId: string,
    password: string,
  ): Promise<{ passwordRef: string; expiresAt: string }> {
    await loadCustomer(deps.store, caller, customerId);
    const passwordRef = `pw_${randomBytes(18).toString('base64url')}`;
    const expiresAt = new Date(deps.clock.now().getTime() + passwordDropLifetimeInMs).toISOString();
    await c.passwordDrops.create(caller.providerId, passwordRef, {
      providerId: caller.providerId,
      customerId,
      sealedPassword: deps.sealer.seal(password),
      expiresAt,
    });
    return { passwordRef, expiresAt };
  }

  async function takePassword(providerId: string, customerId: string, ref: string): Promise<string> {
    const drop = await c.passwordDrops.get(providerId, ref);
    if (
      drop === undefined ||
      drop.value.customerId !== customerId ||
      drop.value.expiresAt < deps.clock.now().toISOString()
    ) {
      throw new InvalidMessageError(
        'UnknownPasswordRef',
        `user.create: passwordRef is unknown, used or expired for customer ${customerId}`,
      );
    }
    return deps.sealer.open(drop.value.sealedPassword);
  }

  /**
   * The public `user.create` queue command: the same path as HTTP, with the provider's full scope. A
   * command that can never succeed (unknown customer, does not fit it) is an InvalidMessageError: the
   * worker dead-letters it at once with the reason.
   */
  async function acceptQueuedCreate(
    message: Extract<DirectoryWork, { type: 'user.create' }>,
    correlationId: string,
  ) {
    const caller: Caller = { id: 'service-bus', kind: 'apiKey', providerId: message.providerId };
    const password =
      message.passwordRef === undefined
        ? undefined
        : await takePassword(message.providerId, message.customerId, message.passwordRef);
    try {
      const accepted = await requests.requestCreateUser({
        caller,
        customerId: message.customerId,
        request: { ...message.user, ...(password === undefined ? {} : { password }) },
        idempotencyKey: message.idempotencyKey,
        correlationId,
      });
      if (message.passwordRef !== undefined)
        await c.passwordDrops.delete(message.providerId, message.passwordRef);
      return accepted;
    } catch (error) {
      if (error instanceof AppError && permanentlyInvalid.has(error.code))
        throw new InvalidMessageError(`Rejected${error.code}`, `user.create: ${error.message}`, {
          code: error.code,
        });
      throw error;
    }
  }

  return {
    ...requests,
    acceptQueuedCreate,
    dropPassword,
    /** One run of an operation (the directory worker). */
    runOperation: (input: RunInput) => runner.run(input),
    /** An agent reply for a parked step (the reply trigger). */
    acceptAgentReply: (reply: OnPremReply, log: Logger) => runner.acceptReply(reply, log),
    sweepOperations: (limits: SweepLimits = { limit: 1000, budgetInMs: 50_000 }) =>
      sweeper.sweepOperations(limits),
    sweepHeldOperations: (
      limits: SweepLimits = { limit: 500, budgetInMs: 50_000 },
      providerId?: string,
      cause?: string,
    ) => sweeper.sweepHeld(limits, providerId, cause),
  };
}

export type Provisioning = ReturnType<typeof createProvisioning>;
