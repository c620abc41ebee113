import { DateTime, IANAZone } from 'luxon';
import { invalid } from './errors.js';

/** A calendar date (no time, no zone) or an instant with the IANA zone it was given in. */
export type Temporal = { date: string } | { at: string; tz: string };

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const DATETIME_RE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;

export const TEMPORAL_FORMATS =
  'YYYY-MM-DD for a date, or YYYY-MM-DDTHH:MM[:SS] for a time (optionally ending in Z or an offset like +02:00)';

export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function checkZone(zone: string, field = 'timezone'): string {
  if (!IANAZone.isValidZone(zone)) {
    throw invalid(
      field,
      `unknown time zone "${zone}"`,
      'Use an IANA time zone name such as Europe/Paris, America/New_York or UTC.',
    );
  }
  return canonicalZones().get(zone.toLowerCase()) ?? IANAZone.create(zone).name;
}

let zonesByLowerCase: Map<string, string> | undefined;

/** IANA names by their lower-case spelling, so "europe/paris" is stored as "Europe/Paris". */
function canonicalZones(): Map<string, string> {
  zonesByLowerCase ??= new Map(
    [...Intl.supportedValuesOf('timeZone'), 'UTC'].map((z) => [z.toLowerCase(), z] as const),
  );
  return zonesByLowerCase;
}

/**
 * Moves `targetUtc` the way `baseUtc` moved to `newBaseUtc`, keeping their wall-clock distance in `zone`: a
 * reminder "the evening before at 18:00" stays at 18:00 when a daylight-saving change falls in between.
 */
export function keepWallClockOffset(
  baseUtc: string,
  targetUtc: string,
  newBaseUtc: string,
  zone: string,
): string {
  const wall = (utc: string): DateTime => {
    const local = DateTime.fromISO(utc, { zone: 'UTC' }).setZone(zone);
    return DateTime.fromObject(local.toObject(), { zone: 'UTC' });
  };
  const offsetMs = wall(targetUtc).toMillis() - wall(baseUtc).toMillis();
  const target = wall(newBaseUtc).plus({ milliseconds: offsetMs });
  return DateTime.fromObject(target.toObject(), { zone }).toUTC().toISO() as string;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/** Why a YYYY-MM-DD[Thh:mm[:ss]] value is not real, in words. */
function explain(text: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/i.exec(text);
  if (!m) return 'unreadable';
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12) return `there is no month ${month}`;
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > days) return `${MONTHS[month - 1]} ${year} has ${days} days`;
  if (m[4] !== undefined && Number(m[4]) > 23) return `hour ${m[4]} is out of range (00–23)`;
  if (m[5] !== undefined && Number(m[5]) > 59) return `minute ${m[5]} is out of range (00–59)`;
  if (m[6] !== undefined && Number(m[6]) > 59) return `second ${m[6]} is out of range (00–59)`;
  return 'the offset is not valid';
}

/** Parses a user-supplied date or date-time. A date stays a date; a local time is read in `zone`. */
export function parseTemporal(input: string, field: string, zone: string): Temporal {
  const text = input.trim();
  if (DATE_RE.test(text)) {
    const dt = DateTime.fromISO(text, { zone: 'UTC' });
    if (!dt.isValid)
      throw invalid(field, `"${input}" is not a real date (${explain(text)})`, `Use ${TEMPORAL_FORMATS}.`);
    return { date: text };
  }
  const m = DATETIME_RE.exec(text);
  if (!m) {
    throw invalid(field, `"${input}" is not a date or date-time`, `Use ${TEMPORAL_FORMATS}.`);
  }
  const iso = `${m[1]}T${m[2]}${m[3] ?? ''}`;
  const dt = m[3] ? DateTime.fromISO(iso, { setZone: true }).setZone(zone) : DateTime.fromISO(iso, { zone });
  // Luxon reads any two-digit offset (+25:00, +02:75): keep to hours 00–23 and minutes 00–59.
  const offset = m[3] ? /^[+-](\d{2}):?(\d{2})$/.exec(m[3]) : null;
  if (!dt.isValid || (offset && (Number(offset[1]) > 23 || Number(offset[2]) > 59))) {
    throw invalid(field, `"${input}" is not a real date-time (${explain(text)})`, `Use ${TEMPORAL_FORMATS}.`);
  }
  return { at: dt.toUTC().toISO() as string, tz: zone };
}

/** The instant a temporal value sorts at: a date counts from its start in `zone`. */
export function temporalInstant(value: Temporal, zone: string): string {
  if ('date' in value) return DateTime.fromISO(value.date, { zone }).startOf('day').toUTC().toISO() as string;
  return value.at;
}

/** ISO 8601 with the offset of `zone` (a date stays a date). */
export function formatTemporal(value: Temporal, zone?: string): string {
  if ('date' in value) return value.date;
  return formatInstant(value.at, zone ?? value.tz);
}

export function formatInstant(utc: string, zone: string): string {
  return DateTime.fromISO(utc, { zone: 'UTC' }).setZone(zone).toISO({ suppressMilliseconds: true }) as string;
}

export function nowIso(clock: () => Date): string {
  return clock().toISOString();
}

/** Start of a calendar day in a zone, as a UTC instant. */
export function startOfDay(date: string, zone: string): string {
  return DateTime.fromISO(date, { zone }).startOf('day').toUTC().toISO() as string;
}

/** Today's date in a zone. */
export function todayIn(zone: string, clock: () => Date): string {
  return DateTime.fromJSDate(clock()).setZone(zone).toISODate() as string;
}

export function addDays(date: string, days: number): string {
  return DateTime.fromISO(date, { zone: 'UTC' }).plus({ days }).toISODate() as string;
}

export function plusMinutes(utc: string, minutes: number): string {
  return DateTime.fromISO(utc, { zone: 'UTC' }).plus({ minutes }).toISO() as string;
}

/** Parses a date-time the original Python program wrote: naive values are local time in `zone`. */
export function parseLegacyDateTime(value: unknown, zone: string): Temporal | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  try {
    return parseTemporal(value, 'legacy', zone);
  } catch {
    return null;
  }
}
