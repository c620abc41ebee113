/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in ./toolchain.ts, run on the Node
 * 22 it needs, both installed by the test into node_modules/.cache) against the real HTTP-mode server: every server
 * scenario of the suite (`--suite all`, pending ones included) over Streamable HTTP, through the real OAuth flow.
 *
 * The server is test/auth/oauth-fixture.ts (HTTPS on 127.0.0.1 with the test CA, PGlite, the embedded authorization
 * server). A user signs in and consents through the real forms and a public DCR client gets an access token with
 * PKCE. The suite cannot sign in, so it talks to ./bearer-proxy.ts: plain HTTP on 127.0.0.1 that adds
 * `Authorization: Bearer <token>` and forwards everything else as it is (Host and Origin included, so the server's
 * own DNS-rebinding checks answer the suite's dns-rebinding-protection scenario) to https://127.0.0.1:PORT/mcp. The
 * server lists the proxy's origin in `server.allowed_origins`, as for any front end on another origin.
 *
 * Scenarios that need the suite's fixture server (tools such as test_simple_text, prompts such as
 * test_simple_prompt, resources under test://) do not apply to an assistant: ./not-applicable.json names each with
 * its reason and how it comes out. The test fails when an applicable scenario fails, when a listed one comes out
 * otherwise (now passes, or a vacuous pass is no longer vacuous), when a listed one no longer exists, or when the
 * suite lists a scenario that wrote no result. The suite's own verdict is checked too: given the listed failures as
 * its --expected-failures baseline, it must exit 0.
 *
 * Local mode (stdio) is not run: the suite's server mode only takes `--url` and connects with the SDK's Streamable
 * HTTP client; it has no stdio transport (checked below, so a future pinned version that gains one is noticed).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import { tempDir } from '../support/helpers.js';
import { rawRequest } from '../support/https.js';
import { headlessTokens } from '../support/server-process.js';
import { startBearerProxy, type BearerProxy } from './bearer-proxy.js';
import {
  judge,
  loadNotApplicable,
  readResults,
  scenariosRun,
  type NotApplicableList,
  type ScenarioResult,
} from './results.js';
import {
  CONFORMANCE_VERSION,
  NODE22_VERSION,
  ensureToolchain,
  killChildren,
  run,
  suiteEnv,
  type RunResult,
  type Toolchain,
} from './toolchain.js';

/** Loopback redirects of a native client match the registered http://127.0.0.1/cb on any port (RFC 8252 §7.3). */
const REDIRECT = 'http://127.0.0.1:51007/cb';
const SUITE_TIMEOUT_MS = 120_000;

describe('MCP conformance suite: server scenarios over Streamable HTTP, through the real OAuth flow', () => {
  const out = tempDir('mcp-pa-conformance-http-');
  let toolchain: Toolchain;
  let proxy: BearerProxy | undefined;
  let fx: OAuthFixture | undefined;
  let list: NotApplicableList;
  let scenarios: string[];
  let suite: RunResult;
  let results: Map<string, ScenarioResult>;
  let started = 0;
  /** Seconds each phase took (printed with the summary). */
  const phases: string[] = [];
  let mark = 0;
  const phase = (name: string): void => {
    const now = Date.now();
    phases.push(`${name} ${((now - mark) / 1000).toFixed(1)} s`);
    mark = now;
  };

  beforeAll(async () => {
    started = Date.now();
    mark = started;
    list = loadNotApplicable();
    toolchain = await ensureToolchain();
    phase('toolchain');
    proxy = await startBearerProxy({ timeoutMs: 60_000 });
    fx = await startOAuthFixture({ config: { server: { allowed_origins: [proxy.origin] } } });
    phase('server');
    const user = await fx.addUser();
    // A public native client (DCR), sign-in and consent through the real forms, and the PKCE token exchange.
    const { accessToken: token } = await headlessTokens({
      ...fx,
      user,
      clientName: 'MCP conformance suite',
      redirectUri: REDIRECT,
      tokenResource: false,
      watch: fx.secrets,
    });
    proxy.route({ target: fx.origin, ca: fx.ca.cert, token });
    phase('OAuth');

    // The suite's own baseline: the listed scenarios expected to fail (a vacuous pass is a pass to it).
    const baseline = path.join(out.dir, 'expected-failures.yaml');
    const expectedFailures = Object.entries(list.server)
      .filter(([, entry]) => entry.outcome === 'fails')
      .map(([name]) => name);
    writeFileSync(baseline, JSON.stringify({ server: expectedFailures }));
    const resultsDir = path.join(out.dir, 'results');
    suite = await run(
      toolchain.node,
      [
        toolchain.cli,
        'server',
        '--url',
        `${proxy.origin}/mcp`,
        '--suite',
        'all',
        '--expected-failures',
        baseline,
        '-o',
        resultsDir,
      ],
      { cwd: out.dir, env: suiteEnv(), timeoutMs: SUITE_TIMEOUT_MS },
    );
    phase('suite');
    expect(suite.timedOut, 'the suite did not finish in time').toBe(false);
    // `--suite all` runs every server scenario the suite has (what `conformance list --server` prints).
    scenarios = scenariosRun(suite.stdout);
    results = readResults(resultsDir, 'server');
  }, 300_000);

  afterAll(async () => {
    killChildren();
    await proxy?.close();
    await fx?.close();
    out.cleanup();
  });

  it(`runs the pinned suite (${CONFORMANCE_VERSION}, on Node ${NODE22_VERSION}) with its whole server list`, () => {
    expect(toolchain.versions).toMatchObject({ cli: CONFORMANCE_VERSION, node: NODE22_VERSION });
    expect(scenarios.length).toBeGreaterThanOrEqual(20);
    expect([...results.keys()].sort()).toEqual([...scenarios].sort());
  });

  it('passes every applicable scenario, and the not-applicable list is exact', () => {
    const verdict = judge(scenarios, results, list.server);
    const na = Object.values(list.server);
    console.log(
      `MCP conformance ${CONFORMANCE_VERSION}, HTTP (OAuth, through the bearer proxy): ` +
        `${verdict.passedApplicable.length}/${verdict.applicable.length} applicable scenarios passed ` +
        `(${verdict.checks.success}/${verdict.checks.total} checks); ` +
        `${na.length} not applicable (${na.filter((e) => e.outcome === 'fails').length} need the suite's fixtures, ` +
        `${na.filter((e) => e.outcome === 'passes-vacuously').length} pass vacuously); ` +
        `${Math.round((Date.now() - started) / 1000)} s (${phases.join(', ')})\n` +
        `  passed: ${verdict.passedApplicable.join(', ')}`,
    );
    expect(verdict.problems, verdict.problems.join('\n')).toEqual([]);
    expect(verdict.applicable.length).toBeGreaterThanOrEqual(8);
    expect(verdict.passedApplicable).toEqual(verdict.applicable);
  });

  it("agrees with the suite's own verdict: exit 0 with the listed failures as its baseline", () => {
    expect(suite.code, `${suite.stdout.slice(-3000)}\n${suite.stderr.slice(-2000)}`).toBe(0);
    expect(suite.stdout).toMatch(/Baseline check passed/);
  });

  it("answers dns-rebinding-protection with the server's own Host check, not the proxy's", () => {
    const rebinding = results.get('dns-rebinding-protection');
    expect(rebinding).toBeDefined();
    const rejected = rebinding?.checks.find((c) => c.id === 'localhost-host-rebinding-rejected');
    expect(rejected?.status).toBe('SUCCESS');
    expect(JSON.stringify(rejected?.details)).toMatch(/Host evil\.example\.com is not this server/);
  });

  it('went through OAuth: the proxy forwarded the traffic, and /mcp without the token is 401', async () => {
    expect(proxy?.forwarded() ?? 0).toBeGreaterThan(scenarios.length);
    const f = fx as OAuthFixture;
    const res = await rawRequest(f.resource, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      ca: f.ca.cert,
    });
    expect(res.status).toBe(401);
    expect(String(res.headers['www-authenticate'])).toMatch(/^Bearer /);
  });

  it('has no stdio transport for servers in the pinned suite (local mode cannot be run by it)', () => {
    // Its server scenarios connect with the SDK's Streamable HTTP client to --url; nothing in it speaks stdio.
    const source = readFileSync(toolchain.cli, 'utf8');
    expect(source).toMatch(/requiredOption\(`--url <url>`/);
    expect(source).toContain('@modelcontextprotocol/sdk/client/streamableHttp.js');
    expect(source).not.toMatch(/client\/stdio|StdioClientTransport/);
  });
});
