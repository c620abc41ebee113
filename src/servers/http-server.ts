#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
/**
 * HTTP mode: MCP Streamable HTTP over HTTPS. `mcp-pa serve` (src/cli.ts) calls {@link runHttpServer};
 * `node dist/servers/http-server.js` runs {@link main}, with configuration from the environment and MCP_CONFIG.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig, stderrIsTerminal, type Config } from '../config/index.js';
import { migrationProgress, type MigrationProgressLine } from '../observability/progress.js';
import { createLogger, type Logger } from '../observability/logger.js';
import {
  describeCertificate,
  loadTlsMaterial,
  secureContextOptions,
  TlsMaterialError,
  type TlsMaterial,
} from '../security/tls.js';
import { VERSION } from '../version.js';
import type { HttpApplication } from './http-app-factory.js';
import { describeDatabase, planHttpStartup, StartupError, type HttpPlan } from './http-preflight.js';
import { AuditLog } from '../security/audit.js';
import { startRedirectListener, type RedirectListener } from './http-redirect.js';

export { StartupError } from './http-preflight.js';

export interface HttpServerOptions {
  /** Serve a self-signed localhost certificate made (once) in `<data_dir>/tls/`. */
  readonly dev?: boolean;
  /** Where notices for a person go (trust instructions, the banner); default standard error. */
  readonly notice?: (text: string) => void;
  /** Pending migrations' progress (runHttpServer: a line on standard error when it is a terminal). */
  readonly migrations?: MigrationProgressLine;
}

/** A started HTTP server, without signal handling (that is {@link runHttpServer}'s). */
export interface HttpServer {
  /** Scheme, host and port, e.g. https://127.0.0.1:8000. */
  readonly url: string;
  /** The MCP endpoint, `<url>/mcp`. */
  readonly mcpUrl: string;
  readonly port: number;
  /** The plain-HTTP redirect listener's port (server.http_redirect_port), when it runs. */
  readonly redirectPort: number | undefined;
  /** The Prometheus metrics listener's URL (metrics.port), when it runs. */
  readonly metricsUrl: string | undefined;
  readonly plan: HttpPlan;
  /** The database the server uses (admin work in the same process, tests). */
  readonly store: HttpApplication['store'];
  readonly config: Config;
  /** The certificate being served, or null for plain HTTP on loopback. */
  tls(): TlsMaterial | null;
  /** Re-reads and re-checks the certificate and key; serves them if good, else keeps the old pair and throws. */
  reloadTls(): Promise<TlsMaterial>;
  close(): Promise<void>;
}

function startupTlsError(err: unknown): never {
  if (err instanceof TlsMaterialError) throw new StartupError(`cannot start HTTP mode: ${err.message}`, 2);
  throw err;
}

/**
 * Checks the start rules, loads and checks TLS material, opens the database and listens. Throws
 * {@link StartupError} with the exit code for anything a person must fix.
 */
export async function startHttpServer(
  config: Config,
  logger: Logger,
  options: HttpServerOptions = {},
): Promise<HttpServer> {
  const notice = options.notice ?? ((text: string) => process.stderr.write(text));
  const plan = planHttpStartup(config, { dev: options.dev === true });
  const warn = (message: string, details: Record<string, unknown>): void => logger.warn(details, message);

  let material: TlsMaterial | null = null;
  let devCreated = false;
  if (plan.tls.kind === 'files') {
    material = await loadTlsMaterial(plan.tls.certFile, plan.tls.keyFile, { warn }).catch(startupTlsError);
  } else if (plan.tls.kind === 'dev') {
    // Loaded only here: certificate generation pulls in @peculiar/x509.
    const { ensureDevCertificate } = await import('../security/dev-certificate.js');
    const dev = await ensureDevCertificate(plan.tls.dataDir, { warn }).catch(startupTlsError);
    material = dev.material;
    devCreated = dev.created;
    logger.info(
      { ...describeCertificate(material), created: dev.created },
      dev.created ? 'made a development certificate' : 'reusing the development certificate',
    );
  }
  for (const w of plan.warnings) logger.warn(w);

  // mTLS (RFC 8705): client certificates are asked for, never required at the handshake (browsers and public
  // clients have none); the authorization server and the resource server check them where they matter.
  const clientCaFile = config.server.tls_client_ca;
  const clientCa =
    clientCaFile === undefined
      ? undefined
      : await readFile(clientCaFile, 'utf8').catch((err: unknown) => {
          throw new StartupError(
            `cannot read the client certificate CA file ${clientCaFile} (server.tls_client_ca): ${(err as Error).message}`,
            2,
          );
        });
  const withClientCa = (options: SecureContextOptions): SecureContextOptions =>
    clientCa === undefined ? options : { ...options, ca: clientCa };
  const clientCertRequest = clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false };
  // The app and the database drivers load only once the rules and the certificate have passed.
  const { startHttpApplication } = await import('./http-app-factory.js');
  const app: HttpApplication = await startHttpApplication({
    config,
    logger,
    plan,
    tls: material ? { ...withClientCa(secureContextOptions(material)), ...clientCertRequest } : null,
    migrations: options.migrations,
  });

  // The plain-HTTP redirect listener starts once the HTTPS server listens (it redirects to its port).
  let redirect: RedirectListener | undefined;
  const redirectPort = config.server.http_redirect_port;
  if (redirectPort !== undefined) {
    try {
      redirect = await startRedirectListener({
        host: plan.host,
        port: redirectPort,
        publicUrl: config.server.public_url,
        httpsPort: app.port,
        logger,
      });
    } catch (err) {
      await app.close().catch(() => undefined);
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'EADDRINUSE'
          ? 'the port is already in use'
          : code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges)'
            : (err as Error).message;
      throw new StartupError(
        `cannot listen for the plain-HTTP redirect on ${plan.host} port ${redirectPort} ` +
          `(server.http_redirect_port, MCP_HTTP_REDIRECT_PORT): ${why}`,
        1,
      );
    }
  }

  if (plan.tls.kind === 'dev' && material) {
    const { trustInstructions } = await import('../security/dev-certificate.js');
    notice(
      (devCreated ? 'Made a new development certificate.\n' : '') +
        trustInstructions(material.certFile, app.url),
    );
  }
  logger.info(
    {
      url: app.url,
      mcp: app.mcpUrl,
      ...(app.metricsUrl !== undefined ? { metrics: app.metricsUrl } : {}),
      database: describeDatabase(plan.database),
      tls: material ? describeCertificate(material) : 'off (loopback only)',
      version: VERSION,
    },
    'http server ready',
  );

  let reloading: Promise<TlsMaterial> | null = null;
  return {
    url: app.url,
    mcpUrl: app.mcpUrl,
    port: app.port,
    redirectPort: redirect?.port,
    metricsUrl: app.metricsUrl,
    plan,
    store: app.store,
    config,
    tls: () => material,
    reloadTls: () => {
      if (material === null)
        return Promise.reject(
          new Error('TLS is off (plain HTTP on loopback): there is no certificate to reload'),
        );
      // One reload at a time; a second SIGHUP during one shares it.
      reloading ??= (async () => {
        const current = material as TlsMaterial;
        const next = await loadTlsMaterial(current.certFile, current.keyFile, { warn });
        app.reloadTls(withClientCa(secureContextOptions(next)));
        material = next;
        return next;
      })().finally(() => {
        reloading = null;
      });
      return reloading;
    },
    close: async () => {
      try {
        await redirect?.close();
      } finally {
        await app.close();
      }
    },
  };
}

function authLine(server: HttpServer): string {
  const auth = server.config.authentication;
  if (!auth.enabled) return 'off (loopback only)';
  const issuer = auth.issuer === undefined ? server.url : auth.issuer.replace(/\/$/, '');
  return issuer === server.url || issuer === server.config.server.public_url?.replace(/\/$/, '')
    ? `OAuth 2.1, this server is the issuer (${issuer}/.well-known/oauth-authorization-server); add users with \`mcp-pa users add\``
    : `OAuth 2.1, tokens from ${issuer}`;
}

function banner(server: HttpServer): string {
  const material = server.tls();
  const tls = material
    ? `TLS 1.2+ (${server.plan.tls.kind === 'dev' ? 'development certificate' : material.subject}, valid until ${material.validTo.toISOString().slice(0, 10)})`
    : 'off: plain HTTP, loopback only';
  return [
    `mcp-pa ${VERSION} — HTTP mode. MCP clients connect to ${server.mcpUrl}`,
    `  database:  ${describeDatabase(server.plan.database)}`,
    `  TLS:       ${tls}`,
    `  auth:      ${authLine(server)}`,
    `  health:    ${server.url}/healthz, ${server.url}/readyz`,
    ...(server.redirectPort !== undefined
      ? [`  redirect:  plain HTTP on port ${server.redirectPort} → HTTPS (GET/HEAD only)`]
      : []),
    ...(server.metricsUrl !== undefined || server.config.metrics.token !== undefined
      ? [
          `  metrics:   ${[
            server.metricsUrl,
            server.config.metrics.token !== undefined ? `${server.url}/metrics` : undefined,
          ]
            .filter((u) => u !== undefined)
            .join(', ')}${server.config.metrics.token !== undefined ? ' (bearer token: metrics.token)' : ''}`,
        ]
      : []),
    ...(server.config.server.trust_proxy.length > 0
      ? [`  proxies:   ${server.config.server.trust_proxy.join(', ')} (X-Forwarded-For/-Proto believed)`]
      : []),
    '  SIGHUP reloads the certificate; Ctrl+C stops.',
    '',
  ].join('\n');
}

function exitWith(err: unknown): never {
  if (err instanceof StartupError) {
    process.stderr.write(`mcp-pa: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`mcp-pa: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

/**
 * Runs HTTP mode until SIGTERM or SIGINT: prints startup errors and exits (2 for configuration, 1 for the
 * environment), reloads TLS on SIGHUP, drains and closes on the way out.
 */
export async function runHttpServer(
  config: Config,
  logger: Logger,
  options: { dev?: boolean } = {},
): Promise<void> {
  // Handlers go in first, so a signal that arrives as soon as "ready" is logged is never the default (exit).
  let server: HttpServer | undefined;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ reason: signal }, server ? 'shutting down' : 'shutting down once startup has finished');
    if (server) close(server);
  };
  const close = (s: HttpServer): void => {
    s.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => {
    if (!server) {
      logger.warn('SIGHUP during startup: the certificate being loaded is already the current one');
      return;
    }
    server.reloadTls().then(
      (next) => logger.info(describeCertificate(next), 'reloaded the TLS certificate'),
      (err: unknown) =>
        logger.error(
          { err: (err as Error).message },
          'TLS reload refused; still serving the previous certificate',
        ),
    );
  });

  try {
    server = await startHttpServer(config, logger, {
      ...options,
      migrations: migrationProgress(process.stderr, stderrIsTerminal()),
    });
  } catch (err) {
    // A configuration the server refuses is an audit event (in the log stream: the database may be what failed).
    if (err instanceof StartupError) {
      new AuditLog({ store: null, logger, retentionDays: config.security.audit_retention_days }).record({
        type: 'config.error',
        details: { message: err.message.slice(0, 500), exit: err.exitCode },
      });
    }
    exitWith(err);
  }
  if (stopping) {
    close(server);
    return;
  }
  if (stderrIsTerminal()) process.stderr.write(banner(server));
}

/** HTTP mode with configuration from the environment (and MCP_CONFIG): what `dist/servers/http-server.js` runs. */
export async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig({ mode: 'http' }).config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mcp-pa: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  await runHttpServer(config, createLogger(config.logging.level));
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().catch((err: unknown) => {
    process.stderr.write(`mcp-pa: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
