import type { Collection, Versioned } from './store.js';

/**
 * A read-through memo for rows every run reads and almost nothing writes: who owns a site or a tenant,
 * the customer a run works for, a site's keys. Each run checked them with its own Table round trip
 * (seven per hybrid user); now a process reads a row at most once per `ttlInMs` (wall time), and runs
 * that ask at the same moment share one request. A change made elsewhere is seen within `ttlInMs`;
 * a row that was not found is not remembered (a new site or claim is usable at once). Only for checks
 * and reads: a read-modify-write must use the collection itself, whose etags are current.
 */
export interface RecentReads<T> {
  /**
   * `freshAfter` (ms, on the memo's clock): a remembered read counts only if it began after then, so
   * a reader that must see every change made before some moment (an operation: its acceptance) does.
   */
  get(
    partitionKey: string,
    rowKey: string,
    options?: { freshAfter?: number },
  ): Promise<Versioned<T> | undefined>;
  /** Drops a row this process just changed, so its own next check reads it again. */
  forget(partitionKey: string, rowKey: string): void;
}

export function recentReads<T>(
  collection: Pick<Collection<T>, 'get'>,
  options: { ttlInMs: number; maxRows?: number; now?: () => number },
): RecentReads<T> {
  const now = options.now ?? Date.now;
  const maxRows = options.maxRows ?? 10_000;
  const rows = new Map<string, { at: number; row: Promise<Versioned<T> | undefined> }>();
  const keyOf = (pk: string, rk: string): string => `${pk}\u0000${rk}`;
  return {
    get(partitionKey, rowKey, read = {}) {
      if (options.ttlInMs <= 0) return collection.get(partitionKey, rowKey);
      const key = keyOf(partitionKey, rowKey);
      const t = now();
      const hit = rows.get(key);
      if (
        hit !== undefined &&
        t - hit.at < options.ttlInMs &&
        (read.freshAfter === undefined || hit.at > read.freshAfter)
      )
        return hit.row;
      const row = collection.get(partitionKey, rowKey);
      rows.delete(key);
      rows.set(key, { at: t, row });
      // Misses and failures are asked again next time.
      row.then(
        (found) => {
          if (found === undefined && rows.get(key)?.row === row) rows.delete(key);
        },
        () => {
          if (rows.get(key)?.row === row) rows.delete(key);
        },
      );
      // Oldest first (Map keeps insertion order): a process serving many customers stays bounded.
      while (rows.size > maxRows) {
        const oldest = rows.keys().next().value;
        if (oldest === undefined) break;
        rows.delete(oldest);
      }
      return row;
    },
    forget(partitionKey, rowKey) {
      rows.delete(keyOf(partitionKey, rowKey));
    },
  };
}
