/**
 * The metrics listener (metrics.port): plain HTTP, GET /metrics and nothing else, apart from the MCP listener so
 * scrapers never need a token on loopback or a path through the public TLS port. With metrics.token set, only
 * `Authorization: Bearer <token>` is answered (the configuration refuses a non-loopback address without one).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../observability/logger.js';
import { metricsAccess, type Metrics } from '../../observability/metrics.js';

export interface MetricsListener {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function json(status: number, body: object, headers: Record<string, string> = {}) {
  return { status, body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } };
}

export async function startMetricsListener(options: {
  host: string;
  port: number;
  token: string | undefined;
  metrics: Metrics;
  logger: Logger;
}): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    const answer = async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/metrics')
        return json(404, { error: 'not_found', error_description: 'only GET /metrics' });
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return json(
          405,
          { error: 'method_not_allowed', error_description: 'only GET /metrics' },
          { allow: 'GET, HEAD' },
        );
      const access = metricsAccess(options.token, req.headers.authorization);
      if (!access.ok)
        return json(
          access.status,
          { error: 'unauthorized', error_description: 'metrics need the metrics token (metrics.token)' },
          { 'www-authenticate': access.challenge },
        );
      const { contentType, body } = await options.metrics.render();
      return { status: 200, body, headers: { 'content-type': contentType } };
    };
    answer().then(
      ({ status, body, headers }) => {
        res.writeHead(status, {
          ...headers,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        options.logger.error({ err: (err as Error).message }, 'metrics: rendering failed');
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'server_error' }));
      },
    );
  });
  // Scrapers send small requests: bounded headers and time, no keep-alive lingering past shutdown.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}/metrics`;
  options.logger.info({ url, token: options.token !== undefined }, 'metrics listener started');
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
