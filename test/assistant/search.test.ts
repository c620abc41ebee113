import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Assistant } from '../../src/assistant/assistant.js';
import { reciprocalRankFusion, search, searchTerms, type SearchResult } from '../../src/assistant/search.js';
import { HashEmbeddingProvider } from '../../src/storage/embeddings/provider.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';
import { rejection } from '../support/errors.js';

const T = 'local';
const NOW = '2026-03-05T10:00:00.000Z';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function setup(options: { vectors?: boolean } = {}): Assistant {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const store = new SqliteStore({ path: path.join(t.dir, 'pa.sqlite') });
  cleanups.push(() => store.close());
  return new Assistant({
    store,
    clock: () => new Date(NOW),
    defaultTimeZone: 'Europe/Paris',
    maxUploadBytes: 1024 * 1024,
    embeddings: options.vectors ? new HashEmbeddingProvider() : undefined,
    storageInfo: { database: 'sqlite:test', documents: 'database' },
  });
}

/** A small mixed corpus; returns the ids by a short name. */
async function corpus(a: Assistant): Promise<Record<string, string>> {
  const review = await a.addNote(T, {
    text: 'Quarterly budget review with the finance team',
    tags: ['finance'],
  });
  const slides = await a.createTask(T, {
    title: 'Prepare budget slides',
    tags: ['work'],
    due_date: '2026-03-12',
  });
  const doneTask = await a.createTask(T, { title: 'Send budget reminder', status: 'done' });
  const offsite = await a.createEvent(T, {
    title: 'Team offsite planning',
    start_time: '2026-03-18T10:00',
    location: 'Lyon',
  });
  const doc = await a.createExternalDocument(T, {
    title: 'Travel policy',
    description: 'Rules for booking trains and hotels',
    external_url: 'https://example.com/policy',
  });
  return {
    review: review.note.id,
    slides: slides.task.id,
    doneTask: doneTask.task.id,
    offsite: offsite.event.id,
    doc: doc.document.id,
  };
}

function idsOf(r: SearchResult): string[] {
  return r.results.map((h) => h.id);
}

describe('searchTerms', () => {
  it('keeps words only, lower-cased and once each, dropping every FTS operator and syntax character', () => {
    expect(searchTerms('Budget: "Q1" OR draft* -old (review)? NEAR/3 title:x ^y')).toEqual([
      'budget',
      'q1',
      'draft',
      'old',
      'review',
      'near',
      '3',
      'title',
      'x',
      'y',
    ]);
    expect(searchTerms('Plan plan PLAN')).toEqual(['plan']);
    expect(searchTerms('snake_case stays')).toEqual(['snake_case', 'stays']);
    expect(searchTerms('Café Zürich — naïve')).toEqual(['café', 'zürich', 'naïve']);
    expect(searchTerms('ｆｕｌｌ　ｗｉｄｔｈ')).toEqual(['full', 'width']); // NFKC
    expect(searchTerms('"*():-?^')).toEqual([]);
    expect(searchTerms('')).toEqual([]);
  });

  it('drops English function words unless nothing else is left', () => {
    expect(searchTerms('notes from the meeting with the client')).toEqual(['notes', 'meeting', 'client']);
    expect(searchTerms('To be or not to be')).toEqual(['to', 'be', 'or', 'not']);
  });

  it('keeps at most 32 terms', () => {
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
    expect(searchTerms(words.join(' '))).toEqual(words.slice(0, 32));
  });
});

describe('text search', () => {
  it('matches all words first', async () => {
    const a = setup();
    const ids = await corpus(a);
    const r = await search(a, T, { query: 'budget review' });
    expect(r).toMatchObject({ query: 'budget review', mode: 'text', matched: 'all_words', note: null });
    expect(idsOf(r)).toEqual([ids['review']]);
    const hit = r.results[0];
    expect(hit).toMatchObject({ kind: 'note', uri: `pa://note/${ids['review']}`, matched_by: ['text'] });
    expect(hit?.snippet).toMatch(/«budget»/i);
    expect(hit?.snippet).toMatch(/«review»/i);
    expect(hit?.item.id).toBe(ids['review']);
    expect(hit?.score).toBeGreaterThan(0);
  });

  it('a natural-language query finds the item without requiring its function words', async () => {
    const a = setup();
    const ids = await corpus(a);
    // "Quarterly budget review with the finance team" has no "for" or "of".
    const r = await search(a, T, { query: 'the review of the budget for finance' });
    expect(r.matched).toBe('all_words');
    expect(idsOf(r)).toEqual([ids['review']]);
  });

  it('falls back to any word when no item has them all, and says so', async () => {
    const a = setup();
    const ids = await corpus(a);
    const r = await search(a, T, { query: 'budget offsite' });
    expect(r.matched).toBe('any_word');
    expect(idsOf(r).sort()).toEqual([ids['review'], ids['slides'], ids['doneTask'], ids['offsite']].sort());
    for (const h of r.results) expect(h.matched_by).toEqual(['text']);
    const scores = r.results.map((h) => h.score);
    expect([...scores].sort((x, y) => y - x)).toEqual(scores);
  });

  it('finds nothing without failing, whatever the query holds', async () => {
    const a = setup();
    await corpus(a);
    expect(await search(a, T, { query: 'zebra' })).toMatchObject({ matched: 'none', results: [] });
    for (const query of [
      'budget: -review OR "slides',
      'NEAR(budget slides)',
      'title:budget*',
      '???',
      '-',
      'AND',
    ]) {
      await expect(search(a, T, { query }), query).resolves.toMatchObject({ query, mode: 'text' });
    }
    // Operators are words: "OR" does not widen an all-words match.
    expect((await search(a, T, { query: 'slides OR finance' })).matched).toBe('any_word');
    expect((await search(a, T, { query: '???' })).matched).toBe('none');
  });

  it('stems words and ignores accents', async () => {
    const a = setup();
    const { note } = await a.addNote(T, { text: 'Réunion about hotel bookings' });
    expect(idsOf(await search(a, T, { query: 'reunion booking' }))).toEqual([note.id]);
  });

  it('filters by kinds, tags and status', async () => {
    const a = setup();
    const ids = await corpus(a);
    expect(idsOf(await search(a, T, { query: 'budget', kinds: ['task'] })).sort()).toEqual(
      [ids['slides'], ids['doneTask']].sort(),
    );
    expect(idsOf(await search(a, T, { query: 'budget', kinds: ['note', 'event'] }))).toEqual([ids['review']]);
    expect(idsOf(await search(a, T, { query: 'budget', tags: ['finance'] }))).toEqual([ids['review']]);
    expect(idsOf(await search(a, T, { query: 'budget', tags: ['nothing-tagged-so'] }))).toEqual([]);
    expect(idsOf(await search(a, T, { query: 'budget', status: ['done'] }))).toEqual([ids['doneTask']]);
    expect(idsOf(await search(a, T, { query: 'budget', status: ['todo'] }))).toEqual([ids['slides']]);
  });

  it('filters by date, a date meaning that whole day from its start', async () => {
    const a = setup();
    const ids = await corpus(a);
    const r = await search(a, T, { query: 'budget offsite', date_from: '2026-03-12', date_to: '2026-03-19' });
    expect(idsOf(r).sort()).toEqual([ids['slides'], ids['offsite']].sort());
    expect((await rejection(search(a, T, { query: 'x', date_from: '2026-02-30' }))).field).toBe('date_from');
  });

  it('does not find trashed items, finds them again once restored, and never after a purge', async () => {
    const a = setup();
    const ids = await corpus(a);
    const review = ids['review'] as string;
    await a.deleteItems(T, [review], false);
    const r = await search(a, T, { query: 'budget review' });
    // All words no longer match anything: the fallback finds the live budget items only.
    expect(r.matched).toBe('any_word');
    expect(idsOf(r)).not.toContain(review);
    expect(idsOf(await search(a, T, { query: 'finance' }))).toEqual([]);
    await a.restoreItems(T, [review]);
    expect(idsOf(await search(a, T, { query: 'finance' }))).toEqual([review]);
    await a.deleteItems(T, [review], true);
    expect(idsOf(await search(a, T, { query: 'finance' }))).toEqual([]);
  });

  it('finds an item by its new words after an update, not by its old ones', async () => {
    const a = setup();
    const { note } = await a.addNote(T, { text: 'Buy a birthday present' });
    await a.updateItems(T, [{ id: note.id, changes: { text: 'Book a restaurant table' } }]);
    expect(idsOf(await search(a, T, { query: 'birthday' }))).toEqual([]);
    expect(idsOf(await search(a, T, { query: 'restaurant' }))).toEqual([note.id]);
  });

  it('checks its input', async () => {
    const a = setup();
    expect((await rejection(search(a, T, { query: '   ' }))).field).toBe('query');
    expect((await rejection(search(a, T, { query: 'x'.repeat(1001) }))).field).toBe('query');
    expect((await rejection(search(a, T, { query: 'x', limit: 0 }))).field).toBe('limit');
    expect((await rejection(search(a, T, { query: 'x', limit: 51 }))).field).toBe('limit');
  });

  it('respects the limit', async () => {
    const a = setup();
    for (let i = 0; i < 8; i++) await a.addNote(T, { text: `Idea number ${i} for the garden` });
    expect((await search(a, T, { query: 'garden', limit: 3 })).results).toHaveLength(3);
  });
});

describe('hybrid search', () => {
  it('fuses text and vectors; an item sharing words but not the phrase is found semantically too', async () => {
    const a = setup({ vectors: true });
    const { note: plan } = await a.addNote(T, { text: 'Budget planning for the marketing offsite in June' });
    const { note: groceries } = await a.addNote(T, { text: 'Grocery list: apples, bread, cheese' });
    const { task: plumber } = await a.createTask(T, { title: 'Call the plumber about the leaking sink' });

    // No item holds all four words, and none the phrase.
    const r = await search(a, T, { query: 'marketing offsite budget review' });
    expect(r.mode).toBe('hybrid');
    expect(r.matched).toBe('any_word');
    expect(r.note).toBeNull(); // every item already has its vector
    const first = r.results[0];
    expect(first?.id).toBe(plan.id);
    expect(first?.matched_by).toEqual(['text', 'semantic']);
    // The others share no word: whatever the vectors say, text did not match them.
    for (const h of r.results.filter((x) => x.id !== plan.id)) {
      expect([groceries.id, plumber.id]).toContain(h.id);
      expect(h.matched_by).toEqual(['semantic']);
      expect(h.score).toBeLessThan(first?.score ?? 0);
    }
  });

  it('ignores vector matches at the provider’s noise level: unrelated items are not "semantic" hits', async () => {
    const a = setup({ vectors: true });
    await a.addNote(T, { text: 'Budget planning for the marketing offsite in June' });
    const { note: groceries } = await a.addNote(T, { text: 'Grocery list: apples, bread, cheese' });
    const nonsense = await search(a, T, { query: 'zyxwv qwertyuiop' });
    expect(nonsense.results).toEqual([]);
    expect(nonsense.matched).toBe('none');
    const budget = await search(a, T, { query: 'marketing budget' });
    expect(budget.results.map((h) => h.id)).not.toContain(groceries.id);
  });

  it('uses the same filters as text search and skips trashed items', async () => {
    const a = setup({ vectors: true });
    const { note } = await a.addNote(T, { text: 'Marketing budget for June', tags: ['work'] });
    const { task } = await a.createTask(T, { title: 'Marketing budget approval', tags: ['work'] });
    const kinds = await search(a, T, { query: 'marketing budget', kinds: ['task'] });
    expect(idsOf(kinds)).toEqual([task.id]);
    await a.deleteItems(T, [task.id], false);
    const r = await search(a, T, { query: 'marketing budget' });
    expect(idsOf(r)).toEqual([note.id]);
    expect(r.results[0]?.matched_by).toEqual(['text', 'semantic']);
  });

  it('says when some items are still waiting for their vectors', async () => {
    const a = setup({ vectors: true });
    const { note } = await a.addNote(T, { text: 'Marketing plan' });
    // A vector left pending (as after an embedding failure).
    await a.store.putVector(T, note.id, new HashEmbeddingProvider().model, null, NOW);
    const r = await search(a, T, { query: 'marketing' });
    expect(r.note).toMatch(/waiting for embeddings/);
    expect(r.results[0]).toMatchObject({ id: note.id, matched_by: ['text'] });
    expect(await a.reembed(T)).toBe(1);
    const again = await search(a, T, { query: 'marketing' });
    expect(again.note).toBeNull();
    expect(again.results[0]?.matched_by).toEqual(['text', 'semantic']);
  });
});

describe('reciprocalRankFusion', () => {
  it('adds 1 / (k + rank) over the lists, rank counted from 1', () => {
    const text = ['a', 'b', 'c'];
    const semantic = ['c', 'a', 'd'];
    const fused = reciprocalRankFusion([text, semantic]);
    // By the formula with k = 60:
    //   a: 1/61 + 1/62 ≈ 0.032522   (1st in text, 2nd in semantic)
    //   c: 1/63 + 1/61 ≈ 0.032266   (3rd in text, 1st in semantic)
    //   b: 1/62        ≈ 0.016129
    //   d: 1/63        ≈ 0.015873
    expect(fused.map((f) => f.id)).toEqual(['a', 'c', 'b', 'd']);
    const score = Object.fromEntries(fused.map((f) => [f.id, f.score]));
    expect(score['a']).toBeCloseTo(1 / 61 + 1 / 62, 12);
    expect(score['c']).toBeCloseTo(1 / 63 + 1 / 61, 12);
    expect(score['b']).toBeCloseTo(1 / 62, 12);
    expect(score['d']).toBeCloseTo(1 / 63, 12);
  });

  it('lets being in both lists beat being first in one, and honours k', () => {
    // x is first in one list only; y is second in both.
    const lists = [
      ['x', 'y'],
      ['z', 'y'],
    ];
    // k = 60: y = 2/62 ≈ 0.0323 > x = z = 1/61 ≈ 0.0164.
    expect(reciprocalRankFusion(lists)[0]).toEqual({ id: 'y', score: 2 / 62 });
    // k = 0: y = 1/2 + 1/2 = 1 equals x = 1/1, so the order among them is by first appearance.
    const k0 = reciprocalRankFusion(lists, 0);
    expect(k0.map((f) => f.score)).toEqual([1, 1, 1]);
    expect(k0.map((f) => f.id)).toEqual(['x', 'y', 'z']);
    expect(reciprocalRankFusion([])).toEqual([]);
    expect(reciprocalRankFusion([[], ['only']])).toEqual([{ id: 'only', score: 1 / 61 }]);
  });
});
