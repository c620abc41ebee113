import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { SCOPES, type CallerContext, type McpDependencies } from '../../mcp/context.js';
import type { Logger } from '../../observability/logger.js';
import { metricsAccess, type Metrics } from '../../observability/metrics.js';
import {
  hostnameOf,
  isLoopbackHost,
  jsonRpcError,
  loopbackHostnames,
  OriginPolicy,
  originOf,
  parseAllowedOrigin,
  RPC,
} from './guards.js';
import type { HttpAuth } from '../../auth/http-auth.js';
import { PAGE_CSP } from '../../auth/pages.js';
import { MCP_PATH, registerMcpRoute, type CallerDecision } from './mcp-route.js';
import { mcpLimitKey, type LimitDecision } from '../../security/rate-limits.js';
import type { AuditLog } from '../../security/audit.js';
import { clientAddress, requestIdOf, setClientAddress, setRequestId } from '../../security/client-address.js';
import { computeToolList, ServerPool, SessionRegistry } from './sessions.js';
import {
  forwardedView,
  normalizeForwardedHeaders,
  stripForwardedHeaders,
  TrustedProxies,
  type ForwardedView,
} from '../../security/proxy.js';

export interface HttpAppOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  /** null = plain HTTP (the caller already checked it is a loopback bind). */
  tls: SecureContextOptions | null;
  sessions: 'stateful' | 'stateless';
  /** Browser Origins allowed besides the server's own (its listening URL on loopback, and publicUrl). */
  allowedOrigins: readonly string[];
  /** Largest accepted /mcp request body, in bytes (413 above). */
  bodyLimitBytes: number;
  publicUrl?: string | undefined;
  /**
   * Addresses and CIDR ranges of TLS-terminating proxies (server.trust_proxy). From them X-Forwarded-For gives the
   * client address and X-Forwarded-Proto / `Forwarded: proto=` must say https (else 403, probes excepted); from
   * anyone else forwarded headers are removed. When non-empty, every request that did not come over HTTPS (directly
   * or through a proxy) is refused, /healthz and /readyz excepted.
   */
  trustProxy?: readonly string[];
  mcp: Omit<McpDependencies, 'caller' | 'completionTenant'>;
  defaultTimeZone: string;
  readiness: () => Promise<{ ok: true } | { ok: false; reason: string }>;
  /**
   * Who is calling when `auth` is not given (tests, and the unauthenticated loopback development server).
   * null = unauthenticated → 401.
   */
  caller?: (req: IncomingMessage) => CallerContext | null;
  /**
   * OAuth: made once the server listens (the issuer and resource URIs contain the port), from the issuer (scheme,
   * host and port clients use) and the canonical MCP URI. Serves /oauth/*, /account/*, /.well-known/* and checks
   * every /mcp request's token.
   */
  auth?: (urls: { issuer: string; resource: string }) => Promise<HttpAuth>;
  /** The audit trail: 401/403/429 at /mcp, and per user-and-client usage counters. */
  audit?: Pick<AuditLog, 'record' | 'countUsage' | 'observeToken'>;
  /** Per user-and-client limit on /mcp (AuthRateLimits): counted after each successful authentication. */
  limits?: { hit(kind: 'mcp', key: string): Promise<LimitDecision> };
  logger: Logger;
  /** How long close() lets in-flight requests finish before it cuts the connections (default 10 s). */
  shutdownGraceMs?: number;
  /** Stateful mode: most live sessions; the least recently active idle one makes room (default 1000). */
  maxSessions?: number;
  /** Stateful mode: a session without requests for this long ends (default 30 minutes). */
  sessionIdleMs?: number;
  /** Stateless mode: built MCP servers kept for reuse (default 32; 0 builds one per request, for comparison). */
  serverPoolSize?: number;
  /** Answer tools/list from a list computed once at start (default true; false lets the SDK convert every time). */
  cacheToolList?: boolean;
  /** Counts every request (route, method, status, duration) and the open sessions. */
  metrics?: Metrics;
  /** Set: GET /metrics on this listener too, for `Authorization: Bearer <metricsToken>` only. */
  metricsToken?: string | undefined;
}

export interface RunningHttpApp {
  /** The MCP endpoint on the listening address, e.g. https://127.0.0.1:8443/mcp. */
  readonly url: string;
  /** The OAuth issuer and the canonical MCP URI (the public URL's when configured), when auth is on. */
  readonly issuer?: string;
  readonly resource: string;
  readonly port: number;
  /** New connections present the new certificate; established connections keep theirs. */
  reloadTls(options: SecureContextOptions): void;
  /** Stops accepting, lets in-flight requests finish (bounded by shutdownGraceMs), ends streams and sessions. */
  close(): Promise<void>;
}

export const DEFAULTS = {
  shutdownGraceMs: 10_000,
  maxSessions: 1000,
  sessionIdleMs: 30 * 60 * 1000,
  serverPoolSize: 32,
  readinessTimeoutMs: 5_000,
} as const;

const HSTS = 'max-age=31536000; includeSubDomains';
/** The policy of every response that is not an HTML page (JSON, SSE, empty). */
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
/** Answered over plain HTTP too, behind a proxy: load balancers and orchestrators probe the server directly. */
const PROBE_PATHS = new Set(['/healthz', '/readyz']);

/** HTML pages get the page policy (its style hash) at the moment their headers go out; the rest keep API_CSP. */
function pagePolicyForHtml(res: ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
    let type = res.getHeader('content-type');
    for (const arg of args) {
      if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) continue;
      for (const [k, v] of Object.entries(arg as Record<string, unknown>)) {
        if (k.toLowerCase() === 'content-type') type = v as string;
      }
    }
    // A policy a handler chose itself is kept.
    if (
      /^\s*text\/html\b/i.test(String(type ?? '')) &&
      res.getHeader('content-security-policy') === API_CSP
    ) {
      res.setHeader('Content-Security-Policy', PAGE_CSP);
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
}

function urlHost(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return bare.includes(':') ? `[${bare}]` : bare;
}

function positive(name: string, value: number, allowZero = false): number {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new Error(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number (got ${value})`);
  }
  return value;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the HTTP(S) server: MCP Streamable HTTP at /mcp, /healthz and /readyz. */
export async function startHttpApp(options: HttpAppOptions): Promise<RunningHttpApp> {
  const logger = options.logger.child({ component: 'http' });
  const graceMs = positive('shutdownGraceMs', options.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs, true);
  const maxSessions = positive('maxSessions', options.maxSessions ?? DEFAULTS.maxSessions);
  const idleMs = positive('sessionIdleMs', options.sessionIdleMs ?? DEFAULTS.sessionIdleMs);
  const poolSize = positive('serverPoolSize', options.serverPoolSize ?? DEFAULTS.serverPoolSize, true);
  positive('bodyLimitBytes', options.bodyLimitBytes);
  const configuredOrigins = options.allowedOrigins.map(parseAllowedOrigin);
  const publicOrigin = options.publicUrl === undefined ? undefined : originOf(options.publicUrl);
  if (options.publicUrl !== undefined && publicOrigin === null) {
    throw new Error(`publicUrl "${options.publicUrl}" is not an http(s) URL`);
  }
  const tls = options.tls !== null;
  const scheme = tls ? 'https' : 'http';
  const proxies = TrustedProxies.parse(options.trustProxy ?? []);
  const publicHost = options.publicUrl === undefined ? undefined : new URL(options.publicUrl).host;
  const allowedHosts = loopbackHostnames(options.host, options.publicUrl);

  const app: FastifyInstance = Fastify({
    loggerInstance: logger,
    // Requests are logged once, when their response closes (hijacked /mcp responses included): see onRequest.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...(options.tls !== null ? { https: options.tls } : {}),
  }) as unknown as FastifyInstance;

  const inFlight = new Set<ServerResponse>();
  let closing: Promise<void> | undefined;

  // Before Fastify sees a request (so its own answers — 404, 400, 413, 503 while closing — carry them too): the
  // security headers, and what the request's forwarded headers may say.
  const views = new WeakMap<IncomingMessage, ForwardedView>();
  (app.server as HttpServer).prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
    const view = forwardedView(req.headers, req.socket.remoteAddress, encrypted, proxies);
    views.set(req, view);
    // Nobody else — the authorization server's Koa app included — reads forwarded headers a client chose. With a
    // public URL, requests over HTTPS carry its host for the authorization server whichever address they reached (a
    // replica behind a load balancer, or any Host a client sent): every URL in its metadata and answers comes from
    // the public URL, like the issuer.
    if (view.protocol === 'https' && (view.viaProxy || publicHost !== undefined))
      normalizeForwardedHeaders(req, view, publicHost);
    else stripForwardedHeaders(req);
    setClientAddress(req, view.clientAddress);
    const hostname = hostnameOf(req.headers.host);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', API_CSP);
    pagePolicyForHtml(res);
    // Not for the name localhost: browsers would then force https on every local port. IP hosts get it (browsers
    // ignore it there; other clients may not).
    if (
      view.protocol === 'https' &&
      hostname !== null &&
      hostname !== 'localhost' &&
      !hostname.endsWith('.localhost')
    ) {
      res.setHeader('Strict-Transport-Security', HSTS);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    const res = reply.raw;
    const started = performance.now();
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      const status = res.statusCode;
      const entry = {
        reqId: req.id,
        method: req.method,
        path: req.url.split('?')[0],
        status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      options.metrics?.observeHttp(
        req.routeOptions.url,
        entry.path ?? '/',
        req.method,
        status,
        (performance.now() - started) / 1000,
      );
      if (status >= 500) logger.warn(entry, 'request');
      else if (status >= 400) logger.info(entry, 'request');
      else logger.debug(entry, 'request');
      // While closing, a keep-alive connection whose request just ended must not linger until its timeout.
      if (closing !== undefined) setImmediate(() => (app.server as HttpServer).closeIdleConnections());
    });
    // Set on the raw response (as are the security headers, before Fastify ran): they survive reply.hijack(),
    // which /mcp uses to hand the response to the SDK.
    const hostname = hostnameOf(req.headers.host);
    res.setHeader('X-Request-Id', req.id);
    setRequestId(req.raw, req.id);
    if (closing !== undefined) res.setHeader('Connection', 'close');
    const path = req.url.split('?')[0] ?? '/';
    const view = views.get(req.raw);
    if (!proxies.empty && view !== undefined && view.protocol !== 'https' && !PROBE_PATHS.has(path)) {
      const where = options.publicUrl ?? 'the HTTPS URL of this server';
      const message = view.viaProxy
        ? `Forbidden: requests must reach the proxy over HTTPS (the proxy reported ${view.protocolSource}); use ${where}`
        : `Forbidden: this server answers plain HTTP only through its trusted proxies (server.trust_proxy); use ${where}`;
      return reply
        .code(403)
        .header('content-type', 'application/json')
        .send(
          JSON.stringify(
            path === MCP_PATH
              ? jsonRpcError(RPC.server, message)
              : { error: 'https_required', error_description: message },
          ),
        );
    }
    if (allowedHosts !== null && (hostname === null || !allowedHosts.has(hostname))) {
      const message = `Forbidden: Host ${req.headers.host ?? '(none)'} is not this server (DNS rebinding protection; allowed: ${[...allowedHosts].join(', ')} with any port)`;
      return reply
        .code(403)
        .header('content-type', 'application/json')
        .send(JSON.stringify(jsonRpcError(RPC.server, message)));
    }
    return undefined;
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (closing !== undefined)
      return reply.code(503).send({ status: 'unavailable', reason: 'shutting down' });
    let result: { ok: true } | { ok: false; reason: string };
    try {
      result = await withTimeout(
        options.readiness(),
        DEFAULTS.readinessTimeoutMs,
        'readiness check timed out',
      );
    } catch (err) {
      result = { ok: false, reason: (err as Error).message };
    }
    if (result.ok) return { status: 'ready' };
    return reply.code(503).send({ status: 'unavailable', reason: result.reason });
  });

  const registry = new SessionRegistry({
    maxSessions,
    idleMs,
    onEvict: (s, reason) => logger.info({ session: s.id.slice(0, 8), reason }, 'MCP session ended'),
  });
  if (options.metrics !== undefined) options.metrics.sources.sessions = () => registry.size;
  const metricsToken = options.metricsToken;
  if (options.metrics !== undefined && metricsToken !== undefined) {
    const metrics = options.metrics;
    app.get('/metrics', async (req, reply) => {
      const access = metricsAccess(metricsToken, req.headers.authorization);
      if (!access.ok)
        return reply.code(access.status).header('www-authenticate', access.challenge).send({
          error: 'unauthorized',
          error_description: 'metrics need the metrics token (metrics.token)',
        });
      const { contentType, body } = await metrics.render();
      return reply.header('content-type', contentType).send(body);
    });
  }
  const toolList =
    options.cacheToolList === false ? undefined : await computeToolList(options.mcp, options.defaultTimeZone);
  const pool = new ServerPool(options.mcp, options.defaultTimeZone, poolSize, toolList);
  // Own origins depend on the port, known only after listen: the policy reads them late.
  const ownOrigins: string[] = [];
  if (publicOrigin) ownOrigins.push(publicOrigin);
  const origins = new OriginPolicy(ownOrigins, configuredOrigins);
  // The authorization side, made after listen (see HttpAppOptions.auth); its routes exist from the start.
  let auth: HttpAuth | undefined;
  const fixedCaller = options.caller;
  const authenticate = async (req: IncomingMessage): Promise<CallerDecision> => {
    if (auth !== undefined) {
      const outcome = await auth.authenticate(req);
      if (outcome.ok) {
        const limit = await options.limits?.hit(
          'mcp',
          mcpLimitKey(outcome.caller.tenant, outcome.caller.clientId),
        );
        if (limit !== undefined && !limit.ok) {
          options.audit?.record({
            type: 'rate_limit.hit',
            tenant: outcome.caller.tenant,
            clientId: outcome.caller.clientId,
            ip: clientAddress(req),
            requestId: requestIdOf(req),
            details: { limit: 'mcp', retryAfterS: limit.retryAfterS },
          });
          return {
            ok: false,
            status: 429,
            wwwAuthenticate: '',
            message: `Too Many Requests: retry after ${limit.retryAfterS} seconds`,
            headers: { 'retry-after': String(limit.retryAfterS) },
          };
        }
        options.audit?.countUsage(outcome.caller.tenant, outcome.caller.clientId);
        options.audit?.observeToken(outcome.tokenHash, clientAddress(req), {
          tenant: outcome.caller.tenant,
          ...(outcome.caller.clientId !== undefined ? { clientId: outcome.caller.clientId } : {}),
        });
        return {
          ok: true,
          caller: { ...outcome.caller, address: clientAddress(req), requestId: requestIdOf(req) },
        };
      }
      options.audit?.record({
        type: 'mcp.unauthorized',
        ip: clientAddress(req),
        requestId: requestIdOf(req),
        tokenHash: outcome.tokenHash,
        details: { reason: outcome.description, error: outcome.error ?? null, status: outcome.status },
      });
      return {
        ok: false,
        status: outcome.status,
        wwwAuthenticate: auth.challenge(outcome),
        message: `Unauthorized: ${outcome.description}`,
      };
    }
    const caller = fixedCaller?.(req) ?? null;
    if (caller !== null) return { ok: true, caller };
    return {
      ok: false,
      status: 401,
      wwwAuthenticate: 'Bearer',
      message: 'Unauthorized: authentication required',
    };
  };
  const toolScopes = new Map<string, string>();
  for (const tool of (toolList ?? (await computeToolList(options.mcp, options.defaultTimeZone))).tools) {
    toolScopes.set(tool.name, tool.annotations?.readOnlyHint === true ? SCOPES.read : SCOPES.write);
  }
  const READ_METHODS = new Set([
    'resources/read',
    'resources/list',
    'resources/templates/list',
    'prompts/get',
    'resources/subscribe',
  ]);
  const missingScope = (message: unknown, caller: CallerContext): string | null => {
    if (message === null || typeof message !== 'object') return null;
    const m = message as { method?: unknown; params?: { name?: unknown } };
    let needed: string | undefined;
    if (m.method === 'tools/call' && typeof m.params?.name === 'string')
      needed = toolScopes.get(m.params.name);
    else if (typeof m.method === 'string' && READ_METHODS.has(m.method)) needed = SCOPES.read;
    return needed !== undefined && !caller.scopes.has(needed) ? needed : null;
  };

  void app.register(async (scope) => {
    // The authorization server reads its own bodies (oidc-provider takes raw requests): nothing is parsed here.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    const delegate = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const path = request.url.split('?')[0] ?? '/';
      if (auth === undefined || !auth.owns(path)) {
        reply
          .code(404)
          .header('content-type', 'application/json')
          .send(JSON.stringify({ error: 'not_found' }));
        return;
      }
      reply.hijack();
      // HTML pages get PAGE_CSP when their headers go out (see pagePolicyForHtml); JSON keeps API_CSP.
      await auth.handle(request.raw, reply.raw);
    };
    for (const prefix of ['/oauth/*', '/account', '/account/*', '/.well-known/*'])
      scope.all(prefix, delegate);
  });

  registerMcpRoute(app, {
    sessions: options.sessions,
    bodyLimitBytes: options.bodyLimitBytes,
    origins,
    authenticate,
    missingScope,
    onForbidden: (req, reason, detail, caller) =>
      options.audit?.record({
        type: 'mcp.forbidden',
        tenant: caller?.tenant,
        clientId: caller?.clientId,
        ip: clientAddress(req),
        requestId: requestIdOf(req),
        details: reason === 'scope' ? { reason, scope: detail } : { reason, origin: detail },
      }),
    insufficientScope: (needed) =>
      auth?.challenge(
        { error: 'insufficient_scope', description: `this request needs the ${needed} scope` },
        [...new Set([SCOPES.read, needed])],
      ) ?? `Bearer error="insufficient_scope", scope="${needed}"`,
    deps: options.mcp,
    defaultTimeZone: options.defaultTimeZone,
    registry,
    pool,
    logger,
    toolList,
  });

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address() as AddressInfo;
  const port = address.port;
  const listeningNames = isLoopbackHost(options.host)
    ? ['localhost', '127.0.0.1', '[::1]', urlHost(options.host)]
    : [urlHost(options.host)];
  for (const name of new Set(listeningNames)) origins.addOwn(`${scheme}://${name}:${port}`);
  const url = `${scheme}://${urlHost(options.host)}:${port}${MCP_PATH}`;
  const issuer = publicOrigin ?? `${scheme}://${urlHost(options.host)}:${port}`;
  const resource = `${issuer}${MCP_PATH}`;
  if (options.auth) {
    try {
      auth = await options.auth({ issuer, resource });
    } catch (err) {
      await app.close();
      throw err;
    }
  }

  const sweeper =
    options.sessions === 'stateful'
      ? setInterval(() => registry.sweep(), Math.max(10, Math.min(idleMs / 2, 60_000)))
      : undefined;
  sweeper?.unref();
  logger.info({ url, sessions: options.sessions, tls }, 'HTTP server listening');

  return {
    url,
    ...(auth ? { issuer } : {}),
    resource,
    port,
    reloadTls(next: SecureContextOptions): void {
      if (!tls) throw new Error('this server speaks plain HTTP: there is no certificate to reload');
      (app.server as unknown as TlsServer).setSecureContext(next);
      logger.info('TLS certificate reloaded');
    },
    close(): Promise<void> {
      closing ??= (async () => {
        logger.info({ inFlight: inFlight.size, sessions: registry.size }, 'HTTP server closing');
        if (sweeper) clearInterval(sweeper);
        // Responses not started yet close their connection when done.
        for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
        // Standalone SSE streams never end by themselves: end them so the drain can finish.
        registry.closeStreams();
        const force = setTimeout(() => {
          logger.warn({ inFlight: inFlight.size }, 'shutdown grace period over: closing connections');
          (app.server as HttpServer).closeAllConnections();
        }, graceMs);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
          await registry.closeAll();
          pool.close();
          await auth?.close();
        }
        logger.info('HTTP server closed');
      })();
      return closing;
    },
  };
}
