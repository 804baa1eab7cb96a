export { createServiceBusBus, type ServiceBusBus } from './bus.js';
export { createServiceBusClient, type ServiceBusSettings } from './client.js';
export { toBusError } from './errors.js';
export { settlementGate, type Gate } from './settlement.js';
