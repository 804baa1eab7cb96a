import { ClientSecretCredential } from '@azure/identity';
import type { IdentityGraphPeer, Seed } from '../../dev/peers/identity-graph/index.js';
import { startPartnerCenterPeer, type PartnerCenterPeer } from '../../dev/peers/partner-center/index.js';
import { createPartnerCenterCommerce } from '../../shared/adapters/partner-center/commerce.js';
import type { Commerce, CreatedCustomer } from '../../shared/ports/commerce.js';
import { demoCatalog } from '../integration/partner-center/stack.js';

/**
 * The Graph peer's seed for a Partner Center fixture: the partner's own tenant (with its initial domain)
 * and the app registered there with `roles`; customer tenants come from Partner Center as it creates them.
 */
export function partnerTenantSeed(input: {
  partnerTenant: string;
  app: { clientId: string; clientSecret: string };
  roles: string[];
}): Seed {
  const { partnerTenant } = input;
  return {
    tenants: [
      {
        id: partnerTenant,
        displayName: 'Partner',
        domains: [{ id: `p${partnerTenant.slice(0, 8)}.onmicrosoft.com`, isInitial: true, isDefault: true }],
      },
    ],
    apps: [{ ...input.app, homeTenantId: partnerTenant, tenants: [], roles: input.roles }],
  };
}

/**
 * The 1-Tier side of the commerce e2e files: a Partner Center peer (frozen virtual clock, the demo
 * catalog) beside a Graph peer, the real Commerce adapter against it, and a customer of the partner
 * with the Microsoft Customer Agreement accepted — what a provider has before it buys anything.
 */
export async function startPartnerCenterFixture(input: {
  graph: IdentityGraphPeer;
  partnerTenant: string;
  partnerName?: string;
  app: { clientId: string; clientSecret: string };
  graphRoles: string[];
  start: Date;
}): Promise<{ partnerCenter: PartnerCenterPeer; commerce: Commerce }> {
  const partnerCenter = await startPartnerCenterPeer({
    seed: {
      clock: { start: input.start.toISOString(), frozen: true },
      partners: [
        {
          tenantId: input.partnerTenant,
          name: input.partnerName ?? 'Blue Partner',
          apps: [{ ...input.app, graphRoles: input.graphRoles }],
        },
      ],
      catalog: demoCatalog,
    },
    identity: { authorityHost: input.graph.authorityHost },
    graphAdminUrl: input.graph.adminUrl,
    log: () => undefined,
  });
  const commerce = createPartnerCenterCommerce({
    credential: new ClientSecretCredential(input.partnerTenant, input.app.clientId, input.app.clientSecret, {
      authorityHost: input.graph.authorityHost,
      disableInstanceDiscovery: true,
    }),
    baseUrl: partnerCenter.baseUrl,
    retry: { baseDelayInMs: 20, maxDelayInMs: 200 },
  });
  return { partnerCenter, commerce };
}

/** A Partner Center customer (its tenant appears in the Graph peer) that has accepted the MCA. */
export async function createCustomerWithAgreement(
  commerce: Commerce,
  input: { domain: string; email: string; run: string; agreedAt: Date },
): Promise<CreatedCustomer> {
  const created = await commerce.createCustomer(
    {
      domain: input.domain,
      companyName: 'Contoso',
      email: input.email,
      culture: 'en-US',
      language: 'en',
      address: {
        country: 'US',
        city: 'Redmond',
        state: 'WA',
        addressLine1: 'One Microsoft Way',
        postalCode: '98052',
      },
    },
    { operationKey: `create-${input.run}` },
  );
  await commerce.confirmAgreement(
    created.customer.id,
    {
      firstName: 'Tania',
      lastName: 'Carr',
      email: 'tania@example.com',
      dateAgreed: input.agreedAt,
      templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
    },
    { operationKey: `mca-${input.run}` },
  );
  return created;
}
