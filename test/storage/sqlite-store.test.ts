import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreConflictError, type ItemRecord } from '../../src/storage/model.js';
import { migrate, SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';

const NOW = '2026-03-05T10:00:00.000Z';
const LATER = '2026-03-05T11:00:00.000Z';
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

let counter = 0;
function item(overrides: Partial<ItemRecord> = {}): ItemRecord {
  counter++;
  return {
    id: `not_test${counter.toString().padStart(4, '0')}`,
    kind: 'note',
    title: `Note ${counter}`,
    body: '',
    status: null,
    priority: null,
    project_id: null,
    tags: [],
    starts_at: null,
    ends_at: null,
    client_ref: null,
    data: {},
    version: 1,
    created_at: NOW,
    updated_at: NOW,
    deleted_at: null,
    ...overrides,
  };
}

/** The record as it would be after one more update. */
function bumped(r: ItemRecord, changes: Partial<ItemRecord>): ItemRecord {
  return { ...r, ...changes, version: r.version + 1, updated_at: LATER };
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

describe('write()', () => {
  it('stores, reads back and lists records', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const a = item({ tags: ['home', 'urgent'], data: { pinned: true, nested: { x: [1, 2] } } });
    const res = await store.write(TENANT, [{ op: 'insert', item: a }], NOW);
    expect(res.inserted).toEqual([{ record: a, created: true }]);
    expect(await store.getItem(TENANT, a.id)).toEqual(a);
    expect(await store.getItem('someone-else', a.id)).toBeNull();
    expect(await store.countItems(TENANT, 'note')).toBe(1);
  });

  it('is atomic: a batch whose second op is a stale update rolls back the first insert', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const existing = item({ title: 'Existing' });
    await store.write(TENANT, [{ op: 'insert', item: existing }], NOW);
    await store.write(
      TENANT,
      [{ op: 'update', item: bumped(existing, { title: 'Edited' }), expected_version: 1 }],
      NOW,
    );

    const fresh = item({ title: 'Should not survive' });
    const stale = bumped(existing, { title: 'Stale edit' }); // still expects version 1
    await expect(
      store.write(
        TENANT,
        [
          { op: 'insert', item: fresh },
          { op: 'update', item: stale, expected_version: 1 },
        ],
        LATER,
      ),
    ).rejects.toBeInstanceOf(StoreConflictError);
    expect(await store.getItem(TENANT, fresh.id)).toBeNull();
    expect(await ids(store, ['survive'])).toEqual([]);
    const kept = await store.getItem(TENANT, existing.id);
    expect(kept?.title).toBe('Edited');
    expect(kept?.version).toBe(2);
    expect(await store.countItems(TENANT, 'note')).toBe(1);
  });

  it('throws StoreConflictError naming the item on a stale version, and changes nothing', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const r = item({ title: 'Original' });
    await store.write(TENANT, [{ op: 'insert', item: r }], NOW);
    const first = bumped(r, { title: 'First' });
    await store.write(TENANT, [{ op: 'update', item: first, expected_version: 1 }], LATER);
    const err = await store
      .write(TENANT, [{ op: 'update', item: bumped(r, { title: 'Second' }), expected_version: 1 }], LATER)
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(StoreConflictError);
    expect((err as StoreConflictError).id).toBe(r.id);
    expect((err as StoreConflictError).message).toMatch(/changed by another request/);
    const stored = await store.getItem(TENANT, r.id);
    expect(stored?.title).toBe('First');
    expect(stored?.version).toBe(2);
    // An update for an item of another tenant is a conflict too, not a silent success.
    await expect(
      store.write(
        'other',
        [{ op: 'update', item: bumped(first, { title: 'x' }), expected_version: 2 }],
        LATER,
      ),
    ).rejects.toBeInstanceOf(StoreConflictError);
  });

  it('returns the existing record with created:false when a client_ref is used again', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const original = item({ title: 'First try', client_ref: 'retry-1' });
    const retry = item({ title: 'Second try', client_ref: 'retry-1' });
    const res1 = await store.write(TENANT, [{ op: 'insert', item: original }], NOW);
    expect(res1.inserted[0]?.created).toBe(true);
    const res2 = await store.write(TENANT, [{ op: 'insert', item: retry }], NOW);
    expect(res2.inserted).toEqual([{ record: original, created: false }]);
    expect(await store.getItem(TENANT, retry.id)).toBeNull();
    expect(await store.findByClientRef(TENANT, 'note', 'retry-1')).toEqual(original);
    // The key is per kind and per tenant.
    const task = item({ kind: 'task', client_ref: 'retry-1' });
    expect((await store.write(TENANT, [{ op: 'insert', item: task }], NOW)).inserted[0]?.created).toBe(true);
    const elsewhere = item({ client_ref: 'retry-1' });
    expect((await store.write('other', [{ op: 'insert', item: elsewhere }], NOW)).inserted[0]?.created).toBe(
      true,
    );
    // Within one batch too.
    const a = item({ client_ref: 'batch' });
    const b = item({ client_ref: 'batch' });
    const res3 = await store.write(
      TENANT,
      [
        { op: 'insert', item: a },
        { op: 'insert', item: b },
      ],
      NOW,
    );
    expect(res3.inserted.map((i) => [i.record.id, i.created])).toEqual([
      [a.id, true],
      [a.id, false],
    ]);
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

  it('treats FTS syntax in terms as plain words', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const r = item({ title: 'Notes about OR NOT AND near' });
    await store.write(TENANT, [{ op: 'insert', item: r }], NOW);
    for (const terms of [['or'], ['NOT'], ['near'], ['"quoted"'], ['a*'], ['title:x'], ['-']]) {
      await expect(store.searchText(TENANT, { terms, match: 'all', limit: 5 })).resolves.toBeInstanceOf(
        Array,
      );
    }
    expect(await ids(store, ['NOT'])).toEqual([r.id]);
    const hits = await store.searchText(TENANT, { terms: ['notes'], match: 'all', limit: 5 });
    expect(hits[0]?.snippet).toContain('«Notes»');
  });
});

describe('document content in a folder', () => {
  it('writes owner-only files, reads them back and removes them on purge', async () => {
    const dir = path.join(folder(), 'documents');
    const store = open(path.join(folder(), 'pa.sqlite'), dir);
    const doc = item({ id: 'doc_folder1', kind: 'document', title: 'Scan' });
    const bytes = new Uint8Array([0x25, 0x50, 0x44, 0x46, 0x00, 0xff, 0x10]);
    await store.write(TENANT, [{ op: 'insert', item: doc, content: bytes }], NOW);

    const file = path.join(dir, TENANT, doc.id);
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, TENANT)).mode & 0o777).toBe(0o700);
    expect(new Uint8Array(readFileSync(file))).toEqual(bytes);
    expect(await store.getContent(TENANT, doc.id)).toEqual(bytes);
    // Nothing went into the database, and no temporary file was left behind.
    const inDb = store.db.prepare('SELECT COUNT(*) AS n FROM document_contents').get() as { n: number };
    expect(inDb.n).toBe(0);
    expect(readdirSync(path.join(dir, TENANT))).toEqual([doc.id]);

    await store.write(TENANT, [{ op: 'purge', id: doc.id }], LATER);
    expect(existsSync(file)).toBe(false);
    expect(await store.getContent(TENANT, doc.id)).toBeNull();
  });

  it('removes a file written by a batch that rolled back', async () => {
    const dir = path.join(folder(), 'documents');
    const store = open(path.join(folder(), 'pa.sqlite'), dir);
    const existing = item();
    await store.write(TENANT, [{ op: 'insert', item: existing }], NOW);
    await store.write(
      TENANT,
      [{ op: 'update', item: bumped(existing, { title: 'v2' }), expected_version: 1 }],
      NOW,
    );
    const doc = item({ id: 'doc_rollback', kind: 'document' });
    await expect(
      store.write(
        TENANT,
        [
          { op: 'insert', item: doc, content: new Uint8Array([1, 2, 3]) },
          { op: 'update', item: bumped(existing, { title: 'stale' }), expected_version: 1 },
        ],
        LATER,
      ),
    ).rejects.toBeInstanceOf(StoreConflictError);
    expect(existsSync(path.join(dir, TENANT, doc.id))).toBe(false);
    expect(await store.getItem(TENANT, doc.id)).toBeNull();
  });

  it('keeps content in the database when no folder is configured, and drops it on purge', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const doc = item({ kind: 'document' });
    await store.write(TENANT, [{ op: 'insert', item: doc, content: new Uint8Array([9, 8, 7]) }], NOW);
    expect(await store.getContent(TENANT, doc.id)).toEqual(new Uint8Array([9, 8, 7]));
    expect(await store.getContent('other', doc.id)).toBeNull();
    await store.write(TENANT, [{ op: 'purge', id: doc.id }], NOW);
    const left = store.db.prepare('SELECT COUNT(*) AS n FROM document_contents').get() as { n: number };
    expect(left.n).toBe(0);
  });
});

describe('listItems', () => {
  it('pages by (sort key, id) with ties, each record exactly once', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const same = '2026-03-10T09:00:00.000Z';
    const records = Array.from({ length: 7 }, (_, i) =>
      item({ kind: 'task', starts_at: i < 5 ? same : i === 5 ? '2026-03-01T00:00:00.000Z' : null }),
    );
    await store.write(
      TENANT,
      records.map((r) => ({ op: 'insert' as const, item: r })),
      NOW,
    );
    const seen: string[] = [];
    let after: { key: string; id: string } | undefined;
    for (let page = 0; page < 10; page++) {
      const rows = await store.listItems(TENANT, {
        kind: 'task',
        order: 'starts_asc',
        limit: 2,
        ...(after ? { after } : {}),
      });
      if (rows.length === 0) break;
      seen.push(...rows.map((r) => r.id));
      const last = rows[rows.length - 1] as ItemRecord;
      after = { key: last.starts_at ?? '9999-12-31T23:59:59.999Z', id: last.id };
    }
    expect(seen).toHaveLength(records.length);
    expect(new Set(seen).size).toBe(records.length);
    // Earliest first, ties by id, undated last.
    expect(seen[0]).toBe(records[5]?.id);
    expect(seen.slice(1, 6)).toEqual(
      records
        .slice(0, 5)
        .map((r) => r.id)
        .sort(),
    );
    expect(seen[6]).toBe(records[6]?.id);
  });
});

describe('hasPendingVectors', () => {
  it('follows writes: missing, failed and outdated vectors count; trashed items do not', async () => {
    const store = open(path.join(folder(), 'pa.sqlite'));
    const model = 'hash-v1-4';
    const vec = new Float32Array([1, 0, 0, 0]);
    expect(await store.hasPendingVectors(TENANT, model)).toBe(false);
    const a = item();
    const b = item();
    await store.write(
      TENANT,
      [
        { op: 'insert', item: a },
        { op: 'insert', item: b },
      ],
      NOW,
    );
    expect(await store.hasPendingVectors(TENANT, model)).toBe(true); // no vector rows yet
    await store.putVector(TENANT, a.id, model, vec, NOW);
    expect(await store.hasPendingVectors(TENANT, model)).toBe(true); // b still has none
    await store.putVector(TENANT, b.id, model, null, NOW);
    expect(await store.hasPendingVectors(TENANT, model)).toBe(true); // b failed: pending
    await store.putVector(TENANT, b.id, model, vec, NOW);
    expect(await store.hasPendingVectors(TENANT, model)).toBe(false);
    expect(await store.hasPendingVectors(TENANT, 'hash-v1-8')).toBe(true); // another model: all outdated
    await store.putVector(TENANT, b.id, model, null, NOW);
    await store.write(
      TENANT,
      [{ op: 'update', item: bumped(b, { deleted_at: LATER }), expected_version: 1 }],
      LATER,
    );
    expect(await store.hasPendingVectors(TENANT, model)).toBe(false); // only a trashed item is pending
  });
});
