/**
 * The optional plain-HTTP listener (server.http_redirect_port): GET and HEAD are sent on to the same path over
 * HTTPS with 308; every other method gets 403 (a body sent over plain HTTP has already crossed the network in the
 * clear: it is not replayed anywhere). It serves no content and sends no HSTS (browsers ignore it over plain HTTP).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.js';
import { hostnameOf } from './http/guards.js';

export interface RedirectListenerOptions {
  readonly host: string;
  readonly port: number;
  /**
   * Where redirects go: the public URL's origin when set (a Host header is then never reflected), else the
   * request's Host name with `httpsPort`.
   */
  readonly publicUrl?: string | undefined;
  /** The HTTPS server's port (used without a public URL). */
  readonly httpsPort: number;
  readonly logger: Logger;
}

export interface RedirectListener {
  readonly port: number;
  close(): Promise<void>;
}

/** The path and query of a request target (origin-form or absolute-form), starting with "/". */
function pathAndQuery(target: string): string {
  if (target.startsWith('/')) return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}

/**
 * The https URL a plain-HTTP request is redirected to, or null when it cannot be told (no usable Host header and
 * no public URL). The authority comes only from the public URL or the Host name — never from the path.
 */
export function redirectTarget(
  requestTarget: string,
  hostHeader: string | undefined,
  options: Pick<RedirectListenerOptions, 'publicUrl' | 'httpsPort'>,
): string | null {
  let base: URL;
  if (options.publicUrl !== undefined) {
    base = new URL(new URL(options.publicUrl).origin);
  } else {
    const hostname = hostnameOf(hostHeader);
    if (hostname === null) return null;
    try {
      base = new URL(`https://${hostname}${options.httpsPort === 443 ? '' : `:${options.httpsPort}`}`);
    } catch {
      return null;
    }
  }
  // Parsed on a fixed base so that a target like //evil.example/x stays a path ("https://host//evil.example/x").
  const parsed = new URL(`http://path.invalid${pathAndQuery(requestTarget)}`);
  base.protocol = 'https:';
  base.pathname = parsed.pathname;
  base.search = parsed.search;
  return base.href;
}

function answer(res: ServerResponse, status: number, headers: Record<string, string>, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...headers,
  });
  res.end(text);
}

/** Listens on host:port for plain HTTP and redirects to HTTPS (see the module comment). */
export async function startRedirectListener(options: RedirectListenerOptions): Promise<RedirectListener> {
  const log = options.logger.child({ component: 'http-redirect' });
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      // The body is not read: the connection ends with the answer.
      answer(
        res,
        403,
        { connection: 'close', allow: 'GET, HEAD', 'cache-control': 'no-store' },
        `Forbidden: this port speaks plain HTTP and only redirects GET and HEAD to HTTPS; send ${method} requests over HTTPS.\n`,
      );
      return;
    }
    const location = redirectTarget(req.url ?? '/', req.headers.host, options);
    if (location === null) {
      answer(
        res,
        400,
        { 'cache-control': 'no-store' },
        'Bad Request: a Host header is needed to redirect to HTTPS.\n',
      );
      return;
    }
    res.writeHead(308, { location, 'content-length': '0', 'referrer-policy': 'no-referrer' });
    res.end();
  };
  const server: Server = createServer(handle);
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'redirect listener error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host: options.host, port }, 'plain-HTTP redirect listener started');
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
