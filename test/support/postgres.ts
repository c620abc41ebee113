/**
 * The real PostgreSQL server for tests: only when MCP_PA_TEST_DATABASE_URL is set (CI sets it to
 * postgresql://postgres@127.0.0.1:5432/mcp_pa_test, a superuser over trust). Each test file gets its own freshly
 * created database with a unique name (pgvector created in it), dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { openPostgresStore, type PostgresStore } from '../../src/storage/postgres/index.js';

export const TEST_DATABASE_URL: string | undefined = process.env['MCP_PA_TEST_DATABASE_URL'] || undefined;

/** `describe` when a real server is configured, `describe.skip` otherwise. */
export const describeWithServer = TEST_DATABASE_URL ? describe : describe.skip;

/** A logger that writes nothing, for stores opened in tests. */
export const quietLogger = createLogger('silent');

export interface TestDatabase {
  readonly name: string;
  /** Connection string of the new database (same server and user as MCP_PA_TEST_DATABASE_URL). */
  readonly url: string;
  /** Runs one statement in the new database as the test user (superuser), on a connection of its own. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    params?: unknown[],
  ): Promise<R[]>;
  /** Ends the connections into the database and drops it. */
  drop(): Promise<void>;
}

function urlFor(base: string, database: string): string {
  const url = new URL(base);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty, uniquely named database on the test server (with `CREATE EXTENSION vector` unless told not). */
export async function createTestDatabase(options: { vector?: boolean } = {}): Promise<TestDatabase> {
  const admin = TEST_DATABASE_URL;
  if (!admin) throw new Error('MCP_PA_TEST_DATABASE_URL is not set');
  const name = `mcp_pa_t_${process.pid}_${randomBytes(5).toString('hex')}`;
  await withClient(admin, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  const url = urlFor(admin, name);
  if (options.vector !== false) await withClient(url, (c) => c.query('CREATE EXTENSION vector'));
  let dropped = false;
  return {
    name,
    url,
    query: async <R extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
      withClient(url, async (c) => (await c.query<R>(text, params)).rows),
    drop: async () => {
      if (dropped) return;
      dropped = true;
      await withClient(admin, async (c) => {
        await c.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      });
    },
  };
}

export interface OpenedStore {
  readonly store: PostgresStore;
  close(): Promise<void>;
}

/** A fresh in-memory PGlite store (no vector index), for suites that run on every machine. */
export async function openPgliteStore(): Promise<OpenedStore> {
  const store = await openPostgresStore(
    { kind: 'pglite', dataDir: null },
    { logger: quietLogger, vectorDimensions: null },
  );
  return { store, close: () => store.close() };
}

/** A store on a new database of the real server (MCP_PA_TEST_DATABASE_URL), dropped on close. */
export async function openServerStore(): Promise<OpenedStore> {
  const db = await createTestDatabase();
  const store = await openPostgresStore(
    { kind: 'postgresql', connectionString: db.url, poolSize: 4 },
    { logger: quietLogger, vectorDimensions: null },
  );
  return {
    store,
    close: async () => {
      await store.close();
      await db.drop();
    },
  };
}
