import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCli, databaseChecksum, tempDir } from '../support/helpers.js';

// Bad input must come back as a tool error the model can act on (which field, why, what is
// allowed) and must leave the database exactly as it was.

const MAX_FILE_SIZE_MB = 0.01;
const LIMIT_BYTES = Math.floor(MAX_FILE_SIZE_MB * 1024 * 1024);

interface Seeded {
  projectId: string;
  taskId: string;
  todoId: string;
  eventId: string;
  noteId: string;
  documentId: string;
}

interface Outcome {
  isError: boolean;
  text: string;
  structured: Record<string, unknown> | undefined;
}

let home: { dir: string; cleanup: () => void };
let client: Client;
let closeTransport: () => Promise<void>;
let dbFile: string;
let seeded: Seeded;

async function call(name: string, args: Record<string, unknown>): Promise<Outcome> {
  const res = CallToolResultSchema.parse(await client.callTool({ name, arguments: args }));
  const text = res.content
    .map((c) => (c.type === 'text' ? c.text : ''))
    .filter(Boolean)
    .join('\n');
  return { isError: res.isError === true, text, structured: res.structuredContent };
}

/** Calls a tool that must succeed and returns the id found at `key`.id of its structured result. */
async function create(name: string, key: string, args: Record<string, unknown>): Promise<string> {
  const res = await call(name, args);
  expect(res.isError, res.text).toBe(false);
  const inner = res.structured?.[key] as { id?: unknown } | undefined;
  expect(typeof inner?.id).toBe('string');
  return inner?.id as string;
}

beforeAll(async () => {
  home = tempDir('mcp-pa-bad-input-');
  dbFile = path.join(home.dir, '.config/mcp-pa/database.sqlite');
  const conn = await connectCli({
    HOME: home.dir,
    MCP_TIMEZONE: 'UTC',
    MCP_MAX_FILE_SIZE_MB: String(MAX_FILE_SIZE_MB),
  });
  client = conn.client;
  closeTransport = () => conn.transport.close();

  const projectId = await create('create_project', 'project', {
    name: 'Website redesign',
    start_date: '2026-03-01',
    end_date: '2026-06-30',
  });
  const taskId = await create('add_project_task', 'task', {
    project_id: projectId,
    title: 'Draft wire frames',
    due_date: '2026-03-15',
  });
  const todoId = await create('create_todo', 'todo', { title: 'Buy printer paper', priority: 'low' });
  const eventId = await create('create_calendar_event', 'event', {
    title: 'Design review',
    start_time: '2026-03-20T14:00',
    end_time: '2026-03-20T15:00',
  });
  const noteId = await create('add_note', 'note', { text: 'Prefers morning meetings', kind: 'preference' });
  const documentId = await create('upload_document', 'document', {
    title: 'brief.txt',
    content_base64: Buffer.from('Project brief: a calmer home page.\n').toString('base64'),
  });
  seeded = { projectId, taskId, todoId, eventId, noteId, documentId };
});

afterAll(async () => {
  await client?.close();
  await closeTransport?.().catch(() => undefined);
  home?.cleanup();
});

interface BadCase {
  name: string;
  tool: string;
  args: (s: Seeded) => Record<string, unknown>;
  /** The offending field, as the error text must name it. */
  field: string;
  /** Why it was refused (and, where it helps, what is allowed). */
  why: RegExp[];
}

const PDF_BYTES = Buffer.from(
  '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n',
  'latin1',
);

const cases: BadCase[] = [
  // ------------------------------------------------------------ unknown time zones
  {
    name: 'create_todo with an unknown time zone',
    tool: 'create_todo',
    args: () => ({ title: 'Call the bank', due_date: '2026-12-01T10:00', timezone: 'Mars/Olympus' }),
    field: 'timezone',
    why: [/unknown time zone/, /Mars\/Olympus/, /IANA/],
  },
  {
    name: 'update_status with a misspelt time zone (and a valid name beside it)',
    tool: 'update_status',
    args: () => ({ name: 'Someone Else', timezone: 'Europe/Pariss' }),
    field: 'timezone',
    why: [/unknown time zone/, /Europe\/Pariss/, /IANA/],
  },
  {
    name: 'create_calendar_event with an unknown time zone',
    tool: 'create_calendar_event',
    args: () => ({ title: 'Lunch', start_time: '2026-12-01T12:00', timezone: 'Nowhere/Land' }),
    field: 'timezone',
    why: [/unknown time zone/, /Nowhere\/Land/, /IANA/],
  },
  // ------------------------------------------------------------ impossible dates
  {
    name: 'due_date 2026-02-30',
    tool: 'create_todo',
    args: () => ({ title: 'Pay rent', due_date: '2026-02-30' }),
    field: 'due_date',
    why: [/not a real date/, /February 2026 has 28 days/],
  },
  {
    name: 'due_date 2026-13-01',
    tool: 'create_todo',
    args: () => ({ title: 'Pay rent', due_date: '2026-13-01' }),
    field: 'due_date',
    why: [/not a real date/, /no month 13/],
  },
  {
    name: 'due_date 2026-04-31T10:00',
    tool: 'create_todo',
    args: () => ({ title: 'Pay rent', due_date: '2026-04-31T10:00' }),
    field: 'due_date',
    why: [/not a real date-time/, /April 2026 has 30 days/],
  },
  {
    name: 'due_date 2026-01-01T25:00',
    tool: 'create_todo',
    args: () => ({ title: 'Pay rent', due_date: '2026-01-01T25:00' }),
    field: 'due_date',
    why: [/not a real date-time/, /hour 25/, /00–23/],
  },
  {
    name: 'due_date tomorrow-ish',
    tool: 'create_todo',
    args: () => ({ title: 'Pay rent', due_date: 'tomorrow-ish' }),
    field: 'due_date',
    why: [/tomorrow-ish/, /not a date or date-time/, /YYYY-MM-DD/],
  },
  {
    name: 'event ending before it starts',
    tool: 'create_calendar_event',
    args: () => ({ title: 'Backwards', start_time: '2026-12-01T10:00', end_time: '2026-12-01T09:00' }),
    field: 'end_time',
    why: [/after start_time/],
  },
  {
    name: 'project ending before it starts',
    tool: 'create_project',
    args: () => ({ name: 'Backwards', start_date: '2026-12-01', end_date: '2026-11-01' }),
    field: 'end_date',
    why: [/before start_date/],
  },
  {
    name: 'update_project with an impossible end_date (and a valid name beside it)',
    tool: 'update_project',
    args: (s) => ({ project_id: s.projectId, name: 'Renamed', end_date: '2026-06-31' }),
    field: 'end_date',
    why: [/June 2026 has 30 days/],
  },
  // ------------------------------------------------------------ unknown ids
  {
    name: 'get_project with an unknown id',
    tool: 'get_project',
    args: () => ({ project_id: 'prj_doesnotexist' }),
    field: 'project_id',
    why: [/no project with id "prj_doesnotexist"/],
  },
  {
    name: 'update_project with an unknown id',
    tool: 'update_project',
    args: () => ({ project_id: 'prj_doesnotexist', name: 'Renamed' }),
    field: 'project_id',
    why: [/no project with id "prj_doesnotexist"/],
  },
  {
    name: 'update_project with the id of a task',
    tool: 'update_project',
    args: (s) => ({ project_id: s.todoId, name: 'Renamed' }),
    field: 'project_id',
    why: [/no project with id/],
  },
  {
    name: 'complete_todo with an unknown id',
    tool: 'complete_todo',
    args: () => ({ todo_id: 'tsk_doesnotexist' }),
    field: 'todo_id',
    why: [/no task with id "tsk_doesnotexist"/],
  },
  {
    name: 'get_document with an unknown id',
    tool: 'get_document',
    args: () => ({ document_id: 'doc_doesnotexist', include_content: true }),
    field: 'document_id',
    why: [/no document with id "doc_doesnotexist"/],
  },
  {
    name: 'add_project_task to an unknown project',
    tool: 'add_project_task',
    args: () => ({ project_id: 'prj_doesnotexist', title: 'Orphan task' }),
    field: 'project_id',
    why: [/no project with id "prj_doesnotexist"/],
  },
  {
    name: 'create_todo in an unknown project',
    tool: 'create_todo',
    args: () => ({ project_id: 'prj_doesnotexist', title: 'Orphan todo' }),
    field: 'project_id',
    why: [/no project with id "prj_doesnotexist"/],
  },
  // ------------------------------------------------------------ wrong types and ranges
  {
    name: 'create_todo with a numeric title',
    tool: 'create_todo',
    args: () => ({ title: 42 }),
    field: 'title',
    why: [/expected string/, /number/],
  },
  {
    name: 'create_todo with an unknown priority',
    tool: 'create_todo',
    args: () => ({ title: 'Something', priority: 'extreme' }),
    field: 'priority',
    why: [/low/, /medium/, /high/, /urgent/],
  },
  {
    name: 'create_todo with tags as a string',
    tool: 'create_todo',
    args: () => ({ title: 'Something', tags: 'not-an-array' }),
    field: 'tags',
    why: [/expected array/],
  },
  {
    name: 'list_todos with limit 1000',
    tool: 'list_todos',
    args: () => ({ limit: 1000 }),
    field: 'limit',
    why: [/<=\s*100/],
  },
  {
    name: 'list_todos with limit 0',
    tool: 'list_todos',
    args: () => ({ limit: 0 }),
    field: 'limit',
    why: [/>=\s*1/],
  },
  {
    name: 'update_project with progress 150',
    tool: 'update_project',
    args: (s) => ({ project_id: s.projectId, progress: 150 }),
    field: 'progress',
    why: [/<=\s*100/],
  },
  {
    name: 'create_todo with a misspelt argument name',
    tool: 'create_todo',
    args: () => ({ titel: 'Buy bread' }),
    field: 'titel',
    why: [/unknown argument "titel" — did you mean "title"\?/, /allowed: title, description/],
  },
  // ------------------------------------------------------------ bad recurrence
  {
    name: 'recurrence FREQ=SOMETIMES',
    tool: 'create_todo',
    args: () => ({ title: 'Water plants', due_date: '2026-12-01', recurrence: 'FREQ=SOMETIMES' }),
    field: 'recurrence',
    why: [/SOMETIMES/, /not a frequency/, /DAILY/, /WEEKLY/],
  },
  {
    name: 'recurrence with DTSTART and several lines',
    tool: 'create_todo',
    args: () => ({
      title: 'Water plants',
      due_date: '2026-12-01',
      recurrence: 'DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY',
    }),
    field: 'recurrence',
    why: [/DTSTART/],
  },
  {
    name: 'recurrence with a BYDAY that is not a weekday',
    tool: 'create_todo',
    args: () => ({ title: 'Water plants', due_date: '2026-12-01', recurrence: 'FREQ=DAILY;BYDAY=XX' }),
    field: 'recurrence',
    why: [/"XX"/, /not a weekday/, /MO/],
  },
  {
    // rrule would accept this and then loop forever expanding it, hanging every later listing.
    name: 'event recurrence with BYMONTHDAY=40',
    tool: 'create_calendar_event',
    args: () => ({
      title: 'Rent day',
      start_time: '2026-12-01T09:00',
      recurrence: 'FREQ=DAILY;BYMONTHDAY=40',
    }),
    field: 'recurrence',
    why: [/BYMONTHDAY=40/, /out of range/, /1 to 31/],
  },
  {
    name: 'recurrence with INTERVAL=0',
    tool: 'create_todo',
    args: () => ({ title: 'Water plants', due_date: '2026-12-01', recurrence: 'FREQ=DAILY;INTERVAL=0' }),
    field: 'recurrence',
    why: [/INTERVAL=0/, /at least 1/],
  },
  {
    name: 'recurrence with COUNT=abc',
    tool: 'create_todo',
    args: () => ({ title: 'Water plants', due_date: '2026-12-01', recurrence: 'FREQ=DAILY;COUNT=abc' }),
    field: 'recurrence',
    why: [/COUNT=abc/, /whole number/],
  },
  // ------------------------------------------------------------ uploads
  {
    name: 'upload over the size limit',
    tool: 'upload_document',
    args: () => ({
      title: 'big.bin',
      content_base64: Buffer.alloc(20 * 1024, 0x5a).toString('base64'),
    }),
    field: 'content_base64',
    why: [/limit/, new RegExp(`\\b${LIMIT_BYTES}\\b`), /too_large/],
  },
  {
    name: 'upload that is not base64',
    tool: 'upload_document',
    args: () => ({ title: 'bad.txt', content_base64: '%%%notbase64' }),
    field: 'content_base64',
    why: [/not valid base64/],
  },
  {
    name: 'upload declared image/png whose bytes are a PDF',
    tool: 'upload_document',
    args: () => ({ title: 'scan', mime_type: 'image/png', content_base64: PDF_BYTES.toString('base64') }),
    field: 'mime_type',
    why: [/image\/png/, /application\/pdf/],
  },
  // ------------------------------------------------------------ external documents
  {
    name: 'external document with a javascript: URL',
    tool: 'create_external_document',
    args: () => ({ title: 'Click me', external_url: 'javascript:alert(1)' }),
    field: 'external_url',
    why: [/javascript/, /not allowed/, /https/],
  },
  {
    name: 'external document with something that is not a URL',
    tool: 'create_external_document',
    args: () => ({ title: 'Somewhere', external_url: 'the shared drive, top folder' }),
    field: 'external_url',
    why: [/not an absolute URL/],
  },
];

describe('bad input over MCP', () => {
  it.each(cases)('$name → a tool error naming $field, nothing stored', async (c) => {
    const before = databaseChecksum(dbFile);
    const res = await call(c.tool, c.args(seeded));
    expect(res.isError, res.text).toBe(true);
    expect(res.text).not.toMatch(/Error \(internal\)/);
    expect(res.text).toMatch(new RegExp(`\\b${c.field}\\b`));
    for (const why of c.why) expect(res.text).toMatch(why);
    expect(databaseChecksum(dbFile)).toBe(before);
  });

  it('update_items with a field the kind does not have fails that item only, naming the field', async () => {
    const before = databaseChecksum(dbFile);
    const res = await call('update_items', {
      items: [{ id: seeded.noteId, changes: { due_date: '2026-01-01' } }],
    });
    expect(res.isError, res.text).toBe(false);
    const batch = res.structured as {
      results: { id: string; ok: boolean; error: string | null; item: unknown }[];
      succeeded: number;
      failed: number;
    };
    expect(batch.succeeded).toBe(0);
    expect(batch.failed).toBe(1);
    expect(batch.results).toHaveLength(1);
    const [first] = batch.results;
    expect(first?.id).toBe(seeded.noteId);
    expect(first?.ok).toBe(false);
    expect(first?.item).toBeNull();
    expect(first?.error).toMatch(/\bdue_date\b/);
    expect(first?.error).toMatch(/not a field of a note/);
    expect(first?.error).toMatch(/allowed: .*\btext\b/);
    expect(databaseChecksum(dbFile)).toBe(before);
  });

  it.each(['foo-bar', 'a:b', 'what?', '"unbalanced', 'NEAR(x y)', '*', 'AND OR NOT', '(', 'col:value^2'])(
    'search %j is an ordinary query, not an error',
    async (query) => {
      const before = databaseChecksum(dbFile);
      const res = await call('search', { query });
      expect(res.isError, res.text).toBe(false);
      const out = res.structured as { query: string; results: unknown[] };
      expect(out.query).toBe(query);
      expect(Array.isArray(out.results)).toBe(true);
      expect(databaseChecksum(dbFile)).toBe(before);
    },
  );

  it.each(['wire-frames: ?', '"draft', 'NEAR(wire frames)', 'draft*', '(WIRE) AND frames^2'])(
    'search %j still finds the task "Draft wire frames"',
    async (query) => {
      const before = databaseChecksum(dbFile);
      const res = await call('search', { query });
      expect(res.isError, res.text).toBe(false);
      const out = res.structured as { results: { id: string; title: string }[] };
      expect(out.results.map((r) => r.id)).toContain(seeded.taskId);
      expect(databaseChecksum(dbFile)).toBe(before);
    },
  );

  it('after all that, the seeded data is intact and a valid write does change the checksum', async () => {
    const project = await call('get_project', { project_id: seeded.projectId });
    expect(project.isError, project.text).toBe(false);
    const detail = project.structured as {
      project: { name: string; end_date: string | null; progress: number };
      tasks: { id: string }[];
    };
    expect(detail.project.name).toBe('Website redesign');
    expect(detail.project.end_date).toBe('2026-06-30');
    expect(detail.tasks.map((t) => t.id)).toEqual([seeded.taskId]);

    const status = await call('get_status', {});
    expect(status.isError, status.text).toBe(false);
    expect((status.structured as { timezone: string }).timezone).toBe('UTC');
    expect((status.structured as { name: string }).name).not.toBe('Someone Else');

    const todos = await call('list_todos', { limit: 100 });
    expect((todos.structured as { items: { id: string }[] }).items.map((t) => t.id).sort()).toEqual(
      [seeded.taskId, seeded.todoId].sort(),
    );
    const events = await call('list_calendar_events', { start_date: '2026-03-01', end_date: '2026-03-31' });
    expect(events.isError, events.text).toBe(false);
    expect((events.structured as { items: { id: string }[] }).items.map((e) => e.id)).toEqual([
      seeded.eventId,
    ]);
    const docs = await call('list_documents', {});
    expect((docs.structured as { items: { id: string }[] }).items.map((d) => d.id)).toEqual([
      seeded.documentId,
    ]);

    // The checksum is not blind: a real change shows up in it.
    const before = databaseChecksum(dbFile);
    const ok = await call('update_project', { project_id: seeded.projectId, progress: 40 });
    expect(ok.isError, ok.text).toBe(false);
    const pinned = await call('update_items', {
      items: [{ id: seeded.noteId, changes: { pinned: true } }],
    });
    expect((pinned.structured as { succeeded: number }).succeeded).toBe(1);
    expect(databaseChecksum(dbFile)).not.toBe(before);
  });
});
