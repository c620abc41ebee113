#!/usr/bin/env node
import { parseArgs } from 'node:util';
import path from 'node:path';
import { existsSync } from 'node:fs';
import {
  ConfigError,
  configurationReference,
  FLAG_BINDINGS,
  loadConfig,
  redactConfig,
  stderrIsTerminal,
  type Config,
} from './config/index.js';
import { createLogger } from './observability/logger.js';
import { backupFile, openLocalApp, runLegacyImport } from './servers/local-app.js';
import type * as HttpServerModule from './servers/http-server.js';
import type * as AdminModule from './admin/index.js';
import { runLocalServer } from './servers/local.js';
import { hasLegacyTables, openReadonly, readLegacyRows } from './storage/sqlite/legacy.js';
import { VERSION } from './version.js';
import {
  CLI_OPTIONS,
  GLOBAL_OPTIONS,
  HELP_OPTION,
  MAIN_COMMAND_HELP,
  mainCommandOptions,
  mainHelpFor,
  parserOptions,
  VERSION_OPTION,
  type OptionTable,
} from './admin/help.js';

function fail(message: string, code = 1): never {
  process.stderr.write(`mcp-pa: ${message}\n`);
  process.exit(code);
}

/** The admin command groups: their own options go to the admin bundle unparsed. */
const ADMIN_GROUPS = new Set(['users', 'keys', 'clients', 'audit', 'doctor', 'reembed']);
/** The commands of this bundle. */
const MAIN_COMMANDS = new Set(Object.keys(MAIN_COMMAND_HELP));
/** Options taking a value, as written on the command line. */
const VALUED = new Set(
  Object.entries(CLI_OPTIONS)
    .filter(([, o]) => o.type === 'string')
    .map(([name]) => `--${name}`),
);

/** The command a command line names (its first word that is neither an option nor an option's value). */
function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--') return argv[i + 1];
    if (!token.startsWith('-')) return token;
    if (VALUED.has(token)) i++;
  }
  return undefined;
}

/** Where to read about a command's options, for usage errors. */
function helpHint(command: string | undefined): string {
  return command !== undefined && (MAIN_COMMANDS.has(command) || ADMIN_GROUPS.has(command))
    ? `Run mcp-pa ${command} --help for its options.`
    : 'Run mcp-pa --help for the commands and options.';
}

function parse(argv: string[]): {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
} {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: parserOptions(CLI_OPTIONS),
      allowPositionals: true,
      strict: true,
    });
    // No option of the main bundle is repeatable: each value is a string or a boolean.
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    fail(`${(err as Error).message}\n${helpHint(commandOf(argv))}`, 2);
  }
}

/** Refuses an option the command does not take (e.g. --dev anywhere but `mcp-pa serve`), naming its help. */
function checkOptionsOf(command: string | undefined, values: Record<string, unknown>): void {
  const allowed: OptionTable = {
    ...GLOBAL_OPTIONS,
    ...HELP_OPTION,
    ...VERSION_OPTION,
    ...(command === undefined || MAIN_COMMANDS.has(command) ? mainCommandOptions(command) : {}),
  };
  for (const name of Object.keys(values)) {
    if (Object.hasOwn(allowed, name)) continue;
    const owner = name === 'dev' ? '`mcp-pa serve` (and `mcp-pa doctor`)' : 'another command';
    fail(
      `--${name} belongs to ${owner}, not to ${command === undefined ? '`mcp-pa` itself' : `\`mcp-pa ${command}\``}\n${helpHint(command)}`,
      2,
    );
  }
}

function load(values: Record<string, string | boolean | undefined>, mode?: 'http'): Config {
  const { flags, configFile } = configSources(values);
  try {
    return loadConfig({
      flags,
      ...(configFile !== undefined ? { configFile } : {}),
      ...(mode !== undefined ? { mode } : {}),
    }).config;
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

/**
 * HTTP mode lives in its own bundle (dist/servers/http-server.js), loaded only here, so local mode's start does not
 * pay for Fastify and the PostgreSQL drivers.
 */
async function runHttp(config: Config, dev: boolean): Promise<void> {
  const entry = new URL('./servers/http-server.js', import.meta.url).href;
  const http = (await import(entry)) as typeof HttpServerModule;
  await http.runHttpServer(config, createLogger(config.logging.level), { dev });
}

/**
 * Splits `mcp-pa [globals] <group> [args]` for an admin group: the global options (wherever they are, up to a
 * `--`) are parsed here; everything else after the group goes to the admin command as is. Null for other
 * commands.
 */
function splitAdminArgv(argv: string[]): { globals: string[]; group: string; rest: string[] } | null {
  const valued = new Set(['--config', ...FLAG_BINDINGS.map((f) => `--${f.flag}`)]);
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--' || !token.startsWith('-')) break;
    globals.push(token);
    if (valued.has(token) && i + 1 < argv.length) globals.push(argv[++i] as string);
  }
  const group = argv[i];
  if (group === undefined || !ADMIN_GROUPS.has(group)) return null;
  const rest: string[] = [];
  for (i++; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const name = token.split('=', 1)[0] as string;
    if (valued.has(name)) {
      globals.push(token);
      if (name === token && i + 1 < argv.length) globals.push(argv[++i] as string);
    } else {
      rest.push(token);
    }
  }
  return { globals, group, rest };
}

/** The configuration flags given on the command line, and the --config file. */
function configSources(values: Record<string, string | boolean | undefined>): {
  flags: Record<string, string>;
  configFile: string | undefined;
} {
  const flags: Record<string, string> = {};
  for (const f of FLAG_BINDINGS) {
    const v = values[f.flag];
    if (typeof v === 'string') flags[f.flag] = v;
  }
  return { flags, configFile: typeof values['config'] === 'string' ? values['config'] : undefined };
}

/**
 * `mcp-pa users|keys|clients|audit|doctor|reembed …`, in its own bundle (dist/admin.js) like HTTP mode; exits with
 * its code. The admin bundle loads the configuration (or only prints help).
 */
async function runAdmin(group: string, rest: string[], values: Record<string, string | boolean | undefined>) {
  const { flags, configFile } = configSources(values);
  const entry = new URL('./admin.js', import.meta.url).href;
  const admin = (await import(entry)) as typeof AdminModule;
  const code = await admin.runAdminCli(
    group,
    rest,
    { flags, configFile, version: VERSION },
    {
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      stdinIsTerminal: process.stdin.isTTY === true,
      stderrIsTerminal: stderrIsTerminal(),
    },
  );
  process.exit(code);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const adminArgv = splitAdminArgv(argv);
  const { values, positionals } = parse(adminArgv ? adminArgv.globals : argv);
  if (values['version']) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (adminArgv) {
    const { group } = adminArgv;
    const rest = [...adminArgv.rest];
    if (values['dev']) {
      if (group !== 'doctor')
        fail(`--dev belongs to \`mcp-pa serve\` (and \`mcp-pa doctor\`)\n${helpHint(group)}`, 2);
      rest.push('--dev');
    }
    if (values['help']) rest.push('--help');
    await runAdmin(group, rest, values);
    return;
  }
  const [command, ...rest] = positionals;
  if (values['help']) {
    process.stdout.write(`${mainHelpFor(positionals, VERSION)}\n`);
    return;
  }
  if (command !== undefined && !MAIN_COMMANDS.has(command)) {
    fail(`unknown command "${command}"\nRun mcp-pa --help for the commands.`, 2);
  }
  checkOptionsOf(command, values);
  switch (command) {
    case undefined: {
      const config = load(values);
      if (config.mode === 'http') {
        await runHttp(config, false);
        return;
      }
      await runLocalServer(config, createLogger(config.logging.level));
      return;
    }
    case 'serve': {
      if (rest.length !== 0)
        fail(`serve takes no arguments, got "${rest.join(' ')}"\n${helpHint('serve')}`, 2);
      await runHttp(load(values, 'http'), values['dev'] === true);
      return;
    }
    case 'config': {
      if (rest[0] === 'reference' && rest.length === 1) {
        process.stdout.write(configurationReference());
        return;
      }
      if (rest[0] !== 'check' || rest.length !== 1)
        fail(`usage: mcp-pa config check|reference [--config FILE]\n${helpHint('config')}`, 2);
      const { flags, configFile } = configSources(values);
      try {
        const { config, sources } = loadConfig({
          flags,
          ...(configFile !== undefined ? { configFile } : {}),
        });
        process.stdout.write(`${JSON.stringify({ effective: redactConfig(config), sources }, null, 2)}\n`);
        process.stderr.write('configuration is valid\n');
      } catch (err) {
        if (err instanceof ConfigError) fail(err.message);
        throw err;
      }
      return;
    }
    case 'import': {
      if (rest.length !== 1)
        fail(`usage: mcp-pa import FILE [--config FILE] [--db TARGET]\n${helpHint('import')}`, 2);
      const source = path.resolve(rest[0] as string);
      if (!existsSync(source)) fail(`import: ${source} does not exist`);
      const config = load(values);
      const logger = createLogger(config.logging.level);
      let rows;
      const src = (() => {
        try {
          return openReadonly(source);
        } catch (err) {
          fail(`import: cannot open ${source} as a SQLite database (${(err as Error).message})`);
        }
      })();
      try {
        if (!hasLegacyTables(src)) {
          fail(
            `import: ${source} has none of the original program's tables (user_status, projects, todos, calendar_events, documents)`,
          );
        }
        rows = readLegacyRows(src);
      } finally {
        src.close();
      }
      if (existsSync(config.database.path)) {
        const backup = await backupFile(config.database.path);
        process.stderr.write(`backed up ${config.database.path} to ${backup}\n`);
      }
      const app = await openLocalApp(config, logger, { migrateLegacy: false });
      try {
        const tty = stderrIsTerminal();
        const report = await runLegacyImport(app, rows, logger, (done, total) => {
          if (tty) process.stderr.write(`\rimporting: ${done}/${total}`);
        });
        if (tty) process.stderr.write('\n');
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } finally {
        await app.close();
      }
      return;
    }
    default:
      fail(`unknown command "${command}"\nRun mcp-pa --help for the commands.`, 2);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`mcp-pa: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
