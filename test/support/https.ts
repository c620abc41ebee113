// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { Agent, request } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { checkServerIdentity, connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';

/**
 * Test PKI and HTTPS clients for tests over real TLS: a test certificate authority (ECDSA P-256, WebCrypto keys,
 * @peculiar/x509), server certificates it signs, a `fetch` over node:https that trusts only that CA (for the MCP SDK's
 * StreamableHTTPClientTransport), and a raw request helper that can send any header, Host included.
 */

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR_MS = 60 * 60 * 1000;

export interface TestCa {
  /** The CA certificate, PEM. */
  readonly cert: string;
  readonly name: string;
  /** Issues a server certificate for the given names (default localhost, 127.0.0.1, ::1). */
  issue(options?: { dns?: string[]; ip?: string[]; cn?: string }): Promise<ServerCertificate>;
  /** Issues a TLS client certificate (extended key usage clientAuth) with subject `CN=<cn>` (default client). */
  issueClient(options?: { cn?: string }): Promise<ServerCertificate>;
}

export interface ServerCertificate {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint as Node prints it (AA:BB:…), to compare with a peer certificate's fingerprint256. */
  readonly fingerprint256: string;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01; // positive, no leading zero byte
  return bytes.toString('hex');
}

function pemKey(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

async function fingerprint(cert: x509.X509Certificate): Promise<string> {
  const digest = Buffer.from(await cert.getThumbprint('SHA-256'));
  return [...digest].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}

export async function createTestCa(name = 'mcp-pa test CA'): Promise<TestCa> {
  const now = Date.now();
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const caName = `CN=${name} ${randomBytes(4).toString('hex')}`;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: caName,
    notBefore: new Date(now - HOUR_MS),
    notAfter: new Date(now + 24 * HOUR_MS),
    signingAlgorithm: ALG,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    cert: caCert.toString('pem') + '\n',
    name: caName,
    async issue(options = {}) {
      const dns = options.dns ?? ['localhost'];
      const ip = options.ip ?? ['127.0.0.1', '::1'];
      const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${options.cn ?? dns[0] ?? 'server'}`,
        issuer: caCert.subject,
        notBefore: new Date(Date.now() - HOUR_MS),
        notAfter: new Date(Date.now() + 24 * HOUR_MS),
        signingAlgorithm: ALG,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([
            ...dns.map((value) => ({ type: 'dns' as const, value })),
            ...ip.map((value) => ({ type: 'ip' as const, value })),
          ]),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        ],
      });
      return {
        cert: cert.toString('pem') + '\n',
        key: pemKey(keys.privateKey),
        fingerprint256: await fingerprint(cert),
      };
    },
    async issueClient(options = {}) {
      const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${options.cn ?? 'client'}`,
        issuer: caCert.subject,
        notBefore: new Date(Date.now() - HOUR_MS),
        notAfter: new Date(Date.now() + 24 * HOUR_MS),
        signingAlgorithm: ALG,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
        ],
      });
      return {
        cert: cert.toString('pem') + '\n',
        key: pemKey(keys.privateKey),
        fingerprint256: await fingerprint(cert),
      };
    },
  };
}

function headersOf(raw: IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
  }
  return h;
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * A `fetch` over node:https that trusts `ca` (and nothing else): what the SDK's StreamableHTTPClientTransport takes as
 * its `fetch` option. Response bodies stream (SSE works); aborting the signal destroys the request.
 */
export function httpsFetch(ca: string, agent = new Agent({ keepAlive: true, ca })): typeof fetch {
  const fetchImpl = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? 'GET').toUpperCase();
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string') {
      return Promise.reject(new TypeError('httpsFetch sends string bodies only'));
    }
    const signal = init?.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const req = request(url, { method, headers, agent, ca }, (res) => {
        const status = res.statusCode ?? 0;
        const nullBody = NULL_BODY_STATUS.has(status) || method === 'HEAD';
        if (nullBody) res.resume();
        const stream = nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        resolve(
          new Response(stream, {
            status,
            statusText: res.statusMessage ?? '',
            headers: headersOf(res.headers),
          }),
        );
      });
      const onAbort = (): void => {
        req.destroy(new DOMException('This operation was aborted', 'AbortError'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  };
  return fetchImpl as typeof fetch;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  readonly json: unknown;
  /** Local port of the connection the response came on (to tell keep-alive reuse from a new connection). */
  readonly localPort: number | undefined;
  /** SHA-256 fingerprint of the certificate the server presented on that connection. */
  readonly peerFingerprint256: string | undefined;
}

export interface RawRequest {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  readonly ca: string;
  readonly agent?: Agent | false;
  /** Stop reading after the first chunk that contains this text (for streams that do not end). */
  readonly until?: string;
  /** Told when the status and headers arrived (the body may still be streaming). */
  readonly onHeaders?: (status: number) => void;
}

/** One HTTPS request with exactly the given headers (Host and Origin included); reads the whole body. */
export function rawRequest(url: string, options: RawRequest): Promise<RawResponse> {
  const u = new URL(url);
  const send = u.protocol === 'http:' ? httpRequest : request;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ca: options.ca,
        agent: options.agent ?? false,
        servername: u.hostname.startsWith('[') || /^\d/.test(u.hostname) ? undefined : u.hostname,
        // The certificate is checked against the URL's host, not a Host header a test sets on purpose.
        checkServerIdentity: (_host, cert) =>
          checkServerIdentity(u.hostname.replace(/^\[(.*)\]$/, '$1'), cert),
      },
      (res) => {
        options.onHeaders?.(res.statusCode ?? 0);
        const chunks: Buffer[] = [];
        const socket = res.socket as TLSSocket;
        const localPort = socket.localPort;
        const peer = (socket.getPeerCertificate as TLSSocket['getPeerCertificate'] | undefined)?.call(
          socket,
        ) as PeerCertificate | undefined;
        const finish = (): void => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json,
            localPort,
            peerFingerprint256: peer?.fingerprint256,
          });
        };
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          if (options.until !== undefined && Buffer.concat(chunks).toString('utf8').includes(options.until)) {
            finish();
            res.destroy();
          }
        });
        res.on('end', finish);
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The certificate a server presents to a new TLS connection (SHA-256 fingerprint). */
export function presentedCertificate(port: number, ca: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, ca, servername: 'localhost' }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}
