/**
 * HTTP mode's accounts (src/auth/accounts.ts) and password hashing (src/auth/passwords.ts) on PGlite always and on
 * the real PostgreSQL server when MCP_PA_TEST_DATABASE_URL is set: creating, signing in, refusing bad names and
 * weak passwords, listing, and disabling or resetting an account revoking exactly that account's grants, sessions
 * and tokens.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountError, AccountStore, DUMMY_HASH } from '../../src/auth/accounts.js';
import {
  checkPassword,
  hashPassword,
  needsRehash,
  PASSWORD_RULES,
  verifyPassword,
} from '../../src/auth/passwords.js';
import type { PostgresStore } from '../../src/storage/postgres/postgres-store.js';
import { describeWithServer, openPgliteStore, openServerStore } from '../support/postgres.js';

const PASSWORD = 'correct horse battery staple';

/** A fresh username per test, so tests sharing one database never collide. */
const fresh = (prefix = 'user'): string => `${prefix}-${randomUUID().slice(0, 8)}`;

async function expectAccountError(
  promise: Promise<unknown>,
  code: AccountError['code'],
): Promise<AccountError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AccountError);
  expect((err as AccountError).code).toBe(code);
  return err as AccountError;
}

describe('password hashing', () => {
  it('hashes with argon2id at the OWASP parameters, a fresh salt each time, and verifies', async () => {
    const a = await hashPassword(PASSWORD);
    const b = await hashPassword(PASSWORD);
    expect(a).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain(PASSWORD);
    expect(await verifyPassword(a, PASSWORD)).toBe(true);
    expect(await verifyPassword(a, `${PASSWORD}!`)).toBe(false);
    expect(await verifyPassword('not a hash', PASSWORD)).toBe(false);
    expect(needsRehash(a)).toBe(false);
    expect(
      needsRehash('$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA'),
    ).toBe(true);
  });

  it('normalises passwords to NFKC (composed and decomposed accents match)', async () => {
    const composed = 'caf\u00e9 au lait, s\u2019il vous pla\u00eet';
    const decomposed = composed.normalize('NFD');
    expect(decomposed).not.toBe(composed);
    expect(await verifyPassword(await hashPassword(composed), decomposed)).toBe(true);
  });

  it('the dummy hash for unknown users uses the current parameters', () => {
    expect(needsRehash(DUMMY_HASH)).toBe(false);
  });

  it('checkPassword names the rule and the length, never the password', () => {
    expect(PASSWORD_RULES).toEqual({ minLength: 12, maxLength: 1024 });
    const short = 'hunter2';
    const reason = checkPassword(short);
    expect(reason).toContain('12–1024 characters');
    expect(reason).toContain('got 7');
    expect(reason).not.toContain(short);
    expect(checkPassword('x'.repeat(1025))).toContain('got 1025');
    expect(checkPassword('x'.repeat(12))).toBeNull();
    expect(checkPassword('x'.repeat(1024))).toBeNull();
    expect(checkPassword(' '.repeat(20))).toContain('spaces');
    // Characters, not UTF-16 units: eleven emoji are too short.
    expect(checkPassword('\u{1F600}'.repeat(11))).toContain('got 11');
  });
});

interface Harness {
  store: PostgresStore;
  close: () => Promise<void>;
}

async function countState(store: PostgresStore, where: string, params: unknown[]): Promise<number> {
  return store.withServerState(
    async (sql) =>
      (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM oauth_state WHERE ${where}`, params))
        .rows[0]?.n ?? -1,
  );
}

/** Grants, sessions, tokens and usage rows for an account, as oidc-provider's adapter would store them. */
async function seedAuthorizations(store: PostgresStore, accountId: string): Promise<{ grantIds: string[] }> {
  const grantIds = [`g-${randomUUID()}`, `g-${randomUUID()}`];
  await store.withServerState(async (sql) => {
    for (const grantId of grantIds) {
      await sql.query(`INSERT INTO oauth_state (model, id, payload) VALUES ('Grant', $1, $2)`, [
        grantId,
        JSON.stringify({ jti: grantId, accountId, clientId: 'client-1', openid: { scope: 'openid' } }),
      ]);
      for (const model of ['AccessToken', 'RefreshToken', 'AuthorizationCode']) {
        const id = `${model}-${randomUUID()}`;
        await sql.query(`INSERT INTO oauth_state (model, id, payload, grant_id) VALUES ($1, $2, $3, $4)`, [
          model,
          id,
          JSON.stringify({ jti: id, accountId, grantId, clientId: 'client-1' }),
          grantId,
        ]);
      }
      await sql.query('INSERT INTO oauth_grant_usage (grant_id, last_used_at) VALUES ($1, now())', [grantId]);
    }
    const sessionId = `s-${randomUUID()}`;
    await sql.query(`INSERT INTO oauth_state (model, id, payload, uid) VALUES ('Session', $1, $2, $3)`, [
      sessionId,
      JSON.stringify({ jti: sessionId, accountId, authorizations: { 'client-1': { grantId: grantIds[0] } } }),
      `uid-${randomUUID()}`,
    ]);
  });
  return { grantIds };
}

/** Rows that belong to the account: its grants and sessions, and anything issued under its grants. */
async function authorizationsOf(store: PostgresStore, accountId: string, grantIds: string[]) {
  return {
    grantsAndSessions: await countState(
      store,
      `model IN ('Grant', 'Session') AND payload->>'accountId' = $1`,
      [accountId],
    ),
    issued: await countState(store, 'grant_id = $1 OR grant_id = $2', grantIds),
    usage: await store.withServerState(
      async (sql) =>
        (
          await sql.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM oauth_grant_usage WHERE grant_id = $1 OR grant_id = $2',
            grantIds,
          )
        ).rows[0]?.n ?? -1,
    ),
  };
}

function accountSuite(open: () => Promise<Harness>): void {
  let h: Harness;
  let accounts: AccountStore;

  beforeAll(async () => {
    h = await open();
    accounts = new AccountStore(h.store);
  });
  afterAll(async () => {
    await h.close();
  });

  it('creates an account with a normalised username, an opaque id and an argon2id hash', async () => {
    const name = fresh('Alice');
    const account = await accounts.create(`  ${name.toUpperCase()} `, PASSWORD);
    expect(account.username).toBe(name.toLowerCase());
    expect(account.id).toMatch(/^u_[A-Za-z0-9_-]{22}$/);
    expect(account.disabled).toBe(false);
    expect(account.lastLoginAt).toBeNull();
    expect(Number.isNaN(Date.parse(account.createdAt))).toBe(false);
    expect(Math.abs(Date.parse(account.createdAt) - Date.now())).toBeLessThan(60_000);
    const stored = await h.store.withServerState(
      async (sql) =>
        (
          await sql.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [
            account.id,
          ])
        ).rows[0]?.password_hash,
    );
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(stored).not.toContain(PASSWORD);
    expect(await accounts.findById(account.id)).toEqual(account);
    expect(await accounts.findByUsername(name.toUpperCase())).toEqual(account);
    expect(await accounts.findById('u_nobody')).toBeNull();
    expect(await accounts.findByUsername('nobody-here')).toBeNull();
  });

  it('full-width characters are folded by NFKC (ｂｏｂ is bob)', async () => {
    const suffix = randomUUID().slice(0, 6);
    const account = await accounts.create(`\uff42\uff4f\uff42-${suffix}`, PASSWORD);
    expect(account.username).toBe(`bob-${suffix}`);
  });

  it('authenticates the right password (case-insensitive username) and stamps the last login', async () => {
    const name = fresh();
    const created = await accounts.create(name, PASSWORD);
    const signedIn = await accounts.authenticate(name.toUpperCase(), PASSWORD);
    expect(signedIn?.id).toBe(created.id);
    expect(signedIn?.lastLoginAt).not.toBeNull();
    expect((await accounts.findById(created.id))?.lastLoginAt).toBe(signedIn?.lastLoginAt);
  });

  it('refuses a wrong password, an unknown user and a malformed username with null', async () => {
    const name = fresh();
    const created = await accounts.create(name, PASSWORD);
    expect(await accounts.authenticate(name, `${PASSWORD}x`)).toBeNull();
    expect(await accounts.authenticate(name, '')).toBeNull();
    expect(await accounts.authenticate(fresh('ghost'), PASSWORD)).toBeNull();
    expect(await accounts.authenticate('x', PASSWORD)).toBeNull();
    expect((await accounts.findById(created.id))?.lastLoginAt).toBeNull();
  });

  it('an unknown user costs an argon2 verification too (no timing oracle)', async () => {
    const name = fresh();
    await accounts.create(name, PASSWORD);
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const samples: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await fn();
        samples.push(performance.now() - t);
      }
      return samples.sort((a, b) => a - b)[1] as number;
    };
    const wrongPassword = await time(() => accounts.authenticate(name, 'wrong password!!'));
    const unknownUser = await time(() => accounts.authenticate(fresh('ghost'), 'wrong password!!'));
    // One argon2id verification (tens of milliseconds) dominates both; a database lookup alone takes ~1 ms.
    expect(unknownUser).toBeGreaterThan(wrongPassword * 0.4);
  });

  it('refuses a taken username, whatever its case', async () => {
    const name = fresh();
    await accounts.create(name, PASSWORD);
    const err = await expectAccountError(accounts.create(name.toUpperCase(), PASSWORD), 'username_taken');
    expect(err.message).toContain(name);
    expect(err.message).not.toContain(PASSWORD);
  });

  it('refuses invalid usernames with the rule and what was wrong', async () => {
    const tooShort = await expectAccountError(accounts.create('ab', PASSWORD), 'invalid_username');
    expect(tooShort.message).toContain('username must be 3–64 characters of a–z, 0–9, . _ @ + -');
    expect(tooShort.message).toContain('got 2');
    expect(
      (await expectAccountError(accounts.create('a'.repeat(65), PASSWORD), 'invalid_username')).message,
    ).toContain('got 65');
    expect(
      (await expectAccountError(accounts.create('bad name', PASSWORD), 'invalid_username')).message,
    ).toContain('got " "');
    expect(
      (await expectAccountError(accounts.create('.dotfirst', PASSWORD), 'invalid_username')).message,
    ).toContain('starting with a letter or digit');
    await expectAccountError(accounts.create('émile', PASSWORD), 'invalid_username');
    await expectAccountError(accounts.create('   ', PASSWORD), 'invalid_username');
    // Every allowed character is accepted.
    const ok = await accounts.create(`a.b_c@d+e-${randomUUID().slice(0, 4)}`, PASSWORD);
    expect(ok.username).toMatch(/^a\.b_c@d\+e-/);
  });

  it('refuses a weak password without quoting it, and creates nothing', async () => {
    const name = fresh();
    const weak = 'short-pw';
    const err = await expectAccountError(accounts.create(name, weak), 'weak_password');
    expect(err.message).toContain('password must be 12–1024 characters');
    expect(err.message).not.toContain(weak);
    expect(await accounts.findByUsername(name)).toBeNull();
  });

  it('lists accounts by username and counts them', async () => {
    const before = await accounts.countUsers();
    const prefix = `list-${randomUUID().slice(0, 6)}`;
    for (const n of ['zed', 'amy', 'max']) await accounts.create(`${prefix}-${n}`, PASSWORD);
    expect(await accounts.countUsers()).toBe(before + 3);
    const all = await accounts.list();
    expect(all.length).toBe(before + 3);
    const names = all.map((a) => a.username);
    expect(names).toEqual([...names].sort());
    expect(names.filter((n) => n.startsWith(prefix))).toEqual([
      `${prefix}-amy`,
      `${prefix}-max`,
      `${prefix}-zed`,
    ]);
    for (const a of all)
      expect(Object.keys(a).sort()).toEqual(['createdAt', 'disabled', 'id', 'lastLoginAt', 'username']);
  });

  it("disabling refuses sign-in and revokes that account's grants, sessions and tokens, not anyone else's", async () => {
    const alice = await accounts.create(fresh('alice'), PASSWORD);
    const bob = await accounts.create(fresh('bob'), PASSWORD);
    const a = await seedAuthorizations(h.store, alice.id);
    const b = await seedAuthorizations(h.store, bob.id);
    const unrelated = `Client-${randomUUID()}`;
    await h.store.withServerState((sql) =>
      sql.query(`INSERT INTO oauth_state (model, id, payload) VALUES ('Client', $1, '{"client_id":"x"}')`, [
        unrelated,
      ]),
    );
    expect(await authorizationsOf(h.store, alice.id, a.grantIds)).toEqual({
      grantsAndSessions: 3,
      issued: 6,
      usage: 2,
    });

    const disabled = await accounts.setDisabled(alice.username, true);
    expect(disabled.disabled).toBe(true);
    expect(await authorizationsOf(h.store, alice.id, a.grantIds)).toEqual({
      grantsAndSessions: 0,
      issued: 0,
      usage: 0,
    });
    expect(await authorizationsOf(h.store, bob.id, b.grantIds)).toEqual({
      grantsAndSessions: 3,
      issued: 6,
      usage: 2,
    });
    expect(await countState(h.store, `model = 'Client' AND id = $1`, [unrelated])).toBe(1);

    expect(await accounts.authenticate(alice.username, PASSWORD)).toBeNull();
    expect((await accounts.findById(alice.id))?.disabled).toBe(true);
    expect((await accounts.authenticate(bob.username, PASSWORD))?.id).toBe(bob.id);

    const enabled = await accounts.setDisabled(alice.username, false);
    expect(enabled.disabled).toBe(false);
    expect((await accounts.authenticate(alice.username, PASSWORD))?.id).toBe(alice.id);
  });

  it('enabling revokes nothing', async () => {
    const carol = await accounts.create(fresh('carol'), PASSWORD);
    const c = await seedAuthorizations(h.store, carol.id);
    await accounts.setDisabled(carol.username, false);
    expect(await authorizationsOf(h.store, carol.id, c.grantIds)).toEqual({
      grantsAndSessions: 3,
      issued: 6,
      usage: 2,
    });
  });

  it("resetting the password changes it and revokes that account's grants and sessions only", async () => {
    const dave = await accounts.create(fresh('dave'), PASSWORD);
    const erin = await accounts.create(fresh('erin'), PASSWORD);
    const d = await seedAuthorizations(h.store, dave.id);
    const e = await seedAuthorizations(h.store, erin.id);
    const next = 'a brand new passphrase';
    const reset = await accounts.resetPassword(dave.username.toUpperCase(), next);
    expect(reset.id).toBe(dave.id);
    expect(await accounts.authenticate(dave.username, PASSWORD)).toBeNull();
    expect((await accounts.authenticate(dave.username, next))?.id).toBe(dave.id);
    expect(await authorizationsOf(h.store, dave.id, d.grantIds)).toEqual({
      grantsAndSessions: 0,
      issued: 0,
      usage: 0,
    });
    expect(await authorizationsOf(h.store, erin.id, e.grantIds)).toEqual({
      grantsAndSessions: 3,
      issued: 6,
      usage: 2,
    });
  });

  it('a weak new password is refused and the old one still works', async () => {
    const frank = await accounts.create(fresh('frank'), PASSWORD);
    const f = await seedAuthorizations(h.store, frank.id);
    await expectAccountError(accounts.resetPassword(frank.username, 'too-short'), 'weak_password');
    expect((await accounts.authenticate(frank.username, PASSWORD))?.id).toBe(frank.id);
    expect(await authorizationsOf(h.store, frank.id, f.grantIds)).toEqual({
      grantsAndSessions: 3,
      issued: 6,
      usage: 2,
    });
  });

  it('disable, enable and reset of an unknown user are not_found; of a malformed name invalid_username', async () => {
    const ghost = fresh('ghost');
    const err = await expectAccountError(accounts.setDisabled(ghost, true), 'not_found');
    expect(err.message).toContain(ghost);
    await expectAccountError(accounts.setDisabled(ghost, false), 'not_found');
    await expectAccountError(accounts.resetPassword(ghost, PASSWORD), 'not_found');
    await expectAccountError(accounts.setDisabled('x', true), 'invalid_username');
  });

  it('a hash made with older parameters is upgraded at the next successful sign-in', async () => {
    const grace = await accounts.create(fresh('grace'), PASSWORD);
    const { hash } = await import('@node-rs/argon2');
    const old = await hash(PASSWORD, { memoryCost: 4096, timeCost: 3, parallelism: 1 });
    await h.store.withServerState((sql) =>
      sql.query('UPDATE users SET password_hash = $2 WHERE id = $1', [grace.id, old]),
    );
    expect((await accounts.authenticate(grace.username, PASSWORD))?.id).toBe(grace.id);
    const stored = await h.store.withServerState(
      async (sql) =>
        (
          await sql.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [
            grace.id,
          ])
        ).rows[0]?.password_hash ?? '',
    );
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect((await accounts.authenticate(grace.username, PASSWORD))?.id).toBe(grace.id);
  });
}

describe('accounts on PGlite', () => {
  accountSuite(openPgliteStore);
});

describeWithServer('accounts on the PostgreSQL server', () => {
  accountSuite(openServerStore);
});
