import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { customerIdSchema } from '../domain/customer.js';
import { singleLineText } from '../domain/text.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import { recentReads } from '../ports/recent-reads.js';
import type { Store } from '../ports/store.js';
import type { TokenVerifier } from '../ports/token-verifier.js';
import { createProviders, parseInput, providerIdSchema } from './providers.js';

/**
 * Caller credentials. API keys look like `atr_<keyId>_<secret>`; only a SHA-256 of the secret is stored
 * (the secret is 24 random bytes, so a plain hash cannot be brute-forced), compared in constant time.
 * Entra apps are registered by app id. Both map to one registered provider (+ some of its customers).
 */
const callerRecord = z.object({
  providerId: z.string().min(1),
  customerIds: z.array(z.string().min(1)).optional(),
  name: z.string(),
  secretSha256: z.string().optional(),
  createdAt: z.string(),
  disabled: z.boolean().default(false),
  revokedAt: z.string().optional(),
});
export type CallerRecord = z.infer<typeof callerRecord>;

/** A credential as operators see it: never a secret (none is stored), nor the hash of one. */
export interface CredentialSummary {
  /** Key id or Entra application (client) id. */
  id: string;
  kind: Caller['kind'];
  providerId: string;
  name: string;
  /** Undefined: every customer of the provider. */
  customerIds?: string[];
  createdAt: string;
  revokedAt?: string;
}

const keyInput = z.object({
  providerId: providerIdSchema,
  customerIds: z.array(customerIdSchema).min(1).optional(),
  name: singleLineText(256),
});
export type ApiKeyInput = z.input<typeof keyInput>;

const entraAppInput = z.object({
  // Entra writes client ids in lowercase in `azp`/`appid`; an id pasted in capitals must still match.
  appId: z.guid().transform((id) => id.toLowerCase()),
  providerId: providerIdSchema,
  customerIds: z.array(customerIdSchema).min(1).optional(),
  name: singleLineText(256),
});
export type EntraAppInput = z.input<typeof entraAppInput>;

const API_KEYS = 'apikey';
const ENTRA_APPS = 'entraapp';
/** Engineers who sign in to the console with Entra (by user object id). */
const ENTRA_USERS = 'entrauser';
const keyPattern = /^atr_([a-z0-9]{12})_([A-Za-z0-9_-]{32,})$/;

/**
 * How long an instance may keep answering from a credential it read: a revocation (or a narrowed
 * scope) made on another instance, or by `npm run admin`, takes effect within this; on the instance
 * that made it, at once. Every request authenticates, so this is one Table read a second per caller.
 */
export const CALLER_RECENT_IN_MS = 1000;

export interface CallerDeps {
  store: Store;
  clock: Clock;
  tokenVerifier?: TokenVerifier;
}

function parseKeyInput(input: ApiKeyInput): z.output<typeof keyInput> {
  return parseInput(keyInput, input);
}

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

export function createCallerRegistry(deps: CallerDeps) {
  const callers = deps.store.collection('callers', callerRecord);
  const recentCallers = recentReads(callers, { ttlInMs: CALLER_RECENT_IN_MS });
  const providers = createProviders(deps);

  /** Writes a new key for a provider already known to exist. */
  async function writeKey(input: z.output<typeof keyInput>): Promise<{ keyId: string; apiKey: string }> {
    const keyId = randomBytes(9)
      .toString('base64url')
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '0')
      .slice(0, 12);
    const secret = randomBytes(24).toString('base64url');
    await callers.create(API_KEYS, keyId, {
      providerId: input.providerId,
      ...(input.customerIds === undefined ? {} : { customerIds: input.customerIds }),
      name: input.name,
      secretSha256: sha256(secret),
      createdAt: deps.clock.now().toISOString(),
      disabled: false,
    });
    return { keyId, apiKey: `atr_${keyId}_${secret}` };
  }

  /**
   * Maps an Entra application or user (by id) to a provider: safe to repeat for the same provider, a
   * Conflict for another (revoke it there first), so a principal never moves between providers by accident.
   */
  async function register(
    partition: typeof ENTRA_APPS | typeof ENTRA_USERS,
    what: 'application' | 'user',
    parsed: z.infer<typeof entraAppInput>,
  ): Promise<CredentialSummary> {
    await providers.require(parsed.providerId);
    const existing = await callers.get(partition, parsed.appId);
    if (existing !== undefined && existing.value.providerId !== parsed.providerId)
      throw new AppError(
        'Conflict',
        `${what} ${parsed.appId} is registered for another provider; revoke it there first`,
      );
    const value: CallerRecord = {
      providerId: parsed.providerId,
      ...(parsed.customerIds === undefined ? {} : { customerIds: parsed.customerIds }),
      name: parsed.name,
      createdAt: existing?.value.createdAt ?? deps.clock.now().toISOString(),
      disabled: false,
    };
    const row =
      existing === undefined
        ? await callers.create(partition, parsed.appId, value)
        : await callers.replace(partition, parsed.appId, value, existing.etag);
    recentCallers.forget(partition, parsed.appId);
    return summaryOf(row.rowKey, kindOf(partition), row.value);
  }

  async function list(partition: string, providerId: string): Promise<CredentialSummary[]> {
    await providers.require(providerId);
    const out: CredentialSummary[] = [];
    // One partition per kind; operators list rarely and a provider holds a handful of credentials.
    for await (const row of callers.list(partition)) {
      if (row.value.providerId === providerId) out.push(summaryOf(row.rowKey, kindOf(partition), row.value));
    }
    return out;
  }

  async function revoke(partition: string, id: string, what: string): Promise<CredentialSummary> {
    const row = await callers.get(partition, id);
    if (row === undefined) throw new AppError('NotFound', `${what} ${id} does not exist`);
    const value =
      row.value.disabled && row.value.revokedAt !== undefined
        ? row.value
        : (
            await callers.replace(
              partition,
              id,
              { ...row.value, disabled: true, revokedAt: deps.clock.now().toISOString() },
              row.etag,
            )
          ).value;
    recentCallers.forget(partition, id);
    return summaryOf(id, kindOf(partition), value);
  }

  return {
    providers,

    /**
     * The operators' path (`npm run admin -- keys create`): issues a key for a registered provider
     * and refuses an unknown one (NotFound). The returned secret is shown once and never stored.
     */
    async issueApiKey(input: ApiKeyInput): Promise<{ keyId: string; apiKey: string }> {
      const parsed = parseKeyInput(input);
      await providers.require(parsed.providerId);
      return writeKey(parsed);
    },

    /**
     * Seeding path for `npm start`, tests and the bench: registers the provider when it is missing
     * (idempotent), then issues the key as `issueApiKey` does.
     */
    async createApiKey(input: ApiKeyInput): Promise<{ keyId: string; apiKey: string }> {
      const parsed = parseKeyInput(input);
      await providers.add({ providerId: parsed.providerId });
      return writeKey(parsed);
    },

    /** A provider's keys, without secrets; revoked keys are listed with `revokedAt`. */
    async listApiKeys(providerId: string): Promise<CredentialSummary[]> {
      return list(API_KEYS, providerId);
    },

    /**
     * Revokes a key: its next request is 401 on this instance at once, on others within
     * CALLER_RECENT_IN_MS. Revoking a revoked key keeps its first `revokedAt`; an unknown key is NotFound.
     */
    async revokeApiKey(keyId: string): Promise<CredentialSummary> {
      return revoke(API_KEYS, keyId, 'API key');
    },

    /**
     * The operators' path (`npm run admin -- apps add`): maps an Entra application (client id) to a
     * registered provider. Repeating it for the same provider updates name and scope; an app already
     * mapped to another provider is a Conflict (revoke it there first), so no command moves a caller
     * between providers by accident.
     */
    async addEntraApp(input: EntraAppInput): Promise<CredentialSummary> {
      return register(ENTRA_APPS, 'application', parseInput(entraAppInput, input));
    },

    async listEntraApps(providerId: string): Promise<CredentialSummary[]> {
      return list(ENTRA_APPS, providerId);
    },

    /** The app's next token is refused (403: not registered as a caller). */
    async revokeEntraApp(appId: string): Promise<CredentialSummary> {
      return revoke(ENTRA_APPS, appId.toLowerCase(), 'Entra application');
    },

    /** Seeding path for tests: registers the provider when missing and maps the app to it. */
    async registerEntraApp(input: {
      appId: string;
      providerId: string;
      customerIds?: string[];
      name: string;
    }): Promise<void> {
      await providers.add({ providerId: input.providerId });
      await callers.upsert(ENTRA_APPS, input.appId, {
        providerId: input.providerId,
        ...(input.customerIds === undefined ? {} : { customerIds: input.customerIds }),
        name: input.name,
        createdAt: deps.clock.now().toISOString(),
        disabled: false,
      });
    },

    async authenticateApiKey(apiKey: string): Promise<Caller> {
      const match = keyPattern.exec(apiKey);
      if (match === null) throw new AppError('Unauthenticated', 'the API key is malformed');
      const [, keyId = '', secret = ''] = match;
      // The secret is checked against the stored hash on every request; only the row is remembered.
      const row = await recentCallers.get(API_KEYS, keyId);
      const expected = Buffer.from(row?.value.secretSha256 ?? sha256(`absent:${keyId}`), 'hex');
      const given = Buffer.from(sha256(secret), 'hex');
      if (row === undefined || row.value.disabled || !timingSafeEqual(expected, given)) {
        throw new AppError('Unauthenticated', 'the API key is not valid');
      }
      return toCaller(keyId, 'apiKey', row.value);
    },

    /**
     * Maps an Entra user (object id) to a provider for console sign-in; safe to repeat for the same
     * provider, a Conflict for another (revoke there first, as for apps).
     */
    async addEntraUser(input: {
      objectId: string;
      providerId: string;
      customerIds?: string[];
      name: string;
    }): Promise<CredentialSummary> {
      return register(ENTRA_USERS, 'user', parseInput(entraAppInput, { ...input, appId: input.objectId }));
    },

    async authenticateBearer(token: string): Promise<Caller> {
      if (deps.tokenVerifier === undefined)
        throw new AppError('Unauthenticated', 'bearer tokens are not accepted here');
      const { appId, userObjectId } = await deps.tokenVerifier.verify(token);
      if (userObjectId !== undefined) {
        const user = await recentCallers.get(ENTRA_USERS, userObjectId);
        if (user === undefined || user.value.disabled)
          throw new AppError('Forbidden', 'this user is not registered as an operator of any provider');
        return toCaller(userObjectId, 'entraUser', user.value);
      }
      const row = await recentCallers.get(ENTRA_APPS, appId);
      if (row === undefined || row.value.disabled)
        throw new AppError('Forbidden', 'this application is not registered as a caller');
      return toCaller(appId, 'entraApp', row.value);
    },
  };
}

const kindOf = (partition: string): Caller['kind'] =>
  partition === API_KEYS ? 'apiKey' : partition === ENTRA_USERS ? 'entraUser' : 'entraApp';

function summaryOf(id: string, kind: Caller['kind'], record: CallerRecord): CredentialSummary {
  return {
    id,
    kind,
    providerId: record.providerId,
    name: record.name,
    ...(record.customerIds === undefined ? {} : { customerIds: record.customerIds }),
    createdAt: record.createdAt,
    ...(record.revokedAt === undefined ? {} : { revokedAt: record.revokedAt }),
  };
}

function toCaller(id: string, kind: Caller['kind'], record: CallerRecord): Caller {
  return {
    id,
    kind,
    providerId: record.providerId,
    ...(record.customerIds === undefined ? {} : { customerIds: record.customerIds }),
  };
}

export type CallerRegistry = ReturnType<typeof createCallerRegistry>;
