import { app } from '@azure/functions';
import { definitions } from './definitions.js';
import { processDeps } from './runtime.js';

/** Azure entry point: registers every definition of the table with the Functions host. */

// Registers the SDK-type Service Bus binding (ServiceBusReceivedMessage + settlement actions). Loaded by
// name: the package ships TypeScript sources our compiler settings would otherwise try to check.
const serviceBusExtension = '@azure/functions-extensions-servicebus';
await import(serviceBusExtension);
app.setup({ enableHttpStream: false });

for (const definition of definitions) {
  switch (definition.kind) {
    case 'http':
      app.http(definition.name, {
        route: definition.route,
        methods: definition.methods,
        authLevel: definition.authLevel,
        handler: (request, context) => definition.handler(processDeps())(request, context),
      });
      break;
    case 'serviceBusQueue':
      app.serviceBusQueue(definition.name, {
        queueName: definition.queueName,
        connection: definition.connection,
        // Explicit settlement (complete / dead-letter with reason / abandon) by the handler itself.
        ...(definition.sdkBinding === true
          ? { sdkBinding: true, autoCompleteMessages: false, cardinality: 'one' as const }
          : {}),
        handler: (message, context) => definition.handler(processDeps())(message, context),
      });
      break;
    case 'timer':
      app.timer(definition.name, {
        schedule: definition.schedule,
        runOnStartup: definition.runOnStartup ?? false,
        handler: (timer, context) => definition.handler(processDeps())(timer, context),
      });
      break;
  }
}
