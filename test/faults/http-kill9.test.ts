/**
 * Fault: `kill -9` of `mcp-pa serve` (a real child process, HTTPS, OAuth) in the middle of a stream of concurrent
 * `tools/call create_todo` writes, then a restart on the same port and data: every write the client saw acknowledged
 * is there exactly once, under the id it was given; the same access token still works. On embedded PGlite (always)
 * and on the real PostgreSQL (when MCP_PA_TEST_DATABASE_URL is set, with amcheck on the project's B-tree indexes
 * and an index-versus-heap count check).
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, describeWithServer, type TestDatabase } from '../support/postgres.js';
import { headlessTokens, startServerProcess, type ServerProcess } from '../support/server-process.js';
import {
  createTodoHttp,
  listTodosHttp,
  reconcile,
  runTag,
  writeStream,
  type Reconciliation,
  type StreamOutcome,
} from './support.js';

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
});

interface KillRun {
  readonly sp: ServerProcess;
  readonly token: string;
  readonly outcome: StreamOutcome;
  readonly result: Reconciliation;
  readonly prefix: string;
  readonly restartMs: number;
}

/** Starts the server, streams writes, kills it with SIGKILL at a random moment, restarts it, reads back. */
async function killDuringWrites(label: string, env: Record<string, string>): Promise<KillRun> {
  const t0 = Date.now();
  const sp = await startServerProcess({
    env,
    users: ['alice'],
    usersInProcess: true,
    config: { server: { sessions: 'stateless' } },
  });
  closers.push(() => sp.close());
  const user = sp.users.get('alice');
  if (!user) throw new Error('no user');
  const t1 = Date.now();
  const { accessToken } = await headlessTokens({ ...sp, user });
  const t2 = Date.now();
  const prefix = `fault-http-${label}-${runTag()}`;
  const pidBefore = sp.pid();
  const outcome = await writeStream({
    writers: 6,
    prefix,
    write: (title) => createTodoHttp(sp, accessToken, title),
    faultAfter: [30, 120],
    fault: () => sp.kill9(),
  });
  expect(sp.running()).toBe(false);
  const t3 = Date.now();
  const started = Date.now();
  await sp.restart();
  const restartMs = Date.now() - started;
  expect(sp.pid()).not.toBe(pidBefore);
  const found = await listTodosHttp(sp, accessToken, prefix);
  const result = reconcile(outcome, found);
  console.log(
    `[faults] HTTP kill -9 (${label}): ${outcome.sent.size} writes sent, ${result.acknowledged} acknowledged ` +
      `(${outcome.ackedAtFault} before SIGKILL, ${outcome.inFlightAtFault} in flight then), ${outcome.failed} ` +
      `failed; found after restart: ${result.found} (${result.unacknowledgedFound} unacknowledged but ` +
      `committed), missing ${result.missing.length}${result.missing.length ? ` ${JSON.stringify(result.missing.slice(0, 5))}` : ''}, ` +
      `duplicated ${result.duplicated.length}; restart to ready ${restartMs} ms (first start ${t1 - t0} ms, OAuth flow ${t2 - t1} ms, ` +
      `write stream ${t3 - t2} ms)`,
  );
  return { sp, token: accessToken, outcome, result, prefix, restartMs };
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function expectNoLoss(run: KillRun): void {
  const { outcome, result } = run;
  expect(outcome.ackedAtFault).toBeGreaterThanOrEqual(30);
  expect(outcome.failed).toBeGreaterThan(0);
  expect(result.missing).toEqual([]);
  expect(result.duplicated).toEqual([]);
  expect(result.idMismatch).toBe(0);
  expect(result.unknown).toBe(0);
  expect(result.unacknowledgedFound).toBeLessThanOrEqual(outcome.sent.size - outcome.acked.length);
}

type Query = <R>(text: string, params?: unknown[]) => Promise<R[]>;

interface IndexCheck {
  readonly btrees: number;
  readonly bySeq: { tasks: number; matched: number };
  readonly byIndex: { tasks: number; matched: number };
}

/**
 * On one database session, after the server stopped: amcheck's bt_index_check(heapallindexed) on every B-tree
 * index of the project's tables (structurally sound, and holding every live row of its table); and, since GIN
 * indexes have no amcheck function before PostgreSQL 18, the same counts through sequential scans and through the
 * indexes (B-tree and the full-text GIN index), with EXPLAIN showing which path each took.
 */
async function checkIndexes(query: Query, prefix: string): Promise<IndexCheck> {
  await query('CREATE EXTENSION IF NOT EXISTS amcheck');
  const indexes = await query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i
       JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_am am ON am.oid = c.relam
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE am.amname = 'btree' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`,
  );
  expect(indexes.map((i) => i.name)).toEqual(
    expect.arrayContaining(['items_by_created', 'items_client_ref']),
  );
  for (const { name } of indexes) await query('SELECT bt_index_check(to_regclass($1), true)', [name]);

  const [owner] = await query<{ tenant_id: string }>('SELECT tenant_id FROM items WHERE title = $1', [
    `${prefix}-after`,
  ]);
  expect(owner?.tenant_id).toBeTruthy();
  const counts = async (seq: boolean): Promise<{ tasks: number; matched: number }> => {
    for (const setting of ['enable_indexscan', 'enable_indexonlyscan', 'enable_bitmapscan']) {
      await query(`SET ${setting} = ${seq ? 'off' : 'on'}`);
    }
    await query(`SET enable_seqscan = ${seq ? 'on' : 'off'}`);
    const text = `SELECT (SELECT count(*) FROM items WHERE tenant_id = $1 AND kind = 'task') AS tasks,
                         (SELECT count(*) FROM items WHERE search @@ plainto_tsquery('simple', $2)) AS matched`;
    const params = [owner?.tenant_id, prefix.split('-').at(-1)];
    const plan = (await query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, params))
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    if (seq) expect(plan).not.toMatch(/Index/);
    else {
      expect(plan).toMatch(/Index/);
      expect(plan).not.toMatch(/Seq Scan/);
    }
    const [r] = await query<{ tasks: string | number; matched: string | number }>(text, params);
    await query('RESET ALL');
    return { tasks: Number(r?.tasks), matched: Number(r?.matched) };
  };
  return { btrees: indexes.length, bySeq: await counts(true), byIndex: await counts(false) };
}

function expectIndexesAgree(label: string, check: IndexCheck, acknowledged: number): void {
  console.log(
    `[faults] ${label} after kill -9: amcheck bt_index_check(heapallindexed) passed on ${check.btrees} B-tree ` +
      `indexes; rows by sequential scan ${check.bySeq.tasks} tasks / ${check.bySeq.matched} full-text matches, ` +
      `by index ${check.byIndex.tasks} / ${check.byIndex.matched}`,
  );
  expect(check.byIndex).toEqual(check.bySeq);
  expect(check.bySeq.tasks).toBeGreaterThanOrEqual(acknowledged);
  expect(check.bySeq.matched).toBeGreaterThanOrEqual(acknowledged);
}

describe('fault: kill -9 of mcp-pa serve during concurrent writes (embedded PGlite)', () => {
  it('keeps every acknowledged write exactly once, the same token works after the restart, indexes sound', async () => {
    const run = await killDuringWrites('pglite', {});
    expectNoLoss(run);
    // Writable again after the crash.
    expect(await createTodoHttp(run.sp, run.token, `${run.prefix}-after`)).toMatch(/\S/);
    await run.sp.stop();
    // The data folder opened by PGlite here (one process at a time), with the extensions the server loads.
    const { PGlite } = await import('@electric-sql/pglite');
    const { amcheck } = await import('@electric-sql/pglite/contrib/amcheck');
    const { btree_gin } = await import('@electric-sql/pglite/contrib/btree_gin');
    const { vector } = await import('@electric-sql/pglite-pgvector');
    const db = await PGlite.create({
      dataDir: path.join(run.sp.dataDir, 'pglite'),
      extensions: { amcheck, btree_gin, vector },
    });
    try {
      const query: Query = async <R>(text: string, params?: unknown[]) =>
        (await db.query<R>(text, params)).rows;
      expectIndexesAgree('PGlite', await checkIndexes(query, run.prefix), run.result.acknowledged);
    } finally {
      await db.close();
    }
  });
});

describeWithServer('fault: kill -9 of mcp-pa serve during concurrent writes (PostgreSQL)', () => {
  it('keeps every acknowledged write exactly once, and the indexes agree with the tables', async () => {
    const db: TestDatabase = await createTestDatabase();
    closers.push(() => db.drop());
    const run = await killDuringWrites('postgresql', { MCP_DATABASE_URL: db.url });
    expectNoLoss(run);
    expect(await createTodoHttp(run.sp, run.token, `${run.prefix}-after`)).toMatch(/\S/);
    await run.sp.stop();
    const check = await withClient(db.url, (c) =>
      checkIndexes(
        async <R>(text: string, params?: unknown[]) => (await c.query(text, params)).rows as R[],
        run.prefix,
      ),
    );
    expectIndexesAgree('PostgreSQL', check, run.result.acknowledged);
  });
});
