import { randomBytes } from 'node:crypto';
import type { Customer } from '../../domain/customer.js';
import {
  immutableIdFromObjectGuid,
  mailNicknameFrom,
  sAMAccountNameFrom,
  upnParts,
} from '../../domain/identity.js';
import type { Operation, Step } from '../../domain/operation.js';
import type { UserRecord } from '../../domain/user.js';
import { AppError } from '../../errors.js';
import type { CloudDirectory } from '../../ports/cloud-directory.js';
import type { OnPremCommand, OnPremRef } from '../../ports/on-prem-directory.js';

/**
 * The registry of saga steps `{ name, execute, compensate?, idempotencyKey }`, per directory. A step
 * either finishes in this run (Graph answers within the call) or hands a command to the site's agent and
 * parks; the reply's facts then become the step's result. Every step is idempotent under its key: AD
 * commands by command id at the agent, Entra creates by adopting only the user carrying our anchor.
 */
export type StepOutcome =
  { kind: 'done'; result: Record<string, string> } | { kind: 'agent'; command: OnPremCommand };

export interface StepContext {
  op: Operation;
  step: Step;
  customer: Customer;
  user: UserRecord | undefined;
  cloud(): CloudDirectory;
  /** The sealed password of the operation, opened (undefined when there is none or it was dropped). */
  password(): string | undefined;
  result(stepName: string): Record<string, string>;
}

export interface StepDefinition {
  name: string;
  directory: 'ad' | 'entra' | 'licences';
  /** Needs the operation's password (it is erased once no pending step needs it). */
  usesPassword?: boolean;
  idempotencyKey(op: Pick<Operation, 'operationId'>): string;
  execute(ctx: StepContext): Promise<StepOutcome>;
  /** Undo of a done step (newest first, on a permanent failure later on); undefined: nothing to undo. */
  compensate?(ctx: StepContext): Promise<StepOutcome | undefined>;
  compensationKey?(op: Pick<Operation, 'operationId'>): string;
}

const done = (result: Record<string, string> = {}): StepOutcome => ({ kind: 'done', result });
const agent = (command: OnPremCommand): StepOutcome => ({ kind: 'agent', command });

function strongRandomPassword(): string {
  // 24 chars from four classes: meets Entra and AD complexity whatever the random bytes.
  return `${randomBytes(18).toString('base64url')}aA1!`;
}

function adRef(ctx: StepContext): OnPremRef {
  const guid = ctx.user?.ad?.objectGuid ?? ctx.result('ad.create').objectGuid;
  if (guid === undefined) throw new AppError('Internal', 'no AD account linked to this user');
  return { objectGuid: guid };
}

function entraId(ctx: StepContext): string {
  const id = ctx.user?.entra?.objectId ?? ctx.result('entra.create').objectId;
  if (id === undefined) throw new AppError('Internal', 'no Entra account linked to this user');
  return id;
}

function createRequest(ctx: StepContext) {
  if (ctx.op.kind !== 'user.create') throw new AppError('Internal', `${ctx.step.name} outside a create`);
  return ctx.op.request;
}

/** Graph's delete of an absent user is 404: for an undo or a delete that already happened, that is done. */
async function ignoreNotFound(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!(error instanceof AppError && error.code === 'NotFound')) throw error;
  }
}

const key = (suffix: string) => (op: Pick<Operation, 'operationId'>) => `${op.operationId}.${suffix}`;

const adCreate: StepDefinition = {
  name: 'ad.create',
  directory: 'ad',
  usesPassword: true,
  idempotencyKey: key('ad.create'),
  compensationKey: key('ad.create.undo'),
  execute(ctx) {
    const request = createRequest(ctx);
    const { alias } = upnParts(request.userPrincipalName);
    const password = ctx.password();
    return Promise.resolve(
      agent({
        type: 'createUser',
        user: {
          ou: ctx.customer.ad?.usersOu ?? '',
          sAMAccountName: request.sAMAccountName ?? sAMAccountNameFrom(alias),
          userPrincipalName: request.userPrincipalName,
          displayName: request.displayName,
          ...(request.givenName === undefined ? {} : { givenName: request.givenName }),
          ...(request.surname === undefined ? {} : { sn: request.surname }),
          ...(password === undefined ? {} : { password }),
          enabled: request.accountEnabled && password !== undefined,
        },
      }),
    );
  },
  compensate(ctx) {
    const guid = ctx.step.result?.objectGuid;
    return Promise.resolve(
      guid === undefined ? undefined : agent({ type: 'delete', target: { objectGuid: guid } }),
    );
  },
};

const entraCreate: StepDefinition = {
  name: 'entra.create',
  directory: 'entra',
  usesPassword: true,
  idempotencyKey: key('entra.create'),
  async execute(ctx) {
    const request = createRequest(ctx);
    const customer = ctx.customer;
    const cloud = ctx.cloud();
    const { alias } = upnParts(request.userPrincipalName);
    const objectGuid = ctx.result('ad.create').objectGuid;
    const federated = customer.identityMode === 'hybridFederated';
    const immutableId =
      federated && objectGuid !== undefined ? immutableIdFromObjectGuid(objectGuid) : undefined;
    const anchor: Record<string, string> =
      immutableId === undefined ? {} : { onPremisesImmutableId: immutableId };
    const password =
      customer.identityMode === 'both' ? (ctx.password() ?? strongRandomPassword()) : strongRandomPassword();
    const usageLocation = request.usageLocation ?? customer.defaultUsageLocation;
    // Create first (no lookup before): a taken UPN is adopted only if it carries this step's key or our
    // anchor (createUserOnce), so a create whose answer was lost is ours and a stranger's never is.
    const { user: created } = await cloud.createUserOnce(
      {
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
      },
      key('entra.create')(ctx.op),
    );
    return done({
      objectId: created.id,
      ...anchor,
      // The licences step needs no usageLocation PATCH for a user created with one.
      ...(usageLocation === undefined ? {} : { usageLocation }),
    });
  },
  async compensate(ctx) {
    const objectId = ctx.step.result?.objectId;
    if (objectId === undefined) return undefined;
    await ignoreNotFound(() => ctx.cloud().deleteUser(objectId));
    return done();
  },
};

const licences: StepDefinition = {
  name: 'licences',
  directory: 'licences',
  idempotencyKey: key('licences'),
  async execute(ctx) {
    const request = createRequest(ctx);
    const plan = ctx.customer.licencePlans.find((p) => p.name === request.licencePlan);
    if (plan === undefined)
      throw new AppError('Validation', `licence plan ${request.licencePlan ?? ''} no longer exists`);
    const objectId = entraId(ctx);
    const cloud = ctx.cloud();
    const usageLocation = request.usageLocation ?? ctx.customer.defaultUsageLocation;
    // Set at create (entra.create's result says so): a second write here would only cost budget.
    if (usageLocation !== undefined && ctx.result('entra.create').usageLocation !== usageLocation)
      await cloud.updateUser(objectId, { usageLocation });
    // Re-assigning an assigned licence is a no-op in Graph, so a retry is safe.
    await cloud.assignLicences(objectId, {
      add: plan.skus.map((s) => ({ skuId: s.skuId, disabledPlanIds: s.disabledServicePlanIds })),
      remove: [],
    });
    return done({ skuIds: plan.skus.map((s) => s.skuId).join(',') });
  },
};

function adChange(name: string, command: (ctx: StepContext) => OnPremCommand | undefined): StepDefinition {
  return {
    name,
    directory: 'ad',
    ...(name === 'ad.password' ? { usesPassword: true } : {}),
    idempotencyKey: key(name),
    execute(ctx) {
      const built = command(ctx);
      return Promise.resolve(built === undefined ? done() : agent(built));
    },
  };
}

function entraChange(name: string, action: (ctx: StepContext) => Promise<void>): StepDefinition {
  return {
    name,
    directory: 'entra',
    ...(name === 'entra.password' ? { usesPassword: true } : {}),
    idempotencyKey: key(name),
    async execute(ctx) {
      await action(ctx);
      return done();
    },
  };
}

function requirePassword(ctx: StepContext): string {
  const password = ctx.password();
  if (password === undefined)
    throw new AppError('Validation', 'the password is no longer available; send the request again');
  return password;
}

function groupRequest(ctx: StepContext) {
  if (ctx.op.kind !== 'user.groupAdd' && ctx.op.kind !== 'user.groupRemove')
    throw new AppError('Internal', `${ctx.step.name} outside a group change`);
  return ctx.op.request;
}

const changeSteps: StepDefinition[] = [
  adChange('ad.update', (ctx) => {
    if (ctx.op.kind !== 'user.update') return undefined;
    const update = ctx.op.request;
    const set: Record<string, string | null> = {};
    if (update.displayName !== undefined) set.displayName = update.displayName;
    if (update.givenName !== undefined) set.givenName = update.givenName;
    if (update.surname !== undefined) set.sn = update.surname;
    if (update.jobTitle !== undefined) set.title = update.jobTitle;
    if (update.department !== undefined) set.department = update.department;
    return Object.keys(set).length === 0 ? undefined : { type: 'updateAttributes', target: adRef(ctx), set };
  }),
  entraChange('entra.update', async (ctx) => {
    if (ctx.op.kind === 'user.update') await ctx.cloud().updateUser(entraId(ctx), ctx.op.request);
  }),
  adChange('ad.disable', (ctx) => ({ type: 'disable', target: adRef(ctx) })),
  adChange('ad.enable', (ctx) => ({ type: 'enable', target: adRef(ctx) })),
  adChange('ad.delete', (ctx) => ({ type: 'delete', target: adRef(ctx) })),
  entraChange('entra.disable', (ctx) => ctx.cloud().disableUser(entraId(ctx))),
  entraChange('entra.enable', (ctx) => ctx.cloud().enableUser(entraId(ctx))),
  entraChange('entra.delete', (ctx) => ignoreNotFound(() => ctx.cloud().deleteUser(entraId(ctx)))),
  adChange('ad.password', (ctx) => ({
    type: 'resetPassword',
    target: adRef(ctx),
    password: requirePassword(ctx),
    mustChangeAtNextLogon: ctx.op.kind === 'user.password' && ctx.op.request.forceChangePasswordNextSignIn,
  })),
  entraChange('entra.password', (ctx) =>
    ctx.cloud().setPassword(entraId(ctx), requirePassword(ctx), {
      forceChangePasswordNextSignIn:
        ctx.op.kind === 'user.password' && ctx.op.request.forceChangePasswordNextSignIn,
    }),
  ),
  adChange('ad.groupAdd', (ctx) => ({
    type: 'groupAdd',
    group: { objectGuid: groupRequest(ctx).groupId },
    member: adRef(ctx),
  })),
  adChange('ad.groupRemove', (ctx) => ({
    type: 'groupRemove',
    group: { objectGuid: groupRequest(ctx).groupId },
    member: adRef(ctx),
  })),
  // Graph's add of a member is 400 "already exist" and the remove of a non-member 404: the adapter
  // treats both as the desired state, so a retry is safe.
  entraChange('entra.groupAdd', (ctx) => ctx.cloud().addGroupMember(groupRequest(ctx).groupId, entraId(ctx))),
  entraChange('entra.groupRemove', (ctx) =>
    ctx.cloud().removeGroupMember(groupRequest(ctx).groupId, entraId(ctx)),
  ),
  {
    name: 'licences.change',
    directory: 'licences',
    idempotencyKey: key('licences.change'),
    async execute(ctx) {
      if (ctx.op.kind !== 'user.licences')
        throw new AppError('Internal', 'licences.change outside user.licences');
      const planName = ctx.op.request.licencePlan;
      const plan = planName === null ? undefined : ctx.customer.licencePlans.find((p) => p.name === planName);
      if (planName !== null && plan === undefined)
        throw new AppError('Validation', `licence plan ${planName} no longer exists`);
      const add = (plan?.skus ?? []).map((s) => ({
        skuId: s.skuId,
        disabledPlanIds: s.disabledServicePlanIds,
      }));
      const keep = new Set(add.map((a) => a.skuId));
      const remove = (ctx.user?.licences ?? []).map((l) => l.skuId).filter((skuId) => !keep.has(skuId));
      const cloud = ctx.cloud();
      const usageLocation = ctx.customer.defaultUsageLocation;
      if (add.length > 0 && usageLocation !== undefined) {
        const current = await cloud.getUser(entraId(ctx));
        if (current.usageLocation === null) await cloud.updateUser(entraId(ctx), { usageLocation });
      }
      await cloud.assignLicences(entraId(ctx), { add, remove });
      return done({ skuIds: add.map((a) => a.skuId).join(',') });
    },
  },
];

export const stepRegistry: ReadonlyMap<string, StepDefinition> = new Map(
  [adCreate, entraCreate, licences, ...changeSteps].map((d) => [d.name, d]),
);

export function stepDefinition(name: string): StepDefinition {
  const found = stepRegistry.get(name);
  if (found === undefined) throw new AppError('Internal', `unknown step ${name}`);
  return found;
}
