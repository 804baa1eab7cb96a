import { createLogger } from '../../shared/logging.js';
import type { TimerFunctionDefinition } from '../define.js';
import { invocationSink } from '../http/endpoint.js';

/** Nightly: agent replies kept for other instances are dropped once no step can still need them. */
export const housekeeping: TimerFunctionDefinition = {
  kind: 'timer',
  name: 'housekeeping',
  schedule: '0 30 3 * * *',
  handler: (deps) => async (_timer, context) => {
    const log = createLogger(invocationSink(context), {
      level: deps.settings.LOG_LEVEL,
      props: { function: 'housekeeping' },
    });
    log.info('old agent replies removed', { removed: await deps.pruneRelayReplies() });
  },
};
