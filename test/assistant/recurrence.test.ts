import { describe, expect, it } from 'vitest';
import {
  nextOccurrence,
  normalizeRecurrence,
  occurrencesBetween,
  seriesEnd,
} from '../../src/assistant/recurrence.js';
import { formatInstant, parseTemporal } from '../../src/assistant/time.js';
import { errorOf } from '../support/errors.js';

/** The UTC instant of a local wall-clock time in a zone. */
function local(text: string, zone: string): string {
  const t = parseTemporal(text, 'test', zone);
  if (!('at' in t)) throw new Error(`${text} is not a date-time`);
  return t.at;
}

describe('normalizeRecurrence', () => {
  it('accepts rules with or without the RRULE: prefix and returns canonical text', () => {
    expect(normalizeRecurrence('FREQ=DAILY')).toBe('FREQ=DAILY');
    expect(normalizeRecurrence('RRULE:FREQ=WEEKLY;BYDAY=MO,WE')).toBe('FREQ=WEEKLY;BYDAY=MO,WE');
    expect(normalizeRecurrence('  rrule:freq=daily;count=3  ')).toBe('FREQ=DAILY;COUNT=3');
    expect(normalizeRecurrence('FREQ=MONTHLY;BYMONTHDAY=31')).toBe('FREQ=MONTHLY;BYMONTHDAY=31');
    expect(normalizeRecurrence('FREQ=WEEKLY;UNTIL=20260401T000000Z')).toBe(
      'FREQ=WEEKLY;UNTIL=20260401T000000Z',
    );
  });

  it('is idempotent', () => {
    for (const rule of ['FREQ=WEEKLY;INTERVAL=2;BYDAY=FR', 'RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=29']) {
      const once = normalizeRecurrence(rule);
      expect(normalizeRecurrence(once)).toBe(once);
    }
  });

  it('rejects DTSTART and several lines', () => {
    for (const rule of [
      'DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY',
      'FREQ=DAILY;DTSTART=20260101T000000Z',
      'FREQ=DAILY\nFREQ=WEEKLY',
    ]) {
      const err = errorOf(() => normalizeRecurrence(rule));
      expect(err.code).toBe('invalid_input');
      expect(err.field).toBe('recurrence');
      expect(err.message).toMatch(/must not contain DTSTART or several lines/);
    }
  });

  it('rejects a rule without FREQ', () => {
    for (const rule of ['COUNT=3', 'BYDAY=MO', '']) {
      const err = errorOf(() => normalizeRecurrence(rule, 'items[0].recurrence'));
      expect(err.field).toBe('items[0].recurrence');
      expect(err.message).toMatch(/has no FREQ/);
      expect(err.hint).toMatch(/FREQ=DAILY/);
    }
  });

  it('rejects an unknown FREQ, listing the frequencies', () => {
    const err = errorOf(() => normalizeRecurrence('FREQ=SOMETIMES'));
    expect(err.field).toBe('recurrence');
    expect(err.message).toMatch(/FREQ=SOMETIMES is not a frequency/);
    expect(err.message).toMatch(/WEEKLY/);
  });

  it('rejects garbage, saying it is not a valid RRULE', () => {
    for (const rule of ['garbage', 'every tuesday', 'FREQ=DAILY;BOGUS=1']) {
      const err = errorOf(() => normalizeRecurrence(rule));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toContain(`"${rule}" is not a valid RRULE`);
    }
  });
});

describe('occurrencesBetween', () => {
  it('keeps a daily 09:00 in Paris at 09:00 local across the spring change (08:00Z → 07:00Z)', () => {
    const start = local('2026-03-26T09:00', 'Europe/Paris');
    expect(start).toBe('2026-03-26T08:00:00.000Z');
    const occ = occurrencesBetween(
      'FREQ=DAILY',
      start,
      'Europe/Paris',
      '2026-03-26T00:00:00.000Z',
      '2026-04-01T00:00:00.000Z',
    );
    expect(occ).toEqual([
      '2026-03-26T08:00:00.000Z',
      '2026-03-27T08:00:00.000Z',
      '2026-03-28T08:00:00.000Z',
      '2026-03-29T07:00:00.000Z', // clocks go forward in the night of Sat 28 to Sun 29 March
      '2026-03-30T07:00:00.000Z',
      '2026-03-31T07:00:00.000Z',
    ]);
    for (const o of occ) expect(formatInstant(o, 'Europe/Paris').slice(11, 19)).toBe('09:00:00');
  });

  it('keeps a daily 09:00 in Paris at 09:00 local across the autumn change (07:00Z → 08:00Z)', () => {
    const start = local('2026-03-26T09:00', 'Europe/Paris');
    const occ = occurrencesBetween(
      'FREQ=DAILY',
      start,
      'Europe/Paris',
      '2026-10-23T00:00:00.000Z',
      '2026-10-28T00:00:00.000Z',
    );
    expect(occ).toEqual([
      '2026-10-23T07:00:00.000Z',
      '2026-10-24T07:00:00.000Z',
      '2026-10-25T08:00:00.000Z', // clocks go back in the night of Sat 24 to Sun 25 October
      '2026-10-26T08:00:00.000Z',
      '2026-10-27T08:00:00.000Z',
    ]);
    for (const o of occ) expect(formatInstant(o, 'Europe/Paris').slice(11, 19)).toBe('09:00:00');
  });

  it('does the same for America/New_York (second Sunday of March, first Sunday of November)', () => {
    const start = local('2026-03-06T09:00', 'America/New_York');
    expect(start).toBe('2026-03-06T14:00:00.000Z');
    const spring = occurrencesBetween(
      'FREQ=DAILY',
      start,
      'America/New_York',
      '2026-03-06T00:00:00.000Z',
      '2026-03-11T00:00:00.000Z',
    );
    expect(spring).toEqual([
      '2026-03-06T14:00:00.000Z',
      '2026-03-07T14:00:00.000Z',
      '2026-03-08T13:00:00.000Z',
      '2026-03-09T13:00:00.000Z',
      '2026-03-10T13:00:00.000Z',
    ]);
    const autumn = occurrencesBetween(
      'FREQ=WEEKLY;BYDAY=SA,SU,MO',
      start,
      'America/New_York',
      '2026-10-31T00:00:00.000Z',
      '2026-11-03T00:00:00.000Z',
    );
    expect(autumn).toEqual([
      '2026-10-31T13:00:00.000Z',
      '2026-11-01T14:00:00.000Z',
      '2026-11-02T14:00:00.000Z',
    ]);
    for (const o of [...spring, ...autumn]) {
      expect(formatInstant(o, 'America/New_York').slice(11, 19)).toBe('09:00:00');
    }
  });

  it('returns exactly the occurrences in [from, to)', () => {
    const start = '2026-01-05T10:00:00.000Z';
    expect(
      occurrencesBetween('FREQ=DAILY', start, 'UTC', '2026-01-06T10:00:00.000Z', '2026-01-08T10:00:00.000Z'),
    ).toEqual(['2026-01-06T10:00:00.000Z', '2026-01-07T10:00:00.000Z']);
    // Nothing before the series starts.
    expect(
      occurrencesBetween('FREQ=DAILY', start, 'UTC', '2025-12-01T00:00:00.000Z', '2026-01-06T00:00:00.000Z'),
    ).toEqual([start]);
    // COUNT ends the series.
    expect(
      occurrencesBetween(
        'FREQ=DAILY;COUNT=2',
        start,
        'UTC',
        '2026-01-01T00:00:00.000Z',
        '2026-02-01T00:00:00.000Z',
      ),
    ).toEqual([start, '2026-01-06T10:00:00.000Z']);
  });

  it('reads UNTIL as a UTC instant', () => {
    // Weekly on Fridays at 09:00 Paris until 2026-04-03T07:00Z: that is exactly the third occurrence (09:00 CEST).
    const start = local('2026-03-20T09:00', 'Europe/Paris');
    expect(
      occurrencesBetween(
        'FREQ=WEEKLY;UNTIL=20260403T070000Z',
        start,
        'Europe/Paris',
        '2026-03-01T00:00:00.000Z',
        '2026-06-01T00:00:00.000Z',
      ),
    ).toEqual(['2026-03-20T08:00:00.000Z', '2026-03-27T08:00:00.000Z', '2026-04-03T07:00:00.000Z']);
  });
});

describe('nextOccurrence', () => {
  it('goes from one 31st to the next month that has one', () => {
    const jan31 = local('2026-01-31T09:00', 'Europe/Paris');
    for (const rule of ['FREQ=MONTHLY;BYMONTHDAY=31', 'FREQ=MONTHLY']) {
      const mar31 = nextOccurrence(rule, jan31, 'Europe/Paris', jan31);
      // February has no 31st; 31 March is after the spring change, still 09:00 local.
      expect(mar31).toBe('2026-03-31T07:00:00.000Z');
      const may31 = nextOccurrence(rule, jan31, 'Europe/Paris', mar31 as string);
      expect(may31).toBe('2026-05-31T07:00:00.000Z');
    }
  });

  it('is strictly after the given instant', () => {
    const start = '2026-01-01T09:00:00.000Z';
    expect(nextOccurrence('FREQ=DAILY', start, 'UTC', start)).toBe('2026-01-02T09:00:00.000Z');
    expect(nextOccurrence('FREQ=DAILY', start, 'UTC', '2026-01-01T08:59:59.000Z')).toBe(start);
    expect(nextOccurrence('FREQ=WEEKLY;BYDAY=MO', start, 'UTC', start)).toBe('2026-01-05T09:00:00.000Z');
  });

  it('returns null when a COUNT-limited series has ended', () => {
    const start = '2026-01-01T09:00:00.000Z';
    const rule = 'FREQ=DAILY;COUNT=3';
    expect(nextOccurrence(rule, start, 'UTC', start)).toBe('2026-01-02T09:00:00.000Z');
    expect(nextOccurrence(rule, start, 'UTC', '2026-01-02T09:00:00.000Z')).toBe('2026-01-03T09:00:00.000Z');
    expect(nextOccurrence(rule, start, 'UTC', '2026-01-03T09:00:00.000Z')).toBeNull();
  });

  it('returns null after UNTIL', () => {
    const start = '2026-01-01T09:00:00.000Z';
    expect(
      nextOccurrence('FREQ=DAILY;UNTIL=20260102T090000Z', start, 'UTC', '2026-01-02T09:00:00.000Z'),
    ).toBeNull();
  });

  it('steps a date-only series (midnight local) a calendar day at a time across DST', () => {
    const midnight = local('2026-03-28T00:00', 'Europe/Paris');
    const next = nextOccurrence('FREQ=DAILY', midnight, 'Europe/Paris', midnight);
    expect(next).toBe('2026-03-28T23:00:00.000Z'); // 29 March 00:00 CET is still +01:00
    const after = nextOccurrence('FREQ=DAILY', midnight, 'Europe/Paris', next as string);
    expect(after).toBe('2026-03-29T22:00:00.000Z'); // 30 March 00:00 CEST
    expect(formatInstant(after as string, 'Europe/Paris')).toBe('2026-03-30T00:00:00+02:00');
  });
});

describe('seriesEnd', () => {
  it('is null for a series that never ends', () => {
    expect(seriesEnd('FREQ=DAILY', '2026-01-01T09:00:00.000Z', 'UTC')).toBeNull();
    expect(seriesEnd('FREQ=WEEKLY;BYDAY=MO,FR', '2026-01-01T09:00:00.000Z', 'Europe/Paris')).toBeNull();
  });

  it('is the last occurrence of a COUNT-limited series, in the item’s zone', () => {
    expect(seriesEnd('FREQ=DAILY;COUNT=3', '2026-01-01T09:00:00.000Z', 'UTC')).toBe(
      '2026-01-03T09:00:00.000Z',
    );
    // Five days of 09:00 Paris from Thursday 26 March: the last one (Monday 30) is in summer time.
    expect(seriesEnd('FREQ=DAILY;COUNT=5', local('2026-03-26T09:00', 'Europe/Paris'), 'Europe/Paris')).toBe(
      '2026-03-30T07:00:00.000Z',
    );
  });

  it('is the last occurrence on or before UNTIL', () => {
    expect(
      seriesEnd(
        'FREQ=WEEKLY;UNTIL=20260401T000000Z',
        local('2026-03-20T09:00', 'Europe/Paris'),
        'Europe/Paris',
      ),
    ).toBe('2026-03-27T08:00:00.000Z');
  });
});

describe('rules that rrule alone would search forever', () => {
  it('accepts lower-case rules (RFC 5545 names are case-insensitive)', () => {
    expect(normalizeRecurrence('freq=weekly;byday=mo,we')).toBe('FREQ=WEEKLY;BYDAY=MO,WE');
  });

  it('refuses a rule whose parts never meet, naming why', () => {
    const err = errorOf(() => normalizeRecurrence('FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30'));
    expect(err.field).toBe('recurrence');
    expect(err.message).toMatch(/never produces a date/);
    // Leap days are rare but real.
    expect(normalizeRecurrence('FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29')).toBe(
      'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29',
    );
  });

  it('ends the search for a next occurrence of a series whose matches have run out', () => {
    // Week 53 exists only in some years; the next one after 2026-12-28 (ISO week 53 of 2026) is in 2032.
    const start = local('2026-12-28T09:00', 'UTC');
    const next = nextOccurrence('FREQ=WEEKLY;BYWEEKNO=53;BYDAY=MO', start, 'UTC', start);
    expect(next).toBe(local('2032-12-27T09:00', 'UTC'));
  });
});
