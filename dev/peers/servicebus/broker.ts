import { randomUUID } from 'node:crypto';
import type { Message } from 'rhea';
import type {
  CorrelationFilter,
  DuplicateDetectionSettings,
  MessageEntitySettings,
  NamespaceDefinition,
  SubscriptionFilter,
} from './config.js';

/**
 * The message store behind the AMQP front: queues, topics with subscriptions, dead-letter sub-queues,
 * peek-lock, deferral, scheduling, TTL and duplicate detection, with Azure Service Bus's rules. Knows
 * nothing of AMQP links; `server.ts` maps the wire onto it.
 */

/** A failure Azure reports with an AMQP condition (management replies also carry `statusCode`). */
export class BrokerError extends Error {
  constructor(
    readonly condition: string,
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = 'BrokerError';
  }
}

export const lockLost = (): BrokerError =>
  new BrokerError(
    'com.microsoft:message-lock-lost',
    'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
    410,
  );

export type MessageState = 'active' | 'deferred' | 'scheduled';

export interface MessageLock {
  token: string;
  lockedUntilMs: number;
}

export interface StoredMessage {
  sequenceNumber: number;
  /** The message as the sender sent it (application properties change on abandon/dead-letter). */
  amqp: Message;
  messageId: string;
  enqueuedAtMs: number;
  timeToLiveInMs: number;
  expiresAtMs: number;
  /** Failed delivery attempts so far: the AMQP header value (the SDK shows it as `deliveryCount`). */
  deliveryCount: number;
  state: MessageState;
  scheduledAtMs: number | undefined;
  lock: MessageLock | undefined;
  deadLetterSource: string | undefined;
}

export interface Consumer {
  readonly receiveAndDelete: boolean;
  /** Messages this consumer can take right now (link credit not yet used). */
  capacity(): number;
  deliver(message: StoredMessage): void;
  /** Called after a pump left this consumer's credit unused because nothing is available. */
  idle(): void;
}

export interface DeadLetterDetails {
  reason: string | undefined;
  description: string | undefined;
  propertiesToModify?: Record<string, unknown> | undefined;
}

/** Min-heap of sequence numbers: available messages go out lowest sequence number first. */
class SequenceHeap {
  private readonly items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as number;
      if (p <= value) break;
      items[i] = p;
      i = parent;
    }
    items[i] = value;
  }
  pop(): number | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && (items[right] as number) < (items[left] as number) ? right : left;
      if ((items[child] as number) >= last) break;
      items[i] = items[child] as number;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

class DuplicateDetector {
  private readonly seen = new Map<string, number>();
  constructor(private readonly settings: DuplicateDetectionSettings) {}
  /** True when the MessageId was already accepted inside the window (the send is then dropped silently). */
  isDuplicate(messageId: string, nowMs: number): boolean {
    if (!this.settings.requiresDuplicateDetection) return false;
    const firstSeenMs = this.seen.get(messageId);
    if (
      firstSeenMs !== undefined &&
      nowMs - firstSeenMs < this.settings.duplicateDetectionHistoryTimeWindowInMs
    )
      return true;
    this.seen.delete(messageId);
    this.seen.set(messageId, nowMs);
    return false;
  }
  prune(nowMs: number): void {
    // Insertion order is time order, so the oldest entries come first.
    for (const [id, firstSeenMs] of this.seen) {
      if (nowMs - firstSeenMs < this.settings.duplicateDetectionHistoryTimeWindowInMs) break;
      this.seen.delete(id);
    }
  }
}

const maxTimeToLiveInMs = 10_675_199 * 24 * 3600 * 1000; // TimeSpan.MaxValue, what Azure reports for "never"

function messageIdOf(amqp: Message): string | undefined {
  const id: unknown = amqp.message_id;
  if (id === undefined || id === null) return undefined;
  return scalarText(id);
}

/** Message ids and correlation ids are strings, numbers, UUIDs (Buffers) or binary on the wire. */
function scalarText(value: unknown): string | undefined {
  if (Buffer.isBuffer(value)) return value.length === 16 ? uuidText(value) : value.toString('hex');
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  return undefined;
}

function uuidText(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function scheduledTimeOf(amqp: Message): number | undefined {
  const value: unknown = amqp.message_annotations?.['x-opt-scheduled-enqueue-time'];
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return value;
  return undefined;
}

function matchesCorrelation(filter: CorrelationFilter, amqp: Message): boolean {
  const equal = (expected: string | undefined, actual: unknown): boolean =>
    expected === undefined || scalarText(actual) === expected;
  if (!equal(filter.ContentType, amqp.content_type)) return false;
  if (!equal(filter.CorrelationId, amqp.correlation_id)) return false;
  if (!equal(filter.Label, amqp.subject)) return false;
  if (!equal(filter.MessageId, amqp.message_id)) return false;
  if (!equal(filter.ReplyTo, amqp.reply_to)) return false;
  if (!equal(filter.ReplyToSessionId, amqp.reply_to_group_id)) return false;
  if (!equal(filter.SessionId, amqp.group_id)) return false;
  if (!equal(filter.To, amqp.to)) return false;
  const properties = (amqp.application_properties ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(filter.Properties ?? {})) {
    if (properties[key] !== value) return false;
  }
  return true;
}

function matches(filters: SubscriptionFilter[], amqp: Message): boolean {
  return filters.some((filter) =>
    filter.kind === 'constant' ? filter.matches : matchesCorrelation(filter.filter, amqp),
  );
}

function cloneAmqp(amqp: Message): Message {
  return {
    ...amqp,
    message_annotations: amqp.message_annotations === undefined ? undefined : { ...amqp.message_annotations },
    application_properties:
      amqp.application_properties === undefined ? undefined : { ...amqp.application_properties },
  };
}

export type EntityKind = 'queue' | 'subscription' | 'deadletter';

/** A queue, a subscription or a dead-letter sub-queue: anything messages are received from. */
export class MessageEntity {
  readonly messages = new Map<number, StoredMessage>();
  readonly deadLetterQueue: MessageEntity | undefined;
  private readonly ready = new SequenceHeap();
  private readonly locks = new Map<string, StoredMessage>();
  private readonly scheduled = new Set<number>();
  private readonly consumers: Consumer[] = [];
  private nextSequenceNumber = 1;
  private roundRobin = 0;
  private pumping = false;
  /**
   * Fault hook (chaos runs): the next N sends are stored twice, past duplicate detection — what Service
   * Bus's at-least-once delivery allows ("a message can be delivered more than once", Microsoft Learn,
   * service-bus-messaging/message-transfers-locks-settlement) and a sender's retry after the dedup window.
   */
  duplicateNextSends = 0;
  readonly faultStats = { duplicated: 0, locksLost: 0 };

  constructor(
    private readonly broker: Broker,
    readonly path: string,
    readonly kind: EntityKind,
    readonly settings: MessageEntitySettings,
    private readonly duplicates: DuplicateDetector | undefined,
  ) {
    this.deadLetterQueue =
      kind === 'deadletter'
        ? undefined
        : new MessageEntity(
            broker,
            `${path}/$DeadLetterQueue`,
            'deadletter',
            // Dead-lettered messages never expire and are never dead-lettered again.
            {
              ...settings,
              defaultMessageTimeToLiveInMs: maxTimeToLiveInMs,
              maxDeliveryCount: Number.POSITIVE_INFINITY,
              forwardTo: undefined,
              forwardDeadLetteredMessagesTo: undefined,
            },
            undefined,
          );
  }

  /** Messages waiting, locked, deferred or scheduled (what runtime properties call the total count). */
  get count(): number {
    return this.messages.size;
  }

  /** Accepts a sent message. Returns its sequence number, or undefined when it was a duplicate or forwarded. */
  accept(
    amqp: Message,
    nowMs: number,
    options: { deadLetterSource?: string; deliveryCount?: number } = {},
  ): number | undefined {
    let messageId = messageIdOf(amqp);
    if (messageId === undefined) {
      messageId = randomUUID().replaceAll('-', '');
      amqp.message_id = messageId;
    }
    if (this.duplicates?.isDuplicate(messageId, nowMs) === true) return undefined;
    const scheduledAtMs = scheduledTimeOf(amqp);
    if (
      this.settings.forwardTo !== undefined &&
      options.deadLetterSource === undefined &&
      scheduledAtMs === undefined
    ) {
      this.broker.forward(this.settings.forwardTo, amqp, nowMs);
      return undefined;
    }
    const sequenceNumber = this.store(amqp, messageId, nowMs, scheduledAtMs, options);
    this.maybeDuplicate(amqp, messageId, nowMs, scheduledAtMs, options);
    return sequenceNumber;
  }

  private maybeDuplicate(
    amqp: Message,
    messageId: string,
    nowMs: number,
    scheduledAtMs: number | undefined,
    options: { deadLetterSource?: string; deliveryCount?: number },
  ): void {
    if (this.duplicateNextSends <= 0 || options.deadLetterSource !== undefined) return;
    this.duplicateNextSends -= 1;
    this.faultStats.duplicated += 1;
    this.store(cloneAmqp(amqp), messageId, nowMs, scheduledAtMs, options);
  }

  /**
   * Fault hook (chaos runs): up to `count` locks held by consumers expire now, as when a lock is lost
   * (message-transfers-locks-settlement: "the lock expires … the message becomes available again"); the
   * holder's settlement then fails with MessageLockLost while another delivery runs. Returns how many.
   */
  loseLocks(count: number): number {
    let lost = 0;
    const nowMs = this.broker.now();
    for (const message of this.locks.values()) {
      if (lost >= count) break;
      if (message.lock === undefined || message.lock.lockedUntilMs <= nowMs) continue;
      message.lock.lockedUntilMs = nowMs - 1;
      lost += 1;
    }
    this.faultStats.locksLost += lost;
    return lost;
  }

  private store(
    amqp: Message,
    messageId: string,
    nowMs: number,
    scheduledAtMs: number | undefined,
    options: { deadLetterSource?: string; deliveryCount?: number },
  ): number {
    const headerTtl = typeof amqp.ttl === 'number' && amqp.ttl > 0 ? amqp.ttl : undefined;
    const timeToLiveInMs = Math.min(
      headerTtl ?? maxTimeToLiveInMs,
      this.settings.defaultMessageTimeToLiveInMs,
    );
    const isScheduled = scheduledAtMs !== undefined && scheduledAtMs > nowMs;
    const enqueuedAtMs = isScheduled ? scheduledAtMs : nowMs;
    const message: StoredMessage = {
      sequenceNumber: this.nextSequenceNumber++,
      amqp,
      messageId,
      enqueuedAtMs,
      timeToLiveInMs,
      expiresAtMs: enqueuedAtMs + timeToLiveInMs,
      deliveryCount: options.deliveryCount ?? 0,
      state: isScheduled ? 'scheduled' : 'active',
      scheduledAtMs,
      lock: undefined,
      deadLetterSource: options.deadLetterSource,
    };
    this.messages.set(message.sequenceNumber, message);
    if (isScheduled) {
      this.scheduled.add(message.sequenceNumber);
    } else {
      this.ready.push(message.sequenceNumber);
      this.pump();
    }
    return message.sequenceNumber;
  }

  /** `schedule-message` on $management: stored now, receivable at `scheduledAtMs`. */
  schedule(amqp: Message, nowMs: number): number {
    const messageId = messageIdOf(amqp) ?? randomUUID().replaceAll('-', '');
    amqp.message_id = messageId;
    const scheduledAtMs = scheduledTimeOf(amqp) ?? nowMs;
    const sequenceNumber = this.store(amqp, messageId, nowMs, scheduledAtMs, {});
    this.maybeDuplicate(amqp, messageId, nowMs, scheduledAtMs, {});
    return sequenceNumber;
  }

  cancelScheduled(sequenceNumber: number): void {
    if (!this.scheduled.delete(sequenceNumber)) {
      throw new BrokerError(
        'com.microsoft:message-not-found',
        `The scheduled message with sequence number ${sequenceNumber} was not found.`,
        404,
      );
    }
    this.messages.delete(sequenceNumber);
  }

  addConsumer(consumer: Consumer): void {
    this.consumers.push(consumer);
    this.pump();
  }

  removeConsumer(consumer: Consumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index >= 0) this.consumers.splice(index, 1);
  }

  /** Hands available messages to consumers with credit, lowest sequence number first, round robin. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const nowMs = this.broker.now();
      while (this.ready.size > 0 && this.consumers.length > 0) {
        const consumer = this.nextConsumerWithCapacity();
        if (consumer === undefined) break;
        const sequenceNumber = this.ready.pop() as number;
        const message = this.messages.get(sequenceNumber);
        if (message === undefined || message.state !== 'active' || message.lock !== undefined) continue;
        if (message.expiresAtMs <= nowMs) {
          this.expire(message, nowMs);
          continue;
        }
        if (consumer.receiveAndDelete) {
          this.messages.delete(sequenceNumber);
        } else {
          this.lock(message, nowMs);
        }
        consumer.deliver(message);
      }
      if (this.ready.size === 0) for (const consumer of this.consumers) consumer.idle();
    } finally {
      this.pumping = false;
    }
  }

  private nextConsumerWithCapacity(): Consumer | undefined {
    for (let i = 0; i < this.consumers.length; i++) {
      const index = (this.roundRobin + i) % this.consumers.length;
      const consumer = this.consumers[index];
      if (consumer !== undefined && consumer.capacity() > 0) {
        this.roundRobin = index + 1;
        return consumer;
      }
    }
    return undefined;
  }

  private lock(message: StoredMessage, nowMs: number): MessageLock {
    const lock = { token: randomUUID(), lockedUntilMs: nowMs + this.settings.lockDurationInMs };
    message.lock = lock;
    this.locks.set(lock.token, message);
    return lock;
  }

  private takeLocked(token: string): StoredMessage {
    const message = this.locks.get(token.toLowerCase());
    if (
      message === undefined ||
      message.lock === undefined ||
      message.lock.lockedUntilMs <= this.broker.now()
    ) {
      throw lockLost();
    }
    this.locks.delete(message.lock.token);
    message.lock = undefined;
    return message;
  }

  isLocked(token: string): boolean {
    const message = this.locks.get(token.toLowerCase());
    return message?.lock !== undefined && message.lock.lockedUntilMs > this.broker.now();
  }

  complete(token: string): void {
    const message = this.takeLocked(token);
    this.messages.delete(message.sequenceNumber);
  }

  /** Abandon (and released): the attempt counts, the message is available again or dead-lettered. */
  abandon(token: string, propertiesToModify?: Record<string, unknown>, countsAsAttempt = true): void {
    const message = this.takeLocked(token);
    this.modify(message, propertiesToModify);
    this.release(message, this.broker.now(), countsAsAttempt);
  }

  defer(token: string, propertiesToModify?: Record<string, unknown>): void {
    const message = this.takeLocked(token);
    this.modify(message, propertiesToModify);
    message.state = 'deferred';
  }

  deadLetter(token: string, details: DeadLetterDetails): void {
    const message = this.takeLocked(token);
    this.modify(message, details.propertiesToModify);
    this.moveToDeadLetter(message, details.reason, details.description, this.broker.now());
  }

  renewLock(token: string): number {
    const message = this.locks.get(token.toLowerCase());
    if (message?.lock === undefined || message.lock.lockedUntilMs <= this.broker.now()) throw lockLost();
    message.lock.lockedUntilMs = this.broker.now() + this.settings.lockDurationInMs;
    return message.lock.lockedUntilMs;
  }

  /** `receive-by-sequence-number`: only deferred messages, locked (or removed in receive-and-delete). */
  receiveDeferred(
    sequenceNumbers: number[],
    receiveAndDelete: boolean,
  ): { message: StoredMessage; lock: MessageLock | undefined }[] {
    const found = sequenceNumbers.map((sequenceNumber) => {
      const message = this.messages.get(sequenceNumber);
      if (message === undefined || message.state !== 'deferred' || message.lock !== undefined) {
        throw new BrokerError(
          'com.microsoft:message-not-found',
          `Failed to lock one or more specified messages. Either the message is already locked or does not exist. Sequence number: ${sequenceNumber}.`,
          404,
        );
      }
      return message;
    });
    const nowMs = this.broker.now();
    return found.map((message) => {
      if (receiveAndDelete) {
        this.messages.delete(message.sequenceNumber);
        return { message, lock: undefined };
      }
      return { message, lock: this.lock(message, nowMs) };
    });
  }

  /** `peek-message`: everything present from a sequence number on, locks untouched. */
  peek(fromSequenceNumber: number, maxCount: number): StoredMessage[] {
    const nowMs = this.broker.now();
    const result: StoredMessage[] = [];
    for (const message of this.messages.values()) {
      if (result.length >= maxCount) break;
      if (message.sequenceNumber < fromSequenceNumber) continue;
      if (message.state !== 'scheduled' && message.lock === undefined && message.expiresAtMs <= nowMs)
        continue;
      result.push(message);
    }
    return result;
  }

  private modify(message: StoredMessage, propertiesToModify: Record<string, unknown> | undefined): void {
    if (propertiesToModify === undefined || Object.keys(propertiesToModify).length === 0) return;
    message.amqp.application_properties = {
      ...(message.amqp.application_properties ?? {}),
      ...propertiesToModify,
    };
  }

  private release(message: StoredMessage, nowMs: number, countsAsAttempt: boolean): void {
    if (countsAsAttempt) message.deliveryCount += 1;
    if (message.deliveryCount >= this.settings.maxDeliveryCount) {
      this.moveToDeadLetter(
        message,
        'MaxDeliveryCountExceeded',
        `Message could not be consumed after ${this.settings.maxDeliveryCount} delivery attempts.`,
        nowMs,
      );
      return;
    }
    if (message.state === 'deferred') return;
    this.ready.push(message.sequenceNumber);
    this.pump();
  }

  private expire(message: StoredMessage, nowMs: number): void {
    if (this.settings.deadLetteringOnMessageExpiration) {
      this.moveToDeadLetter(
        message,
        'TTLExpiredException',
        'The message expired and was dead lettered.',
        nowMs,
      );
    } else {
      this.messages.delete(message.sequenceNumber);
    }
  }

  private moveToDeadLetter(
    message: StoredMessage,
    reason: string | undefined,
    description: string | undefined,
    nowMs: number,
  ): void {
    this.messages.delete(message.sequenceNumber);
    this.scheduled.delete(message.sequenceNumber);
    const amqp = cloneAmqp(message.amqp);
    const properties: Record<string, unknown> = { ...(amqp.application_properties ?? {}) };
    if (reason !== undefined) properties.DeadLetterReason = reason;
    if (description !== undefined) properties.DeadLetterErrorDescription = description;
    amqp.application_properties = properties;
    // The dead-letter copy keeps its TTL header out of the way: DLQ messages do not expire.
    delete amqp.ttl;
    const forwardTo = this.settings.forwardDeadLetteredMessagesTo;
    if (forwardTo !== undefined) {
      this.broker.forward(forwardTo, amqp, nowMs);
      return;
    }
    this.deadLetterQueue?.store(amqp, message.messageId, nowMs, undefined, {
      deadLetterSource: this.path,
      deliveryCount: message.deliveryCount,
    });
  }

  /** Lock expiry, scheduled activation and TTL, run by the broker's timer. */
  tick(nowMs: number, sweepTtl: boolean): void {
    for (const [token, message] of this.locks) {
      if (message.lock === undefined) {
        this.locks.delete(token);
        continue;
      }
      if (message.lock.lockedUntilMs > nowMs) continue;
      this.locks.delete(token);
      message.lock = undefined;
      this.release(message, nowMs, true);
    }
    for (const sequenceNumber of this.scheduled) {
      const message = this.messages.get(sequenceNumber);
      if (message === undefined) {
        this.scheduled.delete(sequenceNumber);
        continue;
      }
      if ((message.scheduledAtMs ?? 0) > nowMs) continue;
      this.scheduled.delete(sequenceNumber);
      message.state = 'active';
      this.ready.push(sequenceNumber);
    }
    if (sweepTtl && this.kind !== 'deadletter') {
      for (const message of this.messages.values()) {
        if (message.state === 'scheduled' || message.lock !== undefined || message.expiresAtMs > nowMs)
          continue;
        // Available ones stay in the heap; pump skips entries whose message is gone.
        this.expire(message, nowMs);
      }
    }
    this.duplicates?.prune(nowMs);
    this.pump();
    this.deadLetterQueue?.tick(nowMs, false);
  }
}

/** A topic: duplicate detection and scheduling at the topic, then a copy to every matching subscription. */
export class Topic {
  readonly subscriptions = new Map<string, { entity: MessageEntity; filters: SubscriptionFilter[] }>();
  private readonly duplicates: DuplicateDetector;
  private readonly scheduled = new Map<number, { amqp: Message; atMs: number }>();
  private nextSequenceNumber = 1;

  constructor(
    readonly path: string,
    readonly settings: DuplicateDetectionSettings & { defaultMessageTimeToLiveInMs: number },
  ) {
    this.duplicates = new DuplicateDetector(settings);
  }

  accept(amqp: Message, nowMs: number): number | undefined {
    let messageId = messageIdOf(amqp);
    if (messageId === undefined) {
      messageId = randomUUID().replaceAll('-', '');
      amqp.message_id = messageId;
    }
    if (this.duplicates.isDuplicate(messageId, nowMs)) return undefined;
    const scheduledAtMs = scheduledTimeOf(amqp);
    if (scheduledAtMs !== undefined && scheduledAtMs > nowMs) return this.schedule(amqp, nowMs);
    this.fanOut(amqp, nowMs);
    return this.nextSequenceNumber++;
  }

  schedule(amqp: Message, nowMs: number): number {
    const sequenceNumber = this.nextSequenceNumber++;
    this.scheduled.set(sequenceNumber, { amqp, atMs: scheduledTimeOf(amqp) ?? nowMs });
    return sequenceNumber;
  }

  cancelScheduled(sequenceNumber: number): void {
    if (!this.scheduled.delete(sequenceNumber)) {
      throw new BrokerError(
        'com.microsoft:message-not-found',
        `The scheduled message with sequence number ${sequenceNumber} was not found.`,
        404,
      );
    }
  }

  private fanOut(amqp: Message, nowMs: number): void {
    const ttl = typeof amqp.ttl === 'number' && amqp.ttl > 0 ? amqp.ttl : undefined;
    for (const { entity, filters } of this.subscriptions.values()) {
      if (!matches(filters, amqp)) continue;
      const copy = cloneAmqp(amqp);
      if (copy.message_annotations !== undefined)
        delete copy.message_annotations['x-opt-scheduled-enqueue-time'];
      copy.ttl = Math.min(ttl ?? maxTimeToLiveInMs, this.settings.defaultMessageTimeToLiveInMs);
      entity.accept(copy, nowMs);
    }
  }

  tick(nowMs: number, sweepTtl: boolean): void {
    for (const [sequenceNumber, { amqp, atMs }] of this.scheduled) {
      if (atMs > nowMs) continue;
      this.scheduled.delete(sequenceNumber);
      this.fanOut(amqp, nowMs);
    }
    this.duplicates.prune(nowMs);
    for (const { entity } of this.subscriptions.values()) entity.tick(nowMs, sweepTtl);
  }
}

export type ResolvedAddress =
  | { kind: 'queue'; entity: MessageEntity; authEntity: string }
  | { kind: 'topic'; topic: Topic; authEntity: string }
  | { kind: 'receivable'; entity: MessageEntity; authEntity: string };

export class Broker {
  readonly queues = new Map<string, MessageEntity>();
  readonly topics = new Map<string, Topic>();
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private forwardDepth = 0;

  constructor(
    definition: NamespaceDefinition,
    readonly now: () => number = Date.now,
  ) {
    for (const queue of definition.queues) {
      this.queues.set(
        queue.name.toLowerCase(),
        new MessageEntity(this, queue.name, 'queue', queue.settings, new DuplicateDetector(queue.settings)),
      );
    }
    for (const topicDefinition of definition.topics) {
      const topic = new Topic(topicDefinition.name, topicDefinition.settings);
      for (const subscription of topicDefinition.subscriptions) {
        const path = `${topicDefinition.name}/Subscriptions/${subscription.name}`;
        topic.subscriptions.set(subscription.name.toLowerCase(), {
          entity: new MessageEntity(this, path, 'subscription', subscription.settings, undefined),
          filters: subscription.filters,
        });
      }
      this.topics.set(topicDefinition.name.toLowerCase(), topic);
    }
  }

  start(tickInMs = 50): void {
    this.timer ??= setInterval(() => {
      this.ticks += 1;
      const nowMs = this.now();
      const sweepTtl = this.ticks % 10 === 0;
      for (const queue of this.queues.values()) queue.tick(nowMs, sweepTtl);
      for (const topic of this.topics.values()) topic.tick(nowMs, sweepTtl);
    }, tickInMs);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Maps a link address to an entity: `q`, `q/$DeadLetterQueue`, `t`, `t/Subscriptions/s`,
   * `t/Subscriptions/s/$DeadLetterQueue` (case-insensitive, as in Azure). `authEntity` is the queue or
   * topic whose entity-scoped SAS rules apply.
   */
  resolve(address: string): ResolvedAddress | undefined {
    const parts = address.replace(/^\/+|\/+$/g, '').split('/');
    const [first, second, third, fourth, fifth] = parts.map((part) => part.toLowerCase());
    if (first === undefined) return undefined;
    const queue = this.queues.get(first);
    if (queue !== undefined) {
      if (parts.length === 1) return { kind: 'queue', entity: queue, authEntity: queue.path };
      if (parts.length === 2 && second === '$deadletterqueue' && queue.deadLetterQueue !== undefined) {
        return { kind: 'receivable', entity: queue.deadLetterQueue, authEntity: queue.path };
      }
      return undefined;
    }
    const topic = this.topics.get(first);
    if (topic === undefined) return undefined;
    if (parts.length === 1) return { kind: 'topic', topic, authEntity: topic.path };
    if (second !== 'subscriptions' || third === undefined) return undefined;
    const subscription = topic.subscriptions.get(third);
    if (subscription === undefined) return undefined;
    if (parts.length === 3)
      return { kind: 'receivable', entity: subscription.entity, authEntity: topic.path };
    if (
      parts.length === 4 &&
      fourth === '$deadletterqueue' &&
      fifth === undefined &&
      subscription.entity.deadLetterQueue !== undefined
    ) {
      return { kind: 'receivable', entity: subscription.entity.deadLetterQueue, authEntity: topic.path };
    }
    return undefined;
  }

  /** ForwardTo / ForwardDeadLetteredMessagesTo: delivery to another queue or topic of the namespace. */
  forward(target: string, amqp: Message, nowMs: number): void {
    // Azure stops auto-forwarding chains after 4 hops; a config loop must not recurse forever here.
    if (this.forwardDepth >= 4) {
      console.error(`servicebus peer: forwarding to "${target}" exceeds 4 hops; message dropped`);
      return;
    }
    this.forwardDepth += 1;
    try {
      const resolved = this.resolve(target);
      if (resolved?.kind === 'queue') resolved.entity.accept(amqp, nowMs);
      else if (resolved?.kind === 'topic') resolved.topic.accept(amqp, nowMs);
      else console.error(`servicebus peer: forward target "${target}" does not exist; message dropped`);
    } finally {
      this.forwardDepth -= 1;
    }
  }
}
