import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveAgentConfig, type AgentConfigFile } from '../agent/config.js';
import { startAgent, type RunningAgent } from '../agent/runtime.js';
import { createLogger, type Logger } from '../shared/logging.js';

/**
 * A relay agent for a local site against a local DC, configured as a customer site would be (its own
 * queue, the cloud's public signing key, the site's private key) — for `npm start`, tests and the bench.
 */
export interface LocalAgentOptions {
  siteId: string;
  serviceBusConnectionString: string;
  dc: { url: string; bindDn: string; password: string; caFile: string; atriaOu: string };
  signing: { kid: string; publicKeyPem: string };
  sitePrivateKeyPem: string;
  /** Signs the agent's replies and heartbeats (the cloud checks them against the registered key). */
  agentSigningKeyPem?: string;
  allowedAttributes?: string[];
  heartbeatIntervalInMs?: number;
  maxConcurrentCommands?: number;
  log?: Logger;
}

export function startLocalAgent(options: LocalAgentOptions): Promise<RunningAgent> {
  return startAgent(
    resolveAgentConfig(
      {
        siteId: options.siteId,
        serviceBus: { connectionString: options.serviceBusConnectionString },
        directory: {
          urls: [options.dc.url],
          bindDn: options.dc.bindDn,
          password: options.dc.password,
          caFile: options.dc.caFile,
          allowedOus: [options.dc.atriaOu],
          allowedAttributes: options.allowedAttributes ?? ['department', 'title'],
        },
        cloudSigningKeys: [options.signing],
        sitePrivateKey: options.sitePrivateKeyPem,
        ...(options.agentSigningKeyPem === undefined ? {} : { agentSigningKey: options.agentSigningKeyPem }),
        ...(options.heartbeatIntervalInMs === undefined
          ? {}
          : { heartbeatIntervalInMs: options.heartbeatIntervalInMs }),
        ...(options.maxConcurrentCommands === undefined
          ? {}
          : { maxConcurrentCommands: options.maxConcurrentCommands }),
      },
      process.cwd(),
    ),
    { log: options.log ?? createLogger(() => undefined) },
  );
}

/**
 * Writes the site's agent configuration as an on-prem install would have it: `<dir>/config.json` with
 * the keys and the bus connection string in files beside it (mode 0600), so `npm run agent -- --config
 * <dir>/config.json` runs the same agent alone.
 */
export function writeLocalAgentConfig(dir: string, options: LocalAgentOptions): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secret = (name: string, value: string): { file: string } => {
    writeFileSync(join(dir, name), value, { mode: 0o600 });
    return { file: name };
  };
  const config: AgentConfigFile = {
    siteId: options.siteId,
    serviceBus: { connectionString: secret('servicebus.connection', options.serviceBusConnectionString) },
    directory: {
      urls: [options.dc.url],
      bindDn: options.dc.bindDn,
      password: secret('dc.password', options.dc.password),
      caFile: options.dc.caFile,
      allowedOus: [options.dc.atriaOu],
      allowedAttributes: options.allowedAttributes ?? ['department', 'title'],
    },
    cloudSigningKeys: [options.signing],
    sitePrivateKey: secret('site.key', options.sitePrivateKeyPem),
    ...(options.agentSigningKeyPem === undefined
      ? {}
      : { agentSigningKey: secret('agent.key', options.agentSigningKeyPem) }),
    stateDir: join(dir, 'state'),
    ...(options.heartbeatIntervalInMs === undefined
      ? {}
      : { heartbeatIntervalInMs: options.heartbeatIntervalInMs }),
  };
  const file = join(dir, 'config.json');
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return file;
}

export interface AgentProcess {
  readonly pid: number | undefined;
  /** SIGTERM, then wait for it to exit (it finishes the command in flight first). */
  stop(): Promise<void>;
}

/**
 * The agent as its own process (as on customer premises): `tsx agent/main.ts --config <file>`, a child
 * of the caller, so Ctrl-C in the terminal stops it too. Its output is prefixed with `[agent]`.
 */
export function spawnAgentProcess(
  configFile: string,
  /** Each output line instead of the prefixed copy on this process's stdout/stderr (e.g. to count). */
  onLine?: (line: string) => void,
): AgentProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--config', configFile], {
    cwd: process.cwd(),
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = (chunk: Buffer): string =>
    chunk
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => `[agent] ${line}\n`)
      .join('');
  const lines = (write: (text: string) => void) => {
    let partial = '';
    return (chunk: Buffer): void => {
      if (onLine === undefined) return void write(prefix(chunk));
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) if (line !== '') onLine(line);
    };
  };
  child.stdout.on(
    'data',
    lines((text) => process.stdout.write(text)),
  );
  child.stderr.on(
    'data',
    lines((text) => process.stderr.write(text)),
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
