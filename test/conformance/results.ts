/**
 * Reading the conformance suite's results and holding them against the checked-in list of scenarios that do not apply
 * (test/conformance/not-applicable.json).
 *
 * The suite writes one folder per scenario under its output folder (`<mode>-<scenario>-<ISO time>`), each with a
 * checks.json: an array of checks whose status is SUCCESS, FAILURE, WARNING, INFO or SKIPPED. A scenario passes when
 * it has at least one SUCCESS and no FAILURE and no WARNING (the rule the suite's own --expected-failures baseline
 * applies, plus "something was checked").
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type CheckStatus = 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED';

export interface Check {
  readonly id: string;
  readonly status: CheckStatus;
  readonly errorMessage?: string;
  readonly details?: unknown;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly checks: readonly Check[];
  /** The checks.json text (for evidence searches). */
  readonly raw: string;
}

/** How a scenario that does not apply is expected to come out. */
export interface NotApplicable {
  /**
   * `fails`: the suite reports it failed (it needs a fixture mcp-pa does not have). `passes-vacuously`: the suite's
   * checks pass without looking at what they asked for (e.g. a missing tool's error result counts as "content"):
   * such a pass proves nothing, and `evidence` is text that must be in its checks.json to show it is still vacuous.
   */
  readonly outcome: 'fails' | 'passes-vacuously';
  readonly reason: string;
  readonly evidence?: string;
}

export interface NotApplicableList {
  readonly suite: string;
  readonly server: Readonly<Record<string, NotApplicable>>;
  readonly authorization: Readonly<Record<string, NotApplicable>>;
}

const LIST_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'not-applicable.json');

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function parseSection(v: unknown, where: string): Record<string, NotApplicable> {
  if (!isRecord(v)) throw new Error(`${where} must be an object`);
  const out: Record<string, NotApplicable> = {};
  for (const [name, entry] of Object.entries(v)) {
    if (!isRecord(entry)) throw new Error(`${where}.${name} must be an object`);
    const { outcome, reason, evidence } = entry;
    if (outcome !== 'fails' && outcome !== 'passes-vacuously') {
      throw new Error(`${where}.${name}.outcome must be "fails" or "passes-vacuously"`);
    }
    if (typeof reason !== 'string' || reason.trim().length < 10) {
      throw new Error(`${where}.${name}.reason must say why it does not apply`);
    }
    if (outcome === 'passes-vacuously' && (typeof evidence !== 'string' || evidence === '')) {
      throw new Error(`${where}.${name}: a vacuous pass needs its evidence text`);
    }
    out[name] = { outcome, reason, ...(typeof evidence === 'string' ? { evidence } : {}) };
  }
  return out;
}

export function loadNotApplicable(): NotApplicableList {
  const parsed: unknown = JSON.parse(readFileSync(LIST_FILE, 'utf8'));
  if (!isRecord(parsed) || typeof parsed['suite'] !== 'string') {
    throw new Error(`${LIST_FILE}: expected { suite, server, authorization }`);
  }
  return {
    suite: parsed['suite'],
    server: parseSection(parsed['server'], 'server'),
    authorization: parseSection(parsed['authorization'], 'authorization'),
  };
}

const STATUSES = new Set(['SUCCESS', 'FAILURE', 'WARNING', 'INFO', 'SKIPPED']);

function parseChecks(text: string, file: string): Check[] {
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error(`${file}: not an array of checks`);
  return parsed.map((c: unknown, i) => {
    if (!isRecord(c) || typeof c['id'] !== 'string' || !STATUSES.has(String(c['status']))) {
      throw new Error(`${file}: check ${i} has no id or a status outside ${[...STATUSES].join(', ')}`);
    }
    return {
      id: c['id'],
      status: c['status'] as CheckStatus,
      ...(typeof c['errorMessage'] === 'string' ? { errorMessage: c['errorMessage'] } : {}),
      details: c['details'],
    };
  });
}

/** Every scenario's checks from an output folder written with `-o`; `prefix` is the mode (`server`, ...). */
export function readResults(outputDir: string, prefix: string): Map<string, ScenarioResult> {
  const results = new Map<string, ScenarioResult>();
  const pattern = new RegExp(`^${prefix}-(.+)-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z$`);
  for (const entry of readdirSync(outputDir)) {
    const m = pattern.exec(entry);
    if (!m) continue;
    const scenario = m[1] as string;
    const file = path.join(outputDir, entry, 'checks.json');
    const raw = readFileSync(file, 'utf8');
    if (results.has(scenario)) throw new Error(`scenario ${scenario} has two result folders`);
    results.set(scenario, { scenario, checks: parseChecks(raw, file), raw });
  }
  return results;
}

/** The scenarios a run went through, in order, from its `=== Running scenario: NAME ===` lines. */
export function scenariosRun(stdout: string): string[] {
  return [...stdout.matchAll(/^=== Running scenario: (\S+) ===$/gm)].map((m) => m[1] as string);
}

export function passed(result: ScenarioResult): boolean {
  return (
    result.checks.some((c) => c.status === 'SUCCESS') &&
    !result.checks.some((c) => c.status === 'FAILURE' || c.status === 'WARNING')
  );
}

function failures(result: ScenarioResult): string {
  return result.checks
    .filter((c) => c.status === 'FAILURE' || c.status === 'WARNING')
    .map((c) => `${c.status} ${c.id}: ${c.errorMessage ?? ''}`)
    .join('; ');
}

export interface Verdict {
  /** Applicable scenarios that passed. */
  readonly passedApplicable: string[];
  /** Applicable scenarios (every scenario of the suite not on the list). */
  readonly applicable: string[];
  /** What is wrong, one line each: empty when the run matches the list exactly. */
  readonly problems: string[];
  /** Checks counted over the applicable scenarios. */
  readonly checks: { readonly success: number; readonly total: number };
}

/**
 * Holds a run against the list: every scenario the suite has must have run; every applicable one must pass; every
 * listed one must still exist and come out as listed (a listed failure that now passes, or a vacuous pass that is no
 * longer vacuous, is a problem too: the list must stay honest).
 */
export function judge(
  all: readonly string[],
  results: ReadonlyMap<string, ScenarioResult>,
  list: Readonly<Record<string, NotApplicable>>,
): Verdict {
  const problems: string[] = [];
  const applicable = all.filter((s) => !(s in list));
  const passedApplicable: string[] = [];
  let success = 0;
  let total = 0;
  for (const name of Object.keys(list)) {
    if (!all.includes(name)) problems.push(`${name}: on the not-applicable list but no longer in the suite`);
  }
  for (const name of all) {
    const result = results.get(name);
    if (result === undefined) {
      problems.push(`${name}: the suite lists it but wrote no result for it`);
      continue;
    }
    const entry = list[name];
    if (entry === undefined) {
      success += result.checks.filter((c) => c.status === 'SUCCESS').length;
      total += result.checks.filter(
        (c) => c.status === 'SUCCESS' || c.status === 'FAILURE' || c.status === 'WARNING',
      ).length;
      if (passed(result)) passedApplicable.push(name);
      else problems.push(`${name}: FAILED (applicable) — ${failures(result) || 'no successful check'}`);
    } else if (entry.outcome === 'fails' && passed(result)) {
      problems.push(
        `${name}: listed as not applicable (fails) but now passes: review and remove it from the list`,
      );
    } else if (entry.outcome === 'passes-vacuously') {
      if (!passed(result))
        problems.push(`${name}: listed as a vacuous pass but now fails — ${failures(result)}`);
      else if (!result.raw.includes(entry.evidence ?? '\u0000')) {
        problems.push(
          `${name}: listed as a vacuous pass but its evidence "${entry.evidence}" is gone: review it`,
        );
      }
    }
  }
  for (const name of results.keys()) {
    if (!all.includes(name)) problems.push(`${name}: a result for a scenario the suite does not list`);
  }
  return { passedApplicable, applicable, problems, checks: { success, total } };
}
