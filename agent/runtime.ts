import { hostname } from 'node:os';
import { createHash, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import {
  RetryMode,
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
  type ServiceBusSender,
} from '@azure/service-bus';
import { settlementGate } from '../shared/adapters/service-bus/index.js';
import { toAppError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { systemClock, type Clock } from '../shared/ports/clock.js';
import {
  openSecret,
  privateKeyFromPem,
  protocolVersion,
  publicKeyFromPem,
  replyMessageId,
  signAgentMessage,
  type CommandEnvelope,
  type Heartbeat,
  type Reply,
} from '../shared/relay-protocol/index.js';
import { withRetry } from '../shared/retry.js';
import type { ResolvedAgentConfig } from './config.js';
import { LdapExecutor } from './ldap/executor.js';
import { DcPool } from './ldap/pool.js';
import { FileNonceStore } from './nonce-store.js';
import { CommandVerifier } from './verifier.js';
import {
  contextFrom,
  inSpan,
  installContextManager,
  SpanKind,
  traceContextProperties,
} from '../shared/telemetry.js';

/**
 * What this agent understands (shared/relay-protocol/versions.ts gates commands on it). 0.2.0: replies
 * carry `commandIssuedAt`; key rotation (two site keys, `nextSignature`). 0.3.0: createUser sends the
 * password and the enabled flag in the add (3 LDAP round trips instead of 5); the protocol is unchanged.
 * 0.4.0: mS-DS-ConsistencyGuid is stamped only with `directory.stampConsistencyGuid` (2 round trips).
 */
export const agentVersion = '0.4.0';

export interface RunningAgent {
  /** Stops receiving, finishes in-flight commands (reply + complete), closes connections. */
  stop(): Promise<void>;
  /** Commands answered since start. */
  readonly answered: number;
  /** Sends a heartbeat now (also sent every heartbeatIntervalInMs). */
  heartbeat(): Promise<void>;
  /**
   * Takes the keys of a re-read config (SIGHUP in agent/main.ts) without a restart: the next keys of
   * a rotation, or the promoted ones after it. Commands in flight keep the keys they started with.
   */
  reloadKeys(config: Pick<ResolvedAgentConfig, KeyFields>): Promise<void>;
}

type KeyFields =
  | 'sitePrivateKeyPem'
  | 'agentSigningKeyPem'
  | 'nextSitePrivateKeyPem'
  | 'nextAgentSigningKeyPem'
  | 'previousSitePrivateKeyPem';

interface AgentKeys {
  /** Current first: sealed passwords are tried against each (the cloud seals to one of them). */
  site: KeyObject[];
  signing: KeyObject | undefined;
  nextSigning: KeyObject | undefined;
}

function keysOf(config: Pick<ResolvedAgentConfig, KeyFields>): AgentKeys {
  return {
    site: [config.sitePrivateKeyPem, config.nextSitePrivateKeyPem, config.previousSitePrivateKeyPem]
      .filter((pem): pem is string => pem !== undefined)
      .map((pem) => privateKeyFromPem(pem, 'x25519')),
    signing:
      config.agentSigningKeyPem === undefined
        ? undefined
        : privateKeyFromPem(config.agentSigningKeyPem, 'ed25519'),
    nextSigning:
      config.nextAgentSigningKeyPem === undefined
        ? undefined
        : privateKeyFromPem(config.nextAgentSigningKeyPem, 'ed25519'),
  };
}

export interface AgentDependencies {
  clock?: Clock;
  log: Logger;
  /** The version reported in heartbeats (default `agentVersion`): tests stand in for an older agent with it. */
  reportedVersion?: string;
}

/** Errors that mean "this message can never be valid": dead-letter, do not answer (it may be forged). */
const untrustedCodes = new Set(['BadSignature', 'Replayed']);

function bodyCommandId(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const envelope = (body as { envelope?: unknown }).envelope;
  if (typeof envelope !== 'object' || envelope === null) return undefined;
  const id = (envelope as { commandId?: unknown }).commandId;
  return typeof id === 'string' ? id : undefined;
}

/**
 * The relay agent: receives signed commands from its site queue (peek-lock, outbound AMQP only), verifies
 * them, executes them against the site's DCs and answers on the reply queue. A command is completed only
 * after its reply is sent, so a crash at any point leads to a redelivery, which the idempotent executor
 * turns into the same answer; the reply's deterministic messageId lets duplicate detection drop repeats.
 */
export async function startAgent(
  config: ResolvedAgentConfig,
  deps: AgentDependencies,
): Promise<RunningAgent> {
  // Spans nest across awaits (a no-op without a registered tracer provider).
  installContextManager();
  // Heartbeats name the agent, so the cloud shows each of a site's agents (host names are unique per site).
  const agentId = (config.agentId ?? hostname()).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'agent';
  const clock = deps.clock ?? systemClock;
  const log = deps.log.child({ siteId: config.siteId });
  let keys = keysOf(config);
  const version = deps.reportedVersion ?? agentVersion;
  const verifier = new CommandVerifier({
    siteId: config.siteId,
    trustedKeys: new Map(
      config.cloudSigningKeys.map((key) => [key.kid, publicKeyFromPem(key.publicKeyPem, 'ed25519')]),
    ),
    clock,
    nonces: new FileNonceStore(
      clock,
      config.stateDir === undefined ? undefined : join(config.stateDir, 'answered-nonces.log'),
    ),
  });
  const pool = new DcPool({
    urls: config.directory.urls,
    bindDn: config.directory.bindDn,
    password: config.directory.password,
    ...(config.directory.ca === undefined ? {} : { ca: config.directory.ca }),
    connectTimeoutInMs: config.directory.connectTimeoutInMs,
    operationTimeoutInMs: config.directory.operationTimeoutInMs,
    onFailover: (from, to, error) =>
      log.warn('domain controller failover', {
        from,
        to,
        error: error instanceof Error ? error.message : String(error),
      }),
  });
  const executor = new LdapExecutor(
    pool,
    {
      allowedOus: config.directory.allowedOus,
      allowedAttributes: config.directory.allowedAttributes,
      stampConsistencyGuid: config.directory.stampConsistencyGuid,
      ...(config.directory.upnSuffixes === undefined ? {} : { upnSuffixes: config.directory.upnSuffixes }),
    },
    {
      // During a rotation the cloud seals to the current key, then (finished) to the next one: try both.
      open: (sealed, binding) => {
        let failure: Error = new Error('no site key to open the password with');
        for (const key of keys.site) {
          try {
            return openSecret(sealed, key, binding);
          } catch (error) {
            failure = error instanceof Error ? error : new Error(String(error));
          }
        }
        throw failure;
      },
    },
  );

  // A SAS rule scoped to this site (Listen on its queue, Send on replies) is the agent's only credential.
  const reachable = await pool.probe();
  if (reachable.length === 0)
    log.warn('no domain controller reachable yet; commands wait for one', { dcs: config.directory.urls });

  const client = new ServiceBusClient(
    'connectionString' in config.serviceBus
      ? config.serviceBus.connectionString
      : `Endpoint=sb://${config.serviceBus.fullyQualifiedNamespace}/;SharedAccessKeyName=${config.serviceBus.sasKeyName};SharedAccessKey=${config.serviceBus.sasKey}`,
    // The SDK's default is a fixed 30 s between reconnect attempts; a site should be back within seconds.
    // A settlement on a connection that died must not hang: the message is simply redelivered.
    {
      retryOptions: {
        mode: RetryMode.Exponential,
        retryDelayInMs: 500,
        maxRetryDelayInMs: 15_000,
        maxRetries: 5,
        timeoutInMs: 10_000,
      },
    },
  );
  const receiver: ServiceBusReceiver = client.createReceiver(config.commandQueue, {
    receiveMode: 'peekLock',
  });
  const sender: ServiceBusSender = client.createSender(config.replyQueue);
  // rhea merges dispositions issued in the same tick (a complete next to an abandon could settle both
  // alike); the shared gate issues them one per event-loop turn.
  const gate = settlementGate(client);
  const settle = {
    completeMessage: (message: ServiceBusReceivedMessage) => gate(() => receiver.completeMessage(message)),
    abandonMessage: (message: ServiceBusReceivedMessage) => gate(() => receiver.abandonMessage(message)),
    deadLetterMessage: (
      message: ServiceBusReceivedMessage,
      options: { deadLetterReason: string; deadLetterErrorDescription: string },
    ) => gate(() => receiver.deadLetterMessage(message, options)),
  };

  let answered = 0;
  let lastError: string | undefined;
  let stopping = false;
  const inFlight = new Set<Promise<void>>();

  const sleepUnlessStopping = async (ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!stopping && Date.now() < deadline) await new Promise((r) => setTimeout(r, Math.min(100, ms)));
  };

  const send = async (body: Reply | Heartbeat, messageId: string, correlationId?: string): Promise<void> => {
    await sender.sendMessages({
      body: keys.signing === undefined ? body : signAgentMessage(body, keys.signing, keys.nextSigning),
      messageId,
      ...(correlationId === undefined ? {} : { correlationId }),
      contentType: 'application/json',
      // A reply continues the command's trace (the agent-replies worker's span is its child).
      applicationProperties: { ...traceContextProperties(), siteId: config.siteId, type: body.type },
    });
  };

  const answer = async (
    message: ServiceBusReceivedMessage,
    commandId: string,
    outcome: Reply,
  ): Promise<void> => {
    const correlationId = typeof message.correlationId === 'string' ? message.correlationId : commandId;
    // One reply id per send attempt (the cloud sends each retry under a new message id): duplicate
    // detection drops a redelivered attempt's second reply, never the answer to a later retry.
    const attempt =
      typeof message.messageId === 'string' ? message.messageId : String(message.messageId ?? '');
    await send(
      outcome,
      `${replyMessageId(commandId).slice(0, 80)}-${createHash('sha256').update(attempt).digest('hex').slice(0, 32)}`,
      correlationId,
    );
  };

  const handle = async (message: ServiceBusReceivedMessage): Promise<void> => {
    let body: unknown = message.body;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      try {
        body = JSON.parse(body.toString()) as unknown;
      } catch {
        body = undefined;
      }
    }
    let envelope: CommandEnvelope;
    try {
      envelope = verifier.verify(body);
    } catch (thrown) {
      const error = toAppError(thrown);
      const commandId = bodyCommandId(body);
      log.warn('command refused', {
        code: error.code,
        reason: error.message,
        messageId: String(message.messageId ?? ''),
      });
      if (untrustedCodes.has(error.code) || error.code === 'OutOfScope' || commandId === undefined) {
        // Forged, replayed or another site's: never act on it, never answer for it.
        await settle.deadLetterMessage(message, {
          deadLetterReason: error.code,
          deadLetterErrorDescription: error.message,
        });
        return;
      }
      // Signed by the cloud but expired/invalid: the cloud wants to know.
      await answer(message, commandId, {
        v: protocolVersion,
        type: 'reply',
        commandId,
        siteId: config.siteId,
        ok: false,
        error: { code: error.code, message: error.message, retryable: false },
      });
      await settle.completeMessage(message);
      return;
    }
    const started = Date.now();
    let reply: Reply;
    try {
      const result = await withRetry(() => executor.execute(envelope), {
        maxAttempts: config.localAttempts,
        baseDelayInMs: 250,
        maxDelayInMs: 5000,
      });
      reply = {
        v: protocolVersion,
        type: 'reply',
        commandId: envelope.commandId,
        siteId: config.siteId,
        commandType: envelope.command.type,
        commandIssuedAt: envelope.issuedAt,
        ok: true,
        result,
      };
    } catch (thrown) {
      const error = toAppError(thrown);
      lastError = `${error.code}: ${error.message}`;
      if (error.retryable && !stopping && (message.deliveryCount ?? 0) < config.answerAfterDeliveries) {
        log.warn('command failed transiently; abandoning for redelivery', {
          commandId: envelope.commandId,
          code: error.code,
          deliveryCount: message.deliveryCount ?? 0,
        });
        // Pace redeliveries (Service Bus redelivers an abandoned message at once); the SDK renews the lock.
        await sleepUnlessStopping(
          Math.min(30_000, config.redeliveryDelayInMs * ((message.deliveryCount ?? 0) + 1)),
        );
        await settle.abandonMessage(message);
        return;
      }
      if (error.retryable && stopping) {
        await settle.abandonMessage(message);
        return;
      }
      reply = {
        v: protocolVersion,
        type: 'reply',
        commandId: envelope.commandId,
        siteId: config.siteId,
        commandType: envelope.command.type,
        commandIssuedAt: envelope.issuedAt,
        ok: false,
        error: { code: error.code, message: error.message, retryable: error.retryable },
      };
    }
    await answer(message, envelope.commandId, reply);
    await settle.completeMessage(message);
    verifier.markDone(envelope);
    answered++;
    log.info('command answered', {
      commandId: envelope.commandId,
      type: envelope.command.type,
      ok: reply.ok,
      ...(reply.ok ? {} : { code: reply.error.code }),
      durationInMs: Date.now() - started,
    });
  };

  const subscription = receiver.subscribe(
    {
      processMessage: async (message) => {
        if (stopping) {
          await settle.abandonMessage(message).catch(() => undefined);
          return;
        }
        // A span per command, child of the cloud's send (`traceparent`); without an exporter it only
        // carries the caller's context on to the reply.
        const work = inSpan(
          'agent command',
          {
            kind: SpanKind.CONSUMER,
            parent: contextFrom(message.applicationProperties?.traceparent),
            attributes: { 'atria.site': config.siteId },
          },
          () => handle(message),
        ).catch(async (error: unknown) => {
          // Settlement or reply failed (e.g. bus connection lost): the lock expires and it is redelivered.
          lastError = error instanceof Error ? error.message : String(error);
          log.error('command handling failed', { error: lastError });
          await settle.abandonMessage(message).catch(() => undefined);
        });
        inFlight.add(work);
        try {
          await work;
        } finally {
          inFlight.delete(work);
        }
      },
      processError: async (args) => {
        lastError = args.error.message;
        log.warn('service bus error (the SDK reconnects)', {
          source: args.errorSource,
          error: args.error.message,
        });
        await Promise.resolve();
      },
    },
    { autoCompleteMessages: false, maxConcurrentCalls: config.maxConcurrentCommands },
  );

  const heartbeat = async (): Promise<void> => {
    const dcsReachable = await pool.probe();
    let queueLag: number;
    try {
      // A fresh receiver peeks from the head of the queue (Listen right only; capped at 100).
      const peeker = client.createReceiver(config.commandQueue);
      queueLag = (await peeker.peekMessages(100)).length;
      await peeker.close();
    } catch {
      queueLag = -1;
    }
    const beat: Heartbeat = {
      v: protocolVersion,
      type: 'heartbeat',
      siteId: config.siteId,
      agentId,
      agentVersion: version,
      dcsReachable,
      queueLag,
      ...(lastError === undefined ? {} : { lastError: lastError.slice(0, 2000) }),
      at: clock.now().toISOString(),
    };
    await send(beat, `hb-${config.siteId}-${beat.at}`);
  };
  const timer = setInterval(() => {
    heartbeat().catch((error: unknown) =>
      log.warn('heartbeat failed', { error: error instanceof Error ? error.message : String(error) }),
    );
  }, config.heartbeatIntervalInMs);
  timer.unref();
  void heartbeat().catch(() => undefined);
  log.info('agent started', {
    queue: config.commandQueue,
    dcs: config.directory.urls,
    version,
  });

  return {
    get answered() {
      return answered;
    },
    heartbeat,
    async reloadKeys(next) {
      keys = keysOf(next);
      log.info('agent keys reloaded', {
        siteKeys: keys.site.length,
        signsWithNextKey: keys.nextSigning !== undefined,
      });
      // Tell the cloud at once (a rotation can finish only after every agent signed with the next key).
      await heartbeat();
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      await subscription.close();
      // Finish what is in flight; past the grace period give up on it (it is redelivered, and idempotent).
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((resolve) => (grace = setTimeout(resolve, config.stopGraceInMs))),
      ]);
      clearTimeout(grace);
      await receiver.close();
      await sender.close();
      await client.close();
      await pool.close();
      log.info('agent stopped', { answered });
    },
  };
}
