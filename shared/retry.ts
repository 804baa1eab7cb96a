import type { AppError } from './errors.js';
import { toAppError } from './errors.js';

/**
 * The one retry helper for code of our own (e.g. Partner Center over fetch). SDK clients keep their own
 * pipelines (Graph RetryHandler, Azure SDK retry policies). Retries only errors marked retryable, waits
 * what the server asked (`retryAfterInSeconds`) or an exponential backoff with full jitter.
 */
export interface RetryOptions {
  maxAttempts?: number;
  baseDelayInMs?: number;
  maxDelayInMs?: number;
  /** Upper bound for a server-requested wait; beyond it we give up rather than block a worker. */
  maxRetryAfterInMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  onRetry?: (error: AppError, attempt: number, delayInMs: number) => void;
  abortSignal?: AbortSignal;
}

/**
 * A server's Retry-After: seconds or an HTTP date (RFC 9110 §10.2.3), for Graph, Partner Center and Pax8
 * alike. A value beyond an hour is not a wait anyone should schedule (1e20 s would make an invalid Date
 * downstream): it is held to an hour, and the operation's deadline decides from there.
 */
export const maxRetryAfterInSeconds = 3600;

export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.min(maxRetryAfterInSeconds, Math.max(0, seconds));
  const date = Date.parse(value);
  return Number.isNaN(date)
    ? undefined
    : Math.min(maxRetryAfterInSeconds, Math.max(0, Math.ceil((date - Date.now()) / 1000)));
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function retryDelayInMs(error: AppError, attempt: number, options: RetryOptions = {}): number {
  const base = options.baseDelayInMs ?? 200;
  const max = options.maxDelayInMs ?? 10_000;
  if (error.retryAfterInSeconds !== undefined) return Math.max(0, error.retryAfterInSeconds * 1000);
  const random = options.random ?? Math.random;
  return Math.round(random() * Math.min(max, base * 2 ** (attempt - 1)));
}

export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 4;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (thrown) {
      const error = toAppError(thrown);
      if (!error.retryable || attempt >= maxAttempts || options.abortSignal?.aborted === true) throw error;
      const delay = retryDelayInMs(error, attempt, options);
      if (delay > (options.maxRetryAfterInMs ?? 60_000)) throw error;
      options.onRetry?.(error, attempt, delay);
      await sleep(delay);
    }
  }
}
