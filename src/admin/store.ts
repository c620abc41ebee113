/**
 * The database the admin commands (`mcp-pa users|keys|clients|audit|doctor|reembed …`) work on: the same one
 * `mcp-pa serve` would use, planned by the same rules (planDatabase), with pending migrations run — and their
 * progress shown on a terminal (`migrating database: 2/5 <name>`).
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { MigrationProgressLine } from '../observability/progress.js';
import { planDatabase, type DatabasePlan } from '../servers/http-preflight.js';
import { openPostgresStore, type PostgresStore } from '../storage/postgres/index.js';
import { DatabaseStartupError, errorMessage } from '../storage/postgres/errors.js';
import { openDriver, storeOnDriver } from '../storage/postgres/postgres-store.js';
import { prepareDatabase, type MigrationStep, type PrepareResult } from '../storage/postgres/schema.js';

/** Told before each pending migration runs, and once preparing the database has ended. */
export type MigrationProgress = MigrationProgressLine;

let defaultProgress: MigrationProgress | undefined;

/**
 * Where every admin store opened from now on reports its pending migrations (set by the admin entry point when
 * standard error is a terminal; undefined: nowhere).
 */
export function reportMigrations(progress: MigrationProgress | undefined): void {
  defaultProgress = progress;
}

export interface AdminStoreOptions {
  /** Told before each pending migration runs (default: what {@link reportMigrations} set). */
  readonly onMigration?: MigrationProgress | undefined;
  /** Dimensions of the embedding provider: its HNSW index is made, as the server does (default: none). */
  readonly vectorDimensions?: number | null;
}

export interface PreparedAdminStore {
  readonly store: PostgresStore;
  readonly plan: DatabasePlan;
  /** What preparing the database found and did (pgvector version, server version, migrations applied). */
  readonly prepared: PrepareResult;
}

/** The database plan, or an Error listing the configuration problems that stop it. */
function plannedDatabase(config: Config): DatabasePlan {
  const { database, problems } = planDatabase(config);
  if (problems.length > 0) {
    throw new Error(
      problems.length === 1
        ? `cannot open the database: ${problems[0]}`
        : `cannot open the database:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return database;
}

function targetOf(database: DatabasePlan) {
  return database.kind === 'postgresql'
    ? {
        kind: 'postgresql' as const,
        connectionString: database.connectionString,
        poolSize: database.poolSize,
      }
    : { kind: 'pglite' as const, dataDir: database.dataDir };
}

/**
 * Opens HTTP mode's database and says what preparing it found: the migrations run first on their own (reporting
 * each one), then the store is opened on the same connection as the server opens it. Throws DatabaseStartupError
 * (the server's start-up errors) or an Error listing the configuration problems.
 */
export async function prepareAdminStore(
  config: Config,
  logger: Logger,
  options: AdminStoreOptions = {},
): Promise<PreparedAdminStore> {
  const plan = plannedDatabase(config);
  const onMigration = options.onMigration ?? defaultProgress;
  const driver = await openDriver(targetOf(plan), logger);
  try {
    const prepared = await driver
      .transaction((sql) =>
        prepareDatabase(sql, {
          vectorDimensions: null,
          where: driver.where,
          user: driver.server?.user ?? 'postgres',
          database: driver.server?.database ?? 'postgres',
          ...(onMigration !== undefined
            ? { onMigration: (step: MigrationStep) => onMigration.step(step) }
            : {}),
        }),
      )
      .finally(() => onMigration?.done());
    const store = await storeOnDriver(
      driver,
      { logger, vectorDimensions: options.vectorDimensions ?? null },
      true,
    );
    return { store, plan, prepared };
  } catch (err) {
    await driver.close().catch(() => undefined);
    if (err instanceof DatabaseStartupError) throw err;
    throw new DatabaseStartupError(`cannot prepare the database (${driver.where}): ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/** Opens HTTP mode's database. Throws an Error listing the configuration problems when it cannot be planned. */
export async function openAdminStore(config: Config, logger: Logger): Promise<PostgresStore> {
  if (defaultProgress !== undefined) return (await prepareAdminStore(config, logger)).store;
  return openPostgresStore(targetOf(plannedDatabase(config)), { logger, vectorDimensions: null });
}
