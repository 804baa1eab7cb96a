import type { BillingCycle, TermDuration } from '../domain/nce.js';
import type { SecretSealer } from './secret-sealer.js';

/**
 * Buying and resizing Microsoft licences for a customer (1-Tier CSP through Partner Center).
 * Domain types only; the adapter owns the HTTP shapes. Every mutating call carries an `operationKey`:
 * the same key always means the same operation, so repeating a call after a timeout or crash never
 * creates a second customer, order or seat. Use a new key for a new intent (e.g. a later retry of a
 * reduction that was refused). Failures are AppErrors: ReductionWindowClosed, CancellationWindowClosed,
 * AgreementMissing, Throttled (retryAfterInSeconds), NotFound, PreconditionFailed, Unavailable, Validation,
 * Conflict, Timeout (Partner Center accepted the work and is still doing it: repeat with the same key).
 */
export interface Commerce {
  /** Is this initial domain (`name.onmicrosoft.com`) still free? */
  isDomainAvailable(domain: string, options?: ReadOptions): Promise<boolean>;
  /** Partner Center's address check, with its suggestions; create a customer only with a sound address. */
  validateAddress(address: PostalAddress, options?: ReadOptions): Promise<AddressValidation>;
  /**
   * Creates the customer and its tenant. The reply's admin password is a OneTimeSecret: seal it at
   * once; it is never logged or serialised. A repeat with the same operationKey (also after a lost
   * reply) is the same customer; a domain that is already our customer's comes back `alreadyExisted`,
   * one that is another tenant's is AlreadyExists.
   */
  createCustomer(input: NewCustomer, options: MutationOptions): Promise<CreatedCustomer>;
  /** The current Microsoft Customer Agreement template (its id goes into the attestation). */
  getCustomerAgreementTemplate(options?: ReadOptions): Promise<AgreementTemplate>;
  /** Attestations on record for the customer (only Microsoft Customer Agreements). */
  listAgreements(customerId: string, options?: ReadOptions): Promise<RecordedAgreement[]>;
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
   * The offers of one product SKU as the catalog has them now. Catalog ids change over time, so a
   * purchase looks its availability up shortly before buying.
   */
  findOffers(productId: string, skuId: string, options?: ReadOptions): Promise<Offer[]>;
  /**
   * Creates the cart and checks it out; each line becomes a new subscription. Order groups that
   * failed come back in `errors`; repeating the call with the same operationKey re-attempts only
   * those groups (the ordered ones are never bought twice). A line whose availability id went stale
   * is bought under the catalog's current id for the same product, SKU, term and billing cycle (the
   * order lines say which). Provisioning is asynchronous: an order still provisioning after a short
   * wait comes back `pending` without subscription ids; read it again with getOrder.
   */
  buy(customerId: string, lines: PurchaseLine[], options: MutationOptions): Promise<Purchase>;
  /**
   * What the lines would cost, as Partner Center prices a cart (create-a-cart.md: each line's
   * `pricing`), without checking it out: catalog availabilities carry no price. The cart is left to
   * expire (7 days); a repeat with the same operationKey is the same cart.
   */
  quote(customerId: string, lines: PurchaseLine[], options: MutationOptions): Promise<Quote>;
  /** An order as it stands; `pending` orders have no subscription ids yet. */
  getOrder(customerId: string, orderId: string, options?: ReadOptions): Promise<PurchasedOrder>;
  listSubscriptions(customerId: string, options?: ReadOptions): Promise<CommerceSubscription[]>;
  getSubscription(
    customerId: string,
    subscriptionId: string,
    options?: ReadOptions,
  ): Promise<CommerceSubscription>;
  /**
   * Grows at once (a new seat lot); shrinks only by seats whose 168-hour window is open. When Partner
   * Center answers 202 the change is polled until the subscription shows it; if it still does not,
   * Timeout (retryable): repeating with the same operationKey waits for the same change.
   */
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
  adminCredentials: { userName: string; password: OneTimeSecret } | undefined;
  /**
   * The domain already belonged to one of our customers and Partner Center no longer recognised the
   * request as a repeat: that customer is returned, without credentials (they went out the first time).
   */
  alreadyExisted: boolean;
}

const hidden = '[redacted]';

/**
 * A secret handed to us once (the new tenant's admin password). Its text is reachable only through
 * `seal`, so it cannot end up in a log line, a JSON body or an error by accident.
 */
export class OneTimeSecret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The sealed form (e.g. for Table storage); the clear text never leaves this call. */
  seal(sealer: Pick<SecretSealer, 'seal'>): string {
    return sealer.seal(this.#value);
  }

  toString(): string {
    return hidden;
  }

  toJSON(): string {
    return hidden;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `OneTimeSecret(${hidden})`;
  }
}

/** validate-an-address.md statuses. Only `None` means the address is wrong. */
export type AddressValidationStatus =
  | 'VerifiedShippable'
  | 'Verified'
  | 'InteractionRequired'
  | 'StreetPartial'
  | 'PremisesPartial'
  | 'Multiple'
  | 'None'
  | 'NotValidated';

export interface AddressValidation {
  status: AddressValidationStatus;
  /** Verified/VerifiedShippable: the address can be used as given (or as the single suggestion). */
  verified: boolean;
  suggestedAddresses: PostalAddress[];
  message: string | undefined;
}

export interface AgreementTemplate {
  templateId: string;
  agreementType: string;
  agreementLink: string | undefined;
}

export interface RecordedAgreement {
  templateId: string;
  type: string;
  dateAgreed: Date | undefined;
  contact: { firstName: string; lastName: string; email: string };
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

export interface Quote {
  lines: {
    catalogItemId: string;
    quantity: number;
    /** Per seat per billing period; undefined when Partner Center did not price the line. */
    unitPrice: number | undefined;
    currency: string | undefined;
  }[];
}

export interface Purchase {
  orders: PurchasedOrder[];
  errors: { orderGroupId: string | undefined; code: string; description: string }[];
}

export interface PurchasedOrder {
  id: string;
  /** `completed`, `pending` (still provisioning), or another Partner Center order status. */
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
