/**
 * Faults of the local server's disk (stdio + SQLite), made real with a private mount namespace (`unshare -Urm`, so
 * it works for root and for normal users alike; chmod does not stop root):
 *
 * - full disk: the data folder is a 3 MiB tmpfs; writes grow the database until it is full. The client gets a tool
 *   error naming the cause and the fix (not "internal error"), reads and small writes go on, the process does not
 *   crash; the files it leaves are copied out and checked: integrity_check ok, every acknowledged write there.
 * - read-only database file (a read-only bind mount of the file): the server starts, reads work, writes get a
 *   tool error saying the database is read-only and what to do.
 * - read-only data folder at startup: the server exits with a message naming the folder and the fix.
 *
 * After each fault the same files are opened normally again: integrity_check ok and nothing acknowledged is lost.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, connectCli, tempDir } from '../support/helpers.js';

const namespaces = spawnSync('unshare', ['-Urm', 'sh', '-c', 'mount -t tmpfs tmpfs /mnt && echo ok'], {
  encoding: 'utf8',
}).stdout.includes('ok');
if (!namespaces && process.env['CI'])
  throw new Error('CI: unshare -Urm (user and mount namespaces) is required');
const describeWithNamespaces = namespaces ? describe : describe.skip;

interface ToolText {
  readonly isError: boolean;
  readonly text: string;
  readonly structured: Record<string, unknown> | undefined;
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<ToolText> {
  const r = (await client.callTool({ name, arguments: args })) as {
    isError?: boolean;
    content?: { type: string; text?: string }[];
    structuredContent?: Record<string, unknown>;
  };
  return { isError: r.isError === true, text: r.content?.[0]?.text ?? '', structured: r.structuredContent };
}

function idOf(r: ToolText, key: 'todo' | 'note'): string {
  if (r.isError) throw new Error(`tool error: ${r.text}`);
  const id = (r.structured?.[key] as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string') throw new Error(`no ${key} id in ${r.text.slice(0, 200)}`);
  return id;
}

/** The local server started inside `sh -c script` in a new user and mount namespace. */
async function startInNamespace(
  script: string,
  env: Record<string, string>,
): Promise<{ client: Client; transport: StdioClientTransport; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: 'unshare',
    args: ['-Urm', 'sh', '-c', script],
    env: {
      PATH: process.env['PATH'] ?? '',
      MCP_LOG_LEVEL: 'info',
      NODE: process.execPath,
      CLI,
      ...env,
    },
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const client = new Client({ name: 'mcp-pa-fault-tests', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr: () => err };
}

/** integrity_check, foreign_key_check, and how many rows each id has, on a database file opened read-only. */
function inspect(
  file: string,
  ids: readonly string[],
): { integrity: string[]; fk: number; counts: Map<string, number> } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const integrity = (db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
    const fk = db.prepare('PRAGMA foreign_key_check').all().length;
    const counts = new Map<string, number>();
    const stmt = db.prepare('SELECT count(*) AS n FROM items WHERE id = ?');
    for (const id of ids) counts.set(id, (stmt.get(id) as { n: number }).n);
    return { integrity, fk, counts };
  } finally {
    db.close();
  }
}

describeWithNamespaces('fault: full disk and read-only database in local mode (stdio + SQLite)', () => {
  const root = tempDir('mcp-pa-fault-disk-');
  const data = path.join(root.dir, 'data');
  const mountPoint = path.join(root.dir, 'mnt');
  const copy = path.join(root.dir, 'after-full');
  const acked: string[] = [];
  let closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    for (const d of [data, mountPoint, copy]) mkdirSync(d);
    // A first, normal run creates the database with a few acknowledged writes.
    const first = await connectCli({ MCP_DATA_DIR: data, HOME: data });
    try {
      for (let i = 0; i < 5; i++) {
        acked.push(idOf(await call(first.client, 'create_todo', { title: `before-${i}` }), 'todo'));
      }
    } finally {
      await first.client.close();
    }
  });

  afterAll(async () => {
    for (const close of closers) await close().catch(() => undefined);
    closers = [];
    root.cleanup();
  });

  it('full disk: a clear tool error, no crash, and an intact database with every acknowledged write', async () => {
    // The data folder becomes a 3 MiB tmpfs holding a copy of the database; when the server exits, what it left
    // there is copied out (the tmpfs exists only in the namespace).
    // TERM is ignored so that the copy is made even when the client's close() escalates to SIGTERM.
    const script =
      `trap '' TERM; mount -t tmpfs -o size=3m tmpfs "$MNT" && cp -a "$DATA"/. "$MNT"/ && "$NODE" "$CLI"; ` +
      'rc=$?; cp -a "$MNT"/. "$OUT"/; exit $rc';
    const run = await startInNamespace(script, {
      MCP_DATA_DIR: mountPoint,
      HOME: mountPoint,
      MNT: mountPoint,
      DATA: data,
      OUT: copy,
    });
    closers.push(() => run.client.close());
    const big = 'x'.repeat(40_000);
    const errors: string[] = [];
    let notes = 0;
    // Two writers of 40 kB notes until the disk is full (bounded: 3 MiB holds fewer than 80).
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; i < 100 && errors.length === 0; i++) {
        const r = await call(run.client, 'add_note', { text: `full-${w}-${i}\n${big}` });
        if (r.isError) errors.push(r.text);
        else {
          acked.push(idOf(r, 'note'));
          notes++;
        }
      }
    };
    await Promise.all([writer(0), writer(1)]);
    expect(errors.length).toBeGreaterThan(0);
    // Once full, more big writes are refused the same way.
    const again = await call(run.client, 'add_note', { text: `full-again\n${big}` });
    // Reads go on, and the server still answers: it did not crash.
    const read = await call(run.client, 'list_todos', {});
    const small = await call(run.client, 'create_todo', { title: 'small after full' });
    if (!small.isError) acked.push(idOf(small, 'todo'));
    console.log(
      `[faults] full disk: ${notes} notes of 40 kB acknowledged before the disk was full; the error: ` +
        `${JSON.stringify(errors[0])}; a further big write: ${again.isError ? 'refused' : 'accepted'}; a read: ` +
        `${read.isError ? read.text : 'ok'}; a small write: ${small.isError ? small.text.split('\n')[0] : 'ok'}`,
    );
    for (const text of [...errors, ...(again.isError ? [again.text] : [])]) {
      expect(text).toMatch(
        /^Error \(disk_full\): the disk holding the database \(.+\) is full: this change was not saved/,
      );
      expect(text).toMatch(/Hint: free space on that disk/);
      expect(text).not.toMatch(/internal/i);
    }
    expect(read.isError).toBe(false);
    expect(small.isError ? small.text : 'ok').toMatch(/^(ok|Error \(disk_full\))/);
    expect(notes).toBeGreaterThan(5);
    expect(run.stderr()).not.toMatch(/"msg":"tool failed"/);
    await run.client.close();
    closers = [];
    await waitForFile(path.join(copy, 'database.sqlite'));

    // The files the server left on the full disk: consistent, every acknowledged write exactly once.
    const left = inspect(path.join(copy, 'database.sqlite'), acked);
    expect(left.integrity).toEqual(['ok']);
    expect(left.fk).toBe(0);
    expect([...left.counts].filter(([, n]) => n !== 1)).toEqual([]);

    // Opened normally again (space to spare): everything is there, and it is writable.
    const normal = await connectCli({ MCP_DATA_DIR: copy, HOME: copy });
    try {
      const after = await call(normal.client, 'create_todo', { title: 'after the full disk' });
      acked.push(idOf(after, 'todo'));
    } finally {
      await normal.client.close();
    }
    const reopened = inspect(path.join(copy, 'database.sqlite'), acked);
    expect(reopened.integrity).toEqual(['ok']);
    expect([...reopened.counts].filter(([, n]) => n !== 1)).toEqual([]);
    console.log(`[faults] full disk: ${acked.length} acknowledged writes, all found once after reopening`);
  });

  it('read-only database file: reads work, writes get a tool error saying so, nothing is lost', async () => {
    const file = path.join(copy, 'database.sqlite');
    const script = 'mount --bind "$F" "$F" && mount -o remount,bind,ro "$F" && exec "$NODE" "$CLI"';
    const run = await startInNamespace(script, { MCP_DATA_DIR: copy, HOME: copy, F: file });
    closers.push(() => run.client.close());
    const read = await call(run.client, 'list_todos', { limit: 100 });
    const write = await call(run.client, 'create_todo', { title: 'while read-only' });
    const note = await call(run.client, 'add_note', { text: 'while read-only' });
    console.log(
      `[faults] read-only database file: read ${read.isError ? read.text : 'ok'}; write: ${JSON.stringify(write.text)}`,
    );
    expect(read.isError).toBe(false);
    const titles = ((read.structured?.['items'] ?? []) as { title: string }[]).map((t) => t.title);
    expect(titles).toEqual(expect.arrayContaining(['before-0', 'after the full disk']));
    for (const r of [write, note]) {
      expect(r.isError).toBe(true);
      expect(r.text).toMatch(
        /^Error \(read_only\): the database .*database\.sqlite is read-only: this change was not saved/,
      );
      expect(r.text).toMatch(/Hint: make the database file and its folder writable/);
    }
    // Still answering after the refusals.
    expect((await call(run.client, 'get_status', {})).isError).toBe(false);
    await run.client.close();
    closers = [];

    const after = inspect(file, acked);
    expect(after.integrity).toEqual(['ok']);
    expect([...after.counts].filter(([, n]) => n !== 1)).toEqual([]);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) AS n FROM items WHERE title = 'while read-only'").get()).toEqual({
        n: 0,
      });
    } finally {
      db.close();
    }
  });

  it('read-only data folder at startup: exits with a message naming the folder and the fix', async () => {
    // Closed cleanly first, so there is no -wal or -shm file: SQLite would need to create them in the folder.
    const normal = await connectCli({ MCP_DATA_DIR: copy, HOME: copy });
    expect((await call(normal.client, 'get_status', {})).isError).toBe(false);
    await normal.client.close();
    expect(existsSync(path.join(copy, 'database.sqlite-wal'))).toBe(false);
    const script = 'mount --bind "$D" "$D" && mount -o remount,bind,ro "$D" && exec "$NODE" "$CLI"';
    const r = spawnSync('unshare', ['-Urm', 'sh', '-c', script], {
      env: {
        PATH: process.env['PATH'] ?? '',
        MCP_DATA_DIR: copy,
        HOME: copy,
        D: copy,
        NODE: process.execPath,
        CLI,
      },
      input: '',
      encoding: 'utf8',
      timeout: 60_000,
    });
    console.log(
      `[faults] read-only data folder at startup: exit ${r.status}, ${JSON.stringify(r.stderr.trim())}`,
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`its folder ${copy} is read-only or not writable`);
    expect(r.stderr).toMatch(/make it writable for the user running mcp-pa, or set MCP_DATA_DIR/);
    const after = inspect(path.join(copy, 'database.sqlite'), acked);
    expect(after.integrity).toEqual(['ok']);
    expect([...after.counts].filter(([, n]) => n !== 1)).toEqual([]);
  });
});

async function waitForFile(file: string): Promise<void> {
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(file)) throw new Error(`${file} was not copied out of the namespace`);
}
