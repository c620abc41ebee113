/**
 * What the MCP fuzz tests share: calling a tool through the real SDK client and judging the answer, the fuzz
 * properties themselves, seeding a tenant with one record of every kind, and reading everything a tenant has through
 * the list tools.
 */
import { randomBytes } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { fromSchema, loopbackOnly, type Hints, type JsonSchema, type SchemaMode } from './arbitraries.js';

/** How many runs each property gets: CI-sized by default, scaled by MCP_PA_FUZZ_SCALE (e.g. 10 for a long run). */
export function runs(base: number): number {
  const scale = Number(process.env['MCP_PA_FUZZ_SCALE'] ?? '1');
  return Math.max(1, Math.round(base * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

export type Outcome =
  | {
      readonly kind: 'result';
      readonly isError: boolean;
      readonly text: string;
      readonly structured: unknown;
    }
  | { readonly kind: 'rpc-error'; readonly code: number; readonly message: string }
  | { readonly kind: 'transport-error'; readonly status: number | undefined; readonly message: string };

/** Tally of what the fuzzed calls got back. */
export class Tally {
  readonly counts = new Map<string, number>();
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
  toString(): string {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
  }
}

const TEXT_LIMIT = 600;

/** One tools/call through the SDK client (its output-schema check included), as an {@link Outcome}. */
export async function callTool(client: Client, name: unknown, args: unknown): Promise<Outcome> {
  try {
    const res = await client.callTool(
      { name: name as string, arguments: args as Record<string, unknown> },
      undefined,
      {
        timeout: 30_000,
      },
    );
    const content = Array.isArray(res.content) ? (res.content as { type: string; text?: string }[]) : [];
    const text = content.map((c) => (c.type === 'text' ? (c.text ?? '') : `[${c.type}]`)).join('\n');
    return { kind: 'result', isError: res.isError === true, text, structured: res.structuredContent };
  } catch (err) {
    if (err instanceof McpError) return { kind: 'rpc-error', code: err.code, message: err.message };
    const e = err as { code?: unknown; message?: unknown };
    return {
      kind: 'transport-error',
      status: typeof e.code === 'number' ? e.code : undefined,
      message: String(e.message ?? err),
    };
  }
}

/** The names an error may point at: the schema's properties (at any depth), the call's own keys, "arguments". */
function fieldNames(schema: JsonSchema | undefined, args: unknown): Set<string> {
  const names = new Set<string>(['arguments', 'params', 'name']);
  const walk = (s: JsonSchema | undefined, depth: number): void => {
    if (s === undefined || depth > 6) return;
    for (const [k, inner] of Object.entries(s.properties ?? {})) {
      names.add(k);
      walk(inner, depth + 1);
    }
    if (s.items) walk(s.items, depth + 1);
    for (const a of s.anyOf ?? []) walk(a, depth + 1);
  };
  walk(schema, 0);
  if (args !== null && typeof args === 'object' && !Array.isArray(args)) {
    for (const k of Object.keys(args)) names.add(k);
  }
  return names;
}

/**
 * Why an answer to a fuzzed call is wrong, or null when it is acceptable: a result (an error result naming what
 * went wrong, never "internal"/"unavailable"), or -32602 with a message naming a field. Never -32603 or any other
 * JSON-RPC error, never a transport failure (a 4xx refusal of the HTTP layer, e.g. JSON nested too deep, passes
 * when `allowHttp4xx`).
 */
export function problemWith(
  outcome: Outcome,
  schema: JsonSchema | undefined,
  args: unknown,
  options: { allowHttp4xx?: boolean; forbidden?: readonly string[] } = {},
): string | null {
  const texts =
    outcome.kind === 'result' ? outcome.text + JSON.stringify(outcome.structured ?? null) : outcome.message;
  for (const secret of options.forbidden ?? []) {
    if (texts.includes(secret)) return `the answer contains another tenant's data (${secret.slice(0, 12)}…)`;
  }
  switch (outcome.kind) {
    case 'result': {
      if (!outcome.isError) return null;
      if (/Error \((internal|unavailable)\)/.test(outcome.text))
        return `an internal error for client input: ${outcome.text.slice(0, TEXT_LIMIT)}`;
      if (outcome.text.trim() === '') return 'an error result without text';
      if (/^MCP error -32602/.test(outcome.text)) {
        const names = fieldNames(schema, args);
        if (
          ![...names].some((n) => n !== '' && outcome.text.includes(n)) &&
          !/Tool .* not found/.test(outcome.text)
        )
          return `a validation error naming no field: ${outcome.text.slice(0, TEXT_LIMIT)}`;
      }
      return null;
    }
    case 'rpc-error': {
      if (outcome.code !== -32602)
        return `JSON-RPC error ${outcome.code} (only -32602 may answer bad input): ${outcome.message.slice(0, TEXT_LIMIT)}`;
      if (/output schema|structured content/i.test(outcome.message))
        return `the result does not match the tool's own output schema: ${outcome.message.slice(0, TEXT_LIMIT)}`;
      const names = fieldNames(schema, args);
      if (![...names].some((n) => n !== '' && outcome.message.includes(n)))
        return `-32602 naming no field: ${outcome.message.slice(0, TEXT_LIMIT)}`;
      return null;
    }
    case 'transport-error':
      if (
        options.allowHttp4xx &&
        outcome.status !== undefined &&
        outcome.status >= 400 &&
        outcome.status < 500
      )
        return null;
      return `transport failure (${outcome.status ?? 'no status'}): ${outcome.message.slice(0, TEXT_LIMIT)}`;
  }
}

/** The key a call is tallied under: tool and what kind of answer it got. */
export function tallyKey(tool: string, outcome: Outcome): string {
  if (outcome.kind === 'result') {
    if (!outcome.isError) return 'ok';
    const code = /^Error \(([a-z_]+)\)/.exec(outcome.text)?.[1];
    if (code) return `tool error ${code}`;
    if (/^MCP error -32602/.test(outcome.text)) return 'invalid arguments (-32602 result)';
    return 'tool error (other)';
  }
  if (outcome.kind === 'rpc-error') return `JSON-RPC ${outcome.code}`;
  return `HTTP ${outcome.status ?? '?'}`;
}

// ------------------------------------------------------------------------------------------- regressions

/**
 * Counterexamples fuzzing found, run first (fast-check `examples`) by the valid-shaped property of each tool:
 * - create_todo with a NUL character in project_id: PostgreSQL refused the query parameter (22021) and the tool
 *   answered "Error (internal)", logging "tool failed"; now invalid_input naming project_id.
 * - update_status with a lone surrogate in laptop_os: PostgreSQL refused the profile's jsonb ("invalid input syntax
 *   for type json"), again "Error (internal)"; now invalid_input naming laptop_os.
 * - create_calendar_event repeating every second since 1900: every later listing (dashboard, events, exports)
 *   walked billions of periods from the series start and the server stopped answering anyone; now expanded from
 *   the range.
 * - rules rrule cannot step through (FREQ=MINUTELY;BYHOUR=2;BYMONTHDAY=2, FREQ=HOURLY;INTERVAL=2;BYHOUR=1) looped
 *   forever as soon as they were checked, and a rule whose parts never meet took seconds to refuse (rrule walked to
 *   the year 9999); now invalid_input at once.
 */
export const REGRESSIONS: Readonly<Record<string, readonly unknown[]>> = {
  create_todo: [{ title: ' ', due_date: '2026-03-01', project_id: '\u0000' }],
  update_status: [{ laptop_os: '\ud800' }],
  create_calendar_event: [
    { title: 'every second', start_time: '1900-01-01T00:00', recurrence: 'FREQ=SECONDLY' },
    {
      title: 'stuck stepping',
      start_time: '2026-03-01T10:00',
      recurrence: 'FREQ=MINUTELY;BYHOUR=2;BYMONTHDAY=2',
    },
    {
      title: 'stuck stepping',
      start_time: '2026-03-01T10:00',
      recurrence: 'FREQ=HOURLY;INTERVAL=2;BYHOUR=1',
    },
    { title: 'never', start_time: '2026-03-01T10:00', recurrence: 'FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30' },
  ],
};

/** The regression examples of a tool, as fast-check examples of a one-argument property. */
export function regressionExamples(tool: string): [unknown][] {
  return (REGRESSIONS[tool] ?? []).map((args) => [args]);
}

// ------------------------------------------------------------------------------------------- properties

export interface FuzzTool {
  readonly name: string;
  readonly schema: JsonSchema;
}

export function fuzzTools(tools: readonly Tool[]): FuzzTool[] {
  return tools.map((t) => ({ name: t.name, schema: t.inputSchema as unknown as JsonSchema }));
}

/** Arguments shaped by the tool's schema: accepted by it with hostile content (`valid`), or bent (`mutated`). */
export function schemaArgs(tool: FuzzTool, hints: Hints, mode: SchemaMode): fc.Arbitrary<unknown> {
  return fromSchema(tool.schema, hints, mode).map(loopbackOnly);
}

/** Anything at all as arguments: any JSON value, or an object of the tool's keys (and others) with any values. */
export function arbitraryArgs(tool: FuzzTool): fc.Arbitrary<unknown> {
  const keys = Object.keys(tool.schema.properties ?? {});
  const key =
    keys.length > 0
      ? fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 12 }))
      : fc.string({ maxLength: 12 });
  return fc
    .oneof(
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      { weight: 3, arbitrary: fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 8 }) },
      { weight: 1, arbitrary: fc.constantFrom(undefined, null, [], '', 0, 'arguments', [{}]) },
    )
    .map(loopbackOnly);
}

/**
 * The three properties every MCP fuzz test runs, as tests of the describe block it is called in: valid-shaped
 * arguments with hostile content to each tool (its regression examples first), bent schema-shaped arguments to any
 * tool, and any JSON as arguments to any tool. `found()` gives what beforeAll found (the tools, and the ids and
 * client_refs to aim at); `fuzzOnce` makes one call and throws on anything but a result or -32602 naming a field.
 */
export function fuzzProperties(options: {
  readonly found: () => { readonly tools: readonly FuzzTool[]; readonly hints: Hints };
  readonly fuzzOnce: (tool: FuzzTool, args: unknown) => Promise<void>;
  readonly runs: { readonly valid: number; readonly mutated: number; readonly any: number };
  /** Timeout of the valid-shaped test (it goes through every tool). */
  readonly validTimeoutMs: number;
}): void {
  const { found, fuzzOnce, runs: n } = options;
  /** The tools by name, in the server's order. */
  const byName = (): Map<string, FuzzTool> => new Map(found().tools.map((t) => [t.name, t]));

  it(
    `valid-shaped arguments with hostile content, each tool (${n.valid} runs per tool)`,
    async () => {
      const { tools, hints } = found();
      expect(tools.length).toBeGreaterThanOrEqual(20);
      for (const t of tools) {
        await fc.assert(
          fc.asyncProperty(schemaArgs(t, hints, 'valid'), async (args) => fuzzOnce(t, args)),
          { numRuns: n.valid, examples: regressionExamples(t.name) },
        );
      }
    },
    options.validTimeoutMs,
  );

  it(`bent schema-shaped arguments to any tool (${n.mutated} runs): a result or -32602 naming a field`, async () => {
    const { hints } = found();
    const tools = byName();
    const tool = (name: string): FuzzTool => tools.get(name) as FuzzTool;
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...tools.keys())
          .chain((name) => fc.tuple(fc.constant(name), schemaArgs(tool(name), hints, 'mutated'))),
        async ([name, args]) => fuzzOnce(tool(name), args),
      ),
      { numRuns: n.mutated },
    );
  }, 120_000);

  it(`any JSON as arguments to any tool (${n.any} runs): a result or -32602 naming a field`, async () => {
    const tools = byName();
    const tool = (name: string): FuzzTool => tools.get(name) as FuzzTool;
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...tools.keys())
          .chain((name) => fc.tuple(fc.constant(name), arbitraryArgs(tool(name)))),
        async ([name, args]) => fuzzOnce(tool(name), args),
      ),
      { numRuns: n.any },
    );
  }, 120_000);
}

// ------------------------------------------------------------------------------------------- seeding and reading

/** A random marker put in every record of a tenant, to find that tenant's data in anyone else's answers. */
export function marker(prefix: string): string {
  return `${prefix}${randomBytes(8).toString('hex')}`;
}

export interface Seeded {
  readonly ids: string[];
  readonly clientRefs: string[];
}

async function created(
  client: Client,
  name: string,
  key: string,
  args: Record<string, unknown>,
): Promise<string> {
  const res = await callTool(client, name, args);
  if (res.kind !== 'result' || res.isError) throw new Error(`seeding ${name} failed: ${JSON.stringify(res)}`);
  const inner = (res.structured as Record<string, { id?: unknown }> | undefined)?.[key];
  if (typeof inner?.id !== 'string') throw new Error(`seeding ${name}: no ${key}.id in ${res.text}`);
  return inner.id;
}

/** One record of every kind (a recurring todo, a trashed note, a stored and a linked document), `mark` in each. */
export async function seedTenant(client: Client, mark: string): Promise<Seeded> {
  const ref = (n: string): string => `${mark}-ref-${n}`;
  const ids: string[] = [];
  const clientRefs: string[] = [];
  const project = await created(client, 'create_project', 'project', {
    name: `${mark} project`,
    start_date: '2026-03-01',
    end_date: '2026-06-30',
    tags: [mark],
    notes: `${mark} notes`,
    client_ref: ref('p'),
  });
  ids.push(project);
  clientRefs.push(ref('p'));
  const res = await callTool(client, 'add_project_task', {
    project_id: project,
    title: `${mark} task`,
    due_date: '2026-03-15',
    client_ref: ref('t'),
  });
  if (res.kind !== 'result' || res.isError)
    throw new Error(`seeding add_project_task: ${JSON.stringify(res)}`);
  ids.push(String((res.structured as { task: { id: string } }).task.id));
  clientRefs.push(ref('t'));
  ids.push(
    await created(client, 'create_todo', 'todo', {
      title: `${mark} todo`,
      due_date: '2026-04-01T09:00',
      recurrence: 'FREQ=WEEKLY;BYDAY=MO',
      reminder_date: '2026-04-01T08:00',
      tags: [mark],
      client_ref: ref('todo'),
    }),
  );
  clientRefs.push(ref('todo'));
  ids.push(
    await created(client, 'create_calendar_event', 'event', {
      title: `${mark} event`,
      start_time: '2026-03-20T14:00',
      end_time: '2026-03-20T15:00',
      recurrence: 'FREQ=DAILY;COUNT=5',
      attendees: [`${mark}@example.invalid`],
      client_ref: ref('e'),
    }),
  );
  clientRefs.push(ref('e'));
  ids.push(
    await created(client, 'add_note', 'note', { text: `${mark} note`, pinned: true, client_ref: ref('n') }),
  );
  clientRefs.push(ref('n'));
  const trashed = await created(client, 'add_note', 'note', { text: `${mark} trashed note` });
  ids.push(trashed);
  ids.push(
    await created(client, 'upload_document', 'document', {
      title: `${mark}.txt`,
      content_base64: Buffer.from(`${mark} document content\n`).toString('base64'),
      client_ref: ref('d'),
    }),
  );
  clientRefs.push(ref('d'));
  ids.push(
    await created(client, 'create_external_document', 'document', {
      title: `${mark} link`,
      external_url: 'https://127.0.0.1/doc',
    }),
  );
  const status = await callTool(client, 'update_status', {
    name: `${mark} name`,
    notes: `${mark} profile notes`,
  });
  if (status.kind !== 'result' || status.isError)
    throw new Error(`seeding update_status: ${JSON.stringify(status)}`);
  const del = await callTool(client, 'delete_items', { ids: [trashed] });
  if (del.kind !== 'result' || del.isError) throw new Error(`seeding delete_items: ${JSON.stringify(del)}`);
  return { ids, clientRefs };
}

/**
 * Everything a tenant can read through its own tools: every list (trash included, up to 10 pages of 100), the dashboard,
 * the status, the three exports, a search, and each project and document by id. Throws on any error answer.
 */
export async function readEverything(
  client: Client,
): Promise<{ calls: number; items: number; text: string }> {
  let calls = 0;
  let items = 0;
  const texts: string[] = [];
  const must = async (name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> => {
    calls += 1;
    const res = await callTool(client, name, args);
    if (res.kind !== 'result' || res.isError)
      throw new Error(
        `${name} ${JSON.stringify(args)} failed after the fuzz run: ${JSON.stringify(res).slice(0, 800)}`,
      );
    texts.push(res.text);
    return (res.structured ?? {}) as Record<string, unknown>;
  };
  const pages = async (name: string, args: Record<string, unknown>): Promise<Record<string, unknown>[]> => {
    const all: Record<string, unknown>[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const out = await must(name, { ...args, limit: 100, ...(cursor !== null ? { cursor } : {}) });
      all.push(...((out['items'] as Record<string, unknown>[] | undefined) ?? []));
      cursor = (out['next_cursor'] as string | null | undefined) ?? null;
      if (cursor === null) break;
    }
    items += all.length;
    return all;
  };
  await must('get_status', {});
  await must('get_dashboard', {});
  const projects = [
    ...(await pages('list_projects', {})),
    ...(await pages('list_projects', { trash: true })),
  ];
  await pages('list_todos', {});
  await pages('list_todos', { trash: true });
  await pages('list_todos', { completed: true });
  await pages('list_calendar_events', { start_date: '2026-01-01', end_date: '2027-01-01' });
  await pages('list_calendar_events', {});
  const documents = [
    ...(await pages('list_documents', {})),
    ...(await pages('list_documents', { trash: true })),
  ];
  for (const format of ['json', 'markdown', 'icalendar']) await must('export', { format });
  await must('search', { query: 'note' });
  for (const p of projects.slice(0, 100))
    if (p['deleted_at'] == null) await must('get_project', { project_id: p['id'] });
  for (const d of documents.slice(0, 100))
    if (d['deleted_at'] == null) await must('get_document', { document_id: d['id'], include_content: true });
  return { calls, items, text: texts.join('\n') };
}
