import { Client } from 'ldapts';
import { AppError } from '../../shared/errors.js';
import { isConnectionError, ldapToAppError } from './errors.js';

export interface DcPoolOptions {
  /** DC URLs in failover order (ldaps://… or ldap:// + StartTLS is not used: LDAPS only). */
  urls: readonly string[];
  bindDn: string;
  password: string;
  /** PEM of the CA that issued the DCs' certificates; system CAs when absent. */
  ca?: Buffer;
  connectTimeoutInMs?: number;
  operationTimeoutInMs?: number;
  onFailover?: (from: string, to: string, error: unknown) => void;
}

interface Bound {
  client: Client;
  url: string;
  namingContext: string;
}

/**
 * One bound LDAPS connection to the first DC that answers, in the configured order. A connection-class
 * failure (refused, reset, timeout, busy/unavailable) drops the connection and re-runs the work on the next
 * DC; the work must be idempotent (every executor step is). Other LDAP errors are the caller's.
 */
export class DcPool {
  private current: Promise<Bound> | undefined;
  private index = 0;
  private closed = false;

  constructor(private readonly options: DcPoolOptions) {
    if (options.urls.length === 0)
      throw new AppError('Validation', 'no DC URL configured', { retryable: false });
  }

  private async connect(url: string): Promise<Bound> {
    const client = new Client({
      url,
      connectTimeout: this.options.connectTimeoutInMs ?? 3000,
      timeout: this.options.operationTimeoutInMs ?? 15_000,
      tlsOptions: {
        ...(this.options.ca === undefined ? {} : { ca: [this.options.ca] }),
        minVersion: 'TLSv1.2',
      },
    });
    try {
      await client.bind(this.options.bindDn, this.options.password);
      const { searchEntries } = await client.search('', {
        scope: 'base',
        attributes: ['defaultNamingContext'],
      });
      const namingContext = searchEntries[0]?.['defaultNamingContext'];
      if (typeof namingContext !== 'string')
        throw new AppError('Upstream', `${url} has no defaultNamingContext`);
      return { client, url, namingContext };
    } catch (error) {
      await client.unbind().catch(() => undefined);
      throw error;
    }
  }

  private acquire(): Promise<Bound> {
    if (this.closed) return Promise.reject(new AppError('Unavailable', 'directory connection closed'));
    if (this.current === undefined) {
      const url = this.options.urls[this.index % this.options.urls.length] ?? '';
      const pending = this.connect(url);
      this.current = pending;
      // run() settles failures through drop(); this only keeps an unobserved rejection quiet.
      pending.catch(() => undefined);
    }
    return this.current;
  }

  /** Forgets a failed connection; moves to the next DC when the DC itself is the problem. */
  private drop(failed: Promise<Bound>, error: unknown, nextDc: boolean): void {
    if (this.current !== failed) return; // another caller already moved on
    this.current = undefined;
    if (!nextDc) return;
    const from = this.options.urls[this.index % this.options.urls.length] ?? '';
    this.index++;
    const to = this.options.urls[this.index % this.options.urls.length] ?? '';
    void failed.then((bound) => bound.client.unbind().catch(() => undefined)).catch(() => undefined);
    this.options.onFailover?.(from, to, error);
  }

  /** Runs `work` on a bound connection, failing over across DCs on connection errors. */
  async run<T>(work: (client: Client, namingContext: string) => Promise<T>): Promise<T> {
    let lastError: unknown;
    // Each DC once, plus one more try on the first (it may have just come back).
    for (let attempt = 0; attempt <= this.options.urls.length; attempt++) {
      const pending = this.acquire();
      let bound: Bound;
      try {
        bound = await pending;
      } catch (error) {
        const dcDown = isConnectionError(error);
        this.drop(pending, error, dcDown);
        if (!dcDown) throw error instanceof AppError ? error : ldapToAppError(error, 'ldap bind');
        lastError = error;
        continue;
      }
      try {
        return await work(bound.client, bound.namingContext);
      } catch (error) {
        if (!isConnectionError(error))
          throw error instanceof AppError ? error : ldapToAppError(error, 'ldap');
        lastError = error;
        this.drop(pending, error, true);
      }
    }
    throw ldapToAppError(lastError, `no domain controller reachable (${this.options.urls.join(', ')})`);
  }

  /** DCs that accept a bind right now (for heartbeats). */
  async probe(): Promise<string[]> {
    const results = await Promise.all(
      this.options.urls.map(async (url) => {
        try {
          const bound = await this.connect(url);
          await bound.client.unbind().catch(() => undefined);
          return url;
        } catch {
          return undefined;
        }
      }),
    );
    return results.filter((url): url is string => url !== undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const current = this.current;
    this.current = undefined;
    if (current !== undefined) await current.then((bound) => bound.client.unbind()).catch(() => undefined);
  }
}
