import { settingsSchema } from '../../shared/config.js';
import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * The autoscale sweep (issue 15), on the NCRONTAB in Autoscale__sweepSchedule (read when the function
 * table is built: a timer's schedule is part of its registration). It decides every customer with a
 * policy and applies what its mode allows; an interrupted run is resumed by the next invocation and a
 * duplicate invocation of a finished run does nothing. It stops itself before the Functions timeout.
 */
export const autoscaleSweep: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'autoscale-sweep',
  schedule: settingsSchema.shape.Autoscale__sweepSchedule.parse(process.env.Autoscale__sweepSchedule),
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'autoscale-sweep' },
    });
    const run = await deps.autoscale.sweep({ budgetInMs: 8 * 60_000 });
    log.info('autoscale sweep', {
      runId: run.runId,
      customers: run.customers,
      applied: run.applied,
      errors: run.errors,
      more: run.more,
    });
  },
};

/**
 * Just in time, every minute: customers with operations held for a seat get one quantity change per
 * SKU for all of them, then the held operations are queued again. Nothing to do → one table read.
 */
export const autoscaleJustInTime: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'autoscale-just-in-time',
  schedule: '30 * * * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'autoscale-just-in-time' },
    });
    const result = await deps.autoscale.justInTime();
    if (result.applied > 0 || result.errors.length > 0)
      log.info('seats bought for held operations', {
        customers: result.customers,
        applied: result.applied,
        errors: result.errors.length,
        // Code and message per customer: a customer that fails every minute must be findable in the log.
        failures: result.errors.map((e) => `${e.customerId}: ${e.code}: ${e.message}`).join('; '),
      });
  },
};
