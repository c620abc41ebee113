/**
 * A bounded load test of HTTP mode as deployed: `mcp-pa serve` in a child process (real PostgreSQL when
 * MCP_PA_TEST_DATABASE_URL is set, else PGlite in its data folder), many tenants, each its own account and OAuth
 * client (dynamic registration, PKCE, the real sign-in and consent forms) with stateful MCP sessions of the real
 * SDK client, driven at a fixed number of calls in flight with a mix of reads and writes for MCP_PA_LOAD_SECONDS
 * (default 45), while every tenant rotates its tokens on a timer (access tokens live 60 s, the shortest allowed)
 * and part of the calls keep presenting the previous access token.
 *
 * Asserted: every HTTP answer 2xx (no 5xx, no 429, no 401), no transport error, no failed call; every acknowledged
 * write present exactly once, in its own tenant only, nothing unacknowledged present twice, every update's last
 * acknowledged value the stored one (through the `export` tool, and in the database itself on PostgreSQL); the
 * server's memory flat after warm-up: its live JS heap after a forced full garbage collection (through its
 * inspector, on a free loopback port) at the end against the same after the first third, and its resident memory
 * (median of the last third of the run against the median of the second third; looser, as V8 collects lazily);
 * calls with the previous access token succeeding; a rotated refresh token refused (and its reuse revoking the
 * grant); no error and no secret in the server's log. Speed is measured and printed, never asserted.
 *
 * Settings (environment): MCP_PA_LOAD_SECONDS (5–600, default 45), MCP_PA_LOAD_TENANTS (2–20, default 20; the
 * registration limit is 20 clients a minute per address), MCP_PA_LOAD_CONCURRENCY (1–64, default 24 calls in
 * flight), MCP_PA_LOAD_SUMMARY (where the JSON summary goes; default mcp-pa-load-summary-<backend>.json in the
 * temp folder, overwritten by each run; its path is printed).
 */
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { httpsFetch, rawRequest } from '../support/https.js';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../support/postgres.js';
import {
  headlessTokens,
  refreshTokens,
  startServerProcess,
  type ServerProcess,
} from '../support/server-process.js';
import {
  envInt,
  Examples,
  InspectorClient,
  marker,
  markersIn,
  median,
  mib,
  MIB,
  percentile,
  pick,
  readCpuSeconds,
  readRss,
  sleep,
  Tally,
} from './load-kit.js';

const LOAD_SECONDS = envInt('MCP_PA_LOAD_SECONDS', 45, 5, 600);
const TENANTS = envInt('MCP_PA_LOAD_TENANTS', 20, 2, 20);
const CONCURRENCY = envInt('MCP_PA_LOAD_CONCURRENCY', 24, 1, 64);
const SESSIONS_PER_TENANT = 2;
/** Share of tools/call that write (create or update); the rest read. */
const WRITE_SHARE = 0.3;
/** The shortest access-token lifetime the configuration allows. */
const TOKEN_EXPIRY_S = 60;
/** Each tenant rotates its tokens this often (about three times or more in a run). */
const REFRESH_EVERY_MS = Math.min(12_000, Math.floor((LOAD_SECONDS * 1000) / 3));
/** Share of tools/call sent with the previous access token while it has this much life left. */
const OLD_TOKEN_SHARE = 0.1;
const OLD_TOKEN_MARGIN_MS = 10_000;
const CALL_TIMEOUT_MS = 30_000;
const RSS_EVERY_MS = 1000;
/**
 * Memory criteria. The live JS heap after a forced full garbage collection (what a leak of JS objects grows) at
 * the end of the run ≤ the same after warm-up × HEAP_FACTOR + HEAP_SLACK. The resident memory, which also holds
 * what V8 has not collected yet (it grows for a while under load without any leak) and native memory: median of
 * the last third of the run ≤ median of the second third × RSS_FACTOR + RSS_SLACK.
 */
const HEAP_FACTOR = 1.1;
const HEAP_SLACK = 8 * MIB;
const RSS_FACTOR = 1.5;
const RSS_SLACK = 64 * MIB;
/**
 * Tenants whose rotated refresh token is presented again at the end. Failed token requests of public clients are
 * limited per address (20 a minute, then 429), and each of these tenants makes two (the rotated token, then its
 * current one after the reuse revoked the grant).
 */
const REUSE_CHECKS = Math.min(TENANTS, 8);

const BACKEND = TEST_DATABASE_URL ? 'PostgreSQL' : 'PGlite';

interface CreateRecord {
  readonly marker: string;
  readonly kind: 'note' | 'task' | 'event';
  acked: boolean;
  id?: string;
}

interface UpdateHistory {
  /** The marker of the last acknowledged update. */
  lastAcked?: string;
  /** Updates sent after it that were not acknowledged (their effect is unknown). */
  unackedSince: string[];
  acked: number;
}

interface Tenant {
  readonly index: number;
  readonly username: string;
  readonly password: string;
  readonly clientId: string;
  access: string;
  accessExp: number;
  refresh: string;
  previous?: { readonly access: string; readonly exp: number };
  /** Refresh tokens already rotated away, oldest first. */
  readonly rotated: string[];
  refreshes: number;
  readonly sessions: { client: Client; transport: StreamableHTTPClientTransport }[];
  readonly creates: Map<string, CreateRecord>;
  readonly todoIds: string[];
  readonly noteMarkers: { marker: string; id: string }[];
  readonly busy: Set<string>;
  readonly updates: Map<string, UpdateHistory>;
}

interface RssSample {
  readonly atS: number;
  readonly rss: number;
}

/** Everything measured; printed and written as JSON at the end whatever happened. */
const stats = {
  backend: BACKEND,
  settings: {
    loadSeconds: LOAD_SECONDS,
    tenants: TENANTS,
    sessionsPerTenant: SESSIONS_PER_TENANT,
    concurrency: CONCURRENCY,
    writeShare: WRITE_SHARE,
    tokenExpiryS: TOKEN_EXPIRY_S,
    refreshEveryMs: REFRESH_EVERY_MS,
    oldTokenShare: OLD_TOKEN_SHARE,
  },
  setupMs: 0,
  setupPhasesMs: {} as Record<string, number>,
  elapsedMs: 0,
  http: new Tally(),
  calls: new Tally(),
  oldTokenCalls: new Tally(),
  transportErrors: 0,
  transportExamples: new Examples(),
  callFailures: 0,
  callFailureExamples: new Examples(),
  toolErrors: 0,
  toolErrorExamples: new Examples(),
  leaks: 0,
  leakExamples: new Examples(),
  anomalies: new Examples(),
  reads: 0,
  writes: 0,
  writesAcked: 0,
  updates: 0,
  updatesAcked: 0,
  searches: 0,
  searchHits: 0,
  refreshes: 0,
  refreshFailures: 0,
  refreshExamples: new Examples(),
  readLatencies: [] as number[],
  writeLatencies: [] as number[],
  refreshLatencies: [] as number[],
  rss: [] as RssSample[],
  rssBefore: undefined as number | undefined,
  rssAfter: undefined as number | undefined,
  heap: {} as {
    warmUp?: number;
    end?: number;
    rssAfterWarmUpGc?: number;
    rssAfterEndGc?: number;
    callsAtWarmUp?: number;
  },
  serverCpuSeconds: undefined as number | undefined,
  serverLogLines: new Tally(),
  verification: {} as Record<string, unknown>,
};

let sp: ServerProcess | undefined;
let inspector: InspectorClient | undefined;
let db: TestDatabase | undefined;
let agent: Agent | undefined;
let fetchImpl: typeof fetch;
const tenants: Tenant[] = [];
/** Every token handed out in the run, to check none reaches the server's log. */
const allTokens: string[] = [];
let seq = 0;
/** Set while clients are being closed: aborted streams then are not transport errors. */
let closing = false;
let sessionsClosed = false;
let logsAtLoadStart = 0;

function tenantLabel(i: number): string {
  return `t${String(i).padStart(2, '0')}`;
}

function expOf(token: string): number {
  const exp = decodeJwt(token).exp;
  if (typeof exp !== 'number') throw new Error('access token without exp');
  return exp * 1000;
}

/** The JSON-RPC method a request body carries ('response' for a reply, the HTTP method for no body). */
function rpcMethod(method: string, body: unknown): string {
  if (typeof body !== 'string') return method;
  try {
    const parsed = JSON.parse(body) as { method?: unknown };
    return typeof parsed.method === 'string' ? parsed.method : 'response';
  } catch {
    return 'unparsable';
  }
}

/** fetch for one tenant's sessions: its current access token (sometimes the previous one), every answer counted. */
function tenantFetch(t: Tenant): FetchLike {
  return async (url, init) => {
    const method = (init?.method ?? 'GET').toUpperCase();
    const rpc = rpcMethod(method, init?.body);
    const headers = new Headers(init?.headers);
    let token = t.access;
    let old = false;
    if (
      rpc === 'tools/call' &&
      t.previous !== undefined &&
      t.previous.exp - Date.now() > OLD_TOKEN_MARGIN_MS &&
      Math.random() < OLD_TOKEN_SHARE
    ) {
      token = t.previous.access;
      old = true;
    }
    headers.set('authorization', `Bearer ${token}`);
    try {
      const res = await fetchImpl(url, { ...init, headers });
      stats.http.add(`${method} ${rpc} ${res.status}`);
      if (old) stats.oldTokenCalls.add(String(res.status));
      return res;
    } catch (err) {
      if (!closing) {
        stats.transportErrors++;
        stats.transportExamples.add(`${method} ${rpc}: ${String(err)}`);
      }
      throw err;
    }
  };
}

async function openSession(t: Tenant): Promise<void> {
  const transport = new StreamableHTTPClientTransport(new URL(sp!.resource), { fetch: tenantFetch(t) });
  const client = new Client({ name: `mcp-pa-load-${tenantLabel(t.index)}`, version: '1.0.0' });
  await client.connect(transport);
  t.sessions.push({ client, transport });
}

/** Reports what a read answer shows of other tenants' writes (it must show none). */
function scanForLeaks(t: Tenant, result: CallToolResult): void {
  const text = JSON.stringify(result);
  for (const found of markersIn(text)) {
    if (found.tenant !== t.index) {
      stats.leaks++;
      stats.leakExamples.add(`${tenantLabel(t.index)} saw ${found.marker}`);
    }
  }
}

async function call(
  t: Tenant,
  client: Client,
  name: string,
  args: Record<string, unknown>,
  kind: 'read' | 'write',
): Promise<CallToolResult | undefined> {
  const started = performance.now();
  try {
    const result = (await client.callTool({ name, arguments: args }, undefined, {
      timeout: CALL_TIMEOUT_MS,
    })) as CallToolResult;
    (kind === 'read' ? stats.readLatencies : stats.writeLatencies).push(performance.now() - started);
    if (result.isError) {
      stats.toolErrors++;
      stats.calls.add(`${name} isError`);
      const first = result.content[0];
      stats.toolErrorExamples.add(`${name}: ${first?.type === 'text' ? first.text : JSON.stringify(first)}`);
      return undefined;
    }
    stats.calls.add(`${name} ok`);
    return result;
  } catch (err) {
    stats.callFailures++;
    stats.calls.add(`${name} threw`);
    stats.callFailureExamples.add(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

function record(result: CallToolResult | undefined, key: string): Record<string, unknown> | undefined {
  const value = result?.structuredContent?.[key];
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

async function create(t: Tenant, client: Client, kind: CreateRecord['kind']): Promise<void> {
  const m = marker('C', t.index, ++seq);
  const rec: CreateRecord = { marker: m, kind, acked: false };
  t.creates.set(m, rec);
  stats.writes++;
  let result: CallToolResult | undefined;
  let stored: Record<string, unknown> | undefined;
  let storedText: unknown;
  if (kind === 'note') {
    result = await call(t, client, 'add_note', { text: `load note ${m}`, tags: ['load'] }, 'write');
    stored = record(result, 'note');
    storedText = stored?.['text'];
  } else if (kind === 'task') {
    result = await call(t, client, 'create_todo', { title: `load todo ${m}`, priority: 'low' }, 'write');
    stored = record(result, 'todo');
    storedText = stored?.['title'];
  } else {
    const day = new Date(Date.now() + (1 + Math.floor(Math.random() * 20)) * 86_400_000);
    result = await call(
      t,
      client,
      'create_calendar_event',
      { title: `load event ${m}`, start_time: `${day.toISOString().slice(0, 10)}T10:00:00Z` },
      'write',
    );
    stored = record(result, 'event');
    storedText = stored?.['title'];
  }
  const id = stored?.['id'];
  if (result === undefined) return;
  if (typeof id !== 'string' || typeof storedText !== 'string' || !storedText.includes(m)) {
    stats.anomalies.add(
      `${kind} ${m}: answer without the stored item: ${JSON.stringify(result).slice(0, 200)}`,
    );
    return;
  }
  if (result.structuredContent?.['created'] !== true)
    stats.anomalies.add(`${kind} ${m}: created is not true`);
  rec.acked = true;
  rec.id = id;
  stats.writesAcked++;
  if (kind === 'task') t.todoIds.push(id);
  if (kind === 'note') t.noteMarkers.push({ marker: m, id });
}

/** Changes one acknowledged task's description; one update in flight per task, so "last" is well defined. */
async function update(t: Tenant, client: Client): Promise<void> {
  const free = t.todoIds.filter((id) => !t.busy.has(id));
  if (free.length === 0) return create(t, client, 'task');
  const id = pick(free);
  t.busy.add(id);
  const m = marker('U', t.index, ++seq);
  const history = t.updates.get(id) ?? { unackedSince: [], acked: 0 };
  t.updates.set(id, history);
  stats.writes++;
  stats.updates++;
  try {
    const result = await call(
      t,
      client,
      'update_items',
      { items: [{ id, changes: { description: m } }] },
      'write',
    );
    const results = result?.structuredContent?.['results'];
    const first = Array.isArray(results) ? (results[0] as Record<string, unknown> | undefined) : undefined;
    const item = first?.['item'] as Record<string, unknown> | null | undefined;
    if (result !== undefined && first?.['ok'] === true && item?.['description'] === m) {
      history.lastAcked = m;
      history.unackedSince = [];
      history.acked++;
      stats.writesAcked++;
      stats.updatesAcked++;
    } else {
      history.unackedSince.push(m);
      if (result !== undefined) {
        stats.anomalies.add(`update ${m} of ${id} not applied: ${JSON.stringify(first).slice(0, 200)}`);
      }
    }
  } finally {
    t.busy.delete(id);
  }
}

async function read(t: Tenant, client: Client): Promise<void> {
  stats.reads++;
  const r = Math.random();
  let result: CallToolResult | undefined;
  if (r < 0.3) {
    result = await call(t, client, 'list_todos', { limit: 25 }, 'read');
  } else if (r < 0.55) {
    const target = t.noteMarkers.length > 0 ? pick(t.noteMarkers) : undefined;
    stats.searches++;
    result = await call(t, client, 'search', { query: target?.marker ?? 'load', limit: 10 }, 'read');
    const results = result?.structuredContent?.['results'];
    if (
      target &&
      Array.isArray(results) &&
      results.some((x) => (x as Record<string, unknown>)['id'] === target.id)
    ) {
      stats.searchHits++;
    }
  } else if (r < 0.7) {
    result = await call(t, client, 'get_dashboard', {}, 'read');
  } else if (r < 0.85) {
    result = await call(t, client, 'list_calendar_events', { limit: 25 }, 'read');
  } else {
    result = await call(t, client, 'get_status', {}, 'read');
  }
  if (result) scanForLeaks(t, result);
}

async function worker(deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const t = pick(tenants);
    const { client } = pick(t.sessions);
    if (Math.random() < WRITE_SHARE) {
      const w = Math.random();
      if (w < 0.35) await create(t, client, 'note');
      else if (w < 0.6) await create(t, client, 'task');
      else if (w < 0.75) await create(t, client, 'event');
      else await update(t, client);
    } else {
      await read(t, client);
    }
  }
}

/** Rotates one tenant's tokens every REFRESH_EVERY_MS (staggered across tenants) until the deadline. */
async function refresher(t: Tenant, start: number, deadline: number): Promise<void> {
  let next = start + Math.floor((t.index / TENANTS) * REFRESH_EVERY_MS) + 500;
  for (;;) {
    await sleep(Math.min(next, deadline) - Date.now());
    if (Date.now() >= deadline) return;
    const started = performance.now();
    try {
      const fresh = await refreshTokens(sp!, t.clientId, t.refresh, fetchImpl);
      stats.refreshLatencies.push(performance.now() - started);
      t.previous = { access: t.access, exp: t.accessExp };
      t.rotated.push(t.refresh);
      t.access = fresh.accessToken;
      t.accessExp = expOf(fresh.accessToken);
      t.refresh = fresh.refreshToken;
      t.refreshes++;
      stats.refreshes++;
      allTokens.push(fresh.accessToken, fresh.refreshToken);
    } catch (err) {
      stats.refreshFailures++;
      stats.refreshExamples.add(err instanceof Error ? err.message : String(err));
    }
    next += REFRESH_EVERY_MS;
  }
}

async function closeSessions(): Promise<void> {
  if (sessionsClosed) return;
  sessionsClosed = true;
  closing = true;
  for (const t of tenants) {
    for (const { client, transport } of t.sessions) {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    }
  }
}

/** Runs `fn` over items with at most `limit` at once. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

function rssAt(fromS: number, toS: number): number[] {
  return stats.rss.filter((s) => s.atS >= fromS && s.atS < toS).map((s) => s.rss);
}

function firstRssFrom(atS: number): number | undefined {
  return stats.rss.find((s) => s.atS >= atS)?.rss;
}

function latency(values: readonly number[]): { n: number; p50: number; p95: number; max: number } {
  return {
    n: values.length,
    p50: Math.round(percentile(values, 50) * 10) / 10,
    p95: Math.round(percentile(values, 95) * 10) / 10,
    max: Math.round(Math.max(0, ...values) * 10) / 10,
  };
}

function summary(): Record<string, unknown> {
  const D = LOAD_SECONDS;
  const toolCalls = stats.calls.total();
  const seconds = stats.elapsedMs / 1000;
  const byStatus = new Tally();
  for (const [label, n] of Object.entries(stats.http.toJSON()))
    byStatus.add(label.split(' ').at(-1) ?? '?', n);
  return {
    backend: stats.backend,
    settings: stats.settings,
    setupSeconds: Math.round(stats.setupMs / 100) / 10,
    setupPhasesSeconds: Object.fromEntries(
      Object.entries(stats.setupPhasesMs).map(([k, v]) => [k, Math.round(v / 100) / 10]),
    ),
    loadSeconds: Math.round(seconds * 10) / 10,
    serverCpuSecondsDuringLoad: stats.serverCpuSeconds,
    serverLogLinesDuringLoad: stats.serverLogLines.toJSON(),
    httpRequests: stats.http.total(),
    toolCalls,
    callsPerSecond: seconds > 0 ? Math.round((toolCalls / seconds) * 10) / 10 : null,
    httpRequestsPerSecond: seconds > 0 ? Math.round((stats.http.total() / seconds) * 10) / 10 : null,
    reads: stats.reads,
    writes: stats.writes,
    writesAcknowledged: stats.writesAcked,
    updates: stats.updates,
    updatesAcknowledged: stats.updatesAcked,
    refreshes: stats.refreshes,
    refreshFailures: stats.refreshFailures,
    oldTokenCalls: stats.oldTokenCalls.toJSON(),
    searchesForOwnNote: `${stats.searchHits}/${stats.searches}`,
    httpByStatus: byStatus.toJSON(),
    httpByRequest: stats.http.toJSON(),
    callOutcomes: stats.calls.toJSON(),
    transportErrors: stats.transportErrors,
    callFailures: stats.callFailures,
    toolErrors: stats.toolErrors,
    leaks: stats.leaks,
    examples: {
      transport: stats.transportExamples.list(),
      callFailures: stats.callFailureExamples.list(),
      toolErrors: stats.toolErrorExamples.list(),
      leaks: stats.leakExamples.list(),
      anomalies: stats.anomalies.list(),
      refresh: stats.refreshExamples.list(),
    },
    latencyMs: {
      read: latency(stats.readLatencies),
      write: latency(stats.writeLatencies),
      refresh: latency(stats.refreshLatencies),
    },
    liveHeapAfterFullGc: {
      afterWarmUp: mib(stats.heap.warmUp),
      end: mib(stats.heap.end),
      growthPerCallAfterWarmUp:
        stats.heap.warmUp !== undefined &&
        stats.heap.end !== undefined &&
        stats.heap.callsAtWarmUp !== undefined
          ? `${Math.round((stats.heap.end - stats.heap.warmUp) / Math.max(1, stats.calls.total() - stats.heap.callsAtWarmUp))} B`
          : 'n/a',
    },
    rss: {
      beforeLoad: mib(stats.rssBefore),
      afterWarmUp: mib(firstRssFrom(D / 3)),
      middle: mib(firstRssFrom(D / 2)),
      end: mib(stats.rss.at(-1)?.rss),
      afterVerification: mib(stats.rssAfter),
      afterWarmUpFullGc: mib(stats.heap.rssAfterWarmUpGc),
      afterEndFullGc: mib(stats.heap.rssAfterEndGc),
      medianSecondThird: mib(median(rssAt(D / 3, (2 * D) / 3))),
      medianLastThird: mib(median(rssAt((2 * D) / 3, Number.POSITIVE_INFINITY))),
      peak: mib(Math.max(0, ...stats.rss.map((s) => s.rss))),
      samples: stats.rss.length,
      seriesMiB: stats.rss.map((s) => [Math.round(s.atS), Math.round((s.rss / MIB) * 10) / 10]),
    },
    verification: stats.verification,
  };
}

describe(`bounded mixed load on HTTP mode in a child process (${BACKEND})`, () => {
  beforeAll(async () => {
    const started = performance.now();
    let mark = started;
    const phase = (name: string): void => {
      const now = performance.now();
      stats.setupPhasesMs[name] = now - mark;
      mark = now;
    };
    if (TEST_DATABASE_URL) db = await createTestDatabase();
    const names = Array.from({ length: TENANTS }, (_, i) => `load-${tenantLabel(i)}`);
    sp = await startServerProcess({
      env: {
        ...(db ? { MCP_DATABASE_URL: db.url } : {}),
        // The inspector, on a free loopback port, to force full garbage collections and read the live heap.
        NODE_OPTIONS: '--inspect=127.0.0.1:0',
      },
      users: names,
      usersInProcess: true,
      config: {
        authentication: { token_expiry: TOKEN_EXPIRY_S },
        security: { mcp_requests_per_minute: 100_000 },
      },
    });
    phase('accounts and server start');
    const inspectorUrl = InspectorClient.urlIn(sp.logs());
    if (!inspectorUrl) throw new Error(`the server printed no inspector URL:\n${sp.logs().slice(0, 2000)}`);
    inspector = await InspectorClient.connect(inspectorUrl);
    agent = new Agent({ keepAlive: true, ca: sp.ca.cert });
    fetchImpl = httpsFetch(sp.ca.cert, agent);
    const server = sp;
    await eachLimited(names, 4, async (username) => {
      const index = names.indexOf(username);
      const user = server.users.get(username)!;
      const tokens = await headlessTokens({ ...server, user, clientName: `load ${tenantLabel(index)}` });
      allTokens.push(tokens.accessToken, tokens.refreshToken);
      tenants.push({
        index,
        username,
        password: user.password,
        clientId: tokens.clientId,
        access: tokens.accessToken,
        accessExp: expOf(tokens.accessToken),
        refresh: tokens.refreshToken,
        rotated: [],
        refreshes: 0,
        sessions: [],
        creates: new Map(),
        todoIds: [],
        noteMarkers: [],
        busy: new Set(),
        updates: new Map(),
      });
    });
    tenants.sort((a, b) => a.index - b.index);
    phase('OAuth flows');
    await eachLimited(tenants, 8, async (t) => {
      for (let s = 0; s < SESSIONS_PER_TENANT; s++) await openSession(t);
    });
    phase('MCP sessions');
    stats.setupMs = performance.now() - started;
  }, 240_000);

  afterAll(async () => {
    try {
      await closeSessions();
      await inspector?.close();
    } finally {
      try {
        await sp?.close();
      } finally {
        agent?.destroy();
        await db?.drop();
        const out = summary();
        const file =
          process.env['MCP_PA_LOAD_SUMMARY'] || path.join(tmpdir(), `mcp-pa-load-summary-${BACKEND}.json`);
        writeFileSync(file, JSON.stringify(out, null, 2));
        const brief = {
          ...out,
          httpByRequest: undefined,
          rss: { ...(out['rss'] as object), seriesMiB: undefined },
        };
        console.log(`load test summary (JSON: ${file}):\n${JSON.stringify(brief, null, 2)}`);
      }
    }
  }, 60_000);

  it(
    `serves ${TENANTS} tenants × ${SESSIONS_PER_TENANT} sessions at ${CONCURRENCY} calls in flight for ${LOAD_SECONDS} s: every answer 2xx, no transport error, no failed call`,
    async () => {
      const server = sp!;
      expect(tenants).toHaveLength(TENANTS);
      const pid = server.pid();
      stats.rssBefore = readRss(pid);
      const cpuBefore = readCpuSeconds(pid);
      logsAtLoadStart = server.logs().length;
      const start = Date.now();
      const deadline = start + LOAD_SECONDS * 1000;
      const sampler = setInterval(() => {
        const rss = readRss(pid);
        if (rss !== undefined && Date.now() <= deadline + 500)
          stats.rss.push({ atS: (Date.now() - start) / 1000, rss });
      }, RSS_EVERY_MS);
      // The live heap after warm-up: a full garbage collection at the end of the first third.
      const warmHeap = sleep((LOAD_SECONDS * 1000) / 3).then(async () => {
        stats.heap.warmUp = await inspector!.liveHeapAfterGc();
        stats.heap.callsAtWarmUp = stats.calls.total();
        stats.heap.rssAfterWarmUpGc = readRss(pid);
      });
      try {
        await Promise.all([
          ...Array.from({ length: CONCURRENCY }, () => worker(deadline)),
          ...tenants.map((t) => refresher(t, start, deadline)),
          warmHeap,
        ]);
      } finally {
        clearInterval(sampler);
        stats.elapsedMs = Date.now() - start;
      }
      const end = readRss(pid);
      if (end !== undefined) stats.rss.push({ atS: stats.elapsedMs / 1000, rss: end });
      // And after the run, the same way.
      stats.heap.end = await inspector!.liveHeapAfterGc();
      stats.heap.rssAfterEndGc = readRss(pid);
      const cpuAfter = readCpuSeconds(pid);
      if (cpuBefore !== undefined && cpuAfter !== undefined) {
        stats.serverCpuSeconds = Math.round((cpuAfter - cpuBefore) * 10) / 10;
      }
      for (const line of server.logs().slice(logsAtLoadStart).split('\n')) {
        if (line.trim() === '') continue;
        try {
          const entry = JSON.parse(line) as { level?: number; msg?: string };
          stats.serverLogLines.add(`${entry.level ?? '?'} ${entry.msg ?? ''}`.slice(0, 80));
        } catch {
          stats.serverLogLines.add('(not JSON)');
        }
      }

      expect(server.running()).toBe(true);
      expect(stats.calls.total()).toBeGreaterThan(0);
      expect(stats.transportExamples.list()).toEqual([]);
      expect(stats.transportErrors).toBe(0);
      expect(stats.callFailureExamples.list()).toEqual([]);
      expect(stats.callFailures).toBe(0);
      expect(stats.toolErrorExamples.list()).toEqual([]);
      const notOk = Object.entries(stats.http.toJSON()).filter(([label]) => !/ 2\d\d$/.test(label));
      expect(notOk).toEqual([]);
      expect(stats.http.total((l) => / 5\d\d$/.test(l))).toBe(0);
      expect(stats.leakExamples.list()).toEqual([]);
      expect(stats.anomalies.list()).toEqual([]);
      expect(stats.writesAcked).toBe(stats.writes);
      expect(stats.reads).toBeGreaterThan(stats.writes);
    },
    LOAD_SECONDS * 1000 + 90_000,
  );

  it('rotates every tenant’s tokens during the run; calls with the previous access token succeed while it lives', () => {
    expect(stats.refreshExamples.list()).toEqual([]);
    expect(stats.refreshFailures).toBe(0);
    // Each tenant's first rotation starts within the first third of the run (later ones depend on the speed).
    for (const t of tenants) expect(t.refreshes, tenantLabel(t.index)).toBeGreaterThanOrEqual(1);
    expect(stats.refreshes).toBeGreaterThanOrEqual(TENANTS);
    const old = stats.oldTokenCalls.toJSON();
    expect(Object.keys(old)).toEqual(['200']);
    expect(old['200']).toBeGreaterThan(0);
    // Each rotation gave a new, different access token.
    for (const t of tenants) expect(new Set([t.access, t.previous?.access]).size).toBe(2);
  });

  it('keeps every acknowledged write exactly once, in its own tenant only, with each update’s last value', async () => {
    let lost = 0;
    let duplicated = 0;
    let foreign = 0;
    let phantom = 0;
    let wrongUpdate = 0;
    const problems = new Examples(20);
    const exported: Record<string, number> = {};
    for (const t of tenants) {
      const result = await call(t, t.sessions[0]!.client, 'export', { format: 'json' }, 'read');
      const content = result?.structuredContent?.['content'];
      expect(typeof content, `export of ${tenantLabel(t.index)}`).toBe('string');
      const body = JSON.parse(content as string) as Record<string, unknown>;
      const seen = new Map<string, { id: string; kind: string }[]>();
      const descriptions = new Map<string, string | null>();
      const items = (key: string): Record<string, unknown>[] => {
        const v = body[key];
        return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
      };
      const collect = (kind: string, item: Record<string, unknown>, text: unknown): void => {
        for (const found of markersIn(String(text ?? ''))) {
          if (found.type !== 'C') continue;
          const list = seen.get(found.marker) ?? [];
          list.push({ id: String(item['id']), kind });
          seen.set(found.marker, list);
        }
      };
      for (const task of items('tasks')) {
        collect('task', task, task['title']);
        descriptions.set(String(task['id']), (task['description'] as string | null) ?? null);
        for (const found of markersIn(String(task['description'] ?? ''))) {
          if (found.tenant !== t.index) {
            foreign++;
            problems.add(`${tenantLabel(t.index)} holds update ${found.marker}`);
          }
        }
      }
      for (const note of items('notes')) collect('note', note, note['text']);
      for (const event of items('events')) collect('event', event, event['title']);
      exported[tenantLabel(t.index)] = seen.size;

      for (const [m, where] of seen) {
        const owner = markersIn(m)[0]!.tenant;
        if (owner !== t.index) {
          foreign++;
          problems.add(`${tenantLabel(t.index)} holds ${m} of ${tenantLabel(owner)}`);
          continue;
        }
        const rec = t.creates.get(m);
        if (rec === undefined) {
          phantom++;
          problems.add(`${m} was never sent`);
        } else if (where.length > 1) {
          duplicated++;
          problems.add(
            `${m} stored ${where.length} times (${rec.acked ? 'acknowledged' : 'unacknowledged'})`,
          );
        } else if (rec.acked && (where[0]!.id !== rec.id || where[0]!.kind !== rec.kind)) {
          problems.add(`${m} stored as ${JSON.stringify(where[0])}, acknowledged as ${rec.kind} ${rec.id}`);
          lost++;
        }
      }
      for (const rec of t.creates.values()) {
        if (rec.acked && !seen.has(rec.marker)) {
          lost++;
          problems.add(`${tenantLabel(t.index)}: acknowledged ${rec.kind} ${rec.marker} (${rec.id}) missing`);
        }
      }
      for (const [id, history] of t.updates) {
        const stored = descriptions.get(id);
        const allowed = [history.lastAcked ?? null, ...history.unackedSince];
        if (stored === undefined || !allowed.includes(stored)) {
          wrongUpdate++;
          problems.add(
            `task ${id}: description ${JSON.stringify(stored)}, expected one of ${JSON.stringify(allowed)}`,
          );
        }
      }
    }
    stats.rssAfter = readRss(sp!.pid());
    stats.verification['export'] = {
      exportedMarkersPerTenant: exported,
      lost,
      duplicated,
      foreign,
      phantom,
      wrongUpdate,
    };

    if (db) {
      // The same, counted in the database itself (as the superuser, so across every tenant).
      const rows = await db.query<{ tenant_id: string; id: string; kind: string; text: string }>(
        `SELECT tenant_id, id, kind, title || ' ' || body AS text FROM items WHERE (title || ' ' || body) ~ 'LM[CU]-t'`,
      );
      const rowsByMarker = new Map<string, { tenant_id: string; id: string }[]>();
      const tenantIds = new Map<number, Set<string>>();
      for (const row of rows) {
        for (const m of new Set(markersIn(row.text).map((f) => f.marker))) {
          const owner = markersIn(m)[0]!.tenant;
          const ids = tenantIds.get(owner) ?? new Set<string>();
          ids.add(row.tenant_id);
          tenantIds.set(owner, ids);
          if (!m.startsWith('LMC')) continue;
          const list = rowsByMarker.get(m) ?? [];
          list.push({ tenant_id: row.tenant_id, id: row.id });
          rowsByMarker.set(m, list);
        }
      }
      let dbProblems = 0;
      for (const t of tenants) {
        const ids = tenantIds.get(t.index) ?? new Set();
        const wrote = [...t.creates.values()].some((r) => r.acked);
        if (wrote ? ids.size !== 1 : ids.size !== 0) {
          dbProblems++;
          problems.add(`database: writes of ${tenantLabel(t.index)} under tenants ${[...ids].join(', ')}`);
        }
        for (const rec of t.creates.values()) {
          const found = rowsByMarker.get(rec.marker) ?? [];
          if (rec.acked ? found.length !== 1 || found[0]!.id !== rec.id : found.length > 1) {
            dbProblems++;
            problems.add(`database: ${rec.marker} in ${found.length} rows ${JSON.stringify(found)}`);
          }
        }
      }
      // Different tenants' writes under different tenant ids.
      const distinct = new Set([...tenantIds.values()].flatMap((s) => [...s]));
      expect(distinct.size).toBe(tenantIds.size);
      stats.verification['database'] = {
        rows: rows.length,
        markers: rowsByMarker.size,
        problems: dbProblems,
      };
      expect(dbProblems).toBe(0);
    }

    expect(problems.list()).toEqual([]);
    expect({ lost, duplicated, foreign, phantom, wrongUpdate }).toEqual({
      lost: 0,
      duplicated: 0,
      foreign: 0,
      phantom: 0,
      wrongUpdate: 0,
    });
    const acked = tenants.reduce((n, t) => n + [...t.creates.values()].filter((r) => r.acked).length, 0);
    expect(Object.values(exported).reduce((a, b) => a + b, 0)).toBe(acked);
    expect(acked).toBeGreaterThan(0);
  }, 120_000);

  it('keeps the server’s memory flat after warm-up (live heap after a full GC, and resident memory)', () => {
    const { warmUp, end } = stats.heap;
    expect(warmUp).toBeTypeOf('number');
    expect(end).toBeTypeOf('number');
    const heapBound = warmUp! * HEAP_FACTOR + HEAP_SLACK;
    const D = LOAD_SECONDS;
    const second = rssAt(D / 3, (2 * D) / 3);
    const last = rssAt((2 * D) / 3, Number.POSITIVE_INFINITY);
    const rssBound = median(second) * RSS_FACTOR + RSS_SLACK;
    stats.verification['memory'] = {
      liveHeapAfterWarmUp: mib(warmUp),
      liveHeapAtEnd: mib(end),
      heapBound: mib(heapBound),
      rssMedianSecondThird: mib(median(second)),
      rssMedianLastThird: mib(median(last)),
      rssBound: mib(rssBound),
    };
    expect(end!, `live heap after a full GC at the end ≤ ${mib(heapBound)}`).toBeLessThanOrEqual(heapBound);
    // /proc is Linux's (CI runs there); elsewhere only the heap is compared.
    if (process.platform !== 'linux') return;
    expect(second.length).toBeGreaterThanOrEqual(3);
    expect(last.length).toBeGreaterThanOrEqual(3);
    expect(median(last), `median RSS of the last third ≤ ${mib(rssBound)}`).toBeLessThanOrEqual(rssBound);
  });

  it(`refuses a rotated refresh token (${REUSE_CHECKS} tenants); its reuse revokes the grant (access and refresh token refused)`, async () => {
    await closeSessions();
    const server = sp!;
    const post = (form: Record<string, string>) =>
      fetchImpl(`${server.origin}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
    const mcpStatus = async (token: string): Promise<number> =>
      (
        await rawRequest(server.resource, {
          method: 'POST',
          ca: server.ca.cert,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
        })
      ).status;
    const outcomes = new Tally();
    const checked = tenants
      .filter((_, i) => i % Math.ceil(TENANTS / REUSE_CHECKS) === 0)
      .slice(0, REUSE_CHECKS);
    expect(checked.length).toBeGreaterThan(0);
    for (const t of checked) {
      const rotatedAway = t.rotated.at(-1);
      expect(rotatedAway, tenantLabel(t.index)).toBeDefined();
      const res = await post({
        grant_type: 'refresh_token',
        refresh_token: rotatedAway!,
        client_id: t.clientId,
        resource: server.resource,
      });
      const body = (await res.json()) as { error?: string };
      outcomes.add(`rotated ${res.status} ${body.error ?? ''}`);
      expect([res.status, body.error], tenantLabel(t.index)).toEqual([400, 'invalid_grant']);
      // The reuse revoked the grant: its access token stops working (the grant check caches for ≤ 500 ms).
      let status = 0;
      for (let i = 0; i < 40; i++) {
        status = await mcpStatus(t.access);
        if (status === 401) break;
        await sleep(250);
      }
      outcomes.add(`access-after-reuse ${status}`);
      expect(status, tenantLabel(t.index)).toBe(401);
      const current = await post({
        grant_type: 'refresh_token',
        refresh_token: t.refresh,
        client_id: t.clientId,
        resource: server.resource,
      });
      const currentBody = (await current.json()) as { error?: string };
      outcomes.add(`current-after-reuse ${current.status} ${currentBody.error ?? ''}`);
      expect([current.status, currentBody.error], tenantLabel(t.index)).toEqual([400, 'invalid_grant']);
    }
    stats.verification['refreshReuse'] = outcomes.toJSON();
  }, 120_000);

  it('logs no error and no secret during the run', () => {
    const server = sp!;
    const logs = server.logs();
    const errors = logs
      .slice(logsAtLoadStart)
      .split('\n')
      .filter((line) => {
        try {
          return ((JSON.parse(line) as { level?: number }).level ?? 0) >= 50;
        } catch {
          return false;
        }
      });
    expect(errors.slice(0, 5)).toEqual([]);
    const secrets = [...allTokens, ...tenants.map((t) => t.password)];
    expect(secrets.length).toBeGreaterThan(TENANTS * 3);
    const leaked = secrets.filter((s) => logs.includes(s));
    expect(leaked.length).toBe(0);
  });
});
