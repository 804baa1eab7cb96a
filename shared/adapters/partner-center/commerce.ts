import type { z } from 'zod';
import { billingCycles, termDurations, type BillingCycle, type TermDuration } from '../../domain/nce.js';
import { AppError } from '../../errors.js';
import type {
  AgreementAttestation,
  Commerce,
  CommerceCustomer,
  CommerceSubscription,
  CreatedCustomer,
  ListCustomersOptions,
  MutationOptions,
  NewCustomer,
  Offer,
  Purchase,
  PurchaseLine,
  ReadOptions,
  RenewalChange,
} from '../../ports/commerce.js';
import { PartnerCenterClient, deterministicUuid, type PartnerCenterClientOptions } from './client.js';
import {
  agreementSchema,
  availabilitySchema,
  cartSchema,
  checkoutResultSchema,
  collectionOf,
  customerPageSchema,
  customerSchema,
  productSchema,
  skuSchema,
  subscriptionSchema,
  type SubscriptionBody,
} from './schemas.js';

export type PartnerCenterCommerceOptions = PartnerCenterClientOptions & {
  /** Market for catalog reads. */
  country?: string;
};

const enc = encodeURIComponent;

function requestId(options: MutationOptions, step: string): string {
  if (options.operationKey.trim() === '') throw new AppError('Validation', 'operationKey is required');
  return deterministicUuid(`${options.operationKey}#${step}`);
}

function asTerm(value: string | undefined): TermDuration | undefined {
  return termDurations.find((term) => term === value?.toUpperCase());
}

function asCycle(value: string | undefined): BillingCycle | undefined {
  return billingCycles.find((cycle) => cycle === value?.toLowerCase());
}

function date(value: string | undefined): Date | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

function toCustomer(body: z.infer<typeof customerSchema>): CommerceCustomer {
  return {
    id: body.id,
    tenantId: body.companyProfile.tenantId ?? body.id,
    domain: body.companyProfile.domain,
    companyName: body.companyProfile.companyName ?? body.billingProfile?.companyName,
    relationshipToPartner: body.relationshipToPartner,
    associatedPartnerId: body.associatedPartnerId,
  };
}

function toSubscription(body: SubscriptionBody): CommerceSubscription {
  const next = body.scheduledNextTermInstructions ?? undefined;
  let scheduledRenewal: RenewalChange | undefined;
  if (next !== undefined) {
    scheduledRenewal = {};
    if (next.quantity !== undefined) scheduledRenewal.quantity = next.quantity;
    const product = next.product;
    if (product !== undefined) {
      scheduledRenewal.catalogItemId = `${product.productId}:${product.skuId}:${product.availabilityId}`;
      const term = asTerm(product.termDuration);
      if (term !== undefined) scheduledRenewal.termDuration = term;
      const cycle = asCycle(product.billingCycle);
      if (cycle !== undefined) scheduledRenewal.billingCycle = cycle;
    }
  }
  return {
    id: body.id,
    catalogItemId: body.offerId,
    offerName: body.offerName,
    quantity: body.quantity,
    status: body.status,
    autoRenewEnabled: body.autoRenewEnabled,
    termDuration: asTerm(body.termDuration),
    billingCycle: body.billingCycle,
    isNewCommerce: body.productType?.id === 'OnlineServicesNCE',
    termStartedAt: date(body.effectiveStartDate),
    commitmentEndDate: date(body.commitmentEndDate),
    cancellationAllowedUntil: date(body.cancellationAllowedUntilDate),
    refundableSeats: (body.refundableQuantity?.details ?? []).flatMap((detail) => {
      const allowedUntil = date(detail.allowedUntilDateTime);
      return allowedUntil === undefined ? [] : [{ quantity: detail.quantity, allowedUntil }];
    }),
    scheduledRenewal,
    etag: body.attributes?.etag,
  };
}

/** Commerce over the Partner Center REST API (1-Tier CSP). */
export function createPartnerCenterCommerce(options: PartnerCenterCommerceOptions): Commerce {
  const client = new PartnerCenterClient(options);
  const country = options.country ?? 'US';

  const readSubscription = async (
    customerId: string,
    subscriptionId: string,
    read: ReadOptions | undefined,
  ): Promise<SubscriptionBody> =>
    client.send({
      method: 'GET',
      path: `/v1/customers/${enc(customerId)}/subscriptions/${enc(subscriptionId)}`,
      schema: subscriptionSchema,
      correlationId: read?.correlationId,
      abortSignal: read?.abortSignal,
    });

  /**
   * PATCH sends back the full resource with the change applied (as Partner Center requires) and the
   * etag it was read with. The MS-RequestId comes from the operation key, so a PATCH whose answer
   * was lost is answered from Partner Center's memory rather than applied twice.
   */
  const patch = async (
    customerId: string,
    current: SubscriptionBody,
    change: Record<string, unknown>,
    options: MutationOptions,
    step: string,
  ): Promise<CommerceSubscription> => {
    const updated = await client.send({
      method: 'PATCH',
      path: `/v1/customers/${enc(customerId)}/subscriptions/${enc(current.id)}`,
      schema: subscriptionSchema,
      body: { ...current, ...change },
      requestId: requestId(options, step),
      correlationId: options.correlationId,
      ifMatch: current.attributes?.etag,
      abortSignal: options.abortSignal,
    });
    return toSubscription(updated);
  };

  return {
    async createCustomer(input: NewCustomer, mutation: MutationOptions): Promise<CreatedCustomer> {
      const body = await client.send({
        method: 'POST',
        path: '/v1/customers',
        schema: customerSchema,
        body: {
          companyProfile: {
            domain: input.domain,
            ...(input.organizationRegistrationNumber === undefined
              ? {}
              : { organizationRegistrationNumber: input.organizationRegistrationNumber }),
          },
          billingProfile: {
            email: input.email,
            culture: input.culture,
            language: input.language,
            companyName: input.companyName,
            defaultAddress: input.address,
          },
          ...(input.associatedPartnerId === undefined
            ? {}
            : { associatedPartnerId: input.associatedPartnerId }),
        },
        requestId: requestId(mutation, 'create-customer'),
        correlationId: mutation.correlationId,
        abortSignal: mutation.abortSignal,
      });
      return { customer: toCustomer(body), adminCredentials: body.userCredentials };
    },

    async confirmAgreement(customerId: string, attestation: AgreementAttestation, mutation: MutationOptions) {
      try {
        await client.send({
          method: 'POST',
          path: `/v1/customers/${enc(customerId)}/agreements`,
          schema: agreementSchema,
          body: {
            primaryContact: {
              firstName: attestation.firstName,
              lastName: attestation.lastName,
              email: attestation.email,
              ...(attestation.phoneNumber === undefined ? {} : { phoneNumber: attestation.phoneNumber }),
            },
            templateId: attestation.templateId,
            dateAgreed: attestation.dateAgreed.toISOString(),
            type: 'MicrosoftCustomerAgreement',
          },
          requestId: requestId(mutation, 'confirm-agreement'),
          correlationId: mutation.correlationId,
          abortSignal: mutation.abortSignal,
        });
      } catch (error) {
        // The same attestation already on record is the outcome we wanted.
        if (error instanceof AppError && error.code === 'AlreadyExists') return;
        throw error;
      }
    },

    async getCustomer(customerId: string, read?: ReadOptions) {
      const body = await client.send({
        method: 'GET',
        path: `/v1/customers/${enc(customerId)}`,
        schema: customerSchema,
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      return toCustomer(body);
    },

    async *listCustomers(list?: ListCustomersOptions) {
      const size = list?.pageSize ?? 100;
      const filter =
        list?.indirectResellerId === undefined
          ? ''
          : `&filter=${enc(JSON.stringify({ Field: 'IndirectReseller', Value: list.indirectResellerId, Operator: 'starts_with' }))}`;
      let continuation: string | undefined;
      do {
        const page = await client.send({
          method: 'GET',
          path: `/v1/customers?size=${size}${filter}`,
          schema: customerPageSchema,
          correlationId: list?.correlationId,
          abortSignal: list?.abortSignal,
          ...(continuation === undefined ? {} : { headers: { 'ms-continuationtoken': continuation } }),
        });
        for (const item of page.items) yield toCustomer(item);
        continuation =
          page.links?.next?.headers?.find((entry) => entry.key.toLowerCase() === 'ms-continuationtoken')
            ?.value ?? (page.links?.next === undefined ? undefined : page.continuationToken);
      } while (continuation !== undefined);
    },

    async listOffers(read?: ReadOptions): Promise<Offer[]> {
      const common = { correlationId: read?.correlationId, abortSignal: read?.abortSignal };
      const products = await client.send({
        method: 'GET',
        path: `/v1/products?country=${enc(country)}&targetView=OnlineServicesNCE&targetSegment=commercial`,
        schema: collectionOf(productSchema),
        ...common,
      });
      const offers: Offer[] = [];
      for (const product of products.items) {
        const skus = await client.send({
          method: 'GET',
          path: `/v1/products/${enc(product.id)}/skus?country=${enc(country)}`,
          schema: collectionOf(skuSchema),
          ...common,
        });
        for (const sku of skus.items) {
          const availabilities = await client.send({
            method: 'GET',
            path: `/v1/products/${enc(product.id)}/skus/${enc(sku.id)}/availabilities?country=${enc(country)}`,
            schema: collectionOf(availabilitySchema),
            ...common,
          });
          for (const availability of availabilities.items) {
            offers.push({
              catalogItemId: availability.catalogItemId,
              productId: product.id,
              skuId: sku.id,
              availabilityId: availability.id,
              productTitle: product.title,
              skuTitle: sku.title,
              minimumQuantity: sku.minimumQuantity,
              maximumQuantity: sku.maximumQuantity,
              licenceSkuId: sku.dynamicAttributes?.provisioningId,
              currency: availability.defaultCurrency?.code,
              terms: availability.terms.flatMap((term) => {
                const termDuration = asTerm(term.duration);
                const billingCycle = asCycle(term.billingCycle);
                return termDuration === undefined || billingCycle === undefined
                  ? []
                  : [{ termDuration, billingCycle, listPrice: undefined }];
              }),
            });
          }
        }
      }
      return offers;
    },

    async buy(customerId: string, lines: PurchaseLine[], mutation: MutationOptions): Promise<Purchase> {
      if (lines.length === 0) throw new AppError('Validation', 'a purchase needs at least one line');
      const cart = await client.send({
        method: 'POST',
        path: `/v1/customers/${enc(customerId)}/carts`,
        schema: cartSchema,
        body: {
          lineItems: lines.map((line, id) => ({
            id,
            catalogItemId: line.catalogItemId,
            quantity: line.quantity,
            billingCycle: line.billingCycle,
            termDuration: line.termDuration,
          })),
        },
        requestId: requestId(mutation, 'cart'),
        correlationId: mutation.correlationId,
        abortSignal: mutation.abortSignal,
      });
      // Checkout is idempotent per cart and per MS-RequestId: a retry after a lost answer buys once.
      const result = await client.send({
        method: 'POST',
        path: `/v1/customers/${enc(customerId)}/carts/${enc(cart.id)}/checkout`,
        schema: checkoutResultSchema,
        requestId: requestId(mutation, 'checkout'),
        correlationId: mutation.correlationId,
        abortSignal: mutation.abortSignal,
      });
      return {
        orders: result.orders.map((order) => ({
          id: order.id,
          status: order.status ?? 'unknown',
          lines: order.lineItems.map((line) => ({
            catalogItemId: line.offerId,
            quantity: line.quantity,
            subscriptionId: line.subscriptionId,
          })),
        })),
        errors: result.orderErrors.map((error) => ({
          orderGroupId: error.orderGroupId,
          code: String(error.code),
          description: error.description ?? '',
        })),
      };
    },

    async listSubscriptions(customerId: string, read?: ReadOptions) {
      const page = await client.send({
        method: 'GET',
        path: `/v1/customers/${enc(customerId)}/subscriptions`,
        schema: collectionOf(subscriptionSchema),
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      return page.items.map(toSubscription);
    },

    async getSubscription(customerId: string, subscriptionId: string, read?: ReadOptions) {
      return toSubscription(await readSubscription(customerId, subscriptionId, read));
    },

    async changeQuantity(
      customerId: string,
      subscriptionId: string,
      quantity: number,
      mutation: MutationOptions,
    ) {
      if (!Number.isInteger(quantity) || quantity < 1)
        throw new AppError('Validation', 'quantity must be a positive whole number; cancel to go to zero');
      const current = await readSubscription(customerId, subscriptionId, mutation);
      // Already there (e.g. the first attempt's answer was lost): nothing to send.
      if (current.quantity === quantity) return toSubscription(current);
      return patch(customerId, current, { quantity }, mutation, 'change-quantity');
    },

    async cancel(customerId: string, subscriptionId: string, mutation: MutationOptions) {
      const current = await readSubscription(customerId, subscriptionId, mutation);
      if (current.status === 'deleted') return toSubscription(current);
      return patch(customerId, current, { status: 'deleted' }, mutation, 'cancel');
    },

    async setAutoRenew(
      customerId: string,
      subscriptionId: string,
      enabled: boolean,
      mutation: MutationOptions,
    ) {
      const current = await readSubscription(customerId, subscriptionId, mutation);
      if (current.autoRenewEnabled === enabled) return toSubscription(current);
      return patch(customerId, current, { autoRenewEnabled: enabled }, mutation, 'auto-renew');
    },

    async scheduleRenewalChange(
      customerId: string,
      subscriptionId: string,
      change: RenewalChange,
      mutation: MutationOptions,
    ) {
      const current = await readSubscription(customerId, subscriptionId, mutation);
      const [productId, skuId, availabilityId] = (change.catalogItemId ?? current.offerId).split(':');
      if (productId === undefined || skuId === undefined || availabilityId === undefined)
        throw new AppError('Validation', `not a catalog item id: ${change.catalogItemId ?? current.offerId}`);
      return patch(
        customerId,
        current,
        {
          autoRenewEnabled: true,
          scheduledNextTermInstructions: {
            product: {
              productId,
              skuId,
              availabilityId,
              billingCycle: change.billingCycle ?? current.billingCycle,
              termDuration: change.termDuration ?? current.termDuration,
            },
            quantity: change.quantity ?? current.quantity,
          },
        },
        mutation,
        'schedule-renewal',
      );
    },
  };
}
