import { readFileSync } from 'node:fs';
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

/** The parent pid of `pid` from /proc (Linux), or undefined when the process is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function isNpm(pid: number): boolean {
  try {
    // npm sets its process title, so its cmdline may be one string with spaces ("npm run …").
    const words = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/).slice(0, 2);
    return words.some((word) => /(^|\/)npm(-cli\.js)?$/.test(word));
  } catch {
    return false;
  }
}

// `npm run` starts `sh -c "… && tsx main.ts"`; a SIGTERM to npm ends npm and sh but not their
// children, which would keep the port. So we also stop when an ancestor up to npm is gone.
const chain: number[] = [];
for (let pid = process.ppid; pid > 1 && chain.length < 6; pid = parentOf(pid) ?? 0) chain.push(pid);
const outermostNpm = chain.findLastIndex(isNpm);
const ancestors = chain.slice(0, outermostNpm === -1 ? 1 : outermostNpm + 1);
setInterval(() => {
  if (ancestors.some((pid) => parentOf(pid) === undefined)) process.kill(process.pid, 'SIGTERM');
}, 250).unref();
