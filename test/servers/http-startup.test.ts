import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import path from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedLocalhost } from '../../src/security/dev-certificate.js';
import { httpsFetch } from '../support/https.js';
import { CLI, ROOT, tempDir } from '../support/helpers.js';

/**
 * `mcp-pa serve` as a person runs it: the built CLI, spawned with an environment, on 127.0.0.1. Startup errors must
 * be clear and immediate; a running server must speak TLS 1.2+ with AEAD suites, reload its certificate on SIGHUP
 * without dropping connections, and stop cleanly on SIGTERM.
 */

const DAY = 24 * 60 * 60 * 1000;

interface Run {
  readonly child: ChildProcessWithoutNullStreams;
  readonly home: string;
  readonly dataDir: string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  done(): boolean;
}

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function folder(): string {
  const t = tempDir('mcp-pa-serve-');
  cleanups.push(t.cleanup);
  return t.dir;
}

function serve(args: string[], env: Record<string, string> = {}, home = folder()): Run {
  const dataDir = path.join(home, 'data');
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: home,
      MCP_DATA_DIR: dataDir,
      MCP_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  let finished = false;
  child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      finished = true;
      resolve({ code, signal });
    }),
  );
  cleanups.push(async () => {
    if (!finished) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, home, dataDir, stderr: () => err, exited, done: () => finished };
}

/** Waits until stderr matches, or the process exits (then fails with its output). */
async function waitFor(run: Run, pattern: RegExp): Promise<RegExpMatchArray> {
  for (;;) {
    const m = run.stderr().match(pattern);
    if (m) return m;
    if (run.done()) throw new Error(`exited before ${String(pattern)}:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for the "http server ready" log line and returns the URL it gives. */
async function ready(run: Run): Promise<URL> {
  const m = await waitFor(run, /^.*"msg":"http server ready".*$/m);
  const line = JSON.parse(m[0]) as { url: string };
  return new URL(line.url);
}

async function failsToStart(run: Run): Promise<{ code: number | null; stderr: string }> {
  const { code } = await run.exited;
  expect(run.stderr()).not.toContain('http server ready');
  return { code, stderr: run.stderr() };
}

async function certPair(
  dir: string,
  name: string,
  now = new Date(),
  days = 365,
): Promise<{ certFile: string; keyFile: string; cert: string; serial: string }> {
  const { cert, key } = await createSelfSignedLocalhost(now, days);
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  writeFileSync(certFile, cert);
  writeFileSync(keyFile, key, { mode: 0o600 });
  return { certFile, keyFile, cert, serial: new X509Certificate(cert).serialNumber };
}

function tlsHello(
  url: URL,
  ca: string,
  extra: ConnectionOptions = {},
): Promise<{ protocol: string | null; cipher: string; serial: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({
      host: url.hostname,
      port: Number(url.port),
      servername: 'localhost',
      ca: [ca],
      ...extra,
    });
    socket.once('secureConnect', () => {
      resolve({
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        serial: socket.getPeerCertificate().serialNumber,
      });
      socket.destroy();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

interface Reply {
  status: number;
  body: string;
  serial: string;
  socket: TLSSocket;
  reused: boolean;
}

function get(url: URL, pathname: string, agent: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(pathname, url), { agent }, (res) => {
      // Read now: with keep-alive the socket goes back to the agent (and res.socket to null) at the end.
      const socket = res.socket as TLSSocket;
      const serial = socket.getPeerCertificate().serialNumber;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body, serial, socket, reused: req.reusedSocket });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function agentTrusting(...cas: string[]): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: cas });
  cleanups.push(() => agent.destroy());
  return agent;
}

const AEAD_TLS12 = /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error('run `npm run build` first: the tests spawn dist/cli.js');
});

describe('mcp-pa serve: startup errors are clear and immediate (exit 2, nothing listens)', () => {
  it('TLS required (the default) but no certificate: names MCP_TLS_CERT / MCP_TLS_KEY and serve --dev', async () => {
    const { code, stderr } = await failsToStart(serve([]));
    expect(code).toBe(2);
    expect(stderr).toContain('TLS is required');
    expect(stderr).toContain('MCP_TLS_CERT');
    expect(stderr).toContain('MCP_TLS_KEY');
    expect(stderr).toContain('serve --dev');
  });

  it('a non-loopback bind without TLS is refused, saying why', async () => {
    const { code, stderr } = await failsToStart(serve(['--host', '0.0.0.0'], { MCP_TLS_REQUIRED: 'false' }));
    expect(code).toBe(2);
    expect(stderr).toContain('refusing to serve plain HTTP on 0.0.0.0, which is not a loopback address');
  });

  it('a non-loopback bind needs the public URL, the shared server secret, and authentication on', async () => {
    const d = folder();
    const p = await certPair(d, 'server');
    const noPublicUrl = await failsToStart(
      serve(['--host', '0.0.0.0'], { MCP_TLS_CERT: p.certFile, MCP_TLS_KEY: p.keyFile }),
    );
    expect(noPublicUrl.code).toBe(2);
    expect(noPublicUrl.stderr).toContain('set MCP_PUBLIC_URL');
    const noSecret = await failsToStart(
      serve(['--host', '0.0.0.0'], {
        MCP_TLS_CERT: p.certFile,
        MCP_TLS_KEY: p.keyFile,
        MCP_PUBLIC_URL: 'https://pa.example.test',
      }),
    );
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('serving on 0.0.0.0 needs a server secret shared by every replica');
    expect(noSecret.stderr).toContain('MCP_SECRET_KEY');
    expect(noSecret.stderr).not.toContain('plain HTTP');
    const config = path.join(d, 'noauth.json');
    writeFileSync(config, JSON.stringify({ authentication: { enabled: false } }));
    const noAuth = await failsToStart(
      serve(['--host', '0.0.0.0', '--config', config], { MCP_TLS_CERT: p.certFile, MCP_TLS_KEY: p.keyFile }),
    );
    expect(noAuth.code).toBe(2);
    expect(noAuth.stderr).toContain('cannot bind to 0.0.0.0: authentication is off');
  });

  it('OAuth needs HTTPS: plain HTTP with authentication on is refused, naming the ways out', async () => {
    const { code, stderr } = await failsToStart(serve([], { MCP_TLS_REQUIRED: 'false' }));
    expect(code).toBe(2);
    expect(stderr).toContain('OAuth needs HTTPS');
    expect(stderr).toContain('mcp-pa serve --dev');
    expect(stderr).toContain('authentication.enabled to false');
    // The refusal is an audit event in the log stream (JSON), once.
    const audited = stderr
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes('"msg":"audit"'))
      .map((l) => JSON.parse(l) as { audit: { type: string; details: { message: string; exit: number } } });
    expect(audited).toHaveLength(1);
    expect(audited[0]?.audit.type).toBe('config.error');
    expect(audited[0]?.audit.details.exit).toBe(2);
    expect(audited[0]?.audit.details.message).toContain('OAuth needs HTTPS');
  });

  it('a certificate file that is not PEM is named', async () => {
    const d = folder();
    const p = await certPair(d, 'server');
    const bad = path.join(d, 'bad.crt');
    writeFileSync(bad, 'not a certificate');
    const { code, stderr } = await failsToStart(serve([], { MCP_TLS_CERT: bad, MCP_TLS_KEY: p.keyFile }));
    expect(code).toBe(2);
    expect(stderr).toContain(`TLS certificate file ${bad} is not PEM`);
  });

  it('a missing certificate file is named', async () => {
    const d = folder();
    const p = await certPair(d, 'server');
    const missing = path.join(d, 'missing.crt');
    const { code, stderr } = await failsToStart(serve([], { MCP_TLS_CERT: missing, MCP_TLS_KEY: p.keyFile }));
    expect(code).toBe(2);
    expect(stderr).toContain(`TLS certificate file ${missing} does not exist`);
  });

  it('a key that does not match the certificate is refused', async () => {
    const d = folder();
    const a = await certPair(d, 'a');
    const b = await certPair(d, 'b');
    const { code, stderr } = await failsToStart(
      serve([], { MCP_TLS_CERT: a.certFile, MCP_TLS_KEY: b.keyFile }),
    );
    expect(code).toBe(2);
    expect(stderr).toContain(`TLS private key file ${b.keyFile} does not belong to the certificate`);
    expect(stderr).not.toContain('PRIVATE KEY-----');
  });

  it('an expired certificate is refused with its date', async () => {
    const d = folder();
    const p = await certPair(d, 'old', new Date(Date.now() - 40 * DAY), 10);
    const date = new Date(new X509Certificate(p.cert).validTo).toISOString().slice(0, 10);
    const { code, stderr } = await failsToStart(
      serve([], { MCP_TLS_CERT: p.certFile, MCP_TLS_KEY: p.keyFile }),
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(new RegExp(`TLS certificate in .*old\\.crt expired on ${date}`));
  });

  it('a certificate without its key (and the reverse) is refused', async () => {
    const d = folder();
    const p = await certPair(d, 'server');
    const onlyCert = await failsToStart(serve([], { MCP_TLS_CERT: p.certFile }));
    expect(onlyCert.code).toBe(2);
    expect(onlyCert.stderr).toContain('no key: set MCP_TLS_KEY');
    const onlyKey = await failsToStart(serve([], { MCP_TLS_KEY: p.keyFile }));
    expect(onlyKey.code).toBe(2);
    expect(onlyKey.stderr).toContain('no certificate: set MCP_TLS_CERT');
  });

  it('--dev together with a configured certificate is refused', async () => {
    const d = folder();
    const p = await certPair(d, 'server');
    const run = serve(['--dev'], { MCP_TLS_CERT: p.certFile, MCP_TLS_KEY: p.keyFile });
    const { code, stderr } = await failsToStart(run);
    expect(code).toBe(2);
    expect(stderr).toContain('--dev makes and serves its own localhost certificate');
    expect(existsSync(path.join(run.dataDir, 'tls'))).toBe(false);
  });

  it('bad arguments: an unknown option, a stray argument, a port that is not a number, --dev without serve', async () => {
    const unknown = await failsToStart(serve(['--tls']));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--tls'");
    const stray = await failsToStart(serve(['now']));
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('serve takes no arguments, got "now"');
    const port = await failsToStart(serve(['--port', 'eighty']));
    expect(port.code).not.toBe(0);
    expect(port.stderr).toContain('server.port: expected a whole number, got "eighty" [from flag --port]');
    const high = await failsToStart(serve(['--port', '70000']));
    expect(high.code).not.toBe(0);
    expect(high.stderr).toContain('server.port');
    const child = spawn(process.execPath, [CLI, '--dev'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(2);
    expect(err).toContain('--dev belongs to `mcp-pa serve`');
  });

  it('a configuration file is read by serve (--config), and its mistakes are reported', async () => {
    const d = folder();
    const file = path.join(d, 'config.json');
    writeFileSync(file, JSON.stringify({ server: { host: '0.0.0.0', tls_required: false } }));
    const { code, stderr } = await failsToStart(serve(['--config', file]));
    expect(code).toBe(2);
    expect(stderr).toContain('refusing to serve plain HTTP on 0.0.0.0');
    writeFileSync(file, JSON.stringify({ server: { prot: 1 } }));
    const typo = await failsToStart(serve(['--config', file]));
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain('unknown key "prot" — did you mean "port"?');
  });

  it('node dist/servers/http-server.js runs HTTP mode from the environment, with the same rules', async () => {
    const home = folder();
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/servers/http-server.js')], {
      env: { PATH: process.env['PATH'] ?? '', HOME: home, MCP_HOST: '0.0.0.0', MCP_TLS_REQUIRED: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(2);
    expect(err).toContain('refusing to serve plain HTTP on 0.0.0.0');
  });

  it('--help documents serve and its options', async () => {
    const child = spawn(process.execPath, [CLI, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(out).toContain('mcp-pa serve');
    for (const flag of ['--host', '--port', '--config', '--dev']) expect(out).toContain(flag);
  });
});

describe('mcp-pa serve: a running server (PGlite in a temporary data folder)', () => {
  it('an unreachable PostgreSQL server is a clear error, exit 1, without the password', async () => {
    // A port that nothing listens on: take one, then free it.
    const probe: NetServer = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const { code, stderr } = await failsToStart(
      serve(['--dev'], { MCP_DATABASE_URL: `postgresql://mcp:hunter2-secret@127.0.0.1:${port}/mcp` }),
    );
    expect(code).toBe(1);
    expect(stderr).toContain(`cannot start HTTP mode: cannot reach PostgreSQL at 127.0.0.1:${port}`);
    expect(stderr).not.toContain('hunter2-secret');
  });

  it('a port in use is a clear error, exit 1', async () => {
    const taken: NetServer = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as { port: number }).port;
    const { code, stderr } = await failsToStart(serve(['--dev', '--port', String(port)]));
    expect(code).toBe(1);
    expect(stderr).toContain(`cannot listen on 127.0.0.1 port ${port}: the port is already in use`);
  });

  it('--dev makes an owner-only certificate, prints how to trust it, serves TLS 1.2+ with AEAD only, and reuses it', async () => {
    const run = serve(['--dev']);
    const url = await ready(run);
    expect(url.protocol).toBe('https:');
    expect(url.hostname).toBe('127.0.0.1');
    const tlsDir = path.join(run.dataDir, 'tls');
    const certFile = path.join(tlsDir, 'localhost-cert.pem');
    const keyFile = path.join(tlsDir, 'localhost-key.pem');
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700);
    expect(statSync(certFile).mode & 0o777).toBe(0o600);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const stderr = run.stderr();
    expect(stderr).toContain(`NODE_EXTRA_CA_CERTS=${certFile}`);
    expect(stderr).toContain('update-ca-certificates');
    expect(stderr).toContain('security add-trusted-cert');
    expect(stderr).toContain('certutil');
    expect(stderr).toMatch(
      /embedded PGlite database in .*pglite: it is for trying mcp-pa out, not for production/,
    );
    const cert = readFileSync(certFile, 'utf8');
    const serial = new X509Certificate(cert).serialNumber;

    // A client trusting the certificate connects; the negotiated protocol is TLS 1.2 or newer.
    const agent = agentTrusting(cert);
    const health = await get(url, '/healthz', agent);
    expect(health.status).toBe(200);
    expect(['TLSv1.2', 'TLSv1.3']).toContain(health.socket.getProtocol());
    expect(health.serial).toBe(serial);
    // Capped at TLS 1.2, the suite is ECDHE with AES-GCM or ChaCha20-Poly1305.
    const tls12 = await tlsHello(url, cert, { maxVersion: 'TLSv1.2' });
    expect(tls12).toMatchObject({ protocol: 'TLSv1.2' });
    expect((tls12 as { cipher: string }).cipher).toMatch(AEAD_TLS12);
    // By name too: the certificate covers localhost.
    expect(await tlsHello(url, cert, { host: 'localhost', servername: 'localhost' })).toHaveProperty(
      'protocol',
    );
    // Refused: TLS 1.1, and TLS 1.2 offering only CBC suites.
    expect(
      await tlsHello(url, cert, {
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT:@SECLEVEL=0',
      }),
    ).toHaveProperty('error');
    expect(
      await tlsHello(url, cert, {
        maxVersion: 'TLSv1.2',
        ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA',
      }),
    ).toHaveProperty('error');
    // A client that trusts nothing extra is refused by the certificate check.
    expect(await tlsHello(url, '')).toHaveProperty('error');

    // The printed instruction works: a Node.js client given NODE_EXTRA_CA_CERTS connects by name.
    const nodeClient = spawn(
      process.execPath,
      [
        '-e',
        `require('node:https').get('https://localhost:${url.port}/healthz', (r) => { console.log(r.statusCode); r.resume(); }).on('error', (e) => { console.log(e.code); });`,
      ],
      {
        env: { PATH: process.env['PATH'] ?? '', NODE_EXTRA_CA_CERTS: certFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let printed = '';
    nodeClient.stdout.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    await new Promise((resolve) => nodeClient.once('exit', resolve));
    expect(printed.trim()).toBe('200');

    // OAuth is on: /mcp asks for a token and points at its metadata, which names this server as the issuer
    // (the SDK client with a token is exercised in test/auth/). The server secret was made in the data folder.
    const fetchTrusting = httpsFetch(cert);
    const unauth = await fetchTrusting(new URL('/mcp', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('www-authenticate')).toContain(
      `resource_metadata="${url.origin}/.well-known/oauth-protected-resource/mcp"`,
    );
    const prm = (await (
      await fetchTrusting(new URL('/.well-known/oauth-protected-resource/mcp', url))
    ).json()) as { authorization_servers: string[] };
    expect(prm.authorization_servers).toEqual([url.origin]);
    expect(statSync(path.join(run.home, 'data', 'secret.key')).mode & 0o777).toBe(0o600);

    agent.destroy();
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(run.stderr()).toContain('"reason":"SIGTERM"');

    // Second start on the same data folder: the same certificate, untouched.
    const again = serve(['--dev'], {}, run.home);
    const url2 = await ready(again);
    expect(again.stderr()).toContain('reusing the development certificate');
    expect(again.stderr()).not.toContain('Made a new development certificate');
    expect(readFileSync(certFile, 'utf8')).toBe(cert);
    expect(await tlsHello(url2, cert)).toMatchObject({ serial });
    again.child.kill('SIGINT');
    expect((await again.exited).code).toBe(0);
  });

  it('warns when the certificate expires within 30 days; SIGHUP swaps it without dropping a keep-alive connection, and a bad pair keeps the old one', async () => {
    const d = folder();
    const a = await certPair(d, 'a', new Date(), 10);
    const b = await certPair(d, 'b');
    const certFile = path.join(d, 'server.crt');
    const keyFile = path.join(d, 'server.key');
    writeFileSync(certFile, readFileSync(a.certFile));
    writeFileSync(keyFile, readFileSync(a.keyFile), { mode: 0o600 });

    const run = serve([], { MCP_TLS_CERT: certFile, MCP_TLS_KEY: keyFile });
    const url = await ready(run);
    expect(run.stderr()).toMatch(
      /"level":40,.*TLS certificate in .*server\.crt expires on .* in (9|10) day\(s\)/,
    );

    const kept = agentTrusting(a.cert, b.cert);
    const first = await get(url, '/healthz', kept);
    expect(first.status).toBe(200);
    expect(first.serial).toBe(a.serial);

    // New files in place, then SIGHUP.
    writeFileSync(certFile, readFileSync(b.certFile));
    writeFileSync(keyFile, readFileSync(b.keyFile));
    run.child.kill('SIGHUP');
    await waitFor(run, /"msg":"reloaded the TLS certificate"/);

    const fresh = await get(url, '/healthz', agentTrusting(a.cert, b.cert));
    expect(fresh.status).toBe(200);
    expect(fresh.serial).toBe(b.serial);
    // The connection opened before the reload is still open and still answers, on the old certificate.
    const second = await get(url, '/healthz', kept);
    expect(second.status).toBe(200);
    expect(second.reused).toBe(true);
    expect(second.socket).toBe(first.socket);
    expect(second.serial).toBe(a.serial);

    // A pair that does not match: refused with an error log, the previous certificate stays.
    const c = await certPair(d, 'c');
    writeFileSync(certFile, readFileSync(c.certFile));
    writeFileSync(keyFile, readFileSync(a.keyFile));
    run.child.kill('SIGHUP');
    await waitFor(
      run,
      /"level":50,.*does not belong to the certificate.*"msg":"TLS reload refused; still serving the previous certificate"/,
    );
    const after = await get(url, '/healthz', agentTrusting(a.cert, b.cert, c.cert));
    expect(after.serial).toBe(b.serial);
    expect(run.done()).toBe(false);

    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });

  it('plain HTTP only with tls_required false on loopback, with a warning', async () => {
    const home = folder();
    const config = path.join(home, 'noauth.json');
    writeFileSync(config, JSON.stringify({ authentication: { enabled: false } }));
    const run = serve(['--config', config], { MCP_TLS_REQUIRED: 'false' }, home);
    const url = await ready(run);
    expect(url.protocol).toBe('http:');
    expect(run.stderr()).toMatch(
      /"level":40,.*serving plain HTTP without TLS on loopback address 127\.0\.0\.1/,
    );
    const status = await new Promise<number>((resolve, reject) => {
      httpRequest(new URL('/healthz', url), (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(200);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });
});
