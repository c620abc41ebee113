/**
 * `mcp-pa reembed [--http] [--json]`: embeds, now and to the end, every item that lacks a vector for the configured
 * embedding model (never embedded, failed earlier, or made by another model or size) — what the servers' background
 * worker does, with progress on a terminal (`re-embedding: n/total`) and a one-line summary (or JSON).
 *
 * The work is the servers' own: the background worker (src/assistant/reembedder.ts) over the assistant's per-tenant
 * pass, on HTTP mode's database (as `mcp-pa serve` opens it, vector index included) or local mode's SQLite file,
 * per the configured mode (--http: HTTP mode's, as `mcp-pa serve` runs). A running server may re-embed at the same
 * time; the result is the same.
 */
import { existsSync } from 'node:fs';
import { Assistant } from '../assistant/assistant.js';
import { Reembedder, type Reembeddable } from '../assistant/reembedder.js';
import { ConfigError, type Config } from '../config/index.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { describeDatabase } from '../servers/http-preflight.js';
import { createEmbeddingProvider, type EmbeddingProvider } from '../storage/embeddings/index.js';
import type { Store } from '../storage/model.js';
import type { PostgresStore } from '../storage/postgres/index.js';
import { SqliteStore } from '../storage/sqlite/sqlite-store.js';
import { parserOptions, type CommandHelp } from './help.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, parseOptions, UsageError } from './common.js';
import { migrationProgress, progressLine } from '../observability/progress.js';
import type { AdminContext, AdminIo } from './index.js';
import { prepareAdminStore } from './store.js';

export const REEMBED_HELP: CommandHelp = {
  command: 'reembed',
  summary: 'embed every item that lacks a vector for the configured embedding model, now, showing progress',
  usage: ['mcp-pa reembed [--http] [--json] [--config FILE] [options]'],
  options: {
    http: {
      type: 'boolean',
      description: "HTTP mode's database (what `mcp-pa serve` uses), whatever mode the configuration names",
    },
    json: { type: 'boolean', description: 'print the summary as JSON' },
  },
  notes: [
    "The database is the configured mode's: local mode's SQLite file, or HTTP mode's PostgreSQL (or PGlite).",
    'Needs semantic search on (features.vector_search, embeddings.provider). After changing the embedding model or',
    'its dimensions every item needs a new vector: the servers do it in the background, this command at once.',
    'On a terminal it shows `re-embedding: n/total`. Exit code 1 when items are left without a vector (the',
    'embedding provider failed: the log line says why); running it again continues where it stopped.',
  ],
  examples: [
    'mcp-pa reembed',
    'mcp-pa reembed --http --config /etc/mcp-pa/config.json',
    'MCP_EMBEDDINGS_PROVIDER=hash mcp-pa reembed --json',
  ],
};

/** The int4 bound of the PostgreSQL count function: "all of them". */
const COUNT_ALL = 2_147_483_647;
/** Items per page when counting on SQLite. */
const COUNT_PAGE = 1000;

export interface ReembedSummary {
  readonly mode: 'local' | 'http';
  readonly database: string;
  readonly model: string;
  readonly dimensions: number;
  /** Items that lacked a vector when the command started. */
  readonly total: number;
  readonly embedded: number;
  /** Items still without a vector at the end (the provider failed for them). */
  readonly remaining: number;
  readonly tenants: number;
  readonly seconds: number;
}

/** Live items without a ready vector for `model`, across tenants. */
async function countWaiting(store: Store | PostgresStore, model: string): Promise<number> {
  if ('itemsWaitingForVectors' in store) return store.itemsWaitingForVectors(model, COUNT_ALL);
  let n = 0;
  for (const tenant of await store.tenantsNeedingVectors(model, COUNT_ALL)) {
    let after: string | undefined;
    for (;;) {
      const page = await store.itemsNeedingVectors(tenant, model, COUNT_PAGE, after);
      n += page.length;
      if (page.length < COUNT_PAGE) break;
      after = page[page.length - 1]?.id;
    }
  }
  return n;
}

interface Opened {
  readonly store: Store & { close(): Promise<void> };
  readonly database: string;
  readonly storageInfo: { database: string; documents: string };
}

async function openStore(
  config: Config,
  provider: EmbeddingProvider,
  logger: Logger,
  io: AdminIo,
): Promise<Opened | null> {
  const documents = config.documents.dir ? `folder:${config.documents.dir}` : 'database';
  if (config.mode === 'local') {
    const file = config.database.path;
    if (!existsSync(file)) return null;
    return {
      store: new SqliteStore({ path: file, documentsDir: config.documents.dir }),
      database: `SQLite ${file}`,
      storageInfo: { database: `sqlite:${file}`, documents },
    };
  }
  const { store, plan } = await prepareAdminStore(config, logger, {
    vectorDimensions: provider.dimensions,
    onMigration: migrationProgress(io.stderr, io.stderrIsTerminal === true),
  });
  return {
    store,
    database: describeDatabase(plan),
    storageInfo: { database: plan.kind, documents },
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function summaryLine(s: ReembedSummary): string {
  const where = `model ${s.model}, ${s.dimensions} dimensions; ${s.database}`;
  if (s.total === 0 && s.embedded === 0) return `Nothing to re-embed: every item has a vector (${where}).`;
  const left =
    s.remaining === 0
      ? 'none left'
      : `${plural(s.remaining, 'item')} still without a vector: the embedding provider failed (see the log above); run mcp-pa reembed again`;
  return `Re-embedded ${plural(s.embedded, 'item')} of ${plural(s.tenants, 'account')} in ${s.seconds.toFixed(1)} s (${where}); ${left}.`;
}

/** `mcp-pa reembed …` (args: what follows `reembed`). Exit code 0 done, 1 failure or items left, 2 usage error. */
export async function runReembedCommand(args: string[], context: AdminContext, io: AdminIo): Promise<number> {
  let values;
  try {
    values = parseOptions(args, parserOptions(REEMBED_HELP.options));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`mcp-pa reembed: ${err.message}\nRun mcp-pa reembed --help for its options.\n`);
    return EXIT_USAGE;
  }
  let config: Config;
  try {
    config = context.load(values['http'] === true ? 'http' : undefined);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`mcp-pa: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  const logger = createLogger(config.logging.level === 'info' ? 'warn' : config.logging.level, io.stderr);
  const fail = (message: string): number => {
    io.stderr.write(`mcp-pa reembed: ${message}\n`);
    return EXIT_FAILURE;
  };

  let provider: EmbeddingProvider | undefined;
  try {
    provider = createEmbeddingProvider(config, logger);
  } catch (err) {
    return fail((err as Error).message);
  }
  if (provider === undefined) {
    return fail(
      'semantic search is off (features.vector_search is false, or embeddings.provider is none), so there is ' +
        'nothing to embed: set MCP_VECTOR_SEARCH=true (features.vector_search) and an embeddings.provider ' +
        '(MCP_EMBEDDINGS_PROVIDER: hash or openai-compatible) first',
    );
  }
  const started = Date.now();
  let opened: Opened | null;
  try {
    opened = await openStore(config, provider, logger, io);
  } catch (err) {
    provider.close?.();
    return fail(err instanceof Error ? err.message : String(err));
  }
  const base = {
    mode: config.mode,
    model: provider.model,
    dimensions: provider.dimensions,
  };
  if (opened === null) {
    provider.close?.();
    const summary: ReembedSummary = {
      ...base,
      database: `SQLite ${config.database.path} (not made yet)`,
      total: 0,
      embedded: 0,
      remaining: 0,
      tenants: 0,
      seconds: 0,
    };
    io.stdout.write(
      values['json'] === true
        ? `${JSON.stringify(summary, null, 2)}\n`
        : `Nothing to re-embed: there is no database at ${config.database.path} yet.\n`,
    );
    return EXIT_OK;
  }

  const { store } = opened;
  const progress = progressLine(io.stderr, io.stderrIsTerminal === true);
  try {
    const assistant = new Assistant({
      store,
      defaultTimeZone: config.assistant.timezone,
      maxUploadBytes: config.documents.max_file_size_bytes,
      embeddings: provider,
      storageInfo: opened.storageInfo,
    });
    const total = await countWaiting(store, provider.model);
    let embedded = 0;
    const tenants = new Set<string>();
    const show = (): void => progress.update(`re-embedding: ${embedded}/${Math.max(total, embedded)}`);
    // The worker's passes, counted: each tenant's pass reports the items it has done so far.
    const counted: Reembeddable = {
      embeddings: provider,
      reembed: async (tenant, batch, onProgress) => {
        tenants.add(tenant);
        const before = embedded;
        const n = await assistant.reembed(tenant, batch, (done) => {
          embedded = before + done;
          show();
          onProgress?.(done);
        });
        embedded = before + n;
        return n;
      },
    };
    if (total > 0) show();
    const worker = new Reembedder({ assistant: counted, store, logger });
    await worker.start();
    await worker.close();
    progress.done();
    const remaining = await countWaiting(store, provider.model);
    const summary: ReembedSummary = {
      ...base,
      database: opened.database,
      total,
      embedded,
      remaining,
      tenants: tenants.size,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    io.stdout.write(
      values['json'] === true ? `${JSON.stringify(summary, null, 2)}\n` : `${summaryLine(summary)}\n`,
    );
    return remaining === 0 ? EXIT_OK : EXIT_FAILURE;
  } catch (err) {
    progress.done();
    return fail(err instanceof Error ? err.message : String(err));
  } finally {
    provider.close?.();
    await store.close();
  }
}
