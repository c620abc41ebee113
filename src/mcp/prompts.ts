import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { GetPromptResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { agenda, dashboard } from '../assistant/overview.js';
import { search } from '../assistant/search.js';
import { todayIn } from '../assistant/time.js';
import type { EventView } from '../assistant/views.js';
import type { McpDependencies } from './context.js';

function user(text: string): GetPromptResult['messages'][number] {
  return { role: 'user', content: { type: 'text', text } };
}

export function registerPrompts(server: McpServer, deps: McpDependencies): void {
  const a = deps.assistant;
  const clock = deps.clock ?? (() => new Date());

  server.registerPrompt(
    'daily_briefing',
    {
      title: 'Daily briefing',
      description: 'A short briefing for one day: schedule, what is due, what is overdue, reminders',
      argsSchema: { date: z.string().optional().describe('YYYY-MM-DD, today (default) or tomorrow') },
    },
    async (args, extra) => {
      const t = deps.caller(extra).tenant;
      const day = await agenda(a, t, args.date ?? 'today', clock);
      const dash = await dashboard(a, t, clock);
      return {
        description: `Daily briefing for ${day.date}`,
        messages: [
          user(
            `Give me my daily briefing for ${day.date} (${day.timezone}). Lead with the schedule in time order, then tasks due and overdue, then reminders; keep it brief and suggest the single most important thing to do first.\n\nAgenda:\n${JSON.stringify(day, null, 2)}\n\nReminders and active projects:\n${JSON.stringify({ reminders: dash.reminders, active_projects: dash.active_projects }, null, 2)}`,
          ),
        ],
      };
    },
  );

  server.registerPrompt(
    'weekly_review',
    {
      title: 'Weekly review',
      description:
        'Review the past week and plan the next: progress per project, open and overdue tasks, the coming week',
    },
    async (extra) => {
      const t = deps.caller(extra).tenant;
      const dash = await dashboard(a, t, clock);
      const done = await a.listTasks(t, { completed: true, limit: 50 });
      return {
        description: 'Weekly review',
        messages: [
          user(
            `Run my weekly review. Summarise progress per active project, list what got done, call out overdue work (${dash.overdue_count} overdue tasks), and propose priorities for the week ahead. Ask before changing anything.\n\nDashboard:\n${JSON.stringify(dash, null, 2)}\n\nRecently completed:\n${JSON.stringify(done.items, null, 2)}`,
          ),
        ],
      };
    },
  );

  server.registerPrompt(
    'capture',
    {
      title: 'Capture',
      description:
        'Turn free text (an email, a thought, meeting notes) into proposed tasks, events and notes',
      argsSchema: { text: z.string().describe('What to capture') },
    },
    async (args, extra) => {
      const t = deps.caller(extra).tenant;
      const zone = await a.timeZone(t);
      return {
        description: 'Capture free text',
        messages: [
          user(
            `Today is ${todayIn(zone, clock)} and my time zone is ${zone}. Read the text below and propose tasks (create_todo or add_project_task), calendar events (create_calendar_event) and notes (add_note) it implies, with dates resolved to absolute values. Use search first to avoid duplicates. Show me the proposal and create the items only after I confirm.\n\nText:\n"""\n${args.text}\n"""`,
          ),
        ],
      };
    },
  );

  server.registerPrompt(
    'meeting_prep',
    {
      title: 'Meeting preparation',
      description: 'Prepare for an event: its details plus related notes, tasks and documents',
      argsSchema: {
        event_id: completable(z.string().describe('Event id'), async (value) => {
          if (!deps.completionTenant) return [];
          const rows = await a.store.listItems(deps.completionTenant, {
            kind: 'event',
            order: 'starts_asc',
            starts_from: clock().toISOString(),
            limit: 50,
          });
          return rows
            .map((r) => r.id)
            .filter((id) => id.startsWith(value))
            .slice(0, 20);
        }),
      },
    },
    async (args, extra) => {
      const t = deps.caller(extra).tenant;
      const record = await a.getRecord(t, args.event_id, 'event', 'event_id');
      const event = (await a.viewOf(t, record)) as EventView;
      const related = await search(a, t, {
        query: `${event.title} ${event.attendees.join(' ')}`,
        kinds: ['note', 'task', 'document', 'project'],
        limit: 10,
      });
      return {
        description: `Prepare for ${event.title}`,
        messages: [
          user(
            `Help me prepare for this meeting: goals, what I need to know about the attendees from my notes, open tasks to raise, and documents to have at hand. Suggest an agenda.\n\nEvent:\n${JSON.stringify(event, null, 2)}\n\nRelated items:\n${JSON.stringify(
              related.results.map((r) => r.item),
              null,
              2,
            )}`,
          ),
        ],
      };
    },
  );
}
