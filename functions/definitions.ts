import type { FunctionDefinition } from './define.js';
import { getCustomer, putCustomer } from './http/customers.js';
import { federationPreflight, putFederation } from './http/federation.js';
import { health } from './http/health.js';
import { openApiFunction } from './http/openapi-function.js';
import { confirmOperation, getOperation, listOperations } from './http/operations.js';
import { putSite } from './http/sites.js';
import {
  changeLicences,
  createUser,
  deleteUser,
  disableUser,
  enableUser,
  getUser,
  setPassword,
  updateUser,
} from './http/users.js';
import { whoami } from './http/whoami.js';
import { agentReplies } from './queue/agent-replies.js';
import { directoryWorker } from './queue/directory-worker.js';
import { housekeeping } from './timer/housekeeping.js';
import { licenceSweep } from './timer/licence-sweep.js';

/** Every function of atria-m365, once. Azure registration and the local host both read this table. */
export const definitions: FunctionDefinition[] = [
  health,
  openApiFunction(() => definitions),
  whoami,
  putCustomer,
  getCustomer,
  createUser,
  getUser,
  updateUser,
  deleteUser,
  disableUser,
  enableUser,
  setPassword,
  changeLicences,
  getOperation,
  listOperations,
  confirmOperation,
  putSite,
  putFederation,
  federationPreflight,
  directoryWorker,
  agentReplies,
  licenceSweep,
  housekeeping,
];
