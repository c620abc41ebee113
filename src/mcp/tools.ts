import { performance } from 'node:perf_hooks';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { AssistantError, invalid } from '../assistant/errors.js';
import { dashboard } from '../assistant/overview.js';
import { exportData, EXPORT_FORMATS } from '../assistant/export.js';
import { search } from '../assistant/search.js';
import type { BatchResult } from '../assistant/assistant.js';
import { StoreUnavailableError, StoreWriteError } from '../storage/model.js';
import { suggest } from '../config/suggest.js';
import { findUnstorableText } from '../unicode.js';
import { SCOPES, type CallerContext, type McpDependencies } from './context.js';
import {
  clientRef,
  cursor,
  documentType,
  id,
  itemKind,
  limit,
  noteKind,
  out,
  priority,
  projectStatus,
  recurrence,
  tags,
  taskStatus,
  timezone,
  when,
} from './schemas.js';

type Extra = {
  authInfo?: unknown;
  sessionId?: string | undefined;
  _meta?: { progressToken?: string | number } | undefined;
  sendNotification: (n: {
    method: 'notifications/progress';
    params: { progressToken: string | number; progress: number; total?: number; message?: string };
  }) => Promise<void>;
};

const READ: ToolAnnotations = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
const CREATE: ToolAnnotations = {
  readOnlyHint: false,
  destructiveHint: false,
  idempotentHint: false,
  openWorldHint: false,
};
const UPDATE: ToolAnnotations = {
  readOnlyHint: false,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
const DESTROY: ToolAnnotations = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: true,
  openWorldHint: false,
};

export interface ToolOutcome<T> {
  structured: T;
  /** Extra content blocks after the JSON text (document content). */
  extra?: CallToolResult['content'];
}

/** Tool errors are results the model can act on: what went wrong, on which field, and what to do. */
export function toolError(err: unknown, deps: McpDependencies, tool: string): CallToolResult {
  if (err instanceof AssistantError) {
    const text = [`Error (${err.code}): ${err.message}`, err.hint ? `Hint: ${err.hint}` : '']
      .filter(Boolean)
      .join('\n');
    return { isError: true, content: [{ type: 'text', text }] };
  }
  if (err instanceof StoreWriteError) {
    deps.logger.warn({ tool, reason: err.reason, err: err.message }, 'write refused by the storage');
    return {
      isError: true,
      content: [{ type: 'text', text: `Error (${err.reason}): ${err.message}\nHint: ${err.hint}` }],
    };
  }
  if (err instanceof StoreUnavailableError) {
    deps.logger.error({ tool, err: err.message }, 'storage unavailable');
    return {
      isError: true,
      content: [
        {
          type: 'text',
          text: 'Error (unavailable): the database is unavailable right now.\nHint: try again shortly.',
        },
      ],
    };
  }
  deps.logger.error(
    { tool, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) },
    'tool failed',
  );
  return {
    isError: true,
    content: [
      {
        type: 'text',
        text: 'Error (internal): the server could not complete this call.\nHint: the server log has the details; retrying may help.',
      },
    ],
  };
}

/** "unknown argument "titel" — did you mean "title"? (allowed: …)", for each argument the tool does not take. */
function unknownArguments(keys: readonly string[], shape: z.ZodRawShape): string {
  const allowed = Object.keys(shape);
  const each = keys.map((k) => {
    const hint = suggest(k, allowed);
    return `unknown argument "${k}"${hint ? ` — did you mean "${hint}"?` : ''}`;
  });
  return `${each.join('; ')} (allowed: ${allowed.join(', ') || 'none'})`;
}

/** One tool as every server registers it: its definition and schemas, and a handler given the session's deps. */
interface ToolEntry {
  readonly name: string;
  readonly config: {
    readonly title: string;
    readonly description: string;
    readonly inputSchema: z.ZodObject;
    readonly outputSchema: z.ZodObject;
    readonly annotations: ToolAnnotations;
  };
  readonly handler: (args: never, extra: Extra, session: McpDependencies) => Promise<CallToolResult>;
}

/**
 * The tool definitions, built once per assistant and clock and shared by every server of the process. Building the
 * zod input schemas of every tool for each stateful session cost about 450 KB of heap per session (measured by
 * bench/session-memory.ts); the SDK only reads them, so one copy serves all. What differs per session — who the
 * caller is, where not-found is reported — comes from the session's deps at call time.
 */
const catalogs = new WeakMap<
  McpDependencies['assistant'],
  { clock: McpDependencies['clock']; tools: ToolEntry[] }
>();

/** Registers every tool on a server. */
export function registerTools(server: McpServer, deps: McpDependencies): void {
  let catalog = catalogs.get(deps.assistant);
  if (catalog === undefined || catalog.clock !== deps.clock) {
    catalog = { clock: deps.clock, tools: buildTools(deps) };
    catalogs.set(deps.assistant, catalog);
  }
  const observe = deps.onToolCall;
  for (const t of catalog.tools) {
    server.registerTool(
      t.name,
      t.config,
      (observe === undefined
        ? (args: never, extra: Extra) => t.handler(args, extra, deps)
        : async (args: never, extra: Extra) => {
            const started = performance.now();
            let ok = false;
            try {
              const result = await t.handler(args, extra, deps);
              ok = result.isError !== true;
              return result;
            } finally {
              observe({
                tool: t.name,
                ok,
                seconds: (performance.now() - started) / 1000,
                caller: deps.caller(extra),
              });
            }
          }) as never,
    );
  }
}

/** Builds the tool definitions; `deps` gives the assistant and clock only (session parts come at call time). */
function buildTools(deps: McpDependencies): ToolEntry[] {
  const a = deps.assistant;
  const entries: ToolEntry[] = [];

  function tool<I extends z.ZodRawShape, O extends z.ZodObject>(
    name: string,
    def: {
      title: string;
      description: string;
      input: I;
      output: O;
      annotations: ToolAnnotations;
      scope?: 'read' | 'write';
    },
    run: (
      args: z.infer<z.ZodObject<I>>,
      caller: CallerContext,
      extra: Extra,
    ) => Promise<ToolOutcome<z.infer<O>>>,
  ): void {
    const scope = def.scope ?? (def.annotations.readOnlyHint ? 'read' : 'write');
    entries.push({
      name,
      config: {
        title: def.title,
        description: def.description,
        inputSchema: z.strictObject(def.input, {
          error: (issue) =>
            issue.code === 'unrecognized_keys' ? unknownArguments(issue.keys, def.input) : undefined,
        }),
        outputSchema: def.output,
        annotations: { title: def.title, ...def.annotations },
      },
      handler: (async (
        args: z.infer<z.ZodObject<I>>,
        extra: Extra,
        session: McpDependencies,
      ): Promise<CallToolResult> => {
        const caller = session.caller(extra);
        if (!caller.scopes.has(SCOPES[scope])) {
          return {
            isError: true,
            content: [
              {
                type: 'text',
                text: `Error (insufficient_scope): ${name} needs the ${SCOPES[scope]} scope.\nHint: re-authorize with scope ${SCOPES[scope]}.`,
              },
            ],
          };
        }
        const bad = findUnstorableText(args);
        if (bad !== undefined) {
          // The field path is printed with any NUL or surrogate escaped (it may be in a key).
          const field = JSON.stringify(bad.field).slice(1, -1) || 'arguments';
          return toolError(invalid(field, bad.reason, 'remove the character and retry'), session, name);
        }
        try {
          const res = await run(args, caller, extra);
          return {
            content: [{ type: 'text', text: JSON.stringify(res.structured, null, 2) }, ...(res.extra ?? [])],
            structuredContent: res.structured as Record<string, unknown>,
          };
        } catch (err) {
          if (err instanceof AssistantError && err.code === 'not_found')
            session.onNotFound?.(caller, name, err.field);
          return toolError(err, session, name);
        }
      }) as ToolEntry['handler'],
    });
  }

  const batch = (results: BatchResult[]) => ({
    structured: {
      results,
      succeeded: results.filter((r) => r.ok).length,
      failed: results.filter((r) => !r.ok).length,
    },
  });

  // ------------------------------------------------------------------ status and overview
  tool(
    'get_status',
    {
      title: 'Get status',
      description:
        'The user’s profile: name, location, devices, permissions, time zone, working hours and notes, plus where the data lives.',
      input: {},
      output: out.status,
      annotations: READ,
    },
    async (_args, c) => ({ structured: await a.getStatus(c.tenant) }),
  );

  tool(
    'update_status',
    {
      title: 'Update status',
      description: 'Change parts of the user’s profile; fields left out stay as they are.',
      input: {
        name: z.string().max(200).optional(),
        city: z.string().max(200).optional(),
        state: z.string().max(200).optional(),
        country: z.string().max(200).optional(),
        location_details: z.string().max(200).optional(),
        laptop_os: z.string().max(200).optional(),
        laptop_model: z.string().max(200).optional(),
        laptop_specs: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
        permissions: z
          .strictObject({
            file_system: z.boolean().optional(),
            browser: z.boolean().optional(),
            terminal: z.boolean().optional(),
            database: z.boolean().optional(),
            network: z.boolean().optional(),
            available_to_setup: z.array(z.string().max(64)).max(50).optional(),
          })
          .optional(),
        timezone: timezone.optional(),
        working_hours: z
          .strictObject({
            start: z.string().describe('HH:MM'),
            end: z.string().describe('HH:MM'),
            days: z
              .array(z.number().int().min(1).max(7))
              .max(7)
              .optional()
              .describe('ISO weekdays, 1 = Monday'),
          })
          .nullable()
          .optional(),
        notes: z.string().max(10000).nullable().optional(),
      },
      output: out.statusOnly,
      annotations: UPDATE,
    },
    async (args, c) => ({ structured: await a.updateStatus(c.tenant, args) }),
  );

  tool(
    'get_dashboard',
    {
      title: 'Dashboard',
      description:
        'Start here: active projects, tasks due within 7 days (and how many are overdue), events of the next 7 days, reminders due within 24 hours, recent documents, pinned notes and counts.',
      input: {},
      output: out.dashboard,
      annotations: READ,
    },
    async (_args, c) => ({ structured: await dashboard(a, c.tenant, deps.clock) }),
  );

  // ------------------------------------------------------------------ projects
  tool(
    'create_project',
    {
      title: 'Create project',
      description: 'Create a project. Its progress is derived from its tasks once it has any.',
      input: {
        name: z.string().min(1).max(300),
        description: z.string().max(20000).optional(),
        status: projectStatus.optional().describe('Default not_started'),
        priority: priority.optional().describe('Default medium'),
        start_date: when('Start').optional(),
        end_date: when('End').optional(),
        tags: tags.optional(),
        notes: z.string().max(20000).optional(),
        client_ref: clientRef.optional(),
      },
      output: out.project,
      annotations: CREATE,
    },
    async (args, c) => ({ structured: await a.createProject(c.tenant, args) }),
  );

  tool(
    'list_projects',
    {
      title: 'List projects',
      description:
        'Projects, newest first, as summaries; page with cursor. Use get_project for one project and its tasks.',
      input: {
        status: projectStatus.optional(),
        priority: priority.optional(),
        tags: tags.optional().describe('Projects with any of these tags'),
        trash: z.boolean().optional().describe('List projects in the trash instead'),
        cursor: cursor.optional(),
        limit: limit.optional(),
      },
      output: out.projects,
      annotations: READ,
    },
    async (args, c) => ({ structured: await a.listProjects(c.tenant, args) }),
  );

  tool(
    'get_project',
    {
      title: 'Get project',
      description: 'One project in full, with its tasks (up to 100).',
      input: { project_id: id('Project id') },
      output: out.projectDetail,
      annotations: READ,
    },
    async (args, c) => ({ structured: await a.getProject(c.tenant, args.project_id) }),
  );

  tool(
    'update_project',
    {
      title: 'Update project',
      description: 'Change a project’s fields; fields left out stay as they are; null clears a date or text.',
      input: {
        project_id: id('Project id'),
        name: z.string().min(1).max(300).optional(),
        description: z.string().max(20000).nullable().optional(),
        status: projectStatus.optional(),
        priority: priority.optional(),
        progress: z
          .number()
          .int()
          .min(0)
          .max(100)
          .optional()
          .describe('Manual progress, used while the project has no tasks'),
        notes: z.string().max(20000).nullable().optional(),
        tags: tags.optional(),
        start_date: when('Start').nullable().optional(),
        end_date: when('End').nullable().optional(),
      },
      output: out.projectOnly,
      annotations: UPDATE,
    },
    async ({ project_id, ...patch }, c) => ({
      structured: { project: await a.updateProject(c.tenant, project_id, patch) },
    }),
  );

  const taskFields = {
    title: z.string().min(1).max(500),
    description: z.string().max(20000).optional(),
    status: taskStatus.optional().describe('Default todo'),
    priority: priority.optional().describe('Default medium'),
    due_date: when('Due').optional(),
    reminder_date: when('When to be reminded').optional(),
    timezone: timezone.optional(),
    recurrence: recurrence
      .optional()
      .describe('Repeats from due_date; completing it creates the next occurrence'),
    tags: tags.optional(),
    client_ref: clientRef.optional(),
  };

  tool(
    'add_project_task',
    {
      title: 'Add project task',
      description: 'Add a task to a project; returns the task and the project with its updated progress.',
      input: { project_id: id('Project id'), ...taskFields },
      output: out.projectTask,
      annotations: CREATE,
    },
    async ({ project_id, ...input }, c) => ({
      structured: await a.addProjectTask(c.tenant, project_id, input),
    }),
  );

  // ------------------------------------------------------------------ todos
  tool(
    'create_todo',
    {
      title: 'Create todo',
      description:
        'Create a task (a todo), optionally in a project, with a due date or date-time, a reminder and a recurrence.',
      input: { ...taskFields, project_id: id('Project to put it in').optional() },
      output: out.todo,
      annotations: CREATE,
    },
    async (args, c) => {
      const { task, created } = await a.createTask(c.tenant, args);
      return { structured: { todo: task, created } };
    },
  );

  tool(
    'list_todos',
    {
      title: 'List todos',
      description:
        'Tasks ordered by due date (undated last), as summaries; filter by completion, status, priority, project, due range or tags.',
      input: {
        completed: z.boolean().optional().describe('true: only done; false: only open'),
        status: z.array(taskStatus).max(4).optional(),
        priority: z.array(priority).max(4).optional(),
        project_id: id('Only tasks of this project').optional(),
        due_after: when('Due at or after').optional(),
        due_before: when('Due before').optional(),
        tags: tags.optional(),
        trash: z.boolean().optional().describe('List tasks in the trash instead'),
        cursor: cursor.optional(),
        limit: limit.optional(),
      },
      output: out.todos,
      annotations: READ,
    },
    async (args, c) => ({ structured: await a.listTasks(c.tenant, args) }),
  );

  tool(
    'complete_todo',
    {
      title: 'Complete todo',
      description: 'Mark a task done. A recurring task gets its next occurrence created.',
      input: { todo_id: id('Task id') },
      output: out.completed,
      annotations: UPDATE,
    },
    async (args, c) => ({ structured: await a.completeTask(c.tenant, args.todo_id) }),
  );

  // ------------------------------------------------------------------ calendar
  tool(
    'create_calendar_event',
    {
      title: 'Create calendar event',
      description:
        'Create an event. Times without an offset are read in the event’s time zone (default: the user’s). All-day events take dates.',
      input: {
        title: z.string().min(1).max(500),
        description: z.string().max(20000).optional(),
        start_time: when('Start'),
        end_time: when('End (default: one hour after the start; the last day for all-day events)').optional(),
        all_day: z.boolean().optional(),
        timezone: timezone.optional(),
        location: z.string().max(500).optional(),
        attendees: z.array(z.string().max(320)).max(200).optional(),
        reminder_minutes: z
          .number()
          .int()
          .min(0)
          .max(40320)
          .optional()
          .describe('Minutes before the start (default 15)'),
        recurrence: recurrence.optional(),
        tags: tags.optional(),
        client_ref: clientRef.optional(),
      },
      output: out.event,
      annotations: CREATE,
    },
    async (args, c) => ({ structured: await a.createEvent(c.tenant, args) }),
  );

  tool(
    'list_calendar_events',
    {
      title: 'List calendar events',
      description:
        'Events overlapping a range (default: today and the next 30 days; at most 400 days), recurring ones expanded into occurrences, by start.',
      input: {
        start_date: when('Range start').optional(),
        end_date: when('Range end (a date includes that whole day)').optional(),
        tags: tags.optional(),
        cursor: cursor.optional(),
        limit: limit.optional(),
      },
      output: out.events,
      annotations: READ,
    },
    async (args, c) => ({ structured: await a.listEvents(c.tenant, args) }),
  );

  // ------------------------------------------------------------------ documents
  tool(
    'upload_document',
    {
      title: 'Upload document',
      description:
        'Store a file given as base64 (size-limited; see get_status). Its type is checked against its content and a SHA-256 checksum is kept.',
      input: {
        title: z.string().min(1).max(500).describe('Title; a file name with an extension also sets the type'),
        content_base64: z.string().describe('The file’s bytes, base64-encoded'),
        description: z.string().max(20000).optional(),
        tags: tags.optional(),
        mime_type: z.string().max(127).optional().describe('Declared media type, e.g. application/pdf'),
        filename: z.string().max(255).optional(),
        client_ref: clientRef.optional(),
      },
      output: out.document,
      annotations: CREATE,
    },
    async (args, c) => ({ structured: await a.uploadDocument(c.tenant, args) }),
  );

  tool(
    'create_external_document',
    {
      title: 'Link external document',
      description: 'Record a document that lives elsewhere (a URL).',
      input: {
        title: z.string().min(1).max(500),
        external_url: z.string().min(1).max(2048),
        description: z.string().max(20000).optional(),
        tags: tags.optional(),
        document_type: documentType.optional(),
        mime_type: z.string().max(127).optional(),
        client_ref: clientRef.optional(),
      },
      output: out.document,
      annotations: CREATE,
    },
    async (args, c) => ({ structured: await a.createExternalDocument(c.tenant, args) }),
  );

  tool(
    'list_documents',
    {
      title: 'List documents',
      description: 'Documents, newest first, as summaries (never their content).',
      input: {
        tags: tags.optional().describe('Documents with any of these tags'),
        document_type: documentType.optional(),
        trash: z.boolean().optional(),
        cursor: cursor.optional(),
        limit: limit.optional(),
      },
      output: out.documents,
      annotations: READ,
    },
    async (args, c) => ({ structured: await a.listDocuments(c.tenant, args) }),
  );

  tool(
    'get_document',
    {
      title: 'Get document',
      description:
        'A document’s metadata; with include_content, also its content (text as text, images as images, other files as a base64 resource).',
      input: { document_id: id('Document id'), include_content: z.boolean().optional() },
      output: out.documentDetail,
      annotations: READ,
    },
    async (args, c) => {
      const { document, content } = await a.getDocument(
        c.tenant,
        args.document_id,
        args.include_content ?? false,
      );
      const extra: CallToolResult['content'] = [];
      if (content) {
        const mime = document.mime_type ?? 'application/octet-stream';
        if (document.document_type === 'text')
          extra.push({ type: 'text', text: new TextDecoder().decode(content) });
        else if (mime.startsWith('image/'))
          extra.push({ type: 'image', data: Buffer.from(content).toString('base64'), mimeType: mime });
        else
          extra.push({
            type: 'resource',
            resource: { uri: document.uri, mimeType: mime, blob: Buffer.from(content).toString('base64') },
          });
      }
      return { structured: { document, content_included: content !== null }, extra };
    },
  );

  // ------------------------------------------------------------------ added tools
  tool(
    'search',
    {
      title: 'Search',
      description:
        'Search everything (projects, tasks, events, documents, notes) by words — all words first, then any word — plus meaning when semantic search is on. Search before adding to avoid duplicates.',
      input: {
        query: z.string().min(1).max(1000),
        kinds: z.array(itemKind).max(5).optional(),
        tags: tags.optional(),
        status: z.array(z.string().max(32)).max(10).optional(),
        date_from: when('Items dated at or after').optional(),
        date_to: when('Items dated before').optional(),
        limit: z.number().int().min(1).max(50).optional().describe('Default 10'),
      },
      output: out.search,
      annotations: READ,
    },
    async (args, c) => ({ structured: await search(a, c.tenant, args) }),
  );

  tool(
    'add_note',
    {
      title: 'Add note',
      description:
        'Remember something: a note, a fact about the user, or a preference. Pinned notes appear on the dashboard.',
      input: {
        text: z.string().min(1).max(50000),
        kind: noteKind.optional().describe('Default note'),
        pinned: z.boolean().optional(),
        tags: tags.optional(),
        client_ref: clientRef.optional(),
      },
      output: out.note,
      annotations: CREATE,
    },
    async (args, c) => ({ structured: await a.addNote(c.tenant, args) }),
  );

  tool(
    'update_items',
    {
      title: 'Update items',
      description:
        'Change several items of any kind at once. Each entry is applied on its own; failures are reported per item. Fields by kind — project: name, description, status, priority, progress, notes, tags, start_date, end_date; task: title, description, status, priority, due_date, reminder_date, timezone, recurrence, project_id, tags; event: title, description, start_time, end_time, all_day, timezone, location, attendees, reminder_minutes, recurrence, tags; document: title, description, tags, external_url; note: text, kind, pinned, tags.',
      input: {
        items: z
          .array(
            z.strictObject({
              id: id('Item id'),
              changes: z.record(z.string(), z.unknown()).describe('Fields to change'),
            }),
          )
          .min(1)
          .max(100),
      },
      output: out.batch,
      annotations: UPDATE,
    },
    async (args, c) => batch(await a.updateItems(c.tenant, args.items)),
  );

  tool(
    'delete_items',
    {
      title: 'Delete items',
      description:
        'Move items to the trash (restorable with restore_items), or with permanent: true delete them for good.',
      input: {
        ids: z.array(id('Item id')).min(1).max(100),
        permanent: z.boolean().optional().describe('Delete for good; cannot be undone'),
      },
      output: out.batch,
      annotations: DESTROY,
    },
    async (args, c) => batch(await a.deleteItems(c.tenant, args.ids, args.permanent ?? false)),
  );

  tool(
    'restore_items',
    {
      title: 'Restore items',
      description: 'Bring items back from the trash.',
      input: { ids: z.array(id('Item id')).min(1).max(100) },
      output: out.batch,
      annotations: UPDATE,
    },
    async (args, c) => batch(await a.restoreItems(c.tenant, args.ids)),
  );

  tool(
    'export',
    {
      title: 'Export',
      description: 'Export data as JSON, Markdown, or iCalendar (events and dated tasks, for calendar apps).',
      input: {
        format: z.enum(EXPORT_FORMATS),
        kinds: z.array(itemKind).max(5).optional().describe('Default: everything the format can hold'),
      },
      output: out.export,
      annotations: READ,
    },
    async (args, c, extra) => {
      const token = extra._meta?.progressToken;
      const result = await exportData(a, c.tenant, args.format, args.kinds, (done, total) => {
        if (token !== undefined) {
          void extra
            .sendNotification({
              method: 'notifications/progress',
              params: {
                progressToken: token,
                progress: done,
                total,
                message: `exported ${done} of ${total} kinds`,
              },
            })
            .catch(() => undefined);
        }
      });
      return { structured: result };
    },
  );
  return entries;
}
