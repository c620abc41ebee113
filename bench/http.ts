/**
 * HTTP throughput and latency: `ping` and `tools/list` over HTTPS (TLS 1.3, keep-alive), ours against the MCP SDK's
 * stateless Express example pattern (a new McpServer and transport per request; see http-baseline-server.ts), both
 * answering the same call with the same tool registry and the same certificate. Each server runs in its own child
 * process; the load comes from this process, one server at a time, rounds alternating so drift hits both alike.
 * Ours runs the built CLI (`mcp-pa serve`, stateless sessions, embedded PGlite) with full security on: every request
 * carries an OAuth access token (obtained through the real flow) that is checked — signature, claims, grant, scopes —
 * and passes the rate limiter (raised to 100,000/min so the load measures it without being refused) and the audit
 * usage counters. The SDK example has no security at all. Target: ours/theirs ≥ 2.0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSelfSignedLocalhost } from '../src/security/dev-certificate.js';
import { headlessTokens, startServerProcess, type ServerProcess } from '../test/support/server-process.js';
import { ROOT } from './cold-start.js';
import { runLoad, type LoadResult } from './http-load.js';
import { heading, isEntry, ms, percentile, quickMode, table } from './lib.js';

const CALLS = {
  ping: { jsonrpc: '2.0', id: 1, method: 'ping' },
  'tools/list': { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
} as const;
type Call = keyof typeof CALLS;

export interface HttpCallResult {
  readonly call: Call;
  readonly ours: LoadResult;
  readonly theirs: LoadResult;
  /** Median of the per-round throughput ratios ours/theirs. */
  readonly ratio: number;
}

export interface HttpBenchResult {
  readonly calls: HttpCallResult[];
  readonly concurrency: number;
  readonly rounds: number;
  readonly requestsPerRound: number;
}

interface Running {
  readonly url: string;
  readonly child: ChildProcess;
}

interface Ours {
  readonly url: string;
  readonly server: ServerProcess;
  readonly ca: Buffer;
  readonly headers: Record<string, string>;
}

function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${text.slice(-500)}`)), 60_000);
    child[stream]?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const m = pattern.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}): ${text.slice(-500)}`));
    });
  });
}

async function startTheirs(cert: string, key: string): Promise<Running> {
  const child = spawn(
    process.execPath,
    [path.join(ROOT, '.bench-build/bench/http-baseline-server.js'), cert, key],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await waitFor(child, 'stdout', /listening (\d+)/);
  return { url: `https://127.0.0.1:${port}/mcp`, child };
}

async function startOurs(): Promise<Ours> {
  const server = await startServerProcess({
    config: { server: { sessions: 'stateless' }, security: { mcp_requests_per_minute: 100_000 } },
    users: ['bench'],
    logLevel: 'info',
  });
  const user = server.users.get('bench');
  if (!user) throw new Error('no bench user');
  const tokens = await headlessTokens({
    origin: server.origin,
    resource: server.resource,
    ca: server.ca,
    user,
  });
  return {
    url: server.resource,
    server,
    ca: Buffer.from(server.ca.cert),
    headers: { authorization: `Bearer ${tokens.accessToken}` },
  };
}

async function stop(r: Running): Promise<void> {
  if (r.child.exitCode !== null) return;
  const exited = new Promise((resolve) => r.child.once('exit', resolve));
  r.child.kill('SIGTERM');
  await exited;
}

export async function runHttp(
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<HttpBenchResult> {
  const quick = quickMode();
  const rounds = quick ? 1 : 3;
  const requestsPerRound = quick ? 500 : 4000;
  const concurrency = 16;
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-bench-http-'));
  const pair = await createSelfSignedLocalhost(new Date());
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  const ca = Buffer.from(pair.cert);
  const ours = await startOurs();
  const theirs = await startTheirs(cert, key);
  try {
    const calls: HttpCallResult[] = [];
    for (const call of Object.keys(CALLS) as Call[]) {
      const body = JSON.stringify(CALLS[call]);
      const loadOurs = (requests: number) =>
        runLoad({ url: ours.url, ca: ours.ca, headers: ours.headers, body, concurrency, requests });
      const loadTheirs = (requests: number) => runLoad({ url: theirs.url, ca, body, concurrency, requests });
      // Warm-up: JIT, TLS sessions, pools.
      await loadOurs(requestsPerRound / 4);
      await loadTheirs(requestsPerRound / 4);
      const o: LoadResult[] = [];
      const t: LoadResult[] = [];
      for (let round = 0; round < rounds; round++) {
        // Alternate which goes first.
        if (round % 2 === 0) {
          t.push(await loadTheirs(requestsPerRound));
          o.push(await loadOurs(requestsPerRound));
        } else {
          o.push(await loadOurs(requestsPerRound));
          t.push(await loadTheirs(requestsPerRound));
        }
      }
      const best = (list: LoadResult[]) =>
        [...list].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(list.length / 2)] as LoadResult;
      const ratio = percentile(
        o.map((r, i) => r.perSecond / (t[i] as LoadResult).perSecond),
        50,
      );
      calls.push({ call, ours: best(o), theirs: best(t), ratio });
      log(`http: ${call}: ours ${best(o).perSecond.toFixed(0)}/s, theirs ${best(t).perSecond.toFixed(0)}/s`);
    }
    return { calls, concurrency, rounds, requestsPerRound };
  } finally {
    await ours.server.close();
    await stop(theirs);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printHttp(r: HttpBenchResult): string {
  const rows = r.calls.flatMap((c) => [
    [`${c.call}, ours`, c.ours.perSecond.toFixed(0), ms(c.ours.p50), ms(c.ours.p95), ms(c.ours.p99), ''],
    [
      `${c.call}, SDK example`,
      c.theirs.perSecond.toFixed(0),
      ms(c.theirs.p50),
      ms(c.theirs.p95),
      ms(c.theirs.p99),
      c.ratio.toFixed(2),
    ],
  ]);
  return [
    heading(
      'HTTPS throughput: ours (stateless, full security) vs the SDK stateless Express example — target ratio ≥ 2.0',
    ),
    table(['call, server', 'req/s', 'p50', 'p95', 'p99', 'ratio ours/theirs'], rows),
    `${r.rounds} alternating round(s) of ${r.requestsPerRound} requests per server and call, ${r.concurrency} concurrent keep-alive clients;`,
    'req/s and latencies are from the median round; the ratio is the median of the per-round ratios.',
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  const result = await runHttp();
  process.stdout.write(`${printHttp(result)}\n`);
}
