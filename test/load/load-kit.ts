/**
 * Small pieces of the load test (test/load/mixed-load.test.ts): the child's resident memory read from /proc,
 * order statistics, counters by label, bounded sleeps, and the write markers every acknowledged write carries.
 */
import { readFileSync } from 'node:fs';
import { WebSocket } from 'undici';

export const MIB = 1024 * 1024;

/** VmRSS of a process in bytes (Linux /proc); undefined where /proc is missing or the process is gone. */
export function readRss(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far (Linux /proc; USER_HZ is 100 there). */
export function readCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0–100) of unsorted values; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export const mib = (bytes: number | undefined): string =>
  bytes === undefined || Number.isNaN(bytes) ? 'n/a' : `${(bytes / MIB).toFixed(1)} MiB`;

/** Counts by label (status codes, tool names, error kinds). */
export class Tally {
  private readonly counts = new Map<string, number>();
  add(label: string, n = 1): void {
    this.counts.set(label, (this.counts.get(label) ?? 0) + n);
  }
  get(label: string): number {
    return this.counts.get(label) ?? 0;
  }
  total(filter: (label: string) => boolean = () => true): number {
    let sum = 0;
    for (const [label, n] of this.counts) if (filter(label)) sum += n;
    return sum;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Keeps the first few distinct messages of a kind (for a readable failure, not every one of thousands). */
export class Examples {
  private readonly items: string[] = [];
  constructor(private readonly max = 8) {}
  add(text: string): void {
    const short = text.slice(0, 400);
    if (this.items.length < this.max && !this.items.includes(short)) this.items.push(short);
  }
  list(): readonly string[] {
    return this.items;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** A uniformly random element. */
export function pick<T>(items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[Math.floor(Math.random() * items.length)] as T;
}

/** An integer setting from the environment, clamped to [min, max]. */
export function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(raw)}`);
  return Math.min(max, Math.max(min, Math.round(n)));
}

/**
 * Write markers: `LMC-t03-000123` in what a create stores (title / note text), `LMU-t03-000124` in what an update
 * stores (a task's description). The tenant index inside says whose write it was, so any marker seen by the wrong
 * tenant is a leak; the sequence number is unique over the whole run.
 */
export const MARKER = /LM([CU])-t(\d{2})-(\d{6})/g;

export interface FoundMarker {
  readonly marker: string;
  readonly type: 'C' | 'U';
  readonly tenant: number;
}

export function markersIn(text: string): FoundMarker[] {
  return [...text.matchAll(MARKER)].map((m) => ({
    marker: m[0],
    type: m[1] as 'C' | 'U',
    tenant: Number(m[2]),
  }));
}

export function marker(type: 'C' | 'U', tenant: number, seq: number): string {
  return `LM${type}-t${String(tenant).padStart(2, '0')}-${String(seq).padStart(6, '0')}`;
}

/**
 * A client of a Node.js process's inspector (the Chrome DevTools protocol over WebSocket), to force a full
 * garbage collection in the server and read its live JS heap: RSS alone cannot tell a leak from a heap V8 has
 * not collected yet.
 */
export class InspectorClient {
  private nextId = 0;
  private readonly pending = new Map<number, (message: Record<string, unknown>) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as Record<string, unknown>;
      const id = message['id'];
      if (typeof id === 'number') {
        this.pending.get(id)?.(message);
        this.pending.delete(id);
      }
    });
  }

  /** The inspector URL a process printed ("Debugger listening on ws://…") in `stderr`, if any. */
  static urlIn(stderr: string): string | undefined {
    return /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(stderr)?.[1];
  }

  static async connect(url: string): Promise<InspectorClient> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`inspector ${url}: no connection within 10 s`)),
        10_000,
      );
      ws.addEventListener('open', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new Error(`inspector ${url}: connection failed`));
      });
    });
    return new InspectorClient(ws);
  }

  send(
    method: string,
    params: Record<string, unknown> = {},
    timeoutMs = 60_000,
  ): Promise<Record<string, unknown>> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector: ${method} unanswered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (message) => {
        clearTimeout(timer);
        if (message['error']) reject(new Error(`inspector: ${method}: ${JSON.stringify(message['error'])}`));
        else resolve((message['result'] as Record<string, unknown> | undefined) ?? {});
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Forces a full garbage collection and returns the JS heap still in use afterwards, in bytes. */
  async liveHeapAfterGc(): Promise<number> {
    await this.send('HeapProfiler.collectGarbage');
    const usage = await this.send('Runtime.getHeapUsage');
    const used = usage['usedSize'];
    if (typeof used !== 'number')
      throw new Error(`inspector: unexpected heap usage ${JSON.stringify(usage)}`);
    return used;
  }

  /** Closes the connection (a process with a debugger attached waits for it to go before it exits). */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      this.ws.addEventListener('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close();
    });
  }
}
