/**
 * Property-based fuzzing of every MCP tool's input in local mode: the built `mcp-pa` as a child process over
 * stdio (SQLite), driven by the MCP SDK's own client — the same generators as the HTTP fuzz test
 * (mcp-tools-http.test.ts), more runs, since a local call costs a few milliseconds.
 *
 * Each answer must be a result (an error result naming the problem — never "internal") or -32602 naming a field;
 * the stdio transport must never break. Afterwards the user still reads everything through the list tools, the
 * server wrote no error to its standard error, and SQLite's `PRAGMA integrity_check` says ok.
 */
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCli, tempDir } from '../support/helpers.js';
import type { Hints } from './arbitraries.js';
import {
  callTool,
  fuzzProperties,
  fuzzTools,
  marker,
  problemWith,
  readEverything,
  runs,
  seedTenant,
  tallyKey,
  Tally,
  type FuzzTool,
} from './mcp-harness.js';
import { errorLogLines } from './oauth-support.js';

const VALID_RUNS = runs(30);
const MUTATED_RUNS = runs(300);
const ANY_RUNS = runs(200);

let home: { dir: string; cleanup: () => void };
let client: Client;
let stderr: () => string;
let closeTransport: () => Promise<void>;
let closed = false;
let tools: FuzzTool[];
let hints: Hints;
const tally = new Tally();

async function connect(): Promise<void> {
  const conn = await connectCli({ HOME: home.dir, MCP_TIMEZONE: 'UTC', MCP_LOG_LEVEL: 'warn' });
  client = conn.client;
  stderr = conn.stderr;
  closed = false;
  client.onclose = () => {
    closed = true;
  };
  closeTransport = () => conn.transport.close();
}

async function fuzzOnce(t: FuzzTool, args: unknown): Promise<void> {
  const outcome = await callTool(client, t.name, args);
  tally.add(tallyKey(t.name, outcome));
  const problem = problemWith(outcome, t.schema, args);
  if (problem !== null) throw new Error(`${t.name}: ${problem}`);
  if (closed) throw new Error(`${t.name}: the stdio transport closed`);
}

describe('fuzzing every MCP tool in local mode (stdio, SQLite)', () => {
  beforeAll(async () => {
    home = tempDir('mcp-pa-fuzz-local-');
    await connect();
    tools = fuzzTools((await client.listTools()).tools);
    const seeded = await seedTenant(client, marker('lmark'));
    hints = { ids: seeded.ids, clientRefs: seeded.clientRefs };
  }, 120_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await closeTransport?.().catch(() => undefined);
    home?.cleanup();
  });

  it('an event repeating every minute since 1900 lists its occurrences of a day in 2026 (regression: a hang)', async () => {
    const created = await callTool(client, 'create_calendar_event', {
      title: 'every minute',
      start_time: '1900-01-01T00:00',
      end_time: '1900-01-01T00:01',
      recurrence: 'FREQ=MINUTELY',
      client_ref: 'fuzz-regression-minutely',
    });
    expect(created.kind === 'result' && !created.isError, JSON.stringify(created).slice(0, 300)).toBe(true);
    const listed = await callTool(client, 'list_calendar_events', {
      start_date: '2026-03-01',
      end_date: '2026-03-01',
      limit: 3,
    });
    expect(listed.kind, JSON.stringify(listed).slice(0, 300)).toBe('result');
    const items =
      (
        (listed.kind === 'result' ? listed.structured : undefined) as {
          items?: { title: string; occurrence_start: string | null }[];
        }
      )?.items ?? [];
    // Events overlapping the day: the one-minute occurrences from 00:00 on (the one at 23:59 ends at 00:00).
    expect(
      items.filter((e) => e.title === 'every minute').map((e) => Date.parse(String(e.occurrence_start))),
    ).toEqual([0, 1, 2].map((m) => Date.UTC(2026, 2, 1, 0, m)));
    // Every second since 1900: billions of periods before today; the dashboard (next 7 days) must still answer.
    const everySecond = await callTool(client, 'create_calendar_event', {
      title: 'every second',
      start_time: '1900-01-01T00:00',
      recurrence: 'FREQ=SECONDLY',
    });
    expect(
      everySecond.kind === 'result' && !everySecond.isError,
      JSON.stringify(everySecond).slice(0, 300),
    ).toBe(true);
    const dashboard = await callTool(client, 'get_dashboard', {});
    expect(dashboard.kind === 'result' && !dashboard.isError, JSON.stringify(dashboard).slice(0, 300)).toBe(
      true,
    );
    const del = await callTool(client, 'delete_items', {
      ids: [
        (everySecond.kind === 'result' ? (everySecond.structured as { event: { id: string } }) : undefined)
          ?.event.id,
      ],
      permanent: true,
    });
    expect(del.kind === 'result' && !del.isError, JSON.stringify(del).slice(0, 300)).toBe(true);
    for (const recurrence of ['FREQ=MINUTELY;BYHOUR=2;BYMONTHDAY=2', 'FREQ=HOURLY;INTERVAL=2;BYHOUR=1']) {
      const refused = await callTool(client, 'create_calendar_event', {
        title: 'stuck',
        start_time: '2026-03-01T10:00',
        recurrence,
      });
      expect(refused.kind === 'result' ? refused.text : JSON.stringify(refused)).toMatch(
        /invalid_input[\s\S]*cannot be combined with FREQ=/,
      );
    }
  }, 90_000);

  fuzzProperties({
    found: () => ({ tools, hints }),
    fuzzOnce,
    runs: { valid: VALID_RUNS, mutated: MUTATED_RUNS, any: ANY_RUNS },
    validTimeoutMs: 180_000,
  });

  it('after the fuzz run: everything still reads, no error on stderr, PRAGMA integrity_check ok', async () => {
    const read = await readEverything(client);
    expect(closed).toBe(false);
    const log = stderr();
    expect(errorLogLines(log).map((l) => l.slice(0, 400))).toEqual([]);
    expect(log).not.toMatch(/unhandled|uncaught/i);
    await client.close();
    await closeTransport();
    const db = new Database(path.join(home.dir, '.config/mcp-pa/database.sqlite'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
    } finally {
      db.close();
    }
    console.log(
      `[fuzz mcp local] ${tally.total()} fuzzed calls (${tools.length} tools × ${VALID_RUNS} + ${MUTATED_RUNS} + ${ANY_RUNS}); ` +
        `outcomes: ${tally.toString()}; reads ${read.items} items in ${read.calls} calls afterwards`,
    );
  }, 120_000);
});
