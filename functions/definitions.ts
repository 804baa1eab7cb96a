import type { FunctionDefinition } from './define.js';
import { health } from './http/health.js';
import { openApiFunction } from './http/openapi-function.js';
import { whoami } from './http/whoami.js';

/** Every function of atria-m365, once. Azure registration and the local host both read this table. */
export const definitions: FunctionDefinition[] = [health, openApiFunction(() => definitions), whoami];
