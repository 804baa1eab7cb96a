import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ServiceBusClient } from '@azure/service-bus';
import { Attribute, Change, Client, Control } from 'ldapts';
import type { ResolvedAgentConfig } from './config.js';

/**
 * `npm run agent -- doctor --config …`: what an installer checks by hand, each with the fix.
 * Nothing here changes the directory except one probe object per allowed OU, created, modified and
 * deleted again (named atria-doctor-<random>, disabled, no password).
 */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** Kerberos' default tolerance (MaxClockSkew, 5 minutes); SAS tokens and command expiry need less. */
const maxSkewInMs = 5 * 60_000;
/** AD's LDAP_SERVER_SHOW_DELETED_OID: return tombstones in CN=Deleted Objects ([MS-ADTS] 3.1.1.3.4.1.14). */
const showDeletedOid = '1.2.840.113556.1.4.417';

function hostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: parsed.port === '' ? 636 : Number(parsed.port) };
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

function tcp(host: string, port: number, timeoutInMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, timeout: timeoutInMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutInMs} ms`));
    });
    socket.once('error', reject);
  });
}

/** The TLS handshake on its own, so an untrusted certificate is told apart from a refused bind. */
function tlsTrust(host: string, port: number, ca: Buffer | undefined, timeoutInMs: number) {
  return new Promise<{ authorized: boolean; reason?: string; subject?: string; validTo?: string }>(
    (resolve, reject) => {
      const socket = tlsConnect({
        host,
        port,
        servername: host,
        ...(ca === undefined ? {} : { ca }),
        rejectUnauthorized: false,
        timeout: timeoutInMs,
      });
      socket.once('secureConnect', () => {
        const cert = socket.getPeerCertificate();
        const reason = socket.authorizationError === null ? undefined : String(socket.authorizationError);
        socket.destroy();
        resolve({
          authorized: socket.authorized,
          ...(reason === undefined ? {} : { reason }),
          ...(cert.subject?.CN === undefined ? {} : { subject: String(cert.subject.CN) }),
          ...(cert.valid_to === undefined ? {} : { validTo: cert.valid_to }),
        });
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(new Error(`no TLS handshake within ${timeoutInMs} ms`));
      });
      socket.once('error', reject);
    },
  );
}

/** AD's rootDSE `currentTime` is GeneralizedTime, e.g. 20261201103000.0Z. */
function parseGeneralizedTime(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})/.exec(value);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s));
}

function firstValue(value: unknown): string | undefined {
  if (Array.isArray(value)) return firstValue(value[0]);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return typeof value === 'string' ? value : undefined;
}

async function directoryChecks(config: ResolvedAgentConfig, now: () => Date): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const { directory } = config;
  const timeout = directory.connectTimeoutInMs;
  let reachable: string | undefined;
  for (const url of directory.urls) {
    const { host, port } = hostPort(url);
    try {
      const addresses = await lookup(host, { all: true });
      checks.push({ name: `DNS ${host}`, ok: true, detail: addresses.map((a) => a.address).join(', ') });
    } catch (error) {
      checks.push({
        name: `DNS ${host}`,
        ok: false,
        detail: messageOf(error),
        fix: `make ${host} resolvable from this machine (the site's DNS server), or use the DC's address in directory.urls`,
      });
      continue;
    }
    try {
      await tcp(host, port, timeout);
      checks.push({ name: `TCP ${host}:${port}`, ok: true, detail: 'connected' });
    } catch (error) {
      checks.push({
        name: `TCP ${host}:${port}`,
        ok: false,
        detail: messageOf(error),
        fix: `allow TCP ${port} (LDAPS) from this machine to ${host}; check that the DC has a certificate so it listens on ${port}`,
      });
      continue;
    }
    try {
      const trust = await tlsTrust(host, port, directory.ca, timeout);
      checks.push(
        trust.authorized
          ? {
              name: `LDAPS certificate ${host}`,
              ok: true,
              detail: `trusted (${trust.subject ?? 'no CN'}, valid to ${trust.validTo ?? '?'})`,
            }
          : {
              name: `LDAPS certificate ${host}`,
              ok: false,
              detail: `not trusted: ${trust.reason ?? 'unknown reason'} (${trust.subject ?? 'no CN'})`,
              fix:
                trust.reason === 'ERR_TLS_CERT_ALTNAME_INVALID'
                  ? `the DC certificate does not name ${host}: use the name it was issued for in directory.urls`
                  : 'set directory.caFile to the PEM of the CA that issued the DC certificates (export it from the issuing CA, Base-64)',
            },
      );
      if (trust.authorized) reachable ??= url;
    } catch (error) {
      checks.push({
        name: `LDAPS certificate ${host}`,
        ok: false,
        detail: messageOf(error),
        fix: 'the DC accepted TCP but not TLS: check its LDAPS certificate (Personal store of the DC, Server Authentication EKU)',
      });
    }
  }
  if (reachable === undefined) return checks;

  const client = new Client({
    url: reachable,
    connectTimeout: timeout,
    timeout: directory.operationTimeoutInMs,
    tlsOptions: {
      ...(directory.ca === undefined ? {} : { ca: directory.ca }),
      servername: hostPort(reachable).host,
    },
  });
  try {
    try {
      await client.bind(directory.bindDn, directory.password);
      checks.push({ name: 'bind as the service account', ok: true, detail: directory.bindDn });
    } catch (error) {
      checks.push({
        name: 'bind as the service account',
        ok: false,
        detail: messageOf(error),
        fix: 'check directory.bindDn and the password; the account must be enabled, not locked out, its password not expired',
      });
      return checks;
    }

    let defaultNamingContext: string | undefined;
    try {
      const { searchEntries } = await client.search('', {
        scope: 'base',
        filter: '(objectClass=*)',
        attributes: ['currentTime', 'defaultNamingContext'],
      });
      const root = searchEntries[0];
      defaultNamingContext = firstValue(root?.defaultNamingContext);
      const dcTime = parseGeneralizedTime(firstValue(root?.currentTime) ?? '');
      if (dcTime === undefined) throw new Error('the DC did not report currentTime');
      const skew = now().getTime() - dcTime.getTime();
      checks.push(
        Math.abs(skew) <= maxSkewInMs
          ? { name: 'clock skew', ok: true, detail: `${Math.round(skew / 1000)} s against the DC` }
          : {
              name: 'clock skew',
              ok: false,
              detail: `${Math.round(skew / 1000)} s against the DC (more than 5 minutes)`,
              fix: 'sync this machine with the domain time (w32tm /resync on Windows, chrony or systemd-timesyncd pointed at the DCs on Linux)',
            },
      );
    } catch (error) {
      checks.push({
        name: 'clock skew',
        ok: false,
        detail: messageOf(error),
        fix: 'the rootDSE must be readable after bind',
      });
    }

    for (const ou of directory.allowedOus) checks.push(await probeOu(client, ou));

    if (defaultNamingContext !== undefined) {
      const deleted = `CN=Deleted Objects,${defaultNamingContext}`;
      try {
        await client.search(
          deleted,
          { scope: 'one', filter: '(isDeleted=TRUE)', attributes: ['objectGUID'], sizeLimit: 1 },
          new Control(showDeletedOid, { critical: true }),
        );
        checks.push({ name: 'read deleted objects', ok: true, detail: deleted });
      } catch (error) {
        const detail = messageOf(error);
        // A size limit hit means entries were readable.
        if (/size ?limit/i.test(detail))
          checks.push({ name: 'read deleted objects', ok: true, detail: deleted });
        else
          checks.push({
            name: 'read deleted objects',
            ok: false,
            detail,
            fix: `as a domain admin: dsacls "${deleted}" /takeownership, then dsacls "${deleted}" /g <DOMAIN>\\<service account>:LCRP (change tracking sees deletions only with it)`,
          });
      }
    }
  } finally {
    await client.unbind().catch(() => undefined);
  }
  return checks;
}

/** Create, modify and delete a disabled user in the OU: the rights the agent's commands need. */
async function probeOu(client: Client, ou: string): Promise<DoctorCheck> {
  const suffix = randomBytes(4).toString('hex');
  const dn = `CN=atria-doctor-${suffix},${ou}`;
  const name = `rights on ${ou}`;
  const fix = (what: string): string =>
    `delegate to the service account on ${ou} (Delegation of Control wizard, or dsacls): ${what}`;
  try {
    await client.add(dn, {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: `atrdoc${suffix}`,
      // 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE: no password needed, nobody can sign in with it.
      userAccountControl: '514',
      description: 'atria-m365 agent doctor probe; safe to delete',
    });
  } catch (error) {
    return { name, ok: false, detail: `create: ${messageOf(error)}`, fix: fix('Create/Delete User objects') };
  }
  try {
    await client.modify(
      dn,
      new Change({
        operation: 'replace',
        modification: new Attribute({ type: 'description', values: ['atria-m365 doctor: modified'] }),
      }),
    );
  } catch (error) {
    await client.del(dn).catch(() => undefined);
    return {
      name,
      ok: false,
      detail: `modify: ${messageOf(error)}`,
      fix: fix('Read/Write all properties of User objects, Reset Password'),
    };
  }
  try {
    await client.del(dn);
  } catch (error) {
    return {
      name,
      ok: false,
      detail: `delete: ${messageOf(error)} (the probe ${dn} is left behind: delete it by hand)`,
      fix: fix('Delete User objects'),
    };
  }
  return { name, ok: true, detail: 'created, modified and deleted a probe user' };
}

async function serviceBusChecks(config: ResolvedAgentConfig): Promise<DoctorCheck[]> {
  const sb = config.serviceBus;
  const client =
    'connectionString' in sb
      ? new ServiceBusClient(sb.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } })
      : new ServiceBusClient(
          `Endpoint=sb://${sb.fullyQualifiedNamespace}/;SharedAccessKeyName=${sb.sasKeyName};SharedAccessKey=${sb.sasKey}`,
          { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } },
        );
  const checks: DoctorCheck[] = [];
  try {
    const receiver = client.createReceiver(config.commandQueue);
    try {
      // Peeking reads nothing away and needs the Listen right, as receiving does.
      await receiver.peekMessages(1);
      checks.push({ name: `Service Bus listen on ${config.commandQueue}`, ok: true, detail: 'reachable' });
    } catch (error) {
      checks.push({
        name: `Service Bus listen on ${config.commandQueue}`,
        ok: false,
        detail: messageOf(error),
        fix: 'allow outbound TCP 5671 (AMQP) or 443 to the namespace; the SAS rule must have Listen on this queue (site-<siteId>-listen)',
      });
    } finally {
      await receiver.close().catch(() => undefined);
    }
    const sender = client.createSender(config.replyQueue);
    try {
      // Opening the sender link is authorised for Send without putting a message on the queue.
      await sender.createMessageBatch();
      checks.push({ name: `Service Bus send on ${config.replyQueue}`, ok: true, detail: 'authorised' });
    } catch (error) {
      checks.push({
        name: `Service Bus send on ${config.replyQueue}`,
        ok: false,
        detail: messageOf(error),
        fix: 'the SAS rule must have Send on the reply queue (site-<siteId>-send on agent-replies)',
      });
    } finally {
      await sender.close().catch(() => undefined);
    }
  } finally {
    await client.close().catch(() => undefined);
  }
  return checks;
}

export async function runDoctor(
  config: ResolvedAgentConfig,
  options: { now?: () => Date } = {},
): Promise<DoctorCheck[]> {
  const now = options.now ?? (() => new Date());
  return [...(await directoryChecks(config, now)), ...(await serviceBusChecks(config))];
}

export function formatDoctor(checks: readonly DoctorCheck[]): string {
  const lines = checks.map(
    (c) =>
      `${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}${c.ok || c.fix === undefined ? '' : `\n      fix: ${c.fix}`}`,
  );
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(
    failed === 0 ? `all ${checks.length} checks passed` : `${failed} of ${checks.length} checks failed`,
  );
  return lines.join('\n');
}
