/**
 * The parts of oidc-provider 9 that mcp-pa uses (the package ships no type declarations). Configuration is
 * passed as a plain object checked by the library at construction; results are typed narrowly here.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface KoaContextLike {
    readonly method: string;
    readonly path: string;
    readonly url: string;
    readonly req: IncomingMessage;
    readonly res: ServerResponse;
    status: number;
    body: unknown;
    readonly ip: string;
    readonly secure: boolean;
    get(header: string): string;
    set(header: string, value: string): void;
    readonly oidc?: OidcContext | undefined;
  }

  export interface OidcContext {
    readonly route?: string;
    readonly client?: ClientLike | undefined;
    readonly params?: Record<string, unknown>;
    readonly issuer: string;
  }

  export interface ClientLike {
    readonly clientId: string;
    readonly clientName?: string | undefined;
    readonly redirectUris: readonly string[];
    readonly clientAuthMethod: string;
    readonly applicationType?: string;
    grantTypeAllowed(type: string): boolean;
    metadata(): Record<string, unknown>;
  }

  export interface InteractionDetails {
    readonly uid: string;
    readonly prompt: {
      readonly name: string;
      readonly reasons: readonly string[];
      readonly details: Record<string, unknown>;
    };
    readonly params: Record<string, unknown>;
    readonly session?: { readonly accountId?: string } | undefined;
    readonly grantId?: string | undefined;
    readonly returnTo: string;
    readonly lastSubmission?: Record<string, unknown> | undefined;
  }

  export interface GrantInstance {
    readonly jti: string;
    accountId?: string;
    clientId?: string;
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    getOIDCScope(): string;
    getResourceScope(resource: string): string;
    save(ttl?: number): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface GrantClass {
    new (fields: { accountId: string; clientId: string }): GrantInstance;
    find(id: string): Promise<GrantInstance | undefined>;
  }

  export interface ClientClass {
    find(id: string): Promise<ClientLike | undefined>;
    prototype: { compareClientSecret(this: ClientLike & { clientSecret?: string }, actual: string): unknown };
  }

  /** The per-request context (ctx.oidc); subclassed to see the parsed body (provider.ts). */
  export interface OIDCContextLike {
    readonly route?: string;
    readonly client?: { readonly clientSecret?: unknown };
    body?: unknown;
  }

  export type OIDCContextClass = new (ctx: KoaContextLike) => OIDCContextLike;

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly OIDCContext: OIDCContextClass;
    readonly issuer: string;
    proxy: boolean;
    readonly Grant: GrantClass;
    readonly Client: ClientClass;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    use(middleware: (ctx: KoaContextLike, next: () => Promise<void>) => Promise<void>): void;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export class OIDCProviderError extends Error {
    constructor(status: number, message: string);
    readonly error: string;
    error_description?: string;
    readonly status: number;
    readonly statusCode: number;
  }

  export const errors: {
    readonly InvalidTarget: new (description?: string, detail?: string) => OIDCProviderError;
    readonly InvalidClientAuth: new (detail?: string) => OIDCProviderError;
    readonly InvalidClientMetadata: new (description?: string, detail?: string) => OIDCProviderError;
    readonly InvalidRedirectUri: new (description?: string, detail?: string) => OIDCProviderError;
    readonly InvalidRequest: new (description?: string, code?: number, detail?: string) => OIDCProviderError;
    readonly AccessDenied: new (description?: string, detail?: string) => OIDCProviderError;
    readonly OIDCProviderError: typeof OIDCProviderError;
  };

  export default Provider;
}
