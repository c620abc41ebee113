import { DateTime } from 'luxon';
import { createRequire } from 'node:module';
import type { Options as RRuleOptions, RRule as RRuleClass } from 'rrule';
import { invalid } from './errors.js';

// rrule is loaded on first use: most start-ups never touch a recurrence, and it is a large module.
let rruleClass: typeof RRuleClass | undefined;
const RRule = {
  get cls(): typeof RRuleClass {
    rruleClass ??= (createRequire(import.meta.url)('rrule') as { RRule: typeof RRuleClass }).RRule;
    return rruleClass;
  },
  parseString(text: string): Partial<RRuleOptions> {
    return this.cls.parseString(text);
  },
};

const MAX_EXPANSION = 5000;

/** Validates an RFC 5545 RRULE (with or without the "RRULE:" prefix) and returns its canonical text. */
export function normalizeRecurrence(input: string, field = 'recurrence'): string {
  // Property names and values are case-insensitive (RFC 5545 §3.1); rrule only reads upper case.
  const text = input
    .trim()
    .replace(/^RRULE:/i, '')
    .toUpperCase();
  if (/DTSTART|\n/i.test(text)) {
    throw invalid(
      field,
      'must not contain DTSTART or several lines',
      'The item’s own start or due date is the series start.',
    );
  }
  let options: Partial<RRuleOptions>;
  try {
    options = RRule.parseString(text);
  } catch (err) {
    throw invalid(
      field,
      `"${input}" is not a valid RRULE (${(err as Error).message})`,
      'Example: FREQ=WEEKLY;BYDAY=MO,WE or FREQ=MONTHLY;BYMONTHDAY=1;COUNT=12.',
    );
  }
  if (options.freq === undefined || options.freq === null) {
    const given = /(?:^|;)FREQ=([^;]*)/i.exec(text)?.[1];
    throw invalid(
      field,
      given === undefined
        ? `"${input}" has no FREQ`
        : `FREQ=${given} is not a frequency (allowed: YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY, MINUTELY, SECONDLY)`,
      'Example: FREQ=DAILY, FREQ=WEEKLY;BYDAY=FR.',
    );
  }
  const outOfRange = rangeProblem(input.trim().replace(/^RRULE:/i, ''));
  if (outOfRange) {
    throw invalid(
      field,
      outOfRange,
      'Example: FREQ=WEEKLY;BYDAY=MO,WE or FREQ=MONTHLY;BYMONTHDAY=1;COUNT=12.',
    );
  }
  let canonical: string;
  try {
    canonical = new RRule.cls(options).toString().replace(/^RRULE:/, '');
  } catch (err) {
    throw invalid(
      field,
      `"${input}" is not a valid RRULE (${(err as Error).message})`,
      'Example: FREQ=WEEKLY;BYDAY=MO,WE or FREQ=MONTHLY;BYMONTHDAY=1;COUNT=12.',
    );
  }
  // A rule whose parts can never meet (BYMONTH=2;BYMONTHDAY=30) would make rrule search to the year 9999.
  const probe = rule(canonical, DateTime.fromISO('2024-01-01T00:00', { zone: 'UTC' }), {
    years: PROBE_YEARS,
  });
  if (probe.all((_d, i) => i < 1).length === 0) {
    throw invalid(
      field,
      `"${input}" never produces a date within ${PROBE_YEARS} years`,
      'Check that its parts can meet (for example February has no 30th).',
    );
  }
  return canonical;
}

// RFC 5545 ranges. rrule accepts values outside them, and some (BYMONTHDAY=40, INTERVAL=-2) make
// its expansion loop forever, which would wedge the server on every later listing.
const PART_RANGES: Record<string, { min: number; max: number; negative: boolean }> = {
  COUNT: { min: 1, max: Number.MAX_SAFE_INTEGER, negative: false },
  INTERVAL: { min: 1, max: Number.MAX_SAFE_INTEGER, negative: false },
  BYSECOND: { min: 0, max: 60, negative: false },
  BYMINUTE: { min: 0, max: 59, negative: false },
  BYHOUR: { min: 0, max: 23, negative: false },
  BYMONTHDAY: { min: 1, max: 31, negative: true },
  BYYEARDAY: { min: 1, max: 366, negative: true },
  BYWEEKNO: { min: 1, max: 53, negative: true },
  BYMONTH: { min: 1, max: 12, negative: false },
  BYSETPOS: { min: 1, max: 366, negative: true },
};

/** The first part of an RRULE whose value is outside its RFC 5545 range, in words; null when all fit. */
function rangeProblem(text: string): string | null {
  for (const part of text.split(';')) {
    const [rawKey = '', value = ''] = part.split('=');
    const key = rawKey.trim().toUpperCase();
    const values = value.split(',').map((v) => v.trim());
    if (key === 'BYDAY') {
      for (const v of values) {
        const m = /^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$/i.exec(v);
        const n = m?.[1] === undefined ? null : Number(m[1]);
        if (!m || (n !== null && (n === 0 || Math.abs(n) > 53)))
          return `BYDAY value "${v}" is not a weekday (MO, TU, WE, TH, FR, SA, SU, optionally with a position such as 1MO or -1FR)`;
      }
      continue;
    }
    const range = PART_RANGES[key];
    if (!range) continue;
    for (const v of values) {
      const n = /^[+-]?\d+$/.test(v) ? Number(v) : NaN;
      const ok =
        Number.isSafeInteger(n) &&
        ((n >= range.min && n <= range.max) || (range.negative && n <= -range.min && n >= -range.max));
      if (!ok) {
        const allowed =
          range.max === Number.MAX_SAFE_INTEGER
            ? `a whole number of at least ${range.min}`
            : range.negative
              ? `${range.min} to ${range.max} or -${range.max} to -${range.min}`
              : `${range.min} to ${range.max}`;
        return `${key}=${v} is out of range (allowed: ${allowed})`;
      }
    }
  }
  return null;
}

/** rrule works in UTC: we feed it wall-clock times "as if UTC" and map results back into the item's zone. */
function floating(dt: DateTime): Date {
  return new Date(Date.UTC(dt.year, dt.month - 1, dt.day, dt.hour, dt.minute, dt.second, dt.millisecond));
}

function unfloat(d: Date, zone: string): DateTime {
  return DateTime.fromObject(
    {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
    },
    { zone },
  );
}

const PROBE_YEARS = 10;
/** How far the end of a COUNT-limited series, or a next occurrence, is searched. */
const SEARCH_YEARS = 50;

/**
 * The rule with DTSTART at `start` (wall-clock time of its zone). Every search is bounded by a horizon, given as an
 * instant or as a span after the start, folded into UNTIL: rrule otherwise iterates to the year 9999 when no
 * occurrence matches.
 */
function rule(rrule: string, start: DateTime, horizon: Date | { years: number }): RRuleClass {
  const options = RRule.parseString(rrule);
  if (options.until) {
    // UNTIL is a UTC instant (or a date): express it in the same floating frame as DTSTART.
    options.until = floating(DateTime.fromJSDate(options.until, { zone: 'UTC' }).setZone(start.zone));
  }
  const limit = horizon instanceof Date ? horizon : floating(start.plus(horizon));
  if (!options.until || options.until > limit) options.until = limit;
  return new RRule.cls({ ...options, dtstart: floating(start) });
}

/** Occurrence starts (UTC ISO) in [from, to), computed in the item's own zone so DST lands right. */
export function occurrencesBetween(
  rrule: string,
  startUtc: string,
  zone: string,
  fromUtc: string,
  toUtc: string,
): string[] {
  const start = DateTime.fromISO(startUtc, { zone: 'UTC' }).setZone(zone);
  // Widen by a day each side in the floating frame, then filter exactly on real instants.
  const from = floating(DateTime.fromISO(fromUtc, { zone: 'UTC' }).setZone(zone).minus({ days: 1 }));
  const to = floating(DateTime.fromISO(toUtc, { zone: 'UTC' }).setZone(zone).plus({ days: 1 }));
  const r = rule(rrule, start, to);
  const out: string[] = [];
  for (const d of r.between(from, to, true, (_d, i) => i < MAX_EXPANSION)) {
    const iso = unfloat(d, zone).toUTC().toISO() as string;
    if (iso >= fromUtc && iso < toUtc) out.push(iso);
  }
  return out;
}

/** The first occurrence strictly after `afterUtc`, or null when the series has ended. */
export function nextOccurrence(
  rrule: string,
  startUtc: string,
  zone: string,
  afterUtc: string,
): string | null {
  const start = DateTime.fromISO(startUtc, { zone: 'UTC' }).setZone(zone);
  const afterLocal = DateTime.fromISO(afterUtc, { zone: 'UTC' }).setZone(zone);
  const r = rule(rrule, start, floating(afterLocal.plus({ years: SEARCH_YEARS })));
  const after = floating(afterLocal);
  const next = r.after(after, false);
  return next ? (unfloat(next, zone).toUTC().toISO() as string) : null;
}

/** The start of the last occurrence, or null when the series never ends. */
export function seriesEnd(rrule: string, startUtc: string, zone: string): string | null {
  const options = RRule.parseString(rrule);
  if (!options.until && !options.count) return null;
  const start = DateTime.fromISO(startUtc, { zone: 'UTC' }).setZone(zone);
  const all = rule(rrule, start, { years: SEARCH_YEARS }).all((_d, i) => i < MAX_EXPANSION);
  const last = all[all.length - 1];
  return last ? (unfloat(last, zone).toUTC().toISO() as string) : startUtc;
}
