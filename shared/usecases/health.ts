import { toAppError } from '../errors.js';
import type { DependencyHealth, DependencyState, HealthCheck } from '../ports/health.js';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  checkedAt: string;
  dependencies: DependencyHealth[];
}

/** Runs every check in parallel, each bounded by a timeout, so one hung dependency cannot hang health. */
export async function checkHealth(
  checks: HealthCheck[],
  options: { timeoutInMs?: number; now?: () => Date } = {},
): Promise<HealthReport> {
  const timeoutInMs = options.timeoutInMs ?? 3000;
  const dependencies = await Promise.all(
    checks.map(async (dependency): Promise<DependencyHealth> => {
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        const result = await Promise.race([
          dependency.check(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutInMs} ms`)), timeoutInMs);
          }),
        ]);
        return { name: dependency.name, ...result, latencyInMs: Math.round(performance.now() - started) };
      } catch (error) {
        return {
          name: dependency.name,
          state: 'down',
          detail: toAppError(error).message,
          latencyInMs: Math.round(performance.now() - started),
        };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const states = new Set<DependencyState>(dependencies.map((d) => d.state));
  const status = states.has('down')
    ? dependencies.some((d) => d.name === 'storage' && d.state === 'down')
      ? 'down'
      : 'degraded'
    : states.has('degraded')
      ? 'degraded'
      : 'ok';
  return { status, checkedAt: (options.now?.() ?? new Date()).toISOString(), dependencies };
}
