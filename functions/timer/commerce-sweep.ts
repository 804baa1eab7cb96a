import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Every minute: commerce operations (purchases, subscription changes, tenant creation) whose retry or
 * poll time came, or whose run died with its lease, are run again from their stored steps.
 */
export const commerceSweep: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'commerce-sweep',
  schedule: '30 * * * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'commerce-sweep' },
    });
    const { resumed } = await deps.commerceOperations.sweep();
    if (resumed > 0) log.info('commerce operations resumed', { resumed });
  },
};
