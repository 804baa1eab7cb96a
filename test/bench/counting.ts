import type { Bus } from '../../shared/ports/bus.js';
import type { Collection, ListOptions, Page, Store, Versioned } from '../../shared/ports/store.js';

/**
 * Bench instrumentation: counts the app's Table storage round trips (by collection and operation, a
 * list counting one per page) and its queue sends (by queue). Counts are deterministic for a given
 * flow, unlike timings on a loaded machine, so they are the bench's evidence of the engine's cost.
 */
export interface CallCounts {
  /** `collection.operation` → round trips. */
  table: Map<string, number>;
  /** queue name → messages sent. */
  queue: Map<string, number>;
  reset(): void;
  total(of: 'table' | 'queue'): number;
  /** The counts as a sorted object, each divided by `per` (e.g. per user). */
  perUnit(of: 'table' | 'queue', per: number): Record<string, number>;
}

export function createCallCounts(): CallCounts {
  const table = new Map<string, number>();
  const queue = new Map<string, number>();
  const round = (n: number): number => Math.round(n * 100) / 100;
  return {
    table,
    queue,
    reset() {
      table.clear();
      queue.clear();
    },
    total(of) {
      let sum = 0;
      for (const n of (of === 'table' ? table : queue).values()) sum += n;
      return sum;
    },
    perUnit(of, per) {
      const source = of === 'table' ? table : queue;
      return Object.fromEntries(
        [...source.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => [k, round(n / per)]),
      );
    },
  };
}

const bump = (map: Map<string, number>, key: string): void => {
  map.set(key, (map.get(key) ?? 0) + 1);
};

export function countingStore(inner: Store, counts: CallCounts): Store {
  return {
    collection<T>(name: string, schema: Parameters<Store['collection']>[1]): Collection<T> {
      const c = inner.collection<T>(name, schema as never);
      const count = (op: string): void => bump(counts.table, `${name}.${op}`);
      const wrapped: Collection<T> = {
        get: (pk, rk) => (count('get'), c.get(pk, rk)),
        create: (pk, rk, v) => (count('create'), c.create(pk, rk, v)),
        replace: (pk, rk, v, etag) => (count('replace'), c.replace(pk, rk, v, etag)),
        upsert: (pk, rk, v) => (count('upsert'), c.upsert(pk, rk, v)),
        delete: (pk, rk, etag) => (count('delete'), c.delete(pk, rk, etag)),
        listPage: (pk, options?: ListOptions): Promise<Page<T>> => (count('list'), c.listPage(pk, options)),
        async *list(pk, options = {}): AsyncIterable<Versioned<T>> {
          let continuationToken: string | undefined;
          do {
            const page = await wrapped.listPage(pk, {
              ...options,
              ...(continuationToken === undefined ? {} : { continuationToken }),
            });
            yield* page.items;
            continuationToken = page.continuationToken;
          } while (continuationToken !== undefined);
        },
      };
      return wrapped;
    },
    ping: () => inner.ping(),
  };
}

export function countingBus(inner: Bus, counts: CallCounts): Bus {
  return {
    send(contract, body, options) {
      bump(counts.queue, contract.queue);
      return inner.send(contract, body, options);
    },
    sendBatch(contract, items) {
      for (let i = 0; i < items.length; i++) bump(counts.queue, contract.queue);
      return inner.sendBatch(contract, items);
    },
  };
}
