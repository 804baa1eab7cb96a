export {
  createGraphDirectoryFactory,
  type GraphDirectoryOptions,
  type ReplicationLagSettings,
} from './graph-directory.js';
export {
  createCredentialFor,
  createGraphClient,
  graphScope,
  type GraphAppCredentialSettings,
  type GraphClientSettings,
  type GraphRetrySettings,
} from './client.js';
export { mapGraphError } from './errors.js';
export {
  costOf,
  documentedGraphBudget,
  GraphBudget,
  type BudgetStats,
  type GraphBudgetSettings,
} from './budget.js';
