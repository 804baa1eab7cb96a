import { describe, expect, it } from 'vitest';
import { GraphError } from '@microsoft/microsoft-graph-client';
import {
  appErrorFromFailure,
  failureFromBatchItem,
  mapGraphError,
} from '../../../shared/adapters/graph/errors.js';

function graphError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): GraphError {
  const error = new GraphError(status, message);
  error.code = code;
  error.requestId = 'rid-1';
  error.headers = new Headers(headers);
  return error;
}

describe('Graph error mapping', () => {
  it.each([
    [
      400,
      'Request_BadRequest',
      'License assignment cannot be done for user with invalid usage location.',
      'UsageLocationRequired',
    ],
    [
      400,
      'Request_BadRequest',
      'Subscription with SKU 6fd2c87f does not have any available licenses.',
      'LicenceUnavailable',
    ],
    [
      400,
      'Request_BadRequest',
      'Another object with the same value for property userPrincipalName already exists.',
      'AlreadyExists',
    ],
    [
      400,
      'Request_BadRequest',
      'Another object with the same value for property onPremisesImmutableId already exists.',
      'AlreadyExists',
    ],
    [
      400,
      'Request_BadRequest',
      "One or more added object references already exist for the following modified properties: 'members'.",
      'AlreadyExists',
    ],
    [
      400,
      'Request_BadRequest',
      'The specified password does not comply with password complexity requirements.',
      'PasswordPolicy',
    ],
    [
      400,
      'Request_BadRequest',
      "Invalid value specified for property 'displayName' of resource 'User'.",
      'Validation',
    ],
    [409, 'Request_MultipleObjectsWithSameKeyValue', 'exists', 'AlreadyExists'],
    [404, 'Request_ResourceNotFound', "Resource 'x' does not exist", 'NotFound'],
    [410, 'syncStateNotFound', 'expired', 'SyncStateExpired'],
    [400, 'resyncRequired', 'resync', 'SyncStateExpired'],
    [401, 'InvalidAuthenticationToken', 'expired', 'Unauthenticated'],
    [403, 'Authorization_RequestDenied', 'Insufficient privileges', 'Forbidden'],
    [503, 'serviceNotAvailable', 'down', 'Unavailable'],
    [504, 'gatewayTimeout', 'slow', 'Unavailable'],
  ])('%i %s "%s" → %s', (status, code, message, expected) => {
    const error = mapGraphError(graphError(status, code, message), 'op');
    expect(error.code).toBe(expected);
    expect(error.details).toMatchObject({ graphStatus: status, graphCode: code, requestId: 'rid-1' });
  });

  it('keeps Retry-After on 429 as a retryable Throttled error', () => {
    const error = mapGraphError(
      graphError(429, 'TooManyRequests', 'Please retry again later.', { 'Retry-After': '7' }),
      'list users',
    );
    expect(error).toMatchObject({ code: 'Throttled', retryable: true, retryAfterInSeconds: 7 });
    expect(error.message).toContain('list users');
  });

  it('reads a $batch item failure like a direct one', () => {
    const failure = failureFromBatchItem(
      429,
      { 'retry-after': '3' },
      {
        error: {
          code: 'TooManyRequests',
          message: 'Please retry again later.',
          innerError: { 'request-id': 'r2' },
        },
      },
    );
    expect(failure).toEqual({
      status: 429,
      code: 'TooManyRequests',
      message: 'Please retry again later.',
      requestId: 'r2',
      retryAfterInSeconds: 3,
    });
    expect(
      appErrorFromFailure(
        failureFromBatchItem(424, {}, { error: { code: 'FailedDependency', message: 'x' } }),
        'op',
      ).code,
    ).toBe('Upstream');
  });

  it('treats refused credentials as InvalidCredentials and network failures as Unavailable', () => {
    const refused = new Error('invalid_client: AADSTS7000215');
    refused.name = 'AuthenticationRequiredError';
    expect(mapGraphError(refused, 'op')).toMatchObject({ code: 'InvalidCredentials', retryable: false });
    expect(mapGraphError(new TypeError('fetch failed'), 'op')).toMatchObject({
      code: 'Unavailable',
      retryable: true,
    });
  });

  it('maps the SDK-wrapped credential error (statusCode -1, code = error name) to InvalidCredentials', () => {
    const wrapped = new GraphError(-1, 'invalid_client: AADSTS7000215: Invalid client secret provided.');
    wrapped.code = 'AuthenticationRequiredError';
    expect(mapGraphError(wrapped, 'op')).toMatchObject({ code: 'InvalidCredentials', retryable: false });
    expect(mapGraphError(new GraphError(-1, 'socket hang up'), 'op')).toMatchObject({ code: 'Unavailable' });
  });
});
