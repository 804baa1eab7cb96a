import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { billingCycles, termDurations } from '../../../shared/domain/nce.js';

const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
const catalogPart = z.string().regex(/^[A-Za-z0-9]+$/);

const term = z.object({
  termDuration: z.enum(termDurations),
  billingCycle: z.enum(billingCycles),
  listPrice: z.number().nonnegative(),
});

const availability = z.object({ availabilityId: catalogPart, terms: z.array(term).min(1) });

const sku = z.object({
  skuId: catalogPart,
  title: z.string().min(1),
  description: z.string().default(''),
  minimumQuantity: z.number().int().positive().default(1),
  maximumQuantity: z.number().int().positive().default(2000),
  /** What the SKU grants in the customer's tenant (Graph subscribedSkus). */
  graph: z.object({
    skuId: guid,
    skuPartNumber: z.string().min(1),
    servicePlans: z.array(z.object({ servicePlanId: guid, servicePlanName: z.string() })).default([]),
  }),
  availabilities: z.array(availability).min(1),
});

const product = z.object({
  productId: catalogPart,
  title: z.string().min(1),
  description: z.string().default(''),
  skus: z.array(sku).min(1),
});

const seededSubscription = z.object({
  id: guid.optional(),
  catalogItemId: z.string(),
  quantity: z.number().int().positive(),
  termDuration: z.enum(termDurations),
  billingCycle: z.enum(billingCycles),
  /** When the current term started; defaults to the clock's start. */
  startedAt: z.iso.datetime().optional(),
  autoRenewEnabled: z.boolean().default(true),
});

const seededCustomer = z.object({
  id: guid.optional(),
  partnerTenantId: guid,
  domain: z.string().min(3),
  companyName: z.string().min(1),
  /** The partner already attested MCA acceptance. */
  agreementConfirmed: z.boolean().default(true),
  associatedPartnerId: z.string().optional(),
  subscriptions: z.array(seededSubscription).default([]),
});

export const seedSchema = z.object({
  clock: z
    .object({ start: z.iso.datetime().optional(), frozen: z.boolean().default(false) })
    .default({ frozen: false }),
  /** Automatic throttling (real time); null turns a limit off. */
  limits: z
    .object({
      subscriptionRequestsPerMinute: z.number().int().positive().nullable().default(500),
      partnerRequestsPerMinute: z.number().int().positive().nullable().default(null),
    })
    .default({ subscriptionRequestsPerMinute: 500, partnerRequestsPerMinute: null }),
  partners: z
    .array(
      z.object({
        tenantId: guid,
        name: z.string().min(1),
        mpnId: z.string().default('1234567'),
        /** Apps allowed to call as this partner; with a secret the peer also registers them in the Graph peer. */
        apps: z
          .array(
            z.object({
              clientId: guid,
              clientSecret: z.string().optional(),
              /** App roles the app holds in the Graph peer (e.g. Directory.Read.All to read subscribedSkus). */
              graphRoles: z.array(z.string()).default([]),
            }),
          )
          .min(1),
        indirectResellers: z
          .array(
            z.object({
              id: guid,
              name: z.string(),
              mpnId: z.string().default('7654321'),
              location: z.string().default('US'),
            }),
          )
          .default([]),
      }),
    )
    .min(1),
  catalog: z.array(product).min(1),
  customers: z.array(seededCustomer).default([]),
});

export type Seed = z.infer<typeof seedSchema>;
export type SeedInput = z.input<typeof seedSchema>;
export type CatalogProduct = z.infer<typeof product>;
export type CatalogSku = z.infer<typeof sku>;

export async function loadSeed(seed: SeedInput | string): Promise<Seed> {
  const raw: unknown = typeof seed === 'string' ? JSON.parse(await readFile(seed, 'utf8')) : seed;
  return seedSchema.parse(raw);
}
