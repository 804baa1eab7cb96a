import { describe, expect, it } from 'vitest';
import {
  FilterSyntaxError,
  parseFilter,
  type Getter,
} from '../../../dev/peers/identity-graph/graph/filter.js';

const ada: Record<string, unknown> = {
  userPrincipalName: 'Ada@Contoso.example',
  displayName: "Ada O'Neil",
  accountEnabled: true,
  usageLocation: null,
  assignedLicenses: [{ skuId: '6fd2c87f-b296-42f0-b197-1e91e994b900', disabledPlans: [] }],
  otherMails: ['ada@home.example'],
};
const get: Getter = (p) => ada[p];

describe('peer $filter parser', () => {
  it('compares strings case-insensitively with eq and doubled quotes', () => {
    expect(parseFilter("userPrincipalName eq 'ada@contoso.EXAMPLE'").test(get)).toBe(true);
    expect(parseFilter("displayName eq 'Ada O''Neil'").test(get)).toBe(true);
    expect(parseFilter("displayName eq 'Ada'").test(get)).toBe(false);
  });

  it('handles booleans, null, in, and/or/not and parentheses', () => {
    expect(parseFilter('accountEnabled eq true and usageLocation eq null').test(get)).toBe(true);
    expect(parseFilter("usageLocation in ('NL','US') or (accountEnabled eq false)").test(get)).toBe(false);
    expect(parseFilter("not(startsWith(displayName,'Bob'))").test(get)).toBe(true);
  });

  it('matches startsWith/endsWith on strings and string collections', () => {
    expect(parseFilter("startsWith(displayName,'ada')").test(get)).toBe(true);
    expect(parseFilter("endsWith(otherMails,'@home.example')").test(get)).toBe(true);
  });

  it('evaluates any() lambdas over assignedLicenses with an unquoted GUID', () => {
    const filter = parseFilter('assignedLicenses/any(x:x/skuId eq 6FD2C87F-B296-42F0-B197-1E91E994B900)');
    expect(filter.test(get)).toBe(true);
    expect(filter.properties).toEqual(new Set(['assignedLicenses']));
  });

  it('reports the advanced operators a query used', () => {
    expect([...parseFilter("endsWith(mail,'x') and displayName ne 'y'").advancedOperators].sort()).toEqual([
      'endsWith',
      'ne',
    ]);
    expect([...parseFilter("not(displayName eq 'y')").advancedOperators]).toEqual(['not']);
    expect(parseFilter("displayName eq 'y'").advancedOperators.size).toBe(0);
  });

  it('rejects malformed filters', () => {
    expect(() => parseFilter("displayName eq 'open")).toThrow(FilterSyntaxError);
    expect(() => parseFilter('displayName foo 1')).toThrow(FilterSyntaxError);
    expect(() => parseFilter("displayName eq 'a' extra")).toThrow(FilterSyntaxError);
  });
});
