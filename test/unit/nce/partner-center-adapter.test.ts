import { describe, expect, it } from 'vitest';
import { durationInMs } from '../../../dev/peers/partner-center/clock.js';
import { RateLimiter } from '../../../dev/peers/partner-center/faults.js';
import {
  correlationGuid,
  deterministicUuid,
  mapPartnerCenterError,
} from '../../../shared/adapters/partner-center/client.js';

describe('MS-RequestId derivation', () => {
  it('is a stable UUIDv5 per operation step and differs between steps', () => {
    const first = deterministicUuid('saga-42:buy#checkout');
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deterministicUuid('saga-42:buy#checkout')).toBe(first);
    expect(deterministicUuid('saga-42:buy#cart')).not.toBe(first);
  });

  it('keeps GUID correlation ids and maps others to a GUID', () => {
    expect(correlationGuid('0e93c70c-977a-4a88-9580-7cf084c73286')).toBe(
      '0e93c70c-977a-4a88-9580-7cf084c73286',
    );
    expect(correlationGuid('req-abc')).toBe(correlationGuid('req-abc'));
    expect(correlationGuid('req-abc')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('Partner Center errors → AppError', () => {
  const pc = (code: number) => ({ code, description: 'x', data: [], source: 'PartnerFD' });
  it.each([
    [400, pc(800090), 'ReductionWindowClosed'],
    [400, pc(900214), 'ReductionWindowClosed'],
    [400, pc(900257), 'ReductionWindowClosed'],
    [400, pc(900117), 'CancellationWindowClosed'],
    [400, pc(900213), 'CancellationWindowClosed'],
    [403, pc(13605), 'AgreementMissing'],
    [400, pc(2055), 'PreconditionFailed'],
    [404, pc(20003), 'NotFound'],
    [403, pc(20002), 'Forbidden'],
    [401, pc(800001), 'Unauthenticated'],
    [409, pc(600061), 'AlreadyExists'],
    [400, pc(900311), 'Conflict'],
    [400, pc(900275), 'Validation'],
    [503, pc(800003), 'Unavailable'],
    [500, undefined, 'Unavailable'],
  ] as const)('%i %j → %s', (status, body, code) => {
    expect(mapPartnerCenterError(status, body, null).code).toBe(code);
  });

  it('429 carries Retry-After in seconds (number or HTTP date) and is retryable', () => {
    const throttled = mapPartnerCenterError(
      429,
      { statusCode: 429, message: 'Rate limit is exceeded. Try again in 57 seconds.' },
      '57',
    );
    expect(throttled).toMatchObject({ code: 'Throttled', retryable: true, retryAfterInSeconds: 57 });
    const dated = mapPartnerCenterError(429, undefined, new Date(Date.now() + 5000).toUTCString());
    expect(dated.retryAfterInSeconds).toBeGreaterThanOrEqual(4);
    expect(dated.retryAfterInSeconds).toBeLessThanOrEqual(5);
  });

  it('only throttling, outages and a busy cart are retryable', () => {
    expect(mapPartnerCenterError(400, pc(800090), null).retryable).toBe(false);
    expect(mapPartnerCenterError(409, pc(800064), null).retryable).toBe(true);
    expect(mapPartnerCenterError(502, undefined, null).retryable).toBe(true);
  });
});

describe('peer helpers', () => {
  it('ISO 8601 durations use calendar months', () => {
    const from = new Date('2026-01-31T00:00:00Z');
    expect(durationInMs('P8D', from)).toBe(8 * 86_400_000);
    expect(durationInMs('PT36H', from)).toBe(36 * 3_600_000);
    expect(new Date(from.getTime() + durationInMs('P1Y', from)).toISOString()).toBe(
      '2027-01-31T00:00:00.000Z',
    );
    expect(() => durationInMs('8 days', from)).toThrow(RangeError);
    expect(() => durationInMs('P', from)).toThrow(RangeError);
  });

  it('the rate limiter admits the limit per minute per key and says how long to wait', () => {
    const limiter = new RateLimiter(2);
    expect(limiter.hit('a', 0)).toBeUndefined();
    expect(limiter.hit('a', 1000)).toBeUndefined();
    expect(limiter.hit('b', 1000)).toBeUndefined();
    expect(limiter.hit('a', 30_000)).toBe(30);
    expect(limiter.hit('a', 60_001)).toBeUndefined();
  });
});
