/**
 * The per-user-and-client limit on /mcp against the real server (PGlite, limits in memory), configured through
 * MCP_RATE_LIMIT_MCP: the 6th request in a minute of a limit of 5 gets 429 with Retry-After and a JSON-RPC error;
 * the same user through another client, and another user through the same client, are unaffected.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  pkcePair,
  startOAuthFixture,
  type OAuthFixture,
  type TestUser,
  mcpInitialize,
} from '../auth/oauth-fixture.js';

const REDIRECT = 'http://127.0.0.1/cb';

async function publicClient(fx: OAuthFixture, name: string): Promise<string> {
  const reg = await fx.register({
    redirect_uris: [REDIRECT],
    client_name: name,
    token_endpoint_auth_method: 'none',
  });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  return String(reg.body['client_id']);
}

/** An access token of `user` for `clientId`, through the real sign-in and consent pages. */
async function accessToken(fx: OAuthFixture, user: TestUser, clientId: string): Promise<string> {
  const { verifier, challenge } = await pkcePair();
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
  }).toString();
  const done = await fx.browser().authorize(url.href, fx.origin, user);
  const code = new URL(String(done.location)).searchParams.get('code');
  expect(code, String(done.location)).toBeTruthy();
  const res = await fx.fetch(`${fx.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: code as string,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: clientId,
    }).toString(),
  });
  const body = (await res.json()) as Record<string, string>;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return String(body['access_token']);
}

const mcpPost = mcpInitialize;

describe('/mcp requests per user and client (PGlite)', () => {
  let fx: OAuthFixture;
  let alice: TestUser;
  let bob: TestUser;
  beforeAll(async () => {
    fx = await startOAuthFixture({ env: { MCP_RATE_LIMIT_MCP: '5' } });
    alice = await fx.addUser();
    bob = await fx.addUser();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('the 6th request in a minute gets 429 with Retry-After and a JSON-RPC error; others are unaffected', async () => {
    const client1 = await publicClient(fx, 'Limit one');
    const client2 = await publicClient(fx, 'Limit two');
    const aliceOne = await accessToken(fx, alice, client1);
    const aliceTwo = await accessToken(fx, alice, client2);
    const bobOne = await accessToken(fx, bob, client1);
    for (let i = 0; i < 5; i++) {
      const ok = await mcpPost(fx, aliceOne);
      expect(ok.status, `request ${i + 1}: ${ok.text}`).toBe(200);
    }
    const refused = await mcpPost(fx, aliceOne);
    expect(refused.status, refused.text).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(refused.headers.get('www-authenticate')).toBeNull();
    const body = JSON.parse(refused.text) as { jsonrpc: string; error: { code: number; message: string } };
    expect(body.jsonrpc).toBe('2.0');
    expect(body.error.code).toBe(-32000);
    expect(body.error.message).toMatch(/^Too Many Requests: retry after \d+ seconds$/);
    // Still refused: the budget is per minute, not per burst.
    expect((await mcpPost(fx, aliceOne)).status).toBe(429);
    // The same user through another client, and another user through the same client, have their own budgets.
    expect((await mcpPost(fx, aliceTwo)).status).toBe(200);
    expect((await mcpPost(fx, bobOne)).status).toBe(200);
    // A bad token is still 401 (authentication first; nothing is counted for it).
    expect((await mcpPost(fx, 'not-a-token')).status).toBe(401);
  }, 60_000);
});
