import type { BillingCycle, TermDuration } from '../domain/nce.js';

/**
 * Buying and resizing Microsoft licences for a customer (1-Tier CSP through Partner Center).
 * Domain types only; the adapter owns the HTTP shapes. Every mutating call carries an `operationKey`:
 * the same key always means the same operation, so repeating a call after a timeout or crash never
 * creates a second customer, order or seat. Use a new key for a new intent (e.g. a later retry of a
 * reduction that was refused). Failures are AppErrors: ReductionWindowClosed, CancellationWindowClosed,
 * AgreementMissing, Throttled (retryAfterInSeconds), NotFound, PreconditionFailed, Unavailable, Validation.
 */
export interface Commerce {
  createCustomer(input: NewCustomer, options: MutationOptions): Promise<CreatedCustomer>;
  /** Records the partner's attestation that the customer accepted the Microsoft Customer Agreement. */
  confirmAgreement(
    customerId: string,
    attestation: AgreementAttestation,
    options: MutationOptions,
  ): Promise<void>;
  getCustomer(customerId: string, options?: ReadOptions): Promise<CommerceCustomer>;
  listCustomers(options?: ListCustomersOptions): AsyncIterable<CommerceCustomer>;
  listOffers(options?: ReadOptions): Promise<Offer[]>;
  /**
   * Creates the cart and checks it out; each line becomes a new subscription. Order groups that
   * failed come back in `errors`; repeating the call with the same operationKey re-attempts only
   * those groups (the ordered ones are never bought twice).
   */
  buy(customerId: string, lines: PurchaseLine[], options: MutationOptions): Promise<Purchase>;
  listSubscriptions(customerId: string, options?: ReadOptions): Promise<CommerceSubscription[]>;
  getSubscription(
    customerId: string,
    subscriptionId: string,
    options?: ReadOptions,
  ): Promise<CommerceSubscription>;
  /** Grows at once (a new seat lot); shrinks only by seats whose 168-hour window is open. */
  changeQuantity(
    customerId: string,
    subscriptionId: string,
    quantity: number,
    options: MutationOptions,
  ): Promise<CommerceSubscription>;
  /** Cancels the whole subscription; allowed only within 168 hours of purchase or renewal. */
  cancel(customerId: string, subscriptionId: string, options: MutationOptions): Promise<CommerceSubscription>;
  setAutoRenew(
    customerId: string,
    subscriptionId: string,
    enabled: boolean,
    options: MutationOptions,
  ): Promise<CommerceSubscription>;
  /** What the next term should be (quantity, term, billing cycle or SKU); applied at renewal only. */
  scheduleRenewalChange(
    customerId: string,
    subscriptionId: string,
    change: RenewalChange,
    options: MutationOptions,
  ): Promise<CommerceSubscription>;
}

export interface ReadOptions {
  correlationId?: string;
  abortSignal?: AbortSignal;
}

export interface MutationOptions extends ReadOptions {
  /** Stable key of this operation (e.g. `${sagaId}:${step}`); retries reuse it. */
  operationKey: string;
}

export interface ListCustomersOptions extends ReadOptions {
  pageSize?: number;
  /** Only customers of this indirect reseller (2-Tier). */
  indirectResellerId?: string;
}

export interface PostalAddress {
  country: string;
  city: string;
  state?: string;
  addressLine1: string;
  addressLine2?: string;
  postalCode: string;
  firstName?: string;
  lastName?: string;
  phoneNumber?: string;
}

export interface NewCustomer {
  /** e.g. `contoso.onmicrosoft.com`; the customer's initial domain. */
  domain: string;
  companyName: string;
  email: string;
  culture: string;
  language: string;
  address: PostalAddress;
  organizationRegistrationNumber?: string;
  /** The indirect reseller this customer belongs to (2-Tier). */
  associatedPartnerId?: string;
}

export interface CommerceCustomer {
  id: string;
  tenantId: string;
  domain: string;
  companyName: string | undefined;
  relationshipToPartner: string | undefined;
  associatedPartnerId: string | undefined;
}

export interface CreatedCustomer {
  customer: CommerceCustomer;
  /** One-time admin credentials of the new tenant; undefined when Partner Center did not return them. */
  adminCredentials: { userName: string; password: string } | undefined;
}

export interface AgreementAttestation {
  firstName: string;
  lastName: string;
  email: string;
  phoneNumber?: string;
  dateAgreed: Date;
  templateId: string;
}

export interface OfferTerm {
  termDuration: TermDuration;
  billingCycle: BillingCycle;
  listPrice: number | undefined;
}

export interface Offer {
  /** `productId:skuId:availabilityId` */
  catalogItemId: string;
  productId: string;
  skuId: string;
  availabilityId: string;
  productTitle: string;
  skuTitle: string;
  minimumQuantity: number;
  maximumQuantity: number;
  /** The Graph `subscribedSkus.skuId` this SKU grants, when Partner Center says so. */
  licenceSkuId: string | undefined;
  currency: string | undefined;
  terms: OfferTerm[];
}

export interface PurchaseLine {
  catalogItemId: string;
  quantity: number;
  termDuration: TermDuration;
  billingCycle: BillingCycle;
}

export interface Purchase {
  orders: PurchasedOrder[];
  errors: { orderGroupId: string | undefined; code: string; description: string }[];
}

export interface PurchasedOrder {
  id: string;
  status: string;
  lines: { catalogItemId: string; quantity: number; subscriptionId: string | undefined }[];
}

export type SubscriptionStatus =
  'none' | 'active' | 'pending' | 'suspended' | 'expired' | 'disabled' | 'deleted';

export interface CommerceSubscription {
  id: string;
  catalogItemId: string;
  offerName: string | undefined;
  quantity: number;
  status: SubscriptionStatus;
  autoRenewEnabled: boolean;
  termDuration: TermDuration | undefined;
  billingCycle: string | undefined;
  isNewCommerce: boolean;
  termStartedAt: Date | undefined;
  /** Last day of the current term. */
  commitmentEndDate: Date | undefined;
  cancellationAllowedUntil: Date | undefined;
  /** Seats that can still be reduced, per lot, with the end of each lot's window. */
  refundableSeats: { quantity: number; allowedUntil: Date }[];
  scheduledRenewal: RenewalChange | undefined;
  etag: string | undefined;
}

export interface RenewalChange {
  quantity?: number;
  termDuration?: TermDuration;
  billingCycle?: BillingCycle;
  /** Change SKU at renewal: `productId:skuId:availabilityId`. */
  catalogItemId?: string;
}
