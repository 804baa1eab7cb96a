import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Caller } from '../domain/caller.js';
import { AppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Store } from '../ports/store.js';
import type { TokenVerifier } from '../ports/token-verifier.js';

/**
 * Caller credentials. API keys look like `atr_<keyId>_<secret>`; only a SHA-256 of the secret is stored,
 * compared in constant time. Entra apps are registered by app id. Both map to one provider (+ customers).
 */
const callerRecord = z.object({
  providerId: z.string().min(1),
  customerIds: z.array(z.string().min(1)).optional(),
  name: z.string(),
  secretSha256: z.string().optional(),
  createdAt: z.string(),
  disabled: z.boolean().default(false),
});
export type CallerRecord = z.infer<typeof callerRecord>;

const API_KEYS = 'apikey';
const ENTRA_APPS = 'entraapp';
const keyPattern = /^atr_([a-z0-9]{12})_([A-Za-z0-9_-]{32,})$/;

export interface CallerDeps {
  store: Store;
  clock: Clock;
  tokenVerifier?: TokenVerifier;
}

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

export function createCallerRegistry(deps: CallerDeps) {
  const callers = deps.store.collection('callers', callerRecord);

  return {
    /** Issues a new API key; the returned secret is shown once and never stored. */
    async createApiKey(input: {
      providerId: string;
      customerIds?: string[];
      name: string;
    }): Promise<{ keyId: string; apiKey: string }> {
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
    },

    async registerEntraApp(input: {
      appId: string;
      providerId: string;
      customerIds?: string[];
      name: string;
    }): Promise<void> {
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
