/**
 * Cold start: from spawn() to the `initialize` response line, over raw JSON-RPC on the child's stdin/stdout,
 * for our built CLI (fresh database, and an existing one) and for the reference
 * @modelcontextprotocol/server-memory. Every variant is measured the same way, rounds alternate, and each
 * child is stopped (and waited for) before the next one starts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SqliteStore } from '../src/storage/sqlite/sqlite-store.js';
import type { WriteOp } from '../src/storage/model.js';
import { ItemGenerator, vocabulary } from './corpus.js';
import { heading, isEntry, ms, percentile, quickMode, table } from './lib.js';

/** The repository root, found from this file whether it runs from bench/ or from .bench-build/bench/. */
export const ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const parent = path.dirname(dir);
    if (path.basename(dir) === 'bench')
      return path.basename(parent) === '.bench-build' ? path.dirname(parent) : parent;
    if (parent === dir) throw new Error('cannot find the repository root');
    dir = parent;
  }
})();
const CLI = path.join(ROOT, 'dist/cli.js');
const REFERENCE = path.join(
  path.dirname(
    createRequire(path.join(ROOT, 'package.json')).resolve(
      '@modelcontextprotocol/server-memory/package.json',
    ),
  ),
  'dist/index.js',
);

const INITIALIZE = `${JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'mcp-pa-bench', version: '1.0.0' },
  },
})}\n`;

/** A trivial node program answering the same request: the floor set by node start-up and spawn itself. */
const FLOOR_SCRIPT = `process.stdin.once('data', () => process.stdout.write('{"jsonrpc":"2.0","id":1,"result":{}}\\n'));`;

interface Variant {
  readonly name: string;
  /** Sets up one round; returns the command line and environment, and a cleanup. */
  prepare(): { args: string[]; env: Record<string, string>; cleanup: () => void };
}

export interface ColdStartResult {
  readonly rounds: number;
  readonly warmup: number;
  readonly variants: { name: string; samples: number[]; median: number; p90: number; min: number }[];
  readonly ratioFresh: number;
  readonly ratioExisting: number;
}

function tmp(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function baseEnv(home: string): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '', HOME: home };
}

/** Spawns once and returns milliseconds from spawn() to the line answering request id 1. */
async function measureOnce(args: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.write(INITIALIZE);
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    return await new Promise<number>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(
        () => reject(new Error(`no initialize response within 20 s\n${stderr}`)),
        20_000,
      );
      child.stdout.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let msg: unknown;
          try {
            msg = JSON.parse(line);
          } catch {
            continue;
          }
          if (typeof msg === 'object' && msg !== null && (msg as { id?: unknown }).id === 1) {
            const t1 = performance.now();
            clearTimeout(timer);
            if ('error' in msg) reject(new Error(`initialize failed: ${line}`));
            else resolve(t1 - t0);
          }
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited (${code}) before answering\n${stderr}`));
      });
    });
  } finally {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(killer);
  }
}

/** Where our CLI keeps its database for a given HOME, asked from the CLI itself (`config check`). */
function databasePathFor(home: string): string {
  const out = spawnSync(process.execPath, [CLI, 'config', 'check'], { env: baseEnv(home), encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`config check failed: ${out.stderr}`);
  return (JSON.parse(out.stdout) as { effective: { database: { path: string } } }).effective.database.path;
}

/** A HOME whose database already exists and holds `items` items. */
async function existingHome(items: number): Promise<{ dir: string; cleanup: () => void }> {
  const home = tmp('mcp-pa-bench-home-');
  const store = new SqliteStore({ path: databasePathFor(home.dir) });
  const gen = new ItemGenerator(vocabulary(), 99);
  for (let done = 0; done < items; done += 500) {
    const ops: WriteOp[] = [];
    for (let i = done; i < Math.min(items, done + 500); i++) ops.push({ op: 'insert', item: gen.next() });
    await store.write('local', ops, new Date().toISOString());
  }
  await store.close();
  return home;
}

export async function runColdStart(
  options: { rounds?: number; warmup?: number; existingItems?: number; log?: (line: string) => void } = {},
): Promise<ColdStartResult> {
  const quick = quickMode();
  const rounds = options.rounds ?? (quick ? 5 : 21);
  const warmup = options.warmup ?? (quick ? 1 : 3);
  const existingItems = options.existingItems ?? 1000;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const existing = await existingHome(existingItems);
  const variants: Variant[] = [
    {
      name: 'mcp-pa, fresh database',
      prepare: () => {
        const home = tmp('mcp-pa-bench-home-');
        return { args: [CLI], env: baseEnv(home.dir), cleanup: home.cleanup };
      },
    },
    {
      name: 'reference server-memory',
      prepare: () => {
        const home = tmp('mcp-pa-bench-ref-');
        return {
          args: [REFERENCE],
          env: { ...baseEnv(home.dir), MEMORY_FILE_PATH: path.join(home.dir, 'memory.jsonl') },
          cleanup: home.cleanup,
        };
      },
    },
    {
      name: `mcp-pa, existing database (${existingItems} items)`,
      prepare: () => ({ args: [CLI], env: baseEnv(existing.dir), cleanup: () => undefined }),
    },
    {
      name: 'node floor (trivial responder)',
      prepare: () => {
        const home = tmp('mcp-pa-bench-floor-');
        return { args: ['-e', FLOOR_SCRIPT], env: baseEnv(home.dir), cleanup: home.cleanup };
      },
    },
  ];
  const samples = variants.map(() => [] as number[]);
  try {
    log(
      `cold start: ${warmup} warm-up + ${rounds} measured rounds, variants alternate (order reversed every other round)`,
    );
    for (let round = -warmup; round < rounds; round++) {
      const order = variants.map((_, i) => i);
      if (round % 2 !== 0) order.reverse();
      for (const i of order) {
        const v = variants[i] as Variant;
        const { args, env, cleanup } = v.prepare();
        try {
          const t = await measureOnce(args, env);
          if (round >= 0) (samples[i] as number[]).push(t);
        } finally {
          cleanup();
        }
      }
    }
  } finally {
    existing.cleanup();
  }
  const stats = variants.map((v, i) => {
    const s = samples[i] as number[];
    return {
      name: v.name,
      samples: s,
      median: percentile(s, 50),
      p90: percentile(s, 90),
      min: Math.min(...s),
    };
  });
  const [fresh, ref, existingStats] = stats as [(typeof stats)[0], (typeof stats)[0], (typeof stats)[0]];
  return {
    rounds,
    warmup,
    variants: stats,
    ratioFresh: fresh.median / ref.median,
    ratioExisting: existingStats.median / ref.median,
  };
}

export function printColdStart(r: ColdStartResult): string {
  return [
    heading('Cold start: spawn → initialize response (raw JSON-RPC over stdio)'),
    table(
      ['server', 'median', 'p90', 'min', 'rounds'],
      r.variants.map((v) => [v.name, ms(v.median, 1), ms(v.p90, 1), ms(v.min, 1), String(v.samples.length)]),
    ),
    '',
    `ratio mcp-pa (fresh database) / reference:    ${r.ratioFresh.toFixed(3)}  (target ≤ 1.0)`,
    `ratio mcp-pa (existing database) / reference: ${r.ratioExisting.toFixed(3)}  (target ≤ 1.0)`,
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  const result = await runColdStart();
  process.stdout.write(`${printColdStart(result)}\n`);
}
