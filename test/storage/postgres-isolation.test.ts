/**
 * Tenant isolation enforced by PostgreSQL itself (row-level security under a non-owner role), on PGlite and on
 * the real server: raw SQL with no tenant filter, run inside a tenant's store transaction, reaches only that
 * tenant's rows, in every table; the schema is what the isolation relies on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ItemRecord } from '../../src/storage/model.js';
import { PgliteDriver, type Driver } from '../../src/storage/postgres/driver.js';
import {
  openPostgresStore,
  storeOnDriver,
  type PostgresStore,
} from '../../src/storage/postgres/postgres-store.js';
import {
  APP_ROLE,
  DEFINER_ROLE,
  SERVER_STATE_TABLES,
  TENANT_TABLES,
} from '../../src/storage/postgres/schema.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';
import { bumped, item, LATER, newTenant, NOW, unit } from './contract.js';

const MODEL = 'hash-v1-4';

class Rollback extends Error {}

/** Rows per table per tenant, counted by the connecting user (a superuser here, so not subject to RLS). */
async function census(
  driver: Driver,
  tenants: readonly string[],
): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const table of TENANT_TABLES) {
    const rows = (
      await driver.query<{ tenant_id: string; n: number }>(
        `SELECT tenant_id, count(*)::int AS n FROM ${table} WHERE tenant_id = ANY ($1::text[]) GROUP BY tenant_id`,
        [[...tenants]],
      )
    ).rows;
    out[table] = Object.fromEntries(tenants.map((t) => [t, rows.find((r) => r.tenant_id === t)?.n ?? 0]));
  }
  return out;
}

/** Gives a tenant rows in every table: a profile, items (one document with content), vectors, import marks. */
async function seed(store: PostgresStore, tenant: string): Promise<ItemRecord[]> {
  const records = [
    item({ title: `shared word ${tenant}` }),
    item({ kind: 'document', title: 'shared word document' }),
    item({ kind: 'task', title: 'shared word task', status: 'open' }),
  ];
  await store.write(
    tenant,
    [
      ...records.map((r) =>
        r.kind === 'document'
          ? { op: 'insert' as const, item: r, content: new Uint8Array([1, 2, 3]) }
          : { op: 'insert' as const, item: r },
      ),
      { op: 'mark_imported', ref: `legacy:${tenant}`, item_id: records[0]?.id ?? null },
    ],
    NOW,
  );
  await store.putProfile(tenant, { name: tenant }, null, NOW);
  for (const r of records.slice(0, 2)) await store.putVector(tenant, r.id, MODEL, unit([1, 0, 0, 0]), NOW);
  await store.putVector(tenant, records[2]?.id as string, MODEL, null, NOW);
  return records;
}

function postgresIsolation(
  name: string,
  open: () => Promise<PostgresStore>,
  close: () => Promise<void>,
): void {
  describe(`PostgreSQL isolation: ${name}`, () => {
    let store: PostgresStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
      await close();
    });

    it('every table carries tenant_id, with row-level security enabled and forced by a tenant policy', async () => {
      const tables = (
        await store.driver.query<{
          relname: string;
          rls: boolean;
          forced: boolean;
          owner: string;
          has_tenant: boolean;
        }>(
          `SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
                  pg_get_userbyid(c.relowner) AS owner,
                  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                            AND NOT a.attisdropped) AS has_tenant
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
        )
      ).rows;
      // Only the migrations' bookkeeping and the authorization server's state (which the application role
      // cannot touch at all: test/auth/oidc-adapter.test.ts) are outside the tenant tables.
      const outside = new Set<string>(['schema_migrations', ...SERVER_STATE_TABLES]);
      expect(tables.map((t) => t.relname).filter((n) => !outside.has(n))).toEqual([...TENANT_TABLES].sort());
      for (const t of tables.filter((x) => !outside.has(x.relname))) {
        expect(t, t.relname).toMatchObject({ rls: true, forced: true, has_tenant: true });
        expect(t.owner).not.toBe(APP_ROLE);
        const policies = (
          await store.driver.query<{ roles: string; qual: string; with_check: string }>(
            `SELECT roles::text AS roles, qual, with_check FROM pg_policies
             WHERE tablename = $1 AND policyname = 'tenant_isolation'`,
            [t.relname],
          )
        ).rows;
        expect(policies).toHaveLength(1);
        expect(policies[0]?.qual).toContain("current_setting('mcp_pa.tenant'::text, true)");
        expect(policies[0]?.with_check).toContain("current_setting('mcp_pa.tenant'::text, true)");
      }
    });

    it('the application role owns nothing, bypasses nothing and holds only DML on the tenant tables', async () => {
      const role = (
        await store.driver.query<{ rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }>(
          'SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1',
          [APP_ROLE],
        )
      ).rows[0];
      expect(role).toEqual({ rolsuper: false, rolbypassrls: false, rolcanlogin: false });
      const owned = await store.driver.query(
        `SELECT 1 FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
        [APP_ROLE],
      );
      expect(owned.rows).toEqual([]);
      for (const table of TENANT_TABLES) {
        const privileges = (
          await store.driver.query<Record<string, boolean>>(
            `SELECT ${['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']
              .map((p) => `has_table_privilege($1, $2::regclass, '${p}') AS "${p}"`)
              .join(', ')}`,
            [APP_ROLE, table],
          )
        ).rows[0];
        expect(privileges, table).toEqual({
          SELECT: true,
          INSERT: true,
          UPDATE: true,
          DELETE: true,
          TRUNCATE: false,
          REFERENCES: false,
          TRIGGER: false,
        });
      }
      const other = (
        await store.driver.query<{ migrations: boolean; create: boolean }>(
          `SELECT has_table_privilege($1, 'schema_migrations', 'SELECT') AS migrations,
                  has_schema_privilege($1, current_schema(), 'CREATE') AS create`,
          [APP_ROLE],
        )
      ).rows[0];
      expect(other).toEqual({ migrations: false, create: false });
      // The two cross-tenant doors: SECURITY DEFINER, owned by the definer role, executable by the app role only.
      const fns = (
        await store.driver.query<{ proname: string; secdef: boolean; owner: string; acl: string }>(
          `SELECT proname, prosecdef AS secdef, pg_get_userbyid(proowner) AS owner, proacl::text AS acl
           FROM pg_proc WHERE proname IN ('mcp_pa_search_items', 'mcp_pa_tenants_needing_vectors') ORDER BY proname`,
        )
      ).rows;
      expect(fns.map((f) => [f.proname, f.secdef, f.owner])).toEqual([
        ['mcp_pa_search_items', true, DEFINER_ROLE],
        ['mcp_pa_tenants_needing_vectors', true, DEFINER_ROLE],
      ]);
      for (const f of fns) {
        expect(f.acl).toContain(`${APP_ROLE}=X/`);
        expect(f.acl).not.toMatch(/[{,]=X\//); // no EXECUTE for PUBLIC
      }
    });

    it('raw SQL without a tenant filter, in tenant A’s transaction, reads, updates and deletes only A’s rows', async () => {
      const a = newTenant();
      const b = newTenant();
      await seed(store, a);
      const bRecords = await seed(store, b);
      const before = await census(store.driver, [a, b]);
      for (const table of TENANT_TABLES) {
        expect(before[table]?.[a], table).toBeGreaterThan(0);
        expect(before[table]?.[b], table).toBeGreaterThan(0);
      }

      // SELECT * from every table: only A's rows, all of them.
      await store.withTenant(a, async (sql) => {
        for (const table of TENANT_TABLES) {
          const rows = (await sql.query<{ tenant_id: string }>(`SELECT * FROM ${table}`)).rows;
          expect(rows.length, table).toBe(before[table]?.[a]);
          expect(new Set(rows.map((r) => r.tenant_id)), table).toEqual(new Set([a]));
          const named = await sql.query(`SELECT * FROM ${table} WHERE tenant_id = $1`, [b]);
          expect(named.rows, `${table} named B`).toEqual([]);
        }
        const joined = await sql.query(`SELECT i.id FROM items i JOIN item_vectors v ON v.item_id = i.id`);
        expect(joined.rows.length).toBe(3);
      });

      // UPDATE and DELETE with no WHERE at all touch only A's rows (rolled back afterwards).
      await expect(
        store.withTenant(a, async (sql) => {
          for (const table of TENANT_TABLES) {
            const updated = await sql.query(`UPDATE ${table} SET tenant_id = tenant_id`);
            expect(updated.rowCount, `update ${table}`).toBe(before[table]?.[a]);
          }
          await sql.query(`UPDATE items SET title = 'overwritten'`);
          for (const table of ['item_vectors', 'document_contents', 'legacy_imports', 'items', 'profiles']) {
            const deleted = await sql.query(`DELETE FROM ${table}`);
            expect(deleted.rowCount, `delete ${table}`).toBe(before[table]?.[a]);
          }
          throw new Rollback();
        }),
      ).rejects.toBeInstanceOf(Rollback);
      expect(await census(store.driver, [a, b])).toEqual(before);

      // The same, committed: A is emptied, B keeps every row as it was.
      await store.withTenant(a, async (sql) => {
        await sql.query(`UPDATE items SET title = 'overwritten'`);
        await sql.exec(
          'DELETE FROM item_vectors; DELETE FROM document_contents; DELETE FROM legacy_imports; DELETE FROM items; DELETE FROM profiles',
        );
      });
      const after = await census(store.driver, [a, b]);
      for (const table of TENANT_TABLES) {
        expect(after[table]?.[a], table).toBe(0);
        expect(after[table]?.[b], table).toBe(before[table]?.[b]);
      }
      for (const r of bRecords) expect(await store.getItem(b, r.id)).toEqual(r);
      expect(await store.getContent(b, bRecords[1]?.id as string)).toEqual(new Uint8Array([1, 2, 3]));

      // Writing B's rows from A's transaction is refused by the policy's WITH CHECK.
      await expect(
        store.withTenant(a, (sql) =>
          sql.query(`INSERT INTO profiles (tenant_id, data, version, updated_at) VALUES ($1, '{}', 1, 'x')`, [
            b,
          ]),
        ),
      ).rejects.toThrow(/row-level security/);
      await store.write(a, [{ op: 'insert', item: item() }], NOW);
      await expect(
        store.withTenant(a, (sql) => sql.query('UPDATE items SET tenant_id = $1', [b])),
      ).rejects.toThrow(/row-level security/);
      // Without a tenant set, the application role sees nothing at all.
      const none = await store.driver.transaction(async (sql) => {
        await sql.query(`SELECT set_config('role', $1, true)`, [APP_ROLE]);
        const counts = [];
        for (const table of TENANT_TABLES)
          counts.push((await sql.query(`SELECT 1 FROM ${table}`)).rows.length);
        const search = await sql.query(
          `SELECT * FROM mcp_pa_search_items(ARRAY['shared'], true, NULL, NULL, NULL, NULL, NULL, 100)`,
        );
        return [...counts, search.rows.length];
      });
      expect(none).toEqual([0, 0, 0, 0, 0, 0]);
      // The search function answers for the transaction's tenant only.
      await store.withTenant(b, async (sql) => {
        const rows = (
          await sql.query<{ id: string }>(
            `SELECT id FROM mcp_pa_search_items(ARRAY['shared'], true, NULL, NULL, NULL, NULL, NULL, 100)`,
          )
        ).rows;
        expect(rows.map((r) => r.id).sort()).toEqual(bRecords.map((r) => r.id).sort());
      });
    });

    it('the same item id in two tenants names two independent items', async () => {
      const a = newTenant();
      const b = newTenant();
      const mine = item({ title: 'mine', client_ref: 'same' });
      const theirs = { ...mine, title: 'theirs' };
      await store.write(a, [{ op: 'insert', item: mine, content: new Uint8Array([1]) }], NOW);
      await store.write(b, [{ op: 'insert', item: theirs, content: new Uint8Array([2]) }], NOW);
      await store.putVector(a, mine.id, MODEL, unit([1, 0, 0, 0]), NOW);
      await store.putVector(b, mine.id, MODEL, unit([0, 1, 0, 0]), NOW);
      await store.write(
        a,
        [{ op: 'update', item: bumped(mine, { title: 'mine, edited' }), expected_version: 1 }],
        LATER,
      );
      expect((await store.getItem(b, mine.id))?.title).toBe('theirs');
      expect(await store.getContent(b, mine.id)).toEqual(new Uint8Array([2]));
      expect(await store.searchVectors(b, unit([0, 1, 0, 0]), { model: MODEL }, 5)).toEqual([
        { id: mine.id, score: expect.closeTo(1, 5) as number },
      ]);
      await store.write(a, [{ op: 'purge', id: mine.id }], LATER);
      expect(await store.getItem(a, mine.id)).toBeNull();
      expect(await store.getItem(b, mine.id)).toEqual(theirs);
      expect(await store.getContent(b, mine.id)).toEqual(new Uint8Array([2]));
      expect(
        (await store.searchVectors(b, unit([0, 1, 0, 0]), { model: MODEL }, 5)).map((h) => h.id),
      ).toEqual([mine.id]);
    });

    it('a vector aimed at another tenant’s item is refused; pending vectors are stored as NULL, never zero', async () => {
      const a = newTenant();
      const b = newTenant();
      const theirs = item();
      await store.write(b, [{ op: 'insert', item: theirs }], NOW);
      await store.putVector(b, theirs.id, MODEL, unit([0, 0, 1, 0]), NOW);
      await expect(store.putVector(a, theirs.id, MODEL, unit([1, 0, 0, 0]), NOW)).rejects.toThrow();
      expect((await store.searchVectors(b, unit([0, 0, 1, 0]), { model: MODEL }, 5))[0]?.score).toBeCloseTo(
        1,
        5,
      );

      await store.putVector(b, theirs.id, MODEL, null, NOW);
      const row = (
        await store.driver.query<{
          null_embedding: boolean;
          state: string;
          dims: number | null;
          vector_model: string | null;
        }>(
          `SELECT v.embedding IS NULL AS null_embedding, v.state, v.dims, i.vector_model
           FROM item_vectors v JOIN items i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
           WHERE v.tenant_id = $1 AND v.item_id = $2`,
          [b, theirs.id],
        )
      ).rows[0];
      expect(row).toEqual({ null_embedding: true, state: 'pending', dims: null, vector_model: null });
      expect(await store.searchVectors(b, unit([0, 0, 1, 0]), { model: MODEL }, 5)).toEqual([]);
      expect(await store.hasPendingVectors(b, MODEL)).toBe(true);
    });
  });
}

// PGlite: always.
postgresIsolation(
  'PGlite',
  async () =>
    storeOnDriver(await PgliteDriver.open(null), { logger: quietLogger, vectorDimensions: 4 }, true),
  async () => undefined,
);

// The real server: when MCP_PA_TEST_DATABASE_URL is set.
describeWithServer('real server', () => {
  let db: TestDatabase;
  postgresIsolation(
    'PostgreSQL server',
    async () => {
      db = await createTestDatabase();
      return openPostgresStore(
        { kind: 'postgresql', connectionString: db.url, poolSize: 4 },
        { logger: quietLogger, vectorDimensions: 4 },
      );
    },
    async () => {
      await db?.drop();
    },
  );
});
