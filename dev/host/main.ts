import { existsSync, readFileSync } from 'node:fs';
import { definitions } from '../../functions/definitions.js';
import { createComposition } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';
import { consoleSink, createLogger } from '../../shared/logging.js';
import { peersFilePath, peersFileSchema } from '../peers/run-all.js';
import { stopOnSignal } from '../peers/signals.js';
import { startLocalHost } from './local-host.js';
import { serviceBusTriggers } from './queue-triggers.js';
import { localEnvironment } from './settings.js';

// npm run host: the local Functions host alone, against peers already started by `npm run peers`.
const peers = existsSync(peersFilePath)
  ? peersFileSchema.parse(JSON.parse(readFileSync(peersFilePath, 'utf8')))
  : undefined;
const settings = loadSettings(localEnvironment(peers));
const log = createLogger(consoleSink, { level: settings.LOG_LEVEL, props: { component: 'local-host' } });
const triggers =
  settings.ServiceBusConnection === undefined
    ? undefined
    : serviceBusTriggers(settings.ServiceBusConnection, log);
const host = await startLocalHost({
  definitions,
  deps: createComposition(settings, { log }),
  port: settings.LocalHost__port,
  log,
  ...(triggers === undefined ? {} : { startQueueTrigger: triggers.start }),
});
console.log(JSON.stringify({ url: host.url, registration: host.registration }));
stopOnSignal(async () => {
  await host.stop();
  await triggers?.close();
});
