import { describe, expect, it } from 'vitest';
import { mapPartnerCenterError } from '../../../shared/adapters/partner-center/client.js';
import { mapPax8Error } from '../../../shared/adapters/distributor/pax8.js';
import { pax8Date } from '../../../shared/adapters/distributor/schemas.js';

const envelope = (status: number, type: string, message: string) => ({
  type,
  message,
  instance: '/v1/subscriptions',
  status,
  details: [],
});

describe('Pax8 answers → AppError (https://devx.pax8.com/docs/errors)', () => {
  it('maps 403 "Invalid companyId" to NotFound and any other 403 to Forbidden', () => {
    const foreign = mapPax8Error(
      403,
      envelope(403, 'FORBIDDEN', 'Invalid companyId'),
      null,
      'GET /v1/subscriptions',
    );
    expect(foreign.code).toBe('NotFound');
    expect(foreign.details).toEqual({ httpStatus: 403, distributorType: 'FORBIDDEN' });
    expect(mapPax8Error(403, envelope(403, 'FORBIDDEN', 'Access is denied'), null, 'GET /v1/x').code).toBe(
      'Forbidden',
    );
  });

  it('keeps 400 (bad syntax) and 422 (refused in processing) apart by status, both Validation', () => {
    const syntax = mapPax8Error(400, envelope(400, 'BAD_REQUEST', 'Invalid order'), null, 'POST /v1/orders');
    const refused = mapPax8Error(
      422,
      envelope(422, 'UNPROCESSABLE_ENTITY', 'Invalid productId'),
      null,
      'POST /v1/orders',
    );
    expect([syntax.code, syntax.status, syntax.retryable]).toEqual(['Validation', 400, false]);
    expect([refused.code, refused.status, refused.retryable]).toEqual(['Validation', 422, false]);
    expect(refused.message).toBe('Pax8 422 on POST /v1/orders: Invalid productId');
  });

  it('makes 429 retryable with the Retry-After seconds or date, and without one when none is sent', () => {
    expect(mapPax8Error(429, undefined, '12', 'GET /v1/x')).toMatchObject({
      code: 'Throttled',
      retryable: true,
      retryAfterInSeconds: 12,
    });
    const at = new Date(Date.now() + 30_000).toUTCString();
    const dated = mapPax8Error(429, undefined, at, 'GET /v1/x');
    expect(dated.retryAfterInSeconds).toBeGreaterThanOrEqual(28);
    expect(dated.retryAfterInSeconds).toBeLessThanOrEqual(31);
    expect(mapPax8Error(429, undefined, null, 'GET /v1/x').retryAfterInSeconds).toBeUndefined();
  });

  it('reads Retry-After with the parser every upstream shares: an empty one is none, a huge one an hour', () => {
    // The same parser as Graph's and Partner Center's (shared/retry.ts); it once took '' for 0 s.
    expect(mapPax8Error(429, undefined, '', 'GET /v1/x').retryAfterInSeconds).toBeUndefined();
    expect(mapPax8Error(429, undefined, '1e20', 'GET /v1/x').retryAfterInSeconds).toBe(3600);
    expect(mapPartnerCenterError(429, undefined, '').retryAfterInSeconds).toBeUndefined();
    expect(mapPartnerCenterError(429, undefined, '1e20').retryAfterInSeconds).toBe(3600);
  });

  it('marks 5xx and 408 retryable with an unknown outcome (a write may have happened)', () => {
    expect(mapPax8Error(503, undefined, null, 'PUT /v1/subscriptions/1')).toMatchObject({
      code: 'Unavailable',
      retryable: true,
      details: { httpStatus: 503, outcomeUnknown: true },
    });
    expect(mapPax8Error(408, undefined, null, 'PUT /v1/subscriptions/1')).toMatchObject({
      code: 'Timeout',
      retryable: true,
    });
    expect(mapPax8Error(504, undefined, null, 'GET /v1/x').code).toBe('Timeout');
  });

  it('reads the token endpoint’s {error, error_description} and carries detail messages', () => {
    const token = mapPax8Error(
      401,
      { error: 'access_denied', error_description: 'Unauthorized' },
      null,
      'POST /v1/token',
    );
    expect([token.code, token.message]).toEqual([
      'Unauthenticated',
      'Pax8 401 on POST /v1/token: Unauthorized',
    ]);
    const detailed = mapPax8Error(
      400,
      {
        ...envelope(400, 'BAD_REQUEST', 'Invalid order'),
        details: [{ message: 'companyId: must be a UUID' }],
      },
      null,
      'POST /v1/orders',
    );
    expect(detailed.details).toEqual(
      expect.objectContaining({ distributorDetails: ['companyId: must be a UUID'] }),
    );
    expect(mapPax8Error(418, 'teapot', null, 'GET /v1/x').code).toBe('Upstream');
  });
});

describe('pax8Date', () => {
  it('reads every date form the Pax8 examples use', () => {
    expect(pax8Date('2020-12-03')).toEqual(new Date('2020-12-03T00:00:00Z'));
    expect(pax8Date('2021-01-01T08:30:00Z')).toEqual(new Date('2021-01-01T08:30:00Z'));
    expect(pax8Date('2020-12-01T13:20:13.153-0700')).toEqual(new Date('2020-12-01T20:20:13.153Z'));
    expect(pax8Date('2000-10-31T01:30:00.000-05:00')).toEqual(new Date('2000-10-31T06:30:00Z'));
    expect(pax8Date('')).toBeUndefined();
    expect(pax8Date(null)).toBeUndefined();
    expect(pax8Date('soon')).toBeUndefined();
  });
});
