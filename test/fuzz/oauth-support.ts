/**
 * OAuth plumbing for the fuzz tests: tokens through the real headless authorization-code flow (DCR public client,
 * PKCE S256, sign-in and consent through the real forms), an SDK client on /mcp with a bearer token, and requests
 * spread over many loopback source addresses (127.0.0.2–254) so that the per-address rate limits of the
 * authorization server (registration 20/min, token failures 20/min, authorize 300/min) leave the handlers reachable.
 */
import { Agent } from 'node:https';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthFixture, TestUser } from '../auth/oauth-fixture.js';
import { rawRequest, type RawResponse } from '../support/https.js';
import { headlessTokens, type HeadlessTokens } from '../support/server-process.js';

/** Loopback redirects of a native client match the registered http://127.0.0.1/cb on any port (RFC 8252 §7.3). */
export const REDIRECT = 'http://127.0.0.1:51004/cb';

export type Tokens = HeadlessTokens;

/**
 * A public native client, and a user's tokens through sign-in, consent and the PKCE code exchange; every secret of
 * the flow goes to the fixture's secret watch.
 */
export async function obtainTokens(fx: OAuthFixture, user: TestUser, clientName: string): Promise<Tokens> {
  const flow = { user, clientName, redirectUri: REDIRECT, tokenResource: false, watch: fx.secrets };
  return headlessTokens({ ...fx, ...flow });
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
