import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, tempDir } from '../support/helpers.js';

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'lifecycle-test', version: '1' },
  },
};

interface Run {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

function start(env: Record<string, string> = {}): Run & { home: string } {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const child = spawn(process.execPath, [CLI], {
    env: { PATH: process.env['PATH'] ?? '', HOME: t.dir, MCP_LOG_LEVEL: 'info', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  cleanups.push(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited, home: t.dir };
}

async function initialize(run: Run): Promise<void> {
  run.child.stdin.write(`${JSON.stringify(INIT)}\n`);
  while (!run.stdout().includes('\n')) await new Promise((r) => setTimeout(r, 20));
}

describe('local server lifecycle', () => {
  it('keeps stdout for the protocol: every line is JSON-RPC, logs go to stderr', async () => {
    const run = start();
    await initialize(run);
    run.child.stdin.end();
    const { code } = await run.exited;
    expect(code).toBe(0);
    const lines = run.stdout().trim().split('\n');
    for (const line of lines) expect((JSON.parse(line) as { jsonrpc: string }).jsonrpc).toBe('2.0');
    expect(run.stderr()).toContain('local server ready');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('exits cleanly on %s', async (signal) => {
    const run = start();
    await initialize(run);
    run.child.kill(signal);
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(run.stderr()).toContain(`"reason":"${signal}"`);
  });

  it('exits cleanly at end of input and leaves a consistent, owner-only database', async () => {
    const run = start();
    await initialize(run);
    run.child.stdin.end();
    expect((await run.exited).code).toBe(0);
    const db = path.join(run.home, '.config', 'mcp-pa', 'database.sqlite');
    expect(existsSync(db)).toBe(true);
    expect(statSync(db).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(db)).mode & 0o777).toBe(0o700);
  });

  it('refuses a bad configuration with every problem listed and exit code 1', async () => {
    const run = start({ MCP_TIMEZONE: 'Mars/Olympus', MCP_MAX_FILE_SIZE_MB: 'lots' });
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.stderr()).toContain('assistant.timezone');
    expect(run.stderr()).toContain('documents.max_file_size_mb');
    expect(run.stdout()).toBe('');
  });
});
