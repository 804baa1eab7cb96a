import type { PageOf } from '../../shared/usecases/paging.js';

/**
 * The API's one paging shape: `{ value, nextLink }`, where nextLink repeats the request's own path and
 * filters with the next cursor (as Microsoft Graph's `@odata.nextLink` does).
 */
export function pagedBody<T>(
  path: string,
  query: Record<string, string | number | undefined>,
  page: PageOf<T>,
): { value: T[]; nextLink?: string } {
  if (page.cursor === undefined) return { value: page.value };
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query))
    if (value !== undefined && name !== 'cursor') params.set(name, String(value));
  params.set('cursor', page.cursor);
  return { value: page.value, nextLink: `/api/${path}?${params.toString()}` };
}
