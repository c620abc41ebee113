/**
 * The authorization server's signing keys on PostgreSQL (PGlite always; the real server when
 * MCP_PA_TEST_DATABASE_URL is set): creation once and only once (also under concurrent starts), encryption of
 * the private halves at rest, signing and verifying with the published set, rotation with an overlap, expiry,
 * the version, and refusal of another secret or altered ciphertext.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createLocalJWKSet, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runKeysCommand } from '../../src/admin/keys.js';
import { KeyDecryptionError, KeyStore, SIGNING_ALG, type SigningKeySet } from '../../src/auth/keys.js';
import { loadConfig } from '../../src/config/load.js';
import { openPostgresStore, type PostgresStore } from '../../src/storage/postgres/postgres-store.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';

const SECRET = 'a-server-secret-of-at-least-32-characters-for-tests';
const OTHER_SECRET = 'another-server-secret-of-at-least-32-characters!!';

interface KeyRowText {
  kid: string;
  alg: string;
  public_jwk: Record<string, unknown>;
  private_jwk_encrypted: string;
  retire_at: string | null;
}

async function rows(store: PostgresStore): Promise<KeyRowText[]> {
  return store.withServerState(
    async (sql) =>
      (
        await sql.query<KeyRowText>(
          `SELECT kid, alg, public_jwk, private_jwk_encrypted, retire_at::text AS retire_at
           FROM oauth_keys ORDER BY created_at, kid`,
        )
      ).rows,
  );
}

async function sign(
  set: SigningKeySet,
  claims: Record<string, unknown> = { sub: 'user-1' },
): Promise<string> {
  const jwk = set.privateJwks[0];
  if (!jwk) throw new Error('the set has no signing key');
  const key = await importJWK(jwk, SIGNING_ALG);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: SIGNING_ALG, kid: jwk.kid ?? '' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);
}

async function verify(set: SigningKeySet, token: string): Promise<Record<string, unknown>> {
  const jwks = createLocalJWKSet({ keys: [...set.publicJwks] as JWK[] });
  return (await jwtVerify(token, jwks, { algorithms: [SIGNING_ALG] })).payload;
}

function keysSuite(
  open: () => Promise<{
    store: PostgresStore;
    openAnother: () => Promise<PostgresStore>;
    close: () => Promise<void>;
  }>,
): void {
  let store: PostgresStore;
  let openAnother: () => Promise<PostgresStore>;
  let close: () => Promise<void> = async () => {};

  beforeAll(async () => {
    ({ store, openAnother, close } = await open());
  });
  afterAll(async () => {
    await close();
  });
  // Every test starts from an empty table (they share one database).
  afterEach(async () => {
    await store.withServerState((sql) => sql.query('DELETE FROM oauth_keys'));
  });

  it('ensure creates exactly one active ES256 key and is idempotent', async () => {
    const keys = new KeyStore(store, SECRET);
    expect((await keys.load()).privateJwks).toEqual([]);
    const first = await keys.ensure();
    expect(first.privateJwks).toHaveLength(1);
    expect(first.publicJwks).toHaveLength(1);
    const [priv] = first.privateJwks;
    const [pub] = first.publicJwks;
    expect(priv).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(priv?.d).toEqual(expect.any(String));
    expect(pub).toEqual({
      kty: 'EC',
      crv: 'P-256',
      x: priv?.x,
      y: priv?.y,
      kid: priv?.kid,
      alg: 'ES256',
      use: 'sig',
    });

    const second = await keys.ensure();
    expect(second).toEqual(first);
    expect(await rows(store)).toHaveLength(1);
    const listed = await keys.list();
    expect(listed).toEqual([
      {
        kid: priv?.kid,
        alg: 'ES256',
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        retireAt: null,
        state: 'active',
      },
    ]);
  });

  it('two concurrent ensure() calls leave one key', async () => {
    const other = await openAnother();
    try {
      const a = new KeyStore(store, SECRET);
      const b = new KeyStore(other, SECRET);
      const [setA, setB, setC] = await Promise.all([a.ensure(), b.ensure(), a.ensure()]);
      expect(await rows(store)).toHaveLength(1);
      expect(setA.privateJwks).toHaveLength(1);
      expect(setB.publicJwks).toEqual(setA.publicJwks);
      expect(setC.version).toBe(setA.version);
    } finally {
      if (other !== store) await other.close();
    }
  });

  it('the private key is stored encrypted: no "d" in public_jwk, the ciphertext does not contain d', async () => {
    const set = await new KeyStore(store, SECRET).ensure();
    const d = set.privateJwks[0]?.d ?? '';
    expect(d.length).toBeGreaterThan(20);
    const [row] = await rows(store);
    expect(row?.public_jwk).not.toHaveProperty('d');
    expect(row?.alg).toBe('ES256');
    expect(row?.kid).toBe(set.privateJwks[0]?.kid);
    const stored = row?.private_jwk_encrypted ?? '';
    expect(stored).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(stored).not.toContain(d);
    expect(stored).not.toContain(Buffer.from(d, 'base64url').toString('hex'));
    expect(stored).not.toContain('"d"');
    // Nothing else in the table holds it either.
    const dump = JSON.stringify(await rows(store));
    expect(dump).not.toContain(d);
  });

  it('a token signed with the active private key verifies with the published public set', async () => {
    const set = await new KeyStore(store, SECRET).ensure();
    const token = await sign(set, { sub: 'user-1', scope: 'mcp' });
    expect(await verify(set, token)).toMatchObject({ sub: 'user-1', scope: 'mcp' });
    // A token signed by another key, even one claiming the published kid, does not verify.
    const { privateKey } = await generateKeyPair(SIGNING_ALG);
    const forged = await new SignJWT({ sub: 'user-1' })
      .setProtectedHeader({ alg: SIGNING_ALG, kid: set.publicJwks[0]?.kid ?? '' })
      .setExpirationTime('5m')
      .sign(privateKey);
    await expect(verify(set, forged)).rejects.toThrow(/signature verification failed/);
  });

  it('rotate: the new key signs first, the old one stays published with retire_at, old tokens still verify', async () => {
    const keys = new KeyStore(store, SECRET);
    const before = await keys.ensure();
    const oldKid = before.privateJwks[0]?.kid;
    const oldToken = await sign(before);

    const rotated = await keys.rotate(600);
    expect(rotated.kid).not.toBe(oldKid);
    expect(rotated.retiring).toEqual([oldKid]);

    const after = await keys.load();
    expect(after.privateJwks.map((k) => k.kid)).toEqual([rotated.kid, oldKid]);
    expect(after.publicJwks.map((k) => k.kid)).toEqual([rotated.kid, oldKid]);
    expect(after.publicJwks.every((k) => k.d === undefined)).toBe(true);
    expect(await verify(after, oldToken)).toMatchObject({ sub: 'user-1' });
    const newToken = await sign(after);
    expect(JSON.parse(Buffer.from(newToken.split('.')[0] ?? '', 'base64url').toString())).toMatchObject({
      kid: rotated.kid,
    });
    expect(await verify(after, newToken)).toMatchObject({ sub: 'user-1' });

    const listed = await keys.list();
    expect(listed.map((k) => [k.kid, k.state])).toEqual([
      [rotated.kid, 'active'],
      [oldKid, 'retiring'],
    ]);
    const retireAt = Date.parse(listed[1]?.retireAt ?? '');
    expect(retireAt).toBeGreaterThan(Date.now() + 590_000);
    expect(retireAt).toBeLessThan(Date.now() + 610_000);
    expect((await rows(store)).find((r) => r.kid === oldKid)?.retire_at).not.toBeNull();

    // ensure() after a rotation keeps the set as it is.
    expect((await keys.ensure()).version).toBe(after.version);

    // A second rotation retires the second key too; three keys are published, the newest first.
    const again = await keys.rotate(300);
    expect(again.retiring).toEqual([rotated.kid]);
    expect((await keys.load()).publicJwks.map((k) => k.kid)).toEqual([again.kid, oldKid, rotated.kid]);
  });

  it('rotate refuses an overlap that is not a whole number of seconds ≥ 1', async () => {
    const keys = new KeyStore(store, SECRET);
    await keys.ensure();
    for (const bad of [0, -5, 1.5, Number.NaN]) {
      await expect(keys.rotate(bad)).rejects.toThrow(/overlap must be a whole number of seconds/);
    }
    expect(await rows(store)).toHaveLength(1);
  });

  it('a key whose retire_at has passed disappears on load', async () => {
    const keys = new KeyStore(store, SECRET);
    const before = await keys.ensure();
    const oldKid = before.privateJwks[0]?.kid;
    const { kid } = await keys.rotate(3600);
    const withBoth = await keys.load();
    expect(withBoth.publicJwks).toHaveLength(2);

    await store.withServerState((sql) =>
      sql.query(`UPDATE oauth_keys SET retire_at = now() - interval '1 second' WHERE kid = $1`, [oldKid]),
    );
    // The version already leaves it out, so pollers notice.
    expect(await keys.currentVersion()).not.toBe(withBoth.version);
    const after = await keys.load();
    expect(after.publicJwks.map((k) => k.kid)).toEqual([kid]);
    expect(after.privateJwks.map((k) => k.kid)).toEqual([kid]);
    expect((await rows(store)).map((r) => r.kid)).toEqual([kid]);
    expect(await keys.currentVersion()).toBe(after.version);
  });

  it('ensure makes a new active key when only retiring keys are left', async () => {
    const keys = new KeyStore(store, SECRET);
    const before = await keys.ensure();
    await store.withServerState((sql) =>
      sql.query(`UPDATE oauth_keys SET retire_at = now() + interval '1 hour'`),
    );
    const after = await keys.ensure();
    expect(after.privateJwks).toHaveLength(2);
    expect(after.privateJwks[1]?.kid).toBe(before.privateJwks[0]?.kid);
    expect((await keys.list()).map((k) => k.state)).toEqual(['active', 'retiring']);
  });

  it('another server secret gets KeyDecryptionError, naming no key material or secret', async () => {
    const set = await new KeyStore(store, SECRET).ensure();
    const other = new KeyStore(store, OTHER_SECRET);
    const failure = await other.load().then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(KeyDecryptionError);
    const message = (failure as Error).message;
    expect(message).toMatch(/encrypted with another server secret.*MCP_SECRET_KEY/);
    expect(message).not.toContain(OTHER_SECRET);
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain(set.privateJwks[0]?.d ?? '-');
    await expect(other.ensure()).rejects.toBeInstanceOf(KeyDecryptionError);
    // A rotation under the wrong secret changes nothing (it would add a key the servers cannot read).
    await expect(other.rotate(60)).rejects.toBeInstanceOf(KeyDecryptionError);
    expect((await rows(store)).map((r) => [r.kid, r.retire_at])).toEqual([[set.privateJwks[0]?.kid, null]]);
    // list reads no key material, so it still works.
    expect(await other.list()).toHaveLength(1);
    // The right secret still reads them.
    expect((await new KeyStore(store, SECRET).load()).version).toBe(set.version);
  });

  it('version is stable while nothing changes and changes on rotate', async () => {
    const keys = new KeyStore(store, SECRET);
    const empty = await keys.currentVersion();
    const set = await keys.ensure();
    expect(set.version).not.toBe(empty);
    expect(await keys.currentVersion()).toBe(set.version);
    expect((await keys.load()).version).toBe(set.version);
    expect(await new KeyStore(store, SECRET).currentVersion()).toBe(set.version);

    await keys.rotate(600);
    const rotated = await keys.currentVersion();
    expect(rotated).not.toBe(set.version);
    expect((await keys.load()).version).toBe(rotated);
    expect(await keys.currentVersion()).toBe(rotated);

    // Moving a retire_at changes it too.
    await store.withServerState((sql) =>
      sql.query(
        `UPDATE oauth_keys SET retire_at = retire_at + interval '1 second' WHERE retire_at IS NOT NULL`,
      ),
    );
    expect(await keys.currentVersion()).not.toBe(rotated);
  });

  it('altered ciphertext, tag, IV or a ciphertext moved to another kid is refused', async () => {
    const keys = new KeyStore(store, SECRET);
    const set = await keys.ensure();
    const kid = set.privateJwks[0]?.kid ?? '';
    const [row] = await rows(store);
    const original = row?.private_jwk_encrypted ?? '';
    const [v, iv, tag, ct] = original.split('.') as [string, string, string, string];

    const flip = (part: string): string => {
      const bytes = Buffer.from(part, 'base64url');
      bytes[0] = (bytes[0] ?? 0) ^ 0x01;
      return bytes.toString('base64url');
    };
    const setStored = (text: string): Promise<unknown> =>
      store.withServerState((sql) =>
        sql.query('UPDATE oauth_keys SET private_jwk_encrypted = $2 WHERE kid = $1', [kid, text]),
      );

    for (const altered of [
      [v, iv, tag, flip(ct)].join('.'),
      [v, iv, flip(tag), ct].join('.'),
      [v, flip(iv), tag, ct].join('.'),
    ]) {
      await setStored(altered);
      await expect(keys.load()).rejects.toBeInstanceOf(KeyDecryptionError);
    }
    for (const malformed of ['v2.' + [iv, tag, ct].join('.'), [v, iv, tag].join('.'), 'garbage']) {
      await setStored(malformed);
      await expect(keys.load()).rejects.toThrow(/not in the v1\.<iv>\.<tag>\.<ciphertext> format/);
    }
    await setStored([v, iv, tag.slice(0, 8), ct].join('.'));
    await expect(keys.load()).rejects.toThrow(
      /malformed: expected a 12-byte IV, a 16-byte tag.*got 12, 6 and/,
    );

    // The kid is authenticated: the same ciphertext under another kid does not decrypt.
    await setStored(original);
    expect((await keys.load()).version).toBe(set.version);
    const movedKid = `moved-${randomBytes(4).toString('hex')}`;
    await store.withServerState((sql) =>
      sql.query(
        `INSERT INTO oauth_keys (kid, alg, public_jwk, private_jwk_encrypted, retire_at)
         SELECT $2, alg, public_jwk, private_jwk_encrypted, now() + interval '1 hour' FROM oauth_keys WHERE kid = $1`,
        [kid, movedKid],
      ),
    );
    await expect(keys.load()).rejects.toBeInstanceOf(KeyDecryptionError);
  });

  it('a stored public key that does not match its private half is refused', async () => {
    const keys = new KeyStore(store, SECRET);
    const set = await keys.ensure();
    const otherKey = (await new KeyStore(store, SECRET).rotate(60)).kid;
    const otherPublic = (await keys.load()).publicJwks.find((k) => k.kid === otherKey);
    await store.withServerState((sql) =>
      sql.query('UPDATE oauth_keys SET public_jwk = $2::jsonb WHERE kid = $1', [
        set.privateJwks[0]?.kid,
        JSON.stringify(otherPublic),
      ]),
    );
    await expect(keys.load()).rejects.toThrow(/does not match its public key/);
  });

  it('a short server secret is refused', () => {
    expect(() => new KeyStore(store, 'too-short')).toThrow(/at least 32 characters/);
  });
}

describe('signing keys on PGlite', () => {
  keysSuite(async () => {
    const store = await openPostgresStore(
      { kind: 'pglite', dataDir: null },
      { logger: quietLogger, vectorDimensions: null },
    );
    // PGlite is one in-process database: the concurrent calls share the store.
    return { store, openAnother: async () => store, close: () => store.close() };
  });
});

describeWithServer('signing keys on the PostgreSQL server', () => {
  let db: TestDatabase;
  keysSuite(async () => {
    db = await createTestDatabase();
    const openOne = (): Promise<PostgresStore> =>
      openPostgresStore(
        { kind: 'postgresql', connectionString: db.url, poolSize: 4 },
        { logger: quietLogger, vectorDimensions: null },
      );
    const store = await openOne();
    return {
      store,
      openAnother: openOne,
      close: async () => {
        await store.close();
        await db.drop();
      },
    };
  });
});

describe('mcp-pa keys (admin command) on PGlite', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'mcp-pa-keys-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const configFor = (env: Record<string, string> = {}) =>
    loadConfig({
      env: {
        MCP_MODE: 'http',
        MCP_DATA_DIR: dataDir,
        MCP_DATABASE_TYPE: 'pglite',
        MCP_TOKEN_EXPIRY: '600',
        ...env,
      },
    }).config;

  async function run(
    args: string[],
    env: Record<string, string> = {},
  ): Promise<{ code: number; out: string; err: string }> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await runKeysCommand(
      args,
      configFor(env),
      { stdin: new PassThrough(), stdout, stderr, stdinIsTerminal: false },
      quietLogger,
    );
    return { code, out, err };
  }

  it('rotate makes the first key, list shows it; a second rotate retires it for token_expiry + 300 s', async () => {
    expect(await run(['list'])).toMatchObject({ code: 0, out: expect.stringMatching(/No signing keys yet/) });
    // No secret configured: one is made in the data folder (0600) and used from then on.
    const secretFile = path.join(dataDir, 'secret.key');
    expect((await stat(secretFile)).mode & 0o777).toBe(0o600);
    const secret = (await readFile(secretFile, 'utf8')).trim();

    const first = await run(['rotate']);
    expect(first.code).toBe(0);
    const firstKid = /New signing key (\S+) is now active/.exec(first.out)?.[1];
    expect(firstKid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.out).toContain('There was no previous key.');
    expect(first.out).toContain('Running servers pick up the new key within 30 seconds.');

    const json = await run(['list', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual([
      { kid: firstKid, alg: 'ES256', createdAt: expect.any(String), retireAt: null, state: 'active' },
    ]);

    const before = Date.now();
    const second = await run(['rotate']);
    expect(second.code).toBe(0);
    const secondKid = /New signing key (\S+) is now active/.exec(second.out)?.[1];
    expect(secondKid).not.toBe(firstKid);
    const until = new RegExp(`previous key ${firstKid} stays published until (\\S+) \\(900 s\\)`).exec(
      second.out,
    )?.[1];
    expect(Date.parse(until ?? '')).toBeGreaterThanOrEqual(before + 895_000);
    expect(Date.parse(until ?? '')).toBeLessThanOrEqual(Date.now() + 905_000);
    expect(second.out).not.toMatch(/Warning/);

    const table = await run(['list']);
    expect(table.code).toBe(0);
    const lines = table.out.trim().split('\n');
    expect(lines[0]).toMatch(/^KID\s+ALG\s+STATE\s+CREATED\s+PUBLISHED UNTIL$/);
    expect(lines[1]).toMatch(new RegExp(`^${secondKid}\\s+ES256\\s+active\\s+\\S+Z\\s+-$`));
    expect(lines[2]).toMatch(new RegExp(`^${firstKid}\\s+ES256\\s+retiring\\s+\\S+Z\\s+${until}$`));

    // A short --overlap is honoured, with a warning that it is shorter than the token lifetime.
    const short = await run(['rotate', '--overlap', '30']);
    expect(short.code).toBe(0);
    expect(short.out).toMatch(new RegExp(`previous key ${secondKid} stays published until \\S+ \\(30 s\\)`));
    expect(short.out).toMatch(/Warning: the overlap is shorter than the access-token lifetime \(600 s\)/);

    // Another secret: refused with the fix, nothing changed, no secret in the output.
    const other = 'x'.repeat(40);
    const refused = await run(['rotate'], { MCP_SECRET_KEY: other });
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/encrypted with another server secret: set MCP_SECRET_KEY/);
    expect(refused.err + refused.out).not.toContain(other);
    expect(refused.err + refused.out).not.toContain(secret);
    const after = JSON.parse((await run(['list', '--json'])).out) as { kid: string }[];
    expect(after).toHaveLength(3);
    // The configured secret that matches works.
    expect((await run(['rotate', '--overlap', '5'], { MCP_SECRET_KEY: secret })).code).toBe(0);
  });

  it('usage errors exit 2 and name the problem', async () => {
    expect(await run([])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/a command is needed[\s\S]*usage:/),
    });
    expect(await run(['frobnicate'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown command "frobnicate"/),
    });
    for (const bad of ['0', '-1', '1.5', 'soon', '99999999999']) {
      const r = await run(['rotate', `--overlap=${bad}`]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(
        `--overlap must be a whole number of seconds from 1 to 31536000 (got "${bad}")`,
      );
    }
    expect((await run(['rotate', '--overlap'])).code).toBe(2);
    expect(await run(['list', '--yaml'])).toMatchObject({ code: 2, err: expect.stringMatching(/--yaml/) });
    expect(await run(['list', 'extra'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unexpected argument "extra"/),
    });
    expect(await run(['--help'])).toMatchObject({
      code: 0,
      out: expect.stringMatching(/mcp-pa keys rotate/),
    });
  });

  it('a database that cannot be planned exits 1 with the reason', async () => {
    const r = await run(['list'], { MCP_DATABASE_TYPE: 'postgresql' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no connection URL is set/);
  });
});
