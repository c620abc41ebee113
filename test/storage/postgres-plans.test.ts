/**
 * On the real server, with thousands of rows in two tenants, the hot queries use their indexes under row-level
 * security: the HNSW expression index for searchVectors' SQL, and the GIN index inside the full-text search
 * function (seen through auto_explain, since a function's inner plan is not shown by EXPLAIN).
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openPostgresStore, type PostgresStore } from '../../src/storage/postgres/postgres-store.js';
import { vectorSearchSql } from '../../src/storage/postgres/postgres-store.js';
import { APP_ROLE } from '../../src/storage/postgres/schema.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';
import { item, newTenant, NOW, unit } from './contract.js';

const DIMS = 16;
const MODEL = 'plan-16';
const PER_TENANT = 3000;

describeWithServer('query plans on the real server', () => {
  let db: TestDatabase;
  let store: PostgresStore;
  const a = newTenant();
  const b = newTenant();
  const rare: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    store = await openPostgresStore(
      { kind: 'postgresql', connectionString: db.url, poolSize: 4 },
      { logger: quietLogger, vectorDimensions: DIMS },
    );
    for (const tenant of [a, b]) {
      const records = Array.from({ length: PER_TENANT }, (_, i) =>
        item({
          title: `entry ${i} ${i % 600 === 0 ? 'quokka' : 'common'} words`,
          body: `body text number ${i % 50} about planning and meetings`,
        }),
      );
      if (tenant === a) rare.push(...records.filter((r) => r.title.includes('quokka')).map((r) => r.id));
      for (let i = 0; i < records.length; i += 500) {
        await store.write(
          tenant,
          records.slice(i, i + 500).map((r) => ({ op: 'insert' as const, item: r })),
          NOW,
        );
      }
    }
    // Vectors in bulk (as the superuser; putVector one by one would only make the setup slower).
    await db.query(
      `INSERT INTO item_vectors (tenant_id, item_id, model, dims, state, embedding, updated_at)
       SELECT tenant_id, id, $1, $2, 'ready',
              (SELECT array_agg(random() - 0.5)::vector FROM generate_series(1, $2) WHERE id IS NOT NULL), 'now'
       FROM items`,
      [MODEL, DIMS],
    );
    await db.query('UPDATE items SET vector_model = $1', [MODEL]);
    // As autovacuum would: statistics, and the GIN index's pending list merged.
    await db.query('VACUUM ANALYZE');
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  it('searchVectors’ query walks the HNSW expression index', async () => {
    const q = `[${Array.from(unit(Array.from({ length: DIMS }, (_, i) => (i % 3) - 1))).join(',')}]`;
    const explain = async (withKinds: boolean, settings: Record<string, string>) =>
      store.withTenant(
        a,
        async (sql) =>
          (
            await sql.query<{ 'QUERY PLAN': string }>(
              `EXPLAIN ${vectorSearchSql(DIMS, withKinds)}`,
              withKinds ? [a, q, MODEL, 30, ['note', 'task']] : [a, q, MODEL, 30],
            )
          ).rows
            .map((r) => r['QUERY PLAN'])
            .join('\n'),
        { 'hnsw.iterative_scan': 'relaxed_order', ...settings },
      );
    for (const withKinds of [false, true]) {
      const plan = await explain(withKinds, { enable_seqscan: 'off' });
      expect(plan).toMatch(/Index Scan using item_vectors_hnsw_16 on item_vectors/);
      expect(plan).toMatch(/Order By: \(\(embedding\)::vector\(16\) <=> /);
    }
    // And the store's answer is the tenant's own nearest neighbours.
    const hits = await store.searchVectors(
      a,
      unit(Array.from({ length: DIMS }, (_, i) => (i % 3) - 1)),
      { model: MODEL },
      30,
    );
    expect(hits).toHaveLength(30);
    const own = new Set(
      (await db.query<{ id: string }>('SELECT id FROM items WHERE tenant_id = $1', [a])).map((r) => r.id),
    );
    for (const h of hits) expect(own.has(h.id)).toBe(true);
  });

  it('the full-text search function uses the GIN index, as the application role, for one tenant', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      await client.query('BEGIN');
      await client.query("LOAD 'auto_explain'");
      await client.query('SET LOCAL auto_explain.log_min_duration = 0');
      await client.query('SET LOCAL auto_explain.log_nested_statements = on');
      await client.query('SET LOCAL auto_explain.log_level = notice');
      // A few thousand rows are cheap to scan; the brief's scale (100 000 per tenant) is where the index wins.
      await client.query('SET LOCAL enable_seqscan = off');
      await client.query(`SELECT set_config('role', $1, true), set_config('mcp_pa.tenant', $2, true)`, [
        APP_ROLE,
        a,
      ]);
      const rows = (
        await client.query<{ id: string }>(
          `SELECT id FROM mcp_pa_search_items(ARRAY['quokka'], true, NULL, NULL, NULL, NULL, NULL, 50)`,
        )
      ).rows;
      await client.query('ROLLBACK');
      expect(rows.map((r) => r.id).sort()).toEqual([...rare].sort());
      // One word: first the title index (the ranking shortcut), then, with fewer title matches than asked
      // for, every match through the full-text index.
      const inner = notices.filter((n) => n.includes('FROM items m'));
      expect(inner, notices.join('\n---\n')).toHaveLength(2);
      expect(inner[0]).toMatch(/Bitmap Index Scan on items_title_search/);
      expect(inner[1]).toMatch(/Bitmap Index Scan on items_search/);
    } finally {
      await client.end();
    }
    // The store's searchText goes through that function.
    const hits = await store.searchText(a, { terms: ['quokka'], match: 'all', limit: 50 });
    expect(hits.map((h) => h.id).sort()).toEqual([...rare].sort());
  });
});
