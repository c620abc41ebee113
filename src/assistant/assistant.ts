import { createHash, randomBytes } from 'node:crypto';
import {
  StoreConflictError,
  sortKey,
  type ItemKind,
  type ItemQuery,
  type ItemRecord,
  type JsonObject,
  type JsonValue,
  type ListOrder,
  type Store,
  type WriteOp,
} from '../storage/model.js';
import type { EmbeddingProvider } from '../storage/embeddings/provider.js';
import { AssistantError, invalid, notFound } from './errors.js';
import {
  addDays,
  checkZone,
  formatInstant,
  formatTemporal,
  keepWallClockOffset,
  parseTemporal,
  plusMinutes,
  startOfDay,
  systemTimeZone,
  temporalInstant,
  todayIn,
  type Temporal,
} from './time.js';
import { nextOccurrence, normalizeRecurrence, occurrencesBetween, seriesEnd } from './recurrence.js';
import type {
  DocumentView,
  EventView,
  ItemView,
  NoteView,
  ProjectView,
  StatusView,
  TaskView,
} from './views.js';
import { DOCUMENT_TYPES } from './views.js';
import { clip } from '../unicode.js';

export type Change = { kind: ItemKind; id: string } | { kind: 'profile' };

export interface AssistantOptions {
  readonly store: Store;
  readonly clock?: () => Date;
  /** Default zone when the profile names none (configuration), else the system's. */
  readonly defaultTimeZone?: string | undefined;
  readonly maxUploadBytes: number;
  /** Present when semantic search is on. */
  readonly embeddings?: EmbeddingProvider | undefined;
  /** Told after every committed write (for resource subscriptions). */
  readonly onChange?: (tenant: string, change: Change) => void;
  /** Where content lives, for get_status. */
  readonly storageInfo: { database: string; documents: string };
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface BatchResult {
  id: string;
  ok: boolean;
  error: string | null;
  item: ItemView | null;
}

const ID_PREFIX: Record<ItemKind, string> = {
  project: 'prj',
  task: 'tsk',
  event: 'evt',
  document: 'doc',
  note: 'not',
};

export const MAX_PAGE = 100;
const DEFAULT_PAGE = 25;
const SUMMARY_CHARS = 280;
const INDEXED_TEXT_CHARS = 100_000;

function newId(kind: ItemKind): string {
  return `${ID_PREFIX[kind]}_${Date.now().toString(36)}${randomBytes(8).toString('hex')}`;
}

export function uriOf(kind: ItemKind, id: string): string {
  return `pa://${kind}/${id}`;
}

function str(data: JsonObject, key: string): string | null {
  const v = data[key];
  return typeof v === 'string' ? v : null;
}

function temporalOf(v: JsonValue | undefined): Temporal | null {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    if (typeof v['date'] === 'string') return { date: v['date'] };
    if (typeof v['at'] === 'string' && typeof v['tz'] === 'string') return { at: v['at'], tz: v['tz'] };
  }
  return null;
}

function truncate(text: string | null, max = SUMMARY_CHARS): string | null {
  if (text === null || text.length <= max) return text;
  return clip(text, max, true);
}

function cleanTags(tags: readonly string[] | undefined, field = 'tags'): string[] {
  if (!tags) return [];
  const out = new Set<string>();
  for (const raw of tags) {
    const t = raw.replace(/\p{Cc}/gu, '').trim();
    if (t === '') throw invalid(field, 'tags must not be empty');
    if (t.length > 64) throw invalid(field, `tag "${clip(t, 20)}…" is longer than 64 characters`);
    out.add(t);
  }
  return [...out];
}

function cleanText(value: string, field: string, max: number, required = false): string {
  // Control characters other than tab, newline and carriage return are dropped.
  const t = value.replace(/(?![\t\n\r])\p{Cc}/gu, '');
  if (required && t.trim() === '') throw invalid(field, 'must not be empty');
  if (t.length > max) throw invalid(field, `is ${t.length} characters long (allowed: at most ${max})`);
  return t;
}

/** Opaque cursor: base64url of [order, sort key, id]. */
function encodeCursor(order: string, key: string, id: string): string {
  return Buffer.from(JSON.stringify([order, key, id])).toString('base64url');
}

function decodeCursor(cursor: string | undefined, order: string): { key: string; id: string } | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      v.length === 3 &&
      v[0] === order &&
      typeof v[1] === 'string' &&
      typeof v[2] === 'string'
    ) {
      return { key: v[1], id: v[2] };
    }
  } catch {
    // fall through
  }
  throw invalid(
    'cursor',
    'is not a cursor this list produced',
    'Pass next_cursor from the previous page unchanged, or omit it to start over.',
  );
}

function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw invalid('limit', `must be a whole number from 1 to ${MAX_PAGE}`);
  }
  return limit;
}

function mimeToType(mime: string | null): (typeof DOCUMENT_TYPES)[number] {
  if (!mime) return 'other';
  if (mime.startsWith('image/')) return 'image';
  if (mime === 'application/pdf') return 'pdf';
  if (mime.startsWith('text/') || mime === 'application/json' || mime === 'application/xml') return 'text';
  if (/spreadsheet|excel|csv/.test(mime)) return 'spreadsheet';
  if (/presentation|powerpoint/.test(mime)) return 'presentation';
  return 'other';
}

const EXT_MIME: Record<string, string> = {
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  txt: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  json: 'application/json',
  html: 'text/html',
  xml: 'application/xml',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  xls: 'application/vnd.ms-excel',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  ppt: 'application/vnd.ms-powerpoint',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  doc: 'application/msword',
};

export function guessMime(filename: string | null): string | null {
  const ext = filename?.split('.').pop()?.toLowerCase();
  return ext && filename?.includes('.') ? (EXT_MIME[ext] ?? null) : null;
}

/** What sniffing the first bytes says the content is, when it can tell. */
function sniffMime(bytes: Uint8Array): string | null {
  const b = (i: number): number => bytes[i] ?? -1;
  if (b(0) === 0x25 && b(1) === 0x50 && b(2) === 0x44 && b(3) === 0x46) return 'application/pdf';
  if (b(0) === 0x89 && b(1) === 0x50 && b(2) === 0x4e && b(3) === 0x47) return 'image/png';
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'image/jpeg';
  if (b(0) === 0x47 && b(1) === 0x49 && b(2) === 0x46) return 'image/gif';
  return null;
}

export interface ProfilePatch {
  name?: string;
  city?: string;
  state?: string;
  country?: string;
  location_details?: string;
  laptop_os?: string;
  laptop_model?: string;
  laptop_specs?: Record<string, JsonValue>;
  permissions?: Partial<Record<'file_system' | 'browser' | 'terminal' | 'database' | 'network', boolean>> & {
    available_to_setup?: string[];
  };
  timezone?: string;
  working_hours?: { start: string; end: string; days?: number[] } | null;
  notes?: string | null;
}

export interface ProjectInput {
  name: string;
  description?: string | undefined;
  status?: string | undefined;
  priority?: string | undefined;
  start_date?: string | undefined;
  end_date?: string | undefined;
  tags?: string[] | undefined;
  notes?: string | undefined;
  client_ref?: string | undefined;
}

export interface ProjectPatch {
  name?: string | undefined;
  description?: string | null | undefined;
  status?: string | undefined;
  priority?: string | undefined;
  progress?: number | undefined;
  notes?: string | null | undefined;
  tags?: string[] | undefined;
  start_date?: string | null | undefined;
  end_date?: string | null | undefined;
}

export interface TaskInput {
  title: string;
  description?: string | undefined;
  status?: string | undefined;
  priority?: string | undefined;
  due_date?: string | undefined;
  reminder_date?: string | undefined;
  timezone?: string | undefined;
  recurrence?: string | undefined;
  project_id?: string | undefined;
  tags?: string[] | undefined;
  client_ref?: string | undefined;
}

export interface TaskPatch {
  title?: string | undefined;
  description?: string | null | undefined;
  status?: string | undefined;
  priority?: string | undefined;
  due_date?: string | null | undefined;
  reminder_date?: string | null | undefined;
  timezone?: string | undefined;
  recurrence?: string | null | undefined;
  project_id?: string | null | undefined;
  tags?: string[] | undefined;
}

export interface EventInput {
  title: string;
  description?: string | undefined;
  start_time: string;
  end_time?: string | undefined;
  all_day?: boolean | undefined;
  timezone?: string | undefined;
  location?: string | undefined;
  attendees?: string[] | undefined;
  reminder_minutes?: number | undefined;
  recurrence?: string | undefined;
  tags?: string[] | undefined;
  client_ref?: string | undefined;
}

export interface EventPatch {
  title?: string | undefined;
  description?: string | null | undefined;
  start_time?: string | undefined;
  end_time?: string | undefined;
  all_day?: boolean | undefined;
  timezone?: string | undefined;
  location?: string | null | undefined;
  attendees?: string[] | undefined;
  reminder_minutes?: number | null | undefined;
  recurrence?: string | null | undefined;
  tags?: string[] | undefined;
}

export interface UploadInput {
  title: string;
  content_base64: string;
  description?: string | undefined;
  tags?: string[] | undefined;
  mime_type?: string | undefined;
  filename?: string | undefined;
  client_ref?: string | undefined;
}

export interface ExternalDocInput {
  title: string;
  external_url: string;
  description?: string | undefined;
  tags?: string[] | undefined;
  document_type?: string | undefined;
  mime_type?: string | undefined;
  client_ref?: string | undefined;
}

export interface DocumentPatch {
  title?: string | undefined;
  description?: string | null | undefined;
  tags?: string[] | undefined;
  external_url?: string | undefined;
}

export interface NoteInput {
  text: string;
  kind?: string | undefined;
  pinned?: boolean | undefined;
  tags?: string[] | undefined;
  client_ref?: string | undefined;
}

export interface NotePatch {
  text?: string | undefined;
  kind?: string | undefined;
  pinned?: boolean | undefined;
  tags?: string[] | undefined;
}

/** Everything a person's assistant does, independent of transport and database. */
export class Assistant {
  readonly store: Store;
  private readonly clock: () => Date;
  private readonly options: AssistantOptions;

  constructor(options: AssistantOptions) {
    this.options = options;
    this.store = options.store;
    this.clock = options.clock ?? (() => new Date());
    if (options.defaultTimeZone) checkZone(options.defaultTimeZone, 'assistant.timezone');
  }

  now(): string {
    return this.clock().toISOString();
  }

  get vectorSearch(): boolean {
    return this.options.embeddings !== undefined;
  }

  get embeddings(): EmbeddingProvider | undefined {
    return this.options.embeddings;
  }

  private changed(tenant: string, change: Change): void {
    this.options.onChange?.(tenant, change);
  }

  // ---------------------------------------------------------------- profile

  async timeZone(tenant: string): Promise<string> {
    const profile = await this.store.getProfile(tenant);
    return str(profile?.data ?? {}, 'timezone') ?? this.options.defaultTimeZone ?? systemTimeZone();
  }

  async getStatus(tenant: string): Promise<StatusView & { system_info: JsonObject }> {
    const profile = await this.store.getProfile(tenant);
    const view = await this.statusView(tenant, profile?.data ?? {}, profile?.updated_at ?? null);
    return {
      ...view,
      system_info: {
        database: this.options.storageInfo.database,
        documents: this.options.storageInfo.documents,
        vector_search: this.vectorSearch,
        embedding_model: this.options.embeddings?.model ?? null,
        max_upload_bytes: this.options.maxUploadBytes,
      },
    };
  }

  private async statusView(tenant: string, d: JsonObject, updatedAt: string | null): Promise<StatusView> {
    const zone = str(d, 'timezone') ?? this.options.defaultTimeZone ?? systemTimeZone();
    const obj = (k: string): JsonObject | null => {
      const v = d[k];
      return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
    };
    const loc = obj('current_location');
    const lap = obj('laptop_details');
    const perm = obj('permissions') ?? {};
    const wh = obj('working_hours');
    const bool = (k: string, dflt: boolean): boolean =>
      typeof perm[k] === 'boolean' ? (perm[k] as boolean) : dflt;
    const active = await this.store.listItems(tenant, {
      kind: 'project',
      status: ['in_progress'],
      order: 'updated_desc',
      limit: MAX_PAGE,
    });
    return {
      name: str(d, 'name') ?? 'User',
      current_location: loc
        ? {
            city: str(loc, 'city'),
            state: str(loc, 'state'),
            country: str(loc, 'country'),
            details: str(loc, 'details'),
          }
        : null,
      laptop_details: lap
        ? {
            os: str(lap, 'os'),
            model: str(lap, 'model'),
            specs:
              lap['specs'] && typeof lap['specs'] === 'object' && !Array.isArray(lap['specs'])
                ? (lap['specs'] as Record<string, unknown>)
                : null,
          }
        : null,
      permissions: {
        file_system: bool('file_system', true),
        browser: bool('browser', false),
        terminal: bool('terminal', true),
        database: bool('database', true),
        network: bool('network', false),
        available_to_setup: Array.isArray(perm['available_to_setup'])
          ? perm['available_to_setup'].filter((x): x is string => typeof x === 'string')
          : ['browser', 'network'],
      },
      timezone: zone,
      working_hours: wh
        ? {
            start: str(wh, 'start') ?? '09:00',
            end: str(wh, 'end') ?? '17:00',
            days: Array.isArray(wh['days'])
              ? wh['days'].filter((x): x is number => typeof x === 'number')
              : [1, 2, 3, 4, 5],
          }
        : null,
      notes: str(d, 'notes'),
      active_projects: active.map((p) => p.id),
      last_updated: updatedAt ? formatInstant(updatedAt, zone) : null,
    };
  }

  async updateStatus(tenant: string, patch: ProfilePatch): Promise<StatusView> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.getProfile(tenant);
      const d: JsonObject = structuredClone(current?.data ?? {});
      if (patch.name !== undefined) d['name'] = cleanText(patch.name, 'name', 200, true);
      const sub = (key: string): JsonObject => {
        const v = d[key];
        if (v && typeof v === 'object' && !Array.isArray(v)) return v;
        const fresh: JsonObject = {};
        d[key] = fresh;
        return fresh;
      };
      const locFields = {
        city: patch.city,
        state: patch.state,
        country: patch.country,
        details: patch.location_details,
      };
      for (const [k, v] of Object.entries(locFields))
        if (v !== undefined) sub('current_location')[k] = cleanText(v, k, 200);
      if (patch.laptop_os !== undefined)
        sub('laptop_details')['os'] = cleanText(patch.laptop_os, 'laptop_os', 200);
      if (patch.laptop_model !== undefined)
        sub('laptop_details')['model'] = cleanText(patch.laptop_model, 'laptop_model', 200);
      if (patch.laptop_specs !== undefined) sub('laptop_details')['specs'] = patch.laptop_specs;
      if (patch.permissions !== undefined) {
        const p = sub('permissions');
        for (const [k, v] of Object.entries(patch.permissions)) if (v !== undefined) p[k] = v;
      }
      if (patch.timezone !== undefined) d['timezone'] = checkZone(patch.timezone, 'timezone');
      if (patch.working_hours !== undefined) {
        if (patch.working_hours === null) d['working_hours'] = null;
        else {
          const { start, end, days } = patch.working_hours;
          for (const [f, v] of [
            ['working_hours.start', start],
            ['working_hours.end', end],
          ] as const) {
            if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(v))
              throw invalid(f, `"${v}" is not a time of day (allowed: HH:MM, 00:00–23:59)`);
          }
          if (start >= end) throw invalid('working_hours', `start ${start} must be before end ${end}`);
          d['working_hours'] = { start, end, days: days ?? [1, 2, 3, 4, 5] };
        }
      }
      if (patch.notes !== undefined)
        d['notes'] = patch.notes === null ? null : cleanText(patch.notes, 'notes', 10_000);
      try {
        const saved = await this.store.putProfile(tenant, d, current?.version ?? null, this.now());
        this.changed(tenant, { kind: 'profile' });
        return await this.statusView(tenant, saved.data, saved.updated_at);
      } catch (err) {
        if (err instanceof StoreConflictError && attempt < 3) continue;
        throw err;
      }
    }
  }

  // ---------------------------------------------------------------- shared item plumbing

  private checkEnum<T extends string>(
    value: string | undefined,
    allowed: readonly T[],
    field: string,
  ): T | undefined {
    if (value === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(value)) {
      throw invalid(field, `"${value}" is not one of ${allowed.join(', ')}`);
    }
    return value as T;
  }

  private base(
    kind: ItemKind,
    now: string,
    clientRef: string | undefined,
  ): Omit<ItemRecord, 'title' | 'body'> {
    if (clientRef !== undefined && (clientRef.length === 0 || clientRef.length > 200)) {
      throw invalid('client_ref', 'must be 1 to 200 characters');
    }
    return {
      id: newId(kind),
      kind,
      status: null,
      priority: null,
      project_id: null,
      tags: [],
      starts_at: null,
      ends_at: null,
      client_ref: clientRef ?? null,
      data: {},
      version: 1,
      created_at: now,
      updated_at: now,
      deleted_at: null,
    };
  }

  /** Inserts one record (idempotent on client_ref) and returns the stored one and whether it is new. */
  private async insert(
    tenant: string,
    record: ItemRecord,
    content?: Uint8Array,
  ): Promise<{ record: ItemRecord; created: boolean }> {
    if (record.client_ref) {
      const existing = await this.store.findByClientRef(tenant, record.kind, record.client_ref);
      if (existing) return { record: existing, created: false };
    }
    const op: WriteOp = content ? { op: 'insert', item: record, content } : { op: 'insert', item: record };
    const result = await this.store.write(tenant, [op], this.now());
    const inserted = result.inserted[0] as { record: ItemRecord; created: boolean };
    if (inserted.created) {
      this.changed(tenant, { kind: record.kind, id: record.id });
      await this.embed(tenant, [inserted.record]);
    }
    return inserted;
  }

  /** Read-modify-write with optimistic concurrency (retried on a concurrent change). */
  private async modify(
    tenant: string,
    id: string,
    target: { kind?: ItemKind; field: string },
    change: (current: ItemRecord) => Promise<ItemRecord> | ItemRecord,
    extraOps: (next: ItemRecord) => Promise<WriteOp[]> | WriteOp[] = () => [],
  ): Promise<{ record: ItemRecord; inserted: ItemRecord[] }> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.getItem(tenant, id);
      if (!current || (target.kind && current.kind !== target.kind)) {
        throw notFound(target.kind ?? 'item', id, target.field);
      }
      const next = await change(current);
      const now = this.now();
      const record: ItemRecord = { ...next, version: current.version + 1, updated_at: now };
      const extra = await extraOps(record);
      try {
        const res = await this.store.write(
          tenant,
          [{ op: 'update', item: record, expected_version: current.version }, ...extra],
          now,
        );
        this.changed(tenant, { kind: record.kind, id: record.id });
        const inserted = res.inserted.filter((i) => i.created).map((i) => i.record);
        for (const i of inserted) this.changed(tenant, { kind: i.kind, id: i.id });
        if (record.title !== current.title || record.body !== current.body || record.tags !== current.tags) {
          await this.embed(tenant, [record, ...inserted]);
        } else if (inserted.length) await this.embed(tenant, inserted);
        return { record, inserted };
      } catch (err) {
        if (err instanceof StoreConflictError && attempt < 3) continue;
        throw err;
      }
    }
  }

  private async embed(tenant: string, records: readonly ItemRecord[]): Promise<void> {
    const provider = this.options.embeddings;
    if (!provider || records.length === 0) return;
    let vectors: (Float32Array | null)[];
    try {
      vectors = await provider.embed(records.map((r) => `${r.title}\n${r.body}\n${r.tags.join(' ')}`));
    } catch {
      vectors = records.map(() => null); // stored as pending, never as a zero vector
    }
    await this.store.putVectors(
      tenant,
      provider.model,
      records.map((r, i) => ({ id: r.id, vector: vectors[i] ?? null })),
      this.now(),
    );
  }

  /** Embeds items that have no current vector (new model, earlier failure). Returns how many were done. */
  async reembed(tenant: string, batch = 200, onProgress?: (done: number) => void): Promise<number> {
    const provider = this.options.embeddings;
    if (!provider) return 0;
    let done = 0;
    // One pass in id order: each batch starts after the last, so the work is linear in the number of items,
    // and items whose embedding fails again stay pending for the next pass instead of being retried here.
    let after: string | undefined;
    for (;;) {
      const todo = await this.store.itemsNeedingVectors(tenant, provider.model, batch, after);
      if (todo.length === 0) return done;
      await this.embed(tenant, todo);
      done += todo.length;
      onProgress?.(done);
      after = todo[todo.length - 1]?.id;
    }
  }

  async getRecord(tenant: string, id: string, kind?: ItemKind, field = 'id'): Promise<ItemRecord> {
    const r = await this.store.getItem(tenant, id);
    if (!r || (kind && r.kind !== kind)) throw notFound(kind ?? 'item', id, field);
    return r;
  }

  private async list<T>(
    tenant: string,
    query: Omit<ItemQuery, 'limit' | 'after'>,
    cursor: string | undefined,
    limit: number | undefined,
    view: (records: ItemRecord[]) => Promise<T[]>,
  ): Promise<Page<T>> {
    const n = pageLimit(limit);
    const after = decodeCursor(cursor, `${query.kind}:${query.order}`);
    const rows = await this.store.listItems(tenant, { ...query, limit: n + 1, ...(after ? { after } : {}) });
    const page = rows.slice(0, n);
    const last = page[page.length - 1];
    return {
      items: await view(page),
      next_cursor:
        rows.length > n && last
          ? encodeCursor(`${query.kind}:${query.order}`, sortKey(last, query.order), last.id)
          : null,
    };
  }

  // ---------------------------------------------------------------- views

  async views(tenant: string, records: readonly ItemRecord[], summary = false): Promise<ItemView[]> {
    const zone = await this.timeZone(tenant);
    const projectIds = records.filter((r) => r.kind === 'project').map((r) => r.id);
    const counts = await this.store.projectTaskCounts(tenant, projectIds);
    return records.map((r) => this.view(r, zone, counts.get(r.id), summary));
  }

  async viewOf(tenant: string, record: ItemRecord): Promise<ItemView> {
    return (await this.views(tenant, [record]))[0] as ItemView;
  }

  view(r: ItemRecord, zone: string, counts?: { total: number; done: number }, summary = false): ItemView {
    const d = r.data;
    const common = {
      id: r.id,
      uri: uriOf(r.kind, r.id),
      tags: [...r.tags],
      created_at: formatInstant(r.created_at, zone),
      updated_at: formatInstant(r.updated_at, zone),
      deleted_at: r.deleted_at ? formatInstant(r.deleted_at, zone) : null,
    };
    const text = (k: string): string | null => (summary ? truncate(str(d, k)) : str(d, k));
    const temporal = (k: string): string | null => {
      const t = temporalOf(d[k]);
      return t ? formatTemporal(t, zone) : null;
    };
    switch (r.kind) {
      case 'project': {
        const c = counts ?? { total: 0, done: 0 };
        const manual = typeof d['progress'] === 'number' ? d['progress'] : 0;
        return {
          kind: 'project',
          ...common,
          name: r.title,
          description: text('description'),
          status: (r.status ?? 'not_started') as ProjectView['status'],
          priority: (r.priority ?? 'medium') as ProjectView['priority'],
          start_date: temporal('start_date'),
          end_date: temporal('end_date'),
          progress: c.total > 0 ? Math.round((100 * c.done) / c.total) : manual,
          progress_source: c.total > 0 ? 'tasks' : 'manual',
          task_counts: c,
          notes: text('notes'),
        } satisfies ProjectView;
      }
      case 'task': {
        const due = temporalOf(d['due']);
        const reminder = temporalOf(d['reminder']);
        const tz = str(d, 'timezone');
        return {
          kind: 'task',
          ...common,
          title: r.title,
          description: text('description'),
          status: (r.status ?? 'todo') as TaskView['status'],
          priority: (r.priority ?? 'medium') as TaskView['priority'],
          project_id: r.project_id,
          due_date: due ? formatTemporal(due, 'at' in due ? (tz ?? zone) : zone) : null,
          timezone: tz,
          reminder_date: reminder ? formatTemporal(reminder, tz ?? zone) : null,
          recurrence: str(d, 'recurrence'),
          completed: r.status === 'done',
          completed_at: str(d, 'completed_at') ? formatInstant(str(d, 'completed_at') as string, zone) : null,
        } satisfies TaskView;
      }
      case 'event': {
        const tz = str(d, 'timezone') ?? zone;
        const start = temporalOf(d['start']);
        const end = temporalOf(d['end']);
        return {
          kind: 'event',
          ...common,
          title: r.title,
          description: text('description'),
          start_time: start ? formatTemporal(start, tz) : '',
          end_time: end ? formatTemporal(end, tz) : '',
          all_day: d['all_day'] === true,
          timezone: tz,
          location: str(d, 'location'),
          attendees: Array.isArray(d['attendees'])
            ? d['attendees'].filter((a): a is string => typeof a === 'string')
            : [],
          reminder_minutes: typeof d['reminder_minutes'] === 'number' ? d['reminder_minutes'] : null,
          recurrence: str(d, 'recurrence'),
          occurrence_start: null,
        } satisfies EventView;
      }
      case 'document':
        return {
          kind: 'document',
          ...common,
          title: r.title,
          description: text('description'),
          document_type: (str(d, 'document_type') ?? 'other') as DocumentView['document_type'],
          mime_type: str(d, 'mime_type'),
          filename: str(d, 'filename'),
          size_bytes: typeof d['size_bytes'] === 'number' ? d['size_bytes'] : 0,
          checksum: str(d, 'checksum'),
          external_url: str(d, 'external_url'),
          storage: (str(d, 'storage') ?? 'database') as DocumentView['storage'],
        } satisfies DocumentView;
      case 'note':
        return {
          kind: 'note',
          ...common,
          title: r.title,
          text: summary ? (truncate(r.body) ?? '') : r.body,
          note_kind: (str(d, 'note_kind') ?? 'note') as NoteView['note_kind'],
          pinned: d['pinned'] === true,
        } satisfies NoteView;
    }
  }

  // ---------------------------------------------------------------- projects

  async createProject(
    tenant: string,
    input: ProjectInput,
  ): Promise<{ project: ProjectView; created: boolean }> {
    const zone = await this.timeZone(tenant);
    const now = this.now();
    const status = this.checkEnum(input.status, PROJECT_STATUS_LIST, 'status') ?? 'not_started';
    const priority = this.checkEnum(input.priority, PRIORITY_LIST, 'priority') ?? 'medium';
    const start = input.start_date ? parseTemporal(input.start_date, 'start_date', zone) : null;
    const end = input.end_date ? parseTemporal(input.end_date, 'end_date', zone) : null;
    if (start && end && temporalInstant(end, zone) < temporalInstant(start, zone)) {
      throw invalid('end_date', `is before start_date (${input.start_date})`);
    }
    const description =
      input.description === undefined ? null : cleanText(input.description, 'description', 20_000);
    const notes = input.notes === undefined ? null : cleanText(input.notes, 'notes', 20_000);
    const record: ItemRecord = {
      ...this.base('project', now, input.client_ref),
      title: cleanText(input.name, 'name', 300, true).trim(),
      body: [description, notes].filter(Boolean).join('\n'),
      status,
      priority,
      tags: cleanTags(input.tags),
      starts_at: start ? temporalInstant(start, zone) : null,
      ends_at: end ? temporalInstant(end, zone) : null,
      data: { description, notes, start_date: start, end_date: end, progress: 0 },
    };
    const { record: stored, created } = await this.insert(tenant, record);
    return { project: (await this.viewOf(tenant, stored)) as ProjectView, created };
  }

  async listProjects(
    tenant: string,
    q: {
      status?: string | undefined;
      priority?: string | undefined;
      tags?: string[] | undefined;
      trash?: boolean | undefined;
      cursor?: string | undefined;
      limit?: number | undefined;
    },
  ): Promise<Page<ProjectView>> {
    const status = this.checkEnum(q.status, PROJECT_STATUS_LIST, 'status');
    const priority = this.checkEnum(q.priority, PRIORITY_LIST, 'priority');
    return this.list(
      tenant,
      {
        kind: 'project',
        order: 'created_desc',
        trash: q.trash ?? false,
        ...(status ? { status: [status] } : {}),
        ...(priority ? { priority: [priority] } : {}),
        ...(q.tags?.length ? { tags: q.tags } : {}),
      },
      q.cursor,
      q.limit,
      async (rs) => (await this.views(tenant, rs, true)) as ProjectView[],
    );
  }

  async getProject(
    tenant: string,
    id: string,
  ): Promise<{ project: ProjectView; tasks: TaskView[]; tasks_truncated: boolean }> {
    const record = await this.getRecord(tenant, id, 'project', 'project_id');
    const tasks = await this.store.listItems(tenant, {
      kind: 'task',
      project_id: id,
      order: 'starts_asc',
      limit: MAX_PAGE + 1,
    });
    const views = await this.views(tenant, [record, ...tasks.slice(0, MAX_PAGE)], false);
    return {
      project: views[0] as ProjectView,
      tasks: views.slice(1) as TaskView[],
      tasks_truncated: tasks.length > MAX_PAGE,
    };
  }

  private async applyProjectPatch(tenant: string, r: ItemRecord, p: ProjectPatch): Promise<ItemRecord> {
    const zone = await this.timeZone(tenant);
    const data: JsonObject = { ...r.data };
    let { title, status, priority, tags, starts_at, ends_at } = r;
    if (p.name !== undefined) title = cleanText(p.name, 'name', 300, true).trim();
    if (p.description !== undefined)
      data['description'] = p.description === null ? null : cleanText(p.description, 'description', 20_000);
    if (p.notes !== undefined) data['notes'] = p.notes === null ? null : cleanText(p.notes, 'notes', 20_000);
    if (p.status !== undefined) status = this.checkEnum(p.status, PROJECT_STATUS_LIST, 'status') ?? status;
    if (p.priority !== undefined)
      priority = this.checkEnum(p.priority, PRIORITY_LIST, 'priority') ?? priority;
    if (p.progress !== undefined) {
      if (!Number.isInteger(p.progress) || p.progress < 0 || p.progress > 100) {
        throw invalid('progress', `${p.progress} is not a whole number from 0 to 100`);
      }
      data['progress'] = p.progress;
    }
    if (p.tags !== undefined) tags = cleanTags(p.tags);
    if (p.start_date !== undefined) {
      const t = p.start_date === null ? null : parseTemporal(p.start_date, 'start_date', zone);
      data['start_date'] = t;
      starts_at = t ? temporalInstant(t, zone) : null;
    }
    if (p.end_date !== undefined) {
      const t = p.end_date === null ? null : parseTemporal(p.end_date, 'end_date', zone);
      data['end_date'] = t;
      ends_at = t ? temporalInstant(t, zone) : null;
    }
    if (starts_at && ends_at && ends_at < starts_at) throw invalid('end_date', 'is before start_date');
    const body = [str(data, 'description'), str(data, 'notes')].filter(Boolean).join('\n');
    return { ...r, title, body, status, priority, tags, starts_at, ends_at, data };
  }

  async updateProject(tenant: string, id: string, patch: ProjectPatch): Promise<ProjectView> {
    const { record } = await this.modify(tenant, id, { kind: 'project', field: 'project_id' }, (r) =>
      this.applyProjectPatch(tenant, r, patch),
    );
    return (await this.viewOf(tenant, record)) as ProjectView;
  }

  // ---------------------------------------------------------------- tasks

  private async buildTask(tenant: string, input: TaskInput, zone: string, now: string): Promise<ItemRecord> {
    const tz = input.timezone !== undefined ? checkZone(input.timezone, 'timezone') : zone;
    const due = input.due_date ? parseTemporal(input.due_date, 'due_date', tz) : null;
    const reminder = input.reminder_date ? parseTemporal(input.reminder_date, 'reminder_date', tz) : null;
    const recurrence = input.recurrence ? normalizeRecurrence(input.recurrence) : null;
    if (recurrence && !due) throw invalid('recurrence', 'needs a due_date to repeat from');
    if (input.project_id !== undefined)
      await this.getRecord(tenant, input.project_id, 'project', 'project_id');
    const status = this.checkEnum(input.status, TASK_STATUS_LIST, 'status') ?? 'todo';
    const description =
      input.description === undefined ? null : cleanText(input.description, 'description', 20_000);
    return {
      ...this.base('task', now, input.client_ref),
      title: cleanText(input.title, 'title', 500, true).trim(),
      body: description ?? '',
      status,
      priority: this.checkEnum(input.priority, PRIORITY_LIST, 'priority') ?? 'medium',
      project_id: input.project_id ?? null,
      tags: cleanTags(input.tags),
      starts_at: due ? temporalInstant(due, tz) : null,
      data: {
        description,
        due,
        reminder: reminder ? { at: temporalInstant(reminder, tz), tz } : null,
        timezone: input.timezone !== undefined ? tz : null,
        recurrence,
        completed_at: status === 'done' ? now : null,
      },
    };
  }

  async createTask(tenant: string, input: TaskInput): Promise<{ task: TaskView; created: boolean }> {
    const zone = await this.timeZone(tenant);
    const record = await this.buildTask(tenant, input, zone, this.now());
    const { record: stored, created } = await this.insert(tenant, record);
    return { task: (await this.viewOf(tenant, stored)) as TaskView, created };
  }

  async addProjectTask(
    tenant: string,
    projectId: string,
    input: Omit<TaskInput, 'project_id'>,
  ): Promise<{ project: ProjectView; task: TaskView; created: boolean }> {
    await this.getRecord(tenant, projectId, 'project', 'project_id');
    const { task, created } = await this.createTask(tenant, { ...input, project_id: projectId });
    const project = await this.getRecord(tenant, projectId, 'project', 'project_id');
    return { project: (await this.viewOf(tenant, project)) as ProjectView, task, created };
  }

  async listTasks(
    tenant: string,
    q: {
      completed?: boolean | undefined;
      status?: string[] | undefined;
      priority?: string[] | undefined;
      project_id?: string | undefined;
      due_after?: string | undefined;
      due_before?: string | undefined;
      tags?: string[] | undefined;
      trash?: boolean | undefined;
      cursor?: string | undefined;
      limit?: number | undefined;
    },
  ): Promise<Page<TaskView>> {
    const zone = await this.timeZone(tenant);
    let status = q.status?.map((s, i) => this.checkEnum(s, TASK_STATUS_LIST, `status[${i}]`) as string);
    if (q.completed === true) status = (status ?? ['done']).filter((s) => s === 'done');
    if (q.completed === false)
      status = (status ?? TASK_STATUS_LIST.filter((s) => s !== 'done')).filter((s) => s !== 'done');
    if (status && status.length === 0) return { items: [], next_cursor: null };
    const bound = (v: string | undefined, field: string): string | undefined =>
      v === undefined ? undefined : temporalInstant(parseTemporal(v, field, zone), zone);
    return this.list(
      tenant,
      {
        kind: 'task',
        order: 'starts_asc',
        trash: q.trash ?? false,
        ...(status ? { status } : {}),
        ...(q.priority?.length
          ? {
              priority: q.priority.map(
                (p, i) => this.checkEnum(p, PRIORITY_LIST, `priority[${i}]`) as string,
              ),
            }
          : {}),
        ...(q.project_id !== undefined ? { project_id: q.project_id } : {}),
        ...(q.tags?.length ? { tags: q.tags } : {}),
        ...(q.due_after !== undefined ? { starts_from: bound(q.due_after, 'due_after') as string } : {}),
        ...(q.due_before !== undefined ? { starts_before: bound(q.due_before, 'due_before') as string } : {}),
      },
      q.cursor,
      q.limit,
      async (rs) => (await this.views(tenant, rs, true)) as TaskView[],
    );
  }

  private async applyTaskPatch(tenant: string, r: ItemRecord, p: TaskPatch): Promise<ItemRecord> {
    const zone = await this.timeZone(tenant);
    const data: JsonObject = { ...r.data };
    if (p.timezone !== undefined) data['timezone'] = checkZone(p.timezone, 'timezone');
    const tz = str(data, 'timezone') ?? zone;
    let { title, body, status, priority, tags, starts_at, project_id } = r;
    if (p.title !== undefined) title = cleanText(p.title, 'title', 500, true).trim();
    if (p.description !== undefined) {
      data['description'] = p.description === null ? null : cleanText(p.description, 'description', 20_000);
      body = str(data, 'description') ?? '';
    }
    if (p.status !== undefined) {
      status = this.checkEnum(p.status, TASK_STATUS_LIST, 'status') ?? status;
      data['completed_at'] = status === 'done' ? (str(r.data, 'completed_at') ?? this.now()) : null;
    }
    if (p.priority !== undefined)
      priority = this.checkEnum(p.priority, PRIORITY_LIST, 'priority') ?? priority;
    if (p.tags !== undefined) tags = cleanTags(p.tags);
    if (p.due_date !== undefined) {
      const due = p.due_date === null ? null : parseTemporal(p.due_date, 'due_date', tz);
      data['due'] = due;
      starts_at = due ? temporalInstant(due, tz) : null;
    }
    if (p.reminder_date !== undefined) {
      const rem = p.reminder_date === null ? null : parseTemporal(p.reminder_date, 'reminder_date', tz);
      data['reminder'] = rem ? { at: temporalInstant(rem, tz), tz } : null;
    }
    if (p.recurrence !== undefined)
      data['recurrence'] = p.recurrence === null ? null : normalizeRecurrence(p.recurrence);
    if (data['recurrence'] && !data['due']) throw invalid('recurrence', 'needs a due_date to repeat from');
    if (p.project_id !== undefined) {
      if (p.project_id !== null) await this.getRecord(tenant, p.project_id, 'project', 'project_id');
      project_id = p.project_id;
    }
    return { ...r, title, body, status, priority, tags, starts_at, project_id, data };
  }

  async completeTask(
    tenant: string,
    id: string,
  ): Promise<{ todo: TaskView; next: TaskView | null; already_completed: boolean }> {
    const current = await this.getRecord(tenant, id, 'task', 'todo_id');
    if (current.deleted_at)
      throw new AssistantError('conflict', `task "${id}" is in the trash`, {
        field: 'todo_id',
        hint: 'Restore it with restore_items first.',
      });
    if (current.status === 'done') {
      return { todo: (await this.viewOf(tenant, current)) as TaskView, next: null, already_completed: true };
    }
    const zone = await this.timeZone(tenant);
    const now = this.now();
    const { record, inserted } = await this.modify(
      tenant,
      id,
      { kind: 'task', field: 'todo_id' },
      (r) => ({ ...r, status: 'done', data: { ...r.data, completed_at: now } }),
      (r) => {
        const rule = str(r.data, 'recurrence');
        const due = temporalOf(r.data['due']);
        if (!rule || !due) return [];
        // Each instance starts the series again at its own due date, so COUNT counts down (this one is used).
        const count = /(?:^|;)COUNT=(\d+)/i.exec(rule);
        if (count && Number(count[1]) <= 1) return [];
        const nextRule = count ? rule.replace(/(^|;)COUNT=\d+/i, `$1COUNT=${Number(count[1]) - 1}`) : rule;
        const tz = str(r.data, 'timezone') ?? zone;
        const dueAt = temporalInstant(due, tz);
        const nextAt = nextOccurrence(rule, dueAt, tz, dueAt);
        if (!nextAt) return [];
        const nextDue: Temporal =
          'date' in due ? { date: formatInstant(nextAt, tz).slice(0, 10) } : { at: nextAt, tz };
        const reminder = temporalOf(r.data['reminder']);
        const nextReminder =
          reminder && 'at' in reminder ? keepWallClockOffset(dueAt, reminder.at, nextAt, tz) : null;
        const next: ItemRecord = {
          ...this.base('task', now, undefined),
          title: r.title,
          body: r.body,
          status: 'todo',
          priority: r.priority,
          project_id: r.project_id,
          tags: r.tags,
          starts_at: temporalInstant(nextDue, tz),
          data: {
            ...r.data,
            due: nextDue,
            recurrence: nextRule,
            reminder: nextReminder === null ? null : { at: nextReminder, tz },
            completed_at: null,
            previous_id: r.id,
          },
        };
        return [{ op: 'insert', item: next }];
      },
    );
    const views = await this.views(tenant, [record, ...inserted]);
    return {
      todo: views[0] as TaskView,
      next: (views[1] as TaskView | undefined) ?? null,
      already_completed: false,
    };
  }

  // ---------------------------------------------------------------- events

  private eventTimes(
    start: string,
    end: string | undefined,
    allDay: boolean,
    tz: string,
  ): { start: Temporal; end: Temporal; starts_at: string; ends_at: string } {
    let s = parseTemporal(start, 'start_time', tz);
    let e = end !== undefined ? parseTemporal(end, 'end_time', tz) : null;
    if (allDay) {
      const sd = 'date' in s ? s.date : formatInstant(s.at, tz).slice(0, 10);
      const ed = e ? ('date' in e ? e.date : formatInstant(e.at, tz).slice(0, 10)) : sd;
      s = { date: sd };
      e = { date: ed };
      if (ed < sd) throw invalid('end_time', `ends (${ed}) before it starts (${sd})`);
      return { start: s, end: e, starts_at: startOfDay(sd, tz), ends_at: startOfDay(addDays(ed, 1), tz) };
    }
    if ('date' in s) {
      throw invalid(
        'start_time',
        `"${start}" is a date without a time`,
        'Give a time (YYYY-MM-DDTHH:MM) or set all_day: true.',
      );
    }
    if (e === null) e = { at: plusMinutes(s.at, 60), tz };
    if ('date' in e)
      throw invalid('end_time', `"${end}" is a date without a time`, 'Give a time, or set all_day: true.');
    if (e.at <= s.at) throw invalid('end_time', `must be after start_time (${start})`);
    return { start: s, end: e, starts_at: s.at, ends_at: e.at };
  }

  async createEvent(tenant: string, input: EventInput): Promise<{ event: EventView; created: boolean }> {
    const zone = await this.timeZone(tenant);
    const tz = input.timezone !== undefined ? checkZone(input.timezone, 'timezone') : zone;
    const times = this.eventTimes(input.start_time, input.end_time, input.all_day ?? false, tz);
    const recurrence = input.recurrence ? normalizeRecurrence(input.recurrence) : null;
    if (
      input.reminder_minutes !== undefined &&
      (input.reminder_minutes < 0 || input.reminder_minutes > 40320)
    ) {
      throw invalid(
        'reminder_minutes',
        `${input.reminder_minutes} is out of range (allowed: 0 to 40320, four weeks)`,
      );
    }
    const description =
      input.description === undefined ? null : cleanText(input.description, 'description', 20_000);
    const location = input.location === undefined ? null : cleanText(input.location, 'location', 500);
    const attendees = (input.attendees ?? []).map((a, i) =>
      cleanText(a, `attendees[${i}]`, 320, true).trim(),
    );
    const record: ItemRecord = {
      ...this.base('event', this.now(), input.client_ref),
      title: cleanText(input.title, 'title', 500, true).trim(),
      body: [description, location, attendees.join(', ')].filter(Boolean).join('\n'),
      tags: cleanTags(input.tags),
      starts_at: times.starts_at,
      ends_at: recurrence ? seriesEndOf(recurrence, times, tz) : times.ends_at,
      data: {
        description,
        start: times.start,
        end: times.end,
        all_day: input.all_day ?? false,
        timezone: tz,
        location,
        attendees,
        reminder_minutes: input.reminder_minutes ?? 15,
        recurrence,
      },
    };
    const { record: stored, created } = await this.insert(tenant, record);
    return { event: (await this.viewOf(tenant, stored)) as EventView, created };
  }

  private async applyEventPatch(tenant: string, r: ItemRecord, p: EventPatch): Promise<ItemRecord> {
    const zone = await this.timeZone(tenant);
    const data: JsonObject = { ...r.data };
    const tz = p.timezone !== undefined ? checkZone(p.timezone, 'timezone') : (str(data, 'timezone') ?? zone);
    data['timezone'] = tz;
    let { title, tags } = r;
    if (p.title !== undefined) title = cleanText(p.title, 'title', 500, true).trim();
    if (p.description !== undefined)
      data['description'] = p.description === null ? null : cleanText(p.description, 'description', 20_000);
    if (p.location !== undefined)
      data['location'] = p.location === null ? null : cleanText(p.location, 'location', 500);
    if (p.attendees !== undefined)
      data['attendees'] = p.attendees.map((a, i) => cleanText(a, `attendees[${i}]`, 320, true).trim());
    if (p.reminder_minutes !== undefined) data['reminder_minutes'] = p.reminder_minutes;
    if (p.recurrence !== undefined)
      data['recurrence'] = p.recurrence === null ? null : normalizeRecurrence(p.recurrence);
    if (p.all_day !== undefined) data['all_day'] = p.all_day;
    if (p.tags !== undefined) tags = cleanTags(p.tags);
    const startOld = temporalOf(data['start']) as Temporal;
    const endOld = temporalOf(data['end']) as Temporal;
    const asInput = (t: Temporal): string => ('date' in t ? t.date : formatInstant(t.at, tz));
    const times = this.eventTimes(
      p.start_time ?? asInput(startOld),
      p.end_time ?? asInput(endOld),
      data['all_day'] === true,
      tz,
    );
    data['start'] = times.start;
    data['end'] = times.end;
    const rule = str(data, 'recurrence');
    const attendees = Array.isArray(data['attendees']) ? data['attendees'].join(', ') : '';
    return {
      ...r,
      title,
      tags,
      body: [str(data, 'description'), str(data, 'location'), attendees].filter(Boolean).join('\n'),
      starts_at: times.starts_at,
      ends_at: rule ? seriesEndOf(rule, times, tz) : times.ends_at,
      data,
    };
  }

  /** Events overlapping [from, to), recurring ones expanded into occurrences, sorted by start. */
  async eventsBetween(tenant: string, fromUtc: string, toUtc: string, tags?: string[]): Promise<EventView[]> {
    const zone = await this.timeZone(tenant);
    const out: EventView[] = [];
    let after: { key: string; id: string } | undefined;
    for (;;) {
      const rows = await this.store.listItems(tenant, {
        kind: 'event',
        order: 'starts_asc',
        overlaps: { from: fromUtc, to: toUtc },
        ...(tags?.length ? { tags } : {}),
        limit: 500,
        ...(after ? { after } : {}),
      });
      for (const r of rows) {
        const v = this.view(r, zone) as EventView;
        const rule = str(r.data, 'recurrence');
        if (!rule) {
          out.push(v);
          continue;
        }
        const tz = str(r.data, 'timezone') ?? zone;
        const duration = Date.parse(this.eventEnd(r)) - Date.parse(r.starts_at as string);
        const widenedFrom = new Date(Date.parse(fromUtc) - duration).toISOString();
        for (const occ of occurrencesBetween(rule, r.starts_at as string, tz, widenedFrom, toUtc)) {
          if (Date.parse(occ) + duration <= Date.parse(fromUtc) && duration > 0) continue;
          out.push({ ...v, occurrence_start: formatInstant(occ, tz) });
        }
        if (out.length > 5000) break;
      }
      const last = rows[rows.length - 1];
      if (rows.length < 500 || !last || out.length > 5000) break;
      after = { key: sortKey(last, 'starts_asc'), id: last.id };
    }
    const startOf = (e: EventView): number => Date.parse(e.occurrence_start ?? e.start_time) || 0;
    return out.sort((a, b) => startOf(a) - startOf(b) || a.id.localeCompare(b.id));
  }

  private eventEnd(r: ItemRecord): string {
    const tz = str(r.data, 'timezone') ?? 'UTC';
    const end = temporalOf(r.data['end']);
    if (!end) return r.starts_at as string;
    return 'date' in end ? startOfDay(addDays(end.date, 1), tz) : end.at;
  }

  async listEvents(
    tenant: string,
    q: {
      start_date?: string | undefined;
      end_date?: string | undefined;
      tags?: string[] | undefined;
      cursor?: string | undefined;
      limit?: number | undefined;
    },
  ): Promise<Page<EventView> & { range: { start: string; end: string } }> {
    const zone = await this.timeZone(tenant);
    const n = pageLimit(q.limit);
    const from = q.start_date
      ? parseTemporal(q.start_date, 'start_date', zone)
      : { date: todayIn(zone, this.clock) };
    const fromUtc = temporalInstant(from, zone);
    let toUtc: string;
    if (q.end_date) {
      const to = parseTemporal(q.end_date, 'end_date', zone);
      // A date as end includes that whole day.
      toUtc = 'date' in to ? startOfDay(addDays(to.date, 1), zone) : to.at;
    } else toUtc = new Date(Date.parse(fromUtc) + 30 * 86_400_000).toISOString();
    if (toUtc <= fromUtc) throw invalid('end_date', 'must be after start_date');
    if (Date.parse(toUtc) - Date.parse(fromUtc) > 400 * 86_400_000) {
      throw invalid(
        'end_date',
        'the range is longer than 400 days',
        'List a shorter range and page through it.',
      );
    }
    const all = await this.eventsBetween(tenant, fromUtc, toUtc, q.tags);
    const key = (e: EventView): string => `${e.occurrence_start ?? e.start_time}|${e.id}`;
    const after = decodeCursor(q.cursor, 'event:range');
    const startIdx = after ? all.findIndex((e) => key(e) === `${after.key}|${after.id}`) + 1 : 0;
    if (after && startIdx === 0)
      throw invalid('cursor', 'no longer matches this list', 'Start over without a cursor.');
    const page = all.slice(startIdx, startIdx + n);
    const last = page[page.length - 1];
    return {
      items: page,
      next_cursor:
        startIdx + n < all.length && last
          ? encodeCursor('event:range', last.occurrence_start ?? last.start_time, last.id)
          : null,
      range: { start: formatInstant(fromUtc, zone), end: formatInstant(toUtc, zone) },
    };
  }

  // ---------------------------------------------------------------- documents

  async uploadDocument(
    tenant: string,
    input: UploadInput,
  ): Promise<{ document: DocumentView; created: boolean }> {
    const b64 = input.content_base64.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.length % 4 === 1) {
      throw invalid('content_base64', 'is not valid base64', 'Encode the file’s bytes with standard base64.');
    }
    const approx = Math.floor((b64.length * 3) / 4);
    const limit = this.options.maxUploadBytes;
    if (approx - 2 > limit) {
      throw new AssistantError(
        'too_large',
        `the file is about ${approx} bytes; the limit is ${limit} bytes`,
        {
          field: 'content_base64',
          hint: 'Store a link with create_external_document instead, or ask the operator to raise documents.max_file_size_mb.',
        },
      );
    }
    const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
    if (bytes.length > limit) {
      throw new AssistantError(
        'too_large',
        `the file is ${bytes.length} bytes; the limit is ${limit} bytes`,
        {
          field: 'content_base64',
        },
      );
    }
    if (bytes.length === 0) throw invalid('content_base64', 'is empty');
    const filename = input.filename ?? (/\.[A-Za-z0-9]{1,8}$/.test(input.title) ? input.title : null);
    const declared = input.mime_type?.toLowerCase() ?? null;
    if (declared !== null && !/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(declared)) {
      throw invalid(
        'mime_type',
        `"${input.mime_type}" is not a media type`,
        'Example: application/pdf, image/png, text/plain.',
      );
    }
    const sniffed = sniffMime(bytes);
    if (declared && sniffed && declared !== sniffed) {
      throw invalid(
        'mime_type',
        `says ${declared} but the content is ${sniffed}`,
        'Declare the real type or leave mime_type out.',
      );
    }
    const mime = declared ?? sniffed ?? guessMime(filename) ?? 'application/octet-stream';
    const type = mimeToType(mime);
    const description =
      input.description === undefined ? null : cleanText(input.description, 'description', 20_000);
    const textContent =
      type === 'text'
        ? new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, INDEXED_TEXT_CHARS))
        : '';
    const record: ItemRecord = {
      ...this.base('document', this.now(), input.client_ref),
      title: cleanText(input.title, 'title', 500, true).trim(),
      body: [description, textContent].filter(Boolean).join('\n'),
      tags: cleanTags(input.tags),
      data: {
        description,
        document_type: type,
        mime_type: mime,
        filename,
        size_bytes: bytes.length,
        checksum: createHash('sha256').update(bytes).digest('hex'),
        external_url: null,
        storage: this.options.storageInfo.documents.startsWith('folder') ? 'folder' : 'database',
      },
    };
    const { record: stored, created } = await this.insert(tenant, record, bytes);
    return { document: (await this.viewOf(tenant, stored)) as DocumentView, created };
  }

  async createExternalDocument(
    tenant: string,
    input: ExternalDocInput,
  ): Promise<{ document: DocumentView; created: boolean }> {
    const url = checkUrl(input.external_url);
    const declared = this.checkEnum(input.document_type, DOCUMENT_TYPES, 'document_type');
    const mime = input.mime_type ?? guessMime(new URL(url).pathname);
    const description =
      input.description === undefined ? null : cleanText(input.description, 'description', 20_000);
    const record: ItemRecord = {
      ...this.base('document', this.now(), input.client_ref),
      title: cleanText(input.title, 'title', 500, true).trim(),
      body: [description, url].filter(Boolean).join('\n'),
      tags: cleanTags(input.tags),
      data: {
        description,
        document_type: declared ?? mimeToType(mime),
        mime_type: mime,
        filename: null,
        size_bytes: 0,
        checksum: null,
        external_url: url,
        storage: 'external',
      },
    };
    const { record: stored, created } = await this.insert(tenant, record);
    return { document: (await this.viewOf(tenant, stored)) as DocumentView, created };
  }

  async listDocuments(
    tenant: string,
    q: {
      tags?: string[] | undefined;
      document_type?: string | undefined;
      trash?: boolean | undefined;
      cursor?: string | undefined;
      limit?: number | undefined;
    },
  ): Promise<Page<DocumentView>> {
    const type = this.checkEnum(q.document_type, DOCUMENT_TYPES, 'document_type');
    return this.list(
      tenant,
      {
        kind: 'document',
        order: 'created_desc',
        trash: q.trash ?? false,
        ...(q.tags?.length ? { tags: q.tags } : {}),
        ...(type ? { data_in: { document_type: [type] } } : {}),
      },
      q.cursor,
      q.limit,
      async (rs) => (await this.views(tenant, rs, true)) as DocumentView[],
    );
  }

  async getDocument(
    tenant: string,
    id: string,
    includeContent = false,
  ): Promise<{ document: DocumentView; content: Uint8Array | null }> {
    const record = await this.getRecord(tenant, id, 'document', 'document_id');
    const document = (await this.viewOf(tenant, record)) as DocumentView;
    if (!includeContent || document.storage === 'external') return { document, content: null };
    const content = await this.store.getContent(tenant, id);
    return { document, content };
  }

  private applyDocumentPatch(r: ItemRecord, p: DocumentPatch): ItemRecord {
    const data: JsonObject = { ...r.data };
    let { title, tags } = r;
    if (p.title !== undefined) title = cleanText(p.title, 'title', 500, true).trim();
    if (p.description !== undefined)
      data['description'] = p.description === null ? null : cleanText(p.description, 'description', 20_000);
    if (p.tags !== undefined) tags = cleanTags(p.tags);
    if (p.external_url !== undefined) {
      if (data['storage'] !== 'external') throw invalid('external_url', 'only external documents have a URL');
      data['external_url'] = checkUrl(p.external_url);
    }
    const extra =
      data['storage'] === 'external' ? str(data, 'external_url') : r.body.split('\n').slice(1).join('\n');
    return { ...r, title, tags, data, body: [str(data, 'description'), extra].filter(Boolean).join('\n') };
  }

  // ---------------------------------------------------------------- notes

  async addNote(tenant: string, input: NoteInput): Promise<{ note: NoteView; created: boolean }> {
    const text = cleanText(input.text, 'text', 50_000, true).trim();
    const record: ItemRecord = {
      ...this.base('note', this.now(), input.client_ref),
      title: noteTitle(text),
      body: text,
      tags: cleanTags(input.tags),
      data: {
        note_kind: this.checkEnum(input.kind, NOTE_KIND_LIST, 'kind') ?? 'note',
        pinned: input.pinned ?? false,
      },
    };
    const { record: stored, created } = await this.insert(tenant, record);
    return { note: (await this.viewOf(tenant, stored)) as NoteView, created };
  }

  async listNotes(
    tenant: string,
    q: { pinned?: boolean; trash?: boolean; cursor?: string; limit?: number },
  ): Promise<Page<NoteView>> {
    return this.list(
      tenant,
      {
        kind: 'note',
        order: 'updated_desc',
        trash: q.trash ?? false,
        ...(q.pinned !== undefined ? { data_in: { pinned: [q.pinned] } } : {}),
      },
      q.cursor,
      q.limit,
      async (rs) => (await this.views(tenant, rs, true)) as NoteView[],
    );
  }

  private applyNotePatch(r: ItemRecord, p: NotePatch): ItemRecord {
    const data: JsonObject = { ...r.data };
    let { title, body, tags } = r;
    if (p.text !== undefined) {
      body = cleanText(p.text, 'text', 50_000, true).trim();
      title = noteTitle(body);
    }
    if (p.kind !== undefined) data['note_kind'] = this.checkEnum(p.kind, NOTE_KIND_LIST, 'kind') ?? 'note';
    if (p.pinned !== undefined) data['pinned'] = p.pinned;
    if (p.tags !== undefined) tags = cleanTags(p.tags);
    return { ...r, title, body, tags, data };
  }

  // ---------------------------------------------------------------- batches

  /** Applies each change on its own: one failure does not stop the others. */
  /**
   * Runs one change per entry, each on its own: a failure the caller can act on is reported for that entry and the
   * others go ahead. Only unexpected errors stop the batch.
   */
  private async eachItem<T extends { id: string }>(
    entries: readonly T[],
    apply: (entry: T, field: string) => Promise<ItemView | null>,
    field: (index: number) => string,
  ): Promise<BatchResult[]> {
    const results: BatchResult[] = [];
    for (const [i, entry] of entries.entries()) {
      try {
        results.push({ id: entry.id, ok: true, error: null, item: await apply(entry, field(i)) });
      } catch (err) {
        const message =
          err instanceof AssistantError
            ? err.message
            : err instanceof StoreConflictError
              ? `${field(i)}: changed by other requests at the same moment; try again`
              : undefined;
        if (message === undefined) throw err;
        results.push({ id: entry.id, ok: false, error: message, item: null });
      }
    }
    return results;
  }

  async updateItems(
    tenant: string,
    changes: readonly { id: string; changes: Record<string, unknown> }[],
  ): Promise<BatchResult[]> {
    return this.eachItem(
      changes,
      async (c, field) => {
        const { record } = await this.modify(tenant, c.id, { field }, async (r) => {
          if (r.deleted_at)
            throw new AssistantError('conflict', 'is in the trash', { field, hint: 'Restore it first.' });
          const patch = checkPatch(r.kind, c.changes, field.replace(/\.id$/, '.changes'));
          switch (r.kind) {
            case 'project':
              return this.applyProjectPatch(tenant, r, patch as ProjectPatch);
            case 'task':
              return this.applyTaskPatch(tenant, r, patch as TaskPatch);
            case 'event':
              return this.applyEventPatch(tenant, r, patch as EventPatch);
            case 'document':
              return this.applyDocumentPatch(r, patch as DocumentPatch);
            case 'note':
              return this.applyNotePatch(r, patch as NotePatch);
          }
        });
        return this.viewOf(tenant, record);
      },
      (i) => `items[${i}].id`,
    );
  }

  async deleteItems(tenant: string, ids: readonly string[], permanent: boolean): Promise<BatchResult[]> {
    return this.eachItem(
      ids.map((id) => ({ id })),
      async ({ id }, field) => {
        if (permanent) {
          const r = await this.getRecord(tenant, id, undefined, field);
          await this.store.write(tenant, [{ op: 'purge', id }], this.now());
          this.changed(tenant, { kind: r.kind, id });
          return null;
        }
        const now = this.now();
        const { record } = await this.modify(tenant, id, { field }, (r) => {
          if (r.deleted_at) {
            throw new AssistantError('conflict', `"${id}" is already in the trash`, {
              field,
              hint: 'Use permanent: true to delete it for good.',
            });
          }
          return { ...r, deleted_at: now };
        });
        return this.viewOf(tenant, record);
      },
      (i) => `ids[${i}]`,
    );
  }

  async restoreItems(tenant: string, ids: readonly string[]): Promise<BatchResult[]> {
    return this.eachItem(
      ids.map((id) => ({ id })),
      async ({ id }, field) => {
        const { record } = await this.modify(tenant, id, { field }, (r) => {
          if (!r.deleted_at) throw new AssistantError('conflict', `"${id}" is not in the trash`, { field });
          return { ...r, deleted_at: null };
        });
        return this.viewOf(tenant, record);
      },
      (i) => `ids[${i}]`,
    );
  }

  /** Live items of one kind, all pages, for export and resources (bounded). */
  async allOf(
    tenant: string,
    kind: ItemKind,
    max = 10_000,
    order: ListOrder = 'created_desc',
  ): Promise<ItemRecord[]> {
    const out: ItemRecord[] = [];
    let after: { key: string; id: string } | undefined;
    while (out.length < max) {
      const rows = await this.store.listItems(tenant, {
        kind,
        order,
        limit: 500,
        ...(after ? { after } : {}),
      });
      out.push(...rows);
      const last = rows[rows.length - 1];
      if (rows.length < 500 || !last) break;
      after = { key: sortKey(last, order), id: last.id };
    }
    return out.slice(0, max);
  }
}

const PROJECT_STATUS_LIST = ['not_started', 'in_progress', 'on_hold', 'completed', 'cancelled'] as const;
const TASK_STATUS_LIST = ['todo', 'in_progress', 'done', 'blocked'] as const;
const PRIORITY_LIST = ['low', 'medium', 'high', 'urgent'] as const;
const NOTE_KIND_LIST = ['note', 'fact', 'preference'] as const;

function noteTitle(text: string): string {
  const first = text.split('\n', 1)[0]?.trim() ?? '';
  return clip(first, 80, true);
}

function checkUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    throw invalid(
      'external_url',
      `"${input}" is not an absolute URL`,
      'Example: https://example.com/report.pdf',
    );
  }
  if (!['http:', 'https:', 'ftp:', 'file:', 'smb:'].includes(url.protocol)) {
    throw invalid(
      'external_url',
      `scheme "${url.protocol}" is not allowed (allowed: https, http, ftp, file, smb)`,
    );
  }
  return url.toString();
}

function seriesEndOf(rule: string, times: { starts_at: string; ends_at: string }, tz: string): string | null {
  const last = seriesEnd(rule, times.starts_at, tz);
  if (last === null) return null;
  return new Date(Date.parse(last) + (Date.parse(times.ends_at) - Date.parse(times.starts_at))).toISOString();
}

const PATCH_FIELDS: Record<
  ItemKind,
  Record<string, 'string' | 'nstring' | 'number' | 'nnumber' | 'boolean' | 'strings'>
> = {
  project: {
    name: 'string',
    description: 'nstring',
    status: 'string',
    priority: 'string',
    progress: 'number',
    notes: 'nstring',
    tags: 'strings',
    start_date: 'nstring',
    end_date: 'nstring',
  },
  task: {
    title: 'string',
    description: 'nstring',
    status: 'string',
    priority: 'string',
    due_date: 'nstring',
    reminder_date: 'nstring',
    timezone: 'string',
    recurrence: 'nstring',
    project_id: 'nstring',
    tags: 'strings',
  },
  event: {
    title: 'string',
    description: 'nstring',
    start_time: 'string',
    end_time: 'string',
    all_day: 'boolean',
    timezone: 'string',
    location: 'nstring',
    attendees: 'strings',
    reminder_minutes: 'nnumber',
    recurrence: 'nstring',
    tags: 'strings',
  },
  document: { title: 'string', description: 'nstring', tags: 'strings', external_url: 'string' },
  note: { text: 'string', kind: 'string', pinned: 'boolean', tags: 'strings' },
};

/** Checks a generic patch against the fields the item's kind accepts. */
function checkPatch(
  kind: ItemKind,
  changes: Record<string, unknown>,
  field: string,
): Record<string, unknown> {
  const allowed = PATCH_FIELDS[kind];
  const keys = Object.keys(changes);
  if (keys.length === 0)
    throw invalid(field, 'is empty', `A ${kind} accepts: ${Object.keys(allowed).join(', ')}.`);
  for (const key of keys) {
    const type = allowed[key];
    if (!type) {
      throw invalid(
        `${field}.${key}`,
        `is not a field of a ${kind} (allowed: ${Object.keys(allowed).join(', ')})`,
      );
    }
    const v = changes[key];
    const ok =
      type === 'string'
        ? typeof v === 'string'
        : type === 'nstring'
          ? typeof v === 'string' || v === null
          : type === 'number'
            ? typeof v === 'number'
            : type === 'nnumber'
              ? typeof v === 'number' || v === null
              : type === 'boolean'
                ? typeof v === 'boolean'
                : Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (!ok) {
      const expected = {
        string: 'a string',
        nstring: 'a string or null',
        number: 'a number',
        nnumber: 'a number or null',
        boolean: 'true or false',
        strings: 'an array of strings',
      }[type];
      throw invalid(`${field}.${key}`, `must be ${expected}`);
    }
  }
  return changes;
}
