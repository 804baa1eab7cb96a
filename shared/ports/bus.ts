import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { AppError, InvalidMessageError } from '../errors.js';

/**
 * The queue a message goes to and the schema its body must satisfy on both ends: the sender refuses an
 * invalid body before it leaves, the queue function parses what arrives with `parseMessage`.
 */
export interface MessageContract<T> {
  /** Service Bus queue name. */
  readonly queue: string;
  readonly schema: z.ZodType<T>;
  /** Stable message type name (sent as the Service Bus `subject`; shows in logs and dead letters). */
  readonly name: string;
}

export function defineMessageContract<T>(contract: {
  queue: string;
  schema: z.ZodType<T>;
  name: string;
}): MessageContract<T> {
  return Object.freeze({ ...contract });
}

export interface SendMessageOptions {
  /** Deterministic (see `deterministicMessageId`) so a retried send is dropped by duplicate detection. */
  messageId: string;
  correlationId?: string;
  /** Not receivable before this time. */
  scheduledEnqueueTime?: Date;
  applicationProperties?: Record<string, string | number | boolean>;
}

export interface BatchItem<T> {
  body: T;
  options: SendMessageOptions;
}

export interface Bus {
  /** Validates `body` against the contract (Validation AppError if invalid) and sends it. */
  send<T>(contract: MessageContract<T>, body: T, options: SendMessageOptions): Promise<void>;
  /** Sends many messages of one contract in as few batches as the size limit allows; all validated first. */
  sendBatch<T>(contract: MessageContract<T>, items: readonly BatchItem<T>[]): Promise<void>;
}

/**
 * A UUID-shaped SHA-256 of the parts (version 8 "custom" layout), so the same logical message always
 * gets the same MessageId. Parts are length-prefixed: ("ab","c") and ("a","bc") differ.
 */
export function deterministicMessageId(...parts: string[]): string {
  if (parts.length === 0) throw new AppError('Validation', 'deterministicMessageId needs at least one part');
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${Buffer.byteLength(part)}:${part};`);
  const bytes = hash.digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80; // version 8
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** "items.0.email: Invalid email address; tenantId: Required" — names every failing field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map(
      (issue) => `${issue.path.length === 0 ? '(body)' : issue.path.map(String).join('.')}: ${issue.message}`,
    )
    .join('; ');
}

function issueDetails(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

/** The dead-letter reasons `parseMessage` uses (stable; dashboards and replays filter on them). */
export const invalidMessageReasons = {
  notJson: 'InvalidJson',
  schema: 'SchemaValidationFailed',
} as const;

/**
 * Validates an incoming body (already parsed by the trigger, or a JSON string/Buffer) against the
 * contract. Throws InvalidMessageError, which the queue trigger dead-letters at once: retrying a
 * malformed message can never succeed.
 */
export function parseMessage<T>(contract: MessageContract<T>, body: unknown): T {
  let value = body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      throw new InvalidMessageError(invalidMessageReasons.notJson, `${contract.name}: body is not JSON`, {
        contract: contract.name,
      });
    }
  }
  const parsed = contract.schema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidMessageError(
      invalidMessageReasons.schema,
      `${contract.name}: ${describeIssues(parsed.error)}`,
      {
        contract: contract.name,
        issues: issueDetails(parsed.error),
      },
    );
  }
  return parsed.data;
}

/** Sender-side check shared by every Bus implementation: a body that fails its contract never leaves. */
export function validateOutgoing<T>(contract: MessageContract<T>, body: T): T {
  const parsed = contract.schema.safeParse(body);
  if (!parsed.success) {
    throw new AppError('Validation', `${contract.name} body is invalid: ${describeIssues(parsed.error)}`, {
      details: { contract: contract.name, issues: issueDetails(parsed.error) },
    });
  }
  return parsed.data;
}
