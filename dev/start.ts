import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { definitions } from '../functions/definitions.js';
import { createComposition } from '../shared/composition.js';
import { loadSettings } from '../shared/config.js';
import { consoleSink, createLogger } from '../shared/logging.js';
import { generateSigningKeyPair, generateSiteKeyPair } from '../shared/relay-protocol/index.js';
import { startLocalHost } from './host/local-host.js';
import { serviceBusTriggers } from './host/queue-triggers.js';
import { localEnvironment } from './host/settings.js';
import { spawnAgentProcess, writeLocalAgentConfig, type AgentProcess } from './local-agent.js';
import { demoProviderId, peersFilePath, startAllPeers } from './peers/run-all.js';
import { stopOnSignal } from './peers/signals.js';

/**
 * `npm start`: every local peer, the local Functions host on :7071, the relay agent of a demo site
 * against the Samba DC, and a demo provider with a hybrid customer — then the commands to try.
 * Ctrl-C stops everything.
 */
const demoTenantId = '0b7c6d5e-4f3a-4b2c-8d1e-9f0a1b2c3d4e'; // Contoso in dev/peers/identity-graph/demo-seed.json
const fabrikamTenantId = '5a9c1d2e-3b4f-4a6c-8d7e-2f1a0b9c8d7e'; // Fabrikam, same seed
const demoSkuE3 = '6fd2c87f-b296-42f0-b197-1e91e994b900';
const siteId = 'demo';

const running = await startAllPeers();
// Keys of this run only: the cloud signs agent commands, the site opens sealed passwords.
const signing = generateSigningKeyPair();
const site = generateSiteKeyPair();
const agentKeys = generateSigningKeyPair();
const settings = loadSettings({
  ...localEnvironment(running.peers),
  Relay__signingKeyPem: signing.privateKeyPem,
  Relay__signingKeyId: 'local-run',
});
const log = createLogger(consoleSink, { level: settings.LOG_LEVEL, props: { component: 'local-host' } });
const deps = createComposition(settings, { log });
const triggers = serviceBusTriggers(running.peers.serviceBus.connectionString, log);
const host = await startLocalHost({
  definitions,
  deps,
  port: settings.LocalHost__port,
  log,
  startQueueTrigger: triggers.start,
});

const providerId = demoProviderId; // owns the local Partner Center and distributor connectors
const { apiKey } = await deps.callers.createApiKey({ providerId, name: 'npm start demo key' });
const caller = { id: 'npm-start', kind: 'apiKey' as const, providerId };

const ad = running.peers.ad;
let agent: AgentProcess | undefined;
const agentConfigFile = join(process.cwd(), '.local', 'agent', 'config.json');
let customerNote: string;
if ('url' in ad) {
  // The agent runs as its own process, as at a customer site: `npm run agent -- --config
  // .local/agent/config.json` restarts it alone (Ctrl-C here stops it too).
  writeLocalAgentConfig(join(process.cwd(), '.local', 'agent'), {
    siteId,
    serviceBusConnectionString: running.peers.serviceBus.connectionString,
    dc: ad,
    signing: { kid: 'local-run', publicKeyPem: signing.publicKeyPem },
    sitePrivateKeyPem: site.privateKeyPem,
    agentSigningKeyPem: agentKeys.privateKeyPem,
    heartbeatIntervalInMs: 15_000,
  });
  agent = spawnAgentProcess(agentConfigFile);
  await deps.sites.register(caller, siteId, {
    publicKeyPem: site.publicKeyPem,
    agentPublicKeyPem: agentKeys.publicKeyPem,
  });
  await deps.customers.put(caller, 'contoso', {
    displayName: 'Contoso',
    identityMode: 'hybridFederated',
    entra: {
      tenantId: demoTenantId,
      domains: ['contoso.example', 'fed.contoso.example'],
      federatedDomain: 'fed.contoso.example',
    },
    ad: { siteId, usersOu: ad.usersOu, upnSuffixes: ['fed.contoso.example'] },
    defaultUsageLocation: 'NL',
    licencePlans: [{ name: 'E3', skus: [{ skuId: demoSkuE3, disabledServicePlanIds: [] }] }],
  });
  customerNote = `customer "contoso": hybridFederated (Samba AD ${ad.usersOu} + Entra tenant ${demoTenantId}, federated domain fed.contoso.example)`;
} else {
  await deps.customers.put(caller, 'contoso', {
    displayName: 'Contoso',
    identityMode: 'cloudOnly',
    entra: { tenantId: demoTenantId, domains: ['contoso.example'] },
    defaultUsageLocation: 'NL',
    licencePlans: [{ name: 'E3', skus: [{ skuId: demoSkuE3, disabledServicePlanIds: [] }] }],
  });
  customerNote = `customer "contoso": cloudOnly — on-prem AD is NOT running (${ad.unavailable}); install Samba as root: bash dev/peers/samba/install.sh`;
}
// A second customer of the same provider on its own tenant, cloud-only, so both modes can be tried at once.
await deps.customers.put(caller, 'fabrikam', {
  displayName: 'Fabrikam',
  identityMode: 'cloudOnly',
  entra: { tenantId: fabrikamTenantId, domains: ['fabrikam.example'] },
  defaultUsageLocation: 'NL',
  licencePlans: [{ name: 'E3', skus: [{ skuId: demoSkuE3, disabledServicePlanIds: [] }] }],
});
const hybrid = 'url' in ad;
writeFileSync(
  join(process.cwd(), '.local', 'demo.json'),
  `${JSON.stringify({ baseUrl: host.url, apiKey, customerId: 'contoso', hybrid }, null, 2)}\n`,
  { mode: 0o600 },
);

const userBody = hybrid
  ? `{"userId":"u-ada","userPrincipalName":"ada@fed.contoso.example","displayName":"Ada Lovelace","password":"Str0ng!Passw0rd#1","licencePlan":"E3"}`
  : `{"userId":"u-ada","userPrincipalName":"ada@contoso.example","displayName":"Ada Lovelace","licencePlan":"E3"}`;
console.log(`
atria-m365 local stack is up (peers: ${peersFilePath})
  Functions host   ${host.url}  (${host.registration.http.length} HTTP, ${host.registration.queues.length} queue, ${host.registration.timers.length} timer functions)
  Relay agent      ${agent === undefined ? 'not running (no AD)' : `site "${siteId}" → ${'url' in ad ? ad.url : ''}, process ${agent.pid ?? '?'}; restart alone: npm run agent -- --config .local/agent/config.json`}
  Demo provider    ${providerId}, ${customerNote}
                   customer "fabrikam": cloudOnly (Entra tenant ${fabrikamTenantId})
  Demo API key     ${apiKey}   (shown once; also in .local/demo.json)

Try:
  export KEY='${apiKey}'
  curl -s ${host.url}/health
  curl -s -H "x-functions-key: $KEY" ${host.url}/health/details
  curl -s -H "x-functions-key: $KEY" ${host.url}/customers
  curl -s -H "x-functions-key: $KEY" ${host.url}/customers/contoso
  curl -s -H "x-functions-key: $KEY" -H 'content-type: application/json' -d '${userBody}' ${host.url}/customers/contoso/users
  curl -s -H "x-functions-key: $KEY" ${host.url}/customers/contoso/operations
  curl -s -H "x-functions-key: $KEY" ${host.url}/customers/contoso/users/u-ada
  curl -s -H "x-functions-key: $KEY" -H 'content-type: application/json' -d '{"userId":"u-bob","userPrincipalName":"bob@fabrikam.example","displayName":"Bob Builder","licencePlan":"E3"}' ${host.url}/customers/fabrikam/users
  curl -s -H "x-functions-key: $KEY" ${host.url}/customers/fabrikam/users
  npm run demo        # in another terminal: provisions a batch and shows where each user landed

Ctrl-C stops everything.`);

stopOnSignal(async () => {
  await agent?.stop();
  await host.stop();
  await triggers.close();
  await deps.close();
  await running.stop();
});
