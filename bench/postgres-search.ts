/**
 * Hybrid search latency on PostgreSQL (full text with GIN + pgvector HNSW, fused with RRF), through the Assistant's
 * search() — the code path of the MCP `search` tool — at 100 000 items per tenant, with a second tenant of the same
 * size in the same tables so that row-level security and the tenant filters do real work. Target: p95 ≤ 50 ms.
 *
 * Runs against the real server named by MCP_PA_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
 * in a fresh database it creates and drops. Without a reachable server it reports "not measured".
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { search } from '../src/assistant/search.js';
import { createLogger } from '../src/observability/logger.js';
import { HashEmbeddingProvider } from '../src/storage/embeddings/provider.js';
import type { WriteOp } from '../src/storage/model.js';
import { openPostgresStore, type PostgresStore } from '../src/storage/postgres/index.js';
import { ItemGenerator, querySet, vocabulary, type BenchQuery } from './corpus.js';
import { heading, isEntry, ms, quickMode, table } from './lib.js';
import { measure, median5, newAssistant, type ModeResult } from './search.js';

const TENANT = 'local';
const OTHER = 'other-tenant';
const BATCH = 1000;

export interface PostgresSearchResult {
  readonly items: number;
  readonly tenants: number;
  readonly insertPerSecond: number;
  readonly embedPerSecond: number;
  readonly indexSeconds: number;
  readonly text: ModeResult;
  readonly hybrid: ModeResult;
  readonly vectorScanMs: number;
  readonly textScanMs: number;
  readonly server: string;
}

function adminUrl(): string {
  return process.env['MCP_PA_BENCH_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
}

async function fill(store: PostgresStore, tenant: string, size: number, seed: number): Promise<number> {
  const gen = new ItemGenerator(vocabulary(), seed);
  const t0 = performance.now();
  for (let have = 0; have < size;) {
    const ops: WriteOp[] = [];
    for (let i = 0; i < BATCH && have < size; i++, have++) ops.push({ op: 'insert', item: gen.next() });
    await store.write(tenant, ops, new Date().toISOString());
  }
  return size / ((performance.now() - t0) / 1000);
}

export async function runPostgresSearch(
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<PostgresSearchResult | { skipped: string }> {
  const size = quickMode() ? 5_000 : 100_000;
  const admin = new pg.Client({ connectionString: adminUrl() });
  try {
    await admin.connect();
  } catch (err) {
    return { skipped: `no PostgreSQL server (${(err as Error).message})` };
  }
  const name = `mcp_pa_bench_${process.pid}`;
  const server =
    (await admin.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  // The HNSW build runs in a fraction of the time when its graph fits in maintenance_work_mem (64 MB by default;
  // 200,000 vectors of 256 dimensions need about 250 MB): what an operator sets before a large import.
  await admin.query(`ALTER DATABASE ${name} SET maintenance_work_mem = '512MB'`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  let store: PostgresStore | undefined;
  try {
    const setup = new pg.Client({ connectionString: url.toString() });
    await setup.connect();
    await setup.query('CREATE EXTENSION IF NOT EXISTS vector');
    await setup.end();
    const provider = new HashEmbeddingProvider(256);
    const target = { kind: 'postgresql', connectionString: url.toString(), poolSize: 4 } as const;
    const logger = createLogger('silent');
    // Loaded without the HNSW index (as a bulk import would be), then opened with it, which builds it once:
    // inserting 200 000 vectors one batch at a time into a live HNSW index takes about 15 minutes here.
    store = await openPostgresStore(target, { logger, vectorDimensions: null });
    const insertPerSecond = await fill(store, TENANT, size, 42);
    await fill(store, OTHER, size, 4242);
    log(
      `postgres search: ${size} items × 2 tenants (${insertPerSecond.toFixed(0)} items/s through store.write)`,
    );
    const loader = newAssistant(store, true);
    const e0 = performance.now();
    const embedded = (await loader.reembed(TENANT, 2000)) + (await loader.reembed(OTHER, 2000));
    const embedPerSecond = embedded / ((performance.now() - e0) / 1000);
    log(`postgres search: embedded ${embedded} items at ${embedPerSecond.toFixed(0)} items/s (no index yet)`);
    await store.close();
    const i0 = performance.now();
    store = await openPostgresStore(target, { logger, vectorDimensions: provider.dimensions });
    const indexSeconds = (performance.now() - i0) / 1000;
    log(`postgres search: HNSW index over ${embedded} vectors built in ${indexSeconds.toFixed(0)} s`);
    const hybrid = newAssistant(store, true);
    const text = newAssistant(store, false);
    // A live server's autovacuum keeps the visibility map and statistics current; a fresh bulk load has neither.
    const maintenance = new pg.Client({ connectionString: url.toString() });
    await maintenance.connect();
    await maintenance.query('VACUUM ANALYZE');
    await maintenance.end();

    const queries = querySet(vocabulary());
    const passes = quickMode() ? 1 : 2;
    const textResult = await measure(text, queries, passes, 40);
    log(`postgres search: text p50 ${ms(textResult.p50)}, p95 ${ms(textResult.p95)}`);
    const hybridResult = await measure(hybrid, queries, passes, 40);
    log(`postgres search: hybrid p50 ${ms(hybridResult.p50)}, p95 ${ms(hybridResult.p95)}`);
    const [vector] = await provider.embed(['project meeting notes']);
    const vectorScanMs = await median5(() =>
      (store as PostgresStore).searchVectors(TENANT, vector as Float32Array, { model: provider.model }, 30),
    );
    const textScanMs = await median5(() =>
      (store as PostgresStore).searchText(TENANT, { terms: ['project', 'meeting'], match: 'all', limit: 30 }),
    );
    // Sanity: the measured tenant's hits are its own (the other tenant's ids share the same generator shape).
    const probe = await search(hybrid, TENANT, { query: (queries[0] as BenchQuery).text });
    if (probe.results.length === 0) log('postgres search: warning: the probe query found nothing');
    return {
      items: size,
      tenants: 2,
      insertPerSecond,
      embedPerSecond,
      indexSeconds,
      text: textResult,
      hybrid: hybridResult,
      vectorScanMs,
      textScanMs,
      server,
    };
  } finally {
    await store?.close();
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [name],
    );
    await admin.query(`DROP DATABASE IF EXISTS ${name}`);
    await admin.end();
  }
}

export function printPostgresSearch(r: PostgresSearchResult | { skipped: string }): string {
  if ('skipped' in r) return `${heading('Search latency on PostgreSQL')}\nnot measured: ${r.skipped}`;
  const row = (name: string, m: ModeResult): string[] => [
    name,
    ms(m.p50),
    ms(m.p95),
    ms(m.p99),
    ms(m.max),
    String(m.samples),
  ];
  return [
    heading(
      `Search latency on PostgreSQL ${r.server} (Assistant search(), ${r.items.toLocaleString('en-US')} items per tenant, ${r.tenants} tenants) — target hybrid p95 ≤ 50 ms`,
    ),
    table(
      ['mode', 'p50', 'p95', 'p99', 'max', 'samples'],
      [row('text (GIN)', r.text), row('hybrid (GIN + HNSW, RRF)', r.hybrid)],
    ),
    `bulk insert ${r.insertPerSecond.toFixed(0)} items/s; embedding ${r.embedPerSecond.toFixed(0)} items/s (before the index);`,
    `HNSW index build ${r.indexSeconds.toFixed(0)} s (maintenance_work_mem 512 MB); VACUUM ANALYZE before measuring (as autovacuum would have run);`,
    `store.searchVectors median ${ms(r.vectorScanMs)}, store.searchText median ${ms(r.textScanMs)}`,
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  const result = await runPostgresSearch();
  process.stdout.write(`${printPostgresSearch(result)}\n`);
}
