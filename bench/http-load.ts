/**
 * A closed-loop HTTPS load generator for the HTTP benchmark: `concurrency` workers, each sending one JSON-RPC request
 * after the other over keep-alive connections, for a fixed number of requests. Every response is read to its end and
 * checked (status 200 and a JSON-RPC result for the request), so a server that answers errors fast does not win.
 */
import { Agent, request } from 'node:https';
import { performance } from 'node:perf_hooks';
import { percentile } from './lib.js';

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

export interface LoadOptions {
  readonly url: string;
  readonly ca: Buffer;
  readonly body: string;
  readonly concurrency: number;
  readonly requests: number;
  readonly headers?: Record<string, string>;
  /** Headers of one request, asked for each request in turn (e.g. a fresh DPoP proof); merged over `headers`. */
  readonly headersFor?: (index: number) => Record<string, string>;
}

/** Extracts the JSON-RPC message from a JSON body or from the first `data:` line of an SSE body. */
function message(text: string): { result?: unknown; error?: unknown } {
  const json = text.startsWith('{')
    ? text
    : (text
        .split('\n')
        .find((l) => l.startsWith('data:'))
        ?.slice(5) ?? '');
  return JSON.parse(json) as { result?: unknown; error?: unknown };
}

function once(agent: Agent, options: LoadOptions, index: number): Promise<void> {
  const url = new URL(options.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        ca: options.ca,
        hostname: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-06-18',
          ...options.headers,
          ...options.headersFor?.(index),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
            const msg = message(text);
            if (msg.result === undefined) throw new Error(`no result: ${text.slice(0, 200)}`);
            if ((msg.result as { isError?: unknown }).isError === true)
              throw new Error(`tool error: ${text.slice(0, 200)}`);
            resolve();
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, ca: options.ca });
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < options.requests) {
      const index = next++;
      const t = performance.now();
      await once(agent, options, index);
      latencies.push(performance.now() - t);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return loadResult(latencies, (performance.now() - started) / 1000);
}

/** Throughput and latency percentiles of a closed-loop run: one latency (ms) per completed request. */
export function loadResult(latencies: readonly number[], seconds: number): LoadResult {
  return {
    requests: latencies.length,
    seconds,
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
  };
}
