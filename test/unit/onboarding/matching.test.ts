import { describe, expect, it } from 'vitest';
import {
  defaultMatchRules,
  deleteGuardTrips,
  diffAttributes,
  guidToBase64,
  Matcher,
  primarySmtpOf,
  type CloudIdentity,
  type LocalIdentity,
} from '../../../shared/domain/matching.js';

const cloud = (over: Partial<CloudIdentity> & { id: string }): CloudIdentity => ({
  userPrincipalName: `${over.id}@contoso.example`,
  displayName: `User ${over.id}`,
  onPremisesImmutableId: null,
  proxyAddresses: [],
  employeeId: null,
  isAdmin: false,
  ...over,
});
const local = (over: Partial<LocalIdentity> & { key: string }): LocalIdentity => ({
  userPrincipalName: `${over.key}@contoso.example`,
  displayName: `User ${over.key}`,
  anchors: [],
  primarySmtp: null,
  employeeId: null,
  entraObjectId: null,
  ...over,
});

describe('hard match', () => {
  it('links on onPremisesImmutableId = base64(objectGUID) even when UPN and name differ', () => {
    const m = new Matcher([local({ key: 'ada', anchors: ['OxTiAAAAAAAAAAAAAAAAAA=='] })]);
    const d = m.match(
      cloud({
        id: 'c1',
        userPrincipalName: 'x@y.example',
        onPremisesImmutableId: 'OxTiAAAAAAAAAAAAAAAAAA==',
      }),
    );
    expect(d).toEqual({ kind: 'match', how: 'hard', key: 'ada', score: 1, rules: ['anchor'] });
  });

  it('links on base64(ms-DS-ConsistencyGuid) as the second anchor', () => {
    const m = new Matcher([local({ key: 'ada', anchors: ['guidA==', 'consistency=='] })]);
    expect(m.match(cloud({ id: 'c1', onPremisesImmutableId: 'consistency==' }))).toMatchObject({
      kind: 'match',
      how: 'hard',
      key: 'ada',
    });
  });

  it('compares anchors case-sensitively (base64 is)', () => {
    const m = new Matcher([local({ key: 'ada', userPrincipalName: 'other@x.example', anchors: ['AbC='] })]);
    expect(m.match(cloud({ id: 'c1', onPremisesImmutableId: 'abc=' }))).toEqual({ kind: 'none' });
  });

  it('never guesses between two local objects with the same anchor', () => {
    const m = new Matcher([local({ key: 'a', anchors: ['X='] }), local({ key: 'b', anchors: ['X='] })]);
    const d = m.match(cloud({ id: 'c1', onPremisesImmutableId: 'X=' }));
    expect(d).toMatchObject({ kind: 'case', reason: 'ambiguous' });
    expect(d.kind === 'case' && d.candidates.map((c) => c.key)).toEqual(['a', 'b']);
  });

  it('computes base64(objectGUID) in AD byte order', () => {
    // 00112233-4455-6677-8899-aabbccddeeff → bytes 33 22 11 00 55 44 77 66 88 99 aa …
    expect(Buffer.from(guidToBase64('00112233-4455-6677-8899-aabbccddeeff'), 'base64').toString('hex')).toBe(
      '33221100554477668899aabbccddeeff',
    );
  });
});

describe('soft match', () => {
  it('links UPN + display name at the definite threshold', () => {
    const m = new Matcher([
      local({ key: 'bob', userPrincipalName: 'Bob@Contoso.example', displayName: 'Bob  Smith' }),
    ]);
    const d = m.match(
      cloud({ id: 'c1', userPrincipalName: 'bob@contoso.example', displayName: 'bob smith' }),
    );
    expect(d).toMatchObject({ kind: 'match', how: 'soft', key: 'bob', rules: ['upn', 'displayName'] });
    expect(d.kind === 'match' && d.score).toBeGreaterThanOrEqual(defaultMatchRules.definite);
    expect(d.kind === 'match' && d.score).toBeLessThan(1);
  });

  it('makes a UPN-only match a case for a person (below definite)', () => {
    const m = new Matcher([
      local({ key: 'bob', userPrincipalName: 'bob@contoso.example', displayName: 'Robert' }),
    ]);
    const d = m.match(cloud({ id: 'c1', userPrincipalName: 'bob@contoso.example', displayName: 'Bob' }));
    expect(d).toMatchObject({
      kind: 'case',
      reason: 'belowDefinite',
      candidates: [{ key: 'bob', score: 0.6 }],
    });
  });

  it('matches the primary SMTP address (SMTP:) and never a secondary one (smtp:)', () => {
    const locals = [
      local({
        key: 'eve',
        userPrincipalName: 'eve@ad.local',
        primarySmtp: 'eve@contoso.example',
        displayName: 'Eve',
      }),
    ];
    const primary = new Matcher(locals).match(
      cloud({
        id: 'c1',
        userPrincipalName: 'e1@contoso.example',
        displayName: 'Eve',
        proxyAddresses: ['smtp:x@y', 'SMTP:Eve@contoso.example'],
      }),
    );
    expect(primary).toMatchObject({
      kind: 'match',
      how: 'soft',
      key: 'eve',
      rules: ['primarySmtp', 'displayName'],
    });
    const secondary = new Matcher(locals).match(
      cloud({
        id: 'c1',
        userPrincipalName: 'e1@contoso.example',
        displayName: 'Eve',
        proxyAddresses: ['smtp:eve@contoso.example', 'SMTP:other@contoso.example'],
      }),
    );
    expect(secondary).toEqual({ kind: 'none' });
    expect(primarySmtpOf(['smtp:a@b', 'SMTP:c@d'])).toBe('c@d');
  });

  it('does not count a shared display name alone as evidence', () => {
    const m = new Matcher([
      local({ key: 'x', userPrincipalName: 'x@a.example', displayName: 'Same Name', employeeId: '7' }),
    ]);
    expect(
      m.match(
        cloud({ id: 'c1', userPrincipalName: 'y@a.example', displayName: 'Same Name', employeeId: '7' }),
      ),
    ).toEqual({
      kind: 'none',
    });
  });

  it('adds the employee id to an identifying rule', () => {
    const m = new Matcher([
      local({ key: 'x', userPrincipalName: 'x@a.example', displayName: 'X', employeeId: 'E1' }),
    ]);
    const d = m.match(
      cloud({ id: 'c1', userPrincipalName: 'x@a.example', displayName: 'Other', employeeId: 'E1' }),
    );
    expect(d).toMatchObject({ kind: 'match', how: 'soft', rules: ['upn', 'employeeId'], score: 0.95 });
  });

  it('never guesses between two candidates (UPN names one, primary SMTP another)', () => {
    const m = new Matcher([
      local({ key: 'a', userPrincipalName: 'sam@contoso.example', displayName: 'Sam' }),
      local({
        key: 'b',
        userPrincipalName: 'sam@ad.local',
        primarySmtp: 'sam@contoso.example',
        displayName: 'Sam',
      }),
    ]);
    const d = m.match(
      cloud({
        id: 'c1',
        userPrincipalName: 'sam@contoso.example',
        displayName: 'Sam',
        proxyAddresses: ['SMTP:sam@contoso.example'],
      }),
    );
    expect(d).toMatchObject({ kind: 'case', reason: 'ambiguous' });
    expect(d.kind === 'case' && d.candidates.map((c) => c.key).sort()).toEqual(['a', 'b']);
  });

  it('is off when the tenant blocks soft matching (hard anchors still link)', () => {
    const m = new Matcher([local({ key: 'a' }), local({ key: 'h', anchors: ['H='] })], {
      ...defaultMatchRules,
      softMatch: false,
    });
    expect(m.match(cloud({ id: 'a', displayName: 'User a' }))).toEqual({ kind: 'none' });
    expect(m.match(cloud({ id: 'c2', onPremisesImmutableId: 'H=' }))).toMatchObject({
      kind: 'match',
      how: 'hard',
    });
  });

  it('skips a local object already linked to another Entra object', () => {
    const m = new Matcher([local({ key: 'a', entraObjectId: 'other' })]);
    expect(
      m.match(cloud({ id: 'c1', userPrincipalName: 'a@contoso.example', displayName: 'User a' })),
    ).toEqual({
      kind: 'none',
    });
  });
});

describe('admins, existing links and double claims', () => {
  it('never matches an admin automatically, not even by anchor', () => {
    const m = new Matcher([local({ key: 'root', anchors: ['R='] }), local({ key: 'adm' })]);
    expect(m.match(cloud({ id: 'c1', onPremisesImmutableId: 'R=', isAdmin: true }))).toMatchObject({
      kind: 'case',
      reason: 'adminRole',
      candidates: [{ key: 'root', score: 1 }],
    });
    expect(
      m.match(
        cloud({ id: 'c2', userPrincipalName: 'adm@contoso.example', displayName: 'User adm', isAdmin: true }),
      ),
    ).toMatchObject({
      kind: 'case',
      reason: 'adminRole',
    });
  });

  it('keeps an existing link as it is (Tenant Connect run again)', () => {
    const m = new Matcher([local({ key: 'a', userPrincipalName: 'renamed@x.example', entraObjectId: 'c1' })]);
    expect(m.match(cloud({ id: 'c1' }))).toMatchObject({ kind: 'match', how: 'linked', key: 'a' });
  });

  it('reports a local object two cloud users matched, and the unclaimed ones', () => {
    const m = new Matcher([local({ key: 'a', anchors: ['A='] }), local({ key: 'b' })]);
    m.match(cloud({ id: 'c1', onPremisesImmutableId: 'A=' }));
    m.match(cloud({ id: 'c2', userPrincipalName: 'a@contoso.example', displayName: 'User a' }));
    expect([...m.claimedTwice()]).toEqual([{ key: 'a', cloudIds: ['c1', 'c2'] }]);
    expect([...m.unclaimed()].map((l) => l.key)).toEqual(['b']);
  });

  it('does not report a case candidate as only local', () => {
    const m = new Matcher([local({ key: 'adm' }), local({ key: 'lone' })]);
    m.match(cloud({ id: 'c1', userPrincipalName: 'adm@contoso.example', isAdmin: true }));
    expect([...m.unclaimed()].map((l) => l.key)).toEqual(['lone']);
  });

  it('refuses thresholds out of order', () => {
    expect(() => new Matcher([], { ...defaultMatchRules, candidate: 0.95, definite: 0.9 })).toThrow(
      /candidate/,
    );
  });
});

describe('attribute differences by source of truth', () => {
  it('lets AD win for a user anchored in AD and Entra for a cloud-only one', () => {
    const cloudSide = { displayName: 'Ada L.', userPrincipalName: 'ADA@x.example', jobTitle: null };
    const localSide = { displayName: 'Ada Lovelace', userPrincipalName: 'ada@x.example' };
    expect(diffAttributes(cloudSide, localSide, true)).toEqual([
      { attribute: 'displayName', cloud: 'Ada L.', local: 'Ada Lovelace', winner: 'ad' },
    ]);
    expect(diffAttributes(cloudSide, localSide, false)).toEqual([
      { attribute: 'displayName', cloud: 'Ada L.', local: 'Ada Lovelace', winner: 'cloud' },
    ]);
  });
});

describe('accidental-delete guard', () => {
  const guard = { maxCount: 500, maxPercent: 20, minForPercent: 3 };
  it('passes one leaver of a small customer and stops a mass delete', () => {
    expect(deleteGuardTrips(1, 10, guard)).toBe(false);
    expect(deleteGuardTrips(2, 10, guard)).toBe(false);
    expect(deleteGuardTrips(3, 10, guard)).toBe(true);
    expect(deleteGuardTrips(501, 1_000_000, guard)).toBe(true);
    expect(deleteGuardTrips(500, 1_000_000, guard)).toBe(false);
  });
});

describe('scale', () => {
  it('matches 100,000 cloud users against 100,000 local objects in linear time', () => {
    const n = 100_000;
    const build = (size: number) => {
      const locals: LocalIdentity[] = [];
      for (let i = 0; i < size; i++)
        locals.push(
          local({ key: `u${i}`, anchors: i % 2 === 0 ? [`anchor${i}=`] : [], displayName: `User u${i}` }),
        );
      return locals;
    };
    const time = (size: number) => {
      const m = new Matcher(build(size));
      const started = performance.now();
      let matched = 0;
      for (let i = 0; i < size; i++) {
        const d = m.match(
          cloud({
            id: `c${i}`,
            userPrincipalName: `u${i}@contoso.example`,
            displayName: `User u${i}`,
            onPremisesImmutableId: i % 2 === 0 ? `anchor${i}=` : null,
          }),
        );
        if (d.kind === 'match') matched++;
      }
      return { matched, ms: performance.now() - started };
    };
    time(10_000); // warm up the JIT
    const small = time(n / 10);
    const large = time(n);
    expect(large.matched).toBe(n);
    // Pairwise would be 100× slower for 10× the size; indexed it is about 10×.
    expect(large.ms).toBeLessThan(Math.max(small.ms, 5) * 40);
  });
});
