import type { Caller } from '../domain/caller.js';
import { canAccessCustomer } from '../domain/caller.js';
import { customerSchema, type Customer, type CustomerInput } from '../domain/customer.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Store, Versioned } from '../ports/store.js';

/** Customers live in their provider's partition: another provider's customer is simply not there. */
export function customersCollection(store: Store) {
  return store.collection('customers', customerSchema);
}

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

export function createCustomers(deps: { store: Store; clock: Clock }) {
  const customers = customersCollection(deps.store);
  return {
    get: (caller: Caller, customerId: string) => loadCustomer(deps.store, caller, customerId),

    /** Creates or replaces; with `ifMatch`, only the version the caller saw (lost updates are 412). */
    async put(
      caller: Caller,
      customerId: string,
      input: CustomerInput,
      ifMatch?: string,
    ): Promise<{ customer: Versioned<Customer>; created: boolean }> {
      assertCustomerScope(caller, customerId);
      const now = deps.clock.now().toISOString();
      const existing = await customers.get(caller.providerId, customerId);
      if (existing === undefined) {
        if (ifMatch !== undefined && ifMatch !== '*')
          throw new AppError('PreconditionFailed', 'the customer does not exist');
        const customer = await customers.create(caller.providerId, customerId, {
          ...input,
          customerId,
          providerId: caller.providerId,
          createdAt: now,
          updatedAt: now,
        });
        return { customer, created: true };
      }
      if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== existing.etag) {
        throw new AppError('PreconditionFailed', 'the customer was changed since you read it');
      }
      try {
        const customer = await customers.replace(
          caller.providerId,
          customerId,
          {
            ...input,
            customerId,
            providerId: caller.providerId,
            createdAt: existing.value.createdAt,
            updatedAt: now,
          },
          existing.etag,
        );
        return { customer, created: false };
      } catch (error) {
        if (error instanceof AppError && error.code === 'ConcurrencyConflict') {
          throw new AppError('PreconditionFailed', 'the customer was changed concurrently; read it again', {
            cause: error,
          });
        }
        throw error;
      }
    },
  };
}
