/**
 * `mcp-pa users …` as an administrator runs it: the built CLI, spawned with HTTP mode's embedded PGlite database
 * in a temporary data folder. Passwords come from standard input or --password-file, never from the command line;
 * what the commands do is checked in the database itself (signing in with the password the command was given).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAdminCommand } from '../../src/admin/index.js';
import { AccountStore } from '../../src/auth/accounts.js';
import { loadConfig } from '../../src/config/index.js';
import { openPostgresStore } from '../../src/storage/postgres/index.js';
import { CLI, ROOT, tempDir } from '../support/helpers.js';
import { quietLogger } from '../support/postgres.js';

const PASSWORD = 'correct horse battery staple';

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let data: { dir: string; cleanup: () => void };

function cli(
  args: string[],
  options: { input?: string; env?: Record<string, string | undefined> } = {},
): Result {
  const env: Record<string, string> = {};
  const all = {
    PATH: process.env['PATH'] ?? '',
    HOME: data.dir,
    MCP_MODE: 'http',
    MCP_DATA_DIR: data.dir,
    ...options.env,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) env[k] = v;
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: data.dir,
    input: options.input ?? '',
    encoding: 'utf8',
    timeout: 60_000,
    env,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The accounts in the data folder's PGlite database, opened in this process (the CLI has exited). */
async function withAccounts<T>(fn: (accounts: AccountStore) => Promise<T>): Promise<T> {
  const store = await openPostgresStore(
    { kind: 'pglite', dataDir: path.join(data.dir, 'pglite') },
    { logger: quietLogger, vectorDimensions: null },
  );
  try {
    return await fn(new AccountStore(store));
  } finally {
    await store.close();
  }
}

interface ListedAccount {
  id: string;
  username: string;
  disabled: boolean;
  createdAt: string;
  lastLoginAt: string | null;
}

function listJson(): ListedAccount[] {
  const r = cli(['users', 'list', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as ListedAccount[];
}

/** Newest modification time of the files under `dir` (recursively). */
function newest(dir: string): number {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  // `npm test` builds first; when run alone, rebundle if dist/ is missing or older than the sources (esbuild only,
  // about a second: the CLI and the admin bundle are esbuild's output, not tsc's).
  const bundles = [CLI, path.join(ROOT, 'dist/admin.js')];
  const built = Math.min(...bundles.map((b) => (existsSync(b) ? statSync(b).mtimeMs : 0)));
  if (built < newest(path.join(ROOT, 'src'))) {
    execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: ROOT, stdio: 'pipe' });
  }
  data = tempDir('mcp-pa-users-');
});

afterAll(() => {
  data.cleanup();
});

describe('mcp-pa users (built CLI, PGlite in the data folder)', () => {
  it('add reads the password from standard input; list shows the account as a table and as JSON', async () => {
    const add = cli(['users', 'add', 'Alice'], { input: `${PASSWORD}\n` });
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/^created user alice \(id u_[A-Za-z0-9_-]{22}\)\n$/);
    expect(add.stdout).not.toContain(PASSWORD);

    const table = cli(['users', 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^USERNAME\s+ID\s+DISABLED\s+CREATED\s+LAST LOGIN$/);
    expect(lines[1]).toMatch(/^alice\s+u_\S+\s+no\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+never$/);

    const [alice] = listJson();
    expect(alice).toMatchObject({ username: 'alice', disabled: false, lastLoginAt: null });
    // The password is exactly the line piped in (no newline kept).
    const signedIn = await withAccounts((a) => a.authenticate('alice', PASSWORD));
    expect(signedIn?.id).toBe(alice?.id);
  });

  it('--password-file takes the first line of the file (without its line ending)', async () => {
    const file = path.join(data.dir, 'pw.txt');
    writeFileSync(file, 'a passphrase from a file\r\nsecond line is ignored\n', { mode: 0o600 });
    const add = cli(['users', 'add', 'carol', '--password-file', file]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(await withAccounts((a) => a.authenticate('carol', 'a passphrase from a file'))).not.toBeNull();

    const missing = cli(['users', 'add', 'dora', '--password-file', path.join(data.dir, 'nope.txt')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--password-file: cannot read');
    expect(missing.stderr).toContain('no such file');
  });

  it('refuses a password given on the command line (exit 2) and creates nothing', () => {
    const positional = cli(['users', 'add', 'bob', 'hunter2-hunter2'], { input: `${PASSWORD}\n` });
    expect(positional.code).toBe(2);
    expect(positional.stderr).toContain('never taken from the command line');
    expect(positional.stderr).not.toContain('hunter2-hunter2');

    const flag = cli(['users', 'add', 'bob', '--password', 'hunter2-hunter2']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('never taken from the command line');
    expect(flag.stderr).not.toContain('hunter2-hunter2');

    const reset = cli(['users', 'reset-password', 'alice', 'hunter2-hunter2']);
    expect(reset.code).toBe(2);

    expect(listJson().map((a) => a.username)).not.toContain('bob');
  });

  it('disable stops sign-in (exit 0, shown in list); enable lets the account back in', async () => {
    const disable = cli(['users', 'disable', 'alice']);
    expect(disable.code).toBe(0);
    expect(disable.stdout).toContain('disabled user alice');
    expect(listJson().find((a) => a.username === 'alice')?.disabled).toBe(true);
    expect(cli(['users', 'list']).stdout).toMatch(/\nalice\s+u_\S+\s+yes\s/);
    expect(await withAccounts((a) => a.authenticate('alice', PASSWORD))).toBeNull();

    const enable = cli(['users', 'enable', 'ALICE']);
    expect(enable.code).toBe(0);
    expect(enable.stdout).toContain('enabled user alice');
    expect(listJson().find((a) => a.username === 'alice')?.disabled).toBe(false);
    expect(await withAccounts((a) => a.authenticate('alice', PASSWORD))).not.toBeNull();
  });

  it('reset-password sets the piped password; the old one stops working', async () => {
    const next = 'an entirely new passphrase';
    const r = cli(['users', 'reset-password', 'alice'], { input: `${next}\n` });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('new password set for alice');
    expect(await withAccounts((a) => a.authenticate('alice', PASSWORD))).toBeNull();
    expect(await withAccounts((a) => a.authenticate('alice', next))).not.toBeNull();
  });

  it('failures exit 1 with the reason: taken name, weak or missing password, bad or unknown name', () => {
    const taken = cli(['users', 'add', 'alice'], { input: `${PASSWORD}\n` });
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('username "alice" is already taken');

    const weak = cli(['users', 'add', 'erin'], { input: 'tooshort\n' });
    expect(weak.code).toBe(1);
    expect(weak.stderr).toContain('password must be 12–1024 characters long (got 8)');
    expect(weak.stderr).not.toContain('tooshort');

    const none = cli(['users', 'add', 'erin'], { input: '' });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no password given');

    const bad = cli(['users', 'add', 'x!'], { input: `${PASSWORD}\n` });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('username must be 3–64 characters');

    const unknown = cli(['users', 'disable', 'nobody']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user named "nobody"');

    expect(listJson().map((a) => a.username)).toEqual(['alice', 'carol']);
  });

  it('usage errors exit 2 with the usage; --help exits 0', () => {
    const missing = cli(['users']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('usage:');
    expect(missing.stderr).toContain('mcp-pa users add USERNAME');

    const unknown = cli(['users', 'remove', 'alice']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "remove"');

    const noName = cli(['users', 'disable']);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toContain('expected one argument (USERNAME), got 0');

    const badOption = cli(['users', 'list', '--color']);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain("'--color'");

    const help = cli(['users', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('mcp-pa users reset-password USERNAME');

    const globalHelp = cli(['--help']);
    expect(globalHelp.code).toBe(0);
    expect(globalHelp.stdout).toContain('mcp-pa users add|list|disable|enable|reset-password');
    expect(globalHelp.stdout).toContain('mcp-pa keys rotate|list');
    expect(globalHelp.stdout).toContain('mcp-pa clients add|list|remove|rotate-secret');
  });

  it('global options work before and after the admin command (--data-dir, --log-level)', () => {
    const elsewhere = tempDir('mcp-pa-users-other-');
    try {
      const env = { MCP_DATA_DIR: undefined };
      const before = cli(['--data-dir', elsewhere.dir, 'users', 'add', 'zoe'], {
        input: `${PASSWORD}\n`,
        env,
      });
      expect(before.stderr).toBe('');
      expect(before.code).toBe(0);
      const after = cli(['users', 'list', '--json', `--data-dir=${elsewhere.dir}`, '--log-level', 'error'], {
        env,
      });
      expect(after.code).toBe(0);
      expect((JSON.parse(after.stdout) as ListedAccount[]).map((a) => a.username)).toEqual(['zoe']);
      expect(existsSync(path.join(elsewhere.dir, 'pglite'))).toBe(true);
    } finally {
      elsewhere.cleanup();
    }
    // The default data folder was not touched.
    expect(listJson().map((a) => a.username)).toEqual(['alice', 'carol']);
  });

  it('a configuration problem exits 1 with the reason, before touching any database', () => {
    const r = cli(['users', 'list'], {
      env: { MCP_DATABASE_URL: 'postgresql://u@127.0.0.1:1/db', MCP_DATABASE_TYPE: 'pglite' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot open the database');
    expect(r.stderr).toContain('drop one of them');
  });
});

describe('runAdminCommand', () => {
  it('an unknown command group is a usage error (exit 2)', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const { config } = loadConfig({ env: { MCP_DATA_DIR: data.dir }, mode: 'http' });
    const code = await runAdminCommand('frobnicate', ['list'], config, {
      stdin: new PassThrough(),
      stdout,
      stderr,
      stdinIsTerminal: false,
    });
    expect(code).toBe(2);
    expect(err).toContain('unknown command group "frobnicate"');
    expect(err).toContain('mcp-pa users add|list|disable|enable|reset-password');
  });
});
