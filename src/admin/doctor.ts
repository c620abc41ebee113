/**
 * `mcp-pa doctor [--http] [--dev] [--json]`: checks a deployment the way the server would meet it, and prints for
 * each check `ok`, `warn` or `fail` (or `skip` when it does not apply or cannot run), what it found, and for a warning
 * or a failure what to do. Exit code 0 without failures (warnings allowed), 1 with any failure, 2 for a usage error.
 *
 * HTTP mode: the configuration and `mcp-pa serve`'s start rules (planHttpStartup); the data folder; the database,
 * opened as the server opens it (the same start-up errors; pending migrations are applied, as by every admin
 * command); pgvector and the items waiting for vectors; the TLS certificate and key (loadTlsMaterial's checks, plus
 * the chain's order and the name clients use) and the client-certificate CA; the signing keys (readable with the
 * server secret, age of the active one); the issuer's metadata over HTTPS (issuer, S256); the clock against the
 * database server's and the issuer's. Local mode: the configuration, the data folder, the SQLite file and its schema,
 * the documents folder and the items waiting for vectors.
 *
 * Nothing secret is printed: databases are described without their password, and no key material is shown.
 */
import { X509Certificate } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { connect as netConnect, isIP } from 'node:net';
import path from 'node:path';
import { KeyDecryptionError, KeyStore } from '../auth/keys.js';
import { createTrustedFetch } from '../auth/fetch.js';
import { SECRET_FILE } from '../auth/secret.js';
import { parserOptions, type CommandHelp } from './help.js';
import { ConfigError, type Config } from '../config/index.js';
import { LOCAL_CALLER } from '../mcp/context.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { EXPIRY_WARNING_DAYS, loadTlsMaterial, TlsMaterialError, type TlsMaterial } from '../security/tls.js';
import {
  describeDatabase,
  isLoopbackHost,
  planDatabase,
  planHttpStartup,
  StartupError,
  usesExternalIssuer,
  type HttpPlan,
} from '../servers/http-preflight.js';
import { createEmbeddingProvider } from '../storage/embeddings/index.js';
import { DatabaseStartupError } from '../storage/postgres/errors.js';
import type { PostgresStore } from '../storage/postgres/index.js';
import { hasIterativeScan, LATEST_VERSION, vectorExpression } from '../storage/postgres/schema.js';
import { schemaVersion } from '../storage/sqlite/migrations.js';
import { hasLegacyTables, openReadonly } from '../storage/sqlite/legacy.js';
import { openSqliteDatabase, SqliteStore } from '../storage/sqlite/sqlite-store.js';
import { migrationProgress } from '../observability/progress.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, parseOptions, UsageError } from './common.js';
import type { AdminContext, AdminIo, ConfigLoader } from './index.js';
import { prepareAdminStore } from './store.js';

export const DOCTOR_HELP: CommandHelp = {
  command: 'doctor',
  summary: 'check a deployment and print, for each problem, what to do about it',
  usage: ['mcp-pa doctor [--http] [--dev] [--json] [--config FILE] [options]'],
  options: {
    http: {
      type: 'boolean',
      description: 'check HTTP mode as `mcp-pa serve` runs it, whatever mode the configuration names',
    },
    dev: {
      type: 'boolean',
      description: 'check what `mcp-pa serve --dev` would serve (HTTP mode, the development certificate)',
    },
    json: { type: 'boolean', description: 'print the checks as JSON' },
  },
  notes: [
    'HTTP mode: configuration and start rules, data folder, database (reachable, schema current), pgvector, TLS',
    "certificate and key (expiry, chain, names), client CA, signing keys (secret, age), the issuer's metadata over",
    'HTTPS, and the clock against the database server and the issuer. Local mode: configuration, data folder,',
    'SQLite file (permissions, schema), documents folder, items waiting for vectors.',
    'The database is opened as the server opens it: pending migrations are applied (with progress on a terminal).',
    'The embedded PGlite database allows one process: while the server runs, doctor leaves it alone.',
    'Exit code 0 without failures (warnings allowed), 1 with a failure, 2 for a usage error.',
  ],
  examples: [
    'mcp-pa doctor',
    'mcp-pa doctor --http --config /etc/mcp-pa/config.json',
    'mcp-pa doctor --http --json | jq \'.checks[] | select(.status != "ok")\'',
  ],
};

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  readonly id: string;
  readonly title: string;
  readonly status: CheckStatus;
  /** What the check found (one or more lines). */
  readonly found: string;
  /** For a warning or a failure: what to do. */
  readonly fix?: string;
}

export interface DoctorReport {
  readonly version: string;
  readonly mode: 'local' | 'http' | null;
  readonly configFile: string | null;
  readonly ok: boolean;
  readonly summary: Readonly<Record<CheckStatus, number>>;
  readonly checks: readonly CheckResult[];
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** The active signing key older than this: rotate. */
export const KEY_AGE_WARNING_DAYS = 90;
/** Clock skew (seconds) from which tokens' iat/exp checks may start to go wrong, and from which they do. */
export const SKEW_WARNING_S = 60;
export const SKEW_FAILURE_S = 300;
const FETCH_TIMEOUT_MS = 10_000;
const AS_METADATA_PATH = '/.well-known/oauth-authorization-server';
const OIDC_METADATA_PATH = '/.well-known/openid-configuration';
/** Counting items waiting for vectors stops here (the count is "at least"). */
const WAITING_BOUND = 1_000_000;
/** Stands in for the server secret where only the list of keys is read (KeyStore needs one to be made). */
const PLACEHOLDER_SECRET = 'listing-only '.repeat(3);
const RANK: Readonly<Record<CheckStatus, number>> = { skip: 0, ok: 1, warn: 2, fail: 3 };

function worst(statuses: readonly CheckStatus[]): CheckStatus {
  return statuses.reduce<CheckStatus>((a, b) => (RANK[b] > RANK[a] ? b : a), 'ok');
}

/** Findings of one check, each with its own status and fix, folded into one result. */
class Findings {
  private readonly items: { status: CheckStatus; found: string; fix?: string | undefined }[] = [];
  constructor(
    private readonly id: string,
    private readonly title: string,
  ) {}
  add(status: CheckStatus, found: string, fix?: string): this {
    this.items.push({ status, found, fix });
    return this;
  }
  get empty(): boolean {
    return this.items.length === 0;
  }
  result(): CheckResult {
    const status = worst(this.items.map((i) => i.status));
    // The findings that matter first: failures, then warnings, then the rest.
    const ordered = [...this.items].sort((a, b) => RANK[b.status] - RANK[a.status]);
    const fixes = ordered.filter((i) => i.fix !== undefined && (i.status === 'warn' || i.status === 'fail'));
    return {
      id: this.id,
      title: this.title,
      status,
      found: ordered.map((i) => i.found).join('\n'),
      ...(fixes.length > 0 ? { fix: fixes.map((i) => i.fix).join('\n') } : {}),
    };
  }
}

function skip(id: string, title: string, found: string): CheckResult {
  return { id, title, status: 'skip', found };
}

function days(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function modeText(mode: number): string {
  return (mode & 0o777).toString(8).padStart(3, '0');
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

// ── Files and folders ─────────────────────────────────────────────────────────────────────────────────────────

/** A folder mcp-pa writes into: missing (made at start), not a folder, not writable, or readable by others. */
async function folderFindings(f: Findings, dir: string, what: string, madeBy: string): Promise<boolean> {
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      f.add('ok', `${what} ${dir} does not exist yet: ${madeBy} makes it (owner-only)`);
      return false;
    }
    f.add(
      'fail',
      `${what} ${dir} cannot be examined (${errnoCode(err) ?? (err as Error).message})`,
      `let the user running mcp-pa reach ${dir} (chown and chmod 700 it), or choose another folder`,
    );
    return false;
  }
  if (!info.isDirectory()) {
    f.add(
      'fail',
      `${what} ${dir} is not a folder`,
      `remove or rename ${dir}, or point the setting at a folder`,
    );
    return false;
  }
  try {
    await access(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    f.add(
      'fail',
      `${what} ${dir} is not writable by this user`,
      `make it writable by the user running mcp-pa: chown that user ${dir} && chmod 700 ${dir}`,
    );
    return true;
  }
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    f.add('warn', `${what} ${dir} is open to other users (mode ${modeText(info.mode)})`, `chmod 700 ${dir}`);
  } else {
    f.add(
      'ok',
      `${what} ${dir} is writable${process.platform !== 'win32' ? ` and owner-only (mode ${modeText(info.mode)})` : ''}`,
    );
  }
  return true;
}

/** A secret file (database, key): readable and writable here, and not open to other users. */
async function privateFileFindings(f: Findings, file: string, what: string): Promise<boolean> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    f.add(
      'fail',
      `${what} ${file} cannot be examined (${errnoCode(err) ?? (err as Error).message})`,
      `let the user running mcp-pa read and write it: chown that user ${file} && chmod 600 ${file}`,
    );
    return false;
  }
  if (!info.isFile()) {
    f.add(
      'fail',
      `${what} ${file} is not a file`,
      `remove or rename ${file}, or point the setting at a file`,
    );
    return false;
  }
  try {
    await access(file, fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    f.add(
      'fail',
      `${what} ${file} is not readable and writable by this user`,
      `chown the user running mcp-pa ${file} && chmod 600 ${file}`,
    );
    return true;
  }
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    f.add(
      'warn',
      `${what} ${file} is open to other users (mode ${modeText(info.mode)})`,
      `chmod 600 ${file}`,
    );
  }
  return true;
}

// ── Configuration and start rules ─────────────────────────────────────────────────────────────────────────────

function configFailure(err: ConfigError, http: boolean): CheckResult {
  const localOnly = err.problems.some((p) => /local mode stores data in SQLite/.test(p.message));
  return {
    id: 'config',
    title: 'configuration',
    status: 'fail',
    found: err.message,
    fix:
      'correct each setting where the brackets say it came from ([from env …], [from flag …], or the file); ' +
      'docs/configuration.md lists every key, and `mcp-pa config check` prints the effective configuration' +
      (localOnly && !http ? '. To check HTTP mode as `mcp-pa serve` runs it: mcp-pa doctor --http' : ''),
  };
}

function configLoaded(config: Config, forced: boolean): CheckResult {
  const from = config.config_file !== undefined ? `${config.config_file}, ` : '';
  return {
    id: 'config',
    title: 'configuration',
    status: 'ok',
    found:
      `loaded (${from}environment, flags): ${config.mode === 'http' ? 'HTTP' : 'local'} mode` +
      (forced
        ? ' (as mcp-pa serve runs it)'
        : config.mode === 'local'
          ? '; `mcp-pa doctor --http` checks HTTP mode'
          : ''),
  };
}

function startRules(config: Config, dev: boolean): { result: CheckResult; plan: HttpPlan | null } {
  const f = new Findings('start-rules', 'start rules');
  let plan: HttpPlan;
  try {
    plan = planHttpStartup(config, { dev });
  } catch (err) {
    if (!(err instanceof StartupError)) throw err;
    const problems = err.message
      .replace(/^cannot start HTTP mode:\s*/, '')
      .split('\n')
      .map((l) => l.replace(/^\s*-\s*/, '').trim())
      .filter(Boolean);
    f.add(
      'fail',
      `mcp-pa serve${dev ? ' --dev' : ''} refuses this configuration (exit code 2): ${problems.length} problem${problems.length === 1 ? '' : 's'}`,
      problems.map((p) => `- ${p}`).join('\n'),
    );
    return { result: f.result(), plan: null };
  }
  f.add(
    'ok',
    `mcp-pa serve${dev ? ' --dev' : ''} accepts this configuration: ${plan.host} port ${plan.port}, ` +
      `TLS ${plan.tls.kind === 'files' ? 'from files' : plan.tls.kind === 'dev' ? 'with the development certificate' : 'off'}`,
  );
  for (const w of plan.warnings) {
    if (/PGlite/.test(w)) {
      f.add(
        'warn',
        w.replace(/; set MCP_DATABASE_URL.*$/, ''),
        'for production set MCP_DATABASE_URL (database.connection_string) to a PostgreSQL 15+ server with ' +
          'pgvector (docs/http-mode.md); the embedded database is for trying mcp-pa out',
      );
    } else if (/behind the TLS-terminating proxies/.test(w)) {
      f.add(
        'warn',
        w,
        'let nothing but those proxies reach this port (a firewall rule, or a private network)',
      );
    } else {
      f.add(
        'warn',
        w,
        'for anything but local development serve TLS: set MCP_TLS_CERT and MCP_TLS_KEY, or run mcp-pa serve --dev',
      );
    }
  }
  return { result: f.result(), plan };
}

// ── Database (HTTP mode) ──────────────────────────────────────────────────────────────────────────────────────

function databaseFix(message: string): string {
  const fix = /Fix: (.*?)\.?$/.exec(message)?.[1];
  if (fix !== undefined) return fix;
  if (/cannot reach PostgreSQL/.test(message))
    return (
      'start PostgreSQL, or correct the host and port in MCP_DATABASE_URL (database.connection_string); check ' +
      'that the server listens on that address (listen_addresses) and that no firewall is in the way'
    );
  if (/rejected the password/.test(message))
    return 'correct the user name and password in MCP_DATABASE_URL (database.connection_string)';
  if (/refused user/.test(message))
    return 'create the role (CREATE ROLE name LOGIN PASSWORD …), or allow this connection in pg_hba.conf and reload PostgreSQL';
  if (/does not exist on PostgreSQL/.test(message))
    return 'create the database (createdb NAME, or CREATE DATABASE as a superuser), or correct its name in MCP_DATABASE_URL';
  if (/newer mcp-pa/.test(message))
    return 'upgrade mcp-pa to the version that wrote this database or later (npm install -g mcp-pa@latest); never start an older one on it';
  if (/mcp-pa needs PostgreSQL 15/.test(message)) return 'upgrade PostgreSQL to 15 or later, with pgvector';
  if (/may not create the extension/.test(message))
    return 'ask a superuser to run CREATE EXTENSION vector; in that database (once)';
  if (/lacks a privilege|may not create the roles|would bypass row-level security/.test(message))
    return 'connect as the owner of the database, or run as a superuser the statements the message names';
  if (/embedded PGlite/.test(message))
    return 'make the folder writable by the user running mcp-pa (chown, chmod 700), and stop any other mcp-pa process using it (PGlite allows one process)';
  return 'do what the message says, then run mcp-pa doctor again';
}

/** Whether something accepts connections on the server's port (on PGlite: the server, holding the database). */
function listening(host: string, port: number): Promise<boolean> {
  const target = ['0.0.0.0', '::', '[::]'].includes(host) ? '127.0.0.1' : host.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve) => {
    const socket = netConnect({ host: target, port });
    const done = (answer: boolean): void => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

interface DatabaseOutcome {
  readonly result: CheckResult;
  readonly store: PostgresStore | null;
  readonly pgvector: string | null;
  readonly engine: 'postgresql' | 'pglite' | null;
}

async function databaseCheck(config: Config, logger: Logger, io: AdminIo): Promise<DatabaseOutcome> {
  const f = new Findings('database', 'database');
  const { database, problems } = planDatabase(config);
  if (problems.length > 0) {
    f.add(
      'fail',
      `the database cannot be planned: ${problems.length} problem${problems.length === 1 ? '' : 's'}`,
      problems.map((p) => `- ${p}`).join('\n'),
    );
    return { result: f.result(), store: null, pgvector: null, engine: null };
  }
  const where = describeDatabase(database);
  if (
    database.kind === 'pglite' &&
    config.server.port !== 0 &&
    (await listening(config.server.host, config.server.port))
  ) {
    return {
      result: skip(
        'database',
        'database',
        `${where} not opened: something listens on ${config.server.host} port ${config.server.port} (the server, ` +
          'presumably), and the embedded database allows one process; stop the server to check it',
      ),
      store: null,
      pgvector: null,
      engine: 'pglite',
    };
  }
  try {
    const { store, prepared } = await prepareAdminStore(config, logger, {
      onMigration: migrationProgress(io.stderr, io.stderrIsTerminal === true),
    });
    const applied =
      prepared.applied.length > 0
        ? `; migrated from schema ${LATEST_VERSION - prepared.applied.length} just now (applied ${prepared.applied.join(', ')})`
        : '';
    f.add('ok', `${where}: PostgreSQL ${prepared.serverMajor}, schema ${LATEST_VERSION} (current)${applied}`);
    return { result: f.result(), store, pgvector: prepared.pgvectorVersion, engine: database.kind };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    f.add(
      'fail',
      `${where}: ${message}`,
      err instanceof DatabaseStartupError
        ? databaseFix(message)
        : 'do what the message says, then run mcp-pa doctor again',
    );
    return { result: f.result(), store: null, pgvector: null, engine: database.kind };
  }
}

function reembedCommand(config: Config, http: boolean): string {
  return `mcp-pa reembed${http ? ' --http' : ''}${config.config_file !== undefined ? ` --config ${config.config_file}` : ''}`;
}

async function vectorsCheck(
  config: Config,
  db: DatabaseOutcome,
  logger: Logger,
  http: boolean,
): Promise<CheckResult> {
  const f = new Findings('vectors', 'pgvector');
  if (db.store === null || db.pgvector === null) {
    return skip('vectors', 'pgvector', 'not checked: the database was not opened');
  }
  const version = db.pgvector;
  const provider = createEmbeddingProvider(config, logger);
  if (provider === undefined) {
    f.add('ok', `pgvector ${version} is installed; semantic search is off (features.vector_search)`);
    return f.result();
  }
  try {
    if (hasIterativeScan(version)) {
      f.add('ok', `pgvector ${version} (iterative index scans)`);
    } else {
      f.add(
        'warn',
        `pgvector ${version} is older than 0.8: filtered vector searches may return fewer neighbours than asked`,
        "upgrade pgvector to 0.8 or later (your distribution's postgresql-<major>-pgvector package, or " +
          'scripts/setup-postgres.sh), then run ALTER EXTENSION vector UPDATE; in the database',
      );
    }
    const store = db.store;
    const expression = vectorExpression(provider.dimensions);
    if (expression !== null) {
      const found = await store.withServerState(
        async (sql) =>
          (
            await sql.query('SELECT 1 FROM pg_catalog.pg_indexes WHERE indexname = $1', [
              expression.indexName,
            ])
          ).rows.length > 0,
      );
      if (found) {
        f.add(
          'ok',
          `embeddings ${provider.model} (${provider.dimensions} dimensions): index ${expression.indexName} exists`,
        );
      } else {
        f.add(
          'warn',
          `embeddings ${provider.model} (${provider.dimensions} dimensions): the vector index ${expression.indexName} does not exist yet, so semantic searches scan every vector`,
          `start the server (it builds the index; minutes when many vectors exist), or run ${reembedCommand(config, http)}`,
        );
      }
    }
    const waiting = await store.itemsWaitingForVectors(provider.model, WAITING_BOUND);
    if (waiting > 0) {
      f.add(
        'warn',
        `${waiting >= WAITING_BOUND ? 'at least ' : ''}${waiting} item${waiting === 1 ? '' : 's'} lack a vector for ${provider.model}: semantic search misses them until they are embedded`,
        `run ${reembedCommand(config, http)} (the server also embeds them in the background)`,
      );
    } else {
      f.add('ok', `every item has a vector for ${provider.model}`);
    }
  } finally {
    provider.close?.();
  }
  return f.result();
}

// ── TLS ───────────────────────────────────────────────────────────────────────────────────────────────────────

function tlsFix(err: TlsMaterialError): string {
  const m = err.message;
  if (/does not exist/.test(m))
    return `correct the path, or put the PEM file at ${err.file} (MCP_TLS_CERT / MCP_TLS_KEY, server.tls_cert / server.tls_key)`;
  if (/permission denied/.test(m))
    return `let the user running mcp-pa read ${err.file}: chown that user ${err.file} (and chmod 600 for a key)`;
  if (/swapped/.test(m))
    return 'swap the values of MCP_TLS_CERT and MCP_TLS_KEY (server.tls_cert / server.tls_key)';
  if (/encrypted with a passphrase/.test(m))
    return `decrypt the key: openssl pkey -in ${err.file} -out ${err.file}.plain && chmod 600 ${err.file}.plain, then point MCP_TLS_KEY at it`;
  if (/does not belong to the certificate/.test(m))
    return (
      'point MCP_TLS_KEY (server.tls_key) at the private key the certificate was issued for — ' +
      '`openssl x509 -noout -pubkey -in CERT` and `openssl pkey -pubout -in KEY` print the same key when they ' +
      'match — or have the certificate reissued for this key'
    );
  if (/expired on/.test(m))
    return `renew the certificate (e.g. certbot renew, or ask your CA), install it at ${err.file}, then send SIGHUP to the server or restart it`;
  if (/not yet valid/.test(m))
    return "check this machine's clock (timedatectl; enable NTP), or wait until the certificate's start date";
  if (/not PEM|DER/.test(m))
    return `convert ${err.file} to PEM: openssl x509 -inform der -in FILE -out FILE.pem (certificate) or openssl pkey -inform der -in FILE -out FILE.pem (key)`;
  if (/refused by OpenSSL/.test(m))
    return 'use a certificate and key OpenSSL accepts with TLS 1.2+ (RSA of 2048 bits or more, or ECDSA P-256/P-384)';
  return `replace ${err.file} with a valid PEM file, then run mcp-pa doctor again`;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The chain's order (each certificate issued by the next) and the name clients use. */
function chainAndNameFindings(f: Findings, material: TlsMaterial, config: Config): void {
  const certs = (material.cert.match(CERT_BLOCK) ?? []).map((b) => new X509Certificate(b));
  let chained = true;
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i] as X509Certificate;
    const parent = certs[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      chained = false;
      f.add(
        'fail',
        `certificate ${i + 2} in ${material.certFile} (${parent.subject.replace(/\n/g, ', ')}) did not issue certificate ${i + 1} (${child.subject.replace(/\n/g, ', ')}): clients cannot build the chain`,
        `order ${material.certFile} as the server certificate first, then each intermediate CA certificate (the one that issued the previous), e.g. the fullchain.pem your CA gave`,
      );
      break;
    }
  }
  if (chained && certs.length > 1) f.add('ok', `chain of ${certs.length} certificates in order`);
  const leaf = certs[0];
  if (leaf === undefined) return;
  const publicUrl = config.server.public_url;
  const host =
    publicUrl !== undefined ? new URL(publicUrl).hostname.replace(/^\[(.*)\]$/, '$1') : config.server.host;
  if (['0.0.0.0', '::', '[::]'].includes(host)) return;
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const covered = isIP(bare) !== 0 ? leaf.checkIP(bare) !== undefined : leaf.checkHost(bare) !== undefined;
  if (covered) {
    f.add('ok', `covers ${bare}${publicUrl !== undefined ? ' (server.public_url)' : ' (server.host)'}`);
  } else {
    f.add(
      publicUrl !== undefined ? 'fail' : 'warn',
      `the certificate does not cover ${bare}, the name clients use (${publicUrl !== undefined ? `server.public_url ${publicUrl}` : 'server.host'}); its names: ${material.subjectAltName ?? material.subject}`,
      `have the certificate issued for ${bare} (a subjectAltName), or set server.public_url (MCP_PUBLIC_URL) to a name it covers`,
    );
  }
}

async function tlsCheck(config: Config, dev: boolean, now: Date): Promise<CheckResult> {
  const f = new Findings('tls', 'certificate');
  const { tls_cert: certFile, tls_key: keyFile } = config.server;
  let files: { certFile: string; keyFile: string };
  if (dev) {
    const { devCertificatePaths } = await import('../security/dev-certificate.js');
    files = devCertificatePaths(config.data_dir);
    try {
      await stat(files.certFile);
    } catch {
      return {
        id: 'tls',
        title: 'certificate',
        status: 'ok',
        found: `no development certificate yet: mcp-pa serve --dev makes one in ${path.dirname(files.certFile)}`,
      };
    }
  } else if (certFile !== undefined && keyFile !== undefined && config.transport !== 'http') {
    files = { certFile, keyFile };
  } else {
    return skip(
      'tls',
      'certificate',
      certFile === undefined && keyFile === undefined
        ? 'no certificate configured (MCP_TLS_CERT, MCP_TLS_KEY): the start rules say whether that is allowed here'
        : 'incomplete or unused TLS settings: see the start rules',
    );
  }
  const warnings: string[] = [];
  let material: TlsMaterial;
  try {
    material = await loadTlsMaterial(files.certFile, files.keyFile, {
      now,
      warn: (message) => warnings.push(message),
    });
  } catch (err) {
    if (!(err instanceof TlsMaterialError)) throw err;
    if (dev && /expired on/.test(err.message)) {
      f.add(
        'ok',
        `${err.message.replace(/; renew it.*$/, '')}: mcp-pa serve --dev makes a new one at its next start`,
      );
      return f.result();
    }
    f.add('fail', err.message, tlsFix(err));
    return f.result();
  }
  const left = days(material.validTo.getTime() - now.getTime());
  f.add(
    'ok',
    `${material.certFile}: ${material.subject}, issued by ${material.issuer}, valid until ${isoDay(material.validTo)} (${left} day${left === 1 ? '' : 's'} left)`,
  );
  for (const w of warnings) {
    if (/expires on/.test(w)) {
      if (dev)
        f.add(
          'ok',
          `${w.replace(/: renew it.*$/, '')}: mcp-pa serve --dev makes a new one at its next start`,
        );
      else
        f.add(
          'warn',
          w.replace(/: renew it.*$/, ` (warned from ${EXPIRY_WARNING_DAYS} days)`),
          `renew the certificate (e.g. certbot renew, or ask your CA), install it at ${material.certFile}, then send SIGHUP to the server (or restart it)`,
        );
    } else if (/readable by other users/.test(w)) {
      f.add('warn', w.replace(/: chmod 600 it$/, ''), `chmod 600 ${material.keyFile}`);
    } else {
      f.add('warn', w, 'do what the message says');
    }
  }
  chainAndNameFindings(f, material, config);
  return f.result();
}

async function clientCaCheck(config: Config, now: Date): Promise<CheckResult> {
  const file = config.server.tls_client_ca;
  if (file === undefined) {
    return skip(
      'client-ca',
      'client CA',
      'not set (server.tls_client_ca): client certificates are not asked for',
    );
  }
  const f = new Findings('client-ca', 'client CA');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    f.add(
      'fail',
      `the client certificate CA file ${file} cannot be read (${errnoCode(err) ?? (err as Error).message})`,
      `put the PEM file of the CA that issues client certificates at ${file} (readable by mcp-pa), or correct MCP_TLS_CLIENT_CA`,
    );
    return f.result();
  }
  const blocks = text.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    f.add(
      'fail',
      `${file} holds no "-----BEGIN CERTIFICATE-----" block`,
      `put the PEM certificate of the CA that issues client certificates in ${file}`,
    );
    return f.result();
  }
  for (const [i, block] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      f.add(
        'fail',
        `certificate ${i + 1} in ${file} cannot be parsed (${(err as Error).message})`,
        `replace ${file} with the CA's PEM certificate`,
      );
      continue;
    }
    const subject = cert.subject.replace(/\n/g, ', ');
    const validTo = new Date(cert.validTo);
    const left = days(validTo.getTime() - now.getTime());
    if (!cert.ca) {
      f.add(
        'fail',
        `certificate ${i + 1} in ${file} (${subject}) is not a CA certificate (basicConstraints CA:FALSE), so no client certificate verifies against it`,
        `put the certificate of the CA that issued the client certificates in ${file}, not a client's own certificate`,
      );
    } else if (validTo.getTime() < now.getTime()) {
      f.add(
        'fail',
        `the client CA ${subject} in ${file} expired on ${isoDay(validTo)}: no client certificate verifies`,
        `renew the CA certificate (and reissue client certificates if its key changed), install it at ${file}, then restart the server`,
      );
    } else if (left < EXPIRY_WARNING_DAYS) {
      f.add(
        'warn',
        `the client CA ${subject} in ${file} expires on ${isoDay(validTo)}, in ${left} day(s)`,
        `renew the CA certificate before then, install it at ${file}, then restart the server`,
      );
    } else {
      f.add('ok', `client CA ${subject}, valid until ${isoDay(validTo)}`);
    }
  }
  return f.result();
}

// ── Signing keys ──────────────────────────────────────────────────────────────────────────────────────────────

async function keysCheck(config: Config, store: PostgresStore | null, now: Date): Promise<CheckResult> {
  const auth = config.authentication;
  if (!auth.enabled) return skip('keys', 'signing keys', 'authentication is off: no tokens are signed');
  if (usesExternalIssuer(config)) {
    return skip(
      'keys',
      'signing keys',
      `tokens come from the external issuer ${String(auth.issuer)}, which signs them`,
    );
  }
  const f = new Findings('keys', 'signing keys');
  let secret: string | null = null;
  if (auth.secret_key !== undefined) {
    secret = auth.secret_key;
    f.add('ok', 'server secret configured (authentication.secret_key, MCP_SECRET_KEY)');
  } else if (!isLoopbackHost(config.server.host)) {
    f.add(
      'fail',
      `no server secret, and server.host ${config.server.host} is not a loopback address (every replica needs the same secret)`,
      'set MCP_SECRET_KEY (authentication.secret_key) on every replica to the same secret, e.g. the output of `openssl rand -base64 48`',
    );
  } else {
    const file = path.join(config.data_dir, SECRET_FILE);
    const present = await privateFileFindings(f, file, 'server secret file');
    if (!present) {
      f.add('ok', `no server secret yet: the first server start makes ${file} (owner-only)`);
    } else {
      try {
        const text = (await readFile(file, 'utf8')).trim();
        if (text.length < 32) {
          f.add(
            'fail',
            `${file} holds a secret shorter than 32 characters`,
            `delete ${file} to have a new one made (existing signing keys then become unreadable), or set MCP_SECRET_KEY`,
          );
        } else {
          secret = text;
          f.add('ok', `server secret in ${file}`);
        }
      } catch {
        // reported by privateFileFindings
      }
    }
  }
  if (store === null) {
    f.add('skip', 'signing keys not checked: the database was not opened');
    return f.result();
  }
  // Listing reads no key material, so a placeholder secret does for it; decrypting (load) needs the real one.
  const keys = new KeyStore(store, secret ?? PLACEHOLDER_SECRET);
  const listed = await keys.list();
  if (listed.length === 0) {
    f.add('ok', 'no signing key yet: the first server start makes one');
    return f.result();
  }
  if (secret === null) {
    f.add(
      'fail',
      `${listed.length} signing key(s) exist, but there is no server secret to read them with`,
      'set MCP_SECRET_KEY (authentication.secret_key) to the secret the keys were made with',
    );
    return f.result();
  }
  try {
    await keys.load();
  } catch (err) {
    if (err instanceof KeyDecryptionError) {
      f.add(
        'fail',
        'the signing keys in the database do not decrypt with this server secret',
        'set MCP_SECRET_KEY to the secret they were made with (or, to start over, delete the rows of oauth_keys: every issued token then stops working)',
      );
      return f.result();
    }
    throw err;
  }
  const active = listed.find((k) => k.state === 'active');
  const retiring = listed.filter((k) => k.state === 'retiring').length;
  if (active === undefined) {
    f.add(
      'warn',
      'no active signing key (only retiring ones)',
      'run mcp-pa keys rotate (or start the server: it makes one)',
    );
    return f.result();
  }
  const age = days(now.getTime() - new Date(active.createdAt).getTime());
  const about = `active key ${active.kid} (${active.alg}), made ${active.createdAt.slice(0, 10)}, ${age} day${age === 1 ? '' : 's'} old${retiring > 0 ? `; ${retiring} retiring` : ''}`;
  if (age > KEY_AGE_WARNING_DAYS) {
    f.add(
      'warn',
      `${about}: older than ${KEY_AGE_WARNING_DAYS} days`,
      'run mcp-pa keys rotate: the new key signs from then on, and the previous one stays published for the token lifetime + 5 minutes, so no token breaks',
    );
  } else {
    f.add('ok', about);
  }
  return f.result();
}

// ── Issuer and clock ──────────────────────────────────────────────────────────────────────────────────────────

function urlHost(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return bare.includes(':') ? `[${bare}]` : bare;
}

interface IssuerOutcome {
  readonly result: CheckResult;
  /** The issuer's clock minus ours (ms), from its Date header, with the uncertainty of the measure. */
  readonly skew: { readonly ms: number; readonly within: number; readonly url: string } | null;
}

const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME|certificate/i;

function causeOf(err: unknown): { code: string | undefined; message: string } {
  let current: unknown = err;
  let code: string | undefined;
  let message = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    code = errnoCode(current) ?? code;
    if (current.message && current.message !== 'fetch failed') message = current.message;
    current = current.cause;
  }
  return { code, message };
}

async function issuerCheck(config: Config, plan: HttpPlan | null): Promise<IssuerOutcome> {
  const auth = config.authentication;
  if (!auth.enabled) {
    return { result: skip('issuer', 'issuer', 'authentication is off: no issuer'), skew: null };
  }
  const external = usesExternalIssuer(config);
  const scheme = plan?.tls.kind === 'none' ? 'http' : 'https';
  const publicUrl = config.server.public_url;
  const issuer = external
    ? (auth.issuer as string)
    : publicUrl !== undefined
      ? new URL(publicUrl).origin
      : `${scheme}://${urlHost(config.server.host)}:${config.server.port}`;
  const url = new URL(issuer);
  const issuerPath = url.pathname === '/' ? '' : url.pathname;
  const candidates = external
    ? [`${url.origin}${AS_METADATA_PATH}${issuerPath}`, `${issuer.replace(/\/$/, '')}${OIDC_METADATA_PATH}`]
    : [`${issuer}${AS_METADATA_PATH}`];
  const f = new Findings('issuer', 'issuer');
  let doFetch;
  try {
    doFetch = createTrustedFetch({
      allowOrigins: [url.origin],
      caFile: auth.metadata_fetch_ca,
      timeoutMs: FETCH_TIMEOUT_MS,
    });
  } catch (err) {
    f.add(
      'fail',
      `authentication.metadata_fetch_ca ${String(auth.metadata_fetch_ca)} cannot be read (${errnoCode(err) ?? (err as Error).message})`,
      'put the PEM file of the CA at that path, or unset authentication.metadata_fetch_ca',
    );
    return { result: f.result(), skew: null };
  }
  const fetchImpl = doFetch ?? fetch;
  const startHint = external
    ? `check that ${issuer} is up and reachable from here (DNS, firewall, proxy), and that authentication.issuer (MCP_OAUTH_ISSUER) is its exact issuer URL`
    : `start the server (mcp-pa serve${plan?.tls.kind === 'dev' ? ' --dev' : ''}) and run mcp-pa doctor again${publicUrl !== undefined ? `; behind a proxy, check that ${publicUrl} reaches it` : ''}`;
  const problems: { found: string; fix: string }[] = [];
  let skew: IssuerOutcome['skew'] = null;
  for (const candidate of candidates) {
    const t0 = Date.now();
    let response: Response;
    try {
      response = await fetchImpl(candidate, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
    } catch (err) {
      const { code, message } = causeOf(err);
      const tls = CERT_ERRORS.test(`${code ?? ''} ${message}`);
      problems.push({
        found: `${candidate}: ${code !== undefined && !message.includes(code) ? `${code}: ` : ''}${message}`,
        fix: tls
          ? `make the server present a certificate clients trust: the full chain (server certificate, then intermediates) for the name in ${issuer}; for a private CA set authentication.metadata_fetch_ca to its PEM file here and give clients the CA too`
          : startHint,
      });
      continue;
    }
    const t1 = Date.now();
    const date = response.headers.get('date');
    const dateMs = date !== null ? Date.parse(date) : Number.NaN;
    if (!Number.isNaN(dateMs)) {
      // The Date header has a resolution of one second: the issuer's clock read dateMs … dateMs + 999.
      skew = { ms: dateMs + 500 - (t0 + t1) / 2, within: 500 + (t1 - t0) / 2, url: candidate };
    }
    if (!response.ok) {
      await response.body?.cancel();
      problems.push({
        found: `${candidate}: HTTP ${response.status}`,
        fix: external
          ? `check that authentication.issuer (MCP_OAUTH_ISSUER) is the issuer's exact URL: its metadata must be at ${candidate}`
          : 'check that this URL reaches mcp-pa (a proxy must forward /.well-known/ too)',
      });
      continue;
    }
    let meta: Record<string, unknown>;
    try {
      meta = (await response.json()) as Record<string, unknown>;
      if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new Error('not an object');
    } catch {
      problems.push({
        found: `${candidate}: the answer is not a JSON object`,
        fix: 'check that this URL reaches the authorization server, not another site or an error page',
      });
      continue;
    }
    const stated = meta['issuer'];
    if (stated !== issuer) {
      problems.push({
        found: `${candidate}: its metadata names the issuer ${JSON.stringify(stated)}, not ${issuer}; clients refuse such metadata (RFC 8414)`,
        fix: external
          ? `set authentication.issuer (MCP_OAUTH_ISSUER) to exactly ${typeof stated === 'string' ? stated : 'the issuer the metadata names'}`
          : `set server.public_url (MCP_PUBLIC_URL) to the URL clients use, so the server names the same issuer (it names ${JSON.stringify(stated)})`,
      });
      continue;
    }
    const methods = meta['code_challenge_methods_supported'];
    if (!Array.isArray(methods) || !methods.includes('S256')) {
      f.add(
        'fail',
        `${candidate}: the issuer ${issuer} does not advertise PKCE S256 (code_challenge_methods_supported: ${JSON.stringify(methods ?? null)}); MCP clients require it`,
        external
          ? 'turn on PKCE with S256 on the issuer (in Keycloak: the client\'s "Proof Key for Code Exchange Code Challenge Method" S256) so its metadata lists it'
          : 'set authentication.pkce_methods to include "S256"',
      );
      return { result: f.result(), skew };
    }
    f.add(
      'ok',
      `${candidate}: issuer ${issuer}, PKCE S256${typeof meta['token_endpoint'] === 'string' ? `, token endpoint ${meta['token_endpoint']}` : ''}`,
    );
    return { result: f.result(), skew };
  }
  for (const p of problems) f.add('fail', p.found, p.fix);
  return { result: f.result(), skew };
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return `${s >= 0 ? '+' : '−'}${Math.abs(s).toFixed(Math.abs(s) < 10 ? 1 : 0)} s`;
}

async function clockCheck(db: DatabaseOutcome, issuer: IssuerOutcome): Promise<CheckResult> {
  const f = new Findings('clock', 'clock');
  const compare = (what: string, skewMs: number, within: number, host: string): void => {
    // Only what is certainly beyond the measuring error counts.
    const certain = Math.max(0, Math.abs(skewMs) - within) / 1000;
    const text = `${what}'s clock is ${seconds(skewMs)} from this machine's (±${(within / 1000).toFixed(1)} s)`;
    const fix =
      `synchronise the clocks with NTP on this machine and on ${host} (timedatectl set-ntp true, or chrony): ` +
      `tokens' iat and exp are checked against the clock, and fail beyond a few minutes of skew`;
    if (certain > SKEW_FAILURE_S) f.add('fail', `${text}: more than ${SKEW_FAILURE_S} s`, fix);
    else if (certain > SKEW_WARNING_S) f.add('warn', `${text}: more than ${SKEW_WARNING_S} s`, fix);
    else f.add('ok', text);
  };
  if (db.store !== null && db.engine === 'postgresql') {
    const t0 = Date.now();
    const rows = await db.store.withServerState(
      async (sql) =>
        (
          await sql.query<{ ms: number | string }>(
            'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms',
          )
        ).rows,
    );
    const t1 = Date.now();
    const serverMs = Number(rows[0]?.ms);
    if (Number.isFinite(serverMs))
      compare('the database server', serverMs - (t0 + t1) / 2, (t1 - t0) / 2 + 1, 'the database server');
  } else if (db.store !== null) {
    f.add('ok', 'the embedded database runs on this machine’s clock');
  }
  if (issuer.skew !== null) {
    compare(
      `the issuer (${new URL(issuer.skew.url).origin})`,
      issuer.skew.ms,
      issuer.skew.within,
      "the issuer's host",
    );
  }
  if (f.empty)
    return skip(
      'clock',
      'clock',
      'nothing to compare with: neither the database server nor the issuer answered',
    );
  return f.result();
}

// ── Local mode ────────────────────────────────────────────────────────────────────────────────────────────────

async function sqliteChecks(config: Config, logger: Logger, http: boolean): Promise<CheckResult[]> {
  const file = config.database.path;
  const f = new Findings('database', 'database');
  const present = await privateFileFindings(f, file, 'SQLite database');
  if (!present && f.empty) {
    f.add('ok', `SQLite ${file} does not exist yet: the first start of mcp-pa makes it (owner-only)`);
    return [f.result(), skip('vectors', 'semantic search', 'not checked: no database yet')];
  }
  if (!present)
    return [f.result(), skip('vectors', 'semantic search', 'not checked: the database cannot be read')];
  const dir = path.dirname(file);
  try {
    await access(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    f.add(
      'fail',
      `the folder ${dir} is not writable: SQLite writes its -wal and -shm files beside the database`,
      `chown the user running mcp-pa ${dir} && chmod 700 ${dir}`,
    );
  }
  let current: number;
  let latest: number;
  try {
    const db = openSqliteDatabase(file, true);
    try {
      ({ current, latest } = schemaVersion(db));
    } finally {
      db.close();
    }
  } catch (err) {
    f.add(
      'fail',
      `SQLite ${file} cannot be opened: ${err instanceof Error ? err.message : String(err)}`,
      `check that ${file} is a SQLite database (not another file) and readable; restore it from its backup (database.sqlite.backup-…) if it is damaged`,
    );
    return [f.result(), skip('vectors', 'semantic search', 'not checked: the database cannot be opened')];
  }
  if (current > latest) {
    f.add(
      'fail',
      `SQLite ${file} was written by a newer mcp-pa (schema ${current}; this version knows ${latest})`,
      'upgrade mcp-pa to that version or later (npm install -g mcp-pa@latest, or npx -y mcp-pa@latest); never start an older one on it',
    );
    return [
      f.result(),
      skip('vectors', 'semantic search', 'not checked: the schema is newer than this version'),
    ];
  }
  f.add(
    'ok',
    `SQLite ${file}: schema ${current}${current < latest ? ` (the next start migrates it to ${latest})` : ' (current)'}`,
  );
  let legacy = false;
  try {
    const db = openReadonly(file);
    try {
      legacy = hasLegacyTables(db);
    } finally {
      db.close();
    }
  } catch {
    // opened above; nothing more to say
  }
  if (legacy) {
    f.add(
      'ok',
      'it holds tables of the original Python mcp-pa: each start backs the file up and imports what is not imported yet',
    );
  }
  return [f.result(), await localVectorsCheck(config, logger, current < latest, http)];
}

async function localVectorsCheck(
  config: Config,
  logger: Logger,
  outdated: boolean,
  http: boolean,
): Promise<CheckResult> {
  const provider = createEmbeddingProvider(config, logger);
  if (provider === undefined) {
    return {
      id: 'vectors',
      title: 'semantic search',
      status: 'ok',
      found: 'off (features.vector_search; embeddings.provider names a provider to turn it on)',
    };
  }
  try {
    if (outdated)
      return skip('vectors', 'semantic search', 'not checked: the schema is migrated at the next start');
    const store = new SqliteStore({ path: config.database.path, readonly: true });
    try {
      const pending = await store.hasPendingVectors(LOCAL_CALLER.tenant, provider.model);
      return pending
        ? {
            id: 'vectors',
            title: 'semantic search',
            status: 'warn',
            found: `embeddings ${provider.model} (${provider.dimensions} dimensions): some items lack a vector, so semantic search misses them`,
            fix: `run ${reembedCommand(config, http)} (mcp-pa also embeds them in the background while it runs)`,
          }
        : {
            id: 'vectors',
            title: 'semantic search',
            status: 'ok',
            found: `embeddings ${provider.model} (${provider.dimensions} dimensions): every item has a vector`,
          };
    } finally {
      await store.close();
    }
  } finally {
    provider.close?.();
  }
}

async function documentsCheck(config: Config): Promise<CheckResult> {
  const dir = config.documents.dir;
  if (dir === undefined)
    return skip('documents', 'documents folder', 'not set: document content is kept in the database');
  const f = new Findings('documents', 'documents folder');
  await folderFindings(f, dir, 'documents folder', 'the first upload');
  return f.result();
}

async function dataDirCheck(config: Config): Promise<CheckResult> {
  const f = new Findings('data-dir', 'data folder');
  await folderFindings(f, config.data_dir, 'data folder', 'the first start');
  return f.result();
}

// ── Report ────────────────────────────────────────────────────────────────────────────────────────────────────

function summarize(checks: readonly CheckResult[]): Record<CheckStatus, number> {
  const summary: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status]++;
  return summary;
}

/** The report as text: one block per check, status and title, what was found, and the fix. */
export function renderReport(report: DoctorReport): string {
  const titleWidth = Math.max(...report.checks.map((c) => c.title.length)) + 2;
  const indent = ' '.repeat(6 + titleWidth);
  const lines: string[] = [
    `mcp-pa ${report.version} doctor: ${report.mode === null ? 'configuration' : report.mode === 'http' ? 'HTTP mode' : 'local mode'}${report.configFile !== null ? `, ${report.configFile}` : ''}`,
    '',
  ];
  for (const c of report.checks) {
    const [first = '', ...rest] = c.found.split('\n');
    lines.push(`${c.status.padEnd(6)}${c.title.padEnd(titleWidth)}${first}`);
    for (const l of rest) lines.push(`${indent}${l}`);
    if (c.fix !== undefined) {
      const [fixFirst = '', ...fixRest] = c.fix.split('\n');
      lines.push(`${indent}fix: ${fixFirst}`);
      for (const l of fixRest) lines.push(`${indent}     ${l}`);
    }
  }
  const s = report.summary;
  const counts = `${s.fail} failed, ${s.warn} warning${s.warn === 1 ? '' : 's'}, ${s.ok} ok${s.skip > 0 ? `, ${s.skip} skipped` : ''}`;
  lines.push(
    '',
    s.fail > 0
      ? `${counts}: fix the failures, then run mcp-pa doctor again.`
      : s.warn > 0
        ? `${counts}: nothing stops mcp-pa; the warnings say what to improve.`
        : `${counts}: all good.`,
  );
  return lines.join('\n');
}

/** Runs every check that applies and returns the report (the exit code follows from report.ok). */
export async function runDoctor(
  options: { http: boolean; dev: boolean; version: string },
  load: ConfigLoader,
  io: AdminIo,
  now: () => Date = () => new Date(),
): Promise<DoctorReport> {
  const version = options.version;
  const checks: CheckResult[] = [];
  let config: Config;
  try {
    config = load(options.http || options.dev ? 'http' : undefined);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    checks.push(configFailure(err, options.http));
    return { version, mode: null, configFile: null, ok: false, summary: summarize(checks), checks };
  }
  checks.push(configLoaded(config, options.http || options.dev));
  const logger = createLogger(
    config.logging.level === 'info' || config.logging.level === 'warn' ? 'error' : config.logging.level,
    io.stderr,
  );

  if (config.mode === 'local') {
    checks.push(await dataDirCheck(config));
    checks.push(...(await sqliteChecks(config, logger, options.http)));
    checks.push(await documentsCheck(config));
  } else {
    const rules = startRules(config, options.dev);
    checks.push(rules.result);
    checks.push(await dataDirCheck(config));
    const db = await databaseCheck(config, logger, io);
    try {
      checks.push(db.result);
      checks.push(await vectorsCheck(config, db, logger, true));
      checks.push(await documentsCheck(config));
      checks.push(await tlsCheck(config, options.dev, now()));
      checks.push(await clientCaCheck(config, now()));
      checks.push(await keysCheck(config, db.store, now()));
      const issuer = await issuerCheck(config, rules.plan);
      checks.push(issuer.result);
      checks.push(await clockCheck(db, issuer));
    } finally {
      await db.store?.close();
    }
  }
  const summary = summarize(checks);
  return {
    version,
    mode: config.mode,
    configFile: config.config_file ?? null,
    ok: summary.fail === 0,
    summary,
    checks,
  };
}

/** `mcp-pa doctor …` (args: what follows `doctor`). Exit code 0 without failures, 1 with one, 2 usage error. */
export async function runDoctorCommand(args: string[], context: AdminContext, io: AdminIo): Promise<number> {
  let values;
  try {
    values = parseOptions(args, parserOptions(DOCTOR_HELP.options));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`mcp-pa doctor: ${err.message}\nRun mcp-pa doctor --help for its options.\n`);
    return EXIT_USAGE;
  }
  const report = await runDoctor(
    { http: values['http'] === true, dev: values['dev'] === true, version: context.version },
    context.load,
    io,
  );
  io.stdout.write(
    values['json'] === true ? `${JSON.stringify(report, null, 2)}\n` : `${renderReport(report)}\n`,
  );
  return report.ok ? EXIT_OK : EXIT_FAILURE;
}
