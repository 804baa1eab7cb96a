/**
 * Custom domains as documented: domain-post-domains.md, domain-list-verificationdnsrecords.md,
 * domain-verify.md, domain-delete.md (api-reference/v1.0/api), on the wire through the Graph SDK and
 * through the CloudDirectory adapter. There is no DNS here: verify succeeds unless a test marks the
 * domain's record missing through the admin API.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@microsoft/microsoft-graph-client';
import type { CloudDirectory } from '../../../shared/ports/cloud-directory.js';
import { adapterFor, expectGraphError, expectShape, sdkClient, send, type Json } from './raw.js';
import { admin, startFixture, type Fixture } from './support.js';

let f: Fixture;
let client: Client;
let directory: CloudDirectory;

beforeAll(async () => {
  f = await startFixture();
  client = sdkClient(f.peer, f.customerTenantId, f);
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
  directory = adapterFor(f.peer, f.customerTenantId, f);
});

// domain-post-domains.md and domain-verify.md, the response examples.
const documentedDomain = {
  authenticationType: 'authenticationType-value',
  availabilityStatus: 'availabilityStatus-value',
  id: 'contoso.com',
  isAdminManaged: true,
  isDefault: true,
  isInitial: true,
  isRoot: true,
};
// domain-list-verificationdnsrecords.md, the response example.
const documentedRecord = {
  isOptional: false,
  label: 'contoso.com',
  recordType: 'Mx',
  supportedService: 'Email',
  ttl: 3600,
  id: 'id-value',
};

async function createUserAt(domain: string): Promise<number> {
  const raw = await send(client, 'POST', '/users', {
    accountEnabled: true,
    displayName: 'Newcomer',
    mailNickname: 'newcomer',
    userPrincipalName: `newcomer@${domain}`,
    passwordProfile: { password: 'Str0ng!Passw0rd' },
  });
  return raw.status;
}

describe('custom domains on the wire', () => {
  it('adds an unverified domain, lists its DNS records, verifies it, and only then takes UPNs in it', async () => {
    const created = await send(client, 'POST', '/domains', { id: 'contoso.com' });
    expect(created.status).toBe(201);
    expectShape(created.body, documentedDomain);
    expect(created.body).toMatchObject({
      id: 'contoso.com',
      isVerified: false,
      isDefault: false,
      isInitial: false,
      isRoot: true,
      authenticationType: 'Managed',
    });
    // Unverified: not among organization.verifiedDomains, and no user can have a UPN in it.
    const org = (await send(client, 'GET', '/organization')).body['value'] as Json[];
    const verified = (org[0]?.['verifiedDomains'] as Json[]).map((d) => d['name']);
    expect(verified).not.toContain('contoso.com');
    expect(await createUserAt('contoso.com')).toBe(400);

    const records = await send(client, 'GET', '/domains/contoso.com/verificationDnsRecords');
    expect(records.status).toBe(200);
    const value = records.body['value'] as Json[];
    for (const record of value) expectShape(record, documentedRecord);
    const txt = value.find((r) => r['recordType'] === 'Txt');
    expect(txt?.['text']).toMatch(/^MS=ms\d{8}$/);
    expect(value.find((r) => r['recordType'] === 'Mx')).toMatchObject({ label: 'contoso.com' });
    // The value stays the same across reads (it is what the customer publishes).
    const again = (await send(client, 'GET', '/domains/contoso.com/verificationDnsRecords')).body[
      'value'
    ] as Json[];
    expect(again.find((r) => r['recordType'] === 'Txt')?.['text']).toBe(txt?.['text']);

    const verifiedDomain = await send(client, 'POST', '/domains/contoso.com/verify');
    expect(verifiedDomain.status).toBe(200);
    expectShape(verifiedDomain.body, documentedDomain);
    expect(verifiedDomain.body['isVerified']).toBe(true);
    expect(await createUserAt('contoso.com')).toBe(201);
    // domain-verify.md: "Only applies to an unverified domain."
    expectGraphError(
      await send(client, 'POST', '/domains/contoso.com/verify'),
      400,
      'Request_BadRequest',
      /already verified/,
    );
  });

  it('fails verification while the record is missing from DNS, and succeeds once it is published', async () => {
    await send(client, 'POST', '/domains', { id: 'late.example' });
    const hook = await admin(f, 'PUT', `/tenants/${f.customerTenantId}/domains/late.example/dns`, {
      verificationRecord: 'missing',
    });
    expect(hook.status).toBe(200);
    expectGraphError(
      await send(client, 'POST', '/domains/late.example/verify'),
      400,
      'Request_BadRequest',
      /^Domain verification failed with the following error: .*not found/,
    );
    expect((await send(client, 'GET', '/domains/late.example')).body['isVerified']).toBe(false);
    await admin(f, 'PUT', `/tenants/${f.customerTenantId}/domains/late.example/dns`, {
      verificationRecord: 'present',
    });
    expect((await send(client, 'POST', '/domains/late.example/verify')).status).toBe(200);
  });

  it('verifies a subdomain of a verified domain at once (not a root) and refuses a domain verified elsewhere', async () => {
    const sub = await send(client, 'POST', '/domains', { id: 'eu.contoso.example' });
    expect(sub.body).toMatchObject({ isVerified: true, isRoot: false });
    // partner.example is verified in the partner tenant.
    await send(client, 'POST', '/domains', { id: 'partner.example' });
    expectGraphError(
      await send(client, 'POST', '/domains/partner.example/verify'),
      400,
      'Request_BadRequest',
      /already verified in another tenant/,
    );
  });

  it('validates the create body: id only, a valid name, not twice', async () => {
    expectGraphError(
      await send(client, 'POST', '/domains', { id: 'x.example', isDefault: true }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await send(client, 'POST', '/domains', { id: 'no_underscores.example' }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(await send(client, 'POST', '/domains', {}), 400, 'Request_BadRequest');
    expectGraphError(
      await send(client, 'POST', '/domains', { id: 'contoso.example' }),
      400,
      'Request_BadRequest',
      'Another object with the same value for property id already exists.',
    );
  });

  it('deletes a domain nothing refers to (204), refusing one in use and the default domain', async () => {
    await send(client, 'POST', '/domains', { id: 'spare.example' });
    const deleted = await send(client, 'DELETE', '/domains/spare.example');
    expect(deleted.status).toBe(204);
    expectGraphError(await send(client, 'GET', '/domains/spare.example'), 404, 'Request_ResourceNotFound');
    // The default domain cannot go; a domain a user's UPN is in cannot either.
    expectGraphError(await send(client, 'DELETE', '/domains/contoso.example'), 400, 'Request_BadRequest');
    await send(client, 'POST', '/domains', { id: 'used.example' });
    await send(client, 'POST', '/domains/used.example/verify');
    expect(await createUserAt('used.example')).toBe(201);
    const refs = await send(client, 'GET', '/domains/used.example/domainNameReferences');
    expect((refs.body['value'] as Json[]).length).toBe(1);
    expectGraphError(
      await send(client, 'DELETE', '/domains/used.example'),
      400,
      'Request_BadRequest',
      /referenced by one or more objects/,
    );
  });
});

describe('CloudDirectory custom domains', () => {
  it('adds a domain idempotently, hands out its records and polls verification to success', async () => {
    const first = await directory.addDomain('Fabrikam.example');
    const second = await directory.addDomain('fabrikam.example');
    expect(first).toEqual({
      id: 'fabrikam.example',
      authenticationType: 'Managed',
      isDefault: false,
      isInitial: false,
      isVerified: false,
    });
    expect(second).toEqual(first);
    const records = await directory.listDomainVerificationRecords('fabrikam.example');
    expect(records.find((r) => r.recordType === 'Txt')?.text).toMatch(/^MS=ms\d{8}$/);
    expect(records.find((r) => r.recordType === 'Mx')).toMatchObject({
      label: 'fabrikam.example',
      ttl: 3600,
    });

    await admin(f, 'PUT', `/tenants/${f.customerTenantId}/domains/fabrikam.example/dns`, {
      verificationRecord: 'missing',
    });
    const pending = await directory.verifyDomain('fabrikam.example');
    expect(pending.verified).toBe(false);
    if (!pending.verified) expect(pending.reason).toMatch(/DNS record for domain verification was not found/);

    await admin(f, 'PUT', `/tenants/${f.customerTenantId}/domains/fabrikam.example/dns`, {
      verificationRecord: 'present',
    });
    const done = await directory.verifyDomain('fabrikam.example');
    expect(done).toMatchObject({ verified: true, domain: { id: 'fabrikam.example', isVerified: true } });
    // A repeated verify (e.g. a retried step) answers verified instead of Graph's "already verified".
    expect((await directory.verifyDomain('fabrikam.example')).verified).toBe(true);
    expect((await directory.listDomains()).map((d) => d.id)).toContain('fabrikam.example');
  });

  it('deletes a domain, and deleting it again succeeds', async () => {
    await directory.addDomain('gone.example');
    await directory.deleteDomain('gone.example');
    await directory.deleteDomain('gone.example');
    expect((await directory.listDomains()).map((d) => d.id)).not.toContain('gone.example');
  });
});
