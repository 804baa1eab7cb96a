/** Raw Graph calls through the real SDK (auth, retry and telemetry middleware), for the doc-example tests. */
import { expect } from 'vitest';
import { ClientSecretCredential } from '@azure/identity';
import { Client, ResponseType } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import { createCredentialFor, createGraphDirectoryFactory } from '../../../shared/adapters/graph/index.js';
import type { CloudDirectory } from '../../../shared/ports/cloud-directory.js';
import type { IdentityGraphPeer } from '../../../dev/peers/identity-graph/index.js';

export type Json = Record<string, unknown>;

export interface Raw {
  status: number;
  headers: Headers;
  body: Json;
  text: string;
}

export interface App {
  clientId: string;
  clientSecret: string;
}

export function sdkClient(peer: IdentityGraphPeer, tenantId: string, app: App): Client {
  const credential = new ClientSecretCredential(tenantId, app.clientId, app.clientSecret, {
    authorityHost: peer.authorityHost,
    disableInstanceDiscovery: true,
  });
  return Client.initWithMiddleware({
    authProvider: new TokenCredentialAuthenticationProvider(credential, {
      scopes: ['https://graph.microsoft.com/.default'],
    }),
    baseUrl: peer.authorityHost,
    defaultVersion: 'v1.0',
    customHosts: new Set(['127.0.0.1']),
  });
}

/** A CloudDirectory for one tenant, as production builds it (fresh per call: no shared memory). */
export function adapterFor(peer: IdentityGraphPeer, tenantId: string, app: App): CloudDirectory {
  return createGraphDirectoryFactory({
    credentialFor: createCredentialFor({
      clientId: app.clientId,
      clientSecret: app.clientSecret,
      authorityHost: peer.authorityHost,
    }),
    graphBaseUrl: peer.graphBaseUrl,
    retry: { maxRetries: 2, delayInSeconds: 0.1 },
  })(tenantId);
}

export async function send(
  client: Client,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Raw> {
  let request = client.api(path).responseType(ResponseType.RAW);
  if (Object.keys(headers).length > 0) request = request.headers(headers);
  let response: Response;
  if (method === 'GET') response = (await request.get()) as Response;
  else if (method === 'POST') response = (await request.post(body ?? {})) as Response;
  else if (method === 'PATCH') response = (await request.patch(body)) as Response;
  else response = (await request.delete()) as Response;
  const text = await response.text();
  let parsed: Json = {};
  if (text.length > 0 && (response.headers.get('content-type') ?? '').includes('json'))
    parsed = JSON.parse(text) as Json;
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Every property of the documented example exists in ours with the same JSON type (null matches any). */
export function expectShape(actual: unknown, documented: unknown, path = '$'): void {
  if (documented === null || actual === null) return;
  if (Array.isArray(documented)) {
    expect(Array.isArray(actual), `${path} is an array`).toBe(true);
    const first: unknown = (documented as unknown[])[0];
    if (first !== undefined && Array.isArray(actual) && (actual as unknown[])[0] !== undefined)
      expectShape((actual as unknown[])[0], first, `${path}[0]`);
    return;
  }
  if (typeof documented === 'object') {
    expect(typeof actual, `${path} is an object`).toBe('object');
    for (const [key, value] of Object.entries(documented as Json)) {
      expect(actual as Json, `${path}.${key} present`).toHaveProperty([key]);
      expectShape((actual as Json)[key], value, `${path}.${key}`);
    }
    return;
  }
  expect(typeof actual, `${path} type`).toBe(typeof documented);
}

export function expectGraphError(raw: Raw, status: number, code: string, message?: string | RegExp): void {
  expect(raw.status).toBe(status);
  const error = raw.body['error'] as Json;
  expect(error['code']).toBe(code);
  if (typeof message === 'string') expect(error['message']).toBe(message);
  else if (message !== undefined) expect(error['message']).toMatch(message);
}

export async function adminCall(
  peer: IdentityGraphPeer,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${peer.adminUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text.length > 0 ? (JSON.parse(text) as unknown) : undefined };
}

export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}
