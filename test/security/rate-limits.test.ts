/**
 * AuthRateLimits: every kind's limit and Retry-After, the progressive login lockout, reset; and with a real Redis
 * (MCP_PA_TEST_REDIS_URL): two instances ("replicas") share one budget, an unreachable Redis falls back to memory
 * with one warning, and a Redis that stops and comes back is survived (limits from memory meanwhile).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import {
  AuthRateLimits,
  DEFAULT_LIMITS,
  LIMIT_KINDS,
  mcpLimitKey,
  type AuthRateLimitsOptions,
  type LimitDecision,
} from '../../src/security/rate-limits.js';
import { deleteKeys, describeWithRedis, keysUnder, testRedisUrl, uniqueKeyPrefix } from '../support/redis.js';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function captureLogger(): {
  logger: ReturnType<typeof createLogger>;
  lines: () => LogLine[];
  text: () => string;
} {
  let text = '';
  const logger = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        text += chunk.toString('utf8');
        done();
      },
    }),
  );
  return {
    logger,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as LogLine),
  };
}

const FALLBACK = 'rate limits fall back to memory: Redis unavailable';

async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** `n` hits; returns the decisions. */
async function hits(
  limits: AuthRateLimits,
  kind: Parameters<AuthRateLimits['hit']>[0],
  key: string,
  n: number,
) {
  const out: LimitDecision[] = [];
  for (let i = 0; i < n; i++) out.push(await limits.hit(kind, key));
  return out;
}

const opened: AuthRateLimits[] = [];
function open(options: AuthRateLimitsOptions = {}): AuthRateLimits {
  const limits = new AuthRateLimits(options);
  opened.push(limits);
  return limits;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((l) => l.close()));
});

describe('AuthRateLimits in memory', () => {
  it('every kind allows its points, then refuses with the block (or the window) as Retry-After', async () => {
    // After `points` events, check refuses: for the block where one is set (the event that used the last point
    // starts it), else for the rest of the window.
    const checked: Record<string, number> = {
      'login-account': 900,
      'login-ip': 300,
      'token-failure': 120,
      register: 60,
      authorize: 60,
      mcp: 60,
    };
    // One event more is refused and blocks for blockS where set.
    const over: Record<string, number> = {
      'login-account': 900,
      'login-ip': 300,
      'token-failure': 120,
      register: 60,
      authorize: 60,
      mcp: 60,
    };
    expect(Object.keys(DEFAULT_LIMITS).sort()).toEqual([...LIMIT_KINDS].sort());
    expect(DEFAULT_LIMITS.mcp).toEqual({ points: 600, durationS: 60 });
    expect(DEFAULT_LIMITS.register.points).toBe(20);
    const limits = open();
    for (const kind of LIMIT_KINDS) {
      const { points } = DEFAULT_LIMITS[kind];
      const decisions = await hits(limits, kind, 'k1', points);
      expect(
        decisions.every((d) => d.ok),
        kind,
      ).toBe(true);
      // Only the last allowed event reports the block it started.
      expect(
        decisions.slice(0, -1).every((d) => d.ok && d.blockedForS === undefined),
        kind,
      ).toBe(true);
      expect(decisions.at(-1), kind).toEqual(
        DEFAULT_LIMITS[kind].blockS ? { ok: true, blockedForS: DEFAULT_LIMITS[kind].blockS } : { ok: true },
      );
      expect(await limits.check(kind, 'k1'), kind).toEqual({ ok: false, retryAfterS: checked[kind] });
      expect(await limits.hit(kind, 'k1'), kind).toEqual({ ok: false, retryAfterS: over[kind] });
      expect(await limits.check(kind, 'k1'), kind).toEqual({ ok: false, retryAfterS: over[kind] });
      // Another key has its own budget; check counts nothing.
      expect(await limits.check(kind, 'k2'), kind).toEqual({ ok: true });
      expect(await limits.hit(kind, 'k2'), kind).toEqual({ ok: true });
    }
  });

  it('check reports within-limit keys as allowed and counts nothing', async () => {
    const limits = open({ settings: { register: { points: 2, durationS: 60 } } });
    for (let i = 0; i < 5; i++) expect(await limits.check('register', 'ip')).toEqual({ ok: true });
    expect(await limits.hit('register', 'ip')).toEqual({ ok: true });
    expect(await limits.check('register', 'ip')).toEqual({ ok: true });
    expect(await limits.hit('register', 'ip')).toEqual({ ok: true });
    expect((await limits.check('register', 'ip')).ok).toBe(false);
  });

  it('the mcp limit is per user and client', async () => {
    const limits = open({ settings: { mcp: { points: 3, durationS: 60 } } });
    expect(mcpLimitKey('alice', 'client-1')).toBe('alice|client-1');
    expect(mcpLimitKey('alice', undefined)).toBe('alice|-');
    for (let i = 0; i < 3; i++) expect(await limits.hitMcp('alice', 'client-1')).toEqual({ ok: true });
    const over = await limits.hitMcp('alice', 'client-1');
    expect(over.ok).toBe(false);
    expect(over.ok ? 0 : over.retryAfterS).toBeGreaterThan(0);
    expect(over.ok ? 0 : over.retryAfterS).toBeLessThanOrEqual(60);
    expect(await limits.hitMcp('alice', 'client-2')).toEqual({ ok: true });
    expect(await limits.hitMcp('bob', 'client-1')).toEqual({ ok: true });
    expect((await limits.hit('mcp', 'alice|client-1')).ok).toBe(false);
  });

  it('the login lockout grows with each lockout: 1 s, 2 s, then capped at 3 s', async () => {
    const limits = open({
      settings: {
        'login-account': { points: 2, durationS: 60, blockS: 1, progressive: { maxBlockS: 3, windowS: 60 } },
      },
    });
    // `points` failures lock the key out (callers check before each attempt): the block is Retry-After.
    const lockOut = async (key: string): Promise<number> => {
      expect((await hits(limits, 'login-account', key, 2)).every((x) => x.ok)).toBe(true);
      const during = await limits.check('login-account', key);
      expect(during.ok).toBe(false);
      return during.ok ? 0 : during.retryAfterS;
    };
    const blocks: number[] = [];
    for (let i = 0; i < 3; i++) {
      blocks.push(await lockOut('ip|alice'));
      // Further failures during the block are refused and do not lengthen it.
      expect(await limits.hit('login-account', 'ip|alice')).toEqual({ ok: false, retryAfterS: blocks[i] });
      expect(await limits.check('login-account', 'ip|alice')).toEqual({ ok: false, retryAfterS: blocks[i] });
      if (i < 2) await until(async () => (await limits.check('login-account', 'ip|alice')).ok, 5_000);
    }
    expect(blocks).toEqual([1, 2, 3]);
    // Another account from the same address starts at the first duration.
    expect(await lockOut('ip|bob')).toBe(1);
  }, 15_000);

  it('the default lockout is 15 minutes, then 30, capped at 24 hours', async () => {
    expect(DEFAULT_LIMITS['login-account']).toMatchObject({
      points: 10,
      durationS: 900,
      blockS: 900,
      progressive: { maxBlockS: 86_400, windowS: 86_400 },
    });
    const limits = open();
    expect((await hits(limits, 'login-account', 'ip|carol', 10)).every((d) => d.ok)).toBe(true);
    expect(await limits.check('login-account', 'ip|carol')).toEqual({ ok: false, retryAfterS: 900 });
  });

  it('reset forgets the failures and the lockout history', async () => {
    const limits = open({
      settings: {
        'login-account': {
          points: 2,
          durationS: 60,
          blockS: 1,
          progressive: { maxBlockS: 100, windowS: 60 },
        },
        register: { points: 1, durationS: 60 },
      },
    });
    await hits(limits, 'login-account', 'k', 2);
    expect(await limits.check('login-account', 'k')).toEqual({ ok: false, retryAfterS: 1 });
    await limits.reset('login-account', 'k');
    expect(await limits.check('login-account', 'k')).toEqual({ ok: true });
    // The history is gone too: the next lockout is the first again (1 s, not 2 s).
    await hits(limits, 'login-account', 'k', 2);
    expect(await limits.check('login-account', 'k')).toEqual({ ok: false, retryAfterS: 1 });
    expect(await limits.hit('register', 'ip')).toEqual({ ok: true });
    expect((await limits.hit('register', 'ip')).ok).toBe(false);
    await limits.reset('register', 'ip');
    expect(await limits.hit('register', 'ip')).toEqual({ ok: true });
  });

  it('without Redis, waitForRedis says false and close is harmless', async () => {
    const limits = open();
    expect(await limits.waitForRedis(10)).toBe(false);
    await limits.close();
    await limits.close();
  });
});

describeWithRedis('AuthRateLimits on Redis', () => {
  const prefixes: string[] = [];
  afterEach(async () => {
    for (const p of prefixes.splice(0)) await deleteKeys(p);
  });
  function prefix(): string {
    const p = uniqueKeyPrefix('rl');
    prefixes.push(p);
    return p;
  }

  it('two replicas on the same Redis and prefix share one budget; another prefix has its own', async () => {
    const keyPrefix = prefix();
    const url = testRedisUrl();
    const a = open({ redis: { url, keyPrefix } });
    const b = open({ redis: { url, keyPrefix } });
    expect(await a.waitForRedis(3000)).toBe(true);
    expect(await b.waitForRedis(3000)).toBe(true);
    for (let i = 0; i < 20; i++) {
      const replica = i % 2 === 0 ? a : b;
      expect(await replica.hit('register', '127.0.0.1'), `registration ${i + 1}`).toEqual({ ok: true });
    }
    // 10 on each: memory limits would allow 20 more on either.
    for (const replica of [a, b]) {
      const d = await replica.hit('register', '127.0.0.1');
      expect(d.ok).toBe(false);
      expect(d.ok ? 0 : d.retryAfterS).toBeGreaterThan(0);
      expect(d.ok ? 0 : d.retryAfterS).toBeLessThanOrEqual(60);
      expect((await replica.check('register', '127.0.0.1')).ok).toBe(false);
    }
    expect(await keysUnder(`${keyPrefix}:register:`)).toEqual([`${keyPrefix}:register:127.0.0.1`]);
    const elsewhere = open({ redis: { url, keyPrefix: prefix() } });
    expect(await elsewhere.waitForRedis(3000)).toBe(true);
    expect(await elsewhere.hit('register', '127.0.0.1')).toEqual({ ok: true });
  });

  it('a lockout made on one replica is seen by the other, and grows across them', async () => {
    const keyPrefix = prefix();
    const url = testRedisUrl();
    const settings = {
      'login-account': { points: 2, durationS: 60, blockS: 1, progressive: { maxBlockS: 60, windowS: 60 } },
    };
    const a = open({ redis: { url, keyPrefix }, settings });
    const b = open({ redis: { url, keyPrefix }, settings });
    expect(await a.waitForRedis(3000)).toBe(true);
    expect(await b.waitForRedis(3000)).toBe(true);
    expect(await a.hit('login-account', 'ip|dave')).toEqual({ ok: true });
    // The other replica's failure uses the last point: it starts the (first, 1 s) lockout and says so.
    expect(await b.hit('login-account', 'ip|dave')).toEqual({ ok: true, blockedForS: 1 });
    expect(await a.check('login-account', 'ip|dave')).toEqual({ ok: false, retryAfterS: 1 });
    expect(await b.check('login-account', 'ip|dave')).toEqual({ ok: false, retryAfterS: 1 });
    expect(await a.hit('login-account', 'ip|dave')).toEqual({ ok: false, retryAfterS: 1 });
    await until(async () => (await b.check('login-account', 'ip|dave')).ok, 5_000);
    expect(await b.hit('login-account', 'ip|dave')).toEqual({ ok: true });
    // The second lockout, counted across both replicas, is twice as long.
    expect(await a.hit('login-account', 'ip|dave')).toEqual({ ok: true, blockedForS: 2 });
    expect(await b.check('login-account', 'ip|dave')).toEqual({ ok: false, retryAfterS: 2 });
    expect(await a.check('login-account', 'ip|dave')).toEqual({ ok: false, retryAfterS: 2 });
    expect(await keysUnder(`${keyPrefix}:login-account-lockouts:`)).toHaveLength(1);
    await b.reset('login-account', 'ip|dave');
    expect(await a.check('login-account', 'ip|dave')).toEqual({ ok: true });
  }, 15_000);

  it('an unreachable Redis: limits still enforced from memory, one warning without the password, no throw', async () => {
    const log = captureLogger();
    const limits = open({
      redis: { url: 'redis://:s3cret-redis-pw@127.0.0.1:1/0', keyPrefix: prefix() },
      settings: { register: { points: 20, durationS: 60 } },
      logger: log.logger,
    });
    expect(await limits.waitForRedis(3000)).toBe(false);
    const decisions = await hits(limits, 'register', '127.0.0.1', 21);
    expect(decisions.slice(0, 20).every((d) => d.ok)).toBe(true);
    expect(decisions[20]?.ok).toBe(false);
    expect((await limits.check('register', '127.0.0.1')).ok).toBe(false);
    await limits.reset('register', '127.0.0.1');
    expect(await limits.hit('register', '127.0.0.1')).toEqual({ ok: true });
    // ioredis keeps retrying (and failing) meanwhile: still one warning.
    await until(() => log.lines().some((l) => l.msg === FALLBACK), 3000);
    await sleep(1500);
    const warnings = log.lines().filter((l) => l.msg === FALLBACK);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.['redis']).toBe('127.0.0.1:1');
    expect(warnings[0]?.level).toBe(40);
    expect(log.text()).not.toContain('s3cret-redis-pw');
  });

  const redisServer = spawnSync('redis-server', ['--version']).status === 0;

  it.skipIf(!redisServer)(
    'Redis stopping mid-way: limits go on from memory (one warning), and are shared again once it is back',
    async () => {
      const port = await freePort();
      let server = await startRedis(port);
      const log = captureLogger();
      try {
        const limits = open({
          redis: { url: `redis://127.0.0.1:${port}/0` },
          settings: { authorize: { points: 3, durationS: 60 } },
          logger: log.logger,
        });
        expect(await limits.waitForRedis(3000)).toBe(true);
        expect(await limits.hit('authorize', 'x')).toEqual({ ok: true });
        await stopRedis(server);
        await until(() => log.lines().some((l) => l.msg === FALLBACK), 3000);
        // From memory now: a fresh budget of 3, then refused; nothing throws.
        const d = await hits(limits, 'authorize', 'x', 4);
        expect(d.map((x) => x.ok)).toEqual([true, true, true, false]);
        server = await startRedis(port);
        await until(() => log.lines().some((l) => /Redis available/.test(l.msg)), 8000);
        expect(log.lines().filter((l) => l.msg === FALLBACK)).toHaveLength(1);
        // Back on Redis (emptied by the restart): its own budget again.
        expect(await limits.hit('authorize', 'x')).toEqual({ ok: true });
      } finally {
        await stopRedis(server);
      }
    },
    30_000,
  );
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A throwaway redis-server on 127.0.0.1:port (no persistence), answering PING. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp'],
    { stdio: 'ignore' },
  );
  await until(
    () =>
      spawnSync('redis-cli', ['-p', String(port), 'ping'])
        .stdout?.toString()
        .trim() === 'PONG',
    5000,
  );
  return child;
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}
