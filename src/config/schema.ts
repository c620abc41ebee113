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
  })
  .describe('HTTP mode authorization settings.');

const featuresSchema = z
  .strictObject({
    vector_search: z
      .boolean()
      .optional()
      .describe('Semantic search with embeddings (default: off in local mode, on in HTTP mode).'),
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

const embeddingsSchema = z
  .strictObject({
    provider: z
      .enum(['none', 'hash'])
      .optional()
      .describe(
        'Embedding provider: hash (offline, deterministic) or none. Default: hash when vector_search is on.',
      ),
    dimensions: z.number().int().min(16).max(4096).default(256).describe('Vector size of the hash provider.'),
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

const loggingSchema = z
  .strictObject({
    level: z.enum(LOG_LEVELS).default('info').describe('Log level (logs go to stderr).'),
  })
  .describe('Logging.');

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
    logging: loggingSchema.prefault({}),
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
