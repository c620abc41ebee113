/**
 * HTTPS behind trusted proxies (server.trust_proxy) and the plain-HTTP redirect listener
 * (server.http_redirect_port), against the real HTTP-mode server.
 *
 * A proxy is simulated by connecting from 127.0.0.2 (a local address of its own) with trust_proxy ['127.0.0.2'];
 * requests from 127.0.0.1 are an untrusted peer. What the server believes about the client address is observed
 * through the sign-in lockout (10 wrong passwords for one account from one address lock it there).
 */
import { writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent } from 'node:https';
import { createServer } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { startHttpServer, type HttpServer } from '../../src/servers/http-server.js';
import { redirectTarget, startRedirectListener } from '../../src/servers/http-redirect.js';
import { AccountStore } from '../../src/auth/accounts.js';
import {
  parseForms,
  pkcePair,
  startOAuthFixture,
  TEST_SECRET,
  type OAuthFixture,
} from '../auth/oauth-fixture.js';
import { rawRequest, type RawResponse } from '../support/https.js';
import { tempDir } from '../support/helpers.js';

const PROXY = '127.0.0.2';
const PUBLIC = 'https://pa.example.test';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface PlainResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** One plain-HTTP request from `localAddress`, with exactly the given headers. */
function plain(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: new HttpAgent({ keepAlive: false }),
        ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A cookie jar over a fixed local address (the proxy's, or the untrusted peer's). */
class Jar {
  private readonly cookies = new Map<string, string>();
  readonly setCookies: string[] = [];
  constructor(
    private readonly send: (
      url: string,
      init: { method?: string; headers?: Record<string, string>; body?: string },
    ) => Promise<PlainResponse | RawResponse>,
  ) {}

  async request(
    url: string,
    init: { method?: string; headers?: Record<string, string>; form?: Record<string, string> } = {},
  ): Promise<PlainResponse | RawResponse> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0) headers['cookie'] = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await this.send(url, {
      method: init.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    for (const line of res.headers['set-cookie'] ?? []) {
      this.setCookies.push(line);
      const pair = line.split(';')[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return res;
  }
}

function errorOf(res: { text: string }): { error?: string; error_description?: string } {
  return JSON.parse(res.text) as { error?: string; error_description?: string };
}

describe('behind a trusted proxy (TLS listener), with the plain-HTTP redirect listener', () => {
  let fx: OAuthFixture;
  let redirectPort: number;
  let proxyAgent: Agent;
  let directAgent: Agent;

  /** A request through the "proxy" (from 127.0.0.2). */
  const viaProxy = (
    pathname: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<RawResponse> =>
    rawRequest(`${fx.origin}${pathname}`, { ...init, ca: fx.ca.cert, agent: proxyAgent });
  /** A request straight from an untrusted peer (127.0.0.1). */
  const direct = (
    pathname: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<RawResponse> =>
    rawRequest(`${fx.origin}${pathname}`, { ...init, ca: fx.ca.cert, agent: directAgent });

  beforeAll(async () => {
    redirectPort = await freePort();
    fx = await startOAuthFixture({
      config: {
        server: { trust_proxy: [PROXY], public_url: PUBLIC, http_redirect_port: redirectPort },
      },
    });
    proxyAgent = new Agent({ ca: fx.ca.cert, localAddress: PROXY, keepAlive: false });
    directAgent = new Agent({ ca: fx.ca.cert, localAddress: '127.0.0.1', keepAlive: false });
  }, 60_000);
  afterAll(async () => {
    proxyAgent?.destroy();
    directAgent?.destroy();
    await fx?.close();
    // The redirect listener closed with the server.
    await expect(plain(`http://127.0.0.1:${redirectPort}/`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('X-Forwarded-Proto http through the proxy: 403 naming the reason; https: served; probes always', async () => {
    const http = await viaProxy('/.well-known/oauth-authorization-server', {
      headers: { 'x-forwarded-proto': 'http', 'x-forwarded-for': '203.0.113.5' },
    });
    expect(http.status).toBe(403);
    expect(errorOf(http).error).toBe('https_required');
    expect(errorOf(http).error_description).toContain('requests must reach the proxy over HTTPS');
    expect(errorOf(http).error_description).toContain(PUBLIC);
    // /mcp answers in JSON-RPC, as its other refusals do.
    const mcp = await viaProxy('/mcp', {
      method: 'POST',
      headers: { 'x-forwarded-proto': 'http', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(mcp.status).toBe(403);
    expect((mcp.json as { error: { message: string } }).error.message).toContain('over HTTPS');
    // Every hop must have said https (a client's own "https" in front of the proxy's "http" changes nothing).
    for (const headers of [
      { 'x-forwarded-proto': 'https, http' } as Record<string, string>,
      { 'x-forwarded-proto': 'http, https' },
      { forwarded: 'for=203.0.113.5;proto=http' },
      { forwarded: 'for=203.0.113.5;proto=https', 'x-forwarded-proto': 'http' },
    ]) {
      const res = await viaProxy('/oauth/jwks', { headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
    }
    for (const probe of ['/healthz', '/readyz']) {
      expect((await viaProxy(probe, { headers: { 'x-forwarded-proto': 'http' } })).status, probe).toBe(200);
    }

    const https = await viaProxy('/.well-known/oauth-authorization-server', {
      headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.5' },
    });
    expect(https.status).toBe(200);
    const viaForwarded = await viaProxy('/oauth/jwks', {
      headers: { forwarded: 'for="[2001:db8::5]:4711";proto=https' },
    });
    expect(viaForwarded.status).toBe(200);
    // No forwarded protocol at all: the request is what it was on the connection (TLS here).
    expect((await viaProxy('/oauth/jwks')).status).toBe(200);
  });

  it('URLs in the metadata are the public ones, whatever X-Forwarded-Host anyone sends', async () => {
    for (const send of [viaProxy, direct]) {
      const res = await send('/.well-known/oauth-authorization-server', {
        headers: {
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'evil.example',
          host: 'pa.example.test',
        },
      });
      expect(res.status).toBe(200);
      const meta = res.json as Record<string, string>;
      expect(meta['issuer']).toBe(PUBLIC);
      expect(res.text).not.toContain('evil.example');
      expect(meta['authorization_endpoint']).toMatch(
        /^https:\/\/pa\.example\.test(:\d+)?\/oauth\/authorize$/,
      );
    }
  });

  it("an untrusted peer's forwarded headers are ignored: its own address and connection count", async () => {
    // It claims to be a proxy that saw plain HTTP: the claim is not read, the connection is TLS.
    const res = await direct('/oauth/jwks', { headers: { 'x-forwarded-proto': 'http' } });
    expect(res.status).toBe(200);
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('X-Forwarded-For from the proxy is the address the sign-in lockout sees', async () => {
    const user = await fx.addUser();
    const proxyJar = new Jar((url, init) => rawRequest(url, { ...init, ca: fx.ca.cert, agent: proxyAgent }));
    const forwardedFor = (address: string): Record<string, string> => ({
      'x-forwarded-proto': 'https',
      'x-forwarded-for': address,
      host: 'pa.example.test',
    });
    const page = await proxyJar.request(`${fx.origin}/account/apps`, {
      headers: forwardedFor('203.0.113.9'),
    });
    expect(page.status).toBe(200);
    const csrf = parseForms(page.text)[0]?.fields.get('csrf') as string;
    expect(csrf).toBeTruthy();
    const login = (address: string, password: string): Promise<PlainResponse | RawResponse> =>
      proxyJar.request(`${fx.origin}/account/login`, {
        headers: forwardedFor(address),
        form: { csrf, username: user.username, password },
      });

    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await login('203.0.113.9', 'wrong-password-123')).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual([429, 429]);
    // The right password from the locked address: still locked (generic answer).
    expect((await login('203.0.113.9', user.password)).status).toBe(429);
    // A client cannot leave the lock by writing another address in front of the proxy's: the right-most
    // address that is not a proxy counts.
    expect((await login(`203.0.113.10, 203.0.113.9`, user.password)).status).toBe(429);
    // Another address through the same proxy is not locked.
    const other = await login('203.0.113.10', user.password);
    expect(other.status, other.text.slice(0, 300)).toBe(303);
    // Proxies in the chain are skipped: the proxy forwarding for itself and for .10 is .10.
    expect((await login(`203.0.113.10, ${PROXY}`, user.password)).status).toBe(303);

    // From the untrusted peer, X-Forwarded-For is ignored: its failures lock 127.0.0.1, not the address it names.
    const directJar = new Jar((url, init) =>
      rawRequest(url, { ...init, ca: fx.ca.cert, agent: directAgent }),
    );
    const directPage = await directJar.request(`${fx.origin}/account/apps`);
    const directCsrf = parseForms(directPage.text)[0]?.fields.get('csrf') as string;
    const victim = await fx.addUser();
    const spoofed = (password: string): Promise<PlainResponse | RawResponse> =>
      directJar.request(`${fx.origin}/account/login`, {
        headers: { 'x-forwarded-for': '203.0.113.20', 'x-forwarded-proto': 'https' },
        form: { csrf: directCsrf, username: victim.username, password },
      });
    for (let i = 0; i < 10; i++) expect((await spoofed('wrong-password-123')).status).toBe(401);
    expect((await spoofed(victim.password)).status).toBe(429);
    // 203.0.113.20 itself (through the proxy) was never locked.
    const victimLogin = await proxyJar.request(`${fx.origin}/account/login`, {
      headers: forwardedFor('203.0.113.20'),
      form: { csrf, username: victim.username, password: victim.password },
    });
    expect(victimLogin.status).toBe(303);
  });

  it('the redirect listener: GET/HEAD → 308 to the public https URL, other methods 403, never content', async () => {
    const base = `http://127.0.0.1:${redirectPort}`;
    const get = await plain(`${base}/account/apps?x=1&y=%20z`, { headers: { host: 'evil.example:80' } });
    expect(get.status).toBe(308);
    expect(get.headers.location).toBe(`${PUBLIC}/account/apps?x=1&y=%20z`);
    expect(get.text).toBe('');
    expect(get.headers['strict-transport-security']).toBeUndefined();
    const head = await plain(`${base}/mcp`, { method: 'HEAD' });
    expect(head.status).toBe(308);
    expect(head.headers.location).toBe(`${PUBLIC}/mcp`);
    // A path that looks like an authority stays a path.
    const sneaky = await plain(`${base}//evil.example/x`);
    expect(sneaky.status).toBe(308);
    expect(new URL(String(sneaky.headers.location)).host).toBe('pa.example.test');
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const res = await plain(`${base}/oauth/token`, {
        method,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=authorization_code&code=abc',
      });
      expect(res.status, method).toBe(403);
      expect(res.headers.location, method).toBeUndefined();
      expect(res.text, method).toMatch(/^Forbidden: .*HTTPS/);
      expect(res.text, method).not.toContain('code');
    }
    // The HTTPS server is unaffected.
    expect((await direct('/healthz')).status).toBe(200);
  });

  it('without a public URL the redirect goes to the Host name on the HTTPS port; close() stops it', async () => {
    // A bad Host header gets 400.
    const logger = createLogger('silent');
    const listener = await startRedirectListener({ host: '127.0.0.1', port: 0, httpsPort: 8443, logger });
    try {
      const res = await plain(`http://127.0.0.1:${listener.port}/a/b?c=d`, {
        headers: { host: 'pa.example.test:8080' },
      });
      expect(res.status).toBe(308);
      expect(res.headers.location).toBe('https://pa.example.test:8443/a/b?c=d');
      const ip6 = await plain(`http://127.0.0.1:${listener.port}/`, { headers: { host: '[::1]:80' } });
      expect(ip6.headers.location).toBe('https://[::1]:8443/');
      const bad = await plain(`http://127.0.0.1:${listener.port}/`, { headers: { host: 'a b' } });
      expect(bad.status).toBe(400);
    } finally {
      await listener.close();
    }
    await expect(plain(`http://127.0.0.1:${listener.port}/`)).rejects.toThrow(/ECONNREFUSED/);
    expect(redirectTarget('/x', 'host.example', { httpsPort: 443 })).toBe('https://host.example/x');
    expect(redirectTarget('http://other.example/y?z=1', undefined, { publicUrl: PUBLIC, httpsPort: 1 })).toBe(
      `${PUBLIC}/y?z=1`,
    );
  });
});

describe('plain HTTP behind a TLS-terminating proxy (loopback listener, OAuth on)', () => {
  let server: HttpServer;
  let base: string;
  let cleanup: () => void;
  let logText = '';

  beforeAll(async () => {
    const dir = tempDir('mcp-pa-proxy-');
    cleanup = dir.cleanup;
    const configFile = path.join(dir.dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        mode: 'http',
        data_dir: dir.dir,
        server: {
          host: '127.0.0.1',
          port: 0,
          tls_required: false,
          trust_proxy: [PROXY],
          public_url: PUBLIC,
        },
        authentication: { secret_key: TEST_SECRET },
        features: { vector_search: false },
      }),
    );
    const { config } = loadConfig({ env: {}, configFile, mode: 'http' });
    const logger = createLogger(
      'info',
      new Writable({
        write(chunk: Buffer, _enc, done) {
          logText += chunk.toString('utf8');
          done();
        },
      }),
    );
    server = await startHttpServer(config, logger, { notice: () => undefined });
    base = server.url;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    cleanup?.();
  });

  const proxied = (
    pathname: string,
    proto: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ) =>
    plain(`${base}${pathname}`, {
      ...init,
      localAddress: PROXY,
      headers: {
        host: 'pa.example.test',
        'x-forwarded-proto': proto,
        'x-forwarded-for': '198.51.100.7',
        ...init.headers,
      },
    });

  it('starts, with a warning, and serves plain HTTP only to the proxy', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.plan.warnings.join('\n')).toContain('behind the TLS-terminating proxies 127.0.0.2');
    expect(logText).toContain('behind the TLS-terminating proxies');
    // Straight from an untrusted peer: plain HTTP is refused — also when it claims to be behind https.
    const spoofed: Record<string, string> = {
      'x-forwarded-proto': 'https',
      'x-forwarded-for': '198.51.100.7',
    };
    for (const headers of [{}, spoofed]) {
      const res = await plain(`${base}/.well-known/oauth-authorization-server`, {
        headers: { host: 'pa.example.test', ...headers },
        localAddress: '127.0.0.1',
      });
      expect(res.status).toBe(403);
      expect(errorOf(res).error_description).toContain('only through its trusted proxies');
      expect(res.headers['strict-transport-security']).toBeUndefined();
    }
    const probe = await plain(`${base}/healthz`, { localAddress: '127.0.0.1' });
    expect(probe.status).toBe(200);
    expect(probe.headers['x-content-type-options']).toBe('nosniff');
    // Through the proxy, from plain https.
    expect((await proxied('/oauth/jwks', 'http')).status).toBe(403);
    const meta = await proxied('/.well-known/oauth-authorization-server', 'https');
    expect(meta.status).toBe(200);
    const doc = JSON.parse(meta.text) as Record<string, string>;
    expect(doc['issuer']).toBe(PUBLIC);
    expect(doc['token_endpoint']).toBe(`${PUBLIC}/oauth/token`);
    expect(meta.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('the authorization server treats proxied requests as HTTPS: Secure cookies, https URLs', async () => {
    const reg = await proxied('/oauth/register', 'https', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' }),
    });
    expect(reg.status, reg.text).toBe(201);
    const reg2 = JSON.parse(reg.text) as Record<string, string>;
    expect(reg2['registration_client_uri']).toMatch(/^https:\/\/pa\.example\.test\/oauth\/register\//);
    const { challenge } = await pkcePair();
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: String(reg2['client_id']),
      redirect_uri: 'http://127.0.0.1:51004/cb',
      scope: 'pa.read',
      state: 'S',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    const az = await proxied(`/oauth/authorize?${query}`, 'https');
    expect(az.status, az.text.slice(0, 300)).toBe(303);
    expect(String(az.headers.location)).toMatch(/^\/oauth\/interaction\/[\w-]+$/);
    const cookies = az.headers['set-cookie'] ?? [];
    expect(cookies.length).toBeGreaterThan(0);
    for (const line of cookies) expect(line, line).toMatch(/;\s*secure/i);
    // The sign-in page through the proxy.
    const jar = new Jar((url, init) =>
      plain(url, {
        ...init,
        localAddress: PROXY,
        headers: { host: 'pa.example.test', 'x-forwarded-proto': 'https', ...init.headers },
      }),
    );
    const accounts = new AccountStore(server.store);
    await accounts.create('proxied-user', 'proxied-password-123');
    const page = await jar.request(`${base}/account/apps`);
    expect(page.status).toBe(200);
    const csrf = parseForms(page.text)[0]?.fields.get('csrf') as string;
    const signedIn = await jar.request(`${base}/account/login`, {
      form: { csrf, username: 'proxied-user', password: 'proxied-password-123' },
    });
    expect(signedIn.status).toBe(303);
    expect(jar.setCookies.every((line) => /;\s*secure/i.test(line))).toBe(true);
  });
});
