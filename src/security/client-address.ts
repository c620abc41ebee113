/**
 * The address a request came from, as the rest of the server should see it: the TCP peer, or — when that peer is
 * a trusted TLS-terminating proxy (server.trust_proxy) — the client address the proxy forwarded. The HTTP layer
 * decides once per request (setClientAddress); rate limits and the audit trail read it here.
 */
import type { IncomingMessage } from 'node:http';

const ADDRESS = Symbol('mcp-pa.client-address');

type Tagged = IncomingMessage & { [ADDRESS]?: string };

export function setClientAddress(req: IncomingMessage, address: string): void {
  (req as Tagged)[ADDRESS] = address;
}

/** The client's address (IPv4-mapped IPv6 written as IPv4), or "unknown". */
export function clientAddress(req: IncomingMessage): string {
  const address = (req as Tagged)[ADDRESS] ?? req.socket?.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

const REQUEST_ID = Symbol('mcp-pa.request-id');

/** The id the HTTP layer gave the request (also its X-Request-Id response header), for logs and the audit trail. */
export function setRequestId(req: IncomingMessage, id: string): void {
  (req as IncomingMessage & { [REQUEST_ID]?: string })[REQUEST_ID] = id;
}

export function requestIdOf(req: IncomingMessage): string | undefined {
  return (req as IncomingMessage & { [REQUEST_ID]?: string })[REQUEST_ID];
}
