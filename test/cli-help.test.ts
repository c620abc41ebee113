/**
 * Every command's help, from the built CLI: `--help` exits 0 on standard output with the same layout (Usage /
 * Options / Examples), and names every option the command accepts. The accepted options are taken from the code:
 * the option tables the parsers are built from (src/admin/help.ts for the main bundle, each admin module's *_HELP),
 * and the test checks both that the parsers really are built from them (no option object written inline in a
 * parser call) and, by running each command with each option, that the parser accepts exactly those. Usage errors
 * name the command's help. README's "## Commands" block must list every command.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_HELP } from '../src/admin/index.js';
import {
  GLOBAL_OPTIONS,
  MAIN_COMMAND_HELP,
  MAIN_HELP,
  type CommandHelp,
  type GroupHelp,
  type OptionTable,
} from '../src/admin/help.js';
import { CLI, ROOT, tempDir } from './support/helpers.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let home: { dir: string; cleanup: () => void };

beforeAll(() => {
  home = tempDir('mcp-pa-help-');
});
afterAll(() => home.cleanup());

/**
 * The built CLI with a database that refuses connections at once (port 1), so a command whose options parse
 * fails fast afterwards instead of doing anything.
 */
function cli(args: readonly string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: home.dir,
    input: '',
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: home.dir,
      MCP_DATA_DIR: home.dir,
      MCP_DATABASE_TYPE: 'postgresql',
      MCP_DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
      MCP_OAUTH_ISSUER: 'https://127.0.0.1:1',
    },
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function isGroup(help: CommandHelp | GroupHelp): help is GroupHelp {
  return 'actions' in help;
}

/** Every option of a table as written on the command line (`--name`, and `-x` for a short form). */
function flagsOf(table: OptionTable): string[] {
  return Object.entries(table).flatMap(([name, o]) => [
    `--${name}`,
    ...(o.short !== undefined ? [`-${o.short}`] : []),
  ]);
}

/** Asserts the help's layout and that it names each option of `tables` (plus --help and the global options). */
function expectHelp(r: Run, title: string, tables: readonly OptionTable[], globals: boolean): void {
  expect(r.stderr, title).toBe('');
  expect(r.code, title).toBe(0);
  expect(r.stdout.startsWith(title), `${title}: first line is ${r.stdout.split('\n')[0]}`).toBe(true);
  for (const heading of ['\nUsage:\n', '\nOptions:\n', '\nExamples:\n'])
    expect(r.stdout, title).toContain(heading);
  expect(r.stdout, title).toMatch(/^ {2}-h, --help +\S/m);
  const sections = r.stdout.split(/\n(?=[A-Z][a-z ()]*:\n)/);
  const options = sections.find((s) => s.startsWith('Options:')) ?? '';
  for (const table of tables) {
    for (const [name, o] of Object.entries(table)) {
      const label = `--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
      expect(options, `${title} lists ${label}`).toMatch(
        new RegExp(`^ {2}(-\\w, | {4})${escape(label)} +\\S`, 'm'),
      );
    }
  }
  const global = sections.find((s) => s.startsWith('Global options')) ?? '';
  if (globals)
    for (const flag of flagsOf(GLOBAL_OPTIONS)) expect(global, `${title} lists ${flag}`).toContain(flag);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every command and action, with the command line asking for its help and the options it takes. */
interface HelpCase {
  readonly words: readonly string[];
  readonly title: string;
  readonly tables: readonly OptionTable[];
  readonly globals: boolean;
}

function cases(): HelpCase[] {
  const all: HelpCase[] = [
    { words: [], title: 'mcp-pa 0.1.0 — ', tables: [MAIN_HELP.options], globals: true },
  ];
  const groups: [string, CommandHelp | GroupHelp][] = [
    ...Object.entries(MAIN_COMMAND_HELP),
    ...Object.entries(ADMIN_HELP),
  ];
  for (const [name, help] of groups) {
    if (!isGroup(help)) {
      all.push({
        words: [name],
        title: `mcp-pa ${name} — `,
        tables: [help.options],
        globals: help.globalOptions !== false,
      });
      continue;
    }
    const actions = Object.entries(help.actions) as [string, CommandHelp][];
    all.push({
      words: [name],
      title: `mcp-pa ${name} — `,
      tables: actions.map(([, a]) => a.options),
      globals: true,
    });
    for (const [action, a] of actions) {
      if (action === help.defaultAction) continue;
      all.push({
        words: [name, action],
        title: `mcp-pa ${name} ${action} — `,
        tables: [a.options],
        globals: a.globalOptions !== false,
      });
    }
  }
  return all;
}

describe('every command has a complete help', () => {
  it('covers the commands of both bundles', () => {
    const words = cases().map((c) => c.words.join(' '));
    for (const expected of [
      '',
      'serve',
      'config check',
      'config reference',
      'import',
      'users add',
      'keys rotate',
      'clients add',
      'audit',
      'audit prune',
      'doctor',
      'reembed',
    ]) {
      expect(words).toContain(expected);
    }
  });

  for (const c of cases()) {
    it(`mcp-pa ${[...c.words, '--help'].join(' ')}`, () => {
      expectHelp(cli([...c.words, '--help']), c.title, c.tables, c.globals);
    });
  }

  it('-h, `--help` before the command and `help ACTION` ask for the same help', () => {
    const add = cli(['users', 'add', '--help']);
    expect(cli(['users', 'add', '-h']).stdout).toBe(add.stdout);
    expect(cli(['--help', 'users', 'add']).stdout).toBe(add.stdout);
    expect(cli(['users', 'help', 'add']).stdout).toBe(add.stdout);
    expect(cli(['--help', 'serve']).stdout).toBe(cli(['serve', '--help']).stdout);
    expect(cli(['config', 'check', '-h']).stdout).toBe(cli(['config', 'check', '--help']).stdout);
  });

  it('help needs no valid configuration', () => {
    const r = spawnSync(process.execPath, [CLI, 'users', 'list', '--help'], {
      encoding: 'utf8',
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: home.dir,
        MCP_TIMEZONE: 'Nowhere/Bogus',
        MCP_PORT: 'eighty',
      },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^mcp-pa users list — /);
  });

  it('the main help names every command', () => {
    const main = cli(['--help']).stdout;
    for (const name of [...Object.keys(MAIN_COMMAND_HELP), ...Object.keys(ADMIN_HELP)]) {
      expect(main).toMatch(new RegExp(`^ {2}mcp-pa ${name}\\b`, 'm'));
    }
  });
});

describe('the parsers are built from the option tables the help shows', () => {
  /** Calls of the option parsers in the CLI's and the admin commands' source, with their options argument. */
  function parserCalls(): { file: string; line: number; options: ts.Expression | undefined; text: string }[] {
    const files = [
      path.join(ROOT, 'src/cli.ts'),
      ...readdirSync(path.join(ROOT, 'src/admin'))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => path.join(ROOT, 'src/admin', f)),
    ];
    const found: { file: string; line: number; options: ts.Expression | undefined; text: string }[] = [];
    for (const file of files) {
      const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
          const callee = node.expression.text;
          let options: ts.Expression | undefined;
          if (callee === 'parseArgs') {
            const arg = node.arguments[0];
            if (arg !== undefined && ts.isObjectLiteralExpression(arg)) {
              const prop = arg.properties.find(
                (p) => p.name !== undefined && p.name.getText(source) === 'options',
              );
              options =
                prop === undefined
                  ? undefined
                  : ts.isPropertyAssignment(prop)
                    ? prop.initializer
                    : ts.isShorthandPropertyAssignment(prop)
                      ? prop.name
                      : undefined;
            }
          } else if ((callee === 'parseOptions' || callee === 'parse') && node.arguments.length > 1) {
            // A wrapper given its options (a wrapper taking none, like src/cli.ts's parse, is checked inside).
            options = node.arguments[1];
          } else {
            ts.forEachChild(node, visit);
            return;
          }
          const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
          found.push({
            file: path.relative(ROOT, file),
            line: line + 1,
            options,
            text: node.getText(source),
          });
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    return found;
  }

  it('no parser call writes its options inline: each takes a help table (or passes its parameter on)', () => {
    const calls = parserCalls();
    expect(calls.length).toBeGreaterThanOrEqual(10);
    for (const call of calls) {
      const where = `${call.file}:${call.line}: ${call.text.slice(0, 120)}`;
      expect(call.options, where).toBeDefined();
      const options = call.options as ts.Expression;
      const fromTable =
        (ts.isCallExpression(options) && options.expression.getText() === 'parserOptions') ||
        (ts.isPropertyAccessExpression(options) && options.name.text === 'options') ||
        (ts.isIdentifier(options) && ['options', 'table'].includes(options.text));
      expect(fromTable, where).toBe(true);
    }
  });

  /** Command lines running each admin command with one of its options (and what else it needs to parse). */
  function optionRuns(): { args: string[]; option: string }[] {
    const runs: { args: string[]; option: string }[] = [];
    for (const [group, help] of Object.entries(ADMIN_HELP)) {
      const actions: [string | null, CommandHelp][] = isGroup(help)
        ? (Object.entries(help.actions) as [string, CommandHelp][]).map(([a, h]) => [
            a === help.defaultAction ? null : a,
            h,
          ])
        : [[null, help]];
      for (const [action, h] of actions) {
        for (const [name, o] of Object.entries(h.options)) {
          const words = [group, ...(action !== null ? [action] : [])];
          runs.push({
            args: [...words, `--${name}`, ...(o.type === 'string' ? ['x'] : [])],
            option: `--${name}`,
          });
        }
        const words = [group, ...(action !== null ? [action] : [])];
        runs.push({ args: [...words, '--no-such-option'], option: '--no-such-option' });
      }
    }
    return runs;
  }

  it('each admin command accepts the options of its table and refuses others, naming its help', () => {
    for (const { args, option } of optionRuns()) {
      const r = cli(args);
      const what = args.join(' ');
      if (option === '--no-such-option') {
        expect(r.code, what).toBe(2);
        expect(r.stderr, what).toContain("Unknown option '--no-such-option'");
        const [group, action] = args;
        const help = ADMIN_HELP[group as string];
        const named =
          help !== undefined && isGroup(help) && action !== undefined && Object.hasOwn(help.actions, action)
            ? `mcp-pa ${group} ${action} --help`
            : `mcp-pa ${group} --help`;
        expect(r.stderr, what).toContain(`Run ${named}`);
      } else {
        expect(r.stderr, what).not.toContain('Unknown option');
        expect(r.stderr, what).not.toMatch(/unexpected argument "x"/);
      }
    }
  });

  it('the main bundle accepts each command’s options (here with --help) and refuses others, naming the help', () => {
    for (const [name, help] of Object.entries(MAIN_COMMAND_HELP)) {
      const tables = isGroup(help)
        ? Object.values(help.actions).map((a: CommandHelp) => a.options)
        : [help.options];
      for (const table of tables) {
        for (const [option, o] of Object.entries(table)) {
          const r = cli([name, `--${option}`, ...(o.type === 'string' ? ['x'] : []), '--help']);
          expect(r.code, `${name} --${option}`).toBe(0);
        }
      }
      const refused = cli([name, '--no-such-option']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("Unknown option '--no-such-option'");
      expect(refused.stderr).toContain(`Run mcp-pa ${name} --help for its options.`);
    }
    for (const [option, o] of Object.entries(GLOBAL_OPTIONS)) {
      const r = cli(['config', 'reference', `--${option}`, ...(o.type === 'string' ? ['x'] : []), '--help']);
      expect(r.code, `--${option}`).toBe(0);
    }
  });

  it('an option of another command, an unknown command and a bad command line name the help', () => {
    const dev = cli(['import', 'x.sqlite', '--dev']);
    expect(dev.code).toBe(2);
    expect(dev.stderr).toContain('--dev belongs to `mcp-pa serve`');
    expect(dev.stderr).toContain('Run mcp-pa import --help for its options.');
    const unknown = cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(unknown.stderr).toContain('Run mcp-pa --help');
    const config = cli(['config', 'frob']);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('Run mcp-pa config --help');
    const missing = cli(['users']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('Run mcp-pa users --help');
    const arity = cli(['users', 'disable']);
    expect(arity.code).toBe(2);
    expect(arity.stderr).toContain('Run mcp-pa users disable --help for its options.');
  });
});

describe("README's Commands block", () => {
  it('lists every command and every action of every group', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('\n## Commands\n');
    expect(start).toBeGreaterThan(-1);
    const end = readme.indexOf('\n## ', start + 1);
    const block = readme.slice(start, end === -1 ? undefined : end);
    const groups: [string, CommandHelp | GroupHelp][] = [
      ...Object.entries(MAIN_COMMAND_HELP),
      ...Object.entries(ADMIN_HELP),
    ];
    for (const [name, help] of groups) {
      expect(block, `README lists mcp-pa ${name}`).toMatch(new RegExp(`mcp-pa ${name}\\b`));
      if (!isGroup(help)) continue;
      for (const action of Object.keys(help.actions)) {
        if (action === help.defaultAction) continue;
        // `mcp-pa users add|list|…` or `mcp-pa config check` each count.
        expect(block, `README lists mcp-pa ${name} ${action}`).toMatch(
          new RegExp(`mcp-pa ${name} (?:[\\w-]+[|/])*${escape(action)}\\b`),
        );
      }
    }
  });
});
