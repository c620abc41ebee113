import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';

/** The repository root, whether this file runs from test/support/ or compiled into .bench-build/test/support/. */
export const ROOT = ((): string => {
  const up = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  return path.basename(up) === '.bench-build' ? path.dirname(up) : up;
})();
export const CLI = path.join(ROOT, 'dist/cli.js');

/** A private temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'mcp-pa-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** How a run of the built CLI ended. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the built CLI asynchronously (so servers in this process can answer it) with only PATH and `env` in its
 * environment; killed after two minutes.
 */
export function runCli(args: readonly string[], env: Record<string, string>): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Spawns the built `mcp-pa` over stdio and connects the MCP SDK's real client to it. */
export async function connectCli(
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ client: Client; transport: StdioClientTransport; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, ...args],
    env: { PATH: process.env['PATH'] ?? '', MCP_LOG_LEVEL: 'warn', ...env },
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const client = new Client({ name: 'mcp-pa-tests', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr: () => err };
}

/** A checksum of every row of every table of a SQLite file (order-independent within a table). */
export function databaseChecksum(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    const tables = (
      db
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .all() as {
        name: string;
      }[]
    ).map((t) => t.name);
    const hash = createHash('sha256');
    for (const t of tables) {
      if (t.startsWith('items_fts_')) continue;
      const rows = db.prepare(`SELECT * FROM "${t}"`).raw().all() as unknown[][];
      const lines = rows
        .map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)))
        .sort();
      hash.update(`${t}\n${lines.join('\n')}\n`);
    }
    return hash.digest('hex');
  } finally {
    db.close();
  }
}
