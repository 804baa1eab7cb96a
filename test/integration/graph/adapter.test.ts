import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isAppError } from '../../../shared/errors.js';
import type { CloudDirectory } from '../../../shared/ports/cloud-directory.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../../shared/adapters/graph/index.js';
import { admin, planExchange, skuBusiness, skuE3, startFixture, type Fixture } from './support.js';

let f: Fixture;
let directory: CloudDirectory;

const password = 'Str0ng!Passw0rd';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
  // A fresh factory per test: no token or "recently created" memory leaks between tests.
  const factory = createGraphDirectoryFactory({
    credentialFor: createCredentialFor({
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      authorityHost: f.peer.authorityHost,
    }),
    graphBaseUrl: f.peer.graphBaseUrl,
    retry: { maxRetries: 3, delayInSeconds: 0.1 },
  });
  directory = factory(f.customerTenantId);
});

describe('GraphDirectory users', () => {
  it('creates a cloud user, reads it by id and UPN, finds it, updates, disables, enables and deletes it', async () => {
    const created = await directory.createUser({
      userPrincipalName: 'grace@contoso.example',
      displayName: 'Grace Hopper',
      mailNickname: 'grace',
      password,
      usageLocation: 'US',
    });
    expect(created).toMatchObject({
      userPrincipalName: 'grace@contoso.example',
      accountEnabled: true,
      usageLocation: 'US',
    });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);

    expect(await directory.getUser(created.id)).toMatchObject({
      id: created.id,
      mailNickname: 'grace',
      accountEnabled: true,
    });
    expect((await directory.getUser('grace@contoso.example')).id).toBe(created.id);
    expect((await directory.findUserByUpn('GRACE@contoso.example'))?.id).toBe(created.id);
    expect(await directory.findUserByUpn('nobody@contoso.example')).toBeUndefined();

    await directory.updateUser(created.id, { jobTitle: 'Rear Admiral', department: 'Navy' });
    expect(await directory.getUser(created.id)).toMatchObject({
      jobTitle: 'Rear Admiral',
      department: 'Navy',
      displayName: 'Grace Hopper',
    });

    await directory.disableUser(created.id);
    expect((await directory.getUser(created.id)).accountEnabled).toBe(false);
    await directory.enableUser(created.id);
    expect((await directory.getUser(created.id)).accountEnabled).toBe(true);

    await directory.setPassword(created.id, 'An0ther!Passw0rd', { forceChangePasswordNextSignIn: true });
    const weak = await rejection(directory.setPassword(created.id, 'short'));
    expect(isAppError(weak, 'PasswordPolicy')).toBe(true);

    await directory.deleteUser(created.id);
    expect(isAppError(await rejection(directory.getUser(created.id)), 'NotFound')).toBe(true);
    await directory.deleteUser(created.id); // idempotent
  });

  it("finds and reads users whose UPN holds the allowed special characters ' # ^ ~ ! _", async () => {
    for (const alias of ["o'neil", 'a#b', 'x^y~z', 'p.q-r_s!t']) {
      const upn = `${alias}@contoso.example`;
      const created = await directory.createUser({
        userPrincipalName: upn,
        displayName: alias,
        mailNickname: alias.replace(/[^a-z]/g, ''),
        password,
      });
      expect((await directory.getUser(upn)).id).toBe(created.id);
      expect((await directory.findUserByUpn(upn))?.id).toBe(created.id);
    }
  });

  it('maps a duplicate UPN to AlreadyExists and a foreign domain to Validation', async () => {
    const duplicate = await rejection(
      directory.createUser({
        userPrincipalName: 'ada@contoso.example',
        displayName: 'Ada 2',
        mailNickname: 'ada2',
        password,
      }),
    );
    expect(isAppError(duplicate, 'AlreadyExists')).toBe(true);
    const foreign = await rejection(
      directory.createUser({
        userPrincipalName: 'x@not-ours.example',
        displayName: 'X',
        mailNickname: 'x',
        password,
      }),
    );
    expect(isAppError(foreign, 'Validation')).toBe(true);
    expect((foreign as Error).message).toContain('verified domain');
  });

  it('creates a hybrid user in the federated domain with an immutable id and no password, unique per tenant', async () => {
    const immutableId = Buffer.from('0123456789abcdef').toString('base64');
    const user = await directory.createUser({
      userPrincipalName: 'hybrid@fed.contoso.example',
      displayName: 'Hybrid',
      mailNickname: 'hybrid',
      onPremisesImmutableId: immutableId,
    });
    expect(user.onPremisesImmutableId).toBe(immutableId);
    expect((await directory.findUserByImmutableId(immutableId))?.id).toBe(user.id);
    const missing = await rejection(
      directory.createUser({
        userPrincipalName: 'nokey@fed.contoso.example',
        displayName: 'No key',
        mailNickname: 'nokey',
      }),
    );
    expect(isAppError(missing, 'Validation')).toBe(true);
    const reused = await rejection(
      directory.createUser({
        userPrincipalName: 'again@fed.contoso.example',
        displayName: 'Again',
        mailNickname: 'again',
        onPremisesImmutableId: immutableId,
      }),
    );
    expect(isAppError(reused, 'AlreadyExists')).toBe(true);
  });

  it('creates many users through $batch with one result per input, in order', async () => {
    const inputs = Array.from({ length: 23 }, (_, i) => ({
      userPrincipalName: `bulk${i}@contoso.example`,
      displayName: `Bulk ${i}`,
      mailNickname: `bulk${i}`,
      password,
    }));
    inputs[5] = { ...inputs[5]!, userPrincipalName: 'ada@contoso.example' };
    const results = await directory.createUsers(inputs);
    expect(results).toHaveLength(23);
    expect(results.filter((r) => r.ok)).toHaveLength(22);
    const failed = results[5];
    expect(failed?.ok === false && failed.error.code).toBe('AlreadyExists');
    const last = results[22];
    expect(last?.ok === true && last.value.userPrincipalName).toBe('bulk22@contoso.example');
  });
});

describe('GraphDirectory credentials', () => {
  it('works with a certificate credential built by createCredentialFor', async () => {
    const viaCertificate = createGraphDirectoryFactory({
      credentialFor: createCredentialFor({
        clientId: f.clientId,
        certificatePem: f.certificatePem,
        authorityHost: f.peer.authorityHost,
      }),
      graphBaseUrl: f.peer.graphBaseUrl,
    })(f.customerTenantId);
    expect((await viaCertificate.getDomain('contoso.example')).id).toBe('contoso.example');
  });

  it('maps a refused credential (wrong secret) to InvalidCredentials, not retryable', async () => {
    const wrong = createGraphDirectoryFactory({
      credentialFor: createCredentialFor({
        clientId: f.clientId,
        clientSecret: 'wrong',
        authorityHost: f.peer.authorityHost,
      }),
      graphBaseUrl: f.peer.graphBaseUrl,
    })(f.customerTenantId);
    const error = await rejection(wrong.listSubscribedSkus());
    expect(isAppError(error, 'InvalidCredentials')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(false);
    expect((error as Error).message).toContain('AADSTS7000215');
  });
});

describe('GraphDirectory licences', () => {
  it('assigns and removes licences, keeping consumedUnits equal to assigned seats', async () => {
    const ada = await directory.getUser('ada@contoso.example');
    await directory.assignLicences(ada.id, {
      add: [{ skuId: skuE3, disabledPlanIds: [planExchange] }],
      remove: [],
    });
    expect((await directory.getUser(ada.id)).assignedLicences).toEqual([
      { skuId: skuE3, disabledPlanIds: [planExchange] },
    ]);
    let skus = await directory.listSubscribedSkus();
    expect(skus.find((s) => s.skuId === skuE3)).toMatchObject({
      skuPartNumber: 'ENTERPRISEPACK',
      enabledUnits: 3,
      consumedUnits: 1,
    });
    // Assigning again is idempotent and takes no second seat.
    await directory.assignLicences(ada.id, { add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] });
    skus = await directory.listSubscribedSkus();
    expect(skus.find((s) => s.skuId === skuE3)?.consumedUnits).toBe(1);
    await directory.assignLicences(ada.id, { add: [], remove: [skuE3] });
    expect((await directory.getUser(ada.id)).assignedLicences).toEqual([]);
    // Removing again is idempotent too.
    await directory.assignLicences(ada.id, { add: [], remove: [skuE3] });
    expect((await directory.listSubscribedSkus()).find((s) => s.skuId === skuE3)?.consumedUnits).toBe(0);
  });

  it('maps a missing usage location to UsageLocationRequired and an exhausted SKU to LicenceUnavailable', async () => {
    const noLocation = await directory.createUser({
      userPrincipalName: 'nl@contoso.example',
      displayName: 'No loc',
      mailNickname: 'nl',
      password,
    });
    expect(
      isAppError(
        await rejection(
          directory.assignLicences(noLocation.id, {
            add: [{ skuId: skuBusiness, disabledPlanIds: [] }],
            remove: [],
          }),
        ),
        'UsageLocationRequired',
      ),
    ).toBe(true);
    const ada = await directory.getUser('ada@contoso.example');
    await directory.assignLicences(ada.id, {
      add: [{ skuId: skuBusiness, disabledPlanIds: [] }],
      remove: [],
    });
    await directory.updateUser(noLocation.id, { usageLocation: 'NL' });
    const exhausted = await rejection(
      directory.assignLicences(noLocation.id, {
        add: [{ skuId: skuBusiness, disabledPlanIds: [] }],
        remove: [],
      }),
    );
    expect(isAppError(exhausted, 'LicenceUnavailable')).toBe(true);
    expect((exhausted as Error).message).toContain(
      `Subscription with SKU ${skuBusiness} does not have any available licenses.`,
    );
  });

  it('assigns licences in bulk, reporting the seat shortage per user', async () => {
    const created = await directory.createUsers(
      ['a', 'b', 'c', 'd'].map((n) => ({
        userPrincipalName: `${n}@contoso.example`,
        displayName: n,
        mailNickname: n,
        password,
        usageLocation: 'NL',
      })),
    );
    const ids = created.map((r) => (r.ok ? r.value.id : ''));
    const results = await directory.assignLicencesInBulk(
      ids.map((userId) => ({ userId, add: [{ skuId: skuE3, disabledPlanIds: [] }], remove: [] })),
    );
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false]);
    const last = results[3];
    expect(last?.ok === false && last.error.code).toBe('LicenceUnavailable');
    expect((await directory.listSubscribedSkus()).find((s) => s.skuId === skuE3)?.consumedUnits).toBe(3);
  });
});

describe('GraphDirectory groups', () => {
  it('creates a security group, adds and removes members idempotently', async () => {
    const group = await directory.createGroup({ displayName: 'Finance', mailNickname: 'finance' });
    expect(group).toMatchObject({
      displayName: 'Finance',
      securityEnabled: true,
      mailEnabled: false,
      groupTypes: [],
    });
    const ada = await directory.getUser('ada@contoso.example');
    await directory.addGroupMember(group.id, ada.id);
    await directory.addGroupMember(group.id, ada.id);
    expect(await directory.listGroupMembers(group.id)).toEqual([ada.id]);
    await directory.removeGroupMember(group.id, ada.id);
    await directory.removeGroupMember(group.id, ada.id);
    expect(await directory.listGroupMembers(group.id)).toEqual([]);
  });
});

describe('GraphDirectory delta', () => {
  it('pages a first round, then reports only changes and soft deletes', async () => {
    let page = await directory.listUserChanges();
    const seen = [...page.changes];
    while (page.nextCursor !== undefined) {
      page = await directory.listUserChanges(page.nextCursor);
      seen.push(...page.changes);
    }
    expect(seen.map((c) => (c.kind === 'upserted' ? c.user.userPrincipalName : c.id))).toEqual([
      'ada@contoso.example',
    ]);
    const deltaLink = page.deltaLink;
    expect(deltaLink).toBeDefined();

    const fresh = await directory.createUser({
      userPrincipalName: 'new@contoso.example',
      displayName: 'New',
      mailNickname: 'new',
      password,
    });
    const ada = await directory.getUser('ada@contoso.example');
    await directory.deleteUser(ada.id);
    const changes = await directory.listUserChanges(deltaLink);
    expect(changes.deltaLink).toBeDefined();
    expect(changes.changes).toEqual([
      {
        kind: 'upserted',
        user: expect.objectContaining({
          id: fresh.id,
          userPrincipalName: 'new@contoso.example',
          accountEnabled: true,
        }) as unknown,
      },
      { kind: 'removed', id: ada.id, permanently: false },
    ]);
    const quiet = await directory.listUserChanges(changes.deltaLink);
    expect(quiet.changes).toEqual([]);
    // Purged for good (e.g. after 30 days): reported as a permanent removal.
    const token = await createCredentialFor({
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      authorityHost: f.peer.authorityHost,
    })(f.customerTenantId).getToken('https://graph.microsoft.com/.default');
    const purged = await fetch(`${f.peer.graphBaseUrl}/directory/deletedItems/${ada.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token?.token ?? ''}` },
    });
    expect(purged.status).toBe(204);
    const last = await directory.listUserChanges(quiet.deltaLink);
    expect(last.changes).toEqual([{ kind: 'removed', id: ada.id, permanently: true }]);
  });

  it('maps an expired delta link (older than 7 days on the peer clock) to SyncStateExpired', async () => {
    let page = await directory.listUserChanges();
    while (page.nextCursor !== undefined) page = await directory.listUserChanges(page.nextCursor);
    await admin(f, 'POST', '/clock', { advanceByInMs: 7 * 24 * 3600_000 + 60_000 });
    // The peer clock now also outdates the cached access token, so use a fresh factory.
    const later = createGraphDirectoryFactory({
      credentialFor: createCredentialFor({
        clientId: f.clientId,
        clientSecret: f.clientSecret,
        authorityHost: f.peer.authorityHost,
      }),
      graphBaseUrl: f.peer.graphBaseUrl,
    })(f.customerTenantId);
    const error = await rejection(later.listUserChanges(page.deltaLink));
    expect(isAppError(error, 'SyncStateExpired')).toBe(true);
  });
});

describe('GraphDirectory domains', () => {
  it('reads a domain, federates it, reads the federation back and updates it idempotently', async () => {
    expect(await directory.getDomain('contoso.example')).toEqual({
      id: 'contoso.example',
      authenticationType: 'Managed',
      isDefault: true,
      isInitial: false,
      isVerified: true,
    });
    expect(await directory.getDomainFederation('contoso.example')).toBeUndefined();
    const settings = {
      displayName: 'Contoso ADFS',
      issuerUri: 'http://sts.contoso.example/adfs/services/trust',
      passiveSignInUri: 'https://sts.contoso.example/adfs/ls',
      signingCertificate: 'MIIC8DCCAdigAwIBAgIQ',
      preferredAuthenticationProtocol: 'wsFed' as const,
    };
    const created = await directory.putDomainFederation('contoso.example', settings);
    expect(created).toMatchObject({ ...settings, federatedIdpMfaBehavior: 'acceptIfMfaDoneByFederatedIdp' });
    expect((await directory.getDomain('contoso.example')).authenticationType).toBe('Federated');
    const updated = await directory.putDomainFederation('contoso.example', {
      ...settings,
      signOutUri: 'https://sts.contoso.example/adfs/ls/?wa=wsignout1.0',
    });
    expect(updated.id).toBe(created.id);
    expect((await directory.getDomainFederation('contoso.example'))?.signOutUri).toBe(
      'https://sts.contoso.example/adfs/ls/?wa=wsignout1.0',
    );
    expect(isAppError(await rejection(directory.getDomainFederation('unknown.example')), 'NotFound')).toBe(
      true,
    );
  });
});
