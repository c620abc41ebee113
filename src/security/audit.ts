/**
 * The audit trail of HTTP mode: security-relevant events (sign-ins, tokens, consents, clients, refusals at /mcp,
 * rate limits, key rotations…), each written at once as one JSON log line (msg 'audit') and, batched, as one row of
 * `audit_events` (schema migration 5); and hourly /mcp request counts per tenant and client in
 * `audit_usage_hourly`.
 *
 * - record() is synchronous and never throws: the request that caused an event never waits for, or fails
 *   because of, the trail. Rows are queued in memory and written every second (one multi-row INSERT per batch of
 *   at most 500). While the database is down they stay queued, at most `maxQueue` of them (the oldest are dropped
 *   with a warning counting them); close() writes whatever is left.
 * - Nothing secret is kept: a detail whose key looks secret (password, secret, token, code, assertion,
 *   authorization, cookie) is dropped, strings are cut to 500 characters, and tokens appear only as a hash
 *   chosen by the caller (`tokenHash`).
 * - audit_events is append-only in the database itself: a trigger refuses UPDATE and TRUNCATE, and DELETE except
 *   in a transaction that set `mcp_pa.audit_prune` (SET LOCAL), which only prune() does.
 * - Incident rules watch the events as they are recorded and add a `security.incident` event (never triggering
 *   further incidents): `refresh_reuse` (every refresh-token reuse), `failure_burst` (an address producing many
 *   authentication failures quickly; once per address per window) and `token_spread` (one token presented from
 *   several addresses; once per token). Their memory is bounded (least recently seen entries are forgotten).
 *
 * The tables are server state: every statement runs as the login user through PostgresStore.withServerState.
 */
import type { Logger } from '../observability/logger.js';
import type { Sql } from '../storage/postgres/driver.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';
import { AUDIT_PRUNE_SETTING } from '../storage/postgres/schema.js';
import { clip, storable, unstorableReason } from '../unicode.js';

export const AUDIT_EVENT_TYPES = [
  'auth.sign_in.success',
  'auth.sign_in.failure',
  'auth.lockout',
  'auth.client_auth.failure',
  'token.issued',
  'token.refreshed',
  'token.revoked',
  'token.refresh_reuse',
  'consent.granted',
  'consent.revoked',
  'client.registered',
  'client.removed',
  'mcp.unauthorized',
  'mcp.forbidden',
  'mcp.not_found',
  'rate_limit.hit',
  'csrf.failure',
  'keys.rotated',
  'config.error',
  'security.incident',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export type AuditDetail = string | number | boolean | null;

export interface AuditEvent {
  readonly type: AuditEventType;
  readonly requestId?: string | undefined;
  /** The tenant (account id) the event concerns. */
  readonly tenant?: string | undefined;
  readonly clientId?: string | undefined;
  /** The client's address (src/security/client-address.ts). */
  readonly ip?: string | undefined;
  /** A hash identifying a token (never the token itself). */
  readonly tokenHash?: string | undefined;
  readonly details?: Readonly<Record<string, AuditDetail>> | undefined;
}

export interface StoredAuditEvent extends AuditEvent {
  /** The row id (a bigint, as text). */
  readonly id: string;
  /** ISO 8601, UTC, millisecond precision. */
  readonly at: string;
}

export interface IncidentSettings {
  /** failure_burst: this many failures from one address… */
  failureBurst: number;
  /** …within this many seconds. */
  failureWindowS: number;
  /** token_spread: one token hash seen from this many distinct addresses… */
  tokenAddresses: number;
  /** …within this many seconds. */
  tokenWindowS: number;
}

export const DEFAULT_INCIDENT_SETTINGS: Readonly<IncidentSettings> = {
  failureBurst: 20,
  failureWindowS: 60,
  tokenAddresses: 3,
  tokenWindowS: 600,
};

export interface AuditLogOptions {
  /** Null: events are only logged (no database). */
  store: PostgresStore | null;
  logger: Logger;
  /** Events (and usage rows) older than this many days are deleted by prune(). */
  retentionDays: number;
  /** How often queued rows are written (default 1000 ms; 0: only when flush() or close() is called). */
  flushIntervalMs?: number;
  /** The most events (and usage counters) kept in memory while the database cannot be written (default 10000). */
  maxQueue?: number;
  incidents?: Partial<IncidentSettings>;
  /** The clock (tests). */
  now?: () => Date;
  /** Told of every event recorded (after cleaning): the metrics count them by type. */
  onEvent?: (type: AuditEventType, details: Readonly<Record<string, AuditDetail>>) => void;
}

/** Types whose events count towards failure_burst. */
const FAILURE_TYPES: ReadonlySet<AuditEventType> = new Set<AuditEventType>([
  'auth.sign_in.failure',
  'auth.client_auth.failure',
  'mcp.unauthorized',
  'csrf.failure',
]);

const KNOWN_TYPES: ReadonlySet<string> = new Set<string>(AUDIT_EVENT_TYPES);

/** A detail whose key contains one of these (any case) is dropped. */
const SECRET_KEY = /password|secret|token|code|assertion|authorization|cookie/i;

/** Longest string kept (values and fields); longer ones are cut. */
export const MAX_STRING = 500;
/** Most details kept per event, and the longest detail key. */
const MAX_DETAILS = 50;
const MAX_KEY = 100;
/** Rows per INSERT statement. */
const INSERT_BATCH = 500;
/** Rows per DELETE statement (each its own transaction) while pruning. */
const PRUNE_BATCH = 5000;
/** Addresses and tokens the incident rules remember at most (the least recently seen are forgotten). */
const MAX_TRACKED = 10_000;
/** Most rows queryAudit returns. */
export const MAX_QUERY_LIMIT = 100_000;
const DEFAULT_QUERY_LIMIT = 1000;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A queued row of audit_events. */
interface Row {
  at: string;
  type: AuditEventType;
  requestId: string | null;
  tenant: string | null;
  clientId: string | null;
  ip: string | null;
  tokenHash: string | null;
  details: string;
}

/** A sanitised event: the fields as they are logged and stored. */
interface Clean {
  type: AuditEventType;
  requestId: string | undefined;
  tenant: string | undefined;
  clientId: string | undefined;
  ip: string | undefined;
  tokenHash: string | undefined;
  details: Record<string, AuditDetail>;
}

/** A string as it is kept: storable (no NUL, no lone surrogate) and at most MAX_STRING long, never cut mid-pair. */
function cut(value: string): string {
  return clip(storable(value), MAX_STRING);
}

function field(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? cut(value) : undefined;
}

function cleanDetails(details: unknown): Record<string, AuditDetail> {
  const out: Record<string, AuditDetail> = {};
  if (details === null || typeof details !== 'object' || Array.isArray(details)) return out;
  let kept = 0;
  for (const [key, value] of Object.entries(details as Record<string, unknown>)) {
    if (kept >= MAX_DETAILS) break;
    if (key.length === 0 || key.length > MAX_KEY || SECRET_KEY.test(key) || unstorableReason(key)) continue;
    if (typeof value === 'string') out[key] = cut(value);
    else if (typeof value === 'number') out[key] = Number.isFinite(value) ? value : null;
    else if (typeof value === 'boolean' || value === null) out[key] = value;
    else continue;
    kept++;
  }
  return out;
}

/** Whole number check for options, with a clear error. */
function checkInteger(name: string, value: number, min: number, max: number = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `audit: ${name} must be a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`} (got ${value})`,
    );
  }
}

/** A Map used as a least-recently-used cache of at most `cap` entries. */
function touch<K, V>(map: Map<K, V>, key: K, value: V, cap: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > cap) {
    const oldest = map.keys().next();
    if (oldest.done === true) break;
    map.delete(oldest.value);
  }
}

function errorText(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' ? `${message} (${code})` : message;
}

export class AuditLog {
  readonly logger: Logger;
  private readonly eventLogger: Logger;
  private readonly store: PostgresStore | null;
  private readonly onEvent: AuditLogOptions['onEvent'];
  private readonly retentionDays: number;
  private readonly maxQueue: number;
  private readonly incidents: Readonly<IncidentSettings>;
  private readonly now: () => Date;
  private readonly timer: NodeJS.Timeout | null;
  private queue: Row[] = [];
  /** Usage counters not yet written: key `hour\ntenant\nclient` → requests. */
  private usage = new Map<string, number>();
  private droppedEvents = 0;
  private droppedUsage = 0;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  /** failure_burst: per address, the times (ms) of its latest failures (at most failureBurst) and when it fired. */
  private readonly failures = new Map<string, { times: number[]; firedAt: number | null }>();
  /** token_spread: per token hash, when each address last presented it. */
  private readonly tokenAddresses = new Map<string, Map<string, number>>();
  /** token_spread: tokens it fired for (once per token). */
  private readonly spreadFired = new Map<string, true>();

  constructor(options: AuditLogOptions) {
    checkInteger('retentionDays', options.retentionDays, 1, 3650);
    const flushIntervalMs = options.flushIntervalMs ?? 1000;
    checkInteger('flushIntervalMs', flushIntervalMs, 0);
    this.maxQueue = options.maxQueue ?? 10_000;
    checkInteger('maxQueue', this.maxQueue, 1);
    const incidents = { ...DEFAULT_INCIDENT_SETTINGS, ...options.incidents };
    checkInteger('incidents.failureBurst', incidents.failureBurst, 1);
    checkInteger('incidents.failureWindowS', incidents.failureWindowS, 1);
    checkInteger('incidents.tokenAddresses', incidents.tokenAddresses, 2);
    checkInteger('incidents.tokenWindowS', incidents.tokenWindowS, 1);
    this.incidents = incidents;
    this.store = options.store;
    this.logger = options.logger;
    this.onEvent = options.onEvent;
    // Audit lines are written at info, but are kept even when the log level is warn or error (only "silent"
    // silences them): an operator turning logs down must not lose the security trail from the stream.
    const level = options.logger.level;
    this.eventLogger =
      level === 'silent' || options.logger.isLevelEnabled('info')
        ? options.logger
        : options.logger.child({}, { level: 'info' });
    this.retentionDays = options.retentionDays;
    this.now = options.now ?? (() => new Date());
    if (flushIntervalMs > 0 && this.store !== null) {
      this.timer = setInterval(() => void this.flush(), flushIntervalMs);
      this.timer.unref();
    } else {
      this.timer = null;
    }
  }

  /**
   * Records one event: validates the type, drops details whose key looks secret, cuts strings to 500 characters,
   * writes one JSON log line (info, msg 'audit', an `audit` object), queues the row and runs the incident rules.
   * Synchronous; never throws.
   */
  record(event: AuditEvent): void {
    try {
      this.recordOne(event, true);
    } catch (err) {
      try {
        this.logger.warn({ err: errorText(err) }, 'could not record an audit event');
      } catch {
        // Nothing more can be done without throwing at the caller.
      }
    }
  }

  /** Counts one /mcp request for the hourly usage counters (written on flush, added to the stored count). */
  /**
   * A token accepted at /mcp from an address: no event is written (that would be one row per request), but the
   * token_spread rule sees it, so a stolen token used successfully from several addresses raises an incident.
   */
  observeToken(tokenHash: string, ip: string, who: { tenant?: string; clientId?: string } = {}): void {
    if (typeof tokenHash !== 'string' || typeof ip !== 'string' || tokenHash === '' || ip === '') return;
    const event: Clean = {
      type: 'mcp.unauthorized',
      requestId: undefined,
      tenant: who.tenant,
      clientId: who.clientId,
      ip,
      tokenHash,
      details: {},
    };
    this.tokenSpread(event, tokenHash, ip, this.now().getTime());
  }

  countUsage(tenant: string, clientId: string | undefined): void {
    if (this.closed || this.store === null || typeof tenant !== 'string' || tenant.length === 0) return;
    const hour = new Date(Math.floor(this.now().getTime() / HOUR_MS) * HOUR_MS).toISOString();
    const key = `${hour}\n${cut(tenant)}\n${typeof clientId === 'string' ? cut(clientId) : ''}`;
    const count = this.usage.get(key);
    if (count !== undefined) {
      this.usage.set(key, count + 1);
    } else if (this.usage.size >= this.maxQueue) {
      this.droppedUsage++;
    } else {
      this.usage.set(key, 1);
    }
  }

  /**
   * Writes everything queued: events in INSERTs of at most 500 rows, then the usage counters as upserts. On a
   * database error the rows stay queued (at most maxQueue) and a warning is logged (without their contents); the
   * returned promise does not reject. Calls run one after another.
   */
  flush(): Promise<void> {
    const run = this.flushing.then(() => this.writeQueued());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  /** Stops the timer and writes what is queued. Events recorded afterwards are only logged. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    await this.flush();
    if (this.queue.length > 0 || this.usage.size > 0) {
      this.logger.warn(
        { events: this.queue.length, usageCounters: this.usage.size },
        'audit events could not be written before closing and are lost',
      );
      this.queue = [];
      this.usage.clear();
    }
  }

  /** Deletes the events (and usage rows) older than retentionDays before `now`; answers how many events. */
  async prune(now: Date = this.now()): Promise<number> {
    if (this.store === null) return 0;
    if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
      throw new TypeError('audit prune: now must be a valid Date');
    }
    const cutoff = new Date(now.getTime() - this.retentionDays * DAY_MS).toISOString();
    const store = this.store;
    let total = 0;
    for (;;) {
      const deleted = await store.withServerState(async (sql) => {
        await sql.query(`SELECT set_config('${AUDIT_PRUNE_SETTING}', 'on', true)`);
        return (
          await sql.query(
            `DELETE FROM audit_events WHERE id IN (
               SELECT id FROM audit_events WHERE at < $1::timestamptz ORDER BY at LIMIT $2)`,
            [cutoff, PRUNE_BATCH],
          )
        ).rowCount;
      });
      total += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    await store.withServerState((sql) =>
      sql.query('DELETE FROM audit_usage_hourly WHERE hour < $1::timestamptz', [cutoff]),
    );
    if (total > 0) {
      this.logger.info({ deleted: total, retentionDays: this.retentionDays }, 'old audit events deleted');
    }
    return total;
  }

  private recordOne(event: AuditEvent, runRules: boolean): void {
    const type = (event as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || !KNOWN_TYPES.has(type)) {
      this.logger.warn(
        { type: typeof type === 'string' ? type.slice(0, 100) : typeof type, allowed: AUDIT_EVENT_TYPES },
        'audit event of an unknown type ignored',
      );
      return;
    }
    const clean: Clean = {
      type: type as AuditEventType,
      requestId: field(event.requestId),
      tenant: field(event.tenant),
      clientId: field(event.clientId),
      ip: field(event.ip),
      tokenHash: field(event.tokenHash),
      details: cleanDetails(event.details),
    };
    const at = this.now();
    this.eventLogger.info({ audit: clean }, 'audit');
    this.onEvent?.(clean.type, clean.details);
    if (!this.closed && this.store !== null) {
      this.queue.push({
        at: at.toISOString(),
        type: clean.type,
        requestId: clean.requestId ?? null,
        tenant: clean.tenant ?? null,
        clientId: clean.clientId ?? null,
        ip: clean.ip ?? null,
        tokenHash: clean.tokenHash ?? null,
        details: JSON.stringify(clean.details),
      });
      this.bound();
    }
    if (runRules && clean.type !== 'security.incident') this.runRules(clean, at.getTime());
  }

  /** Drops the oldest queued events beyond maxQueue, counting them for the next warning. */
  private bound(): void {
    const excess = this.queue.length - this.maxQueue;
    if (excess > 0) {
      this.queue.splice(0, excess);
      this.droppedEvents += excess;
    }
  }

  private incident(source: Clean, fields: Partial<Clean>, details: Record<string, AuditDetail>): void {
    this.recordOne(
      {
        type: 'security.incident',
        requestId: source.requestId,
        ...fields,
        details: details,
      },
      false,
    );
  }

  private runRules(event: Clean, at: number): void {
    if (event.type === 'token.refresh_reuse') {
      this.incident(
        event,
        { tenant: event.tenant, clientId: event.clientId, ip: event.ip, tokenHash: event.tokenHash },
        { rule: 'refresh_reuse' },
      );
    }
    if (event.ip !== undefined && FAILURE_TYPES.has(event.type)) this.failureBurst(event, event.ip, at);
    if (event.ip !== undefined && event.tokenHash !== undefined) {
      this.tokenSpread(event, event.tokenHash, event.ip, at);
    }
  }

  private failureBurst(event: Clean, ip: string, at: number): void {
    const { failureBurst, failureWindowS } = this.incidents;
    const windowMs = failureWindowS * 1000;
    const state = this.failures.get(ip) ?? { times: [], firedAt: null };
    state.times.push(at);
    // Only the latest failureBurst times matter: the burst is reached when the oldest of them is in the window.
    if (state.times.length > failureBurst) state.times.splice(0, state.times.length - failureBurst);
    touch(this.failures, ip, state, MAX_TRACKED);
    const oldest = state.times[0] ?? at;
    if (state.times.length < failureBurst || at - oldest >= windowMs) return;
    if (state.firedAt !== null && at - state.firedAt < windowMs) return;
    state.firedAt = at;
    this.incident(
      event,
      { ip },
      {
        rule: 'failure_burst',
        failures: state.times.length,
        window_s: failureWindowS,
        last_type: event.type,
      },
    );
  }

  private tokenSpread(event: Clean, tokenHash: string, ip: string, at: number): void {
    if (this.spreadFired.has(tokenHash)) {
      touch(this.spreadFired, tokenHash, true, MAX_TRACKED);
      return;
    }
    const { tokenAddresses, tokenWindowS } = this.incidents;
    const windowMs = tokenWindowS * 1000;
    const seen = this.tokenAddresses.get(tokenHash) ?? new Map<string, number>();
    for (const [address, last] of seen) if (at - last >= windowMs) seen.delete(address);
    seen.set(ip, at);
    if (seen.size < tokenAddresses) {
      touch(this.tokenAddresses, tokenHash, seen, MAX_TRACKED);
      return;
    }
    this.tokenAddresses.delete(tokenHash);
    touch(this.spreadFired, tokenHash, true, MAX_TRACKED);
    this.incident(
      event,
      { tenant: event.tenant, clientId: event.clientId, ip, tokenHash },
      {
        rule: 'token_spread',
        addresses: seen.size,
        window_s: tokenWindowS,
        ips: [...seen.keys()].join(', '),
      },
    );
  }

  private async writeQueued(): Promise<void> {
    if (this.droppedEvents > 0 || this.droppedUsage > 0) {
      this.logger.warn(
        {
          droppedEvents: this.droppedEvents,
          droppedUsageCounters: this.droppedUsage,
          maxQueue: this.maxQueue,
        },
        'audit queue full while the database could not be written: the oldest events were dropped',
      );
      this.droppedEvents = 0;
      this.droppedUsage = 0;
    }
    const store = this.store;
    if (store === null) return;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, INSERT_BATCH);
      try {
        await store.withServerState((sql) => insertEvents(sql, batch));
      } catch (err) {
        this.queue.unshift(...batch);
        this.bound();
        this.logger.warn(
          { err: errorText(err), queued: this.queue.length },
          'could not write audit events; they stay queued and are retried',
        );
        return;
      }
    }
    if (this.usage.size === 0) return;
    const counters = [...this.usage];
    this.usage = new Map();
    try {
      await store.withServerState(async (sql) => {
        for (let i = 0; i < counters.length; i += INSERT_BATCH) {
          await upsertUsage(sql, counters.slice(i, i + INSERT_BATCH));
        }
      });
    } catch (err) {
      for (const [key, count] of counters) {
        const pending = this.usage.get(key);
        if (pending !== undefined) this.usage.set(key, pending + count);
        else if (this.usage.size < this.maxQueue) this.usage.set(key, count);
        else this.droppedUsage++;
      }
      this.logger.warn(
        { err: errorText(err), counters: this.usage.size },
        'could not write audit usage counters; they stay queued and are retried',
      );
    }
  }
}

async function insertEvents(sql: Sql, rows: readonly Row[]): Promise<void> {
  const params: unknown[] = [];
  const values = rows.map((r) => {
    const base = params.length;
    params.push(r.at, r.type, r.requestId, r.tenant, r.clientId, r.ip, r.tokenHash, r.details);
    return `($${base + 1}::timestamptz, $${base + 2}, $${base + 3}, $${base + 4}, $${base + 5}, $${base + 6}, $${base + 7}, $${base + 8}::jsonb)`;
  });
  await sql.query(
    `INSERT INTO audit_events (at, type, request_id, tenant, client_id, ip, token_hash, details)
     VALUES ${values.join(', ')}`,
    params,
  );
}

async function upsertUsage(sql: Sql, counters: readonly (readonly [string, number])[]): Promise<void> {
  const params: unknown[] = [];
  const values = counters.map(([key, count]) => {
    const [hour, tenant, clientId] = key.split('\n');
    const base = params.length;
    params.push(hour, tenant, clientId ?? '', count);
    return `($${base + 1}::timestamptz, $${base + 2}, $${base + 3}, $${base + 4}::bigint)`;
  });
  await sql.query(
    `INSERT INTO audit_usage_hourly (hour, tenant, client_id, requests) VALUES ${values.join(', ')}
     ON CONFLICT (hour, tenant, client_id) DO UPDATE SET requests = audit_usage_hourly.requests + EXCLUDED.requests`,
    params,
  );
}

export interface AuditQuery {
  since?: Date;
  type?: string;
  tenant?: string;
  /** Default 1000, at most 100000. */
  limit?: number;
}

interface EventRow {
  id: string;
  at: string;
  type: AuditEventType;
  request_id: string | null;
  tenant: string | null;
  client_id: string | null;
  ip: string | null;
  token_hash: string | null;
  details: Record<string, AuditDetail> | string | null;
}

function toStored(row: EventRow): StoredAuditEvent {
  const details =
    typeof row.details === 'string'
      ? (JSON.parse(row.details) as Record<string, AuditDetail>)
      : (row.details ?? {});
  return {
    id: row.id,
    at: row.at,
    type: row.type,
    ...(row.request_id !== null ? { requestId: row.request_id } : {}),
    ...(row.tenant !== null ? { tenant: row.tenant } : {}),
    ...(row.client_id !== null ? { clientId: row.client_id } : {}),
    ...(row.ip !== null ? { ip: row.ip } : {}),
    ...(row.token_hash !== null ? { tokenHash: row.token_hash } : {}),
    details,
  };
}

/** The stored events matching the query, newest first. Throws RangeError for a bad filter. */
export async function queryAudit(store: PostgresStore, query: AuditQuery): Promise<StoredAuditEvent[]> {
  const limit = query.limit ?? DEFAULT_QUERY_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw new RangeError(
      `audit query: limit must be a whole number from 1 to ${MAX_QUERY_LIMIT} (got ${limit})`,
    );
  }
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.since !== undefined) {
    if (!(query.since instanceof Date) || Number.isNaN(query.since.getTime())) {
      throw new RangeError('audit query: since must be a valid date');
    }
    params.push(query.since.toISOString());
    where.push(`at >= $${params.length}::timestamptz`);
  }
  if (query.type !== undefined) {
    if (!KNOWN_TYPES.has(query.type)) {
      throw new RangeError(
        `audit query: unknown event type "${query.type.slice(0, 100)}" (allowed: ${AUDIT_EVENT_TYPES.join(', ')})`,
      );
    }
    params.push(query.type);
    where.push(`type = $${params.length}`);
  }
  if (query.tenant !== undefined) {
    if (typeof query.tenant !== 'string' || query.tenant.length === 0) {
      throw new RangeError('audit query: tenant must be a non-empty string');
    }
    params.push(query.tenant);
    where.push(`tenant = $${params.length}`);
  }
  params.push(limit);
  const text = `SELECT id::text AS id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, type,
      request_id, tenant, client_id, ip, token_hash, details
    FROM audit_events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY audit_events.at DESC, id DESC LIMIT $${params.length}`;
  const rows = await store.withServerState(async (sql) => (await sql.query<EventRow>(text, params)).rows);
  return rows.map(toStored);
}

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: HOUR_MS, d: DAY_MS };

/**
 * A --since value: a duration back from `now` ('45s', '30m', '1h', '7d') or an ISO 8601 date ('2025-01-31',
 * '2025-01-31T12:00:00Z'). Throws an Error saying what is allowed otherwise.
 */
export function parseSince(text: string, now: Date = new Date()): Date {
  const allowed =
    'a duration such as 45s, 30m, 1h or 7d (seconds, minutes, hours, days), or an ISO 8601 date such as 2025-01-31 or 2025-01-31T12:00:00Z';
  const trimmed = typeof text === 'string' ? text.trim() : '';
  const duration = /^(\d{1,9})([smhd])$/.exec(trimmed);
  if (duration) {
    const at = new Date(now.getTime() - Number(duration[1]) * (UNITS[duration[2] as string] ?? 0));
    if (!Number.isNaN(at.getTime())) return at;
  } else if (
    /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(trimmed)
  ) {
    const at = new Date(trimmed.replace(' ', 'T'));
    // A day the month does not have (2025-02-30) is refused, not moved into the next month.
    const dateOnly = trimmed.length === 10;
    if (!Number.isNaN(at.getTime()) && (!dateOnly || at.toISOString().startsWith(trimmed))) return at;
  }
  throw new Error(`since must be ${allowed} (got ${JSON.stringify(String(text).slice(0, 100))})`);
}

export interface AuditRetention {
  /** Stops the timer and waits for a prune in progress to end. */
  stop(): Promise<void>;
}

/**
 * Runs audit.prune() once now and then every `intervalMs` milliseconds (default: daily; never two at once; a
 * failure is logged and the next interval tries again). The timer does not keep the process alive.
 */
export function startAuditRetention(audit: AuditLog, intervalMs: number = DAY_MS): AuditRetention {
  if (!Number.isInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(
      `audit retention interval must be a whole number of milliseconds ≥ 1 (got ${intervalMs})`,
    );
  }
  let running: Promise<void> | null = null;
  let stopped = false;
  const tick = (): void => {
    if (running || stopped) return;
    running = audit
      .prune()
      .then(() => undefined)
      .catch((err: unknown) => {
        audit.logger.warn({ err: errorText(err) }, 'could not delete old audit events; will retry');
      })
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  tick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (running) await running;
    },
  };
}
