/**
 * Trusted TLS-terminating proxies (server.trust_proxy): which TCP peers are proxies, and what a request that came
 * through them says about the client — its address (X-Forwarded-For, else RFC 7239 `Forwarded: for=`) and the
 * protocol it used to reach the proxy (X-Forwarded-Proto and `Forwarded: proto=`).
 *
 * A peer that is not a trusted proxy is taken at its word for nothing: its forwarded headers are removed before
 * anything else (the authorization server's Koa app among them) can read them.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** A server.trust_proxy entry that is not an address or CIDR range. */
export class TrustProxyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustProxyError';
  }
}

const ALLOWED =
  'allowed: an IPv4 or IPv6 address or a CIDR range, e.g. 10.0.0.5, 10.0.0.0/8, 127.0.0.1, fd00::/8';

/** Removes IPv6 brackets and the IPv4-mapped prefix (::ffff:1.2.3.4 → 1.2.3.4). */
function bare(address: string): string {
  const a = address.trim().replace(/^\[(.*)\]$/, '$1');
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a;
}

/** The set of trusted proxy addresses; empty trusts nobody. */
export class TrustedProxies {
  private readonly list = new BlockList();

  private constructor(readonly entries: readonly string[]) {}

  /** Parses server.trust_proxy; throws {@link TrustProxyError} naming the first bad entry. */
  static parse(entries: readonly string[], field = 'server.trust_proxy'): TrustedProxies {
    const proxies = new TrustedProxies([...entries]);
    for (const entry of entries) {
      const slash = entry.indexOf('/');
      const address = bare(slash === -1 ? entry : entry.slice(0, slash));
      const family = isIP(address);
      if (family === 0) {
        throw new TrustProxyError(
          `${field} entry "${entry}" is not an IP address or CIDR range (${ALLOWED})`,
        );
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash === -1) {
        proxies.list.addAddress(address, type);
        continue;
      }
      const prefixText = entry.slice(slash + 1).trim();
      const prefix = Number(prefixText);
      const max = family === 4 ? 32 : 128;
      if (!/^\d+$/.test(prefixText) || prefix > max) {
        throw new TrustProxyError(
          `${field} entry "${entry}" has a bad prefix length "${prefixText}" (allowed: 1 to ${max} for IPv${family})`,
        );
      }
      if (prefix === 0) {
        throw new TrustProxyError(
          `${field} entry "${entry}" trusts every address: anyone could then claim any client address and HTTPS; ` +
            `list the proxies' own addresses or ranges (${ALLOWED})`,
        );
      }
      proxies.list.addSubnet(address, prefix, type);
    }
    return proxies;
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** Whether `address` (IPv4, IPv6, bracketed or IPv4-mapped) is a trusted proxy. */
  trusts(address: string | undefined): boolean {
    if (address === undefined || this.entries.length === 0) return false;
    const a = bare(address);
    const family = isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** What the server believes about a request's origin. */
export interface ForwardedView {
  /** The TCP peer is a trusted proxy (its forwarded headers were read). */
  readonly viaProxy: boolean;
  /** The client address: the TCP peer, or the right-most forwarded address that is not a trusted proxy. */
  readonly clientAddress: string;
  /** The protocol the client used: as every proxy hop reported it, else that of the connection to this server. */
  readonly protocol: 'https' | 'http';
  /** Where `protocol` came from, for messages: e.g. `X-Forwarded-Proto "http"`, or `the connection`. */
  readonly protocolSource: string;
}

interface ForwardedElement {
  readonly for?: string;
  readonly proto?: string;
}

/** Splits on `sep` outside double-quoted strings. */
function splitOutsideQuotes(value: string, sep: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quoted && c === '\\' && i + 1 < value.length) {
      current += c + (value[i + 1] as string);
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(current);
      current = '';
    } else current += c;
  }
  out.push(current);
  return out;
}

/** RFC 7239 `Forwarded`: its elements' `for` and `proto` parameters (unquoted), left to right. */
export function parseForwardedHeader(value: string): ForwardedElement[] {
  const out: ForwardedElement[] = [];
  for (const element of splitOutsideQuotes(value, ',')) {
    const params: { for?: string; proto?: string } = {};
    for (const pair of splitOutsideQuotes(element, ';')) {
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const key = pair.slice(0, eq).trim().toLowerCase();
      let v = pair.slice(eq + 1).trim();
      if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      if (key === 'for' || key === 'proto') params[key] = v;
    }
    if (params.for !== undefined || params.proto !== undefined) out.push(params);
  }
  return out;
}

/** An address as proxies write it (`1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:80`, `2001:db8::1`), or null. */
function forwardedAddress(value: string): string | null {
  let v = value.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(v);
  if (bracketed) v = bracketed[1] as string;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(v)) v = v.slice(0, v.lastIndexOf(':'));
  v = bare(v);
  return isIP(v) === 0 ? null : v;
}

function headerText(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Reads a request's forwarded headers when its TCP peer is a trusted proxy; otherwise the request is as it arrived.
 * `encrypted`: the connection to this server is TLS.
 */
export function forwardedView(
  headers: IncomingHttpHeaders,
  peer: string | undefined,
  encrypted: boolean,
  proxies: TrustedProxies,
): ForwardedView {
  const own = encrypted ? 'https' : 'http';
  const peerAddress = peer === undefined ? 'unknown' : bare(peer);
  if (!proxies.trusts(peer)) {
    return { viaProxy: false, clientAddress: peerAddress, protocol: own, protocolSource: 'the connection' };
  }
  const forwarded = parseForwardedHeader(headerText(headers, 'forwarded') ?? '');

  // The client: walk from the right (the nearest hop) past every trusted proxy.
  const xff = list(headerText(headers, 'x-forwarded-for'));
  const hops = xff.length > 0 ? xff : forwarded.flatMap((e) => (e.for === undefined ? [] : [e.for]));
  let client = peerAddress;
  for (let i = hops.length - 1; i >= 0; i--) {
    const address = forwardedAddress(hops[i] as string);
    // A hop that is no address (`unknown`, an obfuscated name): the last proxy known is as far as one can see.
    if (address === null) break;
    client = address;
    if (!proxies.trusts(address)) break;
  }

  // The protocol: https only when every hop that reported one said https.
  const reported = [
    ...list(headerText(headers, 'x-forwarded-proto')).map((p) => ({ p, source: 'X-Forwarded-Proto' })),
    ...forwarded.flatMap((e) => (e.proto === undefined ? [] : [{ p: e.proto, source: 'Forwarded proto' }])),
  ];
  if (reported.length === 0) {
    return { viaProxy: true, clientAddress: client, protocol: own, protocolSource: 'the connection' };
  }
  const other = reported.find((r) => r.p.toLowerCase() !== 'https');
  return other === undefined
    ? { viaProxy: true, clientAddress: client, protocol: 'https', protocolSource: reported[0]?.source ?? '' }
    : {
        viaProxy: true,
        clientAddress: client,
        protocol: 'http',
        protocolSource: `${other.source} "${other.p.slice(0, 20)}"`,
      };
}

const FORWARDED_HEADER = /^(x-forwarded-.*|forwarded|x-real-ip)$/i;

/** Removes every forwarded header (X-Forwarded-*, Forwarded, X-Real-IP) from a request, raw headers included. */
export function stripForwardedHeaders(req: IncomingMessage): void {
  for (const name of Object.keys(req.headers)) if (FORWARDED_HEADER.test(name)) delete req.headers[name];
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    if (FORWARDED_HEADER.test(raw[i] as string)) raw.splice(i, 2);
  }
}

/**
 * After {@link forwardedView} accepted a trusted proxy's request: the forwarded headers say exactly what was decided
 * (for the authorization server, whose Koa app reads them when its `proxy` flag is on) — the client address, the
 * protocol, and the public host when one is configured (never one a client chose).
 */
export function normalizeForwardedHeaders(
  req: IncomingMessage,
  view: ForwardedView,
  publicHost: string | undefined,
): void {
  stripForwardedHeaders(req);
  req.headers['x-forwarded-for'] = view.clientAddress;
  req.headers['x-forwarded-proto'] = view.protocol;
  if (publicHost !== undefined) req.headers['x-forwarded-host'] = publicHost;
}
