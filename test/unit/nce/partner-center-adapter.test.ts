import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { durationInMs } from '../../../dev/peers/partner-center/clock.js';
import { RateLimiter } from '../../../dev/peers/partner-center/faults.js';
import {
  correlationGuid,
  deterministicUuid,
  mapPartnerCenterError,
} from '../../../shared/adapters/partner-center/client.js';
import { createLogger } from '../../../shared/logging.js';
import { OneTimeSecret } from '../../../shared/ports/commerce.js';

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
    [400, pc(600049), 'Validation'],
    [400, pc(600050), 'Validation'],
    [400, pc(600051), 'Validation'],
    [400, pc(600002), 'Validation'],
    [404, pc(400019), 'NotFound'],
    [404, pc(400013), 'NotFound'],
    [404, pc(400018), 'NotFound'],
    [409, pc(800082), 'Conflict'],
    [409, pc(800060), 'Conflict'],
    [400, pc(800091), 'Conflict'],
    [400, pc(2011), 'Conflict'],
    [400, pc(800065), 'Conflict'],
    [409, pc(900278), 'Conflict'],
    [400, pc(2054), 'Validation'],
    [400, pc(800002), 'Validation'],
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

  it('only throttling, outages and work still under way (busy cart, order in progress, subscription not ready) are retryable', () => {
    expect(mapPartnerCenterError(400, pc(800090), null).retryable).toBe(false);
    expect(mapPartnerCenterError(409, pc(800064), null).retryable).toBe(true);
    expect(mapPartnerCenterError(409, pc(800060), null).retryable).toBe(true);
    expect(mapPartnerCenterError(409, pc(800082), null).retryable).toBe(true);
    expect(mapPartnerCenterError(409, pc(900278), null).retryable).toBe(false);
    expect(mapPartnerCenterError(502, undefined, null).retryable).toBe(true);
  });

  it("says in words what NCE refused, keeping Partner Center's own description and code", () => {
    const reduction = mapPartnerCenterError(
      400,
      {
        code: 800090,
        description: 'Subscription quantity cannot be decreased.',
        data: [],
        source: 'PartnerFD',
      },
      null,
    );
    expect(reduction.message).toBe(
      "quantity can't be decreased outside the 7-day window (168 hours after the seats were bought, added or renewed); schedule the lower quantity for the next term instead (Partner Center 400/800090: Subscription quantity cannot be decreased.)",
    );
    expect(reduction.details).toEqual({ partnerCenterCode: '800090', httpStatus: 400 });
    expect(mapPartnerCenterError(400, pc(900213), null).message).toContain('cancellation window');
    expect(mapPartnerCenterError(403, pc(13605), null).message).toContain('Microsoft Customer Agreement');
    expect(mapPartnerCenterError(404, pc(400019), null).message).toContain('look the offer up again');
    expect(mapPartnerCenterError(400, pc(600049), null).message).toContain('organizationRegistrationNumber');
  });
});

describe("the new tenant's admin password", () => {
  it('is reachable only by sealing it: not in JSON, strings, inspection or log lines', () => {
    const secret = new OneTimeSecret('=;;n.=s9Z');
    const credentials = { userName: 'admin', password: secret };
    expect(JSON.stringify(credentials)).toBe('{"userName":"admin","password":"[redacted]"}');
    expect(`${String(secret)}`).toBe('[redacted]');
    expect(inspect(credentials)).not.toContain('=;;n.=s9Z');
    const lines: string[] = [];
    createLogger((_level, record) => lines.push(JSON.stringify(record))).info('created', {
      credentials,
      secret,
    });
    expect(lines.join('')).not.toContain('=;;n.=s9Z');
    expect(secret.seal({ seal: (plain) => `sealed(${plain.length})` })).toBe('sealed(9)');
    let given = '';
    secret.seal({
      seal: (plain) => {
        given = plain;
        return '';
      },
    });
    expect(given).toBe('=;;n.=s9Z');
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
