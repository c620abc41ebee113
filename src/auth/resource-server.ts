/**
 * /mcp as an OAuth protected resource (RFC 6750, 8707, 9068, 9449, 8705, 9728): every request's access token is
 * checked before anything else happens — signature (jose, the issuer's keys only, ES256 for the embedded
 * server), issuer, audience (exactly the canonical MCP URI), expiry, type, scopes, the grant still existing
 * (embedded server: revocation reaches JWTs within a second), and sender binding (a DPoP proof for `cnf.jkt`,
 * the TLS client certificate for `cnf.x5t#S256`). Tokens are read from the Authorization header only.
 *
 * The tenant is the token's subject, never anything in the request.
 */
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { CallerContext } from '../mcp/context.js';
import { SCOPES } from '../mcp/context.js';

export const DPOP_ALGS = ['ES256', 'EdDSA', 'Ed25519'] as const;
const DPOP_MAX_AGE_S = 60;
/** How long a verified access token is trusted without checking its signature again (at most until it expires). */
const VERIFIED_TOKEN_TTL_MS = 5 * 60_000;
const CLOCK_TOLERANCE_S = 5;

export type AuthOutcome =
  | {
      readonly ok: true;
      readonly caller: CallerContext;
      readonly tokenHash: string;
      readonly grantId?: string;
    }
  | {
      readonly ok: false;
      readonly status: 401 | 400;
      /** undefined: no token was sent (no error code, RFC 6750 §3.1). */
      readonly error?: 'invalid_token' | 'invalid_request' | 'invalid_dpop_proof';
      readonly description: string;
      readonly dpop: boolean;
      readonly tokenHash?: string;
    };

/** Short, non-reversible token id for logs and the audit trail. */
export function tokenHash(token: string): string {
  return tokenDigest(token).slice(0, 12);
}

/** SHA-256 of a token, base64url: the key of the verified-token cache and the DPoP `ath` (RFC 9449 §4.2). */
function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

export interface TokenSource {
  /** The JWT verification keys. */
  readonly getKey: JWTVerifyGetKey;
  /** Require `typ: at+jwt` (RFC 9068); external issuers may use plain JWTs. */
  readonly requireAtJwt: boolean;
  readonly algorithms: readonly string[];
  /**
   * A number that changes whenever the verification keys change (a rotation, a reload): tokens verified under
   * other keys are checked again. Without it (a remote issuer's keys), a verified token is trusted for at most
   * five minutes before its signature is checked again.
   */
  readonly keysVersion?: () => number;
  /** Embedded server: the grant is still there and its user enabled (cached ≤ 500 ms). */
  readonly grantActive?: (grantId: string, subject: string) => Promise<boolean>;
  /** External issuer with opaque tokens: RFC 7662 introspection. */
  readonly introspect?: (token: string) => Promise<JWTPayload | null>;
}

export interface ResourceServerOptions {
  readonly issuer: string;
  readonly resource: string;
  readonly resourceMetadataUrl: string;
  readonly source: TokenSource;
  readonly now?: () => number;
  /** Told about failures that are not the token's fault (an unreachable issuer), for the log. */
  readonly onError?: (err: unknown) => void;
}

/** Keys that reload when a token names a kid they do not know (a rotation made by another process). */
export class ReloadingKeySet {
  private local: JWTVerifyGetKey;
  private lastReload = 0;
  /** Changes with every new key set (replace or reload). */
  version = 0;

  constructor(
    initial: JSONWebKeySet,
    private readonly reload: () => Promise<JSONWebKeySet>,
    private readonly minReloadIntervalMs = 5_000,
  ) {
    this.local = createLocalJWKSet(initial);
  }

  replace(keys: JSONWebKeySet): void {
    this.local = createLocalJWKSet(keys);
    this.version++;
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await this.local(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      const now = Date.now();
      if (now - this.lastReload < this.minReloadIntervalMs) throw err;
      this.lastReload = now;
      this.local = createLocalJWKSet(await this.reload());
      this.version++;
      return this.local(header, token);
    }
  };
}

/**
 * A remote issuer's keys (jose caches and refreshes them), fetched with `fetch` when given (the trusted fetch
 * of src/auth/fetch.ts, so the operator's extra CA and allowed origins apply to the JWKS as to discovery).
 */
export function remoteKeys(
  jwksUri: string,
  fetchOptions?: {
    headers?: Record<string, string>;
    fetch?: (url: string, init: RequestInit) => Promise<Response>;
  },
): JWTVerifyGetKey {
  return createRemoteJWKSet(new URL(jwksUri), {
    cooldownDuration: 5_000,
    cacheMaxAge: 10 * 60_000,
    ...(fetchOptions?.headers ? { headers: fetchOptions.headers } : {}),
    ...(fetchOptions?.fetch ? { [customFetch]: fetchOptions.fetch } : {}),
  });
}

/**
 * Access tokens whose signature and claims were verified, by SHA-256 digest, so that a client's requests cost one
 * signature check per token instead of one each. An entry holds until the token expires, the verification keys
 * change, or five minutes pass, whichever is first; the least recently added go first when full. Revocation does not
 * depend on it: the grant is checked on every request (grantActive, cached ≤ 500 ms).
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { payload: JWTPayload; until: number; keys: number }>();
  constructor(private readonly max = 10_000) {}

  get(digest: string, now: number, keys: number): JWTPayload | undefined {
    const hit = this.entries.get(digest);
    if (hit === undefined) return undefined;
    if (hit.until > now && hit.keys === keys) return hit.payload;
    this.entries.delete(digest);
    return undefined;
  }

  set(digest: string, payload: JWTPayload, now: number, keys: number): void {
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 : 0;
    const until = Math.min(exp, now + VERIFIED_TOKEN_TTL_MS);
    if (until <= now) return;
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(digest, { payload: Object.freeze({ ...payload }), until, keys });
  }
}

/** A DPoP proof key, imported once: its node:crypto key object and its RFC 7638 thumbprint. */
interface ProofKey {
  readonly key: KeyObject;
  readonly thumbprint: string;
}

/** Members of a private JWK (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2): a proof's key must be public. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * DPoP proof keys by their JSON, bounded. Importing a JWK and hashing it for the thumbprint happen once per client
 * key rather than once per request.
 */
class ProofKeys {
  private readonly keys = new Map<string, ProofKey>();
  constructor(private readonly max = 2_000) {}

  async get(jwk: JWK): Promise<ProofKey> {
    const id = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e]);
    const hit = this.keys.get(id);
    if (hit) return hit;
    const found: ProofKey = {
      key: createPublicKey({ key: { ...jwk }, format: 'jwk' }),
      thumbprint: await calculateJwkThumbprint(jwk, 'sha256'),
    };
    if (this.keys.size >= this.max) {
      const oldest = this.keys.keys().next();
      if (!oldest.done) this.keys.delete(oldest.value);
    }
    this.keys.set(id, found);
    return found;
  }
}

/** The key type and curve each accepted proof algorithm needs (RFC 7518 §3.4, RFC 8037 §3.1). */
function keyFitsAlgorithm(alg: string, key: KeyObject): boolean {
  if (alg === 'ES256')
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  if (alg === 'Ed25519') return key.asymmetricKeyType === 'ed25519';
  if (alg === 'EdDSA') return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448';
  return false;
}

class ReplayCache {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 50_000) {}
  /** false when `id` was already used (and has not expired). */
  add(id: string, expiresAt: number, now: number): boolean {
    const prev = this.seen.get(id);
    if (prev !== undefined && prev > now) return false;
    if (this.seen.size >= this.max) {
      for (const [k, exp] of this.seen) {
        if (exp <= now || this.seen.size >= this.max) this.seen.delete(k);
        if (this.seen.size < this.max * 0.9) break;
      }
    }
    this.seen.set(id, expiresAt);
    return true;
  }
}

function scopesOf(payload: JWTPayload): Set<string> {
  const raw = payload['scope'] ?? payload['scp'];
  if (typeof raw === 'string') return new Set(raw.split(' ').filter(Boolean));
  if (Array.isArray(raw)) return new Set(raw.filter((s): s is string => typeof s === 'string'));
  return new Set();
}

function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

export class ResourceServer {
  private readonly replay = new ReplayCache();
  private readonly verified = new VerifiedTokens();
  private readonly proofKeys = new ProofKeys();
  /** The resource URL as a proof's htu is compared with it (no query, no fragment), computed once. */
  private readonly resourceHtu: string;
  private readonly now: () => number;

  constructor(private readonly options: ResourceServerOptions) {
    this.now = options.now ?? (() => Date.now());
    this.resourceHtu = normaliseHtu(options.resource);
  }

  get resource(): string {
    return this.options.resource;
  }

  /** The RFC 9728 metadata document. */
  metadata(extra: { dpop: boolean; mtls: boolean }): Record<string, unknown> {
    return {
      resource: this.options.resource,
      authorization_servers: [this.options.issuer],
      scopes_supported: [SCOPES.read, SCOPES.write],
      bearer_methods_supported: ['header'],
      resource_name: 'mcp-pa',
      ...(extra.dpop ? { dpop_signing_alg_values_supported: [...DPOP_ALGS] } : {}),
      ...(extra.mtls ? { tls_client_certificate_bound_access_tokens: true } : {}),
    };
  }

  /** The WWW-Authenticate value for a refusal (or for insufficient_scope with the scopes needed). */
  challenge(
    refusal: { error?: string | undefined; description?: string | undefined; dpop?: boolean },
    scope: readonly string[] = [SCOPES.read, SCOPES.write],
  ): string {
    const params = [
      ...(refusal.error ? [`error=${quote(refusal.error)}`] : []),
      ...(refusal.error && refusal.description ? [`error_description=${quote(refusal.description)}`] : []),
      `resource_metadata=${quote(this.options.resourceMetadataUrl)}`,
      `scope=${quote(scope.join(' '))}`,
    ].join(', ');
    const bearer = `Bearer ${params}`;
    return refusal.dpop ? `DPoP algs=${quote(DPOP_ALGS.join(' '))}, ${params.replace(/^/, '')}` : bearer;
  }

  async authenticate(req: IncomingMessage): Promise<AuthOutcome> {
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === '') {
      return { ok: false, status: 401, description: 'authentication required', dpop: false };
    }
    const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim());
    if (!match) {
      return {
        ok: false,
        status: 401,
        error: 'invalid_token',
        description: 'the Authorization header must be "Bearer <token>" or "DPoP <token>"',
        dpop: false,
      };
    }
    const scheme = (match[1] as string).toLowerCase();
    const token = match[2] as string;
    const digest = tokenDigest(token);
    const hash = digest.slice(0, 12);
    const dpopScheme = scheme === 'dpop';
    const fail = (description: string, error: 'invalid_token' | 'invalid_dpop_proof' = 'invalid_token') =>
      ({ ok: false, status: 401, error, description, dpop: dpopScheme, tokenHash: hash }) as const;

    let payload: JWTPayload;
    try {
      payload = await this.verify(token, digest);
    } catch (err) {
      const reason = describeJoseError(err);
      if (reason === 'the token could not be checked') this.options.onError?.(err);
      return fail(reason);
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0) return fail('the token has no subject');

    // Sender binding.
    const cnf = (payload['cnf'] ?? {}) as Record<string, unknown>;
    const jkt = cnf['jkt'];
    if (typeof jkt === 'string') {
      if (!dpopScheme) return fail('this token is DPoP-bound: send it with the DPoP scheme and a DPoP proof');
      const proofError = await this.checkDpopProof(req, digest, jkt);
      if (proofError) return fail(proofError, 'invalid_dpop_proof');
    } else if (dpopScheme) {
      return fail('the DPoP scheme was used with a token that is not DPoP-bound');
    }
    const x5t = cnf['x5t#S256'];
    if (typeof x5t === 'string') {
      const socket = req.socket as TLSSocket;
      const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
      const raw = cert && 'raw' in cert ? cert.raw : undefined;
      if (!raw) return fail('this token is bound to a TLS client certificate, and none was presented');
      const thumb = createHash('sha256').update(raw).digest('base64url');
      if (!equalStrings(thumb, x5t))
        return fail('the TLS client certificate is not the one this token is bound to');
    }

    const gid = typeof payload['gid'] === 'string' ? payload['gid'] : undefined;
    if (this.options.source.grantActive) {
      if (!gid) return fail('the token names no grant');
      if (!(await this.options.source.grantActive(gid, sub))) return fail('the token has been revoked');
    }
    const clientId = typeof payload['client_id'] === 'string' ? payload['client_id'] : undefined;
    return {
      ok: true,
      tokenHash: hash,
      ...(gid ? { grantId: gid } : {}),
      caller: { tenant: sub, scopes: scopesOf(payload), clientId },
    };
  }

  private async verify(token: string, digest: string): Promise<JWTPayload> {
    const { source, issuer, resource } = this.options;
    const now = this.now();
    const keys = source.keysVersion?.() ?? 0;
    const known = this.verified.get(digest, now, keys);
    if (known !== undefined) return known;
    let isJwt: boolean;
    try {
      decodeProtectedHeader(token);
      isJwt = true;
    } catch {
      isJwt = false;
    }
    if (!isJwt) {
      if (!source.introspect) throw new TokenRefusal('the token is not a JWT issued by this server');
      const claims = await source.introspect(token);
      if (!claims) throw new TokenRefusal('the token is not active');
      const aud = claims.aud;
      const audiences = Array.isArray(aud) ? aud : aud === undefined ? [] : [aud];
      if (!audiences.includes(resource)) throw new TokenRefusal(`the token's audience is not ${resource}`);
      if (claims.iss !== undefined && claims.iss !== issuer)
        throw new TokenRefusal('the token is from another issuer');
      return claims;
    }
    const { payload } = await jwtVerify(token, source.getKey, {
      issuer,
      audience: resource,
      algorithms: [...source.algorithms],
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(now),
      requiredClaims: ['exp', 'sub'],
      ...(source.requireAtJwt ? { typ: 'at+jwt' } : {}),
    });
    this.verified.set(digest, payload, now, keys);
    return payload;
  }

  /**
   * RFC 9449 §4.3 and §7.1. Returns why the proof is refused, or null. The proof is parsed with jose's decoders
   * and its signature checked with node:crypto synchronously — one verification, no thread-pool round trip (jose's
   * WebCrypto path cost about half the throughput of a trivial call; see docs/adr/0012). Only the algorithms of
   * DPOP_ALGS, with a public key of the matching type and curve, are accepted; `crit` and `b64` are refused.
   */
  private async checkDpopProof(
    req: IncomingMessage,
    tokenDigestValue: string,
    jkt: string,
  ): Promise<string | null> {
    const proof = req.headers['dpop'];
    if (typeof proof !== 'string' || proof.length === 0) return 'a DPoP proof header is required';
    if (proof.includes(',')) return 'exactly one DPoP proof is allowed';
    const parts = proof.split('.');
    if (parts.length !== 3) return 'the DPoP proof is invalid: the token is malformed or invalid';
    let header: ReturnType<typeof decodeProtectedHeader>;
    let payload: JWTPayload;
    try {
      header = decodeProtectedHeader(proof);
      payload = decodeJwt(proof);
    } catch {
      return 'the DPoP proof is invalid: the token is malformed or invalid';
    }
    if (header.typ !== 'dpop+jwt') return 'the DPoP proof is invalid: its typ must be dpop+jwt';
    const alg = header.alg;
    if (typeof alg !== 'string' || !(DPOP_ALGS as readonly string[]).includes(alg)) {
      return 'the DPoP proof is invalid: the token uses an algorithm that is not accepted';
    }
    if ('crit' in header || 'b64' in header)
      return 'the DPoP proof is invalid: crit and b64 are not supported';
    const jwk = header.jwk;
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) {
      return 'the DPoP proof is invalid: its header must carry the public key (jwk)';
    }
    if (PRIVATE_JWK_MEMBERS.some((m) => m in jwk))
      return 'the DPoP proof is invalid: its jwk must be a public key';
    let proofKey: ProofKey;
    try {
      proofKey = await this.proofKeys.get(jwk);
    } catch {
      return 'the DPoP proof is invalid: its jwk is not a usable public key';
    }
    if (!keyFitsAlgorithm(alg, proofKey.key)) {
      return 'the DPoP proof is invalid: its key does not fit its algorithm';
    }
    const signature = Buffer.from(parts[2] as string, 'base64url');
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii');
    const valid =
      alg === 'ES256'
        ? signature.length === 64 &&
          verify('sha256', signed, { key: proofKey.key, dsaEncoding: 'ieee-p1363' }, signature)
        : verify(null, signed, proofKey.key, signature);
    if (!valid) return 'the DPoP proof is invalid: the token signature is invalid';
    for (const claim of ['iat', 'jti', 'htm', 'htu', 'ath'] as const) {
      if (payload[claim] === undefined) return `the DPoP proof is invalid: it has no ${claim} claim`;
    }
    const now = this.now();
    const iat = payload.iat;
    if (typeof iat !== 'number' || !Number.isFinite(iat))
      return 'the DPoP proof is invalid: its iat must be a number';
    if (Math.abs(now / 1000 - iat) > DPOP_MAX_AGE_S) return 'the DPoP proof is too old or from the future';
    if (payload['htm'] !== req.method) return 'the DPoP proof was made for another HTTP method';
    if (normaliseHtu(payload['htu']) !== this.resourceHtu) {
      return 'the DPoP proof was made for another URL';
    }
    if (typeof payload['ath'] !== 'string' || !equalStrings(payload['ath'], tokenDigestValue)) {
      return 'the DPoP proof does not belong to this access token (ath)';
    }
    if (!equalStrings(proofKey.thumbprint, jkt))
      return 'the DPoP proof is signed by another key than the token is bound to';
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) {
      return 'the DPoP proof is invalid: its jti must be a string of 1 to 256 characters';
    }
    if (!this.replay.add(`${jkt}:${payload.jti}`, now + 2 * DPOP_MAX_AGE_S * 1000, now)) {
      return 'the DPoP proof was already used (replay)';
    }
    return null;
  }
}

function normaliseHtu(value: unknown): string {
  if (typeof value !== 'string') return '';
  try {
    const url = new URL(value);
    url.search = '';
    url.hash = '';
    return url.href;
  } catch {
    return '';
  }
}

/** A refusal whose reason may be told to the client. */
class TokenRefusal extends Error {}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'the token is for another audience';
    if (err.claim === 'iss') return 'the token is from another issuer';
    return `the token's ${err.claim} claim is invalid`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'the token is signed by an unknown key';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the token uses an algorithm that is not accepted';
  if (err instanceof joseErrors.JOSEError) return 'the token is malformed or invalid';
  if (err instanceof TokenRefusal) return err.message;
  // Anything else (the issuer's keys or introspection endpoint unreachable…) is not the client's to read.
  return 'the token could not be checked';
}
