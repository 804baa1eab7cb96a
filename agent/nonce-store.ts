import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from '../shared/ports/clock.js';

/** Nonces of answered commands until they expire. */
export interface NonceStore {
  has(nonce: string): boolean;
  add(nonce: string, keepUntilMs: number): void;
}

/**
 * In memory, optionally journaled to a file so a restarted agent still refuses replays. The journal is an
 * append-only `nonce expiryMs` line log, compacted at start (expired lines dropped).
 */
export class FileNonceStore implements NonceStore {
  private readonly nonces = new Map<string, number>();
  private added = 0;

  constructor(
    private readonly clock: Clock,
    private readonly file?: string,
  ) {
    if (file === undefined) return;
    mkdirSync(dirname(file), { recursive: true });
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const [nonce, until] = line.split(' ');
        const expiry = Number(until);
        if (nonce !== undefined && nonce !== '' && Number.isFinite(expiry)) this.nonces.set(nonce, expiry);
      }
    }
    this.compact();
  }

  has(nonce: string): boolean {
    const until = this.nonces.get(nonce);
    if (until === undefined) return false;
    if (until <= this.clock.now().getTime()) {
      this.nonces.delete(nonce);
      return false;
    }
    return true;
  }

  add(nonce: string, keepUntilMs: number): void {
    this.nonces.set(nonce, keepUntilMs);
    if (this.file !== undefined) appendFileSync(this.file, `${nonce} ${keepUntilMs}\n`);
    if (++this.added % 1000 === 0) this.compact();
  }

  private compact(): void {
    const now = this.clock.now().getTime();
    for (const [nonce, until] of this.nonces) if (until <= now) this.nonces.delete(nonce);
    if (this.file !== undefined) {
      writeFileSync(this.file, [...this.nonces].map(([nonce, until]) => `${nonce} ${until}\n`).join(''));
    }
  }
}
