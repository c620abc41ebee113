import type { Assistant, Change } from '../assistant/assistant.js';
import type { Logger } from '../observability/logger.js';

export const SCOPES = { read: 'pa.read', write: 'pa.write' } as const;

/** Who is calling: given by the transport (a fixed local user over stdio; the token's subject over HTTP). */
export interface CallerContext {
  readonly tenant: string;
  readonly scopes: ReadonlySet<string>;
  readonly clientId?: string | undefined;
  /** Where the request came from and its id (HTTP mode), for the audit trail. */
  readonly address?: string | undefined;
  readonly requestId?: string | undefined;
}

export const LOCAL_CALLER: CallerContext = {
  tenant: 'local',
  scopes: new Set([SCOPES.read, SCOPES.write]),
};

/** Fans the assistant's change events out to every connected MCP session that may care. */
export class ChangeHub {
  private readonly listeners = new Set<(tenant: string, change: Change) => void>();

  emit = (tenant: string, change: Change): void => {
    for (const l of this.listeners) l(tenant, change);
  };

  subscribe(listener: (tenant: string, change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface McpDependencies {
  readonly assistant: Assistant;
  readonly hub: ChangeHub;
  readonly logger: Logger;
  readonly version: string;
  /** Maps the SDK's per-request info (auth, session) to the caller. */
  readonly caller: (extra: { authInfo?: unknown; sessionId?: string | undefined }) => CallerContext;
  readonly clock?: () => Date;
  /**
   * Completion requests carry no caller: the tenant whose ids may be offered as completions (the local user), or
   * null to offer none.
   */
  readonly completionTenant: string | null;
  /**
   * Told when a tool names a record the caller does not have — another tenant's id looks exactly like an id that
   * does not exist, and both are refused alike — so the HTTP server can audit it.
   */
  readonly onNotFound?:
    ((caller: CallerContext, tool: string, field: string | undefined) => void) | undefined;
  /** Told after every tool call that reached the tool (metrics and the request log); ok is false for isError. */
  readonly onToolCall?:
    ((call: { tool: string; ok: boolean; seconds: number; caller: CallerContext }) => void) | undefined;
}
