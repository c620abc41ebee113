/**
 * Response headers on every route of the real HTTP-mode server (TLS, OAuth on, PGlite): every answer — the
 * app's, the authorization server's, the pages', and the errors Fastify makes itself (404, 400, 405, 413) —
 * carries nosniff, no-referrer, X-Frame-Options DENY, HSTS and a Content-Security-Policy with
 * frame-ancestors 'none' (the API policy on JSON, the page policy on HTML); nothing answers a foreign Origin with
 * credentials; public metadata and the JWKS are readable from any origin (`*`) and cacheable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_CSP } from '../../src/auth/pages.js';
import { pkcePair, startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import { rawRequest, type RawResponse } from '../support/https.js';

const EVIL = 'https://evil.example';
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
const HSTS = 'max-age=31536000; includeSubDomains';
const PUBLIC_DOCUMENTS = [
  '/.well-known/oauth-authorization-server',
  '/.well-known/openid-configuration',
  '/.well-known/oauth-protected-resource',
  '/.well-known/oauth-protected-resource/mcp',
  '/oauth/jwks',
];
const POST_ENDPOINTS = new Set([
  '/oauth/token',
  '/oauth/register',
  '/oauth/revoke',
  '/oauth/introspect',
  '/oauth/par',
]);
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
});

interface Seen {
  readonly name: string;
  readonly res: RawResponse;
}

describe('security headers and CORS on every route', () => {
  let fx: OAuthFixture;
  let accessToken: string;
  let interactionPath: string;
  const seen: Seen[] = [];

  const request = async (
    name: string,
    path: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<RawResponse> => {
    const res = await rawRequest(`${fx.origin}${path}`, {
      method: init.method ?? 'GET',
      headers: { origin: EVIL, ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
      ca: fx.ca.cert,
    });
    seen.push({ name, res });
    return res;
  };

  beforeAll(async () => {
    // A small /mcp body limit, so that the 413 needs no large upload.
    fx = await startOAuthFixture({ config: { server: { body_limit_mb: 1 } } });
    const user = await fx.addUser();
    const reg = await fx.register({
      redirect_uris: ['http://127.0.0.1/cb'],
      client_name: 'Headers test',
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const clientId = String(reg.body['client_id']);
    const authorizeUrl = async (): Promise<{ url: string; verifier: string }> => {
      const { verifier, challenge } = await pkcePair();
      const az = new URL(`${fx.origin}/oauth/authorize`);
      az.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: 'http://127.0.0.1:51004/cb',
        scope: 'pa.read pa.write',
        state: 'S',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: fx.resource,
      }).toString();
      return { url: az.href, verifier };
    };
    // A token, for the /mcp answers that come after authentication (400, 413, the SSE stream).
    const first = await authorizeUrl();
    const done = await fx.browser().authorize(first.url, fx.origin, user);
    const code = new URL(String(done.location)).searchParams.get('code') as string;
    const tk = await fx.fetch(`${fx.origin}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: 'http://127.0.0.1:51004/cb',
        code_verifier: first.verifier,
        client_id: clientId,
      }).toString(),
    });
    const tokens = (await tk.json()) as Record<string, string>;
    expect(tk.status, JSON.stringify(tokens)).toBe(200);
    accessToken = tokens['access_token'] as string;
    // An interaction (sign-in) page of a request in progress.
    const second = await authorizeUrl();
    const browser = fx.browser();
    const { url } = await browser.follow(second.url, fx.origin);
    interactionPath = new URL(url).pathname;
    expect(interactionPath).toMatch(/^\/oauth\/interaction\/[\w-]+$/);
    // The page itself, with the interaction cookie (without it the page is an error page).
    const page = await browser.request(url, { headers: { origin: EVIL } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<form');
    seen.push({ name: `GET ${interactionPath} (signed cookie)`, res: page });
  }, 120_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('walks every route with Origin https://evil.example, GET and OPTIONS', async () => {
    const routes = [
      '/',
      '/healthz',
      '/readyz',
      '/mcp',
      '/oauth/authorize',
      '/oauth/token',
      '/oauth/register',
      '/oauth/revoke',
      '/oauth/introspect',
      '/oauth/par',
      '/oauth/jwks',
      '/oauth/nowhere',
      interactionPath,
      `${interactionPath}/login`,
      '/account',
      '/account/apps',
      '/account/nowhere',
      ...PUBLIC_DOCUMENTS,
      '/.well-known/nowhere',
      '/nowhere',
    ];
    for (const path of routes) {
      await request(`GET ${path}`, path);
      await request(`OPTIONS ${path}`, path, {
        method: 'OPTIONS',
        headers: {
          'access-control-request-method': POST_ENDPOINTS.has(path) ? 'POST' : 'GET',
          'access-control-request-headers': 'authorization, content-type, mcp-protocol-version',
        },
      });
    }
    // The documents and the JWKS: any origin may read them (no credentials), for a while.
    for (const path of PUBLIC_DOCUMENTS) {
      const get = seen.find((s) => s.name === `GET ${path}`)?.res as RawResponse;
      expect(get.status, path).toBe(200);
      expect(get.headers['access-control-allow-origin'], path).toBe('*');
      expect(get.headers['cache-control'], path).toBe('public, max-age=300');
      const pre = seen.find((s) => s.name === `OPTIONS ${path}`)?.res as RawResponse;
      expect(pre.status, `OPTIONS ${path}`).toBe(204);
      expect(pre.headers['access-control-allow-origin'], `OPTIONS ${path}`).toBe('*');
      expect(String(pre.headers['access-control-allow-methods']), `OPTIONS ${path}`).toContain('GET');
    }
    // Pages are HTML with the page policy and never stored.
    for (const name of [
      `GET ${interactionPath} (signed cookie)`,
      `GET ${interactionPath}`,
      'GET /account/apps',
      'GET /oauth/authorize',
    ]) {
      const res = seen.find((s) => s.name === name)?.res as RawResponse;
      expect(String(res.headers['content-type']), name).toMatch(/^text\/html/);
      expect(res.headers['cache-control'], name).toBe('no-store');
    }
    // /mcp does not hand its CORS grant to a foreign origin.
    const mcpPreflight = seen.find((s) => s.name === 'OPTIONS /mcp')?.res as RawResponse;
    expect(mcpPreflight.status).toBe(403);
    expect(mcpPreflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('the errors Fastify makes itself (404, 400, 405, 413) and the token endpoint carry them too', async () => {
    const auth = { authorization: `Bearer ${accessToken}` };
    const mcpHeaders = {
      ...auth,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    // Fastify parses a JSON body before it finds there is no route: 400.
    const badJsonElsewhere = await request('POST /nowhere bad JSON', '/nowhere', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(badJsonElsewhere.status).toBe(400);
    const notFound = await request('DELETE /nowhere', '/nowhere', { method: 'DELETE' });
    expect(notFound.status).toBe(404);
    const badUrl = await request('GET /healthz%zz', '/healthz%zz');
    expect(badUrl.status).toBeGreaterThanOrEqual(400);
    const own = { origin: fx.origin };
    const badJson = await request('POST /mcp bad JSON', '/mcp', {
      method: 'POST',
      headers: { ...mcpHeaders, ...own },
      body: '{not json',
    });
    expect(badJson.status).toBe(400);
    const put = await request('PUT /mcp', '/mcp', {
      method: 'PUT',
      headers: { ...mcpHeaders, ...own },
      body: '{}',
    });
    expect(put.status).toBe(405);
    const huge = await request('POST /mcp huge', '/mcp', {
      method: 'POST',
      headers: { ...mcpHeaders, ...own },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'ping',
        params: { pad: 'x'.repeat(2 * 1024 * 1024) },
      }),
    });
    expect(huge.status).toBe(413);
    const sse = await request('POST /mcp initialize', '/mcp', {
      method: 'POST',
      headers: { ...mcpHeaders, ...own },
      body: INIT,
    });
    expect(sse.status).toBe(200);
    const token = await request('POST /oauth/token', '/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&code=nope&client_id=nope',
    });
    expect(token.status).toBeGreaterThanOrEqual(400);
    expect(token.headers['cache-control']).toBe('no-store');
  });

  it('every response seen: security headers, the right policy, HSTS, no credentials for a foreign origin', () => {
    expect(seen.length).toBeGreaterThan(55);
    for (const { name, res } of seen) {
      const h = res.headers;
      const where = `${name} → ${res.status}`;
      expect(h['x-content-type-options'], where).toBe('nosniff');
      expect(h['referrer-policy'], where).toBe('no-referrer');
      expect(h['x-frame-options'], where).toBe('DENY');
      expect(h['strict-transport-security'], where).toBe(HSTS);
      const csp = String(h['content-security-policy']);
      expect(csp, where).toContain("frame-ancestors 'none'");
      const html = /^text\/html/.test(String(h['content-type'] ?? ''));
      expect(csp, where).toBe(html ? PAGE_CSP : API_CSP);
      if (!PUBLIC_DOCUMENTS.some((p) => name === `GET ${p}`)) {
        expect(String(h['cache-control']), where).toMatch(/\bno-store\b/);
      }
      // Credentials are never allowed, with a reflected Origin or otherwise.
      expect(h['access-control-allow-credentials'], where).toBeUndefined();
      if (h['access-control-allow-origin'] === EVIL) {
        expect(h['access-control-allow-credentials'], where).not.toBe('true');
      }
    }
  });
});
