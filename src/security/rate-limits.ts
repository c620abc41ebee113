/**
 * Rate limits of the authorization side (rate-limiter-flexible, in memory): failed sign-ins per account and
 * address (a lockout with a generic error), failed token requests per client and address, registrations and
 * authorization requests per address. A limit answers 429 with Retry-After.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

export type LimitKind = 'login-account' | 'login-ip' | 'token-failure' | 'register' | 'authorize';

export interface LimitSettings {
  readonly points: number;
  readonly durationS: number;
  /** How long a key stays blocked once over (default: the window). */
  readonly blockS?: number;
}

export const DEFAULT_LIMITS: Readonly<Record<LimitKind, LimitSettings>> = {
  // 10 wrong passwords for one account from one address in 15 minutes lock it there for 15 minutes.
  'login-account': { points: 10, durationS: 900, blockS: 900 },
  // Many accounts tried from one address.
  'login-ip': { points: 100, durationS: 60, blockS: 300 },
  // Failed token requests (bad secret, bad code…) per client and address.
  'token-failure': { points: 20, durationS: 60, blockS: 120 },
  register: { points: 20, durationS: 60 },
  authorize: { points: 300, durationS: 60 },
};

export type LimitDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterS: number };

export class AuthRateLimits {
  private readonly limiters: Record<LimitKind, RateLimiterMemory>;

  constructor(settings: Partial<Record<LimitKind, LimitSettings>> = {}) {
    const all = { ...DEFAULT_LIMITS, ...settings };
    const make = (s: LimitSettings): RateLimiterMemory =>
      new RateLimiterMemory({ points: s.points, duration: s.durationS, blockDuration: s.blockS ?? 0 });
    this.limiters = {
      'login-account': make(all['login-account']),
      'login-ip': make(all['login-ip']),
      'token-failure': make(all['token-failure']),
      register: make(all.register),
      authorize: make(all.authorize),
    };
  }

  /** Whether `key` is over its limit, without counting anything. */
  async check(kind: LimitKind, key: string): Promise<LimitDecision> {
    const res = await this.limiters[kind].get(key);
    if (res === null) return { ok: true };
    const blocked = res.consumedPoints > this.points(kind) || res.remainingPoints <= 0;
    return blocked
      ? { ok: false, retryAfterS: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) }
      : { ok: true };
  }

  /** Counts one event; says whether it was still within the limit. */
  async hit(kind: LimitKind, key: string): Promise<LimitDecision> {
    try {
      await this.limiters[kind].consume(key);
      return { ok: true };
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        return { ok: false, retryAfterS: Math.max(1, Math.ceil(err.msBeforeNext / 1000)) };
      }
      throw err;
    }
  }

  /** Forgets `key` (a successful sign-in clears the account's failures). */
  async reset(kind: LimitKind, key: string): Promise<void> {
    await this.limiters[kind].delete(key);
  }

  private points(kind: LimitKind): number {
    return this.limiters[kind].points;
  }
}
