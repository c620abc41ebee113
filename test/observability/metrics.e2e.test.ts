/**
 * Prometheus metrics of a real `mcp-pa serve` process (PGlite, and the real PostgreSQL server when
 * MCP_PA_TEST_DATABASE_URL is set): the separate listener and /metrics on the HTTPS listener, both behind the
 * metrics token; what the counters say after real OAuth flows, MCP calls, a refused token request and a rate-limit
 * hit; the database pool and embedding queue gauges; and one request id tying the response, its log line and its
 * audit event together.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import {
  headlessTokens,
  refreshTokens,
  startServerProcess,
  type HeadlessTokens,
  type ServerProcess,
} from '../support/server-process.js';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../support/postgres.js';

const TOKEN = randomBytes(24).toString('hex');
const PROTOCOL = '2025-11-25';

/** A plain-HTTP request to the metrics listener (undici's fetch would do too; this keeps the method free). */
function plain(
  url: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers ?? {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample of the exposition text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g))
      found.set(pair[1] as string, pair[2] as string);
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

const variants: { name: string; postgres: boolean }[] = [
  { name: 'PGlite', postgres: false },
  ...(TEST_DATABASE_URL ? [{ name: 'PostgreSQL', postgres: true }] : []),
];

describe.each(variants)('metrics of mcp-pa serve on $name', ({ postgres }) => {
  let server: ServerProcess;
  let db: TestDatabase | undefined;
  let metricsUrl: string;
  let tokens: HeadlessTokens;
  let session: string | undefined;

  const scrape = async (): Promise<string> => {
    const res = await plain(metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return res.text;
  };

  /** One JSON-RPC POST to /mcp with the access token. */
  const mcp = async (body: object, sessionId?: string) =>
    server.fetch(`${server.origin}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens.accessToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': PROTOCOL,
        ...(sessionId !== undefined ? { 'mcp-session-id': sessionId } : {}),
      },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    db = postgres ? await createTestDatabase() : undefined;
    server = await startServerProcess({
      users: ['alice'],
      usersInProcess: true,
      logLevel: 'debug',
      ...(db ? { env: { MCP_DATABASE_URL: db.url } } : {}),
      config: {
        metrics: { port: 0, token: TOKEN },
        security: { mcp_requests_per_minute: 12 },
        // Semantic search on, with a provider nothing answers: writes stay waiting for their vectors.
        features: { vector_search: true },
        embeddings: {
          provider: 'openai-compatible',
          base_url: 'http://127.0.0.1:9/v1',
          model: 'unreachable',
          dimensions: 32,
          max_retries: 0,
          timeout_ms: 500,
        },
      },
    });
    const ready = server
      .logs()
      .split('\n')
      .find((l) => l.includes('"msg":"http server ready"'));
    metricsUrl = (JSON.parse(ready ?? '{}') as { metrics?: string }).metrics ?? '';
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    tokens = await headlessTokens({ ...server, user: server.users.get('alice')! });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('the metrics listener answers only GET /metrics with the token', async () => {
    const none = await plain(metricsUrl);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    expect(none.text).not.toContain('mcp_pa_');
    const wrong = await plain(metricsUrl, { headers: { authorization: `Bearer ${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    const ok = await plain(metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(ok.text).toContain('# TYPE mcp_pa_http_requests_total counter');
    expect(ok.text).toContain('mcp_pa_process_cpu_seconds_total');
    expect((await plain(metricsUrl, { method: 'POST' })).status).toBe(405);
    expect((await plain(metricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });

  it('with a token, /metrics is served on the HTTPS listener too, for that token only', async () => {
    const none = await server.fetch(`${server.origin}/metrics`);
    expect(none.status).toBe(401);
    const ok = await server.fetch(`${server.origin}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('mcp_pa_tool_calls_total');
  });

  it('counts token issuance and refusals, tool calls by outcome, requests by route, and the embedding queue', async () => {
    const before = await scrape();
    const issued = (grant: string, text: string) =>
      sample(text, 'mcp_pa_oauth_tokens_issued_total', { grant_type: grant }) ?? 0;
    expect(issued('authorization_code', before)).toBeGreaterThanOrEqual(1);

    tokens = await refreshTokens(server, tokens.clientId, tokens.refreshToken);
    const refused = await server.fetch(`${server.origin}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: 'not-a-code',
        redirect_uri: 'http://127.0.0.1/cb',
        code_verifier: 'v'.repeat(43),
        client_id: tokens.clientId,
      }).toString(),
    });
    expect(refused.status).toBe(400);
    // The operator's log says why (at debug), under the response's request id.
    const refusedId = refused.headers.get('x-request-id');
    await expect
      .poll(() =>
        server
          .logs()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l['msg'] === 'token request refused' && l['reqId'] === refusedId),
      )
      .toMatchObject({
        grantType: 'authorization_code',
        client: tokens.clientId,
        error: 'invalid_grant',
      });

    const init = await mcp({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL,
        capabilities: {},
        clientInfo: { name: 'metrics-test', version: '1' },
      },
    });
    expect(init.status).toBe(200);
    session = init.headers.get('mcp-session-id') ?? undefined;
    await init.text();
    await (await mcp({ jsonrpc: '2.0', method: 'notifications/initialized' }, session)).text();
    for (const [id, title] of [
      [2, 'water the plants'],
      [3, 'call the plumber'],
    ] as const) {
      const res = await mcp(
        { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'create_todo', arguments: { title } } },
        session,
      );
      expect(res.status).toBe(200);
      expect(await res.text()).not.toContain('"isError":true');
    }
    const missing = await mcp(
      {
        jsonrpc: '2.0',
        id: 4,
        method: 'tools/call',
        params: { name: 'get_project', arguments: { project_id: '00000000-0000-4000-8000-000000000000' } },
      },
      session,
    );
    expect(await missing.text()).toContain('"isError":true');

    const after = await scrape();
    expect(issued('refresh_token', after) - issued('refresh_token', before)).toBe(1);
    expect(
      sample(after, 'mcp_pa_oauth_token_failures_total', {
        grant_type: 'authorization_code',
        error: 'invalid_grant',
      }),
    ).toBe(1);
    expect(sample(after, 'mcp_pa_tool_calls_total', { tool: 'create_todo', outcome: 'ok' })).toBe(2);
    expect(sample(after, 'mcp_pa_tool_calls_total', { tool: 'get_project', outcome: 'error' })).toBe(1);
    expect(sample(after, 'mcp_pa_tool_call_duration_seconds_count', { tool: 'create_todo' })).toBe(2);
    expect(
      sample(after, 'mcp_pa_http_requests_total', { route: '/mcp', method: 'POST', status: '200' }),
    ).toBeGreaterThanOrEqual(4);
    expect(
      sample(after, 'mcp_pa_http_requests_total', { route: '/oauth/token', method: 'POST', status: '400' }),
    ).toBe(1);
    expect(
      sample(after, 'mcp_pa_http_request_duration_seconds_count', {
        route: '/oauth/token',
        method: 'POST',
        status: '200',
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(sample(after, 'mcp_pa_mcp_sessions')).toBeGreaterThanOrEqual(1);
    // Both todos wait for a vector the provider cannot make.
    expect(sample(after, 'mcp_pa_embedding_queue_items')).toBeGreaterThanOrEqual(2);
    expect(sample(after, 'mcp_pa_audit_events_total', { type: 'token.issued' })).toBeGreaterThanOrEqual(1);
    if (postgres) {
      expect(sample(after, 'mcp_pa_db_pool_connections', { state: 'max' })).toBe(10);
      expect(sample(after, 'mcp_pa_db_pool_connections', { state: 'open' })).toBeGreaterThanOrEqual(1);
      expect(sample(after, 'mcp_pa_db_pool_connections', { state: 'waiting' })).toBe(0);
    } else {
      expect(after).not.toMatch(/^mcp_pa_db_pool_connections\{/m);
    }

    // An unknown path is one label, whatever the path.
    for (const p of ['/nope-1', '/nope-2/x'])
      expect((await server.fetch(`${server.origin}${p}`)).status).toBe(404);
    const unmatched = await scrape();
    expect(
      sample(unmatched, 'mcp_pa_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' }),
    ).toBe(2);
    expect(unmatched).not.toContain('nope');
  }, 60_000);

  it('one request id ties the response, its log line, the audit event and a tool call log line', async () => {
    const unauthorized = await server.fetch(`${server.origin}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(unauthorized.status).toBe(401);
    const id = unauthorized.headers.get('x-request-id') ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const call = await mcp(
      {
        jsonrpc: '2.0',
        id: 9,
        method: 'tools/call',
        params: { name: 'get_status', arguments: {} },
      },
      session,
    );
    const callId = call.headers.get('x-request-id') ?? '';
    await call.text();
    await expect
      .poll(
        () => {
          const lines = server
            .logs()
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          const request = lines.find((l) => l['msg'] === 'request' && l['reqId'] === id);
          const audit = lines.find(
            (l) =>
              l['msg'] === 'audit' &&
              (l['audit'] as { type?: string; requestId?: string }).requestId === id &&
              (l['audit'] as { type?: string }).type === 'mcp.unauthorized',
          );
          const tool = lines.find((l) => l['msg'] === 'tool call' && l['reqId'] === callId);
          return [request?.['status'], audit !== undefined, tool?.['tool']];
        },
        { timeout: 10_000 },
      )
      .toEqual([401, true, 'get_status']);
  });

  it('counts rate-limit hits by limit', async () => {
    let limited = false;
    for (let i = 0; i < 40 && !limited; i++) {
      const res = await mcp({ jsonrpc: '2.0', id: 100 + i, method: 'ping' }, session);
      await res.text();
      limited = res.status === 429;
    }
    expect(limited).toBe(true);
    const text = await scrape();
    expect(sample(text, 'mcp_pa_rate_limit_hits_total', { limit: 'mcp' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mcp_pa_audit_events_total', { type: 'rate_limit.hit' })).toBeGreaterThanOrEqual(1);
  });
});
