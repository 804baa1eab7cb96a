import { AppError } from '../../shared/errors.js';
import type { Collection, Store } from '../../shared/ports/store.js';

/**
 * A Store that can "kill the worker" between two writes: armed with `crashAt(n)`, the n-th write from
 * now throws, either before the write lands or after it landed and before the caller saw the answer.
 * The handler is aborted there; the message is redelivered or a sweeper resumes the work once its lease
 * expires. A dead process runs no catch block at all; in-process, the nearest faithful thing is an error
 * the code treats as "our storage failed, try again later" (retryable Unavailable), so no handler
 * records the kill as a permanent failure of its own.
 */
export class WorkerKilled extends AppError {
  constructor(readonly when: 'before' | 'after') {
    super('Unavailable', `chaos: worker killed ${when} a write`, { retryable: true });
    this.name = 'WorkerKilled';
  }
}

export interface CrashStore extends Store {
  crashAt(write: number, when: 'before' | 'after'): void;
  /** Crashes that happened (an armed crash counts once it fired). */
  readonly crashes: number;
  disarm(): void;
}

export function crashingStore(inner: Store): CrashStore {
  let countdown: number | undefined;
  let mode: 'before' | 'after' = 'before';
  let crashes = 0;
  const write = async <R>(run: () => Promise<R>): Promise<R> => {
    if (countdown !== undefined) {
      countdown -= 1;
      if (countdown <= 0) {
        countdown = undefined;
        crashes += 1;
        if (mode === 'before') throw new WorkerKilled('before');
        await run();
        throw new WorkerKilled('after');
      }
    }
    return run();
  };
  return {
    get crashes() {
      return crashes;
    },
    crashAt(n, when) {
      countdown = n;
      mode = when;
    },
    disarm() {
      countdown = undefined;
    },
    ping: () => inner.ping(),
    collection<T>(name: string, schema: Parameters<Store['collection']>[1]): Collection<T> {
      const c = inner.collection<T>(name, schema as never);
      return {
        get: (pk, rk) => c.get(pk, rk),
        listPage: (pk, options) => c.listPage(pk, options),
        list: (pk, options) => c.list(pk, options),
        create: (pk, rk, value) => write(() => c.create(pk, rk, value)),
        replace: (pk, rk, value, etag) => write(() => c.replace(pk, rk, value, etag)),
        upsert: (pk, rk, value) => write(() => c.upsert(pk, rk, value)),
        delete: (pk, rk, etag) => write(() => c.delete(pk, rk, etag)),
      };
    },
  };
}
