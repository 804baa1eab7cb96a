import { z } from 'zod';

/**
 * Partner Center response shapes, as far as the adapter reads them. Objects are loose: Partner Center
 * adds fields over time, and a subscription PATCH must send back the full resource it was given.
 */

export const errorBodySchema = z
  .object({
    code: z.union([z.number(), z.string()]).optional(),
    description: z.string().optional(),
    message: z.string().optional(),
    statusCode: z.number().optional(),
    data: z.array(z.unknown()).optional(),
  })
  .loose();

const linkSchema = z
  .object({
    uri: z.string(),
    method: z.string().optional(),
    headers: z.array(z.object({ key: z.string(), value: z.string() }).loose()).optional(),
  })
  .loose();

export const customerSchema = z
  .object({
    id: z.string(),
    companyProfile: z
      .object({ tenantId: z.string().optional(), domain: z.string(), companyName: z.string().optional() })
      .loose(),
    billingProfile: z.object({ companyName: z.string().optional() }).loose().optional(),
    relationshipToPartner: z.string().optional(),
    associatedPartnerId: z.string().optional(),
    userCredentials: z.object({ userName: z.string(), password: z.string() }).loose().optional(),
  })
  .loose();

export const customerPageSchema = z
  .object({
    totalCount: z.number().optional(),
    items: z.array(customerSchema),
    continuationToken: z.string().optional(),
    links: z.object({ next: linkSchema.optional() }).loose().optional(),
  })
  .loose();

export const agreementSchema = z.object({ type: z.string(), templateId: z.string() }).loose();

export const productSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    productType: z.object({ id: z.string() }).loose().optional(),
  })
  .loose();
export const skuSchema = z
  .object({
    id: z.string(),
    productId: z.string(),
    title: z.string(),
    minimumQuantity: z.number(),
    maximumQuantity: z.number(),
    dynamicAttributes: z.object({ provisioningId: z.string().optional() }).loose().optional(),
  })
  .loose();
export const availabilitySchema = z
  .object({
    id: z.string(),
    productId: z.string(),
    skuId: z.string(),
    catalogItemId: z.string(),
    defaultCurrency: z.object({ code: z.string() }).loose().optional(),
    terms: z
      .array(z.object({ duration: z.string(), billingCycle: z.string().optional() }).loose())
      .default([]),
  })
  .loose();

export function collectionOf<T extends z.ZodType>(item: T) {
  return z.object({ totalCount: z.number().optional(), items: z.array(item) }).loose();
}

export const cartSchema = z.object({ id: z.string(), status: z.string().optional() }).loose();

/** A cart with its lines' prices (create-a-cart.md: `lineItems[].pricing.listPrice`, `currencyCode`). */
export const pricedCartSchema = cartSchema.extend({
  lineItems: z
    .array(
      z
        .object({
          catalogItemId: z.string(),
          quantity: z.number(),
          currencyCode: z.string().optional(),
          pricing: z.object({ listPrice: z.number().optional() }).loose().optional(),
        })
        .loose(),
    )
    .optional(),
});

export const orderSchema = z
  .object({
    id: z.string(),
    status: z.string().optional(),
    lineItems: z
      .array(
        z
          .object({
            offerId: z.string(),
            quantity: z.number(),
            subscriptionId: z.string().optional(),
          })
          .loose(),
      )
      .default([]),
  })
  .loose();

export const checkoutResultSchema = z
  .object({
    orders: z.array(orderSchema).default([]),
    orderErrors: z
      .array(
        z
          .object({
            orderGroupId: z.string().optional(),
            code: z.union([z.number(), z.string()]),
            description: z.string().optional(),
          })
          .loose(),
      )
      .default([]),
  })
  .loose();

const addressSchema = z
  .object({
    country: z.string(),
    city: z.string().optional(),
    state: z.string().optional(),
    addressLine1: z.string().optional(),
    addressLine2: z.string().optional(),
    postalCode: z.string().optional(),
  })
  .loose();

/** validate-an-address.md AddressValidationResponse. */
export const addressValidationSchema = z
  .object({
    originalAddress: addressSchema.optional(),
    suggestedAddresses: z.array(addressSchema).nullable().default([]),
    status: z.string(),
    validationMessage: z.string().nullable().optional(),
  })
  .loose();

/** agreement-metadata-resources.md (the example prints `agreementType`; the table says `type`). */
export const agreementMetadataSchema = z
  .object({
    templateId: z.string(),
    agreementType: z.string().optional(),
    type: z.string().optional(),
    agreementLink: z.string().optional(),
  })
  .loose();

export const recordedAgreementSchema = z
  .object({
    templateId: z.string(),
    type: z.string(),
    dateAgreed: z.string().optional(),
    primaryContact: z.object({ firstName: z.string(), lastName: z.string(), email: z.string() }).loose(),
  })
  .loose();

/** HEAD answers have no body. */
export const emptySchema = z.unknown();

export const subscriptionSchema = z
  .object({
    id: z.string(),
    offerId: z.string(),
    offerName: z.string().optional(),
    quantity: z.number(),
    status: z.enum(['none', 'active', 'pending', 'suspended', 'expired', 'disabled', 'deleted']),
    autoRenewEnabled: z.boolean().default(false),
    termDuration: z.string().optional(),
    billingCycle: z.string().optional(),
    productType: z.object({ id: z.string() }).loose().optional(),
    effectiveStartDate: z.string().optional(),
    commitmentEndDate: z.string().optional(),
    cancellationAllowedUntilDate: z.string().optional(),
    refundableQuantity: z
      .object({
        totalQuantity: z.number(),
        details: z
          .array(z.object({ quantity: z.number(), allowedUntilDateTime: z.string() }).loose())
          .default([]),
      })
      .loose()
      .optional(),
    scheduledNextTermInstructions: z
      .object({
        product: z
          .object({
            productId: z.string(),
            skuId: z.string(),
            availabilityId: z.string(),
            billingCycle: z.string().optional(),
            termDuration: z.string().optional(),
          })
          .loose()
          .optional(),
        quantity: z.number().optional(),
      })
      .loose()
      .nullable()
      .optional(),
    attributes: z.object({ etag: z.string().optional() }).loose().optional(),
  })
  .loose();

export type SubscriptionBody = z.infer<typeof subscriptionSchema>;
