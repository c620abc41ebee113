/**
 * The oidc-provider storage adapter on the HTTP mode's PostgreSQL database (a real server or PGlite): every
 * record the authorization server keeps (grants, authorization codes, access and refresh tokens, sessions,
 * interactions, replay-detection entries…) is one row of `oauth_state` (schema migration 3), keyed by model name
 * and id, with the lookup keys oidc-provider asks for (grant id, user code, session uid) and the expiry in columns.
 *
 * It behaves as oidc-provider's own memory adapter does: a record is gone once its `expiresIn` seconds have
 * passed (find answers undefined; the sweep deletes it later), `consume` stamps `consumed` (epoch seconds) into
 * the payload, and `revokeByGrantId` deletes the codes and tokens issued under a grant whatever their model.
 *
 * oauth_state is not tenant data: the adapter works as the login user through PostgresStore.withServerState,
 * never under the application role, which holds no privilege on the table.
 */
import type { Logger } from '../observability/logger.js';
import { hashClientSecret, isHashedSecret } from './client-rules.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';

/** A record as oidc-provider hands it over: JSON, with a few well-known fields. */
export type AdapterPayload = Record<string, unknown> & {
  grantId?: string;
  userCode?: string;
  uid?: string;
  consumed?: number;
};

/** The interface oidc-provider calls on an adapter instance (one instance per model name). */
export interface OidcAdapter {
  upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void>;
  find(id: string): Promise<AdapterPayload | undefined>;
  findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
  findByUid(uid: string): Promise<AdapterPayload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

export type OidcAdapterClass = new (model: string) => OidcAdapter;

/**
 * The models whose records belong to a grant (as in oidc-provider's memory adapter): revokeByGrantId removes
 * them. Other models may carry a grantId (an Interaction, say) without being revoked with it.
 */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** Rows deleted per statement by the expiry sweep, so one sweep never holds a long lock. */
export const SWEEP_BATCH = 1000;

function optionalString(payload: AdapterPayload, field: 'grantId' | 'userCode' | 'uid'): string | null {
  const value = payload[field];
  return typeof value === 'string' && value.length > 0 ? value : null;
}

function checkId(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`oidc adapter: ${what} must be a non-empty string (got ${typeof value})`);
  }
}

/** The instant a record expires (null: never), from oidc-provider's expiresIn in seconds. */
function expiryFor(expiresIn: number | undefined, now: number): string | null {
  if (expiresIn === undefined || expiresIn === null) return null;
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn)) {
    throw new TypeError(
      `oidc adapter: expiresIn must be a number of seconds or undefined (got ${expiresIn})`,
    );
  }
  return new Date(now + expiresIn * 1000).toISOString();
}

/** Returns the class oidc-provider takes as its `adapter` option, storing records in the store's database. */
export function createOidcAdapterFactory(store: PostgresStore): OidcAdapterClass {
  /** One row lookup, honouring the expiry. */
  async function findWhere(
    model: string,
    column: 'id' | 'user_code' | 'uid',
    value: string,
  ): Promise<AdapterPayload | undefined> {
    const rows = await store.withServerState(
      async (sql) =>
        (
          await sql.query<{ payload: AdapterPayload }>(
            `SELECT payload FROM oauth_state
             WHERE model = $1 AND ${column} = $2 AND (expires_at IS NULL OR expires_at > $3::timestamptz)
             LIMIT 1`,
            [model, value, new Date().toISOString()],
          )
        ).rows,
    );
    return rows[0]?.payload;
  }

  return class PostgresOidcAdapter implements OidcAdapter {
    constructor(readonly model: string) {
      checkId('model name', model);
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void> {
      checkId('id', id);
      if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
        throw new TypeError('oidc adapter: payload must be an object');
      }
      // Client secrets are kept only as a digest (client-rules.ts); the caller's object is left as it was, so a
      // registration response still shows the secret once.
      if (
        this.model === 'Client' &&
        typeof payload['client_secret'] === 'string' &&
        !isHashedSecret(payload['client_secret'])
      ) {
        payload = { ...payload, client_secret: hashClientSecret(payload['client_secret']) };
      }
      const expiresAt = expiryFor(expiresIn, Date.now());
      const consumed = typeof payload.consumed === 'number' ? payload.consumed : null;
      await store.withServerState((sql) =>
        sql.query(
          `INSERT INTO oauth_state (model, id, payload, grant_id, user_code, uid, expires_at, consumed_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::timestamptz, to_timestamp($8::double precision))
           ON CONFLICT (model, id) DO UPDATE SET
             payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, user_code = EXCLUDED.user_code,
             uid = EXCLUDED.uid, expires_at = EXCLUDED.expires_at, consumed_at = EXCLUDED.consumed_at`,
          [
            this.model,
            id,
            JSON.stringify(payload),
            GRANTABLE.has(this.model) ? optionalString(payload, 'grantId') : null,
            optionalString(payload, 'userCode'),
            optionalString(payload, 'uid'),
            expiresAt,
            consumed,
          ],
        ),
      );
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (typeof id !== 'string' || id.length === 0) return undefined;
      return findWhere(this.model, 'id', id);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (typeof userCode !== 'string' || userCode.length === 0) return undefined;
      return findWhere(this.model, 'user_code', userCode);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (typeof uid !== 'string' || uid.length === 0) return undefined;
      return findWhere(this.model, 'uid', uid);
    }

    async consume(id: string): Promise<void> {
      checkId('id', id);
      const seconds = Math.floor(Date.now() / 1000);
      await store.withServerState((sql) =>
        sql.query(
          `UPDATE oauth_state
           SET payload = jsonb_set(payload, '{consumed}', to_jsonb($3::bigint)),
               consumed_at = to_timestamp($3::double precision)
           WHERE model = $1 AND id = $2`,
          [this.model, id, seconds],
        ),
      );
    }

    async destroy(id: string): Promise<void> {
      checkId('id', id);
      await store.withServerState((sql) =>
        sql.query('DELETE FROM oauth_state WHERE model = $1 AND id = $2', [this.model, id]),
      );
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      checkId('grantId', grantId);
      // The grant itself goes too: the resource server treats a JWT access token whose grant is gone as revoked.
      await store.withServerState((sql) =>
        sql.query(`DELETE FROM oauth_state WHERE grant_id = $1 OR (model = 'Grant' AND id = $1)`, [grantId]),
      );
    }
  };
}

/**
 * Deletes the records expired at `now`, in statements of at most `batch` rows (each its own transaction, so
 * the sweep never holds locks for long). Returns how many rows it deleted.
 */
export async function sweepExpired(
  store: PostgresStore,
  now: Date = new Date(),
  batch: number = SWEEP_BATCH,
): Promise<number> {
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(`sweep batch must be a whole number of at least 1 (got ${batch})`);
  }
  const at = now.toISOString();
  let total = 0;
  for (;;) {
    const deleted = await store.withServerState(
      async (sql) =>
        (
          await sql.query(
            `DELETE FROM oauth_state WHERE (model, id) IN (
               SELECT model, id FROM oauth_state WHERE expires_at <= $1::timestamptz LIMIT $2)`,
            [at, batch],
          )
        ).rowCount,
    );
    total += deleted;
    if (deleted < batch) return total;
  }
}

export interface Sweeper {
  /** Stops the timer and waits for a sweep in progress to end. */
  stop(): Promise<void>;
}

/**
 * Runs sweepExpired every `intervalMs` milliseconds (never two at once; a failure is logged and the next
 * interval tries again). The timer does not keep the process alive.
 */
export function startSweeper(store: PostgresStore, intervalMs: number, logger: Logger): Sweeper {
  if (!Number.isInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(`sweep interval must be a whole number of milliseconds ≥ 1 (got ${intervalMs})`);
  }
  let running: Promise<void> | null = null;
  let stopped = false;
  const tick = (): void => {
    if (running || stopped) return;
    running = sweepExpired(store)
      .then((deleted) => {
        if (deleted > 0) logger.debug({ deleted }, 'expired authorization-server records deleted');
      })
      .catch((err: unknown) => {
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'could not delete expired authorization-server records; will retry',
        );
      })
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (running) await running;
    },
  };
}
