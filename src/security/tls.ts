import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/** Days before expiry from which every start and reload warns. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * TLS 1.2 suites we accept: forward secret (ECDHE) and authenticated encryption (AES-GCM, ChaCha20-Poly1305) only.
 * TLS 1.3 suites are all AEAD; they are listed so the whole policy reads in one place.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;
export const TLS13_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];
export const TLS_MIN_VERSION = 'TLSv1.2';

/** A certificate or key that cannot be served, with the file and the problem named. */
export class TlsMaterialError extends Error {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'TlsMaterialError';
  }
}

/** A checked certificate and its private key, ready to be served. */
export interface TlsMaterial {
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM text of the certificate chain (leaf first) and of the key. The key never reaches a log line. */
  readonly cert: string;
  readonly key: string;
  readonly subject: string;
  readonly issuer: string;
  readonly subjectAltName: string | undefined;
  /** Hexadecimal, upper case, as Node reports it. */
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly validFrom: Date;
  readonly validTo: Date;
  /** Things worth fixing that do not stop the server (expiry within 30 days, a key readable by others). */
  readonly warnings: readonly string[];
}

export interface LoadTlsOptions {
  /** The moment validity is checked against (default: now). */
  readonly now?: Date;
  /** Told each warning as it is found (the server passes logger.warn). */
  readonly warn?: (message: string, details: Record<string, unknown>) => void;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const KEY_HEADER = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

async function readPem(file: string, what: string, variable: string): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new TlsMaterialError(`${what} file ${file} does not exist (${variable})`, file);
    if (code === 'EACCES' || code === 'EPERM')
      throw new TlsMaterialError(
        `${what} file ${file} cannot be read: permission denied (${variable})`,
        file,
      );
    if (code === 'EISDIR')
      throw new TlsMaterialError(`${what} file ${file} is a folder, not a PEM file (${variable})`, file);
    throw new TlsMaterialError(
      `${what} file ${file} cannot be read (${code ?? 'error'}) (${variable})`,
      file,
    );
  }
  const text = data.toString('utf8');
  if (!text.includes('-----BEGIN ')) {
    const hint =
      data[0] === 0x30
        ? ' It looks like binary DER; convert it with `openssl x509 -inform der -in FILE -out FILE.pem` (certificate) or `openssl pkey -inform der -in FILE -out FILE.pem` (key).'
        : '';
    throw new TlsMaterialError(
      `${what} file ${file} is not PEM (expected a "-----BEGIN ...-----" block) (${variable}).${hint}`,
      file,
    );
  }
  return text;
}

function parseDate(text: string): Date {
  // Node 20 gives "Nov 27 16:29:36 2026 GMT"; V8 parses that form.
  return new Date(text);
}

function day(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Reads a PEM certificate (chain) and private key and checks, with node:crypto, that the key belongs to the
 * certificate and that the certificate is valid now. Throws {@link TlsMaterialError} naming the file and the problem.
 */
export async function loadTlsMaterial(
  certFile: string,
  keyFile: string,
  options: LoadTlsOptions = {},
): Promise<TlsMaterial> {
  const now = options.now ?? new Date();
  const certText = await readPem(certFile, 'TLS certificate', 'MCP_TLS_CERT, server.tls_cert');
  const keyText = await readPem(keyFile, 'TLS private key', 'MCP_TLS_KEY, server.tls_key');

  const blocks = certText.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    if (KEY_HEADER.test(certText))
      throw new TlsMaterialError(
        `TLS certificate file ${certFile} holds a private key, not a certificate: are MCP_TLS_CERT and MCP_TLS_KEY swapped?`,
        certFile,
      );
    throw new TlsMaterialError(
      `TLS certificate file ${certFile} has no "-----BEGIN CERTIFICATE-----" block (MCP_TLS_CERT, server.tls_cert)`,
      certFile,
    );
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(blocks[0] as string);
    for (const block of blocks.slice(1)) new X509Certificate(block);
  } catch (err) {
    throw new TlsMaterialError(
      `TLS certificate file ${certFile} holds a certificate that cannot be parsed (${(err as Error).message})`,
      certFile,
    );
  }

  if (!KEY_HEADER.test(keyText)) {
    if (keyText.includes('-----BEGIN CERTIFICATE-----'))
      throw new TlsMaterialError(
        `TLS private key file ${keyFile} holds a certificate, not a private key: are MCP_TLS_CERT and MCP_TLS_KEY swapped?`,
        keyFile,
      );
    throw new TlsMaterialError(
      `TLS private key file ${keyFile} has no "-----BEGIN PRIVATE KEY-----" block (MCP_TLS_KEY, server.tls_key)`,
      keyFile,
    );
  }
  const encryptedHint =
    'mcp-pa needs an unencrypted key kept owner-only (chmod 600): decrypt it with `openssl pkey -in KEY -out KEY.plain`';
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(keyText)) {
    throw new TlsMaterialError(
      `TLS private key file ${keyFile} is encrypted with a passphrase; ${encryptedHint}`,
      keyFile,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyText, format: 'pem' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MISSING_PASSPHRASE')
      throw new TlsMaterialError(
        `TLS private key file ${keyFile} is encrypted with a passphrase; ${encryptedHint}`,
        keyFile,
      );
    // The library's message names the parse step only; nothing of the key is echoed.
    throw new TlsMaterialError(
      `TLS private key file ${keyFile} holds a private key that cannot be parsed (${code ?? 'invalid key'})`,
      keyFile,
    );
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsMaterialError(
      `TLS private key file ${keyFile} does not belong to the certificate in ${certFile} (subject ${leaf.subject.replace(/\n/g, ', ')}, serial ${leaf.serialNumber}): the key does not match the certificate's public key`,
      keyFile,
    );
  }

  const validFrom = parseDate(leaf.validFrom);
  const validTo = parseDate(leaf.validTo);
  if (now.getTime() > validTo.getTime()) {
    throw new TlsMaterialError(
      `TLS certificate in ${certFile} expired on ${day(validTo)}; renew it (and send SIGHUP or restart)`,
      certFile,
    );
  }
  if (now.getTime() < validFrom.getTime()) {
    throw new TlsMaterialError(
      `TLS certificate in ${certFile} is not yet valid: it is valid from ${day(validFrom)} (check the system clock)`,
      certFile,
    );
  }

  const warnings: string[] = [];
  const warn = (message: string, details: Record<string, unknown>): void => {
    warnings.push(message);
    options.warn?.(message, details);
  };
  const daysLeft = (validTo.getTime() - now.getTime()) / DAY_MS;
  if (daysLeft < EXPIRY_WARNING_DAYS) {
    warn(
      `TLS certificate in ${certFile} expires on ${day(validTo)}, in ${Math.max(0, Math.floor(daysLeft))} day(s): renew it, then send SIGHUP to load the new one`,
      { certFile, validTo: day(validTo), daysLeft: Math.floor(daysLeft) },
    );
  }
  if (process.platform !== 'win32') {
    try {
      const mode = (await stat(keyFile)).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        warn(
          `TLS private key file ${keyFile} is readable by other users (mode ${mode.toString(8)}): chmod 600 it`,
          { keyFile, mode: mode.toString(8) },
        );
      }
    } catch {
      // read above; a race here changes nothing served
    }
  }

  const material: TlsMaterial = {
    certFile,
    keyFile,
    cert: blocks.join('\n') + '\n',
    key: keyText,
    subject: leaf.subject.replace(/\n/g, ', '),
    issuer: leaf.issuer.replace(/\n/g, ', '),
    subjectAltName: leaf.subjectAltName,
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    validFrom,
    validTo,
    warnings,
  };
  // Last check: OpenSSL itself accepts the pair with our policy.
  try {
    createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new TlsMaterialError(
      `TLS certificate ${certFile} and key ${keyFile} are refused by OpenSSL (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      certFile,
    );
  }
  return material;
}

/** Options for `https.createServer` / `setSecureContext`: TLS 1.2 minimum, ECDHE + AEAD suites, our order first. */
export function secureContextOptions(material: Pick<TlsMaterial, 'cert' | 'key'>): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: TLS_MIN_VERSION,
    ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'),
    honorCipherOrder: true,
  };
}

/** A one-line description of the served certificate for logs and the banner (nothing secret). */
export function describeCertificate(material: TlsMaterial): Record<string, string> {
  return {
    certFile: material.certFile,
    subject: material.subject,
    serial: material.serialNumber,
    validTo: day(material.validTo),
    sha256: material.fingerprint256,
  };
}
