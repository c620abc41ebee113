import type { ChildProcess } from 'node:child_process';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCli, tempDir } from '../support/helpers.js';
import { everyToolScenario, ZONE } from './e2e-scenario.js';

// End-to-end: the built `mcp-pa` over stdio, driven by the MCP SDK's real client, on a real SQLite file in a
// temporary HOME. The every-tool scenario (shared with HTTP mode) runs first, then the process must exit cleanly.

describe('mcp-pa local server over stdio (end to end)', () => {
  let home: { dir: string; cleanup: () => void };
  let client: Client;
  let transport: StdioClientTransport;
  let stderr: () => string;
  let closed = false;

  beforeAll(async () => {
    home = tempDir('mcp-pa-e2e-');
    ({ client, transport, stderr } = await connectCli({ HOME: home.dir, MCP_TIMEZONE: ZONE }));
  });

  afterAll(async () => {
    try {
      if (!closed) await client.close();
    } finally {
      home.cleanup();
    }
  });

  everyToolScenario(() => client, { notifications: true });

  it('exits cleanly when the client closes', async () => {
    // The SDK keeps the child process private; its pid is public. Reach for the ChildProcess to see how it ended.
    const child = (transport as unknown as { _process?: ChildProcess })._process;
    const pid = transport.pid;
    expect(pid).not.toBeNull();
    if (!child) throw new Error('the SDK no longer exposes the child process; check the exit another way');
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null)
        resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    closed = true;
    await client.close();
    const { code, signal } = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    // The process is gone (reaped): signalling it fails.
    expect(() => process.kill(pid as number, 0)).toThrow();
    expect(stderr()).not.toMatch(/shutdown failed|"level":(50|60)/);
  });
});
