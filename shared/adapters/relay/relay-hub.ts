import { randomUUID, type KeyObject } from 'node:crypto';
import type {
  ServiceBusClient,
  ServiceBusReceiver,
  ServiceBusSender,
  ServiceBusReceivedMessage,
} from '@azure/service-bus';
import { AppError, type ErrorCode } from '../../errors.js';
import { settlementGate } from '../service-bus/index.js';
import type { Logger } from '../../logging.js';
import { systemClock, type Clock } from '../../ports/clock.js';
import type {
  NewOnPremUser,
  OnPremCallOptions,
  OnPremDirectory,
  OnPremGroupMember,
  OnPremRef,
  OnPremUser,
} from '../../ports/on-prem-directory.js';
import {
  agentMessageSchema,
  commandMessageId,
  commandQueueName,
  newEnvelope,
  publicKeyFromPem,
  replyQueueName,
  verifyAgentMessage,
  resultSchemas,
  sealSecret,
  signCommand,
  type Command,
  type CommandOf,
  type CommandResult,
  type CommandType,
  type DirectoryUser,
  type Heartbeat,
  type Reply,
} from '../../relay-protocol/index.js';
import { record } from '../../metrics.js';
import { traceContextProperties } from '../../telemetry.js';

export interface ReplyStore {
  save(reply: Reply): Promise<void>;
  find(siteId: string, commandId: string): Promise<Reply | undefined>;
}

export interface RelayHubOptions {
  /** Created once per process by the composition root. */
  client: ServiceBusClient;
  /** The cloud's Ed25519 signing key and its id (agents trust it by kid). */
  signer: { privateKey: KeyObject; kid: string };
  clock?: Clock;
  replyQueue?: string;
  /** How long a call waits for the agent by default (30 s). */
  defaultTimeoutInMs?: number;
  /** Lifetime stamped on commands (default 6 h: an agent that was down a while still runs them). */
  commandLifetimeInMs?: number;
  /** Replies no call waits for (the saga sent and moved on, or the waiter timed out). */
  /** true: the reply was consumed (it resumed a parked operation), so it need not be shared. */
  onUnclaimedReply?: (reply: Reply) => Promise<boolean | void>;
  /**
   * Replies shared between processes: with several Functions instances the reply to one instance's
   * call can reach another's reply trigger. Unclaimed replies are saved here, and a waiting call also
   * looks here (its own signature check applies), so it gets its answer wherever it landed.
   */
  replyStore?: ReplyStore;
  /** How often a waiting call looks in the reply store (default 500 ms). */
  replyPollIntervalInMs?: number;
  /** `replayed`: not newer than the agent's last heartbeat (see Sites.recordHeartbeat); it counts for nothing. */
  onHeartbeat?: (heartbeat: Heartbeat) => Promise<unknown>;
  /**
   * The agent's Ed25519 public key of a site as registered (PEM), looked up where this instance has not
   * used the site yet. A site without a registered key has no trusted agent: its messages are dropped.
   */
  agentKeyFor?: (siteId: string) => Promise<string | readonly string[] | undefined>;
  /** How long keys from `agentKeyFor` are reused (default 5 s); `forgetAgentKeys` drops them at once. */
  agentKeyCacheInMs?: number;
  /**
   * Asked before each `call`: throws when the site's agents cannot take the command yet (e.g. an
   * agent too old for its type), so nothing is sent that an agent would refuse.
   */
  assertSendable?: (siteId: string, type: CommandType) => Promise<void>;
  log?: Logger;
}

interface Waiter {
  siteId: string;
  resolve: (reply: Reply) => void;
}

/** Codes an agent may answer with; anything else becomes Upstream. */
const knownCodes = new Set<ErrorCode>([
  'Validation',
  'NotFound',
  'AlreadyExists',
  'Conflict',
  'PasswordPolicy',
  'InvalidCredentials',
  'Forbidden',
  'OutOfScope',
  'BadSignature',
  'Replayed',
  'Expired',
  'Unavailable',
  'Timeout',
  'Upstream',
  'Internal',
]);
const recentReplyTtlInMs = 10 * 60 * 1000;
const recentReplyLimit = 10_000;

/**
 * The cloud end of the relay: signs commands and sends them to `agent-site-<siteId>` (a message id per
 * send attempt; the command id is the agent's idempotency key), and runs one receiver on the
 * reply queue per process that hands each reply to the call waiting for its commandId. Replies nobody
 * waits for and heartbeats go to the callbacks (the Functions side resumes sagas and stores heartbeats).
 * Replies are remembered for 10 minutes so a call retried with the same commandId after a timeout gets
 * the answer without the agent running it again.
 */
export class RelayHub {
  private readonly clock: Clock;
  private readonly senders = new Map<string, ServiceBusSender>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly recent = new Map<string, { reply: Reply; at: number }>();
  private readonly agentKeys = new Map<string, { keys: KeyObject[]; atMs: number | undefined }>();
  private receiver: ServiceBusReceiver | undefined;
  private subscription: { close(): Promise<void> } | undefined;

  constructor(private readonly options: RelayHubOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** Starts the process's reply receiver (skip it when a Functions trigger feeds `handleAgentMessage`). */
  start(): void {
    if (this.receiver !== undefined) return;
    const receiver = this.options.client.createReceiver(this.options.replyQueue ?? replyQueueName, {
      receiveMode: 'peekLock',
    });
    this.receiver = receiver;
    // One disposition per event-loop turn: rhea would merge adjacent ones into the first one's outcome.
    const gate = settlementGate(this.options.client);
    this.subscription = receiver.subscribe(
      {
        processMessage: async (message: ServiceBusReceivedMessage) => {
          try {
            await this.handleAgentMessage(message.body);
          } catch (error) {
            // A failing callback (e.g. the saga store is down) gets the reply again later.
            this.options.log?.warn('agent message handling failed; abandoning', {
              error: error instanceof Error ? error.message : String(error),
            });
            await gate(() => receiver.abandonMessage(message));
            return;
          }
          await gate(() => receiver.completeMessage(message));
        },
        processError: async (args) => {
          this.options.log?.warn('relay reply receiver error (the SDK reconnects)', {
            error: args.error.message,
          });
          await Promise.resolve();
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: 16 },
    );
  }

  async close(): Promise<void> {
    await this.subscription?.close();
    await this.receiver?.close();
    this.receiver = undefined;
    await Promise.all([...this.senders.values()].map((sender) => sender.close()));
    this.senders.clear();
  }

  /** Dispatches one message of the reply queue. Unparseable messages are dropped (logged), not retried. */
  /** Whether a message may speak for its site: signed with the site's agent key when one is known. */
  private async trusted(message: Reply | Heartbeat): Promise<boolean> {
    const keys = await this.keysOf(message.siteId);
    return keys.some((key) => verifyAgentMessage(message, key));
  }

  /**
   * The site's trusted agent keys (two during a key rotation). Looked up through `agentKeyFor` and
   * reused briefly, so a key re-registered or retired on another instance counts within seconds;
   * without `agentKeyFor`, the keys `directoryFor` was given.
   */
  private async keysOf(siteId: string): Promise<KeyObject[]> {
    const cached = this.agentKeys.get(siteId);
    const lookup = this.options.agentKeyFor;
    const ttl = this.options.agentKeyCacheInMs ?? 5_000;
    const nowMs = this.clock.now().getTime();
    if (
      cached !== undefined &&
      (lookup === undefined || (cached.atMs !== undefined && nowMs - cached.atMs < ttl))
    )
      return cached.keys;
    if (lookup === undefined) return [];
    const found = await lookup(siteId);
    const pems = found === undefined ? [] : typeof found === 'string' ? [found] : [...found];
    const keys = pems.map((pem) => publicKeyFromPem(pem, 'ed25519'));
    this.agentKeys.set(siteId, { keys, atMs: nowMs });
    return keys;
  }

  /** Drops the cached agent keys of a site (its keys changed here: re-key, rotation start or finish). */
  forgetAgentKeys(siteId: string): void {
    this.agentKeys.delete(siteId);
  }

  /** A reply another process saved, if it is trustworthy and final (not a retryable failure). */
  private async storedReply(siteId: string, commandId: string): Promise<Reply | undefined> {
    const reply = await this.options.replyStore?.find(siteId, commandId);
    if (reply === undefined || reply.siteId !== siteId || !(await this.trusted(reply))) return undefined;
    return reply.ok || !reply.error.retryable ? reply : undefined;
  }

  async handleAgentMessage(
    body: unknown,
  ): Promise<'claimed' | 'unclaimed' | 'heartbeat' | 'replayedHeartbeat' | 'invalid'> {
    const parsed = agentMessageSchema.safeParse(body);
    if (!parsed.success) {
      this.options.log?.warn('invalid message on the reply queue', {
        issue: parsed.error.issues[0]?.message,
      });
      return 'invalid';
    }
    const message = parsed.data;
    if (!(await this.trusted(message))) {
      // Another site's agent can Send to the shared reply queue; only the site's own key speaks for it.
      this.options.log?.warn('agent message with a missing or wrong signature dropped', {
        siteId: message.siteId,
      });
      return 'invalid';
    }
    if (message.type === 'heartbeat') {
      const recorded = await this.options.onHeartbeat?.(message);
      if (recorded === 'replayed') return 'replayedHeartbeat';
      record.agentQueueDepth(message.siteId, message.queueLag);
      return 'heartbeat';
    }
    this.remember(message);
    if (message.commandIssuedAt !== undefined)
      record.agentRoundTrip(
        message.commandType ?? 'unknown',
        this.clock.now().getTime() - Date.parse(message.commandIssuedAt),
        message.ok,
      );
    const waiting = [...(this.waiters.get(message.commandId) ?? [])].filter(
      (waiter) => waiter.siteId === message.siteId,
    );
    if (waiting.length > 0) {
      for (const waiter of waiting) waiter.resolve(message);
      return 'claimed';
    }
    // A reply that resumed a parked operation is stored on that operation: sharing it is a wasted write.
    if ((await this.options.onUnclaimedReply?.(message)) === true) return 'unclaimed';
    await this.options.replyStore?.save(message);
    return 'unclaimed';
  }

  private remember(reply: Reply): void {
    const now = this.clock.now().getTime();
    this.recent.set(reply.commandId, { reply, at: now });
    if (this.recent.size > recentReplyLimit) {
      for (const [key, value] of this.recent) {
        if (this.recent.size <= recentReplyLimit * 0.9 && now - value.at < recentReplyTtlInMs) break;
        this.recent.delete(key);
      }
    }
  }

  private sender(siteId: string): ServiceBusSender {
    let sender = this.senders.get(siteId);
    if (sender === undefined) {
      sender = this.options.client.createSender(commandQueueName(siteId));
      this.senders.set(siteId, sender);
    }
    return sender;
  }

  /** Signs and sends a command without waiting (the reply arrives through the callbacks). */
  async send(siteId: string, commandId: string, command: Command): Promise<void> {
    const lifetimeInMs = this.options.commandLifetimeInMs ?? 6 * 60 * 60 * 1000;
    const envelope = newEnvelope({ commandId, siteId, command, now: this.clock.now(), lifetimeInMs });
    const signed = signCommand(envelope, this.options.signer);
    try {
      await this.sender(siteId).sendMessages({
        body: signed,
        // One message id per send attempt: a resend after an outage must not be dropped as a duplicate
        // (the command id stays the agent's idempotency key; its reply id derives from this one).
        messageId: `${commandMessageId(commandId).slice(0, 90)}.${randomUUID()}`,
        correlationId: commandId,
        contentType: 'application/json',
        timeToLive: lifetimeInMs,
        applicationProperties: { ...traceContextProperties(), siteId, type: command.type },
      });
    } catch (error) {
      throw new AppError(
        'Unavailable',
        `cannot send the command to site ${siteId}: ${(error as Error).message}`,
        {
          cause: error,
          retryable: true,
        },
      );
    }
  }

  /** Sends a command and waits for the agent's answer; maps it to a typed result or AppError. */
  async call<T extends CommandType>(
    siteId: string,
    command: CommandOf<T>,
    options: OnPremCallOptions,
  ): Promise<CommandResult<T>> {
    await this.options.assertSendable?.(siteId, command.type);
    const cached = this.recent.get(options.commandId);
    if (
      cached !== undefined &&
      cached.reply.siteId === siteId &&
      this.clock.now().getTime() - cached.at < recentReplyTtlInMs &&
      (cached.reply.ok || !cached.reply.error.retryable)
    ) {
      return this.outcome(command.type, cached.reply);
    }
    const stored = await this.storedReply(siteId, options.commandId);
    if (stored !== undefined) return this.outcome(command.type, stored);
    const timeoutInMs = options.timeoutInMs ?? this.options.defaultTimeoutInMs ?? 30_000;
    let waiter: Waiter | undefined;
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const replied = new Promise<Reply>((resolve, reject) => {
      waiter = { siteId, resolve };
      const set = this.waiters.get(options.commandId) ?? new Set<Waiter>();
      set.add(waiter);
      this.waiters.set(options.commandId, set);
      timer = setTimeout(
        () =>
          reject(
            new AppError(
              'Timeout',
              `site ${siteId} did not answer command ${options.commandId} within ${timeoutInMs} ms`,
              {
                retryable: true,
              },
            ),
          ),
        timeoutInMs,
      );
      if (this.options.replyStore !== undefined) {
        const found = waiter;
        poll = setInterval(() => {
          this.storedReply(siteId, options.commandId).then(
            (reply) => {
              if (reply !== undefined) found.resolve(reply);
            },
            () => undefined, // a failed look-up is retried at the next tick; the timeout still bounds the call
          );
        }, this.options.replyPollIntervalInMs ?? 500);
      }
      onAbort = () => reject(new AppError('Timeout', 'call aborted', { retryable: true }));
      options.abortSignal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await this.send(siteId, options.commandId, command);
      return this.outcome(command.type, await replied);
    } finally {
      clearTimeout(timer);
      clearInterval(poll);
      if (onAbort !== undefined) options.abortSignal?.removeEventListener('abort', onAbort);
      const set = this.waiters.get(options.commandId);
      if (set !== undefined && waiter !== undefined) {
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(options.commandId);
      }
    }
  }

  private outcome<T extends CommandType>(type: T, reply: Reply): CommandResult<T> {
    if (!reply.ok) {
      const code = knownCodes.has(reply.error.code as ErrorCode)
        ? (reply.error.code as ErrorCode)
        : 'Upstream';
      throw new AppError(code, `agent: ${reply.error.message}`, {
        retryable: reply.error.retryable,
        details: { siteId: reply.siteId, commandId: reply.commandId },
      });
    }
    const parsed = resultSchemas[type].safeParse(reply.result);
    if (!parsed.success) {
      throw new AppError('Upstream', `agent answered ${type} with an unexpected result`, {
        retryable: false,
      });
    }
    return parsed.data as CommandResult<T>;
  }

  /** The OnPremDirectory port for one site. */
  directoryFor(site: {
    siteId: string;
    sitePublicKeyPem: string;
    /** Required: replies for the site are trusted only when signed with it. */
    agentPublicKeyPem: string;
  }): OnPremDirectory {
    // Without a lookup these are the site's keys; with one, the lookup (which knows rotations) decides.
    if (this.options.agentKeyFor === undefined)
      this.agentKeys.set(site.siteId, {
        keys: [publicKeyFromPem(site.agentPublicKeyPem, 'ed25519')],
        atMs: undefined,
      });
    return new RelayOnPremDirectory(this, site.siteId, publicKeyFromPem(site.sitePublicKeyPem, 'x25519'));
  }
}

function toUser(user: DirectoryUser): OnPremUser {
  return user;
}

class RelayOnPremDirectory implements OnPremDirectory {
  constructor(
    private readonly hub: RelayHub,
    readonly siteId: string,
    private readonly sitePublicKey: KeyObject,
  ) {}

  private seal(password: string, commandId: string) {
    return sealSecret(password, this.sitePublicKey, { commandId, siteId: this.siteId });
  }

  async createUser(
    user: NewOnPremUser,
    options: OnPremCallOptions,
  ): Promise<{ user: OnPremUser; replayed: boolean }> {
    const { password, ...rest } = user;
    const result = await this.hub.call<'createUser'>(
      this.siteId,
      {
        type: 'createUser',
        ...rest,
        ...(password === undefined ? {} : { password: this.seal(password, options.commandId) }),
      },
      options,
    );
    return { user: toUser(result.user), replayed: result.replayed };
  }

  async updateAttributes(target: OnPremRef, set: Record<string, string | null>, options: OnPremCallOptions) {
    return toUser(
      (
        await this.hub.call<'updateAttributes'>(
          this.siteId,
          { type: 'updateAttributes', target, set },
          options,
        )
      ).user,
    );
  }

  async enable(target: OnPremRef, options: OnPremCallOptions) {
    return toUser((await this.hub.call<'enable'>(this.siteId, { type: 'enable', target }, options)).user);
  }

  async disable(target: OnPremRef, options: OnPremCallOptions) {
    return toUser((await this.hub.call<'disable'>(this.siteId, { type: 'disable', target }, options)).user);
  }

  async resetPassword(
    target: OnPremRef,
    password: string,
    options: OnPremCallOptions & { mustChangeAtNextLogon?: boolean },
  ): Promise<void> {
    await this.hub.call<'resetPassword'>(
      this.siteId,
      {
        type: 'resetPassword',
        target,
        password: this.seal(password, options.commandId),
        ...(options.mustChangeAtNextLogon === undefined
          ? {}
          : { mustChangeAtNextLogon: options.mustChangeAtNextLogon }),
      },
      options,
    );
  }

  async move(target: OnPremRef, newOu: string, options: OnPremCallOptions) {
    return toUser((await this.hub.call<'move'>(this.siteId, { type: 'move', target, newOu }, options)).user);
  }

  async delete(target: OnPremRef, options: OnPremCallOptions) {
    const result = await this.hub.call<'delete'>(this.siteId, { type: 'delete', target }, options);
    return { alreadyAbsent: result.alreadyAbsent };
  }

  async findUser(
    by: 'objectGuid' | 'userPrincipalName' | 'sAMAccountName',
    value: string,
    options: OnPremCallOptions,
  ) {
    const result = await this.hub.call<'findUser'>(this.siteId, { type: 'findUser', by, value }, options);
    return result.user === null ? null : toUser(result.user);
  }

  async listChanges(since: string | undefined, options: OnPremCallOptions & { pageSize?: number }) {
    return this.hub.call<'listChanges'>(
      this.siteId,
      {
        type: 'listChanges',
        ...(since === undefined ? {} : { since }),
        ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
      },
      options,
    );
  }

  async listGroupMembers(group: OnPremRef, options: OnPremCallOptions & { pageSize?: number }) {
    const members: OnPremGroupMember[] = [];
    let after: string | undefined;
    for (let page = 0; ; page++) {
      const result = await this.hub.call<'listGroupMembers'>(
        this.siteId,
        {
          type: 'listGroupMembers',
          group,
          ...(after === undefined ? {} : { after }),
          ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
        },
        { ...options, commandId: `${options.commandId.slice(0, 112)}.${page}` },
      );
      members.push(...result.members);
      if (result.next === undefined) return { group: result.group, members };
      after = result.next;
    }
  }
}
