import type { z } from 'zod';

/**
 * Durable state behind optimistic concurrency. Every read returns the etag it saw; every replace or
 * delete must present it, so a lost update surfaces as a `ConcurrencyConflict` AppError, never silently.
 * Keys are any strings: the adapter encodes what the backing store forbids.
 */
export interface Versioned<T> {
  partitionKey: string;
  rowKey: string;
  value: T;
  etag: string;
}

export interface ListOptions {
  /** Only rows whose key starts with this prefix. */
  rowKeyPrefix?: string;
  /** Page size; the adapter may return fewer. */
  pageSize?: number;
  continuationToken?: string;
}

export interface Page<T> {
  items: Versioned<T>[];
  continuationToken?: string;
}

export interface Collection<T> {
  get(partitionKey: string, rowKey: string): Promise<Versioned<T> | undefined>;
  /** Inserts; an existing row is an `AlreadyExists` error (the idempotency primitive). */
  create(partitionKey: string, rowKey: string, value: T): Promise<Versioned<T>>;
  /** Replaces the row seen at `etag`; a newer write in between is a `ConcurrencyConflict`. */
  replace(partitionKey: string, rowKey: string, value: T, etag: string): Promise<Versioned<T>>;
  /** Last-writer-wins write, only for data owned by one writer (heartbeats, caches). */
  upsert(partitionKey: string, rowKey: string, value: T): Promise<Versioned<T>>;
  /** Deletes; with `etag`, only the version seen. Deleting a missing row is not an error. */
  delete(partitionKey: string, rowKey: string, etag?: string): Promise<void>;
  listPage(partitionKey: string, options?: ListOptions): Promise<Page<T>>;
  list(partitionKey: string, options?: Omit<ListOptions, 'continuationToken'>): AsyncIterable<Versioned<T>>;
}

export interface Store {
  collection<T>(name: string, schema: z.ZodType<T>): Collection<T>;
  /** A cheap round trip for /api/health. */
  ping(): Promise<void>;
}
