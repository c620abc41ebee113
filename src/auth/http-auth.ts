/**
 * HTTP mode's authorization, as the HTTP app sees it: the token check for /mcp, and the raw handler for every
 * path the authorization side owns — the embedded authorization server (/oauth/*, its metadata), its login,
 * consent and connected-apps pages, and the protected-resource metadata (RFC 9728).
 *
 * Two kinds: `createEmbeddedAuth` (oidc-provider on the HTTP database) and `createExternalAuth` (another issuer's
 * tokens, validated by its JWKS or by introspection; no pages).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { Provider, InteractionDetails } from 'oidc-provider';
import { jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { Logger } from '../observability/logger.js';
import { knownGrantType } from '../observability/metrics.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';
import { AccountStore } from './accounts.js';
import {
  createOidcAdapterFactory,
  startSweeper,
  type OidcAdapterClass,
  type Sweeper,
} from './oidc-adapter.js';
import {
  renderAppsPage,
  renderConsentPage,
  renderErrorPage,
  renderLoginPage,
  renderSignupPage,
  type ConnectedApp,
} from './pages.js';
import {
  createAuthorizationServer,
  INTERACTION_PREFIX,
  authorizationDefaults,
  isOperatorClient,
  OAUTH_PREFIX,
  ROUTES,
  SCOPE_DESCRIPTIONS,
  type ClientAuthMethod,
} from './provider.js';
import { KeyStore, type SigningKeySet } from './keys.js';
import { AuthRateLimits } from '../security/rate-limits.js';
import { clientAddress } from '../security/client-address.js';
import type { AuditEvent, AuditLog } from '../security/audit.js';

/** What the authorization side needs of the audit trail. */
export type AuditSink = Pick<AuditLog, 'record'>;

/** The request id the HTTP layer gave this request (its X-Request-Id response header). */
function requestIdOf(res: ServerResponse | undefined): string | undefined {
  const id = res?.getHeader('x-request-id');
  return typeof id === 'string' ? id : undefined;
}
import { deriveKey } from './secret.js';
import {
  isDatabaseUnavailable,
  sendUnavailableJson,
  UNAVAILABLE_STATUS,
  unavailableHeaders,
} from '../servers/http/unavailable.js';
import {
  ReloadingKeySet,
  remoteKeys,
  ResourceServer,
  tokenHash,
  type AuthOutcome,
} from './resource-server.js';
import {
  ACCOUNT_COOKIE,
  appendSetCookie,
  crossOrigin,
  Csrf,
  FormError,
  nulParameter,
  hostCookie,
  parseCookies,
  readForm,
  seeOther,
  sendHtml,
  sendJson,
} from './web.js';

export const PRM_PATH = '/.well-known/oauth-protected-resource';
const AS_METADATA_PATH = '/.well-known/oauth-authorization-server';
const OIDC_METADATA_PATH = '/.well-known/openid-configuration';
const ACCOUNT_PREFIX = '/account';
const ACCOUNT_SESSION_TTL_S = 8 * 3600;
const GRANT_CACHE_MS = 500;
/** The same words for a wrong password, an unknown user, a disabled account and a lockout. */
const SIGN_IN_FAILED = 'Wrong username or password, or too many attempts: try again later.';
const USAGE_WRITE_INTERVAL_MS = 60_000;

export interface HttpAuth {
  /** Checks the access token of an /mcp request. */
  authenticate(req: IncomingMessage): Promise<AuthOutcome>;
  /** The WWW-Authenticate value for a refusal, or for insufficient_scope naming the scopes needed. */
  challenge(
    refusal: { error?: string | undefined; description?: string | undefined; dpop?: boolean },
    scope?: readonly string[],
  ): string;
  /** Whether handle() serves this path. */
  owns(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  close(): Promise<void>;
}

export interface EmbeddedAuthOptions {
  /** The audit trail (src/security/audit.ts); none: events are not recorded. */
  readonly audit?: AuditSink | undefined;
  /** Told of every token endpoint answer (metrics): the grant type, and the OAuth error code or null. */
  readonly onTokenResult?: ((grantType: string | undefined, error: string | null) => void) | undefined;
  /** Rate limits (defaults: DEFAULT_LIMITS in src/security/rate-limits.ts). */
  readonly limits?: AuthRateLimits;
  readonly store: PostgresStore;
  readonly secret: string;
  /** Scheme, host and port clients use (no path): the issuer. */
  readonly issuer: string;
  /** The canonical MCP URI. */
  readonly resource: string;
  readonly tokenTtlSeconds: number;
  readonly pkceMethods: readonly ('S256' | 'plain')[];
  readonly clientAuthMethods: readonly ClientAuthMethod[];
  readonly dynamicRegistration: boolean;
  readonly clientIdMetadataDocuments: boolean;
  readonly allowSignup: boolean;
  readonly requireDpop: boolean;
  readonly mtls: boolean;
  readonly fetch?: (url: string | URL, init: RequestInit & { dispatcher?: unknown }) => Promise<Response>;
  readonly logger: Logger;
  /** How often the signing keys are checked for a rotation made elsewhere (default 30 s). */
  readonly keyPollMs?: number | undefined;
  /** The HTTP layer writes the forwarded headers the library reads (server.trust_proxy or public_url is set). */
  readonly behindProxy?: boolean;
}

function metadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${PRM_PATH}${path}`;
}

function prmPaths(resource: string): Set<string> {
  const path = new URL(resource).pathname;
  return new Set([PRM_PATH, `${PRM_PATH}${path === '/' ? '' : path}`]);
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}

function clientName(client: { clientName?: string | undefined; clientId: string } | undefined): string {
  return client?.clientName?.trim() || client?.clientId || 'An application';
}

function redirectHost(uri: unknown): string {
  if (typeof uri !== 'string') return '(unknown)';
  try {
    const url = new URL(uri);
    return url.host || url.protocol;
  } catch {
    return '(unknown)';
  }
}

/** The embedded authorization server with its pages, and the resource server trusting it. */
export async function createEmbeddedAuth(options: EmbeddedAuthOptions): Promise<HttpAuth> {
  const { store, issuer, resource, logger } = options;
  const log = logger.child({ component: 'auth' });
  const keys = new KeyStore(store, options.secret);
  let keySet: SigningKeySet = await keys.ensure();
  const accounts = new AccountStore(store);
  const adapter: OidcAdapterClass = createOidcAdapterFactory(store);
  const sessions = new adapter('AccountSession');
  const csrf = new Csrf(deriveKey(options.secret, 'csrf'));
  const cookieKey = deriveKey(options.secret, 'cookie-signing').toString('base64url');

  const build = (set: SigningKeySet): Provider =>
    createAuthorizationServer({
      issuer,
      resource,
      adapter,
      jwks: set.privateJwks as unknown as Record<string, unknown>[],
      cookieKeys: [cookieKey],
      tokenTtlSeconds: options.tokenTtlSeconds,
      pkceMethods: options.pkceMethods,
      clientAuthMethods: options.clientAuthMethods,
      dynamicRegistration: options.dynamicRegistration,
      clientIdMetadataDocuments: options.clientIdMetadataDocuments,
      mtls: options.mtls,
      requireDpopForPublicClients: options.requireDpop,
      behindProxy: options.behindProxy === true,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      findAccount: async (id) => {
        const account = await accounts.findById(id);
        return account && !account.disabled ? { id: account.id } : null;
      },
      findGrant: async (accountId, clientId) =>
        store.withServerState(async (sql) => {
          const r = await sql.query<{ id: string }>(
            `SELECT id FROM oauth_state
             WHERE model = 'Grant' AND payload->>'accountId' = $1 AND payload->>'clientId' = $2
               AND (expires_at IS NULL OR expires_at > now())
             ORDER BY expires_at DESC NULLS FIRST LIMIT 1`,
            [accountId, clientId],
          );
          return r.rows[0]?.id;
        }),
      structuredTokens: {
        verify: async (token) => {
          try {
            const { payload } = await jwtVerify(token, verifierKeys.getKey, {
              issuer,
              audience: resource,
              algorithms: ['ES256'],
              typ: 'at+jwt',
            });
            return payload as Record<string, unknown>;
          } catch {
            return null;
          }
        },
        grantActive: (grantId, subject) => grantActive(grantId, subject),
        revokeGrant: async (grantId) => {
          await new adapter('Grant').revokeByGrantId(grantId);
          grantCache.clear();
          options.audit?.record({
            type: 'token.revoked',
            details: { grant: grantId.slice(0, 8), route: 'revocation', revoked: 'access' },
          });
        },
      },
      renderError: (status, error, description) =>
        renderErrorPage({
          title: status >= 500 ? 'Something went wrong' : 'This request cannot be completed',
          message: description ?? error,
          detail: error,
        }),
      logger: log,
    });
  let provider = build(keySet);
  let callback = provider.callback();

  const publicKeys = (set: SigningKeySet): JSONWebKeySet => ({ keys: [...set.publicJwks] }) as JSONWebKeySet;
  const verifierKeys = new ReloadingKeySet(publicKeys(keySet), async () => {
    keySet = await keys.load();
    return publicKeys(keySet);
  });

  // Grant liveness, cached briefly so a revocation reaches every token within a second.
  const grantCache = new Map<string, { active: boolean; until: number }>();
  const usageWritten = new Map<string, number>();
  const grantActive = async (grantId: string, subject: string): Promise<boolean> => {
    const now = Date.now();
    const key = `${grantId}|${subject}`;
    const hit = grantCache.get(key);
    if (hit && hit.until > now) return hit.active;
    const active = await store.withServerState(async (sql) => {
      const r = await sql.query<{ ok: number }>(
        `SELECT 1 AS ok FROM oauth_state g JOIN users u ON u.id = g.payload->>'accountId'
         WHERE g.model = 'Grant' AND g.id = $1 AND u.id = $2 AND NOT u.disabled
           AND (g.expires_at IS NULL OR g.expires_at > now())`,
        [grantId, subject],
      );
      return r.rows.length > 0;
    });
    if (grantCache.size > 10_000) grantCache.clear();
    grantCache.set(key, { active, until: now + GRANT_CACHE_MS });
    if (active) noteUsage(grantId, now);
    return active;
  };
  /** Records that a grant was used, at most once per USAGE_WRITE_INTERVAL_MS per grant (off the request path). */
  const noteUsage = (grantId: string, now: number): void => {
    if ((usageWritten.get(grantId) ?? 0) + USAGE_WRITE_INTERVAL_MS >= now) return;
    usageWritten.set(grantId, now);
    if (usageWritten.size > 10_000) usageWritten.clear();
    void recordUsage(grantId).catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, 'could not record grant usage'),
    );
  };
  const recordUsage = (grantId: string): Promise<unknown> =>
    store.withServerState((sql) =>
      sql.query(
        `INSERT INTO oauth_grant_usage (grant_id, last_used_at) VALUES ($1, now())
         ON CONFLICT (grant_id) DO UPDATE SET last_used_at = EXCLUDED.last_used_at`,
        [grantId],
      ),
    );
  const watchProvider = (p: Provider): void => {
    for (const event of ['access_token.issued', 'refresh_token.saved']) {
      p.on(event, (...args: unknown[]) => {
        const grantId =
          (args[1] as { grantId?: string } | undefined)?.grantId ??
          (args[0] as { grantId?: string } | undefined)?.grantId;
        if (grantId) noteUsage(grantId, Date.now());
      });
    }
    // The library's own events, for the audit trail.
    const about = (ctx: unknown): { req?: IncomingMessage; res?: ServerResponse; clientId?: string } => {
      const c = ctx as {
        req?: IncomingMessage;
        res?: ServerResponse;
        oidc?: { client?: { clientId?: string } };
      };
      return {
        ...(c.req ? { req: c.req } : {}),
        ...(c.res ? { res: c.res } : {}),
        ...(c.oidc?.client?.clientId ? { clientId: c.oidc.client.clientId } : {}),
      };
    };
    const accountOfCtx = (ctx: unknown): string | undefined => {
      const e = (ctx as { oidc?: { entities?: Record<string, { accountId?: string } | undefined> } }).oidc
        ?.entities;
      return e?.['Grant']?.accountId ?? e?.['RefreshToken']?.accountId ?? e?.['AuthorizationCode']?.accountId;
    };
    const grantTypeOf = (ctx: unknown): string | undefined => {
      const value = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params?.['grant_type'];
      return typeof value === 'string' ? value : undefined;
    };
    p.on('grant.success', (...args: unknown[]) => {
      const ctx = args[0] as { oidc?: { params?: Record<string, unknown> }; body?: unknown };
      const { req, res, clientId } = about(ctx);
      const grantType = ctx.oidc?.params?.['grant_type'];
      options.onTokenResult?.(grantTypeOf(ctx), null);
      const body = ctx.body as { access_token?: unknown } | undefined;
      audit(req, res, {
        type: grantType === 'refresh_token' ? 'token.refreshed' : 'token.issued',
        tenant: accountOfCtx(ctx),
        clientId,
        ...(typeof body?.access_token === 'string' ? { tokenHash: tokenHash(body.access_token) } : {}),
        details: { grantType: typeof grantType === 'string' ? grantType : null },
      });
    });
    p.on('grant.error', (...args: unknown[]) => {
      // The library's fixed description is generic; the reason is in error_detail.
      const err = args[1] as
        { error?: string; error_detail?: string; error_description?: string } | undefined;
      const error = typeof err?.error === 'string' ? err.error : 'server_error';
      options.onTokenResult?.(grantTypeOf(args[0]), error);
      {
        // For the operator: which grant, client and error, under the request id — never a presented value (the
        // grant type is one the endpoint knows or `other`; the library's error_detail is left out).
        const { res, clientId } = about(args[0]);
        log.debug(
          {
            reqId: requestIdOf(res),
            grantType: knownGrantType(grantTypeOf(args[0])),
            client: clientId ?? null,
            error,
          },
          'token request refused',
        );
      }
      if (
        err?.error_detail !== 'refresh token already used' &&
        err?.error_description !== 'refresh token already used'
      ) {
        return;
      }
      const { req, res, clientId } = about(args[0]);
      audit(req, res, { type: 'token.refresh_reuse', tenant: accountOfCtx(args[0]), clientId });
    });
    p.on('grant.revoked', (...args: unknown[]) => {
      const { req, res, clientId } = about(args[0]);
      const route = (args[0] as { oidc?: { route?: string } }).oidc?.route;
      audit(req, res, {
        type: 'token.revoked',
        clientId,
        details: { grant: String(args[1] ?? '').slice(0, 8), route: route ?? null },
      });
    });
    p.on('registration_create.success', (...args: unknown[]) => {
      const { req, res } = about(args[0]);
      const client = args[1] as { clientId?: string; clientAuthMethod?: string } | undefined;
      audit(req, res, {
        type: 'client.registered',
        clientId: client?.clientId,
        details: { via: 'dynamic registration', authMethod: client?.clientAuthMethod ?? null },
      });
    });
    p.on('registration_delete.success', (...args: unknown[]) => {
      const { req, res } = about(args[0]);
      const client = args[1] as { clientId?: string } | undefined;
      audit(req, res, { type: 'client.removed', clientId: client?.clientId, details: { via: 'RFC 7592' } });
    });
  };
  watchProvider(provider);

  const rs = new ResourceServer({
    issuer,
    resource,
    resourceMetadataUrl: metadataUrl(resource),
    source: {
      getKey: verifierKeys.getKey,
      keysVersion: () => verifierKeys.version,
      requireAtJwt: true,
      algorithms: ['ES256'],
      grantActive,
    },
  });

  // A rotation made by `mcp-pa keys rotate` (or another replica) is picked up here.
  const poll = setInterval(() => {
    void (async () => {
      const version = await keys.currentVersion();
      if (version === keySet.version) return;
      keySet = await keys.load();
      verifierKeys.replace(publicKeys(keySet));
      provider = build(keySet);
      watchProvider(provider);
      callback = provider.callback();
      log.info({ keys: keySet.publicJwks.length }, 'signing keys reloaded');
    })().catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, 'could not check the signing keys'),
    );
  }, options.keyPollMs ?? 30_000);
  poll.unref();
  const sweeper: Sweeper = startSweeper(store, 60_000, log);

  const prm = prmPaths(resource);
  const ownOrigin = new URL(issuer).origin;
  const limits = options.limits ?? new AuthRateLimits();
  /** Records an audit event about this request (address and request id filled in). */
  const audit = (
    req: IncomingMessage | undefined,
    res: ServerResponse | undefined,
    event: Omit<AuditEvent, 'ip' | 'requestId'>,
  ): void => {
    options.audit?.record({
      ...event,
      ...(req ? { ip: clientAddress(req) } : {}),
      requestId: requestIdOf(res),
    });
  };

  /** 429 with Retry-After: JSON for the API endpoints, a page for the browser ones. */
  function tooMany(
    req: IncomingMessage,
    res: ServerResponse,
    retryAfterS: number,
    page: boolean,
    limit: string,
  ): void {
    audit(req, res, { type: 'rate_limit.hit', details: { limit, retryAfterS } });
    res.setHeader('retry-after', String(retryAfterS));
    if (page) {
      sendHtml(
        res,
        429,
        renderErrorPage({
          title: 'Too many attempts',
          message: `Wait ${retryAfterS} seconds, then try again.`,
        }),
      );
    } else {
      sendJson(res, 429, {
        error: 'rate_limited',
        error_description: `too many requests; retry after ${retryAfterS} seconds`,
      });
    }
  }

  /** Signs a user in, counting failures per account and address (a lockout answers with the same generic text). */
  async function signIn(
    req: IncomingMessage,
    res: ServerResponse,
    username: string,
    password: string,
    clientId?: string,
  ): Promise<{ ok: true; id: string } | { ok: false; retryAfterS?: number }> {
    const name = username.trim().toLowerCase().slice(0, 64);
    const ip = clientAddress(req);
    const accountKey = `${ip}|${username.trim().toLowerCase()}`;
    for (const [kind, key] of [
      ['login-account', accountKey],
      ['login-ip', ip],
    ] as const) {
      const decision = await limits.check(kind, key);
      if (!decision.ok) {
        audit(req, res, {
          type: 'auth.sign_in.failure',
          clientId,
          details: { username: name, reason: 'locked', limit: kind },
        });
        return { ok: false, retryAfterS: decision.retryAfterS };
      }
    }
    const account = await accounts.authenticate(username, password);
    if (!account) {
      audit(req, res, {
        type: 'auth.sign_in.failure',
        clientId,
        details: { username: name, reason: 'credentials' },
      });
      const byAccount = await limits.hit('login-account', accountKey);
      const byAddress = await limits.hit('login-ip', ip);
      for (const [limit, d] of [
        ['login-account', byAccount],
        ['login-ip', byAddress],
      ] as const) {
        const lockedS = d.ok ? d.blockedForS : d.retryAfterS;
        if (lockedS !== undefined) {
          audit(req, res, {
            type: 'auth.lockout',
            clientId,
            details: { username: name, limit, lockedS },
          });
        }
      }
      return { ok: false };
    }
    await limits.reset('login-account', accountKey);
    audit(req, res, { type: 'auth.sign_in.success', tenant: account.id, clientId });
    return { ok: true, id: account.id };
  }

  /** Limits in front of the library's endpoints; false when the request was answered here. */
  async function admit(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const ip = clientAddress(req);
    if (path === ROUTES.registration && req.method === 'POST') {
      const d = await limits.hit('register', ip);
      if (!d.ok) {
        tooMany(req, res, d.retryAfterS, false, 'register');
        return false;
      }
    } else if (path === ROUTES.authorization) {
      const d = await limits.hit('authorize', ip);
      if (!d.ok) {
        tooMany(req, res, d.retryAfterS, true, 'authorize');
        return false;
      }
    } else if (path === ROUTES.token && req.method === 'POST') {
      const basicId = basicClientId(req);
      const key = `${ip}|${basicId ?? '-'}`;
      const d = await limits.check('token-failure', key);
      if (!d.ok) {
        tooMany(req, res, d.retryAfterS, false, 'token-failure');
        return false;
      }
      res.once('finish', () => {
        if (res.statusCode === 400 || res.statusCode === 401) void limits.hit('token-failure', key);
        if (res.statusCode === 401) {
          audit(req, res, {
            type: 'auth.client_auth.failure',
            clientId: basicId,
            details: { endpoint: 'token' },
          });
        }
      });
    }
    return true;
  }

  // --- account session (connected-apps page) ---
  async function accountOf(req: IncomingMessage): Promise<{ id: string; username: string } | null> {
    const sid = parseCookies(req).get(ACCOUNT_COOKIE);
    if (!sid || sid.length > 100) return null;
    const session = await sessions.find(sid);
    const accountId = session?.['accountId'];
    if (typeof accountId !== 'string') return null;
    const account = await accounts.findById(accountId);
    return account && !account.disabled ? { id: account.id, username: account.username } : null;
  }
  async function startAccountSession(res: ServerResponse, accountId: string): Promise<void> {
    const sid = randomBytes(32).toString('base64url');
    await sessions.upsert(sid, { accountId }, ACCOUNT_SESSION_TTL_S);
    appendSetCookie(res, hostCookie(ACCOUNT_COOKIE, sid, ACCOUNT_SESSION_TTL_S));
  }

  async function connectedApps(accountId: string): Promise<ConnectedApp[]> {
    const rows = await store.withServerState(
      async (sql) =>
        (
          await sql.query<{ id: string; payload: Record<string, unknown>; last_used_at: string | null }>(
            `SELECT g.id, g.payload, u.last_used_at::text AS last_used_at
           FROM oauth_state g LEFT JOIN oauth_grant_usage u ON u.grant_id = g.id
           WHERE g.model = 'Grant' AND g.payload->>'accountId' = $1
             AND (g.expires_at IS NULL OR g.expires_at > now())
           ORDER BY g.id`,
            [accountId],
          )
        ).rows,
    );
    const apps: ConnectedApp[] = [];
    for (const row of rows) {
      const clientId = String(row.payload['clientId'] ?? '');
      const client = await provider.Client.find(clientId).catch(() => undefined);
      // A grant keeps its OpenID scopes as { scope } and its resource scopes per resource, space-separated.
      const oidc = row.payload['openid'] as { scope?: string } | undefined;
      const resources = (row.payload['resources'] ?? {}) as Record<string, string>;
      const scopes = new Set(
        [oidc?.scope ?? '', ...Object.values(resources)]
          .flatMap((list) => String(list).split(' '))
          .filter(Boolean),
      );
      const iat = row.payload['iat'];
      apps.push({
        grantId: row.id,
        clientId,
        clientName: clientName(client ?? { clientId }),
        scopes: [...scopes],
        lastUsed: row.last_used_at,
        grantedAt: typeof iat === 'number' ? new Date(iat * 1000).toISOString() : null,
      });
    }
    return apps;
  }

  async function revokeGrant(accountId: string, grantId: string): Promise<boolean> {
    const owned = await store.withServerState(
      async (sql) =>
        (
          await sql.query(
            `SELECT 1 FROM oauth_state WHERE model = 'Grant' AND id = $1 AND payload->>'accountId' = $2`,
            [grantId, accountId],
          )
        ).rows.length > 0,
    );
    if (!owned) return false;
    await new adapter('Grant').revokeByGrantId(grantId);
    await store.withServerState((sql) =>
      sql.query('DELETE FROM oauth_grant_usage WHERE grant_id = $1', [grantId]),
    );
    grantCache.clear();
    log.info({ grant: grantId.slice(0, 8) }, 'grant revoked by its user');
    return true;
  }

  // --- interaction pages ---
  async function interaction(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const [uid, action] = rest.split('/');
    let details: InteractionDetails;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (err) {
      // The database down is not an expired sign-in: handle() answers 503 (try again shortly).
      if (isDatabaseUnavailable(err)) throw err;
      sendHtml(
        res,
        400,
        renderErrorPage({
          title: 'This sign-in has expired',
          message: 'Start again from the application you were connecting.',
        }),
      );
      return;
    }
    if (details.uid !== uid) {
      sendHtml(
        res,
        400,
        renderErrorPage({ title: 'Invalid request', message: 'This sign-in does not match.' }),
      );
      return;
    }
    const clientId = String(details.params['client_id'] ?? '');
    const client = await provider.Client.find(clientId);
    const base = `${INTERACTION_PREFIX}/${details.uid}`;
    const browser = csrf.browserValue(req, res);
    const token = csrf.token(browser, details.uid);

    if (
      req.method === 'GET' &&
      action === 'signup' &&
      options.allowSignup &&
      details.prompt.name === 'login'
    ) {
      sendHtml(res, 200, renderSignupPage({ action: `${base}/signup`, csrf: token, loginHref: base }));
      return;
    }
    if (req.method === 'GET' && action === undefined) {
      if (details.prompt.name === 'login') {
        sendHtml(res, 200, loginPage(base, token, clientName(client)));
        return;
      }
      const accountId = details.session?.accountId;
      const account = accountId ? await accounts.findById(accountId) : null;
      sendHtml(
        res,
        200,
        renderConsentPage({
          action: `${base}/consent`,
          denyAction: `${base}/deny`,
          csrf: token,
          username: account?.username ?? '',
          clientName: clientName(client),
          clientId,
          redirectHost: redirectHost(details.params['redirect_uri']),
          scopes: requestedScopes(details).map((name) => ({
            name,
            description: SCOPE_DESCRIPTIONS[name] ?? name,
          })),
          newClient: !isOperatorClient(clientId),
        }),
      );
      return;
    }
    if (req.method !== 'POST' || action === undefined) {
      sendHtml(
        res,
        405,
        renderErrorPage({ title: 'Method not allowed', message: 'Use the form on the page.' }),
      );
      return;
    }
    const form = await readForm(req);
    if (crossOrigin(req, ownOrigin) || !csrf.verify(req, form, details.uid)) {
      audit(req, res, {
        type: 'csrf.failure',
        clientId,
        details: { page: `interaction/${action}`, crossOrigin: crossOrigin(req, ownOrigin) },
      });
      sendHtml(
        res,
        403,
        renderErrorPage({
          title: 'Request refused',
          message:
            'The form could not be verified (it came from another page or has expired). Go back and try again.',
        }),
      );
      return;
    }
    if (action === 'login') {
      const username = form.get('username') ?? '';
      const result = await signIn(req, res, username, form.get('password') ?? '', clientId);
      if (!result.ok) {
        log.info({ client: clientId, locked: result.retryAfterS !== undefined }, 'sign-in failed');
        if (result.retryAfterS !== undefined) res.setHeader('retry-after', String(result.retryAfterS));
        sendHtml(
          res,
          result.retryAfterS !== undefined ? 429 : 401,
          loginPage(base, token, clientName(client), username, SIGN_IN_FAILED),
        );
        return;
      }
      const account = { id: result.id };
      await startAccountSession(res, account.id);
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: account.id } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    if (action === 'signup' && options.allowSignup) {
      // Accounts are made at most as fast as client registrations, per address.
      const limited = await limits.hit('register', clientAddress(req));
      if (!limited.ok) {
        tooMany(req, res, limited.retryAfterS, true, 'signup');
        return;
      }
      const username = form.get('username') ?? '';
      try {
        const account = await accounts.create(username, form.get('password') ?? '');
        await startAccountSession(res, account.id);
        await provider.interactionFinished(
          req,
          res,
          { login: { accountId: account.id } },
          { mergeWithLastSubmission: false },
        );
      } catch (err) {
        sendHtml(
          res,
          400,
          renderSignupPage({
            action: `${base}/signup`,
            csrf: token,
            username,
            error: (err as Error).message,
            loginHref: base,
          }),
        );
      }
      return;
    }
    if (action === 'consent' && details.prompt.name === 'consent') {
      const accountId = details.session?.accountId;
      if (!accountId) {
        sendHtml(
          res,
          400,
          renderErrorPage({ title: 'Not signed in', message: 'Start again from the application.' }),
        );
        return;
      }
      const grant =
        (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
        new provider.Grant({ accountId, clientId });
      const d = details.prompt.details;
      const oidcScope = d['missingOIDCScope'];
      if (Array.isArray(oidcScope)) grant.addOIDCScope(oidcScope.join(' '));
      const resourceScopes = d['missingResourceScopes'] as Record<string, string[]> | undefined;
      for (const [indicator, scopes] of Object.entries(resourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      audit(req, res, {
        type: 'consent.granted',
        tenant: accountId,
        clientId,
        details: { scopes: requestedScopes(details).join(' '), grant: grantId.slice(0, 8) },
      });
      await recordUsage(grantId).catch(() => undefined);
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
      return;
    }
    if (action === 'deny') {
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'the user did not allow access' },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    sendHtml(res, 404, renderErrorPage({ title: 'Not found', message: 'There is no such page.' }));
  }

  function loginPage(base: string, token: string, name: string, username?: string, error?: string): string {
    return renderLoginPage({
      action: `${base}/login`,
      csrf: token,
      clientName: name,
      ...(username !== undefined ? { username } : {}),
      ...(error !== undefined ? { error } : {}),
      ...(options.allowSignup ? { signupHref: `${base}/signup` } : {}),
    });
  }

  // --- connected apps ---
  async function accountPages(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const browser = csrf.browserValue(req, res);
    const token = csrf.token(browser, 'account');
    const account = await accountOf(req);
    if (req.method === 'GET' && (path === `${ACCOUNT_PREFIX}/apps` || path === ACCOUNT_PREFIX)) {
      if (!account) {
        sendHtml(res, 200, renderLoginPage({ action: `${ACCOUNT_PREFIX}/login`, csrf: token }));
        return;
      }
      const notice = new URL(req.url ?? '/', ownOrigin).searchParams.get('revoked');
      sendHtml(
        res,
        200,
        renderAppsPage({
          username: account.username,
          csrf: token,
          revokeAction: `${ACCOUNT_PREFIX}/revoke`,
          logoutAction: `${ACCOUNT_PREFIX}/logout`,
          apps: await connectedApps(account.id),
          ...(notice === '1' ? { notice: 'Access revoked.' } : {}),
        }),
      );
      return;
    }
    if (req.method !== 'POST') {
      sendHtml(res, 404, renderErrorPage({ title: 'Not found', message: 'There is no such page.' }));
      return;
    }
    const form = await readForm(req);
    if (crossOrigin(req, ownOrigin) || !csrf.verify(req, form, 'account')) {
      audit(req, res, {
        type: 'csrf.failure',
        tenant: account?.id,
        details: { page: path.slice(1), crossOrigin: crossOrigin(req, ownOrigin) },
      });
      sendHtml(
        res,
        403,
        renderErrorPage({
          title: 'Request refused',
          message: 'The form could not be verified. Go back and try again.',
        }),
      );
      return;
    }
    if (path === `${ACCOUNT_PREFIX}/login`) {
      const username = form.get('username') ?? '';
      const found = await signIn(req, res, username, form.get('password') ?? '');
      if (!found.ok) {
        if (found.retryAfterS !== undefined) res.setHeader('retry-after', String(found.retryAfterS));
        sendHtml(
          res,
          found.retryAfterS !== undefined ? 429 : 401,
          renderLoginPage({
            action: `${ACCOUNT_PREFIX}/login`,
            csrf: token,
            username,
            error: SIGN_IN_FAILED,
          }),
        );
        return;
      }
      await startAccountSession(res, found.id);
      seeOther(res, `${ACCOUNT_PREFIX}/apps`);
      return;
    }
    if (!account) {
      seeOther(res, `${ACCOUNT_PREFIX}/apps`);
      return;
    }
    if (path === `${ACCOUNT_PREFIX}/revoke`) {
      const grantId = form.get('grant') ?? '';
      const revoked = grantId.length > 0 && grantId.length < 200 && (await revokeGrant(account.id, grantId));
      if (revoked) {
        audit(req, res, {
          type: 'consent.revoked',
          tenant: account.id,
          details: { grant: grantId.slice(0, 8) },
        });
      }
      seeOther(res, `${ACCOUNT_PREFIX}/apps${revoked ? '?revoked=1' : ''}`);
      return;
    }
    if (path === `${ACCOUNT_PREFIX}/logout`) {
      const sid = parseCookies(req).get(ACCOUNT_COOKIE);
      if (sid) await sessions.destroy(sid);
      appendSetCookie(res, hostCookie(ACCOUNT_COOKIE, '', 0));
      seeOther(res, `${ACCOUNT_PREFIX}/apps`);
      return;
    }
    sendHtml(res, 404, renderErrorPage({ title: 'Not found', message: 'There is no such page.' }));
  }

  return {
    authenticate: (req) => rs.authenticate(req),
    challenge: (refusal, scope) => rs.challenge(refusal, scope),
    owns: (path) =>
      path.startsWith(`${OAUTH_PREFIX}/`) ||
      path === ACCOUNT_PREFIX ||
      path.startsWith(`${ACCOUNT_PREFIX}/`) ||
      path.startsWith('/.well-known/'),
    async handle(req, res) {
      const path = pathOf(req);
      try {
        if (prm.has(path)) {
          if (req.method === 'OPTIONS') {
            metadataPreflight(req, res);
            return;
          }
          if (req.method !== 'GET' && req.method !== 'HEAD') {
            sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
            return;
          }
          sendJson(res, 200, rs.metadata({ dpop: true, mtls: options.mtls }), {
            'access-control-allow-origin': '*',
            'cache-control': 'public, max-age=300',
          });
          return;
        }
        if (path === AS_METADATA_PATH || path === OIDC_METADATA_PATH) {
          req.url = OIDC_METADATA_PATH;
          callback(req, res);
          return;
        }
        if (path.startsWith(`${INTERACTION_PREFIX}/`)) {
          await interaction(req, res, path.slice(INTERACTION_PREFIX.length + 1));
          return;
        }
        if (path === ACCOUNT_PREFIX || path.startsWith(`${ACCOUNT_PREFIX}/`)) {
          await accountPages(req, res, path);
          return;
        }
        if (path === ROUTES.registration || path.startsWith(`${ROUTES.registration}/`)) {
          // Browser-based MCP clients (the Inspector) register from their own page: allowed from any origin,
          // never with credentials (registration uses no cookies).
          res.setHeader('access-control-allow-origin', '*');
          if (req.method === 'OPTIONS') {
            res.setHeader('access-control-allow-methods', 'GET, POST, PUT, DELETE');
            res.setHeader('access-control-allow-headers', 'authorization, content-type');
            res.setHeader('access-control-max-age', '600');
            res.statusCode = 204;
            res.end();
            return;
          }
        }
        if (path.startsWith(`${OAUTH_PREFIX}/`)) {
          if (!(await admit(req, res, path))) return;
          // U+0000 cannot be stored (the library keeps requests in jsonb): refused before the library sees it.
          const nul = nulParameter(new URL(req.url ?? '/', 'http://localhost').searchParams);
          if (nul !== undefined) {
            const message = `${nul} must not contain the NUL character (U+0000)`;
            if (path === ROUTES.authorization) {
              sendHtml(res, 400, renderErrorPage({ title: 'Invalid request', message }));
            } else {
              sendJson(res, 400, { error: 'invalid_request', error_description: message });
            }
            return;
          }
          if (req.method === 'POST' && CLIENT_AUTH_ROUTES.has(path)) {
            const replay = await checkedClientAuthBody(req, res, (form) => {
              // A pushed authorization request gets the same defaults as one in the query.
              if (path !== ROUTES.pushed_authorization_request) return false;
              const changes = authorizationDefaults(
                (k) => form.get(k) ?? undefined,
                options.pkceMethods.includes('plain'),
              );
              for (const [k, v] of changes) form.set(k, v);
              return changes.length > 0;
            });
            if (replay) callback(replay, res);
            return;
          }
          callback(req, res);
          return;
        }
        sendJson(res, 404, { error: 'not_found' });
      } catch (err) {
        if (err instanceof FormError) {
          sendHtml(res, err.status, renderErrorPage({ title: 'Bad request', message: err.message }));
          return;
        }
        if (isDatabaseUnavailable(err)) {
          // The database is down: 503 with Retry-After, no cause in the body (src/servers/http/unavailable.ts).
          log.warn({ err: (err as Error).message, path }, 'authorization page: database unavailable');
          if (res.headersSent) res.end();
          else if (path.startsWith(`${OAUTH_PREFIX}/`) && !path.startsWith(INTERACTION_PREFIX))
            sendUnavailableJson(res);
          else {
            for (const [k, v] of Object.entries(unavailableHeaders())) res.setHeader(k, v);
            sendHtml(
              res,
              UNAVAILABLE_STATUS,
              renderErrorPage({
                title: 'Temporarily unavailable',
                message: 'This service is temporarily unavailable. Try again in a few seconds.',
              }),
            );
          }
          return;
        }
        log.error({ err: (err as Error).message, path }, 'authorization page failed');
        if (!res.headersSent) {
          sendHtml(res, 500, renderErrorPage({ title: 'Something went wrong', message: 'Try again later.' }));
        } else res.end();
      }
    },
    async close() {
      clearInterval(poll);
      await sweeper.stop();
    },
  };
}

/**
 * CORS preflight for a public metadata document: any origin, never credentials (browser-based MCP clients send
 * MCP-Protocol-Version with their discovery requests, which makes them preflighted).
 */
function metadataPreflight(req: IncomingMessage, res: ServerResponse): void {
  res.statusCode = 204;
  res.setHeader('access-control-allow-origin', '*');
  res.setHeader('access-control-allow-methods', 'GET, HEAD');
  const requested = req.headers['access-control-request-headers'];
  if (typeof requested === 'string' && /^[\w\s,-]{1,500}$/.test(requested)) {
    res.setHeader('access-control-allow-headers', requested);
  }
  res.setHeader('access-control-max-age', '600');
  res.end();
}

const CLIENT_AUTH_ROUTES = new Set<string>([
  ROUTES.token,
  ROUTES.revocation,
  ROUTES.introspection,
  ROUTES.pushed_authorization_request,
]);
const CLIENT_AUTH_BODY_LIMIT = 56 * 1024;

/**
 * Reads the form of a client-authenticating endpoint and refuses a client secret in the body (RFC 6749 §2.3:
 * one mechanism only; client_secret_post is not offered — the library would otherwise ignore the field and
 * authenticate by the header). Returns a stream replaying the body for the library, or null when answered.
 */
async function checkedClientAuthBody(
  req: IncomingMessage,
  res: ServerResponse,
  rewrite: (form: URLSearchParams) => boolean,
): Promise<IncomingMessage | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > CLIENT_AUTH_BODY_LIMIT) {
      sendJson(res, 413, { error: 'invalid_request', error_description: 'the request body is too large' });
      return null;
    }
    chunks.push(chunk as Buffer);
  }
  let body = Buffer.concat(chunks);
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (
    type === 'application/x-www-form-urlencoded' &&
    new URLSearchParams(body.toString('utf8')).has('client_secret')
  ) {
    if (req.headers.authorization !== undefined) {
      sendJson(res, 400, {
        error: 'invalid_request',
        error_description: 'client authentication must only be provided using one mechanism',
      });
    } else {
      res.setHeader('www-authenticate', 'Basic realm="mcp-pa"');
      sendJson(res, 401, {
        error: 'invalid_client',
        error_description:
          'client_secret in the request body is not accepted: send it with HTTP Basic (client_secret_basic)',
      });
    }
    return null;
  }
  if (type === 'application/x-www-form-urlencoded') {
    const nul = nulParameter(new URLSearchParams(body.toString('utf8')));
    if (nul !== undefined) {
      sendJson(res, 400, {
        error: 'invalid_request',
        error_description: `${nul} must not contain the NUL character (U+0000)`,
      });
      return null;
    }
  }
  let headers = req.headers;
  if (type === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(body.toString('utf8'));
    if (rewrite(form)) {
      body = Buffer.from(form.toString(), 'utf8');
      headers = { ...req.headers, 'content-length': String(body.length) };
    }
  }
  const replay = new PassThrough() as PassThrough & Record<string, unknown>;
  for (const key of [
    'headers',
    'rawHeaders',
    'method',
    'url',
    'httpVersion',
    'httpVersionMajor',
    'httpVersionMinor',
    'socket',
    'trailers',
    'rawTrailers',
  ] as const) {
    replay[key] = (req as unknown as Record<string, unknown>)[key];
  }
  replay['headers'] = headers;
  replay['connection'] = req.socket;
  replay['complete'] = true;
  replay.end(body);
  return replay as unknown as IncomingMessage;
}

/** The client id of HTTP Basic client authentication, if the request carries it. */
function basicClientId(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon)).slice(0, 200);
  } catch {
    return undefined;
  }
}

function requestedScopes(details: InteractionDetails): string[] {
  const d = details.prompt.details;
  const out = new Set<string>();
  const oidc = d['missingOIDCScope'];
  if (Array.isArray(oidc)) for (const s of oidc) if (typeof s === 'string') out.add(s);
  const res = d['missingResourceScopes'] as Record<string, unknown> | undefined;
  for (const scopes of Object.values(res ?? {})) {
    if (Array.isArray(scopes)) for (const s of scopes) if (typeof s === 'string') out.add(s);
  }
  return [...out];
}

export interface ExternalAuthOptions {
  readonly issuer: string;
  readonly resource: string;
  readonly introspection?: { clientId: string; clientSecret: string } | undefined;
  readonly fetch?: typeof fetch;
  readonly logger: Logger;
}

/**
 * Another issuer's tokens: its metadata is discovered (RFC 8414, then OpenID discovery), JWT access tokens are
 * checked against its JWKS, opaque ones introspected (RFC 7662) with the configured client credentials.
 */
export async function createExternalAuth(options: ExternalAuthOptions): Promise<HttpAuth> {
  const { issuer, resource } = options;
  const doFetch = options.fetch ?? fetch;
  const meta = await discover(issuer, doFetch);
  const jwksUri = typeof meta['jwks_uri'] === 'string' ? meta['jwks_uri'] : undefined;
  const introspectionEndpoint =
    typeof meta['introspection_endpoint'] === 'string' ? meta['introspection_endpoint'] : undefined;
  if (!jwksUri && !(introspectionEndpoint && options.introspection)) {
    throw new Error(
      `the issuer ${issuer} publishes neither jwks_uri nor an introspection endpoint usable with the configured credentials`,
    );
  }
  const introspection = options.introspection;
  const introspect =
    introspectionEndpoint && introspection
      ? async (token: string): Promise<JWTPayload | null> => {
          const response = await doFetch(introspectionEndpoint, {
            method: 'POST',
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              accept: 'application/json',
              authorization: `Basic ${Buffer.from(
                `${encodeURIComponent(introspection.clientId)}:${encodeURIComponent(introspection.clientSecret)}`,
              ).toString('base64')}`,
            },
            body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
            signal: AbortSignal.timeout(5_000),
          });
          if (!response.ok)
            throw new Error(`the issuer's introspection endpoint answered ${response.status}`);
          const body = (await response.json()) as JWTPayload & { active?: boolean };
          if (body.active !== true) return null;
          if (typeof body.exp === 'number' && body.exp * 1000 < Date.now()) return null;
          return body;
        }
      : undefined;
  const rs = new ResourceServer({
    issuer: typeof meta['issuer'] === 'string' ? meta['issuer'] : issuer,
    resource,
    resourceMetadataUrl: metadataUrl(resource),
    source: {
      getKey: jwksUri
        ? remoteKeys(jwksUri, options.fetch ? { fetch: options.fetch } : undefined)
        : async () => {
            throw new Error('this issuer publishes no keys');
          },
      requireAtJwt: false,
      algorithms: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'],
      ...(introspect ? { introspect } : {}),
    },
  });
  const prm = prmPaths(resource);
  return {
    authenticate: (req) => rs.authenticate(req),
    challenge: (refusal, scope) => rs.challenge(refusal, scope),
    owns: (path) => prm.has(path),
    async handle(req, res) {
      if (req.method === 'OPTIONS') {
        metadataPreflight(req, res);
        return;
      }
      sendJson(res, 200, rs.metadata({ dpop: true, mtls: false }), {
        'access-control-allow-origin': '*',
        'cache-control': 'public, max-age=300',
      });
      void req;
    },
    async close() {},
  };
}

async function discover(issuer: string, doFetch: typeof fetch): Promise<Record<string, unknown>> {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname;
  const candidates = [
    `${url.origin}${AS_METADATA_PATH}${path}`,
    `${issuer.replace(/\/$/, '')}${OIDC_METADATA_PATH}`,
  ];
  const problems: string[] = [];
  for (const candidate of candidates) {
    try {
      const response = await doFetch(candidate, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(5_000),
      });
      if (!response.ok) {
        problems.push(`${candidate}: HTTP ${response.status}`);
        continue;
      }
      const meta = (await response.json()) as Record<string, unknown>;
      if (meta['issuer'] !== issuer) {
        problems.push(`${candidate}: its issuer is ${String(meta['issuer'])}, not ${issuer}`);
        continue;
      }
      return meta;
    } catch (err) {
      problems.push(`${candidate}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot discover the issuer ${issuer}'s metadata (${problems.join('; ')})`);
}
