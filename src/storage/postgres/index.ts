/**
 * PostgreSQL storage for HTTP mode: a real server through a `pg` pool, or embedded PGlite (PostgreSQL in
 * WebAssembly, with pgvector) when no server is configured. Tenants are isolated by row-level security.
 */
import {
  openPostgresStore as open,
  PostgresStore,
  type PostgresStoreOptions,
  type PostgresTarget,
} from './postgres-store.js';

export { DatabaseStartupError } from './errors.js';
export { PostgresStore, type PostgresStoreOptions, type PostgresTarget };

/**
 * Opens the store: connects (or starts PGlite), checks pgvector, runs pending migrations under an advisory
 * lock and makes the HNSW index for `vectorDimensions`. Throws DatabaseStartupError with the fix when it cannot.
 */
export async function openPostgresStore(
  target: PostgresTarget,
  options: PostgresStoreOptions,
): Promise<PostgresStore> {
  return open(target, options);
}
