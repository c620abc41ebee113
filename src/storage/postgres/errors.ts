/**
 * Errors of the PostgreSQL store: clear startup errors (what failed, where, and the fix) and the mapping of
 * connection failures during operation to StoreUnavailableError. No message ever carries a password: the
 * connection string is only ever described by host, port, database and user, and every driver message is
 * scrubbed of the password before it is used.
 */
import { StoreUnavailableError } from '../model.js';

/** The database could not be opened or prepared; the message says what to do. Never contains a password. */
export class DatabaseStartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseStartupError';
  }
}

/** Where a connection string points, for messages; the password is kept only to scrub it from driver text. */
export interface ServerDescription {
  readonly host: string;
  readonly port: string;
  readonly database: string;
  readonly user: string;
  /** "host:port" (or the socket folder), for messages. */
  readonly where: string;
  readonly secrets: readonly string[];
}

/** Parses a postgres:// URL far enough to name the server in messages. */
export function describeConnectionString(connectionString: string): ServerDescription {
  const secrets: string[] = [];
  try {
    const url = new URL(connectionString);
    if (url.password) secrets.push(url.password, safeDecode(url.password));
    const socketHost = url.searchParams.get('host');
    const host = url.hostname ? safeDecode(url.hostname) : (socketHost ?? 'localhost');
    const port = url.port || url.searchParams.get('port') || '5432';
    const database = safeDecode(url.pathname.replace(/^\//, '')) || safeDecode(url.username) || 'postgres';
    const user = safeDecode(url.username) || 'the default user';
    const pw = url.searchParams.get('password');
    if (pw) secrets.push(pw);
    return { host, port, database, user, where: `${host}:${port}`, secrets };
  } catch {
    // Not a URL (e.g. a libpq keyword string): name nothing, but still scrub anything that looks like a password.
    const m = /password\s*=\s*'?([^'\s]+)/i.exec(connectionString);
    if (m?.[1]) secrets.push(m[1]);
    return {
      host: 'the configured host',
      port: '?',
      database: 'the configured database',
      user: 'the configured user',
      where: 'the server in the database URL',
      secrets,
    };
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Removes every known secret from a text (longest first, so a secret containing another is fully removed). */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length > 0).sort((a, b) => b.length - a.length)) {
    out = out.split(s).join('[redacted]');
  }
  return out;
}

interface DriverError {
  code?: string;
  message?: string;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as DriverError).code : undefined;
}

export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return err.errors.map((e: unknown) => errorMessage(e)).join('; ');
  }
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** Whether an error means the server could not be reached or the connection broke (as opposed to a bad query). */
export function isConnectionFailure(err: unknown): boolean {
  const code = errorCode(err);
  if (code && NETWORK_CODES.has(code)) return true;
  if (
    code &&
    (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300')
  )
    return true;
  const msg = errorMessage(err);
  if (err instanceof AggregateError) return err.errors.some((e: unknown) => isConnectionFailure(e));
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection timeout|Cannot use a pool after calling end|PGlite is closed/i.test(
    msg,
  );
}

/**
 * Whether an error means "the database cannot be reached right now" (so the request may succeed later), as
 * opposed to a bad request or a bug: a StoreUnavailableError anywhere in the error's cause chain (what the drivers
 * turn connection failures into), or a connection failure a driver did not translate (ECONNREFUSED, 08xxx,
 * 57P01 admin_shutdown, 57P03 cannot_connect_now, a pool connection timeout…). The HTTP layer answers these with
 * 503 and Retry-After (src/servers/http/unavailable.ts).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current !== null && current !== undefined; depth++) {
    if (current instanceof StoreUnavailableError || isConnectionFailure(current)) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}

/** The startup error for a failed first connection: unreachable, authentication, missing database, or other. */
export function connectFailure(err: unknown, server: ServerDescription): DatabaseStartupError {
  const code = errorCode(err);
  const cause = scrub(errorMessage(err), server.secrets);
  if (code === '28P01') {
    return new DatabaseStartupError(
      `PostgreSQL at ${server.where} rejected the password of user "${server.user}" (authentication failed): ` +
        'check the user name and password in the database URL (MCP_DATABASE_URL).',
    );
  }
  if (code === '28000') {
    return new DatabaseStartupError(
      `PostgreSQL at ${server.where} refused user "${server.user}" (${cause}): check the user name in the ` +
        'database URL, that the role exists and may log in, and that pg_hba.conf allows this connection.',
    );
  }
  if (code === '3D000') {
    return new DatabaseStartupError(
      `database "${server.database}" does not exist on PostgreSQL at ${server.where}: create it ` +
        `(e.g. createdb ${server.database}, or CREATE DATABASE as a superuser) or fix the database name in the ` +
        'database URL.',
    );
  }
  if (isConnectionFailure(err)) {
    return new DatabaseStartupError(
      `cannot reach PostgreSQL at ${server.where} (${cause}): check that the server is running and ` +
        'accepts connections, and that the host and port in the database URL are right.',
    );
  }
  return new DatabaseStartupError(`cannot connect to PostgreSQL at ${server.where}: ${cause}`);
}

const FIX_PGVECTOR =
  "run scripts/setup-postgres.sh as root (builds pgvector from Debian's source package) or install your " +
  "distribution's postgresql-<major>-pgvector package; then CREATE EXTENSION vector";

export function pgvectorMissing(where: string, major: number | null): DatabaseStartupError {
  const fix = FIX_PGVECTOR.replace('<major>', major === null ? '<major>' : String(major));
  return new DatabaseStartupError(
    `the PostgreSQL extension "vector" (pgvector) is not installed on the database server (${where}); ` +
      `mcp-pa needs it for semantic search. Fix: ${fix}.`,
  );
}

export function pgvectorNotPermitted(where: string, user: string, database: string): DatabaseStartupError {
  return new DatabaseStartupError(
    `pgvector is installed on the server (${where}) but user "${user}" may not create the extension "vector" in ` +
      `database "${database}": ask a superuser to run CREATE EXTENSION vector; in that database once ` +
      '(mcp-pa then uses it as it is).',
  );
}

/** Turns a connection failure during normal operation into StoreUnavailableError; other errors pass through. */
export function translateRuntimeError(err: unknown, secrets: readonly string[]): unknown {
  if (err instanceof StoreUnavailableError) return err;
  if (isConnectionFailure(err)) {
    return new StoreUnavailableError(`the database is unavailable: ${scrub(errorMessage(err), secrets)}`, {
      cause: err,
    });
  }
  const code = errorCode(err);
  if (code === '22021' || code === '22P05') {
    // PostgreSQL text cannot hold U+0000; SQLite can. Say so instead of a driver message about encodings.
    return new Error('text containing the NUL character (U+0000) cannot be stored in PostgreSQL', {
      cause: err,
    });
  }
  return err;
}
