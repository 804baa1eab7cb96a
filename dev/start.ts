import { definitions } from '../functions/definitions.js';
import { createComposition } from '../shared/composition.js';
import { loadSettings } from '../shared/config.js';
import { consoleSink, createLogger } from '../shared/logging.js';
import { startLocalHost } from './host/local-host.js';
import { serviceBusTriggers } from './host/queue-triggers.js';
import { localEnvironment } from './host/settings.js';
import { peersFilePath, startAllPeers } from './peers/run-all.js';

/**
 * `npm start`: every local peer, the local Functions host on :7071, a demo provider with an API key,
 * and the commands to try. Ctrl-C stops everything.
 */
const running = await startAllPeers();
const settings = loadSettings(localEnvironment(running.peers));
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

const { apiKey } = await deps.callers.createApiKey({
  providerId: 'demo-provider',
  name: 'npm start demo key',
});

console.log(`
atria-m365 local stack is up (peers: ${peersFilePath})
  Functions host   ${host.url}  (${host.registration.http.length} HTTP, ${host.registration.queues.length} queue, ${host.registration.timers.length} timer functions)
  Demo API key     ${apiKey}   (provider "demo-provider"; shown once)

Try:
  curl -s ${host.url}/health
  curl -s ${host.url}/openapi.json | head -c 400; echo
  curl -s -H 'x-functions-key: ${apiKey}' ${host.url}/whoami
  curl -s -i ${host.url}/whoami          # no key: 401 problem+json

Ctrl-C stops everything.`);

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  void host
    .stop()
    .then(() => triggers.close())
    .then(() => deps.close())
    .then(() => running.stop())
    .then(() => process.exit(0));
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
