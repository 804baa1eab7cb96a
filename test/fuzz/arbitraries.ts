import fc from 'fast-check';
import { z } from 'zod';

/**
 * fast-check arbitraries for hostile input: values generated from the JSON Schema of our zod schemas
 * (the same `z.toJSONSchema` output that /api/openapi.json publishes), then mutated the ways a careless
 * or hostile sender does — wrong types, missing and extra fields, truncated JSON, huge strings and
 * arrays, control and odd Unicode characters.
 */
export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  propertyNames?: JsonSchema;
};

export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

/** Strings that have broken parsers, DN builders, key encoders and log lines elsewhere. */
export const nastyStrings: readonly string[] = [
  '',
  ' ',
  '  leading and trailing  ',
  '\u0000',
  'a\u0000b',
  '\r\n',
  'line\nbreak',
  '\u0085\u2028\u2029',
  '\u202e\u202d', // bidi overrides
  '\ufeff',
  '\ud800', // a lone surrogate (not valid UTF-16 text)
  '\udfff\ud800',
  '😀👍🏽',
  'e\u0301', // combining accent
  '../../etc/passwd',
  '..\\..\\windows',
  '%2e%2e%2f',
  '%00',
  '%',
  '%E0%A4%A',
  '/',
  '\\',
  '#',
  '?',
  '*',
  '()',
  '\\2a',
  '*)(objectClass=*',
  'CN=x,DC=evil',
  ',=+<>#;\\"',
  "' OR '1'='1",
  '<script>alert(1)</script>',
  '${jndi:ldap://x}',
  '{{7*7}}',
  '__proto__',
  'constructor',
  'null',
  'true',
  '-1',
  '1e309',
  'NaN',
  'x'.repeat(300),
];

/** Hostile but short: fits in a URL or a header (Node and Azure's front ends cap those at 8–16 KiB). */
export const shortHostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...nastyStrings) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
);

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: shortHostileString },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 70_000 }).map((n) => 'x'.repeat(n)) },
);

function stringFor(schema: JsonSchema): fc.Arbitrary<string> {
  if (schema.format === 'uuid') return fc.uuid();
  if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
  if (schema.format === 'email') return fc.emailAddress();
  if (schema.pattern !== undefined) {
    try {
      return fc.stringMatching(new RegExp(schema.pattern)).map((s) => s.slice(0, schema.maxLength ?? 4096));
    } catch {
      // Lookaheads and other features stringMatching does not support: plain text of the right length.
    }
  }
  return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 40, 80) });
}

function numberFor(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = schema.minimum ?? schema.exclusiveMinimum ?? (integer ? -1000 : -1e6);
  const max = schema.maximum ?? schema.exclusiveMaximum ?? (integer ? 100_000 : 1e6);
  return integer
    ? fc.integer({ min: Math.ceil(min), max: Math.floor(Math.max(min, max)) })
    : fc.double({ min, max: Math.max(min, max), noNaN: true });
}

/** A value shaped by the schema (often valid; refinements the schema cannot express may still fail). */
export function fromSchema(schema: JsonSchema, depth = 0): fc.Arbitrary<unknown> {
  if (depth > 6) return fc.constant(null);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum !== undefined && schema.enum.length > 0) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives !== undefined && alternatives.length > 0)
    return fc.oneof(...alternatives.map((s) => fromSchema(s, depth + 1)));
  if (schema.allOf?.[0] !== undefined) return fromSchema(schema.allOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      return stringFor(schema);
    case 'integer':
      return numberFor(schema, true);
    case 'number':
      return numberFor(schema, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(fromSchema(schema.items ?? {}, depth + 1), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
    case 'object': {
      const properties = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, property] of Object.entries(properties))
        model[name] = fromSchema(property, depth + 1);
      if (Object.keys(model).length === 0) {
        return typeof schema.additionalProperties === 'object'
          ? fc.dictionary(
              stringFor(schema.propertyNames ?? {}),
              fromSchema(schema.additionalProperties, depth + 1),
              {
                maxKeys: 3,
              },
            )
          : fc.constant({});
      }
      return fc.record(model, {
        requiredKeys: Object.keys(model).filter((name) => required.has(name)),
      });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Replaces one value somewhere in a JSON tree (by a path of indexes chosen from `pick`). */
function mutateAt(
  value: unknown,
  pick: number[],
  change: (old: unknown, key: string | undefined) => unknown,
): unknown {
  const [first, ...rest] = pick;
  if (first === undefined || value === null || typeof value !== 'object') return change(value, undefined);
  if (Array.isArray(value)) {
    if (value.length === 0) return change(value, undefined);
    const index = first % value.length;
    const copy = [...(value as unknown[])];
    copy[index] =
      rest.length === 0 ? change(copy[index], String(index)) : mutateAt(copy[index], rest, change);
    return copy;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 0) return change(value, undefined);
  const key = keys[first % keys.length] as string;
  const copy = { ...record };
  if (rest.length === 0) {
    const next = change(copy[key], key);
    if (next === removed) delete copy[key];
    else copy[key] = next;
  } else copy[key] = mutateAt(copy[key], rest, change);
  return copy;
}

const removed = Symbol('removed');

export type BodyMutation =
  | 'asIs'
  | 'wrongType'
  | 'missingField'
  | 'extraField'
  | 'hostileString'
  | 'hugeArray'
  | 'truncated'
  | 'notJson'
  | 'nonObject';

/** A request body as text, from the schema, then mutated one way (named, for the counterexample). */
export function hostileBody(
  schema: JsonSchema | undefined,
): fc.Arbitrary<{ mutation: BodyMutation; text: string }> {
  const base = schema === undefined ? fc.jsonValue({ maxDepth: 2 }) : fromSchema(schema);
  const path = fc.array(fc.nat(), { minLength: 1, maxLength: 4 });
  const junk = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    hostileString,
    fc.constantFrom<unknown>(null, true, 0, -1, 1e308, [], {}, Number.MAX_SAFE_INTEGER + 2),
  );
  return fc.oneof(
    // Unmutated values weigh more: they get past validation and reach the use cases.
    {
      weight: 4,
      arbitrary: base.map((value) => ({ mutation: 'asIs' as const, text: JSON.stringify(value) ?? 'null' })),
    },
    fc.tuple(base, path, junk).map(([value, at, replacement]) => ({
      mutation: 'wrongType' as const,
      text: JSON.stringify(mutateAt(value, at, () => replacement)) ?? 'null',
    })),
    fc.tuple(base, path).map(([value, at]) => ({
      mutation: 'missingField' as const,
      text: JSON.stringify(mutateAt(value, at, () => removed)) ?? 'null',
    })),
    fc.tuple(base, fc.oneof(hostileString, fc.string()), junk).map(([value, key, extra]) => ({
      mutation: 'extraField' as const,
      text:
        value !== null && typeof value === 'object' && !Array.isArray(value)
          ? JSON.stringify({ ...value, [key]: extra })
          : JSON.stringify({ [key]: extra }),
    })),
    fc.tuple(base, path, hostileString).map(([value, at, text]) => ({
      mutation: 'hostileString' as const,
      text: JSON.stringify(mutateAt(value, at, () => text)) ?? 'null',
    })),
    fc.tuple(base, path, fc.integer({ min: 1_000, max: 40_000 })).map(([value, at, n]) => ({
      mutation: 'hugeArray' as const,
      text:
        JSON.stringify(mutateAt(value, at, (old) => Array.from({ length: n }, () => old ?? 'x'))) ?? 'null',
    })),
    fc.tuple(base, fc.double({ min: 0, max: 1, noNaN: true })).map(([value, share]) => {
      const text = JSON.stringify(value) ?? 'null';
      return { mutation: 'truncated' as const, text: text.slice(0, Math.floor(text.length * share)) };
    }),
    fc
      .oneof(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.constantFrom('{', '[', '{"a":', 'undefined', '\u0000{}'),
      )
      .map((text) => ({ mutation: 'notJson' as const, text })),
    fc.constantFrom('null', '[]', '0', '"text"', 'true', '[{}]').map((text) => ({
      mutation: 'nonObject' as const,
      text,
    })),
  );
}
