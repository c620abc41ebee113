/**
 * Authorization-server features beyond the basic flow, against the real server: pushed authorization requests,
 * RFC 7592 client management, consent remembered per client, denial, self-signup, DPoP required for public
 * clients, a disabled user's tokens, and signing-key rotation without breaking issued tokens.
 */
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/auth/keys.js';
import { hashClientSecret } from '../../src/auth/client-rules.js';
import {
  pkcePair,
  startOAuthFixture,
  TEST_SECRET,
  type OAuthFixture,
  type TestUser,
  mcpInitialize,
} from './oauth-fixture.js';

const REDIRECT = 'http://127.0.0.1/cb';

function form(fields: Record<string, string>, headers: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  };
}

async function mcpStatus(fx: OAuthFixture, accessToken: string): Promise<number> {
  return (await mcpInitialize(fx, accessToken)).status;
}

function authorizeUrl(
  fx: OAuthFixture,
  clientId: string,
  challenge: string,
  extra: Record<string, string> = {},
) {
  const url = new URL(`${fx.origin}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'pa.read pa.write',
    state: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: fx.resource,
    ...extra,
  }).toString();
  return url.href;
}

async function exchange(fx: OAuthFixture, clientId: string, location: string, verifier: string) {
  const code = new URL(location).searchParams.get('code');
  expect(code, location).toBeTruthy();
  const res = await fx.fetch(
    `${fx.origin}/oauth/token`,
    form({
      grant_type: 'authorization_code',
      code: code as string,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: clientId,
    }),
  );
  const body = (await res.json()) as Record<string, string>;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

async function publicClient(fx: OAuthFixture, name = 'Feature test'): Promise<string> {
  const reg = await fx.register({
    redirect_uris: [REDIRECT],
    client_name: name,
    token_endpoint_auth_method: 'none',
  });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  return String(reg.body['client_id']);
}

describe('authorization server features (PGlite)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  beforeAll(async () => {
    fx = await startOAuthFixture({
      config: { authentication: { allow_signup: true, key_check_interval_s: 1 } },
    });
    user = await fx.addUser();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('pushed authorization requests (RFC 9126): the request_uri stands for the pushed parameters', async () => {
    const clientId = await publicClient(fx);
    const { verifier, challenge } = await pkcePair();
    const par = await fx.fetch(
      `${fx.origin}/oauth/par`,
      form({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        scope: 'pa.read',
        state: 'par-state',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: fx.resource,
      }),
    );
    const pushed = (await par.json()) as { request_uri: string; expires_in: number };
    expect(par.status, JSON.stringify(pushed)).toBe(201);
    expect(pushed.request_uri).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    const url = `${fx.origin}/oauth/authorize?client_id=${encodeURIComponent(clientId)}&request_uri=${encodeURIComponent(pushed.request_uri)}`;
    const done = await fx.browser().authorize(url, fx.origin, user);
    expect(new URL(String(done.location)).searchParams.get('state')).toBe('par-state');
    const tokens = await exchange(fx, clientId, String(done.location), verifier);
    expect(decodeJwt(tokens['access_token'] as string)['scope']).toBe('pa.read');

    // A pushed request without scope gets both resource scopes, as one in the query does.
    const second = await pkcePair();
    const noScope = await fx.fetch(
      `${fx.origin}/oauth/par`,
      form({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        state: 'par-2',
        code_challenge: second.challenge,
        code_challenge_method: 'S256',
        resource: fx.resource,
      }),
    );
    const pushed2 = (await noScope.json()) as { request_uri: string };
    expect(noScope.status, JSON.stringify(pushed2)).toBe(201);
    const url2 = `${fx.origin}/oauth/authorize?client_id=${encodeURIComponent(clientId)}&request_uri=${encodeURIComponent(pushed2.request_uri)}`;
    const done2 = await fx.browser().authorize(url2, fx.origin, user);
    const tokens2 = await exchange(fx, clientId, String(done2.location), second.verifier);
    expect(decodeJwt(tokens2['access_token'] as string)['scope']).toBe('pa.read pa.write');
  });

  it('RFC 7592: the registration can be read, updated and deleted with its registration access token', async () => {
    const reg = await fx.register({
      redirect_uris: [REDIRECT],
      client_name: 'Managed',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(reg.status).toBe(201);
    const uri = String(reg.body['registration_client_uri']);
    const rat = String(reg.body['registration_access_token']);
    expect(reg.body['client_secret']).toEqual(expect.any(String));
    expect(uri.startsWith(`${fx.origin}/oauth/register/`)).toBe(true);
    const read = await fx.fetch(uri, { headers: { authorization: `Bearer ${rat}` } });
    const readBody = (await read.json()) as Record<string, unknown>;
    expect(read.status).toBe(200);
    expect(readBody['client_name']).toBe('Managed');
    // Stored only as a digest: never handed back.
    expect(JSON.stringify(readBody)).not.toContain(String(reg.body['client_secret']));
    expect(JSON.stringify(readBody)).not.toContain('sha256:');
    // An update may repeat the secret (RFC 7592 §2.2); one that is not the client's is refused, the digest too.
    for (const wrong of ['not-the-secret', hashClientSecret(String(reg.body['client_secret']))]) {
      const refused = await fx.fetch(uri, {
        method: 'PUT',
        headers: { authorization: `Bearer ${rat}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: reg.body['client_id'],
          client_secret: wrong,
          redirect_uris: [REDIRECT],
          client_name: 'Wrong',
          token_endpoint_auth_method: 'client_secret_basic',
        }),
      });
      const refusedBody = (await refused.json()) as Record<string, unknown>;
      expect(refused.status, wrong).toBe(400);
      expect(refusedBody['error_description']).toMatch(/client_secret does not match/);
    }
    // An update (PUT, the full metadata) answers with the registration too: again without the stored digest.
    const put = await fx.fetch(uri, {
      method: 'PUT',
      headers: { authorization: `Bearer ${rat}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: reg.body['client_id'],
        client_secret: reg.body['client_secret'],
        redirect_uris: [REDIRECT],
        client_name: 'Renamed',
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    const putBody = (await put.json()) as Record<string, unknown>;
    expect(put.status, JSON.stringify(putBody)).toBe(200);
    expect(putBody['client_name']).toBe('Renamed');
    expect(JSON.stringify(putBody)).not.toContain('sha256:');
    const reread = await fx.fetch(uri, {
      headers: { authorization: `Bearer ${String(putBody['registration_access_token'] ?? rat)}` },
    });
    expect(((await reread.json()) as Record<string, unknown>)['client_name']).toBe('Renamed');
    const noToken = await fx.fetch(uri);
    expect(noToken.status).toBe(401);
    await noToken.text();
    const del = await fx.fetch(uri, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${String(putBody['registration_access_token'] ?? rat)}` },
    });
    expect(del.status).toBe(204);
    const gone = await fx.fetch(uri, {
      headers: { authorization: `Bearer ${String(putBody['registration_access_token'] ?? rat)}` },
    });
    expect(gone.status).toBe(401);
    await gone.text();
  });

  it('a browser-based client may register from its own page: CORS without credentials', async () => {
    const pre = await fx.fetch(`${fx.origin}/oauth/register`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:6274',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    const res = await fx.fetch(`${fx.origin}/oauth/register`, {
      method: 'POST',
      headers: { origin: 'http://localhost:6274', 'content-type': 'application/json' },
      body: JSON.stringify({
        redirect_uris: ['http://localhost:6274/oauth/callback'],
        token_endpoint_auth_method: 'none',
      }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    await res.text();
  });

  it('consent is remembered per client; another client asks again; "Deny" returns access_denied', async () => {
    // A web client: native apps (loopback or private-use redirects) are asked every time, since any program
    // on the machine could claim their identity (RFC 8252 §8.6) — checked below.
    const web = await fx.register({
      redirect_uris: ['https://app.example/cb'],
      client_name: 'Remembered app',
      token_endpoint_auth_method: 'none',
    });
    const a = String(web.body['client_id']);
    const { challenge } = await pkcePair();
    const webUrl = authorizeUrl(fx, a, challenge, { redirect_uri: 'https://app.example/cb' });
    const first = await fx.browser().authorize(webUrl, fx.origin, user);
    expect(first.consentPage).toContain('Remembered app');
    expect(String(first.location)).toContain('code=');
    // A new browser (new sign-in): the grant for this client is found again, no consent page.
    const again = await fx.browser().authorize(webUrl, fx.origin, user);
    expect(again.consentPage).toBeUndefined();
    expect(String(again.location)).toMatch(/^https:\/\/app\.example\/cb\?code=/);
    const native = await publicClient(fx, 'Native app');
    await fx.browser().authorize(authorizeUrl(fx, native, challenge), fx.origin, user);
    const nativeAgain = await fx.browser().authorize(authorizeUrl(fx, native, challenge), fx.origin, user);
    expect(nativeAgain.consentPage).toContain('Native app');
    const b = await publicClient(fx, 'Other app');
    const denied = await fx.browser().authorize(authorizeUrl(fx, b, challenge), fx.origin, user, 'deny');
    expect(denied.consentPage).toContain('Other app');
    const back = new URL(String(denied.location));
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('iss')).toBe(fx.issuer);
    expect(back.searchParams.get('code')).toBeNull();
  });

  it('self-signup (allow_signup): a visitor creates an account on the sign-in page and is signed in', async () => {
    const clientId = await publicClient(fx);
    const { verifier, challenge } = await pkcePair();
    const browser = fx.browser();
    const { res, url } = await browser.follow(authorizeUrl(fx, clientId, challenge), fx.origin);
    expect(res.text).toContain('/signup');
    const signupUrl = new URL(/href="([^"]*\/signup)"/.exec(res.text)?.[1] ?? '', url).href;
    const page = await browser.request(signupUrl);
    expect(page.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    const username = `signup-${randomBytes(4).toString('hex')}`;
    const posted = await browser.request(signupUrl, {
      form: { csrf, username, password: 'a long enough password' },
      headers: { origin: fx.origin },
    });
    expect(posted.status).toBe(303);
    const next = await browser.authorize(new URL(String(posted.headers.location), url).href, fx.origin, null);
    const tokens = await exchange(fx, clientId, String(next.location), verifier);
    const created = await fx.accounts.findByUsername(username);
    expect(decodeJwt(tokens['access_token'] as string).sub).toBe(created?.id);
  });

  it("a disabled user's tokens stop working; signing in is refused with the generic message", async () => {
    const victim = await fx.addUser();
    const clientId = await publicClient(fx);
    const { verifier, challenge } = await pkcePair();
    const done = await fx.browser().authorize(authorizeUrl(fx, clientId, challenge), fx.origin, victim);
    const tokens = await exchange(fx, clientId, String(done.location), verifier);
    expect(await mcpStatus(fx, tokens['access_token'] as string)).toBe(200);
    await fx.accounts.setDisabled(victim.username, true);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await mcpStatus(fx, tokens['access_token'] as string)).toBe(401);
    const retry = await fx.browser().authorize(authorizeUrl(fx, clientId, challenge), fx.origin, victim);
    expect(retry.location).toBeUndefined();
    expect(retry.res.status).toBe(401);
    expect(retry.res.text).toContain('Wrong username or password');
  });

  it('key rotation: tokens signed by the old key keep working; new tokens use the new key', async () => {
    const clientId = await publicClient(fx);
    const { verifier, challenge } = await pkcePair();
    const before = await exchange(
      fx,
      clientId,
      String((await fx.browser().authorize(authorizeUrl(fx, clientId, challenge), fx.origin, user)).location),
      verifier,
    );
    const oldKid = decodeProtectedHeader(before['access_token'] as string).kid;
    const { kid } = await new KeyStore(fx.store, TEST_SECRET).rotate(900);
    expect(kid).not.toBe(oldKid);
    // The server checks the key set every second here (key_check_interval_s).
    await new Promise((r) => setTimeout(r, 2500));
    expect(await mcpStatus(fx, before['access_token'] as string)).toBe(200);
    const jwks = (await (await fx.fetch(`${fx.origin}/oauth/jwks`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid, oldKid]));
    const refreshed = await fx.fetch(
      `${fx.origin}/oauth/token`,
      form({
        grant_type: 'refresh_token',
        refresh_token: before['refresh_token'] as string,
        client_id: clientId,
      }),
    );
    const after = (await refreshed.json()) as Record<string, string>;
    expect(refreshed.status, JSON.stringify(after)).toBe(200);
    expect(decodeProtectedHeader(after['access_token'] as string).kid).toBe(kid);
    expect(await mcpStatus(fx, after['access_token'] as string)).toBe(200);
  });
});

describe('DPoP required for public clients (PGlite)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  beforeAll(async () => {
    fx = await startOAuthFixture({ config: { authentication: { require_dpop: true } } });
    user = await fx.addUser();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('a public client gets no token without a DPoP proof', async () => {
    const clientId = await publicClient(fx);
    const { verifier, challenge } = await pkcePair();
    const done = await fx.browser().authorize(authorizeUrl(fx, clientId, challenge), fx.origin, user);
    const code = new URL(String(done.location)).searchParams.get('code') as string;
    const res = await fx.fetch(
      `${fx.origin}/oauth/token`,
      form({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT,
        code_verifier: verifier,
        client_id: clientId,
      }),
    );
    const body = (await res.json()) as { error: string };
    expect(res.status).toBe(400);
    expect(body.error).toMatch(/invalid_(request|dpop_proof|grant)/);
    expect(createHash('sha256').update(verifier).digest('base64url')).toBe(challenge);
  });
});
