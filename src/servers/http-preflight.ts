import { BlockList, isIP } from 'node:net';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { TrustedProxies, TrustProxyError } from '../security/proxy.js';

/** A problem found before anything listens: printed as is, then the process exits with `exitCode`. */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

/** Where HTTP mode keeps its data: a PostgreSQL server, or the embedded PGlite in the data folder. */
export type DatabasePlan =
  { kind: 'postgresql'; connectionString: string; poolSize: number } | { kind: 'pglite'; dataDir: string };

export type TlsPlan =
  { kind: 'files'; certFile: string; keyFile: string } | { kind: 'dev'; dataDir: string } | { kind: 'none' };

export interface HttpPlan {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsPlan;
  readonly database: DatabasePlan;
  /** Allowed but worth saying (plain HTTP on loopback, the embedded database). */
  readonly warnings: readonly string[];
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');
loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** 127.0.0.0/8, ::1 (also written [::1] or as an IPv4-mapped loopback address) and the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1');
  if (h.toLowerCase() === 'localhost') return true;
  const family = isIP(h);
  if (family === 4) return loopback.check(h, 'ipv4');
  if (family === 6) return loopback.check(h, 'ipv6');
  return false;
}

const NO_AUTH =
  'authentication is off (authentication.enabled false), so HTTP mode serves only on a loopback address ' +
  '(127.0.0.1, ::1 or localhost) where no other machine can reach it';

/**
 * Checks the rules HTTP mode starts under and says what to start. Throws {@link StartupError} (exit code 2) for
 * a configuration it must refuse; reads no file and opens nothing.
 */
export function planHttpStartup(config: Config, options: { dev?: boolean } = {}): HttpPlan {
  const dev = options.dev === true;
  const { host, port, tls_required: tlsRequired, tls_cert: certFile, tls_key: keyFile } = config.server;
  const warnings: string[] = [];
  const problems: string[] = [];
  const onLoopback = isLoopbackHost(host);
  const publicUrl = config.server.public_url;
  const publicHttps = publicUrl !== undefined && new URL(publicUrl).protocol === 'https:';
  const trustProxy = config.server.trust_proxy;
  let proxiesOk = true;
  try {
    TrustedProxies.parse(trustProxy);
  } catch (err) {
    if (!(err instanceof TrustProxyError)) throw err;
    problems.push(`${err.message} (MCP_TRUST_PROXY takes a comma-separated list)`);
    proxiesOk = false;
  }
  if (trustProxy.length > 0 && proxiesOk && !publicHttps) {
    problems.push(
      publicUrl === undefined
        ? 'server.trust_proxy (MCP_TRUST_PROXY) is set, so clients reach this server through a proxy at another ' +
            'URL: set MCP_PUBLIC_URL (server.public_url) to the https URL clients use, e.g. ' +
            'https://pa.example.com — it is the OAuth issuer and the base of the MCP URI'
        : `server.trust_proxy (MCP_TRUST_PROXY) is set, and requests through the proxies must be HTTPS, but the ` +
            `public URL ${publicUrl} (MCP_PUBLIC_URL, server.public_url) is http: make it the https URL clients use`,
    );
  }
  // Behind TLS-terminating proxies the server itself may speak plain HTTP: it serves only what the proxies
  // forwarded from HTTPS (src/servers/http/app.ts), and its URLs are the public https ones.
  const behindProxy = trustProxy.length > 0 && proxiesOk && publicHttps;

  let tls: TlsPlan;
  if (dev) {
    if (certFile !== undefined || keyFile !== undefined) {
      problems.push(
        '--dev makes and serves its own localhost certificate, but a certificate is configured too ' +
          '(MCP_TLS_CERT / MCP_TLS_KEY, server.tls_cert / server.tls_key): drop --dev to serve yours, or unset them',
      );
    }
    if (config.transport === 'http') {
      problems.push('--dev serves HTTPS, but transport is "http": drop one of them');
    }
    tls = { kind: 'dev', dataDir: config.data_dir };
  } else if (config.transport === 'http') {
    if (tlsRequired) {
      problems.push(
        'transport is "http" (plain HTTP) but server.tls_required is true: set server.tls_required to false ' +
          '(allowed only on a loopback address) or use transport "https" with MCP_TLS_CERT and MCP_TLS_KEY',
      );
    }
    tls = { kind: 'none' };
  } else if (certFile !== undefined && keyFile !== undefined) {
    tls = { kind: 'files', certFile, keyFile };
  } else if (certFile !== undefined || keyFile !== undefined) {
    problems.push(
      certFile === undefined
        ? `a TLS key is set (${keyFile}) but no certificate: set MCP_TLS_CERT (server.tls_cert) to its PEM certificate file`
        : `a TLS certificate is set (${certFile}) but no key: set MCP_TLS_KEY (server.tls_key) to its PEM private key file`,
    );
    tls = { kind: 'none' };
  } else {
    if (tlsRequired) {
      problems.push(
        'TLS is required (server.tls_required is true) but no certificate is configured: set MCP_TLS_CERT and ' +
          'MCP_TLS_KEY (server.tls_cert / server.tls_key) to PEM files, or run `mcp-pa serve --dev` for a ' +
          'self-signed localhost certificate made in the data folder' +
          (trustProxy.length > 0
            ? '; behind the TLS-terminating proxies of server.trust_proxy, set server.tls_required to false ' +
              '(MCP_TLS_REQUIRED=false) to serve them plain HTTP'
            : ''),
      );
    }
    tls = { kind: 'none' };
  }

  if (!onLoopback) {
    if (tls.kind === 'none' && (!tlsRequired || config.transport === 'http') && !behindProxy) {
      problems.push(
        `refusing to serve plain HTTP on ${host}, which is not a loopback address: without TLS anyone on the ` +
          'network can read and change the traffic. Plain HTTP (server.tls_required false) is allowed only on ' +
          '127.0.0.1, ::1 or localhost, or behind a TLS-terminating proxy (server.trust_proxy with an https ' +
          'server.public_url); elsewhere set MCP_TLS_CERT and MCP_TLS_KEY',
      );
    }
    if (!config.authentication.enabled) {
      problems.push(
        `cannot bind to ${host}: ${NO_AUTH}. Turn authentication on, or use --host 127.0.0.1 (MCP_HOST, server.host)`,
      );
    } else if (['0.0.0.0', '::', '[::]'].includes(host) && config.server.public_url === undefined) {
      problems.push(
        `on ${host} (every address) clients cannot tell which URL is this server's: set MCP_PUBLIC_URL ` +
          '(server.public_url) to the https URL clients use, e.g. https://pa.example.com — it is the OAuth ' +
          'issuer and the base of the MCP URI',
      );
    } else if (config.authentication.secret_key === undefined && !usesExternalIssuer(config)) {
      problems.push(
        `serving on ${host} needs a server secret shared by every replica: set MCP_SECRET_KEY ` +
          '(authentication.secret_key), e.g. the output of `openssl rand -base64 48`',
      );
    }
  }
  if (config.authentication.enabled && tls.kind === 'none' && !behindProxy && problems.length === 0) {
    problems.push(
      'OAuth needs HTTPS (its cookies are Secure and its URLs https), but this server would speak plain HTTP: ' +
        'run `mcp-pa serve --dev` for a localhost certificate, set MCP_TLS_CERT and MCP_TLS_KEY, or — for an ' +
        'unauthenticated development server on loopback only — set authentication.enabled to false',
    );
  }
  if (
    config.authentication.enabled &&
    config.authentication.client_auth_methods.includes('tls_client_auth') &&
    config.server.tls_client_ca === undefined
  ) {
    problems.push(
      'authentication.client_auth_methods lists tls_client_auth, which needs the CA that issues client ' +
        'certificates: set MCP_TLS_CLIENT_CA (server.tls_client_ca), or drop tls_client_auth from the list',
    );
  }
  if (config.server.tls_client_ca !== undefined && tls.kind === 'none' && problems.length === 0) {
    problems.push(
      'server.tls_client_ca (MCP_TLS_CLIENT_CA) needs TLS: client certificates travel in the TLS handshake',
    );
  }

  const redirectPort = config.server.http_redirect_port;
  if (redirectPort !== undefined) {
    if (tls.kind === 'none') {
      problems.push(
        `server.http_redirect_port (MCP_HTTP_REDIRECT_PORT) ${redirectPort} redirects plain HTTP to this ` +
          "server's HTTPS, but this server would not serve HTTPS itself: configure TLS (MCP_TLS_CERT and " +
          'MCP_TLS_KEY, or --dev), or unset the redirect port (behind a proxy, let the proxy redirect)',
      );
    }
    if (redirectPort === port) {
      problems.push(
        `server.http_redirect_port (MCP_HTTP_REDIRECT_PORT) must differ from server.port (both ${port}): ` +
          'the redirect listener speaks plain HTTP on a port of its own, e.g. 80 next to 443',
      );
    }
    if (publicUrl !== undefined && !publicHttps) {
      problems.push(
        `server.http_redirect_port (MCP_HTTP_REDIRECT_PORT) redirects to the public URL, but ${publicUrl} ` +
          '(MCP_PUBLIC_URL, server.public_url) is http: make it the https URL clients use',
      );
    }
  }

  if (problems.length === 0 && tls.kind === 'none') {
    warnings.push(
      behindProxy
        ? `serving plain HTTP on ${host} behind the TLS-terminating proxies ${trustProxy.join(', ')} ` +
            `(server.trust_proxy): only requests they forwarded from HTTPS are served (health probes excepted); ` +
            'make sure nothing but those proxies can reach this port'
        : `serving plain HTTP without TLS on loopback address ${host} (server.tls_required is false): ` +
            'only for local development and tests; anything on this machine can read the traffic',
    );
  }

  const db = planDatabase(config);
  problems.push(...db.problems);
  if (problems.length === 0) warnings.push(...db.warnings);
  const database = db.database;

  if (problems.length > 0) {
    throw new StartupError(
      problems.length === 1
        ? `cannot start HTTP mode: ${problems[0]}`
        : `cannot start HTTP mode:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      2,
    );
  }
  return { host, port, tls, database, warnings };
}

/**
 * Whether the configured issuer is another server's (the embedded authorization server is then off): an issuer
 * is set and it is not this server's public URL.
 */
export function usesExternalIssuer(config: Config): boolean {
  const issuer = config.authentication.issuer;
  if (issuer === undefined) return false;
  const own = config.server.public_url;
  return own === undefined || issuer.replace(/\/$/, '') !== own.replace(/\/$/, '');
}

/** Which database HTTP mode (and the admin commands) use, with the configuration problems that stop it. */
export function planDatabase(config: Config): {
  database: DatabasePlan;
  problems: string[];
  warnings: string[];
} {
  const problems: string[] = [];
  const warnings: string[] = [];
  let database: DatabasePlan;
  const url = config.database.connection_string;
  if (config.database.type === 'postgresql') {
    if (url === undefined) {
      problems.push(
        'database.type is "postgresql" but no connection URL is set: set MCP_DATABASE_URL ' +
          '(database.connection_string), e.g. postgresql://user@host:5432/dbname, or leave both unset for the ' +
          'embedded PGlite database',
      );
    }
    database = { kind: 'postgresql', connectionString: url ?? '', poolSize: config.database.pool_size };
  } else if (config.database.type === 'pglite') {
    if (url !== undefined) {
      problems.push(
        'database.type is "pglite" (the embedded database) but a PostgreSQL URL is set too ' +
          '(MCP_DATABASE_URL, database.connection_string): drop one of them',
      );
    }
    database = { kind: 'pglite', dataDir: path.join(config.data_dir, 'pglite') };
  } else {
    problems.push('HTTP mode stores data in PostgreSQL (database.type allowed: postgresql, pglite)');
    database = { kind: 'pglite', dataDir: path.join(config.data_dir, 'pglite') };
  }
  if (problems.length === 0 && database.kind === 'pglite') {
    warnings.push(
      `using the embedded PGlite database in ${database.dataDir}: it is for trying mcp-pa out, not for ` +
        'production (one process, no replicas); set MCP_DATABASE_URL to a PostgreSQL server with pgvector',
    );
  }

  return { database, problems, warnings };
}

/** The database for logs and the banner, without its password. */
export function describeDatabase(plan: DatabasePlan): string {
  if (plan.kind === 'pglite') return `PGlite (embedded) in ${plan.dataDir}`;
  try {
    const url = new URL(plan.connectionString);
    const user = url.username ? `${decodeURIComponent(url.username)}@` : '';
    const db = url.pathname.replace(/^\//, '');
    return `PostgreSQL ${user}${url.host}${db ? `/${decodeURIComponent(db)}` : ''} (pool ${plan.poolSize})`;
  } catch {
    return `PostgreSQL (pool ${plan.poolSize})`;
  }
}
