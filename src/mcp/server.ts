import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  getLiteralValue,
  getObjectShape,
  safeParse,
  type AnyObjectSchema,
} from '@modelcontextprotocol/sdk/server/zod-compat.js';
import {
  ErrorCode,
  McpError,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
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

/** "arguments: Invalid input: expected record, received string" for each issue of a failed parse. */
function describeIssues(error: unknown): string {
  const issues = (error as { issues?: { path?: PropertyKey[]; message?: string }[] }).issues ?? [];
  const each = issues.map((i) => {
    const path = (i.path ?? []).map(String);
    const where = (path[0] === 'params' ? path.slice(1) : path).join('.');
    return `${where || 'params'}: ${i.message ?? 'invalid'}`;
  });
  return each.length > 0 ? each.join('; ') : String((error as Error).message ?? error);
}

/**
 * Params that do not fit a method's schema are the caller's error (-32602 Invalid params), not the server's. The
 * SDK parses each request against its method's schema before any handler runs and lets the parse error through
 * as -32603 Internal error (modelcontextprotocol/typescript-sdk#2284): e.g. tools/call whose `arguments` is a
 * string, an array or null. So every handler registered after this is installed under a schema that takes any
 * params of its method, and the request is parsed against the real schema here, failing with -32602.
 */
function invalidParamsForBadRequests(server: McpServer): void {
  const inner = server.server;
  const register = inner.setRequestHandler.bind(inner) as (
    schema: AnyObjectSchema,
    handler: (request: unknown, extra: unknown) => unknown,
  ) => void;
  const replacement = (
    schema: AnyObjectSchema,
    handler: (request: unknown, extra: unknown) => unknown,
  ): void => {
    const shape = getObjectShape(schema);
    const method = shape?.['method'] !== undefined ? getLiteralValue(shape['method']) : undefined;
    if (typeof method !== 'string') {
      register(schema, handler);
      return;
    }
    register(z.looseObject({ method: z.literal(method) }), (request, extra) => {
      const parsed = safeParse(schema, request);
      if (!parsed.success) {
        throw new McpError(
          ErrorCode.InvalidParams,
          `Invalid params for ${method}: ${describeIssues(parsed.error)}`,
        );
      }
      return handler(parsed.data, extra);
    });
  };
  inner.setRequestHandler = replacement as unknown as typeof inner.setRequestHandler;
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
  invalidParamsForBadRequests(server);
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
