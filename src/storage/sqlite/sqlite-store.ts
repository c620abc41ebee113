import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import Database, { type Database as Db, type Statement } from 'better-sqlite3';
import {
  StoreConflictError,
  StoreUnavailableError,
  StoreWriteError,
  type ItemKind,
  type ItemQuery,
  type ItemRecord,
  type JsonObject,
  type ProfileRecord,
  type Store,
  type TextHit,
  type TextSearchQuery,
  type VectorFilter,
  type WriteOp,
  type WriteResult,
  NO_DATE_KEY,
} from '../model.js';
import { FolderContent } from '../content.js';
import { migrate } from './migrations.js';
import { topK } from '../vectors.js';

interface ItemRow {
  id: string;
  kind: ItemKind;
  title: string;
  body: string;
  status: string | null;
  priority: string | null;
  project_id: string | null;
  tags: string;
  starts_at: string | null;
  ends_at: string | null;
  client_ref: string | null;
  data: string;
  version: number;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

const ITEM_COLUMNS =
  'id, kind, title, body, status, priority, project_id, tags, starts_at, ends_at, client_ref, data, version, created_at, updated_at, deleted_at';

function toRecord(row: ItemRow): ItemRecord {
  return {
    ...row,
    tags: JSON.parse(row.tags) as string[],
    data: JSON.parse(row.data) as JsonObject,
  };
}

/** Filters that listing and searching share: status, any of some tags, and a range of starts_at. */
function addSharedFilters(
  q: { status?: readonly string[]; tags?: readonly string[]; starts_from?: string; starts_before?: string },
  table: string,
  where: string[],
  params: unknown[],
): void {
  if (q.status?.length) {
    where.push(`${table}.status IN (SELECT value FROM json_each(?))`);
    params.push(JSON.stringify(q.status));
  }
  if (q.tags?.length) {
    where.push(
      `EXISTS (SELECT 1 FROM json_each(${table}.tags) t WHERE t.value IN (SELECT value FROM json_each(?)))`,
    );
    params.push(JSON.stringify(q.tags));
  }
  if (q.starts_from !== undefined) {
    where.push(`${table}.starts_at >= ?`);
    params.push(q.starts_from);
  }
  if (q.starts_before !== undefined) {
    where.push(`${table}.starts_at < ?`);
    params.push(q.starts_before);
  }
}

export interface SqliteStoreOptions {
  /** Database file, or ':memory:'. */
  readonly path: string;
  /** Keep uploaded document content in this folder instead of the database. */
  readonly documentsDir?: string | undefined;
  readonly readonly?: boolean;
}

function codeOf(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A failed write the user can fix, said so (StoreWriteError): the disk is full (SQLITE_FULL, ENOSPC, EDQUOT) or the
 * database is read-only (SQLITE_READONLY*, EROFS). Anything else: null (an internal error).
 */
export function sqliteWriteFailure(err: unknown, file: string): StoreWriteError | null {
  const code = codeOf(err);
  if (code === undefined) return null;
  const dir = path.dirname(file);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') {
    return new StoreWriteError(
      'disk_full',
      `the disk holding the database (${dir}) is full: this change was not saved`,
      'free space on that disk, then try again; what was saved before is intact',
      { cause: err },
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') {
    return new StoreWriteError(
      'read_only',
      `the database ${file} is read-only: this change was not saved`,
      'make the database file and its folder writable for the user running mcp-pa, then restart mcp-pa; reading works meanwhile',
      { cause: err },
    );
  }
  return null;
}

/** Why the database could not be opened, for the startup message (what is wrong, and what to do). */
export function sqliteOpenFailure(err: unknown, file: string): StoreUnavailableError {
  const dir = path.dirname(file);
  const write = sqliteWriteFailure(err, file);
  if (write?.reason === 'disk_full') {
    return new StoreUnavailableError(
      `cannot open the database ${file}: the disk holding it is full; free space on it, then start mcp-pa again`,
      { cause: err },
    );
  }
  let folderWritable = true;
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    folderWritable = false;
  }
  if (write?.reason === 'read_only' || !folderWritable || codeOf(err) === 'EACCES') {
    return new StoreUnavailableError(
      `cannot open the database ${file}: ${folderWritable ? 'it' : `its folder ${dir}`} is read-only or not ` +
        'writable, and mcp-pa writes the database and its -wal and -shm files there; make it writable for the ' +
        'user running mcp-pa, or set MCP_DATA_DIR (or database.path) to a writable place',
      { cause: err },
    );
  }
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(
    `cannot open the database ${file}: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err },
  );
}

/** Opens (creating with owner-only permissions) a SQLite database and brings its schema up to date. */
export function openSqliteDatabase(file: string, readonly = false): Db {
  if (file !== ':memory:' && !readonly) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    if (!existsSync(file)) {
      closeSync(openSync(file, 'a', 0o600));
      chmodSync(file, 0o600);
    }
  }
  let db: Db;
  try {
    db = new Database(file, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw new StoreUnavailableError(`cannot open the database at ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  }
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

export class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  readonly db: Db;
  private readonly file: string;
  private readonly content: FolderContent | undefined;
  private readonly stmts: {
    getProfile: Statement<[string], { data: string; version: number; updated_at: string }>;
    getItem: Statement<[string, string], ItemRow>;
    byRef: Statement<[string, string, string], ItemRow>;
    insert: Statement<unknown[]>;
    update: Statement<unknown[]>;
    purge: Statement<[string, string]>;
    markImported: Statement<[string, string | null, string]>;
    putContent: Statement<[string, string, Uint8Array]>;
    getContent: Statement<[string, string], { content: Buffer }>;
  };
  private vectorCache = new Map<
    string,
    { generation: number; ids: string[]; kinds: ItemKind[]; matrix: Float32Array; dims: number }
  >();
  private generation = 0;

  constructor(options: SqliteStoreOptions) {
    this.file = options.path;
    try {
      this.db = openSqliteDatabase(options.path, options.readonly);
      if (!options.readonly) migrate(this.db);
    } catch (err) {
      throw sqliteOpenFailure(err, options.path);
    }
    this.content = options.documentsDir ? new FolderContent(options.documentsDir) : undefined;
    const db = this.db;
    this.stmts = {
      getProfile: db.prepare('SELECT data, version, updated_at FROM profiles WHERE tenant_id = ?'),
      getItem: db.prepare(`SELECT ${ITEM_COLUMNS} FROM items WHERE tenant_id = ? AND id = ?`),
      byRef: db.prepare(
        `SELECT ${ITEM_COLUMNS} FROM items WHERE tenant_id = ? AND kind = ? AND client_ref = ?`,
      ),
      insert: db.prepare(`INSERT INTO items (tenant_id, ${ITEM_COLUMNS})
        VALUES (?, @id, @kind, @title, @body, @status, @priority, @project_id, @tags, @starts_at, @ends_at, @client_ref, @data, @version, @created_at, @updated_at, @deleted_at)
        ON CONFLICT (tenant_id, kind, client_ref) WHERE client_ref IS NOT NULL DO NOTHING`),
      update: db.prepare(`UPDATE items SET title=@title, body=@body, status=@status, priority=@priority,
        project_id=@project_id, tags=@tags, starts_at=@starts_at, ends_at=@ends_at, data=@data,
        version=version + 1, updated_at=@updated_at, deleted_at=@deleted_at
        WHERE tenant_id = @tenant AND id = @id AND version = @expected`),
      purge: db.prepare('DELETE FROM items WHERE tenant_id = ? AND id = ?'),
      markImported: db.prepare(
        'INSERT OR IGNORE INTO legacy_imports (ref, item_id, imported_at) VALUES (?, ?, ?)',
      ),
      putContent: db.prepare(
        'INSERT OR REPLACE INTO document_contents (tenant_id, item_id, content) VALUES (?, ?, ?)',
      ),
      getContent: db.prepare('SELECT content FROM document_contents WHERE tenant_id = ? AND item_id = ?'),
    };
  }

  async getProfile(tenant: string): Promise<ProfileRecord | null> {
    const row = this.stmts.getProfile.get(tenant);
    return row
      ? { data: JSON.parse(row.data) as JsonObject, version: row.version, updated_at: row.updated_at }
      : null;
  }

  async putProfile(
    tenant: string,
    data: JsonObject,
    expectedVersion: number | null,
    now: string,
  ): Promise<ProfileRecord> {
    const json = JSON.stringify(data);
    const changes = this.writing(() =>
      expectedVersion === null
        ? this.db
            .prepare(
              'INSERT INTO profiles (tenant_id, data, version, updated_at) VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING',
            )
            .run(tenant, json, now).changes
        : this.db
            .prepare(
              'UPDATE profiles SET data = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND version = ?',
            )
            .run(json, now, tenant, expectedVersion).changes,
    );
    if (changes === 0) throw new StoreConflictError('profile');
    return { data, version: (expectedVersion ?? 0) + 1, updated_at: now };
  }

  async getItem(tenant: string, id: string): Promise<ItemRecord | null> {
    const row = this.stmts.getItem.get(tenant, id);
    return row ? toRecord(row) : null;
  }

  async getItems(tenant: string, ids: readonly string[]): Promise<ItemRecord[]> {
    if (ids.length === 0) return [];
    // `+tenant_id` keeps the planner on the id index: without statistics it takes tenant_id as selective and
    // scans every item of the tenant (25 ms at 100 000 items instead of 0.4 ms; see bench/search.ts).
    const rows = this.db
      .prepare(
        `SELECT ${ITEM_COLUMNS} FROM items WHERE +tenant_id = ? AND id IN (SELECT value FROM json_each(?))`,
      )
      .all(tenant, JSON.stringify(ids)) as ItemRow[];
    return rows.map(toRecord);
  }

  async findByClientRef(tenant: string, kind: ItemKind, clientRef: string): Promise<ItemRecord | null> {
    const row = this.stmts.byRef.get(tenant, kind, clientRef);
    return row ? toRecord(row) : null;
  }

  async listItems(tenant: string, q: ItemQuery): Promise<ItemRecord[]> {
    const where = ['tenant_id = ?', 'kind = ?', q.trash ? 'deleted_at IS NOT NULL' : 'deleted_at IS NULL'];
    const params: unknown[] = [tenant, q.kind];
    addSharedFilters(q, 'items', where, params);
    if (q.priority?.length) {
      where.push('priority IN (SELECT value FROM json_each(?))');
      params.push(JSON.stringify(q.priority));
    }
    if (q.project_id === null) where.push('project_id IS NULL');
    else if (q.project_id !== undefined) {
      where.push('project_id = ?');
      params.push(q.project_id);
    }
    for (const [key, values] of Object.entries(q.data_in ?? {})) {
      // The JSON path is a bound parameter too; booleans compare as SQLite's 1/0 on both sides.
      where.push('json_extract(data, ?) IN (SELECT value FROM json_each(?))');
      params.push(`$.${JSON.stringify(key)}`, JSON.stringify(values));
    }
    if (q.overlaps) {
      where.push('starts_at < ? AND (ends_at IS NULL OR ends_at >= ?)');
      params.push(q.overlaps.to, q.overlaps.from);
    }
    let order: string;
    switch (q.order) {
      case 'starts_asc':
        if (q.after) {
          where.push(`(COALESCE(starts_at, '${NO_DATE_KEY}'), id) > (?, ?)`);
          params.push(q.after.key, q.after.id);
        }
        order = `COALESCE(starts_at, '${NO_DATE_KEY}') ASC, id ASC`;
        break;
      case 'created_desc':
      case 'updated_desc': {
        const col = q.order === 'created_desc' ? 'created_at' : 'updated_at';
        if (q.after) {
          where.push(`(${col}, id) < (?, ?)`);
          params.push(q.after.key, q.after.id);
        }
        order = `${col} DESC, id DESC`;
        break;
      }
    }
    params.push(q.limit);
    const rows = this.db
      .prepare(`SELECT ${ITEM_COLUMNS} FROM items WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ?`)
      .all(...params) as ItemRow[];
    return rows.map(toRecord);
  }

  async countItems(tenant: string, kind: ItemKind, status?: readonly string[]): Promise<number> {
    const row = status?.length
      ? (this.db
          .prepare(
            `SELECT COUNT(*) AS n FROM items WHERE tenant_id = ? AND kind = ? AND deleted_at IS NULL
             AND status IN (SELECT value FROM json_each(?))`,
          )
          .get(tenant, kind, JSON.stringify(status)) as { n: number })
      : (this.db
          .prepare('SELECT COUNT(*) AS n FROM items WHERE tenant_id = ? AND kind = ? AND deleted_at IS NULL')
          .get(tenant, kind) as { n: number });
    return row.n;
  }

  async projectTaskCounts(
    tenant: string,
    projectIds: readonly string[],
  ): Promise<Map<string, { total: number; done: number }>> {
    const out = new Map<string, { total: number; done: number }>();
    if (projectIds.length === 0) return out;
    // Unary + keeps the planner on items_by_project rather than scanning the tenant's tasks (see getItems).
    const rows = this.db
      .prepare(
        `SELECT project_id, COUNT(*) AS total, SUM(status = 'done') AS done FROM items
         WHERE +tenant_id = ? AND +kind = 'task' AND deleted_at IS NULL
           AND project_id IN (SELECT value FROM json_each(?)) GROUP BY project_id`,
      )
      .all(tenant, JSON.stringify(projectIds)) as { project_id: string; total: number; done: number }[];
    for (const r of rows) out.set(r.project_id, { total: r.total, done: r.done });
    return out;
  }

  async write(tenant: string, ops: readonly WriteOp[], now: string): Promise<WriteResult> {
    const written: string[] = [];
    const purged: string[] = [];
    const run = this.db.transaction((): WriteResult => {
      const inserted: { record: ItemRecord; created: boolean }[] = [];
      for (const op of ops) {
        if (op.op === 'insert') {
          const item = op.item;
          const res = this.stmts.insert.run(tenant, {
            ...item,
            tags: JSON.stringify(item.tags),
            data: JSON.stringify(item.data),
          });
          if (res.changes === 0) {
            const existing = item.client_ref
              ? this.stmts.byRef.get(tenant, item.kind, item.client_ref)
              : undefined;
            if (!existing) throw new StoreConflictError(item.id);
            inserted.push({ record: toRecord(existing), created: false });
            continue;
          }
          if (op.content) {
            if (this.content) {
              this.content.write(tenant, item.id, op.content);
              written.push(item.id);
            } else {
              this.stmts.putContent.run(tenant, item.id, op.content);
            }
          }
          inserted.push({ record: item, created: true });
        } else if (op.op === 'update') {
          const item = op.item;
          const res = this.stmts.update.run({
            ...item,
            tenant,
            expected: op.expected_version,
            tags: JSON.stringify(item.tags),
            data: JSON.stringify(item.data),
          });
          if (res.changes === 0) throw new StoreConflictError(item.id);
        } else if (op.op === 'mark_imported') {
          this.stmts.markImported.run(op.ref, op.item_id, now);
        } else {
          this.stmts.purge.run(tenant, op.id);
          purged.push(op.id);
        }
      }
      return { inserted };
    });
    try {
      const result = this.writing(() => run.immediate());
      this.generation++;
      for (const id of purged) this.content?.remove(tenant, id);
      return result;
    } catch (err) {
      for (const id of written) this.content?.remove(tenant, id);
      throw err;
    }
  }

  async importedRefs(refs: readonly string[]): Promise<Set<string>> {
    const rows = this.db
      .prepare('SELECT ref FROM legacy_imports WHERE ref IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify(refs)) as { ref: string }[];
    return new Set(rows.map((r) => r.ref));
  }

  async getContent(tenant: string, id: string): Promise<Uint8Array | null> {
    if (this.content) {
      const fromFolder = this.content.read(tenant, id);
      if (fromFolder) return fromFolder;
    }
    const row = this.stmts.getContent.get(tenant, id);
    return row ? new Uint8Array(row.content) : null;
  }

  /** Quotes each term so no FTS5 operator or syntax character in user text is ever interpreted. */
  static ftsQuery(terms: readonly string[], match: 'all' | 'any'): string {
    return terms.map((t) => `"${t.replaceAll('"', '""')}"`).join(match === 'all' ? ' ' : ' OR ');
  }

  async searchText(tenant: string, q: TextSearchQuery): Promise<TextHit[]> {
    if (q.terms.length === 0) return [];
    const match = SqliteStore.ftsQuery(q.terms, q.match);
    const where = ['+i.tenant_id = ?', 'i.deleted_at IS NULL'];
    const params: unknown[] = [tenant];
    if (q.kinds?.length) {
      where.push('i.kind IN (SELECT value FROM json_each(?))');
      params.push(JSON.stringify(q.kinds));
    }
    addSharedFilters(q, 'i', where, params);
    const filter = where.join(' AND ');
    // Rank inside the full-text index first and read item rows only for the best few: reading every matching
    // row to filter before ranking, and making a snippet for each, tripled the time of broad queries at
    // 100 000 items (see bench/search.ts). When the filters leave fewer than `limit` of those few and more
    // matches exist, rank after filtering as before, so the results are the same either way.
    // CROSS JOIN fixes the loop order: with a plain JOIN the planner may walk every item of the tenant and
    // run the full-text query once per item (seconds at 10 000 items).
    const depth = q.limit * 8;
    const ranked = this.db
      .prepare(
        'SELECT rowid AS seq, bm25(items_fts, 10.0, 2.0, 4.0) AS rank FROM items_fts WHERE items_fts MATCH ? ORDER BY rank LIMIT ?',
      )
      .all(match, depth) as { seq: number; rank: number }[];
    const kept = new Map(
      (
        this.db
          .prepare(
            `SELECT i.seq AS seq, i.id AS id FROM json_each(?) j CROSS JOIN items i ON i.seq = j.value WHERE ${filter}`,
          )
          .all(JSON.stringify(ranked.map((r) => r.seq)), ...params) as { seq: number; id: string }[]
      ).map((r) => [r.seq, r.id]),
    );
    let hits = ranked
      .filter((r) => kept.has(r.seq))
      .slice(0, q.limit)
      .map((r) => ({ seq: r.seq, id: kept.get(r.seq) as string, rank: r.rank }));
    if (hits.length < q.limit && ranked.length === depth) {
      hits = this.db
        .prepare(
          `SELECT i.seq AS seq, i.id AS id, bm25(items_fts, 10.0, 2.0, 4.0) AS rank
           FROM items_fts CROSS JOIN items i ON i.seq = items_fts.rowid
           WHERE items_fts MATCH ? AND ${filter} ORDER BY rank LIMIT ?`,
        )
        .all(match, ...params, q.limit) as { seq: number; id: string; rank: number }[];
    }
    if (hits.length === 0) return [];
    const snippets = new Map(
      (
        this.db
          .prepare(
            `SELECT rowid AS seq, snippet(items_fts, -1, '«', '»', '…', 16) AS snippet FROM items_fts
             WHERE items_fts MATCH ? AND rowid IN (SELECT value FROM json_each(?))`,
          )
          .all(match, JSON.stringify(hits.map((h) => h.seq))) as { seq: number; snippet: string }[]
      ).map((r) => [r.seq, r.snippet]),
    );
    return hits.map((h) => ({ id: h.id, score: -h.rank, snippet: snippets.get(h.seq) ?? '' }));
  }

  async putVector(
    tenant: string,
    id: string,
    model: string,
    vector: Float32Array | null,
    now: string,
  ): Promise<void> {
    await this.putVectors(tenant, model, [{ id, vector }], now);
  }

  async putVectors(
    tenant: string,
    model: string,
    entries: readonly { readonly id: string; readonly vector: Float32Array | null }[],
    now: string,
  ): Promise<void> {
    const put = this.db.prepare(
      `INSERT INTO item_vectors (item_id, tenant_id, model, status, vector, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (item_id) DO UPDATE SET model = excluded.model, status = excluded.status,
         vector = excluded.vector, updated_at = excluded.updated_at`,
    );
    const run = this.db.transaction(() => {
      for (const { id, vector } of entries) {
        put.run(
          id,
          tenant,
          model,
          vector ? 'ready' : 'pending',
          vector ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength) : null,
          now,
        );
      }
    });
    this.writing(() => run());
    this.generation++;
  }

  private pendingCache = new Map<string, { generation: number; pending: boolean }>();

  async hasPendingVectors(tenant: string, model: string): Promise<boolean> {
    const key = `${tenant}\u0000${model}`;
    const cached = this.pendingCache.get(key);
    if (cached && cached.generation === this.generation) return cached.pending;
    // Failed or outdated vectors are found through the index; items with no vector row at all need the
    // anti-join, whose answer holds until the next write (every write bumps the generation).
    const pending =
      this.db
        .prepare(
          `SELECT 1 FROM item_vectors v JOIN items i ON i.id = v.item_id
           WHERE v.tenant_id = ? AND (v.model <> ? OR v.status = 'pending') AND i.deleted_at IS NULL LIMIT 1`,
        )
        .get(tenant, model) !== undefined ||
      this.db
        .prepare(
          `SELECT 1 FROM items i WHERE +i.tenant_id = ? AND i.deleted_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM item_vectors v WHERE v.item_id = i.id) LIMIT 1`,
        )
        .get(tenant) !== undefined;
    this.pendingCache.set(key, { generation: this.generation, pending });
    return pending;
  }

  async tenantsNeedingVectors(model: string, limit: number): Promise<string[]> {
    const rows = this.db
      .prepare(
        `SELECT DISTINCT i.tenant_id AS tenant FROM items i LEFT JOIN item_vectors v ON v.item_id = i.id
         WHERE i.deleted_at IS NULL AND (v.item_id IS NULL OR v.status = 'pending' OR v.model <> ?)
         ORDER BY i.tenant_id LIMIT ?`,
      )
      .all(model, limit) as { tenant: string }[];
    return rows.map((r) => r.tenant);
  }

  async itemsNeedingVectors(
    tenant: string,
    model: string,
    limit: number,
    afterId?: string,
  ): Promise<ItemRecord[]> {
    // Walks items in id order from the cursor (the id index) and stops at `limit`; `+tenant_id` keeps the
    // planner from sorting every item of the tenant instead (see bench/search.ts).
    const rows = this.db
      .prepare(
        `SELECT ${ITEM_COLUMNS.split(', ')
          .map((c) => `i.${c}`)
          .join(', ')} FROM items i LEFT JOIN item_vectors v ON v.item_id = i.id
         WHERE +i.tenant_id = ? AND i.deleted_at IS NULL AND i.id > ?
           AND (v.item_id IS NULL OR v.status = 'pending' OR v.model <> ?)
         ORDER BY i.id LIMIT ?`,
      )
      .all(tenant, afterId ?? '', model, limit) as ItemRow[];
    return rows.map(toRecord);
  }

  async searchVectors(
    tenant: string,
    query: Float32Array,
    filter: VectorFilter,
    limit: number,
  ): Promise<{ id: string; score: number }[]> {
    const key = `${tenant}\u0000${filter.model}`;
    let cached = this.vectorCache.get(key);
    if (!cached || cached.generation !== this.generation) {
      const rows = this.db
        .prepare(
          `SELECT v.item_id AS id, i.kind AS kind, v.vector AS vector FROM item_vectors v
           JOIN items i ON i.id = v.item_id
           WHERE v.tenant_id = ? AND v.model = ? AND v.status = 'ready' AND i.deleted_at IS NULL`,
        )
        .all(tenant, filter.model) as { id: string; kind: ItemKind; vector: Buffer }[];
      const dims = query.length;
      const matrix = new Float32Array(rows.length * dims);
      const ids: string[] = [];
      const kinds: ItemKind[] = [];
      let n = 0;
      for (const r of rows) {
        if (r.vector.byteLength !== dims * 4) continue;
        matrix.set(new Float32Array(r.vector.buffer, r.vector.byteOffset, dims), n * dims);
        ids.push(r.id);
        kinds.push(r.kind);
        n++;
      }
      cached = { generation: this.generation, ids, kinds, matrix: matrix.subarray(0, n * dims), dims };
      this.vectorCache.set(key, cached);
    }
    const allowed = filter.kinds?.length ? new Set(filter.kinds) : undefined;
    const c = cached;
    return topK(
      query,
      c.matrix,
      c.dims,
      c.ids.length,
      limit,
      allowed ? (i) => allowed.has(c.kinds[i] as ItemKind) : undefined,
    ).map((h) => ({ id: c.ids[h.index] as string, score: h.score }));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /** Runs a write; a full disk or a read-only database becomes a StoreWriteError that says so. */
  private writing<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw sqliteWriteFailure(err, this.file) ?? err;
    }
  }
}
