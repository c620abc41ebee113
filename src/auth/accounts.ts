/**
 * HTTP mode's user accounts (the `users` table, schema migration 4). An account's id is the tenant id every tool
 * call of that user runs under (the subject of their tokens); the username is what they sign in with.
 *
 * Accounts are server state, not tenant data: this works as the login user through
 * PostgresStore.withServerState. Disabling an account or resetting its password also deletes, in the same
 * transaction, the authorization server's grants and sessions for it (and every code and token issued under those
 * grants), so apps connected with the old password lose access at once.
 */
import { randomBytes } from 'node:crypto';
import type { Sql } from '../storage/postgres/driver.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';
import { checkPassword, hashPassword, needsRehash, verifyPassword } from './passwords.js';

export interface Account {
  readonly id: string;
  readonly username: string;
  readonly disabled: boolean;
  /** ISO 8601. */
  readonly createdAt: string;
  /** ISO 8601, or null when the account has never signed in. */
  readonly lastLoginAt: string | null;
}

export type AccountErrorCode = 'invalid_username' | 'weak_password' | 'username_taken' | 'not_found';

/** A refused account operation; the message names the field and the rule, never a password. */
export class AccountError extends Error {
  constructor(
    readonly code: AccountErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AccountError';
  }
}

export const USERNAME_RULES = { minLength: 3, maxLength: 64 } as const;
const USERNAME_CHARS = /^[a-z0-9._@+-]*$/;
const USERNAME_RULE_TEXT =
  `${USERNAME_RULES.minLength}–${USERNAME_RULES.maxLength} characters of a–z, 0–9, . _ @ + - ` +
  'starting with a letter or digit';

/** The username as stored: NFKC-normalised, trimmed and lower-cased (checked by {@link checkUsername}). */
export function normalizeUsername(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase();
}

/** Why a (normalised) username is refused, or null when it is acceptable. */
export function checkUsername(username: string): string | null {
  const n = [...username].length;
  if (n < USERNAME_RULES.minLength || n > USERNAME_RULES.maxLength) {
    return `username must be ${USERNAME_RULE_TEXT} (got ${n} characters)`;
  }
  if (!USERNAME_CHARS.test(username)) {
    const bad = [...username].find((c) => !USERNAME_CHARS.test(c)) ?? '';
    return `username must be ${USERNAME_RULE_TEXT} (got ${JSON.stringify(bad)})`;
  }
  if (!/^[a-z0-9]/.test(username)) {
    return `username must be ${USERNAME_RULE_TEXT} (got ${JSON.stringify(username[0] ?? '')} first)`;
  }
  return null;
}

/**
 * An argon2id hash (today's parameters) of a random value nobody knows: verified against when the username is
 * unknown, so an unknown user takes as long to refuse as a wrong password (no timing oracle for usernames).
 */
export const DUMMY_HASH =
  '$argon2id$v=19$m=19456,t=2,p=1$m0ZHJ4k/EcPOokjDGqYUHw$6s1dCCO5UoT7lOSPP/hazq4b5dDdivDmv14twLvPOa8';

interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  disabled: boolean;
  created_at: string | Date;
  last_login_at: string | Date | null;
}

const ACCOUNT_COLUMNS = 'id, username, disabled, created_at, last_login_at';

function iso(value: string | Date): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

function toAccount(row: Omit<UserRow, 'password_hash'>): Account {
  return {
    id: row.id,
    username: row.username,
    disabled: row.disabled,
    createdAt: iso(row.created_at),
    lastLoginAt: row.last_login_at === null ? null : iso(row.last_login_at),
  };
}

/** PostgreSQL's unique_violation, from `pg` or PGlite. */
function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

function newAccountId(): string {
  return `u_${randomBytes(16).toString('base64url')}`;
}

/**
 * Deletes the authorization server's state for an account: its grants and sessions, and every row (codes,
 * tokens) issued under those grants, with their usage records.
 */
async function revokeAuthorizations(sql: Sql, accountId: string): Promise<void> {
  const grants = `SELECT id FROM oauth_state WHERE model = 'Grant' AND payload->>'accountId' = $1`;
  await sql.query(`DELETE FROM oauth_state WHERE grant_id IN (${grants})`, [accountId]);
  await sql.query(`DELETE FROM oauth_grant_usage WHERE grant_id IN (${grants})`, [accountId]);
  await sql.query(
    `DELETE FROM oauth_state WHERE model IN ('Grant', 'Session', 'AccountSession') AND payload->>'accountId' = $1`,
    [accountId],
  );
}

export class AccountStore {
  constructor(private readonly store: PostgresStore) {}

  /** Creates an account. Throws AccountError (invalid_username, weak_password, username_taken). */
  async create(username: string, password: string): Promise<Account> {
    const name = this.validUsername(username);
    this.checkNewPassword(password);
    const passwordHash = await hashPassword(password);
    try {
      return await this.store.withServerState(async (sql) => {
        const r = await sql.query<UserRow>(
          `INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3) RETURNING ${ACCOUNT_COLUMNS}`,
          [newAccountId(), name, passwordHash],
        );
        return toAccount(r.rows[0] as UserRow);
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new AccountError('username_taken', `username "${name}" is already taken: choose another`);
      }
      throw err;
    }
  }

  /**
   * The account when the username and password match an enabled account (its last login is stamped), null
   * otherwise. Always spends one argon2 verification, whether or not the username exists.
   */
  async authenticate(username: string, password: string): Promise<Account | null> {
    const name = typeof username === 'string' ? normalizeUsername(username) : '';
    const row =
      checkUsername(name) === null
        ? await this.store.withServerState(
            async (sql) =>
              (
                await sql.query<UserRow>(
                  `SELECT ${ACCOUNT_COLUMNS}, password_hash FROM users WHERE username = $1`,
                  [name],
                )
              ).rows[0],
          )
        : undefined;
    const pw = typeof password === 'string' ? password : '';
    const ok = await verifyPassword(row?.password_hash ?? DUMMY_HASH, pw);
    if (!row || !ok || row.disabled) return null;
    const rehash = needsRehash(row.password_hash) ? await hashPassword(pw) : null;
    return this.store.withServerState(async (sql) => {
      // Only if still enabled and with the same password: a disable or reset since the check wins.
      const r = await sql.query<UserRow>(
        `UPDATE users SET last_login_at = now(), password_hash = COALESCE($3, password_hash)
         WHERE id = $1 AND password_hash = $2 AND NOT disabled RETURNING ${ACCOUNT_COLUMNS}`,
        [row.id, row.password_hash, rehash],
      );
      const updated = r.rows[0];
      return updated ? toAccount(updated) : null;
    });
  }

  async findById(id: string): Promise<Account | null> {
    if (typeof id !== 'string' || id.length === 0) return null;
    return this.store.withServerState(async (sql) => {
      const r = await sql.query<UserRow>(`SELECT ${ACCOUNT_COLUMNS} FROM users WHERE id = $1`, [id]);
      return r.rows[0] ? toAccount(r.rows[0]) : null;
    });
  }

  async findByUsername(username: string): Promise<Account | null> {
    if (typeof username !== 'string') return null;
    const name = normalizeUsername(username);
    return this.store.withServerState(async (sql) => {
      const r = await sql.query<UserRow>(`SELECT ${ACCOUNT_COLUMNS} FROM users WHERE username = $1`, [name]);
      return r.rows[0] ? toAccount(r.rows[0]) : null;
    });
  }

  /** Every account, ordered by username. */
  async list(): Promise<Account[]> {
    return this.store.withServerState(async (sql) => {
      const r = await sql.query<UserRow>(`SELECT ${ACCOUNT_COLUMNS} FROM users ORDER BY username`);
      return r.rows.map(toAccount);
    });
  }

  /**
   * Disables or re-enables an account. Disabling also revokes its grants and sessions (see the module comment).
   * Throws AccountError invalid_username or not_found.
   */
  async setDisabled(username: string, disabled: boolean): Promise<Account> {
    const name = this.validUsername(username);
    return this.store.withServerState(async (sql) => {
      const r = await sql.query<UserRow>(
        `UPDATE users SET disabled = $2, updated_at = now() WHERE username = $1 RETURNING ${ACCOUNT_COLUMNS}`,
        [name, disabled],
      );
      const row = r.rows[0];
      if (!row) throw this.notFound(name);
      if (disabled) await revokeAuthorizations(sql, row.id);
      return toAccount(row);
    });
  }

  /**
   * Sets a new password and revokes the account's grants and sessions (the old password may be known to someone
   * else). Throws AccountError invalid_username, weak_password or not_found.
   */
  async resetPassword(username: string, password: string): Promise<Account> {
    const name = this.validUsername(username);
    this.checkNewPassword(password);
    const passwordHash = await hashPassword(password);
    return this.store.withServerState(async (sql) => {
      const r = await sql.query<UserRow>(
        `UPDATE users SET password_hash = $2, updated_at = now() WHERE username = $1 RETURNING ${ACCOUNT_COLUMNS}`,
        [name, passwordHash],
      );
      const row = r.rows[0];
      if (!row) throw this.notFound(name);
      await revokeAuthorizations(sql, row.id);
      return toAccount(row);
    });
  }

  async countUsers(): Promise<number> {
    return this.store.withServerState(async (sql) => {
      const r = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
      return r.rows[0]?.n ?? 0;
    });
  }

  private validUsername(username: string): string {
    if (typeof username !== 'string') {
      throw new AccountError('invalid_username', `username must be ${USERNAME_RULE_TEXT} (got no text)`);
    }
    const name = normalizeUsername(username);
    const problem = checkUsername(name);
    if (problem !== null) throw new AccountError('invalid_username', problem);
    return name;
  }

  private checkNewPassword(password: string): void {
    const problem = checkPassword(password);
    if (problem !== null) throw new AccountError('weak_password', problem);
  }

  private notFound(name: string): AccountError {
    return new AccountError('not_found', `no user named "${name}" (list them with: mcp-pa users list)`);
  }
}
