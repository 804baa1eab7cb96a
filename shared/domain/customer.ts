import { z } from 'zod';
import { controlCharacterMessage, hasControlCharacter, singleLineText } from './text.js';

/**
 * A service provider's customer and how its identities live: only in Entra ID (`cloudOnly`), only in
 * on-prem AD (`adOnly`), authoritative in AD and federated to ADFS in Entra (`hybridFederated`), or as
 * independent accounts in both (`both`). Validation names exactly what a mode lacks.
 */
export const identityModes = ['cloudOnly', 'adOnly', 'hybridFederated', 'both'] as const;
export type IdentityMode = (typeof identityModes)[number];

const domainName = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'must be a DNS domain name');
export const customerIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, . _ - (≤ 64)');
const siteId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lowercase letters, digits and - (≤ 40)');
const distinguishedName = z
  .string()
  .trim()
  .min(3)
  .max(1024)
  .regex(/^(OU|CN|DC)=/i, 'must be a distinguished name such as OU=Users,DC=contoso,DC=local')
  .refine((value) => !hasControlCharacter(value), controlCharacterMessage);

// Request bodies are strict objects: an unknown (e.g. misspelt) field is a 400 naming it, never ignored.
export const licencePlanSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/),
  skus: z
    .array(
      z.strictObject({
        skuId: z.guid(),
        /** Service plans switched off for users of this plan (e.g. no Exchange for on-prem mailboxes). */
        disabledServicePlanIds: z.array(z.guid()).default([]),
      }),
    )
    .min(1),
});
export type LicencePlan = z.infer<typeof licencePlanSchema>;

export const customerInputSchema = z
  .strictObject({
    displayName: singleLineText(256),
    identityMode: z.enum(identityModes),
    entra: z
      .strictObject({
        tenantId: z.guid(),
        /** Verified domains users may get as UPN suffix. */
        domains: z.array(domainName).min(1),
        /** The domain federated to the customer's ADFS (hybridFederated). */
        federatedDomain: domainName.optional(),
      })
      .optional(),
    ad: z
      .strictObject({
        siteId,
        usersOu: distinguishedName,
        groupsOu: distinguishedName.optional(),
        upnSuffixes: z.array(domainName).min(1),
      })
      .optional(),
    defaultUsageLocation: z
      .string()
      .regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2, e.g. NL')
      .optional(),
    licencePlans: z.array(licencePlanSchema).default([]),
  })
  .superRefine((customer, ctx) => {
    const needs = (path: (string | number)[], what: string): void =>
      ctx.addIssue({
        code: 'custom',
        path,
        message: `${what} is required for identityMode ${customer.identityMode}`,
      });
    const mode = customer.identityMode;
    if (mode !== 'adOnly' && customer.entra === undefined) needs(['entra'], 'entra (tenantId, domains)');
    if (mode !== 'cloudOnly' && customer.ad === undefined) needs(['ad'], 'ad (siteId, usersOu, upnSuffixes)');
    if (mode === 'hybridFederated') {
      if (customer.entra !== undefined && customer.entra.federatedDomain === undefined) {
        needs(['entra', 'federatedDomain'], 'entra.federatedDomain');
      }
      const federated = customer.entra?.federatedDomain;
      if (
        federated !== undefined &&
        customer.entra !== undefined &&
        !customer.entra.domains.includes(federated)
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['entra', 'federatedDomain'],
          message: 'must be one of entra.domains',
        });
      }
      if (
        federated !== undefined &&
        customer.ad !== undefined &&
        !customer.ad.upnSuffixes.includes(federated)
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['ad', 'upnSuffixes'],
          message: `must include the federated domain ${federated} so AD and Entra UPNs match`,
        });
      }
    }
    const names = customer.licencePlans.map((p) => p.name.toLowerCase());
    if (new Set(names).size !== names.length) {
      ctx.addIssue({ code: 'custom', path: ['licencePlans'], message: 'plan names must be unique' });
    }
  });
export type CustomerInput = z.infer<typeof customerInputSchema>;

export const customerSchema = z.object({
  customerId: z.string(),
  providerId: z.string(),
  ...customerInputSchema.shape,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Customer = z.infer<typeof customerSchema>;

export const writesToAd = (mode: IdentityMode): boolean => mode !== 'cloudOnly';
export const writesToEntra = (mode: IdentityMode): boolean => mode !== 'adOnly';

/** UPN suffixes a user of this customer may have, by directory. */
export function allowedUpnSuffixes(customer: Customer): string[] {
  const suffixes = new Set<string>();
  if (writesToEntra(customer.identityMode)) for (const d of customer.entra?.domains ?? []) suffixes.add(d);
  if (writesToAd(customer.identityMode)) for (const d of customer.ad?.upnSuffixes ?? []) suffixes.add(d);
  if (customer.identityMode === 'hybridFederated' || customer.identityMode === 'both') {
    // The UPN must work in both directories.
    const entra = new Set(customer.entra?.domains ?? []);
    return (customer.ad?.upnSuffixes ?? []).filter((d) => entra.has(d));
  }
  return [...suffixes];
}
