import type { z } from 'zod';
import { AppError, isAppError, type ErrorCode } from '../../errors.js';
import { systemClock, type Clock } from '../../ports/clock.js';
import type {
  Distributor,
  DistributorBillingTerm,
  DistributorCancelOptions,
  DistributorCompany,
  DistributorOrder,
  DistributorOrderOptions,
  DistributorPlacedOrder,
  DistributorProduct,
  DistributorReadOptions,
  DistributorSubscription,
  DistributorSubscriptionStatus,
  DistributorWriteOptions,
  ListDistributorSubscriptionsOptions,
} from '../../ports/distributor.js';
import { parseRetryAfter, withRetry, type RetryOptions } from '../../retry.js';
import {
  companySchema,
  dependenciesSchema,
  emptySchema,
  errorBodySchema,
  orderSchema,
  pageOf,
  pax8Date,
  pricingListSchema,
  productSchema,
  subscriptionSchema,
  tokenResponseSchema,
  type SubscriptionBody,
} from './schemas.js';

/**
 * The Distributor port over Pax8's Partner API (https://devx.pax8.com; OpenAPI "PARTNER ENDPOINTS"
 * and "Authentication"): OAuth2 client credentials at `POST /v1/token` (JSON, audience
 * `https://api.pax8.com`, 86,400-second tokens), paged lists `{content, page}`, `PUT /subscriptions/{id}`
 * for quantity, `DELETE /subscriptions/{id}?cancelDate=`. Pax8 has no idempotency key, so writes read
 * first (see the port). The client secret and tokens never appear in an error or log line.
 */
export const pax8Audience = 'https://api.pax8.com';
export const defaultPax8BaseUrl = 'https://api.pax8.com';

export interface Pax8Options {
  clientId: string;
  clientSecret: string;
  /** Origin of the API; paths start with `/v1`. */
  baseUrl?: string;
  /** Defaults to `${baseUrl}/v1/token`. */
  tokenUrl?: string;
  /** Per HTTP attempt; a request that takes longer is abandoned (its outcome unknown). */
  timeoutInMs?: number;
  retry?: RetryOptions;
  /** Token expiry is judged on this clock. */
  clock?: Clock;
  /** Page size asked for lists (Pax8 allows 1–200). */
  pageSize?: number;
}

const statusMap: Record<string, DistributorSubscriptionStatus> = {
  Active: 'active',
  Activated: 'active',
  Converted: 'active',
  PendingManual: 'pending',
  PendingAutomated: 'pending',
  PendingActivation: 'pending',
  PendingCancel: 'pendingCancel',
  Cancelled: 'cancelled',
  Trial: 'trial',
  WaitingForDetails: 'waitingForDetails',
};
const pax8StatusFilter: Partial<Record<DistributorSubscriptionStatus, string>> = {
  active: 'Active',
  pendingCancel: 'PendingCancel',
  cancelled: 'Cancelled',
  trial: 'Trial',
  waitingForDetails: 'WaitingForDetails',
};
const billingTerms: readonly DistributorBillingTerm[] = [
  'Monthly',
  'Annual',
  '2-Year',
  '3-Year',
  'One-Time',
  'Trial',
  'Activation',
];

function asBillingTerm(value: string | null | undefined): DistributorBillingTerm | undefined {
  return billingTerms.find((term) => term === value);
}

const optional = <T>(value: T | null | undefined): T | undefined => value ?? undefined;

/**
 * Pax8's answer → our typed error (https://devx.pax8.com/docs/errors: 400 bad syntax, 422 a processing
 * refusal, 429 too many requests, 50x server). `outcomeUnknown` marks answers after which a write may
 * or may not have happened.
 */
export function mapPax8Error(
  status: number,
  body: unknown,
  retryAfter: string | null,
  request: string,
): AppError {
  const parsed = errorBodySchema.safeParse(body);
  const data = parsed.success ? parsed.data : undefined;
  const reason = data?.message ?? data?.error_description ?? `HTTP ${status}`;
  const details: Record<string, unknown> = { httpStatus: status };
  if (data?.type !== undefined && data.type !== null) details['distributorType'] = data.type;
  const detailMessages = (data?.details ?? []).flatMap((detail) =>
    typeof detail.message === 'string' ? [detail.message] : [],
  );
  if (detailMessages.length > 0) details['distributorDetails'] = detailMessages.slice(0, 5);
  const error = (code: ErrorCode, extra: { retryAfterInSeconds?: number; status?: number } = {}): AppError =>
    new AppError(code, `Pax8 ${status} on ${request}: ${reason}`, { details, ...extra });
  if (status === 429) {
    const wait = parseRetryAfter(retryAfter);
    return error('Throttled', wait === undefined ? {} : { retryAfterInSeconds: wait });
  }
  if (status === 408 || status >= 500) {
    details['outcomeUnknown'] = true;
    return error(status === 408 || status === 504 ? 'Timeout' : 'Unavailable');
  }
  if (status === 401) return error('Unauthenticated');
  // `GET /subscriptions` documents 403 "Invalid companyId" for a company that is not the partner's:
  // to us that company does not exist.
  if (status === 403 && /invalid companyid/i.test(reason)) return error('NotFound');
  if (status === 403) return error('Forbidden');
  if (status === 404) return error('NotFound');
  if (status === 409) return error('Conflict');
  if (status === 400 || status === 422) return error('Validation', { status });
  return error('Upstream');
}

function toSubscription(body: SubscriptionBody): DistributorSubscription {
  const commitment = body.commitmentTerm ?? undefined;
  return {
    id: body.id,
    companyId: body.companyId,
    productId: body.productId,
    productName: optional(body.productName),
    vendorSubscriptionId: optional(body.vendorSubscriptionId),
    quantity: body.quantity,
    // An unknown status is treated as not yet provisioned: never counted as seats we have.
    status: statusMap[body.status] ?? 'pending',
    distributorStatus: body.status,
    billingTerm: asBillingTerm(body.billingTerm),
    startDate: pax8Date(body.startDate),
    endDate: pax8Date(body.endDate),
    commitment:
      commitment === undefined
        ? undefined
        : {
            id: optional(commitment.id),
            term: optional(commitment.term),
            endDate: pax8Date(commitment.endDate),
          },
    price: optional(body.price),
    partnerCost: optional(body.partnerCost),
    currencyCode: optional(body.currencyCode),
    createdAt: pax8Date(body.createdDate),
    updatedAt: pax8Date(body.updatedDate),
  };
}

function toCompany(body: z.infer<typeof companySchema>): DistributorCompany {
  const status = body.status?.toLowerCase();
  return {
    id: body.id,
    name: body.name,
    externalId: optional(body.externalId),
    status: status === 'inactive' || status === 'deleted' ? status : 'active',
  };
}

interface RequestOptions<T extends z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  schema: T;
  body?: unknown;
  abortSignal?: AbortSignal | undefined;
}

const enc = encodeURIComponent;

export class Pax8Distributor implements Distributor {
  private readonly baseUrl: string;
  private readonly tokenUrl: string;
  private readonly timeoutInMs: number;
  private readonly clock: Clock;
  private readonly pageSize: number;
  private cachedToken: { value: string; refreshAtMs: number } | undefined;
  private tokenInFlight: Promise<string> | undefined;

  constructor(private readonly options: Pax8Options) {
    this.baseUrl = (options.baseUrl ?? defaultPax8BaseUrl).replace(/\/+$/, '');
    this.tokenUrl = options.tokenUrl ?? `${this.baseUrl}/v1/token`;
    this.timeoutInMs = options.timeoutInMs ?? 30_000;
    this.clock = options.clock ?? systemClock;
    this.pageSize = options.pageSize ?? 200;
  }

  // ---------- reads ----------

  async listCompanies(options: DistributorReadOptions = {}): Promise<DistributorCompany[]> {
    const bodies = await this.allPages('/v1/companies', {}, companySchema, options.abortSignal);
    return bodies.map(toCompany);
  }

  async listSubscriptions(
    companyId: string,
    options: ListDistributorSubscriptionsOptions = {},
  ): Promise<DistributorSubscription[]> {
    const status = options.status === undefined ? undefined : pax8StatusFilter[options.status];
    const bodies = await this.allPages(
      '/v1/subscriptions',
      { companyId, status, productId: options.productId },
      subscriptionSchema,
      options.abortSignal,
      options.pageSize,
    );
    return bodies
      .map(toSubscription)
      .filter((subscription) => options.status === undefined || subscription.status === options.status);
  }

  async getSubscription(
    companyId: string,
    subscriptionId: string,
    options: DistributorReadOptions = {},
  ): Promise<DistributorSubscription> {
    return this.retried(
      () => this.readOwned(companyId, subscriptionId, options.abortSignal),
      options.abortSignal,
    );
  }

  async getProduct(productId: string, options: DistributorReadOptions = {}): Promise<DistributorProduct> {
    const path = `/v1/products/${enc(productId)}`;
    const signal = options.abortSignal;
    const product = await this.retried(
      () => this.request({ method: 'GET', path, schema: productSchema, abortSignal: signal }),
      signal,
    );
    // Pricing and dependencies are "dynamic data": read every time, never cached.
    const pricing = await this.retried(
      () =>
        this.request({
          method: 'GET',
          path: `${path}/pricing`,
          schema: pricingListSchema,
          abortSignal: signal,
        }),
      signal,
    );
    const dependencies = await this.retried(
      () =>
        this.request({
          method: 'GET',
          path: `${path}/dependencies`,
          schema: dependenciesSchema,
          abortSignal: signal,
        }),
      signal,
    );
    return {
      id: product.id,
      name: product.name,
      vendorName: optional(product.vendorName),
      sku: optional(product.sku),
      vendorSku: optional(product.vendorSku),
      requiresCommitment: product.requiresCommitment === true,
      pricing: pricing.content.map((entry) => ({
        billingTerm: asBillingTerm(entry.billingTerm),
        commitmentTerm: optional(entry.commitmentTerm),
        commitmentTermInMonths: optional(entry.commitmentTermInMonths),
        type: optional(entry.type),
        unitOfMeasurement: optional(entry.unitOfMeasurement),
        rates: (entry.rates ?? []).map((rate) => ({
          partnerBuyRate: optional(rate.partnerBuyRate),
          suggestedRetailPrice: optional(rate.suggestedRetailPrice),
          startQuantity: optional(rate.startQuantityRange),
          endQuantity: optional(rate.endQuantityRange),
          chargeType: optional(rate.chargeType),
        })),
      })),
      commitments: (dependencies.commitmentDependencies ?? []).map((commitment) => ({
        id: commitment.id,
        term: optional(commitment.term),
        autoRenew: optional(commitment.autoRenew),
        allowsQuantityIncrease: optional(commitment.allowForQuantityIncrease),
        allowsQuantityDecrease: optional(commitment.allowForQuantityDecrease),
        allowsEarlyCancellation: optional(commitment.allowForEarlyCancellation),
        cancellationFee: optional(commitment.cancellationFeeApplied),
      })),
    };
  }

  // ---------- writes ----------

  /**
   * Each attempt reads the subscription and sends `PUT {quantity}` only when it differs, so a retry
   * after a lost answer (the PUT was applied, the response never came) finds the target and stops.
   */
  async changeQuantity(
    companyId: string,
    subscriptionId: string,
    quantity: number,
    options: DistributorWriteOptions = {},
  ): Promise<DistributorSubscription> {
    if (!Number.isInteger(quantity) || quantity < 0)
      throw new AppError('Validation', `quantity must be a whole number, got ${quantity}`);
    const signal = options.abortSignal;
    return this.retried(async () => {
      const current = await this.readOwned(companyId, subscriptionId, signal);
      if (current.quantity === quantity) return current;
      const updated = await this.request({
        method: 'PUT',
        path: `/v1/subscriptions/${enc(subscriptionId)}`,
        schema: subscriptionSchema,
        body: { quantity },
        abortSignal: signal,
      });
      return toSubscription(updated);
    }, signal);
  }

  /** Reads first: a subscription already PendingCancel or Cancelled is not cancelled again. */
  async cancel(
    companyId: string,
    subscriptionId: string,
    options: DistributorCancelOptions = {},
  ): Promise<DistributorSubscription> {
    const signal = options.abortSignal;
    return this.retried(async () => {
      const current = await this.readOwned(companyId, subscriptionId, signal);
      if (current.status === 'pendingCancel' || current.status === 'cancelled') return current;
      await this.request({
        method: 'DELETE',
        path: `/v1/subscriptions/${enc(subscriptionId)}`,
        query: { cancelDate: options.cancelAt?.toISOString() },
        schema: emptySchema,
        abortSignal: signal,
      });
      // DELETE answers 204; the end date is on the subscription.
      return this.readOwned(companyId, subscriptionId, signal);
    }, signal);
  }

  /**
   * `POST /orders` (`?isMock=true` for a dry run). Without an idempotency key, an attempt whose answer
   * was lost is settled by looking: subscriptions that did not exist before the first attempt and match
   * every line mean the order went through; none means it did not (send again); some means a person
   * must look (Conflict).
   */
  async placeOrder(
    order: DistributorOrder,
    options: DistributorOrderOptions = {},
  ): Promise<DistributorPlacedOrder> {
    if (order.lines.length === 0) throw new AppError('Validation', 'an order needs at least one line');
    const dryRun = options.dryRun === true;
    const signal = options.abortSignal;
    const body = {
      companyId: order.companyId,
      lineItems: order.lines.map((line, index) => ({
        productId: line.productId,
        quantity: line.quantity,
        billingTerm: line.billingTerm,
        lineItemNumber: index + 1,
        ...(line.commitmentId === undefined ? {} : { commitmentTermId: line.commitmentId }),
        ...(line.provisioningDetails === undefined
          ? {}
          : {
              provisioningDetails: Object.entries(line.provisioningDetails).map(([key, value]) => ({
                key,
                values: [value],
              })),
            }),
      })),
    };
    const send = async (): Promise<DistributorPlacedOrder> => {
      const placed = await this.request({
        method: 'POST',
        path: '/v1/orders',
        query: dryRun ? { isMock: true } : {},
        schema: orderSchema,
        body,
        abortSignal: signal,
      });
      return {
        orderId: optional(placed.id),
        dryRun,
        lines: placed.lineItems.map((item) => ({
          productId: item.productId,
          quantity: item.quantity,
          subscriptionId: optional(item.subscriptionId),
        })),
      };
    };
    // A dry run stores nothing, so it is safe to resend.
    if (dryRun) return this.retried(send, signal);

    const before = new Set(
      (
        await this.listSubscriptions(order.companyId, signal === undefined ? {} : { abortSignal: signal })
      ).map((subscription) => subscription.id),
    );
    let outcomeUnknown = false;
    return this.retried(async () => {
      if (outcomeUnknown) {
        const found = await this.findPlaced(order, before, signal);
        if (found !== undefined) return found;
      }
      try {
        return await send();
      } catch (error) {
        if (isAppError(error) && error.details?.['outcomeUnknown'] === true) outcomeUnknown = true;
        throw error;
      }
    }, signal);
  }

  private async findPlaced(
    order: DistributorOrder,
    before: Set<string>,
    signal: AbortSignal | undefined,
  ): Promise<DistributorPlacedOrder | undefined> {
    const fresh = (
      await this.listSubscriptions(order.companyId, signal === undefined ? {} : { abortSignal: signal })
    ).filter((subscription) => !before.has(subscription.id));
    const used = new Set<string>();
    const lines = order.lines.map((line) => {
      const match = fresh.find(
        (subscription) =>
          !used.has(subscription.id) &&
          subscription.productId.toLowerCase() === line.productId.toLowerCase() &&
          subscription.quantity === line.quantity &&
          subscription.billingTerm === line.billingTerm,
      );
      if (match !== undefined) used.add(match.id);
      return { productId: line.productId, quantity: line.quantity, subscriptionId: match?.id };
    });
    const found = lines.filter((line) => line.subscriptionId !== undefined).length;
    if (found === 0) return undefined;
    if (found < lines.length)
      throw new AppError(
        'Conflict',
        `Pax8 order for company ${order.companyId}: its answer was lost and only ${found} of ${lines.length} lines are found`,
        { retryable: false, details: { companyId: order.companyId, lines } },
      );
    return { orderId: undefined, dryRun: false, lines };
  }

  // ---------- plumbing ----------

  private retried<T>(operation: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    return withRetry(operation, {
      ...this.options.retry,
      ...(signal === undefined ? {} : { abortSignal: signal }),
    });
  }

  private async readOwned(
    companyId: string,
    subscriptionId: string,
    signal: AbortSignal | undefined,
  ): Promise<DistributorSubscription> {
    const body = await this.request({
      method: 'GET',
      path: `/v1/subscriptions/${enc(subscriptionId)}`,
      schema: subscriptionSchema,
      abortSignal: signal,
    });
    // Another company's subscription is not this customer's: never read or change it.
    if (body.companyId.toLowerCase() !== companyId.toLowerCase())
      throw new AppError(
        'NotFound',
        `Pax8 subscription ${subscriptionId} is not a subscription of company ${companyId}`,
      );
    return toSubscription(body);
  }

  /** Every page of a list (`{content, page}`), each page with its own retries; duplicates dropped. */
  private async allPages<T extends z.ZodType<{ id: string }>>(
    path: string,
    filters: Record<string, string | undefined>,
    item: T,
    signal: AbortSignal | undefined,
    pageSize = this.pageSize,
  ): Promise<z.infer<T>[]> {
    const schema = pageOf(item);
    const seen = new Set<string>();
    const items: z.infer<T>[] = [];
    for (let page = 0; ; page++) {
      const answer = await this.retried(
        () =>
          this.request({
            method: 'GET',
            path,
            query: { ...filters, page, size: pageSize },
            schema,
            abortSignal: signal,
          }),
        signal,
      );
      for (const entry of answer.content as z.infer<T>[]) {
        if (seen.has(entry.id)) continue;
        seen.add(entry.id);
        items.push(entry);
      }
      if (answer.content.length === 0 || page + 1 >= answer.page.totalPages) return items;
    }
  }

  /** One HTTP exchange (plus one token refresh on 401); errors are AppErrors, retries are the caller's. */
  private async request<T extends z.ZodType>(request: RequestOptions<T>): Promise<z.infer<T>> {
    const fromCache =
      this.cachedToken !== undefined && this.clock.now().getTime() < this.cachedToken.refreshAtMs;
    const first = await this.exchange(request, await this.token(request.abortSignal));
    if (first.status !== 401 || !fromCache) return this.settle(request, first);
    // The cached token died before its expiry (revoked, rotated): a 401 did nothing, so resend once.
    this.cachedToken = undefined;
    return this.settle(request, await this.exchange(request, await this.token(request.abortSignal)));
  }

  private async exchange<T extends z.ZodType>(
    request: RequestOptions<T>,
    token: string,
  ): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
    const url = new URL(`${this.baseUrl}${request.path}`);
    for (const [name, value] of Object.entries(request.query ?? {}))
      if (value !== undefined) url.searchParams.set(name, String(value));
    const timeout = AbortSignal.timeout(this.timeoutInMs);
    const signal =
      request.abortSignal === undefined ? timeout : AbortSignal.any([timeout, request.abortSignal]);
    let response: Response;
    try {
      response = await fetch(url, {
        method: request.method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        signal,
      });
    } catch (error) {
      if (request.abortSignal?.aborted === true)
        throw new AppError('Internal', 'aborted by caller', { cause: error, retryable: false });
      // No answer: a write may have happened. The callers' read-first retries settle it.
      throw new AppError(
        timeout.aborted ? 'Timeout' : 'Unavailable',
        `Pax8 ${timeout.aborted ? 'timed out' : 'did not answer'}: ${request.method} ${request.path}`,
        { cause: error, details: { outcomeUnknown: true } },
      );
    }
    const text = await response.text().catch(() => '');
    let body: unknown;
    try {
      body = text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      body = undefined;
    }
    return { status: response.status, body, retryAfter: response.headers.get('retry-after') };
  }

  private settle<T extends z.ZodType>(
    request: RequestOptions<T>,
    answer: { status: number; body: unknown; retryAfter: string | null },
  ): z.infer<T> {
    const name = `${request.method} ${request.path}`;
    if (answer.status < 200 || answer.status > 299)
      throw mapPax8Error(answer.status, answer.body, answer.retryAfter, name);
    const parsed = request.schema.safeParse(answer.body);
    if (!parsed.success)
      throw new AppError('Upstream', `Pax8 answered ${name} with an unexpected shape`, {
        details: {
          issues: parsed.error.issues.slice(0, 5).map((issue) => `${issue.path.join('.')}: ${issue.message}`),
        },
      });
    return parsed.data;
  }

  /** The cached token until shortly before `expires_in` runs out; one token request at a time. */
  private async token(signal: AbortSignal | undefined): Promise<string> {
    const cached = this.cachedToken;
    if (cached !== undefined && this.clock.now().getTime() < cached.refreshAtMs) return cached.value;
    this.tokenInFlight ??= this.fetchToken(signal).finally(() => {
      this.tokenInFlight = undefined;
    });
    return this.tokenInFlight;
  }

  private async fetchToken(signal: AbortSignal | undefined): Promise<string> {
    const timeout = AbortSignal.timeout(this.timeoutInMs);
    let response: Response;
    try {
      response = await fetch(this.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          client_id: this.options.clientId,
          client_secret: this.options.clientSecret,
          audience: pax8Audience,
          grant_type: 'client_credentials',
        }),
        signal: signal === undefined ? timeout : AbortSignal.any([timeout, signal]),
      });
    } catch (error) {
      throw new AppError('Unavailable', 'Pax8 token endpoint did not answer', { cause: error });
    }
    const text = await response.text().catch(() => '');
    let body: unknown;
    try {
      body = text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const mapped = mapPax8Error(
        response.status,
        body,
        response.headers.get('retry-after'),
        'POST /v1/token',
      );
      if (mapped.retryable) throw mapped;
      // Our credential was refused (documented: 401 access_denied): retrying will not help.
      throw new AppError(
        'InvalidCredentials',
        `Pax8 refused the client credentials (HTTP ${response.status})`,
        {
          details: mapped.details,
        },
      );
    }
    const parsed = tokenResponseSchema.safeParse(body);
    if (!parsed.success)
      throw new AppError('Upstream', 'Pax8 token endpoint answered with an unexpected shape');
    const lifetimeInMs = parsed.data.expires_in * 1000;
    // Renew a little early (5 minutes, or half the lifetime for short ones) so no call carries a dying token.
    const marginInMs = Math.min(300_000, lifetimeInMs / 2);
    this.cachedToken = {
      value: parsed.data.access_token,
      refreshAtMs: this.clock.now().getTime() + lifetimeInMs - marginInMs,
    };
    return parsed.data.access_token;
  }
}

export function createPax8Distributor(options: Pax8Options): Distributor {
  return new Pax8Distributor(options);
}
