/**
 * The storage failures the fault tests provoke in child processes, provoked in-process with real engines: SQLite
 * that cannot grow (`max_page_count`, SQLITE_FULL) or may not write (`query_only`, SQLITE_READONLY) behind the real
 * MCP server and client (in-memory transport), and the classification of "the database is unavailable" on real
 * driver errors (a refused TCP connection, PostgreSQL's own error for a bad statement).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { LOCAL_CALLER } from '../../src/mcp/context.js';
import { createMcpServer } from '../../src/mcp/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { openLocalApp, type LocalApp } from '../../src/servers/local-app.js';
import { StoreUnavailableError, StoreWriteError } from '../../src/storage/model.js';
import { isDatabaseUnavailable, translateRuntimeError } from '../../src/storage/postgres/errors.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';
import { openPgliteStore } from '../support/postgres.js';
import { freePort } from './support.js';

const dirs: { cleanup: () => void }[] = [];
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const d of dirs) d.cleanup();
});

async function localMcp(): Promise<{ app: LocalApp; client: Client }> {
  const dir = tempDir('mcp-pa-storage-errors-');
  dirs.push(dir);
  const { config } = loadConfig({ env: { MCP_DATA_DIR: dir.dir, HOME: dir.dir }, mode: 'local' });
  const logger = createLogger('silent');
  const app = await openLocalApp(config, logger);
  const server = createMcpServer(
    {
      assistant: app.assistant,
      hub: app.hub,
      logger,
      version: 'test',
      caller: () => LOCAL_CALLER,
      completionTenant: app.tenant,
    },
    'UTC',
  );
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'storage-errors', version: '1' });
  await client.connect(clientSide);
  closers.push(async () => {
    await client.close();
    await server.close();
    await app.close();
  });
  return { app, client };
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<{ isError: boolean; text: string }> {
  const r = (await client.callTool({ name, arguments: args })) as {
    isError?: boolean;
    content?: { type: string; text?: string }[];
  };
  return { isError: r.isError === true, text: r.content?.[0]?.text ?? '' };
}

describe('storage errors the user can act on (SQLite, in-process)', () => {
  it('a database that cannot grow: the tool error says the disk is full; reads and what was saved stay', async () => {
    const { app, client } = await localMcp();
    expect((await call(client, 'create_todo', { title: 'kept' })).isError).toBe(false);
    const pages = Number(app.store.db.pragma('page_count', { simple: true }));
    // SQLite's own limit on the file's size: the same SQLITE_FULL a full disk gives.
    app.store.db.pragma(`max_page_count = ${pages + 30}`);
    let refused: string | undefined;
    for (let i = 0; i < 60 && refused === undefined; i++) {
      const r = await call(client, 'add_note', { text: `n${i}\n${'y'.repeat(20_000)}` });
      if (r.isError) refused = r.text;
    }
    expect(refused).toMatch(/^Error \(disk_full\): the disk holding the database \(.+\) is full/);
    expect(refused).toMatch(/Hint: free space on that disk, then try again/);
    const read = await call(client, 'list_todos', {});
    expect(read.isError).toBe(false);
    expect(read.text).toContain('kept');
    expect(app.store.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('a database that may not be written: the tool error says it is read-only; reads go on', async () => {
    const { app, client } = await localMcp();
    expect((await call(client, 'add_note', { text: 'before' })).isError).toBe(false);
    app.store.db.pragma('query_only = ON');
    const write = await call(client, 'create_todo', { title: 'refused' });
    expect(write.isError).toBe(true);
    expect(write.text).toMatch(
      /^Error \(read_only\): the database .+ is read-only: this change was not saved/,
    );
    const profile = await call(client, 'update_status', { name: 'Refused' });
    expect(profile.text).toMatch(/^Error \(read_only\)/);
    expect((await call(client, 'get_status', {})).isError).toBe(false);
  });

  it('the store itself throws StoreWriteError, and opening an impossible path says where', async () => {
    const dir = tempDir('mcp-pa-storage-errors-');
    dirs.push(dir);
    const file = `${dir.dir}/db.sqlite`;
    const store = new SqliteStore({ path: file });
    store.db.pragma('query_only = ON');
    await expect(store.putProfile('t', { name: 'x' }, null, new Date().toISOString())).rejects.toBeInstanceOf(
      StoreWriteError,
    );
    await store.close();
    // A file where a folder should be: not a write problem, the message names the file.
    expect(() => new SqliteStore({ path: `${file}/nested/db.sqlite` })).toThrow(
      /cannot open the database .*db\.sqlite\/nested\/db\.sqlite/,
    );
  });
});

describe('"the database is unavailable" (what HTTP answers 503 for)', () => {
  it('is a refused connection or a StoreUnavailableError anywhere in the cause chain, not a bad statement', async () => {
    const port = await freePort();
    const client = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${port}/x` });
    const refused = await client.connect().then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).not.toBeNull();
    expect(isDatabaseUnavailable(refused)).toBe(true);
    const translated = translateRuntimeError(refused, []);
    expect(translated).toBeInstanceOf(StoreUnavailableError);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: translated }))).toBe(true);

    const opened = await openPgliteStore();
    closers.push(() => opened.close());
    const bad = await opened.store.readiness().then(async () => {
      try {
        await opened.store.withServerState((sql) => sql.query('SELECT * FROM no_such_table'));
        return null;
      } catch (err) {
        return err;
      }
    });
    expect(bad).not.toBeNull();
    expect(isDatabaseUnavailable(bad)).toBe(false);
    expect(isDatabaseUnavailable(new Error('plain'))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });
});
