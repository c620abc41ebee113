/**
 * A third-party client library against the real authorization server: oauth4webapi (panva) runs discovery, the
 * authorization code flow with PKCE and a resource indicator, the token exchange, a call to /mcp and a refresh —
 * once per client authentication method (none, client_secret_basic, private_key_jwt, tls_client_auth), with
 * DPoP-bound and certificate-bound tokens, and for a Client ID Metadata Document client served from a loopback
 * HTTPS server. Everything travels over real TLS on 127.0.0.1.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/helpers.js';
import { createTestCa, httpsFetch, type ServerCertificate, type TestCa } from '../support/https.js';
import { testCa } from '../servers/http-app-fixture.js';
import { startOAuthFixture, type OAuthFixture, type TestUser } from './oauth-fixture.js';

/** What oauth4webapi hands its `customFetch`. */
interface LibraryRequest {
  readonly body?: unknown;
  readonly headers: Record<string, string>;
  readonly method: string;
  readonly signal?: AbortSignal;
}
type LibraryFetch = (url: string, options: LibraryRequest) => Promise<Response>;

/** Adapts a string-body fetch (the fixture's node:https fetch) to oauth4webapi's requests (URLSearchParams). */
function forLibrary(fetchImpl: typeof fetch): LibraryFetch {
  return (url, options) => {
    const { body } = options;
    if (
      body !== undefined &&
      body !== null &&
      typeof body !== 'string' &&
      !(body instanceof URLSearchParams)
    ) {
      return Promise.reject(new TypeError('only string and form bodies are supported'));
    }
    return fetchImpl(url, {
      method: options.method,
      headers: options.headers,
      ...(body !== undefined && body !== null ? { body: String(body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  };
}

/** A fetch presenting a TLS client certificate (and trusting the server's CA). */
function clientCertFetch(serverCa: string, cert: ServerCertificate): { fetch: LibraryFetch; agent: Agent } {
  const agent = new Agent({ keepAlive: true, ca: serverCa, cert: cert.cert, key: cert.key });
  return { fetch: forLibrary(httpsFetch(serverCa, agent)), agent };
}

const REDIRECT_REGISTERED = 'http://127.0.0.1/cb';
// Native-app loopback redirects match on any port (RFC 8252 §7.3).
const REDIRECT_USED = 'http://127.0.0.1:51123/cb';
const SCOPE = 'pa.read pa.write';
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'oauth4webapi-test', version: '1' },
  },
});

async function discover(fx: OAuthFixture): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(fx.issuer);
  const res = await oauth.discoveryRequest(issuer, {
    algorithm: 'oauth2',
    [oauth.customFetch]: forLibrary(fx.fetch),
  });
  return oauth.processDiscoveryResponse(issuer, res);
}

/** Retries once when the server asks for a DPoP nonce (RFC 9449 §8/§9). */
async function withNonceRetry<T>(attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    return attempt();
  }
}

interface McpResult {
  readonly status: number;
  readonly text: string;
  /** The parsed WWW-Authenticate challenges of a refusal. */
  readonly challenges?: oauth.WWWAuthenticateChallenge[];
}

/** POSTs an MCP initialize to /mcp with the token (and a DPoP proof when a handle is given). */
async function callMcp(
  fx: OAuthFixture,
  accessToken: string,
  options: { fetch?: LibraryFetch; DPoP?: oauth.DPoPHandle } = {},
): Promise<McpResult> {
  const send = (): Promise<Response> =>
    oauth.protectedResourceRequest(
      accessToken,
      'POST',
      new URL(fx.resource),
      new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' }),
      INITIALIZE,
      {
        [oauth.customFetch]: options.fetch ?? forLibrary(fx.fetch),
        ...(options.DPoP ? { DPoP: options.DPoP } : {}),
      },
    );
  try {
    const res = await withNonceRetry(send);
    return { status: res.status, text: await res.text() };
  } catch (err) {
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      return { status: err.response.status, text: await err.response.text(), challenges: err.cause };
    }
    throw err;
  }
}

function challengeError(result: McpResult): string | undefined {
  return result.challenges?.[0]?.parameters['error'];
}

interface FlowSetup {
  readonly fx: OAuthFixture;
  readonly as: oauth.AuthorizationServer;
  readonly user: TestUser;
  readonly client: oauth.Client;
  readonly clientAuth: oauth.ClientAuth;
  /** The fetch for the token endpoint and /mcp (default: the fixture's, no client certificate). */
  readonly fetch?: LibraryFetch;
  readonly DPoP?: oauth.DPoPHandle;
}

interface FlowResult {
  readonly tokens: oauth.TokenEndpointResponse;
  /** The token response body as the server sent it (before oauth4webapi normalised it). */
  readonly raw: Record<string, unknown>;
  readonly refreshed: oauth.TokenEndpointResponse;
  readonly rawRefreshed: Record<string, unknown>;
}

/** Signs in and consents through the pages; returns the validated authorization response and the verifier. */
async function authorize(setup: FlowSetup): Promise<{ params: URLSearchParams; verifier: string }> {
  const { fx, as, user, client } = setup;
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(String(as.authorization_endpoint));
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT_USED,
    scope: SCOPE,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    resource: fx.resource,
    ...(setup.DPoP ? { dpop_jkt: await setup.DPoP.calculateThumbprint() } : {}),
  }).toString();
  const done = await fx.browser().authorize(url.href, fx.origin, user);
  expect(
    done.location,
    `${done.res.status} ${done.res.text.replace(/<style>[\s\S]*<\/style>/, '').slice(0, 800)}`,
  ).toMatch(/^http:\/\/127\.0\.0\.1:51123\/cb\?/);
  const back = new URL(done.location as string);
  // RFC 9207: oauth4webapi checks `iss` against the discovered issuer (and requires it, as advertised).
  const forged = new URL(back);
  forged.searchParams.set('iss', 'https://attacker.example');
  expect(() => oauth.validateAuthResponse(as, client, forged, state)).toThrow(/iss/);
  const missing = new URL(back);
  missing.searchParams.delete('iss');
  expect(() => oauth.validateAuthResponse(as, client, missing, state)).toThrow(/iss/);
  return { params: oauth.validateAuthResponse(as, client, back, state), verifier };
}

/** The whole flow: authorize, exchange the code, /mcp, refresh, /mcp with the new token. */
async function runFlow(setup: FlowSetup): Promise<FlowResult> {
  const { fx, as, client, clientAuth } = setup;
  const libFetch = setup.fetch ?? forLibrary(fx.fetch);
  const common = {
    [oauth.customFetch]: libFetch,
    additionalParameters: { resource: fx.resource },
    ...(setup.DPoP ? { DPoP: setup.DPoP } : {}),
  };
  const { params, verifier } = await authorize(setup);

  let raw: Record<string, unknown> = {};
  const tokens = await withNonceRetry(async () => {
    const res = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      params,
      REDIRECT_USED,
      verifier,
      common,
    );
    raw = (await res.clone().json()) as Record<string, unknown>;
    return oauth.processAuthorizationCodeResponse(as, client, res);
  });
  const claims = decodeJwt(tokens.access_token);
  expect(claims.aud).toBe(fx.resource);
  expect(claims.iss).toBe(fx.issuer);
  expect(claims.sub).toBe(setup.user.id);
  expect(claims['client_id']).toBe(client.client_id);
  expect(tokens.refresh_token).toBeTruthy();

  const first = await callMcp(fx, tokens.access_token, {
    fetch: libFetch,
    ...(setup.DPoP ? { DPoP: setup.DPoP } : {}),
  });
  expect(first.status, first.text).toBe(200);
  expect(first.text).toContain('protocolVersion');

  let rawRefreshed: Record<string, unknown> = {};
  const refreshed = await withNonceRetry(async () => {
    const res = await oauth.refreshTokenGrantRequest(
      as,
      client,
      clientAuth,
      tokens.refresh_token as string,
      common,
    );
    rawRefreshed = (await res.clone().json()) as Record<string, unknown>;
    return oauth.processRefreshTokenResponse(as, client, res);
  });
  expect(refreshed.access_token).not.toBe(tokens.access_token);
  // Refresh tokens rotate on every use.
  expect(refreshed.refresh_token).toBeTruthy();
  expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
  const second = await callMcp(fx, refreshed.access_token, {
    fetch: libFetch,
    ...(setup.DPoP ? { DPoP: setup.DPoP } : {}),
  });
  expect(second.status, second.text).toBe(200);
  return { tokens, raw, refreshed, rawRefreshed };
}

/**
 * Expects the promise to reject with an OAuth error response: a ResponseBodyError, or (a 401 with a
 * WWW-Authenticate challenge, RFC 6749 §5.2) a WWWAuthenticateChallengeError whose body carries the error code.
 */
async function oauthError(promise: Promise<unknown>): Promise<{ status: number; error: string }> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) return { status: err.status, error: err.error };
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      const body = (await err.response.json()) as { error?: unknown };
      return { status: err.status, error: String(body.error) };
    }
    throw err;
  }
  throw new Error('the request succeeded, an OAuth error was expected');
}

describe('oauth4webapi against the embedded authorization server', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  let as: oauth.AuthorizationServer;
  beforeAll(async () => {
    fx = await startOAuthFixture();
    user = await fx.addUser();
    as = await discover(fx);
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('discovers the server metadata (issuer, endpoints, PKCE S256, iss parameter, DPoP)', () => {
    expect(as.issuer).toBe(fx.issuer);
    expect(as.authorization_endpoint).toBe(`${fx.origin}/oauth/authorize`);
    expect(as.token_endpoint).toBe(`${fx.origin}/oauth/token`);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    expect(as.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['none', 'client_secret_basic', 'private_key_jwt']),
    );
    expect(as.dpop_signing_alg_values_supported).toContain('ES256');
  });

  it('none: a public client completes the flow', async () => {
    const reg = await fx.register({
      redirect_uris: [REDIRECT_REGISTERED],
      client_name: 'oauth4webapi public',
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const client: oauth.Client = {
      client_id: String(reg.body['client_id']),
      token_endpoint_auth_method: 'none',
    };
    const { raw } = await runFlow({ fx, as, user, client, clientAuth: oauth.None() });
    expect(raw['token_type']).toBe('Bearer');
    expect(decodeJwt(raw['access_token'] as string)['cnf']).toBeUndefined();
  });

  it('client_secret_basic: a confidential client completes the flow; a wrong secret is invalid_client', async () => {
    const reg = await fx.register({
      redirect_uris: [REDIRECT_REGISTERED],
      client_name: 'oauth4webapi basic',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const secret = String(reg.body['client_secret']);
    expect(secret.length).toBeGreaterThanOrEqual(32);
    const client: oauth.Client = {
      client_id: String(reg.body['client_id']),
      token_endpoint_auth_method: 'client_secret_basic',
    };
    const { refreshed } = await runFlow({
      fx,
      as,
      user,
      client,
      clientAuth: oauth.ClientSecretBasic(secret),
    });

    const refused = await oauthError(
      oauth
        .refreshTokenGrantRequest(
          as,
          client,
          oauth.ClientSecretBasic(`${secret}x`),
          refreshed.refresh_token as string,
          { [oauth.customFetch]: forLibrary(fx.fetch) },
        )
        .then((res) => oauth.processRefreshTokenResponse(as, client, res)),
    );
    expect(refused).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('private_key_jwt: an ES256 assertion (aud = issuer) authenticates; another key is invalid_client', async () => {
    const keys = await oauth.generateKeyPair('ES256', { extractable: true });
    const kid = 'key-1';
    const publicJwk = {
      ...(await crypto.subtle.exportKey('jwk', keys.publicKey)),
      kid,
      alg: 'ES256',
      use: 'sig',
    };
    const reg = await fx.register({
      redirect_uris: [REDIRECT_REGISTERED],
      client_name: 'oauth4webapi private_key_jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [publicJwk] },
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    expect(reg.body['client_secret']).toBeUndefined();
    const client: oauth.Client = {
      client_id: String(reg.body['client_id']),
      token_endpoint_auth_method: 'private_key_jwt',
    };
    // oauth4webapi puts the issuer identifier (a string) in the assertion's aud; the server accepts nothing else.
    let assertionAud: unknown;
    const clientAuth = oauth.PrivateKeyJwt(
      { key: keys.privateKey, kid },
      {
        [oauth.modifyAssertion]: (_header, payload) => {
          assertionAud = payload.aud;
        },
      },
    );
    const { refreshed } = await runFlow({ fx, as, user, client, clientAuth });
    expect(assertionAud).toBe(fx.issuer);

    const other = await oauth.generateKeyPair('ES256');
    const refused = await oauthError(
      oauth
        .refreshTokenGrantRequest(
          as,
          client,
          oauth.PrivateKeyJwt({ key: other.privateKey, kid }),
          refreshed.refresh_token as string,
          { [oauth.customFetch]: forLibrary(fx.fetch) },
        )
        .then((res) => oauth.processRefreshTokenResponse(as, client, res)),
    );
    expect(refused).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('DPoP: a public client gets DPoP-bound tokens usable only with a proof for /mcp from its key', async () => {
    const reg = await fx.register({
      redirect_uris: [REDIRECT_REGISTERED],
      client_name: 'oauth4webapi DPoP',
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const client: oauth.Client = {
      client_id: String(reg.body['client_id']),
      token_endpoint_auth_method: 'none',
    };
    const keyPair = await oauth.generateKeyPair('ES256');
    const DPoP = oauth.DPoP(client, keyPair);
    const jkt = await DPoP.calculateThumbprint();
    const { tokens, raw, refreshed, rawRefreshed } = await runFlow({
      fx,
      as,
      user,
      client,
      clientAuth: oauth.None(),
      DPoP,
    });
    expect(raw['token_type']).toBe('DPoP');
    expect(tokens.token_type).toBe('dpop');
    expect(rawRefreshed['token_type']).toBe('DPoP');
    expect(decodeJwt(tokens.access_token)['cnf']).toEqual({ jkt });
    expect(decodeJwt(refreshed.access_token)['cnf']).toEqual({ jkt });
    const token = refreshed.access_token;

    // The same token as a Bearer token, without a proof.
    const bearer = await callMcp(fx, token);
    expect(bearer.status).toBe(401);
    expect(challengeError(bearer)).toBe('invalid_token');

    // A proof made for another URL, or for another method.
    const otherUrl = oauth.DPoP(client, keyPair, {
      [oauth.modifyAssertion]: (_header, payload) => {
        payload['htu'] = `${fx.origin}/other`;
      },
    });
    const wrongUrl = await callMcp(fx, token, { DPoP: otherUrl });
    expect(wrongUrl.status).toBe(401);
    expect(challengeError(wrongUrl)).toBe('invalid_dpop_proof');
    const otherMethod = oauth.DPoP(client, keyPair, {
      [oauth.modifyAssertion]: (_header, payload) => {
        payload['htm'] = 'GET';
      },
    });
    const wrongMethod = await callMcp(fx, token, { DPoP: otherMethod });
    expect(wrongMethod.status).toBe(401);
    expect(challengeError(wrongMethod)).toBe('invalid_dpop_proof');

    // A correct proof signed by another key.
    const otherKey = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const wrongKey = await callMcp(fx, token, { DPoP: otherKey });
    expect(wrongKey.status).toBe(401);

    // And the right proof still works.
    const ok = await callMcp(fx, token, { DPoP });
    expect(ok.status, ok.text).toBe(200);
  });
});

describe('oauth4webapi with tls_client_auth and certificate-bound tokens (RFC 8705)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  let as: oauth.AuthorizationServer;
  let clientCa: TestCa;
  const agents: Agent[] = [];
  const dir = tempDir('mcp-pa-mtls-');
  beforeAll(async () => {
    clientCa = await createTestCa('mcp-pa test client CA');
    const clientCaFile = path.join(dir.dir, 'client-ca.pem');
    writeFileSync(clientCaFile, clientCa.cert);
    fx = await startOAuthFixture({
      config: {
        server: { tls_client_ca: clientCaFile },
        authentication: {
          client_auth_methods: ['none', 'client_secret_basic', 'private_key_jwt', 'tls_client_auth'],
        },
      },
    });
    user = await fx.addUser();
    as = await discover(fx);
  }, 60_000);
  afterAll(async () => {
    for (const agent of agents) agent.destroy();
    await fx?.close();
    dir.cleanup();
  });

  function withCert(cert: ServerCertificate): LibraryFetch {
    const { fetch, agent } = clientCertFetch(fx.ca.cert, cert);
    agents.push(agent);
    return fetch;
  }

  it('authenticates by certificate and binds the tokens to it', async () => {
    expect(as.token_endpoint_auth_methods_supported).toContain('tls_client_auth');
    expect(as.tls_client_certificate_bound_access_tokens).toBe(true);
    const cert = await clientCa.issueClient({ cn: 'client-1' });
    const subject = new X509Certificate(cert.cert).subject;
    expect(subject).toBe('CN=client-1');
    const reg = await fx.register({
      redirect_uris: [REDIRECT_REGISTERED],
      client_name: 'oauth4webapi mTLS',
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_subject_dn: 'CN=client-1',
      tls_client_certificate_bound_access_tokens: true,
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    expect(reg.body['client_secret']).toBeUndefined();
    const client: oauth.Client = {
      client_id: String(reg.body['client_id']),
      token_endpoint_auth_method: 'tls_client_auth',
    };
    const mtlsFetch = withCert(cert);
    const { tokens, refreshed } = await runFlow({
      fx,
      as,
      user,
      client,
      clientAuth: oauth.TlsClientAuth(),
      fetch: mtlsFetch,
    });
    const thumbprint = createHash('sha256').update(new X509Certificate(cert.cert).raw).digest('base64url');
    expect(decodeJwt(tokens.access_token)['cnf']).toEqual({ 'x5t#S256': thumbprint });
    expect(decodeJwt(refreshed.access_token)['cnf']).toEqual({ 'x5t#S256': thumbprint });
    const token = refreshed.access_token;

    // The token without a certificate, or with another certificate from the same CA.
    const noCert = await callMcp(fx, token);
    expect(noCert.status).toBe(401);
    expect(challengeError(noCert)).toBe('invalid_token');
    const otherCert = await clientCa.issueClient({ cn: 'client-2' });
    const withOther = await callMcp(fx, token, { fetch: withCert(otherCert) });
    expect(withOther.status).toBe(401);
    expect(challengeError(withOther)).toBe('invalid_token');
    const ok = await callMcp(fx, token, { fetch: mtlsFetch });
    expect(ok.status, ok.text).toBe(200);

    // The token endpoint without a certificate, with one whose subject differs, with one from an untrusted CA.
    const refresh = (fetchImpl: LibraryFetch): Promise<unknown> =>
      oauth
        .refreshTokenGrantRequest(as, client, oauth.TlsClientAuth(), refreshed.refresh_token as string, {
          [oauth.customFetch]: fetchImpl,
        })
        .then((res) => oauth.processRefreshTokenResponse(as, client, res));
    expect(await oauthError(refresh(forLibrary(fx.fetch)))).toEqual({ status: 401, error: 'invalid_client' });
    expect(await oauthError(refresh(withCert(otherCert)))).toEqual({ status: 401, error: 'invalid_client' });
    const stranger = await (await createTestCa('untrusted CA')).issueClient({ cn: 'client-1' });
    expect(await oauthError(refresh(withCert(stranger)))).toEqual({ status: 401, error: 'invalid_client' });
    // The refresh token was not spent by the refused attempts.
    const again = await refresh(mtlsFetch);
    expect((again as oauth.TokenEndpointResponse).access_token).toBeTruthy();
  });
});

interface DocumentServer {
  readonly origin: string;
  /** Requests served (any path). */
  readonly requests: number;
  readonly documents: Map<string, unknown>;
  close(): Promise<void>;
}

/** A loopback HTTPS server (certificate from the test CA) serving JSON documents by path. */
async function startDocumentServer(ca: TestCa): Promise<DocumentServer> {
  const cert = await ca.issue();
  const documents = new Map<string, unknown>();
  const state = { requests: 0 };
  const server: Server = createServer(
    { cert: cert.cert, key: cert.key },
    (req: IncomingMessage, res: ServerResponse) => {
      state.requests += 1;
      const doc = documents.get(new URL(req.url ?? '/', 'https://x').pathname);
      if (doc === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      res
        .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify(doc));
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `https://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    documents,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function metadataDocument(clientId: string): Record<string, unknown> {
  return {
    client_id: clientId,
    client_name: 'oauth4webapi CIMD client',
    redirect_uris: [REDIRECT_REGISTERED],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
}

describe('oauth4webapi with a Client ID Metadata Document client', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  let as: oauth.AuthorizationServer;
  let docs: DocumentServer;
  let unlisted: DocumentServer;
  beforeAll(async () => {
    const ca = await testCa();
    docs = await startDocumentServer(ca);
    unlisted = await startDocumentServer(ca);
    fx = await startOAuthFixture({ config: { authentication: { metadata_fetch_allow: [docs.origin] } } });
    user = await fx.addUser();
    as = await discover(fx);
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
    await docs?.close();
    await unlisted?.close();
  });

  it('runs the flow with the document URL as client_id (no registration)', async () => {
    expect(as.client_id_metadata_document_supported).toBe(true);
    const clientId = `${docs.origin}/client.json`;
    docs.documents.set('/client.json', metadataDocument(clientId));
    const before = docs.requests;
    const client: oauth.Client = { client_id: clientId, token_endpoint_auth_method: 'none' };
    const { tokens } = await runFlow({ fx, as, user, client, clientAuth: oauth.None() });
    expect(decodeJwt(tokens.access_token)['client_id']).toBe(clientId);
    expect(docs.requests).toBeGreaterThan(before);
  });

  it('refuses a document whose client_id is not its own URL', async () => {
    const clientId = `${docs.origin}/impostor.json`;
    docs.documents.set('/impostor.json', metadataDocument(`${docs.origin}/client.json`));
    const before = docs.requests;
    const url = new URL(String(as.authorization_endpoint));
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_USED,
      scope: SCOPE,
      state: 'S',
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();
    const res = await fx.browser().request(url.href);
    // Fetched (a refused document is not cached, so the library may ask again within one request)…
    expect(docs.requests).toBeGreaterThan(before);
    // …and refused: the client is unknown, so there is nowhere to redirect to: an error page, never a redirect.
    expect(res.headers.location).toBeUndefined();
    expect(res.status).toBe(400);
    expect(res.text).toContain('client_id metadata document client_id does not match the expected value');
    expect(res.text).toContain('<code>invalid_client_metadata</code>');
  });

  it('never fetches a document from a loopback origin outside metadata_fetch_allow', async () => {
    const clientId = `${unlisted.origin}/client.json`;
    unlisted.documents.set('/client.json', metadataDocument(clientId));
    const url = new URL(String(as.authorization_endpoint));
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_USED,
      scope: SCOPE,
      state: 'S',
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();
    const res = await fx.browser().request(url.href);
    expect(res.headers.location).toBeUndefined();
    expect(res.status).toBe(400);
    expect(res.text).toContain('client_id metadata document fetch failed');
    expect(res.text).toContain('<code>invalid_client</code>');
    expect(unlisted.requests).toBe(0);
  });
});
