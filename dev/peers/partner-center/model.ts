import { randomBytes, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import {
  MAX_SUBSCRIPTION_UPDATES,
  SEAT_WINDOW_IN_HOURS,
  billingCycles,
  canCancel,
  cancellationAllowedUntil,
  changeSeats,
  commitmentEndDate,
  isBillingCycleAllowed,
  refundableSeats,
  renew,
  termDurations,
  termEndsAt,
  totalSeats,
  type BillingCycle,
  type RenewalInstructions,
  type SeatLot,
  type TermDuration,
} from '../../../shared/domain/nce.js';
import { durationInMs, type VirtualClock } from './clock.js';
import { PcError, pcErrors } from './errors.js';
import type { GraphTenantSync } from './graph-sync.js';
import type { CatalogProduct, CatalogSku, Seed } from './seed.js';

/** Partner Center's state for every partner, and the commerce rules that cost money. No HTTP here. */

type Json = Record<string, unknown>;

interface Partner {
  tenantId: string;
  name: string;
  mpnId: string;
  appIds: Set<string>;
  indirectResellers: Seed['partners'][number]['indirectResellers'];
}

interface Agreement {
  primaryContact: { firstName: string; lastName: string; email: string; phoneNumber?: string | undefined };
  templateId: string;
  dateAgreed: string;
  type: string;
  userId: string;
}

interface Customer {
  id: string;
  commerceId: string;
  partnerTenantId: string;
  domain: string;
  companyName: string;
  billingProfile: Json;
  organizationRegistrationNumber: string | undefined;
  associatedPartnerId: string | undefined;
  agreements: Agreement[];
  createdAt: Date;
}

interface CartLine {
  id: number;
  catalogItemId: string;
  friendlyName: string | undefined;
  quantity: number;
  billingCycle: BillingCycle;
  termDuration: TermDuration;
  provisioningContext: Record<string, string>;
  orderGroup: string;
}

interface Cart {
  id: string;
  customerId: string;
  createdAt: Date;
  lastModifiedAt: Date;
  status: 'Active' | 'Ordered';
  lineItems: CartLine[];
  checkingOut: boolean;
  /** order group → order id, for groups already ordered (never ordered twice). */
  orderedGroups: Map<string, string>;
  checkoutResult: Json | undefined;
}

interface Order {
  id: string;
  customerId: string;
  billingCycle: BillingCycle;
  createdAt: Date;
  /** order-resources.md OrderStatus: `pending` until its subscriptions are provisioned. */
  status: 'pending' | 'completed';
  /** Asynchronous provisioning: when (virtual time) the pending subscriptions come into being. */
  provisionAt: Date | undefined;
  /** Subscriptions of a pending order: not visible (nor in Graph) until provisioned. */
  unprovisioned: Subscription[];
  lines: {
    lineItemNumber: number;
    catalogItemId: string;
    subscriptionId: string;
    termDuration: TermDuration;
    quantity: number;
    friendlyName: string;
    unitPrice: number;
  }[];
}

export interface Subscription {
  id: string;
  customerId: string;
  orderId: string;
  catalogItemId: string;
  friendlyName: string;
  termDuration: TermDuration;
  billingCycle: BillingCycle;
  status: 'active' | 'expired' | 'deleted' | 'suspended';
  autoRenewEnabled: boolean;
  createdAt: Date;
  termStartedAt: Date;
  lots: SeatLot[];
  scheduled: RenewalInstructions | undefined;
  version: number;
  updateCount: number;
  /** Quantity at the moment it stopped being active (expired/deleted subscriptions keep showing it). */
  frozenQuantity: number | undefined;
  /** A PATCH answered 202: applied when virtual time reaches `applyAt`; others wait (800082). */
  pendingChange: { applyAt: Date; apply: () => Promise<void> } | undefined;
}

interface Offer {
  product: CatalogProduct;
  sku: CatalogSku;
  availability: CatalogSku['availabilities'][number];
  catalogItemId: string;
  /** Replaced by a new availability id: existing subscriptions keep it, nothing new can be bought. */
  retired: boolean;
}

/**
 * Countries whose customers must give `companyProfile.organizationRegistrationNumber`
 * (create-a-customer.md, "Company profile"; error-codes.md 600049). Elsewhere a number is refused
 * with 600002 (error-codes.md lists only the first twelve; create-a-customer.md calls the field
 * optional elsewhere — the peer follows the error code).
 */
const orgRegistrationCountries = new Set([
  ...['AM', 'AZ', 'BY', 'HU', 'IN', 'KZ', 'KG', 'MD', 'RU', 'TJ', 'UZ', 'UA'],
  ...['BR', 'ZA', 'PL', 'AE', 'SA', 'TR', 'TH', 'VN', 'MM', 'IQ', 'SS', 'VE'],
]);
/** Countries whose customers must give `billingProfile.defaultAddress.phoneNumber` (error-codes.md 600051). */
const phoneRequiredCountries = new Set([
  'AM',
  'AZ',
  'BY',
  'HU',
  'IN',
  'KZ',
  'KG',
  'MD',
  'RU',
  'TJ',
  'UZ',
  'UA',
]);
/**
 * error-codes.md 600050 gives `^(\d{7}|\d{10})$` as its example format without naming the country;
 * the peer applies it to Russia's INN-style numbers only (inferred), so the error can be exercised.
 */
const orgRegistrationFormats = new Map([['RU', /^(\d{7}|\d{10})$/]]);

/** The AddressValidationResponse statuses of validate-an-address.md. */
export const addressStatuses = [
  'VerifiedShippable',
  'Verified',
  'InteractionRequired',
  'StreetPartial',
  'PremisesPartial',
  'Multiple',
  'None',
  'NotValidated',
] as const;
export type AddressStatus = (typeof addressStatuses)[number];

/** Agreement metadata (get-customer-agreement-metadata.md, get-agreement-metadata.md examples). */
export const agreementTemplates = [
  {
    templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
    agreementType: 'MicrosoftCustomerAgreement',
    agreementLink: 'https://aka.ms/customeragreement',
    versionRank: 0,
  },
  {
    templateId: '998b88de-aa99-4388-a42c-1b3517d49490',
    agreementType: 'MicrosoftCloudAgreement',
    agreementLink: 'https://learn.microsoft.com/partner-center/agreements',
    versionRank: 0,
  },
] as const;

const catalogPartSchema = z.string().regex(/^[A-Za-z0-9]+$/);
const cartLifetimeInMs = 7 * 24 * 60 * 60 * 1000;

/** Partner Center accepts PascalCase and camelCase property names alike (its examples use both). */
export function camelKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key.charAt(0).toLowerCase() + key.slice(1),
      camelKeys(inner),
    ]),
  );
}

function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(camelKeys(body));
  if (!result.success) {
    const issues = result.error.issues.map(
      (issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`,
    );
    throw pcErrors.invalidInput(issues.join('; '), issues);
  }
  return result.data;
}

const addressSchema = z
  .object({
    country: z.string().length(2),
    city: z.string().min(1).max(128),
    state: z.string().max(128).optional(),
    region: z.string().optional(),
    addressLine1: z.string().min(1).max(256),
    addressLine2: z.string().max(256).optional(),
    addressLine3: z.string().max(256).optional(),
    postalCode: z.string().min(1).max(40),
    firstName: z.string().max(64).optional(),
    middleName: z.string().optional(),
    lastName: z.string().max(64).optional(),
    phoneNumber: z.string().optional(),
  })
  .loose();

/** validate-an-address.md: addressLine1, city, state, postalCode and country are required. */
const addressValidationSchema = z
  .object({
    addressLine1: z.string().min(1).max(256),
    addressLine2: z.string().max(256).optional(),
    addressLine3: z.string().max(256).optional(),
    city: z.string().min(1).max(128),
    state: z.string().min(1).max(128),
    postalCode: z.string().min(1).max(40),
    country: z.string().length(2),
  })
  .loose();

export const scriptedAddressSchema = z
  .object({
    address: z.object({ addressLine1: z.string(), postalCode: z.string(), country: z.string().length(2) }),
    status: z.enum(addressStatuses),
    suggestedAddresses: z.array(z.record(z.string(), z.string())).max(3).default([]),
    validationMessage: z.string().optional(),
  })
  .strict();

const createCustomerSchema = z
  .object({
    companyProfile: z
      .object({
        domain: z.string().min(1),
        organizationRegistrationNumber: z.string().optional(),
      })
      .loose(),
    billingProfile: z
      .object({
        email: z.email(),
        culture: z.string().min(2),
        language: z.string().min(2),
        companyName: z.string().min(1).max(256),
        defaultAddress: addressSchema,
      })
      .loose(),
    associatedPartnerId: z.string().optional(),
    enableGDAPByDefault: z.boolean().optional(),
  })
  .loose();

const agreementSchema = z
  .object({
    primaryContact: z.object({
      firstName: z.string().min(1),
      lastName: z.string().min(1),
      email: z.email(),
      phoneNumber: z.string().optional(),
    }),
    templateId: z.string().min(1),
    dateAgreed: z.iso.datetime({ offset: true }),
    type: z.literal('MicrosoftCustomerAgreement'),
  })
  .loose();

const cartSchema = z
  .object({
    lineItems: z
      .array(
        z
          .object({
            id: z.union([z.number(), z.string()]).optional(),
            catalogItemId: z.string().min(1),
            friendlyName: z.string().optional(),
            quantity: z.number().int(),
            billingCycle: z.string(),
            termDuration: z.string().optional(),
            provisioningContext: z.record(z.string(), z.string()).optional(),
          })
          .loose(),
      )
      .min(1),
  })
  .loose();

const productTermSchema = z
  .object({
    productId: z.string().min(1),
    skuId: z.string().min(1),
    availabilityId: z.string().min(1),
    billingCycle: z.string(),
    termDuration: z.string(),
    promotionId: z.string().optional(),
  })
  .loose();

const patchSchema = z
  .object({
    id: z.string().optional(),
    quantity: z.number().int().optional(),
    status: z.string().optional(),
    autoRenewEnabled: z.boolean().optional(),
    billingCycle: z.string().optional(),
    friendlyName: z.string().optional(),
    scheduledNextTermInstructions: z
      .object({ product: productTermSchema.optional(), quantity: z.number().int().optional() })
      .loose()
      .nullable()
      .optional(),
  })
  .loose();

function asTerm(value: string | undefined): TermDuration {
  const term = termDurations.find((candidate) => candidate === value?.toUpperCase());
  if (term === undefined) throw pcErrors.invalidTerm();
  return term;
}

function asBillingCycle(value: string): BillingCycle {
  const cycle = billingCycles.find((candidate) => candidate === value.toLowerCase());
  if (cycle === undefined) throw pcErrors.invalidBillingCycle();
  return cycle;
}

/** Catalog reads name their market (`country`, required by every catalog call in the docs). */
function requireCountry(country: string | null): string {
  if (country === null || !/^[A-Za-z]{2}$/.test(country))
    throw pcErrors.invalidInput('country is required (a two-letter country/region code)');
  return country.toUpperCase();
}

function link(uri: string, method = 'GET'): Json {
  return { uri, method, headers: [] };
}

export interface ModelOptions {
  seed: Seed;
  clock: VirtualClock;
  graph: GraphTenantSync;
  log?: (message: string) => void;
}

export class PartnerCenterModel {
  readonly clock: VirtualClock;
  private readonly graph: GraphTenantSync;
  private readonly log: (message: string) => void;
  private readonly partners = new Map<string, Partner>();
  private readonly partnerApps = new Map<string, { clientId: string }[]>();
  private readonly customers = new Map<string, Customer>();
  private readonly carts = new Map<string, Cart>();
  private readonly orders = new Map<string, Order>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly offers = new Map<string, Offer>();
  private readonly catalog: CatalogProduct[];
  private readonly domains = new Set<string>();
  /** Answers set through the admin API for addresses the peer's own rules would not produce. */
  private readonly scriptedAddresses = new Map<string, z.infer<typeof scriptedAddressSchema>>();
  private readonly seed: Seed;

  constructor(options: ModelOptions) {
    this.seed = options.seed;
    this.clock = options.clock;
    this.graph = options.graph;
    this.log = options.log ?? (() => undefined);
    this.catalog = options.seed.catalog;
    for (const partner of options.seed.partners) {
      this.partners.set(partner.tenantId.toLowerCase(), {
        tenantId: partner.tenantId.toLowerCase(),
        name: partner.name,
        mpnId: partner.mpnId,
        appIds: new Set(partner.apps.map((app) => app.clientId.toLowerCase())),
        indirectResellers: partner.indirectResellers,
      });
      this.partnerApps.set(partner.tenantId.toLowerCase(), partner.apps);
    }
    for (const product of this.catalog)
      for (const sku of product.skus)
        for (const availability of sku.availabilities) {
          const catalogItemId = `${product.productId}:${sku.skuId}:${availability.availabilityId}`;
          this.offers.set(catalogItemId.toUpperCase(), {
            product,
            sku,
            availability,
            catalogItemId,
            retired: false,
          });
        }
  }

  /** Registers seeded partner apps and customers in the Graph peer and books seeded subscriptions. */
  async init(): Promise<void> {
    for (const partner of this.seed.partners)
      for (const app of partner.apps)
        if (app.clientSecret !== undefined)
          await this.graph.ensurePartnerApp(partner.tenantId, partner.name, {
            clientId: app.clientId,
            clientSecret: app.clientSecret,
            graphRoles: app.graphRoles,
          });
    for (const seeded of this.seed.customers) {
      const partner = this.partners.get(seeded.partnerTenantId.toLowerCase());
      if (partner === undefined)
        throw new Error(`seed customer ${seeded.domain}: unknown partner ${seeded.partnerTenantId}`);
      const customer = await this.provisionCustomer(partner, {
        id: seeded.id,
        domain: seeded.domain,
        companyName: seeded.companyName,
        billingProfile: {},
        organizationRegistrationNumber: undefined,
        associatedPartnerId: seeded.associatedPartnerId,
      });
      if (seeded.agreementConfirmed)
        customer.agreements.push({
          primaryContact: { firstName: 'Seeded', lastName: 'Contact', email: `admin@${customer.domain}` },
          templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
          dateAgreed: this.clock.now().toISOString(),
          type: 'MicrosoftCustomerAgreement',
          userId: randomUUID(),
        });
      for (const sub of seeded.subscriptions) {
        const offer = this.offer(sub.catalogItemId, 'buy');
        const startedAt = sub.startedAt === undefined ? this.clock.now() : new Date(sub.startedAt);
        const id = (sub.id ?? randomUUID()).toLowerCase();
        this.subscriptions.set(id, {
          id,
          customerId: customer.id,
          orderId: randomBytes(6).toString('hex'),
          catalogItemId: offer.catalogItemId,
          friendlyName: offer.sku.title,
          termDuration: sub.termDuration,
          billingCycle: sub.billingCycle,
          status: 'active',
          autoRenewEnabled: sub.autoRenewEnabled,
          createdAt: startedAt,
          termStartedAt: startedAt,
          lots: [{ quantity: sub.quantity, addedAt: startedAt }],
          scheduled: undefined,
          version: 1,
          updateCount: 0,
          frozenQuantity: undefined,
          pendingChange: undefined,
        });
      }
      await this.syncSeats(customer);
    }
    await this.processTime();
  }

  // ---------- identity ----------

  partner(tenantId: string): Partner | undefined {
    return this.partners.get(tenantId.toLowerCase());
  }

  private customerOf(partner: Partner, customerId: string): Customer {
    const customer = this.customers.get(customerId.toLowerCase());
    if (customer === undefined) throw pcErrors.notFound(`Customer ${customerId}`);
    if (customer.partnerTenantId !== partner.tenantId)
      throw pcErrors.noRelationship(partner.tenantId, customerId);
    return customer;
  }

  // ---------- customers ----------

  private initialDomain(domain: string): string {
    const lower = domain.trim().toLowerCase();
    const prefix = lower.endsWith('.onmicrosoft.com')
      ? lower.slice(0, -'.onmicrosoft.com'.length)
      : lower.split('.')[0];
    if (prefix === undefined || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(prefix))
      throw pcErrors.invalidProperty(
        `companyProfile.domain '${domain}' is not a valid onmicrosoft.com prefix`,
      );
    return `${prefix}.onmicrosoft.com`;
  }

  /**
   * verify-domain-availability.md checks the name as given. The peer knows only the initial
   * `.onmicrosoft.com` domains of tenants it created; any other name is free here (inferred — custom
   * domains live in the Graph peer).
   */
  domainExists(domain: string): boolean {
    return this.domains.has(domain.trim().toLowerCase());
  }

  private async provisionCustomer(
    partner: Partner,
    input: {
      id?: string | undefined;
      domain: string;
      companyName: string;
      billingProfile: Json;
      organizationRegistrationNumber: string | undefined;
      associatedPartnerId: string | undefined;
    },
  ): Promise<Customer> {
    const domain = this.initialDomain(input.domain);
    if (this.domains.has(domain)) throw pcErrors.invalidInput(`the domain ${domain} is already in use`);
    if (
      input.associatedPartnerId !== undefined &&
      !partner.indirectResellers.some(
        (reseller) => reseller.id.toLowerCase() === input.associatedPartnerId?.toLowerCase(),
      )
    )
      throw pcErrors.notIndirectReseller();
    const id = (input.id ?? randomUUID()).toLowerCase();
    this.domains.add(domain);
    try {
      await this.graph.createCustomerTenant({
        tenantId: id,
        displayName: input.companyName,
        initialDomain: domain,
        adminUserPrincipalName: `admin@${domain}`,
        partnerTenantId: partner.tenantId,
      });
      for (const app of this.partnerApps.get(partner.tenantId) ?? [])
        await this.graph.grantConsent(app.clientId, id);
    } catch (error) {
      this.domains.delete(domain);
      this.log(`graph tenant creation failed for ${domain}: ${String(error)}`);
      throw pcErrors.unexpected();
    }
    const customer: Customer = {
      id,
      commerceId: randomUUID(),
      partnerTenantId: partner.tenantId,
      domain,
      companyName: input.companyName,
      billingProfile: input.billingProfile,
      organizationRegistrationNumber: input.organizationRegistrationNumber,
      associatedPartnerId: input.associatedPartnerId?.toLowerCase(),
      agreements: [],
      createdAt: this.clock.now(),
    };
    this.customers.set(id, customer);
    return customer;
  }

  // ---------- addresses ----------

  private static addressKey(address: { addressLine1: string; postalCode: string; country: string }): string {
    return [address.addressLine1, address.postalCode, address.country]
      .map((part) => part.trim().toLowerCase())
      .join('|');
  }

  adminScriptAddress(body: unknown): void {
    const scripted = scriptedAddressSchema.parse(body);
    this.scriptedAddresses.set(PartnerCenterModel.addressKey(scripted.address), scripted);
  }

  /**
   * POST /v1/validations/address (validate-an-address.md): 200 with `{originalAddress,
   * suggestedAddresses, status, validationMessage?}`. The peer has no address database, so its rules
   * are simple and deterministic (inferred): a US postal code that is not ZIP or ZIP+4 is `None`; a
   * first line without a house number is `StreetPartial` with one suggestion (the documented example:
   * "Microsoft Way" → "1 Microsoft Way"); anything else is `VerifiedShippable`. Other statuses come
   * from `POST /_admin/addresses`.
   */
  validateAddress(body: unknown): Json {
    const input = parse(addressValidationSchema, body);
    const original: Record<string, string> = {
      country: input.country.toUpperCase(),
      city: input.city,
      state: input.state,
      addressLine1: input.addressLine1,
      ...(input.addressLine2 === undefined ? {} : { addressLine2: input.addressLine2 }),
      postalCode: input.postalCode,
    };
    const scripted = this.scriptedAddresses.get(PartnerCenterModel.addressKey(input));
    if (scripted !== undefined)
      return {
        originalAddress: original,
        suggestedAddresses: scripted.suggestedAddresses,
        status: scripted.status,
        ...(scripted.validationMessage === undefined
          ? {}
          : { validationMessage: scripted.validationMessage }),
      };
    if (original.country === 'US' && !/^\d{5}(-\d{4})?$/.test(input.postalCode.trim()))
      return {
        originalAddress: original,
        suggestedAddresses: [],
        status: 'None',
        validationMessage: "Address field invalid for property: 'PostalCode'",
      };
    if (!/\d/.test(input.addressLine1))
      return {
        originalAddress: original,
        suggestedAddresses: [{ ...original, addressLine1: `1 ${input.addressLine1.trim()}` }],
        status: 'StreetPartial',
        validationMessage: "Address field invalid for property: 'AddressLine1'",
      };
    return { originalAddress: original, suggestedAddresses: [{ ...original }], status: 'VerifiedShippable' };
  }

  async createCustomer(partnerTenantId: string, body: unknown): Promise<Json> {
    const partner = this.requirePartner(partnerTenantId);
    const input = parse(createCustomerSchema, body);
    const address = input.billingProfile.defaultAddress;
    const country = address.country.toUpperCase();
    const registration = input.companyProfile.organizationRegistrationNumber;
    // create-a-customer.md and error-codes.md 600049/600050/600051/600002.
    if (orgRegistrationCountries.has(country)) {
      if (registration === undefined || registration === '') throw pcErrors.orgRegistrationMissing();
      const format = orgRegistrationFormats.get(country);
      if (format !== undefined && !format.test(registration))
        throw pcErrors.orgRegistrationInvalid(format.source);
    } else if (registration !== undefined && registration !== '') {
      throw pcErrors.orgRegistrationNotSupported();
    }
    if (phoneRequiredCountries.has(country) && (address.phoneNumber ?? '') === '')
      throw pcErrors.phoneMissing();
    // create-a-customer.md: "you must provide a valid physical address"; the refusal's code is not
    // documented, 800002 is inferred. Only an address validation calls incorrect (`None`) is refused.
    if (address.state !== undefined && address.state !== '') {
      const validation = this.validateAddress({ ...address, country });
      if (validation.status === 'None')
        throw pcErrors.invalidInput(
          `billingProfile.defaultAddress is not a valid address (${String(validation.validationMessage)})`,
        );
    }
    const { defaultAddress, ...profile } = input.billingProfile;
    const customer = await this.provisionCustomer(partner, {
      domain: input.companyProfile.domain,
      companyName: input.billingProfile.companyName,
      billingProfile: { ...profile, defaultAddress: { ...defaultAddress, country } },
      organizationRegistrationNumber: registration,
      associatedPartnerId: input.associatedPartnerId,
    });
    const password = `${randomBytes(9).toString('base64url')}!9a`;
    return {
      ...this.customerJson(customer),
      enableGDAPByDefault: input.enableGDAPByDefault ?? false,
      userCredentials: { userName: 'admin', password },
    };
  }

  private customerJson(customer: Customer): Json {
    const base = `/customers/${customer.id}`;
    return {
      id: customer.id,
      commerceId: customer.commerceId,
      companyProfile: {
        tenantId: customer.id,
        domain: customer.domain,
        companyName: customer.companyName,
        ...(customer.organizationRegistrationNumber === undefined
          ? {}
          : { organizationRegistrationNumber: customer.organizationRegistrationNumber }),
        links: { self: link(`${base}/profiles/company`) },
        attributes: { objectType: 'CustomerCompanyProfile' },
      },
      billingProfile: {
        id: customer.commerceId,
        companyName: customer.companyName,
        ...customer.billingProfile,
        attributes: { etag: String(customer.createdAt.getTime()), objectType: 'CustomerBillingProfile' },
      },
      relationshipToPartner: 'reseller',
      allowDelegatedAccess: true,
      ...(customer.associatedPartnerId === undefined
        ? {}
        : { associatedPartnerId: customer.associatedPartnerId }),
      links: { self: link(base) },
      attributes: { objectType: 'Customer' },
    };
  }

  getCustomer(partnerTenantId: string, customerId: string): Json {
    return this.customerJson(this.customerOf(this.requirePartner(partnerTenantId), customerId));
  }

  listCustomers(
    partnerTenantId: string,
    options: {
      size: number;
      continuationToken: string | undefined;
      filter: { field: 'IndirectReseller' | 'CompanyName' | 'Domain'; value: string } | undefined;
    },
  ): Json {
    const partner = this.requirePartner(partnerTenantId);
    const filter = options.filter;
    const value = filter?.value.toLowerCase() ?? '';
    const all = [...this.customers.values()]
      .filter((customer) => customer.partnerTenantId === partner.tenantId)
      .filter((customer) => {
        if (filter === undefined) return true;
        // "The case of the value is ignored"; the only operator is starts_with (get-a-customer-by-name.md).
        if (filter.field === 'IndirectReseller') return customer.associatedPartnerId === value;
        const field = filter.field === 'Domain' ? customer.domain : customer.companyName;
        return field.toLowerCase().startsWith(value);
      })
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
    let start = 0;
    if (options.continuationToken !== undefined) {
      const decoded = /^offset:(\d+)$/.exec(
        Buffer.from(options.continuationToken, 'base64url').toString('utf8'),
      );
      if (decoded?.[1] === undefined) throw pcErrors.invalidInput('MS-ContinuationToken is not valid');
      start = Number(decoded[1]);
    }
    const page = all.slice(start, start + options.size);
    const next =
      start + options.size < all.length
        ? Buffer.from(`offset:${start + options.size}`).toString('base64url')
        : undefined;
    return {
      totalCount: page.length,
      items: page.map((customer) => this.customerJson(customer)),
      links: {
        self: link(`/v1/customers?size=${options.size}`),
        ...(next === undefined
          ? {}
          : {
              next: {
                uri: `/v1/customers?size=${options.size}`,
                method: 'GET',
                headers: [{ key: 'MS-ContinuationToken', value: next }],
              },
            }),
      },
      ...(next === undefined ? {} : { continuationToken: next }),
      attributes: { objectType: 'Collection' },
    };
  }

  listRelationships(partnerTenantId: string, relationshipType: string | undefined): Json {
    const partner = this.requirePartner(partnerTenantId);
    if (relationshipType !== undefined && relationshipType !== 'IsIndirectCloudSolutionProviderOf')
      throw pcErrors.invalidInput(`relationship_type ${relationshipType} is not supported by this peer`);
    const items = partner.indirectResellers.map((reseller) => ({
      id: reseller.id,
      name: reseller.name,
      relationshipType: 'IsIndirectCloudSolutionProviderOf',
      state: 'Active',
      mpnId: reseller.mpnId,
      location: reseller.location,
      attributes: { objectType: 'PartnerRelationship' },
    }));
    return { totalCount: items.length, items, attributes: { objectType: 'Collection' } };
  }

  createAgreement(partnerTenantId: string, customerId: string, body: unknown): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const input = parse(agreementSchema, body);
    // confirm-customer-consent-customer-agreement.md: the templateId comes from the MCA metadata.
    // The refusal's code is not documented; 800002 is inferred.
    if (
      !agreementTemplates.some(
        (template) =>
          template.agreementType === 'MicrosoftCustomerAgreement' &&
          template.templateId === input.templateId.toLowerCase(),
      )
    )
      throw pcErrors.invalidInput(
        `templateId ${input.templateId} is not a Microsoft Customer Agreement template`,
      );
    const duplicate = customer.agreements.some((existing) =>
      isDeepStrictEqual(
        { ...existing.primaryContact, phoneNumber: existing.primaryContact.phoneNumber ?? '' },
        { ...input.primaryContact, phoneNumber: input.primaryContact.phoneNumber ?? '' },
      ),
    );
    if (duplicate) throw pcErrors.agreementExists();
    const agreement: Agreement = {
      primaryContact: input.primaryContact,
      templateId: input.templateId,
      dateAgreed: input.dateAgreed,
      type: input.type,
      userId: randomUUID(),
    };
    customer.agreements.push(agreement);
    return this.agreementJson(agreement);
  }

  /**
   * GET /v1/customers/{id}/agreements[?agreementType=] (get-confirmation-of-customer-agreement.md).
   * Without a type every agreement is listed (inferred).
   */
  listAgreements(partnerTenantId: string, customerId: string, agreementType?: string): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const items = customer.agreements
      .filter(
        (agreement) =>
          agreementType === undefined ||
          agreementType === '*' ||
          agreement.type.toLowerCase() === agreementType.toLowerCase(),
      )
      .map((agreement) => this.agreementJson(agreement));
    return { totalCount: items.length, items, attributes: { objectType: 'Collection' } };
  }

  /**
   * GET /v1/agreements?agreementType= (get-customer-agreement-metadata.md): without the parameter the
   * query defaults to MicrosoftCloudAgreement "for backward compatibility"; `*` returns all.
   */
  listAgreementMetadata(agreementType: string | undefined): Json {
    const type = agreementType ?? 'MicrosoftCloudAgreement';
    const items = agreementTemplates
      .filter((template) => type === '*' || template.agreementType.toLowerCase() === type.toLowerCase())
      .map((template) => ({ ...template, attributes: { objectType: 'AgreementMetaData' } }));
    return {
      totalCount: items.length,
      items,
      links: { self: link('/agreements') },
      attributes: { objectType: 'Collection' },
    };
  }

  private agreementJson(agreement: Agreement): Json {
    return { ...agreement, attributes: { objectType: 'Agreement' } };
  }

  // ---------- catalog ----------

  /**
   * The offer behind a catalog item id. Buying (`buy`) needs a current availability: product-resources.md
   * warns that catalog ids change over time, and a stale one fails with 404/400019 (error-codes.md,
   * get-an-availability-by-id.md). Reading a subscription of a retired availability still works.
   */
  private offer(catalogItemId: string, purpose: 'buy' | 'read' = 'read'): Offer {
    const offer = this.offers.get(catalogItemId.toUpperCase());
    if (offer === undefined || (purpose === 'buy' && offer.retired)) throw pcErrors.availabilityNotFound();
    return offer;
  }

  /** Test hook: the availability behind `catalogItemId` gets a new id (as Microsoft's catalog does). */
  adminRotateAvailability(body: unknown): Json {
    const input = z
      .object({ catalogItemId: z.string().min(1), newAvailabilityId: catalogPartSchema.optional() })
      .strict()
      .parse(body);
    const offer = this.offer(input.catalogItemId, 'buy');
    const availabilityId =
      input.newAvailabilityId ?? `CFQ7TTC0${randomBytes(2).toString('hex').toUpperCase()}`;
    const fresh = { ...offer.availability, availabilityId };
    const catalogItemId = `${offer.product.productId}:${offer.sku.skuId}:${availabilityId}`;
    if (this.offers.has(catalogItemId.toUpperCase()))
      throw pcErrors.invalidInput(`${catalogItemId} exists already`);
    offer.sku.availabilities = offer.sku.availabilities.map((candidate) =>
      candidate === offer.availability ? fresh : candidate,
    );
    offer.retired = true;
    this.offers.set(catalogItemId.toUpperCase(), {
      product: offer.product,
      sku: offer.sku,
      availability: fresh,
      catalogItemId,
      retired: false,
    });
    return { previous: offer.catalogItemId, current: catalogItemId };
  }

  private productJson(product: CatalogProduct, country: string): Json {
    return {
      id: product.productId,
      title: product.title,
      description: product.description,
      productType: { id: 'OnlineServicesNCE', displayName: 'OnlineServicesNCE' },
      isMicrosoftProduct: true,
      publisherName: 'Microsoft Corporation',
      links: {
        skus: link(`/products/${product.productId}/skus?country=${country}`),
        self: link(`/products/${product.productId}?country=${country}`),
      },
      attributes: { objectType: 'Product' },
    };
  }

  private skuJson(product: CatalogProduct, sku: CatalogSku, country: string): Json {
    const cycles = [...new Set(sku.availabilities.flatMap((a) => a.terms.map((t) => t.billingCycle)))];
    return {
      id: sku.skuId,
      productId: product.productId,
      title: sku.title,
      description: sku.description,
      minimumQuantity: sku.minimumQuantity,
      maximumQuantity: sku.maximumQuantity,
      isTrial: false,
      supportedBillingCycles: cycles,
      purchasePrerequisites: [],
      provisioningVariables: [],
      dynamicAttributes: {
        isMicrosoftProduct: true,
        hasAddOns: false,
        isAddon: false,
        provisioningId: sku.graph.skuId,
      },
      links: {
        availabilities: link(
          `/products/${product.productId}/skus/${sku.skuId}/availabilities?country=${country}`,
        ),
        self: link(`/products/${product.productId}/skus/${sku.skuId}?country=${country}`),
      },
      attributes: { objectType: 'Sku' },
    };
  }

  private availabilityJson(
    product: CatalogProduct,
    sku: CatalogSku,
    availability: Offer['availability'],
    country: string,
  ): Json {
    return {
      id: availability.availabilityId,
      productId: product.productId,
      skuId: sku.skuId,
      catalogItemId: `${product.productId}:${sku.skuId}:${availability.availabilityId}`,
      defaultCurrency: { code: 'USD', symbol: '$' },
      segment: 'commercial',
      country,
      isPurchasable: true,
      isRenewable: true,
      terms: availability.terms.map((term) => ({
        duration: term.termDuration,
        description: `${term.termDuration} subscription billed ${term.billingCycle}`,
        billingCycle: term.billingCycle,
        cancellationPolicies: [
          { refunds: [{ type: 'Partial', expiresAfter: `P${SEAT_WINDOW_IN_HOURS / 24}D` }] },
        ],
      })),
      product: this.productJson(product, country),
      sku: this.skuJson(product, sku, country),
      links: {
        self: link(
          `/products/${product.productId}/skus/${sku.skuId}/availabilities/${availability.availabilityId}?country=${country}`,
        ),
      },
      attributes: { objectType: 'Availability' },
    };
  }

  private collection(items: Json[]): Json {
    return { totalCount: items.length, items, attributes: { objectType: 'Collection' } };
  }

  /**
   * get-a-list-of-products.md: `country` and `targetView` are required (the refusal's code is not
   * documented; 800002 is inferred). New commerce license-based items are listed under
   * `targetView=OnlineServices` with `productType.id = OnlineServicesNCE`; the peer also takes
   * `OnlineServicesNCE` as the view. Other views (Azure, reservations, software) are empty here.
   */
  listProducts(country: string | null, targetView: string | null): Json {
    const market = requireCountry(country);
    if (targetView === null || targetView === '') throw pcErrors.invalidInput('targetView is required');
    const view = targetView.toLowerCase();
    const items =
      view === 'onlineservices' || view === 'onlineservicesnce'
        ? this.catalog.map((product) => this.productJson(product, market))
        : [];
    return {
      ...this.collection(items),
      links: { self: link(`/products?country=${market}&targetView=${targetView}`) },
    };
  }

  private product(productId: string): CatalogProduct {
    const product = this.catalog.find(
      (candidate) => candidate.productId.toUpperCase() === productId.toUpperCase(),
    );
    if (product === undefined) throw pcErrors.productNotFound();
    return product;
  }

  private sku(product: CatalogProduct, skuId: string): CatalogSku {
    const sku = product.skus.find((candidate) => candidate.skuId.toUpperCase() === skuId.toUpperCase());
    if (sku === undefined) throw pcErrors.skuNotFound();
    return sku;
  }

  /** get-a-product-by-id.md: 404/400013 for an unknown product. */
  getProduct(productId: string, country: string | null): Json {
    return this.productJson(this.product(productId), requireCountry(country));
  }

  /** get-a-list-of-skus-for-a-product.md */
  listSkus(productId: string, country: string | null): Json {
    const market = requireCountry(country);
    const product = this.product(productId);
    return this.collection(product.skus.map((sku) => this.skuJson(product, sku, market)));
  }

  /** get-a-sku-by-id.md: 404/400013 (product), 404/400018 (SKU). */
  getSku(productId: string, skuId: string, country: string | null): Json {
    const market = requireCountry(country);
    const product = this.product(productId);
    return this.skuJson(product, this.sku(product, skuId), market);
  }

  /** get-a-list-of-availabilities-for-a-sku.md */
  listAvailabilities(productId: string, skuId: string, country: string | null): Json {
    const market = requireCountry(country);
    const product = this.product(productId);
    const sku = this.sku(product, skuId);
    return this.collection(
      sku.availabilities.map((availability) => this.availabilityJson(product, sku, availability, market)),
    );
  }

  /** get-an-availability-by-id.md: 404/400013, 400018, 400019 (also for a retired availability id). */
  getAvailability(productId: string, skuId: string, availabilityId: string, country: string | null): Json {
    const market = requireCountry(country);
    const product = this.product(productId);
    const sku = this.sku(product, skuId);
    const availability = sku.availabilities.find(
      (candidate) => candidate.availabilityId.toUpperCase() === availabilityId.toUpperCase(),
    );
    if (availability === undefined) throw pcErrors.availabilityNotFound();
    return this.availabilityJson(product, sku, availability, market);
  }

  // ---------- carts and orders ----------

  private validateLine(
    line: z.infer<typeof cartSchema>['lineItems'][number],
    index: number,
  ): Omit<CartLine, 'orderGroup'> {
    const offer = this.offer(line.catalogItemId, 'buy');
    const termDuration = asTerm(line.termDuration);
    const billingCycle = asBillingCycle(line.billingCycle);
    if (!isBillingCycleAllowed(termDuration, billingCycle)) throw pcErrors.billingCycleLongerThanTerm();
    if (
      !offer.availability.terms.some(
        (term) => term.termDuration === termDuration && term.billingCycle === billingCycle,
      )
    )
      throw pcErrors.invalidTerm();
    if (line.quantity < offer.sku.minimumQuantity || line.quantity > offer.sku.maximumQuantity)
      throw pcErrors.quantityNotAllowedForLine(index);
    return {
      id: index,
      catalogItemId: offer.catalogItemId,
      friendlyName: line.friendlyName,
      quantity: line.quantity,
      billingCycle,
      termDuration,
      provisioningContext: line.provisioningContext ?? {},
    };
  }

  private buildLines(body: unknown): CartLine[] {
    const input = parse(cartSchema, body);
    const lines = input.lineItems.map((line, index) => this.validateLine(line, index));
    const groups = [...new Set(lines.map((line) => line.billingCycle))];
    return lines.map((line) => ({ ...line, orderGroup: String(groups.indexOf(line.billingCycle)) }));
  }

  createCart(partnerTenantId: string, customerId: string, body: unknown): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const now = this.clock.now();
    const cart: Cart = {
      id: randomUUID(),
      customerId: customer.id,
      createdAt: now,
      lastModifiedAt: now,
      status: 'Active',
      lineItems: this.buildLines(body),
      checkingOut: false,
      orderedGroups: new Map(),
      checkoutResult: undefined,
    };
    this.carts.set(cart.id, cart);
    return this.cartJson(cart);
  }

  private cartOf(partnerTenantId: string, customerId: string, cartId: string): Cart {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const cart = this.carts.get(cartId.toLowerCase());
    if (cart === undefined || cart.customerId !== customer.id) throw pcErrors.cartNotFound();
    return cart;
  }

  getCart(partnerTenantId: string, customerId: string, cartId: string): Json {
    return this.cartJson(this.cartOf(partnerTenantId, customerId, cartId));
  }

  updateCart(partnerTenantId: string, customerId: string, cartId: string, body: unknown): Json {
    const cart = this.cartOf(partnerTenantId, customerId, cartId);
    if (cart.status !== 'Active' || cart.orderedGroups.size > 0) throw pcErrors.cartSubmitted(cart.id);
    if (this.clock.now().getTime() >= cart.createdAt.getTime() + cartLifetimeInMs)
      throw pcErrors.cartExpired(cart.id);
    cart.lineItems = this.buildLines(body);
    cart.lastModifiedAt = this.clock.now();
    return this.cartJson(cart);
  }

  private cartJson(cart: Cart): Json {
    return {
      id: cart.id,
      creationTimestamp: cart.createdAt.toISOString(),
      lastModifiedTimestamp: cart.lastModifiedAt.toISOString(),
      expirationTimestamp: new Date(cart.createdAt.getTime() + cartLifetimeInMs).toISOString(),
      lastModifiedUser: cart.customerId,
      status: cart.status,
      lineItems: cart.lineItems.map((line) => {
        const offer = this.offer(line.catalogItemId);
        const price = this.unitPrice(offer, line.termDuration, line.billingCycle);
        return {
          id: line.id,
          catalogItemId: line.catalogItemId,
          ...(line.friendlyName === undefined ? {} : { friendlyName: line.friendlyName }),
          quantity: line.quantity,
          currencyCode: 'USD',
          billingCycle: line.billingCycle,
          termDuration: line.termDuration,
          provisioningContext: line.provisioningContext,
          orderGroup: line.orderGroup,
          pricing: {
            listPrice: price,
            discountedPrice: price,
            proratedPrice: price,
            price,
            extendedPrice: price * line.quantity,
          },
        };
      }),
      links: { self: link(`/customers/${cart.customerId}/carts/${cart.id}`) },
      attributes: { objectType: 'Cart' },
    };
  }

  private unitPrice(offer: Offer, term: TermDuration, cycle: BillingCycle): number {
    return (
      offer.availability.terms.find((t) => t.termDuration === term && t.billingCycle === cycle)?.listPrice ??
      0
    );
  }

  /**
   * Places one order per order group. Groups already ordered by an earlier call are never ordered
   * again; a group that fails (`failGroups`, set by the fault API) is reported in `orderErrors` and
   * the cart stays Active, so checking out again re-attempts only the failed groups.
   */
  async checkout(
    partnerTenantId: string,
    customerId: string,
    cartId: string,
    failure?: { groups: number; code: number; description: string },
    provisionDelay?: string,
  ): Promise<Json> {
    const cart = this.cartOf(partnerTenantId, customerId, cartId);
    // Checkout is idempotent per cart: once every group is ordered, it returns that result again.
    if (cart.checkoutResult !== undefined) return cart.checkoutResult;
    if (cart.checkingOut) throw pcErrors.cartBusy(cart.id);
    const now = this.clock.now();
    if (now.getTime() >= cart.createdAt.getTime() + cartLifetimeInMs) throw pcErrors.cartExpired(cart.id);
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    if (!customer.agreements.some((agreement) => agreement.type === 'MicrosoftCustomerAgreement'))
      throw pcErrors.agreementMissing();
    // checkout-a-cart.md / error-codes.md 400019: an availability that changed since the cart was made
    // fails the checkout before anything is ordered; the partner re-reads the catalog and retries.
    for (const line of cart.lineItems)
      if (!cart.orderedGroups.has(line.orderGroup)) this.offer(line.catalogItemId, 'buy');
    cart.checkingOut = true;
    try {
      const orderErrors: Json[] = [];
      let failuresLeft = failure?.groups ?? 0;
      const groups = [...new Set(cart.lineItems.map((line) => line.orderGroup))];
      for (const group of groups) {
        if (cart.orderedGroups.has(group)) continue;
        const lines = cart.lineItems.filter((line) => line.orderGroup === group);
        const first = lines[0];
        if (first === undefined) continue;
        if (failure !== undefined && failuresLeft > 0) {
          failuresLeft -= 1;
          orderErrors.push({ orderGroupId: group, code: failure.code, description: failure.description });
          continue;
        }
        const provisionAt =
          provisionDelay === undefined
            ? undefined
            : new Date(now.getTime() + durationInMs(provisionDelay, now));
        const order: Order = {
          id: randomBytes(6).toString('hex'),
          customerId: customer.id,
          billingCycle: first.billingCycle,
          createdAt: now,
          status: provisionAt === undefined ? 'completed' : 'pending',
          provisionAt,
          unprovisioned: [],
          lines: [],
        };
        lines.forEach((line, lineItemNumber) => {
          const offer = this.offer(line.catalogItemId);
          const subscription: Subscription = {
            id: randomUUID(),
            customerId: customer.id,
            orderId: order.id,
            catalogItemId: offer.catalogItemId,
            friendlyName: line.friendlyName ?? offer.sku.title,
            termDuration: line.termDuration,
            billingCycle: line.billingCycle,
            status: 'active',
            autoRenewEnabled: true,
            createdAt: now,
            termStartedAt: now,
            lots: [{ quantity: line.quantity, addedAt: now }],
            scheduled: undefined,
            version: 1,
            updateCount: 0,
            frozenQuantity: undefined,
            pendingChange: undefined,
          };
          if (provisionAt === undefined) this.subscriptions.set(subscription.id, subscription);
          else order.unprovisioned.push(subscription);
          order.lines.push({
            lineItemNumber,
            catalogItemId: offer.catalogItemId,
            subscriptionId: subscription.id,
            termDuration: line.termDuration,
            quantity: line.quantity,
            friendlyName: subscription.friendlyName,
            unitPrice: this.unitPrice(offer, line.termDuration, line.billingCycle),
          });
        });
        this.orders.set(order.id, order);
        cart.orderedGroups.set(group, order.id);
      }
      cart.lastModifiedAt = now;
      const orders = [...cart.orderedGroups.values()].flatMap((orderId) => {
        const order = this.orders.get(orderId);
        return order === undefined ? [] : [this.orderJson(order)];
      });
      const result = { orders, orderErrors, attributes: { objectType: 'CartCheckoutResult' } };
      if (orderErrors.length === 0) {
        cart.status = 'Ordered';
        cart.checkoutResult = result;
      }
      await this.syncSeats(customer);
      return result;
    } finally {
      cart.checkingOut = false;
    }
  }

  private orderJson(order: Order): Json {
    const base = `/customers/${order.customerId}/orders/${order.id}`;
    const total = order.lines.reduce((sum, line) => sum + line.unitPrice * line.quantity, 0);
    return {
      id: order.id,
      alternateId: order.id,
      referenceCustomerId: order.customerId,
      billingCycle: order.billingCycle,
      currencyCode: 'USD',
      currencySymbol: '$',
      lineItems: order.lines.map((line) => {
        const [productId, skuId, availabilityId] = line.catalogItemId.split(':');
        return {
          lineItemNumber: line.lineItemNumber,
          offerId: line.catalogItemId,
          // checkout-a-cart.md: subscription ids appear only once the subscriptions are provisioned.
          ...(order.status === 'completed' ? { subscriptionId: line.subscriptionId } : {}),
          termDuration: line.termDuration,
          transactionType: 'New',
          friendlyName: line.friendlyName,
          quantity: line.quantity,
          pricing: {
            listPrice: line.unitPrice,
            discountedPrice: line.unitPrice,
            proratedPrice: line.unitPrice,
            price: line.unitPrice,
            extendedPrice: line.unitPrice * line.quantity,
          },
          links: {
            product: link(`/products/${productId}?country=US`),
            sku: link(`/products/${productId}/skus/${skuId}?country=US`),
            availability: link(
              `/products/${productId}/skus/${skuId}/availabilities/${availabilityId}?country=US`,
            ),
          },
        };
      }),
      creationDate: order.createdAt.toISOString(),
      status: order.status,
      transactionType: 'UserPurchase',
      links: {
        self: link(base),
        provisioningStatus: link(`${base}/provisioningstatus`),
        patchOperation: link(base, 'PATCH'),
      },
      totalPrice: total,
      client: {},
      attributes: { objectType: 'Order' },
    };
  }

  listOrders(partnerTenantId: string, customerId: string): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    return this.collection(
      [...this.orders.values()]
        .filter((order) => order.customerId === customer.id)
        .map((order) => this.orderJson(order)),
    );
  }

  /**
   * get-order-provisioning-status.md: per line `fulfilled` once provisioned, `PrefulfillmentPending`
   * while the order is pending (order-resources.md OrderLineItemProvisioningStatus).
   */
  getOrderProvisioningStatus(partnerTenantId: string, customerId: string, orderId: string): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const order = this.orders.get(orderId);
    if (order === undefined || order.customerId !== customer.id) throw pcErrors.orderNotFound(orderId);
    const status = order.status === 'completed' ? 'fulfilled' : 'PrefulfillmentPending';
    return this.collection(
      order.lines.map((line) => ({
        orderLineItemId: line.lineItemNumber,
        lineItemNumber: line.lineItemNumber,
        status,
        quantityProvisioningInformation: [{ quantity: line.quantity, status }],
      })),
    );
  }

  getOrder(partnerTenantId: string, customerId: string, orderId: string): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const order = this.orders.get(orderId);
    if (order === undefined || order.customerId !== customer.id) throw pcErrors.orderNotFound(orderId);
    return this.orderJson(order);
  }

  // ---------- subscriptions ----------

  private subscriptionOf(partnerTenantId: string, customerId: string, subscriptionId: string): Subscription {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const subscription = this.subscriptions.get(subscriptionId.toLowerCase());
    if (subscription === undefined || subscription.customerId !== customer.id)
      throw pcErrors.subscriptionNotFound(subscriptionId);
    return subscription;
  }

  private etag(subscription: Subscription): string {
    return Buffer.from(JSON.stringify({ id: subscription.id, version: subscription.version })).toString(
      'base64',
    );
  }

  subscriptionJson(subscription: Subscription): Json {
    const now = this.clock.now();
    const offer = this.offer(subscription.catalogItemId);
    const active = subscription.status === 'active';
    const refundable = active ? refundableSeats(subscription.lots, now) : [];
    const cancelUntil = cancellationAllowedUntil(subscription.termStartedAt);
    const commitmentEnd = commitmentEndDate(subscription.termStartedAt, subscription.termDuration);
    const [productId, skuId, availabilityId] = subscription.catalogItemId.split(':');
    const scheduled = subscription.scheduled;
    const scheduledOffer =
      scheduled?.catalogItemId === undefined ? offer : this.offer(scheduled.catalogItemId);
    return {
      id: subscription.id,
      offerId: subscription.catalogItemId,
      offerName: offer.product.title,
      friendlyName: subscription.friendlyName,
      productType: { id: 'OnlineServicesNCE', displayName: 'OnlineServicesNCE' },
      quantity: subscription.frozenQuantity ?? totalSeats(subscription.lots),
      unitType: 'Licenses',
      hasPurchasableAddons: false,
      creationDate: subscription.createdAt.toISOString(),
      effectiveStartDate: subscription.termStartedAt.toISOString(),
      commitmentEndDate: commitmentEnd.toISOString(),
      commitmentEndDateTime: new Date(commitmentEnd.getTime() + 86_399_000).toISOString(),
      cancellationAllowedUntilDate: cancelUntil.toISOString(),
      status: subscription.status,
      autoRenewEnabled: subscription.autoRenewEnabled,
      isTrial: false,
      billingType: 'license',
      billingCycle: subscription.billingCycle,
      termDuration: subscription.termDuration,
      renewalTermDuration: '',
      refundOptions:
        active && now < cancelUntil ? [{ type: 'Partial', expiresAt: cancelUntil.toISOString() }] : [],
      isMicrosoftProduct: true,
      partnerId: '',
      attentionNeeded: false,
      actionTaken: false,
      contractType: 'subscription',
      links: {
        product: link(`/products/${productId}?country=US`),
        sku: link(`/products/${productId}/skus/${skuId}?country=US`),
        availability: link(
          `/products/${productId}/skus/${skuId}/availabilities/${availabilityId}?country=US`,
        ),
        self: link(`/customers/${subscription.customerId}/subscriptions/${subscription.id}`),
      },
      publisherName: 'Microsoft Corporation',
      refundableQuantity: {
        totalQuantity: refundable.reduce((sum, seats) => sum + seats.quantity, 0),
        details: refundable.map((seats) => ({
          quantity: seats.quantity,
          allowedUntilDateTime: seats.allowedUntil.toISOString(),
        })),
      },
      ...(scheduled === undefined
        ? {}
        : {
            scheduledNextTermInstructions: {
              product: {
                productId: scheduledOffer.product.productId,
                skuId: scheduledOffer.sku.skuId,
                availabilityId: scheduledOffer.availability.availabilityId,
                billingCycle: scheduled.billingCycle ?? subscription.billingCycle,
                termDuration: scheduled.termDuration ?? subscription.termDuration,
              },
              quantity: scheduled.quantity ?? totalSeats(subscription.lots),
            },
          }),
      orderId: subscription.orderId,
      attributes: { etag: this.etag(subscription), objectType: 'Subscription' },
    };
  }

  listSubscriptions(partnerTenantId: string, customerId: string): Json {
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const items = [...this.subscriptions.values()]
      .filter((subscription) => subscription.customerId === customer.id)
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      .map((subscription) => this.subscriptionJson(subscription));
    return { ...this.collection(items), links: { self: link(`/customers/${customer.id}/subscriptions`) } };
  }

  getSubscription(partnerTenantId: string, customerId: string, subscriptionId: string): Json {
    return this.subscriptionJson(this.subscriptionOf(partnerTenantId, customerId, subscriptionId));
  }

  private scheduledFrom(
    subscription: Subscription,
    input: NonNullable<z.infer<typeof patchSchema>['scheduledNextTermInstructions']>,
  ): RenewalInstructions {
    const product = input.product;
    const target =
      product === undefined
        ? this.offer(subscription.catalogItemId)
        : this.offer(`${product.productId}:${product.skuId}:${product.availabilityId}`, 'buy');
    const termDuration = product === undefined ? subscription.termDuration : asTerm(product.termDuration);
    const billingCycle =
      product === undefined ? subscription.billingCycle : asBillingCycle(product.billingCycle);
    if (!isBillingCycleAllowed(termDuration, billingCycle)) throw pcErrors.billingCycleLongerThanTerm();
    if (
      !target.availability.terms.some(
        (term) => term.termDuration === termDuration && term.billingCycle === billingCycle,
      )
    )
      throw pcErrors.invalidTerm();
    const quantity = input.quantity ?? totalSeats(subscription.lots);
    if (quantity < target.sku.minimumQuantity || quantity > target.sku.maximumQuantity)
      throw pcErrors.quantityOutOfRange();
    return { quantity, termDuration, billingCycle, catalogItemId: target.catalogItemId };
  }

  private sameInstructions(subscription: Subscription, next: RenewalInstructions | undefined): boolean {
    const normalise = (value: RenewalInstructions | undefined): RenewalInstructions | undefined =>
      value === undefined
        ? undefined
        : {
            quantity: value.quantity ?? totalSeats(subscription.lots),
            termDuration: value.termDuration ?? subscription.termDuration,
            billingCycle: value.billingCycle ?? subscription.billingCycle,
            catalogItemId: (value.catalogItemId ?? subscription.catalogItemId).toUpperCase(),
          };
    return isDeepStrictEqual(normalise(subscription.scheduled), normalise(next));
  }

  /**
   * PATCH with the full subscription: quantity, cancel (`status: deleted`), auto-renew, next-term
   * instructions. Every rule is checked at once; with `slowDelay` (the `slowPatch` fault) the change is
   * only accepted — 202 — and applied when virtual time has moved on by that much
   * (change-the-quantity-of-a-subscription.md: "When the patch operation takes longer than the
   * expected time, the Partner Center sends an HTTP status 202 status code and a location header").
   */
  async patchSubscription(
    partnerTenantId: string,
    customerId: string,
    subscriptionId: string,
    body: unknown,
    ifMatch: string | undefined,
    slowDelay?: string,
  ): Promise<{ json: Json; accepted: boolean }> {
    const subscription = this.subscriptionOf(partnerTenantId, customerId, subscriptionId);
    const customer = this.customerOf(this.requirePartner(partnerTenantId), customerId);
    const input = parse(patchSchema, body);
    if (input.id !== undefined && input.id.toLowerCase() !== subscription.id)
      throw pcErrors.invalidInput('the subscription id in the body does not match the URI');
    if (subscription.status === 'deleted') throw pcErrors.deletedCannotUpdate(subscription.id);
    // error-codes.md 800082 (409); using it for "an accepted PATCH is still being applied" is inferred.
    if (subscription.pendingChange !== undefined) throw pcErrors.notReadyToUpdate();
    if (
      ifMatch !== undefined &&
      ifMatch !== '*' &&
      ifMatch.replace(/^W\//, '').replace(/"/g, '') !== this.etag(subscription)
    )
      throw pcErrors.etagInvalid();
    if (subscription.updateCount >= MAX_SUBSCRIPTION_UPDATES) throw pcErrors.tooManyUpdates();
    const now = this.clock.now();
    const finish = async (
      commit: () => void,
      seatsChanged: boolean,
    ): Promise<{ json: Json; accepted: boolean }> => {
      const apply = async (): Promise<void> => {
        commit();
        subscription.version += 1;
        subscription.updateCount += 1;
        if (seatsChanged) await this.syncSeats(customer);
      };
      if (slowDelay === undefined) {
        await apply();
        return { json: this.subscriptionJson(subscription), accepted: false };
      }
      subscription.pendingChange = {
        applyAt: new Date(now.getTime() + durationInMs(slowDelay, now)),
        apply,
      };
      return { json: this.subscriptionJson(subscription), accepted: true };
    };

    if (input.status !== undefined && input.status.toLowerCase() === 'deleted') {
      if (subscription.status !== 'active') throw pcErrors.notActive();
      if (!canCancel(subscription.termStartedAt, now))
        throw pcErrors.cancellationWindowPassed(SEAT_WINDOW_IN_HOURS);
      return finish(() => {
        subscription.frozenQuantity = totalSeats(subscription.lots);
        subscription.status = 'deleted';
        subscription.lots = [];
        subscription.autoRenewEnabled = false;
        subscription.scheduled = undefined;
      }, true);
    }
    if (subscription.status === 'suspended')
      throw new PcError(400, 800091, "Can't update a subscription with suspended status");
    if (subscription.status !== 'active') throw pcErrors.notActive();
    if (input.status !== undefined && input.status.toLowerCase() !== 'active')
      throw new PcError(400, 800096, "Can't update the status for this subscription");
    if (input.billingCycle !== undefined && asBillingCycle(input.billingCycle) !== subscription.billingCycle)
      throw pcErrors.billingCycleChange();

    let lots = subscription.lots;
    let changed = false;
    let seatsChanged = false;
    if (input.quantity !== undefined && input.quantity !== totalSeats(subscription.lots)) {
      const offer = this.offer(subscription.catalogItemId);
      if (input.quantity < offer.sku.minimumQuantity || input.quantity > offer.sku.maximumQuantity)
        throw pcErrors.quantityOutOfRange();
      const change = changeSeats(subscription.lots, input.quantity, now);
      if (!change.ok) throw pcErrors.quantityCannotDecrease();
      lots = change.lots;
      changed = true;
      seatsChanged = true;
    }
    const autoRenew = input.autoRenewEnabled ?? subscription.autoRenewEnabled;
    let scheduled = subscription.scheduled;
    if (autoRenew !== subscription.autoRenewEnabled) changed = true;
    if (input.scheduledNextTermInstructions === null) {
      if (scheduled !== undefined) changed = true;
      scheduled = undefined;
    } else if (input.scheduledNextTermInstructions !== undefined) {
      const next = this.scheduledFrom({ ...subscription, lots }, input.scheduledNextTermInstructions);
      if (!this.sameInstructions({ ...subscription, lots }, next)) {
        if (!autoRenew)
          throw pcErrors.invalidInput('scheduledNextTermInstructions require autoRenewEnabled to be true');
        if (ifMatch === undefined)
          throw pcErrors.invalidInput('an If-Match etag is required to schedule next-term changes');
        scheduled = next;
        changed = true;
      }
    }
    // Turning auto-renew off drops what was scheduled for a renewal that will not happen.
    if (!autoRenew) scheduled = undefined;
    if (!changed) return { json: this.subscriptionJson(subscription), accepted: false };
    const friendlyName = input.friendlyName;
    return finish(() => {
      subscription.lots = lots;
      subscription.autoRenewEnabled = autoRenew;
      subscription.scheduled = scheduled;
      if (friendlyName !== undefined) subscription.friendlyName = friendlyName;
    }, seatsChanged);
  }

  // ---------- time ----------

  /**
   * Runs every renewal and expiry that is due at the current virtual time, oldest first (a monthly
   * subscription renews twelve times when a year passes), then brings Graph in line.
   */
  async processTime(): Promise<{ renewed: number; expired: number; provisioned: number; applied: number }> {
    const now = this.clock.now();
    const touched = new Set<string>();
    let provisioned = 0;
    let applied = 0;
    for (const order of this.orders.values()) {
      if (order.status !== 'pending' || order.provisionAt === undefined || order.provisionAt > now) continue;
      for (const subscription of order.unprovisioned) this.subscriptions.set(subscription.id, subscription);
      order.unprovisioned = [];
      order.status = 'completed';
      provisioned += 1;
      touched.add(order.customerId);
    }
    const dueChanges = [...this.subscriptions.values()]
      .filter(
        (subscription) =>
          subscription.pendingChange !== undefined && subscription.pendingChange.applyAt <= now,
      )
      .sort((a, b) => (a.pendingChange?.applyAt.getTime() ?? 0) - (b.pendingChange?.applyAt.getTime() ?? 0));
    for (const subscription of dueChanges) {
      const change = subscription.pendingChange;
      subscription.pendingChange = undefined;
      if (change === undefined) continue;
      await change.apply();
      applied += 1;
    }
    let renewed = 0;
    let expired = 0;
    for (;;) {
      let due: Subscription | undefined;
      let dueAt = Infinity;
      for (const subscription of this.subscriptions.values()) {
        if (subscription.status !== 'active') continue;
        const endsAt = termEndsAt(subscription.termStartedAt, subscription.termDuration).getTime();
        if (endsAt <= now.getTime() && endsAt < dueAt) {
          due = subscription;
          dueAt = endsAt;
        }
      }
      if (due === undefined) break;
      const outcome = renew({
        catalogItemId: due.catalogItemId,
        termDuration: due.termDuration,
        billingCycle: due.billingCycle,
        termStartedAt: due.termStartedAt,
        lots: due.lots,
        autoRenewEnabled: due.autoRenewEnabled,
        scheduled: due.scheduled,
      });
      if (outcome.kind === 'renewed') {
        const next = outcome.state;
        due.catalogItemId = next.catalogItemId;
        due.termDuration = next.termDuration;
        due.billingCycle = next.billingCycle;
        due.termStartedAt = next.termStartedAt;
        due.lots = next.lots;
        due.scheduled = undefined;
        due.friendlyName = this.offer(next.catalogItemId).sku.title;
        renewed += 1;
      } else {
        due.frozenQuantity = totalSeats(due.lots);
        due.status = 'expired';
        expired += 1;
      }
      due.version += 1;
      touched.add(due.customerId);
    }
    for (const customerId of touched) {
      const customer = this.customers.get(customerId);
      if (customer !== undefined) await this.syncSeats(customer);
    }
    return { renewed, expired, provisioned, applied };
  }

  // ---------- Graph ----------

  private readonly syncChains = new Map<string, Promise<void>>();

  /**
   * Sets prepaidUnits.enabled of every SKU the customer holds (or held) to its active seats. Syncs of
   * one customer run one after another and read the totals when they run, so concurrent changes can
   * never leave an older total in Graph.
   */
  async syncSeats(customer: Customer): Promise<void> {
    const previous = this.syncChains.get(customer.id) ?? Promise.resolve();
    const next = previous.then(() => this.pushSeats(customer));
    this.syncChains.set(customer.id, next);
    await next;
  }

  /** What was last written to Graph per subscription; unchanged subscriptions are not sent again. */
  private readonly syncedToGraph = new Map<string, string>();

  /**
   * One Graph companySubscription per Partner Center subscription, keyed by commerceSubscriptionId =
   * the Partner Center subscription id: active → Enabled with its seats; cancelled → Deleted; expired →
   * Suspended (inferred: Microsoft's grace states after expiry are not modelled). prepaidUnits follow.
   */
  private async pushSeats(customer: Customer): Promise<void> {
    for (const subscription of this.subscriptions.values()) {
      if (subscription.customerId !== customer.id) continue;
      const sku = this.offer(subscription.catalogItemId).sku.graph;
      const active = subscription.status === 'active';
      const state = {
        commerceSubscriptionId: subscription.id,
        totalLicenses: subscription.frozenQuantity ?? totalSeats(subscription.lots),
        status: active ? 'Enabled' : subscription.status === 'deleted' ? 'Deleted' : 'Suspended',
        createdDateTime: subscription.createdAt.toISOString(),
        nextLifecycleDateTime: active
          ? termEndsAt(subscription.termStartedAt, subscription.termDuration).toISOString()
          : null,
        ownerTenantId: customer.partnerTenantId,
      } as const;
      const fingerprint = JSON.stringify([sku.skuId, state]);
      if (this.syncedToGraph.get(subscription.id) === fingerprint) continue;
      try {
        await this.graph.putSubscription(customer.id, sku, state);
        this.syncedToGraph.set(subscription.id, fingerprint);
      } catch (error) {
        // The state is absolute and stays unrecorded, so the next change or renewal repairs a missed update.
        this.log(`graph seat sync failed for ${customer.id}/${subscription.id}: ${String(error)}`);
      }
    }
  }

  // ---------- admin ----------

  adminSetUpdateCount(subscriptionId: string, updateCount: number): void {
    const subscription = this.subscriptions.get(subscriptionId.toLowerCase());
    if (subscription === undefined) throw pcErrors.subscriptionNotFound(subscriptionId);
    subscription.updateCount = updateCount;
  }

  adminSnapshot(): Json {
    return {
      now: this.clock.now().toISOString(),
      customers: [...this.customers.values()].map((customer) => ({
        id: customer.id,
        partnerTenantId: customer.partnerTenantId,
        domain: customer.domain,
        agreements: customer.agreements.length,
      })),
      subscriptions: [...this.subscriptions.values()].map((subscription) => ({
        id: subscription.id,
        customerId: subscription.customerId,
        catalogItemId: subscription.catalogItemId,
        status: subscription.status,
        quantity: subscription.frozenQuantity ?? totalSeats(subscription.lots),
        lots: subscription.lots.map((lot) => ({
          quantity: lot.quantity,
          addedAt: lot.addedAt.toISOString(),
        })),
        updateCount: subscription.updateCount,
        ...(subscription.pendingChange === undefined
          ? {}
          : { pendingChangeAt: subscription.pendingChange.applyAt.toISOString() }),
      })),
      orders: this.orders.size,
      pendingOrders: [...this.orders.values()].filter((order) => order.status === 'pending').length,
    };
  }

  private requirePartner(partnerTenantId: string): Partner {
    const partner = this.partner(partnerTenantId);
    if (partner === undefined) throw pcErrors.accessDenied403('the caller is not a partner tenant');
    return partner;
  }
}
