import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { createEntraTokenVerifier } from './adapters/entra-auth/token-verifier.js';
import { createTableStore } from './adapters/tables/table-store.js';
import type { Settings } from './config.js';
import { systemClock, type Clock } from './ports/clock.js';
import type { HealthCheck } from './ports/health.js';
import type { Store } from './ports/store.js';
import { createCallerRegistry, type CallerRegistry } from './usecases/callers.js';

/**
 * The composition root: the only module that knows both adapters and use cases. Built once per
 * process (Functions worker, local host, agent-side tests) and handed to every function's handler.
 */
export interface AppDeps {
  settings: Settings;
  clock: Clock;
  store: Store;
  callers: CallerRegistry;
  healthChecks: HealthCheck[];
}

export function azureCredential(clientId: string | undefined): TokenCredential {
  return clientId === undefined ? new DefaultAzureCredential() : new ManagedIdentityCredential({ clientId });
}

export function createComposition(
  settings: Settings,
  overrides: Partial<Pick<AppDeps, 'clock' | 'store'>> = {},
): AppDeps {
  const clock = overrides.clock ?? systemClock;
  const store =
    overrides.store ??
    (settings.TableStorage !== undefined
      ? createTableStore({ connectionString: settings.TableStorage })
      : createTableStore({
          serviceUri: settings.TableStorage__tableServiceUri ?? '',
          credential: azureCredential(settings.TableStorage__clientId),
        }));
  const tokenVerifier =
    settings.Auth__entraTenantId === undefined || settings.Auth__entraAudience === undefined
      ? undefined
      : createEntraTokenVerifier({
          authorityHost: settings.Auth__entraAuthorityHost,
          tenantId: settings.Auth__entraTenantId,
          audience: settings.Auth__entraAudience,
        });
  const callers = createCallerRegistry({
    store,
    clock,
    ...(tokenVerifier === undefined ? {} : { tokenVerifier }),
  });
  const healthChecks: HealthCheck[] = [
    {
      name: 'storage',
      check: async () => {
        await store.ping();
        return { state: 'ok' };
      },
    },
  ];
  return { settings, clock, store, callers, healthChecks };
}
