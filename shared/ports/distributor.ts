/**
 * Seats bought through a distributor (2-Tier CSP, e.g. Pax8): the companies the partner bills there,
 * their subscriptions, the catalogue entry behind each, and the few writes the licensing use cases
 * make. Domain types only; the adapter owns the HTTP shapes.
 *
 * Retries. Distributor APIs have no idempotency key (Pax8 documents none), so every write is made safe
 * to retry by reading first: `changeQuantity` sets an absolute quantity and, on every attempt
 * (including the retry after a lost response), reads the subscription and sends the change only when
 * the quantity is not already the target; `cancel` does the same with the subscription's status.
 * This relies on an accepted change being visible on the next read, which Pax8 shows (the new quantity
 * at once, with status PendingAutomated until provisioned: its `subscription-history` example). Two
 * callers changing the same subscription at once are not serialised here: the caller must do that.
 * `placeOrder` snapshots the company's subscriptions before it sends, and after an answerless attempt
 * looks for the subscriptions that order would have made before it sends again.
 *
 * Failures are AppErrors: NotFound (also for a company or subscription that is not the partner's),
 * Validation (the distributor refused the request or a business rule said no; `details.httpStatus`),
 * Throttled (retryable, `retryAfterInSeconds` when the distributor said), Unavailable, Timeout,
 * Unauthenticated, Conflict (an order whose outcome cannot be established), Upstream (unexpected shape).
 */
export interface Distributor {
  listCompanies(options?: DistributorReadOptions): Promise<DistributorCompany[]>;
  /** Every subscription of the company, all pages. */
  listSubscriptions(
    companyId: string,
    options?: ListDistributorSubscriptionsOptions,
  ): Promise<DistributorSubscription[]>;
  /** NotFound when the subscription does not exist or belongs to another company. */
  getSubscription(
    companyId: string,
    subscriptionId: string,
    options?: DistributorReadOptions,
  ): Promise<DistributorSubscription>;
  /** The catalogue entry with its prices per billing term and its commitment terms. */
  getProduct(productId: string, options?: DistributorReadOptions): Promise<DistributorProduct>;
  /** Sets the subscription's quantity to `quantity` (absolute); a no-op when it already is. */
  changeQuantity(
    companyId: string,
    subscriptionId: string,
    quantity: number,
    options?: DistributorWriteOptions,
  ): Promise<DistributorSubscription>;
  /** Asks the distributor to end the subscription (at `cancelAt`, or its own default date). */
  cancel(
    companyId: string,
    subscriptionId: string,
    options?: DistributorCancelOptions,
  ): Promise<DistributorSubscription>;
  /** Buys new subscriptions; with `dryRun` the distributor only validates (Pax8 `isMock`). */
  placeOrder(order: DistributorOrder, options?: DistributorOrderOptions): Promise<DistributorPlacedOrder>;
}

export interface DistributorReadOptions {
  abortSignal?: AbortSignal;
}

export type DistributorWriteOptions = DistributorReadOptions;

export interface DistributorCancelOptions extends DistributorWriteOptions {
  cancelAt?: Date;
}

export interface DistributorOrderOptions extends DistributorWriteOptions {
  dryRun?: boolean;
}

export interface ListDistributorSubscriptionsOptions extends DistributorReadOptions {
  status?: DistributorSubscriptionStatus;
  productId?: string;
  /** Page size asked of the distributor (the adapter reads every page regardless). */
  pageSize?: number;
}

export type DistributorBillingTerm =
  'Monthly' | 'Annual' | '2-Year' | '3-Year' | 'One-Time' | 'Trial' | 'Activation';

/**
 * `active` has the seats; `pending` is being provisioned (the new quantity may not be in the tenant
 * yet); `pendingCancel` still has its seats until `endDate`; `cancelled` has none.
 */
export type DistributorSubscriptionStatus =
  'active' | 'pending' | 'pendingCancel' | 'cancelled' | 'trial' | 'waitingForDetails';

export interface DistributorCompany {
  id: string;
  name: string;
  /** The partner's own reference for the company, when set. */
  externalId: string | undefined;
  status: 'active' | 'inactive' | 'deleted';
}

export interface DistributorSubscription {
  id: string;
  companyId: string;
  productId: string;
  productName: string | undefined;
  /** The vendor's (Microsoft's) subscription id, when the distributor gives it. */
  vendorSubscriptionId: string | undefined;
  quantity: number;
  status: DistributorSubscriptionStatus;
  /** The distributor's own word for the status (e.g. Pax8 `PendingAutomated`). */
  distributorStatus: string;
  billingTerm: DistributorBillingTerm | undefined;
  startDate: Date | undefined;
  /** When it ends (set once a cancellation is pending). */
  endDate: Date | undefined;
  commitment: { id: string | undefined; term: string | undefined; endDate: Date | undefined } | undefined;
  price: number | undefined;
  partnerCost: number | undefined;
  currencyCode: string | undefined;
  createdAt: Date | undefined;
  updatedAt: Date | undefined;
}

export interface DistributorRate {
  partnerBuyRate: number | undefined;
  suggestedRetailPrice: number | undefined;
  startQuantity: number | undefined;
  /** undefined = no upper bound. */
  endQuantity: number | undefined;
  chargeType: string | undefined;
}

export interface DistributorPricing {
  billingTerm: DistributorBillingTerm | undefined;
  commitmentTerm: string | undefined;
  commitmentTermInMonths: number | undefined;
  type: string | undefined;
  unitOfMeasurement: string | undefined;
  rates: DistributorRate[];
}

export interface DistributorCommitment {
  id: string;
  term: string | undefined;
  autoRenew: boolean | undefined;
  allowsQuantityIncrease: boolean | undefined;
  allowsQuantityDecrease: boolean | undefined;
  allowsEarlyCancellation: boolean | undefined;
  cancellationFee: boolean | undefined;
}

export interface DistributorProduct {
  id: string;
  name: string;
  vendorName: string | undefined;
  sku: string | undefined;
  /** The vendor's SKU (for Microsoft NCE e.g. `CFQ7TTC0LF8Q:0001`). */
  vendorSku: string | undefined;
  requiresCommitment: boolean;
  pricing: DistributorPricing[];
  commitments: DistributorCommitment[];
}

export interface DistributorOrderLine {
  productId: string;
  quantity: number;
  billingTerm: DistributorBillingTerm;
  /** Required for products that require a commitment. */
  commitmentId?: string;
  /** Vendor provisioning answers (Pax8 `provisioningDetails`, e.g. `msTenantId`). */
  provisioningDetails?: Record<string, string>;
}

export interface DistributorOrder {
  companyId: string;
  lines: DistributorOrderLine[];
}

export interface DistributorPlacedOrder {
  /** undefined for a dry run, or when the order was found again after a lost answer. */
  orderId: string | undefined;
  dryRun: boolean;
  lines: { productId: string; quantity: number; subscriptionId: string | undefined }[];
}
