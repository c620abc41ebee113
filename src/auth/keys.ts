/**
 * The authorization server's signing keys (HTTP mode), kept in `oauth_keys` (schema migration 4) so every
 * replica signs and verifies with the same set.
 *
 * Keys are ES256 (P-256). The public half is stored as a JWK; the private half is stored encrypted with
 * AES-256-GCM under a key derived from the server secret (`deriveKey(secret, 'signing-key-encryption')`), with a
 * random 12-byte IV and the kid as additional authenticated data, as `v1.<iv>.<tag>.<ciphertext>` (base64url).
 * A database copy without the server secret therefore yields no usable signing key, and a row's ciphertext cannot
 * be moved to another kid.
 *
 * A key whose retire_at is NULL is active (it signs). A key whose retire_at lies ahead is retiring: still
 * published so tokens it signed verify, but no longer used to sign. A key whose retire_at has passed is deleted
 * the next time the set is loaded. `rotate` makes a new active key and gives the previous one a retire_at
 * `overlap` seconds ahead.
 *
 * The table is server state: every statement runs as the login user through PostgresStore.withServerState.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Sql } from '../storage/postgres/driver.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';
import { deriveKey } from './secret.js';

export const SIGNING_ALG = 'ES256';

/** The longest overlap rotate accepts: one year. */
export const MAX_OVERLAP_SECONDS = 365 * 24 * 3600;

/**
 * Taken with pg_advisory_xact_lock while creating or rotating keys, so replicas starting together (or a rotation
 * racing a start) never make two active keys. Distinct from the migration lock.
 */
const KEYS_LOCK = '7362813509450229';

const ENCRYPTION_VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface SigningKeySet {
  /**
   * Private JWKs (kid, alg 'ES256', use 'sig', kty/crv/x/y/d) for oidc-provider's `jwks` option: the active key
   * first, then retiring ones (oidc-provider signs with the first usable key).
   */
  readonly privateJwks: readonly JWK[];
  /** The same keys without private parts, for the resource server. */
  readonly publicJwks: readonly JWK[];
  /** Changes whenever the set changes (its kids and retire_at values), so servers can poll cheaply. */
  readonly version: string;
}

export interface SigningKeyInfo {
  kid: string;
  alg: string;
  /** ISO 8601, UTC. */
  createdAt: string;
  /** ISO 8601, UTC; null while the key is active. */
  retireAt: string | null;
  state: 'active' | 'retiring';
}

/** The stored keys cannot be decrypted with this server secret (or a ciphertext was altered). */
export class KeyDecryptionError extends Error {
  constructor(readonly kid?: string) {
    super(
      'the keys in the database were encrypted with another server secret: set MCP_SECRET_KEY to the secret ' +
        'they were made with (or, to start over, delete the rows of oauth_keys — every issued token then stops working)',
    );
    this.name = 'KeyDecryptionError';
  }
}

/** A row of oauth_keys as the queries below select it (instants as ISO 8601 text). */
interface KeyRow {
  kid: string;
  alg: string;
  public_jwk: JWK;
  private_jwk_encrypted: string;
  created_at: string;
  /** Microsecond precision, for the version. */
  retire_at: string | null;
  /** Millisecond precision, for display. */
  retire_at_ms: string | null;
}

const ISO_US = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
const ISO_MS = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const iso = (column: string, format: string): string => `to_char(${column} AT TIME ZONE 'UTC', ${format})`;

const LIVE = 'retire_at IS NULL OR retire_at > now()';

const SELECT_KEYS = `SELECT kid, alg, public_jwk, private_jwk_encrypted,
    ${iso('created_at', ISO_MS)} AS created_at,
    ${iso('retire_at', ISO_US)} AS retire_at,
    ${iso('retire_at', ISO_MS)} AS retire_at_ms
  FROM oauth_keys WHERE ${LIVE}`;

/** The version of a set: sha256 over its kids and retire_at values, in kid order. */
function versionOf(rows: readonly { kid: string; retire_at: string | null }[]): string {
  const lines = rows.map((r) => `${r.kid} ${r.retire_at ?? 'active'}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('base64url');
}

/** Active keys first (newest first), then retiring ones (latest retire_at first). */
function signingOrder(a: KeyRow, b: KeyRow): number {
  if (a.retire_at === null && b.retire_at !== null) return -1;
  if (a.retire_at !== null && b.retire_at === null) return 1;
  if (a.retire_at !== null && b.retire_at !== null && a.retire_at !== b.retire_at) {
    return a.retire_at < b.retire_at ? 1 : -1;
  }
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.kid < b.kid ? -1 : 1;
}

function isEcPublicJwk(value: unknown): value is JWK & { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  if (value === null || typeof value !== 'object') return false;
  const jwk = value as Record<string, unknown>;
  return (
    jwk['kty'] === 'EC' &&
    jwk['crv'] === 'P-256' &&
    typeof jwk['x'] === 'string' &&
    typeof jwk['y'] === 'string' &&
    !('d' in jwk)
  );
}

function encrypt(plaintext: string, key: Buffer, kid: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [ENCRYPTION_VERSION, iv, tag, ciphertext]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

function decrypt(stored: string, key: Buffer, kid: string): string {
  const parts = stored.split('.');
  const [version, ivText, tagText, ciphertextText] = parts;
  if (
    parts.length !== 4 ||
    version !== ENCRYPTION_VERSION ||
    ivText === undefined ||
    tagText === undefined ||
    ciphertextText === undefined
  ) {
    throw new Error(
      `signing key ${kid}: the stored private key is not in the ${ENCRYPTION_VERSION}.<iv>.<tag>.<ciphertext> format`,
    );
  }
  const iv = Buffer.from(ivText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  const ciphertext = Buffer.from(ciphertextText, 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES || ciphertext.length === 0) {
    throw new Error(
      `signing key ${kid}: the stored private key is malformed: expected a ${IV_BYTES}-byte IV, a ${TAG_BYTES}-byte ` +
        `tag and a ciphertext (got ${iv.length}, ${tag.length} and ${ciphertext.length} bytes)`,
    );
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch {
    // The only failure here is the authentication check: another secret, or altered bytes.
    throw new KeyDecryptionError(kid);
  }
}

/**
 * JSON.parse, answering undefined for text that is not JSON. Its error is dropped on purpose: the message of a
 * SyntaxError quotes the text, which here is private key material.
 */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Makes a new ES256 key pair: its kid, the public JWK to store and the private JWK to encrypt. */
async function generateSigningKey(): Promise<{ kid: string; publicJwk: JWK; privateJwk: JWK }> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const exported = await exportJWK(privateKey);
  const { kty, crv, x, y, d } = exported;
  if (kty !== 'EC' || crv !== 'P-256' || !x || !y || !d) {
    throw new Error('the generated signing key is not a P-256 EC key');
  }
  const kid = await calculateJwkThumbprint({ kty, crv, x, y }, 'sha256');
  const publicJwk: JWK = { kty, crv, x, y, kid, alg: SIGNING_ALG, use: 'sig' };
  return { kid, publicJwk, privateJwk: { ...publicJwk, d } };
}

export class KeyStore {
  private readonly encryptionKey: Buffer;

  constructor(
    private readonly store: PostgresStore,
    secret: string,
  ) {
    this.encryptionKey = deriveKey(secret, 'signing-key-encryption');
  }

  /**
   * Loads the set, first creating one active ES256 key when there is no active key. Safe when several replicas
   * start at once (an advisory lock serialises the check and the creation). Deletes keys past retire_at.
   */
  async ensure(): Promise<SigningKeySet> {
    return this.store.withServerState(async (sql) => {
      await sql.query(`SELECT pg_advisory_xact_lock(${KEYS_LOCK})`);
      let rows = await this.liveRows(sql);
      if (!rows.some((r) => r.retire_at === null)) {
        // Existing (retiring) keys must decrypt with this secret before a key is added under it.
        this.decryptAll(rows);
        await this.insertNewKey(sql);
        rows = await this.liveRows(sql);
      }
      return this.toSet(rows);
    });
  }

  /** Reads the set (deleting keys past retire_at); creates nothing. The set is empty when there are no keys. */
  async load(): Promise<SigningKeySet> {
    return this.store.withServerState(async (sql) => this.toSet(await this.liveRows(sql)));
  }

  /** The set's version only, in one small query (keys past retire_at are left out, not deleted). */
  async currentVersion(): Promise<string> {
    return this.store.withServerState(async (sql) =>
      versionOf(
        (
          await sql.query<{ kid: string; retire_at: string | null }>(
            `SELECT kid, ${iso('retire_at', ISO_US)} AS retire_at FROM oauth_keys WHERE ${LIVE}`,
          )
        ).rows,
      ),
    );
  }

  /**
   * Makes a new active key; the previously active key(s) get retire_at = now + overlapSeconds. Refuses (changing
   * nothing) when the stored keys do not decrypt with this secret, so a misconfigured secret never adds a key
   * the running servers cannot read. Returns the new kid and the kids now retiring.
   */
  async rotate(overlapSeconds: number): Promise<{ kid: string; retiring: string[] }> {
    if (!Number.isInteger(overlapSeconds) || overlapSeconds < 1 || overlapSeconds > MAX_OVERLAP_SECONDS) {
      throw new RangeError(
        `overlap must be a whole number of seconds from 1 to ${MAX_OVERLAP_SECONDS} (got ${overlapSeconds})`,
      );
    }
    return this.store.withServerState(async (sql) => {
      await sql.query(`SELECT pg_advisory_xact_lock(${KEYS_LOCK})`);
      this.decryptAll(await this.liveRows(sql));
      const retiring = (
        await sql.query<{ kid: string }>(
          `UPDATE oauth_keys SET retire_at = now() + make_interval(secs => $1::double precision)
           WHERE retire_at IS NULL RETURNING kid`,
          [overlapSeconds],
        )
      ).rows
        .map((r) => r.kid)
        .sort();
      const kid = await this.insertNewKey(sql);
      return { kid, retiring };
    });
  }

  /** The keys (no key material), active first; deletes keys past retire_at. */
  async list(): Promise<SigningKeyInfo[]> {
    return this.store.withServerState(async (sql) =>
      (await this.liveRows(sql)).map((r) => ({
        kid: r.kid,
        alg: r.alg,
        createdAt: r.created_at,
        retireAt: r.retire_at_ms,
        state: r.retire_at === null ? 'active' : 'retiring',
      })),
    );
  }

  /** Deletes the keys past retire_at, then reads the others in signing order. */
  private async liveRows(sql: Sql): Promise<KeyRow[]> {
    await sql.query('DELETE FROM oauth_keys WHERE retire_at <= now()');
    return (await sql.query<KeyRow>(SELECT_KEYS)).rows.sort(signingOrder);
  }

  private async insertNewKey(sql: Sql): Promise<string> {
    const { kid, publicJwk, privateJwk } = await generateSigningKey();
    await sql.query(
      `INSERT INTO oauth_keys (kid, alg, public_jwk, private_jwk_encrypted) VALUES ($1, $2, $3::jsonb, $4)`,
      [
        kid,
        SIGNING_ALG,
        JSON.stringify(publicJwk),
        encrypt(JSON.stringify(privateJwk), this.encryptionKey, kid),
      ],
    );
    return kid;
  }

  /** The private JWK of each row, checked against its public half. */
  private decryptAll(rows: readonly KeyRow[]): JWK[] {
    return rows.map((row) => {
      if (row.alg !== SIGNING_ALG) {
        throw new Error(
          `signing key ${row.kid} has algorithm ${row.alg}; this mcp-pa supports ${SIGNING_ALG} only`,
        );
      }
      if (!isEcPublicJwk(row.public_jwk)) {
        throw new Error(`signing key ${row.kid}: the stored public key is not a P-256 EC public JWK`);
      }
      const parsed = parseJson(decrypt(row.private_jwk_encrypted, this.encryptionKey, row.kid));
      if (parsed === undefined) {
        throw new Error(`signing key ${row.kid}: the decrypted private key is not JSON`);
      }
      const d = (parsed as { d?: unknown } | null)?.d;
      const priv = parsed as Record<string, unknown> | null;
      if (
        typeof d !== 'string' ||
        priv?.['x'] !== row.public_jwk.x ||
        priv?.['y'] !== row.public_jwk.y ||
        priv?.['kid'] !== row.kid
      ) {
        throw new Error(`signing key ${row.kid}: the private key does not match its public key`);
      }
      return { ...row.public_jwk, kid: row.kid, alg: SIGNING_ALG, use: 'sig', d };
    });
  }

  private toSet(rows: readonly KeyRow[]): SigningKeySet {
    const privateJwks = this.decryptAll(rows);
    const publicJwks = rows.map((r): JWK => ({ ...r.public_jwk, kid: r.kid, alg: SIGNING_ALG, use: 'sig' }));
    return { privateJwks, publicJwks, version: versionOf(rows) };
  }
}
