/**
 * The OAuth and MCP steps the replica tests take one at a time, each against a replica or origin they name: client
 * registration, an authorization through the real sign-in and consent forms (reporting which pages it met), the code
 * exchange, revocation, the connected-apps page, and raw /mcp requests. Every secret handled is added to a
 * SecretWatch so the replicas' logs can be checked for it.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Browser, parseForms, pkcePair, type SecretWatch } from '../auth/oauth-fixture.js';
import type { Replicas } from './replicas.js';

export const NATIVE_REDIRECT = 'http://127.0.0.1/cb';
export const WEB_REDIRECT = 'https://app.replicas.example/callback';

export interface Tokens {
  readonly accessToken: string;
  readonly refreshToken: string;
}

/** An HTTP answer read whole: status, headers and the JSON body (or {}). */
export interface JsonAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

async function readJson(res: Response): Promise<JsonAnswer> {
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object') body = parsed as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, headers: res.headers, body };
}

/** RFC 7591 registration at `at` (a replica's own origin or the balancer). */
export async function register(
  r: Replicas,
  at: string,
  metadata: Record<string, unknown>,
): Promise<JsonAnswer> {
  const answer = await readJson(
    await r.fetch(`${at}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(metadata),
    }),
  );
  r.secrets.fromJson(JSON.stringify(answer.body));
  return answer;
}

export interface Authorization {
  /** The code, when the flow came back to the client with one. */
  readonly code?: string;
  readonly verifier: string;
  /** The consent page was shown (and allowed). */
  readonly consentShown: boolean;
  /** Where the flow stopped without a code (status and the start of the page). */
  readonly stoppedAt?: string;
}

/**
 * One authorization request through the balancer (pinned or not: the test decides), run to its end by `browser`:
 * sign-in when asked (with `user`; null stops there), consent (allowed), and the redirect back with a code.
 */
export async function authorize(
  r: Replicas,
  browser: Browser,
  options: {
    readonly clientId: string;
    readonly redirectUri: string;
    readonly user: { readonly username: string; readonly password: string } | null;
  },
): Promise<Authorization> {
  const { verifier, challenge } = await pkcePair();
  r.secrets.add('code_verifier', verifier);
  const state = randomBytes(8).toString('hex');
  const url = new URL(`${r.issuer}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: options.clientId,
    redirect_uri: options.redirectUri,
    scope: 'pa.read pa.write',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: r.resource,
  }).toString();
  const done = await browser.authorize(url.href, r.issuer, options.user);
  const consentShown = done.consentPage !== undefined;
  if (!done.location) {
    return { verifier, consentShown, stoppedAt: `${done.res.status} ${done.res.text.slice(0, 200)}` };
  }
  const back = new URL(done.location);
  const code = back.searchParams.get('code') ?? undefined;
  if (
    code === undefined ||
    back.searchParams.get('state') !== state ||
    back.searchParams.get('iss') !== r.issuer
  ) {
    return { verifier, consentShown, stoppedAt: `redirect without a code: ${back.origin}${back.pathname}` };
  }
  r.secrets.add('code', code);
  return { code, verifier, consentShown };
}

/** The authorization_code grant at `at` (a public client: client_id in the form, PKCE verifier). */
export async function exchangeCode(
  r: Replicas,
  at: string,
  options: { readonly clientId: string; readonly redirectUri: string; readonly auth: Authorization },
): Promise<Tokens> {
  const answer = await tokenRequest(r, at, {
    grant_type: 'authorization_code',
    code: options.auth.code ?? '',
    redirect_uri: options.redirectUri,
    code_verifier: options.auth.verifier,
    client_id: options.clientId,
    resource: r.resource,
  });
  if (answer.status !== 200)
    throw new Error(`code exchange at ${at}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return {
    accessToken: String(answer.body['access_token']),
    refreshToken: String(answer.body['refresh_token']),
  };
}

/** A POST to `at`/oauth/token with a form body; the answer read whole (its tokens watched). */
export async function tokenRequest(
  r: Replicas,
  at: string,
  form: Record<string, string>,
): Promise<JsonAnswer> {
  const answer = await readJson(
    await r.fetch(`${at}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    }),
  );
  r.secrets.fromJson(JSON.stringify(answer.body));
  return answer;
}

/** RFC 7009 revocation at `at` by a public client. */
export async function revoke(
  r: Replicas,
  at: string,
  clientId: string,
  token: string,
  hint: 'refresh_token' | 'access_token',
): Promise<number> {
  const res = await r.fetch(`${at}/oauth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: hint, client_id: clientId }).toString(),
  });
  await res.text();
  return res.status;
}

/** One tr of the connected-apps table naming the client. */
function appRow(html: string, clientName: string): string | undefined {
  return [...html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)]
    .map((m) => m[1] ?? '')
    .find((row) => row.includes(`>${clientName}</th>`));
}

/**
 * Signs in on /account/apps through the balancer and clicks Revoke on the row of `clientName`; resolves when the
 * page answered the revocation (303 to ?revoked=1).
 */
export async function revokeOnAppsPage(
  r: Replicas,
  user: { readonly username: string; readonly password: string },
  clientName: string,
): Promise<void> {
  const browser = new Browser(r.ca.cert, r.secrets);
  const page = await browser.request(`${r.issuer}/account/apps`);
  const login = parseForms(page.text).find((f) => f.fields.has('password'));
  if (!login) throw new Error(`no sign-in form on /account/apps (${page.status})`);
  const signedIn = await browser.request(new URL(login.action, r.issuer).href, {
    form: { ...Object.fromEntries(login.fields), username: user.username, password: user.password },
    headers: { origin: r.issuer },
  });
  if (signedIn.status !== 303) throw new Error(`sign-in on /account/apps answered ${signedIn.status}`);
  const { res: apps } = await browser.follow(
    new URL(signedIn.headers.location ?? '', r.issuer).href,
    r.issuer,
  );
  const form = parseForms(appRow(apps.text, clientName) ?? '').find((f) => f.fields.has('grant'));
  if (!form) throw new Error(`${clientName} is not listed on /account/apps`);
  const revoked = await browser.request(new URL(form.action, r.issuer).href, {
    form: Object.fromEntries(form.fields),
    headers: { origin: r.issuer },
  });
  if (revoked.status !== 303 || revoked.headers.location !== '/account/apps?revoked=1') {
    throw new Error(`revoke on /account/apps answered ${revoked.status} ${revoked.headers.location ?? ''}`);
  }
}

export interface McpAnswer {
  readonly status: number;
  readonly sessionId: string | null;
  readonly wwwAuthenticate: string | null;
  readonly text: string;
}

/** One JSON-RPC message POSTed to `url` (a replica's /mcp or the balancer's) with a bearer token. */
export async function mcpPost(
  fetchImpl: typeof fetch,
  url: string,
  token: string,
  message: Record<string, unknown>,
  sessionId?: string,
): Promise<McpAnswer> {
  const res = await fetchImpl(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', ...message }),
  });
  return {
    status: res.status,
    sessionId: res.headers.get('mcp-session-id'),
    wwwAuthenticate: res.headers.get('www-authenticate'),
    text: await res.text(),
  };
}

export const INITIALIZE = {
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'replica-test', version: '1' },
  },
} as const;

export const PING = { id: 2, method: 'ping' } as const;

/** Adds the tokens to the watch list and returns them. */
export function watched(secrets: SecretWatch, tokens: Tokens): Tokens {
  secrets.add('access_token', tokens.accessToken);
  secrets.add('refresh_token', tokens.refreshToken);
  return tokens;
}

/**
 * Calls `probe` every `intervalMs` (default 50) until it answers 401, for at most `maxMs`; resolves with the moment
 * (performance.now()) of the first 401. Started before a revocation, the probe keeps the replica's grant cache warm
 * (the worst case): the time to the 401 then includes whatever was left of the cache's 500 ms.
 */
export function pollUntilRefused(
  probe: () => Promise<McpAnswer>,
  options: { readonly intervalMs?: number; readonly maxMs?: number } = {},
): { readonly done: Promise<{ at: number; answer: McpAnswer; polls: number }> } {
  const interval = options.intervalMs ?? 50;
  const deadline = performance.now() + (options.maxMs ?? 10_000);
  const done = (async () => {
    for (let polls = 1; ; polls++) {
      const answer = await probe();
      if (answer.status === 401) return { at: performance.now(), answer, polls };
      if (answer.status !== 200)
        throw new Error(`probe answered ${answer.status}: ${answer.text.slice(0, 200)}`);
      if (performance.now() > deadline) throw new Error(`still accepted after ${options.maxMs ?? 10_000} ms`);
      await new Promise((res) => setTimeout(res, interval));
    }
  })();
  return { done };
}
