import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/**
 * Every minute: operations whose lease, park deadline or retry time passed without a run (a lost
 * message, a crashed worker, an agent that never answered) are queued again; the runner resumes them or
 * fails them past their deadline. Finished operations whose user record was not updated are healed.
 */
export const operationSweep: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'operation-sweep',
  schedule: '0 * * * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'operation-sweep' },
    });
    const { resumed, more } = await deps.provisioning.sweepOperations();
    if (resumed > 0 || more) log.info('stuck operations queued again', { resumed, more });
  },
};
