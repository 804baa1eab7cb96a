import { createComposition, type AppDeps } from '../shared/composition.js';
import { loadSettings } from '../shared/config.js';

/**
 * The process's dependencies, built on first use from the environment: the only place production code
 * reads process.env. A bad setting fails the first invocation with every bad name listed.
 */
let deps: AppDeps | undefined;

export function processDeps(): AppDeps {
  deps ??= createComposition(loadSettings(process.env));
  return deps;
}
