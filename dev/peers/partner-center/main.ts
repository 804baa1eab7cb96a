import { parseArgs } from 'node:util';
import { startPartnerCenterPeer } from './index.js';
import { stopOnSignal } from '../signals.js';

// npm run peer:partner-center -- --port N --seed FILE --authority URL --graph-admin URL
const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    seed: { type: 'string', default: 'dev/peers/partner-center/demo-seed.json' },
    authority: { type: 'string' },
    'graph-admin': { type: 'string' },
  },
});
if (values.authority === undefined || values['graph-admin'] === undefined) {
  console.error(
    'usage: peer:partner-center -- --authority https://127.0.0.1:P --graph-admin https://127.0.0.1:P/_admin [--port N] [--seed FILE]',
  );
  process.exit(2);
}

const peer = await startPartnerCenterPeer({
  ...(values.port === undefined ? {} : { port: Number(values.port) }),
  seed: values.seed,
  identity: { authorityHost: values.authority },
  graphAdminUrl: values['graph-admin'],
});
console.log(JSON.stringify({ baseUrl: peer.baseUrl, adminUrl: peer.adminUrl }));

stopOnSignal(() => peer.stop());
