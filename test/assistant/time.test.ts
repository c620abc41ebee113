import { describe, expect, it } from 'vitest';
import {
  checkZone,
  formatInstant,
  formatTemporal,
  parseTemporal,
  temporalInstant,
} from '../../src/assistant/time.js';
import { errorOf } from '../support/errors.js';

describe('parseTemporal', () => {
  it('keeps a date as a date, whatever the zone', () => {
    expect(parseTemporal('2026-03-05', 'due_date', 'Europe/Paris')).toEqual({ date: '2026-03-05' });
    expect(parseTemporal('  2026-12-31 ', 'due_date', 'Pacific/Kiritimati')).toEqual({ date: '2026-12-31' });
    expect(parseTemporal('2028-02-29', 'due_date', 'UTC')).toEqual({ date: '2028-02-29' });
  });

  it('reads a local time in the given zone, with that zone’s offset on that day', () => {
    // Paris is UTC+1 in winter, UTC+2 in summer.
    expect(parseTemporal('2026-03-05T09:00', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-03-05T08:00:00.000Z',
      tz: 'Europe/Paris',
    });
    expect(parseTemporal('2026-07-05T09:00', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-07-05T07:00:00.000Z',
      tz: 'Europe/Paris',
    });
    // New York is UTC-5 in winter, UTC-4 in summer.
    expect(parseTemporal('2026-01-15T18:30:15', 'start_time', 'America/New_York')).toEqual({
      at: '2026-01-15T23:30:15.000Z',
      tz: 'America/New_York',
    });
    expect(parseTemporal('2026-03-05T09:00:00.250', 'due_date', 'UTC')).toEqual({
      at: '2026-03-05T09:00:00.250Z',
      tz: 'UTC',
    });
  });

  it('takes Z and explicit offsets at their word and records the zone it was given in', () => {
    expect(parseTemporal('2026-03-05T09:00Z', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-03-05T09:00:00.000Z',
      tz: 'Europe/Paris',
    });
    expect(parseTemporal('2026-03-05T09:00:00z', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-03-05T09:00:00.000Z',
      tz: 'Europe/Paris',
    });
    expect(parseTemporal('2026-03-05T09:00+05:30', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-03-05T03:30:00.000Z',
      tz: 'Europe/Paris',
    });
    expect(parseTemporal('2026-03-05T09:00-0800', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-03-05T17:00:00.000Z',
      tz: 'Europe/Paris',
    });
    // An offset wins over the zone: a New York offset in a Paris zone is still that instant.
    expect(parseTemporal('2026-07-01T12:00-04:00', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-07-01T16:00:00.000Z',
      tz: 'Europe/Paris',
    });
  });

  it('accepts the space-separated form the original program wrote', () => {
    expect(parseTemporal('2026-03-05 09:00:00', 'due_date', 'Europe/Paris')).toEqual(
      parseTemporal('2026-03-05T09:00:00', 'due_date', 'Europe/Paris'),
    );
    expect(parseTemporal('2026-03-05 09:00', 'due_date', 'Europe/Paris')).toEqual({
      at: '2026-03-05T08:00:00.000Z',
      tz: 'Europe/Paris',
    });
  });

  it('rejects values that are not dates, naming the field and saying why', () => {
    const cases: [string, RegExp][] = [
      ['2026-02-30', /not a real date \(February 2026 has 28 days\)/],
      ['2026-04-31', /April 2026 has 30 days/],
      ['2026-02-29T10:00', /not a real date-time \(February 2026 has 28 days\)/],
      ['2026-13-01', /there is no month 13/],
      ['2026-00-10', /there is no month 0/],
      ['2026-03-05T25:00', /hour 25 is out of range/],
      ['2026-03-05T10:61', /minute 61 is out of range/],
      ['2026-03-05T10:00:61', /second 61 is out of range/],
      ['2026-03-05T09:00+25:00', /offset is not valid/],
      ['2026-03-05T09:00+02:75', /offset is not valid/],
      ['tomorrow', /"tomorrow" is not a date or date-time/],
      ['05/03/2026', /is not a date or date-time/],
      ['2026-3-5', /is not a date or date-time/],
      ['2026-03-05T09', /is not a date or date-time/],
      ['', /is not a date or date-time/],
    ];
    for (const [input, reason] of cases) {
      const err = errorOf(() => parseTemporal(input, 'due_date', 'Europe/Paris'));
      expect(err.code, input).toBe('invalid_input');
      expect(err.field, input).toBe('due_date');
      expect(err.message, input).toMatch(/^due_date: /);
      expect(err.message, input).toMatch(reason);
      expect(err.hint, input).toMatch(/YYYY-MM-DD/);
    }
  });
});

describe('checkZone', () => {
  it('returns known IANA zones', () => {
    expect(checkZone('Europe/Paris')).toBe('Europe/Paris');
    expect(checkZone('America/New_York')).toBe('America/New_York');
    expect(checkZone('UTC')).toBe('UTC');
  });

  it('rejects unknown zones with the field and a hint naming real ones', () => {
    for (const zone of ['Mars/Olympus_Mons', 'CEST+1', '', 'Paris']) {
      const err = errorOf(() => checkZone(zone, 'timezone'));
      expect(err.code).toBe('invalid_input');
      expect(err.field).toBe('timezone');
      expect(err.message).toContain(`unknown time zone "${zone}"`);
      expect(err.hint).toMatch(/Europe\/Paris/);
    }
    expect(errorOf(() => checkZone('Nowhere/City', 'assistant.timezone')).field).toBe('assistant.timezone');
  });
});

describe('formatTemporal', () => {
  const summer = { at: '2026-07-01T07:00:00.000Z', tz: 'Europe/Paris' };
  const winter = { at: '2026-01-15T08:00:00.000Z', tz: 'Europe/Paris' };

  it('writes an instant with the offset of the user’s zone on that day', () => {
    expect(formatTemporal(summer, 'Europe/Paris')).toBe('2026-07-01T09:00:00+02:00');
    expect(formatTemporal(winter, 'Europe/Paris')).toBe('2026-01-15T09:00:00+01:00');
    expect(formatTemporal(summer, 'America/New_York')).toBe('2026-07-01T03:00:00-04:00');
    expect(formatTemporal(winter, 'America/New_York')).toBe('2026-01-15T03:00:00-05:00');
    expect(formatTemporal(summer, 'UTC')).toBe('2026-07-01T07:00:00Z');
    expect(formatTemporal(summer, 'Asia/Kolkata')).toBe('2026-07-01T12:30:00+05:30');
  });

  it('uses the value’s own zone when no user zone is given', () => {
    expect(formatTemporal(summer)).toBe('2026-07-01T09:00:00+02:00');
    expect(formatTemporal({ at: summer.at, tz: 'America/New_York' })).toBe('2026-07-01T03:00:00-04:00');
  });

  it('keeps milliseconds only when there are some', () => {
    expect(formatInstant('2026-07-01T07:00:00.250Z', 'Europe/Paris')).toBe('2026-07-01T09:00:00.250+02:00');
  });

  it('leaves a date a date in every zone', () => {
    for (const zone of ['Europe/Paris', 'America/New_York', 'Pacific/Auckland', 'UTC']) {
      expect(formatTemporal({ date: '2026-07-01' }, zone)).toBe('2026-07-01');
    }
  });

  it('round-trips what parseTemporal read', () => {
    for (const input of ['2026-03-29T09:00', '2026-10-25T09:00', '2026-12-31T23:59:59']) {
      const t = parseTemporal(input, 'x', 'Europe/Paris');
      expect(formatTemporal(t, 'Europe/Paris').slice(0, input.length)).toBe(input);
    }
  });
});

describe('temporalInstant', () => {
  it('places a date at the start of that day in the zone, and an instant where it is', () => {
    expect(temporalInstant({ date: '2026-03-05' }, 'Europe/Paris')).toBe('2026-03-04T23:00:00.000Z');
    expect(temporalInstant({ date: '2026-07-05' }, 'America/New_York')).toBe('2026-07-05T04:00:00.000Z');
    expect(temporalInstant({ at: '2026-03-05T08:00:00.000Z', tz: 'Asia/Tokyo' }, 'Europe/Paris')).toBe(
      '2026-03-05T08:00:00.000Z',
    );
  });
});
