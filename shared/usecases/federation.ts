import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import type { Customer } from '../domain/customer.js';
import { AppError, toAppError } from '../errors.js';
import type { CloudDirectory, DomainFederation } from '../ports/cloud-directory.js';
import type { OnPremDirectory } from '../ports/on-prem-directory.js';
import type { Store } from '../ports/store.js';
import { controlCharacterMessage, hasControlCharacter, singleLineText } from '../domain/text.js';
import { userRecordSchema } from '../domain/user.js';
import type { Clock } from '../ports/clock.js';
import { loadCustomer } from './customers.js';
import { createTenancy } from './tenancy.js';

const userPartition = (providerId: string, customerId: string): string => `${providerId}/${customerId}`;

/**
 * ADFS federation of a customer's domain in Entra ID (internalDomainFederation), and a preflight that
 * proves sign-in will work: the domain is verified and federated as configured, and every hybrid user's
 * onPremisesImmutableId equals base64 of its AD objectGUID (what ADFS issues as the ImmutableID claim).
 */
// The WHATWG URL parser drops tabs and line breaks silently, so they are refused before it sees them.
const singleLine = (value: string): boolean => !hasControlCharacter(value);
const httpsUri = z
  .string()
  .refine(singleLine, controlCharacterMessage)
  .pipe(z.url({ protocol: /^https$/ }));
// Strict like every request body: an unknown field is a 400 naming it.
export const federationRequestSchema = z.strictObject({
  displayName: singleLineText(256).optional(),
  issuerUri: z.string().refine(singleLine, controlCharacterMessage).pipe(z.url()),
  passiveSignInUri: httpsUri,
  activeSignInUri: httpsUri.optional(),
  metadataExchangeUri: httpsUri.optional(),
  signOutUri: httpsUri.optional(),
  /** Base64 DER of the ADFS token-signing certificate (no PEM armour). */
  signingCertificate: z
    .string()
    .transform((v) => v.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''))
    .pipe(z.base64().min(100, 'the whole certificate, base64')),
  nextSigningCertificate: z.base64().optional(),
  preferredAuthenticationProtocol: z.enum(['wsFed', 'saml']).default('wsFed'),
  federatedIdpMfaBehavior: z
    .enum(['acceptIfMfaDoneByFederatedIdp', 'enforceMfaByFederatedIdp', 'rejectMfaByFederatedIdp'])
    .default('acceptIfMfaDoneByFederatedIdp'),
  promptLoginBehavior: z
    .enum(['translateToFreshPasswordAuthentication', 'nativeSupport', 'disabled'])
    .optional(),
});
export type FederationRequest = z.infer<typeof federationRequestSchema>;

export interface PreflightReport {
  domain: string;
  verified: boolean;
  federated: boolean;
  federation: DomainFederation | null;
  /** Settings that differ from what was last configured through us. */
  configurationDrift: string[];
  usersChecked: number;
  usersTotal: number;
  mismatches: {
    userId: string;
    userPrincipalName: string;
    problem: string;
    expected?: string;
    actual?: string | null;
  }[];
  ready: boolean;
}

export interface FederationDeps {
  store: Store;
  clock: Clock;
  cloudDirectory?: (tenantId: string) => CloudDirectory;
  onPremDirectory?: (siteId: string) => Promise<OnPremDirectory>;
}

const desiredSchema = federationRequestSchema.extend({ signingCertificate: z.string() });

export function createFederation(deps: FederationDeps) {
  const desired = deps.store.collection('federations', desiredSchema);
  const users = deps.store.collection('users', userRecordSchema);
  const tenancy = createTenancy(deps);

  /** The caller's customer, whose tenant is claimed by it (another provider's reads as missing). */
  async function ownCustomer(caller: Caller, customerId: string): Promise<Customer> {
    const customer = (await loadCustomer(deps.store, caller, customerId)).value;
    await tenancy.assertWorkAllowed(caller.providerId, customer);
    return customer;
  }

  /**
   * Only a hybridFederated customer's own verified custom domain may be federated: federating a
   * cloud-only customer's domain breaks every later create (Entra refuses passwords there).
   */
  async function federableDomain(customer: Customer, domain: string) {
    if (customer.identityMode !== 'hybridFederated')
      throw new AppError(
        'Conflict',
        `customer ${customer.customerId} is ${customer.identityMode}: only hybridFederated customers sign in through ADFS`,
      );
    checkDomain(customer, domain);
    if (domain.endsWith('.onmicrosoft.com'))
      throw new AppError('Validation', 'onmicrosoft.com domains cannot be federated');
    const cloud = cloudFor(customer);
    const found = await cloud.getDomain(domain);
    if (!found.isVerified) throw new AppError('Conflict', `${domain} is not verified in the tenant yet`);
    if (found.isInitial)
      throw new AppError('Validation', 'the initial onmicrosoft.com domain cannot be federated');
    if (found.isDefault)
      throw new AppError(
        'Conflict',
        `${domain} is the tenant's default domain; make another domain the default before federating it`,
      );
    return cloud;
  }

  function cloudFor(customer: Customer): CloudDirectory {
    if (customer.entra === undefined)
      throw new AppError('Validation', `customer ${customer.customerId} has no Entra tenant`);
    if (deps.cloudDirectory === undefined)
      throw new AppError('Unavailable', 'Microsoft Graph is not configured');
    return deps.cloudDirectory(customer.entra.tenantId);
  }

  function checkDomain(customer: Customer, domain: string): void {
    if (!(customer.entra?.domains ?? []).includes(domain)) {
      throw new AppError(
        'Validation',
        `${domain} is not one of customer ${customer.customerId}'s Entra domains`,
      );
    }
  }

  return {
    async configure(
      caller: Caller,
      customerId: string,
      domain: string,
      request: FederationRequest,
    ): Promise<DomainFederation> {
      const customer = await ownCustomer(caller, customerId);
      const cloud = await federableDomain(customer, domain);
      // Stored first: a retry after a Graph failure writes the same settings again (PUT is idempotent).
      await desired.upsert(userPartition(caller.providerId, customerId), domain, request);
      return cloud.putDomainFederation(domain, request);
    },

    /** Converts the domain back to managed (an operator's undo); not federated is a no-op. */
    async remove(caller: Caller, customerId: string, domain: string): Promise<void> {
      const customer = await ownCustomer(caller, customerId);
      checkDomain(customer, domain);
      const cloud = cloudFor(customer);
      // Forget the desired settings first, so a drift report never asks to put it back.
      await desired.delete(userPartition(caller.providerId, customerId), domain);
      await cloud.deleteDomainFederation(domain);
    },

    async preflight(
      caller: Caller,
      customerId: string,
      domain: string,
      options: { sample?: number } = {},
    ): Promise<PreflightReport> {
      const customer = await ownCustomer(caller, customerId);
      checkDomain(customer, domain);
      const cloud = cloudFor(customer);
      const found = await cloud.getDomain(domain);
      const federation =
        found.authenticationType === 'Federated' ? ((await cloud.getDomainFederation(domain)) ?? null) : null;
      const want = (await desired.get(userPartition(caller.providerId, customerId), domain))?.value;
      const drift: string[] = [];
      if (want !== undefined) {
        if (federation === null) drift.push('federation is missing');
        else {
          for (const key of [
            'issuerUri',
            'passiveSignInUri',
            'signingCertificate',
            'preferredAuthenticationProtocol',
            'federatedIdpMfaBehavior',
          ] as const) {
            if (want[key] !== federation[key]) drift.push(key);
          }
        }
      }

      const all = [];
      for await (const user of users.list(userPartition(caller.providerId, customerId))) {
        const record = user.value;
        if (record.state === 'deleted' || record.ad === undefined || record.entra === undefined) continue;
        if (!record.userPrincipalName.toLowerCase().endsWith(`@${domain}`)) continue;
        all.push(record);
      }
      const checked = options.sample === undefined ? all : all.slice(0, options.sample);
      const onPrem =
        customer.ad !== undefined && deps.onPremDirectory !== undefined
          ? await deps.onPremDirectory(customer.ad.siteId)
          : undefined;
      const mismatches: PreflightReport['mismatches'] = [];
      for (const record of checked) {
        const ad = record.ad as NonNullable<typeof record.ad>;
        const entra = record.entra as NonNullable<typeof record.entra>;
        try {
          if (onPrem !== undefined) {
            const inAd = await onPrem.findUser('objectGuid', ad.objectGuid, {
              commandId: `preflight.${customerId}.${record.userId}.${Date.now()}`,
            });
            if (inAd === null) {
              mismatches.push({
                userId: record.userId,
                userPrincipalName: record.userPrincipalName,
                problem: 'AD account not found',
                expected: ad.objectGuid,
              });
              continue;
            }
          }
          const inEntra = await cloud.getUser(entra.objectId);
          if (inEntra.onPremisesImmutableId !== ad.objectGuid) {
            mismatches.push({
              userId: record.userId,
              userPrincipalName: record.userPrincipalName,
              problem: 'onPremisesImmutableId differs from base64(objectGUID)',
              expected: ad.objectGuid,
              actual: inEntra.onPremisesImmutableId,
            });
          }
        } catch (error) {
          mismatches.push({
            userId: record.userId,
            userPrincipalName: record.userPrincipalName,
            problem: toAppError(error).message,
          });
        }
      }
      const verified = found.isVerified;
      const federated = found.authenticationType === 'Federated' && federation !== null;
      return {
        domain,
        verified,
        federated,
        federation,
        configurationDrift: drift,
        usersChecked: checked.length,
        usersTotal: all.length,
        mismatches,
        ready: verified && federated && drift.length === 0 && mismatches.length === 0,
      };
    },
  };
}

export type Federation = ReturnType<typeof createFederation>;
