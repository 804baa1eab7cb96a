import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ClientSecretCredential } from '@azure/identity';
import { z } from 'zod';
import { startIdentityGraphPeer, type IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';
import { startPartnerCenterPeer, type PartnerCenterPeer } from '../../../dev/peers/partner-center/index.js';
import type { FaultInput } from '../../../dev/peers/partner-center/faults.js';
import { seedSchema, type SeedInput } from '../../../dev/peers/partner-center/seed.js';
import { createPartnerCenterCommerce } from '../../../shared/adapters/partner-center/commerce.js';
import type { Commerce, NewCustomer } from '../../../shared/ports/commerce.js';

/** Test stack: identity-graph peer + Partner Center peer + the real adapter with a real credential. */

export const demoCatalog = seedSchema.parse(
  JSON.parse(readFileSync('dev/peers/partner-center/demo-seed.json', 'utf8')),
).catalog;

export const offers = {
  e3: 'CFQ7TTC0LFLZ:0001:CFQ7TTC0N8SL',
  businessPremium: 'CFQ7TTC0LCHC:0002:CFQ7TTC0KDLX',
  exchangePlan1: 'CFQ7TTC0LH16:0001:CFQ7TTC0LGSB',
} as const;

export const graphSkuIds = {
  e3: '05e9a617-0261-4cee-bb44-138d3ef5d965',
  businessPremium: 'cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46',
  exchangePlan1: '4b9405b0-7788-4568-add1-99614e613b69',
} as const;

export const day0 = new Date('2026-03-10T09:30:00.000Z');
const dayInMs = 24 * 60 * 60 * 1000;

const subscribedSkusSchema = z.object({
  value: z.array(
    z
      .object({
        skuId: z.string(),
        skuPartNumber: z.string(),
        consumedUnits: z.number(),
        prepaidUnits: z.object({ enabled: z.number() }).loose(),
      })
      .loose(),
  ),
});

export interface Stack {
  graph: IdentityGraphPeer;
  partnerCenter: PartnerCenterPeer;
  partnerTenantId: string;
  clientId: string;
  clientSecret: string;
  credential: ClientSecretCredential;
  commerce: Commerce;
  /** Moves the Partner Center clock (renewals run) and returns the new virtual now. */
  advance(by: { days?: number; hours?: number; iso?: string }): Promise<Date>;
  now(): Promise<Date>;
  fault(input: FaultInput): Promise<void>;
  /** Graph `subscribedSkus` of a customer tenant, read with a Graph token of the partner's app. */
  enabledSeats(customerTenantId: string): Promise<Map<string, number>>;
  newCustomer(overrides?: Partial<NewCustomer>): NewCustomer;
  /** A customer with MCA attestation, ready to buy. */
  readyCustomer(): Promise<string>;
  token(scope?: string, tenantId?: string): Promise<string>;
  /** One raw REST call to the Partner Center peer with the partner's token (docs replay). */
  call(method: string, path: string, options?: CallOptions): Promise<Answer>;
  /** The peer's admin API. */
  admin(method: string, path: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

export interface CallOptions {
  body?: unknown;
  requestId?: string;
  headers?: Record<string, string>;
  token?: string;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export async function startStack(options: { extraPartners?: SeedInput['partners'] } = {}): Promise<Stack> {
  const graph = await startIdentityGraphPeer({});
  const partnerTenantId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = `test-${randomUUID()}`;
  const partnerCenter = await startPartnerCenterPeer({
    seed: {
      clock: { start: day0.toISOString(), frozen: true },
      partners: [
        {
          tenantId: partnerTenantId,
          name: 'Test Partner',
          apps: [{ clientId, clientSecret, graphRoles: ['Directory.Read.All'] }],
          indirectResellers: [{ id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', name: 'Reseller One' }],
        },
        ...(options.extraPartners ?? []),
      ],
      catalog: demoCatalog,
    },
    identity: { authorityHost: graph.authorityHost },
    graphAdminUrl: graph.adminUrl,
    log: () => undefined,
  });
  const credential = new ClientSecretCredential(partnerTenantId, clientId, clientSecret, {
    authorityHost: graph.authorityHost,
    disableInstanceDiscovery: true,
  });
  const commerce = createPartnerCenterCommerce({
    credential,
    baseUrl: partnerCenter.baseUrl,
    timeoutInMs: 3000,
    retry: { baseDelayInMs: 20, maxDelayInMs: 200 },
    poll: { maxAttempts: 60, baseDelayInMs: 20, maxDelayInMs: 50 },
  });
  const admin = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${partnerCenter.adminUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin ${method} ${path}: ${response.status} ${text}`);
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  };
  const clockSchema = z.object({ now: z.string() }).loose();
  let counter = 0;
  const stack: Stack = {
    graph,
    partnerCenter,
    partnerTenantId,
    clientId,
    clientSecret,
    credential,
    commerce,
    async advance(by) {
      const ms = (by.days ?? 0) * dayInMs + (by.hours ?? 0) * 3_600_000;
      const body = by.iso === undefined ? { advanceByInMs: ms } : { advanceBy: by.iso };
      return new Date(clockSchema.parse(await admin('POST', '/clock', body)).now);
    },
    async now() {
      return new Date(clockSchema.parse(await admin('GET', '/clock')).now);
    },
    async fault(input) {
      await admin('POST', '/faults', input);
    },
    async enabledSeats(customerTenantId) {
      const token = await stack.token('https://graph.microsoft.com/.default', customerTenantId);
      const response = await fetch(`${graph.graphBaseUrl}/subscribedSkus`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (!response.ok) throw new Error(`subscribedSkus: ${response.status} ${await response.text()}`);
      const body = subscribedSkusSchema.parse(await response.json());
      return new Map(body.value.map((sku) => [sku.skuId, sku.prepaidUnits.enabled]));
    },
    newCustomer(overrides = {}) {
      counter += 1;
      const prefix = `t${randomUUID().slice(0, 8)}${counter}`;
      return {
        domain: `${prefix}.onmicrosoft.com`,
        companyName: `Customer ${prefix}`,
        email: `owner@${prefix}.example`,
        culture: 'en-US',
        language: 'en',
        address: {
          country: 'US',
          city: 'Redmond',
          state: 'WA',
          addressLine1: 'One Microsoft Way',
          postalCode: '98052',
        },
        ...overrides,
      };
    },
    async readyCustomer() {
      const created = await commerce.createCustomer(stack.newCustomer(), {
        operationKey: `create-${randomUUID()}`,
      });
      await commerce.confirmAgreement(
        created.customer.id,
        {
          firstName: 'Tania',
          lastName: 'Carr',
          email: 'tania@example.com',
          dateAgreed: day0,
          templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
        },
        { operationKey: `mca-${created.customer.id}` },
      );
      return created.customer.id;
    },
    async token(scope = 'https://api.partnercenter.microsoft.com/.default', tenantId = partnerTenantId) {
      const credentialFor =
        tenantId === partnerTenantId
          ? credential
          : new ClientSecretCredential(tenantId, clientId, clientSecret, {
              authorityHost: graph.authorityHost,
              disableInstanceDiscovery: true,
            });
      const token = await credentialFor.getToken(scope);
      return token.token;
    },
    async call(method, path, callOptions = {}) {
      const response = await fetch(`${partnerCenter.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${callOptions.token ?? (await stack.token())}`,
          accept: 'application/json',
          'ms-requestid': callOptions.requestId ?? randomUUID(),
          'ms-correlationid': randomUUID(),
          ...(callOptions.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...callOptions.headers,
        },
        ...(callOptions.body === undefined ? {} : { body: JSON.stringify(callOptions.body) }),
      });
      const text = await response.text();
      return {
        status: response.status,
        headers: response.headers,
        body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
      };
    },
    admin,
    async stop() {
      await partnerCenter.stop();
      await graph.stop();
    },
  };
  return stack;
}
