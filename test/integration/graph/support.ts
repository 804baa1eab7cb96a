import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ClientSecretCredential } from '@azure/identity';
import {
  startIdentityGraphPeer,
  type IdentityGraphPeer,
  type Seed,
} from '../../../dev/peers/identity-graph/index.js';

export const skuE3 = '6fd2c87f-b296-42f0-b197-1e91e994b900';
export const skuBusiness = 'f245ecc8-75af-4f8e-b61f-27d8114de5f3';
export const planExchange = 'efb87545-963c-4e0d-99df-69c6916d9eb0';
export const allRoles = [
  'User.ReadWrite.All',
  'Directory.ReadWrite.All',
  'Domain.ReadWrite.All',
  'Organization.Read.All',
  'Group.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
];

export interface Fixture {
  peer: IdentityGraphPeer;
  partnerTenantId: string;
  customerTenantId: string;
  clientId: string;
  clientSecret: string;
  /** A certificate + private key PEM registered on the app. */
  certificatePem: string;
}

/** Generates an RSA certificate and key with openssl (the same tool dev/prepare.mjs uses). */
export function makeCertificate(): { certPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'graph-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=atria-test-app',
      ],
      { stdio: 'ignore' },
    );
    return {
      certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      keyPem: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A partner tenant with the app, and a customer tenant (managed + federated domains, two SKUs) that consented. */
export async function startFixture(): Promise<Fixture> {
  const partnerTenantId = randomUUID();
  const customerTenantId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = `s3cret-${randomUUID()}`;
  const { certPem, keyPem } = makeCertificate();
  const seed: Seed = {
    tenants: [
      { id: partnerTenantId, displayName: 'Partner', domains: [{ id: 'partner.example', isDefault: true }] },
      {
        id: customerTenantId,
        displayName: 'Contoso',
        domains: [
          { id: 'contoso.example', isDefault: true, authenticationType: 'Managed' },
          { id: 'fed.contoso.example', authenticationType: 'Federated' },
        ],
        skus: [
          {
            skuId: skuE3,
            skuPartNumber: 'ENTERPRISEPACK',
            enabled: 3,
            servicePlans: [{ servicePlanId: planExchange, servicePlanName: 'EXCHANGE_S_ENTERPRISE' }],
          },
          { skuId: skuBusiness, skuPartNumber: 'O365_BUSINESS_PREMIUM', enabled: 1 },
        ],
        users: [{ userPrincipalName: 'ada@contoso.example', displayName: 'Ada', usageLocation: 'NL' }],
      },
    ],
    apps: [
      {
        clientId,
        clientSecret,
        certificates: [certPem],
        homeTenantId: partnerTenantId,
        tenants: [customerTenantId],
        roles: allRoles,
      },
    ],
  };
  const peer = await startIdentityGraphPeer({ seed });
  return {
    peer,
    partnerTenantId,
    customerTenantId,
    clientId,
    clientSecret,
    certificatePem: `${keyPem}\n${certPem}`,
  };
}

export function secretCredential(
  f: Fixture,
  tenantId = f.customerTenantId,
  secret = f.clientSecret,
  clientId = f.clientId,
): ClientSecretCredential {
  return new ClientSecretCredential(tenantId, clientId, secret, {
    authorityHost: f.peer.authorityHost,
    disableInstanceDiscovery: true,
  });
}

export async function admin(
  f: Fixture,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${f.peer.adminUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text.length > 0 ? (JSON.parse(text) as unknown) : undefined };
}

export function decodeJwt(token: string): Record<string, unknown> {
  const payload = token.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}
