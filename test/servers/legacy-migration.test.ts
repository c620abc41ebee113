import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  DocumentView,
  EventView,
  ProjectView,
  StatusView,
  TaskView,
} from '../../src/assistant/views.js';
import { CLI, connectCli, databaseChecksum, tempDir } from '../support/helpers.js';
import {
  buildLegacyDatabase,
  legacySchemaSql,
  readLegacyTables,
  type LegacyFixture,
} from '../support/legacy-fixture.js';

const run = promisify(execFile);
const ZONE = 'America/New_York';
const BACKUP_PREFIX = 'database.sqlite.backup-';

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

interface ImportReport {
  counts: Record<string, { found: number; imported: number; already: number }>;
  warnings: string[];
}

/** Calls a tool and returns its structured result; a tool error fails the test with the server's text. */
async function call<T>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<T> {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name} failed: ${JSON.stringify(res.content)}`);
  return res.structuredContent as T;
}

/**
 * A naive legacy date-time ("2025-01-27 15:00:00[.ffffff]") as the server must render it when read in New York
 * in winter (EST, -05:00): ISO form, milliseconds kept only when non-zero.
 */
function inNewYork(naive: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?$/.exec(naive);
  if (!m) throw new Error(`not a naive legacy date-time: ${naive}`);
  const ms = (m[3] ?? '').padEnd(3, '0').slice(0, 3);
  return `${m[1]}T${m[2]}${ms === '' || ms === '000' ? '' : `.${ms}`}-05:00`;
}

function backupsIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith(BACKUP_PREFIX))
    .sort();
}

function tableNames(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
        name: string;
      }[]
    ).map((r) => r.name);
  } finally {
    db.close();
  }
}

/** Expected import counts for a fixture, per source table (embedded tasks counted as `projects.tasks`). */
function expectedCounts(f: LegacyFixture, fresh: boolean): ImportReport['counts'] {
  const c = (found: number) => ({ found, imported: fresh ? found : 0, already: fresh ? 0 : found });
  return {
    user_status: c(1),
    projects: c(f.projects.length),
    'projects.tasks': c(f.projects.reduce((n, p) => n + p.tasks.length, 0)),
    todos: c(f.todos.length),
    calendar_events: c(f.events.length),
    documents: c(f.documents.length),
  };
}

describe('migrating a database of the original Python mcp-pa at start', () => {
  const home = tempDir('mcp-pa-legacy-');
  const appDir = path.join(home.dir, '.config', 'mcp-pa');
  const dbFile = path.join(appDir, 'database.sqlite');
  const env = { HOME: home.dir, MCP_TIMEZONE: ZONE };
  let fixture: LegacyFixture;
  let originalSchema: Record<string, string>;
  let client: Client | undefined;
  let serverStderr: () => string = () => '';

  beforeAll(async () => {
    fixture = buildLegacyDatabase(dbFile);
    originalSchema = legacySchemaSql(dbFile);
    expect(backupsIn(appDir)).toEqual([]);
    // No MCP_DATABASE_PATH: the server must find the original program's default location under HOME.
    const conn = await connectCli(env);
    client = conn.client;
    serverStderr = conn.stderr;
  });

  afterAll(async () => {
    await client?.close();
    home.cleanup();
  });

  const c = (): Client => {
    if (!client) throw new Error(`server is not running; stderr:\n${serverStderr()}`);
    return client;
  };

  it('the fixture is in the original shape (Python json.dumps, ASCII-escaped, space-separated datetimes)', () => {
    const project = fixture.rows.projects[1]?.data ?? '';
    expect(project).toContain('"name": "Caf\\u00e9 relaunch", ');
    expect(project).not.toMatch(/[^\x20-\x7e]/);
    expect(fixture.rows.calendar_events[1]?.data).toContain('\\ud83c\\udf77');
    expect(fixture.rows.calendar_events[0]?.data).toContain('"start_time": "2025-01-27 15:00:00", ');
    expect(fixture.rows.todos[0]?.data).toContain('"completed_at": "2025-01-27 18:42:10.003391"');
    expect(Object.keys(originalSchema).sort()).toHaveLength(9);
  });

  it('get_status has the profile: name, location, laptop, permissions, notes', async () => {
    const status = await call<StatusView>(c(), 'get_status');
    expect(status.name).toBe('Zoë Alvarez');
    expect(status.current_location).toEqual({
      city: fixture.status.city,
      state: fixture.status.state,
      country: fixture.status.country,
      details: null,
    });
    expect(status.laptop_details).toEqual({
      os: fixture.status.os,
      model: fixture.status.model,
      specs: { ram_gb: 36, cpu: 'M3 Max' },
    });
    expect(status.permissions).toEqual({
      file_system: true,
      browser: true,
      terminal: true,
      database: true,
      network: false,
      available_to_setup: ['network'],
    });
    expect(status.notes).toBe(fixture.status.notes);
    expect(status.timezone).toBe(ZONE);
    // Projects in progress, by their original ids.
    expect(status.active_projects).toEqual(
      fixture.projects.filter((p) => p.status === 'in_progress').map((p) => p.id),
    );
  });

  it('list_projects has every project under its original id, and the non-ASCII name round-trips', async () => {
    const page = await call<Page<ProjectView>>(c(), 'list_projects', { limit: 100 });
    expect(page.next_cursor).toBeNull();
    expect(page.items).toHaveLength(fixture.projects.length);
    const byId = new Map(page.items.map((p) => [p.id, p]));
    for (const p of fixture.projects) {
      const got = byId.get(p.id);
      expect(got, `project ${p.id}`).toBeDefined();
      expect(got?.name).toBe(p.name);
      expect(got?.status).toBe(p.status);
      expect(got?.task_counts).toEqual({
        total: p.tasks.length,
        done: p.tasks.filter((t) => t.status === 'done').length,
      });
    }
    expect(page.items.map((p) => p.name)).toContain('Café relaunch');
    const cafe = await call<Page<ProjectView>>(c(), 'list_projects', { tags: ['café'] });
    expect(cafe.items.map((p) => p.id)).toEqual([fixture.projects[1]?.id]);
  });

  it('get_project returns each project with its embedded tasks, by their original ids', async () => {
    for (const p of fixture.projects) {
      const detail = await call<{ project: ProjectView; tasks: TaskView[]; tasks_truncated: boolean }>(
        c(),
        'get_project',
        { project_id: p.id },
      );
      expect(detail.project.id).toBe(p.id);
      expect(detail.tasks_truncated).toBe(false);
      expect(detail.tasks.map((t) => t.id).sort()).toEqual(p.tasks.map((t) => t.id).sort());
      for (const t of p.tasks) {
        const got = detail.tasks.find((x) => x.id === t.id);
        expect(got?.project_id).toBe(p.id);
        expect(got?.title).toBe(t.title);
        expect(got?.status).toBe(t.status);
        expect(got?.completed).toBe(t.status === 'done');
        if (t.completed_at) expect(got?.completed_at).toBe(inNewYork(t.completed_at));
        if (t.due_date && !t.due_date.includes('+')) expect(got?.due_date).toBe(inNewYork(t.due_date));
      }
    }
    const website = await call<{ tasks: TaskView[] }>(c(), 'get_project', {
      project_id: fixture.projects[0]?.id,
    });
    expect(website.tasks.find((t) => t.title === 'Draft wireframes')?.due_date).toBe(
      '2025-01-25T17:00:00-05:00',
    );
    const cafe = await call<{ project: ProjectView; tasks: TaskView[] }>(c(), 'get_project', {
      project_id: fixture.projects[1]?.id,
    });
    expect(cafe.project.name).toBe('Café relaunch');
    expect(cafe.tasks.map((t) => t.title)).toContain('Pick the crème brûlée supplier');
    // A time the original stored with an offset (+01:00) is that instant: 17:00 in Paris is 11:00 in New York.
    expect(cafe.tasks.find((t) => t.title === 'Order signage')?.due_date).toBe('2025-02-05T11:00:00-05:00');
  });

  it('list_todos has every todo (completed ones done) plus the projects’ tasks', async () => {
    const page = await call<Page<TaskView>>(c(), 'list_todos', { limit: 100 });
    const taskCount = fixture.projects.reduce((n, p) => n + p.tasks.length, 0);
    expect(page.items).toHaveLength(fixture.todos.length + taskCount);
    const standalone = page.items.filter((t) => t.project_id === null);
    expect(standalone.map((t) => t.id).sort()).toEqual(fixture.todos.map((t) => t.id).sort());
    for (const t of fixture.todos) {
      const got = standalone.find((x) => x.id === t.id);
      expect(got?.title).toBe(t.title);
      expect(got?.status).toBe(t.completed ? 'done' : 'todo');
      expect(got?.completed).toBe(t.completed);
      expect(got?.completed_at).toBe(t.completed_at ? inNewYork(t.completed_at) : null);
      expect(got?.reminder_date).toBe(t.reminder_date ? inNewYork(t.reminder_date) : null);
      expect(got?.due_date).toBe(t.due_date ? inNewYork(t.due_date) : null);
      expect([...(got?.tags ?? [])].sort()).toEqual([...t.tags].sort());
    }
    const done = await call<Page<TaskView>>(c(), 'list_todos', { completed: true, limit: 100 });
    const expectedDone = [
      ...fixture.todos.filter((t) => t.completed).map((t) => t.id),
      ...fixture.projects.flatMap((p) => p.tasks.filter((t) => t.status === 'done').map((t) => t.id)),
    ];
    expect(done.items.map((t) => t.id).sort()).toEqual(expectedDone.sort());
    expect(standalone.map((t) => t.title)).toContain('Résumé update');
  });

  it('list_calendar_events returns the events over the right range, naive times read in the configured zone', async () => {
    const all = await call<Page<EventView>>(c(), 'list_calendar_events', {
      start_date: '2025-01-01',
      end_date: '2025-03-31',
      limit: 100,
    });
    expect(all.items.map((e) => e.id)).toEqual(fixture.events.map((e) => e.id));
    for (const e of fixture.events) {
      const got = all.items.find((x) => x.id === e.id);
      expect(got?.title).toBe(e.title);
      expect(got?.start_time).toBe(inNewYork(e.start_time));
      expect(got?.end_time).toBe(inNewYork(e.end_time));
      expect(got?.attendees).toEqual(e.attendees);
      expect(got?.location).toBe(e.location);
      expect(got?.timezone).toBe(ZONE);
      expect(got?.all_day).toBe(false);
    }
    const review = all.items.find((e) => e.title === 'Design review');
    expect(review?.start_time).toBe('2025-01-27T15:00:00-05:00');
    expect(review?.end_time).toBe('2025-01-27T16:00:00-05:00');
    expect(review?.reminder_minutes).toBe(15);

    // Range edges: the review's New York day holds it; 15:00 in New York is 20:00 UTC, so a range ending 19:59 UTC misses it.
    const feb = await call<Page<EventView>>(c(), 'list_calendar_events', {
      start_date: '2025-02-01',
      end_date: '2025-02-28',
    });
    expect(feb.items.map((e) => e.title)).toEqual(['Dîner with François 🍷']);
    const reviewDay = await call<Page<EventView>>(c(), 'list_calendar_events', {
      start_date: '2025-01-27',
      end_date: '2025-01-27',
    });
    expect(reviewDay.items.map((e) => e.id)).toEqual([fixture.events[0]?.id]);
    const beforeReview = await call<Page<EventView>>(c(), 'list_calendar_events', {
      start_date: '2025-01-27T00:00:00Z',
      end_date: '2025-01-27T19:59:00Z',
    });
    expect(beforeReview.items).toEqual([]);
  });

  it('documents: the uploaded file’s bytes, the missing one marked missing, the external one with its URL', async () => {
    const page = await call<Page<DocumentView>>(c(), 'list_documents', { limit: 100 });
    expect(page.items.map((d) => d.id).sort()).toEqual(fixture.documents.map((d) => d.id).sort());

    const uploaded = fixture.documents.find((d) => d.kind === 'uploaded');
    const missing = fixture.documents.find((d) => d.kind === 'missing');
    const external = fixture.documents.find((d) => d.kind === 'external');
    if (!uploaded?.bytes || !missing || !external) throw new Error('fixture lacks a document kind');

    const res = await c().callTool({
      name: 'get_document',
      arguments: { document_id: uploaded.id, include_content: true },
    });
    expect(res.isError).toBeFalsy();
    const got = res.structuredContent as { document: DocumentView; content_included: boolean };
    expect(got.content_included).toBe(true);
    expect(got.document.title).toBe(uploaded.title);
    expect(got.document.checksum).toBe(uploaded.checksum);
    expect(got.document.size_bytes).toBe(uploaded.bytes.length);
    expect(got.document.document_type).toBe('pdf');
    expect(got.document.mime_type).toBe('application/pdf');
    expect(['database', 'folder']).toContain(got.document.storage);
    const blocks = res.content as { type: string; resource?: { blob?: string; mimeType?: string } }[];
    const blob = blocks.find((b) => b.type === 'resource')?.resource?.blob;
    expect(blob).toBeDefined();
    const bytes = Buffer.from(blob ?? '', 'base64');
    expect(bytes.equals(uploaded.bytes)).toBe(true);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(uploaded.checksum);

    const gone = await call<{ document: DocumentView; content_included: boolean }>(c(), 'get_document', {
      document_id: missing.id,
      include_content: true,
    });
    expect(gone.document.storage).toBe('missing');
    expect(gone.document.title).toBe(missing.title);
    expect(gone.document.checksum).toBe(missing.checksum);
    expect(gone.content_included).toBe(false);

    const link = await call<{ document: DocumentView }>(c(), 'get_document', { document_id: external.id });
    expect(link.document.storage).toBe('external');
    expect(link.document.external_url).toBe(external.external_url);
  });

  it('keeps a field the original models never had under data.legacy', () => {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      const row = db
        .prepare('SELECT id, data FROM items WHERE client_ref = ?')
        .get(`legacy:${fixture.extraField.table}:${fixture.extraField.id}`) as
        { id: string; data: string } | undefined;
      expect(row?.id).toBe(fixture.extraField.id);
      const data = JSON.parse(row?.data ?? '{}') as { legacy?: Record<string, unknown> };
      expect(data.legacy?.[fixture.extraField.key]).toBe(fixture.extraField.value);
    } finally {
      db.close();
    }
  });

  it('made one owner-only timestamped backup beside the database holding the original rows byte-for-byte', () => {
    const backups = backupsIn(appDir);
    expect(backups).toHaveLength(1);
    const backup = path.join(appDir, backups[0] as string);
    expect(statSync(backup).mode & 0o777).toBe(0o600);
    expect(readLegacyTables(backup)).toEqual(fixture.rows);
    expect(legacySchemaSql(backup)).toEqual(originalSchema);
    // Taken before the migration: none of the new tables yet.
    expect(tableNames(backup)).not.toContain('items');
  });

  it('leaves the original tables in place, untouched', () => {
    expect(readLegacyTables(dbFile)).toEqual(fixture.rows);
    expect(legacySchemaSql(dbFile)).toEqual(originalSchema);
    expect(existsSync(fixture.documents.find((d) => d.kind === 'uploaded')?.file_path ?? '')).toBe(true);
  });

  it('a second start makes no backup and changes nothing', async () => {
    await c().close();
    client = undefined;
    const before = databaseChecksum(dbFile);
    const backupsBefore = backupsIn(appDir);

    const again = await connectCli(env);
    client = again.client;
    serverStderr = again.stderr;
    const projects = await call<Page<ProjectView>>(again.client, 'list_projects', { limit: 100 });
    expect(projects.items).toHaveLength(fixture.projects.length);
    const todos = await call<Page<TaskView>>(again.client, 'list_todos', { limit: 100 });
    expect(todos.items).toHaveLength(
      fixture.todos.length + fixture.projects.reduce((n, p) => n + p.tasks.length, 0),
    );
    const status = await call<StatusView>(again.client, 'get_status');
    expect(status.name).toBe(fixture.status.name);
    await again.client.close();
    client = undefined;

    expect(backupsIn(appDir)).toEqual(backupsBefore);
    expect(databaseChecksum(dbFile)).toBe(before);
    expect(readLegacyTables(dbFile)).toEqual(fixture.rows);
  });
});

describe('mcp-pa import FILE --db TARGET', () => {
  const home = tempDir('mcp-pa-legacy-import-');
  const legacyFile = path.join(home.dir, 'old', 'database.sqlite');
  const target = path.join(home.dir, 'new', 'pa.sqlite');
  const env = {
    HOME: home.dir,
    PATH: process.env['PATH'] ?? '',
    MCP_TIMEZONE: ZONE,
    MCP_LOG_LEVEL: 'warn',
  };
  let fixture: LegacyFixture;

  beforeAll(() => {
    fixture = buildLegacyDatabase(legacyFile);
  });
  afterAll(() => home.cleanup());

  const importOnce = async (): Promise<{ report: ImportReport; stderr: string }> => {
    // execFile rejects on a non-zero exit, failing the test with the command's output.
    const { stdout, stderr } = await run(process.execPath, [CLI, 'import', legacyFile, '--db', target], {
      env,
    });
    return { report: JSON.parse(stdout) as ImportReport, stderr };
  };

  it('imports every record, and a second run imports nothing new', async () => {
    const first = await importOnce();
    expect(first.report.counts).toEqual(expectedCounts(fixture, true));
    expect(first.report.warnings.some((w) => w.includes(fixture.documents[1]?.id ?? '?'))).toBe(true);

    const second = await importOnce();
    expect(second.report.counts).toEqual(expectedCounts(fixture, false));
    expect(second.stderr).toContain('backed up');

    // The source is read only: same rows, none of the new tables, no backup beside it.
    expect(readLegacyTables(legacyFile)).toEqual(fixture.rows);
    expect(tableNames(legacyFile)).not.toContain('items');
    expect(backupsIn(path.dirname(legacyFile))).toEqual([]);
  });

  it('the imported database serves the records', async () => {
    const { client } = await connectCli({ HOME: home.dir, MCP_TIMEZONE: ZONE, MCP_DATABASE_PATH: target });
    try {
      const projects = await call<Page<ProjectView>>(client, 'list_projects', { limit: 100 });
      expect(projects.items.map((p) => p.id).sort()).toEqual(fixture.projects.map((p) => p.id).sort());
      const events = await call<Page<EventView>>(client, 'list_calendar_events', {
        start_date: '2025-01-01',
        end_date: '2025-03-31',
      });
      expect(events.items.map((e) => e.start_time)).toEqual(
        fixture.events.map((e) => inNewYork(e.start_time)),
      );
      const doc = await call<{ document: DocumentView }>(client, 'get_document', {
        document_id: fixture.documents[0]?.id,
      });
      expect(doc.document.checksum).toBe(fixture.documents[0]?.checksum);
    } finally {
      await client.close();
    }
  });
});

describe('after the migration', () => {
  const home = tempDir('mcp-pa-legacy-after-');
  const appDir = path.join(home.dir, '.config', 'mcp-pa');
  const dbFile = path.join(appDir, 'database.sqlite');
  const env = { HOME: home.dir, MCP_TIMEZONE: ZONE };
  let fixture: LegacyFixture;

  beforeAll(() => {
    fixture = buildLegacyDatabase(dbFile);
  });
  afterAll(() => home.cleanup());

  it('a permanently deleted imported record stays deleted at the next start (no re-import, no backup)', async () => {
    const victim = fixture.todos[0]?.id as string;
    const first = await connectCli(env);
    const gone = await call<{ succeeded: number }>(first.client, 'delete_items', {
      ids: [victim],
      permanent: true,
    });
    expect(gone.succeeded).toBe(1);
    await first.client.close();
    const backups = backupsIn(appDir);
    expect(backups).toHaveLength(1);

    const second = await connectCli(env);
    try {
      const res = await second.client.callTool({ name: 'get_document', arguments: { document_id: victim } });
      expect(res.isError).toBe(true);
      const todos = await call<Page<TaskView>>(second.client, 'list_todos', { limit: 100 });
      expect(todos.items.map((t) => t.id)).not.toContain(victim);
    } finally {
      await second.client.close();
    }
    expect(backupsIn(appDir)).toEqual(backups);
  });

  it('`mcp-pa import` of the server’s own database makes one backup and reports what it finds', async () => {
    const before = backupsIn(appDir);
    const { stdout } = await run(process.execPath, [CLI, 'import', dbFile], {
      env: { ...env, PATH: process.env['PATH'] ?? '', MCP_LOG_LEVEL: 'warn' },
    });
    const report = JSON.parse(stdout) as ImportReport;
    // Everything was imported at the first start; the deleted todo is known as imported too.
    expect(report.counts).toEqual(expectedCounts(fixture, false));
    expect(backupsIn(appDir)).toHaveLength(before.length + 1);
  });
});
