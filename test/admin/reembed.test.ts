/**
 * `mcp-pa reembed` as an operator runs it: the built CLI on local mode's SQLite file, on HTTP mode's embedded PGlite
 * database and on the real PostgreSQL server (when MCP_PA_TEST_DATABASE_URL is set), with items written before
 * semantic search was on. What it did is checked in the database afterwards; progress lines are checked on a real
 * pseudo-terminal (`script`), and their absence when standard error is a pipe.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Assistant } from '../../src/assistant/assistant.js';
import { HashEmbeddingProvider } from '../../src/storage/embeddings/index.js';
import type { Store } from '../../src/storage/model.js';
import { openPostgresStore, type PostgresStore } from '../../src/storage/postgres/index.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { FakeEmbeddingsServer } from '../support/embeddings-server.js';
import { CLI, runCli, tempDir, type CliRun as Run } from '../support/helpers.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';
import { describeWithTerminal, onTerminal } from '../support/terminal.js';

const HASH_256 = new HashEmbeddingProvider(256).model;
const HASH_64 = new HashEmbeddingProvider(64).model;

interface Summary {
  mode: string;
  database: string;
  model: string;
  dimensions: number;
  total: number;
  embedded: number;
  remaining: number;
  tenants: number;
  seconds: number;
}

function env(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '', HOME: extra['MCP_DATA_DIR'] ?? '/nonexistent', ...extra };
}

/** The built CLI, asynchronously (a test server in this process may have to answer it). */
function run(args: readonly string[], vars: Record<string, string>): Promise<Run> {
  return runCli(args, env(vars));
}

/** Items written without embeddings (semantic search off at the time), for each tenant. */
async function seed(store: Store, tenants: readonly string[], perTenant: number): Promise<void> {
  const assistant = new Assistant({
    store,
    maxUploadBytes: 1024,
    storageInfo: { database: 'seed', documents: 'database' },
  });
  for (const tenant of tenants) {
    for (let i = 0; i < perTenant; i++) {
      await assistant.addNote(tenant, { text: `note ${i} of ${tenant}: apples, pears and plums` });
    }
  }
}

/** Items of a tenant still lacking a vector for `model` (through the store's own query). */
async function lacking(store: Store, tenant: string, model: string): Promise<number> {
  return (await store.itemsNeedingVectors(tenant, model, 100_000)).length;
}

describe('mcp-pa reembed on local mode’s SQLite file', () => {
  let data: { dir: string; cleanup: () => void };
  let file: string;

  beforeAll(async () => {
    data = tempDir('mcp-pa-reembed-local-');
    file = path.join(data.dir, 'database.sqlite');
    const store = new SqliteStore({ path: file });
    try {
      await seed(store, ['local'], 450);
    } finally {
      await store.close();
    }
  });
  afterAll(() => data.cleanup());

  it('refuses with exit code 1 and the fix while semantic search is off', async () => {
    const r = await run(['reembed'], { MCP_DATA_DIR: data.dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('mcp-pa reembed: semantic search is off');
    expect(r.stderr).toContain('set MCP_VECTOR_SEARCH=true (features.vector_search)');
  });

  it('embeds every item, to the end, and says so in one line (no progress when stderr is a pipe)', async () => {
    const r = await run(['reembed'], { MCP_DATA_DIR: data.dir, MCP_EMBEDDINGS_PROVIDER: 'hash' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^Re-embedded 450 items of 1 account in \\d+\\.\\d s \\(model ${HASH_256}, 256 dimensions; SQLite ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\); none left\\.\\n$`,
      ),
    );
    const store = new SqliteStore({ path: file, readonly: true });
    try {
      expect(await lacking(store, 'local', HASH_256)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('a second run finds nothing; a new model size re-embeds everything again (JSON summary)', async () => {
    const again = await run(['reembed', '--json'], {
      MCP_DATA_DIR: data.dir,
      MCP_EMBEDDINGS_PROVIDER: 'hash',
    });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      mode: 'local',
      total: 0,
      embedded: 0,
      remaining: 0,
      tenants: 0,
    });
    const text = await run(['reembed'], { MCP_DATA_DIR: data.dir, MCP_EMBEDDINGS_PROVIDER: 'hash' });
    expect(text.stdout).toMatch(/^Nothing to re-embed: every item has a vector \(model /);

    const resized = await run(['reembed', '--json'], {
      MCP_DATA_DIR: data.dir,
      MCP_EMBEDDINGS_PROVIDER: 'hash',
      MCP_EMBEDDINGS_DIMENSIONS: '64',
    });
    expect(resized.stderr).toBe('');
    expect(resized.code).toBe(0);
    const summary = JSON.parse(resized.stdout) as Summary;
    expect(summary).toMatchObject({
      mode: 'local',
      database: `SQLite ${file}`,
      model: HASH_64,
      dimensions: 64,
      total: 450,
      embedded: 450,
      remaining: 0,
      tenants: 1,
    });
    expect(typeof summary.seconds).toBe('number');
    const store = new SqliteStore({ path: file, readonly: true });
    try {
      expect(await lacking(store, 'local', HASH_64)).toBe(0);
      // The old model's vectors are outdated now: every item lacks one for it.
      expect(await lacking(store, 'local', HASH_256)).toBe(450);
    } finally {
      await store.close();
    }
  });

  it('a provider that fails leaves the items pending: exit 1, the count left, the reason logged', async () => {
    const server = await new FakeEmbeddingsServer(32).start();
    try {
      server.fallback = { status: 500 };
      const r = await run(['reembed', '--json'], {
        MCP_DATA_DIR: data.dir,
        MCP_EMBEDDINGS_PROVIDER: 'openai-compatible',
        MCP_EMBEDDINGS_BASE_URL: server.url,
        MCP_EMBEDDINGS_MODEL: 'flaky-model',
        MCP_EMBEDDINGS_DIMENSIONS: '32',
        MCP_EMBEDDINGS_MAX_RETRIES: '0',
      });
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({
        total: 450,
        remaining: 450,
        model: 'openai:flaky-model:32',
      });
      expect(server.requests.length).toBeGreaterThan(0);
      expect(r.stderr).toContain('re-embedding stopped: the embedding provider failed');

      // The provider is back: the next run finishes the work.
      server.fallback = null;
      const ok = await run(['reembed'], {
        MCP_DATA_DIR: data.dir,
        MCP_EMBEDDINGS_PROVIDER: 'openai-compatible',
        MCP_EMBEDDINGS_BASE_URL: server.url,
        MCP_EMBEDDINGS_MODEL: 'flaky-model',
        MCP_EMBEDDINGS_DIMENSIONS: '32',
      });
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/^Re-embedded 450 items of 1 account .*none left\.\n$/);
    } finally {
      await server.close();
    }
  });

  it('says there is nothing to do when the database does not exist yet', async () => {
    const empty = tempDir('mcp-pa-reembed-none-');
    try {
      const r = await run(['reembed'], { MCP_DATA_DIR: empty.dir, MCP_EMBEDDINGS_PROVIDER: 'hash' });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        `Nothing to re-embed: there is no database at ${path.join(empty.dir, 'database.sqlite')} yet.\n`,
      );
    } finally {
      empty.cleanup();
    }
  });

  it('usage errors exit 2 and name the help', async () => {
    const r = await run(['reembed', '--yes'], { MCP_DATA_DIR: data.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--yes'");
    expect(r.stderr).toContain('Run mcp-pa reembed --help for its options.');
  });
});

describeWithTerminal('mcp-pa reembed on a terminal', () => {
  it('shows `re-embedding: n/total` on a pseudo-terminal, ending at total/total', async () => {
    const data = tempDir('mcp-pa-reembed-tty-');
    try {
      const store = new SqliteStore({ path: path.join(data.dir, 'database.sqlite') });
      try {
        await seed(store, ['local'], 450);
      } finally {
        await store.close();
      }
      const vars = env({ MCP_DATA_DIR: data.dir, MCP_EMBEDDINGS_PROVIDER: 'hash' });
      const tty = onTerminal([CLI, 'reembed'], vars);
      expect(tty.code).toBe(0);
      const shown = [...tty.output.matchAll(/re-embedding: (\d+)\/(\d+)/g)].map((m) => [
        Number(m[1]),
        Number(m[2]),
      ]);
      expect(shown.length).toBeGreaterThanOrEqual(3);
      expect(shown.every(([, total]) => total === 450)).toBe(true);
      expect(shown.map(([done]) => done)).toEqual(
        [...shown.map(([done]) => done)].sort((a, b) => (a ?? 0) - (b ?? 0)),
      );
      expect(shown.at(-1)).toEqual([450, 450]);
      expect(shown[0]).toEqual([0, 450]);
      // The line is rewritten in place, and the summary starts on a line of its own.
      expect(tty.output).toMatch(/\rre-embedding: 450\/450<clear-line>\r?\nRe-embedded 450 items/);
      // Where stderr is a pipe: the same command shows no progress.
      const piped = spawnSync(process.execPath, [CLI, 'reembed'], { env: vars, encoding: 'utf8' });
      expect(piped.status).toBe(0);
      expect(piped.stderr).not.toContain('re-embedding:');
      expect(piped.stdout).toMatch(/^Nothing to re-embed/);
    } finally {
      data.cleanup();
    }
  });
});

describe('mcp-pa reembed --http on the embedded PGlite database', () => {
  let data: { dir: string; cleanup: () => void };
  const tenants = ['tenant-a', 'tenant-b', 'tenant-c'];

  beforeAll(async () => {
    data = tempDir('mcp-pa-reembed-pglite-');
    const store = await openPostgresStore(
      { kind: 'pglite', dataDir: path.join(data.dir, 'pglite') },
      { logger: quietLogger, vectorDimensions: null },
    );
    try {
      await seed(store, tenants, 40);
    } finally {
      await store.close();
    }
  });
  afterAll(() => data.cleanup());

  it('embeds every tenant’s items (the vector index made as the server makes it)', async () => {
    const r = await run(['reembed', '--http', '--json'], { MCP_DATA_DIR: data.dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      mode: 'http',
      database: `PGlite (embedded) in ${path.join(data.dir, 'pglite')}`,
      model: HASH_256,
      total: 120,
      embedded: 120,
      remaining: 0,
      tenants: 3,
    });
    const store: PostgresStore = await openPostgresStore(
      { kind: 'pglite', dataDir: path.join(data.dir, 'pglite') },
      { logger: quietLogger, vectorDimensions: null },
    );
    try {
      for (const t of tenants) expect(await lacking(store, t, HASH_256)).toBe(0);
      expect(await store.itemsWaitingForVectors(HASH_256, 1000)).toBe(0);
      const index = await store.withServerState(
        async (sql) =>
          (await sql.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'item_vectors_hnsw_256'`)).rows.length,
      );
      expect(index).toBe(1);
    } finally {
      await store.close();
    }
  });
});

describeWithServer('mcp-pa reembed --http on PostgreSQL', () => {
  let db: TestDatabase;
  const tenants = ['pg-tenant-1', 'pg-tenant-2'];

  beforeAll(async () => {
    db = await createTestDatabase();
    const store = await openPostgresStore(
      { kind: 'postgresql', connectionString: db.url, poolSize: 2 },
      { logger: quietLogger, vectorDimensions: null },
    );
    try {
      await seed(store, tenants, 150);
    } finally {
      await store.close();
    }
  });
  afterAll(async () => {
    await db.drop();
  });

  it('embeds every tenant’s items, and a new model size re-embeds them all', async () => {
    const data = tempDir('mcp-pa-reembed-pg-');
    try {
      const vars = { MCP_DATA_DIR: data.dir, MCP_DATABASE_URL: db.url };
      const r = await run(['reembed', '--http', '--json'], vars);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        mode: 'http',
        total: 300,
        embedded: 300,
        remaining: 0,
        tenants: 2,
      });
      const resized = await run(['reembed', '--http', '--json'], {
        ...vars,
        MCP_EMBEDDINGS_DIMENSIONS: '64',
      });
      expect(resized.code).toBe(0);
      expect(JSON.parse(resized.stdout)).toMatchObject({
        model: HASH_64,
        total: 300,
        embedded: 300,
        remaining: 0,
      });
      const rows = await db.query<{ dims: number; n: string }>(
        'SELECT dims, count(*)::text AS n FROM item_vectors GROUP BY dims ORDER BY dims',
      );
      expect(rows.find((x) => x.dims === 64)?.n).toBe('300');
    } finally {
      data.cleanup();
    }
  });
});
