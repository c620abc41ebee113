/**
 * `mcp-pa audit [--since 1h] [--type TYPE] [--tenant USER] [--limit N] [--json]` and `mcp-pa audit prune`: the
 * audit trail (src/security/audit.ts) in HTTP mode's database. The first shows the events, newest first; prune
 * deletes those older than security.audit_retention_days (running servers also do so daily).
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import {
  AUDIT_EVENT_TYPES,
  AuditLog,
  MAX_QUERY_LIMIT,
  parseSince,
  queryAudit,
  type AuditQuery,
  type StoredAuditEvent,
} from '../security/audit.js';
import type { PostgresStore } from '../storage/postgres/index.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  formatTable,
  shortTime,
  UsageError,
  parseOptions,
  wholeNumberOption,
} from './common.js';
import type { AdminIo } from './index.js';
import { formatGroupHelp, parserOptions, type GroupHelp } from './help.js';
import { openAdminStore } from './store.js';

const DEFAULT_LIMIT = 1000;
/** Characters of a token hash shown in the table (--json shows all of it). */
const TOKEN_HASH_SHOWN = 12;

export const AUDIT_USAGE = `usage: mcp-pa audit [--since WHEN] [--type TYPE] [--tenant USER] [--limit N] [--json]
       mcp-pa audit prune
  audit     the audit events, newest first
    --since WHEN    only events since: a duration back (45s, 30m, 1h, 7d) or an ISO 8601 date (2025-01-31)
    --type TYPE     only events of this type
    --tenant USER   only events about this account (username or account id)
    --limit N       at most N events (default ${DEFAULT_LIMIT}, at most ${MAX_QUERY_LIMIT})
    --json          the events as JSON
  prune     delete the events older than security.audit_retention_days (MCP_AUDIT_RETENTION_DAYS)
event types: ${AUDIT_EVENT_TYPES.join(', ')}`;

/** `mcp-pa audit …`: each command's options (its parser is built from them) and help. */
export const AUDIT_HELP: GroupHelp<'show' | 'prune'> = {
  group: 'audit',
  summary: "the security audit trail in HTTP mode's database (docs/security.md)",
  defaultAction: 'show',
  actions: {
    show: {
      command: 'audit',
      summary: 'the audit events, newest first',
      usage: ['mcp-pa audit [--since WHEN] [--type TYPE] [--tenant USER] [--limit N] [--json] [options]'],
      options: {
        since: {
          type: 'string',
          value: 'WHEN',
          description:
            'only events since: a duration back (45s, 30m, 1h, 7d) or an ISO 8601 date (2025-01-31)',
        },
        type: { type: 'string', value: 'TYPE', description: 'only events of this type (see the list below)' },
        tenant: {
          type: 'string',
          value: 'USER',
          description: 'only events about this account (username or account id)',
        },
        limit: {
          type: 'string',
          value: 'N',
          description: `at most N events (default ${DEFAULT_LIMIT}, at most ${MAX_QUERY_LIMIT})`,
        },
        json: { type: 'boolean', description: 'print the events as JSON' },
      },
      notes: [`Event types: ${AUDIT_EVENT_TYPES.join(', ')}.`],
      examples: ['mcp-pa audit --since 1h', 'mcp-pa audit --type auth.sign_in.failure --tenant alice --json'],
    },
    prune: {
      command: 'audit prune',
      summary: 'delete the events older than security.audit_retention_days (MCP_AUDIT_RETENTION_DAYS)',
      usage: ['mcp-pa audit prune [options]'],
      options: {},
      notes: ['Running servers also prune once a day.'],
      examples: ['mcp-pa audit prune'],
    },
  },
};

function parseLimit(text: string): number {
  return wholeNumberOption(text, '--limit', MAX_QUERY_LIMIT);
}

function parseType(text: string): string {
  if (!(AUDIT_EVENT_TYPES as readonly string[]).includes(text)) {
    throw new UsageError(`--type: unknown event type "${text}" (allowed: ${AUDIT_EVENT_TYPES.join(', ')})`);
  }
  return text;
}

async function withStore<T>(
  config: Config,
  logger: Logger,
  fn: (store: PostgresStore) => Promise<T>,
): Promise<T> {
  const store = await openAdminStore(config, logger);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** An account's id from its username; anything else is taken as an account id. */
async function tenantId(store: PostgresStore, user: string): Promise<string> {
  const rows = await store.withServerState(
    async (sql) => (await sql.query<{ id: string }>('SELECT id FROM users WHERE username = $1', [user])).rows,
  );
  return rows[0]?.id ?? user;
}

function cell(value: string | undefined): string {
  return value === undefined || value === '' ? '-' : value;
}

function render(events: readonly StoredAuditEvent[]): string {
  return formatTable(
    ['TIME', 'TYPE', 'TENANT', 'CLIENT', 'IP', 'TOKEN HASH', 'DETAILS'],
    events.map((e) => [
      shortTime(e.at, '-'),
      e.type,
      cell(e.tenant),
      cell(e.clientId),
      cell(e.ip),
      e.tokenHash === undefined
        ? '-'
        : e.tokenHash.length > TOKEN_HASH_SHOWN
          ? `${e.tokenHash.slice(0, TOKEN_HASH_SHOWN)}…`
          : e.tokenHash,
      e.details === undefined || Object.keys(e.details).length === 0 ? '-' : JSON.stringify(e.details),
    ]),
  );
}

async function show(args: string[], config: Config, io: AdminIo, logger: Logger): Promise<number> {
  const values = parseOptions(args, parserOptions(AUDIT_HELP.actions.show.options));
  const query: AuditQuery = {};
  if (typeof values['since'] === 'string') {
    try {
      query.since = parseSince(values['since']);
    } catch (err) {
      throw new UsageError(`--${(err as Error).message}`);
    }
  }
  if (typeof values['type'] === 'string') query.type = parseType(values['type']);
  if (typeof values['limit'] === 'string') query.limit = parseLimit(values['limit']);
  const user = values['tenant'];
  if (typeof user === 'string' && user.trim() === '') throw new UsageError('--tenant must not be empty');
  const events = await withStore(config, logger, async (store) => {
    if (typeof user === 'string') query.tenant = await tenantId(store, user);
    return queryAudit(store, query);
  });
  if (values['json'] === true) {
    io.stdout.write(`${JSON.stringify(events, null, 2)}\n`);
    return EXIT_OK;
  }
  if (events.length === 0) {
    io.stdout.write('No audit events match.\n');
    return EXIT_OK;
  }
  const limit = query.limit ?? DEFAULT_LIMIT;
  const more =
    events.length === limit
      ? `\nThe newest ${limit} events are shown; narrow with --since, --type or --tenant, or raise --limit.`
      : '';
  io.stdout.write(`${render(events)}${more}\n`);
  return EXIT_OK;
}

async function prune(args: string[], config: Config, io: AdminIo, logger: Logger): Promise<number> {
  parseOptions(args, parserOptions(AUDIT_HELP.actions.prune.options));
  const days = config.security.audit_retention_days;
  const deleted = await withStore(config, logger, async (store) => {
    const audit = new AuditLog({ store, logger, retentionDays: days, flushIntervalMs: 0 });
    try {
      return await audit.prune();
    } finally {
      await audit.close();
    }
  });
  io.stdout.write(
    `Deleted ${deleted} audit event${deleted === 1 ? '' : 's'} older than ${days} day${days === 1 ? '' : 's'} ` +
      '(security.audit_retention_days).\n',
  );
  return EXIT_OK;
}

/** `mcp-pa audit …` (args: what follows `audit`). Exit code 0 success, 1 failure, 2 usage error. */
export async function runAuditCommand(
  args: string[],
  config: Config,
  io: AdminIo,
  logger: Logger,
): Promise<number> {
  const [first, ...rest] = args;
  const what = first === 'prune' ? 'audit prune' : 'audit';
  try {
    switch (first) {
      case 'prune':
        return await prune(rest, config, io, logger);
      case 'help':
      case '--help':
      case '-h':
        io.stdout.write(`${formatGroupHelp(AUDIT_HELP)}\n`);
        return EXIT_OK;
      default:
        return await show(args, config, io, logger);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`mcp-pa ${what}: ${err.message}\n${AUDIT_USAGE}\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`mcp-pa ${what}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
}
