import { z } from 'zod';

/** What the assistant returns. These schemas are also the MCP tools' output schemas. */

export const PROJECT_STATUSES = ['not_started', 'in_progress', 'on_hold', 'completed', 'cancelled'] as const;
export const TASK_STATUSES = ['todo', 'in_progress', 'done', 'blocked'] as const;
export const PRIORITIES = ['low', 'medium', 'high', 'urgent'] as const;
export const DOCUMENT_TYPES = ['pdf', 'image', 'text', 'spreadsheet', 'presentation', 'other'] as const;
export const NOTE_KINDS = ['note', 'fact', 'preference'] as const;

const common = {
  id: z.string(),
  uri: z.string().describe('Resource URI of the item'),
  tags: z.array(z.string()),
  created_at: z.string(),
  updated_at: z.string(),
  deleted_at: z.string().nullable().describe('Set while the item is in the trash'),
};

export const projectView = z.object({
  kind: z.literal('project'),
  ...common,
  name: z.string(),
  description: z.string().nullable(),
  status: z.enum(PROJECT_STATUSES),
  priority: z.enum(PRIORITIES),
  start_date: z.string().nullable(),
  end_date: z.string().nullable(),
  progress: z.number().int().min(0).max(100),
  progress_source: z.enum(['tasks', 'manual']).describe('tasks: derived from the project’s tasks'),
  task_counts: z.object({ total: z.number().int(), done: z.number().int() }),
  notes: z.string().nullable(),
});
export type ProjectView = z.infer<typeof projectView>;

export const taskView = z.object({
  kind: z.literal('task'),
  ...common,
  title: z.string(),
  description: z.string().nullable(),
  status: z.enum(TASK_STATUSES),
  priority: z.enum(PRIORITIES),
  project_id: z.string().nullable(),
  due_date: z.string().nullable().describe('A date (YYYY-MM-DD) or a date-time with the user’s offset'),
  timezone: z.string().nullable(),
  reminder_date: z.string().nullable(),
  recurrence: z.string().nullable(),
  completed: z.boolean(),
  completed_at: z.string().nullable(),
});
export type TaskView = z.infer<typeof taskView>;

export const eventView = z.object({
  kind: z.literal('event'),
  ...common,
  title: z.string(),
  description: z.string().nullable(),
  start_time: z.string(),
  end_time: z.string(),
  all_day: z.boolean(),
  timezone: z.string(),
  location: z.string().nullable(),
  attendees: z.array(z.string()),
  reminder_minutes: z.number().int().nullable(),
  recurrence: z.string().nullable(),
  occurrence_start: z
    .string()
    .nullable()
    .describe('For an occurrence of a recurring event in a listing: when this occurrence starts'),
});
export type EventView = z.infer<typeof eventView>;

export const documentView = z.object({
  kind: z.literal('document'),
  ...common,
  title: z.string(),
  description: z.string().nullable(),
  document_type: z.enum(DOCUMENT_TYPES),
  mime_type: z.string().nullable(),
  filename: z.string().nullable(),
  size_bytes: z.number().int(),
  checksum: z.string().nullable().describe('SHA-256 of the content, hex'),
  external_url: z.string().nullable(),
  storage: z.enum(['database', 'folder', 'external', 'missing']),
});
export type DocumentView = z.infer<typeof documentView>;

export const noteView = z.object({
  kind: z.literal('note'),
  ...common,
  title: z.string(),
  text: z.string(),
  note_kind: z.enum(NOTE_KINDS),
  pinned: z.boolean(),
});
export type NoteView = z.infer<typeof noteView>;

export const itemView = z.discriminatedUnion('kind', [
  projectView,
  taskView,
  eventView,
  documentView,
  noteView,
]);
export type ItemView = z.infer<typeof itemView>;

export const statusView = z.object({
  name: z.string(),
  current_location: z
    .object({
      city: z.string().nullable(),
      state: z.string().nullable(),
      country: z.string().nullable(),
      details: z.string().nullable(),
    })
    .nullable(),
  laptop_details: z
    .object({
      os: z.string().nullable(),
      model: z.string().nullable(),
      specs: z.record(z.string(), z.unknown()).nullable(),
    })
    .nullable(),
  permissions: z.object({
    file_system: z.boolean(),
    browser: z.boolean(),
    terminal: z.boolean(),
    database: z.boolean(),
    network: z.boolean(),
    available_to_setup: z.array(z.string()),
  }),
  timezone: z.string(),
  working_hours: z
    .object({ start: z.string(), end: z.string(), days: z.array(z.number().int().min(1).max(7)) })
    .nullable(),
  notes: z.string().nullable(),
  active_projects: z.array(z.string()).describe('Ids of projects in progress'),
  last_updated: z.string().nullable(),
});
export type StatusView = z.infer<typeof statusView>;

export const pageInfo = {
  next_cursor: z.string().nullable().describe('Pass as cursor to get the next page; null on the last page'),
};
