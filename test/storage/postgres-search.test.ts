/**
 * PostgreSQL full-text ranking: the single-word shortcut (rank title matches only when enough of them pass the
 * filters) gives exactly the answer of ranking every match, checked against a brute-force ranking in SQL over
 * random documents, on PGlite and on the real server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteDriver } from '../../src/storage/postgres/driver.js';
import {
  openPostgresStore,
  storeOnDriver,
  type PostgresStore,
} from '../../src/storage/postgres/postgres-store.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';
import { item, newTenant, NOW, prng } from './contract.js';

function searchRanking(name: string, open: () => Promise<PostgresStore>, close: () => Promise<void>): void {
  describe(`PostgreSQL full-text ranking: ${name}`, () => {
    let store: PostgresStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
      await close();
    });

    it('text holding U+0000 (which PostgreSQL cannot store) is refused with a clear error', async () => {
      const t = newTenant();
      for (const r of [item({ title: 'a\u0000b' }), item({ data: { x: 'a\u0000b' } })]) {
        await expect(store.write(t, [{ op: 'insert', item: r }], NOW)).rejects.toThrow(
          'text containing the NUL character (U+0000) cannot be stored in PostgreSQL',
        );
      }
      expect(await store.countItems(t, 'note')).toBe(0);
    });

    it('a title match outranks a word repeated in the body or the tags', async () => {
      const t = newTenant();
      const inTitle = item({ title: 'Zulu report', body: 'a long body about many other things entirely' });
      const repeated = item({ title: 'Other', body: 'zulu zulu zulu zulu zulu zulu and zulu again' });
      const inTags = item({ title: 'Misc', tags: ['zulu', 'zulu-zulu'] });
      await store.write(
        t,
        [repeated, inTags, inTitle].map((r) => ({ op: 'insert' as const, item: r })),
        NOW,
      );
      const ids = async (limit: number) =>
        (await store.searchText(t, { terms: ['zulu'], match: 'all', limit })).map((h) => h.id);
      expect(await ids(1)).toEqual([inTitle.id]);
      expect(await ids(10)).toEqual([inTitle.id, inTags.id, repeated.id]);
    });

    it('with OR, a document matching every word outside its title can outrank title matches', async () => {
      const t = newTenant();
      const titled = Array.from({ length: 5 }, () =>
        item({ title: 'kilo plain', body: 'nothing else here' }),
      );
      const dense = item({
        title: 'no match',
        tags: ['kilo', 'lima'],
        body: 'kilo lima '.repeat(20),
      });
      await store.write(
        t,
        [...titled, dense].map((r) => ({ op: 'insert' as const, item: r })),
        NOW,
      );
      // Each title match scores 0.61 / 2; the dense document (0.4 + 0.2 * (1/4 + 1/9 + …)) / 1.645 ≈ 0.316.
      const hits = await store.searchText(t, { terms: ['kilo', 'lima'], match: 'any', limit: 3 });
      expect(hits[0]?.id).toBe(dense.id);
      expect(hits).toHaveLength(3);
    });

    it('the ranking shortcuts return what ranking every match returns', async () => {
      const seed = Date.now() % 100_000;
      const rand = prng(seed);
      const t = newTenant();
      const words = ['kilo', 'lima', 'mike', 'oscar'];
      const pickWord = () => words[Math.floor(rand() * words.length)] as string;
      const records = Array.from({ length: 500 }, (_, i) => {
        // Some documents repeat the words densely: without a title match they can still outrank title
        // matches of an OR query (and must be found by the shortcut).
        const density = rand() < 0.2 ? 0.6 : 0.08;
        const body = Array.from({ length: 5 + Math.floor(rand() * 60) }, () =>
          rand() < density ? pickWord() : `filler${Math.floor(rand() * 50)}`,
        ).join(' ');
        return item({
          kind: rand() < 0.5 ? 'note' : 'task',
          title: `${rand() < 0.25 ? pickWord() : 'plain'} title ${rand() < 0.1 ? pickWord() : ''}`,
          body,
          tags: rand() < 0.3 ? [pickWord(), pickWord()] : [],
          status: rand() < 0.5 ? 'open' : 'done',
          starts_at: `2026-0${1 + Math.floor(rand() * 9)}-01T00:00:00.000Z`,
          data: { i },
        });
      });
      await store.write(
        t,
        records.map((r) => ({ op: 'insert' as const, item: r })),
        NOW,
      );
      const queries: { terms: string[]; match: 'all' | 'any' }[] = [
        ...words.map((w) => ({ terms: [w], match: 'all' as const })),
        { terms: ['kilo', 'lima'], match: 'any' },
        { terms: ['mike', 'oscar'], match: 'any' },
        { terms: ['kilo', 'lima', 'mike'], match: 'any' },
        { terms: ['kilo', 'lima', 'mike', 'oscar'], match: 'any' },
        { terms: ['kilo', 'kilos', 'oscar'], match: 'any' }, // one lexeme twice
        { terms: ['kilo', 'lima'], match: 'all' },
        { terms: ['kilo', 'lima', 'mike', 'oscar', 'filler1'], match: 'any' },
      ];
      const filters = [
        {},
        { kinds: ['task' as const] },
        { status: ['open'] },
        { starts_from: '2026-05-01T00:00:00.000Z' },
        { kinds: ['note' as const], status: ['done'], starts_before: '2026-04-01T00:00:00.000Z' },
      ];
      for (const query of queries) {
        const tsq = query.terms
          .map((_, k) => `phraseto_tsquery('mcp_pa_english', $${k + 8})`)
          .join(query.match === 'all' ? ' && ' : ' || ');
        for (const filter of filters) {
          for (const limit of [1, 5, 20, 60, 500]) {
            const got = await store.searchText(t, { ...query, limit, ...filter });
            // Brute force, as the superuser: rank every match that passes the filters.
            const expected = (
              await store.driver.query<{ id: string; rank: number }>(
                `SELECT id, ts_rank('{0.1, 0.2, 0.4, 1.0}'::real[], search, q, 0) AS rank
                 FROM items, (SELECT ${tsq} AS q) AS query
                 WHERE tenant_id = $1 AND deleted_at IS NULL AND search @@ q
                   AND ($2::text[] IS NULL OR kind = ANY ($2)) AND ($3::text[] IS NULL OR status = ANY ($3))
                   AND ($4::text IS NULL OR starts_at >= $4) AND ($5::text IS NULL OR starts_at < $5)
                   AND $6::text IS NULL
                 ORDER BY 2 DESC, 1 LIMIT $7`,
                [
                  t,
                  'kinds' in filter ? filter.kinds : null,
                  'status' in filter ? filter.status : null,
                  'starts_from' in filter ? filter.starts_from : null,
                  'starts_before' in filter ? filter.starts_before : null,
                  null,
                  limit,
                  ...query.terms,
                ],
              )
            ).rows;
            const what = `seed ${seed}, ${JSON.stringify(query)}, ${JSON.stringify(filter)}, limit ${limit}`;
            expect(
              got.map((h) => h.id),
              what,
            ).toEqual(expected.map((r) => r.id));
            got.forEach((h, k) => expect(h.score, what).toBeCloseTo(Number(expected[k]?.rank), 5));
          }
        }
      }
    });
  });
}

searchRanking(
  'PGlite',
  async () =>
    storeOnDriver(await PgliteDriver.open(null), { logger: quietLogger, vectorDimensions: null }, true),
  async () => undefined,
);

describeWithServer('real server', () => {
  let db: TestDatabase;
  searchRanking(
    'PostgreSQL server',
    async () => {
      db = await createTestDatabase();
      return openPostgresStore(
        { kind: 'postgresql', connectionString: db.url, poolSize: 2 },
        { logger: quietLogger, vectorDimensions: null },
      );
    },
    async () => {
      await db?.drop();
    },
  );
});
