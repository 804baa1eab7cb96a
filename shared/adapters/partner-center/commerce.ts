import type { z } from 'zod';
import { billingCycles, termDurations, type BillingCycle, type TermDuration } from '../../domain/nce.js';
import { AppError } from '../../errors.js';
import { withRetry, type RetryOptions } from '../../retry.js';
import {
  OneTimeSecret,
  type AddressValidation,
  type AddressValidationStatus,
  type AgreementAttestation,
  type AgreementTemplate,
  type Commerce,
  type CommerceCustomer,
  type CommerceSubscription,
  type CreatedCustomer,
  type ListCustomersOptions,
  type MutationOptions,
  type NewCustomer,
  type Offer,
  type PostalAddress,
  type Purchase,
  type PurchasedOrder,
  type PurchaseLine,
  type Quote,
  type ReadOptions,
  type RecordedAgreement,
  type RenewalChange,
} from '../../ports/commerce.js';
import { PartnerCenterClient, deterministicUuid, type PartnerCenterClientOptions } from './client.js';
import {
  addressValidationSchema,
  agreementMetadataSchema,
  agreementSchema,
  availabilitySchema,
  cartSchema,
  checkoutResultSchema,
  collectionOf,
  customerPageSchema,
  customerSchema,
  emptySchema,
  orderSchema,
  pricedCartSchema,
  productSchema,
  recordedAgreementSchema,
  skuSchema,
  subscriptionSchema,
  type SubscriptionBody,
} from './schemas.js';

export type PartnerCenterCommerceOptions = PartnerCenterClientOptions & {
  /** Market for catalog reads. */
  country?: string;
  /**
   * How long to wait for work Partner Center does asynchronously (an order still provisioning, a PATCH
   * answered 202), through the same retry helper: attempts and backoff between reads.
   */
  poll?: RetryOptions;
};

const addressStatuses: readonly AddressValidationStatus[] = [
  'VerifiedShippable',
  'Verified',
  'InteractionRequired',
  'StreetPartial',
  'PremisesPartial',
  'Multiple',
  'None',
  'NotValidated',
];

function toAddress(body: z.infer<typeof addressValidationSchema>['originalAddress']): PostalAddress {
  return {
    country: body?.country ?? '',
    city: body?.city ?? '',
    addressLine1: body?.addressLine1 ?? '',
    postalCode: body?.postalCode ?? '',
    ...(body?.state === undefined ? {} : { state: body.state }),
    ...(body?.addressLine2 === undefined ? {} : { addressLine2: body.addressLine2 }),
  };
}

function toOrder(body: z.infer<typeof orderSchema>): PurchasedOrder {
  return {
    id: body.id,
    status: body.status ?? 'unknown',
    lines: body.lineItems.map((line) => ({
      catalogItemId: line.offerId,
      quantity: line.quantity,
      subscriptionId: line.subscriptionId,
    })),
  };
}

/** Provisioned: completed, and every line has its subscription id (checkout-a-cart.md). */
function provisioned(order: PurchasedOrder): boolean {
  return order.status === 'completed' && order.lines.every((line) => line.subscriptionId !== undefined);
}

/** Thrown inside a poll so the retry helper waits and reads again. */
function stillWorking(what: string): AppError {
  return new AppError('Timeout', what, { retryable: true });
}

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
  const poll = <T>(read: () => Promise<T>, abortSignal: AbortSignal | undefined): Promise<T> =>
    withRetry(read, {
      maxAttempts: 8,
      baseDelayInMs: 1000,
      maxDelayInMs: 30_000,
      ...options.poll,
      ...(abortSignal === undefined ? {} : { abortSignal }),
    });

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
   * was lost is answered from Partner Center's memory rather than applied twice. A 202 (the change
   * takes longer, change-the-quantity-of-a-subscription.md) is followed by reading the subscription
   * until `applied` holds; if it still does not, Timeout — the same key later waits for the same change.
   */
  const patch = async (
    customerId: string,
    current: SubscriptionBody,
    change: Record<string, unknown>,
    mutation: MutationOptions,
    step: string,
    applied: (subscription: SubscriptionBody) => boolean,
  ): Promise<CommerceSubscription> => {
    const answer = await client.exchange({
      method: 'PATCH',
      path: `/v1/customers/${enc(customerId)}/subscriptions/${enc(current.id)}`,
      schema: subscriptionSchema,
      body: { ...current, ...change },
      requestId: requestId(mutation, step),
      correlationId: mutation.correlationId,
      ifMatch: current.attributes?.etag,
      abortSignal: mutation.abortSignal,
    });
    if (!answer.accepted) return toSubscription(answer.body);
    try {
      const done = await poll(async () => {
        const now = await readSubscription(customerId, current.id, mutation);
        if (!applied(now)) throw stillWorking(`subscription ${current.id}: change accepted, not applied yet`);
        return now;
      }, mutation.abortSignal);
      return toSubscription(done);
    } catch (error) {
      if (error instanceof AppError && error.code === 'Timeout')
        throw new AppError(
          'Timeout',
          `Partner Center accepted the change to subscription ${current.id} (202) and is still applying it; repeat with the same operation key to keep waiting`,
          { retryable: true, details: { subscriptionId: current.id, step } },
        );
      throw error;
    }
  };

  const readOrder = async (customerId: string, orderId: string, read: ReadOptions | undefined) =>
    toOrder(
      await client.send({
        method: 'GET',
        path: `/v1/customers/${enc(customerId)}/orders/${enc(orderId)}`,
        schema: orderSchema,
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      }),
    );

  /** Provisioning is asynchronous (checkout-a-cart.md): read pending orders until they are completed. */
  const settle = async (
    customerId: string,
    order: PurchasedOrder,
    mutation: MutationOptions,
  ): Promise<PurchasedOrder> => {
    if (provisioned(order)) return order;
    try {
      return await poll(async () => {
        const now = await readOrder(customerId, order.id, mutation);
        if (!provisioned(now)) throw stillWorking(`order ${order.id} is ${now.status}`);
        return now;
      }, mutation.abortSignal);
    } catch (error) {
      // Still provisioning after the wait: the caller gets it as pending and reads it again later.
      if (error instanceof AppError && error.code === 'Timeout')
        return readOrder(customerId, order.id, mutation);
      throw error;
    }
  };

  const offersOf = async (
    product: { id: string; title: string },
    read: ReadOptions | undefined,
  ): Promise<Offer[]> => {
    const common = { correlationId: read?.correlationId, abortSignal: read?.abortSignal };
    const skus = await client.send({
      method: 'GET',
      path: `/v1/products/${enc(product.id)}/skus?country=${enc(country)}`,
      schema: collectionOf(skuSchema),
      ...common,
    });
    const offers: Offer[] = [];
    for (const sku of skus.items) offers.push(...(await offersOfSku(product, sku, read)));
    return offers;
  };

  const offersOfSku = async (
    product: { id: string; title: string },
    sku: z.infer<typeof skuSchema>,
    read: ReadOptions | undefined,
  ): Promise<Offer[]> => {
    const availabilities = await client.send({
      method: 'GET',
      path: `/v1/products/${enc(product.id)}/skus/${enc(sku.id)}/availabilities?country=${enc(country)}`,
      schema: collectionOf(availabilitySchema),
      correlationId: read?.correlationId,
      abortSignal: read?.abortSignal,
    });
    return availabilities.items.map((availability) => ({
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
    }));
  };

  const findOffers = async (productId: string, skuId: string, read?: ReadOptions): Promise<Offer[]> => {
    const common = { correlationId: read?.correlationId, abortSignal: read?.abortSignal };
    const product = await client.send({
      method: 'GET',
      path: `/v1/products/${enc(productId)}?country=${enc(country)}`,
      schema: productSchema,
      ...common,
    });
    const sku = await client.send({
      method: 'GET',
      path: `/v1/products/${enc(productId)}/skus/${enc(skuId)}?country=${enc(country)}`,
      schema: skuSchema,
      ...common,
    });
    return offersOfSku(product, sku, read);
  };

  /** Cart + checkout under one step name: both MS-RequestIds derive from it. */
  const cartAndCheckout = async (
    customerId: string,
    lines: PurchaseLine[],
    mutation: MutationOptions,
    step: string,
  ) => {
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
      requestId: requestId(mutation, `cart${step}`),
      correlationId: mutation.correlationId,
      abortSignal: mutation.abortSignal,
    });
    // Checkout is idempotent per cart and per MS-RequestId: a retry after a lost answer buys once.
    return client.send({
      method: 'POST',
      path: `/v1/customers/${enc(customerId)}/carts/${enc(cart.id)}/checkout`,
      schema: checkoutResultSchema,
      requestId: requestId(mutation, `checkout${step}`),
      correlationId: mutation.correlationId,
      abortSignal: mutation.abortSignal,
    });
  };

  /** The same product, SKU, term and billing cycle under the availability the catalog has now. */
  const refreshLine = async (line: PurchaseLine, read: ReadOptions): Promise<PurchaseLine> => {
    const [productId, skuId] = line.catalogItemId.split(':');
    if (productId === undefined || skuId === undefined)
      throw new AppError('Validation', `not a catalog item id: ${line.catalogItemId}`);
    const current = (await findOffers(productId, skuId, read)).find((offer) =>
      offer.terms.some(
        (term) => term.termDuration === line.termDuration && term.billingCycle === line.billingCycle,
      ),
    );
    if (current === undefined)
      throw new AppError(
        'NotFound',
        `${productId}:${skuId} is no longer offered with term ${line.termDuration} billed ${line.billingCycle}`,
      );
    return { ...line, catalogItemId: current.catalogItemId };
  };

  /** verify-domain-availability.md: 200 = taken, 404 = free. */
  const isDomainAvailable = async (domain: string, read?: ReadOptions): Promise<boolean> => {
    try {
      await client.send({
        method: 'HEAD',
        path: `/v1/domains/${enc(domain.trim().toLowerCase())}`,
        schema: emptySchema,
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      return false;
    } catch (error) {
      if (error instanceof AppError && error.code === 'NotFound') return true;
      throw error;
    }
  };

  /** get-a-customer-by-name.md: filter on the Domain search field (starts_with), then the exact domain. */
  const ourCustomerWithDomain = async (
    domain: string,
    read: ReadOptions,
  ): Promise<CommerceCustomer | undefined> => {
    const wanted = domain.trim().toLowerCase();
    const filter = JSON.stringify({ Field: 'Domain', Value: wanted, Operator: 'starts_with' });
    const page = await client.send({
      method: 'GET',
      path: `/v1/customers?size=100&filter=${enc(filter)}`,
      schema: customerPageSchema,
      correlationId: read.correlationId,
      abortSignal: read.abortSignal,
    });
    const found = page.items.find((item) => item.companyProfile.domain.toLowerCase() === wanted);
    return found === undefined ? undefined : toCustomer(found);
  };

  return {
    isDomainAvailable,

    /** validate-an-address.md */
    async validateAddress(address: PostalAddress, read?: ReadOptions): Promise<AddressValidation> {
      const body = await client.send({
        method: 'POST',
        path: '/v1/validations/address',
        schema: addressValidationSchema,
        body: {
          addressLine1: address.addressLine1,
          ...(address.addressLine2 === undefined ? {} : { addressLine2: address.addressLine2 }),
          city: address.city,
          state: address.state ?? '',
          postalCode: address.postalCode,
          country: address.country,
        },
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      const status = addressStatuses.find(
        (known) => known.toLowerCase() === body.status.replaceAll(' ', '').toLowerCase(),
      );
      if (status === undefined)
        throw new AppError('Upstream', `Partner Center answered an unknown address status: ${body.status}`);
      return {
        status,
        verified: status === 'Verified' || status === 'VerifiedShippable',
        suggestedAddresses: (body.suggestedAddresses ?? []).map(toAddress),
        message: body.validationMessage ?? undefined,
      };
    },

    async createCustomer(input: NewCustomer, mutation: MutationOptions): Promise<CreatedCustomer> {
      let body: z.infer<typeof customerSchema>;
      try {
        body = await client.send({
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
      } catch (error) {
        // Refused, and the domain is taken: a repeat that Partner Center no longer recognises by its
        // MS-RequestId (our own customer), or a domain another tenant holds.
        if (!(error instanceof AppError) || error.status >= 500 || error.retryable) throw error;
        if (await isDomainAvailable(input.domain, mutation)) throw error;
        const existing = await ourCustomerWithDomain(input.domain, mutation);
        if (existing === undefined)
          throw new AppError(
            'AlreadyExists',
            `the initial domain ${input.domain} belongs to another tenant; choose another name`,
            { cause: error, details: { domain: input.domain } },
          );
        return { customer: existing, adminCredentials: undefined, alreadyExisted: true };
      }
      const credentials = body.userCredentials;
      return {
        customer: toCustomer(body),
        adminCredentials:
          credentials === undefined
            ? undefined
            : { userName: credentials.userName, password: new OneTimeSecret(credentials.password) },
        alreadyExisted: false,
      };
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

    /** get-customer-agreement-metadata.md */
    async getCustomerAgreementTemplate(read?: ReadOptions): Promise<AgreementTemplate> {
      const page = await client.send({
        method: 'GET',
        path: '/v1/agreements?agreementType=MicrosoftCustomerAgreement',
        schema: collectionOf(agreementMetadataSchema),
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      const template = page.items.find(
        (item) => (item.agreementType ?? item.type) === 'MicrosoftCustomerAgreement',
      );
      if (template === undefined)
        throw new AppError('Upstream', 'Partner Center listed no Microsoft Customer Agreement template');
      return {
        templateId: template.templateId,
        agreementType: 'MicrosoftCustomerAgreement',
        agreementLink: template.agreementLink,
      };
    },

    /** get-confirmation-of-customer-agreement.md */
    async listAgreements(customerId: string, read?: ReadOptions): Promise<RecordedAgreement[]> {
      const page = await client.send({
        method: 'GET',
        path: `/v1/customers/${enc(customerId)}/agreements?agreementType=MicrosoftCustomerAgreement`,
        schema: collectionOf(recordedAgreementSchema),
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      return page.items.map((item) => ({
        templateId: item.templateId,
        type: item.type,
        dateAgreed: date(item.dateAgreed),
        contact: {
          firstName: item.primaryContact.firstName,
          lastName: item.primaryContact.lastName,
          email: item.primaryContact.email,
        },
      }));
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

    /** get-a-list-of-products.md: new commerce items are under targetView=OnlineServices. */
    async listOffers(read?: ReadOptions): Promise<Offer[]> {
      const products = await client.send({
        method: 'GET',
        path: `/v1/products?country=${enc(country)}&targetView=OnlineServices&targetSegment=commercial`,
        schema: collectionOf(productSchema),
        correlationId: read?.correlationId,
        abortSignal: read?.abortSignal,
      });
      const offers: Offer[] = [];
      for (const product of products.items)
        if (product.productType?.id === undefined || product.productType.id === 'OnlineServicesNCE')
          offers.push(...(await offersOf(product, read)));
      return offers;
    },

    findOffers,

    /**
     * Cart + checkout with MS-RequestIds from the operation key. An availability that changed since
     * the caller looked (404/400019, nothing ordered) is looked up again once and bought under the new
     * id with its own derived keys. Pending orders are polled until provisioned; after the wait they
     * come back `pending`, to be read again with getOrder.
     */
    async buy(customerId: string, lines: PurchaseLine[], mutation: MutationOptions): Promise<Purchase> {
      if (lines.length === 0) throw new AppError('Validation', 'a purchase needs at least one line');
      let result: z.infer<typeof checkoutResultSchema>;
      try {
        result = await cartAndCheckout(customerId, lines, mutation, '');
      } catch (error) {
        if (!(error instanceof AppError && error.details?.partnerCenterCode === '400019')) throw error;
        const fresh: PurchaseLine[] = [];
        for (const line of lines) fresh.push(await refreshLine(line, mutation));
        const step = `@${fresh.map((line) => line.catalogItemId).join(',')}`;
        result = await cartAndCheckout(customerId, fresh, mutation, step);
      }
      const orders: PurchasedOrder[] = [];
      for (const order of result.orders) orders.push(await settle(customerId, toOrder(order), mutation));
      return {
        orders,
        errors: result.orderErrors.map((error) => ({
          orderGroupId: error.orderGroupId,
          code: String(error.code),
          description: error.description ?? '',
        })),
      };
    },

    async quote(customerId: string, lines: PurchaseLine[], mutation: MutationOptions): Promise<Quote> {
      const cart = await client.send({
        method: 'POST',
        path: `/v1/customers/${enc(customerId)}/carts`,
        schema: pricedCartSchema,
        body: {
          lineItems: lines.map((line, id) => ({
            id,
            catalogItemId: line.catalogItemId,
            quantity: line.quantity,
            billingCycle: line.billingCycle,
            termDuration: line.termDuration,
          })),
        },
        requestId: requestId(mutation, 'quote'),
        correlationId: mutation.correlationId,
        abortSignal: mutation.abortSignal,
      });
      return {
        lines: (cart.lineItems ?? []).map((line) => ({
          catalogItemId: line.catalogItemId,
          quantity: line.quantity,
          unitPrice: line.pricing?.listPrice,
          currency: line.currencyCode,
        })),
      };
    },

    async getOrder(customerId: string, orderId: string, read?: ReadOptions) {
      return readOrder(customerId, orderId, read);
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
      return patch(
        customerId,
        current,
        { quantity },
        mutation,
        'change-quantity',
        (now) => now.quantity === quantity,
      );
    },

    async cancel(customerId: string, subscriptionId: string, mutation: MutationOptions) {
      const current = await readSubscription(customerId, subscriptionId, mutation);
      if (current.status === 'deleted') return toSubscription(current);
      return patch(
        customerId,
        current,
        { status: 'deleted' },
        mutation,
        'cancel',
        (now) => now.status === 'deleted',
      );
    },

    async setAutoRenew(
      customerId: string,
      subscriptionId: string,
      enabled: boolean,
      mutation: MutationOptions,
    ) {
      const current = await readSubscription(customerId, subscriptionId, mutation);
      if (current.autoRenewEnabled === enabled) return toSubscription(current);
      return patch(
        customerId,
        current,
        { autoRenewEnabled: enabled },
        mutation,
        'auto-renew',
        (now) => now.autoRenewEnabled === enabled,
      );
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
        (now) => now.attributes?.etag !== current.attributes?.etag,
      );
    },
  };
}
