import { createComposition, type AppDeps } from '../../shared/composition.js';
import { loadSettings } from '../../shared/config.js';

/** Dependencies wired exactly as production wires them, pointed at the local peers. */
export function testDeps(env: Record<string, string | undefined>): AppDeps {
  return createComposition(loadSettings({ LOG_LEVEL: 'warn', ...env }));
}
