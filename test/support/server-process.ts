/**
 * `mcp-pa serve` as a separate operating-system process, the way it is deployed: the built CLI with a configuration
 * file and a certificate from the test CA, on 127.0.0.1. For tests that need what an in-process server cannot give:
 * `kill -9` in the middle of work, a restart on the same address (so the issuer and tokens stay valid), and several
 * replicas on one database. Plus a headless OAuth flow against any such origin (DCR public client, PKCE, sign-in and
 * consent through the real forms, token exchange).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import path from 'node:path';
import { openAdminStore } from '../../src/admin/store.js';
import { AccountStore } from '../../src/auth/accounts.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { Browser, pkcePair, TEST_SECRET, type SecretWatch } from '../auth/oauth-fixture.js';
import { testCa } from '../servers/http-app-fixture.js';
import { CLI, tempDir } from './helpers.js';
import { httpsFetch, type TestCa } from './https.js';

export interface ServerProcessOptions {
  /** MCP_* variables, e.g. MCP_DATABASE_URL and MCP_REDIS_URL; without MCP_DATABASE_URL: PGlite in the data folder. */
  readonly env?: Record<string, string>;
  /** Configuration file content, merged over the defaults (server, authentication and features merged one level). */
  readonly config?: Record<string, unknown>;
  /** A data folder to use (kept between restarts; removed by close() only when created here). */
  readonly dataDir?: string;
  /** Log level of the child (default info). */
  readonly logLevel?: string;
  /** Accounts created (`mcp-pa users add`) before the first start — the way to add users on PGlite. */
  readonly users?: readonly string[];
  /**
   * Create `users` through the account store `mcp-pa users add` uses (same configuration, same database, same
   * password hashing), opened once in this process, instead of one admin process per user: on PGlite each such
   * process opens the database, which takes seconds on a busy machine (for tests with many accounts).
   */
  readonly usersInProcess?: boolean;
}

export interface ServerProcess {
  /** https://127.0.0.1:PORT (the port stays the same across restarts). */
  readonly origin: string;
  /** origin + /mcp, or public_url + /mcp when one is configured. */
  readonly resource: string;
  /** The issuer: public_url when configured, else the origin. */
  readonly issuer: string;
  readonly port: number;
  readonly ca: TestCa;
  readonly dataDir: string;
  readonly configFile: string;
  /** The accounts of options.users, with their generated passwords. */
  readonly users: ReadonlyMap<string, { readonly username: string; readonly password: string }>;
  /** fetch trusting the test CA. */
  readonly fetch: typeof fetch;
  /** Everything the current and earlier runs wrote to stderr (JSON log lines). */
  logs(): string;
  /** The process id of the current run. */
  pid(): number | undefined;
  /** True while the current run has not exited. */
  running(): boolean;
  /** SIGKILL: no shutdown hook runs. Resolves when the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit (graceful shutdown); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Starts again on the same port and data folder; resolves when it logs "http server ready". */
  restart(): Promise<void>;
  /** Runs an admin command (`mcp-pa users add …`) with the same configuration and environment. */
  admin(args: string[], input?: string): { code: number | null; stdout: string; stderr: string };
  /** Stops the process (SIGKILL if it does not stop within 10 s) and removes what was created here. */
  close(): Promise<void>;
}

const READY = /^.*"msg":"http server ready".*$/m;

/** Starts `mcp-pa serve` in a child process and waits until it is ready (60 s at most). */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const ca = await testCa();
  const cert = await ca.issue();
  const own = options.dataDir ? null : tempDir('mcp-pa-proc-');
  const dataDir = options.dataDir ?? own!.dir;
  const files = tempDir('mcp-pa-proc-files-');
  const certFile = path.join(files.dir, 'cert.pem');
  const keyFile = path.join(files.dir, 'key.pem');
  const caFile = path.join(files.dir, 'ca.pem');
  writeFileSync(certFile, cert.cert);
  writeFileSync(keyFile, cert.key, { mode: 0o600 });
  writeFileSync(caFile, ca.cert);
  const configFile = path.join(files.dir, 'config.json');
  const extra = options.config ?? {};
  const section = (name: string): object => (extra[name] as object | undefined) ?? {};
  const writeConfig = (port: number): void =>
    writeFileSync(
      configFile,
      JSON.stringify({
        mode: 'http',
        data_dir: dataDir,
        ...extra,
        server: { host: '127.0.0.1', port, tls_cert: certFile, tls_key: keyFile, ...section('server') },
        authentication: { secret_key: TEST_SECRET, metadata_fetch_ca: caFile, ...section('authentication') },
        features: { vector_search: false, ...section('features') },
      }),
    );
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    HOME: files.dir,
    MCP_LOG_LEVEL: options.logLevel ?? 'info',
    NODE_EXTRA_CA_CERTS: caFile,
    ...options.env,
  };

  let child: ChildProcessWithoutNullStreams | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  let alive = false;
  let all = '';
  let current = '';

  const launch = async (port: number): Promise<number> => {
    writeConfig(port);
    current = '';
    const proc = spawn(process.execPath, [CLI, 'serve', '--config', configFile], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = proc;
    alive = true;
    proc.stdout.resume();
    proc.stderr.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      all += text;
      current += text;
    });
    exited = new Promise((resolve) =>
      proc.once('exit', (code) => {
        alive = false;
        resolve(code);
      }),
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      const m = current.match(READY);
      if (m) return Number(new URL((JSON.parse(m[0]) as { url: string }).url).port);
      if (!alive) throw new Error(`mcp-pa serve exited before it was ready:\n${current}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mcp-pa serve was not ready within 60 s:\n${current}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const admin = (args: string[], input = ''): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--config', configFile], {
      env,
      input,
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.error) throw r.error;
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const users = new Map<string, { username: string; password: string }>();
  let port: number;
  try {
    writeConfig(0);
    if (options.usersInProcess && (options.users?.length ?? 0) > 0) {
      const { config } = loadConfig({ env, configFile, mode: 'http' });
      const store = await openAdminStore(config, createLogger('silent'));
      try {
        const accounts = new AccountStore(store);
        for (const username of options.users ?? []) {
          const password = `pw-${randomBytes(12).toString('base64url')}`;
          await accounts.create(username, password);
          users.set(username, { username, password });
        }
      } finally {
        await store.close();
      }
    }
    for (const username of options.usersInProcess ? [] : (options.users ?? [])) {
      const password = `pw-${randomBytes(12).toString('base64url')}`;
      const r = admin(['users', 'add', username], `${password}\n`);
      if (r.code !== 0) throw new Error(`users add ${username} failed (${r.code}): ${r.stderr}`);
      users.set(username, { username, password });
    }
    port = await launch(0);
  } catch (err) {
    // A start that fails (e.g. on purpose, with a wrong setting) leaves no folder behind.
    files.cleanup();
    own?.cleanup();
    throw err;
  }
  const origin = `https://127.0.0.1:${port}`;
  const publicUrl = (section('server') as { public_url?: string }).public_url?.replace(/\/$/, '');
  const issuer = publicUrl ?? origin;
  const agent = new Agent({ keepAlive: false, ca: ca.cert });

  const kill = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (alive) child?.kill(signal);
    return exited;
  };

  return {
    origin,
    issuer,
    resource: `${issuer}/mcp`,
    port,
    ca,
    dataDir,
    configFile,
    fetch: httpsFetch(ca.cert, agent),
    logs: () => all,
    pid: () => child?.pid,
    running: () => alive,
    async kill9() {
      await kill('SIGKILL');
    },
    stop: () => kill('SIGTERM'),
    async restart() {
      if (alive) throw new Error('restart() while the server is still running');
      await launch(port);
    },
    users,
    admin,
    async close() {
      if (alive) {
        child?.kill('SIGTERM');
        const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      agent.destroy();
      files.cleanup();
      own?.cleanup();
    },
  };
}

export interface HeadlessTokens {
  readonly clientId: string;
  readonly accessToken: string;
  readonly refreshToken: string;
}

/**
 * The whole OAuth flow a public native client runs, without a browser window: registers a client (RFC 7591),
 * signs in and consents through the real forms, exchanges the code with its PKCE verifier for the resource.
 * `registerAt`, `authorizeAt` and `tokenAt` pick the replica of each step (default: origin), so a flow can span two
 * replicas. Throws when a step fails: the registration is not 201, the authorization does not come back to the
 * redirect URI with a code and the state sent, or the token exchange is not 200.
 */
export async function headlessTokens(target: {
  readonly origin: string;
  readonly resource: string;
  readonly ca: TestCa;
  readonly user: { readonly username: string; readonly password: string };
  readonly clientName?: string;
  readonly scope?: string;
  /** Where the registration, the authorization and the token request go (default all to origin). */
  readonly registerAt?: string;
  readonly authorizeAt?: string;
  readonly tokenAt?: string;
  /**
   * The redirect URI of the authorization request and the token exchange (default: the one registered,
   * http://127.0.0.1/cb); a loopback one with a port matches the registered one on any port (RFC 8252 §7.3).
   */
  readonly redirectUri?: string;
  /** false: the token request names no resource (the one of the authorization applies). Default true. */
  readonly tokenResource?: boolean;
  /**
   * Records every secret of the flow (what the registration returns, the password and what the sign-in pages hand
   * out, the code, the PKCE verifier, the tokens), so that an OAuth fixture can prove none reached its log.
   */
  readonly watch?: SecretWatch;
  /** Extra headers of the token request, given its URL (e.g. a DPoP proof, RFC 9449 §5). */
  readonly tokenHeaders?: (url: string) => Promise<Record<string, string>>;
}): Promise<HeadlessTokens> {
  const fetchImpl = httpsFetch(target.ca.cert);
  const registered = 'http://127.0.0.1/cb';
  const redirectUri = target.redirectUri ?? registered;
  const registerAt = target.registerAt ?? target.origin;
  const reg = await fetchImpl(`${registerAt}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [registered],
      client_name: target.clientName ?? 'Headless test client',
      token_endpoint_auth_method: 'none',
    }),
  });
  const regText = await reg.text();
  target.watch?.fromJson(regText);
  const client = JSON.parse(regText) as Record<string, unknown>;
  if (reg.status !== 201) throw new Error(`registration failed: ${reg.status} ${JSON.stringify(client)}`);
  const clientId = String(client['client_id']);
  const { verifier, challenge } = await pkcePair();
  const state = randomBytes(8).toString('hex');
  const authorizeAt = target.authorizeAt ?? target.origin;
  const az = new URL(`${authorizeAt}/oauth/authorize`);
  az.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: target.scope ?? 'pa.read pa.write',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: target.resource,
  }).toString();
  const done = await new Browser(target.ca.cert, target.watch).authorize(az.href, authorizeAt, target.user);
  if (!done.location?.startsWith(`${redirectUri}?`))
    throw new Error(
      `authorization did not come back to ${redirectUri}: ${done.res.status} ${String(done.location)} ` +
        done.res.text.slice(0, 300),
    );
  const back = new URL(done.location);
  const code = back.searchParams.get('code');
  if (!code || back.searchParams.get('state') !== state) throw new Error(`no code in ${done.location}`);
  target.watch?.add('code', code);
  target.watch?.add('code_verifier', verifier);
  const tokenAt = target.tokenAt ?? target.origin;
  const res = await fetchImpl(`${tokenAt}/oauth/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(await target.tokenHeaders?.(`${tokenAt}/oauth/token`)),
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: clientId,
      ...(target.tokenResource === false ? {} : { resource: target.resource }),
    }).toString(),
  });
  const tokenText = await res.text();
  target.watch?.fromJson(tokenText);
  const tokens = JSON.parse(tokenText) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`token exchange failed: ${res.status} ${JSON.stringify(tokens)}`);
  return {
    clientId,
    accessToken: String(tokens['access_token']),
    refreshToken: String(tokens['refresh_token']),
  };
}

/**
 * Rotates a refresh token (the old one stops working); returns the new pair. `fetchImpl` (default: a new
 * keep-alive `httpsFetch` for the CA) lets a caller that refreshes often reuse its own connections.
 */
export async function refreshTokens(
  target: { readonly origin: string; readonly resource: string; readonly ca: TestCa },
  clientId: string,
  refreshToken: string,
  fetchImpl: typeof fetch = httpsFetch(target.ca.cert),
): Promise<HeadlessTokens> {
  const res = await fetchImpl(`${target.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: clientId,
      resource: target.resource,
    }).toString(),
  });
  const tokens = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`refresh failed: ${res.status} ${JSON.stringify(tokens)}`);
  return {
    clientId,
    accessToken: String(tokens['access_token']),
    refreshToken: String(tokens['refresh_token']),
  };
}

/** A short, stable label for a token in test output (never the token itself). */
export function tokenLabel(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 10);
}
