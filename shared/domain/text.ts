import { z } from 'zod';

/**
 * Single-line text from outside (names, descriptions, titles). Control characters are refused, not
 * stripped: NUL truncates strings in LDAP/C libraries, a line break forges log lines and splits
 * CSV exports, and other C0/C1 codes render as nothing in portals, so a name would look like another.
 * Checked before trimming, so a trailing newline is refused too rather than silently dropped.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const controlCharacter = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export const controlCharacterMessage =
  'must not contain control characters (NUL, line breaks, tabs or other C0/C1 codes)';

export function hasControlCharacter(value: string): boolean {
  return controlCharacter.test(value);
}

/** A single line of `minLength` (default 1) to `maxLength` characters, trimmed. */
export function singleLineText(maxLength: number, minLength = 1) {
  return z
    .string()
    .refine((value) => !hasControlCharacter(value), controlCharacterMessage)
    .trim()
    .min(minLength)
    .max(maxLength);
}
