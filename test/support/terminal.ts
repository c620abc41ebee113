/**
 * Runs a command on a real pseudo-terminal with `script` (util-linux, or Debian's bsdextrautils), for output that
 * only appears on a terminal (progress lines). Where `script` is missing, the suites using it are skipped with a
 * title saying so; in CI (CI=true), where .ci/run installs it, its absence fails them instead.
 */
import { spawnSync } from 'node:child_process';
import { describe } from 'vitest';
import { findProgram } from './programs.js';

const IN_CI = process.env['CI'] === 'true';

/** The `script` program, or null when it is not installed. */
export const SCRIPT = findProgram('script');

/**
 * `describe` for suites that need a pseudo-terminal: runs them where `script` is installed, and in CI always (so a
 * missing `script` fails there); elsewhere skips them with a title saying why.
 */
export function describeWithTerminal(title: string, fn: () => void): void {
  if (SCRIPT !== null || IN_CI) describe(title, fn);
  else describe.skip(`${title} — SKIPPED: \`script\` is not installed (apt-get install bsdextrautils)`, fn);
}

function quote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** What `onTerminal` shows in place of the "erase to the end of the line" sequence (ESC [ K). */
export const CLEAR_LINE = '<clear-line>';

/**
 * Runs `node ...args` with standard input, output and error on a pseudo-terminal; answers its exit code and what
 * it wrote to the terminal (standard output and error together, line ends as the terminal sends them: \r\n), with
 * ESC [ K written as {@link CLEAR_LINE}.
 */
export function onTerminal(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): { code: number | null; output: string } {
  if (SCRIPT === null) {
    throw new Error(
      '`script` (util-linux / bsdextrautils) must be installed here: .ci/run installs it in CI',
    );
  }
  const command = [process.execPath, ...args].map(quote).join(' ');
  const r = spawnSync(SCRIPT, ['-qfec', command, '/dev/null'], {
    env: { SHELL: '/bin/sh', TERM: 'dumb', ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  return { code: r.status, output: `${r.stdout}${r.stderr}`.replaceAll('\u001b[K', CLEAR_LINE) };
}
