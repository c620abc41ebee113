import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect, createServer, type ConnectionOptions, type Server, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createSelfSignedLocalhost,
  devCertificatePaths,
  ensureDevCertificate,
  trustInstructions,
} from '../../src/security/dev-certificate.js';
import {
  loadTlsMaterial,
  secureContextOptions,
  TlsMaterialError,
  type TlsMaterial,
} from '../../src/security/tls.js';
import { tempDir } from '../support/helpers.js';

const DAY = 24 * 60 * 60 * 1000;
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function dir(): string {
  const t = tempDir('mcp-pa-tls-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Writes a certificate and key made for `now` (valid `days` from an hour before it) and returns their paths. */
async function pair(
  folder: string,
  name: string,
  now = new Date(),
  days = 365,
): Promise<{ certFile: string; keyFile: string; cert: string; key: string }> {
  const { cert, key } = await createSelfSignedLocalhost(now, days);
  const certFile = path.join(folder, `${name}-cert.pem`);
  const keyFile = path.join(folder, `${name}-key.pem`);
  writeFileSync(certFile, cert);
  writeFileSync(keyFile, key, { mode: 0o600 });
  return { certFile, keyFile, cert, key };
}

async function rejection(p: Promise<unknown>): Promise<TlsMaterialError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TlsMaterialError);
  return err as TlsMaterialError;
}

describe('loadTlsMaterial: checks a certificate and key before they are served', () => {
  it('accepts a matching, valid pair and reports what it serves', async () => {
    const d = dir();
    const p = await pair(d, 'good');
    const m = await loadTlsMaterial(p.certFile, p.keyFile);
    const x = new X509Certificate(p.cert);
    expect(m.serialNumber).toBe(x.serialNumber);
    expect(m.fingerprint256).toBe(x.fingerprint256);
    expect(m.subject).toContain('CN=localhost');
    expect(m.warnings).toEqual([]);
    expect(m.validTo.getTime()).toBe(new Date(x.validTo).getTime());
  });

  it('names a missing certificate file and the variable that set it', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const missing = path.join(d, 'nope.pem');
    const err = await rejection(loadTlsMaterial(missing, p.keyFile));
    expect(err.message).toContain(missing);
    expect(err.message).toContain('does not exist');
    expect(err.message).toContain('MCP_TLS_CERT');
    expect(err.file).toBe(missing);
  });

  it('names a missing key file', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const err = await rejection(loadTlsMaterial(p.certFile, path.join(d, 'none.key')));
    expect(err.message).toMatch(/TLS private key file .*none\.key does not exist \(MCP_TLS_KEY/);
  });

  it('says a folder is not a PEM file', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const err = await rejection(loadTlsMaterial(d, p.keyFile));
    expect(err.message).toContain(`${d} is a folder`);
  });

  it.skipIf(process.getuid?.() === 0)('says an unreadable file cannot be read', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    chmodSync(p.keyFile, 0);
    const err = await rejection(loadTlsMaterial(p.certFile, p.keyFile));
    expect(err.message).toContain('permission denied');
  });

  it('says a DER (binary) certificate is not PEM, and how to convert it', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const der = path.join(d, 'cert.der');
    writeFileSync(der, new X509Certificate(p.cert).raw);
    const err = await rejection(loadTlsMaterial(der, p.keyFile));
    expect(err.message).toContain(`${der} is not PEM`);
    expect(err.message).toContain('openssl x509 -inform der');
  });

  it('says text without a PEM block is not PEM', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const junk = path.join(d, 'junk.pem');
    writeFileSync(junk, 'hello, I am not a certificate\n');
    expect((await rejection(loadTlsMaterial(junk, p.keyFile))).message).toContain('is not PEM');
    expect((await rejection(loadTlsMaterial(p.certFile, junk))).message).toContain('is not PEM');
  });

  it('notices swapped files', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const err = await rejection(loadTlsMaterial(p.keyFile, p.certFile));
    expect(err.message).toContain('swapped');
  });

  it('refuses a key that belongs to another certificate', async () => {
    const d = dir();
    const a = await pair(d, 'a');
    const b = await pair(d, 'b');
    const err = await rejection(loadTlsMaterial(a.certFile, b.keyFile));
    expect(err.message).toContain('does not belong to the certificate');
    expect(err.message).toContain(a.certFile);
    expect(err.message).toContain(b.keyFile);
    expect(err.message).not.toContain('PRIVATE KEY');
  });

  it('refuses an expired certificate and gives the date', async () => {
    const d = dir();
    const made = new Date(Date.now() - 10 * DAY);
    const p = await pair(d, 'old', made, 5);
    const notAfter = new Date(new X509Certificate(p.cert).validTo).toISOString().slice(0, 10);
    const err = await rejection(loadTlsMaterial(p.certFile, p.keyFile));
    expect(err.message).toContain('expired on');
    expect(err.message).toContain(notAfter);
  });

  it('refuses a certificate that is not valid yet and gives the date', async () => {
    const d = dir();
    const p = await pair(d, 'future', new Date(Date.now() + 10 * DAY), 30);
    const notBefore = new Date(new X509Certificate(p.cert).validFrom).toISOString().slice(0, 10);
    const err = await rejection(loadTlsMaterial(p.certFile, p.keyFile));
    expect(err.message).toContain('not yet valid');
    expect(err.message).toContain(notBefore);
  });

  it('refuses a key encrypted with a passphrase (PKCS#8 and traditional forms)', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const key = createPrivateKey(p.key);
    const pkcs8 = path.join(d, 'enc8.key');
    writeFileSync(
      pkcs8,
      key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret-pass' }),
    );
    const sec1 = path.join(d, 'enc1.key');
    writeFileSync(
      sec1,
      key.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret-pass' }),
    );
    for (const f of [pkcs8, sec1]) {
      const err = await rejection(loadTlsMaterial(p.certFile, f));
      expect(err.message).toContain('encrypted with a passphrase');
      expect(err.message).toContain(f);
    }
  });

  it('accepts a traditional (SEC1 "EC PRIVATE KEY") unencrypted key', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    const sec1 = path.join(d, 'sec1.key');
    writeFileSync(sec1, createPrivateKey(p.key).export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
    const m = await loadTlsMaterial(p.certFile, sec1);
    expect(m.serialNumber).toBe(new X509Certificate(p.cert).serialNumber);
  });

  it('warns (in the result and through warn) when the certificate expires within 30 days', async () => {
    const d = dir();
    const p = await pair(d, 'soon', new Date(), 10);
    const told: string[] = [];
    const m = await loadTlsMaterial(p.certFile, p.keyFile, { warn: (msg) => told.push(msg) });
    expect(m.warnings).toHaveLength(1);
    expect(m.warnings[0]).toMatch(/expires on \d{4}-\d\d-\d\dT.* in (9|10) day\(s\)/);
    expect(told).toEqual(m.warnings);
    // Thirty-one days is fine.
    const later = await pair(d, 'later', new Date(), 40);
    expect((await loadTlsMaterial(later.certFile, later.keyFile)).warnings).toEqual([]);
  });

  it.skipIf(process.platform === 'win32')('warns when the key is readable by other users', async () => {
    const d = dir();
    const p = await pair(d, 'a');
    chmodSync(p.keyFile, 0o644);
    const m = await loadTlsMaterial(p.certFile, p.keyFile);
    expect(m.warnings.join('\n')).toContain('readable by other users (mode 644)');
  });

  it('serves the whole chain file but checks the first certificate against the key', async () => {
    const d = dir();
    const a = await pair(d, 'a');
    const b = await pair(d, 'b');
    const chain = path.join(d, 'chain.pem');
    writeFileSync(chain, a.cert + b.cert);
    const m = await loadTlsMaterial(chain, a.keyFile);
    expect(m.cert.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    await rejection(loadTlsMaterial(chain, b.keyFile));
  });
});

describe('secureContextOptions: the TLS policy on a real handshake', () => {
  async function serve(material: TlsMaterial): Promise<number> {
    const server: Server = createServer(secureContextOptions(material), (s) => s.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return (server.address() as { port: number }).port;
  }

  function hello(
    port: number,
    ca: string,
    extra: ConnectionOptions = {},
  ): Promise<{ protocol: string | null; cipher: string } | { error: string }> {
    return new Promise((resolve) => {
      const socket: TLSSocket = connect({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: [ca],
        ...extra,
      });
      socket.once('secureConnect', () => {
        resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
        socket.destroy();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
  }

  it('negotiates TLS 1.3 by default and an ECDHE AEAD suite when the client stops at TLS 1.2', async () => {
    const d = dir();
    const p = await pair(d, 'srv');
    const port = await serve(await loadTlsMaterial(p.certFile, p.keyFile));
    expect(await hello(port, p.cert)).toMatchObject({ protocol: 'TLSv1.3' });
    const r12 = await hello(port, p.cert, { maxVersion: 'TLSv1.2' });
    expect(r12).toMatchObject({ protocol: 'TLSv1.2' });
    expect((r12 as { cipher: string }).cipher).toMatch(
      /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/,
    );
    // The client prefers ChaCha20; the server's order (AES-GCM first) wins.
    const pref = await hello(port, p.cert, {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256',
    });
    expect(pref).toMatchObject({ cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  });

  it('refuses TLS 1.1 and TLS 1.2 without an AEAD suite', async () => {
    const d = dir();
    const p = await pair(d, 'srv');
    const port = await serve(await loadTlsMaterial(p.certFile, p.keyFile));
    const old = await hello(port, p.cert, {
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT:@SECLEVEL=0',
    });
    expect(old).toHaveProperty('error');
    const cbc = await hello(port, p.cert, {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA',
    });
    expect(cbc).toHaveProperty('error');
  });
});

describe('ensureDevCertificate: the `serve --dev` certificate', () => {
  it('makes an owner-only localhost certificate once and reuses it while it has more than 30 days', async () => {
    const data = path.join(dir(), 'data');
    const first = await ensureDevCertificate(data);
    expect(first.created).toBe(true);
    const paths = devCertificatePaths(data);
    expect(first.certFile).toBe(paths.certFile);
    expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
    expect(statSync(paths.certFile).mode & 0o777).toBe(0o600);
    expect(statSync(paths.keyFile).mode & 0o777).toBe(0o600);
    const x = new X509Certificate(readFileSync(paths.certFile));
    expect(x.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(x.checkPrivateKey(createPrivateKey(readFileSync(paths.keyFile)))).toBe(true);
    expect(x.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    expect(x.ca).toBe(false);

    const again = await ensureDevCertificate(data);
    expect(again.created).toBe(false);
    expect(again.material.serialNumber).toBe(first.material.serialNumber);

    // 340 days on, fewer than 30 are left: a new one is made.
    const renewed = await ensureDevCertificate(data, { now: new Date(Date.now() + 340 * DAY) });
    expect(renewed.created).toBe(true);
    expect(renewed.material.serialNumber).not.toBe(first.material.serialNumber);
  });

  it('replaces a damaged certificate', async () => {
    const data = path.join(dir(), 'data');
    const first = await ensureDevCertificate(data);
    writeFileSync(first.keyFile, 'garbage');
    const next = await ensureDevCertificate(data);
    expect(next.created).toBe(true);
    expect(statSync(next.keyFile).mode & 0o777).toBe(0o600);
  });

  it('prints how to trust it for Node, curl, Debian/Ubuntu, macOS and Windows', () => {
    const text = trustInstructions('/data dir/tls/localhost-cert.pem', 'https://127.0.0.1:8000');
    expect(text).toContain('NODE_EXTRA_CA_CERTS="/data dir/tls/localhost-cert.pem"');
    expect(text).toContain('update-ca-certificates');
    expect(text).toContain('security add-trusted-cert');
    expect(text).toContain('certutil');
    expect(text).toContain('curl --cacert "/data dir/tls/localhost-cert.pem" https://127.0.0.1:8000/healthz');
  });
});
