import { SambaNotInstalledError, startSambaPeer } from './index.js';
import { stopOnSignal } from '../signals.js';

/** `npm run peer:samba`: starts a DC, prints its endpoints as one JSON line, stops on SIGINT/SIGTERM. */
try {
  const peer = await startSambaPeer();
  process.stdout.write(
    `${JSON.stringify({
      url: peer.url,
      bindDn: peer.bindDn,
      password: peer.password,
      baseDn: peer.baseDn,
      caFile: peer.caFile,
      realm: peer.realm,
      netbiosDomain: peer.netbiosDomain,
      usersOu: peer.usersOu,
      groupsOu: peer.groupsOu,
    })}\n`,
  );
  stopOnSignal(() => peer.stop());
} catch (error) {
  if (error instanceof SambaNotInstalledError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
