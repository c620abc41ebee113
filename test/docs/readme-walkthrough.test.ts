/**
 * README.md's quickstart, followed the way a newcomer would. The test reads the README itself — the fenced blocks
 * marked `<!-- walkthrough: NAME -->` — and runs what they say, substituting only what a test must: `mcp-pa` (and
 * `npx -y mcp-pa`) is the package's own bin (package.json `bin`, the built dist/cli.js), HOME is a temporary folder,
 * the clone's placeholder folder is this repository, and port 8000 is a free port.
 *
 * - Local mode: every Claude Desktop entry of the README is started the way Claude Desktop starts it (command, args,
 *   cwd, env) through the MCP SDK's StdioClientTransport, and so is the Claude Code line's command; each lists the
 *   tools, creates a todo and lists it back.
 * - HTTP mode: the README's commands run in order in a real shell (`users add` gets the password typed on its
 *   standard input, `serve --dev` is left running); the server must announce the README's URL and print the
 *   README's trust line. Then an OAuth client connects the way Claude Code does — the SDK's
 *   StreamableHTTPClientTransport with an OAuthClientProvider: 401, metadata, dynamic registration, authorization
 *   code with PKCE S256 and the resource indicator — trusting only the certificate file the README names, while the
 *   browser step (sign-in form, consent form) is done by a real HTTP client posting the pages' forms. A tool call
 *   goes through, and SIGTERM stops the server with exit code 0.
 *
 * Renaming a command, moving a file the README points at, or changing the URL or the certificate path makes it fail.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { BrowserOAuthProvider } from '../auth/browser-oauth-provider.js';
import { Browser } from '../auth/oauth-fixture.js';
import { ROOT, tempDir } from '../support/helpers.js';
import { httpsFetch } from '../support/https.js';

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  bin: Record<string, string>;
  scripts: Record<string, string>;
};
/** The README's placeholder for the clone's folder, which a reader replaces with their own. */
const CLONE_PLACEHOLDER = '/path/to/mcp-pa';
/** The port the README's URLs name (the server's default, checked below), replaced by a free port. */
const README_PORT = '8000';

interface Block {
  readonly lang: string;
  readonly body: string;
}

/** The fenced blocks that follow a `<!-- walkthrough: NAME -->` marker, by name, in the README's order. */
function walkthroughBlocks(markdown: string): Map<string, Block[]> {
  const blocks = new Map<string, Block[]>();
  const re = /<!--\s*walkthrough:\s*([\w-]+)\s*-->\s*\n(?:[ \t]*\n)*```([\w-]*)\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(re)) {
    const name = m[1] as string;
    blocks.set(name, [...(blocks.get(name) ?? []), { lang: m[2] as string, body: m[3] as string }]);
  }
  return blocks;
}

const BLOCKS = walkthroughBlocks(README);

function blocks(name: string): Block[] {
  const found = BLOCKS.get(name) ?? [];
  if (found.length === 0) throw new Error(`README.md has no block marked <!-- walkthrough: ${name} -->`);
  return found;
}

/** The command lines of a shell block (comments and blank lines dropped). */
function shellLines(block: Block): string[] {
  return block.body
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '');
}

function words(line: string): string[] {
  return line.split(/\s+/).filter((w) => w !== '');
}

/** The package's `mcp-pa` executable: what `npm install -g mcp-pa` puts on PATH and `npx -y mcp-pa` runs. */
function binFile(): string {
  const rel = PKG.bin[PKG.name];
  if (rel === undefined) throw new Error(`package.json has no bin named ${PKG.name}`);
  return path.join(ROOT, rel);
}

interface Launch {
  readonly command: string;
  readonly args: string[];
  readonly cwd?: string;
  readonly env: Record<string, string>;
}

/**
 * What a client runs for a stdio entry, with the test's substitutions: `npx -y mcp-pa ARGS` is the package's bin,
 * `node` is this Node.js, and the clone placeholder is this repository. Anything else is a README change this test
 * does not know how to run, and fails.
 */
function launchOf(entry: {
  command: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
}): Launch {
  const args = entry.args ?? [];
  const env = entry.env ?? {};
  let cwd: string | undefined;
  if (entry.cwd !== undefined) {
    if (entry.cwd !== CLONE_PLACEHOLDER)
      throw new Error(`cwd ${entry.cwd} is not the README's clone placeholder ${CLONE_PLACEHOLDER}`);
    cwd = ROOT;
  }
  if (entry.command === 'npx') {
    if (args[0] !== '-y' || args[1] !== PKG.name)
      throw new Error(`npx ${args.join(' ')} does not run this package (${PKG.name})`);
    return { command: process.execPath, args: [binFile(), ...args.slice(2)], ...(cwd ? { cwd } : {}), env };
  }
  if (entry.command === 'node') {
    const script = args[0];
    if (script === undefined) throw new Error('node with no script');
    const file = path.resolve(cwd ?? process.cwd(), script);
    if (!existsSync(file)) throw new Error(`the README's entry runs ${script}, but ${file} does not exist`);
    return { command: process.execPath, args, ...(cwd ? { cwd } : {}), env };
  }
  throw new Error(`the README's entry runs "${entry.command}", which this walkthrough cannot stand in for`);
}

function structured(result: unknown): Record<string, unknown> {
  const r = result as { isError?: boolean; structuredContent?: Record<string, unknown>; content?: unknown };
  expect(r.isError ?? false, JSON.stringify(r.content)).toBe(false);
  expect(r.structuredContent).toBeDefined();
  return r.structuredContent as Record<string, unknown>;
}

/** Lists the tools, creates a todo and finds it in list_todos. */
async function useTodos(client: Client, title: string): Promise<void> {
  const names = (await client.listTools()).tools.map((t) => t.name);
  expect(names).toEqual(expect.arrayContaining(['create_todo', 'list_todos', 'get_dashboard']));
  const created = structured(await client.callTool({ name: 'create_todo', arguments: { title } }));
  expect((created['todo'] as { title: string }).title).toBe(title);
  const listed = structured(await client.callTool({ name: 'list_todos', arguments: {} }));
  expect((listed['items'] as { title: string }[]).map((t) => t.title)).toContain(title);
}

const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function home(): string {
  const t = tempDir('mcp-pa-readme-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** `~/…` of the README, under the test's HOME. */
function expandHome(p: string, homeDir: string): string {
  return p.startsWith('~/') ? path.join(homeDir, p.slice(2)) : p;
}

/** Where the README says local mode keeps its data with no configuration. */
function readmeLocalDataFile(): string {
  const m = README.match(/keeps its data\s+in `([^`]+)`/);
  if (!m) throw new Error('README.md no longer says where local mode keeps its data');
  return m[1] as string;
}

async function runStdio(launch: Launch, label: string): Promise<void> {
  const homeDir = home();
  const transport = new StdioClientTransport({
    command: launch.command,
    args: launch.args,
    ...(launch.cwd ? { cwd: launch.cwd } : {}),
    // Claude Desktop passes the entry's env over a minimal inherited environment; HOME is the test's.
    env: { HOME: homeDir, ...launch.env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const client = new Client({ name: 'readme-walkthrough', version: '1.0.0' });
  try {
    await client.connect(transport).catch((err: unknown) => {
      throw new Error(`${label}: the server did not start (${(err as Error).message}):\n${stderr}`);
    });
    await useTodos(client, `README walkthrough (${label})`);
  } finally {
    await client.close();
  }
  const dataFile = expandHome(readmeLocalDataFile(), homeDir);
  expect(existsSync(dataFile), `${label}: the data is where the README says (${dataFile})`).toBe(true);
}

describe('README quickstart: local mode', () => {
  it('the clone step builds what the from-a-clone entry runs', () => {
    const lines = blocks('clone').flatMap(shellLines);
    expect(lines).toEqual(['npm ci']);
    // npm ci runs the prepare script: it must build dist/.
    expect(PKG.scripts['prepare']).toMatch(/\bnpm run build\b/);
    expect(PKG.scripts['build']).toBeDefined();
  });

  it('every Claude Desktop entry starts a server that lists tools, creates a todo and lists it', async () => {
    const entries = blocks('claude-desktop').flatMap((b) => {
      expect(b.lang).toBe('json');
      const config = JSON.parse(b.body) as {
        mcpServers: Record<
          string,
          { command: string; args?: string[]; cwd?: string; env?: Record<string, string> }
        >;
      };
      return Object.entries(config.mcpServers);
    });
    // Both forms: the published package through npx, and a clone.
    expect(entries.map(([, e]) => e.command).sort()).toEqual(['node', 'npx']);
    for (const [name, entry] of entries)
      await runStdio(launchOf(entry), `Claude Desktop ${entry.command} ${name}`);
  }, 60_000);

  it("the Claude Code line's command starts a working server", async () => {
    const lines = blocks('claude-code').flatMap(shellLines);
    expect(lines).toHaveLength(1);
    const w = words(lines[0] as string);
    expect(w.slice(0, 3)).toEqual(['claude', 'mcp', 'add']);
    const dash = w.indexOf('--');
    expect(dash, 'claude mcp add NAME -- COMMAND…').toBeGreaterThan(3);
    const [command, ...args] = w.slice(dash + 1);
    await runStdio(launchOf({ command: command as string, args }), 'Claude Code');
  }, 60_000);
});

// ------------------------------------------------------------------------------------------------ HTTP mode

const REDIRECT_URI = 'http://127.0.0.1:53682/callback';

/** The SDK posts token requests with URLSearchParams bodies; the CA-trusting fetch sends strings. */
function sdkFetch(base: typeof fetch): FetchLike {
  return (input, init) => {
    const body = init?.body instanceof URLSearchParams ? init.body.toString() : init?.body;
    return base(input, { ...init, ...(body !== undefined ? { body } : {}) });
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

/** Runs a long-running README line in the shell (exec: signals reach the server itself). */
function startInShell(line: string, env: Record<string, string>): Running {
  const child = spawn('/bin/sh', ['-c', `exec ${line}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

/** The "http server ready" log line's fields, once it appears (60 s at most). */
async function whenReady(run: Running): Promise<{ url: string; mcp: string }> {
  let alive = true;
  void run.exited.then(() => (alive = false));
  const deadline = Date.now() + 60_000;
  for (;;) {
    for (const line of run.stderr().split('\n')) {
      if (!line.includes('"http server ready"')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string; mcp?: string };
        if (entry.msg === 'http server ready') return { url: String(entry.url), mcp: String(entry.mcp) };
      } catch {
        // a line still being written
      }
    }
    if (!alive) throw new Error(`the server exited before it was ready:\n${run.stderr()}`);
    if (Date.now() > deadline) throw new Error(`the server was not ready within 60 s:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('README quickstart: HTTP mode', () => {
  it('the install step installs this package, whose bin is built', () => {
    const lines = blocks('install').flatMap(shellLines);
    expect(lines).toEqual([`npm install -g ${PKG.name}`]);
    // `npm install -g mcp-pa` puts the bin named mcp-pa on PATH: the commands below use that name.
    expect(PKG.name).toBe('mcp-pa');
    expect(existsSync(binFile()), `${binFile()} (npm run build)`).toBe(true);
  });

  it("runs the README's commands, then an OAuth client signs in through the pages and calls a tool", async () => {
    const homeDir = home();
    // `mcp-pa` on PATH, as `npm install -g mcp-pa` leaves it: a shim running the package's bin.
    const binDir = path.join(homeDir, 'bin');
    mkdirSync(binDir);
    const shim = path.join(binDir, 'mcp-pa');
    writeFileSync(
      shim,
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(binFile())} "$@"\n`,
    );
    chmodSync(shim, 0o755);
    const baseEnv = { PATH: `${binDir}:${process.env['PATH'] ?? ''}`, HOME: homeDir };

    // The README's URL names the default port; the test serves on a free one instead.
    const clientLines = blocks('http-client').flatMap(shellLines);
    const add = clientLines.map(words).find((w) => w.slice(0, 3).join(' ') === 'claude mcp add');
    expect(add, 'claude mcp add … in the http-client block').toBeDefined();
    expect(add?.slice(3, 5)).toEqual(['--transport', 'http']);
    const readmeUrl = new URL(add?.at(-1) as string);
    expect(readmeUrl.port).toBe(README_PORT);
    const check = spawnSync('/bin/sh', ['-c', 'mcp-pa config check'], { env: baseEnv, encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    expect(
      String((JSON.parse(check.stdout) as { effective: { server: { port: number } } }).effective.server.port),
    ).toBe(README_PORT);
    const port = await freePort();
    const env = { ...baseEnv, MCP_PORT: String(port) };
    const resource = new URL(readmeUrl.href);
    resource.port = String(port);

    // The README's trust line: NODE_EXTRA_CA_CERTS=FILE claude.
    const trust = clientLines.map((l) => l.match(/^NODE_EXTRA_CA_CERTS=(\S+)\s+claude\b/)).find((m) => m);
    expect(trust, 'NODE_EXTRA_CA_CERTS=… claude in the http-client block').toBeTruthy();
    const caFile = expandHome(trust?.[1] as string, homeDir);

    // The README's commands, in order.
    const password = `pw-${randomBytes(12).toString('base64url')}`;
    let username: string | undefined;
    let server: Running | undefined;
    for (const readmeLine of blocks('http').flatMap(shellLines)) {
      const line = readmeLine.replace(/\bnpx -y mcp-pa\b/g, 'mcp-pa');
      const w = words(line);
      if (w[0] === 'mcp-pa' && w[1] === 'serve') {
        expect(server, 'one server').toBeUndefined();
        server = startInShell(line, env);
        const s = server;
        cleanups.push(async () => {
          if (s.child.exitCode === null && s.child.signalCode === null) {
            s.child.kill('SIGKILL');
            await s.exited;
          }
        });
        continue;
      }
      if (w[0] === 'mcp-pa' && w[1] === 'users' && w[2] === 'add') username = w[3];
      // The password, typed when asked (twice on a terminal; the first line of standard input otherwise).
      const r = spawnSync('/bin/sh', ['-c', line], {
        env,
        input: `${password}\n${password}\n`,
        encoding: 'utf8',
        timeout: 90_000,
      });
      expect(r.status, `README command "${readmeLine}" failed:\n${r.stderr}`).toBe(0);
    }
    expect(username, 'the README creates an account with mcp-pa users add').toBeDefined();
    expect(server, 'the README starts the server with mcp-pa serve').toBeDefined();
    const run = server as Running;
    const ready = await whenReady(run);

    // The server serves the URL the README gives, and prints the README's trust line.
    expect(ready.mcp).toBe(resource.href);
    expect(run.stderr()).toContain(`NODE_EXTRA_CA_CERTS=${caFile}`);
    expect(existsSync(caFile), `the certificate the README names (${caFile})`).toBe(true);

    // The client trusts exactly that certificate (no verification switched off).
    const ca = readFileSync(caFile, 'utf8');
    const provider = new BrowserOAuthProvider(
      new Browser(ca),
      { username: username as string, password },
      {
        client_name: 'README walkthrough',
        redirect_uris: [REDIRECT_URI],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    );
    const transport = () =>
      new StreamableHTTPClientTransport(resource, {
        authProvider: provider,
        fetch: sdkFetch(httpsFetch(ca)),
      });

    // As Claude Code's Authenticate: 401 → metadata → registration → browser sign-in and Allow → token.
    const first = transport();
    const firstClient = new Client({ name: 'readme-walkthrough', version: '1.0.0' });
    await expect(firstClient.connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    expect(provider.client?.client_id, 'the client registered itself').toBeTruthy();
    expect(provider.authorizationUrls).toHaveLength(1);
    const az = provider.authorizationUrls[0] as URL;
    expect(az.origin).toBe(resource.origin);
    expect(az.searchParams.get('code_challenge_method')).toBe('S256');
    expect(az.searchParams.get('resource')).toBe(resource.href);
    expect(provider.consentPage, 'the sign-in led to a consent page, and Allow was pressed').toBeDefined();
    await first.finishAuth(provider.code as string);
    await firstClient.close();
    expect(provider.saved?.access_token).toBeTruthy();

    const client = new Client({ name: 'readme-walkthrough', version: '1.0.0' });
    await client.connect(transport());
    try {
      await useTodos(client, 'README walkthrough (HTTP mode)');
    } finally {
      await client.close();
    }

    run.child.kill('SIGTERM');
    expect(await run.exited, run.stderr().slice(-2000)).toBe(0);
  }, 180_000);
});
