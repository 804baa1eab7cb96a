import { peersFilePath, startAllPeers } from './run-all.js';

// npm run peers: every local peer in the foreground until Ctrl-C / SIGTERM.
const running = await startAllPeers();
console.log(`\nendpoints and credentials written to ${peersFilePath}\nCtrl-C stops every peer.`);
let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  void running.stop().then(() => process.exit(0));
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
