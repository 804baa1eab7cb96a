import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { gdapApprovalLink, gdapRoles, gdapWaitState } from '../domain/tenant.js';
import { AppError, isAppError } from '../errors.js';
import type { CloudDirectory, CloudDirectoryFactory } from '../ports/cloud-directory.js';
import type { Customers } from './customers.js';
import type { SagaRunner, SagaStepDefinition, StepOutcome } from './tenants/saga.js';

/**
 * GDAP for a customer's tenant (issue 14), as a commerce operation in the partner tenant: create a
 * delegated admin relationship with the documented least-privilege roles (domain/tenant.ts gdapRoles),
 * `lockForApproval`, hand back the customer's approval link, follow the relationship (created →
 * approvalPending → approved → activating → active) with backoff — resumed from storage after a restart
 * — then create the access assignments for the provider's security groups. A relationship never approved
 * can be cancelled: deleted while still `created`, otherwise no longer followed (an approvalPending
 * invitation lapses after 90 days; GDAP has no partner-side withdrawal of a locked invitation).
 */

export const gdapInputSchema = z.strictObject({
  /** The provider's security groups (in its partner tenant) that get the roles in the customer's tenant. */
  securityGroupIds: z.array(z.guid()).min(1).max(20),
  /** ISO 8601 days, P1D–P730D (Graph: P1D to P2Y). */
  duration: z
    .string()
    .regex(/^P([1-9]\d{0,2})D$/, 'days, e.g. P730D')
    .refine((d) => Number(d.slice(1, -1)) <= 730, 'at most P730D (two years)')
    .default('P730D'),
  autoExtend: z.boolean().default(true),
});
export type GdapInput = z.infer<typeof gdapInputSchema>;

const storedSchema = z.object({
  securityGroupIds: z.array(z.string()),
  duration: z.string(),
  autoExtend: z.boolean(),
  customerTenantId: z.string(),
});

export interface GdapDeps {
  customers: Pick<Customers, 'get'>;
  cloudDirectory: CloudDirectoryFactory | undefined;
  /** The partner tenant where relationships live (the app's home tenant). */
  partnerTenantId: string | undefined;
  runner: () => SagaRunner;
  /** How long approval is waited for before the operation fails visibly (invitations lapse at 90 days). */
  approvalDeadlineInMs?: number;
}

export function createGdap(deps: GdapDeps) {
  const deadlineInMs = deps.approvalDeadlineInMs ?? 90 * 24 * 60 * 60_000;
  const roleIds = gdapRoles.map((r) => r.roleDefinitionId);
  const done = (result?: Record<string, string | number | boolean>): StepOutcome => ({
    kind: 'done',
    ...(result === undefined ? {} : { result }),
  });

  function partner(): CloudDirectory {
    if (deps.cloudDirectory === undefined || deps.partnerTenantId === undefined)
      throw new AppError(
        'Unavailable',
        'GDAP needs Graph and the partner tenant (Graph__homeTenantId) configured',
      );
    return deps.cloudDirectory(deps.partnerTenantId);
  }
  const stored = (payload: string | number | boolean | undefined) =>
    storedSchema.parse(JSON.parse(String(payload)));
  /** ≤ 50 characters and unique per partner (a repeat after a lost answer finds it by this name). */
  const displayNameOf = (customerId: string, operationId: string) =>
    `atria ${customerId.slice(0, 32)} ${operationId.slice(0, 8)}`;

  const steps: SagaStepDefinition[] = [
    {
      name: 'tier',
      async execute() {
        const org = await partner().getOrganization();
        return done({ partnerTenantType: org.partnerTenantType ?? 'none' });
      },
    },
    {
      name: 'create',
      async execute(ctx) {
        const r = stored(ctx.saga.request.payload);
        const cloud = partner();
        const displayName = displayNameOf(ctx.saga.customerId, ctx.saga.operationId);
        const existing = (
          await cloud.listDelegatedAdminRelationships({ customerTenantId: r.customerTenantId })
        ).find((rel) => rel.displayName === displayName);
        if (existing !== undefined) return done({ relationshipId: existing.id });
        try {
          const created = await cloud.createDelegatedAdminRelationship({
            displayName,
            duration: r.duration,
            customerTenantId: r.customerTenantId,
            roleDefinitionIds: roleIds,
            autoExtendDuration: r.autoExtend ? 'P180D' : 'PT0S',
          });
          return done({ relationshipId: created.id });
        } catch (error) {
          // The name is ours and unique: a create whose answer was lost is found by it.
          if (!isAppError(error, 'AlreadyExists') && !isAppError(error, 'Conflict')) throw error;
          const found = (
            await cloud.listDelegatedAdminRelationships({ customerTenantId: r.customerTenantId })
          ).find((rel) => rel.displayName === displayName);
          if (found === undefined) throw error;
          return done({ relationshipId: found.id });
        }
      },
    },
    {
      name: 'lock',
      async execute(ctx) {
        const id = String(ctx.result('create').relationshipId);
        const cloud = partner();
        const current = await cloud.getDelegatedAdminRelationship(id);
        if (current.status === 'created')
          await cloud.requestDelegatedAdminRelationshipAction(id, 'lockForApproval');
        return done({ approvalLink: gdapApprovalLink(id) });
      },
    },
    {
      name: 'approval',
      async execute(ctx): Promise<StepOutcome> {
        const id = String(ctx.result('create').relationshipId);
        const current = await partner().getDelegatedAdminRelationship(id);
        const wait = gdapWaitState(current.status);
        if (wait === 'active')
          return done({ status: current.status, endDateTime: current.endDateTime ?? '' });
        if (wait === 'ended')
          throw new AppError('Conflict', `the relationship is ${current.status}; it was never approved`, {
            retryable: false,
          });
        return {
          kind: 'poll',
          reason: `relationship is ${current.status}; the customer approves at the link`,
        };
      },
    },
    {
      name: 'assignments',
      async execute(ctx) {
        const r = stored(ctx.saga.request.payload);
        const id = String(ctx.result('create').relationshipId);
        const cloud = partner();
        const existing = await cloud.listDelegatedAdminAccessAssignments(id);
        let created = 0;
        for (const groupId of r.securityGroupIds) {
          if (existing.some((a) => a.securityGroupId === groupId && a.status !== 'deleted')) continue;
          await cloud.createDelegatedAdminAccessAssignment(id, {
            securityGroupId: groupId,
            roleDefinitionIds: roleIds,
          });
          created += 1;
        }
        return done({ groups: r.securityGroupIds.length, created });
      },
    },
    {
      // An assignment is `pending` until Microsoft has applied it; the provider's technicians have the
      // roles only once it is `active` (delegatedadminaccessassignment.md).
      name: 'assignmentsActive',
      async execute(ctx): Promise<StepOutcome> {
        const r = stored(ctx.saga.request.payload);
        const id = String(ctx.result('create').relationshipId);
        const mine = (await partner().listDelegatedAdminAccessAssignments(id)).filter((a) =>
          r.securityGroupIds.includes(a.securityGroupId),
        );
        const failed = mine.find((a) => a.status === 'error');
        if (failed !== undefined)
          throw new AppError('Upstream', `the access assignment for group ${failed.securityGroupId} failed`, {
            retryable: false,
          });
        const waiting = mine.filter((a) => a.status !== 'active').length;
        if (waiting > 0 || mine.length < r.securityGroupIds.length)
          return { kind: 'poll', reason: `${waiting} access assignment(s) still pending` };
        return done({ active: mine.length });
      },
    },
  ];

  async function start(caller: Caller, customerId: string, input: GdapInput) {
    const customer = (await deps.customers.get(caller, customerId)).value;
    if (customer.entra === undefined)
      throw new AppError('Conflict', `customer ${customerId} has no Entra tenant yet`);
    partner();
    const payload = JSON.stringify({ ...input, customerTenantId: customer.entra.tenantId });
    const runner = deps.runner();
    const started = await runner.start({
      providerId: caller.providerId,
      customerId,
      kind: 'gdap.relationship',
      request: { payload },
      actor: caller.id,
      // One relationship being set up per customer at a time; a repeat is the same operation.
      idempotencyKey: `gdap:${customer.entra.tenantId}:${createHash('sha256').update(payload).digest('base64url')}`,
      fingerprint: payload,
      held: false,
      deadlineInMs,
    });
    const saga = started.created
      ? await runner.advance(caller.providerId, started.saga.operationId)
      : started.saga;
    return { created: started.created, operation: view(saga) };
  }

  function view(saga: Parameters<SagaRunner['visible']>[0]) {
    const visible = deps.runner().visible(saga);
    return {
      ...visible,
      roles: gdapRoles,
      approvalLink: visible.steps.find((s) => s.name === 'lock')?.result?.approvalLink,
    };
  }

  async function own(caller: Caller, customerId: string, operationId: string) {
    await deps.customers.get(caller, customerId);
    const row = await deps.runner().get(caller.providerId, operationId);
    if (row?.value.kind !== 'gdap.relationship' || row.value.customerId !== customerId)
      throw new AppError('NotFound', `GDAP operation ${operationId} not found`);
    return row.value;
  }

  /** Stops following a relationship that was never approved; deletes it while it is still `created`. */
  async function cancel(caller: Caller, customerId: string, operationId: string) {
    const saga = await own(caller, customerId, operationId);
    const id = saga.steps.find((s) => s.name === 'create')?.result?.relationshipId;
    if (typeof id === 'string') {
      const cloud = partner();
      const current = await cloud.getDelegatedAdminRelationship(id);
      if (current.status === 'active' || current.status === 'activating' || current.status === 'approved')
        throw new AppError(
          'Conflict',
          `the relationship is ${current.status}: the customer approved it; terminate it instead`,
        );
      if (current.status === 'created') await cloud.deleteDelegatedAdminRelationship(id);
    }
    return view(await deps.runner().stop(caller.providerId, operationId));
  }

  return {
    steps,
    start,
    cancel,
    async get(caller: Caller, customerId: string, operationId: string) {
      return view(await own(caller, customerId, operationId));
    },
  };
}
export type Gdap = ReturnType<typeof createGdap>;
