import { SambaNotInstalledError, startSambaPeer } from './index.js';

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
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    void peer.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
} catch (error) {
  if (error instanceof SambaNotInstalledError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
