import { parseArgs } from 'node:util';
import { defaultConfigPath, startServiceBusPeer } from './index.js';
import { stopOnSignal } from '../signals.js';

// npm run peer:servicebus -- --config FILE --port N [--key-name X --key Y] [--verbose]
const { values } = parseArgs({
  options: {
    config: { type: 'string', default: defaultConfigPath },
    port: { type: 'string', default: '5672' },
    host: { type: 'string', default: '127.0.0.1' },
    'key-name': { type: 'string' },
    key: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});

try {
  const peer = await startServiceBusPeer({
    config: values.config,
    port: Number(values.port),
    host: values.host,
    ...(values['key-name'] === undefined ? {} : { keyName: values['key-name'] }),
    ...(values.key === undefined ? {} : { key: values.key }),
    ...(values.verbose ? { log: (message: string) => console.error(`servicebus: ${message}`) } : {}),
  });
  console.log(
    JSON.stringify({ name: 'servicebus', port: peer.port, connectionString: peer.connectionString }),
  );
  stopOnSignal(() => peer.stop());
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
