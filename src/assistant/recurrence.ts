import { DateTime } from 'luxon';
import rrulePkg from 'rrule';
import { invalid } from './errors.js';

const { RRule } = rrulePkg;
type RRuleOptions = ConstructorParameters<typeof RRule>[0];

const MAX_EXPANSION = 5000;

/** Validates an RFC 5545 RRULE (with or without the "RRULE:" prefix) and returns its canonical text. */
export function normalizeRecurrence(input: string, field = 'recurrence'): string {
  const text = input.trim().replace(/^RRULE:/i, '');
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
  return new RRule(options).toString().replace(/^RRULE:/, '');
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

function rule(rrule: string, start: DateTime): InstanceType<typeof RRule> {
  const options = RRule.parseString(rrule);
  if (options.until) {
    // UNTIL is a UTC instant (or a date): express it in the same floating frame as DTSTART.
    options.until = floating(DateTime.fromJSDate(options.until, { zone: 'UTC' }).setZone(start.zone));
  }
  return new RRule({ ...options, dtstart: floating(start) });
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
  const r = rule(rrule, start);
  // Widen by a day each side in the floating frame, then filter exactly on real instants.
  const from = floating(DateTime.fromISO(fromUtc, { zone: 'UTC' }).setZone(zone).minus({ days: 1 }));
  const to = floating(DateTime.fromISO(toUtc, { zone: 'UTC' }).setZone(zone).plus({ days: 1 }));
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
  const r = rule(rrule, start);
  const after = floating(DateTime.fromISO(afterUtc, { zone: 'UTC' }).setZone(zone));
  const next = r.after(after, false);
  return next ? (unfloat(next, zone).toUTC().toISO() as string) : null;
}

/** The start of the last occurrence, or null when the series never ends. */
export function seriesEnd(rrule: string, startUtc: string, zone: string): string | null {
  const options = RRule.parseString(rrule);
  if (!options.until && !options.count) return null;
  const start = DateTime.fromISO(startUtc, { zone: 'UTC' }).setZone(zone);
  const all = rule(rrule, start).all((_d, i) => i < MAX_EXPANSION);
  const last = all[all.length - 1];
  return last ? (unfloat(last, zone).toUTC().toISO() as string) : startUtc;
}
