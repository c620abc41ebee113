import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Assistant } from '../../src/assistant/assistant.js';
import { exportData } from '../../src/assistant/export.js';
import { dashboard } from '../../src/assistant/overview.js';
import type { EventView, ItemView, NoteView, TaskView } from '../../src/assistant/views.js';
import { StoreConflictError, type WriteOp, type WriteResult } from '../../src/storage/model.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';
import { rejection } from '../support/errors.js';

const T = 'local';
const ZONE = 'Europe/Paris';
/** Thursday 5 March 2026, 11:00 in Paris (UTC+1). */
const NOW = '2026-03-05T10:00:00.000Z';

/** A real store that also counts the optimistic-concurrency conflicts it reported. */
class CountingStore extends SqliteStore {
  conflicts = 0;
  override async write(tenant: string, ops: readonly WriteOp[], now: string): Promise<WriteResult> {
    try {
      return await super.write(tenant, ops, now);
    } catch (err) {
      if (err instanceof StoreConflictError) this.conflicts++;
      throw err;
    }
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

interface Setup {
  a: Assistant;
  store: CountingStore;
  clock: { now: string };
  tick: () => () => Date;
}

function setup(options: { documentsDir?: boolean } = {}): Setup {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const documentsDir = options.documentsDir ? path.join(t.dir, 'documents') : undefined;
  const store = new CountingStore({ path: path.join(t.dir, 'pa.sqlite'), documentsDir });
  cleanups.push(() => store.close());
  const clock = { now: NOW };
  const a = new Assistant({
    store,
    clock: () => new Date(clock.now),
    defaultTimeZone: ZONE,
    maxUploadBytes: 1024 * 1024,
    storageInfo: {
      database: 'sqlite:test',
      documents: documentsDir ? `folder:${documentsDir}` : 'database',
    },
  });
  return { a, store, clock, tick: () => () => new Date(clock.now) };
}

async function view(a: Assistant, id: string): Promise<ItemView> {
  return a.viewOf(T, await a.getRecord(T, id));
}

async function taskView(a: Assistant, id: string): Promise<TaskView> {
  const v = await view(a, id);
  if (v.kind !== 'task') throw new Error(`${id} is a ${v.kind}`);
  return v;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

describe('projects', () => {
  it('are created, listed, read and updated', async () => {
    const { a } = setup();
    const { project, created } = await a.createProject(T, {
      name: '  Kitchen renovation ',
      description: 'New cabinets and tiles',
      status: 'in_progress',
      priority: 'high',
      start_date: '2026-03-01',
      end_date: '2026-06-30T18:00',
      tags: ['home', 'home', 'diy'],
    });
    expect(created).toBe(true);
    expect(project).toMatchObject({
      kind: 'project',
      name: 'Kitchen renovation',
      description: 'New cabinets and tiles',
      status: 'in_progress',
      priority: 'high',
      start_date: '2026-03-01',
      end_date: '2026-06-30T18:00:00+02:00',
      tags: ['home', 'diy'],
      progress: 0,
      progress_source: 'manual',
      task_counts: { total: 0, done: 0 },
      uri: `pa://project/${project.id}`,
      created_at: '2026-03-05T11:00:00+01:00',
      deleted_at: null,
    });
    expect(project.id).toMatch(/^prj_/);

    const listed = await a.listProjects(T, {});
    expect(listed.items.map((p) => p.id)).toEqual([project.id]);
    expect((await a.listProjects(T, { status: 'completed' })).items).toEqual([]);
    expect((await a.listProjects(T, { tags: ['diy'] })).items.map((p) => p.id)).toEqual([project.id]);

    const got = await a.getProject(T, project.id);
    expect(got.project).toEqual(project);
    expect(got.tasks).toEqual([]);
    expect(got.tasks_truncated).toBe(false);

    const updated = await a.updateProject(T, project.id, { name: 'Kitchen', progress: 40, end_date: null });
    expect(updated).toMatchObject({
      name: 'Kitchen',
      progress: 40,
      progress_source: 'manual',
      end_date: null,
    });
    expect((await a.getRecord(T, project.id)).version).toBe(2);

    expect((await rejection(a.updateProject(T, project.id, { progress: 140 }))).field).toBe('progress');
    expect(
      (
        await rejection(
          a.createProject(T, { name: 'Backwards', start_date: '2026-05-01', end_date: '2026-04-01' }),
        )
      ).field,
    ).toBe('end_date');
    expect((await rejection(a.createProject(T, { name: 'x', status: 'finished' }))).message).toMatch(
      /"finished" is not one of not_started, in_progress/,
    );
    expect((await rejection(a.getProject(T, 'prj_missing'))).code).toBe('not_found');
  });

  it('derive progress from their tasks when they have some, else keep the manual value', async () => {
    const { a } = setup();
    const { project } = await a.createProject(T, { name: 'Launch' });
    await a.updateProject(T, project.id, { progress: 70 });
    const t1 = await a.addProjectTask(T, project.id, { title: 'Write copy' });
    expect(t1.project).toMatchObject({
      progress: 0,
      progress_source: 'tasks',
      task_counts: { total: 1, done: 0 },
    });
    const t2 = await a.addProjectTask(T, project.id, { title: 'Record video' });
    const t3 = await a.createTask(T, { title: 'Book venue', project_id: project.id });
    await a.completeTask(T, t1.task.id);
    let got = await a.getProject(T, project.id);
    // 1 of 3 done: 33%, whatever the manual 70 said.
    expect(got.project).toMatchObject({
      progress: 33,
      progress_source: 'tasks',
      task_counts: { total: 3, done: 1 },
    });
    expect(got.tasks.map((t) => t.id).sort()).toEqual([t1.task.id, t2.task.id, t3.task.id].sort());

    await a.updateItems(T, [{ id: t2.task.id, changes: { status: 'done' } }]);
    got = await a.getProject(T, project.id);
    expect(got.project).toMatchObject({ progress: 67, task_counts: { total: 3, done: 2 } });

    // Trashed tasks do not count; without live tasks the manual value is back.
    await a.deleteItems(T, [t3.task.id], false);
    expect((await a.getProject(T, project.id)).project).toMatchObject({
      progress: 100,
      task_counts: { total: 2, done: 2 },
    });
    await a.deleteItems(T, [t1.task.id, t2.task.id], false);
    expect((await a.getProject(T, project.id)).project).toMatchObject({
      progress: 70,
      progress_source: 'manual',
      task_counts: { total: 0, done: 0 },
    });
    expect((await rejection(a.addProjectTask(T, 'prj_nope', { title: 'x' }))).code).toBe('not_found');
  });
});

describe('tasks', () => {
  it('are created, listed, read and updated, with times in the user’s zone', async () => {
    const { a, clock } = setup();
    const { task, created } = await a.createTask(T, {
      title: 'Send invoice',
      description: 'To ACME',
      priority: 'urgent',
      due_date: '2026-03-10T17:00',
      reminder_date: '2026-03-10T09:00',
      tags: ['work'],
    });
    expect(created).toBe(true);
    expect(task).toMatchObject({
      kind: 'task',
      title: 'Send invoice',
      description: 'To ACME',
      status: 'todo',
      priority: 'urgent',
      due_date: '2026-03-10T17:00:00+01:00',
      reminder_date: '2026-03-10T09:00:00+01:00',
      timezone: null,
      recurrence: null,
      completed: false,
      completed_at: null,
      project_id: null,
    });
    const record = await a.getRecord(T, task.id);
    expect(record.starts_at).toBe('2026-03-10T16:00:00.000Z');

    // A task in its own zone keeps it: 09:00 in New York is 14:00 in Paris that day.
    const ny = await a.createTask(T, {
      title: 'Call NY office',
      due_date: '2026-03-10T09:00',
      timezone: 'America/New_York',
    });
    expect(ny.task).toMatchObject({ due_date: '2026-03-10T09:00:00-04:00', timezone: 'America/New_York' });
    expect((await a.getRecord(T, ny.task.id)).starts_at).toBe('2026-03-10T13:00:00.000Z');

    const list = await a.listTasks(T, {});
    expect(list.items.map((t) => t.id)).toEqual([ny.task.id, task.id]);
    expect((await a.listTasks(T, { priority: ['urgent'] })).items.map((t) => t.id)).toEqual([task.id]);
    expect((await a.listTasks(T, { due_before: '2026-03-10T15:00' })).items.map((t) => t.id)).toEqual([
      ny.task.id,
    ]);

    clock.now = '2026-03-06T08:30:00.000Z';
    const [res] = await a.updateItems(T, [
      { id: task.id, changes: { status: 'done', title: 'Send invoice #42', tags: ['work', 'billing'] } },
    ]);
    expect(res).toMatchObject({ id: task.id, ok: true, error: null });
    expect(res?.item).toMatchObject({
      title: 'Send invoice #42',
      completed: true,
      completed_at: '2026-03-06T09:30:00+01:00',
      tags: ['work', 'billing'],
      updated_at: '2026-03-06T09:30:00+01:00',
    });
    expect((await a.listTasks(T, { completed: true })).items.map((t) => t.id)).toEqual([task.id]);
    expect((await a.listTasks(T, { completed: false })).items.map((t) => t.id)).toEqual([ny.task.id]);

    const bad = await a.updateItems(T, [
      { id: task.id, changes: { due_date: '2026-02-30' } },
      { id: task.id, changes: { colour: 'red' } },
      { id: 'tsk_missing', changes: { title: 'x' } },
      { id: ny.task.id, changes: { priority: 'low' } },
    ]);
    expect(bad.map((r) => r.ok)).toEqual([false, false, false, true]);
    expect(bad[0]?.error).toMatch(/February 2026 has 28 days/);
    expect(bad[1]?.error).toMatch(/colour: is not a field of a task/);
    expect(bad[2]?.error).toMatch(/no item with id "tsk_missing"/);
    expect((await taskView(a, task.id)).due_date).toBe('2026-03-10T17:00:00+01:00');

    expect((await rejection(a.createTask(T, { title: 'x', timezone: 'Europe/Pariss' }))).field).toBe(
      'timezone',
    );
    expect((await rejection(a.createTask(T, { title: 'x', recurrence: 'FREQ=DAILY' }))).message).toMatch(
      /needs a due_date/,
    );
    expect((await rejection(a.createTask(T, { title: '   ' }))).field).toBe('title');
  });

  it('keeps a date-only due a date in every view', async () => {
    const { a, tick } = setup();
    const { task } = await a.createTask(T, { title: 'Pay rent', due_date: '2026-03-10', tags: ['home'] });
    expect(task.due_date).toBe('2026-03-10');
    // Stored at the start of that day in Paris, not at midnight UTC.
    expect((await a.getRecord(T, task.id)).starts_at).toBe('2026-03-09T23:00:00.000Z');
    expect((await a.getRecord(T, task.id)).data['due']).toEqual({ date: '2026-03-10' });
    expect((await a.listTasks(T, {})).items[0]?.due_date).toBe('2026-03-10');
    expect((await taskView(a, task.id)).due_date).toBe('2026-03-10');
    const [upd] = await a.updateItems(T, [{ id: task.id, changes: { title: 'Pay the rent' } }]);
    expect(upd?.item).toMatchObject({ due_date: '2026-03-10' });
    // The user moving to New York does not move the date.
    await a.updateStatus(T, { timezone: 'America/New_York' });
    expect((await taskView(a, task.id)).due_date).toBe('2026-03-10');
    await a.updateStatus(T, { timezone: ZONE });
    const dash = await dashboard(a, T, tick());
    expect(dash.upcoming_todos.find((t) => t.id === task.id)?.due_date).toBe('2026-03-10');
    const json = JSON.parse((await exportData(a, T, 'json', ['task'])).content) as { tasks: TaskView[] };
    expect(json.tasks[0]?.due_date).toBe('2026-03-10');
  });

  it('completing a recurring date-only task creates the next one as a date, keeping the reminder offset', async () => {
    const { a, clock } = setup();
    const { task } = await a.createTask(T, {
      title: 'Water the plants',
      due_date: '2026-03-05',
      reminder_date: '2026-03-04T18:00', // the evening before
      recurrence: 'RRULE:FREQ=WEEKLY',
      priority: 'low',
      tags: ['home'],
    });
    expect(task.recurrence).toBe('FREQ=WEEKLY');
    const first = await a.completeTask(T, task.id);
    expect(first.already_completed).toBe(false);
    expect(first.todo).toMatchObject({
      id: task.id,
      completed: true,
      completed_at: '2026-03-05T11:00:00+01:00',
    });
    const next = first.next as TaskView;
    expect(next).not.toBeNull();
    expect(next.id).not.toBe(task.id);
    expect(next).toMatchObject({
      title: 'Water the plants',
      due_date: '2026-03-12',
      reminder_date: '2026-03-11T18:00:00+01:00',
      recurrence: 'FREQ=WEEKLY',
      status: 'todo',
      completed: false,
      completed_at: null,
      priority: 'low',
      tags: ['home'],
    });
    const stored = await a.getRecord(T, next.id);
    expect(stored.data['due']).toEqual({ date: '2026-03-12' });
    expect(stored.starts_at).toBe('2026-03-11T23:00:00.000Z');

    // Completing it again is a no-op that says so.
    const again = await a.completeTask(T, task.id);
    expect(again).toMatchObject({ already_completed: true, next: null });

    // Across the spring change the date stays a date, and the reminder stays the evening before at 18:00.
    clock.now = '2026-03-20T10:00:00.000Z';
    const n2 = (await a.completeTask(T, next.id)).next as TaskView;
    const n3 = (await a.completeTask(T, n2.id)).next as TaskView;
    expect(n2.due_date).toBe('2026-03-19');
    expect(n3.due_date).toBe('2026-03-26');
    expect(n3.reminder_date).toBe('2026-03-25T18:00:00+01:00');
    const n4 = (await a.completeTask(T, n3.id)).next as TaskView;
    expect(n4.due_date).toBe('2026-04-02');
    expect((await a.getRecord(T, n4.id)).starts_at).toBe('2026-04-01T22:00:00.000Z');
    expect((await a.listTasks(T, { completed: false })).items.map((t) => t.id)).toEqual([n4.id]);
  });

  it('a timed recurring task follows its rule in its own zone, and a COUNT-limited series ends', async () => {
    const { a } = setup();
    const { task } = await a.createTask(T, {
      title: 'Stand-up notes',
      due_date: '2026-01-31T09:00',
      recurrence: 'FREQ=MONTHLY;BYMONTHDAY=31;COUNT=3',
    });
    const n1 = (await a.completeTask(T, task.id)).next as TaskView;
    expect(n1.due_date).toBe('2026-03-31T09:00:00+02:00'); // no 31 February; summer time by then
    // Each instance carries what is left of the series.
    expect(n1.recurrence).toMatch(/(^|;)COUNT=2(;|$)/);
    const n2 = (await a.completeTask(T, n1.id)).next as TaskView;
    expect(n2.due_date).toBe('2026-05-31T09:00:00+02:00');
    expect(n2.recurrence).toMatch(/(^|;)COUNT=1(;|$)/);
    // That was the third and last occurrence.
    const end = await a.completeTask(T, n2.id);
    expect(end.todo.completed).toBe(true);
    expect(end.next).toBeNull();
    expect((await a.listTasks(T, { completed: false })).items).toEqual([]);
  });

  it('completing a task in the trash is refused', async () => {
    const { a } = setup();
    const { task } = await a.createTask(T, { title: 'Old' });
    await a.deleteItems(T, [task.id], false);
    const err = await rejection(a.completeTask(T, task.id));
    expect(err.code).toBe('conflict');
    expect(err.hint).toMatch(/restore/i);
  });
});

describe('events', () => {
  it('are created, listed and updated, in their own zone', async () => {
    const { a } = setup();
    const { event, created } = await a.createEvent(T, {
      title: 'Dentist',
      start_time: '2026-03-12T14:00',
      end_time: '2026-03-12T14:45',
      location: 'Rue de Rivoli, Paris',
      attendees: ['me@example.com'],
      tags: ['health'],
    });
    expect(created).toBe(true);
    expect(event).toMatchObject({
      kind: 'event',
      title: 'Dentist',
      start_time: '2026-03-12T14:00:00+01:00',
      end_time: '2026-03-12T14:45:00+01:00',
      all_day: false,
      timezone: ZONE,
      location: 'Rue de Rivoli, Paris',
      attendees: ['me@example.com'],
      reminder_minutes: 15,
      recurrence: null,
      occurrence_start: null,
    });
    const call = await a.createEvent(T, {
      title: 'Call with Boston',
      start_time: '2026-03-12T08:00',
      timezone: 'America/New_York',
      reminder_minutes: 5,
    });
    // No end: one hour. New York was already on summer time (8 March), Paris not yet.
    expect(call.event).toMatchObject({
      start_time: '2026-03-12T08:00:00-04:00',
      end_time: '2026-03-12T09:00:00-04:00',
      timezone: 'America/New_York',
    });
    const holiday = await a.createEvent(T, {
      title: 'Holiday',
      start_time: '2026-03-20',
      end_time: '2026-03-22',
      all_day: true,
    });
    expect(holiday.event).toMatchObject({ start_time: '2026-03-20', end_time: '2026-03-22', all_day: true });

    const list = await a.listEvents(T, { start_date: '2026-03-12', end_date: '2026-03-31' });
    // 08:00 in New York (12:00Z) comes before 14:00 in Paris (13:00Z).
    expect(list.items.map((e) => e.title)).toEqual(['Call with Boston', 'Dentist', 'Holiday']);
    expect(list.range).toEqual({ start: '2026-03-12T00:00:00+01:00', end: '2026-04-01T00:00:00+02:00' });
    expect(list.next_cursor).toBeNull();

    const [res] = await a.updateItems(T, [
      {
        id: event.id,
        changes: { start_time: '2026-03-13T10:00', end_time: '2026-03-13T11:00', location: null },
      },
    ]);
    expect(res?.item).toMatchObject({
      start_time: '2026-03-13T10:00:00+01:00',
      end_time: '2026-03-13T11:00:00+01:00',
      location: null,
    });
    expect(
      (await a.listEvents(T, { start_date: '2026-03-12', end_date: '2026-03-12' })).items.map((e) => e.id),
    ).toEqual([call.event.id]);

    expect((await rejection(a.createEvent(T, { title: 'x', start_time: '2026-03-12' }))).field).toBe(
      'start_time',
    );
    expect(
      (
        await rejection(
          a.createEvent(T, { title: 'x', start_time: '2026-03-12T10:00', end_time: '2026-03-12T09:00' }),
        )
      ).field,
    ).toBe('end_time');
  });

  it('listEvents expands a weekly recurring event in a range and pages through it', async () => {
    const { a } = setup();
    const { event: standup } = await a.createEvent(T, {
      title: 'Stand-up',
      start_time: '2026-03-02T09:30', // a Monday
      end_time: '2026-03-02T09:45',
      recurrence: 'FREQ=WEEKLY;BYDAY=MO,WE',
    });
    const { event: lunch } = await a.createEvent(T, { title: 'Lunch', start_time: '2026-03-11T12:00' });
    // Outside the range: must not appear.
    await a.createEvent(T, { title: 'Later', start_time: '2026-04-20T12:00' });

    const seen: EventView[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await a.listEvents(T, {
        start_date: '2026-03-01',
        end_date: '2026-04-05',
        limit: 3,
        cursor,
      });
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items);
      cursor = page.next_cursor ?? undefined;
      pages++;
    } while (cursor && pages < 20);

    const expectedStandups = [
      '2026-03-02',
      '2026-03-04',
      '2026-03-09',
      '2026-03-11',
      '2026-03-16',
      '2026-03-18',
      '2026-03-23',
      '2026-03-25',
      '2026-03-30',
      '2026-04-01',
    ].map((d) => `${d}T09:30:00${d < '2026-03-29' ? '+01:00' : '+02:00'}`);
    const standups = seen.filter((e) => e.id === standup.id);
    expect(standups.map((e) => e.occurrence_start)).toEqual(expectedStandups);
    expect(seen.filter((e) => e.id === lunch.id)).toHaveLength(1);
    expect(seen).toHaveLength(11);
    expect(pages).toBe(4);
    const keys = seen.map((e) => `${e.id}@${e.occurrence_start ?? e.start_time}`);
    expect(new Set(keys).size).toBe(keys.length);
    const starts = seen.map((e) => Date.parse(e.occurrence_start ?? e.start_time));
    expect([...starts].sort((x, y) => x - y)).toEqual(starts);
    // Lunch at 12:00 on 11 March comes right after that day's 09:30 stand-up (the 4th).
    expect(seen.findIndex((e) => e.id === lunch.id)).toBe(4);

    expect(
      (await rejection(a.listEvents(T, { start_date: '2026-03-01', cursor: 'bm90LWEtY3Vyc29y' }))).field,
    ).toBe('cursor');
  });
});

describe('documents', () => {
  it('uploads are stored with type, size and checksum, and read back', async () => {
    const { a } = setup({ documentsDir: true });
    const text = 'Meeting minutes\nDecided: ship on Friday.';
    const { document, created } = await a.uploadDocument(T, {
      title: 'minutes.txt',
      content_base64: b64(text),
      description: 'Weekly meeting',
      tags: ['work'],
    });
    expect(created).toBe(true);
    expect(document).toMatchObject({
      kind: 'document',
      title: 'minutes.txt',
      description: 'Weekly meeting',
      document_type: 'text',
      mime_type: 'text/plain',
      filename: 'minutes.txt',
      size_bytes: Buffer.byteLength(text),
      checksum: createHash('sha256').update(text).digest('hex'),
      external_url: null,
      storage: 'folder',
    });
    const got = await a.getDocument(T, document.id, true);
    expect(Buffer.from(got.content ?? new Uint8Array()).toString('utf8')).toBe(text);
    expect((await a.getDocument(T, document.id, false)).content).toBeNull();

    const pdf = await a.uploadDocument(T, {
      title: 'Scan',
      content_base64: Buffer.from('%PDF-1.7\n%%EOF').toString('base64'),
    });
    expect(pdf.document).toMatchObject({
      document_type: 'pdf',
      mime_type: 'application/pdf',
      filename: null,
    });
    const ext = await a.createExternalDocument(T, {
      title: 'Design spec',
      external_url: 'https://example.com/specs/design.pdf',
    });
    expect(ext.document).toMatchObject({
      document_type: 'pdf',
      storage: 'external',
      external_url: 'https://example.com/specs/design.pdf',
      size_bytes: 0,
    });

    const list = await a.listDocuments(T, {});
    expect(list.items.map((d) => d.id).sort()).toEqual(
      [document.id, pdf.document.id, ext.document.id].sort(),
    );
    expect((await a.listDocuments(T, { document_type: 'pdf' })).items.map((d) => d.id).sort()).toEqual(
      [pdf.document.id, ext.document.id].sort(),
    );

    const [upd, notExternal] = await a.updateItems(T, [
      { id: ext.document.id, changes: { external_url: 'https://example.com/v2.pdf', description: 'v2' } },
      { id: document.id, changes: { external_url: 'https://example.com/x' } },
    ]);
    expect(upd?.item).toMatchObject({ external_url: 'https://example.com/v2.pdf', description: 'v2' });
    expect(notExternal).toMatchObject({ ok: false });
    expect(notExternal?.error).toMatch(/only external documents have a URL/);

    expect(
      (
        await rejection(
          a.uploadDocument(T, { title: 'x', content_base64: b64('%PDF-1.4'), mime_type: 'image/png' }),
        )
      ).field,
    ).toBe('mime_type');
    expect((await rejection(a.uploadDocument(T, { title: 'x', content_base64: '***' }))).field).toBe(
      'content_base64',
    );
    const big = await rejection(
      a.uploadDocument(T, {
        title: 'big',
        content_base64: Buffer.alloc(1024 * 1024 + 10).toString('base64'),
      }),
    );
    expect(big.code).toBe('too_large');
    expect(
      (await rejection(a.createExternalDocument(T, { title: 'x', external_url: 'javascript:alert(1)' })))
        .field,
    ).toBe('external_url');
  });
});

describe('notes', () => {
  it('are added, listed (pinned filter) and updated', async () => {
    const { a } = setup();
    const { note } = await a.addNote(T, {
      text: 'Prefers window seats\nEspecially on long flights',
      kind: 'preference',
      pinned: true,
      tags: ['travel'],
    });
    expect(note).toMatchObject({
      kind: 'note',
      title: 'Prefers window seats',
      text: 'Prefers window seats\nEspecially on long flights',
      note_kind: 'preference',
      pinned: true,
    });
    const other = await a.addNote(T, { text: 'Allergic to peanuts', kind: 'fact' });
    expect((await a.listNotes(T, {})).items).toHaveLength(2);
    expect((await a.listNotes(T, { pinned: true })).items.map((n) => n.id)).toEqual([note.id]);
    const [upd] = await a.updateItems(T, [
      { id: other.note.id, changes: { text: 'Allergic to peanuts and shellfish', pinned: true } },
    ]);
    expect(upd?.item).toMatchObject({ title: 'Allergic to peanuts and shellfish', pinned: true });
    expect((await a.listNotes(T, { pinned: true })).items).toHaveLength(2);
    expect(((await view(a, note.id)) as NoteView).text).toBe(
      'Prefers window seats\nEspecially on long flights',
    );
    expect((await rejection(a.addNote(T, { text: 'x', kind: 'rumour' }))).field).toBe('kind');
  });
});

describe('trash', () => {
  it('delete moves to the trash, restore brings back, permanent delete removes for good', async () => {
    const { a } = setup();
    const { task } = await a.createTask(T, { title: 'Renew passport', due_date: '2026-04-01' });
    const { task: keep } = await a.createTask(T, { title: 'Keep me' });

    const [del] = await a.deleteItems(T, [task.id], false);
    expect(del).toMatchObject({ id: task.id, ok: true });
    expect(del?.item?.deleted_at).toBe('2026-03-05T11:00:00+01:00');
    expect((await a.listTasks(T, {})).items.map((t) => t.id)).toEqual([keep.id]);
    expect((await a.listTasks(T, { trash: true })).items.map((t) => t.id)).toEqual([task.id]);
    // Still readable by id, marked as trashed; edits are refused until restored.
    expect((await taskView(a, task.id)).deleted_at).not.toBeNull();
    const [edit] = await a.updateItems(T, [{ id: task.id, changes: { title: 'x' } }]);
    expect(edit).toMatchObject({ ok: false });
    expect(edit?.error).toMatch(/in the trash/);
    const [twice] = await a.deleteItems(T, [task.id], false);
    expect(twice?.ok).toBe(false);
    expect(twice?.error).toMatch(/already in the trash/);

    const [res] = await a.restoreItems(T, [task.id]);
    expect(res).toMatchObject({ id: task.id, ok: true });
    expect(res?.item?.deleted_at).toBeNull();
    expect((await a.listTasks(T, {})).items.map((t) => t.id)).toEqual([task.id, keep.id]);
    expect((await a.listTasks(T, { trash: true })).items).toEqual([]);
    const [notTrashed] = await a.restoreItems(T, [task.id]);
    expect(notTrashed?.error).toMatch(/not in the trash/);

    const results = await a.deleteItems(T, [task.id, 'tsk_missing'], true);
    expect(results.map((r) => r.ok)).toEqual([true, false]);
    expect(results[1]?.error).toMatch(/no item with id "tsk_missing"/);
    const gone = await rejection(a.getRecord(T, task.id));
    expect(gone.code).toBe('not_found');
    expect((await a.listTasks(T, { trash: true })).items).toEqual([]);
    expect((await a.listTasks(T, {})).items.map((t) => t.id)).toEqual([keep.id]);
    expect((await a.restoreItems(T, [task.id]))[0]?.ok).toBe(false);
  });

  it('works for every kind', async () => {
    const { a } = setup();
    const ids = [
      (await a.createProject(T, { name: 'P' })).project.id,
      (await a.createEvent(T, { title: 'E', start_time: '2026-03-06T10:00' })).event.id,
      (await a.addNote(T, { text: 'N' })).note.id,
      (await a.createExternalDocument(T, { title: 'D', external_url: 'https://example.com/d' })).document.id,
    ];
    expect((await a.deleteItems(T, ids, false)).every((r) => r.ok)).toBe(true);
    expect((await a.listProjects(T, {})).items).toEqual([]);
    expect((await a.listProjects(T, { trash: true })).items).toHaveLength(1);
    expect((await a.listEvents(T, { start_date: '2026-03-01' })).items).toEqual([]);
    expect((await a.listNotes(T, {})).items).toEqual([]);
    expect((await a.listDocuments(T, {})).items).toEqual([]);
    expect((await a.listDocuments(T, { trash: true })).items).toHaveLength(1);
    expect((await a.restoreItems(T, ids)).every((r) => r.ok)).toBe(true);
    expect((await a.listEvents(T, { start_date: '2026-03-01' })).items).toHaveLength(1);
    expect((await a.listNotes(T, {})).items).toHaveLength(1);
  });
});

describe('client_ref', () => {
  it('makes a create idempotent', async () => {
    const { a } = setup();
    const first = await a.createTask(T, { title: 'Book flights', client_ref: 'req-1' });
    const retry = await a.createTask(T, { title: 'Book flights (retry)', client_ref: 'req-1' });
    expect(first.created).toBe(true);
    expect(retry.created).toBe(false);
    expect(retry.task.id).toBe(first.task.id);
    expect(retry.task.title).toBe('Book flights');
    expect((await a.listTasks(T, {})).items).toHaveLength(1);
    // Per kind: the same key on a note is another item.
    expect((await a.addNote(T, { text: 'n', client_ref: 'req-1' })).created).toBe(true);
    expect((await rejection(a.addNote(T, { text: 'n', client_ref: '' }))).field).toBe('client_ref');
  });

  it('holds when two identical creates race', async () => {
    const { a } = setup();
    const results = await Promise.all([
      a.addNote(T, { text: 'Remember the milk', client_ref: 'race' }),
      a.addNote(T, { text: 'Remember the milk', client_ref: 'race' }),
      a.addNote(T, { text: 'Remember the milk', client_ref: 'race' }),
    ]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.note.id)).size).toBe(1);
    expect((await a.listNotes(T, {})).items).toHaveLength(1);
  });
});

describe('optimistic concurrency', () => {
  it('two concurrent updates of the same item both land', async () => {
    const { a, store } = setup();
    const { task } = await a.createTask(T, { title: 'Draft report', tags: ['work'] });
    const [r1, r2] = await Promise.all([
      a.updateItems(T, [{ id: task.id, changes: { title: 'Final report' } }]),
      a.updateItems(T, [{ id: task.id, changes: { tags: ['work', 'q1'] } }]),
    ]);
    expect(r1?.[0]?.ok).toBe(true);
    expect(r2?.[0]?.ok).toBe(true);
    // They did collide, and the loser re-read and re-applied its change.
    expect(store.conflicts).toBeGreaterThanOrEqual(1);
    const final = await a.getRecord(T, task.id);
    expect(final.title).toBe('Final report');
    expect(final.tags).toEqual(['work', 'q1']);
    expect(final.version).toBe(3);
  });

  it('several concurrent updates of different fields all land', async () => {
    const { a } = setup();
    const { task } = await a.createTask(T, { title: 'Plan trip' });
    const changes: Record<string, unknown>[] = [
      { title: 'Plan the trip' },
      { tags: ['travel'] },
      { priority: 'high' },
      { description: 'Flights and hotel' },
    ];
    const results = await Promise.all(changes.map((c) => a.updateItems(T, [{ id: task.id, changes: c }])));
    expect(results.map((r) => r[0]?.ok)).toEqual([true, true, true, true]);
    const final = await taskView(a, task.id);
    expect(final).toMatchObject({
      title: 'Plan the trip',
      tags: ['travel'],
      priority: 'high',
      description: 'Flights and hotel',
    });
    expect((await a.getRecord(T, task.id)).version).toBe(5);
  });
});

describe('pagination', () => {
  it('returns every task exactly once across pages, with ties in the due date', async () => {
    const { a } = setup();
    const created: string[] = [];
    for (let i = 0; i < 7; i++)
      created.push((await a.createTask(T, { title: `Same day ${i}`, due_date: '2026-03-20' })).task.id);
    for (let i = 0; i < 2; i++)
      created.push((await a.createTask(T, { title: `Earlier ${i}`, due_date: '2026-03-19T10:00' })).task.id);
    for (let i = 0; i < 3; i++) created.push((await a.createTask(T, { title: `Undated ${i}` })).task.id);

    const seen: TaskView[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await a.listTasks(T, { limit: 3, cursor });
      seen.push(...page.items);
      cursor = page.next_cursor ?? undefined;
      pages++;
    } while (cursor && pages < 20);
    expect(pages).toBe(4);
    expect(seen.map((t) => t.id).sort()).toEqual([...created].sort());
    expect(new Set(seen.map((t) => t.id)).size).toBe(created.length);
    expect(seen.map((t) => t.due_date)).toEqual([
      '2026-03-19T10:00:00+01:00',
      '2026-03-19T10:00:00+01:00',
      ...Array<string>(7).fill('2026-03-20'),
      null,
      null,
      null,
    ]);
  });

  it('pages lists ordered by creation and update time when every timestamp is the same', async () => {
    const { a } = setup(); // the fixed clock gives every item the same created_at and updated_at
    const projects: string[] = [];
    const notes: string[] = [];
    for (let i = 0; i < 5; i++) {
      projects.push((await a.createProject(T, { name: `P${i}` })).project.id);
      notes.push((await a.addNote(T, { text: `N${i}` })).note.id);
    }
    const collect = async (
      list: (cursor: string | undefined) => Promise<{ items: { id: string }[]; next_cursor: string | null }>,
    ): Promise<string[]> => {
      const out: string[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await list(cursor);
        out.push(...page.items.map((x) => x.id));
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      return out;
    };
    const p = await collect((cursor) => a.listProjects(T, { limit: 2, cursor }));
    const n = await collect((cursor) => a.listNotes(T, { limit: 2, cursor }));
    expect(p).toEqual([...projects].sort().reverse());
    expect(n).toEqual([...notes].sort().reverse());
  });

  it('rejects cursors it did not produce, and bad limits', async () => {
    const { a } = setup();
    for (let i = 0; i < 3; i++) await a.addNote(T, { text: `N${i}` });
    const notes = await a.listNotes(T, { limit: 1 });
    expect(notes.next_cursor).not.toBeNull();
    const wrongList = await rejection(a.listTasks(T, { cursor: notes.next_cursor ?? '' }));
    expect(wrongList.field).toBe('cursor');
    expect((await rejection(a.listTasks(T, { cursor: 'garbage!' }))).field).toBe('cursor');
    expect((await rejection(a.listTasks(T, { limit: 0 }))).field).toBe('limit');
    expect((await rejection(a.listTasks(T, { limit: 101 }))).field).toBe('limit');
  });
});

describe('dashboard', () => {
  it('counts, lists reminders due within a day, and counts what is overdue', async () => {
    const { a, tick } = setup();
    const { project } = await a.createProject(T, { name: 'Active', status: 'in_progress' });
    await a.createProject(T, { name: 'Parked', status: 'on_hold' });
    const soon = await a.createTask(T, {
      title: 'Call mum',
      due_date: '2026-03-06',
      reminder_date: '2026-03-05T20:00', // in 9 hours
    });
    const later = await a.createTask(T, {
      title: 'Tax return',
      due_date: '2026-04-15',
      reminder_date: '2026-03-10T09:00', // in 5 days
    });
    const overdueDate = await a.createTask(T, { title: 'Return library books', due_date: '2026-03-01' });
    const overdueTime = await a.createTask(T, { title: 'Submit timesheet', due_date: '2026-03-05T09:00' });
    const dueToday = await a.createTask(T, { title: 'Buy bread', due_date: '2026-03-05' });
    await a.createTask(T, { title: 'Due tonight', due_date: '2026-03-05T20:00' });
    const done = await a.createTask(T, {
      title: 'Old and done',
      due_date: '2026-03-02',
      project_id: project.id,
    });
    await a.completeTask(T, done.task.id);
    const trashed = await a.createTask(T, { title: 'Old and trashed', due_date: '2026-03-02' });
    await a.deleteItems(T, [trashed.task.id], false);
    const meeting = await a.createEvent(T, {
      title: 'Team meeting',
      start_time: '2026-03-05T15:00',
      reminder_minutes: 30,
    });
    await a.createEvent(T, { title: 'Conference', start_time: '2026-03-20T09:00', reminder_minutes: 60 });
    await a.addNote(T, { text: 'Pinned fact', pinned: true });
    await a.addNote(T, { text: 'Loose note' });
    await a.createExternalDocument(T, { title: 'Doc', external_url: 'https://example.com/doc' });

    const dash = await dashboard(a, T, tick());
    expect(dash.timezone).toBe(ZONE);
    expect(dash.now).toBe('2026-03-05T11:00:00+01:00');
    expect(dash.statistics).toEqual({
      total_projects: 2,
      active_projects: 1,
      pending_todos: 6,
      completed_todos: 1,
      total_documents: 1,
      notes: 2,
    });
    expect(dash.active_projects.map((p) => p.id)).toEqual([project.id]);
    expect(dash.pinned_notes.map((n) => n.text)).toEqual(['Pinned fact']);
    expect(dash.recent_documents).toHaveLength(1);
    expect(dash.upcoming_events.map((e) => e.id)).toContain(meeting.event.id);

    const reminders = dash.reminders.map((r) => [r.kind, r.id, r.remind_at]);
    expect(reminders).toContainEqual(['task', soon.task.id, '2026-03-05T20:00:00+01:00']);
    expect(reminders).toContainEqual(['event', meeting.event.id, '2026-03-05T14:30:00+01:00']);
    expect(dash.reminders.map((r) => r.id)).not.toContain(later.task.id);
    expect(dash.reminders.find((r) => r.id === soon.task.id)?.due_or_start).toBe('2026-03-06');

    // Overdue: the date before today and the time this morning; not what is due later today or done or trashed.
    expect(dash.overdue_count).toBe(2);
    const upcoming = dash.upcoming_todos.map((t) => t.id);
    expect(upcoming).toContain(soon.task.id);
    expect(upcoming).toContain(dueToday.task.id);
    expect(upcoming).not.toContain(later.task.id);
    expect([overdueDate.task.id, overdueTime.task.id].every((id) => upcoming.includes(id))).toBe(true);
  });
});

describe('export', () => {
  async function fill(a: Assistant): Promise<void> {
    await a.createProject(T, { name: 'Garden *shed*', status: 'in_progress' });
    const t = await a.createTask(T, { title: 'Buy seeds', due_date: '2026-03-10', priority: 'high' });
    await a.completeTask(T, t.task.id);
    await a.createTask(T, { title: 'Undated task' });
    await a.createTask(T, { title: 'Call the builder', due_date: '2026-03-11T08:15' });
    await a.createEvent(T, {
      title: 'Budget, Q1; draft \\ final',
      description: `Line one\nLine two; with, punctuation\r\n${'Très long texte avec des caractères accentués – '.repeat(4)}`,
      start_time: '2026-03-12T14:00',
      end_time: '2026-03-12T15:00',
      location: 'Room 4, 2nd floor',
      attendees: ['ann@example.com', 'Smith, John'],
      recurrence: 'FREQ=WEEKLY;COUNT=4',
      tags: ['work', 'finance'],
    });
    await a.createEvent(T, { title: 'Holiday', start_time: '2026-04-01', all_day: true });
    await a.addNote(T, { text: 'Pinned note', pinned: true });
    await a.createExternalDocument(T, { title: 'Plan', external_url: 'https://example.com/plan.pdf' });
  }

  it('json holds every kind and the status', async () => {
    const { a } = setup();
    await fill(a);
    const res = await exportData(a, T, 'json', undefined);
    expect(res.mime_type).toBe('application/json');
    expect(res.counts).toEqual({ project: 1, task: 3, event: 2, document: 1, note: 1 });
    const body = JSON.parse(res.content) as Record<string, unknown> & {
      tasks: TaskView[];
      events: EventView[];
      status: { timezone: string };
    };
    expect(body['exported_at']).toBe('2026-03-05T11:00:00+01:00');
    expect(body.status.timezone).toBe(ZONE);
    expect(body.tasks.map((t) => t.title)).toEqual(['Buy seeds', 'Call the builder', 'Undated task']);
    expect(body.events.map((e) => e.title)).toEqual(['Budget, Q1; draft \\ final', 'Holiday']);
    expect(Object.keys(body).sort()).toEqual(
      ['documents', 'events', 'exported_at', 'notes', 'projects', 'status', 'tasks'].sort(),
    );
    const some = await exportData(a, T, 'json', ['note']);
    expect(some.counts).toEqual({ note: 1 });
  });

  it('markdown lists each kind with escaping', async () => {
    const { a } = setup();
    await fill(a);
    const res = await exportData(a, T, 'markdown', undefined);
    expect(res.mime_type).toBe('text/markdown');
    const md = res.content;
    expect(md).toMatch(/^# Personal assistant export\n/);
    expect(md).toContain('## Projects');
    expect(md).toContain('**Garden \\*shed\\*** — in_progress, medium, 0%');
    expect(md).toContain('- [x] Buy seeds (due 2026-03-10) — high');
    expect(md).toContain('- [ ] Undated task — medium');
    expect(md).toContain('## Notes');
    expect(md).toContain('📌 Pinned note');
  });

  it('icalendar folds lines to 75 octets, ends them with CRLF and escapes text', async () => {
    const { a } = setup();
    await fill(a);
    const res = await exportData(a, T, 'icalendar', undefined);
    expect(res.mime_type).toBe('text/calendar');
    expect(res.counts).toEqual({ event: 2, task: 3 });
    const ics = res.content;
    expect(ics.endsWith('\r\n')).toBe(true);
    expect(ics.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    const physical = ics.slice(0, -2).split('\r\n');
    for (const line of physical) expect(Buffer.byteLength(line, 'utf8'), line).toBeLessThanOrEqual(75);
    expect(physical.some((l) => l.startsWith(' '))).toBe(true); // something was folded

    // Unfold (RFC 5545 §3.1) and read the properties back.
    const lines = ics.replace(/\r\n /g, '').slice(0, -2).split('\r\n');
    expect(lines[0]).toBe('BEGIN:VCALENDAR');
    expect(lines[lines.length - 1]).toBe('END:VCALENDAR');
    expect(lines.filter((l) => l === 'BEGIN:VEVENT')).toHaveLength(2);
    expect(lines.filter((l) => l === 'BEGIN:VTODO')).toHaveLength(2); // the undated task is left out
    expect(lines).toContain('SUMMARY:Budget\\, Q1\\; draft \\\\ final');
    const description = lines.find((l) => l.startsWith('DESCRIPTION:Line one'));
    expect(description).toBe(
      `DESCRIPTION:Line one\\nLine two\\; with\\, punctuation\\n${'Très long texte avec des caractères accentués – '.repeat(4)}`,
    );
    expect(lines).toContain('LOCATION:Room 4\\, 2nd floor');
    expect(lines).toContain('CATEGORIES:work,finance');
    // Times are written in the item's zone (13:00Z is 14:00 in Paris in March), with that zone's VTIMEZONE, so
    // a weekly series stays at 14:00 local across the change of 29 March.
    expect(lines).toContain('DTSTART;TZID=Europe/Paris:20260312T140000');
    expect(lines).toContain('DTEND;TZID=Europe/Paris:20260312T150000');
    const tz = lines.slice(lines.indexOf('BEGIN:VTIMEZONE'), lines.indexOf('END:VTIMEZONE') + 1);
    expect(tz[1]).toBe('TZID:Europe/Paris');
    expect(lines.indexOf('BEGIN:VTIMEZONE')).toBeLessThan(lines.indexOf('BEGIN:VEVENT'));
    // EU rule: clocks go forward at 01:00 UTC on the last Sunday of March, back at 01:00 UTC on the last
    // Sunday of October; DTSTART is the local time just before, in the offset being left.
    const spring = tz.indexOf('DTSTART:20260329T020000');
    expect(tz.slice(spring - 1, spring + 4)).toEqual([
      'BEGIN:DAYLIGHT',
      'DTSTART:20260329T020000',
      'TZOFFSETFROM:+0100',
      'TZOFFSETTO:+0200',
      'END:DAYLIGHT',
    ]);
    const autumn = tz.indexOf('DTSTART:20261025T030000');
    expect(tz.slice(autumn - 1, autumn + 4)).toEqual([
      'BEGIN:STANDARD',
      'DTSTART:20261025T030000',
      'TZOFFSETFROM:+0200',
      'TZOFFSETTO:+0100',
      'END:STANDARD',
    ]);
    expect(lines).toContain('RRULE:FREQ=WEEKLY;COUNT=4');
    expect(lines).toContain('TRIGGER:-PT15M');
    expect(lines).toContain('DTSTART;VALUE=DATE:20260401');
    expect(lines).toContain('DTEND;VALUE=DATE:20260402');
    expect(lines).toContain('DUE;VALUE=DATE:20260310');
    expect(lines).toContain('DUE;TZID=Europe/Paris:20260311T081500');
    expect(lines).toContain('STATUS:COMPLETED');
    expect(lines).toContain('ATTENDEE;CN="ann@example.com":mailto:ann@example.com');
    // A parameter value with a comma is quoted (backslash escapes are not allowed in parameters).
    const smith = lines.find((l) => l.includes('Smith'));
    expect(smith).toMatch(/^ATTENDEE;CN="Smith, John":/);
    for (const l of lines) expect(l).toMatch(/^[A-Z-]+[;:]/);
  });
});

describe('batch results name the entry', () => {
  it('an unknown id in update_items, delete_items and restore_items names its position', async () => {
    const { a } = setup();
    const { note } = await a.addNote(T, { text: 'keep me' });
    const up = await a.updateItems(T, [
      { id: note.id, changes: { pinned: true } },
      { id: 'nope', changes: { pinned: true } },
    ]);
    expect(up.map((r) => r.ok)).toEqual([true, false]);
    expect(up[1]?.error).toMatch(/^items\[1\]\.id: no item with id "nope"/);
    const del = await a.deleteItems(T, ['nope', note.id], false);
    expect(del[0]?.error).toMatch(/^ids\[0\]: /);
    expect(del[1]?.ok).toBe(true);
    const again = await a.deleteItems(T, [note.id], false);
    expect(again[0]?.error).toMatch(/^ids\[0\]: .*already in the trash/);
    const res = await a.restoreItems(T, [note.id, note.id]);
    expect(res.map((r) => r.ok)).toEqual([true, false]);
    expect(res[1]?.error).toMatch(/^ids\[1\]: .*not in the trash/);
  });
});

describe('filters on kind-specific fields are applied by the store, before paging', () => {
  it('pinned notes and document types page correctly however many others there are', async () => {
    const { a } = setup();
    for (let i = 0; i < 7; i++) await a.addNote(T, { text: `plain ${i}` });
    await a.addNote(T, { text: 'pinned one', pinned: true });
    for (let i = 0; i < 5; i++) await a.addNote(T, { text: `plain again ${i}` });
    await a.addNote(T, { text: 'pinned two', pinned: true });
    const first = await a.listNotes(T, { pinned: true, limit: 1 });
    expect(first.items.map((n) => n.text)).toEqual(['pinned two']);
    expect(first.next_cursor).not.toBeNull();
    const second = await a.listNotes(T, { pinned: true, limit: 1, cursor: first.next_cursor as string });
    expect(second.items.map((n) => n.text)).toEqual(['pinned one']);
    expect(second.next_cursor).toBeNull();
    expect((await a.listNotes(T, { pinned: false, limit: 100 })).items).toHaveLength(12);

    for (let i = 0; i < 4; i++) {
      await a.createExternalDocument(T, {
        title: `link ${i}`,
        external_url: `https://example.com/${i}.html`,
      });
    }
    await a.createExternalDocument(T, { title: 'the pdf', external_url: 'https://example.com/x.pdf' });
    const pdfs = await a.listDocuments(T, { document_type: 'pdf', limit: 1 });
    expect(pdfs.items.map((d) => d.title)).toEqual(['the pdf']);
    expect(pdfs.next_cursor).toBeNull();
    const two = await a.listDocuments(T, { limit: 2 });
    expect(two.items).toHaveLength(2);
  });
});

describe('wall-clock rules', () => {
  it('a recurring task’s reminder keeps its local time when a DST change falls between it and the due time', async () => {
    const { a } = setup();
    // Due Monday 09:00 after the change of 2026-03-29; reminded the Saturday before at 18:00 (before the change).
    const { task } = await a.createTask(T, {
      title: 'Weekly report',
      due_date: '2026-03-30T09:00',
      reminder_date: '2026-03-28T18:00',
      recurrence: 'FREQ=WEEKLY',
    });
    expect(task.reminder_date).toBe('2026-03-28T18:00:00+01:00');
    const next = (await a.completeTask(T, task.id)).next as TaskView;
    expect(next.due_date).toBe('2026-04-06T09:00:00+02:00');
    expect(next.reminder_date).toBe('2026-04-04T18:00:00+02:00');
  });

  it('stores time zones under their canonical IANA spelling', async () => {
    const { a } = setup();
    const status = await a.updateStatus(T, { timezone: 'america/new_york' });
    expect(status.timezone).toBe('America/New_York');
  });

  it('re-embedding is one pass: items whose embedding fails stay pending and the pass ends', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const store = new SqliteStore({ path: path.join(t.dir, 'pa.sqlite') });
    cleanups.push(() => store.close());
    let calls = 0;
    const failing = {
      model: 'flaky-1',
      dimensions: 4,
      relevanceFloor: 0,
      embed: async (texts: readonly string[]): Promise<Float32Array[]> => {
        calls++;
        if (texts.some((x) => x.includes('poison'))) throw new Error('provider down');
        return texts.map(() => new Float32Array([1, 0, 0, 0]));
      },
    };
    const a = new Assistant({
      store,
      clock: () => new Date(NOW),
      defaultTimeZone: ZONE,
      maxUploadBytes: 1024,
      embeddings: failing,
      storageInfo: { database: 'sqlite:test', documents: 'database' },
    });
    for (let i = 0; i < 5; i++) await a.addNote(T, { text: i === 2 ? 'poison pill' : `note ${i}` });
    expect(await store.hasPendingVectors(T, 'flaky-1')).toBe(true); // the poisoned one failed at creation
    calls = 0;
    const done = await a.reembed(T, 1);
    expect(done).toBe(1); // only the pending one was tried, once
    expect(calls).toBe(1);
    expect(await store.hasPendingVectors(T, 'flaky-1')).toBe(true);
  });
});

describe('vtimezone', () => {
  it('a zone without daylight saving has one observance; New York has two changes a year', async () => {
    const { vtimezone } = await import('../../src/assistant/export.js');
    expect(vtimezone('Asia/Tokyo', 2026, 2027)).toEqual([
      'BEGIN:VTIMEZONE',
      'TZID:Asia/Tokyo',
      'BEGIN:STANDARD',
      'DTSTART:20260101T090000',
      'TZOFFSETFROM:+0900',
      'TZOFFSETTO:+0900',
      'END:STANDARD',
      'END:VTIMEZONE',
    ]);
    const ny = vtimezone('America/New_York', 2026, 2026);
    // US rule: second Sunday of March and first Sunday of November, at 02:00 local.
    expect(ny).toContain('DTSTART:20260308T020000');
    expect(ny).toContain('DTSTART:20261101T020000');
    expect(ny.filter((l) => l === 'BEGIN:DAYLIGHT')).toHaveLength(1);
    expect(ny.filter((l) => l === 'BEGIN:STANDARD')).toHaveLength(2); // the opening one and November's
  });
});
