import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactConfig } from '../../src/config/index.js';
import {
  createEmbeddingProvider,
  HashEmbeddingProvider,
  OpenAICompatibleProvider,
} from '../../src/storage/embeddings/index.js';
import { CLI, tempDir } from '../support/helpers.js';

const KEY = 'sk-config-test-SECRET-42';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

function problems(env: Record<string, string>, file?: unknown): string[] {
  let configFile: string | undefined;
  if (file !== undefined) {
    const t = tempDir();
    cleanups.push(t.cleanup);
    configFile = path.join(t.dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(file));
  }
  try {
    loadConfig({ env, ...(configFile ? { configFile } : {}) });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected a ConfigError');
}

const OPENAI = {
  MCP_EMBEDDINGS_PROVIDER: 'openai-compatible',
  MCP_EMBEDDINGS_BASE_URL: 'http://localhost:11434/v1',
  MCP_EMBEDDINGS_MODEL: 'nomic-embed-text',
  MCP_EMBEDDINGS_DIMENSIONS: '768',
};

describe('embeddings configuration', () => {
  it('loads an openai-compatible provider from the environment, with defaults, and turns vector search on', () => {
    const { config } = loadConfig({ env: { ...OPENAI, MCP_EMBEDDINGS_API_KEY: KEY } });
    expect(config.mode).toBe('local');
    expect(config.features.vector_search).toBe(true);
    expect(config.embeddings).toEqual({
      provider: 'openai-compatible',
      base_url: 'http://localhost:11434/v1',
      model: 'nomic-embed-text',
      api_key: KEY,
      dimensions: 768,
      send_dimensions: true,
      timeout_ms: 30_000,
      max_retries: 3,
      batch_size: 64,
      relevance_floor: undefined,
    });
    // An explicit features.vector_search still wins.
    expect(loadConfig({ env: { ...OPENAI, MCP_VECTOR_SEARCH: 'false' } }).config.features.vector_search).toBe(
      false,
    );
  });

  it('keeps the old defaults: hash with 256 dimensions when vectors are on, none when off', () => {
    expect(loadConfig({ env: { MCP_VECTOR_SEARCH: 'true' } }).config.embeddings).toMatchObject({
      provider: 'hash',
      dimensions: 256,
    });
    const off = loadConfig({ env: {} }).config;
    expect(off.features.vector_search).toBe(false);
    expect(off.embeddings.provider).toBe('none');
  });

  it('reads the other settings from the JSON file', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const file = path.join(t.dir, 'c.json');
    writeFileSync(
      file,
      JSON.stringify({
        embeddings: {
          provider: 'openai-compatible',
          base_url: 'https://api.openai.com/v1',
          model: 'text-embedding-3-small',
          dimensions: 512,
          send_dimensions: false,
          timeout_ms: 5000,
          max_retries: 0,
          batch_size: 16,
          relevance_floor: 0.3,
        },
      }),
    );
    expect(loadConfig({ configFile: file, env: {} }).config.embeddings).toMatchObject({
      dimensions: 512,
      send_dimensions: false,
      timeout_ms: 5000,
      max_retries: 0,
      batch_size: 16,
      relevance_floor: 0.3,
    });
  });

  it('says what openai-compatible needs when it is missing', () => {
    expect(problems({ MCP_EMBEDDINGS_PROVIDER: 'openai-compatible' })).toEqual([
      'embeddings.base_url: required when embeddings.provider is openai-compatible (e.g. https://api.openai.com/v1, or http://localhost:11434/v1 for Ollama)',
      'embeddings.model: required when embeddings.provider is openai-compatible (e.g. text-embedding-3-small, nomic-embed-text)',
      "embeddings.dimensions: required when embeddings.provider is openai-compatible: the length of the model's vectors (e.g. 1536 for text-embedding-3-small, 768 for nomic-embed-text)",
    ]);
  });

  it('requires https unless the host is loopback, and refuses credentials or a query in the URL', () => {
    expect(problems({ ...OPENAI, MCP_EMBEDDINGS_BASE_URL: 'http://gpu-box.lan:11434/v1' })).toEqual([
      'embeddings.base_url: must use https for gpu-box.lan: the key and your text would cross the network in clear (allowed: https://…, or http:// on localhost, 127.0.0.1 or ::1)',
    ]);
    for (const ok of [
      'http://127.0.0.1:8080/v1',
      'http://[::1]:11434/v1',
      'http://localhost/v1',
      'https://api.openai.com/v1',
    ]) {
      expect(loadConfig({ env: { ...OPENAI, MCP_EMBEDDINGS_BASE_URL: ok } }).config.embeddings.base_url).toBe(
        ok,
      );
    }
    expect(problems({ ...OPENAI, MCP_EMBEDDINGS_BASE_URL: 'https://user:pw@api.example.com/v1' })).toEqual([
      'embeddings.base_url: must not contain credentials (put the key in embeddings.api_key)',
    ]);
    expect(problems({ ...OPENAI, MCP_EMBEDDINGS_BASE_URL: 'https://api.example.com/v1?key=1' })[0]).toMatch(
      /must not have a query/,
    );
    expect(problems({ ...OPENAI, MCP_EMBEDDINGS_BASE_URL: 'ftp://x/v1' })[0]).toMatch(
      /^embeddings\.base_url: /,
    );
  });

  it('refuses openai-compatible keys for another provider, an unknown provider and unknown keys, with hints', () => {
    expect(
      problems({ MCP_EMBEDDINGS_MODEL: 'text-embedding-3-small', MCP_EMBEDDINGS_API_KEY: KEY }).sort(),
    ).toEqual([
      'embeddings.api_key: only used by the openai-compatible provider (embeddings.provider is not set; set it to "openai-compatible" to use this key)',
      'embeddings.model: only used by the openai-compatible provider (embeddings.provider is not set; set it to "openai-compatible" to use this key)',
    ]);
    const unknown = problems({ MCP_EMBEDDINGS_PROVIDER: 'openai' });
    expect(unknown).toHaveLength(1);
    expect(unknown[0]).toMatch(/^embeddings\.provider: .*allowed: "none", "hash", "openai-compatible"/);
    expect(problems({}, { embeddings: { ...{}, 'api-key': 'x' } })).toEqual([
      'embeddings: unknown key "api-key" — did you mean "api_key"? (allowed: provider, dimensions, base_url, model, api_key, send_dimensions, timeout_ms, max_retries, batch_size, relevance_floor)',
    ]);
    expect(problems({ ...OPENAI }, { embeddings: { batch_size: 0, max_retries: 11 } }).sort()).toEqual([
      'embeddings.batch_size: Too small: expected number to be >=1',
      'embeddings.max_retries: Too big: expected number to be <=10',
    ]);
  });

  it('never prints the API key: redactConfig and `mcp-pa config check`', () => {
    const { config } = loadConfig({ env: { ...OPENAI, MCP_EMBEDDINGS_API_KEY: KEY } });
    const printed = JSON.stringify(redactConfig(config));
    expect(printed).not.toContain(KEY);
    expect(printed).toContain('"api_key":"[redacted]"');
    expect(printed).toContain('nomic-embed-text');

    expect(existsSync(CLI), 'run `npm run build` first').toBe(true);
    const t = tempDir();
    cleanups.push(t.cleanup);
    const run = spawnSync(process.execPath, [CLI, 'config', 'check'], {
      env: { PATH: process.env['PATH'] ?? '', MCP_DATA_DIR: t.dir, ...OPENAI, MCP_EMBEDDINGS_API_KEY: KEY },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('"api_key": "[redacted]"');
    expect(run.stdout).toContain('env MCP_EMBEDDINGS_API_KEY');
    expect(run.stdout + run.stderr).not.toContain(KEY);
  });
});

describe('createEmbeddingProvider', () => {
  it('builds what the configuration asks for', () => {
    expect(createEmbeddingProvider(loadConfig({ env: {} }).config)).toBeUndefined();
    expect(
      createEmbeddingProvider(
        loadConfig({ env: { MCP_EMBEDDINGS_PROVIDER: 'none', MCP_VECTOR_SEARCH: 'true' } }).config,
      ),
    ).toBeUndefined();
    const hash = createEmbeddingProvider(loadConfig({ env: { MCP_VECTOR_SEARCH: 'true' } }).config);
    expect(hash).toBeInstanceOf(HashEmbeddingProvider);
    expect(hash?.model).toBe('hash-v1-256');
    const remote = createEmbeddingProvider(
      loadConfig({ env: { ...OPENAI, MCP_EMBEDDINGS_API_KEY: KEY } }).config,
    );
    expect(remote).toBeInstanceOf(OpenAICompatibleProvider);
    expect(remote?.model).toBe('openai:nomic-embed-text:768');
    expect(remote?.dimensions).toBe(768);
    expect((remote as OpenAICompatibleProvider).url).toBe('http://localhost:11434/v1/embeddings');
    expect(JSON.stringify(remote)).not.toContain(KEY);
    expect(inspect(remote, { depth: 5 })).not.toContain(KEY);
  });
});
