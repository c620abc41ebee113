import type { IncomingMessage } from 'node:http';
import { Agent } from 'node:https';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Assistant } from '../../src/assistant/assistant.js';
import { ChangeHub, SCOPES, type CallerContext } from '../../src/mcp/context.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { startHttpApp, type HttpAppOptions, type RunningHttpApp } from '../../src/servers/http/app.js';
import type { Store } from '../../src/storage/model.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';
import { createTestCa, httpsFetch, type ServerCertificate, type TestCa } from '../support/https.js';
import { ZONE } from './e2e-scenario.js';

// An HTTP app over a real SQLite store in a temporary folder, served over real TLS with a test CA on 127.0.0.1.
// Callers are chosen by test headers (auth comes later): x-test-tenant (empty = unauthenticated) and x-test-client.

export const TENANT_HEADER = 'x-test-tenant';
export const CLIENT_HEADER = 'x-test-client';
export const DEFAULT_TENANT = 'alice';

export function testCaller(req: IncomingMessage): CallerContext | null {
  const tenant = req.headers[TENANT_HEADER];
  const client = req.headers[CLIENT_HEADER];
  if (tenant === '') return null;
  return {
    tenant: typeof tenant === 'string' ? tenant : DEFAULT_TENANT,
    scopes: new Set([SCOPES.read, SCOPES.write]),
    clientId: typeof client === 'string' ? client : undefined,
  };
}

/** Holds one store method until released: a real, controllable slow request. */
export class Gate {
  private armed: { reached: () => void; released: Promise<void> } | undefined;

  /** The next call of the gated method waits; `reached` resolves when it is waiting. */
  arm(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const released = new Promise<void>((r) => (release = r));
    this.armed = { reached, released };
    return { reached: reachedP, release };
  }

  async pass(): Promise<void> {
    const armed = this.armed;
    if (armed === undefined) return;
    this.armed = undefined;
    armed.reached();
    await armed.released;
  }
}

function gated(store: Store, method: keyof Store, gate: Gate): Store {
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop !== method) return fn.bind(target);
      return async (...args: unknown[]) => {
        await gate.pass();
        return fn.apply(target, args);
      };
    },
  }) as unknown as Store;
}

export interface Fixture {
  readonly app: RunningHttpApp;
  readonly ca: TestCa;
  readonly cert: ServerCertificate;
  /** The store under the app (SQLite unless openStore gave another); closed by close(). */
  readonly store: Store;
  readonly assistant: Assistant;
  readonly hub: ChangeHub;
  readonly logger: Logger;
  readonly gate: Gate;
  readonly logs: () => string;
  /** What /readyz answers (tests change it). */
  readiness: { ok: true } | { ok: false; reason: string };
  url(path?: string): string;
  /** An SDK client over HTTPS as the given caller (headers), with its transport. */
  connect(
    headers?: Record<string, string>,
    hooks?: { onGetStream?: () => void },
  ): Promise<{ client: Client; transport: StreamableHTTPClientTransport }>;
  close(): Promise<void>;
}

let sharedCa: Promise<TestCa> | undefined;
export function testCa(): Promise<TestCa> {
  sharedCa ??= createTestCa();
  return sharedCa;
}

export async function startFixture(
  overrides: Partial<Omit<HttpAppOptions, 'mcp' | 'readiness' | 'logger'>> & {
    /** The store method the gate holds (default listItems). */
    gateMethod?: keyof Store;
    /** Opens the store in the fixture's temporary folder (default: a SQLite file there). */
    openStore?: (dir: string) => Promise<Store>;
  } = {},
): Promise<Fixture> {
  const { gateMethod = 'listItems', openStore, ...appOverrides } = overrides;
  const ca = await testCa();
  const cert = await ca.issue();
  const dir = tempDir('mcp-pa-http-');
  const real: Store = openStore
    ? await openStore(dir.dir)
    : new SqliteStore({ path: path.join(dir.dir, 'database.sqlite'), documentsDir: undefined });
  const gate = new Gate();
  const store = gated(real, gateMethod, gate);
  const hub = new ChangeHub();
  const assistant = new Assistant({
    store,
    defaultTimeZone: ZONE,
    maxUploadBytes: 10 * 1024 * 1024,
    onChange: hub.emit,
    storageInfo: { database: 'sqlite:test', documents: 'database' },
  });
  let logText = '';
  const logger = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logText += chunk.toString('utf8');
        done();
      },
    }),
  );
  const clients: Client[] = [];
  const agents: Agent[] = [];
  const fixture: Fixture = {
    app: undefined as unknown as RunningHttpApp,
    ca,
    cert,
    store: real,
    assistant,
    hub,
    logger,
    gate,
    logs: () => logText,
    readiness: { ok: true },
    url: (p = '/mcp') => `${new URL(fixture.app.url).origin}${p}`,
    async connect(headers = {}, hooks = {}) {
      const agent = new Agent({ keepAlive: true, ca: ca.cert });
      agents.push(agent);
      const base = httpsFetch(ca.cert, agent);
      const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
        const res = await base(input, init);
        if ((init?.method ?? 'GET') === 'GET' && res.ok) hooks.onGetStream?.();
        return res;
      }) as typeof fetch;
      const transport = new StreamableHTTPClientTransport(new URL(fixture.app.url), {
        fetch: fetchImpl,
        requestInit: { headers },
        reconnectionOptions: {
          maxRetries: 0,
          initialReconnectionDelay: 1000,
          maxReconnectionDelay: 1000,
          reconnectionDelayGrowFactor: 1,
        },
      });
      const client = new Client({ name: 'mcp-pa-http-tests', version: '1.0.0' });
      await client.connect(transport);
      clients.push(client);
      return { client, transport };
    },
    async close() {
      for (const c of clients) await c.close().catch(() => undefined);
      for (const a of agents) a.destroy();
      await fixture.app.close();
      await real.close();
      dir.cleanup();
    },
  };
  (fixture as { app: RunningHttpApp }).app = await startHttpApp({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: cert.cert, key: cert.key, minVersion: 'TLSv1.2' },
    sessions: 'stateful',
    allowedOrigins: [],
    bodyLimitBytes: 1024 * 1024,
    mcp: { assistant, hub, logger, version: '0.0.0-test' },
    defaultTimeZone: ZONE,
    readiness: async () => fixture.readiness,
    caller: testCaller,
    logger,
    ...appOverrides,
  });
  return fixture;
}
