/**
 * MCP sessions across replicas: two `mcp-pa serve` processes behind a TCP (TLS-passthrough) load balancer, driven
 * by the MCP SDK's own client (StreamableHTTPClientTransport with a bearer token).
 *
 * Stateful sessions (the default) live in the process that created them:
 * - a session made on A is unknown on B (404, JSON-RPC -32001 "Session not found"); through round-robin each
 *   request of the session succeeds exactly when it lands on A;
 * - the SDK client through round-robin with a connection per request fails right after initialize (its next
 *   request lands on the other replica); a layer-4 balancer cannot route by Mcp-Session-Id (it never sees HTTP);
 * - with keep-alive a session holds only while its connection does: after a failover to B the next call gets 404,
 *   which the SDK (1.x) does not recover from by itself — the application connects again (a new session), and the
 *   data is all there;
 * - resource notifications come from the replica where the change was made: a session on A subscribed to
 *   pa://projects hears of projects created through A, not of those created through B.
 *
 * Stateless sessions (`server.sessions: stateless`): a full SDK session through round-robin, a new connection per
 * request, every request landing on either replica — a project created on one is read on the other.
 *
 * Needs MCP_PA_TEST_DATABASE_URL and MCP_PA_TEST_REDIS_URL.
 */
import { Agent } from 'node:https';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { httpsFetch } from '../support/https.js';
import { headlessTokens } from '../support/server-process.js';
import { INITIALIZE, mcpPost, PING, watched, type Tokens } from './flows.js';
import { describeWithReplicas, startReplicas, type Replicas } from './replicas.js';

interface Call {
  readonly method: string;
  readonly status: number;
  /** The replica the balancer gave the request's connection (undefined: an open keep-alive connection was reused). */
  readonly backend: string | undefined;
}

/** The SDK's client on the balancer's /mcp with a bearer token; records which replica took each request. */
function sdkClient(
  r: Replicas,
  token: string,
  agent: Agent,
): { client: Client; transport: StreamableHTTPClientTransport; calls: Call[] } {
  const base = httpsFetch(r.ca.cert, agent);
  const calls: Call[] = [];
  const fetchImpl: FetchLike = async (input, init) => {
    const before = r.lb.log().length;
    const res = await base(input, init);
    calls.push({ method: init?.method ?? 'GET', status: res.status, backend: r.lb.log()[before] });
    return res;
  };
  const transport = new StreamableHTTPClientTransport(new URL(r.resource), {
    fetch: fetchImpl,
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  return { client: new Client({ name: 'replica-sessions', version: '1.0.0' }), transport, calls };
}

function structured(result: unknown): Record<string, unknown> {
  const r = result as { isError?: boolean; structuredContent?: Record<string, unknown>; content?: unknown };
  expect(r.isError ?? false, JSON.stringify(r.content)).toBe(false);
  expect(r.structuredContent).toBeDefined();
  return r.structuredContent as Record<string, unknown>;
}

async function createProject(client: Client, name: string): Promise<string> {
  const created = structured(await client.callTool({ name: 'create_project', arguments: { name } }));
  return (created['project'] as { id: string }).id;
}

async function projectNames(client: Client): Promise<string[]> {
  const list = structured(await client.callTool({ name: 'list_projects', arguments: {} }));
  return (list['items'] as { name: string }[]).map((p) => p.name);
}

/** A project created through a raw stateful session on one replica's own address. */
async function createProjectAt(r: Replicas, origin: string, token: string, name: string): Promise<void> {
  const init = await mcpPost(r.fetch, `${origin}/mcp`, token, INITIALIZE);
  expect(init.status, init.text).toBe(200);
  const call = await mcpPost(
    r.fetch,
    `${origin}/mcp`,
    token,
    { id: 3, method: 'tools/call', params: { name: 'create_project', arguments: { name } } },
    init.sessionId ?? undefined,
  );
  expect(call.status, call.text).toBe(200);
  expect(call.text).toContain(name);
}

async function waitFor(condition: () => boolean, what: string, maxMs = 10_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${maxMs} ms: ${what}`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

/** Alice's tokens from a flow on A (the balancer pinned there for it). */
async function tokensFor(r: Replicas): Promise<Tokens> {
  r.lb.pin('A');
  try {
    const user = r.users.get('alice') as { username: string; password: string };
    return watched(
      r.secrets,
      await headlessTokens({ origin: r.issuer, resource: r.resource, ca: r.ca, user }),
    );
  } finally {
    r.lb.pin(null);
  }
}

describeWithReplicas('stateful MCP sessions (the default) across two replicas', () => {
  let r: Replicas;
  let token: string;
  const agents: Agent[] = [];
  const newAgent = (keepAlive: boolean): Agent => {
    const agent = new Agent({ keepAlive, ca: r.ca.cert });
    agents.push(agent);
    return agent;
  };

  beforeAll(async () => {
    r = await startReplicas({ label: 'sessions-stateful', users: ['alice'] });
    token = (await tokensFor(r)).accessToken;
  }, 120_000);
  afterEach(() => {
    r?.lb.pin(null);
    r?.lb.resetLog();
  });
  afterAll(async () => {
    for (const agent of agents) agent.destroy();
    await r?.close();
  }, 60_000);

  it('a session made on A is unknown on B (404 Session not found); round-robin serves it only on A', async () => {
    const init = await mcpPost(r.fetch, `${r.a.origin}/mcp`, token, INITIALIZE);
    expect(init.status).toBe(200);
    const sid = init.sessionId as string;
    expect(sid).toBeTruthy();
    expect((await mcpPost(r.fetch, `${r.a.origin}/mcp`, token, PING, sid)).status).toBe(200);
    const atB = await mcpPost(r.fetch, `${r.b.origin}/mcp`, token, PING, sid);
    expect(atB.status).toBe(404);
    expect(JSON.parse(atB.text)).toMatchObject({ error: { code: -32001, message: 'Session not found' } });

    r.lb.resetLog();
    const seen: [string | undefined, number][] = [];
    for (let i = 0; i < 4; i++) {
      const before = r.lb.log().length;
      const res = await mcpPost(r.fetch, r.resource, token, PING, sid);
      seen.push([r.lb.log()[before], res.status]);
    }
    expect(seen.map(([b]) => b).sort()).toEqual(['A', 'A', 'B', 'B']);
    for (const [backend, status] of seen) expect(status, `at ${backend}`).toBe(backend === 'A' ? 200 : 404);
  });

  it('the SDK client through round-robin (a connection per request) fails right after initialize: 404', async () => {
    const { client, transport, calls } = sdkClient(r, token, newAgent(false));
    try {
      const failure = await client.connect(transport).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(StreamableHTTPError);
      expect((failure as StreamableHTTPError).code).toBe(404);
      expect(String(failure)).toContain('Session not found');
      // initialize on one replica, notifications/initialized on the other.
      expect(calls.map((c) => [c.method, c.status])).toEqual([
        ['POST', 200],
        ['POST', 404],
      ]);
      expect(calls[0]?.backend).not.toBe(calls[1]?.backend);
    } finally {
      await client.close().catch(() => undefined);
    }
  });

  it('with keep-alive the session holds while its connection does; after a failover to B: 404, and a new session works', async () => {
    r.lb.pin('A');
    const keepAlive = newAgent(true);
    const first = sdkClient(r, token, keepAlive);
    const errors: unknown[] = [];
    first.client.onerror = (err) => errors.push(err);
    await first.client.connect(first.transport);
    try {
      const sid = first.transport.sessionId;
      expect(sid).toBeTruthy();
      await createProject(first.client, 'Failover project');
      expect(await projectNames(first.client)).toContain('Failover project');
      expect(new Set(first.calls.map((c) => c.backend).filter((b) => b !== undefined))).toEqual(
        new Set(['A']),
      );

      // The balancer fails over: open connections end, new ones go to B.
      r.lb.pin('B');
      r.lb.dropConnections();
      // The client notices its connections are gone (else its next request dies with the socket, not with 404).
      await waitFor(
        () => Object.keys(keepAlive.sockets).length + Object.keys(keepAlive.freeSockets).length === 0,
        'the client to see its connections closed',
      );
      const failure = await first.client.callTool({ name: 'list_projects', arguments: {} }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(StreamableHTTPError);
      expect((failure as StreamableHTTPError).code).toBe(404);
      expect(first.calls.at(-1)).toEqual({ method: 'POST', status: 404, backend: 'B' });
      // The SDK keeps the dead session id: it does not start a new session by itself.
      expect(first.transport.sessionId).toBe(sid);
    } finally {
      await first.client.close().catch(() => undefined);
    }

    // What the application does: connect again. The new session lives on B and sees everything.
    const second = sdkClient(r, token, newAgent(true));
    await second.client.connect(second.transport);
    try {
      expect(second.transport.sessionId).toBeTruthy();
      expect(await projectNames(second.client)).toContain('Failover project');
      expect(new Set(second.calls.map((c) => c.backend).filter((b) => b !== undefined))).toEqual(
        new Set(['B']),
      );
    } finally {
      await second.client.close().catch(() => undefined);
    }
  });

  it('resource notifications come from the replica where the change was made', async () => {
    r.lb.pin('A');
    const { client, transport } = sdkClient(r, token, newAgent(true));
    const updates: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updates.push(n.params.uri);
    });
    await client.connect(transport);
    try {
      expect(client.getServerCapabilities()?.resources?.subscribe).toBe(true);
      await client.subscribeResource({ uri: 'pa://projects' });
      // A change through A reaches the session (and shows its notification stream is open).
      await createProjectAt(r, r.a.origin, token, 'Made through A 1');
      await waitFor(() => updates.length >= 1, 'the notification of the change made through A');
      // A change through B: the session on A is not told.
      await createProjectAt(r, r.b.origin, token, 'Made through B');
      await new Promise((res) => setTimeout(res, 1000));
      await createProjectAt(r, r.a.origin, token, 'Made through A 2');
      await waitFor(() => updates.length >= 2, 'the notification of the second change made through A');
      await new Promise((res) => setTimeout(res, 300));
      expect(updates).toEqual(['pa://projects', 'pa://projects']);
      // Yet the data is shared: the session on A lists all three.
      expect(await projectNames(client)).toEqual(
        expect.arrayContaining(['Made through A 1', 'Made through B', 'Made through A 2']),
      );
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 60_000);
});

describeWithReplicas('stateless MCP (server.sessions: stateless) across two replicas', () => {
  let r: Replicas;
  let token: string;
  let agent: Agent;

  beforeAll(async () => {
    r = await startReplicas({
      label: 'sessions-stateless',
      users: ['alice'],
      config: { server: { sessions: 'stateless' } },
    });
    token = (await tokensFor(r)).accessToken;
    agent = new Agent({ keepAlive: false, ca: r.ca.cert });
  }, 120_000);
  afterAll(async () => {
    agent?.destroy();
    await r?.close();
  }, 60_000);

  it('a full SDK session through round-robin, a new connection per request: any replica answers any request', async () => {
    r.lb.pin(null);
    r.lb.resetLog();
    const { client, transport, calls } = sdkClient(r, token, agent);
    await client.connect(transport);
    try {
      expect(transport.sessionId).toBeUndefined();
      expect(client.getServerCapabilities()?.resources?.subscribe).toBe(false);
      // initialize, notifications/initialized, then (in the background) the GET for a notification stream: 405,
      // stateless mode has none. Waited for, so that each later request is the only one in flight.
      expect(calls.slice(0, 2).map((c) => [c.method, c.status])).toEqual([
        ['POST', 200],
        ['POST', 202],
      ]);
      await waitFor(() => calls.some((c) => c.method === 'GET'), 'the SDK to try its GET stream');
      expect(calls.filter((c) => c.method === 'GET').map((c) => c.status)).toEqual([405]);

      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['create_project', 'get_project']));
      const names = ['Stateless one', 'Stateless two', 'Stateless three'];
      const served: { wrote: string | undefined; read: string | undefined }[] = [];
      for (const name of names) {
        const id = await createProject(client, name);
        const wrote = calls.at(-1)?.backend;
        const got = structured(await client.callTool({ name: 'get_project', arguments: { project_id: id } }));
        expect((got['project'] as { name: string }).name).toBe(name);
        served.push({ wrote, read: calls.at(-1)?.backend });
      }
      expect(await projectNames(client)).toEqual(expect.arrayContaining(names));
      // Round-robin with one connection per request: each read landed on the other replica than its write.
      for (const s of served) {
        expect(s.wrote).toBeDefined();
        expect(s.read).toBeDefined();
        expect(s.read).not.toBe(s.wrote);
      }
      expect(calls.every((c) => c.backend !== undefined)).toBe(true);
      const perReplica = { A: 0, B: 0 };
      for (const c of calls) perReplica[c.backend as 'A' | 'B'] += 1;
      expect(perReplica.A).toBeGreaterThanOrEqual(4);
      expect(perReplica.B).toBeGreaterThanOrEqual(4);
    } finally {
      await client.close().catch(() => undefined);
    }
  });

  it('no session to lose: initialize on A, then calls on B and A without any session id', async () => {
    const init = await mcpPost(r.fetch, `${r.a.origin}/mcp`, token, INITIALIZE);
    expect(init.status).toBe(200);
    expect(init.sessionId).toBeNull();
    const create = {
      id: 4,
      method: 'tools/call',
      params: { name: 'create_project', arguments: { name: 'Made on B without a session' } },
    };
    const made = await mcpPost(r.fetch, `${r.b.origin}/mcp`, token, create);
    expect(made.status, made.text).toBe(200);
    const list = { id: 5, method: 'tools/call', params: { name: 'list_projects', arguments: {} } };
    const listed = await mcpPost(r.fetch, `${r.a.origin}/mcp`, token, list);
    expect(listed.status, listed.text).toBe(200);
    expect(listed.text).toContain('Made on B without a session');
  });
});
