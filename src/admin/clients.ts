/**
 * `mcp-pa clients …`: OAuth clients registered by the operator, kept where the embedded authorization server reads
 * every client (the oidc adapter's `Client` model in oauth_state). Their ids start with `cli_`: the server treats
 * them as registered by the operator.
 *
 * A client_secret_basic client gets a secret made here (32 random bytes), printed once and stored as a digest
 * only. `remove` deletes a client with everything issued to it (grants, tokens, codes), so its access tokens are
 * refused at /mcp within a second.
 */
import { createPublicKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { applyClientRules, checkRedirectUri, ClientMetadataProblem, LIMITS } from '../auth/client-rules.js';
import { createOidcAdapterFactory } from '../auth/oidc-adapter.js';
import type { ClientAuthMethod } from '../auth/provider.js';
import type { Config } from '../config/index.js';
import { SCOPES } from '../mcp/context.js';
import type { Logger } from '../observability/logger.js';
import type { PostgresStore } from '../storage/postgres/index.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  formatTable,
  recordAdminEvent,
  shortTime,
  UsageError,
} from './common.js';
import type { AdminIo } from './index.js';
import { formatGroupHelp, parserOptions, type GroupHelp, type OptionTable } from './help.js';
import { openAdminStore } from './store.js';

/** Client ids made here start with this: the server treats such clients as registered by the operator. */
export const CLI_CLIENT_PREFIX = 'cli_';

const AUTH_METHODS: readonly ClientAuthMethod[] = [
  'none',
  'client_secret_basic',
  'private_key_jwt',
  'tls_client_auth',
];
const ALLOWED_SCOPES: readonly string[] = [SCOPES.read, SCOPES.write, 'offline_access', 'openid'];
const MAX_JWKS_BYTES = 64 * 1024;
const MAX_JWKS_KEYS = 20;
/** Members of a JWK that only a private (or symmetric) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const TLS_OPTIONS = {
  'tls-subject-dn': 'tls_client_auth_subject_dn',
  'tls-san-dns': 'tls_client_auth_san_dns',
  'tls-san-uri': 'tls_client_auth_san_uri',
  'tls-san-ip': 'tls_client_auth_san_ip',
  'tls-san-email': 'tls_client_auth_san_email',
} as const;

export type TlsSubjectField = (typeof TLS_OPTIONS)[keyof typeof TLS_OPTIONS];

export const CLIENTS_USAGE = `usage:
  mcp-pa clients add --name NAME --redirect-uri URI [--redirect-uri URI …] --auth-method METHOD [options] [--json]
      register a client; prints its id (and, for client_secret_basic, its secret: once)
      METHOD: none | client_secret_basic | private_key_jwt | tls_client_auth
        (it must be listed in authentication.client_auth_methods)
      private_key_jwt: exactly one of --jwks-file FILE (a JWKS of public keys) or --jwks-uri https://…
      tls_client_auth: exactly one of --tls-subject-dn DN, --tls-san-dns NAME, --tls-san-uri URI,
        --tls-san-ip IP, --tls-san-email ADDRESS
      --scope "pa.read pa.write"   the scopes it may ask for (default: any of ${ALLOWED_SCOPES.join(', ')})
  mcp-pa clients list [--json]                  every client (added here, registered dynamically, or URL ids)
  mcp-pa clients remove CLIENT_ID               delete a client and revoke everything issued to it
  mcp-pa clients rotate-secret CLIENT_ID        new secret for a client_secret_basic client (printed once)
Also takes the global options (--config FILE, --data-dir DIR, …): the database is the one \`mcp-pa serve\` uses.`;

const TLS_OPTION_HELP: Readonly<Record<keyof typeof TLS_OPTIONS, { value: string; what: string }>> = {
  'tls-subject-dn': { value: 'DN', what: 'the subject distinguished name, e.g. "CN=backup-job,O=Example"' },
  'tls-san-dns': { value: 'NAME', what: 'a DNS name in its subject alternative names' },
  'tls-san-uri': { value: 'URI', what: 'a URI in its subject alternative names' },
  'tls-san-ip': { value: 'IP', what: 'an IP address in its subject alternative names' },
  'tls-san-email': { value: 'ADDRESS', what: 'an email address in its subject alternative names' },
};

const ADD_OPTIONS: OptionTable = {
  name: { type: 'string', value: 'NAME', description: 'the name shown on the consent page' },
  'redirect-uri': {
    type: 'string',
    multiple: true,
    value: 'URI',
    description:
      'where the authorization server may send the browser back (https://…, loopback http, or an app scheme)',
  },
  'auth-method': {
    type: 'string',
    value: 'METHOD',
    description: `how the client authenticates at the token endpoint: ${AUTH_METHODS.join(' | ')} (listed in authentication.client_auth_methods)`,
  },
  'jwks-file': {
    type: 'string',
    value: 'FILE',
    description: "private_key_jwt: a JWKS file of the client's public keys",
  },
  'jwks-uri': {
    type: 'string',
    value: 'URL',
    description: 'private_key_jwt: the https URL where the client publishes its public keys',
  },
  ...Object.fromEntries(
    Object.entries(TLS_OPTION_HELP).map(([option, h]) => [
      option,
      {
        type: 'string' as const,
        value: h.value,
        description: `tls_client_auth: the client certificate must have ${h.what}`,
      },
    ]),
  ),
  scope: {
    type: 'string',
    value: '"SCOPES"',
    description: `the scopes it may ask for, space-separated (default: any of ${ALLOWED_SCOPES.join(', ')})`,
  },
  json: { type: 'boolean', description: 'print the registered metadata (and secret) as JSON' },
};

/** `mcp-pa clients …`: each command's options (its parser is built from them) and help. */
export const CLIENTS_HELP: GroupHelp<'add' | 'list' | 'remove' | 'rotate-secret'> = {
  group: 'clients',
  summary: 'OAuth clients registered by the operator (docs/oauth.md)',
  notes: ["The database is the one `mcp-pa serve` uses (HTTP mode's, whatever the configured mode)."],
  actions: {
    add: {
      command: 'clients add',
      summary: 'register a client; prints its id (and, for client_secret_basic, its secret: once)',
      usage: [
        'mcp-pa clients add --name NAME --redirect-uri URI [--redirect-uri URI …] --auth-method METHOD [options] [--json]',
      ],
      options: ADD_OPTIONS,
      notes: [
        'private_key_jwt needs exactly one of --jwks-file or --jwks-uri; tls_client_auth exactly one of the --tls-* options.',
      ],
      examples: [
        'mcp-pa clients add --name "Backup job" --redirect-uri https://backup.example/cb --auth-method client_secret_basic',
        'mcp-pa clients add --name CLI --redirect-uri http://127.0.0.1/cb --auth-method none --scope "pa.read"',
        'mcp-pa clients add --name Agent --redirect-uri https://agent.example/cb --auth-method private_key_jwt --jwks-file jwks.json',
      ],
    },
    list: {
      command: 'clients list',
      summary: 'every client (added here, registered dynamically, or URL ids)',
      usage: ['mcp-pa clients list [--json] [options]'],
      options: { json: { type: 'boolean', description: 'print the clients as JSON' } },
      examples: ['mcp-pa clients list', 'mcp-pa clients list --json'],
    },
    remove: {
      command: 'clients remove',
      summary: 'delete a client and revoke everything issued to it',
      usage: ['mcp-pa clients remove CLIENT_ID [options]'],
      options: {},
      examples: ['mcp-pa clients remove cli_3yK…'],
    },
    'rotate-secret': {
      command: 'clients rotate-secret',
      summary: 'a new secret for a client_secret_basic client (printed once; the previous one stops working)',
      usage: ['mcp-pa clients rotate-secret CLIENT_ID [options]'],
      options: {},
      examples: ['mcp-pa clients rotate-secret cli_3yK…'],
    },
  },
};

/** A refused value or a failure, reported as is (no stack): exit code 1. */
export class ClientCommandError extends Error {}

export interface AddClientInput {
  readonly name: string;
  readonly redirectUris: readonly string[];
  readonly authMethod: ClientAuthMethod;
  /** private_key_jwt: the client's public keys (a parsed JWKS), or… */
  readonly jwks?: unknown;
  /** …where it publishes them (https). */
  readonly jwksUri?: string;
  /** tls_client_auth: the one certificate subject property the client's certificate must have. */
  readonly tlsSubject?: { readonly field: TlsSubjectField; readonly value: string };
  /** Space-separated scopes the client may request (default: no restriction). */
  readonly scope?: string;
}

export interface AddedClient {
  readonly clientId: string;
  /** Only for client_secret_basic: to show once; the database keeps a digest. */
  readonly clientSecret?: string;
  /** The metadata as stored, without the secret. */
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface ClientSummary {
  readonly id: string;
  readonly name: string | null;
  readonly authMethod: string | null;
  readonly redirectUris: readonly string[];
  /** cli: added with `mcp-pa clients add`; url: a Client ID Metadata Document; dcr: dynamic registration. */
  readonly source: 'cli' | 'url' | 'dcr';
  readonly createdAt: string | null;
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function checkName(raw: string): string {
  const name = raw.trim();
  if (name.length === 0) throw new ClientCommandError('--name must not be empty');
  if (name.length > LIMITS.clientName) {
    throw new ClientCommandError(
      `--name is ${name.length} characters; at most ${LIMITS.clientName} are allowed`,
    );
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new ClientCommandError('--name must not contain control characters (line breaks, tabs…)');
  }
  return name;
}

function checkRedirectUris(uris: readonly string[]): string[] {
  if (uris.length === 0) throw new ClientCommandError('at least one --redirect-uri is needed');
  const unique = [...new Set(uris)];
  if (unique.length > LIMITS.redirectUris) {
    throw new ClientCommandError(
      `${unique.length} redirect URIs given; at most ${LIMITS.redirectUris} are allowed`,
    );
  }
  for (const uri of unique) {
    const result = checkRedirectUri(uri);
    if (!result.ok) {
      throw new ClientCommandError(
        `--redirect-uri ${JSON.stringify(uri.slice(0, 200))} ${result.reason} ` +
          '(allowed: https://…, http:// on 127.0.0.1, [::1] or localhost, or an app scheme such as com.example.app:/callback)',
      );
    }
  }
  return unique;
}

function checkScope(raw: string): string {
  const scopes = raw.split(/\s+/).filter(Boolean);
  if (scopes.length === 0) throw new ClientCommandError('--scope must name at least one scope');
  const unknown = scopes.filter((s) => !ALLOWED_SCOPES.includes(s));
  if (unknown.length > 0) {
    throw new ClientCommandError(
      `--scope: unknown scope${unknown.length > 1 ? 's' : ''} ${unknown.map((s) => JSON.stringify(s.slice(0, 50))).join(', ')} (allowed: ${ALLOWED_SCOPES.join(', ')})`,
    );
  }
  return [...new Set(scopes)].join(' ');
}

/** A JWKS of public signature keys only (private_key_jwt). */
function checkJwks(value: unknown): { keys: Record<string, unknown>[] } {
  const problem = (text: string): ClientCommandError => new ClientCommandError(`--jwks-file: ${text}`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw problem('must be a JSON Web Key Set: an object {"keys": [ … ]}');
  }
  const keys = (value as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw problem('must be a JSON Web Key Set with at least one key in "keys"');
  }
  if (keys.length > MAX_JWKS_KEYS)
    throw problem(`has ${keys.length} keys; at most ${MAX_JWKS_KEYS} are allowed`);
  return {
    keys: keys.map((key: unknown, i) => {
      if (key === null || typeof key !== 'object' || Array.isArray(key)) {
        throw problem(`keys[${i}] is not a JSON Web Key (an object)`);
      }
      const jwk = key as Record<string, unknown>;
      const secret = PRIVATE_MEMBERS.filter((m) => m in jwk);
      if (jwk['kty'] === 'oct' || secret.length > 0) {
        throw problem(
          `keys[${i}] contains private or secret key material (${secret.join(', ') || 'kty oct'}): ` +
            'give the client’s public keys only; its private key stays with the client',
        );
      }
      if (!['EC', 'RSA', 'OKP'].includes(String(jwk['kty']))) {
        throw problem(`keys[${i}] has kty ${JSON.stringify(jwk['kty'])} (allowed: EC, RSA, OKP)`);
      }
      if (jwk['use'] !== undefined && jwk['use'] !== 'sig') {
        throw problem(`keys[${i}] has use ${JSON.stringify(jwk['use'])}; client assertion keys need "sig"`);
      }
      try {
        createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
      } catch {
        throw problem(`keys[${i}] is not a valid ${String(jwk['kty'])} public key`);
      }
      return jwk;
    }),
  };
}

function checkHttpsUrl(option: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClientCommandError(`${option} must be an absolute https:// URL`);
  }
  if (url.protocol !== 'https:') throw new ClientCommandError(`${option} must use https://`);
  if (url.username || url.password) {
    throw new ClientCommandError(`${option} must not contain user information (user@host)`);
  }
  if (url.hash) throw new ClientCommandError(`${option} must not contain a fragment (#)`);
  if (raw.length > LIMITS.uriLength) {
    throw new ClientCommandError(`${option} is longer than ${LIMITS.uriLength} characters`);
  }
  return url.href;
}

function optionOf(field: TlsSubjectField): string {
  const entry = Object.entries(TLS_OPTIONS).find(([, f]) => f === field);
  return `--${entry?.[0] ?? field}`;
}

function checkTlsSubject(field: TlsSubjectField, raw: string): string {
  const option = optionOf(field);
  const value = raw.trim();
  if (value.length === 0) throw new ClientCommandError(`${option} must not be empty`);
  if (value.length > LIMITS.stringField) {
    throw new ClientCommandError(`${option} is longer than ${LIMITS.stringField} characters`);
  }
  switch (field) {
    case 'tls_client_auth_subject_dn':
      if (!/^[A-Za-z][A-Za-z0-9.]*=/.test(value)) {
        throw new ClientCommandError(`${option} must be a distinguished name such as "CN=client,O=Example"`);
      }
      break;
    case 'tls_client_auth_san_dns':
      if (!/^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(value)) {
        throw new ClientCommandError(`${option} must be a DNS name such as client.example.com`);
      }
      break;
    case 'tls_client_auth_san_uri':
      try {
        new URL(value);
      } catch {
        throw new ClientCommandError(`${option} must be an absolute URI`);
      }
      break;
    case 'tls_client_auth_san_ip':
      if (isIP(value) === 0) throw new ClientCommandError(`${option} must be an IPv4 or IPv6 address`);
      break;
    case 'tls_client_auth_san_email':
      if (!/^[^\s@]+@[^\s@]+$/.test(value)) {
        throw new ClientCommandError(`${option} must be an email address`);
      }
      break;
  }
  return value;
}

/**
 * Checks a new client and makes its id, metadata and (client_secret_basic) secret, writing nothing.
 * `allowedAuthMethods`: authentication.client_auth_methods (a method the server does not accept is refused).
 * Throws ClientCommandError naming the option and what is allowed.
 */
export function prepareClient(
  input: AddClientInput,
  options: { allowedAuthMethods?: readonly string[] } = {},
): AddedClient {
  const method = input.authMethod;
  if (!AUTH_METHODS.includes(method)) {
    throw new ClientCommandError(
      `--auth-method ${JSON.stringify(String(method).slice(0, 50))} is not a client authentication method (allowed: ${AUTH_METHODS.join(', ')})`,
    );
  }
  const allowed = options.allowedAuthMethods;
  if (allowed !== undefined && !allowed.includes(method)) {
    throw new ClientCommandError(
      `--auth-method ${method} is not enabled on this server: authentication.client_auth_methods is ` +
        `[${allowed.join(', ')}]; add ${method} to that setting first`,
    );
  }
  const name = checkName(input.name);
  const redirectUris = checkRedirectUris(input.redirectUris);

  const hasJwks = input.jwks !== undefined || input.jwksUri !== undefined;
  if (method === 'private_key_jwt') {
    if ((input.jwks !== undefined) === (input.jwksUri !== undefined)) {
      throw new ClientCommandError(
        '--auth-method private_key_jwt needs exactly one of --jwks-file FILE or --jwks-uri URL (the client’s public keys)',
      );
    }
  } else if (hasJwks) {
    throw new ClientCommandError('--jwks-file and --jwks-uri are only for --auth-method private_key_jwt');
  }
  if (method === 'tls_client_auth') {
    if (input.tlsSubject === undefined) {
      throw new ClientCommandError(
        `--auth-method tls_client_auth needs exactly one of ${Object.keys(TLS_OPTIONS)
          .map((o) => `--${o}`)
          .join(', ')} (what the client certificate must name)`,
      );
    }
  } else if (input.tlsSubject !== undefined) {
    throw new ClientCommandError(
      `${optionOf(input.tlsSubject.field)} is only for --auth-method tls_client_auth`,
    );
  }

  const clientId = `${CLI_CLIENT_PREFIX}${randomBytes(16).toString('base64url')}`;
  const metadata: Record<string, unknown> = {
    client_id: clientId,
    client_name: name,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: method,
  };
  if (input.scope !== undefined) metadata['scope'] = checkScope(input.scope);
  if (input.jwks !== undefined) metadata['jwks'] = checkJwks(input.jwks);
  if (input.jwksUri !== undefined) metadata['jwks_uri'] = checkHttpsUrl('--jwks-uri', input.jwksUri);
  if (input.tlsSubject !== undefined) {
    metadata[input.tlsSubject.field] = checkTlsSubject(input.tlsSubject.field, input.tlsSubject.value);
    // RFC 8705 §3: its access tokens are bound to the certificate it authenticated with.
    metadata['tls_client_certificate_bound_access_tokens'] = true;
  }
  metadata['client_id_issued_at'] = Math.floor(Date.now() / 1000);
  try {
    // The server's own rules for every client (native apps, lengths), as dynamic registration applies them.
    applyClientRules(metadata);
  } catch (err) {
    if (err instanceof ClientMetadataProblem) throw new ClientCommandError(err.message);
    throw err;
  }

  const secret = method === 'client_secret_basic' ? newSecret() : undefined;
  return { clientId, ...(secret !== undefined ? { clientSecret: secret } : {}), metadata };
}

/** Writes a client made by prepareClient where the authorization server reads clients. */
export async function saveClient(store: PostgresStore, client: AddedClient): Promise<void> {
  const Adapter = createOidcAdapterFactory(store);
  const secret = client.clientSecret;
  // The adapter stores the secret as a digest.
  await new Adapter('Client').upsert(
    client.clientId,
    secret !== undefined
      ? { ...client.metadata, client_secret: secret, client_secret_expires_at: 0 }
      : { ...client.metadata },
    undefined,
  );
}

/**
 * `clients add` itself: checks a new client (prepareClient) and writes it where the authorization server reads
 * clients. Throws ClientCommandError naming the option and what is allowed.
 */
export async function addClient(
  store: PostgresStore,
  input: AddClientInput,
  options: { allowedAuthMethods?: readonly string[] } = {},
): Promise<AddedClient> {
  const client = prepareClient(input, options);
  await saveClient(store, client);
  return client;
}

/** Every client the authorization server knows. */
export async function listClients(store: PostgresStore): Promise<ClientSummary[]> {
  const rows = await store.withServerState(
    async (sql) =>
      (
        await sql.query<{ id: string; payload: Record<string, unknown> }>(
          `SELECT id, payload FROM oauth_state
           WHERE model = 'Client' AND (expires_at IS NULL OR expires_at > now())`,
        )
      ).rows,
  );
  const summaries = rows.map((row): ClientSummary & { issuedAt: number } => {
    const p = row.payload;
    const issued = typeof p['client_id_issued_at'] === 'number' ? p['client_id_issued_at'] : null;
    const uris = Array.isArray(p['redirect_uris'])
      ? p['redirect_uris'].filter((u): u is string => typeof u === 'string')
      : [];
    return {
      id: row.id,
      name: typeof p['client_name'] === 'string' ? p['client_name'] : null,
      authMethod:
        typeof p['token_endpoint_auth_method'] === 'string' ? p['token_endpoint_auth_method'] : null,
      redirectUris: uris,
      source: row.id.startsWith(CLI_CLIENT_PREFIX) ? 'cli' : /^https?:\/\//.test(row.id) ? 'url' : 'dcr',
      createdAt: issued === null ? null : new Date(issued * 1000).toISOString(),
      issuedAt: issued ?? 0,
    };
  });
  summaries.sort((a, b) => a.issuedAt - b.issuedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return summaries.map(({ issuedAt: _issuedAt, ...summary }) => summary);
}

/**
 * Deletes a client and everything issued to it: its grants, the tokens and codes issued under them, and any
 * other record naming it (registration access tokens, tokens without a grant). Null when there is no such client.
 */
export async function removeClient(
  store: PostgresStore,
  clientId: string,
): Promise<{ grants: number; records: number } | null> {
  return store.withServerState(async (sql) => {
    const found = await sql.query(`SELECT 1 FROM oauth_state WHERE model = 'Client' AND id = $1`, [clientId]);
    if (found.rows.length === 0) return null;
    const grants = `SELECT id FROM oauth_state WHERE model = 'Grant' AND payload->>'clientId' = $1`;
    await sql.query(`DELETE FROM oauth_grant_usage WHERE grant_id IN (${grants})`, [clientId]);
    const issued = await sql.query(
      `DELETE FROM oauth_state
       WHERE model NOT IN ('Grant', 'Client') AND (grant_id IN (${grants}) OR payload->>'clientId' = $1)`,
      [clientId],
    );
    const removedGrants = await sql.query(
      `DELETE FROM oauth_state WHERE model = 'Grant' AND payload->>'clientId' = $1`,
      [clientId],
    );
    await sql.query(`DELETE FROM oauth_state WHERE model = 'Client' AND id = $1`, [clientId]);
    return { grants: removedGrants.rowCount, records: issued.rowCount };
  });
}

/** A new secret for a client_secret_basic client (stored as a digest); returns it to show once. */
export async function rotateClientSecret(store: PostgresStore, clientId: string): Promise<string> {
  const clients = new (createOidcAdapterFactory(store))('Client');
  const payload = await clients.find(clientId);
  if (!payload) throw new ClientCommandError(`there is no client ${clientId} (see mcp-pa clients list)`);
  const method = payload['token_endpoint_auth_method'];
  if (method !== 'client_secret_basic') {
    throw new ClientCommandError(
      `client ${clientId} authenticates with ${typeof method === 'string' ? method : 'the default method'}, ` +
        'not client_secret_basic: only client_secret_basic clients have a secret',
    );
  }
  const secret = newSecret();
  await clients.upsert(clientId, { ...payload, client_secret: secret }, undefined);
  return secret;
}

interface Parsed {
  readonly positionals: string[];
  readonly values: Record<string, string | string[] | boolean | undefined>;
}

function parse(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
  arity: number,
  argName = 'CLIENT_ID',
): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { positionals, values } = parsed;
  if (positionals.length !== arity) {
    throw new UsageError(
      arity === 0
        ? `unexpected argument "${positionals.join(' ')}"`
        : `expected one argument (${argName}), got ${positionals.length}`,
    );
  }
  return { positionals, values: values as Parsed['values'] };
}

async function withStore<T>(
  config: Config,
  logger: Logger,
  fn: (store: PostgresStore) => Promise<T>,
): Promise<T> {
  let store: PostgresStore;
  try {
    store = await openAdminStore(config, logger);
  } catch (err) {
    throw new ClientCommandError((err as Error).message);
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function single(values: Parsed['values'], option: string): string | undefined {
  const value = values[option];
  return typeof value === 'string' ? value : undefined;
}

async function readJwksFile(file: string): Promise<unknown> {
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_JWKS_BYTES) {
      throw new ClientCommandError(`--jwks-file: ${file} is larger than ${MAX_JWKS_BYTES / 1024} KiB`);
    }
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ClientCommandError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClientCommandError(
      `--jwks-file: cannot read ${file} (${code === 'ENOENT' ? 'no such file' : (code ?? 'error')})`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ClientCommandError(`--jwks-file: ${file} is not JSON (a JSON Web Key Set is expected)`);
  }
}

/** The command line of `clients add` as an AddClientInput (usage errors for missing or conflicting options). */
async function addInput(values: Parsed['values']): Promise<AddClientInput> {
  const name = single(values, 'name');
  if (name === undefined) throw new UsageError('--name NAME is needed');
  const redirectUris = (values['redirect-uri'] as string[] | undefined) ?? [];
  if (redirectUris.length === 0) throw new UsageError('at least one --redirect-uri URI is needed');
  const method = single(values, 'auth-method');
  if (method === undefined) {
    throw new UsageError(`--auth-method METHOD is needed (one of ${AUTH_METHODS.join(', ')})`);
  }
  if (!(AUTH_METHODS as readonly string[]).includes(method)) {
    throw new UsageError(
      `--auth-method ${JSON.stringify(method.slice(0, 50))} is not a client authentication method (allowed: ${AUTH_METHODS.join(', ')})`,
    );
  }
  const jwksFile = single(values, 'jwks-file');
  const jwksUri = single(values, 'jwks-uri');
  if (jwksFile !== undefined && jwksUri !== undefined) {
    throw new UsageError('give either --jwks-file or --jwks-uri, not both');
  }
  const tls = Object.entries(TLS_OPTIONS).filter(([option]) => single(values, option) !== undefined);
  if (tls.length > 1) {
    throw new UsageError(
      `give one certificate subject option, not several (${tls.map(([o]) => `--${o}`).join(', ')})`,
    );
  }
  const scope = single(values, 'scope');
  const [tlsOption, tlsField] = tls[0] ?? [];
  return {
    name,
    redirectUris,
    authMethod: method as ClientAuthMethod,
    ...(jwksFile !== undefined ? { jwks: await readJwksFile(jwksFile) } : {}),
    ...(jwksUri !== undefined ? { jwksUri } : {}),
    ...(tlsOption !== undefined && tlsField !== undefined
      ? { tlsSubject: { field: tlsField, value: single(values, tlsOption) as string } }
      : {}),
    ...(scope !== undefined ? { scope } : {}),
  };
}

function when(iso: string | null): string {
  return shortTime(iso, '-');
}

function table(clients: readonly ClientSummary[]): string {
  const header = ['ID', 'NAME', 'AUTH METHOD', 'REDIRECT URIS', 'SOURCE', 'CREATED'];
  const rows = clients.map((c) => [
    c.id,
    c.name ?? '-',
    c.authMethod ?? '(default)',
    c.redirectUris.join(', ') || '-',
    c.source,
    when(c.createdAt),
  ]);
  return formatTable(header, rows);
}

/** `mcp-pa clients <command> …`; answers the exit code (0, 1 failure, 2 usage error). */
export async function runClientsCommand(
  args: string[],
  config: Config,
  io: AdminIo,
  logger: Logger,
): Promise<number> {
  const [command, ...rest] = args;
  const out = (line: string): void => {
    io.stdout.write(`${line}\n`);
  };
  try {
    switch (command) {
      case undefined:
        throw new UsageError('missing command');
      case '--help':
      case '-h':
      case 'help':
        out(formatGroupHelp(CLIENTS_HELP));
        return EXIT_OK;
      case 'add': {
        const p = parse(rest, parserOptions(CLIENTS_HELP.actions.add.options), 0);
        const input = await addInput(p.values);
        const allowedAuthMethods = config.authentication.client_auth_methods;
        // Checked before the database is opened; written through the same path as addClient.
        const added = prepareClient(input, { allowedAuthMethods });
        await withStore(config, logger, async (store) => {
          await saveClient(store, added);
          await recordAdminEvent(store, config, logger, {
            type: 'client.registered',
            clientId: added.clientId,
            details: { authMethod: String(added.metadata['token_endpoint_auth_method'] ?? '') },
          });
        });
        if (input.authMethod === 'tls_client_auth' && config.server.tls_client_ca === undefined) {
          io.stderr.write(
            'mcp-pa clients: warning: server.tls_client_ca (MCP_TLS_CLIENT_CA) is not set, so the server does not ' +
              'accept tls_client_auth until it is\n',
          );
        }
        if (p.values['json'] === true) {
          out(
            JSON.stringify(
              {
                ...added.metadata,
                ...(added.clientSecret !== undefined ? { client_secret: added.clientSecret } : {}),
              },
              null,
              2,
            ),
          );
          return EXIT_OK;
        }
        out(
          `created client ${added.clientId} (${String(added.metadata['client_name'])}, ${input.authMethod})`,
        );
        out(`client_id: ${added.clientId}`);
        if (added.clientSecret !== undefined) {
          out(`client_secret: ${added.clientSecret}`);
          out(
            'Store the client secret now; it cannot be shown again ' +
              `(mcp-pa clients rotate-secret ${added.clientId} makes a new one).`,
          );
        }
        return EXIT_OK;
      }
      case 'list': {
        const p = parse(rest, parserOptions(CLIENTS_HELP.actions.list.options), 0);
        const clients = await withStore(config, logger, listClients);
        if (p.values['json'] === true) out(JSON.stringify(clients, null, 2));
        else if (clients.length === 0) out('no clients yet: add one with mcp-pa clients add');
        else out(table(clients));
        return EXIT_OK;
      }
      case 'remove': {
        const p = parse(rest, parserOptions(CLIENTS_HELP.actions.remove.options), 1);
        const clientId = p.positionals[0] as string;
        const removed = await withStore(config, logger, async (store) => {
          const result = await removeClient(store, clientId);
          if (result) {
            await recordAdminEvent(store, config, logger, {
              type: 'client.removed',
              clientId,
              details: { grants: result.grants },
            });
          }
          return result;
        });
        if (!removed)
          throw new ClientCommandError(`there is no client ${clientId} (see mcp-pa clients list)`);
        out(
          `removed client ${clientId}: revoked ${removed.grants} grant(s) and deleted ${removed.records} ` +
            'token(s), code(s) and other record(s) issued to it (running servers refuse its access tokens within a second)',
        );
        return EXIT_OK;
      }
      case 'rotate-secret': {
        const p = parse(rest, parserOptions(CLIENTS_HELP.actions['rotate-secret'].options), 1);
        const clientId = p.positionals[0] as string;
        const secret = await withStore(config, logger, (store) => rotateClientSecret(store, clientId));
        out(`new secret for client ${clientId} (the previous one no longer works)`);
        out(`client_secret: ${secret}`);
        out('Store the client secret now; it cannot be shown again.');
        return EXIT_OK;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`mcp-pa clients: ${err.message}\n${CLIENTS_USAGE}\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`mcp-pa clients: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
}
