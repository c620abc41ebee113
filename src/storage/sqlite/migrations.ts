import type { Database } from 'better-sqlite3';

/** Versioned schema migrations. Never edit a released one: add the next. */
export const SQLITE_MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'items, profiles, full-text, vectors, document contents',
    sql: `
CREATE TABLE profiles (
  tenant_id  TEXT PRIMARY KEY,
  data       TEXT NOT NULL,
  version    INTEGER NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE items (
  seq        INTEGER PRIMARY KEY,
  id         TEXT NOT NULL UNIQUE,
  tenant_id  TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('project','task','event','document','note')),
  title      TEXT NOT NULL,
  body       TEXT NOT NULL DEFAULT '',
  status     TEXT,
  priority   TEXT,
  project_id TEXT REFERENCES items(id) ON DELETE SET NULL,
  tags       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
  starts_at  TEXT,
  ends_at    TEXT,
  client_ref TEXT,
  data       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
  version    INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT
);
CREATE UNIQUE INDEX items_client_ref ON items(tenant_id, kind, client_ref) WHERE client_ref IS NOT NULL;
CREATE INDEX items_by_start ON items(tenant_id, kind, starts_at, id);
CREATE INDEX items_by_created ON items(tenant_id, kind, created_at, id);
CREATE INDEX items_by_updated ON items(tenant_id, kind, updated_at, id);
CREATE INDEX items_by_project ON items(project_id) WHERE project_id IS NOT NULL;

CREATE VIRTUAL TABLE items_fts USING fts5(
  title, body, tags,
  content='items', content_rowid='seq',
  tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
  INSERT INTO items_fts(rowid, title, body, tags) VALUES (new.seq, new.title, new.body, new.tags);
END;
CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
  INSERT INTO items_fts(items_fts, rowid, title, body, tags) VALUES ('delete', old.seq, old.title, old.body, old.tags);
END;
CREATE TRIGGER items_fts_update AFTER UPDATE OF title, body, tags ON items BEGIN
  INSERT INTO items_fts(items_fts, rowid, title, body, tags) VALUES ('delete', old.seq, old.title, old.body, old.tags);
  INSERT INTO items_fts(rowid, title, body, tags) VALUES (new.seq, new.title, new.body, new.tags);
END;

CREATE TABLE item_vectors (
  item_id    TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
  tenant_id  TEXT NOT NULL,
  model      TEXT NOT NULL,
  status     TEXT NOT NULL CHECK (status IN ('pending','ready')),
  vector     BLOB,
  updated_at TEXT NOT NULL
);
CREATE INDEX item_vectors_by_tenant ON item_vectors(tenant_id, model, status);

-- Records of the original program imported here (by client_ref), kept even when the item is later deleted,
-- so a permanently deleted record is not imported again.
CREATE TABLE legacy_imports (
  ref         TEXT PRIMARY KEY,
  item_id     TEXT,
  imported_at TEXT NOT NULL
);

CREATE TABLE document_contents (
  item_id   TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
  tenant_id TEXT NOT NULL,
  content   BLOB NOT NULL
);
`,
  },
];

/** Applies pending migrations in one transaction each; returns the versions applied. */
export function migrate(db: Database): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const current =
    (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  const latest = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]?.version ?? 0;
  if (current > latest) {
    throw new Error(
      `the database was created by a newer mcp-pa (schema ${current}, this version knows ${latest}); upgrade mcp-pa`,
    );
  }
  const applied: number[] = [];
  for (const m of SQLITE_MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        new Date().toISOString(),
      );
    }).immediate();
    applied.push(m.version);
  }
  return applied;
}

/**
 * The schema version a database is at and the one this version of mcp-pa brings it to, without changing anything
 * (for `mcp-pa doctor`; a database without the migrations table is at 0).
 */
export function schemaVersion(db: Database): { current: number; latest: number } {
  const latest = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]?.version ?? 0;
  const table = db
    .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`)
    .get();
  if (table === undefined) return { current: 0, latest };
  const current =
    (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  return { current, latest };
}
