/**
 * Fault: the PostgreSQL server stops under a steady stream of /mcp reads and writes (valid token), then starts
 * again. A private PostgreSQL cluster (initdb in a temporary folder, its own port on 127.0.0.1) is stopped with
 * `pg_ctl stop` (-m fast, then -m immediate), never the shared server. While it is down, /mcp answers 503 with
 * Retry-After and a JSON-RPC error body (never 500, never a hang, never internals), the token endpoint and
 * registration answer 503 too, /readyz fails and /healthz still answers. Once PostgreSQL is back the service resumes
 * by itself (same process, no restart); the time to the first successful read and write is measured.
 *
 * The same outage is then shown to the in-process server (the OAuth fixture on its own database of the cluster),
 * for the browser pages: a sign-in page answers a 503 page with Retry-After.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkcePair, startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import { PoolDriver } from '../../src/storage/postgres/driver.js';
import { isDatabaseUnavailable } from '../../src/storage/postgres/errors.js';
import { quietLogger } from '../support/postgres.js';
import {
  headlessTokens,
  refreshTokens,
  startServerProcess,
  type HeadlessTokens,
  type ServerProcess,
} from '../support/server-process.js';
import { postgresBinDir, startPrivatePostgres, type PrivatePostgres } from './private-services.js';
import { mcpPost, runTag, sleep, waitFor } from './support.js';

const available = postgresBinDir() !== null;
if (!available && process.env['CI']) throw new Error('CI: PostgreSQL server programs (initdb) are required');
const describeWithInitdb = available ? describe : describe.skip;

/** What no answer may contain: where the database is, or what the driver said. */
const INTERNALS =
  /ECONNREFUSED|127\.0\.0\.1:\d|PostgreSQL|postgres@|57P0|terminating connection|\n\s+at \S+ \(/i;

interface Sample {
  readonly kind: 'read' | 'write';
  readonly startedAt: number;
  readonly endedAt: number;
  /** 0: no answer (connection error or 15 s timeout). */
  readonly status: number;
  readonly retryAfter: string | null;
  readonly body: string;
  /** For 200: the tool result's error text, or null when the call succeeded. */
  readonly toolError: string | null;
}

function toolErrorOf(body: string): string | null {
  for (const line of body.split('\n')) {
    if (!line.startsWith('data:')) continue;
    try {
      const msg = JSON.parse(line.slice(5)) as {
        result?: { isError?: boolean; content?: { text?: string }[] };
      };
      if (msg.result?.isError === true) return msg.result.content?.[0]?.text ?? '(no text)';
    } catch {
      // not JSON
    }
  }
  return null;
}

/** A 503 as /mcp must give it: Retry-After and a JSON-RPC error naming the outage, nothing internal. */
function expectUnavailableJsonRpc(s: { status: number; retryAfter: string | null; body: string }): void {
  expect(s.status).toBe(503);
  expect(Number(s.retryAfter)).toBeGreaterThan(0);
  const body = JSON.parse(s.body) as { jsonrpc?: string; error?: { code?: number; message?: string } };
  expect(body.jsonrpc).toBe('2.0');
  expect(typeof body.error?.code).toBe('number');
  expect(body.error?.message).toMatch(/unavailable/i);
  expect(s.body).not.toMatch(INTERNALS);
}

/** Every answer under load is a success, the tool's own "unavailable" error, or the 503 above; never 500. */
function expectAcceptable(s: Sample): void {
  if (s.status === 200) {
    if (s.toolError !== null) expect(s.toolError).toMatch(/^Error \(unavailable\)/);
    return;
  }
  expectUnavailableJsonRpc(s);
}

async function refreshRequest(
  target: { fetch: typeof fetch; origin: string; resource: string },
  tokens: HeadlessTokens,
): Promise<{ status: number; retryAfter: string | null; body: string }> {
  const res = await target.fetch(`${target.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: tokens.refreshToken,
      client_id: tokens.clientId,
      resource: target.resource,
    }).toString(),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
}

describeWithInitdb('fault: PostgreSQL stopped and started again under load', () => {
  let cluster: PrivatePostgres;
  let sp: ServerProcess | undefined;
  let fx: OAuthFixture | undefined;

  beforeAll(async () => {
    cluster = await startPrivatePostgres();
  }, 120_000);

  afterAll(async () => {
    try {
      await sp?.close();
      // Also checks that no secret the test handled reached the server's log.
      await fx?.close();
    } finally {
      await cluster?.close();
    }
  });

  it('mcp-pa serve answers 503 with Retry-After while it is down, and resumes by itself when it is back', async () => {
    sp = await startServerProcess({
      env: { MCP_DATABASE_URL: cluster.url },
      users: ['alice'],
      usersInProcess: true,
      config: { server: { sessions: 'stateless' } },
    });
    const server = sp;
    const user = server.users.get('alice');
    if (!user) throw new Error('no user');
    let tokens = await headlessTokens({ ...server, user });
    const pid = server.pid();

    for (const mode of ['fast', 'immediate'] as const) {
      const samples: Sample[] = [];
      const prefix = `fault-pg-${mode}-${runTag()}`;
      let load = true;
      let n = 0;
      const loop = async (kind: 'read' | 'write'): Promise<void> => {
        while (load) {
          const startedAt = Date.now();
          try {
            const a =
              kind === 'read'
                ? await mcpPost(server, tokens.accessToken, 'tools/call', {
                    name: 'list_todos',
                    arguments: { limit: 5 },
                  })
                : await mcpPost(server, tokens.accessToken, 'tools/call', {
                    name: 'create_todo',
                    arguments: { title: `${prefix}-${n++}` },
                  });
            samples.push({
              kind,
              startedAt,
              endedAt: Date.now(),
              status: a.status,
              retryAfter: a.headers.get('retry-after'),
              body: a.text,
              toolError: a.status === 200 ? toolErrorOf(a.text) : null,
            });
          } catch (err) {
            samples.push({
              kind,
              startedAt,
              endedAt: Date.now(),
              status: 0,
              retryAfter: null,
              body: String(err),
              toolError: null,
            });
          }
          await sleep(50);
        }
      };
      const loops = [loop('read'), loop('read'), loop('write'), loop('write')];
      try {
        // Baseline: everything succeeds.
        await waitFor('a baseline of requests', () => (samples.length >= 8 ? true : undefined), 30_000);
        expect(samples.filter((s) => s.status !== 200 || s.toolError !== null)).toEqual([]);

        // Down.
        const stopAsked = Date.now();
        await cluster.stop(mode);
        const stopped = Date.now();
        const probes: { path: string; status: number }[] = [];
        const probe = async (path: string): Promise<void> => {
          const res = await server.fetch(`${server.origin}${path}`, { signal: AbortSignal.timeout(15_000) });
          await res.text();
          probes.push({ path, status: res.status });
        };
        // The OAuth side while the database is down: a refresh and a registration.
        const refresh = await refreshRequest(server, tokens);
        const register = await server.fetch(`${server.origin}/oauth/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            redirect_uris: ['http://127.0.0.1/cb'],
            token_endpoint_auth_method: 'none',
          }),
          signal: AbortSignal.timeout(15_000),
        });
        const registerBody = await register.text();
        await waitFor(
          'requests during the outage',
          () =>
            samples.filter((s) => s.startedAt > stopped).length >= 12 && Date.now() - stopped > 3_000
              ? true
              : undefined,
          30_000,
        );
        await probe('/readyz');
        await probe('/healthz');

        // Back.
        const startAsked = Date.now();
        await cluster.start();
        const started = Date.now();
        const firstOk = (kind: 'read' | 'write'): Promise<Sample> =>
          waitFor(
            `the first successful ${kind} after PostgreSQL is back`,
            () =>
              samples.find(
                (s) => s.kind === kind && s.startedAt >= started && s.status === 200 && s.toolError === null,
              ),
            30_000,
            50,
          );
        const okRead = await firstOk('read');
        const okWrite = await firstOk('write');
        const recovered = Math.max(okRead.endedAt, okWrite.endedAt);
        await sleep(1_500);
        load = false;
        await Promise.all(loops);
        await probe('/readyz');

        const during = samples.filter((s) => s.startedAt >= stopped && s.endedAt <= startAsked);
        const tally = (list: Sample[]): Record<string, number> =>
          list.reduce<Record<string, number>>((acc, s) => {
            const key = s.status === 200 && s.toolError !== null ? '200 tool error' : String(s.status);
            acc[key] = (acc[key] ?? 0) + 1;
            return acc;
          }, {});
        const after = samples.filter((s) => s.startedAt >= recovered);
        console.log(
          `[faults] PostgreSQL outage (pg_ctl stop -m ${mode}, took ${stopped - stopAsked} ms): all answers ` +
            `${JSON.stringify(tally(samples))}; while down ${JSON.stringify(tally(during))}; token endpoint ` +
            `${refresh.status} (Retry-After ${refresh.retryAfter}), registration ${register.status}; probes ` +
            `${probes.map((p) => `${p.path} ${p.status}`).join(', ')}; pg_ctl start took ${started - startAsked} ms; ` +
            `first 200 read ${okRead.endedAt - started} ms and write ${okWrite.endedAt - started} ms after ` +
            `PostgreSQL accepted connections again; after recovery ${JSON.stringify(tally(after))}`,
        );

        // While down: 503 + Retry-After + a JSON-RPC error body; no 500, no hang, no internals.
        expect(during.length).toBeGreaterThanOrEqual(8);
        // A request whose token's grant check is still cached (≤ 0.5 s) reaches the tool, whose result is its own
        // "unavailable" error; past that, every request is answered 503 before any work.
        const settled = during.filter((s) => s.startedAt >= stopped + 1_000);
        expect(settled.length).toBeGreaterThanOrEqual(4);
        for (const s of settled) expectUnavailableJsonRpc(s);
        // Every other answer, around the edges too: a success, the tool's own error, or the same 503.
        for (const s of samples) expectAcceptable(s);
        expect(refresh.status).toBe(503);
        expect(Number(refresh.retryAfter)).toBeGreaterThan(0);
        expect(JSON.parse(refresh.body)).toMatchObject({ error: 'temporarily_unavailable' });
        expect(refresh.body).not.toMatch(INTERNALS);
        expect(register.status).toBe(503);
        expect(Number(register.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(registerBody).not.toMatch(INTERNALS);
        expect(probes).toEqual([
          { path: '/readyz', status: 503 },
          { path: '/healthz', status: 200 },
          { path: '/readyz', status: 200 },
        ]);

        // Back by itself: the same process, everything succeeds again.
        expect(server.running()).toBe(true);
        expect(server.pid()).toBe(pid);
        expect(after.length).toBeGreaterThan(0);
        expect(after.filter((s) => s.status !== 200 || s.toolError !== null)).toEqual([]);
        // The refresh token still works (the failed attempt did not consume it).
        tokens = await refreshTokens(server, tokens.clientId, tokens.refreshToken);
      } catch (err) {
        console.log(`[faults] server log tail:\n${server.logs().slice(-3000)}\nrunning: ${server.running()}`);
        throw err;
      } finally {
        load = false;
        await Promise.all(loops);
      }
    }
    // Never logged as a server bug.
    expect(server.logs()).not.toMatch(/"msg":"(MCP request failed|authorization server error)"/);
  }, 120_000);

  it('a connection the server ends inside a transaction: the transaction fails as "unavailable", nothing crashes', async () => {
    // What `pg_ctl stop -m fast` does to a connection in the middle of a transaction, on purpose and at a known
    // moment: the server's FATAL 57P01 arrives while no statement runs on it. Unhandled, that 'error' event of the
    // checked-out client would end the process (it did, before the driver listened for it).
    const driver = await PoolDriver.connect(cluster.url, 2, quietLogger);
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const outcome = await driver
        .transaction(async (sql) => {
          const r = await sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          await admin.query('SELECT pg_terminate_backend($1)', [r.rows[0]?.pid]);
          await sleep(300);
          await sql.query('SELECT 1');
          return 'committed';
        })
        .catch((err: unknown) => err);
      expect(uncaught.map(String)).toEqual([]);
      expect(isDatabaseUnavailable(outcome)).toBe(true);
      // The broken connection was dropped, not handed out again.
      expect((await driver.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(await driver.transaction(async (sql) => (await sql.query('SELECT 2 AS two')).rows)).toEqual([
        { two: 2 },
      ]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
      await driver.close();
    }
  });

  it('the in-process server answers its pages, token endpoint and /mcp with 503 too, and recovers', async () => {
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    const dbName = `inproc_${randomBytes(4).toString('hex')}`;
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
    } finally {
      await admin.end();
    }
    const url = new URL(cluster.url);
    url.pathname = `/${dbName}`;
    fx = await startOAuthFixture({
      env: { MCP_DATABASE_URL: url.href },
      config: { server: { sessions: 'stateless' } },
    });
    const target = fx;
    const user = await target.addUser();
    const tokens = await headlessTokens({ ...target, user });
    target.secrets.add('access_token', tokens.accessToken);
    target.secrets.add('refresh_token', tokens.refreshToken);
    // A sign-in that has begun (an interaction stored in the database) before the outage.
    const browser = target.browser();
    const { challenge } = await pkcePair();
    const az = new URL(`${target.origin}/oauth/authorize`);
    az.search = new URLSearchParams({
      response_type: 'code',
      client_id: tokens.clientId,
      redirect_uri: 'http://127.0.0.1/cb',
      scope: 'pa.read',
      state: 's',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: target.resource,
    }).toString();
    const begun = await browser.request(az.href);
    const interaction = begun.headers.location;
    expect(typeof interaction).toBe('string');

    await cluster.stop('immediate');
    try {
      const call = await mcpPost(target, tokens.accessToken, 'tools/call', {
        name: 'list_todos',
        arguments: {},
      });
      // The grant check may still be cached for ≤ 0.5 s: ask again after that.
      await sleep(600);
      const again = await mcpPost(target, tokens.accessToken, 'tools/call', {
        name: 'create_todo',
        arguments: { title: 'during the outage' },
      });
      const page = await browser.request(new URL(String(interaction), target.origin).href);
      const refresh = await refreshRequest(target, tokens);
      // A new authorization request from a browser: the library's own error page becomes the 503 page.
      const authorize = await target.browser().request(az.href, { headers: { accept: 'text/html' } });
      console.log(
        `[faults] in-process server, PostgreSQL down: /mcp ${call.status} then ${again.status}, sign-in page ` +
          `${page.status}, token endpoint ${refresh.status}, authorization request ${authorize.status}`,
      );
      expect(authorize.status).toBe(503);
      expect(Number(authorize.headers['retry-after'])).toBeGreaterThan(0);
      expect(String(authorize.headers['content-type'])).toMatch(/text\/html/);
      expect(authorize.text).toMatch(/temporarily_unavailable|temporarily unavailable/i);
      expect(authorize.text).not.toMatch(INTERNALS);
      for (const a of [call, again]) {
        if (a.status === 200) expect(toolErrorOf(a.text)).toMatch(/^Error \(unavailable\)/);
        else
          expectUnavailableJsonRpc({
            status: a.status,
            retryAfter: a.headers.get('retry-after'),
            body: a.text,
          });
      }
      expect(again.status).toBe(503);
      expect(page.status).toBe(503);
      expect(Number(page.headers['retry-after'])).toBeGreaterThan(0);
      expect(String(page.headers['content-type'])).toMatch(/text\/html/);
      expect(page.text).toMatch(/temporarily unavailable/i);
      expect(page.text).not.toMatch(INTERNALS);
      expect(refresh.status).toBe(503);
      expect(JSON.parse(refresh.body)).toMatchObject({ error: 'temporarily_unavailable' });
    } finally {
      await cluster.start();
    }
    const back = await waitFor(
      'a successful call after PostgreSQL is back',
      async () => {
        const a = await mcpPost(target, tokens.accessToken, 'tools/call', {
          name: 'list_todos',
          arguments: {},
        });
        return a.status === 200 && toolErrorOf(a.text) === null ? a : undefined;
      },
      30_000,
      200,
    );
    expect(back.status).toBe(200);
    expect(target.logs()).not.toMatch(
      /"msg":"(MCP request failed|authorization server error|authorization page failed)"/,
    );
  }, 120_000);
});
