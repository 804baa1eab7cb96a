import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** TLS material made by dev/prepare.mjs; every HTTPS peer serves the same localhost certificate. */
export const tlsDir = join(process.cwd(), '.local', 'tls');
export const caFile = join(tlsDir, 'ca.pem');

export function serverTls(): { cert: Buffer; key: Buffer; ca: Buffer } {
  return {
    cert: readFileSync(join(tlsDir, 'server.pem')),
    key: readFileSync(join(tlsDir, 'server-key.pem')),
    ca: readFileSync(caFile),
  };
}
