import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCredentialFor, createGraphDirectoryFactory } from '../../../shared/adapters/graph/index.js';
import { toAppError } from '../../../shared/errors.js';
import type { CloudDirectory, NewCloudUser } from '../../../shared/ports/cloud-directory.js';
import { admin, startFixture, type Fixture } from './support.js';

/**
 * Idempotent Entra creates (issue 12): the adapter stamps users it creates with the step's key in a
 * directory extension of the app; a taken UPN is adopted only when it carries that key (or our anchor).
 * Each "instance" is its own factory, as two Functions instances would be: no memory is shared.
 */
let f: Fixture;
const password = 'Str0ng!Passw0rd';

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.peer.stop();
});
beforeEach(async () => {
  await admin(f, 'POST', '/reset');
});

function instance(): CloudDirectory {
  return createGraphDirectoryFactory({
    credentialFor: createCredentialFor({
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      authorityHost: f.peer.authorityHost,
    }),
    graphBaseUrl: f.peer.graphBaseUrl,
    customHosts: ['127.0.0.1'],
    retry: { maxRetries: 2, delayInSeconds: 0.05 },
    homeTenant: { tenantId: f.partnerTenantId, appId: f.clientId },
  })(f.customerTenantId);
}

const user = (alias: string): NewCloudUser => ({
  userPrincipalName: `${alias}@contoso.example`,
  displayName: alias,
  mailNickname: alias,
  password,
  usageLocation: 'NL',
});

async function usersWithUpn(directory: CloudDirectory, upn: string): Promise<number> {
  const found = await directory.findUserByUpn(upn);
  return found === undefined ? 0 : 1;
}

describe('createUserOnce', () => {
  it('never adopts a UPN a stranger holds, however often the step is retried', async () => {
    const a = instance();
    await a.createUser(user('stranger'));
    for (let attempt = 0; attempt < 3; attempt++) {
      const error = toAppError(
        await a.createUserOnce(user('stranger'), 'op-1.entra.create').catch((e: unknown) => e),
      );
      expect(error.code).toBe('AlreadyExists');
      expect(error.retryable).toBe(false);
    }
    // Nor with another instance's fresh memory, nor with another key.
    const error = toAppError(
      await instance()
        .createUserOnce(user('stranger'), 'op-2.entra.create')
        .catch((e: unknown) => e),
    );
    expect(error.code).toBe('AlreadyExists');
  });

  it('adopts, exactly once, the user a create made when its answer was lost on the way back', async () => {
    const a = instance();
    const original = globalThis.fetch;
    let dropped = 0;
    // The POST reaches Graph and the user is made; the answer never arrives (a reset connection).
    globalThis.fetch = async (input, init) => {
      const response = await original(input, init);
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (dropped === 0 && (init?.method ?? 'GET') === 'POST' && url.endsWith('/users')) {
        dropped++;
        await response.arrayBuffer();
        throw new TypeError('fetch failed: connection reset');
      }
      return response;
    };
    let first: unknown;
    try {
      first = await a.createUserOnce(user('lost'), 'op-3.entra.create').catch((e: unknown) => e);
    } finally {
      globalThis.fetch = original;
    }
    expect(dropped).toBe(1);
    expect(toAppError(first).retryable).toBe(true);
    // The engine retries the step on another delivery — here on another instance.
    const retried = await instance().createUserOnce(user('lost'), 'op-3.entra.create');
    expect(retried.adopted).toBe(true);
    const again = await instance().createUserOnce(user('lost'), 'op-3.entra.create');
    expect(again.user.id).toBe(retried.user.id);
    expect(await usersWithUpn(a, 'lost@contoso.example')).toBe(1);
  });

  it('finds a user made on one instance from another despite replication lag (retryable until readable)', async () => {
    await admin(f, 'POST', '/faults', { replicationLagInMs: 1200 });
    const made = await instance().createUserOnce(user('lagged'), 'op-4.entra.create');
    expect(made.adopted).toBe(false);
    // Instance B never saw the create: its read by UPN 404s during the lag, which is retryable, not "gone".
    const b = instance();
    let adopted: { user: { id: string }; adopted: boolean } | undefined;
    const codes: string[] = [];
    const started = Date.now();
    while (adopted === undefined && Date.now() - started < 10_000) {
      try {
        adopted = await b.createUserOnce(user('lagged'), 'op-4.entra.create');
      } catch (error) {
        const e = toAppError(error);
        expect(e.retryable).toBe(true);
        codes.push(e.code);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(adopted?.adopted).toBe(true);
    expect(adopted?.user.id).toBe(made.user.id);
    // The lag was real: B was told to come back at least once before it could read the user.
    expect(codes.length).toBeGreaterThan(0);
    expect(new Set(codes)).toEqual(new Set(['Unavailable']));
  });

  it('adopts a hybrid user by its immutable id even without the stamp (made before stamps existed)', async () => {
    const a = instance();
    const immutableId = Buffer.from('0123456789abcdef0123456789abcdef', 'hex').toString('base64');
    const hybrid: NewCloudUser = {
      userPrincipalName: 'fed@contoso.example',
      displayName: 'Fed',
      mailNickname: 'fed',
      onPremisesImmutableId: immutableId,
    };
    await admin(f, 'POST', '/reset');
    const made = await a.createUser({ ...hybrid, password });
    const adopted = await instance().createUserOnce(hybrid, 'op-5.entra.create');
    expect(adopted).toMatchObject({ adopted: true, user: { id: made.id } });
  });
});
