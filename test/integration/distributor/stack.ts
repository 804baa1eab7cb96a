import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  startDistributorPeer,
  type DistributorPeer,
  type FaultInput,
} from '../../../dev/peers/distributor/index.js';
import type { SeedInput } from '../../../dev/peers/distributor/seed.js';
import { Pax8Distributor, type Pax8Options } from '../../../shared/adapters/distributor/pax8.js';

/** Test fixture: a distributor peer on a frozen virtual clock, two partners, and the real adapter. */

export const day0 = new Date('2026-03-10T09:30:00.000Z');

export const ids = {
  contoso: randomUUID(),
  fabrikam: randomUUID(),
  /** A company of another partner. */
  foreign: randomUUID(),
  e3: randomUUID(),
  exchange: randomUUID(),
  webroot: randomUUID(),
  annualCommitment: randomUUID(),
  threeYearCommitment: randomUUID(),
  contosoTenant: randomUUID(),
  /** Contoso's monthly Exchange subscription (no commitment). */
  exchangeSub: randomUUID(),
  /** Contoso's E3 on an annual commitment that forbids decreases. */
  e3Sub: randomUUID(),
  foreignSub: randomUUID(),
} as const;

export const app = { clientId: `client-${randomUUID()}`, clientSecret: `secret-${randomUUID()}` };
export const otherApp = { clientId: `other-${randomUUID()}`, clientSecret: `other-secret-${randomUUID()}` };

export const graphSku = {
  e3: { skuId: '6fd2c87f-b296-42f0-b197-1e91e994b900', skuPartNumber: 'ENTERPRISEPACK' },
  exchange: { skuId: '4b9405b0-7788-4568-add1-99614e613b69', skuPartNumber: 'EXCHANGESTANDARD' },
} as const;

const company = (id: string, name: string, partnerId: string, extra: Record<string, unknown> = {}) => ({
  id,
  name,
  address: { street: '5500 S Quebec St', city: 'Greenwood Village', postalCode: '80111', country: 'US' },
  phone: '555-555-5555',
  website: `${name.toLowerCase()}.example`,
  externalId: name.toLowerCase(),
  status: 'Active' as const,
  partnerId,
  ...extra,
});

/** `extraSubscriptions` Monthly Exchange subscriptions are added to Fabrikam (paging). */
export function testSeed(options: { extraSubscriptions?: number } = {}): SeedInput {
  const extra = Array.from({ length: options.extraSubscriptions ?? 0 }, (_, index) => ({
    id: randomUUID(),
    companyId: ids.fabrikam,
    productId: ids.webroot,
    quantity: index + 1,
    startDate: new Date(day0.getTime() - (index + 1) * 3_600_000).toISOString(),
    createdDate: new Date(day0.getTime() - (index + 1) * 3_600_000).toISOString(),
    billingTerm: 'Monthly' as const,
  }));
  return {
    clock: { start: day0.toISOString(), frozen: true },
    apps: [
      { ...app, partnerId: 'partner-a' },
      { ...otherApp, partnerId: 'partner-b' },
    ],
    companies: [
      company(ids.contoso, 'Contoso', 'partner-a', {
        msTenantId: ids.contosoTenant,
        msDomain: `c${ids.contosoTenant.slice(0, 8)}`,
      }),
      company(ids.fabrikam, 'Fabrikam', 'partner-a'),
      company(ids.foreign, 'Northwind', 'partner-b'),
    ],
    products: [
      {
        id: ids.e3,
        name: 'Microsoft Office 365 E3',
        vendorName: 'Microsoft',
        shortDescription: 'Office apps, email and compliance',
        description: 'Microsoft Office 365 E3, New Commerce',
        sku: 'MST-OFC-EE3-C100',
        vendorSku: 'CFQ7TTC0LF8Q:0001',
        requiresCommitment: true,
        pricing: [
          {
            billingTerm: 'Monthly',
            commitmentTerm: 'Annual',
            commitmentTermInMonths: 12,
            type: 'Flat',
            unitOfMeasurement: 'Each',
            rates: [{ partnerBuyRate: 22.8, suggestedRetailPrice: 24, chargeType: 'Per Unit' }],
          },
          {
            billingTerm: 'Annual',
            commitmentTerm: 'Annual',
            commitmentTermInMonths: 12,
            type: 'Flat',
            unitOfMeasurement: 'Each',
            rates: [{ partnerBuyRate: 273.6, suggestedRetailPrice: 288, chargeType: 'Per Unit' }],
          },
        ],
        commitments: [
          {
            id: ids.annualCommitment,
            term: 'Annual',
            autoRenew: true,
            allowForQuantityIncrease: true,
            allowForQuantityDecrease: false,
            allowForEarlyCancellation: false,
            cancellationFeeApplied: true,
          },
          {
            id: ids.threeYearCommitment,
            term: '3-Year',
            autoRenew: true,
            allowForQuantityIncrease: true,
            allowForQuantityDecrease: true,
            allowForEarlyCancellation: true,
            cancellationFeeApplied: true,
            isTransferable: true,
          },
        ],
        graph: { ...graphSku.e3, servicePlans: [] },
      },
      {
        id: ids.exchange,
        name: 'Exchange Online (Plan 1)',
        vendorName: 'Microsoft',
        sku: 'MST-EXO-P1-C100',
        vendorSku: 'CFQ7TTC0LH16:0001',
        pricing: [
          {
            billingTerm: 'Monthly',
            rates: [{ partnerBuyRate: 4.8, suggestedRetailPrice: 5 }],
          },
        ],
        graph: { ...graphSku.exchange, servicePlans: [] },
      },
      {
        id: ids.webroot,
        name: 'Webroot SecureAnywhere Business Endpoint Protection',
        vendorName: 'Webroot',
        sku: 'WBR-SAB-EP-C100',
        pricing: [
          {
            billingTerm: 'Monthly',
            type: 'Volume',
            unitOfMeasurement: 'Device',
            rates: [
              { partnerBuyRate: 2.5, suggestedRetailPrice: 3, startQuantityRange: 1, endQuantityRange: 99 },
              {
                partnerBuyRate: 2,
                suggestedRetailPrice: 2.5,
                startQuantityRange: 100,
                endQuantityRange: null,
              },
            ],
          },
        ],
      },
    ],
    subscriptions: [
      {
        id: ids.exchangeSub,
        companyId: ids.contoso,
        productId: ids.exchange,
        quantity: 10,
        startDate: '2026-03-01T00:00:00Z',
        createdDate: '2026-02-27T08:30:00Z',
        billingStart: '2026-03-01',
        status: 'Active',
        price: 5,
        partnerCost: 4.8,
        billingTerm: 'Monthly',
      },
      {
        id: ids.e3Sub,
        companyId: ids.contoso,
        productId: ids.e3,
        quantity: 20,
        startDate: '2026-02-01T00:00:00Z',
        createdDate: '2026-01-30T08:30:00Z',
        billingTerm: 'Monthly',
        commitmentTerm: { id: ids.annualCommitment, term: 'Annual', endDate: '2027-01-31T23:59:59Z' },
      },
      {
        id: ids.foreignSub,
        companyId: ids.foreign,
        productId: ids.exchange,
        quantity: 3,
        startDate: '2026-03-01T00:00:00Z',
        billingTerm: 'Monthly',
      },
      ...extra,
    ],
  };
}

const stateSchema = z
  .object({
    tokensIssued: z.number(),
    requests: z.record(z.string(), z.number()),
    subscriptions: z.array(
      z
        .object({ id: z.string(), quantity: z.number(), appliedChanges: z.number(), status: z.string() })
        .loose(),
    ),
  })
  .loose();

export interface Stack {
  peer: DistributorPeer;
  admin(method: string, path: string, body?: unknown): Promise<unknown>;
  fault(input: FaultInput): Promise<void>;
  state(): Promise<z.infer<typeof stateSchema>>;
  /** How many authenticated API requests of `METHOD /path` reached the peer. */
  requests(methodAndPath: string): Promise<number>;
  advance(by: { hours?: number; days?: number }): Promise<void>;
  adapter(options?: Partial<Pax8Options>): Pax8Distributor;
  /** A raw token for conformance calls. */
  token(credentials?: { clientId: string; clientSecret: string }): Promise<string>;
  stop(): Promise<void>;
}

export async function startStack(
  options: { seed?: SeedInput; graphAdminUrl?: string; log?: (message: string) => void } = {},
): Promise<Stack> {
  const peer = await startDistributorPeer({
    seed: options.seed ?? testSeed(),
    ...(options.graphAdminUrl === undefined ? {} : { graphAdminUrl: options.graphAdminUrl }),
    log: options.log ?? (() => undefined),
  });
  const admin = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${peer.adminUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin ${method} ${path}: ${response.status} ${text}`);
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  };
  const stack: Stack = {
    peer,
    admin,
    async fault(input) {
      await admin('POST', '/faults', input);
    },
    async state() {
      return stateSchema.parse(await admin('GET', '/state'));
    },
    async requests(methodAndPath) {
      return (await stack.state()).requests[methodAndPath] ?? 0;
    },
    async advance(by) {
      await admin('POST', '/clock', { advanceByInMs: ((by.days ?? 0) * 24 + (by.hours ?? 0)) * 3_600_000 });
    },
    adapter(overrides = {}) {
      return new Pax8Distributor({
        ...app,
        baseUrl: peer.baseUrl,
        timeoutInMs: 3000,
        retry: { baseDelayInMs: 5, maxDelayInMs: 20, maxAttempts: 6 },
        ...overrides,
      });
    },
    async token(credentials = app) {
      const response = await fetch(`${peer.baseUrl}/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: credentials.clientId,
          client_secret: credentials.clientSecret,
          audience: 'https://api.pax8.com',
          grant_type: 'client_credentials',
        }),
      });
      const body = z.object({ access_token: z.string() }).parse(await response.json());
      return body.access_token;
    },
    stop: () => peer.stop(),
  };
  return stack;
}
