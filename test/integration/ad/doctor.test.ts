import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig, type AgentConfig } from '../../../agent/config.js';
import { runDoctor, type DoctorCheck } from '../../../agent/doctor.js';
import { startSambaPeer, type SambaPeer } from '../../../dev/peers/samba/index.js';
import { generateSigningKeyPair } from '../../../shared/relay-protocol/index.js';
import { agentConfig, startRelayBus, writeAgentConfig, type RelayBus } from './bus.js';
import { adminClient, siteId, siteKeys } from './support.js';

/**
 * `agent doctor` against the Samba DC and the Service Bus peer: every check passes for the agent's
 * real configuration (the delegated service account), and each broken setting fails its own check
 * with a fix, leaving nothing behind in the directory.
 */
let dc: SambaPeer;
let bus: RelayBus;
const keys = siteKeys();

/** Runs the doctor on the test site's agent config, with some settings changed (parsed as a file would be). */
function doctor(
  options: {
    overrides?: Partial<AgentConfig> & { urls?: string[] };
    directory?: Record<string, unknown>;
    now?: () => Date;
  } = {},
): Promise<DoctorCheck[]> {
  const base = agentConfig(bus, dc, keys, options.overrides ?? {});
  const raw = { ...base, directory: { ...base.directory, ...options.directory } };
  return runDoctor(
    resolveAgentConfig(raw, process.cwd()),
    options.now === undefined ? {} : { now: options.now },
  );
}

function check(checks: DoctorCheck[], name: RegExp): DoctorCheck {
  const found = checks.find((c) => name.test(c.name));
  if (found === undefined)
    throw new Error(`no check ${String(name)} in ${checks.map((c) => c.name).join(', ')}`);
  return found;
}

/** The check failed, and its fix says what to do. */
function expectFailure(checks: DoctorCheck[], name: RegExp, fix: string): void {
  const found = check(checks, name);
  expect(found.ok, found.name).toBe(false);
  expect(found.fix).toContain(fix);
}

beforeAll(async () => {
  [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus([siteId])]);
});

afterAll(async () => {
  await Promise.all([dc?.stop(), bus?.stop()]);
});

describe('agent doctor', () => {
  it('passes every check for a correct configuration and leaves no probe object behind', async () => {
    const checks = await doctor();
    const failed = checks.filter((c) => !c.ok);
    expect(failed).toEqual([]);
    const names = checks.map((c) => c.name);
    for (const expected of [
      /^DNS /,
      /^TCP /,
      /^LDAPS certificate/,
      /^bind/,
      /^clock skew/,
      /^rights on /,
      /^read deleted/,
      /listen on agent-site-/,
      /send on agent-replies/,
    ])
      expect(
        names.some((n) => expected.test(n)),
        String(expected),
      ).toBe(true);
    const admin = await adminClient(dc);
    try {
      const { searchEntries } = await admin.search(dc.atriaOu, {
        scope: 'sub',
        filter: '(cn=atria-doctor-*)',
      });
      expect(searchEntries).toEqual([]);
    } finally {
      await admin.unbind();
    }
  });

  it('names the unreachable DC, the wrong password and the untrusted certificate, each with its fix', async () => {
    const tcp = await doctor({ overrides: { urls: ['ldaps://127.0.0.1:1', dc.url] } });
    expectFailure(tcp, /^TCP 127\.0\.0\.1:1$/, 'allow TCP 1');
    // The second DC still answers: bind and the rest go on against it.
    expect(check(tcp, /^bind/).ok).toBe(true);

    const password = await doctor({ directory: { password: 'not-the-password-1!' } });
    expectFailure(password, /^bind/, 'bindDn');

    // A CA that did not issue the DC's certificate.
    const dir = mkdtempSync(join(tmpdir(), 'atria-doctor-'));
    const otherCa = join(dir, 'other-ca.pem');
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      otherCa,
      '-days',
      '1',
      '-subj',
      '/CN=Not the DC CA',
    ]);
    const untrusted = await doctor({ directory: { caFile: otherCa } });
    expectFailure(untrusted, /^LDAPS certificate/, 'caFile');
  });

  it('fails the rights check on an OU the service account was not delegated, and a skewed clock', async () => {
    const outside = dc.baseDn.replace(/^/, 'CN=Users,');
    const checks = await doctor({
      directory: { allowedOus: [dc.atriaOu, outside] },
      now: () => new Date(Date.now() + 10 * 60_000),
    });
    expect(check(checks, new RegExp(`^rights on ${dc.atriaOu}$`)).ok).toBe(true);
    expectFailure(checks, /^rights on CN=Users,/, 'delegate to the service account');
    expectFailure(checks, /^clock skew/, 'sync');
  });

  it('fails the Service Bus checks for a key without rights on the site queue', async () => {
    const wrong = bus.agentConnectionString.replace(
      /SharedAccessKey=[^;]+/,
      `SharedAccessKey=${Buffer.alloc(32, 1).toString('base64')}`,
    );
    const checks = await doctor({ overrides: { serviceBus: { connectionString: wrong } } });
    expectFailure(checks, /listen on agent-site-/, 'Listen');
    expect(check(checks, /send on agent-replies/).ok).toBe(false);
  });

  it('runs as `npm run agent -- doctor --config …` and exits 1 with FAIL lines when a check fails', async () => {
    const file = writeAgentConfig(
      agentConfig(bus, dc, keys, {
        agentSigningKey: generateSigningKeyPair().privateKeyPem,
        urls: ['ldaps://127.0.0.1:1', dc.url],
      }),
    );
    const run = await promisify(execFile)('npx', ['tsx', 'agent/main.ts', 'doctor', '--config', file], {
      env: process.env,
    }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^FAIL {2}TCP 127\.0\.0\.1:1: /m);
    expect(run.stdout).toMatch(/^PASS {2}bind as the service account/m);
    expect(run.stdout).toMatch(/1 of \d+ checks failed/);
  });
});
