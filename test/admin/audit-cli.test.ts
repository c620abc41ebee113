/**
 * `mcp-pa audit …` run in-process (runAuditCommand) on HTTP mode's embedded PGlite database in a temporary data
 * folder: events written by the audit trail (AuditLog) are listed newest first, filtered by --type, --tenant
 * (username or account id) and --since, limited by --limit, printed as JSON with --json; `audit prune` deletes the
 * events past security.audit_retention_days; bad command lines are refused with the usage.
 */
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAuditCommand } from '../../src/admin/audit.js';
import { AccountStore } from '../../src/auth/accounts.js';
import { loadConfig } from '../../src/config/index.js';
import { AuditLog, type AuditEvent, type StoredAuditEvent } from '../../src/security/audit.js';
import { openPostgresStore, type PostgresStore } from '../../src/storage/postgres/index.js';
import { tempDir } from '../support/helpers.js';
import { quietLogger } from '../support/postgres.js';

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

let data: { dir: string; cleanup: () => void };
let aliceId: string;

async function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const loaded = loadConfig({
    env: { MCP_MODE: 'http', MCP_DATA_DIR: data.dir, MCP_DATABASE_TYPE: 'pglite', ...env },
  });
  const code = await runAuditCommand(
    args,
    loaded.config,
    { stdin: new PassThrough(), stdout, stderr, stdinIsTerminal: false },
    quietLogger,
  );
  return { code, out, err };
}

/** The data folder's database, opened in this process (the command closes it after each run). */
async function withDb<T>(fn: (store: PostgresStore) => Promise<T>): Promise<T> {
  const store = await openPostgresStore(
    { kind: 'pglite', dataDir: path.join(data.dir, 'pglite') },
    { logger: quietLogger, vectorDimensions: null },
  );
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Records events at given ages (ms before now) through the audit trail itself. */
async function seed(events: readonly (readonly [number, AuditEvent])[]): Promise<void> {
  await withDb(async (store) => {
    let at = Date.now();
    const audit = new AuditLog({ store, logger: quietLogger, retentionDays: 90, now: () => new Date(at) });
    const started = Date.now();
    for (const [age, event] of events) {
      at = started - age;
      audit.record(event);
    }
    await audit.close();
  });
}

function parseJson(r: Run): StoredAuditEvent[] {
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as StoredAuditEvent[];
}

beforeAll(async () => {
  data = tempDir('mcp-pa-audit-');
  aliceId = await withDb(
    async (store) => (await new AccountStore(store).create('alice', 'a long enough password 1')).id,
  );
  await seed([
    [
      200 * DAY,
      { type: 'auth.sign_in.success', tenant: aliceId, ip: '192.0.2.1', details: { age: 'ancient' } },
    ],
    [100 * DAY, { type: 'token.issued', tenant: 'u_other', clientId: 'cli_old', details: { age: 'old' } }],
    [
      3 * 60 * MINUTE,
      {
        type: 'auth.sign_in.failure',
        tenant: aliceId,
        ip: '192.0.2.7',
        requestId: 'req-3h',
        details: { reason: 'bad_password', password: 'hunter2-never-stored' },
      },
    ],
    [
      30 * MINUTE,
      {
        type: 'token.issued',
        tenant: aliceId,
        clientId: 'cli_app',
        ip: '192.0.2.7',
        tokenHash: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
        details: { scope: 'pa.read pa.write' },
      },
    ],
    [2 * DAY, { type: 'client.registered', clientId: 'cli_new', details: { name: 'New app' } }],
    [2 * MINUTE, { type: 'mcp.forbidden', tenant: 'u_other', clientId: 'cli_x', ip: '198.51.100.9' }],
  ]);
});
afterAll(() => {
  data?.cleanup();
});

describe('mcp-pa audit (admin command) on PGlite', () => {
  it('lists every event newest first as a table: time, type, tenant, client, ip, token hash, details', async () => {
    const r = await run([]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+TYPE\s+TENANT\s+CLIENT\s+IP\s+TOKEN HASH\s+DETAILS$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/)[1])).toEqual([
      'mcp.forbidden',
      'token.issued',
      'auth.sign_in.failure',
      'client.registered',
      'token.issued',
      'auth.sign_in.success',
    ]);
    const issued = lines[2] ?? '';
    expect(issued).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\s/);
    expect(issued).toContain(aliceId);
    expect(issued).toContain('cli_app');
    expect(issued).toContain('192.0.2.7');
    expect(issued).toContain('abcdefghijkl…');
    expect(issued).not.toContain('abcdefghijklm');
    expect(issued).toContain('{"scope":"pa.read pa.write"}');
    // Missing fields show as '-'.
    expect(lines[1]?.split(/\s{2,}/)).toEqual([
      expect.stringMatching(/UTC$/),
      'mcp.forbidden',
      'u_other',
      'cli_x',
      '198.51.100.9',
      '-',
      '-',
    ]);
    expect(r.out).not.toContain('hunter2');
  });

  it('--json gives the stored events in full', async () => {
    const events = parseJson(await run(['--json', '--tenant', aliceId, '--since', '1h']));
    expect(events).toEqual([
      {
        id: expect.stringMatching(/^\d+$/),
        at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
        type: 'token.issued',
        tenant: aliceId,
        clientId: 'cli_app',
        ip: '192.0.2.7',
        tokenHash: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
        details: { scope: 'pa.read pa.write' },
      },
    ]);
    expect(Math.abs(Date.parse(events[0]?.at ?? '') - (Date.now() - 30 * MINUTE))).toBeLessThan(5 * MINUTE);
  });

  it('filters by --type, --tenant (username or account id) and --since, and limits with --limit', async () => {
    const types = async (args: string[]): Promise<string[]> =>
      parseJson(await run([...args, '--json'])).map((e) => `${e.type} ${e.tenant ?? '-'}`);
    expect(await types(['--type', 'token.issued'])).toEqual([
      `token.issued ${aliceId}`,
      'token.issued u_other',
    ]);
    expect(await types(['--tenant', 'alice'])).toEqual([
      `token.issued ${aliceId}`,
      `auth.sign_in.failure ${aliceId}`,
      `auth.sign_in.success ${aliceId}`,
    ]);
    expect(await types(['--tenant', aliceId, '--type', 'auth.sign_in.failure'])).toEqual([
      `auth.sign_in.failure ${aliceId}`,
    ]);
    expect(await types(['--tenant', 'u_other'])).toEqual(['mcp.forbidden u_other', 'token.issued u_other']);
    expect(await types(['--tenant', 'nobody'])).toEqual([]);
    expect(await types(['--since', '45m'])).toEqual(['mcp.forbidden u_other', `token.issued ${aliceId}`]);
    expect(await types(['--since', '4h'])).toHaveLength(3);
    expect(await types(['--since', '7d'])).toHaveLength(4);
    expect(await types(['--since', '150d'])).toHaveLength(5);
    const isoDay = new Date(Date.now() - 150 * DAY).toISOString().slice(0, 10);
    expect(await types(['--since', isoDay])).toHaveLength(5);
    expect(await types(['--limit', '2'])).toEqual([`mcp.forbidden u_other`, `token.issued ${aliceId}`]);

    const none = await run(['--type', 'keys.rotated']);
    expect(none).toEqual({ code: 0, out: 'No audit events match.\n', err: '' });
    const limited = await run(['--limit', '1']);
    expect(limited.out).toContain('The newest 1 events are shown');
  });

  it('refuses bad command lines with exit code 2 and the usage', async () => {
    const cases: [string[], RegExp][] = [
      [['--since', 'yesterday'], /--since must be a duration such as 45s, 30m, 1h or 7d/],
      [['--type', 'auth.nope'], /--type: unknown event type "auth.nope" \(allowed: auth.sign_in.success, /],
      [['--limit', '0'], /--limit must be a whole number from 1 to 100000 \(got "0"\)/],
      [['--limit', 'ten'], /--limit must be a whole number/],
      [['--tenant', ''], /--tenant must not be empty/],
      [['--frobnicate'], /Unknown option '--frobnicate'/],
      [['list'], /unexpected argument "list"/],
      [['prune', '--json'], /Unknown option '--json'/],
      [['prune', 'now'], /unexpected argument "now"/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out, args.join(' ')).toBe('');
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.err, args.join(' ')).toContain('usage: mcp-pa audit');
    }
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('mcp-pa audit prune');
    expect(help.out).toContain('security.incident');
  });

  it('a database that cannot be opened fails with exit code 1 and the reason', async () => {
    const r = await run(['--json'], {
      MCP_DATABASE_TYPE: 'postgresql',
      MCP_DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
    });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^mcp-pa audit: .*127\.0\.0\.1:1/);
  });

  it('prune deletes the events older than security.audit_retention_days and prints how many', async () => {
    const before = parseJson(await run(['--json']));
    expect(before).toHaveLength(6);
    let r = await run(['prune']);
    expect(r).toEqual({
      code: 0,
      out: 'Deleted 2 audit events older than 90 days (security.audit_retention_days).\n',
      err: '',
    });
    expect(parseJson(await run(['--json'])).map((e) => e.id)).toEqual(before.slice(0, 4).map((e) => e.id));
    r = await run(['prune']);
    expect(r.out).toBe('Deleted 0 audit events older than 90 days (security.audit_retention_days).\n');
    r = await run(['prune'], { MCP_AUDIT_RETENTION_DAYS: '1' });
    expect(r.out).toBe('Deleted 1 audit event older than 1 day (security.audit_retention_days).\n');
    expect(parseJson(await run(['--json'])).map((e) => e.type)).toEqual([
      'mcp.forbidden',
      'token.issued',
      'auth.sign_in.failure',
    ]);
  });
});
