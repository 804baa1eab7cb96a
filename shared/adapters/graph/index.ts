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
