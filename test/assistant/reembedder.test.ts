import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Assistant } from '../../src/assistant/assistant.js';
import { Reembedder, reportingFailures } from '../../src/assistant/reembedder.js';
import { loadConfig } from '../../src/config/index.js';
import { openLocalApp } from '../../src/servers/local-app.js';
import { OpenAICompatibleProvider } from '../../src/storage/embeddings/index.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { FakeEmbeddingsServer, memoryLogger, until } from '../support/embeddings-server.js';
import { tempDir } from '../support/helpers.js';

const KEY = 'sk-reembed-test-KEY-0123456789';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function server(): Promise<FakeEmbeddingsServer> {
  const s = await new FakeEmbeddingsServer(64).start();
  cleanups.push(() => s.close());
  return s;
}

function folder(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

interface Setup {
  store: SqliteStore;
  assistant: Assistant;
  provider: OpenAICompatibleProvider;
  worker: Reembedder;
  log: ReturnType<typeof memoryLogger>;
}

/** SQLite in a temp folder, the real provider against the fake server, the worker told of failures. */
function setup(s: FakeEmbeddingsServer, options: { model?: string } = {}): Setup {
  const store = new SqliteStore({ path: path.join(folder(), 'pa.sqlite') });
  cleanups.push(() => store.close());
  const log = memoryLogger();
  const provider = new OpenAICompatibleProvider({
    baseUrl: s.url,
    model: options.model ?? 'embed-a',
    apiKey: KEY,
    dimensions: 64,
    maxRetries: 0,
    retryBaseMs: 1,
    cooldownMs: 20,
    logger: log.logger,
  });
  const onFailure = { notify: (): void => undefined };
  const assistant = new Assistant({
    store,
    maxUploadBytes: 1024,
    embeddings: reportingFailures(provider, () => onFailure.notify()),
    storageInfo: { database: 'sqlite:test', documents: 'database' },
  });
  const worker = new Reembedder({
    assistant,
    store,
    logger: log.logger,
    retryDelayMs: 30,
    maxRetryDelayMs: 200,
    itemBatch: 3,
    random: () => 1,
  });
  onFailure.notify = () => worker.failed();
  cleanups.push(() => worker.close());
  cleanups.push(() => provider.close());
  return { store, assistant, provider, worker, log };
}

describe('store.tenantsNeedingVectors', () => {
  it('lists tenants with live items lacking a ready vector for the model: none, pending or another model', async () => {
    const store = new SqliteStore({ path: path.join(folder(), 'pa.sqlite') });
    cleanups.push(() => store.close());
    const a = new Assistant({
      store,
      maxUploadBytes: 1024,
      storageInfo: { database: 'x', documents: 'database' },
    });
    const now = '2026-03-05T10:00:00.000Z';
    const v = new Float32Array(4).fill(0.5);
    const ready = (await a.createTask('t-ready', { title: 'ready' })).task.id;
    await store.putVector('t-ready', ready, 'm', v, now);
    const pending = (await a.createTask('t-pending', { title: 'pending' })).task.id;
    await store.putVector('t-pending', pending, 'm', null, now);
    const other = (await a.createTask('t-other-model', { title: 'other' })).task.id;
    await store.putVector('t-other-model', other, 'old-model', v, now);
    await a.createTask('t-none', { title: 'no vector yet' });
    const deleted = (await a.createTask('t-deleted', { title: 'deleted' })).task.id;
    await a.deleteItems('t-deleted', [deleted], false);

    expect(await store.tenantsNeedingVectors('m', 10)).toEqual(['t-none', 't-other-model', 't-pending']);
    expect(await store.tenantsNeedingVectors('m', 2)).toEqual(['t-none', 't-other-model']);
    expect(await store.tenantsNeedingVectors('old-model', 10)).toEqual(['t-none', 't-pending', 't-ready']);
  });
});

describe('background re-embedding', () => {
  it('leaves items pending while the provider fails, backs off, and embeds them once it recovers', async () => {
    const s = await server();
    const { store, assistant, provider, worker, log } = setup(s);
    s.fallback = { status: 503 };
    const titles = ['Call the dentist', 'Book train to Lyon', 'Pay the electricity bill', 'Water the plants'];
    for (const title of titles) await assistant.createTask('alice', { title });
    await assistant.addNote('bob', { text: 'Bob private musings' });
    expect(await store.tenantsNeedingVectors(provider.model, 10)).toEqual(['alice', 'bob']);
    // The failed writes told the worker: a retry is scheduled, and while the server is down it keeps backing off.
    expect(worker.retryScheduled).toBe(true);
    await until(
      () => log.lines().filter((l) => l['msg'] === 're-embedding will try again later').length >= 3,
      'three scheduled retries',
    );
    const delays = log
      .lines()
      .filter((l) => l['msg'] === 're-embedding will try again later')
      .map((l) => l['delay_ms'] as number);
    // Exponential (random() = 1 gives the full delay), capped at maxRetryDelayMs.
    expect(delays.slice(0, 3)).toEqual([30, 30, 60]);
    expect(Math.max(...delays)).toBeLessThanOrEqual(200);
    expect(await store.hasPendingVectors('alice', provider.model)).toBe(true);

    s.fallback = null;
    await worker.settled();
    expect(await store.tenantsNeedingVectors(provider.model, 10)).toEqual([]);
    for (const title of titles) expect(s.texts().some((t) => t.startsWith(title))).toBe(true);
    expect(s.maxInFlight).toBe(1); // one tenant, one request at a time
    const done = log.lines().find((l) => l['msg'] === 'embedded items for semantic search');
    expect(done).toMatchObject({ tenants: 2, items: 5, model: 'openai:embed-a:64' });
    // Progress is counts only: no item text and no key in any log line.
    for (const secret of [...titles, 'Bob private musings', KEY]) expect(log.text()).not.toContain(secret);
  });

  it('start() embeds what is pending in every tenant, one tenant and one request at a time', async () => {
    const s = await server();
    const { store, assistant, provider, worker } = setup(s);
    s.fallback = { status: 500 };
    for (const tenant of ['t1', 't2', 't3']) {
      for (let i = 0; i < 4; i++) await assistant.createTask(tenant, { title: `${tenant} task ${i}` });
    }
    await worker.close(); // forget the retries the failed writes scheduled
    s.fallback = null;
    await new Promise((r) => setTimeout(r, 25)); // let the provider's 20 ms pause after the failure pass
    const fresh = new Reembedder({
      assistant,
      store,
      logger: memoryLogger().logger,
      itemBatch: 3,
      tenantBatch: 1,
    });
    cleanups.push(() => fresh.close());
    const before = s.requests.length;
    await fresh.start();
    expect(await store.tenantsNeedingVectors(provider.model, 10)).toEqual([]);
    // 4 items per tenant in store batches of 3: two requests per tenant.
    expect(s.requests.length - before).toBe(6);
    expect(s.maxInFlight).toBe(1);
  });

  it('close() stops promptly while a request hangs, and no pass runs after it', async () => {
    const s = await server();
    const { assistant, provider, worker } = setup(s);
    s.fallback = { status: 500 };
    for (let i = 0; i < 9; i++) await assistant.createTask('alice', { title: `task ${i}` });
    await worker.close();
    s.fallback = { delayMs: 60_000 };
    await new Promise((r) => setTimeout(r, 25));
    const w = new Reembedder({
      assistant,
      store: assistant.store,
      logger: memoryLogger().logger,
      itemBatch: 3,
    });
    const first = w.start();
    await until(() => s.inFlight === 1, 'a request in flight');
    const seen = s.requests.length;
    provider.close();
    await w.close();
    await first;
    w.kick();
    expect(s.requests.length).toBe(seen);
  });

  it('changing the model re-embeds every item in the background (local app, from configuration)', async () => {
    const s = await server();
    const dir = folder();
    const env = (model: string, dims: string): Record<string, string> => ({
      MCP_DATA_DIR: dir,
      MCP_EMBEDDINGS_PROVIDER: 'openai-compatible',
      MCP_EMBEDDINGS_BASE_URL: s.url,
      MCP_EMBEDDINGS_MODEL: model,
      MCP_EMBEDDINGS_DIMENSIONS: dims,
      MCP_EMBEDDINGS_API_KEY: KEY,
    });
    const log = memoryLogger();
    const first = await openLocalApp(loadConfig({ env: env('model-one', '64') }).config, log.logger);
    expect(first.assistant.embeddings?.model).toBe('openai:model-one:64');
    const titles = ['Quarterly budget review', 'Dentist appointment', 'Read the Lyon travel guide'];
    for (const title of titles) await first.assistant.createTask(first.tenant, { title });
    await first.background;
    await first.close();
    expect(s.texts('model-one')).toHaveLength(3);
    expect(s.requests.every((r) => r.authorization === `Bearer ${KEY}`)).toBe(true);

    const second = await openLocalApp(loadConfig({ env: env('model-two', '64') }).config, log.logger);
    await second.background;
    expect(await second.store.tenantsNeedingVectors('openai:model-two:64', 10)).toEqual([]);
    expect(
      s
        .texts('model-two')
        .map((t) => t.split('\n')[0])
        .sort(),
    ).toEqual([...titles].sort());
    await second.close();

    // A new vector length is a new model too.
    const third = await openLocalApp(loadConfig({ env: env('model-two', '32') }).config, log.logger);
    await third.background;
    expect(s.requests.at(-1)?.body.dimensions).toBe(32);
    expect(await third.store.tenantsNeedingVectors('openai:model-two:32', 10)).toEqual([]);
    expect(await third.store.tenantsNeedingVectors('openai:model-two:64', 10)).toEqual(['local']);
    await third.close();
    expect(log.text()).not.toContain(KEY);
    for (const title of titles) expect(log.text()).not.toContain(title);
  });
});
