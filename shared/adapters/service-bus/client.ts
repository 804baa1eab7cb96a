import type { TokenCredential } from '@azure/identity';
import { ServiceBusClient, type ServiceBusClientOptions } from '@azure/service-bus';

/**
 * How the app reaches Service Bus: a connection string locally (the peer, `UseDevelopmentEmulator=true`),
 * a namespace plus a managed-identity `TokenCredential` in Azure (no keys in app settings).
 */
export type ServiceBusSettings =
  | { connectionString: string; options?: ServiceBusClientOptions }
  | { fullyQualifiedNamespace: string; credential: TokenCredential; options?: ServiceBusClientOptions };

/** One client per process (composition root); it multiplexes every sender and receiver on one connection. */
export function createServiceBusClient(settings: ServiceBusSettings): ServiceBusClient {
  if ('connectionString' in settings)
    return new ServiceBusClient(settings.connectionString, settings.options);
  return new ServiceBusClient(settings.fullyQualifiedNamespace, settings.credential, settings.options);
}
