import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from '@azure/functions';
import type { AppDeps } from '../shared/composition.js';
import type { AnyEndpoint } from './http/endpoint.js';

/**
 * One definition per function: name, trigger and handler. `functions/index.ts` registers each with
 * `app.*` for Azure; `dev/host` serves the same table locally. Handlers are built from the process's
 * dependencies, so tests can hand them their own.
 */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpFunctionDefinition {
  kind: 'http';
  name: string;
  /** Functions route template under /api, e.g. `customers/{customerId}`. */
  route: string;
  methods: HttpMethod[];
  /**
   * Functions-level auth. Ours is `anonymous` everywhere: the endpoint itself authenticates callers
   * (API keys sent as `x-functions-key`, or Entra bearer tokens) so it can scope them to a provider.
   */
  authLevel: 'anonymous';
  endpoint: AnyEndpoint;
  handler: (deps: AppDeps) => (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;
}

export interface QueueFunctionDefinition {
  kind: 'serviceBusQueue';
  name: string;
  queueName: string;
  /** App setting prefix of the connection (`ServiceBusConnection` / `ServiceBusConnection__fullyQualifiedNamespace`). */
  connection: 'ServiceBusConnection';
  /**
   * SDK-type binding with explicit settlement (`@azure/functions-extensions-servicebus`): the handler gets
   * `{ messages, actions }` and completes, dead-letters or abandons each message itself.
   */
  sdkBinding?: boolean;
  handler: (deps: AppDeps) => (message: unknown, context: InvocationContext) => Promise<void>;
}

export interface TimerFunctionDefinition {
  kind: 'timer';
  name: string;
  /** Six-field NCRONTAB: second minute hour day month day-of-week. */
  schedule: string;
  runOnStartup?: boolean;
  handler: (deps: AppDeps) => (timer: Timer, context: InvocationContext) => Promise<void>;
}

export type FunctionDefinition = HttpFunctionDefinition | QueueFunctionDefinition | TimerFunctionDefinition;
