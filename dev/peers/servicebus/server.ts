import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Server, Socket } from 'node:net';
import rhea from 'rhea';
import type { Connection, Delivery, EventContext, Message, Receiver, Sender } from 'rhea';
import { z } from 'zod';
import { AuthError, resourcePath, verifySasToken, type GrantedClaim } from './auth.js';
import { BrokerError, type Broker, type Consumer, type MessageEntity, type StoredMessage } from './broker.js';
import type { AccessRight, SasRule } from './config.js';

/**
 * The AMQP 1.0 front of the peer, shaped by what `@azure/service-bus` 7.9 does on the wire (see
 * /work/shared/LOCAL-PEERS.md): SASL ANONYMOUS, a CBS put-token per link, entity links, and the
 * `$management` request/response operations.
 */

const { types, message: amqpMessage, string_to_uuid: stringToUuid, uuid_to_string: uuidToString } = rhea;

/** rhea's frame constructors (not in its typings); used to write dispositions one by one. */
const frames = createRequire(import.meta.url)('rhea/lib/frames.js') as {
  disposition(fields: {
    role: boolean;
    first: number;
    last: number;
    settled: boolean;
    state: unknown;
  }): unknown;
};

const batchMessageFormat = 0x80013700;
const maxMessageSizeInBytes = 256 * 1024; // Standard tier
const maxUint = 0xffff_ffff;

/** rhea internals we rely on, typed narrowly (its typings leave them out). */
interface OutgoingWindow {
  next_pending_delivery: number;
  next_delivery_id: number;
  available(): number;
  transfer_window(): number;
}
interface RheaSenderInternals {
  credit: number;
  _draining?: boolean;
  session: { outgoing: OutgoingWindow };
  local: { attach: { snd_settle_mode?: number; rcv_settle_mode?: number; max_message_size?: number } };
  remote: {
    attach?: { snd_settle_mode?: number; rcv_settle_mode?: number; source?: Terminus; target?: Terminus };
  };
}
interface RheaReceiverInternals {
  local: { attach: { max_message_size?: number; rcv_settle_mode?: number } };
  remote: { attach?: { source?: Terminus; target?: Terminus } };
}
interface Terminus {
  address?: string;
  filter?: Record<string, unknown>;
}
interface DeliveryInternals {
  id: number;
  tag: Buffer | string;
  remote_settled: boolean;
  settled: boolean;
  remote_state?: {
    error?: { condition?: string; description?: string; info?: Record<string, unknown> };
    undeliverable_here?: boolean;
    message_annotations?: Record<string, unknown>;
  };
  update(settled: boolean, state?: unknown): void;
}

interface Outcomes {
  accepted(): { described(): unknown };
  released(): { described(): unknown };
  modified(fields: { undeliverable_here: boolean }): { described(): unknown };
  rejected(fields: { error?: { condition: string; description: string } }): { described(): unknown };
}
const decodeMessage = (bytes: Buffer): Message => amqpMessage.decode(bytes) as unknown as Message;

const senderInternals = (sender: Sender): RheaSenderInternals => sender as unknown as RheaSenderInternals;
const receiverInternals = (receiver: Receiver): RheaReceiverInternals =>
  receiver as unknown as RheaReceiverInternals;
const deliveryInternals = (delivery: Delivery): DeliveryInternals => delivery;

/** The first 8 bytes of a lock token travel in .NET Guid byte order in the delivery tag. */
function reorderGuidBytes(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  return Buffer.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
}

function lockTokenFromTag(tag: Buffer | string): string | undefined {
  const bytes = typeof tag === 'string' ? Buffer.from(tag) : tag;
  return bytes.length === 16 ? uuidToString(reorderGuidBytes(bytes)) : undefined;
}

function tokenFromWire(value: unknown): string {
  if (Buffer.isBuffer(value) && value.length === 16) return uuidToString(value);
  if (typeof value === 'string') return value.toLowerCase();
  throw new BrokerError('com.microsoft:argument-error', 'lock token is not a UUID', 400);
}

function sequenceNumberFromWire(value: unknown): number {
  if (typeof value === 'number') return value;
  if (Buffer.isBuffer(value) && value.length === 8) return Number(value.readBigInt64BE(0));
  throw new BrokerError('com.microsoft:argument-error', 'sequence number is not a long', 400);
}

const stateCode = { active: 0, deferred: 1, scheduled: 2 } as const;

/** The message as Service Bus hands it out: broker annotations and header on top of what was sent. */
function toWireMessage(message: StoredMessage, lockedUntilMs: number | undefined): Message {
  const annotations: Record<string, unknown> = { ...(message.amqp.message_annotations ?? {}) };
  annotations['x-opt-sequence-number'] = types.wrap_long(message.sequenceNumber);
  annotations['x-opt-enqueued-time'] = new Date(message.enqueuedAtMs);
  annotations['x-opt-message-state'] = types.wrap_int(stateCode[message.state]);
  if (lockedUntilMs !== undefined) annotations['x-opt-locked-until'] = new Date(lockedUntilMs);
  if (message.deadLetterSource !== undefined)
    annotations['x-opt-deadletter-source'] = message.deadLetterSource;
  const wire: Message = {
    ...message.amqp,
    message_annotations: annotations,
    delivery_count: message.deliveryCount,
  };
  if (message.timeToLiveInMs <= maxUint) wire.ttl = message.timeToLiveInMs;
  else delete wire.ttl;
  return wire;
}

const encodeWire = (message: StoredMessage, lockedUntilMs: number | undefined): Buffer =>
  amqpMessage.encode(toWireMessage(message, lockedUntilMs));

function unauthorized(right: AccessRight, audience: string): AuthError {
  return new AuthError(
    `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${audience}'.`,
  );
}

function entityNotFound(address: string): BrokerError {
  return new BrokerError(
    'amqp:not-found',
    `The messaging entity '${address}' could not be found. To know more visit https://aka.ms/sbResourceMgrExceptions.`,
    404,
  );
}

function sessionsUnsupported(path: string): BrokerError {
  return new BrokerError(
    'amqp:not-implemented',
    `The local Service Bus peer does not implement sessions; entity '${path}' has RequiresSession=true.`,
    501,
  );
}

interface ConnectionState {
  claims: Map<string, GrantedClaim>;
  replyLinks: Map<string, Sender>;
  consumers: Set<LinkConsumer>;
}

/** One client receiver link: a consumer of an entity with the link's credit. */
class LinkConsumer implements Consumer {
  private readonly untransmitted: number[] = [];
  private drainRequested = false;

  constructor(
    readonly sender: Sender,
    readonly entity: MessageEntity,
    readonly receiveAndDelete: boolean,
  ) {}

  capacity(): number {
    if (!this.sender.is_open()) return 0;
    const internals = senderInternals(this.sender);
    const outgoing = internals.session.outgoing;
    while (
      this.untransmitted.length > 0 &&
      (this.untransmitted[0] as number) < outgoing.next_pending_delivery
    ) {
      this.untransmitted.shift();
    }
    // Lock only what can go out now: a message locked while it waits behind a closed session window
    // (a client that stopped settling) would expire before the client ever saw it. Azure locks at
    // transfer time.
    const queuedInSession = outgoing.next_delivery_id - outgoing.next_pending_delivery;
    return Math.min(
      internals.credit - this.untransmitted.length,
      outgoing.transfer_window() - queuedInSession,
      outgoing.available(),
    );
  }

  deliver(message: StoredMessage): void {
    const lock = message.lock;
    const tag = lock === undefined ? randomBytes(16) : reorderGuidBytes(stringToUuid(lock.token));
    const delivery = this.sender.send(encodeWire(message, lock?.lockedUntilMs), tag, 0);
    this.untransmitted.push(deliveryInternals(delivery).id);
  }

  idle(): void {
    if (!this.drainRequested || !this.sender.is_open()) return;
    if (this.capacity() <= 0) return;
    this.drainRequested = false;
    this.sender.set_drained(true);
    // set_drained only marks the flow; rhea writes it on its next processing pass.
    (this.sender.connection as unknown as { _register(): void })._register();
  }

  onFlow(): void {
    this.drainRequested = senderInternals(this.sender)._draining === true;
    this.entity.pump();
    this.idle();
  }
}

const requestHeaders = z.looseObject({ operation: z.string().optional() });

export interface AmqpFrontOptions {
  broker: Broker;
  rules: () => readonly SasRule[];
  now: () => number;
  log?: (message: string) => void;
}

export function createAmqpFront(options: AmqpFrontOptions): {
  listen(port: number, host: string): Promise<Server>;
  close(): Promise<void>;
} {
  const { broker, now } = options;
  const log = options.log ?? ((): void => undefined);
  const container = rhea.create_container({
    id: 'servicebus-local-peer',
    autoaccept: false,
    autosettle: false,
    treat_modified_as_released: false,
  });
  const connections = new WeakMap<Connection, ConnectionState>();
  const consumers = new WeakMap<Sender, LinkConsumer>();
  type IncomingKind =
    { kind: 'cbs' } | { kind: 'management'; entityPath: string } | { kind: 'entity'; address: string };
  const incoming = new WeakMap<Receiver, IncomingKind>();
  let server: Server | undefined;
  const sockets = new Set<Socket>();

  const stateOf = (connection: Connection): ConnectionState => {
    let state = connections.get(connection);
    if (state === undefined) {
      state = { claims: new Map(), replyLinks: new Map(), consumers: new Set() };
      connections.set(connection, state);
    }
    return state;
  };

  const requireClaim = (connection: Connection, audience: string, right: AccessRight): void => {
    const claim = stateOf(connection).claims.get(resourcePath(audience));
    if (claim === undefined || claim.expiresAtMs <= now() || !claim.rights.has(right))
      throw unauthorized(right, audience);
  };

  const refuse = (link: Sender | Receiver, error: unknown): void => {
    const condition =
      error instanceof AuthError
        ? 'amqp:unauthorized-access'
        : error instanceof BrokerError
          ? error.condition
          : 'amqp:internal-error';
    const description = error instanceof Error ? error.message : String(error);
    log(`refused link ${link.name}: ${condition} ${description}`);
    link.close({ condition, description });
  };

  container.on('sender_open', (context: EventContext) => {
    const sender = context.sender;
    if (sender === undefined) return;
    const internals = senderInternals(sender);
    const source = internals.remote.attach?.source;
    const target = internals.remote.attach?.target;
    const address = source?.address ?? '';
    const state = stateOf(context.connection);
    try {
      if (address === '$cbs' || address.endsWith('/$management')) {
        sender.set_source({ address });
        sender.set_target({ address: target?.address ?? '' });
        internals.local.attach.snd_settle_mode = 1; // replies go pre-settled
        // Replies are addressed by `reply_to`: the client's link target, or else its link name.
        state.replyLinks.set(target?.address ?? sender.name, sender);
        state.replyLinks.set(sender.name, sender);
        return;
      }
      const resolved = broker.resolve(address);
      if (resolved?.kind !== 'receivable' && resolved?.kind !== 'queue') throw entityNotFound(address);
      requireClaim(context.connection, address, 'Listen');
      if (
        resolved.entity.settings.requiresSession ||
        source?.filter?.['com.microsoft:session-filter'] !== undefined
      ) {
        throw sessionsUnsupported(resolved.entity.path);
      }
      const receiveAndDelete = internals.remote.attach?.snd_settle_mode === 1;
      sender.set_source({ address, ...(source?.filter === undefined ? {} : { filter: source.filter }) });
      sender.set_target({ address: target?.address ?? '' });
      internals.local.attach.snd_settle_mode = receiveAndDelete ? 1 : 0;
      internals.local.attach.rcv_settle_mode = receiveAndDelete ? 0 : 1;
      const consumer = new LinkConsumer(sender, resolved.entity, receiveAndDelete);
      consumers.set(sender, consumer);
      state.consumers.add(consumer);
      resolved.entity.addConsumer(consumer);
    } catch (error) {
      refuse(sender, error);
    }
  });

  container.on('receiver_open', (context: EventContext) => {
    const receiver = context.receiver;
    if (receiver === undefined) return;
    const internals = receiverInternals(receiver);
    const address = internals.remote.attach?.target?.address ?? '';
    const source = internals.remote.attach?.source;
    try {
      let kind: IncomingKind;
      if (address === '$cbs') {
        kind = { kind: 'cbs' };
      } else if (address.endsWith('/$management')) {
        const entityPath = address.slice(0, -'/$management'.length);
        if (broker.resolve(entityPath) === undefined) throw entityNotFound(entityPath);
        kind = { kind: 'management', entityPath };
      } else {
        const resolved = broker.resolve(address);
        if (resolved === undefined) throw entityNotFound(address);
        if (resolved.kind === 'receivable') {
          throw new BrokerError(
            'amqp:not-allowed',
            `Cannot send to '${address}': it is not a queue or topic.`,
            400,
          );
        }
        requireClaim(context.connection, address, 'Send');
        if (resolved.kind === 'queue' && resolved.entity.settings.requiresSession)
          throw sessionsUnsupported(resolved.entity.path);
        kind = { kind: 'entity', address };
        internals.local.attach.max_message_size = maxMessageSizeInBytes;
      }
      receiver.set_target({ address });
      receiver.set_source({ address: source?.address ?? '' });
      incoming.set(receiver, kind);
    } catch (error) {
      refuse(receiver, error);
    }
  });

  const onFlow = (context: EventContext): void => {
    if (context.sender === undefined) return;
    consumers.get(context.sender)?.onFlow();
  };
  container.on('sender_flow', onFlow);

  const dropConsumer = (sender: Sender | undefined, connection: Connection): void => {
    if (sender === undefined) return;
    const consumer = consumers.get(sender);
    if (consumer === undefined) return;
    consumer.entity.removeConsumer(consumer);
    stateOf(connection).consumers.delete(consumer);
    consumers.delete(sender);
  };
  container.on('sender_close', (context: EventContext) => {
    dropConsumer(context.sender, context.connection);
    const replyLinks = connections.get(context.connection)?.replyLinks;
    if (replyLinks === undefined || context.sender === undefined) return;
    for (const [address, link] of replyLinks) if (link === context.sender) replyLinks.delete(address);
  });
  const dropConnection = (context: EventContext): void => {
    const state = connections.get(context.connection);
    if (state === undefined) return;
    for (const consumer of state.consumers) consumer.entity.removeConsumer(consumer);
    state.consumers.clear();
    connections.delete(context.connection);
  };
  container.on('disconnected', dropConnection);
  container.on('connection_close', dropConnection);
  container.on('error', (error: unknown) =>
    log(`amqp error: ${error instanceof Error ? error.message : String(error)}`),
  );

  /** Client settlement of a delivery we sent: complete, abandon, defer or dead-letter, then settle it. */
  const onDisposition =
    (outcome: 'accepted' | 'rejected' | 'modified' | 'released') =>
    (context: EventContext): void => {
      const sender = context.sender;
      const delivery = context.delivery;
      if (sender === undefined || delivery === undefined) return;
      const consumer = consumers.get(sender);
      const d = deliveryInternals(delivery);
      if (consumer === undefined || consumer.receiveAndDelete) return;
      const token = lockTokenFromTag(d.tag);
      let errorState: unknown;
      try {
        if (token === undefined)
          throw new BrokerError('com.microsoft:argument-error', 'delivery has no lock token', 400);
        const entity = consumer.entity;
        const state = d.remote_state;
        if (outcome === 'accepted') entity.complete(token);
        else if (outcome === 'released') entity.abandon(token, undefined, false);
        else if (outcome === 'modified') {
          if (state?.undeliverable_here === true) entity.defer(token, state.message_annotations);
          else entity.abandon(token, state?.message_annotations);
        } else {
          const info = state?.error?.info ?? {};
          const { DeadLetterReason: reason, DeadLetterErrorDescription: description, ...rest } = info;
          entity.deadLetter(token, {
            reason: typeof reason === 'string' ? reason : undefined,
            description: typeof description === 'string' ? description : undefined,
            propertiesToModify: rest,
          });
        }
      } catch (error) {
        const condition = error instanceof BrokerError ? error.condition : 'amqp:internal-error';
        errorState = (amqpMessage as unknown as Outcomes)
          .rejected({
            error: { condition, description: error instanceof Error ? error.message : String(error) },
          })
          .described();
      }
      // Settle on our side and mark it settled remotely too: rhea frees a delivery slot only when both
      // are set, and the SDK never sends a final settle in rcv-settle-mode "second".
      // Echo the outcome (without the dead-letter error, which the SDK would read as a failure).
      const outcomes = amqpMessage as unknown as Outcomes;
      const settledState =
        errorState ??
        (outcome === 'accepted'
          ? outcomes.accepted().described()
          : outcome === 'modified'
            ? outcomes
                .modified({ undeliverable_here: d.remote_state?.undeliverable_here === true })
                .described()
            : outcome === 'released'
              ? outcomes.released().described()
              : outcomes.rejected({}).described());
      // One disposition frame per delivery, written directly: rhea's batching (write_dispositions)
      // merges two adjacent deliveries into one range with the first one's state, which would hand
      // one message's lock-lost error (or success) to its neighbour.
      if (!d.remote_settled) {
        (sender.session as unknown as { output(frame: unknown): void }).output(
          frames.disposition({ role: false, first: d.id, last: d.id, settled: true, state: settledState }),
        );
      }
      d.settled = true;
      d.remote_settled = true;
      (sender.connection as unknown as { _register(): void })._register();
    };
  container.on('accepted', onDisposition('accepted'));
  container.on('rejected', onDisposition('rejected'));
  container.on('modified', onDisposition('modified'));
  container.on('released', onDisposition('released'));

  const reply = (
    connection: Connection,
    request: Message,
    statusCode: number,
    description: string,
    body: unknown,
    style: 'cbs' | 'management',
    errorCondition?: string,
  ): void => {
    const replyTo = typeof request.reply_to === 'string' ? request.reply_to : undefined;
    const link = replyTo === undefined ? undefined : stateOf(connection).replyLinks.get(replyTo);
    if (link === undefined) {
      log(`no reply link for ${String(replyTo)}`);
      return;
    }
    const properties: Record<string, unknown> =
      style === 'cbs'
        ? { 'status-code': types.wrap_int(statusCode), 'status-description': description }
        : { statusCode: types.wrap_int(statusCode), statusDescription: description };
    if (errorCondition !== undefined)
      properties[style === 'cbs' ? 'error-condition' : 'errorCondition'] = errorCondition;
    const response: Message = {
      correlation_id: request.message_id,
      application_properties: properties,
      body,
    };
    link.send(response);
  };

  const handleCbs = (context: EventContext, request: Message): void => {
    const headers = z
      .looseObject({ operation: z.string(), name: z.string(), type: z.string() })
      .safeParse(request.application_properties);
    if (!headers.success || headers.data.operation !== 'put-token') {
      reply(
        context.connection,
        request,
        400,
        'Bad request: expected put-token with name and type',
        undefined,
        'cbs',
      );
      return;
    }
    const { name: audience, type } = headers.data;
    try {
      if (typeof request.body !== 'string')
        throw new AuthError('InvalidSignature: the token body is not a string.');
      if (type !== 'servicebus.windows.net:sastoken') {
        throw new AuthError(`The local peer accepts SAS tokens only; token type '${type}' is refused.`);
      }
      const path = resourcePath(audience);
      const firstSegment = path.split('/')[0] ?? '';
      const resolved = broker.resolve(firstSegment);
      const audienceEntity = resolved === undefined ? undefined : resolved.authEntity;
      const claim = verifySasToken(request.body, audience, options.rules(), now(), audienceEntity);
      stateOf(context.connection).claims.set(path, claim);
      reply(context.connection, request, 202, 'Accepted', undefined, 'cbs');
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log(`put-token refused for ${audience}: ${message}`);
      reply(context.connection, request, 401, message, undefined, 'cbs', 'amqp:unauthorized-access');
    }
  };

  const mapBody = z.record(z.string(), z.unknown());

  const handleManagement = (context: EventContext, request: Message, entityPath: string): void => {
    const operation = requestHeaders.safeParse(request.application_properties).data?.operation ?? '';
    const audience = `${entityPath}/$management`;
    try {
      const resolved = broker.resolve(entityPath);
      if (resolved === undefined) throw entityNotFound(entityPath);
      const body = mapBody.parse(request.body ?? {});
      const receivable = (): MessageEntity => {
        if (resolved.kind === 'topic')
          throw new BrokerError('amqp:not-allowed', `'${operation}' is not valid on a topic`, 400);
        return resolved.entity;
      };
      const sequenceNumbers = (): number[] =>
        z.array(z.unknown()).parse(body['sequence-numbers']).map(sequenceNumberFromWire);
      const lockTokens = (): string[] => z.array(z.unknown()).parse(body['lock-tokens']).map(tokenFromWire);
      switch (operation) {
        case 'com.microsoft:peek-message': {
          requireClaim(context.connection, audience, 'Listen');
          const from = sequenceNumberFromWire(body['from-sequence-number']);
          const count = z.number().int().positive().parse(body['message-count']);
          const found = receivable().peek(from, count);
          if (found.length === 0) {
            reply(context.connection, request, 204, 'No messages', undefined, 'management');
            return;
          }
          const messages = found.map((message) => ({
            message: encodeWire(message, message.lock?.lockedUntilMs),
          }));
          reply(context.connection, request, 200, 'OK', { messages }, 'management');
          return;
        }
        case 'com.microsoft:renew-lock': {
          requireClaim(context.connection, audience, 'Listen');
          const entity = receivable();
          const expirations = lockTokens().map((token) => new Date(entity.renewLock(token)));
          reply(context.connection, request, 200, 'OK', { expirations }, 'management');
          return;
        }
        case 'com.microsoft:schedule-message': {
          requireClaim(context.connection, audience, 'Send');
          const entries = z.array(mapBody).parse(body.messages);
          const numbers = entries.map((entry) => {
            const encoded = entry.message;
            if (!Buffer.isBuffer(encoded))
              throw new BrokerError('com.microsoft:argument-error', 'message is not binary', 400);
            const decoded = decodeMessage(encoded);
            return resolved.kind === 'topic'
              ? resolved.topic.schedule(decoded, now())
              : resolved.entity.schedule(decoded, now());
          });
          reply(
            context.connection,
            request,
            200,
            'OK',
            { 'sequence-numbers': numbers.map((n) => types.wrap_long(n)) },
            'management',
          );
          return;
        }
        case 'com.microsoft:cancel-scheduled-message': {
          requireClaim(context.connection, audience, 'Send');
          for (const sequenceNumber of sequenceNumbers()) {
            if (resolved.kind === 'topic') resolved.topic.cancelScheduled(sequenceNumber);
            else resolved.entity.cancelScheduled(sequenceNumber);
          }
          reply(context.connection, request, 200, 'OK', undefined, 'management');
          return;
        }
        case 'com.microsoft:receive-by-sequence-number': {
          requireClaim(context.connection, audience, 'Listen');
          const receiveAndDelete = body['receiver-settle-mode'] === 0;
          const received = receivable().receiveDeferred(sequenceNumbers(), receiveAndDelete);
          const messages = received.map(({ message, lock }) => ({
            'lock-token': types.wrap_uuid(lock === undefined ? randomBytes(16) : stringToUuid(lock.token)),
            message: encodeWire(message, lock?.lockedUntilMs),
          }));
          reply(context.connection, request, 200, 'OK', { messages }, 'management');
          return;
        }
        case 'com.microsoft:update-disposition': {
          requireClaim(context.connection, audience, 'Listen');
          const entity = receivable();
          const status = z
            .enum(['completed', 'abandoned', 'defered', 'suspended'])
            .parse(body['disposition-status']);
          const propertiesToModify = mapBody.optional().parse(body['properties-to-modify']);
          for (const token of lockTokens()) {
            if (status === 'completed') entity.complete(token);
            else if (status === 'abandoned') entity.abandon(token, propertiesToModify);
            else if (status === 'defered') entity.defer(token, propertiesToModify);
            else {
              const reason = body['deadletter-reason'];
              const description = body['deadletter-description'];
              entity.deadLetter(token, {
                reason: typeof reason === 'string' ? reason : undefined,
                description: typeof description === 'string' ? description : undefined,
                propertiesToModify,
              });
            }
          }
          reply(context.connection, request, 200, 'OK', undefined, 'management');
          return;
        }
        default:
          throw new BrokerError(
            'amqp:not-implemented',
            `The local peer does not implement '${operation}'.`,
            501,
          );
      }
    } catch (error) {
      const [statusCode, condition] =
        error instanceof AuthError
          ? [401, 'amqp:unauthorized-access']
          : error instanceof BrokerError
            ? [error.statusCode, error.condition]
            : error instanceof z.ZodError
              ? [400, 'com.microsoft:argument-error']
              : [500, 'amqp:internal-error'];
      const message = error instanceof Error ? error.message : String(error);
      reply(context.connection, request, statusCode, message, undefined, 'management', condition);
    }
  };

  const decodeBatch = (payload: Buffer): Message[] => {
    const envelope = decodeMessage(payload);
    const body = envelope.body as { content?: unknown; multiple?: boolean } | undefined;
    const content = body?.content;
    const parts = Array.isArray(content) ? content : [content];
    return parts.filter((part): part is Buffer => Buffer.isBuffer(part)).map(decodeMessage);
  };

  container.on('message', (context: EventContext) => {
    const receiver = context.receiver;
    const delivery = context.delivery;
    if (receiver === undefined || delivery === undefined || context.message === undefined) return;
    const kind = incoming.get(receiver);
    const settle = (error?: BrokerError | AuthError): void => {
      if (error === undefined) delivery.accept();
      else {
        delivery.reject({
          condition: error instanceof AuthError ? 'amqp:unauthorized-access' : error.condition,
          description: error.message,
        });
      }
    };
    if (kind === undefined) {
      settle(new BrokerError('amqp:not-found', 'unknown link', 404));
      return;
    }
    if (kind.kind === 'cbs') {
      settle();
      handleCbs(context, context.message);
      return;
    }
    if (kind.kind === 'management') {
      settle();
      handleManagement(context, context.message, kind.entityPath);
      return;
    }
    try {
      requireClaim(context.connection, kind.address, 'Send');
      const resolved = broker.resolve(kind.address);
      if (resolved === undefined || resolved.kind === 'receivable') throw entityNotFound(kind.address);
      const format = (context as EventContext & { format?: number }).format;
      const messages =
        format === batchMessageFormat && Buffer.isBuffer(context.message)
          ? decodeBatch(context.message)
          : [context.message];
      const nowMs = now();
      for (const message of messages) {
        if (resolved.kind === 'topic') resolved.topic.accept(message, nowMs);
        else resolved.entity.accept(message, nowMs);
      }
      settle();
    } catch (error) {
      settle(
        error instanceof BrokerError || error instanceof AuthError
          ? error
          : new BrokerError('amqp:internal-error', String(error), 500),
      );
    }
  });

  return {
    listen: (port: number, host: string): Promise<Server> =>
      new Promise((resolve, reject) => {
        // A delivery slot frees only when the deliveries before it are settled too; a client that
        // settles one message late (after its lock expired) must not stall everything behind it.
        const listening = container.listen({
          port,
          host,
          session_buffer_size: { outgoing: 16_384, incoming: 2048 },
        });
        listening.on('connection', (socket: Socket) => {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
        });
        listening.once('error', reject);
        listening.once('listening', () => {
          server = listening;
          resolve(listening);
        });
      }),
    close: async (): Promise<void> => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (server !== undefined) {
        const closing = server;
        server = undefined;
        await new Promise<void>((resolve) => closing.close(() => resolve()));
      }
    },
  };
}
