/**
 * The start rules for proxies and the redirect listener: planHttpStartup directly (nothing listens), and
 * `mcp-pa serve` as a person runs it (the built CLI, spawned) for the refusals a person sees.
 *
 * - server.trust_proxy needs an https server.public_url (clients reach the server at the proxy's URL: the issuer);
 *   its entries must be addresses or CIDR ranges.
 * - Plain HTTP on a non-loopback address is allowed only behind trusted proxies with an https public URL (with
 *   a warning); OAuth then runs over the proxies' HTTPS.
 * - server.http_redirect_port needs TLS on the main listener and a port of its own.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { planHttpStartup, StartupError } from '../../src/servers/http-preflight.js';
import { TrustedProxies, forwardedView } from '../../src/security/proxy.js';
import { CLI, tempDir } from '../support/helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

function dataDir(): string {
  const t = tempDir('mcp-pa-proxy-plan-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** planHttpStartup for an environment (MCP_*), or the StartupError's message. */
function plan(env: Record<string, string>): ReturnType<typeof planHttpStartup> | string {
  const { config } = loadConfig({ env: { MCP_DATA_DIR: dataDir(), ...env }, mode: 'http' });
  try {
    return planHttpStartup(config);
  } catch (err) {
    if (err instanceof StartupError) return err.message;
    throw err;
  }
}

const TLS = { MCP_TLS_CERT: '/nonexistent/cert.pem', MCP_TLS_KEY: '/nonexistent/key.pem' };
const SECRET = { MCP_SECRET_KEY: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz' };

describe('start rules for proxies and the redirect listener (planHttpStartup)', () => {
  it('plain HTTP on a non-loopback address: refused, unless behind trusted proxies with an https public URL', () => {
    const refused = plan({ MCP_HOST: '10.1.2.3', MCP_TLS_REQUIRED: 'false', ...SECRET });
    expect(refused).toEqual(expect.stringContaining('refusing to serve plain HTTP on 10.1.2.3'));
    expect(refused).toEqual(expect.stringContaining('server.trust_proxy'));
    const behind = plan({
      MCP_HOST: '10.1.2.3',
      MCP_TLS_REQUIRED: 'false',
      MCP_TRUST_PROXY: '10.0.0.0/8',
      MCP_PUBLIC_URL: 'https://pa.example.com',
      ...SECRET,
    });
    expect(typeof behind, String(behind)).toBe('object');
    if (typeof behind === 'string') return;
    expect(behind.tls.kind).toBe('none');
    expect(behind.warnings.join('\n')).toContain(
      'serving plain HTTP on 10.1.2.3 behind the TLS-terminating proxies 10.0.0.0/8',
    );
    // The same on loopback with OAuth on (before: "OAuth needs HTTPS").
    const loopback = plan({
      MCP_TLS_REQUIRED: 'false',
      MCP_TRUST_PROXY: '127.0.0.1',
      MCP_PUBLIC_URL: 'https://pa.example.com',
    });
    expect(typeof loopback, String(loopback)).toBe('object');
    expect(plan({ MCP_TLS_REQUIRED: 'false' })).toEqual(expect.stringContaining('OAuth needs HTTPS'));
    // tls_required (the default) still wants a certificate, and says how to run behind the proxy.
    expect(plan({ MCP_TRUST_PROXY: '127.0.0.1', MCP_PUBLIC_URL: 'https://pa.example.com' })).toEqual(
      expect.stringContaining('set server.tls_required to false'),
    );
  });

  it('trust_proxy needs an https public URL and well-formed entries', () => {
    expect(plan({ ...TLS, MCP_TRUST_PROXY: '127.0.0.2' })).toEqual(
      expect.stringContaining('server.trust_proxy (MCP_TRUST_PROXY) is set, so clients reach this server'),
    );
    expect(plan({ ...TLS, MCP_TRUST_PROXY: '127.0.0.2' })).toEqual(expect.stringContaining('MCP_PUBLIC_URL'));
    expect(plan({ ...TLS, MCP_TRUST_PROXY: '127.0.0.2', MCP_PUBLIC_URL: 'http://pa.example.com' })).toEqual(
      expect.stringContaining('is http: make it the https URL clients use'),
    );
    expect(
      plan({ ...TLS, MCP_TRUST_PROXY: 'proxy.local', MCP_PUBLIC_URL: 'https://pa.example.com' }),
    ).toEqual(
      expect.stringContaining('server.trust_proxy entry "proxy.local" is not an IP address or CIDR range'),
    );
    expect(
      plan({ ...TLS, MCP_TRUST_PROXY: '10.0.0.0/33', MCP_PUBLIC_URL: 'https://pa.example.com' }),
    ).toEqual(expect.stringContaining('bad prefix length "33"'));
    expect(plan({ ...TLS, MCP_TRUST_PROXY: '0.0.0.0/0', MCP_PUBLIC_URL: 'https://pa.example.com' })).toEqual(
      expect.stringContaining('trusts every address'),
    );
    const ok = plan({
      ...TLS,
      MCP_TRUST_PROXY: '127.0.0.2, fd00::/8',
      MCP_PUBLIC_URL: 'https://pa.example.com',
    });
    expect(typeof ok, String(ok)).toBe('object');
  });

  it('http_redirect_port needs TLS, a port of its own and an https public URL', () => {
    expect(
      plan({
        MCP_TLS_REQUIRED: 'false',
        MCP_HTTP_REDIRECT_PORT: '8080',
        MCP_TRUST_PROXY: '127.0.0.2',
        MCP_PUBLIC_URL: 'https://pa.example.com',
      }),
    ).toEqual(expect.stringContaining('but this server would not serve HTTPS itself'));
    expect(plan({ ...TLS, MCP_PORT: '8443', MCP_HTTP_REDIRECT_PORT: '8443' })).toEqual(
      expect.stringContaining('must differ from server.port (both 8443)'),
    );
    expect(plan({ ...TLS, MCP_HTTP_REDIRECT_PORT: '8080', MCP_PUBLIC_URL: 'http://pa.example.com' })).toEqual(
      expect.stringContaining('redirects to the public URL, but http://pa.example.com'),
    );
    const ok = plan({ ...TLS, MCP_PORT: '8443', MCP_HTTP_REDIRECT_PORT: '8080' });
    expect(typeof ok, String(ok)).toBe('object');
  });
});

describe('reading forwarded headers (src/security/proxy.ts)', () => {
  const proxies = TrustedProxies.parse(['10.0.0.0/8', '2001:db8::/32']);

  it('trusts listed addresses, IPv4-mapped and bracketed forms included; nothing when empty', () => {
    expect(proxies.trusts('10.2.3.4')).toBe(true);
    expect(proxies.trusts('::ffff:10.2.3.4')).toBe(true);
    expect(proxies.trusts('[2001:db8::1]')).toBe(true);
    expect(proxies.trusts('11.0.0.1')).toBe(false);
    expect(proxies.trusts(undefined)).toBe(false);
    expect(TrustedProxies.parse([]).trusts('127.0.0.1')).toBe(false);
  });

  it('the client is the right-most forwarded address that is not a proxy', () => {
    const view = (headers: Record<string, string>, peer = '10.0.0.1') =>
      forwardedView(headers, peer, false, proxies);
    expect(view({ 'x-forwarded-for': '198.51.100.1, 203.0.113.9, 10.0.0.7' }).clientAddress).toBe(
      '203.0.113.9',
    );
    expect(view({ 'x-forwarded-for': '203.0.113.9:4711' }).clientAddress).toBe('203.0.113.9');
    expect(view({ 'x-forwarded-for': '[2001:db9::1]:80' }).clientAddress).toBe('2001:db9::1');
    expect(view({ 'x-forwarded-for': 'unknown, 10.0.0.7' }).clientAddress).toBe('10.0.0.7');
    expect(view({ forwarded: 'for=203.0.113.9;proto=https, for="[2001:db8::2]:1"' }).clientAddress).toBe(
      '203.0.113.9',
    );
    expect(view({ 'x-forwarded-for': '203.0.113.9' }, '192.0.2.1')).toMatchObject({
      viaProxy: false,
      clientAddress: '192.0.2.1',
      protocol: 'http',
    });
    expect(view({}).clientAddress).toBe('10.0.0.1');
  });

  it('the protocol is https only when every hop that said one said https', () => {
    const proto = (headers: Record<string, string>, encrypted = false) =>
      forwardedView(headers, '10.0.0.1', encrypted, proxies).protocol;
    expect(proto({ 'x-forwarded-proto': 'https' })).toBe('https');
    expect(proto({ 'x-forwarded-proto': 'HTTPS' })).toBe('https');
    expect(proto({ 'x-forwarded-proto': 'https, http' })).toBe('http');
    expect(proto({ forwarded: 'proto=https;for=1.2.3.4' })).toBe('https');
    expect(proto({ forwarded: 'proto="http"' })).toBe('http');
    expect(proto({})).toBe('http');
    expect(proto({}, true)).toBe('https');
  });
});

describe('mcp-pa serve refuses proxy and redirect mistakes (exit 2, nothing listens)', () => {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error('run `npm run build` first: the tests spawn dist/cli.js');
  });

  async function serve(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const home = dataDir();
    const child = spawn(process.execPath, [CLI, 'serve', ...(env['MCP_PORT'] ? [] : ['--port', '0'])], {
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: home,
        MCP_DATA_DIR: path.join(home, 'data'),
        MCP_LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    return { code, stderr };
  }

  it('trust_proxy without a public URL, and a redirect port without TLS', async () => {
    const noPublic = await serve({ MCP_TLS_REQUIRED: 'false', MCP_TRUST_PROXY: '127.0.0.2' });
    expect(noPublic.code).toBe(2);
    expect(noPublic.stderr).toContain('server.trust_proxy (MCP_TRUST_PROXY) is set');
    expect(noPublic.stderr).toContain('set MCP_PUBLIC_URL');
    expect(noPublic.stderr).not.toContain('http server ready');
    const badEntry = await serve({
      MCP_TLS_REQUIRED: 'false',
      MCP_TRUST_PROXY: '127.0.0.2,not-an-ip',
      MCP_PUBLIC_URL: 'https://pa.example.test',
    });
    expect(badEntry.code).toBe(2);
    expect(badEntry.stderr).toContain('"not-an-ip" is not an IP address or CIDR range');
    const redirect = await serve({
      MCP_TLS_REQUIRED: 'false',
      MCP_TRUST_PROXY: '127.0.0.2',
      MCP_PUBLIC_URL: 'https://pa.example.test',
      MCP_HTTP_REDIRECT_PORT: '18080',
    });
    expect(redirect.code).toBe(2);
    expect(redirect.stderr).toContain('MCP_HTTP_REDIRECT_PORT');
    expect(redirect.stderr).toContain('would not serve HTTPS itself');
    const samePort = await serve({ ...TLS, MCP_PORT: '18443', MCP_HTTP_REDIRECT_PORT: '18443' });
    expect(samePort.code).toBe(2);
    expect(samePort.stderr).toContain('must differ from server.port (both 18443)');
  });
});
