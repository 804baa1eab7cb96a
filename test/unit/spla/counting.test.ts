import { describe, expect, it } from 'vitest';
import {
  countMonth,
  evidenceEventSchema,
  monthBounds,
  previousMonth,
  splaRuleSchema,
  toCsv,
  type EvidenceEvent,
  type ProductRule,
} from '../../../shared/domain/spla.js';

const RDS = 'ad.UkRTLWdyb3VwLWd1aWQtMDE=';
const STAFF = 'ad.U3RhZmYtZ3JvdXAtZ3VpZC0w';
const SALES = 'ad.U2FsZXMtZ3JvdXAtZ3VpZC0w';
const EXCHANGE = 'entra.5a1c7e8f-0b2d-4e6f-9a1b-3c4d5e6f7a8b';

let seq = 0;
const ref = () => `ev-${++seq}`;
const add = (
  at: string,
  groupKey: string,
  member: { userId: string } | { groupKey: string },
): EvidenceEvent => ({
  type: 'member.added',
  at,
  source: 'operation',
  ref: ref(),
  groupKey,
  member,
});
const remove = (
  at: string,
  groupKey: string,
  member: { userId: string } | { groupKey: string },
): EvidenceEvent => ({
  type: 'member.removed',
  at,
  source: 'operation',
  ref: ref(),
  groupKey,
  member,
});
const userEvent = (
  type: 'user.enabled' | 'user.disabled' | 'user.deleted',
  at: string,
  userId: string,
): EvidenceEvent => ({ type, at, userId, source: 'operation', ref: ref() });

const products: ProductRule[] = [
  {
    productId: 'rds-sal',
    product: { name: 'Windows Server RDS SAL', sku: '6VC-01254', unit: 'user' },
    rule: splaRuleSchema.parse({ authorisedBy: { kind: 'groups', groups: [RDS] } }),
  },
  {
    productId: 'exchange-std-sal',
    product: { name: 'Exchange Standard SAL', sku: '395-02504', unit: 'user' },
    rule: splaRuleSchema.parse({
      authorisedBy: { kind: 'groups', groups: [EXCHANGE] },
      exclude: { admins: true },
    }),
  },
  {
    productId: 'office-pp-sal',
    product: { name: 'Office Professional Plus SAL', sku: '269-05704', unit: 'user' },
    rule: splaRuleSchema.parse({
      authorisedBy: { kind: 'attribute', name: 'extensionAttribute1', value: 'OfficePP' },
    }),
  },
  {
    productId: 'sql-std-core',
    product: { name: 'SQL Server Standard Core', sku: '7NQ-00302', unit: 'core' },
    rule: splaRuleSchema.parse({ fixedQuantity: 8 }),
  },
];

/** November 2026: joiners, leavers, a group move, nesting, a disable mid-month, a delete, an enable. */
function november(): EvidenceEvent[] {
  return [
    // Before the month: the state at 1 November.
    add('2026-10-02T08:00:00.000Z', RDS, { groupKey: STAFF }), // Staff is nested in RDS
    add('2026-10-02T08:00:00.000Z', STAFF, { userId: 'ann' }),
    add('2026-10-03T08:00:00.000Z', RDS, { userId: 'bob' }),
    add('2026-10-03T08:00:00.000Z', RDS, { userId: 'dora' }),
    userEvent('user.disabled', '2026-10-20T08:00:00.000Z', 'dora'), // disabled all of November
    add('2026-10-04T08:00:00.000Z', STAFF, { userId: 'eve' }),
    add('2026-10-04T08:00:00.000Z', STAFF, { userId: 'gus' }),
    add('2026-10-05T08:00:00.000Z', RDS, { userId: 'svc-backup' }),
    {
      type: 'user.facts',
      at: '2026-10-05T08:00:00.000Z',
      source: 'snapshot',
      ref: ref(),
      userId: 'svc-backup',
      serviceAccount: true,
    },
    add('2026-10-06T08:00:00.000Z', STAFF, { userId: 'ida' }),
    add('2026-10-07T08:00:00.000Z', RDS, { userId: 'jo' }),
    userEvent('user.disabled', '2026-10-07T09:00:00.000Z', 'jo'),
    add('2026-10-08T08:00:00.000Z', RDS, { userId: 'kim' }),
    remove('2026-10-30T08:00:00.000Z', RDS, { userId: 'kim' }), // left before the month
    add('2026-10-09T08:00:00.000Z', EXCHANGE, { userId: 'ann' }),
    add('2026-10-09T08:00:00.000Z', EXCHANGE, { userId: 'adm-lee' }),
    {
      type: 'user.facts',
      at: '2026-10-09T08:00:00.000Z',
      source: 'snapshot',
      ref: ref(),
      userId: 'adm-lee',
      admin: true,
    },
    // During the month.
    add('2026-11-03T09:00:00.000Z', RDS, { userId: 'carl' }), // joiner…
    remove('2026-11-05T17:00:00.000Z', RDS, { userId: 'carl' }), // …and leaver: 3rd, 4th, 5th
    remove('2026-11-05T10:00:00.000Z', RDS, { userId: 'bob' }), // leaver: 1st–5th
    remove('2026-11-10T12:00:00.000Z', STAFF, { userId: 'gus' }), // group move Staff → Sales
    add('2026-11-10T12:00:00.000Z', SALES, { userId: 'gus' }),
    userEvent('user.disabled', '2026-11-15T12:00:00.000Z', 'eve'), // 1st–15th
    add('2026-11-20T08:30:00.000Z', STAFF, { userId: 'frank' }), // nested joiner: 20th–30th
    userEvent('user.deleted', '2026-11-08T16:00:00.000Z', 'ida'), // 1st–8th
    userEvent('user.enabled', '2026-11-25T07:00:00.000Z', 'jo'), // 25th–30th
    {
      type: 'user.facts',
      at: '2026-11-12T10:00:00.000Z',
      source: 'changeFeed',
      ref: ref(),
      userId: 'ann',
      attributes: { extensionAttribute1: 'OfficePP' },
    },
    // At the month's end exactly: December's, not November's.
    add('2026-12-01T00:00:00.000Z', RDS, { userId: 'hal' }),
  ];
}

describe('SPLA counting: every distinct user authorised at any time in the month', () => {
  it('counts joiners, leavers, group moves, nested groups and a mid-month disable exactly', () => {
    const result = countMonth('2026-11', products, november());
    const rds = result.find((p) => p.productId === 'rds-sal');
    expect(rds?.quantity).toBe(8);
    expect(rds?.users.map((u) => [u.userId, u.days, u.counted, u.excludedAs ?? null])).toEqual([
      ['ann', 30, true, null],
      ['bob', 5, true, null],
      ['carl', 3, true, null],
      ['eve', 15, true, null],
      ['frank', 11, true, null],
      ['gus', 10, true, null],
      ['ida', 8, true, null],
      ['jo', 6, true, null],
      ['svc-backup', 30, false, 'serviceAccount'],
    ]);
    const carl = rds?.users.find((u) => u.userId === 'carl');
    expect(carl).toMatchObject({
      from: '2026-11-03T09:00:00.000Z',
      to: '2026-11-05T16:59:59.999Z',
      rule: `group ${RDS}`,
    });
    // Nested: ann and frank are authorised through Staff, which is a member of RDS.
    expect(rds?.users.find((u) => u.userId === 'frank')?.from).toBe('2026-11-20T08:30:00.000Z');
    expect(rds?.users.some((u) => u.userId === 'dora' || u.userId === 'hal' || u.userId === 'kim')).toBe(
      false,
    );
  });

  it('excludes administrators only where the rule says so, and lists them with the reason', () => {
    const result = countMonth('2026-11', products, november());
    const exchange = result.find((p) => p.productId === 'exchange-std-sal');
    expect(exchange?.quantity).toBe(1);
    expect(exchange?.users.map((u) => [u.userId, u.counted, u.excludedAs ?? null])).toEqual([
      ['adm-lee', false, 'admin'],
      ['ann', true, null],
    ]);
  });

  it('counts an attribute rule from the instant the attribute is set, and per-core products as fixed quantities', () => {
    const result = countMonth('2026-11', products, november());
    const office = result.find((p) => p.productId === 'office-pp-sal');
    expect(office?.quantity).toBe(1);
    expect(office?.users[0]).toMatchObject({ userId: 'ann', from: '2026-11-12T10:00:00.000Z', days: 19 });
    const sql = result.find((p) => p.productId === 'sql-std-core');
    expect(sql).toMatchObject({ unit: 'core', quantity: 8, users: [] });
  });

  it('reproduces a past month byte for byte whatever is appended for later months', () => {
    const first = JSON.stringify(countMonth('2026-11', products, november()));
    const later = [
      ...november(),
      remove('2026-12-02T09:00:00.000Z', STAFF, { userId: 'ann' }),
      add('2027-01-05T09:00:00.000Z', RDS, { userId: 'zed' }),
    ];
    expect(JSON.stringify(countMonth('2026-11', products, later))).toBe(first);
    // December does see the later events.
    const december = countMonth('2026-12', products, later).find((p) => p.productId === 'rds-sal');
    expect(december?.users.find((u) => u.userId === 'ann')?.days).toBe(2);
    expect(december?.users.some((u) => u.userId === 'hal')).toBe(true);
  });

  it('applies exclusions per instant: an admin until the 10th counts once no longer an admin', () => {
    const exchange = products[1];
    if (exchange === undefined) throw new Error('no rule');
    const flag = (at: string, admin: boolean): EvidenceEvent => ({
      type: 'user.facts',
      at,
      source: 'snapshot',
      ref: ref(),
      userId: 'pat',
      admin,
    });
    const events = [
      flag('2026-10-01T00:00:00.000Z', true),
      add('2026-10-01T00:00:00.000Z', EXCHANGE, { userId: 'pat' }),
      flag('2026-11-10T03:00:00.000Z', false),
    ];
    expect(countMonth('2026-11', [exchange], events)[0]?.users).toEqual([
      expect.objectContaining({ userId: 'pat', counted: true }),
    ]);
    // Admin all month: listed, not counted.
    expect(countMonth('2026-11', [exchange], events.slice(0, 2))[0]).toMatchObject({
      quantity: 0,
      users: [{ userId: 'pat', counted: false, excludedAs: 'admin' }],
    });
  });

  it('takes the events of one instant as one change: a move between two authorising groups leaves no gap', () => {
    const rule: ProductRule = {
      productId: 'p',
      product: { name: 'P', sku: 'S', unit: 'user' },
      rule: splaRuleSchema.parse({ authorisedBy: { kind: 'groups', groups: [STAFF, SALES] } }),
    };
    const events = [
      add('2026-10-01T00:00:00.000Z', STAFF, { userId: 'max' }),
      remove('2026-11-10T12:00:00.000Z', STAFF, { userId: 'max' }),
      add('2026-11-10T12:00:00.000Z', SALES, { userId: 'max' }),
    ];
    expect(countMonth('2026-11', [rule], events)[0]?.users[0]).toMatchObject({
      userId: 'max',
      days: 30,
      from: '2026-11-01T00:00:00.000Z',
      to: '2026-11-30T23:59:59.999Z',
    });
  });

  it('resolves nested groups through cycles without looping', () => {
    const a = 'ad.QUFBQUFBQUFBQUFBQUFBQQ==';
    const b = 'ad.QkJCQkJCQkJCQkJCQkJCQg==';
    const rule: ProductRule = {
      productId: 'p',
      product: { name: 'P', sku: 'S', unit: 'user' },
      rule: splaRuleSchema.parse({ authorisedBy: { kind: 'groups', groups: [a] } }),
    };
    const events = [
      add('2026-11-01T00:00:00.000Z', a, { groupKey: b }),
      add('2026-11-01T00:00:00.000Z', b, { groupKey: a }),
      add('2026-11-02T00:00:00.000Z', b, { userId: 'u1' }),
    ];
    expect(countMonth('2026-11', [rule], events)[0]?.quantity).toBe(1);
  });

  it('takes a snapshot as the whole direct membership at its instant (the safety net)', () => {
    const rule = products[0];
    if (rule === undefined) throw new Error('no rule');
    const events: EvidenceEvent[] = [
      add('2026-10-01T00:00:00.000Z', RDS, { userId: 'old' }),
      {
        type: 'group.members',
        at: '2026-11-04T02:00:00.000Z',
        source: 'snapshot',
        ref: ref(),
        groupKey: RDS,
        members: [{ userId: 'seen-by-snapshot' }],
      },
    ];
    const [rds] = countMonth('2026-11', [rule], events);
    expect(rds?.users.map((u) => [u.userId, u.days])).toEqual([
      ['old', 4],
      ['seen-by-snapshot', 27],
    ]);
  });

  it('refuses evidence and rules that do not parse', () => {
    expect(evidenceEventSchema.safeParse({ type: 'member.added', at: 'yesterday' }).success).toBe(false);
    expect(splaRuleSchema.safeParse({}).success).toBe(false);
    expect(
      splaRuleSchema.safeParse({ fixedQuantity: 4, authorisedBy: { kind: 'service', flag: 'rds' } }).success,
    ).toBe(false);
  });

  it('knows month bounds, the previous month, and writes RFC 4180 CSV', () => {
    expect(monthBounds('2026-12')).toEqual({
      start: new Date('2026-12-01T00:00:00.000Z'),
      end: new Date('2027-01-01T00:00:00.000Z'),
    });
    expect(previousMonth(new Date('2027-01-01T02:00:00.000Z'))).toBe('2026-12');
    expect(() => monthBounds('2026-13')).toThrow();
    expect(toCsv(['a', 'b'], [['x,y', 'say "hi"']])).toBe('a,b\r\n"x,y","say ""hi"""\r\n');
  });
});
