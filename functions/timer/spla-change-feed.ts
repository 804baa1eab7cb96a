import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Every hour at :15 (NCRONTAB): reads each SPLA customer's AD change feed through its agent (USN
 * watermark) into SPLA evidence — enables, disables, deletes and attributes made outside atria-m365.
 */
export const splaChangeFeed: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'spla-change-feed',
  schedule: '0 15 * * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'spla-change-feed' },
    });
    const result = await deps.spla.readChangeFeed();
    if (result.failed.length > 0) log.warn('SPLA change feed incomplete', result);
    else if (result.events > 0) log.info('SPLA change feed read', result);
  },
};
