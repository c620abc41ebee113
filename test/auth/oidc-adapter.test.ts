/**
 * The oidc-provider adapter on PostgreSQL (PGlite always; the real server when MCP_PA_TEST_DATABASE_URL is set):
 * every adapter method with the memory adapter's semantics, expiry, the expiry sweep, the table's closure to the
 * application role, and a real oidc-provider Provider saving and finding its records through the adapter.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOidcAdapterFactory,
  startSweeper,
  sweepExpired,
  type OidcAdapterClass,
} from '../../src/auth/oidc-adapter.js';
import type { PostgresStore } from '../../src/storage/postgres/postgres-store.js';
import { APP_ROLE } from '../../src/storage/postgres/schema.js';
import { describeWithServer, quietLogger, openPgliteStore, openServerStore } from '../support/postgres.js';

/** Fresh ids per test, so tests sharing one database never see each other's rows. */
const fresh = (prefix: string): string => `${prefix}-${randomUUID()}`;

async function rowCount(store: PostgresStore, where: string, params: unknown[]): Promise<number> {
  return store.withServerState(
    async (sql) =>
      (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM oauth_state WHERE ${where}`, params))
        .rows[0]?.n ?? -1,
  );
}

/** The parts of oidc-provider this test touches (the package ships no type declarations). */
interface ProviderModel {
  save(): Promise<string>;
  consume(): Promise<void>;
  jti: string;
  [key: string]: unknown;
}
interface ProviderModelClass {
  new (fields: Record<string, unknown>): ProviderModel;
  find(value: string): Promise<(ProviderModel & Record<string, unknown>) | undefined>;
}
interface ProviderInstance {
  Client: { find(id: string): Promise<unknown> };
  AccessToken: ProviderModelClass;
  RefreshToken: ProviderModelClass;
  Grant: {
    new (fields: Record<string, unknown>): { save(): Promise<string>; addOIDCScope(scope: string): void };
    find(id: string): Promise<Record<string, unknown> | undefined>;
  };
}
type ProviderConstructor = new (issuer: string, config: Record<string, unknown>) => ProviderInstance;

async function loadProvider(): Promise<ProviderConstructor> {
  const specifier: string = 'oidc-provider';
  return ((await import(specifier)) as { default: ProviderConstructor }).default;
}

function adapterSuite(open: () => Promise<{ store: PostgresStore; close: () => Promise<void> }>): void {
  let store: PostgresStore;
  let close: () => Promise<void>;
  let Adapter: OidcAdapterClass;

  beforeAll(async () => {
    ({ store, close } = await open());
    Adapter = createOidcAdapterFactory(store);
  });
  afterAll(async () => {
    await close();
  });

  it('upsert then find returns the payload; a missing id and another model find nothing', async () => {
    const tokens = new Adapter('AccessToken');
    const id = fresh('at');
    const payload = { jti: id, accountId: 'acc', scope: 'openid pa.read', iat: 1, nested: { a: [1, 'x'] } };
    await tokens.upsert(id, payload, 3600);
    expect(await tokens.find(id)).toEqual(payload);
    expect(await tokens.find(fresh('missing'))).toBeUndefined();
    expect(await new Adapter('RefreshToken').find(id)).toBeUndefined();
  });

  it('upsert replaces the payload, the lookup keys and the expiry', async () => {
    const sessions = new Adapter('Session');
    const id = fresh('sess');
    const oldUid = fresh('uid');
    const newUid = fresh('uid');
    await sessions.upsert(id, { uid: oldUid, accountId: 'one' }, -60);
    expect(await sessions.find(id)).toBeUndefined(); // expired
    await sessions.upsert(id, { uid: newUid, accountId: 'two' }, undefined);
    expect(await sessions.find(id)).toEqual({ uid: newUid, accountId: 'two' });
    expect(await sessions.findByUid(newUid)).toEqual({ uid: newUid, accountId: 'two' });
    expect(await sessions.findByUid(oldUid)).toBeUndefined();
    expect(await rowCount(store, 'model = $1 AND id = $2', ['Session', id])).toBe(1);
  });

  it('find honours the expiry: expired records are not found (but stay until swept)', async () => {
    const codes = new Adapter('AuthorizationCode');
    const live = fresh('code');
    const expired = fresh('code');
    const forever = fresh('code');
    await codes.upsert(live, { jti: live }, 600);
    await codes.upsert(expired, { jti: expired }, -1);
    await codes.upsert(forever, { jti: forever }, undefined);
    expect(await codes.find(live)).toEqual({ jti: live });
    expect(await codes.find(expired)).toBeUndefined();
    expect(await codes.find(forever)).toEqual({ jti: forever });
    expect(await rowCount(store, 'model = $1 AND id = $2', ['AuthorizationCode', expired])).toBe(1);
    const expiry = await store.withServerState(
      async (sql) =>
        (
          await sql.query<{ id: string; secs: number | null }>(
            `SELECT id, extract(epoch FROM expires_at - now())::float8 AS secs FROM oauth_state
             WHERE model = 'AuthorizationCode' AND id = ANY ($1::text[])`,
            [[live, forever]],
          )
        ).rows,
    );
    const secs = Object.fromEntries(expiry.map((r) => [r.id, r.secs]));
    expect(secs[forever]).toBeNull();
    // expiresIn is in seconds: 600 s ahead, not 600 ms (or 600 000 s).
    expect(secs[live]).toBeGreaterThan(500);
    expect(secs[live]).toBeLessThanOrEqual(600);
  });

  it('findByUserCode and findByUid find by their keys within the model, honouring expiry', async () => {
    const devices = new Adapter('DeviceCode');
    const id = fresh('dc');
    const userCode = fresh('UC');
    await devices.upsert(id, { jti: id, userCode, grantId: 'g' }, 600);
    expect(await devices.findByUserCode(userCode)).toMatchObject({ jti: id, userCode });
    expect(await devices.findByUserCode(fresh('UC'))).toBeUndefined();
    expect(await new Adapter('AccessToken').findByUserCode(userCode)).toBeUndefined();

    const sessions = new Adapter('Session');
    const sid = fresh('sess');
    const uid = fresh('uid');
    await sessions.upsert(sid, { uid, accountId: 'a' }, 600);
    expect(await sessions.findByUid(uid)).toEqual({ uid, accountId: 'a' });
    expect(await new Adapter('Interaction').findByUid(uid)).toBeUndefined();
    const oldUid = fresh('uid');
    await sessions.upsert(fresh('sess'), { uid: oldUid }, -5);
    expect(await sessions.findByUid(oldUid)).toBeUndefined();
  });

  it('consume stamps consumed (epoch seconds) and find still returns the record', async () => {
    const codes = new Adapter('AuthorizationCode');
    const id = fresh('code');
    await codes.upsert(id, { jti: id, accountId: 'a' }, 600);
    expect((await codes.find(id))?.consumed).toBeUndefined();
    const before = Math.floor(Date.now() / 1000);
    await codes.consume(id);
    const after = Math.floor(Date.now() / 1000);
    const found = await codes.find(id);
    expect(found).toMatchObject({ jti: id, accountId: 'a' });
    expect(Number.isInteger(found?.consumed)).toBe(true);
    expect(found?.consumed).toBeGreaterThanOrEqual(before);
    expect(found?.consumed).toBeLessThanOrEqual(after);
    const column = await store.withServerState(
      async (sql) =>
        (
          await sql.query<{ secs: number }>(
            `SELECT extract(epoch FROM consumed_at)::float8 AS secs FROM oauth_state WHERE model = $1 AND id = $2`,
            ['AuthorizationCode', id],
          )
        ).rows[0]?.secs,
    );
    expect(column).toBe(found?.consumed);
    // Consuming a record that does not exist changes nothing and does not create it.
    const ghost = fresh('code');
    await codes.consume(ghost);
    expect(await codes.find(ghost)).toBeUndefined();
  });

  it('destroy removes one record of one model only', async () => {
    const id = fresh('shared');
    const a = new Adapter('AccessToken');
    const r = new Adapter('RefreshToken');
    await a.upsert(id, { jti: id, kind: 'a' }, 600);
    await r.upsert(id, { jti: id, kind: 'r' }, 600);
    await a.destroy(id);
    expect(await a.find(id)).toBeUndefined();
    expect(await r.find(id)).toEqual({ jti: id, kind: 'r' });
    await a.destroy(id); // destroying again is fine
  });

  it('revokeByGrantId deletes every grant-bound record of that grant across models, and nothing else', async () => {
    const grant = fresh('grant');
    const other = fresh('grant');
    const made: Array<[string, string]> = [];
    for (const model of ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode']) {
      for (const g of [grant, other]) {
        const id = fresh(model);
        await new Adapter(model).upsert(id, { jti: id, grantId: g }, 600);
        made.push([model, id]);
      }
    }
    // The Grant record goes with its tokens (the resource server treats a JWT whose grant is gone as revoked);
    // an interaction mentioning the grant is not issued under it and stays.
    await new Adapter('Grant').upsert(grant, { jti: grant, accountId: 'a' }, 600);
    const interaction = fresh('int');
    await new Adapter('Interaction').upsert(interaction, { jti: interaction, grantId: grant }, 600);

    await new Adapter('AccessToken').revokeByGrantId(grant);

    for (const [model, id] of made) {
      const found = await new Adapter(model).find(id);
      const g = made.findIndex(([m, i]) => m === model && i === id) % 2 === 0 ? grant : other;
      if (g === grant) expect(found, `${model} ${id}`).toBeUndefined();
      else expect(found, `${model} ${id}`).toMatchObject({ grantId: other });
    }
    expect(await rowCount(store, 'grant_id = $1', [grant])).toBe(0);
    expect(await rowCount(store, 'grant_id = $1', [other])).toBe(4);
    expect(await new Adapter('Grant').find(grant)).toBeUndefined();
    expect(await new Adapter('Interaction').find(interaction)).toMatchObject({ grantId: grant });
  });

  it('sweepExpired deletes only rows expired at the given instant, in batches, and counts them', async () => {
    const model = fresh('SweepModel'); // a model of its own: other tests' rows never interfere
    const adapter = new Adapter(model);
    const soon: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = fresh('soon');
      soon.push(id);
      await adapter.upsert(id, { jti: id }, 60);
    }
    const later = fresh('later');
    const never = fresh('never');
    await adapter.upsert(later, { jti: later }, 3600);
    await adapter.upsert(never, { jti: never }, undefined);

    // Nothing of this model has expired yet. (Other tests' expired rows may go; count only ours.)
    await sweepExpired(store);
    expect(await rowCount(store, 'model = $1', [model])).toBe(7);

    const inTwoMinutes = new Date(Date.now() + 120_000);
    const deleted = await sweepExpired(store, inTwoMinutes, 2);
    expect(deleted).toBeGreaterThanOrEqual(5);
    const left = await store.withServerState(
      async (sql) =>
        (await sql.query<{ id: string }>('SELECT id FROM oauth_state WHERE model = $1 ORDER BY id', [model]))
          .rows,
    );
    expect(left.map((r) => r.id)).toEqual([later, never].sort());
    expect(await sweepExpired(store, inTwoMinutes, 2)).toBe(0);
    await expect(sweepExpired(store, new Date(), 0)).rejects.toThrow(/batch/);
  });

  it('startSweeper sweeps on its timer and stop() ends it', async () => {
    const model = fresh('TimerModel');
    const adapter = new Adapter(model);
    const gone = fresh('gone');
    await adapter.upsert(gone, { jti: gone }, -1);
    const sweeper = startSweeper(store, 5, quietLogger);
    try {
      await expect
        .poll(() => rowCount(store, 'model = $1 AND id = $2', [model, gone]), {
          timeout: 10_000,
          interval: 20,
        })
        .toBe(0);
    } finally {
      await sweeper.stop();
    }
    // After stop() nothing sweeps any more: an expired row stays.
    const kept = fresh('kept');
    await adapter.upsert(kept, { jti: kept }, -1);
    await new Promise((r) => setTimeout(r, 100));
    expect(await rowCount(store, 'model = $1 AND id = $2', [model, kept])).toBe(1);
    expect(() => startSweeper(store, 0, quietLogger)).toThrow(/interval/);
  });

  it('the application role (tenant code) can neither read nor change oauth_state; nor can PUBLIC', async () => {
    const id = fresh('secret');
    await new Adapter('AccessToken').upsert(id, { jti: id }, 600);
    await expect(
      store.withTenant('tenant-a', (sql) => sql.query('SELECT payload FROM oauth_state')),
    ).rejects.toThrow(/permission denied/);
    await expect(
      store.withTenant('tenant-a', (sql) => sql.query('DELETE FROM oauth_state WHERE id = $1', [id])),
    ).rejects.toThrow(/permission denied/);
    await expect(
      store.withTenant('tenant-a', (sql) =>
        sql.query(`INSERT INTO oauth_state (model, id, payload) VALUES ('AccessToken', 'x', '{}')`),
      ),
    ).rejects.toThrow(/permission denied/);
    const privileges = await store.withServerState(
      async (sql) =>
        (
          await sql.query<{ app: boolean; acl: string | null }>(
            `SELECT has_table_privilege($1, 'oauth_state',
                      'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') AS app,
                    (SELECT relacl::text FROM pg_class WHERE oid = 'oauth_state'::regclass) AS acl`,
            [APP_ROLE],
          )
        ).rows[0],
    );
    expect(privileges?.app).toBe(false);
    expect(privileges?.acl ?? '').not.toContain(APP_ROLE);
    expect(privileges?.acl ?? '').not.toMatch(/[{,]=/); // no entry for PUBLIC
    expect(await new Adapter('AccessToken').find(id)).toEqual({ jti: id });
  });

  it('bad ids and expiries are refused with a clear error', async () => {
    const a = new Adapter('AccessToken');
    await expect(a.upsert('', { jti: '' }, 1)).rejects.toThrow(/id must be a non-empty string/);
    await expect(a.upsert('x', { jti: 'x' }, Number.NaN)).rejects.toThrow(/expiresIn/);
    expect(() => new Adapter('')).toThrow(/model name/);
  });

  it('a real oidc-provider Provider saves, finds, consumes and revokes its records through the adapter', async () => {
    const Provider = await loadProvider();
    const provider = new Provider('http://127.0.0.1', {
      adapter: Adapter,
      clients: [
        {
          client_id: 'client-1',
          client_secret: 'a-secret-long-enough-for-the-test',
          redirect_uris: ['http://127.0.0.1/callback'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        },
      ],
    });
    const client = await provider.Client.find('client-1');
    expect(client).toBeDefined();

    const grant = new provider.Grant({ accountId: 'acc-1', clientId: 'client-1' });
    grant.addOIDCScope('openid');
    const grantId = await grant.save();
    expect(await provider.Grant.find(grantId)).toMatchObject({ accountId: 'acc-1', clientId: 'client-1' });

    const token = new provider.AccessToken({
      accountId: 'acc-1',
      client,
      grantId,
      scope: 'openid',
      gty: 'authorization_code',
    });
    const value = await token.save();
    const found = await provider.AccessToken.find(value);
    expect(found).toMatchObject({ accountId: 'acc-1', grantId, scope: 'openid', clientId: 'client-1' });
    expect(await rowCount(store, 'model = $1 AND grant_id = $2', ['AccessToken', grantId])).toBe(1);

    const refresh = new provider.RefreshToken({
      accountId: 'acc-1',
      client,
      grantId,
      scope: 'openid',
      gty: 'authorization_code',
    });
    const refreshValue = await refresh.save();
    const storedRefresh = await provider.RefreshToken.find(refreshValue);
    expect(storedRefresh?.['consumed']).toBeUndefined();
    await storedRefresh?.consume();
    expect((await provider.RefreshToken.find(refreshValue))?.['consumed']).toEqual(expect.any(Number));

    await new Adapter('AccessToken').revokeByGrantId(grantId);
    expect(await provider.AccessToken.find(value)).toBeUndefined();
    expect(await provider.RefreshToken.find(refreshValue)).toBeUndefined();
  });
}

describe('oidc adapter on PGlite', () => {
  adapterSuite(openPgliteStore);
});

describeWithServer('oidc adapter on the PostgreSQL server', () => {
  adapterSuite(openServerStore);
});
