/**
 * `mcp-pa keys list [--json]` and `mcp-pa keys rotate [--overlap SECONDS]`: the authorization server's signing
 * keys (src/auth/keys.ts) in HTTP mode's database.
 *
 * A rotation makes a new active key; the previous one stays published for `overlap` seconds (by default the
 * access-token lifetime plus 5 minutes, so every token it signed expires before it leaves the JWKS). Running
 * servers notice the new set within 30 seconds.
 */
import { KeyDecryptionError, KeyStore, MAX_OVERLAP_SECONDS } from '../auth/keys.js';
import { loadOrCreateSecret } from '../auth/secret.js';
import { isLoopbackHost } from '../servers/http-preflight.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { PostgresStore } from '../storage/postgres/postgres-store.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  formatTable,
  recordAdminEvent,
  UsageError,
  parseOptions,
  wholeNumberOption,
} from './common.js';
import type { AdminIo } from './index.js';
import { formatGroupHelp, parserOptions, type GroupHelp } from './help.js';
import { openAdminStore } from './store.js';

/** Added to the access-token lifetime for the default overlap: clock skew and tokens issued mid-rotation. */
const OVERLAP_MARGIN_SECONDS = 300;

const USAGE = `usage: mcp-pa keys list [--json]
       mcp-pa keys rotate [--overlap SECONDS]
  list      the signing keys: the active one (signs) and retiring ones (still published so their tokens verify)
  rotate    make a new active key; the previous one stays published for --overlap seconds
            (default: authentication.token_expiry + ${OVERLAP_MARGIN_SECONDS})`;

/** `mcp-pa keys …`: each command's options (its parser is built from them) and help. */
export const KEYS_HELP: GroupHelp<'list' | 'rotate'> = {
  group: 'keys',
  summary: "the authorization server's signing keys (ES256, kept encrypted in HTTP mode's database)",
  notes: [
    'Running servers pick up a rotation within authentication.key_check_interval_s (30 s by default).',
    "Away from loopback the servers' secret is needed: set MCP_SECRET_KEY (authentication.secret_key).",
  ],
  actions: {
    list: {
      command: 'keys list',
      summary:
        'the signing keys: the active one (signs) and retiring ones (still published so their tokens verify)',
      usage: ['mcp-pa keys list [--json] [options]'],
      options: { json: { type: 'boolean', description: 'print the keys as JSON' } },
      examples: ['mcp-pa keys list', 'mcp-pa keys list --json'],
    },
    rotate: {
      command: 'keys rotate',
      summary: 'make a new active key; the previous one stays published for --overlap seconds',
      usage: ['mcp-pa keys rotate [--overlap SECONDS] [options]'],
      options: {
        overlap: {
          type: 'string',
          value: 'SECONDS',
          description: `how long the previous key stays published (default: authentication.token_expiry + ${OVERLAP_MARGIN_SECONDS}; at most ${MAX_OVERLAP_SECONDS})`,
        },
      },
      examples: ['mcp-pa keys rotate', 'mcp-pa keys rotate --overlap 3600'],
    },
  },
};

function parseOverlap(text: string): number {
  return wholeNumberOption(text, '--overlap', MAX_OVERLAP_SECONDS, 'a whole number of seconds');
}

function table(rows: string[][]): string {
  const [header = [], ...body] = rows;
  return formatTable(header, body);
}

async function withKeyStore<T>(
  config: Config,
  logger: Logger,
  fn: (keys: KeyStore, store: PostgresStore) => Promise<T>,
): Promise<T> {
  // Only a loopback server makes its own secret file; elsewhere the servers use MCP_SECRET_KEY, and a key
  // encrypted with a secret made here would be unreadable to them.
  if (config.authentication.secret_key === undefined && !isLoopbackHost(config.server.host)) {
    throw new Error(
      `server.host is ${config.server.host}: set MCP_SECRET_KEY (authentication.secret_key) to the servers' secret first`,
    );
  }
  const { secret } = await loadOrCreateSecret(config.authentication.secret_key, config.data_dir);
  const store = await openAdminStore(config, logger);
  try {
    return await fn(new KeyStore(store, secret), store);
  } finally {
    await store.close();
  }
}

async function list(args: string[], config: Config, io: AdminIo, logger: Logger): Promise<number> {
  const values = parseOptions(args, parserOptions(KEYS_HELP.actions.list.options));
  const keys = await withKeyStore(config, logger, (k) => k.list());
  if (values['json'] === true) {
    io.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
    return EXIT_OK;
  }
  if (keys.length === 0) {
    io.stdout.write('No signing keys yet: the first server start (or `mcp-pa keys rotate`) makes one.\n');
    return EXIT_OK;
  }
  const rows = [['KID', 'ALG', 'STATE', 'CREATED', 'PUBLISHED UNTIL']];
  for (const k of keys) rows.push([k.kid, k.alg, k.state, k.createdAt, k.retireAt ?? '-']);
  io.stdout.write(`${table(rows)}\n`);
  return EXIT_OK;
}

async function rotate(args: string[], config: Config, io: AdminIo, logger: Logger): Promise<number> {
  const values = parseOptions(args, parserOptions(KEYS_HELP.actions.rotate.options));
  const tokenExpiry = config.authentication.token_expiry;
  const overlapText = values['overlap'];
  const overlap =
    typeof overlapText === 'string' ? parseOverlap(overlapText) : tokenExpiry + OVERLAP_MARGIN_SECONDS;
  const { kid, retiring, listed } = await withKeyStore(config, logger, async (keys, store) => {
    const rotated = await keys.rotate(overlap);
    await recordAdminEvent(store, config, logger, {
      type: 'keys.rotated',
      details: { kid: rotated.kid, retiring: rotated.retiring.join(' '), overlapS: overlap },
    });
    return { ...rotated, listed: await keys.list() };
  });
  const out: string[] = [`New signing key ${kid} is now active.`];
  if (retiring.length === 0) {
    out.push('There was no previous key.');
  } else {
    for (const old of retiring) {
      const until = listed.find((k) => k.kid === old)?.retireAt ?? `${overlap} seconds from now`;
      out.push(
        `The previous key ${old} stays published until ${until} (${overlap} s), so tokens it signed keep verifying.`,
      );
    }
    if (overlap < tokenExpiry) {
      out.push(
        `Warning: the overlap is shorter than the access-token lifetime (${tokenExpiry} s): tokens signed by the ` +
          'previous key shortly before the rotation stop verifying before they expire.',
      );
    }
  }
  out.push('Running servers pick up the new key within 30 seconds.');
  io.stdout.write(`${out.join('\n')}\n`);
  return EXIT_OK;
}

/** `mcp-pa keys …` (args: what follows `keys`). Exit code 0 success, 1 failure, 2 usage error. */
export async function runKeysCommand(
  args: string[],
  config: Config,
  io: AdminIo,
  logger: Logger,
): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'list':
        return await list(rest, config, io, logger);
      case 'rotate':
        return await rotate(rest, config, io, logger);
      case 'help':
      case '--help':
      case '-h':
        io.stdout.write(`${formatGroupHelp(KEYS_HELP)}\n`);
        return EXIT_OK;
      case undefined:
        io.stderr.write(`mcp-pa keys: a command is needed\n${USAGE}\n`);
        return EXIT_USAGE;
      default:
        io.stderr.write(`mcp-pa keys: unknown command "${command}"\n${USAGE}\n`);
        return EXIT_USAGE;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`mcp-pa keys ${command}: ${err.message}\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof KeyDecryptionError) {
      io.stderr.write(`mcp-pa keys ${command}: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    io.stderr.write(`mcp-pa keys ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
}
