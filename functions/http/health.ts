import { z } from 'zod';
import { checkHealth } from '../../shared/usecases/health.js';
import { httpFunction } from './endpoint.js';

const dependency = z.object({
  name: z.string(),
  state: z.enum(['ok', 'degraded', 'down', 'notConfigured']),
  detail: z.string().optional(),
  latencyInMs: z.number().optional(),
  info: z.record(z.string(), z.unknown()).optional(),
});
export const healthReportSchema = z.object({
  status: z.enum(['ok', 'degraded', 'down']),
  checkedAt: z.string(),
  dependencies: z.array(dependency),
});

/** Open to load balancers and monitors: states only, never a secret or an endpoint with credentials. */
export const health = httpFunction({
  name: 'health',
  route: 'health',
  method: 'GET',
  summary: 'Reports each dependency (storage, Service Bus, Graph, agent sites) with its state',
  tags: ['operations'],
  auth: 'anonymous',
  responses: {
    200: { description: 'All dependencies answer', schema: healthReportSchema },
    503: { description: 'Storage is down or a dependency failed', schema: healthReportSchema },
  },
  async handle({ deps }) {
    const report = await checkHealth(deps.healthChecks, { now: () => deps.clock.now() });
    return {
      status: report.status === 'ok' ? 200 : 503,
      body: report,
      headers: { 'cache-control': 'no-store' },
    };
  },
});
