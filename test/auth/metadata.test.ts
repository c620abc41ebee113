/**
 * The discovery documents of the real HTTP-mode server (PGlite): RFC 8414 authorization server metadata at
 * /.well-known/oauth-authorization-server and its OpenID Connect Discovery twin, RFC 9728 protected resource
 * metadata at both URLs an MCP client may try, the JWKS, and the 401 challenge that points a client at them.
 * Every document carries the fields its specification requires, and issuer, authorization_servers and resource
 * agree byte-for-byte with each other, with the URLs they were fetched from, and with the tokens issued.
 */
import { createPublicKey, type JsonWebKey as NodeJsonWebKey } from 'node:crypto';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkcePair, startOAuthFixture, type OAuthFixture } from './oauth-fixture.js';

type Json = Record<string, unknown>;

const AS_PATH = '/.well-known/oauth-authorization-server';
const OIDC_PATH = '/.well-known/openid-configuration';
const PRM_ROOT = '/.well-known/oauth-protected-resource';
const PRM_MCP = '/.well-known/oauth-protected-resource/mcp';
const REDIRECT = 'http://127.0.0.1:51004/cb';

async function getJson(
  fx: OAuthFixture,
  path: string,
): Promise<{ status: number; type: string; body: Json }> {
  const res = await fx.fetch(`${fx.origin}${path}`, { headers: { accept: 'application/json' } });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: (await res.json()) as Json,
  };
}

/** RFC 8414 §2 / RFC 9728 §2: a URL field is an absolute https URL without a fragment. */
function expectHttpsUrl(value: unknown, field: string): URL {
  expect(typeof value, `${field} is not a string`).toBe('string');
  const url = new URL(value as string);
  expect(url.protocol, field).toBe('https:');
  expect(url.hash, field).toBe('');
  return url;
}

/** RFC 8414 §2 / RFC 9728 §2: "Claims with zero elements MUST be omitted"; arrays hold strings. */
function expectNoEmptyArrays(doc: Json, name: string): void {
  for (const [key, value] of Object.entries(doc)) {
    if (!Array.isArray(value)) continue;
    expect(value.length, `${name}: ${key} is an empty array`).toBeGreaterThan(0);
    for (const item of value) expect(typeof item, `${name}: ${key} holds a non-string`).toBe('string');
  }
}

/** Runs the authorization-code flow for a public client; returns the token response (status and body). */
async function codeFlow(
  fx: OAuthFixture,
  pkce: { challenge: string; method: 'S256' | 'plain'; verifier: string },
): Promise<{ status: number; body: Json; location: string | undefined }> {
  const reg = await fx.register({
    redirect_uris: ['http://127.0.0.1/cb'],
    client_name: 'Metadata test',
    token_endpoint_auth_method: 'none',
  });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  const clientId = String(reg.body['client_id']);
  const user = await fx.addUser();
  const az = new URL(`${fx.origin}/oauth/authorize`);
  az.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'pa.read pa.write',
    state: 'meta',
    code_challenge: pkce.challenge,
    code_challenge_method: pkce.method,
    resource: fx.resource,
  }).toString();
  const done = await fx.browser().authorize(az.href, fx.origin, user);
  const code = done.location ? new URL(done.location).searchParams.get('code') : null;
  if (code === null)
    return {
      status: 0,
      body: {},
      location:
        done.location ??
        `(page ${done.res.status}) ${done.res.text.replace(/<style>[\s\S]*?<\/style>/, '').slice(0, 2000)}`,
    };
  const tk = await fx.fetch(`${fx.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: pkce.verifier,
      client_id: clientId,
    }).toString(),
  });
  return { status: tk.status, body: (await tk.json()) as Json, location: done.location };
}

describe('discovery metadata (default configuration, PGlite)', () => {
  let fx: OAuthFixture;
  let as: Json;
  let oidc: Json;

  beforeAll(async () => {
    fx = await startOAuthFixture();
    const a = await getJson(fx, AS_PATH);
    const o = await getJson(fx, OIDC_PATH);
    expect(a.status).toBe(200);
    expect(o.status).toBe(200);
    as = a.body;
    oidc = o.body;
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('serves RFC 8414 authorization server metadata with its required and recommended fields', async () => {
    const res = await getJson(fx, AS_PATH);
    // §3.2: 200 with application/json.
    expect(res.type).toMatch(/^application\/json\b/);
    // §2 issuer REQUIRED: https, no query or fragment; §3.3: identical to the issuer the URL was made from.
    expect(as['issuer']).toBe(fx.issuer);
    expect(as['issuer']).toBe(fx.origin);
    const issuer = expectHttpsUrl(as['issuer'], 'issuer');
    expect(issuer.search).toBe('');
    // REQUIRED endpoints (the code grant uses both), under the issuer.
    for (const field of ['authorization_endpoint', 'token_endpoint']) {
      expect(as[field], `${field} is REQUIRED`).toBeDefined();
      expect(expectHttpsUrl(as[field], field).origin).toBe(fx.origin);
    }
    // OPTIONAL endpoints this server has, under the issuer.
    for (const field of [
      'jwks_uri',
      'registration_endpoint',
      'revocation_endpoint',
      'introspection_endpoint',
      'pushed_authorization_request_endpoint',
    ]) {
      expect(as[field], `${field} is missing`).toBeDefined();
      expect(expectHttpsUrl(as[field], field).origin).toBe(fx.origin);
    }
    expect(as['authorization_endpoint']).toBe(`${fx.origin}/oauth/authorize`);
    expect(as['token_endpoint']).toBe(`${fx.origin}/oauth/token`);
    expect(as['jwks_uri']).toBe(`${fx.origin}/oauth/jwks`);
    expect(as['registration_endpoint']).toBe(`${fx.origin}/oauth/register`);
    // response_types_supported REQUIRED: the code flow only.
    expect(as['response_types_supported']).toEqual(['code']);
    // scopes_supported RECOMMENDED: the resource's scopes among them.
    expect(as['scopes_supported']).toEqual(expect.arrayContaining(['pa.read', 'pa.write']));
    // grant_types_supported (its default would include implicit, so it must be present): no password,
    // implicit, client credentials or device grants.
    const grants = as['grant_types_supported'] as string[];
    expect(grants).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token']));
    for (const banned of [
      'password',
      'implicit',
      'client_credentials',
      'urn:ietf:params:oauth:grant-type:device_code',
      'urn:ietf:params:oauth:grant-type:jwt-bearer',
    ]) {
      expect(grants, `grant_types_supported lists ${banned}`).not.toContain(banned);
    }
    // PKCE: S256 only by default (OAuth 2.1 §4.1.1).
    expect(as['code_challenge_methods_supported']).toEqual(['S256']);
    // RFC 9207: iss in every authorization response.
    expect(as['authorization_response_iss_parameter_supported']).toBe(true);
    // Client authentication: what the configuration allows (default), never "none" as a signing algorithm.
    expect(as['token_endpoint_auth_methods_supported']).toEqual([
      'none',
      'client_secret_basic',
      'private_key_jwt',
    ]);
    const signingAlgs = as['token_endpoint_auth_signing_alg_values_supported'] as string[];
    expect(signingAlgs.length).toBeGreaterThan(0);
    expect(signingAlgs).not.toContain('none');
    for (const alg of signingAlgs) expect(alg, 'a symmetric client assertion algorithm').not.toMatch(/^HS/);
    // No symmetric or unsigned algorithm anywhere.
    for (const [key, value] of Object.entries(as)) {
      if (!key.endsWith('_alg_values_supported')) continue;
      expect(value as string[], key).not.toContain('none');
    }
    expectNoEmptyArrays(as, 'authorization server metadata');
  });

  it('serves the same document as OpenID Connect Discovery, with the fields OIDC requires', async () => {
    const res = await getJson(fx, OIDC_PATH);
    expect(res.type).toMatch(/^application\/json\b/);
    expect(oidc).toEqual(as);
    expect(oidc['issuer']).toBe(fx.origin);
    // OpenID Connect Discovery 1.0 §3 REQUIRED fields.
    for (const field of [
      'issuer',
      'authorization_endpoint',
      'jwks_uri',
      'response_types_supported',
      'subject_types_supported',
      'id_token_signing_alg_values_supported',
    ]) {
      expect(oidc[field], `${field} is REQUIRED`).toBeDefined();
    }
    expect(oidc['id_token_signing_alg_values_supported']).not.toContain('none');
  });

  it('serves RFC 9728 protected resource metadata at both URLs, agreeing with the issuer byte-for-byte', async () => {
    const documents: Json[] = [];
    // /.well-known/oauth-protected-resource/mcp is the RFC 9728 §3.1 URL of the resource https://host/mcp; the root
    // one is the MCP specification's fallback for clients that drop the path (it describes the same resource).
    for (const path of [PRM_MCP, PRM_ROOT]) {
      const res = await getJson(fx, path);
      expect(res.status, path).toBe(200);
      expect(res.type, path).toMatch(/^application\/json\b/);
      const prm = res.body;
      // resource REQUIRED, identical to the canonical MCP URI (§3.3).
      expect(prm['resource'], path).toBe(fx.resource);
      expect(prm['resource'], path).toBe(`${fx.origin}/mcp`);
      expectHttpsUrl(prm['resource'], 'resource');
      // authorization_servers: exactly this server's issuer, byte-for-byte.
      expect(prm['authorization_servers'], path).toEqual([as['issuer']]);
      // Tokens only in the Authorization header (no query or body tokens).
      expect(prm['bearer_methods_supported'], path).toEqual(['header']);
      // scopes_supported RECOMMENDED: the resource's scopes, all known to the authorization server.
      expect(prm['scopes_supported'], path).toEqual(['pa.read', 'pa.write']);
      for (const scope of prm['scopes_supported'] as string[])
        expect(as['scopes_supported']).toContain(scope);
      // resource_name RECOMMENDED.
      expect(typeof prm['resource_name'], path).toBe('string');
      // DPoP algorithms as the authorization server's, never none.
      expect(new Set(prm['dpop_signing_alg_values_supported'] as string[]), path).toEqual(
        new Set(as['dpop_signing_alg_values_supported'] as string[]),
      );
      expect(prm['dpop_signing_alg_values_supported'], path).not.toContain('none');
      // No certificate-bound tokens without a client CA.
      expect(prm['tls_client_certificate_bound_access_tokens'], path).toBeUndefined();
      expectNoEmptyArrays(prm, path);
      documents.push(prm);
    }
    expect(documents[1]).toEqual(documents[0]);
    // Each authorization server named there publishes metadata whose issuer is that exact string (RFC 8414 §3.3).
    for (const server of (documents[0] as Json)['authorization_servers'] as string[]) {
      const url = new URL(server);
      const meta = (await (
        await fx.fetch(`${url.origin}${AS_PATH}${url.pathname === '/' ? '' : url.pathname}`)
      ).json()) as Json;
      expect(meta['issuer']).toBe(server);
    }
  });

  it('publishes only public EC signing keys, and tokens verify with them', async () => {
    const res = await fx.fetch(`${fx.origin}/oauth/jwks`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/(jwk-set\+)?json\b/);
    const jwks = (await res.json()) as { keys: JWK[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    const kids = new Set<string>();
    for (const key of jwks.keys) {
      expect(key.kty).toBe('EC');
      expect(key.crv).toBe('P-256');
      expect(key.alg).toBe('ES256');
      expect(key.use).toBe('sig');
      expect(typeof key.kid).toBe('string');
      expect(typeof key.x).toBe('string');
      expect(typeof key.y).toBe('string');
      // No private or symmetric material.
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) {
        expect(key, `the JWKS key ${key.kid} carries "${secret}"`).not.toHaveProperty(secret);
      }
      expect(createPublicKey({ key: key as NodeJsonWebKey, format: 'jwk' }).type).toBe('public');
      kids.add(key.kid as string);
    }
    expect(kids.size, 'duplicate kid').toBe(jwks.keys.length);

    // A real access token: signed by a published key, issuer and audience as the metadata says.
    const { verifier, challenge } = await pkcePair();
    const tk = await codeFlow(fx, { verifier, challenge, method: 'S256' });
    expect(tk.status, JSON.stringify(tk.body)).toBe(200);
    const at = String(tk.body['access_token']);
    expect(kids.has(String(decodeProtectedHeader(at).kid))).toBe(true);
    const prm = (await getJson(fx, PRM_MCP)).body;
    const { payload, protectedHeader } = await jwtVerify(at, createLocalJWKSet(jwks as JSONWebKeySet), {
      issuer: String(as['issuer']),
      audience: String(prm['resource']),
      algorithms: ['ES256'],
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload.iss).toBe(fx.origin);
    expect(payload.aud).toBe(fx.resource);
    expect(decodeJwt(at)['scope']).toBe('pa.read pa.write');
  });

  it('points an unauthenticated client at the protected resource metadata URL', async () => {
    const res = await fx.fetch(fx.resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    const url = /resource_metadata="([^"]*)"/.exec(challenge)?.[1];
    expect(url).toBe(`${fx.origin}${PRM_MCP}`);
    // RFC 9728 §3.1: inserting the well-known path into the resource URI gives exactly this URL.
    const resource = new URL(fx.resource);
    expect(url).toBe(`${resource.origin}/.well-known/oauth-protected-resource${resource.pathname}`);
    const prm = (await (await fx.fetch(url as string)).json()) as Json;
    expect(prm['resource']).toBe(fx.resource);
    // The scopes named in the challenge are the ones the metadata lists.
    const scope = /scope="([^"]*)"/.exec(challenge)?.[1];
    expect(scope?.split(' ')).toEqual(prm['scopes_supported']);
  });

  it('refuses a plain PKCE challenge, as the metadata says', async () => {
    const verifier = (await pkcePair()).verifier;
    const tk = await codeFlow(fx, { verifier, challenge: verifier, method: 'plain' });
    expect(tk.status, 'a plain challenge got a code').toBe(0);
    // The refusal is invalid_request, as a redirect or on the interstitial page.
    expect(String(tk.location)).toMatch(/error=invalid_request|<code>invalid_request<\/code>/);
  });
});

describe("discovery metadata with authentication.pkce_methods ['S256', 'plain'] (PGlite)", () => {
  let fx: OAuthFixture;

  beforeAll(async () => {
    fx = await startOAuthFixture({ config: { authentication: { pkce_methods: ['S256', 'plain'] } } });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('lists plain in code_challenge_methods_supported, and a plain challenge completes the flow', async () => {
    for (const path of [AS_PATH, OIDC_PATH]) {
      const meta = (await getJson(fx, path)).body;
      expect(meta['code_challenge_methods_supported'], path).toEqual(['S256', 'plain']);
      expect(meta['issuer'], path).toBe(fx.origin);
    }
    const verifier = (await pkcePair()).verifier;
    const tk = await codeFlow(fx, { verifier, challenge: verifier, method: 'plain' });
    expect(tk.status, `${JSON.stringify(tk.body)} ${tk.location}`).toBe(200);
    const at = String(tk.body['access_token']);
    expect(decodeJwt(at).aud).toBe(fx.resource);
    const mcp = await fx.fetch(fx.resource, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${at}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      }),
    });
    expect(mcp.status, await mcp.clone().text()).toBe(200);
    // The plain verifier is still checked: another one is refused.
    const other = await pkcePair();
    const wrong = await codeFlow(fx, {
      verifier: other.challenge,
      challenge: other.verifier,
      method: 'plain',
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body['error']).toBe('invalid_grant');
    // S256 keeps working.
    const s256 = await pkcePair();
    expect((await codeFlow(fx, { ...s256, method: 'S256' })).status).toBe(200);
  });
});

describe('discovery metadata with server.public_url (a replica behind a load balancer, PGlite)', () => {
  const PUBLIC = 'https://pa.example.test';
  let fx: OAuthFixture;

  beforeAll(async () => {
    fx = await startOAuthFixture({ config: { server: { public_url: PUBLIC } } });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('names the public URL in every endpoint, whichever address and Host the request reached', async () => {
    for (const path of [AS_PATH, OIDC_PATH]) {
      const meta = (await getJson(fx, path)).body;
      expect(meta['issuer'], path).toBe(PUBLIC);
      const urls = Object.entries(meta).filter(([k, v]) => k.endsWith('_endpoint') || k === 'jwks_uri' || !v);
      expect(urls.length, path).toBeGreaterThan(4);
      for (const [field, value] of urls) {
        if (typeof value !== 'string') continue;
        expect(value.startsWith(`${PUBLIC}/`), `${path} ${field}: ${value}`).toBe(true);
      }
    }
    const reg = await fx.register({
      redirect_uris: [REDIRECT],
      client_name: 'Public URL test',
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status).toBe(201);
    expect(String(reg.body['registration_client_uri'])).toMatch(new RegExp(`^${PUBLIC}/oauth/register/`));
  });
});
