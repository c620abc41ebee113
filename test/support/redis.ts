/**
 * The real Redis server for tests: only when MCP_PA_TEST_REDIS_URL is set (CI sets it to redis://127.0.0.1:6379/0).
 * Tests never flush a database: each uses keys under a unique prefix (uniqueKeyPrefix) and deletes them afterwards
 * (deleteKeys), so runs in parallel never collide.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe } from 'vitest';

export const TEST_REDIS_URL: string | undefined = process.env['MCP_PA_TEST_REDIS_URL'] || undefined;

/** `describe` when a real Redis is configured, `describe.skip` otherwise. */
export const describeWithRedis = TEST_REDIS_URL ? describe : describe.skip;

/** The test Redis URL; throws when none is configured (call it inside describeWithRedis only). */
export function testRedisUrl(): string {
  if (!TEST_REDIS_URL) throw new Error('MCP_PA_TEST_REDIS_URL is not set');
  return TEST_REDIS_URL;
}

/** A key prefix no other test run uses. */
export function uniqueKeyPrefix(label = 'test'): string {
  return `mcp-pa-test:${label}:${process.pid}:${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under `prefix` in the test Redis; returns how many were deleted. */
export async function deleteKeys(prefix: string): Promise<number> {
  const client = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await client.del(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    await client.quit();
  }
}

/** Keys under `prefix` in the test Redis (to show the counters really are there). */
export async function keysUnder(prefix: string): Promise<string[]> {
  const client = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    return await client.keys(`${prefix}*`);
  } finally {
    await client.quit();
  }
}
