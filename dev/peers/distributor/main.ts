import { parseArgs } from 'node:util';
import { startDistributorPeer } from './index.js';
import { stopOnSignal } from '../signals.js';

// npm run peer:distributor -- --port N --seed FILE [--graph-admin URL] [--follow-clock URL]
const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    seed: { type: 'string', default: 'dev/peers/distributor/demo-seed.json' },
    'graph-admin': { type: 'string' },
    'follow-clock': { type: 'string' },
  },
});
const port = values.port === undefined ? undefined : Number(values.port);
if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
  console.error(`--port must be a port number, got ${values.port ?? ''}`);
  process.exit(2);
}
if (values['graph-admin'] === undefined)
  console.error('[distributor] no --graph-admin: Graph subscribedSkus are not kept in step');

const peer = await startDistributorPeer({
  ...(port === undefined ? {} : { port }),
  seed: values.seed,
  ...(values['graph-admin'] === undefined ? {} : { graphAdminUrl: values['graph-admin'] }),
  ...(values['follow-clock'] === undefined ? {} : { followClockUrl: values['follow-clock'] }),
});
// Other tooling reads exactly this one line.
console.log(JSON.stringify({ baseUrl: peer.baseUrl }));

stopOnSignal(() => peer.stop());
