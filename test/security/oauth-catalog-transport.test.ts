/**
 * The security catalog (../shared/design/SECURITY-TESTS.md), lines 38–40 (the transport at /mcp), against the real
 * HTTP-mode server of test/auth/oauth-fixture.ts on PGlite, with real tokens from the real authorization-code flow:
 *
 *   #38 DNS rebinding: a foreign Origin, or a Host that is not this server, is refused with 403 before anything runs.
 *   #39 SQL injection in tool arguments: sqlmap (Debian's package) against the tools whose arguments reach SQL, and,
 *       always, a list of classic payloads in every string argument of those tools: no 5xx, no SQL text in any
 *       answer, no delay (pg_sleep never ran), no other tenant's data, and the database unchanged.
 *   #40 Oversized input: a 20 MB body is 413; unknown argument fields are -32602 naming the field.
 *   And JSON nesting: a body nested deeper than 64 levels is 400 -32600, not a crash.
 *
 * The server runs stateless (`server.sessions: 'stateless'`), so every POST stands alone (what sqlmap needs).
 * sqlmap is skipped with a message when it is not installed (a fresh development machine); in CI (CI=true), where
 * .ci/run installs it, its absence fails the test instead.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthFixture, type OAuthFixture, type TestUser, mcpMessages } from '../auth/oauth-fixture.js';
import { tempDir } from '../support/helpers.js';
import { rawRequest, type RawResponse } from '../support/https.js';
import { headlessTokens } from '../support/server-process.js';
import { findProgram } from '../support/programs.js';

// ---------------------------------------------------------------------------------------------- helpers

/** Loopback redirects of a native client match the registered http://127.0.0.1/cb on any port (RFC 8252 §7.3). */
const REDIRECT = 'http://127.0.0.1:51004/cb';
const PROTOCOL = '2025-11-25';
const EVIL = 'https://evil.example';
const IN_CI = process.env['CI'] === 'true';

/** A public native client, a user, and an access token through sign-in, consent and the PKCE token exchange. */
async function obtainToken(fx: OAuthFixture, user: TestUser, clientName: string): Promise<string> {
  const flow = { user, clientName, redirectUri: REDIRECT, tokenResource: false, watch: fx.secrets };
  return (await headlessTokens({ ...fx, ...flow })).accessToken;
}

interface McpResponse extends RawResponse {
  /** JSON-RPC messages of the answer (a JSON body, or the data lines of an SSE stream). */
  readonly messages: Record<string, unknown>[];
  readonly ms: number;
}

/** One raw POST to /mcp, the body sent as given (strings and buffers as they are, anything else as JSON). */
async function mcpPost(
  fx: OAuthFixture,
  body: unknown,
  options: { token?: string; headers?: Record<string, string>; method?: string } = {},
): Promise<McpResponse> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL,
    ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  const started = Date.now();
  const res = await rawRequest(`${fx.origin}/mcp`, {
    method: options.method ?? 'POST',
    headers,
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    ca: fx.ca.cert,
  });
  return { ...res, messages: mcpMessages(res), ms: Date.now() - started };
}

interface ToolAnswer {
  readonly status: number;
  readonly ms: number;
  readonly text: string;
  readonly result?: {
    isError?: boolean;
    content?: { type: string; text?: string }[];
    structuredContent?: Record<string, unknown>;
  };
  readonly error?: { code: number; message: string };
}

let rpcId = 1000;
const toolCall = (name: string, args: Record<string, unknown>, id = ++rpcId): Record<string, unknown> => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

async function callTool(
  fx: OAuthFixture,
  token: string,
  name: string,
  args: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<ToolAnswer> {
  const id = ++rpcId;
  const res = await mcpPost(fx, toolCall(name, args, id), { token, headers });
  const message = res.messages.find((m) => m['id'] === id);
  return {
    status: res.status,
    ms: res.ms,
    text: res.text,
    ...(message?.['result'] !== undefined ? { result: message['result'] as ToolAnswer['result'] } : {}),
    ...(message?.['error'] !== undefined ? { error: message['error'] as ToolAnswer['error'] } : {}),
  };
}

const textOf = (a: ToolAnswer): string => (a.result?.content ?? []).map((c) => c.text ?? '').join('\n');

/** A tool call that must succeed; its structured result. */
async function ok(
  fx: OAuthFixture,
  token: string,
  name: string,
  args: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const a = await callTool(fx, token, name, args);
  expect(a.status, a.text).toBe(200);
  expect(a.result?.isError ?? false, textOf(a) || a.text).toBe(false);
  return a.result?.structuredContent as Record<string, unknown>;
}

/** Every row of every item, and every table of the public schema, as the database holds them now. */
async function databaseState(fx: OAuthFixture): Promise<{ items: string; tables: string }> {
  return fx.store.withServerState(async (sql) => {
    const items = await sql.query<{ n: number; h: string | null }>(
      `SELECT count(*)::int AS n,
              md5(string_agg(concat_ws('|', tenant_id, id, version, title, body, tags::text, data::text,
                                       deleted_at), ',' ORDER BY tenant_id, id)) AS h
         FROM items`,
    );
    const tables = await sql.query<{ names: string }>(
      `SELECT string_agg(tablename, ',' ORDER BY tablename) AS names FROM pg_catalog.pg_tables
        WHERE schemaname = 'public'`,
    );
    return {
      items: `${items.rows[0]?.n ?? 0}:${items.rows[0]?.h ?? ''}`,
      tables: tables.rows[0]?.names ?? '',
    };
  });
}

/** Status codes of the /mcp requests the server logged after `offset` (a position in fx.logs()), with counts. */
function mcpStatusesSince(fx: OAuthFixture, offset: number): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of fx.logs().slice(offset).split('\n')) {
    if (!line.includes('"/mcp"')) continue;
    let entry: { msg?: unknown; path?: unknown; status?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (entry.msg !== 'request' || entry.path !== '/mcp' || typeof entry.status !== 'number') continue;
    counts.set(entry.status, (counts.get(entry.status) ?? 0) + 1);
  }
  return counts;
}

/** Text that only a database error (or a leaked query) would put in an answer. */
const SQL_LEAK =
  /\bSELECT\b|\bUNION\b|\bINSERT\b|\bDELETE\b|syntax error|at or near|\brelation\b|\bpg_\w+|SQLSTATE|unterminated|invalid input syntax|does not exist|duplicate key|violates|sqlite|postgres/i;

/** An answer's text with every echo of the payload taken out (the payload itself may be SQL). */
function withoutEcho(text: string, payload: string): string {
  let out = text;
  const forms = new Set([
    payload,
    JSON.stringify(payload).slice(1, -1),
    JSON.stringify(JSON.stringify(payload).slice(1, -1)).slice(1, -1),
  ]);
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    if (form.length > 0) out = out.split(form).join('«payload»');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- the suite

describe('security catalog #38–#40 at /mcp (stateless HTTP mode, PGlite)', () => {
  let fx: OAuthFixture;
  let alice: TestUser;
  let token: string;
  let otherToken: string;
  const seeded = { projectId: '', todoId: '', documentId: '', noteId: '' };
  const OTHER_SECRET = `other-tenant-secret-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    fx = await startOAuthFixture({ config: { server: { sessions: 'stateless' } } });
    alice = await fx.addUser();
    const bob = await fx.addUser();
    token = await obtainToken(fx, alice, 'Transport catalog client');
    otherToken = await obtainToken(fx, bob, 'Other tenant client');

    const project = await ok(fx, token, 'create_project', { name: 'Injection target', tags: ['alpha'] });
    seeded.projectId = String((project['project'] as { id: string }).id);
    const todo = await ok(fx, token, 'create_todo', {
      title: 'Target todo',
      project_id: seeded.projectId,
      due_date: '2026-05-01',
      tags: ['alpha'],
    });
    seeded.todoId = String((todo['todo'] as { id: string }).id);
    const doc = await ok(fx, token, 'create_external_document', {
      title: 'Target document',
      external_url: 'https://docs.example/target',
      tags: ['alpha'],
    });
    seeded.documentId = String((doc['document'] as { id: string }).id);
    const note = await ok(fx, token, 'add_note', { text: 'Target note alpha', tags: ['alpha'] });
    seeded.noteId = String((note['note'] as { id: string }).id);
    // Another tenant's data: no injection may ever bring it back.
    await ok(fx, otherToken, 'create_project', { name: OTHER_SECRET, tags: ['alpha'] });
    await ok(fx, otherToken, 'add_note', { text: `${OTHER_SECRET} note`, tags: ['alpha'] });
  }, 120_000);

  afterAll(async () => {
    await fx?.close();
  });

  // -------------------------------------------------------------------------------------------- #38
  describe('#38 DNS rebinding', () => {
    it('a tools/call with Origin: https://evil.example and a valid token is 403 and does not run', async () => {
      const marker = `evilorigin${randomBytes(4).toString('hex')}`;
      const before = await databaseState(fx);
      const res = await mcpPost(fx, toolCall('add_note', { text: marker }), {
        token,
        headers: { origin: EVIL },
      });
      expect(res.status, res.text).toBe(403);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      const error = res.messages[0]?.['error'] as { code: number; message: string } | undefined;
      expect(error?.message).toMatch(/Origin https:\/\/evil\.example is not allowed/);
      // Nothing was stored.
      expect(await databaseState(fx)).toEqual(before);
      const found = await ok(fx, token, 'search', { query: marker });
      expect(JSON.stringify(found['results'])).not.toContain(marker);
    });

    it('the CORS preflight from https://evil.example is refused too, and the server’s own origin is accepted', async () => {
      const preflight = await rawRequest(`${fx.origin}/mcp`, {
        method: 'OPTIONS',
        headers: {
          origin: EVIL,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
        ca: fx.ca.cert,
      });
      expect(preflight.status, preflight.text).toBe(403);
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();

      const own = await callTool(
        fx,
        token,
        'get_project',
        { project_id: seeded.projectId },
        { origin: fx.origin },
      );
      expect(own.status, own.text).toBe(200);
      expect(own.result?.isError ?? false, textOf(own)).toBe(false);
    });

    it.each(['evil.example', 'evil.example:443', 'rebind.evil.example:PORT', '127.0.0.1.evil.example:PORT'])(
      'Host: %s on the loopback server is 403 (a rebound name), with a valid token',
      async (host) => {
        const port = new URL(fx.origin).port;
        const res = await mcpPost(fx, toolCall('get_project', { project_id: seeded.projectId }), {
          token,
          headers: { host: host.replace('PORT', port) },
        });
        expect(res.status, res.text).toBe(403);
        expect(res.text).toMatch(/DNS rebinding/);
        expect(res.text).not.toContain('Injection target');
      },
    );

    it('Host: 127.0.0.1:PORT and localhost:PORT (this server) are served', async () => {
      const port = new URL(fx.origin).port;
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
        const res = await callTool(fx, token, 'get_project', { project_id: seeded.projectId }, { host });
        expect(res.status, `${host}: ${res.text}`).toBe(200);
      }
    });
  });

  // -------------------------------------------------------------------------------------------- #39
  describe('#39 SQL injection in tool arguments', () => {
    const PAYLOADS = [
      "' OR '1'='1",
      "' OR 1=1--",
      "1' OR '1'='1' --",
      "admin'--",
      '1; DROP TABLE items--',
      "'; DROP TABLE items; --",
      "'; DELETE FROM items; --",
      "'||pg_sleep(5)--",
      "1' AND pg_sleep(5) IS NULL--",
      "'); SELECT pg_sleep(5);--",
      "1) OR pg_sleep(5)::text = '' --",
      '") UNION SELECT id, title, body FROM items--',
      "' UNION SELECT NULL, NULL, NULL--",
      "' UNION SELECT tenant_id, title FROM items WHERE '1'='1",
      "x' AND 1=CAST((SELECT version()) AS int)--",
      "%' OR '%'='",
      "\\' OR 1=1 --",
      '\\',
      '\\\\',
      "'",
      '"',
      '\u0000',
      "alpha\u0000' OR '1'='1",
      '$1',
      '$$; SELECT 1; $$',
      "E'\\x27 OR 1=1--",
      '*',
      '1)) OR ((1=1',
      "';WAITFOR DELAY '0:0:5'--",
      "alpha' AND (SELECT count(*) FROM pg_catalog.pg_tables) > 0 --",
    ];

    /** The tools whose string arguments reach SQL, and how to put a payload in each of those arguments. */
    const TARGETS: { tool: string; args: (p: string) => Record<string, unknown>[] }[] = [
      {
        tool: 'search',
        args: (p) => [{ query: p }, { query: 'alpha', tags: [p] }, { query: 'alpha', status: [p] }],
      },
      {
        tool: 'list_todos',
        args: (p) => [{ project_id: p }, { tags: [p] }, { cursor: p }, { due_after: p }, { due_before: p }],
      },
      { tool: 'list_projects', args: (p) => [{ tags: [p] }, { cursor: p }] },
      { tool: 'list_documents', args: (p) => [{ tags: [p] }, { cursor: p }] },
      { tool: 'list_calendar_events', args: (p) => [{ tags: [p] }, { start_date: p }, { cursor: p }] },
      { tool: 'get_project', args: (p) => [{ project_id: p }, { project_id: `${seeded.projectId}${p}` }] },
      {
        tool: 'get_document',
        args: (p) => [{ document_id: p }, { document_id: `${seeded.documentId}${p}` }],
      },
      { tool: 'complete_todo', args: (p) => [{ todo_id: `missing${p}` }] },
    ];

    it('classic payloads in every string argument: no 5xx, no SQL text, no delay, no other tenant, nothing changed', async () => {
      const before = await databaseState(fx);
      const problems: string[] = [];
      let calls = 0;
      let slowest = 0;
      let refused = 0;
      for (const target of TARGETS) {
        // A client of its own per tool: the sweep stays under the per-user-and-client rate limit of /mcp.
        const sweepToken = await obtainToken(fx, alice, `Sweep ${target.tool}`);
        for (const payload of PAYLOADS) {
          for (const args of target.args(payload)) {
            calls += 1;
            const a = await callTool(fx, sweepToken, target.tool, args);
            const where = `${target.tool} ${JSON.stringify(args)}`;
            slowest = Math.max(slowest, a.ms);
            // Tool errors are results (200); a 4xx/5xx here would be the transport failing on the payload.
            if (a.status !== 200) problems.push(`${where}: HTTP ${a.status} ${a.text.slice(0, 200)}`);
            else if (a.result === undefined && a.error === undefined) problems.push(`${where}: no answer`);
            if (a.result?.isError === true || a.error !== undefined) refused += 1;
            if (a.ms > 3000) problems.push(`${where}: took ${a.ms} ms (did pg_sleep run?)`);
            if (a.error !== undefined && a.error.code !== -32602 && a.error.code !== -32603) {
              problems.push(`${where}: JSON-RPC error ${a.error.code}`);
            }
            const shown = withoutEcho(a.error?.message ?? textOf(a), payload);
            const leak = SQL_LEAK.exec(shown);
            if (leak) problems.push(`${where}: SQL text "${leak[0]}" in ${shown.slice(0, 300)}`);
            if (a.text.includes(OTHER_SECRET)) problems.push(`${where}: another tenant's data came back`);
          }
        }
      }
      console.info(
        `#39 payload sweep: ${calls} calls (${refused} refused as bad input, the rest ordinary results), slowest ${slowest} ms`,
      );
      expect(problems).toEqual([]);
      expect(calls).toBeGreaterThan(500);
      const after = await databaseState(fx);
      expect(after.tables).toBe(before.tables);
      expect(after.items).toBe(before.items);
      // The data is still served as before.
      const project = await ok(fx, token, 'get_project', { project_id: seeded.projectId });
      expect((project['project'] as { name: string }).name).toBe('Injection target');
      const todos = await ok(fx, token, 'list_todos', { tags: ['alpha'] });
      expect((todos['items'] as { id: string }[]).map((t) => t.id)).toEqual([seeded.todoId]);
    }, 180_000);

    it('the sweep can see a leak: a control payload finds the seeded data the normal way', async () => {
      // Control for the checks above: a genuine match returns the seeded item (so "no rows" is not "never works").
      const found = await ok(fx, token, 'search', { query: 'Target', tags: ['alpha'] });
      const titles = (found['results'] as { title: string }[]).map((r) => r.title);
      expect(titles).toContain('Target todo');
      expect(JSON.stringify(found)).not.toContain(OTHER_SECRET);
    });

    const SQLMAP = findProgram(['sqlmap']);
    const SCRIPT = findProgram(['script']);
    const runnable = (SQLMAP !== null && SCRIPT !== null) || IN_CI;
    const sqlmapIt = runnable ? it : it.skip;
    const sqlmapTitle = (tool: string): string =>
      runnable
        ? `sqlmap finds nothing injectable in ${tool}`
        : `sqlmap finds nothing injectable in ${tool} — SKIPPED: ${SQLMAP === null ? 'sqlmap' : '`script` (util-linux)'} is not installed here (apt-get install sqlmap; CI installs it and fails without it)`;

    const SQLMAP_RUNS: { tool: string; args: () => Record<string, unknown> }[] = [
      { tool: 'search', args: () => ({ query: 'alpha*', tags: ['alpha*'], status: ['todo*'] }) },
      { tool: 'list_todos', args: () => ({ project_id: `${seeded.projectId}*`, tags: ['alpha*'] }) },
      { tool: 'get_project', args: () => ({ project_id: `${seeded.projectId}*` }) },
    ];

    for (const run of SQLMAP_RUNS) {
      sqlmapIt(
        sqlmapTitle(run.tool),
        async () => {
          expect(SQLMAP, 'sqlmap must be on PATH in CI: .ci/run installs Debian’s sqlmap').not.toBe(null);
          expect(SCRIPT, '`script` (util-linux) must be on PATH to give sqlmap a terminal').not.toBe(null);
          const out = tempDir('mcp-pa-sqlmap-');
          try {
            // A client of its own per run (the rate limit of /mcp counts per user and client).
            const runToken = await obtainToken(fx, alice, `sqlmap ${run.tool}`);
            const before = await databaseState(fx);
            const body = JSON.stringify(toolCall(run.tool, run.args(), 7));
            const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
            const command = [
              quote(SQLMAP as string),
              '--batch',
              '--disable-coloring',
              '--level',
              '2',
              '--risk',
              '1',
              '--dbms',
              'PostgreSQL',
              '--flush-session',
              '--output-dir',
              quote(out.dir),
              '--ignore-code',
              '401',
              '--timeout',
              '5',
              '--retries',
              '0',
              '--time-sec',
              '2',
              '--force-ssl',
              '--headers',
              quote(
                [
                  `Authorization: Bearer ${runToken}`,
                  'Accept: application/json, text/event-stream',
                  'Content-Type: application/json',
                  `MCP-Protocol-Version: ${PROTOCOL}`,
                ].join('\\n'),
              ),
              '--data',
              quote(body),
              '-u',
              quote(`${fx.origin}/mcp`),
            ].join(' ');
            const logOffset = fx.logs().length;
            const started = Date.now();
            const result = await new Promise<{ code: number | string | null; output: string }>((resolve) => {
              // Asynchronous on purpose: the server under test runs in this process.
              execFile(
                SCRIPT as string,
                ['-qec', command, '/dev/null'],
                {
                  timeout: 150_000,
                  killSignal: 'SIGKILL',
                  maxBuffer: 64 * 1024 * 1024,
                  env: { ...process.env, HOME: out.dir },
                },
                (err, stdout, stderr) =>
                  resolve({
                    code: err === null ? 0 : ((err as NodeJS.ErrnoException).code ?? null),
                    output: `${stdout}${stderr}`,
                  }),
              );
            });
            const seconds = ((Date.now() - started) / 1000).toFixed(1);
            const statuses = mcpStatusesSince(fx, logOffset);
            const requests = [...statuses.values()].reduce((a, b) => a + b, 0);
            console.info(
              `#39 sqlmap ${run.tool}: ${seconds} s, ${requests} requests to /mcp (${[...statuses].map(([k, v]) => `${k}×${v}`).join(', ')}), exit ${String(result.code)}`,
            );
            const output = result.output.replace(/\r/g, '');
            expect(output, output.slice(-3000)).toMatch(
              /all tested parameters do not appear to be injectable/,
            );
            expect(output).not.toMatch(/sqlmap identified the following injection point/);
            expect(output).not.toMatch(/is vulnerable/);
            expect(output).not.toMatch(/appears to be '.*' injectable/);
            expect(output).not.toMatch(/might be injectable/);
            expect(output).not.toMatch(/connection timed out|unable to connect/i);
            // Every marked parameter was tested.
            const markers = (body.match(/\*/g) ?? []).length;
            const tested = output.match(/does not seem to be injectable/g) ?? [];
            expect(tested.length, output.slice(-3000)).toBeGreaterThanOrEqual(markers);
            // sqlmap really talked to the tool: many requests, answered (no 5xx, no rate limiting in the way).
            expect(requests, output.slice(-3000)).toBeGreaterThan(50);
            expect(statuses.get(200) ?? 0).toBeGreaterThan(requests * 0.9);
            expect([...statuses.keys()].filter((k) => k >= 500 || k === 429)).toEqual([]);
            const after = await databaseState(fx);
            expect(after).toEqual(before);
          } finally {
            out.cleanup();
          }
        },
        180_000,
      );
    }
  });

  // -------------------------------------------------------------------------------------------- #40
  describe('#40 oversized input', () => {
    it('a 20 MB body is 413 with a JSON-RPC error, and the server keeps serving', async () => {
      const body = JSON.stringify(toolCall('add_note', { text: 'x'.repeat(20 * 1024 * 1024) }));
      const res = await mcpPost(fx, body, { token });
      expect(res.status, res.text.slice(0, 300)).toBe(413);
      const error = res.messages[0]?.['error'] as { code: number; message: string } | undefined;
      expect(error?.message).toMatch(/Payload Too Large: request body must not exceed \d+ bytes/);
      const after = await callTool(fx, token, 'get_project', { project_id: seeded.projectId });
      expect(after.status, after.text).toBe(200);
    });

    it('a 20 MB chunked body (no Content-Length) is 413 too', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          `${fx.origin}/mcp`,
          {
            method: 'POST',
            ca: fx.ca.cert,
            headers: {
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              authorization: `Bearer ${token}`,
              'transfer-encoding': 'chunked',
            },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', (err: NodeJS.ErrnoException) => {
          // The server may close the connection after answering, while we are still writing.
          if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
        });
        const chunk = Buffer.alloc(1024 * 1024, 'x');
        req.write(
          '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","arguments":{"text":"',
        );
        let sent = 0;
        const pump = (): void => {
          while (sent < 20) {
            sent += 1;
            if (!req.write(chunk)) {
              req.once('drain', pump);
              return;
            }
          }
          req.end('"}}}');
        };
        pump();
      });
      expect(status).toBe(413);
    });

    it('an unknown argument field is -32602 naming the field (and what is allowed)', async () => {
      const a = await callTool(fx, token, 'create_todo', { title: 'Buy bread', titel: 'Buy bread' });
      expect(a.status, a.text).toBe(200);
      const message = a.error?.message ?? textOf(a);
      if (a.error) expect(a.error.code).toBe(-32602);
      else {
        expect(a.result?.isError).toBe(true);
        expect(message).toContain('-32602');
      }
      expect(message).toMatch(/unknown argument "titel" — did you mean "title"\?/);
      expect(message).toMatch(/allowed: title, description/);
      // Nothing was created.
      const found = await ok(fx, token, 'search', { query: 'Buy bread' });
      expect(found['results']).toEqual([]);
    });

    it('an unknown field inside a nested argument object is -32602 naming it', async () => {
      const a = await callTool(fx, token, 'update_status', {
        working_hours: { start: '09:00', end: '17:00', dayz: [1] },
      });
      expect(a.status, a.text).toBe(200);
      const message = a.error?.message ?? textOf(a);
      expect(a.error?.code ?? (a.result?.isError === true && message.includes('-32602') ? -32602 : 0)).toBe(
        -32602,
      );
      expect(message).toMatch(/dayz/);
    });
  });

  // -------------------------------------------------------------------------------------------- JSON depth
  describe('JSON nesting depth at /mcp', () => {
    it('a 10 000-deep array is 400 -32600 "nested deeper than 64 levels", and the server keeps serving', async () => {
      const depth = 10_000;
      const res = await mcpPost(fx, '['.repeat(depth) + ']'.repeat(depth), { token });
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      const error = res.messages[0]?.['error'] as { code: number; message: string } | undefined;
      expect(error).toEqual({ code: -32600, message: 'Invalid Request: JSON nested deeper than 64 levels' });
      const after = await callTool(fx, token, 'get_project', { project_id: seeded.projectId });
      expect(after.status, after.text).toBe(200);
    });

    it('a deep value inside a real tools/call is refused the same way (and nothing is stored)', async () => {
      let nested: unknown = 'bottom';
      for (let i = 0; i < 100; i++) nested = { a: nested };
      const res = await mcpPost(fx, toolCall('update_status', { laptop_specs: nested }), { token });
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      expect((res.messages[0]?.['error'] as { code: number } | undefined)?.code).toBe(-32600);
    });

    it('a deep body that also carries __proto__ keys is a 400, not a crash', async () => {
      const depth = 10_000;
      const body = `{"__proto__":{},"x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const res = await mcpPost(fx, body, { token });
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      const code = (res.messages[0]?.['error'] as { code: number } | undefined)?.code;
      expect([-32600, -32700]).toContain(code);
    });

    /** A tools/call nested exactly `levels` deep: message, params, arguments, laptop_specs, then arrays. */
    const nestedCall = (levels: number): Record<string, unknown> => {
      let nested: unknown = 1;
      for (let i = 0; i < levels - 4; i++) nested = [nested];
      return toolCall('update_status', { laptop_specs: { deep: nested } });
    };

    it('64 levels pass the transport (the tool then answers for itself); 65 are refused with 400 -32600', async () => {
      const at = await mcpPost(fx, nestedCall(64), { token });
      expect(at.status, at.text.slice(0, 300)).toBe(200);
      // Past the transport: the tool's own schema refuses an array there, naming the field.
      expect(JSON.stringify(at.messages)).toMatch(/laptop_specs/);

      const over = await mcpPost(fx, nestedCall(65), { token });
      expect(over.status, over.text.slice(0, 300)).toBe(400);
      expect(over.messages[0]?.['error']).toEqual({
        code: -32600,
        message: 'Invalid Request: JSON nested deeper than 64 levels',
      });

      const normal = await callTool(fx, token, 'get_project', { project_id: seeded.projectId });
      expect(normal.status, normal.text).toBe(200);
      expect(normal.result?.isError ?? false).toBe(false);
    });
  });
});
