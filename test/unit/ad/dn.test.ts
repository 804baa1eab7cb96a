import { describe, expect, it } from 'vitest';
import { childDn, dnEquals, escapeRdnValue, formatDn, isWithin, parseDn } from '../../../agent/ldap/dn.js';
import { AppError } from '../../../shared/errors.js';

const ou = 'OU=Users,OU=Atria,DC=atria,DC=test';

describe('RFC 4514 DNs', () => {
  it('escapes the characters RFC 4514 requires and round-trips through the parser', () => {
    const cases: Array<[string, string]> = [
      ['*)(cn=*', '*)(cn\\=*'],
      ['a,OU=Evil', 'a\\,OU\\=Evil'],
      ['say "hi"', 'say \\"hi\\"'],
      ['a+b', 'a\\+b'],
      ['#hash', '\\#hash'],
      ['mid#hash', 'mid#hash'],
      [' lead', '\\ lead'],
      ['trail ', 'trail\\ '],
      ['back\\slash', 'back\\\\slash'],
      ['nul\0byte', 'nul\\00byte'],
      ['semi;<>', 'semi\\;\\<\\>'],
      ['Zoë Ünïcode', 'Zoë Ünïcode'],
    ];
    for (const [value, escaped] of cases) {
      expect(escapeRdnValue(value), value).toBe(escaped);
      const dn = childDn('cn', value, ou);
      const [first, ...rest] = parseDn(dn);
      expect(first, value).toEqual([{ type: 'cn', value }]);
      expect(formatDn(rest)).toBe(ou);
    }
  });

  it('parses hex escapes as UTF-8 and multi-valued RDNs', () => {
    expect(parseDn('CN=Zo\\C3\\AB+UID=7,DC=x')).toEqual([
      [
        { type: 'cn', value: 'Zoë' },
        { type: 'uid', value: '7' },
      ],
      [{ type: 'dc', value: 'x' }],
    ]);
  });

  it('rejects malformed DNs with a Validation error', () => {
    for (const bad of ['CN', 'CN=a,', '=a', 'CN=a\\', 'CN=a"b', 'CN=#04024869', 'CN=a\\zz', 'C N=a']) {
      expect(() => parseDn(bad), bad).toThrow(AppError);
    }
  });

  it('decides containment on parsed RDNs, not substrings, case-insensitively', () => {
    expect(isWithin(`CN=x,${ou}`, 'OU=Atria,DC=atria,DC=test')).toBe(true);
    expect(isWithin('cn=x,ou=users,ou=ATRIA,dc=Atria,dc=TEST', 'OU=Atria,DC=atria,DC=test')).toBe(true);
    expect(isWithin('OU=Atria,DC=atria,DC=test', 'OU=Atria,DC=atria,DC=test')).toBe(true);
    expect(isWithin('CN=x,OU=Atria-Evil,DC=atria,DC=test', 'OU=Atria,DC=atria,DC=test')).toBe(false);
    expect(
      isWithin('CN=x\\,OU=Atria,DC=atria,DC=test,OU=Outside,DC=atria,DC=test', 'OU=Atria,DC=atria,DC=test'),
    ).toBe(false);
    expect(isWithin('CN=x,OU=Atria\\,DC=atria,DC=test', 'OU=Atria,DC=atria,DC=test')).toBe(false);
    expect(isWithin('DC=atria,DC=test', 'OU=Atria,DC=atria,DC=test')).toBe(false);
    expect(dnEquals('OU=A, DC=b', 'ou=a,dc=B')).toBe(true);
    expect(dnEquals('CN=a\\2Cb,DC=c', 'CN=a\\,b,DC=c')).toBe(true);
  });
});
