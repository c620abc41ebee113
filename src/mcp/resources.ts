import { ResourceTemplate, type McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { AssistantError } from '../assistant/errors.js';
import { agenda } from '../assistant/overview.js';
import { addDays, todayIn } from '../assistant/time.js';
import { ITEM_KINDS, type ItemKind } from '../storage/model.js';
import type { CallerContext, McpDependencies } from './context.js';
import { SCOPES } from './context.js';

const JSON_MIME = 'application/json';

export const COLLECTIONS: Record<string, { kind: ItemKind | 'profile'; title: string; description: string }> =
  {
    'pa://status': { kind: 'profile', title: 'Current status', description: 'Your profile and time zone' },
    'pa://projects': {
      kind: 'project',
      title: 'Projects',
      description: 'The 100 most recent projects (summaries)',
    },
    'pa://todos': {
      kind: 'task',
      title: 'Todos',
      description: 'The next 100 open tasks by due date (summaries)',
    },
    'pa://calendar': { kind: 'event', title: 'Calendar', description: 'Events of the next 30 days' },
    'pa://documents': {
      kind: 'document',
      title: 'Documents',
      description: 'The 100 most recent documents (metadata)',
    },
    'pa://notes': { kind: 'note', title: 'Notes', description: 'The 100 most recently changed notes' },
  };

/** URIs a change makes stale: the item, its collection, and the project (progress) for a task. */
export function urisFor(change: { kind: ItemKind; id: string } | { kind: 'profile' }): string[] {
  if (change.kind === 'profile') return ['pa://status'];
  const collection = Object.entries(COLLECTIONS).find(([, c]) => c.kind === change.kind)?.[0];
  const uris = [`pa://${change.kind}/${change.id}`];
  if (collection) uris.push(collection);
  if (change.kind === 'task') uris.push('pa://projects');
  if (change.kind === 'project') uris.push('pa://status');
  return uris;
}

function json(uri: string, value: unknown): ReadResourceResult {
  return { contents: [{ uri, mimeType: JSON_MIME, text: JSON.stringify(value, null, 2) }] };
}

function notFoundError(err: unknown): never {
  if (err instanceof AssistantError) {
    throw new McpError(err.code === 'not_found' ? -32002 : ErrorCode.InvalidParams, err.message, {
      hint: err.hint,
    });
  }
  throw err;
}

export function registerResources(server: McpServer, deps: McpDependencies): void {
  const a = deps.assistant;
  const clock = deps.clock ?? (() => new Date());
  const caller = (extra: { authInfo?: unknown; sessionId?: string | undefined }): CallerContext => {
    const c = deps.caller(extra);
    if (!c.scopes.has(SCOPES.read))
      throw new McpError(ErrorCode.InvalidRequest, `reading resources needs the ${SCOPES.read} scope`);
    return c;
  };

  for (const [uri, meta] of Object.entries(COLLECTIONS)) {
    server.registerResource(
      uri.slice('pa://'.length),
      uri,
      { title: meta.title, description: meta.description, mimeType: JSON_MIME },
      async (u, extra) => {
        const t = caller(extra).tenant;
        switch (meta.kind) {
          case 'profile':
            return json(u.href, await a.getStatus(t));
          case 'project':
            return json(u.href, await a.listProjects(t, { limit: 100 }));
          case 'task':
            return json(u.href, await a.listTasks(t, { completed: false, limit: 100 }));
          case 'event':
            return json(u.href, await a.listEvents(t, { limit: 100 }));
          case 'document':
            return json(u.href, await a.listDocuments(t, { limit: 100 }));
          case 'note':
            return json(u.href, await a.listNotes(t, { limit: 100 }));
        }
      },
    );
  }

  // Registered before pa://{kind}/{id} so "agenda" is never taken for a kind.
  server.registerResource(
    'agenda',
    new ResourceTemplate('pa://agenda/{date}', {
      list: undefined,
      complete: {
        date: async (value) => {
          const zone = deps.completionTenant ? await a.timeZone(deps.completionTenant) : 'UTC';
          const today = todayIn(zone, clock);
          return ['today', 'tomorrow', today, addDays(today, 1), addDays(today, 2)].filter((d) =>
            d.startsWith(value),
          );
        },
      },
    }),
    {
      title: 'Agenda for a day',
      description:
        'Events, tasks due and (for today) overdue tasks of one day: YYYY-MM-DD, today or tomorrow',
      mimeType: JSON_MIME,
    },
    async (u, vars, extra) => {
      try {
        return json(u.href, await agenda(a, caller(extra).tenant, String(vars['date']), clock));
      } catch (err) {
        notFoundError(err);
      }
    },
  );

  server.registerResource(
    'item',
    new ResourceTemplate('pa://{kind}/{id}', {
      list: undefined,
      complete: {
        kind: (value) => ITEM_KINDS.filter((k) => k.startsWith(value)),
        id: async (value, context) => {
          const kind = context?.arguments?.['kind'];
          if (!kind || !(ITEM_KINDS as readonly string[]).includes(kind)) return [];
          if (!deps.completionTenant) return [];
          const rows = await a.store.listItems(deps.completionTenant, {
            kind: kind as ItemKind,
            order: 'updated_desc',
            limit: 100,
          });
          return rows
            .map((r) => r.id)
            .filter((id) => id.startsWith(value))
            .slice(0, 20);
        },
      },
    }),
    {
      title: 'One item',
      description: 'Any project, task, event, document or note by kind and id',
      mimeType: JSON_MIME,
    },
    async (u, vars, extra) => {
      const kind = String(vars['kind']);
      const id = String(vars['id']);
      if (!(ITEM_KINDS as readonly string[]).includes(kind)) {
        throw new McpError(
          ErrorCode.InvalidParams,
          `unknown kind "${kind}" (allowed: ${ITEM_KINDS.join(', ')})`,
        );
      }
      try {
        const t = caller(extra).tenant;
        if (kind === 'project') return json(u.href, await a.getProject(t, id));
        const record = await a.getRecord(t, id, kind as ItemKind);
        return json(u.href, await a.viewOf(t, record));
      } catch (err) {
        notFoundError(err);
      }
    },
  );
}
