/**
 * What full security costs on the hot path, as ratios measured in one run:
 *
 * 1. A read tool (`list_todos`, 20 tasks) over HTTPS on PostgreSQL: the same server build and database with full
 *    security on (JWT bearer check, scopes, tenant under row-level security, audit usage counters, rate limits) against
 *    authentication off — throughput ratio (target ≥ 0.95) and p99 ratio at 50 concurrent clients (target ≤ 1.10).
 * 2. DPoP: the extra server CPU per request of a DPoP-bound token over a bearer token (same call), against the floor —
 *    one ES256 verification with node:crypto, which a proof needs whatever the implementation (target ≤ 1.5×).
 *    Server CPU is read from /proc/<pid>/stat (all threads, user + system) around each round.
 * 3. The floor itself: ES256 verifications per second on one core.
 *
 * Both servers are `mcp-pa serve` child processes (stateless sessions, log level info) on one PostgreSQL database
 * (MCP_PA_BENCH_DATABASE_URL, default the local server; a fresh database per run, dropped after). The /mcp rate limit
 * is raised to its maximum (100,000/min) so the load measures the limiter's cost, not its refusals. When two cores are
 * there, the servers run on core 0 and this process (the load) on core 1. Rounds alternate which server goes first;
 * each figure is the median of the per-round ratios.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { SignJWT, exportJWK, type JWK } from 'jose';
import { headlessTokens, startServerProcess, type ServerProcess } from '../test/support/server-process.js';
import { readCpuSeconds } from '../test/load/load-kit.js';
import { runLoad, type LoadResult } from './http-load.js';
import { heading, isEntry, ms, percentile, quickMode, table } from './lib.js';

const READ_CALL = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'list_todos', arguments: { limit: 20 } },
});
const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });

export interface RatioFigure {
  readonly on: LoadResult;
  readonly off: LoadResult;
  /** Median of the per-round ratios. */
  readonly ratio: number;
}

export interface DpopFigure {
  /** Server CPU per request, microseconds (medians of the rounds). */
  readonly bearerCpuUs: number;
  readonly dpopCpuUs: number;
  /** CPU of one ES256 verification with node:crypto, microseconds. */
  readonly floorUs: number;
  /** Median over rounds of (dpop − bearer) / floor. */
  readonly ratio: number;
  readonly bearerPerSecond: number;
  readonly dpopPerSecond: number;
}

export interface SecurityCostResult {
  readonly database: string;
  readonly rounds: number;
  readonly requestsPerRound: number;
  readonly throughput: RatioFigure;
  readonly latency50: RatioFigure;
  readonly dpop: DpopFigure | { skipped: string };
  readonly es256PerSecond: number;
  readonly pinned: boolean;
}

function baseUrl(): string {
  return process.env['MCP_PA_BENCH_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
}

/** A fresh database on the bench server; dropped by the returned function. */
async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = new URL(baseUrl());
  const name = `mcp_pa_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base.href, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base.href);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    drop: async () => {
      const c = new pg.Client({ connectionString: base.href });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Total CPU (user + system, all threads) of a process in microseconds, from /proc. */
function processCpuUs(pid: number): number {
  const seconds = readCpuSeconds(pid);
  if (seconds === undefined) throw new Error(`cannot read the CPU time of process ${pid}`);
  return seconds * 1_000_000;
}

/** Pins a process (all its threads) to one CPU; false when taskset is missing or there is one core. */
function pin(pid: number, cpu: number): boolean {
  if (os.availableParallelism() < 2) return false;
  try {
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The floor: ES256 verifications per second on this core with node:crypto (a P-256 key, IEEE P1363 signatures). */
export function measureEs256(seconds: number): { perSecond: number; microseconds: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from(`${'h'.repeat(100)}.${'p'.repeat(300)}`);
  const signature = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const key = { key: publicKey, dsaEncoding: 'ieee-p1363' as const };
  for (let i = 0; i < 200; i++) verify('sha256', data, key, signature);
  let n = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 50; i++)
      if (!verify('sha256', data, key, signature)) throw new Error('bad signature');
    n += 50;
  }
  const used = process.cpuUsage(start);
  const cpuUs = used.user + used.system;
  return { perSecond: (n * 1_000_000) / cpuUs, microseconds: cpuUs / n };
}

async function rpc(
  server: ServerProcess,
  body: string,
  headers: Record<string, string>,
): Promise<Record<string, unknown>> {
  const res = await server.fetch(`${server.origin}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
      ...headers,
    },
    body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${res.status}: ${text.slice(0, 300)}`);
  const data = text.startsWith('{')
    ? text
    : (text
        .split('\n')
        .find((l) => l.startsWith('data:'))
        ?.slice(5) ?? '{}');
  return JSON.parse(data) as Record<string, unknown>;
}

/** 20 open tasks for the caller, written through the server itself. */
async function seed(server: ServerProcess, headers: Record<string, string>): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const reply = await rpc(
      server,
      JSON.stringify({
        jsonrpc: '2.0',
        id: i,
        method: 'tools/call',
        params: { name: 'create_todo', arguments: { title: `Bench task ${i}`, priority: 'medium' } },
      }),
      headers,
    );
    const result = reply['result'] as { isError?: boolean } | undefined;
    if (!result || result.isError) throw new Error(`seeding failed: ${JSON.stringify(reply).slice(0, 300)}`);
  }
}

interface DpopClient {
  readonly jwk: JWK;
  proofs(n: number, htu: string, accessToken: string): Promise<string[]>;
}

async function dpopClient(): Promise<DpopClient> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = await exportJWK(publicKey);
  const key = createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' }));
  return {
    jwk,
    async proofs(n, htu, accessToken) {
      const ath = accessToken ? createHash('sha256').update(accessToken).digest('base64url') : undefined;
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        out.push(
          await new SignJWT({ htm: 'POST', htu, ...(ath ? { ath } : {}) })
            .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
            .setIssuedAt()
            .setJti(randomBytes(12).toString('base64url'))
            .sign(key),
        );
      }
      return out;
    },
  };
}

export async function runSecurityCost(
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<SecurityCostResult | { skipped: string }> {
  const quick = quickMode();
  const rounds = quick ? 1 : 5;
  const requestsPerRound = quick ? 600 : 3000;
  let db: { url: string; drop: () => Promise<void> };
  try {
    db = await freshDatabase();
  } catch (err) {
    return { skipped: `no PostgreSQL server at MCP_PA_BENCH_DATABASE_URL (${(err as Error).message})` };
  }
  const common = {
    env: {
      MCP_DATABASE_URL: db.url,
      // For profiling the servers, e.g. an inspector preload that writes a CPU profile on exit.
      ...(process.env['BENCH_SERVER_NODE_OPTIONS']
        ? { NODE_OPTIONS: process.env['BENCH_SERVER_NODE_OPTIONS'] }
        : {}),
    },
    logLevel: 'info',
  };
  const config = (enabled: boolean) => ({
    server: { sessions: 'stateless' },
    security: { mcp_requests_per_minute: 100_000 },
    authentication: { enabled },
  });
  let on: ServerProcess | undefined;
  let off: ServerProcess | undefined;
  try {
    on = await startServerProcess({ ...common, config: config(true), users: ['bench'] });
    off = await startServerProcess({ ...common, config: config(false) });
    const user = on.users.get('bench');
    if (!user) throw new Error('no bench user');
    const tokens = await headlessTokens({ origin: on.origin, resource: on.resource, ca: on.ca, user });
    const bearer = { authorization: `Bearer ${tokens.accessToken}` };
    await seed(on, bearer);
    await seed(off, {});
    const pinned = pin(on.pid() as number, 0) && pin(off.pid() as number, 0) && pin(process.pid, 1);
    const ca = Buffer.from(on.ca.cert);
    const load = (s: ServerProcess, body: string, concurrency: number, headers: Record<string, string>) =>
      runLoad({ url: `${s.origin}/mcp`, ca, body, concurrency, requests: requestsPerRound, headers });

    // Warm-up: JIT, TLS sessions, pools, caches.
    await load(on, READ_CALL, 50, bearer);
    await load(off, READ_CALL, 50, {});

    const ons: LoadResult[] = [];
    const offs: LoadResult[] = [];
    for (let round = 0; round < rounds; round++) {
      if (round % 2 === 0) {
        offs.push(await load(off, READ_CALL, 50, {}));
        ons.push(await load(on, READ_CALL, 50, bearer));
      } else {
        ons.push(await load(on, READ_CALL, 50, bearer));
        offs.push(await load(off, READ_CALL, 50, {}));
      }
      log(
        `security-cost: round ${round + 1}: on ${ons[round]?.perSecond.toFixed(0)}/s p99 ${ms(ons[round]?.p99 ?? NaN)}, ` +
          `off ${offs[round]?.perSecond.toFixed(0)}/s p99 ${ms(offs[round]?.p99 ?? NaN)}`,
      );
    }
    const median = (list: LoadResult[], by: (r: LoadResult) => number) =>
      [...list].sort((a, b) => by(a) - by(b))[Math.floor(list.length / 2)] as LoadResult;
    const throughput: RatioFigure = {
      on: median(ons, (r) => r.perSecond),
      off: median(offs, (r) => r.perSecond),
      ratio: percentile(
        ons.map((r, i) => r.perSecond / (offs[i] as LoadResult).perSecond),
        50,
      ),
    };
    const latency50: RatioFigure = {
      on: median(ons, (r) => r.p99),
      off: median(offs, (r) => r.p99),
      ratio: percentile(
        ons.map((r, i) => r.p99 / (offs[i] as LoadResult).p99),
        50,
      ),
    };

    const floor = measureEs256(quick ? 0.5 : 2);
    log(
      `security-cost: ES256 floor ${floor.perSecond.toFixed(0)} verifications/s (${floor.microseconds.toFixed(1)} µs)`,
    );
    const dpop = await measureDpop(on, ca, rounds, requestsPerRound, floor.microseconds, bearer, log);
    return {
      database: 'PostgreSQL',
      rounds,
      requestsPerRound,
      throughput,
      latency50,
      dpop,
      es256PerSecond: floor.perSecond,
      pinned,
    };
  } finally {
    await on?.close();
    await off?.close();
    await db.drop();
  }
}

async function measureDpop(
  server: ServerProcess,
  ca: Buffer,
  rounds: number,
  requests: number,
  floorUs: number,
  bearer: Record<string, string>,
  log: (line: string) => void,
): Promise<DpopFigure | { skipped: string }> {
  const user = server.users.get('bench');
  if (!user) return { skipped: 'no user' };
  const client = await dpopClient();
  let dpopToken: string;
  try {
    dpopToken = await dpopAccessToken(server, user, client);
  } catch (err) {
    return { skipped: `no DPoP-bound token: ${(err as Error).message}` };
  }
  const pid = server.pid() as number;
  const concurrency = 8;
  const measure = async (
    headersFor?: (i: number) => Record<string, string>,
    headers?: Record<string, string>,
  ) => {
    const before = processCpuUs(pid);
    const result = await runLoad({
      url: `${server.origin}/mcp`,
      ca,
      body: PING,
      concurrency,
      requests,
      ...(headers ? { headers } : {}),
      ...(headersFor ? { headersFor } : {}),
    });
    return { result, cpuUs: (processCpuUs(pid) - before) / result.requests };
  };
  const dpopRound = async () => {
    const proofs = await client.proofs(requests, server.resource, dpopToken);
    return measure((i) => ({ dpop: proofs[i] as string }), { authorization: `DPoP ${dpopToken}` });
  };
  await measure(undefined, bearer);
  await dpopRound();
  const b: { result: LoadResult; cpuUs: number }[] = [];
  const d: { result: LoadResult; cpuUs: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      b.push(await measure(undefined, bearer));
      d.push(await dpopRound());
    } else {
      d.push(await dpopRound());
      b.push(await measure(undefined, bearer));
    }
    log(
      `security-cost: DPoP round ${round + 1}: bearer ${b[round]?.cpuUs.toFixed(0)} µs CPU/request, ` +
        `DPoP ${d[round]?.cpuUs.toFixed(0)} µs CPU/request`,
    );
  }
  return {
    bearerCpuUs: percentile(
      b.map((x) => x.cpuUs),
      50,
    ),
    dpopCpuUs: percentile(
      d.map((x) => x.cpuUs),
      50,
    ),
    floorUs,
    ratio: percentile(
      d.map((x, i) => (x.cpuUs - (b[i]?.cpuUs ?? 0)) / floorUs),
      50,
    ),
    bearerPerSecond: percentile(
      b.map((x) => x.result.perSecond),
      50,
    ),
    dpopPerSecond: percentile(
      d.map((x) => x.result.perSecond),
      50,
    ),
  };
}

export function printSecurityCost(r: SecurityCostResult | { skipped: string }): string {
  const title = 'Security cost on the hot path (PostgreSQL): full security vs authentication off';
  if ('skipped' in r) return [heading(title), `skipped: ${r.skipped}`].join('\n');
  const rows = [
    [
      'list_todos, security on',
      r.throughput.on.perSecond.toFixed(0),
      ms(r.throughput.on.p50),
      ms(r.latency50.on.p99),
    ],
    [
      'list_todos, authentication off',
      r.throughput.off.perSecond.toFixed(0),
      ms(r.throughput.off.p50),
      ms(r.latency50.off.p99),
    ],
  ];
  const lines = [
    heading(title),
    table(['call, server', 'req/s', 'p50', 'p99'], rows),
    `throughput ratio on/off ${r.throughput.ratio.toFixed(3)} (target ≥ 0.95); p99 ratio on/off at 50 clients ${r.latency50.ratio.toFixed(3)} (target ≤ 1.10)`,
    `${r.rounds} alternating round(s) of ${r.requestsPerRound} requests, 50 concurrent keep-alive clients; ratios are medians of per-round ratios${r.pinned ? '; servers pinned to core 0, load to core 1' : ''}.`,
    `ES256 floor: ${r.es256PerSecond.toFixed(0)} verifications/s on one core (node:crypto.verify).`,
  ];
  if ('skipped' in r.dpop) lines.push(`DPoP: skipped (${r.dpop.skipped})`);
  else
    lines.push(
      `DPoP (ping, 8 clients): server CPU/request bearer ${r.dpop.bearerCpuUs.toFixed(0)} µs, DPoP-bound ${r.dpop.dpopCpuUs.toFixed(0)} µs; ` +
        `extra ${(r.dpop.dpopCpuUs - r.dpop.bearerCpuUs).toFixed(0)} µs = ${r.dpop.ratio.toFixed(2)}× the floor (${r.dpop.floorUs.toFixed(0)} µs; target ≤ 1.5); ` +
        `${r.dpop.bearerPerSecond.toFixed(0)} vs ${r.dpop.dpopPerSecond.toFixed(0)} req/s`,
    );
  return lines.join('\n');
}

if (isEntry(import.meta.url)) {
  const result = await runSecurityCost();
  process.stdout.write(`${printSecurityCost(result)}\n`);
}

/** A DPoP-bound access token for `user`, through the real flow (the token request carries a proof). */
async function dpopAccessToken(
  server: ServerProcess,
  user: { username: string; password: string },
  client: DpopClient,
): Promise<string> {
  const tokens = await headlessTokens({
    origin: server.origin,
    resource: server.resource,
    ca: server.ca,
    user,
    tokenHeaders: async (url: string) => ({ dpop: (await client.proofs(1, url, ''))[0] as string }),
  });
  return tokens.accessToken;
}
