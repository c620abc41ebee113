/**
 * Search latency through the Assistant's search() (the code path of the MCP `search` tool), in process, on a
 * SQLite file in a temporary folder: 10 000 and 100 000 generated items, text mode and hybrid mode
 * (HashEmbeddingProvider). Prints numbers only; the target (text p95 ≤ 20 ms at 100 000) is reported, not
 * enforced.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Assistant } from '../src/assistant/assistant.js';
import { search } from '../src/assistant/search.js';
import { HashEmbeddingProvider } from '../src/storage/embeddings/provider.js';
import type { Store, WriteOp } from '../src/storage/model.js';
import { SqliteStore } from '../src/storage/sqlite/sqlite-store.js';
import { ItemGenerator, querySet, vocabulary, type BenchQuery, type QueryClass } from './corpus.js';
import { heading, isEntry, mean, ms, percentile, quickMode, table } from './lib.js';

const TENANT = 'local';
const BATCH = 1000;
/** reembed() batch size here (the server uses 200): each batch re-scans for items still without a vector. */
const REEMBED_BATCH = 5000;

export interface LatencyStats {
  readonly samples: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly mean: number;
  readonly max: number;
}

export interface ModeResult extends LatencyStats {
  readonly byClass: Record<QueryClass, LatencyStats>;
  /** Of the distinct queries: how many ended as all_words, any_word (fallback), semantic_only, none. */
  readonly matched: Record<'all_words' | 'any_word' | 'semantic_only' | 'none', number>;
  readonly queries: number;
}

export interface SizeResult {
  readonly items: number;
  readonly insertPerSecond: number;
  readonly databaseBytes: number;
  readonly text: ModeResult;
  readonly hybrid: ModeResult | null;
  /** Seconds reembed() took to give every new item a vector. */
  readonly embedSeconds: number | null;
  readonly embedPerSecond: number | null;
  /** The first hybrid query after the vectors changed (loads the vector matrix). */
  readonly firstHybridMs: number | null;
  /** Parts of every hybrid query, medians of 5 calls: the pending-vectors check and the vector scan. */
  readonly pendingCheckMs: number | null;
  readonly vectorScanMs: number | null;
}

export interface SearchBenchResult {
  readonly sizes: SizeResult[];
  /** Items per second through Assistant.addNote / createTask (one transaction per item, as the tools do). */
  readonly assistantInsertPerSecond: number;
  readonly passes: number;
  readonly hybridQueries: number;
  readonly reembedBatch: number;
}

function stats(values: readonly number[]): LatencyStats {
  return {
    samples: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    mean: mean(values),
    max: Math.max(...values),
  };
}

export function newAssistant(store: Store, vectors: boolean): Assistant {
  return new Assistant({
    store,
    defaultTimeZone: 'UTC',
    maxUploadBytes: 10 * 1024 * 1024,
    embeddings: vectors ? new HashEmbeddingProvider(256) : undefined,
    storageInfo: { database: 'sqlite:bench', documents: 'database' },
  });
}

/**
 * Runs `warmup` queries, then every query `passes` times; returns the latencies and, from the first pass, how
 * each query matched.
 */
export async function measure(
  assistant: Assistant,
  queries: readonly BenchQuery[],
  passes: number,
  warmup: number,
): Promise<ModeResult> {
  const matched: ModeResult['matched'] = { all_words: 0, any_word: 0, semantic_only: 0, none: 0 };
  for (const q of queries.slice(0, warmup)) await search(assistant, TENANT, { query: q.text });
  const all: number[] = [];
  const byClass = new Map<QueryClass, number[]>();
  for (let pass = 0; pass < passes; pass++) {
    // Rotate the starting point so no query always follows the same one.
    const start = Math.floor((pass * queries.length) / passes);
    for (let k = 0; k < queries.length; k++) {
      const q = queries[(start + k) % queries.length] as BenchQuery;
      const t0 = performance.now();
      const r = await search(assistant, TENANT, { query: q.text });
      const t = performance.now() - t0;
      if (pass === 0) matched[r.matched]++;
      all.push(t);
      const list = byClass.get(q.cls) ?? [];
      list.push(t);
      byClass.set(q.cls, list);
    }
  }
  const classes: QueryClass[] = ['common', 'medium', 'rare', 'mixed', 'syntax'];
  return {
    ...stats(all),
    byClass: Object.fromEntries(classes.map((c) => [c, stats(byClass.get(c) ?? [])])) as Record<
      QueryClass,
      LatencyStats
    >,
    matched,
    queries: queries.length,
  };
}

/** Assistant insert rate on its own database: the path an MCP client's create calls take. */
async function assistantInsertRate(count: number): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-bench-assistant-'));
  const store = new SqliteStore({ path: path.join(dir, 'db.sqlite') });
  try {
    const assistant = newAssistant(store, false);
    const gen = new ItemGenerator(vocabulary(), 7);
    const items = Array.from({ length: count }, () => gen.next());
    const t0 = performance.now();
    for (const [i, item] of items.entries()) {
      if (i % 2 === 0)
        await assistant.addNote(TENANT, { text: `${item.title}\n${item.body}`, tags: [...item.tags] });
      else
        await assistant.createTask(TENANT, {
          title: item.title,
          description: item.body,
          tags: [...item.tags],
        });
    }
    return count / ((performance.now() - t0) / 1000);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function median5(run: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return percentile(times, 50);
}

function databaseBytes(file: string): number {
  let total = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      total += statSync(f).size;
    } catch {
      // no WAL file
    }
  }
  return total;
}

export async function runSearch(
  options: { sizes?: number[]; passes?: number; vectors?: boolean; log?: (line: string) => void } = {},
): Promise<SearchBenchResult> {
  const quick = quickMode();
  const sizes = options.sizes ?? (quick ? [10_000] : [10_000, 100_000]);
  const passes = options.passes ?? (quick ? 1 : 3);
  const vectors = options.vectors ?? true;
  // Hybrid queries are slower (brute-force vectors): one pass over every other query keeps the run short.
  const hybridEvery = quick ? 4 : 2;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const vocab = vocabulary();
  const queries = querySet(vocab);
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-bench-search-'));
  const file = path.join(dir, 'db.sqlite');
  const store = new SqliteStore({ path: file });
  const results: SizeResult[] = [];
  try {
    const assistantRate = await assistantInsertRate(quick ? 300 : 2000);
    log(`search: Assistant inserts ${assistantRate.toFixed(0)} items/s (one transaction per item)`);
    const gen = new ItemGenerator(vocab);
    const text = newAssistant(store, false);
    const hybrid = newAssistant(store, true);
    let have = 0;
    for (const size of [...sizes].sort((a, b) => a - b)) {
      const t0 = performance.now();
      const added = size - have;
      while (have < size) {
        const ops: WriteOp[] = [];
        for (let i = 0; i < BATCH && have < size; i++, have++) ops.push({ op: 'insert', item: gen.next() });
        await store.write(TENANT, ops, new Date().toISOString());
      }
      const insertPerSecond = added / ((performance.now() - t0) / 1000);
      log(
        `search: ${size} items (+${added} at ${insertPerSecond.toFixed(0)} items/s through store.write batches)`,
      );
      const textResult = await measure(text, queries, passes, queries.length);
      log(`search: text mode at ${size}: p50 ${ms(textResult.p50)}, p95 ${ms(textResult.p95)}`);
      let hybridResult: ModeResult | null = null;
      let embedSeconds: number | null = null;
      let embedPerSecond: number | null = null;
      let firstHybridMs: number | null = null;
      let pendingCheckMs: number | null = null;
      let vectorScanMs: number | null = null;
      if (vectors) {
        const e0 = performance.now();
        const embedded = await hybrid.reembed(TENANT, REEMBED_BATCH);
        embedSeconds = (performance.now() - e0) / 1000;
        embedPerSecond = embedded / embedSeconds;
        const f0 = performance.now();
        await search(hybrid, TENANT, { query: (queries[0] as BenchQuery).text });
        firstHybridMs = performance.now() - f0;
        const provider = hybrid.embeddings as HashEmbeddingProvider;
        const [vector] = await provider.embed(['project meeting notes']);
        pendingCheckMs = await median5(() => store.hasPendingVectors(TENANT, provider.model));
        vectorScanMs = await median5(() =>
          store.searchVectors(TENANT, vector as Float32Array, { model: provider.model }, 30),
        );
        hybridResult = await measure(
          hybrid,
          queries.filter((_, i) => i % hybridEvery === 0),
          1,
          20,
        );
        log(
          `search: hybrid mode at ${size}: embedded ${embedded} in ${embedSeconds.toFixed(1)} s, p50 ${ms(hybridResult.p50)}, p95 ${ms(hybridResult.p95)}`,
        );
      }
      results.push({
        items: size,
        insertPerSecond,
        databaseBytes: databaseBytes(file),
        text: textResult,
        hybrid: hybridResult,
        embedSeconds,
        embedPerSecond,
        firstHybridMs,
        pendingCheckMs,
        vectorScanMs,
      });
    }
    return {
      sizes: results,
      assistantInsertPerSecond: assistantRate,
      passes,
      hybridQueries: Math.ceil(queries.length / hybridEvery),
      reembedBatch: REEMBED_BATCH,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function modeRows(r: SearchBenchResult, mode: 'text' | 'hybrid'): string[][] {
  return r.sizes.flatMap((s) => {
    const m = s[mode];
    if (!m) return [];
    const fallback = `${m.matched.any_word}/${m.queries} (${((100 * m.matched.any_word) / m.queries).toFixed(1)}%)`;
    return [
      [
        s.items.toLocaleString('en-US'),
        ms(m.p50),
        ms(m.p95),
        ms(m.p99),
        ms(m.mean),
        ms(m.max),
        String(m.samples),
        fallback,
        String(m.matched.none + m.matched.semantic_only),
      ],
    ];
  });
}

function classRows(r: SearchBenchResult, mode: 'text' | 'hybrid'): string[][] {
  const classes: QueryClass[] = ['common', 'medium', 'rare', 'mixed', 'syntax'];
  return r.sizes.flatMap((s) => {
    const m = s[mode];
    if (!m) return [];
    return classes.map((c) => [
      `${s.items.toLocaleString('en-US')} ${c}`,
      ms(m.byClass[c].p50),
      ms(m.byClass[c].p95),
      ms(m.byClass[c].max),
      String(m.byClass[c].samples),
    ]);
  });
}

export function printSearch(r: SearchBenchResult): string {
  const headers = [
    'items',
    'p50',
    'p95',
    'p99',
    'mean',
    'max',
    'samples',
    'any_word fallback',
    'no text hit',
  ];
  const lines = [
    heading('Search latency, text mode (Assistant search(), SQLite FTS5) — target p95 ≤ 20 ms at 100 000'),
    table(headers, modeRows(r, 'text')),
    '',
    'by query class (text mode):',
    table(['items / class', 'p50', 'p95', 'max', 'samples'], classRows(r, 'text')),
  ];
  if (r.sizes.some((s) => s.hybrid)) {
    lines.push(
      heading('Search latency, hybrid mode (HashEmbeddingProvider 256 + FTS5, RRF) — report only'),
      table(headers, modeRows(r, 'hybrid')),
      '',
      'by query class (hybrid mode):',
      table(['items / class', 'p50', 'p95', 'max', 'samples'], classRows(r, 'hybrid')),
    );
  }
  lines.push(
    heading('Data set'),
    table(
      [
        'items',
        'bulk insert',
        'database size',
        `reembed (batch ${r.reembedBatch})`,
        'first hybrid query',
        'pending check',
        'vector scan',
      ],
      r.sizes.map((s) => [
        s.items.toLocaleString('en-US'),
        `${s.insertPerSecond.toFixed(0)} items/s`,
        `${(s.databaseBytes / 1048576).toFixed(1)} MiB`,
        s.embedPerSecond === null
          ? 'n/a'
          : `${s.embedPerSecond.toFixed(0)} items/s (${s.embedSeconds?.toFixed(1)} s)`,
        s.firstHybridMs === null ? 'n/a' : ms(s.firstHybridMs, 1),
        s.pendingCheckMs === null ? 'n/a' : ms(s.pendingCheckMs, 1),
        s.vectorScanMs === null ? 'n/a' : ms(s.vectorScanMs, 1),
      ]),
    ),
    `Assistant create calls (one transaction each, as the MCP tools do): ${r.assistantInsertPerSecond.toFixed(0)} items/s`,
    `Text mode: ${r.passes} measured pass(es) over 200 fixed queries per size, after one warm-up pass.`,
    `Hybrid mode: 1 measured pass over ${r.hybridQueries} of those queries per size, after 20 warm-up queries.`,
    'Fallback and no-hit counts are per distinct query (first measured pass).',
    'Every hybrid query runs the pending check (store.hasPendingVectors) and the vector scan',
    '(store.searchVectors, brute force over the cached matrix); their medians are shown above.',
  );
  return lines.join('\n');
}

if (isEntry(import.meta.url)) {
  const result = await runSearch();
  process.stdout.write(`${printSearch(result)}\n`);
}
