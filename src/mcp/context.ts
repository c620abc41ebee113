import type { Assistant, Change } from '../assistant/assistant.js';
import type { Logger } from '../observability/logger.js';

export const SCOPES = { read: 'pa.read', write: 'pa.write' } as const;

/** Who is calling: given by the transport (a fixed local user over stdio; the token's subject over HTTP). */
export interface CallerContext {
  readonly tenant: string;
  readonly scopes: ReadonlySet<string>;
  readonly clientId?: string | undefined;
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
}
