import { statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';
import { bumped, item, LATER, NOW } from './contract.js';

const TENANT = 'local';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function folder(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

function open(file: string, documentsDir?: string): SqliteStore {
  const store = new SqliteStore({ path: file, documentsDir });
  cleanups.push(() => store.close());
  return store;
}

async function ids(store: SqliteStore, terms: string[], match: 'all' | 'any' = 'all'): Promise<string[]> {
  return (await store.searchText(TENANT, { terms, match, limit: 50 })).map((h) => h.id).sort();
}

function ftsIntegrity(store: SqliteStore): void {
  // Fails (throws SQLITE_CORRUPT_VTAB) when the index and the items table disagree.
  store.db.exec("INSERT INTO items_fts(items_fts, rank) VALUES ('integrity-check', 1)");
}

describe('migrations', () => {
  it('create the schema once; opening again applies nothing', async () => {
    const file = path.join(folder(), 'db', 'pa.sqlite');
    const first = open(file);
    const applied = first.db
      .prepare('SELECT version, name FROM schema_migrations ORDER BY version')
      .all() as { version: number; name: string }[];
    expect(applied.map((a) => a.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
    const tables = (
      first.db
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table','trigger') ORDER BY name")
        .all() as {
        name: string;
      }[]
    ).map((t) => t.name);
    for (const name of [
      'items',
      'profiles',
      'items_fts',
      'item_vectors',
      'document_contents',
      'items_fts_insert',
      'items_fts_update',
      'items_fts_delete',
    ]) {
      expect(tables).toContain(name);
    }
    // Running the migrations on an up-to-date database does nothing.
    expect(migrate(first.db)).toEqual([]);
    await first.write(TENANT, [{ op: 'insert', item: item({ title: 'survives reopening' }) }], NOW);
    await first.close();

    const second = open(file);
    expect(migrate(second.db)).toEqual([]);
    const rows = second.db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number };
    expect(rows.n).toBe(SQLITE_MIGRATIONS.length);
    expect(await ids(second, ['survives'])).toHaveLength(1);
  });

  it('creates a new database file owner-only', () => {
    const file = path.join(folder(), 'nested', 'pa.sqlite');
    open(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  });

  it('refuses a database whose schema is newer than this version knows', async () => {
    const file = path.join(folder(), 'pa.sqlite');
    const store = open(file);
    const latest = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]?.version ?? 0;
    store.db
      .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
      .run(latest + 1, 'from the future', NOW);
    await store.close();
    expect(() => new SqliteStore({ path: file })).toThrow(
      new RegExp(
        `created by a newer mcp-pa \\(schema ${latest + 1}, this version knows ${latest}\\); upgrade mcp-pa`,
      ),
    );
    // The refused database was left as it was.
    const db = new Database(file, { readonly: true });
    try {
      expect((db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v).toBe(
        latest + 1,
      );
    } finally {
      db.close();
    }
  });
});

describe('connection settings', () => {
  it('uses WAL with foreign keys on', async () => {
    const file = path.join(folder(), 'pa.sqlite');
    const store = open(file);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(store.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    // Foreign keys really act: purging a project leaves its task without a project.
    const project = item({ id: 'prj_fk', kind: 'project', title: 'Parent' });
    const task = item({ id: 'tsk_fk', kind: 'task', title: 'Child', project_id: 'prj_fk' });
    await store.write(
      TENANT,
      [
        { op: 'insert', item: project },
        { op: 'insert', item: task },
      ],
      NOW,
    );
    await store.write(TENANT, [{ op: 'purge', id: 'prj_fk' }], NOW);
    expect((await store.getItem(TENANT, 'tsk_fk'))?.project_id).toBeNull();
    // …and an insert pointing at a missing project is refused.
    await expect(
      store.write(TENANT, [{ op: 'insert', item: item({ kind: 'task', project_id: 'prj_missing' }) }], NOW),
    ).rejects.toThrow(/FOREIGN KEY/);
  });
});

describe('full-text index', () => {
  it('stays in step with inserts, updates, soft deletes and purges', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const r = item({ title: 'Quarterly budget', body: 'spreadsheet for finance', tags: ['money'] });
    const other = item({ title: 'Dentist appointment' });
    await store.write(
      TENANT,
      [
        { op: 'insert', item: r },
        { op: 'insert', item: other },
      ],
      NOW,
    );
    expect(await ids(store, ['budget'])).toEqual([r.id]);
    expect(await ids(store, ['finance'])).toEqual([r.id]);
    expect(await ids(store, ['money'])).toEqual([r.id]);
    expect(await ids(store, ['budget', 'dentist'], 'all')).toEqual([]);
    expect(await ids(store, ['budget', 'dentist'], 'any')).toEqual([r.id, other.id].sort());

    const edited = bumped(r, { title: 'Annual forecast', body: 'slides for the board', tags: ['work'] });
    await store.write(TENANT, [{ op: 'update', item: edited, expected_version: 1 }], LATER);
    for (const old of ['budget', 'finance', 'money']) expect(await ids(store, [old])).toEqual([]);
    for (const fresh of ['forecast', 'board', 'work']) expect(await ids(store, [fresh])).toEqual([r.id]);
    ftsIntegrity(store);

    // The trash hides an item from search without touching the index.
    const trashed = bumped(edited, { deleted_at: LATER });
    await store.write(TENANT, [{ op: 'update', item: trashed, expected_version: 2 }], LATER);
    expect(await ids(store, ['forecast'])).toEqual([]);
    ftsIntegrity(store);

    await store.write(TENANT, [{ op: 'purge', id: r.id }], LATER);
    expect(await ids(store, ['forecast'])).toEqual([]);
    expect(await ids(store, ['dentist'])).toEqual([other.id]);
    ftsIntegrity(store);
    const rows = store.db
      .prepare("SELECT COUNT(*) AS n FROM items_fts WHERE items_fts MATCH 'forecast'")
      .get() as {
      n: number;
    };
    expect(rows.n).toBe(0);
  });
});

describe('document_contents table', () => {
  it('stays empty when a folder holds the content, and loses its row on purge otherwise', async () => {
    const inFolder = open(path.join(folder(), 'a.sqlite'), path.join(folder(), 'documents'));
    const doc = item({ kind: 'document' });
    await inFolder.write(TENANT, [{ op: 'insert', item: doc, content: new Uint8Array([1, 2]) }], NOW);
    const count = (s: SqliteStore) =>
      (s.db.prepare('SELECT COUNT(*) AS n FROM document_contents').get() as { n: number }).n;
    expect(count(inFolder)).toBe(0);

    const inDb = open(path.join(folder(), 'b.sqlite'));
    const doc2 = item({ kind: 'document' });
    await inDb.write(TENANT, [{ op: 'insert', item: doc2, content: new Uint8Array([9, 8, 7]) }], NOW);
    expect(count(inDb)).toBe(1);
    await inDb.write(TENANT, [{ op: 'purge', id: doc2.id }], NOW);
    expect(count(inDb)).toBe(0);
  });
});
