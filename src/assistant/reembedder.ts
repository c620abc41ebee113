import type { Logger } from '../observability/logger.js';
import type { EmbeddingProvider } from '../storage/embeddings/provider.js';
import type { Store } from '../storage/model.js';

/** What the worker needs of the assistant: its provider and its one-tenant re-embedding pass. */
export interface Reembeddable {
  readonly embeddings: EmbeddingProvider | undefined;
  reembed(tenant: string, batch?: number, onProgress?: (done: number) => void): Promise<number>;
}

export interface ReembedderOptions {
  readonly assistant: Reembeddable;
  readonly store: Pick<Store, 'tenantsNeedingVectors' | 'hasPendingVectors'>;
  readonly logger: Logger;
  /** Tenants asked for at a time. */
  readonly tenantBatch?: number;
  /** Items per store round trip of assistant.reembed. */
  readonly itemBatch?: number;
  /** First wait after a failed pass; doubles with each further failure (with jitter) up to maxRetryDelayMs. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly random?: () => number;
}

/** Outcome of one pass over the tenants. */
type PassResult = 'done' | 'failed' | 'stopped';

class Stopped extends Error {
  constructor() {
    super('re-embedding stopped');
  }
}

/**
 * Embeds, in the background, every item whose vector is missing, failed earlier (pending) or was made by another
 * model or size: at start, when told (after a failure, or a change), and again after a backoff while the provider
 * keeps failing. One tenant at a time (concurrency 1); close() stops it after the current store batch.
 * Logs counts only, never text.
 */
export class Reembedder {
  private readonly tenantBatch: number;
  private readonly itemBatch: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly random: () => number;
  private running: Promise<void> | null = null;
  private again = false;
  /** A failure was reported while a pass was running (perhaps for a tenant that pass had already done). */
  private failedMeanwhile = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  private waiters: (() => void)[] = [];
  private lastResult: PassResult | null = null;

  constructor(private readonly options: ReembedderOptions) {
    this.tenantBatch = options.tenantBatch ?? 100;
    this.itemBatch = options.itemBatch ?? 200;
    this.retryDelayMs = options.retryDelayMs ?? 60_000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 10 * 60_000;
    this.random = options.random ?? Math.random;
  }

  /** Starts a pass now; the promise resolves when that first pass ends (whether or not everything was embedded). */
  start(): Promise<void> {
    this.kick();
    return this.running ?? Promise.resolve();
  }

  /** Asks for a pass now (or right after the one running). Ignored after close(). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.clearTimer();
    this.running = this.run();
  }

  /** Told that embedding failed somewhere (a write's items are now pending): try again after a backoff. */
  failed(): void {
    if (this.closed || this.timer) return;
    if (this.running) {
      this.failedMeanwhile = true;
      return;
    }
    this.schedule(Math.max(1, this.failures));
  }

  /** Resolves once a pass has found nothing left to embed and no pass is running or scheduled. */
  settled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Whether a retry is waiting on its backoff timer. */
  get retryScheduled(): boolean {
    return this.timer !== null;
  }

  /** Stops promptly: no new pass, the running one ends after its current batch. */
  async close(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    await this.running;
  }

  private isSettled(): boolean {
    return !this.running && !this.timer && this.lastResult === 'done';
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(failures: number): void {
    const base = Math.min(this.retryDelayMs * 2 ** (failures - 1), this.maxRetryDelayMs);
    const delay = Math.round(base / 2 + (this.random() * base) / 2);
    this.options.logger.info({ delay_ms: delay, failures }, 're-embedding will try again later');
    this.timer = setTimeout(() => {
      this.timer = null;
      this.kick();
    }, delay);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        this.again = false;
        this.failedMeanwhile = false;
        let result: PassResult;
        try {
          result = await this.pass();
        } catch (err) {
          if (err instanceof Stopped) result = 'stopped';
          else {
            this.options.logger.warn({ err: (err as Error).message }, 're-embedding failed');
            result = 'failed';
          }
        }
        this.lastResult = result;
        if (result === 'stopped' || this.closed) return;
        if (result === 'failed') {
          this.failures++;
          this.schedule(this.failures);
          return;
        }
        this.failures = 0;
        if (this.failedMeanwhile) {
          this.lastResult = 'failed';
          this.schedule(1);
          return;
        }
        if (!this.again) return;
      }
    } finally {
      this.running = null;
      if (this.isSettled()) for (const w of this.waiters.splice(0)) w();
    }
  }

  private async pass(): Promise<PassResult> {
    const { assistant, store, logger } = this.options;
    const model = assistant.embeddings?.model;
    if (model === undefined) return 'done';
    const seen = new Set<string>();
    let items = 0;
    const stopIfClosed = (): void => {
      if (this.closed) throw new Stopped();
    };
    for (;;) {
      stopIfClosed();
      // Asking for more than were seen lets a pass get past tenants it already handled (and that got new
      // pending items meanwhile) without a cursor.
      const tenants = await store.tenantsNeedingVectors(model, seen.size + this.tenantBatch);
      const fresh = tenants.filter((t) => !seen.has(t));
      if (fresh.length === 0) break;
      for (const tenant of fresh) {
        stopIfClosed();
        seen.add(tenant);
        const n = await assistant.reembed(tenant, this.itemBatch, stopIfClosed);
        items += n;
        if (await store.hasPendingVectors(tenant, model)) {
          // The provider failed (the assistant stored the items as pending): stop and retry after a backoff.
          logger.warn(
            { tenants: seen.size, items, model },
            're-embedding stopped: the embedding provider failed; items stay pending',
          );
          return 'failed';
        }
        logger.debug({ items: n, model }, 're-embedded one tenant');
      }
    }
    if (items > 0) logger.info({ tenants: seen.size, items, model }, 'embedded items for semantic search');
    return 'done';
  }
}

/**
 * The same provider, reporting each failure to `onFailure` (which typically calls Reembedder.failed()),
 * so items left pending by a failed write are picked up later without anyone asking.
 */
export function reportingFailures(
  provider: EmbeddingProvider,
  onFailure: (err: unknown) => void,
): EmbeddingProvider {
  return {
    get model() {
      return provider.model;
    },
    get dimensions() {
      return provider.dimensions;
    },
    get relevanceFloor() {
      return provider.relevanceFloor;
    },
    async embed(texts) {
      try {
        return await provider.embed(texts);
      } catch (err) {
        onFailure(err);
        throw err;
      }
    },
    close() {
      provider.close?.();
    },
  };
}
