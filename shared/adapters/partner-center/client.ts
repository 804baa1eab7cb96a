import { createHash, randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import type { z } from 'zod';
import { AppError, type ErrorCode } from '../../errors.js';
import { record } from '../../metrics.js';
import { parseRetryAfter, withRetry, type RetryOptions } from '../../retry.js';
import { errorBodySchema } from './schemas.js';

export const partnerCenterScope = 'https://api.partnercenter.microsoft.com/.default';
export const defaultPartnerCenterBaseUrl = 'https://api.partnercenter.microsoft.com';

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Namespace of our name-based request ids (UUIDv5, RFC 9562). */
const requestIdNamespace = Buffer.from('6f1d2c3b4a5948378e2f1a0b9c8d7e6f', 'hex');

/** A UUIDv5 of `name`: the same operation step always gets the same MS-RequestId. */
export function deterministicUuid(name: string): string {
  const hash = createHash('sha1').update(requestIdNamespace).update(name, 'utf8').digest();
  hash[6] = ((hash[6] ?? 0) & 0x0f) | 0x50;
  hash[8] = ((hash[8] ?? 0) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** MS-CorrelationId must be a GUID; other correlation ids are mapped to one deterministically. */
export function correlationGuid(correlationId: string | undefined): string {
  if (correlationId === undefined) return randomUUID();
  return guid.test(correlationId) ? correlationId : deterministicUuid(`correlation:${correlationId}`);
}

/**
 * Partner Center error codes (error-codes.md and the operation pages) → our error code and a sentence a
 * provider can act on. Partner Center's own description is kept after it.
 */
const knownCodes: Record<string, { code: ErrorCode; message: string; retryable?: boolean }> = {
  '800090': {
    code: 'ReductionWindowClosed',
    message:
      "quantity can't be decreased outside the 7-day window (168 hours after the seats were bought, added or renewed); schedule the lower quantity for the next term instead",
  },
  '900214': {
    code: 'ReductionWindowClosed',
    message:
      "seats can't be removed: the 168-hour window for reducing seats has passed; schedule it for the next term",
  },
  '900257': {
    code: 'ReductionWindowClosed',
    message:
      "seats can't be removed: the 7-day window for reducing seats has passed; schedule it for the next term",
  },
  '900117': {
    code: 'CancellationWindowClosed',
    message:
      "the subscription can't be cancelled: the 7-day cancellation window after purchase or renewal has passed; turn auto-renew off to end it at the end of the term",
  },
  '900213': {
    code: 'CancellationWindowClosed',
    message:
      "the subscription can't be cancelled: the 168-hour cancellation window after purchase or renewal has passed; turn auto-renew off to end it at the end of the term",
  },
  '13605': {
    code: 'AgreementMissing',
    message:
      'the customer has not accepted the Microsoft Customer Agreement: record the partner attestation before buying',
  },
  '600049': {
    code: 'Validation',
    message: "the customer's country requires companyProfile.organizationRegistrationNumber",
  },
  '600050': { code: 'Validation', message: 'the organization registration number has the wrong format' },
  '600051': {
    code: 'Validation',
    message: "the customer's country requires a phone number in the billing address",
  },
  '600002': {
    code: 'Validation',
    message: "an organization registration number can't be given for a customer in this country",
  },
  '600061': { code: 'AlreadyExists', message: 'this agreement attestation is already on record' },
  '800016': { code: 'Validation', message: 'the associated partner is not one of our indirect resellers' },
  '400013': { code: 'NotFound', message: 'the product is not in the catalog' },
  '400018': { code: 'NotFound', message: 'the SKU is not in the catalog' },
  '400019': {
    code: 'NotFound',
    message:
      "the offer's availability no longer exists (catalog ids change over time): look the offer up again",
  },
  '2002': { code: 'Validation', message: "the quantity is outside the offer's minimum and maximum" },
  '900275': { code: 'Validation', message: "the quantity is outside the offer's minimum and maximum" },
  '800121': { code: 'Validation', message: 'the offer has no such term' },
  '900269': { code: 'Validation', message: 'the offer has no such billing cycle' },
  '900270': { code: 'Validation', message: "the billing cycle can't be longer than the term" },
  '2054': {
    code: 'Validation',
    message: "the billing cycle of an existing subscription can't be changed; schedule it for the next term",
  },
  '800091': { code: 'Conflict', message: 'the subscription is suspended and cannot be changed' },
  '2011': { code: 'Conflict', message: 'the subscription is cancelled and cannot be changed' },
  '800012': { code: 'Conflict', message: 'the subscription is not active' },
  '900311': { code: 'Conflict', message: 'the subscription has been updated too many times (1,200)' },
  '900278': {
    code: 'Conflict',
    message: 'the subscription has a pending operation; Partner Center asks to try again after 24 hours',
  },
  '800082': {
    code: 'Conflict',
    message: 'the subscription is still applying an earlier change; try again shortly',
    retryable: true,
  },
  '800060': { code: 'Conflict', message: 'the order is still in progress', retryable: true },
  '800064': {
    code: 'Conflict',
    message: 'the cart is being checked out by another request',
    retryable: true,
  },
  '800065': { code: 'Conflict', message: 'the cart was already checked out' },
  '2055': { code: 'PreconditionFailed', message: 'the subscription changed since it was read' },
  '20003': { code: 'NotFound', message: 'no such subscription for this customer' },
  '20000': { code: 'NotFound', message: 'no such order for this customer' },
  '20002': { code: 'Forbidden', message: 'we have no commerce relationship with this customer' },
};

/** Partner Center's answer → our typed error; never a generic 500. */
export function mapPartnerCenterError(status: number, body: unknown, retryAfter: string | null): AppError {
  const parsed = errorBodySchema.safeParse(body);
  const code = parsed.success && parsed.data.code !== undefined ? String(parsed.data.code) : undefined;
  const description =
    (parsed.success ? (parsed.data.description ?? parsed.data.message) : undefined) ?? `HTTP ${status}`;
  const details = { partnerCenterCode: code, httpStatus: status };
  const error = (
    errorCode: ErrorCode,
    options: { retryable?: boolean; retryAfterInSeconds?: number } = {},
  ): AppError =>
    new AppError(
      errorCode,
      `Partner Center ${status}${code === undefined ? '' : `/${code}`}: ${description}`,
      {
        details,
        ...options,
      },
    );
  if (status === 429) {
    const wait = parseRetryAfter(retryAfter);
    return error('Throttled', wait === undefined ? {} : { retryAfterInSeconds: wait });
  }
  if (status >= 500) return error('Unavailable');
  const known = code === undefined ? undefined : knownCodes[code];
  if (known !== undefined)
    return new AppError(known.code, `${known.message} (Partner Center ${status}/${code}: ${description})`, {
      details,
      ...(known.retryable === undefined ? {} : { retryable: known.retryable }),
    });
  if (status === 412) return error('PreconditionFailed');
  if (status === 401) return error('Unauthenticated');
  if (status === 403) return error('Forbidden');
  if (status === 404) return error('NotFound');
  if (status === 409) return error('Conflict');
  return error('Validation');
}

export interface PartnerCenterClientOptions {
  credential: TokenCredential;
  baseUrl?: string;
  /** Per attempt; a request that takes longer is abandoned and retried with the same MS-RequestId. */
  timeoutInMs?: number;
  retry?: RetryOptions;
}

export interface SendOptions<T extends z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'HEAD';
  path: string;
  schema: T;
  body?: unknown;
  /** Same value on every attempt: the idempotency key Partner Center honours. */
  requestId?: string;
  correlationId?: string | undefined;
  ifMatch?: string | undefined;
  headers?: Record<string, string>;
  abortSignal?: AbortSignal | undefined;
}

/** Partner Center REST over fetch: token, MS-* headers, zod-checked answers, typed errors, one retry helper. */
export class PartnerCenterClient {
  private readonly baseUrl: string;
  private readonly timeoutInMs: number;

  constructor(private readonly options: PartnerCenterClientOptions) {
    this.baseUrl = (options.baseUrl ?? defaultPartnerCenterBaseUrl).replace(/\/+$/, '');
    this.timeoutInMs = options.timeoutInMs ?? 30_000;
  }

  async send<T extends z.ZodType>(request: SendOptions<T>): Promise<z.infer<T>> {
    const answer = await this.exchange(request);
    if (answer.accepted)
      throw new AppError('Upstream', `Partner Center answered ${request.method} ${request.path} with 202`);
    return answer.body;
  }

  /**
   * Like `send`, but a 202 Accepted (work still under way, e.g. a slow subscription PATCH) comes back
   * as `{accepted: true, location}` instead of a body.
   */
  async exchange<T extends z.ZodType>(
    request: SendOptions<T>,
  ): Promise<
    | { accepted: false; status: number; body: z.infer<T> }
    | { accepted: true; status: 202; location: string | undefined }
  > {
    const requestId = request.requestId ?? randomUUID();
    const correlationId = correlationGuid(request.correlationId);
    return withRetry(() => this.attempt(request, requestId, correlationId), {
      ...this.options.retry,
      ...(request.abortSignal === undefined ? {} : { abortSignal: request.abortSignal }),
    });
  }

  private async attempt<T extends z.ZodType>(
    request: SendOptions<T>,
    requestId: string,
    correlationId: string,
  ): Promise<
    | { accepted: false; status: number; body: z.infer<T> }
    | { accepted: true; status: 202; location: string | undefined }
  > {
    let token: Awaited<ReturnType<TokenCredential['getToken']>>;
    try {
      token = await this.options.credential.getToken(partnerCenterScope, {
        ...(request.abortSignal === undefined ? {} : { abortSignal: request.abortSignal }),
      });
    } catch (error) {
      // The identity platform refusing us (bad secret, no consent) is final; an outage may pass.
      const { name, statusCode } = error as { name?: unknown; statusCode?: unknown };
      const refused =
        name === 'AuthenticationRequiredError' ||
        (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500);
      throw new AppError(refused ? 'Unauthenticated' : 'Unavailable', 'no token for Partner Center', {
        cause: error,
      });
    }
    if (token === null) throw new AppError('Unauthenticated', 'no token for Partner Center');
    const timeout = AbortSignal.timeout(this.timeoutInMs);
    const signal =
      request.abortSignal === undefined ? timeout : AbortSignal.any([timeout, request.abortSignal]);
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${request.path}`, {
        method: request.method,
        headers: {
          authorization: `Bearer ${token.token}`,
          accept: 'application/json',
          'ms-requestid': requestId,
          'ms-correlationid': correlationId,
          ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(request.ifMatch === undefined ? {} : { 'if-match': request.ifMatch }),
          ...request.headers,
        },
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        signal,
      });
    } catch (error) {
      if (request.abortSignal?.aborted === true)
        throw new AppError('Internal', 'aborted by caller', { cause: error, retryable: false });
      // No answer (connection dropped or timed out): the request may have run; the retry reuses its MS-RequestId.
      const timedOut = timeout.aborted;
      throw new AppError(
        'Unavailable',
        `Partner Center ${timedOut ? 'timed out' : 'did not answer'}: ${request.method} ${request.path}`,
        {
          cause: error,
          details: { timedOut },
        },
      );
    }
    record.partnerCenterResponse(response.status);
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : (JSON.parse(text.replace(/^\uFEFF/, '')) as unknown);
    } catch {
      body = undefined;
    }
    if (!response.ok) throw mapPartnerCenterError(response.status, body, response.headers.get('retry-after'));
    if (response.status === 202)
      return { accepted: true, status: 202, location: response.headers.get('location') ?? undefined };
    const parsed = request.schema.safeParse(body);
    if (!parsed.success)
      throw new AppError(
        'Upstream',
        `Partner Center answered ${request.method} ${request.path} with an unexpected shape`,
        {
          details: {
            issues: parsed.error.issues
              .slice(0, 5)
              .map((issue) => `${issue.path.join('.')}: ${issue.message}`),
          },
        },
      );
    return { accepted: false, status: response.status, body: parsed.data };
  }
}
