import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { Agent } from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { startHttpApp } from '../../src/servers/http/app.js';
import { presentedCertificate, rawRequest, type RawResponse } from '../support/https.js';
import { startFixture, TENANT_HEADER, type Fixture } from './http-app-fixture.js';

// Sessions over time (bounds, idle expiry), stateless pooling across tenants, graceful shutdown and certificate
// reload, over real HTTPS on 127.0.0.1 with a real SQLite store. Slow requests are made slow for real: a store method
// held by a gate until the test releases it.

type Json = Record<string, unknown>;

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

let fx: Fixture | undefined;

afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

function post(f: Fixture, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(f.url(), {
    method: 'POST',
    ca: f.ca.cert,
    headers: { ...MCP_HEADERS, ...headers },
    body: JSON.stringify(body),
  });
}

async function openSession(f: Fixture): Promise<string> {
  const res = await post(f, INIT);
  expect(res.status).toBe(200);
  return res.headers['mcp-session-id'] as string;
}

function ping(f: Fixture, id: string): Promise<RawResponse> {
  return post(f, { jsonrpc: '2.0', id: 2, method: 'ping' }, { 'mcp-session-id': id });
}

function structured(result: unknown): Json {
  const parsed = CallToolResultSchema.parse(result);
  expect(parsed.isError ?? false).toBe(false);
  return parsed.structuredContent as Json;
}

function ids(result: unknown): string[] {
  return (structured(result)['items'] as Json[]).map((t) => t['id'] as string);
}

/** Resolves when a new TCP connection to the port is refused (the listener is closed). */
async function refused(port: number, ca: string): Promise<NodeJS.ErrnoException> {
  for (;;) {
    try {
      await rawRequest(`https://127.0.0.1:${port}/healthz`, { ca });
    } catch (err) {
      return err as NodeJS.ErrnoException;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('HTTP app: stateful session bounds', () => {
  it('makes room for a new session by ending the least recently active idle one', async () => {
    fx = await startFixture({ maxSessions: 2 });
    const first = await openSession(fx);
    const second = await openSession(fx);
    // first becomes the most recently active.
    expect((await ping(fx, first)).status).toBe(200);
    const third = await openSession(fx);
    expect((await ping(fx, second)).status).toBe(404);
    expect((await ping(fx, first)).status).toBe(200);
    expect((await ping(fx, third)).status).toBe(200);
  });

  it('ends a session that stays idle longer than the idle timeout', async () => {
    fx = await startFixture({ sessionIdleMs: 100 });
    const id = await openSession(fx);
    expect((await ping(fx, id)).status).toBe(200);
    // Wait (without requests, which would keep it alive) until the server says it ended the session.
    while (!/"reason":"idle"/.test(fx.logs())) await new Promise((r) => setTimeout(r, 20));
    expect((await ping(fx, id)).status).toBe(404);
  });
});

describe('HTTP app: stateless mode', () => {
  it('has no GET stream and no session to delete (405), and gives no session id', async () => {
    fx = await startFixture({ sessions: 'stateless' });
    const init = await post(fx, INIT);
    expect(init.status).toBe(200);
    expect(init.headers['mcp-session-id']).toBeUndefined();
    for (const method of ['GET', 'DELETE']) {
      const res = await rawRequest(fx.url(), {
        method,
        ca: fx.ca.cert,
        headers: { accept: 'text/event-stream', 'mcp-session-id': 'x' },
      });
      expect(res.status, method).toBe(405);
      expect(res.headers['allow']).toBe('POST');
    }
  });

  it('reuses servers across tenants without letting data, completions or requests cross', async () => {
    fx = await startFixture({ sessions: 'stateless', serverPoolSize: 1 });
    const a = (await fx.connect({ [TENANT_HEADER]: 'pool-a' })).client;
    const b = (await fx.connect({ [TENANT_HEADER]: 'pool-b' })).client;
    const aTodo = structured(await a.callTool({ name: 'create_todo', arguments: { title: 'A only' } }));
    const aId = (aTodo['todo'] as Json)['id'] as string;
    const bTodo = structured(await b.callTool({ name: 'create_todo', arguments: { title: 'B only' } }));
    const bId = (bTodo['todo'] as Json)['id'] as string;

    expect(ids(await a.callTool({ name: 'list_todos', arguments: {} }))).toEqual([aId]);
    expect(ids(await b.callTool({ name: 'list_todos', arguments: {} }))).toEqual([bId]);

    // Completions carry no caller: they must follow the request's tenant on a reused server.
    const complete = (client: typeof a) =>
      client.complete({
        ref: { type: 'ref/resource', uri: 'pa://{kind}/{id}' },
        argument: { name: 'id', value: 'tsk' },
        context: { arguments: { kind: 'task' } },
      });
    expect((await complete(a)).completion.values).toEqual([aId]);
    expect((await complete(b)).completion.values).toEqual([bId]);
    expect((await complete(a)).completion.values).toEqual([aId]);

    // Two requests at once: A's is held inside the store while B's is served on another instance and answers.
    const held = fx.gate.arm();
    const slowA = a.callTool({ name: 'list_todos', arguments: {} });
    await held.reached;
    expect(ids(await b.callTool({ name: 'list_todos', arguments: {} }))).toEqual([bId]);
    held.release();
    expect(ids(await slowA)).toEqual([aId]);
  });
});

describe('HTTP app: graceful shutdown', () => {
  it('drains an in-flight request, ends SSE streams, then refuses connections', async () => {
    fx = await startFixture();
    const f = fx;
    const streamer = await openSession(f);
    await post(f, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': streamer });
    let streamOpen!: () => void;
    const opened = new Promise<void>((r) => (streamOpen = r));
    const stream = rawRequest(f.url(), {
      ca: f.ca.cert,
      headers: { accept: 'text/event-stream', 'mcp-session-id': streamer },
      onHeaders: () => streamOpen(),
    });
    await opened;

    const { client } = await f.connect();
    await client.callTool({ name: 'create_todo', arguments: { title: 'Survives shutdown' } });
    const held = f.gate.arm();
    const slow = client.callTool({ name: 'list_todos', arguments: {} });
    await held.reached;

    let closed = false;
    const closing = f.app.close().then(() => {
      closed = true;
    });
    // The listener closes at once: new connections are refused while the slow request is still running.
    const err = await refused(f.app.port, f.ca.cert);
    expect(err.code).toBe('ECONNREFUSED');
    // The session's GET stream was ended by the server (it returns rather than hanging).
    const ended = await stream;
    expect(ended.status).toBe(200);
    expect(closed).toBe(false);

    held.release();
    const result = structured(await slow);
    expect((result['items'] as Json[]).map((t) => t['title'])).toEqual(['Survives shutdown']);
    await closing;
    expect(closed).toBe(true);
    expect((await refused(f.app.port, f.ca.cert)).code).toBe('ECONNREFUSED');
  });

  it('stops waiting for a stuck request after the grace period', async () => {
    fx = await startFixture({ shutdownGraceMs: 200 });
    const f = fx;
    const id = await openSession(f);
    await post(f, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id });
    const held = f.gate.arm();
    const stuck = post(
      f,
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'list_todos', arguments: {} } },
      { 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
    ).then(
      (res) => `answered ${res.status}: ${res.text}`,
      (err: Error) => `cut: ${err.message}`,
    );
    await held.reached;
    await f.app.close();
    // close() returned while the store call is still held: the connection was cut, no answer came.
    expect(await stuck).toMatch(/^cut: /);
    held.release();
  });
});

describe('HTTP app: certificate reload', () => {
  it('presents the new certificate to new connections while a keep-alive connection keeps working', async () => {
    fx = await startFixture();
    const f = fx;
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: f.ca.cert });
    try {
      const before = await rawRequest(f.url('/healthz'), { ca: f.ca.cert, agent });
      expect(before.status).toBe(200);
      expect(before.peerFingerprint256).toBe(f.cert.fingerprint256);

      const next = await f.ca.issue();
      expect(next.fingerprint256).not.toBe(f.cert.fingerprint256);
      f.app.reloadTls({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });

      const again = await rawRequest(f.url('/healthz'), { ca: f.ca.cert, agent });
      expect(again.status).toBe(200);
      expect(again.localPort).toBe(before.localPort);
      expect(again.peerFingerprint256).toBe(f.cert.fingerprint256);

      expect(await presentedCertificate(f.app.port, f.ca.cert)).toBe(next.fingerprint256);
      const fresh = await rawRequest(f.url('/healthz'), { ca: f.ca.cert });
      expect(fresh.status).toBe(200);
      expect(fresh.peerFingerprint256).toBe(next.fingerprint256);
    } finally {
      agent.destroy();
    }
  });
});

describe('HTTP app: plain HTTP on loopback', () => {
  it('serves MCP without TLS, sends no HSTS and has no certificate to reload', async () => {
    const base = await startFixture();
    fx = base;
    const plain = await startHttpApp({
      host: '127.0.0.1',
      port: 0,
      tls: null,
      sessions: 'stateful',
      allowedOrigins: [],
      bodyLimitBytes: 1024 * 1024,
      mcp: { assistant: base.assistant, hub: base.hub, logger: base.logger, version: '0' },
      defaultTimeZone: 'UTC',
      readiness: async () => ({ ok: true }),
      caller: () => ({ tenant: 'plain', scopes: new Set(['pa.read']) }),
      logger: base.logger,
    });
    try {
      expect(plain.url).toBe(`http://127.0.0.1:${plain.port}/mcp`);
      const res = await rawRequest(plain.url, {
        method: 'POST',
        ca: '',
        headers: MCP_HEADERS,
        body: JSON.stringify(INIT),
      });
      expect(res.status).toBe(200);
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(() => plain.reloadTls({})).toThrow(/plain HTTP/);
    } finally {
      await plain.close();
    }
  });
});
