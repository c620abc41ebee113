/**
 * The reference for the HTTP benchmark: the MCP SDK's stateless Express example
 * (@modelcontextprotocol/sdk/examples/server/simpleStatelessStreamableHttp) — `createMcpExpressApp()`, and a new
 * McpServer plus a new stateless StreamableHTTPServerTransport for every POST — served over HTTPS with the same
 * certificate as ours. The example only listens on plain HTTP port 3000 and logs every request, so the pattern is
 * rebuilt here around `https.createServer` without the per-request console output.
 *
 * The server built per request registers mcp-pa's own tools, resources and prompts, so `tools/list` answers exactly
 * what ours answers. Run as a child process: prints `listening <port>` on stdout, stops on SIGTERM.
 *
 *   node http-baseline-server.js CERT KEY
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Assistant } from '../src/assistant/assistant.js';
import { ChangeHub, LOCAL_CALLER } from '../src/mcp/context.js';
import { createMcpServer } from '../src/mcp/server.js';
import { createLogger } from '../src/observability/logger.js';
import { SqliteStore } from '../src/storage/sqlite/sqlite-store.js';

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) throw new Error('usage: http-baseline-server CERT KEY');

const logger = createLogger('silent');
const store = new SqliteStore({ path: ':memory:' });
const assistant = new Assistant({
  store,
  defaultTimeZone: 'UTC',
  maxUploadBytes: 10 * 1024 * 1024,
  storageInfo: { database: 'sqlite::memory:', documents: 'database' },
});
const hub = new ChangeHub();
const getServer = () =>
  createMcpServer(
    {
      assistant,
      hub,
      logger,
      version: 'bench',
      caller: () => LOCAL_CALLER,
      completionTenant: LOCAL_CALLER.tenant,
    },
    'UTC',
  );

const app = createMcpExpressApp();
app.post('/mcp', async (req, res) => {
  const server = getServer();
  try {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
  } catch {
    if (!res.headersSent) {
      res
        .status(500)
        .json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  }
});

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, app);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
