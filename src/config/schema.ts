import { z } from 'zod';

/** IANA time zone names accepted by the runtime's Intl implementation. */
export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const CLIENT_AUTH_METHODS = [
  'none',
  'client_secret_basic',
  'private_key_jwt',
  'tls_client_auth',
] as const;

/** A bare web origin: http(s)://host[:port], nothing after it (a trailing slash is tolerated). */
export function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (
      (url.protocol === 'https:' || url.protocol === 'http:') &&
      value.replace(/\/$/, '').toLowerCase() === url.origin.toLowerCase()
    );
  } catch {
    return false;
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const serverSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1').describe('Address the HTTP server binds to.'),
    port: z.number().int().min(0).max(65535).default(8000).describe('TCP port of the HTTP server.'),
    tls_required: z
      .boolean()
      .default(true)
      .describe('Refuse to serve without TLS (plain HTTP only on loopback when false).'),
    public_url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('Public URL of the server when behind a proxy (canonical MCP URI base).'),
    tls_cert: z.string().min(1).optional().describe('PEM certificate chain file (MCP_TLS_CERT).'),
    tls_key: z.string().min(1).optional().describe('PEM private key file (MCP_TLS_KEY).'),
    tls_client_ca: z
      .string()
      .min(1)
      .optional()
      .describe(
        'PEM CA file for client certificates (MCP_TLS_CLIENT_CA): tls_client_auth and certificate-bound tokens.',
      ),
    sessions: z
      .enum(['stateful', 'stateless'])
      .default('stateful')
      .describe(
        'MCP sessions: stateful (a session per client, resource notifications on its stream) or stateless (no session; any replica answers any request).',
      ),
    trust_proxy: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Addresses or CIDR ranges of TLS-terminating proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (MCP_TRUST_PROXY); empty: none.',
      ),
    http_redirect_port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe(
        'Also listen for plain HTTP on this port, answering only GET/HEAD with a redirect to HTTPS and 403 otherwise (MCP_HTTP_REDIRECT_PORT).',
      ),
    allowed_origins: z
      .array(
        z.string().refine(isOrigin, {
          error:
            'not an origin (allowed: scheme://host[:port] with http or https, e.g. https://app.example.com)',
        }),
      )
      .default([])
      .describe(
        "Browser origins allowed to call /mcp besides the server's own (its listening URL on loopback, and public_url).",
      ),
    body_limit_mb: z
      .number()
      .positive()
      .max(1024)
      .optional()
      .describe(
        'Largest /mcp request body, in MiB (default: the largest upload, base64-encoded, plus 1 MiB).',
      ),
    max_sessions: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1000)
      .describe(
        'Stateful sessions kept at once; the least recently active idle one makes room for a new one.',
      ),
    session_idle_timeout_s: z
      .number()
      .int()
      .min(10)
      .max(86_400)
      .default(1800)
      .describe('A stateful session without requests for this many seconds ends.'),
    shutdown_grace_s: z
      .number()
      .min(0)
      .max(600)
      .default(10)
      .describe('On shutdown, seconds in-flight requests get to finish before connections are cut.'),
  })
  .describe('HTTP mode listener settings.');

const databaseSchema = z
  .strictObject({
    type: z
      .enum(['sqlite', 'postgresql', 'pglite'])
      .optional()
      .describe('Storage engine: sqlite (local mode), postgresql or pglite (HTTP mode).'),
    path: z
      .string()
      .min(1)
      .optional()
      .describe('SQLite database file (default: <data_dir>/database.sqlite).'),
    connection_string: z
      .string()
      .min(1)
      .optional()
      .describe('PostgreSQL connection URL (secret: its password is redacted).'),
    pool_size: z.number().int().min(1).max(1000).default(10).describe('PostgreSQL connection pool size.'),
  })
  .describe('Where the data lives.');

const authenticationSchema = z
  .strictObject({
    enabled: z.boolean().optional().describe('OAuth 2.1 protection of HTTP mode (always off in local mode).'),
    oauth_version: z.literal('2.1').default('2.1').describe('Only OAuth 2.1 is offered.'),
    pkce_required: z
      .literal(true, { error: 'PKCE cannot be turned off: OAuth 2.1 requires it (allowed: true)' })
      .default(true)
      .describe('PKCE is mandatory; the key exists so the brief’s document loads.'),
    pkce_methods: z
      .array(z.enum(['S256', 'plain']))
      .min(1)
      .default(['S256'])
      .describe('Accepted PKCE methods; plain only if explicitly listed.'),
    client_auth_methods: z
      .array(z.enum(CLIENT_AUTH_METHODS))
      .min(1)
      .default(['none', 'client_secret_basic', 'private_key_jwt'])
      .describe('Client authentication methods accepted at the token endpoint.'),
    token_expiry: z
      .number()
      .int()
      .min(60)
      .max(3600, { error: 'access tokens may live at most 3600 seconds (OAuth 2.1 guidance)' })
      .default(900)
      .describe('Access token lifetime in seconds (60–3600).'),
    issuer: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('OAuth issuer URL (MCP_OAUTH_ISSUER).'),
    allow_signup: z.boolean().default(false).describe('Let visitors create accounts.'),
    require_dpop: z.boolean().default(false).describe('Require DPoP-bound tokens for public clients.'),
    secret_key: z
      .string()
      .min(32, {
        error: 'the secret key must be at least 32 characters (generate one with: openssl rand -base64 48)',
      })
      .optional()
      .describe(
        'Server secret (MCP_SECRET_KEY; secret: redacted) encrypting signing keys and signing cookies; every replica needs the same. Unset on a loopback bind: made once in <data_dir>/secret.key.',
      ),
    key_check_interval_s: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(30)
      .describe(
        'How often a running server looks for signing keys rotated by `mcp-pa keys rotate` (seconds).',
      ),
    client_id_metadata_documents: z
      .boolean()
      .default(true)
      .describe('Accept URL client ids (Client ID Metadata Documents), fetched with SSRF protection.'),
    metadata_fetch_allow: z
      .array(z.url({ protocol: /^https$/ }))
      .default([])
      .describe(
        'HTTPS origins on private or loopback addresses that client metadata documents and JWKS may still be fetched from (for tests and intranets).',
      ),
    metadata_fetch_ca: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Extra PEM CA file trusted when fetching client metadata documents and JWKS (tests, private CAs).',
      ),
    introspection_client_id: z
      .string()
      .min(1)
      .optional()
      .describe('External issuer only: client id for its introspection endpoint (opaque tokens).'),
    introspection_client_secret: z
      .string()
      .min(1)
      .optional()
      .describe('External issuer only: client secret for its introspection endpoint (secret: redacted).'),
  })
  .describe('HTTP mode authorization settings.');

const featuresSchema = z
  .strictObject({
    vector_search: z
      .boolean()
      .optional()
      .describe(
        'Semantic search with embeddings (default: on in HTTP mode or when embeddings.provider names one; else off).',
      ),
    multi_tenant: z
      .boolean()
      .optional()
      .describe('Many users, each a tenant (HTTP mode only; default follows the mode).'),
    dynamic_client_registration: z
      .boolean()
      .default(true)
      .describe('RFC 7591 dynamic client registration (HTTP mode).'),
  })
  .describe('Optional capabilities.');

const documentsSchema = z
  .strictObject({
    dir: z
      .string()
      .min(1)
      .optional()
      .describe('Folder for uploaded document content; unset keeps content inside the database.'),
    max_file_size_mb: z
      .number()
      .positive()
      .max(1024)
      .default(10)
      .describe('Largest accepted upload, in MiB.'),
  })
  .describe('Document uploads.');

/** Hosts where plain http is acceptable for an embeddings API: the request never leaves the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

export const EMBEDDING_PROVIDERS = ['none', 'hash', 'openai-compatible'] as const;

/** Keys that only the openai-compatible provider reads. */
const OPENAI_ONLY_KEYS = ['base_url', 'model', 'api_key'] as const;

const embeddingsSchema = z
  .strictObject({
    provider: z
      .enum(EMBEDDING_PROVIDERS)
      .optional()
      .describe(
        'Embedding provider: hash (offline, deterministic), openai-compatible (OpenAI, Ollama, vLLM, LM Studio… by base_url) or none. Default: hash when vector_search is on.',
      ),
    dimensions: z
      .number()
      .int()
      .min(16)
      .max(4096)
      .optional()
      .describe(
        'Vector length: of the hash provider (default 256), or of the model (required for openai-compatible; every response is checked against it).',
      ),
    base_url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'openai-compatible: API base URL, e.g. https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama); https unless the host is loopback.',
      ),
    model: z
      .string()
      .min(1)
      .optional()
      .describe('openai-compatible: model name, e.g. text-embedding-3-small or nomic-embed-text.'),
    api_key: z
      .string()
      .min(1)
      .optional()
      .describe('openai-compatible: API key sent as a bearer token (secret: redacted).'),
    send_dimensions: z
      .boolean()
      .default(true)
      .describe(
        'openai-compatible: send `dimensions` in requests (models that refuse it are then asked without it).',
      ),
    timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(600_000)
      .default(30_000)
      .describe('openai-compatible: time limit of one request, in milliseconds.'),
    max_retries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(3)
      .describe(
        'openai-compatible: retries after network errors, timeouts, 408, 429 and 5xx (with backoff).',
      ),
    batch_size: z
      .number()
      .int()
      .min(1)
      .max(2048)
      .default(64)
      .describe('openai-compatible: texts per request.'),
    relevance_floor: z
      .number()
      .min(-1)
      .max(1)
      .optional()
      .describe(
        'Cosine similarity at or below which a semantic match is ignored (model-specific; default 0.12 for hash, 0.2 for openai-compatible).',
      ),
  })
  .superRefine((e, ctx) => {
    if (e.provider === 'openai-compatible') {
      if (e.base_url === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['base_url'],
          message:
            'required when embeddings.provider is openai-compatible (e.g. https://api.openai.com/v1, or http://localhost:11434/v1 for Ollama)',
        });
      } else {
        const url = new URL(e.base_url);
        if (url.protocol !== 'https:' && !isLoopbackHost(url.hostname)) {
          ctx.addIssue({
            code: 'custom',
            path: ['base_url'],
            message: `must use https for ${url.hostname}: the key and your text would cross the network in clear (allowed: https://…, or http:// on localhost, 127.0.0.1 or ::1)`,
          });
        }
        if (url.username || url.password) {
          ctx.addIssue({
            code: 'custom',
            path: ['base_url'],
            message: 'must not contain credentials (put the key in embeddings.api_key)',
          });
        }
        if (url.search || url.hash) {
          ctx.addIssue({
            code: 'custom',
            path: ['base_url'],
            message:
              'must not have a query or fragment (allowed: the API base, e.g. https://api.openai.com/v1)',
          });
        }
      }
      if (e.model === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['model'],
          message:
            'required when embeddings.provider is openai-compatible (e.g. text-embedding-3-small, nomic-embed-text)',
        });
      }
      if (e.dimensions === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['dimensions'],
          message:
            "required when embeddings.provider is openai-compatible: the length of the model's vectors (e.g. 1536 for text-embedding-3-small, 768 for nomic-embed-text)",
        });
      }
    } else {
      for (const key of OPENAI_ONLY_KEYS) {
        if (e[key] === undefined) continue;
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `only used by the openai-compatible provider (embeddings.provider is ${e.provider ?? 'not set'}; set it to "openai-compatible" to use this key)`,
        });
      }
    }
  })
  .describe('Embeddings for semantic search.');

const assistantSchema = z
  .strictObject({
    timezone: z
      .string()
      .refine(isValidTimeZone, { error: 'unknown time zone (allowed: an IANA name such as Europe/Paris)' })
      .optional()
      .describe('Default IANA time zone of the user (default: the profile’s, else the system’s).'),
  })
  .describe('Assistant behaviour.');

const securitySchema = z
  .strictObject({
    redis_url: z
      .string()
      .regex(/^rediss?:\/\//, { error: 'must be a redis:// or rediss:// URL' })
      .optional()
      .describe(
        'Redis for rate-limit counters shared by every replica (MCP_REDIS_URL; secret: its password is redacted); unset: in memory. If Redis fails, limits fall back to memory.',
      ),
    redis_key_prefix: z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{1,64}$/, {
        error: 'must be 1 to 64 letters, digits or the characters : _ . -',
      })
      .default('mcp-pa:rl')
      .describe(
        'Prefix of the rate-limit keys in Redis (MCP_REDIS_KEY_PREFIX): replicas of one deployment share it; deployments sharing a Redis use different ones.',
      ),
    mcp_requests_per_minute: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(600)
      .describe(
        'Requests to /mcp per user and client per minute before 429 with Retry-After (MCP_RATE_LIMIT_MCP).',
      ),
    audit_retention_days: z
      .number()
      .int()
      .min(1)
      .max(3650)
      .default(90)
      .describe('Audit events older than this are deleted (MCP_AUDIT_RETENTION_DAYS).'),
  })
  .describe('Security: shared rate limits and the audit trail.');

const loggingSchema = z
  .strictObject({
    level: z.enum(LOG_LEVELS).default('info').describe('Log level (logs go to stderr).'),
  })
  .describe('Logging.');

const metricsSchema = z
  .strictObject({
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .optional()
      .describe(
        'HTTP mode: serve Prometheus metrics at GET /metrics on a separate plain-HTTP listener on this port (MCP_METRICS_PORT; 0: any free port, logged); unset: no listener.',
      ),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe(
        'Address of the metrics listener (MCP_METRICS_HOST); a non-loopback address needs metrics.token.',
      ),
    token: z
      .string()
      .min(32, {
        error: 'the metrics token must be at least 32 characters (generate one with: openssl rand -hex 32)',
      })
      .optional()
      .describe(
        'Bearer token scrapers must send (MCP_METRICS_TOKEN; secret: redacted). Set, it also serves GET /metrics on the main HTTPS listener.',
      ),
  })
  .superRefine((m, ctx) => {
    if (m.port !== undefined && m.token === undefined && !isLoopbackHost(m.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['host'],
        message: `a metrics listener on ${m.host} needs metrics.token (MCP_METRICS_TOKEN): metrics show who uses the server and how (allowed: a loopback address such as 127.0.0.1, or set a token)`,
      });
    }
  })
  .describe('Prometheus metrics (HTTP mode; docs/observability.md).');

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Ignored; lets editors find a JSON schema.'),
    mode: z
      .enum(['local', 'http'])
      .default('local')
      .describe('local (stdio, SQLite) or http (HTTPS, PostgreSQL).'),
    transport: z
      .enum(['stdio', 'https', 'http'])
      .optional()
      .describe('stdio for local mode; https (or http on loopback) for HTTP mode.'),
    data_dir: z
      .string()
      .min(1)
      .default('~/.config/mcp-pa')
      .describe('Folder for the database, documents and generated files.'),
    server: serverSchema.prefault({}),
    database: databaseSchema.prefault({}),
    authentication: authenticationSchema.prefault({}),
    features: featuresSchema.prefault({}),
    documents: documentsSchema.prefault({}),
    embeddings: embeddingsSchema.prefault({}),
    assistant: assistantSchema.prefault({}),
    security: securitySchema.prefault({}),
    logging: loggingSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.mode === 'local') {
      if (cfg.transport !== undefined && cfg.transport !== 'stdio') {
        ctx.addIssue({
          code: 'custom',
          path: ['transport'],
          message: `local mode speaks stdio, not ${cfg.transport} (allowed: stdio; use mode "http" to serve over the network)`,
        });
      }
      if (cfg.database.type !== undefined && cfg.database.type !== 'sqlite') {
        ctx.addIssue({
          code: 'custom',
          path: ['database', 'type'],
          message: `local mode stores data in SQLite, not ${cfg.database.type} (allowed: sqlite)`,
        });
      }
      if (cfg.authentication.enabled === true) {
        ctx.addIssue({
          code: 'custom',
          path: ['authentication', 'enabled'],
          message: 'local mode has one user and no login (allowed: false; use mode "http" for OAuth)',
        });
      }
      if (cfg.features.multi_tenant === true) {
        ctx.addIssue({
          code: 'custom',
          path: ['features', 'multi_tenant'],
          message: 'local mode serves one user (allowed: false; use mode "http" for many users)',
        });
      }
    } else {
      if (cfg.transport === 'stdio') {
        ctx.addIssue({
          code: 'custom',
          path: ['transport'],
          message: 'HTTP mode serves over the network (allowed: https, or http on a loopback address)',
        });
      }
      if (cfg.database.type === 'sqlite') {
        ctx.addIssue({
          code: 'custom',
          path: ['database', 'type'],
          message: 'HTTP mode stores data in PostgreSQL (allowed: postgresql, pglite)',
        });
      }
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
