import { createHash } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CallToolResultSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { beforeAll, expect, it } from 'vitest';

// The every-tool end-to-end scenario, shared by every transport and store: the MCP SDK's real client drives a
// server through every tool, resource, completion and prompt. The `it` blocks run in order and build on each other's
// world, so call everyToolScenario inside a describe whose beforeAll connects the client first.

/** The user's time zone the scenario expects: start the server with it as the default zone. */
export const ZONE = 'Europe/Paris';

const COMPATIBLE_TOOLS = [
  'get_status',
  'update_status',
  'create_project',
  'list_projects',
  'get_project',
  'update_project',
  'add_project_task',
  'create_todo',
  'list_todos',
  'complete_todo',
  'create_calendar_event',
  'list_calendar_events',
  'upload_document',
  'create_external_document',
  'list_documents',
  'get_document',
  'get_dashboard',
];
const ADDED_TOOLS = ['search', 'add_note', 'update_items', 'delete_items', 'restore_items', 'export'];
const ALL_TOOLS = [...COMPATIBLE_TOOLS, ...ADDED_TOOLS];

type Json = Record<string, unknown>;

/** Today's date in a zone, computed independently of the server (en-CA formats as YYYY-MM-DD). */
export function todayInZone(zone: string): string {
  return new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(new Date());
}

function obj(v: unknown): Json {
  expect(v).toBeTypeOf('object');
  expect(v).not.toBeNull();
  return v as Json;
}

function arr(v: unknown): Json[] {
  expect(Array.isArray(v)).toBe(true);
  return v as Json[];
}

function str(v: unknown): string {
  expect(v).toBeTypeOf('string');
  return v as string;
}

function textOf(result: CallToolResult, index = 0): string {
  const block = result.content[index];
  expect(block?.type).toBe('text');
  return block?.type === 'text' ? block.text : '';
}

export interface ScenarioOptions {
  /**
   * Whether resources/updated notifications reach the client: over stdio and in stateful HTTP sessions they do (on
   * the session's stream); a stateless HTTP server has no stream to send them on.
   */
  readonly notifications: boolean;
}

/** Registers the scenario's `it` blocks in the current describe; `target` gives the connected client. */
export function everyToolScenario(target: () => Client, options: ScenarioOptions): void {
  let client: Client;

  const tools = new Map<string, Tool>();
  const validators = new Map<string, ValidateFunction>();
  const called = new Set<string>();
  const ajv07 = new Ajv({ strict: false, allErrors: true });
  const ajv2020 = new Ajv2020({ strict: false, allErrors: true });

  const updated: string[] = [];
  const waiters: { uri: string; resolve: () => void }[] = [];

  // The world the blocks build together.
  const w = {
    projectId: '',
    taskIds: [] as string[],
    recurringTodoId: '',
    nextTodoId: '',
    eventId: '',
    recurringEventId: '',
    documentId: '',
    externalDocumentId: '',
    noteId: '',
  };

  function validatorFor(name: string): ValidateFunction {
    const cached = validators.get(name);
    if (cached) return cached;
    const tool = tools.get(name);
    if (!tool?.outputSchema) throw new Error(`tool ${name} has no outputSchema (was listTools run?)`);
    const schema = tool.outputSchema as Json;
    const is2020 = typeof schema['$schema'] === 'string' && schema['$schema'].includes('2020-12');
    const v = (is2020 ? ajv2020 : ajv07).compile(schema);
    validators.set(name, v);
    return v;
  }

  /** Calls a tool that must succeed; checks its structured content against its declared output schema. */
  async function call(name: string, args: Json = {}): Promise<{ data: Json; result: CallToolResult }> {
    const result = CallToolResultSchema.parse(await client.callTool({ name, arguments: args }));
    if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`);
    called.add(name);
    const data = obj(result.structuredContent);
    const validate = validatorFor(name);
    const valid = validate(data);
    expect(valid ? [] : (validate.errors ?? []), `${name} output vs outputSchema`).toEqual([]);
    expect(JSON.parse(textOf(result))).toEqual(data);
    return { data, result };
  }

  /** Calls a tool that must fail as a tool error (not a protocol error); returns the error text. */
  async function callError(name: string, args: Json): Promise<string> {
    const result = CallToolResultSchema.parse(await client.callTool({ name, arguments: args }));
    expect(result.isError, `${name} should fail`).toBe(true);
    return textOf(result);
  }

  async function readJson(uri: string): Promise<unknown> {
    const res = await client.readResource({ uri });
    expect(res.contents.length).toBeGreaterThan(0);
    const first = res.contents[0];
    expect(first?.uri).toBe(uri);
    expect(first?.mimeType).toBe('application/json');
    const text = first && 'text' in first ? first.text : undefined;
    return JSON.parse(str(text)) as unknown;
  }

  beforeAll(() => {
    client = target();
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updated.push(n.params.uri);
      for (const waiter of waiters.filter((x) => x.uri === n.params.uri)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    });
  });

  it('lists exactly the 23 tools, each with an output schema and annotations', async () => {
    const listed = (await client.listTools()).tools;
    for (const t of listed) tools.set(t.name, t);
    expect(listed.map((t) => t.name).sort()).toEqual([...ALL_TOOLS].sort());
    expect(listed).toHaveLength(23);
    for (const t of listed) {
      expect(t.outputSchema, t.name).toBeDefined();
      expect(t.outputSchema?.type, t.name).toBe('object');
      expect(t.inputSchema.type, t.name).toBe('object');
      expect(t.annotations, t.name).toBeDefined();
      expect(typeof t.annotations?.readOnlyHint, t.name).toBe('boolean');
      expect(t.annotations?.destructiveHint === true, t.name).toBe(t.name === 'delete_items');
      // Every schema compiles in an independent validator.
      expect(() => validatorFor(t.name), t.name).not.toThrow();
    }
    // The validator is not vacuous: a result missing its required parts is rejected.
    expect(validatorFor('create_todo')({ created: true })).toBe(false);
    expect(validatorFor('get_project')({ project: {}, tasks: [], tasks_truncated: false })).toBe(false);
    const readOnly = listed.filter((t) => t.annotations?.readOnlyHint).map((t) => t.name);
    expect(readOnly.sort()).toEqual(
      [
        'get_status',
        'list_projects',
        'get_project',
        'list_todos',
        'list_calendar_events',
        'list_documents',
        'get_document',
        'get_dashboard',
        'search',
        'export',
      ].sort(),
    );
  });

  it('gives instructions that start from get_dashboard and name the time zone', () => {
    const instructions = client.getInstructions() ?? '';
    expect(instructions).toContain('get_dashboard');
    expect(instructions).toContain(ZONE);
  });

  it('keeps and reports the profile', async () => {
    const before = (await call('get_status')).data;
    expect(before['timezone']).toBe(ZONE);

    const updatedStatus = (
      await call('update_status', {
        name: 'Camille Martin',
        city: 'Lyon',
        country: 'France',
        laptop_os: 'macOS 15',
        laptop_model: 'MacBook Air M3',
        permissions: { file_system: true, browser: true, available_to_setup: ['calendar'] },
        working_hours: { start: '09:00', end: '17:30', days: [1, 2, 3, 4, 5] },
        notes: 'Prefers mornings for deep work',
      })
    ).data;
    expect(updatedStatus['name']).toBe('Camille Martin');
    expect(obj(updatedStatus['current_location'])['city']).toBe('Lyon');

    const after = (await call('get_status')).data;
    expect(after['name']).toBe('Camille Martin');
    expect(obj(after['current_location'])['country']).toBe('France');
    expect(obj(after['laptop_details'])['model']).toBe('MacBook Air M3');
    expect(obj(after['permissions'])['browser']).toBe(true);
    expect(obj(after['permissions'])['available_to_setup']).toEqual(['calendar']);
    expect(obj(after['working_hours'])['end']).toBe('17:30');
    expect(after['timezone']).toBe(ZONE);
  });

  it('derives project progress from its tasks', async () => {
    const created = (
      await call('create_project', {
        name: 'Kitchen renovation',
        description: 'New worktop and cabinets',
        priority: 'high',
        start_date: '2030-01-02',
        tags: ['home'],
      })
    ).data;
    expect(created['created']).toBe(true);
    const project = obj(created['project']);
    w.projectId = str(project['id']);
    expect(project['progress_source']).toBe('manual');

    const moved = (await call('update_project', { project_id: w.projectId, status: 'in_progress' })).data;
    expect(obj(moved['project'])['status']).toBe('in_progress');

    for (const title of ['Choose worktop', 'Book the plumber']) {
      const added = (
        await call('add_project_task', { project_id: w.projectId, title, due_date: '2030-02-01' })
      ).data;
      expect(obj(added['task'])['project_id']).toBe(w.projectId);
      w.taskIds.push(str(obj(added['task'])['id']));
    }
    const done = (await call('complete_todo', { todo_id: w.taskIds[0] })).data;
    expect(obj(done['todo'])['completed']).toBe(true);
    expect(done['next']).toBeNull();

    const detail = (await call('get_project', { project_id: w.projectId })).data;
    const p = obj(detail['project']);
    expect(p['progress']).toBe(50);
    expect(p['progress_source']).toBe('tasks');
    expect(p['task_counts']).toEqual({ total: 2, done: 1 });
    expect(
      arr(detail['tasks'])
        .map((t) => t['id'])
        .sort(),
    ).toEqual([...w.taskIds].sort());

    const listed = (await call('list_projects', { status: 'in_progress' })).data;
    const summary = arr(listed['items']).find((x) => x['id'] === w.projectId);
    expect(summary?.['progress']).toBe(50);
  });

  it('creates the next occurrence when a recurring todo is completed', async () => {
    const created = (
      await call('create_todo', {
        title: 'Water the plants',
        due_date: '2030-01-07',
        recurrence: 'FREQ=WEEKLY',
        priority: 'low',
        tags: ['chores'],
      })
    ).data;
    const todo = obj(created['todo']);
    w.recurringTodoId = str(todo['id']);
    expect(todo['due_date']).toBe('2030-01-07');

    const done = (await call('complete_todo', { todo_id: w.recurringTodoId })).data;
    expect(done['already_completed']).toBe(false);
    expect(obj(done['todo'])['completed']).toBe(true);
    const next = obj(done['next']);
    w.nextTodoId = str(next['id']);
    expect(w.nextTodoId).not.toBe(w.recurringTodoId);
    expect(next['due_date']).toBe('2030-01-14');
    expect(next['completed']).toBe(false);
    expect(next['title']).toBe('Water the plants');

    const open = (await call('list_todos', { tags: ['chores'], completed: false })).data;
    const items = arr(open['items']);
    expect(items.map((t) => t['id'])).toEqual([w.nextTodoId]);
    expect(items[0]?.['due_date']).toBe('2030-01-14');

    const again = (await call('complete_todo', { todo_id: w.recurringTodoId })).data;
    expect(again['already_completed']).toBe(true);
  });

  it('expands a recurring event in its own zone across the DST change', async () => {
    const single = (
      await call('create_calendar_event', {
        title: 'Dentist appointment',
        start_time: '2030-03-05T14:00',
        end_time: '2030-03-05T14:45',
        location: 'Rue de la République, Lyon',
        reminder_minutes: 30,
      })
    ).data;
    w.eventId = str(obj(single['event'])['id']);
    expect(Date.parse(str(obj(single['event'])['start_time']))).toBe(Date.parse('2030-03-05T14:00:00+01:00'));

    const weekly = (
      await call('create_calendar_event', {
        title: 'Team sync',
        start_time: '2030-03-18T09:00',
        end_time: '2030-03-18T09:30',
        recurrence: 'FREQ=WEEKLY;COUNT=4',
        attendees: ['alex@example.com', 'Sam'],
        tags: ['work'],
      })
    ).data;
    w.recurringEventId = str(obj(weekly['event'])['id']);

    const listed = (
      await call('list_calendar_events', { start_date: '2030-03-01', end_date: '2030-04-30', limit: 50 })
    ).data;
    const items = arr(listed['items']);
    expect(items.filter((e) => e['id'] === w.eventId)).toHaveLength(1);
    const occurrences = items.filter((e) => e['id'] === w.recurringEventId);
    // Paris moves to summer time on 2030-03-31: 09:00 local stays 09:00 local.
    // Output carries the user's offset (ISO 8601), not UTC.
    expect(occurrences.map((e) => e['occurrence_start'])).toEqual([
      '2030-03-18T09:00:00+01:00',
      '2030-03-25T09:00:00+01:00',
      '2030-04-01T09:00:00+02:00',
      '2030-04-08T09:00:00+02:00',
    ]);
  });

  it('stores an uploaded text file and gives the same text back, and links an external document', async () => {
    const text = 'Quote from the carpenter\nOak worktop: 1 240 €, delivery in three weeks.\n';
    const bytes = Buffer.from(text, 'utf8');
    const uploaded = (
      await call('upload_document', {
        title: 'carpenter-quote.txt',
        content_base64: bytes.toString('base64'),
        description: 'Quote for the kitchen',
        tags: ['home'],
      })
    ).data;
    const doc = obj(uploaded['document']);
    w.documentId = str(doc['id']);
    expect(doc['document_type']).toBe('text');
    expect(doc['size_bytes']).toBe(bytes.length);
    expect(doc['checksum']).toBe(createHash('sha256').update(bytes).digest('hex'));

    const { data, result } = await call('get_document', { document_id: w.documentId, include_content: true });
    expect(data['content_included']).toBe(true);
    expect(textOf(result, 1)).toBe(text);

    const metaOnly = await call('get_document', { document_id: w.documentId });
    expect(metaOnly.data['content_included']).toBe(false);
    expect(metaOnly.result.content).toHaveLength(1);

    const external = (
      await call('create_external_document', {
        title: 'Cabinet catalogue',
        external_url: 'https://example.com/catalogue.pdf',
        tags: ['home'],
      })
    ).data;
    const ext = obj(external['document']);
    w.externalDocumentId = str(ext['id']);
    expect(ext['storage']).toBe('external');
    expect(ext['external_url']).toBe('https://example.com/catalogue.pdf');
    expect(ext['document_type']).toBe('pdf');

    const docs = (await call('list_documents', { tags: ['home'] })).data;
    expect(
      arr(docs['items'])
        .map((d) => d['id'])
        .sort(),
    ).toEqual([w.documentId, w.externalDocumentId].sort());
  });

  it('remembers notes and finds items by search', async () => {
    const note = (
      await call('add_note', {
        text: 'Camille is allergic to kumquats; never order them.',
        kind: 'fact',
        pinned: true,
      })
    ).data;
    w.noteId = str(obj(note['note'])['id']);
    expect(obj(note['note'])['pinned']).toBe(true);

    const found = (await call('search', { query: 'kumquats' })).data;
    expect(arr(found['results']).map((r) => r['id'])).toContain(w.noteId);

    // FTS syntax characters in user text must not break search.
    const task = (await call('search', { query: 'plumber: book-it?', kinds: ['task'] })).data;
    const hit = arr(task['results']).find((r) => r['id'] === w.taskIds[1]);
    expect(hit?.['uri']).toBe(`pa://task/${w.taskIds[1]}`);

    const dash = (await call('get_dashboard')).data;
    expect(dash['user_name']).toBe('Camille Martin');
    expect(dash['timezone']).toBe(ZONE);
    expect(arr(dash['pinned_notes']).map((n) => n['id'])).toContain(w.noteId);
    expect(arr(dash['active_projects']).map((p) => p['id'])).toContain(w.projectId);
    const stats = obj(dash['statistics']);
    expect(stats['total_projects']).toBe(1);
    expect(stats['total_documents']).toBe(2);
    expect(stats['notes']).toBe(1);
  });

  it('updates, trashes and restores in batches with per-item failures', async () => {
    const upd = (
      await call('update_items', {
        items: [
          { id: w.taskIds[1], changes: { priority: 'urgent', title: 'Book the plumber (urgent)' } },
          { id: 'tsk_does_not_exist', changes: { title: 'nothing' } },
        ],
      })
    ).data;
    expect(upd['succeeded']).toBe(1);
    expect(upd['failed']).toBe(1);
    const [ok, bad] = arr(upd['results']);
    expect(ok?.['ok']).toBe(true);
    expect(obj(ok?.['item'])['priority']).toBe('urgent');
    expect(bad?.['ok']).toBe(false);
    expect(str(bad?.['error'])).toContain('tsk_does_not_exist');

    const del = (await call('delete_items', { ids: [w.noteId, 'not_missing'] })).data;
    expect([del['succeeded'], del['failed']]).toEqual([1, 1]);
    expect(obj(arr(del['results'])[0]?.['item'])['deleted_at']).not.toBeNull();
    expect(arr(del['results'])[1]?.['ok']).toBe(false);
    const afterDelete = (await call('search', { query: 'kumquats' })).data;
    expect(arr(afterDelete['results']).map((r) => r['id'])).not.toContain(w.noteId);

    const res = (await call('restore_items', { ids: [w.noteId, w.projectId] })).data;
    expect([res['succeeded'], res['failed']]).toEqual([1, 1]);
    expect(arr(res['results'])[0]?.['ok']).toBe(true);
    expect(str(arr(res['results'])[1]?.['error'])).toMatch(/not in the trash/);
    const afterRestore = (await call('search', { query: 'kumquats' })).data;
    expect(arr(afterRestore['results']).map((r) => r['id'])).toContain(w.noteId);
  });

  it('exports as JSON, Markdown and iCalendar', async () => {
    const json = (await call('export', { format: 'json' })).data;
    expect(json['mime_type']).toBe('application/json');
    const body = obj(JSON.parse(str(json['content'])));
    expect(arr(body['projects']).map((p) => p['id'])).toContain(w.projectId);
    expect(arr(body['notes']).map((n) => n['id'])).toContain(w.noteId);
    expect(obj(json['counts'])['project']).toBe(1);

    const md = (await call('export', { format: 'markdown' })).data;
    expect(md['mime_type']).toBe('text/markdown');
    expect(str(md['content'])).toContain('Kitchen renovation');
    expect(str(md['content'])).toContain('Water the plants');

    const ics = (await call('export', { format: 'icalendar' })).data;
    expect(ics['mime_type']).toBe('text/calendar');
    const cal = str(ics['content']);
    expect(cal.startsWith('BEGIN:VCALENDAR')).toBe(true);
    expect(cal).toContain('BEGIN:VEVENT');
    expect(cal).toContain('BEGIN:VTODO');
    expect(cal).toContain(`UID:${w.recurringEventId}@mcp-pa`);
    expect(cal).toContain('RRULE:FREQ=WEEKLY;COUNT=4');
    expect(cal.trimEnd().endsWith('END:VCALENDAR')).toBe(true);
  });

  it('pages todos with opaque cursors, each item exactly once', async () => {
    const created: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const r = (await call('create_todo', { title: `Paging item ${i}`, tags: ['paging'] })).data;
      created.push(str(obj(r['todo'])['id']));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const args: Json = { tags: ['paging'], limit: 2 };
      if (cursor !== null) args['cursor'] = cursor;
      const page = (await call('list_todos', args)).data;
      const items = arr(page['items']);
      expect(items.length).toBeLessThanOrEqual(2);
      seen.push(...items.map((t) => str(t['id'])));
      cursor = page['next_cursor'] === null ? null : str(page['next_cursor']);
      pages++;
      expect(pages).toBeLessThanOrEqual(10);
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(created.length);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...created].sort());

    const error = await callError('list_todos', { cursor: 'not-a-real-cursor!!' });
    expect(error).toMatch(/cursor/i);
  });

  it('makes creates idempotent with client_ref', async () => {
    const args = {
      title: 'Renew passport',
      due_date: '2030-06-01',
      client_ref: 'e2e-passport-1',
      tags: ['idem'],
    };
    const first = (await call('create_todo', args)).data;
    const second = (await call('create_todo', args)).data;
    expect(first['created']).toBe(true);
    expect(second['created']).toBe(false);
    expect(obj(second['todo'])['id']).toBe(obj(first['todo'])['id']);
    const listed = (await call('list_todos', { tags: ['idem'] })).data;
    expect(arr(listed['items']).map((t) => t['id'])).toEqual([obj(first['todo'])['id']]);
  });

  it('has called every tool', () => {
    expect([...called].sort()).toEqual([...ALL_TOOLS].sort());
  });

  it('offers the collections and item templates as resources', async () => {
    const listed = (await client.listResources()).resources.map((r) => r.uri);
    for (const uri of [
      'pa://status',
      'pa://projects',
      'pa://todos',
      'pa://calendar',
      'pa://documents',
      'pa://notes',
    ]) {
      expect(listed).toContain(uri);
      await readJson(uri);
    }
    const status = obj(await readJson('pa://status'));
    expect(status['name']).toBe('Camille Martin');
    const projects = obj(await readJson('pa://projects'));
    expect(arr(projects['items']).map((p) => p['id'])).toContain(w.projectId);
    const todos = obj(await readJson('pa://todos'));
    const openIds = arr(todos['items']).map((t) => t['id']);
    expect(openIds).toContain(w.nextTodoId);
    expect(openIds).not.toContain(w.recurringTodoId);
    const notes = obj(await readJson('pa://notes'));
    expect(arr(notes['items']).map((n) => n['id'])).toContain(w.noteId);

    const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
    expect(templates).toContain('pa://{kind}/{id}');
    expect(templates).toContain('pa://agenda/{date}');

    const project = obj(await readJson(`pa://project/${w.projectId}`));
    expect(obj(project['project'])['id']).toBe(w.projectId);
    expect(arr(project['tasks'])).toHaveLength(2);
    const task = obj(await readJson(`pa://task/${w.taskIds[1]}`));
    expect(task['id']).toBe(w.taskIds[1]);
    expect(task['title']).toBe('Book the plumber (urgent)');

    const today = obj(await readJson('pa://agenda/today'));
    expect(today['date']).toBe(todayInZone(ZONE));
    expect(today['timezone']).toBe(ZONE);
    const dentistDay = obj(await readJson('pa://agenda/2030-03-05'));
    expect(arr(dentistDay['events']).map((e) => e['id'])).toEqual([w.eventId]);
    const syncDay = obj(await readJson('pa://agenda/2030-04-01'));
    expect(arr(syncDay['events']).map((e) => e['id'])).toEqual([w.recurringEventId]);

    await expect(client.readResource({ uri: 'pa://task/tsk_unknown_item' })).rejects.toThrow(
      /tsk_unknown_item/,
    );
  });

  it('completes resource template arguments and prompt arguments', async () => {
    const kinds = await client.complete({
      ref: { type: 'ref/resource', uri: 'pa://{kind}/{id}' },
      argument: { name: 'kind', value: 'ta' },
    });
    expect(kinds.completion.values).toContain('task');
    expect(kinds.completion.values).not.toContain('project');

    const ids = await client.complete({
      ref: { type: 'ref/resource', uri: 'pa://{kind}/{id}' },
      argument: { name: 'id', value: w.projectId.slice(0, 6) },
      context: { arguments: { kind: 'project' } },
    });
    expect(ids.completion.values).toContain(w.projectId);

    const events = await client.complete({
      ref: { type: 'ref/prompt', name: 'meeting_prep' },
      argument: { name: 'event_id', value: 'evt' },
    });
    expect(events.completion.values).toContain(w.recurringEventId);
    expect(events.completion.values).toContain(w.eventId);
  });

  it('offers the four prompts, each giving a user message', async () => {
    const names = (await client.listPrompts()).prompts.map((p) => p.name);
    expect([...names].sort()).toEqual(['capture', 'daily_briefing', 'meeting_prep', 'weekly_review']);

    const cases: { name: string; args?: Record<string, string>; expect: string }[] = [
      { name: 'daily_briefing', expect: todayInZone(ZONE) },
      { name: 'weekly_review', expect: 'Kitchen renovation' },
      { name: 'capture', args: { text: 'Call the bank on Friday about the mortgage' }, expect: 'mortgage' },
      { name: 'meeting_prep', args: { event_id: w.recurringEventId }, expect: 'Team sync' },
    ];
    for (const c of cases) {
      const prompt = await client.getPrompt({ name: c.name, ...(c.args ? { arguments: c.args } : {}) });
      const userMessages = prompt.messages.filter((m) => m.role === 'user');
      expect(userMessages.length, c.name).toBeGreaterThan(0);
      const first = userMessages[0]?.content;
      expect(first?.type, c.name).toBe('text');
      const text = first?.type === 'text' ? first.text : '';
      expect(text.length, c.name).toBeGreaterThan(0);
      expect(text, c.name).toContain(c.expect);
    }
  });

  if (options.notifications) {
    it('tells subscribers when a subscribed resource changes', async () => {
      await client.subscribeResource({ uri: 'pa://todos' });
      const arrived = new Promise<void>((resolve) => waiters.push({ uri: 'pa://todos', resolve }));
      await call('create_todo', { title: 'Buy light bulbs' });
      await arrived;
      expect(updated).toContain('pa://todos');
    });
  } else {
    it('offers no subscriptions when it has no stream to notify on, and refuses one', async () => {
      expect(client.getServerCapabilities()?.resources?.subscribe).toBe(false);
      await expect(client.subscribeResource({ uri: 'pa://todos' })).rejects.toThrow(/method not found/i);
      await call('create_todo', { title: 'Buy light bulbs' });
    });
  }
}
