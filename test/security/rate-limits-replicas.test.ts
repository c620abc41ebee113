/**
 * Acceptance: two server processes on loopback share one rate-limit budget through Redis. Two real HTTP-mode servers
 * (each with its own limiter and Redis connection) on one PostgreSQL database and one Redis key prefix: registrations
 * sent alternately to A and B are refused from the 21st overall (memory limits would allow 40).
 * Needs both MCP_PA_TEST_DATABASE_URL and MCP_PA_TEST_REDIS_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../support/postgres.js';
import { deleteKeys, keysUnder, TEST_REDIS_URL, testRedisUrl, uniqueKeyPrefix } from '../support/redis.js';

const describeWithServerAndRedis = TEST_DATABASE_URL && TEST_REDIS_URL ? describe : describe.skip;

describeWithServerAndRedis('two replicas share one rate-limit budget (PostgreSQL + Redis)', () => {
  let db: TestDatabase;
  let a: OAuthFixture;
  let b: OAuthFixture;
  const keyPrefix = uniqueKeyPrefix('replicas');
  beforeAll(async () => {
    db = await createTestDatabase({ vector: false });
    const env = { MCP_DATABASE_URL: db.url, MCP_REDIS_URL: testRedisUrl(), MCP_REDIS_KEY_PREFIX: keyPrefix };
    a = await startOAuthFixture({ env });
    b = await startOAuthFixture({ env });
  }, 120_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
    await deleteKeys(keyPrefix);
  });

  it('registrations alternately to A and B: the 21st overall gets 429 with Retry-After, on either', async () => {
    expect(a.origin).not.toBe(b.origin);
    const metadata = (i: number) => ({
      redirect_uris: ['http://127.0.0.1/cb'],
      client_name: `Replica test ${i}`,
      token_endpoint_auth_method: 'none',
    });
    for (let i = 0; i < 20; i++) {
      const replica = i % 2 === 0 ? a : b;
      const reg = await replica.register(metadata(i));
      expect(reg.status, `registration ${i + 1}: ${JSON.stringify(reg.body)}`).toBe(201);
    }
    for (const replica of [a, b]) {
      const res = await replica.fetch(`${replica.origin}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(metadata(21)),
      });
      const body = (await res.json()) as Record<string, unknown>;
      expect(res.status, JSON.stringify(body)).toBe(429);
      expect(body['error']).toBe('rate_limited');
      const retryAfter = Number(res.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // The counter is in Redis under this run's prefix, and neither server fell back to memory.
    expect(await keysUnder(`${keyPrefix}:register:`)).toHaveLength(1);
    for (const replica of [a, b]) {
      expect(replica.logs()).toContain('rate limits shared through Redis');
      expect(replica.logs()).not.toContain('rate limits fall back to memory');
    }
  }, 60_000);
});
