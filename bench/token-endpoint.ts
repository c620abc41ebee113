/**
 * Token endpoint throughput: authorization-code exchanges and refresh-token grants per second, ours against
 * oidc-provider (the version mcp-pa embeds) with its default in-memory adapter (oidc-baseline-server.ts). Target:
 * ours/theirs ≥ 0.8 for each grant.
 *
 * Ours is the built CLI (`mcp-pa serve`) in a child process with its full security: authentication on, the
 * authorization server's state in the database (embedded PGlite, or PostgreSQL when MCP_PA_BENCH_DATABASE_URL or
 * MCP_PA_TEST_DATABASE_URL names a server: a fresh database is made there and dropped afterwards), rate limits, audit
 * trail, TLS. One user; one public client registered by DCR (PKCE, token_endpoint_auth_method none) with an https
 * redirect URI, as hosted MCP clients have (a client with only loopback redirects is a native app, which the
 * library asks for consent on every authorization; the token endpoint treats both alike). The user signs in once
 * through the real forms and consents; the consent is remembered, so every later authorization request carrying
 * the session cookie redirects straight back with a code. Codes live 60 seconds, so each timed round's
 * batch is made through /oauth/authorize just before the round, untimed.
 *
 * The baseline runs in a child process too, over HTTPS with a certificate from the same CA; its codes are minted
 * directly with the library's models through a bench-only route (same shape: one session and one remembered grant,
 * PKCE S256, the resource), since the sign-in and consent pages are not what is measured.
 *
 * Only the token requests are timed, on both sides: a closed loop of CONCURRENCY keep-alive HTTPS clients, each
 * sending one request after the other; every response must be 200 with a Bearer at+jwt ES256 access token for the
 * resource and a new refresh token, so a server answering errors fast does not win. Code exchanges send the PKCE
 * verifier, redirect_uri and resource; refresh grants run as CONCURRENCY independent chains, each refreshing one
 * after the other (refresh tokens rotate on every use). After a warm-up, rounds alternate which server goes first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Browser } from '../test/auth/oauth-fixture.js';
import { startServerProcess, type ServerProcess } from '../test/support/server-process.js';
import { ROOT } from './cold-start.js';
import { loadResult, type LoadResult } from './http-load.js';
import { heading, isEntry, ms, percentile, quickMode, table } from './lib.js';

const CONCURRENCY = 8;
const SCOPE = 'pa.read pa.write';
const REDIRECT_URI = 'https://client.example.com/callback';
const USER = 'bench';
/** Authorization requests per source address: under the server's 300 per address per minute. */
const AUTHORIZE_PER_ADDRESS = 200;
const TARGET_RATIO = 0.8;

type GrantKind = 'authorization_code' | 'refresh_token';

export interface TokenGrantResult {
  readonly grant: GrantKind;
  readonly ours: readonly LoadResult[];
  readonly theirs: readonly LoadResult[];
  /** Median throughput over the rounds, requests per second. */
  readonly oursPerSecond: number;
  readonly theirsPerSecond: number;
  /** Median of the per-round ratios ours/theirs. */
  readonly ratio: number;
}

export interface TokenEndpointResult {
  readonly grants: readonly TokenGrantResult[];
  readonly concurrency: number;
  readonly rounds: number;
  readonly codesPerRound: number;
  readonly refreshesPerChain: number;
  /** Where ours keeps the authorization server's state. */
  readonly database: string;
  /** Loopback source addresses the untimed authorization requests came from. */
  readonly authorizeAddresses: number;
  /** Milliseconds ours took, on average, to hand out one code through /oauth/authorize (untimed, for context). */
  readonly authorizeMsPerCode: number;
}

interface Code {
  readonly code: string;
  readonly verifier: string;
}

interface Side {
  readonly name: 'ours' | 'theirs';
  readonly origin: string;
  readonly resource: string;
  readonly clientId: string;
  /** `n` fresh authorization codes with their PKCE verifiers. */
  codes(n: number): Promise<Code[]>;
  stop(): Promise<void>;
}

interface Reply {
  readonly status: number;
  readonly text: string;
}

/** One HTTPS request on `agent`, reading the whole answer: a POST of `body` when given, else a GET. */
function send(
  agent: Agent,
  url: string,
  body?: string,
  contentType = 'application/x-www-form-urlencoded',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const options =
      body === undefined
        ? { agent }
        : { method: 'POST', agent, headers: { 'content-type': contentType, accept: 'application/json' } };
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function post(agent: Agent, url: string, body: string, contentType?: string): Promise<Reply> {
  return send(agent, url, body, contentType);
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function jwtPart(token: string, index: 0 | 1): Record<string, unknown> {
  const part = token.split('.')[index];
  if (part === undefined) throw new Error('the access token is not a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Checks a token response fully; returns its refresh token. */
function checkTokens(reply: Reply, side: Side, what: string): string {
  if (reply.status !== 200)
    throw new Error(`${side.name} ${what}: HTTP ${reply.status}: ${reply.text.slice(0, 300)}`);
  const body = JSON.parse(reply.text) as Record<string, unknown>;
  const at = body['access_token'];
  const rt = body['refresh_token'];
  if (typeof at !== 'string' || typeof rt !== 'string' || rt.length === 0) {
    throw new Error(`${side.name} ${what}: no access and refresh token in ${Object.keys(body).join(', ')}`);
  }
  if (body['token_type'] !== 'Bearer' || typeof body['expires_in'] !== 'number') {
    throw new Error(`${side.name} ${what}: unexpected token_type or expires_in`);
  }
  const header = jwtPart(at, 0);
  const payload = jwtPart(at, 1);
  if (header['typ'] !== 'at+jwt' || header['alg'] !== 'ES256') {
    throw new Error(`${side.name} ${what}: access token header ${JSON.stringify(header)}`);
  }
  if (payload['aud'] !== side.resource || payload['client_id'] !== side.clientId) {
    throw new Error(`${side.name} ${what}: access token for ${String(payload['aud'])}`);
  }
  return rt;
}

function exchangeBody(side: Side, c: Code): string {
  return new URLSearchParams({
    grant_type: 'authorization_code',
    code: c.code,
    redirect_uri: REDIRECT_URI,
    code_verifier: c.verifier,
    client_id: side.clientId,
    resource: side.resource,
  }).toString();
}

function refreshBody(side: Side, refreshToken: string): string {
  return new URLSearchParams({
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: side.clientId,
    resource: side.resource,
  }).toString();
}

/**
 * The closed loop: `CONCURRENCY` workers over one keep-alive agent; worker `w` calls `step(w)` until it answers
 * false. Each step is one timed request.
 */
async function closedLoop(
  agent: Agent,
  step: (worker: number, latencies: number[]) => Promise<boolean>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      while (await step(w, latencies));
    }),
  );
  return loadResult(latencies, (performance.now() - started) / 1000);
}

/** Fetches a URL (GET), reading the whole answer. */
function get(agent: Agent, url: string): Promise<Reply> {
  return send(agent, url);
}

/**
 * New keep-alive connections (and TLS handshakes) per round, opened before the clock starts with a request to the
 * JWKS (a failing token request would count against ours' limit of failed token requests per address).
 */
async function warmAgent(side: Side, ca: string): Promise<Agent> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca });
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const r = await get(agent, `${side.origin}/oauth/jwks`);
      if (r.status !== 200) throw new Error(`${side.name}: /oauth/jwks answered ${r.status}`);
    }),
  );
  return agent;
}

async function exchangeRound(side: Side, ca: string, codes: readonly Code[]): Promise<LoadResult> {
  const agent = await warmAgent(side, ca);
  let next = 0;
  try {
    return await closedLoop(agent, async (_w, latencies) => {
      const c = codes[next++];
      if (!c) return false;
      const t = performance.now();
      const reply = await post(agent, `${side.origin}/oauth/token`, exchangeBody(side, c));
      latencies.push(performance.now() - t);
      checkTokens(reply, side, 'code exchange');
      return true;
    });
  } finally {
    agent.destroy();
  }
}

async function refreshRound(side: Side, ca: string, chains: string[], perChain: number): Promise<LoadResult> {
  const agent = await warmAgent(side, ca);
  const done = chains.map(() => 0);
  try {
    return await closedLoop(agent, async (w, latencies) => {
      if ((done[w] as number) >= perChain) return false;
      const t = performance.now();
      const reply = await post(agent, `${side.origin}/oauth/token`, refreshBody(side, chains[w] as string));
      latencies.push(performance.now() - t);
      chains[w] = checkTokens(reply, side, 'refresh');
      done[w] = (done[w] as number) + 1;
      return true;
    });
  } finally {
    agent.destroy();
  }
}

/** Exchanges `n` codes untimed and returns the refresh tokens: the heads of the refresh chains. */
async function startChains(side: Side, ca: string, n: number): Promise<string[]> {
  const agent = new Agent({ keepAlive: true, ca });
  try {
    const codes = await side.codes(n);
    return await Promise.all(
      codes.map(async (c) =>
        checkTokens(
          await post(agent, `${side.origin}/oauth/token`, exchangeBody(side, c)),
          side,
          'first exchange',
        ),
      ),
    );
  } finally {
    agent.destroy();
  }
}

// --- ours ---------------------------------------------------------------------------------------------------------

/** The PostgreSQL server to use instead of PGlite, the way postgres-search.ts and the tests name one. */
function postgresUrl(): string | undefined {
  return process.env['MCP_PA_BENCH_DATABASE_URL'] || process.env['MCP_PA_TEST_DATABASE_URL'] || undefined;
}

async function freshDatabase(admin: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `mcp_pa_bench_token_${process.pid}`;
  const run = async (connectionString: string, sql: string): Promise<void> => {
    const c = new pg.Client({ connectionString });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await run(admin, `CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  await run(url.toString(), 'CREATE EXTENSION IF NOT EXISTS vector').catch(() => undefined);
  return { url: url.toString(), drop: () => run(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

async function startOurs(nodeOptions: string | undefined): Promise<{
  side: Side;
  server: ServerProcess;
  database: string;
  addresses: () => number;
  authorizeMs: () => number;
}> {
  const admin = postgresUrl();
  const db = admin ? await freshDatabase(admin) : undefined;
  const env: Record<string, string> = {};
  if (db) env['MCP_DATABASE_URL'] = db.url;
  if (nodeOptions) env['NODE_OPTIONS'] = nodeOptions;
  let server: ServerProcess;
  try {
    server = await startServerProcess({ users: [USER], usersInProcess: true, env });
  } catch (err) {
    await db?.drop();
    throw err;
  }
  const ca = server.ca.cert;
  const stop = async (): Promise<void> => {
    await server.close();
    await db?.drop();
  };
  try {
    const agent = new Agent({ keepAlive: true, ca });
    const reg = await post(
      agent,
      `${server.origin}/oauth/register`,
      JSON.stringify({
        redirect_uris: [REDIRECT_URI],
        client_name: 'Token endpoint benchmark',
        token_endpoint_auth_method: 'none',
      }),
      'application/json',
    );
    agent.destroy();
    if (reg.status !== 201) throw new Error(`registration failed: ${reg.status} ${reg.text.slice(0, 300)}`);
    const clientId = String((JSON.parse(reg.text) as Record<string, unknown>)['client_id']);
    const user = server.users.get(USER);
    if (!user) throw new Error('the bench user was not created');

    const authorizeUrl = (challenge: string, state: string): string => {
      const u = new URL(`${server.origin}/oauth/authorize`);
      u.search = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        scope: SCOPE,
        state,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: server.resource,
      }).toString();
      return u.href;
    };
    const codeFrom = (location: string | undefined, state: string): string => {
      if (!location) throw new Error('no redirect');
      const back = new URL(location, server.origin);
      const code = back.searchParams.get('code');
      if (
        `${back.origin}${back.pathname}` !== REDIRECT_URI ||
        !code ||
        back.searchParams.get('state') !== state
      ) {
        throw new Error(`unexpected redirect ${back.origin}${back.pathname}`);
      }
      if (back.searchParams.get('iss') !== server.issuer)
        throw new Error('no iss in the authorization response');
      return code;
    };

    // Sign in and consent once, through the real pages.
    const browser = new Browser(ca);
    const first = pkce();
    const done = await browser.authorize(authorizeUrl(first.challenge, 'first'), server.origin, user);
    codeFrom(done.location, 'first');
    const cookie = browser.cookieHeader();

    // Later authorizations: the session cookie and the remembered consent, no page. The server allows 300
    // authorization requests per address per minute, so they come from distinct loopback source addresses.
    let issued = 0;
    let authorizeTime = 0;
    const authorizeOne = (agent: Agent): Promise<Code> => {
      const p = pkce();
      const state = randomBytes(8).toString('base64url');
      return new Promise((resolve, reject) => {
        const req = request(authorizeUrl(p.challenge, state), { agent, headers: { cookie } }, (res) => {
          res.resume();
          res.on('end', () => {
            try {
              if (res.statusCode !== 302 && res.statusCode !== 303) {
                throw new Error(`authorization answered ${res.statusCode}`);
              }
              resolve({ code: codeFrom(res.headers.location, state), verifier: p.verifier });
            } catch (err) {
              reject(err as Error);
            }
          });
        });
        req.on('error', reject);
        req.end();
      });
    };
    const codes = async (n: number): Promise<Code[]> => {
      const agents = new Map<string, Agent>();
      const agentFor = (k: number): Agent => {
        const block = Math.floor(k / AUTHORIZE_PER_ADDRESS);
        const address = `127.0.${2 + Math.floor(block / 250)}.${1 + (block % 250)}`;
        let a = agents.get(address);
        if (!a) {
          a = new Agent({ keepAlive: true, ca, localAddress: address });
          agents.set(address, a);
        }
        return a;
      };
      const out: Code[] = [];
      let started = 0;
      const t0 = performance.now();
      try {
        await Promise.all(
          Array.from({ length: CONCURRENCY }, async () => {
            while (started < n) {
              started++;
              out.push(await authorizeOne(agentFor(issued++)));
            }
          }),
        );
      } finally {
        for (const a of agents.values()) a.destroy();
      }
      authorizeTime += performance.now() - t0;
      return out;
    };
    const side: Side = {
      name: 'ours',
      origin: server.origin,
      resource: server.resource,
      clientId,
      codes,
      stop,
    };
    return {
      side,
      server,
      database: db ? `PostgreSQL (${new URL(db.url).host})` : 'PGlite (embedded)',
      addresses: () => Math.ceil(issued / AUTHORIZE_PER_ADDRESS),
      authorizeMs: () => authorizeTime / Math.max(1, issued),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// --- theirs -------------------------------------------------------------------------------------------------------

async function startTheirs(ca: ServerProcess['ca']): Promise<{ side: Side; ca: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-bench-oidc-'));
  const pair = await ca.issue();
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  const child: ChildProcess = spawn(
    process.execPath,
    [path.join(ROOT, '.bench-build/bench/oidc-baseline-server.js'), cert, key],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ready = await new Promise<{
      port: number;
      clientId: string;
      redirectUri: string;
      resource: string;
    }>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`baseline did not start: ${text}`)), 60_000);
      child.stdout?.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        const m = /listening (\{.*\})\n/.exec(text);
        if (m) {
          clearTimeout(timer);
          resolve(JSON.parse(m[1] as string) as never);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`baseline exited (${code}): ${text}`));
      });
    });
    if (ready.redirectUri !== REDIRECT_URI) throw new Error('the baseline uses another redirect URI');
    const origin = `https://127.0.0.1:${ready.port}`;
    const agent = new Agent({ keepAlive: true, ca: ca.cert });
    const codes = async (n: number): Promise<Code[]> => {
      const out: Code[] = [];
      for (let i = 0; i < n; i += 500) {
        const pairs = Array.from({ length: Math.min(500, n - i) }, pkce);
        const r = await post(
          agent,
          `${origin}/bench/codes`,
          JSON.stringify({ challenges: pairs.map((p) => p.challenge) }),
          'application/json',
        );
        if (r.status !== 200) throw new Error(`baseline minting failed: ${r.status} ${r.text}`);
        const minted = (JSON.parse(r.text) as { codes: string[] }).codes;
        minted.forEach((code, j) =>
          out.push({ code, verifier: (pairs[j] as { verifier: string }).verifier }),
        );
      }
      return out;
    };
    return {
      ca: ca.cert,
      side: {
        name: 'theirs',
        origin,
        resource: ready.resource,
        clientId: ready.clientId,
        codes,
        stop: async () => {
          agent.destroy();
          await stop();
        },
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// --- the benchmark ------------------------------------------------------------------------------------------------

function medianBy(list: readonly LoadResult[]): LoadResult {
  return [...list].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(list.length / 2)] as LoadResult;
}

export async function runTokenEndpoint(
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  /** nodeOptions: NODE_OPTIONS for ours' server process (e.g. a profiler preload). */
  options: { readonly nodeOptions?: string } = {},
): Promise<TokenEndpointResult> {
  const quick = quickMode();
  const rounds = quick ? 1 : 3;
  const codesPerRound = quick ? 160 : 1200;
  const refreshesPerChain = quick ? 20 : 150;

  const ours = await startOurs(options.nodeOptions);
  let theirs: Awaited<ReturnType<typeof startTheirs>> | undefined;
  try {
    theirs = await startTheirs(ours.server.ca);
    const ca = theirs.ca;
    const sides = [ours.side, theirs.side] as const;
    log(`token endpoint: ours on ${ours.database}, theirs oidc-provider in memory`);

    const exchange = async (side: Side, n: number): Promise<LoadResult> =>
      exchangeRound(side, ca, await side.codes(n));
    const chains = new Map<Side, string[]>();
    for (const side of sides) chains.set(side, await startChains(side, ca, CONCURRENCY));
    const refresh = (side: Side, perChain: number): Promise<LoadResult> =>
      refreshRound(side, ca, chains.get(side) as string[], perChain);

    // Warm-up: JIT, pools, caches.
    for (const side of sides) {
      await exchange(side, Math.max(CONCURRENCY * 4, codesPerRound / 4));
      await refresh(side, Math.max(4, refreshesPerChain / 4));
    }

    const grants: TokenGrantResult[] = [];
    for (const grant of ['authorization_code', 'refresh_token'] as const) {
      const o: LoadResult[] = [];
      const t: LoadResult[] = [];
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? [theirs.side, ours.side] : [ours.side, theirs.side];
        for (const side of order) {
          const r =
            grant === 'authorization_code'
              ? await exchange(side, codesPerRound)
              : await refresh(side, refreshesPerChain);
          (side === ours.side ? o : t).push(r);
          log(`token endpoint: ${grant}, round ${round + 1}, ${side.name}: ${r.perSecond.toFixed(0)}/s`);
        }
      }
      const ratio = percentile(
        o.map((r, i) => r.perSecond / (t[i] as LoadResult).perSecond),
        50,
      );
      grants.push({
        grant,
        ours: o,
        theirs: t,
        oursPerSecond: percentile(
          o.map((r) => r.perSecond),
          50,
        ),
        theirsPerSecond: percentile(
          t.map((r) => r.perSecond),
          50,
        ),
        ratio,
      });
    }
    return {
      grants,
      concurrency: CONCURRENCY,
      rounds,
      codesPerRound,
      refreshesPerChain,
      database: ours.database,
      authorizeAddresses: ours.addresses(),
      authorizeMsPerCode: ours.authorizeMs(),
    };
  } finally {
    await theirs?.side.stop();
    await ours.side.stop();
  }
}

const LABEL: Record<GrantKind, string> = {
  authorization_code: 'code exchange',
  refresh_token: 'refresh',
};

export function printTokenEndpoint(r: TokenEndpointResult): string {
  const perRound = r.grants.flatMap((g) =>
    (['ours', 'theirs'] as const).map((who) => {
      const list = g[who];
      const name = who === 'ours' ? 'ours' : 'oidc-provider in memory';
      return [
        `${LABEL[g.grant]}, ${name}`,
        ...list.map((x) => x.perSecond.toFixed(0)),
        (who === 'ours' ? g.oursPerSecond : g.theirsPerSecond).toFixed(0),
        ms(medianBy(list).p50),
        ms(medianBy(list).p95),
      ];
    }),
  );
  const roundHeaders = Array.from({ length: r.rounds }, (_, i) => `round ${i + 1}`);
  const ratios = r.grants.map((g) => [
    LABEL[g.grant],
    g.ratio.toFixed(2),
    `≥ ${TARGET_RATIO.toFixed(1)}`,
    g.ratio >= TARGET_RATIO ? 'met' : 'NOT MET',
  ]);
  return [
    heading(
      `Token endpoint: code exchanges and refresh grants per second, ours vs oidc-provider in memory — target ratio ≥ ${TARGET_RATIO}`,
    ),
    table(['grant, server', ...roundHeaders, 'median req/s', 'p50', 'p95'], perRound),
    '',
    [
      `Ours: mcp-pa serve, authentication on, state in ${r.database}; theirs: oidc-provider with its in-memory`,
      `adapter (the library's MemoryAdapter, its LRU store raised from 1 000 to 100 000 entries so codes are not evicted).`,
      `Both: HTTPS on 127.0.0.1, PKCE S256, a public client (auth method none, https redirect URI; ours registered by`,
      `DCR), at+jwt ES256 access tokens for the resource, rotating refresh tokens, one session and one remembered grant.`,
      `${r.concurrency} concurrent keep-alive clients; every response checked (200, Bearer at+jwt for the resource, new refresh token).`,
      `${r.rounds} alternating round(s) after a warm-up: ${r.codesPerRound} code exchanges per round (with verifier, redirect_uri,`,
      `resource), and ${r.concurrency} refresh chains × ${r.refreshesPerChain} refreshes each (one after the other per chain).`,
      `Only token requests are timed. Ours' codes come from /oauth/authorize with the signed-in session cookie`,
      `(${r.authorizeMsPerCode.toFixed(1)} ms per code, untimed, made just before each round: codes live 60 s). Ours allows 300`,
      `authorization requests per address per minute (not configurable), so they come from ${r.authorizeAddresses} loopback source`,
      `addresses, ${AUTHORIZE_PER_ADDRESS} each; its failed-token-request limit (20/min) is never reached (no failing requests).`,
      `Theirs' codes are minted directly with the library's models through a bench-only route.`,
      'p50/p95 are from the median round; the ratio is the median of the per-round ratios ours/theirs.',
    ].join('\n'),
    '',
    table(['ratio ours/theirs', 'value', 'target', 'status'], ratios),
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  // BENCH_SERVER_NODE_OPTIONS: NODE_OPTIONS for ours' server process only, e.g. `--import <profiler preload>`.
  const nodeOptions = process.env['BENCH_SERVER_NODE_OPTIONS'] || undefined;
  const result = await runTokenEndpoint(undefined, nodeOptions ? { nodeOptions } : {});
  process.stdout.write(`${printTokenEndpoint(result)}\n`);
}
