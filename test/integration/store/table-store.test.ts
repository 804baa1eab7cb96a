import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { createTableStore } from '../../../shared/adapters/tables/table-store.js';
import { isAppError } from '../../../shared/errors.js';

const connectionString = inject('storageConnectionString');
const store = createTableStore({ connectionString });
const thing = z.object({ name: z.string(), count: z.number().int() });

function collection() {
  // A fresh table per test keeps tests independent while sharing one Azurite.
  return store.collection(`t${randomUUID().replace(/-/g, '').slice(0, 12)}`, thing);
}

describe('Table storage adapter against Azurite', () => {
  it('creates, reads back and refuses a second create of the same key', async () => {
    const things = collection();
    const created = await things.create('p', 'r', { name: 'a', count: 1 });
    expect(created.etag).not.toBe('');
    expect((await things.get('p', 'r'))?.value).toEqual({ name: 'a', count: 1 });
    await expect(things.create('p', 'r', { name: 'b', count: 2 })).rejects.toSatisfy((e) =>
      isAppError(e, 'AlreadyExists'),
    );
    expect((await things.get('p', 'r'))?.value.name).toBe('a');
  });

  it('turns a lost update into ConcurrencyConflict and keeps the winner', async () => {
    const things = collection();
    const first = await things.create('p', 'r', { name: 'v1', count: 1 });
    const winner = await things.replace('p', 'r', { name: 'v2', count: 2 }, first.etag);
    await expect(things.replace('p', 'r', { name: 'stale', count: 3 }, first.etag)).rejects.toSatisfy((e) =>
      isAppError(e, 'ConcurrencyConflict'),
    );
    const now = await things.get('p', 'r');
    expect(now?.value.name).toBe('v2');
    expect(now?.etag).toBe(winner.etag);
  });

  it('deletes only the version seen when given an etag', async () => {
    const things = collection();
    const v1 = await things.create('p', 'r', { name: 'v1', count: 1 });
    await things.replace('p', 'r', { name: 'v2', count: 2 }, v1.etag);
    await expect(things.delete('p', 'r', v1.etag)).rejects.toSatisfy((e) =>
      isAppError(e, 'ConcurrencyConflict'),
    );
    await things.delete('p', 'r');
    expect(await things.get('p', 'r')).toBeUndefined();
    await things.delete('p', 'r'); // deleting a missing row is not an error
  });

  it('stores keys with characters Table storage forbids, and lists them by prefix', async () => {
    const things = collection();
    const keys = ['cust/1#a', 'cust/1?b', 'cust/1\\c', 'cust/2', 'other\u0001'];
    for (const [i, key] of keys.entries()) await things.create('provider/x', key, { name: key, count: i });
    const all: string[] = [];
    for await (const item of things.list('provider/x', { rowKeyPrefix: 'cust/1', pageSize: 2 }))
      all.push(item.rowKey);
    expect(all.sort()).toEqual(['cust/1#a', 'cust/1?b', 'cust/1\\c'].sort());
    expect((await things.get('provider/x', 'other\u0001'))?.value.count).toBe(4);
  });

  it('pages with continuation tokens', async () => {
    const things = collection();
    for (let i = 0; i < 7; i++) await things.create('p', `k${i}`, { name: 'n', count: i });
    const first = await things.listPage('p', { pageSize: 3 });
    expect(first.items).toHaveLength(3);
    expect(first.continuationToken).toBeDefined();
    const rest: number[] = [];
    for await (const item of things.list('p', { pageSize: 3 })) rest.push(item.value.count);
    expect(rest.sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('keeps values larger than one 64 KiB property', async () => {
    const big = store.collection(`big${randomUUID().slice(0, 8)}`, z.object({ text: z.string() }));
    const text = 'x'.repeat(150_000);
    await big.create('p', 'r', { text });
    expect((await big.get('p', 'r'))?.value.text).toHaveLength(150_000);
  });

  it('refuses to write a value that breaks the schema and reports a stored row that does', async () => {
    const name = `s${randomUUID().replace(/-/g, '').slice(0, 10)}`;
    const things = store.collection(name, thing);
    await expect(things.create('p', 'bad', { name: 'x', count: 1.5 })).rejects.toSatisfy((e) =>
      isAppError(e, 'Validation'),
    );
    await things.create('p', 'r', { name: 'ok', count: 1 });
    // Someone writes a row of another shape behind our back.
    const raw = TableClient.fromConnectionString(connectionString, `atria${name}`, {
      allowInsecureConnection: true,
    });
    await raw.upsertEntity({ partitionKey: 'p', rowKey: 'r', d0: JSON.stringify({ name: 1 }) }, 'Replace');
    await expect(things.get('p', 'r')).rejects.toSatisfy((e) => isAppError(e, 'Internal'));
  });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});
