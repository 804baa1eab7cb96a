import { describe, expect, it } from 'vitest';
import { decodeKey, encodeKey } from '../../../shared/adapters/tables/keys.js';

describe('table key encoding', () => {
  const awkward = [
    'a/b',
    'back\\slash',
    'hash#tag',
    'what?',
    'tab\there',
    'nul\u0000x',
    'percent%25',
    'bang!',
    'ünïcødé ✓',
    '',
  ];

  it.each(awkward)('round-trips %j and leaves no forbidden character', (key) => {
    const encoded = encodeKey(key);
    // eslint-disable-next-line no-control-regex -- control characters are exactly what must not appear
    expect(encoded).not.toMatch(/[/\\#?\u0000-\u001f\u007f-\u009f]/);
    expect(decodeKey(encoded)).toBe(key);
  });

  it('keeps prefixes: the encoding of a prefix is a prefix of the encoding', () => {
    expect(encodeKey('customers/contoso/users/ada').startsWith(encodeKey('customers/contoso/'))).toBe(true);
  });

  it('leaves ordinary ids readable', () => {
    expect(encodeKey('op-123_ABC.x@y')).toBe('op-123_ABC.x@y');
  });
});
