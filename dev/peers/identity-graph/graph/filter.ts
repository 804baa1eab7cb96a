/**
 * A small OData $filter parser for the subset directory objects support: eq, ne, not, and, or, in,
 * startsWith, endsWith, ge/le on strings, and `collection/any(x:x/prop eq value)`. It records which
 * advanced operators were used so callers can apply the ConsistencyLevel rules (aad-advanced-queries.md).
 */
export type Getter = (property: string) => unknown;

export interface ParsedFilter {
  test: (get: Getter) => boolean;
  properties: Set<string>;
  advancedOperators: Set<string>;
  /** Properties used with endsWith (Graph allows it only on a few). */
  endsWithProperties: Set<string>;
}

type Token =
  { kind: 'lp' | 'rp' | 'comma' } | { kind: 'literal'; value: unknown } | { kind: 'word'; value: string };

export class FilterSyntaxError extends Error {}

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input.charAt(i);
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(') {
      tokens.push({ kind: 'lp' });
      i++;
    } else if (c === ')') {
      tokens.push({ kind: 'rp' });
      i++;
    } else if (c === ',') {
      tokens.push({ kind: 'comma' });
      i++;
    } else if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= input.length) throw new FilterSyntaxError('Unterminated string literal.');
        const d = input.charAt(i);
        if (d === "'") {
          if (input.charAt(i + 1) === "'") {
            value += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += d;
        i++;
      }
      tokens.push({ kind: 'literal', value });
    } else {
      const match = /^[A-Za-z0-9_/.:\-@]+/.exec(input.slice(i));
      if (match === null) throw new FilterSyntaxError(`Unexpected character '${c}'.`);
      const word = match[0];
      i += word.length;
      if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(word)) {
        tokens.push({ kind: 'literal', value: word.toLowerCase() });
      } else if (word === 'true' || word === 'false') {
        tokens.push({ kind: 'literal', value: word === 'true' });
      } else if (word === 'null') {
        tokens.push({ kind: 'literal', value: null });
      } else if (/^-?\d+(\.\d+)?$/.test(word)) {
        tokens.push({ kind: 'literal', value: Number(word) });
      } else {
        tokens.push({ kind: 'word', value: word });
      }
    }
  }
  return tokens;
}

const comparisons = new Set(['eq', 'ne', 'ge', 'le', 'gt', 'lt']);

function norm(value: unknown): unknown {
  return typeof value === 'string' ? value.toLowerCase() : value;
}

function compare(op: string, left: unknown, right: unknown): boolean {
  const a = norm(left ?? null);
  const b = norm(right);
  switch (op) {
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
    default: {
      if (
        (typeof a !== 'string' && typeof a !== 'number') ||
        (typeof b !== 'string' && typeof b !== 'number')
      )
        return false;
      const x = String(a);
      const y = String(b);
      if (op === 'ge') return x >= y;
      if (op === 'le') return x <= y;
      if (op === 'gt') return x > y;
      return x < y;
    }
  }
}

export function parseFilter(input: string): ParsedFilter {
  const tokens = tokenize(input);
  let pos = 0;
  const properties = new Set<string>();
  const advancedOperators = new Set<string>();
  const endsWithProperties = new Set<string>();
  const peek = (): Token | undefined => tokens[pos];
  const next = (): Token => {
    const token = tokens[pos++];
    if (token === undefined) throw new FilterSyntaxError('Unexpected end of filter.');
    return token;
  };
  const expect = (kind: Token['kind']): Token => {
    const token = next();
    if (token.kind !== kind) throw new FilterSyntaxError(`Expected ${kind}.`);
    return token;
  };
  const isWord = (token: Token | undefined, word: string): boolean =>
    token !== undefined && token.kind === 'word' && token.value.toLowerCase() === word;
  const literal = (): unknown => {
    const token = next();
    if (token.kind !== 'literal') throw new FilterSyntaxError('Expected a literal.');
    return token.value;
  };

  type Node = (get: Getter) => boolean;

  const primary = (): Node => {
    const token = next();
    if (token.kind === 'lp') {
      const inner = orExpr();
      expect('rp');
      return inner;
    }
    if (token.kind !== 'word') throw new FilterSyntaxError('Expected a property or function.');
    const name = token.value;
    const lower = name.toLowerCase();
    if ((lower === 'startswith' || lower === 'endswith') && peek()?.kind === 'lp') {
      expect('lp');
      const prop = expect('word') as { value: string };
      expect('comma');
      const value = literal();
      expect('rp');
      properties.add(prop.value);
      if (lower === 'endswith') {
        advancedOperators.add('endsWith');
        endsWithProperties.add(prop.value);
      }
      return (get) => {
        const actual = get(prop.value);
        const candidates = Array.isArray(actual) ? actual : [actual];
        return candidates.some((v) => {
          if (typeof v !== 'string' || typeof value !== 'string') return false;
          return lower === 'startswith'
            ? v.toLowerCase().startsWith(value.toLowerCase())
            : v.toLowerCase().endsWith(value.toLowerCase());
        });
      };
    }
    if (lower.endsWith('/any') && peek()?.kind === 'lp') {
      const collection = name.slice(0, -'/any'.length);
      properties.add(collection);
      expect('lp');
      const lambda = expect('word') as { value: string };
      const [variable, path] = lambda.value.split(':');
      if (variable === undefined || path === undefined || !path.startsWith(`${variable}/`))
        throw new FilterSyntaxError('Invalid lambda.');
      const member = path.slice(variable.length + 1);
      const op = expect('word') as { value: string };
      if (op.value !== 'eq') throw new FilterSyntaxError('Only eq is supported inside any().');
      const value = literal();
      expect('rp');
      return (get) => {
        const items = get(collection);
        if (!Array.isArray(items)) return false;
        return items.some((item: unknown) => {
          const v =
            typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[member] : item;
          return compare('eq', v, value);
        });
      };
    }
    properties.add(name);
    const opToken = next();
    if (opToken.kind !== 'word') throw new FilterSyntaxError('Expected an operator.');
    const op = opToken.value.toLowerCase();
    if (op === 'in') {
      expect('lp');
      const values: unknown[] = [literal()];
      while (peek()?.kind === 'comma') {
        next();
        values.push(literal());
      }
      expect('rp');
      return (get) => values.some((v) => compare('eq', get(name), v));
    }
    if (!comparisons.has(op)) throw new FilterSyntaxError(`Unsupported operator '${op}'.`);
    if (op === 'ne') advancedOperators.add('ne');
    const value = literal();
    return (get) => {
      const actual = get(name);
      if (Array.isArray(actual))
        return op === 'ne'
          ? !actual.some((v) => compare('eq', v, value))
          : actual.some((v) => compare(op, v, value));
      return compare(op, actual, value);
    };
  };

  const unary = (): Node => {
    if (isWord(peek(), 'not')) {
      next();
      advancedOperators.add('not');
      const inner = unary();
      return (get) => !inner(get);
    }
    return primary();
  };

  const andExpr = (): Node => {
    let left = unary();
    while (isWord(peek(), 'and')) {
      next();
      const a = left;
      const b = unary();
      left = (get) => a(get) && b(get);
    }
    return left;
  };

  function orExpr(): Node {
    let left = andExpr();
    while (isWord(peek(), 'or')) {
      next();
      const a = left;
      const b = andExpr();
      left = (get) => a(get) || b(get);
    }
    return left;
  }

  const test = orExpr();
  if (pos !== tokens.length) throw new FilterSyntaxError('Unexpected trailing tokens.');
  return { test, properties, advancedOperators, endsWithProperties };
}
