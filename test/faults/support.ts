/**
 * Shared pieces of the fault-injection tests (test/faults): a bounded stream of concurrent writers that records
 * every acknowledged write, MCP tools/call over raw HTTPS, read-only SQLite integrity checks, free ports, and waits.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import Database from 'better-sqlite3';
import type { ServerProcess } from '../support/server-process.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bound and released; good enough for a private server started right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` every `everyMs` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A title no other run uses: `<prefix>-<run>-w<writer>-<n>`. */
export function runTag(): string {
  return randomBytes(4).toString('hex');
}

export interface Ack {
  readonly title: string;
  readonly id: string;
}

export interface StreamOutcome {
  /** Writes whose result came back OK, with the id the server gave. */
  readonly acked: Ack[];
  /** Every title sent (acknowledged or not). */
  readonly sent: Set<string>;
  /** Writes that failed (the connection broke, the server was gone). */
  readonly failed: number;
  /** Requests in flight at the moment the fault was injected. */
  readonly inFlightAtFault: number;
  /** Acknowledged writes before the fault. */
  readonly ackedAtFault: number;
}

/**
 * Runs `writers` concurrent loops of `write(title)` until `fault()` has run and every writer has seen a failure
 * (or `maxWrites` titles were sent). `fault` runs once, after a random number of acknowledged writes between
 * `faultAfter[0]` and `faultAfter[1]`, while the other writers keep writing: so requests are in flight when it hits.
 * Bounded: stops after `maxWrites` writes or `timeoutMs`.
 */
export async function writeStream(options: {
  readonly writers: number;
  readonly prefix: string;
  readonly write: (title: string) => Promise<string>;
  readonly faultAfter: readonly [number, number];
  readonly fault: () => Promise<void>;
  readonly maxWrites?: number;
  readonly timeoutMs?: number;
}): Promise<StreamOutcome> {
  const acked: Ack[] = [];
  const sent = new Set<string>();
  let failed = 0;
  let inFlight = 0;
  let inFlightAtFault = -1;
  let ackedAtFault = -1;
  const threshold = randomInt(options.faultAfter[0], options.faultAfter[1] + 1);
  const maxWrites = options.maxWrites ?? 2000;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let faultDone: Promise<void> | undefined;
  const injected = (): boolean => faultDone !== undefined;

  const writer = async (w: number): Promise<void> => {
    let n = 0;
    for (;;) {
      if (sent.size >= maxWrites || Date.now() > deadline) return;
      const title = `${options.prefix}-w${w}-${n++}`;
      sent.add(title);
      inFlight += 1;
      try {
        const id = await options.write(title);
        inFlight -= 1;
        // An acknowledgement that arrives after the kill is still an acknowledgement: it was sent before the
        // process died (the response was already on the wire).
        acked.push({ title, id });
        if (!injected() && acked.length >= threshold) {
          inFlightAtFault = inFlight;
          ackedAtFault = acked.length;
          faultDone = options.fault();
        }
      } catch {
        inFlight -= 1;
        failed += 1;
        // A writer that sees a failure after the fault stops: the server is gone.
        if (injected()) return;
        await sleep(20);
      }
    }
  };
  await Promise.all(Array.from({ length: options.writers }, (_, w) => writer(w)));
  if (faultDone === undefined)
    throw new Error(`the fault was never injected (${acked.length} writes acknowledged)`);
  await faultDone;
  return { acked, sent, failed, inFlightAtFault, ackedAtFault };
}

export interface SqliteCheck {
  readonly integrity: string[];
  readonly foreignKeyViolations: number;
  /** Rows per title among the titles that start with `prefix`. */
  readonly titles: Map<string, { count: number; ids: string[] }>;
}

/** Opens the SQLite file read-only: integrity_check, foreign_key_check, and the items whose title has `prefix`. */
export function checkSqlite(file: string, prefix: string): SqliteCheck {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const integrity = (db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
    const fk = db.prepare('PRAGMA foreign_key_check').all();
    const rows = db
      .prepare('SELECT id, title FROM items WHERE substr(title, 1, ?) = ?')
      .all(prefix.length, prefix) as { id: string; title: string }[];
    const titles = new Map<string, { count: number; ids: string[] }>();
    for (const r of rows) {
      const e = titles.get(r.title) ?? { count: 0, ids: [] };
      e.count += 1;
      e.ids.push(r.id);
      titles.set(r.title, e);
    }
    return { integrity, foreignKeyViolations: fk.length, titles };
  } finally {
    db.close();
  }
}

/** What the store holds after the fault, compared with what the writers were told. */
export interface Reconciliation {
  readonly acknowledged: number;
  readonly found: number;
  readonly missing: Ack[];
  readonly duplicated: string[];
  /** Found rows whose write was never acknowledged (committed just before the kill): allowed, bounded. */
  readonly unacknowledgedFound: number;
  /** Found rows whose title was never sent (must be 0). */
  readonly unknown: number;
  /** Acknowledged writes found under another id than the one acknowledged (must be 0). */
  readonly idMismatch: number;
}

export function reconcile(
  outcome: StreamOutcome,
  found: Map<string, { count: number; ids: string[] }>,
): Reconciliation {
  const missing: Ack[] = [];
  let idMismatch = 0;
  for (const ack of outcome.acked) {
    const f = found.get(ack.title);
    if (f === undefined) missing.push(ack);
    else if (!f.ids.includes(ack.id)) idMismatch += 1;
  }
  const duplicated = [...found].filter(([, f]) => f.count > 1).map(([t]) => t);
  const ackedTitles = new Set(outcome.acked.map((a) => a.title));
  let unacknowledgedFound = 0;
  let unknown = 0;
  for (const title of found.keys()) {
    if (!outcome.sent.has(title)) unknown += 1;
    else if (!ackedTitles.has(title)) unacknowledgedFound += 1;
  }
  return {
    acknowledged: outcome.acked.length,
    found: found.size,
    missing,
    duplicated,
    unacknowledgedFound,
    unknown,
    idMismatch,
  };
}

// ------------------------------------------------------------------------------------------------- MCP over HTTPS

export interface McpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The JSON-RPC messages of the body (SSE data lines or a JSON body). */
  readonly messages: Record<string, unknown>[];
}

function messagesOf(contentType: string, text: string): Record<string, unknown>[] {
  try {
    if (contentType.includes('text/event-stream')) {
      return text
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    }
    const body = JSON.parse(text) as unknown;
    if (Array.isArray(body)) return body as Record<string, unknown>[];
    return body !== null && typeof body === 'object' ? [body as Record<string, unknown>] : [];
  } catch {
    return [];
  }
}

let rpcId = 0;

/** One JSON-RPC request to /mcp (stateless server: no session), bounded by `timeoutMs`. */
export async function mcpPost(
  sp: Pick<ServerProcess, 'fetch' | 'resource'>,
  token: string,
  method: string,
  params: Record<string, unknown>,
  timeoutMs = 15_000,
): Promise<McpAnswer> {
  const res = await sp.fetch(sp.resource, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    messages: messagesOf(res.headers.get('content-type') ?? '', text),
  };
}

/** The tool result of a tools/call answer (throws when the answer is not a successful, non-error tool result). */
export function toolResult(answer: McpAnswer): Record<string, unknown> {
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
  const msg = answer.messages.find((m) => 'result' in m || 'error' in m);
  if (msg === undefined) throw new Error(`no JSON-RPC answer in: ${answer.text.slice(0, 200)}`);
  if ('error' in msg) throw new Error(`JSON-RPC error: ${JSON.stringify(msg['error'])}`);
  const result = msg['result'] as { isError?: boolean; structuredContent?: Record<string, unknown> };
  if (result.isError === true) throw new Error(`tool error: ${JSON.stringify(result)}`);
  if (result.structuredContent === undefined) throw new Error('tool result without structured content');
  return result.structuredContent;
}

/** create_todo over HTTPS; resolves with the new task's id once the server acknowledged it. */
export async function createTodoHttp(
  sp: Pick<ServerProcess, 'fetch' | 'resource'>,
  token: string,
  title: string,
): Promise<string> {
  const s = toolResult(await mcpPost(sp, token, 'tools/call', { name: 'create_todo', arguments: { title } }));
  const todo = s['todo'] as { id?: unknown } | undefined;
  if (typeof todo?.id !== 'string') throw new Error('create_todo answered without an id');
  return todo.id;
}

/** Every task title with `prefix`, by paging list_todos over HTTPS: title → ids. */
export async function listTodosHttp(
  sp: Pick<ServerProcess, 'fetch' | 'resource'>,
  token: string,
  prefix: string,
): Promise<Map<string, { count: number; ids: string[] }>> {
  const found = new Map<string, { count: number; ids: string[] }>();
  let cursor: string | undefined;
  for (let page = 0; page < 200; page++) {
    const s = toolResult(
      await mcpPost(sp, token, 'tools/call', {
        name: 'list_todos',
        arguments: { limit: 100, ...(cursor ? { cursor } : {}) },
      }),
    );
    collectTodos(s, prefix, found);
    const next = s['next_cursor'];
    if (typeof next !== 'string' || next === '') return found;
    cursor = next;
  }
  throw new Error('list_todos did not end within 200 pages');
}

/** Adds the tasks of a list_todos result whose title starts with `prefix` to `found`. */
export function collectTodos(
  structured: Record<string, unknown>,
  prefix: string,
  found: Map<string, { count: number; ids: string[] }>,
): void {
  const items = (structured['todos'] ?? structured['items']) as { id: string; title: string }[] | undefined;
  if (!Array.isArray(items)) throw new Error(`list_todos answered without todos: ${Object.keys(structured)}`);
  for (const t of items) {
    if (!t.title.startsWith(prefix)) continue;
    const e = found.get(t.title) ?? { count: 0, ids: [] };
    e.count += 1;
    e.ids.push(t.id);
    found.set(t.title, e);
  }
}
