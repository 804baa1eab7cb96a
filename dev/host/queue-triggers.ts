import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceBusClient } from '@azure/service-bus';
import { z } from 'zod';
import type { Logger } from '../../shared/logging.js';
import type { QueueTriggerStarter } from './local-host.js';
import { startQueueTrigger } from './service-bus-trigger.js';

/** host.json's Service Bus settings, so the local host runs queue functions as Azure would. */
const hostJsonSchema = z.object({
  extensions: z
    .object({
      serviceBus: z
        .object({
          maxConcurrentCalls: z.number().int().positive().default(16),
          maxAutoLockRenewalDuration: z.string().default('00:05:00'),
        })
        .default({
          maxConcurrentCalls: 16,
          maxAutoLockRenewalDuration: '00:05:00',
        }),
    })
    .prefault({}),
});

function timeSpanToMs(value: string): number {
  const [h = '0', m = '0', s = '0'] = value.split(':');
  return ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000;
}

export function serviceBusTriggers(
  connectionString: string,
  log: Logger,
): { start: QueueTriggerStarter; close(): Promise<void> } {
  const host = hostJsonSchema.parse(JSON.parse(readFileSync(join(process.cwd(), 'host.json'), 'utf8')));
  const client = new ServiceBusClient(connectionString);
  return {
    start: (options) =>
      startQueueTrigger({
        client,
        ...options,
        maxConcurrentCalls: host.extensions.serviceBus.maxConcurrentCalls,
        maxAutoLockRenewalDurationInMs: timeSpanToMs(host.extensions.serviceBus.maxAutoLockRenewalDuration),
        log: (level, message, properties) => {
          const props = { function: options.functionName, ...properties };
          if (level === 'error') log.error(message, props);
          else if (level === 'warning') log.warn(message, props);
          else log.info(message, props);
        },
      }),
    close: () => client.close(),
  };
}
