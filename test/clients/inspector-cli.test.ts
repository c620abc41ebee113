/**
 * A real third-party MCP client against local mode: the MCP Inspector's CLI (`mcp-inspector-cli --cli`, package
 * @modelcontextprotocol/inspector-cli) spawns the built `mcp-pa` over stdio itself, with the environment given by its
 * `-e KEY=VALUE` options, and prints each answer as JSON on stdout. The test lists the tools, creates and completes a
 * todo, and reads the data back both through a second inspector run and straight from the SQLite file.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, connectCli, tempDir } from '../support/helpers.js';

const INSPECTOR_PACKAGE = path.join(ROOT, 'node_modules/@modelcontextprotocol/inspector-cli');
const INSPECTOR_BIN = path.join(INSPECTOR_PACKAGE, 'build/cli.js');
/**
 * inspector-cli 1.0.3 finds its own package.json with `fs.existsSync('../package.json')` — relative to the
 * working directory — before importing it relative to its module; from any other folder it imports a file that does
 * not exist and exits. Running it from its own build folder makes both agree (a bug of the tool, not of mcp-pa).
 */
const INSPECTOR_CWD = path.join(INSPECTOR_PACKAGE, 'build');
const RUN_TIMEOUT_MS = 45_000;
/** Each run starts three Node processes (launcher, CLI, mcp-pa): about 2 s, over 10 s on a loaded 2-core machine. */
const TEST_TIMEOUT_MS = 120_000;

interface InspectorRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Every inspector process still running (killed in afterAll if a test gave up on one). */
const running = new Set<number>();

/** Runs `mcp-inspector-cli --cli -e … node dist/cli.js <args>` to its end (bounded). */
function inspector(dataDir: string, home: string, args: readonly string[]): Promise<InspectorRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [
        INSPECTOR_BIN,
        '--cli',
        '-e',
        `MCP_DATA_DIR=${dataDir}`,
        '-e',
        'MCP_LOG_LEVEL=warn',
        process.execPath,
        CLI,
        ...args,
      ],
      {
        cwd: INSPECTOR_CWD,
        // No inherited environment: HOME points at a temporary folder, so nothing can reach the real user's data.
        env: { PATH: process.env['PATH'] ?? '', HOME: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    if (child.pid !== undefined) running.add(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`inspector did not finish within ${RUN_TIMEOUT_MS} ms: ${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) running.delete(child.pid);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The JSON the inspector printed (its whole stdout), after checking that it exited 0. */
function output(run: InspectorRun): Record<string, unknown> {
  expect({ code: run.code, signal: run.signal }, run.stderr).toEqual({ code: 0, signal: null });
  const parsed: unknown = JSON.parse(run.stdout);
  expect(parsed).toBeTypeOf('object');
  return parsed as Record<string, unknown>;
}

/** A tools/call answer: not an error, its structured content (and the same JSON as its text content). */
function toolResult(run: InspectorRun): Record<string, unknown> {
  const result = output(run);
  const content = result['content'] as { type: string; text?: string }[];
  expect(result['isError'] ?? false, JSON.stringify(content)).toBe(false);
  const structured = result['structuredContent'] as Record<string, unknown>;
  expect(structured).toBeTypeOf('object');
  expect(JSON.parse(content[0]?.text ?? 'null')).toEqual(structured);
  return structured;
}

interface TaskRow {
  id: string;
  kind: string;
  title: string;
  status: string | null;
  priority: string | null;
  tags: string;
  data: string;
  deleted_at: string | null;
}

describe('MCP Inspector CLI against local mode (stdio, SQLite)', () => {
  let data: { dir: string; cleanup: () => void };
  let home: { dir: string; cleanup: () => void };
  const timings: Record<string, number> = {};
  const title = `Inspector todo ${Math.random().toString(36).slice(2, 8)}`;
  let todoId = '';

  const run = async (label: string, args: readonly string[]): Promise<InspectorRun> => {
    const r = await inspector(data.dir, home.dir, args);
    timings[label] = r.ms;
    return r;
  };
  const dbFile = () => path.join(data.dir, 'database.sqlite');
  const taskRow = (id: string): TaskRow | undefined => {
    const db = new Database(dbFile(), { readonly: true });
    try {
      return db
        .prepare('SELECT id, kind, title, status, priority, tags, data, deleted_at FROM items WHERE id = ?')
        .get(id) as TaskRow | undefined;
    } finally {
      db.close();
    }
  };

  beforeAll(() => {
    data = tempDir('mcp-pa-inspector-data-');
    home = tempDir('mcp-pa-inspector-home-');
  });

  afterAll(() => {
    for (const pid of running) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    data?.cleanup();
    home?.cleanup();
    console.info(`inspector-cli runs (ms): ${JSON.stringify(timings)}`);
  });

  it(
    'lists the same tools the MCP SDK client sees, with their schemas',
    async () => {
      const listed = output(await run('tools/list', ['--method', 'tools/list']));
      const tools = listed['tools'] as {
        name: string;
        inputSchema: { type: string };
        outputSchema?: unknown;
      }[];
      const names = tools.map((t) => t.name);
      expect(names).toEqual(
        expect.arrayContaining([
          'get_status',
          'get_dashboard',
          'create_project',
          'create_todo',
          'list_todos',
          'complete_todo',
          'create_calendar_event',
          'add_note',
          'search',
          'export',
        ]),
      );
      expect(new Set(names).size).toBe(names.length);
      for (const t of tools) {
        expect(t.inputSchema.type, t.name).toBe('object');
        expect(t.outputSchema, t.name).toBeTypeOf('object');
      }
      // The -e option reached the server: its database was created in MCP_DATA_DIR.
      expect(existsSync(dbFile())).toBe(true);

      // The same list as the MCP SDK's own client gets from a separate server process on another folder.
      const other = tempDir('mcp-pa-inspector-sdk-');
      const sdk = await connectCli({ HOME: other.dir, MCP_DATA_DIR: other.dir, MCP_LOG_LEVEL: 'warn' });
      try {
        const viaSdk = (await sdk.client.listTools()).tools.map((t) => t.name);
        expect([...names].sort()).toEqual([...viaSdk].sort());
      } finally {
        await sdk.client.close();
        other.cleanup();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'creates a todo with typed arguments, stored in the SQLite file',
    async () => {
      const created = toolResult(
        await run('tools/call create_todo', [
          '--method',
          'tools/call',
          '--tool-name',
          'create_todo',
          '--tool-arg',
          `title=${title}`,
          'priority=high',
          'tags=["inspector","cli"]',
          'due_date=2031-05-04',
        ]),
      );
      expect(created['created']).toBe(true);
      const todo = created['todo'] as Record<string, unknown>;
      expect(todo['title']).toBe(title);
      expect(todo['priority']).toBe('high');
      expect(todo['tags']).toEqual(['inspector', 'cli']);
      expect(todo['completed']).toBe(false);
      expect(String(todo['due_date'])).toContain('2031-05-04');
      todoId = String(todo['id']);
      expect(todoId).toMatch(/^tsk_/);

      // Read back from the database file the server wrote (not through MCP).
      const row = taskRow(todoId);
      expect(row).toBeDefined();
      expect(row?.kind).toBe('task');
      expect(row?.title).toBe(title);
      expect(row?.priority).toBe('high');
      expect(row?.status).toBe('todo');
      expect(JSON.parse(row?.tags ?? '[]')).toEqual(['inspector', 'cli']);
      expect(row?.deleted_at).toBeNull();
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'reads it back, completes it and filters by a boolean argument, each in a new process',
    async () => {
      expect(todoId, 'the create test ran').not.toBe('');
      const open = toolResult(
        await run('tools/call list_todos', [
          '--method',
          'tools/call',
          '--tool-name',
          'list_todos',
          '--tool-arg',
          'completed=false',
        ]),
      );
      const openIds = (open['items'] as { id: string }[]).map((t) => t.id);
      expect(openIds).toContain(todoId);

      const done = toolResult(
        await run('tools/call complete_todo', [
          '--method',
          'tools/call',
          '--tool-name',
          'complete_todo',
          '--tool-arg',
          `todo_id=${todoId}`,
        ]),
      );
      expect(JSON.stringify(done)).toContain(todoId);
      expect(taskRow(todoId)?.status).toBe('done');

      const completed = toolResult(
        await run('tools/call list_todos completed', [
          '--method',
          'tools/call',
          '--tool-name',
          'list_todos',
          '--tool-arg',
          'completed=true',
        ]),
      );
      const items = completed['items'] as { id: string; title: string; completed: boolean }[];
      const mine = items.find((t) => t.id === todoId);
      expect(mine?.title).toBe(title);
      expect(mine?.completed).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'shows a tool error (an unknown argument) as an isError result naming the argument',
    async () => {
      const r = await run('tools/call bad argument', [
        '--method',
        'tools/call',
        '--tool-name',
        'create_todo',
        '--tool-arg',
        'title=Bad',
        'priorty=high',
      ]);
      const result = output(r);
      expect(result['isError']).toBe(true);
      const text = (result['content'] as { text?: string }[]).map((c) => c.text ?? '').join('\n');
      expect(text).toContain('priorty');
      expect(text).toContain('priority');
      // Nothing was written.
      const db = new Database(dbFile(), { readonly: true });
      try {
        const n = db.prepare("SELECT count(*) AS n FROM items WHERE title = 'Bad'").get() as { n: number };
        expect(n.n).toBe(0);
      } finally {
        db.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
