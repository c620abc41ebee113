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

const HELP = `mcp-pa ${VERSION} — a personal assistant (projects, tasks, calendar, documents, notes) for MCP clients

Usage:
  mcp-pa [options]                 run the local MCP server over stdio (what MCP clients start)
  mcp-pa serve [options] [--dev]   serve MCP over HTTPS at /mcp (HTTP mode: PostgreSQL, or embedded PGlite)
  mcp-pa config check [options]    print the effective configuration (secrets redacted); exit 1 on errors
  mcp-pa config reference          print every configuration key, variable and flag (docs/configuration.md)
  mcp-pa import FILE [options]     import a database of the original Python mcp-pa (backs up the target first)
  mcp-pa users add|list|disable|enable|reset-password [USERNAME] [options]
                                   HTTP mode's accounts (passwords from --password-file FILE or stdin)
  mcp-pa keys rotate|list [options]
                                   the authorization server's signing keys
  mcp-pa clients add|list|remove|rotate-secret [options]
                                   pre-registered OAuth clients
  mcp-pa audit [--since 1h] [--type T] [--tenant USER] [--limit N] [--json] | mcp-pa audit prune
                                   the audit trail (newest first); prune deletes events past retention
  mcp-pa --help | --version

Options (every command):
  --config FILE        JSON configuration file (also MCP_CONFIG)
${FLAG_BINDINGS.map((f) => `  --${`${f.flag} ${f.kind === 'string' ? 'VALUE' : 'N'}`.padEnd(19)}${f.description}`).join('\n')}


users, keys, clients (HTTP mode's database; run \`mcp-pa users --help\` and so on for each command's options):
  users add USERNAME [--password-file FILE]   users list [--json]   users disable|enable USERNAME
  users reset-password USERNAME [--password-file FILE]

serve:
  --host H / --port P  bind address (default 127.0.0.1; elsewhere needs TLS and MCP_SECRET_KEY) and port (8000)
  --dev                serve a self-signed certificate for localhost, made once in <data dir>/tls/, and print
                       how to trust it
  Without --dev, TLS needs MCP_TLS_CERT and MCP_TLS_KEY (PEM files). With no MCP_DATABASE_URL, data goes to an
  embedded PGlite database in <data dir>/pglite (for trying out, not production). SIGHUP reloads the certificate.

Settings come from, highest first: flags, environment variables, the JSON file, defaults.
See docs/configuration.md for every key and variable; docs/http-mode.md for HTTP mode.`;

function fail(message: string, code = 1): never {
  process.stderr.write(`mcp-pa: ${message}\n`);
  process.exit(code);
}

function parse(argv: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    dev: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  };
  for (const f of FLAG_BINDINGS) options[f.flag] = { type: 'string' };
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    fail(`${(err as Error).message}\nRun mcp-pa --help for the options.`, 2);
  }
}

function load(values: Record<string, string | boolean | undefined>, mode?: 'http'): Config {
  const flags: Record<string, string> = {};
  for (const f of FLAG_BINDINGS) {
    const v = values[f.flag];
    if (typeof v === 'string') flags[f.flag] = v;
  }
  const configFile = typeof values['config'] === 'string' ? values['config'] : undefined;
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

/** The admin command groups: their own options go to the admin bundle unparsed. */
const ADMIN_GROUPS = new Set(['users', 'keys', 'clients', 'audit']);

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

/** `mcp-pa users|keys|clients …`, in its own bundle (dist/admin.js) like HTTP mode; exits with its code. */
async function runAdmin(group: string, rest: string[], values: Record<string, string | boolean | undefined>) {
  const config = load(values, 'http');
  const entry = new URL('./admin.js', import.meta.url).href;
  const admin = (await import(entry)) as typeof AdminModule;
  const code = await admin.runAdminCommand(group, rest, config, {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTerminal: process.stdin.isTTY === true,
  });
  process.exit(code);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const adminArgv = splitAdminArgv(argv);
  const { values, positionals } = parse(adminArgv ? adminArgv.globals : argv);
  if (values['help']) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (values['version']) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (adminArgv) {
    if (values['dev']) fail('--dev belongs to `mcp-pa serve`', 2);
    await runAdmin(adminArgv.group, adminArgv.rest, values);
    return;
  }
  const [command, ...rest] = positionals;
  if (values['dev'] && command !== 'serve') fail('--dev belongs to `mcp-pa serve`', 2);
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
        fail(`serve takes no arguments, got "${rest.join(' ')}"\nRun mcp-pa --help for the options.`, 2);
      await runHttp(load(values, 'http'), values['dev'] === true);
      return;
    }
    case 'config': {
      if (rest[0] === 'reference' && rest.length === 1) {
        process.stdout.write(configurationReference());
        return;
      }
      if (rest[0] !== 'check' || rest.length !== 1)
        fail('usage: mcp-pa config check|reference [--config FILE]', 2);
      const flags: Record<string, string> = {};
      for (const f of FLAG_BINDINGS)
        if (typeof values[f.flag] === 'string') flags[f.flag] = values[f.flag] as string;
      try {
        const configFile = typeof values['config'] === 'string' ? values['config'] : undefined;
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
      if (rest.length !== 1) fail('usage: mcp-pa import FILE [--config FILE] [--db TARGET]', 2);
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
