/**
 * The one error hierarchy of atria-m365. Adapters map outside failures (Graph, Partner Center, LDAP,
 * Service Bus, Table storage) to these; use cases and functions branch on `code` and `retryable`, never
 * on messages. `status` is the HTTP status a caller of our API should see.
 */
export type ErrorCode =
  | 'Validation'
  | 'PayloadTooLarge'
  | 'MethodNotAllowed'
  | 'Unauthenticated'
  | 'Forbidden'
  | 'NotFound'
  | 'Conflict'
  | 'AlreadyExists'
  | 'ConcurrencyConflict'
  | 'PreconditionFailed'
  | 'Throttled'
  | 'Unavailable'
  | 'Timeout'
  | 'LicenceUnavailable'
  | 'UsageLocationRequired'
  | 'PasswordPolicy'
  | 'InvalidCredentials'
  | 'ReductionWindowClosed'
  | 'CancellationWindowClosed'
  | 'AgreementMissing'
  | 'SyncStateExpired'
  | 'HeldForConfirmation'
  | 'OutOfScope'
  | 'BadSignature'
  | 'Replayed'
  | 'Expired'
  | 'Upstream'
  | 'Internal';

const defaultStatus: Record<ErrorCode, number> = {
  Validation: 400,
  PayloadTooLarge: 413,
  MethodNotAllowed: 405,
  Unauthenticated: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  AlreadyExists: 409,
  ConcurrencyConflict: 409,
  PreconditionFailed: 412,
  Throttled: 429,
  Unavailable: 503,
  Timeout: 504,
  LicenceUnavailable: 409,
  UsageLocationRequired: 422,
  PasswordPolicy: 422,
  InvalidCredentials: 502,
  ReductionWindowClosed: 409,
  CancellationWindowClosed: 409,
  AgreementMissing: 409,
  SyncStateExpired: 410,
  HeldForConfirmation: 409,
  OutOfScope: 403,
  BadSignature: 401,
  Replayed: 409,
  Expired: 401,
  Upstream: 502,
  Internal: 500,
};

const retryableByDefault = new Set<ErrorCode>(['Throttled', 'Unavailable', 'Timeout']);

export interface AppErrorOptions {
  retryable?: boolean;
  /** Seconds the caller should wait before retrying, when the outside system said so. */
  retryAfterInSeconds?: number;
  /** Machine-readable details safe to show a caller (never secrets). */
  details?: Record<string, unknown>;
  cause?: unknown;
  status?: number;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterInSeconds: number | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? retryableByDefault.has(code);
    this.retryAfterInSeconds = options.retryAfterInSeconds;
    this.details = options.details;
    this.status = options.status ?? defaultStatus[code];
  }
}

export function isAppError(error: unknown, code?: ErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}

/** Anything thrown becomes an AppError; unknown failures are Internal and not retryable. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new AppError('Internal', message, { cause: error });
}

/**
 * A queue message that can never be processed (bad JSON, fails its schema, unknown version). Queue
 * triggers dead-letter it at once with this reason instead of retrying it up to MaxDeliveryCount.
 */
export class InvalidMessageError extends AppError {
  readonly deadLetterReason: string;
  constructor(reason: string, description: string, details?: Record<string, unknown>) {
    super('Validation', description, { retryable: false, ...(details === undefined ? {} : { details }) });
    this.name = 'InvalidMessageError';
    this.deadLetterReason = reason;
  }
}
