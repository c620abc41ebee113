/**
 * A small reverse proxy for the conformance suite, which cannot sign in: plain HTTP on 127.0.0.1 in front of the
 * real HTTPS server, adding `Authorization: Bearer <token>` (a token from the real OAuth flow) to every request and
 * forwarding it to the server, trusting the test CA. Everything else passes through as it is, both ways: method,
 * path, Host and Origin (so the server's own DNS-rebinding checks see what the client sent), Mcp-Session-Id,
 * Last-Event-ID, status, headers, and bodies streamed (SSE events reach the client as the server writes them).
 */
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { checkServerIdentity } from 'node:tls';

/** Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

export interface Upstream {
  /** https://127.0.0.1:PORT of the real server. */
  readonly target: string;
  /** The test CA (PEM) the server's certificate is issued by. */
  readonly ca: string;
  /** The access token added to every request. */
  readonly token: string;
}

export interface BearerProxy {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /**
   * Where to forward, and with which token. Set after the proxy listens: the server is configured with the proxy's
   * origin (an allowed browser origin, as for any front end on another origin), so it starts second. Until then
   * every request is 503.
   */
  route(upstream: Upstream): void;
  /** How many requests were forwarded (a check that the suite went through the proxy). */
  readonly forwarded: () => number;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 (a free port); it forwards once route() is called. */
export async function startBearerProxy(
  options: {
    /** Upper bound on one forwarded exchange (SSE streams included). */
    readonly timeoutMs?: number;
  } = {},
): Promise<BearerProxy> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  let upstreamOf: { target: URL; agent: Agent; token: string } | undefined;
  let count = 0;
  const server = createServer((req, res) => {
    if (upstreamOf === undefined) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('proxy: no upstream yet\n');
      return;
    }
    const { target, agent, token } = upstreamOf;
    count += 1;
    const headers = endToEnd(req.headers);
    headers['authorization'] = `Bearer ${token}`;
    const upstream = httpsRequest(
      {
        protocol: 'https:',
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
        timeout: timeoutMs,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.statusMessage, endToEnd(up.headers));
        res.flushHeaders();
        up.on('data', (chunk: Buffer) => {
          res.write(chunk);
        });
        up.once('end', () => res.end());
        up.once('error', () => res.destroy());
      },
    );
    upstream.once('timeout', () => upstream.destroy(new Error('upstream timed out')));
    upstream.once('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy: ${err.message}\n`);
      } else res.destroy();
    });
    // The client went away (a cancelled SSE reader, a closed transport): so does the upstream exchange.
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.requestTimeout = timeoutMs;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    forwarded: () => count,
    route(upstream) {
      const target = new URL(upstream.target);
      upstreamOf?.agent.destroy();
      upstreamOf = {
        target,
        token: upstream.token,
        // The certificate is the server's (127.0.0.1) whatever Host the client sent.
        agent: new Agent({
          keepAlive: true,
          ca: upstream.ca,
          checkServerIdentity: (_host, cert) => checkServerIdentity(target.hostname, cert),
        }),
      };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      upstreamOf?.agent.destroy();
    },
  };
}
