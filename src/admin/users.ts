/**
 * `mcp-pa users …`: the accounts that sign in to HTTP mode (each one a tenant with its own data).
 *
 * Passwords are never taken from the command line (other users of the machine can read a process's arguments,
 * and shells keep history): they come from `--password-file FILE` (its first line) or standard input (a prompt
 * without echo on a terminal, else the first line).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  AccountError,
  AccountStore,
  checkUsername,
  normalizeUsername,
  type Account,
} from '../auth/accounts.js';
import { checkPassword } from '../auth/passwords.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { PostgresStore } from '../storage/postgres/index.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, formatTable, shortTime, UsageError } from './common.js';
import { formatGroupHelp, parserOptions, type GroupHelp, type OptionTable } from './help.js';
import type { AdminIo } from './index.js';
import { openAdminStore } from './store.js';

export const USERS_USAGE = `usage:
  mcp-pa users add USERNAME [--password-file FILE]             create an account (asks for its password)
  mcp-pa users list [--json]                                    list the accounts
  mcp-pa users disable USERNAME                                 stop an account signing in; revokes its apps
  mcp-pa users enable USERNAME                                  let a disabled account sign in again
  mcp-pa users reset-password USERNAME [--password-file FILE]   set a new password; revokes its apps
Passwords are read from FILE (its first line) or from standard input, never from the command line.
Usernames: 3–64 characters of a–z, 0–9, . _ @ + - starting with a letter or digit. Passwords: 12–1024 characters.
Also takes the global options (--config FILE, --data-dir DIR, …): the database is the one \`mcp-pa serve\` uses.`;

const PASSWORD_FILE: OptionTable = {
  'password-file': {
    type: 'string',
    value: 'FILE',
    description:
      'read the password from the first line of FILE (else: asked without echo on a terminal, or the first line of standard input)',
  },
};
const JSON_OPTION: OptionTable = { json: { type: 'boolean', description: 'print the accounts as JSON' } };
const PASSWORD_NOTE =
  'Passwords are read from FILE or standard input, never from the command line (12–1024 characters).';
const DATABASE_NOTE =
  "The database is the one `mcp-pa serve` uses (HTTP mode's, whatever the configured mode).";

/** `mcp-pa users …`: each command's options (its parser is built from them) and help. */
export const USERS_HELP: GroupHelp<'add' | 'list' | 'disable' | 'enable' | 'reset-password'> = {
  group: 'users',
  summary: 'the accounts that sign in to HTTP mode (each one a tenant with its own data)',
  notes: [DATABASE_NOTE],
  actions: {
    add: {
      command: 'users add',
      summary: 'create an account (asks for its password)',
      usage: ['mcp-pa users add USERNAME [--password-file FILE] [options]'],
      options: PASSWORD_FILE,
      notes: [
        'Usernames: 3–64 characters of a–z, 0–9, . _ @ + - starting with a letter or digit.',
        PASSWORD_NOTE,
      ],
      examples: [
        'mcp-pa users add alice',
        'printf \'%s\\n\' "$PASSWORD" | mcp-pa users add alice',
        'mcp-pa users add alice --password-file /run/secrets/alice',
      ],
    },
    list: {
      command: 'users list',
      summary: 'list the accounts',
      usage: ['mcp-pa users list [--json] [options]'],
      options: JSON_OPTION,
      examples: ['mcp-pa users list', 'mcp-pa users list --json'],
    },
    disable: {
      command: 'users disable',
      summary: 'stop an account signing in; revokes its connected apps and sessions',
      usage: ['mcp-pa users disable USERNAME [options]'],
      options: {},
      examples: ['mcp-pa users disable alice'],
    },
    enable: {
      command: 'users enable',
      summary: 'let a disabled account sign in again',
      usage: ['mcp-pa users enable USERNAME [options]'],
      options: {},
      examples: ['mcp-pa users enable alice'],
    },
    'reset-password': {
      command: 'users reset-password',
      summary: "set a new password; revokes the account's connected apps and sessions",
      usage: ['mcp-pa users reset-password USERNAME [--password-file FILE] [options]'],
      options: PASSWORD_FILE,
      notes: [PASSWORD_NOTE],
      examples: [
        'mcp-pa users reset-password alice',
        'mcp-pa users reset-password alice --password-file /run/secrets/alice',
      ],
    },
  },
};

/** A failure to report as is (no stack), exit code 1. */
class CommandError extends Error {}

interface Parsed {
  readonly positionals: string[];
  readonly passwordFile: string | undefined;
  readonly json: boolean;
}

function parse(args: string[], table: OptionTable, arity: number): Parsed {
  const password = args.find((a) => a === '--password' || a.startsWith('--password='));
  if (password !== undefined) {
    throw new UsageError(
      'passwords are never taken from the command line (other users can see it, and shells keep history): ' +
        'use --password-file FILE or type it when asked (or pipe it on standard input)',
    );
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: parserOptions(table), allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { positionals, values } = parsed;
  if (positionals.length !== arity) {
    if (positionals.length > arity && arity === 1 && 'password-file' in table) {
      throw new UsageError(
        `expected one argument (USERNAME), got ${positionals.length}: a password is never taken from the ` +
          'command line (others can see it): use --password-file FILE or standard input',
      );
    }
    throw new UsageError(
      arity === 0
        ? `expected no arguments, got ${positionals.length}`
        : `expected ${arity === 1 ? 'one argument (USERNAME)' : `${arity} arguments`}, got ${positionals.length}`,
    );
  }
  const passwordFile = values['password-file'];
  return {
    positionals,
    passwordFile: typeof passwordFile === 'string' ? passwordFile : undefined,
    json: values['json'] === true,
  };
}

/** The first line of `text`, without its line ending. */
function firstLine(text: string): string {
  const end = text.search(/\r?\n/);
  return end === -1 ? text : text.slice(0, end);
}

/** Reads up to the first newline (or the end) of a stream; null when it ends with nothing. */
function readLine(stream: NodeJS.ReadableStream): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let text = '';
    let got = false;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
    };
    const onData = (chunk: Buffer | string): void => {
      got = true;
      text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      if (/\r?\n/.test(text)) {
        cleanup();
        resolve(firstLine(text));
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve(got ? text : null);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

interface RawModeStream {
  setRawMode(mode: boolean): unknown;
}

function hasRawMode(stream: NodeJS.ReadableStream): stream is NodeJS.ReadableStream & RawModeStream {
  return typeof (stream as Partial<RawModeStream>).setRawMode === 'function';
}

/** Prompts on stderr and reads a line from a terminal without echoing it. */
function promptHidden(io: AdminIo, prompt: string): Promise<string> {
  const { stdin } = io;
  io.stderr.write(prompt);
  if (!hasRawMode(stdin)) {
    return readLine(stdin).then((line) => {
      if (line === null) throw new CommandError('no password given (standard input ended)');
      return line;
    });
  }
  return new Promise((resolve, reject) => {
    let text = '';
    stdin.setRawMode(true);
    const finish = (error: Error | null): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.stderr.write('\n');
      if (error) reject(error);
      else resolve(text);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const c of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (c === '\r' || c === '\n') return finish(null);
        if (c === '\u0003') return finish(new CommandError('cancelled'));
        if (c === '\u0004') {
          if (text.length === 0) return finish(new CommandError('no password given'));
          return finish(null);
        }
        if (c === '\u007f' || c === '\b') text = [...text].slice(0, -1).join('');
        else if (c >= ' ') text += c;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** The new password: from the file, else a prompt (asked twice) on a terminal, else stdin's first line. */
async function readNewPassword(io: AdminIo, passwordFile: string | undefined): Promise<string> {
  let password: string;
  if (passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(passwordFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CommandError(
        `--password-file: cannot read ${passwordFile} (${code === 'ENOENT' ? 'no such file' : (code ?? 'error')})`,
      );
    }
    password = firstLine(text);
    if (password.length === 0)
      throw new CommandError(`--password-file: the first line of ${passwordFile} is empty`);
  } else if (io.stdinIsTerminal) {
    password = await promptHidden(io, 'Password: ');
    const problem = checkPassword(password);
    if (problem !== null) throw new CommandError(problem);
    const again = await promptHidden(io, 'Repeat password: ');
    if (again !== password) throw new CommandError('the two passwords differ: nothing was changed');
  } else {
    const line = await readLine(io.stdin);
    if (line === null || line.length === 0) {
      throw new CommandError(
        'no password given: pipe it on standard input (first line), or use --password-file FILE',
      );
    }
    password = line;
  }
  const problem = checkPassword(password);
  if (problem !== null) throw new CommandError(problem);
  return password;
}

function username(raw: string): string {
  const name = normalizeUsername(raw);
  const problem = checkUsername(name);
  if (problem !== null) throw new CommandError(problem);
  return name;
}

function when(iso: string | null): string {
  return shortTime(iso, 'never');
}

function table(accounts: readonly Account[]): string {
  const header = ['USERNAME', 'ID', 'DISABLED', 'CREATED', 'LAST LOGIN'];
  const rows = accounts.map((a) => [
    a.username,
    a.id,
    a.disabled ? 'yes' : 'no',
    when(a.createdAt),
    when(a.lastLoginAt),
  ]);
  return formatTable(header, rows);
}

async function withAccounts<T>(
  config: Config,
  logger: Logger,
  fn: (accounts: AccountStore) => Promise<T>,
): Promise<T> {
  let store: PostgresStore;
  try {
    store = await openAdminStore(config, logger);
  } catch (err) {
    throw new CommandError((err as Error).message);
  }
  try {
    return await fn(new AccountStore(store));
  } finally {
    await store.close();
  }
}

/** `mcp-pa users <command> …`; answers the exit code (0, 1 failure, 2 usage error). */
export async function runUsersCommand(
  args: string[],
  config: Config,
  io: AdminIo,
  logger: Logger,
): Promise<number> {
  const [command, ...rest] = args;
  const out = (line: string): void => {
    io.stdout.write(`${line}\n`);
  };
  try {
    switch (command) {
      case undefined:
        throw new UsageError('missing command');
      case '--help':
      case '-h':
      case 'help':
        out(formatGroupHelp(USERS_HELP));
        return EXIT_OK;
      case 'add': {
        const p = parse(rest, USERS_HELP.actions.add.options, 1);
        const name = username(p.positionals[0] as string);
        const password = await readNewPassword(io, p.passwordFile);
        const account = await withAccounts(config, logger, (a) => a.create(name, password));
        out(`created user ${account.username} (id ${account.id})`);
        return EXIT_OK;
      }
      case 'list': {
        const p = parse(rest, USERS_HELP.actions.list.options, 0);
        const accounts = await withAccounts(config, logger, (a) => a.list());
        if (p.json) out(JSON.stringify(accounts, null, 2));
        else if (accounts.length === 0) out('no users yet: add one with mcp-pa users add USERNAME');
        else out(table(accounts));
        return EXIT_OK;
      }
      case 'disable':
      case 'enable': {
        const p = parse(rest, USERS_HELP.actions[command].options, 1);
        const name = username(p.positionals[0] as string);
        const disable = command === 'disable';
        const account = await withAccounts(config, logger, (a) => a.setDisabled(name, disable));
        out(
          disable
            ? `disabled user ${account.username}: it can no longer sign in, and its connected apps and sessions were revoked`
            : `enabled user ${account.username}`,
        );
        return EXIT_OK;
      }
      case 'reset-password': {
        const p = parse(rest, USERS_HELP.actions['reset-password'].options, 1);
        const name = username(p.positionals[0] as string);
        const password = await readNewPassword(io, p.passwordFile);
        const account = await withAccounts(config, logger, (a) => a.resetPassword(name, password));
        out(
          `new password set for ${account.username}; its connected apps and sessions were revoked ` +
            '(they must sign in again)',
        );
        return EXIT_OK;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`mcp-pa users: ${err.message}\n${USERS_USAGE}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof CommandError || err instanceof AccountError) {
      io.stderr.write(`mcp-pa users: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    io.stderr.write(`mcp-pa users: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
}
