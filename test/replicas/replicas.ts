/**
 * Two `mcp-pa serve` processes (replicas A and B) behind a TCP load balancer on loopback, the way a deployment runs
 * several: one PostgreSQL database (a fresh one per file), one Redis key prefix, the same server secret (TEST_SECRET,
 * the ServerProcess default) and the same `server.public_url` — the balancer's address, so both replicas have one
 * issuer and one resource (the token audience). Each replica has its own certificate from the shared test CA (valid
 * for 127.0.0.1), its own data folder and its own port; TLS passes through the balancer to whichever replica it picks.
 * Accounts are created once, through A's CLI, before the replicas start: they live in the shared database.
 *
 * Needs MCP_PA_TEST_DATABASE_URL and MCP_PA_TEST_REDIS_URL (describeWithReplicas skips otherwise).
 */
import { describe } from 'vitest';
import { SecretWatch } from '../auth/oauth-fixture.js';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../support/postgres.js';
import { deleteKeys, TEST_REDIS_URL, testRedisUrl, uniqueKeyPrefix } from '../support/redis.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { Agent } from 'node:https';
import { httpsFetch, type TestCa } from '../support/https.js';
import { startLoadBalancer, type LoadBalancer } from './load-balancer.js';

/** `describe` when both a real PostgreSQL and a real Redis are configured, `describe.skip` otherwise. */
export const describeWithReplicas = TEST_DATABASE_URL && TEST_REDIS_URL ? describe : describe.skip;

export interface Replicas {
  readonly lb: LoadBalancer;
  readonly a: ServerProcess;
  readonly b: ServerProcess;
  readonly db: TestDatabase;
  readonly keyPrefix: string;
  /** The shared issuer: the balancer's origin. */
  readonly issuer: string;
  /** The shared resource (token audience): issuer + /mcp. */
  readonly resource: string;
  readonly ca: TestCa;
  /** fetch trusting the test CA, a new connection for every request (the balancer picks a backend for each). */
  readonly fetch: typeof fetch;
  readonly users: ServerProcess['users'];
  /** Secrets the tests handled; close() fails when one reached either replica's log. */
  readonly secrets: SecretWatch;
  close(): Promise<void>;
}

/**
 * Starts the balancer, then A (after creating `users` through its CLI) and B at the same time, and points the
 * balancer at both (round-robin). Whatever was started is stopped again when a later step fails.
 */
export async function startReplicas(options: {
  readonly label: string;
  readonly users: readonly string[];
  /** Extra configuration for both replicas (server, authentication and features merged one level). */
  readonly config?: Record<string, unknown>;
}): Promise<Replicas> {
  const keyPrefix = uniqueKeyPrefix(options.label);
  const started: { close(): Promise<unknown> }[] = [];
  const closeAll = async (): Promise<void> => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
    await deleteKeys(keyPrefix).catch(() => undefined);
  };
  try {
    const db = await createTestDatabase({ vector: false });
    started.push({ close: () => db.drop() });
    const lb = await startLoadBalancer();
    started.push(lb);
    const env = {
      MCP_DATABASE_URL: db.url,
      MCP_REDIS_URL: testRedisUrl(),
      MCP_REDIS_KEY_PREFIX: keyPrefix,
    };
    const extra = options.config ?? {};
    const config = {
      ...extra,
      server: { public_url: lb.origin, ...((extra['server'] as object | undefined) ?? {}) },
    };
    // Started together (migrations and the first signing key are made under advisory locks).
    const [a, b] = await Promise.allSettled([
      startServerProcess({ env, config, users: options.users }),
      startServerProcess({ env, config }),
    ]);
    for (const r of [a, b]) if (r.status === 'fulfilled') started.push(r.value);
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
    const [ra, rb] = [a.value, b.value];
    lb.setBackends({ A: ra.port, B: rb.port });
    const agent = new Agent({ keepAlive: false, ca: ra.ca.cert });
    started.push({ close: async () => agent.destroy() });
    const secrets = new SecretWatch();
    for (const user of ra.users.values()) secrets.add('password', user.password);
    return {
      lb,
      a: ra,
      b: rb,
      db,
      keyPrefix,
      issuer: lb.origin,
      resource: `${lb.origin}/mcp`,
      ca: ra.ca,
      fetch: httpsFetch(ra.ca.cert, agent),
      users: ra.users,
      secrets,
      async close() {
        const logs = ra.logs() + rb.logs();
        await closeAll();
        const leaks = secrets.leaks(logs);
        if (leaks.length > 0) throw new Error(`secrets reached a replica's log: ${leaks.join(', ')}`);
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
