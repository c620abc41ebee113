/**
 * A real HTTP-mode server with OAuth on for tests: the production composition (startHttpServer: preflight, TLS
 * files, store, authorization server, resource server) on 127.0.0.1 with a certificate from the test CA, on
 * PGlite (default) or a real PostgreSQL database. Plus a headless "browser" (a cookie jar over HTTPS that
 * follows nothing by itself) that signs in and consents by submitting the real forms.
 */
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { startHttpServer, type HttpServer } from '../../src/servers/http-server.js';
import { AccountStore } from '../../src/auth/accounts.js';
import type { PostgresStore } from '../../src/storage/postgres/index.js';
import { tempDir } from '../support/helpers.js';
import { httpsFetch, rawRequest, type RawResponse, type TestCa } from '../support/https.js';
import { testCa } from '../servers/http-app-fixture.js';

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

export interface OAuthFixtureOptions {
  /** Extra environment variables (MCP_*), e.g. MCP_DATABASE_URL for a real server. */
  readonly env?: Record<string, string>;
  /** Extra configuration (JSON file content), merged over the defaults. */
  readonly config?: Record<string, unknown>;
}

export interface OAuthFixture {
  readonly server: HttpServer;
  /** https://127.0.0.1:PORT — the issuer. */
  readonly origin: string;
  readonly issuer: string;
  /** https://127.0.0.1:PORT/mcp — the canonical MCP URI (the resource). */
  readonly resource: string;
  readonly ca: TestCa;
  /** fetch trusting the test CA (no cookies, redirects followed only if the caller asks). */
  readonly fetch: typeof fetch;
  /** A second handle on the same database (as the server sees it). */
  readonly store: PostgresStore;
  readonly accounts: AccountStore;
  readonly dataDir: string;
  /** Everything the server logged (JSON lines). */
  logs(): string;
  /** Creates a user (random name unless given); returns the credentials. */
  addUser(username?: string, password?: string): Promise<TestUser>;
  /** A new cookie jar. */
  browser(): Browser;
  /** Every secret the tests handled through this fixture (checked against the logs on close). */
  readonly secrets: SecretWatch;
  /** RFC 7591 registration; returns the response body (client_id, client_secret, registration_access_token…). */
  register(metadata: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface TestUser {
  readonly id: string;
  readonly username: string;
  readonly password: string;
}

let userCounter = 0;

export async function startOAuthFixture(options: OAuthFixtureOptions = {}): Promise<OAuthFixture> {
  const ca = await testCa();
  const cert = await ca.issue();
  const dir = tempDir('mcp-pa-oauth-');
  const certFile = path.join(dir.dir, 'cert.pem');
  const keyFile = path.join(dir.dir, 'key.pem');
  const caFile = path.join(dir.dir, 'ca.pem');
  writeFileSync(certFile, cert.cert);
  writeFileSync(keyFile, cert.key, { mode: 0o600 });
  writeFileSync(caFile, ca.cert);
  const configFile = path.join(dir.dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      mode: 'http',
      data_dir: dir.dir,
      ...options.config,
      server: {
        host: '127.0.0.1',
        port: 0,
        tls_cert: certFile,
        tls_key: keyFile,
        ...(options.config?.['server'] as object),
      },
      authentication: {
        secret_key: TEST_SECRET,
        metadata_fetch_ca: caFile,
        ...(options.config?.['authentication'] as object),
      },
      features: { vector_search: false, ...(options.config?.['features'] as object) },
      logging: { level: 'debug' },
    }),
  );
  const { config } = loadConfig({ env: { ...options.env }, configFile, mode: 'http' });
  let logText = '';
  const logger = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logText += chunk.toString('utf8');
        done();
      },
    }),
  );
  const server = await startHttpServer(config, logger, { notice: () => undefined });
  const agent = new Agent({ keepAlive: true, ca: ca.cert });
  const watch = new SecretWatch();
  const baseFetch = httpsFetch(ca.cert, agent);
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    watch.fromRequest(init?.headers, init?.body);
    const res = await baseFetch(input, init);
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      void res
        .clone()
        .text()
        .then((text) => watch.fromJson(text))
        .catch(() => undefined);
    }
    return res;
  }) as typeof fetch;
  const origin = server.url;
  // The server's own database handle (PGlite allows one user of its folder).
  const store = server.store;
  const accounts = new AccountStore(store);

  const fixture: OAuthFixture = {
    server,
    origin,
    issuer: origin,
    resource: `${origin}/mcp`,
    ca,
    fetch: fetchImpl,
    store,
    accounts,
    dataDir: dir.dir,
    logs: () => logText,
    async addUser(username, password) {
      userCounter += 1;
      const name = username ?? `user${userCounter}-${Math.random().toString(36).slice(2, 8)}`;
      const pw = password ?? `pw-${Math.random().toString(36).slice(2)}-long-enough`;
      watch.add('password', pw);
      const account = await fixture.accounts.create(name, pw);
      return { id: account.id, username: account.username, password: pw };
    },
    browser: () => new Browser(ca.cert, watch),
    secrets: watch,
    async register(metadata) {
      const res = await fetchImpl(`${origin}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(metadata),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    async close() {
      agent.destroy();
      await server.close();
      dir.cleanup();
      // No password, token, code or secret a test handled may appear in anything the server logged.
      const leaks = watch.leaks(logText);
      if (leaks.length > 0) {
        throw new Error(`secrets reached the server log: ${leaks.join(', ')}`);
      }
    },
  };
  return fixture;
}

/** A cookie jar making raw HTTPS requests; redirects are returned, not followed. */
export class Browser {
  private readonly cookies = new Map<string, string>();

  constructor(
    private readonly ca: string,
    private readonly watch?: SecretWatch,
  ) {}

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Raw Set-Cookie lines seen so far (for attribute checks). */
  readonly setCookies: string[] = [];

  async request(
    url: string,
    init: { method?: string; headers?: Record<string, string>; form?: Record<string, string> } = {},
  ): Promise<RawResponse> {
    const headers: Record<string, string> = { ...init.headers };
    const cookie = this.cookieHeader();
    if (cookie) headers['cookie'] = cookie;
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const u = new URL(url);
    headers['host'] ??= u.host;
    this.watch?.fromRequest(headers, body);
    const res = await rawRequest(url, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      ...(body !== undefined ? { body } : {}),
      ca: this.ca,
    });
    if (typeof res.headers.location === 'string') this.watch?.fromLocation(res.headers.location);
    this.watch?.fromJson(res.text);
    const set = res.headers['set-cookie'] ?? [];
    for (const line of set) {
      this.setCookies.push(line);
      const [pair] = line.split(';');
      const eq = (pair ?? '').indexOf('=');
      if (eq < 1) continue;
      const name = (pair as string).slice(0, eq).trim();
      const value = (pair as string).slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** Follows redirects within `origin` with GET until a response that is not a redirect, or one leaving it. */
  async follow(url: string, origin: string, max = 10): Promise<{ res: RawResponse; url: string }> {
    let current = url;
    for (let i = 0; i < max; i++) {
      const res = await this.request(current);
      const location = res.headers.location;
      if (res.status < 300 || res.status >= 400 || !location) return { res, url: current };
      const next = new URL(location, current).href;
      if (new URL(next).origin !== origin) return { res, url: current };
      current = next;
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /**
   * Runs an authorization request to its end: follows to the login page, signs in, consents (when asked), and
   * returns the final redirect to the client (its Location, not fetched), or the page where it stopped.
   */
  async authorize(
    authorizeUrl: string,
    origin: string,
    user: { username: string; password: string } | null,
    choice: 'allow' | 'deny' = 'allow',
  ): Promise<{ location?: string; res: RawResponse; consentPage?: string }> {
    let { res, url } = await this.follow(authorizeUrl, origin);
    let consentPage: string | undefined;
    for (let step = 0; step < 4; step++) {
      const location = res.headers.location;
      if (location && res.status >= 300 && res.status < 400) {
        return { location: new URL(location, url).href, res, ...(consentPage ? { consentPage } : {}) };
      }
      if (res.status !== 200 || !/<form/.test(res.text))
        return { res, ...(consentPage ? { consentPage } : {}) };
      const forms = parseForms(res.text);
      const login = forms.find((f) => f.fields.has('password') || /\/login$/.test(f.action));
      let target: ParsedForm | undefined;
      const fields: Record<string, string> = {};
      if (login) {
        if (!user) return { res };
        target = login;
        fields['username'] = user.username;
        fields['password'] = user.password;
      } else {
        consentPage = res.text;
        target = forms.find((f) => (choice === 'allow' ? /\/consent$/ : /\/deny$/).test(f.action));
        if (!target) return { res, consentPage };
      }
      for (const [k, v] of target.fields) if (!(k in fields)) fields[k] = v;
      const posted = await this.request(new URL(target.action, url).href, {
        form: fields,
        headers: { origin },
      });
      const next = posted.headers.location;
      if (posted.status !== 303 || !next) return { res: posted, ...(consentPage ? { consentPage } : {}) };
      const nextUrl = new URL(next, url).href;
      if (new URL(nextUrl).origin !== origin)
        return { location: nextUrl, res: posted, ...(consentPage ? { consentPage } : {}) };
      ({ res, url } = await this.follow(nextUrl, origin));
    }
    return { res, ...(consentPage ? { consentPage } : {}) };
  }
}

export interface ParsedForm {
  readonly action: string;
  readonly fields: Map<string, string>;
}

function unescapeHtml(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** The forms of a page (action and hidden/named inputs with their values). */
export function parseForms(html: string): ParsedForm[] {
  const out: ParsedForm[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const action = /action="([^"]*)"/.exec(m[1] ?? '')?.[1] ?? '';
    const fields = new Map<string, string>();
    for (const input of (m[2] ?? '').matchAll(/<input\b([^>]*)>/g)) {
      const attrs = input[1] ?? '';
      const name = /name="([^"]*)"/.exec(attrs)?.[1];
      if (!name) continue;
      fields.set(unescapeHtml(name), unescapeHtml(/value="([^"]*)"/.exec(attrs)?.[1] ?? ''));
    }
    out.push({ action: unescapeHtml(action), fields });
  }
  return out;
}

/** PKCE pair (S256). */
export async function pkcePair(): Promise<{ verifier: string; challenge: string }> {
  const { randomBytes, createHash } = await import('node:crypto');
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

const SECRET_FIELDS = new Set([
  'password',
  'client_secret',
  'access_token',
  'refresh_token',
  'id_token',
  'registration_access_token',
  'code',
  'code_verifier',
  'client_assertion',
  'token',
]);

/**
 * The secrets a test handled — passwords it set, tokens and codes the server handed out, client secrets and
 * assertions it sent — so that the fixture can prove none of them reached the server's log.
 */
export class SecretWatch {
  private readonly seen = new Map<string, string>();

  add(kind: string, value: unknown): void {
    if (typeof value === 'string' && value.length >= 8) this.seen.set(value, kind);
  }

  fromJson(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v !== null && typeof v === 'object') {
        for (const [k, inner] of Object.entries(v)) {
          if (SECRET_FIELDS.has(k)) this.add(k, inner);
          else walk(inner);
        }
      }
    };
    walk(parsed);
  }

  fromForm(body: string): void {
    for (const [k, v] of new URLSearchParams(body)) if (SECRET_FIELDS.has(k)) this.add(k, v);
  }

  fromRequest(headers: ConstructorParameters<typeof Headers>[0], body: unknown): void {
    const auth = new Headers(headers).get('authorization');
    if (auth) {
      const [scheme, value = ''] = auth.split(' ');
      if (/^basic$/i.test(scheme ?? '')) {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        this.add('client_secret', decoded.slice(decoded.indexOf(':') + 1));
      } else this.add('access_token', value);
    }
    if (typeof body === 'string') {
      if (body.trimStart().startsWith('{')) this.fromJson(body);
      else this.fromForm(body);
    }
  }

  fromLocation(location: string): void {
    try {
      const url = new URL(location, 'https://x.invalid');
      this.fromForm(url.search.slice(1));
      this.fromForm(url.hash.slice(1));
    } catch {
      // not a URL
    }
  }

  /** The kinds of secret found in `text` (one entry per leaked value, with its first characters). */
  leaks(text: string): string[] {
    const out: string[] = [];
    for (const [value, kind] of this.seen)
      if (text.includes(value)) out.push(`${kind} ${value.slice(0, 4)}…`);
    return out;
  }

  get size(): number {
    return this.seen.size;
  }
}

/** The JSON-RPC messages of an /mcp answer: its JSON body, or the data lines of its SSE stream. */
export function mcpMessages(res: RawResponse): Record<string, unknown>[] {
  const type = String(res.headers['content-type'] ?? '');
  if (type.includes('text/event-stream')) {
    return res.text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim())
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  if (res.json !== null && typeof res.json === 'object') {
    return Array.isArray(res.json)
      ? (res.json as Record<string, unknown>[])
      : [res.json as Record<string, unknown>];
  }
  return [];
}

/** An MCP initialize request to the fixture's /mcp with the given access token (the body read, the answer kept). */
export async function mcpInitialize(
  fx: OAuthFixture,
  accessToken: string,
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fx.fetch(fx.resource, {
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
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}
