/**
 * ResourceServer.authenticate over a real loopback HTTP server (node:http, 127.0.0.1): access tokens and DPoP proofs
 * are signed for real with jose (or, where jose refuses to make them, assembled from base64url parts and signed with
 * node:crypto), sent in real requests, and the outcome is answered as JSON.
 *
 * - The verified-token cache: a token's signature is checked once, yet a revoked grant is refused at once, an
 *   expired token is refused when the clock passes its exp (well before the cache's own five minutes), a new key set
 *   without the signing key refuses the cached token, and a token with another signature or payload is its own
 *   digest and never rides on the genuine one.
 * - DPoP proofs (RFC 9449), checked with node:crypto: ES256, Ed25519 and EdDSA accepted; every malformed or misused
 *   proof refused with invalid_dpop_proof and the reason.
 */
import { createHash, generateKeyPairSync, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, SignJWT, type JSONWebKeySet, type JWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ReloadingKeySet, ResourceServer, type AuthOutcome } from '../../src/auth/resource-server.js';

const ISSUER = 'https://issuer.example.test';
const SCOPE = 'pa.read pa.write';

// --- The loopback server -------------------------------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly wwwAuthenticate: string | undefined;
  readonly body: {
    readonly ok: boolean;
    readonly error?: string;
    readonly description?: string;
    readonly tenant?: string;
    readonly scopes?: string[];
    readonly clientId?: string;
    readonly grantId?: string;
    readonly tokenHash?: string;
  };
}

let server: Server;
let origin: string;
/** The resource: the loopback server's URL + /mcp (the audience of the tokens and the htu of the proofs). */
let resource: string;
/** The ResourceServer the loopback server asks; each test builds its own (see rig()). */
let current: ResourceServer | undefined;

beforeAll(async () => {
  server = createServer((req, res) => {
    void (async () => {
      req.resume();
      if (!current) {
        res.writeHead(500).end('no resource server');
        return;
      }
      let outcome: AuthOutcome;
      try {
        outcome = await current.authenticate(req);
      } catch (err) {
        res.writeHead(500).end(String(err));
        return;
      }
      const body = outcome.ok
        ? {
            ok: true,
            tenant: outcome.caller.tenant,
            scopes: [...outcome.caller.scopes].sort(),
            clientId: outcome.caller.clientId,
            grantId: outcome.grantId,
            tokenHash: outcome.tokenHash,
          }
        : {
            ok: false,
            error: outcome.error,
            description: outcome.description,
            tokenHash: outcome.tokenHash,
          };
      res.writeHead(outcome.ok ? 200 : outcome.status, {
        'content-type': 'application/json',
        ...(outcome.ok ? {} : { 'www-authenticate': current.challenge(outcome) }),
      });
      res.end(JSON.stringify(body));
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;
  resource = `${origin}/mcp`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/**
 * One request to the loopback server. node:http rather than fetch so that a header may be sent twice (fetch would
 * join the values into one line).
 */
function send(options: {
  authorization?: string;
  dpop?: string | string[];
  method?: string;
  path?: string;
}): Promise<Answer> {
  const method = options.method ?? 'POST';
  const headers: Record<string, string | string[]> = { 'content-type': 'application/json' };
  if (options.authorization !== undefined) headers['authorization'] = options.authorization;
  if (options.dpop !== undefined) headers['dpop'] = options.dpop;
  return new Promise((resolve, reject) => {
    const req = request(`${origin}${options.path ?? '/mcp'}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({
            status: res.statusCode ?? 0,
            wwwAuthenticate: res.headers['www-authenticate'],
            body: JSON.parse(text) as Answer['body'],
          });
        } catch {
          reject(new Error(`the loopback server answered ${res.statusCode}: ${text}`));
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : '{}');
  });
}

function expectAccepted(answer: Answer, sub = 'user-1'): void {
  expect(answer.body, JSON.stringify(answer.body)).toMatchObject({ ok: true, tenant: sub });
  expect(answer.status).toBe(200);
}

function expectRefused(answer: Answer, error: 'invalid_token' | 'invalid_dpop_proof', reason: RegExp): void {
  expect(answer.body, JSON.stringify(answer.body)).toMatchObject({ ok: false, error });
  expect(answer.body.description).toMatch(reason);
  expect(answer.status).toBe(401);
  expect(answer.wwwAuthenticate).toContain(`error="${error}"`);
}

// --- Keys and tokens -----------------------------------------------------------------------------------------------

interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
  readonly kid: string;
}

function issuerKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKey,
    kid,
    publicJwk: { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256', use: 'sig' },
  };
}

const signingKey = issuerKey('issuer-key-1');
const otherIssuerKey = issuerKey('issuer-key-2');
const issuerJwks: JSONWebKeySet = { keys: [signingKey.publicJwk] };

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

async function accessToken(
  options: {
    sub?: string;
    gid?: string;
    /** Seconds from now. */
    expiresIn?: number;
    jkt?: string;
    key?: SigningKey;
  } = {},
): Promise<string> {
  const key = options.key ?? signingKey;
  const iat = nowSeconds();
  return new SignJWT({
    client_id: 'client-1',
    gid: options.gid ?? 'grant-1',
    scope: SCOPE,
    ...(options.jkt ? { cnf: { jkt: options.jkt } } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience(resource)
    .setSubject(options.sub ?? 'user-1')
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.expiresIn ?? 600))
    .setJti(randomUUID())
    .sign(key.privateKey);
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** Replaces one character in the middle of a base64url segment (a full 6 bits, never padding bits). */
function alterSegment(jwt: string, index: 0 | 1 | 2): string {
  const parts = jwt.split('.');
  const segment = parts[index] as string;
  const at = Math.floor(segment.length / 2);
  const replacement = segment[at] === 'A' ? 'B' : 'A';
  parts[index] = segment.slice(0, at) + replacement + segment.slice(at + 1);
  return parts.join('.');
}

interface Rig {
  readonly rs: ResourceServer;
  readonly keys: ReloadingKeySet;
  readonly revoked: Set<string>;
  /** Added to the real time for the ResourceServer's `now`. */
  offsetMs: number;
  /** What the key set's reload() returns (what the issuer publishes). */
  published: JSONWebKeySet;
  readonly calls: { getKey: number; grantActive: number };
}

/** A fresh ResourceServer (fresh caches) for the loopback server, with its keys, grants and clock under control. */
function rig(): Rig {
  const state: Omit<Rig, 'rs' | 'keys'> = {
    revoked: new Set<string>(),
    offsetMs: 0,
    published: issuerJwks,
    calls: { getKey: 0, grantActive: 0 },
  };
  const keys = new ReloadingKeySet(issuerJwks, async () => state.published);
  const rs = new ResourceServer({
    issuer: ISSUER,
    resource,
    resourceMetadataUrl: `${origin}/.well-known/oauth-protected-resource/mcp`,
    now: () => Date.now() + state.offsetMs,
    source: {
      getKey: (header, token) => {
        state.calls.getKey++;
        return keys.getKey(header, token);
      },
      keysVersion: () => keys.version,
      requireAtJwt: true,
      algorithms: ['ES256'],
      grantActive: async (gid) => {
        state.calls.grantActive++;
        return !state.revoked.has(gid);
      },
    },
  });
  current = rs;
  return Object.assign(state, { rs, keys });
}

// --- The verified-token cache --------------------------------------------------------------------------------------

describe('the verified-token cache', () => {
  let r: Rig;
  beforeEach(() => {
    r = rig();
  });

  it('accepts a token twice, checking its signature once and its grant every time', async () => {
    const token = await accessToken();
    const first = await send({ authorization: `Bearer ${token}` });
    expectAccepted(first);
    expect(first.body).toMatchObject({
      scopes: ['pa.read', 'pa.write'],
      clientId: 'client-1',
      grantId: 'grant-1',
    });
    const second = await send({ authorization: `Bearer ${token}` });
    expectAccepted(second);
    expect(second.body).toEqual(first.body);
    expect(r.calls.getKey).toBe(1);
    expect(r.calls.grantActive).toBe(2);
  });

  it('refuses a cached token at once when its grant is revoked', async () => {
    const token = await accessToken({ gid: 'grant-revoked' });
    const other = await accessToken({ gid: 'grant-kept', sub: 'user-2' });
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    expectAccepted(await send({ authorization: `Bearer ${other}` }), 'user-2');
    r.revoked.add('grant-revoked');
    expectRefused(await send({ authorization: `Bearer ${token}` }), 'invalid_token', /revoked/);
    // The refusal came from the grant check, with the token still in the cache (no new signature check).
    expect(r.calls.getKey).toBe(2);
    expectAccepted(await send({ authorization: `Bearer ${other}` }), 'user-2');
  });

  it('refuses a cached token once the clock passes its exp, before the cache would let it go', async () => {
    const token = await accessToken({ expiresIn: 60 });
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    r.offsetMs = 30_000;
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    expect(r.calls.getKey).toBe(1);
    // 120 s on: past exp (and the 5 s tolerance), far within the cache's five minutes.
    r.offsetMs = 120_000;
    expectRefused(await send({ authorization: `Bearer ${token}` }), 'invalid_token', /expired/);
  });

  it('checks a long-lived token again after five minutes', async () => {
    const token = await accessToken({ expiresIn: 3600 });
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    r.offsetMs = 4 * 60_000;
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    expect(r.calls.getKey).toBe(1);
    r.offsetMs = 5 * 60_000 + 1_000;
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    expect(r.calls.getKey).toBe(2);
  });

  it('refuses a cached token once the key set no longer holds its signing key', async () => {
    const token = await accessToken();
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    const rotated: JSONWebKeySet = { keys: [otherIssuerKey.publicJwk] };
    r.published = rotated;
    const before = r.keys.version;
    r.keys.replace(rotated);
    expect(r.keys.version).not.toBe(before);
    expectRefused(await send({ authorization: `Bearer ${token}` }), 'invalid_token', /unknown key/);
    // Tokens of the new key are accepted; the old key back, the old token is accepted again.
    expectAccepted(await send({ authorization: `Bearer ${await accessToken({ key: otherIssuerKey })}` }));
    r.published = issuerJwks;
    r.keys.replace(issuerJwks);
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
  });

  it('never accepts an altered token, even with the genuine one cached', async () => {
    const token = await accessToken();
    const genuine = await send({ authorization: `Bearer ${token}` });
    expectAccepted(genuine);

    const badSignature = alterSegment(token, 2);
    expect(badSignature).not.toBe(token);
    const refused = await send({ authorization: `Bearer ${badSignature}` });
    expectRefused(refused, 'invalid_token', /signature is invalid/);
    expect(refused.body.tokenHash).not.toBe(genuine.body.tokenHash);

    // Another subject under the genuine signature.
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const otherPayload = b64url(JSON.stringify({ ...claims, sub: 'user-2' }));
    expectRefused(
      await send({ authorization: `Bearer ${header}.${otherPayload}.${signature}` }),
      'invalid_token',
      /signature is invalid/,
    );

    // Again, after the refusals: the genuine token is still accepted, the altered one still refused.
    expectAccepted(await send({ authorization: `Bearer ${token}` }));
    expectRefused(
      await send({ authorization: `Bearer ${badSignature}` }),
      'invalid_token',
      /signature is invalid/,
    );
  });
});

// --- DPoP proofs ---------------------------------------------------------------------------------------------------

interface ProofSigner {
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
  readonly privateJwk: JWK;
  readonly jkt: string;
}

async function proofSigner(type: 'P-256' | 'P-384' | 'Ed25519' | 'Ed448'): Promise<ProofSigner> {
  const { privateKey, publicKey } =
    type === 'P-256' || type === 'P-384'
      ? generateKeyPairSync('ec', { namedCurve: type })
      : type === 'Ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ed448');
  const publicJwk = publicKey.export({ format: 'jwk' }) as JWK;
  return {
    privateKey,
    publicJwk,
    privateJwk: privateKey.export({ format: 'jwk' }) as JWK,
    jkt: await calculateJwkThumbprint(publicJwk, 'sha256'),
  };
}

function ath(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

interface ProofClaims {
  htm?: string;
  htu?: string;
  ath?: string;
  iat?: number;
  jti?: string;
}

function proofClaims(token: string, overrides: ProofClaims = {}, omit: readonly string[] = []): object {
  const claims: Record<string, unknown> = {
    htm: 'POST',
    htu: resource,
    ath: ath(token),
    iat: nowSeconds(),
    jti: randomUUID(),
    ...overrides,
  };
  for (const name of omit) delete claims[name];
  return claims;
}

/** A proof signed by jose. */
async function proof(
  signer: ProofSigner,
  token: string,
  options: {
    alg?: 'ES256' | 'Ed25519' | 'EdDSA';
    typ?: string;
    claims?: ProofClaims;
    omit?: readonly string[];
  } = {},
): Promise<string> {
  return new SignJWT(proofClaims(token, options.claims, options.omit) as Record<string, unknown>)
    .setProtectedHeader({
      alg: options.alg ?? 'ES256',
      typ: options.typ ?? 'dpop+jwt',
      jwk: signer.publicJwk,
    })
    .sign(signer.privateKey);
}

/** A proof assembled by hand, for what jose will not sign. `sign` makes the signature of `header.payload`. */
function handProof(header: Record<string, unknown>, claims: object, sign: (data: Buffer) => Buffer): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign(Buffer.from(input, 'ascii')))}`;
}

describe('DPoP proofs', () => {
  let ecSigner: ProofSigner;
  let edSigner: ProofSigner;
  let token: string;

  beforeAll(async () => {
    ecSigner = await proofSigner('P-256');
    edSigner = await proofSigner('Ed25519');
  });

  beforeEach(async () => {
    rig();
    token = await accessToken({ jkt: ecSigner.jkt });
  });

  const dpop = (accessTokenValue: string, proofValue: string | string[], method = 'POST') =>
    send({ authorization: `DPoP ${accessTokenValue}`, dpop: proofValue, method });

  it('accepts a correct ES256 proof', async () => {
    const answer = await dpop(token, await proof(ecSigner, token));
    expectAccepted(answer);
    expect(answer.body).toMatchObject({ scopes: ['pa.read', 'pa.write'], grantId: 'grant-1' });
    // A new proof for the next request (the token now comes from the cache).
    expectAccepted(await dpop(token, await proof(ecSigner, token)));
    // The method and URL are those of the request: a GET with a GET proof, a query string ignored.
    expectAccepted(await dpop(token, await proof(ecSigner, token, { claims: { htm: 'GET' } }), 'GET'));
    expectAccepted(
      await dpop(token, await proof(ecSigner, token, { claims: { htu: `${resource}?session=1` } })),
    );
  });

  it('accepts Ed25519 and EdDSA proofs for a token bound to an Ed25519 key', async () => {
    const edToken = await accessToken({ jkt: edSigner.jkt });
    expectAccepted(await dpop(edToken, await proof(edSigner, edToken, { alg: 'Ed25519' })));
    expectAccepted(await dpop(edToken, await proof(edSigner, edToken, { alg: 'EdDSA' })));
    // The ES256 client's proof does not fit this token, nor the Ed25519 client's proof the ES256 token.
    expectRefused(await dpop(edToken, await proof(ecSigner, edToken)), 'invalid_dpop_proof', /another key/);
    expectRefused(
      await dpop(token, await proof(edSigner, token, { alg: 'Ed25519' })),
      'invalid_dpop_proof',
      /another key/,
    );
  });

  it('refuses alg none and HS256', async () => {
    const none = handProof(
      { alg: 'none', typ: 'dpop+jwt', jwk: ecSigner.publicJwk },
      proofClaims(token),
      () => Buffer.alloc(0),
    );
    expect(none.endsWith('.')).toBe(true);
    expectRefused(await dpop(token, none), 'invalid_dpop_proof', /algorithm that is not accepted/);

    const hs256 = await new SignJWT(proofClaims(token) as Record<string, unknown>)
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: ecSigner.publicJwk })
      .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long'));
    expectRefused(await dpop(token, hs256), 'invalid_dpop_proof', /algorithm that is not accepted/);
  });

  it('refuses typ JWT', async () => {
    expectRefused(
      await dpop(token, await proof(ecSigner, token, { typ: 'JWT' })),
      'invalid_dpop_proof',
      /typ must be dpop\+jwt/,
    );
  });

  it("refuses a jwk holding the private 'd'", async () => {
    expect(ecSigner.privateJwk.d).toBeTypeOf('string');
    const withD = await new SignJWT(proofClaims(token) as Record<string, unknown>)
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: ecSigner.privateJwk })
      .sign(ecSigner.privateKey);
    expectRefused(await dpop(token, withD), 'invalid_dpop_proof', /must be a public key/);
  });

  it('refuses ES256 named over a P-384 key (signed with ES384)', async () => {
    // The token is bound to that key, so only the key's curve is wrong.
    const p384 = await proofSigner('P-384');
    const p384Token = await accessToken({ jkt: p384.jkt });
    const es384 = handProof(
      { alg: 'ES256', typ: 'dpop+jwt', jwk: p384.publicJwk },
      proofClaims(p384Token),
      (data) => cryptoSign('sha384', data, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    expectRefused(await dpop(p384Token, es384), 'invalid_dpop_proof', /does not fit its algorithm/);
  });

  it('refuses Ed25519 named over an Ed448 key with a genuine Ed448 signature', async () => {
    // The signature verifies under the key: only the key's type tells the algorithms apart.
    const ed448 = await proofSigner('Ed448');
    const ed448Token = await accessToken({ jkt: ed448.jkt });
    const ed448Proof = handProof(
      { alg: 'Ed25519', typ: 'dpop+jwt', jwk: ed448.publicJwk },
      proofClaims(ed448Token),
      (data) => cryptoSign(null, data, ed448.privateKey),
    );
    expectRefused(await dpop(ed448Token, ed448Proof), 'invalid_dpop_proof', /does not fit its algorithm/);
  });

  it('refuses EdDSA named over a P-256 key with a genuine ECDSA signature', async () => {
    // An EdDSA verification (no digest named) of an EC key is ECDSA with SHA-256 over DER: it would pass.
    const eddsaEc = handProof(
      { alg: 'EdDSA', typ: 'dpop+jwt', jwk: ecSigner.publicJwk },
      proofClaims(token),
      (data) => cryptoSign('sha256', data, ecSigner.privateKey),
    );
    expectRefused(await dpop(token, eddsaEc), 'invalid_dpop_proof', /does not fit its algorithm/);
  });

  it('refuses a proof with a signature byte flipped', async () => {
    const genuine = await proof(ecSigner, token);
    const [header, payload, signature] = genuine.split('.') as [string, string, string];
    const bytes = Buffer.from(signature, 'base64url');
    bytes[10] = (bytes[10] as number) ^ 0x01;
    const flipped = `${header}.${payload}.${b64url(bytes)}`;
    expectRefused(await dpop(token, flipped), 'invalid_dpop_proof', /signature is invalid/);
    // The genuine proof (its jti unused so far) is accepted.
    expectAccepted(await dpop(token, genuine));
  });

  it('refuses a crit header', async () => {
    const withCrit = handProof(
      { alg: 'ES256', typ: 'dpop+jwt', jwk: ecSigner.publicJwk, crit: ['exp'] },
      proofClaims(token),
      (data) => cryptoSign('sha256', data, { key: ecSigner.privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    expectRefused(await dpop(token, withCrit), 'invalid_dpop_proof', /crit/);
    // The same hand assembly without crit is accepted: it is the crit that is refused.
    const plain = handProof(
      { alg: 'ES256', typ: 'dpop+jwt', jwk: ecSigner.publicJwk },
      proofClaims(token),
      (data) => cryptoSign('sha256', data, { key: ecSigner.privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    expectAccepted(await dpop(token, plain));
  });

  it('refuses a proof without ath, or with the ath of another token', async () => {
    expectRefused(
      await dpop(token, await proof(ecSigner, token, { omit: ['ath'] })),
      'invalid_dpop_proof',
      /no ath claim/,
    );
    const another = await accessToken({ jkt: ecSigner.jkt });
    expectRefused(
      await dpop(token, await proof(ecSigner, token, { claims: { ath: ath(another) } })),
      'invalid_dpop_proof',
      /does not belong to this access token \(ath\)/,
    );
  });

  it('refuses a proof for another method or another URL', async () => {
    expectRefused(
      await dpop(token, await proof(ecSigner, token, { claims: { htm: 'GET' } })),
      'invalid_dpop_proof',
      /another HTTP method/,
    );
    expectRefused(
      await dpop(token, await proof(ecSigner, token, { claims: { htu: `${origin}/other` } })),
      'invalid_dpop_proof',
      /another URL/,
    );
  });

  it('refuses a proof made 120 s ago', async () => {
    expectRefused(
      await dpop(token, await proof(ecSigner, token, { claims: { iat: nowSeconds() - 120 } })),
      'invalid_dpop_proof',
      /too old/,
    );
  });

  it('refuses the same proof twice (replay)', async () => {
    const once = await proof(ecSigner, token);
    expectAccepted(await dpop(token, once));
    expectRefused(await dpop(token, once), 'invalid_dpop_proof', /already used/);
  });

  it('refuses a proof signed by another key than the one the token is bound to', async () => {
    const stranger = await proofSigner('P-256');
    expectRefused(
      await dpop(token, await proof(stranger, token)),
      'invalid_dpop_proof',
      /another key than the token is bound to/,
    );
  });

  it('refuses a DPoP-bound token sent with the Bearer scheme', async () => {
    expectRefused(
      await send({ authorization: `Bearer ${token}`, dpop: await proof(ecSigner, token) }),
      'invalid_token',
      /DPoP-bound/,
    );
  });

  it('refuses two DPoP headers', async () => {
    const first = await proof(ecSigner, token);
    const second = await proof(ecSigner, token);
    const answer = await dpop(token, [first, second]);
    expectRefused(answer, 'invalid_dpop_proof', /exactly one/);
    expect(answer.wwwAuthenticate).toMatch(/^DPoP algs=/);
    // Each of them alone is a good proof.
    expectAccepted(await dpop(token, first));
  });
});
