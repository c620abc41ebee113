/**
 * docs/architecture.md states the layer rules of src/ as a table ("Layer rules") and says that only src/config/
 * reads the environment, enforced by ESLint. This test holds the page to the code: every import of every
 * src/**\/*.ts file must be one the table lists, every entry the table lists must still be used, and ESLint's
 * effective configuration must enforce the environment rule exactly where the page says it does.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/helpers.js';

const PAGE = path.join(ROOT, 'docs/architecture.md');
const SRC = path.join(ROOT, 'src');

/** A row of the table: the modules it is about, and what they may import. Paths are relative to the repository. */
interface Rule {
  readonly subjects: readonly string[];
  readonly targets: readonly string[];
  readonly line: string;
}

/** Every path a table entry names: `src/x/` is a folder (everything under it), anything else one file. */
function covers(entry: string, file: string): boolean {
  return entry.endsWith('/') ? file.startsWith(entry) : file === entry;
}

function codeSpans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
}

/** The "Layer rules" table of the page. */
function parseLayerTable(markdown: string): Rule[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{2,4} Layer rules\s*$/.test(l));
  if (start === -1) throw new Error('docs/architecture.md has no "Layer rules" heading');
  let i = start + 1;
  while (i < lines.length && !(lines[i] as string).startsWith('|')) i++;
  const rules: Rule[] = [];
  for (; i < lines.length && (lines[i] as string).startsWith('|'); i++) {
    const line = lines[i] as string;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (cells.length < 2 || /^-+$/.test((cells[0] as string).replace(/[:\s]/g, ''))) continue;
    const subjects = codeSpans(cells[0] as string);
    if (subjects.length === 0) continue; // the header row
    const targetCell = cells[1] as string;
    const targets = codeSpans(targetCell);
    if (targets.length === 0 && targetCell !== '—') {
      throw new Error(`a row of the layer table names no import and is not "—": ${line}`);
    }
    rules.push({ subjects, targets, line });
  }
  return rules;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out.sort();
}

const rel = (file: string): string => path.relative(ROOT, file).split(path.sep).join('/');

/** `../x.js` from a source file → the .ts file it means (or a folder's index.ts); null when none exists. */
function resolveRelative(from: string, specifier: string): string | null {
  const base = path.resolve(path.dirname(from), specifier).replace(/\.(js|mjs|cjs|ts)$/, '');
  for (const candidate of [`${base}.ts`, `${base}.d.ts`, path.join(base, 'index.ts')]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/**
 * Every module specifier of a file: static imports and re-exports (type-only ones included), dynamic import() of a
 * literal, and `new URL('./x.js', import.meta.url)` handed to import() (how src/cli.ts loads its lazy bundles).
 */
function importsOf(text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  const specifiers = info.importedFiles.map((f) => f.fileName);
  for (const m of text.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)) {
    specifiers.push(m[1] as string);
  }
  return specifiers;
}

interface Edge {
  readonly from: string;
  readonly to: string;
}

function importGraph(): { files: string[]; edges: Edge[]; unresolved: string[] } {
  const files = sourceFiles(SRC);
  const edges: Edge[] = [];
  const unresolved: string[] = [];
  for (const file of files) {
    for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
      if (!specifier.startsWith('.')) continue; // a package or a node: built-in
      const target = resolveRelative(file, specifier);
      if (target === null) unresolved.push(`${rel(file)} → ${specifier}`);
      else edges.push({ from: rel(file), to: rel(target) });
    }
  }
  return { files: files.map(rel), edges, unresolved };
}

describe('docs/architecture.md: the layer rules are the real import graph of src/', () => {
  const rules = parseLayerTable(readFileSync(PAGE, 'utf8'));
  const { files, edges, unresolved } = importGraph();
  const ruleOf = (file: string): Rule[] => rules.filter((r) => r.subjects.some((s) => covers(s, file)));

  it('the table has a row for every layer and names only paths that exist', () => {
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const rule of rules) {
      for (const entry of [...rule.subjects, ...rule.targets]) {
        expect(entry, rule.line).toMatch(/^src\//);
        expect(existsSync(path.join(ROOT, entry)), `${entry} (in: ${rule.line})`).toBe(true);
      }
    }
  });

  it('every source file belongs to exactly one row', () => {
    expect(files.length).toBeGreaterThan(50);
    const problems = files.flatMap((f) => {
      const n = ruleOf(f).length;
      return n === 1 ? [] : [`${f}: ${n === 0 ? 'in no row' : `in ${n} rows`}`];
    });
    expect(problems).toEqual([]);
  });

  it('every relative import resolves to a source file (so no edge is missed)', () => {
    expect(unresolved).toEqual([]);
    expect(edges.length).toBeGreaterThan(100);
  });

  it('every import between modules is one the table lists', () => {
    const violations: string[] = [];
    for (const edge of edges) {
      const [rule] = ruleOf(edge.from);
      if (rule === undefined) continue; // reported above
      if (rule.subjects.some((s) => covers(s, edge.to))) continue; // inside its own module
      if (!rule.targets.some((t) => covers(t, edge.to))) {
        violations.push(
          `${edge.from} imports ${edge.to}, which the row "${rule.subjects.join(', ')}" does not list`,
        );
      }
    }
    expect(violations).toEqual([]);
  });

  it('every entry of the table is still used by an import (the page lists no stale allowance)', () => {
    const stale: string[] = [];
    for (const rule of rules) {
      for (const target of rule.targets) {
        const used = edges.some(
          (e) =>
            rule.subjects.some((s) => covers(s, e.from)) &&
            !rule.subjects.some((s) => covers(s, e.to)) &&
            covers(target, e.to),
        );
        if (!used) stale.push(`${rule.subjects.join(', ')} → ${target}`);
      }
    }
    expect(stale).toEqual([]);
  });

  it('the statements the page makes in words follow from the imports', () => {
    const importsFrom = (from: string, to: string): string[] =>
      edges.filter((e) => e.from.startsWith(from) && e.to.startsWith(to)).map((e) => `${e.from} → ${e.to}`);
    for (const layer of [
      'src/servers/',
      'src/auth/',
      'src/security/',
      'src/mcp/',
      'src/admin/',
      'src/config/',
    ]) {
      expect(importsFrom('src/assistant/', layer), `assistant → ${layer}`).toEqual([]);
    }
    for (const layer of [
      'src/assistant/',
      'src/mcp/',
      'src/servers/',
      'src/auth/',
      'src/security/',
      'src/admin/',
    ]) {
      expect(importsFrom('src/storage/', layer), `storage → ${layer}`).toEqual([]);
    }
    for (const layer of ['src/servers/', 'src/auth/', 'src/security/', 'src/admin/']) {
      expect(importsFrom('src/mcp/', layer), `mcp → ${layer}`).toEqual([]);
    }
    expect(edges.filter((e) => e.from.startsWith('src/config/') && !e.to.startsWith('src/config/'))).toEqual(
      [],
    );
    expect(
      edges.filter((e) => e.from.startsWith('src/observability/') && !e.to.startsWith('src/observability/')),
    ).toEqual([]);
  });
});

/** Where the program reads the environment in ways ESLint's no-restricted-properties cannot see. */
function environmentReadsEslintMisses(file: string, text: string): string[] {
  const found: string[] = [];
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const isProcess = (e: ts.Expression): boolean =>
    (ts.isIdentifier(e) && e.text === 'process') ||
    (ts.isPropertyAccessExpression(e) && e.name.text === 'process');
  const where = (node: ts.Node): string =>
    `${rel(file)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const visit = (node: ts.Node): void => {
    if (
      ts.isImportDeclaration(node) &&
      ts.isStringLiteral(node.moduleSpecifier) &&
      /^(node:)?process$/.test(node.moduleSpecifier.text)
    ) {
      found.push(`${where(node)}: imports the process module`);
    }
    if (
      ts.isPropertyAccessExpression(node) &&
      node.name.text === 'env' &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === 'process'
    ) {
      found.push(`${where(node)}: globalThis.process.env`);
    }
    if (
      ts.isElementAccessExpression(node) &&
      isProcess(node.expression) &&
      ts.isStringLiteralLike(node.argumentExpression) &&
      node.argumentExpression.text === 'env'
    ) {
      found.push(`${where(node)}: process['env']`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  if (/eslint-disable[^\n]*no-restricted-properties/.test(text)) {
    found.push(`${rel(file)}: disables no-restricted-properties`);
  }
  return found;
}

describe('docs/architecture.md: only src/config/ reads the environment, as ESLint enforces', () => {
  const page = readFileSync(PAGE, 'utf8');
  const files = sourceFiles(SRC);
  let eslint: ESLint;
  beforeAll(() => {
    eslint = new ESLint({ cwd: ROOT });
  });

  it('the page states the rule and names the ESLint rule that enforces it', () => {
    expect(page).toMatch(/Only `src\/config\/` reads the environment/);
    expect(page).toMatch(/no-restricted-properties/);
  });

  it('ESLint forbids process.env in every src/ file outside src/config/, and only there allows it', async () => {
    const wrong: string[] = [];
    for (const file of files) {
      const config = (await eslint.calculateConfigForFile(file)) as {
        rules?: Record<string, unknown>;
      };
      const rule = config.rules?.['no-restricted-properties'];
      const [severity, ...options] = Array.isArray(rule) ? rule : [rule];
      const on = severity === 2 || severity === 'error';
      const forbidsEnv = options.some(
        (o) =>
          typeof o === 'object' &&
          o !== null &&
          (o as { object?: string }).object === 'process' &&
          (o as { property?: string }).property === 'env',
      );
      const inConfig = rel(file).startsWith('src/config/');
      if (inConfig && on) wrong.push(`${rel(file)}: the rule is on in src/config/`);
      if (!inConfig && !(on && forbidsEnv)) wrong.push(`${rel(file)}: process.env is not forbidden`);
    }
    expect(wrong).toEqual([]);
  });

  it('ESLint reports the usual ways of reading process.env in a src/ file and none in src/config/', async () => {
    const probe = [
      "export const a = process.env['A'];",
      'export const b = process.env.B;',
      'const { env } = process;',
      'export const c = env;',
      '',
    ].join('\n');
    const count = async (filePath: string): Promise<number> => {
      const [result] = await eslint.lintText(probe, { filePath: path.join(ROOT, filePath) });
      return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-properties').length;
    };
    expect(await count('src/assistant/architecture-probe.ts')).toBe(3);
    expect(await count('src/config/architecture-probe.ts')).toBe(0);
  });

  it('no src/ file outside src/config/ reads the environment in a way ESLint cannot see', () => {
    const found = files
      .filter((f) => !rel(f).startsWith('src/config/'))
      .flatMap((f) => environmentReadsEslintMisses(f, readFileSync(f, 'utf8')));
    expect(found).toEqual([]);
  });

  it('the check above finds what it looks for', () => {
    const sample = [
      "import { env } from 'node:process';",
      "const x = process['env'];",
      'const y = globalThis.process.env;',
      '// eslint-disable-next-line no-restricted-properties',
      '',
    ].join('\n');
    expect(environmentReadsEslintMisses(path.join(SRC, 'assistant/sample.ts'), sample)).toHaveLength(4);
  });
});
