/**
 * Several replicas: two `mcp-pa serve` processes (A and B) on one PostgreSQL database and one Redis key prefix,
 * behind a TCP (TLS-passthrough) load balancer whose address is both replicas' public URL — so one issuer and one
 * token audience. Whatever the authorization server made on one replica is known to the other:
 *
 * 1. a token from a flow run entirely on A (registration, sign-in, consent, code exchange) works at B, directly and
 *    through the balancer;
 * 2. a revocation on A (RFC 7009 with the refresh token or the access token, or Revoke on the connected-apps page)
 *    stops the token at B within a second — measured with B polled every 50 ms, its grant cache kept warm;
 * 3. a client registered on A is read at B (RFC 7592); its authorization starts on A and its code is redeemed at B;
 *    the consent given on A is remembered on B (a web client is not asked again — a native app is, every time);
 *    the browser's sign-in on A is its sign-in on B; a refresh token from A rotates at B, and presenting the old one
 *    at A revokes the grant everywhere; a code redeemed at B cannot be redeemed again at A;
 * 4. rate limits are one budget: failed sign-ins alternating between A and B lock the account on both after the
 *    10th overall (per-process counters would allow 10 on each);
 * and what must be the same on every replica: a replica with another server secret refuses to start on the shared
 * database, and one without the shared public URL refuses the others' tokens (another audience).
 *
 * The measured revocation times are printed ("[replicas] …"). Needs MCP_PA_TEST_DATABASE_URL and
 * MCP_PA_TEST_REDIS_URL.
 */
import { performance } from 'node:perf_hooks';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Browser, parseForms } from '../auth/oauth-fixture.js';
import { keysUnder, testRedisUrl } from '../support/redis.js';
import { headlessTokens, refreshTokens, startServerProcess } from '../support/server-process.js';
import {
  authorize,
  exchangeCode,
  INITIALIZE,
  mcpPost,
  NATIVE_REDIRECT,
  PING,
  pollUntilRefused,
  register,
  revoke,
  revokeOnAppsPage,
  tokenRequest,
  watched,
  WEB_REDIRECT,
  type Tokens,
} from './flows.js';
import { describeWithReplicas, startReplicas, type Replicas } from './replicas.js';

/** Revocation on one replica reaches the other within this (the grant cache is 500 ms; scheduling noise on 2 cores). */
const PROPAGATION_BOUND_MS = 1500;

describeWithReplicas(
  'two replicas behind a load balancer share the authorization server (PostgreSQL + Redis)',
  () => {
    let r: Replicas;
    const figures: string[] = [];
    const alice = (): { username: string; password: string } =>
      r.users.get('alice') as { username: string; password: string };

    beforeAll(async () => {
      r = await startReplicas({ label: 'oauth-replicas', users: ['alice', 'carol'] });
    }, 120_000);
    // A test that failed while the balancer was pinned must not pin the next one.
    afterEach(() => r?.lb.pin(null));
    afterAll(async () => {
      if (figures.length > 0) console.info(`[replicas] ${figures.join('; ')}`);
      await r?.close();
    }, 60_000);

    /** A native client's tokens from a flow run entirely on A (the balancer pinned to A). */
    async function tokensFromA(clientName: string): Promise<{ clientId: string } & Tokens> {
      r.lb.pin('A');
      r.lb.resetLog();
      try {
        const t = await headlessTokens({
          origin: r.issuer,
          resource: r.resource,
          ca: r.ca,
          user: alice(),
          clientName,
        });
        expect(r.lb.log().length).toBeGreaterThan(0);
        expect(new Set(r.lb.log()), 'every request of the flow went to A').toEqual(new Set(['A']));
        watched(r.secrets, t);
        return t;
      } finally {
        r.lb.pin(null);
      }
    }

    /** Opens an MCP session on `origin` (a replica's own address) with the token; returns its id. */
    async function sessionAt(origin: string, token: string): Promise<string> {
      const init = await mcpPost(r.fetch, `${origin}/mcp`, token, INITIALIZE);
      expect(init.status, init.text).toBe(200);
      expect(init.sessionId).toBeTruthy();
      return init.sessionId as string;
    }

    /**
     * Runs `revokeOnA` while B is polled every 50 ms with a ping in a session B holds; returns how long after the
     * revocation's answer B first refused the token (and checks the refusal).
     */
    async function propagation(token: string, revokeOnA: () => Promise<void>): Promise<number> {
      const sid = await sessionAt(r.b.origin, token);
      const poll = pollUntilRefused(() => mcpPost(r.fetch, `${r.b.origin}/mcp`, token, PING, sid));
      // (Should the revocation itself fail, the poll's own failure later is not an unhandled rejection.)
      poll.done.catch(() => undefined);
      // B answers a few pings first: its grant cache holds "active" when the revocation lands.
      await new Promise((res) => setTimeout(res, 300));
      await revokeOnA();
      const revokedAt = performance.now();
      const refused = await poll.done;
      expect(refused.polls, 'B accepted the token before the revocation').toBeGreaterThan(1);
      expect(refused.answer.wwwAuthenticate).toContain('error="invalid_token"');
      return Math.max(0, Math.round(refused.at - revokedAt));
    }

    it('starts both replicas together on one database: one signing key, one issuer, distinct processes', async () => {
      expect(r.a.port).not.toBe(r.b.port);
      expect(r.a.pid()).not.toBe(r.b.pid());
      const keys = await r.db.query<{ kid: string }>('SELECT kid FROM oauth_keys WHERE retire_at IS NULL');
      expect(keys, 'replicas starting at once made one active signing key').toHaveLength(1);
      // Both replicas name the same issuer and resource, whichever address asked. (The endpoint URLs in the
      // authorization-server metadata follow the request's Host: through the balancer they are the public ones.)
      for (const origin of [r.a.origin, r.b.origin]) {
        const res = await r.fetch(`${origin}/.well-known/oauth-authorization-server`);
        expect(((await res.json()) as Record<string, unknown>)['issuer']).toBe(r.issuer);
        const prm = await r.fetch(`${origin}/.well-known/oauth-protected-resource/mcp`);
        const resource = (await prm.json()) as Record<string, unknown>;
        expect(resource['resource']).toBe(r.resource);
        expect(resource['authorization_servers']).toEqual([r.issuer]);
      }
      r.lb.resetLog();
      for (let i = 0; i < 2; i++) {
        const res = await r.fetch(`${r.issuer}/.well-known/oauth-authorization-server`);
        const meta = (await res.json()) as Record<string, unknown>;
        expect(meta['issuer']).toBe(r.issuer);
        expect(meta['token_endpoint']).toBe(`${r.issuer}/oauth/token`);
        expect(meta['registration_endpoint']).toBe(`${r.issuer}/oauth/register`);
      }
      expect([...r.lb.log()].sort()).toEqual(['A', 'B']);
      const jwks = await Promise.all(
        [r.a.origin, r.b.origin].map(
          async (o) => (await (await r.fetch(`${o}/oauth/jwks`)).json()) as unknown,
        ),
      );
      expect(jwks[0]).toEqual(jwks[1]);
    });

    it('a token issued by A (registration, authorization and code exchange all on A) works at B', async () => {
      const t = await tokensFromA('Replica A-only client');
      const claims = decodeJwt(t.accessToken);
      expect(claims.iss).toBe(r.issuer);
      expect(claims.aud).toBe(r.resource);

      // B directly, on its own address.
      const direct = await mcpPost(r.fetch, `${r.b.origin}/mcp`, t.accessToken, INITIALIZE);
      expect(direct.status, direct.text).toBe(200);
      expect(direct.text).toContain('"serverInfo"');
      // Through the balancer, pinned to B, then round-robin (one connection per request: A, then B).
      r.lb.pin('B');
      r.lb.resetLog();
      const pinned = await mcpPost(r.fetch, r.resource, t.accessToken, INITIALIZE);
      expect(pinned.status, pinned.text).toBe(200);
      expect(r.lb.log()).toEqual(['B']);
      r.lb.pin(null);
      r.lb.resetLog();
      for (let i = 0; i < 2; i++) {
        const res = await mcpPost(r.fetch, r.resource, t.accessToken, INITIALIZE);
        expect(res.status, res.text).toBe(200);
      }
      expect([...r.lb.log()].sort()).toEqual(['A', 'B']);
      // Introspection at B knows A's token too.
      const intro = await r.fetch(`${r.b.origin}/oauth/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: t.accessToken, client_id: t.clientId }).toString(),
      });
      const body = (await intro.json()) as Record<string, unknown>;
      expect(body['active']).toBe(true);
      expect(body['client_id']).toBe(t.clientId);
    });

    it(`a revocation at A stops the token at B within ${PROPAGATION_BOUND_MS} ms (three ways to revoke)`, async () => {
      // RFC 7009 at A with the refresh token.
      const t1 = await tokensFromA('Replica revoke refresh');
      const byRefresh = await propagation(t1.accessToken, async () => {
        expect(await revoke(r, r.a.origin, t1.clientId, t1.refreshToken, 'refresh_token')).toBe(200);
      });
      // RFC 7009 at A with the access token (mcp-pa removes the grant it names).
      const t2 = await tokensFromA('Replica revoke access');
      const byAccess = await propagation(t2.accessToken, async () => {
        expect(await revoke(r, r.a.origin, t2.clientId, t2.accessToken, 'access_token')).toBe(200);
      });
      // Revoke on the connected-apps page, served by A (the balancer pinned to A).
      const t3 = await tokensFromA('Replica revoke page');
      const byPage = await propagation(t3.accessToken, async () => {
        r.lb.pin('A');
        r.lb.resetLog();
        try {
          await revokeOnAppsPage(r, alice(), 'Replica revoke page');
          expect(new Set(r.lb.log())).toEqual(new Set(['A']));
        } finally {
          r.lb.pin(null);
        }
      });
      figures.push(
        `revocation at A → 401 at B: ${byRefresh} ms (refresh token, RFC 7009), ${byAccess} ms (access token, RFC 7009), ` +
          `${byPage} ms (connected-apps page)`,
      );
      for (const ms of [byRefresh, byAccess, byPage]) expect(ms).toBeLessThanOrEqual(PROPAGATION_BOUND_MS);
      // And on A itself, and for the refresh tokens, at once.
      for (const t of [t1, t2, t3]) {
        expect((await mcpPost(r.fetch, `${r.a.origin}/mcp`, t.accessToken, INITIALIZE)).status).toBe(401);
        const refreshed = await tokenRequest(r, r.b.origin, {
          grant_type: 'refresh_token',
          refresh_token: t.refreshToken,
          client_id: t.clientId,
          resource: r.resource,
        });
        expect(refreshed.status).toBe(400);
        expect(refreshed.body['error']).toBe('invalid_grant');
      }
    }, 90_000);

    it('a client registered at A is managed, authorized and remembered at B (web client: consent once)', async () => {
      // Registered at A through the balancer (pinned), as a client would: its management URI is the public one.
      r.lb.pin('A');
      const reg = await register(r, r.issuer, {
        redirect_uris: [WEB_REDIRECT],
        client_name: 'Replica web app',
        token_endpoint_auth_method: 'none',
      });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      const clientId = String(reg.body['client_id']);
      expect(reg.body['application_type']).toBe('web');
      const registrationUri = String(reg.body['registration_client_uri']);
      expect(registrationUri).toBe(`${r.issuer}/oauth/register/${clientId}`);

      // RFC 7592 read of that URI, answered by B.
      r.lb.pin('B');
      r.lb.resetLog();
      const read = await r.fetch(registrationUri, {
        headers: { authorization: `Bearer ${String(reg.body['registration_access_token'])}` },
      });
      const readBody = (await read.json()) as Record<string, unknown>;
      expect(read.status, JSON.stringify(readBody)).toBe(200);
      expect(readBody['client_id']).toBe(clientId);
      expect(readBody['client_name']).toBe('Replica web app');
      expect(readBody['redirect_uris']).toEqual([WEB_REDIRECT]);
      expect(r.lb.log()).toEqual(['B']);

      // First authorization, on A: sign-in and consent. Its code is redeemed at B.
      const browser = new Browser(r.ca.cert, r.secrets);
      r.lb.pin('A');
      r.lb.resetLog();
      const first = await authorize(r, browser, { clientId, redirectUri: WEB_REDIRECT, user: alice() });
      expect(first.stoppedAt).toBeUndefined();
      expect(first.consentShown, 'the first authorization asks for consent').toBe(true);
      expect(new Set(r.lb.log())).toEqual(new Set(['A']));
      const w1 = watched(
        r.secrets,
        await exchangeCode(r, r.b.origin, { clientId, redirectUri: WEB_REDIRECT, auth: first }),
      );
      expect((await mcpPost(r.fetch, `${r.a.origin}/mcp`, w1.accessToken, INITIALIZE)).status).toBe(200);

      // Second authorization, on B, same browser: its sign-in on A holds on B, and the consent is remembered.
      r.lb.pin('B');
      r.lb.resetLog();
      const second = await authorize(r, browser, { clientId, redirectUri: WEB_REDIRECT, user: null });
      expect(second.stoppedAt, 'no sign-in form on B: the session made on A is known').toBeUndefined();
      expect(second.consentShown, 'no consent page on B: the consent given on A is remembered').toBe(false);
      expect(new Set(r.lb.log())).toEqual(new Set(['B']));
      const w2 = watched(
        r.secrets,
        await exchangeCode(r, r.a.origin, { clientId, redirectUri: WEB_REDIRECT, auth: second }),
      );
      expect(decodeJwt(w2.accessToken)['gid'], 'the same grant').toBe(decodeJwt(w1.accessToken)['gid']);

      // Third, on B from a new browser: sign-in needed, consent still remembered (stored with the grant).
      const third = await authorize(r, new Browser(r.ca.cert, r.secrets), {
        clientId,
        redirectUri: WEB_REDIRECT,
        user: alice(),
      });
      expect(third.stoppedAt).toBeUndefined();
      expect(third.consentShown).toBe(false);
      r.lb.pin(null);
      const w3 = watched(
        r.secrets,
        await exchangeCode(r, r.b.origin, { clientId, redirectUri: WEB_REDIRECT, auth: third }),
      );

      // A code redeemed once (at B) cannot be redeemed again at A — and the replay revokes the grant everywhere.
      const replay = await tokenRequest(r, r.a.origin, {
        grant_type: 'authorization_code',
        code: third.code ?? '',
        redirect_uri: WEB_REDIRECT,
        code_verifier: third.verifier,
        client_id: clientId,
        resource: r.resource,
      });
      expect(replay.status).toBe(400);
      expect(replay.body['error']).toBe('invalid_grant');
      const refusedAtB = await pollUntilRefused(
        () => mcpPost(r.fetch, `${r.b.origin}/mcp`, w3.accessToken, INITIALIZE),
        {
          maxMs: PROPAGATION_BOUND_MS,
        },
      ).done;
      expect(refusedAtB.answer.status).toBe(401);
    }, 90_000);

    it('a native app registered at A is asked for consent on B again (native apps are asked every time)', async () => {
      const reg = await register(r, r.a.origin, {
        redirect_uris: [NATIVE_REDIRECT],
        client_name: 'Replica native app',
        token_endpoint_auth_method: 'none',
      });
      expect(reg.status).toBe(201);
      const clientId = String(reg.body['client_id']);
      expect(reg.body['application_type']).toBe('native');
      const browser = new Browser(r.ca.cert, r.secrets);
      try {
        r.lb.pin('A');
        const first = await authorize(r, browser, { clientId, redirectUri: NATIVE_REDIRECT, user: alice() });
        expect(first.consentShown).toBe(true);
        watched(
          r.secrets,
          await exchangeCode(r, r.b.origin, { clientId, redirectUri: NATIVE_REDIRECT, auth: first }),
        );
        r.lb.pin('B');
        const second = await authorize(r, browser, { clientId, redirectUri: NATIVE_REDIRECT, user: null });
        expect(second.stoppedAt).toBeUndefined();
        expect(second.consentShown, 'a native app is asked again').toBe(true);
      } finally {
        r.lb.pin(null);
      }
    });

    it('a refresh token from A rotates at B; the old one presented at A then revokes the grant', async () => {
      const fromA = await tokensFromA('Replica refresh client');
      const rotated = await refreshTokens(
        { origin: r.b.origin, resource: r.resource, ca: r.ca },
        fromA.clientId,
        fromA.refreshToken,
      );
      watched(r.secrets, rotated);
      expect(rotated.refreshToken).not.toBe(fromA.refreshToken);
      expect(decodeJwt(rotated.accessToken)['gid']).toBe(decodeJwt(fromA.accessToken)['gid']);
      for (const origin of [r.a.origin, r.b.origin]) {
        expect((await mcpPost(r.fetch, `${origin}/mcp`, rotated.accessToken, INITIALIZE)).status).toBe(200);
      }
      const sid = await sessionAt(r.b.origin, rotated.accessToken);

      // The retired refresh token, presented at A: refused, and the whole grant goes.
      const reuse = await tokenRequest(r, r.a.origin, {
        grant_type: 'refresh_token',
        refresh_token: fromA.refreshToken,
        client_id: fromA.clientId,
        resource: r.resource,
      });
      const reusedAt = performance.now();
      expect(reuse.status).toBe(400);
      expect(reuse.body['error']).toBe('invalid_grant');
      const refused = await pollUntilRefused(
        () => mcpPost(r.fetch, `${r.b.origin}/mcp`, rotated.accessToken, PING, sid),
        {
          maxMs: 5_000,
        },
      ).done;
      const ms = Math.max(0, Math.round(refused.at - reusedAt));
      figures.push(`refresh-token reuse at A → rotated token refused at B: ${ms} ms`);
      expect(ms).toBeLessThanOrEqual(PROPAGATION_BOUND_MS);
      const next = await tokenRequest(r, r.b.origin, {
        grant_type: 'refresh_token',
        refresh_token: rotated.refreshToken,
        client_id: fromA.clientId,
        resource: r.resource,
      });
      expect(next.status).toBe(400);
      expect(next.body['error']).toBe('invalid_grant');
    }, 60_000);

    it('failed sign-ins alternating between A and B lock the account on both after the 10th overall', async () => {
      const carol = r.users.get('carol') as { username: string; password: string };
      // One browser: the sign-in form (and its CSRF cookie) comes from A; B verifies it with the shared secret.
      const browser = new Browser(r.ca.cert, r.secrets);
      const page = await browser.request(`${r.a.origin}/account/apps`);
      const form = parseForms(page.text).find((f) => f.fields.has('password'));
      expect(form, 'the connected-apps page asks to sign in').toBeDefined();
      const fields = Object.fromEntries(form?.fields ?? []);
      const signIn = (origin: string, username: string, password: string) =>
        browser.request(`${origin}/account/login`, {
          form: { ...fields, username, password },
          headers: { origin: r.issuer },
        });
      for (let i = 0; i < 10; i++) {
        const origin = i % 2 === 0 ? r.a.origin : r.b.origin;
        const wrong = `wrong-password-${i}-xxxx`;
        r.secrets.add('password', wrong);
        const res = await signIn(origin, carol.username, wrong);
        expect(res.status, `failure ${i + 1} (at ${i % 2 === 0 ? 'A' : 'B'})`).toBe(401);
      }
      // Five failures on each replica: per-process counters would still let her in. The shared ones do not,
      // even with the right password, on either replica.
      for (const origin of [r.b.origin, r.a.origin]) {
        const locked = await signIn(origin, carol.username, carol.password);
        expect(locked.status).toBe(429);
        const retryAfter = Number(locked.headers['retry-after']);
        expect(retryAfter).toBeGreaterThan(800);
        expect(retryAfter).toBeLessThanOrEqual(900);
      }
      // The lock is the account's at this address, not the address's: Alice still signs in (at B, a form from B).
      const other = new Browser(r.ca.cert, r.secrets);
      const otherPage = await other.request(`${r.b.origin}/account/apps`);
      const otherFields = Object.fromEntries(
        parseForms(otherPage.text).find((f) => f.fields.has('password'))?.fields ?? [],
      );
      const aliceIn = await other.request(`${r.b.origin}/account/login`, {
        form: { ...otherFields, username: alice().username, password: alice().password },
        headers: { origin: r.issuer },
      });
      expect(aliceIn.status).toBe(303);
      // The counters are in Redis under this run's prefix; the lockout is in the shared audit trail once.
      expect((await keysUnder(`${r.keyPrefix}:login-account:`)).length).toBeGreaterThan(0);
      // (The audit trail is written in the background: waited for, 10 s at most.)
      let lockouts: { details: { username?: string } }[] = [];
      for (const deadline = Date.now() + 10_000; lockouts.length === 0 && Date.now() < deadline;) {
        lockouts = await r.db.query<{ details: { username?: string } }>(
          "SELECT details FROM audit_events WHERE type = 'auth.lockout'",
        );
        if (lockouts.length === 0) await new Promise((res) => setTimeout(res, 100));
      }
      expect(lockouts.map((l) => l.details.username)).toEqual([carol.username]);
    });

    it('what must be the same: another secret cannot start on the shared database; another public URL refuses the tokens', async () => {
      const env = {
        MCP_DATABASE_URL: r.db.url,
        MCP_REDIS_URL: testRedisUrl(),
        MCP_REDIS_KEY_PREFIX: r.keyPrefix,
      };
      // Both started at once (with a flow on A meanwhile): a third replica with another secret, and one without
      // the shared public URL.
      const [otherSecret, noPublicUrl, t] = await Promise.allSettled([
        startServerProcess({
          env,
          config: {
            server: { public_url: r.issuer },
            authentication: { secret_key: 'another-secret-0123456789-abcdefghijklmnop' },
          },
        }),
        startServerProcess({ env }),
        tokensFromA('Replica audience client'),
      ]);
      if (otherSecret.status === 'fulfilled') await otherSecret.value.close();
      if (noPublicUrl.status === 'rejected') throw noPublicUrl.reason;
      const stray = noPublicUrl.value;
      if (t.status === 'rejected') {
        await stray.close();
        throw t.reason;
      }
      expect(otherSecret.status, 'a replica with another secret refuses to start').toBe('rejected');
      expect(String((otherSecret as PromiseRejectedResult).reason)).toMatch(
        /encrypted with another server secret/,
      );
      try {
        expect(stray.issuer).toBe(stray.origin);
        const token = t.value.accessToken;
        const res = await mcpPost(r.fetch, `${stray.origin}/mcp`, token, INITIALIZE);
        expect(res.status).toBe(401);
        expect(res.wwwAuthenticate).toContain('error="invalid_token"');
        expect((await mcpPost(r.fetch, `${r.b.origin}/mcp`, token, INITIALIZE)).status).toBe(200);
        const leaks = r.secrets.leaks(stray.logs());
        expect(leaks).toEqual([]);
      } finally {
        await stray.close();
      }
    }, 90_000);
  },
);
