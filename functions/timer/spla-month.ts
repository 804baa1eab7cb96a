import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * 02:00 UTC on the 1st of every month (NCRONTAB: second minute hour day month weekday): stores the
 * previous month's SPLA draft for every customer with SPLA rules, ready to check and close.
 */
export const splaMonth: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'spla-month',
  schedule: '0 0 2 1 * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'spla-month' },
    });
    const { month, prepared } = await deps.spla.prepareDrafts();
    log.info('SPLA drafts prepared', { month, prepared });
  },
};
