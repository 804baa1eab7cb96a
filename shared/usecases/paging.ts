import { z } from 'zod';
import { AppError } from '../errors.js';
import type { Collection, Versioned } from '../ports/store.js';

/**
 * One paging convention for every list: a page of `value` and, when more remain, an opaque `cursor`
 * that the HTTP layer turns into `nextLink`. The cursor wraps the store's continuation token; it is
 * only ever used inside the caller's own partition, so a cursor from another provider reads nothing
 * of theirs.
 */
export interface PageRequest {
  cursor?: string;
  /** At most this many items (the store may return fewer). */
  limit?: number;
}

export interface PageOf<T> {
  value: T[];
  cursor?: string;
}

export const pageQuerySchema = z.object({
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,2048}$/, 'an opaque cursor from nextLink')
    .optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
});

const encode = (token: string): string => Buffer.from(token, 'utf8').toString('base64url');

function decode(cursor: string): string {
  const token = Buffer.from(cursor, 'base64url').toString('utf8');
  if (token === '') throw new AppError('Validation', 'the cursor is not one this API issued');
  return token;
}

/** One page of a partition, optionally filtered and mapped; filtering may leave a page short. */
export async function pageOf<T, V = T>(
  collection: Collection<T>,
  partitionKey: string,
  request: PageRequest,
  map: (row: Versioned<T>) => V | undefined = (row) => row.value as unknown as V,
): Promise<PageOf<V>> {
  const page = await collection.listPage(partitionKey, {
    pageSize: request.limit ?? 100,
    ...(request.cursor === undefined ? {} : { continuationToken: decode(request.cursor) }),
  });
  const value: V[] = [];
  for (const row of page.items) {
    const mapped = map(row);
    if (mapped !== undefined) value.push(mapped);
  }
  return {
    value,
    ...(page.continuationToken === undefined ? {} : { cursor: encode(page.continuationToken) }),
  };
}
