/**
 * The whole authorization-code flow against the real server: registration, sign-in and consent through the
 * pages, the token exchange with PKCE, a JWT for the MCP resource, /mcp accepting it, refresh rotation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { pkcePair, startOAuthFixture, type OAuthFixture, type TestUser } from './oauth-fixture.js';

describe('authorization code flow (PGlite)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  beforeAll(async () => {
    fx = await startOAuthFixture();
    user = await fx.addUser();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('registers, signs in, consents, exchanges the code and calls /mcp', async () => {
    const reg = await fx.register({
      redirect_uris: ['http://127.0.0.1/cb'],
      client_name: 'Flow test',
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const clientId = String(reg.body['client_id']);
    const { verifier, challenge } = await pkcePair();
    const az = new URL(`${fx.origin}/oauth/authorize`);
    az.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: 'http://127.0.0.1:51004/cb',
      scope: 'pa.read pa.write',
      state: 'S1',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();
    const browser = fx.browser();
    const done = await browser.authorize(az.href, fx.origin, user);
    expect(
      String(done.location),
      `${done.res.status} ${JSON.stringify(done.res.headers)} ${done.res.text.replace(/<style>[\s\S]*<\/style>/, '').slice(0, 1500)}`,
    ).toMatch(/^http:\/\/127\.0\.0\.1:51004\/cb\?/);
    const back = new URL(done.location as string);
    expect(back.searchParams.get('state')).toBe('S1');
    expect(back.searchParams.get('iss')).toBe(fx.issuer);
    const code = back.searchParams.get('code') as string;
    const tk = await fx.fetch(`${fx.origin}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: 'http://127.0.0.1:51004/cb',
        code_verifier: verifier,
        client_id: clientId,
      }).toString(),
    });
    const tokens = (await tk.json()) as Record<string, string>;
    expect(tk.status, JSON.stringify(tokens)).toBe(200);
    const at = decodeJwt(tokens['access_token'] as string);
    expect(at.aud).toBe(fx.resource);
    expect(at.sub).toBe(user.id);
    expect(tokens['refresh_token']).toBeTruthy();
    const mcp = await fx.fetch(fx.resource, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens['access_token']}`,
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

    // Introspection and revocation of the JWT access token itself (the library alone refuses JWTs).
    const form = (fields: Record<string, string>) => ({
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
    const intro = await fx.fetch(
      `${fx.origin}/oauth/introspect`,
      form({ token: tokens['access_token'] as string, client_id: clientId }),
    );
    const introBody = (await intro.json()) as Record<string, unknown>;
    expect(intro.status).toBe(200);
    expect(introBody).toMatchObject({ active: true, sub: user.id, client_id: clientId, aud: fx.resource });
    const otherClient = await fx.register({
      redirect_uris: ['http://127.0.0.1/other'],
      token_endpoint_auth_method: 'none',
    });
    const foreign = await fx.fetch(
      `${fx.origin}/oauth/introspect`,
      form({ token: tokens['access_token'] as string, client_id: String(otherClient.body['client_id']) }),
    );
    expect(await foreign.json()).toEqual({ active: false });
    const rv = await fx.fetch(
      `${fx.origin}/oauth/revoke`,
      form({ token: tokens['access_token'] as string, client_id: clientId }),
    );
    expect(rv.status).toBe(200);
    const after = await fx.fetch(fx.resource, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens['access_token']}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const refreshed = await fx.fetch(
      `${fx.origin}/oauth/token`,
      form({
        grant_type: 'refresh_token',
        refresh_token: tokens['refresh_token'] as string,
        client_id: clientId,
      }),
    );
    expect(refreshed.status).toBe(400);
    expect(((await refreshed.json()) as { error: string }).error).toBe('invalid_grant');
    const introAfter = await fx.fetch(
      `${fx.origin}/oauth/introspect`,
      form({ token: tokens['access_token'] as string, client_id: clientId }),
    );
    expect(await introAfter.json()).toEqual({ active: false });

    // The fixture saw the secrets of this flow (checked against the server log when it closes) and would
    // recognise each in a log line.
    expect(fx.secrets.size).toBeGreaterThanOrEqual(5);
    for (const secret of [user.password, code, tokens['access_token'], tokens['refresh_token'], verifier]) {
      expect(fx.secrets.leaks(`{"msg":"x","v":"${String(secret)}"}`)).toHaveLength(1);
    }
    expect(fx.secrets.leaks(fx.logs())).toEqual([]);
  });
});
