import { maxRetryAfterInSeconds, parseRetryAfter } from '../../retry.js';
import { deferredRetryAfter } from './budget.js';
import { GraphError } from '@microsoft/microsoft-graph-client';
import { AppError, type ErrorCode } from '../../errors.js';
import { graphErrorBodySchema } from './schemas.js';

/** A failed Graph call reduced to what the mapping needs (from a GraphError or a $batch item). */
export interface GraphFailure {
  status: number;
  code: string;
  message: string;
  requestId: string | undefined;
  retryAfterInSeconds: number | undefined;
}

// Graph's Retry-After is parsed by the one parser of all our upstreams (shared/retry.ts).
export { maxRetryAfterInSeconds, parseRetryAfter };

export function failureFromBatchItem(
  status: number,
  headers: Record<string, string>,
  body: unknown,
): GraphFailure {
  const parsed = graphErrorBodySchema.safeParse(body);
  const retryAfter = Object.entries(headers).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
  const innerRequestId = parsed.success ? parsed.data.error.innerError?.['request-id'] : undefined;
  return {
    status,
    code: parsed.success ? parsed.data.error.code : String(status),
    message: parsed.success ? parsed.data.error.message : '',
    requestId: typeof innerRequestId === 'string' ? innerRequestId : undefined,
    retryAfterInSeconds: parseRetryAfter(retryAfter),
  };
}

/** Entra answers many distinct failures with 400 Request_BadRequest; the message tells them apart. */
function codeFor(failure: GraphFailure): ErrorCode {
  const { status, code, message } = failure;
  const text = message.toLowerCase();
  if (status === 429) return 'Throttled';
  if (
    status === 410 ||
    code === 'syncStateNotFound' ||
    code === 'resyncRequired' ||
    code === 'syncStateInvalid'
  )
    return 'SyncStateExpired';
  if (status === 401) return 'Unauthenticated';
  if (status === 403) return 'Forbidden';
  if (status === 404) return 'NotFound';
  if (status >= 500 || status === 0 || status === -1) return 'Unavailable';
  if (text.includes('invalid usage location')) return 'UsageLocationRequired';
  if (text.includes('does not have any available licenses')) return 'LicenceUnavailable';
  if (
    text.includes('another object with the same value for property') ||
    text.includes('object references already exist')
  ) {
    return 'AlreadyExists';
  }
  if (text.includes('password complexity')) return 'PasswordPolicy';
  if (status === 409)
    return code === 'Request_MultipleObjectsWithSameKeyValue' ? 'AlreadyExists' : 'Conflict';
  if (status === 412) return 'PreconditionFailed';
  if (status === 424) return 'Upstream';
  return 'Validation';
}

export function appErrorFromFailure(failure: GraphFailure, operation: string, cause?: unknown): AppError {
  const code = codeFor(failure);
  return new AppError(
    code,
    `${operation}: ${failure.message || failure.code} (Graph ${failure.status} ${failure.code})`,
    {
      ...(failure.retryAfterInSeconds === undefined
        ? {}
        : { retryAfterInSeconds: failure.retryAfterInSeconds }),
      details: {
        graphStatus: failure.status,
        graphCode: failure.code,
        ...(failure.requestId === undefined ? {} : { requestId: failure.requestId }),
      },
      cause,
    },
  );
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

const credentialErrorNames = new Set([
  'AuthenticationRequiredError',
  'CredentialUnavailableError',
  'AuthenticationError',
]);

/** Maps anything the Graph client threw to an AppError. */
export function mapGraphError(error: unknown, operation: string): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof Error && credentialErrorNames.has(error.name)) {
    // The app's credential was refused (wrong secret, no consent in this tenant): retrying will not help.
    return new AppError(
      'InvalidCredentials',
      `${operation}: token request refused: ${error.message.split('\n')[0] ?? ''}`,
      { cause: error },
    );
  }
  if (error instanceof GraphError) {
    // The SDK wraps errors thrown before any HTTP answer (e.g. by the credential) as statusCode -1 with
    // the original error's name as code.
    if (error.statusCode === -1 && error.code !== null && credentialErrorNames.has(error.code)) {
      return new AppError(
        'InvalidCredentials',
        `${operation}: token request refused: ${firstLine(error.message)}`,
        { cause: error },
      );
    }
    if (error.statusCode === -1 && error.code === 'GraphBudgetDeferred') {
      // Our own budget said "not now" (budget.ts): the engine re-schedules instead of a worker waiting.
      return new AppError('Throttled', `${operation}: ${error.message}`, {
        retryable: true,
        retryAfterInSeconds: deferredRetryAfter(error.message) ?? 1,
        // Pacing, not failure: the engine re-schedules at the Retry-After without escalating its backoff.
        details: { pacing: true },
        cause: error,
      });
    }
    if (error.statusCode === -1) {
      return new AppError('Unavailable', `${operation}: ${error.message}`, { cause: error });
    }
    return appErrorFromFailure(
      {
        status: error.statusCode,
        code: error.code ?? String(error.statusCode),
        message: error.message,
        requestId: error.requestId ?? undefined,
        retryAfterInSeconds: parseRetryAfter(error.headers?.get('Retry-After')),
      },
      operation,
      error,
    );
  }
  if (error instanceof TypeError) {
    // fetch reports connection failures as TypeError("fetch failed").
    return new AppError('Unavailable', `${operation}: ${error.message}`, { cause: error });
  }
  return new AppError('Internal', `${operation}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}
