/**
 * Outgoing requests of the authorization side (client metadata documents, client JWKS, an external issuer's
 * metadata and keys). By default oidc-provider's own SSRF protection applies (no private, loopback or link-local
 * address is ever connected to). Origins an operator lists in authentication.metadata_fetch_allow are fetched
 * without that filter, trusting the extra CA of authentication.metadata_fetch_ca as well — for an intranet, and
 * for the test suite's loopback servers.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';

export type FetchLike = (
  url: string | URL,
  init?: RequestInit & { dispatcher?: unknown },
) => Promise<Response>;

export interface TrustedFetchOptions {
  /** https origins fetched without the special-use address filter. */
  readonly allowOrigins: readonly string[];
  /** Extra PEM CA file trusted for those origins and for everything else this module fetches. */
  readonly caFile?: string | undefined;
  readonly timeoutMs?: number;
}

/**
 * A fetch that oidc-provider (its `fetch` option) and the external-issuer code use. Returns undefined when
 * nothing is configured (then the library's plain fetch with its SSRF filter is used).
 */
export function createTrustedFetch(options: TrustedFetchOptions): FetchLike | undefined {
  if (options.allowOrigins.length === 0 && options.caFile === undefined) return undefined;
  const allowed = new Set(options.allowOrigins.map((o) => new URL(o).origin));
  const ca = options.caFile ? [...rootCertificates, readFileSync(options.caFile, 'utf8')] : undefined;
  const agent = new Agent({ connect: ca ? { ca } : {} });
  const timeoutMs = options.timeoutMs ?? 5_000;
  return async (url, init = {}) => {
    const target = new URL(String(url));
    const { dispatcher, ...rest } = init;
    if (allowed.has(target.origin) || (ca && dispatcher === undefined)) {
      const response = await undiciFetch(target, {
        ...(rest as Parameters<typeof undiciFetch>[1]),
        dispatcher: agent,
        signal: rest.signal ?? AbortSignal.timeout(timeoutMs),
      });
      return response as unknown as Response;
    }
    return fetch(target, init as RequestInit);
  };
}
