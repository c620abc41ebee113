// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXPIRY_WARNING_DAYS, loadTlsMaterial, TlsMaterialError, type TlsMaterial } from './tls.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Lifetime of a new development certificate. */
export const DEV_CERT_DAYS = 365;
/** The names a development certificate must cover. */
export const DEV_CERT_NAMES = { dns: ['localhost'], ip: ['127.0.0.1', '::1'] } as const;

export interface DevCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly material: TlsMaterial;
  /** True when this call made it; false when a still valid one was reused. */
  readonly created: boolean;
}

export function devCertificatePaths(dataDir: string): { dir: string; certFile: string; keyFile: string } {
  const dir = path.join(dataDir, 'tls');
  return {
    dir,
    certFile: path.join(dir, 'localhost-cert.pem'),
    keyFile: path.join(dir, 'localhost-key.pem'),
  };
}

function coversLocalhost(material: TlsMaterial): boolean {
  const san = material.subjectAltName ?? '';
  return (
    san.includes('DNS:localhost') &&
    san.includes('IP Address:127.0.0.1') &&
    (san.includes('IP Address:0:0:0:0:0:0:0:1') || san.includes('IP Address:::1'))
  );
}

async function writeOwnerOnly(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** A self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1 (WebCrypto keys, @peculiar/x509). */
export async function createSelfSignedLocalhost(
  now: Date,
  days = DEV_CERT_DAYS,
): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01; // positive and without a leading zero byte
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: 'CN=localhost, O=mcp-pa development certificate',
    // An hour back covers small clock differences between this process and a client.
    notBefore: new Date(now.getTime() - 60 * 60 * 1000),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    signingAlgorithm: alg,
    keys,
    extensions: [
      // An end-entity certificate: browsers refuse a CA certificate used by a server.
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...DEV_CERT_NAMES.dns.map((value) => ({ type: 'dns' as const, value })),
        ...DEV_CERT_NAMES.ip.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // Self-signed: the authority key is its own. With it, a store trusting an older development certificate
      // of the same name still finds the right one for each.
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { cert: cert.toString('pem') + '\n', key };
}

/**
 * The development certificate in `<data_dir>/tls/`: reused while it is valid for more than 30 more days and covers
 * localhost, 127.0.0.1 and ::1; otherwise made anew. The folder is 0700 and both files 0600.
 */
export async function ensureDevCertificate(
  dataDir: string,
  options: { now?: Date; warn?: (message: string, details: Record<string, unknown>) => void } = {},
): Promise<DevCertificate> {
  const now = options.now ?? new Date();
  const { dir, certFile, keyFile } = devCertificatePaths(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  try {
    const existing = await loadTlsMaterial(certFile, keyFile, { now });
    const daysLeft = (existing.validTo.getTime() - now.getTime()) / DAY_MS;
    if (daysLeft > EXPIRY_WARNING_DAYS && coversLocalhost(existing)) {
      return { certFile, keyFile, material: existing, created: false };
    }
  } catch (err) {
    if (!(err instanceof TlsMaterialError)) throw err;
    // missing, expired or broken: make a new one below
  }
  const { cert, key } = await createSelfSignedLocalhost(now);
  await writeOwnerOnly(keyFile, key);
  await writeOwnerOnly(certFile, cert);
  const material = await loadTlsMaterial(certFile, keyFile, {
    now,
    ...(options.warn ? { warn: options.warn } : {}),
  });
  return { certFile, keyFile, material, created: true };
}

/** How to make clients trust the development certificate, printed by `serve --dev`. */
export function trustInstructions(certFile: string, url: string): string {
  const q = (p: string): string => (/[\s"'$`\\]/.test(p) ? `"${p.replace(/(["$`\\])/g, '\\$1')}"` : p);
  const f = q(certFile);
  return [
    `Development certificate (self-signed, for localhost, 127.0.0.1 and ::1): ${certFile}`,
    'Clients must trust it before they connect:',
    `  Node.js clients:   NODE_EXTRA_CA_CERTS=${f} <command>`,
    `  curl:              curl --cacert ${f} ${url}/healthz`,
    `  Debian/Ubuntu:     sudo cp ${f} /usr/local/share/ca-certificates/mcp-pa-localhost.crt && sudo update-ca-certificates`,
    `  macOS:             sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${f}`,
    `  Windows:           certutil -user -addstore Root ${f}`,
    '  (Firefox keeps its own store: Settings > Privacy & Security > Certificates > View Certificates > Import.)',
    'It is for development on this machine only; use a real certificate (MCP_TLS_CERT, MCP_TLS_KEY) anywhere else.',
    '',
  ].join('\n');
}
