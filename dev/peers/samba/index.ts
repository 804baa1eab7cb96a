import { execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { caFile as localCaFile, tlsDir } from '../../tls.js';
import { spawnPeer, stopChild } from '../child.js';

const run = promisify(execFile);

/**
 * A real Active Directory for tests: a Samba AD DC provisioned once into a cached template and copied to a
 * run directory per start.
 *
 * Samba hard-codes its LDAP ports (389/636/3268/3269; smb.conf has no `ldap port` option, only `krb5 port`
 * and `cldap port`), so concurrent DCs cannot differ by port. They differ by loopback address instead:
 * Linux routes all of 127.0.0.0/8 to `lo`, and `interfaces = 127.a.b.c/255.0.0.0` makes Samba bind to that
 * address without anyone adding it to the interface. Each start picks a free 127.x.y.z, so parallel test
 * files (and other checkouts on the same machine) never fight over 636.
 */
export interface SambaPeerOptions {
  /** Run directory (deleted on stop when we created it). Default: a fresh dir under .local/samba/runs. */
  dir?: string;
  /** Kerberos realm / DNS domain, e.g. ATRIA.TEST (default). */
  realm?: string;
  adminPassword?: string;
  /** Loopback address to bind (127.0.0.0/8). Default: a random one whose port 636 is free. */
  host?: string;
  /** Must be 636 when given: Samba cannot listen for LDAPS elsewhere (see the module comment). */
  ldapsPort?: number;
  /** Extra lines for the [global] section of smb.conf. */
  extraConfig?: string[];
}

export interface SambaPeer {
  /** ldaps://<host>:636 */
  url: string;
  host: string;
  bindDn: string;
  password: string;
  baseDn: string;
  /** CA that signed the DC's certificate (the repo's local peers CA). */
  caFile: string;
  realm: string;
  netbiosDomain: string;
  /** A plain user with full control delegated on OU=Atria only (what the agent should bind as). */
  serviceAccount: { bindDn: string; password: string };
  /** OU=Atria,<base>, with OU=Users and OU=Groups below it; groups CN=Staff and CN=Sales in OU=Groups. */
  atriaOu: string;
  usersOu: string;
  groupsOu: string;
  /** Back to the freshly provisioned domain (stop, copy the template, start): about a second. */
  reset(): Promise<void>;
  /** Stops the DC process only (the data stays); `start()` brings it back. For failover tests. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export class SambaNotInstalledError extends Error {
  constructor(missing: string) {
    super(`Samba AD DC is not installed (${missing} not found); run: sudo bash dev/peers/samba/install.sh`);
    this.name = 'SambaNotInstalledError';
  }
}

const defaultRealm = 'ATRIA.TEST';
// A development-only password for a throwaway DC (public by design, like Azurite's well-known key).
const defaultAdminPassword = 'Atria-Dev-Admin-1!';
// The relay's delegated service account (also development-only).
const serviceAccountName = 'svc-atria-relay';
const serviceAccountPassword = 'Atria-Dev-Relay-1!';
// Bump when the template layout (OUs, groups, smb.conf lines) changes so cached templates are rebuilt.
const templateVersion = 4;
const dirPlaceholder = '@@SAMBA_RUN_DIR@@';
const sbinDirs = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function findBinary(name: string): string | undefined {
  for (const dir of sbinDirs) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

function baseDnOf(realm: string): string {
  return realm
    .toLowerCase()
    .split('.')
    .map((label) => `DC=${label}`)
    .join(',');
}

function netbiosOf(realm: string): string {
  return (realm.split('.')[0] ?? realm).toUpperCase().slice(0, 15);
}

async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen(port, host, () => server.close(() => resolvePromise(true)));
  });
}

async function pickHost(): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const host = `127.${randomInt(1, 255)}.${randomInt(1, 255)}.${randomInt(2, 255)}`;
    if ((await portFree(host, 636)) && (await portFree(host, 389)) && (await portFree(host, 88))) return host;
  }
  throw new Error('no free loopback address for a Samba DC');
}

async function buildTemplate(templateDir: string, realm: string, adminPassword: string): Promise<void> {
  const samba = findBinary('samba-tool');
  if (samba === undefined) throw new SambaNotInstalledError('samba-tool');
  // Build into a private temp dir and rename into place: concurrent first runs each build, one wins.
  const staging = `${templateDir}.build-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const opt = (line: string): string => `--option=${line}`;
  try {
    await run(
      samba,
      [
        'domain',
        'provision',
        `--targetdir=${staging}`,
        `--realm=${realm}`,
        `--domain=${netbiosOf(realm)}`,
        '--server-role=dc',
        '--dns-backend=SAMBA_INTERNAL',
        '--use-rfc2307',
        `--adminpass=${adminPassword}`,
        '--host-name=dc1',
        '--host-ip=127.0.0.1',
        opt('interfaces = 127.0.0.1/255.0.0.0'),
        opt('bind interfaces only = yes'),
        opt(`log file = ${staging}/log.%m`),
        opt(`pid directory = ${staging}/run`),
        opt(`state directory = ${staging}/state`),
        opt(`cache directory = ${staging}/cache`),
        opt(`binddns dir = ${staging}/bind-dns`),
        opt(`winbindd socket directory = ${staging}/winbindd`),
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    // Only the services tests need: ldap + cldap + kdc avoid 53/135/139/445, and one failing service
    // would stop the whole daemon.
    await addLayout(staging, realm);
    await addServiceAccount(staging, realm);
    const confPath = join(staging, 'etc', 'smb.conf');
    const conf = await readFile(confPath, 'utf8');
    // The run directory replaces the placeholder on every copy (smb.conf is the only file naming a path).
    await writeFile(
      confPath,
      conf
        .split(staging)
        .join(dirPlaceholder)
        .replace(/^\s*server services = .*$/m, '')
        .replace('[global]', '[global]\n\tserver services = ldap, cldap, kdc'),
    );
    try {
      await rename(staging, templateDir);
    } catch {
      // Another process won the race; its template is equivalent.
      await rm(staging, { recursive: true, force: true });
    }
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/** The OU layout customers' users go into, written offline with ldbadd (no daemon needed). */
async function addLayout(dir: string, realm: string): Promise<void> {
  const ldbadd = findBinary('ldbadd');
  if (ldbadd === undefined) throw new SambaNotInstalledError('ldbadd');
  const base = baseDnOf(realm);
  const ldif = [
    `dn: OU=Atria,${base}\nobjectClass: organizationalUnit\nou: Atria\ndescription: Users and groups managed by Atria\n`,
    `dn: OU=Users,OU=Atria,${base}\nobjectClass: organizationalUnit\nou: Users\n`,
    `dn: OU=Groups,OU=Atria,${base}\nobjectClass: organizationalUnit\nou: Groups\n`,
    `dn: CN=Staff,OU=Groups,OU=Atria,${base}\nobjectClass: group\nsAMAccountName: Staff\n`,
    `dn: CN=Sales,OU=Groups,OU=Atria,${base}\nobjectClass: group\nsAMAccountName: Sales\n`,
    `dn: OU=Outside,${base}\nobjectClass: organizationalUnit\nou: Outside\ndescription: Not managed by Atria (scope tests)\n`,
  ].join('\n');
  const ldifPath = join(dir, 'layout.ldif');
  await writeFile(ldifPath, ldif);
  await run(ldbadd, ['-H', join(dir, 'private', 'sam.ldb'), ldifPath]);
  await rm(ldifPath);
}

/**
 * The agent's least-privilege account, as agent/README.md tells customers to set it up: a plain user
 * (no admin group) with full control delegated on OU=Atria and its descendants only.
 */
async function addServiceAccount(dir: string, realm: string): Promise<void> {
  const tool = findBinary('samba-tool');
  const ldbsearch = findBinary('ldbsearch');
  if (tool === undefined || ldbsearch === undefined) throw new SambaNotInstalledError('samba-tool/ldbsearch');
  const url = `ldb://${join(dir, 'private', 'sam.ldb')}`;
  await run(tool, ['user', 'create', serviceAccountName, serviceAccountPassword, '-H', url]);
  const { stdout } = await run(ldbsearch, ['-H', url, `(sAMAccountName=${serviceAccountName})`, 'objectSid']);
  const sid = /^objectSid: (S-[\d-]+)$/m.exec(stdout)?.[1];
  if (sid === undefined) throw new Error(`no objectSid for ${serviceAccountName}:\n${stdout}`);
  // GA = generic all, CI = inherited by every object below the OU.
  await run(tool, [
    'dsacl',
    'set',
    '-H',
    url,
    `--objectdn=OU=Atria,${baseDnOf(realm)}`,
    `--sddl=(A;CI;GA;;;${sid})`,
  ]);
}

/** A certificate for the DC's loopback address, signed by the repo's local peers CA (dev/prepare.mjs). */
async function issueCertificate(dir: string, host: string): Promise<void> {
  const caKey = join(tlsDir, 'ca-key.pem');
  if (!existsSync(caKey) || !existsSync(localCaFile)) {
    throw new Error(`local CA missing in ${tlsDir}: run node dev/prepare.mjs first`);
  }
  const tls = join(dir, 'private', 'tls');
  await rm(tls, { recursive: true, force: true });
  await mkdir(tls, { recursive: true });
  const key = join(tls, 'key.pem');
  const csr = join(tls, 'req.csr');
  const ext = join(tls, 'ext.cnf');
  await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  await chmod(key, 0o600);
  await run('openssl', ['req', '-new', '-key', key, '-subj', '/CN=dc1', '-out', csr]);
  await writeFile(ext, `subjectAltName=IP:${host},DNS:dc1,DNS:localhost\nextendedKeyUsage=serverAuth\n`);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    localCaFile,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-CAserial',
    join(tls, 'ca.srl'),
    '-days',
    '30',
    '-sha256',
    '-extfile',
    ext,
    '-out',
    join(tls, 'cert.pem'),
  ]);
}

async function canBind(url: string, bindDn: string, password: string, caFile: string): Promise<boolean> {
  const client = new Client({
    url,
    connectTimeout: 1000,
    timeout: 2000,
    tlsOptions: { ca: [await readFile(caFile)] },
  });
  try {
    await client.bind(bindDn, password);
    return true;
  } catch {
    return false;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Run dirs are named <pid>-<random>; those of processes that died without stop() are removed. */
async function removeOrphanRuns(runsDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(runsDir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') {
        await rm(join(runsDir, name), { recursive: true, force: true });
      }
    }
  }
}

/** Provisions (once, cached) and starts a Samba AD DC; see SambaPeer. */
export async function startSambaPeer(options: SambaPeerOptions = {}): Promise<SambaPeer> {
  const sambaBinary = findBinary('samba');
  if (sambaBinary === undefined || findBinary('samba-tool') === undefined)
    throw new SambaNotInstalledError('samba');
  if (options.ldapsPort !== undefined && options.ldapsPort !== 636) {
    throw new Error(
      'Samba always listens for LDAPS on 636; choose a loopback address (host) instead of a port',
    );
  }
  const realm = (options.realm ?? defaultRealm).toUpperCase();
  const adminPassword = options.adminPassword ?? defaultAdminPassword;
  const root = resolve('.local', 'samba');
  const fingerprint = createHash('sha256')
    .update(`${templateVersion}\0${realm}\0${adminPassword}`)
    .digest('hex')
    .slice(0, 12);
  const templateDir = join(root, `template-${fingerprint}`);
  if (!existsSync(templateDir)) await buildTemplate(templateDir, realm, adminPassword);

  await removeOrphanRuns(join(root, 'runs'));
  const ownsDir = options.dir === undefined;
  const dir = resolve(options.dir ?? join(root, 'runs', `${process.pid}-${randomBytes(4).toString('hex')}`));
  const baseDn = baseDnOf(realm);
  const bindDn = `CN=Administrator,CN=Users,${baseDn}`;
  let host = options.host ?? (await pickHost());
  let child: ChildProcess | undefined;
  let output = '';

  const layDown = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await cp(templateDir, dir, { recursive: true });
    await issueCertificate(dir, host);
    const confPath = join(dir, 'etc', 'smb.conf');
    const conf = (await readFile(confPath, 'utf8')).split(dirPlaceholder).join(dir);
    const extra = [
      `\tinterfaces = ${host}/255.0.0.0`,
      '\ttls enabled = yes',
      `\ttls keyfile = ${dir}/private/tls/key.pem`,
      `\ttls certfile = ${dir}/private/tls/cert.pem`,
      `\ttls cafile = ${localCaFile}`,
      ...(options.extraConfig ?? []).map((line) => `\t${line}`),
    ].join('\n');
    await writeFile(
      confPath,
      conf.replace(/^\s*interfaces = .*$/m, '').replace('[global]', `[global]\n${extra}`),
    );
  };

  const launch = async (): Promise<void> => {
    output = '';
    // -i: interactive, so Samba exits when our end of its stdin closes (we die → the DC dies, no orphan).
    const started = spawnPeer(
      sambaBinary,
      ['-s', join(dir, 'etc', 'smb.conf'), '-M', 'single', '-i', '--debuglevel=0'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    child = started;
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-8000);
    };
    started.stdout?.on('data', collect);
    started.stderr?.on('data', collect);
    const url = `ldaps://${host}:636`;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (started.exitCode !== null || started.signalCode !== null) {
        throw new Error(
          `samba exited (${started.exitCode ?? started.signalCode}) while starting:\n${output}`,
        );
      }
      if (await canBind(url, bindDn, adminPassword, localCaFile)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopChild(started);
    throw new Error(`samba did not accept an LDAPS bind on ${url} within 30 s:\n${output}`);
  };

  const halt = async (): Promise<void> => {
    if (child === undefined) return;
    const current = child;
    child = undefined;
    current.stdin?.end();
    await stopChild(current, 5000);
  };

  for (let attempt = 1; ; attempt++) {
    await layDown();
    try {
      await launch();
      break;
    } catch (error) {
      // Another process may have taken the address between our check and Samba's bind.
      if (options.host !== undefined || attempt >= 3) throw error;
      host = await pickHost();
    }
  }

  const peer: SambaPeer = {
    get url() {
      return `ldaps://${host}:636`;
    },
    get host() {
      return host;
    },
    bindDn,
    password: adminPassword,
    serviceAccount: {
      bindDn: `CN=${serviceAccountName},CN=Users,${baseDn}`,
      password: serviceAccountPassword,
    },
    baseDn,
    caFile: localCaFile,
    realm,
    netbiosDomain: netbiosOf(realm),
    atriaOu: `OU=Atria,${baseDn}`,
    usersOu: `OU=Users,OU=Atria,${baseDn}`,
    groupsOu: `OU=Groups,OU=Atria,${baseDn}`,
    async reset() {
      await halt();
      await layDown();
      await launch();
    },
    pause: halt,
    async resume() {
      if (child === undefined) await launch();
    },
    async stop() {
      await halt();
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
  };
  return peer;
}
