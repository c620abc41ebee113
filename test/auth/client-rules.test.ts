/** The pure rules of the authorization side: redirect URIs, client metadata limits, secret digests, DN matching. */
import { describe, expect, it } from 'vitest';
import {
  applyClientRules,
  checkRedirectUri,
  clientSecretMatches,
  ClientMetadataProblem,
  hashClientSecret,
  LIMITS,
} from '../../src/auth/client-rules.js';
import { subjectDnMatches } from '../../src/auth/provider.js';

describe('redirect URIs', () => {
  it.each([
    ['https://app.example/cb', 'https'],
    ['http://127.0.0.1/cb', 'loopback'],
    ['http://[::1]:8080/cb', 'loopback'],
    ['http://localhost:3000/cb', 'loopback'],
    ['com.example.app:/callback', 'private-use'],
  ])('%s is accepted as %s', (uri, kind) => {
    expect(checkRedirectUri(uri)).toEqual({ ok: true, kind });
  });

  it.each([
    ['javascript:alert(1)', 'javascript:'],
    ['data:text/html,x', 'data:'],
    ['file:///etc/passwd', 'file:'],
    ['http://evil.example/cb', 'loopback host'],
    ['https://*.evil.example/cb', 'wildcard'],
    ['https://app.example/cb#f', 'fragment'],
    ['https://user@evil.example/cb', 'user information'],
    ['/relative', 'absolute'],
    ['', 'non-empty'],
  ])('%s is refused (%s)', (uri, why) => {
    const r = checkRedirectUri(uri);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toContain(why);
  });

  it('a client with only loopback or private-use redirects becomes a native app; https keeps it web', () => {
    const native: Record<string, unknown> = {
      redirect_uris: ['http://127.0.0.1/cb', 'x.y:/z'],
      application_type: 'web',
    };
    applyClientRules(native);
    expect(native['application_type']).toBe('native');
    const web: Record<string, unknown> = { redirect_uris: ['https://a.example/cb', 'http://127.0.0.1/cb'] };
    applyClientRules(web);
    expect(web['application_type']).toBeUndefined();
  });

  it('bounds the number of redirect URIs and the length of names and strings', () => {
    const many = {
      redirect_uris: Array.from({ length: LIMITS.redirectUris + 1 }, (_, i) => `https://a.example/${i}`),
    };
    expect(() => applyClientRules(many)).toThrow(ClientMetadataProblem);
    expect(() => applyClientRules({ client_name: 'x'.repeat(LIMITS.clientName + 1) })).toThrow(/client_name/);
    expect(() =>
      applyClientRules({ tos_uri: `https://a.example/${'x'.repeat(LIMITS.stringField)}` }),
    ).toThrow(/tos_uri/);
  });
});

describe('client secrets', () => {
  it('are stored as a digest that never contains the secret, and compared exactly', () => {
    const secret = 'a-long-random-client-secret-value';
    const stored = hashClientSecret(secret);
    expect(stored).not.toContain(secret);
    expect(clientSecretMatches(stored, secret)).toBe(true);
    expect(clientSecretMatches(stored, `${secret}x`)).toBe(false);
    expect(clientSecretMatches(stored, undefined)).toBe(false);
  });
});

describe('tls_client_auth subject DN', () => {
  const node = 'C=DE\nO=Example, Inc\nCN=client-1';
  it('matches in RFC 4514 order (CN first) and in certificate order, attribute types in any case', () => {
    expect(subjectDnMatches(node, 'CN=client-1,O=Example\\, Inc,C=DE')).toBe(true);
    expect(subjectDnMatches(node, 'c=DE, o=Example\\, Inc, cn=client-1')).toBe(true);
    expect(subjectDnMatches('CN=client-1', 'CN=client-1')).toBe(true);
  });
  it('refuses another value, a missing or extra attribute, or another order', () => {
    expect(subjectDnMatches(node, 'CN=client-2,O=Example\\, Inc,C=DE')).toBe(false);
    expect(subjectDnMatches(node, 'CN=client-1,C=DE')).toBe(false);
    expect(subjectDnMatches(node, 'CN=client-1,O=Example\\, Inc,C=DE,L=X')).toBe(false);
    expect(subjectDnMatches(node, 'O=Example\\, Inc,CN=client-1,C=DE')).toBe(false);
  });
});
