/**
 * A second, independent OAuth client library against the embedded authorization server: openid-client (panva)
 * discovers it (RFC 8414 and OpenID Connect discovery), registers a public client dynamically (RFC 7591), runs the
 * authorization-code flow with PKCE S256 and a resource indicator (RFC 8707) through the real sign-in and consent
 * pages, calls /mcp with the access token (an MCP session through the MCP SDK client too), refreshes (rotation and
 * reuse detection), and revokes (RFC 7009): the access token stops working at /mcp within 1.5 s.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';
import * as client from 'openid-client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthFixture, type OAuthFixture, type TestUser } from '../auth/oauth-fixture.js';

/** Registered loopback redirect; native-app redirects match on any port (RFC 8252 §7.3), nothing listens here. */
const REDIRECT_URI = 'http://127.0.0.1:51234/callback';
const SCOPE = 'pa.read pa.write';
const CLIENT_NAME = 'openid-client acceptance';

/** Adapts the fixture's fetch (trusting the test CA; string bodies) to what openid-client hands its customFetch. */
function libraryFetch(fetchImpl: typeof fetch): client.CustomFetch {
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
      redirect: options.redirect,
      ...(body !== undefined && body !== null ? { body: String(body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  };
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'openid-client-test', version: '1' },
  },
});

/** The JSON-RPC messages of an /mcp answer (a JSON body or SSE data lines). */
async function messages(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim())
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  const parsed = JSON.parse(text) as unknown;
  return (Array.isArray(parsed) ? parsed : [parsed]) as Record<string, unknown>[];
}

interface Tokens {
  readonly access_token: string;
  readonly refresh_token?: string | undefined;
  readonly token_type: string;
  readonly scope?: string | undefined;
}

describe('openid-client as an independent OAuth client of the embedded authorization server', () => {
  let fx: OAuthFixture;
  let alice: TestUser;
  let config: client.Configuration;
  let first: Tokens;
  let refreshed: Tokens;
  const timings: Record<string, number> = {};
  const projectName = `openid-client ${Math.random().toString(36).slice(2, 8)}`;

  /**
   * openid-client's own protected-resource request: an MCP initialize POST to /mcp with the token. A refusal with a
   * WWW-Authenticate challenge comes back from the library as a WWWAuthenticateChallengeError (its parsed challenges).
   */
  const initialize = async (
    accessToken: string,
  ): Promise<{ status: number; res: Response; challenges?: client.WWWAuthenticateChallenge[] }> => {
    try {
      const res = await client.fetchProtectedResource(
        config,
        accessToken,
        new URL(fx.resource),
        'POST',
        INITIALIZE,
        new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' }),
      );
      return { status: res.status, res };
    } catch (err) {
      if (!(err instanceof client.WWWAuthenticateChallengeError)) throw err;
      return { status: err.status, res: err.response, challenges: err.cause };
    }
  };

  /** The error of the Bearer challenge of a refusal. */
  const bearerError = (refusal: { challenges?: client.WWWAuthenticateChallenge[] } | undefined) =>
    refusal?.challenges?.find((c) => c.scheme === 'bearer')?.parameters.error;

  /** Runs the authorization-code flow to its tokens (PKCE S256, state, resource indicator). */
  async function authorize(user: TestUser): Promise<Tokens> {
    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: SCOPE,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      resource: fx.resource,
    });
    expect(`${url.origin}${url.pathname}`).toBe(`${fx.origin}/oauth/authorize`);
    const done = await fx.browser().authorize(url.href, fx.origin, user, 'allow');
    expect(done.location, `authorization stopped at HTTP ${done.res.status}`).toBeTruthy();
    const tokens = await client.authorizationCodeGrant(
      config,
      new URL(done.location as string),
      { pkceCodeVerifier: verifier, expectedState: state },
      { resource: fx.resource },
    );
    fx.secrets.add('code_verifier', verifier);
    fx.secrets.add('access_token', tokens.access_token);
    fx.secrets.add('refresh_token', tokens.refresh_token);
    return tokens;
  }

  /** Polls /mcp with the token until it is refused (bounded); returns the refusal, or undefined at the deadline. */
  async function refusedWithin(
    accessToken: string,
    ms: number,
  ): Promise<Awaited<ReturnType<typeof initialize>> | undefined> {
    const started = Date.now();
    while (Date.now() - started < ms) {
      const answer = await initialize(accessToken);
      if (answer.status === 401) return answer;
      await answer.res.body?.cancel();
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  }

  beforeAll(async () => {
    const fixtureStarted = Date.now();
    fx = await startOAuthFixture();
    timings['fixture start'] = Date.now() - fixtureStarted;
    alice = await fx.addUser();
  }, 120_000);

  afterAll(async () => {
    const closing = Date.now();
    await fx?.close();
    timings['fixture close'] = Date.now() - closing;
    console.info(`openid-client timings (ms): ${JSON.stringify(timings)}`);
  });

  it('discovers the server and registers a public client dynamically', async () => {
    const started = Date.now();
    const customFetch = libraryFetch(fx.fetch);
    // RFC 8414 discovery (the MCP authorization spec's first choice) plus RFC 7591 registration.
    config = await client.dynamicClientRegistration(
      new URL(fx.issuer),
      {
        client_name: CLIENT_NAME,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope: SCOPE,
      },
      client.None(),
      { algorithm: 'oauth2', [client.customFetch]: customFetch },
    );
    timings['discovery + registration'] = Date.now() - started;
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(fx.issuer);
    expect(meta.authorization_endpoint).toBe(`${fx.origin}/oauth/authorize`);
    expect(meta.token_endpoint).toBe(`${fx.origin}/oauth/token`);
    expect(meta.revocation_endpoint).toBe(`${fx.origin}/oauth/revoke`);
    expect(meta.code_challenge_methods_supported).toContain('S256');
    expect(meta.supportsPKCE()).toBe(true);
    const registered = config.clientMetadata();
    expect(registered.client_id).toMatch(/^dcr_/);
    expect(registered.client_secret).toBeUndefined();
    expect(registered.token_endpoint_auth_method).toBe('none');
    fx.secrets.add('registration_access_token', registered['registration_access_token']);

    // The same server found through OpenID Connect discovery, for the registered client id.
    const viaOidc = await client.discovery(
      new URL(fx.issuer),
      registered.client_id,
      undefined,
      client.None(),
      {
        algorithm: 'oidc',
        [client.customFetch]: customFetch,
      },
    );
    expect(viaOidc.serverMetadata().issuer).toBe(fx.issuer);
    expect(viaOidc.serverMetadata().token_endpoint).toBe(meta.token_endpoint);
    expect(viaOidc.serverMetadata().authorization_response_iss_parameter_supported).toBe(true);
    config = viaOidc;
  });

  it('gets tokens by the authorization code flow with PKCE and a resource indicator, and uses them at /mcp', async () => {
    expect(config, 'registered').toBeDefined();
    const started = Date.now();
    first = await authorize(alice);
    timings['authorization code flow'] = Date.now() - started;
    expect(first.token_type.toLowerCase()).toBe('bearer');
    expect(first.refresh_token).toBeTruthy();
    expect(decodeProtectedHeader(first.access_token).typ).toBe('at+jwt');
    const claims = decodeJwt(first.access_token);
    expect(claims.iss).toBe(fx.issuer);
    expect(claims.aud).toBe(fx.resource);
    expect(claims.sub).toBe(alice.id);
    expect(claims['client_id']).toBe(config.clientMetadata().client_id);
    expect(String(claims['scope']).split(' ')).toEqual(expect.arrayContaining(['pa.read', 'pa.write']));

    // openid-client's protected-resource request: MCP initialize answered by mcp-pa.
    const { status, res } = await initialize(first.access_token);
    expect(status).toBe(200);
    const [answer] = await messages(res);
    const result = answer?.['result'] as { serverInfo?: { name?: string }; protocolVersion?: string };
    expect(result?.serverInfo?.name).toBeTruthy();
    expect(result?.protocolVersion).toBe('2025-11-25');

    // A whole MCP session with the token (the MCP SDK client, bearer header): a write, stored for Alice.
    const sdk = new Client({ name: 'openid-client-test', version: '1.0.0' });
    await sdk.connect(
      new StreamableHTTPClientTransport(new URL(fx.resource), {
        fetch: fx.fetch,
        requestInit: { headers: { authorization: `Bearer ${first.access_token}` } },
      }),
    );
    try {
      const created = (await sdk.callTool({ name: 'create_project', arguments: { name: projectName } })) as {
        isError?: boolean;
        structuredContent?: { project?: { id?: string } };
      };
      expect(created.isError ?? false).toBe(false);
      const id = String(created.structuredContent?.project?.id);
      expect((await fx.store.getItem(alice.id, id))?.title).toBe(projectName);
    } finally {
      await sdk.close();
    }
  });

  it('refreshes with rotation; reusing the old refresh token is refused and revokes the grant', async () => {
    expect(first?.refresh_token, 'the flow test got tokens').toBeTruthy();
    const oldRefresh = first.refresh_token as string;
    refreshed = await client.refreshTokenGrant(config, oldRefresh, { resource: fx.resource });
    fx.secrets.add('access_token', refreshed.access_token);
    fx.secrets.add('refresh_token', refreshed.refresh_token);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token, 'rotated').not.toBe(oldRefresh);
    expect(refreshed.access_token).not.toBe(first.access_token);
    expect(decodeJwt(refreshed.access_token).aud).toBe(fx.resource);
    expect(decodeJwt(refreshed.access_token).sub).toBe(alice.id);
    const ok = await initialize(refreshed.access_token);
    expect(ok.status).toBe(200);
    await ok.res.body?.cancel();

    // The old refresh token no longer works…
    const reuse = await client.refreshTokenGrant(config, oldRefresh, { resource: fx.resource }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(reuse).toBeInstanceOf(client.ResponseBodyError);
    expect((reuse as client.ResponseBodyError).error).toBe('invalid_grant');
    // …and its reuse revoked the grant (docs/oauth.md): the new tokens die with it.
    const started = Date.now();
    const refused = await refusedWithin(refreshed.access_token, 1500);
    timings['reuse → access token refused'] = Date.now() - started;
    expect(refused?.status, 'the rotated access token is refused within 1.5 s').toBe(401);
    expect(bearerError(refused)).toBe('invalid_token');
    await expect(
      client.refreshTokenGrant(config, refreshed.refresh_token as string, { resource: fx.resource }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('revokes (RFC 7009): the access token is refused at /mcp within 1.5 s, the refresh token too', async () => {
    expect(config, 'registered').toBeDefined();
    // A new grant (the earlier one was revoked by the reuse), then its access token revoked by the client.
    const tokens = await authorize(alice);
    const ok = await initialize(tokens.access_token);
    expect(ok.status).toBe(200);
    await ok.res.body?.cancel();

    await client.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
    const started = Date.now();
    const refused = await refusedWithin(tokens.access_token, 1500);
    timings['revocation → access token refused'] = Date.now() - started;
    expect(refused?.status, 'the access token is refused within 1.5 s').toBe(401);
    expect(bearerError(refused)).toBe('invalid_token');
    // Revoking the access token revoked its grant, so the refresh token is dead as well.
    await expect(
      client.refreshTokenGrant(config, tokens.refresh_token as string, { resource: fx.resource }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });

    // Revoking a refresh token works the same way on a third grant.
    const third = await authorize(alice);
    await client.tokenRevocation(config, third.refresh_token as string, { token_type_hint: 'refresh_token' });
    await expect(
      client.refreshTokenGrant(config, third.refresh_token as string, { resource: fx.resource }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});
