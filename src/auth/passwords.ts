/**
 * Password hashing for HTTP mode's accounts: argon2id with OWASP's recommended minimum (19 MiB of memory, two
 * passes, one lane), through @node-rs/argon2. Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`) that
 * carry their own salt and parameters, so raising the cost later still verifies old hashes ({@link needsRehash}
 * says which to redo at the next login).
 *
 * Passwords are normalised to Unicode NFKC before hashing and verifying (NIST SP 800-63B §5.1.1.2), so the same
 * password typed on two keyboards that compose characters differently still matches.
 */
import { hash, parseOptions, verify, type Algorithm } from '@node-rs/argon2';

/** `Algorithm.Argon2id`: the package declares its enum `const`, which is not present at run time. */
const ARGON2ID = 2 as Algorithm;
/** `Version.V0x13` (19), for the same reason. */
const VERSION_0X13 = 1;

export const ARGON2_OPTIONS = {
  algorithm: ARGON2ID,
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
} as const;

export const PASSWORD_RULES = { minLength: 12, maxLength: 1024 } as const;

/** Length in characters (code points), as a person counts them. */
function characterCount(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Why a new password is refused, or null when it is acceptable. Never quotes the password (only its length).
 */
export function checkPassword(password: string): string | null {
  if (typeof password !== 'string') return 'password must be text';
  const n = characterCount(password.normalize('NFKC'));
  if (n < PASSWORD_RULES.minLength || n > PASSWORD_RULES.maxLength) {
    return (
      `password must be ${PASSWORD_RULES.minLength}–${PASSWORD_RULES.maxLength} characters long (got ${n}); ` +
      'a passphrase of several words is easiest to remember'
    );
  }
  if (password.trim().length === 0) return 'password must not be only spaces';
  return null;
}

/** An argon2id PHC string for the password (a fresh random salt each time). */
export async function hashPassword(password: string): Promise<string> {
  return hash(password.normalize('NFKC'), ARGON2_OPTIONS);
}

/** Whether the password matches the hash; false (never a throw) for a malformed hash. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password.normalize('NFKC'));
  } catch {
    return false;
  }
}

/** Whether a stored hash was made with other parameters than today's (so it should be redone at next login). */
export function needsRehash(passwordHash: string): boolean {
  try {
    const o = parseOptions(passwordHash);
    return (
      o.algorithm !== ARGON2_OPTIONS.algorithm ||
      o.version !== VERSION_0X13 ||
      o.memoryCost !== ARGON2_OPTIONS.memoryCost ||
      o.timeCost !== ARGON2_OPTIONS.timeCost ||
      o.parallelism !== ARGON2_OPTIONS.parallelism
    );
  } catch {
    return true;
  }
}
