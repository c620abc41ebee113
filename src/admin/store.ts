/**
 * The database the admin commands (`mcp-pa users|keys|clients …`) work on: the same one `mcp-pa serve` would
 * use, planned by the same rules (planDatabase), with pending migrations run.
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { planDatabase } from '../servers/http-preflight.js';
import { openPostgresStore, type PostgresStore } from '../storage/postgres/index.js';

/** Opens HTTP mode's database. Throws an Error listing the configuration problems when it cannot be planned. */
export async function openAdminStore(config: Config, logger: Logger): Promise<PostgresStore> {
  const { database, problems } = planDatabase(config);
  if (problems.length > 0) {
    throw new Error(
      problems.length === 1
        ? `cannot open the database: ${problems[0]}`
        : `cannot open the database:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return openPostgresStore(
    database.kind === 'postgresql'
      ? { kind: 'postgresql', connectionString: database.connectionString, poolSize: database.poolSize }
      : { kind: 'pglite', dataDir: database.dataDir },
    { logger, vectorDimensions: null },
  );
}
