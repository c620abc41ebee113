/**
 * OAuth plumbing for the fuzz tests: tokens through the real headless authorization-code flow (DCR public client,
 * PKCE S256, sign-in and consent through the real forms), an SDK client on /mcp with a bearer token, and requests
 * spread over many loopback source addresses (127.0.0.2–254) so that the per-address rate limits of the
 * authorization server (registration 20/min, token failures 20/min, authorize 300/min) leave the handlers reachable.
 */
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:https';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pkcePair, type OAuthFixture, type TestUser } from '../auth/oauth-fixture.js';
import { rawRequest, type RawResponse } from '../support/https.js';

export const REGISTERED_REDIRECT = 'http://127.0.0.1/cb';
/** Loopback redirects of a native client match on any port (RFC 8252 §7.3). */
export const REDIRECT = 'http://127.0.0.1:51004/cb';

export interface Tokens {
  readonly clientId: string;
  readonly accessToken: string;
  readonly refreshToken: string;
}

/** A public native client, and a user's tokens through sign-in, consent and the PKCE code exchange. */
export async function obtainTokens(fx: OAuthFixture, user: TestUser, clientName: string): Promise<Tokens> {
  const reg = await fx.register({
    redirect_uris: [REGISTERED_REDIRECT],
    client_name: clientName,
    token_endpoint_auth_method: 'none',
  });
  if (reg.status !== 201) throw new Error(`registration failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  const clientId = String(reg.body['client_id']);
  const { verifier, challenge } = await pkcePair();
  const state = randomBytes(8).toString('hex');
  const az = new URL(`${fx.origin}/oauth/authorize`);
  az.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'pa.read pa.write',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: fx.resource,
  }).toString();
  const done = await fx.browser().authorize(az.href, fx.origin, user);
  if (!done.location?.startsWith(`${REDIRECT}?`))
    throw new Error(`authorization did not come back: ${done.res.status} ${done.res.text.slice(0, 300)}`);
  const code = new URL(done.location).searchParams.get('code') ?? '';
  fx.secrets.add('code', code);
  fx.secrets.add('code_verifier', verifier);
  const tk = await rawRequest(`${fx.origin}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: clientId,
    }).toString(),
    ca: fx.ca.cert,
  });
  if (tk.status !== 200) throw new Error(`token exchange failed: ${tk.status} ${tk.text}`);
  fx.secrets.fromJson(tk.text);
  const body = tk.json as { access_token: string; refresh_token: string };
  return { clientId, accessToken: body.access_token, refreshToken: body.refresh_token };
}

/** The SDK's own client on /mcp with a bearer token; `statuses` collects the HTTP status of every answer. */
export async function mcpClient(
  fx: OAuthFixture,
  accessToken: string,
  statuses: number[],
): Promise<{ client: Client; close: () => Promise<void> }> {
  const recording = (async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fx.fetch(input, init);
    statuses.push(res.status);
    return res;
  }) as typeof fetch;
  const transport = new StreamableHTTPClientTransport(new URL(fx.resource), {
    fetch: recording,
    requestInit: { headers: { authorization: `Bearer ${accessToken}` } },
  });
  const client = new Client({ name: 'mcp-pa-fuzz', version: '1.0.0' });
  await client.connect(transport);
  return {
    client,
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}

/**
 * Raw HTTPS requests, each from the next loopback source address (127.0.0.2 … 127.0.0.254, round robin), with a
 * keep-alive agent per address.
 */
export class SpreadSources {
  private readonly agents = new Map<number, Agent>();
  private next = 0;
  /** Requests sent (per path). */
  readonly sent = new Map<string, number>();

  constructor(private readonly ca: string) {}

  request(
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
  ): Promise<RawResponse> {
    const n = 2 + (this.next++ % 253);
    let agent = this.agents.get(n);
    if (agent === undefined) {
      agent = new Agent({ keepAlive: true, maxSockets: 4, localAddress: `127.0.0.${n}`, ca: this.ca });
      this.agents.set(n, agent);
    }
    const path = new URL(url).pathname;
    this.sent.set(path, (this.sent.get(path) ?? 0) + 1);
    return rawRequest(url, { ...init, ca: this.ca, agent });
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/** Collects unhandled rejections and uncaught exceptions of this process (where the HTTP server runs). */
export function watchProcess(): { problems: string[]; stop: () => void } {
  const problems: string[] = [];
  const onRejection = (reason: unknown): void => {
    problems.push(
      `unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
    );
  };
  const onException = (err: Error): void => {
    problems.push(`uncaught exception: ${err.stack ?? err.message}`);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    problems,
    stop: () => {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

/** Lines of the server log at level error (50) or above, parsed. */
export function errorLogLines(logs: string): string[] {
  return logs
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      try {
        return ((JSON.parse(l) as { level?: number }).level ?? 0) >= 50;
      } catch {
        return false;
      }
    });
}
