/**
 * Progress of the PostgreSQL schema migrations: prepareDatabase tells its onMigration callback about each pending
 * migration before running it (on embedded PGlite, and on the real server when MCP_PA_TEST_DATABASE_URL is set),
 * and the admin commands print `migrating database: n/total <name>` when standard error is a terminal — checked on a
 * real pseudo-terminal (`script`) — and nothing when it is a pipe; so does `mcp-pa serve` before it listens.
 */
import { spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { openDriver } from '../../src/storage/postgres/postgres-store.js';
import {
  LATEST_VERSION,
  POSTGRES_MIGRATIONS,
  prepareDatabase,
  type MigrationStep,
} from '../../src/storage/postgres/schema.js';
import type { PostgresTarget } from '../../src/storage/postgres/postgres-store.js';
import { CLI, tempDir } from '../support/helpers.js';
import { createTestDatabase, describeWithServer, quietLogger } from '../support/postgres.js';
import { describeWithTerminal, onTerminal } from '../support/terminal.js';

/** Prepares the database behind `target` once, recording the progress callbacks. */
async function prepareRecording(target: PostgresTarget, times = 1): Promise<MigrationStep[][]> {
  const driver = await openDriver(target, quietLogger);
  try {
    const runs: MigrationStep[][] = [];
    for (let i = 0; i < times; i++) {
      const steps: MigrationStep[] = [];
      const result = await driver.transaction((sql) =>
        prepareDatabase(sql, {
          vectorDimensions: null,
          where: driver.where,
          user: driver.server?.user ?? 'postgres',
          database: driver.server?.database ?? 'postgres',
          onMigration: (step) => steps.push(step),
        }),
      );
      expect(result.applied).toEqual(steps.map((s) => s.version));
      runs.push(steps);
    }
    return runs;
  } finally {
    await driver.close();
  }
}

function expectEveryMigration(steps: readonly MigrationStep[]): void {
  expect(steps).toEqual(
    POSTGRES_MIGRATIONS.map((m, i) => ({
      index: i + 1,
      total: POSTGRES_MIGRATIONS.length,
      version: m.version,
      name: m.name,
    })),
  );
  expect(steps.at(-1)?.version).toBe(LATEST_VERSION);
}

describe('prepareDatabase reports each pending migration', () => {
  it('on embedded PGlite: every migration of a new database, in order, then none', async () => {
    const [first, second] = await prepareRecording({ kind: 'pglite', dataDir: null }, 2);
    expectEveryMigration(first ?? []);
    expect(second).toEqual([]);
  });
});

describeWithServer('prepareDatabase reports each pending migration (PostgreSQL)', () => {
  it('on a new database: every migration, in order, then none', async () => {
    const db = await createTestDatabase();
    try {
      const [first, second] = await prepareRecording(
        { kind: 'postgresql', connectionString: db.url, poolSize: 1 },
        2,
      );
      expectEveryMigration(first ?? []);
      expect(second).toEqual([]);
    } finally {
      await db.drop();
    }
  });
});

describeWithTerminal('admin commands show migration progress on a terminal only', () => {
  it('`mcp-pa users list` on a new PGlite database: `migrating database: n/total <name>` for each', () => {
    const data = tempDir('mcp-pa-migrate-tty-');
    const piped = tempDir('mcp-pa-migrate-pipe-');
    try {
      const env = { PATH: process.env['PATH'] ?? '', HOME: data.dir, MCP_DATA_DIR: data.dir };
      const tty = onTerminal([CLI, 'users', 'list'], env);
      expect(tty.code).toBe(0);
      const shown = [...tty.output.matchAll(/\rmigrating database: (\d+)\/(\d+) ([^\r\n<]+)<clear-line>/g)];
      expect(shown.map((m) => [Number(m[1]), Number(m[2]), m[3]])).toEqual(
        POSTGRES_MIGRATIONS.map((m, i) => [i + 1, POSTGRES_MIGRATIONS.length, m.name]),
      );
      // The progress line ends before the command's own output.
      expect(tty.output).toMatch(/<clear-line>\r?\nno users yet/);
      // Once migrated, nothing is shown.
      const again = onTerminal([CLI, 'users', 'list'], env);
      expect(again.code).toBe(0);
      expect(again.output).not.toContain('migrating database');

      const pipe = spawnSync(process.execPath, [CLI, 'users', 'list'], {
        env: { ...env, HOME: piped.dir, MCP_DATA_DIR: piped.dir },
        encoding: 'utf8',
      });
      expect(pipe.status).toBe(0);
      expect(pipe.stderr).toBe('');
      expect(pipe.stdout).toContain('no users yet');
    } finally {
      data.cleanup();
      piped.cleanup();
    }
  });
});

describeWithTerminal('`mcp-pa serve` shows migration progress on a terminal', () => {
  it('on a new PGlite database: each migration, the line ended before the next log line', async () => {
    const data = tempDir('mcp-pa-migrate-serve-');
    // The port is taken, so the server stops (exit 1) right after preparing its database: the run ends by itself.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const env = { PATH: process.env['PATH'] ?? '', HOME: data.dir, MCP_DATA_DIR: data.dir };
      const tty = onTerminal([CLI, 'serve', '--dev', '--port', String(port)], env);
      expect(tty.code, tty.output).toBe(1);
      const shown = [...tty.output.matchAll(/\rmigrating database: (\d+)\/(\d+) ([^\r\n<]+)<clear-line>/g)];
      expect(shown.map((m) => [Number(m[1]), Number(m[2]), m[3]])).toEqual(
        POSTGRES_MIGRATIONS.map((m, i) => [i + 1, POSTGRES_MIGRATIONS.length, m.name]),
      );
      // The progress line ends (a line end) before the next JSON log line starts.
      expect(tty.output).toMatch(/<clear-line>\r?\n\{"level"/);
      expect(tty.output).toContain(`cannot listen on 127.0.0.1 port ${port}: the port is already in use`);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
      data.cleanup();
    }
  });
});
