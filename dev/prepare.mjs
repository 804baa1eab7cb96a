// Runs before every npm script that executes our code: proves Node 22 is the runtime and makes the
// local TLS material the HTTPS peers serve (MSAL and the Graph client refuse plain http).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const major = Number(process.versions.node.split('.')[0]);
if (major !== 22) {
  console.error(
    `atria-m365 needs Node 22 LTS, but this is Node ${process.versions.node} (${process.execPath}).\n` +
      'Run it through npm (npm install puts Node 22 from the "node" package in node_modules/.bin), or install Node 22.',
  );
  process.exit(1);
}

const dir = join(process.cwd(), '.local', 'tls');
const ca = join(dir, 'ca.pem');
const caKey = join(dir, 'ca-key.pem');
const cert = join(dir, 'server.pem');
const key = join(dir, 'server-key.pem');
if (!existsSync(cert) || !existsSync(ca)) {
  mkdirSync(dir, { recursive: true });
  const run = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey]);
  run([
    'req',
    '-x509',
    '-new',
    '-key',
    caKey,
    '-sha256',
    '-days',
    '3650',
    '-subj',
    '/CN=atria-m365 local peers CA',
    '-out',
    ca,
  ]);
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  const csr = join(dir, 'server.csr');
  run(['req', '-new', '-key', key, '-subj', '/CN=localhost', '-out', csr]);
  const ext = join(dir, 'server.ext');
  execFileSync('sh', [
    '-c',
    `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\nextendedKeyUsage=serverAuth\\n' > '${ext}'`,
  ]);
  run([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-days',
    '3650',
    '-sha256',
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
}
