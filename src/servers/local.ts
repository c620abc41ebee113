import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { loadConfig, stderrIsTerminal, type Config } from '../config/index.js';
import { LOCAL_CALLER } from '../mcp/context.js';
import { createMcpServer } from '../mcp/server.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { VERSION } from '../version.js';
import { openLocalApp } from './local-app.js';

function banner(config: Config, zone: string): string {
  return [
    `mcp-pa ${VERSION} — local mode (stdio). This program speaks MCP on stdin/stdout; an MCP client starts it.`,
    `  data:      ${config.database.path}`,
    `  documents: ${config.documents.dir ?? 'kept inside the database'}`,
    `  time zone: ${zone}`,
    '  Claude Desktop (claude_desktop_config.json):',
    '    { "mcpServers": { "personal-assistant": { "command": "npx", "args": ["-y", "mcp-pa"] } } }',
    '  Press Ctrl+C to stop.',
    '',
  ].join('\n');
}

/** Runs the assistant over stdio until the client goes away or a signal arrives. */
export async function runLocalServer(config: Config, logger: Logger): Promise<void> {
  const app = await openLocalApp(config, logger);
  const zone = await app.assistant.timeZone(app.tenant);
  const server = createMcpServer(
    {
      assistant: app.assistant,
      hub: app.hub,
      logger,
      version: VERSION,
      caller: () => LOCAL_CALLER,
      completionTenant: app.tenant,
    },
    zone,
  );
  const transport = new StdioServerTransport();
  let closing: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    if (closing) return closing;
    let done!: () => void;
    let failed!: (err: unknown) => void;
    closing = new Promise<void>((resolve, reject) => {
      done = resolve;
      failed = reject;
    });
    logger.info({ reason }, 'shutting down');
    // server.close() closes the transport, whose onclose lands here again and gets the same promise.
    server
      .close()
      .finally(() => app.close())
      .then(done, failed);
    return closing;
  };
  const exitAfter = (reason: string, code: number): void => {
    void shutdown(reason).then(
      () => process.exit(code),
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => exitAfter('SIGINT', 0));
  process.once('SIGTERM', () => exitAfter('SIGTERM', 0));
  process.stdin.once('end', () => exitAfter('end of input', 0));
  transport.onclose = () => exitAfter('transport closed', 0);
  await server.connect(transport);
  logger.info({ database: config.database.path, version: VERSION }, 'local server ready');
  if (stderrIsTerminal()) process.stderr.write(banner(config, zone));
}

/** Local mode with configuration from the environment (and MCP_CONFIG): what `dist/servers/local-server.js` runs. */
export async function main(): Promise<void> {
  const { config } = loadConfig();
  const logger = createLogger(config.logging.level);
  await runLocalServer(config, logger);
}
