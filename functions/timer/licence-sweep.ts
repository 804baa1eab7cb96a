import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Every 15 minutes, operations held for a free licence are tried again: seats may have been bought
 * meanwhile (by a provider, a distributor or a later seat-scaling run). Still no seat → held again. A
 * hold older than Engine__licenceHoldInDays is no longer retried; the operation says so in its error.
 */
export const licenceSweep: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'licence-sweep',
  schedule: '0 */15 * * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'licence-sweep' },
    });
    const { queued, stopped, more } = await deps.provisioning.sweepHeldOperations();
    log.info('held operations queued again', { queued, stopped, more });
  },
};
