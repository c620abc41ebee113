/**
 * The audit trail (src/security/audit.ts) on PostgreSQL (PGlite always; the real server when
 * MCP_PA_TEST_DATABASE_URL is set): events recorded, logged and written with their fields; secret-looking details
 * dropped; audit_events append-only in the database (UPDATE, DELETE and TRUNCATE refused; only prune deletes);
 * nothing for the application role; rows kept while the database refuses them; the incident rules; the hourly
 * usage counters; the retention timer; parseSince.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import {
  AUDIT_EVENT_TYPES,
  AuditLog,
  parseSince,
  queryAudit,
  startAuditRetention,
  type AuditEvent,
  type AuditLogOptions,
  type StoredAuditEvent,
} from '../../src/security/audit.js';
import type { PostgresStore } from '../../src/storage/postgres/postgres-store.js';
import { APP_ROLE } from '../../src/storage/postgres/schema.js';
import { describeWithServer, quietLogger, openPgliteStore, openServerStore } from '../support/postgres.js';

type Json = Record<string, unknown>;

const DAY = 24 * 3600 * 1000;
const T0 = Date.parse('2025-06-01T10:15:00.000Z');

/** A logger writing JSON lines into memory (synchronously). */
function captureLogger(): { logger: Logger; lines: () => Json[]; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  const text = (): string => chunks.join('');
  return {
    logger: createLogger('info', sink),
    text,
    lines: () =>
      text()
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Json),
  };
}

/** A clock tests move by hand. */
function clock(start = T0): { now: () => Date; set: (ms: number) => void; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => new Date(t),
    set: (ms) => {
      t = ms;
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

const fresh = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`;
/** An address of the IPv6 documentation prefix, unique to the test. */
const freshIp = (): string => `2001:db8::${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}`;

function auditSuite(open: () => Promise<{ store: PostgresStore; close: () => Promise<void> }>): void {
  let store: PostgresStore;
  let close: () => Promise<void> = async () => {};
  const logs: AuditLog[] = [];

  beforeAll(async () => {
    ({ store, close } = await open());
  });
  afterAll(async () => {
    for (const a of logs) await a.close();
    await close();
  });

  function audit(options: Partial<AuditLogOptions> = {}): AuditLog {
    const a = new AuditLog({
      store,
      logger: quietLogger,
      retentionDays: 90,
      flushIntervalMs: 0,
      ...options,
    });
    logs.push(a);
    return a;
  }

  async function raw<R = Json>(text: string, params: unknown[] = []): Promise<R[]> {
    return store.withServerState(async (sql) => (await sql.query<R>(text, params)).rows);
  }

  async function byIp(ip: string): Promise<StoredAuditEvent[]> {
    return (await queryAudit(store, { limit: 100_000 })).filter((e) => e.ip === ip);
  }

  it('record → flush → queryAudit gives exactly one row per event, newest first, with its fields', async () => {
    const c = clock();
    const a = audit({ now: c.now });
    const tenant = fresh('u');
    a.record({
      type: 'auth.sign_in.success',
      requestId: 'req-1',
      tenant,
      clientId: 'client-1',
      ip: '192.0.2.10',
      details: { username: 'alice', method: 'password' },
    });
    c.advance(1500);
    a.record({
      type: 'token.issued',
      requestId: 'req-2',
      tenant,
      clientId: 'client-1',
      ip: '192.0.2.10',
      tokenHash: 'th-abc',
      details: { scope: 'pa.read', expires_in: 3600, dpop: false, jkt: null },
    });
    c.advance(1500);
    a.record({ type: 'consent.revoked', tenant });
    // Nothing is written before the flush.
    expect(await queryAudit(store, { tenant })).toEqual([]);
    await a.flush();
    const events = await queryAudit(store, { tenant });
    expect(events.map((e) => e.type)).toEqual(['consent.revoked', 'token.issued', 'auth.sign_in.success']);
    expect(events[2]).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: new Date(T0).toISOString(),
      type: 'auth.sign_in.success',
      requestId: 'req-1',
      tenant,
      clientId: 'client-1',
      ip: '192.0.2.10',
      details: { username: 'alice', method: 'password' },
    });
    expect(events[1]).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: new Date(T0 + 1500).toISOString(),
      type: 'token.issued',
      requestId: 'req-2',
      tenant,
      clientId: 'client-1',
      ip: '192.0.2.10',
      tokenHash: 'th-abc',
      details: { scope: 'pa.read', expires_in: 3600, dpop: false, jkt: null },
    });
    expect(events[0]).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: new Date(T0 + 3000).toISOString(),
      type: 'consent.revoked',
      tenant,
      details: {},
    });
    // A second flush writes nothing again.
    await a.flush();
    expect(await queryAudit(store, { tenant })).toHaveLength(3);
    // The filters.
    expect((await queryAudit(store, { tenant, type: 'token.issued' })).map((e) => e.requestId)).toEqual([
      'req-2',
    ]);
    expect((await queryAudit(store, { tenant, since: new Date(T0 + 1000) })).map((e) => e.type)).toEqual([
      'consent.revoked',
      'token.issued',
    ]);
    expect((await queryAudit(store, { tenant, limit: 1 })).map((e) => e.type)).toEqual(['consent.revoked']);
    await expect(queryAudit(store, { type: 'auth.nope' })).rejects.toThrow(/unknown event type "auth.nope"/);
    await expect(queryAudit(store, { limit: 0 })).rejects.toThrow(/limit must be a whole number/);
  });

  it('writes in batches of at most 500 rows: 1203 events flushed become 1203 rows', async () => {
    const a = audit();
    const tenant = fresh('bulk');
    for (let i = 0; i < 1203; i++) a.record({ type: 'rate_limit.hit', tenant, details: { i } });
    await a.flush();
    const events = await queryAudit(store, { tenant, limit: 5000 });
    expect(events).toHaveLength(1203);
    expect(new Set(events.map((e) => e.details?.['i'])).size).toBe(1203);
  });

  it('drops secret-looking detail keys, cuts long strings, and logs one JSON line (msg "audit") without secrets', async () => {
    const capture = captureLogger();
    const a = audit({ logger: capture.logger });
    const tenant = fresh('u');
    const secrets = {
      password: 'pw-hunter2-secret-value',
      client_secret: 'cs-0123456789',
      refresh_token: 'rt-9876543210',
      Code: 'authcode-abcdef',
      client_assertion: 'eyJassertion',
      Authorization: 'Bearer at-112233',
      set_cookie: 'sid=cookie-445566',
      PassCodeHint: 'pc-778899',
    };
    const long = 'x'.repeat(800);
    a.record({
      type: 'auth.sign_in.failure',
      tenant,
      ip: '192.0.2.77',
      requestId: 'r'.repeat(700),
      details: {
        ...secrets,
        reason: 'bad_password',
        attempts: 3,
        locked: false,
        note: null,
        long,
        ratio: Number.POSITIVE_INFINITY,
        nested: { deep: 1 } as unknown as string,
      },
    });
    await a.flush();
    const [event] = await queryAudit(store, { tenant });
    expect(event?.details).toEqual({
      reason: 'bad_password',
      attempts: 3,
      locked: false,
      note: null,
      long: 'x'.repeat(500),
      ratio: null,
    });
    expect(event?.requestId).toBe('r'.repeat(500));
    const stored = JSON.stringify(await raw(`SELECT * FROM audit_events WHERE tenant = $1`, [tenant]));
    const logged = capture.text();
    for (const value of Object.values(secrets)) {
      expect(stored).not.toContain(value);
      expect(logged).not.toContain(value);
    }
    const lines = capture.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'audit',
      audit: {
        type: 'auth.sign_in.failure',
        tenant,
        ip: '192.0.2.77',
        details: { reason: 'bad_password', attempts: 3, locked: false, note: null, long: 'x'.repeat(500) },
      },
    });
  });

  it('keeps events whose strings hold NUL, lone surrogates or an emoji at the 500-character cut (no lost batch)', async () => {
    const a = audit();
    const tenant = fresh('u');
    a.record({
      type: 'auth.sign_in.failure',
      tenant,
      ip: freshIp(),
      requestId: `${'r'.repeat(499)}\u{1F600}`,
      details: { username: 'eve\u0000\ud800', ['k\ud800']: 'dropped key', reason: 'bad_password' },
    });
    await a.flush();
    const [event] = await queryAudit(store, { tenant });
    expect(event?.requestId).toBe('r'.repeat(499));
    expect(event?.details).toEqual({ username: 'eve\ufffd\ufffd', reason: 'bad_password' });
  });

  it('an unknown type is not recorded (a warning instead) and record never throws', async () => {
    const capture = captureLogger();
    const a = audit({ logger: capture.logger });
    const ip = freshIp();
    expect(() => a.record({ type: 'auth.made_up', ip } as unknown as AuditEvent)).not.toThrow();
    expect(() => a.record(null as unknown as AuditEvent)).not.toThrow();
    expect(() =>
      a.record({ type: 'mcp.forbidden', ip, details: 'not an object' } as unknown as AuditEvent),
    ).not.toThrow();
    await a.flush();
    const rows = await byIp(ip);
    expect(rows.map((e) => [e.type, e.details])).toEqual([['mcp.forbidden', {}]]);
    const warnings = capture.lines().filter((l) => l['level'] === 40);
    expect(warnings.map((l) => l['msg'])).toEqual([
      'audit event of an unknown type ignored',
      'audit event of an unknown type ignored',
    ]);
    expect(warnings[0]?.['type']).toBe('auth.made_up');
  });

  it('audit_events refuses UPDATE, DELETE and TRUNCATE; only prune deletes, and only events past retention', async () => {
    const c = clock(Date.now() - 100 * DAY);
    const a = audit({ now: c.now, retentionDays: 90 });
    const tenant = fresh('u');
    a.record({ type: 'token.revoked', tenant, details: { age: 'old' } });
    a.countUsage(tenant, 'client-old');
    c.set(Date.now() - 89 * DAY);
    a.record({ type: 'token.revoked', tenant, details: { age: 'recent' } });
    a.countUsage(tenant, 'client-recent');
    await a.flush();
    expect(await queryAudit(store, { tenant })).toHaveLength(2);

    await expect(
      raw(`UPDATE audit_events SET type = 'token.issued' WHERE tenant = $1`, [tenant]),
    ).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(raw(`DELETE FROM audit_events WHERE tenant = $1`, [tenant])).rejects.toThrow(
      /append-only: DELETE refused/,
    );
    await expect(raw('TRUNCATE audit_events')).rejects.toThrow(/append-only: TRUNCATE refused/);
    expect(await queryAudit(store, { tenant })).toHaveLength(2);
    // Setting the prune flag in another transaction does not carry over (SET LOCAL).
    await raw(`SELECT set_config('mcp_pa.audit_prune', 'on', true)`);
    await expect(raw(`DELETE FROM audit_events WHERE tenant = $1`, [tenant])).rejects.toThrow(/append-only/);

    const old = await raw<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE at < now() - interval '90 days'`,
    );
    const deleted = await a.prune(new Date());
    expect(deleted).toBe(old[0]?.n);
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect((await queryAudit(store, { tenant })).map((e) => e.details)).toEqual([{ age: 'recent' }]);
    expect(
      (
        await raw<{ client_id: string }>(`SELECT client_id FROM audit_usage_hourly WHERE tenant = $1`, [
          tenant,
        ])
      ).map((r) => r.client_id),
    ).toEqual(['client-recent']);
    // Nothing left to prune; and the flag did not outlive prune's transaction.
    expect(await a.prune(new Date())).toBe(0);
    await expect(raw(`DELETE FROM audit_events WHERE tenant = $1`, [tenant])).rejects.toThrow(/append-only/);
  });

  it('the application role (tenant code) can neither read nor write the audit tables; nor can PUBLIC', async () => {
    const a = audit();
    const tenant = fresh('u');
    a.record({ type: 'consent.granted', tenant });
    a.countUsage(tenant, undefined);
    await a.flush();
    for (const table of ['audit_events', 'audit_usage_hourly']) {
      await expect(store.withTenant(tenant, (sql) => sql.query(`SELECT * FROM ${table}`))).rejects.toThrow(
        /permission denied/,
      );
      await expect(store.withTenant(tenant, (sql) => sql.query(`DELETE FROM ${table}`))).rejects.toThrow(
        /permission denied/,
      );
      const privileges = (
        await raw<{ app: boolean; acl: string | null }>(
          `SELECT has_table_privilege($1, $2, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') AS app,
                  (SELECT relacl::text FROM pg_class WHERE oid = $2::regclass) AS acl`,
          [APP_ROLE, table],
        )
      )[0];
      expect(privileges?.app, table).toBe(false);
      expect(privileges?.acl ?? '', table).not.toContain(APP_ROLE);
      expect(privileges?.acl ?? '', table).not.toMatch(/[{,]=/);
    }
    await expect(
      store.withTenant(tenant, (sql) =>
        sql.query(`INSERT INTO audit_events (type, tenant) VALUES ('consent.granted', $1)`, [tenant]),
      ),
    ).rejects.toThrow(/permission denied/);
    await expect(
      store.withTenant(tenant, (sql) => sql.query(`SELECT nextval('audit_events_id_seq')`)),
    ).rejects.toThrow(/permission denied/);
    expect(await queryAudit(store, { tenant })).toHaveLength(1);
  });

  it('rows stay queued while the database refuses them (bounded, oldest dropped with a count) and are written later', async () => {
    const capture = captureLogger();
    const a = audit({ logger: capture.logger, maxQueue: 4 });
    const ip = freshIp();
    const marker = fresh('marker-value');
    const tenant = fresh('u');
    // A real database error: the tables are away (renamed) while the log flushes.
    await raw('ALTER TABLE audit_events RENAME TO audit_events_away');
    await raw('ALTER TABLE audit_usage_hourly RENAME TO audit_usage_hourly_away');
    try {
      for (let i = 1; i <= 3; i++) a.record({ type: 'mcp.forbidden', ip, tenant, details: { i, marker } });
      a.countUsage(tenant, 'c');
      a.countUsage(tenant, 'c');
      await a.flush();
      const warnings = capture.lines().filter((l) => l['level'] === 40);
      expect(warnings.map((l) => l['msg'])).toEqual([
        'could not write audit events; they stay queued and are retried',
      ]);
      expect(warnings[0]?.['queued']).toBe(3);
      // Still failing: the queue keeps its newest 4 events; the drop is counted in the next warning.
      for (let i = 4; i <= 6; i++) a.record({ type: 'mcp.forbidden', ip, tenant, details: { i, marker } });
      await a.flush();
      const dropped = capture.lines().find((l) => l['droppedEvents'] !== undefined);
      expect(dropped).toMatchObject({ level: 40, droppedEvents: 2, maxQueue: 4 });
      await a.flush();
      // The usage counters were not tried (events go first): still queued too.
      const warningText = capture
        .lines()
        .filter((l) => l['level'] === 40)
        .map((l) => JSON.stringify(l))
        .join('\n');
      expect(warningText).not.toContain(marker);
      expect(warningText).not.toContain(ip);
      expect(warningText).not.toContain(tenant);
    } finally {
      await raw('ALTER TABLE audit_events_away RENAME TO audit_events');
      await raw('ALTER TABLE audit_usage_hourly_away RENAME TO audit_usage_hourly');
    }
    await a.flush();
    const rows = await byIp(ip);
    expect(rows.map((e) => e.details?.['i']).sort()).toEqual([3, 4, 5, 6]);
    await a.flush();
    expect(await byIp(ip)).toHaveLength(4);
    expect(
      await raw(`SELECT client_id, requests::int AS requests FROM audit_usage_hourly WHERE tenant = $1`, [
        tenant,
      ]),
    ).toEqual([{ client_id: 'c', requests: 2 }]);
  });

  it('close writes what is queued; events recorded after close are only logged', async () => {
    const capture = captureLogger();
    const a = new AuditLog({ store, logger: capture.logger, retentionDays: 90 });
    const ip = freshIp();
    a.record({ type: 'keys.rotated', ip, details: { kid: 'k1' } });
    a.record({ type: 'client.removed', ip, clientId: 'cli_x' });
    await a.close();
    expect((await byIp(ip)).map((e) => e.type)).toEqual(['client.removed', 'keys.rotated']);
    a.record({ type: 'config.error', ip });
    await a.flush();
    expect(await byIp(ip)).toHaveLength(2);
    expect(capture.lines().filter((l) => l['msg'] === 'audit')).toHaveLength(3);
  });

  it('the timer writes queued events by itself', async () => {
    const a = audit({ flushIntervalMs: 50 });
    const ip = freshIp();
    a.record({ type: 'csrf.failure', ip });
    await expect.poll(async () => (await byIp(ip)).length, { timeout: 5000, interval: 50 }).toBe(1);
  });

  it('refresh_reuse: every refresh-token reuse adds one security.incident (incidents trigger nothing more)', async () => {
    const a = audit();
    const ip = freshIp();
    const tenant = fresh('u');
    a.record({
      type: 'token.refresh_reuse',
      ip,
      tenant,
      clientId: 'c1',
      tokenHash: 'rt-hash-1',
      requestId: 'q1',
    });
    a.record({
      type: 'token.refresh_reuse',
      ip,
      tenant,
      clientId: 'c1',
      tokenHash: 'rt-hash-1',
      requestId: 'q2',
    });
    a.record({ type: 'token.refreshed', ip, tenant, clientId: 'c1', tokenHash: 'rt-hash-2' });
    await a.flush();
    const incidents = (await byIp(ip)).filter((e) => e.type === 'security.incident');
    expect(incidents).toHaveLength(2);
    expect(incidents.map((e) => e.requestId).sort()).toEqual(['q1', 'q2']);
    expect(incidents[0]).toMatchObject({
      tenant,
      clientId: 'c1',
      tokenHash: 'rt-hash-1',
      details: { rule: 'refresh_reuse' },
    });
    expect(await byIp(ip)).toHaveLength(5);
  });

  it('failure_burst: once per address per window, only for failures within the window', async () => {
    const c = clock();
    const a = audit({ now: c.now, incidents: { failureBurst: 5, failureWindowS: 60 } });
    const ip = freshIp();
    const other = freshIp();
    const failures = [
      'auth.sign_in.failure',
      'auth.client_auth.failure',
      'mcp.unauthorized',
      'csrf.failure',
    ] as const;
    const incidentsFor = async (address: string): Promise<StoredAuditEvent[]> => {
      await a.flush();
      return (await byIp(address)).filter((e) => e.type === 'security.incident');
    };
    for (let i = 0; i < 4; i++) {
      a.record({ type: failures[i % 4] as AuditEvent['type'], ip });
      a.record({ type: 'auth.sign_in.success', ip }); // not a failure: does not count
      c.advance(1000);
    }
    a.record({ type: 'auth.sign_in.failure', ip: other });
    expect(await incidentsFor(ip)).toHaveLength(0);
    a.record({ type: 'auth.sign_in.failure', ip, requestId: 'fifth' });
    let incidents = await incidentsFor(ip);
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({
      ip,
      requestId: 'fifth',
      details: { rule: 'failure_burst', failures: 5, window_s: 60, last_type: 'auth.sign_in.failure' },
    });
    // Many more within the same window: still one.
    for (let i = 0; i < 30; i++) {
      a.record({ type: 'mcp.unauthorized', ip });
      c.advance(500);
    }
    expect(await incidentsFor(ip)).toHaveLength(1);
    // The other address never reached the threshold.
    expect(await incidentsFor(other)).toHaveLength(0);
    // A window later, a new burst is a new incident.
    c.advance(61_000);
    for (let i = 0; i < 4; i++) a.record({ type: 'csrf.failure', ip });
    expect(await incidentsFor(ip)).toHaveLength(1);
    a.record({ type: 'csrf.failure', ip });
    incidents = await incidentsFor(ip);
    expect(incidents).toHaveLength(2);
    // Failures spread wider than the window never make a burst.
    const slow = freshIp();
    for (let i = 0; i < 12; i++) {
      a.record({ type: 'auth.sign_in.failure', ip: slow });
      c.advance(20_000);
    }
    expect(await incidentsFor(slow)).toHaveLength(0);
  });

  it('token_spread: one token hash from 3 addresses within 10 minutes, once per token', async () => {
    const c = clock();
    const a = audit({ now: c.now });
    const token = fresh('th');
    const tenant = fresh('u');
    const [ip1, ip2, ip3, ip4] = [freshIp(), freshIp(), freshIp(), freshIp()];
    const incidents = async (): Promise<StoredAuditEvent[]> => {
      await a.flush();
      return (await queryAudit(store, { tenant, type: 'security.incident' })).filter(
        (e) => e.details?.['rule'] === 'token_spread',
      );
    };
    a.record({ type: 'token.issued', ip: ip1, tenant, tokenHash: token });
    a.record({ type: 'mcp.forbidden', ip: ip2, tenant, tokenHash: token });
    a.record({ type: 'mcp.forbidden', ip: ip1, tenant, tokenHash: token });
    // Usage counting carries no token: it never feeds the rule.
    for (let i = 0; i < 10; i++) a.countUsage(tenant, 'c1');
    expect(await incidents()).toHaveLength(0);
    c.advance(5 * 60_000);
    a.record({ type: 'mcp.forbidden', ip: ip3, tenant, clientId: 'c1', tokenHash: token });
    const found = await incidents();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      tenant,
      clientId: 'c1',
      ip: ip3,
      tokenHash: token,
      details: { rule: 'token_spread', addresses: 3, window_s: 600 },
    });
    expect(String(found[0]?.details?.['ips']).split(', ').sort()).toEqual([ip1, ip2, ip3].sort());
    // Once per token, however many more addresses present it.
    for (const ip of [ip4, ip1, ip2, ip3]) a.record({ type: 'mcp.forbidden', ip, tenant, tokenHash: token });
    expect(await incidents()).toHaveLength(1);

    // Addresses older than the window are forgotten.
    const slow = fresh('th-slow');
    a.record({ type: 'mcp.forbidden', ip: ip1, tenant, tokenHash: slow });
    a.record({ type: 'mcp.forbidden', ip: ip2, tenant, tokenHash: slow });
    c.advance(601_000);
    a.record({ type: 'mcp.forbidden', ip: ip3, tenant, tokenHash: slow });
    expect(await incidents()).toHaveLength(1);
    a.record({ type: 'mcp.forbidden', ip: ip4, tenant, tokenHash: slow });
    a.record({ type: 'mcp.forbidden', ip: ip1, tenant, tokenHash: slow });
    expect((await incidents()).map((e) => e.tokenHash).sort()).toEqual([slow, token].sort());
  });

  it('usage counters add up across flushes, per hour, tenant and client', async () => {
    const c = clock(Date.parse('2025-06-01T10:59:59.000Z'));
    const a = audit({ now: c.now });
    const tenant = fresh('u');
    const other = fresh('u');
    for (let i = 0; i < 3; i++) a.countUsage(tenant, 'c1');
    a.countUsage(tenant, undefined);
    a.countUsage(tenant, undefined);
    a.countUsage(other, 'c1');
    a.countUsage('', 'c1'); // no tenant: not counted
    await a.flush();
    for (let i = 0; i < 4; i++) a.countUsage(tenant, 'c1');
    await a.flush();
    c.advance(1000); // 11:00:00
    a.countUsage(tenant, 'c1');
    await a.flush();
    // A second log (another replica) adds to the same rows.
    const b = audit({ now: c.now });
    b.countUsage(tenant, 'c1');
    await b.flush();
    const rows = await raw<{ hour: string; tenant: string; client_id: string; requests: number }>(
      `SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS hour, tenant, client_id,
              requests::int AS requests
       FROM audit_usage_hourly WHERE tenant = ANY ($1::text[]) ORDER BY hour, tenant = $2, client_id`,
      [[tenant, other], tenant],
    );
    expect(rows).toEqual([
      { hour: '2025-06-01T10:00', tenant: other, client_id: 'c1', requests: 1 },
      { hour: '2025-06-01T10:00', tenant, client_id: '', requests: 2 },
      { hour: '2025-06-01T10:00', tenant, client_id: 'c1', requests: 7 },
      { hour: '2025-06-01T11:00', tenant, client_id: 'c1', requests: 2 },
    ]);
  });

  it('startAuditRetention prunes at once and then periodically, until stopped', async () => {
    const c = clock(Date.now() - 40 * DAY);
    const a = audit({ now: () => c.now(), retentionDays: 30 });
    const ip = freshIp();
    a.record({ type: 'client.registered', ip, details: { n: 1 } });
    await a.flush();
    c.set(Date.now());
    const retention = startAuditRetention(a, 60_000);
    await expect.poll(async () => (await byIp(ip)).length, { timeout: 5000, interval: 50 }).toBe(0);
    await retention.stop();
    expect(() => startAuditRetention(a, 0)).toThrow(/interval/);
  });
}

describe('audit trail on PGlite', () => {
  auditSuite(openPgliteStore);
});

describeWithServer('audit trail on the PostgreSQL server', () => {
  auditSuite(openServerStore);
});

describe('audit trail without a database, options and parseSince', () => {
  it('without a store, events are logged only and prune deletes nothing', async () => {
    const capture = captureLogger();
    const a = new AuditLog({ store: null, logger: capture.logger, retentionDays: 7 });
    a.record({ type: 'config.error', details: { key: 'server.port' } });
    a.countUsage('t', 'c');
    await a.flush();
    expect(await a.prune()).toBe(0);
    await a.close();
    expect(capture.lines()).toMatchObject([{ msg: 'audit', audit: { type: 'config.error' } }]);
  });

  it('refuses bad options with the option named', () => {
    const base = { store: null, logger: quietLogger, retentionDays: 90 };
    expect(() => new AuditLog({ ...base, retentionDays: 0 })).toThrow(
      /retentionDays must be a whole number from 1 to 3650/,
    );
    expect(() => new AuditLog({ ...base, maxQueue: 0 })).toThrow(/maxQueue/);
    expect(() => new AuditLog({ ...base, flushIntervalMs: -1 })).toThrow(/flushIntervalMs/);
    expect(() => new AuditLog({ ...base, incidents: { tokenAddresses: 1 } })).toThrow(/tokenAddresses/);
    expect(() => new AuditLog({ ...base, incidents: { failureBurst: 1.5 } })).toThrow(/failureBurst/);
  });

  it('lists every event type once', () => {
    expect(new Set(AUDIT_EVENT_TYPES).size).toBe(AUDIT_EVENT_TYPES.length);
    expect(AUDIT_EVENT_TYPES).toContain('security.incident');
  });

  it('parseSince reads durations back from now and ISO dates, and refuses anything else clearly', () => {
    const now = new Date('2025-06-01T12:00:00.000Z');
    expect(parseSince('45s', now).toISOString()).toBe('2025-06-01T11:59:15.000Z');
    expect(parseSince('30m', now).toISOString()).toBe('2025-06-01T11:30:00.000Z');
    expect(parseSince('1h', now).toISOString()).toBe('2025-06-01T11:00:00.000Z');
    expect(parseSince('7d', now).toISOString()).toBe('2025-05-25T12:00:00.000Z');
    expect(parseSince(' 2h ', now).toISOString()).toBe('2025-06-01T10:00:00.000Z');
    expect(parseSince('2025-01-31', now).toISOString()).toBe('2025-01-31T00:00:00.000Z');
    expect(parseSince('2025-01-31T08:30:00Z', now).toISOString()).toBe('2025-01-31T08:30:00.000Z');
    expect(parseSince('2025-01-31T08:30:00+02:00', now).toISOString()).toBe('2025-01-31T06:30:00.000Z');
    expect(Math.abs(parseSince('1h').getTime() - (Date.now() - 3_600_000))).toBeLessThan(5000);
    for (const bad of ['', 'yesterday', '1w', '-1h', '1.5h', 'h', '2025-02-30', '2025-13-01', '1 h']) {
      expect(() => parseSince(bad, now), bad).toThrow(
        /since must be a duration such as 45s, 30m, 1h or 7d .* or an ISO 8601 date/,
      );
    }
    expect(() => parseSince('soon', now)).toThrow(/\(got "soon"\)/);
  });
});

describe('audit lines in the log stream', () => {
  it('are written even when the log level is warn, and not when it is silent', async () => {
    const { createLogger } = await import('../../src/observability/logger.js');
    const { AuditLog } = await import('../../src/security/audit.js');
    const { Writable } = await import('node:stream');
    const capture = (level: string) => {
      let text = '';
      const logger = createLogger(
        level,
        new Writable({
          write(chunk: Buffer, _e, done) {
            text += chunk.toString('utf8');
            done();
          },
        }),
      );
      return { logger, text: () => text };
    };
    const warn = capture('warn');
    new AuditLog({ store: null, logger: warn.logger, retentionDays: 1, flushIntervalMs: 0 }).record({
      type: 'auth.lockout',
      details: { username: 'alice' },
    });
    warn.logger.info('an ordinary info line');
    expect(warn.text()).toContain('"type":"auth.lockout"');
    expect(warn.text()).not.toContain('an ordinary info line');
    const silent = capture('silent');
    new AuditLog({ store: null, logger: silent.logger, retentionDays: 1, flushIntervalMs: 0 }).record({
      type: 'auth.lockout',
    });
    expect(silent.text()).toBe('');
  });
});

describe('a token accepted from several addresses', () => {
  it('raises one token_spread incident, though accepted requests write no event of their own', async () => {
    const { createLogger } = await import('../../src/observability/logger.js');
    const { AuditLog } = await import('../../src/security/audit.js');
    const { Writable } = await import('node:stream');
    let text = '';
    const logger = createLogger(
      'info',
      new Writable({
        write(chunk: Buffer, _e, done) {
          text += chunk.toString('utf8');
          done();
        },
      }),
    );
    const audit = new AuditLog({ store: null, logger, retentionDays: 1, flushIntervalMs: 0 });
    audit.observeToken('hash-of-a-token', '192.0.2.1', { tenant: 'u1' });
    audit.observeToken('hash-of-a-token', '192.0.2.1', { tenant: 'u1' });
    audit.observeToken('hash-of-a-token', '192.0.2.2', { tenant: 'u1' });
    expect(text).toBe('');
    audit.observeToken('hash-of-a-token', '192.0.2.3', { tenant: 'u1' });
    audit.observeToken('hash-of-a-token', '192.0.2.4', { tenant: 'u1' });
    const lines = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { audit: { type: string; tokenHash: string; details: { rule: string } } });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.audit).toMatchObject({
      type: 'security.incident',
      tokenHash: 'hash-of-a-token',
      details: { rule: 'token_spread' },
    });
    await audit.close();
  });
});
