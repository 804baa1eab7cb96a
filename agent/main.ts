import { parseArgs } from 'node:util';
import { consoleSink, createLogger } from '../shared/logging.js';
import { loadAgentConfig } from './config.js';
import { formatDoctor, runDoctor } from './doctor.js';
import { formatRotation, promoteKeys, rotateKeys } from './keys.js';
import { startAgent } from './runtime.js';

/**
 * `npm run agent -- --config /etc/atria-agent/config.json`: runs until SIGTERM/SIGINT, then stops
 * receiving, finishes the command in flight and exits 0. SIGHUP re-reads the config's keys (rotation).
 * `agent doctor --config …` checks the site; `agent keys rotate|promote --config …` rotates its keys.
 */
const { values, positionals } = parseArgs({
  options: { config: { type: 'string', short: 'c' } },
  allowPositionals: true,
});
const log = createLogger(consoleSink, { props: { component: 'atria-agent' } });
const subcommand = positionals[0];
const keysAction = subcommand === 'keys' ? positionals[1] : undefined;
if (
  values.config === undefined ||
  (subcommand !== undefined && subcommand !== 'doctor' && subcommand !== 'keys') ||
  (subcommand === 'keys' && keysAction !== 'rotate' && keysAction !== 'promote')
) {
  log.error('usage: agent [doctor | keys rotate | keys promote] --config <file>');
  process.exit(64);
}
if (subcommand === 'keys') {
  const configPath = values.config;
  try {
    if (keysAction === 'rotate') console.log(formatRotation(rotateKeys(configPath)));
    else {
      const { promoted, removedFiles } = promoteKeys(configPath);
      console.log(
        promoted
          ? `The next keys are now current; removed ${removedFiles.length} old key file(s). Reload the agent.`
          : 'No rotation is pending: nothing to promote.',
      );
    }
    process.exit(0);
  } catch (error) {
    log.error('key rotation failed', { error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
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
process.on('SIGHUP', () => {
  // Reload only the keys (a rotation's next keys, or the promoted ones); anything else needs a restart.
  const configPath = values.config;
  if (configPath === undefined) return;
  try {
    void agent.reloadKeys(loadAgentConfig(configPath)).catch((error: unknown) =>
      log.warn('heartbeat after reload failed', {
        error: error instanceof Error ? error.message : String(error),
      }),
    );
  } catch (error) {
    log.error('reload failed; keeping the keys in use', {
      error: error instanceof Error ? error.message : String(error),
    });
  }
});
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
