import type { FunctionDefinition } from './define.js';
import {
  deleteCustomer,
  getCustomer,
  listCustomers,
  listCustomerUsers,
  putCustomer,
} from './http/customers.js';
import { deleteFederation, federationPreflight, putFederation } from './http/federation.js';
import { groupFunctions } from './http/groups.js';
import { consoleFunctions } from './http/console.js';
import { health, healthDetails } from './http/health.js';
import { licensingFunctions } from './http/licensing.js';
import { onboardingFunctions } from './http/onboarding.js';
import { openApiFunction } from './http/openapi-function.js';
import {
  cancelOperation,
  confirmOperation,
  getOperation,
  listOperations,
  retryOperation,
} from './http/operations.js';
import {
  cancelKeyRotation,
  deleteSite,
  finishKeyRotation,
  getSite,
  listSites,
  putSite,
  startKeyRotation,
} from './http/sites.js';
import { splaFunctions } from './http/spla.js';
import { subscriptionFunctions } from './http/subscriptions.js';
import { tenantFunctions } from './http/tenants.js';
import { domainFunctions } from './http/domains.js';
import { gdapFunctions } from './http/gdap.js';
import {
  changeLicences,
  createUser,
  deleteUser,
  disableUser,
  dropPassword,
  enableUser,
  getUser,
  setPassword,
  updateUser,
} from './http/users.js';
import { whoami } from './http/whoami.js';
import { autoscaleFunctions } from './http/autoscale.js';
import { agentReplies } from './queue/agent-replies.js';
import { directoryWorker } from './queue/directory-worker.js';
import { onboardingWorker } from './queue/onboarding.js';
import { commerceSweep } from './timer/commerce-sweep.js';
import { autoscaleJustInTime, autoscaleSweep } from './timer/autoscale.js';
import { drift } from './timer/drift.js';
import { reconcile } from './timer/reconcile.js';
import { housekeeping } from './timer/housekeeping.js';
import { licenceSweep } from './timer/licence-sweep.js';
import { operationSweep } from './timer/operation-sweep.js';
import { splaChangeFeed } from './timer/spla-change-feed.js';
import { splaMonth } from './timer/spla-month.js';
import { splaSnapshot } from './timer/spla-snapshot.js';

/** Every function of atria-m365, once. Azure registration and the local host both read this table. */
export const definitions: FunctionDefinition[] = [
  health,
  healthDetails,
  openApiFunction(() => definitions),
  ...consoleFunctions,
  whoami,
  putCustomer,
  getCustomer,
  listCustomers,
  deleteCustomer,
  listCustomerUsers,
  createUser,
  getUser,
  updateUser,
  deleteUser,
  disableUser,
  enableUser,
  setPassword,
  changeLicences,
  ...groupFunctions,
  getOperation,
  listOperations,
  confirmOperation,
  cancelOperation,
  retryOperation,
  dropPassword,
  putSite,
  getSite,
  listSites,
  deleteSite,
  startKeyRotation,
  finishKeyRotation,
  cancelKeyRotation,
  putFederation,
  deleteFederation,
  federationPreflight,
  ...licensingFunctions,
  ...onboardingFunctions,
  ...autoscaleFunctions,
  ...subscriptionFunctions,
  ...tenantFunctions,
  ...domainFunctions,
  ...gdapFunctions,
  ...splaFunctions,
  directoryWorker,
  onboardingWorker,
  agentReplies,
  licenceSweep,
  operationSweep,
  splaMonth,
  splaSnapshot,
  splaChangeFeed,
  commerceSweep,
  autoscaleSweep,
  autoscaleJustInTime,
  housekeeping,
  drift,
  reconcile,
];
