import { describe, expect, it } from 'vitest';
import { recentReads } from '../../../shared/ports/recent-reads.js';
import type { Versioned } from '../../../shared/ports/store.js';

function table(rows: Record<string, string>) {
  const calls: string[] = [];
  let fail = false;
  return {
    calls,
    failNext: () => (fail = true),
    get(pk: string, rk: string): Promise<Versioned<string> | undefined> {
      calls.push(rk);
      if (fail) {
        fail = false;
        return Promise.reject(new Error('storage down'));
      }
      const value = rows[rk];
      return Promise.resolve(
        value === undefined ? undefined : { partitionKey: pk, rowKey: rk, value, etag: `e-${calls.length}` },
      );
    },
  };
}

describe('recentReads', () => {
  it('reads a row once per ttl, shares a read in flight, and reads again after the ttl', async () => {
    let t = 0;
    const inner = table({ a: 'A' });
    const reads = recentReads(inner, { ttlInMs: 1000, now: () => t });
    const [x, y] = await Promise.all([reads.get('p', 'a'), reads.get('p', 'a')]);
    expect(x?.value).toBe('A');
    expect(y?.value).toBe('A');
    t = 999;
    await reads.get('p', 'a');
    expect(inner.calls).toEqual(['a']);
    t = 1000;
    await reads.get('p', 'a');
    expect(inner.calls).toEqual(['a', 'a']);
  });

  it('serves a remembered read only to a reader whose moment it began after (freshAfter)', async () => {
    let t = 100;
    const rows: Record<string, string> = { a: 'old' };
    const inner = table(rows);
    const reads = recentReads(inner, { ttlInMs: 1000, now: () => t });
    expect((await reads.get('p', 'a'))?.value).toBe('old');
    // The row changes, then an operation is accepted at 150: it must not get the read from 100.
    rows.a = 'new';
    t = 200;
    expect((await reads.get('p', 'a', { freshAfter: 150 }))?.value).toBe('new');
    // That read began at 200: readers from before then (or none) share it.
    expect((await reads.get('p', 'a', { freshAfter: 199 }))?.value).toBe('new');
    expect((await reads.get('p', 'a'))?.value).toBe('new');
    // The same moment is not after it.
    expect((await reads.get('p', 'a', { freshAfter: 200 }))?.value).toBe('new');
    expect(inner.calls).toEqual(['a', 'a', 'a']);
  });

  it('remembers neither a missing row nor a failed read, and forgets on request', async () => {
    const inner = table({ a: 'A' });
    const reads = recentReads(inner, { ttlInMs: 60_000, now: () => 0 });
    expect(await reads.get('p', 'missing')).toBeUndefined();
    expect(await reads.get('p', 'missing')).toBeUndefined();
    inner.failNext();
    await expect(reads.get('p', 'a')).rejects.toThrow('storage down');
    expect((await reads.get('p', 'a'))?.value).toBe('A');
    reads.forget('p', 'a');
    await reads.get('p', 'a');
    expect(inner.calls).toEqual(['missing', 'missing', 'a', 'a', 'a']);
  });

  it('keeps at most maxRows rows, dropping the oldest', async () => {
    const inner = table({ a: 'A', b: 'B', c: 'C' });
    const reads = recentReads(inner, { ttlInMs: 60_000, maxRows: 2, now: () => 0 });
    await reads.get('p', 'a');
    await reads.get('p', 'b');
    await reads.get('p', 'c');
    await reads.get('p', 'c');
    await reads.get('p', 'b');
    await reads.get('p', 'a');
    expect(inner.calls).toEqual(['a', 'b', 'c', 'a']);
  });

  it('with a ttl of 0 reads every time', async () => {
    const inner = table({ a: 'A' });
    const reads = recentReads(inner, { ttlInMs: 0 });
    await reads.get('p', 'a');
    await reads.get('p', 'a');
    expect(inner.calls).toEqual(['a', 'a']);
  });
});
