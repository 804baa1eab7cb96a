import { parseArgs } from 'node:util';
import { consoleSink, createLogger } from '../shared/logging.js';
import { loadAgentConfig } from './config.js';
import { startAgent } from './runtime.js';

/**
 * `npm run agent -- --config /etc/atria-agent/config.json`: runs until SIGTERM/SIGINT, then stops
 * receiving, finishes the command in flight and exits 0.
 */
const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } } });
const log = createLogger(consoleSink, { props: { component: 'atria-agent' } });
if (values.config === undefined) {
  log.error('usage: agent --config <file>');
  process.exit(64);
}
let config;
try {
  config = loadAgentConfig(values.config);
} catch (error) {
  log.error('cannot load config', { error: error instanceof Error ? error.message : String(error) });
  process.exit(78);
}
const agent = await startAgent(config, { log });
let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  log.info('stopping', { signal });
  agent.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      log.error('stop failed', { error: error instanceof Error ? error.message : String(error) });
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
