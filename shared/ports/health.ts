export type DependencyState = 'ok' | 'degraded' | 'down' | 'notConfigured';

export interface DependencyHealth {
  name: string;
  state: DependencyState;
  detail?: string;
  latencyInMs?: number;
  /** Extra facts safe to show (e.g. agent version, last heartbeat). */
  info?: Record<string, unknown>;
}

/** One outside dependency that /api/health reports on. */
export interface HealthCheck {
  name: string;
  check(): Promise<Omit<DependencyHealth, 'name' | 'latencyInMs'>>;
}
