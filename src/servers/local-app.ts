import { readFileSync, statSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { Assistant } from '../assistant/assistant.js';
import { importLegacy, legacyRefs, type LegacyImportReport } from '../assistant/legacy-import.js';
import type { Config } from '../config/index.js';
import { ChangeHub, LOCAL_CALLER } from '../mcp/context.js';
import type { Logger } from '../observability/logger.js';
import { Reembedder, reportingFailures } from '../assistant/reembedder.js';
import { createEmbeddingProvider } from '../storage/embeddings/index.js';
import {
  backupDatabase,
  hasLegacyTables,
  openReadonly,
  pendingLegacyRefs,
  readLegacyRows,
  type LegacyRow,
} from '../storage/sqlite/legacy.js';
import { SqliteStore, sqliteOpenFailure } from '../storage/sqlite/sqlite-store.js';

export interface LocalApp {
  readonly config: Config;
  readonly store: SqliteStore;
  readonly assistant: Assistant;
  readonly hub: ChangeHub;
  readonly tenant: string;
  /** Resolves when background work started at open (the first re-embedding pass) has finished. */
  readonly background: Promise<void>;
  /** Re-embeds items whose vectors are missing, pending or outdated (absent when semantic search is off). */
  readonly reembedder: Reembedder | undefined;
  close(): Promise<void>;
}

interface LegacyScan {
  rows: LegacyRow[];
  pending: boolean;
}

/** Reads a database file without changing it: does it hold the original program's data not yet imported? */
export function scanLegacy(file: string): LegacyScan | null {
  let db;
  try {
    if (!statSync(file).isFile()) return null;
    db = openReadonly(file);
  } catch {
    return null;
  }
  try {
    if (!hasLegacyTables(db)) return null;
    const rows = readLegacyRows(db);
    return { rows, pending: pendingLegacyRefs(db, legacyRefs(rows)).length > 0 };
  } catch (err) {
    // E.g. a WAL database in a read-only folder (its -shm file cannot be made): say what is wrong and what to do.
    throw sqliteOpenFailure(err, file);
  } finally {
    db.close();
  }
}

export function backupName(file: string, now: Date): string {
  return `${file}.backup-${now.toISOString().replace(/[:.]/g, '-')}`;
}

/** Copies the database to a timestamped, owner-only backup beside it; returns the backup's path. */
export async function backupFile(file: string, now = new Date()): Promise<string> {
  const target = backupName(file, now);
  await backupDatabase(file, target);
  await chmod(target, 0o600);
  return target;
}

export async function runLegacyImport(
  app: Pick<LocalApp, 'store' | 'assistant' | 'config' | 'tenant'>,
  rows: readonly LegacyRow[],
  logger: Logger,
  onProgress?: (done: number, total: number) => void,
): Promise<LegacyImportReport> {
  const report = await importLegacy(app.store, rows, {
    tenant: app.tenant,
    // The profile's zone if there is one already, else the configured one, else the system's.
    zone: await app.assistant.timeZone(app.tenant),
    readFile: (p) => {
      try {
        return new Uint8Array(readFileSync(p));
      } catch {
        return null;
      }
    },
    contentStorage: app.config.documents.dir ? 'folder' : 'database',
    now: app.assistant.now(),
    ...(onProgress ? { onProgress } : {}),
  });
  for (const [table, c] of Object.entries(report.counts)) {
    logger.info({ table, found: c.found, imported: c.imported, already: c.already }, 'legacy import');
  }
  for (const w of report.warnings) logger.warn({ warning: w }, 'legacy import');
  await app.assistant.reembed(app.tenant);
  return report;
}

/** Opens local mode's storage and assistant; migrates the original program's data first if the file holds it. */
export interface OpenOptions {
  readonly clock?: () => Date;
  /** Migrate the original program's data found in the database file (default true; `mcp-pa import` does it itself). */
  readonly migrateLegacy?: boolean;
}

export async function openLocalApp(
  config: Config,
  logger: Logger,
  options: OpenOptions = {},
): Promise<LocalApp> {
  const tenant = LOCAL_CALLER.tenant;
  const file = config.database.path;
  const legacy = options.migrateLegacy === false ? null : scanLegacy(file);
  if (legacy?.pending) {
    const backup = await backupFile(file);
    logger.info(
      { backup },
      'found data of the original Python program; backed up the database before migrating it',
    );
  }
  const store = new SqliteStore({ path: file, documentsDir: config.documents.dir });
  const hub = new ChangeHub();
  const provider = createEmbeddingProvider(config, logger);
  // Writes whose embedding fails leave their items pending; the worker is told and picks them up later.
  const onFailure = { notify: (): void => undefined };
  const embeddings = provider && reportingFailures(provider, () => onFailure.notify());
  const assistant = new Assistant({
    store,
    ...(options.clock ? { clock: options.clock } : {}),
    defaultTimeZone: config.assistant.timezone,
    maxUploadBytes: config.documents.max_file_size_bytes,
    embeddings,
    onChange: hub.emit,
    storageInfo: {
      database: `sqlite:${file}`,
      documents: config.documents.dir ? `folder:${config.documents.dir}` : 'database',
    },
  });
  const reembedder = embeddings ? new Reembedder({ assistant, store, logger }) : undefined;
  if (reembedder) onFailure.notify = () => reembedder.failed();
  const app = { config, store, assistant, hub, tenant };
  if (legacy?.pending) await runLegacyImport(app, legacy.rows, logger);
  const background = reembedder ? reembedder.start() : Promise.resolve();
  return {
    ...app,
    background,
    reembedder,
    close: async () => {
      embeddings?.close?.();
      await reembedder?.close();
      await store.close();
    },
  };
}
