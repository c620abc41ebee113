/**
 * Memory per idle stateful MCP session. The built CLI (`mcp-pa serve`) runs in a child process over TLS on
 * 127.0.0.1 with its security as deployed (OAuth on: one access token from the real flow, every request carries it),
 * stateful sessions, room for every session of the benchmark and an idle timeout far beyond its run, and the
 * inspector on a free loopback port. Each round forces a full garbage collection in the child and reads its live JS
 * heap (HeapProfiler.collectGarbage + Runtime.getHeapUsage), opens N sessions with a real `initialize` and
 * `notifications/initialized` (raw HTTPS, a few requests in flight), lets them sit idle, collects again and reads
 * the heap and the resident set (/proc/<pid>/status): bytes per session = Δheap / N (Δrss / N for information).
 * Then an even sample of the sessions (up to 250 a round) is checked alive (a tools/list on it answers), the server
 * log must show no session ended (idle or capacity), and all are closed with DELETE before the next round.
 *
 * Two variants, in alternating rounds: the session alone, and the session with the standalone GET SSE stream the
 * MCP SDK's StreamableHTTPClientTransport opens by default (it sends GET /mcp, Accept: text/event-stream, as soon
 * as the server answers `notifications/initialized` with 202, and keeps it open), so that figure includes what an
 * idle SDK client costs the server: the stream's request/response objects and its TLS connection. Target: ≤ 200 KB
 * per session (the heap figure, median of the rounds). Reports; never fails on the target.
 */
import { Agent, request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { InspectorClient, readRss } from '../test/load/load-kit.js';
import { headlessTokens, startServerProcess, type ServerProcess } from '../test/support/server-process.js';
import { heading, isEntry, percentile, quickMode, table } from './lib.js';

export const SESSION_MEMORY_TARGET_BYTES = 200 * 1024;

export type SessionVariant = 'session' | 'session + SSE stream';

export interface SessionMemoryRound {
  readonly variant: SessionVariant;
  readonly sessions: number;
  /** Live JS heap after a full GC, before the sessions were opened and after they sat idle. */
  readonly heapBefore: number;
  readonly heapAfter: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly heapPerSession: number;
  readonly rssPerSession: number;
  /** Seconds to open all the sessions. */
  readonly openSeconds: number;
  /** Sessions checked after the measurement (an even sample: every k-th) and how many answered tools/list. */
  readonly checked: number;
  readonly alive: number;
  /** SSE streams still open after the measurement (SSE variant; should be all). */
  readonly streamsOpen: number;
}

export interface SessionMemoryVariant {
  readonly variant: SessionVariant;
  readonly rounds: SessionMemoryRound[];
  readonly heapPerSession: number;
  readonly rssPerSession: number;
}

export interface SessionMemoryResult {
  readonly sessions: number;
  readonly roundsPerVariant: number;
  readonly idleSeconds: number;
  readonly concurrency: number;
  readonly variants: SessionMemoryVariant[];
  /** "MCP session ended" lines the server logged (idle or capacity eviction) during the run: should be 0. */
  readonly evictions: number;
  /** Live heap after the last round's sessions were deleted, against before the first round (a leak shows here). */
  readonly heapStart: number;
  readonly heapEnd: number;
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly text: string;
}

interface Stream {
  readonly res: IncomingMessage;
  closed: boolean;
}

interface Target {
  readonly url: URL;
  readonly ca: string;
  readonly token: string;
  /** Keep-alive connections for the POSTs and DELETEs. */
  readonly agent: Agent;
  /** One connection per SSE stream (a stream holds its HTTP/1.1 connection for as long as it is open). */
  readonly streamAgent: Agent;
}

function options(t: Target, method: string, headers: Record<string, string>, agent: Agent): RequestOptions {
  return {
    agent,
    ca: t.ca,
    hostname: t.url.hostname,
    port: t.url.port,
    path: t.url.pathname,
    method,
    headers: { authorization: `Bearer ${t.token}`, ...headers },
  };
}

/**
 * One request on a keep-alive connection. A request that meets a reset on a reused connection (the server closed
 * it as idle just as it was reused: the request was not read) is sent again once, on a new connection, as Node's
 * documentation advises; any other failure is thrown.
 */
async function send(
  t: Target,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Reply> {
  try {
    return await sendOnce(t, method, headers, body);
  } catch (err) {
    if ((err as { retry?: boolean }).retry !== true) throw err;
    return sendOnce(t, method, headers, body);
  }
}

function sendOnce(t: Target, method: string, headers: Record<string, string>, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(options(t, method, headers, t.agent), (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (req.reusedSocket && err.code === 'ECONNRESET') Object.assign(err, { retry: true });
      reject(err);
    });
    req.end(body);
  });
}

/** The JSON-RPC message of a JSON body or of the first `data:` line of an SSE body. */
function rpc(text: string): { result?: Record<string, unknown>; error?: unknown } {
  const json = text.trimStart().startsWith('{')
    ? text
    : (text
        .split('\n')
        .find((l) => l.startsWith('data:'))
        ?.slice(5) ?? '');
  return JSON.parse(json) as { result?: Record<string, unknown>; error?: unknown };
}

const POST = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** Opens a session the way an MCP client does: initialize, then notifications/initialized (and the GET stream). */
async function openSession(
  t: Target,
  index: number,
  withStream: boolean,
): Promise<{ id: string; stream?: Stream }> {
  const init = await send(
    t,
    'POST',
    POST,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'session-memory-bench', version: `1.0.${index}` },
      },
    }),
  );
  const id = init.headers['mcp-session-id'];
  if (init.status !== 200 || typeof id !== 'string' || rpc(init.text).result === undefined)
    throw new Error(`initialize: ${init.status} ${init.text.slice(0, 300)}`);
  const session = { 'mcp-session-id': id, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION };
  const note = await send(
    t,
    'POST',
    { ...POST, ...session },
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  );
  if (note.status !== 202)
    throw new Error(`notifications/initialized: ${note.status} ${note.text.slice(0, 300)}`);
  if (!withStream) return { id };
  const stream = await new Promise<Stream>((resolve, reject) => {
    const req = request(
      options(t, 'GET', { accept: 'text/event-stream', ...session }, t.streamAgent),
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET stream: ${res.statusCode}`));
          return;
        }
        const s: Stream = { res, closed: false };
        res.on('close', () => (s.closed = true));
        res.on('error', () => (s.closed = true));
        res.resume();
        resolve(s);
      },
    );
    req.on('error', reject);
    req.end();
  });
  return { id, stream };
}

async function isAlive(t: Target, id: string): Promise<boolean> {
  const r = await send(
    t,
    'POST',
    { ...POST, 'mcp-session-id': id, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
  );
  if (r.status !== 200) return false;
  const tools = rpc(r.text).result?.['tools'];
  return Array.isArray(tools) && tools.length > 0;
}

async function closeSession(t: Target, id: string): Promise<void> {
  const r = await send(t, 'DELETE', {
    'mcp-session-id': id,
    'mcp-protocol-version': LATEST_PROTOCOL_VERSION,
  });
  if (r.status !== 200) throw new Error(`DELETE: ${r.status} ${r.text.slice(0, 300)}`);
}

/** Runs `fn` over `items` with at most `limit` in flight, results in order. */
async function eachLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Full GC twice (the second also frees what finalizers of the first released) and the live heap after it. */
async function liveHeap(inspector: InspectorClient): Promise<number> {
  await inspector.liveHeapAfterGc();
  return inspector.liveHeapAfterGc();
}

async function waitClosed(streams: readonly Stream[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (streams.some((s) => !s.closed) && Date.now() < deadline) await sleep(20);
  for (const s of streams) if (!s.closed) s.res.destroy();
}

const countEvictions = (sp: ServerProcess): number =>
  sp
    .logs()
    .split('\n')
    .filter((l) => l.includes('"msg":"MCP session ended"')).length;

export async function runSessionMemory(
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<SessionMemoryResult> {
  const quick = quickMode();
  const sessions = quick ? 100 : 1000;
  const roundsPerVariant = quick ? 1 : 3;
  const idleSeconds = quick ? 2 : 3;
  /** At most this many sessions of a round are checked alive (an even sample), to keep the run short. */
  const maxChecked = 250;
  const concurrency = 8;
  const warmUp = 2 * concurrency;
  const sp = await startServerProcess({
    // The inspector, on a free loopback port: full garbage collections and the live heap, on demand.
    env: { NODE_OPTIONS: '--inspect=127.0.0.1:0' },
    logLevel: 'info',
    users: ['bench'],
    usersInProcess: true,
    config: {
      server: { sessions: 'stateful', max_sessions: sessions + warmUp + 100, session_idle_timeout_s: 3600 },
      authentication: { token_expiry: 3600 },
      security: { mcp_requests_per_minute: 100_000 },
    },
  });
  let inspector: InspectorClient | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: sp.ca.cert });
  const streamAgent = new Agent({ keepAlive: false, maxSockets: Infinity, ca: sp.ca.cert });
  try {
    const url = InspectorClient.urlIn(sp.logs());
    if (!url) throw new Error(`the server printed no inspector URL:\n${sp.logs().slice(0, 2000)}`);
    inspector = await InspectorClient.connect(url);
    const tokens = await headlessTokens({
      ...sp,
      user: sp.users.get('bench')!,
      clientName: 'session-memory bench',
    });
    const t: Target = {
      url: new URL(sp.resource),
      ca: sp.ca.cert,
      token: tokens.accessToken,
      agent,
      streamAgent,
    };
    const pid = sp.pid();

    const openAll = async (n: number, withStream: boolean) =>
      eachLimited(
        Array.from({ length: n }, (_, i) => i),
        concurrency,
        (i) => openSession(t, i, withStream),
      );
    const closeAll = async (opened: { id: string; stream?: Stream }[]): Promise<void> => {
      await eachLimited(opened, concurrency, (s) => closeSession(t, s.id));
      await waitClosed(
        opened.flatMap((s) => (s.stream ? [s.stream] : [])),
        10_000,
      );
    };

    // Warm-up: the code paths of a session (build, initialize, stream, tools/list, DELETE) compiled and their
    // modules loaded, so the first round does not count one-time costs.
    for (const withStream of [false, true]) {
      const opened = await openAll(warmUp, withStream);
      await eachLimited(opened, concurrency, (s) => isAlive(t, s.id));
      await closeAll(opened);
    }
    const evictionsBefore = countEvictions(sp);
    const heapStart = await liveHeap(inspector);

    const variants: SessionVariant[] = ['session', 'session + SSE stream'];
    const rounds: SessionMemoryRound[] = [];
    for (let round = 0; round < roundsPerVariant; round++) {
      // Alternate which variant goes first, so drift hits both alike.
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        const withStream = variant !== 'session';
        const heapBefore = await liveHeap(inspector);
        const rssBefore = readRss(pid) ?? Number.NaN;
        const started = performance.now();
        const opened = await openAll(sessions, withStream);
        const openSeconds = (performance.now() - started) / 1000;
        await sleep(idleSeconds * 1000);
        const gcStarted = performance.now();
        const heapAfter = await liveHeap(inspector);
        const gcSeconds = (performance.now() - gcStarted) / 1000;
        const rssAfter = readRss(pid) ?? Number.NaN;
        const streamsOpen = opened.filter((s) => s.stream !== undefined && !s.stream.closed).length;
        const stride = Math.ceil(opened.length / maxChecked);
        const sample = opened.filter((_, i) => i % stride === 0);
        const alive = (await eachLimited(sample, concurrency, (s) => isAlive(t, s.id))).filter(
          Boolean,
        ).length;
        const checkSeconds = (performance.now() - gcStarted) / 1000 - gcSeconds;
        await closeAll(opened);
        const closeSeconds = (performance.now() - gcStarted) / 1000 - gcSeconds - checkSeconds;
        const r: SessionMemoryRound = {
          variant,
          sessions,
          heapBefore,
          heapAfter,
          rssBefore,
          rssAfter,
          heapPerSession: (heapAfter - heapBefore) / sessions,
          rssPerSession: (rssAfter - rssBefore) / sessions,
          openSeconds,
          checked: sample.length,
          alive,
          streamsOpen,
        };
        rounds.push(r);
        log(
          `session-memory: ${variant}, round ${round + 1}: ${kb(r.heapPerSession)} heap / session, ` +
            `${kb(r.rssPerSession)} RSS / session, ${alive}/${sample.length} checked alive, opened in ${openSeconds.toFixed(1)} s ` +
            `(GC ${gcSeconds.toFixed(1)} s, checks ${checkSeconds.toFixed(1)} s, DELETE ${closeSeconds.toFixed(1)} s)`,
        );
      }
    }
    const heapEnd = await liveHeap(inspector);
    return {
      sessions,
      roundsPerVariant,
      idleSeconds,
      concurrency,
      variants: variants.map((variant) => {
        const own = rounds.filter((r) => r.variant === variant);
        return {
          variant,
          rounds: own,
          heapPerSession: percentile(
            own.map((r) => r.heapPerSession),
            50,
          ),
          rssPerSession: percentile(
            own.map((r) => r.rssPerSession),
            50,
          ),
        };
      }),
      evictions: countEvictions(sp) - evictionsBefore,
      heapStart,
      heapEnd,
    };
  } finally {
    await inspector?.close();
    agent.destroy();
    streamAgent.destroy();
    await sp.close();
  }
}

function kb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : 'n/a';
}

function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : 'n/a';
}

export function printSessionMemory(r: SessionMemoryResult): string {
  const rows = r.variants.flatMap((v) =>
    v.rounds.map((x, i) => [
      `${v.variant}, round ${i + 1}`,
      mb(x.heapBefore),
      mb(x.heapAfter),
      kb(x.heapPerSession),
      kb(x.rssPerSession),
      `${x.alive}/${x.checked}`,
      v.variant === 'session' ? '' : `${x.streamsOpen}/${x.sessions}`,
      `${x.openSeconds.toFixed(1)} s`,
    ]),
  );
  const summary = r.variants.map((v) => [
    v.variant,
    kb(v.heapPerSession),
    kb(v.rssPerSession),
    `≤ ${kb(SESSION_MEMORY_TARGET_BYTES)}`,
    v.heapPerSession <= SESSION_MEMORY_TARGET_BYTES ? 'met' : 'NOT MET',
  ]);
  return [
    heading('Memory per idle stateful session (HTTPS, OAuth on) — target ≤ 200 KB'),
    table(
      [
        'variant, round',
        'heap before',
        'heap after',
        'heap/session',
        'RSS/session',
        'alive/checked',
        'streams open',
        'open',
      ],
      rows,
    ),
    '',
    table(['variant (median of rounds)', 'heap/session', 'RSS/session', 'target', 'status'], summary),
    `${r.sessions} sessions per round, opened ${r.concurrency} at a time (initialize + notifications/initialized;`,
    'the SSE variant also keeps the GET stream the SDK client opens by default), idle ' +
      `${r.idleSeconds} s, then a full GC in the server;`,
    'heap/session = Δ live JS heap / sessions (the target figure); RSS/session = Δ resident set / sessions (info).',
    `Sessions ended by the server while measured: ${r.evictions}. Live heap before the first round ` +
      `${mb(r.heapStart)}, after the last round's sessions were deleted ${mb(r.heapEnd)}.`,
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  const result = await runSessionMemory();
  process.stdout.write(`${printSessionMemory(result)}\n`);
}
