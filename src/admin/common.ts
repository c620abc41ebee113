/** What the admin commands (users, keys, clients, audit) share: exit codes, errors, option parsing, tables. */
import { parseArgs } from 'node:util';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { AuditLog, type AuditEvent } from '../security/audit.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A refused command line: printed with the usage, exit code 2. */
export class UsageError extends Error {}

/** A plain-text table: columns padded to their widest cell, two spaces apart. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** An ISO instant as "YYYY-MM-DD HH:MM UTC", or `none` when there is none. */
export function shortTime(iso: string | null, none: string): string {
  return iso === null ? none : `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * Records one audit event from an admin command (in the same database as the servers', and in the command's
 * log), written before the command's store closes.
 */
export async function recordAdminEvent(
  store: PostgresStore,
  config: Config,
  logger: Logger,
  event: Omit<AuditEvent, 'requestId' | 'ip'>,
): Promise<void> {
  const audit = new AuditLog({
    store,
    logger,
    retentionDays: config.security.audit_retention_days,
    flushIntervalMs: 0,
  });
  audit.record({ ...event, details: { ...event.details, via: 'cli' } });
  await audit.close();
}

/** Parses a command's options strictly (no positional arguments); a mistake is a UsageError naming it. */
export function parseOptions(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean' }>,
): Record<string, string | boolean | undefined> {
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals.join(' ')}"`);
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}

/** An option's value as a whole number from 1 to `max`, or a UsageError naming the option (`what` says the unit). */
export function wholeNumberOption(
  text: string,
  option: string,
  max: number,
  what = 'a whole number',
): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new UsageError(`${option} must be ${what} from 1 to ${max} (got "${text}")`);
  }
  return value;
}
