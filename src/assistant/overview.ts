import type { Assistant } from './assistant.js';
import { MAX_PAGE } from './assistant.js';
import { invalid } from './errors.js';
import { addDays, formatInstant, parseTemporal, startOfDay, todayIn } from './time.js';
import type { DocumentView, EventView, NoteView, ProjectView, StatusView, TaskView } from './views.js';

export interface Reminder {
  kind: 'task' | 'event';
  id: string;
  title: string;
  remind_at: string;
  due_or_start: string | null;
}

export interface Dashboard {
  user_name: string;
  timezone: string;
  now: string;
  current_location: StatusView['current_location'];
  permissions: StatusView['permissions'];
  active_projects: ProjectView[];
  upcoming_todos: TaskView[];
  overdue_count: number;
  upcoming_events: EventView[];
  reminders: Reminder[];
  recent_documents: DocumentView[];
  pinned_notes: NoteView[];
  statistics: {
    total_projects: number;
    active_projects: number;
    pending_todos: number;
    completed_todos: number;
    total_documents: number;
    notes: number;
  };
}

async function count(
  a: Assistant,
  tenant: string,
  kind: 'project' | 'task' | 'document' | 'note',
  status?: string[],
): Promise<number> {
  return a.store.countItems(tenant, kind, status);
}

/** The overview a model should start from: what is active, due, coming up and pinned. */
export async function dashboard(
  a: Assistant,
  tenant: string,
  clock: () => Date = () => new Date(),
): Promise<Dashboard> {
  const status = await a.getStatus(tenant);
  const zone = status.timezone;
  const now = clock().toISOString();
  const weekAhead = new Date(Date.parse(now) + 7 * 86_400_000).toISOString();
  const dayAhead = new Date(Date.parse(now) + 86_400_000).toISOString();
  const active = await a.listProjects(tenant, { status: 'in_progress', limit: 10 });
  const todos = await a.listTasks(tenant, {
    completed: false,
    due_before: formatInstant(weekAhead, zone),
    limit: 20,
  });
  const openDue = await a.store.listItems(tenant, {
    kind: 'task',
    status: ['todo', 'in_progress', 'blocked'],
    order: 'starts_asc',
    starts_before: now,
    limit: 1000,
  });
  const events = (await a.eventsBetween(tenant, now, weekAhead)).slice(0, 20);
  const docs = await a.listDocuments(tenant, { limit: 5 });
  const notes = await a.listNotes(tenant, { pinned: true, limit: MAX_PAGE });
  const reminders: Reminder[] = [];
  const remindable = await a.store.listItems(tenant, {
    kind: 'task',
    status: ['todo', 'in_progress', 'blocked'],
    order: 'starts_asc',
    limit: 1000,
  });
  const views = await a.views(tenant, remindable);
  for (const [i, r] of remindable.entries()) {
    const rem = r.data['reminder'];
    if (
      rem &&
      typeof rem === 'object' &&
      !Array.isArray(rem) &&
      typeof rem['at'] === 'string' &&
      rem['at'] <= dayAhead
    ) {
      const v = views[i] as TaskView;
      reminders.push({
        kind: 'task',
        id: r.id,
        title: r.title,
        remind_at: formatInstant(rem['at'], zone),
        due_or_start: v.due_date,
      });
    }
  }
  for (const e of await a.eventsBetween(
    tenant,
    now,
    new Date(Date.parse(dayAhead) + 28 * 86_400_000).toISOString(),
  )) {
    if (e.reminder_minutes === null) continue;
    const start = Date.parse(e.occurrence_start ?? e.start_time);
    const at = new Date(start - e.reminder_minutes * 60_000).toISOString();
    if (at <= dayAhead)
      reminders.push({
        kind: 'event',
        id: e.id,
        title: e.title,
        remind_at: formatInstant(at, zone),
        due_or_start: e.occurrence_start ?? e.start_time,
      });
  }
  reminders.sort((x, y) => Date.parse(x.remind_at) - Date.parse(y.remind_at));
  return {
    user_name: status.name,
    timezone: zone,
    now: formatInstant(now, zone),
    current_location: status.current_location,
    permissions: status.permissions,
    active_projects: active.items,
    upcoming_todos: todos.items,
    // A task due on a date is overdue only once that day is over, not from its first minute.
    overdue_count: openDue.filter((r) => {
      const due = r.data['due'];
      const date = due && typeof due === 'object' && !Array.isArray(due) ? due['date'] : undefined;
      return typeof date !== 'string' || date < todayIn(zone, clock);
    }).length,
    upcoming_events: events,
    reminders: reminders.slice(0, 50),
    recent_documents: docs.items,
    pinned_notes: notes.items.slice(0, 20),
    statistics: {
      total_projects: await count(a, tenant, 'project'),
      active_projects: await count(a, tenant, 'project', ['in_progress']),
      pending_todos: await count(a, tenant, 'task', ['todo', 'in_progress', 'blocked']),
      completed_todos: await count(a, tenant, 'task', ['done']),
      total_documents: await count(a, tenant, 'document'),
      notes: await count(a, tenant, 'note'),
    },
  };
}

export interface Agenda {
  date: string;
  timezone: string;
  events: EventView[];
  tasks_due: TaskView[];
  overdue: TaskView[];
}

/** One day: its events (recurrences expanded), tasks due that day and, for today, what is overdue. */
export async function agenda(
  a: Assistant,
  tenant: string,
  date: string,
  clock: () => Date = () => new Date(),
): Promise<Agenda> {
  const zone = await a.timeZone(tenant);
  const day =
    date === 'today' ? todayIn(zone, clock) : date === 'tomorrow' ? addDays(todayIn(zone, clock), 1) : date;
  const parsed = parseTemporal(day, 'date', zone);
  if (!('date' in parsed)) throw invalid('date', 'must be a date (YYYY-MM-DD), "today" or "tomorrow"');
  const from = startOfDay(parsed.date, zone);
  const to = startOfDay(addDays(parsed.date, 1), zone);
  const events = await a.eventsBetween(tenant, from, to);
  const due = await a.store.listItems(tenant, {
    kind: 'task',
    order: 'starts_asc',
    starts_from: from,
    starts_before: to,
    limit: MAX_PAGE,
  });
  const overdue =
    parsed.date === todayIn(zone, clock)
      ? await a.store.listItems(tenant, {
          kind: 'task',
          status: ['todo', 'in_progress', 'blocked'],
          order: 'starts_asc',
          starts_before: from,
          limit: MAX_PAGE,
        })
      : [];
  return {
    date: parsed.date,
    timezone: zone,
    events,
    tasks_due: (await a.views(tenant, due, true)) as TaskView[],
    overdue: (await a.views(tenant, overdue, true)) as TaskView[],
  };
}
