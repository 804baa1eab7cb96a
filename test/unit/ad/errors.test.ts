import { OperationsError, UnwillingToPerformError } from 'ldapts';
import { describe, expect, it } from 'vitest';
import { isConnectionError, ldapToAppError } from '../../../agent/ldap/errors.js';

describe('LDAP errors after a DC restart', () => {
  it('treats "operation unavailable without authentication" as a lost connection to rebind and retry', () => {
    // What Samba answered the pooled client once it had silently reconnected, unbound, after a restart.
    const error = new OperationsError('00002020: Operation unavailable without authentication Code: 0x1');
    expect(isConnectionError(error)).toBe(true);
    expect(ldapToAppError(error, 'createUser')).toMatchObject({ code: 'Unavailable', retryable: true });
  });

  it('keeps other operations errors and refusals final', () => {
    expect(isConnectionError(new OperationsError('00000000: something else'))).toBe(false);
    expect(ldapToAppError(new UnwillingToPerformError('0000052D: no'), 'x').retryable).toBe(false);
  });
});
