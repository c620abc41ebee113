/**
 * The one answer every HTTP surface gives when the database cannot be reached (PostgreSQL stopped, restarting,
 * unreachable): 503 Service Unavailable with Retry-After, so clients and proxies retry instead of reporting a server
 * bug (500). The body names no cause (no host, port, driver message): the log has it. /mcp answers with a JSON-RPC
 * error carrying UNAVAILABLE_MESSAGE, the OAuth endpoints with the OAuth error `temporarily_unavailable`, the
 * browser pages with a page. Which errors count is decided by isDatabaseUnavailable (src/storage/postgres/errors.ts).
 */
import type { ServerResponse } from 'node:http';
import { isDatabaseUnavailable } from '../../storage/postgres/errors.js';

export { isDatabaseUnavailable };

export const UNAVAILABLE_STATUS = 503;
/** Seconds a client should wait before retrying (Retry-After). */
export const UNAVAILABLE_RETRY_AFTER_S = 5;
export const UNAVAILABLE_MESSAGE = 'Service Unavailable: the database is unavailable right now, retry later';

export function unavailableHeaders(): Record<string, string> {
  return { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_S) };
}

/** The OAuth error body (RFC 6749's temporarily_unavailable) of the authorization server's JSON endpoints. */
export function unavailableOAuth(): { error: string; error_description: string } {
  return {
    error: 'temporarily_unavailable',
    error_description: 'the service is temporarily unavailable, retry later',
  };
}

/** Writes the OAuth-style 503 on a raw response whose headers are not sent yet (the JSON endpoints). */
export function sendUnavailableJson(res: ServerResponse): void {
  res.statusCode = UNAVAILABLE_STATUS;
  for (const [k, v] of Object.entries(unavailableHeaders())) res.setHeader(k, v);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(unavailableOAuth()));
}
