export { RelayHub, type RelayHubOptions } from './relay-hub.js';
