// Container health probe (the Dockerfile's HEALTHCHECK): GET /healthz on this container's own listener, with Node.js
// only — slim images have no curl or wget. Exit 0 when the answer is 200, 1 otherwise (the reason on stderr, which
// `docker inspect` shows).
//
// It connects to 127.0.0.1 on MCP_PORT (default 8000), so the server must listen there too (the image sets
// MCP_HOST=0.0.0.0). The server's certificate names its public host, not 127.0.0.1: this loopback probe does NOT verify
// the certificate. It sends nothing secret and reads only the status code, so nothing is lost by that. Behind a
// TLS-terminating proxy (MCP_TLS_REQUIRED=false with MCP_TRUST_PROXY) the server speaks plain HTTP, and /healthz
// answers it from any address: when the TLS handshake fails because the other side is not TLS, the probe asks again
// over plain HTTP.
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import process from 'node:process';

const port = Number(process.env.MCP_PORT || 8000);
const TIMEOUT_MS = 4000;

/** Resolves with the status code, or with the error. */
function probe(get, extra) {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/healthz', timeout: TIMEOUT_MS, ...extra }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve(err));
  });
}

/** A TLS client talking to a plain-HTTP server sees the HTTP answer as a malformed TLS record. */
function notTls(err) {
  return (
    err instanceof Error && (err.code === 'EPROTO' || /wrong version number|packet length/i.test(err.message))
  );
}

let result = await probe(httpsGet, { rejectUnauthorized: false });
let scheme = 'https';
if (notTls(result)) {
  result = await probe(httpGet, {});
  scheme = 'http';
}
if (result === 200) process.exit(0);
process.stderr.write(
  `healthcheck: ${scheme}://127.0.0.1:${port}/healthz: ${result instanceof Error ? result.message : `status ${result}`}\n`,
);
process.exit(1);
