/**
 * Property-based fuzzing of the embedded authorization server's endpoints, against the real HTTP-mode server of
 * test/auth/oauth-fixture.ts (HTTPS, PGlite):
 *
 *   /oauth/authorize   GET with arbitrary, duplicated and oversized query parameters, real clients mixed with junk;
 *   /oauth/token       arbitrary forms (grant_type, code, code_verifier, redirect_uri, refresh_token, resource,
 *                      client_id…), wrong content types, Basic headers with garbage;
 *   /oauth/register    arbitrary JSON metadata (redirect_uris of every odd shape, huge arrays, wrong types,
 *                      unicode, nested objects) and bodies that are not metadata at all;
 *   /oauth/revoke, /oauth/introspect, /oauth/par   arbitrary forms and client authentication.
 *
 * Properties: never a 5xx; an error from token/register/revoke/introspect/par is JSON with a string `error`
 * (RFC 6749 §5.2, RFC 7591 §3.2.2), one from authorize is an HTML page; a redirect out of the server goes only to
 * the client's registered redirect URI; no client is registered from metadata mcp-pa's rules refuse (every 201
 * satisfies src/auth/client-rules.ts, and the number of stored clients grows by the number of 201s exactly);
 * introspection never tells a client about another client's token; a victim client's tokens, offered to every
 * endpoint under other client ids, still work afterwards; the server logs no error and this process (where the
 * server runs) sees no unhandled rejection.
 *
 * The per-address rate limits (registration 20/min, failed token requests 20/min per address and client,
 * authorization requests 300/min) are fixed in code, not configuration, so the requests come from 253 loopback
 * source addresses in turn (SpreadSources): every run reaches its handler; any 429 is counted and reported (none
 * is expected). Every URL the generators make is on a loopback host (the server may fetch a client id that is a
 * URL, a jwks_uri or a request_uri).
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRedirectUri, LIMITS } from '../../src/auth/client-rules.js';
import { mcpInitialize, startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';
import type { RawResponse } from '../support/https.js';
import { loopbackOnly, text, urlText, wrongType } from './arbitraries.js';
import { runs, Tally } from './mcp-harness.js';
import {
  errorLogLines,
  obtainTokens,
  REDIRECT,
  SpreadSources,
  watchProcess,
  type Tokens,
} from './oauth-support.js';

const AUTHORIZE_RUNS = runs(200);
const TOKEN_RUNS = runs(200);
const REGISTER_RUNS = runs(150);
const REVOKE_RUNS = runs(100);
const INTROSPECT_RUNS = runs(100);
const PAR_RUNS = runs(100);
/** MCP_PA_FUZZ_VERBOSE=1: the report at the end also counts answers by their description. */
const VERBOSE = process.env['MCP_PA_FUZZ_VERBOSE'] === '1';

let fx: OAuthFixture;
let sources: SpreadSources;
let watch: ReturnType<typeof watchProcess>;
/** The victim: a user's public client and its tokens, offered everywhere under other client ids. */
let victim: Tokens;
/** Another user's public client (its tokens too). */
let other: Tokens;
/** A confidential client (client_secret_basic). */
let confidential: { id: string; secret: string };
const tallies = new Map<string, Tally>();
/** Every answer that was a 429 (expected: none, the requests come from many addresses). */
let limited = 0;

function tally(endpoint: string, res: RawResponse): void {
  let t = tallies.get(endpoint);
  if (t === undefined) {
    t = new Tally();
    tallies.set(endpoint, t);
  }
  const error = (res.json as { error?: unknown } | undefined)?.error;
  t.add(`${res.status}${typeof error === 'string' ? ` ${error}` : ''}`);
  if (VERBOSE) {
    // Why, too: the error_description, or the message of an HTML page.
    const description = (res.json as { error_description?: unknown } | undefined)?.error_description;
    const page = /<p[^>]*>([^<]{1,120})/.exec(res.text)?.[1];
    t.add(`  ${res.status} ${String(description ?? page ?? res.text.slice(0, 60))}`);
  }
  if (res.status === 429) limited += 1;
}

// ------------------------------------------------------------------------------------------- generators

const b64url = (n: number): fc.Arbitrary<string> =>
  fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('base64url'));
const jwtish: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('eyJhbGciOiJub25lIn0.eyJ9.', 'eyJhbGciOiJub25lIn0.e30.', 'a.b.c', '..', 'eyJ.eyJ.eyJ'),
  fc
    .tuple(fc.jsonValue({ maxDepth: 1 }), fc.jsonValue({ maxDepth: 2 }), b64url(16))
    .map(
      ([h, p, s]) =>
        `${Buffer.from(JSON.stringify(h) ?? '').toString('base64url')}.${Buffer.from(JSON.stringify(p) ?? '').toString('base64url')}.${s}`,
    ),
);
const junk: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: text(0, 60) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('x'.repeat(5000), 'é'.repeat(3000), '%00%ff%zz', '+ +', '&=&=', '\u0000'),
  },
);

/** Values per parameter name: the real thing now and then, mostly variations and junk. */
function valueFor(key: string, clients: readonly string[], tokens: readonly string[]): fc.Arbitrary<string> {
  const oneOf = (...values: string[]): fc.Arbitrary<string> =>
    fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...values) }, { weight: 1, arbitrary: junk });
  switch (key) {
    case 'client_id':
      return fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...clients) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            `https://127.0.0.1:${new URL(fx.origin).port}/client.json`,
            'https://127.0.0.1/cimd',
            'dcr_',
            'cli_x',
          ),
        },
        { weight: 1, arbitrary: junk },
      );
    case 'redirect_uri':
    case 'post_logout_redirect_uri':
      return fc.oneof(
        {
          weight: 2,
          arbitrary: fc.constantFrom(
            REDIRECT,
            'http://127.0.0.1/cb',
            'http://127.0.0.1:1/cb',
            'http://localhost:51004/cb',
          ),
        },
        { weight: 3, arbitrary: urlText },
      );
    case 'response_type':
      return oneOf('code', 'token', 'id_token', 'code id_token', 'none', 'CODE', 'code code', '');
    case 'response_mode':
      return oneOf('query', 'fragment', 'form_post', 'jwt', 'query.jwt', 'web_message');
    case 'scope':
      return oneOf(
        'pa.read pa.write',
        'pa.read',
        'openid',
        'openid offline_access pa.read',
        'admin',
        'pa.read pa.read',
        ' ',
        'pa.*',
      );
    case 'code_challenge':
      return fc.oneof(b64url(32), b64url(8), b64url(100), junk);
    case 'code_challenge_method':
      return oneOf('S256', 'plain', 's256', 'S512', '');
    case 'code_verifier':
      return fc.oneof(b64url(32), b64url(96), fc.constantFrom('a'.repeat(42), 'a'.repeat(129)), junk);
    case 'resource':
      return oneOf(
        fx.resource,
        fx.origin,
        `${fx.resource}/`,
        `${fx.resource}#x`,
        'https://127.0.0.1/mcp',
        'urn:x',
        '/mcp',
      );
    case 'grant_type':
      return oneOf(
        'authorization_code',
        'refresh_token',
        'client_credentials',
        'password',
        'implicit',
        'urn:ietf:params:oauth:grant-type:device_code',
        'urn:ietf:params:oauth:grant-type:token-exchange',
        'urn:ietf:params:oauth:grant-type:jwt-bearer',
        'urn:openid:params:grant-type:ciba',
      );
    case 'code':
    case 'refresh_token':
    case 'token':
      return fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...tokens) },
        { weight: 1, arbitrary: b64url(32) },
        { weight: 1, arbitrary: jwtish },
        { weight: 1, arbitrary: junk },
      );
    case 'token_type_hint':
      return oneOf('access_token', 'refresh_token', 'id_token', 'urn:x');
    case 'prompt':
      return oneOf('none', 'login', 'consent', 'create', 'select_account', 'login consent', 'none login');
    case 'max_age':
      return oneOf('0', '-1', '1e9', '99999999999999999999', 'NaN');
    case 'request':
    case 'client_assertion':
    case 'id_token_hint':
      return fc.oneof(jwtish, junk);
    case 'client_assertion_type':
      return oneOf('urn:ietf:params:oauth:client-assertion-type:jwt-bearer', 'urn:x');
    case 'request_uri':
      return oneOf(
        'urn:ietf:params:oauth:request_uri:abc',
        'https://127.0.0.1/req.jwt',
        'urn:ietf:params:oauth:request_uri:',
      );
    case 'claims':
    case 'authorization_details':
      return fc.oneof(
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ''),
        junk,
      );
    default:
      return junk;
  }
}

const AUTHORIZE_KEYS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'code_challenge',
  'code_challenge_method',
  'resource',
  'nonce',
  'prompt',
  'max_age',
  'response_mode',
  'request',
  'request_uri',
  'login_hint',
  'ui_locales',
  'claims',
  'authorization_details',
  'id_token_hint',
  'dpop_jkt',
];
const TOKEN_KEYS = [
  'grant_type',
  'code',
  'code_verifier',
  'redirect_uri',
  'refresh_token',
  'resource',
  'client_id',
  'scope',
  'client_assertion',
  'client_assertion_type',
  'client_secret',
  'audience',
  'subject_token',
];
const REVOKE_KEYS = [
  'token',
  'token_type_hint',
  'client_id',
  'client_assertion',
  'client_assertion_type',
  'client_secret',
];

/**
 * A list of [name, value] pairs. Near a well-formed request most of the time (one of `bases`, each value kept,
 * replaced or dropped, a few pairs added, one name now and then repeated), else wild (any known names with their
 * values, and unknown names).
 */
function params(
  keys: readonly string[],
  clients: readonly string[],
  tokens: readonly string[],
  bases: readonly Record<string, string>[],
): fc.Arbitrary<[string, string][]> {
  const pair = fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .constantFrom(...keys)
        .chain((k) => valueFor(k, clients, tokens).map((v): [string, string] => [k, v])),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.oneof(text(0, 20), fc.constantFrom('', '[]', 'a[b]', '__proto__', 'constructor')),
        junk,
      ),
    },
  );
  // Up to two of the base's values replaced or dropped, up to two pairs added, now and then a name repeated.
  const near = fc.constantFrom(...bases).chain((base) => {
    const keysOfBase = Object.keys(base);
    const change = fc.tuple(
      fc.constantFrom(...keysOfBase),
      fc.option(
        fc.constantFrom(...keysOfBase).chain((k) => valueFor(k, clients, tokens)),
        { freq: 4 },
      ),
    );
    return fc
      .tuple(
        fc.array(change, { maxLength: 2 }),
        fc.array(pair, { maxLength: 2 }),
        fc.option(fc.constantFrom(...keysOfBase), { freq: 6 }),
      )
      .map(([changes, extra, repeated]) => {
        const kept = new Map<string, string | null>(Object.entries(base));
        for (const [k, v] of changes) kept.set(k, v);
        const out: [string, string][] = [];
        for (const [k, v] of kept) if (v !== null) out.push([k, v]);
        out.push(...extra);
        if (repeated !== null) out.push([repeated, base[repeated] ?? '']);
        return out;
      });
  });
  const wild = fc.array(pair, { maxLength: 14 });
  return fc.oneof({ weight: 3, arbitrary: near }, { weight: 1, arbitrary: wild }).map(loopbackOnly);
}

/** Content types a form may arrive with (the right one most of the time). */
const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/x-www-form-urlencoded') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/x-www-form-urlencoded; charset=utf-8',
      'APPLICATION/X-WWW-FORM-URLENCODED',
      'application/json',
      'text/plain',
      'multipart/form-data; boundary=xyz',
      'application/x-www-form-urlencoded; charset=latin1',
      'application/jwt',
      '',
    ),
  },
);

/**
 * Authorization headers: none, the confidential client's (right or wrong secret), other ids with junk secrets,
 * garbage, another scheme. The victim's client id is never among them (its tokens must survive).
 */
function authorization(): fc.Arbitrary<string | undefined> {
  // Form-encoded as RFC 6749 §2.3.1 asks (text that is not Unicode, a lone surrogate, goes as it is).
  const enc = (v: string): string => {
    try {
      return encodeURIComponent(v);
    } catch {
      return v;
    }
  };
  const basic = (id: string, secret: string): string =>
    `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constant(basic(confidential.id, confidential.secret)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(confidential.id, other.clientId, '', ':'), junk)
        .map(([id, s]) => basic(id, s)),
    },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constantFrom(
          'Basic',
          'Basic ',
          'Basic !!!',
          'Basic Og==',
          'Basic OjpAOg==',
          'basic eDp5',
          'Basic ' + 'A'.repeat(8000),
          'Bearer x',
          `Bearer ${victim.accessToken}`,
          'DPoP x',
          'Negotiate x',
        ),
        fc.uint8Array({ maxLength: 64 }).map((b) => `Basic ${Buffer.from(b).toString('base64')}`),
        fc.string({ maxLength: 40 }).map((s) => `Basic ${Buffer.from(s).toString('base64')}`),
      ),
    },
  );
}

/** The body of a form request as sent: urlencoded pairs, or (for a JSON content type) a JSON object of them. */
function encode(pairs: [string, string][], type: string): string {
  if (type === 'application/json') return JSON.stringify(Object.fromEntries(pairs));
  const form = new URLSearchParams();
  for (const [k, v] of pairs) form.append(k, v);
  return form.toString();
}

// ------------------------------------------------------------------------------------------- checks

/** The answer is JSON with a string `error` (RFC 6749 §5.2 / RFC 7591 §3.2.2). */
function jsonError(endpoint: string, res: RawResponse): void {
  expect(String(res.headers['content-type']), `${endpoint} ${res.status}: ${res.text.slice(0, 300)}`).toMatch(
    /json/,
  );
  expect(
    typeof (res.json as { error?: unknown } | undefined)?.error,
    `${endpoint} ${res.status}: ${res.text.slice(0, 300)}`,
  ).toBe('string');
}

function notFiveHundred(endpoint: string, res: RawResponse, sent: unknown): void {
  expect(
    res.status,
    `${endpoint} answered ${res.status} to ${JSON.stringify(sent).slice(0, 400)}: ${res.text.slice(0, 400)}`,
  ).toBeLessThan(500);
  expect(watch.problems).toEqual([]);
}

async function clientCount(): Promise<number> {
  return fx.store.withServerState(async (sql) => {
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM oauth_state WHERE model = 'Client'`,
    );
    return rows[0]?.n ?? 0;
  });
}

async function post(
  endpoint: string,
  body: string,
  type: string,
  auth: string | undefined,
  extra: Record<string, string> = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...extra };
  if (type !== '') headers['content-type'] = type;
  if (auth !== undefined) headers['authorization'] = auth;
  const res = await sources.request(`${fx.origin}${endpoint}`, { method: 'POST', headers, body });
  tally(endpoint, res);
  fx.secrets.fromJson(res.text);
  return res;
}

// ------------------------------------------------------------------------------------------- tests

describe('fuzzing the authorization server endpoints', () => {
  beforeAll(async () => {
    watch = watchProcess();
    fx = await startOAuthFixture();
    sources = new SpreadSources(fx.ca.cert);
    victim = await obtainTokens(fx, await fx.addUser(), 'fuzz victim');
    other = await obtainTokens(fx, await fx.addUser(), 'fuzz other');
    const reg = await fx.register({
      redirect_uris: ['https://127.0.0.1/cb'],
      client_name: 'fuzz confidential',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    confidential = { id: String(reg.body['client_id']), secret: String(reg.body['client_secret']) };
    fx.secrets.add('client_secret', confidential.secret);
  }, 180_000);

  afterAll(async () => {
    sources?.close();
    watch?.stop();
    await fx?.close();
  }, 60_000);

  it(`/oauth/authorize: arbitrary query parameters (${AUTHORIZE_RUNS} runs): no 5xx, pages, no open redirect`, async () => {
    const clients = [victim.clientId, other.clientId, confidential.id];
    const challenge = randomBytes(32).toString('base64url');
    const base = {
      response_type: 'code',
      client_id: victim.clientId,
      redirect_uri: REDIRECT,
      scope: 'pa.read pa.write',
      state: 's',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    };
    const confidentialBase = { ...base, client_id: confidential.id, redirect_uri: 'https://127.0.0.1/cb' };
    await fc.assert(
      fc.asyncProperty(
        params(AUTHORIZE_KEYS, clients, [victim.accessToken], [base, confidentialBase]),
        async (pairs) => {
          const query = new URLSearchParams(pairs).toString();
          const res = await sources.request(`${fx.origin}/oauth/authorize?${query}`);
          tally('/oauth/authorize', res);
          notFiveHundred('/oauth/authorize', res, pairs);
          const location = res.headers.location;
          if (res.status >= 300 && res.status < 400) {
            expect(typeof location).toBe('string');
            const to = new URL(location as string, fx.origin);
            if (to.origin !== fx.origin) {
              // Out of the server: only to a registered redirect URI (loopback, any port, path /cb).
              expect(
                `${to.protocol}//${to.hostname}${to.pathname}`,
                `redirected to ${to.href} for ${query.slice(0, 300)}`,
              ).toMatch(/^https?:\/\/127\.0\.0\.1\/cb$/);
            }
          } else if (res.status >= 400 && res.status !== 413 && res.status !== 414 && res.status !== 431) {
            expect(String(res.headers['content-type']), `${res.status}: ${res.text.slice(0, 300)}`).toMatch(
              /text\/html/,
            );
          }
        },
      ),
      {
        numRuns: AUTHORIZE_RUNS,
        examples: [
          [Object.entries(base)],
          // Found by fuzzing: a NUL character in a parameter the library keeps with the interaction (state,
          // login_hint, ui_locales…) made PostgreSQL refuse the jsonb record: 500. Now a 400 page.
          [Object.entries({ ...base, state: 'a\u0000b' })],
          [Object.entries({ ...base, login_hint: '\u0000' })],
        ],
      },
    );
  }, 180_000);

  it(`/oauth/token: arbitrary forms, content types and Basic headers (${TOKEN_RUNS} runs): no 5xx, JSON errors`, async () => {
    // The victim's own client id is left out: its refresh token offered by anyone else must stay usable.
    const clients = [other.clientId, confidential.id];
    const tokens = [victim.refreshToken, victim.accessToken, other.refreshToken];
    await fc.assert(
      fc.asyncProperty(
        params(TOKEN_KEYS, clients, tokens, [
          // Another client presenting the victim's refresh token.
          { grant_type: 'refresh_token', refresh_token: victim.refreshToken, client_id: other.clientId },
          // A code exchange with a code that was never issued.
          {
            grant_type: 'authorization_code',
            code: randomBytes(32).toString('base64url'),
            code_verifier: randomBytes(32).toString('base64url'),
            redirect_uri: REDIRECT,
            client_id: other.clientId,
            resource: fx.resource,
          },
          // For the confidential client (its Basic header comes from the authorization arbitrary).
          { grant_type: 'refresh_token', refresh_token: other.refreshToken },
        ]),
        contentType,
        authorization(),
        async (pairs, type, auth) => {
          const res = await post('/oauth/token', encode(pairs, type), type, auth);
          notFiveHundred('/oauth/token', res, { pairs, type, auth });
          if (res.status === 200)
            expect(typeof (res.json as { access_token?: unknown }).access_token).toBe('string');
          else jsonError('/oauth/token', res);
        },
      ),
      { numRuns: TOKEN_RUNS },
    );
  }, 180_000);

  it(`/oauth/register: arbitrary metadata (${REGISTER_RUNS} runs): no 5xx, JSON errors, only valid clients stored`, async () => {
    const before = await clientCount();
    let created = 0;
    const metadata = fc.record(
      {
        redirect_uris: fc.oneof(
          { weight: 6, arbitrary: fc.array(urlText, { maxLength: 4 }) },
          {
            weight: 1,
            arbitrary: fc
              .constantFrom(LIMITS.redirectUris, LIMITS.redirectUris + 1, 1000)
              .map((n) => Array.from({ length: n }, (_, i) => `http://127.0.0.1:${1000 + i}/cb`)),
          },
          { weight: 2, arbitrary: wrongType },
          {
            weight: 1,
            arbitrary: fc.array(fc.oneof(wrongType, fc.array(urlText, { maxLength: 2 })), { maxLength: 3 }),
          },
        ),
        client_name: fc.oneof(text(0, 250), wrongType),
        token_endpoint_auth_method: fc.oneof(
          fc.constantFrom(
            'none',
            'client_secret_basic',
            'client_secret_post',
            'private_key_jwt',
            'client_secret_jwt',
            'tls_client_auth',
            'self_signed_tls_client_auth',
            '',
          ),
          wrongType,
        ),
        grant_types: fc.oneof(
          fc.array(
            fc.constantFrom(
              'authorization_code',
              'refresh_token',
              'client_credentials',
              'implicit',
              'password',
              '',
            ),
            { maxLength: 4 },
          ),
          wrongType,
        ),
        response_types: fc.oneof(
          fc.array(fc.constantFrom('code', 'token', 'id_token', 'code id_token', 'none'), { maxLength: 3 }),
          wrongType,
        ),
        application_type: fc.oneof(fc.constantFrom('web', 'native', 'browser', ''), wrongType),
        scope: fc.oneof(
          fc.constantFrom('pa.read pa.write', 'openid offline_access', 'admin'),
          text(0, 40),
          wrongType,
        ),
        jwks_uri: fc.oneof(urlText, wrongType),
        jwks: fc.oneof(
          fc.constant({ keys: [] }),
          fc.record({
            keys: fc.array(
              fc.dictionary(
                fc.constantFrom('kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'use', 'alg', 'd'),
                text(0, 40),
              ),
              { maxLength: 2 },
            ),
          }),
          wrongType,
        ),
        logo_uri: fc.oneof(urlText, wrongType),
        client_uri: urlText,
        policy_uri: urlText,
        tos_uri: urlText,
        sector_identifier_uri: urlText,
        subject_type: fc.constantFrom('public', 'pairwise', 'x'),
        request_uris: fc.oneof(fc.array(urlText, { maxLength: 3 }), wrongType),
        post_logout_redirect_uris: fc.oneof(fc.array(urlText, { maxLength: 3 }), wrongType),
        contacts: fc.oneof(fc.array(text(0, 80), { maxLength: 4 }), wrongType),
        software_id: fc.oneof(text(0, 2100), wrongType),
        software_version: fc.oneof(text(0, 40), wrongType),
        id_token_signed_response_alg: fc.constantFrom('ES256', 'none', 'HS256', 'RS256', ''),
        dpop_bound_access_tokens: fc.oneof(fc.boolean(), wrongType),
        client_id: text(0, 40),
        client_secret: text(0, 40),
        default_max_age: fc.oneof(fc.integer(), wrongType),
        tls_client_auth_subject_dn: text(0, 60),
      },
      { requiredKeys: [] },
    );
    const extra = fc.dictionary(
      fc.oneof(
        text(0, 30),
        fc.constantFrom('__proto__', 'constructor', 'registration_access_token', 'client_id_issued_at'),
      ),
      wrongType,
      { maxKeys: 3 },
    );
    // Near a good registration (a native client) with one to three fields bent, or hostile throughout.
    const good = {
      redirect_uris: ['http://127.0.0.1/cb'],
      client_name: 'fuzzed',
      token_endpoint_auth_method: 'none',
    };
    const near = fc
      .tuple(metadata, fc.integer({ min: 0, max: 3 }))
      .chain(([m, n]) => fc.tuple(fc.constant(m), fc.shuffledSubarray(Object.keys(m), { maxLength: n })))
      .map(([m, picked]) =>
        loopbackOnly({ ...good, ...Object.fromEntries(picked.map((k) => [k, m[k as keyof typeof m]])) }),
      );
    const body = fc.oneof(
      { weight: 5, arbitrary: near },
      { weight: 3, arbitrary: fc.tuple(metadata, extra).map(([m, e]) => loopbackOnly({ ...e, ...m })) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(loopbackOnly) },
    );
    const raw = fc.oneof(
      {
        weight: 9,
        arbitrary: body.map((b) => ({ text: JSON.stringify(b) ?? 'null', type: 'application/json' })),
      },
      {
        weight: 1,
        arbitrary: fc
          .tuple(
            fc.oneof(
              fc.constantFrom(
                '',
                '{',
                '{"redirect_uris":',
                'null',
                '[]',
                '\u0000',
                'redirect_uris=http://127.0.0.1/cb',
              ),
              text(0, 80),
            ),
            fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
          )
          .map(([t, type]) => ({ text: t, type })),
      },
    );
    await fc.assert(
      fc.asyncProperty(raw, async ({ text: sent, type }) => {
        const res = await post('/oauth/register', sent, type, undefined);
        notFiveHundred('/oauth/register', res, sent);
        if (res.status === 201) {
          created += 1;
          const client = res.json as Record<string, unknown>;
          fx.secrets.add('registration_access_token', client['registration_access_token']);
          fx.secrets.add('client_secret', client['client_secret']);
          const uris = client['redirect_uris'];
          expect(Array.isArray(uris), res.text.slice(0, 300)).toBe(true);
          expect((uris as unknown[]).length).toBeLessThanOrEqual(LIMITS.redirectUris);
          for (const uri of uris as unknown[])
            expect(checkRedirectUri(uri), String(uri)).toMatchObject({ ok: true });
          const name = client['client_name'];
          if (name !== undefined) {
            expect(typeof name).toBe('string');
            expect((name as string).length).toBeLessThanOrEqual(LIMITS.clientName);
          }
          for (const [key, value] of Object.entries(client)) {
            if (typeof value === 'string') expect(value.length, key).toBeLessThanOrEqual(LIMITS.stringField);
          }
        } else {
          jsonError('/oauth/register', res);
        }
      }),
      {
        numRuns: REGISTER_RUNS,
        examples: [
          [{ text: JSON.stringify({ redirect_uris: ['javascript:alert(1)'] }), type: 'application/json' }],
          // Found by fuzzing: a NUL character in a redirect URI (the URL parser percent-encodes it, so the URI
          // passed the rules) or a lone surrogate in any string made PostgreSQL refuse the client's jsonb record:
          // 500 server_error. Now 400 invalid_redirect_uri / invalid_client_metadata.
          [
            {
              text: JSON.stringify({
                redirect_uris: ['https://127.0.0.1/cb\u0000'],
                client_name: 'fuzzed',
                token_endpoint_auth_method: 'none',
              }),
              type: 'application/json',
            },
          ],
          [
            {
              text: JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], client_name: '\ud800' }),
              type: 'application/json',
            },
          ],
        ],
      },
    );
    expect(await clientCount(), 'clients stored = 201 answers').toBe(before + created);
  }, 180_000);

  it(`/oauth/revoke (${REVOKE_RUNS} runs) and /oauth/introspect (${INTROSPECT_RUNS} runs): no 5xx, JSON errors, no cross-client answers`, async () => {
    const clients = [other.clientId, confidential.id];
    const tokens = [victim.accessToken, victim.refreshToken, other.accessToken];
    const revokeBases: Record<string, string>[] = [
      { token: victim.accessToken, token_type_hint: 'access_token', client_id: other.clientId },
      { token: victim.refreshToken, token_type_hint: 'refresh_token', client_id: other.clientId },
      { token: victim.accessToken, token_type_hint: 'access_token' },
    ];
    await fc.assert(
      fc.asyncProperty(
        params(REVOKE_KEYS, clients, tokens, revokeBases),
        contentType,
        authorization(),
        async (pairs, type, auth) => {
          const res = await post('/oauth/revoke', encode(pairs, type), type, auth);
          notFiveHundred('/oauth/revoke', res, { pairs, type, auth });
          if (res.status !== 200) jsonError('/oauth/revoke', res);
        },
      ),
      { numRuns: REVOKE_RUNS },
    );
    await fc.assert(
      fc.asyncProperty(
        params(REVOKE_KEYS, clients, tokens, revokeBases),
        contentType,
        authorization(),
        async (pairs, type, auth) => {
          const res = await post('/oauth/introspect', encode(pairs, type), type, auth);
          notFiveHundred('/oauth/introspect', res, { pairs, type, auth });
          if (res.status === 200) {
            const active = (res.json as { active?: unknown }).active;
            expect(typeof active).toBe('boolean');
            // The victim's tokens belong to the victim's client, which is never the one asking here.
            const asked = pairs.filter(([k]) => k === 'token').map(([, v]) => v);
            if (
              asked.some((t) => t === victim.accessToken || t === victim.refreshToken) &&
              asked.length === 1
            )
              expect(active, `introspection told another client about the victim's token`).toBe(false);
          } else jsonError('/oauth/introspect', res);
        },
      ),
      { numRuns: INTROSPECT_RUNS },
    );
  }, 180_000);

  it(`/oauth/par: arbitrary pushed authorization requests (${PAR_RUNS} runs): no 5xx, 201 or JSON errors`, async () => {
    const clients = [victim.clientId, other.clientId, confidential.id];
    await fc.assert(
      fc.asyncProperty(
        params(
          AUTHORIZE_KEYS,
          clients,
          [],
          [
            {
              response_type: 'code',
              client_id: other.clientId,
              redirect_uri: REDIRECT,
              scope: 'pa.read pa.write',
              state: 's',
              code_challenge: randomBytes(32).toString('base64url'),
              code_challenge_method: 'S256',
              resource: fx.resource,
            },
          ],
        ),
        contentType,
        authorization(),
        async (pairs, type, auth) => {
          const res = await post('/oauth/par', encode(pairs, type), type, auth);
          notFiveHundred('/oauth/par', res, { pairs, type, auth });
          if (res.status === 201)
            expect(typeof (res.json as { request_uri?: unknown }).request_uri).toBe('string');
          else jsonError('/oauth/par', res);
        },
      ),
      { numRuns: PAR_RUNS },
    );
  }, 180_000);

  it("afterwards: the victim's tokens still work, no server error, every run reached its handler", async () => {
    const init = await mcpInitialize(fx, victim.accessToken);
    expect(init.status, init.text.slice(0, 300)).toBe(200);
    const refreshed = await sources.request(`${fx.origin}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: victim.refreshToken,
        client_id: victim.clientId,
      }).toString(),
    });
    fx.secrets.fromJson(refreshed.text);
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(errorLogLines(fx.logs()).map((l) => l.slice(0, 400))).toEqual([]);
    expect(watch.problems).toEqual([]);
    expect(limited, 'answers 429 (rate limited before the handler)').toBe(0);
    const lines = [...tallies].map(([endpoint, t]) => `${endpoint} ${t.total()} (${t.toString()})`);
    console.log(
      `[fuzz oauth] requests by endpoint and answer:\n  ${lines.join('\n  ')}\n  429 answers: ${limited}`,
    );
  }, 60_000);
});
