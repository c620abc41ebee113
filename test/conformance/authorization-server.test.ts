/**
 * The MCP conformance suite's authorization-server scenarios against the embedded authorization server (the OAuth
 * fixture's origin: HTTPS on 127.0.0.1 with the test CA, PGlite). The released suite (0.1.16) has none; the
 * prerelease line has `conformance authorization`, so that command runs from the pinned prerelease
 * (CONFORMANCE_NEXT_VERSION in ./toolchain.ts) on Node 22, trusting the test CA through NODE_EXTRA_CA_CERTS.
 *
 *   authorization-server-metadata-endpoint: RFC 8414 metadata at the issuer (issuer, endpoints, response types, S256,
 *     and client_id_metadata_document_supported).
 *   authorization-code-grant: the suite's own client (PKCE S256, RFC 8707 resource = the MCP URI) against a public
 *     client registered here by DCR with the suite's callback `http://127.0.0.1:PORT/callback`. The suite prints the
 *     authorization URL for a person to open; here the fixture's headless browser opens it, signs a real user in and
 *     consents through the real forms, and delivers the redirect to the suite's callback server. The suite then checks
 *     the authorization response (state, code, iss) and redeems the code itself (status, JSON, Cache-Control:
 *     no-store, access_token and token_type).
 *
 * Scenarios that do not apply would be listed under "authorization" in ./not-applicable.json (none is).
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import { tempDir } from '../support/helpers.js';
import {
  judge,
  loadNotApplicable,
  readResults,
  scenariosRun,
  type NotApplicableList,
  type ScenarioResult,
} from './results.js';
import {
  CONFORMANCE_NEXT_VERSION,
  NODE22_VERSION,
  ensureToolchain,
  killChildren,
  run,
  suiteEnv,
  type RunResult,
  type Toolchain,
} from './toolchain.js';

const SUITE_TIMEOUT_MS = 90_000;

/** A port free on 127.0.0.1 now (for the suite's callback server, which takes a fixed port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

describe('MCP conformance suite: authorization-server scenarios against the embedded authorization server', () => {
  const out = tempDir('mcp-pa-conformance-as-');
  let toolchain: Toolchain;
  let fx: OAuthFixture | undefined;
  let list: NotApplicableList;
  let scenarios: string[];
  let suite: RunResult;
  let results: Map<string, ScenarioResult>;
  /** What the headless browser did with the URL the suite printed. */
  const browsed: { authorizeUrl?: string; callbackStatus?: number; error?: string } = {};
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
    fx = await startOAuthFixture();
    phase('server');
    const f = fx;
    const user = await f.addUser();
    const port = await freePort();
    const callback = `http://127.0.0.1:${port}/callback`;
    const reg = await f.register({
      redirect_uris: [callback],
      client_name: 'MCP conformance suite (authorization)',
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const clientId = String(reg.body['client_id']);
    const caFile = path.join(out.dir, 'ca.pem');
    writeFileSync(caFile, f.ca.cert);
    const env = suiteEnv({ NODE_EXTRA_CA_CERTS: caFile });

    // Plays the person at the browser: once the suite has printed the authorization URL and its callback server
    // listens, sign in and consent, then hand the redirect to that callback server.
    let printed = '';
    let browsing: Promise<void> | undefined;
    const authorizePrefix = `${f.origin}/oauth/authorize?`;
    const onStdout = (chunk: string): void => {
      printed += chunk;
      if (browsing !== undefined) return;
      const url = printed.split('\n').find((line) => line.startsWith(authorizePrefix));
      if (url === undefined || !printed.includes(`Callback server started: http://127.0.0.1:${port}`)) return;
      browsed.authorizeUrl = url.trim();
      browsing = (async () => {
        const done = await f.browser().authorize(browsed.authorizeUrl as string, f.origin, user);
        if (done.location === undefined || !done.location.startsWith(`${callback}?`)) {
          throw new Error(`the authorization did not come back to the suite: ${done.res.status}`);
        }
        const res = await fetch(done.location, { signal: AbortSignal.timeout(10_000) });
        browsed.callbackStatus = res.status;
        await res.text();
      })().catch((err: unknown) => {
        browsed.error = err instanceof Error ? err.message : String(err);
        // The suite would wait minutes for a callback that is not coming.
        killChildren();
      });
    };

    const resultsDir = path.join(out.dir, 'results');
    suite = await run(
      toolchain.node,
      [
        toolchain.nextCli,
        'authorization',
        '--url',
        f.issuer,
        '--client-id',
        clientId,
        '--resource',
        f.resource,
        '--port',
        String(port),
        '-o',
        resultsDir,
      ],
      { cwd: out.dir, env, timeoutMs: SUITE_TIMEOUT_MS, onStdout },
    );
    await browsing;
    phase('suite');
    expect(suite.timedOut, 'the suite did not finish in time').toBe(false);
    // Without --scenario it runs every authorization-server scenario it has (`conformance list --authorization`).
    scenarios = scenariosRun(suite.stdout);
    results = readResults(resultsDir, 'authorization-server');
  }, 300_000);

  afterAll(async () => {
    killChildren();
    await fx?.close();
    out.cleanup();
  });

  it(`runs the pinned prerelease (${CONFORMANCE_NEXT_VERSION}) with its whole authorization-server list`, () => {
    expect(toolchain.versions).toMatchObject({ nextCli: CONFORMANCE_NEXT_VERSION, node: NODE22_VERSION });
    expect(scenarios).toContain('authorization-server-metadata-endpoint');
    expect(scenarios).toContain('authorization-code-grant');
    expect([...results.keys()].sort()).toEqual([...scenarios].sort());
  });

  it('signed a real user in through the URL the suite printed, and gave the suite its callback', () => {
    expect(browsed.error).toBeUndefined();
    const az = new URL(browsed.authorizeUrl ?? 'about:blank');
    expect(az.searchParams.get('code_challenge_method')).toBe('S256');
    expect(az.searchParams.get('resource')).toBe(fx?.resource);
    expect(browsed.callbackStatus).toBe(200);
  });

  it('passes every applicable scenario, and the not-applicable list is exact', () => {
    const verdict = judge(scenarios, results, list.authorization);
    console.log(
      `MCP conformance ${CONFORMANCE_NEXT_VERSION}, authorization server: ` +
        `${verdict.passedApplicable.length}/${verdict.applicable.length} applicable scenarios passed ` +
        `(${verdict.checks.success}/${verdict.checks.total} checks); ` +
        `${Object.keys(list.authorization).length} not applicable; ` +
        `${Math.round((Date.now() - started) / 1000)} s (${phases.join(', ')})`,
    );
    expect(verdict.problems, verdict.problems.join('\n')).toEqual([]);
    expect(verdict.applicable.length).toBeGreaterThanOrEqual(2);
    expect(verdict.passedApplicable).toEqual(verdict.applicable);
    // The suite's own verdict (it has no baseline option for this command: every failure fails it).
    expect(suite.code, `${suite.stdout.slice(-3000)}\n${suite.stderr.slice(-2000)}`).toBe(
      Object.keys(list.authorization).length === 0 ? 0 : 1,
    );
  });

  it('the token response the suite checked is the real one (no-store, Bearer, the scopes granted)', () => {
    const grant = results.get('authorization-code-grant');
    const check = grant?.checks.find((c) => c.id === 'authorization-code-grant');
    expect(check?.status).toBe('SUCCESS');
    const body = (check?.details as { body?: Record<string, unknown> } | undefined)?.body;
    expect(body?.['token_type']).toBe('Bearer');
    expect(String(body?.['scope'])).toMatch(/pa\.read/);
  });
});
