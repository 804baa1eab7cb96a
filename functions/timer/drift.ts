import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Every 30 minutes: onboarding reads whose process died are resumed from their saved cursor, and every
 * synchronised customer gets one drift pass (users/delta from the stored link, a full resync when it
 * expired, the accidental-delete guard before any deletion).
 */
export const drift: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'onboarding-drift',
  schedule: '0 */30 * * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'onboarding-drift' },
    });
    const totals = await deps.onboarding.driftAll();
    log.info('drift passes done', totals);
  },
};
