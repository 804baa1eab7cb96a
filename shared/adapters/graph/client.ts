import { ClientCertificateCredential, ClientSecretCredential, type TokenCredential } from '@azure/identity';
import {
  AuthenticationHandler,
  Client,
  HTTPMessageHandler,
  type Context,
  type Middleware,
  RedirectHandler,
  RedirectHandlerOptions,
  RetryHandler,
  RetryHandlerOptions,
  TelemetryHandler,
} from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import { parseRetryAfter } from './errors.js';

import { record } from '../../metrics.js';

export const graphScope = 'https://graph.microsoft.com/.default';

export interface GraphAppCredentialSettings {
  clientId: string;
  /** One of clientSecret or certificatePem (private key + certificate, PEM). */
  clientSecret?: string;
  certificatePem?: string;
  /** e.g. https://login.microsoftonline.com (default) or a local identity peer. */
  authorityHost?: string;
  /**
   * Skip MSAL's instance discovery (needed for any authority MSAL does not know). Defaults to true
   * when authorityHost is set.
   */
  disableInstanceDiscovery?: boolean;
}

/**
 * One partner app reaching many customer tenants: a cached app-only credential per tenant, built from
 * settings (secret or certificate). Credentials are created once per process and reused.
 */
export function createCredentialFor(
  settings: GraphAppCredentialSettings,
): (tenantId: string) => TokenCredential {
  const cache = new Map<string, TokenCredential>();
  const options = {
    ...(settings.authorityHost === undefined ? {} : { authorityHost: settings.authorityHost }),
    disableInstanceDiscovery: settings.disableInstanceDiscovery ?? settings.authorityHost !== undefined,
  };
  return (tenantId) => {
    let credential = cache.get(tenantId);
    if (credential === undefined) {
      if (settings.certificatePem !== undefined) {
        credential = new ClientCertificateCredential(
          tenantId,
          settings.clientId,
          { certificate: settings.certificatePem },
          options,
        );
      } else if (settings.clientSecret !== undefined) {
        credential = new ClientSecretCredential(tenantId, settings.clientId, settings.clientSecret, options);
      } else {
        throw new Error('Graph credential settings need clientSecret or certificatePem');
      }
      cache.set(tenantId, credential);
    }
    return credential;
  };
}

export interface GraphRetrySettings {
  /** Retries for 429/503/504 inside the SDK's RetryHandler (max 10). Default 3. */
  maxRetries?: number;
  /** Base delay in seconds when the answer has no Retry-After (the handler backs off exponentially). Default 3. */
  delayInSeconds?: number;
  /**
   * A Retry-After longer than this is not waited out inside the request (the SDK would sleep up to
   * 180 s per retry, holding a worker): the 429/503 surfaces as a retryable error carrying its
   * Retry-After, and the operation engine re-schedules the step. Default 30.
   */
  maxInProcessRetryAfterInSeconds?: number;
}

export interface GraphClientSettings {
  /** https://graph.microsoft.com/v1.0 by default; a local peer's https://127.0.0.1:PORT/v1.0 in tests. */
  graphBaseUrl?: string;
  /** Hosts besides graph.microsoft.com that may receive the token; defaults to the graphBaseUrl host. */
  customHosts?: string[];
  retry?: GraphRetrySettings;
  /** Paces requests inside Graph's documented limits (budget.ts); after the RetryHandler, so retries pay too. */
  budget?: Middleware & { setNext(middleware: Middleware): void };
}

/**
 * A Graph client with the SDK's default middleware chain (auth → retry → [budget] → redirect → telemetry →
 * fetch), built by hand so the RetryHandler's limits are ours (it honours Retry-After on 429/503/504) and
 * the throttle budget can pace every attempt.
 */
export function createGraphClient(credential: TokenCredential, settings: GraphClientSettings = {}): Client {
  const base = new URL(settings.graphBaseUrl ?? 'https://graph.microsoft.com/v1.0');
  const segments = base.pathname.split('/').filter((s) => s.length > 0);
  const version = segments.pop() ?? 'v1.0';
  const baseUrl = `${base.origin}${segments.length > 0 ? `/${segments.join('/')}` : ''}`;
  const customHosts =
    settings.customHosts ?? (base.hostname === 'graph.microsoft.com' ? [] : [base.hostname]);
  const auth = new AuthenticationHandler(
    new TokenCredentialAuthenticationProvider(credential, { scopes: [graphScope] }),
  );
  const maxWaitInSeconds = settings.retry?.maxInProcessRetryAfterInSeconds ?? 30;
  const retry = new RetryHandler(
    new RetryHandlerOptions(
      settings.retry?.delayInSeconds ?? 3,
      settings.retry?.maxRetries ?? 3,
      (_delay, _attempt, _request, _options, response) =>
        (parseRetryAfter(response.headers.get('retry-after')) ?? 0) <= maxWaitInSeconds,
    ),
  );
  const redirect = new RedirectHandler(new RedirectHandlerOptions());
  const telemetry = new TelemetryHandler();
  const http = new HTTPMessageHandler();
  auth.setNext(retry);
  if (settings.budget === undefined) retry.setNext(redirect);
  else {
    retry.setNext(settings.budget);
    settings.budget.setNext(redirect);
  }
  redirect.setNext(telemetry);
  const counted = countingMiddleware();
  telemetry.setNext(counted);
  counted.setNext(http);
  return Client.initWithMiddleware({
    middleware: auth,
    baseUrl,
    defaultVersion: version,
    ...(customHosts.length > 0 ? { customHosts: new Set(customHosts) } : {}),
  });
}

/** Counts every request that reaches the wire (retries included) and its status, 429s apart. */
function countingMiddleware(): Middleware & { setNext(middleware: Middleware): void } {
  let next: Middleware | undefined;
  return {
    setNext: (middleware: Middleware) => {
      next = middleware;
    },
    execute: async (context: Context) => {
      if (next === undefined) throw new Error('graph metrics middleware has no next handler');
      await next.execute(context);
      if (context.response !== undefined) record.graphResponse(context.response.status);
    },
  };
}
