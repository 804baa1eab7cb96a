import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../../../shared/ports/clock.js';
import { pax8Errors, type ErrorDetail } from './errors.js';
import type { DistributorGraph } from './graph-seats.js';
import {
  billingTerms,
  companyStatuses,
  subscriptionStatuses,
  type BillingTerm,
  type Commitment,
  type Provisioning,
  type Seed,
  type SeedCompany,
  type SeedProduct,
  type SubscriptionStatus,
} from './seed.js';

/**
 * The distributor's state and rules, shaped on Pax8's Partner API (OpenAPI "PARTNER ENDPOINTS" 1.0.0,
 * https://devx.pax8.com/openapi/partner-endpoints.json). Rules the documents leave open are marked
 * "inferred" here and listed in the README.
 */

interface CompanyState {
  seed: SeedCompany;
  msTenantId: string | undefined;
}

interface ProductState {
  seed: SeedProduct;
}

interface SubscriptionState {
  id: string;
  partnerId: string;
  companyId: string;
  productId: string;
  quantity: number;
  /** Seats Microsoft has (what Graph shows); lags `quantity` while provisioning is pending. */
  provisionedQuantity: number;
  status: SubscriptionStatus;
  startDate: string;
  endDate: string | undefined;
  createdDate: string;
  updatedDate: string | undefined;
  billingStart: string;
  price: number;
  partnerCost: number;
  currencyCode: string;
  billingTerm: BillingTerm;
  vendorSubscriptionId: string | undefined;
  commitmentTerm: { id: string; term: string; endDate: string } | undefined;
  /** Virtual instant at which a pending provisioning completes. */
  pendingUntilMs: number | undefined;
  /** Snapshots, oldest first (the API answers newest first). */
  history: SubscriptionJson[];
  /** PUTs that changed something (what "applied exactly once" is measured by). */
  appliedChanges: number;
}

interface OrderState {
  partnerId: string;
  json: Record<string, unknown>;
}

export type SubscriptionJson = Record<string, unknown>;

export interface Page<T> {
  content: T[];
  page: { size: number; totalElements: number; totalPages: number; number: number };
}

const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const guid = z.string().regex(guidPattern, 'must be a UUID');
const dateTime = z.string().refine((value) => !Number.isNaN(Date.parse(value)), 'must be a date-time');
const dayInMs = 86_400_000;

function zodDetails(error: z.ZodError): ErrorDetail[] {
  return error.issues.map((issue) => ({
    type: 'BAD_REQUEST',
    status: 400,
    message: `${issue.path.join('.') || 'body'}: ${issue.message}`,
  }));
}

/** A zod parse whose failure is Pax8's 400 (bad syntax / missing parameter). */
function parseSyntax<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw pax8Errors.badRequest(`Invalid ${what}`, zodDetails(parsed.error));
  return parsed.data;
}

function addMonths(from: Date, months: number): Date {
  const result = new Date(from.getTime());
  result.setUTCMonth(result.getUTCMonth() + months);
  return result;
}

function billingTermMonths(term: BillingTerm): number {
  return { Monthly: 1, Annual: 12, '2-Year': 24, '3-Year': 36 }[term as string] ?? 0;
}

/** Commitment terms are written `Monthly`, `Annual`, `3-Year`, `1-Month` (Commitment.term examples). */
export function commitmentMonths(term: string): number {
  if (term === 'Monthly') return 1;
  if (term === 'Annual') return 12;
  const match = /^(\d+)-(Month|Year)$/.exec(term);
  if (match === null) return 0;
  return Number(match[1]) * (match[2] === 'Year' ? 12 : 1);
}

const orderLineSchema = z
  .object({
    productId: z.string().min(1),
    quantity: z.number().int('must be a whole number'),
    billingTerm: z.enum(billingTerms),
    commitmentTermId: guid.optional(),
    // The published request example spells it `commitmentTermID`.
    commitmentTermID: guid.optional(),
    provisionStartDate: dateTime.optional(),
    lineItemNumber: z.number().int().optional(),
    parentSubscriptionId: guid.optional(),
    parentLineItemNumber: z.number().int().optional(),
    provisioningDetails: z
      .array(z.object({ key: z.string(), values: z.array(z.string()) }).loose())
      .optional(),
  })
  .loose();

const orderSchema = z
  .object({
    companyId: guid,
    orderedBy: z.enum(['Pax8 Partner', 'Customer', 'Pax8']).optional(),
    orderedByUserEmail: z.email().optional(),
    lineItems: z.array(orderLineSchema).min(1),
  })
  .loose();

const updateSchema = z
  .object({
    quantity: z.number().int('must be a whole number').optional(),
    price: z.number().optional(),
    billingTerm: z.enum(billingTerms).optional(),
    startDate: dateTime.optional(),
  })
  .loose();

const sorts = {
  subscriptions: ['quantity', 'startDate', 'endDate', 'createdDate', 'billingStart', 'price'],
  companies: ['name', 'city', 'country', 'stateOrProvince', 'postalCode'],
  products: ['name', 'vendor'],
} as const;

export class DistributorModel {
  private readonly companies = new Map<string, CompanyState>();
  private readonly products = new Map<string, ProductState>();
  private readonly subscriptions = new Map<string, SubscriptionState>();
  private readonly orders = new Map<string, OrderState>();
  /** What was last pushed to Graph per `tenant|commerceSubscriptionId`. */
  private readonly pushed = new Map<string, string>();
  provisioning: Provisioning;

  constructor(
    private readonly options: {
      seed: Seed;
      clock: Clock;
      graph: DistributorGraph | undefined;
      log: (message: string) => void;
    },
  ) {
    const { seed } = options;
    this.provisioning = seed.provisioning;
    for (const company of seed.companies)
      this.companies.set(company.id.toLowerCase(), { seed: company, msTenantId: company.msTenantId });
    for (const product of seed.products) this.products.set(product.id.toLowerCase(), { seed: product });
    for (const entry of seed.subscriptions) {
      const company = this.companies.get(entry.companyId.toLowerCase());
      const product = this.products.get(entry.productId.toLowerCase());
      if (company === undefined || product === undefined) continue; // the seed schema refuses this
      const rate = this.rateFor(product.seed, entry.billingTerm, entry.quantity);
      const state: SubscriptionState = {
        id: entry.id.toLowerCase(),
        partnerId: company.seed.partnerId,
        companyId: company.seed.id,
        productId: product.seed.id,
        quantity: entry.quantity,
        provisionedQuantity: ['Active', 'PendingCancel', 'Activated', 'Trial'].includes(entry.status)
          ? entry.quantity
          : 0,
        status: entry.status,
        startDate: entry.startDate,
        endDate: entry.endDate,
        createdDate: entry.createdDate ?? entry.startDate,
        updatedDate: undefined,
        billingStart: entry.billingStart ?? entry.startDate.slice(0, 10),
        price: entry.price ?? rate?.suggestedRetailPrice ?? 0,
        partnerCost: entry.partnerCost ?? rate?.partnerBuyRate ?? 0,
        currencyCode: entry.currencyCode,
        billingTerm: entry.billingTerm,
        // Microsoft's id of the subscription; Graph shows it as commerceSubscriptionId.
        vendorSubscriptionId:
          entry.vendorSubscriptionId ?? (product.seed.graph === undefined ? undefined : randomUUID()),
        commitmentTerm: entry.commitmentTerm,
        pendingUntilMs:
          entry.status === 'PendingAutomated' || entry.status === 'PendingManual'
            ? this.now().getTime() + seed.provisioning.delayInMs
            : undefined,
        history: [],
        appliedChanges: 0,
      };
      state.history.push(this.subscriptionJson(state));
      this.subscriptions.set(state.id, state);
    }
  }

  private now(): Date {
    return this.options.clock.now();
  }

  /** Creates seeded tenants that carry an `msDomain` in the Graph peer and pushes seeded seats. */
  async init(): Promise<void> {
    for (const company of this.companies.values()) {
      if (company.msTenantId !== undefined && company.seed.msDomain !== undefined)
        await this.createTenant(company.msTenantId, company.seed.name, company.seed.msDomain);
    }
    await this.syncGraph(new Set(this.companies.keys()));
  }

  private async createTenant(tenantId: string, displayName: string, prefix: string): Promise<void> {
    if (this.options.graph === undefined) return;
    try {
      await this.options.graph.createCustomerTenant({
        tenantId,
        displayName,
        initialDomain: `${prefix.toLowerCase()}.onmicrosoft.com`,
        adminUserPrincipalName: `admin@${prefix.toLowerCase()}.onmicrosoft.com`,
      });
    } catch (error) {
      this.options.log(`graph tenant creation failed for ${prefix}: ${String(error)}`);
    }
  }

  // ---------- paging ----------

  private paging(query: URLSearchParams): { page: number; size: number } {
    const pageText = query.get('page') ?? '0';
    const sizeText = query.get('size') ?? '10';
    const page = Number(pageText);
    const size = Number(sizeText);
    if (!Number.isInteger(page) || page < 0)
      throw pax8Errors.invalidParam('page', 'must be a whole number ≥ 0');
    // Page.size: minimum 1, maximum 200, default 10.
    if (!Number.isInteger(size) || size < 1 || size > 200)
      throw pax8Errors.invalidParam('size', 'must be a whole number from 1 to 200');
    return { page, size };
  }

  private pageOf<T>(items: T[], query: URLSearchParams): Page<T> {
    const { page, size } = this.paging(query);
    return {
      content: items.slice(page * size, page * size + size),
      page: { size, totalElements: items.length, totalPages: Math.ceil(items.length / size), number: page },
    };
  }

  private sortBy<T>(
    items: T[],
    query: URLSearchParams,
    allowed: readonly string[],
    key: (item: T, field: string) => string | number,
    fallback: string,
  ): T[] {
    const sort = query.get('sort') ?? fallback;
    const [field, direction = 'asc'] = sort.split(',');
    if (field === undefined || !allowed.includes(field) || !['asc', 'desc'].includes(direction.toLowerCase()))
      throw pax8Errors.invalidParam('sort', `must be one of ${allowed.join(', ')} with ,asc or ,desc`);
    const sign = direction.toLowerCase() === 'desc' ? -1 : 1;
    return [...items].sort((a, b) => {
      const left = key(a, field);
      const right = key(b, field);
      return left < right ? -sign : left > right ? sign : 0;
    });
  }

  private enumParam<T extends string>(
    query: URLSearchParams,
    name: string,
    values: readonly T[],
  ): T | undefined {
    const value = query.get(name);
    if (value === null) return undefined;
    if (!(values as readonly string[]).includes(value))
      throw pax8Errors.invalidParam(name, `must be one of ${values.join(', ')}`);
    return value as T;
  }

  private booleanParam(query: URLSearchParams, name: string): boolean | undefined {
    const value = query.get(name);
    if (value === null) return undefined;
    if (value !== 'true' && value !== 'false') throw pax8Errors.invalidParam(name, 'must be true or false');
    return value === 'true';
  }

  /** The partner's company, or 403 "Invalid companyId" (as `GET /subscriptions` documents). */
  private ownCompany(partnerId: string, companyId: string): CompanyState {
    if (!guidPattern.test(companyId)) throw pax8Errors.invalidParam('companyId', 'must be a UUID');
    const company = this.companies.get(companyId.toLowerCase());
    if (company === undefined || company.seed.partnerId !== partnerId) throw pax8Errors.invalidCompanyId();
    return company;
  }

  // ---------- companies ----------

  private companyJson(company: CompanyState): Record<string, unknown> {
    const { partnerId: _partner, msTenantId: _tenant, msDomain: _domain, ...json } = company.seed;
    return json;
  }

  listCompanies(partnerId: string, query: URLSearchParams): Page<Record<string, unknown>> {
    const status = this.enumParam(query, 'status', companyStatuses);
    const text = (name: 'city' | 'country' | 'stateOrProvince' | 'postalCode') =>
      query.get(name) ?? undefined;
    const flags = (['selfServiceAllowed', 'billOnBehalfOfEnabled', 'orderApprovalRequired'] as const).map(
      (name) => [name, this.booleanParam(query, name)] as const,
    );
    const matching = [...this.companies.values()].filter(
      ({ seed }) =>
        seed.partnerId === partnerId &&
        (status === undefined || seed.status === status) &&
        (['city', 'country', 'stateOrProvince', 'postalCode'] as const).every(
          (name) => text(name) === undefined || seed.address[name] === text(name),
        ) &&
        flags.every(([name, value]) => value === undefined || seed[name] === value),
    );
    const sorted = this.sortBy(
      matching,
      query,
      sorts.companies,
      ({ seed }, field) =>
        (field === 'name' ? seed.name : (seed.address[field as 'city'] ?? '')).toLowerCase(),
      'name,asc',
    );
    return this.pageOf(
      sorted.map((company) => this.companyJson(company)),
      query,
    );
  }

  getCompany(partnerId: string, companyId: string): Record<string, unknown> {
    const company = this.companies.get(companyId.toLowerCase());
    if (company === undefined || company.seed.partnerId !== partnerId)
      throw pax8Errors.notFound('Company', companyId);
    return this.companyJson(company);
  }

  // ---------- products ----------

  private product(productId: string): ProductState {
    const product = this.products.get(productId.toLowerCase());
    if (product === undefined) throw pax8Errors.notFound('Product', productId);
    return product;
  }

  private productJson(product: SeedProduct, detail: boolean): Record<string, unknown> {
    const { pricing: _pricing, commitments: _commitments, graph: _graph, description, ...json } = product;
    return detail && description !== undefined ? { ...json, description } : json;
  }

  listProducts(query: URLSearchParams): Page<Record<string, unknown>> {
    const search = query.get('search')?.toLowerCase();
    const vendorName = query.get('vendorName')?.toLowerCase();
    const matching = [...this.products.values()]
      .map(({ seed }) => seed)
      .filter(
        (product) =>
          (vendorName === undefined || product.vendorName.toLowerCase() === vendorName) &&
          (search === undefined ||
            [product.name, product.vendorName, product.sku, product.vendorSku ?? '', product.id].some(
              (field) => field.toLowerCase().includes(search),
            )),
      );
    const sorted = this.sortBy(
      matching,
      query,
      sorts.products,
      (product, field) => (field === 'vendor' ? product.vendorName : product.name).toLowerCase(),
      'name,asc',
    );
    return this.pageOf(
      sorted.map((product) => this.productJson(product, false)),
      query,
    );
  }

  getProduct(productId: string): Record<string, unknown> {
    return this.productJson(this.product(productId).seed, true);
  }

  getPricing(partnerId: string, productId: string, query: URLSearchParams): { content: unknown[] } {
    const product = this.product(productId).seed;
    const companyId = query.get('companyId');
    if (companyId !== null) this.ownCompany(partnerId, companyId);
    return {
      content: product.pricing.map((entry) => ({
        productId: product.id,
        productName: product.name,
        ...entry,
      })),
    };
  }

  getDependencies(productId: string): {
    commitmentDependencies: Commitment[];
    productDependencies: unknown[];
  } {
    return { commitmentDependencies: this.product(productId).seed.commitments, productDependencies: [] };
  }

  private rateFor(product: SeedProduct, billingTerm: BillingTerm, quantity: number) {
    const pricing = product.pricing.find((entry) => entry.billingTerm === billingTerm);
    return pricing?.rates.find(
      (rate) =>
        quantity >= (rate.startQuantityRange ?? 0) &&
        (rate.endQuantityRange === undefined ||
          rate.endQuantityRange === null ||
          quantity <= rate.endQuantityRange),
    );
  }

  // ---------- orders ----------

  /** `POST /orders`; with `isMock` every check runs and nothing is stored ("Skip any interactions with the database"). */
  async createOrder(partnerId: string, body: unknown, isMock: boolean): Promise<Record<string, unknown>> {
    const order = parseSyntax(orderSchema, body, 'order');
    const company = this.ownCompany(partnerId, order.companyId);
    const now = this.now();
    const lines = order.lineItems.map((line, index) => {
      const where = `lineItems[${index}]`;
      const product = this.products.get(line.productId.toLowerCase())?.seed;
      if (product === undefined)
        throw pax8Errors.unprocessable(`${where}: Invalid productId ${line.productId}`);
      if (line.quantity < 1) throw pax8Errors.unprocessable(`${where}: quantity must be at least 1`);
      if (!product.pricing.some((entry) => entry.billingTerm === line.billingTerm))
        throw pax8Errors.unprocessable(
          `${where}: billingTerm ${line.billingTerm} is not offered for ${product.name}`,
        );
      const commitmentId = line.commitmentTermId ?? line.commitmentTermID;
      // CreateLineItem.commitmentTermId: "required when the product … has requiresCommitment set to true".
      if (product.requiresCommitment && commitmentId === undefined)
        throw pax8Errors.unprocessable(`${where}: commitmentTermId is required for ${product.name}`);
      const commitment =
        commitmentId === undefined
          ? undefined
          : product.commitments.find((entry) => entry.id.toLowerCase() === commitmentId.toLowerCase());
      if (commitmentId !== undefined && commitment === undefined)
        throw pax8Errors.unprocessable(
          `${where}: commitmentTermId ${commitmentId} is not a commitment of ${product.name}`,
        );
      // The commitment must be at least as long as the billing term (CreateLineItem.commitmentTermId).
      if (commitment !== undefined && commitmentMonths(commitment.term) < billingTermMonths(line.billingTerm))
        throw pax8Errors.unprocessable(
          `${where}: commitment ${commitment.term} is shorter than ${line.billingTerm}`,
        );
      if (
        line.provisionStartDate !== undefined &&
        Date.parse(line.provisionStartDate) > now.getTime() + dayInMs
      )
        throw pax8Errors.unprocessable(
          `${where}: scheduled orders (a future provisionStartDate) are not supported`,
        );
      const details = new Map(
        (line.provisioningDetails ?? []).map((detail) => [detail.key, detail.values[0]]),
      );
      const msTenantId = details.get('msTenantId');
      if (msTenantId !== undefined && msTenantId !== '' && !guidPattern.test(msTenantId))
        throw pax8Errors.unprocessable(`${where}: msTenantId must be a tenant GUID`);
      return { line, product, commitment, msTenantId, msDomain: details.get('msDomain') };
    });

    const lineItems = lines.map(({ line, product, commitment }, index) => ({
      ...(isMock ? {} : { id: randomUUID() }),
      productId: product.id,
      ...(commitment === undefined ? {} : { commitmentTermId: commitment.id }),
      provisionStartDate: now.toISOString(),
      billingTerm: line.billingTerm,
      quantity: line.quantity,
      lineItemNumber: line.lineItemNumber ?? index + 1,
    }));
    const json: Record<string, unknown> = {
      ...(isMock ? {} : { id: randomUUID() }),
      companyId: company.seed.id,
      createdDate: now.toISOString().slice(0, 10),
      orderedBy: order.orderedBy ?? 'Pax8 Partner',
      ...(order.orderedByUserEmail === undefined ? {} : { orderedByUserEmail: order.orderedByUserEmail }),
      isScheduled: false,
      lineItems,
    };
    if (isMock) return this.createdOrderJson(json);

    // A Microsoft order names the customer's tenant (msTenantId) or asks for a new one (msDomain).
    for (const { product, msTenantId, msDomain } of lines) {
      if (company.msTenantId !== undefined || product.graph === undefined) continue;
      if (msTenantId !== undefined && msTenantId !== '') company.msTenantId = msTenantId.toLowerCase();
      else if (msDomain !== undefined && msDomain !== '') {
        company.msTenantId = randomUUID();
        await this.createTenant(company.msTenantId, company.seed.name, msDomain);
      }
    }
    lines.forEach(({ line, product, commitment }, index) => {
      const item = lineItems[index];
      if (item === undefined) return;
      const subscription = this.newSubscription(
        partnerId,
        company,
        product,
        line.quantity,
        line.billingTerm,
        commitment,
      );
      Object.assign(item, { subscriptionId: subscription.id });
    });
    this.orders.set(String(json['id']), { partnerId, json });
    await this.syncGraph(new Set([company.seed.id.toLowerCase()]));
    return this.createdOrderJson(json);
  }

  /** The Create Order answer (example `microsoft-office-365-e3-order-response`) names no orderer; GET does. */
  private createdOrderJson(json: Record<string, unknown>): Record<string, unknown> {
    const { orderedBy: _by, orderedByUserEmail: _email, ...created } = this.orderJson(json);
    return created;
  }

  private newSubscription(
    partnerId: string,
    company: CompanyState,
    product: SeedProduct,
    quantity: number,
    billingTerm: BillingTerm,
    commitment: Commitment | undefined,
  ): SubscriptionState {
    const now = this.now();
    const rate = this.rateFor(product, billingTerm, quantity);
    const pending = this.provisioning.state;
    const state: SubscriptionState = {
      id: randomUUID(),
      partnerId,
      companyId: company.seed.id,
      productId: product.id,
      quantity,
      provisionedQuantity: pending === null ? quantity : 0,
      status: pending ?? 'Active',
      startDate: now.toISOString(),
      endDate: undefined,
      createdDate: now.toISOString(),
      updatedDate: undefined,
      billingStart: now.toISOString().slice(0, 10),
      price: rate?.suggestedRetailPrice ?? 0,
      partnerCost: rate?.partnerBuyRate ?? 0,
      currencyCode: 'USD',
      billingTerm,
      vendorSubscriptionId: product.graph === undefined ? undefined : randomUUID(),
      commitmentTerm:
        commitment === undefined
          ? undefined
          : {
              id: commitment.id,
              term: commitment.term,
              endDate: addMonths(now, commitmentMonths(commitment.term)).toISOString(),
            },
      pendingUntilMs: pending === null ? undefined : now.getTime() + this.provisioning.delayInMs,
      history: [],
      appliedChanges: 0,
    };
    state.history.push(this.subscriptionJson(state));
    this.subscriptions.set(state.id, state);
    return state;
  }

  /** lineItemNumber is write-only in the Order schema. */
  private orderJson(json: Record<string, unknown>): Record<string, unknown> {
    const lineItems = (json['lineItems'] as Record<string, unknown>[]).map(
      ({ lineItemNumber: _number, ...item }) => item,
    );
    return { ...json, lineItems };
  }

  listOrders(partnerId: string, query: URLSearchParams): Page<Record<string, unknown>> {
    const companyId = query.get('companyId');
    if (companyId !== null) this.ownCompany(partnerId, companyId);
    const matching = [...this.orders.values()].filter(
      (order) =>
        order.partnerId === partnerId &&
        (companyId === null || String(order.json['companyId']).toLowerCase() === companyId.toLowerCase()),
    );
    return this.pageOf(
      matching.map((order) => this.orderJson(order.json)),
      query,
    );
  }

  getOrder(partnerId: string, orderId: string): Record<string, unknown> {
    const order = this.orders.get(orderId.toLowerCase());
    if (order === undefined || order.partnerId !== partnerId) throw pax8Errors.notFound('Order', orderId);
    return this.orderJson(order.json);
  }

  // ---------- subscriptions ----------

  private subscriptionJson(state: SubscriptionState): SubscriptionJson {
    const product = this.products.get(state.productId.toLowerCase())?.seed;
    return {
      id: state.id,
      companyId: state.companyId,
      productId: state.productId,
      ...(state.vendorSubscriptionId === undefined
        ? {}
        : { vendorSubscriptionId: state.vendorSubscriptionId }),
      ...(product?.vendorSku === undefined ? {} : { vendorSkuId: product.vendorSku }),
      quantity: state.quantity,
      startDate: state.startDate,
      ...(state.endDate === undefined ? {} : { endDate: state.endDate }),
      createdDate: state.createdDate,
      ...(state.updatedDate === undefined ? {} : { updatedDate: state.updatedDate }),
      billingStart: state.billingStart,
      status: state.status,
      price: state.price,
      currencyCode: state.currencyCode,
      partnerCost: state.partnerCost,
      productName: product?.name ?? '',
      billingTerm: state.billingTerm,
      ...(state.commitmentTerm === undefined ? {} : { commitmentTerm: { ...state.commitmentTerm } }),
    };
  }

  private ownSubscription(partnerId: string, subscriptionId: string): SubscriptionState {
    const state = this.subscriptions.get(subscriptionId.toLowerCase());
    if (state === undefined || state.partnerId !== partnerId)
      throw pax8Errors.notFound('Subscription', subscriptionId);
    return state;
  }

  listSubscriptions(partnerId: string, query: URLSearchParams): Page<SubscriptionJson> {
    const status = this.enumParam(query, 'status', subscriptionStatuses);
    const billingTerm = this.enumParam(query, 'billingTerm', billingTerms);
    const companyId = query.get('companyId');
    if (companyId !== null) this.ownCompany(partnerId, companyId);
    const productId = query.get('productId')?.toLowerCase();
    const matching = [...this.subscriptions.values()].filter(
      (state) =>
        state.partnerId === partnerId &&
        (status === undefined || state.status === status) &&
        (billingTerm === undefined || state.billingTerm === billingTerm) &&
        (companyId === null || state.companyId.toLowerCase() === companyId.toLowerCase()) &&
        (productId === undefined || state.productId.toLowerCase() === productId),
    );
    const sorted = this.sortBy(
      matching,
      query,
      sorts.subscriptions,
      (state, field) => {
        if (field === 'quantity' || field === 'price') return state[field];
        const value = state[field as 'startDate' | 'endDate' | 'createdDate' | 'billingStart'];
        return `${value === undefined ? '' : new Date(value).toISOString()}|${state.id}`;
      },
      'createdDate,desc',
    );
    return this.pageOf(
      sorted.map((state) => this.subscriptionJson(state)),
      query,
    );
  }

  getSubscription(partnerId: string, subscriptionId: string): SubscriptionJson {
    return this.subscriptionJson(this.ownSubscription(partnerId, subscriptionId));
  }

  history(partnerId: string, subscriptionId: string): { content: SubscriptionJson[] } {
    return { content: [...this.ownSubscription(partnerId, subscriptionId).history].reverse() };
  }

  /**
   * `PUT /subscriptions/{id}`: "At least one of the following fields are required: Price, BillingTerm,
   * Quantity, StartDate"; "NOT supported for subscriptions with a future date". The quantity is absolute.
   */
  async updateSubscription(
    partnerId: string,
    subscriptionId: string,
    body: unknown,
  ): Promise<SubscriptionJson> {
    const state = this.ownSubscription(partnerId, subscriptionId);
    const update = parseSyntax(updateSchema, body, 'subscription update');
    if (
      update.quantity === undefined &&
      update.price === undefined &&
      update.billingTerm === undefined &&
      update.startDate === undefined
    )
      throw pax8Errors.badRequest(
        'At least one of the following fields is required: price, billingTerm, quantity, startDate',
      );
    const now = this.now();
    if (state.status === 'Cancelled' || state.status === 'PendingCancel')
      throw pax8Errors.unprocessable(`Subscription ${state.id} is ${state.status} and cannot be updated`);
    if (Date.parse(state.startDate) > now.getTime())
      throw pax8Errors.unprocessable('Updating a subscription with a future start date is not supported');
    const product = this.product(state.productId).seed;
    const commitment = product.commitments.find((entry) => entry.id === state.commitmentTerm?.id);
    const inCommitment =
      state.commitmentTerm !== undefined && Date.parse(state.commitmentTerm.endDate) > now.getTime();
    if (update.quantity !== undefined && update.quantity !== state.quantity) {
      if (update.quantity < 1) throw pax8Errors.unprocessable('quantity must be at least 1');
      // Commitment.allowForQuantityIncrease / allowForQuantityDecrease "during commitment term".
      if (inCommitment && commitment !== undefined) {
        if (update.quantity < state.quantity && !commitment.allowForQuantityDecrease)
          throw pax8Errors.unprocessable(
            `The ${commitment.term} commitment does not allow a quantity decrease before ${state.commitmentTerm?.endDate ?? ''}`,
          );
        if (update.quantity > state.quantity && !commitment.allowForQuantityIncrease)
          throw pax8Errors.unprocessable(
            `The ${commitment.term} commitment does not allow a quantity increase`,
          );
      }
    }
    if (
      update.billingTerm !== undefined &&
      !product.pricing.some((entry) => entry.billingTerm === update.billingTerm)
    )
      throw pax8Errors.unprocessable(`billingTerm ${update.billingTerm} is not offered for ${product.name}`);
    if (update.price !== undefined && update.price < 0)
      throw pax8Errors.unprocessable('price cannot be negative');

    let changed = false;
    if (update.quantity !== undefined && update.quantity !== state.quantity) {
      state.quantity = update.quantity;
      const pending = this.provisioning.state;
      if (pending === null) {
        state.provisionedQuantity = update.quantity;
      } else {
        // The change waits for Microsoft; Graph keeps the old seats until it completes.
        state.status = pending;
        state.pendingUntilMs = now.getTime() + this.provisioning.delayInMs;
      }
      changed = true;
    }
    if (update.billingTerm !== undefined && update.billingTerm !== state.billingTerm) {
      state.billingTerm = update.billingTerm;
      const rate = this.rateFor(product, update.billingTerm, state.quantity);
      if (update.price === undefined && rate !== undefined) state.price = rate.suggestedRetailPrice;
      if (rate !== undefined) state.partnerCost = rate.partnerBuyRate;
      changed = true;
    }
    if (update.price !== undefined && update.price !== state.price) {
      state.price = update.price;
      changed = true;
    }
    if (update.startDate !== undefined && update.startDate !== state.startDate) {
      state.startDate = new Date(update.startDate).toISOString();
      changed = true;
    }
    if (changed) {
      state.updatedDate = now.toISOString();
      state.appliedChanges += 1;
      state.history.push(this.subscriptionJson(state));
      await this.syncGraph(new Set([state.companyId.toLowerCase()]));
    }
    return this.subscriptionJson(state);
  }

  /**
   * `DELETE /subscriptions/{id}?cancelDate=` → 204; the subscription is `PendingCancel` ("Deprovisioning
   * request pending") with `endDate` = the cancel date, and `Cancelled` once the clock passes it.
   */
  async cancelSubscription(
    partnerId: string,
    subscriptionId: string,
    cancelDateText: string | null,
  ): Promise<void> {
    const state = this.ownSubscription(partnerId, subscriptionId);
    if (cancelDateText !== null && Number.isNaN(Date.parse(cancelDateText)))
      throw pax8Errors.invalidParam('cancelDate', 'must be a date-time');
    const now = this.now();
    if (state.status === 'Cancelled' || state.status === 'PendingCancel')
      throw pax8Errors.unprocessable(`Subscription ${state.id} is already ${state.status}`);
    const product = this.product(state.productId).seed;
    const commitment = product.commitments.find((entry) => entry.id === state.commitmentTerm?.id);
    const commitmentEnd =
      state.commitmentTerm === undefined ? undefined : Date.parse(state.commitmentTerm.endDate);
    let end: number;
    if (cancelDateText !== null) {
      end = Date.parse(cancelDateText);
      // A cancel date a day or more in the past (inferred: the docs do not say).
      if (end < now.getTime() - dayInMs) throw pax8Errors.unprocessable('cancelDate cannot be in the past');
      end = Math.max(end, now.getTime());
    } else {
      end = this.billingPeriodEnd(state, now).getTime();
    }
    if (
      commitment !== undefined &&
      commitmentEnd !== undefined &&
      end < commitmentEnd &&
      !commitment.allowForEarlyCancellation
    ) {
      if (cancelDateText !== null)
        throw pax8Errors.unprocessable(
          `The ${commitment.term} commitment does not allow cancellation before ${state.commitmentTerm?.endDate ?? ''}`,
        );
      end = commitmentEnd;
    }
    state.status = 'PendingCancel';
    state.endDate = new Date(end).toISOString();
    state.updatedDate = now.toISOString();
    state.pendingUntilMs = undefined;
    state.history.push(this.subscriptionJson(state));
    await this.syncGraph(new Set([state.companyId.toLowerCase()]));
  }

  /** Without a cancelDate the subscription runs to the end of its current billing period (inferred). */
  private billingPeriodEnd(state: SubscriptionState, now: Date): Date {
    const months = billingTermMonths(state.billingTerm);
    if (months === 0) return now;
    const start = new Date(state.startDate);
    let end = start;
    for (let period = 1; end.getTime() <= now.getTime(); period++) end = addMonths(start, months * period);
    return end;
  }

  // ---------- time ----------

  /** Completes provisioning and cancellations that became due; keeps Graph in step. */
  async processTime(): Promise<{ activated: number; cancelled: number }> {
    const now = this.now().getTime();
    const touched = new Set<string>();
    let activated = 0;
    let cancelled = 0;
    for (const state of this.subscriptions.values()) {
      if (state.pendingUntilMs !== undefined && state.pendingUntilMs <= now) {
        state.pendingUntilMs = undefined;
        state.provisionedQuantity = state.quantity;
        state.status = 'Active';
        state.updatedDate = new Date(now).toISOString();
        state.history.push(this.subscriptionJson(state));
        touched.add(state.companyId.toLowerCase());
        activated += 1;
      }
      if (
        state.status === 'PendingCancel' &&
        state.endDate !== undefined &&
        Date.parse(state.endDate) <= now
      ) {
        state.status = 'Cancelled';
        state.provisionedQuantity = 0;
        state.updatedDate = new Date(now).toISOString();
        state.history.push(this.subscriptionJson(state));
        touched.add(state.companyId.toLowerCase());
        cancelled += 1;
      }
      // An auto-renewing commitment starts its next term when the last one ends.
      if (state.commitmentTerm !== undefined && state.status !== 'Cancelled') {
        const commitment = this.products
          .get(state.productId.toLowerCase())
          ?.seed.commitments.find((entry) => entry.id === state.commitmentTerm?.id);
        const months = commitmentMonths(state.commitmentTerm.term);
        while (
          commitment?.autoRenew === true &&
          months > 0 &&
          Date.parse(state.commitmentTerm.endDate) <= now
        )
          state.commitmentTerm.endDate = addMonths(
            new Date(state.commitmentTerm.endDate),
            months,
          ).toISOString();
      }
    }
    if (touched.size > 0) await this.syncGraph(touched);
    return { activated, cancelled };
  }

  /**
   * Each subscription of a Microsoft product in a company with a tenant is a Graph companySubscription
   * (commerceSubscriptionId = vendorSubscriptionId) holding its provisioned seats; Cancelled → Deleted.
   * Nothing is pushed before Microsoft has seats (a new order still pending).
   */
  private async syncGraph(companyIds: Set<string>): Promise<void> {
    const graph = this.options.graph;
    if (graph === undefined) return;
    for (const state of this.subscriptions.values()) {
      if (!companyIds.has(state.companyId.toLowerCase())) continue;
      const tenantId = this.companies.get(state.companyId.toLowerCase())?.msTenantId;
      const sku = this.products.get(state.productId.toLowerCase())?.seed.graph;
      const commerceSubscriptionId = state.vendorSubscriptionId;
      if (tenantId === undefined || sku === undefined || commerceSubscriptionId === undefined) continue;
      const key = `${tenantId}|${commerceSubscriptionId}`;
      const status = state.status === 'Cancelled' ? 'Deleted' : 'Enabled';
      const next = state.endDate ?? state.commitmentTerm?.endDate ?? null;
      const nextLifecycleDateTime = next === null ? null : new Date(next).toISOString();
      const fingerprint = `${state.provisionedQuantity}|${status}|${nextLifecycleDateTime ?? ''}`;
      if (this.pushed.get(key) === fingerprint) continue;
      if (!this.pushed.has(key) && state.provisionedQuantity === 0) continue;
      try {
        await graph.putSubscription(tenantId, sku, {
          commerceSubscriptionId,
          totalLicenses: status === 'Deleted' ? state.quantity : state.provisionedQuantity,
          status,
          createdDateTime: new Date(state.createdDate).toISOString(),
          nextLifecycleDateTime,
        });
        this.pushed.set(key, fingerprint);
      } catch (error) {
        this.options.log(`graph seat sync failed for ${tenantId}/${sku.skuPartNumber}: ${String(error)}`);
      }
    }
  }

  // ---------- admin ----------

  adminSnapshot(): Record<string, unknown> {
    return {
      now: this.now().toISOString(),
      provisioning: this.provisioning,
      companies: [...this.companies.values()].map((company) => ({
        id: company.seed.id,
        partnerId: company.seed.partnerId,
        msTenantId: company.msTenantId ?? null,
      })),
      subscriptions: [...this.subscriptions.values()].map((state) => ({
        id: state.id,
        companyId: state.companyId,
        productId: state.productId,
        quantity: state.quantity,
        provisionedQuantity: state.provisionedQuantity,
        status: state.status,
        appliedChanges: state.appliedChanges,
      })),
      orders: this.orders.size,
    };
  }
}
