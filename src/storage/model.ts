/** Records as the stores keep them. The assistant builds and reads these; the stores persist them. */

export const ITEM_KINDS = ['project', 'task', 'event', 'document', 'note'] as const;
export type ItemKind = (typeof ITEM_KINDS)[number];

export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

export interface ItemRecord {
  readonly id: string;
  readonly kind: ItemKind;
  readonly title: string;
  /** Searchable text besides the title (description, note text, notes, location…). */
  readonly body: string;
  readonly status: string | null;
  readonly priority: string | null;
  readonly project_id: string | null;
  readonly tags: readonly string[];
  /** UTC instant (ISO 8601) ordering the item in time: a task's due moment, an event's start. */
  readonly starts_at: string | null;
  /** UTC instant of an event's end, or of a recurring series' end (null: never ends). */
  readonly ends_at: string | null;
  /** Caller-chosen key that makes a create idempotent. */
  readonly client_ref: string | null;
  /** Kind-specific fields. */
  readonly data: JsonObject;
  /** Optimistic-concurrency counter, incremented by every update. */
  readonly version: number;
  readonly created_at: string;
  readonly updated_at: string;
  readonly deleted_at: string | null;
}

export interface ProfileRecord {
  readonly data: JsonObject;
  readonly version: number;
  readonly updated_at: string;
}

export type ListOrder = 'starts_asc' | 'created_desc' | 'updated_desc';

export interface ItemQuery {
  readonly kind: ItemKind;
  /** false (default): live items only; true: items in the trash only. */
  readonly trash?: boolean;
  readonly status?: readonly string[];
  readonly priority?: readonly string[];
  /** A project id, or null for items without a project. */
  readonly project_id?: string | null;
  /** Items carrying at least one of these tags. */
  readonly tags?: readonly string[];
  /** Items whose kind-specific field `data[key]` is one of the values (e.g. { pinned: [true] }). */
  readonly data_in?: Readonly<Record<string, readonly (string | boolean)[]>>;
  /** starts_at within [from, to). */
  readonly starts_from?: string;
  readonly starts_before?: string;
  /** Items whose [starts_at, ends_at] span meets [from, to) (ends_at null = open-ended). */
  readonly overlaps?: { readonly from: string; readonly to: string };
  readonly order: ListOrder;
  /** Keyset pagination: rows strictly after this (sort key, id). */
  readonly after?: { readonly key: string; readonly id: string };
  readonly limit: number;
}

/** Sorts after every real instant, so items without a date come last. */
export const NO_DATE_KEY = '9999-12-31T23:59:59.999Z';

/** The sort key of a record for an order, as the stores compare it. */
export function sortKey(record: ItemRecord, order: ListOrder): string {
  switch (order) {
    case 'starts_asc':
      return record.starts_at ?? NO_DATE_KEY;
    case 'created_desc':
      return record.created_at;
    case 'updated_desc':
      return record.updated_at;
  }
}

export interface TextSearchQuery {
  /** Terms already split into words by the caller; the store quotes them. */
  readonly terms: readonly string[];
  /** 'all': every term must match; 'any': one is enough. */
  readonly match: 'all' | 'any';
  readonly kinds?: readonly ItemKind[];
  readonly tags?: readonly string[];
  readonly status?: readonly string[];
  readonly starts_from?: string;
  readonly starts_before?: string;
  readonly limit: number;
}

export interface TextHit {
  readonly id: string;
  /** Higher is better. */
  readonly score: number;
  /** Excerpt with matches between « and ». */
  readonly snippet: string;
}

export interface VectorFilter {
  readonly kinds?: readonly ItemKind[];
  readonly model: string;
}

export type WriteOp =
  | { readonly op: 'insert'; readonly item: ItemRecord; readonly content?: Uint8Array }
  | { readonly op: 'update'; readonly item: ItemRecord; readonly expected_version: number }
  | { readonly op: 'purge'; readonly id: string }
  /** Records that a record of the original program was imported (see ADR 3). */
  | { readonly op: 'mark_imported'; readonly ref: string; readonly item_id: string | null };

export interface WriteResult {
  /** For each insert op, in order: the stored record (an existing one when client_ref already existed). */
  readonly inserted: readonly { readonly record: ItemRecord; readonly created: boolean }[];
}

export class StoreConflictError extends Error {
  constructor(readonly id: string) {
    super(`item ${id} was changed by another request`);
    this.name = 'StoreConflictError';
  }
}

export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * A write the store could not make for a reason the user can fix: the disk is full, or the database is read-only.
 * Its message and hint are meant for the user (local mode: they name the database's folder); nothing was saved.
 */
export class StoreWriteError extends Error {
  constructor(
    readonly reason: 'disk_full' | 'read_only',
    message: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreWriteError';
  }
}

/** The storage port. Every method is scoped to one tenant. */
export interface Store {
  readonly dialect: 'sqlite' | 'postgresql';
  getProfile(tenant: string): Promise<ProfileRecord | null>;
  /** Creates or replaces the profile when its version still equals expected_version (null: none yet). */
  putProfile(
    tenant: string,
    data: JsonObject,
    expectedVersion: number | null,
    now: string,
  ): Promise<ProfileRecord>;
  getItem(tenant: string, id: string): Promise<ItemRecord | null>;
  getItems(tenant: string, ids: readonly string[]): Promise<ItemRecord[]>;
  findByClientRef(tenant: string, kind: ItemKind, clientRef: string): Promise<ItemRecord | null>;
  listItems(tenant: string, query: ItemQuery): Promise<ItemRecord[]>;
  /** How many live items of a kind there are (optionally only those with one of these statuses). */
  countItems(tenant: string, kind: ItemKind, status?: readonly string[]): Promise<number>;
  /** For each project id: how many live tasks it has and how many are done. */
  projectTaskCounts(
    tenant: string,
    projectIds: readonly string[],
  ): Promise<Map<string, { total: number; done: number }>>;
  /**
   * Which of these legacy refs were imported before (even if their items were deleted since). PostgreSQL keeps
   * them per tenant and needs `tenant`; SQLite (one local user) keeps them for the whole file and ignores it.
   */
  importedRefs(refs: readonly string[], tenant?: string): Promise<Set<string>>;
  /** Applies every op or none. Throws StoreConflictError when an update's version is stale. */
  write(tenant: string, ops: readonly WriteOp[], now: string): Promise<WriteResult>;
  getContent(tenant: string, id: string): Promise<Uint8Array | null>;
  searchText(tenant: string, query: TextSearchQuery): Promise<TextHit[]>;
  putVector(
    tenant: string,
    id: string,
    model: string,
    vector: Float32Array | null,
    now: string,
  ): Promise<void>;
  /** putVector for many items in one transaction (null: pending). */
  putVectors(
    tenant: string,
    model: string,
    entries: readonly { readonly id: string; readonly vector: Float32Array | null }[],
    now: string,
  ): Promise<void>;
  /** Live items without a ready vector for this model, in id order, after `afterId` when given. */
  itemsNeedingVectors(tenant: string, model: string, limit: number, afterId?: string): Promise<ItemRecord[]>;
  /** Whether any live item lacks a ready vector for this model (cheap enough to ask on every search). */
  hasPendingVectors(tenant: string, model: string): Promise<boolean>;
  /**
   * Across tenants (background re-embedding): distinct tenants having live items without a ready vector for this
   * model (no vector, pending, or made by another model), in tenant order, at most `limit`.
   */
  tenantsNeedingVectors(model: string, limit: number): Promise<string[]>;
  searchVectors(
    tenant: string,
    query: Float32Array,
    filter: VectorFilter,
    limit: number,
  ): Promise<{ id: string; score: number }[]>;
  close(): Promise<void>;
}
