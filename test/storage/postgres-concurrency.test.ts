/**
 * Several replicas starting at once against one empty database: all come up, and each migration ran once
 * (the advisory lock). Two real child processes, released at the same moment; then more opens in one process.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openPostgresStore } from '../../src/storage/postgres/index.js';
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/schema.js';
import { ROOT, tempDir } from '../support/helpers.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';

describeWithServer('replicas starting together', () => {
  let script: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    // The child runs the real store code: bundled from source for plain node (no TypeScript loader needed).
    const t = tempDir('mcp-pa-child-');
    cleanups.push(t.cleanup);
    script = path.join(t.dir, 'open-store-child.mjs');
    await build({
      entryPoints: [path.join(ROOT, 'test/storage/fixtures/open-store-child.ts')],
      outfile: script,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['pg-native', '@electric-sql/*'],
      banner: {
        js: "import { createRequire as __req } from 'node:module'; const require = __req(import.meta.url);",
      },
      logLevel: 'error',
    });
  });
  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });

  async function migrations(db: TestDatabase): Promise<{ version: number; n: number }[]> {
    return db.query<{ version: number; n: number }>(
      'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
    );
  }

  function lines(child: ChildProcessWithoutNullStreams): {
    next: () => Promise<string>;
    stderr: () => string;
  } {
    let buffer = '';
    let err = '';
    const waiting: ((line: string) => void)[] = [];
    const ready: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let i;
      while ((i = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        const w = waiting.shift();
        if (w) w(line);
        else ready.push(line);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    child.on('exit', () => {
      for (const w of waiting.splice(0)) w(`exited: ${err}`);
    });
    return {
      next: () => {
        const line = ready.shift();
        return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
      },
      stderr: () => err,
    };
  }

  it('two processes opening one empty database at the same moment both succeed; migrations ran once', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const children = [0, 1].map(() =>
      spawn(process.execPath, [script, db.url], { stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    const outputs = children.map(lines);
    const exits = children.map(
      (child) => new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))),
    );
    cleanups.push(() => {
      for (const c of children) if (c.exitCode === null) c.kill();
    });
    // Both loaded and waiting; then both are released in the same tick.
    expect(await Promise.all(outputs.map((o) => o.next()))).toEqual(['ready', 'ready']);
    for (const c of children) c.stdin.write('go\n');
    const results = await Promise.all(outputs.map((o) => o.next()));
    const codes = await Promise.all(exits);
    expect(
      results.map((r) => JSON.parse(r) as unknown),
      outputs.map((o) => o.stderr()).join('\n'),
    ).toEqual([
      { ok: true, ready: true },
      { ok: true, ready: true },
    ]);
    expect(codes).toEqual([0, 0]);
    expect(await migrations(db)).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ version: m.version, n: 1 })));
    const indexes = await db.query(
      "SELECT indexname FROM pg_indexes WHERE indexname = 'item_vectors_hnsw_8'",
    );
    expect(indexes).toHaveLength(1);
  });

  it('six stores opening one empty database together in one process all work', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const stores = await Promise.all(
      Array.from({ length: 6 }, () =>
        openPostgresStore(
          { kind: 'postgresql', connectionString: db.url, poolSize: 2 },
          { logger: quietLogger, vectorDimensions: 8 },
        ),
      ),
    );
    try {
      for (const s of stores) expect(await s.readiness()).toEqual({ ok: true });
      expect(await migrations(db)).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ version: m.version, n: 1 })));
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
