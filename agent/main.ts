import { parseArgs } from 'node:util';
import { consoleSink, createLogger } from '../shared/logging.js';
import { loadAgentConfig } from './config.js';
import { formatDoctor, runDoctor } from './doctor.js';
import { startAgent } from './runtime.js';

/**
 * `npm run agent -- --config /etc/atria-agent/config.json`: runs until SIGTERM/SIGINT, then stops
 * receiving, finishes the command in flight and exits 0.
 */
const { values, positionals } = parseArgs({
  options: { config: { type: 'string', short: 'c' } },
  allowPositionals: true,
});
const log = createLogger(consoleSink, { props: { component: 'atria-agent' } });
const subcommand = positionals[0];
if (values.config === undefined || (subcommand !== undefined && subcommand !== 'doctor')) {
  log.error('usage: agent [doctor] --config <file>');
  process.exit(64);
}
let config;
try {
  config = loadAgentConfig(values.config);
} catch (error) {
  log.error('cannot load config', { error: error instanceof Error ? error.message : String(error) });
  process.exit(78);
}
if (subcommand === 'doctor') {
  // Pass/fail with the fix for each check; exit 1 when any failed (for install scripts).
  const checks = await runDoctor(config);
  console.log(formatDoctor(checks));
  process.exit(checks.every((c) => c.ok) ? 0 : 1);
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
