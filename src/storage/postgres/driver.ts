/**
 * The tiny driver interface the PostgreSQL store is written against, so one SQL code path serves a real server
 * (a `pg` pool) and the embedded PGlite engine. A driver runs single statements with parameters, several
 * statements without, and transactions; it turns lost connections into StoreUnavailableError.
 */
import { mkdirSync } from 'node:fs';
import type { Extensions, PGlite, Transaction } from '@electric-sql/pglite';
import pg from 'pg';
import type { Logger } from '../../observability/logger.js';
import {
  connectFailure,
  DatabaseStartupError,
  describeConnectionString,
  errorMessage,
  scrub,
  translateRuntimeError,
  type ServerDescription,
} from './errors.js';

export interface SqlResult<R> {
  readonly rows: R[];
  /** Rows inserted, updated or deleted by the statement (or returned, for a SELECT). */
  readonly rowCount: number;
}

export interface Sql {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
  /** Several statements separated by semicolons, without parameters. */
  exec(text: string): Promise<void>;
}

export interface Driver extends Sql {
  readonly engine: 'postgresql' | 'pglite';
  /** Where the database is, for messages (never a password). */
  readonly where: string;
  readonly server: ServerDescription | null;
  /** Runs fn in one transaction on one connection: committed when fn resolves, rolled back when it throws. */
  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /** Connections of a pool (metrics): open, idle, and callers waiting for one. Null when there is no pool. */
  poolUsage(): PoolUsage | null;
  close(): Promise<void>;
}

export interface PoolUsage {
  readonly size: number;
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

/** A `pg` pool against a real PostgreSQL server. */
export class PoolDriver implements Driver {
  readonly engine = 'postgresql' as const;
  readonly where: string;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    readonly server: ServerDescription,
  ) {
    this.where = `PostgreSQL at ${server.where}`;
  }

  poolUsage(): PoolUsage {
    return {
      size: this.pool.options.max ?? 10,
      total: this.pool.totalCount,
      idle: this.pool.idleCount,
      waiting: this.pool.waitingCount,
    };
  }

  /** Creates the pool and makes a first connection, so an unreachable server fails here with a clear error. */
  static async connect(connectionString: string, poolSize: number, logger: Logger): Promise<PoolDriver> {
    const server = describeConnectionString(connectionString);
    if (!Number.isInteger(poolSize) || poolSize < 1) {
      throw new DatabaseStartupError(
        `database pool size must be a whole number of at least 1 (got ${poolSize})`,
      );
    }
    let pool: pg.Pool;
    try {
      pool = new pg.Pool({
        connectionString,
        max: poolSize,
        connectionTimeoutMillis: 10_000,
        idleTimeoutMillis: 30_000,
        application_name: 'mcp-pa',
      });
    } catch (err) {
      throw new DatabaseStartupError(
        `invalid database URL for ${server.where}: ${scrub(errorMessage(err), server.secrets)}`,
      );
    }
    // An idle connection that breaks (server restart) must not crash the process; the next query reconnects.
    pool.on('error', (err) => {
      logger.warn({ err: scrub(errorMessage(err), server.secrets) }, 'an idle database connection failed');
    });
    try {
      const client = await pool.connect();
      client.release();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw connectFailure(err, server);
    }
    return new PoolDriver(pool, server);
  }

  private fail(err: unknown): never {
    throw translateRuntimeError(err, this.server.secrets);
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
    try {
      const r = await this.pool.query(text, params as unknown[] | undefined);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
    } catch (err) {
      this.fail(err);
    }
  }

  async exec(text: string): Promise<void> {
    try {
      await this.pool.query(text);
    } catch (err) {
      this.fail(err);
    }
  }

  async transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      this.fail(err);
    }
    const sql: Sql = {
      query: async <R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> => {
        const r = await client.query(text, params as unknown[] | undefined);
        return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
      },
      exec: async (text: string): Promise<void> => {
        await client.query(text);
      },
    };
    let broken: Error | undefined;
    // A checked-out client has no listener of the pool's: an error the server sends between two statements
    // (57P01 when PostgreSQL shuts down) would be an unhandled 'error' event and end the process. Record it: the
    // next statement fails, and the client is dropped instead of going back to the pool.
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await fn(sql);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        // The connection is unusable: drop it from the pool instead of handing it out again.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      }
      this.fail(err);
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** The embedded PGlite engine (PostgreSQL in WebAssembly): one connection, so transactions run one at a time. */
export class PgliteDriver implements Driver {
  readonly engine = 'pglite' as const;
  readonly server = null;
  readonly where: string;

  private constructor(
    private readonly db: PGlite,
    dataDir: string | null,
  ) {
    this.where = dataDir === null ? 'embedded PGlite (in memory)' : `embedded PGlite in ${dataDir}`;
  }

  poolUsage(): null {
    return null;
  }

  /** Starts PGlite (with pgvector unless `withVector` is false, which only tests use). */
  static async open(dataDir: string | null, withVector = true): Promise<PgliteDriver> {
    const where = dataDir === null ? 'in memory' : `in ${dataDir}`;
    try {
      if (dataDir !== null) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const { PGlite } = await import('@electric-sql/pglite');
      const { btree_gin } = await import('@electric-sql/pglite/contrib/btree_gin');
      const extensions: Extensions = withVector
        ? { vector: (await import('@electric-sql/pglite-pgvector')).vector, btree_gin }
        : { btree_gin };
      const db = await PGlite.create({ ...(dataDir === null ? {} : { dataDir }), extensions });
      return new PgliteDriver(db, dataDir);
    } catch (err) {
      throw new DatabaseStartupError(
        `cannot open the embedded PGlite database ${where}: ${errorMessage(err)}` +
          (dataDir === null ? '' : ' (check that the folder is writable and not used by another process)'),
        { cause: err },
      );
    }
  }

  private fail(err: unknown): never {
    throw translateRuntimeError(err, []);
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
    try {
      return result<R>(await this.db.query<R>(text, params as unknown[] | undefined));
    } catch (err) {
      this.fail(err);
    }
  }

  async exec(text: string): Promise<void> {
    try {
      await this.db.exec(text);
    } catch (err) {
      this.fail(err);
    }
  }

  async transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    try {
      // PGlite's own transaction() holds its transaction lock: other callers wait until this one ends.
      return await this.db.transaction(async (tx: Transaction) =>
        fn({
          query: async <R>(text: string, params?: readonly unknown[]) =>
            result<R>(await tx.query<R>(text, params as unknown[] | undefined)),
          exec: async (text: string) => {
            await tx.exec(text);
          },
        }),
      );
    } catch (err) {
      this.fail(err);
    }
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}

function result<R>(r: { rows: R[]; affectedRows?: number; rowCount?: number }): SqlResult<R> {
  return { rows: r.rows, rowCount: r.rowCount ?? r.affectedRows ?? r.rows.length };
}
