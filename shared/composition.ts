import { createHmac, randomBytes } from 'node:crypto';
import {
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import type { ServiceBusClient } from '@azure/service-bus';
import { createAesSealer } from './adapters/crypto/aes-sealer.js';
import { createEntraTokenVerifier } from './adapters/entra-auth/token-verifier.js';
import {
  createCredentialFor,
  createGraphDirectoryFactory,
  documentedGraphBudget,
  GraphBudget,
} from './adapters/graph/index.js';
import {
  createCommandChannels,
  RelayHub,
  storeBackedReplyStore,
  toOnPremReply,
} from './adapters/relay/index.js';
import { createServiceBusBus, createServiceBusClient } from './adapters/service-bus/index.js';
import { createTableStore } from './adapters/tables/table-store.js';
import { createPax8Distributor } from './adapters/distributor/pax8.js';
import { createPartnerCenterCommerce } from './adapters/partner-center/commerce.js';
import type { Settings } from './config.js';
import { AppError } from './errors.js';
import { silentLogger, type Logger } from './logging.js';
import type { Bus } from './ports/bus.js';
import { systemClock, type Clock } from './ports/clock.js';
import type { CloudDirectoryFactory } from './ports/cloud-directory.js';
import type { HealthCheck } from './ports/health.js';
import type { OnPremCommandChannel, OnPremDirectory } from './ports/on-prem-directory.js';
import type { Store } from './ports/store.js';
import { privateKeyFromPem } from './relay-protocol/index.js';
import { createAutoscale, type Autoscale } from './usecases/autoscale.js';
import { createCallerRegistry, type CallerRegistry } from './usecases/callers.js';
import { createCustomerRemoval, type CustomerRemoval } from './usecases/customer-removal.js';
import { createCustomers, type Customers } from './usecases/customers.js';
import { createFederation, type Federation } from './usecases/federation.js';
import { createLicensing, type Licensing, type LicensingConnectors } from './usecases/licensing.js';
import { createOnboarding, type Onboarding } from './usecases/onboarding.js';
import { createGroups, type Groups } from './usecases/groups.js';
import { createGroupLicensing } from './usecases/group-licensing.js';
import { createProvisioning, type Provisioning } from './usecases/provisioning.js';
import { createSpla, type Spla } from './usecases/spla.js';
import {
  assertAgentsUnderstand,
  createSites,
  SITES_PARTITION,
  sitesCollection,
  trustedAgentKeys,
  type Sites,
} from './usecases/sites.js';
import { createSubscriptions, type Subscriptions } from './usecases/subscriptions.js';
import { startTelemetry } from './telemetry.js';
import { createSagaRunner, type SagaRunner } from './usecases/tenants/saga.js';
import { createTenants, type Tenants } from './usecases/tenants/tenants.js';
import { createDomains, type Domains } from './usecases/domains.js';
import { createGdap, type Gdap } from './usecases/gdap.js';
import { recentReads } from './ports/recent-reads.js';
import { OWNERSHIP_RECENT_IN_MS } from './usecases/tenancy.js';

/**
 * The composition root: the only module that knows both adapters and use cases. Built once per
 * process (Functions worker, local host, tests) and handed to every function's handler.
 */
export interface AppDeps {
  settings: Settings;
  clock: Clock;
  store: Store;
  callers: CallerRegistry;
  customers: Customers;
  /** DELETE /customers/{id}, with `force` deleting its users first through the engine. */
  removeCustomer: CustomerRemoval;
  provisioning: Provisioning;
  /** Group memberships as operations (AD through the agent, Entra through Graph). */
  groups: Groups;
  /** SPLA products, rules, evidence and monthly reports. */
  spla: Spla;
  federation: Federation;
  sites: Sites;
  /** Licence sources, the per-source seat ledger, reconciliation and purchase requests. */
  licensing: Licensing;
  /** Onboarding existing tenants, Tenant Connect, and the drift sync. */
  onboarding: Onboarding;
  /** Seat autoscaling by demand under New Commerce rules (issue 15). */
  autoscale: Autoscale;
  /** Buying and changing Partner Center subscriptions (issue 14). */
  subscriptions: Subscriptions;
  /** The commerce saga runner behind purchases and tenant creation (its sweeper resumes them). */
  commerceOperations: SagaRunner;
  /** Creating customers' tenants through Partner Center (issue 14). */
  tenants: Tenants;
  /** Custom domains for customers' tenants (issue 14). */
  domains: Domains;
  /** GDAP relationships for customers' tenants (issue 14). */
  gdap: Gdap;
  /** Present when Service Bus and a relay signing key are configured. */
  relay?: RelayHub;
  /** Dependencies for the authenticated /health/details (the caller's sites are added per caller). */
  healthChecks: HealthCheck[];
  /** Drops agent replies older than a day (the housekeeping timer). */
  pruneRelayReplies(): Promise<number>;
  close(): Promise<void>;
}

export function azureCredential(clientId: string | undefined): TokenCredential {
  return clientId === undefined ? new DefaultAzureCredential() : new ManagedIdentityCredential({ clientId });
}

const unconfiguredBus: Bus = {
  send: () =>
    Promise.reject(new AppError('Unavailable', 'Service Bus is not configured', { retryable: false })),
  sendBatch: () =>
    Promise.reject(new AppError('Unavailable', 'Service Bus is not configured', { retryable: false })),
};

function graphCustomHosts(baseUrl: string): string[] {
  const host = new URL(baseUrl).hostname;
  return host === 'graph.microsoft.com' ? [] : [host];
}

export interface CompositionOverrides {
  clock?: Clock;
  store?: Store;
  log?: Logger;
  /** Instrumentation (the bench counts queue sends per user): wraps the bus the app sends with. */
  wrapBus?: (bus: Bus) => Bus;
}

export function createComposition(settings: Settings, overrides: CompositionOverrides = {}): AppDeps {
  // Once per process: Application Insights in Azure, the async context manager locally.
  startTelemetry(settings).catch((error: unknown) => {
    console.error('telemetry did not start', error);
  });
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

  let serviceBus: ServiceBusClient | undefined;
  if (settings.ServiceBusConnection !== undefined) {
    serviceBus = createServiceBusClient({ connectionString: settings.ServiceBusConnection });
  } else if (settings.ServiceBusConnection__fullyQualifiedNamespace !== undefined) {
    serviceBus = createServiceBusClient({
      fullyQualifiedNamespace: settings.ServiceBusConnection__fullyQualifiedNamespace,
      credential: azureCredential(settings.ServiceBusConnection__clientId),
    });
  }
  const plainBus = serviceBus === undefined ? unconfiguredBus : createServiceBusBus(serviceBus);
  const bus = overrides.wrapBus?.(plainBus) ?? plainBus;

  const cloudDirectory: CloudDirectoryFactory | undefined =
    settings.Graph__clientId === undefined
      ? undefined
      : createGraphDirectoryFactory({
          credentialFor: createCredentialFor({
            clientId: settings.Graph__clientId,
            ...(settings.Graph__clientSecret === undefined
              ? {}
              : { clientSecret: settings.Graph__clientSecret }),
            authorityHost: settings.Graph__authorityHost,
          }),
          graphBaseUrl: settings.Graph__baseUrl,
          customHosts: graphCustomHosts(settings.Graph__baseUrl),
          clock,
          ...(settings.Graph__homeTenantId === undefined
            ? {}
            : { homeTenant: { tenantId: settings.Graph__homeTenantId, appId: settings.Graph__clientId } }),
          budget: new GraphBudget({
            ...documentedGraphBudget,
            writesPerWindow: documentedGraphBudget.writesPerWindow * settings.Graph__budgetScale,
            resourceUnitsPerWindow:
              documentedGraphBudget.resourceUnitsPerWindow * settings.Graph__budgetScale,
            appWritesPerWindow: documentedGraphBudget.appWritesPerWindow * settings.Graph__budgetScale,
            writeWindowInMs: settings.Graph__budgetWriteWindowInMs,
            resourceUnitWindowInMs: settings.Graph__budgetResourceUnitWindowInMs,
            share: settings.Graph__budgetShare,
            maxWaitInMs: settings.Graph__budgetMaxWaitInMs,
          }),
        });

  const customers = createCustomers({ store, clock });
  // The relay hub caches a site's trusted agent keys briefly; a key change here drops them at once.
  const keyCaches: { forget?: (siteId: string) => void } = {};
  // Every agent command reads its site (keys, agents' versions); a process asks once a second.
  const recentSites = recentReads(sitesCollection(store), { ttlInMs: OWNERSHIP_RECENT_IN_MS });
  const sites = createSites({
    store,
    clock,
    isSiteInUse: (site) => customers.usesSite(site.providerId, site.siteId),
    onKeysChanged: (siteId) => {
      keyCaches.forget?.(siteId);
      recentSites.forget(SITES_PARTITION, siteId);
    },
  });
  const replyStore = storeBackedReplyStore(store, clock);
  // Agent replies for parked saga steps resume their operation (bound below, once provisioning exists).
  const replies: { resume?: (reply: Parameters<typeof toOnPremReply>[0]) => Promise<boolean> } = {};
  const relay =
    serviceBus === undefined || settings.Relay__signingKeyPem === undefined
      ? undefined
      : new RelayHub({
          client: serviceBus,
          signer: {
            privateKey: privateKeyFromPem(settings.Relay__signingKeyPem, 'ed25519'),
            kid: settings.Relay__signingKeyId,
          },
          clock,
          defaultTimeoutInMs: settings.Relay__replyTimeoutInMs,
          onHeartbeat: (heartbeat) => sites.recordHeartbeat(heartbeat),
          onUnclaimedReply: (reply) => replies.resume?.(reply) ?? Promise.resolve(),
          // Only the site's registered agent key speaks for it, on every instance.
          // During a key rotation both the current and the next key (shared/usecases/sites.ts).
          agentKeyFor: async (siteId) => {
            const site = await sites.find(siteId);
            return site === undefined ? undefined : trustedAgentKeys(site);
          },
          // Only commands every available agent of the site understands (relay-protocol/versions.ts).
          assertSendable: async (siteId, type) => {
            const site = await sites.find(siteId);
            if (site !== undefined) assertAgentsUnderstand(site, type, clock.now());
          },
          // Replies that reach another instance's reply trigger are shared through Table storage.
          replyStore,
          ...(overrides.log === undefined ? {} : { log: overrides.log }),
        });
  if (relay !== undefined) keyCaches.forget = (siteId) => relay.forgetAgentKeys(siteId);
  const onPremDirectory =
    relay === undefined
      ? undefined
      : async (siteId: string): Promise<OnPremDirectory> => {
          const site = await sites.get(siteId);
          if (site.agentPublicKeyPem === undefined)
            throw new AppError('Conflict', `site ${siteId} has no agent key registered`);
          return relay.directoryFor({
            siteId,
            sitePublicKeyPem: site.publicKeyPem,
            agentPublicKeyPem: site.agentPublicKeyPem,
          });
        };

  const channels =
    serviceBus === undefined || settings.Relay__signingKeyPem === undefined
      ? undefined
      : createCommandChannels({
          client: serviceBus,
          signer: {
            privateKey: privateKeyFromPem(settings.Relay__signingKeyPem, 'ed25519'),
            kid: settings.Relay__signingKeyId,
          },
          clock,
        });
  const agentChannel =
    channels === undefined
      ? undefined
      : async (siteId: string): Promise<OnPremCommandChannel> => {
          const site = (await recentSites.get(SITES_PARTITION, siteId))?.value;
          if (site === undefined) throw new AppError('NotFound', `site ${siteId} not found`);
          const channel = channels.channelFor({ siteId, sitePublicKeyPem: site.publicKeyPem });
          return {
            siteId,
            // A step whose command an available agent of the site does not understand yet waits (retryable).
            submit: async (command, options) => {
              assertAgentsUnderstand(site, command.type, clock.now());
              await channel.submit(command, options);
            },
          };
        };

  // Without a configured key (local runs) a per-process key is fine: sealed passwords live minutes.
  const operationKey = settings.Secrets__operationKey ?? randomBytes(32).toString('base64');
  const sealer = createAesSealer(operationKey);
  const spla = createSpla({
    store,
    clock,
    ...(cloudDirectory === undefined ? {} : { cloudDirectory }),
    ...(onPremDirectory === undefined ? {} : { onPremDirectory }),
  });
  const provisioning = createProvisioning({
    store,
    clock,
    bus,
    sealer,
    ...(cloudDirectory === undefined ? {} : { cloudDirectory }),
    ...(agentChannel === undefined ? {} : { agentChannel }),
    // Request fingerprints (idempotency) are HMACs under a key derived from the operation key.
    fingerprintKey: createHmac('sha256', Buffer.from(operationKey, 'base64'))
      .update('atria-m365 request fingerprint v1')
      .digest(),
    engine: {
      leaseDurationInMs: settings.Engine__leaseDurationInMs,
      parkTimeoutInMs: settings.Engine__parkTimeoutInMs,
      maxRunsPerCustomer: settings.Engine__maxRunsPerCustomer,
      backoff: {
        baseDelayInMs: settings.Engine__retryBaseDelayInMs,
        maxDelayInMs: settings.Engine__retryMaxDelayInMs,
      },
    },
    deadlines: {
      createDeadlineInMinutes: settings.Engine__createDeadlineInMinutes,
      changeDeadlineInMinutes: settings.Engine__changeDeadlineInMinutes,
    },
    licenceHoldInMs: settings.Engine__licenceHoldInDays * 24 * 3600_000,
    // Every finished group/enable/disable/delete operation is SPLA evidence, and a finished create that
    // named groups starts its group operations.
    onOperationFinished: async (o) => {
      await spla.recordOperation(o);
      await groups.joinRequestedGroups(o);
    },
    guard: {
      maxSharePercent: settings.Guard__maxSharePercent,
      minUsers: settings.Guard__minUsers,
      windowInMinutes: settings.Guard__windowInMinutes,
    },
  });
  const groups = createGroups({ provisioning });

  const replyLog = overrides.log;
  replies.resume = async (reply) =>
    (await provisioning.acceptAgentReply(toOnPremReply(reply), replyLog ?? silentLogger)) === 'resumed';

  // Licensing connectors: each account belongs to one provider and serves only that provider's customers.
  const connectors: LicensingConnectors = {};
  if (
    settings.PartnerCenter__providerId !== undefined &&
    settings.PartnerCenter__tenantId !== undefined &&
    settings.PartnerCenter__clientId !== undefined &&
    settings.PartnerCenter__clientSecret !== undefined
  ) {
    connectors.partnerCenter = {
      providerId: settings.PartnerCenter__providerId,
      commerce: createPartnerCenterCommerce({
        credential: new ClientSecretCredential(
          settings.PartnerCenter__tenantId,
          settings.PartnerCenter__clientId,
          settings.PartnerCenter__clientSecret,
          {
            authorityHost: settings.Graph__authorityHost,
            // Instance discovery only knows Microsoft's clouds (a local identity peer is not one).
            disableInstanceDiscovery:
              new URL(settings.Graph__authorityHost).hostname !== 'login.microsoftonline.com',
          },
        ),
        baseUrl: settings.PartnerCenter__baseUrl,
        poll: {
          maxAttempts: settings.PartnerCenter__pollAttempts,
          baseDelayInMs: settings.PartnerCenter__pollBaseDelayInMs,
        },
      }),
    };
  }
  if (
    settings.Distributor__providerId !== undefined &&
    settings.Distributor__clientId !== undefined &&
    settings.Distributor__clientSecret !== undefined
  ) {
    connectors.distributor = {
      providerId: settings.Distributor__providerId,
      distributor: createPax8Distributor({
        clientId: settings.Distributor__clientId,
        clientSecret: settings.Distributor__clientSecret,
        baseUrl: settings.Distributor__baseUrl,
        ...(settings.Distributor__tokenUrl === undefined ? {} : { tokenUrl: settings.Distributor__tokenUrl }),
        clock,
      }),
    };
  }
  const licensing = createLicensing({
    store,
    clock,
    ...(cloudDirectory === undefined ? {} : { cloudDirectory }),
    connectors,
    distributorName: settings.Distributor__name,
  });

  // Commerce operations (issue 14): one saga runner; each use case registers its own steps.
  const commerceOperations = createSagaRunner({
    store,
    clock,
    stepsFor: (kind) =>
      kind === 'tenant.create'
        ? tenants.steps
        : kind === 'domain.add'
          ? domains.steps
          : kind === 'gdap.relationship'
            ? gdap.steps
            : subscriptions.stepsFor(kind),
    onFinished: (saga) => subscriptions.onFinished(saga),
    settings: {
      leaseDurationInMs: settings.Engine__leaseDurationInMs,
      backoff: {
        baseDelayInMs: settings.Engine__retryBaseDelayInMs,
        maxDelayInMs: settings.Engine__retryMaxDelayInMs,
      },
    },
  });
  const tenants = createTenants({
    store,
    clock,
    sealer,
    connectors,
    customers,
    licensing,
    runner: () => commerceOperations,
  });
  const domains = createDomains({
    customers,
    federation: createFederation({
      store,
      clock,
      ...(cloudDirectory === undefined ? {} : { cloudDirectory }),
      ...(onPremDirectory === undefined ? {} : { onPremDirectory }),
    }),
    cloudDirectory,
    runner: () => commerceOperations,
  });
  const gdap = createGdap({
    customers,
    cloudDirectory,
    partnerTenantId: settings.Graph__homeTenantId ?? settings.PartnerCenter__tenantId,
    runner: () => commerceOperations,
  });
  const subscriptions = createSubscriptions({
    store,
    clock,
    connectors,
    licensing,
    runner: () => commerceOperations,
    caps: {
      dailyPerProvider: settings.Commerce__dailySpendCapPerProvider,
      dailyPerCustomer: settings.Commerce__dailySpendCapPerCustomer,
      approvalThreshold: settings.Commerce__approvalThreshold,
    },
  });

  // Seat autoscaling (issue 15): decides from the ledger, applies through the connectors, records
  // every change in the ledger, and queues held operations again once seats were bought.
  // Without Graph there are no licensed groups to read.
  const groupLicensing =
    cloudDirectory === undefined ? undefined : createGroupLicensing({ store, clock, cloudDirectory });
  const autoscale = createAutoscale({
    store,
    clock,
    licensing,
    recordChange: (providerId, customerId, change) =>
      licensing.recordSubscriptionChange(providerId, customerId, change),
    connectors,
    resumeHeld: async (providerId) => {
      // A cause of its own: an earlier pass this minute (no seat then) must not swallow this resume.
      await provisioning.sweepHeldOperations(
        undefined,
        providerId,
        `seats-bought-${clock.now().toISOString()}`,
      );
      await groupLicensing?.reprocessWaiting();
    },
    ...(groupLicensing === undefined ? {} : { groupLicensingDemand: groupLicensing.demand }),
    settings: () => ({
      killSwitch: settings.Autoscale__killSwitch,
      seatsPerRun: settings.Autoscale__seatsPerRun,
      spendPerRun: settings.Autoscale__spendPerRun,
      concurrency: settings.Autoscale__concurrency,
    }),
  });

  const healthChecks: HealthCheck[] = [
    {
      name: 'storage',
      check: async () => {
        await store.ping();
        return { state: 'ok' };
      },
    },
    {
      name: 'serviceBus',
      check: async () => {
        if (serviceBus === undefined) return { state: 'notConfigured' };
        const receiver = serviceBus.createReceiver('directory-work');
        try {
          await receiver.peekMessages(1);
          return { state: 'ok' };
        } finally {
          await receiver.close();
        }
      },
    },
    {
      name: 'graph',
      check: () =>
        Promise.resolve(
          cloudDirectory === undefined
            ? { state: 'notConfigured' }
            : { state: 'ok', detail: 'credentials configured' },
        ),
    },
  ];

  return {
    settings,
    clock,
    store,
    callers,
    customers,
    removeCustomer: createCustomerRemoval({ customers, provisioning }),
    provisioning,
    groups,
    spla,
    federation: createFederation({
      store,
      clock,
      ...(cloudDirectory === undefined ? {} : { cloudDirectory }),
      ...(onPremDirectory === undefined ? {} : { onPremDirectory }),
    }),
    sites,
    licensing,
    autoscale,
    subscriptions,
    commerceOperations,
    tenants,
    domains,
    gdap,
    ...(relay === undefined ? {} : { relay }),
    onboarding: createOnboarding({
      store,
      clock,
      leaseInMs: settings.Onboarding__leaseInMs,
      ...(cloudDirectory === undefined ? {} : { cloudDirectory }),
      ...(onPremDirectory === undefined ? {} : { onPremDirectory }),
      // Onboarding reads run from the onboarding-work queue; without a bus, in this process.
      ...(serviceBus === undefined ? {} : { bus }),
      ...(settings.Graph__homeTenantId === undefined ? {} : { homeTenantId: settings.Graph__homeTenantId }),
      ...(settings.Graph__clientId === undefined ? {} : { appClientId: settings.Graph__clientId }),
      guard: {
        maxCount: settings.Onboarding__deleteThresholdCount,
        maxPercent: settings.Onboarding__deleteThresholdPercent,
        minForPercent: settings.Onboarding__deleteThresholdMinimum,
      },
      importLicenceSources: (caller, customerId, importId) =>
        licensing.runImport(caller, customerId, { importId }),
      onError: (error) => overrides.log?.warn('onboarding run stopped', { error }),
    }),
    healthChecks,
    async pruneRelayReplies() {
      let removed = 0;
      for (const siteId of await sites.listIds()) removed += await replyStore.prune(siteId);
      return removed;
    },
    async close() {
      await relay?.close();
      await channels?.close();
      await serviceBus?.close();
    },
  };
}
