/**
 * The admin commands (`mcp-pa users|keys|clients|audit|doctor|reembed …`), bundled apart as dist/admin.js and
 * loaded by the CLI only for these commands. Each group is a function `(args, config, io, logger) => exit code`;
 * doctor and reembed load the configuration themselves (doctor reports a configuration that does not load as one
 * of its checks, and both may be told to check HTTP mode whatever the configured mode).
 */
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { formatHelp, groupHelpFor, type CommandHelp, type GroupHelp } from './help.js';
import { migrationProgress } from '../observability/progress.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './common.js';
import { reportMigrations } from './store.js';
import { runUsersCommand, USERS_HELP } from './users.js';
import { KEYS_HELP, runKeysCommand } from './keys.js';
import { CLIENTS_HELP, runClientsCommand } from './clients.js';
import { AUDIT_HELP, runAuditCommand } from './audit.js';
import { DOCTOR_HELP, runDoctorCommand } from './doctor.js';
import { REEMBED_HELP, runReembedCommand } from './reembed.js';
// ── Admin command groups: one import line per group here, one case in groupFor and one entry in HELP below. ──

/** Where an admin command reads and writes (the process's streams in the CLI, pipes in tests). */
export interface AdminIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Whether stdin is a terminal (a password is then prompted for, without echo). */
  stdinIsTerminal: boolean;
  /** Whether stderr is a terminal (progress lines are then shown: migrations, re-embedding). */
  stderrIsTerminal?: boolean;
}

export type AdminCommand = (args: string[], config: Config, io: AdminIo, logger: Logger) => Promise<number>;

/** Loads the configuration (HTTP mode when told); throws ConfigError listing the problems. */
export type ConfigLoader = (mode?: 'http') => Config;

/** What the admin commands get besides their arguments: how to load the configuration, the version. */
export interface AdminContext {
  readonly load: ConfigLoader;
  /** The program's version (for reports). */
  readonly version: string;
}

/** Where the CLI's configuration comes from: the configuration flags given and the --config file. */
export interface ConfigSources {
  readonly flags: Readonly<Record<string, string>>;
  readonly configFile: string | undefined;
}

/**
 * The loader for the configuration the command line names. Made here, not in the CLI's bundle: ConfigError must be
 * this bundle's class for `instanceof` to recognise it.
 */
export function configLoader(sources: ConfigSources): ConfigLoader {
  return (mode) =>
    loadConfig({
      flags: sources.flags,
      ...(sources.configFile !== undefined ? { configFile: sources.configFile } : {}),
      ...(mode !== undefined ? { mode } : {}),
    }).config;
}

/** Every admin command's help: groups of actions, or single commands. */
export const ADMIN_HELP: Readonly<Record<string, GroupHelp | CommandHelp>> = {
  users: USERS_HELP,
  keys: KEYS_HELP,
  clients: CLIENTS_HELP,
  audit: AUDIT_HELP,
  doctor: DOCTOR_HELP,
  reembed: REEMBED_HELP,
};

const USAGE = `usage: mcp-pa <group> <command> [options]
  mcp-pa users add|list|disable|enable|reset-password …   accounts that sign in to HTTP mode
  mcp-pa keys rotate|list                                  the authorization server's signing keys
  mcp-pa clients add|list|remove|rotate-secret …           pre-registered OAuth clients
  mcp-pa audit [--since 1h] [--type T] …|prune            the audit trail
  mcp-pa doctor [--http] [--json]                          check a deployment
  mcp-pa reembed [--http] [--json]                         embed the items that lack vectors
Run mcp-pa --help for the commands, mcp-pa <group> --help for one group's options.`;

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

function isGroup(help: GroupHelp | CommandHelp): help is GroupHelp {
  return 'actions' in help;
}

/**
 * The help an admin command line asks for (`mcp-pa users --help`, `mcp-pa users add --help`, `mcp-pa users help
 * add`, `mcp-pa doctor --help`), or null when it asks for none. Needs no configuration.
 */
export function adminHelp(group: string, args: readonly string[]): string | null {
  if (!Object.hasOwn(ADMIN_HELP, group)) return null;
  const help = ADMIN_HELP[group] as GroupHelp | CommandHelp;
  if (isGroup(help)) return groupHelpFor(help, args);
  const end = args.indexOf('--');
  const before = end === -1 ? args : args.slice(0, end);
  return before.some((a) => a === '--help' || a === '-h') ? formatHelp(help) : null;
}

/** Where to read about a group's (or one of its actions') options, for usage errors. */
function helpPointer(group: string, args: readonly string[]): string {
  const help = Object.hasOwn(ADMIN_HELP, group) ? ADMIN_HELP[group] : undefined;
  const first = args[0];
  if (help !== undefined && isGroup(help) && first !== undefined && Object.hasOwn(help.actions, first)) {
    return `Run mcp-pa ${group} ${first} --help for its options.`;
  }
  return `Run mcp-pa ${group} --help for its commands and options.`;
}

/** Shows migration progress on a terminal while `run` opens stores. */
async function withMigrationProgress<T>(io: AdminIo, run: () => Promise<T>): Promise<T> {
  if (io.stderrIsTerminal !== true) return run();
  reportMigrations(migrationProgress(io.stderr, true));
  try {
    return await run();
  } finally {
    reportMigrations(undefined);
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
  const code = await withMigrationProgress(io, () => run(args, config, io, logger));
  if (code === EXIT_USAGE) io.stderr.write(`${helpPointer(group, args)}\n`);
  return code;
}

/**
 * The CLI's entry for every admin command: help (without loading the configuration), doctor and reembed (which
 * load it themselves), and the groups working on HTTP mode's database.
 */
export async function runAdminCli(
  group: string,
  args: string[],
  cli: ConfigSources & { readonly version: string },
  io: AdminIo,
): Promise<number> {
  const context: AdminContext = { load: configLoader(cli), version: cli.version };
  const help = adminHelp(group, args);
  if (help !== null) {
    io.stdout.write(`${help}\n`);
    return EXIT_OK;
  }
  if (group === 'doctor') return runDoctorCommand(args, context, io);
  if (group === 'reembed') return runReembedCommand(args, context, io);
  let config: Config;
  try {
    config = context.load('http');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`mcp-pa: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  return runAdminCommand(group, args, config, io);
}
