import { createHash, randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import type { z } from 'zod';
import { AppError, type ErrorCode } from '../../errors.js';
import { withRetry, type RetryOptions } from '../../retry.js';
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

const reductionCodes = new Set(['800090', '900214', '900257']);
const cancellationCodes = new Set(['900117', '900213']);

function retryAfterInSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

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
    const wait = retryAfterInSeconds(retryAfter);
    return error('Throttled', wait === undefined ? {} : { retryAfterInSeconds: wait });
  }
  if (status >= 500) return error('Unavailable');
  if (code !== undefined && reductionCodes.has(code)) return error('ReductionWindowClosed');
  if (code !== undefined && cancellationCodes.has(code)) return error('CancellationWindowClosed');
  if (code === '13605') return error('AgreementMissing');
  if (code === '2055' || status === 412) return error('PreconditionFailed');
  if (code === '600061') return error('AlreadyExists');
  if (code === '800064') return error('Conflict', { retryable: true });
  if (status === 401) return error('Unauthenticated');
  if (status === 403) return error('Forbidden');
  if (status === 404) return error('NotFound');
  if (status === 409 || code === '2011' || code === '900311' || code === '900278') return error('Conflict');
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
  ): Promise<z.infer<T>> {
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
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : (JSON.parse(text.replace(/^\uFEFF/, '')) as unknown);
    } catch {
      body = undefined;
    }
    if (!response.ok) throw mapPartnerCenterError(response.status, body, response.headers.get('retry-after'));
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
    return parsed.data;
  }
}
