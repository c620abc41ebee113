/**
 * Rate limits (rate-limiter-flexible): failed sign-ins per account and address (a lockout with a generic error,
 * longer each time within a day), failed token requests per client and address, registrations and authorization
 * requests per address, and /mcp requests per user and client. A limit answers 429 with Retry-After.
 *
 * Counters live in memory, or in Redis when configured so every replica shares one budget. Each Redis limiter has
 * the in-memory limiter of the same settings as its insurance: when Redis fails, limits are enforced from memory
 * (per process) and serving never stops.
 */
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../observability/logger.js';

export type LimitKind = 'login-account' | 'login-ip' | 'token-failure' | 'register' | 'authorize' | 'mcp';

export const LIMIT_KINDS: readonly LimitKind[] = [
  'login-account',
  'login-ip',
  'token-failure',
  'register',
  'authorize',
  'mcp',
];

export interface LimitSettings {
  readonly points: number;
  readonly durationS: number;
  /** How long a key stays blocked once over (default: the window). With `progressive`: the first block. */
  readonly blockS?: number;
  /**
   * The event that uses the last point blocks the key for `blockS` (callers check before they count, so the block
   * must start then), and each further block of the same key within `windowS` (counted from its first block) lasts
   * twice as long as the one before, up to `maxBlockS`.
   */
  readonly progressive?: { readonly maxBlockS: number; readonly windowS: number };
}

const DAY_S = 24 * 60 * 60;

export const DEFAULT_LIMITS: Readonly<Record<LimitKind, LimitSettings>> = {
  // 10 wrong passwords for one account from one address in 15 minutes lock it there for 15 minutes, then 30, 60…
  // (at most 24 hours) for each further lockout within 24 hours.
  'login-account': {
    points: 10,
    durationS: 900,
    blockS: 900,
    progressive: { maxBlockS: DAY_S, windowS: DAY_S },
  },
  // Many accounts tried from one address.
  'login-ip': { points: 100, durationS: 60, blockS: 300 },
  // Failed token requests (bad secret, bad code…) per client and address.
  'token-failure': { points: 20, durationS: 60, blockS: 120 },
  register: { points: 20, durationS: 60 },
  authorize: { points: 300, durationS: 60 },
  // /mcp requests per user and client (key: mcpLimitKey).
  mcp: { points: 600, durationS: 60 },
};

/**
 * `blockedForS`: this event was still allowed but used the last point, and the key is now blocked for that many
 * seconds (a lockout starts).
 */
export type LimitDecision =
  { readonly ok: true; readonly blockedForS?: number } | { readonly ok: false; readonly retryAfterS: number };

export interface AuthRateLimitsOptions {
  /** Per-kind overrides of DEFAULT_LIMITS. */
  readonly settings?: Partial<Record<LimitKind, LimitSettings>>;
  /** Shared counters in Redis (redis:// or rediss:// URL; its password is never logged). Unset: in memory. */
  readonly redis?: { readonly url: string; readonly keyPrefix?: string | undefined } | undefined;
  readonly logger?: Logger | undefined;
}

/** Default prefix of the Redis keys (`<prefix>:<kind>:<key>`). */
export const DEFAULT_REDIS_KEY_PREFIX = 'mcp-pa:rl';

/** The 'mcp' limit's key: one budget per user (tenant) and client. */
export function mcpLimitKey(tenant: string, clientId: string | undefined): string {
  return `${tenant}|${clientId ?? '-'}`;
}

type Limiter = RateLimiterMemory | RateLimiterRedis;

/** Milliseconds → whole seconds for Retry-After, at least 1. */
function retryAfter(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Host (and port) of a Redis URL, for logs: never the user name or password. */
function redisHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'unparsable URL';
  }
}

/** A Redis URL's password, to scrub from error texts (they should not contain it; this makes sure). */
function redisPassword(url: string): string | undefined {
  try {
    const p = decodeURIComponent(new URL(url).password);
    return p === '' ? undefined : p;
  } catch {
    return undefined;
  }
}

/** Warnings about Redis going away are spaced at least this far apart (a flapping connection logs little). */
const WARN_INTERVAL_MS = 60_000;

export class AuthRateLimits {
  private readonly limiters: Record<LimitKind, Limiter>;
  /** Lockouts counted per key within `progressive.windowS`, for the kinds that have `progressive`. */
  private readonly lockouts: Partial<Record<LimitKind, Limiter>> = {};
  private readonly settings: Readonly<Record<LimitKind, LimitSettings>>;
  private readonly redis: Redis | undefined;

  constructor(options: AuthRateLimitsOptions = {}) {
    const all: Record<LimitKind, LimitSettings> = { ...DEFAULT_LIMITS, ...options.settings };
    this.settings = all;
    const redisUrl = options.redis?.url;
    const prefix = options.redis?.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    if (redisUrl !== undefined) {
      this.redis = new Redis(redisUrl, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        // Requests never wait for a connection (no offline queue: the limiter uses memory until Redis is ready),
        // so this only decides when a connection attempt counts as failed. Longer than a busy start's event-loop
        // stalls (an embedded PGlite opening its database): 1 s made every such restart log a false fallback, and
        // the warning of a real outage in the minute after it was then held back.
        connectTimeout: 5000,
        // A stalled Redis must not hold requests: the limiter falls back to memory.
        commandTimeout: 1000,
        lazyConnect: false,
      });
      this.watch(this.redis, redisUrl, options.logger);
    }
    const make = (name: string, s: LimitSettings, blockDuration: number): Limiter => {
      const memory = new RateLimiterMemory({
        keyPrefix: name,
        points: s.points,
        duration: s.durationS,
        blockDuration,
      });
      if (this.redis === undefined) return memory;
      return new RateLimiterRedis({
        storeClient: this.redis,
        rejectIfRedisNotReady: true,
        keyPrefix: `${prefix}:${name}`,
        points: s.points,
        duration: s.durationS,
        blockDuration,
        insuranceLimiter: memory,
      });
    };
    const limiters: Partial<Record<LimitKind, Limiter>> = {};
    for (const kind of LIMIT_KINDS) {
      const s = all[kind];
      // Progressive kinds block by hand (see hit); the others block for blockS as the library does.
      limiters[kind] = make(kind, s, s.progressive ? 0 : (s.blockS ?? 0));
      if (s.progressive) {
        this.lockouts[kind] = make(
          `${kind}-lockouts`,
          { points: Number.MAX_SAFE_INTEGER, durationS: s.progressive.windowS },
          0,
        );
      }
    }
    this.limiters = limiters as Record<LimitKind, Limiter>;
  }

  /** Logs once when Redis becomes unavailable and once when it is back (the limits meanwhile run from memory). */
  private watch(client: Redis, url: string, logger: Logger | undefined): void {
    const host = redisHost(url);
    const password = redisPassword(url);
    let state: 'unknown' | 'up' | 'down' = 'unknown';
    let warned = false;
    let lastWarnAt = -Infinity;
    const down = (reason: string): void => {
      if (state === 'down') return;
      state = 'down';
      const now = Date.now();
      warned = now - lastWarnAt >= WARN_INTERVAL_MS;
      if (!warned) return;
      lastWarnAt = now;
      const safe = password !== undefined ? reason.split(password).join('***') : reason;
      logger?.warn({ redis: host, reason: safe }, 'rate limits fall back to memory: Redis unavailable');
    };
    client.on('error', (err: NodeJS.ErrnoException) => down(err.code ?? err.message));
    client.on('close', () => {
      if (state === 'up') down('connection closed');
    });
    client.on('ready', () => {
      const before = state;
      state = 'up';
      if (before === 'unknown') logger?.info({ redis: host }, 'rate limits shared through Redis');
      else if (before === 'down' && warned) {
        logger?.info({ redis: host }, 'rate limits shared through Redis again: Redis available');
      }
    });
  }

  /** Whether `key` is over its limit (or blocked), without counting anything. */
  async check(kind: LimitKind, key: string): Promise<LimitDecision> {
    const res = await this.limiters[kind].get(key);
    if (res === null) return { ok: true };
    const blocked = res.consumedPoints > this.settings[kind].points || res.remainingPoints <= 0;
    return blocked ? { ok: false, retryAfterS: retryAfter(res.msBeforeNext) } : { ok: true };
  }

  /** Counts one event; says whether it was still within the limit. */
  async hit(kind: LimitKind, key: string): Promise<LimitDecision> {
    let res: RateLimiterRes;
    try {
      res = await this.limiters[kind].consume(key);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      return { ok: false, retryAfterS: retryAfter(err.msBeforeNext) };
    }
    const { points, progressive, blockS } = this.settings[kind];
    // The event that used the last point (exactly one, atomically, across replicas) starts the block — a lockout,
    // growing with each repeat when progressive; it was itself still within the limit, the next check or hit is
    // refused. (Callers check before they count, so a block that waited for an event over the limit never began.)
    if (res.consumedPoints === points) {
      if (progressive !== undefined)
        return { ok: true, blockedForS: await this.lockOut(kind, key, progressive.maxBlockS) };
      if (blockS !== undefined && blockS > 0) {
        await this.limiters[kind].block(key, blockS);
        return { ok: true, blockedForS: blockS };
      }
    }
    return { ok: true };
  }

  /** Calls `hit('mcp', …)` for one /mcp request of a user through a client. */
  hitMcp(tenant: string, clientId: string | undefined): Promise<LimitDecision> {
    return this.hit('mcp', mcpLimitKey(tenant, clientId));
  }

  /** Forgets `key` (a successful sign-in clears the account's failures and its lockout history). */
  async reset(kind: LimitKind, key: string): Promise<void> {
    await this.limiters[kind].delete(key);
    await this.lockouts[kind]?.delete(key);
  }

  /**
   * Resolves true once Redis is ready, false when it fails first, after `timeoutMs`, or without Redis. Until then
   * the limits count in memory: a server waits for it briefly at start so its first requests already share counters.
   */
  async waitForRedis(timeoutMs = 1000): Promise<boolean> {
    const client = this.redis;
    if (client === undefined || client.status === 'end') return false;
    if (client.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        resolve(value);
      };
      const onReady = (): void => done(true);
      const onError = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      client.once('ready', onReady);
      client.once('error', onError);
    });
  }

  /** Disconnects from Redis (the in-memory counters need nothing). */
  async close(): Promise<void> {
    const client = this.redis;
    if (client === undefined || client.status === 'end') return;
    if (client.status === 'ready') {
      try {
        await client.quit();
        return;
      } catch {
        // Fall through to a hard disconnect.
      }
    }
    client.disconnect();
  }

  /** Blocks `key` for the next lockout's duration (doubling within the window). */
  private async lockOut(kind: LimitKind, key: string, maxBlockS: number): Promise<number> {
    const counter = this.lockouts[kind];
    const first = this.settings[kind].blockS ?? this.settings[kind].durationS;
    let n = 1;
    if (counter !== undefined) n = (await counter.consume(key)).consumedPoints;
    const seconds = Math.min(maxBlockS, first * 2 ** Math.min(n - 1, 40));
    await this.limiters[kind].block(key, seconds);
    return seconds;
  }
}
