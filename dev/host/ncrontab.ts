/**
 * Six-field NCRONTAB as the Functions timer trigger reads it: `second minute hour day month day-of-week`,
 * with `*`, lists, ranges and steps (`*\/5`, `1-10/2`), month and weekday names. Evaluated in UTC, as
 * on Azure unless WEBSITE_TIME_ZONE is set.
 */
interface Field {
  min: number;
  max: number;
  names?: string[];
}

const fields: Field[] = [
  { min: 0, max: 59 },
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  {
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

export interface Schedule {
  seconds: Set<number>;
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  anyDay: boolean;
  anyWeekday: boolean;
}

function value(token: string, field: Field, expression: string): number {
  const lower = token.toLowerCase();
  const named = field.names?.indexOf(lower) ?? -1;
  const n = named >= 0 ? named + field.min : Number(lower);
  if (!Number.isInteger(n) || n < field.min || n > field.max)
    throw new Error(`invalid NCRONTAB value "${token}" in "${expression}"`);
  return n;
}

function parseField(text: string, field: Field, expression: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [range = '', stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`invalid step in "${expression}"`);
    let low: number;
    let high: number;
    if (range === '*') {
      low = field.min;
      high = field.max;
    } else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      low = value(a, field, expression);
      high = value(b, field, expression);
    } else {
      low = value(range, field, expression);
      high = stepText === undefined ? low : field.max;
    }
    if (low > high) throw new Error(`invalid range "${range}" in "${expression}"`);
    for (let v = low; v <= high; v += step) out.add(v);
  }
  return out;
}

export function parseNcrontab(expression: string): Schedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 6)
    throw new Error(`NCRONTAB needs 6 fields (second minute hour day month day-of-week): "${expression}"`);
  const [s, m, h, d, mo, w] = parts.map((p, i) => parseField(p, fields[i] as Field, expression)) as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  return {
    seconds: s,
    minutes: m,
    hours: h,
    days: d,
    months: mo,
    weekdays: w,
    anyDay: parts[3] === '*',
    anyWeekday: parts[5] === '*',
  };
}

function dayMatches(schedule: Schedule, date: Date): boolean {
  const dom = schedule.days.has(date.getUTCDate());
  const dow = schedule.weekdays.has(date.getUTCDay());
  // Cron rule: when both day fields are restricted, either may match.
  if (!schedule.anyDay && !schedule.anyWeekday) return dom || dow;
  return dom && dow;
}

/** The first occurrence strictly after `after`. */
export function nextOccurrence(schedule: Schedule, after: Date): Date {
  const t = new Date(after.getTime());
  t.setUTCMilliseconds(0);
  t.setUTCSeconds(t.getUTCSeconds() + 1);
  const limit = after.getTime() + 5 * 366 * 24 * 3600 * 1000;
  while (t.getTime() < limit) {
    if (!schedule.months.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0);
      continue;
    }
    if (!dayMatches(schedule, t)) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0);
      continue;
    }
    if (!schedule.hours.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0);
      continue;
    }
    if (!schedule.minutes.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0);
      continue;
    }
    if (!schedule.seconds.has(t.getUTCSeconds())) {
      t.setUTCSeconds(t.getUTCSeconds() + 1);
      continue;
    }
    return t;
  }
  throw new Error('NCRONTAB schedule never fires');
}
