import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * 03:00 UTC daily (NCRONTAB): the SPLA safety net — every Entra group (through Graph) and AD group
 * (through the site's agent, nesting resolved) an SPLA rule names is read in full and stored as
 * evidence, so memberships changed outside atria-m365 are counted too.
 */
export const splaSnapshot: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'spla-snapshot',
  schedule: '0 0 3 * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'spla-snapshot' },
    });
    const entra = await deps.spla.snapshotEntraGroups();
    const ad = await deps.spla.snapshotAdGroups();
    const result = { entra, ad };
    if (entra.failed.length + ad.failed.length > 0) log.warn('SPLA snapshot incomplete', result);
    else log.info('SPLA snapshot taken', result);
  },
};
