import { BlockList, isIP } from 'node:net';

/**
 * Request guards that need no MCP knowledge: which Origins and Host names a server accepts (DNS rebinding), and the
 * JSON-RPC error body every refusal on /mcp carries.
 */

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');
loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** 127.0.0.0/8, ::1 (bracketed or not, or IPv4-mapped) and the name localhost (and *.localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const family = isIP(h);
  if (family === 4) return loopback.check(h, 'ipv4');
  if (family === 6) return loopback.check(h, 'ipv6');
  return false;
}

/** The serialized origin of a URL (`https://host:port`, default port dropped, host lowercased), or null. */
export function originOf(value: string): string | null {
  try {
    const url = new URL(value);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
    return url.origin;
  } catch {
    return null;
  }
}

/** Checks an `allowedOrigins` entry: a bare origin (scheme, host, optional port; nothing else). */
export function parseAllowedOrigin(entry: string): string {
  const origin = originOf(entry);
  const url = origin === null ? null : new URL(entry);
  if (
    origin === null ||
    url === null ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== '' ||
    url.password !== '' ||
    entry.replace(/\/$/, '').toLowerCase() !== origin.toLowerCase()
  ) {
    throw new Error(
      `allowed origin "${entry}" is not an origin (allowed: scheme://host[:port] with http or https, e.g. https://app.example.com)`,
    );
  }
  return origin;
}

/** Which browser Origins may call the server: its own (listening and public URLs) and the configured ones. */
export class OriginPolicy {
  private readonly allowed: Set<string>;

  constructor(own: readonly string[], configured: readonly string[]) {
    this.allowed = new Set([...own, ...configured]);
  }

  /** Adds one of the server's own origins (known once it listens). */
  addOwn(origin: string): void {
    const normalized = originOf(origin);
    if (normalized !== null) this.allowed.add(normalized);
  }

  /** An absent Origin (a non-browser client) is fine; `null` and anything not listed is not. */
  allows(origin: string | undefined): boolean {
    if (origin === undefined) return true;
    const normalized = originOf(origin);
    return normalized !== null && this.allowed.has(normalized);
  }
}

/** The hostname of a Host header value (`localhost`, `127.0.0.1`, `[::1]`), lowercased; null when malformed. */
export function hostnameOf(hostHeader: string | undefined): string | null {
  if (hostHeader === undefined || hostHeader === '') return null;
  try {
    const url = new URL(`http://${hostHeader}`);
    // A Host header is host[:port] only: anything that parses into more is refused.
    if (url.pathname !== '/' || url.search !== '' || url.username !== '' || url.password !== '') return null;
    return url.hostname.toLowerCase();
  } catch {
    return null;
  }
}

/**
 * DNS-rebinding protection for a loopback bind: a page on evil.example that resolves its name to 127.0.0.1 sends
 * `Host: evil.example`, which is refused. Null when the bind is not loopback (no Host check).
 */
export function loopbackHostnames(
  bindHost: string,
  publicUrl: string | undefined,
): ReadonlySet<string> | null {
  if (!isLoopbackHost(bindHost)) return null;
  const names = new Set(['localhost', '127.0.0.1', '[::1]']);
  const bare = bindHost
    .trim()
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  names.add(isIP(bare) === 6 ? `[${bare}]` : bare);
  if (publicUrl !== undefined) names.add(new URL(publicUrl).hostname.toLowerCase());
  return names;
}

export interface JsonRpcErrorBody {
  readonly jsonrpc: '2.0';
  readonly error: { readonly code: number; readonly message: string; readonly data?: unknown };
  readonly id: null;
}

export function jsonRpcError(code: number, message: string, data?: unknown): JsonRpcErrorBody {
  return {
    jsonrpc: '2.0',
    error: data === undefined ? { code, message } : { code, message, data },
    id: null,
  };
}

/** JSON-RPC error codes used on /mcp (the SDK uses the same ones for the same cases). */
export const RPC = {
  parseError: -32700,
  invalidRequest: -32600,
  /** Transport-level refusals (bad headers, limits, method not allowed). */
  server: -32000,
  sessionNotFound: -32001,
} as const;
