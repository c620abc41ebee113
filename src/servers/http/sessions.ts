import { performance } from 'node:perf_hooks';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import {
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type ListToolsResult,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { CallerContext, McpDependencies } from '../../mcp/context.js';
import { createMcpServer } from '../../mcp/server.js';

/**
 * MCP server instances for HTTP: one per stateful session (bound to the caller who opened it), or a pool of built
 * instances lent to one stateless request at a time. Building a server (its tools, resources, prompts and their
 * schemas) is most of the cost of a stateless request, so instances are reused, never shared concurrently.
 */

const CALLER_KEY = 'mcp-pa/caller';

/** The SDK's per-request auth info carrying the caller (kept beside whatever an auth layer already put there). */
export function authInfoFor(caller: CallerContext, existing?: AuthInfo): AuthInfo {
  return {
    ...(existing ?? { token: '', clientId: caller.clientId ?? '', scopes: [...caller.scopes] }),
    extra: { ...existing?.extra, [CALLER_KEY]: caller },
  };
}

/** The caller a request's auth info carries, if any. */
export function callerFromExtra(extra: { authInfo?: unknown }): CallerContext | undefined {
  const info = extra.authInfo as AuthInfo | undefined;
  const caller = info?.extra?.[CALLER_KEY] as CallerContext | undefined;
  return caller !== undefined && typeof caller.tenant === 'string' ? caller : undefined;
}

/** Sessions belong to a tenant and a client: another caller presenting the id is treated as not knowing it. */
export function ownerKey(caller: CallerContext): string {
  return JSON.stringify([caller.tenant, caller.clientId ?? null]);
}

export type BaseDependencies = Omit<McpDependencies, 'caller' | 'completionTenant'>;

function noCaller(): never {
  throw new McpError(ErrorCode.InternalError, 'request reached the MCP server without a caller');
}

/**
 * tools/list, answered once. The SDK converts every tool's zod schemas to JSON Schema on each tools/list (18 ms for
 * our 23 tools, against 8 ms to build a whole server); the list is the same for every server this process builds and
 * never changes while it runs, so it is computed once, through a real client on an in-memory transport, and every
 * server answers it from there.
 */
export async function computeToolList(deps: BaseDependencies, zone: string): Promise<ListToolsResult> {
  const server = createMcpServer({ ...deps, caller: noCaller, completionTenant: null }, zone);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'mcp-pa-tool-list', version: deps.version });
  try {
    await client.connect(clientSide);
    // Taken as the server sent it: no client-side parsing that could drop a field.
    const raw = await client.request(
      { method: 'tools/list', params: {} },
      z.looseObject({ tools: z.array(z.unknown()) }),
    );
    return raw as ListToolsResult;
  } finally {
    await client.close();
    await server.close();
  }
}

function answerToolList(server: McpServer, toolList: ListToolsResult | undefined): McpServer {
  if (toolList !== undefined) server.server.setRequestHandler(ListToolsRequestSchema, () => toolList);
  return server;
}

export interface Session {
  readonly id: string;
  readonly owner: string;
  readonly server: McpServer;
  readonly transport: StreamableHTTPServerTransport;
  /** Requests (SSE streams included) being served now; an idle session has none. */
  inFlight: number;
  lastActive: number;
}

/** Builds the MCP server of a session: its caller is fixed, so completions and subscriptions are its tenant's. */
export function buildSessionServer(
  deps: BaseDependencies,
  caller: CallerContext,
  zone: string,
  toolList?: ListToolsResult,
): McpServer {
  return answerToolList(
    createMcpServer(
      { ...deps, caller: (extra) => callerFromExtra(extra) ?? caller, completionTenant: caller.tenant },
      zone,
    ),
    toolList,
  );
}

export interface RegistryOptions {
  readonly maxSessions: number;
  readonly idleMs: number;
  /** Monotonic milliseconds (default performance.now()). */
  readonly now?: () => number;
  readonly onEvict?: (session: Session, reason: 'idle' | 'capacity' | 'shutdown') => void;
}

/** Live stateful sessions: bounded in number, expired when idle, each bound to its owner. */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;

  constructor(private readonly options: RegistryOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get size(): number {
    return this.sessions.size;
  }

  /** The session with this id if `owner` owns it; undefined for unknown ids and for other callers alike. */
  find(id: string, owner: string): Session | undefined {
    const s = this.sessions.get(id);
    return s !== undefined && s.owner === owner ? s : undefined;
  }

  /**
   * Makes room for one more session: drops expired ones, then the least recently active idle one. False when every
   * session is busy (the caller answers 503).
   */
  makeRoom(): boolean {
    this.sweep();
    if (this.sessions.size < this.options.maxSessions) return true;
    let oldest: Session | undefined;
    for (const s of this.sessions.values()) {
      if (s.inFlight === 0 && (oldest === undefined || s.lastActive < oldest.lastActive)) oldest = s;
    }
    if (oldest === undefined) return false;
    this.end(oldest, 'capacity');
    return true;
  }

  add(session: Session): void {
    if (this.sessions.size >= this.options.maxSessions) this.makeRoom();
    this.sessions.set(session.id, session);
  }

  /** Forgets a session (its transport closed: DELETE, eviction or shutdown). */
  remove(id: string): void {
    this.sessions.delete(id);
  }

  begin(session: Session): void {
    session.inFlight++;
    session.lastActive = this.now();
  }

  finish(session: Session): void {
    session.inFlight = Math.max(0, session.inFlight - 1);
    session.lastActive = this.now();
  }

  /** Ends sessions idle for longer than the idle timeout. */
  sweep(): void {
    const cutoff = this.now() - this.options.idleMs;
    for (const s of [...this.sessions.values()]) {
      if (s.inFlight === 0 && s.lastActive <= cutoff) this.end(s, 'idle');
    }
  }

  /** Ends every session's standalone SSE (GET) stream, so clients stop waiting on this server. */
  closeStreams(): void {
    for (const s of this.sessions.values()) s.transport.closeStandaloneSSEStream();
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => this.end(s, 'shutdown')));
  }

  private end(session: Session, reason: 'idle' | 'capacity' | 'shutdown'): Promise<void> {
    this.sessions.delete(session.id);
    this.options.onEvict?.(session, reason);
    // Closing the server closes its transport: open streams end, in-flight handlers are aborted.
    return session.server.close().catch(() => undefined);
  }
}

/** A pooled server and the caller of the one request it is lent to (completions carry no caller of their own). */
export interface PooledServer {
  readonly server: McpServer;
  caller: CallerContext | null;
}

/**
 * Built servers for stateless requests. A server is lent to one request at a time and comes back after its
 * transport closed. Tenant state cannot travel between requests: the caller comes with each request (auth info),
 * completions read the borrower's tenant, and a server's change-notification listener is removed when its first
 * transport closes (a stateless request has no stream to notify on after it ends).
 */
export class ServerPool {
  private readonly idle: PooledServer[] = [];
  private closed = false;
  /** How many servers were built (to show reuse). */
  built = 0;

  constructor(
    private readonly deps: BaseDependencies,
    private readonly zone: string,
    private readonly maxIdle: number,
    private readonly toolList?: ListToolsResult,
  ) {}

  acquire(caller: CallerContext): PooledServer {
    const pooled = this.idle.pop() ?? this.build();
    pooled.caller = caller;
    return pooled;
  }

  release(pooled: PooledServer): void {
    pooled.caller = null;
    if (this.closed || this.idle.length >= this.maxIdle) return;
    this.idle.push(pooled);
  }

  close(): void {
    this.closed = true;
    this.idle.length = 0;
  }

  private build(): PooledServer {
    this.built++;
    const pooled: PooledServer = { server: undefined as unknown as McpServer, caller: null };
    const deps: McpDependencies = {
      ...this.deps,
      caller: (extra) => callerFromExtra(extra) ?? pooled.caller ?? noCaller(),
      get completionTenant() {
        return pooled.caller?.tenant ?? null;
      },
    };
    (pooled as { server: McpServer }).server = answerToolList(
      createMcpServer(deps, this.zone, { subscriptions: false }),
      this.toolList,
    );
    return pooled;
  }
}
