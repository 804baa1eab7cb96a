/** A Partner Center error as the REST API returns it: `{code, description, data, source: "PartnerFD"}`. */
export class PcError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly description: string,
    readonly data: unknown[] = [],
  ) {
    super(description);
    this.name = 'PcError';
  }

  toBody(): { code: number; description: string; data: unknown[]; source: string } {
    return {
      code: this.code,
      description: this.description.slice(0, 1024),
      data: this.data,
      source: 'PartnerFD',
    };
  }
}

/** Error codes used by the peer, with the status and wording of Partner Center's error-codes.md. */
export const pcErrors = {
  tokenMissing: () => new PcError(401, 800001, 'Partner Token missing in request context'),
  accessDenied401: (why: string) => new PcError(401, 400, `Access denied: ${why}`),
  accessDenied403: (why: string) => new PcError(403, 2032, `Access denied: ${why}`),
  noRelationship: (partnerId: string, customerId: string) =>
    new PcError(
      403,
      20002,
      `The partner ID ${partnerId} has no commerce relationship with the customer ID ${customerId}.`,
    ),
  notFound: (what: string) => new PcError(404, 1000, `${what} not found`),
  subscriptionNotFound: (id: string) => new PcError(404, 20003, `Subscription with ID ${id} not found.`),
  orderNotFound: (id: string) => new PcError(404, 20000, `Order ID ${id} not found`),
  cartNotFound: () => new PcError(404, 800008, 'Unable to retrieve cart ID'),
  invalidInput: (detail: string, data: unknown[] = []) =>
    new PcError(400, 800002, `Invalid request input: ${detail}`, data),
  invalidProperty: (detail: string) => new PcError(400, 3000, `Invalid property: ${detail}`),
  orgRegistrationMissing: () =>
    new PcError(400, 600049, 'Organization registration ID information is missing'),
  orgRegistrationNotSupported: () =>
    new PcError(400, 600002, "Organization registration ID value isn't supported"),
  orgRegistrationInvalid: (format: string) =>
    new PcError(
      400,
      600050,
      `Organization registration ID information is invalid and should be of the format ${format}`,
    ),
  phoneMissing: () => new PcError(400, 600051, 'Customer phone number is missing'),
  notIndirectReseller: () => new PcError(400, 800016, "PartnerID isn't a valid Indirect Reseller"),
  agreementExists: () =>
    new PcError(409, 600061, 'A partner confirmed agreement already exists for the customer.'),
  agreementMissing: () =>
    new PcError(
      403,
      13605,
      'Either a partner confirmation of the customer acceptance of the Microsoft Customer Agreement must be provided or the customer must accept the Microsoft Customer Agreement in the Microsoft Admin Center before you can complete this purchase',
    ),
  availabilityNotFound: () =>
    new PcError(
      404,
      400019,
      'Availability not found. Partners that get this error should issue a new GET to ensure they have the current availability ID and retry the cart check out.',
    ),
  quantityNotAllowedForLine: (line: number) =>
    new PcError(
      400,
      900275,
      `The requested quantity for line item ${line} is not within the allowed quantity for this offer.`,
    ),
  invalidTerm: () => new PcError(400, 800121, 'The term duration provided is invalid.'),
  invalidBillingCycle: () => new PcError(400, 900269, 'The billing cycle is invalid.'),
  billingCycleLongerThanTerm: () =>
    new PcError(400, 900270, 'The billing cycle cannot be longer than the term.'),
  cartBusy: (cartId: string) =>
    new PcError(409, 800064, `Cart ${cartId} is being processed by another request`),
  cartSubmitted: (cartId: string) =>
    new PcError(400, 800065, `can't check out an already submitted cart ${cartId}.`),
  cartExpired: (cartId: string) =>
    new PcError(400, 800009, `Error in Cart item(s): cart ${cartId} has expired`),
  quantityOutOfRange: () =>
    new PcError(400, 2002, "Subscription quantity isn't within minimum and maximum allowed quantity"),
  quantityCannotDecrease: () => new PcError(400, 800090, 'Subscription quantity cannot be decreased.'),
  cancellationWindowPassed: (hours: number) =>
    new PcError(
      400,
      900213,
      `You have passed your ${hours}-hour cancellation window. We are unable to cancel your purchase`,
    ),
  deletedCannotUpdate: (id: string) =>
    new PcError(400, 2011, `Subscription with ID ${id} and deleted status can't be updated.`),
  notActive: () => new PcError(400, 800012, "This subscription isn't an active subscription"),
  etagInvalid: () => new PcError(400, 2055, 'Etag is no longer valid'),
  tooManyUpdates: () =>
    new PcError(
      400,
      900311,
      'This subscription has been updated too many times. Please contact partner support if you need to make more updates on this subscription.',
    ),
  billingCycleChange: () =>
    new PcError(
      400,
      2054,
      "The billing cycle for an existing subscription can't be updated using update-subscription operation. Use update-Order operation",
    ),
  productNotFound: () => new PcError(404, 400013, "Product wasn't found"),
  skuNotFound: () => new PcError(404, 400018, "SKU wasn't found"),
  /** error-codes.md: 800082 (409) — used for a PATCH while an earlier one is still being processed. */
  notReadyToUpdate: () =>
    new PcError(409, 800082, 'Subscription is not ready to be updated. Try again after sometime'),
  /** error-codes.md: 800060 (409) — used for a change to an order that is still being provisioned. */
  orderInProgress: () =>
    new PcError(
      409,
      800060,
      'Your order is in progress. Check your order history for recent orders in few minutes',
    ),
  unexpected: () => new PcError(500, 800003, 'Unexpected service error'),
  serviceUnavailable: () => new PcError(503, 800003, 'Unexpected service error'),
};
