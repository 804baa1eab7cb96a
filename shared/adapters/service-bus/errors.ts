import { isServiceBusError } from '@azure/service-bus';
import { AppError } from '../../errors.js';

function retryAfter(error: AppError): { retryAfterInSeconds?: number } {
  return error.retryAfterInSeconds === undefined ? {} : { retryAfterInSeconds: error.retryAfterInSeconds };
}

/**
 * Service Bus SDK failures → AppError. Codes branch on `ServiceBusError.code` (stable across SDK
 * versions), never on messages. Transient codes are retryable: queue work rethrows them so the message
 * is redelivered; HTTP callers get 503.
 */
export function toBusError(error: unknown, what: string): AppError {
  if (error instanceof AppError) return error;
  // After its retries the SDK throws an AggregateError of every attempt's error; the last one decides.
  if (error instanceof AggregateError && error.errors.length > 0) {
    const last: unknown = error.errors[error.errors.length - 1];
    const mapped = toBusError(last, what);
    return new AppError(mapped.code, mapped.message, {
      cause: error,
      retryable: mapped.retryable,
      ...retryAfter(mapped),
    });
  }
  if (isServiceBusError(error)) {
    const message = `${what}: ${error.message}`;
    switch (error.code) {
      case 'ServiceBusy':
        return new AppError('Unavailable', message, {
          cause: error,
          retryable: true,
          retryAfterInSeconds: 10,
        });
      case 'ServiceTimeout':
      case 'ServiceCommunicationProblem':
      case 'GeneralError':
        return new AppError('Unavailable', message, { cause: error, retryable: true });
      case 'QuotaExceeded':
        return new AppError('Throttled', message, { cause: error, retryable: true });
      case 'UnauthorizedAccess':
        return new AppError('Forbidden', message, { cause: error, retryable: false });
      case 'MessagingEntityNotFound':
        return new AppError('NotFound', message, { cause: error, retryable: false });
      case 'MessageSizeExceeded':
        return new AppError('Validation', message, { cause: error, retryable: false });
      case 'MessageLockLost':
      case 'SessionLockLost':
        return new AppError('Conflict', message, { cause: error, retryable: false });
      default:
        return new AppError(error.retryable ? 'Unavailable' : 'Upstream', message, {
          cause: error,
          retryable: error.retryable,
        });
    }
  }
  if (error instanceof Error && error.name === 'AbortError')
    return new AppError('Timeout', `${what}: aborted`, { cause: error });
  return new AppError('Internal', `${what}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}
