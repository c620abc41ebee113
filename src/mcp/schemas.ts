import { z } from 'zod';
import {
  DOCUMENT_TYPES,
  NOTE_KINDS,
  PRIORITIES,
  PROJECT_STATUSES,
  TASK_STATUSES,
  documentView,
  eventView,
  itemView,
  noteView,
  projectView,
  statusView,
  taskView,
} from '../assistant/views.js';
import { ITEM_KINDS } from '../storage/model.js';

const WHEN =
  'A date (YYYY-MM-DD) or a date-time (YYYY-MM-DDTHH:MM[:SS], optionally with Z or an offset such as +02:00); a time without offset is read in the user’s time zone';

export const when = (what: string) => z.string().max(64).describe(`${what}. ${WHEN}.`);
export const id = (what: string) => z.string().min(1).max(128).describe(what);
export const tags = z.array(z.string().max(64)).max(50).describe('Tags (free-form labels)');
export const clientRef = z
  .string()
  .min(1)
  .max(200)
  .describe('Optional idempotency key: retrying a create with the same client_ref returns the first result');
export const cursor = z.string().max(512).describe('next_cursor from the previous page');
export const limit = z.number().int().min(1).max(100).describe('Page size (1–100, default 25)');
export const timezone = z
  .string()
  .max(64)
  .describe('IANA time zone such as Europe/Paris (default: the user’s)');
export const recurrence = z
  .string()
  .max(500)
  .describe('RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO,WE or FREQ=MONTHLY;BYMONTHDAY=1;COUNT=6');

export const projectStatus = z.enum(PROJECT_STATUSES);
export const taskStatus = z.enum(TASK_STATUSES);
export const priority = z.enum(PRIORITIES);
export const documentType = z.enum(DOCUMENT_TYPES);
export const noteKind = z.enum(NOTE_KINDS);
export const itemKind = z.enum(ITEM_KINDS);

const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), next_cursor: z.string().nullable().describe('null on the last page') });

export const out = {
  status: statusView.extend({ system_info: z.record(z.string(), z.unknown()) }),
  statusOnly: statusView,
  project: z.object({
    project: projectView,
    created: z.boolean().describe('false when client_ref matched an earlier create'),
  }),
  projectOnly: z.object({ project: projectView }),
  projectDetail: z.object({ project: projectView, tasks: z.array(taskView), tasks_truncated: z.boolean() }),
  projectTask: z.object({ project: projectView, task: taskView, created: z.boolean() }),
  projects: page(projectView),
  todo: z.object({ todo: taskView, created: z.boolean() }),
  todos: page(taskView),
  completed: z.object({
    todo: taskView,
    next: taskView.nullable().describe('The next occurrence of a recurring task'),
    already_completed: z.boolean(),
  }),
  event: z.object({ event: eventView, created: z.boolean() }),
  events: page(eventView).extend({ range: z.object({ start: z.string(), end: z.string() }) }),
  document: z.object({ document: documentView, created: z.boolean() }),
  documentDetail: z.object({ document: documentView, content_included: z.boolean() }),
  documents: page(documentView),
  note: z.object({ note: noteView, created: z.boolean() }),
  batch: z.object({
    results: z.array(
      z.object({ id: z.string(), ok: z.boolean(), error: z.string().nullable(), item: itemView.nullable() }),
    ),
    succeeded: z.number().int(),
    failed: z.number().int(),
  }),
  search: z.object({
    query: z.string(),
    mode: z.enum(['text', 'hybrid']),
    matched: z.enum(['all_words', 'any_word', 'semantic_only', 'none']),
    note: z.string().nullable(),
    results: z.array(
      z.object({
        id: z.string(),
        kind: itemKind,
        title: z.string(),
        uri: z.string(),
        snippet: z.string(),
        score: z.number().describe('Rank score: compare within one result list only'),
        matched_by: z.array(z.enum(['text', 'semantic'])),
        item: itemView,
      }),
    ),
  }),
  export: z.object({
    format: z.enum(['json', 'markdown', 'icalendar']),
    mime_type: z.string(),
    counts: z.record(z.string(), z.number()),
    content: z.string(),
  }),
  dashboard: z.object({
    user_name: z.string(),
    timezone: z.string(),
    now: z.string(),
    current_location: statusView.shape.current_location,
    permissions: statusView.shape.permissions,
    active_projects: z.array(projectView),
    upcoming_todos: z.array(taskView),
    overdue_count: z.number().int(),
    upcoming_events: z.array(eventView),
    reminders: z.array(
      z.object({
        kind: z.enum(['task', 'event']),
        id: z.string(),
        title: z.string(),
        remind_at: z.string(),
        due_or_start: z.string().nullable(),
      }),
    ),
    recent_documents: z.array(documentView),
    pinned_notes: z.array(noteView),
    statistics: z.object({
      total_projects: z.number().int(),
      active_projects: z.number().int(),
      pending_todos: z.number().int(),
      completed_todos: z.number().int(),
      total_documents: z.number().int(),
      notes: z.number().int(),
    }),
  }),
};
