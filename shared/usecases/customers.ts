import type { Caller } from '../domain/caller.js';
import { canAccessCustomer } from '../domain/caller.js';
import { customerSchema, type Customer, type CustomerInput } from '../domain/customer.js';
import { userRecordSchema, visibleUser, type UserRecord } from '../domain/user.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Store, Versioned } from '../ports/store.js';
import { pageOf, type PageOf, type PageRequest } from './paging.js';
import { createTenancy, siteNotFound } from './tenancy.js';

/** Customers live in their provider's partition: another provider's customer is simply not there. */
export function customersCollection(store: Store) {
  return store.collection('customers', customerSchema);
}

/** Users of one customer (the engine's `users` table, partition provider/customer). */
function usersCollection(store: Store) {
  return store.collection('users', userRecordSchema);
}
const usersPartition = (providerId: string, customerId: string): string => `${providerId}/${customerId}`;

export function assertCustomerScope(caller: Caller, customerId: string): void {
  if (!canAccessCustomer(caller, customerId)) {
    throw new AppError('OutOfScope', `this credential may not act for customer ${customerId}`);
  }
}

export async function loadCustomer(
  store: Store,
  caller: Caller,
  customerId: string,
): Promise<Versioned<Customer>> {
  assertCustomerScope(caller, customerId);
  const found = await customersCollection(store).get(caller.providerId, customerId);
  if (found === undefined) throw new AppError('NotFound', `customer ${customerId} not found`);
  return found;
}

/** What moves a customer's users to other directories: refused while it has users (for now). */
function identityChanges(before: Customer, after: CustomerInput): string[] {
  const changes: string[] = [];
  if (before.identityMode !== after.identityMode) changes.push('identityMode');
  if ((before.entra?.tenantId.toLowerCase() ?? null) !== (after.entra?.tenantId.toLowerCase() ?? null))
    changes.push('entra.tenantId');
  if ((before.ad?.siteId ?? null) !== (after.ad?.siteId ?? null)) changes.push('ad.siteId');
  return changes;
}

export function createCustomers(deps: { store: Store; clock: Clock }) {
  const customers = customersCollection(deps.store);
  const users = usersCollection(deps.store);
  const tenancy = createTenancy(deps);

  async function liveUsers(providerId: string, customerId: string): Promise<number> {
    let count = 0;
    for await (const user of users.list(usersPartition(providerId, customerId)))
      if (user.value.state !== 'deleted' && user.value.state !== 'failed') count++;
    return count;
  }

  /** The caller must own the site it names; a missing and another provider's site read the same. */
  async function checkSite(caller: Caller, input: CustomerInput): Promise<void> {
    if (input.ad === undefined) return;
    try {
      await tenancy.assertSiteUsable(caller.providerId, input.ad.siteId);
    } catch (error) {
      if (error instanceof AppError && error.code === 'NotFound') {
        throw new AppError('Validation', siteNotFound(input.ad.siteId).message, {
          details: { errors: [{ path: 'body.ad.siteId', message: 'no such site' }] },
        });
      }
      throw error;
    }
  }

  return {
    get: (caller: Caller, customerId: string) => loadCustomer(deps.store, caller, customerId),

    /** The caller's customers (a narrowed credential sees only its own), one page at a time. */
    async list(caller: Caller, request: PageRequest): Promise<PageOf<Customer>> {
      return pageOf(customers, caller.providerId, request, (row) =>
        canAccessCustomer(caller, row.value.customerId) ? row.value : undefined,
      );
    },

    /**
     * Creates or replaces; with `ifMatch`, only the version the caller saw (lost updates are 412).
     * The site must be the provider's own and the tenant is claimed for this customer; while the
     * customer has users, its identity mode, tenant and site stay as they are.
     */
    async put(
      caller: Caller,
      customerId: string,
      input: CustomerInput,
      ifMatch?: string,
    ): Promise<{ customer: Versioned<Customer>; created: boolean }> {
      assertCustomerScope(caller, customerId);
      const now = deps.clock.now().toISOString();
      const existing = await customers.get(caller.providerId, customerId);
      if (existing === undefined && ifMatch !== undefined)
        throw new AppError('PreconditionFailed', 'the customer does not exist');
      if (existing !== undefined && ifMatch !== undefined && ifMatch !== '*' && ifMatch !== existing.etag)
        throw new AppError('PreconditionFailed', 'the customer was changed since you read it');
      if (existing !== undefined) {
        const changes = identityChanges(existing.value, input);
        if (changes.length > 0) {
          const count = await liveUsers(caller.providerId, customerId);
          if (count > 0) {
            throw new AppError(
              'Conflict',
              `customer ${customerId} has ${count} user(s): ${changes.join(', ')} cannot change while they live in the current directories; delete or move them first`,
              { details: { fields: changes, users: count } },
            );
          }
        }
      }
      await checkSite(caller, input);
      // Claimed before the customer row is written: a crash in between leaves a claim we can retry.
      if (input.entra !== undefined)
        await tenancy.claimTenant(caller.providerId, customerId, input.entra.tenantId);

      const value = (createdAt: string): Customer => ({
        ...input,
        customerId,
        providerId: caller.providerId,
        createdAt,
        updatedAt: now,
      });
      let saved: { customer: Versioned<Customer>; created: boolean };
      try {
        saved =
          existing === undefined
            ? { customer: await customers.create(caller.providerId, customerId, value(now)), created: true }
            : {
                customer: await customers.replace(
                  caller.providerId,
                  customerId,
                  value(existing.value.createdAt),
                  existing.etag,
                ),
                created: false,
              };
      } catch (error) {
        if (
          error instanceof AppError &&
          (error.code === 'ConcurrencyConflict' || error.code === 'AlreadyExists')
        ) {
          throw new AppError('PreconditionFailed', 'the customer was changed concurrently; read it again', {
            cause: error,
          });
        }
        throw error;
      }
      const before = existing?.value.entra?.tenantId;
      if (before !== undefined && before.toLowerCase() !== input.entra?.tenantId.toLowerCase())
        await tenancy.releaseTenant(caller.providerId, customerId, before);
      return saved;
    },

    /** Removes a customer without users; its tenant becomes free to be linked again. */
    async remove(caller: Caller, customerId: string, ifMatch?: string): Promise<void> {
      const existing = await loadCustomer(deps.store, caller, customerId);
      if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== existing.etag)
        throw new AppError('PreconditionFailed', 'the customer was changed since you read it');
      const count = await liveUsers(caller.providerId, customerId);
      if (count > 0) {
        throw new AppError(
          'Conflict',
          `customer ${customerId} still has ${count} user(s); delete them first (DELETE …/users/{userId}, held by the bulk guard beyond its threshold)`,
          { details: { users: count } },
        );
      }
      await customers.delete(caller.providerId, customerId, existing.etag);
      if (existing.value.entra !== undefined)
        await tenancy.releaseTenant(caller.providerId, customerId, existing.value.entra.tenantId);
    },

    /** The customer's users, optionally only those in one state, one page at a time. */
    async listUsers(
      caller: Caller,
      customerId: string,
      request: PageRequest & { state?: UserRecord['state'] },
    ): Promise<PageOf<UserRecord>> {
      await loadCustomer(deps.store, caller, customerId);
      return pageOf(users, usersPartition(caller.providerId, customerId), request, (row) =>
        request.state === undefined || row.value.state === request.state ? visibleUser(row.value) : undefined,
      );
    },

    /** Whether any of the provider's customers points at the site. */
    async usesSite(providerId: string, siteId: string): Promise<boolean> {
      for await (const row of customers.list(providerId)) if (row.value.ad?.siteId === siteId) return true;
      return false;
    },
  };
}

export type Customers = ReturnType<typeof createCustomers>;
