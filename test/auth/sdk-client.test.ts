/**
 * The first acceptance test: the MCP SDK's own client (StreamableHTTPClientTransport with an
 * OAuthClientProvider), its OAuth flow driven headlessly through the real sign-in and consent pages, against the
 * production HTTP server: 401 → protected-resource metadata → authorization-server metadata → dynamic
 * registration → authorize (PKCE S256, resource indicator) → token → /mcp, tool calls stored for the user's
 * tenant; then the SDK refreshes (rotation); then the user revokes the app on the connected-apps page and both
 * its access token and its refresh token are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  parseForms,
  startOAuthFixture,
  type Browser,
  type OAuthFixture,
  type OAuthFixtureOptions,
  type TestUser,
} from './oauth-fixture.js';
import { BrowserOAuthProvider } from './browser-oauth-provider.js';
import { createTestDatabase, describeWithServer, type TestDatabase } from '../support/postgres.js';

const REDIRECT_URI = 'http://127.0.0.1:53682/callback';
const CLIENT_NAME = 'SDK acceptance client';

/** One HTTP exchange the SDK made (request bodies are kept for assertions only, never printed). */
interface Exchange {
  readonly method: string;
  readonly url: URL;
  readonly requestBody: string | undefined;
  readonly status: number;
  readonly wwwAuthenticate: string | null;
  readonly location: string | null;
}

/**
 * Wraps the fixture's fetch (which trusts the test CA) to record every exchange. The SDK posts token requests
 * with a URLSearchParams body; the fixture's fetch sends strings only, so such bodies are serialized here (with
 * the content type the SDK already set).
 */
function recordingFetch(base: typeof fetch, log: Exchange[]): FetchLike {
  return async (input, init) => {
    const url = new URL(String(input));
    const raw = init?.body;
    const body = raw instanceof URLSearchParams ? raw.toString() : raw;
    const res = await base(url, { ...init, ...(body !== undefined ? { body } : {}) });
    log.push({
      method: (init?.method ?? 'GET').toUpperCase(),
      url,
      requestBody: typeof body === 'string' ? body : undefined,
      status: res.status,
      wwwAuthenticate: res.headers.get('www-authenticate'),
      location: res.headers.get('location'),
    });
    return res;
  };
}

/** The SDK acceptance client: a public native client signed in through the fixture's headless browser. */
function headlessProvider(
  fx: OAuthFixture,
  user: TestUser,
  browser: Browser = fx.browser(),
): BrowserOAuthProvider {
  return new BrowserOAuthProvider(
    browser,
    user,
    {
      client_name: CLIENT_NAME,
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'pa.read pa.write',
    },
    fx.origin,
  );
}

interface Connected {
  readonly client: Client;
  readonly provider: BrowserOAuthProvider;
  readonly exchanges: Exchange[];
}

function newTransport(fx: OAuthFixture, provider: BrowserOAuthProvider, log: Exchange[]) {
  return new StreamableHTTPClientTransport(new URL(fx.resource), {
    authProvider: provider,
    fetch: recordingFetch(fx.fetch, log),
  });
}

/** The usual SDK pattern: connect (UnauthorizedError after the authorization), finishAuth(code), connect again. */
async function connectWithOAuth(fx: OAuthFixture, user: TestUser): Promise<Connected> {
  const exchanges: Exchange[] = [];
  const provider = headlessProvider(fx, user);
  const first = newTransport(fx, provider, exchanges);
  const firstClient = new Client({ name: 'sdk-client-test', version: '1.0.0' });
  await expect(firstClient.connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
  expect(provider.code, 'the headless browser completed the authorization').toBeTruthy();
  await first.finishAuth(provider.code as string);
  await firstClient.close();
  const client = new Client({ name: 'sdk-client-test', version: '1.0.0' });
  await client.connect(newTransport(fx, provider, exchanges));
  return { client, provider, exchanges };
}

function structured(result: unknown): Record<string, unknown> {
  const r = result as { isError?: boolean; structuredContent?: Record<string, unknown>; content?: unknown };
  expect(r.isError ?? false, JSON.stringify(r.content)).toBe(false);
  expect(r.structuredContent).toBeDefined();
  return r.structuredContent as Record<string, unknown>;
}

async function projectNames(client: Client): Promise<string[]> {
  const list = structured(await client.callTool({ name: 'list_projects', arguments: {} }));
  return (list['items'] as { name: string }[]).map((p) => p.name);
}

async function mcpInitialize(fx: OAuthFixture, accessToken: string): Promise<Response> {
  return fx.fetch(fx.resource, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
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
        clientInfo: { name: 'probe', version: '1' },
      },
    }),
  });
}

async function refreshGrant(fx: OAuthFixture, clientId: string, refreshToken: string): Promise<Response> {
  return fx.fetch(`${fx.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: clientId,
    }).toString(),
  });
}

/** The table row of the connected-apps page that names `clientName`. */
function appRow(html: string, clientName: string): string | undefined {
  return [...html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)]
    .map((m) => m[1] ?? '')
    .find((row) => row.includes(`>${clientName}</th>`));
}

function sdkClientScenario(
  label: string,
  options: () => Promise<OAuthFixtureOptions>,
  cleanup?: () => Promise<void>,
) {
  describe(`MCP SDK client with OAuth (${label})`, () => {
    let fx: OAuthFixture;
    let alice: TestUser;
    let bob: TestUser;
    let app: Connected;
    const projectName = `Acceptance ${Math.random().toString(36).slice(2, 8)}`;

    beforeAll(async () => {
      fx = await startOAuthFixture(await options());
      alice = await fx.addUser();
      bob = await fx.addUser();
    }, 60_000);

    afterAll(async () => {
      await app?.client.close().catch(() => undefined);
      await fx?.close();
      await cleanup?.();
    });

    it('goes 401 → metadata → registration → authorize → token → /mcp and calls tools', async () => {
      app = await connectWithOAuth(fx, alice);
      const { provider, exchanges, client } = app;
      const at = (path: string) => (e: Exchange) => e.url.origin === fx.origin && e.url.pathname === path;

      // 401 with the RFC 9728 pointer on the first /mcp POST.
      const firstMcp = exchanges.find(at('/mcp'));
      expect(firstMcp?.method).toBe('POST');
      expect(firstMcp?.status).toBe(401);
      expect(firstMcp?.wwwAuthenticate).toMatch(/^Bearer /);
      expect(firstMcp?.wwwAuthenticate).toContain(
        `resource_metadata="${fx.origin}/.well-known/oauth-protected-resource/mcp"`,
      );

      // Discovery: the protected-resource metadata, then the authorization-server metadata.
      const prm = exchanges.findIndex(at('/.well-known/oauth-protected-resource/mcp'));
      const asm = exchanges.findIndex(at('/.well-known/oauth-authorization-server'));
      expect(prm).toBeGreaterThan(0);
      expect(exchanges[prm]?.status).toBe(200);
      expect(asm).toBeGreaterThan(prm);
      expect(exchanges[asm]?.status).toBe(200);

      // Dynamic registration.
      const reg = exchanges.findIndex(at('/oauth/register'));
      expect(reg).toBeGreaterThan(asm);
      expect(exchanges[reg]?.method).toBe('POST');
      expect(exchanges[reg]?.status).toBe(201);
      const clientId = provider.client?.client_id;
      expect(clientId).toBeTruthy();

      // The authorization request: PKCE S256, the resource indicator, the registered client and redirect URI.
      expect(provider.authorizationUrls).toHaveLength(1);
      const az = provider.authorizationUrls[0] as URL;
      expect(`${az.origin}${az.pathname}`).toBe(`${fx.origin}/oauth/authorize`);
      expect(az.searchParams.get('response_type')).toBe('code');
      expect(az.searchParams.get('client_id')).toBe(clientId);
      expect(az.searchParams.get('redirect_uri')).toBe(REDIRECT_URI);
      expect(az.searchParams.get('code_challenge_method')).toBe('S256');
      expect(az.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(az.searchParams.get('resource')).toBe(fx.resource);
      expect((az.searchParams.get('scope') ?? '').split(' ')).toEqual(
        expect.arrayContaining(['pa.read', 'pa.write']),
      );

      // The token exchange (authorization_code with the verifier and the resource), after the authorization.
      const tokenCall = exchanges.find(
        (e) => at('/oauth/token')(e) && /(^|&)grant_type=authorization_code(&|$)/.test(e.requestBody ?? ''),
      );
      expect(tokenCall?.status).toBe(200);
      const sent = new URLSearchParams(tokenCall?.requestBody ?? '');
      expect(sent.get('code_verifier')).toBeTruthy();
      expect(sent.get('resource')).toBe(fx.resource);
      expect(exchanges.indexOf(tokenCall as Exchange)).toBeGreaterThan(reg);

      // The access token: a JWT for the MCP resource, about the signed-in user.
      const tokens = provider.saved as OAuthTokens;
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      expect(tokens.refresh_token).toBeTruthy();
      expect(decodeProtectedHeader(tokens.access_token).typ).toBe('at+jwt');
      const claims = decodeJwt(tokens.access_token);
      expect(claims.aud).toBe(fx.resource);
      expect(claims.sub).toBe(alice.id);
      expect(claims.iss).toBe(fx.issuer);
      expect(claims['client_id']).toBe(clientId);

      // /mcp accepts it: the retried connection initialized with a bearer token.
      const mcpCalls = exchanges.filter(at('/mcp'));
      expect(mcpCalls.at(-1)?.status).toBeLessThan(300);

      // Tools: listed, a write and a read.
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(['create_project', 'list_projects', 'get_dashboard']));
      const created = structured(
        await client.callTool({ name: 'create_project', arguments: { name: projectName, priority: 'high' } }),
      );
      const project = created['project'] as { id: string; name: string; priority: string };
      expect(project.name).toBe(projectName);
      expect(project.priority).toBe('high');
      const got = structured(
        await client.callTool({ name: 'get_project', arguments: { project_id: project.id } }),
      );
      expect((got['project'] as { id: string }).id).toBe(project.id);
      expect(await projectNames(client)).toContain(projectName);

      // Stored for Alice's tenant: Bob, through his own SDK client and token, sees none of it.
      const other = await connectWithOAuth(fx, bob);
      try {
        expect(decodeJwt((other.provider.saved as OAuthTokens).access_token).sub).toBe(bob.id);
        expect(await projectNames(other.client)).not.toContain(projectName);
        const foreign = (await other.client.callTool({
          name: 'get_project',
          arguments: { project_id: project.id },
        })) as { isError?: boolean };
        expect(foreign.isError).toBe(true);
      } finally {
        await other.client.close();
      }
    });

    it('refreshes: a rejected access token makes the SDK use its refresh token (rotated) and carry on', async () => {
      expect(app, 'the flow test connected').toBeDefined();
      const { provider } = app;
      const before = provider.saved as OAuthTokens;
      expect(before.refresh_token).toBeTruthy();
      // Spoil the stored access token: /mcp answers 401 and the transport calls auth(), which refreshes.
      provider.saveTokens({ ...before, access_token: `${before.access_token.slice(0, -8)}AAAAAAAA` });
      const log: Exchange[] = [];
      const client = new Client({ name: 'sdk-client-test', version: '1.0.0' });
      await client.connect(newTransport(fx, provider, log));
      try {
        expect(log[0]?.url.pathname).toBe('/mcp');
        expect(log[0]?.status).toBe(401);
        expect(log[0]?.wwwAuthenticate).toContain('error="invalid_token"');
        const refresh = log.find(
          (e) =>
            e.url.pathname === '/oauth/token' &&
            /(^|&)grant_type=refresh_token(&|$)/.test(e.requestBody ?? ''),
        );
        expect(refresh?.status).toBe(200);
        expect(provider.authorizationUrls, 'no new authorization was needed').toHaveLength(1);
        const after = provider.saved as OAuthTokens;
        expect(after.refresh_token).toBeTruthy();
        expect(after.refresh_token, 'the refresh token was rotated').not.toBe(before.refresh_token);
        expect(after.access_token).not.toBe(before.access_token);
        const claims = decodeJwt(after.access_token);
        expect(claims.aud).toBe(fx.resource);
        expect(claims.sub).toBe(alice.id);
        expect(log.filter((e) => e.url.pathname === '/mcp').at(-1)?.status).toBeLessThan(300);
        // The new access token works through this new SDK client.
        expect(await projectNames(client)).toContain(projectName);
      } finally {
        await client.close();
      }
      // And the old session's client now runs on the new token too (the provider is shared).
      expect(await projectNames(app.client)).toContain(projectName);
    });

    it('is refused after the user revokes it on the connected-apps page', async () => {
      expect(app, 'the flow test connected').toBeDefined();
      const { provider } = app;
      const tokens = provider.saved as OAuthTokens;
      const clientId = provider.client?.client_id as string;
      expect((await mcpInitialize(fx, tokens.access_token)).status).toBe(200);

      // Alice signs in on the connected-apps page with a fresh browser.
      const browser = fx.browser();
      const page = await browser.request(`${fx.origin}/account/apps`);
      expect(page.status).toBe(200);
      const login = parseForms(page.text).find((f) => f.fields.has('password'));
      expect(login, 'the apps page asks to sign in').toBeDefined();
      const loginFields = Object.fromEntries(login?.fields ?? []);
      const signedIn = await browser.request(new URL(login?.action ?? '', fx.origin).href, {
        form: { ...loginFields, username: alice.username, password: alice.password },
        headers: { origin: fx.origin },
      });
      expect(signedIn.status).toBe(303);
      const { res: apps, url: appsUrl } = await browser.follow(
        new URL(signedIn.headers.location ?? '', fx.origin).href,
        fx.origin,
      );
      expect(apps.status).toBe(200);
      expect(new URL(appsUrl).pathname).toBe('/account/apps');

      // The client is listed by its name, with its client id and scopes, and a revoke form.
      const row = appRow(apps.text, CLIENT_NAME);
      expect(row, 'the SDK client is listed').toBeDefined();
      expect(row).toContain(`<code>${clientId}</code>`);
      expect(row).toContain('<code>pa.read</code>');
      expect(row).toContain('<code>pa.write</code>');
      const revokeForm = parseForms(row ?? '').find((f) => f.fields.has('grant'));
      expect(revokeForm?.action).toBe('/account/revoke');
      expect(revokeForm?.fields.get('grant')).toBe(decodeJwt(tokens.access_token)['gid']);
      expect(revokeForm?.fields.get('csrf')).toBeTruthy();

      const revoked = await browser.request(new URL(revokeForm?.action ?? '', fx.origin).href, {
        form: Object.fromEntries(revokeForm?.fields ?? []),
        headers: { origin: fx.origin },
      });
      expect(revoked.status).toBe(303);
      expect(revoked.headers.location).toBe('/account/apps?revoked=1');
      const after = await browser.follow(new URL(revoked.headers.location ?? '', fx.origin).href, fx.origin);
      expect(after.res.text).toContain('Access revoked.');
      expect(appRow(after.res.text, CLIENT_NAME), 'the client is no longer listed').toBeUndefined();

      // Within ~1.5 s the access token is refused at /mcp.
      const started = Date.now();
      let refused: Response | undefined;
      while (Date.now() - started < 1500) {
        const res = await mcpInitialize(fx, tokens.access_token);
        if (res.status === 401) {
          refused = res;
          break;
        }
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(refused?.status, 'the access token is refused within 1.5 s').toBe(401);
      expect(refused?.headers.get('www-authenticate')).toContain('error="invalid_token"');

      // The refresh token is refused too.
      const refreshed = await refreshGrant(fx, clientId, tokens.refresh_token as string);
      expect(refreshed.status).toBe(400);
      expect(((await refreshed.json()) as { error?: string }).error).toBe('invalid_grant');

      // The SDK client itself: its next call is refused (401, refresh refused) and it asks for a new authorization.
      provider.interactive = false;
      await expect(app.client.callTool({ name: 'list_projects', arguments: {} })).rejects.toBeInstanceOf(
        UnauthorizedError,
      );
      expect(provider.invalidated).toContain('tokens');
      expect(provider.authorizationUrls).toHaveLength(2);
    });
  });
}

sdkClientScenario('PGlite', () => Promise.resolve({}));

describeWithServer('on the real PostgreSQL server', () => {
  let db: TestDatabase | undefined;
  sdkClientScenario(
    'PostgreSQL',
    async () => {
      db = await createTestDatabase();
      return { env: { MCP_DATABASE_URL: db.url } };
    },
    async () => {
      await db?.drop();
    },
  );
});
