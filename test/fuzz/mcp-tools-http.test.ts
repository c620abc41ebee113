/**
 * Property-based fuzzing of every MCP tool's input, over the real HTTP path: the production server of
 * test/auth/oauth-fixture.ts (HTTPS, OAuth, PGlite), two users A and B with tokens from the real headless
 * authorization-code flow, and the MCP SDK's own client (Streamable HTTP) for each.
 *
 * The tool list and each tool's inputSchema come from the server (tools/list). B gets one record of every kind,
 * each carrying a random marker; A gets the same. Then, as A, for every tool, fast-check generates arguments:
 *   - shaped by the tool's JSON schema: right types with edge values (empty, huge, control characters, NUL,
 *     emoji, lone surrogates; numbers at and past their bounds; broken dates, unknown time zones, pathological
 *     recurrence rules, malformed base64), wrong types, extra properties, missing required ones — with the ids
 *     and idempotency keys of both tenants' real records where an id or a client_ref is asked for;
 *   - anything at all (any JSON value as `arguments`, any keys and values).
 * Each answer must be a result (an error result naming the problem — never "internal") or -32602 naming a field;
 * never another JSON-RPC error, never a 5xx, never B's marker. Afterwards: B's rows (every tenant table, read as B
 * under row-level security) are exactly as before, no row belongs to a third tenant, both tenants can still read
 * everything they have through the list tools (no corruption), the server logged no error, and this process (where
 * the server runs) saw no unhandled rejection.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import { TENANT_TABLES } from '../../src/storage/postgres/schema.js';
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
  type Seeded,
} from './mcp-harness.js';
import { errorLogLines, mcpClient, obtainTokens, watchProcess } from './oauth-support.js';
import type { Hints } from './arbitraries.js';

/** Runs per tool of the valid-shaped property; runs in all of the bent and the anything-goes ones. */
const VALID_RUNS = runs(15);
const MUTATED_RUNS = runs(150);
const ANY_RUNS = runs(100);

let fx: OAuthFixture;
let a: { client: Client; close: () => Promise<void> };
let b: { client: Client; close: () => Promise<void> };
let tenantA: string;
let tenantB: string;
let tools: FuzzTool[];
const byName = new Map<string, FuzzTool>();
const tool = (name: string): FuzzTool => byName.get(name) as FuzzTool;
let seededA: Seeded;
let seededB: Seeded;
let markB: string;
let snapshotB: string;
let hints: Hints;
const statuses: number[] = [];
const tally = new Tally();
let watch: ReturnType<typeof watchProcess>;

/** Every row of every tenant table that `tenant` can see (row-level security as the store uses it), sorted. */
async function tenantRows(tenant: string): Promise<string> {
  return fx.store.withTenant(tenant, async (sql) => {
    const parts: string[] = [];
    for (const table of TENANT_TABLES) {
      const { rows } = await sql.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
      const lines = rows
        .map((r) => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))
        .sort();
      parts.push(`${table} (${rows.length})\n${lines.join('\n')}`);
    }
    return parts.join('\n');
  });
}

/** The tenants owning rows in any tenant table (as the login user, outside row-level security). */
async function owners(): Promise<string[]> {
  return fx.store.withServerState(async (sql) => {
    const union = TENANT_TABLES.map((t) => `SELECT tenant_id FROM ${t}`).join(' UNION ');
    const { rows } = await sql.query<{ tenant_id: string }>(
      `SELECT DISTINCT tenant_id FROM (${union}) t ORDER BY 1`,
    );
    return rows.map((r) => r.tenant_id);
  });
}

async function fuzzOnce(tool: FuzzTool, args: unknown, name: unknown = tool.name): Promise<void> {
  const outcome = await callTool(a.client, name, args);
  tally.add(tallyKey(tool.name, outcome));
  const problem = problemWith(outcome, tool.schema, args, { allowHttp4xx: true, forbidden: [markB] });
  if (problem !== null) throw new Error(`${tool.name}: ${problem}`);
  const fiveXx = statuses.filter((s) => s >= 500);
  if (fiveXx.length > 0) throw new Error(`${tool.name}: HTTP ${fiveXx.join(', ')} from /mcp`);
}

describe('fuzzing every MCP tool over HTTP (two tenants)', () => {
  beforeAll(async () => {
    watch = watchProcess();
    fx = await startOAuthFixture({ config: { security: { mcp_requests_per_minute: 100_000 } } });
    const userA = await fx.addUser();
    const userB = await fx.addUser();
    tenantA = userA.id;
    tenantB = userB.id;
    const tokensA = await obtainTokens(fx, userA, 'fuzz A');
    const tokensB = await obtainTokens(fx, userB, 'fuzz B');
    a = await mcpClient(fx, tokensA.accessToken, statuses);
    b = await mcpClient(fx, tokensB.accessToken, statuses);
    tools = fuzzTools((await a.client.listTools()).tools);
    for (const t of tools) byName.set(t.name, t);
    markB = marker('bmark');
    seededB = await seedTenant(b.client, markB);
    seededA = await seedTenant(a.client, marker('amark'));
    snapshotB = await tenantRows(tenantB);
    hints = {
      ids: [...seededA.ids, ...seededB.ids],
      clientRefs: [...seededA.clientRefs, ...seededB.clientRefs],
    };
  }, 180_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    watch?.stop();
    await fx?.close();
  }, 60_000);

  it('the server lists its tools, each with an object input schema', () => {
    expect(tools.length).toBeGreaterThanOrEqual(20);
    for (const t of tools) expect(t.schema.type, t.name).toBe('object');
    expect(snapshotB).toContain(markB);
  });

  fuzzProperties({
    found: () => ({ tools, hints }),
    fuzzOnce: (t, args) => fuzzOnce(t, args),
    runs: { valid: VALID_RUNS, mutated: MUTATED_RUNS, any: ANY_RUNS },
    validTimeoutMs: 240_000,
  });

  it('arguments that are not an object (regression: the SDK answered -32603 Internal error)', async () => {
    const createTodo = tool('create_todo');
    for (const args of ['str', [1, 2], null, 5, true]) {
      const outcome = await callTool(a.client, createTodo.name, args);
      expect(outcome.kind === 'rpc-error' ? outcome.code : outcome.kind, JSON.stringify(outcome)).toBe(
        -32602,
      );
      expect(problemWith(outcome, createTodo.schema, args)).toBeNull();
    }
  });

  it("after the fuzz run: B's data unchanged, no third tenant, both tenants read everything, no server error", async () => {
    expect(await tenantRows(tenantB)).toBe(snapshotB);
    const tenants = await owners();
    expect(tenants).toContain(tenantA);
    expect(tenants).toContain(tenantB);
    expect(tenants.filter((t) => t !== tenantA && t !== tenantB)).toEqual([]);
    const readB = await readEverything(b.client);
    expect(readB.text).toContain(markB);
    const readA = await readEverything(a.client);
    expect(readA.text).not.toContain(markB);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(errorLogLines(fx.logs()).map((l) => l.slice(0, 400))).toEqual([]);
    expect(watch.problems).toEqual([]);
    console.log(
      `[fuzz mcp http] ${tally.total()} fuzzed calls (${tools.length} tools × ${VALID_RUNS} + ${MUTATED_RUNS} + ${ANY_RUNS}); ` +
        `outcomes: ${tally.toString()}; A reads ${readA.items} items in ${readA.calls} calls afterwards`,
    );
  }, 120_000);
});
