import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { configSchema, type ParsedConfig } from './schema.js';
import { suggest } from './suggest.js';

/** The effective, validated configuration. Frozen; nothing else in the program reads the environment. */
export interface Config {
  readonly mode: 'local' | 'http';
  readonly transport: 'stdio' | 'https' | 'http';
  readonly data_dir: string;
  /** The JSON file the configuration came from, if any. */
  readonly config_file: string | undefined;
  readonly server: Readonly<ParsedConfig['server']>;
  readonly database: Readonly<{
    type: 'sqlite' | 'postgresql' | 'pglite';
    path: string;
    connection_string: string | undefined;
    pool_size: number;
  }>;
  readonly authentication: Readonly<ParsedConfig['authentication'] & { enabled: boolean }>;
  readonly features: Readonly<{
    vector_search: boolean;
    multi_tenant: boolean;
    dynamic_client_registration: boolean;
  }>;
  readonly documents: Readonly<{
    dir: string | undefined;
    max_file_size_mb: number;
    max_file_size_bytes: number;
  }>;
  readonly embeddings: Readonly<{
    provider: 'none' | 'hash' | 'openai-compatible';
    /** Vector length (256 for hash unless set; always set for openai-compatible). */
    dimensions: number;
    base_url: string | undefined;
    model: string | undefined;
    /** Secret: redactConfig replaces it. */
    api_key: string | undefined;
    send_dimensions: boolean;
    timeout_ms: number;
    max_retries: number;
    batch_size: number;
    relevance_floor: number | undefined;
  }>;
  readonly assistant: Readonly<{ timezone: string | undefined }>;
  readonly security: Readonly<ParsedConfig['security']>;
  readonly logging: Readonly<ParsedConfig['logging']>;
  readonly metrics: Readonly<ParsedConfig['metrics']>;
}

/** `list`: comma-separated strings (blank entries dropped). */
type ValueKind = 'string' | 'integer' | 'number' | 'boolean' | 'list';

/** One environment variable and the configuration key it sets. */
export interface EnvBinding {
  readonly name: string;
  readonly key: readonly string[];
  readonly kind: ValueKind;
  readonly aliases?: readonly string[];
  readonly description: string;
}

/** Every variable the program reads. `MCP_CONFIG` names the JSON file and is handled separately. */
export const ENV_BINDINGS: readonly EnvBinding[] = [
  { name: 'MCP_MODE', key: ['mode'], kind: 'string', description: 'local or http' },
  { name: 'MCP_TRANSPORT', key: ['transport'], kind: 'string', description: 'stdio, https or http' },
  { name: 'MCP_DATA_DIR', key: ['data_dir'], kind: 'string', description: 'data folder' },
  {
    name: 'MCP_DATABASE_TYPE',
    key: ['database', 'type'],
    kind: 'string',
    description: 'sqlite, postgresql or pglite',
  },
  {
    name: 'MCP_DATABASE_PATH',
    key: ['database', 'path'],
    kind: 'string',
    aliases: ['MCP_PA_DB_PATH'],
    description: 'SQLite database file',
  },
  {
    name: 'MCP_DATABASE_URL',
    key: ['database', 'connection_string'],
    kind: 'string',
    description: 'PostgreSQL connection URL',
  },
  {
    name: 'MCP_DATABASE_POOL_SIZE',
    key: ['database', 'pool_size'],
    kind: 'integer',
    description: 'pool size',
  },
  { name: 'MCP_HOST', key: ['server', 'host'], kind: 'string', description: 'HTTP bind address' },
  { name: 'MCP_PORT', key: ['server', 'port'], kind: 'integer', description: 'HTTP port' },
  { name: 'MCP_PUBLIC_URL', key: ['server', 'public_url'], kind: 'string', description: 'public URL' },
  {
    name: 'MCP_TLS_CLIENT_CA',
    key: ['server', 'tls_client_ca'],
    kind: 'string',
    description: 'client certificate CA file',
  },
  { name: 'MCP_TLS_CERT', key: ['server', 'tls_cert'], kind: 'string', description: 'TLS certificate file' },
  { name: 'MCP_TLS_KEY', key: ['server', 'tls_key'], kind: 'string', description: 'TLS private key file' },
  {
    name: 'MCP_TLS_REQUIRED',
    key: ['server', 'tls_required'],
    kind: 'boolean',
    description: 'refuse to serve without TLS (false: plain HTTP, loopback only)',
  },
  {
    name: 'MCP_SESSIONS',
    key: ['server', 'sessions'],
    kind: 'string',
    description: 'stateful or stateless MCP sessions',
  },
  {
    name: 'MCP_TRUST_PROXY',
    key: ['server', 'trust_proxy'],
    kind: 'list',
    description: 'trusted proxy addresses/CIDRs, comma-separated',
  },
  {
    name: 'MCP_HTTP_REDIRECT_PORT',
    key: ['server', 'http_redirect_port'],
    kind: 'integer',
    description: 'plain-HTTP redirect listener port',
  },
  {
    name: 'MCP_REDIS_URL',
    key: ['security', 'redis_url'],
    kind: 'string',
    description: 'Redis URL for shared rate limits (secret)',
  },
  {
    name: 'MCP_REDIS_KEY_PREFIX',
    key: ['security', 'redis_key_prefix'],
    kind: 'string',
    description: 'prefix of the rate-limit keys in Redis',
  },
  {
    name: 'MCP_RATE_LIMIT_MCP',
    key: ['security', 'mcp_requests_per_minute'],
    kind: 'integer',
    description: '/mcp requests per user and client per minute',
  },
  {
    name: 'MCP_AUDIT_RETENTION_DAYS',
    key: ['security', 'audit_retention_days'],
    kind: 'integer',
    description: 'audit retention (days)',
  },
  {
    name: 'MCP_ALLOWED_ORIGINS',
    key: ['server', 'allowed_origins'],
    kind: 'list',
    description: 'browser origins allowed on /mcp, comma-separated',
  },
  {
    name: 'MCP_BODY_LIMIT_MB',
    key: ['server', 'body_limit_mb'],
    kind: 'number',
    description: 'largest /mcp request body (MiB)',
  },
  {
    name: 'MCP_MAX_SESSIONS',
    key: ['server', 'max_sessions'],
    kind: 'integer',
    description: 'stateful sessions kept at once',
  },
  {
    name: 'MCP_SESSION_IDLE_TIMEOUT',
    key: ['server', 'session_idle_timeout_s'],
    kind: 'integer',
    description: 'idle session lifetime (s)',
  },
  {
    name: 'MCP_SHUTDOWN_GRACE',
    key: ['server', 'shutdown_grace_s'],
    kind: 'number',
    description: 'drain time on shutdown (s)',
  },
  {
    name: 'MCP_OAUTH_ISSUER',
    key: ['authentication', 'issuer'],
    kind: 'string',
    description: 'OAuth issuer URL',
  },
  {
    name: 'MCP_SECRET_KEY',
    key: ['authentication', 'secret_key'],
    kind: 'string',
    description: 'server secret (secret)',
  },
  {
    name: 'MCP_TOKEN_EXPIRY',
    key: ['authentication', 'token_expiry'],
    kind: 'integer',
    description: 'access token lifetime (s)',
  },
  {
    name: 'MCP_VECTOR_SEARCH',
    key: ['features', 'vector_search'],
    kind: 'boolean',
    description: 'semantic search on/off',
  },
  {
    name: 'MCP_DOCS_DIR',
    key: ['documents', 'dir'],
    kind: 'string',
    aliases: ['MCP_PA_DOCS_DIR'],
    description: 'document content folder',
  },
  {
    name: 'MCP_MAX_FILE_SIZE_MB',
    key: ['documents', 'max_file_size_mb'],
    kind: 'number',
    aliases: ['MCP_PA_MAX_FILE_SIZE_MB'],
    description: 'upload size limit (MiB)',
  },
  {
    name: 'MCP_EMBEDDINGS_PROVIDER',
    key: ['embeddings', 'provider'],
    kind: 'string',
    description: 'none, hash or openai-compatible',
  },
  {
    name: 'MCP_EMBEDDINGS_BASE_URL',
    key: ['embeddings', 'base_url'],
    kind: 'string',
    description: 'embeddings API base URL',
  },
  {
    name: 'MCP_EMBEDDINGS_MODEL',
    key: ['embeddings', 'model'],
    kind: 'string',
    description: 'embedding model',
  },
  {
    name: 'MCP_EMBEDDINGS_API_KEY',
    key: ['embeddings', 'api_key'],
    kind: 'string',
    description: 'embeddings API key (secret)',
  },
  {
    name: 'MCP_EMBEDDINGS_DIMENSIONS',
    key: ['embeddings', 'dimensions'],
    kind: 'integer',
    description: 'embedding vector length',
  },
  {
    name: 'MCP_TIMEZONE',
    key: ['assistant', 'timezone'],
    kind: 'string',
    description: 'default IANA time zone',
  },
  { name: 'MCP_LOG_LEVEL', key: ['logging', 'level'], kind: 'string', description: 'log level' },
  {
    name: 'MCP_METRICS_PORT',
    key: ['metrics', 'port'],
    kind: 'integer',
    description: 'Prometheus metrics listener port',
  },
  {
    name: 'MCP_METRICS_HOST',
    key: ['metrics', 'host'],
    kind: 'string',
    description: 'Prometheus metrics listener address',
  },
  {
    name: 'MCP_METRICS_TOKEN',
    key: ['metrics', 'token'],
    kind: 'string',
    description: 'bearer token for /metrics (secret)',
  },
];

/** Command-line flags every subcommand accepts, and the key each sets. */
export const FLAG_BINDINGS: readonly {
  flag: string;
  key: readonly string[];
  kind: ValueKind;
  description: string;
}[] = [
  { flag: 'db', key: ['database', 'path'], kind: 'string', description: 'SQLite database file' },
  { flag: 'data-dir', key: ['data_dir'], kind: 'string', description: 'data folder' },
  { flag: 'docs-dir', key: ['documents', 'dir'], kind: 'string', description: 'document content folder' },
  { flag: 'log-level', key: ['logging', 'level'], kind: 'string', description: 'log level' },
  { flag: 'timezone', key: ['assistant', 'timezone'], kind: 'string', description: 'default IANA time zone' },
  { flag: 'host', key: ['server', 'host'], kind: 'string', description: 'HTTP bind address' },
  { flag: 'port', key: ['server', 'port'], kind: 'integer', description: 'HTTP port' },
];

export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly source: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p.path}: ${p.message} [from ${p.source}]`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Environment to read (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Flag values by flag name (without dashes), as strings from the command line. */
  flags?: Readonly<Record<string, string | undefined>>;
  /** Path of a JSON configuration file (the --config flag); else MCP_CONFIG. */
  configFile?: string;
  /** Forces the mode, above every other source (the `serve` command runs HTTP mode). */
  mode?: 'local' | 'http';
}

type Json = Record<string, unknown>;

export function expandHome(p: string, home = homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/') || p.startsWith('~\\')) return path.join(home, p.slice(2));
  return p;
}

function setAt(target: Json, key: readonly string[], value: unknown): void {
  let obj = target;
  for (const part of key.slice(0, -1)) {
    const next = obj[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      obj[part] = {};
    }
    obj = obj[part] as Json;
  }
  obj[key[key.length - 1] as string] = value;
}

function convert(
  raw: string,
  kind: ValueKind,
): { ok: true; value: unknown } | { ok: false; message: string } {
  const text = raw.trim();
  switch (kind) {
    case 'string':
      return { ok: true, value: text };
    case 'integer':
      return /^-?\d+$/.test(text)
        ? { ok: true, value: Number(text) }
        : { ok: false, message: `expected a whole number, got "${raw}"` };
    case 'number':
      return text !== '' && Number.isFinite(Number(text))
        ? { ok: true, value: Number(text) }
        : { ok: false, message: `expected a number, got "${raw}"` };
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(text)) return { ok: true, value: true };
      if (/^(0|false|no|off)$/i.test(text)) return { ok: true, value: false };
      return { ok: false, message: `expected true or false, got "${raw}"` };
    case 'list':
      return {
        ok: true,
        value: text
          .split(',')
          .map((v) => v.trim())
          .filter((v) => v !== ''),
      };
  }
}

/** The keys an object schema accepts at a path of the configuration. */
function keysAt(pathParts: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const part of pathParts) {
    const def = unwrap(schema);
    if (!(def instanceof z.ZodObject)) return [];
    const next = (def.shape as Record<string, z.ZodType>)[String(part)];
    if (!next) return [];
    schema = next;
  }
  const def = unwrap(schema);
  return def instanceof z.ZodObject ? Object.keys(def.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (;;) {
    if (s instanceof z.ZodPipe) s = s.in as z.ZodType;
    else if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional)
      s = s.unwrap() as z.ZodType;
    else return s;
  }
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    const known = keysAt(issue.path);
    return issue.keys.map((k) => {
      const hint = suggest(k, known);
      return `unknown key "${k}"${hint ? ` — did you mean "${hint}"?` : ''} (allowed: ${known.join(', ')})`;
    });
  }
  if (issue.code === 'invalid_value' && issue.values.length > 0) {
    const allowed = issue.values.map((v) => JSON.stringify(v)).join(', ');
    return [issue.message.includes('allowed') ? issue.message : `${issue.message} (allowed: ${allowed})`];
  }
  return [issue.message];
}

function formatPath(parts: readonly PropertyKey[], extra?: string): string {
  const all = extra ? [...parts, extra] : [...parts];
  return all.length === 0 ? '(root)' : all.map(String).join('.');
}

export interface LoadedConfig {
  readonly config: Config;
  /** Where each top-level setting that did not come from defaults came from, for `config check`. */
  readonly sources: Readonly<Record<string, string>>;
}

/**
 * Builds the configuration from (highest first) flags, environment, a JSON file and defaults, validates it and
 * reports every problem at once.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const flags = options.flags ?? {};
  const problems: ConfigProblem[] = [];
  const sources: Record<string, string> = {};
  const raw: Json = {};

  const configFile = options.configFile ?? (env['MCP_CONFIG']?.trim() || undefined);
  let fileLabel = 'defaults';
  let resolvedFile: string | undefined;
  if (configFile !== undefined) {
    resolvedFile = path.resolve(expandHome(configFile));
    fileLabel = resolvedFile;
    let text: string | undefined;
    try {
      text = readFileSync(resolvedFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({
        path: '(file)',
        message:
          code === 'ENOENT' ? 'configuration file not found' : `cannot read the file (${code ?? 'error'})`,
        source: resolvedFile,
      });
    }
    if (text !== undefined) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          problems.push({ path: '(root)', message: 'expected a JSON object', source: resolvedFile });
        } else {
          Object.assign(raw, parsed);
          for (const key of Object.keys(parsed)) sources[key] = resolvedFile;
        }
      } catch (err) {
        problems.push({
          path: '(file)',
          message: `not valid JSON: ${(err as Error).message}`,
          source: resolvedFile,
        });
      }
    }
  }

  const origin = new Map<string, string>();
  const apply = (key: readonly string[], rawValue: string, kind: ValueKind, label: string): void => {
    const converted = convert(rawValue, kind);
    if (!converted.ok) {
      problems.push({ path: key.join('.'), message: converted.message, source: label });
      return;
    }
    setAt(raw, key, converted.value);
    origin.set(key.join('.'), label);
    sources[key.join('.')] = label;
  };

  for (const binding of ENV_BINDINGS) {
    const names = [binding.name, ...(binding.aliases ?? [])];
    const name = names.find((n) => env[n] !== undefined && env[n] !== '');
    if (name !== undefined) apply(binding.key, env[name] as string, binding.kind, `env ${name}`);
  }
  for (const binding of FLAG_BINDINGS) {
    const value = flags[binding.flag];
    if (value !== undefined) apply(binding.key, value, binding.kind, `flag --${binding.flag}`);
  }
  if (options.mode !== undefined) {
    apply(['mode'], options.mode, 'string', options.mode === 'http' ? 'command serve' : 'command');
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const dotted = issue.path.map(String).join('.');
      for (const message of describeIssue(issue)) {
        problems.push({ path: formatPath(issue.path), message, source: origin.get(dotted) ?? fileLabel });
      }
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return { config: resolve(result.data, resolvedFile), sources };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function resolve(parsed: ParsedConfig, configFile: string | undefined): Config {
  const isLocal = parsed.mode === 'local';
  const dataDir = path.resolve(expandHome(parsed.data_dir));
  const fileRel = (p: string | undefined): string | undefined =>
    p === undefined ? undefined : path.resolve(expandHome(p));
  const embeddingProvider = parsed.embeddings.provider;
  // Naming a provider turns semantic search on unless features.vector_search says otherwise.
  const vector =
    parsed.features.vector_search ??
    (!isLocal || (embeddingProvider !== undefined && embeddingProvider !== 'none'));
  const config: Config = {
    mode: parsed.mode,
    transport: parsed.transport ?? (isLocal ? 'stdio' : 'https'),
    data_dir: dataDir,
    config_file: configFile,
    server: {
      ...parsed.server,
      tls_cert:
        parsed.server.tls_cert === undefined ? undefined : path.resolve(expandHome(parsed.server.tls_cert)),
      tls_key:
        parsed.server.tls_key === undefined ? undefined : path.resolve(expandHome(parsed.server.tls_key)),
      tls_client_ca: fileRel(parsed.server.tls_client_ca),
    },
    database: {
      type:
        parsed.database.type ??
        (isLocal ? 'sqlite' : parsed.database.connection_string ? 'postgresql' : 'pglite'),
      path: fileRel(parsed.database.path) ?? path.join(dataDir, 'database.sqlite'),
      connection_string: parsed.database.connection_string,
      pool_size: parsed.database.pool_size,
    },
    authentication: {
      ...parsed.authentication,
      enabled: isLocal ? false : (parsed.authentication.enabled ?? true),
      metadata_fetch_ca: fileRel(parsed.authentication.metadata_fetch_ca),
    },
    features: {
      vector_search: vector,
      multi_tenant: parsed.features.multi_tenant ?? !isLocal,
      dynamic_client_registration: parsed.features.dynamic_client_registration,
    },
    documents: {
      dir: fileRel(parsed.documents.dir),
      max_file_size_mb: parsed.documents.max_file_size_mb,
      max_file_size_bytes: Math.floor(parsed.documents.max_file_size_mb * 1024 * 1024),
    },
    embeddings: {
      ...parsed.embeddings,
      provider: embeddingProvider ?? (vector ? 'hash' : 'none'),
      dimensions: parsed.embeddings.dimensions ?? 256,
      base_url: parsed.embeddings.base_url,
      model: parsed.embeddings.model,
      api_key: parsed.embeddings.api_key,
      relevance_floor: parsed.embeddings.relevance_floor,
    },
    assistant: { timezone: parsed.assistant.timezone },
    security: parsed.security,
    logging: parsed.logging,
    metrics: parsed.metrics,
  };
  return deepFreeze(config);
}

const REDACTED = '[redacted]';

/** The configuration as JSON with every secret replaced, for printing. */
export function redactConfig(config: Config): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as {
    database: { connection_string?: string };
    embeddings: { api_key?: string };
    authentication: { secret_key?: string; introspection_client_secret?: string };
    security: { redis_url?: string };
    metrics: { token?: string };
  } & Record<string, unknown>;
  if (copy.embeddings.api_key !== undefined) copy.embeddings.api_key = REDACTED;
  if (copy.metrics.token !== undefined) copy.metrics.token = REDACTED;
  if (copy.authentication.secret_key !== undefined) copy.authentication.secret_key = REDACTED;
  const redis = copy.security.redis_url;
  if (redis !== undefined) {
    try {
      const url = new URL(redis);
      if (url.password) url.password = REDACTED;
      copy.security.redis_url = url.toString();
    } catch {
      copy.security.redis_url = REDACTED;
    }
  }
  if (copy.authentication.introspection_client_secret !== undefined)
    copy.authentication.introspection_client_secret = REDACTED;
  const cs = copy.database.connection_string;
  if (cs !== undefined) {
    try {
      const url = new URL(cs);
      if (url.password) url.password = REDACTED;
      copy.database.connection_string = url.toString();
    } catch {
      copy.database.connection_string = REDACTED;
    }
  }
  return copy;
}
