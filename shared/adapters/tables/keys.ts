/**
 * Table storage forbids `/ \ # ?` and control characters in PartitionKey/RowKey, and Azurite answers
 * 500 to a `/`. Keys are encoded character by character (`!` + two hex digits per UTF-8 byte for anything
 * outside a safe set, `!` itself included), so the encoding is reversible and keeps prefixes: the
 * encoded prefix of a key is the prefix of its encoding.
 */
const safe = /[A-Za-z0-9\-_.@~:=+,;]/;

export function encodeKey(key: string): string {
  let out = '';
  for (const char of key) {
    if (safe.test(char)) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8')) out += `!${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function decodeKey(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const char = encoded[i] as string;
    if (char === '!') {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(char, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
