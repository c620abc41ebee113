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
  const stepping = steppingProblem(options);
  if (stepping) {
    throw invalid(
      field,
      stepping,
      'For times within a day use FREQ=DAILY with BYHOUR and BYMINUTE, e.g. FREQ=DAILY;BYHOUR=9,13,17;BYMINUTE=0.',
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
  // A rule whose parts can never meet (BYMONTH=2;BYMONTHDAY=30) would make rrule search to the year 9999: it
  // checks UNTIL only against dates it produced, so even the bounded probe below would walk ~8000 years (seconds of
  // a blocked server). Every period from 9970 on (INTERVAL=1, no UNTIL or COUNT: a superset of the rule's
  // occurrences) covers the calendar's 28-year cycle before rrule's last year: nothing there, nothing ever.
  const late = RRule.parseString(canonical);
  delete late.until;
  delete late.count;
  const lateProbe = new RRule.cls({ ...late, interval: 1, dtstart: new Date(Date.UTC(9970, 0, 1)) });
  if (lateProbe.all((_d, i) => i < 1).length === 0) {
    throw invalid(
      field,
      `"${input}" never produces a date`,
      'Check that its parts can meet (for example February has no 30th).',
    );
  }
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

/**
 * rrule steps HOURLY, MINUTELY and SECONDLY series one INTERVAL at a time until the hour (minute, second) is one of
 * BYHOUR (BYMINUTE, BYSECOND); when none can be reached that way (FREQ=HOURLY;INTERVAL=2;BYHOUR=1), or after a day
 * that BYMONTHDAY, BYDAY… skip (FREQ=MINUTELY;BYHOUR=2;BYMONTHDAY=2), it never stops, and the server with it
 * (rrule issue #468; the library is unmaintained). Those parts are refused with these frequencies.
 */
function steppingProblem(options: Partial<RRuleOptions>): string | null {
  const freq = options.freq;
  // rrule's Frequency: HOURLY 4, MINUTELY 5, SECONDLY 6.
  const names: Record<number, string> = { 4: 'HOURLY', 5: 'MINUTELY', 6: 'SECONDLY' };
  if (freq === undefined || freq === null || names[freq] === undefined) return null;
  const given = (v: unknown): boolean => v !== undefined && v !== null && (!Array.isArray(v) || v.length > 0);
  const parts: string[] = [];
  if (given(options.byhour)) parts.push('BYHOUR');
  if (freq >= 5 && given(options.byminute)) parts.push('BYMINUTE');
  if (freq >= 6 && given(options.bysecond)) parts.push('BYSECOND');
  if (parts.length === 0) return null;
  return `${parts.join(' and ')} cannot be combined with FREQ=${names[freq]}`;
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
 * Length of one period of the frequencies whose periods are fixed in the floating frame (rrule's Frequency values:
 * WEEKLY 2, DAILY 3, HOURLY 4, MINUTELY 5, SECONDLY 6), in milliseconds.
 */
const FIXED_PERIOD_MS: Readonly<Record<number, number>> = {
  2: 7 * 86_400_000,
  3: 86_400_000,
  4: 3_600_000,
  5: 60_000,
  6: 1000,
};

/**
 * The rule with DTSTART at `start` (wall-clock time of its zone). Every search is bounded by a horizon, given as an
 * instant or as a span after the start, folded into UNTIL: rrule otherwise iterates to the year 9999 when no
 * occurrence matches.
 *
 * `notBefore` (floating): only occurrences from there on are wanted. rrule walks every period from DTSTART, so a
 * series started long ago (every second since 1900) would take billions of steps and wedge the server. For a rule
 * without COUNT whose periods have a fixed length, DTSTART is moved forward by a whole number of INTERVAL periods
 * to the last one at or before `notBefore`: the same periods, the same defaults taken from DTSTART (time of day,
 * weekday), so the same occurrences from the new DTSTART on.
 */
function rule(
  rrule: string,
  start: DateTime,
  horizon: Date | { years: number },
  notBefore?: Date,
): RRuleClass {
  const options = RRule.parseString(rrule);
  if (options.until) {
    // UNTIL is a UTC instant (or a date): express it in the same floating frame as DTSTART.
    options.until = floating(DateTime.fromJSDate(options.until, { zone: 'UTC' }).setZone(start.zone));
  }
  const limit = horizon instanceof Date ? horizon : floating(start.plus(horizon));
  if (!options.until || options.until > limit) options.until = limit;
  let dtstart = floating(start);
  const unit =
    options.freq === undefined || options.freq === null ? undefined : FIXED_PERIOD_MS[options.freq];
  if (notBefore !== undefined && !options.count && unit !== undefined) {
    const period = unit * Math.max(1, options.interval ?? 1);
    const periods = Math.floor((notBefore.getTime() - dtstart.getTime()) / period);
    if (periods > 0) dtstart = new Date(dtstart.getTime() + periods * period);
  }
  return new RRule.cls({ ...options, dtstart });
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
  const r = rule(rrule, start, to, from);
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
  const after = floating(afterLocal);
  const r = rule(rrule, start, floating(afterLocal.plus({ years: SEARCH_YEARS })), after);
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
