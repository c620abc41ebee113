import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Assistant } from '../../src/assistant/assistant.js';
import {
  EmbeddingError,
  OpenAICompatibleProvider,
  parseRetryAfter,
  type OpenAICompatibleOptions,
} from '../../src/storage/embeddings/index.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { expectedVector, FakeEmbeddingsServer, memoryLogger } from '../support/embeddings-server.js';
import { tempDir } from '../support/helpers.js';

const KEY = 'sk-test-9f8e7d6c5b4a-SECRET';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function server(nativeDims = 64): Promise<FakeEmbeddingsServer> {
  const s = await new FakeEmbeddingsServer(nativeDims).start();
  cleanups.push(() => s.close());
  return s;
}

function provider(
  s: FakeEmbeddingsServer,
  options: Partial<OpenAICompatibleOptions> = {},
): { p: OpenAICompatibleProvider; log: ReturnType<typeof memoryLogger> } {
  const log = memoryLogger();
  const p = new OpenAICompatibleProvider({
    baseUrl: s.url,
    model: 'test-embed',
    apiKey: KEY,
    dimensions: 64,
    retryBaseMs: 5,
    logger: log.logger,
    ...options,
  });
  cleanups.push(() => p.close());
  return { p, log };
}

async function failure(promise: Promise<unknown>): Promise<EmbeddingError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(EmbeddingError);
    return err as EmbeddingError;
  }
  throw new Error('expected the call to fail');
}

function norm(v: Float32Array): number {
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
}

describe('OpenAI-compatible embeddings over real HTTP', () => {
  it('posts batches of batch_size with model, dimensions, float encoding and the bearer key', async () => {
    const s = await server();
    const { p } = provider(s, { batchSize: 4 });
    const texts = Array.from({ length: 10 }, (_, i) => `note number ${i} about topic ${i * 7}`);
    const vectors = await p.embed(texts);
    expect(s.requests.map((r) => r.body.input.length)).toEqual([4, 4, 2]);
    expect(s.requests.flatMap((r) => r.body.input)).toEqual(texts);
    for (const r of s.requests) {
      expect(r.authorization).toBe(`Bearer ${KEY}`);
      expect(r.body).toMatchObject({ model: 'test-embed', dimensions: 64, encoding_format: 'float' });
    }
    expect(vectors).toHaveLength(10);
    // The server scales vectors by 3 and answers in reverse order: each must be its own text's, unit length.
    for (const [i, v] of vectors.entries()) {
      expect(norm(v)).toBeCloseTo(1, 5);
      const want = expectedVector(texts[i] as string, 64);
      for (let d = 0; d < 64; d++) expect(v[d]).toBeCloseTo(want[d] as number, 5);
    }
    expect(p.model).toBe('openai:test-embed:64');
  });

  it('records model and dimensions in its model id, so a change of either makes old vectors outdated', async () => {
    const s = await server();
    const ids = new Set([
      provider(s, { model: 'a', dimensions: 64 }).p.model,
      provider(s, { model: 'b', dimensions: 64 }).p.model,
      provider(s, { model: 'a', dimensions: 32 }).p.model,
    ]);
    expect(ids.size).toBe(3);
  });

  it('sends no Authorization header without a key', async () => {
    const s = await server();
    const { p } = provider(s, { apiKey: undefined });
    await p.embed(['hello']);
    expect(s.requests[0]?.authorization).toBeUndefined();
  });

  it('retries a 500 and succeeds, logging the retry without text or key', async () => {
    const s = await server();
    const { p, log } = provider(s);
    s.script.push({ status: 500 });
    const [v] = await p.embed(['secret diary entry']);
    expect(v).toHaveLength(64);
    expect(s.requests).toHaveLength(2);
    const retry = log.lines().find((l) => l['msg'] === 'embedding request failed; retrying');
    expect(retry).toMatchObject({ status: 500, attempt: 1 });
    expect(log.text()).not.toContain('secret diary');
    expect(log.text()).not.toContain(KEY);
  });

  it('retries 408, 502, 503 and 504 up to max_retries, then reports the last status', async () => {
    const s = await server();
    const { p } = provider(s, { maxRetries: 3, cooldownMs: 0 });
    s.script.push({ status: 408 }, { status: 502 }, { status: 503 }, { status: 504 });
    const err = await failure(p.embed(['x']));
    expect(s.requests).toHaveLength(4);
    expect(err.status).toBe(504);
    expect(err.message).toMatch(/answered 504/);
  });

  it('honours Retry-After on 429 (waits what the server asked, not its own backoff)', async () => {
    const s = await server();
    const { p, log } = provider(s);
    s.script.push({ status: 429, headers: { 'retry-after': '1' } });
    await p.embed(['rate limited text']);
    expect(s.requests).toHaveLength(2);
    const retry = log.lines().find((l) => l['msg'] === 'embedding request failed; retrying');
    expect(retry).toMatchObject({ status: 429, delay_ms: 1000 });
  });

  it('gives up at once when Retry-After is longer than it may wait, saying so', async () => {
    const s = await server();
    const { p } = provider(s, { maxRetryDelayMs: 5000 });
    s.script.push({ status: 429, headers: { 'retry-after': '3600' } });
    const err = await failure(p.embed(['x']));
    expect(s.requests).toHaveLength(1);
    expect(err.message).toMatch(/retry after 3600 s/);
    expect(err.retryAfterMs).toBe(3_600_000);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-03-05T10:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Thu, 05 Mar 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('does not retry other 4xx; a 401 says to check the key and never repeats it', async () => {
    const s = await server();
    const { p, log } = provider(s);
    // A careless server echoing the key back.
    s.script.push({ status: 401, body: { error: { message: `Incorrect API key provided: ${KEY}` } } });
    const err = await failure(p.embed(['x']));
    expect(s.requests).toHaveLength(1);
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/answered 401.*Incorrect API key provided.*check embeddings\.api_key/);
    expect(err.message).not.toContain(KEY);
    expect(String(err.stack)).not.toContain(KEY);
    expect(log.text()).not.toContain(KEY);

    s.script.push({ status: 404, body: { error: 'model "test-embed" not found, try pulling it first' } });
    const notFound = await failure(provider(s).p.embed(['x']));
    expect(s.requests).toHaveLength(2);
    expect(notFound.message).toMatch(/404.*not found, try pulling it first.*check embeddings\.base_url/);
  });

  it('times out a slow request (per request), retries it, and reports the timeout', async () => {
    const s = await server();
    const { p } = provider(s, { timeoutMs: 200, maxRetries: 1, cooldownMs: 0 });
    s.script.push({ delayMs: 30_000 }, { delayMs: 30_000 });
    const err = await failure(p.embed(['slow']));
    expect(err.message).toMatch(/timed out after 200 ms \(embeddings\.timeout_ms\)/);
    expect(s.requests).toHaveLength(2);

    s.script.push({ delayMs: 30_000 });
    const [v] = await p.embed(['slow once, then fast']);
    expect(v).toHaveLength(64);
    expect(s.requests).toHaveLength(4);
  });

  it('refuses vectors of the wrong length with a clear error, without retrying', async () => {
    const s = await server();
    const { p } = provider(s);
    s.script.push({ dims: 32 });
    const err = await failure(p.embed(['x']));
    expect(err.message).toMatch(/vectors of length 32, but embeddings\.dimensions is 64/);
    expect(s.requests).toHaveLength(1);
  });

  it('asks without `dimensions` when the model refuses the parameter, and still checks the length', async () => {
    const s = await server(64);
    s.rejectDimensionsParam = true;
    const { p } = provider(s);
    const [v] = await p.embed(['a']);
    expect(v).toHaveLength(64);
    await p.embed(['b']);
    expect(s.requests.map((r) => r.body.dimensions)).toEqual([64, undefined, undefined]);

    const wrong = provider(s, { dimensions: 128 }).p;
    const err = await failure(wrong.embed(['c']));
    expect(err.message).toMatch(/length 64, but embeddings\.dimensions is 128/);
  });

  it('reports an unreachable server after retrying, naming the URL and the cause', async () => {
    const s = await server();
    const url = s.url;
    await s.close();
    const p = new OpenAICompatibleProvider({
      baseUrl: url,
      model: 'm',
      dimensions: 64,
      apiKey: KEY,
      retryBaseMs: 1,
    });
    cleanups.push(() => p.close());
    const err = await failure(p.embed(['x']));
    expect(err.message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+\/v1\/embeddings \(ECONNREFUSED\)/);
    expect(err.message).not.toContain(KEY);
  });

  it('after a failed call, fails fast (no request) until the cooldown is over, then tries again', async () => {
    const s = await server();
    const { p } = provider(s, { maxRetries: 0, cooldownMs: 1000 });
    s.script.push({ status: 503 });
    await failure(p.embed(['x']));
    expect(s.requests).toHaveLength(1);
    const fast = await failure(p.embed(['y']));
    expect(fast.message).toMatch(/not trying for another \d+ s after a failure/);
    expect(s.requests).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1050));
    await p.embed(['z']);
    expect(s.requests).toHaveLength(2);
  });

  it('close() aborts a request in flight and refuses later calls', async () => {
    const s = await server();
    const { p } = provider(s, { timeoutMs: 60_000 });
    s.script.push({ delayMs: 60_000 });
    const pending = p.embed(['x']);
    await new Promise<void>((resolve) => {
      const check = (): void => (s.requests.length > 0 ? resolve() : void setTimeout(check, 5));
      check();
    });
    p.close();
    expect((await failure(pending)).message).toMatch(/closed/);
    expect((await failure(p.embed(['y']))).message).toMatch(/closed/);
    expect(s.requests).toHaveLength(1);
  });

  it('a failure makes the assistant store the items as pending; a later pass embeds them', async () => {
    const s = await server();
    const t = tempDir();
    cleanups.push(t.cleanup);
    const store = new SqliteStore({ path: path.join(t.dir, 'pa.sqlite') });
    cleanups.push(() => store.close());
    const { p } = provider(s, { maxRetries: 1, cooldownMs: 0 });
    const assistant = new Assistant({
      store,
      maxUploadBytes: 1024,
      embeddings: p,
      storageInfo: { database: 'sqlite:test', documents: 'database' },
    });
    s.fallback = { status: 500 };
    const { task } = await assistant.createTask('local', { title: 'Renew the passport' });
    expect(s.requests).toHaveLength(2); // tried and retried
    expect(await store.hasPendingVectors('local', p.model)).toBe(true);
    expect((await store.itemsNeedingVectors('local', p.model, 10)).map((r) => r.id)).toEqual([task.id]);

    s.fallback = null;
    expect(await assistant.reembed('local')).toBe(1);
    expect(await store.hasPendingVectors('local', p.model)).toBe(false);
    expect(s.texts().at(-1)).toContain('Renew the passport');
  });
});
