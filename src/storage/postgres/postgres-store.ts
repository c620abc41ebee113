/**
 * The Store port on PostgreSQL (a real server through a `pg` pool, or embedded PGlite): the same behaviour as
 * SqliteStore, with every call in a transaction that runs as the non-owner role `mcp_pa_app` with the tenant
 * set, so row-level security scopes every statement to that tenant (see schema.ts).
 */
import type { Logger } from '../../observability/logger.js';
import { FolderContent } from '../content.js';
import {
  NO_DATE_KEY,
  StoreConflictError,
  type ItemKind,
  type ItemQuery,
  type ItemRecord,
  type JsonObject,
  type ProfileRecord,
  type Store,
  type TextHit,
  type TextSearchQuery,
  type VectorFilter,
  type WriteOp,
  type WriteResult,
} from '../model.js';
import { PgliteDriver, PoolDriver, type Driver, type Sql } from './driver.js';
import { DatabaseStartupError, errorMessage } from './errors.js';
import {
  APP_ROLE,
  hasIterativeScan,
  LATEST_VERSION,
  prepareDatabase,
  SEPARATORS,
  TENANT_SETTING,
  vectorCast,
  type MigrationStep,
} from './schema.js';

export type PostgresTarget =
  | { kind: 'postgresql'; connectionString: string; poolSize: number }
  | { kind: 'pglite'; dataDir: string | null /* null: in memory */ };

export interface PostgresStoreOptions {
  logger: Logger;
  /** Keep uploaded document content in this folder instead of the database. */
  documentsDir?: string | undefined;
  /** Dimensions of the configured embedding provider: an HNSW index is made for them (null: no index). */
  vectorDimensions: number | null;
  /** Told before each pending migration runs, and once they have all run (progress on a terminal). */
  migrations?: { step(step: MigrationStep): void; done(): void } | undefined;
}

/** Options only tests use. */
export interface PostgresTestingOptions {
  /** Start PGlite without the pgvector extension (to see the startup error). */
  readonly pgliteWithoutVector?: boolean;
}

interface ItemRow {
  id: string;
  kind: ItemKind;
  title: string;
  body: string;
  status: string | null;
  priority: string | null;
  project_id: string | null;
  tags: string[] | null;
  starts_at: string | null;
  ends_at: string | null;
  client_ref: string | null;
  data: JsonObject;
  version: number;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

const COLUMNS = [
  'id',
  'kind',
  'title',
  'body',
  'status',
  'priority',
  'project_id',
  'tags',
  'starts_at',
  'ends_at',
  'client_ref',
  'data',
  'version',
  'created_at',
  'updated_at',
  'deleted_at',
] as const;
const ITEM_COLUMNS = COLUMNS.join(', ');

/** The starts_asc sort key: the same expression as the items_by_start index, so keyset pages walk the index. */
const START_KEY = "COALESCE(starts_at, '9999-12-31T23:59:59.999Z')";
if (!START_KEY.includes(`'${NO_DATE_KEY}'`)) throw new Error('START_KEY must use NO_DATE_KEY');

function toRecord(row: ItemRow): ItemRecord {
  return {
    id: row.id,
    kind: row.kind,
    title: row.title,
    body: row.body,
    status: row.status,
    priority: row.priority,
    project_id: row.project_id,
    tags: row.tags ?? [],
    starts_at: row.starts_at,
    ends_at: row.ends_at,
    client_ref: row.client_ref,
    data: row.data,
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
    deleted_at: row.deleted_at,
  };
}

/** Builds `$n` placeholders while collecting their values. */
export class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** Filters that listing and searching share: status, any of some tags, and a range of starts_at. */
function addSharedFilters(
  q: { status?: readonly string[]; tags?: readonly string[]; starts_from?: string; starts_before?: string },
  where: string[],
  p: Params,
): void {
  if (q.status?.length) where.push(`status = ANY (${p.add([...q.status])}::text[])`);
  if (q.tags?.length) where.push(`tags && ${p.add([...q.tags])}::text[]`);
  if (q.starts_from !== undefined) where.push(`starts_at >= ${p.add(q.starts_from)}`);
  if (q.starts_before !== undefined) where.push(`starts_at < ${p.add(q.starts_before)}`);
}

const SEPARATOR_CHARS = new Set([...SEPARATORS]);

/** A search term as the index saw the words: separators become spaces (the term is then a phrase). */
export function normalizeTerm(term: string): string {
  return [...term]
    .map((c) => (SEPARATOR_CHARS.has(c) ? ' ' : c))
    .join('')
    .trim();
}

/** The nearest-neighbour query; its ORDER BY is the HNSW index expression for these dimensions. */
export function vectorSearchSql(dims: number, withKinds: boolean): string {
  const cast = vectorCast(dims);
  return `SELECT v.item_id AS id, (v.embedding::${cast} <=> $2::${cast}) AS distance
    FROM item_vectors v
    JOIN items i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
    WHERE v.tenant_id = $1 AND v.dims = ${dims} AND v.model = $3 AND v.state = 'ready'
      AND i.deleted_at IS NULL${withKinds ? ' AND i.kind = ANY ($5::text[])' : ''}
    ORDER BY v.embedding::${cast} <=> $2::${cast}
    LIMIT $4`;
}

function vectorLiteral(v: Float32Array): string {
  return `[${Array.from(v).join(',')}]`;
}

function checkTenant(tenant: string): void {
  if (typeof tenant !== 'string' || tenant.length === 0) throw new Error('tenant must be a non-empty string');
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 0)
    throw new Error(`limit must be a whole number ≥ 0 (got ${limit})`);
}

/** Inserts are sent in statements of at most this many rows. */
const INSERT_BATCH = 500;

export class PostgresStore implements Store {
  readonly dialect = 'postgresql' as const;
  private readonly content: FolderContent | undefined;
  private closed = false;

  constructor(
    /** @internal */
    readonly driver: Driver,
    private readonly settings: {
      readonly documentsDir?: string | undefined;
      readonly iterativeScan: boolean;
      readonly ownsDriver: boolean;
    },
  ) {
    this.content = settings.documentsDir ? new FolderContent(settings.documentsDir) : undefined;
  }

  /**
   * Runs fn in one transaction as the application role with the tenant set: row-level security then scopes
   * every statement to the tenant, whatever its WHERE clause says. `set_config('role', …, true)` is
   * `SET LOCAL ROLE` in a form that shares one round trip with the tenant setting.
   * @internal Tests use it to run raw SQL as the store does.
   */
  async withTenant<T>(
    tenant: string,
    fn: (sql: Sql) => Promise<T>,
    extra: Readonly<Record<string, string>> = {},
  ): Promise<T> {
    checkTenant(tenant);
    return this.driver.transaction(async (sql) => {
      const p = new Params();
      const sets = [
        `set_config('role', ${p.add(APP_ROLE)}, true)`,
        `set_config('${TENANT_SETTING}', ${p.add(tenant)}, true)`,
      ];
      for (const [name, value] of Object.entries(extra))
        sets.push(`set_config(${p.add(name)}, ${p.add(value)}, true)`);
      await sql.query(`SELECT ${sets.join(', ')}`, p.values);
      return fn(sql);
    });
  }

  /**
   * Runs fn in one transaction as the login user, outside the application role and with no tenant set: for the
   * authorization server's own state (oauth_state), which is not tenant data and which the application role
   * may not touch. Never use it for tenant tables.
   */
  async withServerState<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('the store is closed');
    return this.driver.transaction(fn);
  }

  /** Database reachable and schema current (for /readyz). */
  async readiness(): Promise<{ ok: true } | { ok: false; reason: string }> {
    if (this.closed) return { ok: false, reason: 'the store is closed' };
    try {
      const r = await this.driver.query<{ v: number | null }>(
        'SELECT MAX(version) AS v FROM schema_migrations',
      );
      const v = r.rows[0]?.v ?? 0;
      if (v !== LATEST_VERSION) {
        return {
          ok: false,
          reason: `database schema is at version ${v}, this mcp-pa needs ${LATEST_VERSION}`,
        };
      }
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: `database unreachable (${this.driver.where}): ${errorMessage(err)}` };
    }
  }

  async getProfile(tenant: string): Promise<ProfileRecord | null> {
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ data: JsonObject; version: number; updated_at: string }>(
            'SELECT data, version, updated_at FROM profiles WHERE tenant_id = $1',
            [tenant],
          )
        ).rows,
    );
    const row = rows[0];
    return row ? { data: row.data, version: row.version, updated_at: row.updated_at } : null;
  }

  async putProfile(
    tenant: string,
    data: JsonObject,
    expectedVersion: number | null,
    now: string,
  ): Promise<ProfileRecord> {
    const json = JSON.stringify(data);
    const changes = await this.withTenant(tenant, async (sql) =>
      expectedVersion === null
        ? (
            await sql.query(
              `INSERT INTO profiles (tenant_id, data, version, updated_at) VALUES ($1, $2::jsonb, 1, $3)
               ON CONFLICT DO NOTHING`,
              [tenant, json, now],
            )
          ).rowCount
        : (
            await sql.query(
              `UPDATE profiles SET data = $2::jsonb, version = version + 1, updated_at = $3
               WHERE tenant_id = $1 AND version = $4`,
              [tenant, json, now, expectedVersion],
            )
          ).rowCount,
    );
    if (changes === 0) throw new StoreConflictError('profile');
    return { data, version: (expectedVersion ?? 0) + 1, updated_at: now };
  }

  async getItem(tenant: string, id: string): Promise<ItemRecord | null> {
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM items WHERE tenant_id = $1 AND id = $2`, [
            tenant,
            id,
          ])
        ).rows,
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async getItems(tenant: string, ids: readonly string[]): Promise<ItemRecord[]> {
    if (ids.length === 0) return [];
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<ItemRow>(
            `SELECT ${ITEM_COLUMNS} FROM items WHERE tenant_id = $1 AND id = ANY ($2::text[])`,
            [tenant, [...ids]],
          )
        ).rows,
    );
    return rows.map(toRecord);
  }

  async findByClientRef(tenant: string, kind: ItemKind, clientRef: string): Promise<ItemRecord | null> {
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<ItemRow>(
            `SELECT ${ITEM_COLUMNS} FROM items WHERE tenant_id = $1 AND kind = $2 AND client_ref = $3`,
            [tenant, kind, clientRef],
          )
        ).rows,
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async listItems(tenant: string, q: ItemQuery): Promise<ItemRecord[]> {
    checkLimit(q.limit);
    const p = new Params();
    const where = [
      `tenant_id = ${p.add(tenant)}`,
      `kind = ${p.add(q.kind)}`,
      q.trash ? 'deleted_at IS NOT NULL' : 'deleted_at IS NULL',
    ];
    addSharedFilters(q, where, p);
    if (q.priority?.length) where.push(`priority = ANY (${p.add([...q.priority])}::text[])`);
    if (q.project_id === null) where.push('project_id IS NULL');
    else if (q.project_id !== undefined) where.push(`project_id = ${p.add(q.project_id)}`);
    for (const [key, values] of Object.entries(q.data_in ?? {})) {
      // Compares JSON values: true matches true and "x" matches "x" (a missing key matches nothing).
      where.push(
        `(data -> ${p.add(key)}::text) IN (SELECT jsonb_array_elements(${p.add(JSON.stringify(values))}::jsonb))`,
      );
    }
    if (q.overlaps) {
      where.push(
        `starts_at < ${p.add(q.overlaps.to)} AND (ends_at IS NULL OR ends_at >= ${p.add(q.overlaps.from)})`,
      );
    }
    let order: string;
    switch (q.order) {
      case 'starts_asc':
        if (q.after) where.push(`(${START_KEY}, id) > (${p.add(q.after.key)}, ${p.add(q.after.id)})`);
        order = `${START_KEY} ASC, id ASC`;
        break;
      case 'created_desc':
      case 'updated_desc': {
        const col = q.order === 'created_desc' ? 'created_at' : 'updated_at';
        if (q.after) where.push(`(${col}, id) < (${p.add(q.after.key)}, ${p.add(q.after.id)})`);
        order = `${col} DESC, id DESC`;
        break;
      }
    }
    const text = `SELECT ${ITEM_COLUMNS} FROM items WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${p.add(q.limit)}`;
    const rows = await this.withTenant(
      tenant,
      async (sql) => (await sql.query<ItemRow>(text, p.values)).rows,
    );
    return rows.map(toRecord);
  }

  async countItems(tenant: string, kind: ItemKind, status?: readonly string[]): Promise<number> {
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ n: number }>(
            status?.length
              ? `SELECT count(*)::int AS n FROM items WHERE tenant_id = $1 AND kind = $2 AND deleted_at IS NULL
                   AND status = ANY ($3::text[])`
              : 'SELECT count(*)::int AS n FROM items WHERE tenant_id = $1 AND kind = $2 AND deleted_at IS NULL',
            status?.length ? [tenant, kind, [...status]] : [tenant, kind],
          )
        ).rows,
    );
    return rows[0]?.n ?? 0;
  }

  async projectTaskCounts(
    tenant: string,
    projectIds: readonly string[],
  ): Promise<Map<string, { total: number; done: number }>> {
    const out = new Map<string, { total: number; done: number }>();
    if (projectIds.length === 0) return out;
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ project_id: string; total: number; done: number }>(
            `SELECT project_id, count(*)::int AS total, (count(*) FILTER (WHERE status = 'done'))::int AS done
             FROM items WHERE tenant_id = $1 AND project_id = ANY ($2::text[]) AND kind = 'task'
               AND deleted_at IS NULL
             GROUP BY project_id`,
            [tenant, [...projectIds]],
          )
        ).rows,
    );
    for (const r of rows) out.set(r.project_id, { total: r.total, done: r.done });
    return out;
  }

  async importedRefs(refs: readonly string[], tenant?: string): Promise<Set<string>> {
    if (tenant === undefined) {
      throw new Error('importedRefs needs the tenant on PostgreSQL: legacy imports are recorded per tenant');
    }
    if (refs.length === 0) return new Set();
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ ref: string }>(
            'SELECT ref FROM legacy_imports WHERE tenant_id = $1 AND ref = ANY ($2::text[])',
            [tenant, [...refs]],
          )
        ).rows,
    );
    return new Set(rows.map((r) => r.ref));
  }

  async write(tenant: string, ops: readonly WriteOp[], now: string): Promise<WriteResult> {
    const written: string[] = [];
    const purged: string[] = [];
    try {
      const result = await this.withTenant(tenant, async (sql): Promise<WriteResult> => {
        const inserted: { record: ItemRecord; created: boolean }[] = [];
        let i = 0;
        while (i < ops.length) {
          const op = ops[i] as WriteOp;
          // Runs of consecutive inserts (and of mark_imported) go in one statement each; other ops keep their order.
          if (op.op === 'insert') {
            const run: Extract<WriteOp, { op: 'insert' }>[] = [];
            while (i < ops.length && run.length < INSERT_BATCH && (ops[i] as WriteOp).op === 'insert') {
              run.push(ops[i] as Extract<WriteOp, { op: 'insert' }>);
              i++;
            }
            inserted.push(...(await this.insertRun(sql, tenant, run, written)));
          } else if (op.op === 'mark_imported') {
            const run: Extract<WriteOp, { op: 'mark_imported' }>[] = [];
            while (
              i < ops.length &&
              run.length < INSERT_BATCH &&
              (ops[i] as WriteOp).op === 'mark_imported'
            ) {
              run.push(ops[i] as Extract<WriteOp, { op: 'mark_imported' }>);
              i++;
            }
            await sql.query(
              `INSERT INTO legacy_imports (tenant_id, ref, item_id, imported_at)
               SELECT $1, u.ref, u.item_id, $4 FROM unnest($2::text[], $3::text[]) AS u (ref, item_id)
               ON CONFLICT DO NOTHING`,
              [tenant, run.map((r) => r.ref), run.map((r) => r.item_id), now],
            );
          } else if (op.op === 'update') {
            const item = op.item;
            const res = await sql.query(
              `UPDATE items SET title = $3, body = $4, status = $5, priority = $6, project_id = $7,
                 tags = $8::text[], starts_at = $9, ends_at = $10, data = $11::jsonb, version = version + 1,
                 updated_at = $12, deleted_at = $13
               WHERE tenant_id = $1 AND id = $2 AND version = $14`,
              [
                tenant,
                item.id,
                item.title,
                item.body,
                item.status,
                item.priority,
                item.project_id,
                [...item.tags],
                item.starts_at,
                item.ends_at,
                JSON.stringify(item.data),
                item.updated_at,
                item.deleted_at,
                op.expected_version,
              ],
            );
            if (res.rowCount === 0) throw new StoreConflictError(item.id);
            i++;
          } else {
            // Vectors and content in the database go with the item (ON DELETE CASCADE).
            await sql.query('DELETE FROM items WHERE tenant_id = $1 AND id = $2', [tenant, op.id]);
            purged.push(op.id);
            i++;
          }
        }
        return { inserted };
      });
      for (const id of purged) this.content?.remove(tenant, id);
      return result;
    } catch (err) {
      for (const id of written) this.content?.remove(tenant, id);
      throw err;
    }
  }

  /** One INSERT for a run of inserts; items whose client_ref exists come back as they are, created: false. */
  private async insertRun(
    sql: Sql,
    tenant: string,
    run: readonly Extract<WriteOp, { op: 'insert' }>[],
    written: string[],
  ): Promise<{ record: ItemRecord; created: boolean }[]> {
    const rows = run.map((op, ord) => ({ ...op.item, ord }));
    const res = await sql.query<{ id: string }>(
      `INSERT INTO items (tenant_id, ${ITEM_COLUMNS})
       SELECT $1, r.id, r.kind, r.title, r.body, r.status, r.priority, r.project_id,
              ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.starts_at, r.ends_at, r.client_ref, r.data,
              r.version, r.created_at, r.updated_at, r.deleted_at
       FROM jsonb_to_recordset($2::jsonb) AS r (
         id text, kind text, title text, body text, status text, priority text, project_id text, tags jsonb,
         starts_at text, ends_at text, client_ref text, data jsonb, version integer, created_at text,
         updated_at text, deleted_at text, ord integer)
       ORDER BY r.ord
       ON CONFLICT (tenant_id, kind, client_ref) WHERE client_ref IS NOT NULL DO NOTHING
       RETURNING id`,
      [tenant, JSON.stringify(rows)],
    );
    // Which ops created a row: the first op with each returned id (ids are unique per tenant).
    const fresh = new Set(res.rows.map((r) => r.id));
    const created = run.map((op) => {
      if (fresh.has(op.item.id)) {
        fresh.delete(op.item.id);
        return true;
      }
      return false;
    });
    const existing = new Map<string, ItemRecord>();
    const missed = run.filter((_op, k) => !created[k]);
    if (missed.length > 0) {
      const found = await sql.query<ItemRow>(
        `SELECT ${ITEM_COLUMNS} FROM items
         WHERE tenant_id = $1 AND (kind, client_ref) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
        [tenant, missed.map((op) => op.item.kind), missed.map((op) => op.item.client_ref)],
      );
      for (const r of found.rows) existing.set(`${r.kind}\u0000${r.client_ref ?? ''}`, toRecord(r));
    }
    const out: { record: ItemRecord; created: boolean }[] = [];
    for (const [k, op] of run.entries()) {
      const item = op.item;
      if (!created[k]) {
        const found = item.client_ref ? existing.get(`${item.kind}\u0000${item.client_ref}`) : undefined;
        if (!found) throw new StoreConflictError(item.id);
        out.push({ record: found, created: false });
        continue;
      }
      if (op.content) {
        if (this.content) {
          this.content.write(tenant, item.id, op.content);
          written.push(item.id);
        } else {
          await sql.query(
            `INSERT INTO document_contents (tenant_id, item_id, content) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, item_id) DO UPDATE SET content = excluded.content`,
            [tenant, item.id, Buffer.from(op.content.buffer, op.content.byteOffset, op.content.byteLength)],
          );
        }
      }
      out.push({ record: item, created: true });
    }
    return out;
  }

  async getContent(tenant: string, id: string): Promise<Uint8Array | null> {
    if (this.content) {
      const fromFolder = this.content.read(tenant, id);
      if (fromFolder) return fromFolder;
    }
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ content: Uint8Array }>(
            'SELECT content FROM document_contents WHERE tenant_id = $1 AND item_id = $2',
            [tenant, id],
          )
        ).rows,
    );
    const content = rows[0]?.content;
    return content ? new Uint8Array(content) : null;
  }

  async searchText(tenant: string, q: TextSearchQuery): Promise<TextHit[]> {
    checkLimit(q.limit);
    const terms = q.terms.map(normalizeTerm).filter((t) => t.length > 0);
    if (terms.length === 0 || q.limit === 0) return [];
    // mcp_pa_search_items quotes each term with phraseto_tsquery (no text is ever read as tsquery syntax), joins
    // them with AND or OR, applies the filters inside the ranking query, ranks, limits, and makes snippets.
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ id: string; rank: number; snippet: string | null }>(
            `SELECT id, rank, snippet
             FROM mcp_pa_search_items($1::text[], $2, $3::text[], $4::text[], $5::text[], $6::text, $7::text, $8::integer)`,
            [
              terms,
              q.match === 'all',
              q.kinds?.length ? [...q.kinds] : null,
              q.tags?.length ? [...q.tags] : null,
              q.status?.length ? [...q.status] : null,
              q.starts_from ?? null,
              q.starts_before ?? null,
              q.limit,
            ],
          )
        ).rows,
    );
    return rows.map((r) => ({ id: r.id, score: Number(r.rank), snippet: r.snippet ?? '' }));
  }

  async putVector(
    tenant: string,
    id: string,
    model: string,
    vector: Float32Array | null,
    now: string,
  ): Promise<void> {
    await this.putVectors(tenant, model, [{ id, vector }], now);
  }

  async putVectors(
    tenant: string,
    model: string,
    entries: readonly { readonly id: string; readonly vector: Float32Array | null }[],
    now: string,
  ): Promise<void> {
    if (entries.length === 0) return;
    const ids = entries.map((e) => e.id);
    const embeddings = entries.map((e) => (e.vector ? vectorLiteral(e.vector) : null));
    const dims = entries.map((e) => (e.vector ? e.vector.length : null));
    // One statement for the vectors and one for items.vector_model, whatever the batch size.
    await this.withTenant(tenant, async (sql) => {
      await sql.query(
        `INSERT INTO item_vectors (tenant_id, item_id, model, dims, state, embedding, updated_at)
         SELECT $1, v.item_id, $3, v.dims, CASE WHEN v.embedding IS NULL THEN 'pending' ELSE 'ready' END,
                v.embedding::vector, $6
         FROM unnest($2::text[], $4::text[], $5::int[]) AS v(item_id, embedding, dims)
         ON CONFLICT (tenant_id, item_id) DO UPDATE SET model = excluded.model, dims = excluded.dims,
           state = excluded.state, embedding = excluded.embedding, updated_at = excluded.updated_at`,
        [tenant, ids, model, embeddings, dims, now],
      );
      await sql.query(
        `UPDATE items SET vector_model = v.vector_model
         FROM unnest($2::text[], $3::text[]) AS v(item_id, vector_model)
         WHERE items.tenant_id = $1 AND items.id = v.item_id
           AND items.vector_model IS DISTINCT FROM v.vector_model`,
        [tenant, ids, entries.map((e) => (e.vector ? model : null))],
      );
    });
  }

  async hasPendingVectors(tenant: string, model: string): Promise<boolean> {
    // Three probes of items_vector_state (no ready vector, or one from a model sorting before or after).
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<{ pending: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM items WHERE tenant_id = $1 AND deleted_at IS NULL AND vector_model IS NULL)
                 OR EXISTS (SELECT 1 FROM items WHERE tenant_id = $1 AND deleted_at IS NULL AND vector_model < $2)
                 OR EXISTS (SELECT 1 FROM items WHERE tenant_id = $1 AND deleted_at IS NULL AND vector_model > $2)
               AS pending`,
            [tenant, model],
          )
        ).rows,
    );
    return rows[0]?.pending === true;
  }

  /**
   * How many live items, across tenants, have no ready vector for `model` — counted up to `bound` (the embedding
   * queue gauge). A count only, through a SECURITY DEFINER function like tenantsNeedingVectors.
   */
  async itemsWaitingForVectors(model: string, bound: number): Promise<number> {
    checkLimit(bound);
    if (bound === 0) return 0;
    const rows = await this.driver.transaction(async (sql) => {
      await sql.query(`SELECT set_config('role', $1, true)`, [APP_ROLE]);
      return (
        await sql.query<{ n: string | number }>('SELECT mcp_pa_items_waiting_for_vectors($1, $2) AS n', [
          model,
          bound,
        ])
      ).rows;
    });
    return Number(rows[0]?.n ?? 0);
  }

  async tenantsNeedingVectors(model: string, limit: number): Promise<string[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    // The one cross-tenant question: asked through a SECURITY DEFINER function that returns tenant ids only.
    const rows = await this.driver.transaction(async (sql) => {
      await sql.query(`SELECT set_config('role', $1, true)`, [APP_ROLE]);
      return (
        await sql.query<{ tenant: string }>(
          'SELECT t AS tenant FROM mcp_pa_tenants_needing_vectors($1, $2) AS t',
          [model, limit],
        )
      ).rows;
    });
    return rows.map((r) => r.tenant).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async itemsNeedingVectors(
    tenant: string,
    model: string,
    limit: number,
    afterId?: string,
  ): Promise<ItemRecord[]> {
    checkLimit(limit);
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (
          await sql.query<ItemRow>(
            `SELECT ${ITEM_COLUMNS} FROM items
             WHERE tenant_id = $1 AND deleted_at IS NULL AND id > $2 AND vector_model IS DISTINCT FROM $3
             ORDER BY id LIMIT $4`,
            [tenant, afterId ?? '', model, limit],
          )
        ).rows,
    );
    return rows.map(toRecord);
  }

  async searchVectors(
    tenant: string,
    query: Float32Array,
    filter: VectorFilter,
    limit: number,
  ): Promise<{ id: string; score: number }[]> {
    checkLimit(limit);
    const dims = query.length;
    // A zero query has no direction: no neighbours (cosine distance to it is undefined).
    if (dims === 0 || limit === 0 || query.every((x) => x === 0)) return [];
    const withKinds = Boolean(filter.kinds?.length);
    const params: unknown[] = [tenant, vectorLiteral(query), filter.model, limit];
    if (withKinds) params.push([...(filter.kinds ?? [])]);
    // Iterative index scans keep walking the HNSW graph until enough rows pass the tenant, model and kind
    // filters (pgvector ≥ 0.8); the candidate list starts at least as long as the answer.
    const extra: Record<string, string> = this.settings.iterativeScan
      ? {
          'hnsw.iterative_scan': 'relaxed_order',
          'hnsw.ef_search': String(Math.min(1000, Math.max(40, limit))),
        }
      : {};
    const rows = await this.withTenant(
      tenant,
      async (sql) =>
        (await sql.query<{ id: string; distance: number }>(vectorSearchSql(dims, withKinds), params)).rows,
      extra,
    );
    // relaxed_order may return neighbours slightly out of order: sort them here.
    return rows
      .map((r) => ({ id: r.id, score: 1 - Number(r.distance) }))
      .filter((r) => Number.isFinite(r.score))
      .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.settings.ownsDriver) await this.driver.close();
  }
}

/** Opens a driver for a target (a first connection is made, so an unreachable server fails here). */
export async function openDriver(
  target: PostgresTarget,
  logger: Logger,
  testing: PostgresTestingOptions = {},
): Promise<Driver> {
  if (target.kind === 'postgresql')
    return PoolDriver.connect(target.connectionString, target.poolSize, logger);
  if (target.kind === 'pglite') return PgliteDriver.open(target.dataDir, !testing.pgliteWithoutVector);
  throw new DatabaseStartupError(`unknown database kind ${(target as { kind: string }).kind}`);
}

/**
 * Prepares the database behind a driver (pgvector, roles, migrations, vector index) and returns a store on it.
 * The store closes the driver when it is closed only if `ownsDriver`.
 */
export async function storeOnDriver(
  driver: Driver,
  options: PostgresStoreOptions,
  ownsDriver: boolean,
): Promise<PostgresStore> {
  const server = driver.server;
  const logger = options.logger;
  const started = Date.now();
  const migrations = options.migrations;
  const prepared = await driver
    .transaction((sql) =>
      prepareDatabase(sql, {
        vectorDimensions: options.vectorDimensions,
        where: driver.where,
        user: server?.user ?? 'postgres',
        database: server?.database ?? 'postgres',
        ...(migrations ? { onMigration: (step: MigrationStep) => migrations.step(step) } : {}),
        onIndexBuild: (index, vectors) => {
          // The index is built after the migrations: their progress line ends before this log line.
          migrations?.done();
          logger.info(
            { index, vectors },
            'building the vector index (once per embedding size; minutes when many vectors exist)',
          );
        },
      }),
    )
    .finally(() => migrations?.done());
  logger.debug(
    { database: driver.where, pgvector: prepared.pgvectorVersion, ms: Date.now() - started },
    'database ready',
  );
  if (prepared.applied.length > 0) {
    logger.info({ database: driver.where, applied: prepared.applied }, 'database schema migrated');
  }
  const iterativeScan = hasIterativeScan(prepared.pgvectorVersion);
  if (!iterativeScan) {
    logger.warn(
      { pgvector: prepared.pgvectorVersion },
      'pgvector is older than 0.8: filtered vector searches may return fewer neighbours than asked; upgrade pgvector',
    );
  }
  if (options.vectorDimensions !== null && prepared.vectorIndex === null) {
    logger.warn(
      { dimensions: options.vectorDimensions },
      'no HNSW index for more than 4000 dimensions: vector search scans every vector of a tenant',
    );
  }
  return new PostgresStore(driver, { documentsDir: options.documentsDir, iterativeScan, ownsDriver });
}

/** Opens the store on a real server or embedded PGlite; throws DatabaseStartupError with the fix when it cannot. */
export async function openPostgresStore(
  target: PostgresTarget,
  options: PostgresStoreOptions,
  testing: PostgresTestingOptions = {},
): Promise<PostgresStore> {
  const driver = await openDriver(target, options.logger, testing);
  try {
    return await storeOnDriver(driver, options, true);
  } catch (err) {
    await driver.close().catch(() => undefined);
    if (err instanceof DatabaseStartupError) throw err;
    throw new DatabaseStartupError(`cannot prepare the database (${driver.where}): ${errorMessage(err)}`, {
      cause: err,
    });
  }
}
