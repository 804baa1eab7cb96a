import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/**
 * The distributor peer's seed. Entries are in Pax8's own JSON shapes (Partner API OpenAPI
 * `components/schemas`: Company, Product/ProductDetail, Pricing, Commitment, Subscription — as published
 * at https://devx.pax8.com/openapi/partner-endpoints.json, copy in api-evangelist/pax8
 * `openapi/_original/pax8-partner-endpoints-openapi.json`), each with its `id`. Fields the real API does
 * not have are marked "peer only"; they never appear in answers.
 */

export const subscriptionStatuses = [
  'Active',
  'Cancelled',
  'PendingManual',
  'PendingAutomated',
  'PendingCancel',
  'WaitingForDetails',
  'Trial',
  'Converted',
  'PendingActivation',
  'Activated',
] as const;
export type SubscriptionStatus = (typeof subscriptionStatuses)[number];

export const billingTerms = [
  'Monthly',
  'Annual',
  '2-Year',
  '3-Year',
  'One-Time',
  'Trial',
  'Activation',
] as const;
export type BillingTerm = (typeof billingTerms)[number];

export const companyStatuses = ['Active', 'Inactive', 'Deleted'] as const;

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
const dateTime = z.string().refine((value) => !Number.isNaN(Date.parse(value)), 'not a date');
const defaultPartner = 'partner-1';

const app = z.object({
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /** peer only: which partner the credential belongs to (a company is visible to its partner only). */
  partnerId: z.string().min(1).default(defaultPartner),
});

const address = z
  .object({
    street: z.string().optional(),
    street2: z.string().optional(),
    city: z.string().optional(),
    stateOrProvince: z.string().optional(),
    postalCode: z.string().optional(),
    country: z
      .string()
      .regex(/^[A-Z]{2}$/)
      .optional(),
  })
  .strict();

const company = z
  .object({
    id: guid,
    name: z.string().min(1),
    address: address.default({}),
    phone: z.string().optional(),
    website: z.string().optional(),
    externalId: z.string().optional(),
    billOnBehalfOfEnabled: z.boolean().default(false),
    selfServiceAllowed: z.boolean().default(false),
    orderApprovalRequired: z.boolean().default(false),
    status: z.enum(companyStatuses).default('Active'),
    updatedDate: dateTime.optional(),
    /** peer only: the partner the company belongs to. */
    partnerId: z.string().min(1).default(defaultPartner),
    /**
     * peer only: the Microsoft customer tenant behind the company, named after the `msTenantId`
     * provisioning detail Pax8 asks for on Microsoft orders ("Microsoft Customer Tenant ID"). The peer
     * keeps this tenant's Graph `subscribedSkus` in step. An order line's `msTenantId` sets it too.
     */
    msTenantId: guid.optional(),
    /** peer only: `<prefix>` of the tenant's `<prefix>.onmicrosoft.com` (Pax8's `msDomain` detail). */
    msDomain: z
      .string()
      .regex(/^[a-z0-9-]+$/i)
      .optional(),
  })
  .strict();

const rate = z
  .object({
    partnerBuyRate: z.number().nonnegative(),
    suggestedRetailPrice: z.number().nonnegative(),
    startQuantityRange: z.number().int().nonnegative().optional(),
    endQuantityRange: z.number().int().positive().nullable().optional(),
    chargeType: z.enum(['Per Unit', 'Flat Rate']).default('Per Unit'),
  })
  .strict();

const pricing = z
  .object({
    billingTerm: z.enum(billingTerms),
    commitmentTerm: z.string().optional(),
    commitmentTermInMonths: z.number().int().positive().optional(),
    type: z.enum(['Flat', 'Volume', 'Tiered', 'Mark-Up']).default('Flat'),
    unitOfMeasurement: z.string().default('Each'),
    rates: z.array(rate).min(1),
  })
  .strict();

const commitment = z
  .object({
    id: guid,
    term: z.string().regex(/^(Monthly|Annual|\d+-(Month|Year))$/),
    autoRenew: z.boolean().default(true),
    renewalWindowDaysBeforeTermEnd: z.number().int().nonnegative().default(0),
    renewalWindowDaysAfterTermEnd: z.number().int().nonnegative().default(0),
    allowForQuantityIncrease: z.boolean().default(true),
    allowForQuantityDecrease: z.boolean().default(false),
    allowForEarlyCancellation: z.boolean().default(false),
    cancellationFeeApplied: z.boolean().default(false),
    isTransferable: z.boolean().default(false),
  })
  .strict();

const graphSku = z.object({
  skuId: guid,
  skuPartNumber: z.string().min(1),
  servicePlans: z.array(z.object({ servicePlanId: guid, servicePlanName: z.string() })).default([]),
});

const product = z
  .object({
    id: guid,
    name: z.string().min(1),
    vendorName: z.string().min(1),
    shortDescription: z.string().optional(),
    description: z.string().optional(),
    sku: z.string().min(1),
    vendorSku: z.string().optional(),
    requiresCommitment: z.boolean().default(false),
    pricing: z.array(pricing).min(1),
    commitments: z.array(commitment).default([]),
    /** peer only: the Graph `subscribedSkus` entry a seat of this product grants in the customer tenant. */
    graph: graphSku.optional(),
  })
  .strict()
  .refine((value) => !value.requiresCommitment || value.commitments.length > 0, {
    message: 'a product that requires a commitment needs commitments',
  });

const subscription = z
  .object({
    id: guid,
    companyId: guid,
    productId: guid,
    quantity: z.number().int().nonnegative(),
    startDate: dateTime,
    endDate: dateTime.optional(),
    createdDate: dateTime.optional(),
    billingStart: z.string().optional(),
    status: z.enum(subscriptionStatuses).default('Active'),
    price: z.number().nonnegative().optional(),
    partnerCost: z.number().nonnegative().optional(),
    currencyCode: z.string().length(3).default('USD'),
    billingTerm: z.enum(billingTerms),
    vendorSubscriptionId: z.string().optional(),
    commitmentTerm: z.object({ id: guid, term: z.string(), endDate: dateTime }).strict().optional(),
  })
  .strict();

export const provisioningSchema = z
  .object({
    /** State of a new line or quantity change until Microsoft has it; null = at once `Active`. */
    state: z.enum(['PendingAutomated', 'PendingManual']).nullable().default(null),
    /** Virtual time until it becomes `Active` (and Graph shows the seats). */
    delayInMs: z.number().int().nonnegative().default(0),
  })
  .strict();

export const seedSchema = z
  .object({
    clock: z
      .object({ start: z.iso.datetime().optional(), frozen: z.boolean().default(false) })
      .default({ frozen: false }),
    /** Token lifetime in seconds; Pax8 documents exactly 86,400 (TokenResponse.expires_in enum). */
    tokenLifetimeInSeconds: z.number().int().positive().default(86_400),
    provisioning: provisioningSchema.default({ state: null, delayInMs: 0 }),
    /** Automatic throttling per partner in real time; Pax8 documents 429 but publishes no rate. */
    limits: z
      .object({ requestsPerMinute: z.number().int().positive().nullable().default(null) })
      .default({ requestsPerMinute: null }),
    apps: z.array(app).min(1),
    companies: z.array(company).default([]),
    products: z.array(product).default([]),
    subscriptions: z.array(subscription).default([]),
  })
  .strict()
  .superRefine((seed, context) => {
    const companies = new Set(seed.companies.map((entry) => entry.id.toLowerCase()));
    const products = new Set(seed.products.map((entry) => entry.id.toLowerCase()));
    seed.subscriptions.forEach((entry, index) => {
      if (!companies.has(entry.companyId.toLowerCase()))
        context.addIssue({
          code: 'custom',
          path: ['subscriptions', index, 'companyId'],
          message: 'unknown company',
        });
      if (!products.has(entry.productId.toLowerCase()))
        context.addIssue({
          code: 'custom',
          path: ['subscriptions', index, 'productId'],
          message: 'unknown product',
        });
    });
  });

export type Seed = z.infer<typeof seedSchema>;
export type SeedInput = z.input<typeof seedSchema>;
export type SeedCompany = z.infer<typeof company>;
export type SeedProduct = z.infer<typeof product>;
export type SeedSubscription = z.infer<typeof subscription>;
export type Commitment = z.infer<typeof commitment>;
export type Provisioning = z.infer<typeof provisioningSchema>;

export async function loadSeed(seed: SeedInput | string): Promise<Seed> {
  const raw: unknown = typeof seed === 'string' ? JSON.parse(await readFile(seed, 'utf8')) : seed;
  return seedSchema.parse(raw);
}
