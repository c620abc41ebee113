/**
 * The embedded OAuth 2.1 authorization server: oidc-provider configured for MCP (see docs/adr/0010).
 *
 * - Authorization code with PKCE (S256; `plain` only when authentication.pkce_methods lists it, by rewriting the
 *   challenge to its S256 form before the library sees it), no implicit, no password grant; `iss` in every
 *   authorization response (RFC 9207).
 * - One resource (RFC 8707): the canonical MCP URI. Access tokens are JWTs (typ at+jwt, ES256) whose `aud` is
 *   that URI, lifetime authentication.token_expiry; a request without `resource` gets it by default, any other
 *   value invalid_target. A JWT cannot be looked up, so each carries its grant id (`gid`): the resource server
 *   refuses it once the grant is gone (revocation, code replay, refresh-token reuse, the connected-apps page).
 * - Refresh tokens rotate on every use; a reused one revokes the grant (the library's theft detection).
 * - Client authentication limited to authentication.client_auth_methods; private_key_jwt assertions must name
 *   the issuer alone as audience and live at most 5 minutes; secrets stored as digests (client-rules.ts).
 * - DPoP (RFC 9449) always accepted; mTLS (RFC 8705) with certificate-bound tokens when a client CA is set.
 * - Dynamic registration (RFC 7591/7592) behind features.dynamic_client_registration; Client ID Metadata
 *   Documents behind authentication.client_id_metadata_documents.
 */
import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Provider, errors, type KoaContextLike } from 'oidc-provider';
import type { Logger } from '../observability/logger.js';
import { SCOPES } from '../mcp/context.js';
import {
  applyClientRules,
  clientSecretMatches,
  ClientMetadataProblem,
  isHashedSecret,
} from './client-rules.js';
import type { OidcAdapterClass } from './oidc-adapter.js';
import {
  isDatabaseUnavailable,
  UNAVAILABLE_STATUS,
  unavailableHeaders,
  unavailableOAuth,
} from '../servers/http/unavailable.js';
import { renderRedirectNotice } from './pages.js';

export const OAUTH_PREFIX = '/oauth';
export const ROUTES = {
  authorization: `${OAUTH_PREFIX}/authorize`,
  token: `${OAUTH_PREFIX}/token`,
  registration: `${OAUTH_PREFIX}/register`,
  revocation: `${OAUTH_PREFIX}/revoke`,
  introspection: `${OAUTH_PREFIX}/introspect`,
  jwks: `${OAUTH_PREFIX}/jwks`,
  pushed_authorization_request: `${OAUTH_PREFIX}/par`,
  userinfo: `${OAUTH_PREFIX}/userinfo`,
  end_session: `${OAUTH_PREFIX}/logout`,
} as const;
export const INTERACTION_PREFIX = `${OAUTH_PREFIX}/interaction`;

export const RESOURCE_SCOPES = [SCOPES.read, SCOPES.write] as const;
export const SCOPE_DESCRIPTIONS: Record<string, string> = {
  [SCOPES.read]: 'Read your projects, tasks, calendar, documents and notes',
  [SCOPES.write]: 'Create, change and delete your projects, tasks, events, documents and notes',
  offline_access: 'Stay connected when you are not using it (refresh tokens)',
  openid: 'Know your account id',
};

/** Clients made with `mcp-pa clients add` (trusted by the operator); dynamic ones never get this prefix. */
export const OPERATOR_CLIENT_PREFIX = 'cli_';
export function isOperatorClient(clientId: string): boolean {
  return clientId.startsWith(OPERATOR_CLIENT_PREFIX);
}

export type ClientAuthMethod = 'none' | 'client_secret_basic' | 'private_key_jwt' | 'tls_client_auth';

export interface AuthorizationServerOptions {
  readonly issuer: string;
  /** The canonical MCP URI: the only resource, the tokens' audience. */
  readonly resource: string;
  readonly adapter: OidcAdapterClass;
  /** Private signing JWKs, active first. */
  readonly jwks: readonly Record<string, unknown>[];
  /** Keys signing cookies, newest first. */
  readonly cookieKeys: readonly string[];
  readonly tokenTtlSeconds: number;
  readonly pkceMethods: readonly ('S256' | 'plain')[];
  readonly clientAuthMethods: readonly ClientAuthMethod[];
  readonly dynamicRegistration: boolean;
  readonly clientIdMetadataDocuments: boolean;
  /** mTLS client authentication and certificate-bound tokens (a client CA is configured). */
  readonly mtls: boolean;
  /** Public clients must present DPoP at the token endpoint. */
  readonly requireDpopForPublicClients: boolean;
  /** fetch for client metadata documents and client JWKS (SSRF protection stays in the library). */
  readonly fetch?: (url: string | URL, init: RequestInit & { dispatcher?: unknown }) => Promise<Response>;
  readonly findAccount: (accountId: string) => Promise<{ id: string } | null>;
  /** The grant an account already gave a client (consent is remembered per client), if any. */
  readonly findGrant?: (accountId: string, clientId: string) => Promise<string | undefined>;
  /**
   * JWT access tokens, which the library refuses to revoke or introspect: verified here (signature, issuer,
   * audience; null when not ours or invalid) so /oauth/revoke revokes their grant and /oauth/introspect
   * answers for them.
   */
  readonly structuredTokens?: {
    verify(token: string): Promise<Record<string, unknown> | null>;
    grantActive(grantId: string, subject: string): Promise<boolean>;
    revokeGrant(grantId: string): Promise<void>;
  };
  readonly renderError: (status: number, error: string, description: string | undefined) => string;
  readonly logger: Logger;
  /**
   * The library reads X-Forwarded-Proto / X-Forwarded-Host (Koa's `proxy`): on when requests may come through
   * trusted TLS-terminating proxies (server.trust_proxy) or a public URL is set (its host goes to the library). The
   * HTTP layer removes those headers from every other peer and writes them itself for a proxy's accepted requests
   * and, with a public URL, for every HTTPS request (src/security/proxy.ts), so they are never a client's.
   */
  readonly behindProxy?: boolean;
}

const PRIVATE_KEY_JWT_MAX_LIFETIME_S = 300;

function peerCertificate(ctx: KoaContextLike): X509Certificate | undefined {
  const socket = ctx.req.socket as TLSSocket;
  if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
  return socket.getPeerX509Certificate() ?? undefined;
}

/** Builds the provider. Routes are served by handing raw requests to `provider.callback()`. */
export function createAuthorizationServer(options: AuthorizationServerOptions): Provider {
  const { resource, logger } = options;
  const tokenTtl = options.tokenTtlSeconds;
  const resourceScope = RESOURCE_SCOPES.join(' ');
  const defaultAuthMethod = options.clientAuthMethods.includes('none')
    ? 'none'
    : options.clientAuthMethods[0];
  const features: Record<string, unknown> = {
    devInteractions: { enabled: false },
    userinfo: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    clientCredentials: { enabled: false },
    // A client may revoke and introspect only its own tokens.
    revocation: {
      enabled: true,
      allowedPolicy: (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
        token.clientId === client.clientId,
    },
    introspection: {
      enabled: true,
      allowedPolicy: (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
        token.clientId === client.clientId,
    },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
    dPoP: { enabled: true },
    registration: {
      enabled: options.dynamicRegistration,
      initialAccessToken: false,
      issueRegistrationAccessToken: true,
      idFactory: () => `dcr_${randomBytes(16).toString('base64url')}`,
    },
    registrationManagement: { enabled: options.dynamicRegistration, rotateRegistrationAccessToken: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx: unknown, indicator: string) => {
        if (indicator !== resource) {
          throw new errors.InvalidTarget(`unknown resource; this server's resource is ${resource}`);
        }
        return {
          scope: resourceScope,
          audience: resource,
          accessTokenTTL: tokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
    clientIdMetadataDocument: { enabled: options.clientIdMetadataDocuments, ack: 'draft-02' },
    mTLS: {
      enabled: options.mtls,
      certificateBoundAccessTokens: options.mtls,
      tlsClientAuth: options.mtls,
      selfSignedTlsClientAuth: false,
      getCertificate: (ctx: KoaContextLike) => peerCertificate(ctx),
      certificateAuthorized: (ctx: KoaContextLike) => (ctx.req.socket as TLSSocket).authorized === true,
      certificateSubjectMatches: (ctx: KoaContextLike, property: string, expected: string) => {
        const cert = peerCertificate(ctx);
        if (!cert) return false;
        if (property === 'tls_client_auth_subject_dn') return subjectDnMatches(cert.subject, expected);
        const sans = (cert.subjectAltName ?? '').split(/,\s*/);
        if (property === 'tls_client_auth_san_dns') return sans.includes(`DNS:${expected}`);
        if (property === 'tls_client_auth_san_uri') return sans.includes(`URI:${expected}`);
        if (property === 'tls_client_auth_san_ip') return sans.includes(`IP Address:${expected}`);
        if (property === 'tls_client_auth_san_email') return sans.includes(`email:${expected}`);
        return false;
      },
    },
  };

  const provider = new Provider(options.issuer, {
    adapter: options.adapter,
    clients: [],
    jwks: { keys: options.jwks },
    cookies: {
      // __Host- needs Path=/, which the library uses only for its session cookie; the interaction cookies are
      // scoped to their own paths, so they carry __Secure- (ADR 0010).
      names: {
        session: '__Host-pa_session',
        interaction: '__Secure-pa_interaction',
        resume: '__Secure-pa_resume',
      },
      long: { httpOnly: true, sameSite: 'lax', secure: true, signed: true },
      short: { httpOnly: true, sameSite: 'lax', secure: true, signed: true },
      keys: [...options.cookieKeys],
    },
    routes: ROUTES,
    scopes: ['openid', 'offline_access', ...RESOURCE_SCOPES],
    claims: { openid: ['sub'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: [...options.clientAuthMethods],
    features,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: defaultAuthMethod,
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256'],
      clientAuthSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'],
      requestObjectSigningAlgValues: ['ES256', 'PS256', 'RS256', 'EdDSA', 'Ed25519'],
      dPoPSigningAlgValues: ['ES256', 'EdDSA', 'Ed25519'],
    },
    allowOmittingSingleRegisteredRedirectUri: false,
    acceptQueryParamAccessTokens: false,
    conformIdTokenClaims: true,
    ttl: {
      // A function (a number would override the resource's own TTL: ARCHITECTURE.md).
      AccessToken: () => tokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 30 * 60,
      Session: 14 * 24 * 3600,
      Grant: 30 * 24 * 3600,
      RefreshToken: () => 30 * 24 * 3600,
    },
    // Refresh tokens for every client allowed the refresh grant (offline_access would otherwise need
    // prompt=consent); rotated on every use.
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    revokeGrantPolicy: () => true,
    formats: {
      customizers: {
        jwt: (_ctx: unknown, token: { grantId?: string }, jwt: { payload: Record<string, unknown> }) => {
          if (token.grantId) jwt.payload['gid'] = token.grantId;
        },
      },
    },
    extraClientMetadata: {
      properties: ['software_id', 'software_version'],
      validator: (_ctx: unknown, key: string, value: unknown, metadata: Record<string, unknown>) => {
        if (key === 'software_id') {
          try {
            applyClientRules(metadata);
            // RFC 9449 §5.2: a client with dpop_bound_access_tokens gets no token without a DPoP proof.
            const method = metadata['token_endpoint_auth_method'] ?? defaultAuthMethod;
            if (options.requireDpopForPublicClients && method === 'none') {
              metadata['dpop_bound_access_tokens'] = true;
            }
          } catch (err) {
            if (err instanceof ClientMetadataProblem) {
              // InvalidClientMetadata keeps the description and answers invalid_redirect_uri when it starts with
              // "redirect_uris" (every 'redirect_uri' problem does); InvalidRedirectUri would replace it with a
              // fixed text about matching a registered URI.
              throw new errors.InvalidClientMetadata(err.message);
            }
            throw err;
          }
        }
        if (value !== undefined && (typeof value !== 'string' || value.length > 200)) {
          throw new errors.InvalidClientMetadata(`${key} must be a string of at most 200 characters`);
        }
      },
    },
    assertJwtClientAuthClaimsAndHeader: (
      ctx: KoaContextLike,
      claims: { aud?: unknown; exp?: unknown; iat?: unknown },
    ) => {
      const issuer = options.issuer;
      if (claims.aud !== issuer) {
        throw new errors.InvalidClientAuth(`the assertion's aud must be exactly the issuer ${issuer}`);
      }
      const now = Math.floor(Date.now() / 1000);
      // No clock-skew leeway for an expired assertion (the library would allow its clockTolerance of 15 s).
      if (typeof claims.exp === 'number' && claims.exp <= now) {
        throw new errors.InvalidClientAuth('the assertion has expired (exp is in the past)');
      }
      if (typeof claims.exp !== 'number' || claims.exp - now > PRIVATE_KEY_JWT_MAX_LIFETIME_S) {
        throw new errors.InvalidClientAuth(
          `the assertion must expire within ${PRIVATE_KEY_JWT_MAX_LIFETIME_S} seconds`,
        );
      }
      void ctx;
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const account = await options.findAccount(sub);
      if (!account) return undefined;
      return { accountId: account.id, claims: () => ({ sub: account.id }) };
    },
    // Consent is remembered per client: a grant this account gave the client before is reused (the prompt then
    // asks only for scopes it does not cover), also from a new browser.
    loadExistingGrant: async (ctx: {
      oidc: {
        result?: { consent?: { grantId?: string } };
        session: { accountId?: string; grantIdFor(clientId: string): string | undefined };
        client: { clientId: string };
        provider: Provider;
      };
    }) => {
      const { oidc } = ctx;
      const grantId =
        oidc.result?.consent?.grantId ??
        oidc.session.grantIdFor(oidc.client.clientId) ??
        (oidc.session.accountId && options.findGrant
          ? await options.findGrant(oidc.session.accountId, oidc.client.clientId)
          : undefined);
      return grantId ? oidc.provider.Grant.find(grantId) : undefined;
    },
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `${INTERACTION_PREFIX}/${interaction.uid}`,
    },
    renderError: (
      ctx: KoaContextLike,
      out: { error: string; error_description?: string },
      error: unknown,
    ) => {
      const status = (error as { statusCode?: number } | undefined)?.statusCode ?? 400;
      (ctx as KoaContextLike & { type: string }).type = 'html';
      ctx.body = options.renderError(status, out.error, out.error_description);
    },
    fetchResponseBodyLimits: {
      'client_id metadata document': 5 * 1024,
      jwks_uri: 64 * 1024,
      sector_identifier_uri: 64 * 1024,
    },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });

  // Behind a TLS-terminating proxy the connection is plain HTTP: Secure cookies and https URLs need the
  // forwarded protocol (see behindProxy).
  provider.proxy = options.behindProxy === true;

  checkPresentedSecretInUpdates(provider);

  // Client secrets are stored as digests (oidc-adapter.ts); compare those in constant time.
  const compare = provider.Client.prototype.compareClientSecret;
  provider.Client.prototype.compareClientSecret = function (this, actual: string) {
    const stored = (this as { clientSecret?: unknown }).clientSecret;
    if (isHashedSecret(stored)) return clientSecretMatches(stored, actual);
    return compare.call(this, actual);
  };

  /** Requests the library answered with server_error because the database was unreachable. */
  const databaseDown = new WeakSet<object>();
  // The database unreachable (PostgreSQL stopped or restarting): 503 with Retry-After instead of the library's 500
  // server_error, naming no cause (src/servers/http/unavailable.ts). Outermost, so it also sees what the
  // middlewares below throw.
  provider.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      databaseDown.add(ctx);
      ctx.status = 500;
    }
    if (ctx.status < 500 || !databaseDown.has(ctx)) return;
    const html = typeof ctx.body === 'string';
    ctx.status = UNAVAILABLE_STATUS;
    for (const [k, v] of Object.entries(unavailableHeaders())) ctx.set(k, v);
    const out = unavailableOAuth();
    if (html) {
      (ctx as KoaContextLike & { type: string }).type = 'html';
      ctx.body = options.renderError(UNAVAILABLE_STATUS, out.error, out.error_description);
    } else {
      ctx.body = out;
    }
  });

  const allowPlain = options.pkceMethods.includes('plain');
  provider.use(async (ctx, next) => {
    if (ctx.path === ROUTES.authorization && (ctx.method === 'GET' || ctx.method === 'POST')) {
      rewriteAuthorizationQuery(ctx as KoaContextWithQuery, allowPlain);
    }
    await next();
    if (ctx.path === '/.well-known/openid-configuration' && ctx.status === 200) {
      const body = ctx.body as Record<string, unknown>;
      if (allowPlain) body['code_challenge_methods_supported'] = ['S256', 'plain'];
      body['authorization_response_iss_parameter_supported'] = true;
    }
    // Public documents: readable from any origin without credentials (the library would echo the Origin), and
    // cacheable for a while.
    if (ctx.path === '/.well-known/openid-configuration' || ctx.path === ROUTES.jwks) {
      if (ctx.res.getHeader('access-control-allow-origin') !== undefined) {
        ctx.set('access-control-allow-origin', '*');
      }
      if (ctx.status === 200) ctx.set('cache-control', 'public, max-age=300');
    }
    // RFC 7592 reads and updates: the stored secret is a digest, not something to hand back.
    if (
      (ctx.oidc?.route === 'client' || ctx.oidc?.route === 'client_update') &&
      ctx.body &&
      typeof ctx.body === 'object'
    ) {
      const body = ctx.body as Record<string, unknown>;
      if (isHashedSecret(body['client_secret'])) delete body['client_secret'];
    }
  });

  // RFC 9700 §4.11.2: an error is not redirected automatically to a client the operator did not register
  // (dynamic registration, URL client ids) while nobody is signed in — a page shows where it would go.
  provider.use(async (ctx, next) => {
    await next();
    // Only the direct answer to an authorization request: after sign-in and consent (route "resume") the user
    // has seen the client's name and where it goes.
    if (ctx.oidc?.route !== 'authorization') return;
    if (ctx.status !== 302 && ctx.status !== 303) return;
    const location = ctx.res.getHeader('location');
    if (typeof location !== 'string') return;
    let target: URL;
    try {
      target = new URL(location);
    } catch {
      return;
    }
    // Errors for response types containing "token" come in the fragment; they carry no token, and the catalog
    // (and most clients) expect an error in the query: move unsupported_response_type there.
    const fragment = new URLSearchParams(target.hash.slice(1));
    if (fragment.get('error') === 'unsupported_response_type') {
      for (const [k, v] of fragment) target.searchParams.set(k, v);
      target.hash = '';
      ctx.res.setHeader('location', target.href);
    }
    const error = target.searchParams.get('error') ?? fragment.get('error');
    const client = ctx.oidc.client;
    if (error === null || !client || isOperatorClient(client.clientId)) return;
    // A signed-in user who already granted this client access may be sent back; anyone else sees the page.
    const session = (ctx.oidc as { session?: { accountId?: string } }).session;
    if (session?.accountId && (await options.findGrant?.(session.accountId, client.clientId))) return;
    ctx.status = 400;
    ctx.res.removeHeader('location');
    (ctx as KoaContextLike & { type: string }).type = 'html';
    ctx.body = renderRedirectNotice({
      clientName: client.clientName?.trim() || client.clientId,
      host: target.host || target.protocol,
      location: target.href,
      error,
      description:
        target.searchParams.get('error_description') ?? fragment.get('error_description') ?? undefined,
    });
  });

  const structured = options.structuredTokens;
  if (structured) {
    provider.use(async (ctx, next) => {
      await next();
      const route = ctx.oidc?.route;
      if (route !== 'revocation' && route !== 'introspection') return;
      const body = ctx.body as { error?: unknown } | undefined;
      if (ctx.status !== 400 || body?.error !== 'unsupported_token_type') return;
      // Reached only after the client authenticated (the library checks the client first).
      const client = ctx.oidc?.client;
      const token = ctx.oidc?.params?.['token'];
      if (!client || typeof token !== 'string') return;
      const claims = await structured.verify(token);
      const own = claims !== null && claims['client_id'] === client.clientId;
      const gid = own && typeof claims['gid'] === 'string' ? claims['gid'] : undefined;
      const sub = own && typeof claims['sub'] === 'string' ? claims['sub'] : undefined;
      ctx.status = 200;
      if (route === 'revocation') {
        // RFC 7009 §2.2: 200 whether or not the token was valid; revoking an access token revokes its grant.
        if (gid) await structured.revokeGrant(gid);
        ctx.body = '';
        return;
      }
      const active = gid !== undefined && sub !== undefined && (await structured.grantActive(gid, sub));
      if (!active || !claims) {
        ctx.body = { active: false };
        return;
      }
      const cnf = claims['cnf'] as Record<string, unknown> | undefined;
      ctx.body = {
        active: true,
        ...Object.fromEntries(
          ['sub', 'client_id', 'scope', 'exp', 'iat', 'iss', 'aud', 'jti', 'cnf'].flatMap((k) =>
            claims[k] === undefined ? [] : [[k, claims[k]]],
          ),
        ),
        token_type: cnf?.['jkt'] ? 'DPoP' : 'Bearer',
      };
    });
  }

  provider.on('server_error', (ctx: unknown, err: unknown) => {
    if (isDatabaseUnavailable(err) && typeof ctx === 'object' && ctx !== null) {
      databaseDown.add(ctx);
      logger.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'authorization server: database unavailable',
      );
      return;
    }
    logger.error({ err: err instanceof Error ? err.message : String(err) }, 'authorization server error');
  });
  return provider;
}

/**
 * Node prints a certificate's subject one attribute per line, most significant first (C, O, …, CN); a DN
 * registered in RFC 4514 form lists them the other way round (CN first). Either order is accepted; attribute
 * types are compared case-insensitively, values exactly (escaped commas stay inside their value).
 */
export function subjectDnMatches(certSubject: string, expected: string): boolean {
  const norm = (parts: string[]): string[] =>
    parts
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p) => {
        const eq = p.indexOf('=');
        return eq < 1 ? p : `${p.slice(0, eq).trim().toUpperCase()}=${p.slice(eq + 1).trim()}`;
      });
  const cert = norm(certSubject.split('\n'));
  const given = norm(expected.split(/(?<!\\),/)).map((p) => p.replace(/\\,/g, ','));
  if (cert.length === 0 || cert.length !== given.length) return false;
  const same = (a: string[], b: string[]): boolean => a.every((v, i) => v === b[i]);
  return same(cert, given) || same(cert, [...given].reverse());
}

type KoaContextWithQuery = KoaContextLike & { query: Record<string, string | string[] | undefined> };

/** A missing scope becomes both resource scopes; a `plain` PKCE challenge becomes its S256 form when allowed. */
function rewriteAuthorizationQuery(ctx: KoaContextWithQuery, allowPlain: boolean): void {
  const query = { ...ctx.query };
  const params = new Map<string, string | undefined>(
    Object.entries(query).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]),
  );
  const changes = authorizationDefaults((k) => params.get(k), allowPlain);
  if (changes.length === 0) return;
  for (const [k, v] of changes) query[k] = v;
  ctx.query = query;
}

/**
 * What an authorization request (query, POST form or pushed request) gets before the library sees it: both
 * resource scopes when it names no scope (the library would otherwise end it in access_denied), and — only
 * when `plain` PKCE is allowed — a plain challenge turned into its S256 form (the verifier then matches as is).
 */
export function authorizationDefaults(
  get: (name: string) => string | undefined,
  allowPlain: boolean,
): [string, string][] {
  const changes: [string, string][] = [];
  if (get('scope') === undefined && get('request_uri') === undefined) {
    changes.push(['scope', RESOURCE_SCOPES.join(' ')]);
  }
  const challenge = get('code_challenge');
  if (allowPlain && get('code_challenge_method') === 'plain' && challenge !== undefined) {
    changes.push(['code_challenge', s256(challenge)], ['code_challenge_method', 'S256']);
  }
  return changes;
}

function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/**
 * RFC 7592 §2.2: an update may repeat the client's secret, and the server checks it against the current one. The
 * library compares it with the stored value as text, but the stored value is a digest (oidc-adapter.ts). The
 * request context is subclassed so that, when the library sets the parsed body of an update, a presented secret
 * that matches the digest (in constant time) is swapped for the digest and its comparison passes; anything else
 * (the digest itself included) is swapped for '' and refused.
 */
function checkPresentedSecretInUpdates(provider: Provider): void {
  const Base = provider.OIDCContext;
  class UpdateCheckingContext extends Base {
    #body: unknown;
    override get body(): unknown {
      return this.#body;
    }
    override set body(value: unknown) {
      this.#body = value;
      if (this.route !== 'client_update' || value === null || typeof value !== 'object') return;
      const stored = this.client?.clientSecret;
      if (!isHashedSecret(stored) || !('client_secret' in value)) return;
      const presented = (value as Record<string, unknown>)['client_secret'];
      this.#body = { ...value, client_secret: clientSecretMatches(stored, presented) ? stored : '' };
    }
  }
  Object.defineProperty(provider, 'OIDCContext', { value: UpdateCheckingContext });
}
