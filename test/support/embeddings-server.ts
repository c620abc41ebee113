import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { HashEmbeddingProvider } from '../../src/storage/embeddings/provider.js';

/** How the server answers one request (FIFO script), or every request (fallback). */
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** A JSON body to send instead of embeddings (error replies). */
  body?: unknown;
  /** Wait this long before answering (the client may give up first). */
  delayMs?: number;
  /** Answer with vectors of this length whatever was asked. */
  dims?: number;
}

export interface SeenRequest {
  authorization: string | undefined;
  body: { model: string; input: string[]; dimensions?: number; encoding_format?: string };
}

/** The expected (unnormalised-then-normalised) vector of a text: the hash provider's, which is unit length. */
export function expectedVector(text: string, dims: number): Float32Array {
  return new HashEmbeddingProvider(dims).embedOne(text);
}

/**
 * A real HTTP server on 127.0.0.1 speaking OpenAI's `POST /v1/embeddings`. Vectors are the hash provider's, scaled
 * by 3 (so clients must normalise), returned in reverse order with their `index` (so clients must reorder).
 */
export class FakeEmbeddingsServer {
  readonly requests: SeenRequest[] = [];
  /** Replies for the next requests, in order. */
  readonly script: Reply[] = [];
  /** Reply for every request once the script is used up; null: embeddings. */
  fallback: Reply | null = null;
  /** Refuse requests carrying `dimensions` (like models without Matryoshka support). */
  rejectDimensionsParam = false;
  /** Requests being answered right now, and the most seen at once. */
  inFlight = 0;
  maxInFlight = 0;
  private server: Server | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();

  /** Length of the model's own vectors when the request does not ask for one. */
  constructor(readonly nativeDims = 64) {}

  get url(): string {
    const port = (this.server?.address() as AddressInfo).port;
    return `http://127.0.0.1:${port}/v1`;
  }

  /** Every text embedded so far, with the model it was embedded for. */
  texts(model?: string): string[] {
    return this.requests
      .filter((r) => model === undefined || r.body.model === model)
      .flatMap((r) => r.body.input);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = null;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/embeddings') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SeenRequest['body'];
      this.requests.push({ authorization: req.headers.authorization, body });
      const reply = this.script.shift() ?? this.fallback ?? {};
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        this.inFlight--;
      };
      res.on('close', finish);
      const answer = (): void => {
        if (res.destroyed) return;
        if (this.rejectDimensionsParam && body.dimensions !== undefined) {
          this.json(res, 400, {
            error: {
              message: 'This model does not support specifying dimensions.',
              type: 'invalid_request_error',
            },
          });
          return;
        }
        if (reply.status !== undefined && reply.status !== 200) {
          this.json(
            res,
            reply.status,
            reply.body ?? { error: { message: 'scripted failure' } },
            reply.headers,
          );
          return;
        }
        const dims = reply.dims ?? body.dimensions ?? this.nativeDims;
        const data = body.input.map((text, index) => ({
          object: 'embedding',
          index,
          embedding: Array.from(expectedVector(text, dims), (x) => x * 3),
        }));
        data.reverse();
        this.json(res, 200, {
          object: 'list',
          data,
          model: body.model,
          usage: { prompt_tokens: 0, total_tokens: 0 },
        });
      };
      if (reply.delayMs) {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          answer();
        }, reply.delayMs);
        this.timers.add(timer);
        res.on('close', () => {
          clearTimeout(timer);
          this.timers.delete(timer);
        });
      } else answer();
    });
  }

  private json(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  }
}

/** A real pino logger writing JSON lines into memory. */
export function memoryLogger(level = 'debug'): {
  logger: Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  const logger = createLogger(level, sink);
  return {
    logger,
    text: () => out,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Polls until `check` holds (a condition, not a time: the limit only turns a hang into a clear failure). */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 20_000,
): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
