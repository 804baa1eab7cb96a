import { resolveAgentConfig } from '../agent/config.js';
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
