/**
 * Prometheus metrics of HTTP mode (prom-client), on a registry of their own per server — never the library's global
 * one, so several servers in one process (tests, benchmarks) keep separate counts.
 *
 * Label values are bounded: routes are the server's route patterns (ids folded to `:id`, at most MAX_ROUTES
 * distinct values, then `other`), methods the HTTP ones, tools the registered tool names, everything else from
 * fixed vocabularies. docs/observability.md lists every metric.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

const PREFIX = 'mcp_pa_';
const MAX_ROUTES = 64;
const MAX_TOOLS = 128;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** Seconds: from a cached token check (~0.1 ms) to a slow search or upload. */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Bounds the embedding queue count per scrape: a larger backlog reads as this many. */
export const EMBEDDING_QUEUE_BOUND = 1_000_000;

/** Connections of the database pool, as the storage driver reports them. */
export interface PoolUsageReading {
  readonly size: number;
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

/** What the gauges read when scraped; each may be set once the part it reads exists. */
export interface MetricsSources {
  pool?: () => PoolUsageReading | null;
  /** Items waiting for a vector (null: semantic search is off). */
  embeddingQueue?: () => Promise<number | null>;
  sessions?: () => number;
}

export type ToolOutcome = 'ok' | 'error';

/** Folds what varies in a path (ids, tokens, uids) into `:id`. */
function routePattern(path: string): string {
  return path
    .split('/')
    .map((segment) =>
      segment.length >= 16 || /\d/.test(segment) || /[^A-Za-z0-9._-]/.test(segment) ? ':id' : segment,
    )
    .join('/');
}

export class Metrics {
  readonly registry = new Registry();
  readonly sources: MetricsSources = {};
  private readonly routes = new Set<string>();
  private readonly tools = new Set<string>();
  private readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  private readonly httpDuration: Histogram<'route' | 'method' | 'status'>;
  private readonly toolCalls: Counter<'tool' | 'outcome'>;
  private readonly toolDuration: Histogram<'tool'>;
  private readonly tokensIssued: Counter<'grant_type'>;
  private readonly tokenFailures: Counter<'grant_type' | 'error'>;
  private readonly rateLimitHits: Counter<'limit'>;
  private readonly auditEvents: Counter<'type'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    this.httpRequests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from a request arriving to its response closing (SSE streams: their whole life).',
      labelNames: ['route', 'method', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.toolCalls = new Counter({
      name: `${PREFIX}tool_calls_total`,
      help: 'MCP tool calls that reached the tool, by tool and outcome (error: the result had isError).',
      labelNames: ['tool', 'outcome'],
      registers,
    });
    this.toolDuration = new Histogram({
      name: `${PREFIX}tool_call_duration_seconds`,
      help: 'Time a tool call took, by tool.',
      labelNames: ['tool'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.tokensIssued = new Counter({
      name: `${PREFIX}oauth_tokens_issued_total`,
      help: 'Access tokens issued at the token endpoint, by grant type.',
      labelNames: ['grant_type'],
      registers,
    });
    this.tokenFailures = new Counter({
      name: `${PREFIX}oauth_token_failures_total`,
      help: 'Token endpoint requests refused, by grant type and OAuth error code.',
      labelNames: ['grant_type', 'error'],
      registers,
    });
    this.rateLimitHits = new Counter({
      name: `${PREFIX}rate_limit_hits_total`,
      help: 'Requests refused by a rate limit (429), by limit.',
      labelNames: ['limit'],
      registers,
    });
    this.auditEvents = new Counter({
      name: `${PREFIX}audit_events_total`,
      help: 'Audit events recorded, by type (docs/security.md).',
      labelNames: ['type'],
      registers,
    });
    const sources = this.sources;
    new Gauge({
      name: `${PREFIX}db_pool_connections`,
      help: 'PostgreSQL pool connections: open, idle, requests waiting for one, and the most the pool opens (max: database.pool_size); absent on PGlite.',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const usage = sources.pool?.();
        if (usage === undefined || usage === null) return;
        this.set({ state: 'open' }, usage.total);
        this.set({ state: 'idle' }, usage.idle);
        this.set({ state: 'waiting' }, usage.waiting);
        this.set({ state: 'max' }, usage.size);
      },
    });
    new Gauge({
      name: `${PREFIX}embedding_queue_items`,
      help: `Live items waiting for a vector of the current embedding model (counted up to ${EMBEDDING_QUEUE_BOUND}).`,
      registers,
      async collect() {
        this.reset();
        const count = await sources.embeddingQueue?.().catch(() => null);
        if (count !== undefined && count !== null) this.set(count);
      },
    });
    new Gauge({
      name: `${PREFIX}mcp_sessions`,
      help: 'Stateful MCP sessions open on this process.',
      registers,
      collect() {
        this.set(sources.sessions?.() ?? 0);
      },
    });
  }

  /** One answered HTTP request. `route`: the route pattern when known, else the path. */
  observeHttp(
    route: string | undefined,
    path: string,
    method: string,
    status: number,
    seconds: number,
  ): void {
    let label = route !== undefined && !route.includes('*') ? route : routePattern(path);
    if (route === undefined && status === 404) label = 'unmatched';
    if (!this.routes.has(label)) {
      if (this.routes.size >= MAX_ROUTES) label = 'other';
      else this.routes.add(label);
    }
    const labels = { route: label, method: METHODS.has(method) ? method : 'other', status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  observeToolCall(tool: string, outcome: ToolOutcome, seconds: number): void {
    let name = tool;
    if (!this.tools.has(name)) {
      if (this.tools.size >= MAX_TOOLS) name = 'other';
      else this.tools.add(name);
    }
    this.toolCalls.inc({ tool: name, outcome });
    this.toolDuration.observe({ tool: name }, seconds);
  }

  /** The token endpoint's answer: `error` null when tokens were issued. */
  observeToken(grantType: string | undefined, error: string | null): void {
    const grant = knownGrantType(grantType);
    if (error === null) this.tokensIssued.inc({ grant_type: grant });
    else this.tokenFailures.inc({ grant_type: grant, error: OAUTH_ERRORS.has(error) ? error : 'other' });
  }

  /** An audit event (src/security/audit.ts): counted by type, rate-limit hits also by limit. */
  observeAudit(type: string, details: Readonly<Record<string, unknown>>): void {
    this.auditEvents.inc({ type });
    if (type === 'rate_limit.hit') {
      const limit = details['limit'];
      this.rateLimitHits.inc({
        limit: typeof limit === 'string' && /^[a-z_-]{1,32}$/.test(limit) ? limit : 'other',
      });
    }
  }

  /** The exposition text. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

const GRANT_TYPES = new Set([
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:ietf:params:oauth:grant-type:token-exchange',
]);

const OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'server_error',
  'temporarily_unavailable',
]);

/**
 * Decides a scrape: with a token configured, only `Authorization: Bearer <token>` is answered (compared in
 * constant time); without one, anyone who reaches the listener is (it binds to loopback unless a token is set).
 */
export function metricsAccess(
  token: string | undefined,
  authorization: string | undefined,
): { ok: true } | { ok: false; status: 401; challenge: string } {
  if (token === undefined) return { ok: true };
  const match = /^Bearer[ ]+(\S+)$/i.exec(authorization ?? '');
  const presented = match?.[1];
  const digest = (value: string): Buffer => createHash('sha256').update(value).digest();
  if (presented !== undefined && timingSafeEqual(digest(presented), digest(token))) return { ok: true };
  return { ok: false, status: 401, challenge: 'Bearer realm="metrics"' };
}

/**
 * A request's grant_type as a label or log field: one of the grant types a token endpoint knows, else `other` (the
 * parameter is whatever the client sent — a token, once, in the fuzz suite).
 */
export function knownGrantType(grantType: string | undefined): string {
  return GRANT_TYPES.has(grantType ?? '') ? (grantType as string) : 'other';
}
