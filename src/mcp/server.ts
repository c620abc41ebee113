import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { McpDependencies } from './context.js';
import { registerPrompts } from './prompts.js';
import { registerResources, urisFor } from './resources.js';
import { registerTools } from './tools.js';

export function instructions(timeZone: string): string {
  return [
    'This server is the user’s personal assistant: projects, tasks (todos), calendar events, documents, notes and their profile.',
    'Start from get_dashboard to see what is active, due and coming up.',
    'Search before adding anything, to avoid duplicates; pass client_ref when you may retry a create.',
    `Dates without an offset are read in the user’s time zone (now ${timeZone}; get_status has the current one). A date (YYYY-MM-DD) stays a date.`,
    'Lists are paged: pass next_cursor back as cursor. Deleting moves items to the trash; restore_items brings them back.',
    'Errors come back as tool results naming the field and what is allowed: fix the call and retry.',
  ].join('\n');
}

/**
 * One MCP server over the assistant: the same tools, resources and prompts for every transport. Without
 * `subscriptions` (stateless HTTP, where no stream outlives a request) it does not offer resource subscriptions.
 */
export function createMcpServer(
  deps: McpDependencies,
  timeZone: string,
  options: { subscriptions?: boolean } = {},
): McpServer {
  const subscriptions = options.subscriptions ?? true;
  const server = new McpServer(
    { name: 'mcp-pa', title: 'Personal Assistant', version: deps.version },
    {
      instructions: instructions(timeZone),
      capabilities: {
        logging: {},
        completions: {},
        resources: { subscribe: subscriptions, listChanged: subscriptions },
      },
    },
  );
  registerTools(server, deps);
  registerResources(server, deps);
  registerPrompts(server, deps);
  if (!subscriptions) return server;

  const subscribed = new Set<string>();
  let tenant: string | undefined;
  server.server.setRequestHandler(SubscribeRequestSchema, async (req, extra) => {
    tenant = deps.caller(extra).tenant;
    subscribed.add(req.params.uri);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    subscribed.delete(req.params.uri);
    return {};
  });
  const stop = deps.hub.subscribe((t, change) => {
    if (t !== tenant || subscribed.size === 0 || !server.isConnected()) return;
    for (const uri of urisFor(change)) {
      if (subscribed.has(uri)) void server.server.sendResourceUpdated({ uri }).catch(() => undefined);
    }
  });
  const onclose = server.server.onclose;
  server.server.onclose = () => {
    stop();
    onclose?.();
  };
  return server;
}
