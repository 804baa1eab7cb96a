import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { customerIdSchema } from '../domain/customer.js';
import { singleLineText } from '../domain/text.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
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

/** An API key as operators see it: everything but the secret (which is never stored). */
export interface ApiKeySummary {
  keyId: string;
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

const API_KEYS = 'apikey';
const ENTRA_APPS = 'entraapp';
const keyPattern = /^atr_([a-z0-9]{12})_([A-Za-z0-9_-]{32,})$/;

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
    async listApiKeys(providerId: string): Promise<ApiKeySummary[]> {
      await providers.require(providerId);
      const out: ApiKeySummary[] = [];
      // Keys live in one partition; operators list rarely and providers hold a handful of keys.
      for await (const row of callers.list(API_KEYS)) {
        if (row.value.providerId !== providerId) continue;
        out.push({
          keyId: row.rowKey,
          providerId: row.value.providerId,
          name: row.value.name,
          ...(row.value.customerIds === undefined ? {} : { customerIds: row.value.customerIds }),
          createdAt: row.value.createdAt,
          ...(row.value.revokedAt === undefined ? {} : { revokedAt: row.value.revokedAt }),
        });
      }
      return out;
    },

    /**
     * Revokes a key at once (the next request with it is 401). Revoking a revoked key keeps its first
     * `revokedAt`; an unknown key is NotFound.
     */
    async revokeApiKey(keyId: string): Promise<ApiKeySummary> {
      const row = await callers.get(API_KEYS, keyId);
      if (row === undefined) throw new AppError('NotFound', `API key ${keyId} does not exist`);
      const value =
        row.value.disabled && row.value.revokedAt !== undefined
          ? row.value
          : (
              await callers.replace(
                API_KEYS,
                keyId,
                { ...row.value, disabled: true, revokedAt: deps.clock.now().toISOString() },
                row.etag,
              )
            ).value;
      return {
        keyId,
        providerId: value.providerId,
        name: value.name,
        ...(value.customerIds === undefined ? {} : { customerIds: value.customerIds }),
        createdAt: value.createdAt,
        ...(value.revokedAt === undefined ? {} : { revokedAt: value.revokedAt }),
      };
    },

    async registerEntraApp(input: {
      appId: string;
      providerId: string;
      customerIds?: string[];
      name: string;
    }): Promise<void> {
      // Like createApiKey, a seeding path: the provider is registered when missing.
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
      const row = await callers.get(API_KEYS, keyId);
      const expected = Buffer.from(row?.value.secretSha256 ?? sha256(`absent:${keyId}`), 'hex');
      const given = Buffer.from(sha256(secret), 'hex');
      if (row === undefined || row.value.disabled || !timingSafeEqual(expected, given)) {
        throw new AppError('Unauthenticated', 'the API key is not valid');
      }
      return toCaller(keyId, 'apiKey', row.value);
    },

    async authenticateBearer(token: string): Promise<Caller> {
      if (deps.tokenVerifier === undefined)
        throw new AppError('Unauthenticated', 'bearer tokens are not accepted here');
      const { appId } = await deps.tokenVerifier.verify(token);
      const row = await callers.get(ENTRA_APPS, appId);
      if (row === undefined || row.value.disabled)
        throw new AppError('Forbidden', 'this application is not registered as a caller');
      return toCaller(appId, 'entraApp', row.value);
    },
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
