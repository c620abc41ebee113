/**
 * The behaviour every Store must have, registered once per backend (SQLite, PGlite, a real PostgreSQL server).
 * A suite shares one database across its tests: every test works in tenants of its own (fresh random ids), so
 * it sees nothing of the others, and ids are unique across the run.
 */
import { prng } from '../../bench/lib.js';
import { Assistant } from '../../src/assistant/assistant.js';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  NO_DATE_KEY,
  StoreConflictError,
  type ItemKind,
  type ItemQuery,
  type ItemRecord,
  type JsonObject,
  type Store,
  type WriteOp,
} from '../../src/storage/model.js';
import { tempDir } from '../support/helpers.js';

export interface ContractBackend {
  /** A store on the suite's database (every call of one suite reaches the same database). */
  open(options?: { documentsDir?: string }): Promise<Store>;
  /**
   * PostgreSQL keeps legacy-import refs and every other row per tenant. SQLite, made for one local user, keeps
   * refs per file and keys vectors by item id alone (a call naming another tenant's item reaches its vector).
   */
  readonly singleUser: boolean;
  close(): Promise<void>;
}

export const NOW = '2026-03-05T10:00:00.000Z';
export const LATER = '2026-03-05T11:00:00.000Z';
const RUN = randomBytes(3).toString('hex');
const PREFIX: Record<ItemKind, string> = {
  project: 'prj',
  task: 'tsk',
  event: 'evt',
  document: 'doc',
  note: 'not',
};
let counter = 0;

/** A new record with an id unique in this run. */
export function item(overrides: Partial<ItemRecord> = {}): ItemRecord {
  counter++;
  const kind = overrides.kind ?? 'note';
  return {
    id: `${PREFIX[kind]}_${RUN}${counter.toString().padStart(5, '0')}`,
    kind,
    title: `Note ${counter}`,
    body: '',
    status: null,
    priority: null,
    project_id: null,
    tags: [],
    starts_at: null,
    ends_at: null,
    client_ref: null,
    data: {},
    version: 1,
    created_at: NOW,
    updated_at: NOW,
    deleted_at: null,
    ...overrides,
  };
}

/** The record as it would be after one more update. */
export function bumped(r: ItemRecord, changes: Partial<ItemRecord>): ItemRecord {
  return { ...r, ...changes, version: r.version + 1, updated_at: LATER };
}

export function newTenant(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

export function unit(values: number[]): Float32Array {
  const norm = Math.sqrt(values.reduce((s, x) => s + x * x, 0));
  return new Float32Array(values.map((x) => x / norm));
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

/** A small deterministic PRNG (mulberry32), so a failing randomized run can be replayed from its seed. */
export { prng };

export function storeContract(name: string, setup: () => Promise<ContractBackend>): void {
  describe(`Store contract: ${name}`, () => {
    let backend: ContractBackend;
    const stores: Store[] = [];
    const cleanups: (() => void)[] = [];

    beforeAll(async () => {
      backend = await setup();
    });
    afterEach(async () => {
      while (stores.length) await stores.pop()?.close();
      while (cleanups.length) cleanups.pop()?.();
    });
    afterAll(async () => {
      await backend?.close();
    });

    async function open(options?: { documentsDir?: string }): Promise<Store> {
      const store = await backend.open(options);
      stores.push(store);
      return store;
    }

    function folder(): string {
      const t = tempDir();
      cleanups.push(t.cleanup);
      return t.dir;
    }

    async function ids(store: Store, tenant: string, terms: string[], match: 'all' | 'any' = 'all') {
      return sorted((await store.searchText(tenant, { terms, match, limit: 50 })).map((h) => h.id));
    }

    async function insert(store: Store, tenant: string, records: ItemRecord[]): Promise<void> {
      await store.write(
        tenant,
        records.map((r) => ({ op: 'insert' as const, item: r })),
        NOW,
      );
    }

    describe('write()', () => {
      it('stores a note whose 80-character title cut falls inside an emoji (the title never holds half a pair)', async () => {
        // Regression: the title was cut with slice(0, 79), leaving a lone surrogate that PostgreSQL refused as
        // "invalid input syntax for type json" (found by the HTTP fuzz run on PGlite).
        const store = await open();
        const t = newTenant();
        const assistant = new Assistant({
          store,
          clock: () => new Date(NOW),
          defaultTimeZone: 'UTC',
          maxUploadBytes: 1024,
          storageInfo: { database: name, documents: 'database' },
        });
        const text = `${'a'.repeat(78)}\u{1F600}bbb and more\nsecond line`;
        const { note } = await assistant.addNote(t, { text });
        expect(note.title).toBe(`${'a'.repeat(78)}…`);
        const stored = await store.getItem(t, note.id);
        expect(stored?.title).toBe(`${'a'.repeat(78)}…`);
        expect(stored?.body).toBe(text);
      });

      it('stores, reads back and lists records; other tenants see none of them', async () => {
        const store = await open();
        const t = newTenant();
        const a = item({ tags: ['home', 'urgent'], data: { pinned: true, nested: { x: [1, 2] }, s: 'é' } });
        const b = item({ kind: 'task', title: 'Task', status: 'open', priority: 'high', starts_at: NOW });
        const res = await store.write(
          t,
          [
            { op: 'insert', item: a },
            { op: 'insert', item: b },
          ],
          NOW,
        );
        expect(res.inserted).toEqual([
          { record: a, created: true },
          { record: b, created: true },
        ]);
        expect(await store.getItem(t, a.id)).toEqual(a);
        expect(sorted((await store.getItems(t, [a.id, b.id, 'not_missing'])).map((r) => r.id))).toEqual(
          sorted([a.id, b.id]),
        );
        expect(await store.getItems(t, [])).toEqual([]);
        expect(await store.getItem(newTenant(), a.id)).toBeNull();
        expect(await store.getItems(newTenant(), [a.id, b.id])).toEqual([]);
        expect(await store.countItems(t, 'note')).toBe(1);
        expect(await store.countItems(t, 'task')).toBe(1);
        expect(await store.listItems(t, { kind: 'note', order: 'created_desc', limit: 10 })).toEqual([a]);
      });

      it('is atomic: a batch whose second op is a stale update rolls back the first insert', async () => {
        const store = await open();
        const t = newTenant();
        const existing = item({ title: 'Existing' });
        await insert(store, t, [existing]);
        await store.write(
          t,
          [{ op: 'update', item: bumped(existing, { title: 'Edited' }), expected_version: 1 }],
          NOW,
        );
        const fresh = item({ title: 'Should not survive' });
        const stale = bumped(existing, { title: 'Stale edit' }); // still expects version 1
        await expect(
          store.write(
            t,
            [
              { op: 'insert', item: fresh },
              { op: 'update', item: stale, expected_version: 1 },
            ],
            LATER,
          ),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect(await store.getItem(t, fresh.id)).toBeNull();
        expect(await ids(store, t, ['survive'])).toEqual([]);
        const kept = await store.getItem(t, existing.id);
        expect(kept?.title).toBe('Edited');
        expect(kept?.version).toBe(2);
        expect(await store.countItems(t, 'note')).toBe(1);
      });

      it('throws StoreConflictError naming the item on a stale version, and changes nothing', async () => {
        const store = await open();
        const t = newTenant();
        const r = item({ title: 'Original' });
        await insert(store, t, [r]);
        const first = bumped(r, { title: 'First' });
        await store.write(t, [{ op: 'update', item: first, expected_version: 1 }], LATER);
        const err = await store
          .write(t, [{ op: 'update', item: bumped(r, { title: 'Second' }), expected_version: 1 }], LATER)
          .then(
            () => null,
            (e: unknown) => e,
          );
        expect(err).toBeInstanceOf(StoreConflictError);
        expect((err as StoreConflictError).id).toBe(r.id);
        expect((err as StoreConflictError).message).toMatch(/changed by another request/);
        const stored = await store.getItem(t, r.id);
        expect(stored?.title).toBe('First');
        expect(stored?.version).toBe(2);
        // An update for an item of another tenant is a conflict too, not a silent success.
        await expect(
          store.write(
            newTenant(),
            [{ op: 'update', item: bumped(first, { title: 'x' }), expected_version: 2 }],
            LATER,
          ),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect((await store.getItem(t, r.id))?.title).toBe('First');
      });

      it('returns the existing record with created:false when a client_ref is used again', async () => {
        const store = await open();
        const t = newTenant();
        const original = item({ title: 'First try', client_ref: 'retry-1' });
        const retry = item({ title: 'Second try', client_ref: 'retry-1' });
        expect((await store.write(t, [{ op: 'insert', item: original }], NOW)).inserted[0]?.created).toBe(
          true,
        );
        const res2 = await store.write(t, [{ op: 'insert', item: retry }], NOW);
        expect(res2.inserted).toEqual([{ record: original, created: false }]);
        expect(await store.getItem(t, retry.id)).toBeNull();
        expect(await store.findByClientRef(t, 'note', 'retry-1')).toEqual(original);
        expect(await store.findByClientRef(t, 'task', 'retry-1')).toBeNull();
        // The key is per kind and per tenant.
        const task = item({ kind: 'task', client_ref: 'retry-1' });
        expect((await store.write(t, [{ op: 'insert', item: task }], NOW)).inserted[0]?.created).toBe(true);
        const other = newTenant();
        const elsewhere = item({ client_ref: 'retry-1' });
        expect(
          (await store.write(other, [{ op: 'insert', item: elsewhere }], NOW)).inserted[0]?.created,
        ).toBe(true);
        expect(await store.findByClientRef(other, 'note', 'retry-1')).toEqual(elsewhere);
        // Within one batch too, and in order around other ops.
        const a = item({ client_ref: 'batch' });
        const b = item({ client_ref: 'batch' });
        const c = item({ client_ref: 'batch-2' });
        const res3 = await store.write(
          t,
          [
            { op: 'insert', item: a },
            { op: 'insert', item: b },
            { op: 'update', item: bumped(original, { title: 'touched' }), expected_version: 1 },
            { op: 'insert', item: c },
            { op: 'insert', item: item({ client_ref: 'batch-2' }) },
          ],
          NOW,
        );
        expect(res3.inserted.map((i) => [i.record.id, i.created])).toEqual([
          [a.id, true],
          [a.id, false],
          [c.id, true],
          [c.id, false],
        ]);
      });

      it('writes large batches in order, with content and import marks', async () => {
        const dir = path.join(folder(), 'documents');
        const store = await open({ documentsDir: dir });
        const t = newTenant();
        const records = Array.from({ length: 1203 }, (_, i) =>
          item({ kind: i % 100 === 0 ? 'document' : 'note', title: `bulk ${i}`, client_ref: `bulk-${i}` }),
        );
        const ops: WriteOp[] = records.map((r, i) =>
          r.kind === 'document'
            ? { op: 'insert', item: r, content: new Uint8Array([i % 256, 1, 2]) }
            : { op: 'insert', item: r },
        );
        for (const r of records) ops.push({ op: 'mark_imported', ref: `legacy:${t}:${r.id}`, item_id: r.id });
        const res = await store.write(t, ops, NOW);
        expect(res.inserted.map((i) => i.record.id)).toEqual(records.map((r) => r.id));
        expect(res.inserted.every((i) => i.created)).toBe(true);
        expect((await store.countItems(t, 'note')) + (await store.countItems(t, 'document'))).toBe(1203);
        expect(await store.getContent(t, records[100]?.id as string)).toEqual(new Uint8Array([100, 1, 2]));
        const refs = records.map((r) => `legacy:${t}:${r.id}`);
        expect((await store.importedRefs(refs, t)).size).toBe(1203);
        // Again: everything exists already.
        const again = await store.write(
          t,
          records.map((r) => ({ op: 'insert' as const, item: { ...r, id: `${r.id}x` } })),
          NOW,
        );
        expect(again.inserted.map((i) => [i.record.id, i.created])).toEqual(
          records.map((r) => [r.id, false]),
        );
      });

      it('purging a project leaves its tasks without a project; a task pointing at no project is refused', async () => {
        const store = await open();
        const t = newTenant();
        const project = item({ kind: 'project', title: 'Parent' });
        const task = item({ kind: 'task', title: 'Child', status: 'open', project_id: project.id });
        await insert(store, t, [project, task]);
        expect(await store.projectTaskCounts(t, [project.id])).toEqual(
          new Map([[project.id, { total: 1, done: 0 }]]),
        );
        await store.write(t, [{ op: 'purge', id: project.id }], NOW);
        expect(await store.getItem(t, project.id)).toBeNull();
        expect((await store.getItem(t, task.id))?.project_id).toBeNull();
        await expect(
          store.write(t, [{ op: 'insert', item: item({ kind: 'task', project_id: 'prj_missing' }) }], NOW),
        ).rejects.toThrow();
        expect(await store.countItems(t, 'task')).toBe(1);
      });
    });

    describe('listItems', () => {
      it('pages by (sort key, id) with ties, each record exactly once; undated last', async () => {
        const store = await open();
        const t = newTenant();
        const same = '2026-03-10T09:00:00.000Z';
        const records = Array.from({ length: 7 }, (_, i) =>
          item({ kind: 'task', starts_at: i < 5 ? same : i === 5 ? '2026-03-01T00:00:00.000Z' : null }),
        );
        await insert(store, t, records);
        const seen: string[] = [];
        let after: { key: string; id: string } | undefined;
        for (let page = 0; page < 10; page++) {
          const rows = await store.listItems(t, {
            kind: 'task',
            order: 'starts_asc',
            limit: 2,
            ...(after ? { after } : {}),
          });
          if (rows.length === 0) break;
          seen.push(...rows.map((r) => r.id));
          const last = rows[rows.length - 1] as ItemRecord;
          after = { key: last.starts_at ?? NO_DATE_KEY, id: last.id };
        }
        expect(seen).toHaveLength(records.length);
        expect(new Set(seen).size).toBe(records.length);
        expect(seen[0]).toBe(records[5]?.id);
        expect(seen.slice(1, 6)).toEqual(sorted(records.slice(0, 5).map((r) => r.id)));
        expect(seen[6]).toBe(records[6]?.id);
      });

      it('pages newest first by created_at and by updated_at, ties by id descending', async () => {
        const store = await open();
        const t = newTenant();
        const times = ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-02T00:00:00.000Z'];
        const records = Array.from({ length: 9 }, (_, i) =>
          item({ created_at: times[i % 3] as string, updated_at: times[(i + 1) % 3] as string }),
        );
        await insert(store, t, records);
        for (const order of ['created_desc', 'updated_desc'] as const) {
          const col = order === 'created_desc' ? 'created_at' : 'updated_at';
          const expected = [...records]
            .sort((x, y) => (x[col] === y[col] ? (x.id < y.id ? 1 : -1) : x[col] < y[col] ? 1 : -1))
            .map((r) => r.id);
          const seen: string[] = [];
          let after: { key: string; id: string } | undefined;
          for (let page = 0; page < 10; page++) {
            const rows = await store.listItems(t, {
              kind: 'note',
              order,
              limit: 4,
              ...(after ? { after } : {}),
            });
            if (rows.length === 0) break;
            seen.push(...rows.map((r) => r.id));
            const last = rows[rows.length - 1] as ItemRecord;
            after = { key: last[col], id: last.id };
          }
          expect(seen).toEqual(expected);
        }
      });

      it('filters by status, priority, project, tags, data fields, dates, overlap and trash', async () => {
        const store = await open();
        const t = newTenant();
        const project = item({ kind: 'project', title: 'P' });
        const tasks = [
          item({
            kind: 'task',
            status: 'open',
            priority: 'high',
            tags: ['a', 'b'],
            starts_at: '2026-03-01T10:00:00.000Z',
            project_id: project.id,
            data: { pinned: true, document_type: 'pdf' },
          }),
          item({
            kind: 'task',
            status: 'done',
            priority: 'low',
            tags: ['b'],
            starts_at: '2026-03-02T10:00:00.000Z',
            data: { pinned: false, document_type: 'txt' },
          }),
          item({
            kind: 'task',
            status: 'open',
            priority: 'low',
            tags: [],
            starts_at: null,
            project_id: project.id,
            data: {},
          }),
          item({
            kind: 'task',
            status: 'open',
            priority: null,
            tags: ['c'],
            starts_at: '2026-03-03T10:00:00.000Z',
            deleted_at: LATER,
          }),
        ];
        const [t0, t1, t2, t3] = tasks as [ItemRecord, ItemRecord, ItemRecord, ItemRecord];
        await insert(store, t, [project, ...tasks]);
        const list = async (q: Partial<ItemQuery>) =>
          sorted(
            (await store.listItems(t, { kind: 'task', order: 'starts_asc', limit: 50, ...q })).map(
              (r) => r.id,
            ),
          );
        expect(await list({})).toEqual(sorted([t0.id, t1.id, t2.id]));
        expect(await list({ trash: true })).toEqual([t3.id]);
        expect(await list({ status: ['open'] })).toEqual(sorted([t0.id, t2.id]));
        expect(await list({ status: ['open', 'done'] })).toEqual(sorted([t0.id, t1.id, t2.id]));
        expect(await list({ priority: ['low'] })).toEqual(sorted([t1.id, t2.id]));
        expect(await list({ project_id: project.id })).toEqual(sorted([t0.id, t2.id]));
        expect(await list({ project_id: null })).toEqual([t1.id]);
        expect(await list({ tags: ['a', 'c'] })).toEqual([t0.id]);
        expect(await list({ tags: ['b'] })).toEqual(sorted([t0.id, t1.id]));
        expect(await list({ data_in: { pinned: [true] } })).toEqual([t0.id]);
        expect(await list({ data_in: { pinned: [false] } })).toEqual([t1.id]);
        expect(await list({ data_in: { document_type: ['pdf', 'txt'] } })).toEqual(sorted([t0.id, t1.id]));
        expect(await list({ data_in: { document_type: ['pdf'], pinned: [false] } })).toEqual([]);
        expect(await list({ starts_from: '2026-03-02T00:00:00.000Z' })).toEqual([t1.id]);
        expect(await list({ starts_before: '2026-03-02T10:00:00.000Z' })).toEqual([t0.id]);
        expect(
          await list({ starts_from: '2026-03-01T10:00:00.000Z', starts_before: '2026-03-03T00:00:00.000Z' }),
        ).toEqual(sorted([t0.id, t1.id]));

        const events = [
          item({ kind: 'event', starts_at: '2026-03-01T09:00:00.000Z', ends_at: '2026-03-01T10:00:00.000Z' }),
          item({ kind: 'event', starts_at: '2026-02-01T09:00:00.000Z', ends_at: null }), // open-ended series
          item({ kind: 'event', starts_at: '2026-03-05T09:00:00.000Z', ends_at: '2026-03-05T10:00:00.000Z' }),
        ];
        await insert(store, t, events);
        const overlapping = await store.listItems(t, {
          kind: 'event',
          order: 'starts_asc',
          limit: 50,
          overlaps: { from: '2026-03-01T09:30:00.000Z', to: '2026-03-02T00:00:00.000Z' },
        });
        expect(overlapping.map((r) => r.id)).toEqual([events[1]?.id, events[0]?.id]);

        expect(await store.countItems(t, 'task')).toBe(3);
        expect(await store.countItems(t, 'task', ['open'])).toBe(2);
        expect(await store.countItems(t, 'task', ['done', 'cancelled'])).toBe(1);
        await store.write(
          t,
          [{ op: 'update', item: bumped(t2, { status: 'done' }), expected_version: 1 }],
          LATER,
        );
        expect(await store.projectTaskCounts(t, [project.id, 'prj_none'])).toEqual(
          new Map([[project.id, { total: 2, done: 1 }]]),
        );
        expect(await store.projectTaskCounts(newTenant(), [project.id])).toEqual(new Map());
      });
    });

    describe('profile', () => {
      it('is created once, then replaced only at the expected version; per tenant', async () => {
        const store = await open();
        const t = newTenant();
        expect(await store.getProfile(t)).toBeNull();
        const data: JsonObject = {
          name: 'Ada',
          timezone: 'Europe/Paris',
          nested: { list: [1, 'x', null, true] },
        };
        expect(await store.putProfile(t, data, null, NOW)).toEqual({ data, version: 1, updated_at: NOW });
        expect(await store.getProfile(t)).toEqual({ data, version: 1, updated_at: NOW });
        await expect(store.putProfile(t, { name: 'again' }, null, NOW)).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        const next = { ...data, name: 'Ada L.' };
        expect(await store.putProfile(t, next, 1, LATER)).toEqual({
          data: next,
          version: 2,
          updated_at: LATER,
        });
        await expect(store.putProfile(t, { name: 'stale' }, 1, LATER)).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        expect(await store.getProfile(t)).toEqual({ data: next, version: 2, updated_at: LATER });
        const other = newTenant();
        expect(await store.getProfile(other)).toBeNull();
        await expect(store.putProfile(other, { name: 'x' }, 1, NOW)).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        expect(await store.putProfile(other, { name: 'Bob' }, null, NOW)).toMatchObject({ version: 1 });
        expect((await store.getProfile(t))?.data).toEqual(next);
      });
    });

    describe('importedRefs', () => {
      it('remembers imported refs, even after the item is purged', async () => {
        const store = await open();
        const t = newTenant();
        const r = item({ client_ref: `legacy:${t}:1` });
        await store.write(
          t,
          [
            { op: 'insert', item: r },
            { op: 'mark_imported', ref: `legacy:${t}:1`, item_id: r.id },
            { op: 'mark_imported', ref: `legacy:${t}:profile`, item_id: null },
            { op: 'mark_imported', ref: `legacy:${t}:profile`, item_id: null },
          ],
          NOW,
        );
        const asked = [`legacy:${t}:1`, `legacy:${t}:profile`, `legacy:${t}:2`];
        expect(sorted(await store.importedRefs(asked, t))).toEqual([`legacy:${t}:1`, `legacy:${t}:profile`]);
        await store.write(t, [{ op: 'purge', id: r.id }], NOW);
        expect(sorted(await store.importedRefs(asked, t))).toEqual([`legacy:${t}:1`, `legacy:${t}:profile`]);
        expect(await store.importedRefs([], t)).toEqual(new Set());
        if (!backend.singleUser) expect(await store.importedRefs(asked, newTenant())).toEqual(new Set());
      });
    });

    describe('full-text search', () => {
      it('stays in step with inserts, updates, soft deletes and purges', async () => {
        const store = await open();
        const t = newTenant();
        const r = item({ title: 'Quarterly budget', body: 'spreadsheet for finance', tags: ['money'] });
        const other = item({ title: 'Dentist appointment' });
        await insert(store, t, [r, other]);
        expect(await ids(store, t, ['budget'])).toEqual([r.id]);
        expect(await ids(store, t, ['finance'])).toEqual([r.id]);
        expect(await ids(store, t, ['money'])).toEqual([r.id]);
        expect(await ids(store, t, ['budget', 'dentist'], 'all')).toEqual([]);
        expect(await ids(store, t, ['budget', 'dentist'], 'any')).toEqual(sorted([r.id, other.id]));
        expect(await ids(store, newTenant(), ['budget'])).toEqual([]);

        const edited = bumped(r, { title: 'Annual forecast', body: 'slides for the board', tags: ['work'] });
        await store.write(t, [{ op: 'update', item: edited, expected_version: 1 }], LATER);
        for (const old of ['budget', 'finance', 'money']) expect(await ids(store, t, [old])).toEqual([]);
        for (const fresh of ['forecast', 'board', 'work'])
          expect(await ids(store, t, [fresh])).toEqual([r.id]);

        await store.write(
          t,
          [{ op: 'update', item: bumped(edited, { deleted_at: LATER }), expected_version: 2 }],
          LATER,
        );
        expect(await ids(store, t, ['forecast'])).toEqual([]);
        await store.write(t, [{ op: 'purge', id: r.id }], LATER);
        expect(await ids(store, t, ['forecast'])).toEqual([]);
        expect(await ids(store, t, ['dentist'])).toEqual([other.id]);
      });

      it('treats search syntax in terms as plain words and marks matches in snippets', async () => {
        const store = await open();
        const t = newTenant();
        const r = item({ title: 'Notes about OR NOT AND near', body: 'mail john@example.com about foo_bar' });
        await insert(store, t, [r]);
        const nasty = [
          ['or'],
          ['NOT'],
          ['near'],
          ['"quoted"'],
          ['a*'],
          ['title:x'],
          ['-'],
          ['&', '|', '!'],
          ["'"],
          ['(x'],
          ['<->'],
          ['\\'],
          [''],
        ];
        for (const terms of nasty) {
          for (const match of ['all', 'any'] as const) {
            await expect(store.searchText(t, { terms, match, limit: 5 })).resolves.toBeInstanceOf(Array);
          }
        }
        expect(await ids(store, t, ['NOT'])).toEqual([r.id]);
        expect(await ids(store, t, ['example'])).toEqual([r.id]);
        expect(await ids(store, t, ['foo_bar'])).toEqual([r.id]);
        expect(await ids(store, t, ['bar', 'john'])).toEqual([r.id]);
        const hits = await store.searchText(t, { terms: ['notes'], match: 'all', limit: 5 });
        expect(hits[0]?.snippet).toContain('«Notes»');
        expect(hits[0]?.score).toBeGreaterThan(0);
      });

      it('matches English word forms', async () => {
        const store = await open();
        const t = newTenant();
        const meeting = item({ title: 'Weekly meetings with the team' });
        const running = item({ title: 'Running shoes' });
        const planned = item({ body: 'We planned the trips' });
        await insert(store, t, [meeting, running, planned]);
        expect(await ids(store, t, ['meeting'])).toEqual([meeting.id]);
        expect(await ids(store, t, ['runs'])).toEqual([running.id]);
        expect(await ids(store, t, ['planning', 'trip'])).toEqual([planned.id]);
        expect(await ids(store, t, ['the'])).toEqual(sorted([meeting.id, planned.id]));
      });

      it('ranks a match in the title above one in the tags, and that above one in the body', async () => {
        const store = await open();
        const t = newTenant();
        const inBody = item({
          title: 'Weekly notes',
          body: 'orchid care and watering plan',
          tags: ['plants'],
        });
        const inTags = item({ title: 'Weekly notes', body: 'rose care and watering plan', tags: ['orchid'] });
        const inTitle = item({
          title: 'Orchid notes',
          body: 'lily care and watering plan',
          tags: ['plants'],
        });
        await insert(store, t, [inBody, inTags, inTitle]);
        const hits = await store.searchText(t, { terms: ['orchid'], match: 'all', limit: 10 });
        expect(hits.map((h) => h.id)).toEqual([inTitle.id, inTags.id, inBody.id]);
        expect(hits[0]?.score).toBeGreaterThan(hits[1]?.score as number);
        expect(hits[1]?.score).toBeGreaterThan(hits[2]?.score as number);
      });

      it('applies kinds, tags, status and date filters before the limit', async () => {
        const store = await open();
        const t = newTenant();
        // Many better-ranked notes, and one task at the bottom that the filters keep.
        const notes = Array.from({ length: 30 }, () => item({ title: 'alpha alpha alpha', tags: ['x'] }));
        const task = item({
          kind: 'task',
          title: 'other',
          body: 'a long body that mentions alpha once among many other words here',
          tags: ['keep'],
          status: 'open',
          starts_at: '2026-04-01T00:00:00.000Z',
        });
        await insert(store, t, [...notes, task]);
        const search = async (extra: object) =>
          (await store.searchText(t, { terms: ['alpha'], match: 'all', limit: 3, ...extra })).map(
            (h) => h.id,
          );
        expect(await search({})).toHaveLength(3);
        expect(await search({})).not.toContain(task.id);
        expect(await search({ kinds: ['task'] })).toEqual([task.id]);
        expect(await search({ kinds: ['event', 'task'] })).toEqual([task.id]);
        expect(await search({ tags: ['keep', 'nothing'] })).toEqual([task.id]);
        expect(await search({ status: ['open'] })).toEqual([task.id]);
        expect(await search({ starts_from: '2026-03-31T00:00:00.000Z' })).toEqual([task.id]);
        expect(
          await search({
            starts_from: '2026-03-31T00:00:00.000Z',
            starts_before: '2026-04-01T00:00:00.000Z',
          }),
        ).toEqual([]);
        expect(
          await search({ starts_before: '2026-04-01T00:00:01.000Z', kinds: ['task'], tags: ['keep'] }),
        ).toEqual([task.id]);
      });
    });

    describe('document content', () => {
      it('in a folder: owner-only files, read back, nothing in the database, removed on purge', async () => {
        const dir = path.join(folder(), 'documents');
        const store = await open({ documentsDir: dir });
        const plain = await open(); // same database, no folder: sees only what is in the database
        const t = newTenant();
        const doc = item({ kind: 'document', title: 'Scan' });
        const bytes = new Uint8Array([0x25, 0x50, 0x44, 0x46, 0x00, 0xff, 0x10]);
        await store.write(t, [{ op: 'insert', item: doc, content: bytes }], NOW);
        const file = path.join(dir, t, doc.id);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(statSync(path.join(dir, t)).mode & 0o777).toBe(0o700);
        expect(new Uint8Array(readFileSync(file))).toEqual(bytes);
        expect(await store.getContent(t, doc.id)).toEqual(bytes);
        expect(await plain.getContent(t, doc.id)).toBeNull();
        expect(readdirSync(path.join(dir, t))).toEqual([doc.id]);
        await store.write(t, [{ op: 'purge', id: doc.id }], LATER);
        expect(existsSync(file)).toBe(false);
        expect(await store.getContent(t, doc.id)).toBeNull();
      });

      it('in a folder: removes a file written by a batch that rolled back', async () => {
        const dir = path.join(folder(), 'documents');
        const store = await open({ documentsDir: dir });
        const t = newTenant();
        const existing = item();
        await insert(store, t, [existing]);
        await store.write(
          t,
          [{ op: 'update', item: bumped(existing, { title: 'v2' }), expected_version: 1 }],
          NOW,
        );
        const doc = item({ kind: 'document' });
        await expect(
          store.write(
            t,
            [
              { op: 'insert', item: doc, content: new Uint8Array([1, 2, 3]) },
              { op: 'update', item: bumped(existing, { title: 'stale' }), expected_version: 1 },
            ],
            LATER,
          ),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect(existsSync(path.join(dir, t, doc.id))).toBe(false);
        expect(await store.getItem(t, doc.id)).toBeNull();
      });

      it('in the database when no folder is configured: per tenant, dropped on purge', async () => {
        const store = await open();
        const t = newTenant();
        const doc = item({ kind: 'document' });
        const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);
        await store.write(t, [{ op: 'insert', item: doc, content: bytes }], NOW);
        const back = await store.getContent(t, doc.id);
        expect(back).toBeInstanceOf(Uint8Array);
        expect(back).toEqual(bytes);
        expect(await store.getContent(newTenant(), doc.id)).toBeNull();
        await store.write(t, [{ op: 'purge', id: doc.id }], NOW);
        expect(await store.getContent(t, doc.id)).toBeNull();
      });
    });

    describe('vectors', () => {
      const MODEL = 'hash-v1-4';

      it('hasPendingVectors follows writes: missing, failed and outdated vectors count; trashed items do not', async () => {
        const store = await open();
        const t = newTenant();
        const vec = unit([1, 0, 0, 0]);
        expect(await store.hasPendingVectors(t, MODEL)).toBe(false);
        const a = item();
        const b = item();
        await insert(store, t, [a, b]);
        expect(await store.hasPendingVectors(t, MODEL)).toBe(true); // no vectors yet
        await store.putVector(t, a.id, MODEL, vec, NOW);
        expect(await store.hasPendingVectors(t, MODEL)).toBe(true); // b still has none
        await store.putVector(t, b.id, MODEL, null, NOW);
        expect(await store.hasPendingVectors(t, MODEL)).toBe(true); // b failed: pending
        await store.putVector(t, b.id, MODEL, vec, NOW);
        expect(await store.hasPendingVectors(t, MODEL)).toBe(false);
        expect(await store.hasPendingVectors(t, 'hash-v1-8')).toBe(true); // another model: all outdated
        expect(await store.hasPendingVectors(t, 'aaa')).toBe(true);
        expect(await store.hasPendingVectors(t, 'zzz')).toBe(true);
        await store.putVector(t, b.id, MODEL, null, NOW);
        await store.write(
          t,
          [{ op: 'update', item: bumped(b, { deleted_at: LATER }), expected_version: 1 }],
          LATER,
        );
        expect(await store.hasPendingVectors(t, MODEL)).toBe(false); // only a trashed item is pending
      });

      it('itemsNeedingVectors walks live items without a current vector in id order', async () => {
        const store = await open();
        const t = newTenant();
        const records = Array.from({ length: 6 }, () => item());
        await insert(store, t, records);
        const [r0, r1, r2, r3, r4, r5] = records as [
          ItemRecord,
          ItemRecord,
          ItemRecord,
          ItemRecord,
          ItemRecord,
          ItemRecord,
        ];
        await store.putVector(t, r0.id, MODEL, unit([1, 0, 0, 0]), NOW); // ready
        await store.putVector(t, r1.id, MODEL, null, NOW); // failed
        await store.putVector(t, r2.id, 'old-model', unit([0, 1, 0, 0]), NOW); // outdated
        await store.write(
          t,
          [{ op: 'update', item: bumped(r5, { deleted_at: LATER }), expected_version: 1 }],
          LATER,
        );
        const need = async (limit: number, after?: string) =>
          (await store.itemsNeedingVectors(t, MODEL, limit, after)).map((r) => r.id);
        expect(await need(10)).toEqual([r1.id, r2.id, r3.id, r4.id]);
        expect(await need(2)).toEqual([r1.id, r2.id]);
        expect(await need(2, r2.id)).toEqual([r3.id, r4.id]);
        expect(await need(10, r4.id)).toEqual([]);
        expect((await store.itemsNeedingVectors(t, MODEL, 1))[0]).toEqual(r1);
        expect(await store.itemsNeedingVectors(newTenant(), MODEL, 10)).toEqual([]);
      });

      it('searchVectors ranks by cosine similarity within the tenant, model and kinds; pending vectors are never found', async () => {
        const store = await open();
        const t = newTenant();
        const near = item({ title: 'near' });
        const mid = item({ kind: 'task', title: 'mid' });
        const far = item({ title: 'far' });
        const failed = item({ title: 'failed' });
        const trashed = item({ title: 'trashed', deleted_at: LATER });
        const otherModel = item({ title: 'other model' });
        const otherDims = item({ title: 'other dims' });
        await insert(store, t, [near, mid, far, failed, trashed, otherModel, otherDims]);
        await store.putVector(t, near.id, MODEL, unit([1, 0.1, 0, 0]), NOW);
        await store.putVector(t, mid.id, MODEL, unit([1, 1, 0, 0]), NOW);
        await store.putVector(t, far.id, MODEL, unit([0, 0, 1, 0]), NOW);
        await store.putVector(t, failed.id, MODEL, unit([1, 0, 0, 0]), NOW);
        await store.putVector(t, failed.id, MODEL, null, NOW); // a later failure: pending, not the old vector
        await store.putVector(t, trashed.id, MODEL, unit([1, 0, 0, 0]), NOW);
        await store.putVector(t, otherModel.id, 'other', unit([1, 0, 0, 0]), NOW);
        await store.putVector(t, otherDims.id, MODEL, unit([1, 0, 0, 0, 0, 0, 0, 0]), NOW);
        const other = newTenant();
        const foreign = item({ title: 'foreign' });
        await insert(store, other, [foreign]);
        await store.putVector(other, foreign.id, MODEL, unit([1, 0, 0, 0]), NOW);

        const q = unit([1, 0, 0, 0]);
        const hits = await store.searchVectors(t, q, { model: MODEL }, 10);
        expect(hits.map((h) => h.id)).toEqual([near.id, mid.id, far.id]);
        expect(hits[0]?.score).toBeCloseTo(1 / Math.sqrt(1.01), 5);
        expect(hits[1]?.score).toBeCloseTo(Math.SQRT1_2, 5);
        expect(hits[2]?.score).toBeCloseTo(0, 5);
        expect((await store.searchVectors(t, q, { model: MODEL }, 2)).map((h) => h.id)).toEqual([
          near.id,
          mid.id,
        ]);
        expect(
          (await store.searchVectors(t, q, { model: MODEL, kinds: ['task'] }, 10)).map((h) => h.id),
        ).toEqual([mid.id]);
        expect((await store.searchVectors(t, q, { model: 'other' }, 10)).map((h) => h.id)).toEqual([
          otherModel.id,
        ]);
        expect((await store.searchVectors(t, q, { model: 'none' }, 10)).map((h) => h.id)).toEqual([]);
        expect((await store.searchVectors(other, q, { model: MODEL }, 10)).map((h) => h.id)).toEqual([
          foreign.id,
        ]);
        expect(await store.hasPendingVectors(t, MODEL)).toBe(true); // `failed` is pending
      });

      it('tenantsNeedingVectors lists, in order, the tenants with live items lacking a current vector', async () => {
        const store = await open();
        const [ready, pending, fresh, trashedOnly, empty] = Array.from({ length: 5 }, newTenant) as [
          string,
          string,
          string,
          string,
          string,
        ];
        const vec = unit([0, 1, 0, 0]);
        const r = item();
        await insert(store, ready, [r]);
        await store.putVector(ready, r.id, MODEL, vec, NOW);
        const p = item();
        await insert(store, pending, [p]);
        await store.putVector(pending, p.id, MODEL, null, NOW);
        await insert(store, fresh, [item()]);
        const tr = item({ deleted_at: LATER });
        await insert(store, trashedOnly, [tr]);
        const ours = new Set([ready, pending, fresh, trashedOnly, empty]);
        const listed = async (model: string) =>
          (await store.tenantsNeedingVectors(model, 100_000)).filter((x) => ours.has(x));
        expect(await listed(MODEL)).toEqual(sorted([pending, fresh]));
        expect(await listed('another-model')).toEqual(sorted([ready, pending, fresh]));
        await store.putVector(pending, p.id, MODEL, vec, NOW);
        expect(await listed(MODEL)).toEqual([fresh]);
        // The limit keeps the first tenants in order.
        const all = await store.tenantsNeedingVectors('another-model', 100_000);
        expect(all).toEqual(sorted(all));
        expect(await store.tenantsNeedingVectors('another-model', 2)).toEqual(all.slice(0, 2));
        expect(await store.tenantsNeedingVectors('another-model', 0)).toEqual([]);
      });
    });

    describe('tenant isolation', () => {
      it('two tenants interleaving every kind of write and read never see, change or delete the other’s data', async () => {
        const dir = path.join(folder(), 'documents');
        // Two stores on one database (one with a content folder) where the backend shares its state through
        // the database; SQLite keeps caches in the store object, so it is exercised through one store.
        const stores = backend.singleUser
          ? [await open({ documentsDir: dir })]
          : [await open({ documentsDir: dir }), await open()];
        const seed = Number.parseInt(randomBytes(4).toString('hex'), 16);
        await isolationRun(stores, seed, backend.singleUser, 160);
      });
    });
  });
}

interface TenantModel {
  readonly items: Map<string, ItemRecord>;
  /** Document content, and whether it went to the content folder (only a store with the folder reads it). */
  readonly contents: Map<string, { bytes: Uint8Array; inFolder: boolean }>;
  /** Current vector per item: a model and whether it is ready. */
  readonly vectors: Map<string, { model: string; vector: Float32Array | null }>;
  readonly refs: Set<string>;
  profile: { data: JsonObject; version: number; updated_at: string } | null;
}

const MODELS = ['m-a', 'm-b'];
const KINDS: ItemKind[] = ['note', 'task', 'document', 'project', 'event'];

/**
 * A seeded random interleaving of two tenants' writes and reads (against stores on the same database, one with
 * a content folder and one without). An in-memory model per tenant says what each must see; every read is
 * compared with it, and calls naming the other tenant's items must neither see nor change them.
 */
export async function isolationRun(
  stores: readonly Store[],
  seed: number,
  singleUser: boolean,
  steps: number,
): Promise<void> {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const tenants = [newTenant(), newTenant()];
  const models = new Map<string, TenantModel>(
    tenants.map((t) => [
      t,
      { items: new Map(), contents: new Map(), vectors: new Map(), refs: new Set(), profile: null },
    ]),
  );
  const ctx = (step: number, what: string) => `seed ${seed}, step ${step}: ${what}`;
  const storeFor = (t: string) => stores[tenants.indexOf(t) % stores.length] as Store;
  let clock = Date.parse(NOW);
  const tick = () => new Date((clock += 1000)).toISOString();

  const live = (m: TenantModel) => [...m.items.values()].filter((r) => r.deleted_at === null);
  const needsVector = (m: TenantModel, model: string, r: ItemRecord) => {
    const v = m.vectors.get(r.id);
    return r.deleted_at === null && (!v || v.vector === null || v.model !== model);
  };

  for (let step = 0; step < steps; step++) {
    const t = pick(tenants);
    const other = tenants.find((x) => x !== t) as string;
    const m = models.get(t) as TenantModel;
    const om = models.get(other) as TenantModel;
    const store = pick(stores);
    const mine = [...m.items.values()];
    const theirs = [...om.items.values()];
    const now = tick();
    const action = Math.floor(rand() * 10);

    switch (action) {
      case 0:
      case 1: {
        // insert one to three records; some with content, some with a client_ref the other tenant used too
        const batch = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
          const kind = pick(KINDS);
          const ref = rand() < 0.3 ? `shared-${Math.floor(rand() * 4)}` : null;
          return item({
            kind,
            title: `zebra ${t} ${pick(['alpha', 'beta', 'gamma'])}`,
            body: `body ${step}`,
            tags: rand() < 0.5 ? ['shared'] : [],
            status: kind === 'task' ? pick(['open', 'done']) : null,
            client_ref: ref,
            created_at: now,
            updated_at: now,
          });
        });
        const ops: WriteOp[] = batch.map((r) =>
          r.kind === 'document' && rand() < 0.7
            ? { op: 'insert', item: r, content: new Uint8Array([step % 256, tenants.indexOf(t)]) }
            : { op: 'insert', item: r },
        );
        const res = await store.write(t, ops, now);
        res.inserted.forEach((ins, k) => {
          const op = ops[k] as Extract<WriteOp, { op: 'insert' }>;
          const existing = op.item.client_ref
            ? [...m.items.values()].find(
                (r) => r.kind === op.item.kind && r.client_ref === op.item.client_ref,
              )
            : undefined;
          if (existing) {
            expect(ins, ctx(step, 'client_ref reuse returns own record')).toEqual({
              record: existing,
              created: false,
            });
          } else {
            expect(ins.created, ctx(step, 'insert creates')).toBe(true);
            m.items.set(op.item.id, op.item);
            if (op.content) m.contents.set(op.item.id, { bytes: op.content, inFolder: store === stores[0] });
          }
        });
        break;
      }
      case 2: {
        // update an own record (maybe trash or restore it); then try the other tenant's record
        if (mine.length > 0) {
          const r = pick(mine);
          const next = bumped(r, {
            title: `zebra ${t} ${pick(['delta', 'alpha'])}`,
            deleted_at: rand() < 0.3 ? (r.deleted_at ? null : now) : r.deleted_at,
            updated_at: now,
          });
          await store.write(t, [{ op: 'update', item: next, expected_version: r.version }], now);
          m.items.set(r.id, next);
        }
        if (theirs.length > 0) {
          const victim = pick(theirs);
          await expect(
            store.write(
              t,
              [
                {
                  op: 'update',
                  item: bumped(victim, { title: 'hijacked' }),
                  expected_version: victim.version,
                },
              ],
              now,
            ),
            ctx(step, 'updating the other tenant’s item conflicts'),
          ).rejects.toBeInstanceOf(StoreConflictError);
        }
        break;
      }
      case 3: {
        // purge an own record and attempt to purge one of the other tenant's
        const ops: WriteOp[] = [];
        if (mine.length > 0 && rand() < 0.6) ops.push({ op: 'purge', id: pick(mine).id });
        if (theirs.length > 0) ops.push({ op: 'purge', id: pick(theirs).id });
        if (ops.length === 0) break;
        await store.write(t, ops, now);
        for (const op of ops) {
          if (op.op !== 'purge' || !m.items.has(op.id)) continue;
          m.items.delete(op.id);
          m.contents.delete(op.id);
          m.vectors.delete(op.id);
          for (const r of m.items.values()) {
            if (r.project_id === op.id) m.items.set(r.id, { ...r, project_id: null });
          }
        }
        break;
      }
      case 4: {
        // profile: create or replace, and a stale write that must conflict
        const res = await store.putProfile(t, { name: `${t}-${step}` }, m.profile?.version ?? null, now);
        m.profile = res;
        await expect(
          store.putProfile(t, { name: 'stale' }, m.profile.version - 1 || null, now),
          ctx(step, 'stale profile write'),
        ).rejects.toBeInstanceOf(StoreConflictError);
        break;
      }
      case 5: {
        // vectors: ready, pending (failure) or another model, for own items; then aimed at the other tenant's
        if (mine.length > 0) {
          const r = pick(mine);
          const model = pick(MODELS);
          const vector = rand() < 0.25 ? null : unit([1 + rand(), rand(), rand(), rand()]);
          await store.putVector(t, r.id, model, vector, now);
          m.vectors.set(r.id, { model, vector });
        }
        if (theirs.length > 0 && !singleUser) {
          const victim = pick(theirs);
          await store.putVector(t, victim.id, 'm-a', unit([0, 0, 0, 1]), now).then(
            () => undefined,
            () => undefined, // refused (no such item for this tenant) is fine; the check is below
          );
        }
        break;
      }
      case 6: {
        // legacy import marks
        const ref = `legacy-${t}-${Math.floor(rand() * 6)}`;
        await store.write(t, [{ op: 'mark_imported', ref, item_id: mine[0]?.id ?? null }], now);
        m.refs.add(ref);
        break;
      }
      default:
        break; // read-only step
    }

    // Reads, for the acting tenant, every step.
    const ids = (rs: readonly ItemRecord[]) => sorted(rs.map((r) => r.id));
    const liveMine = live(m);
    for (const kind of KINDS) {
      const listed = await store.listItems(t, { kind, order: 'created_desc', limit: 1000 });
      expect(ids(listed), ctx(step, `list ${kind}`)).toEqual(ids(liveMine.filter((r) => r.kind === kind)));
      expect(await store.countItems(t, kind), ctx(step, `count ${kind}`)).toBe(
        liveMine.filter((r) => r.kind === kind).length,
      );
    }
    const trashKind = pick(KINDS);
    const trash = await store.listItems(t, {
      kind: trashKind,
      order: 'updated_desc',
      limit: 1000,
      trash: true,
    });
    expect(ids(trash), ctx(step, 'trash')).toEqual(
      ids([...m.items.values()].filter((r) => r.kind === trashKind && r.deleted_at !== null)),
    );
    for (const r of trash) expect(m.items.get(r.id), ctx(step, 'trash record')).toEqual(r);
    const doc = [...m.contents.entries()][Math.floor(rand() * m.contents.size)];
    if (doc) {
      const [id, c] = doc;
      const expected = c.inFolder && store !== stores[0] ? null : c.bytes;
      expect(await store.getContent(t, id), ctx(step, 'own content')).toEqual(expected);
    }
    const probe = [...mine.slice(0, 5), ...theirs.slice(0, 5)].map((r) => r.id);
    const got = await store.getItems(t, probe);
    expect(ids(got), ctx(step, 'getItems')).toEqual(sorted(probe.filter((id) => m.items.has(id))));
    for (const r of got) expect(r, ctx(step, 'getItems record')).toEqual(m.items.get(r.id));
    if (theirs.length > 0) {
      const victim = pick(theirs);
      expect(await store.getItem(t, victim.id), ctx(step, 'getItem other')).toBeNull();
      expect(await store.getContent(t, victim.id), ctx(step, 'getContent other')).toBeNull();
    }
    const hits = await store.searchText(t, { terms: ['zebra'], match: 'all', limit: 1000 });
    expect(sorted(hits.map((h) => h.id)), ctx(step, 'search')).toEqual(ids(liveMine));
    const tagged = await store.searchText(t, {
      terms: ['zebra', 'nothing'],
      match: 'any',
      tags: ['shared'],
      limit: 1000,
    });
    expect(sorted(tagged.map((h) => h.id)), ctx(step, 'search tags')).toEqual(
      ids(liveMine.filter((r) => r.tags.includes('shared'))),
    );
    const model = pick(MODELS);
    const vhits = await store.searchVectors(t, unit([1, 0.5, 0.5, 0.5]), { model }, 1000);
    const readyMine = new Set(
      liveMine
        .filter((r) => m.vectors.get(r.id)?.model === model && m.vectors.get(r.id)?.vector)
        .map((r) => r.id),
    );
    for (const h of vhits) expect(readyMine.has(h.id), ctx(step, `vector hit ${h.id}`)).toBe(true);
    expect(await store.hasPendingVectors(t, model), ctx(step, 'pending')).toBe(
      liveMine.some((r) => needsVector(m, model, r)),
    );
    expect(ids(await store.itemsNeedingVectors(t, model, 1000)), ctx(step, 'needing')).toEqual(
      ids(liveMine.filter((r) => needsVector(m, model, r))),
    );
    const listedTenants = (await store.tenantsNeedingVectors(model, 100_000)).filter((x) =>
      tenants.includes(x),
    );
    expect(listedTenants, ctx(step, 'tenantsNeedingVectors')).toEqual(
      sorted(
        tenants.filter((x) =>
          live(models.get(x) as TenantModel).some((r) => needsVector(models.get(x) as TenantModel, model, r)),
        ),
      ),
    );
    expect(await store.getProfile(t), ctx(step, 'profile')).toEqual(m.profile);
    const allRefs = [...m.refs, ...om.refs, `legacy-${t}-none`];
    expect(sorted(await store.importedRefs(allRefs, t)), ctx(step, 'refs')).toEqual(
      sorted(singleUser ? [...m.refs, ...om.refs] : m.refs),
    );
    const projects = liveMine.filter((r) => r.kind === 'project').map((r) => r.id);
    expect(
      (await store.projectTaskCounts(t, [...projects, ...theirs.map((r) => r.id)])).size,
      ctx(step, 'counts'),
    ).toBe(0);
    if (rand() < 0.3) {
      // the other tenant, through the other store: untouched by everything above
      const os = storeFor(other);
      for (const r of om.items.values()) {
        expect(await os.getItem(other, r.id), ctx(step, 'other tenant record')).toEqual(r);
        const c = om.contents.get(r.id);
        if (c) {
          const expected = c.inFolder && os !== stores[0] ? null : c.bytes;
          expect(await os.getContent(other, r.id), ctx(step, 'other content')).toEqual(expected);
        }
      }
      expect(await os.getProfile(other), ctx(step, 'other profile')).toEqual(om.profile);
    }
  }
  // Finally every vector of both tenants is as the model says: nothing aimed at the other tenant landed.
  for (const t of tenants) {
    const m = models.get(t) as TenantModel;
    for (const model of MODELS) {
      for (const r of live(m)) {
        const v = m.vectors.get(r.id);
        if (!v || v.model !== model || !v.vector) continue;
        const hits = await (stores[0] as Store).searchVectors(t, v.vector, { model }, 1000);
        const mineHit = hits.find((h) => h.id === r.id);
        expect(mineHit?.score, `seed ${seed}: vector of ${r.id} unchanged`).toBeCloseTo(1, 5);
      }
    }
  }
}
