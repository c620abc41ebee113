/**
 * The admin commands of HTTP mode (`mcp-pa users|keys|clients …`), bundled apart as dist/admin.js and loaded by
 * the CLI only for these commands. Each group is a function `(args, config, io, logger) => exit code`.
 */
import type { Config } from '../config/index.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { EXIT_USAGE } from './common.js';
import { runUsersCommand } from './users.js';
import { runKeysCommand } from './keys.js';
import { runClientsCommand } from './clients.js';
import { runAuditCommand } from './audit.js';
// ── Admin command groups: one import line per group here, and one case in groupFor below. ──

/** Where an admin command reads and writes (the process's streams in the CLI, pipes in tests). */
export interface AdminIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Whether stdin is a terminal (a password is then prompted for, without echo). */
  stdinIsTerminal: boolean;
}

export type AdminCommand = (args: string[], config: Config, io: AdminIo, logger: Logger) => Promise<number>;

const USAGE = `usage: mcp-pa <group> <command> [options]
  mcp-pa users add|list|disable|enable|reset-password …   accounts that sign in to HTTP mode
  mcp-pa keys rotate|list                                  the authorization server's signing keys
  mcp-pa clients add|list|remove|rotate-secret …           pre-registered OAuth clients
  mcp-pa audit [--since 1h] [--type T] …|prune            the audit trail
Run mcp-pa --help for the options.`;

function groupFor(group: string): AdminCommand | undefined {
  switch (group) {
    // ── Admin command groups: add one case per group here (and its import line above). ──
    case 'users':
      return runUsersCommand;
    case 'keys':
      return runKeysCommand;
    case 'clients':
      return runClientsCommand;
    case 'audit':
      return runAuditCommand;
    default:
      return undefined;
  }
}

/**
 * Runs `mcp-pa <group> …` and answers the exit code (0 success, 1 failure, 2 usage error). The admin commands
 * log only warnings and errors unless a more detailed log level is configured: their output is for people.
 */
export async function runAdminCommand(
  group: string,
  args: string[],
  config: Config,
  io: AdminIo,
): Promise<number> {
  const run = groupFor(group);
  if (!run) {
    io.stderr.write(`mcp-pa: unknown command group "${group}"\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const level = config.logging.level === 'info' ? 'warn' : config.logging.level;
  const logger = createLogger(level, io.stderr);
  return run(args, config, io, logger);
}
