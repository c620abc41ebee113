/**
 * What mcp-pa accepts in a client's metadata, beyond oidc-provider's own checks, for every client however it
 * arrives (dynamic registration, a Client ID Metadata Document, `mcp-pa clients add`):
 * - redirect URIs: https (no wildcard, no user info, no fragment), http only on a loopback host, or a private-use
 *   scheme of a native app (never javascript:, data:, file:, vbscript:, blob:, about:, ws/wss or ftp); bounded
 *   in number and length;
 * - a client whose redirect URIs are all loopback http or private-use schemes is a native app (RFC 8252): its
 *   loopback redirects then match on any port;
 * - names, URIs and other strings bounded in length.
 *
 * Client secrets are stored as a SHA-256 digest (they are 32+ random bytes made by the server, so a slow hash
 * adds nothing) and compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { findUnstorableText } from '../unicode.js';

export const LIMITS = {
  redirectUris: 20,
  uriLength: 2000,
  clientName: 200,
  stringField: 2000,
} as const;

const FORBIDDEN_SCHEMES = new Set([
  'javascript:',
  'data:',
  'file:',
  'vbscript:',
  'blob:',
  'about:',
  'ws:',
  'wss:',
  'ftp:',
  'filesystem:',
]);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export type RedirectKind = 'https' | 'loopback' | 'private-use';

/** Why a redirect URI is refused, or its kind. */
export function checkRedirectUri(
  uri: unknown,
): { ok: true; kind: RedirectKind } | { ok: false; reason: string } {
  if (typeof uri !== 'string' || uri.length === 0) return { ok: false, reason: 'must be a non-empty string' };
  if (uri.length > LIMITS.uriLength)
    return { ok: false, reason: `is longer than ${LIMITS.uriLength} characters` };
  if (uri.includes('#')) return { ok: false, reason: 'must not contain a fragment (#)' };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(uri))
    return { ok: false, reason: 'must not contain control characters (line breaks, tabs, NUL…)' };
  if (uri.includes('*'))
    return { ok: false, reason: 'must not contain a wildcard (*): redirect URIs match exactly' };
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return { ok: false, reason: 'is not an absolute URI' };
  }
  const scheme = url.protocol.toLowerCase();
  if (FORBIDDEN_SCHEMES.has(scheme)) return { ok: false, reason: `must not use the ${scheme} scheme` };
  if (scheme === 'https:') {
    if (url.username || url.password)
      return { ok: false, reason: 'must not contain user information (user@host)' };
    if (url.hostname === '') return { ok: false, reason: 'must name a host' };
    return { ok: true, kind: 'https' };
  }
  if (scheme === 'http:') {
    if (url.username || url.password)
      return { ok: false, reason: 'must not contain user information (user@host)' };
    if (!LOOPBACK_HOSTS.has(url.hostname)) {
      return {
        ok: false,
        reason: 'may use http only on a loopback host (127.0.0.1, [::1] or localhost); use https elsewhere',
      };
    }
    return { ok: true, kind: 'loopback' };
  }
  // A private-use scheme (RFC 8252 §7.1): reverse domain name style, e.g. com.example.app:/callback.
  if (!/^[a-z][a-z0-9+.-]*:$/.test(scheme)) return { ok: false, reason: 'has an invalid scheme' };
  return { ok: true, kind: 'private-use' };
}

/** Thrown for metadata mcp-pa refuses; the caller maps it to the library's error class. */
export class ClientMetadataProblem extends Error {
  constructor(
    readonly kind: 'redirect_uri' | 'metadata',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks (and normalises, in place) a client's metadata before oidc-provider validates it. Throws
 * ClientMetadataProblem.
 */
export function applyClientRules(metadata: Record<string, unknown>): void {
  const uris = metadata['redirect_uris'];
  if (uris !== undefined) {
    if (!Array.isArray(uris))
      throw new ClientMetadataProblem('metadata', 'redirect_uris must be an array of URIs');
    if (uris.length > LIMITS.redirectUris) {
      throw new ClientMetadataProblem(
        'redirect_uri',
        `redirect_uris has ${uris.length} entries; at most ${LIMITS.redirectUris} are allowed`,
      );
    }
    const kinds = uris.map((uri: unknown, i) => {
      const result = checkRedirectUri(uri);
      if (!result.ok) throw new ClientMetadataProblem('redirect_uri', `redirect_uris[${i}] ${result.reason}`);
      return result.kind;
    });
    // The library fills in application_type "web" before this runs, so an explicit "web" cannot be told from
    // the default: a client whose every redirect is loopback or a private-use scheme is a native app anyway.
    if (
      metadata['application_type'] !== 'native' &&
      kinds.length > 0 &&
      kinds.every((k) => k === 'loopback' || k === 'private-use')
    ) {
      metadata['application_type'] = 'native';
    }
  }
  const name = metadata['client_name'];
  if (name !== undefined) {
    if (typeof name !== 'string') throw new ClientMetadataProblem('metadata', 'client_name must be a string');
    if (name.length > LIMITS.clientName) {
      throw new ClientMetadataProblem(
        'metadata',
        `client_name is ${name.length} characters; at most ${LIMITS.clientName} are allowed`,
      );
    }
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value === 'string' && value.length > LIMITS.stringField) {
      throw new ClientMetadataProblem('metadata', `${key} is longer than ${LIMITS.stringField} characters`);
    }
    const bad = findUnstorableText(value, key, 20);
    if (bad !== undefined)
      throw new ClientMetadataProblem('metadata', `${JSON.stringify(bad.field).slice(1, -1)} ${bad.reason}`);
  }
}

export const HASHED_SECRET_PREFIX = 'sha256:';

export function hashClientSecret(secret: string): string {
  return `${HASHED_SECRET_PREFIX}${createHash('sha256').update(secret, 'utf8').digest('base64url')}`;
}

export function isHashedSecret(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(HASHED_SECRET_PREFIX);
}

/** Constant-time comparison of a presented secret with a stored digest. */
export function clientSecretMatches(stored: string, presented: unknown): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(stored, 'utf8');
  const b = Buffer.from(hashClientSecret(presented), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
