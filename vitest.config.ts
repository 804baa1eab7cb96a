import { defineConfig } from 'vitest/config';

// Two tiers with their own scripts: unit (pure core + handlers, no I/O) and integration (real SDKs
// against the local peers). Integration files start the peers they need; the global setup starts the
// shared ones (Azurite) once per run.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['test/unit/**/*.test.ts', 'test/handlers/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          sequence: { groupOrder: 1 },
          include: [
            'test/integration/**/*.test.ts',
            'test/e2e/**/*.test.ts',
            'test/fuzz/**/*.test.ts',
            'test/chaos/**/*.test.ts',
          ],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: 'forks',
          fileParallelism: true,
          maxWorkers: 2,
        },
      },
    ],
  },
});
