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

/**
 * Liveness for load balancers: `{status}` only, and 503 only when this instance cannot serve at all
 * (its storage does not answer). It names no provider, site, tenant, address or error.
 */
export const health = httpFunction({
  name: 'health',
  route: 'health',
  method: 'GET',
  summary: 'Liveness: 200 {status:"ok"}, or 503 {status:"down"} when storage does not answer',
  tags: ['operations'],
  auth: 'anonymous',
  responses: {
    200: { description: 'This instance can serve', schema: z.object({ status: z.literal('ok') }) },
    503: { description: 'Storage does not answer', schema: z.object({ status: z.literal('down') }) },
  },
  async handle({ deps }) {
    const storage = deps.healthChecks.filter((check) => check.name === 'storage');
    const report = await checkHealth(storage, { now: () => deps.clock.now() });
    const up = report.status !== 'down';
    return {
      status: up ? 200 : 503,
      body: { status: up ? 'ok' : 'down' },
      headers: { 'cache-control': 'no-store' },
    };
  },
});

/**
 * Every dependency and the caller's own agent sites. A stale agent, or one that reaches no DC, is
 * `degraded` here: it affects that site's customers, never a reason to take the API out of rotation.
 */
export const healthDetails = httpFunction({
  name: 'health-details',
  route: 'health/details',
  method: 'GET',
  summary: "Each dependency (storage, Service Bus, Graph) and the caller's agent sites with their heartbeats",
  tags: ['operations'],
  auth: 'caller',
  responses: { 200: { description: 'The report (status ok, degraded or down)', schema: healthReportSchema } },
  async handle({ caller, deps }) {
    const report = await checkHealth([...deps.healthChecks, deps.sites.healthCheckFor(caller)], {
      now: () => deps.clock.now(),
    });
    return { status: 200, body: report, headers: { 'cache-control': 'no-store' } };
  },
});
