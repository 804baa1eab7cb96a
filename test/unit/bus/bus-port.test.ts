import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InvalidMessageError, isAppError } from '../../../shared/errors.js';
import {
  defineMessageContract,
  deterministicMessageId,
  invalidMessageReasons,
  parseMessage,
  validateOutgoing,
} from '../../../shared/ports/bus.js';

const contract = defineMessageContract({
  queue: 'licence-work',
  name: 'assignLicence',
  schema: z.object({ userId: z.string().min(1), skus: z.array(z.object({ skuId: z.uuid() })).min(1) }),
});

describe('deterministicMessageId', () => {
  it('is the same for the same parts and UUID-shaped (version 8, RFC variant)', () => {
    const id = deterministicMessageId('op-1', 'step-2');
    expect(deterministicMessageId('op-1', 'step-2')).toBe(id);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('differs when the parts differ, including how they are split', () => {
    const ids = new Set([
      deterministicMessageId('op-1', 'step-2'),
      deterministicMessageId('op-1', 'step-3'),
      deterministicMessageId('op-1step-2'),
      deterministicMessageId('op-1s', 'tep-2'),
      deterministicMessageId('step-2', 'op-1'),
    ]);
    expect(ids.size).toBe(5);
  });

  it('needs at least one part', () => {
    expect(() => deterministicMessageId()).toThrow(/at least one part/);
  });
});

describe('parseMessage', () => {
  const valid = { userId: 'u1', skus: [{ skuId: '0c5f8d4e-3b6a-4c1e-9f0a-2d7b8e6c5a41' }] };

  it('returns the typed body when it satisfies the contract (object, JSON string or Buffer)', () => {
    expect(parseMessage(contract, valid)).toEqual(valid);
    expect(parseMessage(contract, JSON.stringify(valid))).toEqual(valid);
    expect(parseMessage(contract, Buffer.from(JSON.stringify(valid)))).toEqual(valid);
  });

  it('throws InvalidMessageError naming every failing field', () => {
    let caught: unknown;
    try {
      parseMessage(contract, { userId: '', skus: [{ skuId: 'nope' }] });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidMessageError);
    const error = caught as InvalidMessageError;
    expect(error.deadLetterReason).toBe(invalidMessageReasons.schema);
    expect(error.message).toContain('assignLicence');
    expect(error.message).toContain('userId');
    expect(error.message).toContain('skus.0.skuId');
    expect(error.retryable).toBe(false);
    expect(error.details).toMatchObject({ contract: 'assignLicence' });
  });

  it('dead-letters text that is not JSON with its own reason', () => {
    expect(() => parseMessage(contract, 'hello')).toThrow(InvalidMessageError);
    try {
      parseMessage(contract, 'hello');
    } catch (error) {
      expect((error as InvalidMessageError).deadLetterReason).toBe(invalidMessageReasons.notJson);
    }
  });
});

describe('validateOutgoing', () => {
  it('refuses an invalid body with a Validation AppError before it is sent', () => {
    let caught: unknown;
    try {
      validateOutgoing(contract, { userId: 'u1', skus: [] });
    } catch (error) {
      caught = error;
    }
    expect(isAppError(caught, 'Validation')).toBe(true);
    expect((caught as Error).message).toContain('skus');
  });
});
