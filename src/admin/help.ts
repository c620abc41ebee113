/**
 * Every command's help and option table, in one layout (Usage / Options / Global options / Examples). A command's
 * parser is built from its table ({@link parserOptions}), so an option cannot be accepted without being described
 * here. The commands of the main bundle (`mcp-pa`, `serve`, `config`, `import`) are described here; the admin
 * commands (`users`, `keys`, `clients`, `audit`, `doctor`, `reembed`) next to their code in this folder, with the
 * same types. This module imports nothing but the configuration's flag list: src/cli.ts imports it without
 * loading the admin commands.
 */
import { ENV_BINDINGS, FLAG_BINDINGS } from '../config/index.js';

/** One option: how it parses (node:util parseArgs) and how the help shows it. */
export interface OptionHelp {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** What the value stands for, e.g. FILE (string options). */
  readonly value?: string;
  readonly description: string;
}

/** A command's options by long name (without the dashes). */
export type OptionTable = Readonly<Record<string, OptionHelp>>;

/** One command (or one action of a command group). */
export interface CommandHelp {
  /** The words after `mcp-pa`, e.g. `users add` ('' for mcp-pa itself). */
  readonly command: string;
  readonly summary: string;
  /** Usage lines, each starting with `mcp-pa`. */
  readonly usage: readonly string[];
  /** The options its parser accepts besides the global ones and --help. */
  readonly options: OptionTable;
  /** Whether the global options (--config FILE, --data-dir DIR, …) apply (default true). */
  readonly globalOptions?: boolean;
  readonly notes?: readonly string[];
  readonly examples: readonly string[];
}

/** A command group (`mcp-pa users add|list|…`): its actions, each with its own help. */
export interface GroupHelp<A extends string = string> {
  readonly group: string;
  readonly summary: string;
  readonly actions: Readonly<Record<A, CommandHelp>>;
  /** The action run when the first argument is not an action's name (`mcp-pa audit --since 1h`). */
  readonly defaultAction?: string;
  readonly notes?: readonly string[];
}

/** What the value of each configuration flag stands for in the help. */
const FLAG_VALUES: Readonly<Record<string, string>> = {
  db: 'FILE',
  'data-dir': 'DIR',
  'docs-dir': 'DIR',
  'log-level': 'LEVEL',
  timezone: 'ZONE',
  host: 'HOST',
  port: 'PORT',
};

/** The environment variable setting a configuration key, if any. */
function envOf(key: readonly string[]): string | undefined {
  return ENV_BINDINGS.find((b) => b.key.join('.') === key.join('.'))?.name;
}

/** The options every command takes: the configuration file and the configuration flags (FLAG_BINDINGS). */
export const GLOBAL_OPTIONS: OptionTable = {
  config: {
    type: 'string',
    value: 'FILE',
    description: 'JSON configuration file (also MCP_CONFIG)',
  },
  ...Object.fromEntries(
    FLAG_BINDINGS.map((f) => [
      f.flag,
      {
        type: 'string' as const,
        value: FLAG_VALUES[f.flag] ?? (f.kind === 'string' ? 'VALUE' : 'N'),
        description: `${f.description} (${[f.key.join('.'), envOf(f.key)].filter(Boolean).join(', ')})`,
      },
    ]),
  ),
};

export const HELP_OPTION: OptionTable = {
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

/** The table of parseArgs options for an option table. */
export function parserOptions(
  table: OptionTable,
): Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> {
  return Object.fromEntries(
    Object.entries(table).map(([name, o]) => [
      name,
      {
        type: o.type,
        ...(o.multiple ? { multiple: true } : {}),
        ...(o.short !== undefined ? { short: o.short } : {}),
      },
    ]),
  );
}

function optionLabel(name: string, o: OptionHelp): string {
  const long = `--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
  return o.short !== undefined ? `-${o.short}, ${long}` : `    ${long}`;
}

function optionLines(table: OptionTable, tags: Readonly<Record<string, string>> = {}): string[] {
  const entries = Object.entries(table);
  const width = Math.max(0, ...entries.map(([n, o]) => optionLabel(n, o).length)) + 2;
  return entries.map(([name, o]) => {
    const tag = tags[name];
    const text = `${tag !== undefined ? `(${tag}) ` : ''}${o.description}${o.multiple ? ' (repeatable)' : ''}`;
    return `  ${optionLabel(name, o).padEnd(width)}${text}`;
  });
}

function section(title: string, lines: readonly string[]): string[] {
  return lines.length === 0 ? [] : ['', `${title}:`, ...lines];
}

function globalSection(show: boolean): string[] {
  return show ? section('Global options (every command)', optionLines(GLOBAL_OPTIONS)) : [];
}

/** One command's help: summary, Usage, Options, Global options, Notes, Examples. */
export function formatHelp(help: CommandHelp): string {
  const name = help.command === '' ? 'mcp-pa' : `mcp-pa ${help.command}`;
  return [
    `${name} — ${help.summary}`,
    ...section(
      'Usage',
      help.usage.map((u) => `  ${u}`),
    ),
    ...section('Options', optionLines({ ...help.options, ...HELP_OPTION })),
    ...globalSection(help.globalOptions !== false),
    ...section(
      'Notes',
      (help.notes ?? []).map((n) => `  ${n}`),
    ),
    ...section(
      'Examples',
      help.examples.map((e) => `  ${e}`),
    ),
  ].join('\n');
}

/** A group's help: every action's usage, the union of their options (tagged with the actions taking them). */
export function formatGroupHelp(group: GroupHelp): string {
  const actions: [string, CommandHelp][] = Object.entries(group.actions);
  // The default action has no word of its own: it is named by the group (`mcp-pa audit --since 1h`).
  const label = (action: string): string => (action === group.defaultAction ? group.group : action);
  const options: Record<string, OptionHelp> = {};
  const takenBy: Record<string, string[]> = {};
  for (const [action, help] of actions) {
    for (const [name, o] of Object.entries(help.options)) {
      options[name] ??= o;
      (takenBy[name] ??= []).push(label(action));
    }
  }
  const tags = Object.fromEntries(
    Object.entries(takenBy).map(([name, list]) => [
      name,
      list.length === actions.length ? 'all' : list.join(', '),
    ]),
  );
  const help: OptionTable = {
    help: {
      ...(HELP_OPTION['help'] as OptionHelp),
      description: `show this help (mcp-pa ${group.group} <command> --help: one command's)`,
    },
  };
  const commandWidth = Math.max(...actions.map(([, h]) => h.command.length)) + 2;
  return [
    `mcp-pa ${group.group} — ${group.summary}`,
    ...section(
      'Usage',
      actions.flatMap(([, h]) => h.usage.map((u) => `  ${u}`)),
    ),
    ...section(
      'Commands',
      actions.map(([, h]) => `  ${`mcp-pa ${h.command}`.padEnd(commandWidth + 7)}${h.summary}`),
    ),
    ...section('Options', optionLines({ ...options, ...help }, tags)),
    ...globalSection(actions.some(([, h]) => h.globalOptions !== false)),
    ...section(
      'Notes',
      [...(group.notes ?? []), ...actions.flatMap(([, h]) => h.notes ?? [])]
        .filter((n, i, all) => all.indexOf(n) === i)
        .map((n) => `  ${n}`),
    ),
    ...section(
      'Examples',
      actions.flatMap(([, h]) => h.examples.slice(0, 2).map((e) => `  ${e}`)),
    ),
  ].join('\n');
}

/**
 * The help a command line asks for in a group: the action's (`mcp-pa users add --help`, `mcp-pa users help add`)
 * or the group's. Null when the arguments ask for no help.
 */
export function groupHelpFor(group: GroupHelp, args: readonly string[]): string | null {
  const end = args.indexOf('--');
  const before = end === -1 ? args : args.slice(0, end);
  const [first, second] = before;
  if (first === 'help') {
    const actions: Readonly<Record<string, CommandHelp>> = group.actions;
    const action = second !== undefined && Object.hasOwn(actions, second) ? actions[second] : undefined;
    return action ? formatHelp(action) : formatGroupHelp(group);
  }
  if (!before.some((a) => a === '--help' || a === '-h')) return null;
  const actions: Readonly<Record<string, CommandHelp>> = group.actions;
  const action =
    first !== undefined && first !== group.defaultAction && Object.hasOwn(actions, first)
      ? actions[first]
      : undefined;
  return action ? formatHelp(action) : formatGroupHelp(group);
}

// ── The main bundle's commands ──────────────────────────────────────────────────────────────────────────────

/** `--dev`, an option of `serve` (and of `doctor`, which checks what `serve --dev` would serve). */
export const DEV_OPTION: OptionTable = {
  dev: {
    type: 'boolean',
    description:
      'serve a self-signed certificate for localhost, made once in <data dir>/tls/, and print how to trust it',
  },
};

export const VERSION_OPTION: OptionTable = {
  version: { type: 'boolean', short: 'v', description: 'print the version' },
};

/** `mcp-pa [options]`: the local server, and the overview of every command. */
export const MAIN_HELP: CommandHelp = {
  command: '',
  summary: 'a personal assistant (projects, tasks, calendar, documents, notes) for MCP clients',
  usage: [
    'mcp-pa [options]                 run the local MCP server over stdio (what MCP clients start)',
    'mcp-pa serve [--dev] [options]   serve MCP over HTTPS at /mcp (HTTP mode: PostgreSQL, or embedded PGlite)',
    'mcp-pa doctor [options]          check a deployment and print how to fix what fails',
    'mcp-pa reembed [options]         embed the items that lack vectors for the current model, with progress',
    'mcp-pa config check [options]    print the effective configuration (secrets redacted); exit 1 on errors',
    'mcp-pa config reference          print every configuration key, variable and flag (docs/configuration.md)',
    'mcp-pa import FILE [options]     import a database of the original Python mcp-pa (backs up the target first)',
    'mcp-pa users add|list|disable|enable|reset-password [USERNAME] [options]',
    "                                 HTTP mode's accounts (passwords from --password-file FILE or stdin)",
    'mcp-pa keys rotate|list [options]',
    "                                 the authorization server's signing keys",
    'mcp-pa clients add|list|remove|rotate-secret [options]',
    '                                 pre-registered OAuth clients',
    'mcp-pa audit [--since 1h] [--type T] [--tenant USER] [--limit N] [--json] | mcp-pa audit prune',
    '                                 the audit trail (newest first); prune deletes events past retention',
    "mcp-pa <command> --help          one command's options and examples",
    'mcp-pa --help | --version',
  ],
  options: VERSION_OPTION,
  notes: [
    'Settings come from, highest first: flags, environment variables (MCP_*), the JSON file, defaults.',
    'docs/configuration.md lists every key and variable; docs/http-mode.md describes HTTP mode.',
  ],
  examples: [
    'mcp-pa                                   # local mode, data in ~/.config/mcp-pa/database.sqlite',
    'mcp-pa serve --dev                       # HTTPS on https://127.0.0.1:8000/mcp with a development certificate',
    'mcp-pa doctor --config /etc/mcp-pa/config.json --http',
  ],
};

export const SERVE_HELP: CommandHelp = {
  command: 'serve',
  summary: 'serve MCP over HTTPS at /mcp (HTTP mode)',
  usage: ['mcp-pa serve [--dev] [--host HOST] [--port PORT] [--config FILE] [options]'],
  options: DEV_OPTION,
  notes: [
    'The bind address defaults to 127.0.0.1 (elsewhere needs TLS and MCP_SECRET_KEY), the port to 8000.',
    'Without --dev, TLS needs MCP_TLS_CERT and MCP_TLS_KEY (PEM files). With no MCP_DATABASE_URL, data goes to an',
    'embedded PGlite database in <data dir>/pglite (for trying out, not production). SIGHUP reloads the certificate.',
    'On a terminal, pending database migrations show their progress. `mcp-pa doctor` checks a deployment first.',
  ],
  examples: [
    'mcp-pa serve --dev',
    'MCP_DATABASE_URL=postgresql://pa@db/pa MCP_TLS_CERT=cert.pem MCP_TLS_KEY=key.pem mcp-pa serve --host 0.0.0.0',
    'mcp-pa serve --config /etc/mcp-pa/config.json',
  ],
};

export const CONFIG_CHECK_HELP: CommandHelp = {
  command: 'config check',
  summary: 'print the effective configuration (secrets redacted) and where each setting came from',
  usage: ['mcp-pa config check [--config FILE] [options]'],
  options: {},
  notes: ['Exit code 1 with every problem listed when the configuration does not load.'],
  examples: ['mcp-pa config check --config /etc/mcp-pa/config.json', 'MCP_PORT=8443 mcp-pa config check'],
};

export const CONFIG_REFERENCE_HELP: CommandHelp = {
  command: 'config reference',
  summary: 'print every configuration key, its environment variable and flag (docs/configuration.md)',
  usage: ['mcp-pa config reference'],
  options: {},
  notes: ['The global options are accepted and ignored: the reference is the same for every configuration.'],
  examples: ['mcp-pa config reference | less'],
};

export const CONFIG_HELP: GroupHelp = {
  group: 'config',
  summary: 'the configuration: check it, or print the reference of every setting',
  actions: { check: CONFIG_CHECK_HELP, reference: CONFIG_REFERENCE_HELP },
};

export const IMPORT_HELP: CommandHelp = {
  command: 'import',
  summary: 'import a database of the original Python mcp-pa into local mode (backs up the target first)',
  usage: ['mcp-pa import FILE [--db TARGET] [--config FILE] [options]'],
  options: {},
  notes: [
    "FILE is the original program's SQLite database; the target is local mode's database (--db, MCP_DATABASE_PATH).",
    'Records already imported are skipped. On a terminal it shows `importing: n/total`; the report is JSON.',
  ],
  examples: [
    'mcp-pa import ~/old/database.sqlite',
    'mcp-pa import old.sqlite --db ~/.config/mcp-pa/database.sqlite',
  ],
};

/** The commands of the main bundle (src/cli.ts), each with its help. */
export const MAIN_COMMAND_HELP: Readonly<Record<'serve' | 'config' | 'import', CommandHelp | GroupHelp>> = {
  serve: SERVE_HELP,
  config: CONFIG_HELP,
  import: IMPORT_HELP,
};

/** The options the main bundle's parser accepts for any command (each command then allows its own only). */
export const CLI_OPTIONS: OptionTable = {
  ...GLOBAL_OPTIONS,
  ...DEV_OPTION,
  ...HELP_OPTION,
  ...VERSION_OPTION,
};

/** The options each main-bundle command allows, besides the global ones and --help. */
export function mainCommandOptions(command: string | undefined): OptionTable {
  switch (command) {
    case undefined:
      return MAIN_HELP.options;
    case 'serve':
      return SERVE_HELP.options;
    default:
      return {};
  }
}

function mainHelp(version: string): string {
  return formatHelp(MAIN_HELP).replace(/^mcp-pa —/, `mcp-pa ${version} —`);
}

/** The help of a main-bundle command line (`mcp-pa serve --help`, `mcp-pa config check --help`). */
export function mainHelpFor(positionals: readonly string[], version: string): string {
  const [command, action] = positionals;
  switch (command) {
    case undefined:
      return mainHelp(version);
    case 'serve':
      return formatHelp(SERVE_HELP);
    case 'import':
      return formatHelp(IMPORT_HELP);
    case 'config': {
      const one =
        action !== undefined && Object.hasOwn(CONFIG_HELP.actions, action)
          ? CONFIG_HELP.actions[action]
          : undefined;
      return one ? formatHelp(one) : formatGroupHelp(CONFIG_HELP);
    }
    default:
      return mainHelp(version);
  }
}
