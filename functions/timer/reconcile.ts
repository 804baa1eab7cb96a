import { settingsSchema } from '../../shared/config.js';
import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * The safety net behind delta sync (default Sundays 03:00 UTC; NCRONTAB in Onboarding__reconcileSchedule):
 * every synchronised customer gets a full pass over the whole tenant and, through the agent, the whole
 * AD side, repairing what deltas missed. The delete guard and per-object retry apply as in drift.
 */
export const reconcile: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'onboarding-reconcile',
  // Read when the function table is built: a timer's schedule is part of its registration.
  schedule: settingsSchema.shape.Onboarding__reconcileSchedule.parse(
    process.env.Onboarding__reconcileSchedule,
  ),
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'onboarding-reconcile' },
    });
    const totals = await deps.onboarding.reconcileAll();
    log.info('full reconciliation done', totals);
  },
};
