import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, type RawResponse } from '../support/https.js';
import { CLIENT_HEADER, startFixture, TENANT_HEADER, type Fixture } from './http-app-fixture.js';

// The HTTP layer's own behaviour over real HTTPS on 127.0.0.1: what the MCP Streamable HTTP transport spec and HTTP
// require of /mcp (status codes, JSON-RPC error bodies, sessions bound to their caller, notifications per tenant),
// the health endpoints and the response headers. Raw requests where the SDK client would not send what is tested.

type Json = Record<string, unknown>;

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function initialize(id = 1, name = 'raw'): Json {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name, version: '1' } },
  };
}

/** The JSON-RPC messages of a response: its JSON body, or the data lines of its SSE body. */
function messages(res: RawResponse): Json[] {
  if (res.json !== undefined) return [res.json as Json];
  return res.text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l.length > 6)
    .map((l) => JSON.parse(l.slice(6)) as Json);
}

function rpcError(res: RawResponse): { code: number; message: string } {
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json as Json;
  expect(body['jsonrpc']).toBe('2.0');
  expect(body['id']).toBeNull();
  return body['error'] as { code: number; message: string };
}

describe('HTTP app: /mcp transport rules (stateful)', () => {
  let fx: Fixture;

  const post = (body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> =>
    rawRequest(fx.url(), {
      method: 'POST',
      ca: fx.ca.cert,
      headers: { ...MCP_HEADERS, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  /** Opens a session with a raw initialize; returns its id. */
  async function openSession(headers: Record<string, string> = {}): Promise<string> {
    const res = await post(initialize(), headers);
    expect(res.status).toBe(200);
    const id = res.headers['mcp-session-id'];
    expect(typeof id).toBe('string');
    const [result] = messages(res);
    expect((result?.['result'] as Json)['protocolVersion']).toBe('2025-11-25');
    const done = await post(
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { 'mcp-session-id': id as string, 'mcp-protocol-version': '2025-11-25', ...headers },
    );
    expect(done.status).toBe(202);
    return id as string;
  }

  function ping(sessionId: string, headers: Record<string, string> = {}): Promise<RawResponse> {
    return post(
      { jsonrpc: '2.0', id: 7, method: 'ping' },
      { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25', ...headers },
    );
  }

  beforeAll(async () => {
    fx = await startFixture({
      sessions: 'stateful',
      allowedOrigins: ['https://app.example.com'],
      bodyLimitBytes: 64 * 1024,
    });
  });

  afterAll(async () => {
    await fx?.close();
  });

  it('answers /healthz and /readyz, and 503 with the reason when not ready', async () => {
    const health = await rawRequest(fx.url('/healthz'), { ca: fx.ca.cert });
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });

    const ready = await rawRequest(fx.url('/readyz'), { ca: fx.ca.cert });
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready' });

    fx.readiness = { ok: false, reason: 'database unreachable: connection refused' };
    try {
      const notReady = await rawRequest(fx.url('/readyz'), { ca: fx.ca.cert });
      expect(notReady.status).toBe(503);
      expect(notReady.json).toEqual({
        status: 'unavailable',
        reason: 'database unreachable: connection refused',
      });
      // Liveness does not depend on readiness.
      expect((await rawRequest(fx.url('/healthz'), { ca: fx.ca.cert })).status).toBe(200);
    } finally {
      fx.readiness = { ok: true };
    }
  });

  it('sets security headers on every response, no-store on /mcp (SSE included) and HSTS over TLS', async () => {
    const responses = [
      await rawRequest(fx.url('/healthz'), { ca: fx.ca.cert }),
      await post(initialize()),
      await post('{not json'),
      await rawRequest(fx.url('/nowhere'), { ca: fx.ca.cert }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 400, 404]);
    expect(responses[1]?.headers['content-type']).toBe('text/event-stream');
    expect(responses[1]?.headers['cache-control']).toBe('no-store, no-transform');
    for (const r of responses) {
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['cache-control']).toMatch(/^no-store(, no-transform)?$/);
      expect(r.headers['strict-transport-security']).toMatch(/^max-age=\d+/);
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
    // HSTS is kept from the name localhost: browsers would force https on all its ports.
    const local = await rawRequest(fx.url('/healthz'), {
      ca: fx.ca.cert,
      headers: { host: `localhost:${fx.app.port}` },
    });
    expect(local.status).toBe(200);
    expect(local.headers['strict-transport-security']).toBeUndefined();
  });

  it('refuses a foreign Origin with 403 and a JSON-RPC error; accepts its own and configured ones', async () => {
    const evil = await post(initialize(), { origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(rpcError(evil).message).toContain('https://evil.example');
    expect(evil.headers['mcp-session-id']).toBeUndefined();

    const opaque = await post(initialize(), { origin: 'null' });
    expect(opaque.status).toBe(403);

    // Its own origin (the listening URL, or localhost on the same port) and a configured one pass.
    for (const origin of [new URL(fx.app.url).origin, `https://localhost:${fx.app.port}`]) {
      const own = await post(initialize(), { origin });
      expect(own.status, origin).toBe(200);
    }
    const configured = await post(initialize(), { origin: 'https://APP.example.com' });
    expect(configured.status).toBe(200);
    expect(configured.headers['access-control-allow-origin']).toBe('https://APP.example.com');
    expect(configured.headers['access-control-expose-headers']).toContain('Mcp-Session-Id');

    // The same host on another port or scheme is another origin.
    const otherPort = await post(initialize(), { origin: `https://127.0.0.1:${fx.app.port + 1}` });
    expect(otherPort.status).toBe(403);
    const plain = await post(initialize(), { origin: `http://127.0.0.1:${fx.app.port}` });
    expect(plain.status).toBe(403);

    // A preflight from an allowed origin gets the CORS answer; from another one, 403.
    const preflight = await rawRequest(fx.url(), {
      method: 'OPTIONS',
      ca: fx.ca.cert,
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, mcp-session-id',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-methods']).toContain('POST');
    expect(preflight.headers['access-control-allow-headers']).toContain('Mcp-Session-Id');
    const badPreflight = await rawRequest(fx.url(), {
      method: 'OPTIONS',
      ca: fx.ca.cert,
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(badPreflight.status).toBe(403);
  });

  it('refuses a Host that is not this loopback server (DNS rebinding) with 403', async () => {
    const rebound = await post(initialize(), { host: `evil.example:${fx.app.port}` });
    expect(rebound.status).toBe(403);
    expect(rpcError(rebound).message).toMatch(/Host evil\.example/);
    const health = await rawRequest(fx.url('/healthz'), {
      ca: fx.ca.cert,
      headers: { host: 'attacker.test' },
    });
    expect(health.status).toBe(403);
    for (const host of [`localhost:${fx.app.port}`, `127.0.0.1:${fx.app.port}`, '[::1]:1234', 'LOCALHOST']) {
      expect((await post(initialize(), { host })).status, host).toBe(200);
    }
  });

  it('answers an unsupported MCP-Protocol-Version with 400 naming the supported ones', async () => {
    const onInit = await post(initialize(), { 'mcp-protocol-version': '1999-01-01' });
    expect(onInit.status).toBe(400);
    const message = rpcError(onInit).message;
    expect(message).toContain('1999-01-01');
    for (const v of SUPPORTED_PROTOCOL_VERSIONS) expect(message).toContain(v);

    const id = await openSession();
    const later = await ping(id, { 'mcp-protocol-version': '2030-01-01' });
    expect(later.status).toBe(400);
    expect(rpcError(later).message).toContain('2025-11-25');
    const get = await rawRequest(fx.url(), {
      ca: fx.ca.cert,
      headers: { accept: 'text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': 'x' },
    });
    expect(get.status).toBe(400);
    // A supported one works.
    expect((await ping(id, { 'mcp-protocol-version': '2025-06-18' })).status).toBe(200);
  });

  it('answers malformed and empty bodies with JSON-RPC -32700, JSON that is not JSON-RPC with -32600 (400)', async () => {
    for (const body of ['{"jsonrpc": "2.0", "id": 1, "method": ', '', '   ', '\u0000']) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(rpcError(res).code, JSON.stringify(body)).toBe(-32700);
    }
    for (const body of [
      'null',
      '[]',
      '[1, 2]',
      '{"hello": "world"}',
      '{"jsonrpc": "1.0", "method": "ping"}',
    ]) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(rpcError(res).code, body).toBe(-32600);
    }
    // A body with __proto__ keys neither crashes nor gives parsed objects a prototype.
    const sneaky = await post(
      '{"jsonrpc":"2.0","id":1,"method":"initialize","__proto__":{"polluted":true},"params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}',
    );
    expect(sneaky.status).toBe(200);
    expect(({} as Json)['polluted']).toBeUndefined();
  });

  it('answers a body over the limit with 413 saying the limit (declared or streamed)', async () => {
    const big = JSON.stringify(initialize(1, 'x'.repeat(70 * 1024)));
    const declared = await post(big);
    expect(declared.status).toBe(413);
    const err = rpcError(declared);
    expect(err.message).toContain(String(64 * 1024));
    expect(err.message).toMatch(/bytes/);

    const streamed = await post(big, { 'transfer-encoding': 'chunked' });
    expect(streamed.status).toBe(413);
    expect(rpcError(streamed).message).toContain(String(64 * 1024));

    // Just under the limit is read and parsed.
    const fits = await post(JSON.stringify(initialize(1, 'x'.repeat(60 * 1024))));
    expect(fits.status).toBe(200);
  });

  it('answers a wrong Content-Type with 415 and a wrong Accept with 406', async () => {
    const text = await post(JSON.stringify(initialize()), { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(rpcError(text).message).toMatch(/application\/json/);
    const sneaky = await post(JSON.stringify(initialize()), {
      'content-type': 'text/plain; x=application/json',
    });
    expect(sneaky.status).toBe(415);
    const none = await rawRequest(fx.url(), {
      method: 'POST',
      ca: fx.ca.cert,
      headers: { accept: MCP_HEADERS.accept },
      body: JSON.stringify(initialize()),
    });
    expect(none.status).toBe(415);
    expect((await post(initialize(), { 'content-type': 'application/json; charset=utf-8' })).status).toBe(
      200,
    );

    const jsonOnly = await post(initialize(), { accept: 'application/json' });
    expect(jsonOnly.status).toBe(406);
    expect(rpcError(jsonOnly).message).toMatch(/text\/event-stream/);
    const id = await openSession();
    const get = await rawRequest(fx.url(), {
      ca: fx.ca.cert,
      headers: { accept: 'application/json', 'mcp-session-id': id },
    });
    expect(get.status).toBe(406);
  });

  it('answers other methods with 405 and the allowed ones', async () => {
    const put = await rawRequest(fx.url(), {
      method: 'PUT',
      ca: fx.ca.cert,
      headers: MCP_HEADERS,
      body: '{}',
    });
    expect(put.status).toBe(405);
    expect(put.headers['allow']).toBe('GET, POST, DELETE');
    expect(rpcError(put).code).toBe(-32000);
  });

  it('answers a request without a caller with 401', async () => {
    const res = await post(initialize(), { [TENANT_HEADER]: '' });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(rpcError(res).message).toMatch(/authentication/i);
  });

  it('gives each session a random id and binds it to its caller: others get 404, as for unknown ids', async () => {
    const a = await openSession({ [TENANT_HEADER]: 'tenant-a', [CLIENT_HEADER]: 'app-1' });
    const b = await openSession({ [TENANT_HEADER]: 'tenant-a', [CLIENT_HEADER]: 'app-1' });
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);

    expect((await ping(a, { [TENANT_HEADER]: 'tenant-a', [CLIENT_HEADER]: 'app-1' })).status).toBe(200);
    const otherTenant = await ping(a, { [TENANT_HEADER]: 'tenant-b', [CLIENT_HEADER]: 'app-1' });
    const otherClient = await ping(a, { [TENANT_HEADER]: 'tenant-a', [CLIENT_HEADER]: 'app-2' });
    const unknown = await ping('3f1c2c1e-0000-4000-8000-000000000000', { [TENANT_HEADER]: 'tenant-a' });
    for (const res of [otherTenant, otherClient, unknown]) {
      expect(res.status).toBe(404);
      expect(rpcError(res)).toEqual({ code: -32001, message: 'Session not found' });
    }
    // Another caller cannot end the session either.
    const del = await rawRequest(fx.url(), {
      method: 'DELETE',
      ca: fx.ca.cert,
      headers: { 'mcp-session-id': a, [TENANT_HEADER]: 'tenant-b', [CLIENT_HEADER]: 'app-1' },
    });
    expect(del.status).toBe(404);
    expect((await ping(a, { [TENANT_HEADER]: 'tenant-a', [CLIENT_HEADER]: 'app-1' })).status).toBe(200);
  });

  it('asks for a session id on requests other than initialize (400)', async () => {
    const res = await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' });
    expect(res.status).toBe(400);
    expect(rpcError(res).message).toMatch(/Mcp-Session-Id/);
    const get = await rawRequest(fx.url(), { ca: fx.ca.cert, headers: { accept: 'text/event-stream' } });
    expect(get.status).toBe(400);
  });

  it('ends a session on DELETE, after which its id is unknown (404)', async () => {
    const { client, transport } = await fx.connect({ [TENANT_HEADER]: 'deleter' });
    await client.ping();
    const id = transport.sessionId;
    expect(id).toBeDefined();
    await transport.terminateSession();
    const after = await ping(id as string, { [TENANT_HEADER]: 'deleter' });
    expect(after.status).toBe(404);
    const again = await rawRequest(fx.url(), {
      method: 'DELETE',
      ca: fx.ca.cert,
      headers: { 'mcp-session-id': id as string, [TENANT_HEADER]: 'deleter' },
    });
    expect(again.status).toBe(404);
  });

  it('notifies subscribers of the same tenant on their GET stream, never another tenant', async () => {
    const open = async (tenant: string) => {
      let opened!: () => void;
      const streamOpen = new Promise<void>((r) => (opened = r));
      const c = await fx.connect({ [TENANT_HEADER]: tenant }, { onGetStream: () => opened() });
      const seen: string[] = [];
      const waiters: { uri: string; resolve: () => void }[] = [];
      c.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
        seen.push(n.params.uri);
        const i = waiters.findIndex((w) => w.uri === n.params.uri);
        if (i >= 0) waiters.splice(i, 1)[0]?.resolve();
      });
      const waitFor = (uri: string) => new Promise<void>((resolve) => waiters.push({ uri, resolve }));
      await streamOpen;
      return { ...c, seen, waitFor };
    };
    const watcher = await open('tenant-n1');
    const writer = await open('tenant-n1');
    const stranger = await open('tenant-n2');
    for (const uri of ['pa://todos', 'pa://notes']) {
      await watcher.client.subscribeResource({ uri });
      await stranger.client.subscribeResource({ uri });
    }

    // n1 writes a todo: n1's subscriber hears of it on its stream.
    const n1Todo = watcher.waitFor('pa://todos');
    await writer.client.callTool({ name: 'create_todo', arguments: { title: 'Written by n1' } });
    await n1Todo;
    // The stranger then writes a note. Its stream is ordered: had n1's todo reached it, that notification would
    // come before the one for its own note.
    const n2Note = stranger.waitFor('pa://notes');
    await stranger.client.callTool({ name: 'add_note', arguments: { text: 'Written by n2' } });
    await n2Note;
    expect(stranger.seen).toEqual(['pa://notes']);

    // The other way round: n2's todo must not reach n1 before n1's own note.
    const n2Todo = stranger.waitFor('pa://todos');
    await stranger.client.callTool({ name: 'create_todo', arguments: { title: 'Written by n2' } });
    await n2Todo;
    const n1Note = watcher.waitFor('pa://notes');
    await writer.client.callTool({ name: 'add_note', arguments: { text: 'Written by n1' } });
    await n1Note;
    expect(watcher.seen).toEqual(['pa://todos', 'pa://notes']);
    expect(stranger.seen).toEqual(['pa://notes', 'pa://todos']);
    // The writer did not subscribe: nothing for it.
    expect(writer.seen).toEqual([]);
  });

  it('logs each request with its id, method, status and duration, never its body or Authorization', async () => {
    const secret = 'Bearer s3cr3t-token-value';
    const res = await post(initialize(1, 'body-secret-xyz'), { authorization: secret });
    expect(res.status).toBe(200);
    const reqId = res.headers['x-request-id'] as string;
    const line = fx
      .logs()
      .split('\n')
      .filter((l) => l.includes(reqId))
      .map((l) => JSON.parse(l) as Json)
      .find((l) => l['msg'] === 'request');
    expect(line).toMatchObject({ reqId, method: 'POST', path: '/mcp', status: 200 });
    expect(typeof line?.['ms']).toBe('number');
    expect(fx.logs()).not.toContain('s3cr3t-token-value');
    expect(fx.logs()).not.toContain('body-secret-xyz');
  });
});
