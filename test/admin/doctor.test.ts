/**
 * `mcp-pa doctor` against real deployments: the built CLI, with real certificates (made here with @peculiar/x509:
 * valid, expiring in 10 days, expired, another key, a chain out of order), real databases (local mode's SQLite, HTTP
 * mode's embedded PGlite, the real PostgreSQL server when MCP_PA_TEST_DATABASE_URL is set, and a PostgreSQL port
 * nothing listens on), a real issuer (a running `mcp-pa serve`, or a small HTTPS server here serving metadata with a
 * skewed Date header), and a signing key aged in the database. Each warning and failure is checked with its fix.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckResult, DoctorReport } from '../../src/admin/doctor.js';
import { Assistant } from '../../src/assistant/assistant.js';
import { openPostgresStore } from '../../src/storage/postgres/index.js';
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { CLI, runCli, tempDir, type CliRun as Run } from '../support/helpers.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { describeWithTerminal, onTerminal } from '../support/terminal.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

// ── Certificates ────────────────────────────────────────────────────────────────────────────────────────────────

interface Ca {
  readonly pem: string;
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

interface Pair {
  readonly cert: string;
  readonly key: string;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function pemKey(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

async function makeCa(name = 'doctor test CA', validDays = 365): Promise<Ca> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name} ${randomBytes(3).toString('hex')}`,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + validDays * DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { pem: `${cert.toString('pem')}\n`, cert, keys };
}

/** A server certificate from `ca`, valid from `from` to `to` (ms from now), for localhost and 127.0.0.1. */
async function issue(
  ca: Ca,
  options: { from?: number; to: number; dns?: string[]; ip?: string[] },
): Promise<Pair> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const dns = options.dns ?? ['localhost'];
  const ip = options.ip ?? ['127.0.0.1'];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${dns[0] ?? ip[0] ?? 'server'}`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() + (options.from ?? -DAY_MS)),
    notAfter: new Date(Date.now() + options.to),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dns.map((value) => ({ type: 'dns' as const, value })),
        ...ip.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  return { cert: `${cert.toString('pem')}\n`, key: pemKey(keys.privateKey) };
}

// ── Running doctor ──────────────────────────────────────────────────────────────────────────────────────────────

/** The built CLI, asynchronously (test servers in this process answer it). */
function run(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return runCli(args, env);
}

/** `mcp-pa doctor --json …`: the report, with its exit code checked against report.ok. */
async function doctorJson(
  args: readonly string[],
  env: Record<string, string>,
): Promise<DoctorReport & { code: number | null }> {
  const r = await run(['doctor', '--json', ...args], env);
  let report: DoctorReport;
  try {
    report = JSON.parse(r.stdout) as DoctorReport;
  } catch {
    throw new Error(`doctor printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  expect(r.code).toBe(report.ok ? 0 : 1);
  return { ...report, code: r.code };
}

function check(report: DoctorReport, id: string): CheckResult {
  const found = report.checks.find((c) => c.id === id);
  if (found === undefined)
    throw new Error(`no check "${id}" in ${report.checks.map((c) => c.id).join(', ')}`);
  return found;
}

/** The shape every report has: counts that add up, a fix exactly on warnings and failures. */
function expectWellFormed(report: DoctorReport): void {
  expect(report.version).toMatch(/^\d+\.\d+\.\d+/);
  const counted = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of report.checks) {
    expect(Object.keys(c).sort()).toEqual(
      c.fix !== undefined ? ['fix', 'found', 'id', 'status', 'title'] : ['found', 'id', 'status', 'title'],
    );
    expect(['ok', 'warn', 'fail', 'skip']).toContain(c.status);
    expect(c.found.length, c.id).toBeGreaterThan(0);
    if (c.status === 'warn' || c.status === 'fail') expect(c.fix, `${c.id} has a fix`).toBeTruthy();
    else expect(c.fix, `${c.id} has no fix`).toBeUndefined();
    counted[c.status]++;
  }
  expect(report.summary).toEqual(counted);
  expect(report.ok).toBe(counted.fail === 0);
  expect(new Set(report.checks.map((c) => c.id)).size).toBe(report.checks.length);
}

/** A TCP port on 127.0.0.1 that nothing listens on (taken, then freed). */
async function closedPort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function writeJson(file: string, value: unknown): string {
  writeFileSync(file, JSON.stringify(value));
  return file;
}

// ── Local mode ──────────────────────────────────────────────────────────────────────────────────────────────────

describe('mcp-pa doctor in local mode', () => {
  let data: { dir: string; cleanup: () => void };
  beforeAll(() => {
    data = tempDir('mcp-pa-doctor-local-');
  });
  afterAll(() => data.cleanup());

  it('a new installation: ok, exit 0; the JSON report has one entry per check', async () => {
    const fresh = path.join(data.dir, 'fresh');
    const report = await doctorJson([], { HOME: data.dir, MCP_DATA_DIR: fresh });
    expectWellFormed(report);
    expect(report).toMatchObject({ mode: 'local', configFile: null, ok: true, code: 0 });
    expect(report.checks.map((c) => c.id)).toEqual([
      'config',
      'data-dir',
      'database',
      'vectors',
      'documents',
    ]);
    expect(check(report, 'config').status).toBe('ok');
    expect(check(report, 'data-dir')).toMatchObject({ status: 'ok' });
    expect(check(report, 'data-dir').found).toContain(`${fresh} does not exist yet`);
    expect(check(report, 'database').found).toContain(
      'does not exist yet: the first start of mcp-pa makes it',
    );
    expect(report.summary.fail + report.summary.warn).toBe(0);
  });

  it('files open to other users: warnings with the chmod that fixes each, exit 0', async () => {
    const dir = path.join(data.dir, 'open');
    const file = path.join(dir, 'database.sqlite');
    const store = new SqliteStore({ path: file });
    await store.close();
    chmodSync(dir, 0o755);
    chmodSync(file, 0o644);
    const report = await doctorJson([], { HOME: data.dir, MCP_DATA_DIR: dir });
    expectWellFormed(report);
    expect(report.code).toBe(0);
    expect(check(report, 'data-dir')).toMatchObject({
      status: 'warn',
      found: `data folder ${dir} is open to other users (mode 755)`,
      fix: `chmod 700 ${dir}`,
    });
    expect(check(report, 'database').status).toBe('warn');
    expect(check(report, 'database').found).toContain(
      `SQLite database ${file} is open to other users (mode 644)`,
    );
    expect(check(report, 'database').found).toContain(
      `schema ${SQLITE_MIGRATIONS.at(-1)?.version} (current)`,
    );
    expect(check(report, 'database').fix).toBe(`chmod 600 ${file}`);

    // The same as text: a block per check, its fix indented under it, and the summary.
    const text = await run(['doctor'], { HOME: data.dir, MCP_DATA_DIR: dir });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^mcp-pa \d+\.\d+\.\d+ doctor: local mode\n\n/);
    expect(text.stdout).toMatch(
      new RegExp(`^warn {2}data folder +data folder ${dir} is open to other users`, 'm'),
    );
    expect(text.stdout).toMatch(new RegExp(`^ +fix: chmod 700 ${dir}$`, 'm'));
    expect(text.stdout).toMatch(/^0 failed, 2 warnings, \d+ ok, \d+ skipped: nothing stops mcp-pa/m);
  });

  it('a database written by a newer mcp-pa fails with "upgrade", exit 1', async () => {
    const dir = path.join(data.dir, 'newer');
    const file = path.join(dir, 'database.sqlite');
    const store = new SqliteStore({ path: file });
    store.db
      .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
      .run(999, 'from the future', new Date().toISOString());
    await store.close();
    const report = await doctorJson([], { HOME: data.dir, MCP_DATA_DIR: dir });
    expectWellFormed(report);
    expect(report).toMatchObject({ ok: false, code: 1 });
    expect(check(report, 'database')).toMatchObject({ status: 'fail' });
    expect(check(report, 'database').found).toContain('was written by a newer mcp-pa (schema 999');
    expect(check(report, 'database').fix).toContain('upgrade mcp-pa');
  });

  it('items without vectors: a warning that says to run mcp-pa reembed', async () => {
    const dir = path.join(data.dir, 'vectors');
    const store = new SqliteStore({ path: path.join(dir, 'database.sqlite') });
    const assistant = new Assistant({
      store,
      maxUploadBytes: 1024,
      storageInfo: { database: 'x', documents: 'x' },
    });
    await assistant.addNote('local', { text: 'written while semantic search was off' });
    await store.close();
    const report = await doctorJson([], {
      HOME: data.dir,
      MCP_DATA_DIR: dir,
      MCP_EMBEDDINGS_PROVIDER: 'hash',
    });
    expect(check(report, 'vectors')).toMatchObject({ status: 'warn' });
    expect(check(report, 'vectors').found).toContain('some items lack a vector');
    expect(check(report, 'vectors').fix).toContain('run mcp-pa reembed');
    const done = await run(['reembed'], {
      HOME: data.dir,
      MCP_DATA_DIR: dir,
      MCP_EMBEDDINGS_PROVIDER: 'hash',
    });
    expect(done.code).toBe(0);
    const after = await doctorJson([], {
      HOME: data.dir,
      MCP_DATA_DIR: dir,
      MCP_EMBEDDINGS_PROVIDER: 'hash',
    });
    expect(check(after, 'vectors')).toMatchObject({ status: 'ok' });
    expect(check(after, 'vectors').found).toContain('every item has a vector');
  });

  it('a configuration that does not load: the problems and where to fix them, exit 1', async () => {
    const report = await doctorJson([], {
      HOME: data.dir,
      MCP_DATA_DIR: data.dir,
      MCP_TIMEZONE: 'Nowhere/Bogus',
    });
    expectWellFormed(report);
    expect(report).toMatchObject({ mode: null, ok: false, code: 1 });
    expect(report.checks).toHaveLength(1);
    expect(check(report, 'config')).toMatchObject({ status: 'fail' });
    expect(check(report, 'config').found).toContain('assistant.timezone: unknown time zone');
    expect(check(report, 'config').found).toContain('[from env MCP_TIMEZONE]');
    expect(check(report, 'config').fix).toContain('correct each setting where the brackets say it came from');
  });

  it('a usage error exits 2 and names the help', async () => {
    const r = await run(['doctor', '--verbose'], { HOME: data.dir });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("Unknown option '--verbose'");
    expect(r.stderr).toContain('Run mcp-pa doctor --help for its options.');
  });
});

// ── HTTP mode: certificates, an unreachable database and issuer ─────────────────────────────────────────────────

describe('mcp-pa doctor --http: certificates, a database and an issuer that do not answer', () => {
  let files: { dir: string; cleanup: () => void };
  let ca: Ca;
  let dbPort: number;
  let httpsPort: number;
  const password = `pw-${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    files = tempDir('mcp-pa-doctor-tls-');
    ca = await makeCa();
    dbPort = await closedPort();
    httpsPort = await closedPort();
  });
  afterAll(() => files.cleanup());

  /** Writes the pair (and optionally more PEM after the certificate) and runs doctor with them. */
  async function withCertificate(
    name: string,
    pair: Pair,
    options: { extraChain?: string; keyMode?: number; config?: Record<string, unknown> } = {},
  ): Promise<DoctorReport & { code: number | null; text: Run }> {
    const dir = path.join(files.dir, name);
    const data = path.join(dir, 'data');
    const certFile = path.join(files.dir, `${name}-cert.pem`);
    const keyFile = path.join(files.dir, `${name}-key.pem`);
    writeFileSync(certFile, pair.cert + (options.extraChain ?? ''));
    writeFileSync(keyFile, pair.key, { mode: options.keyMode ?? 0o600 });
    chmodSync(keyFile, options.keyMode ?? 0o600);
    const configFile = writeJson(path.join(files.dir, `${name}.json`), {
      mode: 'http',
      data_dir: data,
      database: { connection_string: `postgresql://mcp:${password}@127.0.0.1:${dbPort}/mcp` },
      server: { host: '127.0.0.1', port: httpsPort, tls_cert: certFile, tls_key: keyFile },
      features: { vector_search: false },
      ...options.config,
    });
    const env = { HOME: files.dir };
    const report = await doctorJson(['--config', configFile], env);
    expectWellFormed(report);
    expect(report.configFile).toBe(configFile);
    const text = await run(['doctor', '--config', configFile], env);
    for (const out of [JSON.stringify(report), text.stdout, text.stderr]) expect(out).not.toContain(password);
    return { ...report, text };
  }

  it('a valid certificate: ok with its subject, issuer and expiry; the database and the issuer fail with their fixes', async () => {
    const report = await withCertificate('valid', await issue(ca, { to: 90 * DAY_MS }));
    expect(report).toMatchObject({ mode: 'http', ok: false, code: 1 });
    expect(report.checks.map((c) => c.id)).toEqual([
      'config',
      'start-rules',
      'data-dir',
      'database',
      'vectors',
      'documents',
      'tls',
      'client-ca',
      'keys',
      'issuer',
      'clock',
    ]);
    const tls = check(report, 'tls');
    expect(tls.status).toBe('ok');
    expect(tls.found).toContain('CN=localhost, issued by CN=doctor test CA');
    expect(tls.found).toMatch(/valid until \d{4}-\d\d-\d\d \((89|90) days left\)/);
    expect(tls.found).toContain('covers 127.0.0.1 (server.host)');

    const db = check(report, 'database');
    expect(db.status).toBe('fail');
    expect(db.found).toContain(`cannot reach PostgreSQL at 127.0.0.1:${dbPort}`);
    expect(db.fix).toContain('start PostgreSQL, or correct the host and port in MCP_DATABASE_URL');
    expect(check(report, 'vectors').status).toBe('skip');

    const issuer = check(report, 'issuer');
    expect(issuer.status).toBe('fail');
    expect(issuer.found).toContain(`https://127.0.0.1:${httpsPort}/.well-known/oauth-authorization-server`);
    expect(issuer.found).toContain('ECONNREFUSED');
    expect(issuer.fix).toContain('start the server (mcp-pa serve) and run mcp-pa doctor again');
    expect(check(report, 'clock').status).toBe('skip');

    // Text: one line per check, the fix under it, the summary last.
    expect(report.text.code).toBe(1);
    expect(report.text.stdout).toMatch(/^ok {4}certificate +\S/m);
    expect(report.text.stdout).toMatch(/^fail {2}database +PostgreSQL mcp@127\.0\.0\.1:\d+\/mcp/m);
    expect(report.text.stdout).toMatch(/^ +fix: start PostgreSQL/m);
    expect(report.text.stdout).toMatch(/^2 failed, \d+ warnings?, \d+ ok, \d+ skipped: fix the failures/m);
  });

  it('a certificate expiring in 10 days: a warning to renew it and send SIGHUP', async () => {
    const report = await withCertificate('soon', await issue(ca, { to: 10 * DAY_MS + 3_600_000 }));
    const tls = check(report, 'tls');
    expect(tls.status).toBe('warn');
    expect(tls.found).toMatch(/expires on \d{4}-\d\d-\d\dT[\d:]+Z, in 10 day\(s\) \(warned from 30 days\)/);
    expect(tls.fix).toContain('renew the certificate (e.g. certbot renew, or ask your CA)');
    expect(tls.fix).toContain('then send SIGHUP to the server (or restart it)');
  });

  it('an expired certificate fails, with the renewal as its fix', async () => {
    const report = await withCertificate('expired', await issue(ca, { from: -30 * DAY_MS, to: -DAY_MS }));
    const tls = check(report, 'tls');
    expect(tls.status).toBe('fail');
    expect(tls.found).toMatch(/expired on \d{4}-\d\d-\d\d/);
    expect(tls.fix).toContain('renew the certificate');
    expect(tls.fix).toContain('send SIGHUP to the server or restart it');
  });

  it('a key of another certificate fails, with how to find the matching key', async () => {
    const a = await issue(ca, { to: 90 * DAY_MS });
    const b = await issue(ca, { to: 90 * DAY_MS });
    const report = await withCertificate('mismatch', { cert: a.cert, key: b.key });
    const tls = check(report, 'tls');
    expect(tls.status).toBe('fail');
    expect(tls.found).toContain('does not belong to the certificate');
    expect(tls.fix).toContain(
      'point MCP_TLS_KEY (server.tls_key) at the private key the certificate was issued for',
    );
    expect(tls.fix).toContain('openssl pkey -pubout -in KEY');
  });

  it('a chain out of order fails; a key open to others and a name not covered warn', async () => {
    const other = await makeCa('unrelated CA');
    const pair = await issue(ca, { to: 90 * DAY_MS, dns: ['pa.example.org'], ip: [] });
    const report = await withCertificate('chain', pair, { extraChain: other.pem, keyMode: 0o644 });
    const tls = check(report, 'tls');
    expect(tls.status).toBe('fail');
    expect(tls.found).toContain('did not issue certificate 1');
    expect(tls.fix).toContain('order');
    expect(tls.fix).toContain('as the server certificate first, then each intermediate CA certificate');
    expect(tls.found).toContain('is readable by other users (mode 644)');
    expect(tls.fix).toContain(`chmod 600 ${path.join(files.dir, 'chain-key.pem')}`);
    expect(tls.found).toContain('does not cover 127.0.0.1, the name clients use');
    expect(tls.fix).toContain('have the certificate issued for 127.0.0.1');

    // In the right order (server certificate, then its CA) the chain is fine.
    const ordered = await withCertificate('ordered', await issue(ca, { to: 90 * DAY_MS }), {
      extraChain: ca.pem,
    });
    expect(check(ordered, 'tls')).toMatchObject({ status: 'ok' });
    expect(check(ordered, 'tls').found).toContain('chain of 2 certificates in order');
  });

  it('the client certificate CA: a server certificate instead of a CA fails; a CA is ok', async () => {
    const pair = await issue(ca, { to: 90 * DAY_MS });
    const notCa = path.join(files.dir, 'not-a-ca.pem');
    writeFileSync(notCa, pair.cert);
    const none = await withCertificate('client-ca-none', pair);
    expect(check(none, 'client-ca')).toMatchObject({ status: 'skip' });
    const wrong = await withCertificate('client-ca-wrong', pair, {
      config: {
        server: {
          host: '127.0.0.1',
          port: httpsPort,
          tls_cert: path.join(files.dir, 'client-ca-wrong-cert.pem'),
          tls_key: path.join(files.dir, 'client-ca-wrong-key.pem'),
          tls_client_ca: notCa,
        },
      },
    });
    expect(check(wrong, 'client-ca')).toMatchObject({ status: 'fail' });
    expect(check(wrong, 'client-ca').found).toContain('is not a CA certificate');
    expect(check(wrong, 'client-ca').fix).toContain(
      'put the certificate of the CA that issued the client certificates',
    );
    const caFile = path.join(files.dir, 'client-ca.pem');
    writeFileSync(caFile, ca.pem);
    const right = await withCertificate('client-ca-right', pair, {
      config: {
        server: {
          host: '127.0.0.1',
          port: httpsPort,
          tls_cert: path.join(files.dir, 'client-ca-right-cert.pem'),
          tls_key: path.join(files.dir, 'client-ca-right-key.pem'),
          tls_client_ca: caFile,
        },
      },
    });
    expect(check(right, 'client-ca')).toMatchObject({ status: 'ok' });
    expect(check(right, 'client-ca').found).toMatch(/client CA CN=doctor test CA \w+, valid until/);
  });

  it('no server secret on a public bind: the start rules and the signing keys fail with MCP_SECRET_KEY as the fix', async () => {
    const pair = await issue(ca, { to: 90 * DAY_MS });
    const report = await withCertificate('no-secret', pair, {
      config: {
        server: {
          host: '0.0.0.0',
          port: httpsPort,
          public_url: `https://127.0.0.1:${httpsPort}`,
          tls_cert: path.join(files.dir, 'no-secret-cert.pem'),
          tls_key: path.join(files.dir, 'no-secret-key.pem'),
        },
      },
    });
    const rules = check(report, 'start-rules');
    expect(rules.status).toBe('fail');
    expect(rules.found).toContain('mcp-pa serve refuses this configuration (exit code 2)');
    expect(rules.fix).toContain('set MCP_SECRET_KEY');
    const keys = check(report, 'keys');
    expect(keys.status).toBe('fail');
    expect(keys.found).toContain('no server secret, and server.host 0.0.0.0 is not a loopback address');
    expect(keys.fix).toContain(
      'set MCP_SECRET_KEY (authentication.secret_key) on every replica to the same secret',
    );
  });
});

// ── An external issuer, and the clock ──────────────────────────────────────────────────────────────────────────

describe('mcp-pa doctor --http with an external issuer (an HTTPS server here serving its metadata)', () => {
  let files: { dir: string; cleanup: () => void };
  let ca: Ca;
  let caFile: string;
  let server: HttpsServer;
  let origin: string;
  let dbPort: number;
  /** What the issuer answers: its metadata, and how far its Date header is from the true time. */
  const answer: { skewMs: number; issuer?: string; methods: string[] } = { skewMs: 0, methods: ['S256'] };

  beforeAll(async () => {
    files = tempDir('mcp-pa-doctor-issuer-');
    ca = await makeCa('issuer CA');
    caFile = path.join(files.dir, 'ca.pem');
    writeFileSync(caFile, ca.pem);
    const pair = await issue(ca, { to: 90 * DAY_MS });
    server = createHttpsServer({ cert: pair.cert, key: pair.key }, (req, res) => {
      if (req.url !== '/.well-known/oauth-authorization-server') {
        res.writeHead(404).end();
        return;
      }
      res.setHeader('date', new Date(Date.now() + answer.skewMs).toUTCString());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer: answer.issuer ?? origin,
          authorization_endpoint: `${origin}/authorize`,
          token_endpoint: `${origin}/token`,
          code_challenge_methods_supported: answer.methods,
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dbPort = await closedPort();
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    files.cleanup();
  });

  async function doctorAgainst(answerWith: Partial<typeof answer>, trustCa = true): Promise<DoctorReport> {
    Object.assign(answer, { skewMs: 0, issuer: undefined, methods: ['S256'] }, answerWith);
    const pair = await issue(ca, { to: 90 * DAY_MS });
    const certFile = path.join(files.dir, 'cert.pem');
    const keyFile = path.join(files.dir, 'key.pem');
    writeFileSync(certFile, pair.cert);
    writeFileSync(keyFile, pair.key, { mode: 0o600 });
    const configFile = writeJson(path.join(files.dir, 'config.json'), {
      mode: 'http',
      data_dir: path.join(files.dir, 'data'),
      database: { connection_string: `postgresql://mcp@127.0.0.1:${dbPort}/mcp` },
      server: { host: '127.0.0.1', port: await closedPort(), tls_cert: certFile, tls_key: keyFile },
      authentication: { issuer: origin, ...(trustCa ? { metadata_fetch_ca: caFile } : {}) },
      features: { vector_search: false },
    });
    const report = await doctorJson(['--config', configFile], { HOME: files.dir });
    expectWellFormed(report);
    return report;
  }

  it('answers with its issuer and S256, on time: issuer and clock ok; the keys are the issuer’s', async () => {
    const report = await doctorAgainst({});
    expect(check(report, 'issuer')).toMatchObject({ status: 'ok' });
    expect(check(report, 'issuer').found).toBe(
      `${origin}/.well-known/oauth-authorization-server: issuer ${origin}, PKCE S256, token endpoint ${origin}/token`,
    );
    expect(check(report, 'clock')).toMatchObject({ status: 'ok' });
    expect(check(report, 'clock').found).toMatch(
      /^the issuer \(https:\/\/127\.0\.0\.1:\d+\)'s clock is [+−]\d\.\d s from this machine's/,
    );
    expect(check(report, 'keys')).toMatchObject({ status: 'skip' });
    expect(check(report, 'keys').found).toContain(`tokens come from the external issuer ${origin}`);
  });

  it('a clock 2 minutes ahead warns; 7 minutes behind fails; both say to synchronise with NTP', async () => {
    const ahead = await doctorAgainst({ skewMs: 120_000 });
    expect(check(ahead, 'clock')).toMatchObject({ status: 'warn' });
    expect(check(ahead, 'clock').found).toMatch(
      /clock is \+1[12]\d s from this machine's .*: more than 60 s/,
    );
    expect(check(ahead, 'clock').fix).toContain(
      'synchronise the clocks with NTP on this machine and on the issuer',
    );
    expect(ahead.ok).toBe(false); // the database still fails
    const behind = await doctorAgainst({ skewMs: -420_000 });
    expect(check(behind, 'clock')).toMatchObject({ status: 'fail' });
    expect(check(behind, 'clock').found).toMatch(
      /clock is −4[12]\d s from this machine's .*: more than 300 s/,
    );
    expect(check(behind, 'clock').fix).toContain("tokens' iat and exp are checked against the clock");
  });

  it('metadata naming another issuer, or without S256, fails with the setting to change', async () => {
    const other = await doctorAgainst({ issuer: 'https://login.example.com/realms/pa' });
    expect(check(other, 'issuer')).toMatchObject({ status: 'fail' });
    expect(check(other, 'issuer').found).toContain(
      'its metadata names the issuer "https://login.example.com/realms/pa"',
    );
    expect(check(other, 'issuer').fix).toContain(
      'set authentication.issuer (MCP_OAUTH_ISSUER) to exactly https://login.example.com/realms/pa',
    );
    const plain = await doctorAgainst({ methods: ['plain'] });
    expect(check(plain, 'issuer')).toMatchObject({ status: 'fail' });
    expect(check(plain, 'issuer').found).toContain('does not advertise PKCE S256');
    expect(check(plain, 'issuer').fix).toContain('turn on PKCE with S256 on the issuer');
  });

  it('an issuer whose certificate is not trusted fails, naming authentication.metadata_fetch_ca', async () => {
    const report = await doctorAgainst({}, false);
    expect(check(report, 'issuer')).toMatchObject({ status: 'fail' });
    expect(check(report, 'issuer').found).toMatch(/certificate|CERT/i);
    expect(check(report, 'issuer').fix).toContain('set authentication.metadata_fetch_ca to its PEM file');
  });
});

// ── HTTP mode on PGlite: migrations, an old signing key, a running server ─────────────────────────────────────────

describe('mcp-pa doctor --http on the embedded PGlite database', () => {
  let data: { dir: string; cleanup: () => void };
  let env: Record<string, string>;

  beforeAll(async () => {
    data = tempDir('mcp-pa-doctor-pglite-');
    env = { HOME: data.dir, MCP_DATA_DIR: data.dir, MCP_PORT: String(await closedPort()) };
  });
  afterAll(() => data.cleanup());

  it('an old signing key warns with `mcp-pa keys rotate`; after the rotation it is ok', async () => {
    const rotate = await run(['keys', 'rotate'], env);
    expect(rotate.code).toBe(0);
    const store = await openPostgresStore(
      { kind: 'pglite', dataDir: path.join(data.dir, 'pglite') },
      { logger: quietLogger, vectorDimensions: null },
    );
    try {
      await store.withServerState((sql) =>
        sql.query(`UPDATE oauth_keys SET created_at = now() - interval '120 days' WHERE retire_at IS NULL`),
      );
    } finally {
      await store.close();
    }
    const report = await doctorJson(['--http', '--dev'], env);
    expectWellFormed(report);
    expect(check(report, 'database')).toMatchObject({ status: 'ok' });
    expect(check(report, 'database').found).toMatch(
      /^PGlite \(embedded\) in .*: PostgreSQL \d+, schema \d+ \(current\)$/,
    );
    const keys = check(report, 'keys');
    expect(keys.status).toBe('warn');
    expect(keys.found).toMatch(
      /active key \S+ \(ES256\), made \d{4}-\d\d-\d\d, 120 days old: older than 90 days/,
    );
    expect(keys.fix).toContain('run mcp-pa keys rotate');
    // Not running: the issuer does not answer (the fix: start it); the development certificate is made at start.
    expect(check(report, 'issuer')).toMatchObject({ status: 'fail' });
    expect(check(report, 'issuer').fix).toContain('start the server (mcp-pa serve --dev)');
    expect(check(report, 'tls').found).toContain('mcp-pa serve --dev makes one in');
    expect(check(report, 'start-rules').status).toBe('warn');
    expect(check(report, 'start-rules').fix).toContain('set MCP_DATABASE_URL (database.connection_string)');

    expect((await run(['keys', 'rotate'], env)).code).toBe(0);
    const rotated = await doctorJson(['--http', '--dev'], env);
    expect(check(rotated, 'keys')).toMatchObject({ status: 'ok' });
    expect(check(rotated, 'keys').found).toMatch(/0 days old; 1 retiring/);
  });

  it('the signing keys of another secret fail, naming MCP_SECRET_KEY', async () => {
    const report = await doctorJson(['--http', '--dev'], {
      ...env,
      MCP_SECRET_KEY: 'another-secret-'.repeat(4),
    });
    expect(check(report, 'keys')).toMatchObject({ status: 'fail' });
    expect(check(report, 'keys').found).toContain('do not decrypt with this server secret');
    expect(check(report, 'keys').fix).toContain('set MCP_SECRET_KEY to the secret they were made with');
  });
});

describeWithTerminal('mcp-pa doctor on a terminal', () => {
  it('shows the migrations it applies as `migrating database: n/total <name>`', () => {
    const data = tempDir('mcp-pa-doctor-tty-');
    try {
      const tty = onTerminal([CLI, 'doctor', '--http', '--dev'], {
        PATH: process.env['PATH'] ?? '',
        HOME: data.dir,
        MCP_DATA_DIR: data.dir,
        MCP_PORT: '1',
      });
      expect(tty.code).toBe(1); // the issuer does not answer
      expect(tty.output).toMatch(/\rmigrating database: 1\/\d+ items, profiles/);
      expect(tty.output).toMatch(/<clear-line>\r?\nmcp-pa \d+\.\d+\.\d+ doctor: HTTP mode/);
      expect(tty.output).toMatch(/^ok {4}database +PGlite \(embedded\) .*migrated from schema 0 just now/m);
    } finally {
      data.cleanup();
    }
  });
});

/** A CA and a certificate from it valid for 200 days, written to `dir` for `mcp-pa serve` (key mode 600). */
async function serverCertificate(
  dir: string,
  caName: string,
): Promise<{ certFile: string; keyFile: string; caFile: string }> {
  const ca = await makeCa(caName);
  const pair = await issue(ca, { to: 200 * DAY_MS });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(certFile, pair.cert);
  writeFileSync(keyFile, pair.key, { mode: 0o600 });
  writeFileSync(caFile, ca.pem);
  return { certFile, keyFile, caFile };
}

describe('mcp-pa doctor against a running mcp-pa serve (PGlite)', () => {
  let server: ServerProcess;
  let files: { dir: string; cleanup: () => void };

  beforeAll(async () => {
    files = tempDir('mcp-pa-doctor-serve-');
    const { certFile, keyFile, caFile } = await serverCertificate(files.dir, 'serve CA');
    server = await startServerProcess({
      config: {
        server: { tls_cert: certFile, tls_key: keyFile },
        authentication: { metadata_fetch_ca: caFile },
      },
    });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    files?.cleanup();
  });

  it('the issuer answers (issuer, S256), the clock agrees; the database in use is left alone; exit 0', async () => {
    // The configuration file says port 0 (any): the server's actual port comes from the environment, as it would.
    const report = await doctorJson(['--config', server.configFile], {
      HOME: files.dir,
      MCP_PORT: String(server.port),
    });
    expectWellFormed(report);
    expect(report).toMatchObject({ mode: 'http', ok: true, code: 0, configFile: server.configFile });
    expect(check(report, 'issuer')).toMatchObject({ status: 'ok' });
    expect(check(report, 'issuer').found).toContain(`issuer ${server.issuer}, PKCE S256`);
    expect(check(report, 'clock')).toMatchObject({ status: 'ok' });
    expect(check(report, 'database')).toMatchObject({ status: 'skip' });
    expect(check(report, 'database').found).toContain('the embedded database allows one process');
    expect(check(report, 'tls')).toMatchObject({ status: 'ok' });
    expect(check(report, 'keys').found).toContain(
      'server secret configured (authentication.secret_key, MCP_SECRET_KEY)',
    );
    expect(server.running()).toBe(true);
  });
});

// ── The real PostgreSQL server ─────────────────────────────────────────────────────────────────────────────────

describeWithServer('mcp-pa doctor against a running mcp-pa serve on PostgreSQL', () => {
  let server: ServerProcess;
  let db: TestDatabase;
  let files: { dir: string; cleanup: () => void };
  let url: string;
  const password = `pg-${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    files = tempDir('mcp-pa-doctor-pg-');
    db = await createTestDatabase();
    const withPassword = new URL(db.url);
    withPassword.password = password; // the test server trusts local connections: the password is only carried
    url = withPassword.toString();
    const { certFile, keyFile, caFile } = await serverCertificate(files.dir, 'pg CA');
    server = await startServerProcess({
      env: { MCP_DATABASE_URL: url },
      config: {
        server: { tls_cert: certFile, tls_key: keyFile },
        authentication: { metadata_fetch_ca: caFile },
        features: { vector_search: true },
      },
    });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await db?.drop();
    files?.cleanup();
  });

  it('a healthy deployment: every check ok (or not applicable), exit 0, no password printed', async () => {
    const env = { HOME: files.dir, MCP_DATABASE_URL: url, MCP_PORT: String(server.port) };
    const report = await doctorJson(['--config', server.configFile], env);
    expectWellFormed(report);
    expect(report.summary.fail).toBe(0);
    expect(report.summary.warn).toBe(0);
    expect(report.code).toBe(0);
    expect(check(report, 'database').found).toMatch(
      /^PostgreSQL postgres@127\.0\.0\.1:5432\/\S+ \(pool \d+\): PostgreSQL \d+, schema \d+ \(current\)$/,
    );
    expect(check(report, 'vectors').found).toMatch(/pgvector \d+\.\d+\.\d+/);
    expect(check(report, 'vectors').found).toContain('index item_vectors_hnsw_256 exists');
    expect(check(report, 'clock').found).toContain("the database server's clock is");
    expect(check(report, 'clock').found).toContain('the issuer (');
    expect(check(report, 'keys').found).toMatch(/active key \S+ \(ES256\), made \d{4}-\d\d-\d\d, 0 days old/);
    expect(check(report, 'issuer')).toMatchObject({ status: 'ok' });
    const text = await run(['doctor', '--config', server.configFile], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^0 failed, 0 warnings, \d+ ok, \d+ skipped: all good\.$/m);
    for (const out of [JSON.stringify(report), text.stdout, text.stderr]) expect(out).not.toContain(password);
  });

  it('a signing key older than 90 days warns with `mcp-pa keys rotate`', async () => {
    await db.query(`UPDATE oauth_keys SET created_at = now() - interval '91 days' WHERE retire_at IS NULL`);
    const env = { HOME: files.dir, MCP_DATABASE_URL: url, MCP_PORT: String(server.port) };
    const report = await doctorJson(['--config', server.configFile], env);
    expect(report.code).toBe(0);
    expect(check(report, 'keys')).toMatchObject({ status: 'warn' });
    expect(check(report, 'keys').found).toContain('91 days old: older than 90 days');
    expect(check(report, 'keys').fix).toContain('run mcp-pa keys rotate');
  });
});
