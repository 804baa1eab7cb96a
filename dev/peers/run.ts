import { peersFilePath, startAllPeers } from './run-all.js';
import { stopOnSignal } from './signals.js';

// npm run peers: every local peer in the foreground until Ctrl-C / SIGTERM.
const running = await startAllPeers();
console.log(`\nendpoints and credentials written to ${peersFilePath}\nCtrl-C stops every peer.`);
stopOnSignal(() => running.stop());
