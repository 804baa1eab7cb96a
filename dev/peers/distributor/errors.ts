/**
 * Pax8's error envelope (https://devx.pax8.com/docs/errors; OpenAPI `components/schemas/Error`):
 * `{type, message, instance, status, details: [{type?, status?, message, instance?}]}` — not RFC 9457.
 * 400 is "bad syntax (wrong data format or missing a required parameter)", 422 is "the request syntax
 * was correct but an exception was caught in processing" (a business rule said no).
 */
export interface ErrorDetail {
  type?: string;
  status?: number;
  message: string;
  instance?: string;
}

export class Pax8Error extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = 'Pax8Error';
  }

  toBody(instance: string): {
    type: string;
    message: string;
    instance: string;
    status: number;
    details: ErrorDetail[];
  } {
    return { type: this.type, message: this.message, instance, status: this.status, details: this.details };
  }
}

export const pax8Errors = {
  /** 400: a parameter or field has the wrong format or is missing. */
  badRequest: (message: string, details: ErrorDetail[] = []) =>
    new Pax8Error(400, 'BAD_REQUEST', message, details),
  /** 400 for a query parameter (the webhooks API names this type INVALID_PARAM). */
  invalidParam: (name: string, why: string) =>
    new Pax8Error(400, 'BAD_REQUEST', `Invalid parameter ${name}: ${why}`, [
      { type: 'INVALID_PARAM', status: 400, message: `${name}: ${why}` },
    ]),
  unauthorized: () => new Pax8Error(401, 'UNAUTHORIZED', 'Unauthorized'),
  /** OpenAPI: `GET /subscriptions` → 403 "Invalid companyId" (a company that is not the partner's). */
  invalidCompanyId: () => new Pax8Error(403, 'FORBIDDEN', 'Invalid companyId'),
  /** Documented example: `{"type":"NOT_FOUND","message":"Company Not Found: <id>",…}`. */
  notFound: (what: string, id: string) => new Pax8Error(404, 'NOT_FOUND', `${what} Not Found: ${id}`),
  routeNotFound: (path: string) => new Pax8Error(404, 'NOT_FOUND', `No handler found for ${path}`),
  methodNotAllowed: (method: string) =>
    new Pax8Error(405, 'METHOD_NOT_ALLOWED', `Request method '${method}' is not supported`),
  /** 422: well-formed, but a business rule refused it. */
  unprocessable: (message: string, details: ErrorDetail[] = []) =>
    new Pax8Error(422, 'UNPROCESSABLE_ENTITY', message, details),
  tooManyRequests: () => new Pax8Error(429, 'TOO_MANY_REQUESTS', 'Too Many Requests'),
  server: (status: number) => new Pax8Error(status, 'INTERNAL_SERVER_ERROR', 'Internal Server Error'),
};
