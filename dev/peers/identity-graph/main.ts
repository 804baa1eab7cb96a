import { parseArgs } from 'node:util';
import { startIdentityGraphPeer } from './index.js';
import { stopOnSignal } from '../signals.js';

// npm run peer:graph -- --port N --seed FILE
const { values } = parseArgs({ options: { port: { type: 'string' }, seed: { type: 'string' } } });
const port = values.port === undefined ? undefined : Number(values.port);
if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
  console.error(`--port must be a port number, got ${values.port ?? ''}`);
  process.exit(2);
}
const peer = await startIdentityGraphPeer({
  ...(port === undefined ? {} : { port }),
  ...(values.seed === undefined ? {} : { seed: values.seed }),
});
console.log(
  JSON.stringify({
    authorityHost: peer.authorityHost,
    graphBaseUrl: peer.graphBaseUrl,
    adminUrl: peer.adminUrl,
  }),
);
stopOnSignal(() => peer.stop());
