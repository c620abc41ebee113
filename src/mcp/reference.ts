/**
 * docs/api.md, generated from the running server: a real McpServer (createMcpServer, as local mode builds it) over a
 * new SQLite database in a temporary folder, with a fixed clock and time zone, asked through the MCP SDK's real Client
 * for its tools, resources, templates and prompts, then driven through a fixed list of example calls whose real
 * results are shown. Ids (random in the assistant) and list cursors (which encode ids) are replaced by placeholders
 * numbered in order of first appearance, so two runs give the same text. The HTTP endpoints of HTTP mode are
 * described by hand at the end (HTTP_REFERENCE); test/docs/api-reference.test.ts checks them against a real server.
 *
 * `npm run build && node scripts/api-reference.mjs` writes docs/api.md (formatted with Prettier).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import {
  McpError,
  ResourceUpdatedNotificationSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type CallToolResult,
  type CompleteRequest,
  type GetPromptResult,
  type Prompt,
  type ReadResourceResult,
  type Resource,
  type ResourceTemplate,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { Assistant } from '../assistant/assistant.js';
import { createLogger } from '../observability/logger.js';
import { SqliteStore } from '../storage/sqlite/sqlite-store.js';
import { ChangeHub, LOCAL_CALLER, SCOPES } from './context.js';
import { createMcpServer } from './server.js';

/** The examples' clock starts here (Monday 09:00 in Paris, UTC+01:00; summer time starts on 29 March 2026). */
export const REFERENCE_START = '2026-03-02T08:00:00.000Z';
export const REFERENCE_ZONE = 'Europe/Paris';
/** The clock moves this much after every request of the examples, so every write has its own time. */
const TICK_MS = 60_000;

type Json = Record<string, unknown>;
type World = Record<string, string>;

export interface ApiReferenceOptions {
  /** The upload limit the server is built with (the configuration's default: documents.max_file_size_bytes). */
  readonly maxUploadBytes: number;
}

/** A JSON-RPC error a request ended with (a protocol error rather than a tool result). */
export interface RpcError {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

export interface ToolExample {
  readonly tool: string;
  readonly caption: string;
  readonly arguments: Json;
  /** Whether the example shows a failure on purpose. */
  readonly expectError: boolean;
  readonly result?: CallToolResult;
  readonly error?: RpcError;
  /** notifications/progress received during the call (export with a progress token). */
  readonly progress?: readonly Json[];
  /** notifications/resources/updated received during the call (after resources/subscribe). */
  readonly updated?: readonly string[];
}

export interface ResourceExample {
  readonly uri: string;
  readonly caption: string;
  readonly expectError: boolean;
  readonly result?: ReadResourceResult;
  readonly error?: RpcError;
}

export interface PromptExample {
  readonly name: string;
  readonly caption: string;
  readonly arguments: Record<string, string>;
  readonly result?: GetPromptResult;
  readonly error?: RpcError;
}

export interface CompletionExample {
  readonly caption: string;
  readonly params: CompleteRequest['params'];
  readonly values: readonly string[];
}

export interface ApiReference {
  /** docs/api.md before Prettier formats it. */
  readonly markdown: string;
  readonly instructions: string;
  readonly capabilities: Json;
  readonly tools: readonly Tool[];
  readonly resources: readonly Resource[];
  readonly resourceTemplates: readonly ResourceTemplate[];
  readonly prompts: readonly Prompt[];
  readonly toolExamples: readonly ToolExample[];
  readonly resourceExamples: readonly ResourceExample[];
  readonly promptExamples: readonly PromptExample[];
  readonly completionExamples: readonly CompletionExample[];
}

// ------------------------------------------------------------------------------------------------ the examples

type Step =
  | {
      readonly tool: string;
      readonly caption: string;
      readonly args: (w: World) => Json;
      readonly error?: boolean;
      readonly save?: (result: Json, w: World) => void;
      /** Ask for progress notifications (a progress token). */
      readonly progress?: boolean;
      /** Subscribe to this resource before the call and unsubscribe after it. */
      readonly subscribe?: string;
    }
  | { readonly resource: (w: World) => string; readonly caption: string; readonly error?: boolean }
  | { readonly prompt: string; readonly caption: string; readonly args: (w: World) => Record<string, string> }
  | { readonly complete: (w: World) => CompleteRequest['params']; readonly caption: string };

const at = (value: unknown, ...keys: (string | number)[]): string => {
  let v: unknown = value;
  for (const k of keys) v = (v as Record<string | number, unknown> | undefined)?.[k];
  if (typeof v !== 'string') throw new Error(`api reference: no string at ${keys.join('.')}`);
  return v;
};

const NOTES_TXT =
  'Kick-off with Sam and Priya\n- Launch target: end of April\n- Sam owns the design review\n';

/** The calls, in the order they run; each may use ids the earlier ones saved. */
const STEPS: readonly Step[] = [
  { tool: 'get_status', caption: 'the profile of a new database', args: () => ({}) },
  {
    tool: 'update_status',
    caption: 'set the name, the location and working hours',
    args: () => ({
      name: 'Alex Martin',
      city: 'Paris',
      country: 'France',
      timezone: 'Europe/Paris',
      working_hours: { start: '09:00', end: '18:00', days: [1, 2, 3, 4, 5] },
    }),
  },
  {
    tool: 'create_project',
    caption: 'a project with dates, tags and an idempotency key',
    args: () => ({
      name: 'Website relaunch',
      description: 'New design and copy for the company website.',
      status: 'in_progress',
      priority: 'high',
      start_date: '2026-03-02',
      end_date: '2026-04-30',
      tags: ['work', 'web'],
      client_ref: 'relaunch-2026',
    }),
    save: (r, w) => (w['project'] = at(r, 'project', 'id')),
  },
  {
    tool: 'create_project',
    caption: 'retried with the same client_ref: the first result comes back, `created: false`',
    args: () => ({ name: 'Website relaunch', client_ref: 'relaunch-2026' }),
  },
  {
    tool: 'add_project_task',
    caption: 'a task due at a local time (read in the user’s time zone)',
    args: (w) => ({
      project_id: w['project'],
      title: 'Write the home page copy',
      priority: 'high',
      due_date: '2026-03-04T17:00',
      tags: ['web'],
    }),
    save: (r, w) => (w['task1'] = at(r, 'task', 'id')),
  },
  {
    tool: 'add_project_task',
    caption: 'a second task, due after the change to summer time (the offset becomes +02:00)',
    args: (w) => ({ project_id: w['project'], title: 'Launch the new site', due_date: '2026-04-28T10:00' }),
    save: (r, w) => (w['task2'] = at(r, 'task', 'id')),
  },
  {
    tool: 'create_todo',
    caption: 'a todo with a due date and a reminder',
    args: () => ({
      title: 'Pay the electricity bill',
      due_date: '2026-03-05',
      reminder_date: '2026-03-02T18:00',
      tags: ['home'],
    }),
    save: (r, w) => (w['bill'] = at(r, 'todo', 'id')),
  },
  {
    tool: 'create_todo',
    caption: 'a weekly recurring todo',
    args: () => ({
      title: 'Water the plants',
      due_date: '2026-03-03T08:00',
      recurrence: 'FREQ=WEEKLY;BYDAY=TU',
      tags: ['home'],
    }),
    save: (r, w) => (w['plants'] = at(r, 'todo', 'id')),
  },
  {
    tool: 'create_todo',
    caption: 'an unknown argument is refused with the list of allowed ones',
    args: () => ({ titel: 'Call the bank' }),
    error: true,
  },
  {
    tool: 'create_todo',
    caption: 'a date the server cannot read',
    args: () => ({ title: 'Call the bank', due_date: 'next Friday' }),
    error: true,
  },
  { tool: 'list_todos', caption: 'open tasks by due date', args: () => ({ completed: false }) },
  {
    tool: 'list_todos',
    caption: 'one page of two, with tags',
    args: () => ({ tags: ['home', 'web'], limit: 2 }),
    save: (r, w) => (w['cursor'] = at(r, 'next_cursor')),
  },
  {
    tool: 'list_todos',
    caption: 'the next page: next_cursor passed back as cursor',
    args: (w) => ({ tags: ['home', 'web'], limit: 2, cursor: w['cursor'] }),
  },
  {
    tool: 'complete_todo',
    caption: 'completing a recurring task creates its next occurrence',
    args: (w) => ({ todo_id: w['plants'] }),
  },
  { tool: 'get_project', caption: 'the project with its tasks', args: (w) => ({ project_id: w['project'] }) },
  {
    tool: 'get_project',
    caption: 'an id that does not exist',
    args: () => ({ project_id: 'prj_doesnotexist' }),
    error: true,
  },
  {
    tool: 'update_project',
    caption: 'change the priority and add notes',
    args: (w) => ({ project_id: w['project'], priority: 'urgent', notes: 'Check the legal pages too.' }),
  },
  { tool: 'list_projects', caption: 'projects in progress', args: () => ({ status: 'in_progress' }) },
  {
    tool: 'create_calendar_event',
    caption: 'a meeting at a local time, with attendees',
    args: () => ({
      title: 'Design review',
      description: 'Review the new home page design.',
      start_time: '2026-03-03T14:00',
      end_time: '2026-03-03T15:00',
      location: 'Room 2',
      attendees: ['sam@example.com', 'priya@example.com'],
      tags: ['work'],
    }),
    save: (r, w) => (w['review'] = at(r, 'event', 'id')),
  },
  {
    tool: 'create_calendar_event',
    caption: 'a weekly event across the change to summer time (09:30 stays 09:30 local time)',
    args: () => ({
      title: 'Team stand-up',
      start_time: '2026-03-23T09:30',
      end_time: '2026-03-23T09:45',
      recurrence: 'FREQ=WEEKLY;BYDAY=MO;COUNT=3',
      reminder_minutes: 5,
      tags: ['work'],
    }),
    save: (r, w) => (w['standup'] = at(r, 'event', 'id')),
  },
  {
    tool: 'create_calendar_event',
    caption: 'an all-day event over several days',
    args: () => ({
      title: 'Spring holiday',
      start_time: '2026-04-13',
      end_time: '2026-04-17',
      all_day: true,
    }),
  },
  {
    tool: 'list_calendar_events',
    caption: 'March and April: the recurring event expanded into its occurrences',
    args: () => ({ start_date: '2026-03-01', end_date: '2026-04-30' }),
  },
  {
    tool: 'upload_document',
    caption: 'a small text file',
    args: () => ({
      title: 'kick-off-notes.txt',
      content_base64: Buffer.from(NOTES_TXT, 'utf8').toString('base64'),
      description: 'Notes from the kick-off meeting',
      tags: ['work'],
    }),
    save: (r, w) => (w['notes'] = at(r, 'document', 'id')),
  },
  {
    tool: 'create_external_document',
    caption: 'a document that lives elsewhere',
    args: () => ({
      title: 'Brand guidelines',
      external_url: 'https://example.com/brand-guidelines.pdf',
      document_type: 'pdf',
      tags: ['web'],
    }),
    save: (r, w) => (w['brand'] = at(r, 'document', 'id')),
  },
  { tool: 'list_documents', caption: 'every document', args: () => ({}) },
  {
    tool: 'get_document',
    caption: 'with its content (a text file comes back as a second text block)',
    args: (w) => ({ document_id: w['notes'], include_content: true }),
  },
  {
    tool: 'add_note',
    caption: 'a pinned fact',
    args: () => ({
      text: 'Sam prefers design reviews in the afternoon.',
      kind: 'fact',
      pinned: true,
      tags: ['sam'],
    }),
    save: (r, w) => (w['note'] = at(r, 'note', 'id')),
  },
  {
    tool: 'create_todo',
    caption: 'with a subscription to `pa://todos`: the change is notified',
    args: () => ({ title: 'Book the venue for the launch party', due_date: '2026-04-20' }),
    subscribe: 'pa://todos',
  },
  {
    tool: 'search',
    caption: 'words found in several kinds of items',
    args: () => ({ query: 'design review' }),
  },
  {
    tool: 'search',
    caption: 'restricted to tasks and notes',
    args: () => ({ query: 'launch', kinds: ['task', 'note'], limit: 5 }),
  },
  { tool: 'get_dashboard', caption: 'Monday morning', args: () => ({}) },
  {
    tool: 'update_items',
    caption: 'two changes and one unknown id: each is applied, or reported, on its own',
    args: (w) => ({
      items: [
        { id: w['task1'], changes: { status: 'in_progress' } },
        { id: w['review'], changes: { location: 'Room 3' } },
        { id: 'tsk_doesnotexist', changes: { priority: 'low' } },
      ],
    }),
  },
  { tool: 'delete_items', caption: 'to the trash', args: (w) => ({ ids: [w['brand']] }) },
  { tool: 'list_documents', caption: 'the trash', args: () => ({ trash: true }) },
  { tool: 'restore_items', caption: 'back from the trash', args: (w) => ({ ids: [w['brand']] }) },
  {
    tool: 'export',
    caption: 'events as iCalendar, with a progress token',
    args: () => ({ format: 'icalendar', kinds: ['event'] }),
    progress: true,
  },
  { tool: 'export', caption: 'notes as JSON', args: () => ({ format: 'json', kinds: ['note'] }) },
  { tool: 'export', caption: 'tasks as Markdown', args: () => ({ format: 'markdown', kinds: ['task'] }) },
  { resource: () => 'pa://notes', caption: 'the notes' },
  { resource: () => 'pa://status', caption: 'the profile' },
  { resource: () => 'pa://agenda/2026-03-03', caption: 'the agenda of Tuesday 3 March' },
  { resource: (w) => `pa://task/${w['task1']}`, caption: 'one task' },
  {
    resource: () => 'pa://task/tsk_doesnotexist',
    caption: 'an item that does not exist: error -32002',
    error: true,
  },
  { resource: () => 'pa://tasks/anything', caption: 'an unknown kind: error -32602', error: true },
  {
    complete: () => ({
      ref: { type: 'ref/resource', uri: 'pa://{kind}/{id}' },
      argument: { name: 'kind', value: 'pro' },
    }),
    caption: 'the kind of `pa://{kind}/{id}`',
  },
  {
    complete: () => ({
      ref: { type: 'ref/resource', uri: 'pa://{kind}/{id}' },
      argument: { name: 'id', value: '' },
      context: { arguments: { kind: 'project' } },
    }),
    caption: 'the ids of one kind (the most recently changed first)',
  },
  {
    complete: () => ({
      ref: { type: 'ref/resource', uri: 'pa://agenda/{date}' },
      argument: { name: 'date', value: '' },
    }),
    caption: 'the date of `pa://agenda/{date}`',
  },
  {
    complete: () => ({
      ref: { type: 'ref/prompt', name: 'meeting_prep' },
      argument: { name: 'event_id', value: '' },
    }),
    caption: 'the event of `meeting_prep` (upcoming events, soonest first)',
  },
  { prompt: 'daily_briefing', caption: 'for tomorrow', args: () => ({ date: 'tomorrow' }) },
  { prompt: 'weekly_review', caption: 'no arguments', args: () => ({}) },
  {
    prompt: 'capture',
    caption: 'an e-mail to turn into tasks and events',
    args: () => ({
      text: 'Hi Alex, can we move the design review to Thursday at 15:00? Also, please send me the brand guidelines before Friday. Sam',
    }),
  },
  {
    prompt: 'meeting_prep',
    caption: 'the design review',
    args: (w) => ({ event_id: w['review'] as string }),
  },
];

function rpcError(err: unknown): RpcError {
  if (err instanceof McpError) {
    // The client's McpError puts "MCP error <code>: " before the message it received: shown as sent.
    const prefix = `MCP error ${err.code}: `;
    return {
      code: err.code,
      message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message,
      ...(err.data !== undefined ? { data: err.data } : {}),
    };
  }
  throw err;
}

interface Run {
  instructions: string;
  capabilities: Json;
  tools: Tool[];
  resources: Resource[];
  resourceTemplates: ResourceTemplate[];
  prompts: Prompt[];
  toolExamples: ToolExample[];
  resourceExamples: ResourceExample[];
  promptExamples: PromptExample[];
  completionExamples: CompletionExample[];
  /** Everything the examples sent and received, in order: where placeholders are numbered. */
  transcript: string[];
}

async function runExamples(options: ApiReferenceOptions): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-api-reference-'));
  let now = Date.parse(REFERENCE_START);
  const clock = (): Date => new Date(now);
  const store = new SqliteStore({ path: path.join(dir, 'database.sqlite'), documentsDir: undefined });
  const hub = new ChangeHub();
  // As local mode builds it (src/servers/local-app.ts), with the defaults of a new installation.
  const assistant = new Assistant({
    store,
    clock,
    defaultTimeZone: REFERENCE_ZONE,
    maxUploadBytes: options.maxUploadBytes,
    onChange: hub.emit,
    storageInfo: { database: 'sqlite:~/.config/mcp-pa/database.sqlite', documents: 'database' },
  });
  const server = createMcpServer(
    {
      assistant,
      hub,
      logger: createLogger('silent'),
      version: 'reference',
      caller: () => LOCAL_CALLER,
      clock,
      completionTenant: LOCAL_CALLER.tenant,
    },
    await assistant.timeZone(LOCAL_CALLER.tenant),
  );
  const client = new Client({ name: 'mcp-pa-api-reference', version: '1.0.0' });
  const updated: string[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updated.push(n.params.uri);
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  try {
    await server.connect(serverSide);
    await client.connect(clientSide);
    const run: Run = {
      instructions: client.getInstructions() ?? '',
      capabilities: (client.getServerCapabilities() ?? {}) as Json,
      tools: (await client.listTools()).tools,
      resources: (await client.listResources()).resources,
      resourceTemplates: (await client.listResourceTemplates()).resourceTemplates,
      prompts: (await client.listPrompts()).prompts,
      toolExamples: [],
      resourceExamples: [],
      promptExamples: [],
      completionExamples: [],
      transcript: [],
    };
    const w: World = {};
    for (const step of STEPS) {
      if ('tool' in step) {
        const args = step.args(w);
        const progress: Json[] = [];
        if (step.subscribe) await client.subscribeResource({ uri: step.subscribe });
        updated.length = 0;
        let result: CallToolResult | undefined;
        let error: RpcError | undefined;
        try {
          result = (await client.callTool(
            { name: step.tool, arguments: args },
            undefined,
            step.progress ? { onprogress: (p) => void progress.push({ ...p }) } : undefined,
          )) as CallToolResult;
        } catch (err) {
          error = rpcError(err);
        }
        // A round trip: notifications sent during the call have arrived.
        await client.ping();
        const seen = step.subscribe ? [...updated] : [];
        if (step.subscribe) await client.unsubscribeResource({ uri: step.subscribe });
        if (result?.structuredContent && step.save) step.save(result.structuredContent, w);
        run.toolExamples.push({
          tool: step.tool,
          caption: step.caption,
          arguments: args,
          expectError: step.error === true,
          ...(result ? { result } : {}),
          ...(error ? { error } : {}),
          ...(step.progress ? { progress } : {}),
          ...(step.subscribe ? { updated: seen } : {}),
        });
        run.transcript.push(JSON.stringify([args, result ?? error]));
      } else if ('resource' in step) {
        const uri = step.resource(w);
        let result: ReadResourceResult | undefined;
        let error: RpcError | undefined;
        try {
          result = await client.readResource({ uri });
        } catch (err) {
          error = rpcError(err);
        }
        run.resourceExamples.push({
          uri,
          caption: step.caption,
          expectError: step.error === true,
          ...(result ? { result } : {}),
          ...(error ? { error } : {}),
        });
        run.transcript.push(JSON.stringify([uri, result ?? error]));
      } else if ('prompt' in step) {
        const args = step.args(w);
        let result: GetPromptResult | undefined;
        let error: RpcError | undefined;
        try {
          result = await client.getPrompt({ name: step.prompt, arguments: args });
        } catch (err) {
          error = rpcError(err);
        }
        run.promptExamples.push({
          name: step.prompt,
          caption: step.caption,
          arguments: args,
          ...(result ? { result } : {}),
          ...(error ? { error } : {}),
        });
        run.transcript.push(JSON.stringify([args, result ?? error]));
      } else {
        const params = step.complete(w);
        const values = (await client.complete(params)).completion.values;
        run.completionExamples.push({ caption: step.caption, params, values });
        run.transcript.push(JSON.stringify([params, values]));
      }
      now += TICK_MS;
    }
    return run;
  } finally {
    await client.close().catch(() => undefined);
    await server.close().catch(() => undefined);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------------ placeholders

const ID_PATTERN = /\b(prj|tsk|evt|doc|not)_[0-9a-z]{20,}\b/g;
const ID_KIND: Record<string, string> = {
  prj: 'project',
  tsk: 'task',
  evt: 'event',
  doc: 'document',
  not: 'note',
};

/** Replaces every generated id and cursor by a placeholder numbered in order of first appearance. */
function placeholders(transcript: readonly string[]): (text: string) => string {
  const ids = new Map<string, string>();
  const counts = new Map<string, number>();
  const cursors = new Map<string, string>();
  for (const entry of transcript) {
    for (const m of entry.matchAll(ID_PATTERN)) {
      if (ids.has(m[0])) continue;
      const kind = ID_KIND[m[1] as string] as string;
      const n = (counts.get(kind) ?? 0) + 1;
      counts.set(kind, n);
      ids.set(m[0], `<${kind}-id-${n}>`);
    }
    for (const m of entry.matchAll(/"next_cursor":"([A-Za-z0-9_-]+)"/g)) {
      const value = m[1] as string;
      if (!cursors.has(value)) cursors.set(value, `<cursor-${cursors.size + 1}>`);
    }
  }
  return (text) => {
    let out = text;
    for (const [value, name] of cursors) out = out.split(value).join(name);
    return out.replace(ID_PATTERN, (id) => ids.get(id) ?? id);
  };
}

// ------------------------------------------------------------------------------------------------ schemas

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const code = (v: unknown): string => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;

interface View {
  readonly title: string;
  readonly anchor: string;
  readonly schema: Json;
  readonly key: string;
  readonly source: string;
}

/** A schema's identity, ignoring its own description and $schema. */
function schemaKey(schema: Json): string {
  const { description: _d, $schema: _s, ...rest } = schema;
  return JSON.stringify(rest);
}

/** The item shapes, as the tools that return them one at a time describe them. */
function findViews(tools: readonly Tool[]): View[] {
  const sources: [string, string, string[]][] = [
    ['Project item', 'create_project', ['project']],
    ['Task item', 'create_todo', ['todo']],
    ['Event item', 'create_calendar_event', ['event']],
    ['Document item', 'upload_document', ['document']],
    ['Note item', 'add_note', ['note']],
    ['Profile', 'update_status', []],
  ];
  const views: View[] = [];
  for (const [title, toolName, keys] of sources) {
    let schema: unknown = tools.find((t) => t.name === toolName)?.outputSchema;
    for (const k of keys)
      schema = isObject(schema) ? (schema['properties'] as Json | undefined)?.[k] : undefined;
    if (!isObject(schema)) continue;
    const anchor = title.toLowerCase().replace(/ /g, '-');
    views.push({
      title,
      anchor,
      schema,
      key: schemaKey(schema),
      source: keys.length > 0 ? `\`${toolName}\` → \`${keys.join('.')}\`` : `\`${toolName}\``,
    });
  }
  return views;
}

const SAFE_INT = 9007199254740991;

class SchemaText {
  constructor(private readonly views: readonly View[]) {}

  private view(schema: Json): View | undefined {
    const key = schemaKey(schema);
    return this.views.find((v) => v.key === key);
  }

  /** Members of a union, without null; and whether null is one of them. */
  private union(schema: Json): { members: Json[]; nullable: boolean } | undefined {
    const list = (schema['anyOf'] ?? schema['oneOf']) as unknown;
    if (!Array.isArray(list)) return undefined;
    const members = list.filter(isObject);
    const nonNull = members.filter((m) => m['type'] !== 'null');
    return { members: nonNull, nullable: nonNull.length < members.length };
  }

  type(schema: Json): string {
    const view = this.view(schema);
    if (view) return `[${view.title}](#${view.anchor})`;
    if (schema['const'] !== undefined) return code(schema['const']);
    const union = this.union(schema);
    if (union) {
      const text = union.members.map((m) => this.type(m)).join(' or ');
      return union.nullable ? `${text} or null` : text;
    }
    const t = schema['type'];
    if (Array.isArray(t)) {
      const parts = t.filter((x) => x !== 'null').map((x) => this.type({ ...schema, type: x }));
      return t.includes('null') ? `${parts.join(' or ')} or null` : parts.join(' or ');
    }
    switch (t) {
      case 'array': {
        const items = isObject(schema['items']) ? schema['items'] : {};
        const inner = this.type(items);
        return inner === 'object' ? 'array of objects' : `array of ${inner}`;
      }
      case 'object': {
        const extra = schema['additionalProperties'];
        if (!isObject(schema['properties']) && isObject(extra)) {
          return `object of string to ${Object.keys(extra).length === 0 ? 'any value' : this.type(extra)}`;
        }
        return 'object';
      }
      case undefined:
        return 'any value';
      default:
        return String(t);
    }
  }

  /** Allowed values and limits, in words. */
  limits(schema: Json): string[] {
    const out: string[] = [];
    const range = (min: unknown, max: unknown, unit: string): void => {
      const lo = typeof min === 'number' && min > -SAFE_INT ? min : undefined;
      const hi = typeof max === 'number' && max < SAFE_INT ? max : undefined;
      if (lo !== undefined && hi !== undefined) out.push(`${lo}–${hi}${unit}`);
      else if (lo !== undefined && !(lo === 0 && unit === ' characters')) out.push(`at least ${lo}${unit}`);
      else if (hi !== undefined) out.push(`at most ${hi}${unit}`);
    };
    if (Array.isArray(schema['enum'])) out.push(`one of ${schema['enum'].map(code).join(', ')}`);
    range(schema['minLength'], schema['maxLength'], ' characters');
    range(schema['minimum'], schema['maximum'], '');
    range(schema['minItems'], schema['maxItems'], ' items');
    if (isObject(schema['items'])) {
      const each = this.limits(schema['items']);
      if (each.length > 0) out.push(`each ${each.join(', ')}`);
    }
    const union = this.union(schema);
    if (union?.members.length === 1) out.push(...this.limits(union.members[0] as Json));
    return out;
  }

  /** The object a field holds, when its fields should be listed under it (not for item shapes). */
  private nested(schema: Json): Json | undefined {
    if (this.view(schema)) return undefined;
    if (isObject(schema['properties'])) return schema;
    if (schema['type'] === 'array' && isObject(schema['items'])) return this.nested(schema['items']);
    const union = this.union(schema);
    if (union?.members.length === 1) return this.nested(union.members[0] as Json);
    return undefined;
  }

  /** One bullet per field (nested objects indented under their field). */
  fields(schema: Json, mode: 'input' | 'output', indent = ''): string[] {
    const props = isObject(schema['properties']) ? schema['properties'] : {};
    const required = new Set(Array.isArray(schema['required']) ? (schema['required'] as string[]) : []);
    const lines: string[] = [];
    for (const [name, raw] of Object.entries(props)) {
      if (!isObject(raw)) continue;
      const description = typeof raw['description'] === 'string' ? raw['description'] : '';
      const facts = [this.type(raw)];
      if (mode === 'input') facts.push(required.has(name) ? '**required**' : 'optional');
      else if (!required.has(name)) facts.push('may be absent');
      facts.push(...this.limits(raw));
      const dflt = mode === 'input' ? defaultIn(description) : undefined;
      if (dflt !== undefined) facts.push(`default ${/^[\w.:-]+$/.test(dflt) ? code(dflt) : dflt}`);
      const onlyDefault = dflt !== undefined && /^default:?\s+[^.;]*\.?$/i.test(description.trim());
      const text = onlyDefault ? '' : description;
      lines.push(`${indent}- \`${name}\` (${facts.join('; ')})${text ? `: ${text}` : ''}`);
      const inner = this.nested(raw);
      if (inner) lines.push(...this.fields(inner, mode, `${indent}  `));
    }
    return lines;
  }
}

/** "Default medium", "(default 25)", "(default: the user’s)" → the default's words. */
function defaultIn(description: string): string | undefined {
  const m = /(?:^|[\s(])default:?\s+([^.;)]+)/i.exec(description);
  return m ? (m[1] as string).trim() : undefined;
}

// ------------------------------------------------------------------------------------------------ rendering

const json = (value: unknown): string[] => ['```json', JSON.stringify(value, null, 2), '```'];
const slug = (heading: string): string =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');

function scopeOf(tool: Tool): string {
  return tool.annotations?.readOnlyHint === true ? SCOPES.read : SCOPES.write;
}

function renderToolResult(example: ToolExample): string[] {
  const out: string[] = [];
  if (example.error) {
    out.push('JSON-RPC error:', '', ...json(example.error));
    return out;
  }
  const result = example.result as CallToolResult;
  if (result.isError) {
    out.push('Result (a tool error):', '', ...json(result));
    return out;
  }
  out.push('Result (`structuredContent`):', '', ...json(result.structuredContent));
  const extra = result.content.slice(1);
  if (extra.length > 0) out.push('', 'Further `content` blocks after the JSON text:', '', ...json(extra));
  const content = (result.structuredContent as Json | undefined)?.['content'];
  if (example.tool === 'export' && typeof content === 'string') {
    const lang = { 'application/json': 'json' }[
      String((result.structuredContent as Json)['mime_type']).split(';')[0] as string
    ];
    out.push(
      '',
      content.includes('\r\n')
        ? '`content`, decoded (its CRLF line ends shown as plain ones):'
        : '`content`, decoded:',
      '',
      `\`\`\`\`${lang ?? 'text'}`,
      content.replace(/\r\n/g, '\n').trimEnd(),
      '````',
    );
  }
  if (example.progress && example.progress.length > 0) {
    out.push(
      '',
      'Progress notifications received during the call (`notifications/progress`):',
      '',
      ...json(example.progress),
    );
  }
  if (example.updated) {
    out.push(
      '',
      'Resources the client had subscribed to and was told about (`notifications/resources/updated`):',
      '',
      ...json(example.updated),
    );
  }
  return out;
}

function renderTool(tool: Tool, examples: readonly ToolExample[], text: SchemaText): string[] {
  const a = tool.annotations ?? {};
  const hints = ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint']
    .filter((k) => (a as Json)[k] !== undefined)
    .map((k) => `\`${k}: ${String((a as Json)[k])}\``);
  const out = [
    `### \`${tool.name}\``,
    '',
    `**${tool.title ?? a.title ?? tool.name}.** ${tool.description ?? ''}`,
    '',
    `Annotations: ${hints.join(', ')}. Scope in HTTP mode: \`${scopeOf(tool)}\`.` +
      (tool.execution?.taskSupport ? ` Task support: \`${tool.execution.taskSupport}\`.` : ''),
    '',
  ];
  const input = text.fields(tool.inputSchema as Json, 'input');
  out.push('Arguments:', '', ...(input.length > 0 ? input : ['- none']), '');
  if (tool.outputSchema) {
    out.push('Result (`structuredContent`):', '', ...text.fields(tool.outputSchema as Json, 'output'), '');
  }
  for (const example of examples) {
    out.push(`**Example: ${example.caption}.**`, '', 'Arguments:', '', ...json(example.arguments), '');
    out.push(...renderToolResult(example), '');
  }
  return out;
}

function renderResourceExample(example: ResourceExample): string[] {
  const out = [`**Example: ${example.caption}.** \`resources/read\` of \`${example.uri}\`:`, ''];
  if (example.error) return [...out, 'JSON-RPC error:', '', ...json(example.error), ''];
  for (const [i, c] of (example.result?.contents ?? []).entries()) {
    const body = 'text' in c && typeof c.text === 'string' ? c.text : '';
    out.push(`\`contents[${i}]\`: \`uri\` \`${c.uri}\`, \`mimeType\` \`${c.mimeType ?? ''}\`, \`text\`:`, '');
    out.push('```json', body, '```', '');
  }
  return out;
}

function renderPromptExample(example: PromptExample): string[] {
  const out = [`**Example: ${example.caption}.** Arguments:`, '', ...json(example.arguments), ''];
  if (example.error) return [...out, 'JSON-RPC error:', '', ...json(example.error), ''];
  const r = example.result as GetPromptResult;
  out.push(`Result: \`description\` ${code(r.description ?? '')}, and ${r.messages.length} message(s):`, '');
  for (const m of r.messages) {
    out.push(`\`${m.role}\`, ${m.content.type}:`, '');
    if (m.content.type === 'text') out.push('````text', m.content.text, '````', '');
  }
  return out;
}

function render(run: Run): string {
  const views = findViews(run.tools);
  const text = new SchemaText(views);
  const lines: string[] = [
    '# API reference',
    '',
    '<!-- Generated by `npm run build && node scripts/api-reference.mjs` from the running server (src/mcp/reference.ts); test/docs/api-reference.test.ts fails when they differ. Do not edit by hand. -->',
    '',
    'Everything a client can call. Local mode (stdio) and HTTP mode (`/mcp`) serve the same MCP tools, resources and',
    'prompts; HTTP mode adds the [HTTP endpoints](#http-endpoints) below (OAuth, health, metadata).',
    '',
    'The lists below are what the server answers to `tools/list`, `resources/list`, `resources/templates/list` and',
    '`prompts/list`. Every example is a real call through the MCP SDK client, run against a new local database with',
    `the clock at ${REFERENCE_START} (Monday 2 March 2026, 09:00 in ${REFERENCE_ZONE}, UTC+01:00; summer time starts on`,
    '29 March, so later local times show `+02:00`), moving one minute per request. Ids, which the server makes at',
    'random, are shown as `<project-id-1>`, `<task-id-2>`…, numbered in the order they first appear; list cursors as',
    '`<cursor-1>`.',
    '',
    '## Contents',
    '',
    '- [The MCP server](#the-mcp-server)',
    '- [Tools](#tools)',
    '- [Item shapes](#item-shapes)',
    '- [Resources](#resources)',
    '- [Resource templates](#resource-templates)',
    '- [Completions](#completions)',
    '- [Prompts](#prompts)',
    '- [Errors](#errors)',
    '- [HTTP endpoints](#http-endpoints)',
    '',
    '## The MCP server',
    '',
    'Server name `mcp-pa`, title `Personal Assistant`. Capabilities (`initialize` result):',
    '',
    ...json(run.capabilities),
    '',
    'The `instructions` it gives clients at `initialize` (the time zone is the user’s):',
    '',
    '```text',
    run.instructions,
    '```',
    '',
    'Conventions every tool follows:',
    '',
    '- A successful call returns `structuredContent` matching the tool’s `outputSchema`, and the same object as JSON',
    '  text in `content[0]` for clients that read only text; `get_document` adds the document’s content as further',
    '  blocks.',
    '- Arguments are checked strictly: an unknown argument or a wrong type is refused before the tool runs, naming the',
    '  argument and what is allowed. Other failures are tool results with `isError: true` and a text',
    '  `Error (<code>): <message>` followed by `Hint: <what to do>` ([Errors](#errors)).',
    '- Dates: a date (`YYYY-MM-DD`) stays a date; a date-time without an offset is read in the user’s time zone (or',
    '  the item’s `timezone`) and returned with the offset in force on that day.',
    '- Lists are paged: pass `next_cursor` back as `cursor`; it is `null` on the last page.',
    '- In HTTP mode each call needs a scope: `pa.read` for tools annotated `readOnlyHint: true`, `pa.write` for the',
    '  others ([oauth.md](oauth.md#scopes-and-step-up)). Over stdio the local user has both.',
    '',
    '## Tools',
    '',
    '| tool | title | scope | read-only | destructive | idempotent |',
    '| --- | --- | --- | --- | --- | --- |',
    ...run.tools.map((t) => {
      const a = t.annotations ?? {};
      const yes = (v: boolean | undefined): string => (v === true ? 'yes' : 'no');
      return `| [\`${t.name}\`](#${slug(t.name)}) | ${t.title ?? ''} | \`${scopeOf(t)}\` | ${yes(a.readOnlyHint)} | ${yes(a.destructiveHint)} | ${yes(a.idempotentHint)} |`;
    }),
    '',
  ];
  for (const tool of run.tools) {
    lines.push(
      ...renderTool(
        tool,
        run.toolExamples.filter((e) => e.tool === tool.name),
        text,
      ),
    );
  }

  lines.push(
    '## Item shapes',
    '',
    'The items tools and resources return, as their output schemas describe them. Every item has `kind`, `id`, `uri`',
    '(its [resource](#resource-templates)), `tags`, `created_at`, `updated_at` and `deleted_at`.',
    '',
  );
  for (const view of views) {
    lines.push(
      `### ${view.title}`,
      '',
      `As in ${view.source}:`,
      '',
      ...text.fields(view.schema, 'output'),
      '',
    );
  }

  lines.push(
    '## Resources',
    '',
    'Read with `resources/read`; each answers one `application/json` text content. With the `subscribe` capability',
    '(over stdio and in stateful HTTP sessions) a client may `resources/subscribe` to any of them, or to an item’s URI,',
    'and is sent `notifications/resources/updated` when a change makes it stale: the item, its collection, the',
    'projects for a task (progress) and the profile for a project ([example](#create_todo)).',
    '',
    '| URI | name | title | description |',
    '| --- | --- | --- | --- |',
    ...run.resources.map(
      (r) => `| \`${r.uri}\` | \`${r.name}\` | ${r.title ?? ''} | ${r.description ?? ''} |`,
    ),
    '',
  );
  for (const ex of run.resourceExamples.filter(
    (e) => !e.uri.startsWith('pa://agenda/') && !/^pa:\/\/[a-z]+\/./.test(e.uri),
  )) {
    lines.push(...renderResourceExample(ex));
  }
  lines.push(
    '## Resource templates',
    '',
    '| URI template | name | title | description |',
    '| --- | --- | --- | --- |',
    ...run.resourceTemplates.map(
      (r) => `| \`${r.uriTemplate}\` | \`${r.name}\` | ${r.title ?? ''} | ${r.description ?? ''} |`,
    ),
    '',
  );
  for (const ex of run.resourceExamples.filter(
    (e) => e.uri.startsWith('pa://agenda/') || /^pa:\/\/[a-z]+\/./.test(e.uri),
  )) {
    lines.push(...renderResourceExample(ex));
  }

  lines.push(
    '## Completions',
    '',
    '`completion/complete` offers values for the templates’ variables and for `meeting_prep`’s `event_id`.',
    '',
  );
  for (const ex of run.completionExamples) {
    lines.push(
      `**Example: ${ex.caption}.** Request params:`,
      '',
      ...json(ex.params),
      '',
      'Values:',
      '',
      ...json(ex.values),
      '',
    );
  }

  lines.push('## Prompts', '');
  for (const prompt of run.prompts) {
    lines.push(
      `### \`${prompt.name}\``,
      '',
      `**${prompt.title ?? prompt.name}.** ${prompt.description ?? ''}`,
      '',
    );
    const args = prompt.arguments ?? [];
    lines.push(
      'Arguments:',
      '',
      ...(args.length > 0
        ? args.map(
            (a) =>
              `- \`${a.name}\` (string; ${a.required ? '**required**' : 'optional'})${a.description ? `: ${a.description}` : ''}`,
          )
        : ['- none']),
      '',
    );
    for (const ex of run.promptExamples.filter((e) => e.name === prompt.name))
      lines.push(...renderPromptExample(ex));
  }

  const errorExamples = run.toolExamples.filter((e) => e.expectError);
  lines.push(
    '## Errors',
    '',
    'A tool that fails answers a result with `isError: true`, so the model can read it and retry: one text block,',
    '`Error (<code>): <message>`, then `Hint: <what to do>` when there is one. The codes: `invalid_input` (the',
    'message names the field and what is allowed), `not_found` (the id does not exist, or is not the caller’s),',
    '`conflict`, `too_large`, `insufficient_scope` (the token lacks the scope the tool needs), `disk_full` and',
    '`read_only` (the storage refused the write), `unavailable` (the database cannot be reached: retry shortly) and',
    '`internal`. Arguments that do not fit the tool’s input schema (a missing or unknown argument, a wrong type) are',
    'refused before the tool runs, also as a result with `isError: true`, whose text starts with',
    '`MCP error -32602: Input validation error` and names every problem. Requests that are not valid MCP (an unknown',
    'method, params of the wrong shape) are JSON-RPC errors: `-32602` invalid params, `-32601` method not found,',
    '`-32002` resource not found.',
    '',
    'The failing examples above:',
    '',
    ...errorExamples.map((e) => `- [\`${e.tool}\`](#${slug(e.tool)}): ${e.caption}`),
    ...run.resourceExamples
      .filter((e) => e.expectError)
      .map((e) => `- [\`resources/read\`](#resource-templates) of \`${e.uri}\`: ${e.caption}`),
    '',
  );

  lines.push(HTTP_REFERENCE);
  return placeholders(run.transcript)(lines.join('\n'));
}

/** Runs the examples against a new server and renders docs/api.md (before Prettier). */
export async function apiReference(options: ApiReferenceOptions): Promise<ApiReference> {
  const run = await runExamples(options);
  return {
    markdown: render(run),
    instructions: run.instructions,
    capabilities: run.capabilities,
    tools: run.tools,
    resources: run.resources,
    resourceTemplates: run.resourceTemplates,
    prompts: run.prompts,
    toolExamples: run.toolExamples,
    resourceExamples: run.resourceExamples,
    promptExamples: run.promptExamples,
    completionExamples: run.completionExamples,
  };
}

// ------------------------------------------------------------------------------------------------ HTTP mode

/**
 * The HTTP endpoints, written by hand (they are served by src/servers/http/ and src/auth/, which this layer does
 * not import). test/docs/api-reference.test.ts starts `mcp-pa serve` and checks that every endpoint of the
 * "Endpoint index" table answers (anything but 404), that every endpoint URL the metadata documents, the 401
 * challenge, the registration and the authorization redirect hand out is in that table, and that the metadata
 * examples list the members the real documents have.
 */
export const HTTP_REFERENCE = [
  '## HTTP endpoints',
  '',
  '<!-- Written by hand in src/mcp/reference.ts (HTTP_REFERENCE); test/docs/api-reference.test.ts checks it against a running `mcp-pa serve`. -->',
  '',
  '`mcp-pa serve` ([http-mode.md](http-mode.md)) serves everything on one HTTPS origin, written `https://HOST` below:',
  'the origin of `server.public_url` when it is set, else the address it listens on. That origin is the OAuth issuer,',
  'and `https://HOST/mcp` is the protected resource. What is served depends on `authentication`:',
  '',
  '- the embedded authorization server (the default): every endpoint below;',
  '- another issuer (`authentication.issuer`): `/mcp`, the health and metrics endpoints and the protected-resource',
  '  metadata; `/oauth/*`, `/account*` and the authorization-server metadata are that issuer’s business',
  '  ([oauth.md](oauth.md#using-keycloak-or-another-external-issuer));',
  '- authentication off (loopback only, for development): `/mcp`, `/healthz`, `/readyz` and `/metrics`, every request',
  '  served as one local user.',
  '',
  'Every response carries `X-Request-Id` (the id of its log line; [observability.md](observability.md#request-ids)),',
  '`Cache-Control: no-store` (the public metadata documents and keys: `public, max-age=300`),',
  '`X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, a',
  '`Content-Security-Policy`, and over HTTPS `Strict-Transport-Security: max-age=31536000; includeSubDomains` (not for',
  'the name `localhost`). On a loopback address, a request whose `Host` is not a loopback name (or the public URL’s)',
  'gets 403 (DNS rebinding protection). Over a rate limit the answer is 429 with `Retry-After`',
  '([security.md](security.md#7-rate-limits)); while the database cannot be reached, 503 with `Retry-After`.',
  '',
  '### Endpoint index',
  '',
  '| endpoint | authentication | what it is |',
  '| --- | --- | --- |',
  '| `POST /mcp` | access token | MCP messages: requests, notifications, responses ([below](#mcp)) |',
  '| `GET /mcp` | access token | the session’s server-to-client stream (SSE); stateful sessions only |',
  '| `DELETE /mcp` | access token | ends a session; stateful sessions only |',
  '| `OPTIONS /mcp` | none | CORS preflight for browser clients |',
  '| `GET /healthz` | none | liveness: `200 {"status":"ok"}` while the process is up |',
  '| `GET /readyz` | none | readiness: `200 {"status":"ready"}`, or `503 {"status":"unavailable","reason":"…"}` |',
  '| `GET /metrics` | metrics token | Prometheus metrics, when `metrics.token` is set ([below](#health-and-metrics)) |',
  '| `GET /.well-known/oauth-protected-resource` | none | RFC 9728 metadata of `/mcp` ([below](#protected-resource-metadata)) |',
  '| `GET /.well-known/oauth-protected-resource/mcp` | none | the same document, at the path RFC 9728 derives from `/mcp` |',
  '| `GET /.well-known/oauth-authorization-server` | none | RFC 8414 metadata ([below](#authorization-server-metadata)) |',
  '| `GET /.well-known/openid-configuration` | none | the same document |',
  '| `GET /oauth/authorize` | the user, in a browser | authorization endpoint ([below](#authorization)) |',
  '| `GET /oauth/authorize/<uid>` | the user, in a browser | where sign-in and consent send the browser back to finish |',
  '| `POST /oauth/par` | client | pushed authorization requests (RFC 9126) |',
  '| `POST /oauth/token` | client | token endpoint ([below](#token)) |',
  '| `POST /oauth/register` | none | dynamic client registration (RFC 7591) ([below](#registration)) |',
  '| `OPTIONS /oauth/register` | none | CORS preflight (registration is allowed from any origin) |',
  '| `GET /oauth/register/<client_id>` | registration access token | reads a registration (RFC 7592) |',
  '| `PUT /oauth/register/<client_id>` | registration access token | replaces a registration’s metadata |',
  '| `DELETE /oauth/register/<client_id>` | registration access token | deletes a registration |',
  '| `POST /oauth/revoke` | client | token revocation (RFC 7009) ([below](#revocation-and-introspection)) |',
  '| `POST /oauth/introspect` | client | token introspection (RFC 7662) |',
  '| `GET /oauth/jwks` | none | the public signing keys |',
  '| `GET /oauth/interaction/<uid>` | the user, in a browser | the sign-in page, or the consent page once signed in ([below](#sign-in-consent-and-connected-apps)) |',
  '| `POST /oauth/interaction/<uid>/login` | the user, in a browser | signs in |',
  '| `GET /oauth/interaction/<uid>/signup` | the user, in a browser | the sign-up page, with `authentication.allow_signup` |',
  '| `POST /oauth/interaction/<uid>/signup` | the user, in a browser | creates an account and signs in |',
  '| `POST /oauth/interaction/<uid>/consent` | the user, in a browser | Allow |',
  '| `POST /oauth/interaction/<uid>/deny` | the user, in a browser | Deny |',
  '| `GET /account/apps` | account session | connected apps, or the sign-in form without a session |',
  '| `GET /account` | account session | the same page |',
  '| `POST /account/login` | the user, in a browser | signs in to the connected-apps page |',
  '| `POST /account/revoke` | account session | revokes one application’s grant |',
  '| `POST /account/logout` | account session | signs out of the connected-apps page |',
  '',
  'Not offered: a userinfo endpoint, RP-initiated logout, and the implicit, password and client-credentials grants. Any',
  'other path answers 404.',
  '',
  '### `/mcp`',
  '',
  '[MCP Streamable HTTP](https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http):',
  'the tools, resources and prompts above, as JSON-RPC 2.0 messages. Request headers:',
  '',
  '| header | |',
  '| --- | --- |',
  '| `Authorization` | `Bearer <access token>`; a DPoP-bound token as `DPoP <access token>` with a `DPoP` proof header ([oauth.md](oauth.md#dpop)) |',
  '| `Content-Type` | `application/json` (POST) |',
  '| `Accept` | POST: both `application/json` and `text/event-stream`; GET: `text/event-stream` |',
  '| `Mcp-Session-Id` | stateful sessions: the id the `initialize` response gave, on every later request |',
  `| \`MCP-Protocol-Version\` | optional; when present, one of ${SUPPORTED_PROTOCOL_VERSIONS.map((v) => `\`${v}\``).join(', ')} |`,
  '| `Origin` | sent by browsers: must be the server’s own origin or one of `server.allowed_origins` |',
  '',
  'With stateful sessions (`server.sessions: "stateful"`, the default) a POST of `initialize` without `Mcp-Session-Id`',
  'opens a session; its answer carries the `Mcp-Session-Id` header. Sessions belong to the user and client that opened',
  'them and end after `server.session_idle_timeout_s` without requests, or on `DELETE`. With stateless sessions only',
  'POST is served, every request stands alone, and resource subscriptions are not offered.',
  '',
  'Answers:',
  '',
  '| status | when |',
  '| --- | --- |',
  '| 200 | a request: its response as an SSE stream (`Content-Type: text/event-stream`, `event: message` lines); GET: the open stream; DELETE: session ended |',
  '| 202 | a POST holding only notifications or responses |',
  '| 400 | the body is not JSON (`-32700`) or not JSON-RPC (`-32600`); `Mcp-Session-Id` missing; an unsupported `MCP-Protocol-Version` |',
  '| 401 | no token, or an invalid, expired or revoked one; `WWW-Authenticate: Bearer error="invalid_token", error_description="…", resource_metadata="https://HOST/.well-known/oauth-protected-resource/mcp", scope="pa.read pa.write"` (without `error` when there was no token) |',
  '| 403 | a foreign `Origin`; or the token lacks the scope the method or tool needs: `WWW-Authenticate: Bearer error="insufficient_scope", …, scope="…"` (step-up, [oauth.md](oauth.md#scopes-and-step-up)) |',
  '| 404 | `Mcp-Session-Id` names no session of this caller (code `-32001`): start a new one with `initialize` |',
  '| 405 | another method (`Allow` lists those served) |',
  '| 406 | `Accept` lacks a type named above |',
  '| 413 | the body is larger than `server.body_limit_mb` (default: the largest upload, base64-encoded, plus 1 MiB) |',
  '| 415 | `Content-Type` is not `application/json` |',
  '| 429 | more than `security.mcp_requests_per_minute` requests a minute from one user through one client; `Retry-After` |',
  '| 503 | too many sessions (`server.max_sessions`) or the database unreachable; `Retry-After` |',
  '',
  'Refusals have a JSON-RPC error body, for instance:',
  '',
  '```json',
  '{ "jsonrpc": "2.0", "error": { "code": -32000, "message": "Unauthorized: the token has been revoked" }, "id": null }',
  '```',
  '',
  'A session’s first exchange:',
  '',
  '```http',
  'POST /mcp HTTP/1.1',
  'Host: HOST',
  'Authorization: Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ii4uLiJ9.…',
  'Content-Type: application/json',
  'Accept: application/json, text/event-stream',
  '',
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"example","version":"1.0.0"}}}',
  '```',
  '',
  '```http',
  'HTTP/1.1 200 OK',
  'Content-Type: text/event-stream',
  'Cache-Control: no-store, no-transform',
  'Mcp-Session-Id: ea34df65-5b54-40e6-b51c-8bddb9756523',
  '',
  'event: message',
  'data: {"result":{"protocolVersion":"2025-11-25","capabilities":{…},"serverInfo":{"name":"mcp-pa","title":"Personal Assistant","version":"…"},"instructions":"…"},"jsonrpc":"2.0","id":1}',
  '```',
  '',
  'The client then POSTs `notifications/initialized` (answered 202) and its requests, each with `Mcp-Session-Id` and',
  '`MCP-Protocol-Version: 2025-11-25`.',
  '',
  '### Health and metrics',
  '',
  '`GET /healthz` answers `200 {"status":"ok"}` while the process runs. `GET /readyz` answers `200 {"status":"ready"}`',
  'when the database answers and its schema is current, else `503 {"status":"unavailable","reason":"…"}` (also while',
  'shutting down). Neither needs authentication; behind trusted proxies both also answer plain HTTP.',
  '',
  '`GET /metrics` is served on this listener only when `metrics.token` is set, to `Authorization: Bearer <metrics.token>`:',
  '200 with the Prometheus text format; without the token, 401 with `WWW-Authenticate: Bearer realm="metrics"`.',
  '`metrics.port` adds a separate plain-HTTP listener for `GET /metrics` ([observability.md](observability.md#metrics)).',
  '`server.http_redirect_port` adds a plain-HTTP listener that answers GET and HEAD with 308 to the same path over HTTPS',
  'and every other method with 403.',
  '',
  '### Protected resource metadata',
  '',
  '`GET https://HOST/.well-known/oauth-protected-resource/mcp` (or without `/mcp`), readable from any origin',
  '(`Access-Control-Allow-Origin: *`, `OPTIONS` preflight answered); other methods get 405:',
  '',
  '```json',
  '{',
  '  "resource": "https://HOST/mcp",',
  '  "authorization_servers": ["https://HOST"],',
  '  "scopes_supported": ["pa.read", "pa.write"],',
  '  "bearer_methods_supported": ["header"],',
  '  "resource_name": "mcp-pa",',
  '  "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "Ed25519"]',
  '}',
  '```',
  '',
  'With client certificates (`server.tls_client_ca`) it adds `"tls_client_certificate_bound_access_tokens": true`; with',
  'another issuer, `authorization_servers` names that issuer.',
  '',
  '### Authorization server metadata',
  '',
  '`GET https://HOST/.well-known/oauth-authorization-server` and `GET https://HOST/.well-known/openid-configuration`',
  'answer the same document, with the default settings:',
  '',
  '```json',
  '{',
  '  "issuer": "https://HOST",',
  '  "authorization_endpoint": "https://HOST/oauth/authorize",',
  '  "token_endpoint": "https://HOST/oauth/token",',
  '  "registration_endpoint": "https://HOST/oauth/register",',
  '  "pushed_authorization_request_endpoint": "https://HOST/oauth/par",',
  '  "revocation_endpoint": "https://HOST/oauth/revoke",',
  '  "introspection_endpoint": "https://HOST/oauth/introspect",',
  '  "jwks_uri": "https://HOST/oauth/jwks",',
  '  "response_types_supported": ["code"],',
  '  "response_modes_supported": ["form_post", "fragment", "query"],',
  '  "grant_types_supported": ["authorization_code", "refresh_token"],',
  '  "code_challenge_methods_supported": ["S256"],',
  '  "scopes_supported": ["openid", "offline_access", "pa.read", "pa.write"],',
  '  "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "private_key_jwt"],',
  '  "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "PS256", "RS256", "EdDSA", "Ed25519"],',
  '  "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "Ed25519"],',
  '  "id_token_signing_alg_values_supported": ["ES256"],',
  '  "subject_types_supported": ["public"],',
  '  "claims_supported": ["sub", "sid", "auth_time", "iss"],',
  '  "claim_types_supported": ["normal"],',
  '  "claims_parameter_supported": false,',
  '  "request_uri_parameter_supported": false,',
  '  "authorization_response_iss_parameter_supported": true,',
  '  "client_id_metadata_document_supported": true',
  '}',
  '```',
  '',
  'The settings change some members: `authentication.pkce_methods` (`code_challenge_methods_supported`),',
  '`authentication.client_auth_methods` (`token_endpoint_auth_methods_supported`), `tls_client_auth` with a client CA',
  '(`mtls_endpoint_aliases`, `tls_client_certificate_bound_access_tokens`), `features.dynamic_client_registration`',
  '(`registration_endpoint`) and `authentication.client_id_metadata_documents`.',
  '',
  '### Authorization',
  '',
  '`GET /oauth/authorize` starts the authorization code flow in the user’s browser (`POST` is not served). Query',
  'parameters:',
  '',
  '- `response_type=code` (the only one), `client_id`, and `redirect_uri`: one the client registered, byte for byte (a',
  '  native app’s loopback URI on any port);',
  '- `code_challenge` and `code_challenge_method=S256` (PKCE is required; `plain` only if configured);',
  '- `state`, and optionally `scope` (default `pa.read pa.write`; also `openid`, `offline_access`), `resource` (must be',
  '  `https://HOST/mcp`, the default), `prompt`, `nonce`;',
  '- or, after a pushed request, only `client_id` and `request_uri`.',
  '',
  'It answers `303` to `/oauth/interaction/<uid>`, where the user signs in and allows the application; the browser comes',
  'back through `/oauth/authorize/<uid>` and is sent to `redirect_uri` with `code`, `state` and `iss`, or with',
  '`error=access_denied` when the user chose Deny. A request with a bad `client_id` or `redirect_uri` gets an error page',
  '(400); other errors go to `redirect_uri`, except for a client the operator did not add while nobody is signed in',
  '(a page then shows where the error would go).',
  '',
  '`POST /oauth/par` takes the same parameters with the client’s authentication and answers `201` with',
  '`{"expires_in":60,"request_uri":"urn:ietf:params:oauth:request_uri:…"}`.',
  '',
  '### Token',
  '',
  '`POST /oauth/token`, `application/x-www-form-urlencoded`:',
  '',
  '- `grant_type=authorization_code` with `code`, `redirect_uri` and `code_verifier`;',
  '- `grant_type=refresh_token` with `refresh_token` (and optionally a narrower `scope`);',
  '- and optionally `resource=https://HOST/mcp`, the only resource (the default; any other is refused).',
  '',
  'The client authenticates as it registered: a public client sends `client_id` in the body; `client_secret_basic`',
  'uses `Authorization: Basic` (a `client_secret` in the body is refused); `private_key_jwt` sends `client_assertion_type`',
  'and `client_assertion` (its `aud` exactly the issuer, expiring within 5 minutes); `tls_client_auth` presents its',
  'certificate. A `DPoP` proof header makes the tokens DPoP-bound (`token_type: "DPoP"`). Answer:',
  '',
  '```json',
  '{',
  '  "access_token": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ii4uLiJ9.…",',
  '  "expires_in": 900,',
  '  "refresh_token": "kYDu5pSCpe1osDK30dBk_V0J_FGFIUQxKIhGHPykpHK",',
  '  "scope": "pa.read pa.write",',
  '  "token_type": "Bearer"',
  '}',
  '```',
  '',
  'plus an `id_token` when `openid` was granted. The access token is an ES256 JWT (`typ: at+jwt`) with `aud`',
  '`https://HOST/mcp` ([oauth.md](oauth.md#tokens)); every refresh returns a new refresh token and retires the old one.',
  'Errors are `400` (`invalid_grant`, `invalid_request`, `invalid_target`, …) or `401` (`invalid_client`) with',
  '`{"error":"…","error_description":"…"}`.',
  '',
  '### Registration',
  '',
  '`POST /oauth/register` with the client’s metadata as JSON (while `features.dynamic_client_registration` is on):',
  '',
  '```json',
  '{',
  '  "redirect_uris": ["https://app.example.com/callback"],',
  '  "client_name": "Example app",',
  '  "token_endpoint_auth_method": "client_secret_basic"',
  '}',
  '```',
  '',
  '`redirect_uris` is required; `token_endpoint_auth_method` defaults to `none` (a public client); `grant_types`,',
  '`response_types`, `jwks` or `jwks_uri`, `software_id` and `software_version` are accepted too. The answer,',
  '`201`:',
  '',
  '```json',
  '{',
  '  "application_type": "web",',
  '  "client_id": "dcr_rv4FpeQjfNCM3q0Tg7xiUA",',
  '  "client_id_issued_at": 1795867692,',
  '  "client_name": "Example app",',
  '  "client_secret": "_ic_AbRCllTEINMcxXODYulL7RW-fezWssdSQ_g7v3DxItlOi_FMsiAAiRlUqc_FcNkMPH1M30q5kGWEBEJtxw",',
  '  "client_secret_expires_at": 0,',
  '  "dpop_bound_access_tokens": false,',
  '  "grant_types": ["authorization_code", "refresh_token"],',
  '  "id_token_signed_response_alg": "ES256",',
  '  "redirect_uris": ["https://app.example.com/callback"],',
  '  "registration_access_token": "CX_gjTeIQAhgQedyTSQQ-2tAfORR7rNpPTDJ9NYg1b7",',
  '  "registration_client_uri": "https://HOST/oauth/register/dcr_rv4FpeQjfNCM3q0Tg7xiUA",',
  '  "require_auth_time": false,',
  '  "require_pushed_authorization_requests": false,',
  '  "response_types": ["code"],',
  '  "subject_type": "public",',
  '  "token_endpoint_auth_method": "client_secret_basic"',
  '}',
  '```',
  '',
  'A refused registration answers `400` with `invalid_redirect_uri` or `invalid_client_metadata` and the reason',
  '([oauth.md](oauth.md#dynamic-registration)). With `Authorization: Bearer <registration_access_token>`,',
  '`GET /oauth/register/<client_id>` answers the metadata (200), `PUT` replaces it (200, with a new',
  '`registration_access_token`) and `DELETE` removes the client (204); a missing or wrong token gets 401.',
  '',
  '### Revocation and introspection',
  '',
  '`POST /oauth/revoke` and `POST /oauth/introspect` take `token` (and optionally `token_type_hint`), form-encoded,',
  'with the client’s authentication as at the token endpoint; a client may name only its own tokens. Revocation answers',
  '200 with an empty body whether or not the token was valid; revoking an access token or a refresh token ends the',
  'whole grant. Introspection answers `{"active":false}` or, for a live access token:',
  '',
  '```json',
  '{',
  '  "active": true,',
  '  "sub": "u_z337HqpjRyYD1OGiPwn3jA",',
  '  "client_id": "dcr_rYKHxxj7-BmwvWHR1nGiUA",',
  '  "scope": "pa.read pa.write",',
  '  "exp": 1795868592,',
  '  "iat": 1795867692,',
  '  "iss": "https://HOST",',
  '  "aud": "https://HOST/mcp",',
  '  "jti": "7Mw9UbPdbBzIbMuS-n2leJaAHNZlQpRm3mmTZEj-09Q",',
  '  "token_type": "Bearer"',
  '}',
  '```',
  '',
  '`GET /oauth/jwks` answers the public keys that sign tokens: `{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"…","x":"…","y":"…"}]}`',
  '(several during a key rotation).',
  '',
  '### Sign-in, consent and connected apps',
  '',
  'HTML pages for people, not programs ([oauth.md](oauth.md#connected-apps)). Every form carries a `csrf` field and must',
  'be posted from the server’s own origin (else 403); every POST that succeeds answers `303`.',
  '',
  '- `GET /oauth/interaction/<uid>` shows the sign-in form (fields `username`, `password`), then the consent page (the',
  '  application, its client id, where it sends you back, the scopes). An expired or unknown `<uid>` gets a 400 page.',
  '- `POST /oauth/interaction/<uid>/login`: a wrong password, an unknown user, a disabled account and a lockout all',
  '  answer the same page (401, or 429 with `Retry-After` when locked).',
  '- `POST …/consent` records the grant and goes on to the client; `POST …/deny` sends `error=access_denied`.',
  '- `GET …/signup` and `POST …/signup` (fields `username`, `password`) exist with `authentication.allow_signup`.',
  '- `GET /account/apps` lists the applications holding a grant, with a Revoke button each (`POST /account/revoke`,',
  '  field `grant`); without an account session it shows a sign-in form (`POST /account/login`). `POST /account/logout`',
  '  ends that session.',
  '',
].join('\n');
