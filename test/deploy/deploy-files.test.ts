/**
 * The deployment files (Dockerfile, .dockerignore, deploy/*, docs/deployment.md) against the program they deploy.
 * No container engine runs here, so the image and compose file are checked by what can run without one:
 *
 * - every MCP_* variable they name is one the configuration reads;
 * - compose.yaml parses, has the services, health checks and hardening it claims, and the environment it gives
 *   mcp-pa (image ENV + env file + `environment:`) passes the real configuration loader and HTTP mode's start rules;
 * - the Dockerfile (parsed here) is multi-stage, runs as a non-root user, has a health check and no remote ADD, copies
 *   only files that exist and that .dockerignore lets through — and its build stage, replayed in a temporary folder
 *   from exactly those files, builds, and the runtime layout it copies together runs;
 * - postgres-init.sql, on the real PostgreSQL (MCP_PA_TEST_DATABASE_URL), makes a login that is no superuser and
 *   that the built server starts with (and the image's health probe passes against it);
 * - the systemd unit passes `systemd-analyze verify` and `systemd-analyze security --offline`, and has the keys it
 *   must have (and not MemoryDenyWriteExecute, which breaks Node.js);
 * - the nginx and HAProxy configurations pass `nginx -t` / `haproxy -c`, and run for real in front of the built
 *   server: nginx terminating TLS (forwarded headers believed, spoofed ones replaced, /metrics blocked, the plain
 *   HTTP redirect), HAProxy passing TLS through (the client sees mcp-pa's own certificate, health checks reach it).
 *
 * When nginx, haproxy or systemd-analyze is missing, the checks that run it are skipped with a message; in CI
 * (CI=true) they fail instead, as test/security/testssl.test.ts does for testssl.sh. The PostgreSQL checks run when
 * MCP_PA_TEST_DATABASE_URL is set (as .ci/run does), and then need psql.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { builtinModules } from 'node:module';
import { createServer, connect as netConnect } from 'node:net';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ENV_BINDINGS, loadConfig } from '../../src/config/index.js';
import { planHttpStartup } from '../../src/servers/http-preflight.js';
import { CLI, ROOT, tempDir } from '../support/helpers.js';
import { createTestCa } from '../support/https.js';
import { createTestDatabase, describeWithServer, TEST_DATABASE_URL } from '../support/postgres.js';
import { startServerProcess } from '../support/server-process.js';
import { findProgram } from '../support/programs.js';

/** nginx and HAProxy install to the sbin folders, which a non-root PATH may lack. */
const SBIN = ['/usr/sbin', '/sbin'];

const IN_CI = process.env['CI'] === 'true';
const read = (rel: string): string => readFileSync(path.join(ROOT, rel), 'utf8');

/** `describe` when the tool is here or in CI (where its absence fails), else `describe.skip` saying why. */
function toolSuite(
  bin: string | null,
  tool: string,
  debianPackage: string,
  title: string,
  fn: (bin: () => string) => void,
): void {
  const run = bin !== null || IN_CI;
  (run ? describe : describe.skip)(
    run
      ? title
      : `${title} — SKIPPED: ${tool} is not installed (apt-get install ${debianPackage}; CI fails without it)`,
    () => {
      it(`${tool} is installed`, () => {
        expect(bin, `${tool} is missing: apt-get install ${debianPackage}`).not.toBeNull();
      });
      fn(() => {
        if (bin === null) throw new Error(`${tool} is not installed`);
        return bin;
      });
    },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Parsers for the files

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

/** Dockerfile instructions: comments dropped (inside continuations too), `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const lines = text.split('\n');
  const out: Instruction[] = [];
  let i = 0;
  while (i < lines.length) {
    const start = i + 1;
    let full = lines[i] as string;
    i++;
    if (/^\s*(#|$)/.test(full)) continue;
    while (/\\\s*$/.test(full)) {
      full = full.replace(/\\\s*$/, ' ');
      while (i < lines.length && /^\s*(#|$)/.test(lines[i] as string)) i++;
      if (i >= lines.length) break;
      full += lines[i] as string;
      i++;
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(full);
    if (m) out.push({ keyword: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start });
  }
  return out;
}

interface Stage {
  readonly name: string | undefined;
  readonly from: string;
  readonly instructions: Instruction[];
}

function stagesOf(instructions: readonly Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({
        from: words[0] as string,
        name: as === -1 ? undefined : words[as + 1],
        instructions: [],
      });
    } else stages.at(-1)?.instructions.push(ins);
  }
  return stages;
}

/** COPY/ADD: its --flags, sources and destination (JSON or shell form). */
function copyParts(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest);
    if (!m) break;
    flags[m[1] as string] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  const words = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { flags, sources: words.slice(0, -1), dest: words.at(-1) as string };
}

/** `ENV A=1 B=2` (and the legacy `ENV A 1`). */
function envOf(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!args.includes('=')) {
    const [k, ...v] = args.split(/\s+/);
    out[k as string] = v.join(' ');
    return out;
  }
  for (const pair of args.split(/\s+/)) {
    const eq = pair.indexOf('=');
    out[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"(.*)"$/, '$1');
  }
  return out;
}

/** The exec-form command after CMD in a HEALTHCHECK, or of ENTRYPOINT/CMD. */
function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  return JSON.parse(json) as string[];
}

/** .dockerignore as Docker applies it: the last matching pattern wins; a pattern matching a folder covers its files. */
function dockerIgnore(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize(negate ? l.slice(1) : l).replace(/\/$/, '');
      const re = new RegExp(
        `^${pattern
          .split('')
          .map((c, i, all) => {
            if (c === '*') return all[i + 1] === '*' ? '' : all[i - 1] === '*' ? '.*' : '[^/]*';
            if (c === '?') return '[^/]';
            return c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
          })
          .join('')}$`,
      );
      return { negate, re };
    });
  return (file) => {
    const parts = file.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = !rule.negate;
    return excluded;
  };
}

/** KEY=value lines (compose env_file syntax as used here: no quotes, # comments). */
function parseEnvFile(text: string): { values: Record<string, string>; commented: Record<string, string> } {
  const values: Record<string, string> = {};
  const commented: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    (m[1] ? commented : values)[m[2] as string] = (m[3] as string).trim();
  }
  return { values, commented };
}

/** The `#   MCP_X=value` lines of a configuration file's header comment: the mcp-pa settings it expects. */
function commentEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^#\s+(MCP_[A-Z0-9_]+)=(\S+)\s*$/gm)) out[m[1] as string] = m[2] as string;
  return out;
}

/** systemd unit: section → key → values (in order). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1] as string, current);
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    const values = current?.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    current?.set(key, values);
  }
  return sections;
}

const secretValue = (): string => randomBytes(24).toString('hex');

/** A temporary folder made on first use (describe bodies run even when their tests are filtered out). */
function lazyTempDir(prefix: string): { readonly dir: string; cleanup(): void } {
  let made: ReturnType<typeof tempDir> | undefined;
  return {
    get dir() {
      made ??= tempDir(prefix);
      return made.dir;
    },
    cleanup: () => made?.cleanup(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Processes, ports and requests for the live checks

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

interface Child {
  readonly proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function startChild(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `mcp-pa serve` (the built CLI) with exactly `env`; resolves once it logged "http server ready". */
async function startServe(env: Record<string, string>): Promise<Child & { port: number }> {
  const child = startChild(process.execPath, [CLI, 'serve'], env);
  let port = 0;
  await waitFor(
    'mcp-pa serve to be ready',
    () => {
      if (child.proc.exitCode !== null) throw new Error(`mcp-pa serve exited:\n${child.output()}`);
      const m = /^.*"msg":"http server ready".*$/m.exec(child.output());
      if (m) port = Number(new URL((JSON.parse(m[0]) as { url: string }).url).port);
      return m !== null;
    },
    60_000,
  );
  return { ...child, port };
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

function send(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    ca?: string;
    servername?: string;
    localAddress?: string;
  } = {},
): Promise<Answer> {
  const u = new URL(url);
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: false,
        ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
        ...(u.protocol === 'https:' ? { ca: options.ca, servername: options.servername } : {}),
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function runHealthcheck(port: number): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'deploy/healthcheck.mjs')], {
    env: { PATH: process.env['PATH'] ?? '', MCP_PORT: String(port) },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------------------------

const DEPLOY_FILES = [
  'Dockerfile',
  '.dockerignore',
  ...readdirSync(path.join(ROOT, 'deploy')).map((f) => `deploy/${f}`),
  'docs/deployment.md',
];

describe('deployment files: every MCP_* variable they name is one the configuration reads', () => {
  const known = new Set(['MCP_CONFIG', ...ENV_BINDINGS.flatMap((b) => [b.name, ...(b.aliases ?? [])])]);

  it.each(DEPLOY_FILES)('%s', (file) => {
    const names = [...read(file).matchAll(/\bMCP_[A-Z0-9_]*[A-Z0-9]\b/g)].map((m) => m[0]);
    const unknown = [...new Set(names.filter((n) => !known.has(n)))];
    expect(unknown, `${file} names variables mcp-pa does not read`).toEqual([]);
  });

  it('the files name a good share of the configuration (the scan sees them)', () => {
    const all = new Set(
      DEPLOY_FILES.flatMap((f) => [...read(f).matchAll(/\bMCP_[A-Z0-9_]+\b/g)].map((m) => m[0])),
    );
    for (const name of [
      'MCP_DATABASE_URL',
      'MCP_SECRET_KEY',
      'MCP_TRUST_PROXY',
      'MCP_TLS_CLIENT_CA',
      'MCP_REDIS_URL',
    ])
      expect(all.has(name), name).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------

const dockerfile = parseDockerfile(read('Dockerfile'));
const stages = stagesOf(dockerfile);
const finalStage = stages.at(-1) as Stage;
const imageEnv = Object.assign(
  {},
  ...finalStage.instructions.filter((i) => i.keyword === 'ENV').map((i) => envOf(i.args)),
) as Record<string, string>;

const finalWorkdir = finalStage.instructions
  .filter((i) => i.keyword === 'WORKDIR')
  .reduce((dir, i) => path.posix.resolve(dir, i.args), '/');

describe('Dockerfile', () => {
  it('is multi-stage: two or more named stages, and the runtime stage is the last', () => {
    expect(stages.filter((s) => s.name !== undefined).length).toBeGreaterThanOrEqual(2);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    // Nothing of the build stage (dev dependencies, sources) lands in the final image except by COPY --from.
    expect(finalStage.instructions.some((i) => i.keyword === 'RUN' && /npm (ci|install)/.test(i.args))).toBe(
      false,
    );
  });

  it('runs the final stage as a non-root user', () => {
    const users = finalStage.instructions.filter((i) => i.keyword === 'USER');
    expect(users.length, 'the final stage sets USER').toBeGreaterThan(0);
    const [user, group] = (users.at(-1) as Instruction).args.split(':');
    expect(['root', '0', ''].includes(user ?? '')).toBe(false);
    expect(group === 'root' || group === '0').toBe(false);
    // USER comes before ENTRYPOINT/CMD; a later USER root would undo it.
    const last = finalStage.instructions.findIndex((i) => i === users.at(-1));
    const entry = finalStage.instructions.findIndex((i) => i.keyword === 'ENTRYPOINT');
    expect(last).toBeLessThan(entry);
  });

  it('has a HEALTHCHECK that runs node on a file the image contains, against the listener', () => {
    const hc = finalStage.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
    expect(hc.length).toBe(1);
    const cmd = execForm((hc[0] as Instruction).args.slice((hc[0] as Instruction).args.indexOf('CMD')));
    expect(cmd[0]).toBe('node');
    const script = cmd[1] as string;
    const copied = finalStage.instructions
      .filter((i) => i.keyword === 'COPY')
      .map((i) => copyParts(i.args))
      .find((c) => path.posix.resolve(finalWorkdir, c.dest) === script);
    expect(copied, `${script} is copied into the image`).toBeDefined();
    expect(read(copied?.sources[0] as string)).toMatch(/\/healthz/);
  });

  it('has no ADD of a remote URL (or any ADD: COPY only)', () => {
    for (const ins of dockerfile.filter((i) => i.keyword === 'ADD'))
      expect(ins.args, `line ${ins.line}`).not.toMatch(/(https?|git|ftp):\/\/|git@/);
    expect(dockerfile.filter((i) => i.keyword === 'ADD')).toEqual([]);
  });

  it('starts `node …/dist/cli.js serve` and exposes the port it sets', () => {
    const entry = execForm(
      (finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT') as Instruction).args,
    );
    const cmd = execForm((finalStage.instructions.find((i) => i.keyword === 'CMD') as Instruction).args);
    expect([...entry, ...cmd].join(' ')).toMatch(/^node \S*\/dist\/cli\.js serve$/);
    const expose = finalStage.instructions.find((i) => i.keyword === 'EXPOSE')?.args;
    expect(expose).toBe(imageEnv['MCP_PORT']);
    expect(imageEnv['MCP_DATA_DIR']).toBeDefined();
    // The data folder is a volume, so a read-only root filesystem still leaves it writable.
    const volumes = finalStage.instructions.filter((i) => i.keyword === 'VOLUME').map((i) => i.args);
    expect(volumes.join(' ')).toContain(`"${imageEnv['MCP_DATA_DIR']}"`);
  });

  it('installs dependencies with --ignore-scripts (the prepare script is the build) and rebuilds by name the ones with install scripts', () => {
    const lock = JSON.parse(read('package-lock.json')) as {
      packages: Record<string, { hasInstallScript?: boolean; dev?: boolean }>;
    };
    const withScripts = Object.entries(lock.packages)
      .filter(([k, v]) => k !== '' && v.hasInstallScript)
      .map(([k, v]) => ({ name: k.replace(/^.*node_modules\//, ''), dev: v.dev === true }));
    for (const stage of stages) {
      const runs = stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
      const ci = runs.find((r) => /\bnpm ci\b/.test(r));
      if (ci === undefined) continue;
      expect(ci, `stage ${stage.name}`).toMatch(/--ignore-scripts/);
      // A production install (what the image runs on) rebuilds the production packages with scripts; the full
      // install of the build stage rebuilds the dev ones (the build runs them; it loads no production addon).
      const prodOnly = /--omit=dev/.test(ci);
      for (const pkg of withScripts.filter((p) => p.dev !== prodOnly))
        expect(ci, `stage ${stage.name} rebuilds ${pkg.name}`).toMatch(
          new RegExp(`npm rebuild [^&]*\\b${pkg.name}\\b`),
        );
    }
  });

  it('copies from the build context only files that exist and that .dockerignore lets through', () => {
    const ignored = dockerIgnore(read('.dockerignore'));
    const names = new Set(stages.map((s) => s.name));
    let fromContext = 0;
    for (const stage of stages) {
      for (const ins of stage.instructions.filter((i) => i.keyword === 'COPY')) {
        const { flags, sources } = copyParts(ins.args);
        if (flags['from'] !== undefined) {
          expect(names.has(flags['from']), `line ${ins.line}: stage ${flags['from']}`).toBe(true);
          continue;
        }
        for (const src of sources) {
          fromContext++;
          const full = path.join(ROOT, src);
          expect(existsSync(full), `line ${ins.line}: ${src} exists`).toBe(true);
          const files = statSync(full).isDirectory()
            ? (readdirSync(full, { recursive: true }) as string[]).map((f) => path.posix.join(src, f))
            : [src];
          for (const f of files)
            expect(ignored(f), `line ${ins.line}: ${f} is excluded by .dockerignore`).toBe(false);
        }
      }
    }
    expect(fromContext).toBeGreaterThan(3);
    // And the allow-list keeps out what must never reach a builder.
    for (const f of [
      'node_modules/x',
      'dist/cli.js',
      '.git/config',
      'deploy/.env',
      'deploy/mcp-pa.env',
      'deploy/tls/privkey.pem',
    ])
      expect(ignored(f), f).toBe(true);
  });

  describe('replayed in a temporary folder (node_modules linked in place of npm ci)', () => {
    const tmp = lazyTempDir('mcp-pa-docker-');
    afterAll(() => tmp.cleanup());

    /** Replays a stage's COPY from the context and --from earlier replays, and its RUN lines except npm ci. */
    function replay(stage: Stage, roots: Map<string, string>): string {
      const root = path.join(tmp.dir, stage.name ?? 'final');
      let workdir = '/';
      for (const ins of stage.instructions) {
        if (ins.keyword === 'WORKDIR') {
          workdir = path.posix.resolve(workdir, ins.args);
          mkdirSync(path.join(root, workdir), { recursive: true });
        } else if (ins.keyword === 'COPY') {
          const { flags, sources, dest } = copyParts(ins.args);
          const target = path.posix.resolve(workdir, dest);
          for (const src of sources) {
            const from =
              flags['from'] !== undefined
                ? path.join(roots.get(flags['from']) as string, src)
                : path.join(ROOT, src);
            const to =
              dest.endsWith('/') && !statSync(from).isDirectory()
                ? path.join(root, target, path.basename(src))
                : path.join(root, target);
            mkdirSync(path.dirname(to), { recursive: true });
            cpSync(from, to, { recursive: true, verbatimSymlinks: true });
          }
        } else if (ins.keyword === 'RUN') {
          if (/^npm ci\b/.test(ins.args)) {
            symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, workdir, 'node_modules'));
            continue;
          }
          if (/^(apt-get|groupadd)\b/.test(ins.args)) continue; // system packages and accounts: not replayable here
          const r = spawnSync('sh', ['-c', ins.args], {
            cwd: path.join(root, workdir),
            encoding: 'utf8',
            timeout: 240_000,
          });
          expect(r.status, `RUN ${ins.args}\n${r.stdout}\n${r.stderr}`).toBe(0);
        }
      }
      return root;
    }

    let runtimeRoot = '';
    beforeAll(() => {
      const roots = new Map<string, string>();
      for (const stage of stages) {
        const root = replay(stage, roots);
        if (stage.name !== undefined) roots.set(stage.name, root);
        runtimeRoot = root;
      }
    }, 300_000);

    it('the build stage builds dist/ from the copied files alone, and the runtime stage gets it', () => {
      for (const bundle of ['dist/cli.js', 'dist/servers/http-server.js', 'dist/admin.js'])
        expect(existsSync(path.join(runtimeRoot, 'app', bundle)), bundle).toBe(true);
    });

    it('the runtime layout runs: the entry point starts and finds package.json (its version)', () => {
      const entry = execForm(
        (finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT') as Instruction).args,
      );
      const script = path.join(runtimeRoot, entry[1] as string);
      const r = spawnSync(process.execPath, [script, '--version'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe((JSON.parse(read('package.json')) as { version: string }).version);
    });

    it('every package the bundles load at run time is a production dependency (npm ci --omit=dev is enough)', () => {
      // What `npm ci --omit=dev` installs: every package of the lock file not marked dev (dependencies of
      // dependencies included, e.g. the MCP SDK's ajv).
      const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
      const installed = (name: string): boolean => {
        const entry = lock.packages[`node_modules/${name}`];
        return entry !== undefined && entry.dev !== true;
      };
      const builtins = new Set(builtinModules);
      const dist = path.join(runtimeRoot, 'app/dist');
      const loaded = new Set<string>();
      for (const bundle of ['cli.js', 'servers/http-server.js', 'servers/local-server.js', 'admin.js']) {
        const text = readFileSync(path.join(dist, bundle), 'utf8');
        const patterns = [
          /\bfrom\s*"([^"]+)"/g,
          /\bimport\s*\(\s*"([^"]+)"\s*\)/g,
          /\bimport\s*"([^"]+)"/g,
          /\brequire\s*\(\s*"([^"]+)"\s*\)/g,
          /createRequire\)\(import\.meta\.url\)\(\s*"([^"]+)"\s*\)/g,
        ];
        for (const re of patterns)
          for (const m of text.matchAll(re)) {
            const spec = m[1] as string;
            if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) continue;
            const name = spec.startsWith('@')
              ? spec.split('/').slice(0, 2).join('/')
              : (spec.split('/')[0] as string);
            if (builtins.has(name) || !/^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/.test(name)) continue;
            loaded.add(name);
          }
      }
      expect(loaded.size).toBeGreaterThan(3);
      // pg-native: pg's optional native binding, loaded only when asked for (never by mcp-pa).
      const missing = [...loaded].filter((n) => !installed(n) && n !== 'pg-native');
      expect(missing, 'loaded at run time but not installed without the dev dependencies').toEqual([]);
      for (const native of ['better-sqlite3', '@node-rs/argon2', '@electric-sql/pglite'])
        expect(loaded.has(native), native).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  read_only?: boolean;
  privileged?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  security_opt?: string[];
  env_file?: string | string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
  stop_grace_period?: string;
  command?: string[];
  networks?: string[];
}

const composeText = read('deploy/compose.yaml');
const compose = parseYaml(composeText) as {
  services: Record<string, ComposeService>;
  networks?: Record<string, { internal?: boolean } | null>;
};

/** Compose's `${NAME:?message}` interpolation, with the given values. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z_][A-Z0-9_]*)(:\?[^}]*)?\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`no value for \${${name}}`);
    return v;
  });
}

const seconds = (d: string): number => {
  const m = /^(\d+)(s|m)?$/.exec(d);
  if (!m) throw new Error(`duration ${d}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
};

describe('deploy/compose.yaml', () => {
  const services = compose.services;
  const app = services['mcp-pa'] as ComposeService;
  const referenced = [
    ...new Set([...composeText.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1] as string)),
  ];
  const composeVars = Object.fromEntries(referenced.map((n) => [n, secretValue()]));

  it('has mcp-pa, PostgreSQL with pgvector and Redis, each with a health check, none privileged', () => {
    expect(Object.keys(services).sort()).toEqual(['mcp-pa', 'postgres', 'redis']);
    expect(services['postgres']?.image).toMatch(/pgvector/);
    expect(services['redis']?.image).toMatch(/^redis:/);
    for (const [name, s] of Object.entries(services)) {
      expect(s.healthcheck?.test?.length, `${name} healthcheck`).toBeGreaterThan(0);
      expect(s.privileged, `${name} privileged`).toBeUndefined();
      expect(JSON.stringify(s), `${name} adds no capabilities`).not.toMatch(/cap_add/);
    }
  });

  it('runs mcp-pa read-only, without capabilities, with /tmp and /data the only writable places', () => {
    expect(app.read_only).toBe(true);
    expect(app.tmpfs?.some((t) => t.split(':')[0] === '/tmp')).toBe(true);
    expect(app.cap_drop).toEqual(['ALL']);
    expect(app.security_opt).toContain('no-new-privileges:true');
    const mounts = (app.volumes ?? []).map((v) => ({ target: v.split(':')[1], ro: v.endsWith(':ro') }));
    expect(mounts.filter((m) => !m.ro).map((m) => m.target)).toEqual([imageEnv['MCP_DATA_DIR']]);
    // It builds the repository's Dockerfile, and its health check is the image's.
    expect(
      existsSync(path.join(ROOT, 'deploy', app.build?.context ?? '.', app.build?.dockerfile ?? 'Dockerfile')),
    ).toBe(true);
    const imageCheck = execForm(
      (finalStage.instructions.find((i) => i.keyword === 'HEALTHCHECK') as Instruction).args.replace(
        /^.*CMD/,
        '',
      ),
    );
    expect(app.healthcheck?.test).toEqual(['CMD', ...imageCheck]);
    // Longer than the server's own drain time before SIGKILL.
    const grace = loadConfig({ env: {}, mode: 'http' }).config.server.shutdown_grace_s;
    expect(seconds(app.stop_grace_period ?? '10s')).toBeGreaterThan(grace);
  });

  it('starts mcp-pa only once PostgreSQL and Redis are healthy; those two are on an internal network only', () => {
    expect(app.depends_on?.['postgres']?.condition).toBe('service_healthy');
    expect(app.depends_on?.['redis']?.condition).toBe('service_healthy');
    expect(services['postgres']?.networks).toEqual(['backend']);
    expect(services['redis']?.networks).toEqual(['backend']);
    expect(compose.networks?.['backend']?.internal).toBe(true);
    // During initialisation the temporary server listens on its socket only: the check must use TCP.
    expect(services['postgres']?.healthcheck?.test).toEqual(
      expect.arrayContaining(['pg_isready', '-h', '127.0.0.1']),
    );
  });

  it('requires every interpolated secret (${NAME:?…}): compose refuses to start without one', () => {
    expect(referenced.sort()).toEqual(['APP_DB_PASSWORD', 'POSTGRES_PASSWORD', 'REDIS_PASSWORD']);
    for (const m of composeText.matchAll(/\$\{([A-Z_][A-Z0-9_]*)([^}]*)\}/g))
      expect(m[2], m[0]).toMatch(/^:\?/);
  });

  it('mounts postgres-init.sql into the entrypoint folder; its login is the one in MCP_DATABASE_URL', () => {
    const pgService = services['postgres'] as ComposeService;
    const init = (pgService.volumes ?? []).find((v) => v.includes('/docker-entrypoint-initdb.d/'));
    expect(init).toBeDefined();
    const source = (init as string).split(':')[0] as string;
    expect(existsSync(path.join(ROOT, 'deploy', source))).toBe(true);
    const sql = readFileSync(path.join(ROOT, 'deploy', source), 'utf8');
    const defaultUser = /\\set app_user (\S+)/.exec(sql)?.[1];
    const url = new URL(interpolate(app.environment?.['MCP_DATABASE_URL'] ?? '', composeVars));
    expect(url.username).toBe(defaultUser);
    expect(url.pathname).toBe(`/${pgService.environment?.['POSTGRES_DB']}`);
    // The same password: what the init script sets is what mcp-pa sends.
    expect(decodeURIComponent(url.password)).toBe(
      interpolate(pgService.environment?.['APP_DB_PASSWORD'] ?? '', composeVars),
    );
    expect(url.username).not.toBe(pgService.environment?.['POSTGRES_USER']);
    // And Redis's password is the one in MCP_REDIS_URL.
    const redis = new URL(interpolate(app.environment?.['MCP_REDIS_URL'] ?? '', composeVars));
    const command = (services['redis']?.command ?? []).map((c) => interpolate(c, composeVars));
    expect(command[command.indexOf('--requirepass') + 1]).toBe(decodeURIComponent(redis.password));
  });

  /** The environment the mcp-pa container gets: image ENV, then the env file, then `environment:`. */
  function containerEnv(options: { uncomment: boolean }): Record<string, string> {
    const envFile = [app.env_file ?? []].flat();
    expect(envFile).toEqual(['mcp-pa.env']);
    const example = parseEnvFile(read(`deploy/${envFile[0]}.example`));
    const fromFile: Record<string, string> = {
      ...example.values,
      ...(options.uncomment ? example.commented : {}),
    };
    // Secrets the example leaves empty on purpose (the server then refuses to start): filled as an operator would.
    for (const [k, v] of Object.entries(fromFile)) if (v === '') fromFile[k] = secretValue();
    const environment = Object.fromEntries(
      Object.entries(app.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), composeVars)]),
    );
    return { ...imageEnv, ...fromFile, ...environment };
  }

  it('the example env file ships no usable secret: MCP_SECRET_KEY (and every *_TOKEN, *_KEY) is empty', () => {
    const example = parseEnvFile(read('deploy/mcp-pa.env.example'));
    expect(example.values['MCP_SECRET_KEY']).toBe('');
    for (const [k, v] of Object.entries({ ...example.values, ...example.commented }))
      if (/(TOKEN|_KEY)$/.test(k) && k !== 'MCP_REDIS_KEY_PREFIX') expect(v, k).toBe('');
    // No line the loader could misread: KEY=value, no quotes.
    for (const line of read('deploy/mcp-pa.env.example').split('\n'))
      if (line.trim() !== '' && !line.startsWith('#')) expect(line).toMatch(/^MCP_[A-Z0-9_]+=[^"']*$/);
  });

  it.each([
    ['as shipped', false],
    ['with every commented option turned on', true],
  ])(
    'the mcp-pa environment passes the configuration loader and the start rules of HTTP mode (%s)',
    (_, uncomment) => {
      const env = containerEnv({ uncomment });
      const { config } = loadConfig({ env, mode: 'http' });
      const plan = planHttpStartup(config);
      expect(plan.host).toBe('0.0.0.0');
      expect(plan.tls).toEqual({ kind: 'files', certFile: env['MCP_TLS_CERT'], keyFile: env['MCP_TLS_KEY'] });
      expect(plan.database.kind).toBe('postgresql');
      expect(new URL(config.database.connection_string ?? '').hostname).toBe('postgres');
      expect(new URL(config.security.redis_url ?? '').hostname).toBe('redis');
      expect(config.data_dir).toBe(imageEnv['MCP_DATA_DIR']);
      // The published port reaches the port the server listens on.
      const ports = (app as { ports?: string[] }).ports ?? [];
      expect(ports.some((p) => p.endsWith(`:${config.server.port}`))).toBe(true);
      // TLS files come from the read-only tls/ mount.
      const tlsMount = (app.volumes ?? []).find((v) => v.startsWith('./tls:'))?.split(':')[1] as string;
      expect(config.server.tls_cert?.startsWith(`${tlsMount}/`)).toBe(true);
      if (uncomment) expect(config.server.tls_client_ca?.startsWith(`${tlsMount}/`)).toBe(true);
    },
  );

  it('without the secret the server would refuse to start (the check above is not vacuous)', () => {
    const env = containerEnv({ uncomment: false });
    delete env['MCP_SECRET_KEY'];
    const { config } = loadConfig({ env, mode: 'http' });
    expect(() => planHttpStartup(config)).toThrow(/MCP_SECRET_KEY/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

const PSQL = findProgram('psql', SBIN);

describeWithServer(
  'deploy/postgres-init.sql on the real PostgreSQL server (MCP_PA_TEST_DATABASE_URL)',
  () => {
    const login = `mcp_pa_deploy_${randomBytes(4).toString('hex')}`;
    const password = secretValue();
    let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;

    const admin = async (text: string, params: unknown[] = [], url = TEST_DATABASE_URL as string) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query(text, params)).rows as Record<string, unknown>[];
      } finally {
        await client.end();
      }
    };
    const runInit = (env: Record<string, string>) =>
      spawnSync(
        PSQL as string,
        [
          '-X',
          '-q',
          '-v',
          'ON_ERROR_STOP=1',
          '-v',
          `app_user=${login}`,
          '-d',
          db?.url as string,
          '-f',
          path.join(ROOT, 'deploy/postgres-init.sql'),
        ],
        { env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8', timeout: 60_000 },
      );

    beforeAll(async () => {
      db = await createTestDatabase({ vector: false });
    });
    afterAll(async () => {
      await db?.drop();
      await admin(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(login)}`);
    });

    it('psql is installed', () => {
      expect(PSQL, 'psql is missing: apt-get install postgresql-client').not.toBeNull();
    });

    it('refuses to run without APP_DB_PASSWORD', () => {
      const r = runInit({});
      expect(r.status).not.toBe(0);
    });

    it('makes a login that is no superuser and owns the database, with pgvector and the two roles; runs again unchanged', async () => {
      for (let i = 0; i < 2; i++) {
        const r = runInit({ APP_DB_PASSWORD: password });
        expect(r.status, r.stderr).toBe(0);
      }
      const [role] = await admin(
        `SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin,
              pg_has_role(rolname, 'mcp_pa_app', 'MEMBER') AS app, pg_has_role(rolname, 'mcp_pa_definer', 'MEMBER') AS definer
         FROM pg_roles WHERE rolname = $1`,
        [login],
      );
      expect(role).toEqual({
        rolsuper: false,
        rolcreaterole: false,
        rolcreatedb: false,
        rolbypassrls: false,
        rolcanlogin: true,
        app: true,
        definer: true,
      });
      const [owner] = await admin(
        'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
        [db?.name],
      );
      expect(owner?.['owner']).toBe(login);
      const ext = await admin(`SELECT 1 FROM pg_extension WHERE extname = 'vector'`, [], db?.url);
      expect(ext.length).toBe(1);
    });

    it('the built server starts on it as that login (migrations without a superuser), and the image health probe passes', async () => {
      const url = new URL(db?.url as string);
      url.username = login;
      url.password = password;
      const server = await startServerProcess({
        env: { MCP_DATABASE_URL: url.toString() },
      });
      try {
        const [migrated] = await admin('SELECT count(*)::int AS n FROM schema_migrations', [], db?.url);
        expect(migrated?.['n']).toBeGreaterThan(0);
        const [owner] = await admin(
          `SELECT tableowner FROM pg_tables WHERE tablename = 'schema_migrations'`,
          [],
          db?.url,
        );
        expect(owner?.['tableowner']).toBe(login);
        expect(runHealthcheck(server.port)).toEqual({ status: 0, stderr: '' });
      } finally {
        await server.close();
      }
      const closed = runHealthcheck(server.port);
      expect(closed.status).toBe(1);
      expect(closed.stderr).toMatch(/ECONNREFUSED/);
    }, 150_000);
  },
);

// ---------------------------------------------------------------------------------------------------------------

const UNIT_TEXT = read('deploy/mcp-pa.service');
const unit = parseUnit(UNIT_TEXT);
const service = unit.get('Service') as Map<string, string[]>;
const one = (key: string): string | undefined => service.get(key)?.at(-1);

describe('deploy/mcp-pa.service: the hardening it needs', () => {
  it('runs as a dedicated user, never root', () => {
    expect(one('User')).toBeDefined();
    expect(['root', '0']).not.toContain(one('User'));
  });

  it('has the hardening keys', () => {
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('PrivateDevices')).toBe('yes');
    // No capability, or exactly the one that binds ports below 1024, and only what the bounding set allows.
    const bounding = (one('CapabilityBoundingSet') ?? 'unset').split(/\s+/).filter(Boolean);
    expect(service.has('CapabilityBoundingSet')).toBe(true);
    expect(bounding.every((c) => c === 'CAP_NET_BIND_SERVICE')).toBe(true);
    const ambient = (one('AmbientCapabilities') ?? '').split(/\s+/).filter(Boolean);
    expect(ambient.every((c) => bounding.includes(c))).toBe(true);
  });

  it('does not set MemoryDenyWriteExecute (V8 needs writable executable memory: Node.js would not start)', () => {
    expect(one('MemoryDenyWriteExecute') ?? 'no').toMatch(/^(no|false|0)$/);
  });

  it('keeps its data in its StateDirectory, named by MCP_DATA_DIR', () => {
    const state = one('StateDirectory');
    expect(state).toBeDefined();
    const env = (service.get('Environment') ?? []).flatMap((e) => e.split(/\s+/));
    expect(env).toContain(`MCP_DATA_DIR=/var/lib/${state}`);
    expect(one('EnvironmentFile')).toMatch(/^-?\/etc\//);
  });

  it('serves, reloads the certificate with SIGHUP, restarts on failure, and waits longer than the drain on stop', () => {
    expect(one('ExecStart')).toMatch(/^\S*node \S*\/dist\/cli\.js serve$/);
    expect(one('ExecReload')).toMatch(/kill -(HUP|s HUP|SIGHUP) \$MAINPID$/);
    expect(one('Restart')).toBe('on-failure');
    const env = Object.fromEntries(
      (service.get('Environment') ?? [])
        .flatMap((e) => e.split(/\s+/))
        .map((p) => p.split('=') as [string, string]),
    );
    const grace = loadConfig({ env, mode: 'http' }).config.server.shutdown_grace_s;
    expect(seconds(one('TimeoutStopSec') ?? '90s')).toBeGreaterThan(grace);
  });
});

const SYSTEMD_ANALYZE = findProgram('systemd-analyze', SBIN);

toolSuite(SYSTEMD_ANALYZE, 'systemd-analyze', 'systemd', 'deploy/mcp-pa.service: systemd-analyze', (bin) => {
  const tmp = lazyTempDir('mcp-pa-unit-');
  afterAll(() => tmp.cleanup());
  /** The unit, with ExecStart's node replaced by this test's (so the check does not depend on where node lives). */
  const unitFile = (text = UNIT_TEXT): string => {
    const file = path.join(tmp.dir, 'mcp-pa.service');
    writeFileSync(file, text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    return file;
  };

  it('systemd-analyze verify reports nothing (an unknown key or a bad value would be a warning)', () => {
    const r = spawnSync(bin(), ['verify', unitFile()], { cwd: tmp.dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
  });

  it('systemd-analyze security --offline rates its exposure 2.0 or lower ("OK")', () => {
    const r = spawnSync(bin(), ['security', '--offline=yes', '--threshold=20', '--no-pager', unitFile()], {
      cwd: tmp.dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const level = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout)?.[1]);
    expect(level).toBeLessThanOrEqual(2);
  });
});

// ---------------------------------------------------------------------------------------------------------------

const NGINX = findProgram('nginx', SBIN);
const NGINX_TEXT = read('deploy/nginx-tls-terminating.conf');

describe('deploy/nginx-tls-terminating.conf: what mcp-pa needs from it', () => {
  const expected = commentEnv(NGINX_TEXT);

  it('streams: buffering off, long read timeout, HTTP/1.1 to mcp-pa; sets exactly the forwarded headers mcp-pa believes', () => {
    expect(NGINX_TEXT).toMatch(/^\s*proxy_buffering off;/m);
    expect(NGINX_TEXT).toMatch(/^\s*proxy_http_version 1\.1;/m);
    const timeout = /^\s*proxy_read_timeout (\d+)(s|m|h);/m.exec(NGINX_TEXT);
    expect(
      Number(timeout?.[1]) * ({ s: 1, m: 60, h: 3600 }[timeout?.[2] as 's'] ?? 0),
    ).toBeGreaterThanOrEqual(600);
    expect(NGINX_TEXT).toMatch(/^\s*proxy_set_header X-Forwarded-For \$remote_addr;/m);
    expect(NGINX_TEXT).toMatch(/^\s*proxy_set_header X-Forwarded-Proto \$scheme;/m);
    expect(NGINX_TEXT).toMatch(/^\s*proxy_set_header Forwarded "";/m);
  });

  it('names the settings mcp-pa needs behind it, and they pass the loader and the start rules', () => {
    expect(Object.keys(expected).sort()).toEqual([
      'MCP_HOST',
      'MCP_PORT',
      'MCP_PUBLIC_URL',
      'MCP_TLS_REQUIRED',
      'MCP_TRUST_PROXY',
    ]);
    const { config } = loadConfig({ env: { ...expected, MCP_SECRET_KEY: secretValue() }, mode: 'http' });
    const plan = planHttpStartup(config);
    expect(plan.tls.kind).toBe('none');
    // The upstream is where mcp-pa listens, and its address is the trusted proxy's peer address (loopback).
    const upstream = /^\s*server (\S+):(\d+);/m.exec(NGINX_TEXT);
    expect(upstream?.[1]).toBe(plan.host);
    expect(Number(upstream?.[2])).toBe(plan.port);
    expect(config.server.trust_proxy).toContain(plan.host);
    expect(new URL(config.server.public_url ?? '').hostname).toBe(/server_name (\S+);/.exec(NGINX_TEXT)?.[1]);
  });
});

toolSuite(
  NGINX,
  'nginx',
  'nginx',
  'deploy/nginx-tls-terminating.conf: nginx -t, then in front of the built server',
  (bin) => {
    const tmp = lazyTempDir('mcp-pa-nginx-');
    const expected = commentEnv(NGINX_TEXT);
    let ca: Awaited<ReturnType<typeof createTestCa>>;
    let certFile = '';
    let keyFile = '';

    /** A wrapper making the site file a complete configuration, everything written under the temporary folder. */
    function wrapper(site: string, name: string): string {
      const dir = path.join(tmp.dir, name);
      mkdirSync(dir, { recursive: true });
      const siteFile = path.join(dir, 'site.conf');
      writeFileSync(
        siteFile,
        site
          .replaceAll('/etc/letsencrypt/live/pa.example.com/fullchain.pem', certFile)
          .replaceAll('/etc/letsencrypt/live/pa.example.com/privkey.pem', keyFile),
      );
      const conf = path.join(dir, 'nginx.conf');
      writeFileSync(
        conf,
        [
          `pid ${dir}/nginx.pid;`,
          `error_log ${dir}/error.log;`,
          'events {}',
          'http {',
          `  access_log ${dir}/access.log;`,
          ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`),
          `  include ${siteFile};`,
          '}',
          '',
        ].join('\n'),
      );
      return conf;
    }
    const test = (conf: string) =>
      spawnSync(
        bin(),
        ['-t', '-q', '-p', path.dirname(conf), '-c', conf, '-e', path.join(path.dirname(conf), 'error.log')],
        {
          encoding: 'utf8',
          timeout: 30_000,
        },
      );

    beforeAll(async () => {
      ca = await createTestCa();
      const cert = await ca.issue({ dns: ['pa.example.com'], ip: ['127.0.0.1'] });
      certFile = path.join(tmp.dir, 'fullchain.pem');
      keyFile = path.join(tmp.dir, 'privkey.pem');
      writeFileSync(certFile, cert.cert);
      writeFileSync(keyFile, cert.key, { mode: 0o600 });
    });
    afterAll(() => tmp.cleanup());

    it('nginx -t accepts it (certificate paths replaced by generated files); a typo is refused', () => {
      const ok = test(wrapper(NGINX_TEXT, 'as-is'));
      expect(ok.status, ok.stderr).toBe(0);
      const broken = test(
        wrapper(NGINX_TEXT.replace('proxy_buffering off;', 'proxy_bufering off;'), 'broken'),
      );
      expect(broken.status).not.toBe(0);
    });

    describe('live: nginx terminating TLS in front of `mcp-pa serve`', () => {
      let mcp: (Child & { port: number }) | undefined;
      let nginx: Child | undefined;
      let httpsPort = 0;
      let httpPort = 0;
      const data = lazyTempDir('mcp-pa-nginx-data-');

      beforeAll(async () => {
        mcp = await startServe({
          PATH: process.env['PATH'] ?? '',
          HOME: data.dir,
          ...expected,
          MCP_PORT: '0',
          MCP_DATA_DIR: data.dir,
          MCP_SECRET_KEY: secretValue(),
          MCP_LOG_LEVEL: 'info',
        });
        httpsPort = await freePort();
        httpPort = await freePort();
        const site = NGINX_TEXT.replace(/^\s*listen \[::\].*$/gm, '')
          .replace(/listen 443 /g, `listen 127.0.0.1:${httpsPort} `)
          .replace(/listen 80;/g, `listen 127.0.0.1:${httpPort};`)
          .replace(
            `server ${expected['MCP_HOST']}:${expected['MCP_PORT']};`,
            `server 127.0.0.1:${mcp.port};`,
          );
        const conf = wrapper(site, 'live');
        nginx = startChild(bin(), [
          '-p',
          path.dirname(conf),
          '-c',
          conf,
          '-e',
          path.join(path.dirname(conf), 'error.log'),
          '-g',
          'daemon off;',
        ]);
        await waitFor('nginx to listen', async () => {
          if (nginx?.proc.exitCode !== null) throw new Error(`nginx exited: ${nginx?.output()}`);
          return (await accepts(httpsPort)) && (await accepts(httpPort));
        });
      }, 120_000);
      afterAll(async () => {
        await nginx?.stop();
        await mcp?.stop();
        data.cleanup();
      });

      const viaNginx = (p: string, options: Parameters<typeof send>[1] = {}) =>
        send(`https://127.0.0.1:${httpsPort}${p}`, {
          ca: ca.cert,
          servername: 'pa.example.com',
          // Another loopback address than nginx's own, so the client's address differs from the proxy's.
          localAddress: '127.0.0.2',
          ...options,
          headers: { Host: 'pa.example.com', ...options.headers },
        });

      it('mcp-pa answers through it as https://pa.example.com (X-Forwarded-Proto believed; spoofed headers replaced)', async () => {
        const r = await viaNginx('/.well-known/oauth-protected-resource', {
          headers: {
            'X-Forwarded-Proto': 'http',
            Forwarded: 'for=198.51.100.1;proto=http',
            'X-Forwarded-For': '203.0.113.9',
          },
        });
        expect(r.status, r.text).toBe(200);
        expect((JSON.parse(r.text) as { resource: string }).resource).toBe('https://pa.example.com/mcp');
        expect(r.headers['x-request-id']).toBeDefined();
        expect(r.headers['strict-transport-security']).toMatch(/max-age=/);
      });

      it("mcp-pa sees the client's address (X-Forwarded-For from nginx), not the proxy's nor one the client wrote", async () => {
        const r = await viaNginx('/mcp', {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            Accept: 'application/json, text/event-stream',
            'X-Forwarded-For': '203.0.113.9',
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
        });
        expect(r.status).toBe(401);
        expect(r.headers['www-authenticate']).toContain(
          'https://pa.example.com/.well-known/oauth-protected-resource',
        );
        let ip: string | undefined;
        await waitFor('the audit line', () => {
          for (const line of mcp?.output().split('\n') ?? []) {
            if (!line.includes('"type":"mcp.unauthorized"')) continue;
            ip = (JSON.parse(line) as { audit: { ip: string } }).audit.ip;
          }
          return ip !== undefined;
        });
        expect(ip).toBe('127.0.0.2');
      });

      it('blocks /metrics at the proxy, and redirects plain HTTP to the public https URL', async () => {
        const metrics = await viaNginx('/metrics');
        expect(metrics.status).toBe(404);
        expect(metrics.headers['x-request-id'], 'answered by nginx, not mcp-pa').toBeUndefined();
        const plain = await send(`http://127.0.0.1:${httpPort}/mcp?x=1`, {
          headers: { Host: 'pa.example.com' },
        });
        expect(plain.status).toBe(308);
        expect(plain.headers.location).toBe('https://pa.example.com/mcp?x=1');
      });

      it('mcp-pa refuses plain HTTP that bypasses the proxy; /healthz answers, so the image probe passes over plain HTTP', async () => {
        const direct = await send(`http://127.0.0.1:${mcp?.port}/.well-known/oauth-protected-resource`, {
          localAddress: '127.0.0.2',
          headers: { 'X-Forwarded-Proto': 'https' },
        });
        expect(direct.status).toBe(403);
        expect(runHealthcheck(mcp?.port as number)).toEqual({ status: 0, stderr: '' });
      });
    });
  },
);

// ---------------------------------------------------------------------------------------------------------------

const HAPROXY = findProgram('haproxy', SBIN);
const OPENSSL = findProgram('openssl', SBIN);
const HAPROXY_TEXT = read('deploy/haproxy-tls-passthrough.cfg');

describe('deploy/haproxy-tls-passthrough.cfg: what mcp-pa needs from it', () => {
  const expected = commentEnv(HAPROXY_TEXT);

  it('passes TCP through (no TLS termination, no PROXY protocol mcp-pa cannot read), and mcp-pa trusts no proxy', () => {
    const directives = HAPROXY_TEXT.split('\n').filter((l) => !l.trim().startsWith('#'));
    expect(directives.filter((l) => /^\s*mode\s/.test(l)).map((l) => l.trim())).toEqual(['mode tcp']);
    expect(directives.join('\n')).not.toMatch(/send-proxy|\bssl crt\b|accept-proxy/);
    expect(expected['MCP_TRUST_PROXY']).toBeUndefined();
    const { config } = loadConfig({ env: { ...expected, MCP_SECRET_KEY: secretValue() }, mode: 'http' });
    const plan = planHttpStartup(config);
    expect(plan.tls.kind).toBe('files');
    expect(config.server.tls_client_ca).toBeDefined();
    for (const m of HAPROXY_TEXT.matchAll(/^\s*server \S+ \S+:(\d+)/gm)) expect(Number(m[1])).toBe(plan.port);
  });
});

toolSuite(
  HAPROXY,
  'haproxy',
  'haproxy',
  'deploy/haproxy-tls-passthrough.cfg: haproxy -c, then in front of the built server',
  (bin) => {
    const tmp = lazyTempDir('mcp-pa-haproxy-');
    const expected = commentEnv(HAPROXY_TEXT);
    afterAll(() => tmp.cleanup());
    const check = (text: string, name: string) => {
      const file = path.join(tmp.dir, name);
      writeFileSync(file, text);
      return spawnSync(bin(), ['-c', '-q', '-f', file], { encoding: 'utf8', timeout: 30_000 });
    };

    it('haproxy -c accepts it; a typo is refused', () => {
      const ok = check(HAPROXY_TEXT, 'as-is.cfg');
      expect(ok.status, ok.stdout + ok.stderr).toBe(0);
      const broken = check(HAPROXY_TEXT.replace('balance source', 'balance sorce'), 'broken.cfg');
      expect(broken.status).not.toBe(0);
    });

    describe('live: HAProxy passing TLS through to `mcp-pa serve`', () => {
      let mcp: (Child & { port: number }) | undefined;
      let haproxy: Child | undefined;
      let port = 0;
      let serverFingerprint = '';
      let ca: Awaited<ReturnType<typeof createTestCa>>;
      let caFile = '';
      const data = lazyTempDir('mcp-pa-haproxy-data-');

      beforeAll(async () => {
        ca = await createTestCa();
        const cert = await ca.issue({ dns: ['pa.example.com'], ip: ['127.0.0.1'] });
        serverFingerprint = cert.fingerprint256;
        const files = {
          cert: path.join(tmp.dir, 'fullchain.pem'),
          key: path.join(tmp.dir, 'privkey.pem'),
          ca: path.join(tmp.dir, 'ca.pem'),
        };
        writeFileSync(files.cert, cert.cert);
        writeFileSync(files.key, cert.key, { mode: 0o600 });
        writeFileSync(files.ca, ca.cert);
        caFile = files.ca;
        mcp = await startServe({
          PATH: process.env['PATH'] ?? '',
          HOME: data.dir,
          ...expected,
          // Tests listen on loopback only (the file's 0.0.0.0 is for a real host).
          MCP_HOST: '127.0.0.1',
          MCP_PORT: '0',
          MCP_TLS_CERT: files.cert,
          MCP_TLS_KEY: files.key,
          MCP_TLS_CLIENT_CA: files.ca,
          MCP_DATA_DIR: data.dir,
          MCP_SECRET_KEY: secretValue(),
          // Every request logged, so the health checks can be seen arriving.
          MCP_LOG_LEVEL: 'debug',
        });
        port = await freePort();
        const servers = [...HAPROXY_TEXT.matchAll(/^\s*server .*$/gm)];
        const cfg = HAPROXY_TEXT.replace(/^\s*bind :::443.*$/m, '')
          .replace(/^(\s*)bind :443$/m, `$1bind 127.0.0.1:${port}`)
          .replace(servers[0]?.[0] as string, `    server pa1 127.0.0.1:${mcp.port}`)
          .replace(servers[1]?.[0] as string, '')
          .replace('ca-file @system-ca', `ca-file ${files.ca}`)
          .replace(/inter 5s/, 'inter 300ms');
        const file = path.join(tmp.dir, 'live.cfg');
        writeFileSync(file, cfg);
        haproxy = startChild(bin(), ['-db', '-f', file]);
        await waitFor('haproxy to listen', async () => {
          if (haproxy?.proc.exitCode !== null) throw new Error(`haproxy exited: ${haproxy?.output()}`);
          return accepts(port);
        });
      }, 120_000);
      afterAll(async () => {
        await haproxy?.stop();
        await mcp?.stop();
        data.cleanup();
      });

      it("the client's TLS ends in mcp-pa: it sees mcp-pa's own certificate and gets mcp-pa's answer", async () => {
        const { fingerprint, status } = await new Promise<{ fingerprint: string; status: string }>(
          (resolve, reject) => {
            const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'pa.example.com', ca: ca.cert });
            socket.on('secureConnect', () =>
              socket.write('GET /readyz HTTP/1.1\r\nHost: pa.example.com\r\nConnection: close\r\n\r\n'),
            );
            let text = '';
            socket.on('data', (c: Buffer) => (text += c.toString('utf8')));
            socket.on('end', () =>
              resolve({
                fingerprint: socket.getPeerCertificate().fingerprint256,
                status: text.split('\r\n')[0] ?? '',
              }),
            );
            socket.on('error', reject);
          },
        );
        expect(fingerprint).toBe(serverFingerprint);
        expect(status).toBe('HTTP/1.1 200 OK');
      });

      it("mcp-pa's request for a client certificate (MCP_TLS_CLIENT_CA) reaches the client, naming the CA", () => {
        expect(OPENSSL, 'openssl is missing').not.toBeNull();
        const r = spawnSync(
          OPENSSL as string,
          [
            's_client',
            '-connect',
            `127.0.0.1:${port}`,
            '-servername',
            'pa.example.com',
            '-tls1_2',
            '-CAfile',
            caFile,
          ],
          { input: '', encoding: 'utf8', timeout: 30_000 },
        );
        const names = /Acceptable client certificate CA names\n([^\n]*)/.exec(r.stdout)?.[1] ?? '';
        expect(names, r.stdout + r.stderr).toContain(ca.name.replace(/^CN=/, ''));
      });

      it('its health checks reach mcp-pa over verified TLS (GET /readyz with the public Host)', async () => {
        await waitFor(
          'a health check in the log',
          () =>
            (mcp?.output() ?? '')
              .split('\n')
              .filter((l) => l.includes('"path":"/readyz"') && l.includes('"status":200')).length >= 3,
        );
        expect(haproxy?.output()).not.toMatch(/is DOWN/);
      });
    });
  },
);
