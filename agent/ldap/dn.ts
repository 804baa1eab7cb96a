import { AppError } from '../../shared/errors.js';

/**
 * RFC 4514 distinguished names: parse, escape, compare. Scope checks compare parsed RDN sequences, never
 * substrings, so `CN=x\,OU=Users,OU=Atria,…` placed elsewhere or `OU=Atria-Evil` cannot pass as inside
 * `OU=Atria`. Attribute values from commands only ever enter a DN through `escapeRdnValue`.
 */
export interface Ava {
  /** Attribute type, lower-cased (AD types are case-insensitive). */
  type: string;
  /** The unescaped value. */
  value: string;
}
export type Rdn = Ava[];

function invalid(dn: string, why: string): AppError {
  return new AppError('Validation', `invalid DN (${why}): ${JSON.stringify(dn.slice(0, 200))}`, {
    retryable: false,
  });
}

export function parseDn(dn: string): Rdn[] {
  const rdns: Rdn[] = [];
  let i = 0;
  const n = dn.length;
  if (n === 0) return rdns;
  for (;;) {
    const rdn: Rdn = [];
    for (;;) {
      // attribute type: descr or numeric OID
      while (dn[i] === ' ') i++;
      const typeStart = i;
      while (i < n && /[A-Za-z0-9.-]/.test(dn[i] ?? '')) i++;
      const type = dn.slice(typeStart, i);
      if (!/^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)$/.test(type)) throw invalid(dn, 'attribute type');
      while (dn[i] === ' ') i++;
      if (dn[i] !== '=') throw invalid(dn, 'missing =');
      i++;
      if (dn[i] === '#') throw invalid(dn, 'BER-encoded values are not accepted');
      const bytes: number[] = [];
      let lastUnescapedSpaceRun = 0;
      while (i < n) {
        const c = dn[i] ?? '';
        if (c === ',' || c === '+' || c === ';') break;
        if (c === '\\') {
          const next = dn[i + 1];
          if (next === undefined) throw invalid(dn, 'dangling escape');
          const pair = dn.slice(i + 1, i + 3);
          if (/^[0-9A-Fa-f]{2}$/.test(pair)) {
            bytes.push(parseInt(pair, 16));
            i += 3;
          } else if (' "#+,;<=>\\'.includes(next)) {
            bytes.push(...Buffer.from(next, 'utf8'));
            i += 2;
          } else {
            throw invalid(dn, 'bad escape');
          }
          lastUnescapedSpaceRun = 0;
          continue;
        }
        if (c === '"' || c === '<' || c === '>' || c === '\0') throw invalid(dn, `unescaped ${c}`);
        // Unescaped leading spaces are not part of the value either (lenient, as RFC 2253 readers are).
        if (c === ' ' && bytes.length === 0) {
          i++;
          continue;
        }
        const encoded = Buffer.from(c, 'utf8');
        bytes.push(...encoded);
        lastUnescapedSpaceRun = c === ' ' ? lastUnescapedSpaceRun + 1 : 0;
        i += c.length;
      }
      // Unescaped trailing spaces are not part of the value (RFC 4514 section 3).
      const valueBytes = Buffer.from(bytes.slice(0, bytes.length - lastUnescapedSpaceRun));
      const value = valueBytes.toString('utf8');
      if (!Buffer.from(value, 'utf8').equals(valueBytes)) throw invalid(dn, 'not UTF-8');
      rdn.push({ type: type.toLowerCase(), value });
      if (dn[i] === '+') {
        i++;
        continue;
      }
      break;
    }
    rdns.push(rdn);
    if (i >= n) break;
    if (dn[i] !== ',' && dn[i] !== ';') throw invalid(dn, 'separator');
    i++;
    if (i >= n) throw invalid(dn, 'trailing separator');
  }
  return rdns;
}

/** RFC 4514 section 2.4 escaping of one attribute value (plus `=` and NUL, which AD also escapes). */
export function escapeRdnValue(value: string): string {
  let out = '';
  const chars = Array.from(value);
  chars.forEach((c, index) => {
    if (c === '\0') out += '\\00';
    else if ('"+,;<>\\='.includes(c)) out += `\\${c}`;
    else if (index === 0 && (c === '#' || c === ' ')) out += `\\${c}`;
    else if (index === chars.length - 1 && c === ' ') out += '\\ ';
    else if (c.charCodeAt(0) < 0x20 || c === '\u007f')
      out += `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
    else out += c;
  });
  return out;
}

export function formatDn(rdns: readonly Rdn[]): string {
  return rdns
    .map((rdn) => rdn.map((ava) => `${ava.type.toUpperCase()}=${escapeRdnValue(ava.value)}`).join('+'))
    .join(',');
}

/** `<type>=<value>,<parent>` with the value escaped. */
export function childDn(type: string, value: string, parentDn: string): string {
  return formatDn([[{ type, value }], ...parseDn(parentDn)]);
}

function sameAva(a: Ava, b: Ava): boolean {
  // AD compares DN values case-insensitively; toUpperCase + toLowerCase folds the cases AD folds.
  return a.type === b.type && a.value.toUpperCase().toLowerCase() === b.value.toUpperCase().toLowerCase();
}

function sameRdn(a: Rdn, b: Rdn): boolean {
  if (a.length !== b.length) return false;
  return a.every((ava) => b.some((other) => sameAva(ava, other)));
}

export function dnEquals(a: string, b: string): boolean {
  const left = parseDn(a);
  const right = parseDn(b);
  return left.length === right.length && left.every((rdn, index) => sameRdn(rdn, right[index] ?? []));
}

/** True when `dn` is `ancestor` or lies below it. */
export function isWithin(dn: string, ancestor: string): boolean {
  const child = parseDn(dn);
  const parent = parseDn(ancestor);
  if (parent.length === 0 || child.length < parent.length) return false;
  const offset = child.length - parent.length;
  return parent.every((rdn, index) => sameRdn(rdn, child[offset + index] ?? []));
}

/** The first RDN of a DN and its parent DN. */
export function splitDn(dn: string): { rdn: Rdn; parent: string } {
  const [first, ...rest] = parseDn(dn);
  if (first === undefined) throw invalid(dn, 'empty');
  return { rdn: first, parent: formatDn(rest) };
}
