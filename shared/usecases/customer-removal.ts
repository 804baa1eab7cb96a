import type { Caller } from '../domain/caller.js';
import { AppError } from '../errors.js';
import type { Customers } from './customers.js';
import type { Provisioning } from './provisioning.js';

/**
 * `DELETE /customers/{id}`: a customer without users goes at once. With `force`, each of its users is
 * deleted first, as an operation of its own that the bulk guard judges like any other delete (beyond
 * the threshold they wait for a person's confirmation); the customer itself goes on a later DELETE, once
 * no user is left. Nothing here removes a directory account behind the engine's back.
 */
export interface RemovalResult {
  removed: boolean;
  operations: { userId: string; operationId: string; state: string }[];
  /** Users that cannot be deleted yet (still being created). */
  waiting: { userId: string; state: string }[];
}

export function createCustomerRemoval(deps: { customers: Customers; provisioning: Provisioning }) {
  return async function removeCustomer(
    caller: Caller,
    customerId: string,
    options: { force: boolean; ifMatch?: string; correlationId: string },
  ): Promise<RemovalResult> {
    try {
      await deps.customers.remove(caller, customerId, options.ifMatch);
      return { removed: true, operations: [], waiting: [] };
    } catch (error) {
      if (!options.force || !(error instanceof AppError && error.code === 'Conflict')) throw error;
    }
    const operations: RemovalResult['operations'] = [];
    const waiting: RemovalResult['waiting'] = [];
    let cursor: string | undefined;
    do {
      const page = await deps.customers.listUsers(caller, customerId, {
        limit: 100,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const user of page.value) {
        if (user.state === 'deleted' || user.state === 'failed') continue;
        if (user.state === 'provisioning') {
          waiting.push({ userId: user.userId, state: user.state });
          continue;
        }
        // One key per customer deletion and user: a repeated forced DELETE queues nothing twice.
        const { operation } = await deps.provisioning.requestUserChange({
          caller,
          customerId,
          userId: user.userId,
          change: { kind: 'user.delete', request: {} },
          idempotencyKey: `customer-delete:${customerId}:${user.userId}`,
          correlationId: options.correlationId,
        });
        operations.push({ userId: user.userId, operationId: operation.operationId, state: operation.state });
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    return { removed: false, operations, waiting };
  };
}

export type CustomerRemoval = ReturnType<typeof createCustomerRemoval>;
