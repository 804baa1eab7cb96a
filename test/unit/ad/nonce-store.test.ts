import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileNonceStore } from '../../../agent/nonce-store.js';

describe('the replay journal', () => {
  it('survives a restart and forgets nonces once their commands expired', () => {
    let now = 1_000_000;
    const clock = { now: () => new Date(now) };
    const file = join(mkdtempSync(join(tmpdir(), 'nonces-')), 'answered-nonces.log');
    const first = new FileNonceStore(clock, file);
    first.add('short-lived', now + 1000);
    first.add('long-lived', now + 60_000);
    const restarted = new FileNonceStore(clock, file);
    expect(restarted.has('short-lived')).toBe(true);
    expect(restarted.has('long-lived')).toBe(true);
    expect(restarted.has('never-seen')).toBe(false);
    now += 5000;
    const later = new FileNonceStore(clock, file); // compacts on start
    expect(later.has('short-lived')).toBe(false);
    expect(later.has('long-lived')).toBe(true);
    expect(readFileSync(file, 'utf8')).not.toContain('short-lived');
  });
});
