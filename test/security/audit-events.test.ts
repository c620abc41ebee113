/**
 * The audit trail as the running server writes it (issue 5): each security event the suite provokes through real
 * requests is stored exactly once, with its request id, tenant, client, address and token hash where they apply,
 * and no audit row contains a password, secret, code or token the test handled.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryAudit, type AuditEventType, type StoredAuditEvent } from '../../src/security/audit.js';
import { tokenHash } from '../../src/auth/resource-server.js';
import { pkcePair, startOAuthFixture, type OAuthFixture, type TestUser } from '../auth/oauth-fixture.js';

const REDIRECT = 'https://app.example/cb';

function form(fields: Record<string, string>, headers: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  };
}

describe('audit events written by the server (PGlite)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  let since: Date;

  beforeAll(async () => {
    fx = await startOAuthFixture();
    user = await fx.addUser();
    since = new Date(Date.now() - 1000);
  }, 60_000);

  afterAll(async () => {
    // No audit row may contain a secret the suite handled.
    if (fx) {
      const rows = await queryAudit(fx.store, { since, limit: 100_000 });
      expect(fx.secrets.leaks(JSON.stringify(rows))).toEqual([]);
    }
    await fx?.close();
  });

  /** The events of `type` since `from`, waiting (up to 4 s) for the batched writer to store `count` of them. */
  async function events(type: AuditEventType, count: number, from: Date): Promise<StoredAuditEvent[]> {
    const deadline = Date.now() + 4000;
    for (;;) {
      const rows = (await queryAudit(fx.store, { since: from, type })).filter((r) => new Date(r.at) >= from);
      if (rows.length >= count || Date.now() > deadline) {
        // Give a duplicate the chance to show up before asserting "exactly".
        await new Promise((r) => setTimeout(r, 1200));
        return (await queryAudit(fx.store, { since: from, type })).filter((r) => new Date(r.at) >= from);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function codeFlow(clientId: string) {
    const { verifier, challenge } = await pkcePair();
    const url = new URL(`${fx.origin}/oauth/authorize`);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'pa.read',
      state: 's',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();
    const done = await fx.browser().authorize(url.href, fx.origin, user);
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
    expect(res.status).toBe(200);
    return (await res.json()) as { access_token: string; refresh_token: string };
  }

  it('registration, sign-in, consent, token issue and refresh, refresh reuse with its incident, revocation', async () => {
    const from = new Date();
    const reg = await fx.register({
      redirect_uris: [REDIRECT],
      client_name: 'Audited app',
      token_endpoint_auth_method: 'none',
    });
    const clientId = String(reg.body['client_id']);
    const tokens = await codeFlow(clientId);

    const [registered] = await events('client.registered', 1, from);
    expect(registered).toMatchObject({ clientId, ip: '127.0.0.1' });
    expect(registered?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await events('client.registered', 1, from)).toHaveLength(1);

    const signIns = await events('auth.sign_in.success', 1, from);
    expect(signIns).toHaveLength(1);
    expect(signIns[0]).toMatchObject({ tenant: user.id, clientId, ip: '127.0.0.1' });

    const consents = await events('consent.granted', 1, from);
    expect(consents).toHaveLength(1);
    expect(consents[0]).toMatchObject({ tenant: user.id, clientId });
    expect(consents[0]?.details?.['scopes']).toBe('pa.read');

    const issued = await events('token.issued', 1, from);
    expect(issued).toHaveLength(1);
    expect(issued[0]).toMatchObject({
      tenant: user.id,
      clientId,
      tokenHash: tokenHash(tokens.access_token),
      ip: '127.0.0.1',
    });

    const refreshFrom = new Date();
    const refreshed = await fx.fetch(
      `${fx.origin}/oauth/token`,
      form({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: clientId }),
    );
    const second = (await refreshed.json()) as { access_token: string };
    expect(refreshed.status).toBe(200);
    const refreshes = await events('token.refreshed', 1, refreshFrom);
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]).toMatchObject({
      clientId,
      tenant: user.id,
      tokenHash: tokenHash(second.access_token),
    });

    // The old refresh token again: reuse, the grant revoked, and an incident.
    const reuseFrom = new Date();
    const reuse = await fx.fetch(
      `${fx.origin}/oauth/token`,
      form({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: clientId }),
    );
    expect(reuse.status).toBe(400);
    await reuse.text();
    const reused = await events('token.refresh_reuse', 1, reuseFrom);
    expect(reused).toHaveLength(1);
    expect(reused[0]).toMatchObject({ clientId, ip: '127.0.0.1' });
    const incidents = (await events('security.incident', 1, reuseFrom)).filter(
      (e) => e.details?.['rule'] === 'refresh_reuse',
    );
    expect(incidents).toHaveLength(1);
    const revoked = await events('token.revoked', 1, reuseFrom);
    expect(revoked.length).toBeGreaterThanOrEqual(1);
    expect(decodeJwt(second.access_token)['gid']).toBeTruthy();
  });

  it('401 and 403 at /mcp, a failed sign-in, a CSRF failure and a client authentication failure', async () => {
    const from = new Date();
    const ping = (headers: Record<string, string>) =>
      fx.fetch(fx.resource, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
    const bad = await ping({ authorization: 'Bearer not-a-real-token-value' });
    expect(bad.status).toBe(401);
    await bad.text();
    const unauthorized = await events('mcp.unauthorized', 1, from);
    expect(unauthorized).toHaveLength(1);
    expect(unauthorized[0]).toMatchObject({
      ip: '127.0.0.1',
      tokenHash: tokenHash('not-a-real-token-value'),
    });
    expect(unauthorized[0]?.requestId).toBe(bad.headers.get('x-request-id'));

    const foreign = await ping({ origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    await foreign.text();
    const forbidden = await events('mcp.forbidden', 1, from);
    expect(forbidden).toHaveLength(1);
    expect(forbidden[0]?.details).toMatchObject({ reason: 'origin', origin: 'https://evil.example' });

    // A wrong password on the connected-apps page, then a form without its CSRF token.
    const browser = fx.browser();
    const page = await browser.request(`${fx.origin}/account/apps`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    const wrong = await browser.request(`${fx.origin}/account/login`, {
      form: { csrf, username: user.username, password: 'definitely wrong password' },
      headers: { origin: fx.origin },
    });
    expect(wrong.status).toBe(401);
    const failures = await events('auth.sign_in.failure', 1, from);
    expect(failures).toHaveLength(1);
    expect(failures[0]?.details).toMatchObject({ username: user.username, reason: 'credentials' });
    const noCsrf = await browser.request(`${fx.origin}/account/login`, {
      form: { username: user.username, password: user.password },
      headers: { origin: fx.origin },
    });
    expect(noCsrf.status).toBe(403);
    expect(await events('csrf.failure', 1, from)).toHaveLength(1);

    const confidential = await fx.register({
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const id = String(confidential.body['client_id']);
    const clientAuth = await fx.fetch(
      `${fx.origin}/oauth/token`,
      form(
        { grant_type: 'refresh_token', refresh_token: 'x'.repeat(43) },
        { authorization: `Basic ${Buffer.from(`${id}:wrong-secret-value`).toString('base64')}` },
      ),
    );
    expect(clientAuth.status).toBe(401);
    await clientAuth.text();
    const authFailures = await events('auth.client_auth.failure', 1, from);
    expect(authFailures).toHaveLength(1);
    expect(authFailures[0]).toMatchObject({ clientId: id, ip: '127.0.0.1' });
  });

  it('revoking an app on the connected-apps page; deleting a registration (RFC 7592)', async () => {
    const reg = await fx.register({
      redirect_uris: [REDIRECT],
      client_name: 'Revoked app',
      token_endpoint_auth_method: 'none',
    });
    const clientId = String(reg.body['client_id']);
    const tokens = await codeFlow(clientId);
    const gid = String(decodeJwt(tokens.access_token)['gid']);
    const from = new Date();
    const browser = fx.browser();
    const login = await browser.request(`${fx.origin}/account/apps`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(login.text)?.[1] ?? '';
    await browser.request(`${fx.origin}/account/login`, {
      form: { csrf, username: user.username, password: user.password },
      headers: { origin: fx.origin },
    });
    const revoke = await browser.request(`${fx.origin}/account/revoke`, {
      form: { csrf, grant: gid },
      headers: { origin: fx.origin },
    });
    expect(revoke.status).toBe(303);
    const revokedConsents = await events('consent.revoked', 1, from);
    expect(revokedConsents).toHaveLength(1);
    expect(revokedConsents[0]).toMatchObject({ tenant: user.id });

    const del = await fx.fetch(String(reg.body['registration_client_uri']), {
      method: 'DELETE',
      headers: { authorization: `Bearer ${String(reg.body['registration_access_token'])}` },
    });
    expect(del.status).toBe(204);
    const removed = await events('client.removed', 1, from);
    expect(removed).toHaveLength(1);
    expect(removed[0]).toMatchObject({ clientId });
  });

  it('every audited row carries no secret, and the log stream has the same events as JSON', async () => {
    const rows = await queryAudit(fx.store, { since, limit: 100_000 });
    expect(rows.length).toBeGreaterThan(10);
    expect(fx.secrets.leaks(JSON.stringify(rows))).toEqual([]);
    const logged = fx
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"audit"'))
      .map((l) => JSON.parse(l) as { audit: { type: string } });
    for (const type of ['token.issued', 'consent.granted', 'mcp.unauthorized']) {
      expect(logged.some((l) => l.audit.type === type)).toBe(true);
    }
  });
});
