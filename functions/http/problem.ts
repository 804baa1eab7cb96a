import type { HttpResponseInit } from '@azure/functions';
import type { AppError } from '../../shared/errors.js';

/** RFC 9457 problem details with our stable `code`; `type` is a URN per code. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  correlationId: string;
  errors?: { path: string; message: string }[];
  [extension: string]: unknown;
}

const titles: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition failed',
  413: 'Content too large',
  415: 'Unsupported media type',
  422: 'Unprocessable content',
  429: 'Too many requests',
  500: 'Internal error',
  502: 'Bad gateway',
  503: 'Unavailable',
  504: 'Timeout',
};

export function problemResponse(error: AppError, correlationId: string): HttpResponseInit {
  // Internal details never leave the process: the log has them, the caller gets the correlation id.
  const detail =
    error.status >= 500 && error.code === 'Internal' ? 'An internal error occurred.' : error.message;
  const body: Problem = {
    type: `urn:atria-m365:problem:${error.code}`,
    title: titles[error.status] ?? 'Error',
    status: error.status,
    detail,
    code: error.code,
    correlationId,
    ...(error.details === undefined || error.status >= 500 ? {} : error.details),
  };
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'x-correlation-id': correlationId,
  };
  if (error.status === 401) headers['www-authenticate'] = 'Bearer, ApiKey header="x-functions-key"';
  const allow = error.details?.allow;
  if (error.status === 405 && Array.isArray(allow)) headers.allow = allow.join(', ');
  if (error.retryAfterInSeconds !== undefined)
    headers['retry-after'] = String(Math.ceil(error.retryAfterInSeconds));
  return { status: error.status, headers, body: JSON.stringify(body) };
}
