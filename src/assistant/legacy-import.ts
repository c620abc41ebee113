import { createHash } from 'node:crypto';
import type { ItemKind, ItemRecord, JsonObject, JsonValue, Store, WriteOp } from '../storage/model.js';
import { guessMime } from './assistant.js';
import { parseLegacyDateTime, plusMinutes, temporalInstant, type Temporal } from './time.js';
import { DOCUMENT_TYPES, PRIORITIES, PROJECT_STATUSES, TASK_STATUSES } from './views.js';

/** One row of the original program's tables. */
export interface LegacyInput {
  readonly table: 'user_status' | 'projects' | 'todos' | 'calendar_events' | 'documents';
  readonly id: string;
  readonly data: string;
}

export interface LegacyImportOptions {
  readonly tenant: string;
  /** Zone that the original program's naive date-times are read in. */
  readonly zone: string;
  /** Reads an uploaded file the original program kept on disk; null when it is gone. */
  readonly readFile: (path: string) => Uint8Array | null;
  /** Where new content goes, recorded on documents. */
  readonly contentStorage: 'database' | 'folder';
  readonly now: string;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface LegacyImportReport {
  /** Per source table: rows found, items created, items already present from an earlier import. */
  readonly counts: Record<string, { found: number; imported: number; already: number }>;
  readonly warnings: string[];
}

/** The client_ref an imported record carries: it makes the import idempotent. */
export function legacyRef(table: string, id: string): string {
  return `legacy:${table}:${id}`;
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function obj(v: unknown): JsonObject {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : {};
}

function s(o: JsonObject, k: string): string | null {
  const v = o[k];
  return typeof v === 'string' && v !== '' ? v : null;
}

function strings(v: unknown): string[] {
  return Array.isArray(v)
    ? [
        ...new Set(
          v.filter((x): x is string => typeof x === 'string' && x.trim() !== '').map((x) => x.trim()),
        ),
      ]
    : [];
}

function oneOf<T extends string>(
  v: unknown,
  allowed: readonly T[],
  fallback: T,
  warn: (m: string) => void,
  what: string,
): T {
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  if (v !== undefined && v !== null) warn(`${what}: unknown value ${JSON.stringify(v)}, using "${fallback}"`);
  return fallback;
}

/** Every legacy record's ref, including projects' embedded tasks (for "is anything left to import?"). */
export function legacyRefs(rows: readonly LegacyInput[]): string[] {
  const refs: string[] = [];
  for (const row of rows) {
    refs.push(legacyRef(row.table, row.id));
    if (row.table === 'user_status') continue;
    if (row.table === 'projects') {
      try {
        const tasks = (JSON.parse(row.data) as JsonObject)['tasks'];
        if (Array.isArray(tasks))
          for (const t of tasks)
            if (s(obj(t), 'id')) refs.push(legacyRef('projects.tasks', s(obj(t), 'id') as string));
      } catch {
        // reported when imported
      }
    }
  }
  return refs;
}

/**
 * Copies every record of the original program into the store. Idempotent: each record carries
 * `legacy:<table>:<id>` as client_ref, so a second run creates nothing. Unknown fields are kept under `data.legacy`.
 */
export async function importLegacy(
  store: Store,
  rows: readonly LegacyInput[],
  o: LegacyImportOptions,
): Promise<LegacyImportReport> {
  const warnings: string[] = [];
  const counts: Record<string, { found: number; imported: number; already: number }> = {};
  const bump = (table: string, field: 'found' | 'imported' | 'already'): void => {
    counts[table] ??= { found: 0, imported: 0, already: 0 };
    counts[table][field]++;
  };
  const instant = (v: unknown): string | null => {
    const t = parseLegacyDateTime(v, o.zone);
    return t ? temporalInstant(t, o.zone) : null;
  };
  const temporal = (v: unknown): Temporal | null => parseLegacyDateTime(v, o.zone);

  const base = (
    kind: ItemKind,
    table: string,
    id: string,
    d: JsonObject,
  ): Omit<ItemRecord, 'title' | 'body' | 'data'> => {
    const created = instant(d['created_at']) ?? o.now;
    return {
      id: SAFE_ID.test(id)
        ? id
        : `${kind.slice(0, 3)}_${createHash('sha256').update(id).digest('hex').slice(0, 24)}`,
      kind,
      status: null,
      priority: null,
      project_id: null,
      tags: strings(d['tags']),
      starts_at: null,
      ends_at: null,
      client_ref: legacyRef(table, id),
      version: 1,
      created_at: created,
      updated_at: instant(d['updated_at']) ?? instant(d['last_updated']) ?? created,
      deleted_at: null,
    };
  };

  const records: { table: string; record: ItemRecord; content?: Uint8Array }[] = [];
  const profileRef = legacyRef('user_status', '1');
  let profile: JsonObject | null = null;

  const taskRecord = (t: JsonObject, table: string, projectId: string | null): ItemRecord => {
    const id = s(t, 'id') ?? createHash('sha256').update(JSON.stringify(t)).digest('hex').slice(0, 32);
    const warn = (m: string): void => void warnings.push(`${table} ${id}: ${m}`);
    const completed = t['completed'] === true || t['status'] === 'done';
    const status = completed ? 'done' : oneOf(t['status'], TASK_STATUSES, 'todo', warn, 'status');
    const due = temporal(t['due_date']);
    const reminder = temporal(t['reminder_date']);
    return {
      ...base('task', table, id, t),
      title: s(t, 'title') ?? '(untitled task)',
      body: s(t, 'description') ?? '',
      status,
      priority: oneOf(t['priority'], PRIORITIES, 'medium', warn, 'priority'),
      project_id: projectId,
      starts_at: due ? temporalInstant(due, o.zone) : null,
      data: {
        description: s(t, 'description'),
        due,
        reminder: reminder ? { at: temporalInstant(reminder, o.zone), tz: o.zone } : null,
        timezone: null,
        recurrence: null,
        completed_at: completed ? (instant(t['completed_at']) ?? o.now) : null,
        legacy: t,
      },
    };
  };

  for (const row of rows) {
    bump(row.table, 'found');
    let d: JsonObject;
    try {
      d = obj(JSON.parse(row.data));
    } catch {
      warnings.push(`${row.table} ${row.id}: data is not JSON; kept as text in a note`);
      const r: ItemRecord = {
        ...base('note', row.table, row.id, {}),
        title: `Unreadable ${row.table} record ${row.id}`,
        body: row.data,
        data: { note_kind: 'note', pinned: false, legacy_raw: row.data },
      };
      records.push({ table: row.table, record: r });
      continue;
    }
    const warn = (m: string): void => void warnings.push(`${row.table} ${row.id}: ${m}`);
    switch (row.table) {
      case 'user_status':
        profile = d;
        break;
      case 'projects': {
        const { tasks, ...rest } = d;
        const start = temporal(d['start_date']);
        const end = temporal(d['end_date']);
        const project: ItemRecord = {
          ...base('project', 'projects', row.id, d),
          title: s(d, 'name') ?? '(untitled project)',
          body: [s(d, 'description'), s(d, 'notes')].filter(Boolean).join('\n'),
          status: oneOf(d['status'], PROJECT_STATUSES, 'not_started', warn, 'status'),
          priority: oneOf(d['priority'], PRIORITIES, 'medium', warn, 'priority'),
          starts_at: start ? temporalInstant(start, o.zone) : null,
          ends_at: end ? temporalInstant(end, o.zone) : null,
          data: {
            description: s(d, 'description'),
            notes: s(d, 'notes'),
            start_date: start,
            end_date: end,
            progress:
              typeof d['progress'] === 'number' ? Math.max(0, Math.min(100, Math.round(d['progress']))) : 0,
            legacy: rest,
          },
        };
        records.push({ table: 'projects', record: project });
        if (Array.isArray(tasks)) {
          for (const t of tasks) {
            bump('projects.tasks', 'found');
            records.push({
              table: 'projects.tasks',
              record: taskRecord(obj(t), 'projects.tasks', project.id),
            });
          }
        }
        break;
      }
      case 'todos':
        records.push({ table: 'todos', record: { ...taskRecord({ ...d, id: row.id }, 'todos', null) } });
        break;
      case 'calendar_events': {
        const start = temporal(d['start_time']);
        if (!start) {
          warn('no readable start_time; kept as a note');
          records.push({
            table: 'calendar_events',
            record: {
              ...base('note', 'calendar_events', row.id, d),
              title: s(d, 'title') ?? '(untitled event)',
              body: s(d, 'description') ?? '',
              data: { note_kind: 'note', pinned: false, legacy: d },
            },
          });
          break;
        }
        const startAt = temporalInstant(start, o.zone);
        const endT = temporal(d['end_time']);
        let endAt = endT ? temporalInstant(endT, o.zone) : plusMinutes(startAt, 60);
        if (endAt <= startAt) {
          warn('end_time not after start_time; set to one hour after the start');
          endAt = plusMinutes(startAt, 60);
        }
        const allDay = 'date' in start;
        const attendees = strings(d['attendees']);
        records.push({
          table: 'calendar_events',
          record: {
            ...base('event', 'calendar_events', row.id, d),
            title: s(d, 'title') ?? '(untitled event)',
            body: [s(d, 'description'), s(d, 'location'), attendees.join(', ')].filter(Boolean).join('\n'),
            starts_at: startAt,
            ends_at: endAt,
            data: {
              description: s(d, 'description'),
              start: allDay ? start : { at: startAt, tz: o.zone },
              end: allDay ? (endT ?? start) : { at: endAt, tz: o.zone },
              all_day: allDay,
              timezone: o.zone,
              location: s(d, 'location'),
              attendees,
              reminder_minutes: typeof d['reminder_minutes'] === 'number' ? d['reminder_minutes'] : 15,
              recurrence: null,
              legacy: d,
            },
          },
        });
        break;
      }
      case 'documents': {
        const filePath = s(d, 'file_path');
        const url = s(d, 'external_url');
        let content: Uint8Array | null = null;
        if (filePath) {
          content = o.readFile(filePath);
          if (!content) warn(`file ${filePath} is missing; metadata kept, content marked missing`);
          else {
            const sum = createHash('sha256').update(content).digest('hex');
            if (s(d, 'checksum') && s(d, 'checksum') !== sum)
              warn('file content does not match its recorded checksum; imported as found');
          }
        }
        const mime = s(d, 'mime_type') ?? guessMime(s(d, 'title'));
        const type = oneOf(d['document_type'], DOCUMENT_TYPES, 'other', warn, 'document_type');
        const text = content && type === 'text' ? new TextDecoder().decode(content.subarray(0, 100_000)) : '';
        const data: JsonObject = {
          description: s(d, 'description'),
          document_type: type,
          mime_type: mime,
          filename: filePath ? (filePath.split(/[\\/]/).pop() ?? null) : null,
          size_bytes: content ? content.length : typeof d['size_bytes'] === 'number' ? d['size_bytes'] : 0,
          checksum: content ? createHash('sha256').update(content).digest('hex') : s(d, 'checksum'),
          external_url: url,
          storage: url && !filePath ? 'external' : content ? o.contentStorage : 'missing',
          legacy: d,
        };
        records.push({
          table: 'documents',
          record: {
            ...base('document', 'documents', row.id, d),
            title: s(d, 'title') ?? '(untitled document)',
            body: [s(d, 'description'), url, text].filter(Boolean).join('\n'),
            data,
          },
          ...(content ? { content } : {}),
        });
        break;
      }
    }
  }

  const done = await store.importedRefs(
    [...records.map((r) => r.record.client_ref as string), ...(profile !== null ? [profileRef] : [])],
    o.tenant,
  );
  if (profile !== null) {
    if (done.has(profileRef) || (await store.getProfile(o.tenant))) {
      bump('user_status', 'already');
      if (!done.has(profileRef))
        await store.write(o.tenant, [{ op: 'mark_imported', ref: profileRef, item_id: null }], o.now);
    } else {
      const p = profile;
      const data: JsonObject = {
        name: s(p, 'name') ?? 'User',
        current_location: p['current_location'] ?? null,
        laptop_details: p['laptop_details'] ?? null,
        permissions: p['permissions'] ?? null,
        notes: s(p, 'notes'),
        timezone: o.zone,
        legacy: p,
      } as { [k: string]: JsonValue };
      await store.putProfile(o.tenant, data, null, o.now);
      await store.write(o.tenant, [{ op: 'mark_imported', ref: profileRef, item_id: null }], o.now);
      bump('user_status', 'imported');
    }
  }

  const fresh: typeof records = [];
  for (const r of records) {
    if (done.has(r.record.client_ref as string)) bump(r.table, 'already');
    else fresh.push(r);
  }
  const BATCH = 200;
  for (let i = 0; i < fresh.length; i += BATCH) {
    const batch = fresh.slice(i, i + BATCH);
    const ops: WriteOp[] = batch.map((b) =>
      b.content ? { op: 'insert', item: b.record, content: b.content } : { op: 'insert', item: b.record },
    );
    for (const b of batch)
      ops.push({ op: 'mark_imported', ref: b.record.client_ref as string, item_id: b.record.id });
    const res = await store.write(o.tenant, ops, o.now);
    res.inserted.forEach((ins, j) =>
      bump((batch[j] as { table: string }).table, ins.created ? 'imported' : 'already'),
    );
    o.onProgress?.(Math.min(i + BATCH, fresh.length), fresh.length);
  }
  return { counts, warnings };
}
