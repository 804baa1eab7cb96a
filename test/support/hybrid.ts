import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { resolveAgentConfig, type AgentConfigFile } from '../../agent/config.js';
import { startAgent, type AgentDependencies, type RunningAgent } from '../../agent/runtime.js';
import { startSambaPeer, type SambaPeer } from '../../dev/peers/samba/index.js';
import { createLogger } from '../../shared/logging.js';
import {
  generateSigningKeyPair,
  generateSiteKeyPair,
  type PemKeyPair,
} from '../../shared/relay-protocol/index.js';
import { graphSeed, serviceBusConfigWithSites, startTestStack, waitFor, type TestStack } from './stack.js';

/**
 * A hybrid customer on the whole local stack with a site of the file's own: Samba DC, the app (HTTP,
 * queues, workers) on the peers, the site registered through `PUT /sites` and a `hybridFederated`
 * customer on it. Agents are started by the test (`agentConfig` + `startAgent`), as many as it needs.
 */
export interface HybridFixture {
  stack: TestStack;
  dc: SambaPeer;
  key: string;
  providerId: string;
  siteId: string;
  customerId: string;
  tenantId: string;
  upnSuffix: string;
  /** The cloud's command-signing key pair (agents trust its public key). */
  signing: PemKeyPair & { kid: string };
  site: PemKeyPair;
  agentKeys: PemKeyPair;
  /** An agent config file's content for this site (inline keys unless the test passes others). */
  agentConfig(extra?: Partial<AgentConfigFile>): AgentConfigFile;
  startAgent(extra?: Partial<AgentConfigFile>, deps?: Partial<AgentDependencies>): Promise<RunningAgent>;
  stop(): Promise<void>;
}

export async function startHybridFixture(input: {
  siteId: string;
  storageConnectionString: string;
  extraSettings?: Record<string, string>;
}): Promise<HybridFixture> {
  const tenantId = randomUUID();
  const upnSuffix = `fed.${input.siteId}.example`;
  const seed = graphSeed({
    id: tenantId,
    displayName: 'Fabrikam',
    domains: [
      { id: `${input.siteId}.example`, isDefault: true, authenticationType: 'Managed' },
      { id: upnSuffix, authenticationType: 'Federated' },
    ],
    skus: [],
  });
  const signing = { ...generateSigningKeyPair(), kid: `${input.siteId}-key` };
  const site = generateSiteKeyPair();
  const agentKeys = generateSigningKeyPair();
  const dc = await startSambaPeer();
  const stack = await startTestStack({
    storageConnectionString: input.storageConnectionString,
    graphSeed: seed,
    serviceBusConfig: serviceBusConfigWithSites([input.siteId]),
    extraSettings: {
      Relay__signingKeyPem: signing.privateKeyPem,
      Relay__signingKeyId: signing.kid,
      ...input.extraSettings,
    },
  });
  const providerId = `prov-${input.siteId}-${randomUUID().slice(0, 6)}`;
  const key = (await stack.deps.callers.createApiKey({ providerId, name: 't' })).apiKey;
  const registered = await stack.api(`/sites/${input.siteId}`, {
    method: 'PUT',
    key,
    body: JSON.stringify({ publicKeyPem: site.publicKeyPem, agentPublicKeyPem: agentKeys.publicKeyPem }),
  });
  expect(registered.status, await registered.clone().text()).toBeOneOf([200, 201]);
  const customerId = `cust-${input.siteId}`;
  const put = await stack.api(`/customers/${customerId}`, {
    method: 'PUT',
    key,
    body: JSON.stringify({
      displayName: 'Fabrikam',
      identityMode: 'hybridFederated',
      entra: { tenantId, domains: [`${input.siteId}.example`, upnSuffix], federatedDomain: upnSuffix },
      ad: { siteId: input.siteId, usersOu: dc.usersOu, upnSuffixes: [upnSuffix] },
      defaultUsageLocation: 'NL',
    }),
  });
  expect(put.status, await put.clone().text()).toBe(201);
  const running = new Set<RunningAgent>();
  const agentConfig = (extra: Partial<AgentConfigFile> = {}): AgentConfigFile => ({
    siteId: input.siteId,
    serviceBus: { connectionString: stack.serviceBus.connectionString },
    directory: {
      urls: [dc.url],
      bindDn: dc.bindDn,
      password: dc.password,
      caFile: dc.caFile,
      allowedOus: [dc.atriaOu],
    },
    cloudSigningKeys: [{ kid: signing.kid, publicKeyPem: signing.publicKeyPem }],
    sitePrivateKey: site.privateKeyPem,
    agentSigningKey: agentKeys.privateKeyPem,
    heartbeatIntervalInMs: 1000,
    ...extra,
  });
  return {
    stack,
    dc,
    key,
    providerId,
    siteId: input.siteId,
    customerId,
    tenantId,
    upnSuffix,
    signing,
    site,
    agentKeys,
    agentConfig,
    async startAgent(extra, deps) {
      const agent = await startAgent(resolveAgentConfig(agentConfig(extra), process.cwd()), {
        log: createLogger(() => undefined),
        ...deps,
      });
      running.add(agent);
      const stop = agent.stop.bind(agent);
      return Object.assign(agent, {
        stop: async () => {
          running.delete(agent);
          await stop();
        },
      });
    },
    async stop() {
      await Promise.allSettled([...running].map((a) => a.stop()));
      await stack.stop();
      await dc.stop();
    },
  };
}

export interface OperationView {
  operationId: string;
  state: string;
  steps: { name: string; state: string; attempts: number; error?: { code: string; message: string } }[];
}

export async function operation(f: HybridFixture, operationId: string): Promise<OperationView> {
  return (await (await f.stack.api(`/operations/${operationId}`, { key: f.key })).json()) as OperationView;
}

/** Waits for the operation to reach a state (default: succeeded), failing with the last one seen. */
export async function untilState(
  f: HybridFixture,
  operationId: string,
  states: string[] = ['succeeded'],
  timeoutInMs = 45_000,
): Promise<OperationView> {
  let last: OperationView | undefined;
  try {
    return await waitFor(
      async () => {
        last = await operation(f, operationId);
        return states.includes(last.state) ? last : undefined;
      },
      `operation ${operationId} ${states.join('|')}`,
      timeoutInMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen ${JSON.stringify(last)}`, { cause: error });
  }
}

/** Asks for a hybrid user (202) and returns its operation id. */
export async function createUser(f: HybridFixture, userId: string): Promise<string> {
  const response = await f.stack.api(`/customers/${f.customerId}/users`, {
    method: 'POST',
    key: f.key,
    body: JSON.stringify({
      userId,
      userPrincipalName: `${userId}@${f.upnSuffix}`,
      displayName: userId,
      password: 'Str0ng!Passw0rd#1',
    }),
  });
  expect(response.status, await response.clone().text()).toBe(202);
  return ((await response.json()) as { operationId: string }).operationId;
}
