/**
 * HTTP mode's composition: the PostgreSQL (or PGlite) store, the assistant over it and the Fastify app serving it.
 * The only module that imports the app and the store, so everything before it (rules, TLS checks) runs without them.
 */
import type { SecureContextOptions } from 'node:tls';
import { Assistant } from '../assistant/assistant.js';
import { systemTimeZone } from '../assistant/time.js';
import type { Config } from '../config/index.js';
import { ChangeHub, LOCAL_CALLER } from '../mcp/context.js';
import type { Logger } from '../observability/logger.js';
import { Reembedder, reportingFailures } from '../assistant/reembedder.js';
import { createEmbeddingProvider } from '../storage/embeddings/index.js';
import type { MigrationProgressLine } from '../observability/progress.js';
import { DatabaseStartupError, openPostgresStore, type PostgresStore } from '../storage/postgres/index.js';
import { VERSION } from '../version.js';
import { startHttpApp } from './http/app.js';
import { createEmbeddedAuth, createExternalAuth } from '../auth/http-auth.js';
import { createTrustedFetch } from '../auth/fetch.js';
import type { ClientAuthMethod } from '../auth/provider.js';
import { loadOrCreateSecret } from '../auth/secret.js';
import { AuthRateLimits } from '../security/rate-limits.js';
import { AuditLog, startAuditRetention } from '../security/audit.js';
import { StartupError, type HttpPlan } from './http-preflight.js';
import { EMBEDDING_QUEUE_BOUND, Metrics } from '../observability/metrics.js';
import { startMetricsListener, type MetricsListener } from './http/metrics-listener.js';

export interface HttpApplication {
  /** Scheme, host and port the server listens on, e.g. https://127.0.0.1:8000. */
  readonly url: string;
  /** The MCP endpoint, `<url>/mcp`. */
  readonly mcpUrl: string;
  readonly port: number;
  /** The metrics listener's URL (metrics.port), e.g. http://127.0.0.1:9464/metrics. */
  readonly metricsUrl?: string | undefined;
  /** The database (for the process's own admin work and tests). */
  readonly store: PostgresStore;
  reloadTls(options: SecureContextOptions): void;
  /** Stops accepting, drains in-flight requests, then closes the store. */
  close(): Promise<void>;
}

function listenError(
  err: unknown,
  plan: Pick<HttpPlan, 'host' | 'port'>,
  setting: 'server.port' | 'metrics.port' = 'server.port',
): StartupError | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const where = `${plan.host} port ${plan.port}${setting === 'metrics.port' ? ' (metrics)' : ''}`;
  const choose =
    setting === 'metrics.port' ? 'metrics.port (MCP_METRICS_PORT)' : '--port (MCP_PORT, server.port)';
  if (code === 'EADDRINUSE')
    return new StartupError(
      `cannot listen on ${where}: the port is already in use (another mcp-pa?); stop that program or choose another port with ${choose}`,
      1,
    );
  if (code === 'EACCES')
    return new StartupError(
      `cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose a port from 1024 with ${choose}`,
      1,
    );
  if (code === 'EADDRNOTAVAIL')
    return new StartupError(
      `cannot listen on ${where}: this machine has no such address; use --host 127.0.0.1`,
      1,
    );
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new StartupError(`cannot listen on ${where}: the host name does not resolve`, 1);
  return null;
}

export async function startHttpApplication(input: {
  readonly config: Config;
  readonly logger: Logger;
  readonly plan: HttpPlan;
  readonly tls: SecureContextOptions | null;
  /** Pending migrations' progress (a line on a terminal). */
  readonly migrations?: MigrationProgressLine | undefined;
}): Promise<HttpApplication> {
  const { config, logger, plan, tls } = input;
  const provider = createEmbeddingProvider(config, logger);
  // As in local mode: writes whose embedding fails stay pending, and the worker (made below) is told to retry them.
  const worker: { reembedder?: Reembedder | undefined } = {};
  const embeddings = provider && reportingFailures(provider, () => worker.reembedder?.failed());
  let store;
  try {
    store = await openPostgresStore(
      plan.database.kind === 'postgresql'
        ? {
            kind: 'postgresql',
            connectionString: plan.database.connectionString,
            poolSize: plan.database.poolSize,
          }
        : { kind: 'pglite', dataDir: plan.database.dataDir },
      {
        logger,
        documentsDir: config.documents.dir,
        vectorDimensions: embeddings ? embeddings.dimensions : null,
        migrations: input.migrations,
      },
    );
  } catch (err) {
    if (err instanceof DatabaseStartupError) {
      // Its message names the server (never the password) and the fix.
      throw new StartupError(`cannot start HTTP mode: ${err.message}`, 1);
    }
    throw err;
  }
  // Counted always (cheap); served when metrics.port or metrics.token is set.
  const metrics = new Metrics();
  const pool = store.driver;
  metrics.sources.pool = () => pool.poolUsage();
  if (embeddings) {
    const model = embeddings.model;
    const postgres = store;
    metrics.sources.embeddingQueue = () => postgres.itemsWaitingForVectors(model, EMBEDDING_QUEUE_BOUND);
  }
  // The audit trail: the log stream always, the database table with it (batched off the request path; what is
  // queued is written before the store closes).
  const audit = new AuditLog({
    store,
    logger,
    retentionDays: config.security.audit_retention_days,
    onEvent: (type, details) => metrics.observeAudit(type, details),
  });
  const retention = startAuditRetention(audit);
  const closeStore = async (): Promise<void> => {
    embeddings?.close?.();
    await worker.reembedder?.close();
    await retention.stop();
    await audit.close();
    await store.close();
  };
  const hub = new ChangeHub();
  const assistant = new Assistant({
    store,
    defaultTimeZone: config.assistant.timezone,
    maxUploadBytes: config.documents.max_file_size_bytes,
    embeddings,
    onChange: hub.emit,
    storageInfo: {
      database: plan.database.kind === 'pglite' ? 'pglite' : 'postgresql',
      documents: config.documents.dir ? `folder:${config.documents.dir}` : 'database',
    },
  });
  const server = config.server;
  const bodyLimitBytes =
    server.body_limit_mb !== undefined
      ? Math.floor(server.body_limit_mb * 1024 * 1024)
      : // Uploads travel base64-encoded inside JSON: a third larger, plus 1 MiB for the envelope.
        Math.ceil((config.documents.max_file_size_bytes * 4) / 3) + 1024 * 1024;
  worker.reembedder = embeddings ? new Reembedder({ assistant, store, logger }) : undefined;
  const auth = config.authentication;
  const authOn = auth.enabled;
  // Issuer identifiers compare exactly (RFC 8414 §3.3): the configured one is used as written; only the test
  // "is this our own URL" ignores a trailing slash.
  const externalIssuer = auth.issuer;
  const isOwn = (issuer: string): boolean =>
    externalIssuer === undefined || externalIssuer.replace(/\/$/, '') === issuer.replace(/\/$/, '');
  const mtls = tls !== null && config.server.tls_client_ca !== undefined;
  const trustedFetch = createTrustedFetch({
    allowOrigins: auth.metadata_fetch_allow,
    caFile: auth.metadata_fetch_ca,
  });
  // The process's one set of rate limits (shared with the other replicas through Redis when configured).
  const security = config.security;
  const limits = authOn
    ? new AuthRateLimits({
        settings: { mcp: { points: security.mcp_requests_per_minute, durationS: 60 } },
        redis:
          security.redis_url !== undefined
            ? { url: security.redis_url, keyPrefix: security.redis_key_prefix }
            : undefined,
        logger,
      })
    : undefined;
  try {
    // Briefly, so the first requests already count in Redis (it falls back to memory when Redis is down).
    await limits?.waitForRedis(1000);
    const app = await startHttpApp({
      host: plan.host,
      port: plan.port,
      tls,
      sessions: server.sessions,
      allowedOrigins: server.allowed_origins,
      bodyLimitBytes,
      maxSessions: server.max_sessions,
      sessionIdleMs: server.session_idle_timeout_s * 1000,
      shutdownGraceMs: server.shutdown_grace_s * 1000,
      ...(config.server.public_url !== undefined ? { publicUrl: config.server.public_url } : {}),
      trustProxy: server.trust_proxy,
      mcp: {
        assistant,
        hub,
        logger,
        version: VERSION,
        // A record id the caller does not have (another tenant's, or none): refused like any unknown id, audited.
        onNotFound: (caller, tool, field) =>
          audit.record({
            type: 'mcp.not_found',
            tenant: caller.tenant,
            clientId: caller.clientId,
            ip: caller.address,
            requestId: caller.requestId,
            details: { tool, field: field ?? null },
          }),
        onToolCall: ({ tool, ok, seconds, caller }) => {
          metrics.observeToolCall(tool, ok ? 'ok' : 'error', seconds);
          logger.debug(
            { reqId: caller.requestId, tool, ok, ms: Math.round(seconds * 10_000) / 10 },
            'tool call',
          );
        },
      },
      defaultTimeZone: config.assistant.timezone ?? systemTimeZone(),
      readiness: () => store.readiness(),
      metrics,
      metricsToken: config.metrics.token,
      ...(limits !== undefined ? { limits } : {}),
      audit,
      ...(authOn
        ? {
            auth: async ({ issuer, resource }: { issuer: string; resource: string }) =>
              externalIssuer !== undefined && !isOwn(issuer)
                ? createExternalAuth({
                    issuer: externalIssuer,
                    resource,
                    introspection:
                      auth.introspection_client_id !== undefined &&
                      auth.introspection_client_secret !== undefined
                        ? {
                            clientId: auth.introspection_client_id,
                            clientSecret: auth.introspection_client_secret,
                          }
                        : undefined,
                    ...(trustedFetch ? { fetch: trustedFetch as typeof fetch } : {}),
                    logger,
                  })
                : createEmbeddedAuth({
                    store,
                    secret: (await loadOrCreateSecret(auth.secret_key, config.data_dir)).secret,
                    issuer,
                    resource,
                    tokenTtlSeconds: auth.token_expiry,
                    pkceMethods: auth.pkce_methods,
                    clientAuthMethods: auth.client_auth_methods.filter(
                      (m) => m !== 'tls_client_auth' || mtls,
                    ) as ClientAuthMethod[],
                    dynamicRegistration: config.features.dynamic_client_registration,
                    clientIdMetadataDocuments: auth.client_id_metadata_documents,
                    allowSignup: auth.allow_signup,
                    requireDpop: auth.require_dpop,
                    mtls,
                    keyPollMs: auth.key_check_interval_s * 1000,
                    behindProxy: server.trust_proxy.length > 0 || server.public_url !== undefined,
                    audit,
                    onTokenResult: (grantType, error) => metrics.observeToken(grantType, error),
                    ...(limits !== undefined ? { limits } : {}),
                    ...(trustedFetch ? { fetch: trustedFetch } : {}),
                    logger,
                  }),
          }
        : // Authentication off: only on loopback (http-preflight.ts), as the one local user.
          { caller: () => LOCAL_CALLER }),
      logger,
    });
    let metricsListener: MetricsListener | undefined;
    if (config.metrics.port !== undefined) {
      try {
        metricsListener = await startMetricsListener({
          host: config.metrics.host,
          port: config.metrics.port,
          token: config.metrics.token,
          metrics,
          logger,
        });
      } catch (err) {
        await app.close();
        throw (
          listenError(
            err,
            { ...plan, host: config.metrics.host, port: config.metrics.port },
            'metrics.port',
          ) ?? err
        );
      }
    }
    // Re-embeds what is missing, pending or outdated, in the background, once the server listens.
    void worker.reembedder?.start();
    return {
      url: new URL(app.url).origin,
      mcpUrl: app.url,
      port: app.port,
      metricsUrl: metricsListener?.url,
      store,
      reloadTls: (options) => app.reloadTls(options),
      close: async () => {
        try {
          await metricsListener?.close();
          await app.close();
        } finally {
          await limits?.close();
          await closeStore();
        }
      },
    };
  } catch (err) {
    await limits?.close().catch(() => undefined);
    await closeStore().catch(() => undefined);
    throw listenError(err, plan) ?? err;
  }
}
