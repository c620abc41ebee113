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

export function toICalendar(events: EventView[], tasks: TaskView[], stamp: string): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//mcp-pa//EN', 'CALSCALE:GREGORIAN'];
  for (const e of events) {
    lines.push('BEGIN:VEVENT', `UID:${e.id}@mcp-pa`, `DTSTAMP:${icalInstant(stamp)}`);
    lines.push(dateProp('DTSTART', e.start_time), dateProp('DTEND', e.end_time, e.all_day));
    lines.push(`SUMMARY:${icalText(e.title)}`);
    if (e.description) lines.push(`DESCRIPTION:${icalText(e.description)}`);
    if (e.location) lines.push(`LOCATION:${icalText(e.location)}`);
    if (e.recurrence) lines.push(`RRULE:${e.recurrence}`);
    for (const a of e.attendees)
      lines.push(
        `ATTENDEE;CN="${a.replace(/[\p{Cc}"]/gu, '')}":${a.includes('@') ? `mailto:${a}` : `urn:x-name:${encodeURIComponent(a)}`}`,
      );
    if (e.tags.length) lines.push(`CATEGORIES:${e.tags.map(icalText).join(',')}`);
    if (e.reminder_minutes !== null) {
      lines.push(
        'BEGIN:VALARM',
        'ACTION:DISPLAY',
        `DESCRIPTION:${icalText(e.title)}`,
        `TRIGGER:-PT${e.reminder_minutes}M`,
        'END:VALARM',
      );
    }
    lines.push('END:VEVENT');
  }
  for (const t of tasks) {
    if (!t.due_date) continue;
    lines.push(
      'BEGIN:VTODO',
      `UID:${t.id}@mcp-pa`,
      `DTSTAMP:${icalInstant(stamp)}`,
      dateProp('DUE', t.due_date),
    );
    lines.push(`SUMMARY:${icalText(t.title)}`);
    if (t.description) lines.push(`DESCRIPTION:${icalText(t.description)}`);
    lines.push(
      `STATUS:${t.completed ? 'COMPLETED' : t.status === 'in_progress' ? 'IN-PROCESS' : 'NEEDS-ACTION'}`,
    );
    lines.push(`PRIORITY:${{ urgent: 1, high: 3, medium: 5, low: 9 }[t.priority]}`);
    if (t.recurrence) lines.push(`RRULE:${t.recurrence}`);
    if (t.completed_at) lines.push(`COMPLETED:${icalInstant(t.completed_at)}`);
    lines.push('END:VTODO');
  }
  lines.push('END:VCALENDAR');
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
        ),
      };
  }
}
