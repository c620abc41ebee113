import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactConfig } from '../../src/config/index.js';
import { tempDir } from '../support/helpers.js';

// The two documents of the brief, verbatim.
const BRIEF_LOCAL = `{
  "mode": "local",
  "transport": "stdio",
  "database": {
    "type": "sqlite",
    "path": "~/.config/mcp-pa/database.sqlite"
  },
  "authentication": {
    "enabled": false
  },
  "features": {
    "vector_search": false,
    "multi_tenant": false
  }
}`;

const BRIEF_HTTP = `{
  "mode": "http",
  "transport": "https",
  "server": {
    "host": "0.0.0.0",
    "port": 8000,
    "tls_required": true
  },
  "database": {
    "type": "postgresql",
    "connection_string": "postgresql://...",
    "pool_size": 10
  },
  "authentication": {
    "enabled": true,
    "oauth_version": "2.1",
    "pkce_required": true,
    "client_auth_methods": ["private_key_jwt", "tls_client_auth", "client_secret_basic"],
    "token_expiry": 3600
  },
  "features": {
    "vector_search": true,
    "multi_tenant": true,
    "dynamic_client_registration": true
  }
}`;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

function file(content: string): { path: string; home: string } {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const p = path.join(t.dir, 'config.json');
  writeFileSync(p, content);
  return { path: p, home: t.dir };
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message} [${p.source}]`);
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('loads the brief’s local document verbatim', () => {
    const f = file(BRIEF_LOCAL);
    const { config } = loadConfig({ configFile: f.path, env: { HOME: f.home } });
    expect(config.mode).toBe('local');
    expect(config.transport).toBe('stdio');
    expect(config.database.type).toBe('sqlite');
    expect(config.database.path.endsWith(path.join('.config', 'mcp-pa', 'database.sqlite'))).toBe(true);
    expect(config.database.path.startsWith('~')).toBe(false);
    expect(config.features.vector_search).toBe(false);
    expect(config.authentication.enabled).toBe(false);
  });

  it('loads the brief’s HTTP document verbatim', () => {
    const f = file(BRIEF_HTTP);
    const { config } = loadConfig({ configFile: f.path, env: {} });
    expect(config.mode).toBe('http');
    expect(config.database.type).toBe('postgresql');
    expect(config.database.pool_size).toBe(10);
    expect(config.authentication.token_expiry).toBe(3600);
    expect(config.authentication.client_auth_methods).toEqual([
      'private_key_jwt',
      'tls_client_auth',
      'client_secret_basic',
    ]);
    expect(config.features.dynamic_client_registration).toBe(true);
    expect(Object.isFrozen(config.database)).toBe(true);
  });

  it('defaults to local mode at the brief’s database path', () => {
    const { config } = loadConfig({ env: {} });
    expect(config.mode).toBe('local');
    expect(config.database.path).toMatch(/\.config[/\\]mcp-pa[/\\]database\.sqlite$/);
    expect(config.documents.max_file_size_mb).toBe(10);
  });

  it('ranks flags over environment over file over defaults', () => {
    const f = file(JSON.stringify({ database: { path: '/from/file.sqlite' }, logging: { level: 'debug' } }));
    const env = { MCP_DATABASE_PATH: '/from/env.sqlite', MCP_LOG_LEVEL: 'error' };
    const a = loadConfig({ configFile: f.path, env });
    expect(a.config.database.path).toBe(path.resolve('/from/env.sqlite'));
    expect(a.config.logging.level).toBe('error');
    const b = loadConfig({ configFile: f.path, env, flags: { db: '/from/flag.sqlite' } });
    expect(b.config.database.path).toBe(path.resolve('/from/flag.sqlite'));
    expect(b.sources['database.path']).toBe('flag --db');
    const c = loadConfig({ configFile: f.path, env: {} });
    expect(c.config.database.path).toBe(path.resolve('/from/file.sqlite'));
    expect(c.config.logging.level).toBe('debug');
  });

  it('accepts the original program’s variables as aliases and MCP_CONFIG for the file', () => {
    const f = file(JSON.stringify({ logging: { level: 'warn' } }));
    const { config } = loadConfig({
      env: {
        MCP_CONFIG: f.path,
        MCP_PA_DB_PATH: '/legacy/db.sqlite',
        MCP_PA_DOCS_DIR: '/legacy/docs',
        MCP_PA_MAX_FILE_SIZE_MB: '2.5',
      },
    });
    expect(config.database.path).toBe(path.resolve('/legacy/db.sqlite'));
    expect(config.documents.dir).toBe(path.resolve('/legacy/docs'));
    expect(config.documents.max_file_size_bytes).toBe(Math.floor(2.5 * 1024 * 1024));
    expect(config.logging.level).toBe('warn');
  });

  it('expands ~ in paths', () => {
    const { config } = loadConfig({ env: { MCP_DATA_DIR: '~/pa-data' } });
    expect(config.data_dir.includes('~')).toBe(false);
    expect(config.database.path).toBe(path.join(config.data_dir, 'database.sqlite'));
  });

  it('lists every problem with its path, reason, allowed values and source', () => {
    const f = file(
      JSON.stringify({
        mode: 'local',
        transprt: 'stdio',
        database: { type: 'mysql' },
        logging: { levl: 'info' },
        authentication: { token_expiry: 7200 },
      }),
    );
    const list = problems(() =>
      loadConfig({ configFile: f.path, env: { MCP_PORT: 'eighty', MCP_VECTOR_SEARCH: 'maybe' } }),
    );
    const text = list.join('\n');
    expect(text).toContain('unknown key "transprt" — did you mean "transport"?');
    expect(text).toContain('logging: unknown key "levl" — did you mean "level"?');
    expect(text).toMatch(/database\.type: .*allowed.*"sqlite"/);
    expect(text).toMatch(/authentication\.token_expiry: .*3600/);
    expect(text).toContain('server.port: expected a whole number, got "eighty" [env MCP_PORT]');
    expect(text).toContain(
      'features.vector_search: expected true or false, got "maybe" [env MCP_VECTOR_SEARCH]',
    );
    expect(list.length).toBeGreaterThanOrEqual(6);
  });

  it('refuses combinations that cannot work', () => {
    const list = problems(() =>
      loadConfig({ env: { MCP_MODE: 'local', MCP_DATABASE_TYPE: 'postgresql', MCP_TRANSPORT: 'https' } }),
    );
    expect(list.join('\n')).toMatch(/database\.type: local mode stores data in SQLite/);
    expect(list.join('\n')).toMatch(/transport: local mode speaks stdio/);
    expect(problems(() => loadConfig({ env: { MCP_TIMEZONE: 'Mars/Olympus' } })).join()).toMatch(
      /unknown time zone/,
    );
  });

  it('reports a missing or malformed file clearly', () => {
    expect(problems(() => loadConfig({ configFile: '/nonexistent/x.json', env: {} })).join()).toMatch(
      /not found/,
    );
    const f = file('{ "mode": ');
    expect(problems(() => loadConfig({ configFile: f.path, env: {} })).join()).toMatch(/not valid JSON/);
  });

  it('redacts the database password when printing', () => {
    const { config } = loadConfig({
      env: { MCP_MODE: 'http', MCP_DATABASE_URL: 'postgresql://pa:s3cret-pw@db.internal:5432/pa' },
    });
    const printed = JSON.stringify(redactConfig(config));
    expect(printed).not.toContain('s3cret-pw');
    expect(printed).toContain('db.internal');
  });
});

describe('data folder permissions', () => {
  it('is created owner-only with the database', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const { SqliteStore } = await import('../../src/storage/sqlite/sqlite-store.js');
    const { statSync } = await import('node:fs');
    const dir = path.join(t.dir, 'nested', 'pa');
    mkdirSync(path.dirname(dir), { recursive: true });
    const store = new SqliteStore({ path: path.join(dir, 'database.sqlite') });
    await store.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, 'database.sqlite')).mode & 0o777).toBe(0o600);
  });
});
