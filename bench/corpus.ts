/**
 * Deterministic synthetic data for the search benchmark: a vocabulary with a Zipf-like word distribution,
 * items shaped like the ones the Assistant stores (notes, tasks, events, documents, projects) and a fixed
 * query set mixing common, medium and rare words plus text full of FTS syntax characters.
 */
import type { ItemKind, ItemRecord, JsonObject } from '../src/storage/model.js';
import { pick, prng, randInt } from './lib.js';

/** Frequent real words first (they take the top Zipf ranks), so common terms behave like real ones. */
const REAL_WORDS = `the of and to a in for is on that with as it at by from this be are or was an will
we not have has but all can our your new more one about they their if which up out do when so there
what also time year work team meeting project plan review update report call email client customer
budget design data notes week month today tomorrow next last first draft final document list task
event schedule deadline launch release product feature issue bug fix test build deploy server database
search index query user account login password payment invoice order price cost sale market research
analysis strategy goal idea question answer follow check send share read write prepare discuss agree
decide approve sign contract partner vendor supplier office home travel flight hotel train trip booking
dinner lunch breakfast coffee doctor dentist appointment birthday gift family friend school course
lesson exam study book article paper blog post video photo music movie garden kitchen house car bike
run gym health sleep food recipe grocery shopping clean repair insurance tax bank loan rent mortgage
salary bonus hiring interview candidate onboarding training workshop conference talk slides demo
roadmap milestone sprint backlog priority status risk scope quality security privacy compliance legal
policy process quarter annual weekly daily morning afternoon evening monday tuesday wednesday thursday
friday saturday sunday january february march april june july august september october november
december spring summer autumn winter north south east west city street room floor building campus
london paris berlin tokyo madrid rome lisbon vienna prague dublin oslo zurich seattle boston chicago
reminder template summary agenda minutes outline proposal estimate forecast metric dashboard chart
spreadsheet presentation contractor consultant manager director engineer designer analyst support`
  .split(/\s+/)
  .filter((w) => w.length > 0);

const ONSETS = [
  'b',
  'br',
  'c',
  'ch',
  'd',
  'dr',
  'f',
  'g',
  'gr',
  'h',
  'k',
  'l',
  'm',
  'n',
  'p',
  'pl',
  'r',
  's',
];
const MORE_ONSETS = ['sh', 'st', 't', 'tr', 'v', 'w', 'z', 'qu', 'th', 'sl', 'cr', 'fl'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'ou', 'io', 'y'];
const CODAS = ['', '', 'n', 'r', 'l', 's', 't', 'x', 'nd', 'rk', 'st', 'm'];

export interface Vocabulary {
  /** Words by Zipf rank: words[0] is the most frequent. */
  readonly words: readonly string[];
  /** Draws one word with probability proportional to 1 / (rank + 1)^s. */
  sample(rand: () => number): string;
}

/** `size` distinct words (real ones first, then pronounceable made-up ones), Zipf exponent `s`. */
export function vocabulary(size = 4000, s = 1.05, seed = 7): Vocabulary {
  const rand = prng(seed);
  const onsets = [...ONSETS, ...MORE_ONSETS];
  const seen = new Set<string>(REAL_WORDS);
  const words = [...seen];
  while (words.length < size) {
    let w = '';
    const syllables = randInt(rand, 2, 4);
    for (let i = 0; i < syllables; i++) w += pick(rand, onsets) + pick(rand, VOWELS);
    w += pick(rand, CODAS);
    if (w.length < 4 || seen.has(w)) continue;
    seen.add(w);
    words.push(w);
  }
  const cdf = new Float64Array(words.length);
  let total = 0;
  for (let r = 0; r < words.length; r++) {
    total += 1 / Math.pow(r + 1, s);
    cdf[r] = total;
  }
  return {
    words,
    sample(r: () => number): string {
      const x = r() * total;
      let lo = 0;
      let hi = cdf.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((cdf[mid] as number) < x) lo = mid + 1;
        else hi = mid;
      }
      return words[lo] as string;
    },
  };
}

const TAGS = [
  'work',
  'personal',
  'urgent',
  'family',
  'finance',
  'health',
  'travel',
  'home',
  'ideas',
  'reading',
  'client-a',
  'client-b',
  'hiring',
  'q1',
  'q2',
  'q3',
  'q4',
  'research',
  'admin',
  'learning',
  'errands',
  'car',
  'garden',
  'taxes',
  'kids',
  'sport',
  'music',
  'writing',
  'side-project',
  'someday',
];
const ZONES = ['Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'UTC', 'Europe/London'];
const KIND_MIX: readonly [ItemKind, number][] = [
  ['note', 0.35],
  ['task', 0.3],
  ['event', 0.15],
  ['document', 0.1],
  ['project', 0.1],
];
const PREFIX: Record<ItemKind, string> = {
  project: 'prj',
  task: 'tsk',
  event: 'evt',
  document: 'doc',
  note: 'not',
};
const BASE_MS = Date.UTC(2024, 0, 1);
const DAY_MS = 86_400_000;

/** Generates items one after another from a seed; the first N items are the same in every run. */
export class ItemGenerator {
  private readonly rand: () => number;
  private readonly vocab: Vocabulary;
  private readonly projects: string[] = [];
  private count = 0;

  constructor(vocab: Vocabulary, seed = 42) {
    this.vocab = vocab;
    this.rand = prng(seed);
  }

  private words(min: number, max: number): string[] {
    const n = randInt(this.rand, min, max);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.vocab.sample(this.rand));
    return out;
  }

  private title(): string {
    const w = this.words(3, 8).join(' ');
    return w.charAt(0).toUpperCase() + w.slice(1);
  }

  /** 20–80 words cut into sentences. */
  private prose(): string {
    const words = this.words(20, 80);
    let out = '';
    let sentence = 0;
    for (const [i, w] of words.entries()) {
      if (sentence === 0) out += (i > 0 ? ' ' : '') + w.charAt(0).toUpperCase() + w.slice(1);
      else out += ` ${w}`;
      sentence++;
      if (sentence > randInt(this.rand, 6, 14) || i === words.length - 1) {
        out += this.rand() < 0.85 ? '.' : '?';
        sentence = 0;
      }
    }
    return out;
  }

  private tags(): string[] {
    const n = this.rand() < 0.35 ? 0 : randInt(this.rand, 1, 3);
    const out = new Set<string>();
    for (let i = 0; i < n; i++) out.add(TAGS[Math.floor(Math.pow(this.rand(), 2) * TAGS.length)] as string);
    return [...out];
  }

  private kind(): ItemKind {
    let x = this.rand();
    for (const [k, p] of KIND_MIX) {
      if (x < p) return k;
      x -= p;
    }
    return 'note';
  }

  private id(kind: ItemKind): string {
    let hex = '';
    for (let i = 0; i < 4; i++)
      hex += Math.floor(this.rand() * 0x10000)
        .toString(16)
        .padStart(4, '0');
    return `${PREFIX[kind]}_${(BASE_MS + this.count).toString(36)}${hex}`;
  }

  next(): ItemRecord {
    const kind = this.kind();
    const id = this.id(kind);
    const created = new Date(BASE_MS + Math.floor(this.rand() * 700 * DAY_MS)).toISOString();
    const updated =
      this.rand() < 0.3
        ? new Date(Date.parse(created) + Math.floor(this.rand() * 30 * DAY_MS)).toISOString()
        : created;
    const base = {
      id,
      kind,
      title: this.title(),
      body: '',
      status: null as string | null,
      priority: null as string | null,
      project_id: null as string | null,
      tags: this.tags(),
      starts_at: null as string | null,
      ends_at: null as string | null,
      client_ref: null,
      data: {} as JsonObject,
      version: 1,
      created_at: created,
      updated_at: updated,
      deleted_at: null,
    };
    this.count++;
    const day = (offsetDays: number): string =>
      new Date(BASE_MS + offsetDays * DAY_MS).toISOString().slice(0, 10);
    switch (kind) {
      case 'note': {
        const text = this.prose();
        return {
          ...base,
          body: text,
          data: {
            note_kind: pick(this.rand, ['note', 'note', 'note', 'idea', 'journal']),
            pinned: this.rand() < 0.05,
          },
        };
      }
      case 'task': {
        const description = this.prose();
        const status = pick(this.rand, ['todo', 'todo', 'in_progress', 'done', 'blocked']);
        const dueDay = this.rand() < 0.6 ? day(randInt(this.rand, 0, 1000)) : null;
        const project = this.projects.length > 0 && this.rand() < 0.3 ? pick(this.rand, this.projects) : null;
        return {
          ...base,
          body: description,
          status,
          priority: pick(this.rand, ['low', 'medium', 'medium', 'high', 'urgent']),
          project_id: project,
          starts_at: dueDay ? `${dueDay}T00:00:00.000Z` : null,
          data: {
            description,
            due: dueDay ? { date: dueDay } : null,
            reminder: null,
            timezone: null,
            recurrence: null,
            completed_at: status === 'done' ? updated : null,
          },
        };
      }
      case 'event': {
        const description = this.prose();
        const tz = pick(this.rand, ZONES);
        const startMs =
          BASE_MS + randInt(this.rand, 0, 1000) * DAY_MS + randInt(this.rand, 14, 40) * 1_800_000;
        const start = new Date(startMs).toISOString();
        const end = new Date(startMs + randInt(this.rand, 1, 4) * 1_800_000).toISOString();
        const location =
          this.rand() < 0.5 ? `${this.vocab.sample(this.rand)} room ${randInt(this.rand, 1, 40)}` : null;
        const attendees =
          this.rand() < 0.4
            ? [`${this.vocab.sample(this.rand)}@example.com`, `${this.vocab.sample(this.rand)}@example.org`]
            : [];
        return {
          ...base,
          body: [description, location, attendees.join(', ')].filter(Boolean).join('\n'),
          starts_at: start,
          ends_at: end,
          data: {
            description,
            start: { at: start, tz },
            end: { at: end, tz },
            all_day: false,
            timezone: tz,
            location,
            attendees,
            reminder_minutes: 15,
            recurrence: null,
          },
        };
      }
      case 'document': {
        const description = this.prose();
        const url = `https://files.example.com/${this.vocab.sample(this.rand)}/${id}.pdf`;
        return {
          ...base,
          body: [description, url].join('\n'),
          data: {
            description,
            document_type: 'pdf',
            mime_type: 'application/pdf',
            filename: null,
            size_bytes: 0,
            checksum: null,
            external_url: url,
            storage: 'external',
          },
        };
      }
      case 'project': {
        const description = this.prose();
        this.projects.push(id);
        const startDay = this.rand() < 0.5 ? day(randInt(this.rand, 0, 700)) : null;
        return {
          ...base,
          body: description,
          status: pick(this.rand, ['not_started', 'in_progress', 'in_progress', 'completed', 'on_hold']),
          priority: pick(this.rand, ['low', 'medium', 'high']),
          starts_at: startDay ? `${startDay}T00:00:00.000Z` : null,
          data: {
            description,
            notes: null,
            start_date: startDay ? { date: startDay } : null,
            end_date: null,
            progress: 0,
          },
        };
      }
    }
  }
}

export type QueryClass = 'common' | 'medium' | 'rare' | 'mixed' | 'syntax';

export interface BenchQuery {
  readonly text: string;
  readonly cls: QueryClass;
}

const QUERY_MIX: readonly [QueryClass, number][] = [
  ['common', 0.2],
  ['medium', 0.25],
  ['rare', 0.2],
  ['mixed', 0.25],
  ['syntax', 0.1],
];

/** Rank bands by which query words are drawn: common 0–99, medium 100–999, rare 1000 and up. */
function band(vocab: Vocabulary, rand: () => number, cls: 'common' | 'medium' | 'rare'): string {
  const [lo, hi] =
    cls === 'common' ? [0, 99] : cls === 'medium' ? [100, 999] : [1000, vocab.words.length - 1];
  return vocab.words[randInt(rand, lo, hi)] as string;
}

/** A fixed query set of 1–3 words; some carry quotes, operators, prefixes and brackets as users type them. */
export function querySet(vocab: Vocabulary, count = 200, seed = 1234): BenchQuery[] {
  const rand = prng(seed);
  const out: BenchQuery[] = [];
  while (out.length < count) {
    let x = rand();
    let cls: QueryClass = 'common';
    for (const [c, p] of QUERY_MIX) {
      if (x < p) {
        cls = c;
        break;
      }
      x -= p;
    }
    const n = randInt(rand, 1, 3);
    let text: string;
    if (cls === 'common' || cls === 'medium' || cls === 'rare') {
      const c = cls;
      text = Array.from({ length: n }, () => band(vocab, rand, c)).join(' ');
    } else if (cls === 'mixed') {
      const classes = ['common', 'medium', 'rare'] as const;
      text = Array.from({ length: Math.max(2, n) }, () => band(vocab, rand, pick(rand, classes))).join(' ');
    } else {
      const a = band(vocab, rand, pick(rand, ['common', 'medium', 'rare'] as const));
      const b = band(vocab, rand, pick(rand, ['common', 'medium', 'rare'] as const));
      text = pick(rand, [
        `"${a} ${b}"`,
        `${a} AND ${b}`,
        `${a} OR ${b}`,
        `${a}*`,
        `-${a} ${b}`,
        `title:${a}`,
        `(${a}) NEAR(${b})`,
        `${a}^ "${b}`,
        `${a} + ${b}?`,
        `c++ ${a} #${b}`,
      ]);
    }
    out.push({ text, cls });
  }
  return out;
}
