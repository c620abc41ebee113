import type { Database as Db } from 'better-sqlite3';
import Database from 'better-sqlite3';

/** The tables the original Python program kept, each row `(id, data)` with `data` a JSON document. */
export const LEGACY_TABLES = ['user_status', 'projects', 'todos', 'calendar_events', 'documents'] as const;
export type LegacyTable = (typeof LEGACY_TABLES)[number];

export interface LegacyRow {
  readonly table: LegacyTable;
  readonly id: string;
  readonly data: string;
}

function tableNames(db: Db): Set<string> {
  const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
  return new Set(rows.map((r) => r.name));
}

/** Whether the database holds any of the original program's tables (with their id/data shape). */
export function hasLegacyTables(db: Db): boolean {
  const names = tableNames(db);
  return LEGACY_TABLES.some((t) => {
    if (!names.has(t)) return false;
    const cols = (db.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[]).map((c) => c.name);
    return cols.includes('id') && cols.includes('data');
  });
}

export function readLegacyRows(db: Db): LegacyRow[] {
  const names = tableNames(db);
  const out: LegacyRow[] = [];
  for (const table of LEGACY_TABLES) {
    if (!names.has(table)) continue;
    const rows = db.prepare(`SELECT CAST(id AS TEXT) AS id, data FROM "${table}" ORDER BY rowid`).all() as {
      id: string;
      data: string;
    }[];
    for (const r of rows) out.push({ table, id: r.id, data: r.data });
  }
  return out;
}

/** Legacy refs never imported into this database (the import log outlives deleted items). */
export function pendingLegacyRefs(db: Db, refs: readonly string[]): string[] {
  const names = tableNames(db);
  if (!names.has('legacy_imports')) return [...refs];
  const stmt = db.prepare('SELECT 1 FROM legacy_imports WHERE ref = ?');
  return refs.filter((ref) => stmt.get(ref) === undefined);
}

/** A consistent copy of the database file (WAL included), made with SQLite's online backup. */
export async function backupDatabase(file: string, target: string): Promise<void> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    await db.backup(target);
  } finally {
    db.close();
  }
}

export function openReadonly(file: string): Db {
  return new Database(file, { readonly: true, fileMustExist: true });
}
