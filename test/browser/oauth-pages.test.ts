/**
 * The OAuth pages in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core) against the
 * production HTTP server of test/auth/oauth-fixture.ts. A public client registers itself (DCR) with a loopback
 * redirect URI on which this test listens; Chromium opens the authorization request (PKCE S256, resource
 * indicator), the user types their name and password on the sign-in page and clicks Allow on the consent page, and
 * the browser lands on the client's callback with a code and the same state. The code gives tokens that work at
 * /mcp. Then the user opens the connected-apps page, sees the client by name, clicks Revoke, and the client is gone
 * from the page and its access and refresh tokens are refused.
 *
 * Along the way: the pages work under their real Content-Security-Policy (the embedded stylesheet applies, no CSP
 * violation event and no console error — with a control proving the detectors see a violation), and the cookies as
 * Chromium holds them are Secure, HttpOnly and SameSite=Lax (`__Host-` ones host-only on Path=/).
 *
 * Chromium trusts exactly the server's certificate: the SHA-256 of its public key (SPKI) is passed in
 * --ignore-certificate-errors-spki-list, not a blanket "ignore HTTPS errors"; another certificate from the same test
 * CA is still refused.
 *
 * Screenshots of the three pages go to docs/images/ when MCP_PA_UPDATE_SCREENSHOTS=1, to a temporary folder
 * otherwise (checked to be PNGs of the viewport's width).
 *
 * Without Chromium (a fresh development machine) the suite is skipped with a message; in CI (env CI set), where
 * .ci/run installs it, its absence fails instead.
 */
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'node:tls';
import { chromium, type BrowserContext, type Cookie, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mcpInitialize,
  pkcePair,
  startOAuthFixture,
  type OAuthFixture,
  type TestUser,
} from '../auth/oauth-fixture.js';
import { ROOT } from '../support/helpers.js';

const CHROMIUM = process.env['MCP_PA_TEST_CHROMIUM'] || '/usr/bin/chromium';
const CI = process.env['CI'];
const IN_CI = CI !== undefined && CI !== '' && CI !== 'false' && CI !== '0';
const UPDATE_SCREENSHOTS = process.env['MCP_PA_UPDATE_SCREENSHOTS'] === '1';
const VIEWPORT = { width: 900, height: 700 } as const;
const CLIENT_NAME = 'Example MCP client';
/** Upper bound for a revocation to reach both token kinds (the documented figure is about a second). */
const REVOKE_WITHIN_MS = 3000;
/** The server (PGlite migrations) and Chromium start in the same hook; both are slow on a busy 2-core machine. */
const SETUP_TIMEOUT_MS = 110_000;

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const HAVE_CHROMIUM = executable(CHROMIUM);
const suite = HAVE_CHROMIUM || IN_CI ? describe : describe.skip;
const title =
  HAVE_CHROMIUM || IN_CI
    ? 'OAuth pages in headless Chromium: sign-in, consent, connected apps, revoke'
    : `OAuth pages in headless Chromium — SKIPPED: ${CHROMIUM} is not installed here (apt-get install chromium; CI installs it and fails without it)`;

/** base64 SHA-256 of the SubjectPublicKeyInfo of the certificate the server presents (Chromium's SPKI pin format). */
function servedSpkiHash(origin: string, caPem: string): Promise<string> {
  const url = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), ca: caPem }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (!cert) return reject(new Error('the server presented no certificate'));
      const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
      resolve(createHash('sha256').update(spki).digest('base64'));
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.on('error', reject);
  });
}

function listen(server: HttpServer | HttpsServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: HttpServer | HttpsServer | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** PNG signature, then the IHDR chunk's width and height. */
function pngSize(file: string): { width: number; height: number; bytes: number } {
  const data = readFileSync(file);
  expect(data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(
    true,
  );
  expect(data.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20), bytes: data.length };
}

async function tokenRequest(fx: OAuthFixture, form: Record<string, string>): Promise<Response> {
  return fx.fetch(`${fx.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
  });
}

/** The first JSON-RPC message of an /mcp answer (a JSON body, or the first data line of an SSE stream). */
function firstMessage(text: string, contentType: string): Record<string, unknown> {
  const json = contentType.includes('text/event-stream')
    ? (text
        .split('\n')
        .find((l) => l.startsWith('data:') && l.slice(5).trim() !== '')
        ?.slice(5) ?? 'null')
    : text;
  const parsed: unknown = JSON.parse(json);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error(`not one JSON-RPC message: ${text.slice(0, 200)}`);
  return parsed as Record<string, unknown>;
}

/**
 * The few browser globals the in-page functions use (the project compiles without the DOM library; these functions
 * run in Chromium, and the type is erased).
 */
interface BrowserGlobals {
  readonly document: {
    addEventListener(
      type: 'securitypolicyviolation',
      listener: (e: { effectiveDirective: string; blockedURI: string; documentURI: string }) => void,
    ): void;
    createElement(tag: 'style'): { textContent: string | null };
    readonly head: { append(node: unknown): void };
    readonly body: unknown;
  };
  getComputedStyle(element: unknown): { readonly backgroundColor: string };
  __mcpPaCspViolation(report: string): Promise<void>;
}

interface Tokens {
  readonly access_token: string;
  readonly refresh_token: string;
}

suite(title, () => {
  let fx: OAuthFixture;
  let user: TestUser;
  let context: BrowserContext;
  let page: Page;
  let callbackServer: HttpServer;
  let strangerServer: HttpsServer | undefined;
  let redirectUri = '';
  let clientId = '';
  let tokens: Tokens | undefined;
  let spkiHash = '';
  let profileDir: string | undefined;
  /** docs/images when updating the screenshots, a temporary folder (removed afterwards) otherwise. */
  let shotDir = path.join(ROOT, 'docs/images');
  let tempShotDir: string | undefined;
  const shots: string[] = [];
  /** Requests that reached the client's loopback redirect URI. */
  const callbacks: URL[] = [];
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];
  /** Every cookie Chromium held for the server at each step (by name and path, as last seen). */
  const cookiesSeen = new Map<string, Cookie>();

  async function recordCookies(): Promise<void> {
    for (const c of await context.cookies()) cookiesSeen.set(`${c.name} ${c.path}`, c);
  }

  async function screenshot(name: string): Promise<void> {
    const file = path.join(shotDir, name);
    await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
    shots.push(file);
  }

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) {
      throw new Error(
        `${CHROMIUM} is not installed; in CI, .ci/run must install it (apt-get install chromium)`,
      );
    }
    callbackServer = createHttpServer((req, res) => {
      const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
      if (url.pathname === '/cb') callbacks.push(url);
      res.writeHead(url.pathname === '/cb' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Client callback</title><p>Signed in. You can close this window.</p>');
    });
    profileDir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-chromium-'));
    if (!UPDATE_SCREENSHOTS) {
      tempShotDir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-screenshots-'));
      shotDir = tempShotDir;
    }
    mkdirSync(shotDir, { recursive: true });
    const callbackPort = await listen(callbackServer);
    redirectUri = `http://127.0.0.1:${callbackPort}/cb`;

    fx = await startOAuthFixture();
    user = await fx.addUser('alice');
    spkiHash = await servedSpkiHash(fx.origin, fx.ca.cert);

    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--ignore-certificate-errors-spki-list=${spkiHash}`,
      ],
      viewport: VIEWPORT,
      deviceScaleFactor: 1,
      colorScheme: 'light',
      locale: 'en-US',
      timeout: 60_000,
    });
    // CSP violations as the document reports them (the binding and the init script are outside the page's CSP).
    await context.exposeBinding('__mcpPaCspViolation', (_source, report: unknown) => {
      cspViolations.push(String(report));
    });
    await context.addInitScript(() => {
      const w = globalThis as unknown as BrowserGlobals;
      w.document.addEventListener('securitypolicyviolation', (e) => {
        void w.__mcpPaCspViolation(
          `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} on ${e.documentURI}`,
        );
      });
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    page.on('console', (msg) => {
      const where = msg.location().url;
      // The server has no favicon; Chromium's own request for it is not the page's doing.
      if (msg.type() !== 'error' || new URL(where || 'about:blank').pathname === '/favicon.ico') return;
      consoleErrors.push(`${msg.text()} (${where})`);
    });
    page.on('pageerror', (err) => pageErrors.push(err.message));
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await closeServer(callbackServer);
    await closeServer(strangerServer);
    if (profileDir !== undefined) rmSync(profileDir, { recursive: true, force: true });
    if (tempShotDir !== undefined) rmSync(tempShotDir, { recursive: true, force: true });
    await fx?.close();
  });

  it('trusts only the server’s own certificate (SPKI pin), not another one from the same test CA', async () => {
    const other = await fx.ca.issue();
    strangerServer = createHttpsServer({ cert: other.cert, key: other.key }, (_req, res) => {
      res.end('should not be reached');
    });
    const port = await listen(strangerServer);
    // In a page of its own: Chromium follows a refused navigation with its error page, asynchronously.
    const probe = await context.newPage();
    const refused = await probe.goto(`https://127.0.0.1:${port}/`).then(
      () => 'loaded',
      (err: unknown) => String(err),
    );
    await probe.close();
    expect(refused).toMatch(/net::ERR_CERT_AUTHORITY_INVALID/);
    await closeServer(strangerServer);
  });

  it('signs in and consents through the real pages; the browser lands on the client callback with a code and the state', async () => {
    const reg = await fx.register({
      client_name: CLIENT_NAME,
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'pa.read pa.write',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    clientId = String(reg.body['client_id']);
    expect(reg.body['client_secret']).toBeUndefined();

    const { verifier, challenge } = await pkcePair();
    const state = randomBytes(12).toString('base64url');
    const az = new URL(`${fx.origin}/oauth/authorize`);
    az.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: 'pa.read pa.write',
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();

    // The sign-in page.
    const first = await page.goto(az.href);
    expect(first?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toMatch(/^\/oauth\/interaction\/[^/]+$/);
    expect(first?.headers()['content-security-policy']).toMatch(/^default-src 'none'; style-src 'sha256-/);
    await expect(page.title()).resolves.toBe('Sign in · mcp-pa');
    await page.getByRole('heading', { name: 'Sign in to mcp-pa' }).waitFor();
    expect(await page.getByText(`to continue to ${CLIENT_NAME}`).count()).toBe(1);
    // The embedded stylesheet applies under the CSP (its hash matches): the button has the accent colour.
    const signIn = page.getByRole('button', { name: 'Sign in' });
    expect(
      await signIn.evaluate(
        (el) => (globalThis as unknown as BrowserGlobals).getComputedStyle(el).backgroundColor,
      ),
    ).toBe('rgb(11, 87, 208)');
    await recordCookies();
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    await screenshot('oauth-login.png');
    await Promise.all([page.waitForURL(/\/oauth\/interaction\/[^/]+$/), signIn.click()]);

    // The consent page.
    await page.getByRole('heading', { name: `${CLIENT_NAME} wants to access your mcp-pa data` }).waitFor();
    await expect(page.title()).resolves.toBe('Allow access? · mcp-pa');
    const consentText = await page.locator('main').innerText();
    expect(consentText).toContain(clientId);
    expect(consentText).toContain('127.0.0.1');
    expect(consentText).toContain('pa.read');
    expect(consentText).toContain('pa.write');
    expect(consentText).toContain('Signed in as alice');
    expect(consentText).toContain('registered recently');
    await recordCookies();
    await screenshot('oauth-consent.png');
    await Promise.all([
      page.waitForURL((url) => url.href.startsWith(`${redirectUri}?`)),
      page.getByRole('button', { name: 'Allow' }).click(),
    ]);

    // The client's callback got the code and the same state.
    expect(callbacks).toHaveLength(1);
    const back = callbacks[0] as URL;
    expect(back.searchParams.get('state')).toBe(state);
    expect(back.searchParams.get('iss')).toBe(fx.issuer);
    expect(back.searchParams.get('error')).toBeNull();
    const code = back.searchParams.get('code') ?? '';
    expect(code.length).toBeGreaterThan(20);
    fx.secrets.add('code', code);
    expect(new URL(page.url()).searchParams.get('code')).toBe(code);
    await recordCookies();

    // The code (with the PKCE verifier) gives tokens, and the access token works at /mcp.
    const tk = await tokenRequest(fx, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: clientId,
    });
    const body = (await tk.json()) as Record<string, unknown>;
    expect(tk.status, JSON.stringify(body)).toBe(200);
    expect(body['token_type']).toBe('Bearer');
    expect(String(body['scope']).split(' ').sort()).toEqual(['pa.read', 'pa.write']);
    tokens = { access_token: String(body['access_token']), refresh_token: String(body['refresh_token']) };
    expect(tokens.refresh_token.length).toBeGreaterThan(20);
    const init = await mcpInitialize(fx, tokens.access_token);
    expect(init.status, init.text).toBe(200);
    const message = firstMessage(init.text, init.headers.get('content-type') ?? '');
    expect((message['result'] as { serverInfo?: { name?: string } } | undefined)?.serverInfo?.name).toBe(
      'mcp-pa',
    );
  });

  it('lists the client on the connected-apps page; Revoke removes it and its tokens stop working', async () => {
    expect(tokens, 'the sign-in test got tokens').toBeDefined();
    const { access_token, refresh_token } = tokens as Tokens;

    // The sign-in above also opened the account session: the page shows the apps straight away.
    const res = await page.goto(`${fx.origin}/account/apps`);
    expect(res?.status()).toBe(200);
    await page.getByRole('heading', { name: 'Connected apps' }).waitFor();
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: CLIENT_NAME }) });
    expect(await row.count()).toBe(1);
    const rowText = await row.innerText();
    expect(rowText).toContain(clientId);
    expect(rowText).toContain('pa.read');
    expect(rowText).toContain('pa.write');
    await recordCookies();
    await screenshot('oauth-connected-apps.png');

    await Promise.all([
      page.waitForURL(`${fx.origin}/account/apps?revoked=1`),
      row.getByRole('button', { name: `Revoke ${CLIENT_NAME}` }).click(),
    ]);
    await page.getByRole('status').filter({ hasText: 'Access revoked.' }).waitFor();
    expect(await page.getByRole('rowheader', { name: CLIENT_NAME }).count()).toBe(0);
    expect(await page.locator('main').innerText()).toContain('No apps are connected to your account.');
    // Reloading shows the same: the grant is gone, not hidden.
    await page.goto(`${fx.origin}/account/apps`);
    expect(await page.getByRole('rowheader', { name: CLIENT_NAME }).count()).toBe(0);
    await recordCookies();

    // Both tokens are refused within the bound.
    const started = Date.now();
    let accessStatus = 0;
    let refreshError: unknown;
    for (;;) {
      if (accessStatus !== 401) accessStatus = (await mcpInitialize(fx, access_token)).status;
      if (refreshError !== 'invalid_grant') {
        const r = await tokenRequest(fx, {
          grant_type: 'refresh_token',
          refresh_token,
          client_id: clientId,
        });
        refreshError = ((await r.json()) as { error?: unknown }).error;
      }
      if (
        (accessStatus === 401 && refreshError === 'invalid_grant') ||
        Date.now() - started > REVOKE_WITHIN_MS
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(accessStatus, `the access token is refused at /mcp within ${REVOKE_WITHIN_MS} ms`).toBe(401);
    expect(refreshError, `the refresh token is refused within ${REVOKE_WITHIN_MS} ms`).toBe('invalid_grant');
  });

  it('runs the pages under their real CSP: no violation, no console error, no page error', async () => {
    expect(cspViolations).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(pageErrors).toEqual([]);

    // Control: the detectors do see a violation. An inline <style> the CSP does not list by hash is refused,
    // reported as a securitypolicyviolation event and as a console error.
    await page.evaluate(() => {
      const { document } = globalThis as unknown as BrowserGlobals;
      const style = document.createElement('style');
      style.textContent = 'body{background:red}';
      document.head.append(style);
    });
    await expect.poll(() => cspViolations.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(cspViolations[0]).toMatch(
      /^style-src-elem blocked inline on https:\/\/127\.0\.0\.1:\d+\/account\/apps/,
    );
    await expect.poll(() => consoleErrors.join('\n'), { timeout: 5000 }).toMatch(/Content Security Policy/);
    expect(
      await page.evaluate(() => {
        const w = globalThis as unknown as BrowserGlobals;
        return w.getComputedStyle(w.document.body).backgroundColor;
      }),
    ).not.toBe('rgb(255, 0, 0)');
  });

  it('keeps its cookies Secure, HttpOnly and SameSite=Lax in the browser (the __Host- ones host-only on /)', () => {
    const ours = [...cookiesSeen.values()].filter((c) => c.domain.replace(/^\./, '') === '127.0.0.1');
    const names = new Set(ours.map((c) => c.name));
    for (const expected of [
      '__Host-pa_csrf',
      '__Host-pa_account',
      '__Host-pa_session',
      '__Secure-pa_interaction',
    ])
      expect(names, `cookie ${expected} was seen`).toContain(expected);
    for (const c of ours) {
      expect({ name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite }).toEqual({
        name: c.name,
        secure: true,
        httpOnly: true,
        sameSite: 'Lax',
      });
      if (c.name.startsWith('__Host-')) {
        expect({ name: c.name, path: c.path, domain: c.domain }).toEqual({
          name: c.name,
          path: '/',
          domain: '127.0.0.1',
        });
      }
    }
  });

  it('saved screenshots of the three pages as PNGs of the viewport width', () => {
    expect(shots.map((f) => path.basename(f))).toEqual([
      'oauth-login.png',
      'oauth-consent.png',
      'oauth-connected-apps.png',
    ]);
    for (const file of shots) {
      const size = pngSize(file);
      expect(size.width).toBe(VIEWPORT.width);
      expect(size.height).toBeGreaterThanOrEqual(VIEWPORT.height);
      expect(size.bytes).toBeGreaterThan(5000);
    }
  });
});
