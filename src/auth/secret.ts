/**
 * The server secret (`MCP_SECRET_KEY`, authentication.secret_key): the one value every replica shares, from which
 * purpose-bound keys are derived with HKDF-SHA256 (node:crypto) — the key that encrypts the signing keys' private
 * halves in the database, and the keys that sign cookies. Deriving per purpose means a key leaked from one use
 * (a cookie key, say) tells nothing about another.
 *
 * On a loopback bind without a configured secret, one is made once (48 random bytes, base64) in
 * `<data_dir>/secret.key` (0600, folder 0700) so `mcp-pa serve --dev` works out of the box; elsewhere the
 * secret must be configured (several replicas would otherwise each make their own).
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';

export type SecretPurpose = 'signing-key-encryption' | 'cookie-signing' | 'csrf';

/** A 32-byte key for one purpose, derived from the server secret. */
export function deriveKey(secret: string, purpose: SecretPurpose): Buffer {
  if (secret.length < 32) throw new RangeError('the server secret must be at least 32 characters');
  return Buffer.from(
    hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), `mcp-pa ${purpose}`, 32),
  );
}

export const SECRET_FILE = 'secret.key';

/**
 * The configured secret, or the one kept in `<dataDir>/secret.key` (made on first use). `created` says a new one
 * was written.
 */
export async function loadOrCreateSecret(
  configured: string | undefined,
  dataDir: string,
): Promise<{ secret: string; file?: string; created: boolean }> {
  if (configured !== undefined) return { secret: configured, created: false };
  const file = path.join(dataDir, SECRET_FILE);
  try {
    const secret = (await readFile(file, 'utf8')).trim();
    if (secret.length < 32) {
      throw new Error(
        `${file} holds a secret shorter than 32 characters: delete it to have a new one made, or set MCP_SECRET_KEY`,
      );
    }
    return { secret, file, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64');
  await writeFile(file, `${secret}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err: unknown) => {
    // Another process made it at the same moment: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  });
  await chmod(file, 0o600);
  const stored = (await readFile(file, 'utf8')).trim();
  return { secret: stored, file, created: stored === secret };
}
