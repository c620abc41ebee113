import type { ItemKind, TextHit } from '../storage/model.js';
import type { Assistant } from './assistant.js';
import { invalid } from './errors.js';
import { parseTemporal, temporalInstant } from './time.js';
import type { ItemView } from './views.js';
import { clip } from '../unicode.js';

export interface SearchInput {
  query: string;
  kinds?: ItemKind[] | undefined;
  tags?: string[] | undefined;
  status?: string[] | undefined;
  date_from?: string | undefined;
  date_to?: string | undefined;
  limit?: number | undefined;
}

export interface SearchHit {
  id: string;
  kind: ItemKind;
  title: string;
  uri: string;
  snippet: string;
  score: number;
  matched_by: ('text' | 'semantic')[];
  item: ItemView;
}

export interface SearchResult {
  query: string;
  mode: 'text' | 'hybrid';
  matched: 'all_words' | 'any_word' | 'semantic_only' | 'none';
  note: string | null;
  results: SearchHit[];
}

/** Words of user text, lower-cased; every FTS operator and syntax character is dropped here. */
export function searchTerms(text: string): string[] {
  const words = text.normalize('NFKC').match(/[\p{L}\p{N}_]+/gu) ?? [];
  const terms = [...new Set(words.map((w) => w.toLowerCase()))];
  // English function words carry no meaning and match most items: requiring them ("notes from the meeting")
  // loses results, and scoring them is most of the cost of a broad query. A query of nothing else keeps them.
  const meaningful = terms.filter((t) => !STOP_WORDS.has(t));
  return (meaningful.length > 0 ? meaningful : terms).slice(0, 32);
}

const STOP_WORDS = new Set(
  (
    'a an and are as at be been but by can could did do does for from had has have he her him his how i if in ' +
    'into is it its me my no nor not of on or our she so than that the their them then there these they this ' +
    'those to too us was we were what when where which who whom why will with would you your'
  ).split(' '),
);

/** Reciprocal rank fusion (k = 60). Scores are ranks, not similarities: never threshold them. */
export function reciprocalRankFusion(
  lists: readonly (readonly string[])[],
  k = 60,
): { id: string; score: number }[] {
  const scores = new Map<string, number>();
  for (const list of lists) {
    list.forEach((id, rank) => scores.set(id, (scores.get(id) ?? 0) + 1 / (k + rank + 1)));
  }
  return [...scores.entries()].map(([id, score]) => ({ id, score })).sort((a, b) => b.score - a.score);
}

/** One query across every kind: full text (all words, then any word), fused with vectors when they are on. */
export async function search(
  assistant: Assistant,
  tenant: string,
  input: SearchInput,
): Promise<SearchResult> {
  const query = input.query.trim();
  if (query.length === 0) throw invalid('query', 'must not be empty');
  if (query.length > 1000) throw invalid('query', 'is longer than 1000 characters');
  const limit = input.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 50)
    throw invalid('limit', 'must be a whole number from 1 to 50');
  const zone = await assistant.timeZone(tenant);
  const from = input.date_from
    ? temporalInstant(parseTemporal(input.date_from, 'date_from', zone), zone)
    : undefined;
  const to = input.date_to ? temporalInstant(parseTemporal(input.date_to, 'date_to', zone), zone) : undefined;
  const terms = searchTerms(query);
  const filter = {
    ...(input.kinds?.length ? { kinds: input.kinds } : {}),
    ...(input.tags?.length ? { tags: input.tags } : {}),
    ...(input.status?.length ? { status: input.status } : {}),
    ...(from ? { starts_from: from } : {}),
    ...(to ? { starts_before: to } : {}),
  };
  const depth = Math.max(limit * 3, 30);
  let matched: SearchResult['matched'] = 'none';
  let text: TextHit[] = [];
  if (terms.length > 0) {
    text = await assistant.store.searchText(tenant, { terms, match: 'all', ...filter, limit: depth });
    if (text.length > 0) matched = 'all_words';
    else if (terms.length > 1) {
      text = await assistant.store.searchText(tenant, { terms, match: 'any', ...filter, limit: depth });
      if (text.length > 0) matched = 'any_word';
    }
  }
  let semantic: { id: string; score: number }[] = [];
  let note: string | null = null;
  const provider = assistant.embeddings;
  if (provider) {
    try {
      const [vector] = await provider.embed([query]);
      if (vector) {
        semantic = await assistant.store.searchVectors(
          tenant,
          vector,
          { model: provider.model, ...(input.kinds?.length ? { kinds: input.kinds } : {}) },
          depth,
        );
        semantic = semantic.filter((hit) => hit.score > provider.relevanceFloor);
        // Filters the vector side cannot apply itself are applied below on the records.
      }
      if (await assistant.store.hasPendingVectors(tenant, provider.model))
        note = 'Some items are still waiting for embeddings; they are found by text only for now.';
    } catch {
      note = 'Semantic search is unavailable right now; these results come from full-text search only.';
    }
  }
  const textIds = text.map((h) => h.id);
  const fused = provider
    ? reciprocalRankFusion([textIds, semantic.map((s) => s.id)])
    : text.map((h) => ({ id: h.id, score: h.score }));
  const records = await assistant.store.getItems(
    tenant,
    fused.map((f) => f.id),
  );
  const byId = new Map(records.map((r) => [r.id, r]));
  const snippets = new Map(text.map((h) => [h.id, h.snippet]));
  const semanticIds = new Set(semantic.map((s) => s.id));
  const ordered = fused
    .map((f) => ({ f, r: byId.get(f.id) }))
    .filter((x): x is { f: { id: string; score: number }; r: NonNullable<typeof x.r> } => {
      const r = x.r;
      if (!r || r.deleted_at) return false;
      if (filter.tags && !r.tags.some((t) => filter.tags?.includes(t))) return false;
      if (filter.status && !filter.status.includes(r.status ?? '')) return false;
      if (from && (!r.starts_at || r.starts_at < from)) return false;
      if (to && (!r.starts_at || r.starts_at >= to)) return false;
      return true;
    })
    .slice(0, limit);
  const views = await assistant.views(
    tenant,
    ordered.map((o) => o.r),
    true,
  );
  if (matched === 'none' && ordered.length > 0) matched = 'semantic_only';
  return {
    query,
    mode: provider ? 'hybrid' : 'text',
    matched,
    note,
    results: ordered.map(({ f, r }, i) => ({
      id: r.id,
      kind: r.kind,
      title: r.title,
      uri: `pa://${r.kind}/${r.id}`,
      snippet: snippets.get(r.id) ?? clip(r.body, 160),
      score: Math.round(f.score * 1e6) / 1e6,
      matched_by: [
        ...(snippets.has(r.id) ? (['text'] as const) : []),
        ...(semanticIds.has(r.id) ? (['semantic'] as const) : []),
      ],
      item: views[i] as ItemView,
    })),
  };
}
