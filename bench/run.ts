/**
 * Runs every benchmark and prints a summary against the targets. Benchmarks report; they never fail on a
 * threshold (exit code 0 whether targets are met or not). BENCH_QUICK=1 runs a small smoke version.
 */
import { printColdStart, runColdStart, type ColdStartResult } from './cold-start.js';
import { printHttp, runHttp, type HttpBenchResult } from './http.js';
import { heading, ms, quickMode, table } from './lib.js';
import { printPostgresSearch, runPostgresSearch, type PostgresSearchResult } from './postgres-search.js';
import { printSearch, runSearch, type SearchBenchResult } from './search.js';
import { printSecurityCost, runSecurityCost, type SecurityCostResult } from './security-cost.js';
import {
  printSessionMemory,
  runSessionMemory,
  SESSION_MEMORY_TARGET_BYTES,
  type SessionMemoryResult,
} from './session-memory.js';
import { printTokenEndpoint, runTokenEndpoint, type TokenEndpointResult } from './token-endpoint.js';

const SEARCH_TARGET_MS = 20;
const SEARCH_TARGET_ITEMS = 100_000;
const PG_HYBRID_TARGET_MS = 50;
const HTTP_RATIO_TARGET = 2.0;

function verdict(ok: boolean | null): string {
  return ok === null ? 'not measured' : ok ? 'met' : 'NOT MET';
}

function summary(
  cold: ColdStartResult,
  searchResult: SearchBenchResult,
  pgResult: PostgresSearchResult | { skipped: string },
  http: HttpBenchResult,
  security: SecurityCostResult | { skipped: string },
  token: TokenEndpointResult,
  sessions: SessionMemoryResult,
): string {
  const at = (n: number) => searchResult.sizes.find((s) => s.items === n);
  const big = at(SEARCH_TARGET_ITEMS);
  const rows: string[][] = [
    ['cold start ratio, fresh database', cold.ratioFresh.toFixed(3), '≤ 1.0', verdict(cold.ratioFresh <= 1)],
    [
      'cold start ratio, existing database',
      cold.ratioExisting.toFixed(3),
      '≤ 1.0',
      verdict(cold.ratioExisting <= 1),
    ],
    ...cold.variants.map((v) => [`cold start median, ${v.name}`, ms(v.median, 1), '', 'info']),
    ...searchResult.sizes.map((s) => [
      `search p95, text, ${s.items.toLocaleString('en-US')} items`,
      ms(s.text.p95),
      s.items === SEARCH_TARGET_ITEMS ? `≤ ${SEARCH_TARGET_MS} ms` : '',
      s.items === SEARCH_TARGET_ITEMS ? verdict(s.text.p95 <= SEARCH_TARGET_MS) : 'info',
    ]),
  ];
  if (!big)
    rows.push([
      `search p95, text, ${SEARCH_TARGET_ITEMS.toLocaleString('en-US')} items`,
      'n/a',
      `≤ ${SEARCH_TARGET_MS} ms`,
      verdict(null),
    ]);
  for (const s of searchResult.sizes) {
    if (s.hybrid)
      rows.push([
        `search p95, hybrid, ${s.items.toLocaleString('en-US')} items`,
        ms(s.hybrid.p95),
        '',
        'report only',
      ]);
  }
  if ('skipped' in pgResult) {
    rows.push(['PostgreSQL hybrid search p95', 'n/a', `≤ ${PG_HYBRID_TARGET_MS} ms`, verdict(null)]);
  } else {
    const full = pgResult.items >= SEARCH_TARGET_ITEMS;
    rows.push(
      [
        `PostgreSQL hybrid search p95, ${pgResult.items.toLocaleString('en-US')} items`,
        ms(pgResult.hybrid.p95),
        `≤ ${PG_HYBRID_TARGET_MS} ms`,
        full ? verdict(pgResult.hybrid.p95 <= PG_HYBRID_TARGET_MS) : 'smoke only',
      ],
      [`PostgreSQL hybrid search p50`, ms(pgResult.hybrid.p50), '', 'info'],
    );
  }
  for (const c of http.calls) {
    rows.push([
      `HTTPS ${c.call} throughput, ours/SDK example`,
      c.ratio.toFixed(2),
      `≥ ${HTTP_RATIO_TARGET.toFixed(1)}`,
      verdict(c.ratio >= HTTP_RATIO_TARGET),
    ]);
  }
  if ('skipped' in security) {
    rows.push(['security on/off, read-tool throughput (PostgreSQL)', 'n/a', '≥ 0.95', verdict(null)]);
  } else {
    rows.push(
      [
        'security on/off, read-tool throughput (PostgreSQL)',
        security.throughput.ratio.toFixed(3),
        '≥ 0.95',
        verdict(security.throughput.ratio >= 0.95),
      ],
      [
        'security on/off, read-tool p99 at 50 clients',
        security.latency50.ratio.toFixed(3),
        '≤ 1.10',
        verdict(security.latency50.ratio <= 1.1),
      ],
    );
    if ('skipped' in security.dpop)
      rows.push(['DPoP extra server CPU / ES256 verification', 'n/a', '≤ 1.5', verdict(null)]);
    else
      rows.push([
        'DPoP extra server CPU / ES256 verification',
        security.dpop.ratio.toFixed(2),
        '≤ 1.5',
        verdict(security.dpop.ratio <= 1.5),
      ]);
    rows.push(['ES256 verifications per second, one core', security.es256PerSecond.toFixed(0), '', 'info']);
  }
  for (const g of token.grants) {
    rows.push([
      `token endpoint ${g.grant}, ours/oidc-provider in memory`,
      g.ratio.toFixed(2),
      '≥ 0.8',
      verdict(g.ratio >= 0.8),
    ]);
  }
  for (const v of sessions.variants) {
    rows.push([
      `memory per idle stateful session (${v.variant})`,
      `${(v.heapPerSession / 1024).toFixed(1)} KB`,
      `≤ ${SESSION_MEMORY_TARGET_BYTES / 1024} KB`,
      verdict(v.heapPerSession <= SESSION_MEMORY_TARGET_BYTES),
    ]);
  }
  return [heading('Summary'), table(['figure', 'value', 'target', 'status'], rows)].join('\n');
}

const started = Date.now();
if (quickMode()) process.stdout.write('BENCH_QUICK: smoke run with fewer rounds and sizes\n');
const cold = await runColdStart();
process.stdout.write(`${printColdStart(cold)}\n`);
const searchResult = await runSearch();
process.stdout.write(`${printSearch(searchResult)}\n`);
const pgResult = await runPostgresSearch();
process.stdout.write(`${printPostgresSearch(pgResult)}\n`);
const http = await runHttp();
process.stdout.write(`${printHttp(http)}\n`);
const security = await runSecurityCost();
process.stdout.write(`${printSecurityCost(security)}\n`);
const token = await runTokenEndpoint();
process.stdout.write(`${printTokenEndpoint(token)}\n`);
const sessions = await runSessionMemory();
process.stdout.write(`${printSessionMemory(sessions)}\n`);
process.stdout.write(`${summary(cold, searchResult, pgResult, http, security, token, sessions)}\n`);
process.stdout.write(`\n(node ${process.version}, ${((Date.now() - started) / 1000).toFixed(0)} s in all)\n`);
