import type { Logger } from '../../observability/logger.js';
import type { EmbeddingProvider } from './provider.js';
import { clip } from '../../unicode.js';

export interface OpenAICompatibleOptions {
  /** Base URL of the API, e.g. https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama). */
  readonly baseUrl: string;
  readonly model: string;
  /** Sent as a bearer token when set. Never logged, never part of an error message. */
  readonly apiKey?: string | undefined;
  /** Length of the vectors the model returns; every response is checked against it. */
  readonly dimensions: number;
  /** Ask the model for `dimensions` (models without that parameter are detected and asked without it). */
  readonly sendDimensions?: boolean;
  /** Per-request time limit. */
  readonly timeoutMs?: number;
  /** Further attempts after a network error, a timeout, 408, 429 or 5xx. */
  readonly maxRetries?: number;
  /** Texts per request. */
  readonly batchSize?: number;
  readonly relevanceFloor?: number;
  /** First backoff delay; doubles on each retry, with jitter. */
  readonly retryBaseMs?: number;
  /** Longest wait between two attempts, and the longest Retry-After honoured before giving up on a call. */
  readonly maxRetryDelayMs?: number;
  /** After a failed call, further calls fail at once for this long (or the server's Retry-After), then try again. */
  readonly cooldownMs?: number;
  /** Texts are cut to this many characters so one long document cannot fail a whole batch. */
  readonly maxInputChars?: number;
  readonly logger?: Logger | undefined;
  readonly random?: () => number;
}

/** Why an embedding call failed. `status` is the HTTP status when the server answered. */
export class EmbeddingError extends Error {
  readonly status: number | undefined;
  readonly retryable: boolean;
  /** When the server asked to wait (Retry-After), in milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(
    message: string,
    options: { status?: number; retryable: boolean; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EmbeddingError';
    this.status = options.status;
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
  }
}

interface ResponseItem {
  index: number;
  embedding: number[];
}

const SERVER_MESSAGE_CHARS = 200;

/**
 * Embeddings from any server speaking OpenAI's `POST /embeddings` (OpenAI, Ollama, vLLM, LM Studio, llama.cpp…).
 * Batches texts, retries transient failures with exponential backoff and jitter (honouring Retry-After within a
 * bound), checks the vector length, normalises vectors to unit length and orders them by the response's `index`.
 */
export class OpenAICompatibleProvider implements EmbeddingProvider {
  readonly model: string;
  readonly dimensions: number;
  readonly relevanceFloor: number;
  private readonly endpoint: string;
  private readonly remoteModel: string;
  /** A true private field: not in JSON.stringify or util.inspect output. */
  readonly #apiKey: string | undefined;
  private sendDimensions: boolean;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly batchSize: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly cooldownMs: number;
  private readonly maxInputChars: number;
  private readonly logger: Logger | undefined;
  private readonly random: () => number;
  private readonly closing = new AbortController();
  /** While set and in the future, calls fail at once with this error (the service failed recently). */
  private openUntil = 0;
  private lastError: EmbeddingError | undefined;

  constructor(options: OpenAICompatibleOptions) {
    const url = new URL(options.baseUrl);
    if (url.username || url.password) {
      throw new EmbeddingError('embeddings.base_url must not contain credentials (use embeddings.api_key)', {
        retryable: false,
      });
    }
    this.endpoint = `${url.origin}${url.pathname.replace(/\/+$/, '')}/embeddings`;
    this.remoteModel = options.model;
    this.dimensions = options.dimensions;
    this.model = `openai:${options.model}:${options.dimensions}`;
    this.#apiKey = options.apiKey || undefined;
    this.sendDimensions = options.sendDimensions ?? true;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.batchSize = options.batchSize ?? 64;
    this.relevanceFloor = options.relevanceFloor ?? 0.2;
    this.retryBaseMs = options.retryBaseMs ?? 500;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.cooldownMs = options.cooldownMs ?? 30_000;
    this.maxInputChars = options.maxInputChars ?? 8_000;
    this.logger = options.logger;
    this.random = options.random ?? Math.random;
  }

  /** The URL requests go to (no secret in it). */
  get url(): string {
    return this.endpoint;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    this.checkOpen();
    const out: Float32Array[] = [];
    try {
      for (let start = 0; start < texts.length; start += this.batchSize) {
        const batch = texts.slice(start, start + this.batchSize).map((t) => this.prepare(t));
        out.push(...(await this.request(batch)));
      }
    } catch (err) {
      const error =
        err instanceof EmbeddingError
          ? err
          : new EmbeddingError(`embeddings: ${this.scrub(String(err))}`, { retryable: false });
      this.trip(error);
      throw error;
    }
    this.lastError = undefined;
    return out;
  }

  /** Aborts requests in flight and makes every later call fail at once. */
  close(): void {
    this.closing.abort();
  }

  private prepare(text: string): string {
    const t = clip(text, this.maxInputChars);
    // Some servers refuse empty strings.
    return t.trim() === '' ? ' ' : t;
  }

  private checkOpen(): void {
    if (this.closing.signal.aborted) {
      throw new EmbeddingError('embeddings: the provider is closed', { retryable: false });
    }
    const now = Date.now();
    if (this.lastError && now < this.openUntil) {
      const wait = Math.ceil((this.openUntil - now) / 1000);
      throw new EmbeddingError(
        `embeddings: not trying for another ${wait} s after a failure (${this.lastError.message})`,
        {
          retryable: true,
          retryAfterMs: this.openUntil - now,
          ...(this.lastError.status === undefined ? {} : { status: this.lastError.status }),
        },
      );
    }
  }

  /** After a failed call, further calls fail fast for a while: writes stay quick and items wait as pending. */
  private trip(error: EmbeddingError): void {
    if (this.closing.signal.aborted) return;
    // A request the server found malformed (one odd text) says nothing about the service.
    if (error.status === 400 || error.status === 413 || error.status === 422) return;
    this.lastError = error;
    this.openUntil = Date.now() + Math.max(this.cooldownMs, error.retryAfterMs ?? 0);
    this.logger?.warn(
      { endpoint: this.endpoint, status: error.status ?? null, pause_ms: this.openUntil - Date.now() },
      'embedding service failed; items wait as pending and are embedded later',
    );
  }

  private async request(input: string[]): Promise<Float32Array[]> {
    for (let attempt = 0; ; attempt++) {
      let error: EmbeddingError;
      try {
        return await this.attempt(input);
      } catch (err) {
        if (!(err instanceof EmbeddingError)) throw err;
        error = err;
      }
      if (
        error.status === 400 &&
        this.sendDimensions &&
        /dimension|matryoshka/i.test(error.message) &&
        attempt === 0
      ) {
        // The model does not take a `dimensions` parameter: ask without it from now on (its length is still checked).
        this.sendDimensions = false;
        this.logger?.info(
          { endpoint: this.endpoint },
          'embedding model does not accept "dimensions"; asking without it',
        );
        attempt = -1;
        continue;
      }
      if (!error.retryable || attempt >= this.maxRetries || this.closing.signal.aborted) throw error;
      let delay: number;
      if (error.retryAfterMs !== undefined) {
        if (error.retryAfterMs > this.maxRetryDelayMs) throw error; // the service asked for a long pause
        delay = error.retryAfterMs;
      } else {
        const base = Math.min(this.retryBaseMs * 2 ** attempt, this.maxRetryDelayMs);
        delay = Math.round(base / 2 + (this.random() * base) / 2);
      }
      this.logger?.debug(
        { endpoint: this.endpoint, status: error.status ?? null, attempt: attempt + 1, delay_ms: delay },
        'embedding request failed; retrying',
      );
      await this.sleep(delay);
    }
  }

  private async attempt(input: string[]): Promise<Float32Array[]> {
    const body: Record<string, unknown> = { model: this.remoteModel, input, encoding_format: 'float' };
    if (this.sendDimensions) body['dimensions'] = this.dimensions;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
    };
    if (this.#apiKey) headers['authorization'] = `Bearer ${this.#apiKey}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = AbortSignal.any([timeout, this.closing.signal]);
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.endpoint, { method: 'POST', headers, body: JSON.stringify(body), signal });
      text = await response.text();
    } catch (err) {
      if (this.closing.signal.aborted) {
        throw new EmbeddingError('embeddings: the provider is closed', { retryable: false });
      }
      if (timeout.aborted) {
        throw new EmbeddingError(
          `embeddings: POST ${this.endpoint} timed out after ${this.timeoutMs} ms (embeddings.timeout_ms)`,
          { retryable: true },
        );
      }
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      const code = (cause as NodeJS.ErrnoException | undefined)?.code;
      const reason = code ?? (cause instanceof Error ? cause.message : String(cause));
      throw new EmbeddingError(`embeddings: cannot reach ${this.endpoint} (${this.scrub(reason)})`, {
        retryable: true,
      });
    }
    if (!response.ok) throw this.httpError(response, text);
    return this.parse(text, input.length);
  }

  private httpError(response: Response, text: string): EmbeddingError {
    const status = response.status;
    const retryable = status === 408 || status === 429 || status >= 500;
    const retryAfterMs = retryable ? parseRetryAfter(response.headers.get('retry-after')) : undefined;
    let hint = '';
    if (status === 401 || status === 403) hint = ' (check embeddings.api_key)';
    else if (status === 404) hint = ' (check embeddings.base_url and embeddings.model)';
    else if (retryAfterMs !== undefined && retryAfterMs > this.maxRetryDelayMs)
      hint = ` (the server asked to retry after ${Math.ceil(retryAfterMs / 1000)} s)`;
    const detail = serverMessage(text);
    return new EmbeddingError(
      this.scrub(
        `embeddings: POST ${this.endpoint} answered ${status}${response.statusText ? ` ${response.statusText}` : ''}` +
          `${detail ? `: ${detail}` : ''}${hint}`,
      ),
      { status, retryable, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
    );
  }

  private parse(text: string, expected: number): Float32Array[] {
    const bad = (why: string): EmbeddingError =>
      new EmbeddingError(`embeddings: ${this.endpoint} returned ${why}`, { retryable: false });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw bad('a response that is not JSON');
    }
    const data = (json as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw bad('no "data" list');
    if (data.length !== expected) throw bad(`${data.length} vectors for ${expected} texts`);
    const out: (Float32Array | undefined)[] = new Array<Float32Array | undefined>(expected);
    for (const [position, raw] of data.entries()) {
      const item = raw as Partial<ResponseItem> | null;
      const index = item?.index ?? position;
      if (!Number.isInteger(index) || index < 0 || index >= expected || out[index] !== undefined) {
        throw bad(`an invalid or repeated index ${JSON.stringify(index)}`);
      }
      const embedding = item?.embedding;
      if (!Array.isArray(embedding)) throw bad('a vector that is not a list of numbers');
      if (embedding.length !== this.dimensions) {
        throw bad(
          `vectors of length ${embedding.length}, but embeddings.dimensions is ${this.dimensions} ` +
            `(set embeddings.dimensions to ${embedding.length}, or use a model that supports ${this.dimensions})`,
        );
      }
      const v = new Float32Array(this.dimensions);
      let norm = 0;
      for (let i = 0; i < embedding.length; i++) {
        const x = embedding[i];
        if (typeof x !== 'number' || !Number.isFinite(x))
          throw bad('a vector with a value that is not a number');
        v[i] = x;
        norm += x * x;
      }
      if (norm === 0) throw bad('a zero vector');
      const inv = 1 / Math.sqrt(norm);
      for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) * inv;
      out[index] = v;
    }
    return out as Float32Array[];
  }

  /** Removes the API key from any text that may reach a log or an error. */
  private scrub(text: string): string {
    return this.#apiKey ? text.split(this.#apiKey).join('[redacted]') : text;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.closing.signal;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** Retry-After as seconds or an HTTP date, in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The server's own explanation, short and on one line: OpenAI's {error:{message}}, Ollama's {error}, or text. */
function serverMessage(text: string): string {
  let message = text;
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    const e = json.error;
    if (typeof e === 'string') message = e;
    else if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string')
      message = (e as { message: string }).message;
    else if (typeof json.message === 'string') message = json.message;
    else if (typeof json.detail === 'string') message = json.detail;
  } catch {
    // not JSON: keep the text
  }
  // eslint-disable-next-line no-control-regex
  message = message.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return message.length > SERVER_MESSAGE_CHARS ? `${clip(message, SERVER_MESSAGE_CHARS)}…` : message;
}
