import { z } from 'zod';

/**
 * Pax8 Partner API answers (OpenAPI "PARTNER ENDPOINTS" 1.0.0, https://devx.pax8.com/openapi/partner-endpoints.json;
 * Authentication OpenAPI for `/token`). Lenient where Pax8 is: unknown fields pass, optional fields
 * may be null, dates come in several forms (`2020-12-03`, `2021-01-01T08:30:00Z`,
 * `2020-12-01T13:20:13.153-0700`), so they stay strings until `pax8Date` reads them.
 */

const text = z.string().nullish();
const number = z.number().nullish();
const flag = z.boolean().nullish();

export const tokenResponseSchema = z
  .object({
    access_token: z.string().min(1),
    token_type: z.string().regex(/^bearer$/i),
    expires_in: z.number().positive(),
  })
  .loose();

/** `{type, message, instance, status, details}`; the token endpoint answers `{error, error_description}`. */
export const errorBodySchema = z
  .object({
    type: text,
    message: text,
    instance: text,
    status: number,
    details: z.array(z.object({ message: text, type: text }).loose()).nullish(),
    error: text,
    error_description: text,
  })
  .loose();

const pageInfoSchema = z
  .object({
    size: z.number().int().positive(),
    totalElements: z.number().int().nonnegative(),
    totalPages: z.number().int().nonnegative(),
    number: z.number().int().nonnegative(),
  })
  .loose();

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ content: z.array(item), page: pageInfoSchema }).loose();
}

export const companySchema = z
  .object({ id: z.string().min(1), name: z.string(), externalId: text, status: text })
  .loose();

export const subscriptionSchema = z
  .object({
    id: z.string().min(1),
    companyId: z.string().min(1),
    productId: z.string().min(1),
    vendorSubscriptionId: text,
    quantity: z.number().nonnegative(),
    status: z.string().min(1),
    billingTerm: text,
    startDate: text,
    endDate: text,
    createdDate: text,
    updatedDate: text,
    price: number,
    partnerCost: number,
    currencyCode: text,
    productName: text,
    commitmentTerm: z.object({ id: text, term: text, endDate: text }).loose().nullish(),
  })
  .loose();
export type SubscriptionBody = z.infer<typeof subscriptionSchema>;

export const productSchema = z
  .object({
    id: z.string().min(1),
    name: z.string(),
    vendorName: text,
    sku: text,
    vendorSku: text,
    requiresCommitment: flag,
  })
  .loose();

const rateSchema = z
  .object({
    partnerBuyRate: number,
    suggestedRetailPrice: number,
    startQuantityRange: number,
    endQuantityRange: number,
    chargeType: text,
  })
  .loose();

export const pricingListSchema = z
  .object({
    content: z.array(
      z
        .object({
          billingTerm: text,
          commitmentTerm: text,
          commitmentTermInMonths: number,
          type: text,
          unitOfMeasurement: text,
          rates: z.array(rateSchema).nullish(),
        })
        .loose(),
    ),
  })
  .loose();

export const dependenciesSchema = z
  .object({
    commitmentDependencies: z
      .array(
        z
          .object({
            id: z.string().min(1),
            term: text,
            autoRenew: flag,
            allowForQuantityIncrease: flag,
            allowForQuantityDecrease: flag,
            allowForEarlyCancellation: flag,
            cancellationFeeApplied: flag,
          })
          .loose(),
      )
      .nullish(),
  })
  .loose();

export const orderSchema = z
  .object({
    id: text,
    companyId: z.string().min(1),
    lineItems: z.array(
      z
        .object({ id: text, productId: z.string().min(1), subscriptionId: text, quantity: z.number() })
        .loose(),
    ),
  })
  .loose();

/** Any answer body (DELETE answers 204 with none). */
export const emptySchema = z.unknown();

/** Reads Pax8's date forms; `-0700` offsets get their colon so every runtime parses them. */
export function pax8Date(value: string | null | undefined): Date | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const normalised = value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const parsed = new Date(normalised);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}
