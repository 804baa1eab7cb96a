import { ResultCodeError } from 'ldapts';
import { AppError } from '../../shared/errors.js';

/**
 * LDAP outcomes → AppError codes. AD puts a Win32 code in the diagnostic message (`0000052D` = password
 * does not meet policy), which decides between PasswordPolicy and other constraint violations.
 */
export function isConnectionError(error: unknown): boolean {
  // Work that maps its own errors (createUser tells AlreadyExists apart) keeps the LDAP error as the
  // cause: a lost connection under it must still make the pool reconnect, or it never recovers.
  if (error instanceof AppError && error.cause !== undefined) return isConnectionError(error.cause);
  if (error instanceof ResultCodeError)
    return error.code === 51 || error.code === 52 || error.code === 81 || lostBind(error);
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && /^(E[A-Z]+|ERR_SSL|ERR_TLS)/.test(code)) return true;
  return /connection|socket|timed? ?out|ECONN|EPIPE|EHOSTUNREACH/i.test(error.message);
}

/**
 * ldapts reconnects a dropped socket by itself, unbound: after a DC restart the pooled client's next
 * request runs anonymously and AD answers operationsError 00002020 ("Operation unavailable without
 * authentication"). That is a lost connection (rebind and retry), not a refusal of the request.
 */
function lostBind(error: ResultCodeError): boolean {
  return error.code === 1 && /\b00002020\b|without authentication/i.test(error.message);
}

export function ldapToAppError(error: unknown, context: string): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof ResultCodeError) {
    const message = `${context}: ${error.message}`;
    if (lostBind(error)) return new AppError('Unavailable', message, { cause: error, retryable: true });
    if (/\b0000052D\b/i.test(error.message)) return new AppError('PasswordPolicy', message, { cause: error });
    switch (error.code) {
      case 68:
      case 20:
        return new AppError('AlreadyExists', message, { cause: error });
      case 49:
        return new AppError('InvalidCredentials', message, { cause: error, retryable: false });
      case 32:
        return new AppError('NotFound', message, { cause: error });
      case 50:
        return new AppError('Forbidden', message, { cause: error });
      case 51:
      case 52:
      case 81:
        return new AppError('Unavailable', message, { cause: error, retryable: true });
      case 3:
        return new AppError('Timeout', message, { cause: error, retryable: true });
      case 19:
        // Duplicate userPrincipalName and similar uniqueness rules surface as constraint violations.
        return /unique|already|in use/i.test(error.message)
          ? new AppError('AlreadyExists', message, { cause: error })
          : new AppError('Validation', message, { cause: error, retryable: false });
      case 16:
      case 17:
      case 21:
      case 34:
      case 53:
      case 64:
      case 65:
      case 67:
        return new AppError('Validation', message, { cause: error, retryable: false });
      default:
        return new AppError('Upstream', message, { cause: error, retryable: false });
    }
  }
  if (isConnectionError(error)) {
    const text = error instanceof Error ? error.message : String(error);
    return new AppError('Unavailable', `${context}: ${text}`, { cause: error, retryable: true });
  }
  const text = error instanceof Error ? error.message : String(error);
  return new AppError('Internal', `${context}: ${text}`, { cause: error, retryable: false });
}
