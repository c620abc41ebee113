/**
 * The security catalog (../shared/design/SECURITY-TESTS.md), lines 30–37 (the resource server at /mcp) and 41–48
 * (dynamic registration, TLS, metadata), against the real HTTP-mode server of test/auth/oauth-fixture.ts on
 * PGlite: real TLS on loopback, real tokens from the real authorization-code flow, forged tokens made with jose.
 *
 * Two kinds of forged token: "foreign" ones signed by a key the server never saw (all an outsider can make), and
 * "insider" ones signed with the server's own signing key (read from the database with the fixture's secret), so
 * that the claim checks (expiry, audience, issuer, type) are exercised by themselves rather than hidden behind
 * the signature check.
 */
import { queryAudit, type StoredAuditEvent } from '../../src/security/audit.js';
import { createPublicKey, randomBytes, randomUUID, type JsonWebKey as NodeJsonWebKey } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type Server as HttpServer,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect, createServer as createTlsServer, getCiphers, type ConnectionOptions } from 'node:tls';
import {
  base64url,
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey as JoseKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/auth/keys.js';
import {
  parseForms,
  pkcePair,
  startOAuthFixture,
  TEST_SECRET,
  type Browser,
  type OAuthFixture,
  type TestUser,
  mcpMessages,
} from '../auth/oauth-fixture.js';
import { rawRequest, type RawResponse } from '../support/https.js';

// ---------------------------------------------------------------------------------------------- helpers

const REGISTERED_REDIRECT = 'http://127.0.0.1/cb';
/** Loopback redirects of a native client match on any port (RFC 8252 §7.3). */
const REDIRECT = 'http://127.0.0.1:51004/cb';
const PROTOCOL = '2025-11-25';

interface Tokens {
  readonly access_token: string;
  readonly refresh_token?: string;
  readonly scope?: string;
  readonly token_type?: string;
}

/** Registers the public native client most tests use. */
async function publicClient(fx: OAuthFixture, name = 'Catalog client'): Promise<string> {
  const reg = await fx.register({
    redirect_uris: [REGISTERED_REDIRECT],
    client_name: name,
    token_endpoint_auth_method: 'none',
  });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  return String(reg.body['client_id']);
}

function authorizeUrl(fx: OAuthFixture, params: Record<string, string>): string {
  const az = new URL(`${fx.origin}/oauth/authorize`);
  az.search = new URLSearchParams(params).toString();
  return az.href;
}

/** The full flow (sign-in and consent through the pages, then the token exchange with PKCE). */
async function obtainTokens(
  fx: OAuthFixture,
  clientId: string,
  user: TestUser,
  options: { scope?: string; browser?: Browser } = {},
): Promise<Tokens> {
  const { verifier, challenge } = await pkcePair();
  const state = randomBytes(8).toString('hex');
  const browser = options.browser ?? fx.browser();
  const done = await browser.authorize(
    authorizeUrl(fx, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: options.scope ?? 'pa.read pa.write',
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    }),
    fx.origin,
    user,
  );
  expect(String(done.location), `${done.res.status} ${done.res.text.slice(0, 500)}`).toMatch(
    /^http:\/\/127\.0\.0\.1:51004\/cb\?/,
  );
  const back = new URL(done.location as string);
  expect(back.searchParams.get('state')).toBe(state);
  const code = back.searchParams.get('code') as string;
  const tk = await tokenRequest(fx, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT,
    code_verifier: verifier,
    client_id: clientId,
  });
  expect(tk.status, tk.text).toBe(200);
  return tk.json as Tokens;
}

function tokenRequest(fx: OAuthFixture, form: Record<string, string>): Promise<RawResponse> {
  return rawRequest(`${fx.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
    ca: fx.ca.cert,
  });
}

interface McpResponse extends RawResponse {
  /** JSON-RPC messages of the answer (a JSON body, or the data lines of an SSE stream). */
  readonly messages: Record<string, unknown>[];
}

/** One raw POST to /mcp (or `path`), the body sent as given (strings as is, anything else as JSON). */
async function mcpPost(
  fx: OAuthFixture,
  body: unknown,
  options: { token?: string; session?: string; path?: string; headers?: Record<string, string> } = {},
): Promise<McpResponse> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
    ...(options.session !== undefined
      ? { 'mcp-session-id': options.session, 'mcp-protocol-version': PROTOCOL }
      : {}),
    ...options.headers,
  };
  const res = await rawRequest(`${fx.origin}${options.path ?? '/mcp'}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ca: fx.ca.cert,
  });
  return { ...res, messages: mcpMessages(res) };
}

const initialize = (id = 1): Record<string, unknown> => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'catalog', version: '1' } },
});

/** initialize + notifications/initialized; returns the session id. */
async function openSession(fx: OAuthFixture, token: string): Promise<string> {
  const init = await mcpPost(fx, initialize(), { token });
  expect(init.status, init.text).toBe(200);
  const sid = init.headers['mcp-session-id'];
  expect(typeof sid).toBe('string');
  const note = await mcpPost(
    fx,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { token, session: sid as string },
  );
  expect(note.status, note.text).toBe(202);
  return sid as string;
}

interface ToolAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The JSON-RPC result (a CallToolResult), or undefined on a JSON-RPC error. */
  readonly result?: {
    isError?: boolean;
    content?: { type: string; text?: string }[];
    structuredContent?: Record<string, unknown>;
  };
  readonly error?: { code: number; message: string };
}

let rpcId = 100;
async function callTool(
  fx: OAuthFixture,
  token: string,
  session: string,
  name: string,
  args: Record<string, unknown>,
): Promise<ToolAnswer> {
  const id = ++rpcId;
  const res = await mcpPost(
    fx,
    { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } },
    { token, session },
  );
  const message = res.messages.find((m) => m['id'] === id);
  return {
    status: res.status,
    headers: res.headers,
    text: res.text,
    ...(message?.['result'] !== undefined ? { result: message['result'] as ToolAnswer['result'] } : {}),
    ...(message?.['error'] !== undefined ? { error: message['error'] as ToolAnswer['error'] } : {}),
  };
}

function textOf(answer: ToolAnswer): string {
  return (answer.result?.content ?? []).map((c) => c.text ?? '').join('\n');
}

const wwwAuth = (res: { headers: IncomingHttpHeaders }): string =>
  String(res.headers['www-authenticate'] ?? '');

/** The challenge of a request without a token (RFC 9728 §5.1, RFC 6750 §3.1: no error code). */
const noTokenChallenge = (fx: OAuthFixture): string =>
  `Bearer resource_metadata="${fx.origin}/.well-known/oauth-protected-resource/mcp", scope="pa.read pa.write"`;

/** Asserts a 401 invalid_token refusal of `token` at /mcp (initialize, the first thing a client sends). */
async function expectInvalidToken(fx: OAuthFixture, token: string, why: string): Promise<void> {
  const res = await mcpPost(fx, initialize(), { token });
  expect(res.status, `${why}: ${res.status} ${res.text}`).toBe(401);
  const challenge = wwwAuth(res);
  expect(challenge, why).toMatch(/^Bearer /);
  expect(challenge, why).toContain('error="invalid_token"');
  expect(challenge, why).toContain(
    `resource_metadata="${fx.origin}/.well-known/oauth-protected-resource/mcp"`,
  );
  expect(res.headers['mcp-session-id'], why).toBeUndefined();
}

/** A token the server accepts, to show a check is meaningful (control). */
async function expectAccepted(fx: OAuthFixture, token: string): Promise<void> {
  const res = await mcpPost(fx, initialize(), { token });
  expect(res.status, res.text).toBe(200);
}

/** Polls /mcp with `token` until it is refused; returns how long after `since` that happened (ms), or null. */
async function refusedWithin(
  fx: OAuthFixture,
  token: string,
  since: number,
  limitMs: number,
): Promise<number | null> {
  for (;;) {
    const res = await mcpPost(fx, initialize(), { token });
    if (res.status === 401) {
      expect(wwwAuth(res)).toContain('error="invalid_token"');
      return Date.now() - since;
    }
    if (Date.now() - since > limitMs) return null;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Signer {
  readonly key: JoseKey | Uint8Array;
  readonly kid: string;
  readonly publicJwk: JWK;
}

async function foreignSigner(): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { key: privateKey, kid, publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' } };
}

/** The server's own active signing key (from its database, decrypted with the fixture's secret). */
async function insiderSigner(fx: OAuthFixture): Promise<Signer> {
  const set = await new KeyStore(fx.store, TEST_SECRET).load();
  const jwk = set.privateJwks[0] as JWK;
  const publicJwk = set.publicJwks[0] as JWK;
  return { key: (await importJWK(jwk, 'ES256')) as JoseKey, kid: String(jwk.kid), publicJwk };
}

/** A JWT access token as the server would issue it, with `claims` changed (undefined drops a claim). */
async function forge(
  signer: Signer,
  base: JWTPayload,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const payload: Record<string, unknown> = { ...base, jti: randomBytes(12).toString('base64url') };
  for (const [k, v] of Object.entries(claims)) {
    if (v === undefined) delete payload[k];
    else payload[k] = v;
  }
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid, ...header })
    .sign(signer.key);
}

function b64json(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/** A loopback plain-HTTP listener that counts TCP connections and HTTP requests. */
async function countingListener(body: unknown = { keys: [] }): Promise<{
  url: string;
  connections: () => number;
  requests: () => string[];
  reset: () => void;
  close: () => Promise<void>;
}> {
  let connections = 0;
  let requests: string[] = [];
  const sockets = new Set<Socket>();
  const server: HttpServer = createHttpServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  server.on('connection', (s: Socket) => {
    connections += 1;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    requests: () => [...requests],
    reset: () => {
      connections = 0;
      requests = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ------------------------------------------------------------------------------- #30–#37, #47, #48

describe('security catalog #30–#37, #47, #48: the resource server (PGlite)', () => {
  let fx: OAuthFixture;
  let clientId: string;
  let alice: TestUser;
  let bob: TestUser;
  let aliceTokens: Tokens;
  let bobTokens: Tokens;

  beforeAll(async () => {
    fx = await startOAuthFixture();
    clientId = await publicClient(fx);
    alice = await fx.addUser();
    bob = await fx.addUser();
    aliceTokens = await obtainTokens(fx, clientId, alice);
    bobTokens = await obtainTokens(fx, clientId, bob);
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('#30 No token', async () => {
    const call = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'list_projects', arguments: {} },
    };
    const res = await mcpPost(fx, call);
    expect(res.status, res.text).toBe(401);
    // Exactly the RFC 9728 §5.1 challenge, with no error code (RFC 6750 §3.1).
    expect(wwwAuth(res)).toBe(noTokenChallenge(fx));
    expect(wwwAuth(res)).not.toContain('error=');
    // The URL in the challenge serves this resource's metadata.
    const prm = await fx.fetch(`${fx.origin}/.well-known/oauth-protected-resource/mcp`);
    expect(((await prm.json()) as Record<string, unknown>)['resource']).toBe(fx.resource);
    // The same for initialize, an empty Authorization header, and the session stream (GET) and DELETE.
    const init = await mcpPost(fx, initialize());
    expect(init.status).toBe(401);
    expect(wwwAuth(init)).toBe(noTokenChallenge(fx));
    const empty = await mcpPost(fx, initialize(), { headers: { authorization: '' } });
    expect(empty.status).toBe(401);
    expect(wwwAuth(empty)).toBe(noTokenChallenge(fx));
    for (const method of ['GET', 'DELETE']) {
      const res2 = await rawRequest(fx.resource, {
        method,
        headers: { accept: 'text/event-stream', 'mcp-session-id': randomUUID() },
        ca: fx.ca.cert,
      });
      expect(res2.status, `${method} ${res2.text}`).toBe(401);
      expect(wwwAuth(res2)).toBe(noTokenChallenge(fx));
    }
    // Control: the same request with the token in the header is served.
    await expectAccepted(fx, aliceTokens.access_token);
  });

  it('#31 Token in the query string', async () => {
    const at = aliceTokens.access_token;
    // In the query string.
    const query = await mcpPost(fx, initialize(), { path: `/mcp?access_token=${encodeURIComponent(at)}` });
    expect(query.status, query.text).toBe(401);
    expect(wwwAuth(query)).toBe(noTokenChallenge(fx));
    expect(query.headers['mcp-session-id']).toBeUndefined();
    // In a form body (RFC 6750 §2.2 form-encoded body parameter).
    const form = await mcpPost(fx, new URLSearchParams({ access_token: at }).toString(), {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status, form.text).toBe(401);
    expect(wwwAuth(form)).toBe(noTokenChallenge(fx));
    // As a field of the JSON body, and of the JSON-RPC params.
    const json = await mcpPost(fx, { ...initialize(), access_token: at });
    expect(json.status, json.text).toBe(401);
    expect(wwwAuth(json)).toBe(noTokenChallenge(fx));
    const inParams = initialize();
    (inParams['params'] as Record<string, unknown>)['access_token'] = at;
    const params = await mcpPost(fx, inParams);
    expect(params.status, params.text).toBe(401);
    // In the query of the SSE stream request.
    const get = await rawRequest(`${fx.resource}?access_token=${encodeURIComponent(at)}`, {
      headers: { accept: 'text/event-stream' },
      ca: fx.ca.cert,
    });
    expect(get.status).toBe(401);
    expect(wwwAuth(get)).toBe(noTokenChallenge(fx));
    // The token is good: in the header it is accepted.
    await expectAccepted(fx, at);
  });

  it('#32 Expired or revoked token', async () => {
    const real = decodeJwt(aliceTokens.access_token);
    const now = Math.floor(Date.now() / 1000);
    const expired = { iat: now - 3600, nbf: undefined, exp: now - 600 };
    // (a) expired, signed by a foreign key (all an outsider can make) and by the server's own key.
    await expectInvalidToken(fx, await forge(await foreignSigner(), real, expired), 'expired, foreign key');
    const insider = await insiderSigner(fx);
    await expectAccepted(fx, await forge(insider, real)); // control: the insider forge is otherwise valid
    await expectInvalidToken(fx, await forge(insider, real, expired), 'expired, server key');
    await expectInvalidToken(fx, await forge(insider, real, { exp: undefined }), 'no exp, server key');
    await expectInvalidToken(fx, await forge(insider, real, { nbf: now + 600 }), 'not yet valid, server key');

    // (b1) revocation of the refresh token at /oauth/revoke (public client: client_id in the body) ends the grant.
    const user1 = await fx.addUser();
    const t1 = await obtainTokens(fx, clientId, user1);
    await expectAccepted(fx, t1.access_token);
    const revoke = await rawRequest(`${fx.origin}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: t1.refresh_token as string,
        token_type_hint: 'refresh_token',
        client_id: clientId,
      }).toString(),
      ca: fx.ca.cert,
    });
    expect(revoke.status, revoke.text).toBe(200);
    const since1 = Date.now();
    const after1 = await refusedWithin(fx, t1.access_token, since1, 1500);
    expect(after1, 'the access token still works 1.5 s after its refresh token was revoked').not.toBeNull();
    // The refresh token is dead too.
    const refresh = await tokenRequest(fx, {
      grant_type: 'refresh_token',
      refresh_token: t1.refresh_token as string,
      client_id: clientId,
    });
    expect(refresh.status).toBe(400);
    expect((refresh.json as Record<string, unknown>)['error']).toBe('invalid_grant');

    // (b2) revocation on the connected-apps page.
    const user2 = await fx.addUser();
    const browser = fx.browser();
    const t2 = await obtainTokens(fx, clientId, user2, { browser });
    await expectAccepted(fx, t2.access_token);
    const gid = String(decodeJwt(t2.access_token)['gid']);
    const page = await browser.request(`${fx.origin}/account/apps`);
    expect(page.status, page.text.slice(0, 300)).toBe(200);
    const form = parseForms(page.text).find((f) => f.fields.get('grant') === gid);
    expect(form, 'no revoke form for the grant on /account/apps').toBeDefined();
    const posted = await browser.request(new URL(form?.action ?? '', fx.origin).href, {
      form: Object.fromEntries(form?.fields ?? []),
      headers: { origin: fx.origin },
    });
    expect(posted.status, posted.text.slice(0, 300)).toBe(303);
    expect(String(posted.headers.location)).toContain('revoked=1');
    const after2 = await refusedWithin(fx, t2.access_token, Date.now(), 1500);
    expect(
      after2,
      'the access token still works 1.5 s after the app was revoked on /account/apps',
    ).not.toBeNull();

    // (c) revoking the JWT access token itself: either it is revoked (and then refused at /mcp), or the server
    // says plainly it cannot revoke that token type (RFC 7009 §2.2.1) — never a 200 that changes nothing.
    const user3 = await fx.addUser();
    const t3 = await obtainTokens(fx, clientId, user3);
    const revokeAt = await rawRequest(`${fx.origin}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: t3.access_token,
        token_type_hint: 'access_token',
        client_id: clientId,
      }).toString(),
      ca: fx.ca.cert,
    });
    console.info(`#32(c) POST /oauth/revoke with the JWT access token → ${revokeAt.status} ${revokeAt.text}`);
    if (revokeAt.status === 200) {
      expect(
        await refusedWithin(fx, t3.access_token, Date.now(), 1500),
        'revocation answered 200 but the access token still works',
      ).not.toBeNull();
    } else {
      expect(revokeAt.status).toBe(400);
      expect((revokeAt.json as Record<string, unknown>)['error']).toBe('unsupported_token_type');
    }
  });

  it('#33 Audience mismatch / passthrough', async () => {
    // No token for another audience can be obtained: the authorization request and the token request refuse it.
    const { verifier, challenge } = await pkcePair();
    const other = `${fx.origin}/other`;
    const browser = fx.browser();
    const az = await browser.authorize(
      authorizeUrl(fx, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        scope: 'pa.read',
        state: 'S33',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: other,
      }),
      fx.origin,
      alice,
    );
    // Either the error goes back to the client (RFC 8707 §2), or — what this server does before the user is
    // known — an interstitial page (catalog #9) whose link back carries the error; never a code.
    if (az.location !== undefined) {
      const back = new URL(az.location);
      expect(back.searchParams.get('error')).toBe('invalid_target');
      expect(back.searchParams.get('code')).toBeNull();
      expect(back.searchParams.get('iss')).toBe(fx.issuer);
    } else {
      expect(az.res.status, az.res.text.slice(0, 300)).toBe(400);
      expect(az.res.headers.location).toBeUndefined();
      expect(az.res.text).toContain('<code>invalid_target</code>');
      const link = /href="(http:\/\/127\.0\.0\.1:51004\/cb\?[^"]*)"/.exec(az.res.text)?.[1];
      expect(link, 'no link back to the client').toBeDefined();
      const back = new URL((link as string).replace(/&amp;/g, '&'));
      expect(back.searchParams.get('error')).toBe('invalid_target');
      expect(back.searchParams.get('code')).toBeNull();
      expect(back.searchParams.get('iss')).toBe(fx.issuer);
    }
    // A code for the MCP resource exchanged with resource=B/other.
    const ok = await browser.authorize(
      authorizeUrl(fx, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        scope: 'pa.read',
        state: 'S33b',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: fx.resource,
      }),
      fx.origin,
      alice,
    );
    const code = new URL(String(ok.location)).searchParams.get('code');
    expect(code, String(ok.location)).toBeTruthy();
    const tk = await tokenRequest(fx, {
      grant_type: 'authorization_code',
      code: code as string,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: clientId,
      resource: other,
    });
    expect(tk.status, tk.text).toBe(400);
    expect((tk.json as Record<string, unknown>)['error']).toBe('invalid_target');

    // Forged wrong-audience / no-audience tokens: foreign key, then the server's own key.
    const real = decodeJwt(aliceTokens.access_token);
    const foreign = await foreignSigner();
    const insider = await insiderSigner(fx);
    for (const signer of [foreign, insider]) {
      const who = signer === foreign ? 'foreign key' : 'server key';
      await expectInvalidToken(fx, await forge(signer, real, { aud: other }), `wrong aud, ${who}`);
      await expectInvalidToken(fx, await forge(signer, real, { aud: fx.origin }), `aud = issuer, ${who}`);
      await expectInvalidToken(
        fx,
        await forge(signer, real, { aud: `${fx.resource}/` }),
        `aud with a trailing slash, ${who}`,
      );
      await expectInvalidToken(fx, await forge(signer, real, { aud: undefined }), `no aud, ${who}`);
      await expectInvalidToken(
        fx,
        await forge(signer, real, { aud: [other] }),
        `aud array without the resource, ${who}`,
      );
      await expectInvalidToken(
        fx,
        await forge(signer, real, { iss: 'https://evil.example' }),
        `another issuer, ${who}`,
      );
      await expectInvalidToken(
        fx,
        await forge(signer, real, {}, { typ: 'JWT' }),
        `typ JWT instead of at+jwt, ${who}`,
      );
    }
    // Passthrough: the token is used here and goes nowhere else; in particular it is never written to the log.
    expect(fx.logs()).not.toContain(aliceTokens.access_token);
    expect(fx.logs()).not.toContain(aliceTokens.access_token.split('.')[2] as string);
  });

  it('#34 JWT attacks', async () => {
    const at = aliceTokens.access_token;
    const real = decodeJwt(at);
    const realHeader = decodeProtectedHeader(at);
    const [h, p, s] = at.split('.') as [string, string, string];
    await expectAccepted(fx, at);

    // alg none: jose's unsecured JWT, and one with the server's typ and kid.
    await expectInvalidToken(fx, new UnsecuredJWT(real).encode(), 'alg none');
    await expectInvalidToken(
      fx,
      `${b64json({ ...realHeader, alg: 'none' })}.${p}.`,
      'alg none, server kid, empty signature',
    );
    await expectInvalidToken(
      fx,
      `${b64json({ ...realHeader, alg: 'none' })}.${p}.${s}`,
      'alg none, original signature',
    );

    // HS256 keyed with the server's public key (as JWK JSON, as PEM, as the raw x coordinate).
    const jwks = (await (await fx.fetch(`${fx.origin}/oauth/jwks`)).json()) as { keys: JWK[] };
    const pub = jwks.keys[0] as JWK;
    const pem = createPublicKey({ key: pub as NodeJsonWebKey, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    }) as string;
    const secrets: [string, Uint8Array][] = [
      ['JWK JSON', new TextEncoder().encode(JSON.stringify(pub))],
      ['PEM', new TextEncoder().encode(pem)],
      ['x coordinate', base64url.decode(String(pub.x))],
    ];
    for (const [what, secret] of secrets) {
      const hs = await new SignJWT(real)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: String(pub.kid) })
        .sign(secret);
      await expectInvalidToken(fx, hs, `HS256 keyed with the public key (${what})`);
    }

    // jku / x5u / embedded jwk headers pointing at the attacker's key: never fetched, never trusted.
    const foreign = await foreignSigner();
    const listener = await countingListener({ keys: [foreign.publicJwk] });
    try {
      await expectInvalidToken(
        fx,
        await forge(foreign, real, {}, { jku: `${listener.url}/jwks.json` }),
        'jku injection',
      );
      await expectInvalidToken(
        fx,
        await forge(foreign, real, {}, { x5u: `${listener.url}/cert.pem` }),
        'x5u injection',
      );
      await expectInvalidToken(
        fx,
        await forge(foreign, real, {}, { jwk: foreign.publicJwk }),
        'embedded jwk',
      );
      await expectInvalidToken(
        fx,
        await forge(foreign, real, {}, { kid: realHeader.kid, jku: `${listener.url}/jwks.json` }),
        'jku injection with the server kid',
      );
      expect(listener.requests(), 'the server fetched a URL named in a token header').toEqual([]);
      expect(listener.connections(), 'the server connected to a URL named in a token header').toBe(0);
    } finally {
      await listener.close();
    }

    // kid injection: path traversal, SQL, and an absent kid — with a foreign signature and with the server's.
    const insider = await insiderSigner(fx);
    for (const kid of [
      '../../etc/passwd',
      "' OR '1'='1",
      "x'; DROP TABLE oauth_state; --",
      '',
      'a'.repeat(5000),
    ]) {
      await expectInvalidToken(
        fx,
        await forge(foreign, real, {}, { kid }),
        `kid ${JSON.stringify(kid.slice(0, 40))}, foreign key`,
      );
      await expectInvalidToken(
        fx,
        await forge(insider, real, {}, { kid }),
        `kid ${JSON.stringify(kid.slice(0, 40))}, server key`,
      );
    }
    // The server still works after the injections (nothing dropped).
    await expectAccepted(fx, at);

    // Tampered payload of a real token, signature kept.
    const tamper = (changes: Record<string, unknown>): string =>
      `${h}.${b64json({ ...real, ...changes })}.${s}`;
    await expectInvalidToken(fx, tamper({ sub: bob.id }), 'tampered sub');
    await expectInvalidToken(fx, tamper({ scope: 'pa.read pa.write admin' }), 'tampered scope');
    await expectInvalidToken(fx, tamper({ exp: (real.exp ?? 0) + 86_400 }), 'tampered exp');
    await expectInvalidToken(fx, `${h}.${p}.${s.slice(0, -4)}AAAA`, 'tampered signature');
    await expectInvalidToken(fx, `${h}.${p}`, 'signature dropped');

    // A foreign key, with its own kid and with the server's kid.
    await expectInvalidToken(fx, await forge(foreign, real), 'foreign key');
    await expectInvalidToken(
      fx,
      await forge(foreign, real, {}, { kid: realHeader.kid }),
      'foreign key, server kid',
    );
    // The token of another user, with the subject changed and re-signed by an outsider.
    await expectInvalidToken(fx, await forge(foreign, real, { sub: bob.id }), 'foreign key, another subject');
  });

  it('#35 Insufficient scope', async () => {
    const reader = await fx.addUser();
    const readOnly = await obtainTokens(fx, clientId, reader, { scope: 'pa.read' });
    expect(String(decodeJwt(readOnly.access_token)['scope']).split(' ')).toEqual(['pa.read']);
    const sid = await openSession(fx, readOnly.access_token);
    const write = await callTool(fx, readOnly.access_token, sid, 'create_project', {
      name: 'should not exist',
    });
    expect(write.status, write.text).toBe(403);
    const challenge = wwwAuth(write);
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toMatch(/scope="[^"]*\bpa\.write\b[^"]*"/);
    expect(challenge).toContain('scope="pa.read pa.write"');
    expect(challenge).toContain(`resource_metadata="${fx.origin}/.well-known/oauth-protected-resource/mcp"`);
    // Other write tools too, and in a batch hiding the write call behind a read one.
    for (const name of ['add_note', 'delete_items', 'update_items', 'create_todo']) {
      const res = await callTool(fx, readOnly.access_token, sid, name, {});
      expect(res.status, `${name}: ${res.text}`).toBe(403);
      expect(wwwAuth(res)).toContain('error="insufficient_scope"');
    }
    const batch = await mcpPost(
      fx,
      [
        { jsonrpc: '2.0', id: 901, method: 'tools/call', params: { name: 'list_projects', arguments: {} } },
        {
          jsonrpc: '2.0',
          id: 902,
          method: 'tools/call',
          params: { name: 'create_project', arguments: { name: 'x' } },
        },
      ],
      { token: readOnly.access_token, session: sid },
    );
    expect([400, 403], batch.text).toContain(batch.status);
    // A read tool works.
    const read = await callTool(fx, readOnly.access_token, sid, 'list_projects', {});
    expect(read.status, read.text).toBe(200);
    expect(read.result?.isError ?? false, textOf(read)).toBe(false);
    expect(read.result?.structuredContent?.['items']).toEqual([]);
    // Nothing was written: the same user with a full token sees no project.
    const full = await obtainTokens(fx, clientId, reader);
    const fullSid = await openSession(fx, full.access_token);
    const list = await callTool(fx, full.access_token, fullSid, 'list_projects', {});
    expect(list.result?.structuredContent?.['items']).toEqual([]);
  });

  it('#36 Cross-tenant access / IDOR', async () => {
    const a = aliceTokens.access_token;
    const b = bobTokens.access_token;
    const sa = await openSession(fx, a);
    const sb = await openSession(fx, b);
    const marker = `zebrafish${randomBytes(4).toString('hex')}`;
    const project = await callTool(fx, a, sa, 'create_project', {
      name: `Alice ${marker}`,
      description: marker,
    });
    expect(project.result?.isError ?? false, textOf(project)).toBe(false);
    const projectId = String(
      (project.result?.structuredContent?.['project'] as Record<string, unknown>)['id'],
    );
    const note = await callTool(fx, a, sa, 'add_note', { text: `secret ${marker}` });
    expect(note.result?.isError ?? false, textOf(note)).toBe(false);
    const noteId = String((note.result?.structuredContent?.['note'] as Record<string, unknown>)['id']);
    const todo = await callTool(fx, a, sa, 'create_todo', { title: `todo ${marker}` });
    expect(todo.result?.isError ?? false, textOf(todo)).toBe(false);

    // B reads A's record by id: not found — and an audit entry says who tried what, from where.
    const auditFrom = new Date();
    const get = await callTool(fx, b, sb, 'get_project', { project_id: projectId });
    expect(get.status).toBe(200);
    expect(get.result?.isError, textOf(get)).toBe(true);
    expect(textOf(get)).toMatch(/not[_ ]found/i);
    expect(textOf(get)).not.toContain(marker);
    let entries: StoredAuditEvent[] = [];
    for (let i = 0; i < 25 && entries.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      entries = (await queryAudit(fx.store, { type: 'mcp.not_found', since: auditFrom })).filter(
        (e) => e.details?.['tool'] === 'get_project',
      );
    }
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ tenant: bob.id, ip: '127.0.0.1' });
    expect(entries[0]?.requestId).toBe(get.headers['x-request-id']);
    expect(entries[0]?.details?.['field']).toBe('project_id');
    // B's lists and searches hold no A rows.
    for (const [name, args] of [
      ['list_projects', {}],
      ['list_todos', {}],
      ['list_documents', {}],
      ['get_dashboard', {}],
      ['export', { format: 'json' }],
    ] as const) {
      const res = await callTool(fx, b, sb, name, args);
      expect(res.status, `${name}: ${res.text}`).toBe(200);
      expect(res.result?.isError ?? false, `${name}: ${textOf(res)}`).toBe(false);
      expect(res.text, `${name} shows A's data to B`).not.toContain(marker);
      expect(res.text, `${name} shows A's ids to B`).not.toContain(projectId);
    }
    const found = await callTool(fx, b, sb, 'search', { query: marker });
    expect(found.result?.isError ?? false, textOf(found)).toBe(false);
    expect(found.result?.structuredContent?.['results'], "search shows A's items to B").toEqual([]);
    expect(found.text).not.toContain(projectId);
    expect(found.text).not.toContain(`secret ${marker}`);
    // Control: A finds them.
    const foundByA = await callTool(fx, a, sa, 'search', { query: marker });
    expect((foundByA.result?.structuredContent?.['results'] as unknown[]).length).toBeGreaterThanOrEqual(3);
    // B changes, deletes or restores A's items by id: each refused as not found, A's items unchanged.
    const update = await callTool(fx, b, sb, 'update_items', {
      items: [{ id: projectId, changes: { name: 'pwned' } }],
    });
    expect(update.result?.structuredContent?.['succeeded'], textOf(update)).toBe(0);
    const del = await callTool(fx, b, sb, 'delete_items', { ids: [projectId, noteId], permanent: true });
    expect(del.result?.structuredContent?.['succeeded'], textOf(del)).toBe(0);
    const restore = await callTool(fx, b, sb, 'restore_items', { ids: [projectId] });
    expect(restore.result?.structuredContent?.['succeeded'], textOf(restore)).toBe(0);
    const mine = await callTool(fx, a, sa, 'get_project', { project_id: projectId });
    expect(mine.result?.isError ?? false, textOf(mine)).toBe(false);
    expect((mine.result?.structuredContent?.['project'] as Record<string, unknown>)['name']).toBe(
      `Alice ${marker}`,
    );

    // A tenant / user argument is refused as unknown, naming the field; no B rows either way.
    for (const [name, args] of [
      ['get_project', { project_id: projectId, tenant: alice.id }],
      ['list_projects', { tenant: alice.id }],
      ['search', { query: marker, user_id: alice.id }],
      ['create_project', { name: 'x', tenant: alice.id }],
    ] as const) {
      const res = await callTool(fx, b, sb, name, args);
      const field = Object.keys(args).find((k) => k === 'tenant' || k === 'user_id') as string;
      const message = res.error ? res.error.message : textOf(res);
      expect(res.error?.code === -32602 || res.result?.isError === true, `${name}: ${res.text}`).toBe(true);
      expect(message, `${name}: the refusal does not name the field`).toContain(field);
      expect(res.text).not.toContain(marker);
    }
    // B's own list stays empty of projects (the refused create made nothing).
    const bList = await callTool(fx, b, sb, 'list_projects', {});
    expect(bList.result?.structuredContent?.['items']).toEqual([]);
  });

  it('#37 Session hijack', async () => {
    const a = aliceTokens.access_token;
    const b = bobTokens.access_token;
    const sid = await openSession(fx, a);
    // Session ids are random UUIDs (crypto.randomUUID, a CSPRNG), different every time.
    expect(sid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await openSession(fx, a)).not.toBe(sid);
    const list = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'list_projects', arguments: {} },
    };
    // B's token on A's session: 404, whatever the method.
    const post = await mcpPost(fx, list, { token: b, session: sid });
    expect(post.status, post.text).toBe(404);
    expect(post.text).not.toContain('items');
    for (const method of ['GET', 'DELETE']) {
      const res = await rawRequest(fx.resource, {
        method,
        headers: {
          authorization: `Bearer ${b}`,
          accept: 'text/event-stream',
          'mcp-session-id': sid,
          'mcp-protocol-version': PROTOCOL,
        },
        ca: fx.ca.cert,
      });
      expect(res.status, `${method}: ${res.text}`).toBe(404);
    }
    // No token on A's session: 401.
    const anon = await mcpPost(fx, list, { session: sid });
    expect(anon.status, anon.text).toBe(401);
    expect(wwwAuth(anon)).toBe(noTokenChallenge(fx));
    // Control for the 404s: A's own token on A's session is served, and the session survived B's DELETE.
    const own = await callTool(fx, a, sid, 'list_projects', {});
    expect(own.status, own.text).toBe(200);
    expect(own.result?.isError ?? false).toBe(false);
  });

  it('#47 TLS', async () => {
    const port = Number(new URL(fx.origin).port);
    const attempt = (
      options: ConnectionOptions,
      target = port,
    ): Promise<{ ok: true; protocol: string; cipher: string } | { ok: false; error: string }> =>
      new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: target, ca: fx.ca.cert, ...options }, () => {
          const result = {
            ok: true as const,
            protocol: String(socket.getProtocol()),
            cipher: socket.getCipher().standardName,
          };
          socket.end();
          resolve(result);
        });
        socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
        socket.on('error', (err) => resolve({ ok: false, error: err.message }));
      });
    const legacy = { ciphers: 'ALL@SECLEVEL=0' };

    // Control: this client can speak TLS 1.0, 1.1 and CBC suites (so the refusals below are the server's).
    const cert = await fx.ca.issue();
    const control = createTlsServer(
      { cert: cert.cert, key: cert.key, minVersion: 'TLSv1', ciphers: 'ALL@SECLEVEL=0' },
      (s) => s.end(),
    );
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    const controlPort = (control.address() as AddressInfo).port;
    try {
      expect(
        await attempt({ ...legacy, minVersion: 'TLSv1', maxVersion: 'TLSv1' }, controlPort),
      ).toMatchObject({ ok: true, protocol: 'TLSv1' });
      expect(
        await attempt({ ...legacy, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' }, controlPort),
      ).toMatchObject({ ok: true, protocol: 'TLSv1.1' });
      expect(
        await attempt(
          { ciphers: 'ECDHE-ECDSA-AES128-SHA@SECLEVEL=0', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' },
          controlPort,
        ),
      ).toMatchObject({ ok: true, protocol: 'TLSv1.2' });
    } finally {
      await new Promise<void>((resolve) => control.close(() => resolve()));
    }

    // TLS 1.0 and 1.1 refused; 1.2 and 1.3 accepted.
    expect(await attempt({ ...legacy, minVersion: 'TLSv1', maxVersion: 'TLSv1' })).toMatchObject({
      ok: false,
    });
    expect(await attempt({ ...legacy, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' })).toMatchObject({
      ok: false,
    });
    expect(await attempt({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).toMatchObject({
      ok: true,
      protocol: 'TLSv1.2',
    });
    const t13 = await attempt({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
    expect(t13).toMatchObject({ ok: true, protocol: 'TLSv1.3' });

    // TLS 1.2: every suite the client knows, one at a time; only ECDHE with an AEAD cipher is accepted.
    const accepted: string[] = [];
    for (const name of getCiphers().filter((c) => !c.startsWith('tls_'))) {
      const r = await attempt({
        ciphers: `${name.toUpperCase()}@SECLEVEL=0`,
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
      });
      if (r.ok) accepted.push(r.cipher);
    }
    expect(accepted.length).toBeGreaterThan(0);
    for (const suite of accepted) {
      expect(suite).toMatch(
        /^TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/,
      );
    }
    // Explicitly: CBC suites refused.
    for (const cbc of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-SHA256']) {
      expect(
        await attempt({ ciphers: `${cbc}@SECLEVEL=0`, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }),
        cbc,
      ).toMatchObject({ ok: false });
    }
    // TLS 1.3 suites are AEAD by definition; check the negotiated one anyway.
    if (t13.ok) expect(t13.cipher).toMatch(/^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);

    // HSTS of at least a year on /oauth responses.
    for (const path of ['/oauth/jwks', '/oauth/authorize', '/.well-known/oauth-authorization-server']) {
      const res = await rawRequest(`${fx.origin}${path}`, { ca: fx.ca.cert });
      const hsts = String(res.headers['strict-transport-security'] ?? '');
      const maxAge = Number(/max-age=(\d+)/i.exec(hsts)?.[1] ?? 0);
      expect(maxAge, `${path}: Strict-Transport-Security "${hsts}"`).toBeGreaterThanOrEqual(31_536_000);
    }
  });

  it('#48 Metadata', async () => {
    const as = (await (
      await fx.fetch(`${fx.origin}/.well-known/oauth-authorization-server`)
    ).json()) as Record<string, unknown>;
    const prm = (await (
      await fx.fetch(`${fx.origin}/.well-known/oauth-protected-resource/mcp`)
    ).json()) as Record<string, unknown>;
    expect(as['issuer']).toBe(fx.origin);
    expect(prm['resource']).toBe(fx.resource);
    expect(prm['authorization_servers']).toEqual([as['issuer']]);
    expect(as['code_challenge_methods_supported']).toEqual(['S256']);
    expect(as['response_types_supported']).toEqual(['code']);
    const grants = as['grant_types_supported'] as string[];
    for (const banned of [
      'password',
      'implicit',
      'client_credentials',
      'urn:ietf:params:oauth:grant-type:device_code',
    ]) {
      expect(grants).not.toContain(banned);
    }
    expect(grants).toContain('authorization_code');
    expect(as['authorization_response_iss_parameter_supported']).toBe(true);
    // Access tokens obtained through this metadata carry exactly these values.
    const claims = decodeJwt(aliceTokens.access_token);
    expect(claims.iss).toBe(as['issuer']);
    expect(claims.aud).toBe(prm['resource']);
  });
});

// ----------------------------------------------------------------------------------------- #41–#46

describe('security catalog #41–#44: refused registrations (PGlite)', () => {
  let fx: OAuthFixture;

  beforeAll(async () => {
    fx = await startOAuthFixture();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  /** A refused registration: the error code, and a description naming the field (and `reason`, when given). */
  const refused = async (
    metadata: Record<string, unknown>,
    error: string,
    why: string,
    field: string,
    reason?: RegExp,
  ): Promise<void> => {
    const reg = await fx.register(metadata);
    expect(reg.status, `${why}: ${JSON.stringify(reg.body)}`).toBe(400);
    expect(reg.body['error'], why).toBe(error);
    expect(reg.body['client_id'], why).toBeUndefined();
    const description = String(reg.body['error_description']);
    expect(description, `${why}: the description does not name ${field}`).toContain(field);
    if (reason) expect(description, why).toMatch(reason);
  };

  it('#41 DCR with dangerous schemes', async () => {
    for (const [uri, scheme] of [
      ['javascript:alert(1)', 'javascript:'],
      ['data:text/html,<script>alert(1)</script>', 'data:'],
      ['file:///etc/passwd', 'file:'],
      ['JavaScript:alert(1)', 'javascript:'],
    ] as const) {
      await refused(
        { redirect_uris: [uri], token_endpoint_auth_method: 'none' },
        'invalid_redirect_uri',
        uri,
        'redirect_uris[0]',
        new RegExp(`${scheme} scheme`),
      );
    }
    // Hidden after a good one.
    await refused(
      {
        redirect_uris: ['https://app.example/cb', 'javascript:alert(1)'],
        token_endpoint_auth_method: 'none',
      },
      'invalid_redirect_uri',
      'javascript: second',
      'redirect_uris[1]',
    );
  });

  it('#42 DCR with http, wildcard or fragment', async () => {
    for (const [uri, reason] of [
      ['http://evil.example/cb', /http only on a loopback host/],
      ['https://*.evil.example/cb', /wildcard/],
      ['https://app.example/cb#f', /fragment/],
      ['https://app.example@evil.example/cb', /user information/],
    ] as const) {
      await refused(
        { redirect_uris: [uri], token_endpoint_auth_method: 'none' },
        'invalid_redirect_uri',
        uri,
        'redirect_uris[0]',
        reason,
      );
    }
  });

  it('#43 DCR with banned grants', async () => {
    const base = { redirect_uris: ['https://app.example/cb'] };
    await refused(
      { ...base, grant_types: ['password'] },
      'invalid_client_metadata',
      'grant_types password',
      'grant_types',
    );
    await refused(
      { ...base, grant_types: ['implicit'] },
      'invalid_client_metadata',
      'grant_types implicit',
      'grant_types',
    );
    await refused(
      { ...base, grant_types: ['client_credentials'] },
      'invalid_client_metadata',
      'grant_types client_credentials',
      'grant_types',
    );
    await refused(
      { ...base, response_types: ['token'] },
      'invalid_client_metadata',
      'response_types token',
      'response_types',
    );
    await refused(
      { ...base, response_types: ['code token'] },
      'invalid_client_metadata',
      'response_types code token',
      'response_types',
    );
    await refused(
      { ...base, token_endpoint_auth_method: 'client_secret_rot13' },
      'invalid_client_metadata',
      'unknown auth method',
      'token_endpoint_auth_method',
    );
  });

  it('#44 DCR payload abuse', async () => {
    // Its own server: the registration rate limit must not depend on what the other tests registered.
    const own = await startOAuthFixture();
    try {
      const post = (body: string): Promise<RawResponse> =>
        rawRequest(`${own.origin}/oauth/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          ca: own.ca.cert,
        });
      const padding = 'a'.repeat(10 * 1024 * 1024);
      const huge = await post(
        JSON.stringify({ redirect_uris: ['https://app.example/cb'], software_version: padding }),
      );
      console.info(`#44 10 MB body → ${huge.status} ${huge.text.slice(0, 200)}`);
      expect([413, 400], huge.text.slice(0, 200)).toContain(huge.status);
      const many = await post(
        JSON.stringify({
          redirect_uris: Array.from({ length: 10_000 }, (_, i) => `https://app.example/cb${i}`),
        }),
      );
      console.info(`#44 10k redirect_uris → ${many.status} ${many.text.slice(0, 200)}`);
      expect(many.status).toBe(400);
      expect((many.json as Record<string, unknown> | undefined)?.['error']).toMatch(
        /^invalid_(request|redirect_uri|client_metadata)$/,
      );
      // Under the body limit, the rule itself: at most 20 redirect URIs.
      const some = await post(
        JSON.stringify({ redirect_uris: Array.from({ length: 21 }, (_, i) => `https://app.example/cb${i}`) }),
      );
      expect(some.status, some.text).toBe(400);
      expect(some.json).toMatchObject({ error: 'invalid_redirect_uri' });
      expect(String((some.json as Record<string, unknown>)['error_description'])).toMatch(
        /redirect_uris has 21 entries; at most 20/,
      );
      const name = await post(
        JSON.stringify({ redirect_uris: ['https://app.example/cb'], client_name: 'n'.repeat(1024 * 1024) }),
      );
      console.info(`#44 1 MB client_name → ${name.status} ${name.text.slice(0, 200)}`);
      expect([413, 400]).toContain(name.status);
      // Under the body limit, the rule itself: client_name at most 200 characters.
      const longName = await post(
        JSON.stringify({ redirect_uris: ['https://app.example/cb'], client_name: 'n'.repeat(30_000) }),
      );
      expect(longName.status, longName.text).toBe(400);
      expect(longName.json).toMatchObject({ error: 'invalid_client_metadata' });
      expect(String((longName.json as Record<string, unknown>)['error_description'])).toMatch(
        /client_name is 30000 characters; at most 200/,
      );

      // 100 registrations within a minute: the later ones are refused with 429 and Retry-After.
      const statuses: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < 100; i++) {
        const res = await post(
          JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], client_name: `flood ${i}` }),
        );
        statuses.push(res.status);
        if (res.status === 429) retryAfter ??= String(res.headers['retry-after'] ?? '');
      }
      const counts = statuses.reduce<Record<number, number>>(
        (acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }),
        {},
      );
      console.info(`#44 100 registrations → ${JSON.stringify(counts)}`);
      expect(statuses, 'no registration was rate limited').toContain(429);
      expect(Number(retryAfter)).toBeGreaterThan(0);
      expect(statuses.filter((s) => s !== 201 && s !== 429)).toEqual([]);
    } finally {
      await own.close();
    }
  });
});

describe('security catalog #45–#46: stored XSS, SSRF and client_id squatting through registration (PGlite)', () => {
  // Its own server: registrations are limited per address and minute, and #41–#44 use up most of the allowance.
  let fx: OAuthFixture;

  beforeAll(async () => {
    fx = await startOAuthFixture();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('#45 DCR stored XSS and SSRF', async () => {
    const user = await fx.addUser();
    const listener = await countingListener();
    try {
      // client_name <script>: escaped on the consent page and on the connected-apps page.
      const evilName = '<script>alert(1)</script><img src=x onerror=alert(2)>';
      const reg = await fx.register({
        redirect_uris: [REGISTERED_REDIRECT],
        client_name: evilName,
        token_endpoint_auth_method: 'none',
        logo_uri: `${listener.url}/logo.png`,
        client_uri: 'http://169.254.169.254/latest/meta-data/',
        policy_uri: `${listener.url}/policy`,
        tos_uri: `${listener.url}/tos`,
      });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      const xssClient = String(reg.body['client_id']);
      const { challenge } = await pkcePair();
      const browser = fx.browser();
      const done = await browser.authorize(
        authorizeUrl(fx, {
          response_type: 'code',
          client_id: xssClient,
          redirect_uri: REDIRECT,
          scope: 'pa.read',
          state: 'S45',
          code_challenge: challenge,
          code_challenge_method: 'S256',
          resource: fx.resource,
        }),
        fx.origin,
        user,
      );
      const consent = done.consentPage ?? '';
      expect(consent, 'no consent page was shown').toContain('Allow');
      expect(consent).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;');
      expect(consent).not.toMatch(/<script/i);
      expect(consent).not.toMatch(/<img/i);
      expect(consent).not.toContain(listener.url);
      expect(consent).not.toContain('169.254.169.254');
      const apps = await browser.request(`${fx.origin}/account/apps`);
      expect(apps.status).toBe(200);
      expect(apps.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(apps.text).not.toMatch(/<script/i);

      // jwks_uri on loopback and on the cloud metadata address: a private_key_jwt client's keys are never fetched
      // from there, so its assertion is refused.
      for (const jwksUri of [`${listener.url}/jwks`, 'http://169.254.169.254/latest/meta-data/jwks']) {
        const signer = await foreignSigner();
        const keyed = await fx.register({
          redirect_uris: ['https://app.example/cb'],
          token_endpoint_auth_method: 'private_key_jwt',
          jwks_uri: jwksUri,
          client_name: 'ssrf',
        });
        console.info(
          `#45 register jwks_uri ${jwksUri} → ${keyed.status} ${JSON.stringify(keyed.body).slice(0, 200)}`,
        );
        if (keyed.status !== 201) {
          expect(keyed.status).toBe(400);
          continue;
        }
        const keyedId = String(keyed.body['client_id']);
        const assertion = await new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid: signer.kid })
          .setIssuer(keyedId)
          .setSubject(keyedId)
          .setAudience(fx.issuer)
          .setJti(randomUUID())
          .setIssuedAt()
          .setExpirationTime('60s')
          .sign(signer.key);
        const started = Date.now();
        const tk = await tokenRequest(fx, {
          grant_type: 'authorization_code',
          code: 'bogus',
          redirect_uri: 'https://app.example/cb',
          code_verifier: 'v'.repeat(43),
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        });
        console.info(
          `#45 token request, jwks_uri ${jwksUri} → ${tk.status} ${tk.text.slice(0, 200)} in ${Date.now() - started} ms`,
        );
        expect(tk.status, tk.text).toBe(401);
        expect((tk.json as Record<string, unknown>)['error']).toBe('invalid_client');
      }
      console.info(
        `#45 loopback listener: ${listener.connections()} TCP connection(s), requests ${JSON.stringify(listener.requests())}`,
      );
      expect(listener.requests(), 'the server fetched a client-supplied internal URL').toEqual([]);
    } finally {
      await listener.close();
    }
  });

  it('#46 client_id squatting', async () => {
    const user = await fx.addUser();
    const first = await fx.register({
      redirect_uris: [REGISTERED_REDIRECT],
      token_endpoint_auth_method: 'none',
      client_name: 'first',
    });
    expect(first.status).toBe(201);
    const firstId = String(first.body['client_id']);
    for (const chosen of ['my-chosen-client-id', user.id, firstId]) {
      const reg = await fx.register({
        client_id: chosen,
        client_secret: 'attacker-chosen-secret-0123456789',
        redirect_uris: ['https://evil.example/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
        client_name: 'squatter',
      });
      if (reg.status === 201) {
        expect(reg.body['client_id'], `client_id ${chosen} was accepted as chosen`).not.toBe(chosen);
        expect(reg.body['client_secret']).not.toBe('attacker-chosen-secret-0123456789');
        expect(String(reg.body['client_id']).length).toBeGreaterThanOrEqual(16);
      } else {
        expect(reg.status, JSON.stringify(reg.body)).toBe(400);
      }
    }
    // The squatted client is unchanged: its redirect URI still works, the attacker's is refused.
    const az = await fx.browser().follow(
      authorizeUrl(fx, {
        response_type: 'code',
        client_id: firstId,
        redirect_uri: 'https://evil.example/cb',
        scope: 'pa.read',
        state: 'S46',
        code_challenge: (await pkcePair()).challenge,
        code_challenge_method: 'S256',
        resource: fx.resource,
      }),
      fx.origin,
    );
    expect(az.res.status).toBe(400);
    expect(String(az.res.headers.location ?? '')).not.toContain('evil.example');
    // Ids are generated by the server: two registrations never share one.
    const again = await fx.register({
      redirect_uris: [REGISTERED_REDIRECT],
      token_endpoint_auth_method: 'none',
      client_name: 'first',
    });
    expect(again.body['client_id']).not.toBe(firstId);
  });
});
