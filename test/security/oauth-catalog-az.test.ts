/**
 * The security catalog (../shared/design/SECURITY-TESTS.md), lines 1–28: attacks on the authorization and token
 * endpoints of the embedded authorization server, each against the real HTTP-mode server (real TLS, PGlite)
 * from test/auth/oauth-fixture.ts, each asserting the catalog's "Secure result".
 *
 * Shorthand as in the catalog: AZ is the authorization request, TK the code exchange, RU the redirect URI,
 * "page" a 400 HTML error page without Location, "redir E" a redirect to RU?error=E&state=S&iss=B.
 *
 * Two states cannot be reached through the server's own endpoints and are made by editing the stored code
 * (oauth_state): a code issued without a PKCE challenge (#4; the server requires PKCE on every request) and a
 * code issued ten minutes ago (#6; codes live 60 s).
 *
 * "redir E" is what a trusted client gets: error redirects to a dynamically registered client are shown as a
 * page while nobody is signed in (RFC 9700 §4.11.2, catalog #9), so the redirect checks use an operator client
 * stored as `mcp-pa clients add` stores one (a `cli_` id in oauth_state).
 *
 * The token endpoint limits failed requests per client and address (catalog #29, not here); each test sends
 * its token requests from its own loopback address (127.0.0.N) so that the failures one line provokes on
 * purpose do not count against the next.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent } from 'node:https';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type JWK,
  type CryptoKey,
} from 'jose';
import {
  parseForms,
  pkcePair,
  startOAuthFixture,
  type Browser,
  type OAuthFixture,
  type TestUser,
} from '../auth/oauth-fixture.js';
import { rawRequest, type RawResponse } from '../support/https.js';
import { createOidcAdapterFactory } from '../../src/auth/oidc-adapter.js';

const EVIL = 'https://evil.example';
/** Registered by native (loopback) clients; any port matches. */
const LOOPBACK_REGISTERED = 'http://127.0.0.1/cb';
const LOOPBACK_RU = 'http://127.0.0.1:51004/cb';
const STATE = 'S';

interface Client {
  readonly id: string;
  readonly secret?: string;
  /** The redirect URI the requests use. */
  readonly ru: string;
}

interface Tokens {
  readonly access_token: string;
  readonly refresh_token: string;
}

describe('security catalog #1–#28: authorization and token endpoints (PGlite)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  /** A browser signed in as `user` (consents accumulate in it). */
  let signedIn: Browser;
  /** A public native client, consented in `signedIn`. */
  let pub: Client;
  /** A public web client with an https redirect URI, consented in `signedIn`. */
  let web: Client;
  /** A public native client registered by the operator (trusted: errors are redirected to it). */
  const op: Client = { id: 'cli_catalog_native', ru: LOOPBACK_RU };
  /** Token requests of the current test leave from their own loopback address. */
  let tokenAgent: Agent | undefined;
  let sourceAddress = 1;
  beforeEach(() => {
    tokenAgent?.destroy();
    sourceAddress += 1;
    tokenAgent = new Agent({ keepAlive: false, localAddress: `127.0.0.${sourceAddress}`, ca: fx.ca.cert });
  });

  beforeAll(async () => {
    fx = await startOAuthFixture();
    user = await fx.addUser();
    signedIn = fx.browser();
    pub = await registerPublic('Catalog native app', [LOOPBACK_REGISTERED], LOOPBACK_RU);
    web = await registerPublic('Catalog web app', ['https://client.example/cb'], 'https://client.example/cb');
    await codeFor(signedIn, pub);
    await codeFor(signedIn, web);
    await new (createOidcAdapterFactory(fx.store))('Client').upsert(
      op.id,
      {
        client_id: op.id,
        client_name: 'Catalog operator app',
        redirect_uris: [LOOPBACK_REGISTERED],
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
      undefined,
    );
  }, 60_000);
  afterAll(async () => {
    tokenAgent?.destroy();
    await fx?.close();
  });

  // --- helpers -------------------------------------------------------------------------------------------------

  async function registerPublic(name: string, redirectUris: string[], ru: string): Promise<Client> {
    const reg = await fx.register({
      client_name: name,
      redirect_uris: redirectUris,
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    return { id: String(reg.body['client_id']), ru };
  }

  /** The catalog's AZ for `client`; `changes` replaces parameters, a null drops one. */
  function az(client: Client, challenge: string, changes: Record<string, string | null> = {}): string {
    const params: Record<string, string | null> = {
      response_type: 'code',
      client_id: client.id,
      redirect_uri: client.ru,
      scope: 'pa.read',
      state: STATE,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
      ...changes,
    };
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null) query.set(k, v);
    return `${fx.origin}/oauth/authorize?${query.toString()}`;
  }

  /** A GET without cookies (a browser that has never been here). */
  function get(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
    return rawRequest(url, { method: 'GET', headers, ca: fx.ca.cert });
  }

  function post(
    path: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<RawResponse> {
    return rawRequest(`${fx.origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
      ca: fx.ca.cert,
      ...(tokenAgent ? { agent: tokenAgent } : {}),
    });
  }

  const token = (form: Record<string, string>, headers: Record<string, string> = {}): Promise<RawResponse> =>
    post('/oauth/token', form, headers);

  function describeResponse(res: RawResponse): string {
    return `${res.status} location=${String(res.headers.location)} ${res.text.replace(/<style>[\s\S]*<\/style>/, '').slice(0, 600)}`;
  }

  /** A code for `client` through the signed-in browser (consenting when asked). */
  async function codeFor(
    browser: Browser,
    client: Client,
    changes: Record<string, string | null> = {},
  ): Promise<{ code: string; verifier: string; back: URL }> {
    const { verifier, challenge } = await pkcePair();
    const done = await browser.authorize(az(client, challenge, changes), fx.origin, user);
    expect(done.location, describeResponse(done.res)).toBeDefined();
    const back = new URL(done.location as string);
    expect(`${back.origin}${back.pathname}`).toBe(client.ru);
    const code = back.searchParams.get('code');
    expect(code, done.location).toBeTruthy();
    return { code: code as string, verifier, back };
  }

  function tk(
    client: Client,
    code: string,
    verifier: string | null,
    extra: Record<string, string> = {},
  ): Record<string, string> {
    return {
      grant_type: 'authorization_code',
      code,
      redirect_uri: client.ru,
      ...(verifier === null ? {} : { code_verifier: verifier }),
      ...(client.secret === undefined ? { client_id: client.id } : {}),
      ...extra,
    };
  }

  function basic(id: string, secret: string): string {
    const enc = (v: string): string => encodeURIComponent(v);
    return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
  }

  async function tokensFor(client: Client, headers: Record<string, string> = {}): Promise<Tokens> {
    const { code, verifier } = await codeFor(signedIn, client);
    const res = await token(tk(client, code, verifier), headers);
    expect(res.status, res.text).toBe(200);
    const body = res.json as Tokens;
    expect(body.access_token).toBeTruthy();
    expect(body.refresh_token).toBeTruthy();
    return body;
  }

  /** The status of an MCP initialize with `at`. */
  async function mcpStatus(at: string): Promise<number> {
    const res = await rawRequest(fx.resource, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${at}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'catalog', version: '1' },
        },
      }),
      ca: fx.ca.cert,
    });
    return res.status;
  }

  /** Polls /mcp until `at` gets 401 or `ms` pass; answers the last status. */
  async function mcpStatusWithin(at: string, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const status = await mcpStatus(at);
      if (status === 401 || Date.now() >= deadline) return status;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  function expectPage(res: RawResponse, label: string): void {
    expect(res.status, `${label}: ${describeResponse(res)}`).toBe(400);
    expect(res.headers.location, label).toBeUndefined();
    expect(String(res.headers['content-type']), label).toMatch(/^text\/html/);
    expect(res.text, label).not.toMatch(/[?&]code=/);
  }

  /** "redir E": 302/303 to RU?error=E&state=S&iss=B, no code, nothing in a fragment. */
  function expectRedirectError(
    res: RawResponse,
    ru: string,
    error: string,
    label: string,
    soft = false,
  ): URL {
    const check = soft ? expect.soft : expect;
    const context = `${label}: ${describeResponse(res)}`;
    check([302, 303], context).toContain(res.status);
    const location = new URL(String(res.headers.location ?? 'about:blank'));
    check(`${location.origin}${location.pathname}`, context).toBe(ru);
    check(location.hash, context).toBe('');
    check(location.searchParams.get('error'), context).toBe(error);
    check(location.searchParams.get('state'), context).toBe(STATE);
    check(location.searchParams.get('iss'), context).toBe(fx.issuer);
    check(location.searchParams.get('code'), context).toBeNull();
    check(location.searchParams.get('access_token'), context).toBeNull();
    return location;
  }

  function expectError(res: RawResponse, status: number, error: string, label = '', soft = false): void {
    const check = soft ? expect.soft : expect;
    check(res.status, `${label} ${res.text}`).toBe(status);
    check((res.json as { error?: string } | undefined)?.error, `${label} ${res.text}`).toBe(error);
  }

  async function codeCount(): Promise<number> {
    return fx.store.withServerState(async (sql) => {
      const r = await sql.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM oauth_state WHERE model = 'AuthorizationCode'`,
      );
      return Number(r.rows[0]?.n ?? 0);
    });
  }

  async function metadata(): Promise<Record<string, unknown>> {
    const res = await get(`${fx.origin}/.well-known/oauth-authorization-server`);
    expect(res.status).toBe(200);
    return res.json as Record<string, unknown>;
  }

  /** Follows a fresh authorization request to the login page: its form action and CSRF token. */
  async function toLoginPage(
    browser: Browser,
    client: Client,
  ): Promise<{ action: string; csrf: string; res: RawResponse; url: string }> {
    const { challenge } = await pkcePair();
    const first = await browser.request(az(client, challenge));
    expect(first.status, describeResponse(first)).toBe(303);
    const { res, url } = await browser.follow(
      new URL(String(first.headers.location), fx.origin).href,
      fx.origin,
    );
    expect(res.status, describeResponse(res)).toBe(200);
    const form = parseForms(res.text).find((f) => f.fields.has('password'));
    expect(form, 'the login form').toBeDefined();
    return { action: new URL(form?.action ?? '', url).href, csrf: form?.fields.get('csrf') ?? '', res, url };
  }

  /** Signs in on the login page and follows to the consent page: its allow action and CSRF token. */
  async function toConsentPage(
    browser: Browser,
    login: { action: string; csrf: string },
  ): Promise<{ action: string; csrf: string; res: RawResponse; url: string; posted: RawResponse }> {
    const posted = await browser.request(login.action, {
      form: { csrf: login.csrf, username: user.username, password: user.password },
      headers: { origin: fx.origin },
    });
    expect(posted.status, describeResponse(posted)).toBe(303);
    const { res, url } = await browser.follow(
      new URL(String(posted.headers.location), login.action).href,
      fx.origin,
    );
    expect(res.status, describeResponse(res)).toBe(200);
    const form = parseForms(res.text).find((f) => /\/consent$/.test(f.action));
    expect(form, 'the consent form').toBeDefined();
    return {
      action: new URL(form?.action ?? '', url).href,
      csrf: form?.fields.get('csrf') ?? '',
      res,
      url,
      posted,
    };
  }

  // --- private_key_jwt ------------------------------------------------------------------------------------------

  interface KeyClient extends Client {
    readonly key: CryptoKey;
    readonly publicJwk: JWK;
    readonly publicPem: string;
  }

  async function registerKeyClient(): Promise<KeyClient> {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const reg = await fx.register({
      client_name: 'Catalog key client',
      redirect_uris: ['https://pkj.example/cb'],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [publicJwk] },
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    return {
      id: String(reg.body['client_id']),
      ru: 'https://pkj.example/cb',
      key: privateKey,
      publicJwk,
      publicPem: await exportSPKI(publicKey),
    };
  }

  async function assertion(
    client: KeyClient,
    changes: { aud?: string | string[]; exp?: number; jti?: string; key?: CryptoKey } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: changes.jti ?? randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(client.id)
      .setSubject(client.id)
      .setAudience(changes.aud ?? fx.issuer)
      .setIssuedAt(now)
      .setExpirationTime(changes.exp ?? now + 60)
      .sign(changes.key ?? client.key);
  }

  function withAssertion(jwt: string): Record<string, string> {
    return {
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: jwt,
    };
  }

  // --- the catalog ----------------------------------------------------------------------------------------------

  it('#1 PKCE missing', async () => {
    const res = await get(az(op, 'unused', { code_challenge: null }));
    expectRedirectError(res, LOOPBACK_RU, 'invalid_request', 'AZ[-code_challenge]');
  });

  it('#2 PKCE plain', async () => {
    const verifier = randomBytes(32).toString('base64url');
    const plain = await get(az(op, verifier, { code_challenge_method: 'plain' }));
    expectRedirectError(plain, LOOPBACK_RU, 'invalid_request', 'AZ[code_challenge_method=plain]');
    const missing = await get(az(op, verifier, { code_challenge_method: null }));
    expectRedirectError(missing, LOOPBACK_RU, 'invalid_request', 'AZ[-code_challenge_method]');
    const meta = await metadata();
    expect(meta['code_challenge_methods_supported']).toEqual(['S256']);
  });

  it('#3 Verifier missing or wrong', async () => {
    const a = await codeFor(signedIn, pub);
    expectError(await token(tk(pub, a.code, null)), 400, 'invalid_grant', 'TK[-code_verifier]');
    const b = await codeFor(signedIn, pub);
    const other = randomBytes(32).toString('base64url');
    expectError(await token(tk(pub, b.code, other)), 400, 'invalid_grant', 'TK[code_verifier=other]');
  });

  it('#4 PKCE downgrade', async () => {
    // A code cannot be had without a challenge (#1); make one by dropping the stored challenge.
    const { code, verifier } = await codeFor(signedIn, pub);
    const changed = await fx.store.withServerState((sql) =>
      sql.query(
        `UPDATE oauth_state SET payload = payload - 'codeChallenge' - 'codeChallengeMethod'
         WHERE model = 'AuthorizationCode' AND id = $1 AND payload ? 'codeChallenge'`,
        [code],
      ),
    );
    expect(changed.rowCount).toBe(1);
    expectError(
      await token(tk(pub, code, verifier)),
      400,
      'invalid_grant',
      'code without challenge + code_verifier',
    );
  });

  it('#5 Code replay', async () => {
    const { code, verifier } = await codeFor(signedIn, pub);
    const first = await token(tk(pub, code, verifier));
    expect(first.status, first.text).toBe(200);
    const tokens = first.json as Tokens;
    expect(await mcpStatus(tokens.access_token)).toBe(200);
    expectError(await token(tk(pub, code, verifier)), 400, 'invalid_grant', 'TK replayed');
    expect(await mcpStatusWithin(tokens.access_token, 1500)).toBe(401);
    expectError(
      await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: pub.id }),
      400,
      'invalid_grant',
      'the first RT after the replay',
    );
  });

  it('#6 Code used by another client, or stale', async () => {
    const other = await registerPublic('Catalog other app', [LOOPBACK_REGISTERED], LOOPBACK_RU);
    const a = await codeFor(signedIn, pub);
    expectError(
      await token(tk(other, a.code, a.verifier)),
      400,
      'invalid_grant',
      "TK with client B's credentials",
    );

    // A code issued ten minutes ago (codes live 60 s): its times moved back in the database.
    const b = await codeFor(signedIn, pub);
    const changed = await fx.store.withServerState((sql) =>
      sql.query(
        `UPDATE oauth_state
         SET expires_at = expires_at - interval '10 minutes',
             payload = payload || jsonb_build_object('iat', (payload->>'iat')::bigint - 600,
                                                     'exp', (payload->>'exp')::bigint - 600)
         WHERE model = 'AuthorizationCode' AND id = $1`,
        [b.code],
      ),
    );
    expect(changed.rowCount).toBe(1);
    expectError(await token(tk(pub, b.code, b.verifier)), 400, 'invalid_grant', 'TK after 10 min');
  });

  it('#7 redirect_uri not an exact match', async () => {
    const { challenge } = await pkcePair();
    const ru = web.ru; // https://client.example/cb
    const variants = [
      `${ru}x`,
      `${ru}/`,
      `${ru}?a=1`,
      `${ru}#f`,
      'https://CLIENT.example/cb',
      'https://Client.Example/cb',
      EVIL,
      `${ru}@evil.example`,
      'https://client.example@evil.example/cb',
    ];
    for (const variant of variants) {
      expectPage(await get(az(web, challenge, { redirect_uri: variant })), `AZ[redirect_uri=${variant}]`);
    }
  });

  it('#8 Loopback ports', async () => {
    const client = await registerPublic('Catalog loopback app', [LOOPBACK_REGISTERED], LOOPBACK_RU);
    const { back } = await codeFor(fx.browser(), client);
    expect(back.href.startsWith(`${LOOPBACK_RU}?code=`) || back.searchParams.has('code')).toBe(true);
    expect(`${back.origin}${back.pathname}`).toBe(LOOPBACK_RU);
    const { challenge } = await pkcePair();
    expectPage(
      await get(az(client, challenge, { redirect_uri: 'http://127.0.0.1:51004/cb2' })),
      '…:51004/cb2',
    );
    expectPage(
      await get(az(client, challenge, { redirect_uri: 'http://localhost:51004/cb' })),
      'http://localhost:51004/cb',
    );
  });

  it('#9 Open redirector', async () => {
    const { challenge } = await pkcePair();
    const unknown = await get(az({ id: 'unknown-client', ru: EVIL }, challenge));
    expectPage(unknown, 'AZ[client_id=unknown, redirect_uri=https://evil.example]');

    // An attacker registers a client and sends the victim an authorization request that fails: the server must
    // not bounce the browser to the attacker's site before the user signs in or sees an interstitial.
    const attackerRu = 'https://attacker.example/cb';
    const attacker = await registerPublic('Catalog attacker', [attackerRu], attackerRu);
    const toAttacker = (res: RawResponse, base: string): boolean =>
      res.status >= 300 &&
      res.status < 400 &&
      res.headers.location !== undefined &&
      new URL(res.headers.location, base).origin === 'https://attacker.example';

    const victim = fx.browser();
    const res = await victim.request(az(attacker, challenge, { scope: 'bogus' }));
    expect
      .soft(toAttacker(res, fx.origin), `AZ[scope=bogus], not signed in: ${describeResponse(res)}`)
      .toBe(false);
    if (res.headers.location !== undefined && new URL(res.headers.location, fx.origin).origin === fx.origin) {
      // A same-origin hop (to the sign-in interaction) ends on a page of this server, not at the attacker.
      const { res: end, url } = await victim.follow(new URL(res.headers.location, fx.origin).href, fx.origin);
      expect
        .soft(toAttacker(end, url), `AZ[scope=bogus], not signed in, followed: ${describeResponse(end)}`)
        .toBe(false);
      expect.soft(end.status, describeResponse(end)).toBe(200);
    }

    // Other ways to make the same request fail, not signed in: the error must not go out by itself either.
    for (const [label, changes] of [
      ['AZ[response_type=token]', { response_type: 'token' }],
      ['AZ[response_mode=fragment, -code_challenge]', { response_mode: 'fragment', code_challenge: null }],
      ['AZ[response_mode=form_post, -code_challenge]', { response_mode: 'form_post', code_challenge: null }],
      ['AZ[-code_challenge]', { code_challenge: null }],
    ] as const) {
      const other = await fx.browser().request(az(attacker, challenge, changes));
      expect
        .soft(toAttacker(other, fx.origin), `${label}, not signed in: ${describeResponse(other)}`)
        .toBe(false);
      // A page that would post itself to the attacker must not be able to run a script.
      if (other.text.includes(`action="${attackerRu}"`)) {
        const csp = String(other.headers['content-security-policy']);
        expect.soft(csp, `${label}: the self-submitting form is inert`).toMatch(/default-src 'none'/);
        expect.soft(csp, `${label}: the self-submitting form is inert`).not.toMatch(/script-src/);
      }
    }

    // The same link opened by a victim who still has a session here: the user has not authenticated in this
    // flow nor seen anything, so it must not bounce straight to the attacker either (RFC 9700 §4.11.2).
    const { res: withSession, url } = await signedIn.follow(
      az(attacker, challenge, { scope: 'bogus' }),
      fx.origin,
    );
    expect
      .soft(
        toAttacker(withSession, url),
        `AZ[scope=bogus], browser with a session: ${describeResponse(withSession)}`,
      )
      .toBe(false);
  });

  it('#10 Mix-up', async () => {
    const meta = await metadata();
    expect(meta['issuer']).toBe(fx.issuer);
    expect(meta['authorization_response_iss_parameter_supported']).toBe(true);
    const oidc = await get(`${fx.origin}/.well-known/openid-configuration`);
    expect((oidc.json as Record<string, unknown>)['issuer']).toBe(fx.issuer);
    expect((oidc.json as Record<string, unknown>)['authorization_response_iss_parameter_supported']).toBe(
      true,
    );

    const { back } = await codeFor(signedIn, pub);
    expect(back.searchParams.get('iss'), 'success redirect').toBe(meta['issuer']);
    const error = expectRedirectError(
      await get(az(op, 'x', { code_challenge: null })),
      LOOPBACK_RU,
      'invalid_request',
      'error redirect',
    );
    expect(error.searchParams.get('iss')).toBe(meta['issuer']);
    // The user's refusal too.
    const other = await registerPublic('Catalog mix-up deny', [LOOPBACK_REGISTERED], LOOPBACK_RU);
    const { challenge } = await pkcePair();
    const denied = await signedIn.authorize(az(other, challenge), fx.origin, user, 'deny');
    const deniedUrl = new URL(String(denied.location));
    expect(deniedUrl.searchParams.get('error')).toBe('access_denied');
    expect(deniedUrl.searchParams.get('iss')).toBe(meta['issuer']);
  });

  it('#11 state handling', async () => {
    const unit = 'a%26b&c=d %2F+é;';
    let state = '';
    while (state.length < 500) state += unit;
    state = state.slice(0, 500);
    expect(state).toContain('%26');
    const { back } = await codeFor(signedIn, pub, { state });
    expect(back.searchParams.get('state')).toBe(state);
    // An error response echoes it too.
    const res = await get(az(op, 'x', { code_challenge: null, state }));
    expect(new URL(String(res.headers.location)).searchParams.get('state')).toBe(state);
  });

  it('#12 Implicit', async () => {
    const { challenge } = await pkcePair();
    for (const responseType of ['token', 'code token']) {
      const res = await get(az(op, challenge, { response_type: responseType }));
      // Never a token, in the fragment or anywhere else.
      expect.soft(String(res.headers.location ?? '')).not.toMatch(/access_token=|[#&?]code=/);
      expect.soft(res.text).not.toMatch(/access_token/);
      expectRedirectError(
        res,
        LOOPBACK_RU,
        'unsupported_response_type',
        `AZ[response_type=${responseType}]`,
        true,
      );
    }
  });

  it('#13 Resource indicator abuse', async () => {
    const { challenge } = await pkcePair();
    const bad = [EVIL, 'mcp', '/mcp', `${fx.resource}#x`];
    for (const resource of bad) {
      expectRedirectError(
        await get(az(op, challenge, { resource })),
        LOOPBACK_RU,
        'invalid_target',
        `AZ[resource=${resource}]`,
      );
    }
    for (const resource of bad) {
      const { code, verifier } = await codeFor(signedIn, pub);
      expectError(
        await token(tk(pub, code, verifier, { resource })),
        400,
        'invalid_target',
        `TK[resource=${resource}]`,
      );
    }
  });

  it('#14 Credentials forwarded by 307', async () => {
    const browser = fx.browser();
    const login = await toLoginPage(browser, pub);
    const consent = await toConsentPage(browser, login);
    expect(consent.posted.status, 'login POST').toBe(303);
    const allowed = await browser.request(consent.action, {
      form: { csrf: consent.csrf },
      headers: { origin: fx.origin },
    });
    expect(allowed.status, `consent POST: ${describeResponse(allowed)}`).toBe(303);
  });

  it('#15 Clickjacking', async () => {
    const browser = fx.browser();
    const { challenge } = await pkcePair();
    const authorize = await browser.request(az(pub, challenge));
    const login = await toLoginPage(browser, pub);
    const consent = await toConsentPage(browser, login);
    const error = await get(az({ id: 'unknown-client', ru: EVIL }, challenge));
    expect(error.status).toBe(400);
    for (const [name, res] of [
      ['authorize', authorize],
      ['login', login.res],
      ['consent', consent.res],
      ['error', error],
    ] as const) {
      const csp = String(res.headers['content-security-policy']);
      expect(csp, name).toMatch(/(^|;)\s*frame-ancestors 'none'\s*(;|$)/);
      expect(res.headers['x-frame-options'], name).toBe('DENY');
    }
  });

  it('#16 Login/consent CSRF', async () => {
    const before = await codeCount();
    const victim = fx.browser();
    const login = await toLoginPage(victim, pub);
    const elsewhere = fx.browser();
    const otherLogin = await toLoginPage(elsewhere, pub);
    expect(otherLogin.csrf).not.toBe(login.csrf);
    const creds = { username: user.username, password: user.password };
    const attempts: [string, Record<string, string>, Record<string, string>][] = [
      ['login without csrf', { ...creds }, { origin: fx.origin }],
      ["login with another browser's csrf", { ...creds, csrf: otherLogin.csrf }, { origin: fx.origin }],
      ['login with Origin evil', { ...creds, csrf: login.csrf }, { origin: EVIL }],
    ];
    for (const [label, form, headers] of attempts) {
      const res = await victim.request(login.action, { form, headers });
      expect(res.status, `${label}: ${describeResponse(res)}`).toBe(403);
      expect(res.headers.location, label).toBeUndefined();
    }
    const consent = await toConsentPage(victim, login);
    const otherConsent = await toConsentPage(elsewhere, otherLogin);
    const consentAttempts: [string, Record<string, string>, Record<string, string>][] = [
      ['consent without csrf', {}, { origin: fx.origin }],
      ["consent with another browser's csrf", { csrf: otherConsent.csrf }, { origin: fx.origin }],
      ['consent with Origin evil', { csrf: consent.csrf }, { origin: EVIL }],
    ];
    for (const [label, form, headers] of consentAttempts) {
      const res = await victim.request(consent.action, { form, headers });
      expect(res.status, `${label}: ${describeResponse(res)}`).toBe(403);
      expect(res.headers.location, label).toBeUndefined();
    }
    expect(await codeCount(), 'no code issued').toBe(before);
    // The genuine form still works (the refusals were the CSRF checks).
    const allowed = await victim.request(consent.action, {
      form: { csrf: consent.csrf },
      headers: { origin: fx.origin },
    });
    expect(allowed.status, describeResponse(allowed)).toBe(303);
  });

  it('#17 Consent cookie', async () => {
    const browser = fx.browser();
    const { challenge } = await pkcePair();
    const done = await browser.authorize(az(pub, challenge), fx.origin, user);
    expect(String(done.location)).toMatch(/[?&]code=/);
    const seen = new Set<string>();
    for (const line of browser.setCookies) {
      const parts = line.split(';').map((p) => p.trim());
      const name = (parts[0] ?? '').split('=')[0] ?? '';
      const attrs = parts.slice(1).map((p) => {
        const eq = p.indexOf('=');
        return eq < 0 ? [p.toLowerCase(), ''] : [p.slice(0, eq).toLowerCase(), p.slice(eq + 1)];
      });
      seen.add(name);
      const attr = new Map(attrs.map(([k, v]) => [k ?? '', v ?? '']));
      expect(attr.has('secure'), line).toBe(true);
      expect(attr.has('httponly'), line).toBe(true);
      expect(attr.get('samesite')?.toLowerCase(), line).toBe('lax');
      expect(attr.has('domain'), line).toBe(false);
      if (name.startsWith('__Host-')) expect(attr.get('path'), line).toBe('/');
      else {
        expect(name.startsWith('__Secure-'), `${line}: every cookie is __Host- or __Secure-`).toBe(true);
        expect(attr.get('path') ?? '', line).toMatch(/^\/oauth\//);
      }
    }
    const names = [...seen];
    for (const required of [
      '__Host-pa_session',
      '__Host-pa_session.sig',
      '__Host-pa_csrf',
      '__Host-pa_account',
      '__Secure-pa_interaction',
      '__Secure-pa_interaction.sig',
      '__Secure-pa_resume',
      '__Secure-pa_resume.sig',
    ]) {
      expect(names, required).toContain(required);
    }
  });

  it('#18 Confused deputy', async () => {
    const browser = fx.browser();
    const a = await registerPublic('Catalog app A', ['https://a.example/cb'], 'https://a.example/cb');
    const first = await codeFor(browser, a);
    expect(first.code).toBeTruthy();
    const b = await registerPublic(
      'Catalog app B',
      ['https://b-client.example/cb'],
      'https://b-client.example/cb',
    );
    const { challenge } = await pkcePair();
    const { res } = await browser.follow(az(b, challenge), fx.origin);
    expect(res.status, `no silent code: ${describeResponse(res)}`).toBe(200);
    expect(res.headers.location).toBeUndefined();
    const forms = parseForms(res.text);
    expect(
      forms.some((f) => /\/consent$/.test(f.action)),
      'the consent page',
    ).toBe(true);
    expect(res.text).toContain('Catalog app B');
    expect(res.text).toContain(b.id);
    expect(res.text).toContain('b-client.example');
    expect(res.text).toContain('pa.read');
    expect(res.text).not.toContain('Catalog app A');
  });

  it('#19 Leaks from the authorize endpoint', async () => {
    const browser = fx.browser();
    const { challenge } = await pkcePair();
    const authorize = await browser.request(az(pub, challenge), { headers: { origin: EVIL } });
    const login = await toLoginPage(browser, pub);
    const consent = await toConsentPage(browser, login);
    const error = await get(az({ id: 'unknown-client', ru: EVIL }, challenge), { origin: EVIL });
    for (const [name, res] of [
      ['authorize', authorize],
      ['login', login.res],
      ['consent', consent.res],
      ['error', error],
    ] as const) {
      expect(res.headers['access-control-allow-origin'], name).toBeUndefined();
      expect(res.headers['referrer-policy'], name).toBe('no-referrer');
      expect(res.text, name).not.toMatch(
        /\b(?:src|href|action|srcset|poster|data|formaction)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?\/\//i,
      );
      expect(res.text, name).not.toMatch(/url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?\/\//i);
      expect(res.text, name).not.toMatch(/@import/i);
      expect(res.text, name).not.toMatch(/<(?:script|iframe|link|img)\b[^>]*(?:https?:)?\/\//i);
    }
  });

  it('#20 ROPC', async () => {
    const res = await token({
      grant_type: 'password',
      username: user.username,
      password: user.password,
      client_id: pub.id,
    });
    expectError(res, 400, 'unsupported_grant_type');
  });

  it('#21 Refresh-token reuse', async () => {
    const t1 = await tokensFor(pub);
    const r2 = await token({
      grant_type: 'refresh_token',
      refresh_token: t1.refresh_token,
      client_id: pub.id,
    });
    expect(r2.status, r2.text).toBe(200);
    const t2 = r2.json as Tokens;
    expect(t2.refresh_token).toBeTruthy();
    expect(t2.refresh_token).not.toBe(t1.refresh_token);
    expect(decodeJwt(t2.access_token)['gid']).toBe(decodeJwt(t1.access_token)['gid']);
    expect(await mcpStatus(t2.access_token)).toBe(200);
    expectError(
      await token({ grant_type: 'refresh_token', refresh_token: t1.refresh_token, client_id: pub.id }),
      400,
      'invalid_grant',
      'RT1 replayed',
    );
    expectError(
      await token({ grant_type: 'refresh_token', refresh_token: t2.refresh_token, client_id: pub.id }),
      400,
      'invalid_grant',
      'RT2 after the replay',
    );
    expect(await mcpStatusWithin(t2.access_token, 1500), 'AT2').toBe(401);
    expect(await mcpStatusWithin(t1.access_token, 1500), 'AT1').toBe(401);
  });

  it('#22 RT misuse', async () => {
    const other = await registerPublic('Catalog RT thief', [LOOPBACK_REGISTERED], LOOPBACK_RU);
    const t = await tokensFor(pub);
    expectError(
      await token({
        grant_type: 'refresh_token',
        refresh_token: t.refresh_token,
        client_id: pub.id,
        scope: 'admin',
      }),
      400,
      'invalid_scope',
      'refresh with scope=admin',
    );
    expectError(
      await token({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: other.id }),
      400,
      'invalid_grant',
      "client A's RT used by client B",
    );
  });

  describe('confidential clients', () => {
    let conf: Client & { secret: string };
    beforeAll(async () => {
      const reg = await fx.register({
        client_name: 'Catalog confidential app',
        redirect_uris: ['https://conf.example/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
      });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      expect(reg.body['client_secret']).toBeTruthy();
      conf = {
        id: String(reg.body['client_id']),
        secret: String(reg.body['client_secret']),
        ru: 'https://conf.example/cb',
      };
    });

    it('#23 Wrong secret', async () => {
      const { code, verifier } = await codeFor(signedIn, conf);
      const wrong = await token(tk(conf, code, verifier), { authorization: basic(conf.id, 'wrong') });
      expectError(wrong, 401, 'invalid_client', 'Basic C:wrong');
      expect(String(wrong.headers['www-authenticate'])).toMatch(/^Basic\b/);
      // The right secret works (the refusal was the secret).
      const again = await codeFor(signedIn, conf);
      const right = await token(tk(conf, again.code, again.verifier), {
        authorization: basic(conf.id, conf.secret),
      });
      expect(right.status, right.text).toBe(200);
    });

    it('#24 Auth method confusion', async () => {
      const a = await codeFor(signedIn, conf);
      const both = await token(tk(conf, a.code, a.verifier, { client_secret: conf.secret }), {
        authorization: basic(conf.id, conf.secret),
      });
      expectError(both, 400, 'invalid_request', 'Basic plus client_secret in the body', true);
      const b = await codeFor(signedIn, conf);
      const postAuth = await token(
        tk(conf, b.code, b.verifier, { client_id: conf.id, client_secret: conf.secret }),
      );
      expectError(postAuth, 401, 'invalid_client', 'client_secret_post for a basic client');
      // The registered method works.
      const c = await codeFor(signedIn, conf);
      const ok = await token(tk(conf, c.code, c.verifier), { authorization: basic(conf.id, conf.secret) });
      expect(ok.status, ok.text).toBe(200);
    });

    let keyClient: KeyClient;
    beforeAll(async () => {
      keyClient = await registerKeyClient();
    });

    it('#25 private_key_jwt replay', async () => {
      const jwt = await assertion(keyClient);
      const a = await codeFor(signedIn, keyClient);
      const first = await token({ ...tk(keyClient, a.code, a.verifier), ...withAssertion(jwt) });
      expect(first.status, first.text).toBe(200);
      const b = await codeFor(signedIn, keyClient);
      const second = await token({ ...tk(keyClient, b.code, b.verifier), ...withAssertion(jwt) });
      expectError(second, 401, 'invalid_client', 'the same assertion twice');
    });

    it('#26 Bad assertion', async () => {
      const now = Math.floor(Date.now() / 1000);
      const foreign = await generateKeyPair('ES256', { extractable: true });
      const variants: [string, string][] = [
        ['exp -10 s', await assertion(keyClient, { exp: now - 10 })],
        ['exp +24 h', await assertion(keyClient, { exp: now + 24 * 3600 })],
        ['aud another AS', await assertion(keyClient, { aud: 'https://other-as.example' })],
        ['aud [B, "https://x"]', await assertion(keyClient, { aud: [fx.issuer, 'https://x'] })],
        [
          'alg none',
          new UnsecuredJWT({ jti: randomUUID() })
            .setIssuer(keyClient.id)
            .setSubject(keyClient.id)
            .setAudience(fx.issuer)
            .setIssuedAt(now)
            .setExpirationTime(now + 60)
            .encode(),
        ],
        [
          'HS256 keyed with the public key (PEM)',
          await new SignJWT({ jti: randomUUID() })
            .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
            .setIssuer(keyClient.id)
            .setSubject(keyClient.id)
            .setAudience(fx.issuer)
            .setIssuedAt(now)
            .setExpirationTime(now + 60)
            .sign(new TextEncoder().encode(keyClient.publicPem)),
        ],
        [
          'HS256 keyed with the public key (JWK JSON)',
          await new SignJWT({ jti: randomUUID() })
            .setProtectedHeader({ alg: 'HS256' })
            .setIssuer(keyClient.id)
            .setSubject(keyClient.id)
            .setAudience(fx.issuer)
            .setIssuedAt(now)
            .setExpirationTime(now + 60)
            .sign(new TextEncoder().encode(JSON.stringify(keyClient.publicJwk))),
        ],
        ['an unregistered key (same kid)', await assertion(keyClient, { key: foreign.privateKey })],
      ];
      const bogusCode = {
        grant_type: 'authorization_code',
        code: 'not-a-code',
        redirect_uri: keyClient.ru,
        code_verifier: randomBytes(32).toString('base64url'),
      };
      for (const [label, jwt] of variants) {
        expectError(await token({ ...bogusCode, ...withAssertion(jwt) }), 401, 'invalid_client', label, true);
      }
      // A good assertion passes client authentication (the grant is what fails then).
      expectError(
        await token({ ...bogusCode, ...withAssertion(await assertion(keyClient)) }),
        400,
        'invalid_grant',
        'control',
      );
    });

    // #27 tls_client_auth needs a server with a client CA (mTLS): covered in test/auth/oauth4webapi.test.ts.
  });

  it('#28 CORS at /token', async () => {
    const preflight = await rawRequest(`${fx.origin}/oauth/token`, {
      method: 'OPTIONS',
      headers: {
        origin: EVIL,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
      ca: fx.ca.cert,
    });
    const { code, verifier } = await codeFor(signedIn, pub);
    const posted = await token(tk(pub, code, verifier), { origin: EVIL });
    const { code: code2, verifier: verifier2 } = await codeFor(signedIn, pub);
    const success = await token(tk(pub, code2, verifier2));
    expect(success.status, success.text).toBe(200);
    for (const [name, res] of [
      ['OPTIONS', preflight],
      ['POST with Origin evil', posted],
      ['POST (success)', success],
    ] as const) {
      const acao = res.headers['access-control-allow-origin'];
      const acac = res.headers['access-control-allow-credentials'];
      expect(acao === EVIL && acac === 'true', `${name}: ACAO=${String(acao)} ACAC=${String(acac)}`).toBe(
        false,
      );
      if (name !== 'OPTIONS') expect(String(res.headers['cache-control']), name).toMatch(/\bno-store\b/);
    }
  });
});
