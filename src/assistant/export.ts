import { DateTime } from 'luxon';
import type { ItemKind } from '../storage/model.js';
import type { Assistant } from './assistant.js';
import { formatInstant } from './time.js';
import type { EventView, ItemView, TaskView } from './views.js';

export const EXPORT_FORMATS = ['json', 'markdown', 'icalendar'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportResult {
  format: ExportFormat;
  mime_type: string;
  counts: Record<string, number>;
  content: string;
}

/** RFC 5545 text escaping and 75-octet line folding. */
function icalText(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/;/g, '\\;').replace(/,/g, '\\,').replace(/\r?\n/g, '\\n');
}

function fold(line: string): string {
  const bytes = Buffer.from(line, 'utf8');
  if (bytes.length <= 75) return line;
  const parts: string[] = [];
  let current = '';
  for (const ch of line) {
    if (Buffer.byteLength(current + ch, 'utf8') > (parts.length === 0 ? 75 : 74)) {
      parts.push(current);
      current = '';
    }
    current += ch;
  }
  parts.push(current);
  return parts.join('\r\n ');
}

function icalInstant(iso: string): string {
  return new Date(iso)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function icalDate(date: string): string {
  return date.replace(/-/g, '');
}

function dateProp(name: string, value: string, allDayEnd = false): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const d = allDayEnd
      ? new Date(Date.parse(`${value}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10)
      : value;
    return `${name};VALUE=DATE:${icalDate(d)}`;
  }
  return `${name}:${icalInstant(value)}`;
}

/** Years a VTIMEZONE covers after the last dated item (recurring series run on). */
const ZONE_YEARS_AHEAD = 10;

/**
 * A date-time property in the item's own zone (TZID plus local time) so recurrences repeat at the same local
 * time in calendar apps; dates stay dates, UTC stays UTC.
 */
function zonedProp(
  name: string,
  value: string,
  zone: string,
  zones: Map<string, number[]>,
  allDayEnd = false,
): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value) || zone === 'UTC' || zone === 'Etc/UTC')
    return dateProp(name, value, allDayEnd);
  const local = DateTime.fromISO(value, { setZone: true }).setZone(zone);
  const years = zones.get(zone) ?? [];
  years.push(local.year);
  zones.set(zone, years);
  return `${name};TZID=${zone}:${local.toFormat("yyyyMMdd'T'HHmmss")}`;
}

function icalOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
}

/** RFC 5545 VTIMEZONE with every offset change of `zone` between two years, found with the zone database. */
export function vtimezone(zone: string, fromYear: number, toYear: number): string[] {
  const offsetAt = (ms: number): number => DateTime.fromMillis(ms, { zone }).offset;
  const observance = (atMs: number, from: number, to: number): string[] => {
    const kind = DateTime.fromMillis(atMs, { zone }).isInDST ? 'DAYLIGHT' : 'STANDARD';
    // DTSTART of an observance is the local time just before the change, in the offset it changes from.
    const local = DateTime.fromMillis(atMs, { zone: 'UTC' }).plus({ minutes: from });
    return [
      `BEGIN:${kind}`,
      `DTSTART:${local.toFormat("yyyyMMdd'T'HHmmss")}`,
      `TZOFFSETFROM:${icalOffset(from)}`,
      `TZOFFSETTO:${icalOffset(to)}`,
      `END:${kind}`,
    ];
  };
  const start = Date.UTC(fromYear, 0, 1);
  const end = Date.UTC(toYear + 1, 0, 1);
  const out = ['BEGIN:VTIMEZONE', `TZID:${zone}`];
  const first = offsetAt(start);
  out.push(...observance(start, first, first));
  let before = first;
  for (let day = start; day < end; day += 86_400_000) {
    const after = offsetAt(day + 86_400_000);
    if (after === before) continue;
    // The change happened within this day: find its minute.
    let lo = day;
    let hi = day + 86_400_000;
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
      if (offsetAt(mid) === before) lo = mid;
      else hi = mid;
    }
    out.push(...observance(hi, before, after));
    before = after;
  }
  out.push('END:VTIMEZONE');
  return out;
}

export function toICalendar(events: EventView[], tasks: TaskView[], stamp: string, userZone = 'UTC'): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//mcp-pa//EN', 'CALSCALE:GREGORIAN'];
  const zones = new Map<string, number[]>();
  const body: string[] = [];
  for (const e of events) {
    body.push('BEGIN:VEVENT', `UID:${e.id}@mcp-pa`, `DTSTAMP:${icalInstant(stamp)}`);
    body.push(
      zonedProp('DTSTART', e.start_time, e.timezone, zones),
      zonedProp('DTEND', e.end_time, e.timezone, zones, e.all_day),
    );
    if (e.recurrence) zones.get(e.timezone)?.push(DateTime.fromISO(e.start_time).year + ZONE_YEARS_AHEAD);
    body.push(`SUMMARY:${icalText(e.title)}`);
    if (e.description) body.push(`DESCRIPTION:${icalText(e.description)}`);
    if (e.location) body.push(`LOCATION:${icalText(e.location)}`);
    if (e.recurrence) body.push(`RRULE:${e.recurrence}`);
    for (const a of e.attendees)
      body.push(
        `ATTENDEE;CN="${a.replace(/[\p{Cc}"]/gu, '')}":${a.includes('@') ? `mailto:${a}` : `urn:x-name:${encodeURIComponent(a)}`}`,
      );
    if (e.tags.length) body.push(`CATEGORIES:${e.tags.map(icalText).join(',')}`);
    if (e.reminder_minutes !== null) {
      body.push(
        'BEGIN:VALARM',
        'ACTION:DISPLAY',
        `DESCRIPTION:${icalText(e.title)}`,
        `TRIGGER:-PT${e.reminder_minutes}M`,
        'END:VALARM',
      );
    }
    body.push('END:VEVENT');
  }
  for (const t of tasks) {
    if (!t.due_date) continue;
    const zone = t.timezone ?? userZone;
    body.push(
      'BEGIN:VTODO',
      `UID:${t.id}@mcp-pa`,
      `DTSTAMP:${icalInstant(stamp)}`,
      zonedProp('DUE', t.due_date, zone, zones),
    );
    if (t.recurrence && !/^\d{4}-\d{2}-\d{2}$/.test(t.due_date)) {
      zones.get(zone)?.push(DateTime.fromISO(t.due_date).year + ZONE_YEARS_AHEAD);
    }
    body.push(`SUMMARY:${icalText(t.title)}`);
    if (t.description) body.push(`DESCRIPTION:${icalText(t.description)}`);
    body.push(
      `STATUS:${t.completed ? 'COMPLETED' : t.status === 'in_progress' ? 'IN-PROCESS' : 'NEEDS-ACTION'}`,
    );
    body.push(`PRIORITY:${{ urgent: 1, high: 3, medium: 5, low: 9 }[t.priority]}`);
    if (t.recurrence) body.push(`RRULE:${t.recurrence}`);
    if (t.completed_at) body.push(`COMPLETED:${icalInstant(t.completed_at)}`);
    body.push('END:VTODO');
  }
  for (const [zone, years] of zones) lines.push(...vtimezone(zone, Math.min(...years), Math.max(...years)));
  lines.push(...body, 'END:VCALENDAR');
  return lines.map(fold).join('\r\n') + '\r\n';
}

function mdEscape(text: string): string {
  return text.replace(/([\\`*_[\]#|<>])/g, '\\$1');
}

function toMarkdown(byKind: Map<ItemKind, ItemView[]>, zone: string, now: string): string {
  const out = [`# Personal assistant export`, '', `Exported ${formatInstant(now, zone)} (${zone}).`, ''];
  const section = (title: string, items: ItemView[], line: (v: ItemView) => string): void => {
    if (items.length === 0) return;
    out.push(`## ${title}`, '');
    for (const v of items) out.push(`- ${line(v)}`);
    out.push('');
  };
  section('Projects', byKind.get('project') ?? [], (v) =>
    v.kind === 'project' ? `**${mdEscape(v.name)}** — ${v.status}, ${v.priority}, ${v.progress}%` : '',
  );
  section('Tasks', byKind.get('task') ?? [], (v) =>
    v.kind === 'task'
      ? `[${v.completed ? 'x' : ' '}] ${mdEscape(v.title)}${v.due_date ? ` (due ${v.due_date})` : ''} — ${v.priority}`
      : '',
  );
  section('Events', byKind.get('event') ?? [], (v) =>
    v.kind === 'event'
      ? `${v.start_time} – ${v.end_time}: **${mdEscape(v.title)}**${v.location ? ` @ ${mdEscape(v.location)}` : ''}`
      : '',
  );
  section('Documents', byKind.get('document') ?? [], (v) =>
    v.kind === 'document'
      ? `${mdEscape(v.title)} (${v.document_type}${v.external_url ? `, <${v.external_url}>` : `, ${v.size_bytes} bytes`})`
      : '',
  );
  section('Notes', byKind.get('note') ?? [], (v) =>
    v.kind === 'note' ? `${v.pinned ? '📌 ' : ''}${mdEscape(v.text).replace(/\n/g, ' ')}` : '',
  );
  return out.join('\n');
}

/** Everything (or some kinds) as JSON, Markdown, or iCalendar (events and dated tasks). */
export async function exportData(
  a: Assistant,
  tenant: string,
  format: ExportFormat,
  kinds: readonly ItemKind[] | undefined,
  onProgress?: (done: number, total: number) => void,
): Promise<ExportResult> {
  const wanted: ItemKind[] = kinds?.length
    ? [...kinds]
    : format === 'icalendar'
      ? ['event', 'task']
      : ['project', 'task', 'event', 'document', 'note'];
  const byKind = new Map<ItemKind, ItemView[]>();
  const counts: Record<string, number> = {};
  for (const [i, kind] of wanted.entries()) {
    const records = await a.allOf(
      tenant,
      kind,
      100_000,
      kind === 'event' || kind === 'task' ? 'starts_asc' : 'created_desc',
    );
    const views = await a.views(tenant, records);
    byKind.set(kind, views);
    counts[kind] = views.length;
    onProgress?.(i + 1, wanted.length);
  }
  const now = a.now();
  const zone = await a.timeZone(tenant);
  switch (format) {
    case 'json': {
      const status = await a.getStatus(tenant);
      const body: Record<string, unknown> = { exported_at: formatInstant(now, zone), status };
      for (const [k, v] of byKind) body[`${k}s`] = v;
      return { format, mime_type: 'application/json', counts, content: JSON.stringify(body, null, 2) };
    }
    case 'markdown':
      return { format, mime_type: 'text/markdown', counts, content: toMarkdown(byKind, zone, now) };
    case 'icalendar':
      return {
        format,
        mime_type: 'text/calendar',
        counts,
        content: toICalendar(
          (byKind.get('event') ?? []) as EventView[],
          (byKind.get('task') ?? []) as TaskView[],
          now,
          zone,
        ),
      };
  }
}
