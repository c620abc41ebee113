/**
 * No SQL is assembled from strings in src/: every value reaches the database as a bound parameter ($n for
 * PostgreSQL, ? for SQLite). This test parses every .ts file under src/ with the TypeScript compiler and finds
 *
 *   - template literals that are SQL — they contain an SQL keyword (SELECT, INSERT, UPDATE, DELETE, WHERE, FROM,
 *     VALUES, ORDER BY in capitals, or lower-case SQL shapes such as `select … from`, `delete from`), or, in a file
 *     that runs SQL, an interpolation placed where SQL expects a value (after =, <, >, LIKE, IN (, ANY (, &&, or
 *     between single quotes) — and checks each of their `${…}` interpolations;
 *   - string concatenations (`+`, `+=`) in which a string literal with an SQL keyword meets anything that is not a
 *     literal.
 *
 * An interpolation passes when it is a positional placeholder (`$${n}`, a number, as in `$${params.length}`) or when
 * the (file, expression) pair is on the allow-list below, each with the reason it cannot carry user input. Anything
 * else fails with file:line and the expression, so `WHERE id = '${id}'` cannot slip in. Allow-list entries that no
 * longer occur fail too, so the list stays exact.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/helpers.js';

interface Allowed {
  /** Path under the repository root, with forward slashes. */
  readonly file: string;
  /** The interpolated expression, whitespace collapsed (a RegExp for long ones, anchored). */
  readonly expr: string | RegExp;
  /** Why this cannot carry user input. */
  readonly why: string;
}

const PG_STORE = 'src/storage/postgres/postgres-store.ts';
const PG_SCHEMA = 'src/storage/postgres/schema.ts';
const SQLITE_STORE = 'src/storage/sqlite/sqlite-store.ts';
const AUDIT = 'src/security/audit.ts';
const KEYS = 'src/auth/keys.ts';
const ACCOUNTS = 'src/auth/accounts.ts';

const ALLOWED: readonly Allowed[] = [
  // ---------------------------------------------------------------- the authorization server's state
  {
    file: 'src/admin/clients.ts',
    expr: 'grants',
    why: 'a constant subquery text; its client id is the bound $1',
  },
  { file: ACCOUNTS, expr: 'grants', why: 'a constant subquery text; its account id is the bound $1' },
  { file: ACCOUNTS, expr: 'ACCOUNT_COLUMNS', why: 'a constant column list' },
  { file: KEYS, expr: "iso('created_at', ISO_MS)", why: 'to_char of a fixed column with a constant format' },
  { file: KEYS, expr: "iso('retire_at', ISO_US)", why: 'to_char of a fixed column with a constant format' },
  { file: KEYS, expr: "iso('retire_at', ISO_MS)", why: 'to_char of a fixed column with a constant format' },
  { file: KEYS, expr: 'LIVE', why: 'a constant predicate (retire_at IS NULL OR retire_at > now())' },
  { file: KEYS, expr: 'KEYS_LOCK', why: 'a constant advisory-lock key' },
  {
    file: 'src/auth/oidc-adapter.ts',
    expr: 'column',
    why: "findWhere's column is the closed union 'id' | 'user_code' | 'uid', chosen by the code",
  },
  // ---------------------------------------------------------------- the audit log
  { file: AUDIT, expr: 'AUDIT_PRUNE_SETTING', why: 'a constant setting name' },
  { file: AUDIT, expr: "values.join(', ')", why: 'row tuples made only of $n placeholders' },
  {
    file: AUDIT,
    expr: "where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''",
    why: 'conditions made only of constant text and $n placeholders',
  },
  {
    file: AUDIT,
    expr: "where.join(' AND ')",
    why: 'conditions made only of constant text and $n placeholders',
  },
  // ---------------------------------------------------------------- the PostgreSQL store
  { file: PG_STORE, expr: /^p\.add\(/, why: 'Params.add binds the value and returns its $n placeholder' },
  {
    file: PG_STORE,
    expr: 'NO_DATE_KEY',
    why: 'a constant of storage/model (a start-up self-check, not a query)',
  },
  { file: PG_STORE, expr: 'ITEM_COLUMNS', why: 'a constant column list' },
  { file: PG_STORE, expr: 'TENANT_SETTING', why: 'a constant setting name of the schema' },
  { file: PG_STORE, expr: 'cast', why: "vectorCast(dims): 'vector(N)' or 'halfvec(N)' for an integer N" },
  { file: PG_STORE, expr: 'dims', why: 'a number (the embedding dimensions), never text' },
  {
    file: PG_STORE,
    expr: "withKinds ? ' AND i.kind = ANY ($5::text[])' : ''",
    why: 'one of two constant texts; the kinds are the bound $5',
  },
  {
    file: PG_STORE,
    expr: "sets.join(', ')",
    why: 'set_config calls whose names and values are $n placeholders',
  },
  {
    file: PG_STORE,
    expr: "where.join(' AND ')",
    why: 'conditions made only of constant text and $n placeholders',
  },
  { file: PG_STORE, expr: 'order', why: 'one of the constant orderings of a switch over the closed q.order' },
  // ---------------------------------------------------------------- the PostgreSQL schema (DDL of constants)
  { file: PG_SCHEMA, expr: 'TENANT_SETTING', why: 'a constant setting name' },
  { file: PG_SCHEMA, expr: 'TENANT_PREDICATE', why: 'a constant row-level-security predicate' },
  { file: PG_SCHEMA, expr: 'TS_CONFIG', why: 'a constant text-search configuration name' },
  {
    file: PG_SCHEMA,
    expr: 'separatorsLiteral()',
    why: 'the constant SEPARATORS, dollar-quoted, quoting self-checked',
  },
  { file: PG_SCHEMA, expr: 'SEPARATOR_SPACES', why: 'constant spaces, as many as SEPARATORS' },
  { file: PG_SCHEMA, expr: 'INDEXED_BODY_CHARS', why: 'a constant number' },
  {
    file: PG_SCHEMA,
    expr: /^TENANT_TABLES\.map\(/,
    why: 'DDL for each constant table name (the inner template is checked by itself)',
  },
  { file: PG_SCHEMA, expr: 't', why: 'an element of the constant TENANT_TABLES' },
  { file: PG_SCHEMA, expr: 'APP_ROLE', why: 'a constant role name' },
  { file: PG_SCHEMA, expr: 'DEFINER_ROLE', why: 'a constant role name' },
  { file: PG_SCHEMA, expr: 'AUDIT_PRUNE_SETTING', why: 'a constant setting name' },
  { file: PG_SCHEMA, expr: 'MIGRATION_LOCK', why: 'a constant advisory-lock key' },
  {
    file: PG_SCHEMA,
    expr: 'expr.indexName',
    why: 'vectorExpression of integer dimensions (checked 1–16000)',
  },
  { file: PG_SCHEMA, expr: 'expr.cast', why: 'vectorExpression of integer dimensions (checked 1–16000)' },
  { file: PG_SCHEMA, expr: 'expr.ops', why: 'one of two constant operator classes' },
  { file: PG_SCHEMA, expr: 'd', why: 'the integer vector dimensions, checked by vectorExpression' },
  // ---------------------------------------------------------------- the SQLite store
  { file: 'src/storage/sqlite/legacy.ts', expr: 'table', why: 'an element of the constant LEGACY_TABLES' },
  {
    file: SQLITE_STORE,
    expr: 'table',
    why: "addSharedFilters' table alias, 'items' or 'i' from the callers",
  },
  { file: SQLITE_STORE, expr: 'ITEM_COLUMNS', why: 'a constant column list' },
  {
    file: SQLITE_STORE,
    expr: "ITEM_COLUMNS.split(', ') .map((c) => `i.${c}`) .join(', ')",
    why: 'the constant column list, each prefixed with i.',
  },
  { file: SQLITE_STORE, expr: 'NO_DATE_KEY', why: 'a constant of storage/model' },
  {
    file: SQLITE_STORE,
    expr: "where.join(' AND ')",
    why: 'conditions made only of constant text and ? placeholders',
  },
  { file: SQLITE_STORE, expr: 'filter', why: "where.join(' AND ') of constant text and ? placeholders" },
  {
    file: SQLITE_STORE,
    expr: 'order',
    why: 'one of the constant orderings of a switch over the closed q.order',
  },
];

// ------------------------------------------------------------------------------------------------ the scanner

/** SQL keywords in capitals, as this code base writes SQL. */
const SQL_KEYWORD = /\b(?:SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|VALUES|ORDER BY)\b/;
/** SQL written in lower case: whole shapes only, so that prose ("from 1 to 10") does not count. */
const SQL_SHAPE =
  /\bselect\s+(?:distinct\s+)?[\w.*,\s()]+?\s+from\s+\w|\binsert\s+into\s+\w|\bdelete\s+from\s+\w|\bupdate\s+\w+\s+set\s+\w|\border\s+by\s+\w|\bwhere\s+\w+(?:\.\w+)?\s*(?:=|<>|!=|<|>|\bin\b|\blike\b|\bis\b)/i;
/** Text just before an interpolation that SQL reads as a value position. */
const VALUE_POSITION =
  /(?:(?:^|\s|\()(?:=|<>|!=|<=|>=|<|>|&&|@@|\|\||LIKE|ILIKE|NOT LIKE)\s*|\b(?:IN|ANY|ALL)\s*\(\s*|\bIS(?: NOT)?\s+|\bLIMIT\s+|\bOFFSET\s+)$/;
/** A file that runs SQL: calls query/prepare/exec on a database handle (not RegExp#exec). */
const RUNS_SQL = /\b(?:sql|db|tx|client|pool|driver)\.(?:query|prepare|exec)\s*(?:<[^>]*>)?\s*\(/;
/** The expression of a positional placeholder `$${…}`: a number (a name, a property, simple arithmetic). */
const PLACEHOLDER_EXPR = /^[\w.]+(?:\s*[-+]\s*[\w.]+)*$/;

export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly expr: string;
  readonly kind: 'template' | 'concatenation';
}

const normalize = (text: string): string => text.replace(/\s+/g, ' ').trim();

function isSqlText(text: string): boolean {
  return SQL_KEYWORD.test(text) || SQL_SHAPE.test(text);
}

function isLiteral(node: ts.Expression): boolean {
  return ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isNumericLiteral(node);
}

/** The operands of a chain of `+` (a + b + c → [a, b, c]), parentheses looked through. */
function plusOperands(node: ts.Expression): ts.Expression[] {
  const inner = ts.isParenthesizedExpression(node) ? node.expression : node;
  if (ts.isBinaryExpression(inner) && inner.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    return [...plusOperands(inner.left), ...plusOperands(inner.right)];
  }
  return [inner];
}

/** Whether a `+` expression is an operand of a larger `+` chain or the right side of a `+=`. */
function insideChain(node: ts.Expression): boolean {
  let parent = node.parent;
  while (ts.isParenthesizedExpression(parent)) parent = parent.parent;
  return (
    ts.isBinaryExpression(parent) &&
    (parent.operatorToken.kind === ts.SyntaxKind.PlusToken ||
      parent.operatorToken.kind === ts.SyntaxKind.PlusEqualsToken)
  );
}

/** Every interpolation or concatenated operand of SQL text in one source file, before the allow-list. */
export function scanSource(file: string, text: string): Finding[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const runsSql = RUNS_SQL.test(text);
  const found: Finding[] = [];
  const lineOf = (node: ts.Node): number => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;

  const visit = (node: ts.Node): void => {
    if (ts.isTemplateExpression(node)) {
      const literals = [node.head.text, ...node.templateSpans.map((s) => s.literal.text)];
      const valueSlot = node.templateSpans.some((_, i) => {
        const before = literals[i] as string;
        const after = literals[i + 1] as string;
        return (
          VALUE_POSITION.test(before) ||
          (before.endsWith("'") && after.startsWith("'")) ||
          (before.endsWith('"') &&
            after.startsWith('"') &&
            /\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+"$/.test(before))
        );
      });
      if (isSqlText(literals.join(' ')) || (runsSql && valueSlot)) {
        node.templateSpans.forEach((span, i) => {
          const expr = normalize(span.expression.getText(sf));
          const placeholder = (literals[i] as string).endsWith('$') && PLACEHOLDER_EXPR.test(expr);
          if (!placeholder) found.push({ file, line: lineOf(span.expression), expr, kind: 'template' });
        });
      }
    }
    if (
      ts.isBinaryExpression(node) &&
      (node.operatorToken.kind === ts.SyntaxKind.PlusToken ||
        node.operatorToken.kind === ts.SyntaxKind.PlusEqualsToken) &&
      // The outermost `+` of a chain only (its operands are collected below).
      !(node.operatorToken.kind === ts.SyntaxKind.PlusToken && insideChain(node))
    ) {
      const operands =
        node.operatorToken.kind === ts.SyntaxKind.PlusEqualsToken
          ? [node.left, ...plusOperands(node.right)]
          : plusOperands(node);
      const text = (o: ts.Expression): string | null =>
        ts.isStringLiteral(o) || ts.isNoSubstitutionTemplateLiteral(o) ? o.text : null;
      const sql = operands.some((o, i) => {
        const t = text(o);
        if (t === null) return false;
        const next = operands[i + 1];
        const valueSlot =
          runsSql && next !== undefined && !isLiteral(next) && (VALUE_POSITION.test(t) || t.endsWith("'"));
        return isSqlText(t) || valueSlot;
      });
      if (sql) {
        // With +=, the left side is the text being built, not a value put into it.
        const values =
          node.operatorToken.kind === ts.SyntaxKind.PlusEqualsToken ? operands.slice(1) : operands;
        for (const o of values) {
          if (!isLiteral(o))
            found.push({ file, line: lineOf(o), expr: normalize(o.getText(sf)), kind: 'concatenation' });
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (entry.isFile() && entry.name.endsWith('.ts')) out.push(full);
  }
  return out.sort();
}

function allows(entry: Allowed, f: Finding): boolean {
  if (entry.file !== f.file) return false;
  return typeof entry.expr === 'string' ? entry.expr === f.expr : entry.expr.test(f.expr);
}

// ------------------------------------------------------------------------------------------------ the tests

describe('no SQL assembled from strings in src/', () => {
  const files = sourceFiles(path.join(ROOT, 'src'));
  const findings = files.flatMap((full) =>
    scanSource(path.relative(ROOT, full).split(path.sep).join('/'), readFileSync(full, 'utf8')),
  );

  it('scans the real source tree (the stores and the schema are among the files)', () => {
    const names = new Set(findings.map((f) => f.file));
    expect(files.length).toBeGreaterThan(50);
    expect(names).toContain('src/storage/postgres/postgres-store.ts');
    expect(names).toContain('src/storage/sqlite/sqlite-store.ts');
  });

  it('every interpolation into SQL is a $n placeholder or an allow-listed constant', () => {
    const unlisted = findings.filter((f) => !ALLOWED.some((a) => allows(a, f)));
    expect(
      unlisted.map((f) => `${f.file}:${f.line}: ${f.kind} \${${f.expr}}`),
      'SQL built from a value that is not a bound parameter: pass it as $n / ? instead, or, if it is a constant of the code, add it to ALLOWED with the reason',
    ).toEqual([]);
  });

  it('every allow-list entry still occurs (the list stays exact)', () => {
    const stale = ALLOWED.filter((a) => !findings.some((f) => allows(a, f)));
    expect(
      stale.map((a) => `${a.file}: ${String(a.expr)}`),
      'allow-list entries that match nothing any more: remove them',
    ).toEqual([]);
  });

  it('the scanner catches the classic mistakes and lets placeholders through', () => {
    const probe = [
      'declare const sql: { query(t: string, p?: unknown[]): void };',
      'declare const id: string, title: string, where: string[], params: unknown[], t: string;',
      "sql.query(`SELECT * FROM items WHERE id = '${id}'`);", // 3
      "sql.query('SELECT * FROM items WHERE title = ' + title);", // 4
      "where.push(`title = '${title}'`);", // 5
      'where.push(`title = ${title}`);', // 6
      'sql.query(`select id from items where id = ${id}`);', // 7
      "let q = 'SELECT 1'; q += ' AND id = ' + id;", // 8
      'where.push(`id = $${params.length}`);', // 9: a placeholder, fine
      'sql.query(`SELECT 1 FROM items WHERE id = $1`, [id]);', // 10: nothing interpolated
      'const message = `expected a number from 1 to ${t}`;', // 11: prose
      "sql.query('SELECT * FROM t WHERE a = ' + (title + 'x'));", // 12: one finding, not two
    ].join('\n');
    const got = scanSource('probe.ts', probe).map((f) => `${f.line}:${f.kind}:${f.expr}`);
    expect(got).toEqual([
      '3:template:id',
      '4:concatenation:title',
      '5:template:title',
      '6:template:title',
      '7:template:id',
      '8:concatenation:id',
      '12:concatenation:title',
    ]);
  });
});
