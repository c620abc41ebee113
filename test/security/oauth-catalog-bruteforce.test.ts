/**
 * Catalog line 29 (../shared/design/SECURITY-TESTS.md), brute force, against the real server: 30 bad client
 * secrets at the token endpoint and 30 bad passwords at the sign-in page within a minute end in 429 with
 * Retry-After (a lockout with the same generic message as a wrong password), while another client and another
 * account from the same address are unaffected; the audit trail records each failure, the lockout and the success.
 */
import { Agent } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsFetch } from '../support/https.js';
import { startOAuthFixture, type OAuthFixture, type TestUser } from '../auth/oauth-fixture.js';
import { queryAudit, type AuditEventType, type StoredAuditEvent } from '../../src/security/audit.js';

const REDIRECT = 'https://app.example/cb';

describe('#29 brute force (PGlite)', () => {
  let fx: OAuthFixture;
  beforeAll(async () => {
    fx = await startOAuthFixture();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  async function confidentialClient(): Promise<{ id: string; secret: string }> {
    const reg = await fx.register({
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(reg.status).toBe(201);
    return { id: String(reg.body['client_id']), secret: String(reg.body['client_secret']) };
  }

  it('#29 Brute force: 30 bad secrets to /token get 429 with Retry-After; another client is unaffected', async () => {
    const victim = await confidentialClient();
    const bystander = await confidentialClient();
    const tokenRequest = (client: { id: string }, secret: string) =>
      fx.fetch(`${fx.origin}/oauth/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.id}:${secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: 'x',
          redirect_uri: REDIRECT,
        }).toString(),
      });
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 30; i++) {
      const res = await tokenRequest(victim, `wrong-${i}`);
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
      await res.text();
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.at(-1)).toBe(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // Even the right secret is turned away while the client is limited…
    const blocked = await tokenRequest(victim, victim.secret);
    expect(blocked.status).toBe(429);
    await blocked.text();
    // …and another client from the same address is not: its bad code is a plain invalid_grant.
    const other = await tokenRequest(bystander, bystander.secret);
    expect(other.status).toBe(400);
    expect(((await other.json()) as { error: string }).error).toBe('invalid_grant');
  });

  it('#29 Brute force: 30 bad passwords lock the account out with the generic message; another account signs in', async () => {
    const since = new Date(Date.now() - 1000);
    const user: TestUser = await fx.addUser();
    const other: TestUser = await fx.addUser();
    const browser = fx.browser();
    const page = await browser.request(`${fx.origin}/account/apps`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    const attempt = (username: string, password: string) =>
      browser.request(`${fx.origin}/account/login`, {
        form: { csrf, username, password },
        headers: { origin: fx.origin },
      });
    const statuses: number[] = [];
    const texts: string[] = [];
    let retryAfter: string | string[] | undefined;
    for (let i = 0; i < 30; i++) {
      const res = await attempt(user.username, `wrong password ${i}`);
      statuses.push(res.status);
      texts.push(/role="alert"[^>]*>([\s\S]*?)</.exec(res.text)?.[1]?.trim() ?? '');
      if (res.status === 429) retryAfter = res.headers['retry-after'];
    }
    expect(statuses[0]).toBe(401);
    expect(statuses.at(-1)).toBe(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // One message for every failure: a lockout tells an attacker nothing a wrong password does not.
    expect(new Set(texts).size).toBe(1);
    // The right password is refused during the lockout…
    const locked = await attempt(user.username, user.password);
    expect(locked.status).toBe(429);
    // …while another account signs in from the same address.
    const ok = await attempt(other.username, other.password);
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/account/apps');

    // The audit trail shows it: every failure once (wrong password, then "locked"), one lockout, one success
    // for the other account.
    const forUser = async (type: AuditEventType) =>
      (await queryAudit(fx.store, { type, since })).filter((e) => e.details?.['username'] === user.username);
    let failures: StoredAuditEvent[] = [];
    for (let i = 0; i < 30 && failures.length < 31; i++) {
      await new Promise((r) => setTimeout(r, 200));
      failures = await forUser('auth.sign_in.failure');
    }
    expect(failures.filter((e) => e.details?.['reason'] === 'credentials')).toHaveLength(10);
    expect(failures.filter((e) => e.details?.['reason'] === 'locked')).toHaveLength(21);
    expect(failures.every((e) => e.ip === '127.0.0.1' && typeof e.requestId === 'string')).toBe(true);
    const lockouts = await forUser('auth.lockout');
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]?.details).toMatchObject({ limit: 'login-account', lockedS: 900 });
    const successes = await queryAudit(fx.store, { type: 'auth.sign_in.success', since });
    expect(successes.filter((e) => e.tenant === other.id)).toHaveLength(1);
    expect(successes.filter((e) => e.tenant === user.id)).toHaveLength(0);
  });

  it('a lockout is per address: the same account signs in from another address', async () => {
    const user = await fx.addUser();
    const browser = fx.browser();
    const page = await browser.request(`${fx.origin}/account/apps`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    for (let i = 0; i < 12; i++) {
      await browser.request(`${fx.origin}/account/login`, {
        form: { csrf, username: user.username, password: `bad ${i}` },
        headers: { origin: fx.origin },
      });
    }
    const elsewhere = httpsFetch(fx.ca.cert, new Agent({ localAddress: '127.0.0.2', ca: fx.ca.cert }));
    const cookie = browser.cookieHeader();
    const res = await elsewhere(`${fx.origin}/account/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, origin: fx.origin },
      body: new URLSearchParams({ csrf, username: user.username, password: user.password }).toString(),
    });
    expect(res.status).toBe(303);
    await res.text();
  });
});
