import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../../domain/caller.js';
import {
  customerIdSchema,
  customerInputSchema,
  type Customer,
  type CustomerInput,
} from '../../domain/customer.js';
import { domainAlternatives, initialDomainPrefixPattern } from '../../domain/tenant.js';
import { AppError, isAppError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type { Commerce } from '../../ports/commerce.js';
import type { SecretSealer } from '../../ports/secret-sealer.js';
import type { Store } from '../../ports/store.js';
import type { Customers } from '../customers.js';
import type { Licensing, LicensingConnectors } from '../licensing.js';
import type { SagaRunner, SagaStepDefinition, StepOutcome } from './saga.js';

/**
 * Creating a customer's Microsoft 365 tenant through Partner Center (1-Tier, issue 14), as a commerce
 * operation: the initial domain is checked (`HEAD /v1/domains`, alternatives when taken) and the address
 * validated before anything is written, then the customer is created under an `MS-RequestId` derived
 * from the operation (a lost answer or a crash re-sends the same request: one tenant), its one-time
 * admin password sealed in the same step, the Microsoft Customer Agreement attested (no purchase is
 * possible before: the customer has no Partner Center link until the last step), and the tenant linked
 * to the Atria customer (claimed for it: Tenancy) with its identity mode and Partner Center source.
 * The admin credentials can be read once through the API, then they are destroyed.
 */

const text = (max: number) => z.string().trim().min(1).max(max);
export const tenantDetailsSchema = z.strictObject({
  /** The initial domain's first label: `<domainPrefix>.onmicrosoft.com`. */
  domainPrefix: z.string().regex(initialDomainPrefixPattern, 'letters and digits, at most 27'),
  companyName: text(256),
  email: z.email(),
  culture: z
    .string()
    .regex(/^[a-z]{2}-[A-Z]{2}$/)
    .default('en-US'),
  language: z
    .string()
    .regex(/^[a-z]{2}$/)
    .default('en'),
  address: z.strictObject({
    country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2'),
    city: text(128),
    state: text(64).optional(),
    addressLine1: text(256),
    addressLine2: text(256).optional(),
    postalCode: text(32),
    firstName: text(64).optional(),
    lastName: text(64).optional(),
    phoneNumber: text(32).optional(),
  }),
  organizationRegistrationNumber: text(64).optional(),
  /** Who accepted the Microsoft Customer Agreement for the customer (recorded before any purchase). */
  agreement: z.strictObject({
    firstName: text(64),
    lastName: text(64),
    email: z.email(),
    phoneNumber: text(32).optional(),
  }),
});
export type TenantDetails = z.infer<typeof tenantDetailsSchema>;

/** For an existing Atria customer without a tenant. */
export const customerTenantInputSchema = tenantDetailsSchema;
/**
 * The customer minus its tenant (`entra` comes from the new tenant). Its cross-field rules (what an
 * identity mode needs) are checked with the full customer schema once the tenant's domain is known.
 */
const { entra: _entra, ...customerFields } = customerInputSchema.shape;
const customerWithoutTenantSchema = z.strictObject(customerFields);

/** A new Atria customer and its tenant at once. */
export const newTenantInputSchema = tenantDetailsSchema.extend({
  customerId: customerIdSchema,
  customer: customerWithoutTenantSchema,
});

const storedSchema = z.object({
  details: tenantDetailsSchema,
  /** The customer to create at link time (POST /tenants); absent: the customer exists. */
  customer: customerWithoutTenantSchema.optional(),
});

const credentialSchema = z.object({
  userName: z.string(),
  sealedPassword: z.string(),
  pcCustomerId: z.string(),
});

export interface TenantsDeps {
  store: Store;
  clock: Clock;
  sealer: SecretSealer;
  connectors: LicensingConnectors;
  customers: Pick<Customers, 'get' | 'put'>;
  licensing: Pick<Licensing, 'putSources'>;
  runner: () => SagaRunner;
  deadlineInMs?: number;
}

export function createTenants(deps: TenantsDeps) {
  const credentials = deps.store.collection('tenantcredentials', credentialSchema);
  const deadlineInMs = deps.deadlineInMs ?? 24 * 60 * 60_000;

  function commerceFor(providerId: string): Commerce {
    const pc = deps.connectors.partnerCenter;
    if (pc?.providerId !== providerId)
      throw new AppError(
        'Conflict',
        'this provider has no Partner Center connector (1-Tier tenant creation is not set up)',
      );
    return pc.commerce;
  }

  const domainOf = (details: TenantDetails) => `${details.domainPrefix.toLowerCase()}.onmicrosoft.com`;

  /** Taken: 409 with free alternatives (each checked), so the caller can pick one at once. */
  async function assertDomainFree(commerce: Commerce, details: TenantDetails): Promise<void> {
    if (await commerce.isDomainAvailable(domainOf(details))) return;
    const free: string[] = [];
    for (const prefix of domainAlternatives(details.domainPrefix, 8)) {
      if (free.length >= 3) break;
      if (await commerce.isDomainAvailable(`${prefix}.onmicrosoft.com`)) free.push(prefix);
    }
    throw new AppError('Conflict', `${domainOf(details)} is taken`, {
      details: { reason: 'DomainTaken', alternatives: free.map((p) => `${p}.onmicrosoft.com`) },
    });
  }

  async function assertAddressValid(commerce: Commerce, details: TenantDetails): Promise<void> {
    const result = await commerce.validateAddress(details.address);
    if (result.status === 'None')
      throw new AppError(
        'Validation',
        `Partner Center cannot validate this address: ${result.message ?? 'no match'}`,
        {
          details: {
            errors: [{ path: 'body.address', message: result.message ?? 'not a valid address' }],
            suggestedAddresses: result.suggestedAddresses,
          },
        },
      );
  }

  const callerOf = (providerId: string, actor: string): Caller => ({ id: actor, kind: 'apiKey', providerId });

  // ---------- steps ----------

  const done = (result?: Record<string, string | number | boolean>): StepOutcome => ({
    kind: 'done',
    ...(result === undefined ? {} : { result }),
  });
  const stored = (payload: string | number | boolean | undefined) =>
    storedSchema.parse(JSON.parse(String(payload)));

  const steps: SagaStepDefinition[] = [
    {
      name: 'address.validate',
      async execute(ctx) {
        const { details } = stored(ctx.saga.request.payload);
        await assertAddressValid(commerceFor(ctx.saga.providerId), details);
        return done();
      },
    },
    {
      name: 'customer.create',
      async execute(ctx) {
        const { details } = stored(ctx.saga.request.payload);
        const commerce = commerceFor(ctx.saga.providerId);
        // The MS-RequestId derives from this key: a repeat is recognised as the same customer.
        const created = await commerce.createCustomer(
          {
            domain: domainOf(details),
            companyName: details.companyName,
            email: details.email,
            culture: details.culture,
            language: details.language,
            address: details.address,
            ...(details.organizationRegistrationNumber === undefined
              ? {}
              : { organizationRegistrationNumber: details.organizationRegistrationNumber }),
          },
          { operationKey: `${ctx.saga.operationId}:customer` },
        );
        const admin = created.adminCredentials;
        // Sealed in this step, before its result is persisted: the clear password is never stored.
        if (admin !== undefined)
          await credentials.upsert(ctx.saga.providerId, ctx.saga.operationId, {
            userName: admin.userName,
            sealedPassword: admin.password.seal(deps.sealer),
            pcCustomerId: created.customer.id,
          });
        return done({
          pcCustomerId: created.customer.id,
          tenantId: created.customer.tenantId,
          domain: created.customer.domain,
          adminCredentials: admin === undefined ? 'none' : 'sealed',
        });
      },
    },
    {
      name: 'agreement',
      async execute(ctx) {
        const { details } = stored(ctx.saga.request.payload);
        const commerce = commerceFor(ctx.saga.providerId);
        const pcCustomerId = String(ctx.result('customer.create').pcCustomerId);
        const template = await commerce.getCustomerAgreementTemplate();
        const recorded = await commerce.listAgreements(pcCustomerId);
        if (!recorded.some((a) => a.templateId === template.templateId))
          await commerce.confirmAgreement(
            pcCustomerId,
            {
              ...details.agreement,
              dateAgreed: new Date(ctx.saga.createdAt),
              templateId: template.templateId,
            },
            { operationKey: `${ctx.saga.operationId}:agreement` },
          );
        return done({ templateId: template.templateId });
      },
    },
    {
      name: 'link',
      async execute(ctx) {
        const { customer: fresh } = stored(ctx.saga.request.payload);
        const created = ctx.result('customer.create');
        const caller = callerOf(ctx.saga.providerId, ctx.saga.actor);
        const tenantId = String(created.tenantId);
        const domain = String(created.domain);
        const existing = await deps.customers.get(caller, ctx.saga.customerId).catch((error: unknown) => {
          if (isAppError(error, 'NotFound')) return undefined;
          throw error;
        });
        const base: Omit<CustomerInput, 'entra'> | undefined =
          existing === undefined ? fresh : inputOf(existing.value);
        if (base === undefined)
          throw new AppError('NotFound', `customer ${ctx.saga.customerId} no longer exists`);
        const current = existing?.value.entra;
        if (current !== undefined && current.tenantId.toLowerCase() !== tenantId.toLowerCase())
          throw new AppError(
            'Conflict',
            `customer ${ctx.saga.customerId} was linked to another tenant meanwhile`,
          );
        if (current === undefined)
          await deps.customers.put(caller, ctx.saga.customerId, {
            ...base,
            entra: { tenantId, domains: [domain] },
          });
        await deps.licensing.putSources(caller, ctx.saga.customerId, {
          partnerCenterCustomerId: String(created.pcCustomerId),
          assignmentPolicy: [],
        });
        return done({ tenantId, domain });
      },
    },
  ];

  // ---------- use cases ----------

  async function request(
    caller: Caller,
    customerId: string,
    details: TenantDetails,
    customer: Omit<CustomerInput, 'entra'> | undefined,
    idempotencyKey: string | undefined,
  ) {
    const existing = await deps.customers.get(caller, customerId).catch((error: unknown) => {
      if (isAppError(error, 'NotFound')) return undefined;
      throw error;
    });
    // Another provider's customer answers exactly like a missing one (before anything else is said).
    if (customer === undefined && existing === undefined)
      throw new AppError('NotFound', `customer ${customerId} not found`);
    const commerce = commerceFor(caller.providerId);
    if (customer !== undefined && existing !== undefined && idempotencyKey === undefined)
      throw new AppError(
        'Conflict',
        `customer ${customerId} exists; use POST /customers/${customerId}/tenant`,
      );
    if (existing?.value.entra !== undefined)
      throw new AppError(
        'Conflict',
        `customer ${customerId} already has tenant ${existing.value.entra.tenantId}`,
      );
    if (customer !== undefined) {
      // The identity mode's needs are checked now, with the tenant as it will be (clear 400s first).
      const check = customerInputSchema.safeParse({
        ...customer,
        entra: { tenantId: '00000000-0000-4000-8000-000000000000', domains: [domainOf(details)] },
      });
      if (!check.success)
        throw new AppError('Validation', check.error.issues.map((i) => i.message).join('; '), {
          details: {
            errors: check.error.issues.map((i) => ({
              path: `body.customer.${i.path.join('.')}`,
              message: i.message,
            })),
          },
        });
    }
    const payload = JSON.stringify({ details, ...(customer === undefined ? {} : { customer }) });
    const key = idempotencyKey ?? `domain:${details.domainPrefix.toLowerCase()}`;
    const fingerprint = createHash('sha256')
      .update(canonicalJson(JSON.parse(payload)))
      .digest('base64url');
    const runner = deps.runner();
    // A repeat (even after the tenant exists, when the domain reads as taken) is the same operation.
    const earlier = await runner.lookup(caller.providerId, customerId, 'tenant.create', key);
    const createdNothing =
      earlier !== undefined &&
      (earlier.saga.state === 'failed' || earlier.saga.state === 'cancelled') &&
      earlier.saga.steps.find((step) => step.name === 'customer.create')?.state !== 'done';
    if (earlier !== undefined && createdNothing)
      await runner.forget(caller.providerId, customerId, 'tenant.create', key);
    else if (earlier !== undefined) {
      if (earlier.fingerprint !== fingerprint)
        throw new AppError('Conflict', 'this Idempotency-Key (or domain) was used for another request');
      return { created: false, operation: visible(earlier.saga) };
    }
    await assertDomainFree(commerce, details);
    await assertAddressValid(commerce, details);
    const started = await runner.start({
      providerId: caller.providerId,
      customerId,
      kind: 'tenant.create',
      request: { payload },
      actor: caller.id,
      idempotencyKey: key,
      fingerprint,
      held: false,
      deadlineInMs,
    });
    const saga = started.created
      ? await runner.advance(caller.providerId, started.saga.operationId)
      : started.saga;
    // Partner Center refused the customer (a country's rules): a clear 400 naming the field; the key
    // is free again for the corrected request.
    if (saga.state === 'failed' && saga.error?.code === 'Validation') {
      await runner.forget(caller.providerId, customerId, 'tenant.create', key);
      throw new AppError('Validation', saga.error.message, {
        details: { ...saga.error.details, operationId: saga.operationId },
      });
    }
    return { created: started.created, operation: visible(saga) };
  }

  function visible(saga: Parameters<SagaRunner['visible']>[0]) {
    const { request: _request, ...rest } = deps.runner().visible(saga);
    return rest;
  }

  /**
   * The new tenant's admin user name and password, exactly once: the sealed row is deleted (with its
   * etag, so two parallel reads cannot both get it) before the password is opened and returned.
   */
  async function takeAdminCredentials(caller: Caller, customerId: string, operationId: string) {
    await deps.customers.get(caller, customerId);
    const saga = (await deps.runner().get(caller.providerId, operationId))?.value;
    if (saga?.kind !== 'tenant.create' || saga.customerId !== customerId)
      throw new AppError('NotFound', `tenant operation ${operationId} not found`);
    const row = await credentials.get(caller.providerId, operationId);
    if (row === undefined)
      throw new AppError(
        'Conflict',
        'the admin credentials were already retrieved (or Partner Center returned none)',
        {
          details: { reason: 'AlreadyRetrieved' },
        },
      );
    try {
      await credentials.delete(caller.providerId, operationId, row.etag);
    } catch (error) {
      if (isAppError(error, 'ConcurrencyConflict'))
        throw new AppError('Conflict', 'the admin credentials were already retrieved', {
          details: { reason: 'AlreadyRetrieved' },
        });
      throw error;
    }
    const domain = saga.steps.find((step) => step.name === 'customer.create')?.result?.domain;
    const { userName } = row.value;
    return {
      userName,
      // Partner Center returns the alias (create-a-customer.md: `userCredentials.userName`).
      userPrincipalName:
        userName.includes('@') || typeof domain !== 'string' ? userName : `${userName}@${domain}`,
      password: deps.sealer.open(row.value.sealedPassword),
    };
  }

  return {
    steps,
    createForCustomer: (caller: Caller, customerId: string, details: TenantDetails, key?: string) =>
      request(caller, customerId, details, undefined, key),
    createWithCustomer: (caller: Caller, input: z.infer<typeof newTenantInputSchema>, key?: string) => {
      const { customerId, customer, ...details } = input;
      return request(caller, customerId, details, customer, key);
    },
    takeAdminCredentials,
    async getOperation(caller: Caller, operationId: string) {
      const saga = (await deps.runner().get(caller.providerId, operationId))?.value;
      if (saga === undefined) throw new AppError('NotFound', `operation ${operationId} not found`);
      await deps.customers.get(caller, saga.customerId).catch((error: unknown) => {
        // A POST /tenants customer exists only once the link step ran.
        if (!isAppError(error, 'NotFound') || saga.kind !== 'tenant.create') throw error;
      });
      return visible(saga);
    },
  };
}
export type Tenants = ReturnType<typeof createTenants>;

function inputOf(customer: Customer): Omit<CustomerInput, 'entra'> {
  const {
    customerId: _id,
    providerId: _provider,
    createdAt: _created,
    updatedAt: _updated,
    entra: _entra,
    ...input
  } = customer;
  return input;
}

/** JSON with sorted keys: the same request is the same fingerprint whatever its key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.entries(value)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`)
      .join(',')}}`;
  return JSON.stringify(value);
}
