import { z } from 'zod';
import { singleLineText } from '../domain/text.js';
import { AppError, isAppError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Store } from '../ports/store.js';

/**
 * The service providers this deployment serves. A provider is registered by an operator
 * (`npm run admin -- providers add`) before any credential can be issued for it, so a mistyped
 * provider id on `keys create` is refused instead of silently opening an empty tenancy.
 */
export const providerIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and - (≤ 63), e.g. demo-provider');

const providerRecord = z.object({
  name: z.string(),
  createdAt: z.string(),
});

export interface Provider {
  providerId: string;
  name: string;
  createdAt: string;
}

const PROVIDERS = 'provider';

/** Parses operator input; a failure is a Validation error naming each field (never a raw ZodError). */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, field?: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    path: [field, ...issue.path.map(String)].filter((p) => p !== undefined && p !== '').join('.'),
    message: issue.message,
  }));
  throw new AppError('Validation', errors.map((e) => `${e.path}: ${e.message}`).join('; '), {
    details: { errors },
  });
}

export interface ProviderDeps {
  store: Store;
  clock: Clock;
}

export function createProviders(deps: ProviderDeps) {
  const providers = deps.store.collection('providers', providerRecord);
  const toProvider = (providerId: string, value: z.infer<typeof providerRecord>): Provider => ({
    providerId,
    ...value,
  });

  return {
    /**
     * Registers a provider; adding one that exists returns it unchanged (`created: false`), so the
     * command is safe to retry.
     */
    async add(input: {
      providerId: string;
      name?: string;
    }): Promise<{ provider: Provider; created: boolean }> {
      const providerId = parseInput(providerIdSchema, input.providerId, 'providerId');
      const name = parseInput(singleLineText(256), input.name ?? providerId, 'name');
      try {
        const row = await providers.create(PROVIDERS, providerId, {
          name,
          createdAt: deps.clock.now().toISOString(),
        });
        return { provider: toProvider(providerId, row.value), created: true };
      } catch (error) {
        if (!isAppError(error, 'AlreadyExists')) throw error;
        const existing = await providers.get(PROVIDERS, providerId);
        if (existing === undefined) throw error;
        return { provider: toProvider(providerId, existing.value), created: false };
      }
    },

    async get(providerId: string): Promise<Provider | undefined> {
      const row = await providers.get(PROVIDERS, providerId);
      return row === undefined ? undefined : toProvider(providerId, row.value);
    },

    /** The provider, or NotFound naming the command that registers it. */
    async require(providerId: string): Promise<Provider> {
      const provider = await this.get(providerId);
      if (provider === undefined) {
        throw new AppError(
          'NotFound',
          `provider ${providerId} is not registered (add it first: providers add ${providerId})`,
        );
      }
      return provider;
    },

    async list(): Promise<Provider[]> {
      const out: Provider[] = [];
      for await (const row of providers.list(PROVIDERS)) out.push(toProvider(row.rowKey, row.value));
      return out;
    },
  };
}

export type Providers = ReturnType<typeof createProviders>;
