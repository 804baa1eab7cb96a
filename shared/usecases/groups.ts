import type { Caller } from '../domain/caller.js';
import { changeRequest, type Operation } from '../domain/operation.js';
import { groupFromPathId, groupPathId } from '../domain/user.js';
import { AppError } from '../errors.js';
import type { Provisioning } from './provisioning.js';

/**
 * A user's group memberships as operations on the engine: an AD group through the site's agent (the
 * step parks like any AD step), an Entra group through Graph. Both directories treat "already a member"
 * and "not a member" as the desired state, so a repeated PUT or DELETE is harmless. Ownership is the
 * engine's: another provider's customer or user answers 404 and nothing is queued.
 */
export interface GroupsDeps {
  provisioning: Pick<Provisioning, 'requestUserChange' | 'getUser'>;
}

export interface GroupMembershipView {
  /** The path id (`ad.<objectGUID base64url>` or `entra.<object id>`). */
  id: string;
  directory: 'ad' | 'entra';
  groupId: string;
  since: string;
  operationId: string;
}

export function createGroups(deps: GroupsDeps) {
  async function changeMembership(input: {
    caller: Caller;
    customerId: string;
    userId: string;
    /** `ad.<objectGUID base64url>` or `entra.<object id>` (validated by groupPathIdSchema). */
    groupPathId: string;
    change: 'add' | 'remove';
    idempotencyKey?: string;
    correlationId: string;
  }): Promise<{ operation: Operation; replayed: boolean }> {
    const request = groupFromPathId(input.groupPathId);
    return deps.provisioning.requestUserChange({
      caller: input.caller,
      customerId: input.customerId,
      userId: input.userId,
      change:
        input.change === 'add'
          ? changeRequest('user.groupAdd', request)
          : changeRequest('user.groupRemove', request),
      ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
      correlationId: input.correlationId,
    });
  }

  /** The memberships made through atria-m365 and confirmed by their directory. */
  async function listMemberships(
    caller: Caller,
    customerId: string,
    userId: string,
  ): Promise<GroupMembershipView[]> {
    const user = await deps.provisioning.getUser(caller, customerId, userId);
    return (user.groups ?? [])
      .map((g) => ({ id: groupPathId(g), ...g }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * The engine's hook for a finished create that named groups: one group operation per group, each under
   * an Idempotency-Key derived from the create (told again after a crash, it returns the same operation).
   * They run after the create in the user's order. A group the user can no longer join (deleted since,
   * a group that does not fit) is left out: the create succeeded and its own operation shows that.
   */
  async function joinRequestedGroups(o: Operation): Promise<void> {
    if (o.kind !== 'user.create' || o.state !== 'succeeded') return;
    const caller: Caller = { id: `operation:${o.operationId}`, kind: 'apiKey', providerId: o.providerId };
    for (const groupPathId of o.request.groups ?? []) {
      try {
        await changeMembership({
          caller,
          customerId: o.customerId,
          userId: o.userId,
          groupPathId,
          change: 'add',
          idempotencyKey: `${o.operationId}.group.${groupPathId}`.slice(0, 128),
          correlationId: o.correlationId,
        });
      } catch (error) {
        if (error instanceof AppError && !error.retryable) continue;
        throw error;
      }
    }
  }

  return { changeMembership, listMemberships, joinRequestedGroups };
}

export type Groups = ReturnType<typeof createGroups>;
