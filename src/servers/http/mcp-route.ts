import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isJsonContentType } from '@modelcontextprotocol/sdk/shared/mediaType.js';
import {
  isInitializeRequest,
  SUPPORTED_PROTOCOL_VERSIONS,
  type ListToolsResult,
} from '@modelcontextprotocol/sdk/types.js';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CallerContext } from '../../mcp/context.js';
import type { Logger } from '../../observability/logger.js';
import { jsonRpcError, RPC, type OriginPolicy } from './guards.js';
import {
  isDatabaseUnavailable,
  UNAVAILABLE_MESSAGE,
  UNAVAILABLE_STATUS,
  unavailableHeaders,
} from './unavailable.js';
import {
  authInfoFor,
  buildSessionServer,
  ownerKey,
  type BaseDependencies,
  type ServerPool,
  type Session,
  type SessionRegistry,
} from './sessions.js';

/**
 * The MCP Streamable HTTP endpoint (spec 2025-11-25, basic/transports): POST for JSON-RPC messages, GET for the
 * session's server-to-client SSE stream, DELETE to end a session. Every refusal is a JSON-RPC error body with the
 * status the spec or HTTP gives it. The SDK's transport does the protocol work; this layer checks what must be checked
 * before a body is read (Origin, caller, protocol version, Accept, Content-Type), reads and parses the body itself
 * (limit 413, parse errors -32700), and routes the request to its session or to a pooled server.
 */

export const MCP_PATH = '/mcp';

export interface McpRouteOptions {
  readonly sessions: 'stateful' | 'stateless';
  readonly bodyLimitBytes: number;
  readonly origins: OriginPolicy;
  /** Who is calling, or why the request is refused (status, WWW-Authenticate). Runs before the body is read. */
  readonly authenticate: (req: IncomingMessage) => Promise<CallerDecision>;
  /**
   * The scope a message needs that the caller lacks (null: none): answered 403 insufficient_scope with the
   * WWW-Authenticate `challenge` gives, so the client can step up.
   */
  readonly missingScope?: (message: unknown, caller: CallerContext) => string | null;
  readonly insufficientScope?: (scope: string) => string;
  /** Told about each 403 (a foreign Origin, a missing scope), for the audit trail. */
  readonly onForbidden?: (
    req: IncomingMessage,
    reason: 'origin' | 'scope',
    detail: string,
    caller: CallerContext | undefined,
  ) => void;
  readonly deps: BaseDependencies;
  readonly defaultTimeZone: string;
  readonly registry: SessionRegistry;
  readonly pool: ServerPool;
  readonly logger: Logger;
  /** The cached tools/list answer (see computeToolList). */
  readonly toolList: ListToolsResult | undefined;
}

const CORS_ALLOW_HEADERS =
  'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID';
const CORS_EXPOSE_HEADERS = 'Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate';

type McpRequest = FastifyRequest & { mcpCaller?: CallerContext };

export type CallerDecision =
  | { readonly ok: true; readonly caller: CallerContext }
  | {
      readonly ok: false;
      readonly status: number;
      /** '' sends no WWW-Authenticate (a refusal that is not about credentials, e.g. 429). */
      readonly wwwAuthenticate: string;
      readonly message: string;
      /** Further response headers (e.g. Retry-After with 429). */
      readonly headers?: Readonly<Record<string, string>>;
    };

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function refuse(
  reply: FastifyReply,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): FastifyReply {
  return reply
    .code(status)
    .headers({ 'content-type': 'application/json', ...headers })
    .send(JSON.stringify(jsonRpcError(code, message)));
}

/** JSON.parse that drops `__proto__` keys (a body must not be able to give parsed objects a prototype). */
function parseJson(text: string): unknown {
  if (!text.includes('__proto__')) return JSON.parse(text);
  return JSON.parse(text, (key, value: unknown) => (key === '__proto__' ? undefined : value));
}

/** How deeply a /mcp body may nest arrays and objects: far beyond any real message, far below a stack's limits. */
const MAX_JSON_DEPTH = 64;

/** Whether parsed JSON nests arrays/objects deeper than `max` levels (iterative: hostile depth cannot overflow). */
function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (node === null || typeof node !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

function isMessage(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const o = m as Record<string, unknown>;
  return o['jsonrpc'] === '2.0' && (typeof o['method'] === 'string' || 'id' in o);
}

/** A JSON-RPC 2.0 message or a non-empty batch of them, in outline (the SDK validates the details). */
function isJsonRpc(body: unknown): boolean {
  return Array.isArray(body) ? body.length > 0 && body.every(isMessage) : isMessage(body);
}

function containsInitialize(body: unknown): boolean {
  return Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body);
}

/**
 * Makes the response uncacheable whatever the SDK writes: its SSE responses say `no-cache, no-transform`, /mcp answers
 * `no-store` (keeping `no-transform`, which stops proxies from compressing a stream). Headers given to writeHead win
 * over those set before, so the SDK's Cache-Control is rewritten there.
 */
function forceNoStore(res: ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
    for (const arg of args) {
      if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) continue;
      const headers = arg as OutgoingHttpHeaders;
      for (const key of Object.keys(headers)) {
        if (key.toLowerCase() !== 'cache-control') continue;
        headers[key] = String(headers[key]).includes('no-transform') ? 'no-store, no-transform' : 'no-store';
      }
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
}

export function registerMcpRoute(app: FastifyInstance, options: McpRouteOptions): void {
  const { registry, pool } = options;
  const stateful = options.sessions === 'stateful';
  const allowedMethods = stateful ? 'GET, POST, DELETE' : 'POST';
  const tooLarge = `Payload Too Large: request body must not exceed ${options.bodyLimitBytes} bytes`;

  /** The tenant's own zone for a new session's instructions; the default when it cannot be read. */
  async function zoneFor(tenant: string): Promise<string> {
    try {
      return await options.deps.assistant.timeZone(tenant);
    } catch {
      return options.defaultTimeZone;
    }
  }

  /** Checks made before the body is read, in the order the spec's failure modes are most useful to a client. */
  async function checks(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const req = request as McpRequest;
    const origin = header(req, 'origin');
    if (!options.origins.allows(origin)) {
      options.onForbidden?.(req.raw, 'origin', (origin ?? '').slice(0, 200), undefined);
      return refuse(reply, 403, RPC.server, `Forbidden: Origin ${origin ?? ''} is not allowed`);
    }
    if (origin !== undefined) {
      reply.raw.setHeader('Access-Control-Allow-Origin', origin);
      reply.raw.setHeader('Access-Control-Expose-Headers', CORS_EXPOSE_HEADERS);
      reply.raw.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      return reply
        .code(204)
        .headers({
          allow: `${allowedMethods}, OPTIONS`,
          'access-control-allow-methods': allowedMethods,
          'access-control-allow-headers': CORS_ALLOW_HEADERS,
          'access-control-max-age': '600',
        })
        .send();
    }
    if (req.method !== 'POST' && (!stateful || (req.method !== 'GET' && req.method !== 'DELETE'))) {
      const why = stateful ? '' : ' (stateless server: no SSE stream and no session to end)';
      return refuse(reply, 405, RPC.server, `Method Not Allowed: ${req.method}${why}`, {
        allow: allowedMethods,
      });
    }
    const decision = await options.authenticate(req.raw);
    if (!decision.ok) {
      return refuse(reply, decision.status, RPC.server, decision.message, {
        ...(decision.wwwAuthenticate !== '' ? { 'www-authenticate': decision.wwwAuthenticate } : {}),
        ...decision.headers,
      });
    }
    req.mcpCaller = decision.caller;
    const version = header(req, 'mcp-protocol-version');
    if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return refuse(
        reply,
        400,
        RPC.server,
        `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
      );
    }
    const accept = header(req, 'accept') ?? '';
    if (req.method === 'GET' && !accept.includes('text/event-stream')) {
      return refuse(reply, 406, RPC.server, 'Not Acceptable: Client must accept text/event-stream');
    }
    if (req.method === 'POST') {
      if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
        return refuse(
          reply,
          406,
          RPC.server,
          'Not Acceptable: Client must accept both application/json and text/event-stream',
        );
      }
      if (!isJsonContentType(header(req, 'content-type'))) {
        return refuse(
          reply,
          415,
          RPC.server,
          'Unsupported Media Type: Content-Type must be application/json',
        );
      }
    }
    return undefined;
  }

  /** Hands the request to a transport on the raw response (headers already set there survive the hijack). */
  async function handOver(
    request: McpRequest,
    reply: FastifyReply,
    transport: StreamableHTTPServerTransport,
    body: unknown,
  ): Promise<void> {
    reply.hijack();
    const res = reply.raw;
    forceNoStore(res);
    const raw = request.raw as IncomingMessage & { auth?: AuthInfo };
    raw.auth = authInfoFor(request.mcpCaller as CallerContext, raw.auth);
    try {
      await transport.handleRequest(raw, res, body);
    } catch (err) {
      const unavailable = isDatabaseUnavailable(err);
      options.logger[unavailable ? 'warn' : 'error'](
        { err: (err as Error).message, reqId: request.id },
        unavailable ? 'MCP request: database unavailable' : 'MCP transport failed',
      );
      if (!res.headersSent) {
        if (unavailable) {
          res.writeHead(UNAVAILABLE_STATUS, { 'content-type': 'application/json', ...unavailableHeaders() });
          res.end(JSON.stringify(jsonRpcError(RPC.server, UNAVAILABLE_MESSAGE)));
          return;
        }
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(jsonRpcError(-32603, 'Internal error')));
      } else {
        res.destroy();
      }
    }
  }

  async function serveSession(
    request: McpRequest,
    reply: FastifyReply,
    session: Session,
    body: unknown,
  ): Promise<void> {
    registry.begin(session);
    reply.raw.once('close', () => registry.finish(session));
    await handOver(request, reply, session.transport, body);
  }

  async function openSession(request: McpRequest, reply: FastifyReply, body: unknown): Promise<void> {
    const caller = request.mcpCaller as CallerContext;
    if (!registry.makeRoom()) {
      refuse(reply, 503, RPC.server, 'Service Unavailable: too many active sessions, retry later', {
        'retry-after': '5',
      });
      return;
    }
    const server = buildSessionServer(options.deps, caller, await zoneFor(caller.tenant), options.toolList);
    let session: Session | undefined;
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        session = { id, owner: ownerKey(caller), server, transport, inFlight: 0, lastActive: 0 };
        registry.add(session);
        registry.begin(session);
      },
      onsessionclosed: (id) => registry.remove(id),
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) registry.remove(transport.sessionId);
    };
    await server.connect(transport);
    reply.raw.once('close', () => {
      if (session !== undefined) registry.finish(session);
    });
    await handOver(request, reply, transport, body);
    // The SDK refused the initialization (a batch, a bad message): nothing to keep.
    if (transport.sessionId === undefined) await server.close().catch(() => undefined);
  }

  async function stateless(request: McpRequest, reply: FastifyReply, body: unknown): Promise<void> {
    const pooled = pool.acquire(request.mcpCaller as CallerContext);
    // A stateless transport serves exactly one request (the SDK refuses reuse); the server it drives is reused.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    await pooled.server.connect(transport);
    reply.raw.once('close', () => {
      void transport
        .close()
        .catch(() => undefined)
        .finally(() => pool.release(pooled));
    });
    await handOver(request, reply, transport, body);
  }

  void app.register(async (scope) => {
    // /mcp reads its body itself: Fastify's JSON parser would answer bad bodies with its own error format.
    scope.decorateRequest('mcpCaller', undefined);
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: options.bodyLimitBytes },
      (_req, body, done) => done(null, body),
    );

    scope.setErrorHandler((error: FastifyError, request, reply) => {
      switch (error.code) {
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
          return refuse(reply, 413, RPC.server, tooLarge);
        case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
          return refuse(
            reply,
            415,
            RPC.server,
            'Unsupported Media Type: Content-Type must be application/json',
          );
        case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
          return refuse(reply, 400, RPC.parseError, 'Parse error: body length does not match Content-Length');
      }
      const status = error.statusCode ?? 500;
      if (status >= 400 && status < 500) return refuse(reply, status, RPC.server, error.message);
      if (isDatabaseUnavailable(error)) {
        // The token's grant could not be checked (or another lookup failed) because the database is down.
        options.logger.warn({ err: error.message, reqId: request.id }, 'MCP request: database unavailable');
        return refuse(reply, UNAVAILABLE_STATUS, RPC.server, UNAVAILABLE_MESSAGE, unavailableHeaders());
      }
      options.logger.error({ err: error.message, reqId: request.id }, 'MCP request failed');
      return refuse(reply, 500, -32603, 'Internal error');
    });

    scope.all(MCP_PATH, { onRequest: checks, bodyLimit: options.bodyLimitBytes }, async (request, reply) => {
      const req = request as McpRequest;
      let body: unknown;
      if (req.method === 'POST') {
        const raw = req.body as Buffer | undefined;
        try {
          body = parseJson(raw === undefined ? '' : raw.toString('utf8'));
        } catch {
          return refuse(reply, 400, RPC.parseError, 'Parse error: the body is not valid JSON');
        }
        if (nestedDeeperThan(body, MAX_JSON_DEPTH)) {
          return refuse(
            reply,
            400,
            RPC.invalidRequest,
            `Invalid Request: JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
          );
        }
        if (!isJsonRpc(body)) {
          return refuse(
            reply,
            400,
            RPC.invalidRequest,
            'Invalid Request: expected a JSON-RPC 2.0 message (or a batch of them)',
          );
        }
      }
      if (options.missingScope && options.insufficientScope) {
        const caller = req.mcpCaller as CallerContext;
        for (const message of Array.isArray(body) ? body : [body]) {
          const scope = options.missingScope(message, caller);
          if (scope !== null) {
            options.onForbidden?.(req.raw, 'scope', scope, caller);
            return refuse(reply, 403, RPC.server, `Forbidden: this request needs the ${scope} scope`, {
              'www-authenticate': options.insufficientScope(scope),
            });
          }
        }
      }
      if (!stateful) return stateless(req, reply, body);

      const sessionId = header(req, 'mcp-session-id');
      if (sessionId === undefined) {
        if (req.method === 'POST' && containsInitialize(body)) return openSession(req, reply, body);
        return refuse(reply, 400, RPC.server, 'Bad Request: Mcp-Session-Id header is required');
      }
      const session = registry.find(sessionId, ownerKey(req.mcpCaller as CallerContext));
      if (session === undefined) return refuse(reply, 404, RPC.sessionNotFound, 'Session not found');
      return serveSession(req, reply, session, body);
    });
  });
}
