/**
 * Opening the PostgreSQL store: clear, immediate DatabaseStartupErrors (never carrying a password), refusing a
 * newer schema, readiness, and PGlite's data folder.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseStartupError, openPostgresStore } from '../../src/storage/postgres/index.js';
import {
  openPostgresStore as openForTests,
  type PostgresStore,
} from '../../src/storage/postgres/postgres-store.js';
import { LATEST_VERSION, POSTGRES_MIGRATIONS } from '../../src/storage/postgres/schema.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  TEST_DATABASE_URL,
  type TestDatabase,
} from '../support/postgres.js';
import { item, newTenant, NOW } from './contract.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function startupError(p: Promise<unknown>): Promise<DatabaseStartupError> {
  const err = await p.then(
    (store) => {
      cleanups.push(() => (store as PostgresStore).close());
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatabaseStartupError);
  return err as DatabaseStartupError;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('startup errors', () => {
  it('an unreachable server: names host and port and the cause, never the password', async () => {
    const port = await closedPort();
    const secret = 'hunter2-Sup3r-s3cret';
    const err = await startupError(
      openPostgresStore(
        {
          kind: 'postgresql',
          connectionString: `postgresql://app:${secret}@127.0.0.1:${port}/mcp_pa`,
          poolSize: 2,
        },
        { logger: quietLogger, vectorDimensions: null },
      ),
    );
    expect(err.message).toMatch(
      new RegExp(`cannot reach PostgreSQL at 127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED`),
    );
    expect(err.message).toMatch(/check that the server is running/);
    expect(err.message).not.toContain(secret);
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(secret);
  });

  it('pgvector missing (PGlite started without it): says so and gives the fix', async () => {
    const err = await startupError(
      openForTests(
        { kind: 'pglite', dataDir: null },
        { logger: quietLogger, vectorDimensions: 8 },
        { pgliteWithoutVector: true },
      ),
    );
    expect(err.message).toContain('the PostgreSQL extension "vector" (pgvector) is not installed');
    expect(err.message).toContain(
      "run scripts/setup-postgres.sh as root (builds pgvector from Debian's source package) or install your " +
        "distribution's postgresql-18-pgvector package; then CREATE EXTENSION vector",
    );
  });

  it('a PGlite data folder that cannot be created: says where', async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'mcp-pa-pglite-'));
    cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
    const file = path.join(parent, 'a-file');
    writeFileSync(file, 'not a folder');
    const err = await startupError(
      openPostgresStore(
        { kind: 'pglite', dataDir: path.join(file, 'db') },
        { logger: quietLogger, vectorDimensions: null },
      ),
    );
    expect(err.message).toContain(`cannot open the embedded PGlite database in ${path.join(file, 'db')}`);
    expect(err.message).toMatch(/ENOTDIR|not a directory/i);
  });

  it('refuses a bad pool size before connecting', async () => {
    const err = await startupError(
      openPostgresStore(
        { kind: 'postgresql', connectionString: 'postgresql://x@127.0.0.1:1/x', poolSize: 0 },
        { logger: quietLogger, vectorDimensions: null },
      ),
    );
    expect(err.message).toMatch(/pool size must be a whole number of at least 1 \(got 0\)/);
  });
});

describe('PGlite in a data folder', () => {
  it('keeps data across restarts, migrates once, refuses a newer schema and reports readiness', async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'mcp-pa-pglite-'));
    cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
    const dataDir = path.join(parent, 'db');
    const target = { kind: 'pglite' as const, dataDir };
    const options = { logger: quietLogger, vectorDimensions: 8 };
    const tenant = newTenant();
    const record = item({ title: 'survives a restart' });

    const first = await openPostgresStore(target, options);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    await first.write(tenant, [{ op: 'insert', item: record }], NOW);
    expect(await first.readiness()).toEqual({ ok: true });
    await first.close();
    expect(await first.readiness()).toEqual({ ok: false, reason: 'the store is closed' });

    const second = await openPostgresStore(target, options);
    expect(await second.getItem(tenant, record.id)).toEqual(record);
    const versions = await second.driver.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(versions.rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    // A newer mcp-pa migrated this database: readiness says so, and this version refuses to open it.
    await second.driver.query(
      "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
      [LATEST_VERSION + 1],
    );
    const ready = await second.readiness();
    expect(ready.ok).toBe(false);
    expect(ready.ok ? '' : ready.reason).toMatch(`schema is at version ${LATEST_VERSION + 1}`);
    await second.close();

    const err = await startupError(openPostgresStore(target, options));
    expect(err.message).toMatch(
      new RegExp(
        `created by a newer mcp-pa \\(schema ${LATEST_VERSION + 1}, this version knows ${LATEST_VERSION}\\); upgrade mcp-pa`,
      ),
    );
  });
});

describeWithServer('startup errors against the real server', () => {
  const base = TEST_DATABASE_URL as string;
  function withUrl(change: (url: URL) => void): string {
    const url = new URL(base);
    change(url);
    return url.toString();
  }

  it('a database that does not exist: says which and how to create it', async () => {
    const name = `mcp_pa_missing_${randomBytes(4).toString('hex')}`;
    const err = await startupError(
      openPostgresStore(
        { kind: 'postgresql', connectionString: withUrl((u) => (u.pathname = `/${name}`)), poolSize: 2 },
        { logger: quietLogger, vectorDimensions: null },
      ),
    );
    expect(err.message).toMatch(
      new RegExp(`database "${name}" does not exist on PostgreSQL at 127\\.0\\.0\\.1:\\d+`),
    );
    expect(err.message).toContain(`createdb ${name}`);
  });

  it('a user the server refuses: names the user, never the password', async () => {
    const secret = 'n0t-the-password-xyz';
    const err = await startupError(
      openPostgresStore(
        {
          kind: 'postgresql',
          connectionString: withUrl((u) => {
            u.username = 'mcp_pa_no_such_role';
            u.password = secret;
          }),
          poolSize: 2,
        },
        { logger: quietLogger, vectorDimensions: null },
      ),
    );
    expect(err.message).toMatch(
      /refused user "mcp_pa_no_such_role"|rejected the password of user "mcp_pa_no_such_role"/,
    );
    expect(err.message).not.toContain(secret);
  });

  describe('a user without the right to create pgvector in a database that lacks it', () => {
    let db: TestDatabase;
    const role = `mcp_pa_t_role_${randomBytes(4).toString('hex')}`;
    afterEach(async () => {
      await db?.drop();
      const admin = new pg.Client({ connectionString: base });
      await admin.connect();
      await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
      await admin.end();
    });

    it('says a superuser must run CREATE EXTENSION vector', async () => {
      db = await createTestDatabase({ vector: false });
      const admin = new pg.Client({ connectionString: base });
      await admin.connect();
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN NOSUPERUSER`);
      await admin.end();
      const url = new URL(db.url);
      url.username = role;
      const err = await startupError(
        openPostgresStore(
          { kind: 'postgresql', connectionString: url.toString(), poolSize: 2 },
          { logger: quietLogger, vectorDimensions: 8 },
        ),
      );
      expect(err.message).toContain(
        `user "${role}" may not create the extension "vector" in database "${db.name}": ask a superuser to run CREATE EXTENSION vector;`,
      );
    });
  });

  it('a user lacking rights: tables owned by someone else, or roles it may not join', async () => {
    const role = `mcp_pa_t_role_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN NOSUPERUSER`);
    const owned = await createTestDatabase();
    const mine = await createTestDatabase();
    cleanups.push(async () => {
      await owned.drop();
      await mine.drop();
      await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
      await admin.end();
    });
    const as = (db: TestDatabase) => {
      const url = new URL(db.url);
      url.username = role;
      return openPostgresStore(
        { kind: 'postgresql', connectionString: url.toString(), poolSize: 1 },
        { logger: quietLogger, vectorDimensions: null },
      );
    };
    // Migrated by the superuser: this user may connect, but owns nothing.
    await openPostgresStore(
      { kind: 'postgresql', connectionString: owned.url, poolSize: 1 },
      { logger: quietLogger, vectorDimensions: null },
    ).then((s) => s.close());
    const notOwner = await startupError(as(owned));
    expect(notOwner.message).toContain(
      `user "${role}" lacks a privilege mcp-pa needs in database "${owned.name}"`,
    );
    expect(notOwner.message).toContain('Connect as the owner of the database and its schema');
    // Owner of an empty database's schema, but not allowed to join the roles mcp-pa works under.
    await mine.query(`ALTER SCHEMA public OWNER TO ${pg.escapeIdentifier(role)}`);
    const noRoles = await startupError(as(mine));
    expect(noRoles.message).toContain(`user "${role}" may not create the roles mcp-pa works under`);
    expect(noRoles.message).toContain(`GRANT mcp_pa_app, mcp_pa_definer TO "${role}"`);
  });

  it('readiness turns false when the database goes away', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const store = await openPostgresStore(
      { kind: 'postgresql', connectionString: db.url, poolSize: 2 },
      { logger: quietLogger, vectorDimensions: null },
    );
    cleanups.push(() => store.close());
    expect(await store.readiness()).toEqual({ ok: true });
    await db.drop();
    const ready = await store.readiness();
    expect(ready.ok).toBe(false);
    expect(ready.ok ? '' : ready.reason).toMatch(/database unreachable \(PostgreSQL at 127\.0\.0\.1:\d+\)/);
  });
});
