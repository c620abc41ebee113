#!/usr/bin/env node
/**
 * Entry point for `node dist/servers/local-server.js`: local mode (stdio) with configuration from the environment
 * and MCP_CONFIG. The `mcp-pa` command (src/cli.ts) adds flags and subcommands.
 */
import { main } from './local.js';

main().catch((err: unknown) => {
  process.stderr.write(`mcp-pa: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
